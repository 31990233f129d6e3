/*
 * An echo server engine driven one step at a time, so it runs both as the
 * `nbio echo-server` subcommand and inside `nbio demo` (interleaved with the
 * demo's own client in one thread).
 *
 * Every client is served from the calling thread, through an nbio_poller:
 * a step costs what the ready clients cost, not what the connected ones
 * do. Echo applies backpressure: nothing more is read from a client while
 * its previous echo is still pending, and the pending echo is written
 * straight from the session's read buffer (a payload stays valid until the
 * next read), so memory per client stays bounded by the session's buffers.
 * Idle clients hold no buffers (release_buffers).
 *
 * With ws, each connection is a WebSocket server session (any path): text
 * stays text, pings are answered and close handshakes completed by the
 * session, and a client that breaks the protocol is closed with the
 * protocol's code by the session and reported in one line.
 *
 * With TLS, one configuration is shared by every connection. A client whose
 * handshake fails (or that fails later) is reported in one line on the log
 * and dropped; the other clients are not affected.
 */
#ifndef NBIO_TOOLS_ECHO_SERVER_H
#define NBIO_TOOLS_ECHO_SERVER_H

#include <stdbool.h>
#include <stdio.h>

#include "nbio/frame.h"
#include "nbio/tls.h"

typedef struct echo_server_config {
    const char *listen;                 /* "HOST:PORT" or a Unix socket path */
    const nbio_frame_strategy *framing; /* NULL: echo raw bytes */
    size_t max_frame;                   /* 0: the framing default */
    FILE *log;                          /* dropped clients are reported here */
    const char *log_prefix;             /* e.g. "nbio echo-server" */
    /* A TLS server configuration (NBIO_TLS_SERVER), or NULL for plaintext.
     * Every accepted connection is wrapped in nbio_tls_server(accepted, tls),
     * framing (if any) on top. The server takes its own reference, so the
     * caller may drop its one after echo_server_open(). */
    nbio_tls_config *tls;
    int idle_timeout_ms; /* drop a client with no whole message for this long; 0: never */
    size_t max_clients;  /* 0: 10000; over it, new connections are closed at once */
    /* WebSocket (--framing ws; framing must be NULL): every connection (after
     * TLS) is wrapped in nbio_ws_server() and each message is echoed with its
     * type; max_frame is then the largest message (0: the session's default). */
    bool ws;
    bool ws_compress; /* accept permessage-deflate */
} echo_server_config;

typedef struct echo_server echo_server;

/* Starts listening. Returns the server, or NULL after writing the reason
 * (nbio_errname + detail) into err. */
echo_server *echo_server_open(const echo_server_config *cfg, char *err, size_t errlen);

/* The bound address ("127.0.0.1:40123", "[::1]:40123" or the socket path). */
const char *echo_server_address(const echo_server *srv);

/*
 * Accepts new clients and serves the clients that need it, once.
 * wait_ms 0 never sleeps (busy-polling); wait_ms > 0 sleeps in epoll up to
 * wait_ms, or until the nearest client deadline, when nothing is ready (a
 * signal cuts the sleep short).
 * Returns the number of sessions served (0: idle), or a negative error
 * when the listener failed.
 */
int echo_server_step(echo_server *srv, int wait_ms);

/* Graceful shutdown: stops accepting, echoes what every client already
 * sent, then closes each (TLS close_notify, then FIN) and waits for its end
 * of stream, at most grace_ms in all. Keep calling echo_server_step() until
 * echo_server_clients() is 0 or echo_server_drained() says so. */
void echo_server_drain(echo_server *srv, int grace_ms);

/* True once a drain finished (every client gone, or the grace period over). */
bool echo_server_drained(const echo_server *srv);

/* Number of clients currently connected. */
size_t echo_server_clients(const echo_server *srv);

/* Drops every client (abortively) and the listener; removes a Unix socket
 * file. NULL is ignored. */
void echo_server_free(echo_server *srv);

#endif
