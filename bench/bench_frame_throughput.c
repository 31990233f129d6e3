/*
 * One-way u64-LE framed throughput over TCP loopback (writer thread ->
 * reader thread), nbio against a raw non-blocking socket loop, in the same
 * run, for 64-byte and 1 MiB payloads.
 *
 *  - nbio: nbio_tcp sessions wrapped in nbio_frame_new(u64le) with default
 *    options (64 KiB write buffer, 64 KiB initial read buffer). Writer:
 *    nbio_write() of each frame, nbio_drive() while it is NBIO_PENDING,
 *    nbio_flush() at the end. Reader: nbio_read() until NBIO_DATA.
 *  - raw: the same framing by hand, with the same batching strategy a
 *    careful hand-written sender uses: frames that fit are copied (8-byte LE
 *    header + payload) into a 64 KiB buffer that is send()-ed when the next
 *    frame does not fit (a partial send keeps the rest at the front); a
 *    frame larger than that buffer goes out with writev(header, payload)
 *    straight from the caller's memory. Reader: recv() into one buffer sized
 *    for the largest frame (64 KiB, or 1 MiB + 8), frames parsed in place,
 *    the incomplete tail moved to the front.
 *
 * Both readers checksum every payload (about 40 instructions per 64-byte
 * frame, two additions per 8-byte word of a large one); a run passes only
 * when its checksum equals the one expected for the frames sent. Time runs
 * from a start barrier to the last frame read.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "bench_common.h"
#include "nbio/frame.h"
#include "nbio/nbio.h"

#define HDR 8
#define WBUF 65536

typedef struct side {
    /* in */
    int fd;
    nbio_session *s;
    size_t len;     /* payload bytes per frame */
    uint64_t count; /* frames */
    pthread_barrier_t *start;
    /* out */
    uint64_t frames;
    uint64_t checksum;
    uint64_t ns; /* reader: barrier to last frame */
    int err;
} side;

static unsigned char *make_payload(size_t len)
{
    unsigned char *p = malloc(len);
    if (p == NULL)
        bench_die("out of memory");
    bench_fill_base(p, len);
    return p;
}

/* ---- raw ----------------------------------------------------------------- */

/* Sends from buf until at least `room` bytes are free in it (or it is
 * empty); the unsent rest moves to the front. Returns 0 or -1. */
static int raw_make_room(int fd, unsigned char *buf, size_t *wlen, size_t room)
{
    while (*wlen > 0 && WBUF - *wlen < room) {
        ssize_t n = send(fd, buf, *wlen, MSG_NOSIGNAL);
        if (n > 0) {
            memmove(buf, buf + n, *wlen - (size_t)n);
            *wlen -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            return -1;
        }
    }
    return 0;
}

static int raw_writev_all(int fd, struct iovec *iov, int cnt)
{
    while (cnt > 0) {
        ssize_t n = writev(fd, iov, cnt);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            return -1;
        }
        size_t left = (size_t)n;
        while (cnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            cnt--;
        }
        if (cnt > 0) {
            iov->iov_base = (char *)iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
    return 0;
}

static void *raw_writer(void *p)
{
    side *w = p;
    bench_pin_thread(0);
    unsigned char *payload = make_payload(w->len);
    unsigned char *buf = malloc(WBUF);
    if (buf == NULL)
        bench_die("out of memory");
    size_t wlen = 0;
    size_t frame = HDR + w->len;
    pthread_barrier_wait(w->start);
    for (uint64_t i = 0; i < w->count; i++) {
        bench_stamp(payload, w->len, i);
        if (frame <= WBUF) {
            if (raw_make_room(w->fd, buf, &wlen, frame) != 0)
                goto fail;
            bench_put_le64(buf + wlen, w->len);
            memcpy(buf + wlen + HDR, payload, w->len);
            wlen += frame;
        } else {
            if (bench_send_all(w->fd, buf, wlen) != 0)
                goto fail;
            wlen = 0;
            unsigned char hdr[HDR];
            bench_put_le64(hdr, w->len);
            struct iovec iov[2] = {{hdr, HDR}, {payload, w->len}};
            if (raw_writev_all(w->fd, iov, 2) != 0)
                goto fail;
        }
        w->frames++;
    }
    if (bench_send_all(w->fd, buf, wlen) != 0)
        goto fail;
    free(buf);
    free(payload);
    return NULL;
fail:
    w->err = -errno;
    free(buf);
    free(payload);
    return NULL;
}

static void *raw_reader(void *p)
{
    side *r = p;
    bench_pin_thread(1);
    size_t cap = HDR + r->len > WBUF ? HDR + r->len : WBUF;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        bench_die("out of memory");
    size_t have = 0;
    uint64_t sum = BENCH_FOLD_INIT;
    pthread_barrier_wait(r->start);
    uint64_t t0 = bench_now_ns();
    while (r->frames < r->count) {
        ssize_t n = recv(r->fd, buf + have, cap - have, 0);
        if (n <= 0) {
            if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                continue;
            r->err = n == 0 ? -EPIPE : -errno;
            break;
        }
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= HDR) {
            uint64_t len = bench_get_le64(buf + off);
            if (len > cap - HDR) {
                r->err = -EMSGSIZE;
                goto out;
            }
            if (have - off < HDR + len)
                break;
            sum = bench_fold(sum, bench_frame_sum(buf + off + HDR, (size_t)len));
            r->frames++;
            off += HDR + (size_t)len;
        }
        if (off > 0) {
            memmove(buf, buf + off, have - off);
            have -= off;
        }
    }
out:
    r->ns = bench_now_ns() - t0;
    r->checksum = sum;
    free(buf);
    return NULL;
}

