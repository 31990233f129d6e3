/* TLS sessions over memory pairs delivering and accepting 1 byte at a time,
 * over the mock and over TCP: handshake, exact transfer, pending writes
 * resubmitted from moving buffers, framing over TLS, close_notify versus
 * truncation, accessors, configuration errors. Certificates are generated in
 * memory at start-up. Rejections are in test_tls_reject.c. */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "nbio/frame.h"
#include "nbio/mock.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"
#include "test_tls_common.h"

/* ---- handshake and transfer ------------------------------------------- */

static void test_handshake_one_byte_at_a_time(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    assert_string_equal(nbio_kind(c), "tls");
    assert_true(nbio_tls_handshake_done(c));
    assert_string_equal(nbio_tls_version(c), "TLSv1.3");
    assert_string_equal(nbio_tls_version(s), "TLSv1.3");
    assert_non_null(nbio_tls_cipher(c));
    assert_string_equal(nbio_tls_cipher(c), nbio_tls_cipher(s));
    assert_string_equal(nbio_tls_server_name(s), "localhost");
    assert_null(nbio_tls_alpn(c));
    char subj[256];
    assert_true(nbio_tls_peer_subject(c, subj, sizeof subj) > 0);
    assert_string_equal(subj, "CN=localhost");
    assert_int_equal(nbio_tls_peer_subject(s, subj, sizeof subj), 0); /* no client cert */
    assert_string_equal(subj, "");
    assert_int_equal(nbio_tls_peer_subject(nbio_tls_inner(c), subj, sizeof subj), NBIO_EINVAL);
    assert_non_null(nbio_tls_ssl(c));
    tt_exchange(c, s, 100000, 1);
    tt_exchange(s, c, 100000, 2);
    nbio_free(c);
    nbio_free(s);
}

static void test_tls12_handshake_and_transfer(void **state)
{
    (void)state;
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.max_version = NBIO_TLS1_2;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(&o), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    assert_string_equal(nbio_tls_version(c), "TLSv1.2");
    tt_exchange(c, s, 50000, 3);
    tt_exchange(s, c, 50000, 4);
    nbio_free(c);
    nbio_free(s);
}

/* Pending writes: the rest is resubmitted from a different buffer each time
 * (the old one scribbled over), so any reliance on OpenSSL's "same buffer"
 * retry rule would corrupt the stream. */
static void test_pending_rest_from_moving_buffers(void **state)
{
    (void)state;
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.write_buffer_size = 1; /* refuse plaintext while any ciphertext is queued */
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 64, tt_client_cfg(&o), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    size_t total = 200000;
    unsigned char *src = malloc(total), *got = malloc(total);
    tu_pattern(src, total, 7);
    unsigned char *cur = malloc(total);
    size_t cur_len = total;
    memcpy(cur, src, total);
    nbio_buf b = {cur, total};
    size_t have = 0;
    int pendings = 0, partial = 0;
    int64_t deadline = nbio_now_ms() + 60000;
    while (b.len > 0 || have < total) {
        if (b.len > 0) {
            size_t before = b.len;
            int r = nbio_write(c, &b);
            assert_ok_outcome(r);
            if (r == NBIO_PENDING) {
                pendings++;
                if (b.len != before && b.len > 0)
                    partial++;
                /* move the rest elsewhere and destroy the old copy */
                unsigned char *next = malloc(b.len ? b.len : 1);
                memcpy(next, b.data, b.len);
                memset(cur, 0xEE, cur_len);
                free(cur);
                cur = next;
                cur_len = b.len ? b.len : 1;
                b.data = cur;
            }
        }
        assert_ok_outcome(nbio_drive(c));
        nbio_buf out;
        int r = nbio_read(s, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            assert_true(have + out.len <= total);
            memcpy(got + have, out.data, out.len);
            have += out.len;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_memory_equal(got, src, total);
    assert_true(pendings > 100);
    assert_true(partial > 0);
    free(cur);
    free(src);
    free(got);
    nbio_free(c);
    nbio_free(s);
}

/* Released buffers come back on the next burst; data stays exact. */
static void test_release_buffers(void **state)
{
    (void)state;
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.release_buffers = true;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 7, 0, tt_client_cfg(&o), "localhost", tt_server_cfg(&o));
    tt_handshake(c, s);
    for (uint32_t round = 0; round < 5; round++) {
        tt_exchange(c, s, 40000, 20 + round);
        tt_exchange(s, c, 3000, 30 + round);
        nbio_buf out;
        assert_int_equal(nbio_read(c, &out), NBIO_IDLE); /* idle: buffers go */
        assert_int_equal(nbio_read(s, &out), NBIO_IDLE);
    }
    nbio_free(c);
    nbio_free(s);
}

/* Writes before the handshake completes are pending with the buffer
 * untouched; reads while establishing are ACTIVE/IDLE. */
static void test_write_while_establishing(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHING);
    const char msg[] = "early bird";
    nbio_buf b = {msg, sizeof msg - 1};
    assert_int_equal(nbio_write(c, &b), NBIO_PENDING);
    assert_ptr_equal(b.data, msg);
    assert_int_equal(b.len, sizeof msg - 1);
    nbio_buf out;
    int r = nbio_read(s, &out);
    assert_true(r == NBIO_IDLE || r == NBIO_ACTIVE);
    tt_handshake(c, s);
    assert_int_equal(nbio_write(c, &b), NBIO_DONE);
    tt_expect(s, msg, sizeof msg - 1);
    nbio_free(c);
    nbio_free(s);
}

