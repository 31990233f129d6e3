/*
 * tls_peer: the libnbio side of the TLS interop tests (openssl s_server /
 * s_client, Python's ssl module).
 *
 *   tls_peer gencert DIR
 *       writes ca.pem, server.pem/server.key (localhost, 127.0.0.1, ::1),
 *       client.pem/client.key, made with nbio_tls_make_cert()
 *   tls_peer server --cert F --key F [--client-ca F [--optional]] [--alpn L]
 *                   [--mode echo|sink|source] [--bytes N] [--framing none|u32|u64|line]
 *                   [--count N] [--listen ADDR]
 *       prints "listening on HOST:PORT"; per client, one line on stdout:
 *       "client N: ok ..." or "client N: error NAME: detail"; exits after
 *       --count clients (0 when every one was ok, else 1)
 *   tls_peer client ADDR [--cacert F] [--servername N] [--cert F --key F]
 *                   [--insecure] [--alpn L] [--tls12] [--mode echo|sink|source|lines]
 *                   [--bytes N] [--framing ...] [--frames N]
 *       exits 0 when the exchange was exact; prints "connected VERSION CIPHER
 *       alpn=P peer=SUBJECT" and, on failure, "error NAME: detail"
 *
 * Modes. source: send --bytes pattern bytes, then close_notify. sink: read
 * --bytes pattern bytes (or until the peer closes) and check them. echo:
 * server echoes bytes or frames; client sends --bytes (or --frames frames)
 * and checks what comes back. lines (client): sends --frames lines and
 * expects each back reversed (openssl s_server -rev).
 * The pattern: byte i is block[i % 65521], block[k] = (7k^2 + 13k + 5) % 251.
 */
#define _GNU_SOURCE
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "nbio/frame.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"

#define BLOCK 65521
static unsigned char block[BLOCK];

static void make_block(void)
{
    for (unsigned long long k = 0; k < BLOCK; k++)
        block[k] = (unsigned char)((7 * k * k + 13 * k + 5) % 251);
}

static void pattern(unsigned char *dst, size_t off, size_t len)
{
    for (size_t i = 0; i < len; i++)
        dst[i] = block[(off + i) % BLOCK];
}

static size_t frame_len(size_t j)
{
    return j % 50 == 49 ? 100000 : (j * 7919) % 3000;
}

typedef struct opts {
    const char *cert, *key, *ca, *cacert, *servername, *alpn, *framing, *mode, *listen;
    bool optional, insecure, tls12;
    size_t bytes, frames;
    int count;
} opts;

static volatile sig_atomic_t stop;
static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static void die(const char *what, const char *detail)
{
    printf("error %s: %s\n", what, detail);
    fflush(stdout);
    exit(1);
}

static const nbio_frame_strategy *strategy(const opts *o)
{
    if (o->framing == NULL || strcmp(o->framing, "none") == 0)
        return NULL;
    const nbio_frame_strategy *st = nbio_frame_strategy_named(o->framing);
    if (st == NULL)
        die("usage", "unknown framing");
    return st;
}

/* ---- gencert ----------------------------------------------------------- */

static void write_file(const char *dir, const char *name, const char *text)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (f == NULL || fputs(text, f) < 0 || fclose(f) != 0)
        die("gencert", path);
}

static int gencert(const char *dir)
{
    char *cc = NULL, *ck = NULL, *sc = NULL, *sk = NULL, *kc = NULL, *kk = NULL;
    nbio_tls_cert_spec ca = {"tls_peer CA", NULL, -1, 2, true, false, NULL, NULL};
    if (nbio_tls_make_cert(&ca, &cc, &ck) != 0)
        die("gencert", "CA");
    nbio_tls_cert_spec srv = {"localhost", "localhost,127.0.0.1,::1", -1, 2, false, false, cc, ck};
    nbio_tls_cert_spec cli = {"tls_peer client", NULL, -1, 2, false, true, cc, ck};
    if (nbio_tls_make_cert(&srv, &sc, &sk) != 0 || nbio_tls_make_cert(&cli, &kc, &kk) != 0)
        die("gencert", "leaf");
    write_file(dir, "ca.pem", cc);
    write_file(dir, "server.pem", sc);
    write_file(dir, "server.key", sk);
    write_file(dir, "client.pem", kc);
    write_file(dir, "client.key", kk);
    free(cc), free(ck), free(sc), free(sk), free(kc), free(kk);
    return 0;
}

