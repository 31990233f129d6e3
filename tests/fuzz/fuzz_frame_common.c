/*
 * The two framing properties every fuzz_frame_<strategy> harness checks;
 * see fuzz_frame_common.h.
 *
 * Input layout (missing bytes read as 0):
 *   [0..1]  max_frame = 1 + (big-endian u16 % 4096)
 *   [2]     read buffer size = 64 + 8 * byte
 *   [3]     write buffer size = 64 + 4 * byte
 *   [4]     mock read chunk (0: unlimited)
 *   [5]     mock write chunk (0: unlimited)
 *   [6]     number of scripted reads (mod 33), then one byte per step
 *   [.]     number of scripted writes (mod 33), then one byte per step
 *   rest    the stream to decode; also where the round trip cuts payloads
 * A step byte b < 0xF0 delivers / accepts at most b + 1 bytes, 0xF0..0xFE
 * would-block, 0xFF fails with NBIO_ECONNRESET (reads while decoding only).
 */
#define _POSIX_C_SOURCE 200809L
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_frame_common.h"
#include "nbio/mock.h"

#define MAX_STEPS 32
#define MAX_ROUNDTRIP_FRAMES 64
#define MAX_FRAME_LIMIT 4096
#define HEADER_MAX 8 /* longest header + trailer of a built-in strategy */

#define FAIL(...) fail_at(__LINE__, __VA_ARGS__)

_Noreturn static void fail_at(int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "fuzz_frame_common.c:%d: invariant broken: ", line);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    abort();
}

typedef enum wire_format { FMT_U64, FMT_U32, FMT_U16, FMT_LINE } wire_format;

typedef struct input {
    const uint8_t *p;
    size_t len;
} input;

/* Next input byte, or 0 once the input is used up. */
static unsigned take(input *in)
{
    if (in->len == 0)
        return 0;
    in->len--;
    return *in->p++;
}

typedef struct config {
    wire_format fmt;
    const nbio_frame_strategy *st;
    nbio_frame_options fo;
    size_t read_chunk, write_chunk;
    nbio_mock_step rsteps[MAX_STEPS], rsteps_noerr[MAX_STEPS], wsteps[MAX_STEPS];
    size_t nrsteps, nwsteps;
    bool read_error_scripted;
} config;

static nbio_mock_step step_from(unsigned b, bool allow_error)
{
    nbio_mock_step s = {NBIO_MOCK_BYTES, b + 1, 0};
    if (b == 0xFF && allow_error) {
        s.action = NBIO_MOCK_ERROR;
        s.n = 0;
        s.error = NBIO_ECONNRESET;
    } else if (b >= 0xF0) {
        s.action = NBIO_MOCK_WOULDBLOCK;
        s.n = 0;
    }
    return s;
}

static wire_format format_of(const nbio_frame_strategy *st)
{
    if (st == &nbio_frame_u64le)
        return FMT_U64;
    if (st == &nbio_frame_u32be)
        return FMT_U32;
    if (st == &nbio_frame_u16be)
        return FMT_U16;
    if (st == &nbio_frame_line)
        return FMT_LINE;
    FAIL("not a built-in strategy");
}

static size_t header_len(wire_format f)
{
    return f == FMT_U64 ? 8 : f == FMT_U32 ? 4 : f == FMT_U16 ? 2 : 0;
}

/* ---- reference codec, written from the documented wire formats ---- */

typedef struct ref_frame {
    size_t off, len;
} ref_frame;

/* Decodes wire[0..n) into out (room for n + 1 frames). Returns the number of
 * whole frames and sets *end to the error the stream ends with. */
