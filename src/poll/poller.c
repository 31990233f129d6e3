/* The poller (placeholder until the epoll poller lands). */
#include "core/session.h"

void nbio__poll_touch(struct nbio__pollreg *r)
{
    (void)r;
}

void nbio__poll_forget(struct nbio__pollreg *r)
{
    (void)r;
}
