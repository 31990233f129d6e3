/*
 * Internal: the session base struct and the layer vtable.
 *
 * Every layer embeds `struct nbio_session` as its first member and provides
 * a vtable. The public verbs in session.c check the status, call the
 * vtable and turn a negative result into a terminated session.
 */
#ifndef NBIO__SESSION_H
#define NBIO__SESSION_H

#include <stdarg.h>
#include <stdbool.h>
#include <sys/uio.h>

#include "nbio/nbio.h"

#define NBIO__DETAIL_MAX 256

typedef struct nbio__vtable {
    const char *kind;
    /* Return as the public verbs do. read and write may be NULL for
     * sessions that carry no bytes (listeners): NBIO_EUNSUPPORTED. */
    int (*drive)(nbio_session *s);
    int (*read)(nbio_session *s, nbio_buf *out);
    int (*write)(nbio_session *s, nbio_buf *buf);
    /* Optional: read straight into the caller's memory. Returns bytes read
     * (> 0), NBIO_IDLE (0 bytes, would-block) or a negative error. A byte
     * session that implements it lets message layers avoid a copy. */
    long (*read_into)(nbio_session *s, void *dst, size_t cap);
    /* Optional: gather write. Returns bytes accepted (>= 0) or an error. */
    long (*writev)(nbio_session *s, const struct iovec *iov, int iovcnt);
    /* Returns NBIO_DONE when no output is buffered, NBIO_PENDING otherwise. */
    int (*flush)(nbio_session *s);
    /* Sends the goodbye after pending output: NBIO_DONE / NBIO_PENDING. */
    int (*shutdown)(nbio_session *s);
    void (*free)(nbio_session *s);
    int (*fd)(const nbio_session *s);
    unsigned (*interest)(const nbio_session *s);
} nbio__vtable;

struct nbio_session {
    const nbio__vtable *vt;
    nbio_session *inner; /* the session this layer wraps, NULL for transports */
    nbio_state state;
    int error;          /* first error that ended the session, 0 if none */
    bool write_closed;  /* shutdown/close started: no new writes */
    bool goodbye_done;  /* the goodbye is out */
    bool closing;       /* nbio_close() called */
    void *data;                 /* the caller's pointer, nbio_set_data() */
    struct nbio__pollreg *preg; /* a poller's record of this session, or NULL */
    char detail[NBIO__DETAIL_MAX];
};

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

/* Initialises the base part of a session. */
void nbio__session_init(nbio_session *s, const nbio__vtable *vt, nbio_state state);

/* Ends the session with err (negative) and a printf-style detail. The first
 * error wins. Returns err, so layers can `return nbio__fail(...)`. */
int nbio__fail(nbio_session *s, int err, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Same as nbio__fail, taking the detail of an inner session that failed. */
int nbio__fail_from(nbio_session *s, const nbio_session *inner, int err);

/* True when writes are still allowed: healthy, or only the read side ended
 * (the peer half-closed). */
static inline bool nbio__can_write(const nbio_session *s)
{
    return s->error == 0 || s->error == NBIO_EPEERCLOSED;
}

/* Byte helpers every layer may use on an inner session: they go through the
 * inner vtable's fast paths when present. */
long nbio__read_into(nbio_session *inner, void *dst, size_t cap);
long nbio__writev(nbio_session *inner, const struct iovec *iov, int iovcnt);

/* Maps errno to a negative error, never returning 0. */
int nbio__errno(int e);

#endif /* NBIO__SESSION_H */
