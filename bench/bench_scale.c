/*
 * Many-connection benchmark: the `nbio echo-server` program (u64 framing)
 * in --idle spin and --idle wait modes, and the raw epoll echo loop of
 * bench_echo_common.c in the same two modes, each in a child process:
 *
 *  1. ping-pong round-trip time (64-byte frames) on one connection, the only
 *     one open;
 *  2. N more connections opened (default 10000, --quick 200, --conns N) in
 *     batches of 256 with non-blocking connects: each sends one 64-byte frame
 *     (unique per connection) as soon as it is connected, and the next batch
 *     starts once every echo of this one came back and was checked, byte by
 *     byte (so the listen backlog never overflows);
 *  3. the server's RSS (VmRSS) after the echoes minus its RSS before any
 *     connection, divided by the number of connections;
 *  4. ping-pong RTT again on the first connection while the others stay
 *     open and idle: the ratio to (1) is the figure (target <= 2).
 *
 * Every phase has a time bound (60 s; --quick 10 s); past it the figure is
 * TIMEOUT. The ping-pong phases also stop after 10 s (--quick 0.5 s) of round
 * trips. Timings are never asserted: the program fails only when an echo
 * was wrong or a connection failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_echo_common.h"

#define SMALL 64
#define FSZ (ECHO_HDR + SMALL)
#define BATCH 256

enum { ST_OK, ST_TIMEOUT, ST_FAIL };

static bench_args g_a;
static echo_extra_opts g_x;
static const char *g_nbio;
static unsigned char g_base[SMALL];
static uint64_t g_phase_ns, g_pp_budget_ns;

typedef struct config {
    const char *name;
    echo_server_kind kind;
    bool wait;
} config;

static const config g_configs[] = {
    {"nbio spin", ECHO_SRV_NBIO, false},
    {"nbio wait", ECHO_SRV_NBIO, true},
    {"raw spin", ECHO_SRV_RAW, false},
    {"raw wait", ECHO_SRV_RAW, true},
};
#define NCONFIGS (sizeof g_configs / sizeof g_configs[0])

typedef struct pp_stats {
    int st;
    uint64_t samples;
    double med, p99;
} pp_stats;

typedef struct result {
    int st_open, st_rss;
    long conns, echoed;
    double open_secs;
    pp_stats one, many;
    long rss0, rss1; /* KiB */
} result;

/* ---- ping-pong on the first connection --------------------------------------- */

/* Up to `iters` recorded round trips (after `warm`), stopping early once
 * g_pp_budget_ns has passed; a round trip still in progress gets until
 * g_phase_ns from the start. */
static int pingpong(echo_conn *c, echo_rx *rx, uint64_t iters, uint64_t warm, pp_stats *out,
                    const char **why)
{
    memset(out, 0, sizeof *out);
    double *rtt = malloc(iters * sizeof *rtt);
    if (rtt == NULL)
        bench_die("out of memory");
    unsigned char frame[FSZ], rb[4096];
    uint64_t start = bench_now_ns(), budget = start + g_pp_budget_ns, hard = start + g_phase_ns;
    uint64_t warm_end = start + g_pp_budget_ns / 10; /* the warm-up takes at most 10% */
    int st = ST_OK;
    uint64_t n = 0;
    bool warming = warm > 0;
    for (uint64_t i = 0; n < iters && st == ST_OK; i++) {
        uint64_t now = bench_now_ns();
        if (now > budget)
            break;
        if (warming && (i >= warm || now > warm_end))
            warming = false;
        uint64_t seq = rx->seq;
        echo_frame_build(frame, g_base, SMALL, seq, 0);
        uint64_t t0 = bench_now_ns();
        size_t sent = 0;
        for (uint64_t spin = 1; sent < FSZ && st == ST_OK; spin++) {
            long k = echo_conn_send(c, frame + sent, FSZ - sent, why);
            if (k < 0)
                st = ST_FAIL;
            else
                sent += (size_t)k;
            if ((spin & 4095) == 0 && bench_now_ns() > hard)
                st = ST_TIMEOUT;
        }
        for (uint64_t spin = 1; rx->seq == seq && st == ST_OK; spin++) {
            long k = echo_conn_recv(c, rb, sizeof rb, why);
            if (k < 0) {
                st = ST_FAIL;
            } else if (k > 0 && echo_rx_feed(rx, rb, (size_t)k) != 0) {
                *why = rx->why;
                st = ST_FAIL;
            }
            if ((spin & 4095) == 0 && bench_now_ns() > hard)
                st = ST_TIMEOUT;
        }
        uint64_t t1 = bench_now_ns();
        if (st == ST_OK && (rx->seq != seq + 1 || rx->hdr_have != 0 || rx->in_payload)) {
            *why = "more than one echo came back for one frame";
            st = ST_FAIL;
        }
        if (st == ST_OK && !warming)
            rtt[n++] = (double)(t1 - t0) / 1000.0;
    }
    out->st = st == ST_OK && n == 0 ? ST_TIMEOUT : st;
    out->samples = n;
    if (n > 0) {
        bench_sort(rtt, n);
        out->med = bench_quantile_sorted(rtt, n, 0.5);
        out->p99 = bench_quantile_sorted(rtt, n, 0.99);
    }
    free(rtt);
    return out->st;
}

