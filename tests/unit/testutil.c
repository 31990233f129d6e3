/* Helpers shared by the unit tests. */
#include <stdio.h>
#include <string.h>

#include "nbio/tcp.h"
#include "testutil.h"

void tu_pattern(unsigned char *buf, size_t len, uint32_t seed)
{
    uint32_t x = seed * 2654435761u + 1;
    for (size_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        buf[i] = (unsigned char)x;
    }
}

void tu_pump_until(nbio_session *a, nbio_session *b, int (*pred)(void *), void *arg, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    while (!pred(arg)) {
        if (a != NULL)
            assert_ok_outcome(nbio_drive(a));
        if (b != NULL)
            assert_ok_outcome(nbio_drive(b));
        if (nbio_now_ms() > deadline)
            fail_msg("timed out after %d ms", ms);
    }
}

void tu_establish(nbio_session *s, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    while (nbio_status(s) == NBIO_ESTABLISHING) {
        int r = nbio_drive(s);
        if (r < 0)
            fail_msg("establish failed: %s (%s)", nbio_errname(r), nbio_detail(s));
        if (nbio_now_ms() > deadline)
            fail_msg("establish timed out");
        nbio_session *one[1] = {s};
        nbio_wait(one, 1, 10);
    }
    assert_int_equal(nbio_status(s), NBIO_ESTABLISHED);
}

void tu_write_all(nbio_session *s, const void *data, size_t len, nbio_session *also,
                  void (*also_step)(void *), void *arg, int ms)
{
    int64_t deadline = nbio_now_ms() + ms;
    nbio_buf b = {data, len};
    for (;;) {
        int r = nbio_write(s, &b);
        if (r < 0)
            fail_msg("write failed: %s (%s)", nbio_errname(r), nbio_detail(s));
        if (r == NBIO_DONE)
            break;
        if (also != NULL)
            assert_ok_outcome(nbio_drive(also));
        if (also_step != NULL)
            also_step(arg);
        if (nbio_now_ms() > deadline)
            fail_msg("write timed out");
    }
}

void tu_tcp_pair(nbio_session **client, nbio_session **server, int ipv6)
{
    nbio_session *l = nbio_tcp_listen(ipv6 ? "[::1]:0" : "127.0.0.1:0", NULL);
    assert_non_null(l);
    if (nbio_error(l) != 0)
        fail_msg("listen: %s", nbio_detail(l));
    char addr[128];
    int port = nbio_local_address(l, addr, sizeof addr);
    assert_true(port > 0);
    *client = nbio_tcp_connect(addr, NULL);
    assert_non_null(*client);
    *server = NULL;
    int64_t deadline = nbio_now_ms() + 5000;
    while (*server == NULL || nbio_status(*client) == NBIO_ESTABLISHING) {
        if (*server == NULL) {
            int r = nbio_accept(l, server);
            assert_ok_outcome(r);
        }
        int r = nbio_drive(*client);
        if (r < 0)
            fail_msg("connect: %s", nbio_detail(*client));
        if (nbio_now_ms() > deadline)
            fail_msg("tcp pair timed out");
    }
    nbio_free(l);
}
