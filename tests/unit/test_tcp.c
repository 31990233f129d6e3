/* TCP and Unix-socket sessions: transfers, peer close, connect failures,
 * name resolution, IPv6, listeners. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "nbio/tcp.h"
#include "testutil.h"

/* Moves bytes both ways between a and b until each received `total` bytes;
 * checks them against the pattern each side sent. */
static void exchange(nbio_session *a, nbio_session *b, size_t total)
{
    const int expect_pending = total >= 9000000;
    unsigned char *src_a = malloc(total), *src_b = malloc(total);
    unsigned char *got_a = malloc(total), *got_b = malloc(total);
    assert_non_null(src_a);
    assert_non_null(src_b);
    assert_non_null(got_a);
    assert_non_null(got_b);
    tu_pattern(src_a, total, 1);
    tu_pattern(src_b, total, 2);
    nbio_buf wa = {src_a, total}, wb = {src_b, total};
    size_t ra = 0, rb = 0;
    int pending_seen = 0;
    int64_t deadline = nbio_now_ms() + 60000;
    while (ra < total || rb < total || wa.len > 0 || wb.len > 0) {
        if (wa.len > 0) {
            int r = nbio_write(a, &wa);
            assert_ok_outcome(r);
            pending_seen += r == NBIO_PENDING;
        }
        if (wb.len > 0)
            assert_ok_outcome(nbio_write(b, &wb));
        nbio_buf out;
        int r = nbio_read(a, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            assert_true(ra + out.len <= total);
            memcpy(got_a + ra, out.data, out.len);
            ra += out.len;
        }
        r = nbio_read(b, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            assert_true(rb + out.len <= total);
            memcpy(got_b + rb, out.data, out.len);
            rb += out.len;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_memory_equal(got_a, src_b, total);
    assert_memory_equal(got_b, src_a, total);
    if (expect_pending)
        assert_true(pending_seen > 0); /* 10 MB cannot fit the socket buffers */
    free(src_a);
    free(src_b);
    free(got_a);
    free(got_b);
}

static void test_transfer_9999999_bytes(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    assert_string_equal(nbio_kind(c), "tcp");
    exchange(c, s, 9999999);
    nbio_free(c);
    nbio_free(s);
}

static void test_ipv6_loopback(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 1);
    char addr[128];
    int port = nbio_local_address(s, addr, sizeof addr);
    assert_true(port > 0);
    assert_true(strncmp(addr, "[::1]:", 6) == 0);
    assert_int_equal(nbio_peer_address(c, addr, sizeof addr), port);
    exchange(c, s, 3000000);
    nbio_free(c);
    nbio_free(s);
}

/* Reads one chunk, waiting up to ms; returns the outcome. */
static int read_wait(nbio_session *s, nbio_buf *out, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    for (;;) {
        int r = nbio_read(s, out);
        if (r != NBIO_IDLE || nbio_now_ms() > deadline)
            return r;
        nbio_session *one[1] = {s};
        nbio_wait(one, 1, 10);
    }
}

static void test_peer_close_and_half_close(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    assert_int_equal(nbio_write_some(c, "bye", 3), 3);
    assert_int_equal(nbio_shutdown(c), NBIO_DONE);
    assert_int_equal(nbio_write_some(c, "x", 1), NBIO_ECLOSED); /* write side is closed */
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHED);         /* still reading */

    nbio_buf out;
    assert_int_equal(read_wait(s, &out, 5000), NBIO_DATA);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "bye", 3);
    assert_int_equal(read_wait(s, &out, 5000), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_status(s), NBIO_TERMINATED);
    assert_int_equal(nbio_error(s), NBIO_EPEERCLOSED);
    assert_string_equal(nbio_detail(s), "closed by peer");
    /* every later read says the same */
    assert_int_equal(nbio_read(s, &out), NBIO_EPEERCLOSED);
    /* the write direction still works after the peer half-closed */
    assert_int_equal(nbio_write_some(s, "ack", 3), 3);
    assert_int_equal(nbio_close(s), NBIO_DONE);
    assert_int_equal(nbio_error(s), NBIO_ECLOSED);
    assert_int_equal(nbio_write_some(s, "x", 1), NBIO_ECLOSED);

    assert_int_equal(read_wait(c, &out, 5000), NBIO_DATA);
    assert_int_equal(out.len, 3);
    assert_memory_equal(out.data, "ack", 3);
    assert_int_equal(read_wait(c, &out, 5000), NBIO_EPEERCLOSED);
    assert_int_equal(nbio_close(c), NBIO_DONE);
    nbio_free(c);
    nbio_free(s);
}

