/*
 * The TLS session: OpenSSL over any byte session.
 *
 * A custom BIO moves ciphertext: reads come from the wrapped session through
 * nbio__read_into(), writes go to it through nbio__writev(). The BIO's write
 * never asks OpenSSL to retry: what the wrapped session does not take is
 * queued here (t->outq) and sent on the next call. So SSL_write() always
 * finishes what it was given, the caller's buffer is advanced past exactly
 * those bytes, and OpenSSL's "retry with the same buffer" rule never applies.
 * Plaintext writes are refused (NBIO_PENDING) while the queue is over
 * write_buffer_size, which bounds it.
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "core/bytes.h"
#include "core/session.h"
#include "tls/tls_internal.h"

#define RECORD_MAX 16384 /* plaintext per SSL_write: one TLS record */

typedef struct nbio__tls {
    nbio_session base; /* base.inner: the byte session carrying ciphertext */
    nbio_tls_config *cfg;
    SSL *ssl;
    bool server;
    bool handshake_done;
    bool close_sent;
    bool inner_eof;    /* the wrapped session ended cleanly (EPEERCLOSED) */
    bool io_moved;     /* the BIO moved bytes during the current call */
    bool read_starved; /* the last SSL_read wanted more ciphertext */
    int io_err;        /* an error of the wrapped session, seen by the BIO */
    /* ciphertext the wrapped session did not take yet */
    nbio__bytes outq;
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

static const nbio__vtable tls_vtable;

/* OpenSSL's error queue must be empty before an I/O call, because
 * SSL_get_error() reads it. ERR_clear_error() walks and frees every slot,
 * which is most of the cost of an idle busy-poll, so it runs only when the
 * queue is not empty already (a thread-local look). */
static void clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

/* ---- the BIO ---------------------------------------------------------- */

static int bio_write_ex(BIO *b, const char *src, size_t len, size_t *written)
{
    nbio__tls *t = BIO_get_data(b);
    nbio_session *in = t->base.inner;
    BIO_clear_retry_flags(b);
    *written = 0;
    if (t->io_err != 0)
        return 0;
    if (t->close_sent && in->write_closed) {
        *written = len; /* nothing may follow our goodbye */
        return 1;
    }
    size_t off = 0;
    if (t->outq.len == 0 && in->state != NBIO_ESTABLISHING) {
        struct iovec iov = {(void *)src, len};
        long n = nbio__writev(in, &iov, 1);
        if (n < 0) {
            t->io_err = (int)n;
            return 0;
        }
        if (n > 0)
            t->io_moved = true;
        off = (size_t)n;
    }
    if (off < len && nbio__bytes_append(&t->outq, src + off, len - off) != 0) {
        t->io_err = NBIO_ENOMEM;
        return 0;
    }
    *written = len;
    return 1;
}

static int bio_read_ex(BIO *b, char *dst, size_t cap, size_t *got)
{
    nbio__tls *t = BIO_get_data(b);
    BIO_clear_retry_flags(b);
    *got = 0;
    if (t->inner_eof || t->io_err != 0)
        return 0;
    long n = nbio__read_into(t->base.inner, dst, cap);
    if (n > 0) {
        t->io_moved = true;
        *got = (size_t)n;
        return 1;
    }
    if (n == 0) {
        BIO_set_retry_read(b);
        return 0;
    }
    if (n == NBIO_EPEERCLOSED)
        t->inner_eof = true;
    else
        t->io_err = (int)n;
    return 0;
}

static long bio_ctrl(BIO *b, int cmd, long num, void *ptr)
{
    (void)num, (void)ptr;
    nbio__tls *t = BIO_get_data(b);
    switch (cmd) {
    case BIO_CTRL_FLUSH:
        return 1;
    case BIO_CTRL_EOF:
        return t != NULL && t->inner_eof;
    default:
        return 0;
    }
}

static pthread_once_t bio_once = PTHREAD_ONCE_INIT;
static BIO_METHOD *bio_method;

static void make_bio_method(void)
{
    BIO_METHOD *m = BIO_meth_new(BIO_get_new_index() | BIO_TYPE_SOURCE_SINK, "nbio session");
    if (m == NULL)
        return;
    if (BIO_meth_set_write_ex(m, bio_write_ex) != 1 || BIO_meth_set_read_ex(m, bio_read_ex) != 1 ||
        BIO_meth_set_ctrl(m, bio_ctrl) != 1) {
        BIO_meth_free(m);
        return;
    }
    bio_method = m;
}

/* ---- helpers ------------------------------------------------------------ */

/* Sends queued ciphertext. Returns NBIO_DONE when the queue is empty,
 * NBIO_PENDING when the wrapped session took less, or an error. */
static int flush_out(nbio__tls *t, bool *moved)
{
    nbio_session *in = t->base.inner;
    while (t->outq.len > 0) {
        if (in->state == NBIO_ESTABLISHING)
            return NBIO_PENDING;
        struct iovec iov = {(void *)nbio__bytes_peek(&t->outq), t->outq.len};
        long n = nbio__writev(in, &iov, 1);
        if (n < 0)
            return nbio__fail_from(&t->base, in, (int)n);
        if (n == 0)
            return NBIO_PENDING;
        if (moved != NULL)
            *moved = true;
        nbio__bytes_consume(&t->outq, (size_t)n);
    }
    if (t->outq.cap > 4 * RECORD_MAX) /* a burst grew it: give it back */
        nbio__bytes_free(&t->outq);
    return NBIO_DONE;
}

static bool is_ip_literal(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

/* Ends the session after an OpenSSL call failed with ssl_err. */
static int tls_fail(nbio__tls *t, int ssl_err)
{
    nbio_session *s = &t->base;
    const char *phase = t->handshake_done ? "TLS" : "TLS handshake";
    int r;
    unsigned long e = ERR_peek_error();
    int lib = ERR_GET_LIB(e), reason = ERR_GET_REASON(e);
    /* A transport error is the cause, unless the peer's end of stream came
     * first: then a failed alert back (EPIPE) is only its consequence. */
    if (t->io_err != 0 && !t->inner_eof) {
        ERR_clear_error();
        return nbio__fail_from(s, s->inner, t->io_err);
    }
    if (ssl_err == SSL_ERROR_ZERO_RETURN) {
        ERR_clear_error();
        return nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer (close_notify)");
    }
    if ((lib == ERR_LIB_SSL && reason == SSL_R_UNEXPECTED_EOF_WHILE_READING) ||
        (ssl_err == SSL_ERROR_SYSCALL && t->inner_eof)) {
        ERR_clear_error();
        if (!t->handshake_done)
            return nbio__fail(s, NBIO_ETLS, "TLS handshake: connection closed by peer");
        return nbio__fail(s, NBIO_ETLSTRUNCATED,
                          "connection closed by peer without close_notify (possible truncation)");
    }
    if (t->io_err != 0) {
        ERR_clear_error();
        return nbio__fail_from(s, s->inner, t->io_err);
    }
    long vr = SSL_get_verify_result(t->ssl);
    if (lib == ERR_LIB_SSL && reason == SSL_R_CERTIFICATE_VERIFY_FAILED && vr != X509_V_OK) {
        ERR_clear_error();
        const char *why = X509_verify_cert_error_string(vr);
        if ((vr == X509_V_ERR_HOSTNAME_MISMATCH || vr == X509_V_ERR_IP_ADDRESS_MISMATCH) &&
            t->host != NULL)
            r = nbio__fail(s, NBIO_ECERTVERIFY, "certificate verify failed: %s (expected %s)",
                           why, t->host);
        else
            r = nbio__fail(s, NBIO_ECERTVERIFY, "certificate verify failed: %s%s", why,
                           t->server ? " (client certificate)" : "");
    } else if (lib == ERR_LIB_SSL && reason == SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE) {
        ERR_clear_error();
        r = nbio__fail(s, NBIO_ECERTVERIFY,
                       "certificate verify failed: a client certificate is required but the "
                       "peer sent none (peer did not return a certificate)");
    } else if (ssl_err == SSL_ERROR_SYSCALL && e == 0) {
        r = nbio__fail(s, NBIO_ETLS, "%s: transport failure", phase);
    } else {
        char why[160];
        nbio__tls_err_string(why, sizeof why, "unknown OpenSSL error");
        r = nbio__fail(s, NBIO_ETLS, "%s: %s", phase, why);
    }
    /* Best effort, as far as the transport takes it now: let the peer see
     * the alert OpenSSL queued. */
    while (t->outq.len > 0 && nbio__can_write(s->inner) && !s->inner->write_closed) {
        struct iovec iov = {(void *)nbio__bytes_peek(&t->outq), t->outq.len};
        long n = nbio__writev(s->inner, &iov, 1);
        if (n <= 0)
            break;
        nbio__bytes_consume(&t->outq, (size_t)n);
    }
    return r;
}

static void on_established(nbio__tls *t)
{
    t->handshake_done = true;
    t->read_starved = false; /* application data may have come with the Finished */
    t->base.state = NBIO_ESTABLISHED;
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (len > 0 && (t->alpn = malloc(len + 1)) != NULL) {
        memcpy(t->alpn, p, len);
        t->alpn[len] = '\0';
    }
}

/* Advances the wrapped session's connect and the handshake. Returns
 * NBIO_ACTIVE / NBIO_IDLE or an error. */
static int establish(nbio__tls *t)
{
    nbio_session *s = &t->base, *in = s->inner;
    bool progress = false;
    if (t->deadline >= 0 && nbio_now_ms() >= t->deadline)
        return nbio__fail(s, NBIO_ETIMEDOUT, "TLS handshake: timed out after %d ms%s",
                          t->cfg->handshake_timeout_ms,
                          in->state == NBIO_ESTABLISHING ? " (still connecting)" : "");
    if (in->state == NBIO_ESTABLISHING) {
        int r = nbio_drive(in);
        if (r < 0)
            return nbio__fail_from(s, in, r);
        if (in->state == NBIO_ESTABLISHING)
            return r;
        progress = true;
    }
    if (in->error != 0 && in->error != NBIO_EPEERCLOSED)
        return nbio__fail_from(s, in, in->error);
    int r = flush_out(t, &progress);
    if (r < 0)
        return r;
    t->io_moved = false;
    clear_errors();
    int h = SSL_do_handshake(t->ssl);
    if (h == 1) {
        on_established(t);
        progress = true;
    } else {
        int e = SSL_get_error(t->ssl, h);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return tls_fail(t, e);
    }
    progress = progress || t->io_moved;
    if ((r = flush_out(t, &progress)) < 0)
        return r;
    return progress ? NBIO_ACTIVE : NBIO_IDLE;
}

static int retry_stash(nbio__tls *t);

/* Decrypts into dst. Returns bytes (> 0), NBIO_IDLE or an error. */
static long decrypt_into(nbio__tls *t, void *dst, size_t cap)
{
    if (cap == 0)
        return NBIO_IDLE;
    t->io_moved = false;
    clear_errors();
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, dst, cap, &got);
    long out;
    if (r == 1) {
        t->read_starved = false;
        out = (long)got;
    } else {
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return tls_fail(t, e);
        t->read_starved = true;
        out = NBIO_IDLE;
    }
    if (t->stash_len > 0) {
        int f = retry_stash(t);
        if (f < 0)
            return f;
    }
    if (t->outq.len > 0) { /* alerts, key updates OpenSSL wrote meanwhile */
        int f = flush_out(t, NULL);
        if (f < 0)
            return f;
    }
    return out;
}

/* Encrypts n bytes (n <= RECORD_MAX). Returns 0 when all of them are
 * accepted (encrypted, or stashed for a retry OpenSSL asked for), or an
 * error. */
static int encrypt(nbio__tls *t, const void *p, size_t n)
{
    clear_errors();
    size_t w = 0;
    int r = SSL_write_ex(t->ssl, p, n, &w);
    if (r == 1)
        return 0;
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return tls_fail(t, e);
    /* OpenSSL must be called again with these bytes: keep them here, so the
     * caller's buffer is free and its rule never reaches the caller. */
    if ((t->stash = malloc(n)) == NULL)
        return nbio__fail(&t->base, NBIO_ENOMEM, "TLS write: out of memory");
    memcpy(t->stash, p, n);
    t->stash_len = n;
    return 0;
}

/* Retries a stashed write. Returns NBIO_DONE when none is left, NBIO_PENDING
 * while OpenSSL still waits, or an error. */
static int retry_stash(nbio__tls *t)
{
    if (t->stash_len == 0)
        return NBIO_DONE;
    clear_errors();
    size_t w = 0;
    int r = SSL_write_ex(t->ssl, t->stash, t->stash_len, &w);
    if (r != 1) {
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return tls_fail(t, e);
        return NBIO_PENDING;
    }
    free(t->stash);
    t->stash = NULL;
    t->stash_len = 0;
    return NBIO_DONE;
}

/* True when n more plaintext bytes may be encrypted now. */
static bool may_accept(const nbio__tls *t, size_t n)
{
    return t->stash_len == 0 && (t->outq.len == 0 || t->outq.len + n <= t->cfg->write_buffer_size);
}

/* ---- the vtable --------------------------------------------------------- */

static int tls_drive(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    if (s->state == NBIO_ESTABLISHING)
        return establish(t);
    bool moved = false;
    int r = retry_stash(t);
    if (r < 0)
        return r;
    if ((r = flush_out(t, &moved)) < 0)
        return r;
    return moved ? NBIO_ACTIVE : NBIO_IDLE;
}

static long tls_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__tls *t = (nbio__tls *)s;
    if (s->state == NBIO_ESTABLISHING) {
        int r = establish(t);
        if (r < 0 || s->state == NBIO_ESTABLISHING)
            return r < 0 ? r : NBIO_IDLE;
    }
    if (t->outq.len > 0) {
        int f = flush_out(t, NULL);
        if (f < 0)
            return f;
    }
    return decrypt_into(t, dst, cap);
}

