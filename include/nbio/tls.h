/*
 * TLS: a byte session over any byte session (TCP, Unix socket, mock, memory
 * pair), client or server, on OpenSSL 3.
 *
 * Ciphertext moves to and from the wrapped session through the session
 * contract (never a file descriptor), so TLS runs over the mock transports in
 * tests exactly as over TCP. The handshake is non-blocking: a new TLS session
 * is NBIO_STATUS_ESTABLISHING and the handshake progresses inside nbio_drive(),
 * nbio_read(), nbio_write() and nbio_flush().
 *
 * Plaintext writes follow the contract: NBIO_DONE, or NBIO_PENDING with the
 * buffer advanced past what was accepted. What was accepted has been
 * encrypted already; the caller may resubmit the rest from any address (the
 * OpenSSL rule "retry SSL_write with the same buffer" never reaches the
 * caller). Encrypted output the wrapped session could not take is kept in a
 * bounded per-session queue (write_buffer_size).
 *
 * Configuration lives in an nbio_tls_config: it owns one OpenSSL SSL_CTX
 * (certificates, trust store, ALPN, versions), is created once and shared
 * by every session made from it, on any thread. It is reference-counted:
 * each session holds a reference, so the creator may drop its own as soon as
 * it no longer creates sessions.
 *
 * Errors (negative, see errors.h):
 *   NBIO_ECERTVERIFY   the peer's certificate was rejected; the detail says
 *                      why ("certificate verify failed: self-signed
 *                      certificate", "... hostname mismatch (expected
 *                      example.com)", "... certificate has expired")
 *   NBIO_ETLS          any other TLS failure ("no shared cipher", "tlsv1
 *                      alert protocol version", "wrong version number", an
 *                      alert the peer sent, ...)
 *   NBIO_ETLSTRUNCATED the peer closed the connection without close_notify
 *   NBIO_EPEERCLOSED   the peer sent close_notify (a clean end; writing is
 *                      still allowed: TLS half-close)
 *   errors of the wrapped session (NBIO_ECONNRESET, ...) pass through.
 *
 * Renegotiation is refused. TLS 1.2 is the default minimum; TLS 1.3 is
 * preferred whenever both sides support it.
 */
#ifndef NBIO_TLS_H
#define NBIO_TLS_H

#include <stdbool.h>

#include "nbio/nbio.h"
#include "nbio/tcp.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Protocol versions, as on the wire. */
#define NBIO_TLS1_0 0x0301
#define NBIO_TLS1_1 0x0302
#define NBIO_TLS1_2 0x0303
#define NBIO_TLS1_3 0x0304

/** Which side a configuration is for. */
typedef enum nbio_tls_role {
    NBIO_TLS_CLIENT = 0,
    NBIO_TLS_SERVER = 1
} nbio_tls_role;

/** Peer-certificate verification. */
typedef enum nbio_tls_verify {
    NBIO_TLS_VERIFY_DEFAULT = 0, /**< client: REQUIRED; server: NONE */
    NBIO_TLS_VERIFY_NONE,        /**< server: do not ask for a client certificate.
                                      Not accepted for a client: use
                                      insecure_skip_verify, which says what it does */
    NBIO_TLS_VERIFY_OPTIONAL,    /**< server: ask for a client certificate; one that is
                                      sent must verify, none is fine */
    NBIO_TLS_VERIFY_REQUIRED     /**< a certificate must be sent and must verify */
} nbio_tls_verify;

/**
 * Options of a configuration. Start from nbio_tls_options_init(); every
 * string is read (and copied where needed) by nbio_tls_config_new() only.
 * PEM strings are NUL-terminated; a "file" and a "pem" option for the same
 * thing are exclusive.
 */
