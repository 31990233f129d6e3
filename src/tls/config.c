/* The TLS configuration: one SSL_CTX shared by every session made from it. */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/err.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "core/session.h"
#include "tls/tls_internal.h"

void nbio_tls_options_init(nbio_tls_options *o)
{
    memset(o, 0, sizeof *o);
    o->min_version = NBIO_TLS1_2;
    o->verify = NBIO_TLS_VERIFY_DEFAULT;
    o->write_buffer_size = 65536;
    o->read_buffer_size = 16384;
    o->handshake_timeout_ms = 10000;
}

void nbio__tls_err_string(char *buf, size_t len, const char *fallback)
{
    unsigned long e = ERR_get_error();
    if (e == 0) {
        snprintf(buf, len, "%s", fallback);
        return;
    }
    const char *r = ERR_reason_error_string(e);
    if (ERR_GET_LIB(e) == ERR_LIB_SYS) {
        /* system errors come first; the next entry says what failed */
        unsigned long e2 = ERR_get_error();
        const char *r2 = e2 != 0 ? ERR_reason_error_string(e2) : NULL;
        snprintf(buf, len, "%s%s%s", r2 ? r2 : "", r2 ? ": " : "", r ? r : strerror(ERR_GET_REASON(e)));
    } else if (r != NULL) {
        snprintf(buf, len, "%s", r);
    } else {
        ERR_error_string_n(e, buf, len);
    }
    ERR_clear_error();
}

/* Writes "what: <openssl reason>" into detail; returns err. */
static int cfg_fail(char *detail, size_t dlen, int err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int cfg_fail(char *detail, size_t dlen, int err, const char *fmt, ...)
{
    char what[200];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(what, sizeof what, fmt, ap);
    va_end(ap);
    if (err == NBIO_ETLS) {
        char why[200];
        nbio__tls_err_string(why, sizeof why, "rejected by OpenSSL");
        if (detail != NULL && dlen > 0)
            snprintf(detail, dlen, "%s: %s", what, why);
    } else {
        ERR_clear_error();
        if (detail != NULL && dlen > 0)
            snprintf(detail, dlen, "%s", what);
    }
    return err;
}

/* Fails early with the system's reason when a file cannot be read. */
static int check_readable(const char *path, const char *what, char *detail, size_t dlen)
{
    if (access(path, R_OK) == 0)
        return 0;
    int e = errno;
    return cfg_fail(detail, dlen, nbio__errno(e), "cannot read %s %s: %s", what, path,
                    nbio_strerror(nbio__errno(e)));
}

/* Turns "h2,http/1.1" into the ALPN wire format. */
static int build_alpn(nbio_tls_config *cfg, const char *list, char *detail, size_t dlen)
{
    size_t n = strlen(list);
    unsigned char *w = malloc(n + 1);
    if (w == NULL)
        return cfg_fail(detail, dlen, NBIO_ENOMEM, "ALPN list: out of memory");
    size_t len = 0;
    const char *p = list;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        if (l == 0 || l > 255) {
            free(w);
            return cfg_fail(detail, dlen, NBIO_EINVAL,
                            "ALPN list \"%s\": each protocol needs 1 to 255 bytes", list);
        }
        w[len++] = (unsigned char)l;
        memcpy(w + len, p, l);
        len += l;
        if (end == NULL)
            break;
        p = end + 1;
    }
    if (len > 65535) {
        free(w);
        return cfg_fail(detail, dlen, NBIO_EINVAL, "ALPN list too long");
    }
    cfg->alpn = w;
    cfg->alpn_len = (unsigned)len;
    return 0;
}

