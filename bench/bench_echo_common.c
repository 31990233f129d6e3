/* Shared parts of bench_echo and bench_scale (see bench_echo_common.h). */
#define _GNU_SOURCE
#include "bench_echo_common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "nbio/tls.h"

/* ---- command line ------------------------------------------------------ */

void echo_take_extra_args(int *argc, char **argv, echo_extra_opts *x)
{
    memset(x, 0, sizeof *x);
    int out = 1;
    for (int i = 1; i < *argc; i++) {
        const char *s = argv[i];
        if (strcmp(s, "--nbio") == 0 && i + 1 < *argc) {
            x->nbio_path = argv[++i];
        } else if (strncmp(s, "--nbio=", 7) == 0) {
            x->nbio_path = s + 7;
        } else if (strcmp(s, "--syscalls") == 0) {
            x->syscalls = true;
        } else if (strcmp(s, "--conns") == 0 && i + 1 < *argc) {
            x->conns = atol(argv[++i]);
            if (x->conns < 2)
                bench_die("--conns wants a number >= 2");
        } else {
            if (strcmp(s, "--repeats") == 0)
                x->repeats_given = true;
            argv[out++] = argv[i];
        }
    }
    argv[out] = NULL;
    *argc = out;
}

const char *echo_find_nbio(const char *given)
{
    static char path[PATH_MAX];
    if (given != NULL) {
        snprintf(path, sizeof path, "%s", given);
    } else {
        char self[PATH_MAX];
        ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
        if (n <= 0)
            bench_die("cannot read /proc/self/exe; give --nbio PATH");
        self[n] = '\0';
        char *slash = strrchr(self, '/');
        if (slash != NULL)
            *slash = '\0';
        if (strlen(self) + sizeof "/../tools/nbio" > sizeof path)
            bench_die("path of this program too long; give --nbio PATH");
        memcpy(path, self, strlen(self));
        memcpy(path + strlen(self), "/../tools/nbio", sizeof "/../tools/nbio");
    }
    if (access(path, X_OK) != 0)
        bench_die("the nbio program is not at %s (%s): build it (make build) or give --nbio PATH",
                  path, strerror(errno));
    return path;
}

long echo_raise_nofile(void)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 1024;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        (void)setrlimit(RLIMIT_NOFILE, &rl);
        (void)getrlimit(RLIMIT_NOFILE, &rl);
    }
    return rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > LONG_MAX ? LONG_MAX : (long)rl.rlim_cur;
}

/* ---- TLS material ---------------------------------------------------------- */

static char g_tmpdir[64], g_cert_file[128], g_key_file[128];
static pid_t g_owner;
static SSL_CTX *g_srv_ctx, *g_cli_ctx;

static void tls_cleanup(void)
{
    if (getpid() != g_owner || g_tmpdir[0] == '\0')
        return;
    unlink(g_cert_file);
    unlink(g_key_file);
    rmdir(g_tmpdir);
    g_tmpdir[0] = '\0';
}

static void write_file(const char *path, const char *text)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    size_t len = strlen(text);
    if (fd < 0 || write(fd, text, len) != (ssize_t)len)
        bench_die("cannot write %s: %s", path, strerror(errno));
    close(fd);
}

