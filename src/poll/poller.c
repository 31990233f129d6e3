/*
 * The poller (include/nbio/poll.h): epoll, level-triggered, plus a binary
 * min-heap of per-session timers.
 *
 * Each registration remembers the descriptor and epoll mask it last put in
 * the epoll set. A verb on a registered session calls nbio__poll_touch(),
 * which puts the registration on the dirty list (once: a flag keeps it O(1)).
 * A wait first sweeps the dirty list only: it recomputes the masked interest,
 * reports NBIO_READY sessions, and calls epoll_ctl only when the descriptor
 * or the mask changed. Registrations that stay dirty after a sweep: sessions
 * still NBIO_READY (so untouched work is reported again) and sessions with
 * an interest but no descriptor (mock sessions and memory pairs, whose
 * readiness can change without a verb on them).
 *
 * Invariant: r->efd >= 0 if and only if fdtab[r->efd] == r; the poller
 * believes r->efd is in the epoll set with r->emask.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <limits.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <unistd.h>

#include "core/session.h"
#include "nbio/poll.h"

#define NO_TIMER SIZE_MAX
/* Most epoll events fetched by one epoll_wait call. */
#define EBUF_MAX 1024

struct nbio__pollreg {
    nbio_poller *poller;
    nbio_session *s;
    unsigned mask; /* nbio_poller_set_mask(), ANDed with the interest */
    int efd;       /* the descriptor in the epoll set, or -1 */
    uint32_t emask; /* its EPOLLIN/EPOLLOUT bits */
    bool dirty;    /* on the dirty list */
    struct nbio__pollreg *dprev, *dnext; /* dirty list */
    struct nbio__pollreg *aprev, *anext; /* every registration */
    int64_t deadline; /* timer, valid when heap_idx != NO_TIMER */
    size_t heap_idx;
    uint64_t ev_gen; /* == poller->gen: this batch has an event at ev_idx */
    int ev_idx;
};

typedef struct nbio__pollreg reg;

struct nbio_poller {
    int epfd;
    size_t count;
    reg *all;
    reg *dhead, *dtail;
    reg **heap;
    size_t heap_len, heap_cap;
    reg **fdtab; /* descriptor -> the registration that put it in the set */
    size_t fdtab_len;
    struct epoll_event *ebuf;
    int ebuf_cap;
    uint64_t gen; /* one per batch being built */
};

/* ---- dirty list --------------------------------------------------------- */

static void dirty_push_tail(nbio_poller *p, reg *r)
{
    r->dirty = true;
    r->dnext = NULL;
    r->dprev = p->dtail;
    if (p->dtail != NULL)
        p->dtail->dnext = r;
    else
        p->dhead = r;
    p->dtail = r;
}

static void dirty_push_head(nbio_poller *p, reg *r)
{
    r->dirty = true;
    r->dprev = NULL;
    r->dnext = p->dhead;
    if (p->dhead != NULL)
        p->dhead->dprev = r;
    else
        p->dtail = r;
    p->dhead = r;
}

static void dirty_unlink(nbio_poller *p, reg *r)
{
    if (!r->dirty)
        return;
    if (r->dprev != NULL)
        r->dprev->dnext = r->dnext;
    else
        p->dhead = r->dnext;
    if (r->dnext != NULL)
        r->dnext->dprev = r->dprev;
    else
        p->dtail = r->dprev;
    r->dprev = r->dnext = NULL;
    r->dirty = false;
}

void nbio__poll_touch(struct nbio__pollreg *r)
{
    if (!r->dirty)
        dirty_push_tail(r->poller, r);
}

/* ---- timer heap ---------------------------------------------------------- */

static void heap_put(nbio_poller *p, size_t i, reg *r)
{
    p->heap[i] = r;
    r->heap_idx = i;
}

static void heap_up(nbio_poller *p, size_t i)
{
    reg *r = p->heap[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (p->heap[parent]->deadline <= r->deadline)
            break;
        heap_put(p, i, p->heap[parent]);
        i = parent;
    }
    heap_put(p, i, r);
}

static void heap_down(nbio_poller *p, size_t i)
{
    reg *r = p->heap[i];
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= p->heap_len)
            break;
        if (c + 1 < p->heap_len && p->heap[c + 1]->deadline < p->heap[c]->deadline)
            c++;
        if (r->deadline <= p->heap[c]->deadline)
            break;
        heap_put(p, i, p->heap[c]);
        i = c;
    }
    heap_put(p, i, r);
}

