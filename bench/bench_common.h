/*
 * Shared helpers of the benchmarks: clocks, payload generation, checksums,
 * statistics, loopback connection set-up (raw sockets and nbio sessions),
 * command-line scaling.
 *
 * The benchmarks print figures; they never assert timings. They exit
 * non-zero only when a run transferred wrong bytes or failed to connect.
 */
#ifndef NBIO_BENCH_COMMON_H
#define NBIO_BENCH_COMMON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "nbio/nbio.h"

/* ---- command line ------------------------------------------------------ */

typedef struct bench_args {
    double scale;  /* multiplies every iteration count (1.0 = full run) */
    int repeats;   /* raw/nbio pairs per measure */
    bool quick;    /* --quick: smoke run, well under a second */
    bool verbose;  /* -v: one line per run */
    int only;      /* --only raw|nbio (profiling): 0 both, 1 raw, 2 nbio */
    bool pin;      /* --pin: put the two threads on CPUs 0 and 1 */
    const char *measure; /* --measure NAME: run only measures whose name contains it */
} bench_args;

/* Parses --quick, --scale F, --repeats N, -v, --help. Exits on --help or a
 * bad argument. */
void bench_parse_args(int argc, char **argv, bench_args *a, const char *usage_extra);

/* With --pin, binds the calling thread to CPU `which` (0 or 1, modulo the
 * CPUs online); otherwise does nothing. */
void bench_pin_thread(int which);

/* count * scale, at least min. */
uint64_t bench_scaled(const bench_args *a, uint64_t count, uint64_t min);

/* ---- time -------------------------------------------------------------- */

uint64_t bench_now_ns(void);

/* ---- payloads and checksums --------------------------------------------- */

/*
 * Frame number `seq` of a run carries the base pattern with its first 8
 * bytes replaced by seq (native byte order). The checksum of a run is an
 * order-sensitive fold of per-frame sums, so two runs agree only when they
 * delivered the same payloads in the same order.
 */
void bench_fill_base(unsigned char *buf, size_t len);

static inline void bench_stamp(unsigned char *payload, size_t len, uint64_t seq)
{
    if (len >= 8)
        memcpy(payload, &seq, 8);
}

/* The u64 little-endian length prefix of the raw baselines. */
static inline void bench_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char)(v >> (8 * i));
}

static inline uint64_t bench_get_le64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static inline uint64_t bench_load64(const unsigned char *p)
{
    uint64_t v;
    memcpy(&v, p, 8);
    return v;
}

/* Word k of the payload goes to lane k % 4; a trailing partial word is
 * zero-padded. a[j] sums the lane's words, b[j] sums the running a[j]
 * (Fletcher-like, so the order of words matters). */
static inline void bench_lanes(const unsigned char *p, size_t len, uint64_t a[4], uint64_t b[4])
{
    uint64_t a0 = 0, a1 = 0, a2 = 0, a3 = 0, b0 = 0, b1 = 0, b2 = 0, b3 = 0;
    size_t nw = len / 8, k = 0;
    for (; k + 4 <= nw; k += 4, p += 32) {
        a0 += bench_load64(p);
        b0 += a0;
        a1 += bench_load64(p + 8);
        b1 += a1;
        a2 += bench_load64(p + 16);
        b2 += a2;
        a3 += bench_load64(p + 24);
        b3 += a3;
    }
    a[0] = a0, a[1] = a1, a[2] = a2, a[3] = a3;
    b[0] = b0, b[1] = b1, b[2] = b2, b[3] = b3;
    size_t j = 0;
    for (; k < nw; k++, j++, p += 8) {
        a[j & 3] += bench_load64(p);
        b[j & 3] += a[j & 3];
    }
    size_t tail = len % 8;
    if (tail) {
        uint64_t w = 0;
        memcpy(&w, p, tail);
        a[j & 3] += w;
        b[j & 3] += a[j & 3];
    }
}

static inline uint64_t bench_combine(const uint64_t a[4], const uint64_t b[4], size_t len)
{
    /* Independent multiplies, then one mix. */
    uint64_t h = (uint64_t)len * 0xff51afd7ed558ccdull + a[0] * 0x9e3779b97f4a7c15ull +
                 a[1] * 0xc2b2ae3d27d4eb4full + a[2] * 0x165667b19e3779f9ull +
                 a[3] * 0xd6e8feb86659fd93ull + b[0] * 0xa0761d6478bd642full +
                 b[1] * 0xe7037ed1a0b428dbull + b[2] * 0x8ebc6af09c88c6e3ull +
                 b[3] * 0x589965cc75374cc3ull;
    h ^= h >> 32;
    h *= 0x100000001b3ull;
    h ^= h >> 29;
    return h;
}

/* Per-frame sum (inline: it runs in the readers' hot loops, equally for
 * nbio and raw; about 40 instructions for a 64-byte payload). */
static inline uint64_t bench_frame_sum(const void *p, size_t len)
{
    uint64_t a[4], b[4];
    bench_lanes(p, len, a, b);
    return bench_combine(a, b, len);
}

#define BENCH_FOLD_INIT 0x6a09e667f3bcc909ull

static inline uint64_t bench_fold(uint64_t run, uint64_t frame_sum)
{
    return (run ^ frame_sum) * 0x9e3779b97f4a7c15ull;
}

/* Expected sums of stamped frames, computed without touching the payload. */
typedef struct bench_ref {
    uint64_t a[4], b[4];
    uint64_t w0;  /* base word 0 */
    uint64_t m0;  /* words in lane 0 */
    size_t len;
} bench_ref;

void bench_ref_init(bench_ref *r, const unsigned char *base, size_t len);
uint64_t bench_ref_sum(const bench_ref *r, uint64_t seq);
/* Fold of frames first..first+count-1. */
uint64_t bench_ref_run(const bench_ref *r, uint64_t first, uint64_t count);

/* ---- statistics ---------------------------------------------------------- */

/* Sorts v (n values) and returns the value at quantile q (0..1). */
double bench_quantile_sorted(const double *v, size_t n, double q);
void bench_sort(double *v, size_t n);
double bench_min(const double *v, size_t n);
double bench_max(const double *v, size_t n);
double bench_median(const double *v, size_t n); /* does not modify v */

/* ---- connections --------------------------------------------------------- */

/* A connected pair of non-blocking TCP sockets over 127.0.0.1 (port picked
 * by the kernel), TCP_NODELAY on both. Returns 0 or -1 (message printed). */
int bench_raw_pair(int *client, int *server);

/* A connected pair of established nbio TCP byte sessions over 127.0.0.1.
 * Returns 0 or -1 (message printed). */
int bench_nbio_tcp_pair(nbio_session **client, nbio_session **server);

/* A connected pair of established nbio TCP sessions over 127.0.0.1, each
 * wrapped in a u64-LE framing session with default options (frame_opt NULL)
 * or the given ones. Returns 0 or -1 (message printed). */
struct nbio_frame_options;
int bench_nbio_pair(nbio_session **client, nbio_session **server,
                    const struct nbio_frame_options *frame_opt);

/* send() all of buf on a non-blocking socket, spinning on EAGAIN.
 * Returns 0 or -1. */
int bench_send_all(int fd, const void *buf, size_t len);

/* Aborts the process with a message. */
void bench_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

#endif
