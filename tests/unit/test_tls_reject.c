/* TLS rejections: each over a memory pair moving 1 byte at a time, each
 * asserting the error code and detail on both sides, while an unrelated
 * healthy TLS session keeps working. */
#define _GNU_SOURCE
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/mock.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"
#include "test_tls_common.h"

/* A healthy session pair that lives through every rejection. */
static nbio_session *hc, *hs;

static int group_setup(void **state)
{
    tt_pki_setup(state);
    return 0;
}

static int group_teardown(void **state)
{
    return tt_pki_teardown(state);
}

static int setup_healthy(void **state)
{
    (void)state;
    tt_pair(&hc, &hs, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(hc, hs);
    tt_exchange(hc, hs, 100, 1);
    return 0;
}

static int check_healthy(void **state)
{
    (void)state;
    /* still alive in both directions after the other session failed */
    tt_exchange(hc, hs, 5000, 2);
    tt_exchange(hs, hc, 5000, 3);
    nbio_free(hc);
    nbio_free(hs);
    return 0;
}

/* Drives both ends (reading, so post-handshake alerts surface) until both
 * ended, or one ended and the other stopped making progress. */
static void pump_to_failure(nbio_session *c, nbio_session *s)
{
    int64_t deadline = nbio_now_ms() + 20000;
    int quiet = 0;
    while (quiet < 2000) {
        bool progress = false;
        nbio_session *both[2] = {c, s};
        for (int i = 0; i < 2; i++) {
            if (both[i] == NULL || nbio_error(both[i]) != 0)
                continue;
            nbio_buf out;
            int r = nbio_read(both[i], &out);
            if (r > 0 || r < 0)
                progress = true;
            if (r == NBIO_DATA)
                fail_msg("unexpected data on %s", i ? "server" : "client");
        }
        bool c_done = c == NULL || nbio_error(c) != 0;
        bool s_done = s == NULL || nbio_error(s) != 0;
        if (c_done && s_done)
            return;
        if (c_done || s_done)
            quiet = progress ? 0 : quiet + 1;
        if (nbio_now_ms() > deadline)
            fail_msg("no failure: client %s \"%s\" state %d, server %s \"%s\" state %d",
                     nbio_errname(nbio_error(c)), nbio_detail(c), nbio_status(c),
                     nbio_errname(nbio_error(s)), nbio_detail(s), nbio_status(s));
    }
}

static void expect_error(nbio_session *s, const char *who, int err, const char *substr)
{
    if (nbio_error(s) != err || strstr(nbio_detail(s), substr) == NULL)
        fail_msg("%s: got %s \"%s\", expected %s with \"%s\"", who, nbio_errname(nbio_error(s)),
                 nbio_detail(s), nbio_errname(err), substr);
    assert_int_equal(nbio_status(s), NBIO_TERMINATED);
    /* every later call reports the error too */
    nbio_buf out;
    assert_int_equal(nbio_read(s, &out), err);
    nbio_buf w = {"x", 1};
    assert_int_equal(nbio_write(s, &w), err);
    assert_int_equal(nbio_drive(s), err);
}

/* Runs a handshake that must fail; checks both sides' errors (server_err 0:
 * do not check the server). */
static void reject(nbio_tls_config *ccfg, const char *host, nbio_tls_config *scfg, int client_err,
                   const char *client_substr, int server_err, const char *server_substr)
{
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, ccfg, host, scfg);
    pump_to_failure(c, s);
    expect_error(c, "client", client_err, client_substr);
    if (server_err != 0)
        expect_error(s, "server", server_err, server_substr);
    nbio_free(c);
    nbio_free(s);
}

static nbio_tls_config *server_with(const char *cert, const char *key)
{
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.cert_pem = cert;
    o.key_pem = key;
    return tt_server_cfg(&o);
}