static void heap_remove(nbio_poller *p, reg *r)
{
    size_t i = r->heap_idx;
    if (i == NO_TIMER)
        return;
    r->heap_idx = NO_TIMER;
    reg *last = p->heap[--p->heap_len];
    if (i == p->heap_len)
        return;
    heap_put(p, i, last);
    heap_down(p, i);
    heap_up(p, last->heap_idx);
}

static int heap_insert(nbio_poller *p, reg *r)
{
    if (p->heap_len == p->heap_cap) {
        size_t cap = p->heap_cap ? p->heap_cap * 2 : 16;
        reg **h = realloc(p->heap, cap * sizeof *h);
        if (h == NULL)
            return NBIO_ENOMEM;
        p->heap = h;
        p->heap_cap = cap;
    }
    heap_put(p, p->heap_len++, r);
    heap_up(p, r->heap_idx);
    return 0;
}

/* ---- the epoll set -------------------------------------------------------- */

static int fdtab_reserve(nbio_poller *p, int fd)
{
    size_t need = (size_t)fd + 1;
    if (need <= p->fdtab_len)
        return 0;
    size_t len = p->fdtab_len ? p->fdtab_len : 64;
    while (len < need)
        len *= 2;
    reg **t = realloc(p->fdtab, len * sizeof *t);
    if (t == NULL)
        return NBIO_ENOMEM;
    memset(t + p->fdtab_len, 0, (len - p->fdtab_len) * sizeof *t);
    p->fdtab = t;
    p->fdtab_len = len;
    return 0;
}

/* Takes r's descriptor out of the set. The descriptor may have been closed
 * by its session already (a connect moving on to the next address), which
 * removed it from the set: the failure of the DEL is expected then. */
static void unwatch(nbio_poller *p, reg *r)
{
    if (r->efd < 0)
        return;
    (void)epoll_ctl(p->epfd, EPOLL_CTL_DEL, r->efd, NULL);
    p->fdtab[r->efd] = NULL;
    r->efd = -1;
    r->emask = 0;
}

static int ctl(nbio_poller *p, int op, int fd, reg *r, uint32_t em)
{
    struct epoll_event e;
    memset(&e, 0, sizeof e);
    e.events = em;
    e.data.ptr = r;
    return epoll_ctl(p->epfd, op, fd, &e);
}

/* Puts fd in the set for r (r holds no descriptor in the set). */
static int watch(nbio_poller *p, reg *r, int fd, uint32_t em)
{
    if (fdtab_reserve(p, fd) < 0)
        return NBIO_ENOMEM;
    reg *old = p->fdtab[fd];
    if (old != NULL && old != r) {
        /* old's session closed this descriptor and the number came back for
         * r's: the kernel dropped old's entry with the close. old must not
         * delete the new entry later; it syncs again (its session was
         * touched when its descriptor changed, so it is dirty already). */
        old->efd = -1;
        old->emask = 0;
        p->fdtab[fd] = NULL;
        nbio__poll_touch(old);
    }
    if (ctl(p, EPOLL_CTL_ADD, fd, r, em) != 0 &&
        (errno != EEXIST || ctl(p, EPOLL_CTL_MOD, fd, r, em) != 0))
        return nbio__errno(errno);
    r->efd = fd;
    r->emask = em;
    p->fdtab[fd] = r;
    return 0;
}

/* Changes the mask of r's descriptor. A descriptor closed and reopened under
 * the same number is not in the set any more: add it again. */
static int modify(nbio_poller *p, reg *r, uint32_t em)
{
    if (ctl(p, EPOLL_CTL_MOD, r->efd, r, em) != 0) {
        if (errno != ENOENT || ctl(p, EPOLL_CTL_ADD, r->efd, r, em) != 0) {
            int e = nbio__errno(errno);
            unwatch(p, r);
            return e;
        }
    }
    r->emask = em;
    return 0;
}

/* Brings r's entry in the epoll set in line with its session's masked
 * interest. *ready: the session is NBIO_READY. *polled: it has an interest
 * but no descriptor, so only looking again can tell when it is ready.
 * Returns 0 or a negative error. */
