/* The poller (nbio/poll.h): readiness over real loopback sockets, buffered
 * work without fd readiness, write interest, masks, timers, and removing or
 * freeing sessions while iterating over a batch. */
#define _GNU_SOURCE
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include "nbio/frame.h"
#include "nbio/mock.h"
#include "nbio/poll.h"
#include "nbio/tcp.h"
#include "testutil.h"

enum { MAXEV = 16 };

/* A connected TCP pair over 127.0.0.1 with options for the client (copt)
 * and for the accepted side (aopt); either may be NULL. */
static void tcp_pair_opt(nbio_session **client, nbio_session **server,
                         const nbio_tcp_options *copt, const nbio_tcp_options *aopt)
{
    nbio_listen_options lo;
    nbio_listen_options_init(&lo);
    if (aopt != NULL)
        lo.accepted = *aopt;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", &lo);
    assert_non_null(l);
    assert_int_equal(nbio_error(l), 0);
    char addr[64];
    assert_true(nbio_local_address(l, addr, sizeof addr) > 0);
    *client = nbio_tcp_connect(addr, copt);
    assert_non_null(*client);
    *server = NULL;
    int64_t deadline = nbio_now_ms() + 5000;
    while (*server == NULL || nbio_status(*client) == NBIO_STATUS_ESTABLISHING) {
        if (*server == NULL)
            assert_ok_outcome(nbio_accept(l, server));
        int r = nbio_drive(*client);
        if (r < 0)
            fail_msg("connect: %s", nbio_detail(*client));
        if (nbio_now_ms() > deadline)
            fail_msg("tcp pair timed out");
    }
    nbio_free(l);
}

/* Index of s's event in ev[0..n), or -1. */
static int find(const nbio_event *ev, int n, const nbio_session *s)
{
    for (int i = 0; i < n; i++)
        if (ev[i].session == s)
            return i;
    return -1;
}

/* Waits until s gets an event with all of bits; returns its bits. Fails the
 * test after ms. Events of other sessions are ignored. */
static unsigned wait_for(nbio_poller *p, nbio_session *s, unsigned bits, int ms)
{
    nbio_event ev[MAXEV];
    int64_t deadline = nbio_now_ms() + ms;
    for (;;) {
        int n = nbio_poller_wait(p, ev, MAXEV, 50);
        assert_ok_outcome(n);
        int i = find(ev, n, s);
        if (i >= 0 && (ev[i].events & bits) == bits)
            return ev[i].events;
        if (nbio_now_ms() > deadline)
            fail_msg("no event %#x for the session within %d ms", bits, ms);
    }
}

/* Makes sure s's descriptor is readable (bounded), without the poller. */
static void until_readable(nbio_session *s)
{
    nbio_session *one[1] = {s};
    assert_int_equal(nbio_wait(one, 1, 5000), 1);
}

static void test_readable_socket(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, NULL, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_non_null(p);
    int tag = 7;
    nbio_set_data(s, &tag);
    assert_int_equal(nbio_poller_add(p, s), 0);
    assert_int_equal(nbio_poller_count(p), 1);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0); /* nothing arrived */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 20), 0);

    assert_int_equal(nbio_write_some(c, "hi", 2), 2);
    int n = nbio_poller_wait(p, ev, MAXEV, 5000);
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, s);
    assert_ptr_equal(ev[0].data, &tag);
    assert_int_equal(ev[0].events, NBIO_EV_READ);
    /* level-triggered: not read yet, so reported again */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 1);
    nbio_buf in;
    assert_int_equal(nbio_read(s, &in), NBIO_DATA);
    assert_int_equal(in.len, 2);
    assert_int_equal(nbio_read(s, &in), NBIO_IDLE);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    nbio_poller_free(p);
    nbio_free(c);
    nbio_free(s);
}

/* Two frames in one TCP segment: after the first is read, the second sits
 * in the framing buffer and the socket is empty. The poller reports it as
 * READY, and again as long as the caller does not touch the session. */
