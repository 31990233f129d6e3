/* The echo server engine and the `nbio echo-server` subcommand. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "echo_server.h"
#include "nbio/tcp.h"

#define CLOSE_GRACE_MS 5000 /* how long a graceful close may take */
#define READS_PER_STEP 64   /* fairness: payloads echoed per client per step */
#define ACCEPTS_PER_STEP 64

typedef enum client_state {
    CLIENT_ECHOING, /* reading and echoing */
    CLIENT_CLOSING  /* the client half-closed; everything was echoed; closing */
} client_state;

typedef struct echo_client {
    nbio_session *s;
    char name[96];
    client_state state;
    /* An echo the session could not take at once: pend holds a copy of
     * the rest, and `rest` is what to resubmit. */
    bool pending;
    nbio_buf rest;
    unsigned char *pend;
    size_t pend_cap;
    int64_t close_deadline;
} echo_client;

struct echo_server {
    nbio_session *listener;
    char address[128];
    const nbio_frame_strategy *framing;
    nbio_frame_options fopt;
    nbio_tls_config *tls; /* our reference; NULL: plaintext */
    FILE *log;
    const char *prefix;
    unsigned long next_id;
    echo_client **clients;
    size_t n, cap;
    struct pollfd *pfd;
    size_t pfd_cap;
};

echo_server *echo_server_open(const echo_server_config *cfg, char *err, size_t errlen)
{
    echo_server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        snprintf(err, errlen, "NBIO_ENOMEM: out of memory");
        return NULL;
    }
    srv->framing = cfg->framing;
    if (cfg->tls != NULL)
        srv->tls = nbio_tls_config_ref(cfg->tls);
    nbio_frame_options_init(&srv->fopt);
    if (cfg->max_frame > 0)
        srv->fopt.max_frame = cfg->max_frame;
    srv->log = cfg->log != NULL ? cfg->log : stderr;
    srv->prefix = cfg->log_prefix != NULL ? cfg->log_prefix : "echo-server";
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

static void client_free(echo_client *c)
{
    nbio_free(c->s);
    free(c->pend);
    free(c);
}

/* Removes client i (swapping the last one into its place). */
static void remove_client(echo_server *srv, size_t i)
{
    client_free(srv->clients[i]);
    srv->clients[i] = srv->clients[--srv->n];
}

static void drop_client(echo_server *srv, size_t i, int err)
{
    echo_client *c = srv->clients[i];
    const char *what = srv->tls != NULL && !nbio_tls_handshake_done(c->s)
                           ? "TLS handshake failed, dropped client"
                           : "dropped client";
    fprintf(srv->log, "%s: %s %s: %s: %s\n", srv->prefix, what, c->name, nbio_errname(err),
            nbio_detail(c->s)[0] ? nbio_detail(c->s) : nbio_strerror(err));
    fflush(srv->log);
    remove_client(srv, i);
}

