/*
 * 64-byte u64-LE framed ping-pong over TCP loopback, nbio against a raw
 * non-blocking socket loop, in the same run.
 *
 * Two threads, both busy-polling: the client (main thread) sends frame i and
 * spins until the echo of frame i is back; the echo thread spins reading and
 * sends each frame back. One round trip = write of the ping to the complete
 * echo read, timed with CLOCK_MONOTONIC; the first 10% of each run is
 * warm-up and not recorded.
 *
 *  - nbio: nbio_tcp_connect/nbio_tcp_listen sessions wrapped in
 *    nbio_frame_new(u64le) with default options. Client: nbio_write(frame),
 *    then nbio_read() until NBIO_DATA (the read pushes the buffered frame
 *    out). Echo: nbio_read() until NBIO_DATA, nbio_write() of that payload.
 *  - raw: the same framing written by hand: an 8-byte little-endian length
 *    and the payload sent with one send(), recv() into a buffer until a
 *    whole frame is there; the echo side send()s the received frame back.
 *
 * Every echoed payload is checksummed; a run passes only when its checksum
 * equals the one expected for the frames sent (so nbio and raw runs agree).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "bench_common.h"
#include "nbio/frame.h"
#include "nbio/nbio.h"

#define PAYLOAD 64
#define HDR 8

typedef struct run_result {
    double median_us, p99_us, mean_us;
    uint64_t checksum;
    uint64_t frames;
    bool ok;
} run_result;

typedef struct echo_arg {
    int fd;
    nbio_session *s;
    uint64_t frames;
    int err;
} echo_arg;

/* ---- raw ----------------------------------------------------------------- */

static void *raw_echo(void *p)
{
    echo_arg *a = p;
    bench_pin_thread(1);
    unsigned char buf[65536];
    size_t have = 0;
    for (;;) {
        ssize_t n = recv(a->fd, buf + have, sizeof buf - have, 0);
        if (n == 0)
            break;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
                continue;
            a->err = -errno;
            break;
        }
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= HDR) {
            uint64_t len = bench_get_le64(buf + off);
            if (len > sizeof buf - HDR) {
                a->err = -EMSGSIZE;
                return NULL;
            }
            if (have - off < HDR + len)
                break;
            if (bench_send_all(a->fd, buf + off, HDR + (size_t)len) != 0) {
                a->err = -EIO;
                return NULL;
            }
            off += HDR + (size_t)len;
            a->frames++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    return NULL;
}

static int run_raw(uint64_t iters, uint64_t warm, double *rtt, run_result *res)
{
    int c, s;
    if (bench_raw_pair(&c, &s) != 0)
        return -1;
    echo_arg ea = {.fd = s};
    pthread_t th;
    if (pthread_create(&th, NULL, raw_echo, &ea) != 0)
        bench_die("pthread_create failed");
    unsigned char frame[HDR + PAYLOAD];
    bench_put_le64(frame, PAYLOAD);
    bench_fill_base(frame + HDR, PAYLOAD);
    unsigned char rb[4096];
    uint64_t sum = BENCH_FOLD_INIT;
    int err = 0;
    for (uint64_t i = 0; i < warm + iters && err == 0; i++) {
        bench_stamp(frame + HDR, PAYLOAD, i);
        uint64_t t0 = bench_now_ns();
        if (bench_send_all(c, frame, sizeof frame) != 0) {
            err = -1;
            break;
        }
        size_t have = 0;
        for (;;) {
            ssize_t n = recv(c, rb + have, sizeof rb - have, 0);
            if (n > 0) {
                have += (size_t)n;
                if (have >= HDR && have >= HDR + bench_get_le64(rb))
                    break;
            } else if (n == 0 || (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)) {
                err = -1;
                break;
            }
        }
        uint64_t t1 = bench_now_ns();
        if (err != 0)
            break;
        uint64_t len = bench_get_le64(rb);
        if (len != PAYLOAD || have != HDR + PAYLOAD) {
            fprintf(stderr, "bench: raw: unexpected echo of %" PRIu64 " bytes\n", len);
            err = -1;
            break;
        }
        sum = bench_fold(sum, bench_frame_sum(rb + HDR, PAYLOAD));
        if (i >= warm)
            rtt[i - warm] = (double)(t1 - t0) / 1000.0;
    }
    close(c);
    pthread_join(th, NULL);
    close(s);
    res->checksum = sum;
    res->frames = ea.frames;
    return err != 0 || ea.err != 0 ? -1 : 0;
}

/* ---- nbio ---------------------------------------------------------------- */

static void *nbio_echo(void *p)
{
    echo_arg *a = p;
    bench_pin_thread(1);
    nbio_session *s = a->s;
    for (;;) {
        nbio_buf m;
        int r = nbio_read(s, &m);
        if (r == NBIO_DATA) {
            /* The payload points into the session's read buffer; a frame
             * that fits the write buffer is copied there whole. */
            while ((r = nbio_write(s, &m)) == NBIO_PENDING)
                (void)nbio_drive(s);
            if (r < 0)
                break;
            a->frames++;
        } else if (r < 0) {
            if (r != NBIO_EPEERCLOSED)
                a->err = r;
            break;
        }
    }
    return NULL;
}