static void test_buffered_frame_is_ready(void **state)
{
    (void)state;
    nbio_session *tc, *ts;
    tcp_pair_opt(&tc, &ts, NULL, NULL);
    nbio_session *c = nbio_frame_new(tc, &nbio_frame_u32be, NULL);
    nbio_session *s = nbio_frame_new(ts, &nbio_frame_u32be, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, s), 0);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    assert_int_equal(nbio_write_some(c, "one", 3), 3);
    assert_int_equal(nbio_write_some(c, "two", 3), 3);
    assert_int_equal(nbio_flush(c, 1000), NBIO_DONE); /* both frames in one send */
    assert_true(wait_for(p, s, NBIO_EV_READ, 5000) & NBIO_EV_READ);
    nbio_buf in;
    assert_int_equal(nbio_read(s, &in), NBIO_DATA);
    assert_int_equal(in.len, 3);
    assert_memory_equal(in.data, "one", 3);
    assert_true(nbio_interest(s) & NBIO_READY);

    int64_t t0 = nbio_now_ms();
    int n = nbio_poller_wait(p, ev, MAXEV, 10000); /* READY: returns at once */
    assert_int_equal(n, 1);
    assert_true(nbio_now_ms() - t0 < 5000);
    assert_ptr_equal(ev[0].session, s);
    assert_int_equal(ev[0].events, NBIO_EV_READY); /* no fd readiness */
    /* not touched: reported again */
    n = nbio_poller_wait(p, ev, MAXEV, 0);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].events, NBIO_EV_READY);
    /* reads on hold do not hide buffered work */
    assert_int_equal(nbio_poller_set_mask(p, s, ~(unsigned)NBIO_WANT_READ), 0);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 1);
    assert_int_equal(nbio_poller_set_mask(p, s, ~0u), 0);

    assert_int_equal(nbio_read(s, &in), NBIO_DATA);
    assert_memory_equal(in.data, "two", 3);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    nbio_poller_free(p);
    nbio_free(c);
    nbio_free(s);
}

static void test_listener_and_connecting_client(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    assert_int_equal(nbio_error(l), 0);
    char addr[64];
    int port = nbio_local_address(l, addr, sizeof addr);
    assert_true(port > 0);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, l), 0);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    /* by name: the client goes from resolving to connecting, and its
     * descriptor changes on the way */
    char name[64];
    snprintf(name, sizeof name, "localhost:%d", port);
    nbio_session *c = nbio_tcp_connect(name, NULL);
    assert_int_equal(nbio_poller_add(p, c), 0);
    nbio_session *accepted = NULL;
    int64_t deadline = nbio_now_ms() + 10000;
    while (accepted == NULL || nbio_status(c) == NBIO_STATUS_ESTABLISHING) {
        int n = nbio_poller_wait(p, ev, MAXEV, 100);
        assert_ok_outcome(n);
        for (int i = 0; i < n; i++) {
            if (ev[i].session == l) {
                assert_true(ev[i].events & NBIO_EV_READ);
                assert_int_equal(nbio_accept(l, &accepted), NBIO_DATA);
            } else {
                assert_ptr_equal(ev[i].session, c);
                int r = nbio_drive(c);
                if (r < 0)
                    fail_msg("connect: %s", nbio_detail(c));
            }
        }
        if (nbio_now_ms() > deadline)
            fail_msg("no connection through the poller");
    }
    assert_non_null(accepted);
    /* the queue is empty now: the listener is quiet; the idle client too */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 20), 0);
    nbio_session *none;
    assert_int_equal(nbio_accept(l, &none), NBIO_IDLE);

    nbio_poller_free(p);
    nbio_free(accepted);
    nbio_free(c);
    nbio_free(l);
}

/* A write went pending: the poller adds write interest and reports the
 * session once the peer drained its socket. */
