/* A growable byte queue. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "nbio/errors.h"

int nbio__bytes_append(nbio__bytes *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / 4 - b->len)
        return NBIO_ENOMEM;
    if (b->head + b->len + n > b->cap) {
        if (b->head > 0) { /* compact first */
            memmove(b->data, b->data + b->head, b->len);
            b->head = 0;
        }
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : 256;
            while (cap < b->len + n)
                cap *= 2;
            unsigned char *p = realloc(b->data, cap);
            if (p == NULL)
                return NBIO_ENOMEM;
            b->data = p;
            b->cap = cap;
        }
    }
    memcpy(b->data + b->head + b->len, src, n);
    b->len += n;
    return 0;
}

void nbio__bytes_consume(nbio__bytes *b, size_t n)
{
    if (n >= b->len) {
        b->head = 0;
        b->len = 0;
    } else {
        b->head += n;
        b->len -= n;
    }
}

void nbio__bytes_free(nbio__bytes *b)
{
    free(b->data);
    memset(b, 0, sizeof *b);
}
