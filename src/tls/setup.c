/* TLS sessions: construction, the host name and SNI, accessors. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/err.h>
#include <openssl/x509v3.h>

#include "nbio/tcp.h"
#include "tls/tls_session.h"

static bool is_ip_literal(const char *h)
{
    unsigned char a[16];
    return inet_pton(AF_INET, h, a) == 1 || inet_pton(AF_INET6, h, a) == 1;
}

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
    nbio__layer_init(s, &nbio__tls_vtable, inner);
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
    ERR_clear_error();
    t->ssl = SSL_new(cfg->ctx);
    BIO *b = nbio__tls_bio_new(t);
    if (t->ssl == NULL || b == NULL) {
        BIO_free(b);
        ERR_clear_error();
        nbio__fail(s, NBIO_ENOMEM, "TLS session: out of memory");
        return s;
    }
    SSL_set_bio(t->ssl, b, b);
    if (s->error != 0)
        return s; /* the wrapped session failed already (nbio__layer_init says why) */
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
    return (const nbio__tls *)nbio__find_layer(s, &nbio__tls_vtable);
}

bool nbio_tls_is_tls(const nbio_session *s)
{
    return find_tls(s) != NULL;
}

bool nbio_tls_handshake_done(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->phase != NBIO__TLS_HANDSHAKE;
}

const char *nbio_tls_alpn(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL ? t->alpn : NULL;
}

const char *nbio_tls_version(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->phase != NBIO__TLS_HANDSHAKE ? SSL_get_version(t->ssl) : NULL;
}

const char *nbio_tls_cipher(const nbio_session *s)
{
    const nbio__tls *t = find_tls(s);
    return t != NULL && t->phase != NBIO__TLS_HANDSHAKE ? SSL_get_cipher_name(t->ssl) : NULL;
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
    return s != NULL && s->vt == &nbio__tls_vtable ? s->inner : NULL;
}
