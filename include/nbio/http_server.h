/*
 * libnbio — the HTTP/1.1 server session.
 *
 * A message layer over an accepted byte session (TCP, Unix, TLS, mock):
 * reads hand out parsed requests (nbio_http_read_request), writes take
 * responses (nbio_http_write_response). It keeps the generic verbs
 * (status, drive, flush, close, free, fd, interest), so the poller,
 * liveness and heartbeat wrap it unchanged.
 *
 * - Keep-alive by default for HTTP/1.1; "Connection: close" and HTTP/1.0
 *   are honoured (HTTP/1.0 keep-alive on request).
 * - Pipelining: the next request is parsed while earlier responses drain;
 *   responses are written in the order the requests were read, and a burst
 *   of them leaves in one send (the coalescing rule of docs/contract.md).
 * - A malformed or over-limit request is answered by the session itself
 *   with the right status and "Connection: close" — 400 malformed, 414
 *   request line too long, 431 header block too large or too many fields,
 *   413 body too large, 501 unknown transfer coding, 505 HTTP version — and
 *   the read returns the error (NBIO_EPROTOCOL, NBIO_ETOOLARGE,
 *   NBIO_EUNSUPPORTED) with a detail; nbio_http_server_status_sent() tells
 *   which status went out. The refusal ends the read side only: call
 *   nbio_close() to finish sending it (and any answer still queued), then
 *   the FIN. Request smuggling is refused, never guessed:
 *   Content-Length with Transfer-Encoding, differing Content-Length values,
 *   chunked not last, bad chunk sizes, bare CR/LF, obs-fold, whitespace
 *   before a colon, a missing or repeated Host in HTTP/1.1.
 * - "Expect: 100-continue": "100 Continue" goes out when the session starts
 *   reading the body, unless a final response was written first; a body
 *   announced over max_body is refused with 413 before it is read.
 * - Slow clients: nbio_http_server_phase() says what the session waits for
 *   and since when, so a loop can arm a header timeout and an idle timeout
 *   (the poller's timers).
 *
 * Request slices live until the next read of the session, as everywhere.
 */
#ifndef NBIO_HTTP_SERVER_H
#define NBIO_HTTP_SERVER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbio/http.h"
#include "nbio/http_client.h"
#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Limits and behaviour of an HTTP server session. */
typedef struct nbio_http_server_options {
    size_t max_head;          /**< bytes of a request head (default 64 KiB): over it 431 */
    size_t max_headers;       /**< header fields (default 100): over it 431 */
    size_t max_line;          /**< bytes of the request line (414) or a field line (431)
                                   (default 8 KiB) */
    uint64_t max_body;        /**< bytes of a request body (default 16 MiB): over it 413 */
    bool stream_body;         /**< hand out the head, then body parts (nbio_http_part) */
    size_t read_buffer_size;  /**< first size of the read buffer (default 16 KiB) */
    size_t write_buffer_size; /**< responses queued beyond this wait: a write returns
                                   NBIO_PENDING (default 256 KiB) */
    bool release_buffers;     /**< between requests, with nothing buffered, give the read
                                   buffer, the header arrays and the write queue back
                                   (a few KiB per idle keep-alive connection instead of
                                   ~16 KiB; costs an allocation per request burst) */
} nbio_http_server_options;

/** Fills o with the defaults. */
NBIO_API void nbio_http_server_options_init(nbio_http_server_options *o);

/** Makes an HTTP/1.1 server session over inner (owned from now on, also on
 *  failure). o may be NULL for the defaults. Returns the session, or NULL
 *  when out of memory. */
NBIO_API nbio_session *nbio_http_server(nbio_session *inner,
                                        const nbio_http_server_options *o);

/** A request, or a part of one (streaming). Slices live until the next
 *  read of the session. */
typedef struct nbio_http_incoming {
    enum nbio_http_part part;   /**< WHOLE; or HEAD, BODY..., END when streaming */
    nbio_http_head head;        /**< method, target, version, headers (WHOLE, HEAD) */
    nbio_http_slice body;       /**< the body (WHOLE) or this part (BODY, END) */
    nbio_http_header *trailers; /**< chunked trailers (WHOLE, END), else NULL */
    size_t num_trailers;
    uint64_t content_length;    /**< announced length, 0 without a body, UINT64_MAX chunked */
    bool keep_alive;            /**< the client can send another request after this one */
    bool upgrade;               /**< "Connection: upgrade" with an Upgrade header */
    unsigned index;             /**< 0 for the first request on the connection... */
} nbio_http_incoming;