/* ---- framing over TLS --------------------------------------------------- */

static void test_framing_over_tls(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 1024;
    nbio_session *fc = nbio_frame_new(c, &nbio_frame_u32be, &fo);
    nbio_session *fs = nbio_frame_new(s, &nbio_frame_u32be, &fo);
    assert_non_null(fc);
    assert_non_null(fs);
    assert_true(nbio_tls_is_tls(fc));
    size_t sizes[] = {0, 1, 5, 1000, 1019, 1020, 3000, 40000, 7};
    size_t n = sizeof sizes / sizeof sizes[0];
    unsigned char *buf = malloc(40000), *exp = malloc(40000);
    size_t wi = 0, ri = 0;
    nbio_buf b = {NULL, 0};
    int64_t deadline = nbio_now_ms() + 60000;
    while (ri < n) {
        if (b.data == NULL && wi < n) {
            tu_pattern(buf, sizes[wi], (uint32_t)wi);
            b.data = buf;
            b.len = sizes[wi];
        }
        if (b.data != NULL) {
            int r = nbio_write(fc, &b);
            assert_ok_outcome(r);
            if (r == NBIO_DONE) {
                b.data = NULL;
                wi++;
            }
        }
        assert_ok_outcome(nbio_drive(fc));
        nbio_buf out;
        int r = nbio_read(fs, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            assert_int_equal(out.len, sizes[ri]);
            tu_pattern(exp, sizes[ri], (uint32_t)ri);
            assert_memory_equal(out.data, exp, out.len);
            ri++;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_string_equal(nbio_tls_version(fs), "TLSv1.3");
    /* clean end between frames */
    assert_int_equal(nbio_flush(fc, 1000), NBIO_DONE);
    int r;
    deadline = nbio_now_ms() + 10000;
    while ((r = nbio_close(fc)) == NBIO_PENDING)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_DONE);
    nbio_buf out;
    while ((r = nbio_read(fs, &out)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_EPEERCLOSED);
    free(buf);
    free(exp);
    nbio_free(fc);
    nbio_free(fs);
}

/* ---- close ------------------------------------------------------------- */

static void test_close_notify_is_clean_close(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    /* client: data, then half-close (close_notify after the data) */
    tu_write_all(c, "last words", 10, NULL, NULL, NULL, 5000);
    int r;
    int64_t deadline = nbio_now_ms() + 10000;
    while ((r = nbio_shutdown(c)) == NBIO_PENDING)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_DONE);
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHED);
    tt_expect(s, "last words", 10);
    nbio_buf out;
    while ((r = nbio_read(s, &out)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_EPEERCLOSED);
    assert_non_null(strstr(nbio_detail(s), "close_notify"));
    /* the server may still answer (TLS half-close), then closes */
    tu_write_all(s, "bye", 3, NULL, NULL, NULL, 5000);
    while ((r = nbio_close(s)) == NBIO_PENDING)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_DONE);
    assert_int_equal(nbio_error(s), NBIO_ECLOSED);
    tt_expect(c, "bye", 3);
    while ((r = nbio_read(c, &out)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_EPEERCLOSED);
    nbio_free(c);
    nbio_free(s);
}

/* The client's transport ends without a TLS goodbye; when peer_gone, the
 * client is freed as well, so the alert OpenSSL sends back fails (EPIPE):
 * the error must still say truncation, not broken pipe. */
static void truncation_case(bool peer_gone)
{
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    tu_write_all(c, "partial", 7, NULL, NULL, NULL, 5000);
    assert_int_equal(nbio_flush(c, 5000), NBIO_DONE);
    int64_t deadline = nbio_now_ms() + 10000;
    int r;
    while ((r = nbio_shutdown(nbio_tls_inner(c))) == NBIO_PENDING)
        assert_true(nbio_now_ms() < deadline);
    if (peer_gone) {
        nbio_free(c);
        c = NULL;
    }
    tt_expect(s, "partial", 7); /* everything before the cut is delivered */
    nbio_buf out;
    while ((r = nbio_read(s, &out)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_ETLSTRUNCATED);
    assert_non_null(strstr(nbio_detail(s), "without close_notify"));
    assert_int_equal(nbio_status(s), NBIO_TERMINATED);
    nbio_buf w = {"x", 1};
    assert_int_equal(nbio_write(s, &w), NBIO_ETLSTRUNCATED);
    nbio_free(c);
    nbio_free(s);
}

static void test_close_without_close_notify_is_truncation(void **state)
{
    (void)state;
    truncation_case(false);
    truncation_case(true);
}

/* A peer that stalls the handshake: both ends give up after the limit, with
 * NBIO_ETIMEDOUT, and a third session made meanwhile is unaffected. */
static void test_handshake_timeout(void **state)
{
    (void)state;
    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.handshake_timeout_ms = 200;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(&o), "localhost", tt_server_cfg(&o));
    nbio_session *c2, *s2;
    tt_pair(&c2, &s2, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    int64_t t0 = nbio_now_ms();
    int rc = 0, rs = 0;
    /* only the client is driven: the server never answers (and then the
     * server alone, whose client went quiet) */
    while (rc >= 0 && nbio_now_ms() - t0 < 5000)
        rc = nbio_drive(c);
    while (rs >= 0 && nbio_now_ms() - t0 < 5000) {
        nbio_buf out;
        rs = nbio_read(s, &out);
    }
    assert_int_equal(rc, NBIO_ETIMEDOUT);
    assert_int_equal(rs, NBIO_ETIMEDOUT);
    assert_true(nbio_now_ms() - t0 < 2000);
    assert_non_null(strstr(nbio_detail(c), "TLS handshake: timed out after 200 ms"));
    tt_handshake(c2, s2);
    tt_exchange(c2, s2, 1000, 5);
    nbio_free(c);
    nbio_free(s);
    nbio_free(c2);
    nbio_free(s2);
}

/* Frames over TLS whose peer vanishes while ciphertext is still queued:
 * flush and close report the transport's error instead of pending forever. */
static void test_flush_reports_a_vanished_peer(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 4096, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    c = nbio_frame_new(c, &nbio_frame_u32be, NULL);
    static unsigned char big[60000];
    nbio_buf b = {big, sizeof big};
    int r = nbio_write(c, &b);
    assert_ok_outcome(r);
    assert_ok_outcome(nbio_drive(c));
    nbio_free(s); /* the peer is gone with ciphertext still queued here */
    int64_t t0 = nbio_now_ms();
    r = b.len > 0 ? nbio_write(c, &b) : nbio_flush(c, 300);
    if (r >= 0)
        r = nbio_flush(c, 300);
    assert_true(r == NBIO_EPIPE || r == NBIO_ECONNRESET);
    assert_true(nbio_now_ms() - t0 < 2000);
    assert_int_equal(nbio_status(c), NBIO_TERMINATED);
    assert_int_equal(nbio_close(c), r);
    nbio_free(c);
}

/* Another library's leftover OpenSSL error on this thread must not be taken
 * for a failure of an idle session (SSL_get_error reads the queue). */
static void test_foreign_openssl_errors_are_ignored(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    nbio_buf out;
    ERR_raise(ERR_LIB_USER, 1);
    int r = nbio_read(c, &out); /* tickets may still arrive: active or idle */
    assert_true(r == NBIO_IDLE || r == NBIO_ACTIVE);
    ERR_raise(ERR_LIB_SYS, 1);
    assert_int_equal(nbio_write_some(s, "ok", 2), 2);
    ERR_raise(ERR_LIB_SSL, 1);
    tt_expect(c, "ok", 2);
    assert_int_equal(nbio_error(c), 0);
    assert_int_equal(nbio_error(s), 0);
    nbio_free(c);
    nbio_free(s);
}

/* After the peer's close_notify was reported, a half-closed session that
 * still writes must not look readable (a poll loop would spin). */
static void test_no_read_interest_after_close_notify(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    nbio_tls_config *ccfg = tt_client_cfg(NULL), *scfg = tt_server_cfg(NULL);
    c = nbio_tls_client(c, ccfg, "localhost");
    s = nbio_tls_server(s, scfg);
    nbio_tls_config_unref(ccfg);
    nbio_tls_config_unref(scfg);
    tt_handshake(c, s);
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_close(c)) == NBIO_PENDING)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_DONE);
    nbio_buf out;
    while ((r = nbio_read(s, &out)) >= 0) {
        nbio_wait(&s, 1, 10);
        assert_true(nbio_now_ms() < deadline);
    }
    assert_int_equal(r, NBIO_EPEERCLOSED);
    assert_int_equal(nbio_interest(s) & (NBIO_READY | NBIO_WANT_READ), 0);
    assert_int_equal(nbio_wait(&s, 1, 50), 0); /* sleeps: nothing to do */
    /* a framing session on top says the same */
    s = nbio_frame_new(s, &nbio_frame_u32be, NULL);
    assert_int_equal(nbio_interest(s) & (NBIO_READY | NBIO_WANT_READ), 0);
    nbio_free(c);
    nbio_free(s);
}

