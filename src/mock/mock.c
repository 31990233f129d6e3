/* The scripted mock byte session. */
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/session.h"
#include "nbio/mock.h"

/* A queue of scripted steps, kept in a byte buffer. */
typedef nbio__bytes step_queue;

typedef struct nbio__mock {
    nbio_session base;
    nbio_mock_options opt;
    nbio__bytes in, out;
    bool eof;
    int drives_left;
    int goodbyes;
    step_queue rsteps, wsteps;
    unsigned char rbuf[65536];
} nbio__mock;

static const nbio__vtable mock_vtable;

static nbio__mock *as_mock(const nbio_session *s)
{
    return s != NULL && s->vt == &mock_vtable ? (nbio__mock *)s : NULL;
}

static int push_steps(step_queue *q, const nbio_mock_step *steps, size_t n)
{
    return nbio__bytes_append(q, steps, n * sizeof *steps);
}

static const nbio_mock_step *next_step(const step_queue *q)
{
    return q->len > 0 ? (const nbio_mock_step *)(const void *)nbio__bytes_peek(q) : NULL;
}

static void pop_step(step_queue *q)
{
    nbio__bytes_rack(q, sizeof(nbio_mock_step));
}

/* Counts a drive while establishing. */
static bool establishing(nbio__mock *m)
{
    if (m->base.phase != NBIO__ESTABLISHING)
        return false;
    if (--m->drives_left <= 0)
        nbio__established(&m->base);
    return true;
}

static int mock_drive(nbio_session *s)
{
    return establishing((nbio__mock *)s) ? NBIO_ACTIVE : NBIO_IDLE;
}

static long mock_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__mock *m = (nbio__mock *)s;
    if (establishing(m))
        return NBIO_IDLE;
    size_t limit = m->opt.read_chunk ? m->opt.read_chunk : (size_t)-1;
    const nbio_mock_step *st = next_step(&m->rsteps);
    if (st != NULL) {
        switch (st->action) {
        case NBIO_MOCK_BYTES:
            if (m->in.len == 0 && !m->eof)
                return NBIO_IDLE; /* the step waits for input */
            limit = st->n;
            pop_step(&m->rsteps);
            break;
        case NBIO_MOCK_WOULDBLOCK:
            pop_step(&m->rsteps);
            return NBIO_IDLE;
        case NBIO_MOCK_EOF:
            pop_step(&m->rsteps);
            return nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer");
        case NBIO_MOCK_ERROR: {
            int e = st->error < 0 ? st->error : NBIO_EIO;
            pop_step(&m->rsteps);
            return nbio__fail(s, e, "mock read: %s", nbio_strerror(e));
        }
        }
    }
    if (m->in.len == 0)
        return m->eof ? nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer") : NBIO_IDLE;
    size_t n = m->in.len;
    if (n > limit)
        n = limit;
    if (n > cap)
        n = cap;
    memcpy(dst, nbio__bytes_peek(&m->in), n);
    nbio__bytes_consume(&m->in, n);
    return (long)n;
}

static int mock_read(nbio_session *s, nbio_buf *out)
{
    nbio__mock *m = (nbio__mock *)s;
    bool was_establishing = s->phase == NBIO__ESTABLISHING;
    long n = mock_read_into(s, m->rbuf, sizeof m->rbuf);
    if (n <= 0)
        return was_establishing ? NBIO_ACTIVE : (int)n;
    out->data = m->rbuf;
    out->len = (size_t)n;
    return NBIO_DATA;
}

/* How many bytes the next write may take: > 0, 0 (pending) or an error. */
static long write_budget(nbio__mock *m)
{
    size_t budget = m->opt.write_chunk ? m->opt.write_chunk : (size_t)-1 / 2;
    const nbio_mock_step *st = next_step(&m->wsteps);
    if (st != NULL) {
        nbio_mock_action a = st->action;
        int e = st->error < 0 ? st->error : NBIO_EIO;
        budget = st->n;
        pop_step(&m->wsteps);
        if (a == NBIO_MOCK_WOULDBLOCK)
            return 0;
        if (a == NBIO_MOCK_EOF)
            return nbio__fail(&m->base, NBIO_EPIPE, "mock write: %s", nbio_strerror(NBIO_EPIPE));
        if (a == NBIO_MOCK_ERROR)
            return nbio__fail(&m->base, e, "mock write: %s", nbio_strerror(e));
    }
    if (m->opt.write_limit) {
        size_t room = m->out.len < m->opt.write_limit ? m->opt.write_limit - m->out.len : 0;
        if (budget > room)
            budget = room;
    }
    return (long)budget;
}

