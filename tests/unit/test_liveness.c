/* Liveness and heartbeat wrappers (nbio/liveness.h): over mock sessions and
 * loopback TCP, around framing, busy-polled and under the poller. Every
 * loop is bounded in time. */
#define _GNU_SOURCE
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "nbio/frame.h"
#include "nbio/liveness.h"
#include "nbio/mock.h"
#include "nbio/poll.h"
#include "nbio/tcp.h"
#include "testutil.h"

enum { MAXEV = 8 };

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (long)(ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0)
        ;
}

/* A connected TCP pair over 127.0.0.1 with options for the client (copt)
 * and for the accepted side (aopt); either may be NULL. */
static void tcp_pair(nbio_session **client, nbio_session **server, const nbio_tcp_options *copt,
                     const nbio_tcp_options *aopt)
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

/* Reads s until it returns something other than NBIO_DATA; counts the
 * payloads. */
static int read_all(nbio_session *s, int *payloads)
{
    nbio_buf out;
    int r;
    while ((r = nbio_read(s, &out)) == NBIO_DATA)
        (*payloads)++;
    return r;
}

/* ---- liveness ------------------------------------------------------------ */

static void test_liveness_fires_on_silence(void **state)
{
    (void)state;
    int64_t t0 = nbio_now_ms();
    nbio_session *s = nbio_liveness_new(nbio_mock_new(NULL), 100);
    assert_non_null(s);
    assert_string_equal(nbio_kind(s), "liveness");
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHED);
    int64_t dl = nbio_liveness_deadline(s);
    assert_true(dl >= t0 + 100 && dl <= nbio_now_ms() + 100);
    assert_int_equal(nbio_interest(s) & NBIO_READY, 0);
    assert_true(nbio_interest(s) & NBIO_WANT_READ); /* the mock's */

    nbio_buf out;
    int r;
    while ((r = nbio_read(s, &out)) >= 0) {
        assert_int_equal(r, NBIO_IDLE);
        if (nbio_now_ms() - t0 > 2000)
            fail_msg("liveness did not fire within 2 s");
    }
    int64_t elapsed = nbio_now_ms() - t0;
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(s), "no message for 100 ms");
    assert_true(elapsed >= 100);
    assert_true(elapsed < 1000);
    assert_int_equal(nbio_error(s), NBIO_ETIMEDOUT);
    assert_int_equal(nbio_status(s), NBIO_STATUS_TERMINATED);
    /* every later call reports the same */
    assert_int_equal(nbio_read(s, &out), NBIO_ETIMEDOUT);
    assert_int_equal(nbio_drive(s), NBIO_ETIMEDOUT);
    assert_int_equal(nbio_write_some(s, "x", 1), NBIO_ETIMEDOUT);
    assert_int_equal(nbio_liveness_deadline(s), -1);
    assert_true(nbio_interest(s) & NBIO_READY);
    nbio_free(s);
}

/* Past the deadline, interest says NBIO_READY before anyone calls in; a
 * drive then reports the error. */
static void test_liveness_interest_and_drive(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *s = nbio_liveness_new(m, 50);
    assert_int_equal(nbio_drive(s), NBIO_IDLE);
    assert_int_equal(nbio_interest(s) & NBIO_READY, 0);
    sleep_ms(60);
    assert_true(nbio_interest(s) & NBIO_READY);
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHED); /* nothing noticed yet */
    nbio_session *one[1] = {s};
    int64_t t = nbio_now_ms();
    assert_int_equal(nbio_wait(one, 1, 1000), 1); /* returns at once */
    assert_true(nbio_now_ms() - t < 500);
    assert_int_equal(nbio_drive(s), NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(s), "no message for 50 ms");
    nbio_free(s);
}

/* Payloads keep it alive; the clock restarts at each one. */
static void test_liveness_payloads_reset_the_clock(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *s = nbio_liveness_new(m, 100);
    int64_t t0 = nbio_now_ms(), next = t0, last_data = t0;
    int payloads = 0, fed = 0;
    while (nbio_now_ms() - t0 < 450) { /* four and a half timeouts */
        if (nbio_now_ms() >= next) {
            assert_int_equal(nbio_mock_feed(m, "x", 1), 0);
            fed++;
            next += 30;
        }
        int before = payloads;
        assert_ok_outcome(read_all(s, &payloads));
        if (payloads != before)
            last_data = nbio_now_ms();
        sleep_ms(1);
    }
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHED);
    assert_int_equal(payloads, fed);
    assert_true(payloads >= 10);
    /* silence: it fires about 100 ms after the last payload */
    int r;
    while ((r = read_all(s, &payloads)) >= 0) {
        assert_true(nbio_now_ms() - last_data < 2000);
        sleep_ms(1);
    }
    int64_t quiet = nbio_now_ms() - last_data;
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_true(quiet >= 100);
    assert_true(quiet < 1000);
    nbio_free(s);
}

