/*
 * `nbio ws`: a WebSocket client from the command line, on nbio/ws.h.
 *
 * Each line of standard input (without its newline) goes out as one
 * message (text, or binary with --binary); each message that arrives is
 * printed followed by a newline. At the end of input it starts the closing
 * handshake (1000), keeps printing what still arrives until the peer's
 * close, and exits 0 when that close carried 1000.
 *
 * nbio_ws_close() sends our close frame and reads go on handing out what
 * the peer sent before its own close, so all of that is printed. But a
 * peer stops sending once our close arrives: an answer it had not started
 * yet (a Python server still decoding a 10 MB line) would never come. So
 * at the end of input the close waits until nothing moved either way for
 * QUIET_MS (pongs do not count).
 *
 * Standard input is read only when poll() says it is readable, and the
 * session is served meanwhile; with nothing to do the loop sleeps in
 * poll() on standard input and the session's descriptor and interest.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nbio/tls.h"
#include "nbio/ws.h"

#define STDIN_CHUNK 65536
#define READS_PER_LOOP 64
#define WAIT_MS 100            /* longest sleep: timers (pings, handshake) run in drive */
#define CLOSE_WAIT_MS 10000    /* our close is out: the peer's must come within this */
#define QUIET_MS 300           /* end of input: close once nothing moved for this long */
#define DEFAULT_MAX_MESSAGE ((size_t)16 << 20) /* the session's default */

typedef struct ws_state {
    nbio_session *s;
    nbio_ws_type type;     /* what input lines are sent as */
    size_t max_message;
    /* standard input not yet sent: in[start, end) */
    unsigned char *in;
    size_t cap, start, end;
    size_t scanned;        /* bytes after start known to hold no '\n' */
    bool stdin_eof;
    bool pending;          /* out is a message (or its rest) the session has not taken */
    nbio_buf out;
    int64_t last_activity; /* when bytes last moved either way */
    bool close_started;    /* nbio_ws_close was called */
    int64_t close_deadline;
    bool peer_closed;      /* NBIO_EPEERCLOSED was read */
} ws_state;

static void ws_help(void)
{
    printf("Usage: nbio ws [options] URL\n"
           "\n"
           "Opens a WebSocket to URL (ws://HOST[:PORT]/PATH or wss://...), sends each\n"
           "line of standard input (without its newline) as one message and prints\n"
           "every message received followed by a newline. At the end of input it\n"
           "sends a close (1000), waits for the peer's close and exits 0.\n"
           "\n"
           "Options:\n"
           "  -H, --header 'Name: value'  add a handshake header (repeatable)\n"
           "      --protocol NAME         offer a subprotocol (repeatable)\n"
           "      --compress              offer permessage-deflate\n"
           "      --binary                send each input line as a binary message\n"
           "                              (default: text, which must be UTF-8)\n"
           "      --cacert FILE           wss: trust these CA certificates (PEM) instead\n"
           "                              of the system store\n"
           "  -k, --insecure              UNSAFE: wss without verifying the server's\n"
           "                              certificate or name\n"
           "      --ping-interval MS      send a ping when nothing was sent for MS\n"
           "  -h, --help                  show this help\n"
           "\n"
           "Exit status: 0 after a clean close; 1 a connection, TLS or protocol failure,\n"
           "or a close from the peer with a code other than 1000 (one line on standard\n"
           "error: 'nbio ws: closed by peer: CODE REASON'); 2 a usage error.\n");
}

static int fail(ws_state *st, int err)
{
    fflush(stdout);
    const char *d = nbio_detail(st->s);
    fprintf(stderr, "nbio ws: %s: %s\n", nbio_errname(err), d[0] ? d : nbio_strerror(err));
    return CLI_EXIT_FAIL;
}

/* -H 'Name: value' into h (slices into v, which is argv and lives as long
 * as the program). Returns 0 or CLI_EXIT_USAGE. */
