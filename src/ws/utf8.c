/*
 * Incremental UTF-8 validation (RFC 3629). See codec.h.
 *
 * A state in progress records what the next byte must be: bits 16-17 the
 * continuation bytes still expected (1-3), bits 8-15 the lowest and bits
 * 0-7 the highest value the next one may have. The first continuation byte
 * of some lead bytes has a narrower range, which is what excludes
 * overlongs (E0, F0), surrogates (ED) and code points above U+10FFFF (F4);
 * every later one is 80-BF. In-progress states are >= 0x10000, so they
 * never equal ACCEPT (0) or REJECT (1).
 */
#include <stdint.h>
#include <string.h>

#include "ws/codec.h"

#define NEED(n, lo, hi) (((uint32_t)(n) << 16) | ((uint32_t)(lo) << 8) | (uint32_t)(hi))

/* The state after lead byte b (>= 0x80) in state ACCEPT. */
static uint32_t lead(unsigned b)
{
    if (b < 0xc2) /* a continuation byte, or C0/C1 (overlong 2-byte forms) */
        return NBIO__UTF8_REJECT;
    if (b < 0xe0)
        return NEED(1, 0x80, 0xbf);
    if (b < 0xf0) {
        if (b == 0xe0)
            return NEED(2, 0xa0, 0xbf); /* E0 80-9F would be overlong */
        if (b == 0xed)
            return NEED(2, 0x80, 0x9f); /* ED A0-BF would be a surrogate */
        return NEED(2, 0x80, 0xbf);
    }
    if (b == 0xf0)
        return NEED(3, 0x90, 0xbf); /* F0 80-8F would be overlong */
    if (b < 0xf4)
        return NEED(3, 0x80, 0xbf);
    if (b == 0xf4)
        return NEED(3, 0x80, 0x8f); /* F4 90-BF would be above U+10FFFF */
    return NBIO__UTF8_REJECT;       /* F5-FF */
}

uint32_t nbio__utf8_step(uint32_t state, const unsigned char *p, size_t len)
{
    if (len == 0 || state == NBIO__UTF8_REJECT)
        return state;
    const unsigned char *end = p + len;
    while (p < end) {
        if (state == NBIO__UTF8_ACCEPT) {
            /* ASCII, 8 bytes at a time. */
            while ((size_t)(end - p) >= 8) {
                uint64_t v;
                memcpy(&v, p, 8);
                if ((v & 0x8080808080808080ull) != 0)
                    break;
                p += 8;
            }
            while (p < end && *p < 0x80)
                p++;
            if (p == end)
                break;
            uint32_t st = lead(*p);
            if (st == NBIO__UTF8_REJECT)
                return st;
            size_t need = st >> 16;
            if ((size_t)(end - p) > need) {
                /* The whole character is here: check it in place. */
                if (p[1] < ((st >> 8) & 0xffu) || p[1] > (st & 0xffu))
                    return NBIO__UTF8_REJECT;
                for (size_t k = 2; k <= need; k++)
                    if ((p[k] & 0xc0u) != 0x80u)
                        return NBIO__UTF8_REJECT;
                p += need + 1;
                continue;
            }
            /* Split at the end of p: carry the state over. */
            state = st;
            p++;
            continue;
        }
        unsigned b = *p++;
        if (b < ((state >> 8) & 0xffu) || b > (state & 0xffu))
            return NBIO__UTF8_REJECT;
        uint32_t left = (state >> 16) - 1;
        state = left != 0 ? NEED(left, 0x80, 0xbf) : NBIO__UTF8_ACCEPT;
    }
    return state;
}
