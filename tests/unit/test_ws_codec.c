/* The WebSocket codec (src/ws/codec.h): table-driven tests of frame
 * headers (every length form, the RFC 6455 §5.7 examples, every rejection,
 * every prefix), masking in pieces and on unaligned buffers, the UTF-8
 * validator (an Autobahn case 6 style table, every split, and an exhaustive
 * comparison with a reference decoder), close codes, the handshake keys,
 * the masking-key generator, and permessage-deflate (negotiation tables,
 * the RFC 7692 §7.2.3 vectors, round trips with and without context
 * takeover, window bits 8, bombs). */
#include <limits.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <zlib.h>

#include "nbio/nbio.h"
#include "testutil.h"
#include "ws/codec.h"

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* A heap copy of exactly len bytes, so ASan sees any read past the end. */
static unsigned char *dup_exact(const void *p, size_t len)
{
    unsigned char *d = malloc(len ? len : 1);
    assert_non_null(d);
    if (len)
        memcpy(d, p, len);
    return d;
}

/* ======================================================================== */
/* Frame headers                                                             */
/* ======================================================================== */

/* Parsing every prefix shorter than the header gives 0. */
static void check_prefixes(const unsigned char *hdr, size_t hl)
{
    for (size_t k = 0; k < hl; k++) {
        unsigned char *b = dup_exact(hdr, k);
        nbio__ws_frame f;
        const char *why = NULL;
        int r = nbio__ws_parse_header(b, k, &f, &why);
        if (r != 0)
            fail_msg("prefix of %zu of a %zu-byte header: %d (%s)", k, hl, r, why ? why : "-");
        free(b);
    }
}

static void test_header_round_trip(void **state)
{
    (void)state;
    /* Every length form at its edges; expected header length unmasked. */
    static const struct {
        uint64_t len;
        size_t hl;
    } lens[] = {
        {0, 2},          {1, 2},          {125, 2},                      /* 7-bit */
        {126, 4},        {65535, 4},                                     /* 16-bit */
        {65536, 10},     {(uint64_t)1 << 32, 10}, {((uint64_t)1 << 63) - 1, 10}, /* 64-bit */
    };
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    for (size_t i = 0; i < ARRAY_LEN(lens); i++) {
        for (int masked = 0; masked < 2; masked++) {
            for (int variant = 0; variant < 4; variant++) {
                uint8_t op = variant == 0 ? NBIO__WS_OP_TEXT
                             : variant == 1 ? NBIO__WS_OP_BINARY
                                            : NBIO__WS_OP_CONT;
                bool fin = variant != 2, rsv1 = variant == 3;
                unsigned char hdr[NBIO__WS_MAX_HEADER + 1];
                memset(hdr, 0xee, sizeof hdr);
                size_t hl = nbio__ws_encode_header(hdr, op, fin, rsv1, lens[i].len,
                                                   masked ? key : NULL);
                assert_int_equal(hl, lens[i].hl + (masked ? 4 : 0));
                assert_int_equal(hdr[NBIO__WS_MAX_HEADER], 0xee); /* stayed inside */
                unsigned char *b = dup_exact(hdr, hl);
                nbio__ws_frame f;
                const char *why = NULL;
                assert_int_equal(nbio__ws_parse_header(b, hl, &f, &why), (int)hl);
                assert_int_equal(f.header_len, hl);
                assert_true(f.len == lens[i].len);
                assert_int_equal(f.opcode, op);
                assert_int_equal(f.fin, fin);
                assert_int_equal(f.rsv1, rsv1);
                assert_false(f.rsv2);
                assert_false(f.rsv3);
                assert_int_equal(f.masked, masked);
                if (masked)
                    assert_memory_equal(f.mask, key, 4);
                free(b);
                check_prefixes(hdr, hl);
            }
        }
    }
    /* Control frames at their largest. */
    unsigned char hdr[NBIO__WS_MAX_HEADER];
    for (uint8_t op = 8; op <= 10; op++) {
        size_t hl = nbio__ws_encode_header(hdr, op, true, false, 125, NULL);
        nbio__ws_frame f;
        const char *why = NULL;
        assert_int_equal(nbio__ws_parse_header(hdr, hl, &f, &why), 2);
        assert_true(f.len == 125 && f.opcode == op);
    }
}

/* RFC 6455 §5.7: the frames, whole; what the header says, and that
 * encoding the same frame gives the same header bytes. */
