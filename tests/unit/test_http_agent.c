#define _GNU_SOURCE
/* The HTTP agent over real loopback TCP against a scripted responder in the
 * same thread: keep-alive reuse, a pooled connection the server closed
 * (retried once), redirects, URLs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/http_client.h"
#include "nbio/tcp.h"
#include "testutil.h"

#define MAXC 8

/* A responder: answers each request head with the next scripted answer;
 * after `close_after` answers on a connection it closes it. */
typedef struct responder {
    nbio_session *l;
    char addr[64];
    nbio_session *c[MAXC];
    char buf[MAXC][4096];
    size_t have[MAXC];
    int accepted;
    int requests;
    const char *answers[16];
    int close_after; /* 0: never */
    int answered_on[MAXC];
    char last_request[4096];
} responder;

static void responder_start(responder *r)
{
    memset(r, 0, sizeof *r);
    r->l = nbio_tcp_listen("127.0.0.1:0", NULL);
    assert_int_equal(nbio_status(r->l), NBIO_STATUS_ESTABLISHED);
    char a[64];
    assert_true(nbio_local_address(r->l, a, sizeof a) > 0);
    snprintf(r->addr, sizeof r->addr, "%s", a);
}

static void responder_step(responder *r)
{
    nbio_session *s;
    while (nbio_accept(r->l, &s) == NBIO_DATA) {
        assert_true(r->accepted < MAXC);
        r->c[r->accepted++] = s;
    }
    for (int i = 0; i < r->accepted; i++) {
        if (r->c[i] == NULL)
            continue;
        nbio_buf in;
        int n = nbio_read(r->c[i], &in);
        if (n == NBIO_DATA) {
            assert_true(r->have[i] + in.len < sizeof r->buf[i]);
            memcpy(r->buf[i] + r->have[i], in.data, in.len);
            r->have[i] += in.len;
        } else if (n < 0) {
            nbio_free(r->c[i]);
            r->c[i] = NULL;
            continue;
        }
        char *end;
        while ((end = memmem(r->buf[i], r->have[i], "\r\n\r\n", 4)) != NULL) {
            size_t hl = (size_t)(end + 4 - r->buf[i]);
            snprintf(r->last_request, sizeof r->last_request, "%.*s", (int)hl, r->buf[i]);
            memmove(r->buf[i], r->buf[i] + hl, r->have[i] - hl);
            r->have[i] -= hl;
            const char *ans = r->answers[r->requests++];
            assert_non_null(ans);
            assert_int_equal(nbio_write_some(r->c[i], ans, strlen(ans)), (long)strlen(ans));
            if (r->close_after > 0 && ++r->answered_on[i] >= r->close_after) {
                nbio_close(r->c[i]);
                nbio_free(r->c[i]);
                r->c[i] = NULL;
                break;
            }
        }
    }
}

static void responder_stop(responder *r)
{
    for (int i = 0; i < r->accepted; i++)
        nbio_free(r->c[i]);
    nbio_free(r->l);
}

/* Runs an exchange to its whole response; copies the body into body. */
static int fetch(nbio_http_agent *a, responder *r, const char *url, const nbio_http_request *rq,
                 int *status, char *body, size_t cap, int *reused)
{
    nbio_session *x = nbio_http_agent_request(a, url, rq);
    assert_non_null(x);
    int64_t deadline = nbio_now_ms() + 5000;
    int n;
    nbio_http_response resp;
    while ((n = nbio_http_read_response(x, &resp)) >= 0 && n != NBIO_DATA &&
           nbio_now_ms() < deadline)
        responder_step(r);
    if (n == NBIO_DATA) {
        *status = resp.head.status;
        snprintf(body, cap, "%.*s", (int)resp.body.len, resp.body.data);
        *reused = nbio_http_exchange_reused(x);
        /* the exchange is over after its response */
        assert_int_equal(nbio_http_read_response(x, &resp), NBIO_EPEERCLOSED);
    } else {
        snprintf(body, cap, "%s", nbio_detail(x));
    }
    nbio_free(x);
    return n;
}

