/* The HTTP server session over scripted mock transports: pipelined requests
 * fed whole and byte by byte, answers on the wire, refusals with their
 * status, 100-continue, keep-alive rules, bodies in parts. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/http_server.h"
#include "nbio/mock.h"
#include "testutil.h"

static nbio_session *server(size_t chunk, nbio_session **mock, const nbio_http_server_options *o)
{
    nbio_mock_options mo = {chunk, 0, 0, 0};
    *mock = nbio_mock_new(&mo);
    assert_non_null(*mock);
    nbio_session *h = nbio_http_server(*mock, o);
    assert_non_null(h);
    return h;
}

static int read_one(nbio_session *h, nbio_http_incoming *in)
{
    for (int i = 0; i < 100000; i++) {
        int n = nbio_http_read_request(h, in);
        if (n == NBIO_DATA || n < 0)
            return n;
    }
    return NBIO_IDLE;
}

/* The output so far, without its Date lines, as a string (static). */
static const char *wire(nbio_session *m)
{
    static char buf[8192];
    size_t len;
    const char *p = nbio_mock_output(m, &len);
    size_t o = 0;
    for (size_t i = 0; i < len && o + 1 < sizeof buf;) {
        if (len - i > 6 && memcmp(p + i, "Date: ", 6) == 0) {
            while (i < len && p[i] != '\n')
                i++;
            i++;
            continue;
        }
        buf[o++] = p[i++];
    }
    buf[o] = '\0';
    return buf;
}

static void answer(nbio_session *h, int status, const char *body)
{
    nbio_http_reply r = {status, NULL, NULL, 0, body, body != NULL ? strlen(body) : 0, 0, false};
    assert_int_equal(nbio_http_write_response(h, &r), NBIO_DONE);
}

static const char *const three =
    "GET /a HTTP/1.1\r\nHost: h\r\n\r\n"
    "POST /b HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n0\r\n\r\n"
    "HEAD /c HTTP/1.1\r\nHost: h\r\n\r\n";

static void run_pipeline(size_t chunk)
{
    nbio_session *m, *h = server(chunk, &m, NULL);
    assert_int_equal(nbio_mock_feed(m, three, strlen(three)), 0);
    nbio_http_incoming in;
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(nbio_http_slice_eq(in.head.target, "/a"));
    answer(h, 200, "one");
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(nbio_http_slice_eq(in.head.method, "POST"));
    assert_int_equal(in.body.len, 3);
    assert_memory_equal(in.body.data, "abc", 3);
    answer(h, 201, "two");
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(nbio_http_slice_eq(in.head.method, "HEAD"));
    answer(h, 200, "three"); /* the body is left out, its length kept */
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_IDLE); /* flushes */
    assert_string_equal(wire(m), "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none"
                                 "HTTP/1.1 201 Created\r\nContent-Length: 3\r\n\r\ntwo"
                                 "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\n");
    nbio_free(h);
}

static void test_pipeline(void **state)
{
    (void)state;
    run_pipeline(0);
    run_pipeline(1);
    run_pipeline(5);
}

static void test_answers_coalesce(void **state)
{
    (void)state;
    nbio_session *m, *h = server(0, &m, NULL);
    char burst[4096] = "";
    for (int i = 0; i < 20; i++)
        strcat(burst, "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    nbio_mock_feed(m, burst, strlen(burst));
    nbio_http_incoming in;
    size_t len;
    for (int i = 0; i < 20; i++) {
        assert_int_equal(read_one(h, &in), NBIO_DATA);
        answer(h, 200, "x");
        nbio_mock_output(m, &len);
        assert_int_equal(len, 0); /* nothing goes while requests are buffered */
    }
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_IDLE);
    nbio_mock_output(m, &len);
    assert_true(len > 20 * 30);
    nbio_free(h);
}