static void test_self_signed_without_ca(void **state)
{
    (void)state;
    reject(tt_client_cfg(NULL), "localhost",
           server_with(tt_pki.selfsigned_cert, tt_pki.selfsigned_key), NBIO_ECERTVERIFY,
           "certificate verify failed: self-signed certificate", NBIO_ETLS, "alert");
}

static void test_self_signed_against_system_store(void **state)
{
    (void)state;
    /* NULL: the shared default client configuration (system trust store) */
    reject(NULL, "localhost", server_with(tt_pki.selfsigned_cert, tt_pki.selfsigned_key),
           NBIO_ECERTVERIFY, "certificate verify failed: self-signed certificate", NBIO_ETLS,
           "alert");
}

static void test_unknown_issuer(void **state)
{
    (void)state;
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.ca_pem = tt_pki.other_ca_cert;
    reject(tt_client_cfg(&o), "localhost", tt_server_cfg(NULL), NBIO_ECERTVERIFY,
           "certificate verify failed: unable to get local issuer certificate", NBIO_ETLS,
           "alert unknown ca");
}

static void test_expired(void **state)
{
    (void)state;
    reject(tt_client_cfg(NULL), "localhost", server_with(tt_pki.expired_cert, tt_pki.expired_key),
           NBIO_ECERTVERIFY, "certificate verify failed: certificate has expired", NBIO_ETLS,
           "alert certificate expired");
}

static void test_wrong_hostname(void **state)
{
    (void)state;
    reject(tt_client_cfg(NULL), "example.com", tt_server_cfg(NULL), NBIO_ECERTVERIFY,
           "certificate verify failed: hostname mismatch (expected example.com)", NBIO_ETLS,
           "alert");
    /* no partial wildcards, no suffix matches */
    reject(tt_client_cfg(NULL), "localhost.evil", tt_server_cfg(NULL), NBIO_ECERTVERIFY,
           "hostname mismatch", 0, NULL);
}

static void test_ip_san_mismatch(void **state)
{
    (void)state;
    reject(tt_client_cfg(NULL), "127.0.0.2", tt_server_cfg(NULL), NBIO_ECERTVERIFY,
           "certificate verify failed: IP address mismatch (expected 127.0.0.2)", NBIO_ETLS,
           "alert");
    reject(tt_client_cfg(NULL), "[::2]", tt_server_cfg(NULL), NBIO_ECERTVERIFY,
           "IP address mismatch (expected ::2)", NBIO_ETLS, "alert");
    /* the self-signed certificate names 127.0.0.1 as a DNS-looking string
     * only in CN; an IP literal never matches a CN */
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(NULL), "[::1]", tt_server_cfg(NULL));
    tt_handshake(c, s); /* the right IPv6 SAN passes */
    nbio_free(c);
    nbio_free(s);
}

static void test_client_cert_required_not_sent(void **state)
{
    (void)state;
    nbio_tls_options so;
    nbio_tls_options_init(&so);
    so.ca_pem = tt_pki.ca_cert;
    so.verify = NBIO_TLS_VERIFY_REQUIRED;
    reject(tt_client_cfg(NULL), "localhost", tt_server_cfg(&so), NBIO_ETLS,
           "alert certificate required", NBIO_ECERTVERIFY, "peer did not return a certificate");
    /* TLS 1.2: the client learns it during the handshake */
    nbio_tls_options co;
    nbio_tls_options_init(&co);
    co.max_version = NBIO_TLS1_2;
    reject(tt_client_cfg(&co), "localhost", tt_server_cfg(&so), NBIO_ETLS,
           "TLS handshake: sslv3 alert handshake failure", NBIO_ECERTVERIFY,
           "peer did not return a certificate");
}