typedef struct nbio_tls_options {
    int min_version;   /**< NBIO_TLS1_2 (default) ... NBIO_TLS1_3 */
    int max_version;   /**< 0 (default): the highest supported (TLS 1.3) */

    /** Own certificate chain (leaf first) and private key, PEM. Required for
     *  a server; for a client this is the certificate of mutual TLS. */
    const char *cert_file;
    const char *key_file;
    const char *cert_pem;
    const char *key_pem;

    /** Trust anchors, PEM. Client: CAs that may sign the server's certificate
     *  (when none is given: the system trust store). Server: CAs that may
     *  sign client certificates (needed when verify is OPTIONAL/REQUIRED;
     *  their names are also sent in the CertificateRequest). */
    const char *ca_file;
    const char *ca_dir;  /**< an OpenSSL hashed directory (c_rehash) */
    const char *ca_pem;  /**< one or more concatenated certificates */

    nbio_tls_verify verify;

    /** UNSAFE, client only: accept any server certificate and any host name.
     *  The connection is encrypted but not authenticated, so anyone on the
     *  path can read and change it. For tests against throwaway certificates
     *  only. */
    bool insecure_skip_verify;

    /** ALPN protocols, comma-separated in order of preference
     *  ("h2,http/1.1"). Client: offered. Server: the first of these the client
     *  also offers is selected; a client that offers ALPN but none of these
     *  is rejected with the no_application_protocol alert (RFC 7301); a client
     *  that offers none is accepted. NULL: no ALPN. */
    const char *alpn;

    /** OpenSSL cipher lists: TLS 1.2 (SSL_CTX_set_cipher_list) and TLS 1.3
     *  (SSL_CTX_set_ciphersuites). NULL: OpenSSL's defaults. */
    const char *ciphers;
    const char *ciphersuites;

    /** Encrypted bytes a session queues when the wrapped session cannot take
     *  them, before plaintext writes become NBIO_PENDING (default 65536). A
     *  write accepts up to 16 KiB (one record) beyond it. */
    size_t write_buffer_size;

    /** Plaintext buffer of nbio_read() (default 16384, allocated on the first
     *  nbio_read(); layers above that use the zero-copy path never allocate it). */
    size_t read_buffer_size;

    /** Free the record buffers while a session is idle: OpenSSL's
     *  (SSL_MODE_RELEASE_BUFFERS) and the nbio_read() buffer (freed when a
     *  read finds nothing). An idle established session then holds about
     *  16 KiB (server), 19 KiB (TLS 1.2 client) or 36 KiB (TLS 1.3 client,
     *  which keeps the server's certificates and tickets) instead of about
     *  66-70 KiB, at the price of allocations on every burst. Default false:
     *  no allocation on the hot path. */
    bool release_buffers;

    /** Limit for establishing, counted from the session's creation and
     *  including the wrapped session's connect: a peer that stalls the
     *  handshake ends the session with NBIO_ETIMEDOUT. Default 10000 ms;
     *  <= 0: no limit. */
    int handshake_timeout_ms;
} nbio_tls_options;

/** Fills o with the defaults. */
NBIO_API void nbio_tls_options_init(nbio_tls_options *o);

/** A shared TLS configuration (one SSL_CTX). Opaque. */
typedef struct nbio_tls_config nbio_tls_config;

/**
 * Creates a configuration for role. opt may be NULL (the defaults: for a
 * client, verification against the system trust store; a server needs a
 * certificate, so NULL fails for it).
 * Returns 0 with *out set (reference count 1), or a negative error with *out
 * NULL and, when detail is not NULL, a message in detail (e.g. "cannot load
 * certificate chain from cert.pem: ..."): NBIO_EINVAL for inconsistent
 * options, NBIO_ENOENT / NBIO_EACCES for a file that cannot be read,
 * NBIO_ETLS when OpenSSL rejects a file or setting, NBIO_ENOMEM.
 */
NBIO_API int nbio_tls_config_new(nbio_tls_config **out, nbio_tls_role role,
                                 const nbio_tls_options *opt, char *detail, size_t detail_len);

/** Takes another reference; returns cfg. Thread-safe. */
NBIO_API nbio_tls_config *nbio_tls_config_ref(nbio_tls_config *cfg);

/** Drops a reference; the last one frees the configuration. Sessions hold
 *  their own reference. NULL is ignored. Thread-safe. */
NBIO_API void nbio_tls_config_unref(nbio_tls_config *cfg);

/** Returns the configuration's SSL_CTX (an `SSL_CTX *`) for settings this API
 *  does not cover. Change it only before the first session is created. */
NBIO_API void *nbio_tls_config_ssl_ctx(const nbio_tls_config *cfg);

/**
 * Wraps the byte session inner in a TLS client session.
 * cfg: a client configuration, or NULL for a shared default one (system trust
 * store, verification on, created once per process).
 * host: the server's name: sent as SNI (unless it is an IP address) and
 * checked against the certificate (DNS name, or IP address SAN for an IP
 * literal; "[::1]" brackets are allowed). It may be NULL only when cfg skips
 * verification (insecure_skip_verify); otherwise the session fails with
 * NBIO_EUSAGE.
 * Takes ownership of inner, also on failure. Returns NULL only when inner is
 * NULL or memory runs out (inner is then freed); other failures return a
 * session already terminated with an error and detail. The session starts
 * NBIO_STATUS_ESTABLISHING and takes its own reference on cfg.
 */
