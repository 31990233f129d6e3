/*
 * TCP and Unix-domain stream sockets: byte sessions and listeners.
 *
 * A client session never blocks on creation: name resolution (c-ares) and
 * connect progress inside nbio_drive(); it starts NBIO_STATUS_ESTABLISHING.
 * Reads return whatever arrived (up to the read buffer); writes go straight
 * to the socket. SIGPIPE is never raised.
 */
#ifndef NBIO_TCP_H
#define NBIO_TCP_H

#include <stdbool.h>

#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Options of a client or accepted stream session. Start from
 *  nbio_tcp_options_init(); a NULL pointer means the defaults. */
typedef struct nbio_tcp_options {
    size_t read_buffer_size;  /**< bytes per read (default 65536, min 1) */
    int connect_timeout_ms;   /**< resolve + connect limit (default 10000; <= 0: none) */
    bool nodelay;             /**< TCP_NODELAY (default true) */
    int family;               /**< AF_UNSPEC (default), AF_INET or AF_INET6 */
    const char *dns_servers;  /**< c-ares server list "ip[:port],..." (default: system) */
    int dns_timeout_ms;       /**< per DNS try (default 2000) */
    int dns_tries;            /**< DNS tries per server (default 2) */
    int send_buffer_size;     /**< SO_SNDBUF in bytes (default 0: the system's) */
    int recv_buffer_size;     /**< SO_RCVBUF in bytes (default 0: the system's) */
} nbio_tcp_options;

/** Fills o with the defaults. */
NBIO_API void nbio_tcp_options_init(nbio_tcp_options *o);

/**
 * Starts a TCP connection to addr: "host:port", "[v6]:port", a numeric
 * address or a name. Every resolved address is tried in turn.
 * Returns a new session in NBIO_STATUS_ESTABLISHING, or, when addr is malformed, a
 * session already terminated with NBIO_EINVAL and a detail. Returns NULL only
 * when out of memory. opt may be NULL; its strings are copied.
 * Errors while establishing: NBIO_ERESOLVE, NBIO_ECONNREFUSED,
 * NBIO_ETIMEDOUT, NBIO_EHOSTUNREACH, NBIO_ENETUNREACH, ... with a detail
 * naming the host and the address tried. The caller owns the session.
 */
NBIO_API nbio_session *nbio_tcp_connect(const char *addr, const nbio_tcp_options *opt);

/** Starts a connection to the Unix-domain stream socket at path ("@name"
 *  for the abstract namespace). Same contract as nbio_tcp_connect(). */
NBIO_API nbio_session *nbio_unix_connect(const char *path, const nbio_tcp_options *opt);

/**
 * Wraps an already-connected stream socket fd (made non-blocking here).
 * The session owns fd from now on, also when this fails (fd is closed).
 * Returns NULL only when out of memory.
 */
NBIO_API nbio_session *nbio_stream_from_fd(int fd, const nbio_tcp_options *opt);

/** Options of a listener. Start from nbio_listen_options_init(). */
typedef struct nbio_listen_options {
    int backlog;              /**< listen(2) backlog (default 511) */
    bool reuseaddr;           /**< SO_REUSEADDR (default true) */
    bool v6only;              /**< IPV6_V6ONLY on "[::]" (default false: dual stack) */
    nbio_tcp_options accepted; /**< options given to every accepted session */
} nbio_listen_options;

/** Fills o with the defaults. */
NBIO_API void nbio_listen_options_init(nbio_listen_options *o);

/**
 * Creates a TCP listener on addr ("127.0.0.1:0", "[::1]:8080", ":8080" for
 * every IPv4 address, "[::]:8080" for every address, "localhost:0").
 * Port 0 picks a free port; query it with nbio_local_address().
 * Returns a listener session: NBIO_STATUS_ESTABLISHED when listening, or already
 * NBIO_STATUS_TERMINATED with an error and detail (e.g. "listen 127.0.0.1:80:
 * permission denied"). NULL only when out of memory. Accept with
 * nbio_accept(); nbio_read/nbio_write on a listener return NBIO_EUNSUPPORTED.
 */
NBIO_API nbio_session *nbio_tcp_listen(const char *addr, const nbio_listen_options *opt);

/** Creates a Unix-domain stream listener at path ("@name" for the abstract
 *  namespace). An existing file at path makes it fail with NBIO_EADDRINUSE;
 *  the socket file is removed by nbio_free(). Same contract as
 *  nbio_tcp_listen(). */
NBIO_API nbio_session *nbio_unix_listen(const char *path, const nbio_listen_options *opt);

/**
 * Accepts one connection without blocking.
 * Returns NBIO_DATA with *out set to a new NBIO_STATUS_ESTABLISHED session (owned by
 * the caller), NBIO_IDLE when none is waiting, or a negative error. A
 * transient failure of one accept (the client reset before it was accepted,
 * out of file descriptors) returns the error without ending the listener.
 * Out of descriptors (NBIO_EMFILE, NBIO_ENFILE), the waiting connection is
 * accepted and closed at once with a descriptor the listener keeps spare,
 * so that it does not stay queued and make a poll loop spin.
 */
NBIO_API int nbio_accept(nbio_session *listener, nbio_session **out);

/**
 * Writes the local (bound) address of a stream session or listener into buf
 * as "127.0.0.1:PORT", "[::1]:PORT" or a Unix path.
 * Returns the port number (0 for Unix sockets) or a negative error.
 */
NBIO_API int nbio_local_address(const nbio_session *s, char *buf, size_t len);

/** Same as nbio_local_address() for the peer's address. */
NBIO_API int nbio_peer_address(const nbio_session *s, char *buf, size_t len);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_TCP_H */
