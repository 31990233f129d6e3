/* Helpers shared by the TLS unit tests: an in-memory PKI generated at
 * start-up, configurations, TLS pairs over memory pairs, transfer checks. */
#ifndef NBIO_TEST_TLS_COMMON_H
#define NBIO_TEST_TLS_COMMON_H

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "nbio/mock.h"
#include "nbio/tls.h"
#include "testutil.h"

typedef struct tt_pki_t {
    char *ca_cert, *ca_key;
    char *server_cert, *server_key;         /* CA-signed: localhost, 127.0.0.1, ::1 */
    char *client_cert, *client_key;         /* CA-signed client certificate */
    char *selfsigned_cert, *selfsigned_key; /* self-signed localhost */
    char *expired_cert, *expired_key;       /* CA-signed, expired */
    char *other_ca_cert, *other_ca_key;     /* an unrelated CA */
    char *stranger_cert, *stranger_key;     /* client certificate from other_ca */
} tt_pki_t;

static tt_pki_t tt_pki;

static inline void tt_make(char **cert, char **key, const char *cn, const char *names, int from,
                           int days, bool ca, bool client, const char *icert, const char *ikey)
{
    nbio_tls_cert_spec sp = {cn, names, from, days, ca, client, icert, ikey};
    int r = nbio_tls_make_cert(&sp, cert, key);
    if (r != 0) {
        fprintf(stderr, "nbio_tls_make_cert(%s): %s\n", cn, nbio_errname(r));
        abort();
    }
}

static inline int tt_pki_setup(void **state)
{
    (void)state;
    tt_pki_t *p = &tt_pki;
    tt_make(&p->ca_cert, &p->ca_key, "nbio test CA", NULL, -1, 30, true, false, NULL, NULL);
    tt_make(&p->server_cert, &p->server_key, "localhost", "localhost,127.0.0.1,::1", -1, 30,
            false, false, p->ca_cert, p->ca_key);
    tt_make(&p->client_cert, &p->client_key, "test client", NULL, -1, 30, false, true,
            p->ca_cert, p->ca_key);
    tt_make(&p->selfsigned_cert, &p->selfsigned_key, "localhost", "localhost,127.0.0.1", -1, 30,
            false, false, NULL, NULL);
    tt_make(&p->expired_cert, &p->expired_key, "localhost", "localhost,127.0.0.1", -30, 10,
            false, false, p->ca_cert, p->ca_key);
    tt_make(&p->other_ca_cert, &p->other_ca_key, "other CA", NULL, -1, 30, true, false, NULL,
            NULL);
    tt_make(&p->stranger_cert, &p->stranger_key, "stranger", NULL, -1, 30, false, true,
            p->other_ca_cert, p->other_ca_key);
    return 0;
}

static inline int tt_pki_teardown(void **state)
{
    (void)state;
    char **all = (char **)&tt_pki;
    for (size_t i = 0; i < sizeof tt_pki / sizeof(char *); i++)
        free(all[i]);
    return 0;
}

/* A client configuration trusting the test CA unless o says otherwise.
 * The caller owns the returned reference. */
static inline nbio_tls_config *tt_client_cfg(const nbio_tls_options *o)
{
    nbio_tls_options opt;
    if (o != NULL)
        opt = *o;
    else
        nbio_tls_options_init(&opt);
    if (opt.ca_pem == NULL && opt.ca_file == NULL && opt.ca_dir == NULL &&
        !opt.insecure_skip_verify)
        opt.ca_pem = tt_pki.ca_cert;
    nbio_tls_config *cfg = NULL;
    char d[256];
    if (nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &opt, d, sizeof d) != 0)
        fail_msg("client config: %s", d);
    return cfg;
}

/* A server configuration with the CA-signed localhost certificate unless o
 * gives one. The caller owns the returned reference. */