static void test_reset_is_an_error_without_sigpipe(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    /* unread data at close makes the kernel send a reset */
    assert_int_equal(nbio_write_some(c, "unread", 6), 6);
    nbio_buf out;
    int64_t deadline = nbio_now_ms() + 2000;
    while (nbio_now_ms() < deadline)
        if (nbio_interest(s) & NBIO_READY || nbio_wait(&s, 1, 10) > 0)
            break;
    nbio_free(s);
    int r = 0;
    static char big[65536];
    for (int i = 0; i < 1000 && r >= 0; i++) {
        r = nbio_read(c, &out);
        if (r >= 0)
            r = (int)nbio_write_some(c, big, sizeof big);
        usleep(1000);
    }
    assert_true(r == NBIO_ECONNRESET || r == NBIO_EPIPE || r == NBIO_EPEERCLOSED);
    assert_int_equal(nbio_status(c), NBIO_TERMINATED);
    nbio_free(c);
}

static int free_port(void)
{
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64];
    int port = nbio_local_address(l, addr, sizeof addr);
    nbio_free(l);
    return port;
}

static int run_to_error(nbio_session *s, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    while (nbio_status(s) == NBIO_ESTABLISHING && nbio_now_ms() < deadline) {
        int r = nbio_drive(s);
        if (r < 0)
            return r;
        nbio_wait(&s, 1, 10);
    }
    return nbio_error(s);
}

static void test_connect_refused(void **state)
{
    (void)state;
    char addr[64];
    snprintf(addr, sizeof addr, "127.0.0.1:%d", free_port());
    nbio_session *c = nbio_tcp_connect(addr, NULL);
    assert_non_null(c);
    assert_int_equal(run_to_error(c, 5000), NBIO_ECONNREFUSED);
    assert_int_equal(nbio_status(c), NBIO_TERMINATED);
    assert_non_null(strstr(nbio_detail(c), addr));
    assert_non_null(strstr(nbio_detail(c), "connection refused"));
    /* every verb now reports the same error */
    nbio_buf out;
    assert_int_equal(nbio_read(c, &out), NBIO_ECONNREFUSED);
    assert_int_equal(nbio_write_some(c, "x", 1), NBIO_ECONNREFUSED);
    assert_int_equal(nbio_drive(c), NBIO_ECONNREFUSED);
    assert_int_equal(nbio_flush(c, 10), NBIO_ECONNREFUSED);
    assert_string_equal(nbio_errname(nbio_error(c)), "NBIO_ECONNREFUSED");
    nbio_free(c);
}

/* A tiny DNS server on 127.0.0.1 that answers every query with NXDOMAIN
 * (or stays silent), stepped from the test's loop. */
typedef struct fake_dns {
    int fd;
    int silent;
    int answer; /* answer A with 127.0.0.1 and AAAA with ::1 */
    int queries;
    char servers[64];
} fake_dns;

static void fake_dns_open(fake_dns *d, int silent)
{
    d->fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK, 0);
    assert_true(d->fd >= 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(d->fd, (struct sockaddr *)&a, sizeof a), 0);
    socklen_t len = sizeof a;
    assert_int_equal(getsockname(d->fd, (struct sockaddr *)&a, &len), 0);
    snprintf(d->servers, sizeof d->servers, "127.0.0.1:%u", (unsigned)ntohs(a.sin_port));
    d->silent = silent;
    d->answer = 0;
    d->queries = 0;
}