static void test_transport_reset_passes_through(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(NULL));
    tt_handshake(c, s);
    nbio_free(c); /* the pair end disappears: ECONNRESET on the other */
    nbio_buf out;
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_read(s, &out)) >= 0)
        assert_true(nbio_now_ms() < deadline);
    assert_int_equal(r, NBIO_ECONNRESET);
    nbio_free(s);
}

/* ---- ALPN, mTLS, interest ---------------------------------------------- */

static void test_alpn_server_preference(void **state)
{
    (void)state;
    nbio_tls_options co, so;
    nbio_tls_options_init(&co);
    nbio_tls_options_init(&so);
    co.alpn = "http/1.1,h2,x-nbio";
    so.alpn = "x-nbio,h2";
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(&co), "localhost", tt_server_cfg(&so));
    tt_handshake(c, s);
    assert_string_equal(nbio_tls_alpn(c), "x-nbio");
    assert_string_equal(nbio_tls_alpn(s), "x-nbio");
    nbio_free(c);
    nbio_free(s);
    /* a client that offers no ALPN is still served */
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(&so));
    tt_handshake(c, s);
    assert_null(nbio_tls_alpn(s));
    nbio_free(c);
    nbio_free(s);
}

static void test_mutual_tls(void **state)
{
    (void)state;
    nbio_tls_options co, so;
    nbio_tls_options_init(&co);
    nbio_tls_options_init(&so);
    co.cert_pem = tt_pki.client_cert;
    co.key_pem = tt_pki.client_key;
    so.ca_pem = tt_pki.ca_cert;
    so.verify = NBIO_TLS_VERIFY_REQUIRED;
    nbio_session *c, *s;
    tt_pair(&c, &s, 1, 1, 0, tt_client_cfg(&co), "localhost", tt_server_cfg(&so));
    tt_handshake(c, s);
    tt_exchange(c, s, 1000, 5);
    tt_exchange(s, c, 1000, 6); /* TLS 1.3: the server's verdict came through */
    char subj[256];
    assert_true(nbio_tls_peer_subject(s, subj, sizeof subj) > 0);
    assert_string_equal(subj, "CN=test client");
    nbio_free(c);
    nbio_free(s);
    /* optional: a client without a certificate is accepted */
    so.verify = NBIO_TLS_VERIFY_OPTIONAL;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(&so));
    tt_handshake(c, s);
    tt_exchange(c, s, 100, 7);
    tt_exchange(s, c, 100, 8);
    assert_int_equal(nbio_tls_peer_subject(s, subj, sizeof subj), 0);
    nbio_free(c);
    nbio_free(s);
}