static int tls_read(nbio_session *s, nbio_buf *out)
{
    nbio__tls *t = (nbio__tls *)s;
    if (s->state == NBIO_ESTABLISHING)
        return establish(t);
    if (t->rbuf == NULL && (t->rbuf = malloc(t->cfg->read_buffer_size)) == NULL)
        return nbio__fail(s, NBIO_ENOMEM, "TLS read buffer: out of memory");
    if (t->outq.len > 0) {
        int f = flush_out(t, NULL);
        if (f < 0)
            return f;
    }
    long n = decrypt_into(t, t->rbuf, t->cfg->read_buffer_size);
    if (n < 0)
        return (int)n;
    if (n == 0) {
        if (t->cfg->release_buffers) { /* nothing handed out lives in it now */
            free(t->rbuf);
            t->rbuf = NULL;
        }
        return t->io_moved ? NBIO_ACTIVE : NBIO_IDLE;
    }
    out->data = t->rbuf;
    out->len = (size_t)n;
    return NBIO_DATA;
}

/* Common start of write/writev: 1 when writing may go on, 0 when not yet
 * (establishing, or the queue is full), or an error. */
static int write_prologue(nbio__tls *t)
{
    nbio_session *s = &t->base;
    if (s->state == NBIO_ESTABLISHING) {
        int r = establish(t);
        if (r < 0)
            return r;
        if (s->state == NBIO_ESTABLISHING)
            return 0;
    }
    int r = retry_stash(t);
    if (r < 0)
        return r;
    r = flush_out(t, NULL);
    return r < 0 ? r : 1;
}