static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned inlen, void *arg)
{
    (void)ssl;
    const nbio_tls_config *cfg = arg;
    /* Our preference order: the first of ours the client offers. */
    for (unsigned i = 0; i < cfg->alpn_len; i += 1u + cfg->alpn[i]) {
        unsigned l = cfg->alpn[i];
        for (unsigned j = 0; j < inlen; j += 1u + in[j]) {
            unsigned cl = in[j];
            if (j + 1 + cl > inlen)
                return SSL_TLSEXT_ERR_ALERT_FATAL;
            if (cl == l && memcmp(in + j + 1, cfg->alpn + i + 1, l) == 0) {
                *out = in + j + 1;
                *outlen = (unsigned char)cl;
                return SSL_TLSEXT_ERR_OK;
            }
        }
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL; /* no_application_protocol */
}

/* Loads the leaf and chain from PEM text. */
static int use_cert_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return 0;
    int ok = 0;
    X509 *leaf = PEM_read_bio_X509_AUX(b, NULL, NULL, NULL);
    if (leaf != NULL && SSL_CTX_use_certificate(ctx, leaf) == 1 &&
        SSL_CTX_clear_chain_certs(ctx) == 1) {
        ok = 1;
        X509 *x;
        while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
            if (SSL_CTX_add0_chain_cert(ctx, x) != 1) {
                X509_free(x);
                ok = 0;
                break;
            }
        }
        if (ok) {
            unsigned long e = ERR_peek_last_error();
            if (ERR_GET_LIB(e) == ERR_LIB_PEM && ERR_GET_REASON(e) == PEM_R_NO_START_LINE)
                ERR_clear_error(); /* the normal end of the chain */
        }
    }
    X509_free(leaf);
    BIO_free(b);
    return ok;
}

static int use_key_pem(SSL_CTX *ctx, const char *pem)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return 0;
    EVP_PKEY *k = PEM_read_bio_PrivateKey(b, NULL, NULL, NULL);
    int ok = k != NULL && SSL_CTX_use_PrivateKey(ctx, k) == 1;
    EVP_PKEY_free(k);
    BIO_free(b);
    return ok;
}

/* Adds every certificate in pem to the trust store (and, for a server, to
 * the CA names sent in the CertificateRequest). Returns how many, or -1. */
static int add_ca_pem(SSL_CTX *ctx, const char *pem, bool server)
{
    BIO *b = BIO_new_mem_buf(pem, -1);
    if (b == NULL)
        return -1;
    X509_STORE *st = SSL_CTX_get_cert_store(ctx);
    int n = 0;
    X509 *x;
    while ((x = PEM_read_bio_X509(b, NULL, NULL, NULL)) != NULL) {
        int ok = X509_STORE_add_cert(st, x) == 1 && (!server || SSL_CTX_add_client_CA(ctx, x) == 1);
        X509_free(x);
        if (!ok) {
            n = -1;
            break;
        }
        n++;
    }
    BIO_free(b);
    if (n > 0)
        ERR_clear_error();
    return n;
}

