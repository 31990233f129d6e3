/*
 * HTTP client requests per second on ONE keep-alive connection, against the
 * same local server, nbio beside libcurl in the same run:
 *
 *  seq         nbio_http_client over nbio_tcp_connect: write a GET, busy-poll
 *              nbio_http_read_response until the whole response is there,
 *              N times.
 *  pipeline16  the same session with 16 requests in flight: write 16, then
 *              for each response read write one more.
 *  libcurl     one easy handle (curl_easy_init once), curl_easy_perform N
 *              times on the same URL; libcurl keeps the connection, and
 *              CURLINFO_NUM_CONNECTS is checked to be 0 after the first
 *              request. libcurl has no HTTP/1.1 pipelining (removed in
 *              7.65.0), so its sequential rate is also the baseline of
 *              pipeline16 (measured again next to the pipelined run).
 *
 * The server is nginx (one process: master_process off, worker_processes
 * 1, access log off, keepalive_requests 1000000, open_file_cache so the
 * file is not reopened per request) serving a 100-byte static
 * file from a private temporary directory, started as a child process on a
 * port picked by binding port 0, or, when nginx is not installed (or with
 * --builtin), a small epoll responder forked from this program that answers
 * every request head with a fixed response with a 100-byte body. With
 * --pin the client runs on CPU 0 and the server on CPU 1.
 *
 * Each round runs libcurl, nbio seq, libcurl, nbio pipeline16, each on a
 * fresh connection after a warm-up on it; the summary shows the medians of
 * --repeats rounds and the ratio nbio/libcurl. Every response is checked
 * (status 200, the exact 100 body bytes, keep-alive, in order); a wrong
 * response or a failed run makes the program exit non-zero. Timings are
 * never asserted.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sched.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "bench_common.h"
#include "nbio/errors.h"
#include "nbio/http_client.h"
#include "nbio/tcp.h"

#define BODY_LEN 100
#define DEPTH 16
#define PATH_FILE "/f"

enum { CURL_SIDE, NBIO_SIDE };
enum { ST_OK, ST_TIMEOUT, ST_FAIL };
enum { M_SEQ, M_PIPE };

typedef struct measure {
    const char *name;
    int kind;
    double target;
    uint64_t count, min_count;
} measure;

static const measure g_measures[] = {
    {"seq", M_SEQ, 1.5, 20000, 200},
    {"pipeline16", M_PIPE, 5.0, 100000, 1000},
};
#define NMEASURES (sizeof g_measures / sizeof g_measures[0])

static bench_args g_a;
static const char *g_nginx_opt; /* --nginx PATH */
static bool g_builtin_opt;      /* --builtin */
static uint64_t g_run_limit_ns;

static unsigned char g_body[BODY_LEN]; /* what every response body must be */
static char g_dir[64];                 /* private temporary directory ("" when none) */
static char g_hostport[64];            /* "127.0.0.1:PORT" */
static char g_url[128];
static char g_server_desc[768];
static char g_server_header[64];       /* the Server header nginx sent */
static pid_t g_server_pid = -1;

/* ---- small helpers -------------------------------------------------------- */

static bool past(uint64_t deadline)
{
    return bench_now_ns() > deadline;
}

static void pin_process(int which)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(n > 0 ? which % (int)n : 0, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

static int rm_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    (void)remove(path);
    return 0;
}

static void stop_server(void)
{
    if (g_server_pid <= 0)
        return;
    (void)kill(g_server_pid, SIGTERM);
    int status = 0;
    uint64_t deadline = bench_now_ns() + 5000000000ull;
    for (;;) {
        pid_t r = waitpid(g_server_pid, &status, WNOHANG);
        if (r == g_server_pid || (r < 0 && errno != EINTR))
            break;
        if (past(deadline)) {
            fprintf(stderr, "bench: server %d still running 5 s after SIGTERM: SIGKILL\n",
                    (int)g_server_pid);
            (void)kill(g_server_pid, SIGKILL);
            (void)waitpid(g_server_pid, &status, 0);
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    g_server_pid = -1;
}

static void cleanup(void)
{
    stop_server();
    if (g_dir[0] != '\0') {
        (void)nftw(g_dir, rm_entry, 16, FTW_DEPTH | FTW_PHYS);
        g_dir[0] = '\0';
    }
}

static void write_file(const char *path, const void *data, size_t len, mode_t mode)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);
    if (fd < 0 || write(fd, data, len) != (ssize_t)len || fchmod(fd, mode) != 0)
        bench_die("write %s: %s", path, strerror(errno));
    close(fd);
}