static void test_write_interest_after_pending(void **state)
{
    (void)state;
    nbio_tcp_options co, ao;
    nbio_tcp_options_init(&co);
    co.send_buffer_size = 4096;
    nbio_tcp_options_init(&ao);
    ao.recv_buffer_size = 4096;
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, &co, &ao);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, c), 0);
    nbio_event ev[MAXEV];
    /* the socket is writable, but nothing wants to write */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    size_t total = 16u << 20;
    unsigned char *big = malloc(total);
    assert_non_null(big);
    memset(big, 'x', total);
    nbio_buf w = {big, total};
    assert_int_equal(nbio_write(c, &w), NBIO_PENDING);
    assert_true(w.len > 0);
    assert_true(nbio_interest(c) & NBIO_WANT_WRITE);
    /* keep writing while the poller says writable, until the socket stays full */
    int saturated = 0;
    for (int round = 0; round < 200 && !saturated; round++) {
        int n = nbio_poller_wait(p, ev, MAXEV, 100);
        assert_ok_outcome(n);
        if (find(ev, n, c) < 0)
            saturated = 1;
        else
            assert_int_equal(nbio_write(c, &w), NBIO_PENDING);
    }
    assert_true(saturated);
    /* the peer drains: the client becomes writable */
    int writable = 0;
    int64_t deadline = nbio_now_ms() + 10000;
    while (!writable) {
        nbio_buf in;
        int r;
        while ((r = nbio_read(s, &in)) == NBIO_DATA)
            ;
        assert_ok_outcome(r);
        int n = nbio_poller_wait(p, ev, MAXEV, 20);
        assert_ok_outcome(n);
        int i = find(ev, n, c);
        writable = i >= 0 && (ev[i].events & NBIO_EV_WRITE);
        if (nbio_now_ms() > deadline)
            fail_msg("no write event after the peer drained");
    }
    assert_ok_outcome(nbio_write(c, &w)); /* progress again */

    nbio_poller_free(p);
    free(big);
    nbio_free(c);
    nbio_free(s);
}

static void test_mask_holds_reads(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, NULL, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, s), 0);
    assert_int_equal(nbio_write_some(c, "abc", 3), 3);
    nbio_event ev[MAXEV];
    assert_true(wait_for(p, s, NBIO_EV_READ, 5000) & NBIO_EV_READ);

    assert_int_equal(nbio_poller_set_mask(p, s, ~(unsigned)NBIO_WANT_READ), 0);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 50), 0);
    /* a verb on a held session does not lift the hold */
    assert_ok_outcome(nbio_drive(s));
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 20), 0);

    assert_int_equal(nbio_poller_set_mask(p, s, ~0u), 0);
    int n = nbio_poller_wait(p, ev, MAXEV, 5000);
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, s);
    assert_int_equal(ev[0].events, NBIO_EV_READ);
    /* mask 0: ignored altogether */
    assert_int_equal(nbio_poller_set_mask(p, s, 0), 0);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 20), 0);
    assert_int_equal(nbio_poller_set_mask(p, s, ~0u), 0);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 5000), 1);

    nbio_poller_free(p);
    nbio_free(c);
    nbio_free(s);
}

typedef struct rec {
    nbio_session *s;
    int alive;
} rec;

/* While iterating over one batch, the handler of the first event frees the
 * other TCP session and removes the mock; the poller keeps no stale
 * pointer (ASan checks), and the array stays plain data to skip entries. */
