/*
 * Internal: the byte buffer every layer uses (read buffers, write buffers,
 * output queues), and the one place that decides how buffers compact, grow
 * and shrink.
 *
 * Unconsumed bytes are data[head, head + len). Exchanges go in pairs, in the
 * BearSSL style: nbio__bytes_wbuf() says where up to `room` bytes may be
 * written and nbio__bytes_wack() says how many were; nbio__bytes_rbuf()
 * says what can be read and nbio__bytes_rack() how much was consumed.
 *
 * Policy:
 *  - Memory is allocated on first use, `base` bytes (0: 256).
 *  - Growth follows the bytes that arrive, not the size a header
 *    announces: the buffer grows only when it is full, doubling (at most to
 *    `need` when the caller knows the total, never past `max` when set). A
 *    4-byte header announcing 64 MiB costs nothing until the bytes come.
 *  - Consumed bytes are reclaimed by moving the rest to the front only when
 *    what the caller needs would not fit behind them.
 *  - nbio__bytes_shrink() gives back what a burst grew once the buffer is
 *    nearly empty again; nbio__bytes_release() frees an empty buffer.
 */
#ifndef NBIO__BYTES_H
#define NBIO__BYTES_H

#include <stddef.h>

typedef struct nbio__bytes {
    unsigned char *data;
    size_t head; /* first unconsumed byte */
    size_t len;  /* bytes after head */
    size_t cap;
    size_t base; /* first allocation and the size shrink returns to (0: 256) */
    size_t max;  /* the buffer never grows past this (0: no limit) */
} nbio__bytes;

/* Where to write: makes room at the end so the buffer can eventually hold
 * `need` unconsumed bytes (at least len + 1). Returns the first free byte
 * and sets *room (> 0); or NULL with *room 0 when the buffer is at `max` and
 * full, or out of memory: nbio__bytes_full() tells the two apart. */
unsigned char *nbio__bytes_wbuf(nbio__bytes *b, size_t need, size_t *room);

/* n bytes were written at the pointer nbio__bytes_wbuf() returned. */
static inline void nbio__bytes_wack(nbio__bytes *b, size_t n)
{
    b->len += n;
}

/* True when the buffer cannot take another byte: at max and full. */
static inline int nbio__bytes_full(const nbio__bytes *b)
{
    return b->max != 0 && b->len >= b->max;
}

/* The first unconsumed byte (a valid pointer also while nothing was ever
 * allocated: never NULL + 0). */
static inline const unsigned char *nbio__bytes_peek(const nbio__bytes *b)
{
    return b->data != NULL ? b->data + b->head : (const unsigned char *)""; /* never NULL + 0 */
}

/* What can be read: returns the first unconsumed byte, *len set. */
static inline const unsigned char *nbio__bytes_rbuf(const nbio__bytes *b, size_t *len)
{
    *len = b->len;
    return nbio__bytes_peek(b);
}

/* Drops the first n bytes (all of them when n >= len). */
void nbio__bytes_rack(nbio__bytes *b, size_t n);

/* Appends n bytes, growing as needed (also past max: a queue the caller
 * bounds itself). Returns 0 or NBIO_ENOMEM. */
int nbio__bytes_append(nbio__bytes *b, const void *src, size_t n);

/* Same as nbio__bytes_rack (the queue spelling). */
static inline void nbio__bytes_consume(nbio__bytes *b, size_t n)
{
    nbio__bytes_rack(b, n);
}

/* After a burst: when the buffer grew past 4 x base and holds at most base
 * bytes, gives the excess back (all of it when empty). */
void nbio__bytes_shrink(nbio__bytes *b);

/* Frees the memory when the buffer holds nothing. */
void nbio__bytes_release(nbio__bytes *b);

/* Frees the memory; base and max are kept. */
void nbio__bytes_free(nbio__bytes *b);

#endif
