/*
 * The framing session: frames in, frames out, over any byte session.
 *
 * Reads: received bytes collect in `in` (the core's buffer helper: it grows
 * with the bytes that arrive, never with the size a header announces). The
 * strategy decodes a frame in place; the payload handed out stays in the
 * buffer until the next read (`handed_out`).
 *
 * Writes take one of three paths:
 *  - a frame that fits the write buffer is encoded into `out` whole
 *    (coalescing: it goes out on the next drive, read, flush or close, or
 *    when the buffer fills);
 *  - a frame larger than the buffer is streamed: header and payload go
 *    straight from the caller's memory with writev, and until its
 *    `stream_rem` bytes are written only its rest may be resubmitted;
 *  - the trailer of a streamed frame is queued in `out` once the payload
 *    is through.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/bytes.h"
#include "core/session.h"
#include "nbio/frame.h"

#define HDR_MAX 32
#define TRL_MAX 16

typedef struct nbio__frame {
    nbio_session base; /* base.inner: the byte session */
    const nbio_frame_strategy *st;
    nbio_frame_options opt;
    size_t max_total;  /* largest frame on the wire */
    nbio__bytes in;    /* received, not yet consumed */
    size_t handed_out; /* bytes of the frame returned last, dropped on the next read */
    size_t scanned;    /* bytes the strategy already looked at (line search) */
    bool inner_eof;
    nbio__bytes out;   /* encoded frames not yet sent; at most the write buffer size */
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
    if (f->handed_out == 0)
        nbio__bytes_release(&f->in);
    if (f->stream_rem == 0)
        nbio__bytes_release(&f->out);
}

/* Sends what the write buffer holds. Returns NBIO_DONE when it is empty,
 * NBIO_PENDING when bytes remain, or an error. *wrote is set when bytes went
 * out. */
static int flush_out(nbio__frame *f, bool *wrote)
{
    return nbio__send_queued(&f->base, &f->out, false, wrote);
}

static int frame_drive(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    bool wrote = false;
    int r = flush_out(f, &wrote);
    if (r < 0)
        return r;
    release_idle(f);
    return wrote ? NBIO_ACTIVE : NBIO_IDLE;
}

/* Decodes the frame at the start of the buffer: 1 (info filled), 0 (more
 * bytes needed) or an error. */
static int decode(nbio__frame *f, size_t skip, size_t scanned, bool eof, nbio_frame_info *info)
{
    size_t have = f->in.len - skip;
    if (have == 0 && !eof)
        return 0;
    return f->st->decode(f->st, have > 0 ? nbio__bytes_peek(&f->in) + skip : (const void *)"",
                         have, scanned, eof, f->opt.max_frame, info);
}

/* Hands out the frame info describes. */
static int hand_out(nbio__frame *f, const nbio_frame_info *info, nbio_buf *out)
{
    out->data = nbio__bytes_peek(&f->in) + info->payload_off;
    out->len = info->payload_len;
    f->handed_out = info->frame_len;
    return NBIO_DATA;
}

static int frame_read(nbio_session *s, nbio_buf *out)
{
    nbio__frame *f = (nbio__frame *)s;
    nbio_frame_info info = {0, 0, 0, 0};
    if (f->handed_out) { /* the frame handed out last is dropped now */
        nbio__bytes_rack(&f->in, f->handed_out);
        f->handed_out = 0;
        f->scanned = 0;
    }
    int r;
    bool got_bytes = false;
    for (;;) {
        size_t have = f->in.len;
        r = decode(f, 0, f->scanned, f->inner_eof, &info);
        if (r == 1) /* a burst hands out what is buffered without flushing */
            return hand_out(f, &info, out);
        if (r == NBIO_ETOOLARGE)
            return nbio__fail(s, r, "%s frame larger than the limit of %zu bytes", f->st->name,
                              f->opt.max_frame);
        if (r < 0)
            return nbio__fail(s, r, "malformed %s frame: %s", f->st->name, nbio_strerror(r));
        f->scanned = have;
        /* Nothing more to hand out: what was written meanwhile (the answers
         * to a burst) goes out now, in one send, before more is read. */
        if (f->out.len > 0 && (r = flush_out(f, NULL)) < 0)
            return r;
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
        if (info.need > f->max_total)
            return nbio__fail(s, NBIO_ETOOLARGE, "frame larger than %zu bytes", f->opt.max_frame);
        size_t room;
        unsigned char *p = nbio__bytes_wbuf(&f->in, info.need, &room);
        if (p == NULL) {
            if (nbio__bytes_full(&f->in))
                return nbio__fail(s, NBIO_ETOOLARGE, "frame larger than %zu bytes",
                                  f->opt.max_frame);
            return nbio__fail(s, NBIO_ENOMEM, "frame read buffer: out of memory");
        }
        long n = nbio__read_into(s->inner, p, room);
        if (n == NBIO_EPEERCLOSED) {
            f->inner_eof = true;
            continue;
        }
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0) {
            nbio__bytes_shrink(&f->in); /* a burst of large frames is over */
            release_idle(f);
            return NBIO_IDLE;
        }
        nbio__bytes_wack(&f->in, (size_t)n);
        got_bytes = true;
    }
}

/* Continues a frame larger than the write buffer, straight from buf. */
static int stream_rest(nbio__frame *f, nbio_buf *buf)
{
    int r = flush_out(f, NULL); /* header bytes first */
    if (r != NBIO_DONE)
        return r < 0 ? r : NBIO_PENDING;
    nbio_session *in = f->base.inner;
    int w = nbio_write(in, buf);
    if (w < 0)
        return nbio__fail_from(&f->base, in, w);
    f->stream_rem = buf->len;
    if (f->stream_rem > 0)
        return NBIO_PENDING;
    return nbio__bytes_append(&f->out, f->trl, f->trl_len) == 0
               ? NBIO_DONE
               : nbio__fail(&f->base, NBIO_ENOMEM, "frame write buffer: out of memory");
}

