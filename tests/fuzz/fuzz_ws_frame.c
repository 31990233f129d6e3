/*
 * libFuzzer harness: the WebSocket codec's byte-level parts (src/ws/codec.h)
 * — frame headers, masking, UTF-8 validation, permessage-deflate's inflate.
 *
 * Input: byte 0 picks the mode (low 2 bits) and parameters (the rest),
 * byte 1 seeds the random splits; the rest is the data. abort()s when an
 * invariant breaks:
 *
 *  mode 0, frames as a peer sent them: nbio__ws_parse_header() on the data
 *    returns 0, a header length in 2..14 (never more than the data), or
 *    NBIO_EPROTOCOL with a why; every shorter prefix gives 0 or the same
 *    error, every longer input the same result (a result is final); a
 *    parsed header obeys the rules (known opcode, control frames final and
 *    at most 125 bytes, length < 2^63) and encodes again with
 *    nbio__ws_encode_header() to the same bytes when its length form was
 *    minimal (and rsv2/rsv3 are clear), else to a shorter header that
 *    parses to the same fields. Then the bytes after the header are
 *    unmasked in random pieces and must equal a one-shot unmask, and
 *    masking again restores them.
 *  mode 1, a header from fields: opcode, flags, a 64-bit length and a key
 *    taken from the data are encoded and parsed back: the same fields, or
 *    NBIO_EPROTOCOL exactly when the fields break a rule.
 *  mode 2, UTF-8: the data validated in one call, byte by byte and in
 *    random pieces gives the same state, which is ACCEPT exactly when an
 *    independent reference decoder says the data is valid UTF-8.
 *  mode 3, permessage-deflate: the data inflated as a received message
 *    (max from byte 0) never appends more than max bytes, and fails
 *    cleanly (out rolled back); then the data compressed and inflated again
 *    (with or without context takeover, window bits from byte 0) comes back
 *    unchanged, twice in a row.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ws/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static uint32_t next_rand(uint32_t *seed)
{
    *seed = *seed * 1103515245u + 12345u;
    return *seed >> 8;
}

/* A heap copy of exactly len bytes, so ASan sees reads past the end. */
static unsigned char *dup_exact(const unsigned char *p, size_t len)
{
    unsigned char *d = malloc(len ? len : 1);
    CHECK(d != NULL);
    if (len)
        memcpy(d, p, len);
    return d;
}

static bool same_frame(const nbio__ws_frame *a, const nbio__ws_frame *b)
{
    return a->fin == b->fin && a->rsv1 == b->rsv1 && a->rsv2 == b->rsv2 && a->rsv3 == b->rsv3 &&
           a->opcode == b->opcode && a->masked == b->masked &&
           memcmp(a->mask, b->mask, 4) == 0 && a->len == b->len;
}

