/* Framing sessions: every strategy over scripted partial I/O, big frames,
 * limits, EOF handling, slow consumers over TCP. */
#define _GNU_SOURCE
#include <malloc.h>
#include <sys/socket.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/frame.h"
#include "nbio/mock.h"
#include "nbio/tcp.h"
#include "testutil.h"

static const nbio_frame_strategy *const strategies[] = {&nbio_frame_u64le, &nbio_frame_u32be,
                                                        &nbio_frame_u16be, &nbio_frame_line};
#define NSTRAT (sizeof strategies / sizeof strategies[0])

/* Payload i of a test sequence: no '\n' so the line strategy can carry it. */
static size_t make_payload(unsigned char *p, size_t i)
{
    size_t len = (i * 37) % 300;
    if (i % 17 == 0)
        len = 0;
    for (size_t k = 0; k < len; k++)
        p[k] = (unsigned char)('A' + (i + k) % 26);
    return len;
}

/* Writes n frames into a framing session over a mock that accepts
 * write_chunk bytes per write, and returns the encoded bytes. */
static unsigned char *encode_frames(const nbio_frame_strategy *st, size_t n, size_t write_chunk,
                                    size_t *out_len, int *pendings)
{
    nbio_mock_options mo = {.write_chunk = write_chunk};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 64;
    nbio_session *f = nbio_frame_new(m, st, &fo);
    assert_non_null(f);
    unsigned char p[300];
    *pendings = 0;
    for (size_t i = 0; i < n; i++) {
        size_t len = make_payload(p, i);
        nbio_buf b = {p, len};
        int guard = 0;
        for (;;) {
            int r = nbio_write(f, &b);
            assert_ok_outcome(r);
            if (r == NBIO_DONE)
                break;
            (*pendings)++;
            assert_ok_outcome(nbio_drive(f));
            assert_true(++guard < 100000);
        }
    }
    assert_int_equal(nbio_flush(f, 5000), NBIO_DONE);
    size_t len;
    const void *out = nbio_mock_output(m, &len);
    unsigned char *copy = malloc(len + 1);
    memcpy(copy, out, len);
    *out_len = len;
    nbio_free(f);
    return copy;
}

/* Feeds wire bytes to a framing session read_chunk bytes per read and
 * checks that exactly the n payloads come out, then a clean close. */
static void decode_frames(const nbio_frame_strategy *st, const unsigned char *wire, size_t len,
                          size_t n, size_t read_chunk)
{
    nbio_mock_options mo = {.read_chunk = read_chunk};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_mock_feed(m, wire, len);
    nbio_mock_feed_eof(m);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.read_buffer_size = 64; /* also exercises growth */
    nbio_session *f = nbio_frame_new(m, st, &fo);
    unsigned char p[300];
    size_t i = 0;
    int actives = 0;
    for (;;) {
        nbio_buf out;
        int r = nbio_read(f, &out);
        if (r == NBIO_EPEERCLOSED)
            break;
        assert_ok_outcome(r);
        assert_int_not_equal(r, NBIO_IDLE); /* the mock always has bytes or EOF */
        if (r == NBIO_ACTIVE) {
            actives++;
            continue;
        }
        assert_true(i < n);
        size_t plen = make_payload(p, i);
        assert_int_equal(out.len, plen);
        if (plen > 0)
            assert_memory_equal(out.data, p, plen);
        i++;
    }
    assert_int_equal(i, n);
    assert_string_equal(nbio_detail(f), "closed by peer");
    if (read_chunk == 1)
        assert_true(actives > 0);
    nbio_free(f);
}

static void test_every_strategy_one_byte_at_a_time(void **state)
{
    (void)state;
    for (size_t s = 0; s < NSTRAT; s++) {
        size_t len;
        int pendings;
        unsigned char *wire = encode_frames(strategies[s], 200, 1, &len, &pendings);
        assert_true(pendings > 0); /* 1-byte writes push back */
        decode_frames(strategies[s], wire, len, 200, 1);
        decode_frames(strategies[s], wire, len, 200, 7);
        decode_frames(strategies[s], wire, len, 200, 0);
        /* the same bytes written in one go */
        size_t len2;
        unsigned char *wire2 = encode_frames(strategies[s], 200, 0, &len2, &pendings);
        assert_int_equal(len, len2);
        assert_memory_equal(wire, wire2, len);
        free(wire);
        free(wire2);
    }
}

