/*
 * `nbio demo`: the seed's examples, run against an in-process echo server,
 * explained step by step.
 *
 * The demo is a list of steps (see `steps` below). Each step gets the
 * context with the in-process servers; while its client waits it calls
 * demo_pump() so the servers make progress in the same thread. To add a
 * step (e.g. TLS), write a function like step_streaming(), add any server
 * it needs to demo_ctx / demo_pump(), and append it to `steps`.
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "echo_server.h"
#include "nbio/frame.h"
#include "nbio/http_client.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"
#include "nbio/ws.h"

#define STEP_TIMEOUT_MS 10000

/* A tiny HTTP responder written on the raw session verbs: it accepts one
 * connection at a time on 127.0.0.1:0, reads request heads (up to the empty
 * line) and answers each with one fixed response. Enough for the HTTP step;
 * not an HTTP server (request bodies are not expected). */
#define HTTP_DEMO_BODY "hello from the demo's HTTP responder!\n"
static const char http_demo_response[] = "HTTP/1.1 200 OK\r\n"
                                         "Content-Type: text/plain\r\n"
                                         "Content-Length: 38\r\n"
                                         "\r\n" HTTP_DEMO_BODY;

typedef struct http_responder {
    nbio_session *listener;
    nbio_session *conn;  /* the client being served, or NULL */
    char addr[64];
    char head[4096];     /* the request head read so far */
    size_t head_len;
    nbio_buf out;        /* the rest of the answer being written */
    unsigned connections, requests;
} http_responder;

typedef struct demo_ctx {
    echo_server *echo; /* raw-byte echo server on 127.0.0.1:0 */
    char echo_addr[128];
    /* TLS: a self-signed certificate made in memory at start-up, and a
     * u64-framed echo server over TLS using it (NULL when that failed;
     * tls_error says why) */
    char *cert_pem, *key_pem;
    echo_server *tls_echo;
    char tls_addr[128];
    char tls_error[400];
    http_responder http; /* a tiny HTTP server for the HTTP step */
    echo_server *ws_echo; /* a WebSocket echo server (permessage-deflate accepted) */
    char ws_addr[128];
    char ws_error[400];
} demo_ctx;

typedef struct demo_step {
    const char *title;
    int (*run)(demo_ctx *ctx); /* 0 on success, -1 after printing why */
} demo_step;

/* Starts listening; returns 0, or -1 with the reason in err. */
static int http_responder_open(http_responder *h, char *err, size_t errlen)
{
    memset(h, 0, sizeof *h);
    h->listener = nbio_tcp_listen("127.0.0.1:0", NULL);
    if (nbio_status(h->listener) != NBIO_STATUS_ESTABLISHED) {
        snprintf(err, errlen, "%s: %s", nbio_errname(nbio_error(h->listener)),
                 nbio_detail(h->listener));
        nbio_free(h->listener);
        h->listener = NULL;
        return -1;
    }
    (void)nbio_local_address(h->listener, h->addr, sizeof h->addr);
    return 0;
}

/* One step: accept, read a request head, write the answer. */
static void http_responder_step(http_responder *h)
{
    if (h->listener == NULL)
        return;
    if (h->conn == NULL) {
        if (nbio_accept(h->listener, &h->conn) == NBIO_DATA) {
            h->connections++;
            h->head_len = 0;
            h->out.len = 0;
        }
        return;
    }
    if (h->out.len > 0) { /* an answer is going out: resubmit the rest */
        if (nbio_write(h->conn, &h->out) < 0)
            goto drop;
        return;
    }
    nbio_buf in;
    int r = nbio_read(h->conn, &in);
    if (r < 0) /* the client closed (NBIO_EPEERCLOSED) or failed */
        goto drop;
    if (r != NBIO_DATA)
        return;
    if (in.len > sizeof h->head - h->head_len)
        goto drop; /* a head this large is not for this responder */
    memcpy(h->head + h->head_len, in.data, in.len);
    h->head_len += in.len;
    char *end = memmem(h->head, h->head_len, "\r\n\r\n", 4);
    if (end == NULL)
        return; /* the head is not complete yet */
    size_t used = (size_t)(end + 4 - h->head);
    memmove(h->head, h->head + used, h->head_len - used); /* a pipelined next request */
    h->head_len -= used;
    h->requests++;
    h->out = (nbio_buf){http_demo_response, sizeof http_demo_response - 1};
    if (nbio_write(h->conn, &h->out) < 0)
        goto drop;
    return;
drop:
    nbio_free(h->conn);
    h->conn = NULL;
}