/* A free port on 127.0.0.1: bind port 0, read it, close. */
static int pick_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof sa) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        bench_die("picking a port: %s", strerror(errno));
    close(fd);
    return ntohs(sa.sin_port);
}

/* Tries a blocking connect to the port: 0 when something listens. */
static int probe(int port)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    int r = connect(fd, (struct sockaddr *)&sa, sizeof sa);
    close(fd);
    return r;
}

/* Prints a file of the temporary directory to stderr (nginx's logs). */
static void dump_file(const char *name)
{
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return;
    while (fgets(line, sizeof line, f) != NULL)
        fprintf(stderr, "  %s: %s", name, line);
    fclose(f);
}

/* True when a file of the temporary directory contains needle. */
static bool file_has(const char *name, const char *needle)
{
    char path[128], line[512];
    snprintf(path, sizeof path, "%s/%s", g_dir, name);
    FILE *f = fopen(path, "re");
    bool found = false;
    if (f == NULL)
        return false;
    while (!found && fgets(line, sizeof line, f) != NULL)
        found = strstr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* ---- the built-in responder (child process) ----------------------------- */

/*
 * One thread, level-triggered epoll, blocking in epoll_wait when idle (as
 * nginx does). Each connection collects request bytes; for every complete
 * request head ("\r\n\r\n"; requests have no body here) it appends one
 * fixed response to its output and sends what it can; the rest waits for
 * EPOLLOUT, reading paused.
 */
#define RESP_IN 16384

typedef struct rconn {
    int fd;
    char in[RESP_IN];
    size_t inlen, scanned;
    char *out;
    size_t outoff, outlen, outcap;
} rconn;

static char g_resp[512];
static size_t g_resp_len;

static void rconn_close(int ep, rconn **tab, int fd)
{
    rconn *c = tab[fd];
    (void)epoll_ctl(ep, EPOLL_CTL_DEL, fd, NULL);
    close(fd);
    if (c != NULL) {
        free(c->out);
        free(c);
    }
    tab[fd] = NULL;
}

/* Sends pending output. 0, or -1 when the connection is to be closed. */
static int rconn_send(int ep, rconn *c)
{
    while (c->outoff < c->outlen) {
        ssize_t n = send(c->fd, c->out + c->outoff, c->outlen - c->outoff, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN || errno == EWOULDBLOCK)
                break;
            return -1;
        }
        c->outoff += (size_t)n;
    }
    if (c->outoff == c->outlen)
        c->outoff = c->outlen = 0;
    struct epoll_event ev = {.events = c->outlen > 0 ? EPOLLOUT : EPOLLIN, .data.fd = c->fd};
    return epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &ev);
}

/* Answers every complete head in c->in. 0, or -1 to close. */
static int rconn_answer(rconn *c)
{
    size_t start = 0;
    for (;;) {
        size_t from = c->scanned > start + 3 ? c->scanned - 3 : start;
        char *e = memmem(c->in + from, c->inlen - from, "\r\n\r\n", 4);
        if (e == NULL) {
            c->scanned = c->inlen;
            break;
        }
        start = (size_t)(e - c->in) + 4;
        c->scanned = start;
        if (c->outlen + g_resp_len > c->outcap) {
            size_t cap = c->outcap ? c->outcap * 2 : 16384;
            while (cap < c->outlen + g_resp_len)
                cap *= 2;
            char *p = realloc(c->out, cap);
            if (p == NULL)
                return -1;
            c->out = p;
            c->outcap = cap;
        }
        memcpy(c->out + c->outlen, g_resp, g_resp_len);
        c->outlen += g_resp_len;
    }
    if (start > 0) {
        memmove(c->in, c->in + start, c->inlen - start);
        c->inlen -= start;
        c->scanned -= start;
    }
    return c->inlen == RESP_IN ? -1 : 0; /* a head that does not fit: give up */
}