static inline nbio_tls_config *tt_server_cfg(const nbio_tls_options *o)
{
    nbio_tls_options opt;
    if (o != NULL)
        opt = *o;
    else
        nbio_tls_options_init(&opt);
    if (opt.cert_pem == NULL && opt.cert_file == NULL) {
        opt.cert_pem = tt_pki.server_cert;
        opt.key_pem = tt_pki.server_key;
    }
    nbio_tls_config *cfg = NULL;
    char d[256];
    if (nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &opt, d, sizeof d) != 0)
        fail_msg("server config: %s", d);
    return cfg;
}

/* A memory pair (max_read/max_write bytes per call, capacity bytes per
 * direction; 0: defaults) with a TLS client on one end and a TLS server on
 * the other. Consumes the two configuration references. */
static inline void tt_pair(nbio_session **c, nbio_session **s, size_t max_read, size_t max_write,
                           size_t capacity, nbio_tls_config *ccfg, const char *host,
                           nbio_tls_config *scfg)
{
    nbio_pair_options po = {capacity, max_read, max_write};
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, &po), 0);
    *c = nbio_tls_client(a, ccfg, host);
    *s = nbio_tls_server(b, scfg);
    assert_non_null(*c);
    assert_non_null(*s);
    nbio_tls_config_unref(ccfg);
    nbio_tls_config_unref(scfg);
}

/* Drives both until both are established; fails the test on any error. */
static inline void tt_handshake(nbio_session *c, nbio_session *s)
{
    int64_t deadline = nbio_now_ms() + 20000;
    while (nbio_status(c) != NBIO_ESTABLISHED || nbio_status(s) != NBIO_ESTABLISHED) {
        int r = nbio_drive(c);
        if (r < 0)
            fail_msg("client handshake: %s: %s", nbio_errname(r), nbio_detail(c));
        r = nbio_drive(s);
        if (r < 0)
            fail_msg("server handshake: %s: %s", nbio_errname(r), nbio_detail(s));
        if (nbio_now_ms() > deadline)
            fail_msg("handshake timed out");
    }
}

/* Sends n pattern bytes from w to r (resubmitting pending rests) and checks
 * that exactly those bytes arrive. */
static inline void tt_exchange(nbio_session *w, nbio_session *r, size_t n, uint32_t seed)
{
    unsigned char *src = malloc(n + 1), *got = malloc(n + 1);
    tu_pattern(src, n, seed);
    nbio_buf b = {src, n};
    size_t have = 0;
    int64_t deadline = nbio_now_ms() + 60000;
    while (have < n) {
        if (b.len > 0) {
            int x = nbio_write(w, &b);
            if (x < 0)
                fail_msg("write: %s: %s", nbio_errname(x), nbio_detail(w));
        }
        int x = nbio_drive(w);
        if (x < 0)
            fail_msg("drive: %s: %s", nbio_errname(x), nbio_detail(w));
        nbio_buf out;
        x = nbio_read(r, &out);
        if (x < 0)
            fail_msg("read: %s: %s", nbio_errname(x), nbio_detail(r));
        if (x == NBIO_DATA) {
            assert_true(have + out.len <= n);
            memcpy(got + have, out.data, out.len);
            have += out.len;
        }
        if (nbio_now_ms() > deadline)
            fail_msg("exchange timed out at %zu of %zu bytes", have, n);
    }
    assert_memory_equal(got, src, n);
    free(src);
    free(got);
}

/* Reads until len bytes arrived and compares them with data. */
static inline void tt_expect(nbio_session *s, const void *data, size_t len)
{
    unsigned char *got = malloc(len + 1);
    size_t have = 0;
    int64_t deadline = nbio_now_ms() + 20000;
    while (have < len) {
        nbio_buf out;
        int r = nbio_read(s, &out);
        if (r < 0)
            fail_msg("read: %s: %s", nbio_errname(r), nbio_detail(s));
        if (r == NBIO_DATA) {
            assert_true(have + out.len <= len);
            memcpy(got + have, out.data, out.len);
            have += out.len;
        }
        if (nbio_now_ms() > deadline)
            fail_msg("expect timed out");
    }
    assert_memory_equal(got, data, len);
    free(got);
}

static inline void tt_write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

#endif