static int tls_write(nbio_session *s, nbio_buf *buf)
{
    nbio__tls *t = (nbio__tls *)s;
    int r = write_prologue(t);
    if (r <= 0)
        return r < 0 ? r : NBIO_PENDING;
    while (buf->len > 0) {
        size_t n = buf->len < RECORD_MAX ? buf->len : RECORD_MAX;
        if (!may_accept(t, n))
            break;
        if ((r = encrypt(t, buf->data, n)) < 0)
            return r;
        buf->data = (const char *)buf->data + n;
        buf->len -= n;
    }
    return buf->len == 0 ? NBIO_DONE : NBIO_PENDING;
}

static long tls_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    nbio__tls *t = (nbio__tls *)s;
    int r = write_prologue(t);
    if (r <= 0)
        return r;
    long total = 0;
    int i = 0;
    size_t off = 0; /* into iov[i] */
    unsigned char gather[4096];
    while (i < iovcnt) {
        size_t left = iov[i].iov_len - off;
        if (left == 0) {
            i++;
            off = 0;
            continue;
        }
        if (left < sizeof gather && i + 1 < iovcnt) {
            /* Small pieces (a frame header, say) share one record with what
             * follows instead of each costing a record. */
            size_t g = 0;
            int j = i;
            size_t o = off;
            while (j < iovcnt && g < sizeof gather) {
                size_t take = iov[j].iov_len - o;
                if (take > sizeof gather - g)
                    take = sizeof gather - g;
                memcpy(gather + g, (const char *)iov[j].iov_base + o, take);
                g += take;
                o += take;
                if (o == iov[j].iov_len) {
                    j++;
                    o = 0;
                }
            }
            if (!may_accept(t, g))
                break;
            if ((r = encrypt(t, gather, g)) < 0)
                return r;
            total += (long)g;
            i = j;
            off = o;
            continue;
        }
        size_t n = left < RECORD_MAX ? left : RECORD_MAX;
        if (!may_accept(t, n))
            break;
        if ((r = encrypt(t, (const char *)iov[i].iov_base + off, n)) < 0)
            return r;
        total += (long)n;
        off += n;
    }
    return total;
}

