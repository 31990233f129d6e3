#define _GNU_SOURCE
/* The WebSocket session: client and server over an in-memory pair
 * (handshake, messages of every length form, fragments, compression,
 * control frames, the close handshake), and a server fed scripted bytes
 * (violations closed with the right code, input one byte at a time). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/mock.h"
#include "nbio/ws.h"
#include "testutil.h"
#include "ws/codec.h"

static void pump(nbio_session *a, nbio_session *b, int rounds)
{
    for (int i = 0; i < rounds; i++) {
        nbio_drive(a);
        nbio_drive(b);
    }
}

/* A connected client/server pair, established. */
static void ws_pair(nbio_session **c, nbio_session **s, const nbio_ws_options *co,
                    const nbio_ws_options *so)
{
    nbio_session *a, *b;
    nbio_pair_options po = {1 << 22, 0, 0};
    assert_int_equal(nbio_pair_new(&a, &b, &po), 0);
    *c = nbio_ws_client(a, "example.com", "/chat", co);
    *s = nbio_ws_server(b, so);
    int64_t deadline = nbio_now_ms() + 5000;
    while ((nbio_status(*c) == NBIO_STATUS_ESTABLISHING ||
            nbio_status(*s) == NBIO_STATUS_ESTABLISHING) &&
           nbio_now_ms() < deadline)
        pump(*c, *s, 1);
    if (nbio_status(*c) != NBIO_STATUS_ESTABLISHED || nbio_status(*s) != NBIO_STATUS_ESTABLISHED)
        fail_msg("handshake: client %s \"%s\", server %s \"%s\"", nbio_errname(nbio_error(*c)),
                 nbio_detail(*c), nbio_errname(nbio_error(*s)), nbio_detail(*s));
}

/* Sends a message from a to b and checks what b reads. */
static void roundtrip(nbio_session *a, nbio_session *b, nbio_ws_type type, size_t len)
{
    unsigned char *msg = malloc(len + 1);
    for (size_t i = 0; i < len; i++)
        msg[i] = type == NBIO_WS_TEXT ? (unsigned char)('a' + i % 26) : (unsigned char)(i * 7);
    nbio_buf buf = {msg, len};
    int64_t deadline = nbio_now_ms() + 10000;
    nbio_ws_message m;
    int got = 0, r;
    while (buf.len > 0 || len == 0) {
        r = nbio_ws_write(a, type, &buf);
        assert_true(r >= 0);
        if (r == NBIO_DONE)
            break;
        r = nbio_ws_read(b, &m);
        assert_true(r >= 0);
        assert_true(r != NBIO_DATA);
        assert_true(nbio_now_ms() < deadline);
    }
    while ((r = nbio_ws_read(b, &m)) != NBIO_DATA) {
        if (r < 0)
            fail_msg("read: %s \"%s\"", nbio_errname(r), nbio_detail(b));
        nbio_drive(a);
        (void)nbio_ws_read(a, &(nbio_ws_message){0});
        assert_true(nbio_now_ms() < deadline);
    }
    got = 1;
    assert_int_equal(got, 1);
    assert_int_equal(m.type, type);
    assert_int_equal(m.data.len, len);
    assert_true(len == 0 || memcmp(m.data.data, msg, len) == 0);
    free(msg);
}

static void run_messages(bool compress)
{
    static const char *const offer[] = {"p1", "p2"};
    static const char *const accept[] = {"p2", "p3"};
    nbio_ws_options co = {0}, so = {0};
    co.protocols = offer;
    co.num_protocols = 2;
    co.compress = compress;
    so.accept_protocols = accept;
    so.num_accept_protocols = 2;
    so.compress = compress;
    nbio_session *c, *s;
    ws_pair(&c, &s, &co, &so);
    assert_string_equal(nbio_ws_protocol(c), "p2");
    assert_string_equal(nbio_ws_protocol(s), "p2");
    assert_int_equal(nbio_ws_compressed(c), compress);
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 200000, 1 << 20};
    for (size_t i = 0; i < sizeof sizes / sizeof sizes[0]; i++) {
        roundtrip(c, s, NBIO_WS_TEXT, sizes[i]);
        roundtrip(s, c, NBIO_WS_BINARY, sizes[i]);
    }
    nbio_free(c);
    nbio_free(s);
}

static void test_messages(void **state)
{
    (void)state;
    run_messages(false);
}

static void test_messages_compressed(void **state)
{
    (void)state;
    run_messages(true);
}