static int add_client(echo_server *srv, nbio_session *s)
{
    if (srv->n == srv->cap) {
        size_t cap = srv->cap ? srv->cap * 2 : 16;
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
    if (s == NULL) {
        free(c);
        return NBIO_ENOMEM;
    }
    c->s = s;
    c->state = CLIENT_ECHOING;
    srv->clients[srv->n++] = c;
    return 0;
}

/* Accepts every waiting connection (up to a bound). Returns how many, or a
 * negative error when the listener itself failed. */
static int accept_clients(echo_server *srv)
{
    int got = 0;
    for (int k = 0; k < ACCEPTS_PER_STEP; k++) {
        nbio_session *s = NULL;
        int r = nbio_accept(srv->listener, &s);
        if (r == NBIO_IDLE)
            break;
        if (r < 0) {
            if (nbio_status(srv->listener) == NBIO_STATUS_TERMINATED) {
                fprintf(srv->log, "%s: listener failed: %s: %s\n", srv->prefix,
                        nbio_errname(r), nbio_detail(srv->listener));
                return r;
            }
            fprintf(srv->log, "%s: accept: %s: %s\n", srv->prefix, nbio_errname(r),
                    nbio_strerror(r));
            break; /* transient (e.g. out of file descriptors): try again later */
        }
        if (add_client(srv, s) < 0) {
            fprintf(srv->log, "%s: out of memory for a new client\n", srv->prefix);
            break;
        }
        got++;
    }
    return got;
}

/* Keeps a copy of the part of an echo the session did not take. */
static int keep_rest(echo_client *c, const nbio_buf *rest)
{
    if (rest->len > c->pend_cap) {
        unsigned char *p = realloc(c->pend, rest->len);
        if (p == NULL)
            return NBIO_ENOMEM;
        c->pend = p;
        c->pend_cap = rest->len;
    }
    memcpy(c->pend, rest->data, rest->len);
    c->rest.data = c->pend;
    c->rest.len = rest->len;
    c->pending = true;
    return 0;
}

/* Serves an echoing client. Returns progress (>= 0) or a negative error. */
static int serve_echoing(echo_client *c)
{
    int progress = 0;
    if (c->pending) {
        size_t before = c->rest.len;
        int r = nbio_write(c->s, &c->rest);
        if (r < 0)
            return r;
        if (r == NBIO_DONE) {
            c->pending = false;
            if (c->pend_cap > (1u << 20)) { /* give back what a large frame took */
                free(c->pend);
                c->pend = NULL;
                c->pend_cap = 0;
            }
        }
        if (c->rest.len != before || r == NBIO_DONE)
            progress++;
    }
    for (int k = 0; k < READS_PER_STEP && !c->pending; k++) {
        nbio_buf in;
        int r = nbio_read(c->s, &in);
        if (r == NBIO_IDLE)
            break;
        if (r == NBIO_ACTIVE) {
            progress++;
            continue;
        }
        if (r == NBIO_EPEERCLOSED) {
            /* Everything it sent was echoed (or is buffered for sending):
             * close gracefully, then free. */
            c->state = CLIENT_CLOSING;
            c->close_deadline = nbio_now_ms() + CLOSE_GRACE_MS;
            return progress + 1;
        }
        if (r < 0)
            return r;
        progress++;
        nbio_buf out = in;
        int w = nbio_write(c->s, &out);
        if (w < 0)
            return w;
        if (w == NBIO_PENDING && keep_rest(c, &out) < 0)
            return NBIO_ENOMEM;
    }
    /* Coalesced output (framing) goes out on drive. */
    int d = nbio_drive(c->s);
    if (d < 0)
        return d;
    return progress + (d == NBIO_ACTIVE);
}

/* Serves client i. Returns progress; the client may be removed. */
static int serve_client(echo_server *srv, size_t i)
{
    echo_client *c = srv->clients[i];
    int progress = 0;
    if (c->state == CLIENT_ECHOING) {
        int r = serve_echoing(c);
        if (r < 0) {
            drop_client(srv, i, r);
            return 1;
        }
        progress = r;
    }
    if (c->state == CLIENT_CLOSING) {
        int r = nbio_close(c->s);
        if (r == NBIO_DONE) {
            remove_client(srv, i);
            return progress + 1;
        }
        if (r < 0) {
            drop_client(srv, i, r);
            return progress + 1;
        }
        if (nbio_now_ms() >= c->close_deadline) {
            fprintf(srv->log, "%s: dropped client %s: graceful close took over %d ms\n",
                    srv->prefix, c->name, CLOSE_GRACE_MS);
            remove_client(srv, i);
            return progress + 1;
        }
    }
    return progress;
}

/* Sleeps until a socket is ready, at most wait_ms. A client whose echo is
 * pending, or that is closing, is only woken for writability: reading it
 * now would break backpressure (nbio_wait() cannot express this, so the
 * poll set is built here from nbio_fd() and nbio_interest()). */
static int wait_ready(echo_server *srv, int wait_ms)
{
    size_t need = srv->n + 1;
    if (need > srv->pfd_cap) {
        struct pollfd *p = realloc(srv->pfd, need * sizeof *p);
        if (p == NULL)
            return NBIO_ENOMEM;
        srv->pfd = p;
        srv->pfd_cap = need;
    }
    size_t k = 0;
    srv->pfd[k++] = (struct pollfd){.fd = nbio_fd(srv->listener), .events = POLLIN, .revents = 0};
    for (size_t i = 0; i < srv->n; i++) {
        echo_client *c = srv->clients[i];
        short ev = 0;
        if (c->pending || c->state == CLIENT_CLOSING) {
            ev = POLLOUT;
        } else {
            unsigned want = nbio_interest(c->s);
            if (want & NBIO_READY)
                return 0; /* work is buffered: do not sleep */
            if (want & NBIO_WANT_READ)
                ev |= POLLIN;
            if (want & NBIO_WANT_WRITE)
                ev |= POLLOUT;
        }
        int fd = nbio_fd(c->s);
        if (fd < 0 || ev == 0)
            continue;
        srv->pfd[k++] = (struct pollfd){.fd = fd, .events = ev, .revents = 0};
    }
    for (size_t i = 0; i < srv->n; i++)
        if (srv->clients[i]->state == CLIENT_CLOSING && wait_ms > 50)
            wait_ms = 50; /* re-check close deadlines */
    int r = poll(srv->pfd, (nfds_t)k, wait_ms);
    if (r < 0 && errno != EINTR)
        return -errno;
    return 0;
}

int echo_server_step(echo_server *srv, int wait_ms)
{
    int r = accept_clients(srv);
    if (r < 0)
        return r;
    int progress = r;
    /* Walk backwards: removing client i swaps in one already served. */
    for (size_t i = srv->n; i-- > 0;)
        progress += serve_client(srv, i);
    if (progress == 0 && wait_ms > 0) {
        int w = wait_ready(srv, wait_ms);
        if (w < 0) {
            fprintf(srv->log, "%s: poll: %s\n", srv->prefix, nbio_strerror(w));
            return w;
        }
    }
    return progress;
}

void echo_server_free(echo_server *srv)
{
    if (srv == NULL)
        return;
    for (size_t i = 0; i < srv->n; i++)
        client_free(srv->clients[i]);
    free(srv->clients);
    free(srv->pfd);
    nbio_free(srv->listener);
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
           "                      prefix), u32, u16 (big-endian length prefix), line\n"
           "  --max-frame BYTES   largest frame accepted (default 64M; K, M, G suffixes);\n"
           "                      a client sending a larger one is dropped\n"
           "  --idle spin|wait    spin: busy-poll, lowest latency (default);\n"
           "                      wait: sleep in poll() when nothing happens\n"
           "  --tls-cert FILE     serve TLS with this PEM certificate chain (leaf\n"
           "                      first); needs --tls-key. Framing runs over TLS\n"
           "  --tls-key FILE      the PEM private key of --tls-cert\n"
           "  --tls-client-ca FILE  require a client certificate signed by a CA in\n"
           "                      this PEM file (mutual TLS); needs --tls-cert\n"
           "  -h, --help          show this help\n"
           "\n"
           "A client whose TLS handshake fails is reported in one line on standard\n"
           "error and dropped; the other clients go on. A certificate or key that\n"
           "cannot be loaded is reported before listening, with exit status 1.\n");
}