static int parse_header(const char *v, nbio_http_header *h)
{
    const char *colon = strchr(v, ':');
    if (colon == NULL || colon == v)
        return cli_usage_error("ws", "a header is 'Name: value', not '%s'", v);
    for (const char *p = v; p < colon; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p) != NULL)
            return cli_usage_error("ws", "bad header name in '%s'", v);
    const char *val = colon + 1;
    while (*val == ' ' || *val == '\t')
        val++;
    size_t vlen = strlen(val);
    while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
        vlen--;
    if (strpbrk(val, "\r\n") != NULL)
        return cli_usage_error("ws", "a header value cannot hold CR or LF: '%s'", v);
    h->name = (nbio_http_slice){v, (size_t)(colon - v)};
    h->value = (nbio_http_slice){val, vlen};
    return 0;
}

/* A subprotocol name is an HTTP token. */
static bool is_token(const char *s)
{
    if (*s == '\0')
        return false;
    for (; *s; s++)
        if (*s <= ' ' || *s >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *s) != NULL)
            return false;
    return true;
}

/* The next input line as a message; the last line may lack its newline at
 * the end of input. Returns 1 when st->out was set, 0 when more input is
 * needed, -1 when a line is longer than the message limit. */
static int next_line(ws_state *st)
{
    size_t have = st->end - st->start;
    if (have == 0)
        return 0;
    unsigned char *p = st->in + st->start;
    unsigned char *nl = memchr(p + st->scanned, '\n', have - st->scanned);
    size_t len;
    if (nl != NULL) {
        len = (size_t)(nl - p);
        st->start += len + 1;
    } else if (st->stdin_eof) {
        len = have;
        st->start += len;
    } else {
        st->scanned = have;
        return have > st->max_message ? -1 : 0;
    }
    st->scanned = 0;
    if (len > st->max_message)
        return -1;
    st->out = (nbio_buf){p, len};
    return 1;
}

/* Reads what standard input has (poll said it is readable). */
static int read_stdin(ws_state *st)
{
    if (st->start == st->end) {
        st->start = st->end = 0;
    } else if (st->start > 0 && !st->pending) {
        /* a pending message points into the buffer: move nothing then */
        memmove(st->in, st->in + st->start, st->end - st->start);
        st->end -= st->start;
        st->start = 0;
    }
    if (st->cap - st->end < STDIN_CHUNK) {
        if (st->pending)
            return 0; /* wait until the pending message is taken */
        size_t cap = st->cap ? st->cap * 2 : STDIN_CHUNK * 2;
        unsigned char *p = realloc(st->in, cap);
        if (p == NULL)
            return NBIO_ENOMEM;
        st->in = p;
        st->cap = cap;
    }
    ssize_t n = read(STDIN_FILENO, st->in + st->end, st->cap - st->end);
    if (n < 0)
        return errno == EINTR || errno == EAGAIN ? 0 : -errno;
    if (n == 0)
        st->stdin_eof = true;
    st->end += (size_t)n;
    return 1;
}

/* Sends as many input lines as the session takes. Returns progress or an
 * error. */
static int send_input(ws_state *st)
{
    int progress = 0;
    for (;;) {
        if (!st->pending) {
            int r = next_line(st);
            if (r < 0) {
                fprintf(stderr, "nbio ws: an input line is longer than the message limit "
                                "(%zu bytes)\n", st->max_message);
                return NBIO_ETOOLARGE;
            }
            if (r == 0)
                return progress;
            st->pending = true;
        }
        size_t before = st->out.len;
        int w = nbio_ws_write(st->s, st->type, &st->out);
        if (w == NBIO_EINVAL && st->type == NBIO_WS_TEXT) {
            fprintf(stderr, "nbio ws: NBIO_EINVAL: an input line is not UTF-8 (send it with "
                            "--binary)\n");
            return w;
        }
        if (w < 0)
            return w;
        if (w == NBIO_PENDING) /* not taken, or streaming: resubmit the rest later */
            return progress + (st->out.len != before);
        st->pending = false;
        progress++;
    }
}

