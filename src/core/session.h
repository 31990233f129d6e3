/*
 * Internal: the session base struct, the layer vtable and the chain.
 *
 * Every layer embeds `struct nbio_session` as its first member and provides
 * a vtable. The public verbs in session.c check the status, call the
 * vtable and turn a negative result into a terminated session. Wrapping
 * layers (base.inner != NULL) describe only their own buffer and their own
 * goodbye: the core (chain.c) mirrors the inner session's establishment,
 * flushes and shuts down the inner after the layer, forwards the fd and
 * composes interest. docs/layers.md is the guide to writing a layer.
 */
#ifndef NBIO__SESSION_H
#define NBIO__SESSION_H

#include <assert.h>
#include <stdarg.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "nbio/nbio.h"

#define NBIO__DETAIL_MAX 256

typedef struct nbio__vtable {
    const char *kind;
    /* Wrapping layers: true when write() may accept data while the session
     * is establishing (framing buffers frames); false makes the core answer
     * NBIO_PENDING until established (TLS). Transports handle it themselves. */
    bool writes_while_establishing;
    /* Optional, wrapping layers only: the layer's own establishment. The
     * core calls it while the session is establishing, after driving the
     * inner session (which may still be establishing: check with
     * nbio__is_establishing()). Calls nbio__established() when done.
     * Returns NBIO_ACTIVE / NBIO_IDLE or an error. NULL: established as soon
     * as the inner session is. */
    int (*establish)(nbio_session *s);
    /* Optional: makes progress (transports: connect; layers: send their own
     * buffered output). The core flushes nothing by itself on drive. NULL is
     * NBIO_IDLE. Returns as nbio_drive. */
    int (*drive)(nbio_session *s);
    /* Return as the public verbs do. read and write may be NULL for
     * sessions that carry no bytes (listeners): NBIO_EUNSUPPORTED. */
    int (*read)(nbio_session *s, nbio_buf *out);
    int (*write)(nbio_session *s, nbio_buf *buf);
    /* Optional: read straight into the caller's memory. Returns bytes read
     * (> 0), NBIO_IDLE (0 bytes, would-block) or a negative error. A byte
     * session that implements it lets message layers avoid a copy. */
    long (*read_into)(nbio_session *s, void *dst, size_t cap);
    /* Optional: gather write. Returns bytes accepted (>= 0) or an error. */
    long (*writev)(nbio_session *s, const struct iovec *iov, int iovcnt);
    /* Optional: sends the layer's own buffered output (not the inner's: the
     * core flushes that next). NBIO_DONE when the layer holds none,
     * NBIO_PENDING otherwise, or an error. NULL: the layer buffers nothing. */
    int (*flush)(nbio_session *s);
    /* Optional: queues or sends the layer's own goodbye (TLS close_notify,
     * TCP FIN) once its output is flushed. NBIO_DONE / NBIO_PENDING / error.
     * The core calls it until NBIO_DONE, flushes the layer again, then shuts
     * down the inner session. NULL: the layer has no goodbye of its own. */
    int (*goodbye)(nbio_session *s);
    void (*free)(nbio_session *s);
    /* Optional: the fd to wait on. NULL: the inner session's, or -1. */
    int (*fd)(const nbio_session *s);
    /* The layer's own interest: NBIO_READY when it holds work to hand out
     * (or an end to report), NBIO_WANT_WRITE while it holds output.
     * Transports return their whole interest. For wrapping layers the core
     * adds the inner session's interest (without NBIO_WANT_READ once this
     * session's read side ended). NULL is 0. */
    unsigned (*interest)(const nbio_session *s);
} nbio__vtable;

/* The lifecycle of a session, apart from its two directions. */
typedef enum nbio__phase {
    NBIO__ESTABLISHING, /* connecting or handshaking */
    NBIO__OPEN,         /* established */
    NBIO__ENDED         /* an error ended both directions, or close finished */
} nbio__phase;

/* The write direction. Only moves forward. */
typedef enum nbio__wside {
    NBIO__W_OPEN,    /* writes accepted */
    NBIO__W_CLOSING, /* shutdown/close started: output drains, then the goodbye */
    NBIO__W_SENT,    /* this layer's goodbye went out; the inner's follows */
    NBIO__W_DONE     /* the goodbye of the whole chain is out */
} nbio__wside;

struct nbio_session {
    const nbio__vtable *vt;
    nbio_session *inner; /* the session this layer wraps, NULL for transports */
    nbio__phase phase;
    /* read direction: 0 while open, else what ended it (NBIO_EPEERCLOSED
     * for a clean end of stream, or the error that ended the session) */
    int read_end;
    nbio__wside wside;
    bool closing;               /* nbio_close(): mark closed once the goodbye is out */
    int error;                  /* first error that ended both directions, or 0 */
    void *data;                 /* the caller's pointer, nbio_set_data() */
    struct nbio__pollreg *preg; /* a poller's record of this session, or NULL */
    char detail[NBIO__DETAIL_MAX];
};

/* Initialises the base part of a session. */
void nbio__session_init(nbio_session *s, const nbio__vtable *vt, bool establishing);

