/* Internal: the TLS configuration shared by the session code. */
#ifndef NBIO__TLS_INTERNAL_H
#define NBIO__TLS_INTERNAL_H

#include <stdatomic.h>
#include <stddef.h>

#include <openssl/ssl.h>

#include "nbio/tls.h"

struct nbio_tls_config {
    atomic_int refs;
    nbio_tls_role role;
    SSL_CTX *ctx;
    bool verify_peer;        /* client: verify the server (not insecure) */
    unsigned char *alpn;     /* wire format (length-prefixed names), or NULL */
    unsigned alpn_len;
    size_t write_buffer_size;
    size_t read_buffer_size;
    bool release_buffers;    /* free idle buffers (OpenSSL's and ours) */
    int handshake_timeout_ms; /* <= 0: none */
};

/* Formats the errors in OpenSSL's thread error queue (and clears it) into
 * buf: the reason of the first error, e.g. "no shared cipher". Writes
 * fallback when the queue is empty. */
void nbio__tls_err_string(char *buf, size_t len, const char *fallback);

/* The shared default client configuration (created once), or NULL with
 * detail filled on failure. */
nbio_tls_config *nbio__tls_default_client(char *detail, size_t len);

#endif
