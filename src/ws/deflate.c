/* permessage-deflate (stub, being written). */
#include <string.h>

#include "ws/codec.h"

void nbio__pmd_params_init(nbio__pmd_params *p)
{
    memset(p, 0, sizeof *p);
    p->server_max_window_bits = 15;
    p->client_max_window_bits = 15;
}

int nbio__pmd_negotiate(const nbio_http_head *h, bool is_response, nbio__pmd_params *p,
                        const char **why)
{
    (void)h;
    (void)is_response;
    (void)p;
    (void)why;
    return 0;
}

int nbio__pmd_format(const nbio__pmd_params *p, bool is_response, char *buf, size_t cap)
{
    (void)p;
    (void)is_response;
    (void)buf;
    (void)cap;
    return -1;
}

int nbio__pmd_init(nbio__pmd *z, const nbio__pmd_params *p, bool is_server)
{
    (void)z;
    (void)p;
    (void)is_server;
    return NBIO_ENOMEM;
}

void nbio__pmd_free(nbio__pmd *z)
{
    (void)z;
}

int nbio__pmd_deflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out)
{
    (void)z;
    (void)in;
    (void)len;
    (void)out;
    return NBIO_ENOMEM;
}

int nbio__pmd_inflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out, size_t max)
{
    (void)z;
    (void)in;
    (void)len;
    (void)out;
    (void)max;
    return NBIO_ENOMEM;
}
