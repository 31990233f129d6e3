/* OpenSSL failures mapped to library errors with a detail that says why. */
#define _GNU_SOURCE
#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "tls/tls_session.h"

/* The error when the wrapped session's end or failure explains the
 * OpenSSL failure, else 0. */
static int transport_cause(nbio__tls *t, int ssl_err, unsigned long e)
{
    nbio_session *s = &t->base;
    int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
    /* A transport error is the cause, unless the peer's end of stream came
     * first: then a failed alert back (EPIPE) is only its consequence. */
    if (t->io_err != 0 && !t->inner_eof)
        return nbio__fail_from(s, s->inner, t->io_err);
    if (ssl_err == SSL_ERROR_ZERO_RETURN)
        return nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer (close_notify)");
    if ((lib == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (ssl_err == SSL_ERROR_SYSCALL && t->inner_eof)) {
        if (t->phase == NBIO__TLS_HANDSHAKE)
            return nbio__fail(s, NBIO_ETLS, "TLS handshake: connection closed by peer");
        return nbio__fail(s, NBIO_ETLSTRUNCATED,
                          "connection closed by peer without close_notify (possible truncation)");
    }
    if (t->io_err != 0)
        return nbio__fail_from(s, s->inner, t->io_err);
    return 0;
}

/* A protocol failure: verification, a missing client certificate, an
 * alert. */
static int protocol_failure(nbio__tls *t, int ssl_err, unsigned long e)
{
    nbio_session *s = &t->base;
    const char *phase = t->phase == NBIO__TLS_HANDSHAKE ? "TLS handshake" : "TLS";
    int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
    long vr = SSL_get_verify_result(t->ssl);
    if (lib == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
        ERR_clear_error();
        const char *why = X509_verify_cert_error_string(vr);
        if ((vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
            t->host != NULL)
            return nbio__fail(s, NBIO_ECERTVERIFY, "certificate verify failed: %s (expected %s)",
                              why, t->host);
        return nbio__fail(s, NBIO_ECERTVERIFY, "certificate verify failed: %s%s", why,
                          t->server ? " (client certificate)" : "");
    }
    if (lib == ERR_LIB_SSL && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        ERR_clear_error();
        return nbio__fail(s, NBIO_ECERTVERIFY,
                          "certificate verify failed: a client certificate is required but the "
                          "peer sent none (peer did not return a certificate)");
    }
    if (ssl_err == SSL_ERROR_SYSCALL && e == 0)
        return nbio__fail(s, NBIO_ETLS, "%s: transport failure", phase);
    char why[160];
    nbio__tls_err_string(why, sizeof why, "unknown OpenSSL error");
    return nbio__fail(s, NBIO_ETLS, "%s: %s", phase, why);
}

int nbio__tls_fail(nbio__tls *t, int ssl_err)
{
    nbio_session *s = &t->base;
    unsigned long e = ERR_peek_error();
    int r = transport_cause(t, ssl_err, e);
    if (r != 0) {
        ERR_clear_error();
        return r;
    }
    r = protocol_failure(t, ssl_err, e);
    /* Best effort, as far as the transport takes it now: let the peer see
     * the alert OpenSSL queued. */
    while (t->outq.len > 0 && nbio__write_open(s->inner)) {
        struct iovec iov = {(void *)nbio__bytes_peek(&t->outq), t->outq.len};
        long n = nbio__writev(s->inner, &iov, 1);
        if (n <= 0)
            break;
        nbio__bytes_rack(&t->outq, (size_t)n);
    }
    return r;
}
