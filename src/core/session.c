/* The public session verbs: status checks around the layer vtables. */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/session.h"

const char *nbio_version(void)
{
    return NBIO_VERSION_STRING;
}

int64_t nbio_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

void nbio__session_init(nbio_session *s, const nbio__vtable *vt, bool establishing)
{
    memset(s, 0, sizeof *s);
    s->vt = vt;
    s->phase = establishing ? NBIO__ESTABLISHING : NBIO__OPEN;
}

void nbio__layer_init(nbio_session *s, const nbio__vtable *vt, nbio_session *inner)
{
    assert(inner != NULL);
    nbio__session_init(s, vt, true);
    s->inner = inner;
    if (inner->error != 0)
        nbio__fail_from(s, inner, inner->error); /* say why the inner session failed */
    else if (vt->establish == NULL && !nbio__is_establishing(inner))
        nbio__established(s);
}

int nbio__errno(int e)
{
    return e > 0 ? -e : NBIO_EIO;
}

static int fail_v(nbio_session *s, int err, const char *fmt, va_list ap)
{
    assert(err < 0);
    if (s->error != 0)
        return err; /* the first error that ended the session wins */
    if (err == NBIO_EPEERCLOSED) {
        if (s->read_end != 0)
            return err;
        s->read_end = err; /* the read direction only */
    } else {
        s->error = err;
        s->phase = NBIO__ENDED;
        if (s->read_end == 0)
            s->read_end = err;
    }
    if (fmt != NULL)
        vsnprintf(s->detail, sizeof s->detail, fmt, ap);
    else
        snprintf(s->detail, sizeof s->detail, "%s", nbio_strerror(err));
    return err;
}

int nbio__fail(nbio_session *s, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fail_v(s, err, fmt, ap);
    va_end(ap);
    return err;
}

int nbio__end_read(nbio_session *s, int err, const char *fmt, ...)
{
    assert(err < 0);
    if (s->error != 0 || s->read_end != 0)
        return err;
    s->read_end = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(s->detail, sizeof s->detail, fmt, ap);
    va_end(ap);
    return err;
}

int nbio__fail_from(nbio_session *s, const nbio_session *inner, int err)
{
    const char *d = inner != NULL && inner->detail[0] ? inner->detail : nbio_strerror(err);
    return nbio__fail(s, err, "%s", d);
}

int nbio__settle(nbio_session *s, int r)
{
    if (r < 0 && s->error == 0 && s->read_end != r) /* not the end of the read side already */
        nbio__fail(s, r, "%s: %s", s->vt->kind, nbio_strerror(r));
    return r;
}

enum nbio_status nbio_status(const nbio_session *s)
{
    if (s == NULL || s->error != 0 || s->read_end != 0)
        return NBIO_STATUS_TERMINATED;
    return s->phase == NBIO__ESTABLISHING ? NBIO_STATUS_ESTABLISHING : NBIO_STATUS_ESTABLISHED;
}

int nbio_error(const nbio_session *s)
{
    if (s == NULL)
        return NBIO_EINVAL;
    return s->error != 0 ? s->error : s->read_end;
}

const char *nbio_detail(const nbio_session *s)
{
    return s != NULL ? s->detail : "no session";
}

const char *nbio_kind(const nbio_session *s)
{
    return s != NULL ? s->vt->kind : "none";
}

void nbio_set_data(nbio_session *s, void *data)
{
    if (s != NULL)
        s->data = data;
}

void *nbio_data(const nbio_session *s)
{
    return s != NULL ? s->data : NULL;
}

/* One drive step without the goodbye: the layer's establishment, its own
 * drive, then the inner session's. */
int nbio__drive_step(nbio_session *s)
{
    int r = NBIO_IDLE;
    if (s->inner != NULL && s->phase == NBIO__ESTABLISHING) {
        r = nbio__settle(s, nbio__chain_establish(s));
        if (r < 0 || s->phase == NBIO__ESTABLISHING)
            return r;
    }
    if (s->vt->drive != NULL) {
        int d = nbio__settle(s, s->vt->drive(s));
        if (d < 0)
            return d;
        if (d == NBIO_ACTIVE)
            r = NBIO_ACTIVE;
    }
    if (s->inner != NULL && s->phase == NBIO__OPEN) {
        int d = nbio_drive(s->inner);
        if (d < 0)
            return nbio__fail_from(s, s->inner, d);
        if (d == NBIO_ACTIVE)
            r = NBIO_ACTIVE;
    }
    return r;
}

