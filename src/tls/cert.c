/* Throwaway certificates for tests and demos, generated in memory. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/bn.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "core/session.h"
#include "nbio/tls.h"

/* Builds "DNS:a,IP:1.2.3.4" from "a,1.2.3.4". Returns NULL on bad input. */
static char *san_list(const char *names)
{
    size_t n = strlen(names);
    char *out = malloc(n * 2 + 16);
    if (out == NULL)
        return NULL;
    size_t len = 0;
    const char *p = names;
    for (;;) {
        const char *end = strchr(p, ',');
        size_t l = end ? (size_t)(end - p) : strlen(p);
        char item[256];
        if (l == 0 || l >= sizeof item) {
            free(out);
            return NULL;
        }
        memcpy(item, p, l);
        item[l] = '\0';
        unsigned char a[16];
        bool ip = inet_pton(AF_INET, item, a) == 1 || inet_pton(AF_INET6, item, a) == 1;
        len += (size_t)sprintf(out + len, "%s%s:%s", len ? "," : "", ip ? "IP" : "DNS", item);
        if (end == NULL)
            break;
        p = end + 1;
    }
    return out;
}

static int add_ext(X509 *x, X509V3_CTX *v3, int nid, const char *value)
{
    X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, v3, nid, value);
    if (ext == NULL)
        return 0;
    int ok = X509_add_ext(x, ext, -1);
    X509_EXTENSION_free(ext);
    return ok;
}

static char *to_pem_string(BIO *b)
{
    char *p = NULL;
    long n = BIO_get_mem_data(b, &p);
    if (n < 0)
        return NULL;
    char *s = malloc((size_t)n + 1);
    if (s != NULL) {
        memcpy(s, p, (size_t)n);
        s[n] = '\0';
    }
    return s;
}

int nbio_tls_make_cert(const nbio_tls_cert_spec *spec, char **cert_pem, char **key_pem)
{
    static const nbio_tls_cert_spec dflt = {"localhost", "localhost,127.0.0.1,::1", 0, 1,
                                            false, false, NULL, NULL};
    if (cert_pem == NULL || key_pem == NULL)
        return NBIO_EINVAL;
    *cert_pem = *key_pem = NULL;
    if (spec == NULL)
        spec = &dflt;
    if ((spec->issuer_cert_pem == NULL) != (spec->issuer_key_pem == NULL))
        return NBIO_EINVAL;
    int err = NBIO_ETLS;
    EVP_PKEY *key = NULL, *ca_key = NULL;
    X509 *x = NULL, *ca = NULL;
    BIO *cb = NULL, *kb = NULL;
    BIGNUM *bn = NULL;
    char *san = NULL;
    ERR_clear_error();

    if (spec->issuer_cert_pem != NULL) {
        BIO *b = BIO_new_mem_buf(spec->issuer_cert_pem, -1);
        ca = b ? PEM_read_bio_X509(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        b = BIO_new_mem_buf(spec->issuer_key_pem, -1);
        ca_key = b ? PEM_read_bio_PrivateKey(b, NULL, NULL, NULL) : NULL;
        BIO_free(b);
        if (ca == NULL || ca_key == NULL) {
            err = NBIO_EINVAL;
            goto out;
        }
    }
    if (spec->names != NULL && (san = san_list(spec->names)) == NULL) {
        err = NBIO_EINVAL;
        goto out;
    }
    key = EVP_EC_gen("P-256");
    x = X509_new();
    bn = BN_new();
    if (key == NULL || x == NULL || bn == NULL)
        goto out;
    if (X509_set_version(x, 2) != 1 || BN_rand(bn, 63, BN_RAND_TOP_ANY, BN_RAND_BOTTOM_ANY) != 1 ||
        BN_to_ASN1_INTEGER(bn, X509_get_serialNumber(x)) == NULL)
        goto out;
    int days = spec->valid_days > 0 ? spec->valid_days : 1;
    if (X509_time_adj_ex(X509_getm_notBefore(x), spec->not_before_days, 0, NULL) == NULL ||
        X509_time_adj_ex(X509_getm_notAfter(x), spec->not_before_days + days, 0, NULL) == NULL)
        goto out;
    X509_NAME *name = X509_get_subject_name(x);
    const char *cn = spec->common_name ? spec->common_name : "nbio";
    if (X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1,
                                   0) != 1 ||
        X509_set_issuer_name(x, ca ? X509_get_subject_name(ca) : name) != 1 ||
        X509_set_pubkey(x, key) != 1)
        goto out;
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca ? ca : x, x, NULL, NULL, 0);
    if (!add_ext(x, &v3, NID_basic_constraints, spec->is_ca ? "critical,CA:TRUE" : "CA:FALSE") ||
        !add_ext(x, &v3, NID_key_usage,
                 spec->is_ca ? "critical,keyCertSign,cRLSign,digitalSignature"
                             : "critical,digitalSignature") ||
        !add_ext(x, &v3, NID_subject_key_identifier, "hash") ||
        !add_ext(x, &v3, NID_authority_key_identifier, "keyid:always"))
        goto out;
    if (!spec->is_ca &&
        !add_ext(x, &v3, NID_ext_key_usage, spec->client ? "clientAuth" : "serverAuth"))
        goto out;
    if (san != NULL && !add_ext(x, &v3, NID_subject_alt_name, san))
        goto out;
    if (X509_sign(x, ca_key ? ca_key : key, EVP_sha256()) == 0)
        goto out;
    cb = BIO_new(BIO_s_mem());
    kb = BIO_new(BIO_s_mem());
    if (cb == NULL || kb == NULL || PEM_write_bio_X509(cb, x) != 1 ||
        PEM_write_bio_PrivateKey(kb, key, NULL, NULL, 0, NULL, NULL) != 1)
        goto out;
    *cert_pem = to_pem_string(cb);
    *key_pem = to_pem_string(kb);
    if (*cert_pem == NULL || *key_pem == NULL) {
        free(*cert_pem);
        free(*key_pem);
        *cert_pem = *key_pem = NULL;
        err = NBIO_ENOMEM;
        goto out;
    }
    err = 0;
out:
    if (err != 0)
        ERR_clear_error();
    BIO_free(cb);
    BIO_free(kb);
    BN_free(bn);
    X509_free(x);
    X509_free(ca);
    EVP_PKEY_free(key);
    EVP_PKEY_free(ca_key);
    free(san);
    return err;
}
