/* Helpers shared by the unit tests. */
#ifndef NBIO_TESTUTIL_H
#define NBIO_TESTUTIL_H

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "nbio/nbio.h"

/* Fills buf with a deterministic pattern starting at offset `seed`. */
void tu_pattern(unsigned char *buf, size_t len, uint32_t seed);

/* Drives a and b (either may be NULL) until pred(arg) is true or ms pass.
 * Fails the test on timeout. */
void tu_pump_until(nbio_session *a, nbio_session *b, int (*pred)(void *), void *arg, int ms);

/* Drives s until it is established; fails the test otherwise. */
void tu_establish(nbio_session *s, int ms);

/* Writes all of data (driving `also` meanwhile, e.g. the peer that must
 * read), with a deadline; fails the test on error or timeout. */
void tu_write_all(nbio_session *s, const void *data, size_t len, nbio_session *also,
                  void (*also_step)(void *), void *arg, int ms);

/* Creates a connected TCP pair over loopback (v6 when ipv6). */
void tu_tcp_pair(nbio_session **client, nbio_session **server, int ipv6);

#define assert_ok_outcome(r) \
    do { \
        int r__ = (r); \
        if (r__ < 0) \
            fail_msg("unexpected error %d %s", r__, nbio_errname(r__)); \
    } while (0)

#endif
