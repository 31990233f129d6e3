/* The framing session: frames in, frames out, over any byte session. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/session.h"
#include "nbio/frame.h"

#define HDR_MAX 32
#define TRL_MAX 16

typedef struct nbio__frame {
    nbio_session base; /* base.inner: the byte session */
    const nbio_frame_strategy *st;
    nbio_frame_options opt;
    size_t max_total;  /* largest frame on the wire */
    /* read side: unconsumed bytes are rbuf[rstart, rend) */
    unsigned char *rbuf;
    size_t rcap, rstart, rend;
    size_t handed_out; /* bytes of the frame returned last, dropped on the next read */
    size_t scanned;
    bool inner_eof;
    /* write side: buffered bytes are wbuf[wstart, wend) */
    unsigned char *wbuf;
    size_t wcap, wstart, wend;
    size_t stream_rem; /* payload bytes still owed by a streamed frame */
    unsigned char trl[TRL_MAX];
    size_t trl_len;
} nbio__frame;

void nbio_frame_options_init(nbio_frame_options *o)
{
    o->max_frame = (size_t)64 << 20;
    o->read_buffer_size = 65536;
    o->write_buffer_size = 65536;
    o->release_buffers = false;
}

/* With release_buffers: gives back buffers that hold nothing. */
static void release_idle(nbio__frame *f)
{
    if (!f->opt.release_buffers)
        return;
    if (f->rbuf != NULL && f->rstart == f->rend && f->handed_out == 0) {
        free(f->rbuf);
        f->rbuf = NULL;
        f->rcap = 0;
        f->rstart = f->rend = 0;
    }
    if (f->wbuf != NULL && f->wstart == f->wend && f->stream_rem == 0) {
        free(f->wbuf);
        f->wbuf = NULL;
        f->wstart = f->wend = 0;
    }
}

/* Mirrors the inner session's establishment. Returns 0 or an error. */
static int sync_state(nbio__frame *f)
{
    nbio_session *in = f->base.inner;
    if (f->base.state == NBIO_ESTABLISHING) {
        if (in->state == NBIO_ESTABLISHING) {
            int r = nbio_drive(in);
            if (r < 0)
                return nbio__fail_from(&f->base, in, r);
        }
        if (in->state == NBIO_ESTABLISHED ||
            (in->state == NBIO_TERMINATED && in->error == NBIO_EPEERCLOSED))
            f->base.state = NBIO_ESTABLISHED;
        else if (in->error != 0)
            return nbio__fail_from(&f->base, in, in->error);
    }
    return 0;
}

/* Sends what the write buffer holds. Returns NBIO_DONE when it is empty,
 * NBIO_PENDING when bytes remain, or an error. *wrote is set when bytes went
 * out. */
static int flush_wbuf(nbio__frame *f, bool *wrote)
{
    if (f->wend == f->wstart)
        return NBIO_DONE;
    if (f->base.state == NBIO_ESTABLISHING)
        return NBIO_PENDING;
    struct iovec iov = {f->wbuf + f->wstart, f->wend - f->wstart};
    long n = nbio__writev(f->base.inner, &iov, 1);
    if (n < 0)
        return nbio__fail_from(&f->base, f->base.inner, (int)n);
    if (n > 0 && wrote != NULL)
        *wrote = true;
    f->wstart += (size_t)n;
    if (f->wstart == f->wend) {
        f->wstart = f->wend = 0;
        return NBIO_DONE;
    }
    return NBIO_PENDING;
}

static int frame_drive(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    bool was = s->state == NBIO_ESTABLISHING;
    int r = sync_state(f);
    if (r < 0)
        return r;
    bool wrote = false;
    r = flush_wbuf(f, &wrote);
    if (r < 0)
        return r;
    if (s->state == NBIO_ESTABLISHED && !was) {
        int ri = nbio_drive(s->inner);
        if (ri < 0)
            return nbio__fail_from(s, s->inner, ri);
        wrote = wrote || ri == NBIO_ACTIVE;
    }
    release_idle(f);
    return (wrote || (was && s->state == NBIO_ESTABLISHED)) ? NBIO_ACTIVE : NBIO_IDLE;
}

