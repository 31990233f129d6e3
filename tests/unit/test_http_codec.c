/* The HTTP/1.1 codec (src/http/codec.h): table-driven tests of request
 * and status lines, field lines, every rejection and limit, the same heads
 * fed one byte at a time with prev_len resume, the chunked decoder split at
 * every byte boundary, and the body framing decision. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "http/codec.h"
#include "nbio/http.h"
#include "nbio/nbio.h"

#define MAXH 128

/* A parsed head as one string, so tables can say what they expect:
 *   requests   "GET /x 1 |Name=value|Other=|"
 *   responses  "1 200 [OK] |Name=value|" */
static void dump(const nbio_http_head *h, bool request, char *out, size_t cap)
{
    int n;
    if (request)
        n = snprintf(out, cap, "%.*s %.*s %d |", (int)h->method.len, h->method.data,
                     (int)h->target.len, h->target.data, h->minor_version);
    else
        n = snprintf(out, cap, "%d %d [%.*s] |", h->minor_version, h->status,
                     (int)h->reason.len, h->reason.data);
    for (size_t i = 0; i < h->num_headers && n > 0 && (size_t)n < cap; i++)
        n += snprintf(out + n, cap - (size_t)n, "%.*s=%.*s|", (int)h->headers[i].name.len,
                      h->headers[i].name.data, (int)h->headers[i].value.len,
                      h->headers[i].value.data);
}

typedef struct head_case {
    const char *comment;
    const char *in;
    int result;        /* > 0 head length (-1: the whole input), 0 more, < 0 error */
    const char *want;  /* dump() of a good head, or the why of an error */
    long where;        /* error offset (-1: do not check) */
    nbio__http_limits lim;
    size_t in_len; /* 0: strlen(in) (set it for inputs with NUL bytes) */
} head_case;

#define ALL (-1)

typedef int (*parse_fn)(const char *, size_t, size_t, nbio_http_head *, const nbio__http_limits *,
                        const char **, size_t *);

/* Parses in[0, len) in one call and then one byte at a time (prev_len
 * resume); both must agree with the table. */
static void check_head(const head_case *c, bool request)
{
    parse_fn parse = request ? nbio__http_parse_request : nbio__http_parse_response;
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    int want = c->result == ALL ? (int)len : c->result;
    nbio_http_header fields[MAXH];
    nbio_http_head h = {.headers = fields};
    const char *why = NULL;
    size_t where = 0;
    char got[4096];
    const nbio__http_limits *lim = c->lim.max_head || c->lim.max_headers || c->lim.max_line
                                       ? &c->lim
                                       : NULL;

    /* The input is copied to the heap, exactly len bytes, so ASan sees any
     * read past its end. */
    char *buf = malloc(len ? len : 1);
    memcpy(buf, c->in, len);
    int r = parse(buf, len, 0, &h, lim, &why, &where);
    if (r != want)
        fail_msg("%s: %s: result %d, want %d (why: %s at %zu)", request ? "request" : "response",
                 c->comment, r, want, r < 0 ? why : "-", r < 0 ? where : 0);
    if (r > 0) {
        dump(&h, request, got, sizeof got);
        if (strcmp(got, c->want) != 0)
            fail_msg("%s: got %s, want %s", c->comment, got, c->want);
    } else if (r < 0) {
        if (strcmp(why, c->want) != 0)
            fail_msg("%s: why \"%s\", want \"%s\"", c->comment, why, c->want);
        if (c->where >= 0 && where != (size_t)c->where)
            fail_msg("%s: where %zu, want %ld", c->comment, where, c->where);
    }
    char expect[4096];
    snprintf(expect, sizeof expect, "%s", r > 0 ? got : "");
    const char *why0 = why;
    size_t where0 = where;

    /* One byte at a time: 0 until the result appears, then the same. */
    int rb = 0;
    size_t prev = 0, i;
    nbio_http_header fields2[MAXH];
    nbio_http_head h2 = {.headers = fields2};
    for (i = 1; i <= len; i++) {
        const char *why2 = NULL;
        size_t where2 = 0;
        rb = parse(buf, i, prev, &h2, lim, &why2, &where2);
        if (rb != 0) {
            if (rb < 0 && (why2 != why0 || where2 != where0))
                fail_msg("%s: byte at a time: \"%s\" at %zu, whole: \"%s\" at %zu", c->comment,
                         why2, where2, why0, where0);
            break;
        }
        prev = i;
    }
    if (rb != r)
        fail_msg("%s: byte at a time gave %d, whole %d", c->comment, rb, r);
    if (rb > 0) {
        dump(&h2, request, got, sizeof got);
        if (strcmp(got, expect) != 0)
            fail_msg("%s: byte at a time: %s, whole: %s", c->comment, got, expect);
        /* The head must be found exactly when its last byte arrives. */
        assert_int_equal(i, (size_t)rb);
    }
    free(buf);
}

/* ---- responses ---------------------------------------------------------- */

