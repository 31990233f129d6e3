/* The TLS session's verbs: handshake, reads, writes, goodbye. */
#define _GNU_SOURCE
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>

#include "tls/tls_session.h"

#define RECORD_MAX NBIO__TLS_RECORD_MAX

static void on_established(nbio__tls *t)
{
    t->phase = NBIO__TLS_OPEN;
    t->read_starved = false; /* application data may have come with the Finished */
    nbio__established(&t->base);
    const unsigned char *p = NULL;
    unsigned len = 0;
    SSL_get0_alpn_selected(t->ssl, &p, &len);
    if (len > 0 && (t->alpn = malloc(len + 1)) != NULL) {
        memcpy(t->alpn, p, len);
        t->alpn[len] = '\0';
    }
}

/* The establish hook: the handshake, once the wrapped session is
 * established (the core drives it). Returns NBIO_ACTIVE / NBIO_IDLE or an
 * error. */
static int tls_establish(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    nbio_session *in = s->inner;
    bool progress = false;
    if (t->deadline >= 0 && nbio_now_ms() >= t->deadline)
        return nbio__fail(s, NBIO_ETIMEDOUT, "TLS handshake: timed out after %d ms%s",
                          t->cfg->handshake_timeout_ms,
                          nbio__is_establishing(in) ? " (still connecting)" : "");
    if (nbio__is_establishing(in))
        return NBIO_IDLE;
    int r = nbio__tls_flush_out(t, &progress);
    if (r < 0)
        return r;
    t->io_moved = false;
    nbio__tls_clear_errors();
    int h = SSL_do_handshake(t->ssl);
    if (h == 1) {
        on_established(t);
        progress = true;
    } else {
        int e = SSL_get_error(t->ssl, h);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return nbio__tls_fail(t, e);
    }
    progress = progress || t->io_moved;
    if ((r = nbio__tls_flush_out(t, &progress)) < 0)
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
    nbio__tls_clear_errors();
    size_t got = 0;
    int r = SSL_read_ex(t->ssl, dst, cap, &got);
    long out;
    if (r == 1) {
        t->read_starved = false;
        out = (long)got;
    } else {
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return nbio__tls_fail(t, e);
        t->read_starved = true;
        out = NBIO_IDLE;
    }
    if (t->stash_len > 0) {
        int f = retry_stash(t);
        if (f < 0)
            return f;
    }
    if (t->outq.len > 0) { /* alerts, key updates OpenSSL wrote meanwhile */
        int f = nbio__tls_flush_out(t, NULL);
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
    nbio__tls_clear_errors();
    size_t w = 0;
    int r = SSL_write_ex(t->ssl, p, n, &w);
    if (r == 1)
        return 0;
    int e = SSL_get_error(t->ssl, r);
    if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
        return nbio__tls_fail(t, e);
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
    nbio__tls_clear_errors();
    size_t w = 0;
    int r = SSL_write_ex(t->ssl, t->stash, t->stash_len, &w);
    if (r != 1) {
        int e = SSL_get_error(t->ssl, r);
        if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
            return nbio__tls_fail(t, e);
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
    bool moved = false;
    int r = retry_stash(t);
    if (r < 0)
        return r;
    if ((r = nbio__tls_flush_out(t, &moved)) < 0)
        return r;
    return moved ? NBIO_ACTIVE : NBIO_IDLE;
}

static long tls_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__tls *t = (nbio__tls *)s;
    if (t->outq.len > 0) {
        int f = nbio__tls_flush_out(t, NULL);
        if (f < 0)
            return f;
    }
    return decrypt_into(t, dst, cap);
}

static int tls_read(nbio_session *s, nbio_buf *out)
{
    nbio__tls *t = (nbio__tls *)s;
    if (t->rbuf == NULL && (t->rbuf = malloc(t->cfg->read_buffer_size)) == NULL)
        return nbio__fail(s, NBIO_ENOMEM, "TLS read buffer: out of memory");
    if (t->outq.len > 0) {
        int f = nbio__tls_flush_out(t, NULL);
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

/* Common start of write/writev: a stashed write and queued ciphertext go
 * first. Returns 1 or an error. */
static int write_prologue(nbio__tls *t)
{
    int r = retry_stash(t);
    if (r < 0)
        return r;
    r = nbio__tls_flush_out(t, NULL);
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

/* Own output: a stashed write, then queued ciphertext (the core flushes the
 * wrapped session after). */
static int tls_flush(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    int r = retry_stash(t);
    if (r != NBIO_DONE)
        return r;
    return nbio__tls_flush_out(t, NULL);
}

/* close_notify, once; the core shuts the wrapped session down after. */
static int tls_goodbye(nbio_session *s)
{
    nbio__tls *t = (nbio__tls *)s;
    if (t->phase != NBIO__TLS_CLOSE_SENT) {
        nbio__tls_clear_errors();
        int h = SSL_shutdown(t->ssl);
        if (h < 0) {
            int e = SSL_get_error(t->ssl, h);
            if (e != SSL_ERROR_WANT_READ && e != SSL_ERROR_WANT_WRITE)
                return nbio__tls_fail(t, e);
        }
        t->phase = NBIO__TLS_CLOSE_SENT;
    }
    return nbio__tls_flush_out(t, NULL);
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

static unsigned tls_interest(const nbio_session *s)
{
    const nbio__tls *t = (const nbio__tls *)s;
    if ((t->inner_eof || t->io_err != 0) && !nbio__read_ended(s))
        return NBIO_READY; /* an end or an error is still to be reported */
    /* Plaintext or whole records buffered in OpenSSL: read now. A partial
     * record (read_starved) needs more from the wrapped session first. */
    if (t->phase != NBIO__TLS_HANDSHAKE &&
        (SSL_pending(t->ssl) > 0 || (!t->read_starved && SSL_has_pending(t->ssl))))
        return NBIO_READY;
    return t->outq.len > 0 ? NBIO_WANT_WRITE : 0;
}

const nbio__vtable nbio__tls_vtable = {
    .kind = "tls",
    .establish = tls_establish,
    .drive = tls_drive,
    .read = tls_read,
    .write = tls_write,
    .read_into = tls_read_into,
    .writev = tls_writev,
    .flush = tls_flush,
    .goodbye = tls_goodbye,
    .free = tls_free,
    .interest = tls_interest,
};
