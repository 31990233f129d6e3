/*
 * The chain: what the core does for every wrapping layer, so a layer
 * describes only its own buffer and its own goodbye.
 *
 *  - establishment: while a layer establishes, the core drives its inner
 *    session, takes over the inner's failure, and calls the layer's
 *    establish hook (TLS: the handshake); a layer without one is
 *    established as soon as its inner is (framing);
 *  - flush: the layer's own output first, then the inner's, down the chain;
 *  - goodbye: own output, own goodbye (close_notify), own output again, then
 *    the inner's shutdown, so every byte accepted goes before every goodbye;
 *  - interest: the layer's own (work buffered, output held) plus the inner's,
 *    without read interest once this session's read side ended;
 *  - fd: the inner's unless the layer has its own (session.c).
 */
#include "core/bytes.h"
#include "core/session.h"

int nbio__chain_establish(nbio_session *s)
{
    nbio_session *in = s->inner;
    assert(in != NULL && s->phase == NBIO__ESTABLISHING);
    int r = NBIO_IDLE;
    if (nbio__is_establishing(in)) {
        r = nbio_drive(in);
        if (r < 0)
            return nbio__fail_from(s, in, r);
    }
    if (in->error != 0)
        return nbio__fail_from(s, in, in->error);
    if (s->vt->establish != NULL) {
        int e = s->vt->establish(s);
        if (e < 0)
            return e;
        return e == NBIO_ACTIVE ? NBIO_ACTIVE : r;
    }
    if (!nbio__is_establishing(in)) {
        nbio__established(s);
        return NBIO_ACTIVE;
    }
    return r;
}

/* The layer's own output. */
static int own_flush(nbio_session *s)
{
    return s->vt->flush != NULL ? nbio__settle(s, s->vt->flush(s)) : NBIO_DONE;
}

int nbio__chain_flush(nbio_session *s)
{
    if (s->error != 0)
        return s->error;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = nbio__drive_step(s);
        return r < 0 ? r : NBIO_PENDING;
    }
    int r = own_flush(s);
    if (r != NBIO_DONE || s->inner == NULL)
        return r;
    r = nbio__chain_flush(s->inner);
    return r < 0 ? nbio__fail_from(s, s->inner, r) : r;
}

int nbio__chain_goodbye(nbio_session *s)
{
    if (s->error != 0)
        return s->error;
    if (s->phase == NBIO__ESTABLISHING) { /* the goodbye follows once established */
        int r = nbio__drive_step(s);
        if (r < 0)
            return r;
        if (s->phase == NBIO__ESTABLISHING)
            return NBIO_PENDING;
    }
    int r;
    switch (s->wside) {
    case NBIO__W_OPEN:
        assert(!"goodbye on an open write side");
        return NBIO_EUSAGE;
    case NBIO__W_CLOSING:
        if ((r = own_flush(s)) != NBIO_DONE)
            return r;
        if (s->vt->goodbye != NULL && (r = nbio__settle(s, s->vt->goodbye(s))) != NBIO_DONE)
            return r;
        s->wside = NBIO__W_SENT;
        /* fall through */
    case NBIO__W_SENT:
        if ((r = own_flush(s)) != NBIO_DONE)
            return r;
        if (s->inner != NULL) {
            r = nbio_shutdown(s->inner);
            if (r < 0)
                return nbio__fail_from(s, s->inner, r);
            if (r != NBIO_DONE)
                return NBIO_PENDING;
        }
        s->wside = NBIO__W_DONE;
        /* fall through */
    case NBIO__W_DONE:
        break;
    }
    return NBIO_DONE;
}

unsigned nbio__chain_interest(const nbio_session *s)
{
    unsigned own = s->vt->interest != NULL ? s->vt->interest(s) : 0;
    if (s->inner == NULL)
        return own;
    /* The inner's wants are added also when the layer is ready, so a
     * caller that masks NBIO_READY off (reads on hold while an answer is
     * pending) still waits for writability. */
    unsigned w = nbio_interest(s->inner);
    if (s->read_end != 0) /* the read side ended: only writes are left */
        w &= NBIO_WANT_WRITE;
    return w | own;
}

int nbio__send_queued(nbio_session *s, nbio__bytes *q, bool all, bool *wrote)
{
    while (q->len > 0) { /* until it is empty or the inner takes no more */
        if (nbio__is_establishing(s->inner))
            return NBIO_PENDING;
        struct iovec iov = {(void *)nbio__bytes_peek(q), q->len};
        long n = nbio__writev(s->inner, &iov, 1);
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0)
            return NBIO_PENDING;
        if (wrote != NULL)
            *wrote = true;
        nbio__bytes_rack(q, (size_t)n);
        if (!all && q->len > 0)
            return NBIO_PENDING;
    }
    nbio__bytes_shrink(q); /* a burst grew it: give it back */
    return NBIO_DONE;
}

int nbio__drive_queued(nbio_session *s, nbio__bytes *q)
{
    bool wrote = false;
    int r = nbio__send_queued(s, q, true, &wrote);
    return r < 0 ? r : wrote ? NBIO_ACTIVE : NBIO_IDLE;
}
