/*
 * Shared body of the HTTP head harnesses (fuzz_http_request.c,
 * fuzz_http_response.c). Included once by each; everything is static.
 *
 * Input: byte 0 picks the limits (defaults, or small ones so the limit
 * paths are reached), byte 1 seeds the random split of the last property;
 * the rest is the bytes a peer sent. fuzz_http_head() abort()s when an
 * invariant breaks:
 *
 *  1. One call on all the bytes: a result > 0 is at most len and max_head;
 *     every slice lies inside the head; method and names are non-empty
 *     tokens; target and values hold what codec.h promises (no SP/CTL in
 *     the target, values trimmed, no CTL but HTAB); status 100-999; at most
 *     max_headers fields. An error is one of the codec's codes with a why
 *     and a where <= len.
 *  2. One byte per call with prev_len resume: 0 until the first non-zero
 *     result, which is the whole call's result: same head (field by field,
 *     same pointers), or same error, why pointer and where; the head is
 *     found exactly when its last byte arrives.
 *  3. Random pieces (seeded by byte 1) with resume: the same.
 *  4. A head that parses, written out again canonically, parses to the
 *     same fields; nbio__http_body_kind() and nbio_http_header_find() run
 *     on it without crashing and give sane outputs.
 */
#ifndef NBIO_FUZZ_HTTP_HEAD_H
#define NBIO_FUZZ_HTTP_HEAD_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define FZ_MAXH 128

#define FZ_CHECK(cond)                                                                 \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

typedef int (*fz_parse_fn)(const char *, size_t, size_t, nbio_http_head *,
                           const nbio__http_limits *, const char **, size_t *);

static void fz_limits(uint8_t sel, nbio__http_limits *lim)
{
    memset(lim, 0, sizeof *lim);
    if (sel & 1)
        lim->max_head = 8 + (size_t)(sel >> 1) * 3; /* 8..389 */
    if (sel & 2)
        lim->max_line = 4 + (size_t)(sel >> 2); /* 4..67 */
    if (sel & 4)
        lim->max_headers = 1 + (size_t)(sel >> 5); /* 1..8 */
}

static bool fz_inside(nbio_http_slice s, const char *buf, size_t len)
{
    return s.data != NULL && s.data >= buf && s.len <= len &&
           (size_t)(s.data - buf) <= len - s.len;
}

static bool fz_token(nbio_http_slice s)
{
    if (s.len == 0)
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (!(nbio__http_cls[(unsigned char)s.data[i]] & NBIO__HTTP_TCHAR))
            return false;
    return true;
}

static bool fz_value(nbio_http_slice s)
{
    if (s.len > 0 && (s.data[0] == ' ' || s.data[0] == '\t' || s.data[s.len - 1] == ' ' ||
                      s.data[s.len - 1] == '\t'))
        return false;
    for (size_t i = 0; i < s.len; i++)
        if (nbio__http_cls[(unsigned char)s.data[i]] & NBIO__HTTP_STOP)
            return false;
    return true;
}

static bool fz_same_slice(nbio_http_slice a, nbio_http_slice b)
{
    return a.data == b.data && a.len == b.len;
}

static bool fz_same_head(const nbio_http_head *a, const nbio_http_head *b)
{
    if (a->minor_version != b->minor_version || a->status != b->status ||
        a->num_headers != b->num_headers || !fz_same_slice(a->method, b->method) ||
        !fz_same_slice(a->target, b->target) || !fz_same_slice(a->reason, b->reason))
        return false;
    for (size_t i = 0; i < a->num_headers; i++)
        if (!fz_same_slice(a->headers[i].name, b->headers[i].name) ||
            !fz_same_slice(a->headers[i].value, b->headers[i].value))
            return false;
    return true;
}

static bool fz_eq_bytes(nbio_http_slice a, nbio_http_slice b)
{
    return a.len == b.len && (a.len == 0 || memcmp(a.data, b.data, a.len) == 0);
}