static long mock_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    nbio__mock *m = (nbio__mock *)s;
    if (establishing(m))
        return 0;
    long budget = write_budget(m);
    if (budget <= 0)
        return budget;
    long total = 0;
    for (int i = 0; i < iovcnt && budget > 0; i++) {
        size_t n = iov[i].iov_len < (size_t)budget ? iov[i].iov_len : (size_t)budget;
        if (nbio__bytes_append(&m->out, iov[i].iov_base, n) != 0)
            return nbio__fail(s, NBIO_ENOMEM, "mock write: out of memory");
        total += (long)n;
        budget -= (long)n;
    }
    return total;
}

static int mock_write(nbio_session *s, nbio_buf *buf)
{
    struct iovec iov = {(void *)buf->data, buf->len};
    long n = mock_writev(s, &iov, 1);
    if (n < 0)
        return (int)n;
    buf->data = (const char *)buf->data + n;
    buf->len -= (size_t)n;
    return buf->len == 0 ? NBIO_DONE : NBIO_PENDING;
}

static int mock_goodbye(nbio_session *s)
{
    nbio__mock *m = (nbio__mock *)s;
    if (s->phase == NBIO__ESTABLISHING)
        return NBIO_PENDING;
    m->goodbyes++;
    return NBIO_DONE;
}

static void mock_free(nbio_session *s)
{
    nbio__mock *m = (nbio__mock *)s;
    nbio__bytes_free(&m->in);
    nbio__bytes_free(&m->out);
    nbio__bytes_free(&m->rsteps);
    nbio__bytes_free(&m->wsteps);
    free(m);
}

static unsigned mock_interest(const nbio_session *s)
{
    const nbio__mock *m = (const nbio__mock *)s;
    if (nbio__read_ended(s)) /* only writes are left */
        return 0;
    return (m->in.len > 0 || m->eof || s->phase == NBIO__ESTABLISHING) ? NBIO_READY
                                                                       : NBIO_WANT_READ;
}

static const nbio__vtable mock_vtable = {
    .kind = "mock",
    .drive = mock_drive,
    .read = mock_read,
    .write = mock_write,
    .read_into = mock_read_into,
    .writev = mock_writev,
    .goodbye = mock_goodbye,
    .free = mock_free,
    .interest = mock_interest,
};

nbio_session *nbio_mock_new(const nbio_mock_options *opt)
{
    nbio__mock *m = calloc(1, sizeof *m);
    if (m == NULL)
        return NULL;
    if (opt != NULL)
        m->opt = *opt;
    nbio__session_init(&m->base, &mock_vtable, m->opt.establish_after > 0);
    m->drives_left = m->opt.establish_after;
    return &m->base;
}

int nbio_mock_feed(nbio_session *s, const void *data, size_t len)
{
    nbio__mock *m = as_mock(s);
    return m != NULL ? nbio__bytes_append(&m->in, data, len) : NBIO_EINVAL;
}

void nbio_mock_feed_eof(nbio_session *s)
{
    nbio__mock *m = as_mock(s);
    if (m != NULL)
        m->eof = true;
}

int nbio_mock_script_read(nbio_session *s, const nbio_mock_step *steps, size_t n)
{
    nbio__mock *m = as_mock(s);
    return m != NULL ? push_steps(&m->rsteps, steps, n) : NBIO_EINVAL;
}

int nbio_mock_script_write(nbio_session *s, const nbio_mock_step *steps, size_t n)
{
    nbio__mock *m = as_mock(s);
    return m != NULL ? push_steps(&m->wsteps, steps, n) : NBIO_EINVAL;
}

const void *nbio_mock_output(const nbio_session *s, size_t *len)
{
    const nbio__mock *m = as_mock(s);
    *len = m != NULL ? m->out.len : 0;
    return m != NULL && m->out.data != NULL ? (const void *)nbio__bytes_peek(&m->out) : "";
}

void nbio_mock_consume_output(nbio_session *s, size_t n)
{
    nbio__mock *m = as_mock(s);
    if (m != NULL)
        nbio__bytes_consume(&m->out, n);
}

int nbio_mock_goodbyes(const nbio_session *s)
{
    const nbio__mock *m = as_mock(s);
    return m != NULL ? m->goodbyes : 0;
}