/* After a read that left whole records buffered inside OpenSSL, the session
 * says READY even though the transport has nothing new. */
static void test_interest_ready_when_buffered(void **state)
{
    (void)state;
    nbio_tls_options so;
    nbio_tls_options_init(&so);
    so.read_buffer_size = 16;
    nbio_session *c, *s;
    tt_pair(&c, &s, 0, 0, 0, tt_client_cfg(NULL), "localhost", tt_server_cfg(&so));
    tt_handshake(c, s);
    unsigned char data[100];
    tu_pattern(data, sizeof data, 9);
    for (int i = 0; i < 4; i++)
        tu_write_all(c, data + 25 * i, 25, NULL, NULL, NULL, 5000); /* four records */
    nbio_buf out;
    int r;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_read(s, &out)) != NBIO_DATA) {
        assert_ok_outcome(r);
        assert_true(nbio_now_ms() < deadline);
    }
    assert_int_equal(out.len, 16);
    size_t have = 16;
    /* the transport is drained (read-ahead took it all) */
    while (have < sizeof data) {
        assert_true(nbio_interest(s) & NBIO_READY);
        r = nbio_read(s, &out);
        assert_int_equal(r, NBIO_DATA);
        assert_memory_equal(out.data, data + have, out.len);
        have += out.len;
    }
    r = nbio_read(s, &out);
    assert_int_equal(r, NBIO_IDLE);
    assert_false(nbio_interest(s) & NBIO_READY);
    assert_true(nbio_interest(s) & NBIO_WANT_READ);
    nbio_free(c);
    nbio_free(s);
}

