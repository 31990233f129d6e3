/*
 * Echo-pattern benchmarks: the `nbio echo-server` program (u64 framing,
 * --idle spin) against a baseline echo server written here, both in a
 * child process, driven by the same client in the same run:
 *
 *  - raw: a one-thread epoll loop on non-blocking sockets that reads what
 *    arrives into a per-connection buffer and writes it back as-is (no
 *    parsing; what the socket does not take stays pending and reading
 *    pauses until it is gone);
 *  - openssl (the TLS measures): the same loop with SSL_read/SSL_write.
 *
 * The client (this process, one thread, busy-polling raw non-blocking
 * sockets, or OpenSSL on them) writes u64 little-endian length-prefixed
 * frames and checks every byte of every echo:
 *
 *  stream64  64-byte frames, written while fewer than 4 MiB are in flight
 *            (sent, echo not yet received): echoed frames/s.
 *  stream1m  1 MiB frames, 4 in flight: echoed bytes/s.
 *  pingpong  one 64-byte frame at a time: round-trip time, median and p99.
 *  tls_*     the same over TLS 1.3 against the OpenSSL loop.
 *
 * Each measure runs --repeats rounds; a round runs the baseline then nbio,
 * each with a fresh server process and connection. The summary shows the
 * median of the rounds and the ratio nbio/baseline. Timings are never
 * asserted: the program fails only when an echo was wrong or a connection
 * failed. A run that exceeds its time bound is reported as TIMEOUT.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <unistd.h>

#include "bench_echo_common.h"

#define SMALL 64
#define BIG ((size_t)1 << 20)
#define INFLIGHT_BYTES ((uint64_t)4 << 20)
#define BIG_INFLIGHT 4
#define STAGE (64 * 1024)
#define RBUF (256 * 1024)

enum { RAW, NBIO };
enum { ST_OK, ST_TIMEOUT, ST_FAIL };
enum { M_S64, M_S1M, M_PP };

static bench_args g_a;
static echo_extra_opts g_x;
static const char *g_nbio;
static unsigned char *g_base; /* BIG bytes of pattern */
static unsigned char *g_rbuf; /* RBUF */
static uint64_t g_run_limit_ns;

typedef struct measure {
    const char *name;
    bool tls;
    int kind;
    double target;
    uint64_t count, min_count; /* frames (streams) or round trips (ping-pong) */
} measure;

static const measure g_measures[] = {
    {"stream64", false, M_S64, 0.5, 2000000, 20000},
    {"stream1m", false, M_S1M, 0.9, 1000, 8},
    {"pingpong", false, M_PP, 1.15, 50000, 500},
    {"tls_stream64", true, M_S64, 0.7, 1000000, 10000},
    {"tls_stream1m", true, M_S1M, 0.9, 300, 6},
    {"tls_pingpong", true, M_PP, 1.15, 30000, 300},
};

static const char *side_name(const measure *m, int side)
{
    return side == NBIO ? "nbio" : m->tls ? "openssl" : "raw";
}

/* ---- the client loops ---------------------------------------------------- */

/* A copy of a message that lives in a local variable. */
static const char *keep_why(const char *s)
{
    static char buf[200];
    snprintf(buf, sizeof buf, "%s", s);
    return buf;
}

static bool past(uint64_t deadline)
{
    return bench_now_ns() > deadline;
}

/* Checks that nothing arrives after the last expected echo. */
static int check_no_extra(echo_conn *c, const char **why)
{
    long n = echo_conn_recv(c, g_rbuf, RBUF, why);
    if (n > 0) {
        *why = "bytes arrived after the last echo";
        return -1;
    }
    return n < 0 ? -1 : 0;
}

