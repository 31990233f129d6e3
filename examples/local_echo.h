/*
 * A tiny in-process echo peer, so each example runs on its own: a listener
 * on 127.0.0.1 (a free port) and one accepted connection whose bytes are
 * sent back. The example calls local_echo_drive() while its client waits;
 * everything runs in one thread and nothing blocks.
 *
 * This is plumbing for the examples; the interesting code is in the
 * examples themselves.
 */
#ifndef NBIO_EXAMPLES_LOCAL_ECHO_H
#define NBIO_EXAMPLES_LOCAL_ECHO_H

#include <stdio.h>
#include <string.h>

#include "nbio/nbio.h"
#include "nbio/tcp.h"

typedef struct local_echo {
    nbio_session *listener;
    nbio_session *conn;       /* the one client, once accepted */
    char addr[64];            /* "127.0.0.1:PORT" */
    unsigned char held[4096]; /* read but not yet echoed */
    size_t held_len;
} local_echo;

/* Starts listening. Returns 0, or -1 after printing why. */
static inline int local_echo_start(local_echo *e)
{
    memset(e, 0, sizeof *e);
    nbio_listen_options lo;
    nbio_listen_options_init(&lo);
    lo.accepted.read_buffer_size = sizeof e->held; /* a read always fits `held` */
    e->listener = nbio_tcp_listen("127.0.0.1:0", &lo);
    if (nbio_status(e->listener) != NBIO_STATUS_ESTABLISHED) {
        fprintf(stderr, "local echo: %s\n", nbio_detail(e->listener));
        nbio_free(e->listener);
        e->listener = NULL;
        return -1;
    }
    nbio_local_address(e->listener, e->addr, sizeof e->addr);
    return 0;
}

/* Makes progress once: accept, read, echo. Safe to call with NULL. */
static inline void local_echo_drive(local_echo *e)
{
    if (e == NULL || e->listener == NULL)
        return;
    if (e->conn == NULL) {
        (void)nbio_accept(e->listener, &e->conn);
        return;
    }
    if (e->held_len == 0) {
        nbio_buf in;
        if (nbio_read(e->conn, &in) == NBIO_DATA) {
            memcpy(e->held, in.data, in.len);
            e->held_len = in.len;
        }
    }
    if (e->held_len > 0) {
        nbio_buf out = {e->held, e->held_len};
        if (nbio_write(e->conn, &out) >= 0) {
            memmove(e->held, out.data, out.len); /* keep what is left */
            e->held_len = out.len;
        }
    }
}

static inline void local_echo_stop(local_echo *e)
{
    nbio_free(e->conn);
    nbio_free(e->listener);
    memset(e, 0, sizeof *e);
}

#endif
