/*
 * WebSocket frames (RFC 6455 §5): header parsing and encoding, payload
 * masking, close codes, and the masking-key generator. See codec.h.
 */
#include <stdint.h>
#include <string.h>

#include <openssl/rand.h>

#include "ws/codec.h"

int nbio__ws_parse_header(const unsigned char *buf, size_t len, nbio__ws_frame *f,
                          const char **why)
{
    if (len < 1)
        return 0;
    unsigned b0 = buf[0];
    unsigned op = b0 & 0x0fu;
    bool fin = (b0 & 0x80u) != 0;
    if ((op >= 3 && op <= 7) || op >= 11) {
        *why = "unknown opcode";
        return NBIO_EPROTOCOL;
    }
    if (op >= 8 && !fin) {
        *why = "fragmented control frame";
        return NBIO_EPROTOCOL;
    }
    if (len < 2)
        return 0;
    unsigned b1 = buf[1];
    unsigned len7 = b1 & 0x7fu;
    bool masked = (b1 & 0x80u) != 0;
    if (op >= 8 && len7 > NBIO__WS_MAX_CONTROL) {
        *why = "control frame payload longer than 125 bytes";
        return NBIO_EPROTOCOL;
    }
    size_t ext = len7 == 126 ? 2 : len7 == 127 ? 8 : 0;
    if (ext == 8 && len >= 3 && (buf[2] & 0x80u) != 0) {
        *why = "64-bit payload length with the most significant bit set";
        return NBIO_EPROTOCOL;
    }
    size_t hl = 2 + ext + (masked ? 4 : 0);
    if (len < hl)
        return 0;
    uint64_t plen = len7;
    if (ext != 0) {
        plen = 0;
        for (size_t i = 0; i < ext; i++)
            plen = plen << 8 | buf[2 + i];
    }
    f->fin = fin;
    f->rsv1 = (b0 & 0x40u) != 0;
    f->rsv2 = (b0 & 0x20u) != 0;
    f->rsv3 = (b0 & 0x10u) != 0;
    f->opcode = (uint8_t)op;
    f->masked = masked;
    if (masked)
        memcpy(f->mask, buf + 2 + ext, 4);
    else
        memset(f->mask, 0, 4);
    f->len = plen;
    f->header_len = hl;
    return (int)hl;
}

size_t nbio__ws_encode_header(unsigned char *out, uint8_t opcode, bool fin, bool rsv1,
                              uint64_t len, const uint8_t *mask)
{
    size_t n = 0;
    out[n++] = (unsigned char)((fin ? 0x80u : 0) | (rsv1 ? 0x40u : 0) | (opcode & 0x0fu));
    unsigned mbit = mask != NULL ? 0x80u : 0;
    if (len <= 125) {
        out[n++] = (unsigned char)(mbit | (unsigned)len);
    } else if (len <= 0xffff) {
        out[n++] = (unsigned char)(mbit | 126u);
        out[n++] = (unsigned char)(len >> 8);
        out[n++] = (unsigned char)len;
    } else {
        out[n++] = (unsigned char)(mbit | 127u);
        for (int shift = 56; shift >= 0; shift -= 8)
            out[n++] = (unsigned char)(len >> shift);
    }
    if (mask != NULL) {
        memcpy(out + n, mask, 4);
        n += 4;
    }
    return n;
}

void nbio__ws_mask(unsigned char *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    unsigned k = (unsigned)(offset & 3u);
    /* Bytes up to an 8-byte boundary one by one. */
    while (len > 0 && ((uintptr_t)data & 7u) != 0) {
        *data++ ^= mask[k];
        k = (k + 1) & 3u;
        len--;
    }
    if (len >= 8) {
        /* The key as it lines up with the next 8 bytes; 8 is a multiple of
         * 4, so it lines up the same way with every 8 bytes after them. */
        unsigned char kk[8];
        for (unsigned i = 0; i < 8; i++)
            kk[i] = mask[(k + i) & 3u];
        uint64_t m;
        memcpy(&m, kk, 8);
        while (len >= 32) {
            uint64_t v[4];
            memcpy(v, data, 32);
            v[0] ^= m;
            v[1] ^= m;
            v[2] ^= m;
            v[3] ^= m;
            memcpy(data, v, 32);
            data += 32;
            len -= 32;
        }
        while (len >= 8) {
            uint64_t v;
            memcpy(&v, data, 8);
            v ^= m;
            memcpy(data, &v, 8);
            data += 8;
            len -= 8;
        }
    }
    while (len > 0) {
        *data++ ^= mask[k];
        k = (k + 1) & 3u;
        len--;
    }
}