/* Makes sure rbuf can hold `need` unconsumed bytes plus room to read. */
static int make_room(nbio__frame *f, size_t need)
{
    size_t have = f->rend - f->rstart;
    if (f->rstart > 0) {
        memmove(f->rbuf, f->rbuf + f->rstart, have);
        f->rstart = 0;
        f->rend = have;
    }
    if (need <= have)
        need = have + 1;
    if (need <= f->rcap)
        return 0;
    if (need > f->max_total)
        return nbio__fail(&f->base, NBIO_ETOOLARGE, "frame larger than %zu bytes",
                          f->opt.max_frame);
    size_t cap = f->rcap * 2;
    if (cap < need)
        cap = need;
    if (cap > f->max_total)
        cap = f->max_total;
    unsigned char *p = realloc(f->rbuf, cap);
    if (p == NULL)
        return nbio__fail(&f->base, NBIO_ENOMEM, "frame read buffer of %zu bytes: out of memory",
                          cap);
    f->rbuf = p;
    f->rcap = cap;
    return 0;
}

/* Drops the frame handed out last; shrinks a buffer a large frame grew. */
static void release_last(nbio__frame *f)
{
    f->rstart += f->handed_out;
    f->handed_out = 0;
    f->scanned = 0;
    if (f->rstart == f->rend)
        f->rstart = f->rend = 0;
    size_t base = f->opt.read_buffer_size;
    if (f->rcap > 4 * base && f->rend - f->rstart <= base) {
        size_t have = f->rend - f->rstart;
        memmove(f->rbuf, f->rbuf + f->rstart, have);
        unsigned char *p = realloc(f->rbuf, base);
        if (p != NULL) {
            f->rbuf = p;
            f->rcap = base;
        }
        f->rstart = 0;
        f->rend = have;
    }
}

static int frame_read(nbio_session *s, nbio_buf *out)
{
    nbio__frame *f = (nbio__frame *)s;
    if (f->handed_out && s->state == NBIO_ESTABLISHED && f->wend == f->wstart &&
        f->rcap <= f->opt.read_buffer_size) {
        /* The hot path of a burst: the next frame is often buffered already. */
        f->rstart += f->handed_out;
        f->handed_out = 0;
        f->scanned = 0;
        nbio_frame_info info = {0, 0, 0, 0};
        if (f->st->decode(f->st, f->rbuf + f->rstart, f->rend - f->rstart, 0, f->inner_eof,
                          f->opt.max_frame, &info) == 1) {
            out->data = f->rbuf + f->rstart + info.payload_off;
            out->len = info.payload_len;
            f->handed_out = info.frame_len;
            return NBIO_DATA;
        }
    }
    if (f->handed_out)
        release_last(f);
    bool was = s->state == NBIO_ESTABLISHING;
    int r = sync_state(f);
    if (r < 0)
        return r;
    if (s->state == NBIO_ESTABLISHING)
        return NBIO_IDLE;
    if (f->wend > f->wstart && (r = flush_wbuf(f, NULL)) < 0)
        return r;
    if (f->rbuf == NULL) { /* allocated on first use */
        if ((f->rbuf = malloc(f->opt.read_buffer_size)) == NULL)
            return nbio__fail(s, NBIO_ENOMEM, "frame read buffer: out of memory");
        f->rcap = f->opt.read_buffer_size;
    }
    bool got_bytes = false;
    for (;;) {
        nbio_frame_info info = {0, 0, 0, 0};
        size_t have = f->rend - f->rstart;
        r = f->st->decode(f->st, f->rbuf + f->rstart, have, f->scanned, f->inner_eof,
                          f->opt.max_frame, &info);
        if (r == 1) {
            out->data = f->rbuf + f->rstart + info.payload_off;
            out->len = info.payload_len;
            f->handed_out = info.frame_len;
            return NBIO_DATA;
        }
        if (r == NBIO_ETOOLARGE)
            return nbio__fail(s, r, "%s frame larger than the limit of %zu bytes", f->st->name,
                              f->opt.max_frame);
        if (r < 0)
            return nbio__fail(s, r, "malformed %s frame: %s", f->st->name, nbio_strerror(r));
        f->scanned = have;
        if (f->inner_eof) {
            if (have > 0)
                return nbio__fail(s, NBIO_ETRUNCATED,
                                  "closed by peer in the middle of a %s frame (%zu bytes of %s%zu)",
                                  f->st->name, have, info.need ? "" : "at least ",
                                  info.need ? info.need : have + 1);
            return nbio__fail_from(s, s->inner, NBIO_EPEERCLOSED);
        }
        if (got_bytes)
            return NBIO_ACTIVE;
        if ((r = make_room(f, info.need)) < 0)
            return r;
        long n = nbio__read_into(s->inner, f->rbuf + f->rend, f->rcap - f->rend);
        if (n == NBIO_EPEERCLOSED) {
            f->inner_eof = true;
            continue;
        }
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0) {
            release_idle(f);
            return was ? NBIO_ACTIVE : NBIO_IDLE;
        }
        f->rend += (size_t)n;
        got_bytes = true;
    }
}

