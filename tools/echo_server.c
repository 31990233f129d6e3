/* The echo server engine and the `nbio echo-server` subcommand. */
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "accept.h"
#include "cli.h"
#include "echo_server.h"
#include "log.h"
#include "nbio/poll.h"
#include "nbio/tcp.h"
#include "nbio/ws.h"

#define CLOSE_GRACE_MS 5000  /* how long a graceful close may take */
#define READS_PER_STEP 64    /* fairness: payloads echoed per client per event */
#define EVENTS_PER_STEP 256
#define TLS_HANDSHAKE_CHECK_MS 11000 /* drive a silent TLS (or WebSocket) client past its
                                        handshake limit */
#define QUIET_MS 100 /* draining: a client quiet this long has sent everything; lingering:
                        after our goodbye, a client quiet this long is let go */

typedef enum client_state {
    CLIENT_ECHOING, /* reading and echoing */
    CLIENT_CLOSING, /* the client half-closed and everything was echoed: our goodbye */
    CLIENT_LINGER   /* our goodbye is out: wait for the client's end of stream */
} client_state;

typedef struct echo_client {
    nbio_session *s;
    size_t index; /* in srv->clients */
    char name[104];
    client_state state;
    /* An echo the session did not take whole: `rest` points into the
     * session's read buffer, which stays valid until the next read, and no
     * read happens while it is pending. */
    bool pending;
    nbio_buf rest;
    nbio_ws_type rest_type; /* ws: the pending echo's message type */
    bool ws_closing;        /* ws: our close was started (nbio_ws_close) */
    bool ws_up;             /* ws: the opening handshake completed */
    int64_t last_msg;       /* when the last whole message arrived */
    int64_t last_active;    /* when bytes last moved either way */
    int64_t close_deadline; /* CLOSING/LINGER: drop after this */
} echo_client;

struct echo_server {
    nbio_session *listener;
    nbio_poller *poller;
    char address[128];
    const nbio_frame_strategy *framing;
    nbio_frame_options fopt;
    nbio_tls_config *tls; /* our reference; NULL: plaintext */
    bool ws;              /* WebSocket sessions over TCP or TLS */
    nbio_ws_options wsopt;
    cli_log log;
    int idle_timeout_ms;
    size_t max_clients;
    unsigned long next_id;
    echo_client **clients;
    size_t n, cap;
    int64_t now; /* the clock of the current step */
    bool draining;
    int64_t drain_deadline;
};

echo_server *echo_server_open(const echo_server_config *cfg, char *err, size_t errlen)
{
    echo_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL || (srv->poller = nbio_poller_new()) == NULL) {
        snprintf(err, errlen, "NBIO_ENOMEM: out of memory");
        free(srv);
        return NULL;
    }
    srv->framing = cfg->framing;
    if (cfg->tls != NULL)
        srv->tls = nbio_tls_config_ref(cfg->tls);
    nbio_frame_options_init(&srv->fopt);
    srv->fopt.release_buffers = true; /* idle clients hold no buffers */
    if (cfg->max_frame > 0)
        srv->fopt.max_frame = cfg->max_frame;
    srv->ws = cfg->ws;
    memset(&srv->wsopt, 0, sizeof srv->wsopt);
    srv->wsopt.compress = cfg->ws_compress;
    srv->wsopt.max_message = cfg->max_frame; /* 0: the session's default */
    cli_log_init(&srv->log, cfg->log, cfg->log_prefix != NULL ? cfg->log_prefix : "echo-server",
                 20);
    srv->idle_timeout_ms = cfg->idle_timeout_ms > 0 ? cfg->idle_timeout_ms : 0;
    srv->max_clients = cfg->max_clients > 0 ? cfg->max_clients : 10000;
    srv->listener = cli_is_unix_path(cfg->listen) ? nbio_unix_listen(cfg->listen, NULL)
                                                  : nbio_tcp_listen(cfg->listen, NULL);
    if (srv->listener == NULL || nbio_status(srv->listener) != NBIO_STATUS_ESTABLISHED) {
        if (srv->listener == NULL)
            snprintf(err, errlen, "NBIO_ENOMEM: out of memory");
        else
            snprintf(err, errlen, "%s: %s", nbio_errname(nbio_error(srv->listener)),
                     nbio_detail(srv->listener));
        echo_server_free(srv);
        return NULL;
    }
    int r = nbio_poller_add(srv->poller, srv->listener);
    if (r < 0) {
        snprintf(err, errlen, "%s: poller: %s", nbio_errname(r), nbio_strerror(r));
        echo_server_free(srv);
        return NULL;
    }
    if (nbio_local_address(srv->listener, srv->address, sizeof srv->address) < 0 ||
        srv->address[0] == '\0')
        snprintf(srv->address, sizeof srv->address, "%s", cfg->listen);
    return srv;
}

