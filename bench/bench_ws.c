/*
 * WebSocket echo benchmark: `nbio echo-server --framing ws` against an echo
 * server written here on libwebsockets (lws_create_context, one protocol
 * whose callback echoes each message received, LWS_CALLBACK_RECEIVE, with
 * lws_write; when the socket is choked the echo waits in a queue for
 * LWS_CALLBACK_SERVER_WRITEABLE, in order, and over 4 MiB queued reading
 * pauses with lws_rx_flow_control), each in a child process, driven by the
 * same client in the same run.
 *
 * The client (this process, one thread, one connection, busy-polling a
 * non-blocking socket) is a minimal WebSocket client of its own: the
 * opening handshake, masked binary frames out, frames in parsed and every
 * byte of every echo checked, in order:
 *
 *  ws64      64-byte messages, written while fewer than 1 MiB of frames
 *            are in flight (sent, echo not yet received): echoed messages/s.
 *  ws1m      1 MiB messages, 4 in flight: echoed bytes/s.
 *  wsrtt     one 64-byte message at a time: round-trip time, median, p99.
 *  wsz64     permessage-deflate: 64-byte JSON-like text messages, 4096 in
 *            flight, both servers accepting permessage-deflate: messages/s.
 *            The client offers permessage-deflate, compresses every
 *            message (zlib, default level, with the context takeover the
 *            answer allows) before the clock starts, sends the frames
 *            (RSV1) from that stream, and inflates and checks every echo.
 *
 * Both servers busy-poll (`--idle spin`; lws_service(ctx, -1) in a loop).
 * Each measure runs --repeats rounds; a round runs lws then nbio, each with
 * a fresh server process and connection. The summary shows medians and the
 * ratio nbio/lws. Without libwebsockets at build time only the nbio side
 * runs. Timings are never asserted: the program fails only when an echo was
 * wrong or a connection failed.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <unistd.h>

#include <strings.h>
#include <zlib.h>

#include "bench_echo_common.h"

#ifdef NBIO_BENCH_LWS
#include <libwebsockets.h>
#endif

#define SMALL 64
#define BIG ((size_t)1 << 20)
#define SMALL_INFLIGHT ((size_t)1 << 20) /* bytes of frames */
#define BIG_INFLIGHT 4
#define Z_INFLIGHT 4096
#define STAGE (256 * 1024)
#define RBUF (256 * 1024)
#define MAXHDR 14

enum { LWS, NBIO };
enum { ST_OK, ST_TIMEOUT, ST_FAIL };
enum { M_S64, M_S1M, M_RTT, M_Z64 };

static bench_args g_a;
static echo_extra_opts g_x;
static const char *g_nbio;
static unsigned char *g_base;   /* BIG bytes of pattern */
static unsigned char *g_masked; /* g_base masked with g_key */
static unsigned char *g_rbuf;
static const unsigned char g_key[4] = {0x5a, 0xc3, 0x17, 0x9e};
static uint64_t g_run_limit_ns;

typedef struct measure {
    const char *name;
    int kind;
    const char *target; /* as the brief states it */
    uint64_t count, min_count;
} measure;

static const measure g_measures[] = {
    {"ws64", M_S64, ">= 10", 1000000, 20000},
    {"ws1m", M_S1M, ">= 1.2", 1000, 8},
    {"wsrtt", M_RTT, "<= 1", 50000, 500},
    {"wsz64", M_Z64, ">= 2", 300000, 5000},
};

static const char *side_name(int side)
{
    return side == NBIO ? "nbio" : "lws";
}

static bool past(uint64_t deadline)
{
    return bench_now_ns() > deadline;
}

/* ---- the libwebsockets echo server (a child process) ------------------------ */

#ifdef NBIO_BENCH_LWS
/* A message waiting for the socket: LWS_PRE bytes of headroom, then it. */
typedef struct lws_msg {
    struct lws_msg *next;
    unsigned char *buf;
    size_t len;
    bool binary;
} lws_msg;

typedef struct lws_pss {
    unsigned char *buf; /* LWS_PRE bytes, then the message being received */
    size_t len, cap;
    bool binary;
    lws_msg *head, *tail; /* echoes the socket could not take yet */
    size_t queued;        /* their bytes */
    bool rx_paused;
} lws_pss;

#define LWS_QUEUE_MAX ((size_t)4 << 20) /* over it, stop reading (flow control) */

static int lws_send(struct lws *wsi, unsigned char *buf, size_t len, bool binary)
{
    return lws_write(wsi, buf + LWS_PRE, len, binary ? LWS_WRITE_BINARY : LWS_WRITE_TEXT) <
                   (int)len
               ? -1
               : 0;
}

/* Writes queued echoes while the socket takes them (lws allows a write
 * only when the pipe is not choked). Returns 0 or -1. */
static int lws_drain(struct lws *wsi, lws_pss *p)
{
    while (p->head != NULL && !lws_send_pipe_choked(wsi)) {
        lws_msg *m = p->head;
        if (lws_send(wsi, m->buf, m->len, m->binary) != 0)
            return -1;
        p->head = m->next;
        if (p->head == NULL)
            p->tail = NULL;
        p->queued -= m->len;
        free(m->buf);
        free(m);
    }
    if (p->head != NULL)
        lws_callback_on_writable(wsi);
    if (p->rx_paused && p->queued < LWS_QUEUE_MAX / 2) {
        p->rx_paused = false;
        lws_rx_flow_control(wsi, 1);
    }
    return 0;
}

