/*
 * Internal: the TLS session, shared by its files:
 *   bio.c      the BIO that moves ciphertext through the wrapped session,
 *              and the ciphertext queue
 *   errmap.c   OpenSSL failures mapped to library errors and details
 *   session.c  handshake, reads, writes, goodbye: the vtable
 *   setup.c    construction, host name and SNI, accessors
 *
 * The BIO's write never asks OpenSSL to retry: what the wrapped session does
 * not take is queued (outq) and sent on the next call. So SSL_write() always
 * finishes what it was given, the caller's buffer is advanced past exactly
 * those bytes, and OpenSSL's "retry with the same buffer" rule never
 * reaches the caller. Plaintext writes are refused (NBIO_PENDING) while the
 * queue is over write_buffer_size, which bounds it.
 */
#ifndef NBIO__TLS_SESSION_H
#define NBIO__TLS_SESSION_H

#include <openssl/ssl.h>

#include "core/bytes.h"
#include "core/session.h"
#include "tls/tls_internal.h"

#define NBIO__TLS_RECORD_MAX 16384 /* plaintext per SSL_write: one TLS record */

/* The TLS protocol's own progress (the core keeps the session's). */
typedef enum nbio__tls_phase {
    NBIO__TLS_HANDSHAKE,  /* handshake in progress */
    NBIO__TLS_OPEN,       /* application data both ways */
    NBIO__TLS_CLOSE_SENT  /* our close_notify is queued or out */
} nbio__tls_phase;

typedef struct nbio__tls {
    nbio_session base; /* base.inner: the byte session carrying ciphertext */
    nbio_tls_config *cfg;
    SSL *ssl;
    bool server;
    nbio__tls_phase phase;
    /* what the BIO saw of the wrapped session */
    bool inner_eof;    /* it ended cleanly (EPEERCLOSED) */
    int io_err;        /* it failed with this error */
    bool io_moved;     /* bytes moved during the current call */
    bool read_starved; /* the last SSL_read wanted more ciphertext */
    nbio__bytes outq;  /* ciphertext the wrapped session did not take yet */
    /* plaintext accepted from the caller that SSL_write must be retried with
     * (only when OpenSSL wants to read first: a renegotiation someone forced
     * through nbio_tls_ssl(); ours are refused) */
    unsigned char *stash;
    size_t stash_len;
    unsigned char *rbuf; /* plaintext handed out by nbio_read() */
    char *host;          /* client: the name verified (for details) */
    char *alpn;          /* negotiated ALPN protocol, NUL-terminated */
    int64_t deadline;    /* handshake limit (monotonic ms), or -1 */
} nbio__tls;

extern const nbio__vtable nbio__tls_vtable;

/* bio.c: a new BIO for t (NULL when out of memory). */
BIO *nbio__tls_bio_new(nbio__tls *t);

/* bio.c: sends queued ciphertext. NBIO_DONE when the queue is empty,
 * NBIO_PENDING when the wrapped session took less, or an error; *moved
 * (may be NULL) is set when bytes went out. */
int nbio__tls_flush_out(nbio__tls *t, bool *moved);

/* errmap.c: ends the session after an OpenSSL call failed with ssl_err
 * (SSL_get_error). Returns the error. */
int nbio__tls_fail(nbio__tls *t, int ssl_err);

/* OpenSSL's error queue must be empty before an I/O call, because
 * SSL_get_error() reads it. ERR_clear_error() walks and frees every slot,
 * which is most of the cost of an idle busy-poll, so it runs only when the
 * queue is not empty already (a thread-local look). */
void nbio__tls_clear_errors(void);

#endif