/* ---- over TCP, sleeping in nbio_wait ----------------------------------- */

static void test_over_tcp_with_wait(void **state)
{
    (void)state;
    nbio_session *tc, *ts;
    tu_tcp_pair(&tc, &ts, 0);
    nbio_tls_config *cc = tt_client_cfg(NULL), *sc = tt_server_cfg(NULL);
    nbio_session *c = nbio_tls_client(tc, cc, "127.0.0.1");
    nbio_session *s = nbio_tls_server(ts, sc);
    nbio_tls_config_unref(cc);
    nbio_tls_config_unref(sc);
    assert_true(nbio_fd(c) >= 0);
    size_t total = 3 << 20;
    unsigned char *src = malloc(total), *got = malloc(total);
    tu_pattern(src, total, 11);
    nbio_buf b = {src, total};
    size_t have = 0;
    int64_t deadline = nbio_now_ms() + 60000;
    while (have < total) {
        nbio_session *both[2] = {c, s};
        assert_true(nbio_wait(both, 2, 100) >= 0);
        if (b.len > 0)
            assert_ok_outcome(nbio_write(c, &b));
        assert_ok_outcome(nbio_drive(c));
        for (int k = 0; k < 8; k++) {
            nbio_buf out;
            int r = nbio_read(s, &out);
            assert_ok_outcome(r);
            if (r != NBIO_DATA)
                break;
            memcpy(got + have, out.data, out.len);
            have += out.len;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_memory_equal(got, src, total);
    assert_string_equal(nbio_tls_version(s), "TLSv1.3");
    free(src);
    free(got);
    nbio_free(c);
    nbio_free(s);
}

/* nbio_tls_connect against a listener, verifying the IP SAN of the address. */
static void test_connect_convenience(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64];
    assert_true(nbio_local_address(l, addr, sizeof addr) > 0);
    nbio_tls_config *cc = tt_client_cfg(NULL), *sc = tt_server_cfg(NULL);
    nbio_session *c = nbio_tls_connect(addr, cc, NULL, NULL);
    nbio_tls_config_unref(cc);
    nbio_session *s = NULL, *ts = NULL;
    int64_t deadline = nbio_now_ms() + 10000;
    while (nbio_status(c) == NBIO_ESTABLISHING || s == NULL ||
           nbio_status(s) == NBIO_ESTABLISHING) {
        if (ts == NULL && nbio_accept(l, &ts) == NBIO_DATA) {
            s = nbio_tls_server(ts, sc);
        }
        int r = nbio_drive(c);
        if (r < 0)
            fail_msg("client: %s", nbio_detail(c));
        if (s != NULL && (r = nbio_drive(s)) < 0)
            fail_msg("server: %s", nbio_detail(s));
        assert_true(nbio_now_ms() < deadline);
    }
    nbio_tls_config_unref(sc);
    assert_null(nbio_tls_server_name(s)); /* no SNI for an IP address */
    tt_exchange(c, s, 5000, 12);
    nbio_free(c);
    nbio_free(s);
    nbio_free(l);
}

/* ---- configuration ----------------------------------------------------- */

static void test_config_errors(void **state)
{
    (void)state;
    nbio_tls_config *cfg = NULL;
    char d[256];
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, NULL, d, sizeof d), NBIO_EINVAL);
    assert_null(cfg);
    assert_non_null(strstr(d, "certificate"));

    nbio_tls_options o;
    nbio_tls_options_init(&o);
    o.cert_file = "/nonexistent/cert.pem";
    o.key_file = "/nonexistent/key.pem";
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &o, d, sizeof d), NBIO_ENOENT);
    assert_non_null(strstr(d, "/nonexistent/cert.pem"));

    nbio_tls_options_init(&o);
    o.cert_pem = tt_pki.server_cert;
    o.key_pem = tt_pki.client_key; /* not its key */
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &o, d, sizeof d), NBIO_ETLS);
    if (strstr(d, "mismatch") == NULL && strstr(d, "does not match") == NULL)
        fail_msg("detail: %s", d);

    nbio_tls_options_init(&o);
    o.cert_pem = "garbage";
    o.key_pem = tt_pki.server_key;
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &o, d, sizeof d), NBIO_ETLS);

    nbio_tls_options_init(&o);
    o.verify = NBIO_TLS_VERIFY_NONE;
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &o, d, sizeof d), NBIO_EINVAL);
    assert_non_null(strstr(d, "insecure_skip_verify"));

    nbio_tls_options_init(&o);
    o.alpn = "h2,,x";
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &o, d, sizeof d), NBIO_EINVAL);

    nbio_tls_options_init(&o);
    o.cert_pem = tt_pki.server_cert;
    o.key_pem = tt_pki.server_key;
    o.verify = NBIO_TLS_VERIFY_REQUIRED;
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_SERVER, &o, d, sizeof d), NBIO_EINVAL);

    nbio_tls_options_init(&o);
    o.ciphersuites = "NOT_A_SUITE";
    assert_int_equal(nbio_tls_config_new(&cfg, NBIO_TLS_CLIENT, &o, d, sizeof d), NBIO_ETLS);
    assert_non_null(strstr(d, "NOT_A_SUITE"));

    /* a client needs a host to verify; a server config cannot make clients */
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, NULL), 0);
    nbio_tls_config *cc = tt_client_cfg(NULL);
    nbio_session *c = nbio_tls_client(a, cc, NULL);
    assert_int_equal(nbio_error(c), NBIO_EUSAGE);
    assert_non_null(strstr(nbio_detail(c), "host name"));
    nbio_free(c);
    nbio_tls_config *sc = tt_server_cfg(NULL);
    c = nbio_tls_client(b, sc, "localhost");
    assert_int_equal(nbio_error(c), NBIO_EUSAGE);
    nbio_free(c);
    assert_null(nbio_tls_client(NULL, cc, "x"));
    nbio_tls_config_unref(cc);
    nbio_tls_config_unref(sc);
    nbio_tls_config_unref(NULL);
}