static int tls_flush(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    if (s->state == NBIO_ESTABLISHING) {
        int r = establish(t);
        if (r < 0)
            return r;
        if (s->state == NBIO_ESTABLISHING)
            return NBIO_PENDING;
    }
    int r = retry_stash(t);
    if (r != NBIO_DONE)
        return r;
    r = flush_out(t, NULL);
    if (r != NBIO_DONE)
        return r;
    r = nbio_flush(s->inner, 0);
    if (r < 0)
        return nbio__fail_from(s, s->inner, r);
    return r == NBIO_DONE ? NBIO_DONE : NBIO_PENDING;
}

static int tls_shutdown(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    int r = tls_flush(s); /* everything accepted goes before close_notify */
    if (r != NBIO_DONE)
        return r;
    if (!t->close_sent) {
        clear_errors();
        int h = SSL_shutdown(t->ssl);
        if (h < 0) {
            int e = SSL_get_error(t->ssl, h);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return tls_fail(t, e);
        }
        t->close_sent = true;
        if ((r = flush_out(t, NULL)) != NBIO_DONE)
            return r;
    }
    r = nbio_shutdown(s->inner);
    return r < 0 ? nbio__fail_from(s, s->inner, r) : r;
}

static void tls_free(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    SSL_free(t->ssl); /* also frees the BIO */
    nbio_tls_config_unref(t->cfg);
    nbio_free(s->inner);
    nbio__bytes_free(&t->outq);
    free(t->rbuf);
    free(t->stash);
    free(t->host);
    free(t->alpn);
    free(t);
}

