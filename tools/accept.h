/* Accepting for the servers on the poller (echo-server, serve). */
#ifndef NBIO_TOOLS_ACCEPT_H
#define NBIO_TOOLS_ACCEPT_H

#include <stdint.h>

#include "log.h"
#include "nbio/poll.h"

#define CLI_ACCEPTS_PER_STEP 64  /* fairness: connections taken per listener event */
#define CLI_ACCEPT_BACKOFF_MS 100 /* out of descriptors: pause accepting this long */

/*
 * Takes one waiting connection from a listener registered in p.
 * Returns NBIO_DATA with *out (the caller's), NBIO_IDLE when none waits,
 * or the listener's own failure (logged). A transient failure (out of
 * descriptors or memory: the listener dropped that connection) is logged
 * and pauses accepting for CLI_ACCEPT_BACKOFF_MS instead of spinning on it:
 * NBIO_IDLE. The listener's timer event ends the pause: cli_accept_resume().
 */
int cli_accept(nbio_session *listener, nbio_poller *p, cli_log *log, int64_t now,
               nbio_session **out);

/* Ends a pause cli_accept() started. */
void cli_accept_resume(nbio_poller *p, nbio_session *listener);

#endif