static void builtin_main(int lfd)
{
    g_resp_len = (size_t)snprintf(g_resp, sizeof g_resp,
                                  "HTTP/1.1 200 OK\r\n"
                                  "Server: bench-builtin\r\n"
                                  "Content-Type: application/octet-stream\r\n"
                                  "Content-Length: %d\r\n"
                                  "Connection: keep-alive\r\n"
                                  "\r\n",
                                  BODY_LEN);
    memcpy(g_resp + g_resp_len, g_body, BODY_LEN);
    g_resp_len += BODY_LEN;
    int ep = epoll_create1(EPOLL_CLOEXEC);
    enum { MAXFD = 4096 };
    rconn **tab = calloc(MAXFD, sizeof *tab);
    if (ep < 0 || tab == NULL)
        _exit(3);
    struct epoll_event ev = {.events = EPOLLIN, .data.fd = lfd};
    if (epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &ev) != 0)
        _exit(3);
    struct epoll_event evs[64];
    for (;;) {
        int n = epoll_wait(ep, evs, 64, -1);
        if (n < 0 && errno != EINTR)
            _exit(3);
        for (int i = 0; i < n; i++) {
            int fd = evs[i].data.fd;
            if (fd == lfd) {
                int c;
                while ((c = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC)) >= 0) {
                    int one = 1;
                    (void)setsockopt(c, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
                    rconn *rc = c < MAXFD ? calloc(1, sizeof *rc) : NULL;
                    struct epoll_event ce = {.events = EPOLLIN, .data.fd = c};
                    if (rc == NULL || epoll_ctl(ep, EPOLL_CTL_ADD, c, &ce) != 0) {
                        free(rc);
                        close(c);
                        continue;
                    }
                    rc->fd = c;
                    tab[c] = rc;
                }
                continue;
            }
            rconn *c = tab[fd];
            if (c == NULL)
                continue;
            if (c->outlen > 0) {
                if (rconn_send(ep, c) != 0)
                    rconn_close(ep, tab, fd);
                continue;
            }
            bool closed = false;
            for (;;) {
                ssize_t r = recv(fd, c->in + c->inlen, RESP_IN - c->inlen, 0);
                if (r > 0) {
                    c->inlen += (size_t)r;
                    if (rconn_answer(c) != 0) {
                        closed = true;
                        break;
                    }
                    if (c->outlen > 0)
                        break; /* answer first */
                    continue;
                }
                if (r < 0 && errno == EINTR)
                    continue;
                if (r < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
                    break;
                closed = true; /* end of stream or an error */
                break;
            }
            if (closed || (c->outlen > 0 && rconn_send(ep, c) != 0))
                rconn_close(ep, tab, fd);
        }
    }
}

/* ---- starting the server --------------------------------------------------- */

static const char *find_nginx(void)
{
    static char buf[512];
    if (g_nginx_opt != NULL)
        return access(g_nginx_opt, X_OK) == 0 ? g_nginx_opt : NULL;
    const char *path = getenv("PATH");
    char list[2048];
    snprintf(list, sizeof list, "%s:/usr/sbin:/usr/local/sbin:/sbin:/usr/local/nginx/sbin",
             path != NULL ? path : "");
    for (char *save = NULL, *d = strtok_r(list, ":", &save); d != NULL;
         d = strtok_r(NULL, ":", &save)) {
        if (d[0] == '\0')
            continue;
        snprintf(buf, sizeof buf, "%s/nginx", d);
        if (access(buf, X_OK) == 0)
            return buf;
    }
    return NULL;
}