/* Writes one frame with st and checks the exact bytes on the wire. Returns
 * the framing session (over its mock) for more checks; the caller frees it. */
static nbio_session *expect_wire(const nbio_frame_strategy *st, const char *payload,
                                 const void *want, size_t want_len)
{
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(m, st, NULL);
    size_t plen = strlen(payload);
    assert_int_equal(nbio_write_some(f, payload, plen), (long)plen);
    assert_int_equal(nbio_flush(f, 0), NBIO_DONE);
    size_t len;
    const void *out = nbio_mock_output(m, &len);
    assert_int_equal(len, want_len);
    assert_memory_equal(out, want, want_len);
    return f;
}

static void test_wire_formats(void **state)
{
    (void)state;
    static const unsigned char u64[] = {12, 0, 0, 0, 0, 0, 0, 0, 'h', 'e', 'l', 'l', 'o', ' ',
                                        'w', 'o', 'r', 'l', 'd', '!'};
    nbio_free(expect_wire(&nbio_frame_u64le, "hello world!", u64, sizeof u64));
    nbio_free(expect_wire(&nbio_frame_u32be, "ab", "\0\0\0\2ab", 6));
    nbio_free(expect_wire(&nbio_frame_u16be, "abc", "\0\3abc", 5));
    nbio_session *f = expect_wire(&nbio_frame_line, "abc", "abc\n", 4);
    /* a payload with a newline cannot be a line */
    assert_int_equal(nbio_write_some(f, "a\nb", 3), NBIO_EINVAL);
    assert_int_equal(nbio_status(f), NBIO_TERMINATED);
    nbio_free(f);
}

static void test_eof_mid_frame(void **state)
{
    (void)state;
    for (size_t s = 0; s < NSTRAT; s++) {
        nbio_session *m = nbio_mock_new(NULL);
        nbio_session *f = nbio_frame_new(m, strategies[s], NULL);
        size_t len;
        int pendings;
        unsigned char *wire = encode_frames(strategies[s], 3, 0, &len, &pendings);
        /* frames 0 (empty), 1 and part of 2 */
        nbio_mock_feed(m, wire, len - 3);
        nbio_mock_feed_eof(m);
        nbio_buf out;
        int r;
        int frames = 0;
        while ((r = nbio_read(f, &out)) >= 0)
            frames += r == NBIO_DATA;
        assert_int_equal(frames, 2);
        assert_int_equal(r, NBIO_ETRUNCATED);
        assert_non_null(strstr(nbio_detail(f), "middle of a"));
        assert_int_equal(nbio_read(f, &out), NBIO_ETRUNCATED);
        free(wire);
        nbio_free(f);
    }
}

static void test_eof_between_frames_is_clean(void **state)
{
    (void)state;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u32be, NULL);
    nbio_mock_feed(m, "\0\0\0\1x\0\0\0\1y", 10);
    nbio_mock_feed_eof(m);
    nbio_buf out;
    assert_int_equal(nbio_read(f, &out), NBIO_DATA);
    assert_memory_equal(out.data, "x", 1);
    assert_int_equal(nbio_read(f, &out), NBIO_DATA);
    assert_memory_equal(out.data, "y", 1);
    assert_true(nbio_interest(f) & NBIO_READY); /* the close is still to be seen */
    assert_int_equal(nbio_read(f, &out), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_status(f), NBIO_TERMINATED);
    /* reported: a half-closed session that still writes must not look ready */
    assert_false(nbio_interest(f) & NBIO_READY);
    nbio_free(f);
}

static size_t heap_in_use(void)
{
    struct mallinfo2 mi = mallinfo2();
    return mi.uordblks + mi.hblkhd;
}