static int tls_fd(const nbio_session *s)
{
    return nbio_fd(s->inner);
}

static unsigned tls_interest(const nbio_session *s)
{
    const nbio__tls *t = (const nbio__tls *)s;
    if ((t->inner_eof || t->io_err != 0) && s->error == 0)
        return NBIO_READY; /* an end or an error is still to be reported */
    /* Plaintext or whole records buffered in OpenSSL: read now. A partial
     * record (read_starved) needs more from the wrapped session first. */
    if (t->handshake_done && (SSL_pending(t->ssl) > 0 ||
                              (!t->read_starved && SSL_has_pending(t->ssl))))
        return NBIO_READY;
    unsigned w = nbio_interest(s->inner);
    if (s->error != 0) /* the read side ended (close_notify): only writes are left */
        w &= NBIO_WANT_WRITE;
    if (t->outq.len > 0)
        w |= NBIO_WANT_WRITE;
    return w;
}

static const nbio__vtable tls_vtable = {
    .kind = "tls",
    .drive = tls_drive,
    .read = tls_read,
    .write = tls_write,
    .read_into = tls_read_into,
    .writev = tls_writev,
    .flush = tls_flush,
    .shutdown = tls_shutdown,
    .free = tls_free,
    .fd = tls_fd,
    .interest = tls_interest,
};

