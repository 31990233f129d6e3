/*
 * TLS benchmarks (issue 3): u64-LE framed ping-pong and 1 MiB framed
 * throughput over TLS on TCP loopback, nbio (framing over nbio_tls over
 * nbio_tcp) against a plain OpenSSL loop (SSL_read/SSL_write on
 * non-blocking sockets) doing the same work in the same run; and the memory
 * an established, idle TLS session holds.
 *
 * Both sides use the same throwaway certificate (EC P-256, generated at
 * start-up by nbio_tls_make_cert), the same OpenSSL defaults (TLS 1.3,
 * whatever suite OpenSSL prefers; the negotiated one is printed for both)
 * and verify the server certificate against it.
 *
 *  - nbio: nbio_frame_new(nbio_tls_client(tcp, cfg, "127.0.0.1"), u64le) and
 *    the server side with nbio_tls_server(); default options everywhere.
 *    The same loops as bench_frame_pingpong / bench_frame_throughput.
 *  - OpenSSL: SSL_set_fd() on the raw non-blocking sockets; frames written
 *    by hand. Ping-pong: header+payload in one 72-byte SSL_write (one
 *    record); echo SSL_write()s each received frame back. Throughput: the
 *    8-byte header and the 1 MiB payload as two SSL_write() calls (no copy);
 *    the reader SSL_read()s into one buffer sized for a frame and parses in
 *    place. A would-block (SSL_ERROR_WANT_READ/WRITE) is retried with the
 *    same arguments, as OpenSSL requires. read_ahead is on, as in nbio's
 *    TLS configuration.
 *
 * Memory: mallinfo2() heap in use around creating N established idle
 * session pairs, split into client and server sides by freeing the clients
 * first (kernel socket buffers are not counted).
 */
#define _GNU_SOURCE
#include <errno.h>
#include <inttypes.h>
#include <malloc.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "bench_common.h"
#include "nbio/frame.h"
#include "nbio/nbio.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"

#define HDR 8
#define PING 64
#define BIG ((size_t)1 << 20)

enum { RAW, NBIO };
static const char *names[2] = {"openssl", "nbio"};

static char *g_cert, *g_key;
static nbio_tls_config *g_ncli, *g_nsrv;
static SSL_CTX *g_ocli, *g_osrv;

/* ---- set-up -------------------------------------------------------------- */

static void setup_configs(void)
{
    if (nbio_tls_make_cert(NULL, &g_cert, &g_key) != 0)
        bench_die("nbio_tls_make_cert failed");
    char detail[256] = "";
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.cert_pem = g_cert;
    o.key_pem = g_key;
    if (nbio_tls_config_new(&g_nsrv, NBIO_TLS_SERVER, &o, detail, sizeof detail) != 0)
        bench_die("server config: %s", detail);
    nbio_tls_options_init(&o);
    o.ca_pem = g_cert;
    if (nbio_tls_config_new(&g_ncli, NBIO_TLS_CLIENT, &o, detail, sizeof detail) != 0)
        bench_die("client config: %s", detail);

    BIO *b = BIO_new_mem_buf(g_cert, -1);
    X509 *x = PEM_read_bio_X509(b, NULL, NULL, NULL);
    BIO_free(b);
    b = BIO_new_mem_buf(g_key, -1);
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    BIO_free(b);
    g_osrv = SSL_CTX_new(TLS_server_method());
    g_ocli = SSL_CTX_new(TLS_client_method());
    if (x == NULL || k == NULL || g_osrv == NULL || g_ocli == NULL ||
        SSL_CTX_use_certificate(g_osrv, x) != 1 || SSL_CTX_use_PrivateKey(g_osrv, k) != 1 ||
        X509_STORE_add_cert(SSL_CTX_get_cert_store(g_ocli), x) != 1)
        bench_die("OpenSSL context set-up failed");
    SSL_CTX_set_min_proto_version(g_osrv, TLS1_2_VERSION);
    SSL_CTX_set_min_proto_version(g_ocli, TLS1_2_VERSION);
    SSL_CTX_set_verify(g_ocli, SSL_VERIFY_PEER, NULL);
    /* Read whole socket chunks, not a 5-byte record header then its body:
     * the sensible setting for a fast loop (nbio's TLS reads chunks too). */
    SSL_CTX_set_read_ahead(g_osrv, 1);
    SSL_CTX_set_read_ahead(g_ocli, 1);
    X509_free(x);
    EVP_PKEY_free(k);
}