/* Forks a child that will run as the server: death with the parent, pinned
 * to CPU 1 with --pin. Returns the pid in the parent, 0 in the child. */
static pid_t fork_server(void)
{
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        /* A server must not outlive the benchmark (killed by a test timeout). */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        if (g_a.pin)
            pin_process(1);
    }
    return pid;
}

/* Waits until the server accepts connections. 0, or -1 when it exited or
 * did not listen within 5 s. */
static int await_server(int port)
{
    uint64_t deadline = bench_now_ns() + 5000000000ull;
    for (;;) {
        int status;
        if (waitpid(g_server_pid, &status, WNOHANG) == g_server_pid) {
            g_server_pid = -1;
            return -1;
        }
        if (probe(port) == 0)
            return 0;
        if (past(deadline))
            return -1;
        struct timespec ts = {0, 5000000};
        nanosleep(&ts, NULL);
    }
}

static int start_nginx(const char *nginx)
{
    char conf[4096], path[160];
    for (int attempt = 0; attempt < 3; attempt++) {
        int port = pick_port();
        /* No `user` directive: with master_process off nginx serves from the
         * process it was started as and never changes user (as root it
         * stays root); the document root is world-readable anyway. */
        int len = snprintf(conf, sizeof conf,
                           "worker_processes 1;\n"
                           "master_process off;\n"
                           "daemon off;\n"
                           "pid %s/nginx.pid;\n"
                           "error_log %s/error.log warn;\n"
                           "events { worker_connections 64; }\n"
                           "http {\n"
                           "    access_log off;\n"
                           "    keepalive_requests 1000000;\n"
                           "    keepalive_timeout 600s;\n"
                           "    default_type application/octet-stream;\n"
                           "    open_file_cache max=16 inactive=600s;\n"
                           "    open_file_cache_valid 600s;\n"
                           "    client_body_temp_path %s/tmp_body;\n"
                           "    proxy_temp_path %s/tmp_proxy;\n"
                           "    fastcgi_temp_path %s/tmp_fastcgi;\n"
                           "    uwsgi_temp_path %s/tmp_uwsgi;\n"
                           "    scgi_temp_path %s/tmp_scgi;\n"
                           "    server {\n"
                           "        listen 127.0.0.1:%d;\n"
                           "        root %s/www;\n"
                           "    }\n"
                           "}\n",
                           g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, g_dir, port, g_dir);
        snprintf(path, sizeof path, "%s/error.log", g_dir);
        (void)unlink(path);
        snprintf(path, sizeof path, "%s/nginx.conf", g_dir);
        write_file(path, conf, (size_t)len, 0644);
        pid_t pid = fork_server();
        if (pid == 0) {
            char errlog[160], out[160];
            snprintf(errlog, sizeof errlog, "%s/error.log", g_dir);
            snprintf(out, sizeof out, "%s/stderr.log", g_dir);
            int o = open(out, O_WRONLY | O_CREAT | O_TRUNC, 0644);
            int z = open("/dev/null", O_RDONLY);
            if (o < 0 || z < 0 || dup2(z, 0) < 0 || dup2(o, 1) < 0 || dup2(o, 2) < 0)
                _exit(127);
            execl(nginx, "nginx", "-p", g_dir, "-e", errlog, "-c", path, (char *)NULL);
            _exit(127);
        }
        g_server_pid = pid;
        if (await_server(port) == 0) {
            snprintf(g_hostport, sizeof g_hostport, "127.0.0.1:%d", port);
            snprintf(g_server_desc, sizeof g_server_desc,
                     "nginx (%s; one process: master_process off, worker_processes 1, "
                     "access_log off, keepalive_requests 1000000, open_file_cache; static file)",
                     nginx);
            return 0;
        }
        stop_server();
        fprintf(stderr, "bench: nginx did not start (attempt %d, port %d):\n", attempt + 1,
                port);
        dump_file("stderr.log");
        dump_file("error.log");
        if (!file_has("error.log", "in use"))
            break; /* only a port taken since we picked it is worth another try */
    }
    return -1;
}