/* ---- construction ------------------------------------------------------ */

/* Sets the name to verify and the SNI. Returns 0 or an error. */
static int set_host(nbio__tls *t, const char *host)
{
    nbio_session *s = &t->base;
    if (host == NULL || host[0] == '\0') {
        if (t->cfg->verify_peer)
            return nbio__fail(s, NBIO_EUSAGE,
                              "TLS client: a host name is needed to verify the server");
        return 0;
    }
    size_t len = strlen(host);
    if (host[0] == '[' && len > 2 && host[len - 1] == ']') {
        host++;
        len -= 2;
    }
    if ((t->host = strndup(host, len)) == NULL)
        return nbio__fail(s, NBIO_ENOMEM, "TLS client: out of memory");
    bool ip = is_ip_literal(t->host);
    if (t->cfg->verify_peer) {
        int ok;
        if (ip) {
            ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(t->ssl), t->host);
        } else {
            SSL_set_hostflags(t->ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
            ok = SSL_set1_host(t->ssl, t->host);
        }
        if (ok != 1) {
            ERR_clear_error();
            return nbio__fail(s, NBIO_EINVAL, "TLS client: cannot verify host name \"%s\"", t->host);
        }
    }
    if (!ip && SSL_set_tlsext_host_name(t->ssl, t->host) != 1) {
        ERR_clear_error();
        return nbio__fail(s, NBIO_EINVAL, "TLS client: \"%s\" cannot be sent as SNI", t->host);
    }
    return 0;
}