static void test_remove_and_free_during_iteration(void **state)
{
    (void)state;
    nbio_session *c1, *s1, *c2, *s2;
    tcp_pair_opt(&c1, &s1, NULL, NULL);
    tcp_pair_opt(&c2, &s2, NULL, NULL);
    nbio_session *m = nbio_mock_new(NULL);
    assert_int_equal(nbio_mock_feed(m, "x", 1), 0);
    rec r1 = {s1, 1}, r2 = {s2, 1}, rm = {m, 1};
    nbio_set_data(s1, &r1);
    nbio_set_data(s2, &r2);
    nbio_set_data(m, &rm);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, s1), 0);
    assert_int_equal(nbio_poller_add(p, s2), 0);
    assert_int_equal(nbio_poller_add(p, m), 0);
    int64_t now = nbio_now_ms();
    for (int i = 0; i < 3; i++) /* timers too, so the heap must drop them */
        assert_int_equal(nbio_poller_set_timer(p, (nbio_session *[]){s1, s2, m}[i], now + 800 + i),
                         0);
    assert_int_equal(nbio_write_some(c1, "a", 1), 1);
    assert_int_equal(nbio_write_some(c2, "b", 1), 1);
    until_readable(s1);
    until_readable(s2);

    nbio_event ev[MAXEV];
    int n = nbio_poller_wait(p, ev, MAXEV, 0);
    assert_int_equal(n, 3);
    assert_true(find(ev, n, s1) >= 0 && find(ev, n, s2) >= 0 && find(ev, n, m) >= 0);
    rec *survivor = NULL;
    int handled = 0;
    for (int i = 0; i < n; i++) {
        rec *r = ev[i].data;
        if (!r->alive)
            continue; /* gone while handling an earlier event */
        handled++;
        if (r->s == m)
            continue;
        if (survivor == NULL) {
            survivor = r;
            rec *other = r == &r1 ? &r2 : &r1;
            nbio_free(other->s);
            other->alive = 0;
            assert_int_equal(nbio_poller_remove(p, m), 0);
            rm.alive = 0;
        }
    }
    assert_non_null(survivor);
    assert_int_equal(handled, 1 + (ev[0].session == m)); /* the rest was skipped */
    assert_int_equal(nbio_poller_count(p), 1);
    assert_int_equal(nbio_poller_remove(p, m), NBIO_EINVAL); /* not registered now */

    /* only the survivor is left: still readable (not read yet) */
    n = nbio_poller_wait(p, ev, MAXEV, 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, survivor->s);
    assert_int_equal(ev[0].events, NBIO_EV_READ);
    nbio_buf in;
    assert_int_equal(nbio_read(survivor->s, &in), NBIO_DATA);
    /* and only its timer fires */
    n = nbio_poller_wait(p, ev, MAXEV, 5000);
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, survivor->s);
    assert_int_equal(ev[0].events, NBIO_EV_TIMER);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 150), 0);

    nbio_poller_free(p);
    nbio_free(survivor->s);
    nbio_free(m);
    nbio_free(c1);
    nbio_free(c2);
}

static void test_timer_order(void **state)
{
    (void)state;
    nbio_poller *p = nbio_poller_new();
    nbio_session *m[4];
    int64_t offs[4] = {60, 20, 80, 40};
    int64_t t0 = nbio_now_ms();
    for (int i = 0; i < 4; i++) {
        m[i] = nbio_mock_new(NULL);
        assert_int_equal(nbio_poller_add(p, m[i]), 0);
        assert_int_equal(nbio_poller_set_timer(p, m[i], t0 + offs[i]), 0);
    }
    const int expect[4] = {1, 3, 0, 2};
    int got = 0;
    nbio_event ev[MAXEV];
    while (got < 4) {
        int n = nbio_poller_wait(p, ev, MAXEV, 5000);
        int64_t now = nbio_now_ms();
        assert_true(n >= 1);
        for (int i = 0; i < n; i++) {
            assert_int_equal(ev[i].events, NBIO_EV_TIMER);
            assert_true(got < 4);
            assert_ptr_equal(ev[i].session, m[expect[got]]);
            assert_true(now >= t0 + offs[expect[got]]); /* never early */
            got++;
        }
        assert_true(now - t0 < 5000);
    }
    /* disarmed once fired */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 100), 0);
    for (int i = 0; i < 4; i++)
        nbio_free(m[i]);
    assert_int_equal(nbio_poller_count(p), 0);
    nbio_poller_free(p);
}