static void http_responder_close(http_responder *h)
{
    nbio_free(h->conn);
    nbio_free(h->listener);
    memset(h, 0, sizeof *h);
}

/* Lets every in-process server make progress once. */
static void demo_pump(demo_ctx *ctx)
{
    (void)echo_server_step(ctx->echo, 0);
    if (ctx->tls_echo != NULL)
        (void)echo_server_step(ctx->tls_echo, 0);
    http_responder_step(&ctx->http);
    if (ctx->ws_echo != NULL)
        (void)echo_server_step(ctx->ws_echo, 0);
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void say(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("    ", stdout);
    vprintf(fmt, ap);
    va_end(ap);
    fputc('\n', stdout);
    fflush(stdout);
}

/* Formats bytes as a C-like quoted string into out. */
static const char *quoted(const void *data, size_t len, char *out, size_t cap)
{
    const unsigned char *p = data;
    size_t k = 0;
    out[k++] = '"';
    for (size_t i = 0; i < len && k + 6 < cap; i++) {
        if (p[i] == '"' || p[i] == '\\')
            k += (size_t)snprintf(out + k, cap - k, "\\%c", p[i]);
        else if (isprint(p[i]))
            out[k++] = (char)p[i];
        else
            k += (size_t)snprintf(out + k, cap - k, "\\x%02x", p[i]);
    }
    out[k++] = '"';
    out[k] = '\0';
    return out;
}

static int failed(nbio_session *s, const char *what, int err)
{
    say("%s failed: %s: %s", what, nbio_errname(err), nbio_detail(s));
    return -1;
}

/* The seed's write loop: resubmit the rest until NBIO_DONE. */
static int write_until_done(demo_ctx *ctx, nbio_session *s, const char *text, const char *what)
{
    char q[160];
    nbio_buf buf = {text, strlen(text)};
    int pendings = 0;
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    for (;;) {
        int r = nbio_write(s, &buf);
        if (r < 0)
            return failed(s, "write", r);
        if (r == NBIO_DONE)
            break;
        if (pendings++ == 0)
            say("write %s: pending (%s), %zu bytes left to resubmit",
                quoted(text, strlen(text), q, sizeof q),
                nbio_status(s) == NBIO_STATUS_ESTABLISHING ? "still connecting" : "socket full",
                buf.len);
        if (nbio_now_ms() > deadline)
            return failed(s, "write", NBIO_ETIMEDOUT);
        demo_pump(ctx);
    }
    say("write %s: done, %s%s", quoted(text, strlen(text), q, sizeof q), what,
        pendings ? " (after resubmitting)" : "");
    return 0;
}

/* ---- step 1: streaming TCP ---- */

static int step_streaming(demo_ctx *ctx)
{
    const char *hello = "hello world!";
    char q[160];
    nbio_session *s = nbio_tcp_connect(ctx->echo_addr, NULL);
    if (s == NULL)
        return failed(NULL, "connect", NBIO_ENOMEM);
    say("nbio_tcp_connect(\"%s\"): returned at once, status %s", ctx->echo_addr,
        nbio_status(s) == NBIO_STATUS_ESTABLISHING ? "ESTABLISHING (the connect goes on in drive)"
                                            : "ESTABLISHED");
    int rc = write_until_done(ctx, s, hello, "the bytes went straight to the socket");
    size_t got = 0, want = strlen(hello);
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    while (rc == 0 && got < want) {
        nbio_buf in;
        int r = nbio_read(s, &in);
        if (r < 0) {
            rc = failed(s, "read", r);
        } else if (r == NBIO_DATA) {
            say("read: NBIO_DATA, %zu bytes: %s", in.len, quoted(in.data, in.len, q, sizeof q));
            got += in.len;
        } else if (nbio_now_ms() > deadline) {
            rc = failed(s, "read", NBIO_ETIMEDOUT);
        } else {
            demo_pump(ctx); /* NBIO_IDLE: nothing yet; let the server echo */
        }
    }
    if (rc == 0) {
        int r;
        while ((r = nbio_close(s)) == NBIO_PENDING)
            demo_pump(ctx);
        if (r < 0)
            rc = failed(s, "close", r);
        else
            say("nbio_close: NBIO_DONE, our FIN is out; nbio_free releases the session");
    }
    nbio_free(s);
    return rc;
}

/* ---- step 2: framing TCP (u64 length prefix) ---- */

static int step_framing(demo_ctx *ctx)
{
    static const char *const frames[] = {"hello world!", "frames keep their boundaries", "!"};
    const size_t nframes = sizeof frames / sizeof frames[0];
    char q[160];
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 4096;
    nbio_session *s = nbio_frame_new(nbio_tcp_connect(ctx->echo_addr, NULL), &nbio_frame_u64le, &fo);
    if (s == NULL)
        return failed(NULL, "connect", NBIO_ENOMEM);
    say("nbio_frame_new(nbio_tcp_connect(\"%s\"), u64): a message session over TCP,", ctx->echo_addr);
    say("  each frame is an 8-byte little-endian length, then the payload");
    int rc = 0;
    for (size_t i = 0; i < nframes && rc == 0; i++)
        rc = write_until_done(ctx, s, frames[i],
                              "the frame sits in the write buffer until the next drive/read");
    size_t got = 0;
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    while (rc == 0 && got < nframes) {
        nbio_buf in;
        int r = nbio_read(s, &in); /* also sends the buffered frames */
        if (r < 0) {
            rc = failed(s, "read", r);
        } else if (r == NBIO_DATA) {
            bool same = in.len == strlen(frames[got]) && memcmp(in.data, frames[got], in.len) == 0;
            say("read: NBIO_DATA, one whole frame of %zu bytes: %s%s", in.len,
                quoted(in.data, in.len, q, sizeof q), same ? " (exactly as written)" : " (MISMATCH)");
            if (!same)
                rc = -1;
            got++;
        } else if (nbio_now_ms() > deadline) {
            rc = failed(s, "read", NBIO_ETIMEDOUT);
        } else {
            demo_pump(ctx);
        }
    }
    if (rc == 0) {
        int r;
        while ((r = nbio_close(s)) == NBIO_PENDING)
            demo_pump(ctx);
        if (r < 0)
            rc = failed(s, "close", r);
        else
            say("nbio_close: NBIO_DONE; nbio_free releases the framing session and its TCP session");
    }
    nbio_free(s);
    return rc;
}

/* ---- step 3: framing over TLS ---- */

static int step_tls(demo_ctx *ctx)
{
    const char *msg = "hello over TLS!";
    char q[160], why[400];
    if (ctx->tls_echo == NULL) {
        say("the TLS echo server could not start: %s", ctx->tls_error);
        return -1;
    }
    say("at start-up: nbio_tls_make_cert(NULL) made a throwaway self-signed certificate");
    say("  (EC P-256, names localhost, 127.0.0.1, ::1, valid one day) in memory, and");
    say("  a u64-framed TLS echo server on %s uses it (one shared server config)", ctx->tls_addr);
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.ca_pem = ctx->cert_pem; /* trust exactly that certificate; verification stays on */
    nbio_tls_config *cfg = NULL;
    int r = nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &o, why, sizeof why);
    if (r < 0) {
        say("nbio_tls_config_new failed: %s: %s", nbio_errname(r), why);
        return -1;
    }
    say("nbio_tls_config_new(CLIENT, ca_pem = that certificate): verification on");
    nbio_session *s = nbio_frame_new(nbio_tls_connect(ctx->tls_addr, cfg, NULL, NULL),
                                     &nbio_frame_u64le, NULL);
    nbio_tls_config_unref(cfg); /* the session keeps its own reference */
    if (s == NULL)
        return failed(NULL, "connect", NBIO_ENOMEM);
    say("nbio_frame_new(nbio_tls_connect(\"%s\"), u64): frames over TLS over TCP;", ctx->tls_addr);
    say("  the certificate will be checked against the IP address 127.0.0.1");
    int rc = 0;
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    while (nbio_status(s) == NBIO_STATUS_ESTABLISHING) {
        r = nbio_drive(s);
        if (r < 0) {
            rc = failed(s, "handshake", r);
            break;
        }
        if (nbio_now_ms() > deadline) {
            rc = failed(s, "handshake", NBIO_ETIMEDOUT);
            break;
        }
        demo_pump(ctx);
    }
    if (rc == 0) {
        char subject[256];
        (void)nbio_tls_peer_subject(s, subject, sizeof subject);
        say("handshake done (driven by nbio_drive): %s, cipher %s", nbio_tls_version(s),
            nbio_tls_cipher(s));
        say("  the server's certificate verified: %s", subject);
        rc = write_until_done(ctx, s, msg, "encrypted into one TLS record on the next drive/read");
    }
    bool echoed = false;
    while (rc == 0 && !echoed) {
        nbio_buf in;
        r = nbio_read(s, &in);
        if (r < 0) {
            rc = failed(s, "read", r);
        } else if (r == NBIO_DATA) {
            bool same = in.len == strlen(msg) && memcmp(in.data, msg, in.len) == 0;
            say("read: NBIO_DATA, one whole frame of %zu bytes, decrypted: %s%s", in.len,
                quoted(in.data, in.len, q, sizeof q), same ? " (exactly as written)" : " (MISMATCH)");
            if (!same)
                rc = -1;
            echoed = true;
        } else if (nbio_now_ms() > deadline) {
            rc = failed(s, "read", NBIO_ETIMEDOUT);
        } else {
            demo_pump(ctx);
        }
    }
    if (rc == 0) {
        while ((r = nbio_close(s)) == NBIO_PENDING)
            demo_pump(ctx);
        if (r < 0)
            rc = failed(s, "close", r);
        else
            say("nbio_close: NBIO_DONE, close_notify and FIN are out; nbio_free releases all three layers");
    }
    nbio_free(s);
    return rc;
}