/* The clock starts at construction: an inner session that never finishes
 * establishing times out too, from drive and from read. */
static void test_liveness_while_establishing(void **state)
{
    (void)state;
    nbio_mock_options mo = {.establish_after = INT_MAX};
    for (int via_read = 0; via_read < 2; via_read++) {
        int64_t t0 = nbio_now_ms();
        nbio_session *s = nbio_liveness_new(nbio_mock_new(&mo), 60);
        assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHING);
        nbio_buf out;
        int r;
        for (;;) {
            r = via_read ? nbio_read(s, &out) : nbio_drive(s);
            if (r < 0)
                break;
            assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHING);
            assert_true(nbio_now_ms() - t0 < 2000);
            sleep_ms(1);
        }
        assert_int_equal(r, NBIO_ETIMEDOUT);
        assert_string_equal(nbio_detail(s), "no message for 60 ms");
        assert_true(nbio_now_ms() - t0 >= 60);
        nbio_free(s);
    }
    /* an inner session that establishes later makes the wrapper established */
    nbio_mock_options soon = {.establish_after = 3};
    nbio_session *s = nbio_liveness_new(nbio_mock_new(&soon), 1000);
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHING);
    for (int i = 0; i < 10 && nbio_status(s) == NBIO_STATUS_ESTABLISHING; i++)
        assert_ok_outcome(nbio_drive(s));
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHED);
    nbio_free(s);
}

/* The peer's end of stream passes through (read side only): the clock stops,
 * writes and close keep working. */
static void test_liveness_peer_closed(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_mock_feed(m, "abc", 3);
    nbio_mock_feed_eof(m);
    nbio_session *s = nbio_liveness_new(m, 50);
    nbio_buf out;
    assert_int_equal(nbio_read(s, &out), NBIO_DATA);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "abc", 3);
    assert_int_equal(nbio_read(s, &out), NBIO_EPEERCLOSED);
    assert_string_equal(nbio_detail(s), "closed by peer");
    assert_int_equal(nbio_liveness_deadline(s), -1);
    sleep_ms(70);
    assert_int_equal(nbio_interest(s) & NBIO_READY, 0);
    assert_ok_outcome(nbio_drive(s));
    assert_int_equal(nbio_read(s, &out), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_write_some(s, "hi", 2), 2);
    assert_int_equal(nbio_error(s), NBIO_EPEERCLOSED);
    size_t len;
    const void *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 2);
    assert_memory_equal(o, "hi", 2);
    assert_int_equal(nbio_close(s), NBIO_DONE);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    assert_int_equal(nbio_error(s), NBIO_ECLOSED);
    nbio_free(s);
}

/* Inner errors pass through with their detail. */
static void test_liveness_inner_error(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_mock_step st = {NBIO_MOCK_ERROR, 0, NBIO_ECONNRESET};
    nbio_mock_script_read(m, &st, 1);
    nbio_session *s = nbio_liveness_new(m, 1000);
    nbio_buf out;
    assert_int_equal(nbio_read(s, &out), NBIO_ECONNRESET);
    assert_string_equal(nbio_detail(s), "mock read: connection reset by peer");
    nbio_free(s);
}

/* Under a framing session (the byte fast paths): frames pass through, bytes
 * reset the clock, silence ends the framing session with liveness's detail. */
static void test_liveness_under_framing(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(nbio_liveness_new(m, 80), &nbio_frame_u32be, NULL);
    assert_int_equal(nbio_status(f), NBIO_STATUS_ESTABLISHED);
    nbio_mock_feed(m, "\0\0\0\3abc", 7);
    nbio_buf out;
    int64_t t0 = nbio_now_ms(); /* the read below restarts the clock */
    assert_int_equal(nbio_read(f, &out), NBIO_DATA);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "abc", 3);
    assert_int_equal(nbio_write_some(f, "xy", 2), 2);
    assert_int_equal(nbio_flush(f, 0), NBIO_DONE);
    size_t len;
    const void *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 6);
    assert_memory_equal(o, "\0\0\0\2xy", 6);
    assert_true(nbio_liveness_deadline(f) >= t0 + 80); /* found below the framing layer */
    int r;
    while ((r = nbio_read(f, &out)) >= 0) {
        assert_true(nbio_now_ms() - t0 < 2000);
        sleep_ms(1);
    }
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(f), "no message for 80 ms");
    assert_true(nbio_now_ms() - t0 >= 80);
    nbio_free(f);
}

/* A peer trickling one byte of a frame every 20 ms does not keep a
 * liveness-wrapped framing session alive. */