static void test_timer_cancel_and_update(void **state)
{
    (void)state;
    nbio_poller *p = nbio_poller_new();
    nbio_session *a = nbio_mock_new(NULL), *b = nbio_mock_new(NULL), *c = nbio_mock_new(NULL);
    assert_int_equal(nbio_poller_add(p, a), 0);
    assert_int_equal(nbio_poller_add(p, b), 0);
    assert_int_equal(nbio_poller_add(p, c), 0);
    int64_t t0 = nbio_now_ms();
    assert_int_equal(nbio_poller_set_timer(p, a, t0 + 30), 0);
    assert_int_equal(nbio_poller_set_timer(p, b, t0 + 3000), 0);
    assert_int_equal(nbio_poller_set_timer(p, c, t0 + 10), 0);
    assert_int_equal(nbio_poller_set_timer(p, a, -1), 0);       /* cancel */
    assert_int_equal(nbio_poller_set_timer(p, a, -1), 0);       /* twice is fine */
    assert_int_equal(nbio_poller_set_timer(p, b, t0 + 40), 0);  /* earlier */
    assert_int_equal(nbio_poller_set_timer(p, c, t0 + 120), 0); /* later */
    nbio_event ev[MAXEV];
    int n = nbio_poller_wait(p, ev, MAXEV, 10000);
    int64_t el = nbio_now_ms() - t0;
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, b);
    assert_int_equal(ev[0].events, NBIO_EV_TIMER);
    assert_true(el >= 40);
    assert_true(el < 2500); /* the old deadline (3000) did not count */
    n = nbio_poller_wait(p, ev, MAXEV, 10000);
    el = nbio_now_ms() - t0;
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, c);
    assert_true(el >= 120); /* moved later: not at its first deadline */
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 100), 0); /* a was cancelled */
    /* a past deadline is due at once, also for a busy-poll */
    assert_int_equal(nbio_poller_set_timer(p, a, nbio_now_ms() - 5), 0);
    n = nbio_poller_wait(p, ev, MAXEV, 0);
    assert_int_equal(n, 1);
    assert_ptr_equal(ev[0].session, a);
    assert_int_equal(nbio_poller_set_timer(p, NULL, 0), NBIO_EINVAL);
    nbio_poller_free(p);
    nbio_free(a);
    nbio_free(b);
    nbio_free(c);
}

static void on_alarm(int sig)
{
    (void)sig;
}

/* Arms a one-shot SIGALRM after ms without SA_RESTART: a guard so that an
 * unbounded wait cannot hang the test, and a way to interrupt one. */
static void arm_alarm(int ms)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_alarm;
    sigemptyset(&sa.sa_mask);
    assert_int_equal(sigaction(SIGALRM, &sa, NULL), 0);
    struct itimerval it;
    memset(&it, 0, sizeof it);
    it.it_value.tv_sec = ms / 1000;
    it.it_value.tv_usec = (ms % 1000) * 1000;
    assert_int_equal(setitimer(ITIMER_REAL, &it, NULL), 0);
}

static void disarm_alarm(void)
{
    struct itimerval it;
    memset(&it, 0, sizeof it);
    setitimer(ITIMER_REAL, &it, NULL);
}

/* The nearest deadline bounds the sleep, also of an unbounded wait. */
static void test_wait_returns_at_nearest_deadline(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, NULL, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, s), 0);
    int64_t t0 = nbio_now_ms();
    assert_int_equal(nbio_poller_set_timer(p, s, t0 + 50), 0);
    nbio_event ev[MAXEV];
    int n = nbio_poller_wait(p, ev, MAXEV, 10000);
    int64_t el = nbio_now_ms() - t0;
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].events, NBIO_EV_TIMER);
    assert_true(el >= 50);
    assert_true(el < 5000);

    t0 = nbio_now_ms();
    assert_int_equal(nbio_poller_set_timer(p, s, t0 + 30), 0);
    arm_alarm(5000); /* a broken poller fails instead of hanging */
    n = nbio_poller_wait(p, ev, MAXEV, -1);
    disarm_alarm();
    el = nbio_now_ms() - t0;
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].events, NBIO_EV_TIMER);
    assert_true(el >= 30);

    /* a due timer and fd readiness of the same session: one event */
    assert_int_equal(nbio_write_some(c, "z", 1), 1);
    until_readable(s);
    assert_int_equal(nbio_poller_set_timer(p, s, nbio_now_ms()), 0);
    n = nbio_poller_wait(p, ev, MAXEV, 1000);
    assert_int_equal(n, 1);
    assert_int_equal(ev[0].events, NBIO_EV_READ | NBIO_EV_TIMER);

    /* a signal ends an unbounded wait with 0 events */
    nbio_buf in;
    assert_int_equal(nbio_read(s, &in), NBIO_DATA);
    t0 = nbio_now_ms();
    arm_alarm(50);
    n = nbio_poller_wait(p, ev, MAXEV, -1);
    disarm_alarm();
    assert_int_equal(n, 0);
    assert_true(nbio_now_ms() - t0 >= 40);

    nbio_poller_free(p);
    nbio_free(c);
    nbio_free(s);
}