int cli_echo_server(int argc, char **argv)
{
    const char *cmd = "echo-server";
    cli_args a = {argc, argv, 1, cmd};
    const char *listen = NULL, *v = NULL;
    const nbio_frame_strategy *framing = NULL;
    size_t max_frame = 0;
    bool wait = false;
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
            if (v == NULL || !cli_framing(cmd, v, &framing))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--max-frame", &v)) {
            if (v == NULL || !cli_size(cmd, "--max-frame", v, &max_frame))
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

    char err[400];
    nbio_tls_config *tls = NULL;
    if (tls_cert != NULL) {
        /* One configuration for every connection, made before listening so
         * that a bad file is reported at once. */
        nbio_tls_options o;
        nbio_tls_options_init(&o);
        o.cert_file = tls_cert;
        o.key_file = tls_key;
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
    echo_server_config cfg = {listen, framing, max_frame, stderr, "nbio echo-server", tls};
    echo_server *srv = echo_server_open(&cfg, err, sizeof err);
    nbio_tls_config_unref(tls); /* the server holds its own reference */
    if (srv == NULL) {
        fprintf(stderr, "nbio echo-server: %s\n", err);
        return CLI_EXIT_FAIL;
    }
    printf("listening on %s\n", echo_server_address(srv));
    fflush(stdout);
    int rc = CLI_EXIT_OK;
    while (!cli_stop_requested()) {
        int r = echo_server_step(srv, wait ? 200 : 0);
        if (r < 0) { /* the reason was logged */
            rc = CLI_EXIT_FAIL;
            break;
        }
    }
    echo_server_free(srv);
    return rc;
}
