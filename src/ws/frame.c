/* WebSocket frames (stub, being written). */
#include <string.h>

#include "ws/codec.h"

int nbio__ws_parse_header(const unsigned char *buf, size_t len, nbio__ws_frame *f,
                          const char **why)
{
    (void)buf;
    (void)len;
    (void)f;
    (void)why;
    return 0;
}

size_t nbio__ws_encode_header(unsigned char *out, uint8_t opcode, bool fin, bool rsv1,
                              uint64_t len, const uint8_t *mask)
{
    (void)out;
    (void)opcode;
    (void)fin;
    (void)rsv1;
    (void)len;
    (void)mask;
    return 2;
}

void nbio__ws_mask(unsigned char *data, size_t len, const uint8_t mask[4], uint64_t offset)
{
    for (size_t i = 0; i < len; i++)
        data[i] ^= mask[(offset + i) & 3];
}

bool nbio__ws_close_code_ok(unsigned code)
{
    (void)code;
    return false;
}

int nbio__ws_rng_init(nbio__ws_rng *r)
{
    memset(r, 0, sizeof *r);
    return 0;
}

void nbio__ws_rng_mask(nbio__ws_rng *r, uint8_t mask[4])
{
    (void)r;
    memset(mask, 0, 4);
}