static void free_configs(void)
{
    nbio_tls_config_unref(g_ncli);
    nbio_tls_config_unref(g_nsrv);
    SSL_CTX_free(g_ocli);
    SSL_CTX_free(g_osrv);
    free(g_cert);
    free(g_key);
}

/* Established nbio TLS sessions (byte layer), handshake driven from this
 * thread. Returns 0 or -1. */
static int nbio_tls_pair(nbio_session **c, nbio_session **s, bool framed)
{
    nbio_session *tc, *ts;
    if (bench_nbio_tcp_pair(&tc, &ts) != 0)
        return -1;
    *c = nbio_tls_client(tc, g_ncli, "127.0.0.1");
    *s = nbio_tls_server(ts, g_nsrv);
    if (framed) {
        *c = nbio_frame_new(*c, &nbio_frame_u64le, NULL);
        *s = nbio_frame_new(*s, &nbio_frame_u64le, NULL);
    }
    uint64_t deadline = bench_now_ns() + 10000000000u;
    while (*c != NULL && *s != NULL &&
           (nbio_status(*c) == NBIO_ESTABLISHING || nbio_status(*s) == NBIO_ESTABLISHING) &&
           bench_now_ns() < deadline) {
        if (nbio_drive(*c) < 0 || nbio_drive(*s) < 0)
            break;
    }
    if (*c == NULL || *s == NULL || nbio_status(*c) != NBIO_ESTABLISHED ||
        nbio_status(*s) != NBIO_ESTABLISHED) {
        fprintf(stderr, "bench: nbio TLS handshake: client: %s; server: %s\n",
                *c ? nbio_detail(*c) : "no memory", *s ? nbio_detail(*s) : "no memory");
        nbio_free(*c);
        nbio_free(*s);
        return -1;
    }
    return 0;
}

/* Established OpenSSL sessions on raw non-blocking sockets. */
static int ossl_pair(SSL **c, SSL **s, int *cfd, int *sfd)
{
    if (bench_raw_pair(cfd, sfd) != 0)
        return -1;
    *c = SSL_new(g_ocli);
    *s = SSL_new(g_osrv);
    if (*c == NULL || *s == NULL)
        bench_die("SSL_new failed");
    SSL_set_fd(*c, *cfd);
    SSL_set_fd(*s, *sfd);
    X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(*c), "127.0.0.1");
    SSL_set_connect_state(*c);
    SSL_set_accept_state(*s);
    int dc = 0, ds = 0;
    uint64_t deadline = bench_now_ns() + 10000000000u;
    while ((dc != 1 || ds != 1) && bench_now_ns() < deadline) {
        if (dc != 1) {
            dc = SSL_do_handshake(*c);
            if (dc != 1 && SSL_get_error(*c, dc) != SSL_ERROR_WANT_READ &&
                SSL_get_error(*c, dc) != SSL_ERROR_WANT_WRITE)
                break;
        }
        if (ds != 1) {
            ds = SSL_do_handshake(*s);
            if (ds != 1 && SSL_get_error(*s, ds) != SSL_ERROR_WANT_READ &&
                SSL_get_error(*s, ds) != SSL_ERROR_WANT_WRITE)
                break;
        }
    }
    if (dc != 1 || ds != 1) {
        fprintf(stderr, "bench: OpenSSL handshake failed\n");
        ERR_print_errors_fp(stderr);
        SSL_free(*c);
        SSL_free(*s);
        close(*cfd);
        close(*sfd);
        return -1;
    }
    return 0;
}

static void ossl_free(SSL *c, SSL *s, int cfd, int sfd)
{
    SSL_free(c);
    SSL_free(s);
    close(cfd);
    close(sfd);
}

/* SSL_write all of buf, retrying a would-block with the same arguments. */
static int ossl_write_all(SSL *ssl, const void *buf, size_t len)
{
    for (;;) {
        size_t n = 0;
        if (SSL_write_ex(ssl, buf, len, &n) == 1)
            return 0;
        int e = SSL_get_error(ssl, 0);
        if (e != SSL_ERROR_WANT_WRITE && e != SSL_ERROR_WANT_READ)
            return -1;
    }
}