static void mark_closed(nbio_session *s)
{
    if (s->error == 0) {
        s->error = NBIO_ECLOSED;
        s->phase = NBIO__ENDED;
        if (s->read_end == 0)
            s->read_end = NBIO_ECLOSED;
        snprintf(s->detail, sizeof s->detail, "closed locally");
    }
}

/* Continues a started shutdown/close. */
static int progress_goodbye(nbio_session *s)
{
    assert(s->wside != NBIO__W_OPEN);
    int r = nbio__settle(s, nbio__chain_goodbye(s));
    if (r == NBIO_DONE && s->closing)
        mark_closed(s);
    return r;
}

int nbio_drive(nbio_session *s)
{
    if (s == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (s->error != 0)
        return s->error;
    int r = nbio__drive_step(s);
    if (r >= 0 && s->wside != NBIO__W_OPEN && s->wside != NBIO__W_DONE) {
        int g = progress_goodbye(s);
        if (g < 0)
            return g;
        if (g == NBIO_DONE)
            r = NBIO_ACTIVE;
    }
    return r;
}

int nbio_read(nbio_session *s, nbio_buf *out)
{
    if (s == NULL || out == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (s->error != 0 || s->read_end != 0)
        return s->error != 0 ? s->error : s->read_end;
    if (s->vt->read == NULL)
        return NBIO_EUNSUPPORTED; /* a usage error: the session lives on */
    int est = NBIO_IDLE;
    if (s->inner != NULL && s->phase == NBIO__ESTABLISHING) {
        est = nbio__settle(s, nbio__chain_establish(s));
        if (est < 0 || s->phase == NBIO__ESTABLISHING)
            return est;
    }
    int r = nbio__settle(s, s->vt->read(s, out));
    return r == NBIO_IDLE ? est : r;
}

int nbio__typed_read(nbio_session *s, const nbio__vtable *vt,
                     int (*read)(nbio_session *s, void *out), void *out)
{
    if (s == NULL || out == NULL)
        return NBIO_EINVAL;
    if (s->vt != vt)
        return NBIO_EUNSUPPORTED;
    nbio__touch(s);
    if (s->error != 0 || s->read_end != 0)
        return s->error != 0 ? s->error : s->read_end;
    if (s->inner != NULL && s->phase == NBIO__ESTABLISHING) {
        int r = nbio__settle(s, nbio__chain_establish(s));
        if (r < 0 || s->phase == NBIO__ESTABLISHING)
            return r;
    }
    return nbio__settle(s, read(s, out));
}

int nbio__write_prologue(nbio_session *s)
{
    nbio__touch(s);
    if (s->error != 0)
        return s->error;
    if (s->wside != NBIO__W_OPEN)
        return NBIO_ECLOSED;
    if (s->inner != NULL && s->phase == NBIO__ESTABLISHING) {
        int r = nbio__settle(s, nbio__chain_establish(s));
        if (r < 0)
            return r;
        if (s->phase == NBIO__ESTABLISHING && !s->vt->writes_while_establishing)
            return NBIO_PENDING;
    }
    return 1;
}

int nbio_write(nbio_session *s, nbio_buf *buf)
{
    if (s == NULL || buf == NULL || (buf->data == NULL && buf->len != 0))
        return NBIO_EINVAL;
    int r = nbio__write_prologue(s);
    if (r != 1)
        return r;
    if (s->vt->write == NULL)
        return NBIO_EUNSUPPORTED;
    /* An empty buffer still goes to the layer: an empty message is a message. */
    return nbio__settle(s, s->vt->write(s, buf));
}

long nbio_write_some(nbio_session *s, const void *data, size_t len)
{
    nbio_buf b = {data, len};
    int r = nbio_write(s, &b);
    return r < 0 ? r : (long)(len - b.len);
}

/* Sleeps until s's fd is ready for what it wants, at most ms. */
static void wait_one(nbio_session *s, int ms)
{
    nbio_session *one[1] = {s};
    (void)nbio_wait(one, 1, ms);
}

static int remaining_ms(int64_t deadline)
{
    if (deadline < 0)
        return -1;
    int64_t left = deadline - nbio_now_ms();
    return left > 0 ? (int)(left > 1000000 ? 1000000 : left) : 0;
}

int nbio_flush(nbio_session *s, int timeout_ms)
{
    if (s == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    int64_t deadline = timeout_ms < 0 ? -1 : nbio_now_ms() + timeout_ms;
    for (;;) {
        if (s->error != 0)
            return s->error;
        int r;
        if (s->phase == NBIO__ESTABLISHING) {
            r = nbio_drive(s);
        } else {
            r = nbio__settle(s, nbio__chain_flush(s));
            if (r == NBIO_DONE)
                return NBIO_DONE;
        }
        if (r < 0)
            return r;
        int left = remaining_ms(deadline);
        if (left == 0)
            return NBIO_PENDING;
        wait_one(s, left < 0 || left > 50 ? 50 : left);
    }
}

int nbio_shutdown(nbio_session *s)
{
    if (s == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (s->error != 0)
        return s->error == NBIO_ECLOSED ? NBIO_DONE : s->error;
    if (s->wside == NBIO__W_OPEN)
        s->wside = NBIO__W_CLOSING;
    return progress_goodbye(s);
}

int nbio_close(nbio_session *s)
{
    if (s == NULL)
        return NBIO_EINVAL;
    if (s->error == NBIO_ECLOSED)
        return NBIO_DONE;
    s->closing = true;
    return nbio_shutdown(s);
}

void nbio_free(nbio_session *s)
{
    if (s == NULL)
        return;
    if (s->preg != NULL)
        nbio__poll_forget(s->preg);
    s->vt->free(s);
}

int nbio_fd(const nbio_session *s)
{
    if (s == NULL)
        return -1;
    if (s->vt->fd != NULL)
        return s->vt->fd(s);
    return s->inner != NULL ? nbio_fd(s->inner) : -1;
}

unsigned nbio_interest(const nbio_session *s)
{
    if (s == NULL)
        return 0;
    if (s->error != 0)
        return NBIO_READY; /* let the caller see the error */
    return nbio__chain_interest(s);
}

nbio_session *nbio__find_layer(const nbio_session *s, const nbio__vtable *vt)
{
    while (s != NULL && s->vt != vt)
        s = s->inner;
    return (nbio_session *)s;
}

long nbio__read_into(nbio_session *inner, void *dst, size_t cap)
{
    if (inner->error != 0 || inner->read_end != 0)
        return inner->error != 0 ? inner->error : inner->read_end;
    if (inner->vt->read_into == NULL)
        return nbio__fail(inner, NBIO_EUNSUPPORTED,
                          "%s: session cannot carry a message layer (no read_into)",
                          inner->vt->kind);
    if (inner->inner != NULL && inner->phase == NBIO__ESTABLISHING) {
        int r = nbio__settle(inner, nbio__chain_establish(inner));
        if (r < 0 || inner->phase == NBIO__ESTABLISHING)
            return r < 0 ? r : NBIO_IDLE;
    }
    long r = inner->vt->read_into(inner, dst, cap);
    if (r < 0)
        nbio__settle(inner, (int)r);
    return r;
}

long nbio__writev(nbio_session *inner, const struct iovec *iov, int iovcnt)
{
    if (inner->error != 0)
        return inner->error;
    if (inner->wside != NBIO__W_OPEN)
        return NBIO_ECLOSED;
    if (inner->inner != NULL && inner->phase == NBIO__ESTABLISHING) {
        int r = nbio__settle(inner, nbio__chain_establish(inner));
        if (r < 0 || inner->phase == NBIO__ESTABLISHING)
            return r < 0 ? r : 0;
    }
    if (inner->vt->writev != NULL) {
        long r = inner->vt->writev(inner, iov, iovcnt);
        if (r < 0)
            nbio__settle(inner, (int)r);
        return r;
    }
    long total = 0;
    for (int i = 0; i < iovcnt; i++) {
        nbio_buf b = {iov[i].iov_base, iov[i].iov_len};
        if (b.len == 0)
            continue;
        int r = nbio_write(inner, &b);
        if (r < 0)
            return total > 0 ? total : r;
        total += (long)(iov[i].iov_len - b.len);
        if (r == NBIO_PENDING)
            break;
    }
    return total;
}
