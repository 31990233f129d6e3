/*
 * libnbio — the HTTP/1.1 client.
 *
 * Two levels:
 *
 *  - nbio_http_client(): a message layer over one byte session (TCP, Unix,
 *    TLS, mock). Writes take requests (nbio_http_write_request), reads hand
 *    out parsed responses (nbio_http_read_response). Several requests may be
 *    written before their responses arrive (pipelining); responses come in
 *    order. Requests written in a burst leave in one send, before the
 *    session next waits for input (the coalescing rule of docs/contract.md).
 *
 *  - nbio_http_agent: the seed's HttpClient. Made once (with an optional
 *    TLS configuration), it turns a URL into an exchange session: drive and
 *    read it until the response is there, as with every other session. It
 *    keeps idle keep-alive connections per origin and reuses them, retries
 *    once on a fresh connection when a reused one turns out closed (only
 *    when that is safe), and can follow redirects.
 *
 * Responses are zero-copy: status, reason, headers and body are slices into
 * the session's buffer, valid until the next read of that session (or its
 * nbio_free()). A body is handed out whole (bounded by max_body) or, with
 * stream_body, as the head first and then parts as they arrive.
 *
 * The generic verbs keep working on both kinds of session: nbio_status,
 * nbio_drive, nbio_flush, nbio_close, nbio_free, nbio_fd, nbio_interest,
 * so pollers, liveness and heartbeat wrap them unchanged. nbio_read on an
 * HTTP session hands out the body of the next response (whole, or a part
 * when streaming); nbio_write is NBIO_EUNSUPPORTED (use the typed calls).
 */
#ifndef NBIO_HTTP_CLIENT_H
#define NBIO_HTTP_CLIENT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbio/http.h"
#include "nbio/nbio.h"
#include "nbio/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Limits and behaviour of an HTTP client session. */
typedef struct nbio_http_options {
    size_t max_head;        /**< bytes of a response head (default 64 KiB) */
    size_t max_headers;     /**< header fields in a head (default 100) */
    size_t max_line;        /**< bytes of the status line or one field line (default 8 KiB) */
    uint64_t max_body;      /**< bytes of a body handed out whole (default 64 MiB); over it
                                 NBIO_ETOOLARGE. Not a limit when streaming. */
    bool stream_body;       /**< hand out the head, then body parts (see nbio_http_response) */
    bool interim;           /**< also hand out 1xx responses (100 Continue, 103); default:
                                 skipped */
    bool decompress;        /**< send Accept-Encoding: gzip, deflate and decode such bodies
                                 (whole bodies only) */
    size_t read_buffer_size;  /**< first size of the read buffer (default 16 KiB); it grows
                                   with what arrives, up to the limits */
    size_t write_buffer_size; /**< requests queued beyond this wait: a write returns
                                   NBIO_PENDING (default 64 KiB; one request is always
                                   accepted when nothing is queued) */
} nbio_http_options;

/** Fills o with the defaults. */
NBIO_API void nbio_http_options_init(nbio_http_options *o);

/**
 * Makes an HTTP/1.1 client session over inner (which it owns from now on,
 * also when this fails). host is the Host header value sent with every
 * request that does not carry its own ("example.com", "[::1]:8080"); it is
 * copied. o may be NULL for the defaults.
 * Returns the session (establishing while inner is), a terminated session
 * with a detail on bad arguments, or NULL when out of memory.
 */
NBIO_API nbio_session *nbio_http_client(nbio_session *inner, const char *host,
                                        const nbio_http_options *o);

/** A request to write. Strings are NUL-terminated; everything is copied
 *  into the session's queue, so nothing needs to outlive the call. */
typedef struct nbio_http_request {
    const char *method;              /**< NULL: "GET" (or "POST" when body is set) */
    const char *target;              /**< path and query, NULL: "/" */
    const nbio_http_header *headers; /**< extra headers (Host, Content-Length and
                                          Transfer-Encoding are written by the session
                                          unless given here) */
    size_t num_headers;
    const void *body;                /**< a body sent with Content-Length, or NULL */
    size_t body_len;
    bool chunked;                    /**< the body follows in parts with
                                          nbio_http_write_body() (Transfer-Encoding:
                                          chunked); body must be NULL */
} nbio_http_request;

/**
 * Queues a request. Returns NBIO_DONE when it was queued whole (it goes out
 * on the next read, drive, flush or close), NBIO_PENDING when the queue is
 * full (nothing was queued: call again later), or a negative error:
 * NBIO_EINVAL for a method that is not a token or a target or header that
 * would break the head (CR, LF, NUL), NBIO_EUSAGE while a chunked body is
 * still open (end it first), or the session's error.
 */
NBIO_API int nbio_http_write_request(nbio_session *s, const nbio_http_request *req);

/**
 * Writes the next part of a chunked request body; an empty part (len 0)
 * ends the body. Returns NBIO_DONE, NBIO_PENDING (queue full, nothing
 * queued), NBIO_EUSAGE when no chunked body is open, or an error.
 */
NBIO_API int nbio_http_write_body(nbio_session *s, const void *data, size_t len);