static void test_client_cert_from_unknown_ca(void **state)
{
    (void)state;
    nbio_tls_options so, co;
    nbio_tls_options_init(&so);
    so.ca_pem = tt_pki.ca_cert;
    so.verify = NBIO_TLS_VERIFY_OPTIONAL; /* a certificate that is sent must verify */
    nbio_tls_options_init(&co);
    co.cert_pem = tt_pki.stranger_cert;
    co.key_pem = tt_pki.stranger_key;
    reject(tt_client_cfg(&co), "localhost", tt_server_cfg(&so), NBIO_ETLS, "alert unknown ca",
           NBIO_ECERTVERIFY,
           "certificate verify failed: unable to get local issuer certificate (client certificate)");
}

/* A peer limited to TLS 1.0. OpenSSL 3 only speaks TLS 1.0 at security
 * level 0, so the test peer lowers it; our side keeps the TLS 1.2 minimum. */
static nbio_tls_options tls10_only(void)
{
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.min_version = NBIO_TLS1_0;
    o.max_version = NBIO_TLS1_0;
    o.ciphers = "DEFAULT:@SECLEVEL=0";
    return o;
}

static void test_tls10_server(void **state)
{
    (void)state;
    nbio_tls_options so = tls10_only();
    nbio_tls_config *scfg = tt_server_cfg(&so);
    SSL_CTX_set_security_level(nbio_tls_config_ssl_ctx(scfg), 0);
    reject(tt_client_cfg(NULL), "localhost", scfg, NBIO_ETLS, "TLS handshake: tlsv1 alert protocol version",
           NBIO_ETLS, "unsupported protocol");
}

static void test_tls10_client(void **state)
{
    (void)state;
    nbio_tls_options co = tls10_only();
    nbio_tls_config *ccfg = tt_client_cfg(&co);
    SSL_CTX_set_security_level(nbio_tls_config_ssl_ctx(ccfg), 0);
    reject(ccfg, "localhost", tt_server_cfg(NULL), NBIO_ETLS, "alert protocol version", NBIO_ETLS,
           "unsupported protocol");
}

/* Sanity check of the TLS 1.0 peer: it does work with a peer that allows it,
 * so the rejections above are about the version and not a broken peer. */
static void test_tls10_peer_is_real(void **state)
{
    (void)state;
    nbio_tls_options so = tls10_only(), co = tls10_only();
    nbio_tls_config *scfg = tt_server_cfg(&so), *ccfg = tt_client_cfg(&co);
    SSL_CTX_set_security_level(nbio_tls_config_ssl_ctx(scfg), 0);
    SSL_CTX_set_security_level(nbio_tls_config_ssl_ctx(ccfg), 0);
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, ccfg, "localhost", scfg);
    tt_handshake(c, s);
    assert_string_equal(nbio_tls_version(c), "TLSv1");
    tt_exchange(c, s, 100, 4);
    nbio_free(c);
    nbio_free(s);
}