static void test_oversized_header_rejected_without_allocation(void **state)
{
    (void)state;
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.max_frame = 1 << 20;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u64le, &fo);
    /* claims 32 MiB; only the header ever arrives */
    static const unsigned char hdr[8] = {0, 0, 0, 2, 0, 0, 0, 0};
    nbio_mock_feed(m, hdr, sizeof hdr);
    size_t before = heap_in_use();
    nbio_buf out;
    assert_int_equal(nbio_read(f, &out), NBIO_ETOOLARGE);
    assert_true(heap_in_use() < before + (1 << 20));
    assert_non_null(strstr(nbio_detail(f), "1048576"));
    nbio_free(f);
    /* a 2^63 length from a hostile u64 peer */
    m = nbio_mock_new(NULL);
    f = nbio_frame_new(m, &nbio_frame_u64le, NULL);
    static const unsigned char huge[8] = {0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    nbio_mock_feed(m, huge, sizeof huge);
    assert_int_equal(nbio_read(f, &out), NBIO_ETOOLARGE);
    nbio_free(f);
    /* a line that never ends */
    fo.max_frame = 100;
    m = nbio_mock_new(NULL);
    f = nbio_frame_new(m, &nbio_frame_line, &fo);
    char junk[150];
    memset(junk, 'x', sizeof junk);
    nbio_mock_feed(m, junk, sizeof junk);
    int r;
    while ((r = nbio_read(f, &out)) == NBIO_ACTIVE)
        ;
    assert_int_equal(r, NBIO_ETOOLARGE);
    nbio_free(f);
    /* exactly at the limit is fine */
    m = nbio_mock_new(NULL);
    f = nbio_frame_new(m, &nbio_frame_u16be, &fo);
    unsigned char ok[102] = {0, 100};
    nbio_mock_feed(m, ok, sizeof ok);
    assert_int_equal(nbio_read(f, &out), NBIO_DATA);
    assert_int_equal(out.len, 100);
    nbio_free(f);
}

static void test_oversized_write_rejected(void **state)
{
    (void)state;
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.max_frame = 10;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u32be, &fo);
    assert_int_equal(nbio_write_some(f, "0123456789", 10), 10);
    assert_int_equal(nbio_write_some(f, "0123456789A", 11), NBIO_ETOOLARGE);
    nbio_free(f);
    m = nbio_mock_new(NULL);
    f = nbio_frame_new(m, &nbio_frame_u16be, NULL);
    static unsigned char big[70000];
    assert_int_equal(nbio_write_some(f, big, sizeof big), NBIO_ETOOLARGE);
    nbio_free(f);
}

/* One 888,888-byte frame through a 1,024-byte write buffer and a transport
 * that takes at most 1000 bytes a write and pushes back often. */
static void test_large_frame_through_small_write_buffer(void **state)
{
    (void)state;
    enum { N = 888888 };
    unsigned char *src = malloc(N);
    tu_pattern(src, N, 3);
    nbio_mock_options mo = {.write_chunk = 1000};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_mock_step steps[300];
    for (size_t i = 0; i < 300; i++)
        steps[i] = (nbio_mock_step){i % 3 == 0 ? NBIO_MOCK_WOULDBLOCK : NBIO_MOCK_BYTES, 333, 0};
    nbio_mock_script_write(m, steps, 300);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 1024;
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u64le, &fo);
    /* a small frame first, so the big one must wait for it */
    assert_int_equal(nbio_write_some(f, "first", 5), 5);
    nbio_buf b = {src, N};
    int pendings = 0, r;
    while ((r = nbio_write(f, &b)) == NBIO_PENDING) {
        pendings++;
        assert_ptr_equal(b.data, src + (N - b.len)); /* advanced to the rest */
        /* a different buffer now would be a usage error; resubmit the rest */
        assert_ok_outcome(nbio_drive(f));
    }
    assert_int_equal(r, NBIO_DONE);
    assert_true(pendings > 10);
    assert_int_equal(nbio_write_some(f, "last", 4), 4);
    assert_int_equal(nbio_flush(f, 1000), NBIO_DONE);
    size_t len;
    const unsigned char *out = nbio_mock_output(m, &len);
    assert_int_equal(len, 8 + 5 + 8 + N + 8 + 4);
    assert_memory_equal(out + 8, "first", 5);
    assert_int_equal(out[13], N & 0xff);
    assert_int_equal(out[14], (N >> 8) & 0xff);
    assert_int_equal(out[15], (N >> 16) & 0xff);
    assert_memory_equal(out + 21, src, N);
    assert_memory_equal(out + 21 + N + 8, "last", 4);
    /* and it decodes back through a 1-KiB initial read buffer */
    nbio_mock_options ro = {.read_chunk = 4096};
    nbio_session *m2 = nbio_mock_new(&ro);
    nbio_mock_feed(m2, out, len);
    nbio_frame_options fo2;
    nbio_frame_options_init(&fo2);
    fo2.read_buffer_size = 1024;
    nbio_session *f2 = nbio_frame_new(m2, &nbio_frame_u64le, &fo2);
    nbio_buf in;
    int frames = 0;
    while (frames < 3) {
        r = nbio_read(f2, &in);
        assert_ok_outcome(r);
        if (r != NBIO_DATA)
            continue;
        if (frames == 1) {
            assert_int_equal(in.len, N);
            assert_memory_equal(in.data, src, N);
        }
        frames++;
    }
    assert_memory_equal(in.data, "last", 4);
    nbio_free(f2);
    nbio_free(f);
    free(src);
}