/* ---- one connection ---------------------------------------------------- */

typedef struct conn {
    nbio_session *s;
    int id;
    bool framed;
    size_t sent, received;  /* bytes (or frames) */
    size_t bad_at;          /* first mismatch + 1, 0 when none */
    unsigned char *pend;    /* a copy of what is pending to write */
    nbio_buf out;           /* the rest to resubmit */
    bool closing, done;
    int err;
    char detail[300];
} conn;

static void conn_fail(conn *c, int err, const char *detail)
{
    c->err = err;
    snprintf(c->detail, sizeof c->detail, "%s", detail);
    c->done = true;
}

/* Writes out (copying the rest when pending). Returns false on error. */
static bool push(conn *c, const void *data, size_t len)
{
    nbio_buf b = {data, len};
    int r = nbio_write(c->s, &b);
    if (r < 0) {
        conn_fail(c, r, nbio_detail(c->s));
        return false;
    }
    if (r == NBIO_PENDING) {
        c->pend = malloc(b.len ? b.len : 1);
        memcpy(c->pend, b.data, b.len);
        c->out.data = c->pend;
        c->out.len = b.len;
    }
    return true;
}

/* Resubmits a pending rest. Returns true when nothing is pending. */
static bool drain(conn *c)
{
    if (c->pend == NULL)
        return true;
    int r = nbio_write(c->s, &c->out);
    if (r < 0) {
        conn_fail(c, r, nbio_detail(c->s));
        return false;
    }
    if (r == NBIO_DONE) {
        free(c->pend);
        c->pend = NULL;
        return true;
    }
    return false;
}

static void check_bytes(conn *c, const unsigned char *p, size_t len, size_t off)
{
    unsigned char tmp[16384];
    for (size_t done = 0; done < len;) {
        size_t n = len - done < sizeof tmp ? len - done : sizeof tmp;
        pattern(tmp, off + done, n);
        if (c->bad_at == 0 && memcmp(tmp, p + done, n) != 0) {
            for (size_t i = 0; i < n; i++)
                if (tmp[i] != p[done + i]) {
                    c->bad_at = off + done + i + 1;
                    break;
                }
        }
        done += n;
    }
}

/* Lingers until the peer closes the transport (so no reset destroys data
 * it has not read yet), at most ms. */
static void linger_fd(int fd, int ms)
{
    if (fd < 0)
        return;
    int64_t end = nbio_now_ms() + ms;
    shutdown(fd, SHUT_WR);
    while (nbio_now_ms() < end) {
        struct pollfd p = {fd, POLLIN, 0};
        if (poll(&p, 1, 50) <= 0)
            continue;
        char junk[4096];
        if (recv(fd, junk, sizeof junk, 0) <= 0)
            return;
    }
}

/* ---- server ------------------------------------------------------------ */

#define MAXC 64

static void server_step(conn *c, const opts *o)
{
    if (c->done)
        return;
    if (c->closing) {
        int r = nbio_close(c->s);
        if (r == NBIO_DONE)
            c->done = true;
        else if (r < 0)
            conn_fail(c, r, nbio_detail(c->s));
        return;
    }
    if (nbio_drive(c->s) < 0) {
        conn_fail(c, nbio_error(c->s), nbio_detail(c->s));
        return;
    }
    if (!drain(c))
        return;
    if (strcmp(o->mode, "source") == 0 && nbio_status(c->s) == NBIO_ESTABLISHED) {
        unsigned char buf[16384];
        while (c->pend == NULL && c->sent < o->bytes) {
            size_t n = o->bytes - c->sent < sizeof buf ? o->bytes - c->sent : sizeof buf;
            pattern(buf, c->sent, n);
            if (!push(c, buf, n))
                return;
            c->sent += n; /* a pending rest goes out through drain() */
        }
        if (c->pend == NULL && c->sent == o->bytes)
            c->closing = true;
        return;
    }
    for (int k = 0; k < 16 && c->pend == NULL; k++) {
        nbio_buf in;
        int r = nbio_read(c->s, &in);
        if (r == NBIO_EPEERCLOSED) {
            c->closing = true; /* everything echoed (nothing pending): goodbye */
            return;
        }
        if (r < 0) {
            conn_fail(c, r, nbio_detail(c->s));
            return;
        }
        if (r != NBIO_DATA)
            return;
        if (strcmp(o->mode, "sink") == 0) {
            check_bytes(c, in.data, in.len, c->received);
            c->received += in.len;
        } else {
            c->received += c->framed ? 1 : in.len;
            if (!push(c, in.data, in.len))
                return;
        }
    }
}