static void frames(const unsigned char *in, size_t len, uint32_t seed)
{
    unsigned char *buf = dup_exact(in, len);
    nbio__ws_frame f;
    const char *why = NULL;
    int r = nbio__ws_parse_header(buf, len, &f, &why);
    CHECK(r == 0 || r == NBIO_EPROTOCOL || (r >= 2 && r <= NBIO__WS_MAX_HEADER));
    if (r < 0)
        CHECK(why != NULL && why[0] != '\0');
    /* Prefixes: 0 or the same error; the first that is not 0 gives r. */
    size_t known = len + 1;
    for (size_t k = 0; k < len && k < NBIO__WS_MAX_HEADER + 1; k++) {
        unsigned char *p = dup_exact(in, k);
        nbio__ws_frame g;
        const char *w2 = NULL;
        int r2 = nbio__ws_parse_header(p, k, &g, &w2);
        free(p);
        if (r2 != 0) {
            CHECK(r2 == r);
            if (r2 < 0)
                CHECK(w2 == why);
            else
                CHECK(same_frame(&g, &f));
            if (known > k)
                known = k;
        } else {
            CHECK(known > len); /* never 0 again after a result */
        }
    }
    if (r > 0)
        CHECK(known == (size_t)r || known > len); /* found when its last byte came */
    if (r < 0)
        CHECK(known <= 3 || known > len); /* errors show within 3 bytes */
    if (r > 0) {
        CHECK((size_t)r <= len && f.header_len == (size_t)r);
        CHECK(f.opcode <= 2 || (f.opcode >= 8 && f.opcode <= 10));
        CHECK(f.opcode < 8 || (f.fin && f.len <= NBIO__WS_MAX_CONTROL));
        CHECK(f.len < ((uint64_t)1 << 63));
        CHECK(f.masked == ((in[1] & 0x80) != 0));
        if (!f.masked)
            CHECK(memcmp(f.mask, "\0\0\0\0", 4) == 0);
        unsigned char hdr[NBIO__WS_MAX_HEADER];
        size_t hl = nbio__ws_encode_header(hdr, f.opcode, f.fin, f.rsv1, f.len,
                                           f.masked ? f.mask : NULL);
        CHECK(hl <= (size_t)r);
        bool minimal = (in[1] & 0x7f) <= 125 || ((in[1] & 0x7f) == 126 && f.len > 125) ||
                       ((in[1] & 0x7f) == 127 && f.len > 0xffff);
        if (minimal && !f.rsv2 && !f.rsv3)
            CHECK(hl == (size_t)r && memcmp(hdr, in, hl) == 0);
        nbio__ws_frame g;
        const char *w2 = NULL;
        CHECK(nbio__ws_parse_header(hdr, hl, &g, &w2) == (int)hl);
        g.rsv2 = f.rsv2;
        g.rsv3 = f.rsv3;
        CHECK(same_frame(&g, &f));

        /* The payload bytes present, unmasked in random pieces. */
        size_t plen = len - (size_t)r;
        if ((uint64_t)plen > f.len)
            plen = (size_t)f.len;
        unsigned char *one = dup_exact(in + r, plen), *pieces = dup_exact(in + r, plen);
        static const uint8_t fixed[4] = {0x12, 0x34, 0x56, 0x78};
        uint8_t key[4];
        memcpy(key, f.masked ? f.mask : fixed, 4);
        nbio__ws_mask(one, plen, key, 0);
        for (size_t i = 0; i < plen; i++)
            CHECK(one[i] == (in[(size_t)r + i] ^ key[i % 4]));
        for (size_t at = 0; at < plen;) {
            size_t n = 1 + next_rand(&seed) % 40;
            if (n > plen - at)
                n = plen - at;
            nbio__ws_mask(pieces + at, n, key, at);
            at += n;
        }
        CHECK(memcmp(one, pieces, plen) == 0);
        nbio__ws_mask(one, plen, key, 0);
        CHECK(memcmp(one, in + r, plen) == 0);
        free(one);
        free(pieces);
    }
    free(buf);
}

static uint64_t load64(const unsigned char *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | p[i];
    return v;
}

static void fields(const unsigned char *in, size_t len, uint8_t sel)
{
    unsigned char pad[14] = {0};
    memcpy(pad, in, len < sizeof pad ? len : sizeof pad);
    uint8_t op = pad[0] & 0x0f;
    bool fin = pad[0] & 0x80, rsv1 = pad[0] & 0x40, masked = pad[0] & 0x20;
    uint64_t plen = load64(pad + 1);
    switch (sel & 3) { /* reach every length form */
    case 0:
        plen &= 0x7f;
        break;
    case 1:
        plen &= 0xffff;
        break;
    case 2:
        plen &= 0xffffffffull;
        break;
    default:
        break;
    }
    unsigned char hdr[NBIO__WS_MAX_HEADER];
    size_t hl = nbio__ws_encode_header(hdr, op, fin, rsv1, plen, masked ? pad + 9 : NULL);
    CHECK(hl >= 2 && hl <= NBIO__WS_MAX_HEADER);
    CHECK(hl == 2u + (plen > 125 ? 2u : 0u) + (plen > 0xffff ? 6u : 0u) + (masked ? 4u : 0u));
    nbio__ws_frame f;
    const char *why = NULL;
    int r = nbio__ws_parse_header(hdr, hl, &f, &why);
    bool unknown = (op >= 3 && op <= 7) || op >= 11;
    bool bad = unknown || (op >= 8 && (!fin || plen > 125)) || (plen >> 63) != 0;
    if (bad) {
        CHECK(r == NBIO_EPROTOCOL && why != NULL);
        return;
    }
    CHECK(r == (int)hl);
    CHECK(f.opcode == op && f.fin == fin && f.rsv1 == rsv1 && !f.rsv2 && !f.rsv3);
    CHECK(f.masked == masked && f.len == plen);
    if (masked)
        CHECK(memcmp(f.mask, pad + 9, 4) == 0);
}

