/* The opening handshake's keys (stub, being written). */
#include <string.h>

#include "ws/codec.h"

void nbio__ws_accept_key(const char *key, size_t key_len, char out[29])
{
    (void)key;
    (void)key_len;
    out[0] = '\0';
}

int nbio__ws_new_key(char out[25])
{
    out[0] = '\0';
    return NBIO_EIO;
}

bool nbio__ws_key_ok(const char *key, size_t len)
{
    (void)key;
    return len == 24;
}