void echo_tls_setup(void)
{
    if (g_srv_ctx != NULL)
        return;
    char *cert = NULL, *key = NULL;
    if (nbio_tls_make_cert(NULL, &cert, &key) != 0)
        bench_die("nbio_tls_make_cert failed");
    snprintf(g_tmpdir, sizeof g_tmpdir, "/tmp/nbio-bench-XXXXXX");
    if (mkdtemp(g_tmpdir) == NULL)
        bench_die("mkdtemp: %s", strerror(errno));
    g_owner = getpid();
    atexit(tls_cleanup);
    snprintf(g_cert_file, sizeof g_cert_file, "%s/cert.pem", g_tmpdir);
    snprintf(g_key_file, sizeof g_key_file, "%s/key.pem", g_tmpdir);
    write_file(g_cert_file, cert);
    write_file(g_key_file, key);

    BIO *b = BIO_new_mem_buf(cert, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    g_srv_ctx = SSL_CTX_new(TLS_server_method());
    g_cli_ctx = SSL_CTX_new(TLS_client_method());
    if (x == NULL || k == NULL || g_srv_ctx == NULL || g_cli_ctx == NULL ||
        SSL_CTX_use_certificate(g_srv_ctx, x) != 1 || SSL_CTX_use_PrivateKey(g_srv_ctx, k) != 1 ||
        X509_STORE_add_cert(SSL_CTX_get_cert_store(g_cli_ctx), x) != 1)
        bench_die("OpenSSL context set-up failed");
    /* The same minimum as the nbio server (TLS 1.2; both settle on 1.3). */
    SSL_CTX_set_min_proto_version(g_srv_ctx, TLS1_2_VERSION);
    SSL_CTX_set_min_proto_version(g_cli_ctx, TLS1_2_VERSION);
    SSL_CTX_set_verify(g_cli_ctx, SSL_VERIFY_PEER, NULL);
    /* Read whole socket chunks (nbio's TLS layer does too). */
    SSL_CTX_set_read_ahead(g_srv_ctx, 1);
    SSL_CTX_set_read_ahead(g_cli_ctx, 1);
    long modes = SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER;
    SSL_CTX_set_mode(g_srv_ctx, modes);
    SSL_CTX_set_mode(g_cli_ctx, modes);
    X509_free(x);
    EVP_PKEY_free(k);
    free(cert);
    free(key);
}

SSL_CTX *echo_tls_client_ctx(void)
{
    return g_cli_ctx;
}

/* ---- process helpers ------------------------------------------------------- */

void echo_pin_process(int which)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(n > 0 ? which % (int)n : 0, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

long echo_rss_kib(pid_t pid)
{
    char path[64], line[256];
    snprintf(path, sizeof path, "/proc/%d/status", (int)pid);
    FILE *f = fopen(path, "re");
    if (f == NULL)
        return -1;
    long kib = -1;
    while (fgets(line, sizeof line, f) != NULL)
        if (strncmp(line, "VmRSS:", 6) == 0) {
            kib = strtol(line + 6, NULL, 10);
            break;
        }
    fclose(f);
    return kib;
}

/* ---- the baseline echo loop (child process) ------------------------------ */

/*
 * One thread, epoll (level-triggered), non-blocking sockets. Each connection
 * has one buffer (64 KiB, allocated on its first event; a read that fills it
 * doubles it once the data is echoed, up to 1 MiB, as a framing layer's read
 * buffer grows for large frames): what arrives is read into it and written
 * back as-is; what the socket does not take stays there (pending) and
 * reading pauses until it is gone. With TLS the same with
 * SSL_read/SSL_write (partial writes on; a would-block write is retried
 * with the same bytes). Idle: spin (epoll_wait with timeout 0) or wait.
 */
#define RAW_CAP 65536         /* first buffer size */
#define RAW_CAP_MAX (1u << 20) /* a read that fills the buffer doubles it, up to this */
#define RAW_READS_PER_EVENT 16
#define RAW_ACCEPTS_PER_STEP 64

typedef struct rconn {
    int fd;
    SSL *ssl;
    unsigned char *buf;
    size_t cap;
    size_t off, len; /* pending: buf[off..len) */
    uint32_t ev;
    bool dead, again, grow;
} rconn;

static void raw_set_ev(int ep, rconn *c, uint32_t ev)
{
    if (c->ev == ev)
        return;
    struct epoll_event e = {.events = ev, .data.ptr = c};
    (void)epoll_ctl(ep, EPOLL_CTL_MOD, c->fd, &e);
    c->ev = ev;
}

/* Returns 0 (waiting for the socket), 1 (TLS: may hold buffered data,
 * serve again without waiting), -1 (close it). */
static int raw_serve(int ep, rconn *c)
{
    if (c->buf == NULL) {
        if ((c->buf = malloc(RAW_CAP)) == NULL)
            return -1;
        c->cap = RAW_CAP;
    }
    int reads = 0;
    for (;;) {
        if (c->off < c->len) {
            if (c->ssl == NULL) {
                ssize_t n = send(c->fd, c->buf + c->off, c->len - c->off, MSG_NOSIGNAL);
                if (n < 0) {
                    if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                        return -1;
                    n = 0;
                }
                c->off += (size_t)n;
                if (c->off < c->len) {
                    raw_set_ev(ep, c, EPOLLOUT);
                    return 0;
                }
            } else {
                size_t n = 0;
                if (SSL_write_ex(c->ssl, c->buf + c->off, c->len - c->off, &n) != 1) {
                    int e = SSL_get_error(c->ssl, 0);
                    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                        raw_set_ev(ep, c, e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
                        return 0;
                    }
                    return -1;
                }
                c->off += n;
                if (c->off < c->len)
                    continue;
            }
            c->off = c->len = 0;
            if (c->grow) { /* the last read filled the buffer: a larger one */
                unsigned char *b = malloc(2 * c->cap);
                if (b != NULL) {
                    free(c->buf);
                    c->buf = b;
                    c->cap *= 2;
                }
                c->grow = false;
            }
        }
        if (reads++ == RAW_READS_PER_EVENT) {
            raw_set_ev(ep, c, EPOLLIN);
            return c->ssl != NULL; /* plaintext: level-triggered epoll reports the rest */
        }
        if (c->ssl == NULL) {
            ssize_t n = recv(c->fd, c->buf, c->cap, 0);
            if (n == 0)
                return -1;
            if (n < 0) {
                if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
                    return -1;
                raw_set_ev(ep, c, EPOLLIN);
                return 0;
            }
            c->len = (size_t)n;
        } else {
            size_t n = 0;
            if (SSL_read_ex(c->ssl, c->buf, c->cap, &n) != 1) {
                int e = SSL_get_error(c->ssl, 0);
                if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
                    raw_set_ev(ep, c, e == SSL_ERROR_WANT_WRITE ? EPOLLOUT : EPOLLIN);
                    return 0;
                }
                return -1; /* close_notify, truncation, error */
            }
            c->len = n;
        }
        c->off = 0;
        c->grow = c->len == c->cap && c->cap < RAW_CAP_MAX;
    }
}

typedef struct rlist {
    rconn **v;
    size_t n, cap;
} rlist;

static void rlist_push(rlist *l, rconn *c)
{
    if (l->n == l->cap) {
        size_t cap = l->cap ? 2 * l->cap : 256;
        rconn **v = realloc(l->v, cap * sizeof *v);
        if (v == NULL)
            _exit(3);
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = c;
}

static void raw_accept(int ep, int lfd, bool tls)
{
    for (int k = 0; k < RAW_ACCEPTS_PER_STEP; k++) {
        int fd = accept4(lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return; /* EAGAIN, or out of descriptors: later */
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        rconn *c = calloc(1, sizeof *c);
        if (c == NULL) {
            close(fd);
            return;
        }
        c->fd = fd;
        c->ev = EPOLLIN;
        if (tls) {
            c->ssl = SSL_new(g_srv_ctx);
            if (c->ssl == NULL) {
                close(fd);
                free(c);
                return;
            }
            SSL_set_fd(c->ssl, fd);
            SSL_set_accept_state(c->ssl);
        }
        struct epoll_event e = {.events = EPOLLIN, .data.ptr = c};
        if (epoll_ctl(ep, EPOLL_CTL_ADD, fd, &e) != 0) {
            SSL_free(c->ssl);
            close(fd);
            free(c);
        }
    }
}

static void raw_server_main(int lfd, bool tls, bool wait)
{
    signal(SIGPIPE, SIG_IGN);
    int ep = epoll_create1(EPOLL_CLOEXEC);
    struct epoll_event le = {.events = EPOLLIN, .data.ptr = NULL};
    if (ep < 0 || epoll_ctl(ep, EPOLL_CTL_ADD, lfd, &le) != 0)
        _exit(3);
    struct epoll_event evs[256];
    /* cur: served this round; again: TLS connections that may hold
     * decrypted data, served next round without waiting; dead: freed at
     * the end of the round (they may still be listed in cur). */
    rlist cur = {NULL, 0, 0}, again = {NULL, 0, 0}, dead = {NULL, 0, 0};
    for (;;) {
        int n = epoll_wait(ep, evs, 256, wait && again.n == 0 ? -1 : 0);
        if (n < 0 && errno != EINTR)
            _exit(3);
        rlist t = cur;
        cur = again;
        again = t;
        again.n = 0;
        for (int i = 0; i < n; i++) {
            if (evs[i].data.ptr == NULL)
                raw_accept(ep, lfd, tls);
            else
                rlist_push(&cur, evs[i].data.ptr);
        }
        for (size_t i = 0; i < cur.n; i++) {
            rconn *c = cur.v[i];
            if (c->dead)
                continue;
            c->again = false;
            int r = raw_serve(ep, c);
            if (r < 0) {
                (void)epoll_ctl(ep, EPOLL_CTL_DEL, c->fd, NULL);
                if (c->ssl != NULL)
                    SSL_free(c->ssl);
                close(c->fd);
                c->dead = true;
                rlist_push(&dead, c);
            } else if (r > 0 && !c->again) {
                c->again = true;
                rlist_push(&again, c);
            }
        }
        size_t k = 0; /* a connection may be listed twice: drop dead ones */
        for (size_t i = 0; i < again.n; i++)
            if (!again.v[i]->dead)
                again.v[k++] = again.v[i];
        again.n = k;
        for (size_t i = 0; i < dead.n; i++) {
            free(dead.v[i]->buf);
            free(dead.v[i]);
        }
        dead.n = 0;
    }
}

/* ---- starting and stopping servers ---------------------------------------- */

static int listen_loopback(struct sockaddr_in *sa)
{
    int l = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (l < 0)
        return -1;
    int one = 1;
    (void)setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    memset(sa, 0, sizeof *sa);
    sa->sin_family = AF_INET;
    sa->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t sl = sizeof *sa;
    /* 511: the nbio listener's default backlog */
    if (bind(l, (struct sockaddr *)sa, sizeof *sa) != 0 || listen(l, 511) != 0 ||
        getsockname(l, (struct sockaddr *)sa, &sl) != 0) {
        close(l);
        return -1;
    }
    return l;
}

int echo_server_start(echo_server_proc *p, const echo_server_opts *o, int timeout_ms)
{
    memset(p, 0, sizeof *p);
    p->pid = -1;
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0) {
        perror("bench: pipe");
        return -1;
    }
    fflush(stdout);
    fflush(stderr);
    pid_t parent = getpid();
    pid_t pid = fork();
    if (pid < 0) {
        perror("bench: fork");
        close(pfd[0]);
        close(pfd[1]);
        return -1;
    }
    if (pid == 0) {
        close(pfd[0]);
        /* Do not outlive the benchmark (killed by a test timeout, say): a
         * spinning server would keep a CPU busy. Survives exec. */
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        if (getppid() != parent)
            _exit(3);
        if (o->pin)
            echo_pin_process(1);
        if (o->kind == ECHO_SRV_NBIO) {
            if (dup2(pfd[1], STDOUT_FILENO) < 0)
                _exit(127);
            const char *argv[16];
            int n = 0;
            argv[n++] = o->nbio_path;
            argv[n++] = "echo-server";
            argv[n++] = "--listen";
            argv[n++] = "127.0.0.1:0";
            argv[n++] = "--framing";
            argv[n++] = "u64";
            argv[n++] = "--idle";
            argv[n++] = o->wait ? "wait" : "spin";
            if (o->tls) {
                argv[n++] = "--tls-cert";
                argv[n++] = g_cert_file;
                argv[n++] = "--tls-key";
                argv[n++] = g_key_file;
            }
            argv[n] = NULL;
            execv(o->nbio_path, (char *const *)argv);
            fprintf(stderr, "bench: exec %s: %s\n", o->nbio_path, strerror(errno));
            _exit(127);
        }
        struct sockaddr_in sa;
        int l = listen_loopback(&sa);
        if (l < 0) {
            fprintf(stderr, "bench: raw server: listen: %s\n", strerror(errno));
            _exit(3);
        }
        char line[64];
        int len = snprintf(line, sizeof line, "listening on 127.0.0.1:%u\n", ntohs(sa.sin_port));
        if (write(pfd[1], line, (size_t)len) != len)
            _exit(3);
        close(pfd[1]);
        raw_server_main(l, o->tls, o->wait);
        _exit(0);
    }
    close(pfd[1]);
    p->pid = pid;
    char line[256];
    size_t have = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    while (have < sizeof line - 1 && memchr(line, '\n', have) == NULL) {
        int64_t left = (int64_t)(deadline - bench_now_ns()) / 1000000;
        if ((int64_t)(deadline - bench_now_ns()) <= 0)
            break;
        struct pollfd q = {.fd = pfd[0], .events = POLLIN, .revents = 0};
        if (poll(&q, 1, (int)(left > 0 ? left : 1)) <= 0)
            continue;
        ssize_t n = read(pfd[0], line + have, sizeof line - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(pfd[0]);
    line[have] = '\0';
    char *nl = strchr(line, '\n');
    unsigned port = 0;
    if (nl != NULL)
        *nl = '\0';
    if (nl == NULL || strncmp(line, "listening on ", 13) != 0) {
        fprintf(stderr, "bench: %s server did not report its address (got '%s')\n",
                o->kind == ECHO_SRV_NBIO ? "nbio" : "baseline", line);
        echo_server_stop(p);
        return -1;
    }
    size_t al = strlen(line + 13);
    if (al >= sizeof p->addr)
        al = sizeof p->addr - 1;
    memcpy(p->addr, line + 13, al);
    p->addr[al] = '\0';
    const char *colon = strrchr(p->addr, ':');
    if (colon == NULL || sscanf(colon + 1, "%u", &port) != 1 || port == 0 || port > 65535 ||
        strncmp(p->addr, "127.0.0.1:", 10) != 0) {
        fprintf(stderr, "bench: unexpected server address '%s'\n", p->addr);
        echo_server_stop(p);
        return -1;
    }
    p->sa.sin_family = AF_INET;
    p->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    p->sa.sin_port = htons((uint16_t)port);
    return 0;
}

void echo_server_signal(echo_server_proc *p)
{
    if (p->pid > 0)
        (void)kill(p->pid, SIGTERM);
}

int echo_server_wait(echo_server_proc *p, int timeout_ms)
{
    if (p->pid <= 0)
        return 0;
    int status = 0;
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        pid_t r = waitpid(p->pid, &status, WNOHANG);
        if (r == p->pid || (r < 0 && errno != EINTR))
            break;
        if (bench_now_ns() > deadline) {
            fprintf(stderr, "bench: server %d still running %d ms after SIGTERM: SIGKILL\n",
                    (int)p->pid, timeout_ms);
            (void)kill(p->pid, SIGKILL);
            (void)waitpid(p->pid, &status, 0);
            status = -1;
            break;
        }
        struct timespec ts = {0, 1000000};
        nanosleep(&ts, NULL);
    }
    p->pid = -1;
    return status;
}

int echo_server_stop(echo_server_proc *p)
{
    echo_server_signal(p);
    return echo_server_wait(p, ECHO_STOP_MS);
}

/* ---- client connections ----------------------------------------------------- */

int echo_connect(const echo_server_proc *p)
{
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        perror("bench: socket");
        return -1;
    }
    if (connect(fd, (const struct sockaddr *)&p->sa, sizeof p->sa) != 0) {
        fprintf(stderr, "bench: connect %s: %s\n", p->addr, strerror(errno));
        close(fd);
        return -1;
    }
    int one = 1, fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) != 0 ||
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) != 0) {
        perror("bench: fcntl/setsockopt");
        close(fd);
        return -1;
    }
    return fd;
}