/* Reference: true when p[0, n) is valid UTF-8 (RFC 3629). */
static bool utf8_ref(const unsigned char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned b = p[i];
        size_t len;
        uint32_t cp, min;
        if (b < 0x80) {
            i++;
            continue;
        } else if ((b & 0xe0) == 0xc0) {
            len = 2, cp = b & 0x1f, min = 0x80;
        } else if ((b & 0xf0) == 0xe0) {
            len = 3, cp = b & 0x0f, min = 0x800;
        } else if ((b & 0xf8) == 0xf0) {
            len = 4, cp = b & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((p[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (p[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static void utf8(const unsigned char *in, size_t len, uint32_t seed)
{
    unsigned char *buf = dup_exact(in, len);
    uint32_t whole = nbio__utf8_step(NBIO__UTF8_ACCEPT, buf, len);
    CHECK((whole == NBIO__UTF8_ACCEPT) == utf8_ref(in, len));
    uint32_t st = NBIO__UTF8_ACCEPT;
    for (size_t i = 0; i < len; i++)
        st = nbio__utf8_step(st, buf + i, 1);
    CHECK(st == whole);
    st = NBIO__UTF8_ACCEPT;
    for (size_t at = 0; at < len;) {
        size_t n = 1 + next_rand(&seed) % 23;
        if (n > len - at)
            n = len - at;
        unsigned char *piece = dup_exact(in + at, n);
        st = nbio__utf8_step(st, piece, n);
        free(piece);
        at += n;
    }
    CHECK(st == whole);
    /* Rejection is sticky and final for every extension of the data. */
    if (whole == NBIO__UTF8_REJECT)
        CHECK(nbio__utf8_step(whole, (const unsigned char *)"a", 1) == NBIO__UTF8_REJECT);
    free(buf);
}

static void pmd(const unsigned char *in, size_t len, uint8_t sel)
{
    nbio__pmd_params p;
    nbio__pmd_params_init(&p);
    p.server_no_context_takeover = (sel & 4) != 0;
    p.client_no_context_takeover = (sel & 8) != 0;
    p.server_max_window_bits = 8 + ((sel >> 4) & 7);
    p.client_max_window_bits = 15 - ((sel >> 4) & 7);
    size_t max = (size_t)(sel >> 2) * 97; /* 0..6014 */

    /* As received: bounded, clean failures. */
    nbio__pmd z;
    CHECK(nbio__pmd_init(&z, &p, false) == 0);
    nbio__bytes out = {0};
    CHECK(nbio__bytes_append(&out, "ab", 2) == 0);
    int r = nbio__pmd_inflate(&z, in, len, &out, max);
    CHECK(r == 0 || r == NBIO_ETOOLARGE || r == NBIO_EPROTOCOL);
    if (r == 0)
        CHECK(out.len >= 2 && out.len - 2 <= max);
    else
        CHECK(out.len == 2);
    CHECK(memcmp(nbio__bytes_peek(&out), "ab", 2) == 0);
    if (z.inf_ready)
        CHECK(z.inf.total_out <= (uLong)max + 1);
    nbio__pmd_free(&z);
    nbio__bytes_free(&out);

    /* Compressed by one side, inflated by the other, twice (the second
     * message may refer back into the first). */
    nbio__pmd snd, rcv;
    CHECK(nbio__pmd_init(&snd, &p, true) == 0);
    CHECK(nbio__pmd_init(&rcv, &p, false) == 0);
    for (int k = 0; k < 2; k++) {
        nbio__bytes c = {0}, d = {0};
        CHECK(nbio__pmd_deflate(&snd, in, len, &c) == 0);
        CHECK(c.len >= 1);
        CHECK(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &d, len) == 0);
        CHECK(d.len == len && (len == 0 || memcmp(nbio__bytes_peek(&d), in, len) == 0));
        nbio__bytes_free(&c);
        nbio__bytes_free(&d);
    }
    nbio__pmd_free(&snd);
    nbio__pmd_free(&rcv);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint32_t seed = data[1] * 2654435761u + 7;
    const unsigned char *in = data + 2;
    size_t len = size - 2;
    switch (data[0] & 3) {
    case 0:
        frames(in, len, seed);
        break;
    case 1:
        fields(in, len, data[0] >> 2);
        break;
    case 2:
        utf8(in, len, seed);
        break;
    default:
        pmd(in, len, data[0]);
        break;
    }
    return 0;
}