static void report(const conn *c, const opts *o, bool server)
{
    const char *who = server ? "client" : "server";
    if (c->err != 0 && !(c->err == NBIO_ECLOSED))
        printf("%s %d: error %s: %s\n", who, c->id, nbio_errname(c->err), c->detail);
    else if (c->bad_at)
        printf("%s %d: error MISMATCH at byte %zu\n", who, c->id, c->bad_at - 1);
    else if (strcmp(o->mode, "sink") == 0)
        printf("%s %d: ok received %zu bytes\n", who, c->id, c->received);
    else
        printf("%s %d: ok\n", who, c->id);
    fflush(stdout);
}

static nbio_tls_config *make_config(nbio_tls_role role, const opts *o)
{
    nbio_tls_options to;
    nbio_tls_options_init(&to);
    to.cert_file = o->cert;
    to.key_file = o->key;
    to.alpn = o->alpn;
    if (role == NBIO_TLS_SERVER) {
        to.ca_file = o->ca;
        if (o->ca != NULL)
            to.verify = o->optional ? NBIO_TLS_VERIFY_OPTIONAL : NBIO_TLS_VERIFY_REQUIRED;
    } else {
        to.ca_file = o->cacert;
        to.insecure_skip_verify = o->insecure;
        if (o->tls12)
            to.max_version = NBIO_TLS1_2;
    }
    nbio_tls_config *cfg;
    char d[300];
    int r = nbio_tls_config_new(&cfg, role, &to, d, sizeof d);
    if (r != 0)
        die(nbio_errname(r), d);
    return cfg;
}

static int run_server(const opts *o)
{
    nbio_tls_config *cfg = make_config(NBIO_TLS_SERVER, o);
    nbio_session *l = nbio_tcp_listen(o->listen ? o->listen : "127.0.0.1:0", NULL);
    if (l == NULL || nbio_error(l) != 0)
        die("listen", nbio_detail(l));
    char addr[128];
    nbio_local_address(l, addr, sizeof addr);
    printf("listening on %s\n", addr);
    fflush(stdout);
    const nbio_frame_strategy *st = strategy(o);
    conn conns[MAXC];
    memset(conns, 0, sizeof conns);
    int next_id = 1, finished = 0, failures = 0;
    while (!stop && (o->count <= 0 || finished < o->count)) {
        nbio_session *all[MAXC + 1];
        size_t n = 0;
        all[n++] = l;
        for (int i = 0; i < MAXC; i++)
            if (conns[i].s != NULL)
                all[n++] = conns[i].s;
        nbio_wait(all, n, 20);
        nbio_session *ns;
        while (nbio_accept(l, &ns) == NBIO_DATA) {
            int i = 0;
            while (i < MAXC && conns[i].s != NULL)
                i++;
            if (i == MAXC) {
                nbio_free(ns);
                continue;
            }
            conn *c = &conns[i];
            memset(c, 0, sizeof *c);
            c->id = next_id++;
            c->s = nbio_tls_server(ns, cfg);
            if (st != NULL) {
                c->s = nbio_frame_new(c->s, st, NULL);
                c->framed = true;
            }
        }
        for (int i = 0; i < MAXC; i++) {
            conn *c = &conns[i];
            if (c->s == NULL)
                continue;
            server_step(c, o);
            if (c->done) {
                if (c->err == 0) {
                    const nbio_session *t = c->s;
                    char subj[256] = "";
                    nbio_tls_peer_subject(t, subj, sizeof subj);
                    fprintf(stderr, "client %d: %s %s alpn=%s peer=%s\n", c->id,
                            nbio_tls_version(t) ? nbio_tls_version(t) : "-",
                            nbio_tls_cipher(t) ? nbio_tls_cipher(t) : "-",
                            nbio_tls_alpn(t) ? nbio_tls_alpn(t) : "-", subj[0] ? subj : "-");
                    linger_fd(nbio_fd(c->s), 2000);
                }
                report(c, o, true);
                if (c->err != 0 || c->bad_at)
                    failures++;
                finished++;
                free(c->pend);
                nbio_free(c->s);
                c->s = NULL;
            }
        }
    }
    for (int i = 0; i < MAXC; i++) {
        free(conns[i].pend);
        nbio_free(conns[i].s);
    }
    nbio_free(l);
    nbio_tls_config_unref(cfg);
    return failures ? 1 : 0;
}

