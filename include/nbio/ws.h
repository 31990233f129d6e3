/*
 * libnbio — WebSocket (RFC 6455), client and server, over any byte session.
 *
 * A message layer: reads hand out whole messages (fragments reassembled;
 * zero-copy when a message arrived in one unmasked frame), writes take
 * whole messages. Writes coalesce like every message layer (small messages
 * written in a burst leave in one send). Pings are answered with pongs by
 * the session, also between the fragments of a message.
 *
 * The handshake is part of establishment: a client session is
 * NBIO_STATUS_ESTABLISHING until the server's 101 arrived and checked
 * (Sec-WebSocket-Accept, the subprotocol and extensions it chose); a
 * server session until it read the upgrade request and answered it. A
 * refused handshake ends the session with NBIO_EPROTOCOL and a detail
 * (the server's status line, or what was wrong with the request — a server
 * answers such a request with 400, or 403 for a refused Origin).
 *
 * Errors close the connection with the protocol's code, then end the
 * session: NBIO_EPROTOCOL with a detail (1002 protocol error, 1007 invalid
 * UTF-8 in a text message, 1003 unsupported data), NBIO_ETOOLARGE for a
 * message over max_message (1009). nbio_close() sends a close frame (1000,
 * or nbio_ws_close()'s code), waits for the peer's, then closes the
 * transport; a close from the peer is answered and ends the read side
 * with NBIO_EPEERCLOSED (nbio_ws_peer_close() has its code and reason).
 *
 * The generic verbs keep working: nbio_read hands out the next message's
 * payload (any type), nbio_write sends a binary message.
 */
#ifndef NBIO_WS_H
#define NBIO_WS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbio/http.h"
#include "nbio/http_server.h"
#include "nbio/nbio.h"
#include "nbio/tls.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Message types (the RFC's opcodes). */
typedef enum nbio_ws_type {
    NBIO_WS_TEXT = 1,   /**< UTF-8 text (checked on receipt) */
    NBIO_WS_BINARY = 2,
    NBIO_WS_PING = 9,   /**< handed out only with show_control */
    NBIO_WS_PONG = 10   /**< handed out only with show_control */
} nbio_ws_type;

/** Options of a WebSocket session. Zero values are the defaults. */
typedef struct nbio_ws_options {
    size_t max_message;       /**< bytes of a message, reassembled and decompressed
                                   (default 16 MiB): over it 1009 and NBIO_ETOOLARGE */
    size_t write_buffer_size; /**< messages are queued up to this (default 64 KiB);
                                   a larger message is streamed from the caller's buffer */
    size_t fragment_size;     /**< send messages as fragments of at most this many
                                   payload bytes (0: one frame per message) */
    bool compress;            /**< client: offer permessage-deflate; server: accept it */
    bool show_control;        /**< also hand out pings and pongs (pings are still
                                   answered) */
    int ping_interval_ms;     /**< send a ping when nothing was sent for this long (0: off) */
    int handshake_timeout_ms; /**< the opening handshake (default 10000) */
    /* client */
    const char *origin;                /**< Origin header, or NULL */
    const char *const *protocols;      /**< subprotocols offered, in preference order */
    size_t num_protocols;
    const nbio_http_header *headers;   /**< extra handshake headers */
    size_t num_headers;
    /* server */
    const char *const *accept_protocols; /**< subprotocols accepted, in preference
                                              order; the first one the client offers is
                                              chosen */
    size_t num_accept_protocols;
    /** Origin check: return true to accept; NULL accepts any. origin is {NULL, 0}
     *  when the request has none. */
    bool (*check_origin)(void *arg, nbio_http_slice origin);
    void *check_origin_arg;
} nbio_ws_options;

/**
 * A client over a new connection to a ws:// or wss:// URL (IPv6 literals,
 * default ports 80/443, query strings). tls is used for wss:// (NULL: the
 * system trust store); the session takes its own reference. o may be NULL.
 * Returns an establishing session, a terminated one with NBIO_EINVAL and a
 * detail for a malformed URL, or NULL when out of memory.
 */
NBIO_API nbio_session *nbio_ws_connect(const char *url, nbio_tls_config *tls,
                                       const nbio_ws_options *o);

/**
 * A client over an existing byte session (owned from now on, also on
 * failure): host is the Host header value, target the request target
 * ("/chat?room=1"); both copied.
 */
NBIO_API nbio_session *nbio_ws_client(nbio_session *inner, const char *host, const char *target,
                                      const nbio_ws_options *o);

/**
 * A server over an accepted byte session (owned from now on): it reads the
 * upgrade request and answers it (101, or 400/403/426 and the end of the
 * session) while establishing.
 */
NBIO_API nbio_session *nbio_ws_server(nbio_session *inner, const nbio_ws_options *o);

/**
 * Takes over from the HTTP server: req is the upgrade request just read
 * from http (nbio_http_read_request, req->upgrade set). Checks it, writes
 * the 101 answer (or an error answer: then *out is NULL and the error is
 * returned; http lives on), hands the byte session over and wraps it.
 * On success returns 0 with *out an established WebSocket session; http
 * was consumed (freed).
 */
NBIO_API int nbio_ws_accept_upgrade(nbio_session *http, const nbio_http_incoming *req,
                                    const nbio_ws_options *o, nbio_session **out);

/** A message handed out by nbio_ws_read(); data lives until the next read. */
typedef struct nbio_ws_message {
    nbio_ws_type type;
    nbio_buf data;
} nbio_ws_message;

/** Reads the next message. Returns NBIO_DATA, NBIO_ACTIVE, NBIO_IDLE or a
 *  negative error (NBIO_EPEERCLOSED after the peer's close frame). */
NBIO_API int nbio_ws_read(nbio_session *s, nbio_ws_message *m);

/**
 * Writes one message of type (text, binary; ping and pong take at most 125
 * bytes). Returns NBIO_DONE, or NBIO_PENDING: a message that fits the queue
 * was not taken (buf untouched), a larger one is being streamed (buf
 * advanced: resubmit the rest with the same type). NBIO_EINVAL for a text
 * message that is not UTF-8 or a control payload over 125 bytes.
 */
NBIO_API int nbio_ws_write(nbio_session *s, nbio_ws_type type, nbio_buf *buf);

/**
 * Starts the closing handshake with code (1000-4999) and a reason (at most
 * 123 bytes): the close frame is sent, and reads go on handing out what the
 * peer sends before its own close, until they return NBIO_EPEERCLOSED;
 * then nbio_close() finishes (NBIO_DONE). Returns NBIO_PENDING while the
 * peer's close has not arrived, else as nbio_close(). nbio_close() alone
 * (code 1000) drops messages that arrive after our close frame.
 */
NBIO_API int nbio_ws_close(nbio_session *s, unsigned code, const char *reason);

/** After NBIO_EPEERCLOSED: the close code the peer sent (1005 when it sent
 *  none) and its reason (NUL-terminated, owned by the session). Returns
 *  false when no close frame arrived. */
NBIO_API bool nbio_ws_peer_close(const nbio_session *s, unsigned *code, const char **reason);

/** The subprotocol agreed on, or NULL. Owned by the session. */
NBIO_API const char *nbio_ws_protocol(const nbio_session *s);

/** True when permessage-deflate was agreed on. */
NBIO_API bool nbio_ws_compressed(const nbio_session *s);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_WS_H */