static void test_refusals(void **state)
{
    (void)state;
    static const struct {
        const char *req;
        int status;
        int err;
    } cases[] = {
        {"GET / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
         400, NBIO_EPROTOCOL},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", 400,
         NBIO_EPROTOCOL},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked, gzip\r\n\r\n", 400,
         NBIO_EPROTOCOL},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: zstd, chunked\r\n\r\n", 501,
         NBIO_EUNSUPPORTED},
        {"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", 400,
         NBIO_EPROTOCOL},
        {"GET / HTTP/1.1\nHost: h\n\n", 400, NBIO_EPROTOCOL},
        {"GET / HTTP/1.1\r\nHost: h\r\nX: a\r\n b\r\n\r\n", 400, NBIO_EPROTOCOL},
        {"GET / HTTP/1.1\r\nHost : h\r\n\r\n", 400, NBIO_EPROTOCOL},
        {"GET / HTTP/1.1\r\n\r\n", 400, NBIO_EPROTOCOL},
        {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, NBIO_EPROTOCOL},
        {"GET / HTTP/2.0\r\nHost: h\r\n\r\n", 505, NBIO_EUNSUPPORTED},
        {"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999\r\n\r\n", 413,
         NBIO_ETOOLARGE},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nbio_session *m, *h = server(0, &m, NULL);
        nbio_mock_feed(m, cases[i].req, strlen(cases[i].req));
        nbio_http_incoming in;
        int n = read_one(h, &in);
        char want[64];
        snprintf(want, sizeof want, "HTTP/1.1 %d ", cases[i].status);
        if (n != cases[i].err || nbio_http_server_status_sent(h) != cases[i].status ||
            strncmp(wire(m), want, strlen(want)) != 0 ||
            strstr(wire(m), "Connection: close\r\n") == NULL)
            fail_msg("case %zu: %s \"%s\", sent %d: %.60s", i, nbio_errname(n), nbio_detail(h),
                     nbio_http_server_status_sent(h), wire(m));
        /* the read side ended; closing sends what is left, then the FIN */
        assert_int_equal(nbio_status(h), NBIO_STATUS_TERMINATED);
        assert_int_equal(nbio_close(h), NBIO_DONE);
        assert_int_equal(nbio_mock_goodbyes(m), 1);
        nbio_free(h);
    }
    /* a request line over the limit: 414; too many fields: 431 */
    nbio_http_server_options o;
    nbio_http_server_options_init(&o);
    o.max_line = 64;
    o.max_headers = 3;
    nbio_session *m, *h = server(0, &m, &o);
    char big[200];
    snprintf(big, sizeof big, "GET /%0100d HTTP/1.1\r\nHost: h\r\n\r\n", 0);
    nbio_mock_feed(m, big, strlen(big));
    nbio_http_incoming in;
    assert_int_equal(read_one(h, &in), NBIO_ETOOLARGE);
    assert_int_equal(nbio_http_server_status_sent(h), 414);
    nbio_free(h);
    h = server(0, &m, &o);
    const char *many = "GET / HTTP/1.1\r\nHost: h\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n";
    nbio_mock_feed(m, many, strlen(many));
    assert_int_equal(read_one(h, &in), NBIO_ETOOLARGE);
    assert_int_equal(nbio_http_server_status_sent(h), 431);
    nbio_free(h);
}

static void test_continue_and_keep_alive(void **state)
{
    (void)state;
    nbio_session *m, *h = server(0, &m, NULL);
    const char *req = "PUT /f HTTP/1.1\r\nHost: h\r\nExpect: 100-continue\r\nContent-Length: 4\r\n\r\n";
    nbio_mock_feed(m, req, strlen(req));
    nbio_http_incoming in;
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_ACTIVE);
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_IDLE);
    assert_string_equal(wire(m), "HTTP/1.1 100 Continue\r\n\r\n");
    nbio_mock_feed(m, "data", 4);
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_memory_equal(in.body.data, "data", 4);
    nbio_free(h);

    /* HTTP/1.0: closes unless keep-alive was asked for */
    h = server(0, &m, NULL);
    req = "GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\nGET / HTTP/1.0\r\n\r\nGET / HTTP/1.0\r\n\r\n";
    nbio_mock_feed(m, req, strlen(req));
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(in.keep_alive);
    answer(h, 200, "a");
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_false(in.keep_alive);
    answer(h, 200, "b");
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_IDLE); /* the third is not read */
    assert_int_equal(nbio_http_server_phase(h, NULL), NBIO_HTTP_WAIT_DONE);
    const char *w = wire(m);
    assert_non_null(strstr(w, "Connection: keep-alive\r\n"));
    assert_non_null(strstr(w, "Connection: close\r\n"));
    nbio_free(h);
}