NBIO_API nbio_session *nbio_tls_client(nbio_session *inner, nbio_tls_config *cfg,
                                       const char *host);

/**
 * Wraps the byte session inner (typically from nbio_accept()) in a TLS server
 * session using the server configuration cfg. Same ownership and failure
 * rules as nbio_tls_client().
 */
NBIO_API nbio_session *nbio_tls_server(nbio_session *inner, nbio_tls_config *cfg);

/**
 * Convenience: nbio_tcp_connect(addr, tcp) wrapped in nbio_tls_client(),
 * verifying the host part of addr ("example.com:443", "[::1]:8443"), or
 * server_name when it is not NULL (it then is the SNI and the name checked).
 * addr may also be a Unix socket path (containing '/'); server_name is then
 * required when verifying. Same return rules as nbio_tls_client().
 */
NBIO_API nbio_session *nbio_tls_connect(const char *addr, nbio_tls_config *cfg,
                                        const char *server_name, const nbio_tcp_options *tcp);

/* Accessors. s may be the TLS session or any layer stacked on it (e.g. a
 * framing session over TLS). Returned strings live as long as the session. */

/** True when s is, or is stacked on, a TLS session. */
NBIO_API bool nbio_tls_is_tls(const nbio_session *s);

/** True once the handshake completed. */
NBIO_API bool nbio_tls_handshake_done(const nbio_session *s);

/** Negotiated ALPN protocol, or NULL when none was negotiated. */
NBIO_API const char *nbio_tls_alpn(const nbio_session *s);

/** Negotiated protocol version ("TLSv1.3"), or NULL before the handshake. */
NBIO_API const char *nbio_tls_version(const nbio_session *s);

/** Negotiated cipher ("TLS_AES_256_GCM_SHA384"), or NULL before the handshake. */
NBIO_API const char *nbio_tls_cipher(const nbio_session *s);

/** Server side: the SNI name the client sent, or NULL. Client side: the name
 *  it sent, or NULL. */
NBIO_API const char *nbio_tls_server_name(const nbio_session *s);

/**
 * Writes the peer certificate's subject ("CN=localhost,O=...", RFC 2253) into
 * buf (NUL-terminated, truncated to len). Returns the full length of the
 * subject, 0 when the peer sent no certificate (buf is ""), or
 * NBIO_EINVAL when s is not TLS.
 */
NBIO_API int nbio_tls_peer_subject(const nbio_session *s, char *buf, size_t len);

/** Returns the session's OpenSSL `SSL *` (for inspection), or NULL. Do not
 *  read, write, shut down or free it. */
NBIO_API void *nbio_tls_ssl(const nbio_session *s);

/** Returns the session a TLS session wraps (still owned by it), or NULL. */
NBIO_API nbio_session *nbio_tls_inner(const nbio_session *s);

/**
 * A throwaway certificate for tests and demos (not for production: the key
 * is generated on the spot and never stored).
 */
typedef struct nbio_tls_cert_spec {
    const char *common_name;    /**< subject CN (default "nbio") */
    const char *names;          /**< subjectAltName entries, comma-separated DNS
                                     names and IP addresses ("localhost,127.0.0.1,::1");
                                     NULL: none */
    int not_before_days;        /**< validity start relative to now (may be negative) */
    int valid_days;             /**< length of validity (default 1 when <= 0) */
    bool is_ca;                 /**< a CA certificate (basicConstraints CA:TRUE) */
    bool client;                /**< extendedKeyUsage clientAuth instead of serverAuth */
    const char *issuer_cert_pem; /**< the signing CA; NULL: self-signed */
    const char *issuer_key_pem;
} nbio_tls_cert_spec;

/**
 * Generates an EC P-256 key and a certificate for it as described by spec
 * (NULL: self-signed "localhost,127.0.0.1,::1", valid one day). On success
 * returns 0 and sets *cert_pem and *key_pem to NUL-terminated PEM strings the
 * caller releases with free(). Returns NBIO_EINVAL (a bad name or issuer),
 * NBIO_ETLS or NBIO_ENOMEM otherwise.
 */
NBIO_API int nbio_tls_make_cert(const nbio_tls_cert_spec *spec, char **cert_pem, char **key_pem);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_TLS_H */