static int sync_reg(nbio_poller *p, reg *r, bool *ready, bool *polled)
{
    nbio_session *s = r->s;
    unsigned want = nbio_interest(s) & r->mask;
    uint32_t em = ((want & NBIO_WANT_READ) ? (uint32_t)EPOLLIN : 0u) |
                  ((want & NBIO_WANT_WRITE) ? (uint32_t)EPOLLOUT : 0u);
    int fd = em != 0 ? nbio_fd(s) : -1;
    *ready = (want & NBIO_READY) != 0;
    *polled = em != 0 && fd < 0;
    if (fd < 0) {
        /* Nothing to wait for in the kernel. A mask of 0 is never left in
         * the set: EPOLLERR/EPOLLHUP would still wake every wait. */
        unwatch(p, r);
        return 0;
    }
    if (fd == r->efd) {
        /* While establishing, a connect may have closed its socket and
         * opened the next one under the same number: re-arm to be sure. */
        if (em == r->emask && nbio_status(s) != NBIO_STATUS_ESTABLISHING)
            return 0;
        return modify(p, r, em);
    }
    unwatch(p, r);
    return watch(p, r, fd, em);
}

/* ---- events ---------------------------------------------------------------- */

/* Adds bits to r's event in the batch, making one if there is room.
 * Returns false when the batch is full and r has no event in it. */
static bool add_event(nbio_poller *p, nbio_event *ev, int max, int *n, reg *r, unsigned bits)
{
    if (r->ev_gen == p->gen) {
        ev[r->ev_idx].events |= bits;
        return true;
    }
    if (*n >= max)
        return false;
    ev[*n].session = r->s;
    ev[*n].data = nbio_data(r->s);
    ev[*n].events = bits;
    r->ev_gen = p->gen;
    r->ev_idx = (*n)++;
    return true;
}

/* Sweeps the dirty list once (registrations put back on it during the sweep
 * wait for the next one). Returns 0 or a negative error. */
static int sweep(nbio_poller *p, nbio_event *ev, int max, int *n)
{
    reg *last = p->dtail;
    while (p->dhead != NULL && *n < max) {
        reg *r = p->dhead;
        dirty_unlink(p, r);
        bool ready, polled;
        int rc = sync_reg(p, r, &ready, &polled);
        if (rc < 0) {
            dirty_push_head(p, r); /* tried again by the next wait */
            return rc;
        }
        if (ready)
            (void)add_event(p, ev, max, n, r, NBIO_EV_READY);
        if (ready || polled)
            dirty_push_tail(p, r); /* after the others: no starvation */
        if (r == last)
            break;
    }
    return 0;
}

static unsigned epoll_bits(uint32_t e)
{
    unsigned b = 0;
    if (e & EPOLLIN)
        b |= NBIO_EV_READ;
    if (e & EPOLLOUT)
        b |= NBIO_EV_WRITE;
    if (e & (EPOLLERR | EPOLLHUP))
        b |= NBIO_EV_READ | NBIO_EV_WRITE; /* the verbs report the error */
    return b;
}

/* epoll_wait with timeout t, then without sleeping while the buffer came
 * back full and brought new sessions. Returns 0, 1 when a signal
 * interrupted the wait, or a negative error. */
static int collect_fd_events(nbio_poller *p, nbio_event *ev, int max, int *n, int t)
{
    for (;;) {
        int room = max - *n;
        int chunk = room < EBUF_MAX ? room : EBUF_MAX;
        if (chunk > p->ebuf_cap) {
            struct epoll_event *b = realloc(p->ebuf, (size_t)chunk * sizeof *b);
            if (b == NULL)
                return NBIO_ENOMEM;
            p->ebuf = b;
            p->ebuf_cap = chunk;
        }
        int k = epoll_wait(p->epfd, p->ebuf, chunk, t);
        if (k < 0)
            return errno == EINTR ? 1 : nbio__errno(errno);
        int before = *n;
        for (int i = 0; i < k; i++)
            (void)add_event(p, ev, max, n, p->ebuf[i].data.ptr, epoll_bits(p->ebuf[i].events));
        if (k < chunk || *n == before || *n >= max)
            return 0;
        t = 0;
    }
}

static void fire_timers(nbio_poller *p, nbio_event *ev, int max, int *n)
{
    int64_t now = nbio_now_ms();
    while (p->heap_len > 0 && p->heap[0]->deadline <= now) {
        reg *r = p->heap[0];
        if (!add_event(p, ev, max, n, r, NBIO_EV_TIMER))
            break; /* no room: it stays armed and is due next time */
        heap_remove(p, r);
    }
}

static int clamp_ms(int64_t ms)
{
    if (ms <= 0)
        return 0;
    return ms > INT_MAX ? INT_MAX : (int)ms;
}