/* Appends bytes that are known to fit. */
static void wbuf_put(nbio__frame *f, const void *p, size_t n)
{
    memcpy(f->wbuf + f->wend, p, n);
    f->wend += n;
}

/* Continues a frame larger than the write buffer, straight from buf. */
static int stream_rest(nbio__frame *f, nbio_buf *buf)
{
    int r = flush_wbuf(f, NULL); /* header bytes first */
    if (r != NBIO_DONE)
        return r < 0 ? r : NBIO_PENDING;
    nbio_session *in = f->base.inner;
    int w = nbio_write(in, buf);
    if (w < 0)
        return nbio__fail_from(&f->base, in, w);
    f->stream_rem = buf->len;
    if (f->stream_rem > 0)
        return NBIO_PENDING;
    wbuf_put(f, f->trl, f->trl_len);
    return NBIO_DONE;
}

static int frame_write(nbio_session *s, nbio_buf *buf)
{
    nbio__frame *f = (nbio__frame *)s;
    int r = sync_state(f);
    if (r < 0)
        return r;
    if (f->wbuf == NULL && (f->wbuf = malloc(f->wcap)) == NULL) /* allocated on first use */
        return nbio__fail(s, NBIO_ENOMEM, "frame write buffer: out of memory");
    if (f->stream_rem > 0) {
        if (buf->len != f->stream_rem)
            return nbio__fail(s, NBIO_EUSAGE,
                              "a %zu-byte write while %zu bytes of a pending frame are owed",
                              buf->len, f->stream_rem);
        return stream_rest(f, buf);
    }
    if (buf->len > f->opt.max_frame)
        return nbio__fail(s, NBIO_ETOOLARGE, "cannot write a %zu-byte frame: the limit is %zu",
                          buf->len, f->opt.max_frame);
    size_t hl = 0, tl = 0;
    if (f->wcap - f->wend >= f->st->max_header + buf->len + f->st->max_trailer) {
        /* The common case: room to encode in place, one copy of the payload. */
        unsigned char *h = f->wbuf + f->wend;
        r = f->st->encode(f->st, buf->data, buf->len, h, &hl, f->trl, &tl);
        if (r < 0)
            return nbio__fail(s, r, "cannot encode a %zu-byte %s frame: %s", buf->len,
                              f->st->name, nbio_strerror(r));
        memcpy(h + hl, buf->data, buf->len);
        if (tl > 0)
            memcpy(h + hl + buf->len, f->trl, tl);
        f->wend += hl + buf->len + tl;
        buf->data = (const char *)buf->data + buf->len;
        buf->len = 0;
        return NBIO_DONE;
    }
    unsigned char hdr[HDR_MAX];
    r = f->st->encode(f->st, buf->data, buf->len, hdr, &hl, f->trl, &tl);
    if (r < 0)
        return nbio__fail(s, r, "cannot encode a %zu-byte %s frame: %s", buf->len, f->st->name,
                          nbio_strerror(r));
    size_t total = hl + buf->len + tl;
    if (total <= f->wcap) {
        if (f->wend + total > f->wcap) {
            if ((r = flush_wbuf(f, NULL)) < 0)
                return r;
            if (f->wend + total > f->wcap && f->wstart > 0) {
                memmove(f->wbuf, f->wbuf + f->wstart, f->wend - f->wstart);
                f->wend -= f->wstart;
                f->wstart = 0;
            }
            if (f->wend + total > f->wcap)
                return NBIO_PENDING;
        }
        wbuf_put(f, hdr, hl);
        wbuf_put(f, buf->data, buf->len);
        wbuf_put(f, f->trl, tl);
        buf->data = (const char *)buf->data + buf->len;
        buf->len = 0;
        return NBIO_DONE;
    }
    /* Larger than the buffer: drain it, then send header and payload
     * together straight from the caller's memory. */
    if ((r = flush_wbuf(f, NULL)) != NBIO_DONE)
        return r < 0 ? r : NBIO_PENDING;
    if (s->state == NBIO_ESTABLISHING)
        return NBIO_PENDING;
    f->trl_len = tl;
    struct iovec iov[2] = {{hdr, hl}, {(void *)buf->data, buf->len}};
    long n = nbio__writev(s->inner, iov, 2);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    if ((size_t)n < hl) {
        wbuf_put(f, hdr + n, hl - (size_t)n); /* the frame is committed */
        f->stream_rem = buf->len;
        return NBIO_PENDING;
    }
    size_t sent = (size_t)n - hl;
    buf->data = (const char *)buf->data + sent;
    buf->len -= sent;
    f->stream_rem = buf->len;
    if (f->stream_rem > 0)
        return NBIO_PENDING;
    wbuf_put(f, f->trl, tl);
    return NBIO_DONE;
}

