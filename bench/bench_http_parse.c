/*
 * HTTP/1.1 response-head parsing speed: nbio's codec
 * (nbio__http_parse_response, src/http/codec.h) against node's http-parser
 * (Debian's libhttp-parser-dev, 2.9) on the same corpus, in the same run.
 *
 * The corpus is 10 realistic response heads as nginx, CDNs and API servers
 * send them (5-15 header fields each, 150-700 bytes). Each side parses
 * every head whole from a buffer (the common case: a head arrives in one
 * read) and produces the same information: status, reason, every header
 * name and value as pointer + length. For http-parser that means its
 * callbacks record the slices, and on_headers_complete pauses the parser so
 * it stops at the end of the head as ours does; the parser is
 * re-initialised for each head as a session would. nbio's side uses the
 * default limits (64 KiB, 100 fields, 8 KiB lines) and a 100-entry header
 * array.
 *
 * Both sides fold what they found into a checksum (status, names and
 * values, trimmed); the run fails unless the sums agree. Time is the
 * median of --repeats runs per side (alternating, nbio first), divided by
 * the heads parsed. Target: nbio <= 1.0x http-parser's time.
 */
#define _GNU_SOURCE
#include <http_parser.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "bench_common.h"
#include "http/codec.h"

#define CRLF "\r\n"
#define DATE "Date: Fri, 27 Nov 2026 03:23:30 GMT" CRLF

static const char *const corpus[] = {
    /* nginx, a static file */
    "HTTP/1.1 200 OK" CRLF "Server: nginx/1.24.0" CRLF DATE
    "Content-Type: text/html" CRLF "Content-Length: 4521" CRLF
    "Last-Modified: Tue, 10 Nov 2026 14:02:11 GMT" CRLF "Connection: keep-alive" CRLF
    "ETag: \"6551e2f3-11a9\"" CRLF "Accept-Ranges: bytes" CRLF CRLF,
    /* nginx, 404 */
    "HTTP/1.1 404 Not Found" CRLF "Server: nginx/1.24.0" CRLF DATE
    "Content-Type: text/html" CRLF "Content-Length: 153" CRLF "Connection: keep-alive" CRLF CRLF,
    /* redirect */
    "HTTP/1.1 301 Moved Permanently" CRLF "Server: nginx" CRLF DATE
    "Content-Type: text/html" CRLF "Content-Length: 162" CRLF "Connection: keep-alive" CRLF
    "Location: https://www.example.com/docs/getting-started/index.html" CRLF CRLF,
    /* JSON API behind a proxy, CORS */
    "HTTP/1.1 200 OK" CRLF "Server: nginx/1.22.1" CRLF DATE
    "Content-Type: application/json; charset=utf-8" CRLF "Content-Length: 1337" CRLF
    "Connection: keep-alive" CRLF "Vary: Origin, Accept-Encoding" CRLF
    "Access-Control-Allow-Origin: https://app.example.com" CRLF
    "Access-Control-Allow-Credentials: true" CRLF
    "X-Request-Id: 3f2a9c1e-77b4-4e0f-9d5a-0c6b8f1e2a47" CRLF
    "Cache-Control: no-store, max-age=0" CRLF "X-Content-Type-Options: nosniff" CRLF CRLF,
    /* gzip'd chunked page */
    "HTTP/1.1 200 OK" CRLF "Server: nginx" CRLF DATE "Content-Type: text/html; charset=UTF-8" CRLF
    "Transfer-Encoding: chunked" CRLF "Connection: keep-alive" CRLF "Vary: Accept-Encoding" CRLF
    "Content-Encoding: gzip" CRLF "X-Frame-Options: SAMEORIGIN" CRLF CRLF,
    /* conditional GET */
    "HTTP/1.1 304 Not Modified" CRLF "Server: nginx/1.24.0" CRLF DATE
    "Last-Modified: Tue, 10 Nov 2026 14:02:11 GMT" CRLF "Connection: keep-alive" CRLF
    "ETag: \"6551e2f3-11a9\"" CRLF "Cache-Control: public, max-age=31536000, immutable" CRLF CRLF,
    /* login: cookies */
    "HTTP/1.1 302 Found" CRLF "Server: nginx" CRLF DATE "Content-Type: text/html; charset=utf-8" CRLF
    "Content-Length: 0" CRLF "Connection: keep-alive" CRLF "Location: /dashboard" CRLF
    "Set-Cookie: session=9b1c4e7a0f2d4c6b8e3a1f5d7c9b2e4a; Path=/; HttpOnly; Secure; SameSite=Lax" CRLF
    "Set-Cookie: csrftoken=Zx81kLmNq2Rt4VwY6; Path=/; Max-Age=31449600; Secure; SameSite=Lax" CRLF
    "Set-Cookie: lang=en; Path=/; Max-Age=31536000" CRLF "Cache-Control: no-cache, private" CRLF CRLF,
    /* a CDN edge, many headers */
    "HTTP/1.1 200 OK" CRLF DATE "Content-Type: image/webp" CRLF "Content-Length: 48211" CRLF
    "Connection: keep-alive" CRLF "Cache-Control: public, max-age=14400" CRLF
    "CF-Cache-Status: HIT" CRLF "Age: 5211" CRLF "Accept-Ranges: bytes" CRLF
    "Last-Modified: Mon, 02 Nov 2026 08:15:00 GMT" CRLF
    "Strict-Transport-Security: max-age=31536000; includeSubDomains; preload" CRLF
    "Vary: Accept" CRLF "Server: cloudflare" CRLF "CF-RAY: 8c2f1e9a7b3d4e5f-AMS" CRLF
    "Alt-Svc: h3=\":443\"; ma=86400" CRLF CRLF,
    /* range request */
    "HTTP/1.1 206 Partial Content" CRLF "Server: nginx/1.24.0" CRLF DATE
    "Content-Type: video/mp4" CRLF "Content-Length: 1048576" CRLF
    "Last-Modified: Sun, 01 Nov 2026 10:00:00 GMT" CRLF "Connection: keep-alive" CRLF
    "ETag: \"65421a80-3b9aca00\"" CRLF "Content-Range: bytes 0-1048575/1000000000" CRLF CRLF,
    /* an app server behind nginx with security headers */
    "HTTP/1.1 200 OK" CRLF "Server: nginx" CRLF DATE "Content-Type: text/html; charset=utf-8" CRLF
    "Content-Length: 28754" CRLF "Connection: keep-alive" CRLF "X-Frame-Options: DENY" CRLF
    "X-Content-Type-Options: nosniff" CRLF "Referrer-Policy: strict-origin-when-cross-origin" CRLF
    "Content-Security-Policy: default-src 'self'; img-src 'self' data: https:; script-src 'self'" CRLF
    "Permissions-Policy: geolocation=(), camera=()" CRLF "X-XSS-Protection: 0" CRLF CRLF,
};
#define NCORPUS (sizeof corpus / sizeof corpus[0])

