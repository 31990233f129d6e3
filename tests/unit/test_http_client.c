/* The HTTP client session over scripted mock transports: requests on the
 * wire, responses fed whole and one byte at a time, pipelining, framing
 * errors, streaming. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/http_client.h"
#include "nbio/mock.h"
#include "testutil.h"

/* A client over a mock that hands out at most `chunk` bytes per read. */
static nbio_session *client(size_t chunk, nbio_session **mock, const nbio_http_options *o)
{
    nbio_mock_options mo = {chunk, 0, 0, 0};
    *mock = nbio_mock_new(&mo);
    assert_non_null(*mock);
    nbio_session *h = nbio_http_client(*mock, "example.com", o);
    assert_non_null(h);
    return h;
}

/* Reads until something is handed out (or an error); fails after many
 * idle reads. */
static int read_one(nbio_session *h, nbio_http_response *r)
{
    for (int i = 0; i < 100000; i++) {
        int n = nbio_http_read_response(h, r);
        if (n == NBIO_DATA || n < 0)
            return n;
    }
    fail_msg("no response after many reads");
    return 0;
}

static void expect_body(const nbio_http_response *r, const char *body)
{
    if (r->body.len != strlen(body) || memcmp(r->body.data, body, r->body.len) != 0)
        fail_msg("body \"%.*s\", expected \"%s\"", (int)r->body.len, r->body.data, body);
}

static void test_request_on_the_wire(void **state)
{
    (void)state;
    nbio_session *m, *h = client(0, &m, NULL);
    nbio_http_header hd[] = {{{"X-A", 3}, {"1", 1}}};
    nbio_http_request rq = {"POST", "/p?q=1", hd, 1, "hello", 5, false};
    assert_int_equal(nbio_http_write_request(h, &rq), NBIO_DONE);
    nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
    assert_int_equal(nbio_http_write_request(h, &get), NBIO_DONE);
    size_t len;
    nbio_mock_output(m, &len);
    assert_int_equal(len, 0); /* coalesced: nothing sent before a read or drive */
    nbio_http_response r;
    assert_int_equal(nbio_http_read_response(h, &r), NBIO_IDLE);
    const char *want = "POST /p?q=1 HTTP/1.1\r\nHost: example.com\r\nX-A: 1\r\n"
                       "Content-Length: 5\r\n\r\nhello"
                       "GET / HTTP/1.1\r\nHost: example.com\r\n\r\n";
    const char *got = nbio_mock_output(m, &len);
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("on the wire: %.*s", (int)len, got);
    assert_int_equal(nbio_http_unanswered(h), 2);
    /* a header value with CR LF, a method with a space: refused */
    nbio_http_header evil[] = {{{"X", 1}, {"a\r\nB: c", 7}}};
    nbio_session *m2, *h2 = client(0, &m2, NULL);
    nbio_http_request bad = {"GET", "/", evil, 1, NULL, 0, false};
    assert_int_equal(nbio_http_write_request(h2, &bad), NBIO_EINVAL);
    nbio_free(h2);
    nbio_session *m3, *h3 = client(0, &m3, NULL);
    nbio_http_request bad2 = {"G T", "/", NULL, 0, NULL, 0, false};
    assert_int_equal(nbio_http_write_request(h3, &bad2), NBIO_EINVAL);
    nbio_free(h3);
    nbio_free(h);
}

static const char *const pipelined =
    "HTTP/1.1 100 Continue\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-Y: z\r\n\r\nhello"
    "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=1\r\nabc\r\n0\r\nX-Trailer: t\r\n\r\n"
    "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n"
    "HTTP/1.1 200 OK\r\nContent-Length: 7\r\n\r\n"; /* a HEAD answer: no body */

