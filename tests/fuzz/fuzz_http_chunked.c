/*
 * libFuzzer harness: the chunked decoder (nbio__chunked_decode).
 *
 * Input: byte 0 picks the mode (bit 0) and the limits (bits 1-7), byte 1
 * seeds the random splits; the rest is either
 *  - raw mode: chunked body bytes as a peer sent them. They are decoded in
 *    one call, one byte per call and in random pieces, the way a session
 *    feeds the decoder (unconsumed bytes move to the front, each call gets
 *    an exact-size heap buffer so ASan sees any read past its end). Every
 *    way must give the same result, payload bytes, trailer section, end of
 *    message or error offset and why; every call keeps out_len <= consumed
 *    <= len, leaves at most max_trailer bytes unconsumed while it needs
 *    more, and a trailer section it returns lies between the payload and
 *    the end and parses as a field section of its own length; or
 *  - encode mode: a payload, which the harness encodes as a chunked body
 *    (random chunk sizes, leading zeros, hex case, extensions, trailers)
 *    followed by the next message; decoding it in random pieces must give
 *    back exactly the payload and trailers and stop at the message's end.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

typedef struct outcome {
    int r;
    char *payload;
    size_t plen;
    char *trailers;
    size_t tlen;
    size_t end; /* 1: the message's end; error: the offset, both in the whole input */
    const char *why;
} outcome;

/* Feeds in[0, len) in pieces ending at cuts[0..n). */
static void feed(const char *in, size_t len, const size_t *cuts, size_t n, size_t max_line,
                 size_t max_trailer, outcome *o)
{
    nbio__chunked c;
    nbio__chunked_init(&c, max_line, max_trailer);
    size_t mt = max_trailer ? max_trailer : NBIO__CHUNK_MAX_TRAILER;
    char *keep = malloc(len + 1);
    CHECK(keep != NULL);
    o->payload = malloc(len + 1);
    o->trailers = malloc(len + 1);
    CHECK(o->payload != NULL && o->trailers != NULL);
    o->plen = o->tlen = 0;
    o->r = 0;
    o->end = 0;
    o->why = NULL;
    size_t have = 0, base = 0, fed = 0;
    for (size_t k = 0; k < n; k++) {
        memcpy(keep + have, in + fed, cuts[k] - fed);
        have += cuts[k] - fed;
        fed = cuts[k];
        char *piece = malloc(have ? have : 1);
        CHECK(piece != NULL);
        memcpy(piece, keep, have);
        size_t out = (size_t)-1, used = (size_t)-1;
        nbio_http_slice tr = {NULL, 0};
        const char *why = NULL;
        int r = nbio__chunked_decode(&c, piece, have, &out, &used, &tr, &why);
        CHECK(out <= used && used <= have);
        memcpy(o->payload + o->plen, piece, out);
        o->plen += out;
        CHECK(o->plen <= len);
        if (r == 0) {
            CHECK(have - used <= mt);
            memmove(keep, piece + used, have - used);
            base += used;
            have -= used;
            free(piece);
            continue;
        }
        o->r = r;
        o->end = base + used;
        if (r == 1) {
            CHECK(tr.data >= piece + out && tr.len >= 2 && tr.data + tr.len == piece + used);
            CHECK(memcmp(tr.data + tr.len - 2, "\r\n", 2) == 0);
            size_t nf = 0, where = 0;
            const char *fwhy = NULL;
            nbio__http_limits lim = {.max_head = tr.len, .max_headers = SIZE_MAX,
                                     .max_line = tr.len};
            CHECK(nbio__http_parse_fields(tr.data, tr.len, NULL, &nf, &lim, &fwhy, &where) ==
                  (int)tr.len);
            memcpy(o->trailers, tr.data, tr.len);
            o->tlen = tr.len;
        } else {
            CHECK(r == NBIO_EPROTOCOL || r == NBIO_ETOOLARGE);
            CHECK(why != NULL && why[0] != '\0');
            o->why = why;
            /* Sticky: the same error again, nothing consumed. */
            const char *why2 = NULL;
            CHECK(nbio__chunked_decode(&c, piece, have, &out, &used, NULL, &why2) == r);
            CHECK(why2 == why && used == 0 && out == 0);
        }
        free(piece);
        break;
    }
    free(keep);
}