static size_t ref_decode(wire_format f, const uint8_t *w, size_t n, size_t max, ref_frame *out,
                         int *end)
{
    size_t pos = 0, count = 0;
    for (;;) {
        size_t rem = n - pos;
        if (rem == 0) {
            *end = NBIO_EPEERCLOSED;
            return count;
        }
        if (f == FMT_LINE) {
            const uint8_t *nl = memchr(w + pos, '\n', rem);
            size_t len = nl != NULL ? (size_t)(nl - (w + pos)) : rem;
            if (len > max) {
                *end = NBIO_ETOOLARGE;
                return count;
            }
            if (nl == NULL) {
                *end = NBIO_ETRUNCATED;
                return count;
            }
            out[count].off = pos;
            out[count++].len = len;
            pos += len + 1;
            continue;
        }
        size_t h = header_len(f);
        if (rem < h) {
            *end = NBIO_ETRUNCATED;
            return count;
        }
        uint64_t len = 0;
        if (f == FMT_U64)
            for (size_t i = 0; i < 8; i++)
                len |= (uint64_t)w[pos + i] << (8 * i);
        else
            for (size_t i = 0; i < h; i++)
                len = len << 8 | w[pos + i];
        if (len > max) {
            *end = NBIO_ETOOLARGE;
            return count;
        }
        if (rem - h < len) {
            *end = NBIO_ETRUNCATED;
            return count;
        }
        out[count].off = pos + h;
        out[count++].len = (size_t)len;
        pos += h + (size_t)len;
    }
}

/* Writes the wire form of one payload to dst; returns its length. */
static size_t ref_encode(wire_format f, const uint8_t *p, size_t len, uint8_t *dst)
{
    size_t h = header_len(f);
    if (f == FMT_U64)
        for (size_t i = 0; i < 8; i++)
            dst[i] = (uint8_t)((uint64_t)len >> (8 * i));
    else
        for (size_t i = 0; i < h; i++)
            dst[i] = (uint8_t)(len >> (8 * (h - 1 - i)));
    if (len > 0)
        memcpy(dst + h, p, len);
    if (f == FMT_LINE)
        dst[h + len++] = '\n';
    return h + len;
}

/* ---- property 1: decoding an arbitrary stream ---- */

/* Reads wire[0..n) (then EOF) through a framing session and compares every
 * outcome with the reference decoder. */
static void check_decode(const config *c, const nbio_mock_step *steps, bool error_scripted,
                         const uint8_t *wire, size_t n)
{
    ref_frame *ref = malloc((n + 1) * sizeof *ref);
    if (ref == NULL)
        FAIL("out of memory");
    int ref_end = 0;
    size_t nref = ref_decode(c->fmt, wire, n, c->fo.max_frame, ref, &ref_end);

    nbio_mock_options mo = {c->read_chunk, 0, 0, 0};
    nbio_session *m = nbio_mock_new(&mo);
    if (m == NULL)
        FAIL("nbio_mock_new");
    if (n > 0 && nbio_mock_feed(m, wire, n) != 0)
        FAIL("nbio_mock_feed");
    nbio_mock_feed_eof(m);
    if (c->nrsteps > 0 && nbio_mock_script_read(m, steps, c->nrsteps) != 0)
        FAIL("nbio_mock_script_read");
    nbio_session *s = nbio_frame_new(m, c->st, &c->fo);
    if (s == NULL)
        FAIL("nbio_frame_new");

    /* Each read returns a frame, consumes a scripted step or input bytes,
     * or ends the session: this many calls are always enough. */
    size_t budget = c->nrsteps + 2 * n + 64;
    size_t got = 0;
    int r;
    for (;;) {
        if (budget-- == 0)
            FAIL("%s: no progress after %zu reads (%zu of %zu frames)", c->st->name,
                 c->nrsteps + 2 * n + 64, got, nref);
        nbio_buf out = {NULL, 0};
        (void)nbio_interest(s); /* peeks at the buffered bytes: must be safe anytime */
        if (c->fo.release_buffers) { /* where idle buffers are given back */
            (void)nbio_drive(s);
            (void)nbio_flush(s, 0);
        }
        r = nbio_read(s, &out);
        if (r == NBIO_ACTIVE || r == NBIO_IDLE)
            continue;
        if (r != NBIO_DATA)
            break;
        if (out.len > c->fo.max_frame)
            FAIL("%s: a %zu-byte payload over max_frame %zu", c->st->name, out.len,
                 c->fo.max_frame);
        if (got >= nref)
            FAIL("%s: frame %zu returned, the stream holds %zu", c->st->name, got, nref);
        if (out.len != ref[got].len)
            FAIL("%s: frame %zu is %zu bytes, expected %zu", c->st->name, got, out.len,
                 ref[got].len);
        if (out.len > 0 && (out.data == NULL || memcmp(out.data, wire + ref[got].off, out.len)))
            FAIL("%s: frame %zu has the wrong bytes", c->st->name, got);
        got++;
    }
    if (r >= 0)
        FAIL("%s: nbio_read returned the unknown outcome %d", c->st->name, r);
    if (r == NBIO_ECONNRESET && error_scripted) {
        /* the scripted transport failure came first: a prefix is fine */
    } else if (r != ref_end || got != nref) {
        FAIL("%s: ended with %s after %zu frames, expected %s after %zu", c->st->name,
             nbio_errname(r), got, nbio_errname(ref_end), nref);
    }
    if (nbio_status(s) != NBIO_TERMINATED)
        FAIL("%s: not terminated after %s", c->st->name, nbio_errname(r));
    if (nbio_error(s) != r)
        FAIL("%s: nbio_error() is %s, the read returned %s", c->st->name,
             nbio_errname(nbio_error(s)), nbio_errname(r));
    if (nbio_detail(s) == NULL)
        FAIL("%s: nbio_detail() returned NULL", c->st->name);
    nbio_buf out = {NULL, 0};
    int again = nbio_read(s, &out);
    if (again != r)
        FAIL("%s: a read after %s returned %s", c->st->name, nbio_errname(r), nbio_errname(again));
    nbio_free(s);
    free(ref);
}

