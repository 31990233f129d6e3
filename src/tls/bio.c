/* The TLS session's BIO: ciphertext through the wrapped session. */
#define _GNU_SOURCE
#include <pthread.h>

#include <openssl/err.h>

#include "tls/tls_session.h"

void nbio__tls_clear_errors(void)
{
    if (ERR_peek_error() != 0)
        ERR_clear_error();
}

static int bio_write_ex(BIO *b, const char *src, size_t len, size_t *written)
{
    nbio__tls *t = BIO_get_data(b);
    nbio_session *in = t->base.inner;
    BIO_clear_retry_flags(b);
    *written = 0;
    if (t->io_err != 0)
        return 0;
    if (t->phase == NBIO__TLS_CLOSE_SENT && !nbio__write_open(in)) {
        *written = len; /* nothing may follow our goodbye */
        return 1;
    }
    size_t off = 0;
    if (t->outq.len == 0 && !nbio__is_establishing(in)) {
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

BIO *nbio__tls_bio_new(nbio__tls *t)
{
    pthread_once(&bio_once, make_bio_method);
    BIO *b = bio_method != NULL ? BIO_new(bio_method) : NULL;
    if (b != NULL) {
        BIO_set_data(b, t);
        BIO_set_init(b, 1);
    }
    return b;
}

int nbio__tls_flush_out(nbio__tls *t, bool *moved)
{
    return nbio__send_queued(&t->base, &t->outq, true, moved);
}
