/* Accepting for the servers on the poller, with a pause when out of
 * descriptors. */
#include "accept.h"
#include "nbio/tcp.h"

int cli_accept(nbio_session *listener, nbio_poller *p, cli_log *log, int64_t now,
               nbio_session **out)
{
    int r = nbio_accept(listener, out);
    if (r >= 0)
        return r;
    if (nbio_status(listener) == NBIO_STATUS_TERMINATED) {
        cli_log_line(log, "listener failed: %s: %s", nbio_errname(r), nbio_detail(listener));
        return r;
    }
    cli_log_line(log, "accept: %s: %s (pausing accepts for %d ms)", nbio_errname(r),
                 nbio_strerror(r), CLI_ACCEPT_BACKOFF_MS);
    (void)nbio_poller_set_mask(p, listener, 0);
    (void)nbio_poller_set_timer(p, listener, now + CLI_ACCEPT_BACKOFF_MS);
    return NBIO_IDLE;
}

void cli_accept_resume(nbio_poller *p, nbio_session *listener)
{
    (void)nbio_poller_set_mask(p, listener, ~0u);
}