int echo_conn_open(echo_conn *c, const echo_server_proc *p, bool tls, int timeout_ms)
{
    memset(c, 0, sizeof *c);
    c->fd = echo_connect(p);
    if (c->fd < 0)
        return -1;
    if (!tls)
        return 0;
    c->ssl = SSL_new(g_cli_ctx);
    if (c->ssl == NULL)
        bench_die("SSL_new failed");
    SSL_set_fd(c->ssl, c->fd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(c->ssl), "127.0.0.1");
    SSL_set_connect_state(c->ssl);
    uint64_t deadline = bench_now_ns() + (uint64_t)timeout_ms * 1000000u;
    for (;;) {
        int r = SSL_do_handshake(c->ssl);
        if (r == 1)
            return 0;
        int e = SSL_get_error(c->ssl, r);
        if ((e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE) ||
            bench_now_ns() > deadline) {
            fprintf(stderr, "bench: TLS handshake with %s failed%s\n", p->addr,
                    bench_now_ns() > deadline ? " (timed out)" : "");
            ERR_print_errors_fp(stderr);
            echo_conn_close(c);
            return -1;
        }
    }
}

void echo_conn_close(echo_conn *c)
{
    if (c->ssl != NULL) {
        (void)SSL_shutdown(c->ssl); /* close_notify, so the server sees a clean end */
        SSL_free(c->ssl);
    }
    if (c->fd >= 0)
        close(c->fd);
    c->ssl = NULL;
    c->fd = -1;
}