/* ---- step 4: an HTTP request through the agent ---- */

/* Reads ex until the whole response is there (NBIO_DATA), pumping the
 * servers meanwhile. Returns 0, or -1 after saying why. */
static int read_response(demo_ctx *ctx, nbio_session *ex, nbio_http_response *resp)
{
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    unsigned reads = 0;
    for (;;) {
        int r = nbio_http_read_response(ex, resp);
        if (r == NBIO_DATA)
            break;
        if (r < 0)
            return failed(ex, "read", r);
        if (nbio_now_ms() > deadline)
            return failed(ex, "read", NBIO_ETIMEDOUT);
        reads++;
        demo_pump(ctx); /* the responder works between our reads */
    }
    say("nbio_http_read_response: NBIO_DATA on read %u; the %u before returned NBIO_IDLE",
        reads + 1, reads);
    say("  or NBIO_ACTIVE while the connect, the request and the answer went on");
    return 0;
}

static int step_http(demo_ctx *ctx)
{
    char q[160], url[128];
    if (ctx->http.listener == NULL) {
        say("the HTTP responder could not start");
        return -1;
    }
    snprintf(url, sizeof url, "http://%s/hello", ctx->http.addr);
    say("a tiny HTTP responder runs in this process on %s (raw nbio_read/nbio_write on", ctx->http.addr);
    say("  an accepted TCP session), answering every request with one fixed response");
    nbio_http_agent *agent = nbio_http_agent_new(NULL, NULL);
    if (agent == NULL)
        return failed(NULL, "agent", NBIO_ENOMEM);
    say("nbio_http_agent_new(NULL, NULL): the seed's HttpClient; it keeps idle keep-alive");
    say("  connections per origin and reuses them");
    int rc = 0;
    for (int round = 0; round < 2 && rc == 0; round++) {
        nbio_session *ex = nbio_http_agent_request(agent, url, NULL);
        if (ex == NULL) {
            rc = failed(NULL, "request", NBIO_ENOMEM);
            break;
        }
        say("nbio_http_agent_request(GET %s): an exchange session, returned at once,", url);
        say("  status %s", nbio_status(ex) == NBIO_STATUS_ESTABLISHING
                               ? "ESTABLISHING (connect and request go on in read/drive)"
                               : nbio_status(ex) == NBIO_STATUS_ESTABLISHED
                                   ? "ESTABLISHED (a pooled connection: the request is queued on it)"
                                                                            : "TERMINATED");
        nbio_http_response resp;
        rc = read_response(ctx, ex, &resp);
        if (rc == 0) {
            bool same = resp.body.len == strlen(HTTP_DEMO_BODY) &&
                        memcmp(resp.body.data, HTTP_DEMO_BODY, resp.body.len) == 0;
            say("  the whole response: HTTP/1.%d %d %.*s, %zu headers, body of %zu bytes:",
                resp.head.minor_version, resp.head.status, (int)resp.head.reason.len,
                resp.head.reason.data, resp.head.num_headers, resp.body.len);
            say("  %s%s", quoted(resp.body.data, resp.body.len, q, sizeof q),
                same ? " (as the responder sent it)" : " (MISMATCH)");
            if (!same || resp.head.status != 200)
                rc = -1;
            int reused = nbio_http_exchange_reused(ex);
            say("  %s; keep-alive: %s", reused == 1 ? "it reused the pooled connection"
                                                    : "it opened a new connection",
                resp.keep_alive ? "yes, the connection goes back to the agent's pool"
                                : "no");
            if (round == 1 && reused != 1) {
                say("  the second request should have reused the first one's connection");
                rc = -1;
            }
        }
        nbio_free(ex);
    }
    if (rc == 0)
        say("the responder accepted %u connection for %u requests; nbio_http_agent_free closes it",
            ctx->http.connections, ctx->http.requests);
    nbio_http_agent_free(agent);
    return rc;
}