static void test_garbage_instead_of_server_hello(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_tls_config *ccfg = tt_client_cfg(NULL);
    nbio_session *c = nbio_tls_client(m, ccfg, "localhost");
    nbio_tls_config_unref(ccfg);
    assert_ok_outcome(nbio_drive(c));
    size_t len;
    const unsigned char *hello = nbio_mock_output(m, &len);
    assert_true(len > 50);
    assert_int_equal(hello[0], 22); /* a handshake record: the ClientHello */
    const char junk[] = "HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n";
    for (size_t i = 0; i < sizeof junk - 1; i++) /* one byte at a time */
        assert_int_equal(nbio_mock_feed(m, junk + i, 1), 0);
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_drive(c)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    expect_error(c, "client", NBIO_ETLS, "TLS handshake: wrong version number");
    nbio_free(c);

    /* random bytes */
    m = nbio_mock_new(NULL);
    c = nbio_tls_client(m, NULL, "localhost");
    unsigned char rnd[64];
    tu_pattern(rnd, sizeof rnd, 99);
    rnd[0] = 22; /* looks like a handshake record at first */
    nbio_mock_feed(m, rnd, sizeof rnd);
    while ((r = nbio_drive(c)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_ETLS);
    assert_true(strlen(nbio_detail(c)) > strlen("TLS handshake: "));
    nbio_free(c);
}

static void test_plaintext_client_at_server(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_tls_config *scfg = tt_server_cfg(NULL);
    nbio_session *s = nbio_tls_server(m, scfg);
    nbio_tls_config_unref(scfg);
    const char req[] = "GET / HTTP/1.1\r\nHost: x\r\n\r\n";
    nbio_mock_feed(m, req, sizeof req - 1);
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_drive(s)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    expect_error(s, "server", NBIO_ETLS, "http request");
    nbio_free(s);
}

static void test_no_shared_cipher(void **state)
{
    (void)state;
    nbio_tls_options so, co;
    nbio_tls_options_init(&so);
    so.max_version = NBIO_TLS1_2;
    so.ciphers = "ECDHE-ECDSA-AES128-GCM-SHA256";
    nbio_tls_options_init(&co);
    co.max_version = NBIO_TLS1_2;
    co.ciphers = "ECDHE-ECDSA-CHACHA20-POLY1305";
    reject(tt_client_cfg(&co), "localhost", tt_server_cfg(&so), NBIO_ETLS,
           "alert handshake failure", NBIO_ETLS, "TLS handshake: no shared cipher");
}

static void test_alpn_no_overlap(void **state)
{
    (void)state;
    nbio_tls_options so, co;
    nbio_tls_options_init(&so);
    so.alpn = "h2";
    nbio_tls_options_init(&co);
    co.alpn = "http/1.1";
    reject(tt_client_cfg(&co), "localhost", tt_server_cfg(&so), NBIO_ETLS,
           "alert no application protocol", NBIO_ETLS, "no application protocol");
}

static void test_peer_gone_during_handshake(void **state)
{
    (void)state;
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, NULL), 0);
    nbio_session *c = nbio_tls_client(a, NULL, "localhost");
    assert_ok_outcome(nbio_drive(c));
    nbio_shutdown(b); /* the "server" hangs up after the ClientHello */
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_drive(c)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    expect_error(c, "client", NBIO_ETLS, "TLS handshake: connection closed by peer");
    nbio_free(c);
    nbio_free(b);
}

/* TLS 1.2 renegotiation is refused by our server. The client side forces
 * one through the SSL escape hatch; a write made meanwhile (OpenSSL then
 * wants to read before it can write) is still accepted whole. */
static void test_renegotiation_refused(void **state)
{
    (void)state;
    nbio_tls_options co;
    nbio_tls_options_init(&co);
    co.max_version = NBIO_TLS1_2;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(&co), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    tu_write_all(c, "a", 1, NULL, NULL, NULL, 5000);
    SSL *ssl = nbio_tls_ssl(c);
    SSL_clear_options(ssl, SSL_OP_NO_RENEGOTIATION);
    assert_int_equal(SSL_renegotiate(ssl), 1);
    char b[] = "bcd";
    nbio_buf w = {b, 3};
    assert_int_equal(nbio_write(c, &w), NBIO_DONE); /* stashed inside, not pending */
    assert_int_equal(w.len, 0);
    memset(b, 'X', 3);
    nbio_buf out;
    int64_t deadline = nbio_now_ms() + 5000;
    int got = 0;
    while (nbio_error(c) == 0 && nbio_now_ms() < deadline) {
        int r = nbio_read(s, &out);
        assert_true(r >= 0 || r == NBIO_ETLS);
        if (r == NBIO_DATA) {
            assert_memory_equal(out.data, "a", out.len);
            got += (int)out.len;
        }
        nbio_read(c, &out);
    }
    /* the server answered no_renegotiation: the client gives up */
    expect_error(c, "client", NBIO_ETLS, "no renegotiation");
    assert_int_equal(got, 1);
    nbio_free(c);
    nbio_free(s);
}