static int setup(nbio_tls_config *cfg, const nbio_tls_options *o, char *detail, size_t dlen)
{
    bool server = cfg->role == NBIO_TLS_SERVER;
    bool has_cert = o->cert_file != NULL || o->cert_pem != NULL;
    bool has_key = o->key_file != NULL || o->key_pem != NULL;
    bool has_ca = o->ca_file != NULL || o->ca_dir != NULL || o->ca_pem != NULL;
    if ((o->cert_file && o->cert_pem) || (o->key_file && o->key_pem))
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "give the certificate and key either as files or as PEM text, not both");
    if (has_cert != has_key)
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "a certificate needs its private key and the other way round");
    if (server && !has_cert)
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "a TLS server needs a certificate and a private key");
    if (server && o->insecure_skip_verify)
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "insecure_skip_verify is a client option");
    if (!server && o->verify != NBIO_TLS_VERIFY_DEFAULT && o->verify != NBIO_TLS_VERIFY_REQUIRED)
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "a client always verifies the server; insecure_skip_verify turns that off");
    if (server && (o->verify == NBIO_TLS_VERIFY_OPTIONAL || o->verify == NBIO_TLS_VERIFY_REQUIRED) &&
        !has_ca)
        return cfg_fail(detail, dlen, NBIO_EINVAL,
                        "verifying client certificates needs ca_file, ca_dir or ca_pem");

    cfg->ctx = SSL_CTX_new(server ? TLS_server_method() : TLS_client_method());
    if (cfg->ctx == NULL)
        return cfg_fail(detail, dlen, NBIO_ETLS, "SSL_CTX_new");
    SSL_CTX *ctx = cfg->ctx;

    int minv = o->min_version ? o->min_version : NBIO_TLS1_2;
    if (SSL_CTX_set_min_proto_version(ctx, minv) != 1 ||
        SSL_CTX_set_max_proto_version(ctx, o->max_version) != 1)
        return cfg_fail(detail, dlen, NBIO_ETLS, "TLS versions 0x%04x..0x%04x", minv,
                        o->max_version);
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION);
    /* Writes never see a retry (the BIO queues what the transport cannot
     * take), so SSL_write always finishes what it was given. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    if (o->release_buffers)
        SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    SSL_CTX_set_read_ahead(ctx, 1);

    if (o->ciphers != NULL && SSL_CTX_set_cipher_list(ctx, o->ciphers) != 1)
        return cfg_fail(detail, dlen, NBIO_ETLS, "cipher list \"%s\"", o->ciphers);
    if (o->ciphersuites != NULL && SSL_CTX_set_ciphersuites(ctx, o->ciphersuites) != 1)
        return cfg_fail(detail, dlen, NBIO_ETLS, "TLS 1.3 cipher suites \"%s\"", o->ciphersuites);

    /* own certificate */
    if (o->cert_file != NULL) {
        int r = check_readable(o->cert_file, "certificate chain", detail, dlen);
        if (r < 0)
            return r;
        if (SSL_CTX_use_certificate_chain_file(ctx, o->cert_file) != 1)
            return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load certificate chain from %s",
                            o->cert_file);
    } else if (o->cert_pem != NULL && !use_cert_pem(ctx, o->cert_pem)) {
        return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load certificate chain from PEM text");
    }
    if (o->key_file != NULL) {
        int r = check_readable(o->key_file, "private key", detail, dlen);
        if (r < 0)
            return r;
        if (SSL_CTX_use_PrivateKey_file(ctx, o->key_file, SSL_FILETYPE_PEM) != 1)
            return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load private key from %s",
                            o->key_file);
    } else if (o->key_pem != NULL && !use_key_pem(ctx, o->key_pem)) {
        return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load private key from PEM text");
    }
    if (has_cert && SSL_CTX_check_private_key(ctx) != 1)
        return cfg_fail(detail, dlen, NBIO_ETLS, "the private key does not match the certificate");

    /* trust anchors */
    if (o->ca_file != NULL || o->ca_dir != NULL) {
        if (o->ca_file != NULL) {
            int r = check_readable(o->ca_file, "CA file", detail, dlen);
            if (r < 0)
                return r;
        }
        if (SSL_CTX_load_verify_locations(ctx, o->ca_file, o->ca_dir) != 1)
            return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load CA certificates from %s",
                            o->ca_file ? o->ca_file : o->ca_dir);
        if (server && o->ca_file != NULL) {
            STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(o->ca_file);
            if (names != NULL)
                SSL_CTX_set_client_CA_list(ctx, names);
            ERR_clear_error();
        }
    }
    if (o->ca_pem != NULL && add_ca_pem(ctx, o->ca_pem, server) <= 0)
        return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load CA certificates from PEM text");

    if (server) {
        static const unsigned char sid_ctx[] = "nbio";
        SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof sid_ctx - 1);
        int mode = SSL_VERIFY_NONE;
        if (o->verify == NBIO_TLS_VERIFY_OPTIONAL)
            mode = SSL_VERIFY_PEER;
        else if (o->verify == NBIO_TLS_VERIFY_REQUIRED)
            mode = SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT;
        SSL_CTX_set_verify(ctx, mode, NULL);
    } else {
        cfg->verify_peer = !o->insecure_skip_verify;
        if (cfg->verify_peer && !has_ca && SSL_CTX_set_default_verify_paths(ctx) != 1)
            return cfg_fail(detail, dlen, NBIO_ETLS, "cannot load the system trust store");
        SSL_CTX_set_verify(ctx, cfg->verify_peer ? SSL_VERIFY_PEER : SSL_VERIFY_NONE, NULL);
        SSL_CTX_set_session_cache_mode(ctx, SSL_SESS_CACHE_OFF);
    }

    if (o->alpn != NULL) {
        int r = build_alpn(cfg, o->alpn, detail, dlen);
        if (r < 0)
            return r;
        if (server)
            SSL_CTX_set_alpn_select_cb(ctx, alpn_select, cfg);
        else if (SSL_CTX_set_alpn_protos(ctx, cfg->alpn, cfg->alpn_len) != 0)
            return cfg_fail(detail, dlen, NBIO_ETLS, "ALPN list \"%s\"", o->alpn);
    }
    cfg->write_buffer_size = o->write_buffer_size ? o->write_buffer_size : 65536;
    cfg->read_buffer_size = o->read_buffer_size ? o->read_buffer_size : 16384;
    cfg->release_buffers = o->release_buffers;
    cfg->handshake_timeout_ms = o->handshake_timeout_ms;
    if (cfg->read_buffer_size > INT_MAX)
        cfg->read_buffer_size = INT_MAX;
    return 0;
}

