/* Shared helpers of the benchmarks (see bench_common.h). */
#define _GNU_SOURCE
#include "bench_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <pthread.h>
#include <sched.h>
#include <time.h>
#include <unistd.h>

#include "nbio/frame.h"
#include "nbio/tcp.h"

void bench_die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("bench: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static bool g_pin;

void bench_pin_thread(int which)
{
    if (!g_pin)
        return;
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(n > 0 ? which % (int)n : 0, &set);
    (void)pthread_setaffinity_np(pthread_self(), sizeof set, &set);
}

void bench_parse_args(int argc, char **argv, bench_args *a, const char *usage_extra)
{
    a->scale = 1.0;
    a->repeats = 3;
    a->quick = false;
    a->verbose = false;
    a->only = 0;
    a->measure = NULL;
    a->pin = false;
    for (int i = 1; i < argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--quick") == 0) {
            a->quick = true;
        } else if (strcmp(s, "-v") == 0 || strcmp(s, "--verbose") == 0) {
            a->verbose = true;
        } else if (strcmp(s, "--scale") == 0 && i + 1 < argc) {
            a->scale = strtod(argv[++i], NULL);
            if (!(a->scale > 0))
                bench_die("--scale wants a positive number");
        } else if (strcmp(s, "--only") == 0 && i + 1 < argc) {
            i++;
            a->only = strcmp(argv[i], "raw") == 0 ? 1 : strcmp(argv[i], "nbio") == 0 ? 2 : -1;
            if (a->only < 0)
                bench_die("--only wants raw or nbio");
        } else if (strcmp(s, "--pin") == 0) {
            a->pin = true;
        } else if (strcmp(s, "--measure") == 0 && i + 1 < argc) {
            a->measure = argv[++i];
        } else if (strcmp(s, "--repeats") == 0 && i + 1 < argc) {
            a->repeats = atoi(argv[++i]);
            if (a->repeats < 1)
                bench_die("--repeats wants a positive number");
        } else if (strcmp(s, "--help") == 0 || strcmp(s, "-h") == 0) {
            printf("usage: %s [--quick] [--scale F] [--repeats N] [-v]\n"
                   "  --quick      smoke run (well under a second), 2 repeats\n"
                   "  --scale F    multiply iteration counts by F (default 1)\n"
                   "  --repeats N  raw/nbio run pairs per measure (default 3)\n"
                   "  -v           print every run, not only the summary\n"
                   "  --only M     run only the raw or the nbio side (for profiling;\n"
                   "               no ratios are printed)\n"
                   "  --measure S  run only the measures whose name contains S\n"
                   "  --pin        bind the two busy threads to CPUs 0 and 1\n%s",
                   argv[0], usage_extra != NULL ? usage_extra : "");
            exit(0);
        } else {
            bench_die("unknown argument '%s' (try --help)", s);
        }
    }
    g_pin = a->pin;
    if (a->quick) {
        a->scale *= 0.02;
        if (a->repeats > 2)
            a->repeats = 2;
    }
}

uint64_t bench_scaled(const bench_args *a, uint64_t count, uint64_t min)
{
    double v = (double)count * a->scale;
    uint64_t n = (uint64_t)v;
    return n < min ? min : n;
}

uint64_t bench_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* ---- payloads and checksums --------------------------------------------- */

void bench_fill_base(unsigned char *buf, size_t len)
{
    uint64_t x = 0x243f6a8885a308d3ull;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (unsigned char)(x >> 24);
    }
}

void bench_ref_init(bench_ref *r, const unsigned char *base, size_t len)
{
    bench_lanes(base, len, r->a, r->b);
    r->len = len;
    r->w0 = len >= 8 ? bench_load64(base) : 0;
    size_t words = len / 8 + (len % 8 ? 1 : 0);
    r->m0 = (words + 3) / 4;
}

uint64_t bench_ref_sum(const bench_ref *r, uint64_t seq)
{
    if (r->len < 8)
        return bench_combine(r->a, r->b, r->len);
    uint64_t a[4], b[4];
    memcpy(a, r->a, sizeof a);
    memcpy(b, r->b, sizeof b);
    uint64_t d = seq - r->w0; /* word 0 is the first in lane 0: counted m0 times in b */
    a[0] += d;
    b[0] += d * r->m0;
    return bench_combine(a, b, r->len);
}

uint64_t bench_ref_run(const bench_ref *r, uint64_t first, uint64_t count)
{
    uint64_t h = BENCH_FOLD_INIT;
    for (uint64_t i = 0; i < count; i++)
        h = bench_fold(h, bench_ref_sum(r, first + i));
    return h;
}