/* ---- property 2: write, then read back ---- */

static void check_roundtrip(const config *c, input src)
{
    wire_format f = c->fmt;
    size_t max = c->fo.max_frame;
    size_t nframes = take(&src) % (MAX_ROUNDTRIP_FRAMES + 1);
    size_t lens[MAX_ROUNDTRIP_FRAMES], offs[MAX_ROUNDTRIP_FRAMES];
    uint8_t *payloads = malloc(nframes * max + 1);
    uint8_t *expect = malloc(nframes * (max + HEADER_MAX + 1) + 1);
    if (payloads == NULL || expect == NULL)
        FAIL("out of memory");
    size_t total = 0, expect_len = 0;
    for (size_t i = 0; i < nframes; i++) {
        unsigned b = take(&src);
        size_t len = b < 0x80 ? b : ((size_t)(b & 0x7F) << 8 | take(&src));
        lens[i] = len % (max + 1);
        offs[i] = total;
        for (size_t k = 0; k < lens[i]; k++) {
            unsigned v = take(&src);
            payloads[total + k] = (uint8_t)(f == FMT_LINE && v == '\n' ? 'N' : v);
        }
        expect_len += ref_encode(f, payloads + total, lens[i], expect + expect_len);
        total += lens[i];
    }

    nbio_mock_options mo = {0, c->write_chunk, 0, 0};
    nbio_session *wm = nbio_mock_new(&mo);
    if (wm == NULL)
        FAIL("nbio_mock_new");
    if (c->nwsteps > 0 && nbio_mock_script_write(wm, c->wsteps, c->nwsteps) != 0)
        FAIL("nbio_mock_script_write");
    nbio_session *w = nbio_frame_new(wm, c->st, &c->fo);
    if (w == NULL)
        FAIL("nbio_frame_new");

    /* Each call accepts at least one byte or consumes a would-block step. */
    size_t budget = 4 * (c->nwsteps + expect_len + nframes + 16);
    int r;
    for (size_t i = 0; i < nframes; i++) {
        nbio_buf b = {payloads + offs[i], lens[i]};
        for (;;) {
            if (budget-- == 0)
                FAIL("%s: writes make no progress (frame %zu)", c->st->name, i);
            size_t before = b.len;
            r = nbio_write(w, &b);
            if (r == NBIO_DONE) {
                if (b.len != 0)
                    FAIL("%s: NBIO_DONE with %zu bytes left", c->st->name, b.len);
                break;
            }
            if (r != NBIO_PENDING)
                FAIL("%s: writing frame %zu (%zu bytes): %s", c->st->name, i, lens[i],
                     nbio_errname(r));
            if (b.len > before || (const uint8_t *)b.data + b.len != payloads + offs[i] + lens[i])
                FAIL("%s: a pending write moved the buffer wrongly", c->st->name);
            if ((r = nbio_drive(w)) < 0)
                FAIL("%s: nbio_drive: %s", c->st->name, nbio_errname(r));
        }
    }
    for (;;) {
        if (budget-- == 0)
            FAIL("%s: flush makes no progress", c->st->name);
        r = nbio_flush(w, 0);
        if (r == NBIO_DONE)
            break;
        if (r != NBIO_PENDING)
            FAIL("%s: nbio_flush: %s", c->st->name, nbio_errname(r));
    }

    size_t olen = 0;
    const uint8_t *o = nbio_mock_output(nbio_frame_inner(w), &olen);
    if (olen != expect_len || (olen > 0 && memcmp(o, expect, olen) != 0)) {
        size_t at = 0;
        while (at < olen && at < expect_len && o[at] == expect[at])
            at++;
        FAIL("%s: %zu frames put %zu bytes on the wire, expected %zu (first difference at %zu)",
             c->st->name, nframes, olen, expect_len, at);
    }

    for (;;) {
        if (budget-- == 0)
            FAIL("%s: close makes no progress", c->st->name);
        r = nbio_close(w);
        if (r == NBIO_DONE)
            break;
        if (r != NBIO_PENDING)
            FAIL("%s: nbio_close: %s", c->st->name, nbio_errname(r));
    }
    if (nbio_mock_goodbyes(nbio_frame_inner(w)) != 1)
        FAIL("%s: %d goodbyes after close", c->st->name, nbio_mock_goodbyes(nbio_frame_inner(w)));
    if (nbio_error(w) != NBIO_ECLOSED)
        FAIL("%s: nbio_error() after close is %s", c->st->name, nbio_errname(nbio_error(w)));
    nbio_mock_output(nbio_frame_inner(w), &olen);
    if (olen != expect_len)
        FAIL("%s: close changed the bytes on the wire", c->st->name);

    /* The reference reads back exactly the payloads... */
    ref_frame *ref = malloc((expect_len + 1) * sizeof *ref);
    if (ref == NULL)
        FAIL("out of memory");
    int end = 0;
    size_t nref = ref_decode(f, expect, expect_len, max, ref, &end);
    if (nref != nframes || end != NBIO_EPEERCLOSED)
        FAIL("%s: reference decode of our encoding: %zu frames, %s", c->st->name, nref,
             nbio_errname(end));
    for (size_t i = 0; i < nframes; i++)
        if (ref[i].len != lens[i] || memcmp(expect + ref[i].off, payloads + offs[i], lens[i]))
            FAIL("%s: reference decode differs at frame %zu", c->st->name, i);
    free(ref);
    /* ...and so must a framing session reading through a scripted mock. */
    check_decode(c, c->rsteps_noerr, false, expect, expect_len);

    nbio_free(w);
    free(payloads);
    free(expect);
}

