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
#include "nbio/tcp.h"
#include "nbio/tls.h"

#define STEP_TIMEOUT_MS 10000

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
} demo_ctx;

typedef struct demo_step {
    const char *title;
    int (*run)(demo_ctx *ctx); /* 0 on success, -1 after printing why */
} demo_step;

/* Lets every in-process server make progress once. */
static void demo_pump(demo_ctx *ctx)
{
    (void)echo_server_step(ctx->echo, 0);
    if (ctx->tls_echo != NULL)
        (void)echo_server_step(ctx->tls_echo, 0);
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
                               "nbio demo: TLS echo server", cfg, 0, 0};
    ctx->tls_echo = echo_server_open(&ecfg, ctx->tls_error, sizeof ctx->tls_error);
    nbio_tls_config_unref(cfg); /* the server keeps its own reference */
    if (ctx->tls_echo != NULL)
        snprintf(ctx->tls_addr, sizeof ctx->tls_addr, "%s", echo_server_address(ctx->tls_echo));
}

static const demo_step steps[] = {
    {"streaming TCP: raw bytes (nbio's first example)", step_streaming},
    {"framing TCP: u64 length-prefixed frames (nbio's second example)", step_framing},
    {"TLS: u64 frames over TLS, certificate made in memory and verified", step_tls},
};

static void demo_help(void)
{
    printf("Usage: nbio demo\n"
           "\n"
           "Starts an echo server in this process on 127.0.0.1 (a free port), and a\n"
           "u64-framed TLS echo server with a self-signed certificate it generates in\n"
           "memory, and runs libnbio's examples against them, printing what happens\n"
           "step by step:\n");
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
    echo_server_config cfg = {"127.0.0.1:0", NULL, 0, stderr, "nbio demo: echo server", NULL, 0, 0};
    ctx.echo = echo_server_open(&cfg, err, sizeof err);
    if (ctx.echo == NULL) {
        fprintf(stderr, "nbio demo: cannot start the echo server: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    snprintf(ctx.echo_addr, sizeof ctx.echo_addr, "%s", echo_server_address(ctx.echo));
    start_tls_server(&ctx); /* a failure here fails the TLS step only */
    printf("libnbio %s demo\n", nbio_version());
    printf("An echo server runs in this process on %s, driven in the same thread\n"
           "between the client's calls (nothing here ever blocks).\n",
           ctx.echo_addr);
    if (ctx.tls_echo != NULL)
        printf("A u64-framed TLS echo server runs beside it on %s.\n", ctx.tls_addr);
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
    free(ctx.cert_pem);
    free(ctx.key_pem);
    printf("\n%zu of %zu steps worked.\n", ok, n);
    return ok == n ? CLI_EXIT_OK : CLI_EXIT_FAIL;
}