/* TLS 1.3 over real TCP: the client's handshake ends before the server
 * checks the client certificate, so the client writes application data;
 * the server sends its alert and closes with that data unread (a reset).
 * The client must report the alert it was sent, not the reset its next
 * send met. */
static void test_alert_not_hidden_by_reset(void **state)
{
    (void)state;
    nbio_tls_options so;
    nbio_tls_options_init(&so);
    so.ca_pem = tt_pki.ca_cert;
    so.verify = NBIO_TLS_VERIFY_REQUIRED;
    nbio_tls_config *scfg = tt_server_cfg(&so), *ccfg = tt_client_cfg(NULL);
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    assert_int_equal(nbio_status(l), NBIO_STATUS_ESTABLISHED);
    char addr[64];
    assert_true(nbio_local_address(l, addr, sizeof addr) > 0);
    nbio_session *c = nbio_tls_client(nbio_tcp_connect(addr, NULL), ccfg, "localhost");
    nbio_session *s = NULL, *raw = NULL;
    int64_t deadline = nbio_now_ms() + 5000;
    while (raw == NULL && nbio_now_ms() < deadline) {
        nbio_drive(c);
        (void)nbio_accept(l, &raw);
    }
    assert_non_null(raw);
    s = nbio_tls_server(raw, scfg);
    nbio_tls_config_unref(scfg); /* the sessions hold their own references */
    nbio_tls_config_unref(ccfg);
    /* the client finishes its side of the handshake first */
    while (nbio_status(c) == NBIO_STATUS_ESTABLISHING && nbio_now_ms() < deadline) {
        nbio_drive(c);
        nbio_drive(s);
    }
    assert_int_equal(nbio_status(c), NBIO_STATUS_ESTABLISHED);
    nbio_buf w = {"hello", 5};
    assert_true(nbio_write(c, &w) >= 0);
    assert_true(nbio_flush(c, 1000) >= 0);
    /* the server rejects the missing certificate, sends its alert, and goes
     * away with "hello" unread */
    nbio_buf out;
    while (nbio_error(s) == 0 && nbio_now_ms() < deadline)
        (void)nbio_read(s, &out);
    assert_int_equal(nbio_error(s), NBIO_ECERTVERIFY);
    nbio_free(s);
    /* the client keeps writing into the reset connection, then reads */
    int r = 0;
    for (int i = 0; i < 50 && r >= 0 && nbio_now_ms() < deadline; i++) {
        nbio_buf more = {"more data", 9};
        r = nbio_write(c, &more);
        if (r >= 0)
            r = nbio_drive(c);
        if (r >= 0)
            r = nbio_read(c, &out);
    }
    while (nbio_error(c) == 0 && nbio_now_ms() < deadline)
        (void)nbio_read(c, &out);
    expect_error(c, "client", NBIO_ETLS, "alert certificate required");
    nbio_free(c);
    nbio_free(l);
}

int main(void)
{
#define T(f) cmocka_unit_test_setup_teardown(f, setup_healthy, check_healthy)
    const struct CMUnitTest tests[] = {
        T(test_self_signed_without_ca),
        T(test_self_signed_against_system_store),
        T(test_unknown_issuer),
        T(test_expired),
        T(test_wrong_hostname),
        T(test_ip_san_mismatch),
        T(test_client_cert_required_not_sent),
        T(test_client_cert_from_unknown_ca),
        T(test_tls10_server),
        T(test_tls10_client),
        T(test_tls10_peer_is_real),
        T(test_garbage_instead_of_server_hello),
        T(test_plaintext_client_at_server),
        T(test_no_shared_cipher),
        T(test_alpn_no_overlap),
        T(test_peer_gone_during_handshake),
        T(test_renegotiation_refused),
        T(test_alert_not_hidden_by_reset),
    };
    return cmocka_run_group_tests(tests, group_setup, group_teardown);
}