static void start_builtin(void)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
    struct sockaddr_in sa = {.sin_family = AF_INET};
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof sa;
    if (l < 0 || bind(l, (struct sockaddr *)&sa, sizeof sa) != 0 || listen(l, 64) != 0 ||
        getsockname(l, (struct sockaddr *)&sa, &sl) != 0)
        bench_die("built-in responder: listen: %s", strerror(errno));
    pid_t pid = fork_server();
    if (pid == 0) {
        builtin_main(l);
        _exit(0);
    }
    close(l);
    g_server_pid = pid;
    snprintf(g_hostport, sizeof g_hostport, "127.0.0.1:%u", ntohs(sa.sin_port));
    snprintf(g_server_desc, sizeof g_server_desc,
             "built-in epoll responder (one process, fixed response with a %d-byte body)",
             BODY_LEN);
}

static void start_server(void)
{
    /* The body: 100 printable bytes that differ from run to run. */
    uint64_t x = bench_now_ns() ^ ((uint64_t)getpid() << 32);
    for (int i = 0; i < BODY_LEN; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        g_body[i] = (unsigned char)('!' + (x >> 33) % 94);
    }
    snprintf(g_dir, sizeof g_dir, "/tmp/nbio-bench-http-XXXXXX");
    if (mkdtemp(g_dir) == NULL) {
        g_dir[0] = '\0';
        bench_die("mkdtemp: %s", strerror(errno));
    }
    atexit(cleanup);
    char path[160];
    snprintf(path, sizeof path, "%s/www", g_dir);
    if (chmod(g_dir, 0755) != 0 || mkdir(path, 0755) != 0 || chmod(path, 0755) != 0)
        bench_die("%s: %s", path, strerror(errno));
    snprintf(path, sizeof path, "%s/www%s", g_dir, PATH_FILE);
    write_file(path, g_body, BODY_LEN, 0644);

    const char *nginx = g_builtin_opt ? NULL : find_nginx();
    if (g_nginx_opt != NULL && nginx == NULL)
        bench_die("--nginx %s: not executable", g_nginx_opt);
    if (nginx == NULL || start_nginx(nginx) != 0) {
        if (nginx != NULL)
            fprintf(stderr, "bench: falling back to the built-in responder\n");
        start_builtin();
    }
    snprintf(g_url, sizeof g_url, "http://%s%s", g_hostport, PATH_FILE);
}

/* ---- nbio ------------------------------------------------------------------- */

typedef struct run_result {
    int st;
    double rps;
    char why[512];
} run_result;

static int fail(run_result *res, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(run_result *res, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->why, sizeof res->why, fmt, ap);
    va_end(ap);
    res->st = ST_FAIL;
    return ST_FAIL;
}

static int check_response(const nbio_http_response *r, uint64_t want_index, run_result *res)
{
    if (r->part != NBIO_HTTP_WHOLE)
        return fail(res, "response %" PRIu64 ": not whole (part %d)", want_index, (int)r->part);
    if (r->index != (unsigned)want_index)
        return fail(res, "response index %u, expected %" PRIu64, r->index, want_index);
    if (r->head.status != 200)
        return fail(res, "response %" PRIu64 ": status %d", want_index, r->head.status);
    if (r->body.len != BODY_LEN || memcmp(r->body.data, g_body, BODY_LEN) != 0)
        return fail(res, "response %" PRIu64 ": wrong body (%zu bytes, expected %d%s)",
                    want_index, r->body.len, BODY_LEN,
                    r->body.len == BODY_LEN ? "; the bytes differ" : "");
    if (!r->keep_alive)
        return fail(res, "response %" PRIu64 ": the connection is not kept alive", want_index);
    if (g_server_header[0] == '\0') {
        const nbio_http_slice *v = nbio_http_header_find(&r->head, "server", NULL);
        if (v != NULL)
            snprintf(g_server_header, sizeof g_server_header, "%.*s", (int)v->len, v->data);
    }
    return ST_OK;
}