const char *echo_server_address(const echo_server *srv)
{
    return srv->address;
}

size_t echo_server_clients(const echo_server *srv)
{
    return srv->n;
}

/* Removes and frees a client. */
static void remove_client(echo_server *srv, echo_client *c)
{
    size_t i = c->index;
    srv->clients[i] = srv->clients[--srv->n];
    srv->clients[i]->index = i;
    nbio_free(c->s); /* also leaves the poller */
    free(c);
}

static void drop_client(echo_server *srv, echo_client *c, int err)
{
    const char *what = srv->tls != NULL && !nbio_tls_handshake_done(c->s)
                           ? "TLS handshake failed, dropped client"
                       : srv->ws && !c->ws_up ? "WebSocket handshake failed, dropped client"
                                              : "dropped client";
    cli_log_line(&srv->log, "%s %s: %s: %s", what, c->name, nbio_errname(err),
                 nbio_detail(c->s)[0] ? nbio_detail(c->s) : nbio_strerror(err));
    remove_client(srv, c);
}

/* The client's next deadline, or -1. */
static int64_t client_deadline(const echo_server *srv, const echo_client *c)
{
    if (c->state == CLIENT_LINGER && c->last_active + QUIET_MS < c->close_deadline)
        return c->last_active + QUIET_MS;
    if (c->state != CLIENT_ECHOING)
        return c->close_deadline;
    if (srv->draining)
        return c->last_active + QUIET_MS < srv->drain_deadline ? c->last_active + QUIET_MS
                                                               : srv->drain_deadline;
    if (srv->idle_timeout_ms > 0)
        return c->last_msg + srv->idle_timeout_ms;
    if ((srv->tls != NULL && !nbio_tls_handshake_done(c->s)) ||
        (srv->ws && nbio_status(c->s) == NBIO_STATUS_ESTABLISHING))
        return c->last_msg + TLS_HANDSHAKE_CHECK_MS;
    return -1;
}

static void arm_timer(echo_server *srv, echo_client *c)
{
    (void)nbio_poller_set_timer(srv->poller, c->s, client_deadline(srv, c));
}

static int add_client(echo_server *srv, nbio_session *s)
{
    if (srv->n == srv->cap) {
        size_t cap = srv->cap ? srv->cap * 2 : 64;
        echo_client **p = realloc(srv->clients, cap * sizeof *p);
        if (p == NULL) {
            nbio_free(s);
            return NBIO_ENOMEM;
        }
        srv->clients = p;
        srv->cap = cap;
    }
    echo_client *c = calloc(1, sizeof *c);
    if (c == NULL) {
        nbio_free(s);
        return NBIO_ENOMEM;
    }
    char peer[80];
    if (nbio_peer_address(s, peer, sizeof peer) < 0 || peer[0] == '\0')
        snprintf(peer, sizeof peer, "%s", nbio_kind(s));
    snprintf(c->name, sizeof c->name, "#%lu (%s)", ++srv->next_id, peer);
    if (srv->tls != NULL)
        s = nbio_tls_server(s, srv->tls); /* takes s, also on failure */
    if (s != NULL && srv->framing != NULL)
        s = nbio_frame_new(s, srv->framing, &srv->fopt); /* takes s, also on failure */
    if (s != NULL && srv->ws)
        s = nbio_ws_server(s, &srv->wsopt); /* takes s; answers the upgrade while establishing */
    if (s == NULL) {
        free(c);
        return NBIO_ENOMEM;
    }
    c->s = s;
    c->state = CLIENT_ECHOING;
    c->last_msg = c->last_active = srv->now;
    nbio_set_data(s, c);
    int r = nbio_poller_add(srv->poller, s);
    if (r < 0) {
        nbio_free(s);
        free(c);
        return r;
    }
    c->index = srv->n;
    srv->clients[srv->n++] = c;
    arm_timer(srv, c);
    return 0;
}

