/*
 * libnbio — the HTTP/1.1 message model.
 *
 * A parsed request or response head is a set of zero-copy slices into the
 * caller's buffer: nothing is copied, decoded or allocated, and every slice
 * stays valid exactly as long as the bytes it points into. The HTTP client
 * and server sessions hand out heads of this shape; the parser itself is
 * internal (src/http/codec.h).
 *
 * What the parser guarantees about a head it returns (RFC 9112):
 *  - method and header names are tokens (RFC 9110 tchar), never empty;
 *  - target is non-empty and holds no whitespace, control bytes or DEL;
 *  - header values have leading and trailing SP/HTAB removed and hold no
 *    control bytes other than HTAB (bytes 0x80-0xFF pass through as they
 *    came); a value may be empty;
 *  - headers appear in the order received, repeated names included.
 */
#ifndef NBIO_HTTP_H
#define NBIO_HTTP_H

#include <stdbool.h>
#include <stddef.h>

#include "nbio/api.h"

#ifdef __cplusplus
extern "C" {
#endif

/** A byte range inside a buffer the caller owns; not NUL-terminated. An
 *  absent part of a head is {NULL, 0}. */
typedef struct nbio_http_slice {
    const char *data;
    size_t len;
} nbio_http_slice;

/** One header field line: the name as received (case preserved) and the
 *  value with surrounding whitespace trimmed. */
typedef struct nbio_http_header {
    nbio_http_slice name, value;
} nbio_http_header;

/**
 * A parsed request or response head.
 *
 * Requests set method and target (status 0, reason {NULL, 0}); responses
 * set status (100-999) and reason (possibly empty; method and target
 * {NULL, 0}). minor_version is the x of HTTP/1.x. headers points to the
 * caller's array; num_headers is how many entries the parser filled.
 */
typedef struct nbio_http_head {
    int minor_version;
    nbio_http_slice method, target; /* requests */
    int status;                     /* responses */
    nbio_http_slice reason;         /* responses */
    nbio_http_header *headers;      /* the caller's array */
    size_t num_headers;
} nbio_http_head;

/**
 * Finds a header by name, ASCII case-insensitively.
 *
 * With from NULL, returns the value of the first header called name, or
 * NULL. With from non-NULL, the search starts at index *from, and on a
 * match *from is set to the index after it (unchanged on NULL), so repeated
 * headers are visited in the order received:
 *
 *     size_t i = 0;
 *     const nbio_http_slice *v;
 *     while ((v = nbio_http_header_find(h, "set-cookie", &i)) != NULL)
 *         use(*v);
 *
 * name is a NUL-terminated string. Never touches h's bytes beyond the
 * slices; h NULL or name NULL returns NULL.
 */
NBIO_API const nbio_http_slice *nbio_http_header_find(const nbio_http_head *h, const char *name,
                                                      size_t *from);

/** True when s holds exactly the bytes of the NUL-terminated lit. */
NBIO_API bool nbio_http_slice_eq(nbio_http_slice s, const char *lit);

/** True when s equals lit ignoring ASCII case (A-Z = a-z only; other bytes
 *  must match exactly). */
NBIO_API bool nbio_http_slice_ieq(nbio_http_slice s, const char *lit);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_HTTP_H */
