/*
 * The heartbeat session: writes a message of the caller's through the inner
 * session when nothing was written for interval_ms.
 *
 * State:
 *  - `last`: the time of construction or of the last successful write
 *    (the caller's or a heartbeat);
 *  - `owed`: a heartbeat is under way; `rest` is what the inner session has
 *    not accepted yet (`started` once it took any of it). Until it is done,
 *    the caller's writes answer NBIO_PENDING with their buffer untouched, so
 *    the two never interleave;
 *  - `partial`: the caller's own last write went pending part way (a byte
 *    write, a streamed frame): no heartbeat may start until it is finished.
 *
 * A heartbeat starts from drive and read only; its rest is also pushed by
 * write and flush (so a shutdown finishes it before the goodbye).
 *
 * WebSocket (planned) will want a ping control frame instead of a data
 * message: that needs a way to ask the inner layer for a control message,
 * e.g. a hook in the vtable or a WebSocket-specific constructor that hands
 * the heartbeat to the WebSocket layer. Not built yet.
 */
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "nbio/liveness.h"

typedef struct nbio__heartbeat {
    nbio_session base; /* base.inner: the session the heartbeats go to */
    int interval_ms;
    int64_t last;       /* construction, or the last successful write */
    unsigned char *msg; /* the caller's message (a copy), NULL when len is 0 */
    size_t len;
    bool owed;          /* a heartbeat is under way */
    bool started;       /* the inner session accepted some of it */
    nbio_buf rest;      /* its part not yet accepted */
    bool partial;       /* the caller's last write went pending part way */
} nbio__heartbeat;

/* True when a heartbeat may start now (apart from the time). */
static bool can_start(const nbio__heartbeat *h)
{
    return h->base.phase == NBIO__OPEN && nbio__write_open(&h->base) && !h->owed && !h->partial;
}

static bool due(const nbio__heartbeat *h, int64_t now)
{
    return can_start(h) && now - h->last >= h->interval_ms;
}

/* Pushes the heartbeat under way: NBIO_DONE when it is out, NBIO_PENDING,
 * or an error. */
static int push(nbio__heartbeat *h)
{
    nbio_session *s = &h->base;
    size_t before = h->rest.len;
    int r = nbio_write(s->inner, &h->rest);
    if (r < 0)
        return nbio__fail_from(s, s->inner, r);
    if (h->rest.len != before)
        h->started = true;
    if (r != NBIO_DONE)
        return NBIO_PENDING;
    h->owed = false;
    h->started = false;
    h->last = nbio_now_ms();
    return NBIO_DONE;
}

/* Starts a heartbeat when one is due, or pushes the one under way.
 * Returns NBIO_ACTIVE when a heartbeat went out or made progress,
 * NBIO_IDLE, or an error. */
static int step(nbio__heartbeat *h)
{
    if (!h->owed) {
        if (!due(h, nbio_now_ms()))
            return NBIO_IDLE;
        h->owed = true;
        h->started = false;
        h->rest.data = h->msg != NULL ? (const void *)h->msg : (const void *)"";
        h->rest.len = h->len;
    } else if (h->base.phase != NBIO__OPEN) {
        return NBIO_IDLE;
    }
    size_t before = h->rest.len;
    int r = push(h);
    if (r < 0)
        return r;
    return r == NBIO_DONE || h->rest.len != before ? NBIO_ACTIVE : NBIO_IDLE;
}

static int hb_drive(nbio_session *s)
{
    return step((nbio__heartbeat *)s); /* the core drives the inner session next */
}

static int hb_read(nbio_session *s, nbio_buf *out)
{
    int r = step((nbio__heartbeat *)s);
    if (r < 0)
        return r;
    r = nbio_read(s->inner, out);
    return r < 0 ? nbio__fail_from(s, s->inner, r) : r; /* NBIO_EPEERCLOSED: the read side only */
}

static long hb_read_into(nbio_session *s, void *dst, size_t cap)
{
    long n = nbio__read_into(s->inner, dst, cap);
    return n < 0 ? nbio__fail_from(s, s->inner, (int)n) : n;
}