static void fake_dns_step(fake_dns *d)
{
    unsigned char q[512];
    struct sockaddr_storage from;
    socklen_t fl = sizeof from;
    ssize_t n = recvfrom(d->fd, q, sizeof q, 0, (struct sockaddr *)&from, &fl);
    if (n < 12)
        return;
    d->queries++;
    if (d->silent)
        return;
    q[2] = (unsigned char)(0x80 | (q[2] & 0x79)); /* QR, keep opcode and RD */
    q[3] = 0x83;                                   /* RA, RCODE=NXDOMAIN */
    memset(q + 6, 0, 6);                           /* no answer/authority/additional */
    size_t end = 12;                               /* end of the question */
    while (end < (size_t)n && q[end] != 0)
        end += 1u + q[end];
    end += 5;
    if (d->answer && end <= (size_t)n && end + 28 <= sizeof q) {
        int aaaa = q[end - 3] == 28;
        static const unsigned char v4[4] = {127, 0, 0, 1};
        static const unsigned char v6[16] = {[15] = 1};
        unsigned char rr[12] = {0xc0, 12, 0, aaaa ? 28 : 1, 0, 1, 0, 0, 0, 60, 0,
                                aaaa ? 16 : 4};
        q[3] = 0x80; /* RA, no error */
        q[7] = 1;    /* one answer */
        memcpy(q + end, rr, sizeof rr);
        memcpy(q + end + 12, aaaa ? v6 : v4, aaaa ? 16 : 4);
        n = (ssize_t)(end + 12 + (aaaa ? 16 : 4));
    }
    (void)sendto(d->fd, q, (size_t)n, 0, (struct sockaddr *)&from, fl);
}

static int resolve_with(fake_dns *d, nbio_session *c, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    while (nbio_status(c) == NBIO_ESTABLISHING && nbio_now_ms() < deadline) {
        fake_dns_step(d);
        int r = nbio_drive(c);
        if (r < 0)
            return r;
        usleep(500);
    }
    return nbio_error(c);
}

static void test_name_that_does_not_resolve(void **state)
{
    (void)state;
    fake_dns d;
    fake_dns_open(&d, 0);
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.dns_servers = d.servers;
    nbio_session *c = nbio_tcp_connect("no-such-host.invalid:80", &o);
    assert_non_null(c);
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHING); /* creation never blocks */
    assert_int_equal(resolve_with(&d, c, 10000), NBIO_ERESOLVE);
    assert_true(d.queries > 0);
    assert_non_null(strstr(nbio_detail(c), "no-such-host.invalid"));
    assert_string_equal(nbio_errname(NBIO_ERESOLVE), "NBIO_ERESOLVE");
    nbio_free(c);
    close(d.fd);
}

/* A name with an AAAA (nobody listens there) and an A record (a listener):
 * every address is tried in turn until one connects. */
static void test_every_resolved_address_is_tried(void **state)
{
    (void)state;
    fake_dns d;
    fake_dns_open(&d, 0);
    d.answer = 1;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64], name[64];
    int port = nbio_local_address(l, addr, sizeof addr);
    snprintf(name, sizeof name, "dual.test:%d", port);
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.dns_servers = d.servers;
    nbio_session *c = nbio_tcp_connect(name, &o);
    assert_int_equal(resolve_with(&d, c, 10000), 0);
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHED);
    assert_int_equal(d.queries, 2); /* A and AAAA */
    char peer[64];
    assert_int_equal(nbio_peer_address(c, peer, sizeof peer), port);
    assert_string_equal(peer, addr);
    nbio_free(c);
    /* when every address refuses, the detail names the host and the last try */
    nbio_free(l);
    c = nbio_tcp_connect(name, &o);
    assert_int_equal(resolve_with(&d, c, 10000), NBIO_ECONNREFUSED);
    assert_non_null(strstr(nbio_detail(c), name));
    assert_non_null(strstr(nbio_detail(c), "connection refused"));
    nbio_free(c);
    close(d.fd);
}

static void test_resolve_times_out(void **state)
{
    (void)state;
    fake_dns d;
    fake_dns_open(&d, 1);
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.dns_servers = d.servers;
    o.connect_timeout_ms = 300;
    int64_t t0 = nbio_now_ms();
    nbio_session *c = nbio_tcp_connect("slow.example:80", &o);
    assert_int_equal(resolve_with(&d, c, 10000), NBIO_ETIMEDOUT);
    assert_true(nbio_now_ms() - t0 < 3000);
    assert_non_null(strstr(nbio_detail(c), "slow.example"));
    nbio_free(c);
    close(d.fd);
}