/* One SSL_read: bytes (> 0), 0 on would-block, -1 on error or close. */
static long ossl_read(SSL *ssl, void *buf, size_t cap)
{
    size_t n = 0;
    if (SSL_read_ex(ssl, buf, cap, &n) == 1)
        return (long)n;
    int e = SSL_get_error(ssl, 0);
    return e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE ? 0 : -1;
}

/* ---- ping-pong ----------------------------------------------------------- */

typedef struct echo_arg {
    SSL *ssl;
    nbio_session *s;
    uint64_t frames;
    int err;
} echo_arg;

static void *ossl_echo(void *p)
{
    echo_arg *a = p;
    bench_pin_thread(1);
    unsigned char buf[65536];
    size_t have = 0;
    for (;;) {
        long n = ossl_read(a->ssl, buf + have, sizeof buf - have);
        if (n < 0)
            break; /* the client went away */
        if (n == 0)
            continue;
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= HDR) {
            uint64_t len = bench_get_le64(buf + off);
            if (len > sizeof buf - HDR) {
                a->err = -EMSGSIZE;
                return NULL;
            }
            if (have - off < HDR + len)
                break;
            if (ossl_write_all(a->ssl, buf + off, HDR + (size_t)len) != 0) {
                a->err = -EIO;
                return NULL;
            }
            off += HDR + (size_t)len;
            a->frames++;
        }
        memmove(buf, buf + off, have - off);
        have -= off;
    }
    return NULL;
}

static void *nbio_echo(void *p)
{
    echo_arg *a = p;
    bench_pin_thread(1);
    for (;;) {
        nbio_buf m;
        int r = nbio_read(a->s, &m);
        if (r == NBIO_DATA) {
            while ((r = nbio_write(a->s, &m)) == NBIO_PENDING)
                (void)nbio_drive(a->s);
            if (r < 0)
                break;
            a->frames++;
        } else if (r < 0) {
            break; /* the client went away (truncation or reset) */
        }
    }
    return NULL;
}

/* One ping-pong run; fills rtt (us) and returns the run checksum, or 0 with
 * *ok false on failure. */
static uint64_t pingpong_run(int mode, uint64_t iters, uint64_t warm, double *rtt, bool *ok,
                             char *cipher, size_t cipher_len)
{
    *ok = false;
    echo_arg ea;
    memset(&ea, 0, sizeof ea);
    SSL *c = NULL, *s = NULL;
    int cfd = -1, sfd = -1;
    nbio_session *nc = NULL, *ns = NULL;
    if (mode == RAW) {
        if (ossl_pair(&c, &s, &cfd, &sfd) != 0)
            return 0;
        ea.ssl = s;
        snprintf(cipher, cipher_len, "%s %s", SSL_get_version(c), SSL_get_cipher_name(c));
    } else {
        if (nbio_tls_pair(&nc, &ns, true) != 0)
            return 0;
        ea.s = ns;
        snprintf(cipher, cipher_len, "%s %s", nbio_tls_version(nc), nbio_tls_cipher(nc));
    }
    pthread_t th;
    if (pthread_create(&th, NULL, mode == RAW ? ossl_echo : nbio_echo, &ea) != 0)
        bench_die("pthread_create failed");
    unsigned char frame[HDR + PING], rb[4096];
    bench_put_le64(frame, PING);
    bench_fill_base(frame + HDR, PING);
    uint64_t sum = BENCH_FOLD_INIT;
    int err = 0;
    for (uint64_t i = 0; i < warm + iters && err == 0; i++) {
        bench_stamp(frame + HDR, PING, i);
        const unsigned char *got = NULL;
        size_t got_len = 0;
        uint64_t t0 = bench_now_ns(), t1;
        if (mode == RAW) {
            if (ossl_write_all(c, frame, sizeof frame) != 0) {
                err = -1;
                break;
            }
            size_t have = 0;
            for (;;) {
                long n = ossl_read(c, rb + have, sizeof rb - have);
                if (n < 0) {
                    err = -1;
                    break;
                }
                have += (size_t)n;
                if (have >= HDR && have >= HDR + bench_get_le64(rb))
                    break;
            }
            t1 = bench_now_ns();
            if (err != 0 || have != HDR + PING)
                break;
            got = rb + HDR;
            got_len = (size_t)bench_get_le64(rb);
        } else {
            nbio_buf b = {frame + HDR, PING}, m = {NULL, 0};
            int r;
            while ((r = nbio_write(nc, &b)) == NBIO_PENDING)
                (void)nbio_drive(nc);
            if (r >= 0)
                while ((r = nbio_read(nc, &m)) >= 0 && r != NBIO_DATA)
                    ;
            t1 = bench_now_ns();
            if (r < 0) {
                fprintf(stderr, "bench: nbio tls: %s (%s)\n", nbio_errname(r), nbio_detail(nc));
                err = -1;
                break;
            }
            got = m.data;
            got_len = m.len;
        }
        if (got_len != PING) {
            err = -1;
            break;
        }
        sum = bench_fold(sum, bench_frame_sum(got, got_len));
        if (i >= warm)
            rtt[i - warm] = (double)(t1 - t0) / 1000.0;
    }
    if (mode == RAW) {
        shutdown(cfd, SHUT_RDWR); /* the echo thread's SSL_read fails */
        pthread_join(th, NULL);
        ossl_free(c, s, cfd, sfd);
    } else {
        nbio_free(nc);
        pthread_join(th, NULL);
        nbio_free(ns);
    }
    *ok = err == 0 && ea.err == 0 && ea.frames == warm + iters;
    return sum;
}