/* Files on disk work the same as PEM text. */
static void test_config_from_files(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbio-tls-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char cert[64], key[64], ca[64];
    snprintf(cert, sizeof cert, "%s/cert.pem", dir);
    snprintf(key, sizeof key, "%s/key.pem", dir);
    snprintf(ca, sizeof ca, "%s/ca.pem", dir);
    tt_write_file(cert, tt_pki.server_cert);
    tt_write_file(key, tt_pki.server_key);
    tt_write_file(ca, tt_pki.ca_cert);
    nbio_tls_options so, co;
    nbio_tls_options_init(&so);
    so.cert_file = cert;
    so.key_file = key;
    nbio_tls_options_init(&co);
    co.ca_file = ca;
    nbio_tls_config *scfg, *ccfg;
    char d[256];
    if (nbio_tls_config_new(&scfg, NBIO_TLS_SERVER, &so, d, sizeof d) != 0)
        fail_msg("server config: %s", d);
    if (nbio_tls_config_new(&ccfg, NBIO_TLS_CLIENT, &co, d, sizeof d) != 0)
        fail_msg("client config: %s", d);
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, NULL), 0);
    nbio_session *c = nbio_tls_client(a, ccfg, "localhost");
    nbio_session *s = nbio_tls_server(b, scfg);
    nbio_tls_config_unref(scfg);
    nbio_tls_config_unref(ccfg);
    tt_handshake(c, s);
    tt_exchange(c, s, 10, 13);
    nbio_free(c);
    nbio_free(s);
    unlink(cert);
    unlink(key);
    unlink(ca);
    rmdir(dir);
}