/* Accepts waiting connections (up to a bound). Returns how many, or a
 * negative error when the listener itself failed. */
static int accept_clients(echo_server *srv)
{
    int got = 0;
    for (int k = 0; k < CLI_ACCEPTS_PER_STEP; k++) {
        nbio_session *s = NULL;
        int r = cli_accept(srv->listener, srv->poller, &srv->log, srv->now, &s);
        if (r == NBIO_IDLE)
            break;
        if (r < 0)
            return r;
        if (srv->n >= srv->max_clients) {
            char peer[80] = "";
            (void)nbio_peer_address(s, peer, sizeof peer);
            cli_log_line(&srv->log, "refused client %s: %zu clients already (--max-clients)",
                         peer[0] ? peer : "(unknown)", srv->n);
            nbio_free(s);
            continue;
        }
        if ((r = add_client(srv, s)) < 0) {
            cli_log_line(&srv->log, "cannot serve a new client: %s", nbio_strerror(r));
            break;
        }
        got++;
    }
    return got;
}

/* Reads on hold while an echo is pending: only writability wakes it. */
static void set_pending(echo_server *srv, echo_client *c, bool pending)
{
    if (c->pending != pending) {
        c->pending = pending;
        (void)nbio_poller_set_mask(srv->poller, c->s, pending ? NBIO_WANT_WRITE : ~0u);
    }
}

/* Starts our goodbye. */
static void start_closing(echo_server *srv, echo_client *c)
{
    c->state = CLIENT_CLOSING;
    c->close_deadline = srv->now + CLOSE_GRACE_MS;
    if (srv->draining && c->close_deadline > srv->drain_deadline)
        c->close_deadline = srv->drain_deadline;
    set_pending(srv, c, false);
    arm_timer(srv, c);
}

/* Reads the next payload: a WebSocket message (its type kept for the echo)
 * or a frame or bytes. */
static int read_payload(echo_server *srv, echo_client *c, nbio_buf *in)
{
    if (!srv->ws)
        return nbio_read(c->s, in);
    nbio_ws_message m;
    int r = nbio_ws_read(c->s, &m);
    if (!c->ws_up && nbio_status(c->s) == NBIO_STATUS_ESTABLISHED)
        c->ws_up = true;
    if (r == NBIO_DATA) {
        *in = m.data;
        c->rest_type = m.type; /* text stays text */
    }
    return r;
}

/* Writes (the rest of) an echo. */
static int write_payload(echo_server *srv, echo_client *c)
{
    return srv->ws ? nbio_ws_write(c->s, c->rest_type, &c->rest) : nbio_write(c->s, &c->rest);
}

/* Echoes what the client sent. Returns 0, or a negative error. */
static int serve_echoing(echo_server *srv, echo_client *c)
{
    if (c->pending) {
        size_t before = c->rest.len;
        int r = write_payload(srv, c);
        if (r < 0)
            return r;
        if (c->rest.len != before)
            c->last_active = srv->now;
        if (r == NBIO_PENDING)
            return 0;
        set_pending(srv, c, false);
    }
    for (int k = 0; k < READS_PER_STEP; k++) {
        nbio_buf in;
        int r = read_payload(srv, c, &in);
        if (r == NBIO_IDLE) {
            /* Draining: a client quiet for a while has sent everything (its
             * late bytes may only be slow because our echoes were). */
            if (srv->draining) {
                if (srv->now - c->last_active >= QUIET_MS)
                    start_closing(srv, c);
                else
                    arm_timer(srv, c);
            }
            return 0;
        }
        c->last_active = srv->now;
        if (r == NBIO_ACTIVE)
            continue;
        if (r == NBIO_EPEERCLOSED) {
            start_closing(srv, c);
            return 0;
        }
        if (r < 0)
            return r;
        c->last_msg = srv->now;
        c->rest = in; /* written straight from the read buffer */
        int w = write_payload(srv, c);
        if (w < 0)
            return w;
        if (w == NBIO_PENDING) {
            set_pending(srv, c, true);
            return 0;
        }
    }
    return 0;
}

/* Our goodbye, then the client's end of stream (reading what still comes,
 * so closing the socket does not reset the connection). Returns 1 when the
 * client is done, 0 to go on, or a negative error. */