static int measure_pingpong(const bench_args *a)
{
    uint64_t iters = bench_scaled(a, 30000, 300), warm = iters / 10;
    double *rtt = malloc(iters * sizeof *rtt);
    if (rtt == NULL)
        bench_die("out of memory");
    unsigned char base[PING];
    bench_fill_base(base, PING);
    bench_ref ref;
    bench_ref_init(&ref, base, PING);
    uint64_t expect = bench_ref_run(&ref, 0, warm + iters);
    int reps = a->repeats > 64 ? 64 : a->repeats;
    double med[2][64], p99[2][64];
    char cipher[2][128] = {"", ""};
    int failed = 0;
    for (int rep = 0; rep < reps; rep++) {
        for (int m = RAW; m <= NBIO; m++) {
            med[m][rep] = p99[m][rep] = 0;
            if (a->only != 0 && a->only != m + 1)
                continue;
            bool ok;
            uint64_t sum = pingpong_run(m, iters, warm, rtt, &ok, cipher[m], sizeof cipher[m]);
            if (!ok || sum != expect) {
                fprintf(stderr, "bench: %s TLS ping-pong run %d FAILED (checksum %016" PRIx64
                        ", expected %016" PRIx64 ")\n", names[m], rep, sum, expect);
                failed = 1;
                continue;
            }
            bench_sort(rtt, iters);
            med[m][rep] = bench_quantile_sorted(rtt, iters, 0.5);
            p99[m][rep] = bench_quantile_sorted(rtt, iters, 0.99);
            if (a->verbose)
                printf("  run %d %-7s tls_pingpong64 rtt_median_us=%.2f p99_us=%.2f\n", rep,
                       names[m], med[m][rep], p99[m][rep]);
        }
    }
    free(rtt);
    if (failed) {
        printf("tls_pingpong64 FAILED (wrong or missing bytes, see stderr)\n");
        return 1;
    }
    if (a->only != 0) {
        int m = a->only - 1;
        printf("tls_pingpong64 %s rtt_median_us=%.2f rtt_p99_us=%.2f (best of %d; %s)\n",
               names[m], bench_min(med[m], (size_t)reps), bench_min(p99[m], (size_t)reps), reps,
               cipher[m]);
        return 0;
    }
    double mr = bench_min(med[RAW], (size_t)reps), mn = bench_min(med[NBIO], (size_t)reps);
    double pr = bench_min(p99[RAW], (size_t)reps), pn = bench_min(p99[NBIO], (size_t)reps);
    printf("tls_pingpong64 rtt_median_us nbio=%.2f openssl=%.2f ratio=%.3f (best of %d; "
           "medians of runs nbio=%.2f openssl=%.2f)\n",
           mn, mr, mn / mr, reps, bench_median(med[NBIO], (size_t)reps),
           bench_median(med[RAW], (size_t)reps));
    printf("tls_pingpong64 rtt_p99_us nbio=%.2f openssl=%.2f ratio=%.3f (best of %d)\n", pn, pr,
           pn / pr, reps);
    printf("tls_pingpong64 verify frames=%" PRIu64 " checksum=%016" PRIx64
           " nbio==openssl ok (nbio: %s; openssl: %s)\n",
           warm + iters, expect, cipher[NBIO], cipher[RAW]);
    return 0;
}

