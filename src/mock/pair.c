/* The in-memory connected pair of byte sessions. */
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/session.h"
#include "nbio/mock.h"

typedef struct pair_dir {
    nbio__bytes q;
    bool shut;   /* the writer sent its goodbye */
    bool gone;   /* the writer was freed */
} pair_dir;

typedef struct pair_shared {
    nbio_pair_options opt;
    pair_dir dir[2]; /* dir[i]: written by end i, read by end 1-i */
    int refs;
} pair_shared;

typedef struct nbio__pair_end {
    nbio_session base;
    pair_shared *sh;
    int side;
    bool write_blocked;
    unsigned char rbuf[16384];
} nbio__pair_end;

static pair_dir *rx(nbio__pair_end *e)
{
    return &e->sh->dir[1 - e->side];
}

static pair_dir *tx(nbio__pair_end *e)
{
    return &e->sh->dir[e->side];
}

static long pair_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__pair_end *e = (nbio__pair_end *)s;
    pair_dir *d = rx(e);
    if (d->q.len == 0) {
        if (d->shut)
            return nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer");
        if (d->gone)
            return nbio__fail(s, NBIO_ECONNRESET, "peer end of the pair was freed");
        return NBIO_IDLE;
    }
    size_t n = d->q.len;
    if (e->sh->opt.max_read && n > e->sh->opt.max_read)
        n = e->sh->opt.max_read;
    if (n > cap)
        n = cap;
    memcpy(dst, nbio__bytes_peek(&d->q), n);
    nbio__bytes_consume(&d->q, n);
    return (long)n;
}

static int pair_read(nbio_session *s, nbio_buf *out)
{
    nbio__pair_end *e = (nbio__pair_end *)s;
    long n = pair_read_into(s, e->rbuf, sizeof e->rbuf);
    if (n <= 0)
        return (int)n;
    out->data = e->rbuf;
    out->len = (size_t)n;
    return NBIO_DATA;
}

static long pair_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    nbio__pair_end *e = (nbio__pair_end *)s;
    pair_dir *d = tx(e);
    if (rx(e)->gone)
        return nbio__fail(s, NBIO_EPIPE, "peer end of the pair was freed");
    size_t room = e->sh->opt.capacity > d->q.len ? e->sh->opt.capacity - d->q.len : 0;
    if (e->sh->opt.max_write && room > e->sh->opt.max_write)
        room = e->sh->opt.max_write;
    long total = 0;
    for (int i = 0; i < iovcnt && room > 0; i++) {
        size_t n = iov[i].iov_len < room ? iov[i].iov_len : room;
        if (nbio__bytes_append(&d->q, iov[i].iov_base, n) != 0)
            return nbio__fail(s, NBIO_ENOMEM, "pair write: out of memory");
        total += (long)n;
        room -= n;
    }
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    e->write_blocked = (size_t)total < want;
    return total;
}

static int pair_write(nbio_session *s, nbio_buf *buf)
{
    struct iovec iov = {(void *)buf->data, buf->len};
    long n = pair_writev(s, &iov, 1);
    if (n < 0)
        return (int)n;
    buf->data = (const char *)buf->data + n;
    buf->len -= (size_t)n;
    return buf->len == 0 ? NBIO_DONE : NBIO_PENDING;
}

static int pair_goodbye(nbio_session *s)
{
    tx((nbio__pair_end *)s)->shut = true;
    return NBIO_DONE;
}

static void pair_free(nbio_session *s)
{
    nbio__pair_end *e = (nbio__pair_end *)s;
    pair_shared *sh = e->sh;
    tx(e)->gone = true;
    if (--sh->refs == 0) {
        nbio__bytes_free(&sh->dir[0].q);
        nbio__bytes_free(&sh->dir[1].q);
        free(sh);
    }
    free(e);
}

static unsigned pair_interest(const nbio_session *s)
{
    nbio__pair_end *e = (nbio__pair_end *)s;
    pair_dir *d = rx(e);
    if (nbio__read_ended(s)) /* only writes are left */
        return 0;
    return (d->q.len > 0 || d->shut || d->gone) ? NBIO_READY : NBIO_WANT_READ;
}

static const nbio__vtable pair_vtable = {
    .kind = "pair",
    .read = pair_read,
    .write = pair_write,
    .read_into = pair_read_into,
    .writev = pair_writev,
    .goodbye = pair_goodbye,
    .free = pair_free,
    .interest = pair_interest,
};

int nbio_pair_new(nbio_session **a, nbio_session **b, const nbio_pair_options *opt)
{
    pair_shared *sh = calloc(1, sizeof *sh);
    nbio__pair_end *ea = calloc(1, sizeof *ea);
    nbio__pair_end *eb = calloc(1, sizeof *eb);
    if (sh == NULL || ea == NULL || eb == NULL) {
        free(sh);
        free(ea);
        free(eb);
        return NBIO_ENOMEM;
    }
    if (opt != NULL)
        sh->opt = *opt;
    if (sh->opt.capacity == 0)
        sh->opt.capacity = 65536;
    sh->refs = 2;
    nbio__session_init(&ea->base, &pair_vtable, false);
    nbio__session_init(&eb->base, &pair_vtable, false);
    ea->sh = eb->sh = sh;
    ea->side = 0;
    eb->side = 1;
    *a = &ea->base;
    *b = &eb->base;
    return 0;
}