static int nbio_fail(run_result *res, nbio_session *s, const char *what, int r)
{
    return fail(res, "%s: %s: %s", what, nbio_errname(r), nbio_detail(s));
}

static void run_nbio(const measure *m, uint64_t n, run_result *res)
{
    memset(res, 0, sizeof *res);
    nbio_session *s = nbio_http_client(nbio_tcp_connect(g_hostport, NULL), g_hostport, NULL);
    if (s == NULL)
        bench_die("out of memory");
    if (nbio_error(s) != 0) {
        nbio_fail(res, s, "nbio_http_client", nbio_error(s));
        nbio_free(s);
        return;
    }
    const nbio_http_request req = {.method = "GET", .target = PATH_FILE};
    uint64_t warm = n / 10 < 50 ? 50 : n / 10, total = warm + n;
    uint64_t deadline = bench_now_ns() + g_run_limit_ns, t0 = 0, t1;
    nbio_http_response resp;
    int r;
    if (m->kind == M_SEQ) {
        for (uint64_t i = 0; i < total; i++) {
            if (i == warm)
                t0 = bench_now_ns();
            r = nbio_http_write_request(s, &req);
            if (r != NBIO_DONE) {
                if (r >= 0)
                    fail(res, "request %" PRIu64 ": write returned %d with nothing queued", i, r);
                else
                    nbio_fail(res, s, "nbio_http_write_request", r);
                goto out;
            }
            for (uint64_t spin = 1;; spin++) {
                r = nbio_http_read_response(s, &resp);
                if (r == NBIO_DATA)
                    break;
                if (r < 0) {
                    nbio_fail(res, s, "nbio_http_read_response", r);
                    goto out;
                }
                if ((spin & 4095) == 0 && past(deadline)) {
                    res->st = ST_TIMEOUT;
                    goto out;
                }
            }
            if (check_response(&resp, i, res) != ST_OK)
                goto out;
        }
    } else {
        uint64_t sent = 0, got = 0;
        for (uint64_t spin = 1; got < total; spin++) {
            while (sent < total && sent - got < DEPTH) {
                r = nbio_http_write_request(s, &req);
                if (r == NBIO_PENDING)
                    break; /* the queue is full: after the next read */
                if (r != NBIO_DONE) {
                    nbio_fail(res, s, "nbio_http_write_request", r);
                    goto out;
                }
                sent++;
            }
            r = nbio_http_read_response(s, &resp);
            if (r == NBIO_DATA) {
                if (check_response(&resp, got, res) != ST_OK)
                    goto out;
                if (++got == warm)
                    t0 = bench_now_ns();
            } else if (r < 0) {
                nbio_fail(res, s, "nbio_http_read_response", r);
                goto out;
            }
            if ((spin & 4095) == 0 && past(deadline)) {
                res->st = ST_TIMEOUT;
                goto out;
            }
        }
    }
    t1 = bench_now_ns();
    if (nbio_http_unanswered(s) != 0) {
        fail(res, "%u requests unanswered after the last response", nbio_http_unanswered(s));
        goto out;
    }
    res->rps = (double)n / ((double)(t1 - t0) / 1e9);
out:
    nbio_free(s);
}

/* ---- libcurl ---------------------------------------------------------------- */

typedef struct curl_sink {
    size_t got;
    bool bad;
} curl_sink;

static size_t curl_write(char *p, size_t size, size_t nmemb, void *ud)
{
    curl_sink *k = ud;
    size_t len = size * nmemb;
    if (k->got + len > BODY_LEN || memcmp(p, g_body + k->got, len) != 0)
        k->bad = true;
    k->got += len;
    return len;
}