/* ---- client ------------------------------------------------------------ */

static int run_client(const char *addr, const opts *o)
{
    nbio_tls_config *cfg = make_config(NBIO_TLS_CLIENT, o);
    conn c;
    memset(&c, 0, sizeof c);
    c.id = 1;
    c.s = nbio_tls_connect(addr, cfg, o->servername, NULL);
    nbio_tls_config_unref(cfg);
    bool lines = strcmp(o->mode, "lines") == 0;
    const nbio_frame_strategy *st = lines ? &nbio_frame_line : strategy(o);
    if (st != NULL) {
        c.s = nbio_frame_new(c.s, st, NULL);
        c.framed = true;
    }
    bool printed = false, shut = false;
    bool echo = strcmp(o->mode, "echo") == 0, source = strcmp(o->mode, "source") == 0;
    bool sink = strcmp(o->mode, "sink") == 0;
    size_t want_frames = o->frames;
    unsigned char *buf = malloc(100000);
    int64_t deadline = nbio_now_ms() + 120000;
    while (!c.done && !stop) {
        if (nbio_now_ms() > deadline)
            conn_fail(&c, NBIO_ETIMEDOUT, "client timed out");
        nbio_session *one[1] = {c.s};
        nbio_wait(one, 1, 20);
        if (nbio_drive(c.s) < 0) {
            conn_fail(&c, nbio_error(c.s), nbio_detail(c.s));
            break;
        }
        if (nbio_status(c.s) != NBIO_ESTABLISHED && nbio_error(c.s) == 0)
            continue;
        if (!printed) {
            char subj[256] = "";
            nbio_tls_peer_subject(c.s, subj, sizeof subj);
            printf("connected %s %s alpn=%s peer=%s\n", nbio_tls_version(c.s),
                   nbio_tls_cipher(c.s), nbio_tls_alpn(c.s) ? nbio_tls_alpn(c.s) : "-",
                   subj[0] ? subj : "-");
            fflush(stdout);
            printed = true;
        }
        if (!drain(&c))
            continue;
        /* send */
        if (source || echo || lines) {
            while (c.pend == NULL && !c.done) {
                if (c.framed) {
                    if (c.sent >= want_frames)
                        break;
                    size_t len = lines ? 1 + c.sent % 60 : frame_len(c.sent);
                    if (lines)
                        for (size_t i = 0; i < len; i++)
                            buf[i] = (unsigned char)('a' + (c.sent + i * 3) % 26);
                    else
                        pattern(buf, c.sent * 7, len);
                    if (!push(&c, buf, len))
                        break;
                    c.sent++;
                } else {
                    if (c.sent >= o->bytes)
                        break;
                    size_t n = o->bytes - c.sent < 16384 ? o->bytes - c.sent : 16384;
                    pattern(buf, c.sent, n);
                    if (!push(&c, buf, n))
                        break;
                    c.sent += n;
                }
            }
            bool all_sent = c.pend == NULL && (c.framed ? c.sent >= want_frames : c.sent >= o->bytes);
            if (source && all_sent && !shut) {
                int r = nbio_shutdown(c.s); /* close_notify after the data */
                if (r < 0)
                    conn_fail(&c, r, nbio_detail(c.s));
                shut = r == NBIO_DONE;
            }
        }
        /* receive */
        for (int k = 0; k < 16 && !c.done; k++) {
            nbio_buf in;
            int r = nbio_read(c.s, &in);
            if (r == NBIO_EPEERCLOSED) {
                if (sink && o->bytes && c.received != o->bytes)
                    conn_fail(&c, NBIO_ETRUNCATED, "closed before every byte arrived");
                c.done = true;
                if (source && (!shut || c.pend != NULL))
                    conn_fail(&c, NBIO_ETRUNCATED, "closed by peer before everything was sent");
                if ((echo || lines) && c.received < (c.framed ? want_frames : o->bytes))
                    conn_fail(&c, NBIO_ETRUNCATED, "closed before the echo was complete");
                break;
            }
            if (r < 0) {
                conn_fail(&c, r, nbio_detail(c.s));
                break;
            }
            if (r != NBIO_DATA)
                break;
            if (lines) {
                size_t j = c.received, len = 1 + j % 60;
                bool ok = in.len == len;
                for (size_t i = 0; ok && i < len; i++)
                    ok = ((const unsigned char *)in.data)[i] ==
                         (unsigned char)('a' + (j + (len - 1 - i) * 3) % 26);
                if (!ok && !c.bad_at)
                    c.bad_at = j + 1;
                c.received++;
            } else if (c.framed) {
                size_t j = c.received, len = frame_len(j);
                pattern(buf, j * 7, len);
                if ((in.len != len || memcmp(in.data, buf, len) != 0) && !c.bad_at)
                    c.bad_at = j + 1;
                c.received++;
            } else {
                check_bytes(&c, in.data, in.len, c.received);
                c.received += in.len;
            }
            size_t goal = c.framed ? want_frames : o->bytes;
            if ((echo || lines || sink) && goal > 0 && c.received >= goal) {
                c.done = true; /* the whole exchange arrived: close cleanly */
                int64_t end = nbio_now_ms() + 5000;
                int cr;
                while ((cr = nbio_close(c.s)) == NBIO_PENDING && nbio_now_ms() < end) {
                    nbio_session *w[1] = {c.s};
                    nbio_wait(w, 1, 10);
                }
                linger_fd(nbio_fd(c.s), 1000);
            }
        }
    }
    free(buf);
    free(c.pend);
    int rc = c.err != 0 || c.bad_at ? 1 : 0;
    if (c.err != 0)
        printf("error %s: %s\n", nbio_errname(c.err), c.detail);
    else if (c.bad_at)
        printf("error MISMATCH at %zu\n", c.bad_at - 1);
    else
        printf("ok sent %zu received %zu\n", c.sent, c.received);
    fflush(stdout);
    nbio_free(c.s);
    return rc;
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    make_block();
    if (argc >= 3 && strcmp(argv[1], "gencert") == 0)
        return gencert(argv[2]);
    if (argc < 2)
        die("usage", "tls_peer gencert|server|client ...");
    opts o;
    memset(&o, 0, sizeof o);
    o.mode = "echo";
    const char *addr = NULL;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
#define OPT(name, field) \
    if (strcmp(a, name) == 0 && v) { o.field = v; i++; continue; }
        OPT("--cert", cert)
        OPT("--key", key)
        OPT("--client-ca", ca)
        OPT("--cacert", cacert)
        OPT("--servername", servername)
        OPT("--alpn", alpn)
        OPT("--framing", framing)
        OPT("--mode", mode)
        OPT("--listen", listen)
#undef OPT
        if (strcmp(a, "--bytes") == 0 && v) {
            o.bytes = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--frames") == 0 && v) {
            o.frames = strtoull(v, NULL, 10);
            i++;
        } else if (strcmp(a, "--count") == 0 && v) {
            o.count = atoi(v);
            i++;
        } else if (strcmp(a, "--optional") == 0) {
            o.optional = true;
        } else if (strcmp(a, "--insecure") == 0) {
            o.insecure = true;
        } else if (strcmp(a, "--tls12") == 0) {
            o.tls12 = true;
        } else if (a[0] != '-' && addr == NULL) {
            addr = a;
        } else {
            die("usage", a);
        }
    }
    if (strcmp(argv[1], "server") == 0)
        return run_server(&o);
    if (strcmp(argv[1], "client") == 0 && addr != NULL)
        return run_client(addr, &o);
    die("usage", "tls_peer gencert|server|client ...");
    return 2;
}
