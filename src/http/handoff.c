/*
 * The byte session handed over after an HTTP Upgrade: the bytes the HTTP
 * server had read past the upgrade request come first, and what it still
 * had queued goes out first; then everything is the wrapped session's.
 */
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/session.h"
#include "http/handoff.h"

typedef struct nbio__handoff {
    nbio_session base; /* base.inner: the byte session */
    nbio__bytes in, out;
    unsigned char rbuf[16384];
} nbio__handoff;

static long handoff_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__handoff *h = (nbio__handoff *)s;
    if (h->in.len > 0) {
        size_t n = h->in.len < cap ? h->in.len : cap;
        memcpy(dst, nbio__bytes_peek(&h->in), n);
        nbio__bytes_rack(&h->in, n);
        if (h->in.len == 0)
            nbio__bytes_free(&h->in);
        return (long)n;
    }
    long n = nbio__read_into(s->inner, dst, cap);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    return n;
}

static int handoff_read(nbio_session *s, nbio_buf *out)
{
    nbio__handoff *h = (nbio__handoff *)s;
    long n = handoff_read_into(s, h->rbuf, sizeof h->rbuf);
    if (n <= 0)
        return (int)n;
    out->data = h->rbuf;
    out->len = (size_t)n;
    return NBIO_DATA;
}

/* Sends what the HTTP session had queued. */
static int handoff_flush(nbio_session *s)
{
    return nbio__send_queued(s, &((nbio__handoff *)s)->out, true, NULL);
}

static long handoff_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    int r = handoff_flush(s);
    if (r != NBIO_DONE)
        return r < 0 ? r : 0;
    long n = nbio__writev(s->inner, iov, iovcnt);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    return n;
}

static int handoff_write(nbio_session *s, nbio_buf *buf)
{
    struct iovec iov = {(void *)buf->data, buf->len};
    long n = handoff_writev(s, &iov, 1);
    if (n < 0)
        return (int)n;
    buf->data = (const char *)buf->data + n;
    buf->len -= (size_t)n;
    return buf->len == 0 ? NBIO_DONE : NBIO_PENDING;
}

static int handoff_drive(nbio_session *s)
{
    int r = handoff_flush(s);
    return r < 0 ? r : NBIO_IDLE;
}

static unsigned handoff_interest(const nbio_session *s)
{
    const nbio__handoff *h = (const nbio__handoff *)s;
    if (h->in.len > 0 && !nbio__read_ended(s))
        return NBIO_READY;
    return h->out.len > 0 ? NBIO_WANT_WRITE : 0;
}

static void handoff_free(nbio_session *s)
{
    nbio__handoff *h = (nbio__handoff *)s;
    nbio_free(s->inner);
    nbio__bytes_free(&h->in);
    nbio__bytes_free(&h->out);
    free(h);
}

static const nbio__vtable handoff_vtable = {
    .kind = "handoff",
    .drive = handoff_drive,
    .read = handoff_read,
    .write = handoff_write,
    .read_into = handoff_read_into,
    .writev = handoff_writev,
    .flush = handoff_flush,
    .free = handoff_free,
    .interest = handoff_interest,
};

nbio_session *nbio__handoff_new(nbio_session *inner, const void *in, size_t in_len,
                                const void *out, size_t out_len)
{
    nbio__handoff *h = calloc(1, sizeof *h);
    if (h == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&h->base, &handoff_vtable, inner);
    if (nbio__bytes_append(&h->in, in, in_len) != 0 ||
        nbio__bytes_append(&h->out, out, out_len) != 0) {
        nbio_free(&h->base);
        return NULL;
    }
    return &h->base;
}
