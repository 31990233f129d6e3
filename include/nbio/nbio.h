/*
 * libnbio — bi-directional, non-blocking network I/O.
 *
 * Core contract shared by every layer (TCP, Unix sockets, TLS, framing,
 * mock transports). A layer is a *session*; every session has a status and
 * the same verbs:
 *
 *   nbio_drive(s)        make progress (connect, flush buffered output)
 *   nbio_read(s, &out)   NBIO_DATA / NBIO_ACTIVE / NBIO_IDLE
 *   nbio_write(s, &buf)  NBIO_DONE / NBIO_PENDING (buf advanced to the rest)
 *   nbio_flush(s, ms)    push buffered output out, waiting up to ms
 *   nbio_close(s)        graceful goodbye (pending data first, then FIN)
 *   nbio_free(s)         release the whole stack
 *
 * Outcomes are non-negative; errors are negative (-errno or NBIO_E* library
 * codes). A would-block is never an error.
 *
 * Threading: a session belongs to one thread at a time. The library has no
 * global mutable state beyond one-time initialisation.
 */
#ifndef NBIO_NBIO_H
#define NBIO_NBIO_H

#include <stddef.h>
#include <stdint.h>

#include "nbio/api.h"
#include "nbio/errors.h"

#ifdef __cplusplus
extern "C" {
#endif

#define NBIO_VERSION_MAJOR 0
#define NBIO_VERSION_MINOR 1
#define NBIO_VERSION_PATCH 0
#define NBIO_VERSION_STRING "0.1.0"

/** Returns the library version string ("MAJOR.MINOR.PATCH"); static storage. */
NBIO_API const char *nbio_version(void);

/**
 * Session status: `enum nbio_status`, returned by nbio_status(). The
 * NBIO_STATUS_ prefix keeps the states apart from the NBIO_E* error codes.
 */
enum nbio_status {
    NBIO_STATUS_ESTABLISHING = 0, /**< connecting / handshaking; drive() progresses it */
    NBIO_STATUS_ESTABLISHED = 1,  /**< ready for reads and writes */
    NBIO_STATUS_TERMINATED = 2    /**< an error, a close or the peer's end of stream ended
                                       it (the read side at least); see nbio_error() */
};

/* Earlier names (0.1), kept as aliases: the type and the states. */
typedef enum nbio_status nbio_state;
#define NBIO_ESTABLISHING NBIO_STATUS_ESTABLISHING
#define NBIO_ESTABLISHED NBIO_STATUS_ESTABLISHED
#define NBIO_TERMINATED NBIO_STATUS_TERMINATED

/** Non-negative outcomes of the verbs. */
enum nbio_outcome {
    NBIO_IDLE = 0,    /**< nothing happened (would-block); try again later */
    NBIO_ACTIVE = 1,  /**< progress was made, nothing complete to hand out */
    NBIO_DATA = 2,    /**< read: out holds one payload */
    NBIO_DONE = 3,    /**< write/flush/close: all of it was accepted/finished */
    NBIO_PENDING = 4  /**< write: buf was advanced to the rest; resubmit it */
};

/** Interest bits returned by nbio_interest(). */
enum nbio_interest_bits {
    NBIO_WANT_READ = 1u << 0,  /**< wake me when the fd is readable */
    NBIO_WANT_WRITE = 1u << 1, /**< wake me when the fd is writable */
    NBIO_READY = 1u << 2       /**< work is buffered: do not sleep, call read/drive now */
};

/**
 * A byte range. For reads the library fills it (data points into the
 * session's own buffer); for writes the caller fills it and the library
 * advances it past what was accepted.
 */
typedef struct nbio_buf {
    const void *data;
    size_t len;
} nbio_buf;

/** An opaque session. Created by a layer's constructor, released by nbio_free(). */
typedef struct nbio_session nbio_session;

/** Returns the session's status. A NULL session is NBIO_STATUS_TERMINATED. */
NBIO_API enum nbio_status nbio_status(const nbio_session *s);

/**
 * Makes progress without blocking: advances a connect or handshake, sends
 * buffered output.
 * Returns NBIO_ACTIVE when work was done, NBIO_IDLE when nothing could be
 * done, or a negative error (the session is then terminated).
 */
NBIO_API int nbio_drive(nbio_session *s);

/**
 * Reads the next payload without blocking.
 * Returns NBIO_DATA with *out set to one payload (bytes for byte sessions, a
 * whole frame for message sessions); out->data points into the session's
 * buffer and stays valid until the next nbio_read() or nbio_free() of this
 * session. Writes, drives, flushes and closes leave it alone, so a payload
 * can be written back (echoed) straight from it, also when that write goes
 * pending and its rest is resubmitted before the next read.
 * Returns NBIO_ACTIVE when bytes arrived but no payload is complete yet,
 * NBIO_IDLE when nothing arrived, or a negative error. A clean end of stream
 * from the peer is NBIO_EPEERCLOSED, returned only once every buffered
 * payload has been read; it ends the read direction only (the status is
 * NBIO_STATUS_TERMINATED), while writes, drive, flush and close keep working, so an
 * answer can still go out to a peer that half-closed (docs/contract.md).
 * While the session is establishing, read drives it and returns NBIO_ACTIVE
 * or NBIO_IDLE.
 */
NBIO_API int nbio_read(nbio_session *s, nbio_buf *out);

/**
 * Writes buf without blocking.
 * Returns NBIO_DONE when all of buf was accepted (it may still sit in the
 * session's write buffer until the next drive/read/flush), or NBIO_PENDING
 * with buf advanced past what was accepted: pass the same nbio_buf (the rest)
 * again later; nothing is lost or duplicated. A message session accepts a
 * message whole or not at all, except a message larger than its write buffer,
 * which it streams: then only the rest of that message may be resubmitted.
 * While establishing, a byte session returns NBIO_PENDING with buf untouched;
 * a message session may accept the message into its buffer. An empty buffer
 * is an empty message for message sessions and a no-op for byte sessions.
 * After nbio_shutdown()/nbio_close() it returns NBIO_ECLOSED (the session is
 * not ended by that). Returns a negative error on failure.
 */
NBIO_API int nbio_write(nbio_session *s, nbio_buf *buf);

/** Convenience: nbio_write() of a single buffer; returns the bytes accepted
 *  (0..len) or a negative error. */
NBIO_API long nbio_write_some(nbio_session *s, const void *data, size_t len);

/**
 * Sends buffered output, blocking up to timeout_ms (negative: no limit,
 * 0: one non-blocking attempt). Also waits for an establishing session.
 * Returns NBIO_DONE when nothing is left buffered, NBIO_PENDING when the time
 * ran out first (the session stays usable), or a negative error.
 */
NBIO_API int nbio_flush(nbio_session *s, int timeout_ms);

/**
 * Starts or continues a graceful close: no more writes are accepted, pending
 * output is sent, then the protocol's goodbye (TCP FIN, TLS close_notify).
 * Returns NBIO_DONE once the goodbye is out (the session is then
 * NBIO_STATUS_TERMINATED with NBIO_ECLOSED), NBIO_PENDING while output is still
 * going out (call again, or drive), or a negative error.
 */
NBIO_API int nbio_close(nbio_session *s);

/**
 * Half-closes the write side: pending output is sent, then the goodbye;
 * reading goes on until the peer closes. Returns like nbio_close() but the
 * session stays established for reading.
 */
NBIO_API int nbio_shutdown(nbio_session *s);

/** Releases the session and every session it wraps. Abortive: anything still
 *  buffered is dropped. NULL is ignored. */
NBIO_API void nbio_free(nbio_session *s);

/** Stores one pointer of the caller's with the session (e.g. its
 *  connection record). The library never looks at it. */
NBIO_API void nbio_set_data(nbio_session *s, void *data);

/** Returns the pointer given to nbio_set_data(), or NULL (also for a NULL
 *  session). */
NBIO_API void *nbio_data(const nbio_session *s);

/** Returns the file descriptor to wait on, or -1 when there is none (mock
 *  sessions, a terminated session). Owned by the session: do not close it. */
NBIO_API int nbio_fd(const nbio_session *s);

/** Returns NBIO_WANT_READ / NBIO_WANT_WRITE / NBIO_READY bits: what the
 *  session waits for now. */
NBIO_API unsigned nbio_interest(const nbio_session *s);

/** Returns 0 while the session is healthy, else the error that ended it. */
NBIO_API int nbio_error(const nbio_session *s);

/**
 * Returns a human-readable detail of the error that ended the session
 * (e.g. "connect 127.0.0.1:9: connection refused"), or "" when there is none.
 * Owned by the session; valid until nbio_free().
 */
NBIO_API const char *nbio_detail(const nbio_session *s);

/** Returns the layer's name ("tcp", "unix", "frame", "mock", "tls", ...);
 *  static storage. */
NBIO_API const char *nbio_kind(const nbio_session *s);

/**
 * Waits until at least one session can make progress, or timeout_ms passes
 * (negative: no limit). Sessions with NBIO_READY return at once.
 * Returns the number of sessions that look ready (0 on timeout) or a
 * negative error. NULL entries are skipped.
 */
NBIO_API int nbio_wait(nbio_session *const *sessions, size_t n, int timeout_ms);

/**
 * Same as nbio_wait(), but masks[i] limits what wakes the call for
 * sessions[i]: the session's interest is ANDed with it. Pass
 * ~NBIO_WANT_READ for a session whose reads are on hold (backpressure: its
 * last echo is still pending), or 0 to ignore a session. masks may be NULL.
 */
NBIO_API int nbio_wait_masked(nbio_session *const *sessions, const unsigned *masks, size_t n,
                              int timeout_ms);

/** Monotonic clock in milliseconds (CLOCK_MONOTONIC). */
NBIO_API int64_t nbio_now_ms(void);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_NBIO_H */