static size_t lens[NCORPUS];

static inline uint64_t mix(uint64_t h, const char *p, size_t n)
{
    /* Cheap, order-sensitive; enough to tell the two parsers' outputs apart. */
    h = (h ^ n) * 0x100000001b3ull;
    if (n > 0)
        h = (h ^ (unsigned char)p[0] ^ ((uint64_t)(unsigned char)p[n - 1] << 8)) *
            0x9e3779b97f4a7c15ull;
    return h;
}

/* ---- nbio ------------------------------------------------------------------ */

static uint64_t run_nbio(uint64_t rounds, uint64_t *ns)
{
    nbio_http_header fields[NBIO__HTTP_MAX_HEADERS];
    nbio_http_head h = {.headers = fields};
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < NCORPUS; i++) {
            const char *why;
            size_t where;
            int n = nbio__http_parse_response(corpus[i], lens[i], 0, &h, NULL, &why, &where);
            if (n != (int)lens[i])
                bench_die("nbio: head %zu: %d (%s)", i, n, n < 0 ? why : "incomplete");
            uint64_t x = (uint64_t)h.status;
            x = mix(x, h.reason.data, h.reason.len);
            for (size_t k = 0; k < h.num_headers; k++) {
                x = mix(x, h.headers[k].name.data, h.headers[k].name.len);
                x = mix(x, h.headers[k].value.data, h.headers[k].value.len);
            }
            sum += x;
        }
    }
    *ns = bench_now_ns() - t0;
    return sum;
}

/* ---- http-parser ------------------------------------------------------------ */

typedef struct hp_ctx {
    const char *reason;
    size_t reason_len;
    size_t n;
    bool in_value;
    nbio_http_slice name[64], value[64];
} hp_ctx;

static int hp_status(http_parser *p, const char *at, size_t len)
{
    hp_ctx *c = p->data;
    c->reason = at;
    c->reason_len = len;
    return 0;
}

static int hp_field(http_parser *p, const char *at, size_t len)
{
    hp_ctx *c = p->data;
    if (c->in_value || c->n == 0) { /* a new field (whole heads: one call per field) */
        if (c->n == 64)
            return 1;
        c->name[c->n++] = (nbio_http_slice){at, len};
        c->in_value = false;
    } else {
        c->name[c->n - 1].len += len;
    }
    return 0;
}

static int hp_value(http_parser *p, const char *at, size_t len)
{
    hp_ctx *c = p->data;
    if (!c->in_value) {
        c->value[c->n - 1] = (nbio_http_slice){at, len};
        c->in_value = true;
    } else {
        c->value[c->n - 1].len += len;
    }
    return 0;
}

