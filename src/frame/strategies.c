/* The built-in framing strategies: length prefixes and newline delimiting. */
#include <string.h>

#include "nbio/frame.h"

/* Length-prefixed frames: hdr_size bytes of length, then the payload. */
static int decode_prefixed(const unsigned char *buf, size_t len, size_t hdr_size,
                           uint64_t payload_len, size_t max_payload, nbio_frame_info *info)
{
    if (payload_len > max_payload || payload_len > SIZE_MAX - hdr_size)
        return NBIO_ETOOLARGE;
    size_t total = hdr_size + (size_t)payload_len;
    info->need = total;
    if (len < total)
        return 0;
    (void)buf;
    info->frame_len = total;
    info->payload_off = hdr_size;
    info->payload_len = (size_t)payload_len;
    return 1;
}

static int u64le_decode(const nbio_frame_strategy *st, const unsigned char *b, size_t len,
                        size_t scanned, bool eof, size_t max, nbio_frame_info *info)
{
    (void)st, (void)scanned, (void)eof;
    if (len < 8) {
        info->need = 8;
        return 0;
    }
    uint64_t n = (uint64_t)b[0] | (uint64_t)b[1] << 8 | (uint64_t)b[2] << 16 |
                 (uint64_t)b[3] << 24 | (uint64_t)b[4] << 32 | (uint64_t)b[5] << 40 |
                 (uint64_t)b[6] << 48 | (uint64_t)b[7] << 56;
    return decode_prefixed(b, len, 8, n, max, info);
}

static int u64le_encode(const nbio_frame_strategy *st, const void *payload, size_t n,
                        unsigned char *h, size_t *hl, unsigned char *t, size_t *tl)
{
    (void)st, (void)payload, (void)t;
    uint64_t v = n;
    for (int i = 0; i < 8; i++)
        h[i] = (unsigned char)(v >> (8 * i));
    *hl = 8;
    *tl = 0;
    return 0;
}

static int u32be_decode(const nbio_frame_strategy *st, const unsigned char *b, size_t len,
                        size_t scanned, bool eof, size_t max, nbio_frame_info *info)
{
    (void)st, (void)scanned, (void)eof;
    if (len < 4) {
        info->need = 4;
        return 0;
    }
    uint32_t n = (uint32_t)b[0] << 24 | (uint32_t)b[1] << 16 | (uint32_t)b[2] << 8 | b[3];
    return decode_prefixed(b, len, 4, n, max, info);
}

static int u32be_encode(const nbio_frame_strategy *st, const void *payload, size_t n,
                        unsigned char *h, size_t *hl, unsigned char *t, size_t *tl)
{
    (void)st, (void)payload, (void)t;
    if ((uint64_t)n > UINT32_MAX)
        return NBIO_ETOOLARGE;
    h[0] = (unsigned char)(n >> 24);
    h[1] = (unsigned char)(n >> 16);
    h[2] = (unsigned char)(n >> 8);
    h[3] = (unsigned char)n;
    *hl = 4;
    *tl = 0;
    return 0;
}

static int u16be_decode(const nbio_frame_strategy *st, const unsigned char *b, size_t len,
                        size_t scanned, bool eof, size_t max, nbio_frame_info *info)
{
    (void)st, (void)scanned, (void)eof;
    if (len < 2) {
        info->need = 2;
        return 0;
    }
    uint16_t n = (uint16_t)((unsigned)b[0] << 8 | b[1]);
    return decode_prefixed(b, len, 2, n, max, info);
}

static int u16be_encode(const nbio_frame_strategy *st, const void *payload, size_t n,
                        unsigned char *h, size_t *hl, unsigned char *t, size_t *tl)
{
    (void)st, (void)payload, (void)t;
    if (n > UINT16_MAX)
        return NBIO_ETOOLARGE;
    h[0] = (unsigned char)(n >> 8);
    h[1] = (unsigned char)n;
    *hl = 2;
    *tl = 0;
    return 0;
}

static int line_decode(const nbio_frame_strategy *st, const unsigned char *b, size_t len,
                       size_t scanned, bool eof, size_t max, nbio_frame_info *info)
{
    (void)st, (void)eof;
    if (scanned > len)
        scanned = 0;
    const unsigned char *nl = memchr(b + scanned, '\n', len - scanned);
    if (nl == NULL) {
        info->need = 0;
        return len > max ? NBIO_ETOOLARGE : 0;
    }
    size_t n = (size_t)(nl - b);
    if (n > max)
        return NBIO_ETOOLARGE;
    info->frame_len = n + 1;
    info->payload_off = 0;
    info->payload_len = n;
    return 1;
}

static int line_encode(const nbio_frame_strategy *st, const void *payload, size_t n,
                       unsigned char *h, size_t *hl, unsigned char *t, size_t *tl)
{
    (void)st, (void)h;
    if (memchr(payload, '\n', n) != NULL)
        return NBIO_EINVAL;
    *hl = 0;
    t[0] = '\n';
    *tl = 1;
    return 0;
}

const nbio_frame_strategy nbio_frame_u64le = {"u64", 8, 0, u64le_decode, u64le_encode, NULL};
const nbio_frame_strategy nbio_frame_u32be = {"u32", 4, 0, u32be_decode, u32be_encode, NULL};
const nbio_frame_strategy nbio_frame_u16be = {"u16", 2, 0, u16be_decode, u16be_encode, NULL};
const nbio_frame_strategy nbio_frame_line = {"line", 0, 1, line_decode, line_encode, NULL};

const nbio_frame_strategy *nbio_frame_strategy_named(const char *name)
{
    static const nbio_frame_strategy *const all[] = {&nbio_frame_u64le, &nbio_frame_u32be,
                                                     &nbio_frame_u16be, &nbio_frame_line};
    for (size_t i = 0; name != NULL && i < sizeof all / sizeof all[0]; i++)
        if (strcmp(all[i]->name, name) == 0)
            return all[i];
    return NULL;
}