/* ---- throughput ---------------------------------------------------------- */

typedef struct side {
    SSL *ssl;
    nbio_session *s;
    uint64_t count;
    pthread_barrier_t *start;
    uint64_t frames, checksum, ns;
    int err;
} side;

static void *ossl_writer(void *p)
{
    side *w = p;
    bench_pin_thread(0);
    unsigned char *payload = malloc(BIG), hdr[HDR];
    if (payload == NULL)
        bench_die("out of memory");
    bench_fill_base(payload, BIG);
    bench_put_le64(hdr, BIG);
    pthread_barrier_wait(w->start);
    for (uint64_t i = 0; i < w->count; i++) {
        bench_stamp(payload, BIG, i);
        if (ossl_write_all(w->ssl, hdr, HDR) != 0 || ossl_write_all(w->ssl, payload, BIG) != 0) {
            w->err = -EIO;
            break;
        }
        w->frames++;
    }
    free(payload);
    return NULL;
}

static void *ossl_reader(void *p)
{
    side *r = p;
    bench_pin_thread(1);
    size_t cap = HDR + BIG, have = 0;
    unsigned char *buf = malloc(cap);
    if (buf == NULL)
        bench_die("out of memory");
    uint64_t sum = BENCH_FOLD_INIT;
    pthread_barrier_wait(r->start);
    uint64_t t0 = bench_now_ns();
    while (r->frames < r->count) {
        long n = ossl_read(r->ssl, buf + have, cap - have);
        if (n < 0) {
            r->err = -EIO;
            break;
        }
        have += (size_t)n;
        size_t off = 0;
        while (have - off >= HDR) {
            uint64_t len = bench_get_le64(buf + off);
            if (len > cap - HDR) {
                r->err = -EMSGSIZE;
                goto out;
            }
            if (have - off < HDR + len)
                break;
            sum = bench_fold(sum, bench_frame_sum(buf + off + HDR, (size_t)len));
            r->frames++;
            off += HDR + (size_t)len;
        }
        if (off > 0) {
            memmove(buf, buf + off, have - off);
            have -= off;
        }
    }
out:
    r->ns = bench_now_ns() - t0;
    r->checksum = sum;
    free(buf);
    return NULL;
}

static void *nbio_writer(void *p)
{
    side *w = p;
    bench_pin_thread(0);
    unsigned char *payload = malloc(BIG);
    if (payload == NULL)
        bench_die("out of memory");
    bench_fill_base(payload, BIG);
    pthread_barrier_wait(w->start);
    int r = 0;
    for (uint64_t i = 0; i < w->count; i++) {
        bench_stamp(payload, BIG, i);
        nbio_buf b = {payload, BIG};
        while ((r = nbio_write(w->s, &b)) == NBIO_PENDING)
            if ((r = nbio_drive(w->s)) < 0)
                break;
        if (r < 0)
            break;
        w->frames++;
    }
    if (r >= 0)
        r = nbio_flush(w->s, -1);
    if (r < 0) {
        fprintf(stderr, "bench: nbio tls writer: %s (%s)\n", nbio_errname(r), nbio_detail(w->s));
        w->err = r;
    }
    free(payload);
    return NULL;
}

