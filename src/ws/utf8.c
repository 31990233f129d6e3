/* UTF-8 validation (stub, being written). */
#include "ws/codec.h"

uint32_t nbio__utf8_step(uint32_t state, const unsigned char *p, size_t len)
{
    (void)p;
    (void)len;
    return state;
}