static void test_header_rfc_examples(void **state)
{
    (void)state;
    static const unsigned char hello[] = {0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const unsigned char hello_masked[] = {0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                                 0x9f, 0x4d, 0x51, 0x58};
    static const unsigned char hel[] = {0x01, 0x03, 0x48, 0x65, 0x6c};
    static const unsigned char lo[] = {0x80, 0x02, 0x6c, 0x6f};
    static const unsigned char ping[] = {0x89, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f};
    static const unsigned char pong_masked[] = {0x8a, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f,
                                                0x9f, 0x4d, 0x51, 0x58};
    static const unsigned char bin256[] = {0x82, 0x7e, 0x01, 0x00};
    static const unsigned char bin64k[] = {0x82, 0x7f, 0, 0, 0, 0, 0, 0x01, 0x00, 0x00};
    static const struct {
        const char *comment;
        const unsigned char *in;
        size_t in_len;
        bool fin;
        uint8_t op;
        bool masked;
        uint64_t len;
        size_t hl;
        const char *payload; /* unmasked, or NULL */
    } cases[] = {
        {"single-frame unmasked text", hello, sizeof hello, true, 1, false, 5, 2, "Hello"},
        {"single-frame masked text", hello_masked, sizeof hello_masked, true, 1, true, 5, 6,
         "Hello"},
        {"fragmented: first", hel, sizeof hel, false, 1, false, 3, 2, "Hel"},
        {"fragmented: last", lo, sizeof lo, true, 0, false, 2, 2, "lo"},
        {"unmasked ping", ping, sizeof ping, true, 9, false, 5, 2, "Hello"},
        {"masked pong", pong_masked, sizeof pong_masked, true, 10, true, 5, 6, "Hello"},
        {"256 bytes binary, unmasked", bin256, sizeof bin256, true, 2, false, 256, 4, NULL},
        {"64 KiB binary, unmasked", bin64k, sizeof bin64k, true, 2, false, 65536, 10, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        unsigned char *b = dup_exact(cases[i].in, cases[i].in_len);
        nbio__ws_frame f;
        const char *why = NULL;
        int r = nbio__ws_parse_header(b, cases[i].in_len, &f, &why);
        if (r != (int)cases[i].hl)
            fail_msg("%s: %d, want %zu", cases[i].comment, r, cases[i].hl);
        assert_int_equal(f.fin, cases[i].fin);
        assert_int_equal(f.opcode, cases[i].op);
        assert_int_equal(f.masked, cases[i].masked);
        assert_true(f.len == cases[i].len);
        assert_false(f.rsv1 || f.rsv2 || f.rsv3);
        if (cases[i].payload != NULL) {
            unsigned char p[16];
            memcpy(p, b + f.header_len, (size_t)f.len);
            if (f.masked)
                nbio__ws_mask(p, (size_t)f.len, f.mask, 0);
            assert_memory_equal(p, cases[i].payload, (size_t)f.len);
        }
        unsigned char hdr[NBIO__WS_MAX_HEADER];
        size_t hl = nbio__ws_encode_header(hdr, f.opcode, f.fin, false, f.len,
                                           f.masked ? f.mask : NULL);
        assert_int_equal(hl, cases[i].hl);
        assert_memory_equal(hdr, cases[i].in, hl);
        check_prefixes(cases[i].in, cases[i].hl);
        free(b);
    }
}

/* What the parser accepts without judging: non-minimal lengths, reserved
 * bits. */
static void test_header_accepted(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        unsigned char in[14];
        size_t in_len;
        uint64_t len;
        size_t hl;
        bool rsv1, rsv2, rsv3;
    } cases[] = {
        {"16-bit form for 5 (non-minimal)", {0x82, 0x7e, 0x00, 0x05}, 4, 5, 4, 0, 0, 0},
        {"64-bit form for 5 (non-minimal)", {0x82, 0x7f, 0, 0, 0, 0, 0, 0, 0, 5}, 10, 5, 10, 0, 0, 0},
        {"64-bit form for 65535 (non-minimal)", {0x02, 0x7f, 0, 0, 0, 0, 0, 0, 0xff, 0xff}, 10,
         65535, 10, 0, 0, 0},
        {"largest 64-bit length", {0x82, 0x7f, 0x7f, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         10, INT64_MAX, 10, 0, 0, 0},
        {"all reserved bits reported", {0xf1, 0x00}, 2, 0, 2, 1, 1, 1},
        {"rsv1 on a control frame reported", {0xc9, 0x00}, 2, 0, 2, 1, 0, 0},
        {"masked close of 125", {0x88, 0xfd, 1, 2, 3, 4}, 6, 125, 6, 0, 0, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        unsigned char *b = dup_exact(cases[i].in, cases[i].in_len);
        nbio__ws_frame f;
        const char *why = NULL;
        int r = nbio__ws_parse_header(b, cases[i].in_len, &f, &why);
        if (r != (int)cases[i].hl)
            fail_msg("%s: %d (%s)", cases[i].comment, r, r < 0 ? why : "-");
        assert_true(f.len == cases[i].len);
        assert_int_equal(f.rsv1, cases[i].rsv1);
        assert_int_equal(f.rsv2, cases[i].rsv2);
        assert_int_equal(f.rsv3, cases[i].rsv3);
        check_prefixes(cases[i].in, cases[i].hl);
        free(b);
    }
}

/* Every rejection, with the bytes from which it is known (fewer: 0). */
static void test_header_rejections(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        unsigned char in[14];
        size_t in_len;
        size_t known_at; /* the error appears with this many bytes */
        const char *why;
    } cases[] = {
        {"opcode 3", {0x83, 0x00}, 2, 1, "unknown opcode"},
        {"opcode 7", {0x87, 0x00}, 2, 1, "unknown opcode"},
        {"opcode 11", {0x8b, 0x00}, 2, 1, "unknown opcode"},
        {"opcode 15, not final", {0x0f, 0x00}, 2, 1, "unknown opcode"},
        {"fragmented close", {0x08, 0x00}, 2, 1, "fragmented control frame"},
        {"fragmented ping", {0x09, 0x80, 0, 0, 0, 0}, 6, 1, "fragmented control frame"},
        {"fragmented pong", {0x0a, 0x00}, 2, 1, "fragmented control frame"},
        {"ping of 126 (7-bit field)", {0x89, 0x7e, 0x00, 0x7e}, 4, 2,
         "control frame payload longer than 125 bytes"},
        {"close with a 64-bit length", {0x88, 0xff, 0, 0, 0, 0, 0, 0, 0, 5}, 10, 2,
         "control frame payload longer than 125 bytes"},
        {"64-bit length, top bit set", {0x82, 0x7f, 0x80, 0, 0, 0, 0, 0, 0, 0}, 10, 3,
         "64-bit payload length with the most significant bit set"},
        {"64-bit length, all ones", {0x02, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff},
         10, 3, "64-bit payload length with the most significant bit set"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        for (size_t k = 0; k <= cases[i].in_len; k++) {
            unsigned char *b = dup_exact(cases[i].in, k);
            nbio__ws_frame f;
            const char *why = NULL;
            int r = nbio__ws_parse_header(b, k, &f, &why);
            free(b);
            if (k < cases[i].known_at) {
                if (r != 0)
                    fail_msg("%s: %d with %zu bytes, want 0", cases[i].comment, r, k);
                continue;
            }
            if (r != NBIO_EPROTOCOL || why == NULL || strcmp(why, cases[i].why) != 0)
                fail_msg("%s: %d (%s) with %zu bytes, want \"%s\"", cases[i].comment, r,
                         why ? why : "-", k, cases[i].why);
        }
    }
    /* Every unknown opcode, final or not. */
    for (unsigned op = 0; op < 16; op++) {
        bool unknown = (op >= 3 && op <= 7) || op >= 11;
        for (unsigned fin = 0; fin < 2; fin++) {
            unsigned char b[2] = {(unsigned char)(fin << 7 | op), 0};
            nbio__ws_frame f;
            const char *why = NULL;
            int r = nbio__ws_parse_header(b, 2, &f, &why);
            if (unknown || (op >= 8 && !fin))
                assert_int_equal(r, NBIO_EPROTOCOL);
            else
                assert_int_equal(r, 2);
        }
    }
}

/* ======================================================================== */
/* Masking                                                                   */
/* ======================================================================== */

static void mask_ref(unsigned char *d, size_t n, const uint8_t k[4], uint64_t off)
{
    for (size_t i = 0; i < n; i++)
        d[i] ^= k[(off + i) % 4];
}

static void test_mask(void **state)
{
    (void)state;
    static const uint8_t key[4] = {0x37, 0xfa, 0x21, 0x3d};
    /* The RFC's example. */
    unsigned char hello[5] = {'H', 'e', 'l', 'l', 'o'};
    nbio__ws_mask(hello, 5, key, 0);
    assert_memory_equal(hello, "\x7f\x9f\x4d\x51\x58", 5);
    nbio__ws_mask(NULL, 0, key, 3); /* nothing */

    /* A 100-byte payload masked in two pieces at every split, and in
     * three at every pair of splits, equals one-shot. */
    unsigned char plain[100], whole[100], piece[100];
    tu_pattern(plain, sizeof plain, 1);
    memcpy(whole, plain, sizeof whole);
    nbio__ws_mask(whole, sizeof whole, key, 0);
    memcpy(piece, plain, sizeof piece);
    mask_ref(piece, sizeof piece, key, 0);
    assert_memory_equal(piece, whole, sizeof whole);
    for (size_t i = 0; i <= 100; i++) {
        for (size_t j = i; j <= 100; j++) {
            memcpy(piece, plain, sizeof piece);
            nbio__ws_mask(piece, i, key, 0);
            nbio__ws_mask(piece + i, j - i, key, i);
            nbio__ws_mask(piece + j, 100 - j, key, j);
            if (memcmp(piece, whole, 100) != 0)
                fail_msg("pieces at %zu and %zu differ from one-shot", i, j);
        }
    }

    /* Unaligned buffers: every start alignment 0..15, lengths 0..80, the
     * four key phases, and offsets past 2^32; bytes around untouched. */
    unsigned char *area = malloc(160);
    unsigned char ref[160];
    assert_non_null(area);
    for (size_t a = 0; a < 16; a++) {
        for (size_t n = 0; n <= 80; n++) {
            for (uint64_t off = 0; off < 8; off++) {
                uint64_t o = off < 4 ? off : ((uint64_t)1 << 32) + off;
                tu_pattern(area, 160, (uint32_t)(a * 131 + n));
                memcpy(ref, area, 160);
                nbio__ws_mask(area + a, n, key, o);
                mask_ref(ref + a, n, key, o);
                if (memcmp(area, ref, 160) != 0)
                    fail_msg("align %zu len %zu offset %llu differs", a, n,
                             (unsigned long long)o);
            }
        }
    }
    free(area);
}

/* ======================================================================== */
/* UTF-8                                                                     */
/* ======================================================================== */

enum { VALID, INVALID, TRUNCATED }; /* TRUNCATED: no bad byte, ends mid-character */

static uint32_t utf8_split(const unsigned char *p, size_t n, size_t piece)
{
    uint32_t st = NBIO__UTF8_ACCEPT;
    for (size_t i = 0; i < n; i += piece) {
        size_t k = n - i < piece ? n - i : piece;
        unsigned char *b = dup_exact(p + i, k);
        st = nbio__utf8_step(st, b, k);
        free(b);
    }
    return st;
}

static void test_utf8_table(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        const char *in;
        int want;
        size_t len; /* 0: strlen */
    } cases[] = {
        /* valid */
        {"empty", "", VALID, 0},
        {"ASCII", "Hello, world", VALID, 0},
        {"U+0000", "\0", VALID, 1},
        {"U+007F", "\x7f", VALID, 0},
        {"2 bytes: U+0080", "\xc2\x80", VALID, 0},
        {"2 bytes: U+07FF", "\xdf\xbf", VALID, 0},
        {"3 bytes: U+0800", "\xe0\xa0\x80", VALID, 0},
        {"3 bytes: U+D7FF (before the surrogates)", "\xed\x9f\xbf", VALID, 0},
        {"3 bytes: U+E000 (after the surrogates)", "\xee\x80\x80", VALID, 0},
        {"3 bytes: U+FFFE (noncharacter, valid)", "\xef\xbf\xbe", VALID, 0},
        {"3 bytes: U+FFFF", "\xef\xbf\xbf", VALID, 0},
        {"4 bytes: U+10000", "\xf0\x90\x80\x80", VALID, 0},
        {"4 bytes: U+10FFFF", "\xf4\x8f\xbf\xbf", VALID, 0},
        {"Autobahn 6.2.1: kosme", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5", VALID, 0},
        {"multi-byte after 13 ASCII (fast path, then slow)", "abcdefghijklm\xc3\xa9nopqrstuvwxyz",
         VALID, 0},
        {"emoji between long ASCII runs", "0123456789abcdef\xf0\x9f\x98\x80" "0123456789abcdef",
         VALID, 0},
        /* overlong */
        {"overlong 2: C0 AF ('/')", "\xc0\xaf", INVALID, 0},
        {"overlong 2: C1 BF", "\xc1\xbf", INVALID, 0},
        {"overlong 2: C0 80 (NUL)", "\xc0\x80", INVALID, 0},
        {"overlong 3: E0 80 AF", "\xe0\x80\xaf", INVALID, 0},
        {"overlong 3: E0 9F BF (U+07FF)", "\xe0\x9f\xbf", INVALID, 0},
        {"overlong 4: F0 80 80 AF", "\xf0\x80\x80\xaf", INVALID, 0},
        {"overlong 4: F0 8F BF BF (U+FFFF)", "\xf0\x8f\xbf\xbf", INVALID, 0},
        {"5-byte form", "\xf8\x88\x80\x80\x80", INVALID, 0},
        {"6-byte form", "\xfc\x84\x80\x80\x80\x80", INVALID, 0},
        /* surrogates */
        {"U+D800", "\xed\xa0\x80", INVALID, 0},
        {"U+DB7F", "\xed\xad\xbf", INVALID, 0},
        {"U+DC00", "\xed\xb0\x80", INVALID, 0},
        {"U+DFFF", "\xed\xbf\xbf", INVALID, 0},
        {"surrogate pair D800 DC00", "\xed\xa0\x80\xed\xb0\x80", INVALID, 0},
        {"kosme then U+D800 (Autobahn 6.x)", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80"
         "edited", INVALID, 0},
        /* above U+10FFFF */
        {"U+110000", "\xf4\x90\x80\x80", INVALID, 0},
        {"F4 BF BF BF", "\xf4\xbf\xbf\xbf", INVALID, 0},
        {"F5 lead", "\xf5\x80\x80\x80", INVALID, 0},
        {"F7 BF BF BF", "\xf7\xbf\xbf\xbf", INVALID, 0},
        /* bad lead bytes */
        {"lone C0", "\xc0", INVALID, 0},
        {"lone C1", "\xc1", INVALID, 0},
        {"lone F5", "\xf5", INVALID, 0},
        {"lone FE", "\xfe", INVALID, 0},
        {"lone FF", "\xff", INVALID, 0},
        {"FE FE FF FF", "\xfe\xfe\xff\xff", INVALID, 0},
        /* continuation bytes */
        {"lone continuation 80", "\x80", INVALID, 0},
        {"lone continuation BF", "\xbf", INVALID, 0},
        {"continuation inside ASCII", "ab\x80" "cd", INVALID, 0},
        {"two continuations after a 2-byte char", "\xc2\x80\x80", INVALID, 0},
        {"2-byte lead then ASCII", "\xc3(", INVALID, 0},
        {"3-byte lead then ASCII", "\xe2\x82(", INVALID, 0},
        {"4-byte lead, bad third byte", "\xf0\x90(\x80", INVALID, 0},
        /* truncated at the end: not valid, not (yet) rejected */
        {"truncated 2-byte", "\xce", TRUNCATED, 0},
        {"truncated 3-byte after 1", "\xe1", TRUNCATED, 0},
        {"truncated 3-byte after 2", "\xe1\xbd", TRUNCATED, 0},
        {"truncated 4-byte after 3", "\xf0\x90\x80", TRUNCATED, 0},
        {"kosme truncated", "\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce", TRUNCATED, 0},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        const unsigned char *in = (const unsigned char *)cases[i].in;
        size_t n = cases[i].len ? cases[i].len : strlen(cases[i].in);
        uint32_t st = utf8_split(in, n, n ? n : 1);
        bool ok = cases[i].want == VALID ? st == NBIO__UTF8_ACCEPT
                  : cases[i].want == INVALID ? st == NBIO__UTF8_REJECT
                                             : st != NBIO__UTF8_ACCEPT && st != NBIO__UTF8_REJECT;
        if (!ok)
            fail_msg("%s: state %u", cases[i].comment, st);
        /* Byte by byte, and in pieces of 2, 3, 7, 9: the same state. */
        static const size_t pieces[] = {1, 2, 3, 7, 9};
        for (size_t k = 0; k < ARRAY_LEN(pieces); k++)
            if (utf8_split(in, n, pieces[k]) != st)
                fail_msg("%s: pieces of %zu give another state", cases[i].comment, pieces[k]);
        /* Two pieces at every split. */
        for (size_t cut = 0; cut <= n; cut++) {
            uint32_t s2 = nbio__utf8_step(NBIO__UTF8_ACCEPT, in, cut);
            s2 = nbio__utf8_step(s2, in + cut, n - cut);
            if (s2 != st)
                fail_msg("%s: split at %zu gives another state", cases[i].comment, cut);
        }
        /* REJECT is sticky, whatever follows. */
        if (st == NBIO__UTF8_REJECT)
            assert_int_equal(nbio__utf8_step(st, (const unsigned char *)"abc", 3),
                             NBIO__UTF8_REJECT);
    }
    assert_int_equal(nbio__utf8_step(NBIO__UTF8_ACCEPT, NULL, 0), NBIO__UTF8_ACCEPT);
}

/* A straightforward reference: decodes whole characters and checks the
 * code point. True when p[0, n) is valid UTF-8. */
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

/* Every 1-, 2- and 3-byte string, and 4-byte strings over edge bytes,
 * agree with the reference (one call, and byte by byte). */
static void test_utf8_exhaustive(void **state)
{
    (void)state;
    unsigned char s[4];
    for (uint32_t v = 0; v < (1u << 24); v++) {
        s[0] = (unsigned char)(v >> 16);
        s[1] = (unsigned char)(v >> 8);
        s[2] = (unsigned char)v;
        for (size_t n = 1; n <= 3; n++) {
            if (n < 3 && (v & ((1u << (8 * (3 - n))) - 1)) != 0)
                continue; /* shorter strings: once each */
            bool want = utf8_ref(s, n);
            uint32_t st = nbio__utf8_step(NBIO__UTF8_ACCEPT, s, n);
            if ((st == NBIO__UTF8_ACCEPT) != want)
                fail_msg("%zu bytes %02x %02x %02x: state %u, reference %d", n, s[0], s[1],
                         s[2], st, want);
        }
    }
    static const unsigned char edge[] = {0x00, 0x41, 0x7f, 0x80, 0x8f, 0x90, 0x9f, 0xa0,
                                         0xbf, 0xc0, 0xc2, 0xdf, 0xe0, 0xed, 0xef, 0xf0,
                                         0xf4, 0xf5, 0xff};
    for (unsigned a = 0; a < 256; a++)
        for (size_t b = 0; b < sizeof edge; b++)
            for (size_t c = 0; c < sizeof edge; c++)
                for (size_t d = 0; d < sizeof edge; d++) {
                    s[0] = (unsigned char)a, s[1] = edge[b], s[2] = edge[c], s[3] = edge[d];
                    bool want = utf8_ref(s, 4);
                    uint32_t st = NBIO__UTF8_ACCEPT;
                    for (size_t k = 0; k < 4; k++)
                        st = nbio__utf8_step(st, s + k, 1);
                    if ((st == NBIO__UTF8_ACCEPT) != want ||
                        st != nbio__utf8_step(NBIO__UTF8_ACCEPT, s, 4))
                        fail_msg("%02x %02x %02x %02x: state %u, reference %d", s[0], s[1], s[2],
                                 s[3], st, want);
                }
}

/* ======================================================================== */
/* Close codes, handshake keys, masking keys                                 */
/* ======================================================================== */

static void test_close_codes(void **state)
{
    (void)state;
    static const struct {
        unsigned code;
        bool ok;
    } cases[] = {
        {0, false},    {999, false},  {1000, true},  {1001, true},  {1002, true},
        {1003, true},  {1004, false}, {1005, false}, {1006, false}, {1007, true},
        {1008, true},  {1009, true},  {1010, true},  {1011, true},  {1012, true},
        {1013, true},  {1014, true},  {1015, false}, {1016, false}, {1100, false},
        {2000, false}, {2999, false}, {3000, true},  {3999, true},  {4000, true},
        {4999, true},  {5000, false}, {65535, false}, {UINT_MAX, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (nbio__ws_close_code_ok(cases[i].code) != cases[i].ok)
            fail_msg("close code %u: want %d", cases[i].code, cases[i].ok);
}

static void test_accept_key(void **state)
{
    (void)state;
    char out[29];
    /* RFC 6455 §1.3. The key is taken by length: a longer buffer works. */
    const char *line = "dGhlIHNhbXBsZSBub25jZQ==\r\n";
    nbio__ws_accept_key(line, 24, out);
    assert_string_equal(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=");

    /* Long keys (the heap path) against a direct computation. */
    for (size_t n = 0; n < 400; n += 37) {
        char *key = malloc(n + 1);
        unsigned char cat[512], md[SHA_DIGEST_LENGTH];
        char want[29];
        assert_non_null(key);
        for (size_t i = 0; i < n; i++)
            key[i] = (char)('a' + i % 26);
        memcpy(cat, key, n);
        memcpy(cat + n, "258EAFA5-E914-47DA-95CA-C5AB0DC85B11", 36);
        SHA1(cat, n + 36, md);
        EVP_EncodeBlock((unsigned char *)want, md, sizeof md);
        nbio__ws_accept_key(key, n, out);
        assert_string_equal(out, want);
        free(key);
    }
}

static void test_key_ok(void **state)
{
    (void)state;
    static const struct {
        const char *key;
        bool ok;
    } cases[] = {
        {"dGhlIHNhbXBsZSBub25jZQ==", true},
        {"AAAAAAAAAAAAAAAAAAAAAA==", true},
        {"+/+/+/+/+/+/+/+/+/+/+/==", true},
        {"dGhlIHNhbXBsZSBub25jZR==", true},  /* unused bits not 0: still 16 bytes */
        {"dGhlIHNhbXBsZSBub25jZQ=", false},  /* 23 characters */
        {"dGhlIHNhbXBsZSBub25jZQ===", false}, /* 25 */
        {"AAAAAAAAAAAAAAAAAAAAAAA=", false}, /* 17 bytes */
        {"AAAAAAAAAAAAAAAAAAAAAAAA", false}, /* 18 bytes */
        {"AAAAAAAAAAAAAAAAAAAA", false},     /* 15 bytes */
        {"dGhlIHNhbXBsZSBub25jZ===", false}, /* '=' inside */
        {"dGhlIHNhbXBsZSBub25jZ-==", false}, /* base64url */
        {"dGhlIHNhbXBsZSBub25jZ_==", false},
        {"dGhlIHNhbXBsZSBub25j Q==", false},
        {" GhlIHNhbXBsZSBub25jZQ==", false},
        {"", false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++)
        if (nbio__ws_key_ok(cases[i].key, strlen(cases[i].key)) != cases[i].ok)
            fail_msg("key \"%s\": want %d", cases[i].key, cases[i].ok);
    /* Length is what counts, not a NUL. */
    assert_false(nbio__ws_key_ok("dGhlIHNhbXBsZSBub25jZQ==", 23));
    assert_false(nbio__ws_key_ok(NULL, 0));

    char a[25], b[25];
    assert_int_equal(nbio__ws_new_key(a), 0);
    assert_int_equal(nbio__ws_new_key(b), 0);
    assert_int_equal(strlen(a), 24);
    assert_int_equal(strlen(b), 24);
    assert_true(nbio__ws_key_ok(a, 24));
    assert_true(nbio__ws_key_ok(b, 24));
    assert_string_not_equal(a, b);
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void test_rng(void **state)
{
    (void)state;
    /* SipHash-2-4, the paper's key 00..0f and the 8-byte message 00..07
     * (test vector 8: 62 24 93 9a 79 f5 f5 93). */
    assert_true(nbio__ws_siphash8(0x0706050403020100ull, 0x0f0e0d0c0b0a0908ull,
                                  0x0706050403020100ull) == 0x93f5f5799a932462ull);

    nbio__ws_rng r, r2;
    assert_int_equal(nbio__ws_rng_init(&r), 0);
    assert_int_equal(nbio__ws_rng_init(&r2), 0);
    assert_false(r.s[0] == r2.s[0] && r.s[1] == r2.s[1]); /* seeded apart */
    enum { N = 4096 };
    uint32_t *keys = malloc(N * sizeof *keys);
    assert_non_null(keys);
    for (size_t i = 0; i < N; i++) {
        uint8_t m[4];
        nbio__ws_rng_mask(&r, m);
        memcpy(&keys[i], m, 4);
    }
    assert_int_equal(r.uses, N);
    qsort(keys, N, sizeof *keys, cmp_u32);
    size_t dups = 0;
    for (size_t i = 1; i < N; i++)
        dups += keys[i] == keys[i - 1];
    assert_true(dups <= 2); /* expected 0.002 among 4096 random 32-bit keys */
    free(keys);

    /* The reseed after NBIO__WS_RNG_RESEED keys: a new secret. */
    uint64_t s0 = r.s[0], s1 = r.s[1];
    r.uses = NBIO__WS_RNG_RESEED;
    uint8_t m[4];
    nbio__ws_rng_mask(&r, m);
    assert_int_equal(r.uses, 1);
    assert_false(r.s[0] == s0 && r.s[1] == s1);
}

/* ======================================================================== */
/* permessage-deflate: negotiation                                           */
/* ======================================================================== */

/* A head with up to 3 Sec-WebSocket-Extensions lines (NULL: absent), plus
 * an unrelated header first. */
static void make_head(nbio_http_head *h, nbio_http_header *fields, const char *const lines[3])
{
    memset(h, 0, sizeof *h);
    h->headers = fields;
    fields[0].name = (nbio_http_slice){"Upgrade", 7};
    fields[0].value = (nbio_http_slice){"websocket", 9};
    h->num_headers = 1;
    for (int i = 0; i < 3; i++) {
        if (lines[i] == NULL)
            continue;
        fields[h->num_headers].name =
            (nbio_http_slice){i == 1 ? "sec-websocket-EXTENSIONS" : "Sec-WebSocket-Extensions", 24};
        fields[h->num_headers].value = (nbio_http_slice){lines[i], strlen(lines[i])};
        h->num_headers++;
    }
}

#define MALFORMED (-1000) /* NBIO_EPROTOCOL from the syntax */

static void test_pmd_negotiate_server(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        const char *lines[3];
        int result;        /* 1, 0, or NBIO_EPROTOCOL */
        const char *answer; /* nbio__pmd_format(p, true) on 1, or the why */
    } cases[] = {
        {"no header", {NULL}, 0, NULL},
        {"plain offer (Firefox)", {"permessage-deflate"}, 1, "permessage-deflate"},
        {"bare client_max_window_bits (Chrome)", {"permessage-deflate; client_max_window_bits"},
         1, "permessage-deflate"},
        {"client_max_window_bits=10 is echoed", {"permessage-deflate; client_max_window_bits=10"},
         1, "permessage-deflate; client_max_window_bits=10"},
        {"server_max_window_bits=10 is honoured", {"permessage-deflate; server_max_window_bits=10"},
         1, "permessage-deflate; server_max_window_bits=10"},
        {"both windows 8",
         {"permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"}, 1,
         "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"},
        {"server_max_window_bits=15 needs no answer", {"permessage-deflate; server_max_window_bits=15"},
         1, "permessage-deflate"},
        {"quoted value", {"permessage-deflate; server_max_window_bits=\"10\""}, 1,
         "permessage-deflate; server_max_window_bits=10"},
        {"quoted value with an escape", {"permessage-deflate; client_max_window_bits=\"1\\2\""}, 1,
         "permessage-deflate; client_max_window_bits=12"},
        {"no context takeover both ways",
         {"permessage-deflate; client_no_context_takeover; server_no_context_takeover"}, 1,
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover"},
        {"names are case-insensitive", {"PerMessage-Deflate; Server_Max_Window_Bits=9"}, 1,
         "permessage-deflate; server_max_window_bits=9"},
        {"whitespace around separators",
         {" \tpermessage-deflate ;\tclient_max_window_bits = 12 ,x-webkit-deflate-frame "}, 1,
         "permessage-deflate; client_max_window_bits=12"},
        {"other extension first", {"x-webkit-deflate-frame, permessage-deflate"}, 1,
         "permessage-deflate"},
        {"offer on the second header line", {"foo; bar=1", "permessage-deflate; server_no_context_takeover"},
         1, "permessage-deflate; server_no_context_takeover"},
        {"empty list elements", {", ,permessage-deflate,,", ","}, 1, "permessage-deflate"},
        {"several offers: the first is taken",
         {"permessage-deflate; server_max_window_bits=10, permessage-deflate"}, 1,
         "permessage-deflate; server_max_window_bits=10"},
        /* Declined offers (RFC 7692 §7.1: decline, not fail); a later one may win. */
        {"window bits 7 declined", {"permessage-deflate; server_max_window_bits=7"}, 0, NULL},
        {"window bits 16 declined", {"permessage-deflate; client_max_window_bits=16"}, 0, NULL},
        {"window bits 0 declined", {"permessage-deflate; client_max_window_bits=0"}, 0, NULL},
        {"leading zero declined", {"permessage-deflate; server_max_window_bits=09"}, 0, NULL},
        {"window bits not a number", {"permessage-deflate; server_max_window_bits=ten"}, 0, NULL},
        {"window bits 100", {"permessage-deflate; server_max_window_bits=100"}, 0, NULL},
        {"server_max_window_bits without a value", {"permessage-deflate; server_max_window_bits"},
         0, NULL},
        {"duplicate parameter declined",
         {"permessage-deflate; client_max_window_bits; client_max_window_bits"}, 0, NULL},
        {"duplicate flag declined",
         {"permessage-deflate; server_no_context_takeover; Server_No_Context_Takeover"}, 0, NULL},
        {"flag with a value declined", {"permessage-deflate; client_no_context_takeover=1"}, 0,
         NULL},
        {"unknown parameter declined", {"permessage-deflate; mode=fast"}, 0, NULL},
        {"17 parameters declined",
         {"permessage-deflate;a;b;c;d;e;f;g;h;i;j;k;l;m;n;o;p;q"}, 0, NULL},
        {"declined offer, then a good one",
         {"permessage-deflate; server_max_window_bits=7, permessage-deflate; client_max_window_bits"},
         1, "permessage-deflate"},
        {"declined offer, good one on the next line",
         {"permessage-deflate; foo", NULL, "permessage-deflate; client_no_context_takeover"}, 1,
         "permessage-deflate; client_no_context_takeover"},
        {"only other extensions", {"x-foo; bar=1; baz, x-qux"}, 0, NULL},
        {"prefix of the name is another extension", {"permessage-deflatex, permessage"}, 0, NULL},
        {"empty value", {""}, 0, NULL},
        /* Malformed header values. */
        {"parameter name missing", {"permessage-deflate;"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: expected a parameter name"},
        {"value missing", {"permessage-deflate; client_max_window_bits="}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: bad parameter value"},
        {"= without a name", {"permessage-deflate; =10"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: expected a parameter name"},
        {"quoted extension name", {"\"permessage-deflate\""}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: expected an extension name"},
        {"unterminated quote", {"permessage-deflate; server_max_window_bits=\"10"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: bad parameter value"},
        {"empty quoted value", {"permessage-deflate; x=\"\""}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: bad parameter value"},
        {"quoted value not a token", {"permessage-deflate; x=\"a b\""}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: bad parameter value"},
        {"two values", {"permessage-deflate; x=a b"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: unexpected character"},
        {"bad character in a name", {"permessage@deflate"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: unexpected character"},
        {"malformed after an acceptable offer", {"permessage-deflate", "x;;"}, NBIO_EPROTOCOL,
         "Sec-WebSocket-Extensions: expected a parameter name"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        nbio_http_header fields[4];
        nbio_http_head h;
        make_head(&h, fields, cases[i].lines);
        nbio__pmd_params p;
        memset(&p, 0x5a, sizeof p);
        const char *why = NULL;
        int r = nbio__pmd_negotiate(&h, false, &p, &why);
        if (r != cases[i].result)
            fail_msg("%s: %d (%s), want %d", cases[i].comment, r, why ? why : "-",
                     cases[i].result);
        if (r == 1) {
            char buf[NBIO__PMD_FORMAT_MAX];
            int n = nbio__pmd_format(&p, true, buf, sizeof buf);
            assert_true(n > 0);
            if (strcmp(buf, cases[i].answer) != 0)
                fail_msg("%s: answer \"%s\", want \"%s\"", cases[i].comment, buf,
                         cases[i].answer);
        } else if (r < 0) {
            if (why == NULL || strcmp(why, cases[i].answer) != 0)
                fail_msg("%s: why \"%s\", want \"%s\"", cases[i].comment, why ? why : "-",
                         cases[i].answer);
        }
    }

    /* What a bare client_max_window_bits offer records. */
    nbio_http_header fields[4];
    nbio_http_head h;
    const char *lines[3] = {"permessage-deflate; client_max_window_bits", NULL, NULL};
    make_head(&h, fields, lines);
    nbio__pmd_params p;
    const char *why;
    assert_int_equal(nbio__pmd_negotiate(&h, false, &p, &why), 1);
    assert_true(p.client_max_window_bits_offered);
    assert_int_equal(p.client_max_window_bits, 15);
    assert_int_equal(p.server_max_window_bits, 15);
    assert_false(p.server_no_context_takeover || p.client_no_context_takeover);
}

static void test_pmd_negotiate_client(void **state)
{
    (void)state;
    /* The offer: its flags, windows and bare client_max_window_bits. */
    typedef struct offer {
        bool snct, cnct;
        int smwb, cmwb;
        bool cmwb_bare;
    } offer;
    static const offer chrome = {false, false, 15, 15, true};
    static const offer plain = {false, false, 15, 15, false};
    static const offer s10 = {false, false, 10, 15, true};
    static const offer snct = {true, false, 15, 15, true};
    static const offer cnct = {false, true, 15, 15, false};
    static const offer c10 = {false, false, 15, 10, false};
    static const struct {
        const char *comment;
        const offer *o;
        const char *lines[3];
        int result;
        /* agreed on 1: snct cnct smwb cmwb; why on errors */
        bool snct, cnct;
        int smwb, cmwb;
        const char *why;
    } cases[] = {
        {"declined: no header", &chrome, {NULL}, 0, 0, 0, 0, 0, NULL},
        {"declined: empty header", &chrome, {""}, 0, 0, 0, 0, 0, NULL},
        {"accepted plainly", &chrome, {"permessage-deflate"}, 1, 0, 0, 15, 15, NULL},
        {"client window limited", &chrome, {"permessage-deflate; client_max_window_bits=10"}, 1, 0,
         0, 15, 10, NULL},
        {"client window 8", &chrome, {"permessage-deflate; client_max_window_bits=8"}, 1, 0, 0, 15,
         8, NULL},
        {"server window added unasked", &chrome, {"permessage-deflate; server_max_window_bits=12"},
         1, 0, 0, 12, 15, NULL},
        {"flags added unasked", &plain,
         {"permessage-deflate; server_no_context_takeover; client_no_context_takeover"}, 1, 1, 1,
         15, 15, NULL},
        {"quoted and case-insensitive", &chrome,
         {"Permessage-Deflate; CLIENT_MAX_WINDOW_BITS=\"9\""}, 1, 0, 0, 15, 9, NULL},
        {"server window as asked", &s10, {"permessage-deflate; server_max_window_bits=10"}, 1, 0, 0,
         10, 15, NULL},
        {"server window smaller than asked", &s10, {"permessage-deflate; server_max_window_bits=9"},
         1, 0, 0, 9, 15, NULL},
        {"server window larger than asked", &s10, {"permessage-deflate; server_max_window_bits=11"},
         NBIO_EPROTOCOL, 0, 0, 0, 0, "permessage-deflate: server_max_window_bits larger than offered"},
        {"server window missing though asked", &s10, {"permessage-deflate"}, NBIO_EPROTOCOL, 0, 0, 0,
         0, "permessage-deflate: server_max_window_bits larger than offered"},
        {"server_no_context_takeover as asked", &snct,
         {"permessage-deflate; server_no_context_takeover"}, 1, 1, 0, 15, 15, NULL},
        {"server_no_context_takeover missing", &snct, {"permessage-deflate"}, NBIO_EPROTOCOL, 0, 0,
         0, 0, "permessage-deflate: server_no_context_takeover missing from the answer"},
        {"client_no_context_takeover offered holds", &cnct, {"permessage-deflate"}, 1, 0, 1, 15, 15,
         NULL},
        {"client window offered 10, answer 12: 10 holds", &c10,
         {"permessage-deflate; client_max_window_bits=12"}, 1, 0, 0, 15, 10, NULL},
        {"client window offered 10, answer 9", &c10,
         {"permessage-deflate; client_max_window_bits=9"}, 1, 0, 0, 15, 9, NULL},
        {"client window offered 10, no answer: 10 holds", &c10, {"permessage-deflate"}, 1, 0, 0, 15,
         10, NULL},
        {"client_max_window_bits not offered", &plain,
         {"permessage-deflate; client_max_window_bits=10"}, NBIO_EPROTOCOL, 0, 0, 0, 0,
         "permessage-deflate: client_max_window_bits in the answer was not offered"},
        {"client_max_window_bits without a value", &chrome,
         {"permessage-deflate; client_max_window_bits"}, NBIO_EPROTOCOL, 0, 0, 0, 0,
         "permessage-deflate: client_max_window_bits without a value"},
        {"window bits 7", &chrome, {"permessage-deflate; server_max_window_bits=7"}, NBIO_EPROTOCOL,
         0, 0, 0, 0, "permessage-deflate: server_max_window_bits is not 8..15"},
        {"window bits 16", &chrome, {"permessage-deflate; client_max_window_bits=16"},
         NBIO_EPROTOCOL, 0, 0, 0, 0, "permessage-deflate: client_max_window_bits is not 8..15"},
        {"duplicate parameter", &chrome,
         {"permessage-deflate; server_no_context_takeover; server_no_context_takeover"},
         NBIO_EPROTOCOL, 0, 0, 0, 0, "permessage-deflate: repeated parameter"},
        {"unknown parameter", &chrome, {"permessage-deflate; x=1"}, NBIO_EPROTOCOL, 0, 0, 0, 0,
         "permessage-deflate: unknown parameter"},
        {"flag with a value", &chrome, {"permessage-deflate; server_no_context_takeover=1"},
         NBIO_EPROTOCOL, 0, 0, 0, 0, "permessage-deflate: no_context_takeover takes no value"},
        {"extension not offered", &chrome, {"x-webkit-deflate-frame"}, NBIO_EPROTOCOL, 0, 0, 0, 0,
         "Sec-WebSocket-Extensions: the server chose an extension not offered"},
        {"extension not offered after ours", &chrome, {"permessage-deflate", "x-foo"},
         NBIO_EPROTOCOL, 0, 0, 0, 0,
         "Sec-WebSocket-Extensions: the server chose an extension not offered"},
        {"permessage-deflate twice", &chrome, {"permessage-deflate, permessage-deflate"},
         NBIO_EPROTOCOL, 0, 0, 0, 0,
         "Sec-WebSocket-Extensions: permessage-deflate twice in the answer"},
        {"twice over two lines", &chrome, {"permessage-deflate", NULL, "permessage-deflate"},
         NBIO_EPROTOCOL, 0, 0, 0, 0,
         "Sec-WebSocket-Extensions: permessage-deflate twice in the answer"},
        {"malformed", &chrome, {"permessage-deflate; server_max_window_bits=\"1"}, NBIO_EPROTOCOL, 0,
         0, 0, 0, "Sec-WebSocket-Extensions: bad parameter value"},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        nbio_http_header fields[4];
        nbio_http_head h;
        make_head(&h, fields, cases[i].lines);
        const offer *o = cases[i].o;
        nbio__pmd_params p;
        nbio__pmd_params_init(&p);
        p.server_no_context_takeover = o->snct;
        p.client_no_context_takeover = o->cnct;
        p.server_max_window_bits = o->smwb;
        p.client_max_window_bits = o->cmwb;
        p.client_max_window_bits_offered = o->cmwb_bare;
        nbio__pmd_params before = p;
        const char *why = NULL;
        int r = nbio__pmd_negotiate(&h, true, &p, &why);
        if (r != cases[i].result)
            fail_msg("%s: %d (%s), want %d", cases[i].comment, r, why ? why : "-",
                     cases[i].result);
        if (r == 1) {
            if (p.server_no_context_takeover != cases[i].snct ||
                p.client_no_context_takeover != cases[i].cnct ||
                p.server_max_window_bits != cases[i].smwb ||
                p.client_max_window_bits != cases[i].cmwb)
                fail_msg("%s: agreed %d %d %d %d, want %d %d %d %d", cases[i].comment,
                         p.server_no_context_takeover, p.client_no_context_takeover,
                         p.server_max_window_bits, p.client_max_window_bits, cases[i].snct,
                         cases[i].cnct, cases[i].smwb, cases[i].cmwb);
        } else {
            /* Left alone unless accepted. */
            assert_memory_equal(&p, &before, sizeof p);
            if (r < 0 && (why == NULL || strcmp(why, cases[i].why) != 0))
                fail_msg("%s: why \"%s\", want \"%s\"", cases[i].comment, why ? why : "-",
                         cases[i].why);
        }
    }
}

static void test_pmd_format(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        nbio__pmd_params p;
        bool is_response;
        const char *want; /* NULL: -1 */
    } cases[] = {
        {"default offer", {false, false, 15, 15, false}, false, "permessage-deflate"},
        {"zeroed params are the defaults", {false, false, 0, 0, false}, false,
         "permessage-deflate"},
        {"offer with bare client_max_window_bits", {false, false, 15, 15, true}, false,
         "permessage-deflate; client_max_window_bits"},
        {"offer with everything (the longest value, 128 characters)", {true, true, 10, 11, true}, false,
         "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
         "server_max_window_bits=10; client_max_window_bits=11"},
        {"offer with a client window, flag unset", {false, false, 15, 12, false}, false,
         "permessage-deflate; client_max_window_bits=12"},
        {"plain answer", {false, false, 15, 15, true}, true, "permessage-deflate"},
        {"answer with windows", {false, false, 8, 8, true}, true,
         "permessage-deflate; server_max_window_bits=8; client_max_window_bits=8"},
        {"answer: client window only if offered", {false, true, 15, 8, false}, true,
         "permessage-deflate; client_no_context_takeover"},
        {"window bits 7", {false, false, 7, 15, false}, false, NULL},
        {"window bits 16", {false, false, 15, 16, false}, true, NULL},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        char buf[256];
        int n = nbio__pmd_format(&cases[i].p, cases[i].is_response, buf, sizeof buf);
        if (cases[i].want == NULL) {
            if (n != -1)
                fail_msg("%s: %d, want -1", cases[i].comment, n);
            continue;
        }
        if (n < 0 || strcmp(buf, cases[i].want) != 0 || (size_t)n != strlen(cases[i].want))
            fail_msg("%s: %d \"%s\", want \"%s\"", cases[i].comment, n, n >= 0 ? buf : "",
                     cases[i].want);
        assert_true(n < NBIO__PMD_FORMAT_MAX);
        /* Every cap that is too small: -1; exactly enough: the value. */
        for (size_t cap = 0; cap <= (size_t)n; cap++)
            assert_int_equal(nbio__pmd_format(&cases[i].p, cases[i].is_response, buf, cap), -1);
        assert_int_equal(nbio__pmd_format(&cases[i].p, cases[i].is_response, buf, (size_t)n + 1),
                         n);
        assert_string_equal(buf, cases[i].want);
    }

    /* An offer formatted, parsed by a server, answered, parsed by the
     * client: both ends agree. */
    nbio__pmd_params o = {true, false, 10, 11, true};
    char offer[NBIO__PMD_FORMAT_MAX], answer[NBIO__PMD_FORMAT_MAX];
    assert_true(nbio__pmd_format(&o, false, offer, sizeof offer) > 0);
    nbio_http_header fields[4];
    nbio_http_head h;
    const char *l1[3] = {offer, NULL, NULL};
    make_head(&h, fields, l1);
    nbio__pmd_params srv;
    const char *why;
    assert_int_equal(nbio__pmd_negotiate(&h, false, &srv, &why), 1);
    assert_true(nbio__pmd_format(&srv, true, answer, sizeof answer) > 0);
    const char *l2[3] = {answer, NULL, NULL};
    make_head(&h, fields, l2);
    nbio__pmd_params cli = o;
    assert_int_equal(nbio__pmd_negotiate(&h, true, &cli, &why), 1);
    assert_int_equal(cli.server_no_context_takeover, srv.server_no_context_takeover);
    assert_int_equal(cli.client_no_context_takeover, srv.client_no_context_takeover);
    assert_int_equal(cli.server_max_window_bits, srv.server_max_window_bits);
    assert_int_equal(cli.client_max_window_bits, srv.client_max_window_bits);
    assert_int_equal(cli.server_max_window_bits, 10);
    assert_int_equal(cli.client_max_window_bits, 11);
}

/* ======================================================================== */
/* permessage-deflate: compression                                           */
/* ======================================================================== */

static void inflate_ok_at(int line, nbio__pmd *z, const void *in, size_t len, const char *want)
{
    nbio__bytes out = {0};
    int r = nbio__pmd_inflate(z, in, len, &out, 1 << 20);
    if (r != 0)
        fail_msg("line %d: inflate: %s, want \"%s\"", line, nbio_errname(r), want);
    assert_int_equal(out.len, strlen(want));
    if (out.len)
        assert_memory_equal(nbio__bytes_peek(&out), want, out.len);
    nbio__bytes_free(&out);
}

#define inflate_ok(...) inflate_ok_at(__LINE__, __VA_ARGS__)

/* RFC 7692 §7.2.3: the examples, as a client receives them from a server. */
static void test_pmd_rfc_vectors(void **state)
{
    (void)state;
    nbio__pmd_params p;
    nbio__pmd_params_init(&p);
    nbio__pmd z;

    /* §7.2.3.1: "Hello" in one compressed block. */
    static const unsigned char hello[] = {0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00};
    assert_int_equal(nbio__pmd_init(&z, &p, false), 0);
    inflate_ok(&z, hello, sizeof hello, "Hello");
    /* §7.2.3.2: the second "Hello" refers back into the first. */
    static const unsigned char hello2[] = {0xf2, 0x00, 0x11, 0x00, 0x00};
    inflate_ok(&z, hello2, sizeof hello2, "Hello");
    /* §7.2.3.3: a block with no compression. */
    static const unsigned char stored[] = {0x00, 0x05, 0x00, 0xfa, 0xff, 0x48,
                                           0x65, 0x6c, 0x6c, 0x6f, 0x00};
    inflate_ok(&z, stored, sizeof stored, "Hello");
    /* §7.2.3.5: two blocks in one message. */
    static const unsigned char two[] = {0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff,
                                        0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00};
    inflate_ok(&z, two, sizeof two, "Hello");
    /* §7.2.3.6: an empty message (00), and an empty payload. */
    inflate_ok(&z, "", 1, "");
    inflate_ok(&z, "", 0, "");
    /* §7.2.3.4: BFINAL set, with a trailing byte; the window lives on, so
     * a message after it may still refer back to "Hello". */
    static const unsigned char final_block[] = {0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00};
    inflate_ok(&z, final_block, sizeof final_block, "Hello");
    inflate_ok(&z, hello2, sizeof hello2, "Hello");
    nbio__pmd_free(&z);
    nbio__pmd_free(&z); /* twice is fine */

    /* Our compressor gives the RFC's bytes for "Hello", then the shared
     * window form for the second one. */
    assert_int_equal(nbio__pmd_init(&z, &p, true), 0);
    nbio__bytes out = {0};
    assert_int_equal(nbio__pmd_deflate(&z, "Hello", 5, &out), 0);
    assert_int_equal(out.len, sizeof hello);
    assert_memory_equal(nbio__bytes_peek(&out), hello, sizeof hello);
    out.len = 0;
    assert_int_equal(nbio__pmd_deflate(&z, "Hello", 5, &out), 0);
    assert_int_equal(out.len, sizeof hello2);
    assert_memory_equal(nbio__bytes_peek(&out), hello2, sizeof hello2);
    out.len = 0;
    assert_int_equal(nbio__pmd_deflate(&z, NULL, 0, &out), 0); /* empty: 00 */
    assert_int_equal(out.len, 1);
    assert_int_equal(nbio__bytes_peek(&out)[0], 0);
    nbio__bytes_free(&out);
    nbio__pmd_free(&z);

    /* Set up but never used: nothing allocated, nothing to free. */
    assert_int_equal(nbio__pmd_init(&z, &p, true), 0);
    assert_false(z.def_ready || z.inf_ready);
    nbio__pmd_free(&z);
    /* Window bits out of range. */
    p.server_max_window_bits = 16;
    assert_int_equal(nbio__pmd_init(&z, &p, true), NBIO_EINVAL);
    nbio__pmd_free(&z);
}

/* Messages of the round-trip test: sizes and kinds. */
static unsigned char *make_message(int kind, size_t *len)
{
    static const size_t sizes[] = {0, 5, 1 << 20, 1 << 20, 3000, 70000};
    size_t n = sizes[kind];
    unsigned char *m = malloc(n ? n : 1);
    assert_non_null(m);
    switch (kind) {
    case 1:
        memcpy(m, "Hello", 5);
        break;
    case 2: /* random: incompressible */
        tu_pattern(m, n, 7);
        break;
    case 3: /* repetitive text */
    case 5:
        for (size_t i = 0; i < n; i++)
            m[i] = (unsigned char)"the quick brown fox jumps over the lazy dog. "[i % 45];
        break;
    case 4: /* a random 300-byte block repeated: distances of 300 */
        tu_pattern(m, 300, 9);
        for (size_t i = 300; i < n; i++)
            m[i] = m[i - 300];
        break;
    default:
        break;
    }
    *len = n;
    return m;
}

/* Sends every message kind, twice, from sender to receiver, and checks
 * what arrives: the context carries over (or not) across many messages. */
static void send_all(nbio__pmd *snd, nbio__pmd *rcv)
{
    for (int round = 0; round < 2; round++) {
        for (int kind = 0; kind < 6; kind++) {
            size_t len;
            unsigned char *m = make_message(kind, &len);
            nbio__bytes c = {0}, d = {0};
            assert_int_equal(nbio__pmd_deflate(snd, m, len, &c), 0);
            /* The receiver gets what was sent with some bytes before it in
             * its output buffer: they stay, and max counts only the new. */
            assert_int_equal(nbio__bytes_append(&d, "xy", 2), 0);
            int r = nbio__pmd_inflate(rcv, nbio__bytes_peek(&c), c.len, &d, len);
            if (r != 0)
                fail_msg("round %d kind %d: %s", round, kind, nbio_errname(r));
            assert_int_equal(d.len, len + 2);
            assert_memory_equal(nbio__bytes_peek(&d), "xy", 2);
            if (len)
                assert_memory_equal(nbio__bytes_peek(&d) + 2, m, len);
            nbio__bytes_free(&c);
            nbio__bytes_free(&d);
            free(m);
        }
    }
}

/* Sends the same message twice (a 2000-byte random block, which only a
 * reference to the previous message can compress); returns the
 * compressed size of the second relative to the first (percent). */
static size_t send_twice(nbio__pmd *snd, nbio__pmd *rcv)
{
    unsigned char m[2000];
    size_t sizes[2];
    tu_pattern(m, sizeof m, 11);
    for (int k = 0; k < 2; k++) {
        nbio__bytes c = {0}, d = {0};
        assert_int_equal(nbio__pmd_deflate(snd, m, sizeof m, &c), 0);
        sizes[k] = c.len;
        assert_int_equal(nbio__pmd_inflate(rcv, nbio__bytes_peek(&c), c.len, &d, sizeof m), 0);
        assert_int_equal(d.len, sizeof m);
        assert_memory_equal(nbio__bytes_peek(&d), m, sizeof m);
        nbio__bytes_free(&c);
        nbio__bytes_free(&d);
    }
    return sizes[1] * 100 / sizes[0];
}

/* With takeover and a window that holds 2000 bytes (11 bits and more),
 * the second copy is a few bytes; with takeover and a smaller window, it
 * cannot be much smaller; without takeover the compressor starts afresh and
 * gives the same bytes. */
static bool takeover_shows(bool takeover, int bits, size_t pct)
{
    if (!takeover)
        return pct == 100;
    return bits >= 11 ? pct <= 5 : pct >= 90;
}

static void test_pmd_round_trips(void **state)
{
    (void)state;
    static const struct {
        const char *comment;
        nbio__pmd_params p;
        bool server_takeover, client_takeover; /* the effect expected */
    } cases[] = {
        {"defaults: context takeover both ways", {false, false, 15, 15, false}, true, true},
        {"no context takeover both ways", {true, true, 15, 15, false}, false, false},
        {"server_no_context_takeover only", {true, false, 15, 15, false}, false, true},
        {"client_no_context_takeover only", {false, true, 15, 15, false}, true, false},
        {"windows 8", {false, false, 8, 8, true}, true, true},
        {"windows 9 and 12", {false, false, 9, 12, true}, true, true},
        {"windows 12, no takeover", {true, true, 12, 12, true}, false, false},
    };
    for (size_t i = 0; i < ARRAY_LEN(cases); i++) {
        nbio__pmd srv, cli;
        assert_int_equal(nbio__pmd_init(&srv, &cases[i].p, true), 0);
        assert_int_equal(nbio__pmd_init(&cli, &cases[i].p, false), 0);
        send_all(&srv, &cli);
        send_all(&cli, &srv);
        size_t pct = send_twice(&srv, &cli);
        if (!takeover_shows(cases[i].server_takeover, cases[i].p.server_max_window_bits, pct))
            fail_msg("%s: server to client, second copy %zu%%", cases[i].comment, pct);
        pct = send_twice(&cli, &srv);
        if (!takeover_shows(cases[i].client_takeover, cases[i].p.client_max_window_bits, pct))
            fail_msg("%s: client to server, second copy %zu%%", cases[i].comment, pct);
        nbio__pmd_free(&srv);
        nbio__pmd_free(&cli);
    }
}

/* Window bits 8: zlib compresses with 9, but must never reach back more
 * than 256 bytes; a raw inflater with an 8-bit window decodes it. */
static void test_pmd_window_8(void **state)
{
    (void)state;
    nbio__pmd_params p = {false, false, 8, 8, true};
    nbio__pmd z;
    assert_int_equal(nbio__pmd_init(&z, &p, true), 0);
    z_stream inf;
    memset(&inf, 0, sizeof inf);
    assert_int_equal(inflateInit2(&inf, -8), Z_OK);
    for (size_t period = 200; period <= 520; period += 40) {
        enum { N = 20000 };
        unsigned char *m = malloc(N), *back = malloc(N + 16);
        assert_non_null(m);
        assert_non_null(back);
        tu_pattern(m, period, (uint32_t)period);
        for (size_t i = period; i < N; i++)
            m[i] = m[i - period];
        nbio__bytes c = {0};
        assert_int_equal(nbio__pmd_deflate(&z, m, N, &c), 0);
        assert_int_equal(nbio__bytes_append(&c, "\x00\x00\xff\xff", 4), 0);
        inf.next_in = (unsigned char *)(uintptr_t)nbio__bytes_peek(&c);
        inf.avail_in = (uInt)c.len;
        inf.next_out = back;
        inf.avail_out = N + 16;
        int r = inflate(&inf, Z_SYNC_FLUSH);
        if (r != Z_OK || inf.avail_in != 0 || N + 16 - inf.avail_out != N)
            fail_msg("period %zu: inflate with an 8-bit window: %d (%s)", period, r,
                     inf.msg ? inf.msg : "-");
        assert_memory_equal(back, m, N);
        nbio__bytes_free(&c);
        free(m);
        free(back);
    }
    inflateEnd(&inf);
    nbio__pmd_free(&z);
}

static void test_pmd_inflate_errors(void **state)
{
    (void)state;
    nbio__pmd_params p;
    nbio__pmd_params_init(&p);
    nbio__pmd snd, rcv;

    /* A bomb: 1 MiB of zeros compress to about a kilobyte; inflated with
     * max 1000, it stops after at most 1001 bytes of output. */
    size_t big = 1 << 20;
    unsigned char *zeros = calloc(big, 1);
    assert_non_null(zeros);
    assert_int_equal(nbio__pmd_init(&snd, &p, true), 0);
    nbio__bytes bomb = {0};
    assert_int_equal(nbio__pmd_deflate(&snd, zeros, big, &bomb), 0);
    assert_true(bomb.len < 2000);
    assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
    nbio__bytes out = {0};
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&bomb), bomb.len, &out, 1000),
                     NBIO_ETOOLARGE);
    assert_int_equal(out.len, 0);            /* rolled back */
    assert_true(out.cap <= 1024);            /* the buffer never held more than max */
    assert_true(rcv.inf.total_out <= 1001);  /* zlib produced at most max + 1 */
    nbio__pmd_free(&rcv);
    nbio__bytes_free(&bomb);
    nbio__bytes_free(&out);

    /* Exactly max is fine; one less is too large (a sender without
     * context takeover, so the same message can be inflated afresh). */
    nbio__bytes c = {0};
    nbio__pmd_free(&snd);
    p.server_no_context_takeover = true;
    assert_int_equal(nbio__pmd_init(&snd, &p, true), 0);
    assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
    assert_int_equal(nbio__pmd_deflate(&snd, zeros, 1000, &c), 0);
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &out, 1000), 0);
    assert_int_equal(out.len, 1000);
    out.len = 0;
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &out, 999),
                     NBIO_ETOOLARGE);
    assert_int_equal(out.len, 0);
    nbio__pmd_free(&rcv);
    /* max 0: only an empty message. */
    assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
    assert_int_equal(nbio__pmd_inflate(&rcv, "", 1, &out, 0), 0);
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &out, 0),
                     NBIO_ETOOLARGE);
    nbio__pmd_free(&rcv);
    /* The output buffer's own max counts too. */
    nbio__bytes capped = {.max = 500};
    assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &capped, 1000),
                     NBIO_ETOOLARGE);
    assert_int_equal(capped.len, 0);
    nbio__bytes_free(&capped);
    nbio__pmd_free(&rcv);
    nbio__bytes_free(&c);

    /* Not deflate data, and a message cut inside a block. */
    static const struct {
        const char *comment;
        const unsigned char *in;
        size_t len;
    } bad[] = {
        {"reserved block type 3", (const unsigned char *)"\xff\xff\xff", 3},
        {"stored block LEN/NLEN mismatch", (const unsigned char *)"\x00\x05\x00\x05\x00", 5},
        {"fixed block cut before its end", (const unsigned char *)"\xf2\x48\xcd", 3},
    };
    for (size_t i = 0; i < ARRAY_LEN(bad); i++) {
        assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
        assert_int_equal(nbio__bytes_append(&out, "keep", 4), 0);
        int r = nbio__pmd_inflate(&rcv, bad[i].in, bad[i].len, &out, 1 << 20);
        if (r != NBIO_EPROTOCOL)
            fail_msg("%s: %s", bad[i].comment, nbio_errname(r));
        assert_int_equal(out.len, 4);
        out.len = 0;
        nbio__pmd_free(&rcv);
    }
    /* Random data compressed (a stored block, then the 00 that starts the
     * flush's empty block), then its last 1-4 bytes cut off: the supplied
     * tail no longer completes a block. (Cutting 5 or more would be caught
     * only by chance: 00 00 FF FF can stand in for 4 missing data bytes of
     * a stored block, and deflate has no checksum.) */
    unsigned char rnd[1000];
    tu_pattern(rnd, sizeof rnd, 3);
    assert_int_equal(nbio__pmd_deflate(&snd, rnd, sizeof rnd, &c), 0);
    for (size_t cut = 1; cut <= 4; cut++) {
        assert_int_equal(nbio__pmd_init(&rcv, &p, false), 0);
        int r = nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len - cut, &out, 1 << 20);
        if (r != NBIO_EPROTOCOL)
            fail_msg("cut %zu: %s", cut, nbio_errname(r));
        nbio__pmd_free(&rcv);
    }
    nbio__bytes_free(&c);
    nbio__pmd_free(&snd);

    /* A peer reaching further back than its agreed window: compressed
     * with 15 bits, repeats at distance 1000, received with 9 bits. */
    nbio__pmd_params wide, narrow;
    nbio__pmd_params_init(&wide);
    nbio__pmd_params_init(&narrow);
    narrow.server_max_window_bits = 9;
    assert_int_equal(nbio__pmd_init(&snd, &wide, true), 0);
    assert_int_equal(nbio__pmd_init(&rcv, &narrow, false), 0);
    unsigned char rep[4000];
    tu_pattern(rep, 1000, 5);
    for (size_t i = 1000; i < sizeof rep; i++)
        rep[i] = rep[i - 1000];
    assert_int_equal(nbio__pmd_deflate(&snd, rep, sizeof rep, &c), 0);
    assert_int_equal(nbio__pmd_inflate(&rcv, nbio__bytes_peek(&c), c.len, &out, 1 << 20),
                     NBIO_EPROTOCOL);
    nbio__bytes_free(&c);
    nbio__bytes_free(&out);
    nbio__pmd_free(&snd);
    nbio__pmd_free(&rcv);
    free(zeros);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_header_round_trip),
        cmocka_unit_test(test_header_rfc_examples),
        cmocka_unit_test(test_header_accepted),
        cmocka_unit_test(test_header_rejections),
        cmocka_unit_test(test_mask),
        cmocka_unit_test(test_utf8_table),
        cmocka_unit_test(test_utf8_exhaustive),
        cmocka_unit_test(test_close_codes),
        cmocka_unit_test(test_accept_key),
        cmocka_unit_test(test_key_ok),
        cmocka_unit_test(test_rng),
        cmocka_unit_test(test_pmd_negotiate_server),
        cmocka_unit_test(test_pmd_negotiate_client),
        cmocka_unit_test(test_pmd_format),
        cmocka_unit_test(test_pmd_rfc_vectors),
        cmocka_unit_test(test_pmd_round_trips),
        cmocka_unit_test(test_pmd_window_8),
        cmocka_unit_test(test_pmd_inflate_errors),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