/* Prints the messages that arrived. Returns progress or an error. */
static int receive(ws_state *st)
{
    int progress = 0;
    for (int k = 0; k < READS_PER_LOOP && !st->peer_closed; k++) {
        nbio_ws_message m;
        int r = nbio_ws_read(st->s, &m);
        if (r == NBIO_IDLE)
            break;
        if (r == NBIO_ACTIVE) {
            progress++;
            continue;
        }
        if (r == NBIO_EPEERCLOSED) {
            st->peer_closed = true;
            progress++;
            break;
        }
        if (r < 0)
            return r;
        if (r != NBIO_DATA)
            continue;
        if (m.type == NBIO_WS_PING || m.type == NBIO_WS_PONG)
            continue; /* answered by the session; not data, not printed */
        progress++;
        if (m.data.len > 0 && fwrite(m.data.data, 1, m.data.len, stdout) != m.data.len)
            return NBIO_EPIPE;
        if (putchar('\n') == EOF)
            return NBIO_EPIPE;
    }
    if (progress > 0 && fflush(stdout) != 0)
        return NBIO_EPIPE;
    return progress;
}

/* Sleeps until standard input or the session can make progress (at most
 * timeout ms), and reads standard input when it is ready. */
static int wait_for_io(ws_state *st, int timeout)
{
    struct pollfd p[2];
    nfds_t n = 0;
    bool input_wanted = !st->stdin_eof && !st->close_started && !st->pending &&
                        st->end - st->start <= st->max_message;
    if (input_wanted)
        p[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    unsigned want = nbio_interest(st->s);
    if (want & NBIO_READY)
        timeout = 0;
    short ev = (short)(((want & NBIO_WANT_READ) ? POLLIN : 0) |
                       ((want & NBIO_WANT_WRITE) ? POLLOUT : 0));
    int fd = nbio_fd(st->s);
    if (fd >= 0 && ev != 0)
        p[n++] = (struct pollfd){.fd = fd, .events = ev, .revents = 0};
    (void)poll(p, n, timeout);
    if (input_wanted && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
        int r = read_stdin(st);
        if (r < 0) {
            fprintf(stderr, "nbio ws: %s: reading standard input: %s\n", nbio_errname(r),
                    nbio_strerror(r));
            return r;
        }
    }
    return 0;
}

/* The peer's close arrived: 1000 is a clean end (0), anything else is
 * reported (1). */
static int peer_close_status(ws_state *st)
{
    unsigned code = 0;
    const char *reason = NULL;
    if (!nbio_ws_peer_close(st->s, &code, &reason)) {
        fflush(stdout);
        fprintf(stderr, "nbio ws: NBIO_EPEERCLOSED: the connection ended without a close frame\n");
        return CLI_EXIT_FAIL;
    }
    if (code == 1000)
        return CLI_EXIT_OK;
    fflush(stdout);
    fprintf(stderr, "nbio ws: closed by peer: %u %s\n", code, reason != NULL ? reason : "");
    return CLI_EXIT_FAIL;
}

/* Finishes the closing handshake once the peer's close was read: our
 * answer (the session queued it) goes out, then the transport closes. */
static int finish_close(ws_state *st)
{
    int64_t deadline = nbio_now_ms() + CLOSE_WAIT_MS;
    for (;;) {
        int r = nbio_close(st->s);
        if (r == NBIO_DONE || r == NBIO_ECLOSED)
            return 0;
        if (r < 0)
            return r;
        if (nbio_now_ms() > deadline)
            return NBIO_ETIMEDOUT;
        nbio_session *one = st->s;
        (void)nbio_wait(&one, 1, WAIT_MS);
    }
}

/* Our close is out: messages the peer sent before its own close are
 * still printed; once its close came, the transport closes and the peer's
 * code decides the exit status. */
static int closing(ws_state *st)
{
    for (;;) {
        int r = receive(st);
        if (r < 0)
            return fail(st, r);
        if (st->peer_closed) {
            int status = peer_close_status(st);
            r = finish_close(st);
            if (r < 0 && status == CLI_EXIT_OK)
                return fail(st, r);
            return status;
        }
        if (nbio_now_ms() > st->close_deadline) {
            fflush(stdout);
            fprintf(stderr, "nbio ws: NBIO_ETIMEDOUT: no close from the peer within %d ms "
                            "of ours\n", CLOSE_WAIT_MS);
            return CLI_EXIT_FAIL;
        }
        if (r == 0) {
            nbio_session *one = st->s;
            (void)nbio_wait(&one, 1, WAIT_MS);
        }
    }
}

static int run(ws_state *st)
{
    for (;;) {
        int progress = 0, r;
        bool established = nbio_status(st->s) == NBIO_STATUS_ESTABLISHED;
        if (established) {
            if ((r = send_input(st)) < 0)
                return r == NBIO_EINVAL || r == NBIO_ETOOLARGE ? CLI_EXIT_FAIL : fail(st, r);
            progress += r;
        }
        if ((r = receive(st)) < 0)
            return fail(st, r);
        progress += r;
        if (st->peer_closed) { /* the peer closed first: the session answered it */
            int status = peer_close_status(st);
            r = finish_close(st);
            if (r < 0 && status == CLI_EXIT_OK) {
                if (r == NBIO_ETIMEDOUT) {
                    fprintf(stderr, "nbio ws: NBIO_ETIMEDOUT: closing the connection took "
                                    "longer than %d ms\n", CLOSE_WAIT_MS);
                    return CLI_EXIT_FAIL;
                }
                return fail(st, r);
            }
            return status;
        }
        /* data moved (not pings or pongs: those go on while idle) */
        int64_t now = nbio_now_ms();
        if (progress > 0)
            st->last_activity = now;
        if ((r = nbio_drive(st->s)) < 0)
            return fail(st, r);
        progress += r == NBIO_ACTIVE;
        int timeout = progress > 0 ? 0 : WAIT_MS;
        bool all_sent = st->stdin_eof && !st->pending && st->start == st->end &&
                        nbio_status(st->s) == NBIO_STATUS_ESTABLISHED &&
                        !(nbio_interest(st->s) & NBIO_WANT_WRITE);
        if (st->stdin_eof && !all_sent)
            st->last_activity = now; /* still sending */
        if (all_sent && now - st->last_activity >= QUIET_MS) {
            /* everything is sent and answered: our close, then the peer's */
            st->close_started = true;
            st->close_deadline = now + CLOSE_WAIT_MS;
            r = nbio_ws_close(st->s, 1000, "");
            if (r == NBIO_DONE || r == NBIO_ECLOSED)
                return peer_close_status(st);
            if (r < 0)
                return fail(st, r);
            return closing(st);
        }
        if (all_sent) { /* what we sent may still be answered: wait for a quiet moment */
            int left = (int)(st->last_activity + QUIET_MS - now);
            if (timeout > left)
                timeout = left;
        }
        if (wait_for_io(st, timeout) < 0)
            return CLI_EXIT_FAIL;
    }
}

int cli_ws(int argc, char **argv)
{
    const char *cmd = "ws";
    const char *url = NULL, *cacert = NULL, *v = NULL;
    bool insecure = false, compress = false, binary = false;
    size_t ping_ms = 0;
    nbio_http_header *headers = calloc((size_t)argc, sizeof *headers);
    const char **protocols = calloc((size_t)argc, sizeof *protocols);
    size_t nheaders = 0, nprotocols = 0;
    int rc = CLI_EXIT_USAGE;
    if (headers == NULL || protocols == NULL) {
        fprintf(stderr, "nbio ws: out of memory\n");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    cli_args a = {argc, argv, 1, cmd};
    bool options_done = false;
    while (a.i < argc) {
        const char *arg = argv[a.i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            if (url != NULL) {
                cli_usage_error(cmd, "only one URL, please ('%s' and '%s')", url, arg);
                goto out;
            }
            url = arg;
            a.i++;
        } else if (strcmp(arg, "--") == 0) {
            options_done = true;
            a.i++;
        } else if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            ws_help();
            rc = CLI_EXIT_OK;
            goto out;
        } else if (cli_option(&a, "--header", &v) || cli_option(&a, "-H", &v)) {
            if (v == NULL || parse_header(v, &headers[nheaders]) != 0)
                goto out;
            nheaders++;
        } else if (strncmp(arg, "-H", 2) == 0) { /* -H'Name: value' */
            a.i++;
            if (parse_header(arg + 2, &headers[nheaders]) != 0)
                goto out;
            nheaders++;
        } else if (cli_option(&a, "--protocol", &v)) {
            if (v == NULL)
                goto out;
            if (!is_token(v)) {
                cli_usage_error(cmd, "a subprotocol name is a token, not '%s'", v);
                goto out;
            }
            protocols[nprotocols++] = v;
        } else if (cli_option(&a, "--cacert", &v)) {
            if (v == NULL)
                goto out;
            cacert = v;
        } else if (cli_option(&a, "--ping-interval", &v)) {
            if (v == NULL || !cli_count(cmd, "--ping-interval", v, 1, 86400000, &ping_ms))
                goto out;
        } else if (cli_flag(&a, "--compress")) {
            compress = true;
        } else if (cli_flag(&a, "--binary")) {
            binary = true;
        } else if (cli_flag(&a, "--insecure") || cli_flag(&a, "-k")) {
            insecure = true;
        } else {
            cli_usage_error(cmd, "unknown option '%s'", arg);
            goto out;
        }
    }
    if (url == NULL) {
        cli_usage_error(cmd, "no URL given");
        goto out;
    }
    if (strncmp(url, "ws://", 5) != 0 && strncmp(url, "wss://", 6) != 0) {
        cli_usage_error(cmd, "bad URL '%s': the URL must start with ws:// or wss://", url);
        goto out;
    }
    if (insecure && cacert != NULL) {
        cli_usage_error(cmd, "--insecure verifies nothing, so --cacert makes no sense with it");
        goto out;
    }

    nbio_tls_config *tls = NULL;
    if (strncmp(url, "wss://", 6) == 0 && (cacert != NULL || insecure)) {
        nbio_tls_options to;
        nbio_tls_options_init(&to);
        to.ca_file = cacert;
        to.insecure_skip_verify = insecure;
        char why[400] = "";
        int r = nbio_tls_config_new(&tls, NBIO_TLS_CLIENT, &to, why, sizeof why);
        if (r < 0) {
            fprintf(stderr, "nbio ws: %s: %s\n", nbio_errname(r), why[0] ? why : nbio_strerror(r));
            rc = CLI_EXIT_FAIL;
            goto out;
        }
    }
    nbio_ws_options o;
    memset(&o, 0, sizeof o);
    o.compress = compress;
    o.show_control = true; /* pongs are not data: they must not delay the close */
    o.ping_interval_ms = (int)ping_ms;
    o.protocols = protocols;
    o.num_protocols = nprotocols;
    o.headers = headers;
    o.num_headers = nheaders;
    nbio_session *s = nbio_ws_connect(url, tls, &o); /* NULL tls: the system trust store */
    nbio_tls_config_unref(tls);                      /* the session holds its own reference */
    if (s == NULL) {
        fprintf(stderr, "nbio ws: out of memory\n");
        rc = CLI_EXIT_FAIL;
        goto out;
    }
    if (nbio_status(s) == NBIO_STATUS_TERMINATED && nbio_error(s) == NBIO_EINVAL) {
        cli_usage_error(cmd, "bad URL '%s': %s", url, nbio_detail(s));
        nbio_free(s);
        goto out;
    }
    signal(SIGPIPE, SIG_IGN); /* a closed standard output is an error, not a signal */
    ws_state st;
    memset(&st, 0, sizeof st);
    st.s = s;
    st.type = binary ? NBIO_WS_BINARY : NBIO_WS_TEXT;
    st.max_message = DEFAULT_MAX_MESSAGE;
    rc = run(&st);
    nbio_free(s);
    free(st.in);
out:
    free(headers);
    free(protocols);
    return rc;
}
