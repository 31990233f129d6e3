/* Serialising heads: every byte checked so a caller's string cannot split
 * a line (header injection) or smuggle a second message. */
#include <stdio.h>
#include <string.h>

#include "http/write.h"
#include "nbio/errors.h"

bool nbio__http_is_token(const char *s, size_t len)
{
    static const char extra[] = "!#$%&'*+-.^_`|~";
    if (len == 0)
        return false;
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)s[i];
        bool alnum = (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
        if (!alnum && (c == '\0' || strchr(extra, c) == NULL))
            return false;
    }
    return true;
}

bool nbio__http_is_field_safe(const char *s, size_t len)
{
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\r' || s[i] == '\n' || s[i] == '\0')
            return false;
    return true;
}

int nbio__http_put(nbio__bytes *b, const char *s, size_t len)
{
    return nbio__bytes_append(b, s, len);
}

int nbio__http_put_header(nbio__bytes *b, const char *name, size_t nlen, const char *value,
                          size_t vlen)
{
    if (nbio__bytes_append(b, name, nlen) != 0 || nbio__bytes_append(b, ": ", 2) != 0 ||
        nbio__bytes_append(b, value, vlen) != 0 || nbio__bytes_append(b, "\r\n", 2) != 0)
        return NBIO_ENOMEM;
    return 0;
}

int nbio__http_put_u64(nbio__bytes *b, uint64_t v)
{
    char num[24];
    int n = snprintf(num, sizeof num, "%llu", (unsigned long long)v);
    return nbio__bytes_append(b, num, (size_t)n);
}

bool nbio__http_has_header(const nbio_http_header *h, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (nbio_http_slice_ieq(h[i].name, name))
            return true;
    return false;
}
