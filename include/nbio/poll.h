/*
 * The poller: waits on many sessions at once (epoll, level-triggered), with
 * one timer per session.
 *
 * A poller never owns a session: it only keeps a record of each registered
 * one. The caller registers a session once; from then on every verb it calls
 * on the session (nbio_drive, nbio_read, nbio_write, nbio_flush,
 * nbio_shutdown, nbio_close) marks the record "dirty", and the next
 * nbio_poller_wait() looks at the interest of the dirty sessions only. So a
 * wait costs in proportion to the sessions that were touched, are ready or
 * have a due timer, not to the number registered. docs/poll.md is the guide.
 *
 * A poller and the sessions registered with it belong to one thread at a
 * time.
 */
#ifndef NBIO_POLL_H
#define NBIO_POLL_H

#include <stddef.h>
#include <stdint.h>

#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** An opaque poller. Created by nbio_poller_new(), released by
 *  nbio_poller_free(). */
typedef struct nbio_poller nbio_poller;

/** Bits of nbio_event.events. One event may carry several. */
enum nbio_poll_event_bits {
    NBIO_EV_READ = 1,  /**< the descriptor is readable (or hung up / in error) */
    NBIO_EV_WRITE = 2, /**< the descriptor is writable (or hung up / in error) */
    NBIO_EV_READY = 4, /**< the session holds work already (NBIO_READY): a buffered
                            frame, an error to report; call its verbs now */
    NBIO_EV_TIMER = 8  /**< the session's timer is due; the timer is now disarmed */
};

/** One session that needs attention, filled in by nbio_poller_wait(). */
typedef struct nbio_event {
    nbio_session *session; /**< the registered session */
    void *data;            /**< nbio_data(session) when the event was made */
    unsigned events;       /**< NBIO_EV_* bits */
} nbio_event;

/**
 * Creates an empty poller (one epoll descriptor, close-on-exec).
 * Returns NULL on failure with errno set (EMFILE, ENOMEM, ...).
 * Release it with nbio_poller_free().
 */
NBIO_API nbio_poller *nbio_poller_new(void);

/**
 * Unregisters every session (their timers are cancelled) and releases the
 * poller. The sessions themselves are not freed and stay usable; each may be
 * added to another poller afterwards. NULL is ignored.
 */
NBIO_API void nbio_poller_free(nbio_poller *p);

/**
 * Registers s with p, with the mask ~0u (the whole interest) and no timer.
 * The session is looked at on the next nbio_poller_wait(). The caller keeps
 * owning s; nbio_free(s) unregisters it automatically.
 * Returns 0, NBIO_EINVAL when p or s is NULL or s is already registered with
 * a poller (this one or another), or NBIO_ENOMEM.
 * Do not register two sessions that share a descriptor (a session and the
 * session it wraps): register the outermost layer only.
 */
NBIO_API int nbio_poller_add(nbio_poller *p, nbio_session *s);

/**
 * Unregisters s from p and cancels its timer; s is not freed. Safe while the
 * caller iterates over the events of the last nbio_poller_wait(), also when
 * s has an event further on in that array (the array is plain data: the
 * caller must skip that entry itself if it freed the session).
 * Returns 0, or NBIO_EINVAL when s is not registered with p.
 */
NBIO_API int nbio_poller_remove(nbio_poller *p, nbio_session *s);

/**
 * Limits what wakes p for s: the session's interest (nbio_interest()) is
 * ANDed with mask. ~NBIO_WANT_READ puts reads on hold (backpressure: the
 * last answer to this client is still pending) while write readiness and
 * NBIO_READY still count; ~0u restores the whole interest; 0 ignores the
 * session (only its timer can produce events). Takes effect on the next
 * wait. Returns 0, or NBIO_EINVAL when s is not registered with p.
 */
NBIO_API int nbio_poller_set_mask(nbio_poller *p, nbio_session *s, unsigned mask);

/**
 * Arms, moves or cancels the timer of s: deadline_ms is an absolute
 * nbio_now_ms() time; any negative value (-1) cancels. One timer per
 * session: setting it again replaces the deadline. A deadline already past
 * is due on the next wait. When due, the session gets an event with
 * NBIO_EV_TIMER and the timer is disarmed (re-arm it for periodic work).
 * Due timers are reported in deadline order; equal deadlines in no defined
 * order. Returns 0, NBIO_EINVAL when s is not registered with p, or
 * NBIO_ENOMEM.
 */
NBIO_API int nbio_poller_set_timer(nbio_poller *p, nbio_session *s, int64_t deadline_ms);

/**
 * Waits until registered sessions need attention and writes up to max events
 * into ev, at most one per session (its bits combined).
 * timeout_ms: 0 checks once without sleeping (busy-polling), -1 waits
 * without limit, > 0 waits at most that long. The nearest timer bounds the
 * sleep; a session whose masked interest has NBIO_READY makes the call
 * return at once.
 * A session reported NBIO_EV_READY is reported again by the next wait unless
 * it no longer is ready, so untouched work is never forgotten; fd readiness
 * is level-triggered, so a session whose descriptor still has data is
 * reported again too. A session ended by an error is NBIO_READY (so its
 * error is seen) on every wait until it is freed or removed.
 * Sessions without a descriptor (mock sessions, memory pairs) whose
 * interest has NBIO_WANT_READ/NBIO_WANT_WRITE are re-checked at the start
 * of every wait, as their readiness can change without a verb on them (a
 * feed, a write to the other end); nothing can wake a sleeping wait for
 * them, so pass a timeout or a timer.
 * Returns the number of events (0 when the timeout passed, or when a signal
 * interrupted the wait), or a negative error: NBIO_EINVAL (p or ev NULL,
 * max <= 0), or the error of epoll_ctl/epoll_wait (e.g. NBIO_ENOSPC, the
 * user's epoll watch limit); after an error nothing is lost, the next call
 * tries again. ev entries stay valid plain data: sessions may be removed or
 * freed while iterating over them.
 */
NBIO_API int nbio_poller_wait(nbio_poller *p, nbio_event *ev, int max, int timeout_ms);

/** Returns the number of sessions registered with p (0 for NULL). */
NBIO_API size_t nbio_poller_count(const nbio_poller *p);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_POLL_H */