static void test_resubmitting_something_else_is_a_usage_error(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_chunk = 10};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 64;
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u32be, &fo);
    static unsigned char big[1000];
    nbio_buf b = {big, sizeof big};
    assert_int_equal(nbio_write(f, &b), NBIO_PENDING);
    assert_int_equal(nbio_write_some(f, "other", 5), NBIO_EUSAGE);
    assert_non_null(strstr(nbio_detail(f), "pending frame"));
    nbio_free(f);
}

static void test_small_frames_whole_or_nothing(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_limit = 100}; /* the peer stops reading */
    nbio_session *m = nbio_mock_new(&mo);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 64;
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u16be, &fo);
    unsigned char p[20];
    int done = 0, r = NBIO_DONE;
    for (int i = 0; i < 50 && r == NBIO_DONE; i++) {
        memset(p, 'a' + i, sizeof p);
        nbio_buf b = {p, sizeof p};
        r = nbio_write(f, &b);
        assert_ok_outcome(r);
        if (r == NBIO_PENDING) {
            assert_int_equal(b.len, sizeof p); /* untouched */
            assert_ptr_equal(b.data, p);
        } else {
            done++;
        }
    }
    assert_int_equal(r, NBIO_PENDING);
    /* the reader catches up: everything accepted arrives whole */
    assert_true(nbio_interest(f) & NBIO_WANT_WRITE);
    size_t total = 0;
    for (int k = 0; k < 100; k++) {
        size_t len;
        nbio_mock_output(m, &len);
        total += len;
        nbio_mock_consume_output(m, len);
        nbio_drive(f);
    }
    assert_int_equal(total, (size_t)done * 22);
    nbio_free(f);
}

static void test_inner_errors_and_establishment(void **state)
{
    (void)state;
    nbio_mock_options mo = {.establish_after = 3};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u64le, NULL);
    assert_int_equal(nbio_status(f), NBIO_ESTABLISHING);
    /* a frame written while establishing waits in the buffer */
    assert_int_equal(nbio_write_some(f, "early", 5), 5);
    int drives = 0;
    while (nbio_status(f) == NBIO_ESTABLISHING) {
        assert_ok_outcome(nbio_drive(f));
        assert_true(++drives < 10);
    }
    assert_int_equal(nbio_flush(f, 0), NBIO_DONE);
    size_t len;
    nbio_mock_output(m, &len);
    assert_int_equal(len, 13);
    nbio_mock_step err = {NBIO_MOCK_ERROR, 0, NBIO_ECONNRESET};
    nbio_mock_script_read(m, &err, 1);
    nbio_buf out;
    assert_int_equal(nbio_read(f, &out), NBIO_ECONNRESET);
    assert_int_equal(nbio_status(f), NBIO_TERMINATED);
    assert_non_null(strstr(nbio_detail(f), "connection reset"));
    assert_int_equal(nbio_write_some(f, "x", 1), NBIO_ECONNRESET);
    nbio_free(f);
    /* a NULL inner (failed constructor) gives NULL, and a failed inner a
     * terminated frame session carrying its detail */
    assert_null(nbio_frame_new(NULL, &nbio_frame_u64le, NULL));
    f = nbio_frame_new(nbio_tcp_connect("bad", NULL), &nbio_frame_u64le, NULL);
    assert_int_equal(nbio_error(f), NBIO_EINVAL);
    assert_non_null(strstr(nbio_detail(f), "HOST:PORT"));
    nbio_free(f);
}