/* Property 1 on a head returned > 0. */
static void fz_check_head(const nbio_http_head *h, bool request, const char *buf, size_t r,
                          size_t max_headers)
{
    FZ_CHECK(h->num_headers <= max_headers);
    FZ_CHECK(h->minor_version >= 0 && h->minor_version <= 9);
    if (request) {
        FZ_CHECK(h->minor_version <= 1);
        FZ_CHECK(fz_inside(h->method, buf, r) && fz_token(h->method));
        FZ_CHECK(fz_inside(h->target, buf, r) && h->target.len > 0);
        for (size_t i = 0; i < h->target.len; i++) {
            unsigned char c = (unsigned char)h->target.data[i];
            FZ_CHECK(c > 0x20 && c != 0x7f);
        }
        FZ_CHECK(h->status == 0 && h->reason.data == NULL);
    } else {
        FZ_CHECK(h->status >= 100 && h->status <= 999);
        FZ_CHECK(fz_inside(h->reason, buf, r));
        for (size_t i = 0; i < h->reason.len; i++)
            FZ_CHECK(!(nbio__http_cls[(unsigned char)h->reason.data[i]] & NBIO__HTTP_STOP));
        FZ_CHECK(h->method.data == NULL && h->target.data == NULL);
    }
    for (size_t i = 0; i < h->num_headers; i++) {
        FZ_CHECK(fz_inside(h->headers[i].name, buf, r) && fz_token(h->headers[i].name));
        FZ_CHECK(fz_inside(h->headers[i].value, buf, r) && fz_value(h->headers[i].value));
    }
}

/* Writes h out canonically; returns the length, or 0 when it does not fit. */
static size_t fz_write(const nbio_http_head *h, bool request, char *out, size_t cap)
{
    size_t n = 0;
#define FZ_PUT(p, l)                         \
    do {                                     \
        if (n + (l) > cap)                   \
            return 0;                        \
        memcpy(out + n, (p), (l));           \
        n += (l);                            \
    } while (0)
    char line[64];
    if (request) {
        FZ_PUT(h->method.data, h->method.len);
        FZ_PUT(" ", 1);
        FZ_PUT(h->target.data, h->target.len);
        int k = snprintf(line, sizeof line, " HTTP/1.%d\r\n", h->minor_version);
        FZ_PUT(line, (size_t)k);
    } else {
        int k = snprintf(line, sizeof line, "HTTP/1.%d %03d ", h->minor_version, h->status);
        FZ_PUT(line, (size_t)k);
        if (h->reason.len)
            FZ_PUT(h->reason.data, h->reason.len);
        FZ_PUT("\r\n", 2);
    }
    for (size_t i = 0; i < h->num_headers; i++) {
        FZ_PUT(h->headers[i].name.data, h->headers[i].name.len);
        FZ_PUT(": ", 2);
        if (h->headers[i].value.len)
            FZ_PUT(h->headers[i].value.data, h->headers[i].value.len);
        FZ_PUT("\r\n", 2);
    }
    FZ_PUT("\r\n", 2);
#undef FZ_PUT
    return n;
}

/* Feeds buf in pieces ending at cuts[0..n) with resume; checks it
 * against the whole call's result (property 2/3). */
static void fz_pieces(fz_parse_fn parse, const char *buf, const size_t *cuts, size_t n,
                      const nbio__http_limits *lim, int whole, const nbio_http_head *wh,
                      const char *wwhy, size_t wwhere)
{
    nbio_http_header f[FZ_MAXH];
    nbio_http_head h = {.headers = f};
    size_t prev = 0;
    int r = 0;
    size_t at = 0;
    for (size_t k = 0; k < n; k++) {
        const char *why = NULL;
        size_t where = (size_t)-1;
        at = cuts[k];
        r = parse(buf, at, prev, &h, lim, &why, &where);
        if (r != 0) {
            FZ_CHECK(r == whole);
            if (r > 0) {
                FZ_CHECK(fz_same_head(&h, wh));
                /* Found when the piece with its last byte arrives. */
                FZ_CHECK((size_t)r <= at && (k == 0 || (size_t)r > cuts[k - 1]));
            } else {
                FZ_CHECK(why == wwhy && where == wwhere);
            }
            return;
        }
        prev = at;
    }
    FZ_CHECK(whole == 0);
}