static void *nbio_reader(void *p)
{
    side *r = p;
    bench_pin_thread(1);
    uint64_t sum = BENCH_FOLD_INIT;
    pthread_barrier_wait(r->start);
    uint64_t t0 = bench_now_ns();
    while (r->frames < r->count) {
        nbio_buf m;
        int rc = nbio_read(r->s, &m);
        if (rc == NBIO_DATA) {
            sum = bench_fold(sum, bench_frame_sum(m.data, m.len));
            r->frames++;
        } else if (rc < 0) {
            fprintf(stderr, "bench: nbio tls reader: %s (%s)\n", nbio_errname(rc),
                    nbio_detail(r->s));
            r->err = rc;
            break;
        }
    }
    r->ns = bench_now_ns() - t0;
    r->checksum = sum;
    return NULL;
}

static uint64_t throughput_run(int mode, uint64_t count, uint64_t expect)
{
    side w, r;
    memset(&w, 0, sizeof w);
    memset(&r, 0, sizeof r);
    pthread_barrier_t start;
    pthread_barrier_init(&start, NULL, 2);
    w.count = r.count = count;
    w.start = r.start = &start;
    SSL *c = NULL, *s = NULL;
    int cfd = -1, sfd = -1;
    nbio_session *nc = NULL, *ns = NULL;
    if (mode == RAW ? ossl_pair(&c, &s, &cfd, &sfd) != 0 : nbio_tls_pair(&nc, &ns, true) != 0)
        return 0;
    w.ssl = c;
    r.ssl = s;
    w.s = nc;
    r.s = ns;
    pthread_t tw, tr;
    if (pthread_create(&tr, NULL, mode == RAW ? ossl_reader : nbio_reader, &r) != 0 ||
        pthread_create(&tw, NULL, mode == RAW ? ossl_writer : nbio_writer, &w) != 0)
        bench_die("pthread_create failed");
    pthread_join(tw, NULL);
    pthread_join(tr, NULL);
    pthread_barrier_destroy(&start);
    if (mode == RAW) {
        ossl_free(c, s, cfd, sfd);
    } else {
        nbio_free(nc);
        nbio_free(ns);
    }
    if (w.err != 0 || r.err != 0 || r.frames != count || r.checksum != expect) {
        fprintf(stderr, "bench: %s TLS 1 MiB run FAILED: frames=%" PRIu64 "/%" PRIu64
                " checksum=%016" PRIx64 " expected=%016" PRIx64 "\n",
                names[mode], r.frames, count, r.checksum, expect);
        return 0;
    }
    return r.ns > 0 ? r.ns : 1;
}

static int measure_throughput(const bench_args *a)
{
    uint64_t count = bench_scaled(a, 1000, 20);
    unsigned char *base = malloc(BIG);
    if (base == NULL)
        bench_die("out of memory");
    bench_fill_base(base, BIG);
    bench_ref ref;
    bench_ref_init(&ref, base, BIG);
    free(base);
    uint64_t expect = bench_ref_run(&ref, 0, count);
    int reps = a->repeats > 64 ? 64 : a->repeats;
    double mbs[2][64];
    int failed = 0;
    for (int rep = 0; rep < reps; rep++) {
        for (int m = RAW; m <= NBIO; m++) {
            mbs[m][rep] = 0;
            if (a->only != 0 && a->only != m + 1)
                continue;
            uint64_t ns = throughput_run(m, count, expect);
            if (ns == 0) {
                failed = 1;
                continue;
            }
            mbs[m][rep] = (double)count * (double)BIG * 1e3 / (double)ns;
            if (a->verbose)
                printf("  run %d %-7s tls_throughput1m mb_per_s=%.1f\n", rep, names[m],
                       mbs[m][rep]);
        }
    }
    if (failed) {
        printf("tls_throughput1m FAILED (wrong or missing bytes, see stderr)\n");
        return 1;
    }
    if (a->only != 0) {
        int m = a->only - 1;
        printf("tls_throughput1m %s mb_per_s=%.1f (best of %d)\n", names[m],
               bench_max(mbs[m], (size_t)reps), reps);
        return 0;
    }
    double br = bench_max(mbs[RAW], (size_t)reps), bn = bench_max(mbs[NBIO], (size_t)reps);
    printf("tls_throughput1m mb_per_s nbio=%.1f openssl=%.1f ratio=%.3f (best of %d; medians "
           "nbio=%.1f openssl=%.1f)\n",
           bn, br, bn / br, reps, bench_median(mbs[NBIO], (size_t)reps),
           bench_median(mbs[RAW], (size_t)reps));
    printf("tls_throughput1m verify frames=%" PRIu64 " bytes=%" PRIu64 " checksum=%016" PRIx64
           " nbio==openssl ok\n",
           count, count * (uint64_t)BIG, expect);
    return 0;
}