/* ---- nbio ---------------------------------------------------------------- */

static void *nbio_writer(void *p)
{
    side *w = p;
    bench_pin_thread(0);
    unsigned char *payload = make_payload(w->len);
    pthread_barrier_wait(w->start);
    int r = 0;
    for (uint64_t i = 0; i < w->count; i++) {
        bench_stamp(payload, w->len, i);
        nbio_buf b = {payload, w->len};
        while ((r = nbio_write(w->s, &b)) == NBIO_PENDING)
            if ((r = nbio_drive(w->s)) < 0)
                break;
        if (r < 0)
            break;
        w->frames++;
    }
    if (r >= 0)
        r = nbio_flush(w->s, -1);
    if (r < 0) {
        fprintf(stderr, "bench: nbio writer: %s (%s)\n", nbio_errname(r), nbio_detail(w->s));
        w->err = r;
    }
    free(payload);
    return NULL;
}

static void *nbio_reader(void *p)
{
    side *r = p;
    bench_pin_thread(1);
    uint64_t sum = BENCH_FOLD_INIT;
    pthread_barrier_wait(r->start);
    uint64_t t0 = bench_now_ns();
    while (r->frames < r->count) {
        nbio_buf m;
        int rc = nbio_read(r->s, &m);
        if (rc == NBIO_DATA) {
            sum = bench_fold(sum, bench_frame_sum(m.data, m.len));
            r->frames++;
        } else if (rc < 0) {
            fprintf(stderr, "bench: nbio reader: %s (%s)\n", nbio_errname(rc),
                    nbio_detail(r->s));
            r->err = rc;
            break;
        }
    }
    r->ns = bench_now_ns() - t0;
    r->checksum = sum;
    return NULL;
}

/* ---- driver -------------------------------------------------------------- */

enum { RAW, NBIO };
static const char *names[2] = {"raw", "nbio"};

/* One run; returns the reader's elapsed ns, or 0 on failure. */
static uint64_t run_once(int mode, size_t len, uint64_t count, uint64_t expect)
{
    side w, r;
    memset(&w, 0, sizeof w);
    memset(&r, 0, sizeof r);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    w.len = r.len = len;
    w.count = r.count = count;
    w.start = r.start = &start;
    nbio_session *cs = NULL, *ss = NULL;
    int cfd = -1, sfd = -1;
    if (mode == RAW) {
        if (bench_raw_pair(&cfd, &sfd) != 0)
            return 0;
    } else {
        if (bench_nbio_pair(&cs, &ss, NULL) != 0)
            return 0;
    }
    w.fd = cfd;
    w.s = cs;
    r.fd = sfd;
    r.s = ss;
    pthread_t tw, tr;
    if (pthread_create(&tr, NULL, mode == RAW ? raw_reader : nbio_reader, &r) != 0 ||
        pthread_create(&tw, NULL, mode == RAW ? raw_writer : nbio_writer, &w) != 0)
        bench_die("pthread_create failed");
    pthread_join(tw, NULL);
    pthread_join(tr, NULL);
    pthread_barrier_destroy(&start);
    if (mode == RAW) {
        close(cfd);
        close(sfd);
    } else {
        nbio_free(cs);
        nbio_free(ss);
    }
    if (w.err != 0 || r.err != 0 || r.frames != count || r.checksum != expect) {
        fprintf(stderr,
                "bench: %s %zu-byte run FAILED: writer err=%d reader err=%d frames=%" PRIu64
                "/%" PRIu64 " checksum=%016" PRIx64 " expected=%016" PRIx64 "\n",
                names[mode], len, w.err, r.err, r.frames, count, r.checksum, expect);
        return 0;
    }
    return r.ns > 0 ? r.ns : 1;
}

