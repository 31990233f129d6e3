/* `nbio cat`: standard input to a peer, what comes back to standard output. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "nbio/tcp.h"
#include "tcp/addr.h"
#include "nbio/tls.h"

#define STDIN_CHUNK 65536
#define READS_PER_LOOP 64

typedef struct cat_state {
    nbio_session *s;
    const nbio_frame_strategy *framing;
    size_t max_frame;
    /* standard input not yet sent: in[start, end) */
    unsigned char *in;
    size_t cap, start, end;
    size_t scanned;     /* framing: bytes after start known to hold no '\n' */
    bool stdin_eof;
    bool pending;       /* out is what the session has not taken yet */
    nbio_buf out;
    bool shutdown_done; /* our write side is closed */
    bool peer_closed;   /* the peer closed its side: nothing more to read */
} cat_state;

static void cat_help(void)
{
    printf("Usage: nbio cat [options] HOST:PORT|PATH\n"
           "\n"
           "Connects to HOST:PORT ([v6]:PORT, a name, or a Unix socket PATH containing\n"
           "'/'), sends standard input and prints what comes back. At the end of\n"
           "input it half-closes the connection (with TLS: close_notify) and keeps\n"
           "printing until the peer closes, then exits 0. Errors go to standard\n"
           "error with exit status 1; with TLS, a peer that closes without\n"
           "close_notify (NBIO_ETLSTRUNCATED) is an error too.\n"
           "\n"
           "Options:\n"
           "  --framing NAME      none (raw bytes, default), u64, u32, u16 or line:\n"
           "                      each input line (without its newline) is sent as one\n"
           "                      frame, and each frame received is printed followed by\n"
           "                      a newline\n"
           "  --max-frame BYTES   largest frame sent or accepted (default 64M)\n"
           "  --tls               speak TLS (framing runs over it). The server's\n"
           "                      certificate is verified against the system trust\n"
           "                      store (or --cacert) and the host name in the address\n"
           "                      (or --servername)\n"
           "  --cacert FILE       trust the CA certificates in this PEM file instead of\n"
           "                      the system store\n"
           "  --servername NAME   the name to send as SNI and to verify the certificate\n"
           "                      against (default: the host in HOST:PORT; required for\n"
           "                      a Unix socket PATH unless --insecure)\n"
           "  --cert FILE         client certificate (PEM) for mutual TLS; needs --key\n"
           "  --key FILE          the PEM private key of --cert\n"
           "  --insecure          UNSAFE: do not verify the server's certificate or name.\n"
           "                      The connection is encrypted but not authenticated:\n"
           "                      anyone on the path can read and change it. For tests\n"
           "                      with throwaway certificates only\n"
           "  -h, --help          show this help\n"
           "\n"
           "The TLS options other than --tls are a usage error without --tls.\n");
}

static int fail(cat_state *st, int err)
{
    fflush(stdout);
    const char *d = nbio_detail(st->s);
    fprintf(stderr, "nbio cat: %s: %s\n", nbio_errname(err), d[0] ? d : nbio_strerror(err));
    return CLI_EXIT_FAIL;
}

/* Finds the next thing to send from the input buffer: raw bytes, or one
 * whole line as a frame (the last line may lack its newline at EOF).
 * Returns 1 when st->out was set, 0 when more input is needed, or -1 when a
 * line is longer than the frame limit. */
static int next_output(cat_state *st)
{
    size_t have = st->end - st->start;
    if (st->framing == NULL) {
        if (have == 0)
            return 0;
        st->out.data = st->in + st->start;
        st->out.len = have;
        st->start = st->end;
        return 1;
    }
    if (have == 0)
        return 0;
    unsigned char *p = st->in + st->start;
    unsigned char *nl = memchr(p + st->scanned, '\n', have - st->scanned);
    size_t len;
    if (nl != NULL) {
        len = (size_t)(nl - p);
        st->start += len + 1;
    } else if (st->stdin_eof && have > 0) {
        len = have;
        st->start += len;
    } else {
        st->scanned = have;
        return have > st->max_frame ? -1 : 0;
    }
    st->scanned = 0;
    if (len > st->max_frame)
        return -1;
    st->out.data = p;
    st->out.len = len;
    return 1;
}