long echo_conn_send(echo_conn *c, const void *buf, size_t len, const char **why)
{
    if (c->ssl == NULL) {
        ssize_t n = send(c->fd, buf, len, MSG_NOSIGNAL);
        if (n >= 0)
            return (long)n;
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        *why = strerror(errno);
        return -1;
    }
    if (len < c->retry_len) {
        *why = "internal: TLS write retried with fewer bytes";
        return -1;
    }
    size_t n = 0;
    if (SSL_write_ex(c->ssl, buf, len, &n) == 1) {
        c->retry_len = 0;
        return (long)n;
    }
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_WRITE || e == SSL_ERROR_WANT_READ) {
        c->retry_len = len;
        return 0;
    }
    *why = e == SSL_ERROR_ZERO_RETURN ? "TLS: closed by the server" : "TLS write failed";
    return -1;
}

long echo_conn_recv(echo_conn *c, void *buf, size_t len, const char **why)
{
    if (c->ssl == NULL) {
        ssize_t n = recv(c->fd, buf, len, 0);
        if (n > 0)
            return (long)n;
        if (n == 0) {
            *why = "closed by the server";
            return -1;
        }
        if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
            return 0;
        *why = strerror(errno);
        return -1;
    }
    size_t n = 0;
    if (SSL_read_ex(c->ssl, buf, len, &n) == 1)
        return (long)n;
    int e = SSL_get_error(c->ssl, 0);
    if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
        return 0;
    *why = e == SSL_ERROR_ZERO_RETURN ? "TLS: closed by the server (close_notify)"
           : e == SSL_ERROR_SYSCALL    ? "TLS: connection closed or reset by the server"
                                       : "TLS read failed";
    return -1;
}

