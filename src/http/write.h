/* Internal: serialising request and response heads into a buffer. */
#ifndef NBIO__HTTP_WRITE_H
#define NBIO__HTTP_WRITE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/bytes.h"
#include "nbio/http.h"

/* True when s can go into a head as a token (a method, a header name). */
bool nbio__http_is_token(const char *s, size_t len);

/* True when s can go into a header value or a request target: no CR, LF or
 * NUL (the bytes that would split or end a line). */
bool nbio__http_is_field_safe(const char *s, size_t len);

/* Appends "NAME: VALUE\r\n". Returns 0 or NBIO_ENOMEM. */
int nbio__http_put_header(nbio__bytes *b, const char *name, size_t nlen, const char *value,
                          size_t vlen);

/* Appends s. Returns 0 or NBIO_ENOMEM. */
int nbio__http_put(nbio__bytes *b, const char *s, size_t len);

/* Appends a decimal number. Returns 0 or NBIO_ENOMEM. */
int nbio__http_put_u64(nbio__bytes *b, uint64_t v);

/* True when headers[] has a header called name (case-insensitive). */
bool nbio__http_has_header(const nbio_http_header *h, size_t n, const char *name);

#endif