int fuzz_frame_run(const nbio_frame_strategy *st, const uint8_t *data, size_t size)
{
    config c;
    memset(&c, 0, sizeof c);
    input in = {data, size};
    c.st = st;
    c.fmt = format_of(st);
    nbio_frame_options_init(&c.fo);
    unsigned hi = take(&in);
    c.fo.max_frame = 1 + ((hi << 8 | take(&in)) % MAX_FRAME_LIMIT);
    unsigned rb = take(&in);
    c.fo.read_buffer_size = 64 + 8 * (size_t)(rb & 0x7f);
    c.fo.release_buffers = (rb & 0x80) != 0; /* buffers freed and reallocated when empty */
    c.fo.write_buffer_size = 64 + 4 * (size_t)take(&in);
    c.read_chunk = take(&in);
    c.write_chunk = take(&in);
    c.nrsteps = take(&in) % (MAX_STEPS + 1);
    for (size_t i = 0; i < c.nrsteps; i++) {
        unsigned b = take(&in);
        c.rsteps[i] = step_from(b, true);
        c.rsteps_noerr[i] = step_from(b, false);
        c.read_error_scripted |= c.rsteps[i].action == NBIO_MOCK_ERROR;
    }
    c.nwsteps = take(&in) % (MAX_STEPS + 1);
    for (size_t i = 0; i < c.nwsteps; i++)
        c.wsteps[i] = step_from(take(&in), false);

    check_decode(&c, c.rsteps, c.read_error_scripted, in.p, in.len);
    check_roundtrip(&c, in);
    return 0;
}