static void test_liveness_trickle_over_tcp(void **state)
{
    (void)state;
    nbio_session *c, *sv;
    tcp_pair(&c, &sv, NULL, NULL);
    int64_t t0 = nbio_now_ms();
    nbio_session *s = nbio_liveness_new(nbio_frame_new(sv, &nbio_frame_u32be, NULL), 100);
    unsigned char wire[4 + 60] = {0, 0, 0, 60};
    tu_pattern(wire + 4, 60, 7);
    size_t sent = 0;
    int64_t next = t0;
    int actives = 0, payloads = 0, r;
    for (;;) {
        if (sent < sizeof wire && nbio_now_ms() >= next) {
            assert_int_equal(nbio_write_some(c, wire + sent, 1), 1);
            sent++;
            next += 20;
        }
        nbio_buf out;
        r = nbio_read(s, &out);
        if (r < 0)
            break;
        if (r == NBIO_DATA)
            payloads++;
        if (r == NBIO_ACTIVE)
            actives++;
        if (nbio_now_ms() - t0 > 3000)
            fail_msg("liveness did not fire within 3 s");
        sleep_ms(1);
    }
    int64_t elapsed = nbio_now_ms() - t0;
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(s), "no message for 100 ms");
    assert_int_equal(payloads, 0);
    assert_true(actives >= 2); /* bytes did arrive */
    assert_true(sent < sizeof wire); /* long before the frame was complete */
    assert_true(elapsed >= 100);
    assert_true(elapsed < 1000);
    nbio_free(s);
    nbio_free(c);
}

/* Whole messages every 30 ms keep it alive past several timeouts (150 ms:
 * a margin for a test process stalled by a loaded machine). */
static void test_liveness_messages_over_tcp(void **state)
{
    (void)state;
    nbio_session *c, *sv;
    tcp_pair(&c, &sv, NULL, NULL);
    nbio_session *cf = nbio_frame_new(c, &nbio_frame_u32be, NULL);
    nbio_session *s = nbio_liveness_new(nbio_frame_new(sv, &nbio_frame_u32be, NULL), 150);
    int64_t t0 = nbio_now_ms(), next = t0, last_data = t0;
    int sent = 0, payloads = 0;
    while (nbio_now_ms() - t0 < 600) { /* four timeouts */
        if (nbio_now_ms() >= next) {
            char msg[32];
            int n = snprintf(msg, sizeof msg, "message %d", sent++);
            assert_int_equal(nbio_write_some(cf, msg, (size_t)n), n);
            assert_ok_outcome(nbio_drive(cf)); /* send it */
            next += 30;
        }
        int before = payloads;
        assert_ok_outcome(read_all(s, &payloads));
        if (payloads != before)
            last_data = nbio_now_ms();
        sleep_ms(1);
    }
    assert_int_equal(nbio_status(s), NBIO_STATUS_ESTABLISHED);
    assert_true(payloads >= 10);
    assert_true(payloads >= sent - 2);
    /* the messages stop: it fires */
    int r;
    while ((r = read_all(s, &payloads)) >= 0) {
        assert_true(nbio_now_ms() - last_data < 3000);
        sleep_ms(1);
    }
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(s), "no message for 150 ms");
    assert_true(nbio_now_ms() - last_data >= 150);
    nbio_free(s);
    nbio_free(cf);
}

/* ---- heartbeat ----------------------------------------------------------- */

/* Sent after the interval of no writes, from drive, again and again: each
 * one an interval after the previous one, never early. */
static void test_heartbeat_after_interval(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    int64_t t0 = nbio_now_ms();
    nbio_session *h = nbio_heartbeat_new(m, 100, "HB", 2);
    assert_non_null(h);
    assert_string_equal(nbio_kind(h), "heartbeat");
    int64_t dl = nbio_heartbeat_deadline(h);
    assert_true(dl >= t0 + 100 && dl <= nbio_now_ms() + 100);
    int64_t at[8];
    size_t beats = 0, len = 0;
    while (nbio_now_ms() - t0 < 450 || beats < 2) {
        int64_t before = nbio_now_ms();
        assert_ok_outcome(nbio_drive(h));
        nbio_mock_output(m, &len);
        assert_true(len % 2 == 0 && len / 2 <= 8);
        if (len / 2 > beats) {
            assert_int_equal(len / 2, beats + 1); /* one per drive */
            at[beats++] = before;                 /* sent at or after this time */
        }
        assert_true(nbio_now_ms() - t0 < 3000);
        sleep_ms(1);
    }
    assert_true(beats >= 2 && beats <= 4); /* ~100, ~200, ~300, ~400 ms */
    assert_true(at[0] - t0 >= 99);         /* `before` may be up to 1 ms early */
    assert_true(at[0] - t0 < 1500);
    for (size_t i = 1; i < beats; i++)
        assert_true(at[i] - at[i - 1] >= 99);
    const char *o = nbio_mock_output(m, &len);
    for (size_t i = 0; i < len; i += 2)
        assert_memory_equal(o + i, "HB", 2);
    nbio_free(h);
}