/* ---- frames ------------------------------------------------------------------ */

void echo_frame_build(unsigned char *out, const unsigned char *base, size_t plen, uint64_t seq,
                      uint64_t salt)
{
    bench_put_le64(out, plen);
    memcpy(out + ECHO_HDR, base, plen);
    if (plen >= 8)
        bench_put_le64(out + ECHO_HDR, seq ^ salt);
}

void echo_rx_init(echo_rx *r, const unsigned char *base, size_t plen, uint64_t salt)
{
    memset(r, 0, sizeof *r);
    r->base = base;
    r->plen = plen;
    r->salt = salt;
}

/* Checks payload bytes [off, off+k) of the current frame. */
static int rx_check(echo_rx *r, const unsigned char *p, size_t off, size_t k)
{
    unsigned char stamp[8];
    bench_put_le64(stamp, r->seq ^ r->salt);
    size_t i = off, end = off + k;
    for (; i < 8 && i < end && i < r->plen; i++)
        if (p[i - off] != stamp[i])
            goto bad;
    if (i < end && memcmp(p + (i - off), r->base + i, end - i) != 0) {
        for (; i < end && p[i - off] == r->base[i]; i++)
            ;
        goto bad;
    }
    return 0;
bad:
    r->bad = true;
    snprintf(r->why, sizeof r->why, "echoed frame %llu: payload byte %zu differs",
             (unsigned long long)r->seq, i);
    return -1;
}