static void run_curl(uint64_t n, run_result *res)
{
    memset(res, 0, sizeof *res);
    CURL *e = curl_easy_init();
    if (e == NULL)
        bench_die("curl_easy_init failed");
    curl_sink sink;
    curl_easy_setopt(e, CURLOPT_URL, g_url);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, curl_write);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, &sink);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_PROXY, "");         /* ignore http_proxy and friends */
    curl_easy_setopt(e, CURLOPT_TCP_NODELAY, 1L);   /* the default; as nbio */
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L); /* a hung request fails the run */
    uint64_t warm = n / 10 < 50 ? 50 : n / 10, total = warm + n;
    uint64_t deadline = bench_now_ns() + g_run_limit_ns, t0 = 0;
    for (uint64_t i = 0; i < total; i++) {
        if (i == warm)
            t0 = bench_now_ns();
        sink.got = 0;
        sink.bad = false;
        CURLcode c = curl_easy_perform(e);
        if (c != CURLE_OK) {
            fail(res, "request %" PRIu64 ": curl_easy_perform: %s", i, curl_easy_strerror(c));
            goto out;
        }
        long code = 0, conns = -1;
        curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(e, CURLINFO_NUM_CONNECTS, &conns);
        if (code != 200) {
            fail(res, "request %" PRIu64 ": status %ld", i, code);
            goto out;
        }
        if (sink.bad || sink.got != BODY_LEN) {
            fail(res, "request %" PRIu64 ": wrong body (%zu bytes, expected %d%s)", i, sink.got,
                 BODY_LEN, sink.got == BODY_LEN ? "; the bytes differ" : "");
            goto out;
        }
        if (i > 0 && conns != 0) {
            fail(res, "request %" PRIu64 ": libcurl opened %ld new connection(s)", i, conns);
            goto out;
        }
        if ((i & 255) == 0 && past(deadline)) {
            res->st = ST_TIMEOUT;
            goto out;
        }
    }
    res->rps = (double)n / ((double)(bench_now_ns() - t0) / 1e9);
out:
    curl_easy_cleanup(e);
}

/* ---- rounds and summary ------------------------------------------------------ */

static const char *side_name(int side)
{
    return side == NBIO_SIDE ? "nbio" : "libcurl";
}

typedef struct samples {
    double v[2][64];
    int n[2], timeouts[2];
} samples;

static int record(const measure *m, int side, int rep, uint64_t count, const run_result *r,
                  samples *s)
{
    if (r->st == ST_FAIL) {
        fprintf(stderr, "bench: %s %s run %d FAILED: %s\n", m->name, side_name(side), rep, r->why);
        return 1;
    }
    if (r->st == ST_TIMEOUT) {
        fprintf(stderr, "bench: %s %s run %d: TIMEOUT after %.0f s\n", m->name, side_name(side),
                rep, (double)g_run_limit_ns / 1e9);
        s->timeouts[side]++;
        return 0;
    }
    s->v[side][s->n[side]++] = r->rps;
    if (g_a.verbose) {
        printf("  run %d %-7s %-10s %.0f req/s (%" PRIu64 " requests verified)\n", rep,
               side_name(side), m->name, r->rps, count);
        fflush(stdout);
    }
    return 0;
}

static void fmt_rps(char *out, size_t len, const samples *s, int side)
{
    if (s->n[side] == 0)
        snprintf(out, len, "%s", s->timeouts[side] > 0 ? "TIMEOUT" : "FAILED");
    else
        snprintf(out, len, "%.0f req/s", bench_median(s->v[side], (size_t)s->n[side]));
}