/* ---- statistics ---------------------------------------------------------- */

static int cmp_double(const void *x, const void *y)
{
    double a = *(const double *)x, b = *(const double *)y;
    return a < b ? -1 : a > b;
}

void bench_sort(double *v, size_t n)
{
    qsort(v, n, sizeof *v, cmp_double);
}

double bench_quantile_sorted(const double *v, size_t n, double q)
{
    if (n == 0)
        return 0;
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

double bench_min(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] < m ? v[i] : m;
    return m;
}

double bench_max(const double *v, size_t n)
{
    double m = v[0];
    for (size_t i = 1; i < n; i++)
        m = v[i] > m ? v[i] : m;
    return m;
}

double bench_median(const double *v, size_t n)
{
    double tmp[64];
    if (n == 0 || n > 64)
        return 0;
    memcpy(tmp, v, n * sizeof *v);
    bench_sort(tmp, n);
    return n % 2 ? tmp[n / 2] : (tmp[n / 2 - 1] + tmp[n / 2]) / 2;
}

/* ---- connections --------------------------------------------------------- */

static int set_nb_nodelay(int fd)
{
    int one = 1;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
}

int bench_raw_pair(int *client, int *server)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (l < 0) {
        perror("bench: socket");
        return -1;
    }
    struct sockaddr_in sa;
    memset(&sa, 0, sizeof sa);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    sa.sin_port = 0;
    socklen_t sl = sizeof sa;
    if (bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 4) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) != 0) {
        perror("bench: bind/listen 127.0.0.1:0");
        close(l);
        return -1;
    }
    int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c < 0 || connect(c, (struct sockaddr *)&sa, sizeof sa) != 0) {
        perror("bench: connect");
        close(l);
        if (c >= 0)
            close(c);
        return -1;
    }
    int s = accept(l, NULL, NULL);
    close(l);
    if (s < 0) {
        perror("bench: accept");
        close(c);
        return -1;
    }
    if (set_nb_nodelay(c) != 0 || set_nb_nodelay(s) != 0) {
        perror("bench: fcntl/setsockopt");
        close(c);
        close(s);
        return -1;
    }
    *client = c;
    *server = s;
    return 0;
}

int bench_nbio_tcp_pair(nbio_session **client, nbio_session **server)
{
    *client = *server = NULL;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    if (l == NULL || nbio_status(l) != NBIO_ESTABLISHED) {
        fprintf(stderr, "bench: nbio listen: %s\n", l != NULL ? nbio_detail(l) : "no memory");
        nbio_free(l);
        return -1;
    }
    char addr[128];
    if (nbio_local_address(l, addr, sizeof addr) <= 0) {
        fprintf(stderr, "bench: nbio_local_address failed\n");
        nbio_free(l);
        return -1;
    }
    nbio_session *c = nbio_tcp_connect(addr, NULL);
    nbio_session *s = NULL;
    uint64_t deadline = bench_now_ns() + 5000000000u;
    while (c != NULL && (s == NULL || nbio_status(c) == NBIO_ESTABLISHING)) {
        if (nbio_drive(c) < 0)
            break;
        if (s == NULL && nbio_accept(l, &s) < 0)
            break;
        if (bench_now_ns() > deadline)
            break;
    }
    nbio_free(l);
    if (c == NULL || s == NULL || nbio_status(c) != NBIO_ESTABLISHED ||
        nbio_status(s) != NBIO_ESTABLISHED) {
        fprintf(stderr, "bench: nbio connect %s: %s\n", addr,
                c != NULL ? nbio_detail(c) : "no memory");
        nbio_free(c);
        nbio_free(s);
        return -1;
    }
    *client = c;
    *server = s;
    return 0;
}

int bench_nbio_pair(nbio_session **client, nbio_session **server,
                    const struct nbio_frame_options *frame_opt)
{
    nbio_session *c, *s;
    if (bench_nbio_tcp_pair(&c, &s) != 0)
        return -1;
    *client = nbio_frame_new(c, &nbio_frame_u64le, frame_opt);
    *server = nbio_frame_new(s, &nbio_frame_u64le, frame_opt);
    if (*client == NULL || *server == NULL) {
        fprintf(stderr, "bench: nbio_frame_new: out of memory\n");
        nbio_free(*client);
        nbio_free(*server);
        return -1;
    }
    return 0;
}

int bench_send_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = send(fd, p, len, MSG_NOSIGNAL);
        if (n > 0) {
            p += n;
            len -= (size_t)n;
        } else if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR) {
            perror("bench: send");
            return -1;
        }
    }
    return 0;
}