static nbio_session *tls_new(nbio_session *inner, nbio_tls_config *cfg, const char *host,
                             bool server)
{
    if (inner == NULL)
        return NULL;
    nbio__tls *t = calloc(1, sizeof *t);
    if (t == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio_session *s = &t->base;
    nbio__session_init(s, &tls_vtable, NBIO_ESTABLISHING);
    s->inner = inner;
    t->server = server;
    if (cfg == NULL) {
        if (server) {
            nbio__fail(s, NBIO_EINVAL, "TLS server: no configuration");
            return s;
        }
        char why[NBIO__DETAIL_MAX];
        cfg = nbio__tls_default_client(why, sizeof why);
        if (cfg == NULL) {
            nbio__fail(s, NBIO_ETLS, "%s", why);
            return s;
        }
    }
    if ((cfg->role == NBIO_TLS_SERVER) != server) {
        nbio__fail(s, NBIO_EUSAGE, "a TLS %s configuration cannot make a %s session",
                   server ? "client" : "server", server ? "server" : "client");
        return s;
    }
    t->cfg = nbio_tls_config_ref(cfg);
    t->deadline = cfg->handshake_timeout_ms > 0 ? nbio_now_ms() + cfg->handshake_timeout_ms : -1;
    pthread_once(&bio_once, make_bio_method);
    ERR_clear_error();
    t->ssl = SSL_new(cfg->ctx);
    BIO *b = bio_method != NULL ? BIO_new(bio_method) : NULL;
    if (t->ssl == NULL || b == NULL) {
        BIO_free(b);
        ERR_clear_error();
        nbio__fail(s, NBIO_ENOMEM, "TLS session: out of memory");
        return s;
    }
    BIO_set_data(b, t);
    BIO_set_init(b, 1);
    SSL_set_bio(t->ssl, b, b);
    if (inner->error != 0 && inner->error != NBIO_EPEERCLOSED) {
        nbio__fail_from(s, inner, inner->error); /* say why the transport failed */
        return s;
    }
    if (server) {
        SSL_set_accept_state(t->ssl);
    } else {
        SSL_set_connect_state(t->ssl);
        (void)set_host(t, host);
    }
    return s;
}

nbio_session *nbio_tls_client(nbio_session *inner, nbio_tls_config *cfg, const char *host)
{
    return tls_new(inner, cfg, host, false);
}

nbio_session *nbio_tls_server(nbio_session *inner, nbio_tls_config *cfg)
{
    return tls_new(inner, cfg, NULL, true);
}

nbio_session *nbio_tls_connect(const char *addr, nbio_tls_config *cfg, const char *server_name,
                               const nbio_tcp_options *tcp)
{
    if (addr == NULL) /* a terminated session that says so */
        return nbio_tls_client(nbio_tcp_connect(NULL, tcp), cfg, NULL);
    if (strchr(addr, '/') != NULL)
        return nbio_tls_client(nbio_unix_connect(addr, tcp), cfg, server_name);
    char host[256] = "";
    if (server_name == NULL) {
        const char *colon = strrchr(addr, ':');
        size_t len = colon != NULL ? (size_t)(colon - addr) : strlen(addr);
        if (len >= sizeof host)
            len = sizeof host - 1;
        memcpy(host, addr, len);
        host[len] = '\0';
        server_name = host;
    }
    return nbio_tls_client(nbio_tcp_connect(addr, tcp), cfg, server_name);
}

/* ---- accessors --------------------------------------------------------- */

static const nbio__tls *find_tls(const nbio_session *s)
{
    while (s != NULL && s->vt != &tls_vtable)
        s = s->inner;
    return (const nbio__tls *)s;
}

bool nbio_tls_is_tls(const nbio_session *s)
{
    return find_tls(s) != NULL;
}

bool nbio_tls_handshake_done(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->handshake_done;
}

const char *nbio_tls_alpn(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL ? t->alpn : NULL;
}

const char *nbio_tls_version(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->handshake_done ? SSL_get_version(t->ssl) : NULL;
}

const char *nbio_tls_cipher(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->handshake_done ? SSL_get_cipher_name(t->ssl) : NULL;
}

const char *nbio_tls_server_name(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    if (t == NULL || t->ssl == NULL)
        return NULL;
    return SSL_get_servername(t->ssl, TLSEXT_NAMETYPE_host_name);
}

int nbio_tls_peer_subject(const nbio_session *s, char *buf, size_t len)
{
    const nbio__tls *t = find_tls(s);
    if (t == NULL)
        return NBIO_EINVAL;
    if (len > 0)
        buf[0] = '\0';
    X509 *peer = t->ssl != NULL ? SSL_get0_peer_certificate(t->ssl) : NULL;
    if (peer == NULL)
        return 0;
    BIO *b = BIO_new(BIO_s_mem());
    if (b == NULL)
        return NBIO_ENOMEM;
    int n = X509_NAME_print_ex(b, X509_get_subject_name(peer), 0, XN_FLAG_RFC2253);
    char *p = NULL;
    long total = BIO_get_mem_data(b, &p);
    if (n < 0 || total < 0) {
        BIO_free(b);
        ERR_clear_error();
        return NBIO_ETLS;
    }
    if (len > 0) {
        size_t c = (size_t)total < len - 1 ? (size_t)total : len - 1;
        memcpy(buf, p, c);
        buf[c] = '\0';
    }
    BIO_free(b);
    return (int)total;
}

void *nbio_tls_ssl(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL ? t->ssl : NULL;
}

nbio_session *nbio_tls_inner(const nbio_session *s)
{
    return s != NULL && s->vt == &tls_vtable ? s->inner : NULL;
}