static const head_case responses[] = {
    {"minimal", "HTTP/1.1 200 OK\r\n\r\n", ALL, "1 200 [OK] |", 0, {0}, 0},
    {"HTTP/1.0", "HTTP/1.0 404 Not Found\r\n\r\n", ALL, "0 404 [Not Found] |", 0, {0}, 0},
    {"higher minor version accepted", "HTTP/1.2 200 OK\r\n\r\n", ALL, "2 200 [OK] |", 0, {0}, 0},
    {"empty reason with SP", "HTTP/1.1 204 \r\n\r\n", ALL, "1 204 [] |", 0, {0}, 0},
    {"no SP before an empty reason (robustness)", "HTTP/1.1 200\r\n\r\n", ALL, "1 200 [] |", 0,
     {0}, 0},
    {"reason with spaces, tabs and obs-text", "HTTP/1.1 200 All \tgood \xe2\x9c\x93\r\n\r\n", ALL,
     "1 200 [All \tgood \xe2\x9c\x93] |", 0, {0}, 0},
    {"status 999 accepted", "HTTP/1.1 999 Request denied\r\n\r\n", ALL,
     "1 999 [Request denied] |", 0, {0}, 0},
    {"headers, OWS trimmed", "HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:\t v \t\r\n\r\nhello",
     (int)sizeof("HTTP/1.1 200 OK\r\nContent-Length: 5\r\nX-A:\t v \t\r\n\r\n") - 1,
     "1 200 [OK] |Content-Length=5|X-A=v|", 0, {0}, 0},
    {"empty values", "HTTP/1.1 200 OK\r\nA:\r\nB:   \r\n\r\n", ALL, "1 200 [OK] |A=|B=|", 0, {0}, 0},
    {"inner whitespace and obs-text kept",
     "HTTP/1.1 200 OK\r\nX: a  b\tc \xff\r\n\r\n", ALL, "1 200 [OK] |X=a  b\tc \xff|", 0, {0}, 0},
    {"repeated headers in order",
     "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nSet-Cookie: b=2\r\n\r\n", ALL,
     "1 200 [OK] |Set-Cookie=a=1|Set-Cookie=b=2|", 0, {0}, 0},
    {"all tchar in a name", "HTTP/1.1 200 OK\r\n!#$%&'*+-.^_`|~09azAZ: x\r\n\r\n", ALL,
     "1 200 [OK] |!#$%&'*+-.^_`|~09azAZ=x|", 0, {0}, 0},
    {"bare LF line endings accepted in responses", "HTTP/1.1 200 OK\nA: b\n\n", ALL,
     "1 200 [OK] |A=b|", 0, {0}, 0},
    {"mixed CRLF and LF", "HTTP/1.1 200 OK\r\nA: b\n\r\n", ALL, "1 200 [OK] |A=b|", 0, {0}, 0},
    {"leading empty lines skipped", "\r\n\nHTTP/1.1 200 OK\r\n\r\n", ALL, "1 200 [OK] |", 0,
     {0}, 0},
    {"100 Continue then the final response: only the first head",
     "HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", 25, "1 100 [Continue] |", 0, {0}, 0},
    {"incomplete: status line", "HTTP/1.1 200 O", 0, NULL, 0, {0}, 0},
    {"incomplete: CR", "HTTP/1.1 200 OK\r", 0, NULL, 0, {0}, 0},
    {"incomplete: header", "HTTP/1.1 200 OK\r\nA: b\r\n", 0, NULL, 0, {0}, 0},
    {"incomplete: final CR", "HTTP/1.1 200 OK\r\nA: b\r\n\r", 0, NULL, 0, {0}, 0},
    {"incomplete: empty", "", 0, NULL, 0, {0}, 0},
    {"incomplete: garbage without a line end yet", "HTTP/1.1 20x", 0, NULL, 0, {0}, 0},
    /* rejections */
    {"HTTP/2.0 status line", "HTTP/2.0 200 OK\r\n\r\n", NBIO_EPROTOCOL,
     "status line with an HTTP version other than 1.x", 0, {0}, 0},
    {"lower-case http", "http/1.1 200 OK\r\n\r\n", NBIO_EPROTOCOL,
     "malformed HTTP version in the status line", 0, {0}, 0},
    {"two-digit minor version", "HTTP/1.10 200 OK\r\n\r\n", NBIO_EPROTOCOL,
     "malformed status code", 8, {0}, 0},
    {"no status", "HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL, "malformed status code", 8, {0}, 0},
    {"two-digit status", "HTTP/1.1 20 OK\r\n\r\n", NBIO_EPROTOCOL, "malformed status code", 8,
     {0}, 0},
    {"four-digit status", "HTTP/1.1 2000 OK\r\n\r\n", NBIO_EPROTOCOL, "malformed status code",
     8, {0}, 0},
    {"status 099", "HTTP/1.1 099 Odd\r\n\r\n", NBIO_EPROTOCOL, "malformed status code", 8, {0}, 0},
    {"two spaces before the status", "HTTP/1.1  200 OK\r\n\r\n", NBIO_EPROTOCOL,
     "malformed status code", 8, {0}, 0},
    {"bare CR in the status line", "HTTP/1.1 200 O\rK\r\n\r\n", NBIO_EPROTOCOL,
     "bare CR in the head", 14, {0}, 0},
    {"bare CR ending a header", "HTTP/1.1 200 OK\r\nA: b\rC: d\r\n\r\n", NBIO_EPROTOCOL,
     "bare CR in the head", 21, {0}, 0},
    {"NUL in a value", "HTTP/1.1 200 OK\r\nA: b\0c\r\n\r\n", NBIO_EPROTOCOL,
     "control character in the head", 21, {0}, 27},
    {"DEL in a value", "HTTP/1.1 200 OK\r\nA: b\x7f\r\n\r\n", NBIO_EPROTOCOL,
     "DEL character in the head", 21, {0}, 0},
    {"control byte in the reason", "HTTP/1.1 200 O\x01K\r\n\r\n", NBIO_EPROTOCOL,
     "control character in the head", 14, {0}, 0},
    {"obs-fold", "HTTP/1.1 200 OK\r\nA: b\r\n c\r\n\r\n", NBIO_EPROTOCOL,
     "obsolete line folding (a field line starts with whitespace)", 23, {0}, 0},
    {"whitespace before the first header", "HTTP/1.1 200 OK\r\n\tA: b\r\n\r\n",
     NBIO_EPROTOCOL, "obsolete line folding (a field line starts with whitespace)", 17, {0}, 0},
    {"space before the colon", "HTTP/1.1 200 OK\r\nA : b\r\n\r\n", NBIO_EPROTOCOL,
     "whitespace between the header name and colon", 18, {0}, 0},
    {"tab before the colon", "HTTP/1.1 200 OK\r\nA\t: b\r\n\r\n", NBIO_EPROTOCOL,
     "whitespace between the header name and colon", 18, {0}, 0},
    {"space inside a name", "HTTP/1.1 200 OK\r\nA b: c\r\n\r\n", NBIO_EPROTOCOL,
     "invalid character in a header name", 18, {0}, 0},
    {"empty name", "HTTP/1.1 200 OK\r\n: b\r\n\r\n", NBIO_EPROTOCOL, "empty header name", 17,
     {0}, 0},
    {"no colon", "HTTP/1.1 200 OK\r\nAb\r\n\r\n", NBIO_EPROTOCOL, "header line without a colon",
     19, {0}, 0},
    {"non-token byte in a name", "HTTP/1.1 200 OK\r\nA(b): c\r\n\r\n", NBIO_EPROTOCOL,
     "invalid character in a header name", 18, {0}, 0},
    {"obs-text in a name", "HTTP/1.1 200 OK\r\nA\xc3\xa9: c\r\n\r\n", NBIO_EPROTOCOL,
     "invalid character in a header name", 18, {0}, 0},
    {"five leading empty lines", "\r\n\r\n\r\n\r\n\r\nHTTP/1.1 200 OK\r\n\r\n", NBIO_EPROTOCOL,
     "too many empty lines before the start line", 8, {0}, 0},
    {"TLS record sent to plain HTTP fails on its first byte", "\x16\x03\x01\x02\x00\x01",
     NBIO_EPROTOCOL, "control character in the head", 0, {0}, 0},
    /* limits */
    {"status line at the line limit", "HTTP/1.1 200 OKAY\r\n\r\n", ALL, "1 200 [OKAY] |", 0,
     {.max_line = 17}, 0},
    {"status line over the line limit", "HTTP/1.1 200 OKAY\r\n\r\n", NBIO_ETOOLARGE,
     "status line longer than the limit", 16, {.max_line = 16}, 0},
    {"status line over the limit, no line end yet", "HTTP/1.1 200 OKAYYYYYY", NBIO_ETOOLARGE,
     "status line longer than the limit", 16, {.max_line = 16}, 0},
    {"field line over the line limit", "HTTP/1.1 200 OK\r\nAbc: 123456789012\r\n\r\n",
     NBIO_ETOOLARGE, "header field line longer than the limit", 17 + 15, {.max_line = 15}, 0},
    {"head exactly at the limit", "HTTP/1.1 200 OK\r\nA: b\r\n\r\n", ALL, "1 200 [OK] |A=b|", 0,
     {.max_head = 25}, 0},
    {"head one byte over the limit", "HTTP/1.1 200 OK\r\nA: b\r\n\r\n", NBIO_ETOOLARGE,
     "header block larger than the limit", 24, {.max_head = 24}, 0},
    {"head over the limit, incomplete", "HTTP/1.1 200 OK\r\nA: b\r\nC: ddddddddd", NBIO_ETOOLARGE,
     "header block larger than the limit", 30, {.max_head = 30}, 0},
    {"exactly max_headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\n\r\n", ALL,
     "1 200 [OK] |A=1|B=2|", 0, {.max_headers = 2}, 0},
    {"too many headers", "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\n\r\n", NBIO_ETOOLARGE,
     "too many header fields", 29, {.max_headers = 2}, 0},
    {"a syntax error after the field count was exceeded wins",
     "HTTP/1.1 200 OK\r\nA: 1\r\nB: 2\r\nC: 3\r\nD : 4\r\n\r\n", NBIO_EPROTOCOL,
     "whitespace between the header name and colon", 36, {.max_headers = 2}, 0},
};

/* ---- requests ----------------------------------------------------------- */

static const head_case requests[] = {
    {"minimal", "GET / HTTP/1.1\r\nHost: a\r\n\r\n", ALL, "GET / 1 |Host=a|", 0, {0}, 0},
    {"HTTP/1.0 without headers", "GET /x HTTP/1.0\r\n\r\n", ALL, "GET /x 0 |", 0, {0}, 0},
    {"extension method, absolute-form target",
     "PROPFIND http://h.example/a?b=c#d HTTP/1.1\r\n\r\n", ALL,
     "PROPFIND http://h.example/a?b=c#d 1 |", 0, {0}, 0},
    {"authority-form", "CONNECT h.example:443 HTTP/1.1\r\n\r\n", ALL,
     "CONNECT h.example:443 1 |", 0, {0}, 0},
    {"asterisk-form", "OPTIONS * HTTP/1.1\r\n\r\n", ALL, "OPTIONS * 1 |", 0, {0}, 0},
    {"obs-text in the target accepted", "GET /caf\xc3\xa9 HTTP/1.1\r\n\r\n", ALL,
     "GET /caf\xc3\xa9 1 |", 0, {0}, 0},
    {"lower-case method is a token (methods are case-sensitive)", "get / HTTP/1.1\r\n\r\n", ALL,
     "get / 1 |", 0, {0}, 0},
    {"one leading CRLF (after a POST body)", "\r\nPOST / HTTP/1.1\r\nContent-Length: 0\r\n\r\n",
     ALL, "POST / 1 |Content-Length=0|", 0, {0}, 0},
    {"four leading CRLF", "\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", ALL, "GET / 1 |", 0, {0}, 0},
    {"pipelined: only the first head", "GET /a HTTP/1.1\r\n\r\nGET /b HTTP/1.1\r\n\r\n", 19,
     "GET /a 1 |", 0, {0}, 0},
    {"incomplete: request line", "GET / HTTP/1.", 0, NULL, 0, {0}, 0},
    {"incomplete: no empty line", "GET / HTTP/1.1\r\nHost: a\r\n", 0, NULL, 0, {0}, 0},
    /* rejections */
    {"bare LF ending the request line", "GET / HTTP/1.1\nHost: a\r\n\r\n", NBIO_EPROTOCOL,
     "bare LF line ending in a request", 14, {0}, 0},
    {"bare LF ending a field line", "GET / HTTP/1.1\r\nHost: a\n\r\n", NBIO_EPROTOCOL,
     "bare LF line ending in a request", 23, {0}, 0},
    {"bare LF as the final empty line", "GET / HTTP/1.1\r\nHost: a\r\n\n", NBIO_EPROTOCOL,
     "bare LF line ending in a request", 25, {0}, 0},
    {"bare LF before the request line", "\nGET / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "bare LF line ending in a request", 0, {0}, 0},
    {"bare CR", "GET / HTTP/1.1\r\nHost: a\rX: y\r\n\r\n", NBIO_EPROTOCOL,
     "bare CR in the head", 23, {0}, 0},
    {"bare CR in the target", "GET /a\rb HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "bare CR in the head", 6, {0}, 0},
    {"HTTP/2.0 is 505", "GET / HTTP/2.0\r\n\r\n", NBIO_EUNSUPPORTED,
     "HTTP version not supported", 6, {0}, 0},
    {"HTTP/1.2 is 505", "GET / HTTP/1.2\r\n\r\n", NBIO_EUNSUPPORTED,
     "HTTP version not supported", 6, {0}, 0},
    {"HTTP/0.9 is 505", "GET / HTTP/0.9\r\n\r\n", NBIO_EUNSUPPORTED,
     "HTTP version not supported", 6, {0}, 0},
    {"version without a dot", "GET / HTTP/11\r\n\r\n", NBIO_EPROTOCOL,
     "malformed HTTP version in the request line", 6, {0}, 0},
    {"lower-case version", "GET / http/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "malformed HTTP version in the request line", 6, {0}, 0},
    {"HTTP/0.9 style request (no version)", "GET /\r\n\r\n", NBIO_EPROTOCOL,
     "request line without an HTTP version", 5, {0}, 0},
    {"method only", "GET\r\n\r\n", NBIO_EPROTOCOL, "request line without a target", 3, {0}, 0},
    {"two spaces after the method", "GET  / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "empty request target", 4, {0}, 0},
    {"space inside the target", "GET /a b HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "malformed HTTP version in the request line", 7, {0}, 0},
    {"trailing space after the version", "GET / HTTP/1.1 \r\n\r\n", NBIO_EPROTOCOL,
     "malformed HTTP version in the request line", 6, {0}, 0},
    {"tab as a separator", "GET\t/ HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "invalid character in the method", 3, {0}, 0},
    {"tab inside the target", "GET /a\tb HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "whitespace in the request target", 6, {0}, 0},
    {"leading space", " GET / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL, "empty method", 0, {0}, 0},
    {"non-token method", "G(T / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "invalid character in the method", 1, {0}, 0},
    {"NUL in the target", "GET /\0 HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "control character in the head", 5, {0}, 19},
    {"DEL in the method", "GE\x7f / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "DEL character in the head", 2, {0}, 0},
    {"obs-fold", "GET / HTTP/1.1\r\nA: b\r\n\tc\r\n\r\n", NBIO_EPROTOCOL,
     "obsolete line folding (a field line starts with whitespace)", 22, {0}, 0},
    {"space before the colon (smuggling: 'Transfer-Encoding :')",
     "POST / HTTP/1.1\r\nTransfer-Encoding : chunked\r\n\r\n", NBIO_EPROTOCOL,
     "whitespace between the header name and colon", 34, {0}, 0},
    {"five leading CRLF", "\r\n\r\n\r\n\r\n\r\nGET / HTTP/1.1\r\n\r\n", NBIO_EPROTOCOL,
     "too many empty lines before the start line", 8, {0}, 0},
    /* limits */
    {"request line at the limit", "GET /abcdefgh HTTP/1.1\r\n\r\n", ALL, "GET /abcdefgh 1 |", 0,
     {.max_line = 22}, 0},
    {"request line over the limit (414)", "GET /abcdefghi HTTP/1.1\r\n\r\n", NBIO_ETOOLARGE,
     "request line longer than the limit", 22, {.max_line = 22}, 0},
    {"request line over the limit, no line end yet", "GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
     NBIO_ETOOLARGE, "request line longer than the limit", 22, {.max_line = 22}, 0},
    {"field line over the limit (431)", "GET / HTTP/1.1\r\nCookie: 0123456789abcdef\r\n\r\n",
     NBIO_ETOOLARGE, "header field line longer than the limit", 16 + 20, {.max_line = 20}, 0},
    {"head over the limit (431)", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", NBIO_ETOOLARGE,
     "header block larger than the limit", 29, {.max_head = 29}, 0},
    {"too many header fields (431)", "GET / HTTP/1.1\r\nA: 1\r\nB: 2\r\n\r\n", NBIO_ETOOLARGE,
     "too many header fields", 22, {.max_headers = 1}, 0},
};

static void test_responses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof responses / sizeof responses[0]; i++)
        check_head(&responses[i], false);
}

static void test_requests(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof requests / sizeof requests[0]; i++)
        check_head(&requests[i], true);
}

/* Default limits: 100 headers pass, 101 do not; 64 KiB. */
static void test_default_limits(void **state)
{
    (void)state;
    static char buf[80000];
    nbio_http_header f[NBIO__HTTP_MAX_HEADERS];
    nbio_http_head h = {.headers = f};
    const char *why = NULL;
    size_t where = 0;
    for (int n = 100; n <= 101; n++) {
        size_t len = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
        for (int i = 0; i < n; i++)
            len += (size_t)sprintf(buf + len, "X-%d: %d\r\n", i, i);
        len += (size_t)sprintf(buf + len, "\r\n");
        int r = nbio__http_parse_request(buf, len, 0, &h, NULL, &why, &where);
        if (n == 100) {
            assert_int_equal(r, (int)len);
            assert_int_equal(h.num_headers, 100);
        } else {
            assert_int_equal(r, NBIO_ETOOLARGE);
            assert_ptr_equal(why, nbio__http_why_too_many_headers);
            assert_int_equal(nbio__http_error_status(r, why), 431);
        }
    }
    /* An 8 KiB target passes, 8 KiB + 1 is 414. */
    for (size_t tl = 8192 - 13; tl <= 8192 - 12; tl++) {
        size_t len = 0;
        memcpy(buf, "GET /", 5);
        len = 5;
        memset(buf + len, 'a', tl - 1);
        len += tl - 1;
        len += (size_t)sprintf(buf + len, " HTTP/1.1\r\n\r\n");
        int r = nbio__http_parse_request(buf, len, 0, &h, NULL, &why, &where);
        if (tl == 8192 - 13) {
            assert_int_equal(r, (int)len);
        } else {
            assert_int_equal(r, NBIO_ETOOLARGE);
            assert_ptr_equal(why, nbio__http_why_request_line_too_long);
            assert_int_equal(where, 8192);
            assert_int_equal(nbio__http_error_status(r, why), 414);
        }
    }
    /* A 64 KiB head (many 8 KiB lines) fails with 431 once it passes 64 KiB. */
    size_t len = (size_t)sprintf(buf, "GET / HTTP/1.1\r\n");
    for (int i = 0; len < 70000; i++) {
        len += (size_t)sprintf(buf + len, "X-%02d: ", i);
        memset(buf + len, 'v', 4000);
        len += 4000;
        len += (size_t)sprintf(buf + len, "\r\n");
    }
    int r = nbio__http_parse_request(buf, len, 0, &h, NULL, &why, &where);
    assert_int_equal(r, NBIO_ETOOLARGE);
    assert_ptr_equal(why, nbio__http_why_head_too_large);
    assert_int_equal(where, 65536);
    /* The same, byte by byte in 1000-byte steps with resume. */
    size_t prev = 0;
    for (size_t n = 1000;; n += 1000) {
        if (n > len)
            n = len;
        r = nbio__http_parse_request(buf, n, prev, &h, NULL, &why, &where);
        if (r != 0 || n == len)
            break;
        prev = n;
    }
    assert_int_equal(r, NBIO_ETOOLARGE);
    assert_ptr_equal(why, nbio__http_why_head_too_large);
}

/* A slowloris: a 256 KiB head (max_head raised) of 8 KiB lines sent one
 * byte per call. Each call looks at the new byte and back to the start of
 * the unfinished line only, so this takes milliseconds (a parser that
 * rescanned the head on every call would take minutes). */
static void test_slowloris(void **state)
{
    (void)state;
    size_t cap = 300000;
    char *buf = malloc(cap);
    size_t len = (size_t)sprintf(buf, "POST /upload HTTP/1.1\r\n");
    for (int i = 0; len < 256 * 1024; i++) {
        len += (size_t)sprintf(buf + len, "X-%02d: ", i);
        memset(buf + len, 'v', 8000);
        len += 8000;
        len += (size_t)sprintf(buf + len, "\r\n");
    }
    len += (size_t)sprintf(buf + len, "\r\n");
    nbio__http_limits lim = {.max_head = 1 << 20};
    nbio_http_header f[NBIO__HTTP_MAX_HEADERS];
    nbio_http_head h = {.headers = f};
    const char *why = NULL;
    size_t where, prev = 0;
    int r = 0;
    int64_t t0 = nbio_now_ms();
    for (size_t i = 1; i <= len && r == 0; i++) {
        r = nbio__http_parse_request(buf, i, prev, &h, &lim, &why, &where);
        prev = i;
    }
    int64_t ms = nbio_now_ms() - t0;
    print_message("slowloris: %zu bytes one per call in %lld ms\n", len, (long long)ms);
    assert_int_equal(r, (int)len);
    assert_int_equal(h.num_headers, 33);
    assert_true(ms < 20000);
    /* A caller that passes a wrong prev_len gets no memory error. */
    r = nbio__http_parse_request(buf, 100, 99999, &h, &lim, &why, &where);
    assert_true(r == 0);
    r = nbio__http_parse_request(buf, len, len - 3, &h, &lim, &why, &where);
    assert_int_equal(r, (int)len);
    free(buf);
}

/* Server status codes from (error, why). */
static void test_error_status(void **state)
{
    (void)state;
    const char *why = NULL;
    size_t where;
    nbio_http_header f[4];
    nbio_http_head h = {.headers = f};
    nbio__http_limits lim = {.max_headers = 4, .max_line = 30, .max_head = 200};
    struct {
        const char *in;
        int status;
    } t[] = {
        {"GET / HTTP/1.1\r\nA: b\r\n\r\n", 0},
        {"GET / HTTP/2.0\r\n\r\n", 505},
        {"GET /aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa HTTP/1.1\r\n\r\n", 414},
        {"GET / HTTP/1.1\r\nA: bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb\r\n\r\n", 431},
        {"GET / HTTP/1.1\r\nA: 1\r\nA: 1\r\nA: 1\r\nA: 1\r\nA: 1\r\n\r\n", 431},
        {"GET / HTTP/1.1\r\nA : b\r\n\r\n", 400},
        {"GET / HTTP/1.1\nA: b\r\n\r\n", 400},
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        int r = nbio__http_parse_request(t[i].in, strlen(t[i].in), 0, &h, &lim, &why, &where);
        if (t[i].status == 0)
            assert_true(r > 0);
        else
            assert_int_equal(nbio__http_error_status(r, why), t[i].status);
    }
    assert_int_equal(nbio__http_error_status(NBIO_EUNSUPPORTED, nbio__http_why_unknown_coding),
                     501);
    assert_int_equal(nbio__http_error_status(NBIO_EPROTOCOL, "anything"), 400);
}

/* Resume in arbitrary steps (not only one byte): every split of a head
 * into two calls gives the one-call result. */
static void test_resume_two_pieces(void **state)
{
    (void)state;
    const char *in = "HTTP/1.1 301 Moved Permanently\r\nServer: nginx\r\nDate: Tue, 01 Jan "
                     "2030 00:00:00 GMT\r\nLocation: https://example.com/\r\nConnection: "
                     "keep-alive\r\nContent-Length: 0\r\n\r\n";
    size_t len = strlen(in);
    nbio_http_header f[10];
    nbio_http_head h = {.headers = f};
    const char *why;
    size_t where;
    for (size_t cut = 0; cut <= len; cut++) {
        int r0 = nbio__http_parse_response(in, cut, 0, &h, NULL, &why, &where);
        assert_int_equal(r0, cut == len ? (int)len : 0);
        int r = nbio__http_parse_response(in, len, cut == len ? 0 : cut, &h, NULL, &why, &where);
        assert_int_equal(r, (int)len);
        assert_int_equal(h.status, 301);
        assert_int_equal(h.num_headers, 5);
        assert_true(nbio_http_slice_eq(h.headers[4].value, "0"));
    }
}

/* ---- trailers / bare field sections ------------------------------------- */

static void test_parse_fields(void **state)
{
    (void)state;
    nbio_http_header f[4];
    size_t n = 99, where;
    const char *why = NULL;
    assert_int_equal(nbio__http_parse_fields("\r\n", 2, f, &n, NULL, &why, &where), 2);
    assert_int_equal(n, 0);
    const char *t = "Expires: never\r\nX-Sum:  abc \r\n\r\nrest";
    assert_int_equal(nbio__http_parse_fields(t, strlen(t), f, &n, NULL, &why, &where),
                     (int)strlen(t) - 4);
    assert_int_equal(n, 2);
    assert_true(nbio_http_slice_eq(f[1].value, "abc"));
    assert_int_equal(nbio__http_parse_fields(t, 10, f, &n, NULL, &why, &where), 0);
    assert_int_equal(nbio__http_parse_fields("A: b\n\r\n", 7, f, &n, NULL, &why, &where),
                     NBIO_EPROTOCOL);
    assert_string_equal(why, "bare LF line ending in the trailer section");
    assert_int_equal(nbio__http_parse_fields(" A: b\r\n\r\n", 9, NULL, &n, NULL, &why, &where),
                     NBIO_EPROTOCOL);
    nbio__http_limits lim = {.max_headers = 1};
    assert_int_equal(nbio__http_parse_fields("A: 1\r\nB: 2\r\n\r\n", 14, NULL, &n, &lim, &why,
                                             &where),
                     NBIO_ETOOLARGE);
    assert_ptr_equal(why, nbio__http_why_too_many_headers);
}

/* ---- the public model --------------------------------------------------- */

static void test_model(void **state)
{
    (void)state;
    const char *in = "HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\ncontent-type: text/plain\r\n"
                     "SET-COOKIE: b=2\r\nX-Empty:\r\n\r\n";
    nbio_http_header f[8];
    nbio_http_head h = {.headers = f};
    const char *why;
    size_t where;
    assert_true(nbio__http_parse_response(in, strlen(in), 0, &h, NULL, &why, &where) > 0);
    const nbio_http_slice *v = nbio_http_header_find(&h, "Content-Type", NULL);
    assert_non_null(v);
    assert_true(nbio_http_slice_eq(*v, "text/plain"));
    assert_false(nbio_http_slice_eq(*v, "Text/plain"));
    assert_true(nbio_http_slice_ieq(*v, "TEXT/PLAIN"));
    assert_false(nbio_http_slice_ieq(*v, "text/plai"));
    assert_null(nbio_http_header_find(&h, "content-typ", NULL));
    assert_null(nbio_http_header_find(NULL, "a", NULL));
    size_t i = 0;
    const char *want[] = {"a=1", "b=2"};
    int k = 0;
    while ((v = nbio_http_header_find(&h, "set-cookie", &i)) != NULL) {
        assert_true(k < 2);
        assert_true(nbio_http_slice_eq(*v, want[k++]));
    }
    assert_int_equal(k, 2);
    assert_int_equal(i, 3);
    v = nbio_http_header_find(&h, "x-empty", NULL);
    assert_non_null(v);
    assert_int_equal(v->len, 0);
    assert_true(nbio_http_slice_eq(*v, ""));
    nbio_http_slice none = {NULL, 0};
    assert_true(nbio_http_slice_eq(none, ""));
    assert_true(nbio_http_slice_ieq(none, ""));
    /* Only A-Z fold: other bytes must match exactly. */
    nbio_http_slice at = {"@[", 2};
    assert_false(nbio_http_slice_ieq(at, "`{"));
    assert_true(nbio__http_list_has((nbio_http_slice){"a, Keep-Alive ,,b", 17}, "keep-alive"));
    assert_false(nbio__http_list_has((nbio_http_slice){"keep-alive-x", 12}, "keep-alive"));
    assert_false(nbio__http_list_has((nbio_http_slice){"\"a,close\"", 9}, "close"));
}

/* ---- chunked ------------------------------------------------------------ */

typedef struct chunked_case {
    const char *comment;
    const char *in;
    size_t in_len;       /* 0: strlen(in) */
    int result;          /* 1 done, 0 more, < 0 error */
    const char *payload; /* decoded bytes (before the error for errors) */
    size_t payload_len;  /* 0: strlen(payload) */
    const char *trailers_or_why;
    size_t end; /* done: where the message ended (0: the input's end); error: its offset */
} chunked_case;

/* Feeds in[] in pieces (cuts[] are the piece ends, ascending, the last one
 * the input's length) the way a session does: unconsumed bytes move to the
 * front and the next piece is appended. Returns the result; fills the
 * payload, the trailers and the end (or the error offset), both counted in
 * the whole input. */
static int feed_chunked(const char *in, size_t len, const size_t *cuts, size_t ncuts,
                        char *payload, size_t *plen, char *trailers, size_t *tlen, size_t *end,
                        const char **why, size_t max_line, size_t max_trailer)
{
    nbio__chunked c;
    nbio__chunked_init(&c, max_line, max_trailer);
    char *buf = malloc(len + 1);
    size_t have = 0, base = 0, fed = 0; /* buf holds in[base, base + have) */
    *plen = 0;
    *tlen = 0;
    int r = 0;
    for (size_t k = 0; k < ncuts; k++) {
        memcpy(buf + have, in + fed, cuts[k] - fed);
        have += cuts[k] - fed;
        fed = cuts[k];
        /* An exact-size heap copy so ASan catches reads past the end. */
        char *piece = malloc(have ? have : 1);
        memcpy(piece, buf, have);
        size_t out, used;
        nbio_http_slice tr = {NULL, 0};
        r = nbio__chunked_decode(&c, piece, have, &out, &used, &tr, why);
        assert_true(out <= used || r < 0);
        assert_true(used <= have);
        memcpy(payload + *plen, piece, out);
        *plen += out;
        if (r == 1) {
            assert_true(tr.data >= piece + out && tr.data + tr.len == piece + used);
            memcpy(trailers, tr.data, tr.len);
            *tlen = tr.len;
        }
        if (r != 0) {
            *end = base + used;
            free(piece);
            break;
        }
        memmove(buf, piece + used, have - used);
        base += used;
        have -= used;
        free(piece);
    }
    free(buf);
    return r;
}

static const chunked_case chunked_cases[] = {
    {"one chunk", "5\r\nhello\r\n0\r\n\r\n", 0, 1, "hello", 0, "\r\n", 0},
    {"two chunks, upper and lower hex", "a\r\n0123456789\r\nA\r\nabcdefghij\r\n0\r\n\r\n", 0, 1,
     "0123456789abcdefghij", 0, "\r\n", 0},
    {"empty body", "0\r\n\r\n", 0, 1, "", 0, "\r\n", 0},
    {"leading zeros, last chunk 000", "0003\r\nabc\r\n000\r\n\r\n", 0, 1, "abc", 0, "\r\n", 0},
    {"extensions everywhere",
     "3;a=b;c\r\nabc\r\n2 ; name = \"q\\\"uo;ted\" ;x\r\nde\r\n0;last=\"\"\r\n\r\n", 0, 1, "abcde", 0,
     "\r\n", 0},
    {"trailers", "1\r\nx\r\n0\r\nExpires: never\r\nX-Sum: 1\r\n\r\n", 0, 1, "x", 0,
     "Expires: never\r\nX-Sum: 1\r\n\r\n", 0},
    {"CRLF inside chunk data is data", "4\r\n\r\n\r\n\r\n0\r\n\r\n", 0, 1, "\r\n\r\n", 0, "\r\n", 0},
    {"binary data", "3\r\n\0\xff\n\r\n0\r\n\r\n", 13, 1, "\0\xff\n", 3, "\r\n", 0},
    {"a big chunk size (not all of it sent)", "fffffffff\r\nabc", 0, 0, "abc", 0, NULL, 0},
    {"max chunk size 2^60", "1000000000000000\r\nab", 0, 0, "ab", 0, NULL, 0},
    {"next message follows", "2\r\nhi\r\n0\r\n\r\nHTTP/1.1 200 OK\r\n", 0, 1, "hi", 0, "\r\n", 12},
    {"incomplete trailer", "2\r\nhi\r\n0\r\nA: b\r\n", 0, 0, "hi", 0, NULL, 0},
    /* errors */
    {"empty chunk size", "\r\nabc", 0, NBIO_EPROTOCOL, "", 0, "empty chunk size", 0},
    {"extension without a size", ";a\r\n", 0, NBIO_EPROTOCOL, "", 0, "empty chunk size", 0},
    {"non-hex size", "g\r\n", 0, NBIO_EPROTOCOL, "", 0, "chunk size is not hex", 0},
    {"0x prefix", "0x5\r\nhello\r\n0\r\n\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "invalid character after the chunk size", 1},
    {"sign", "+5\r\n", 0, NBIO_EPROTOCOL, "", 0, "chunk size is not hex", 0},
    {"size above 2^60", "1000000000000001\r\n", 0, NBIO_EPROTOCOL, "", 0, "chunk size too large",
     15},
    {"size overflowing 64 bits", "10000000000000000\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "chunk size too large", 16},
    {"bare LF after the size", "5\nhello\r\n0\r\n\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "invalid character after the chunk size", 1},
    {"bare CR after the size", "5\rhello", 0, NBIO_EPROTOCOL, "", 0, "bare CR in a chunk-size line",
     2},
    {"whitespace after the size without an extension", "5 \r\nhello\r\n0\r\n\r\n", 0,
     NBIO_EPROTOCOL, "", 0, "malformed chunk extension", 2},
    {"extension without a name", "5;=x\r\n", 0, NBIO_EPROTOCOL, "", 0, "malformed chunk extension",
     2},
    {"extension value missing", "5;a=\r\n", 0, NBIO_EPROTOCOL, "", 0, "malformed chunk extension",
     4},
    {"control byte in a quoted extension", "5;a=\"\x01\"\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "control character in a chunk extension", 5},
    {"unterminated quote runs into CR", "5;a=\"x\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "control character in a chunk extension", 6},
    {"data longer than its size", "3\r\nabcd\r\n0\r\n\r\n", 0, NBIO_EPROTOCOL, "abc", 0,
     "chunk data not followed by CRLF", 6},
    {"data CR without LF", "3\r\nabc\rx", 0, NBIO_EPROTOCOL, "abc", 0,
     "chunk data not followed by CRLF", 7},
    {"data followed by LF only", "3\r\nabc\n0\r\n\r\n", 0, NBIO_EPROTOCOL, "abc", 0,
     "chunk data not followed by CRLF", 6},
    {"bare LF ending the body", "0\r\n\n", 0, NBIO_EPROTOCOL, "", 0, "bare LF in the trailer section",
     3},
    {"bare CR in trailers", "0\r\nA: b\rc\r\n\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "bare CR in the trailer section", 7},
    {"malformed trailer line", "0\r\nA b\r\n\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "invalid character in a header name", 4},
    {"obs-fold in trailers", "0\r\nA: b\r\n c\r\n\r\n", 0, NBIO_EPROTOCOL, "", 0,
     "obsolete line folding (a field line starts with whitespace)", 9},
    {"NUL in trailers", "0\r\nA: \0\r\n\r\n", 9, NBIO_EPROTOCOL, "", 0,
     "control character in the trailer section", 6},
};

static void check_chunked(const chunked_case *c)
{
    size_t len = c->in_len ? c->in_len : strlen(c->in);
    size_t cuts[1024];
    char payload[1024], trailers[1024];
    /* Whole, then every two-piece split, then one byte at a time. */
    for (size_t mode = 0; mode <= len + 1; mode++) {
        size_t n = 0;
        if (mode == 0) {
            cuts[n++] = len;
        } else if (mode <= len) {
            cuts[n++] = mode;
            if (mode < len)
                cuts[n++] = len;
        } else {
            for (size_t i = 1; i <= len; i++)
                cuts[n++] = i;
        }
        size_t plen, tlen, end = 0;
        const char *why = NULL;
        int r = feed_chunked(c->in, len, cuts, n, payload, &plen, trailers, &tlen, &end, &why, 0,
                             0);
        if (r != c->result)
            fail_msg("%s (split %zu): result %d, want %d (%s)", c->comment, mode, r, c->result,
                     r < 0 ? why : "-");
        size_t want_plen = c->payload_len ? c->payload_len : strlen(c->payload);
        if (plen != want_plen || memcmp(payload, c->payload, plen) != 0)
            fail_msg("%s (split %zu): payload %.*s", c->comment, mode, (int)plen, payload);
        if (r == 1) {
            size_t tl = strlen(c->trailers_or_why);
            if (tlen != tl || memcmp(trailers, c->trailers_or_why, tl) != 0)
                fail_msg("%s (split %zu): trailers %.*s", c->comment, mode, (int)tlen, trailers);
            /* The message ends after the trailer section's final CRLF. */
            if (end != (c->end ? c->end : len))
                fail_msg("%s (split %zu): ended at %zu", c->comment, mode, end);
        } else if (r < 0) {
            if (strcmp(why, c->trailers_or_why) != 0)
                fail_msg("%s (split %zu): why %s", c->comment, mode, why);
            if (end != c->end)
                fail_msg("%s (split %zu): error at %zu, want %zu", c->comment, mode, end, c->end);
        }
    }
}

static void test_chunked_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof chunked_cases / sizeof chunked_cases[0]; i++)
        check_chunked(&chunked_cases[i]);
}

/* A longer body: many chunks of varied sizes with extensions and trailers,
 * split at every byte boundary into two pieces and into three. */
static void test_chunked_long(void **state)
{
    (void)state;
    static char in[8192], want[8192], payload[8192], trailers[1024];
    size_t len = 0, wl = 0;
    for (int i = 0; i < 40; i++) {
        size_t n = (size_t)(i * 7) % 61;
        if (n == 0)
            n = 1;
        len += (size_t)sprintf(in + len, i % 3 ? "%zx\r\n" : "%zX;i=%d\r\n", n, i);
        for (size_t k = 0; k < n; k++)
            want[wl + k] = in[len + k] = (char)('a' + (i + (int)k) % 26);
        wl += n;
        len += n;
        len += (size_t)sprintf(in + len, "\r\n");
    }
    const char *tail = "0\r\nX-Checksum: abc\r\nX-More: 1\r\n\r\n";
    len += (size_t)sprintf(in + len, "%s", tail);
    size_t total = len;
    len += (size_t)sprintf(in + len, "NEXT");
    size_t cuts[4];
    for (size_t a = 0; a <= len; a++) {
        for (size_t b = a; b <= len; b += (a % 7) + 13) {
            size_t n = 0;
            cuts[n++] = a;
            cuts[n++] = b;
            cuts[n++] = len;
            size_t plen, tlen, end = 0;
            const char *why = NULL;
            int r = feed_chunked(in, len, cuts, n, payload, &plen, trailers, &tlen, &end, &why,
                                 0, 0);
            assert_int_equal(r, 1);
            assert_int_equal(plen, wl);
            assert_memory_equal(payload, want, wl);
            assert_int_equal(end, total);
            assert_int_equal(tlen, strlen(tail) - 3);
            assert_memory_equal(trailers, tail + 3, tlen);
        }
    }
}

static void test_chunked_limits(void **state)
{
    (void)state;
    char payload[256], trailers[256];
    size_t plen, tlen, end;
    const char *why;
    size_t cut;
    /* A chunk-size line of exactly max_line bytes passes, one more fails. */
    const char *ok = "1;abcdef\r\nx\r\n0\r\n\r\n";
    cut = strlen(ok);
    assert_int_equal(feed_chunked(ok, cut, &cut, 1, payload, &plen, trailers, &tlen, &end, &why,
                                  8, 0),
                     1);
    assert_int_equal(feed_chunked(ok, cut, &cut, 1, payload, &plen, trailers, &tlen, &end, &why,
                                  7, 0),
                     NBIO_ETOOLARGE);
    assert_string_equal(why, "chunk-size line longer than the limit");
    assert_int_equal(end, 7);
    /* Leading zeros count too. */
    const char *zeros = "000000000001\r\nx\r\n0\r\n\r\n";
    cut = strlen(zeros);
    assert_int_equal(feed_chunked(zeros, cut, &cut, 1, payload, &plen, trailers, &tlen, &end,
                                  &why, 8, 0),
                     NBIO_ETOOLARGE);
    /* The trailer section at its limit passes, one byte over fails. */
    const char *tr = "0\r\nA: b\r\n\r\n"; /* section: 8 bytes */
    cut = strlen(tr);
    assert_int_equal(feed_chunked(tr, cut, &cut, 1, payload, &plen, trailers, &tlen, &end, &why,
                                  0, 8),
                     1);
    assert_int_equal(feed_chunked(tr, cut, &cut, 1, payload, &plen, trailers, &tlen, &end, &why,
                                  0, 7),
                     NBIO_ETOOLARGE);
    assert_string_equal(why, "trailer section larger than the limit");
    assert_int_equal(end, 3 + 7);
    /* Also when it arrives byte by byte (the section is kept unconsumed). */
    size_t cuts[64];
    for (size_t i = 0; i < cut; i++)
        cuts[i] = i + 1;
    assert_int_equal(feed_chunked(tr, cut, cuts, cut, payload, &plen, trailers, &tlen, &end, &why,
                                  0, 7),
                     NBIO_ETOOLARGE);
    assert_int_equal(end, 3 + 7);
}

/* After the end, a call consumes nothing; after an error, it repeats it. */
static void test_chunked_sticky(void **state)
{
    (void)state;
    nbio__chunked c;
    nbio__chunked_init(&c, 0, 0);
    char a[] = "0\r\n\r\nGET";
    size_t out, used;
    nbio_http_slice tr;
    const char *why = NULL;
    assert_int_equal(nbio__chunked_decode(&c, a, 8, &out, &used, &tr, &why), 1);
    assert_int_equal(used, 5);
    assert_int_equal(nbio__chunked_decode(&c, a + 5, 3, &out, &used, &tr, &why), 1);
    assert_int_equal(used, 0);
    assert_int_equal(out, 0);
    assert_null(tr.data);
    char b[] = "z\r\n";
    nbio__chunked_init(&c, 0, 0);
    assert_int_equal(nbio__chunked_decode(&c, b, 3, &out, &used, NULL, &why), NBIO_EPROTOCOL);
    why = NULL;
    assert_int_equal(nbio__chunked_decode(&c, b, 3, &out, &used, NULL, &why), NBIO_EPROTOCOL);
    assert_string_equal(why, "chunk size is not hex");
    /* In place: payload moves to the front, the trailer stays behind it. */
    char d[] = "3\r\nabc\r\n2\r\nde\r\n0\r\nT: 1\r\n\r\n";
    nbio__chunked_init(&c, 0, 0);
    assert_int_equal(nbio__chunked_decode(&c, d, strlen(d), &out, &used, &tr, &why), 1);
    assert_int_equal(out, 5);
    assert_memory_equal(d, "abcde", 5);
    assert_int_equal(used, strlen(d));
    assert_int_equal(tr.len, 8);
    assert_memory_equal(tr.data, "T: 1\r\n\r\n", 8);
}

/* ---- body framing -------------------------------------------------------- */

typedef struct body_case {
    const char *comment;
    const char *head; /* a request or response head */
    const char *req_method;
    int result;
    nbio__body_kind kind;
    uint64_t length;
    bool keep_alive;
    const char *why;
} body_case;

#define RESP(s, hdrs) "HTTP/1.1 " s "\r\n" hdrs "\r\n"
#define RESP10(s, hdrs) "HTTP/1.0 " s "\r\n" hdrs "\r\n"
#define REQ(m, hdrs) m " / HTTP/1.1\r\n" hdrs "\r\n"
#define REQ10(m, hdrs) m " / HTTP/1.0\r\n" hdrs "\r\n"
#define NONE_ NBIO__BODY_NONE
#define LEN NBIO__BODY_LENGTH
#define CHUNKED NBIO__BODY_CHUNKED
#define CLOSE NBIO__BODY_CLOSE
#define TUNNEL NBIO__BODY_TUNNEL

static const body_case body_cases[] = {
    /* responses */
    {"200 with Content-Length", RESP("200 OK", "Content-Length: 42\r\n"), "GET", 0, LEN, 42, true,
     NULL},
    {"200 Content-Length 0", RESP("200 OK", "Content-Length: 0\r\n"), "GET", 0, LEN, 0, true, NULL},
    {"200 chunked", RESP("200 OK", "Transfer-Encoding: chunked\r\n"), "GET", 0, CHUNKED, 0, true,
     NULL},
    {"200 no framing: until close", RESP("200 OK", ""), "GET", 0, CLOSE, 0, false, NULL},
    {"HEAD: no body despite Content-Length", RESP("200 OK", "Content-Length: 1000\r\n"), "HEAD", 0,
     NONE_, 0, true, NULL},
    {"HEAD: no body despite chunked", RESP("200 OK", "Transfer-Encoding: chunked\r\n"), "HEAD", 0,
     NONE_, 0, true, NULL},
    {"100 Continue", RESP("100 Continue", ""), "POST", 0, NONE_, 0, true, NULL},
    {"103 Early Hints", RESP("103 Early Hints", "Link: </a>\r\n"), "GET", 0, NONE_, 0, true, NULL},
    {"204 ignores Content-Length", RESP("204 No Content", "Content-Length: 10\r\n"), "GET", 0,
     NONE_, 0, true, NULL},
    {"304", RESP("304 Not Modified", "Content-Length: 10\r\n"), "GET", 0, NONE_, 0, true, NULL},
    {"101 Switching Protocols", RESP("101 Switching Protocols", "Upgrade: websocket\r\n"), "GET",
     0, TUNNEL, 0, false, NULL},
    {"CONNECT 200 is a tunnel", RESP("200 Connection established", "Content-Length: 5\r\n"),
     "CONNECT", 0, TUNNEL, 0, false, NULL},
    {"CONNECT 407 has a body", RESP("407 Proxy Auth", "Content-Length: 5\r\n"), "CONNECT", 0, LEN,
     5, true, NULL},
    {"TE and CL: TE wins, connection closes after",
     RESP("200 OK", "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n"), "GET", 0, CHUNKED, 0,
     false, NULL},
    {"TE gzip, chunked", RESP("200 OK", "Transfer-Encoding: gzip, chunked\r\n"), "GET", 0,
     CHUNKED, 0, true, NULL},
    {"TE over two lines", RESP("200 OK", "Transfer-Encoding: gzip\r\nTransfer-Encoding: Chunked\r\n"),
     "GET", 0, CHUNKED, 0, true, NULL},
    {"TE chunked, gzip: until close", RESP("200 OK", "Transfer-Encoding: chunked, gzip\r\n"),
     "GET", 0, CLOSE, 0, false, NULL},
    {"TE gzip only: until close", RESP("200 OK", "Transfer-Encoding: gzip\r\n"), "GET", 0, CLOSE,
     0, false, NULL},
    {"TE unknown coding then chunked: the framing is still chunked",
     RESP("200 OK", "Transfer-Encoding: br, chunked\r\n"), "GET", 0, CHUNKED, 0, true, NULL},
    {"TE chunked twice", RESP("200 OK", "Transfer-Encoding: chunked, chunked\r\n"), "GET",
     NBIO_EPROTOCOL, 0, 0, 0, "chunked transfer coding applied more than once"},
    {"TE empty", RESP("200 OK", "Transfer-Encoding: , \r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "empty Transfer-Encoding"},
    {"TE with garbage", RESP("200 OK", "Transfer-Encoding: chunked x\r\n"), "GET",
     NBIO_EPROTOCOL, 0, 0, 0, "malformed Transfer-Encoding"},
    {"TE gzip with a parameter", RESP("200 OK", "Transfer-Encoding: gzip;q=\"a,b\", chunked\r\n"),
     "GET", 0, CHUNKED, 0, true, NULL},
    {"HTTP/1.0 response with TE: no keep-alive",
     RESP10("200 OK", "Transfer-Encoding: chunked\r\nConnection: keep-alive\r\n"), "GET", 0,
     CHUNKED, 0, false, NULL},
    {"duplicate CL same value", RESP("200 OK", "Content-Length: 7\r\nContent-Length: 7\r\n"),
     "GET", 0, LEN, 7, true, NULL},
    {"CL list same value", RESP("200 OK", "Content-Length: 7, 7,7\r\n"), "GET", 0, LEN, 7, true,
     NULL},
    {"duplicate CL different values",
     RESP("200 OK", "Content-Length: 7\r\nContent-Length: 8\r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "conflicting Content-Length values"},
    {"CL list different values", RESP("200 OK", "Content-Length: 7, 8\r\n"), "GET",
     NBIO_EPROTOCOL, 0, 0, 0, "conflicting Content-Length values"},
    {"CL empty element", RESP("200 OK", "Content-Length: 7,,7\r\n"), "GET", NBIO_EPROTOCOL, 0, 0,
     0, "empty Content-Length"},
    {"CL empty", RESP("200 OK", "Content-Length:\r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "empty Content-Length"},
    {"CL negative", RESP("200 OK", "Content-Length: -1\r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "Content-Length is not a number"},
    {"CL plus sign", RESP("200 OK", "Content-Length: +1\r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "Content-Length is not a number"},
    {"CL hex", RESP("200 OK", "Content-Length: 0x10\r\n"), "GET", NBIO_EPROTOCOL, 0, 0, 0,
     "Content-Length is not a number"},
    {"CL with inner space", RESP("200 OK", "Content-Length: 1 2\r\n"), "GET", NBIO_EPROTOCOL, 0, 0,
     0, "Content-Length is not a number"},
    {"CL INT64_MAX", RESP("200 OK", "Content-Length: 9223372036854775807\r\n"), "GET", 0, LEN,
     9223372036854775807ull, true, NULL},
    {"CL INT64_MAX + 1", RESP("200 OK", "Content-Length: 9223372036854775808\r\n"), "GET",
     NBIO_EPROTOCOL, 0, 0, 0, "Content-Length out of range"},
    {"CL overflowing 64 bits", RESP("200 OK", "Content-Length: 99999999999999999999999\r\n"),
     "GET", NBIO_EPROTOCOL, 0, 0, 0, "Content-Length out of range"},
    {"CL leading zeros", RESP("200 OK", "Content-Length: 007\r\n"), "GET", 0, LEN, 7, true, NULL},
    {"Connection: close", RESP("200 OK", "Content-Length: 1\r\nConnection: close\r\n"), "GET", 0,
     LEN, 1, false, NULL},
    {"Connection: token list with Close", RESP("200 OK",
                                               "Content-Length: 1\r\nConnection: upgrade, Close\r\n"),
     "GET", 0, LEN, 1, false, NULL},
    {"close in a second Connection line",
     RESP("200 OK", "Content-Length: 1\r\nConnection: te\r\nConnection: close\r\n"), "GET", 0,
     LEN, 1, false, NULL},
    {"HTTP/1.0 default close", RESP10("200 OK", "Content-Length: 1\r\n"), "GET", 0, LEN, 1, false,
     NULL},
    {"HTTP/1.0 keep-alive", RESP10("200 OK", "Content-Length: 1\r\nConnection: Keep-Alive\r\n"),
     "GET", 0, LEN, 1, true, NULL},
    {"HTTP/1.0 keep-alive and close", RESP10("200 OK",
                                             "Content-Length: 1\r\nConnection: keep-alive, close\r\n"),
     "GET", 0, LEN, 1, false, NULL},
    {"HTTP/1.0 until close", RESP10("200 OK", "Connection: keep-alive\r\n"), "GET", 0, CLOSE, 0,
     false, NULL},
    /* requests */
    {"GET without framing", REQ("GET", "Host: a\r\n"), NULL, 0, NONE_, 0, true, NULL},
    {"POST with CL", REQ("POST", "Content-Length: 3\r\n"), NULL, 0, LEN, 3, true, NULL},
    {"POST chunked", REQ("POST", "Transfer-Encoding: chunked\r\n"), NULL, 0, CHUNKED, 0, true,
     NULL},
    {"POST gzip, chunked", REQ("POST", "Transfer-Encoding: gzip, chunked\r\n"), NULL, 0, CHUNKED,
     0, true, NULL},
    {"HEAD request with CL has a body", REQ("HEAD", "Content-Length: 2\r\n"), NULL, 0, LEN, 2,
     true, NULL},
    {"TE and CL (smuggling)", REQ("POST", "Content-Length: 3\r\nTransfer-Encoding: chunked\r\n"),
     NULL, NBIO_EPROTOCOL, 0, 0, 0, "both Content-Length and Transfer-Encoding"},
    {"TE chunked, gzip (400)", REQ("POST", "Transfer-Encoding: chunked, gzip\r\n"), NULL,
     NBIO_EPROTOCOL, 0, 0, 0, "chunked is not the final transfer coding"},
    {"TE gzip only (400)", REQ("POST", "Transfer-Encoding: gzip\r\n"), NULL, NBIO_EPROTOCOL, 0, 0,
     0, "chunked is not the final transfer coding"},
    {"TE unknown, chunked (501)", REQ("POST", "Transfer-Encoding: foo, chunked\r\n"), NULL,
     NBIO_EUNSUPPORTED, 0, 0, 0, "unknown transfer coding"},
    {"TE identity, chunked (501)", REQ("POST", "Transfer-Encoding: identity, chunked\r\n"), NULL,
     NBIO_EUNSUPPORTED, 0, 0, 0, "unknown transfer coding"},
    {"TE chunked twice", REQ("POST", "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n"),
     NULL, NBIO_EPROTOCOL, 0, 0, 0, "chunked transfer coding applied more than once"},
    {"TE chunked with parameters", REQ("POST", "Transfer-Encoding: chunked;a=b\r\n"), NULL,
     NBIO_EPROTOCOL, 0, 0, 0, "parameters on the chunked transfer coding"},
    {"TE empty", REQ("POST", "Transfer-Encoding:\r\n"), NULL, NBIO_EPROTOCOL, 0, 0, 0,
     "empty Transfer-Encoding"},
    {"TE in an HTTP/1.0 request", REQ10("POST", "Transfer-Encoding: chunked\r\n"), NULL,
     NBIO_EPROTOCOL, 0, 0, 0, "Transfer-Encoding in an HTTP/1.0 request"},
    {"TE 'xchunked'", REQ("POST", "Transfer-Encoding: xchunked\r\n"), NULL, NBIO_EPROTOCOL, 0, 0,
     0, "chunked is not the final transfer coding"},
    {"duplicate CL same", REQ("PUT", "Content-Length: 4\r\nContent-Length: 4\r\n"), NULL, 0, LEN,
     4, true, NULL},
    {"duplicate CL different (smuggling)", REQ("PUT", "Content-Length: 4\r\nContent-Length: 5\r\n"),
     NULL, NBIO_EPROTOCOL, 0, 0, 0, "conflicting Content-Length values"},
    {"request Connection: close", REQ("GET", "Connection: close\r\n"), NULL, 0, NONE_, 0, false,
     NULL},
    {"HTTP/1.0 request default close", REQ10("GET", ""), NULL, 0, NONE_, 0, false, NULL},
    {"HTTP/1.0 request keep-alive", REQ10("GET", "Connection: keep-alive\r\n"), NULL, 0, NONE_, 0,
     true, NULL},
};

static void test_body_kind(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof body_cases / sizeof body_cases[0]; i++) {
        const body_case *c = &body_cases[i];
        bool request = strncmp(c->head, "HTTP/", 5) != 0;
        nbio_http_header f[16];
        nbio_http_head h = {.headers = f};
        const char *why = NULL;
        size_t where;
        int r = request ? nbio__http_parse_request(c->head, strlen(c->head), 0, &h, NULL, &why,
                                                   &where)
                        : nbio__http_parse_response(c->head, strlen(c->head), 0, &h, NULL, &why,
                                                    &where);
        if (r <= 0)
            fail_msg("%s: head does not parse (%s)", c->comment, why);
        nbio_http_slice m = {c->req_method, c->req_method ? strlen(c->req_method) : 0};
        nbio__body_kind kind = (nbio__body_kind)-1;
        uint64_t length = 99;
        bool ka = !c->keep_alive;
        why = NULL;
        r = nbio__http_body_kind(&h, request, m, &kind, &length, &ka, &why);
        if (r != c->result)
            fail_msg("%s: result %d, want %d (%s)", c->comment, r, c->result, why ? why : "-");
        if (r < 0) {
            if (why == NULL || strcmp(why, c->why) != 0)
                fail_msg("%s: why %s, want %s", c->comment, why, c->why);
            continue;
        }
        if (kind != c->kind || length != c->length || ka != c->keep_alive)
            fail_msg("%s: kind %d length %llu keep-alive %d, want %d %llu %d", c->comment,
                     (int)kind, (unsigned long long)length, ka, (int)c->kind,
                     (unsigned long long)c->length, c->keep_alive);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_responses),
        cmocka_unit_test(test_requests),
        cmocka_unit_test(test_default_limits),
        cmocka_unit_test(test_slowloris),
        cmocka_unit_test(test_error_status),
        cmocka_unit_test(test_resume_two_pieces),
        cmocka_unit_test(test_parse_fields),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_chunked_table),
        cmocka_unit_test(test_chunked_long),
        cmocka_unit_test(test_chunked_limits),
        cmocka_unit_test(test_chunked_sticky),
        cmocka_unit_test(test_body_kind),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