/* A read sends a due heartbeat too; interest says NBIO_READY when one is due. */
static void test_heartbeat_from_read(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    char msg[] = "beat";
    nbio_session *h = nbio_heartbeat_new(m, 150, msg, 4);
    memcpy(msg, "XXXX", 4); /* the wrapper has its own copy */
    assert_int_equal(nbio_interest(h) & NBIO_READY, 0);
    sleep_ms(160);
    assert_true(nbio_interest(h) & NBIO_READY);
    assert_true(nbio_heartbeat_deadline(h) <= nbio_now_ms());
    nbio_buf out;
    assert_int_equal(nbio_read(h, &out), NBIO_IDLE);
    size_t len;
    const void *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(o, "beat", 4);
    assert_int_equal(nbio_interest(h) & NBIO_READY, 0);
    assert_true(nbio_heartbeat_deadline(h) > nbio_now_ms());
    /* reads forward payloads */
    nbio_mock_feed(m, "in", 2);
    assert_int_equal(nbio_read(h, &out), NBIO_DATA);
    assert_memory_equal(out.data, "in", 2);
    nbio_free(h);
}

/* No heartbeat while the caller writes more often than the interval. */
static void test_heartbeat_not_while_writing(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *h = nbio_heartbeat_new(m, 150, "HB", 2);
    int64_t t0 = nbio_now_ms(), next = t0, last_write = t0, max_gap = 0;
    size_t writes = 0, beats = 0, len;
    while (nbio_now_ms() - t0 < 500) { /* writes every 20 ms */
        if (nbio_now_ms() >= next) {
            assert_int_equal(nbio_write_some(h, "x", 1), 1);
            last_write = nbio_now_ms();
            writes++;
            next += 20;
        }
        assert_ok_outcome(nbio_drive(h));
        int64_t gap = nbio_now_ms() - last_write; /* the drive looked no later */
        if (gap > max_gap)
            max_gap = gap;
        nbio_mock_output(m, &len);
        if (len > writes + 2 * beats) {
            /* only possible when this process stalled for an interval */
            assert_true(gap >= 150);
            beats++;
        }
        sleep_ms(1);
    }
    assert_true(writes >= 10);
    if (max_gap < 150)
        assert_int_equal(beats, 0);
    const char *o = nbio_mock_output(m, &len);
    assert_int_equal(len, writes + 2 * beats);
    for (size_t i = 0; i < len; i++) {
        if (o[i] == 'H')
            assert_memory_equal(o + i++, "HB", 2);
        else
            assert_int_equal(o[i], 'x');
    }
    /* the writes stop: a heartbeat follows an interval after the last one */
    int64_t seen;
    for (;;) {
        assert_ok_outcome(nbio_drive(h));
        seen = nbio_now_ms();
        nbio_mock_output(m, &len);
        if (len > writes + 2 * beats)
            break;
        assert_true(seen - last_write < 3000);
        sleep_ms(1);
    }
    assert_true(seen - last_write >= 150);
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, writes + 2 * beats + 2);
    assert_memory_equal(o + len - 2, "HB", 2);
    nbio_free(h);
}

/* A heartbeat that goes pending is completed before the caller's write is
 * taken (buf untouched meanwhile); none starts while the caller's own write
 * is only partly out. */
static void test_heartbeat_pending_over_bytes(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_chunk = 3};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_session *h = nbio_heartbeat_new(m, 100, "HEARTBEAT", 9);
    sleep_ms(110);
    assert_int_equal(nbio_drive(h), NBIO_ACTIVE);
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 3);
    assert_true(nbio_interest(h) & NBIO_WANT_WRITE);
    assert_int_equal(nbio_heartbeat_deadline(h), -1);

    const char *data = "data";
    nbio_buf b = {data, 4};
    assert_int_equal(nbio_write(h, &b), NBIO_PENDING);
    assert_ptr_equal(b.data, data); /* untouched */
    assert_int_equal(b.len, 4);
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, 6);
    /* the heartbeat finishes, then 3 bytes of the caller's */
    assert_int_equal(nbio_write(h, &b), NBIO_PENDING);
    assert_int_equal(b.len, 1);
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, 12);
    assert_memory_equal(o, "HEARTBEATdat", 12);
    /* the caller's write is part way: no heartbeat, however long it waits */
    sleep_ms(110);
    assert_int_equal(nbio_interest(h) & NBIO_READY, 0);
    assert_int_equal(nbio_heartbeat_deadline(h), -1);
    assert_ok_outcome(nbio_drive(h));
    nbio_mock_output(m, &len);
    assert_int_equal(len, 12);
    assert_int_equal(nbio_write(h, &b), NBIO_DONE);
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, 13);
    assert_memory_equal(o, "HEARTBEATdata", 13);
    /* finished: the next heartbeat is an interval after that write */
    int64_t dl = nbio_heartbeat_deadline(h);
    assert_true(dl > nbio_now_ms() && dl <= nbio_now_ms() + 100);
    sleep_ms(110);
    while (nbio_interest(h) & NBIO_WANT_WRITE || nbio_interest(h) & NBIO_READY)
        assert_ok_outcome(nbio_drive(h));
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, 22);
    assert_memory_equal(o, "HEARTBEATdataHEARTBEAT", 22);
    nbio_free(h);
}

