/* The public session verbs: status checks around the layer vtables. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
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

void nbio__session_init(nbio_session *s, const nbio__vtable *vt, nbio_state state)
{
    memset(s, 0, sizeof *s);
    s->vt = vt;
    s->state = state;
}

int nbio__errno(int e)
{
    return e > 0 ? -e : NBIO_EIO;
}

static int fail_v(nbio_session *s, int err, const char *fmt, va_list ap)
{
    if (s->error != 0 && s->error != NBIO_EPEERCLOSED)
        return err; /* the first real error wins */
    if (s->error == NBIO_EPEERCLOSED && err == NBIO_EPEERCLOSED)
        return err;
    s->error = err;
    s->state = NBIO_TERMINATED;
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

int nbio__fail_from(nbio_session *s, const nbio_session *inner, int err)
{
    const char *d = inner != NULL && inner->detail[0] ? inner->detail : nbio_strerror(err);
    return nbio__fail(s, err, "%s", d);
}

/* Records a failure the layer returned without describing it. */
static int settle(nbio_session *s, int r)
{
    if (r < 0 && (s->error == 0 || (s->error == NBIO_EPEERCLOSED && r != NBIO_EPEERCLOSED)))
        nbio__fail(s, r, "%s: %s", s->vt->kind, nbio_strerror(r));
    return r;
}

nbio_state nbio_status(const nbio_session *s)
{
    return s != NULL ? s->state : NBIO_TERMINATED;
}

int nbio_error(const nbio_session *s)
{
    return s != NULL ? s->error : NBIO_EINVAL;
}

const char *nbio_detail(const nbio_session *s)
{
    return s != NULL ? s->detail : "no session";
}

const char *nbio_kind(const nbio_session *s)
{
    return s != NULL ? s->vt->kind : "none";
}

static void mark_closed(nbio_session *s)
{
    if (s->error == 0 || s->error == NBIO_EPEERCLOSED) {
        s->error = NBIO_ECLOSED;
        s->state = NBIO_TERMINATED;
        snprintf(s->detail, sizeof s->detail, "closed locally");
    }
}

/* Continues a started shutdown/close. */
static int progress_goodbye(nbio_session *s)
{
    int r = s->goodbye_done ? NBIO_DONE : settle(s, s->vt->shutdown(s));
    if (r == NBIO_DONE) {
        s->goodbye_done = true;
        if (s->closing)
            mark_closed(s);
    }
    return r;
}

int nbio_drive(nbio_session *s)
{
    if (s == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (!nbio__can_write(s))
        return s->error;
    int r = settle(s, s->vt->drive(s));
    if (r >= 0 && s->write_closed && !s->goodbye_done) {
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
    if (s->error != 0)
        return s->error;
    if (s->vt->read == NULL)
        return NBIO_EUNSUPPORTED; /* a usage error: the session lives on */
    return settle(s, s->vt->read(s, out));
}

int nbio_write(nbio_session *s, nbio_buf *buf)
{
    if (s == NULL || buf == NULL || (buf->data == NULL && buf->len != 0))
        return NBIO_EINVAL;
    nbio__touch(s);
    if (!nbio__can_write(s))
        return s->error;
    if (s->write_closed)
        return NBIO_ECLOSED;
    if (s->vt->write == NULL)
        return NBIO_EUNSUPPORTED;
    /* An empty buffer still goes to the layer: an empty message is a message. */
    return settle(s, s->vt->write(s, buf));
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
        if (!nbio__can_write(s))
            return s->error;
        int r;
        if (s->state == NBIO_ESTABLISHING) {
            r = nbio_drive(s);
        } else {
            r = settle(s, s->vt->flush(s));
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
    if (!nbio__can_write(s))
        return s->error == NBIO_ECLOSED ? NBIO_DONE : s->error;
    if (s->goodbye_done)
        return progress_goodbye(s);
    if (s->state == NBIO_ESTABLISHING) {
        int r = nbio_drive(s);
        if (r < 0)
            return r;
        if (s->state == NBIO_ESTABLISHING) {
            s->write_closed = true; /* the goodbye follows once established */
            return NBIO_PENDING;
        }
    }
    s->write_closed = true;
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

void nbio_set_data(nbio_session *s, void *data)
{
    if (s != NULL)
        s->data = data;
}

void *nbio_data(const nbio_session *s)
{
    return s != NULL ? s->data : NULL;
}

int nbio_fd(const nbio_session *s)
{
    return s != NULL ? s->vt->fd(s) : -1;
}

unsigned nbio_interest(const nbio_session *s)
{
    if (s == NULL)
        return 0;
    if (s->state == NBIO_TERMINATED && !nbio__can_write(s))
        return NBIO_READY; /* let the caller see the error */
    return s->vt->interest(s);
}

int nbio_wait(nbio_session *const *sessions, size_t n, int timeout_ms)
{
    return nbio_wait_masked(sessions, NULL, n, timeout_ms);
}

int nbio_wait_masked(nbio_session *const *sessions, const unsigned *masks, size_t n,
                     int timeout_ms)
{
    struct pollfd stack[64];
    struct pollfd *pfd = n <= 64 ? stack : calloc(n, sizeof *pfd);
    if (pfd == NULL)
        return NBIO_ENOMEM;
    int ready = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned want = sessions[i] != NULL ? nbio_interest(sessions[i]) : 0;
        if (masks != NULL)
            want &= masks[i];
        pfd[i].fd = -1;
        pfd[i].events = 0;
        pfd[i].revents = 0;
        if (want & NBIO_READY) {
            ready++;
            continue;
        }
        int fd = nbio_fd(sessions[i]);
        if (fd < 0 || !(want & (NBIO_WANT_READ | NBIO_WANT_WRITE)))
            continue;
        pfd[i].fd = fd;
        pfd[i].events = (short)(((want & NBIO_WANT_READ) ? POLLIN : 0) |
                                ((want & NBIO_WANT_WRITE) ? POLLOUT : 0));
    }
    int r = poll(pfd, (nfds_t)n, ready > 0 ? 0 : timeout_ms);
    if (r < 0 && errno != EINTR)
        r = nbio__errno(errno);
    else
        r = ready + (r > 0 ? r : 0);
    if (pfd != stack)
        free(pfd);
    return r;
}

long nbio__read_into(nbio_session *inner, void *dst, size_t cap)
{
    if (inner->error != 0)
        return inner->error;
    if (inner->vt->read_into == NULL)
        return nbio__fail(inner, NBIO_EUNSUPPORTED,
                          "%s: session cannot carry a message layer (no read_into)",
                          inner->vt->kind);
    long r = inner->vt->read_into(inner, dst, cap);
    if (r < 0)
        settle(inner, (int)r);
    return r;
}

long nbio__writev(nbio_session *inner, const struct iovec *iov, int iovcnt)
{
    if (!nbio__can_write(inner))
        return inner->error;
    if (inner->write_closed)
        return NBIO_ECLOSED;
    if (inner->vt->writev != NULL) {
        long r = inner->vt->writev(inner, iov, iovcnt);
        if (r < 0)
            settle(inner, (int)r);
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