int echo_rx_feed(echo_rx *r, const unsigned char *p, size_t n)
{
    if (r->bad)
        return -1;
    while (n > 0) {
        if (!r->in_payload) {
            if (r->hdr_have == 0 && r->plen <= 4096 && n >= ECHO_HDR + r->plen) {
                /* a whole small frame */
                if (bench_get_le64(p) != r->plen)
                    goto badlen;
                if (rx_check(r, p + ECHO_HDR, 0, r->plen) != 0)
                    return -1;
                r->seq++;
                p += ECHO_HDR + r->plen;
                n -= ECHO_HDR + r->plen;
                continue;
            }
            size_t k = ECHO_HDR - r->hdr_have;
            if (k > n)
                k = n;
            memcpy(r->hdr + r->hdr_have, p, k);
            r->hdr_have += k;
            p += k;
            n -= k;
            if (r->hdr_have < ECHO_HDR)
                break;
            r->hdr_have = 0;
            if (bench_get_le64(r->hdr) != r->plen) {
                p = r->hdr;
                goto badlen;
            }
            r->off = 0;
            r->in_payload = r->plen > 0;
            if (r->plen == 0)
                r->seq++;
            continue;
        }
        size_t k = r->plen - r->off;
        if (k > n)
            k = n;
        if (rx_check(r, p, r->off, k) != 0)
            return -1;
        r->off += k;
        p += k;
        n -= k;
        if (r->off == r->plen) {
            r->in_payload = false;
            r->seq++;
        }
    }
    return 0;
badlen:
    r->bad = true;
    snprintf(r->why, sizeof r->why, "echoed frame %llu: length header %llu, expected %zu",
             (unsigned long long)r->seq, (unsigned long long)bench_get_le64(p), r->plen);
    return -1;
}