/* Alternates raw and nbio runs; prints the best of each. Returns 0 when
 * every run delivered the expected bytes. */
static int measure(const char *label, size_t len, uint64_t count, const bench_args *a)
{
    if (a->measure != NULL && strstr(label, a->measure) == NULL)
        return 0;
    unsigned char *base = make_payload(len);
    bench_ref ref;
    bench_ref_init(&ref, base, len);
    free(base);
    uint64_t expect = bench_ref_run(&ref, 0, count);
    int reps = a->repeats > 64 ? 64 : a->repeats;
    double fps[2][64];
    int failed = 0;
    for (int rep = 0; rep < reps; rep++) {
        for (int m = RAW; m <= NBIO; m++) {
            fps[m][rep] = 0;
            if (a->only != 0 && a->only != m + 1)
                continue;
            uint64_t ns = run_once(m, len, count, expect);
            if (ns == 0) {
                failed = 1;
                fps[m][rep] = 0;
                continue;
            }
            fps[m][rep] = (double)count * 1e9 / (double)ns;
            if (a->verbose)
                printf("  run %d %-4s %s frames_per_s=%.0f mb_per_s=%.1f\n", rep, names[m],
                       label, fps[m][rep], fps[m][rep] * (double)len / 1e6);
        }
    }
    if (failed) {
        printf("%s FAILED (wrong or missing bytes, see stderr)\n", label);
        return 1;
    }
    if (a->only != 0) {
        int m = a->only - 1;
        double b = bench_max(fps[m], (size_t)reps);
        printf("%s %s mb_per_s=%.1f frames_per_s=%.0f (best of %d)\n", label, names[m],
               b * (double)len / 1e6, b, reps);
        return 0;
    }
    double br = bench_max(fps[RAW], (size_t)reps), bn = bench_max(fps[NBIO], (size_t)reps);
    double mr = bench_median(fps[RAW], (size_t)reps), mn = bench_median(fps[NBIO], (size_t)reps);
    printf("%s mb_per_s nbio=%.1f raw=%.1f ratio=%.3f (best of %d; medians nbio=%.1f raw=%.1f)\n",
           label, bn * (double)len / 1e6, br * (double)len / 1e6, bn / br, reps,
           mn * (double)len / 1e6, mr * (double)len / 1e6);
    printf("%s frames_per_s nbio=%.0f raw=%.0f ratio=%.3f (best of %d)\n", label, bn, br,
           bn / br, reps);
    printf("%s verify frames=%" PRIu64 " bytes=%" PRIu64 " checksum=%016" PRIx64
           " nbio==raw ok\n",
           label, count, count * (uint64_t)len, expect);
    return 0;
}

int main(int argc, char **argv)
{
    bench_args args;
    bench_parse_args(argc, argv, &args, NULL);
    uint64_t n64 = bench_scaled(&args, 10000000, 20000);
    uint64_t n1m = bench_scaled(&args, 2000, 20);
    printf("# bench_frame_throughput: u64-LE frames, writer thread -> reader thread over "
           "127.0.0.1; %d raw/nbio run pairs, best shown; MB = 10^6 payload bytes\n",
           args.repeats);
    int rc = 0;
    rc |= measure("throughput64", 64, n64, &args);
    rc |= measure("throughput1m", (size_t)1 << 20, n1m, &args);
    return rc;
}