static void same(const outcome *a, const outcome *b)
{
    CHECK(a->r == b->r);
    CHECK(a->plen == b->plen && memcmp(a->payload, b->payload, a->plen) == 0);
    CHECK(a->tlen == b->tlen && memcmp(a->trailers, b->trailers, a->tlen) == 0);
    CHECK(a->r == 0 || a->end == b->end);
    CHECK(a->why == b->why);
}

static void release(outcome *o)
{
    free(o->payload);
    free(o->trailers);
}

static size_t random_cuts(uint32_t *seed, size_t len, size_t *cuts)
{
    size_t n = 0, at = 0;
    while (at < len) {
        *seed = *seed * 1103515245u + 12345u;
        size_t step = 1 + (*seed >> 16) % (*seed & 0x100 ? 300 : 7);
        at = at + step < len ? at + step : len;
        cuts[n++] = at;
    }
    if (n == 0)
        cuts[n++] = 0;
    return n;
}

static void raw_mode(const char *in, size_t len, uint32_t seed, size_t max_line,
                     size_t max_trailer)
{
    size_t *cuts = malloc((len + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    outcome whole, o;
    cuts[0] = len;
    feed(in, len, cuts, 1, max_line, max_trailer, &whole);
    for (size_t i = 0; i < len; i++)
        cuts[i] = i + 1;
    if (len > 0) {
        feed(in, len, cuts, len, max_line, max_trailer, &o);
        same(&whole, &o);
        release(&o);
    }
    for (int k = 0; k < 2; k++) {
        size_t n = random_cuts(&seed, len, cuts);
        feed(in, len, cuts, n, max_line, max_trailer, &o);
        same(&whole, &o);
        release(&o);
    }
    release(&whole);
    free(cuts);
}

static void encode_mode(const char *payload, size_t len, uint32_t seed)
{
    static const char *const exts[] = {"", ";a", ";a=b", " ;x=\"q\\\"\" ; y", ";n=\"\"",
                                       "\t;tok=!#$%&'*+-.^_`|~"};
    static const char *const trailers[] = {"\r\n", "A: b\r\n\r\n",
                                           "Expires: never\r\nX-Sum:  12 \r\n\r\n"};
    size_t cap = len * 2 + 64 * (len + 2) + 256;
    char *enc = malloc(cap);
    CHECK(enc != NULL);
    size_t el = 0, at = 0;
    while (at < len) {
        seed = seed * 1103515245u + 12345u;
        size_t n = 1 + (seed >> 16) % (seed & 0x200 ? 500 : 5);
        if (n > len - at)
            n = len - at;
        const char *ext = exts[(seed >> 8) % 6];
        el += (size_t)snprintf(enc + el, cap - el, seed & 0x400 ? "%s%zX%s\r\n" : "%s%zx%s\r\n",
                               seed & 0x800 ? "00" : "", n, ext);
        memcpy(enc + el, payload + at, n);
        el += n;
        memcpy(enc + el, "\r\n", 2);
        el += 2;
        at += n;
    }
    const char *tr = trailers[seed % 3];
    el += (size_t)snprintf(enc + el, cap - el, "0%s\r\n%s", exts[(seed >> 4) % 6], tr);
    size_t end = el;
    el += (size_t)snprintf(enc + el, cap - el, "HTTP/1.1 200 OK\r\n");
    size_t *cuts = malloc((el + 1) * sizeof *cuts);
    CHECK(cuts != NULL);
    outcome o;
    size_t n = random_cuts(&seed, el, cuts);
    feed(enc, el, cuts, n, 0, 0, &o);
    CHECK(o.r == 1 && o.end == end);
    CHECK(o.plen == len && memcmp(o.payload, payload, len) == 0);
    CHECK(o.tlen == strlen(tr) && memcmp(o.trailers, tr, o.tlen) == 0);
    release(&o);
    free(cuts);
    free(enc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = data[1] * 2654435761u + 7;
    const char *in = (const char *)data + 2;
    size_t len = size - 2;
    if (data[0] & 1) {
        encode_mode(in, len, seed);
        return 0;
    }
    size_t max_line = data[0] & 2 ? 1 + ((data[0] >> 2) & 15) : 0;     /* 1..16 */
    size_t max_trailer = data[0] & 64 ? 2 + ((data[0] >> 2) & 15) * 3 : 0; /* 2..47 */
    raw_mode(in, len, seed, max_line, max_trailer);
    return 0;
}