/* The insecure option accepts a self-signed certificate and no host. */
static void test_insecure_skip_verify(void **state)
{
    (void)state;
    nbio_tls_options co, so;
    nbio_tls_options_init(&co);
    co.insecure_skip_verify = true;
    nbio_tls_options_init(&so);
    so.cert_pem = tt_pki.selfsigned_cert;
    so.key_pem = tt_pki.selfsigned_key;
    nbio_tls_config *cc, *sc;
    assert_int_equal(nbio_tls_config_new(&cc, NBIO_TLS_CLIENT, &co, NULL, 0), 0);
    assert_int_equal(nbio_tls_config_new(&sc, NBIO_TLS_SERVER, &so, NULL, 0), 0);
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, NULL), 0);
    nbio_session *c = nbio_tls_client(a, cc, NULL);
    nbio_session *s = nbio_tls_server(b, sc);
    nbio_tls_config_unref(cc);
    nbio_tls_config_unref(sc);
    tt_handshake(c, s);
    tt_exchange(c, s, 10, 14);
    nbio_free(c);
    nbio_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_handshake_one_byte_at_a_time),
        cmocka_unit_test(test_tls12_handshake_and_transfer),
        cmocka_unit_test(test_pending_rest_from_moving_buffers),
        cmocka_unit_test(test_release_buffers),
        cmocka_unit_test(test_write_while_establishing),
        cmocka_unit_test(test_framing_over_tls),
        cmocka_unit_test(test_close_notify_is_clean_close),
        cmocka_unit_test(test_close_without_close_notify_is_truncation),
        cmocka_unit_test(test_handshake_timeout),
        cmocka_unit_test(test_flush_reports_a_vanished_peer),
        cmocka_unit_test(test_foreign_openssl_errors_are_ignored),
        cmocka_unit_test(test_no_read_interest_after_close_notify),
        cmocka_unit_test(test_transport_reset_passes_through),
        cmocka_unit_test(test_alpn_server_preference),
        cmocka_unit_test(test_mutual_tls),
        cmocka_unit_test(test_interest_ready_when_buffered),
        cmocka_unit_test(test_over_tcp_with_wait),
        cmocka_unit_test(test_connect_convenience),
        cmocka_unit_test(test_config_errors),
        cmocka_unit_test(test_config_from_files),
        cmocka_unit_test(test_insecure_skip_verify),
    };
    return cmocka_run_group_tests(tests, tt_pki_setup, tt_pki_teardown);
}