/* ---- memory of idle sessions --------------------------------------------- */

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

/* Creates n established pairs of `kind`; prints heap bytes per client and
 * per server side (nothing when label is NULL: a warm-up). kind: 0 nbio tls, 1 nbio tls+frame, 2 OpenSSL SSL. */
static int measure_memory_kind(int kind, int n, const char *label)
{
    nbio_session **cs = calloc((size_t)n, sizeof *cs), **ss = calloc((size_t)n, sizeof *ss);
    SSL **oc = calloc((size_t)n, sizeof *oc), **os = calloc((size_t)n, sizeof *os);
    int *cfd = calloc((size_t)n, sizeof *cfd), *sfd = calloc((size_t)n, sizeof *sfd);
    if (!cs || !ss || !oc || !os || !cfd || !sfd)
        bench_die("out of memory");
    size_t before = heap_in_use();
    int made = 0;
    for (; made < n; made++) {
        int r = kind == 2 ? ossl_pair(&oc[made], &os[made], &cfd[made], &sfd[made])
                          : nbio_tls_pair(&cs[made], &ss[made], kind == 1);
        if (r != 0)
            break;
    }
    /* Let the server's post-handshake messages (TLS 1.3 tickets) reach the
     * clients, as on an idle connection that has done its first read. */
    for (int i = 0; i < made; i++) {
        unsigned char tmp[64];
        if (kind == 2) {
            (void)ossl_read(oc[i], tmp, sizeof tmp);
        } else {
            nbio_buf m;
            (void)nbio_read(cs[i], &m);
        }
    }
    size_t all = heap_in_use();
    for (int i = 0; i < made; i++) {
        if (kind == 2) {
            SSL_free(oc[i]);
            close(cfd[i]);
        } else {
            nbio_free(cs[i]);
        }
    }
    size_t servers = heap_in_use();
    for (int i = 0; i < made; i++) {
        if (kind == 2) {
            SSL_free(os[i]);
            close(sfd[i]);
        } else {
            nbio_free(ss[i]);
        }
    }
    free(cs), free(ss), free(oc), free(os), free(cfd), free(sfd);
    if (label == NULL)
        return made < n;
    if (made < n) {
        printf("tls_idle_memory %s FAILED (%d of %d pairs)\n", label, made, n);
        return 1;
    }
    double client = ((double)all - (double)servers) / n;
    double server = ((double)servers - (double)before) / n;
    printf("tls_idle_memory %s bytes_per_session client=%.0f server=%.0f (heap, %d pairs)\n",
           label, client, server, n);
    return 0;
}

static int measure_memory(const bench_args *a)
{
    int n = a->quick ? 8 : 64;
    int rc = 0;
    /* warm-up: one-time OpenSSL and library allocations */
    rc |= measure_memory_kind(0, 1, NULL);
    rc |= measure_memory_kind(2, 1, NULL);
    rc |= measure_memory_kind(0, n, "nbio_tls");
    rc |= measure_memory_kind(1, n, "nbio_tls+frame");
    rc |= measure_memory_kind(2, n, "openssl_ssl");
    return rc;
}

int main(int argc, char **argv)
{
    bench_args args;
    bench_parse_args(argc, argv, &args, NULL);
    setup_configs();
    printf("# bench_tls: nbio framing over nbio TLS vs a plain OpenSSL loop, 127.0.0.1, "
           "%d run pairs, best shown\n",
           args.repeats);
    int rc = 0;
    if (args.measure == NULL || strstr("tls_pingpong64", args.measure) != NULL)
        rc |= measure_pingpong(&args);
    if (args.measure == NULL || strstr("tls_throughput1m", args.measure) != NULL)
        rc |= measure_throughput(&args);
    if (args.measure == NULL || strstr("tls_idle_memory", args.measure) != NULL)
        rc |= measure_memory(&args);
    free_configs();
    return rc;
}