/* Initialises a wrapping layer over inner (which it now owns): takes over
 * the inner's failure, and is established at once when the inner is and the
 * layer has no establish hook. */
void nbio__layer_init(nbio_session *s, const nbio__vtable *vt, nbio_session *inner);

/* The session finished establishing (a connect completed, a handshake ended). */
static inline void nbio__established(nbio_session *s)
{
    if (s->phase == NBIO__ESTABLISHING)
        s->phase = NBIO__OPEN;
}

static inline bool nbio__is_establishing(const nbio_session *s)
{
    return s->phase == NBIO__ESTABLISHING && s->error == 0;
}

/* Ends the session with err (negative) and a printf-style detail.
 * NBIO_EPEERCLOSED ends the read direction only; any other error ends both.
 * The first error wins. Returns err, so layers can `return nbio__fail(...)`. */
int nbio__fail(nbio_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Ends the read direction only, with err and a detail: writes, flush and
 * close go on (a server that refused a request still sends its answer). */
int nbio__end_read(nbio_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same as nbio__fail, taking the detail of an inner session that failed. */
int nbio__fail_from(nbio_session *s, const nbio_session *inner, int err);

/* True when writes are still allowed: no error ended the session (the read
 * side may have ended: the peer half-closed). */
static inline bool nbio__can_write(const nbio_session *s)
{
    return s->error == 0;
}

/* True when the session's write direction is still open (no shutdown). */
static inline bool nbio__write_open(const nbio_session *s)
{
    return s->error == 0 && s->wside == NBIO__W_OPEN;
}

/* True when the read direction ended (peer close or error). */
static inline bool nbio__read_ended(const nbio_session *s)
{
    return s->read_end != 0;
}

/* Byte helpers every layer may use on an inner session: they go through the
 * inner vtable's fast paths when present, and drive an establishing inner
 * layer first. */
long nbio__read_into(nbio_session *inner, void *dst, size_t cap);
long nbio__writev(nbio_session *inner, const struct iovec *iov, int iovcnt);

/* Returns the first session of the chain starting at s (s itself included)
 * whose vtable is vt, or NULL. */
nbio_session *nbio__find_layer(const nbio_session *s, const nbio__vtable *vt);

/* ---- the chain (chain.c): what the core does for wrapping layers ------- */

/* Advances the establishment of a wrapping layer: drives the inner session,
 * takes over its failure, calls the layer's establish hook. Returns
 * NBIO_ACTIVE / NBIO_IDLE or an error. */
int nbio__chain_establish(nbio_session *s);

/* One non-blocking flush of the whole chain from s down: NBIO_DONE /
 * NBIO_PENDING / error. */
int nbio__chain_flush(nbio_session *s);

/* One step of the goodbye of the whole chain from s down (the session's
 * write side must be closing): NBIO_DONE / NBIO_PENDING / error. */
int nbio__chain_goodbye(nbio_session *s);

/* Sends a layer's queued output q to its inner session: one write, or with
 * all as many as the inner takes now. NBIO_DONE when q is empty,
 * NBIO_PENDING, or an error (the layer fails with the inner's). *wrote
 * (may be NULL) is set when bytes went out. */
struct nbio__bytes;
int nbio__send_queued(nbio_session *s, struct nbio__bytes *q, bool all, bool *wrote);

/* A layer's drive that sends its queue q (all it takes): NBIO_ACTIVE when
 * bytes went out, NBIO_IDLE, or an error. */
int nbio__drive_queued(nbio_session *s, struct nbio__bytes *q);

/* The interest of s: its own composed with its inner's. */
unsigned nbio__chain_interest(const nbio_session *s);

/* A layer's typed read (nbio_http_read_request, nbio_ws_read...): the
 * checks of nbio_read() around read(s, out), for sessions of vtable vt. */
int nbio__typed_read(nbio_session *s, const nbio__vtable *vt,
                     int (*read)(nbio_session *s, void *out), void *out);

/* The checks of nbio_write() before a layer's write (also for typed writes
 * such as nbio_ws_write): 1 to go on, NBIO_PENDING while establishing
 * (unless the layer takes writes then), NBIO_ECLOSED after shutdown, or the
 * session's error. */
int nbio__write_prologue(nbio_session *s);

/* One drive of s without progressing its goodbye: the layer's
 * establishment, its own drive, then its inner session's drive. */
int nbio__drive_step(nbio_session *s);

/* Records a failure the layer returned without describing it. */
int nbio__settle(nbio_session *s, int r);

/* Poller hooks (src/poll): a verb ran on a registered session, so its
 * interest may have changed; the session is being freed. */
struct nbio__pollreg;
void nbio__poll_touch(struct nbio__pollreg *r);
void nbio__poll_forget(struct nbio__pollreg *r);

static inline void nbio__touch(nbio_session *s)
{
    if (s->preg != NULL)
        nbio__poll_touch(s->preg);
}

/* Maps errno to a negative error, never returning 0. */
int nbio__errno(int e);

#endif /* NBIO__SESSION_H */