/* The caller's writes and flushes push a pending heartbeat; writev (the
 * byte fast path a layer above uses) waits for it as well. */
static void test_heartbeat_writev_waits(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_mock_step st[] = {{NBIO_MOCK_BYTES, 2, 0}, {NBIO_MOCK_WOULDBLOCK, 0, 0}};
    nbio_mock_script_write(m, st, 2);
    nbio_session *h = nbio_heartbeat_new(m, 40, "PING", 4);
    sleep_ms(50);
    assert_int_equal(nbio_drive(h), NBIO_ACTIVE); /* "PI" */
    /* a framing session above writes through writev */
    nbio_session *f = nbio_frame_new(h, &nbio_frame_u16be, NULL);
    assert_int_equal(nbio_write_some(f, "ab", 2), 2); /* buffered in the frame layer */
    assert_int_equal(nbio_flush(f, 0), NBIO_PENDING); /* heartbeat blocked (WOULDBLOCK) */
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 2);
    assert_int_equal(nbio_flush(f, 1000), NBIO_DONE);
    o = nbio_mock_output(m, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(o, "PING\0\2ab", 8);
    nbio_free(f);
}

/* Shutdown finishes a started heartbeat before the goodbye and drops one
 * that has not started. */
static void test_heartbeat_close(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_chunk = 3};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_session *h = nbio_heartbeat_new(m, 30, "HEARTBEAT", 9);
    sleep_ms(40);
    assert_int_equal(nbio_drive(h), NBIO_ACTIVE);
    int r, guard = 0;
    while ((r = nbio_close(h)) == NBIO_PENDING)
        assert_true(++guard < 100);
    assert_int_equal(r, NBIO_DONE);
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 9);
    assert_memory_equal(o, "HEARTBEAT", 9);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    nbio_free(h);

    m = nbio_mock_new(NULL);
    nbio_mock_step wb = {NBIO_MOCK_WOULDBLOCK, 0, 0};
    nbio_mock_script_write(m, &wb, 1);
    h = nbio_heartbeat_new(m, 30, "HEARTBEAT", 9);
    sleep_ms(40);
    assert_int_equal(nbio_drive(h), NBIO_IDLE); /* due, but nothing taken */
    assert_true(nbio_interest(h) & NBIO_WANT_WRITE);
    assert_int_equal(nbio_shutdown(h), NBIO_DONE);
    nbio_mock_output(m, &len);
    assert_int_equal(len, 0);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    /* shut down: no more heartbeats, writes refused */
    sleep_ms(40);
    assert_ok_outcome(nbio_drive(h));
    assert_int_equal(nbio_heartbeat_deadline(h), -1);
    nbio_mock_output(m, &len);
    assert_int_equal(len, 0);
    assert_int_equal(nbio_write_some(h, "x", 1), NBIO_ECLOSED);
    nbio_free(h);
}

/* After the peer's half-close: EPEERCLOSED passes through, heartbeats and
 * writes go on. */
static void test_heartbeat_after_peer_close(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_mock_feed_eof(m);
    nbio_session *h = nbio_heartbeat_new(m, 30, "HB", 2);
    nbio_buf out;
    assert_int_equal(nbio_read(h, &out), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_status(h), NBIO_STATUS_TERMINATED);
    sleep_ms(40);
    assert_int_equal(nbio_drive(h), NBIO_ACTIVE);
    assert_int_equal(nbio_write_some(h, "ok", 2), 2);
    size_t len;
    const char *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(o, "HBok", 4);
    assert_int_equal(nbio_read(h, &out), NBIO_EPEERCLOSED);
    /* a write failure ends it with the inner's detail */
    nbio_mock_step st = {NBIO_MOCK_ERROR, 0, NBIO_EPIPE};
    nbio_mock_script_write(m, &st, 1);
    assert_int_equal(nbio_write_some(h, "x", 1), NBIO_EPIPE);
    assert_string_equal(nbio_detail(h), "mock write: broken pipe");
    nbio_free(h);
}