static int serve_closing(echo_server *srv, echo_client *c)
{
    if (c->state == CLIENT_CLOSING) {
        int r;
        if (srv->ws) {
            /* WebSocket: after the client's close the session answered it and
             * nbio_close closes the transport; when we close first (draining),
             * 1001, then nbio_close waits for the client's close. */
            if (!c->ws_closing && srv->draining && nbio_status(c->s) == NBIO_STATUS_ESTABLISHED)
                r = nbio_ws_close(c->s, 1001, "server shutting down");
            else
                r = nbio_close(c->s);
            c->ws_closing = true;
            if (r == NBIO_DONE || r == NBIO_ECLOSED)
                return 1; /* the closing handshake is complete and the transport closed */
            if (r < 0 && !srv->draining)
                return 1; /* the client's close came first: it may not wait for ours */
        } else {
            r = nbio_shutdown(c->s);
        }
        if (r < 0)
            return r;
        if (r != NBIO_DONE)
            return 0;
        c->state = CLIENT_LINGER;
        c->last_active = srv->now;
        arm_timer(srv, c);
    }
    for (int k = 0; k < READS_PER_STEP; k++) {
        nbio_buf in;
        int r = nbio_read(c->s, &in);
        if (r == NBIO_IDLE)
            return 0;
        if (r < 0)
            return 1; /* its end of stream, or it went away: done either way */
        c->last_active = srv->now;
    }
    return 0;
}

/* A due timer: an idle client, a close that takes too long, a handshake
 * to check. Returns true when the client was removed. */
static bool client_timer(echo_server *srv, echo_client *c)
{
    int64_t due = client_deadline(srv, c);
    if (srv->draining && c->state == CLIENT_ECHOING && srv->now < srv->drain_deadline) {
        arm_timer(srv, c); /* serve it below: it closes once quiet */
        return false;
    }
    if (due < 0 || srv->now < due) {
        arm_timer(srv, c); /* it sent a message meanwhile: a later deadline */
        return false;
    }
    if (c->state == CLIENT_LINGER && srv->now < c->close_deadline) {
        /* Our goodbye is out and it went quiet: let it go, unless bytes
         * arrived just now (closing over unread bytes would reset it). */
        int64_t before = c->last_active;
        int r = serve_closing(srv, c);
        if (r == 0 && c->last_active != before) {
            arm_timer(srv, c);
            return false;
        }
        remove_client(srv, c);
        return true;
    }
    if (c->state != CLIENT_ECHOING || srv->draining) {
        cli_log_line(&srv->log, "dropped client %s: graceful close took too long", c->name);
        remove_client(srv, c);
        return true;
    }
    if (srv->idle_timeout_ms > 0) {
        cli_log_line(&srv->log, "dropped client %s: no message for %d ms (--idle-timeout)",
                     c->name, srv->idle_timeout_ms);
        remove_client(srv, c);
        return true;
    }
    int r = nbio_drive(c->s); /* lets the TLS handshake limit end it */
    if (r < 0) {
        drop_client(srv, c, r);
        return true;
    }
    c->last_msg = srv->now;
    arm_timer(srv, c);
    return false;
}

/* Serves one client after an event. */
static void serve_client(echo_server *srv, echo_client *c, unsigned events)
{
    if ((events & NBIO_EV_TIMER) && client_timer(srv, c))
        return;
    if (c->state == CLIENT_ECHOING) {
        int r = serve_echoing(srv, c);
        if (r < 0) {
            drop_client(srv, c, r);
            return;
        }
    }
    if (c->state != CLIENT_ECHOING) {
        int r = serve_closing(srv, c);
        if (r < 0)
            drop_client(srv, c, r);
        else if (r == 1)
            remove_client(srv, c);
    }
}

int echo_server_step(echo_server *srv, int wait_ms)
{
    nbio_event ev[EVENTS_PER_STEP];
    int n = nbio_poller_wait(srv->poller, ev, EVENTS_PER_STEP, wait_ms);
    if (n < 0) {
        cli_log_line(&srv->log, "poll: %s", nbio_strerror(n));
        return n;
    }
    srv->now = nbio_now_ms();
    cli_log_tick(&srv->log, false);
    for (int i = 0; i < n; i++) {
        if (ev[i].session == srv->listener) {
            if (ev[i].events & NBIO_EV_TIMER) /* the accept pause is over */
                cli_accept_resume(srv->poller, srv->listener);
            if (!srv->draining && (ev[i].events & (NBIO_EV_READ | NBIO_EV_READY))) {
                int r = accept_clients(srv);
                if (r < 0)
                    return r;
            }
            continue;
        }
        /* A session comes once per batch, and a client is only removed
         * while its own event is served: ev[i].data is live. */
        serve_client(srv, ev[i].data, ev[i].events);
    }
    return n;
}