/* Three GETs and a HEAD, the answers fed in chunks of `chunk` bytes. */
static void run_pipeline(size_t chunk)
{
    nbio_session *m, *h = client(chunk, &m, NULL);
    nbio_http_request get = {NULL, "/a", NULL, 0, NULL, 0, false};
    nbio_http_request head = {"HEAD", "/h", NULL, 0, NULL, 0, false};
    for (int i = 0; i < 3; i++)
        assert_int_equal(nbio_http_write_request(h, &get), NBIO_DONE);
    assert_int_equal(nbio_http_write_request(h, &head), NBIO_DONE);
    assert_int_equal(nbio_mock_feed(m, pipelined, strlen(pipelined)), 0);
    nbio_http_response r;
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    assert_int_equal(r.head.status, 200);
    assert_int_equal(r.index, 0);
    expect_body(&r, "hello");
    assert_non_null(nbio_http_header_find(&r.head, "x-y", NULL));
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    expect_body(&r, "abc");
    assert_int_equal(r.num_trailers, 1);
    assert_true(nbio_http_slice_eq(r.trailers[0].value, "t"));
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    assert_int_equal(r.head.status, 404);
    expect_body(&r, "");
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    assert_int_equal(r.index, 3);
    assert_int_equal(r.content_length, 0); /* HEAD: Content-Length describes a GET */
    expect_body(&r, "");
    assert_true(r.keep_alive);
    assert_int_equal(nbio_http_unanswered(h), 0);
    assert_int_equal(nbio_http_read_response(h, &r), NBIO_IDLE);
    nbio_free(h);
}

static void test_pipeline_whole(void **state)
{
    (void)state;
    run_pipeline(0);
}

static void test_pipeline_byte_by_byte(void **state)
{
    (void)state;
    run_pipeline(1);
    run_pipeline(7);
}

static void test_close_delimited_and_truncation(void **state)
{
    (void)state;
    nbio_session *m, *h = client(3, &m, NULL);
    nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
    assert_int_equal(nbio_http_write_request(h, &get), NBIO_DONE);
    const char *resp = "HTTP/1.0 200 OK\r\nServer: x\r\n\r\nuntil the end";
    nbio_mock_feed(m, resp, strlen(resp));
    nbio_mock_feed_eof(m);
    nbio_http_response r;
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    expect_body(&r, "until the end");
    assert_false(r.keep_alive);
    assert_int_equal(nbio_http_read_response(h, &r), NBIO_EPEERCLOSED);
    nbio_free(h);

    h = client(0, &m, NULL);
    assert_int_equal(nbio_http_write_request(h, &get), NBIO_DONE);
    resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabcd";
    nbio_mock_feed(m, resp, strlen(resp));
    nbio_mock_feed_eof(m);
    assert_int_equal(read_one(h, &r), NBIO_ETRUNCATED);
    assert_non_null(strstr(nbio_detail(h), "got 4 of 10 bytes"));
    nbio_free(h);
}

