/*
 * Liveness and heartbeat: two wrapping layers that work around any session
 * (TCP, TLS, framing, ...).
 *
 *  - liveness ends a session whose peer went quiet: no payload was handed
 *    out for timeout_ms;
 *  - heartbeat keeps a quiet connection visibly alive: it sends a message of
 *    the caller's when nothing was written for interval_ms.
 *
 * Both are transparent otherwise: reads, writes, flushes and closes go to
 * the wrapped session unchanged, NBIO_EPEERCLOSED ends the read side only,
 * and writes after the peer's half-close keep working. Neither has a thread
 * or a timer of its own: time is looked at (nbio_now_ms()) when the session
 * is driven or read, and in nbio_interest(). A busy-polling loop needs
 * nothing more; a loop that sleeps arms a timer at the *_deadline() time
 * (nbio_poller_set_timer(), or the timeout of nbio_wait()). docs/liveness.md
 * has both loops.
 *
 * A stack may hold both, e.g.
 *   nbio_heartbeat_new(nbio_liveness_new(nbio_frame_new(tcp, ...), 3000), 1000, "", 0)
 * sends an empty frame after a second of silence and gives up on a peer that
 * sent no frame for three seconds.
 */
#ifndef NBIO_LIVENESS_H
#define NBIO_LIVENESS_H

#include <stddef.h>
#include <stdint.h>

#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/**
 * Wraps inner in a liveness session (nbio_kind() "liveness") that ends with
 * NBIO_ETIMEDOUT and the detail "no message for <timeout_ms> ms" when no
 * nbio_read() of it returned NBIO_DATA for timeout_ms milliseconds.
 *
 * Around a message layer (framing) a payload is a whole message, so a peer
 * that trickles the bytes of a message without finishing it does not keep
 * the session alive. Around a byte session any bytes read count. When the
 * wrapper itself is wrapped by a message layer (which reads it through the
 * byte fast path), every chunk of bytes read counts.
 *
 * The clock starts when this is called, so an inner session that is still
 * establishing (connect, TLS handshake) must finish within timeout_ms and
 * deliver a payload in what is left of it. Expiry is noticed in
 * nbio_drive() and nbio_read() (also while establishing); once it has
 * passed, nbio_interest() returns NBIO_READY so a waiting loop calls in and
 * sees the error. Writes, flushes and closes do not look at the clock.
 * After the peer's clean end of stream (NBIO_EPEERCLOSED) no message can
 * come any more: the clock stops and the write side keeps working.
 *
 * Takes ownership of inner, also when this fails; nbio_free() of the
 * returned session frees inner too. Returns NULL when inner is NULL or
 * memory runs out (inner is then freed). timeout_ms <= 0 gives a session
 * already terminated with NBIO_EINVAL and a detail.
 */
NBIO_API nbio_session *nbio_liveness_new(nbio_session *inner, int timeout_ms);

/**
 * Wraps inner in a heartbeat session (nbio_kind() "heartbeat") that writes
 * the len bytes at msg (copied: the caller's memory may go right after this
 * call) through nbio_write() of inner whenever interval_ms passed since the
 * last successful write (NBIO_DONE, or a write that accepted bytes; a
 * heartbeat that went out counts too).
 *
 * The heartbeat is sent from nbio_drive() and nbio_read() of this session,
 * only while it is established and its write side is open. Around a message
 * layer it is one whole message (len 0 is an empty message). While a
 * heartbeat is only partly written, nbio_write() of this session first
 * completes it: when that is still pending, it returns NBIO_PENDING with the
 * caller's buf untouched, so a heartbeat never lands inside a caller's
 * message; and no heartbeat starts while the caller's own message is only
 * partly written (a byte write or a streamed frame that went NBIO_PENDING
 * with buf advanced), so no caller message is cut by one either. On
 * shutdown/close a partly written heartbeat is finished before the goodbye;
 * one that had not started yet is dropped.
 *
 * Put it outside the message layer, as in the example above: below a
 * framing session it would write raw bytes between that session's writes.
 *
 * nbio_interest() returns NBIO_READY once a heartbeat is due and
 * NBIO_WANT_WRITE while one waits for room.
 *
 * Takes ownership of inner, also when this fails; nbio_free() of the
 * returned session frees inner and the copy of msg. Returns NULL when inner
 * is NULL or memory runs out (inner is then freed). interval_ms <= 0, or msg
 * NULL with len > 0, gives a session already terminated with NBIO_EINVAL.
 */
NBIO_API nbio_session *nbio_heartbeat_new(nbio_session *inner, int interval_ms, const void *msg,
                                          size_t len);

/**
 * For a loop that sleeps: the absolute nbio_now_ms() time at which the
 * first liveness layer in the stack starting at s (s itself or a session it
 * wraps) expires, so s must be driven or read then. Returns -1 when there is
 * no liveness layer in the stack, the session ended, or its read side ended
 * (the clock stopped). The value changes whenever a read hands out a
 * payload: take it again after the verbs of each wake-up and pass it to
 * nbio_poller_set_timer() (or turn it into a timeout for nbio_wait()).
 */
NBIO_API int64_t nbio_liveness_deadline(const nbio_session *s);

/**
 * For a loop that sleeps: the absolute nbio_now_ms() time at which the
 * first heartbeat layer in the stack starting at s must be driven or read
 * to send its next heartbeat. Returns -1 when there is no heartbeat layer
 * in the stack, when it cannot send now (still establishing, write side
 * shut down or ended, a caller's message only partly written) or when a
 * heartbeat is already under way and waits for the socket to take it (its
 * NBIO_WANT_WRITE interest wakes the loop then). Take it again after the
 * verbs of each wake-up: every write moves it.
 */
NBIO_API int64_t nbio_heartbeat_deadline(const nbio_session *s);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_LIVENESS_H */