/** What a read handed out, see nbio_http_response.part. */
enum nbio_http_part {
    NBIO_HTTP_WHOLE = 0, /**< head and the whole body */
    NBIO_HTTP_HEAD = 1,  /**< streaming: the head; body parts follow */
    NBIO_HTTP_BODY = 2,  /**< streaming: a part of the body (not the last) */
    NBIO_HTTP_END = 3    /**< streaming: the last part (possibly empty) and trailers */
};

/** A response, or a part of one. Every slice points into the session's
 *  buffer and lives until the next read of the session. */
typedef struct nbio_http_response {
    enum nbio_http_part part;
    nbio_http_head head;      /**< status, reason, version, headers (set with WHOLE and
                                   HEAD; with BODY and END: zero) */
    nbio_http_slice body;     /**< the body (WHOLE), or this part (BODY, END) */
    nbio_http_header *trailers; /**< chunked trailers (WHOLE, END), else NULL */
    size_t num_trailers;
    uint64_t content_length;  /**< the announced length, or UINT64_MAX when unknown
                                   (chunked, until close) */
    bool keep_alive;          /**< the connection can carry more requests after this one */
    unsigned index;           /**< 0 for the answer to the first request written on this
                                   session, 1 for the next... */
} nbio_http_response;

/**
 * Reads the next response (or part) without blocking.
 * Returns NBIO_DATA with *out filled, NBIO_ACTIVE (bytes arrived, nothing
 * complete), NBIO_IDLE, or a negative error: NBIO_ETOOLARGE (a limit; the
 * detail says which), NBIO_EPROTOCOL (a malformed response; the detail
 * says what and where), NBIO_ETRUNCATED (the connection ended inside a
 * response: "got X of Y bytes"), NBIO_EPEERCLOSED (the server closed
 * between responses: the detail says how many requests it left
 * unanswered, see nbio_http_unanswered()), or a transport error.
 * After a response that does not keep the connection alive, the next read
 * returns NBIO_EPEERCLOSED.
 */
NBIO_API int nbio_http_read_response(nbio_session *s, nbio_http_response *out);

/** Requests written on s whose response has not been handed out yet (also
 *  after the session ended: those are the ones left unanswered). Works on
 *  an HTTP client session and on an agent exchange. */
NBIO_API unsigned nbio_http_unanswered(const nbio_session *s);

/** True when nothing of any response was received on s yet: a failure now
 *  means the server never began to answer (a retry may be safe). */
NBIO_API bool nbio_http_nothing_received(const nbio_session *s);

/* ---- the agent: URLs, a connection pool, redirects -------------------- */

typedef struct nbio_http_agent nbio_http_agent;

/** Behaviour of an agent. */
typedef struct nbio_http_agent_options {
    nbio_http_options http;    /**< for every connection */
    int max_idle_per_origin;   /**< idle keep-alive connections kept per origin (default 4) */
    int idle_timeout_ms;       /**< an idle connection older than this is closed (default
                                    30000) */
    int max_redirects;         /**< follow up to this many redirects (default 0: off; -L
                                    uses 10) */
    int connect_timeout_ms;    /**< name resolution + connect (default 10000) */
} nbio_http_agent_options;

/** Fills o with the defaults. */
NBIO_API void nbio_http_agent_options_init(nbio_http_agent_options *o);

/**
 * Makes an agent. tls is used for https:// URLs (the agent takes its own
 * reference; give it alpn "http/1.1" to offer ALPN); NULL: made on first
 * use with the system's trust store, verification on and ALPN http/1.1.
 * Host names are verified and sent as SNI from each URL. o may be NULL for
 * the defaults. Returns NULL when out of memory.
 * An agent and its exchanges belong to one thread.
 */
NBIO_API nbio_http_agent *nbio_http_agent_new(nbio_tls_config *tls,
                                              const nbio_http_agent_options *o);

/** Closes every pooled connection and frees the agent. Exchanges still
 *  alive keep their connection and can be used and freed later. */
NBIO_API void nbio_http_agent_free(nbio_http_agent *a);

/**
 * Starts a request to an absolute http:// or https:// URL (IPv6 literals in
 * brackets, default ports, query strings). req gives the method, headers
 * and body (its target is ignored: the URL's is used); NULL is a GET.
 * Returns an exchange session: establishing while it connects (or reuses a
 * pooled connection), then drive/read it like any session: nbio_read or
 * nbio_http_read_response hands out the response; after the last part the
 * exchange is over (reads return NBIO_EPEERCLOSED) and its connection goes
 * back to the pool when the response allows it. A malformed URL gives a
 * terminated session with NBIO_EINVAL and a detail; NULL means out of
 * memory. The exchange must be freed with nbio_free(); freeing it early
 * closes its connection.
 */
NBIO_API nbio_session *nbio_http_agent_request(nbio_http_agent *a, const char *url,
                                               const nbio_http_request *req);

/** For an exchange: 1 when it reused a pooled connection, 0 when it opened
 *  one, -1 when it has none (yet, or s is not an exchange). */
NBIO_API int nbio_http_exchange_reused(const nbio_session *s);

/** For an exchange: the URL of the response handed out (after redirects),
 *  or NULL. Owned by the exchange; valid until nbio_free(). */
NBIO_API const char *nbio_http_exchange_url(const nbio_session *s);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_HTTP_CLIENT_H */