static void test_malformed_and_limits(void **state)
{
    (void)state;
    static const struct {
        const char *resp;
        int err;
        const char *detail;
    } cases[] = {
        {"HTTP/1.1 200 OK\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd", NBIO_EPROTOCOL,
         "malformed HTTP response"},
        {"HTTP/1.1 2x0 OK\r\n\r\n", NBIO_EPROTOCOL, "malformed HTTP response"},
        {"HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", NBIO_EPROTOCOL, "malformed HTTP response"},
        {"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n", NBIO_EPROTOCOL,
         "chunked"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        nbio_session *m, *h = client(0, &m, NULL);
        nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
        assert_int_equal(nbio_http_write_request(h, &get), NBIO_DONE);
        nbio_mock_feed(m, cases[i].resp, strlen(cases[i].resp));
        nbio_http_response r;
        int n = read_one(h, &r);
        if (n != cases[i].err || strstr(nbio_detail(h), cases[i].detail) == NULL)
            fail_msg("case %zu: %s \"%s\"", i, nbio_errname(n), nbio_detail(h));
        nbio_free(h);
    }
    /* a body over max_body, a head over max_head */
    nbio_http_options o;
    nbio_http_options_init(&o);
    o.max_body = 4;
    o.max_head = 64;
    nbio_session *m, *h = client(0, &m, &o);
    nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
    nbio_http_write_request(h, &get);
    const char *big = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello";
    nbio_mock_feed(m, big, strlen(big));
    nbio_http_response r;
    assert_int_equal(read_one(h, &r), NBIO_ETOOLARGE);
    nbio_free(h);
    h = client(0, &m, &o);
    nbio_http_write_request(h, &get);
    char head[200];
    snprintf(head, sizeof head, "HTTP/1.1 200 OK\r\nX: %0100d\r\n\r\n", 0);
    nbio_mock_feed(m, head, strlen(head));
    assert_int_equal(read_one(h, &r), NBIO_ETOOLARGE);
    nbio_free(h);
}

static void test_connection_close_ends_pipeline(void **state)
{
    (void)state;
    nbio_session *m, *h = client(0, &m, NULL);
    nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
    for (int i = 0; i < 4; i++)
        nbio_http_write_request(h, &get);
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\na"
                       "HTTP/1.1 200 OK\r\nContent-Length: 1\r\nConnection: close\r\n\r\nb";
    nbio_mock_feed(m, resp, strlen(resp));
    nbio_http_response r;
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    assert_int_equal(read_one(h, &r), NBIO_DATA);
    assert_false(r.keep_alive);
    assert_int_equal(nbio_http_read_response(h, &r), NBIO_EPEERCLOSED);
    assert_non_null(strstr(nbio_detail(h), "2 requests not answered"));
    assert_int_equal(nbio_http_unanswered(h), 2);
    nbio_free(h);
}

static void test_streaming_parts(void **state)
{
    (void)state;
    nbio_http_options o;
    nbio_http_options_init(&o);
    o.stream_body = true;
    o.max_body = 4; /* no limit when streaming */
    nbio_session *m, *h = client(4, &m, &o);
    nbio_http_request get = {NULL, NULL, NULL, 0, NULL, 0, false};
    nbio_http_write_request(h, &get);
    nbio_http_write_request(h, &get);
    const char *resp = "HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n0123456789"
                       "HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
    nbio_mock_feed(m, resp, strlen(resp));
    char body[64];
    for (int k = 0; k < 2; k++) {
        nbio_http_response r;
        assert_int_equal(read_one(h, &r), NBIO_DATA);
        assert_int_equal(r.part, NBIO_HTTP_HEAD);
        assert_int_equal(r.head.status, 200);
        size_t got = 0;
        do {
            assert_int_equal(read_one(h, &r), NBIO_DATA);
            assert_true(r.part == NBIO_HTTP_BODY || r.part == NBIO_HTTP_END);
            assert_true(got + r.body.len < sizeof body);
            memcpy(body + got, r.body.data, r.body.len);
            got += r.body.len;
        } while (r.part != NBIO_HTTP_END);
        body[got] = '\0';
        assert_string_equal(body, k == 0 ? "0123456789" : "hello world");
    }
    nbio_free(h);
}

static void test_chunked_request_body(void **state)
{
    (void)state;
    nbio_session *m, *h = client(0, &m, NULL);
    nbio_http_request put = {"PUT", "/up", NULL, 0, NULL, 0, true};
    assert_int_equal(nbio_http_write_request(h, &put), NBIO_DONE);
    assert_int_equal(nbio_http_write_request(h, &put), NBIO_EUSAGE); /* body still open */
    assert_int_equal(nbio_http_write_body(h, "abc", 3), NBIO_DONE);
    assert_int_equal(nbio_http_write_body(h, NULL, 0), NBIO_DONE);
    assert_int_equal(nbio_http_write_body(h, "x", 1), NBIO_EUSAGE);
    assert_int_equal(nbio_flush(h, 0), NBIO_DONE);
    size_t len;
    const char *got = nbio_mock_output(m, &len);
    const char *want = "PUT /up HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
                       "3\r\nabc\r\n0\r\n\r\n";
    if (len != strlen(want) || memcmp(got, want, len) != 0)
        fail_msg("on the wire: %.*s", (int)len, got);
    nbio_free(h);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_request_on_the_wire),
        cmocka_unit_test(test_pipeline_whole),
        cmocka_unit_test(test_pipeline_byte_by_byte),
        cmocka_unit_test(test_close_delimited_and_truncation),
        cmocka_unit_test(test_malformed_and_limits),
        cmocka_unit_test(test_connection_close_ends_pipeline),
        cmocka_unit_test(test_streaming_parts),
        cmocka_unit_test(test_chunked_request_body),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