/* 64-byte frames with up to 4 MiB in flight. */
static int stream_small(echo_conn *c, uint64_t count, uint64_t deadline, double *secs,
                        const char **why)
{
    const size_t fsz = ECHO_HDR + SMALL;
    unsigned char *stage = malloc(STAGE);
    if (stage == NULL)
        bench_die("out of memory");
    size_t off = 0, len = 0;
    uint64_t appended = 0;
    echo_rx rx;
    echo_rx_init(&rx, g_base, SMALL, 0);
    int st = ST_OK;
    uint64_t t0 = bench_now_ns();
    for (uint64_t it = 0; rx.seq < count; it++) {
        if (off == len) {
            off = len = 0;
        } else if (off > 0 && STAGE - len < fsz) {
            memmove(stage, stage + off, len - off);
            len -= off;
            off = 0;
        }
        while (appended < count && len + fsz <= STAGE &&
               (appended + 1 - rx.seq) * fsz <= INFLIGHT_BYTES) {
            echo_frame_build(stage + len, g_base, SMALL, appended, 0);
            len += fsz;
            appended++;
        }
        if (len > off) {
            long n = echo_conn_send(c, stage + off, len - off, why);
            if (n < 0) {
                st = ST_FAIL;
                break;
            }
            off += (size_t)n;
        }
        long n = echo_conn_recv(c, g_rbuf, RBUF, why);
        if (n < 0) {
            st = ST_FAIL;
            break;
        }
        if (n > 0 && echo_rx_feed(&rx, g_rbuf, (size_t)n) != 0) {
            *why = keep_why(rx.why);
            st = ST_FAIL;
            break;
        }
        if ((it & 255) == 0 && past(deadline)) {
            st = ST_TIMEOUT;
            break;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    free(stage);
    if (st == ST_OK && check_no_extra(c, why) != 0)
        st = ST_FAIL;
    return st;
}

/* 1 MiB frames, 4 in flight; header and payload sent straight from memory. */
static int stream_big(echo_conn *c, uint64_t count, uint64_t deadline, double *secs,
                      const char **why)
{
    unsigned char *payload = malloc(BIG), hdr[ECHO_HDR];
    if (payload == NULL)
        bench_die("out of memory");
    memcpy(payload, g_base, BIG);
    bench_put_le64(hdr, BIG);
    const size_t fsz = ECHO_HDR + BIG;
    uint64_t sending = 0;
    size_t pos = 0;
    echo_rx rx;
    echo_rx_init(&rx, g_base, BIG, 0);
    int st = ST_OK;
    uint64_t t0 = bench_now_ns();
    for (uint64_t it = 0; rx.seq < count; it++) {
        if (sending < count && sending - rx.seq < BIG_INFLIGHT) {
            if (pos == 0)
                bench_put_le64(payload, sending); /* the stamp of frame `sending` */
            long n;
            size_t po = pos < ECHO_HDR ? 0 : pos - ECHO_HDR;
            if (c->ssl == NULL) {
                struct iovec iov[2];
                int k = 0;
                if (pos < ECHO_HDR)
                    iov[k++] = (struct iovec){hdr + pos, ECHO_HDR - pos};
                iov[k++] = (struct iovec){payload + po, BIG - po};
                struct msghdr mh = {.msg_iov = iov, .msg_iovlen = (size_t)k};
                ssize_t w = sendmsg(c->fd, &mh, MSG_NOSIGNAL);
                if (w < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
                    *why = strerror(errno);
                    st = ST_FAIL;
                    break;
                }
                n = w < 0 ? 0 : (long)w;
            } else if (pos < ECHO_HDR) {
                n = echo_conn_send(c, hdr + pos, ECHO_HDR - pos, why);
            } else {
                n = echo_conn_send(c, payload + po, BIG - po, why);
            }
            if (n < 0) {
                st = ST_FAIL;
                break;
            }
            pos += (size_t)n;
            if (pos == fsz) {
                sending++;
                pos = 0;
            }
        }
        long n = echo_conn_recv(c, g_rbuf, RBUF, why);
        if (n < 0) {
            st = ST_FAIL;
            break;
        }
        if (n > 0 && echo_rx_feed(&rx, g_rbuf, (size_t)n) != 0) {
            *why = keep_why(rx.why);
            st = ST_FAIL;
            break;
        }
        if ((it & 63) == 0 && past(deadline)) {
            st = ST_TIMEOUT;
            break;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    free(payload);
    if (st == ST_OK && check_no_extra(c, why) != 0)
        st = ST_FAIL;
    return st;
}

/* One 64-byte frame at a time; rtt[i] in microseconds for the round trips
 * after the warm-up ones. */
static int pingpong(echo_conn *c, uint64_t iters, uint64_t warm, uint64_t deadline, double *rtt,
                    const char **why)
{
    unsigned char frame[ECHO_HDR + SMALL];
    echo_rx rx;
    echo_rx_init(&rx, g_base, SMALL, 0);
    for (uint64_t i = 0; i < warm + iters; i++) {
        echo_frame_build(frame, g_base, SMALL, i, 0);
        uint64_t t0 = bench_now_ns();
        size_t sent = 0;
        for (uint64_t spin = 1; sent < sizeof frame; spin++) {
            long n = echo_conn_send(c, frame + sent, sizeof frame - sent, why);
            if (n < 0)
                return ST_FAIL;
            sent += (size_t)n;
            if ((spin & 4095) == 0 && past(deadline))
                return ST_TIMEOUT;
        }
        for (uint64_t spin = 1; rx.seq <= i; spin++) {
            long n = echo_conn_recv(c, g_rbuf, 4096, why);
            if (n < 0)
                return ST_FAIL;
            if (n > 0 && echo_rx_feed(&rx, g_rbuf, (size_t)n) != 0) {
                *why = keep_why(rx.why);
                return ST_FAIL;
            }
            if ((spin & 4095) == 0 && past(deadline))
                return ST_TIMEOUT;
        }
        uint64_t t1 = bench_now_ns();
        if (rx.seq != i + 1) {
            *why = "more than one echo came back for one frame";
            return ST_FAIL;
        }
        if (i >= warm)
            rtt[i - warm] = (double)(t1 - t0) / 1000.0;
    }
    return check_no_extra(c, why) == 0 ? ST_OK : ST_FAIL;
}

/* ---- one run: a fresh server and connection ------------------------------- */

typedef struct run_result {
    int st;
    double v, p99; /* frames/s, bytes/s or RTT median; RTT p99 */
    char cipher[96];
} run_result;

static void warn_exit_status(const char *who, int status)
{
    if (status == -1)
        fprintf(stderr, "bench: warning: %s server had to be killed\n", who);
    else if (WIFSIGNALED(status) && WTERMSIG(status) != SIGTERM)
        fprintf(stderr, "bench: warning: %s server died of signal %d\n", who, WTERMSIG(status));
    else if (WIFEXITED(status) && WEXITSTATUS(status) != 0)
        fprintf(stderr, "bench: warning: %s server exited with status %d\n", who,
                WEXITSTATUS(status));
}

static void run_one(const measure *m, int side, uint64_t count, run_result *res)
{
    memset(res, 0, sizeof *res);
    echo_server_opts o = {side == NBIO ? ECHO_SRV_NBIO : ECHO_SRV_RAW, m->tls, false, g_a.pin,
                          g_nbio};
    echo_server_proc p;
    if (echo_server_start(&p, &o, 5000) != 0) {
        res->st = ST_FAIL;
        return;
    }
    echo_conn c;
    const char *why = "?";
    uint64_t deadline = bench_now_ns() + g_run_limit_ns;
    if (echo_conn_open(&c, &p, m->tls, 5000) != 0) {
        res->st = ST_FAIL;
        why = "could not connect";
    } else {
        if (c.ssl != NULL)
            snprintf(res->cipher, sizeof res->cipher, "%s %s", SSL_get_version(c.ssl),
                     SSL_get_cipher_name(c.ssl));
        double secs = 0;
        if (m->kind == M_S64) {
            res->st = stream_small(&c, count, deadline, &secs, &why);
            res->v = (double)count / secs;
        } else if (m->kind == M_S1M) {
            res->st = stream_big(&c, count, deadline, &secs, &why);
            res->v = (double)count * (double)BIG / secs;
        } else {
            uint64_t warm = count / 10;
            double *rtt = malloc(count * sizeof *rtt);
            if (rtt == NULL)
                bench_die("out of memory");
            res->st = pingpong(&c, count, warm, deadline, rtt, &why);
            if (res->st == ST_OK) {
                bench_sort(rtt, count);
                res->v = bench_quantile_sorted(rtt, count, 0.5);
                res->p99 = bench_quantile_sorted(rtt, count, 0.99);
            }
            free(rtt);
        }
        echo_conn_close(&c);
    }
    warn_exit_status(side_name(m, side), echo_server_stop(&p));
    if (res->st == ST_FAIL)
        fprintf(stderr, "bench: %s %s run FAILED: %s\n", m->name, side_name(m, side), why);
    else if (res->st == ST_TIMEOUT)
        fprintf(stderr, "bench: %s %s run: TIMEOUT after %.0f s\n", m->name, side_name(m, side),
                (double)g_run_limit_ns / 1e9);
}

/* ---- one measure: rounds, summary ------------------------------------------ */

static void fmt_value(char *out, size_t len, const measure *m, const double *v, int n,
                      const double *p99, int timeouts)
{
    if (n == 0) {
        snprintf(out, len, "%s", timeouts > 0 ? "TIMEOUT" : "FAILED");
        return;
    }
    double med = bench_median(v, (size_t)n);
    if (m->kind == M_S64)
        snprintf(out, len, "%.3f Mframes/s", med / 1e6);
    else if (m->kind == M_S1M)
        snprintf(out, len, "%.0f MB/s", med / 1e6);
    else
        snprintf(out, len, "median %.2f us p99 %.2f us", med, bench_median(p99, (size_t)n));
}

static int run_measure(const measure *m)
{
    uint64_t count = bench_scaled(&g_a, m->count, m->min_count);
    int reps = g_a.repeats > 64 ? 64 : g_a.repeats;
    double v[2][64], p99[2][64];
    int n[2] = {0, 0}, timeouts[2] = {0, 0}, failed = 0;
    char cipher[2][96] = {"", ""};
    for (int rep = 0; rep < reps; rep++) {
        for (int side = RAW; side <= NBIO; side++) {
            if (g_a.only != 0 && g_a.only != side + 1)
                continue;
            run_result r;
            run_one(m, side, count, &r);
            if (r.st == ST_FAIL) {
                failed = 1;
                continue;
            }
            if (r.st == ST_TIMEOUT) {
                timeouts[side]++;
                if (g_a.verbose)
                    printf("  run %d %-7s %-12s TIMEOUT\n", rep, side_name(m, side), m->name);
                continue;
            }
            snprintf(cipher[side], sizeof cipher[side], "%s", r.cipher);
            v[side][n[side]] = r.v;
            p99[side][n[side]] = r.p99;
            n[side]++;
            if (g_a.verbose) {
                char s[96];
                fmt_value(s, sizeof s, m, &r.v, 1, &r.p99, 0);
                printf("  run %d %-7s %-12s %s (%" PRIu64 " %s verified)\n", rep,
                       side_name(m, side), m->name, s, count,
                       m->kind == M_PP ? "round trips" : "frames");
                fflush(stdout);
            }
        }
    }
    char sn[96], sr[96], ratio[96];
    fmt_value(sn, sizeof sn, m, v[NBIO], n[NBIO], p99[NBIO], timeouts[NBIO]);
    fmt_value(sr, sizeof sr, m, v[RAW], n[RAW], p99[RAW], timeouts[RAW]);
    if (n[NBIO] > 0 && n[RAW] > 0)
        snprintf(ratio, sizeof ratio, "ratio %.3f (target %s %.2f)",
                 bench_median(v[NBIO], (size_t)n[NBIO]) / bench_median(v[RAW], (size_t)n[RAW]),
                 m->kind == M_PP ? "<=" : ">=", m->target);
    else
        snprintf(ratio, sizeof ratio, "ratio -");
    if (g_a.only == 2)
        printf("%-13s nbio %s\n", m->name, sn);
    else if (g_a.only == 1)
        printf("%-13s %s %s\n", m->name, side_name(m, RAW), sr);
    else
        printf("%-13s nbio %s  %s %s  %s\n", m->name, sn, side_name(m, RAW), sr, ratio);
    if (m->tls && g_a.verbose)
        printf("  (nbio: %s; openssl: %s)\n", cipher[NBIO], cipher[RAW]);
    fflush(stdout);
    return failed;
}

/* ---- --syscalls: strace -c on the server during stream64 -------------------- */

typedef struct sc_count {
    char name[32];
    unsigned long calls;
} sc_count;

static int cmp_sc(const void *x, const void *y)
{
    const sc_count *a = x, *b = y;
    return a->calls < b->calls ? 1 : a->calls > b->calls ? -1 : 0;
}

/* Parses `strace -c` output: returns how many syscall rows were read. */
static int parse_strace(const char *file, sc_count *out, int max)
{
    FILE *f = fopen(file, "re");
    if (f == NULL)
        return -1;
    char line[512];
    int n = 0;
    while (n < max && fgets(line, sizeof line, f) != NULL) {
        char *tok[8];
        int k = 0;
        for (char *s = strtok(line, " \t\n"); s != NULL && k < 8; s = strtok(NULL, " \t\n"))
            tok[k++] = s;
        if (k < 5 || k > 6 || !(tok[0][0] >= '0' && tok[0][0] <= '9') ||
            strcmp(tok[k - 1], "total") == 0)
            continue;
        snprintf(out[n].name, sizeof out[n].name, "%s", tok[k - 1]);
        out[n].calls = strtoul(tok[3], NULL, 10);
        n++;
    }
    fclose(f);
    return n;
}

static int syscalls_side(int side, uint64_t count)
{
    static const measure m = {"stream64", false, M_S64, 0.5, 0, 0};
    echo_server_opts o = {side == NBIO ? ECHO_SRV_NBIO : ECHO_SRV_RAW, false, false, g_a.pin,
                          g_nbio};
    echo_server_proc p;
    if (echo_server_start(&p, &o, 5000) != 0)
        return 1;
    char file[64], pidstr[16];
    snprintf(file, sizeof file, "/tmp/nbio-bench-strace-%d.txt", (int)getpid());
    snprintf(pidstr, sizeof pidstr, "%d", (int)p.pid);
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t st = fork();
    if (st == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        dup2(pfd[1], STDERR_FILENO);
        execlp("strace", "strace", "-c", "-f", "-p", pidstr, "-o", file, (char *)NULL);
        _exit(127);
    }
    close(pfd[1]);
    /* Wait for "Process N attached". */
    char buf[1024];
    size_t have = 0;
    uint64_t deadline = bench_now_ns() + 5000000000u;
    while (!past(deadline) && have < sizeof buf - 1) {
        struct pollfd q = {.fd = pfd[0], .events = POLLIN, .revents = 0};
        if (poll(&q, 1, 100) <= 0)
            continue;
        ssize_t n = read(pfd[0], buf + have, sizeof buf - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
        buf[have] = '\0';
        if (strstr(buf, "attached") != NULL)
            break;
    }
    buf[have] = '\0';
    int rc = 0;
    if (strstr(buf, "attached") == NULL) {
        fprintf(stderr, "bench: strace did not attach: %s\n", buf);
        rc = 1;
    }
    echo_conn c;
    const char *why = "?";
    double secs = 0;
    int res = ST_FAIL;
    if (rc == 0 && echo_conn_open(&c, &p, false, 5000) == 0) {
        res = stream_small(&c, count, bench_now_ns() + 120000000000u, &secs, &why);
        echo_conn_close(&c);
    }
    kill(st, SIGINT);
    int status;
    uint64_t wd = bench_now_ns() + 10000000000u;
    while (waitpid(st, &status, WNOHANG) == 0) {
        if (past(wd)) {
            kill(st, SIGKILL);
            waitpid(st, &status, 0);
            break;
        }
        (void)read(pfd[0], buf, sizeof buf); /* drain strace's messages */
    }
    close(pfd[0]);
    warn_exit_status(side_name(&m, side), echo_server_stop(&p));
    if (rc != 0)
        return rc;
    if (res != ST_OK) {
        fprintf(stderr, "bench: syscalls %s stream64 run %s: %s\n", side_name(&m, side),
                res == ST_TIMEOUT ? "TIMEOUT" : "FAILED", why);
        unlink(file);
        return res == ST_FAIL;
    }
    sc_count sc[128];
    int n = parse_strace(file, sc, 128);
    unlink(file);
    if (n <= 0) {
        fprintf(stderr, "bench: no strace -c summary\n");
        return 0;
    }
    qsort(sc, (size_t)n, sizeof *sc, cmp_sc);
    double writes = 0, reads = 0, all = 0;
    for (int i = 0; i < n; i++) {
        double per = (double)sc[i].calls / (double)count;
        all += per;
        if (strcmp(sc[i].name, "sendmsg") == 0 || strcmp(sc[i].name, "sendto") == 0 ||
            strcmp(sc[i].name, "write") == 0 || strcmp(sc[i].name, "writev") == 0 ||
            strcmp(sc[i].name, "sendmmsg") == 0)
            writes += per;
        if (strcmp(sc[i].name, "recvmsg") == 0 || strcmp(sc[i].name, "recvfrom") == 0 ||
            strcmp(sc[i].name, "read") == 0 || strcmp(sc[i].name, "readv") == 0 ||
            strcmp(sc[i].name, "recvmmsg") == 0)
            reads += per;
    }
    printf("syscalls %-4s per echoed frame: writes %.4f  reads %.4f  all %.4f  (%" PRIu64
           " frames; top:",
           side_name(&m, side), writes, reads, all, count);
    for (int i = 0; i < n && i < 6; i++)
        printf(" %s %.4f", sc[i].name, (double)sc[i].calls / (double)count);
    printf(")\n");
    fflush(stdout);
    return 0;
}

static int run_syscalls(void)
{
    uint64_t count = bench_scaled(&g_a, 200000, 20000);
    printf("# --syscalls: stream64 with strace -c -f attached to the server (timings "
           "meaningless; counts only)\n");
    int rc = 0;
    for (int side = RAW; side <= NBIO; side++)
        if (g_a.only == 0 || g_a.only == side + 1)
            rc |= syscalls_side(side, count);
    return rc;
}

int main(int argc, char **argv)
{
    echo_take_extra_args(&argc, argv, &g_x);
    bench_parse_args(argc, argv, &g_a,
                     "  --nbio PATH  the nbio program (default: <this program's dir>/../tools/nbio)\n"
                     "  --syscalls   also count the servers' system calls per echoed frame\n"
                     "               during stream64 (strace -c -f -p SERVER)\n"
                     "Measures: stream64 stream1m pingpong tls_stream64 tls_stream1m "
                     "tls_pingpong\n");
    signal(SIGPIPE, SIG_IGN);
    g_nbio = echo_find_nbio(g_x.nbio_path);
    echo_tls_setup();
    bench_pin_thread(0); /* with --pin: the client on CPU 0, servers on CPU 1 */
    g_base = malloc(BIG);
    g_rbuf = malloc(RBUF);
    if (g_base == NULL || g_rbuf == NULL)
        bench_die("out of memory");
    bench_fill_base(g_base, BIG);
    g_run_limit_ns = (g_a.quick ? 10 : 60) * 1000000000ull;
    printf("# bench_echo: nbio echo-server (u64 framing, --idle spin) vs a raw epoll echo loop "
           "/ plain OpenSSL echo loop, each in a child process%s; %d rounds, medians\n",
           g_a.pin ? " (client CPU 0, server CPU 1)" : "", g_a.repeats);
    printf("# server: %s\n", g_nbio);
    fflush(stdout);
    int rc = 0;
    for (size_t i = 0; i < sizeof g_measures / sizeof g_measures[0]; i++) {
        const measure *m = &g_measures[i];
        if (g_a.measure != NULL && strstr(m->name, g_a.measure) == NULL)
            continue;
        rc |= run_measure(m);
    }
    if (g_x.syscalls)
        rc |= run_syscalls();
    if (rc != 0)
        printf("FAILED: wrong echoes or failed connections (see stderr)\n");
    else
        printf("# every echoed byte verified\n");
    free(g_base);
    free(g_rbuf);
    return rc;
}