int nbio_poller_wait(nbio_poller *p, nbio_event *ev, int max, int timeout_ms)
{
    if (p == NULL || ev == NULL || max <= 0)
        return NBIO_EINVAL;
    int64_t until = timeout_ms > 0 ? nbio_now_ms() + timeout_ms : -1;
    for (;;) {
        int n = 0;
        p->gen++;
        int rc = sweep(p, ev, max, &n);
        if (rc < 0)
            return rc;
        if (n >= max)
            return n;
        int t;
        int64_t now = nbio_now_ms();
        if (n > 0 || timeout_ms == 0)
            t = 0;
        else if (until >= 0)
            t = clamp_ms(until - now);
        else
            t = -1;
        if (p->heap_len > 0) {
            int d = clamp_ms(p->heap[0]->deadline - now);
            if (t < 0 || d < t)
                t = d;
        }
        rc = collect_fd_events(p, ev, max, &n, t);
        if (rc < 0)
            return n > 0 ? n : rc; /* READY sessions stay dirty: nothing lost */
        if (rc == 1)
            return n; /* a signal: let the caller look at it */
        fire_timers(p, ev, max, &n);
        if (n > 0 || timeout_ms == 0 || (until >= 0 && nbio_now_ms() >= until))
            return n;
        /* The sleep was cut short by the nearest timer, which is not quite
         * due in whole milliseconds yet: wait for the rest of the time. */
    }
}

/* ---- registrations ----------------------------------------------------------- */

static void unregister(reg *r)
{
    nbio_poller *p = r->poller;
    dirty_unlink(p, r);
    heap_remove(p, r);
    unwatch(p, r);
    if (r->aprev != NULL)
        r->aprev->anext = r->anext;
    else
        p->all = r->anext;
    if (r->anext != NULL)
        r->anext->aprev = r->aprev;
    r->s->preg = NULL;
    p->count--;
    free(r);
}

void nbio__poll_forget(struct nbio__pollreg *r)
{
    unregister(r);
}

static reg *reg_of(const nbio_poller *p, const nbio_session *s)
{
    if (p == NULL || s == NULL || s->preg == NULL || s->preg->poller != p)
        return NULL;
    return s->preg;
}

nbio_poller *nbio_poller_new(void)
{
    nbio_poller *p = calloc(1, sizeof *p);
    if (p == NULL)
        return NULL;
    p->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (p->epfd < 0) {
        int e = errno;
        free(p);
        errno = e;
        return NULL;
    }
    p->gen = 1;
    return p;
}

void nbio_poller_free(nbio_poller *p)
{
    if (p == NULL)
        return;
    reg *r = p->all;
    while (r != NULL) {
        reg *next = r->anext;
        r->s->preg = NULL;
        free(r);
        r = next;
    }
    close(p->epfd);
    free(p->heap);
    free(p->fdtab);
    free(p->ebuf);
    free(p);
}

int nbio_poller_add(nbio_poller *p, nbio_session *s)
{
    if (p == NULL || s == NULL || s->preg != NULL)
        return NBIO_EINVAL;
    reg *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NBIO_ENOMEM;
    r->poller = p;
    r->s = s;
    r->mask = ~0u;
    r->efd = -1;
    r->heap_idx = NO_TIMER;
    r->anext = p->all;
    if (p->all != NULL)
        p->all->aprev = r;
    p->all = r;
    dirty_push_tail(p, r);
    s->preg = r;
    p->count++;
    return 0;
}

int nbio_poller_remove(nbio_poller *p, nbio_session *s)
{
    reg *r = reg_of(p, s);
    if (r == NULL)
        return NBIO_EINVAL;
    unregister(r);
    return 0;
}

int nbio_poller_set_mask(nbio_poller *p, nbio_session *s, unsigned mask)
{
    reg *r = reg_of(p, s);
    if (r == NULL)
        return NBIO_EINVAL;
    r->mask = mask;
    nbio__poll_touch(r);
    return 0;
}

int nbio_poller_set_timer(nbio_poller *p, nbio_session *s, int64_t deadline_ms)
{
    reg *r = reg_of(p, s);
    if (r == NULL)
        return NBIO_EINVAL;
    if (deadline_ms < 0) {
        heap_remove(p, r);
        return 0;
    }
    if (r->heap_idx != NO_TIMER) {
        r->deadline = deadline_ms;
        heap_down(p, r->heap_idx);
        heap_up(p, r->heap_idx);
        return 0;
    }
    r->deadline = deadline_ms;
    return heap_insert(p, r);
}

size_t nbio_poller_count(const nbio_poller *p)
{
    return p != NULL ? p->count : 0;
}