static void test_localhost_by_name(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("localhost:0", NULL);
    assert_int_equal(nbio_error(l), 0);
    char addr[64], name[64];
    int port = nbio_local_address(l, addr, sizeof addr);
    snprintf(name, sizeof name, "localhost:%d", port);
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.family = AF_INET;
    nbio_session *c = nbio_tcp_connect(name, &o);
    tu_establish(c, 5000);
    nbio_session *s = NULL;
    int64_t deadline = nbio_now_ms() + 5000;
    while (s == NULL && nbio_now_ms() < deadline)
        assert_ok_outcome(nbio_accept(l, &s));
    assert_non_null(s);
    exchange(c, s, 2000000);
    nbio_free(c);
    nbio_free(s);
    nbio_free(l);
}

static void expect_invalid(const char *addr, const char *why)
{
    nbio_session *c = nbio_tcp_connect(addr, NULL);
    assert_non_null(c);
    assert_int_equal(nbio_status(c), NBIO_TERMINATED);
    assert_int_equal(nbio_error(c), NBIO_EINVAL);
    if (strstr(nbio_detail(c), why) == NULL)
        fail_msg("detail for '%s' is '%s', expected '%s'", addr, nbio_detail(c), why);
    nbio_free(c);
}

static void test_malformed_addresses(void **state)
{
    (void)state;
    expect_invalid("no-port", "HOST:PORT");
    expect_invalid("::1:80", "brackets");
    expect_invalid("127.0.0.1:99999", "port");
    expect_invalid("127.0.0.1:http", "port");
    expect_invalid(":80", "no host");
    expect_invalid("[::1:80", "[IPv6]:PORT");
}

static void test_listener_errors(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64];
    nbio_local_address(l, addr, sizeof addr);
    nbio_listen_options lo;
    nbio_listen_options_init(&lo);
    lo.reuseaddr = false;
    nbio_session *l2 = nbio_tcp_listen(addr, &lo);
    assert_int_equal(nbio_error(l2), NBIO_EADDRINUSE);
    assert_non_null(strstr(nbio_detail(l2), addr));
    nbio_session *out = (nbio_session *)1;
    assert_int_equal(nbio_accept(l2, &out), NBIO_EADDRINUSE);
    assert_null(out);
    nbio_free(l2);
    nbio_session *l3 = nbio_tcp_listen("example.com:0", NULL);
    assert_int_equal(nbio_error(l3), NBIO_EINVAL);
    nbio_free(l3);
    /* a listener carries no bytes */
    nbio_buf b;
    assert_int_equal(nbio_read(l, &b), NBIO_EUNSUPPORTED);
    assert_int_equal(nbio_accept(l, &out), NBIO_IDLE);
    assert_true(nbio_fd(l) >= 0);
    assert_true(nbio_interest(l) & NBIO_WANT_READ);
    nbio_free(l);
}

static void test_pending_write_resubmission(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    enum { CHUNK = 100000, MAX = 200 };
    unsigned char *src = malloc((size_t)CHUNK * MAX);
    tu_pattern(src, (size_t)CHUNK * MAX, 7);
    /* write without reading until the socket pushes back */
    nbio_buf w = {src, (size_t)CHUNK * MAX};
    int r = nbio_write(c, &w); /* 20 MB cannot fit the socket buffers */
    assert_int_equal(r, NBIO_PENDING);
    assert_true(w.len > 0 && w.len < (size_t)CHUNK * MAX);
    assert_ptr_equal(w.data, src + ((size_t)CHUNK * MAX - w.len));
    assert_true(nbio_interest(c) & NBIO_WANT_WRITE);
    /* now drain on the server while resubmitting the rest */
    size_t got = 0, total = (size_t)CHUNK * MAX;
    unsigned char *dst = malloc(total);
    int64_t deadline = nbio_now_ms() + 30000;
    while (got < total) {
        if (w.len > 0)
            assert_ok_outcome(nbio_write(c, &w));
        nbio_buf out;
        r = nbio_read(s, &out);
        assert_ok_outcome(r);
        if (r == NBIO_DATA) {
            assert_true(got + out.len <= total);
            memcpy(dst + got, out.data, out.len);
            got += out.len;
        }
        assert_true(nbio_now_ms() < deadline);
    }
    assert_memory_equal(dst, src, total);
    free(src);
    free(dst);
    nbio_free(c);
    nbio_free(s);
}

