/*
 * The liveness session: ends its session with NBIO_ETIMEDOUT when no read
 * handed out a payload for timeout_ms.
 *
 * It holds nothing but a clock: `last` is the time of construction or of
 * the last payload handed out. Every verb forwards to the inner session;
 * drive, read (and the establishment the core runs before them) look at the
 * clock, and interest reports NBIO_READY once the time is up so that a
 * waiting loop calls in to see the error. The clock stops when the read
 * side ended (the peer closed): no payload can come any more, and the write
 * side must keep working.
 */
#include <stdlib.h>

#include "core/session.h"
#include "nbio/liveness.h"

typedef struct nbio__liveness {
    nbio_session base; /* base.inner: the watched session */
    int timeout_ms;
    int64_t last; /* construction, or the last payload handed out */
} nbio__liveness;

static bool watching(const nbio__liveness *l)
{
    return l->base.error == 0 && !nbio__read_ended(&l->base);
}

static bool expired(const nbio__liveness *l, int64_t now)
{
    return watching(l) && now - l->last >= l->timeout_ms;
}

/* Ends the session when the time is up; returns the error, or 0. */
static int check(nbio__liveness *l)
{
    if (!expired(l, nbio_now_ms()))
        return 0;
    return nbio__fail(&l->base, NBIO_ETIMEDOUT, "no message for %d ms", l->timeout_ms);
}

static int live_establish(nbio_session *s)
{
    int e = check((nbio__liveness *)s);
    if (e < 0)
        return e;
    if (nbio__is_establishing(s->inner))
        return NBIO_IDLE;
    nbio__established(s);
    return NBIO_ACTIVE;
}

static int live_drive(nbio_session *s)
{
    int e = check((nbio__liveness *)s);
    return e < 0 ? e : NBIO_IDLE; /* the core drives the inner session next */
}

static int live_read(nbio_session *s, nbio_buf *out)
{
    nbio__liveness *l = (nbio__liveness *)s;
    int r = nbio_read(s->inner, out);
    if (r < 0)
        return nbio__fail_from(s, s->inner, r); /* NBIO_EPEERCLOSED: the read side only */
    if (r == NBIO_DATA) {
        l->last = nbio_now_ms();
        return r;
    }
    int e = check(l); /* bytes without a whole message (ACTIVE) do not count */
    return e < 0 ? e : r;
}

static long live_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__liveness *l = (nbio__liveness *)s;
    long n = nbio__read_into(s->inner, dst, cap);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    if (n > 0) { /* a byte session's payload is any bytes */
        l->last = nbio_now_ms();
        return n;
    }
    int e = check(l);
    return e < 0 ? e : n;
}

static int live_write(nbio_session *s, nbio_buf *buf)
{
    int r = nbio_write(s->inner, buf);
    return r < 0 ? nbio__fail_from(s, s->inner, r) : r;
}

static long live_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    long n = nbio__writev(s->inner, iov, iovcnt);
    return n < 0 ? nbio__fail_from(s, s->inner, (int)n) : n;
}

static unsigned live_interest(const nbio_session *s)
{
    /* the time is up: let the caller call in and see the error */
    return expired((const nbio__liveness *)s, nbio_now_ms()) ? NBIO_READY : 0;
}

static void live_free(nbio_session *s)
{
    nbio_free(s->inner);
    free(s);
}

static const nbio__vtable liveness_vtable = {
    .kind = "liveness",
    .writes_while_establishing = true, /* the inner session decides */
    .establish = live_establish,
    .drive = live_drive,
    .read = live_read,
    .write = live_write,
    .read_into = live_read_into,
    .writev = live_writev,
    .free = live_free,
    .interest = live_interest,
};

nbio_session *nbio_liveness_new(nbio_session *inner, int timeout_ms)
{
    if (inner == NULL)
        return NULL;
    nbio__liveness *l = calloc(1, sizeof *l);
    if (l == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&l->base, &liveness_vtable, inner);
    l->timeout_ms = timeout_ms;
    l->last = nbio_now_ms();
    if (l->base.error != 0)
        return &l->base;
    if (timeout_ms <= 0) {
        nbio__fail(&l->base, NBIO_EINVAL, "liveness timeout of %d ms: must be > 0", timeout_ms);
        return &l->base;
    }
    /* With an establish hook the core would wait for the first verb: an
     * established inner session makes this one established at once. */
    if (!nbio__is_establishing(inner))
        nbio__established(&l->base);
    return &l->base;
}

int64_t nbio_liveness_deadline(const nbio_session *s)
{
    const nbio__liveness *l = (const nbio__liveness *)nbio__find_layer(s, &liveness_vtable);
    if (l == NULL || !watching(l))
        return -1;
    return l->last + l->timeout_ms;
}