/* ---- step 5: WebSocket ---- */

static const char *ws_type_name(nbio_ws_type t)
{
    return t == NBIO_WS_TEXT ? "text" : t == NBIO_WS_BINARY ? "binary" : "control";
}

static int step_ws(demo_ctx *ctx)
{
    static const struct {
        nbio_ws_type type;
        const char *data;
        size_t len;
    } msgs[] = {
        {NBIO_WS_TEXT, "hello, WebSocket! \xc3\xa9t\xc3\xa9", 23},
        {NBIO_WS_BINARY, "\x00\x01\x02\xff binary", 11},
    };
    const size_t nmsgs = sizeof msgs / sizeof msgs[0];
    char q[160], url[160];
    if (ctx->ws_echo == NULL) {
        say("the WebSocket echo server could not start: %s", ctx->ws_error);
        return -1;
    }
    snprintf(url, sizeof url, "ws://%s/demo?step=5", ctx->ws_addr);
    say("a WebSocket echo server runs in this process on %s: the echo server engine", ctx->ws_addr);
    say("  with each accepted connection wrapped in nbio_ws_server(), compression accepted");
    nbio_ws_options o;
    memset(&o, 0, sizeof o);
    o.compress = true; /* offer permessage-deflate */
    nbio_session *s = nbio_ws_connect(url, NULL, &o);
    if (s == NULL)
        return failed(NULL, "connect", NBIO_ENOMEM);
    say("nbio_ws_connect(\"%s\", compress): returned at once, status %s", url,
        nbio_status(s) == NBIO_STATUS_ESTABLISHING ? "ESTABLISHING (connect and upgrade go on in drive)"
                                                   : "TERMINATED");
    int rc = 0, r;
    int64_t deadline = nbio_now_ms() + STEP_TIMEOUT_MS;
    while (rc == 0 && nbio_status(s) == NBIO_STATUS_ESTABLISHING) {
        r = nbio_drive(s);
        if (r < 0)
            rc = failed(s, "handshake", r);
        else if (nbio_now_ms() > deadline)
            rc = failed(s, "handshake", NBIO_ETIMEDOUT);
        else
            demo_pump(ctx);
    }
    if (rc == 0 && nbio_status(s) != NBIO_STATUS_ESTABLISHED)
        rc = failed(s, "handshake", nbio_error(s));
    if (rc == 0)
        say("handshake done: 101 Switching Protocols, Sec-WebSocket-Accept checked; "
            "permessage-deflate %s", nbio_ws_compressed(s) ? "agreed on" : "not agreed on");
    for (size_t i = 0; i < nmsgs && rc == 0; i++) {
        nbio_buf b = {msgs[i].data, msgs[i].len};
        while (rc == 0 && (r = nbio_ws_write(s, msgs[i].type, &b)) != NBIO_DONE) {
            if (r < 0)
                rc = failed(s, "write", r);
            else if (nbio_now_ms() > deadline)
                rc = failed(s, "write", NBIO_ETIMEDOUT);
            else
                demo_pump(ctx);
        }
        if (rc == 0)
            say("nbio_ws_write(%s, %s): NBIO_DONE, one masked%s frame queued", ws_type_name(msgs[i].type),
                quoted(msgs[i].data, msgs[i].len, q, sizeof q),
                nbio_ws_compressed(s) ? ", compressed" : "");
    }
    size_t got = 0;
    while (rc == 0 && got < nmsgs) {
        nbio_ws_message m;
        r = nbio_ws_read(s, &m);
        if (r < 0) {
            rc = failed(s, "read", r);
        } else if (r == NBIO_DATA) {
            bool same = m.type == msgs[got].type && m.data.len == msgs[got].len &&
                        memcmp(m.data.data, msgs[got].data, m.data.len) == 0;
            say("nbio_ws_read: NBIO_DATA, a %s message of %zu bytes: %s%s", ws_type_name(m.type),
                m.data.len, quoted(m.data.data, m.data.len, q, sizeof q),
                same ? " (type and bytes as sent)" : " (MISMATCH)");
            if (!same)
                rc = -1;
            got++;
        } else if (nbio_now_ms() > deadline) {
            rc = failed(s, "read", NBIO_ETIMEDOUT);
        } else {
            demo_pump(ctx);
        }
    }
    if (rc == 0) {
        r = nbio_ws_close(s, 1000, "demo done");
        while (r == NBIO_PENDING && nbio_now_ms() <= deadline) {
            demo_pump(ctx);
            r = nbio_close(s);
        }
        unsigned code = 0;
        const char *reason = NULL;
        if (r != NBIO_DONE) {
            rc = failed(s, "close", r < 0 ? r : NBIO_ETIMEDOUT);
        } else if (nbio_ws_peer_close(s, &code, &reason)) {
            say("nbio_ws_close(1000, \"demo done\") + nbio_close until NBIO_DONE: the server");
            say("  answered with close %u \"%s\", then the connection was closed", code,
                reason != NULL ? reason : "");
        } else {
            say("nbio_close: NBIO_DONE, but no close frame came back from the server");
            rc = -1;
        }
    }
    nbio_free(s);
    return rc;
}