static void test_reuse_and_retry(void **state)
{
    (void)state;
    responder r;
    responder_start(&r);
    r.answers[0] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\none";
    r.answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 3\r\n\r\ntwo";
    r.answers[2] = "HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nthree";
    r.answers[3] = "HTTP/1.1 200 OK\r\nContent-Length: 4\r\n\r\nfour";
    r.close_after = 2; /* the server closes after two answers, while pooled */
    nbio_http_agent *a = nbio_http_agent_new(NULL, NULL);
    char url[128], body[64];
    snprintf(url, sizeof url, "http://%s/x", r.addr);
    int st, reused;
    assert_int_equal(fetch(a, &r, url, NULL, &st, body, sizeof body, &reused), NBIO_DATA);
    assert_string_equal(body, "one");
    assert_int_equal(reused, 0);
    assert_non_null(strstr(r.last_request, "GET /x HTTP/1.1\r\nHost: 127.0.0.1:"));
    assert_int_equal(fetch(a, &r, url, NULL, &st, body, sizeof body, &reused), NBIO_DATA);
    assert_string_equal(body, "two");
    assert_int_equal(reused, 1);
    assert_int_equal(r.accepted, 1);
    /* the pooled connection was closed by the server: detected or retried */
    for (int i = 0; i < 20; i++)
        responder_step(&r);
    assert_int_equal(fetch(a, &r, url, NULL, &st, body, sizeof body, &reused), NBIO_DATA);
    assert_string_equal(body, "three");
    assert_int_equal(r.accepted, 2);
    nbio_http_agent_free(a);
    responder_stop(&r);
}

static void test_redirects(void **state)
{
    (void)state;
    responder r;
    responder_start(&r);
    r.answers[0] = "HTTP/1.1 303 See Other\r\nLocation: /new\r\nContent-Length: 2\r\n\r\nxx";
    r.answers[1] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
    nbio_http_agent_options o;
    nbio_http_agent_options_init(&o);
    o.max_redirects = 10;
    nbio_http_agent *a = nbio_http_agent_new(NULL, &o);
    char url[128], body[64];
    snprintf(url, sizeof url, "http://%s/old", r.addr);
    nbio_http_request post = {"POST", NULL, NULL, 0, "data", 4, false};
    int st, reused;
    assert_int_equal(fetch(a, &r, url, &post, &st, body, sizeof body, &reused), NBIO_DATA);
    assert_int_equal(st, 200);
    assert_string_equal(body, "ok");
    /* 303: the POST became a GET without a body, on the same connection */
    assert_non_null(strstr(r.last_request, "GET /new HTTP/1.1"));
    assert_null(strstr(r.last_request, "Content-Length"));
    assert_int_equal(r.accepted, 1);
    nbio_http_agent_free(a);
    /* without following: the 3xx is the response */
    r.answers[2] = "HTTP/1.1 302 Found\r\nLocation: http://elsewhere.invalid/\r\n"
                   "Content-Length: 0\r\n\r\n";
    a = nbio_http_agent_new(NULL, NULL);
    assert_int_equal(fetch(a, &r, url, NULL, &st, body, sizeof body, &reused), NBIO_DATA);
    assert_int_equal(st, 302);
    nbio_http_agent_free(a);
    responder_stop(&r);
}

static void test_bad_urls_and_refused(void **state)
{
    (void)state;
    nbio_http_agent *a = nbio_http_agent_new(NULL, NULL);
    nbio_session *x = nbio_http_agent_request(a, "ftp://h/", NULL);
    assert_int_equal(nbio_error(x), NBIO_EINVAL);
    assert_non_null(strstr(nbio_detail(x), "http:// or https://"));
    nbio_free(x);
    /* a port nobody listens on */
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64], url[128];
    nbio_local_address(l, addr, sizeof addr);
    nbio_free(l);
    snprintf(url, sizeof url, "http://%s/", addr);
    x = nbio_http_agent_request(a, url, NULL);
    nbio_http_response resp;
    int n;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((n = nbio_http_read_response(x, &resp)) >= 0 && nbio_now_ms() < deadline)
        ;
    assert_int_equal(n, NBIO_ECONNREFUSED);
    assert_non_null(strstr(nbio_detail(x), "connect"));
    nbio_free(x);
    nbio_http_agent_free(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reuse_and_retry),
        cmocka_unit_test(test_redirects),
        cmocka_unit_test(test_bad_urls_and_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