static void test_fragments_and_control(void **state)
{
    (void)state;
    nbio_ws_options co = {0}, so = {0};
    co.fragment_size = 7;
    co.show_control = true;
    nbio_session *c, *s;
    ws_pair(&c, &s, &co, &so);
    roundtrip(c, s, NBIO_WS_TEXT, 100); /* 15 fragments */
    nbio_buf ping = {"are you there", 13};
    assert_int_equal(nbio_ws_write(c, NBIO_WS_PING, &ping), NBIO_DONE);
    nbio_ws_message m;
    int r, n = 0;
    /* the server answers by itself; the client, asked to, hands out the pong */
    while ((r = nbio_ws_read(c, &m)) != NBIO_DATA && n++ < 1000)
        (void)nbio_ws_read(s, &m);
    assert_int_equal(r, NBIO_DATA);
    assert_int_equal(m.type, NBIO_WS_PONG);
    assert_int_equal(m.data.len, 13);
    nbio_buf big = {malloc(126), 126};
    assert_int_equal(nbio_ws_write(c, NBIO_WS_PING, &big), NBIO_EINVAL);
    free((void *)big.data);
    nbio_buf bad = {"\xc3\x28", 2};
    assert_int_equal(nbio_ws_write(c, NBIO_WS_TEXT, &bad), NBIO_EINVAL);
    nbio_free(c);
    nbio_free(s);
}

static void test_close_handshake(void **state)
{
    (void)state;
    nbio_session *c, *s;
    ws_pair(&c, &s, NULL, NULL);
    int r = nbio_ws_close(c, 4000, "bye now");
    assert_true(r == NBIO_PENDING || r == NBIO_DONE);
    nbio_ws_message m;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_ws_read(s, &m)) >= 0 && nbio_now_ms() < deadline)
        nbio_drive(c);
    assert_int_equal(r, NBIO_EPEERCLOSED);
    unsigned code = 0;
    const char *reason = NULL;
    assert_true(nbio_ws_peer_close(s, &code, &reason));
    assert_int_equal(code, 4000);
    assert_string_equal(reason, "bye now");
    while ((r = nbio_close(c)) == NBIO_PENDING && nbio_now_ms() < deadline)
        nbio_drive(s);
    assert_int_equal(r, NBIO_DONE);
    assert_true(nbio_ws_peer_close(c, &code, NULL));
    assert_int_equal(code, 4000); /* the answer echoes it */
    nbio_free(c);
    nbio_free(s);
}

/* ---- a server fed scripted bytes ---------------------------------------- */

static const char *const upgrade_req =
    "GET /x HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    "Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n";

/* A client frame: header + masked payload into out; returns its length. */
static size_t client_frame(unsigned char *out, uint8_t op, bool fin, bool rsv1, const void *p,
                           size_t len)
{
    static const uint8_t mask[4] = {0x11, 0x22, 0x33, 0x44};
    size_t hl = nbio__ws_encode_header(out, op, fin, rsv1, len, mask);
    memcpy(out + hl, p, len);
    nbio__ws_mask(out + hl, len, mask, 0);
    return hl + len;
}

/* The close code in the server's output (after its 101), or 0. */
static unsigned close_code_sent(nbio_session *m)
{
    size_t len;
    const unsigned char *o = nbio_mock_output(m, &len);
    const unsigned char *end = (const unsigned char *)memmem(o, len, "\r\n\r\n", 4);
    if (end == NULL)
        return 0;
    const unsigned char *f = end + 4;
    size_t left = len - (size_t)(f - o);
    while (left >= 2) {
        size_t pl = f[1] & 0x7f, hl = 2;
        if (pl == 126) {
            pl = (size_t)f[2] << 8 | f[3];
            hl = 4;
        }
        if ((f[0] & 0x0f) == 8 && pl >= 2)
            return (unsigned)f[hl] << 8 | f[hl + 1];
        if (left < hl + pl)
            break;
        f += hl + pl;
        left -= hl + pl;
    }
    return 0;
}

static int feed_and_read(size_t chunk, const unsigned char *frames, size_t len, nbio_session **mk,
                         nbio_session **srv, nbio_ws_message *m)
{
    nbio_mock_options mo = {chunk, 0, 0, 0};
    *mk = nbio_mock_new(&mo);
    nbio_ws_options so = {0};
    so.max_message = 1000;
    *srv = nbio_ws_server(*mk, &so);
    nbio_mock_feed(*mk, upgrade_req, strlen(upgrade_req));
    nbio_mock_feed(*mk, frames, len);
    int r = NBIO_IDLE;
    for (int i = 0; i < 20000 && (r == NBIO_IDLE || r == NBIO_ACTIVE); i++)
        r = nbio_ws_read(*srv, m);
    return r;
}