static int hp_headers_complete(http_parser *p)
{
    http_parser_pause(p, 1); /* stop at the end of the head, as nbio does */
    return 0;
}

static uint64_t run_http_parser(uint64_t rounds, uint64_t *ns)
{
    http_parser_settings st;
    memset(&st, 0, sizeof st);
    st.on_status = hp_status;
    st.on_header_field = hp_field;
    st.on_header_value = hp_value;
    st.on_headers_complete = hp_headers_complete;
    http_parser p;
    hp_ctx c;
    uint64_t sum = 0;
    uint64_t t0 = bench_now_ns();
    for (uint64_t r = 0; r < rounds; r++) {
        for (size_t i = 0; i < NCORPUS; i++) {
            http_parser_init(&p, HTTP_RESPONSE);
            p.data = &c;
            c.n = 0;
            c.in_value = false;
            c.reason = NULL;
            c.reason_len = 0;
            size_t n = http_parser_execute(&p, &st, corpus[i], lens[i]);
            if (HTTP_PARSER_ERRNO(&p) != HPE_PAUSED || n + 1 < lens[i])
                bench_die("http-parser: head %zu: %s after %zu bytes", i,
                          http_errno_name(HTTP_PARSER_ERRNO(&p)), n);
            uint64_t x = (uint64_t)p.status_code;
            x = mix(x, c.reason, c.reason_len);
            for (size_t k = 0; k < c.n; k++) {
                x = mix(x, c.name[k].data, c.name[k].len);
                x = mix(x, c.value[k].data, c.value[k].len);
            }
            sum += x;
        }
    }
    *ns = bench_now_ns() - t0;
    return sum;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv)
{
    bench_args a;
    bench_parse_args(argc, argv, &a, NULL);
    if (a.quick)
        a.repeats = 2;
    size_t bytes = 0, fields = 0;
    for (size_t i = 0; i < NCORPUS; i++) {
        lens[i] = strlen(corpus[i]);
        bytes += lens[i];
        for (const char *p = corpus[i]; (p = strstr(p, CRLF)) != NULL; p += 2)
            fields++;
    }
    fields -= 2 * NCORPUS; /* status lines and final empty lines */
    uint64_t rounds = bench_scaled(&a, 200000, 100);
    printf("# bench_http_parse: %zu response heads, %zu bytes, %zu header fields; %" PRIu64
           " rounds x %d repeats\n",
           NCORPUS, bytes, fields, rounds, a.repeats);

    uint64_t *tn = calloc((size_t)a.repeats, sizeof *tn);
    uint64_t *th = calloc((size_t)a.repeats, sizeof *th);
    uint64_t sn = 0, sh = 0, warm;
    run_nbio(rounds / 10 + 1, &warm); /* warm caches and branch predictors */
    run_http_parser(rounds / 10 + 1, &warm);
    for (int k = 0; k < a.repeats; k++) {
        if (a.only != 1)
            sn = run_nbio(rounds, &tn[k]);
        if (a.only != 2)
            sh = run_http_parser(rounds, &th[k]);
        if (a.verbose)
            printf("  run %d nbio=%.1f ns/head http_parser=%.1f ns/head\n", k,
                   (double)tn[k] / (double)(rounds * NCORPUS),
                   (double)th[k] / (double)(rounds * NCORPUS));
    }
    qsort(tn, (size_t)a.repeats, sizeof *tn, cmp_u64);
    qsort(th, (size_t)a.repeats, sizeof *th, cmp_u64);
    double heads = (double)(rounds * NCORPUS);
    double n_ns = (double)tn[(a.repeats - 1) / 2] / heads;
    double h_ns = (double)th[(a.repeats - 1) / 2] / heads;
    if (a.only == 0 && sn != sh) {
        printf("http_parse FAILED: nbio and http-parser found different heads "
               "(checksums %016" PRIx64 " / %016" PRIx64 ")\n", sn, sh);
        return 1;
    }
    if (a.only != 1)
        printf("http_parse nbio ns_per_head=%.1f MB/s=%.0f\n", n_ns,
               (double)bytes / NCORPUS / n_ns * 1e3);
    if (a.only != 2)
        printf("http_parse http_parser ns_per_head=%.1f MB/s=%.0f\n", h_ns,
               (double)bytes / NCORPUS / h_ns * 1e3);
    if (a.only == 0) {
        printf("http_parse ns_per_head nbio=%.1f http_parser=%.1f ratio=%.3f (median of %d; "
               "target <= 1.0)\n", n_ns, h_ns, n_ns / h_ns, a.repeats);
        printf("http_parse verify heads=%zu checksum=%016" PRIx64 " nbio==http_parser ok\n",
               NCORPUS, sn);
    }
    free(tn);
    free(th);
    return 0;
}