/* Reads what standard input has (poll said it is readable). */
static int read_stdin(cat_state *st)
{
    if (st->start == st->end) {
        st->start = st->end = 0;
    } else if (st->start > 0) {
        memmove(st->in, st->in + st->start, st->end - st->start);
        st->end -= st->start;
        st->start = 0;
    }
    if (st->cap - st->end < STDIN_CHUNK) {
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

/* Sends as much input as the session takes. Returns progress or an error. */
static int send_input(cat_state *st)
{
    int progress = 0;
    for (;;) {
        if (!st->pending) {
            int r = next_output(st);
            if (r < 0) {
                fprintf(stderr, "nbio cat: an input line is longer than --max-frame (%zu bytes)\n",
                        st->max_frame);
                return NBIO_ETOOLARGE;
            }
            if (r == 0)
                return progress;
            st->pending = true;
        }
        size_t before = st->out.len;
        int w = nbio_write(st->s, &st->out);
        if (w < 0)
            return w;
        if (w == NBIO_PENDING) {
            return progress + (st->out.len != before);
        }
        st->pending = false;
        progress++;
    }
}

/* Prints what arrived. Returns progress or an error. */
static int receive(cat_state *st)
{
    int progress = 0;
    for (int k = 0; k < READS_PER_LOOP && !st->peer_closed; k++) {
        nbio_buf msg;
        int r = nbio_read(st->s, &msg);
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
        progress++;
        if (msg.len > 0 && fwrite(msg.data, 1, msg.len, stdout) != msg.len)
            return NBIO_EPIPE;
        if (st->framing != NULL && putchar('\n') == EOF)
            return NBIO_EPIPE;
    }
    if (progress > 0 && fflush(stdout) != 0)
        return NBIO_EPIPE;
    return progress;
}

/* Sleeps until standard input or the session can make progress, at most
 * timeout ms (bounded: connect timeouts are checked by drive), and reads
 * standard input when it is ready. */
static void wait_for_io(cat_state *st, int timeout)
{
    struct pollfd p[2];
    nfds_t n = 0;
    bool input_wanted = !st->stdin_eof && !st->pending && !st->shutdown_done &&
                        st->end - st->start <= st->max_frame;
    if (input_wanted)
        p[n++] = (struct pollfd){.fd = STDIN_FILENO, .events = POLLIN, .revents = 0};
    unsigned want = st->peer_closed ? 0 : nbio_interest(st->s);
    if (want & NBIO_READY)
        timeout = 0;
    if (st->peer_closed && st->pending)
        want = NBIO_WANT_WRITE;
    short ev = (short)(((want & NBIO_WANT_READ) ? POLLIN : 0) |
                       ((want & NBIO_WANT_WRITE) ? POLLOUT : 0));
    int fd = nbio_fd(st->s);
    if (fd >= 0 && ev != 0)
        p[n++] = (struct pollfd){.fd = fd, .events = ev, .revents = 0};
    (void)poll(p, n, timeout);
    if (input_wanted && (p[0].revents & (POLLIN | POLLHUP | POLLERR)))
        (void)read_stdin(st); /* errors are seen on the next read */
}

static int run(cat_state *st)
{
    for (;;) {
        int progress = 0, r;
        if (!st->shutdown_done) {
            if ((r = send_input(st)) < 0)
                return fail(st, r);
            progress += r;
        }
        if ((r = receive(st)) < 0)
            return fail(st, r);
        progress += r;
        if (!st->peer_closed || !st->shutdown_done) {
            if ((r = nbio_drive(st->s)) < 0)
                return fail(st, r);
            progress += r == NBIO_ACTIVE;
        }
        if (st->stdin_eof && !st->pending && st->start == st->end && !st->shutdown_done) {
            r = nbio_shutdown(st->s);
            if (r < 0)
                return fail(st, r);
            if (r == NBIO_DONE) {
                st->shutdown_done = true;
                progress++;
            }
        }
        if (st->peer_closed && st->shutdown_done)
            return CLI_EXIT_OK;
        /* stdin is read only when poll says so: a slow stdin never stalls
         * the session, and a busy session never starves stdin */
        wait_for_io(st, progress > 0 ? 0 : 100);
    }
}

int cli_cat(int argc, char **argv)
{
    const char *cmd = "cat";
    cli_args a = {argc, argv, 1, cmd};
    const char *target = NULL, *v = NULL;
    bool tls = false, insecure = false;
    const char *cacert = NULL, *servername = NULL, *cert = NULL, *key = NULL;
    const char *tls_option = NULL; /* the first TLS option seen, for messages */
    cat_state st;
    memset(&st, 0, sizeof st);
    st.max_frame = (size_t)64 << 20;
    while (a.i < argc) {
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            cat_help();
            return CLI_EXIT_OK;
        } else if (cli_option(&a, "--framing", &v)) {
            if (v == NULL || !cli_framing(cmd, v, &st.framing))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--max-frame", &v)) {
            if (v == NULL || !cli_size(cmd, "--max-frame", v, &st.max_frame))
                return CLI_EXIT_USAGE;
        } else if (cli_flag(&a, "--tls")) {
            tls = true;
        } else if (cli_flag(&a, "--insecure")) {
            insecure = true;
            tls_option = tls_option ? tls_option : "--insecure";
        } else if (cli_option(&a, "--cacert", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            cacert = v;
            tls_option = tls_option ? tls_option : "--cacert";
        } else if (cli_option(&a, "--servername", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            servername = v;
            tls_option = tls_option ? tls_option : "--servername";
        } else if (cli_option(&a, "--cert", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            cert = v;
            tls_option = tls_option ? tls_option : "--cert";
        } else if (cli_option(&a, "--key", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            key = v;
            tls_option = tls_option ? tls_option : "--key";
        } else if (strcmp(argv[a.i], "--") == 0) {
            a.i++;
            break;
        } else if (argv[a.i][0] == '-' && argv[a.i][1] != '\0') {
            return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
        } else {
            if (target != NULL)
                return cli_usage_error(cmd, "only one address, please ('%s' and '%s')",
                                       target, argv[a.i]);
            target = argv[a.i++];
        }
    }
    if (a.i < argc) {
        if (target != NULL || a.i + 1 < argc)
            return cli_usage_error(cmd, "only one address, please");
        target = argv[a.i];
    }
    if (target == NULL)
        return cli_usage_error(cmd, "missing HOST:PORT or socket path");
    if (!cli_is_unix_path(target)) { /* a malformed address is a usage error, not a failure */
        char host[NBIO__HOST_MAX];
        int port = 0;
        const char *why = "";
        if (nbio__split_hostport(target, host, &port, &why) != 0 || host[0] == '\0')
            return cli_usage_error(cmd, "bad address '%s': %s", target,
                                   why[0] ? why : "expected HOST:PORT");
    }
    if (!tls && tls_option != NULL)
        return cli_usage_error(cmd, "%s is a TLS option: add --tls", tls_option);
    if ((cert == NULL) != (key == NULL))
        return cli_usage_error(cmd, "--cert and --key go together");
    if (insecure && cacert != NULL)
        return cli_usage_error(cmd, "--insecure verifies nothing, so --cacert makes no sense with it");
    if (tls && !insecure && servername == NULL && cli_is_unix_path(target))
        return cli_usage_error(cmd, "--servername NAME is needed to verify a server on a Unix socket");

    nbio_session *s;
    if (tls) {
        nbio_tls_options o;
        nbio_tls_options_init(&o);
        o.ca_file = cacert;
        o.cert_file = cert;
        o.key_file = key;
        o.insecure_skip_verify = insecure;
        nbio_tls_config *cfg = NULL;
        char err[400];
        int r = nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &o, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "nbio cat: %s: %s\n", nbio_errname(r), err[0] ? err : nbio_strerror(r));
            return CLI_EXIT_FAIL;
        }
        /* verifies the host part of target, or servername, and sends it as SNI */
        s = nbio_tls_connect(target, cfg, servername, NULL);
        nbio_tls_config_unref(cfg); /* the session holds its own reference */
    } else {
        s = cli_is_unix_path(target) ? nbio_unix_connect(target, NULL)
                                     : nbio_tcp_connect(target, NULL);
    }
    if (s != NULL && st.framing != NULL) {
        nbio_frame_options fo;
        nbio_frame_options_init(&fo);
        fo.max_frame = st.max_frame;
        s = nbio_frame_new(s, st.framing, &fo);
    }
    if (s == NULL) {
        fprintf(stderr, "nbio cat: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    st.s = s;
    int rc = run(&st);
    nbio_free(s);
    free(st.in);
    return rc;
}
