/* The byte buffer: compaction, growth and shrinking in one place. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "nbio/errors.h"

static size_t base_of(const nbio__bytes *b)
{
    return b->base != 0 ? b->base : 256;
}

static void compact(nbio__bytes *b)
{
    if (b->head > 0) {
        memmove(b->data, b->data + b->head, b->len);
        b->head = 0;
    }
}

static int resize(nbio__bytes *b, size_t cap)
{
    unsigned char *p = realloc(b->data, cap);
    if (p == NULL)
        return NBIO_ENOMEM;
    b->data = p;
    b->cap = cap;
    return 0;
}

unsigned char *nbio__bytes_wbuf(nbio__bytes *b, size_t need, size_t *room)
{
    *room = 0;
    if (need <= b->len)
        need = b->len + 1;
    if (b->head > 0 && (b->head + b->len == b->cap || need > b->cap - b->head))
        compact(b); /* what is needed would not fit behind the consumed bytes */
    if (b->head + b->len == b->cap) { /* full: grow, following what arrived */
        size_t cap = b->cap == 0 ? base_of(b) : (b->cap > SIZE_MAX / 2 ? SIZE_MAX : b->cap * 2);
        if (b->cap > 0 && need > b->len + 1 && cap > need) /* a known total: no further */
            cap = need > b->cap ? need : b->cap + 1;
        if (b->max != 0 && cap > b->max)
            cap = b->max;
        if (cap <= b->cap || resize(b, cap) != 0)
            return NULL;
    }
    *room = b->cap - b->head - b->len;
    return b->data + b->head + b->len;
}

void nbio__bytes_rack(nbio__bytes *b, size_t n)
{
    if (n >= b->len) {
        b->head = 0;
        b->len = 0;
    } else {
        b->head += n;
        b->len -= n;
    }
}

int nbio__bytes_append(nbio__bytes *b, const void *src, size_t n)
{
    if (n == 0)
        return 0;
    if (n > SIZE_MAX / 4 - b->len)
        return NBIO_ENOMEM;
    if (b->head + b->len + n > b->cap) {
        compact(b);
        if (b->len + n > b->cap) {
            size_t cap = b->cap ? b->cap : base_of(b);
            while (cap < b->len + n)
                cap *= 2;
            if (resize(b, cap) != 0)
                return NBIO_ENOMEM;
        }
    }
    memcpy(b->data + b->head + b->len, src, n);
    b->len += n;
    return 0;
}

void nbio__bytes_shrink(nbio__bytes *b)
{
    size_t base = base_of(b);
    if (b->cap <= 4 * base || b->len > base)
        return;
    if (b->len == 0) {
        nbio__bytes_free(b);
        return;
    }
    compact(b);
    (void)resize(b, base); /* on failure the larger buffer simply stays */
}

void nbio__bytes_release(nbio__bytes *b)
{
    if (b->len == 0 && b->data != NULL)
        nbio__bytes_free(b);
}

void nbio__bytes_free(nbio__bytes *b)
{
    free(b->data);
    b->data = NULL;
    b->head = b->len = b->cap = 0;
}