/* Records a write of the caller's that returned r and left `left` of
 * `total` bytes. */
static void wrote(nbio__heartbeat *h, int r, size_t total, size_t left)
{
    if (r == NBIO_DONE) {
        h->last = nbio_now_ms();
        h->partial = false;
    } else if (left != total) {
        h->last = nbio_now_ms();
        h->partial = true;
    }
}

static int hb_write(nbio_session *s, nbio_buf *buf)
{
    nbio__heartbeat *h = (nbio__heartbeat *)s;
    if (h->owed) { /* the heartbeat under way goes first, whole */
        int r = push(h);
        if (r != NBIO_DONE)
            return r;
    }
    size_t total = buf->len;
    int r = nbio_write(s->inner, buf);
    if (r < 0)
        return nbio__fail_from(s, s->inner, r);
    wrote(h, r, total, buf->len);
    return r;
}

static long hb_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    nbio__heartbeat *h = (nbio__heartbeat *)s;
    if (h->owed) {
        int r = push(h);
        if (r != NBIO_DONE)
            return r < 0 ? r : 0;
    }
    size_t total = 0;
    for (int i = 0; i < iovcnt; i++)
        total += iov[i].iov_len;
    long n = nbio__writev(s->inner, iov, iovcnt);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    wrote(h, (size_t)n == total ? NBIO_DONE : NBIO_PENDING, total, total - (size_t)n);
    return n;
}

/* Own output: the heartbeat under way. On shutdown one that has not
 * started is dropped; one that has is finished before the goodbye. */
static int hb_flush(nbio_session *s)
{
    nbio__heartbeat *h = (nbio__heartbeat *)s;
    if (!h->owed)
        return NBIO_DONE;
    if (s->wside != NBIO__W_OPEN && !h->started) {
        h->owed = false;
        return NBIO_DONE;
    }
    return push(h);
}

static unsigned hb_interest(const nbio_session *s)
{
    const nbio__heartbeat *h = (const nbio__heartbeat *)s;
    if (h->owed)
        return NBIO_WANT_WRITE;
    return due(h, nbio_now_ms()) ? NBIO_READY : 0;
}

static void hb_free(nbio_session *s)
{
    nbio__heartbeat *h = (nbio__heartbeat *)s;
    nbio_free(s->inner);
    free(h->msg);
    free(h);
}

static const nbio__vtable heartbeat_vtable = {
    .kind = "heartbeat",
    .writes_while_establishing = true, /* the inner session decides */
    .drive = hb_drive,
    .read = hb_read,
    .write = hb_write,
    .read_into = hb_read_into,
    .writev = hb_writev,
    .flush = hb_flush,
    .free = hb_free,
    .interest = hb_interest,
};

nbio_session *nbio_heartbeat_new(nbio_session *inner, int interval_ms, const void *msg,
                                 size_t len)
{
    if (inner == NULL)
        return NULL;
    nbio__heartbeat *h = calloc(1, sizeof *h);
    if (h == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&h->base, &heartbeat_vtable, inner);
    h->interval_ms = interval_ms;
    h->last = nbio_now_ms();
    if (h->base.error != 0)
        return &h->base;
    if (interval_ms <= 0)
        nbio__fail(&h->base, NBIO_EINVAL, "heartbeat interval of %d ms: must be > 0",
                   interval_ms);
    else if (msg == NULL && len > 0)
        nbio__fail(&h->base, NBIO_EINVAL, "heartbeat message: NULL with a length of %zu", len);
    else if (len > 0) {
        h->msg = malloc(len);
        if (h->msg == NULL) {
            nbio_free(&h->base);
            return NULL;
        }
        memcpy(h->msg, msg, len);
        h->len = len;
    }
    return &h->base;
}

int64_t nbio_heartbeat_deadline(const nbio_session *s)
{
    const nbio__heartbeat *h = (const nbio__heartbeat *)nbio__find_layer(s, &heartbeat_vtable);
    if (h == NULL || !can_start(h))
        return -1;
    return h->last + h->interval_ms;
}
