/* nbio_wait(): poll() over a set of sessions' fds and interests. */
#define _GNU_SOURCE
#include <errno.h>
#include <poll.h>
#include <stdlib.h>

#include "core/session.h"

int nbio_wait(nbio_session *const *sessions, size_t n, int timeout_ms)
{
    return nbio_wait_masked(sessions, NULL, n, timeout_ms);
}

int nbio_wait_masked(nbio_session *const *sessions, const unsigned *masks, size_t n,
                     int timeout_ms)
{
    struct pollfd stack[64];
    struct pollfd *pfd = n <= 64 ? stack : calloc(n, sizeof *pfd);
    if (pfd == NULL)
        return NBIO_ENOMEM;
    int ready = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned want = sessions[i] != NULL ? nbio_interest(sessions[i]) : 0;
        if (masks != NULL)
            want &= masks[i];
        pfd[i].fd = -1;
        pfd[i].events = 0;
        pfd[i].revents = 0;
        if (want & NBIO_READY) {
            ready++;
            continue;
        }
        int fd = nbio_fd(sessions[i]);
        if (fd < 0 || !(want & (NBIO_WANT_READ | NBIO_WANT_WRITE)))
            continue;
        pfd[i].fd = fd;
        pfd[i].events = (short)(((want & NBIO_WANT_READ) ? POLLIN : 0) |
                                ((want & NBIO_WANT_WRITE) ? POLLOUT : 0));
    }
    int r = poll(pfd, (nfds_t)n, ready > 0 ? 0 : timeout_ms);
    if (r < 0 && errno != EINTR)
        r = nbio__errno(errno);
    else
        r = ready + (r > 0 ? r : 0);
    if (pfd != stack)
        free(pfd);
    return r;
}