static int run_nbio(uint64_t iters, uint64_t warm, double *rtt, run_result *res)
{
    nbio_session *c, *s;
    if (bench_nbio_pair(&c, &s, NULL) != 0)
        return -1;
    echo_arg ea = {.fd = -1, .s = s};
    pthread_t th;
    if (pthread_create(&th, NULL, nbio_echo, &ea) != 0)
        bench_die("pthread_create failed");
    unsigned char payload[PAYLOAD];
    bench_fill_base(payload, PAYLOAD);
    uint64_t sum = BENCH_FOLD_INIT;
    int err = 0;
    for (uint64_t i = 0; i < warm + iters; i++) {
        bench_stamp(payload, PAYLOAD, i);
        nbio_buf b = {payload, PAYLOAD};
        uint64_t t0 = bench_now_ns();
        int r;
        while ((r = nbio_write(c, &b)) == NBIO_PENDING)
            (void)nbio_drive(c);
        nbio_buf m = {NULL, 0};
        if (r >= 0)
            while ((r = nbio_read(c, &m)) >= 0 && r != NBIO_DATA)
                ;
        uint64_t t1 = bench_now_ns();
        if (r < 0) {
            fprintf(stderr, "bench: nbio: %s (%s)\n", nbio_errname(r), nbio_detail(c));
            err = r;
            break;
        }
        if (m.len != PAYLOAD) {
            fprintf(stderr, "bench: nbio: unexpected echo of %zu bytes\n", m.len);
            err = -1;
            break;
        }
        sum = bench_fold(sum, bench_frame_sum(m.data, m.len));
        if (i >= warm)
            rtt[i - warm] = (double)(t1 - t0) / 1000.0;
    }
    nbio_free(c); /* the echo thread sees the end of stream */
    pthread_join(th, NULL);
    nbio_free(s);
    res->checksum = sum;
    res->frames = ea.frames;
    return err != 0 || ea.err != 0 ? -1 : 0;
}

/* ---- driver -------------------------------------------------------------- */

static void summarize(double *rtt, uint64_t n, run_result *res)
{
    double total = 0;
    for (uint64_t i = 0; i < n; i++)
        total += rtt[i];
    bench_sort(rtt, n);
    res->median_us = bench_quantile_sorted(rtt, n, 0.5);
    res->p99_us = bench_quantile_sorted(rtt, n, 0.99);
    res->mean_us = total / (double)n;
}

int main(int argc, char **argv)
{
    bench_args args;
    bench_parse_args(argc, argv, &args, NULL);
    uint64_t iters = bench_scaled(&args, 50000, 500);
    uint64_t warm = iters / 10;
    bench_pin_thread(0);
    double *rtt = malloc(iters * sizeof *rtt);
    if (rtt == NULL)
        bench_die("out of memory");

    unsigned char base[PAYLOAD];
    bench_fill_base(base, PAYLOAD);
    bench_ref ref;
    bench_ref_init(&ref, base, PAYLOAD);
    uint64_t expect = bench_ref_run(&ref, 0, warm + iters);

    enum { RAW, NBIO };
    const char *names[2] = {"raw", "nbio"};
    double med[2][64], p99[2][64];
    int reps = args.repeats > 64 ? 64 : args.repeats;
    bool ok = true;
    printf("# bench_frame_pingpong: %d-byte u64-LE frames, %" PRIu64
           " round trips per run (+%" PRIu64 " warm-up), %d raw/nbio run pairs\n",
           PAYLOAD, iters, warm, reps);
    for (int rep = 0; rep < reps; rep++) {
        for (int m = RAW; m <= NBIO; m++) {
            if (args.only != 0 && args.only != m + 1)
                continue;
            run_result res;
            memset(&res, 0, sizeof res);
            int rc = m == RAW ? run_raw(iters, warm, rtt, &res) : run_nbio(iters, warm, rtt, &res);
            res.ok = rc == 0 && res.checksum == expect && res.frames == warm + iters;
            if (!res.ok) {
                fprintf(stderr,
                        "bench: %s run %d FAILED: rc=%d checksum=%016" PRIx64
                        " expected=%016" PRIx64 " echoed=%" PRIu64 "\n",
                        names[m], rep, rc, res.checksum, expect, res.frames);
                ok = false;
                continue;
            }
            summarize(rtt, iters, &res);
            med[m][rep] = res.median_us;
            p99[m][rep] = res.p99_us;
            if (args.verbose)
                printf("  run %d %-4s rtt_median_us=%.2f p99_us=%.2f mean_us=%.2f "
                       "checksum=%016" PRIx64 "\n",
                       rep, names[m], res.median_us, res.p99_us, res.mean_us, res.checksum);
        }
    }
    free(rtt);
    if (!ok) {
        printf("pingpong64 FAILED (wrong or missing bytes, see stderr)\n");
        return 1;
    }
    if (args.only != 0) {
        int m = args.only - 1;
        printf("pingpong64 %s rtt_median_us=%.2f rtt_p99_us=%.2f (best of %d)\n", names[m],
               bench_min(med[m], (size_t)reps), bench_min(p99[m], (size_t)reps), reps);
        return 0;
    }
    /* Best of the repeats: the machine is shared, interference only adds. */
    double mr = bench_min(med[RAW], (size_t)reps), mn = bench_min(med[NBIO], (size_t)reps);
    double pr = bench_min(p99[RAW], (size_t)reps), pn = bench_min(p99[NBIO], (size_t)reps);
    printf("pingpong64 rtt_median_us nbio=%.2f raw=%.2f ratio=%.3f (best of %d; "
           "medians of runs nbio=%.2f raw=%.2f)\n",
           mn, mr, mn / mr, reps, bench_median(med[NBIO], (size_t)reps),
           bench_median(med[RAW], (size_t)reps));
    printf("pingpong64 rtt_p99_us nbio=%.2f raw=%.2f ratio=%.3f (best of %d)\n", pn, pr,
           pn / pr, reps);
    printf("pingpong64 verify frames=%" PRIu64 " checksum=%016" PRIx64 " nbio==raw ok\n",
           warm + iters, expect);
    return 0;
}