static void test_constructors(void **state)
{
    (void)state;
    assert_null(nbio_liveness_new(NULL, 100));
    assert_null(nbio_heartbeat_new(NULL, 100, "x", 1));

    nbio_session *s = nbio_liveness_new(nbio_mock_new(NULL), 0);
    assert_int_equal(nbio_error(s), NBIO_EINVAL);
    assert_string_equal(nbio_detail(s), "liveness timeout of 0 ms: must be > 0");
    assert_int_equal(nbio_liveness_deadline(s), -1);
    nbio_free(s);
    s = nbio_heartbeat_new(nbio_mock_new(NULL), -5, "x", 1);
    assert_int_equal(nbio_error(s), NBIO_EINVAL);
    assert_string_equal(nbio_detail(s), "heartbeat interval of -5 ms: must be > 0");
    nbio_free(s);
    s = nbio_heartbeat_new(nbio_mock_new(NULL), 100, NULL, 3);
    assert_int_equal(nbio_error(s), NBIO_EINVAL);
    nbio_free(s);

    /* a failed inner session's error is taken over */
    nbio_session *bad = nbio_tcp_connect("no-port-here", NULL);
    assert_int_equal(nbio_error(bad), NBIO_EINVAL);
    char why[256];
    snprintf(why, sizeof why, "%s", nbio_detail(bad));
    s = nbio_liveness_new(bad, 100);
    assert_int_equal(nbio_error(s), NBIO_EINVAL);
    assert_string_equal(nbio_detail(s), why);
    nbio_free(s);

    /* an empty heartbeat is an empty frame around framing */
    nbio_session *m = nbio_mock_new(NULL);
    s = nbio_heartbeat_new(nbio_frame_new(m, &nbio_frame_u32be, NULL), 20, NULL, 0);
    assert_int_equal(nbio_error(s), 0);
    sleep_ms(30);
    assert_int_equal(nbio_drive(s), NBIO_ACTIVE);
    size_t len;
    const void *o = nbio_mock_output(m, &len);
    assert_int_equal(len, 4);
    assert_memory_equal(o, "\0\0\0\0", 4);
    nbio_free(s);

    /* deadlines: found anywhere in the stack, -1 without the layer */
    m = nbio_mock_new(NULL);
    assert_int_equal(nbio_liveness_deadline(m), -1);
    assert_int_equal(nbio_heartbeat_deadline(m), -1);
    assert_int_equal(nbio_liveness_deadline(NULL), -1);
    assert_int_equal(nbio_heartbeat_deadline(NULL), -1);
    int64_t t0 = nbio_now_ms();
    s = nbio_heartbeat_new(nbio_liveness_new(m, 300), 100, "", 0);
    assert_string_equal(nbio_kind(s), "heartbeat");
    int64_t ld = nbio_liveness_deadline(s), hd = nbio_heartbeat_deadline(s);
    assert_true(ld >= t0 + 300 && ld <= nbio_now_ms() + 300);
    assert_true(hd >= t0 + 100 && hd <= nbio_now_ms() + 100);
    nbio_free(s);
}

/* A heartbeat pending on a full socket (small SO_SNDBUF, the peer not
 * reading) goes out whole before the caller's frames, which wait with their
 * buffer untouched; everything the peer receives decodes as whole frames. */