static void config_free(nbio_tls_config *cfg)
{
    SSL_CTX_free(cfg->ctx);
    free(cfg->alpn);
    free(cfg);
}

int nbio_tls_config_new(nbio_tls_config **out, nbio_tls_role role, const nbio_tls_options *opt,
                        char *detail, size_t detail_len)
{
    if (detail != NULL && detail_len > 0)
        detail[0] = '\0';
    if (out == NULL)
        return cfg_fail(detail, detail_len, NBIO_EINVAL, "no place for the configuration");
    *out = NULL;
    if (role != NBIO_TLS_CLIENT && role != NBIO_TLS_SERVER)
        return cfg_fail(detail, detail_len, NBIO_EINVAL, "unknown TLS role %d", (int)role);
    nbio_tls_options defaults;
    if (opt == NULL) {
        nbio_tls_options_init(&defaults);
        opt = &defaults;
    }
    nbio_tls_config *cfg = calloc(1, sizeof *cfg);
    if (cfg == NULL)
        return cfg_fail(detail, detail_len, NBIO_ENOMEM, "TLS configuration: out of memory");
    atomic_init(&cfg->refs, 1);
    cfg->role = role;
    ERR_clear_error();
    int r = setup(cfg, opt, detail, detail_len);
    if (r < 0) {
        config_free(cfg);
        return r;
    }
    *out = cfg;
    return 0;
}

nbio_tls_config *nbio_tls_config_ref(nbio_tls_config *cfg)
{
    if (cfg != NULL)
        atomic_fetch_add_explicit(&cfg->refs, 1, memory_order_relaxed);
    return cfg;
}

void nbio_tls_config_unref(nbio_tls_config *cfg)
{
    if (cfg != NULL && atomic_fetch_sub_explicit(&cfg->refs, 1, memory_order_acq_rel) == 1)
        config_free(cfg);
}

void *nbio_tls_config_ssl_ctx(const nbio_tls_config *cfg)
{
    return cfg != NULL ? cfg->ctx : NULL;
}

static pthread_once_t default_once = PTHREAD_ONCE_INIT;
static nbio_tls_config *default_client;
static char default_detail[NBIO__DETAIL_MAX];

static void make_default_client(void)
{
    (void)nbio_tls_config_new(&default_client, NBIO_TLS_CLIENT, NULL, default_detail,
                              sizeof default_detail);
}

nbio_tls_config *nbio__tls_default_client(char *detail, size_t len)
{
    pthread_once(&default_once, make_default_client);
    if (default_client == NULL)
        snprintf(detail, len, "default TLS client configuration: %s", default_detail);
    return default_client;
}