/* ---- opening the other connections ------------------------------------------- */

enum { C_CONNECTING, C_ECHOING, C_DONE };

/* Opens fds[first..m) (salt = index), one echoed frame each. */
static int open_all(const echo_server_proc *p, int *fds, long first, long m, long *echoed,
                    const char **why, char *whybuf, size_t whylen)
{
    int ep = epoll_create1(EPOLL_CLOEXEC);
    if (ep < 0)
        bench_die("epoll_create1: %s", strerror(errno));
    static unsigned char rb[BATCH][FSZ], expect[FSZ];
    static unsigned char state[BATCH], got[BATCH];
    struct epoll_event evs[512];
    uint64_t deadline = bench_now_ns() + g_phase_ns;
    int st = ST_OK;
    for (long b = first; b < m && st == ST_OK; b += BATCH) {
        long end = b + BATCH < m ? b + BATCH : m;
        long pending = 0;
        for (long i = b; i < end; i++) {
            int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
            if (fd < 0) {
                snprintf(whybuf, whylen, "socket (connection %ld): %s", i, strerror(errno));
                *why = whybuf;
                st = ST_FAIL;
                break;
            }
            fds[i] = fd;
            int one = 1;
            (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
            if (connect(fd, (const struct sockaddr *)&p->sa, sizeof p->sa) != 0 &&
                errno != EINPROGRESS) {
                snprintf(whybuf, whylen, "connect (connection %ld): %s", i, strerror(errno));
                *why = whybuf;
                st = ST_FAIL;
                break;
            }
            state[i - b] = C_CONNECTING;
            got[i - b] = 0;
            struct epoll_event e = {.events = EPOLLOUT, .data.u64 = (uint64_t)i};
            if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0)
                bench_die("epoll_ctl: %s", strerror(errno));
            pending++;
        }
        while (pending > 0 && st == ST_OK) {
            if (bench_now_ns() > deadline) {
                st = ST_TIMEOUT;
                break;
            }
            int n = epoll_wait(ep, evs, 512, 50);
            if (n < 0 && errno != EINTR)
                bench_die("epoll_wait: %s", strerror(errno));
            for (int k = 0; k < n && st == ST_OK; k++) {
                long i = (long)evs[k].data.u64, j = i - b;
                int fd = fds[i];
                if (state[j] == C_CONNECTING) {
                    int err = 0;
                    socklen_t el = sizeof err;
                    if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &err, &el) != 0)
                        err = errno;
                    if (err != 0) {
                        snprintf(whybuf, whylen, "connect (connection %ld): %s", i,
                                 strerror(err));
                        *why = whybuf;
                        st = ST_FAIL;
                        break;
                    }
                    unsigned char frame[FSZ];
                    echo_frame_build(frame, g_base, SMALL, 0, (uint64_t)i);
                    ssize_t w = send(fd, frame, FSZ, MSG_NOSIGNAL);
                    if (w != FSZ) {
                        snprintf(whybuf, whylen, "send (connection %ld): %s", i,
                                 w < 0 ? strerror(errno) : "partial send of 72 bytes");
                        *why = whybuf;
                        st = ST_FAIL;
                        break;
                    }
                    state[j] = C_ECHOING;
                    struct epoll_event e = {.events = EPOLLIN, .data.u64 = (uint64_t)i};
                    (void)epoll_ctl(ep, EPOLL_CTL_MOD, fd, &e);
                } else if (state[j] == C_ECHOING) {
                    ssize_t r = recv(fd, rb[j] + got[j], FSZ - got[j], 0);
                    if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
                        continue;
                    if (r <= 0) {
                        snprintf(whybuf, whylen, "connection %ld: %s before its echo", i,
                                 r == 0 ? "closed by the server" : strerror(errno));
                        *why = whybuf;
                        st = ST_FAIL;
                        break;
                    }
                    got[j] = (unsigned char)(got[j] + r);
                    if (got[j] < FSZ)
                        continue;
                    echo_frame_build(expect, g_base, SMALL, 0, (uint64_t)i);
                    unsigned char extra;
                    if (memcmp(rb[j], expect, FSZ) != 0 ||
                        recv(fd, &extra, 1, MSG_PEEK | MSG_DONTWAIT) > 0) {
                        snprintf(whybuf, whylen, "connection %ld: wrong echo", i);
                        *why = whybuf;
                        st = ST_FAIL;
                        break;
                    }
                    state[j] = C_DONE;
                    (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
                    pending--;
                    (*echoed)++;
                }
            }
        }
    }
    close(ep);
    return st;
}