static void test_response_body_in_parts(void **state)
{
    (void)state;
    nbio_session *m, *h = server(0, &m, NULL);
    const char *req = "GET /big HTTP/1.1\r\nHost: h\r\n\r\nGET /chunked HTTP/1.1\r\nHost: h\r\n\r\n";
    nbio_mock_feed(m, req, strlen(req));
    nbio_http_incoming in;
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    nbio_http_reply r = {200, NULL, NULL, 0, NULL, 0, 6, false};
    assert_int_equal(nbio_http_write_response(h, &r), NBIO_DONE);
    assert_int_equal(nbio_http_write_response(h, &r), NBIO_EUSAGE); /* its body is owed */
    assert_int_equal(nbio_http_write_response_body(h, "abc", 3), NBIO_DONE);
    assert_int_equal(nbio_http_write_response_body(h, "defg", 4), NBIO_EUSAGE); /* past 6 */
    assert_int_equal(nbio_http_write_response_body(h, "def", 3), NBIO_DONE);
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    nbio_http_reply c = {200, NULL, NULL, 0, NULL, 0, UINT64_MAX, false};
    assert_int_equal(nbio_http_write_response(h, &c), NBIO_DONE);
    assert_int_equal(nbio_http_write_response_body(h, "xy", 2), NBIO_DONE);
    assert_int_equal(nbio_http_write_response_body(h, NULL, 0), NBIO_DONE);
    assert_int_equal(nbio_flush(h, 0), NBIO_DONE);
    assert_string_equal(wire(m), "HTTP/1.1 200 OK\r\nContent-Length: 6\r\n\r\nabcdef"
                                 "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                                 "2\r\nxy\r\n0\r\n\r\n");
    nbio_free(h);
}

static void test_streamed_request_and_early_answer(void **state)
{
    (void)state;
    nbio_http_server_options o;
    nbio_http_server_options_init(&o);
    o.stream_body = true;
    nbio_session *m, *h = server(4, &m, &o);
    const char *req = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 10\r\n\r\n0123456789"
                      "GET /next HTTP/1.1\r\nHost: h\r\n\r\n";
    nbio_mock_feed(m, req, strlen(req));
    nbio_http_incoming in;
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_int_equal(in.part, NBIO_HTTP_HEAD);
    assert_int_equal(in.content_length, 10);
    char got[32];
    size_t n = 0;
    do {
        assert_int_equal(read_one(h, &in), NBIO_DATA);
        memcpy(got + n, in.body.data, in.body.len);
        n += in.body.len;
    } while (in.part != NBIO_HTTP_END);
    assert_int_equal(n, 10);
    assert_memory_equal(got, "0123456789", 10);
    answer(h, 200, "ok");
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(nbio_http_slice_eq(in.head.target, "/next"));
    answer(h, 200, "ok");
    nbio_free(h);

    /* answered before its body was read: the connection ends after it */
    h = server(0, &m, &o);
    req = "POST /up HTTP/1.1\r\nHost: h\r\nContent-Length: 1000\r\n\r\npartial";
    nbio_mock_feed(m, req, strlen(req));
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    answer(h, 413, "no");
    assert_int_equal(nbio_http_server_phase(h, NULL), NBIO_HTTP_WAIT_DONE);
    assert_int_equal(nbio_flush(h, 0), NBIO_DONE);
    assert_non_null(strstr(wire(m), "Connection: close\r\n"));
    nbio_free(h);
}

static void test_peer_close_and_phase(void **state)
{
    (void)state;
    nbio_session *m, *h = server(0, &m, NULL);
    int64_t since = -1;
    assert_int_equal(nbio_http_server_phase(h, &since), NBIO_HTTP_WAIT_REQUEST);
    assert_true(since > 0);
    nbio_mock_feed(m, "GET / HT", 8);
    nbio_http_incoming in;
    assert_int_equal(nbio_http_read_request(h, &in), NBIO_ACTIVE);
    assert_int_equal(nbio_http_server_phase(h, NULL), NBIO_HTTP_WAIT_HEAD);
    nbio_mock_feed_eof(m);
    assert_int_equal(read_one(h, &in), NBIO_ETRUNCATED);
    nbio_free(h);
    h = server(0, &m, NULL);
    nbio_mock_feed_eof(m);
    assert_int_equal(read_one(h, &in), NBIO_EPEERCLOSED);
    nbio_free(h);
}

static void test_upgrade_handoff(void **state)
{
    (void)state;
    nbio_session *m, *h = server(0, &m, NULL);
    const char *req = "GET /ws HTTP/1.1\r\nHost: h\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n"
                      "EXTRA";
    nbio_mock_feed(m, req, strlen(req));
    nbio_http_incoming in;
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    assert_true(in.upgrade);
    nbio_http_header up[] = {{{"Upgrade", 7}, {"websocket", 9}}, {{"Connection", 10}, {"Upgrade", 7}}};
    nbio_http_reply r = {101, NULL, up, 2, NULL, 0, 0, false};
    assert_int_equal(nbio_http_write_response(h, &r), NBIO_DONE);
    nbio_session *b = nbio_http_server_upgrade(h);
    assert_non_null(b);
    assert_int_equal(nbio_error(b), 0);
    nbio_buf got;
    assert_int_equal(nbio_read(b, &got), NBIO_DATA);
    assert_int_equal(got.len, 5);
    assert_memory_equal(got.data, "EXTRA", 5);
    assert_int_equal(nbio_write_some(b, "frame", 5), 5);
    const char *w = wire(m);
    assert_non_null(strstr(w, "HTTP/1.1 101 Switching Protocols\r\n"));
    assert_non_null(strstr(w, "\r\n\r\nframe"));
    nbio_free(b);
    /* not between answers: a usage error, s freed */
    h = server(0, &m, NULL);
    nbio_mock_feed(m, req, strlen(req));
    assert_int_equal(read_one(h, &in), NBIO_DATA);
    b = nbio_http_server_upgrade(h);
    assert_int_equal(nbio_error(b), NBIO_EUSAGE);
    nbio_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pipeline),
        cmocka_unit_test(test_answers_coalesce),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_continue_and_keep_alive),
        cmocka_unit_test(test_response_body_in_parts),
        cmocka_unit_test(test_streamed_request_and_early_answer),
        cmocka_unit_test(test_peer_close_and_phase),
        cmocka_unit_test(test_upgrade_handoff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