/* Makes the certificate and starts the TLS echo server; on failure leaves
 * ctx->tls_echo NULL with the reason in ctx->tls_error. */
static void start_tls_server(demo_ctx *ctx)
{
    int r = nbio_tls_make_cert(NULL, &ctx->cert_pem, &ctx->key_pem);
    if (r < 0) {
        snprintf(ctx->tls_error, sizeof ctx->tls_error, "nbio_tls_make_cert: %s", nbio_errname(r));
        return;
    }
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.cert_pem = ctx->cert_pem;
    o.key_pem = ctx->key_pem;
    nbio_tls_config *cfg = NULL;
    char why[300];
    r = nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &o, why, sizeof why);
    if (r < 0) {
        snprintf(ctx->tls_error, sizeof ctx->tls_error, "%s: %s", nbio_errname(r), why);
        return;
    }
    echo_server_config ecfg = {"127.0.0.1:0", &nbio_frame_u64le, 0, stderr,
                               "nbio demo: TLS echo server", cfg, 0, 0, false, false};
    ctx->tls_echo = echo_server_open(&ecfg, ctx->tls_error, sizeof ctx->tls_error);
    nbio_tls_config_unref(cfg); /* the server keeps its own reference */
    if (ctx->tls_echo != NULL)
        snprintf(ctx->tls_addr, sizeof ctx->tls_addr, "%s", echo_server_address(ctx->tls_echo));
}