void echo_server_drain(echo_server *srv, int grace_ms)
{
    if (srv->draining)
        return;
    srv->draining = true;
    srv->now = nbio_now_ms();
    srv->drain_deadline = srv->now + grace_ms;
    if (srv->listener != NULL) { /* stop accepting: new connections are refused */
        nbio_free(srv->listener);
        srv->listener = NULL;
    }
    /* Every client is served once now: it echoes what it already sent, and
     * closes when nothing more is buffered (serve_echoing). */
    for (size_t i = 0; i < srv->n; i++)
        (void)nbio_poller_set_timer(srv->poller, srv->clients[i]->s, srv->now);
}

bool echo_server_drained(const echo_server *srv)
{
    return srv->draining && (srv->n == 0 || nbio_now_ms() >= srv->drain_deadline);
}

void echo_server_free(echo_server *srv)
{
    if (srv == NULL)
        return;
    cli_log_tick(&srv->log, true);
    for (size_t i = 0; i < srv->n; i++) {
        nbio_free(srv->clients[i]->s);
        free(srv->clients[i]);
    }
    free(srv->clients);
    nbio_free(srv->listener);
    nbio_poller_free(srv->poller);
    nbio_tls_config_unref(srv->tls);
    free(srv);
}

/* ---- the subcommand ---- */

static void echo_server_help(void)
{
    printf("Usage: nbio echo-server --listen HOST:PORT|PATH [options]\n"
           "\n"
           "Echoes every byte, or every frame, back to each client. Serves many\n"
           "clients from one thread. Prints \"listening on ADDRESS\" (with the real port\n"
           "when port 0 was asked) as its first line. Exits 0 on SIGINT or SIGTERM.\n"
           "\n"
           "Options:\n"
           "  --listen ADDR       127.0.0.1:0, [::1]:8080, :8080, or a Unix socket path\n"
           "                      (anything containing '/')\n"
           "  --framing NAME      none (raw bytes, default), u64 (little-endian length\n"
           "                      prefix), u32, u16 (big-endian length prefix), line,\n"
           "                      or ws: a WebSocket echo server on any path (each\n"
           "                      message echoed with its type; wss with --tls-cert)\n"
           "  --ws-compress       with --framing ws: accept permessage-deflate\n"
           "  --max-frame BYTES   largest frame accepted (default 64M; K, M, G suffixes);\n"
           "                      a client sending a larger one is dropped. With ws:\n"
           "                      the largest message (default 16M), closed with 1009\n"
           "  --idle spin|wait    spin: busy-poll, lowest latency (default);\n"
           "                      wait: sleep in epoll when nothing happens\n"
           "  --idle-timeout MS   drop a client from which no whole message (any bytes\n"
           "                      with --framing none) arrived for MS (default 0: never)\n"
           "  --max-clients N     serve at most N clients; further connections are\n"
           "                      closed at once (default 10000)\n"
           "  --tls-cert FILE     serve TLS with this PEM certificate chain (leaf\n"
           "                      first); needs --tls-key. Framing runs over TLS\n"
           "  --tls-key FILE      the PEM private key of --tls-cert\n"
           "  --tls-client-ca FILE  require a client certificate signed by a CA in\n"
           "                      this PEM file (mutual TLS); needs --tls-cert\n"
           "  -h, --help          show this help\n"
           "\n"
           "A client whose TLS handshake fails is reported in one line on standard\n"
           "error and dropped; the other clients go on. A certificate or key that\n"
           "cannot be loaded is reported before listening, with exit status 1.\n"
           "Log lines never block the server; over 20 a second they are counted and\n"
           "summed up. On SIGINT or SIGTERM the server stops accepting, echoes what\n"
           "clients already sent, closes every connection gracefully (TLS\n"
           "close_notify, then FIN) within 5 seconds, and exits 0.\n");
}