bool nbio__ws_close_code_ok(unsigned code)
{
    return (code >= 1000 && code <= 1003) || (code >= 1007 && code <= 1014) ||
           (code >= 3000 && code <= 4999);
}

/* ------------------------------------------------------------------------ */
/* Masking keys: SipHash-2-4 (Aumasson and Bernstein, 2012) as a PRF over a  */
/* counter.                                                                  */
/* ------------------------------------------------------------------------ */

static inline uint64_t rotl(uint64_t x, unsigned b)
{
    return (x << b) | (x >> (64 - b));
}

#define SIPROUND                                                                       \
    do {                                                                               \
        v0 += v1;                                                                      \
        v1 = rotl(v1, 13);                                                             \
        v1 ^= v0;                                                                      \
        v0 = rotl(v0, 32);                                                             \
        v2 += v3;                                                                      \
        v3 = rotl(v3, 16);                                                             \
        v3 ^= v2;                                                                      \
        v0 += v3;                                                                      \
        v3 = rotl(v3, 21);                                                             \
        v3 ^= v0;                                                                      \
        v2 += v1;                                                                      \
        v1 = rotl(v1, 17);                                                             \
        v1 ^= v2;                                                                      \
        v2 = rotl(v2, 32);                                                             \
    } while (0)

/* SipHash-2-4 of the 8-byte message m (little-endian) under the key
 * (k0, k1) (the 16 key bytes read little-endian). */
static uint64_t siphash8(uint64_t k0, uint64_t k1, uint64_t m)
{
    uint64_t v0 = k0 ^ 0x736f6d6570736575ull;
    uint64_t v1 = k1 ^ 0x646f72616e646f6dull;
    uint64_t v2 = k0 ^ 0x6c7967656e657261ull;
    uint64_t v3 = k1 ^ 0x7465646279746573ull;
    v3 ^= m;
    SIPROUND;
    SIPROUND;
    v0 ^= m;
    uint64_t b = (uint64_t)8 << 56; /* the message length in the last block */
    v3 ^= b;
    SIPROUND;
    SIPROUND;
    v0 ^= b;
    v2 ^= 0xff;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    SIPROUND;
    return v0 ^ v1 ^ v2 ^ v3;
}

uint64_t nbio__ws_siphash8(uint64_t k0, uint64_t k1, uint64_t m)
{
    return siphash8(k0, k1, m);
}

int nbio__ws_rng_init(nbio__ws_rng *r)
{
    unsigned char seed[16];
    r->uses = 0;
    if (RAND_bytes(seed, sizeof seed) != 1) {
        memset(r->s, 0, sizeof r->s);
        return NBIO_EIO;
    }
    memcpy(r->s, seed, sizeof seed);
    memset(seed, 0, sizeof seed);
    return 0;
}

void nbio__ws_rng_mask(nbio__ws_rng *r, uint8_t mask[4])
{
    if (r->uses >= NBIO__WS_RNG_RESEED) {
        unsigned char seed[16];
        if (RAND_bytes(seed, sizeof seed) == 1) {
            memcpy(r->s, seed, sizeof seed);
        } else {
            /* Ratchet: the next secret from the current one, with inputs
             * no key number uses (those are < 2^20). */
            uint64_t n0 = siphash8(r->s[0], r->s[1], (uint64_t)1 << 32);
            uint64_t n1 = siphash8(r->s[0], r->s[1], ((uint64_t)1 << 32) + 1);
            r->s[0] = n0;
            r->s[1] = n1;
        }
        memset(seed, 0, sizeof seed);
        r->uses = 0;
    }
    uint32_t v = (uint32_t)siphash8(r->s[0], r->s[1], r->uses++);
    memcpy(mask, &v, 4);
}