static const demo_step steps[] = {
    {"streaming TCP: raw bytes (nbio's first example)", step_streaming},
    {"framing TCP: u64 length-prefixed frames (nbio's second example)", step_framing},
    {"TLS: u64 frames over TLS, certificate made in memory and verified", step_tls},
    {"HTTP: a GET through the agent, then a second one on the same connection "
     "(nbio's third example)", step_http},
    {"WebSocket: a client to an in-process WebSocket echo server, text and binary, "
     "closing handshake", step_ws},
};

static void demo_help(void)
{
    printf("Usage: nbio demo\n"
           "\n"
           "Starts an echo server in this process on 127.0.0.1 (a free port), and a\n"
           "u64-framed TLS echo server with a self-signed certificate it generates in\n"
           "memory, a tiny HTTP responder and a WebSocket echo server, and runs libnbio's examples against\n"
           "them, printing what happens step by step:\n");
    for (size_t i = 0; i < sizeof steps / sizeof steps[0]; i++)
        printf("  %zu. %s\n", i + 1, steps[i].title);
    printf("Exits 0 when every step worked.\n");
}

int cli_demo(int argc, char **argv)
{
    cli_args a = {argc, argv, 1, "demo"};
    while (a.i < argc) {
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            demo_help();
            return CLI_EXIT_OK;
        }
        return argv[a.i][0] == '-' ? cli_usage_error("demo", "unknown option '%s'", argv[a.i])
                                   : cli_usage_error("demo", "unexpected argument '%s'", argv[a.i]);
    }
    demo_ctx ctx;
    memset(&ctx, 0, sizeof ctx);
    char err[400];
    echo_server_config cfg = {"127.0.0.1:0", NULL, 0, stderr, "nbio demo: echo server", NULL, 0, 0, false, false};
    ctx.echo = echo_server_open(&cfg, err, sizeof err);
    if (ctx.echo == NULL) {
        fprintf(stderr, "nbio demo: cannot start the echo server: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    snprintf(ctx.echo_addr, sizeof ctx.echo_addr, "%s", echo_server_address(ctx.echo));
    start_tls_server(&ctx); /* a failure here fails the TLS step only */
    char http_err[400] = "";
    if (http_responder_open(&ctx.http, http_err, sizeof http_err) < 0) /* fails the HTTP step */
        fprintf(stderr, "nbio demo: cannot start the HTTP responder: %s\n", http_err);
    echo_server_config wcfg = {"127.0.0.1:0", NULL, 0, stderr, "nbio demo: WebSocket echo server",
                               NULL, 0, 0, true, true};
    ctx.ws_echo = echo_server_open(&wcfg, ctx.ws_error, sizeof ctx.ws_error); /* fails step 5 */
    if (ctx.ws_echo != NULL)
        snprintf(ctx.ws_addr, sizeof ctx.ws_addr, "%s", echo_server_address(ctx.ws_echo));
    printf("libnbio %s demo\n", nbio_version());
    printf("An echo server runs in this process on %s, driven in the same thread\n"
           "between the client's calls (nothing here ever blocks).\n",
           ctx.echo_addr);
    if (ctx.tls_echo != NULL)
        printf("A u64-framed TLS echo server runs beside it on %s.\n", ctx.tls_addr);
    if (ctx.http.listener != NULL)
        printf("A tiny HTTP responder runs on %s.\n", ctx.http.addr);
    if (ctx.ws_echo != NULL)
        printf("A WebSocket echo server runs on %s.\n", ctx.ws_addr);
    size_t n = sizeof steps / sizeof steps[0], ok = 0;
    for (size_t i = 0; i < n; i++) {
        printf("\n[%zu/%zu] %s\n", i + 1, n, steps[i].title);
        fflush(stdout);
        if (steps[i].run(&ctx) == 0)
            ok++;
        else
            printf("    -> step failed\n");
    }
    echo_server_free(ctx.echo);
    echo_server_free(ctx.tls_echo);
    echo_server_free(ctx.ws_echo);
    http_responder_close(&ctx.http);
    free(ctx.cert_pem);
    free(ctx.key_pem);
    printf("\n%zu of %zu steps worked.\n", ok, n);
    return ok == n ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