int main(int argc, char **argv)
{
    /* Our own options, removed before the common parser sees argv. */
    int k = 1;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--nginx") == 0 && i + 1 < argc)
            g_nginx_opt = argv[++i];
        else if (strcmp(argv[i], "--builtin") == 0)
            g_builtin_opt = true;
        else
            argv[k++] = argv[i];
    }
    argc = k;
    argv[argc] = NULL;
    bench_parse_args(argc, argv, &g_a,
                     "  --nginx PATH the nginx program (default: nginx on PATH or in /usr/sbin)\n"
                     "  --builtin    use the built-in epoll responder even when nginx is there\n"
                     "--only raw runs libcurl only. Measures: seq pipeline16\n");
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        bench_die("curl_global_init failed");
    g_run_limit_ns = (g_a.quick ? 10 : 60) * 1000000000ull;
    start_server();
    bench_pin_thread(0); /* with --pin: the client on CPU 0 (the server is on CPU 1) */

    bool run[NMEASURES];
    for (size_t i = 0; i < NMEASURES; i++)
        run[i] = g_a.measure == NULL || strstr(g_measures[i].name, g_a.measure) != NULL;
    int reps = g_a.repeats > 64 ? 64 : g_a.repeats;
    printf("# bench_http_client: GET of a %d-byte body on one keep-alive connection, "
           "nbio_http_client vs libcurl %s (easy handle reused)%s; %d rounds, medians\n",
           BODY_LEN, curl_version_info(CURLVERSION_NOW)->version,
           g_a.pin ? "; client CPU 0, server CPU 1" : "", reps);
    printf("# server: %s at %s\n", g_server_desc, g_url);
    fflush(stdout);

    samples smp[NMEASURES];
    memset(smp, 0, sizeof smp);
    uint64_t count[NMEASURES], verified = 0;
    for (size_t i = 0; i < NMEASURES; i++)
        count[i] = bench_scaled(&g_a, g_measures[i].count, g_measures[i].min_count);
    int failed = 0;
    /* A round: libcurl, nbio seq, libcurl, nbio pipeline16 (libcurl's figure
     * for each line is the run next to it). */
    for (int rep = 0; rep < reps; rep++) {
        for (size_t i = 0; i < NMEASURES; i++) {
            if (!run[i])
                continue;
            const measure *m = &g_measures[i];
            uint64_t ncurl = count[M_SEQ]; /* libcurl is sequential in both */
            run_result r;
            if (g_a.only != 2) {
                run_curl(ncurl, &r);
                failed |= record(m, CURL_SIDE, rep, ncurl, &r, &smp[i]);
                verified += r.st == ST_OK ? ncurl : 0;
            }
            if (g_a.only != 1) {
                run_nbio(m, count[i], &r);
                failed |= record(m, NBIO_SIDE, rep, count[i], &r, &smp[i]);
                verified += r.st == ST_OK ? count[i] : 0;
            }
        }
    }
    for (size_t i = 0; i < NMEASURES; i++) {
        if (!run[i])
            continue;
        const measure *m = &g_measures[i];
        const samples *s = &smp[i];
        char sn[64], sc[64], ratio[96];
        fmt_rps(sn, sizeof sn, s, NBIO_SIDE);
        fmt_rps(sc, sizeof sc, s, CURL_SIDE);
        if (s->n[NBIO_SIDE] > 0 && s->n[CURL_SIDE] > 0)
            snprintf(ratio, sizeof ratio, "ratio %.2f (target >= %g)",
                     bench_median(s->v[NBIO_SIDE], (size_t)s->n[NBIO_SIDE]) /
                         bench_median(s->v[CURL_SIDE], (size_t)s->n[CURL_SIDE]),
                     m->target);
        else
            snprintf(ratio, sizeof ratio, "ratio -");
        if (g_a.only == 2)
            printf("%-10s nbio %s\n", m->name, sn);
        else if (g_a.only == 1)
            printf("%-10s libcurl %s\n", m->name, sc);
        else
            printf("%-10s nbio %s  libcurl %s  %s\n", m->name, sn, sc, ratio);
    }
    if (failed) {
        printf("FAILED: wrong responses or failed runs (see stderr)\n");
    } else {
        printf("# every response verified: %" PRIu64 " timed requests (plus warm-up), status "
               "200, %d-byte body, keep-alive%s%s%s\n",
               verified, BODY_LEN, g_server_header[0] ? "; Server: " : "", g_server_header,
               g_a.only != 2 ? "; libcurl reused its connection (NUM_CONNECTS 0)" : "");
    }
    fflush(stdout);
    cleanup();
    curl_global_cleanup();
    return failed ? 1 : 0;
}