/* nbio_free of a registered session unregisters it; nbio_poller_free leaves
 * the sessions usable and free to join another poller. */
static void test_free_registered_and_poller_free(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, NULL, NULL);
    nbio_poller *p = nbio_poller_new();
    nbio_poller *q = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, c), 0);
    assert_int_equal(nbio_poller_add(p, s), 0);
    assert_int_equal(nbio_poller_add(p, s), NBIO_EINVAL); /* already registered */
    assert_int_equal(nbio_poller_add(q, s), NBIO_EINVAL); /* with another poller */
    assert_int_equal(nbio_poller_set_mask(q, s, 0), NBIO_EINVAL);
    assert_int_equal(nbio_poller_add(NULL, s), NBIO_EINVAL);
    assert_int_equal(nbio_poller_set_timer(p, c, nbio_now_ms() + 20), 0);
    assert_int_equal(nbio_write_some(s, "q", 1), 1); /* c readable, s dirty */
    until_readable(c);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 1);
    assert_int_equal(nbio_poller_set_mask(p, s, 0), 0); /* its peer's close must not wake us */
    nbio_buf in;
    assert_int_equal(nbio_read(c, &in), NBIO_DATA); /* unread, the close would be a reset */
    nbio_free(c); /* registered, armed, in the epoll set */
    assert_int_equal(nbio_poller_count(p), 1);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 60), 0); /* no timer, no event */

    nbio_poller_free(p); /* s stays usable */
    assert_int_equal(nbio_read(s, &in), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_poller_add(q, s), 0);
    assert_int_equal(nbio_poller_count(q), 1);
    nbio_poller_free(q);
    nbio_free(s);

    nbio_poller_free(NULL);
    assert_int_equal(nbio_poller_count(NULL), 0);
    assert_int_equal(nbio_poller_wait(NULL, ev, MAXEV, 0), NBIO_EINVAL);
}

/* A refused connect: the ended session is READY (its error is to be seen)
 * on every wait until freed. */
static void test_ended_session_is_ready_until_freed(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64];
    assert_true(nbio_local_address(l, addr, sizeof addr) > 0);
    nbio_free(l); /* nobody listens there now */
    nbio_session *c = nbio_tcp_connect(addr, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, c), 0);
    nbio_event ev[MAXEV];
    int64_t deadline = nbio_now_ms() + 5000;
    while (nbio_error(c) == 0) {
        int n = nbio_poller_wait(p, ev, MAXEV, 100);
        assert_ok_outcome(n);
        if (n > 0)
            (void)nbio_drive(c);
        assert_true(nbio_now_ms() < deadline);
    }
    assert_int_equal(nbio_error(c), NBIO_ECONNREFUSED);
    for (int i = 0; i < 2; i++) {
        assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 1000), 1);
        assert_ptr_equal(ev[0].session, c);
        assert_true(ev[0].events & NBIO_EV_READY);
    }
    nbio_free(c);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);
    nbio_poller_free(p);
}

/* Sessions without a descriptor are looked at on every wait: a mock fed
 * (and a pair end written to) without a verb on it is still reported. More
 * READY sessions than room: the next waits report the others first. */
static void test_sessions_without_descriptor(void **state)
{
    (void)state;
    nbio_poller *p = nbio_poller_new();
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *a, *b;
    assert_int_equal(nbio_pair_new(&a, &b, NULL), 0);
    assert_int_equal(nbio_poller_add(p, m), 0);
    assert_int_equal(nbio_poller_add(p, b), 0);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);
    assert_int_equal(nbio_mock_feed(m, "hello", 5), 0);
    assert_int_equal(nbio_write_some(a, "yo", 2), 2);
    int n = nbio_poller_wait(p, ev, MAXEV, 1000);
    assert_int_equal(n, 2);
    assert_true(find(ev, n, m) >= 0 && find(ev, n, b) >= 0);
    assert_int_equal(ev[0].events, NBIO_EV_READY);
    nbio_buf in;
    assert_int_equal(nbio_read(m, &in), NBIO_DATA);
    assert_int_equal(nbio_read(b, &in), NBIO_DATA);
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    enum { K = 5 };
    nbio_session *k[K];
    for (int i = 0; i < K; i++) {
        k[i] = nbio_mock_new(NULL);
        assert_int_equal(nbio_mock_feed(k[i], "z", 1), 0);
        assert_int_equal(nbio_poller_add(p, k[i]), 0);
    }
    int seen[K] = {0};
    for (int round = 0; round < 3; round++) {
        n = nbio_poller_wait(p, ev, 2, 0);
        assert_int_equal(n, 2);
        for (int i = 0; i < n; i++)
            for (int j = 0; j < K; j++)
                seen[j] += ev[i].session == k[j];
    }
    for (int j = 0; j < K; j++)
        assert_true(seen[j] >= 1); /* nobody starved */

    nbio_poller_free(p);
    for (int i = 0; i < K; i++)
        nbio_free(k[i]);
    nbio_free(m);
    nbio_free(a);
    nbio_free(b);
}

