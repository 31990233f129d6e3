/* Internal: a growable byte queue (append at the end, consume at the front). */
#ifndef NBIO__BYTES_H
#define NBIO__BYTES_H

#include <stddef.h>

typedef struct nbio__bytes {
    unsigned char *data;
    size_t head; /* first unconsumed byte */
    size_t len;  /* bytes after head */
    size_t cap;
} nbio__bytes;

/* Appends n bytes. Returns 0 or NBIO_ENOMEM. */
int nbio__bytes_append(nbio__bytes *b, const void *src, size_t n);

/* Drops the first n bytes (all of them when n >= len). */
void nbio__bytes_consume(nbio__bytes *b, size_t n);

static inline const unsigned char *nbio__bytes_peek(const nbio__bytes *b)
{
    return b->data + b->head;
}

void nbio__bytes_free(nbio__bytes *b);

#endif