static int fz_head(bool request, const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    nbio__http_limits lim;
    fz_limits(data[0], &lim);
    uint32_t seed = data[1] * 2654435761u + 1;
    const char *buf = (const char *)data + 2;
    size_t len = size - 2;
    fz_parse_fn parse = request ? nbio__http_parse_request : nbio__http_parse_response;
    size_t max_headers = lim.max_headers ? lim.max_headers : NBIO__HTTP_MAX_HEADERS;
    size_t max_head = lim.max_head ? lim.max_head : NBIO__HTTP_MAX_HEAD;

    /* 1: one call. */
    nbio_http_header f[FZ_MAXH];
    nbio_http_head h = {.headers = f};
    const char *why = NULL;
    size_t where = (size_t)-1;
    int r = parse(buf, len, 0, &h, &lim, &why, &where);
    if (r > 0) {
        FZ_CHECK((size_t)r <= len && (size_t)r <= max_head);
        fz_check_head(&h, request, buf, (size_t)r, max_headers);
    } else if (r < 0) {
        FZ_CHECK(r == NBIO_EPROTOCOL || r == NBIO_ETOOLARGE ||
                 (request && r == NBIO_EUNSUPPORTED));
        FZ_CHECK(why != NULL && why[0] != '\0' && where <= len);
        int st = nbio__http_error_status(r, why);
        FZ_CHECK(st == 400 || st == 414 || st == 431 || st == 505 || st == 501);
    }

    /* 2: one byte per call. */
    size_t *cuts = calloc(len + 1, sizeof *cuts);
    FZ_CHECK(cuts != NULL);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    fz_pieces(parse, buf, cuts, len, &lim, r, &h, why, where);

    /* 3: random pieces. */
    size_t n = 0, at = 0;
    while (at < len) {
        seed = seed * 1103515245u + 12345u;
        size_t step = 1 + (seed >> 16) % (seed & 0x100 ? 200 : 9);
        at = at + step < len ? at + step : len;
        cuts[n++] = at;
    }
    fz_pieces(parse, buf, cuts, n, &lim, r, &h, why, where);
    free(cuts);

    if (r <= 0)
        return 0;

    /* 4: canonical round trip, lookups, framing. */
    char out[8192];
    size_t wl = fz_write(&h, request, out, sizeof out);
    nbio__http_limits big = {.max_head = 1 << 20, .max_headers = FZ_MAXH, .max_line = 1 << 20};
    if (wl > 0) {
        nbio_http_header f2[FZ_MAXH];
        nbio_http_head h2 = {.headers = f2};
        int r2 = parse(out, wl, 0, &h2, &big, &why, &where);
        FZ_CHECK(r2 == (int)wl);
        FZ_CHECK(h2.num_headers == h.num_headers && h2.status == h.status &&
                 h2.minor_version == h.minor_version && fz_eq_bytes(h2.method, h.method) &&
                 fz_eq_bytes(h2.target, h.target) && fz_eq_bytes(h2.reason, h.reason));
        for (size_t i = 0; i < h.num_headers; i++)
            FZ_CHECK(fz_eq_bytes(h2.headers[i].name, h.headers[i].name) &&
                     fz_eq_bytes(h2.headers[i].value, h.headers[i].value));
    }
    for (size_t i = 0; i < h.num_headers && i < 8; i++) {
        char name[256];
        size_t nl = h.headers[i].name.len < 255 ? h.headers[i].name.len : 255;
        memcpy(name, h.headers[i].name.data, nl);
        name[nl] = '\0';
        size_t from = 0;
        const nbio_http_slice *v = nbio_http_header_find(&h, name, &from);
        if (nl == h.headers[i].name.len) {
            FZ_CHECK(v != NULL && from >= 1 && from <= i + 1);
            FZ_CHECK(nbio_http_slice_ieq(h.headers[from - 1].name, name));
        }
    }
    static const char *const methods[] = {"GET", "HEAD", "CONNECT", "POST"};
    nbio_http_slice m = {methods[data[1] & 3], strlen(methods[data[1] & 3])};
    nbio__body_kind kind;
    uint64_t length = 7;
    bool ka;
    why = NULL;
    int b = nbio__http_body_kind(&h, request, m, &kind, &length, &ka, &why);
    if (b == 0) {
        FZ_CHECK(kind >= NBIO__BODY_NONE && kind <= NBIO__BODY_TUNNEL);
        FZ_CHECK(kind == NBIO__BODY_LENGTH || length == 0);
        FZ_CHECK(length <= NBIO__HTTP_MAX_CONTENT_LENGTH);
        FZ_CHECK(!request || (kind != NBIO__BODY_CLOSE && kind != NBIO__BODY_TUNNEL));
        FZ_CHECK(!(kind == NBIO__BODY_CLOSE || kind == NBIO__BODY_TUNNEL) || !ka);
    } else {
        FZ_CHECK(b == NBIO_EPROTOCOL || (request && b == NBIO_EUNSUPPORTED));
        FZ_CHECK(why != NULL);
    }
    return 0;
}

#endif