static long frame_writev_unsupported(nbio_session *s, const struct iovec *iov, int n)
{
    (void)iov, (void)n;
    return nbio__fail(s, NBIO_EUNSUPPORTED, "a framing session carries frames, not bytes");
}

static int frame_flush(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    int r = sync_state(f);
    if (r < 0)
        return r;
    if (s->state == NBIO_ESTABLISHING)
        return NBIO_PENDING;
    r = flush_wbuf(f, NULL);
    if (r != NBIO_DONE)
        return r;
    int ri = nbio_flush(s->inner, 0);
    if (ri < 0)
        return nbio__fail_from(s, s->inner, ri);
    release_idle(f);
    return ri == NBIO_DONE ? NBIO_DONE : NBIO_PENDING;
}

static int frame_shutdown(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    if (f->stream_rem > 0) /* a goodbye now would cut that frame on the wire */
        return nbio__fail(s, NBIO_EUSAGE,
                          "close/shutdown while %zu bytes of a streamed frame are still owed",
                          f->stream_rem);
    int r = frame_flush(s);
    if (r != NBIO_DONE)
        return r;
    r = nbio_shutdown(s->inner);
    return r < 0 ? nbio__fail_from(s, s->inner, r) : r;
}

static void frame_free(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    nbio_free(s->inner);
    free(f->rbuf);
    free(f->wbuf);
    free(f);
}

static int frame_fd(const nbio_session *s)
{
    return nbio_fd(s->inner);
}

static unsigned frame_interest(const nbio_session *s)
{
    const nbio__frame *f = (const nbio__frame *)s;
    if (f->inner_eof && s->error == 0)
        return NBIO_READY; /* the end of the stream is still to be reported */
    size_t start = f->rstart + f->handed_out;
    nbio_frame_info info = {0, 0, 0, 0};
    if (f->rbuf != NULL && f->st->decode(f->st, f->rbuf + start, f->rend - start, 0, false, f->opt.max_frame,
                      &info) != 0)
        return NBIO_READY; /* a frame (or an error) is waiting */
    unsigned w = nbio_interest(s->inner);
    if (s->error != 0) /* the read side ended: only writes are left */
        w &= NBIO_WANT_WRITE;
    if (f->wend > f->wstart)
        w |= NBIO_WANT_WRITE;
    return w;
}

static const nbio__vtable frame_vtable = {
    .kind = "frame",
    .drive = frame_drive,
    .read = frame_read,
    .write = frame_write,
    .read_into = NULL,
    .writev = frame_writev_unsupported,
    .flush = frame_flush,
    .shutdown = frame_shutdown,
    .free = frame_free,
    .fd = frame_fd,
    .interest = frame_interest,
};

nbio_session *nbio_frame_new(nbio_session *inner, const nbio_frame_strategy *st,
                             const nbio_frame_options *opt)
{
    if (inner == NULL)
        return NULL;
    nbio__frame *f = calloc(1, sizeof *f);
    if (f == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__session_init(&f->base, &frame_vtable, NBIO_ESTABLISHING);
    f->base.inner = inner;
    f->st = st;
    if (st == NULL || st->decode == NULL || st->encode == NULL || st->max_header > HDR_MAX ||
        st->max_trailer > TRL_MAX) {
        nbio__fail(&f->base, NBIO_EINVAL,
                   "framing strategy missing, or its header/trailer over %d/%d bytes", HDR_MAX,
                   TRL_MAX);
        return &f->base;
    }
    if (opt != NULL)
        f->opt = *opt;
    else
        nbio_frame_options_init(&f->opt);
    if (f->opt.max_frame == 0)
        f->opt.max_frame = (size_t)64 << 20;
    if (f->opt.max_frame > SIZE_MAX - HDR_MAX - TRL_MAX) /* header + payload must not wrap */
        f->opt.max_frame = SIZE_MAX - HDR_MAX - TRL_MAX;
    if (f->opt.read_buffer_size < 64)
        f->opt.read_buffer_size = 64;
    f->wcap = f->opt.write_buffer_size < 64 ? 64 : f->opt.write_buffer_size;
    f->max_total = f->opt.max_frame + st->max_header + st->max_trailer;
    if (inner->state != NBIO_ESTABLISHING)
        f->base.state = NBIO_ESTABLISHED;
    if (inner->error != 0 && inner->error != NBIO_EPEERCLOSED)
        nbio__fail_from(&f->base, inner, inner->error);
    return &f->base;
}

nbio_session *nbio_frame_inner(const nbio_session *s)
{
    return s != NULL && s->vt == &frame_vtable ? s->inner : NULL;
}