/**
 * Reads the next request (or part) without blocking.
 * Returns NBIO_DATA with *out filled, NBIO_ACTIVE, NBIO_IDLE, or a negative
 * error: NBIO_EPEERCLOSED when the client closed between requests (the
 * session may still write and close), NBIO_ETRUNCATED when it closed inside
 * one, or a request the session refused (see the top of this file) — the
 * refusal is already queued and being sent; call nbio_close() to finish
 * sending it, or nbio_free().
 */
NBIO_API int nbio_http_read_request(nbio_session *s, nbio_http_incoming *out);

/** A response to write. Everything is copied. */
typedef struct nbio_http_reply {
    int status;                      /**< 100-999 */
    const char *reason;              /**< NULL: the standard phrase ("OK", "Not Found") */
    const nbio_http_header *headers; /**< extra headers; Content-Length, Transfer-Encoding,
                                          Connection and Date are written by the session
                                          unless given here */
    size_t num_headers;
    const void *body;                /**< the body, or NULL */
    size_t body_len;
    /** Without body: the length of a body that follows in parts with
     *  nbio_http_write_response_body() (sent with Content-Length), or
     *  UINT64_MAX for a chunked body in parts, or 0 for no body. Ignored
     *  when body is set. */
    uint64_t content_length;
    bool close;                      /**< close the connection after this response */
} nbio_http_reply;

/**
 * Queues the response to the oldest request not answered yet. It goes out
 * with the next read that finds nothing to hand out, or drive/flush/close
 * (after NBIO_PENDING, drive or read to make room). The body is left out
 * when that request was HEAD, and for 1xx, 204 and 304: content_length or
 * body_len still gives the Content-Length of a HEAD answer, and no parts
 * are owed. A 1xx status (other than 101) is an interim response: the
 * final one must still follow.
 * Returns NBIO_DONE, NBIO_PENDING (queue full: nothing was queued, try
 * again when writable), NBIO_EUSAGE (no request to answer, or a body in
 * parts still owed), NBIO_EINVAL (a status, reason or header that would
 * break the head), or the session's error.
 */
NBIO_API int nbio_http_write_response(nbio_session *s, const nbio_http_reply *r);

/**
 * Writes the next part of a body announced with content_length. With a
 * known length the parts must add up to it exactly (NBIO_EUSAGE beyond);
 * with UINT64_MAX each part is a chunk and an empty part ends the body.
 * Returns NBIO_DONE, NBIO_PENDING (queue full: nothing queued), or an
 * error.
 */
NBIO_API int nbio_http_write_response_body(nbio_session *s, const void *data, size_t len);

/** What a server session waits for, see nbio_http_server_phase(). */
enum nbio_http_server_wait {
    NBIO_HTTP_WAIT_REQUEST = 0,  /**< idle between requests (keep-alive) */
    NBIO_HTTP_WAIT_HEAD = 1,     /**< a request head began arriving */
    NBIO_HTTP_WAIT_BODY = 2,     /**< a request body is arriving */
    NBIO_HTTP_WAIT_RESPONSE = 3, /**< the caller owes a response (or its body) */
    NBIO_HTTP_WAIT_DONE = 4      /**< ended, or the last response closes the connection */
};

/** Returns what s waits for, and sets *since (may be NULL) to when that
 *  began (nbio_now_ms() time). */
NBIO_API enum nbio_http_server_wait nbio_http_server_phase(const nbio_session *s,
                                                           int64_t *since);

/** The status the session sent on its own when it refused a request (400,
 *  413, 414, 431, 501, 505), or 0. */
NBIO_API int nbio_http_server_status_sent(const nbio_session *s);

/**
 * Upgrade hand-off (WebSocket and the like): after the request that asked
 * for it was read (nbio_http_incoming.upgrade) and answered (101), returns
 * the byte session under s, in a thin layer that first hands out the bytes
 * the client sent past that request and first sends what s still had
 * queued (the 101 answer). s is freed; the returned session is the
 * caller's (NULL when out of memory: everything is freed then).
 * Returns a terminated session with NBIO_EUSAGE when s is not an HTTP
 * server session between answers (a request still unanswered, a body in
 * parts still owed).
 */
NBIO_API nbio_session *nbio_http_server_upgrade(nbio_session *s);

/** The standard reason phrase of a status ("Not Found"), or "" for an
 *  unknown one; static storage. */
NBIO_API const char *nbio_http_reason(int status);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_HTTP_SERVER_H */