static int lws_echo_cb(struct lws *wsi, enum lws_callback_reasons reason, void *user, void *in,
                       size_t len)
{
    lws_pss *p = user;
    switch (reason) {
    case LWS_CALLBACK_ESTABLISHED:
        memset(p, 0, sizeof *p);
        break;
    case LWS_CALLBACK_RECEIVE:
        if (lws_is_first_fragment(wsi)) {
            p->len = 0;
            p->binary = lws_frame_is_binary(wsi) != 0;
        }
        if (LWS_PRE + p->len + len > p->cap) {
            size_t cap = p->cap ? p->cap : 4096;
            while (cap < LWS_PRE + p->len + len)
                cap *= 2;
            unsigned char *b = realloc(p->buf, cap);
            if (b == NULL)
                return -1;
            p->buf = b;
            p->cap = cap;
        }
        if (len > 0)
            memcpy(p->buf + LWS_PRE + p->len, in, len);
        p->len += len;
        if (!lws_is_final_fragment(wsi) || lws_remaining_packet_payload(wsi) != 0)
            break;
        /* the whole message: echo it with its type, now when the socket
         * takes it, else after the ones already waiting */
        if (p->head == NULL && !lws_send_pipe_choked(wsi)) {
            if (lws_send(wsi, p->buf, p->len, p->binary) != 0)
                return -1;
        } else {
            lws_msg *m = malloc(sizeof *m);
            if (m == NULL)
                return -1;
            *m = (lws_msg){NULL, p->buf, p->len, p->binary};
            if (p->tail != NULL)
                p->tail->next = m;
            else
                p->head = m;
            p->tail = m;
            p->queued += p->len;
            p->buf = NULL; /* the queue owns it now */
            p->cap = 0;
            if (p->queued > LWS_QUEUE_MAX && !p->rx_paused) {
                p->rx_paused = true;
                lws_rx_flow_control(wsi, 0);
            }
            lws_callback_on_writable(wsi);
        }
        p->len = 0;
        break;
    case LWS_CALLBACK_SERVER_WRITEABLE:
        if (lws_drain(wsi, p) != 0)
            return -1;
        break;
    case LWS_CALLBACK_CLOSED:
    case LWS_CALLBACK_WSI_DESTROY:
        free(p->buf);
        p->buf = NULL;
        p->cap = p->len = 0;
        while (p->head != NULL) {
            lws_msg *m = p->head;
            p->head = m->next;
            free(m->buf);
            free(m);
        }
        p->tail = NULL;
        p->queued = 0;
        break;
    default:
        break;
    }
    return 0;
}

static const struct lws_protocols lws_protocols_list[] = {
    {"echo", lws_echo_cb, sizeof(lws_pss), 65536, 0, NULL, 0},
    {NULL, NULL, 0, 0, 0, NULL, 0},
};

static const struct lws_extension lws_exts[] = {
    {"permessage-deflate", lws_extension_callback_pm_deflate,
     "permessage-deflate; client_no_context_takeover; client_max_window_bits"},
    {NULL, NULL, NULL},
};

/* Runs the lws echo server on 127.0.0.1 (a free port); writes
 * "listening on 127.0.0.1:PORT\n" to fd out. Never returns. */
static void lws_server_main(int out, bool deflate)
{
    lws_set_log_level(LLL_ERR, NULL);
    struct lws_context_creation_info info;
    memset(&info, 0, sizeof info);
    info.port = 0;
    info.iface = "127.0.0.1";
    info.protocols = lws_protocols_list;
    info.options = LWS_SERVER_OPTION_DISABLE_IPV6;
    if (deflate)
        info.extensions = lws_exts;
    struct lws_context *ctx = lws_create_context(&info);
    if (ctx == NULL)
        _exit(3);
    struct lws_vhost *vh = lws_get_vhost_by_name(ctx, "default");
    int port = vh != NULL ? lws_get_vhost_listen_port(vh) : -1;
    if (port <= 0)
        _exit(4);
    dprintf(out, "listening on 127.0.0.1:%d\n", port);
    close(out);
    for (;;) /* busy-poll, as nbio echo-server --idle spin */
        if (lws_service(ctx, -1) < 0)
            break;
    lws_context_destroy(ctx);
    _exit(0);
}
#endif

/* ---- servers --------------------------------------------------------------- */

typedef struct server {
    pid_t pid;
    struct sockaddr_in sa;
    char addr[64];
} server;