static void unix_roundtrip(const char *path)
{
    nbio_session *l = nbio_unix_listen(path, NULL);
    assert_non_null(l);
    if (nbio_error(l) != 0)
        fail_msg("listen %s: %s", path, nbio_detail(l));
    char addr[128];
    assert_int_equal(nbio_local_address(l, addr, sizeof addr), 0);
    assert_string_equal(addr, path);
    nbio_session *c = nbio_unix_connect(path, NULL);
    assert_string_equal(nbio_kind(c), "unix");
    nbio_session *s = NULL;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((s == NULL || nbio_status(c) == NBIO_ESTABLISHING) && nbio_now_ms() < deadline) {
        if (s == NULL)
            assert_ok_outcome(nbio_accept(l, &s));
        assert_ok_outcome(nbio_drive(c));
    }
    assert_non_null(s);
    assert_int_equal(nbio_status(c), NBIO_ESTABLISHED);
    exchange(c, s, 4000000);
    assert_int_equal(nbio_shutdown(c), NBIO_DONE);
    nbio_buf out;
    assert_int_equal(read_wait(s, &out, 5000), NBIO_EPEERCLOSED);
    nbio_free(c);
    nbio_free(s);
    nbio_free(l);
}

static void test_unix_socket(void **state)
{
    (void)state;
    char dir[] = "/tmp/nbio-test-XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[128];
    snprintf(path, sizeof path, "%s/sock", dir);
    unix_roundtrip(path);
    assert_int_equal(access(path, F_OK), -1); /* the listener removed its file */
    /* connecting to a path nobody listens on */
    nbio_session *c = nbio_unix_connect(path, NULL);
    assert_int_equal(run_to_error(c, 2000), NBIO_ENOENT);
    assert_non_null(strstr(nbio_detail(c), path));
    nbio_free(c);
    rmdir(dir);
    snprintf(path, sizeof path, "@nbio-test-%d", (int)getpid());
    unix_roundtrip(path);
}

/* A Unix listener whose backlog is full: connects wait (and time out), they
 * never pretend to be established. */
static void test_unix_backlog_full(void **state)
{
    (void)state;
    char path[64];
    snprintf(path, sizeof path, "@nbio-backlog-%d", (int)getpid());
    nbio_listen_options lo;
    nbio_listen_options_init(&lo);
    lo.backlog = 1;
    nbio_session *l = nbio_unix_listen(path, &lo);
    assert_int_equal(nbio_error(l), 0);
    nbio_tcp_options o;
    nbio_tcp_options_init(&o);
    o.connect_timeout_ms = 300;
    enum { N = 8 };
    nbio_session *c[N];
    for (int i = 0; i < N; i++)
        c[i] = nbio_unix_connect(path, &o);
    int64_t deadline = nbio_now_ms() + 5000;
    int busy = 1;
    while (busy && nbio_now_ms() < deadline) {
        busy = 0;
        for (int i = 0; i < N; i++)
            if (nbio_status(c[i]) == NBIO_ESTABLISHING) {
                busy = 1;
                (void)nbio_drive(c[i]);
            }
        usleep(1000);
    }
    int established = 0, timed_out = 0;
    for (int i = 0; i < N; i++) {
        if (nbio_status(c[i]) == NBIO_ESTABLISHED) {
            established++;
            assert_int_equal(nbio_write_some(c[i], "x", 1), 1); /* really connected */
        } else {
            assert_int_equal(nbio_error(c[i]), NBIO_ETIMEDOUT);
            assert_non_null(strstr(nbio_detail(c[i]), path));
            timed_out++;
        }
        nbio_free(c[i]);
    }
    assert_true(established >= 1);
    assert_true(timed_out >= 1);
    nbio_free(l);
}

/* Out of file descriptors, a connection must not stay queued (a poll loop
 * would spin on the readable listener): it is dropped, the listener lives
 * on and accepts again once descriptors are free. */