static void test_close_flushes_then_goodbye(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_chunk = 3};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_line, NULL);
    assert_int_equal(nbio_write_some(f, "one", 3), 3);
    assert_int_equal(nbio_write_some(f, "two", 3), 3);
    int r, rounds = 0;
    while ((r = nbio_close(f)) == NBIO_PENDING)
        assert_true(++rounds < 10);
    assert_int_equal(r, NBIO_DONE);
    assert_true(rounds > 0);
    assert_int_equal(nbio_mock_goodbyes(m), 1);
    size_t len;
    const void *out = nbio_mock_output(m, &len);
    assert_int_equal(len, 8);
    assert_memory_equal(out, "one\ntwo\n", 8);
    assert_int_equal(nbio_error(f), NBIO_ECLOSED);
    assert_int_equal(nbio_close(f), NBIO_DONE); /* idempotent */
    nbio_free(f);
}

/* 100,000 small frames over TCP while the reader reads rarely. */
static void test_slow_consumer_over_tcp(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    /* small kernel buffers, so the slow reader pushes back soon */
    int small = 16384;
    assert_int_equal(setsockopt(nbio_fd(c), SOL_SOCKET, SO_SNDBUF, &small, sizeof small), 0);
    assert_int_equal(setsockopt(nbio_fd(s), SOL_SOCKET, SO_RCVBUF, &small, sizeof small), 0);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 4096;
    c = nbio_frame_new(c, &nbio_frame_u32be, &fo);
    s = nbio_frame_new(s, &nbio_frame_u32be, &fo);
    enum { FRAMES = 100000 };
    uint32_t next_write = 0, next_read = 0;
    int pendings = 0;
    unsigned char p[64];
    int64_t deadline = nbio_now_ms() + 60000;
    unsigned loops = 0;
    while (next_read < FRAMES) {
        if (next_write < FRAMES) {
            size_t len = 4 + next_write % 60;
            memcpy(p, &next_write, 4);
            memset(p + 4, (int)(next_write & 0xff), len - 4);
            nbio_buf b = {p, len};
            int r = nbio_write(c, &b);
            assert_ok_outcome(r);
            if (r == NBIO_DONE)
                next_write++;
            else
                pendings++;
        }
        assert_ok_outcome(nbio_drive(c));
        /* the reader wakes up rarely until the writer is blocked */
        if (++loops % 5000 == 0 || pendings > 0) {
            for (int k = 0; k < 64; k++) {
                nbio_buf out;
                int r = nbio_read(s, &out);
                assert_ok_outcome(r);
                if (r != NBIO_DATA)
                    break;
                uint32_t id;
                assert_true(out.len >= 4);
                memcpy(&id, out.data, 4);
                assert_int_equal(id, next_read);
                assert_int_equal(out.len, 4 + id % 60);
                for (size_t i = 4; i < out.len; i++)
                    assert_int_equal(((const unsigned char *)out.data)[i], id & 0xff);
                next_read++;
            }
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_true(pendings > 0);
    nbio_free(c);
    nbio_free(s);
}

/* Frames over the memory pair, 1 byte per read and per write both ways. */
static void test_frames_over_one_byte_pair(void **state)
{
    (void)state;
    nbio_session *a, *b;
    nbio_pair_options po = {.capacity = 16, .max_read = 1, .max_write = 1};
    assert_int_equal(nbio_pair_new(&a, &b, &po), 0);
    a = nbio_frame_new(a, &nbio_frame_u64le, NULL);
    b = nbio_frame_new(b, &nbio_frame_u64le, NULL);
    unsigned char p[300];
    size_t sent = 0, got = 0;
    int64_t deadline = nbio_now_ms() + 20000;
    while (got < 100) {
        if (sent < 100) {
            size_t len = make_payload(p, sent);
            nbio_buf w = {p, len};
            int r = nbio_write(a, &w);
            assert_ok_outcome(r);
            sent += r == NBIO_DONE;
        }
        assert_ok_outcome(nbio_drive(a));
        nbio_buf out;
        int r = nbio_read(b, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            unsigned char q[300];
            size_t len = make_payload(q, got);
            assert_int_equal(out.len, len);
            if (len)
                assert_memory_equal(out.data, q, len);
            got++;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    /* closing one side: the other sees a clean close after the last frame */
    int r;
    while ((r = nbio_close(a)) == NBIO_PENDING)
        ;
    assert_int_equal(r, NBIO_DONE);
    nbio_buf out;
    while ((r = nbio_read(b, &out)) >= 0)
        ;
    assert_int_equal(r, NBIO_EPEERCLOSED);
    nbio_free(a);
    nbio_free(b);
}

/* A payload stays valid until the next read: it can be echoed straight from
 * the read buffer, also when the echo is streamed and goes pending. */
static void test_echo_from_the_read_buffer(void **state)
{
    (void)state;
    enum { N = 5000 };
    unsigned char *src = malloc(N + 4);
    src[0] = 0, src[1] = 0, src[2] = N >> 8, src[3] = N & 0xff;
    tu_pattern(src + 4, N, 11);
    nbio_mock_options mo = {.write_chunk = 100};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_mock_feed(m, src, N + 4);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 1024; /* the echo is larger: streamed from the payload */
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u32be, &fo);
    nbio_buf in;
    assert_int_equal(nbio_read(f, &in), NBIO_DATA);
    nbio_buf echo = in;
    int r, pendings = 0;
    while ((r = nbio_write(f, &echo)) == NBIO_PENDING) {
        pendings++;
        assert_ok_outcome(nbio_drive(f));
    }
    assert_int_equal(r, NBIO_DONE);
    assert_true(pendings > 0);
    assert_int_equal(nbio_flush(f, 1000), NBIO_DONE);
    size_t len;
    const void *out = nbio_mock_output(m, &len);
    assert_int_equal(len, N + 4);
    assert_memory_equal(out, src, N + 4);
    nbio_free(f);
    free(src);
}

/* A limit near SIZE_MAX must not let header + payload wrap around. */
static void test_limits_near_size_max(void **state)
{
    (void)state;
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.max_frame = SIZE_MAX;
    nbio_session *m = nbio_mock_new(NULL);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u64le, &fo);
    static const unsigned char h[8] = {0xfc, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff};
    nbio_mock_feed(m, h, sizeof h);
    nbio_buf out;
    assert_int_equal(nbio_read(f, &out), NBIO_ETOOLARGE);
    nbio_free(f);
    /* and ordinary frames still pass under such a limit */
    enum { N = 100000 };
    unsigned char *p = malloc(N + 4);
    p[0] = 0, p[1] = (N >> 16) & 0xff, p[2] = (N >> 8) & 0xff, p[3] = N & 0xff;
    tu_pattern(p + 4, N, 9);
    m = nbio_mock_new(NULL);
    f = nbio_frame_new(m, &nbio_frame_u32be, &fo);
    nbio_mock_feed(m, p, N + 4);
    int r;
    while ((r = nbio_read(f, &out)) == NBIO_ACTIVE)
        ;
    assert_int_equal(r, NBIO_DATA);
    assert_int_equal(out.len, N);
    assert_memory_equal(out.data, p + 4, N);
    assert_int_equal(nbio_write_some(f, p + 4, N), N);
    nbio_free(f);
    free(p);
}

static void test_close_in_the_middle_of_a_streamed_frame(void **state)
{
    (void)state;
    nbio_mock_options mo = {.write_chunk = 1000};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.write_buffer_size = 64;
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u32be, &fo);
    static unsigned char big[5000];
    nbio_buf b = {big, sizeof big};
    assert_int_equal(nbio_write(f, &b), NBIO_PENDING);
    /* a goodbye now would cut the frame: refused, loudly */
    assert_int_equal(nbio_close(f), NBIO_EUSAGE);
    assert_non_null(strstr(nbio_detail(f), "still owed"));
    assert_int_equal(nbio_mock_goodbyes(m), 0);
    nbio_free(f);
}

static void test_bad_strategy_is_a_terminated_session(void **state)
{
    (void)state;
    nbio_session *f = nbio_frame_new(nbio_mock_new(NULL), NULL, NULL);
    assert_non_null(f);
    assert_int_equal(nbio_status(f), NBIO_TERMINATED);
    assert_int_equal(nbio_error(f), NBIO_EINVAL);
    nbio_buf out;
    assert_int_equal(nbio_read(f, &out), NBIO_EINVAL);
    nbio_frame_strategy wide = nbio_frame_u64le;
    wide.max_header = 1000;
    nbio_free(f);
    f = nbio_frame_new(nbio_mock_new(NULL), &wide, NULL);
    assert_int_equal(nbio_error(f), NBIO_EINVAL);
    nbio_free(f);
}

/* Heap held by 50 framed sessions that each sent and received one frame and
 * then went idle. */
static size_t idle_heap(bool release)
{
    enum { N = 50 };
    nbio_session *f[N];
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.release_buffers = release;
    size_t before = heap_in_use();
    for (int i = 0; i < N; i++) {
        nbio_session *m = nbio_mock_new(NULL);
        f[i] = nbio_frame_new(m, &nbio_frame_u32be, &fo);
        assert_int_equal(nbio_write_some(f[i], "ping", 4), 4);
        assert_int_equal(nbio_flush(f[i], 0), NBIO_DONE);
        size_t len;
        nbio_mock_output(m, &len);
        assert_int_equal(len, 8);
        nbio_mock_feed(m, "\0\0\0\4pong", 8);
        nbio_buf out;
        assert_int_equal(nbio_read(f[i], &out), NBIO_DATA);
        assert_memory_equal(out.data, "pong", 4);
        assert_int_equal(nbio_read(f[i], &out), NBIO_IDLE);
    }
    size_t used = heap_in_use() - before;
    for (int i = 0; i < N; i++)
        nbio_free(f[i]);
    return used;
}

static void test_release_buffers_when_idle(void **state)
{
    (void)state;
    size_t kept = idle_heap(false), released = idle_heap(true);
    /* each idle session gives back its 64 KiB read and write buffers (the
     * mock transport keeps its own); mallinfo2 sees glibc's heap only, not a
     * sanitizer's */
    if (kept >= 50 * 65536)
        assert_true(released + 50 * 120000 < kept);
    /* and a released session still works both ways after going idle */
    nbio_frame_options fo;
    nbio_frame_options_init(&fo);
    fo.release_buffers = true;
    size_t len;
    int pendings;
    unsigned char *wire = encode_frames(&nbio_frame_u16be, 100, 3, &len, &pendings);
    nbio_mock_options mo = {.read_chunk = 5};
    nbio_session *m = nbio_mock_new(&mo);
    nbio_session *f = nbio_frame_new(m, &nbio_frame_u16be, &fo);
    unsigned char p[300];
    size_t i = 0, fed = 0;
    while (i < 100) {
        nbio_buf out;
        int r = nbio_read(f, &out);
        assert_ok_outcome(r);
        if (r == NBIO_IDLE && fed < len) { /* trickle: idle between bursts */
            size_t n = len - fed < 97 ? len - fed : 97;
            nbio_mock_feed(m, wire + fed, n);
            fed += n;
        } else if (r == NBIO_DATA) {
            size_t plen = make_payload(p, i++);
            assert_int_equal(out.len, plen);
            if (plen)
                assert_memory_equal(out.data, p, plen);
            assert_int_equal(nbio_write_some(f, out.data, out.len), (long)out.len);
            assert_int_equal(nbio_drive(f), NBIO_ACTIVE);
        }
    }
    size_t olen;
    const void *echoed = nbio_mock_output(m, &olen);
    assert_int_equal(olen, len);
    assert_memory_equal(echoed, wire, len);
    free(wire);
    nbio_free(f);
}

static void test_strategy_lookup(void **state)
{
    (void)state;
    assert_ptr_equal(nbio_frame_strategy_named("u64"), &nbio_frame_u64le);
    assert_ptr_equal(nbio_frame_strategy_named("line"), &nbio_frame_line);
    assert_null(nbio_frame_strategy_named("u8"));
    assert_null(nbio_frame_strategy_named(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_strategy_one_byte_at_a_time),
        cmocka_unit_test(test_wire_formats),
        cmocka_unit_test(test_eof_mid_frame),
        cmocka_unit_test(test_eof_between_frames_is_clean),
        cmocka_unit_test(test_oversized_header_rejected_without_allocation),
        cmocka_unit_test(test_oversized_write_rejected),
        cmocka_unit_test(test_large_frame_through_small_write_buffer),
        cmocka_unit_test(test_resubmitting_something_else_is_a_usage_error),
        cmocka_unit_test(test_small_frames_whole_or_nothing),
        cmocka_unit_test(test_inner_errors_and_establishment),
        cmocka_unit_test(test_close_flushes_then_goodbye),
        cmocka_unit_test(test_slow_consumer_over_tcp),
        cmocka_unit_test(test_frames_over_one_byte_pair),
        cmocka_unit_test(test_echo_from_the_read_buffer),
        cmocka_unit_test(test_limits_near_size_max),
        cmocka_unit_test(test_close_in_the_middle_of_a_streamed_frame),
        cmocka_unit_test(test_bad_strategy_is_a_terminated_session),
        cmocka_unit_test(test_release_buffers_when_idle),
        cmocka_unit_test(test_strategy_lookup),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