static int server_start(server *s, int side, bool deflate)
{
    int pfd[2];
    if (pipe2(pfd, O_CLOEXEC) != 0)
        bench_die("pipe: %s", strerror(errno));
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        bench_die("fork: %s", strerror(errno));
    if (pid == 0) {
        (void)prctl(PR_SET_PDEATHSIG, SIGKILL);
        close(pfd[0]);
        if (g_a.pin)
            echo_pin_process(1);
        if (side == NBIO) {
            if (dup2(pfd[1], STDOUT_FILENO) < 0)
                _exit(127);
            const char *argv[12];
            int n = 0;
            argv[n++] = g_nbio;
            argv[n++] = "echo-server";
            argv[n++] = "--listen";
            argv[n++] = "127.0.0.1:0";
            argv[n++] = "--framing";
            argv[n++] = "ws";
            argv[n++] = "--idle";
            argv[n++] = "spin";
            if (deflate)
                argv[n++] = "--ws-compress";
            argv[n] = NULL;
            execv(g_nbio, (char *const *)argv);
            _exit(127);
        }
#ifdef NBIO_BENCH_LWS
        lws_server_main(pfd[1], deflate);
#endif
        _exit(126);
    }
    close(pfd[1]);
    s->pid = pid;
    char line[256];
    size_t have = 0;
    uint64_t deadline = bench_now_ns() + 10000000000ull;
    while (have < sizeof line - 1 && memchr(line, '\n', have) == NULL) {
        struct pollfd q = {.fd = pfd[0], .events = POLLIN, .revents = 0};
        if (past(deadline))
            break;
        if (poll(&q, 1, 100) <= 0)
            continue;
        ssize_t n = read(pfd[0], line + have, sizeof line - 1 - have);
        if (n <= 0)
            break;
        have += (size_t)n;
    }
    close(pfd[0]);
    line[have] = '\0';
    char *nl = strchr(line, '\n');
    int port = 0;
    if (nl == NULL || sscanf(line, "listening on 127.0.0.1:%d", &port) != 1 || port <= 0) {
        fprintf(stderr, "bench: the %s server did not start (%s)\n", side_name(side), line);
        kill(pid, SIGKILL);
        waitpid(pid, NULL, 0);
        return -1;
    }
    memset(&s->sa, 0, sizeof s->sa);
    s->sa.sin_family = AF_INET;
    s->sa.sin_port = htons((uint16_t)port);
    s->sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    snprintf(s->addr, sizeof s->addr, "127.0.0.1:%d", port);
    return 0;
}

static void server_stop(server *s, int side)
{
    kill(s->pid, side == NBIO ? SIGTERM : SIGKILL);
    uint64_t deadline = bench_now_ns() + 10000000000ull;
    int status;
    while (waitpid(s->pid, &status, WNOHANG) == 0) {
        if (past(deadline)) {
            fprintf(stderr, "bench: the %s server did not exit; killed\n", side_name(side));
            kill(s->pid, SIGKILL);
            waitpid(s->pid, &status, 0);
            return;
        }
        usleep(2000);
    }
    if (side == NBIO && !(WIFEXITED(status) && WEXITSTATUS(status) == 0))
        fprintf(stderr, "bench: nbio echo-server ended with status 0x%x\n", status);
}

/* ---- the raw client --------------------------------------------------------- */

typedef struct wsc {
    int fd;
    /* frame parser */
    unsigned char hdr[MAXHDR];
    size_t hdr_have, hdr_need;
    uint64_t frame_left;  /* payload bytes of the current frame still to come */
    bool in_payload;
    bool fin;
    uint64_t seq;         /* messages completely received */
    size_t moff;          /* bytes of message `seq` received */
    size_t plen;          /* every message is plen bytes */
    bool bad;
    char why[160];
} wsc;

/* Opens the connection and does the opening handshake. ext: a
 * Sec-WebSocket-Extensions offer, or NULL; the answer's value goes to
 * ext_ans (empty when none). */