/* Starts a frame larger than the write buffer: drains the buffer, then
 * sends header and payload together straight from the caller's memory. */
static int stream_start(nbio__frame *f, nbio_buf *buf, const unsigned char *hdr, size_t hl,
                        size_t tl)
{
    nbio_session *s = &f->base;
    int r = flush_out(f, NULL);
    if (r != NBIO_DONE)
        return r < 0 ? r : NBIO_PENDING;
    if (nbio__is_establishing(s))
        return NBIO_PENDING;
    f->trl_len = tl;
    struct iovec iov[2] = {{(void *)hdr, hl}, {(void *)buf->data, buf->len}};
    long n = nbio__writev(s->inner, iov, 2);
    if (n < 0)
        return nbio__fail_from(s, s->inner, (int)n);
    if ((size_t)n < hl) { /* the frame is committed: the rest of its header waits in out */
        if (nbio__bytes_append(&f->out, hdr + n, hl - (size_t)n) != 0)
            return nbio__fail(s, NBIO_ENOMEM, "frame write buffer: out of memory");
        f->stream_rem = buf->len;
        return NBIO_PENDING;
    }
    size_t sent = (size_t)n - hl;
    buf->data = (const char *)buf->data + sent;
    buf->len -= sent;
    f->stream_rem = buf->len;
    if (f->stream_rem > 0)
        return NBIO_PENDING;
    return nbio__bytes_append(&f->out, f->trl, tl) == 0
               ? NBIO_DONE
               : nbio__fail(s, NBIO_ENOMEM, "frame write buffer: out of memory");
}

static int frame_write(nbio_session *s, nbio_buf *buf)
{
    nbio__frame *f = (nbio__frame *)s;
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
    unsigned char hdr[HDR_MAX];
    size_t hl = 0, tl = 0;
    int r = f->st->encode(f->st, buf->data, buf->len, hdr, &hl, f->trl, &tl);
    if (r < 0)
        return nbio__fail(s, r, "cannot encode a %zu-byte %s frame: %s", buf->len, f->st->name,
                          nbio_strerror(r));
    size_t total = hl + buf->len + tl;
    if (total > f->out.max)
        return stream_start(f, buf, hdr, hl, tl);
    /* The common case: the whole frame into the write buffer, one copy. */
    size_t room = f->out.cap - f->out.head - f->out.len; /* the tail: no call when it fits */
    unsigned char *p = room >= total && room > 0 ? f->out.data + f->out.head + f->out.len
                                     : nbio__bytes_wbuf(&f->out, f->out.len + total, &room);
    if (room < total) {
        if ((r = flush_out(f, NULL)) < 0)
            return r;
        p = nbio__bytes_wbuf(&f->out, f->out.len + total, &room);
        if (room < total) {
            if (p == NULL && !nbio__bytes_full(&f->out) && f->out.len + total <= f->out.max)
                return nbio__fail(s, NBIO_ENOMEM, "frame write buffer: out of memory");
            return NBIO_PENDING;
        }
    }
    memcpy(p, hdr, hl);
    if (buf->len > 0)
        memcpy(p + hl, buf->data, buf->len);
    if (tl > 0)
        memcpy(p + hl + buf->len, f->trl, tl);
    nbio__bytes_wack(&f->out, total);
    buf->data = (const char *)buf->data + buf->len;
    buf->len = 0;
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
    if (s->wside != NBIO__W_OPEN && f->stream_rem > 0) /* a goodbye would cut that frame */
        return nbio__fail(s, NBIO_EUSAGE,
                          "close/shutdown while %zu bytes of a streamed frame are still owed",
                          f->stream_rem);
    int r = flush_out(f, NULL);
    if (r == NBIO_DONE)
        release_idle(f);
    return r;
}

static void frame_free(nbio_session *s)
{
    nbio__frame *f = (nbio__frame *)s;
    nbio_free(s->inner);
    nbio__bytes_free(&f->in);
    nbio__bytes_free(&f->out);
    free(f);
}

static unsigned frame_interest(const nbio_session *s)
{
    const nbio__frame *f = (const nbio__frame *)s;
    if (f->inner_eof && !nbio__read_ended(s))
        return NBIO_READY; /* the end of the stream is still to be reported */
    nbio_frame_info info = {0, 0, 0, 0};
    if (f->in.len > f->handed_out &&
        decode((nbio__frame *)f, f->handed_out, 0, false, &info) != 0)
        return NBIO_READY; /* a frame (or an error) is waiting */
    return f->out.len > 0 ? NBIO_WANT_WRITE : 0;
}

static const nbio__vtable frame_vtable = {
    .kind = "frame",
    .writes_while_establishing = true,
    .drive = frame_drive,
    .read = frame_read,
    .write = frame_write,
    .writev = frame_writev_unsupported,
    .flush = frame_flush,
    .free = frame_free,
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
    nbio__layer_init(&f->base, &frame_vtable, inner);
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
    f->max_total = f->opt.max_frame + st->max_header + st->max_trailer;
    f->in.base = f->opt.read_buffer_size;
    f->in.max = f->max_total;
    f->out.base = f->out.max = f->opt.write_buffer_size < 64 ? 64 : f->opt.write_buffer_size;
    return &f->base;
}

nbio_session *nbio_frame_inner(const nbio_session *s)
{
    return s != NULL && s->vt == &frame_vtable ? s->inner : NULL;
}