/* ---- one configuration -------------------------------------------------------- */

static int run_config(const config *cf, long conns, result *res)
{
    memset(res, 0, sizeof *res);
    res->conns = conns;
    res->st_open = res->st_rss = ST_TIMEOUT;
    res->one.st = res->many.st = ST_TIMEOUT;
    echo_server_opts o = {cf->kind, false, cf->wait, g_a.pin, g_nbio};
    echo_server_proc p;
    if (echo_server_start(&p, &o, 5000) != 0)
        return ST_FAIL;
    int *fds = malloc((size_t)conns * sizeof *fds);
    if (fds == NULL)
        bench_die("out of memory");
    for (long i = 0; i < conns; i++)
        fds[i] = -1;
    const char *why = "?";
    char whybuf[256];
    int rc = ST_OK;
    uint64_t iters = bench_scaled(&g_a, 20000, 1000), warm = iters / 10;

    /* Let the server settle (spin or sleep) before its baseline RSS. */
    struct timespec ts = {0, 50000000};
    nanosleep(&ts, NULL);
    res->rss0 = echo_rss_kib(p.pid);

    echo_conn c;
    echo_rx rx;
    echo_rx_init(&rx, g_base, SMALL, 0);
    if (echo_conn_open(&c, &p, false, 5000) != 0) {
        why = "could not connect";
        rc = ST_FAIL;
        goto out;
    }
    fds[0] = c.fd;
    if (pingpong(&c, &rx, iters, warm, &res->one, &why) == ST_FAIL) {
        rc = ST_FAIL;
        goto out;
    }
    res->echoed = res->one.st == ST_OK; /* the first connection's echoes came back */
    uint64_t t0 = bench_now_ns();
    res->st_open = open_all(&p, fds, 1, conns, &res->echoed, &why, whybuf, sizeof whybuf);
    res->open_secs = (double)(bench_now_ns() - t0) / 1e9;
    if (res->st_open == ST_FAIL) {
        rc = ST_FAIL;
        goto out;
    }
    if (res->st_open == ST_OK) {
        res->rss1 = echo_rss_kib(p.pid);
        res->st_rss = res->rss0 > 0 && res->rss1 > 0 ? ST_OK : ST_FAIL;
        if (pingpong(&c, &rx, iters, warm, &res->many, &why) == ST_FAIL)
            rc = ST_FAIL;
    }
out:
    if (rc == ST_FAIL)
        fprintf(stderr, "bench: %s: FAILED: %s\n", cf->name, why);
    /* Signal the server, then close our side: the nbio server drains on
     * SIGTERM (closes gracefully, waits for each client's end of stream). */
    echo_server_signal(&p);
    for (long i = 0; i < conns; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    int status = echo_server_wait(&p, ECHO_STOP_MS);
    if (status == -1)
        fprintf(stderr, "bench: warning: %s server had to be killed\n", cf->name);
    else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
        fprintf(stderr, "bench: warning: %s server died of signal %d\n", cf->name,
                WTERMSIG(status));
    free(fds);
    return rc;
}

static void fmt_rtt(char *out, size_t len, const pp_stats *s)
{
    if (s->st == ST_OK)
        snprintf(out, len, "%.2f us (p99 %.2f, %" PRIu64 " rt)", s->med, s->p99, s->samples);
    else
        snprintf(out, len, "%s", s->st == ST_TIMEOUT ? "TIMEOUT" : "FAILED");
}

static void print_result(const config *cf, const result *r)
{
    char one[96], many[96], ratio[64], rss[96], open[96];
    fmt_rtt(one, sizeof one, &r->one);
    fmt_rtt(many, sizeof many, &r->many);
    if (r->one.st == ST_OK && r->many.st == ST_OK)
        snprintf(ratio, sizeof ratio, "%.2f", r->many.med / r->one.med);
    else
        snprintf(ratio, sizeof ratio, "TIMEOUT");
    if (r->st_rss == ST_OK)
        snprintf(rss, sizeof rss, "%.2f KiB/conn (%.1f -> %.1f MiB)",
                 (double)(r->rss1 - r->rss0) / (double)r->conns, r->rss0 / 1024.0,
                 r->rss1 / 1024.0);
    else
        snprintf(rss, sizeof rss, "TIMEOUT");
    if (r->st_open == ST_OK)
        snprintf(open, sizeof open, "%ld conns open+echoed in %.2f s", r->conns, r->open_secs);
    else
        snprintf(open, sizeof open, "open+echo TIMEOUT (%ld of %ld echoed in %.0f s)", r->echoed,
                 r->conns, r->open_secs);
    printf("%-9s  %s\n", cf->name, open);
    printf("%-9s  rtt 1 conn %s  rtt %ld conns %s  ratio %s (target <= 2)\n", cf->name, one,
           r->conns, many, ratio);
    printf("%-9s  server rss %s\n", cf->name, rss);
    fflush(stdout);
}

int main(int argc, char **argv)
{
    echo_take_extra_args(&argc, argv, &g_x);
    bench_parse_args(argc, argv, &g_a,
                     "  --conns N    connections (default 10000; --quick 200)\n"
                     "  --nbio PATH  the nbio program (default: <this program's dir>/../tools/nbio)\n"
                     "  --repeats N  passes over the four servers (default 1)\n"
                     "  --measure S  only the servers whose name contains S\n"
                     "               (nbio spin, nbio wait, raw spin, raw wait)\n");
    signal(SIGPIPE, SIG_IGN);
    g_nbio = echo_find_nbio(g_x.nbio_path);
    long conns = g_x.conns > 0 ? g_x.conns : g_a.quick ? 200 : 10000;
    long limit = echo_raise_nofile();
    if (limit < conns + 64) {
        long n = limit - 64;
        printf("# RLIMIT_NOFILE is %ld (hard limit): too low for %ld connections (each side "
               "needs one descriptor per connection plus a few); using %ld\n",
               limit, conns, n);
        if (n < 2)
            bench_die("RLIMIT_NOFILE too low");
        conns = n;
    }
    int passes = g_x.repeats_given ? g_a.repeats : 1;
    bench_fill_base(g_base, SMALL);
    g_phase_ns = (g_a.quick ? 10 : 60) * 1000000000ull;
    g_pp_budget_ns = g_a.quick ? 500000000ull : 10000000000ull;
    bench_pin_thread(0); /* with --pin: the client on CPU 0, servers on CPU 1 */
    printf("# bench_scale: %ld connections to nbio echo-server (u64 framing, --idle spin|wait) "
           "and a raw epoll echo loop, each in a child process%s; RLIMIT_NOFILE %ld\n",
           conns, g_a.pin ? " (client CPU 0, server CPU 1)" : "", limit);
    printf("# server: %s\n", g_nbio);
    fflush(stdout);
    int rc = 0;
    result res[NCONFIGS];
    bool ran[NCONFIGS] = {false};
    for (int pass = 0; pass < passes; pass++) {
        for (size_t i = 0; i < NCONFIGS; i++) {
            const config *cf = &g_configs[i];
            if (g_a.only != 0 && g_a.only != (cf->kind == ECHO_SRV_NBIO ? 2 : 1))
                continue;
            if (g_a.measure != NULL && strstr(cf->name, g_a.measure) == NULL)
                continue;
            if (run_config(cf, conns, &res[i]) == ST_FAIL)
                rc = 1;
            ran[i] = true;
            print_result(cf, &res[i]);
        }
    }
    printf("# summary (last pass): server, RTT ratio %ld conns / 1 conn (target <= 2), server "
           "RSS per connection\n",
           conns);
    for (size_t i = 0; i < NCONFIGS; i++) {
        if (!ran[i])
            continue;
        const result *r = &res[i];
        char ratio[32], rss[32];
        if (r->one.st == ST_OK && r->many.st == ST_OK)
            snprintf(ratio, sizeof ratio, "%.2f", r->many.med / r->one.med);
        else
            snprintf(ratio, sizeof ratio, "TIMEOUT");
        if (r->st_rss == ST_OK)
            snprintf(rss, sizeof rss, "%.2f KiB",
                     (double)(r->rss1 - r->rss0) / (double)r->conns);
        else
            snprintf(rss, sizeof rss, "TIMEOUT");
        printf("summary %-9s rtt_ratio %-8s rss_per_conn %s\n", g_configs[i].name, ratio, rss);
    }
    if (rc != 0)
        printf("FAILED: wrong echoes or failed connections (see stderr)\n");
    else
        printf("# every echo verified\n");
    return rc;
}