static int wsc_open_ext(wsc *c, const server *s, const char *ext, char *ext_ans, size_t ans_cap,
                        const char **why)
{
    memset(c, 0, sizeof *c);
    c->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (c->fd < 0 || connect(c->fd, (const struct sockaddr *)&s->sa, sizeof s->sa) != 0) {
        *why = "connect failed";
        if (c->fd >= 0)
            close(c->fd);
        return -1;
    }
    int one = 1;
    (void)setsockopt(c->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    char req[512];
    int n = snprintf(req, sizeof req,
                     "GET /bench HTTP/1.1\r\nHost: %s\r\nUpgrade: websocket\r\n"
                     "Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                     "Sec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: echo\r\n%s%s%s\r\n",
                     s->addr, ext ? "Sec-WebSocket-Extensions: " : "", ext ? ext : "",
                     ext ? "\r\n" : "");
    if (write(c->fd, req, (size_t)n) != n) {
        *why = "handshake write failed";
        close(c->fd);
        return -1;
    }
    /* read the answer byte by byte (blocking), so nothing after it is eaten */
    char ans[2048];
    size_t have = 0;
    struct timeval tv = {10, 0};
    (void)setsockopt(c->fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    while (have < sizeof ans - 1) {
        ssize_t k = read(c->fd, ans + have, 1);
        if (k <= 0)
            break;
        have++;
        if (have >= 4 && memcmp(ans + have - 4, "\r\n\r\n", 4) == 0)
            break;
    }
    ans[have] = '\0';
    /* the accept value for the RFC's sample key */
    if (strncmp(ans, "HTTP/1.1 101", 12) != 0 ||
        strstr(ans, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == NULL) {
        *why = "handshake refused";
        fprintf(stderr, "bench: handshake answer: %s\n", ans);
        close(c->fd);
        return -1;
    }
    if (ext_ans != NULL) {
        ext_ans[0] = '\0';
        for (char *line = strstr(ans, "\r\n"); line != NULL; line = strstr(line + 2, "\r\n")) {
            if (strncasecmp(line + 2, "Sec-WebSocket-Extensions:", 25) == 0) {
                const char *v = line + 27;
                size_t len = strcspn(v, "\r");
                snprintf(ext_ans, ans_cap, "%.*s", (int)len, v);
                break;
            }
        }
    }
    int fl = fcntl(c->fd, F_GETFL);
    (void)fcntl(c->fd, F_SETFL, fl | O_NONBLOCK);
    c->hdr_need = 2;
    return 0;
}

static int wsc_open(wsc *c, const server *s, const char **why)
{
    return wsc_open_ext(c, s, NULL, NULL, 0, why);
}

static void wsc_close(wsc *c)
{
    /* a close frame (1000), then the end of the connection */
    unsigned char f[8] = {0x88, 0x82, g_key[0], g_key[1], g_key[2], g_key[3]};
    f[6] = (unsigned char)(0x03 ^ g_key[0]);
    f[7] = (unsigned char)(0xe8 ^ g_key[1]);
    (void)send(c->fd, f, sizeof f, MSG_NOSIGNAL);
    close(c->fd);
}

/* The header of a masked binary frame of len bytes into out; returns its
 * length (with the key). */
static size_t frame_header(unsigned char *out, uint64_t len)
{
    size_t n;
    out[0] = 0x82;
    if (len < 126) {
        out[1] = (unsigned char)(0x80 | len);
        n = 2;
    } else if (len < 65536) {
        out[1] = 0x80 | 126;
        out[2] = (unsigned char)(len >> 8);
        out[3] = (unsigned char)len;
        n = 4;
    } else {
        out[1] = 0x80 | 127;
        for (int i = 0; i < 8; i++)
            out[2 + i] = (unsigned char)(len >> (56 - 8 * i));
        n = 10;
    }
    memcpy(out + n, g_key, 4);
    return n + 4;
}

/* The first 8 payload bytes of message seq, masked. */
static void masked_stamp(unsigned char *out, uint64_t seq)
{
    unsigned char p[8];
    memcpy(p, g_base, 8);
    bench_stamp(p, 8, seq);
    for (int i = 0; i < 8; i++)
        out[i] = p[i] ^ g_key[i & 3];
}

/* Frame of message seq (plen bytes, plen small) into out; returns its size. */
static size_t build_small(unsigned char *out, size_t plen, uint64_t seq)
{
    size_t h = frame_header(out, plen);
    memcpy(out + h, g_masked, plen);
    if (plen >= 8)
        masked_stamp(out + h, seq);
    return h + plen;
}

/* Checks received payload bytes of the current message. */
static void check_payload(wsc *c, const unsigned char *p, size_t n)
{
    size_t off = c->moff;
    if (off + n > c->plen) {
        c->bad = true;
        snprintf(c->why, sizeof c->why, "message %" PRIu64 " longer than %zu bytes", c->seq,
                 c->plen);
        return;
    }
    /* the stamp (first 8 bytes), then the pattern */
    unsigned char stamp[8];
    memcpy(stamp, g_base, 8);
    bench_stamp(stamp, 8, c->seq);
    size_t i = 0;
    for (; i < n && off + i < 8; i++)
        if (p[i] != stamp[off + i])
            goto bad;
    if (i < n && memcmp(p + i, g_base + off + i, n - i) != 0)
        goto bad;
    c->moff += n;
    return;
bad:
    c->bad = true;
    snprintf(c->why, sizeof c->why, "message %" PRIu64 " differs near byte %zu", c->seq, off);
}

/* Parses n received bytes. Returns 0, or -1 once something was wrong. */
static int wsc_feed(wsc *c, const unsigned char *p, size_t n)
{
    while (n > 0 && !c->bad) {
        if (!c->in_payload) {
            size_t k = c->hdr_need - c->hdr_have;
            if (k > n)
                k = n;
            memcpy(c->hdr + c->hdr_have, p, k);
            c->hdr_have += k;
            p += k;
            n -= k;
            if (c->hdr_have < c->hdr_need)
                break;
            if (c->hdr_need == 2) {
                unsigned l7 = c->hdr[1] & 0x7f;
                if (c->hdr[1] & 0x80) {
                    c->bad = true;
                    snprintf(c->why, sizeof c->why, "a masked frame from the server");
                    break;
                }
                c->hdr_need = l7 == 126 ? 4 : l7 == 127 ? 10 : 2;
                if (c->hdr_need > 2)
                    continue;
            }
            unsigned op = c->hdr[0] & 0x0f;
            unsigned l7 = c->hdr[1] & 0x7f;
            uint64_t len = l7;
            if (l7 == 126)
                len = (uint64_t)c->hdr[2] << 8 | c->hdr[3];
            else if (l7 == 127)
                for (int i = 0; i < 8; i++)
                    len = (i ? len << 8 : 0) | c->hdr[2 + i];
            if (op != 2 && op != 0) {
                c->bad = true;
                snprintf(c->why, sizeof c->why, "unexpected frame opcode %u (len %" PRIu64 ")",
                         op, len);
                break;
            }
            c->fin = (c->hdr[0] & 0x80) != 0;
            c->frame_left = len;
            c->in_payload = true;
            c->hdr_have = 0;
            c->hdr_need = 2;
        }
        size_t k = c->frame_left < n ? (size_t)c->frame_left : n;
        if (k > 0) {
            check_payload(c, p, k);
            p += k;
            n -= k;
            c->frame_left -= k;
        }
        if (c->frame_left == 0) {
            c->in_payload = false;
            if (c->fin) {
                if (c->moff != c->plen) {
                    c->bad = true;
                    snprintf(c->why, sizeof c->why, "message %" PRIu64 " has %zu bytes", c->seq,
                             c->moff);
                    break;
                }
                c->seq++;
                c->moff = 0;
            }
        }
    }
    return c->bad ? -1 : 0;
}

/* Receives what is there. Returns bytes (>= 0; 0 would-block) or -1. */
static long wsc_recv(wsc *c, const char **why)
{
    ssize_t n = recv(c->fd, g_rbuf, RBUF, 0);
    if (n > 0) {
        if (wsc_feed(c, g_rbuf, (size_t)n) < 0) {
            *why = c->why;
            return -1;
        }
        return n;
    }
    if (n == 0) {
        *why = "closed by the server";
        return -1;
    }
    if (errno == EAGAIN || errno == EINTR)
        return 0;
    *why = "recv failed";
    return -1;
}

/* 64-byte messages with up to SMALL_INFLIGHT bytes of frames in flight. */
static int run_s64(wsc *c, uint64_t count, uint64_t deadline, double *secs, const char **why)
{
    static unsigned char stage[STAGE];
    const size_t fsz = 2 + 4 + SMALL;
    size_t off = 0, len = 0;
    uint64_t built = 0;
    c->plen = SMALL;
    uint64_t t0 = bench_now_ns();
    while (c->seq < count) {
        if (off == len)
            off = len = 0;
        while (built < count && len + fsz <= STAGE && (built + 1 - c->seq) * fsz <= SMALL_INFLIGHT) {
            len += build_small(stage + len, SMALL, built);
            built++;
        }
        if (len > off) {
            ssize_t n = send(c->fd, stage + off, len - off, MSG_NOSIGNAL);
            if (n > 0)
                off += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                *why = "send failed";
                return ST_FAIL;
            }
        }
        if (wsc_recv(c, why) < 0)
            return ST_FAIL;
        if (past(deadline)) {
            *why = "time limit";
            return ST_TIMEOUT;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return ST_OK;
}

/* 1 MiB messages, BIG_INFLIGHT in flight, sent with writev from the masked
 * pattern (header and stamp from a small buffer). */
static int run_s1m(wsc *c, uint64_t count, uint64_t deadline, double *secs, const char **why)
{
    c->plen = BIG;
    unsigned char head[MAXHDR + 8];
    size_t head_len = 0, sent = 0; /* of the message being sent: bytes of head+payload */
    uint64_t sending = 0;
    bool active = false;
    uint64_t t0 = bench_now_ns();
    while (c->seq < count) {
        if (!active && sending < count && sending - c->seq < BIG_INFLIGHT) {
            head_len = frame_header(head, BIG);
            masked_stamp(head + head_len, sending);
            head_len += 8;
            sent = 0;
            active = true;
        }
        if (active) {
            struct iovec iov[2];
            int k = 0;
            size_t total = head_len + BIG - 8;
            if (sent < head_len) {
                iov[k++] = (struct iovec){head + sent, head_len - sent};
                iov[k++] = (struct iovec){g_masked + 8, BIG - 8};
            } else {
                iov[k++] = (struct iovec){g_masked + 8 + (sent - head_len), total - sent};
            }
            ssize_t n = writev(c->fd, iov, k);
            if (n > 0) {
                sent += (size_t)n;
                if (sent == total) {
                    active = false;
                    sending++;
                }
            } else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                *why = "send failed";
                return ST_FAIL;
            }
        }
        if (wsc_recv(c, why) < 0)
            return ST_FAIL;
        if (past(deadline)) {
            *why = "time limit";
            return ST_TIMEOUT;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
    return ST_OK;
}

/* One 64-byte message at a time. */
static int run_rtt(wsc *c, uint64_t count, uint64_t deadline, double *rtt_us, double *p99,
                   const char **why)
{
    c->plen = SMALL;
    double *v = malloc(count * sizeof *v);
    if (v == NULL)
        bench_die("out of memory");
    unsigned char f[MAXHDR + SMALL];
    for (uint64_t i = 0; i < count; i++) {
        size_t n = build_small(f, SMALL, i);
        uint64_t t0 = bench_now_ns();
        if (bench_send_all(c->fd, f, n) != 0) {
            *why = "send failed";
            free(v);
            return ST_FAIL;
        }
        while (c->seq <= i) {
            if (wsc_recv(c, why) < 0) {
                free(v);
                return ST_FAIL;
            }
            if (past(deadline)) {
                *why = "time limit";
                free(v);
                return ST_TIMEOUT;
            }
        }
        v[i] = (double)(bench_now_ns() - t0) / 1e3;
    }
    bench_sort(v, count);
    *rtt_us = bench_quantile_sorted(v, count, 0.5);
    *p99 = bench_quantile_sorted(v, count, 0.99);
    free(v);
    return ST_OK;
}

/* ---- permessage-deflate: nbio's client session against both servers -------- */

static size_t z_message(char *out, uint64_t seq)
{
    /* 64 bytes of JSON-like text, as a market-data feed would send */
    int n = snprintf(out, 65, "{\"seq\":%010" PRIu64 ",\"px\":%5u.%02u,\"qty\":%4u,\"sym\":\"ABCD\"}",
                     seq, (unsigned)(10000 + seq % 97), (unsigned)(seq % 100),
                     (unsigned)(100 + seq % 900));
    while (n < SMALL)
        out[n++] = ' ';
    return SMALL;
}

/* The messages, made once (snprintf per message would cost the client a
 * tenth of its time); message k is g_zmsg[k % Z_DISTINCT]. */
#define Z_DISTINCT 8192
static char (*g_zmsg)[SMALL];

static void z_prepare(void)
{
    if (g_zmsg != NULL)
        return;
    g_zmsg = malloc(Z_DISTINCT * sizeof *g_zmsg);
    if (g_zmsg == NULL)
        bench_die("out of memory");
    char tmp[SMALL + 1];
    for (uint64_t k = 0; k < Z_DISTINCT; k++) {
        z_message(tmp, k * 7919); /* varied fields */
        memcpy(g_zmsg[k], tmp, SMALL);
    }
}

/* permessage-deflate as agreed in the handshake (RFC 7692). */
typedef struct zparams {
    bool cnct, snct; /* client_ / server_no_context_takeover */
    int cbits;       /* client_max_window_bits (15 when not given) */
} zparams;

/* Parses the server's Sec-WebSocket-Extensions answer. Returns 0, or -1
 * when permessage-deflate was not agreed on. */
static int z_parse(const char *ans, zparams *zp)
{
    zp->cnct = zp->snct = false;
    zp->cbits = 15;
    while (*ans == ' ')
        ans++;
    if (strncasecmp(ans, "permessage-deflate", 18) != 0)
        return -1;
    const char *p = ans + 18;
    while ((p = strchr(p, ';')) != NULL) {
        p++;
        while (*p == ' ')
            p++;
        if (strncasecmp(p, "client_no_context_takeover", 26) == 0)
            zp->cnct = true;
        else if (strncasecmp(p, "server_no_context_takeover", 26) == 0)
            zp->snct = true;
        else if (strncasecmp(p, "client_max_window_bits=", 23) == 0)
            zp->cbits = atoi(p + 23);
    }
    if (zp->cbits < 8 || zp->cbits > 15)
        zp->cbits = 15;
    return 0;
}

/* The client's side of wsz64, compressed before the clock starts: every
 * message's masked frame (RSV1, text) in one stream, and where each ends. */
typedef struct zstream {
    unsigned char *data;
    size_t len, cap;
    size_t *end; /* end[k]: offset just past message k's frame */
} zstream;

static int z_build(zstream *zs, uint64_t count, const zparams *zp)
{
    z_stream d;
    memset(&d, 0, sizeof d);
    /* zlib cannot make a window of 8 bits; 9 reaches back no further than 8 allows */
    if (deflateInit2(&d, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -(zp->cbits < 9 ? 9 : zp->cbits), 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    zs->cap = (size_t)count * 48 + 4096;
    zs->data = malloc(zs->cap);
    zs->end = malloc((size_t)count * sizeof *zs->end);
    zs->len = 0;
    if (zs->data == NULL || zs->end == NULL)
        bench_die("out of memory");
    unsigned char out[256];
    for (uint64_t k = 0; k < count; k++) {
        d.next_in = (unsigned char *)g_zmsg[k % Z_DISTINCT];
        d.avail_in = SMALL;
        d.next_out = out;
        d.avail_out = sizeof out;
        if (deflate(&d, Z_SYNC_FLUSH) != Z_OK || d.avail_in != 0 || d.avail_out == 0)
            return -1;
        size_t n = sizeof out - d.avail_out;
        if (n < 4 || memcmp(out + n - 4, "\x00\x00\xff\xff", 4) != 0)
            return -1;
        n -= 4; /* the receiver puts the tail back */
        if (zp->cnct)
            deflateReset(&d);
        if (zs->len + n + MAXHDR > zs->cap) {
            zs->cap *= 2;
            unsigned char *p = realloc(zs->data, zs->cap);
            if (p == NULL)
                bench_die("out of memory");
            zs->data = p;
        }
        unsigned char *f = zs->data + zs->len;
        size_t h = frame_header(f, n);
        f[0] = 0xC1; /* FIN, RSV1 (compressed), text */
        for (size_t i = 0; i < n; i++)
            f[h + i] = out[i] ^ g_key[i & 3];
        zs->len += h + n;
        zs->end[k] = zs->len;
    }
    deflateEnd(&d);
    return 0;
}

/* Received bytes of wsz64: whole frames are taken from buf, compressed
 * messages inflated and compared with what was sent. */
typedef struct zrx {
    unsigned char *buf;
    size_t len, cap;
    unsigned char msg[4096]; /* a message's compressed payload (fragments joined) */
    size_t mlen;
    bool mcomp, in_msg;
    z_stream inf;
    bool snct;
    uint64_t got;
    char why[160];
} zrx;

static int zrx_message(zrx *z)
{
    unsigned char out[SMALL + 64];
    size_t olen;
    if (z->mcomp) {
        if (z->mlen + 4 > sizeof z->msg)
            goto bad;
        memcpy(z->msg + z->mlen, "\x00\x00\xff\xff", 4);
        z->inf.next_in = z->msg;
        z->inf.avail_in = (uInt)(z->mlen + 4);
        z->inf.next_out = out;
        z->inf.avail_out = sizeof out;
        int r = inflate(&z->inf, Z_SYNC_FLUSH);
        if ((r != Z_OK && r != Z_BUF_ERROR) || z->inf.avail_in != 0)
            goto bad;
        olen = sizeof out - z->inf.avail_out;
        if (z->snct)
            inflateReset(&z->inf);
    } else {
        if (z->mlen > sizeof out)
            goto bad;
        memcpy(out, z->msg, z->mlen);
        olen = z->mlen;
    }
    if (olen != SMALL || memcmp(out, g_zmsg[z->got % Z_DISTINCT], SMALL) != 0)
        goto bad;
    z->got++;
    z->mlen = 0;
    z->in_msg = false;
    return 0;
bad:
    snprintf(z->why, sizeof z->why, "compressed echo %" PRIu64 " differs", z->got);
    return -1;
}

static int zrx_feed(zrx *z, const unsigned char *p, size_t n)
{
    if (z->len + n > z->cap) {
        while (z->len + n > z->cap)
            z->cap *= 2;
        unsigned char *b = realloc(z->buf, z->cap);
        if (b == NULL)
            bench_die("out of memory");
        z->buf = b;
    }
    memcpy(z->buf + z->len, p, n);
    z->len += n;
    size_t off = 0;
    while (z->len - off >= 2) {
        const unsigned char *f = z->buf + off;
        size_t h = 2;
        uint64_t plen = f[1] & 0x7f;
        if (plen == 126) {
            if (z->len - off < 4)
                break;
            plen = (uint64_t)f[2] << 8 | f[3];
            h = 4;
        } else if (plen == 127) {
            snprintf(z->why, sizeof z->why, "a huge frame for a 64-byte message");
            return -1;
        }
        if (z->len - off < h + plen)
            break;
        unsigned op = f[0] & 0x0f;
        if (op != 1 && op != 0) {
            snprintf(z->why, sizeof z->why, "unexpected opcode %u", op);
            return -1;
        }
        if (!z->in_msg) {
            z->in_msg = true;
            z->mcomp = (f[0] & 0x40) != 0;
            z->mlen = 0;
        }
        if (z->mlen + plen > sizeof z->msg - 4) {
            snprintf(z->why, sizeof z->why, "message %" PRIu64 " too long", z->got);
            return -1;
        }
        memcpy(z->msg + z->mlen, f + h, (size_t)plen);
        z->mlen += (size_t)plen;
        off += h + (size_t)plen;
        if ((f[0] & 0x80) && zrx_message(z) != 0)
            return -1;
    }
    memmove(z->buf, z->buf + off, z->len - off);
    z->len -= off;
    return 0;
}

static int run_z64(const server *s, uint64_t count, uint64_t deadline, double *secs,
                   const char **why)
{
    z_prepare();
    static char errbuf[400], ans[256];
    wsc c;
    if (wsc_open_ext(&c, s, "permessage-deflate; client_max_window_bits", ans, sizeof ans,
                     why) != 0)
        return ST_FAIL;
    zparams zp;
    if (z_parse(ans, &zp) != 0) {
        snprintf(errbuf, sizeof errbuf, "permessage-deflate not agreed on ('%s')", ans);
        *why = errbuf;
        close(c.fd);
        return ST_FAIL;
    }
    if (g_a.verbose)
        printf("  the server answered: Sec-WebSocket-Extensions:%s\n", ans);
    zstream zs = {0};
    zrx z;
    memset(&z, 0, sizeof z);
    z.cap = RBUF;
    z.buf = malloc(z.cap);
    z.snct = zp.snct;
    if (z.buf == NULL || inflateInit2(&z.inf, -15) != Z_OK)
        bench_die("out of memory");
    int rc = ST_OK;
    if (z_build(&zs, count, &zp) != 0) {
        *why = "zlib failed";
        rc = ST_FAIL;
        goto out;
    }
    size_t sent = 0;
    uint64_t t0 = bench_now_ns();
    while (z.got < count) {
        uint64_t upto = z.got + Z_INFLIGHT < count ? z.got + Z_INFLIGHT : count;
        size_t lim = zs.end[upto - 1];
        if (sent < lim) {
            ssize_t n = send(c.fd, zs.data + sent, lim - sent, MSG_NOSIGNAL);
            if (n > 0)
                sent += (size_t)n;
            else if (n < 0 && errno != EAGAIN && errno != EINTR) {
                *why = "send failed";
                rc = ST_FAIL;
                goto out;
            }
        }
        ssize_t n = recv(c.fd, g_rbuf, RBUF, 0);
        if (n > 0) {
            if (zrx_feed(&z, g_rbuf, (size_t)n) != 0) {
                snprintf(errbuf, sizeof errbuf, "%s", z.why);
                *why = errbuf;
                rc = ST_FAIL;
                goto out;
            }
        } else if (n == 0 || (errno != EAGAIN && errno != EINTR)) {
            *why = n == 0 ? "closed by the server" : "recv failed";
            rc = ST_FAIL;
            goto out;
        }
        if (past(deadline)) {
            *why = "time limit";
            rc = ST_TIMEOUT;
            goto out;
        }
    }
    *secs = (double)(bench_now_ns() - t0) / 1e9;
out:
    wsc_close(&c);
    inflateEnd(&z.inf);
    free(z.buf);
    free(zs.data);
    free(zs.end);
    return rc;
}

/* ---- measures ---------------------------------------------------------------- */

typedef struct result {
    double v;   /* messages/s, bytes/s or median RTT (us) */
    double p99; /* RTT */
} result;

static int run_once(const measure *m, int side, uint64_t count, result *res, const char **why)
{
    server s;
    if (server_start(&s, side, m->kind == M_Z64) != 0) {
        *why = "server did not start";
        return ST_FAIL;
    }
    uint64_t deadline = bench_now_ns() + g_run_limit_ns;
    int st;
    double secs = 0;
    if (m->kind == M_Z64) {
        st = run_z64(&s, count, deadline, &secs, why);
        if (st == ST_OK)
            res->v = (double)count / secs;
    } else {
        wsc c;
        if (wsc_open(&c, &s, why) != 0) {
            server_stop(&s, side);
            return ST_FAIL;
        }
        if (m->kind == M_S64) {
            st = run_s64(&c, count, deadline, &secs, why);
            if (st == ST_OK)
                res->v = (double)count / secs;
        } else if (m->kind == M_S1M) {
            st = run_s1m(&c, count, deadline, &secs, why);
            if (st == ST_OK)
                res->v = (double)count * BIG / secs;
        } else {
            st = run_rtt(&c, count, deadline, &res->v, &res->p99, why);
        }
        if (st == ST_OK) { /* nothing may follow the last echo */
            usleep(1000);
            ssize_t n = recv(c.fd, g_rbuf, RBUF, 0);
            if (n > 0) {
                *why = "bytes arrived after the last echo";
                st = ST_FAIL;
            }
        }
        wsc_close(&c);
    }
    server_stop(&s, side);
    return st;
}

static void fmt_value(char *out, size_t len, const measure *m, const double *v, int n,
                      const double *p99, int timeouts)
{
    if (n == 0) {
        snprintf(out, len, "%s", timeouts ? "TIMEOUT" : "-");
        return;
    }
    double med = bench_median(v, (size_t)n);
    if (m->kind == M_RTT)
        snprintf(out, len, "%8.1f us (p99 %.1f)", med, bench_median(p99, (size_t)n));
    else if (m->kind == M_S1M)
        snprintf(out, len, "%8.1f MiB/s", med / 1048576.0);
    else
        snprintf(out, len, "%10.0f msg/s", med);
}

static int run_measure(const measure *m)
{
    uint64_t count = bench_scaled(&g_a, m->count, m->min_count);
    double v[2][16], p99[2][16];
    int n[2] = {0, 0}, timeouts[2] = {0, 0};
    int failed = 0;
    int reps = g_a.repeats > 16 ? 16 : g_a.repeats;
    for (int rep = 0; rep < reps; rep++) {
        for (int side = LWS; side <= NBIO; side++) {
#ifndef NBIO_BENCH_LWS
            if (side == LWS)
                continue;
#endif
            if (g_a.only != 0 && g_a.only != side + 1)
                continue;
            result r = {0, 0};
            const char *why = NULL;
            int st = run_once(m, side, count, &r, &why);
            if (st == ST_OK) {
                v[side][n[side]] = r.v;
                p99[side][n[side]] = r.p99;
                n[side]++;
            } else if (st == ST_TIMEOUT) {
                timeouts[side]++;
            } else {
                failed = 1;
                fprintf(stderr, "bench: %s %s run %d FAILED: %s\n", side_name(side), m->name, rep,
                        why ? why : "?");
            }
            if (g_a.verbose && st == ST_OK) {
                char s[96];
                fmt_value(s, sizeof s, m, &r.v, 1, &r.p99, 0);
                printf("  run %d %-5s %-6s %s (%" PRIu64 " %s verified)\n", rep, side_name(side),
                       m->name, s, count, m->kind == M_RTT ? "round trips" : "messages");
                fflush(stdout);
            }
        }
    }
    char sn[96], sl[96], ratio[96];
    fmt_value(sn, sizeof sn, m, v[NBIO], n[NBIO], p99[NBIO], timeouts[NBIO]);
    fmt_value(sl, sizeof sl, m, v[LWS], n[LWS], p99[LWS], timeouts[LWS]);
    if (n[NBIO] > 0 && n[LWS] > 0)
        snprintf(ratio, sizeof ratio, "ratio %.2f (target %s)",
                 bench_median(v[NBIO], (size_t)n[NBIO]) / bench_median(v[LWS], (size_t)n[LWS]),
                 m->target);
    else
        snprintf(ratio, sizeof ratio, "ratio -");
    printf("%-6s nbio %s  lws %s  %s\n", m->name, sn, sl, ratio);
    fflush(stdout);
    return failed;
}

int main(int argc, char **argv)
{
    echo_take_extra_args(&argc, argv, &g_x);
    bench_parse_args(argc, argv, &g_a,
                     "  --nbio PATH  the nbio program (default: <this program's dir>/../tools/nbio)\n"
                     "  (--only raw runs the libwebsockets side)\n"
                     "Measures: ws64 ws1m wsrtt wsz64\n");
    signal(SIGPIPE, SIG_IGN);
    g_nbio = echo_find_nbio(g_x.nbio_path);
    bench_pin_thread(0); /* with --pin: the client on CPU 0, servers on CPU 1 */
    g_base = malloc(BIG);
    g_masked = malloc(BIG);
    g_rbuf = malloc(RBUF);
    if (g_base == NULL || g_masked == NULL || g_rbuf == NULL)
        bench_die("out of memory");
    bench_fill_base(g_base, BIG);
    for (size_t i = 0; i < BIG; i++)
        g_masked[i] = g_base[i] ^ g_key[i & 3];
    g_run_limit_ns = (g_a.quick ? 10 : 60) * 1000000000ull;
#ifdef NBIO_BENCH_LWS
    const char *baseline = lws_get_library_version();
#else
    const char *baseline = "not built (no libwebsockets): nbio only";
#endif
    printf("# bench_ws: nbio echo-server --framing ws (--idle spin) vs a libwebsockets echo "
           "server (lws_service busy-polled), each in a child process%s; one connection; "
           "%d rounds, medians\n",
           g_a.pin ? " (client CPU 0, server CPU 1)" : "", g_a.repeats);
    printf("# server: %s; libwebsockets %s\n", g_nbio, baseline);
    fflush(stdout);
    int rc = 0;
    for (size_t i = 0; i < sizeof g_measures / sizeof g_measures[0]; i++) {
        const measure *m = &g_measures[i];
        if (g_a.measure != NULL && strstr(m->name, g_a.measure) == NULL)
            continue;
        rc |= run_measure(m);
    }
    if (rc != 0)
        printf("FAILED: wrong echoes or failed connections (see stderr)\n");
    else
        printf("# every echoed byte verified\n");
    free(g_base);
    free(g_masked);
    free(g_rbuf);
    free(g_zmsg);
    return rc;
}