static void test_heartbeat_full_socket_no_interleave(void **state)
{
    (void)state;
    /* (a small receive buffer too would make loopback TCP crawl: its window
     * never opens to a whole segment) */
    nbio_tcp_options co;
    nbio_tcp_options_init(&co);
    co.send_buffer_size = 4096;
    nbio_session *c, *sv;
    tcp_pair(&c, &sv, &co, NULL);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 64; /* larger frames are streamed from the caller's memory */
    enum { HB_LEN = 1 << 20, NFRAMES = 5 };
    unsigned char *hb = malloc(HB_LEN);
    assert_non_null(hb);
    memset(hb, 'H', HB_LEN);
    nbio_session *cl = nbio_heartbeat_new(nbio_frame_new(c, &nbio_frame_u32be, &fo), 50, hb, HB_LEN);
    nbio_session *srv = nbio_frame_new(sv, &nbio_frame_u32be, NULL);
    static const size_t sizes[NFRAMES] = {1000, 100000, 10, 70000, 5};
    unsigned char *frames[NFRAMES];
    for (int i = 0; i < NFRAMES; i++) {
        frames[i] = malloc(sizes[i]);
        assert_non_null(frames[i]);
        tu_pattern(frames[i], sizes[i], (uint32_t)i + 1);
        frames[i][0] = 'F'; /* never mistaken for a heartbeat */
    }

    /* the heartbeat starts and the socket fills up */
    sleep_ms(60);
    assert_int_equal(nbio_drive(cl), NBIO_ACTIVE);
    for (int i = 0; i < 20; i++)
        assert_ok_outcome(nbio_drive(cl));
    assert_true(nbio_interest(cl) & NBIO_WANT_WRITE);
    assert_int_equal(nbio_heartbeat_deadline(cl), -1);
    /* the caller's frame waits, untouched, however often it is offered */
    nbio_buf b = {frames[0], sizes[0]};
    for (int i = 0; i < 20; i++) {
        assert_int_equal(nbio_write(cl, &b), NBIO_PENDING);
        assert_ptr_equal(b.data, frames[0]);
        assert_int_equal(b.len, sizes[0]);
        assert_ok_outcome(nbio_drive(cl));
    }
    assert_int_equal(nbio_error(cl), 0);

    /* the peer reads: everything goes out, in whole frames */
    int next = 0, heartbeats = 0, wi = 0;
    int64_t deadline = nbio_now_ms() + 10000;
    int writing = 1;
    while (next < NFRAMES) {
        if (writing) {
            int r = nbio_write(cl, &b);
            assert_ok_outcome(r);
            if (r == NBIO_DONE) {
                if (++wi < NFRAMES) {
                    b.data = frames[wi];
                    b.len = sizes[wi];
                } else {
                    writing = 0;
                }
            }
        }
        assert_ok_outcome(nbio_drive(cl));
        nbio_buf in;
        int r;
        while ((r = nbio_read(srv, &in)) == NBIO_DATA) {
            if (in.len == HB_LEN && memcmp(in.data, hb, HB_LEN) == 0) {
                heartbeats++;
                continue;
            }
            assert_true(next < NFRAMES);
            assert_true(heartbeats >= 1); /* the pending heartbeat came first */
            assert_int_equal(in.len, sizes[next]);
            assert_memory_equal(in.data, frames[next], sizes[next]);
            next++;
        }
        assert_ok_outcome(r);
        if (nbio_now_ms() > deadline)
            fail_msg("only %d of %d frames arrived", next, NFRAMES);
    }
    assert_true(heartbeats >= 1);
    assert_int_equal(nbio_error(cl), 0);
    /* nothing else (no stray bytes) follows: a clean end between frames */
    int r, guard = 0;
    while ((r = nbio_close(cl)) == NBIO_PENDING) {
        nbio_buf in;
        while (nbio_read(srv, &in) == NBIO_DATA)
            assert_true(in.len == HB_LEN && memcmp(in.data, hb, HB_LEN) == 0);
        assert_true(++guard < 100000);
    }
    assert_int_equal(r, NBIO_DONE);
    nbio_buf in;
    deadline = nbio_now_ms() + 5000;
    while ((r = nbio_read(srv, &in)) >= 0) {
        if (r == NBIO_DATA)
            assert_true(in.len == HB_LEN && memcmp(in.data, hb, HB_LEN) == 0);
        assert_true(nbio_now_ms() < deadline);
    }
    assert_int_equal(r, NBIO_EPEERCLOSED);
    for (int i = 0; i < NFRAMES; i++)
        free(frames[i]);
    free(hb);
    nbio_free(cl);
    nbio_free(srv);
}

/* ---- under the poller ----------------------------------------------------- */

static int64_t earliest(int64_t a, int64_t b)
{
    if (a < 0)
        return b;
    if (b < 0)
        return a;
    return a < b ? a : b;
}

/* The poller sleeps until the liveness deadline (a timer), the caller reads
 * and sees the timeout. */
static void test_liveness_under_poller(void **state)
{
    (void)state;
    nbio_session *c, *sv;
    tcp_pair(&c, &sv, NULL, NULL);
    int64_t t0 = nbio_now_ms();
    nbio_session *s = nbio_liveness_new(nbio_frame_new(sv, &nbio_frame_u32be, NULL), 100);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, s), 0);
    assert_int_equal(nbio_poller_set_timer(p, s, nbio_liveness_deadline(s)), 0);
    nbio_event ev[MAXEV];
    int r = 0, wakeups = 0;
    unsigned bits = 0;
    while (r >= 0) {
        int n = nbio_poller_wait(p, ev, MAXEV, 1000);
        assert_ok_outcome(n);
        assert_true(nbio_now_ms() - t0 < 3000);
        for (int i = 0; i < n; i++) {
            assert_ptr_equal(ev[i].session, s);
            bits |= ev[i].events;
            wakeups++;
            r = read_all(s, &(int){0});
            if (r >= 0)
                assert_int_equal(nbio_poller_set_timer(p, s, nbio_liveness_deadline(s)), 0);
        }
    }
    int64_t elapsed = nbio_now_ms() - t0;
    assert_int_equal(r, NBIO_ETIMEDOUT);
    assert_string_equal(nbio_detail(s), "no message for 100 ms");
    assert_true(bits & NBIO_EV_TIMER);
    assert_true(wakeups <= 3); /* slept, did not spin */
    assert_true(elapsed >= 100);
    assert_true(elapsed < 1500);
    nbio_poller_free(p);
    nbio_free(s);
    nbio_free(c);
}