static void test_violations_get_their_code(void **state)
{
    (void)state;
    unsigned char f[2048];
    static const struct {
        const char *name;
        uint8_t op;
        bool fin, rsv1, masked;
        const char *payload;
        size_t len;
        int err;
        unsigned code;
    } cases[] = {
        {"unmasked", 2, true, false, false, "x", 1, NBIO_EPROTOCOL, 1002},
        {"reserved bit", 2, true, true, true, "x", 1, NBIO_EPROTOCOL, 1002},
        {"opcode 3", 3, true, false, true, "x", 1, NBIO_EPROTOCOL, 1002},
        {"continuation first", 0, true, false, true, "x", 1, NBIO_EPROTOCOL, 1002},
        {"fragmented ping", 9, false, false, true, "x", 1, NBIO_EPROTOCOL, 1002},
        {"bad UTF-8", 1, true, false, true, "\xce\xba\xe1\xbd\xb9\xcf\x83\xed\xa0\x80", 10,
         NBIO_EPROTOCOL, 1007},
        {"close code 1005", 8, true, false, true, "\x03\xed", 2, NBIO_EPROTOCOL, 1002},
        {"one-byte close", 8, true, false, true, "\x03", 1, NBIO_EPROTOCOL, 1002},
        {"over max_message", 2, true, false, true, NULL, 1500, NBIO_ETOOLARGE, 1009},
    };
    static char big[1500];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const void *p = cases[i].payload != NULL ? (const void *)cases[i].payload : big;
        size_t n;
        if (cases[i].masked) {
            n = client_frame(f, cases[i].op, cases[i].fin, cases[i].rsv1, p, cases[i].len);
        } else {
            n = nbio__ws_encode_header(f, cases[i].op, cases[i].fin, cases[i].rsv1, cases[i].len,
                                       NULL);
            memcpy(f + n, p, cases[i].len);
            n += cases[i].len;
        }
        for (size_t chunk = 0; chunk <= 1; chunk++) {
            nbio_session *m, *s;
            nbio_ws_message msg;
            int r = feed_and_read(chunk, f, n, &m, &s, &msg);
            if (r != cases[i].err || close_code_sent(m) != cases[i].code)
                fail_msg("%s (chunk %zu): %s \"%s\", close code %u", cases[i].name, chunk,
                         nbio_errname(r), nbio_detail(s), close_code_sent(m));
            nbio_free(s);
        }
    }
}

static void test_byte_at_a_time(void **state)
{
    (void)state;
    unsigned char f[256];
    size_t n = client_frame(f, 1, false, false, "Hel", 3);
    n += client_frame(f + n, 9, true, false, "p", 1); /* a ping between fragments */
    n += client_frame(f + n, 0, true, false, "lo \xce\xba", 5);
    nbio_session *m, *s;
    nbio_ws_message msg;
    int r = feed_and_read(1, f, n, &m, &s, &msg);
    assert_int_equal(r, NBIO_DATA);
    assert_int_equal(msg.type, NBIO_WS_TEXT);
    assert_int_equal(msg.data.len, 8);
    assert_memory_equal(msg.data.data, "Hello \xce\xba", 8);
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_non_null(memmem(o, len, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=", 28));
    assert_non_null(memmem(o, len, "\x8a\x01p", 3)); /* the pong */
    nbio_free(s);
}

static void test_refused_handshakes(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *s = nbio_ws_server(m, NULL);
    const char *plain = "GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    nbio_mock_feed(m, plain, strlen(plain));
    nbio_ws_message msg;
    int r = NBIO_IDLE;
    for (int i = 0; i < 100 && r >= 0; i++)
        r = nbio_ws_read(s, &msg);
    assert_int_equal(r, NBIO_EPROTOCOL);
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_true(len > 12 && memcmp(o, "HTTP/1.1 426", 12) == 0);
    nbio_free(s);
    /* a client answered 404 */
    m = nbio_mock_new(NULL);
    nbio_session *c = nbio_ws_client(m, "h", "/", NULL);
    const char *nf = "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n";
    nbio_mock_feed(m, nf, strlen(nf));
    r = NBIO_IDLE;
    for (int i = 0; i < 100 && r >= 0; i++)
        r = nbio_ws_read(c, &msg);
    assert_int_equal(r, NBIO_EPROTOCOL);
    assert_non_null(strstr(nbio_detail(c), "server answered 404 Not Found"));
    nbio_free(c);
    /* a bad URL */
    c = nbio_ws_connect("http://h/", NULL, NULL);
    assert_int_equal(nbio_error(c), NBIO_EINVAL);
    assert_non_null(strstr(nbio_detail(c), "ws://"));
    nbio_free(c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_messages),
        cmocka_unit_test(test_messages_compressed),
        cmocka_unit_test(test_fragments_and_control),
        cmocka_unit_test(test_close_handshake),
        cmocka_unit_test(test_violations_get_their_code),
        cmocka_unit_test(test_byte_at_a_time),
        cmocka_unit_test(test_refused_handshakes),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