static void test_accept_out_of_descriptors(void **state)
{
    (void)state;
    nbio_session *l = nbio_tcp_listen("127.0.0.1:0", NULL);
    char addr[64];
    nbio_local_address(l, addr, sizeof addr);
    nbio_session *c = nbio_tcp_connect(addr, NULL);
    tu_establish(c, 5000);
    struct rlimit old, low;
    assert_int_equal(getrlimit(RLIMIT_NOFILE, &old), 0);
    int probe = dup(0); /* the lowest free descriptor: everything below is in use */
    assert_true(probe >= 0);
    close(probe);
    low = old;
    low.rlim_cur = (rlim_t)probe;
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &low), 0);
    nbio_session *s = NULL;
    int r = nbio_accept(l, &s);
    assert_int_equal(setrlimit(RLIMIT_NOFILE, &old), 0);
    assert_int_equal(r, NBIO_EMFILE);
    assert_null(s);
    assert_int_equal(nbio_error(l), 0);
    /* the queued connection was dropped: nothing left to accept, no spin */
    assert_int_equal(nbio_accept(l, &s), NBIO_IDLE);
    nbio_buf out;
    int64_t deadline = nbio_now_ms() + 5000;
    while ((r = nbio_read(c, &out)) == NBIO_IDLE && nbio_now_ms() < deadline)
        nbio_wait(&c, 1, 10);
    assert_true(r == NBIO_EPEERCLOSED || r == NBIO_ECONNRESET);
    nbio_free(c);
    /* and a new client is accepted as usual */
    c = nbio_tcp_connect(addr, NULL);
    tu_establish(c, 5000);
    while ((r = nbio_accept(l, &s)) == NBIO_IDLE && nbio_now_ms() < deadline)
        nbio_wait(&l, 1, 10);
    assert_int_equal(r, NBIO_DATA);
    nbio_free(s);
    nbio_free(c);
    nbio_free(l);
}

static void test_interest_and_fd(void **state)
{
    (void)state;
    nbio_session *c, *s;
    tu_tcp_pair(&c, &s, 0);
    assert_true(nbio_fd(c) >= 0);
    assert_int_equal(nbio_interest(c), NBIO_WANT_READ);
    /* nothing to read: a bounded wait times out */
    assert_int_equal(nbio_wait(&s, 1, 20), 0);
    assert_int_equal(nbio_write_some(c, "ping", 4), 4);
    assert_int_equal(nbio_wait(&s, 1, 5000), 1);
    /* reads on hold: the arrived bytes do not wake a masked wait */
    const unsigned no_reads = ~(unsigned)NBIO_WANT_READ;
    assert_int_equal(nbio_wait_masked(&s, &no_reads, 1, 20), 0);
    const unsigned all = ~0u;
    assert_int_equal(nbio_wait_masked(&s, &all, 1, 5000), 1);
    assert_int_equal(nbio_flush(c, 1000), NBIO_DONE);
    nbio_free(c);
    nbio_free(s);
}

static void test_stream_from_fd(void **state)
{
    (void)state;
    int sv[2];
    assert_int_equal(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
    nbio_session *a = nbio_stream_from_fd(sv[0], NULL);
    nbio_session *b = nbio_stream_from_fd(sv[1], NULL);
    assert_int_equal(nbio_status(a), NBIO_ESTABLISHED);
    exchange(a, b, 1000000);
    nbio_free(a);
    nbio_free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_transfer_9999999_bytes),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_peer_close_and_half_close),
        cmocka_unit_test(test_reset_is_an_error_without_sigpipe),
        cmocka_unit_test(test_connect_refused),
        cmocka_unit_test(test_name_that_does_not_resolve),
        cmocka_unit_test(test_every_resolved_address_is_tried),
        cmocka_unit_test(test_resolve_times_out),
        cmocka_unit_test(test_localhost_by_name),
        cmocka_unit_test(test_malformed_addresses),
        cmocka_unit_test(test_listener_errors),
        cmocka_unit_test(test_pending_write_resubmission),
        cmocka_unit_test(test_unix_socket),
        cmocka_unit_test(test_unix_backlog_full),
        cmocka_unit_test(test_accept_out_of_descriptors),
        cmocka_unit_test(test_interest_and_fd),
        cmocka_unit_test(test_stream_from_fd),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