/* The poller wakes the client at each heartbeat deadline; the server gets a
 * ping per interval, none early. The client also carries a liveness layer
 * that the server's answers keep alive. */
static void test_heartbeat_under_poller(void **state)
{
    (void)state;
    nbio_session *c, *sv;
    tcp_pair(&c, &sv, NULL, NULL);
    int64_t t0 = nbio_now_ms();
    nbio_session *cl = nbio_heartbeat_new(
        nbio_liveness_new(nbio_frame_new(c, &nbio_frame_u32be, NULL), 1000), 100, "ping", 4);
    nbio_session *srv = nbio_frame_new(sv, &nbio_frame_u32be, NULL);
    nbio_poller *p = nbio_poller_new();
    assert_int_equal(nbio_poller_add(p, cl), 0);
    assert_int_equal(nbio_poller_add(p, srv), 0);
    assert_int_equal(nbio_poller_set_timer(p, cl, earliest(nbio_heartbeat_deadline(cl),
                                                           nbio_liveness_deadline(cl))),
                     0);
    nbio_event ev[MAXEV];
    int pings = 0, answers = 0, timer_events = 0, wakeups = 0;
    int64_t first_ping = -1;
    while (pings < 3) {
        int n = nbio_poller_wait(p, ev, MAXEV, 1000);
        assert_ok_outcome(n);
        assert_true(nbio_now_ms() - t0 < 3000);
        for (int i = 0; i < n; i++) {
            wakeups++;
            nbio_buf in;
            int r;
            if (ev[i].session == cl) {
                if (ev[i].events & NBIO_EV_TIMER)
                    timer_events++;
                while ((r = nbio_read(cl, &in)) == NBIO_DATA) {
                    assert_int_equal(in.len, 4);
                    assert_memory_equal(in.data, "pong", 4);
                    answers++;
                }
                assert_ok_outcome(r);
                assert_ok_outcome(nbio_drive(cl));
                assert_int_equal(nbio_poller_set_timer(p, cl,
                                                       earliest(nbio_heartbeat_deadline(cl),
                                                                nbio_liveness_deadline(cl))),
                                 0);
            } else {
                assert_ptr_equal(ev[i].session, srv);
                while ((r = nbio_read(srv, &in)) == NBIO_DATA) {
                    assert_int_equal(in.len, 4);
                    assert_memory_equal(in.data, "ping", 4);
                    if (first_ping < 0)
                        first_ping = nbio_now_ms();
                    pings++;
                    assert_true(nbio_now_ms() - t0 >= 100 * pings); /* one per interval */
                    assert_int_equal(nbio_write_some(srv, "pong", 4), 4);
                }
                assert_ok_outcome(r);
                assert_ok_outcome(nbio_drive(srv));
            }
        }
    }
    int64_t elapsed = nbio_now_ms() - t0;
    assert_true(first_ping - t0 >= 100);
    assert_true(first_ping - t0 < 1000);
    assert_true(elapsed >= 300);
    assert_true(elapsed < 2000);
    assert_true(timer_events >= 3);
    assert_true(wakeups < 100); /* slept between heartbeats */
    assert_int_equal(nbio_error(cl), 0); /* the pongs kept the liveness layer happy */
    (void)answers;
    nbio_poller_free(p);
    nbio_free(cl);
    nbio_free(srv);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_liveness_fires_on_silence),
        cmocka_unit_test(test_liveness_interest_and_drive),
        cmocka_unit_test(test_liveness_payloads_reset_the_clock),
        cmocka_unit_test(test_liveness_while_establishing),
        cmocka_unit_test(test_liveness_peer_closed),
        cmocka_unit_test(test_liveness_inner_error),
        cmocka_unit_test(test_liveness_under_framing),
        cmocka_unit_test(test_liveness_trickle_over_tcp),
        cmocka_unit_test(test_liveness_messages_over_tcp),
        cmocka_unit_test(test_heartbeat_after_interval),
        cmocka_unit_test(test_heartbeat_from_read),
        cmocka_unit_test(test_heartbeat_not_while_writing),
        cmocka_unit_test(test_heartbeat_pending_over_bytes),
        cmocka_unit_test(test_heartbeat_writev_waits),
        cmocka_unit_test(test_heartbeat_close),
        cmocka_unit_test(test_heartbeat_after_peer_close),
        cmocka_unit_test(test_constructors),
        cmocka_unit_test(test_heartbeat_full_socket_no_interleave),
        cmocka_unit_test(test_liveness_under_poller),
        cmocka_unit_test(test_heartbeat_under_poller),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