int cli_echo_server(int argc, char **argv)
{
    const char *cmd = "echo-server";
    cli_args a = {argc, argv, 1, cmd};
    const char *listen = NULL, *v = NULL;
    const nbio_frame_strategy *framing = NULL;
    size_t max_frame = 0, max_clients = 10000, idle_timeout = 0;
    bool wait = false, ws = false, ws_compress = false;
    const char *tls_cert = NULL, *tls_key = NULL, *tls_client_ca = NULL;
    while (a.i < argc) {
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            echo_server_help();
            return CLI_EXIT_OK;
        } else if (cli_option(&a, "--listen", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            listen = v;
        } else if (cli_option(&a, "--framing", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            ws = strcmp(v, "ws") == 0;
            framing = NULL;
            if (!ws && !cli_framing(cmd, v, &framing))
                return CLI_EXIT_USAGE;
        } else if (cli_flag(&a, "--ws-compress")) {
            ws_compress = true;
        } else if (cli_option(&a, "--max-frame", &v)) {
            if (v == NULL || !cli_size(cmd, "--max-frame", v, &max_frame))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--idle-timeout", &v)) {
            if (v == NULL || !cli_count(cmd, "--idle-timeout", v, 0, 86400000, &idle_timeout))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--max-clients", &v)) {
            if (v == NULL || !cli_count(cmd, "--max-clients", v, 1, 10000000, &max_clients))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--idle", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            if (strcmp(v, "spin") == 0)
                wait = false;
            else if (strcmp(v, "wait") == 0)
                wait = true;
            else
                return cli_usage_error(cmd, "--idle wants spin or wait, not '%s'", v);
        } else if (cli_option(&a, "--tls-cert", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            tls_cert = v;
        } else if (cli_option(&a, "--tls-key", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            tls_key = v;
        } else if (cli_option(&a, "--tls-client-ca", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            tls_client_ca = v;
        } else if (argv[a.i][0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (listen == NULL)
        return cli_usage_error(cmd, "--listen HOST:PORT is required");
    if ((tls_cert == NULL) != (tls_key == NULL))
        return cli_usage_error(cmd, "--tls-cert and --tls-key go together");
    if (tls_client_ca != NULL && tls_cert == NULL)
        return cli_usage_error(cmd, "--tls-client-ca needs --tls-cert and --tls-key");
    if (ws_compress && !ws)
        return cli_usage_error(cmd, "--ws-compress needs --framing ws");

    char err[400];
    nbio_tls_config *tls = NULL;
    if (tls_cert != NULL) {
        /* One configuration for every connection, made before listening so
         * that a bad file is reported at once. */
        nbio_tls_options o;
        nbio_tls_options_init(&o);
        o.cert_file = tls_cert;
        o.key_file = tls_key;
        /* OpenSSL keeps its record buffers: about 30 KiB per idle TLS client,
         * and no free/malloc per burst (SSL_MODE_RELEASE_BUFFERS cost a fifth
         * of the 64-byte echo rate). Framing releases its own buffers. */
        if (tls_client_ca != NULL) {
            o.ca_file = tls_client_ca;
            o.verify = NBIO_TLS_VERIFY_REQUIRED;
        }
        int r = nbio_tls_config_new(&tls, NBIO_TLS_SERVER, &o, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "nbio echo-server: %s: %s\n", nbio_errname(r),
                    err[0] ? err : nbio_strerror(r));
            return CLI_EXIT_FAIL;
        }
    }

    cli_install_stop_handlers();
    signal(SIGPIPE, SIG_IGN); /* a log reader that went away must not kill the server */
    echo_server_config cfg = {listen,  framing, max_frame,         stderr, "nbio echo-server",
                              tls,     (int)idle_timeout, max_clients, ws, ws_compress};
    echo_server *srv = echo_server_open(&cfg, err, sizeof err);
    nbio_tls_config_unref(tls); /* the server holds its own reference */
    if (srv == NULL) {
        fprintf(stderr, "nbio echo-server: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    printf("listening on %s\n", echo_server_address(srv));
    fflush(stdout);
    int rc = CLI_EXIT_OK;
    while (!echo_server_drained(srv)) {
        if (cli_stop_requested())
            echo_server_drain(srv, CLOSE_GRACE_MS);
        int r = echo_server_step(srv, wait ? 200 : 0);
        if (r < 0) { /* the reason was logged */
            rc = CLI_EXIT_FAIL;
            break;
        }
    }
    echo_server_free(srv);
    return rc;
}