static int raise_fd_limit(rlim_t want)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0)
        return 0;
    if (rl.rlim_cur >= want)
        return 1;
    if (rl.rlim_max != RLIM_INFINITY && rl.rlim_max < want)
        return 0;
    rl.rlim_cur = want;
    return setrlimit(RLIMIT_NOFILE, &rl) == 0;
}

/* 1000 idle registered sessions and one active one: exactly the active one
 * comes back. */
static void test_thousand_idle_one_active(void **state)
{
    (void)state;
    enum { IDLE_PAIRS = 500 };
    if (!raise_fd_limit(4096))
        skip();
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.read_buffer_size = 256;
    nbio_poller *p = nbio_poller_new();
    nbio_session **idle = calloc(2 * IDLE_PAIRS, sizeof *idle);
    assert_non_null(idle);
    for (int i = 0; i < IDLE_PAIRS; i++) {
        int sv[2];
        assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
        idle[2 * i] = nbio_stream_from_fd(sv[0], &o);
        idle[2 * i + 1] = nbio_stream_from_fd(sv[1], &o);
        assert_int_equal(nbio_poller_add(p, idle[2 * i]), 0);
        assert_int_equal(nbio_poller_add(p, idle[2 * i + 1]), 0);
    }
    nbio_session *c, *s;
    tcp_pair_opt(&c, &s, NULL, NULL);
    assert_int_equal(nbio_poller_add(p, c), 0);
    assert_int_equal(nbio_poller_add(p, s), 0);
    assert_int_equal(nbio_poller_count(p), 2 * IDLE_PAIRS + 2);
    nbio_event ev[MAXEV];
    assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);

    for (int round = 0; round < 3; round++) {
        assert_int_equal(nbio_write_some(c, "ping", 4), 4);
        int n = nbio_poller_wait(p, ev, MAXEV, 5000);
        assert_int_equal(n, 1);
        assert_ptr_equal(ev[0].session, s);
        assert_int_equal(ev[0].events, NBIO_EV_READ);
        nbio_buf in;
        assert_int_equal(nbio_read(s, &in), NBIO_DATA);
        assert_int_equal(in.len, 4);
        assert_int_equal(nbio_poller_wait(p, ev, MAXEV, 0), 0);
    }

    for (int i = 0; i < 2 * IDLE_PAIRS; i++)
        nbio_free(idle[i]); /* each unregisters itself */
    assert_int_equal(nbio_poller_count(p), 2);
    free(idle);
    nbio_poller_free(p);
    nbio_free(c);
    nbio_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_readable_socket),
        cmocka_unit_test(test_buffered_frame_is_ready),
        cmocka_unit_test(test_listener_and_connecting_client),
        cmocka_unit_test(test_write_interest_after_pending),
        cmocka_unit_test(test_mask_holds_reads),
        cmocka_unit_test(test_remove_and_free_during_iteration),
        cmocka_unit_test(test_timer_order),
        cmocka_unit_test(test_timer_cancel_and_update),
        cmocka_unit_test(test_wait_returns_at_nearest_deadline),
        cmocka_unit_test(test_free_registered_and_poller_free),
        cmocka_unit_test(test_ended_session_is_ready_until_freed),
        cmocka_unit_test(test_sessions_without_descriptor),
        cmocka_unit_test(test_thousand_idle_one_active),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
