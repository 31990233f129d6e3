/*
 * A framed echo server: every frame a client sends comes back to it.
 * Many clients, one thread, sleeping in nbio_wait() when idle.
 *
 *   framed_echo_server [--listen HOST:PORT] [--framing u64|u32|u16|line]
 *                      [--max-clients N]
 *
 * Prints "listening on ADDRESS" first. With --max-clients N it stops after
 * N clients have come and gone (handy in tests); otherwise it runs until
 * killed. A client that half-closes gets its remaining echoes, then a
 * graceful close; a client that misbehaves is dropped with a message.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/frame.h"
#include "nbio/nbio.h"
#include "nbio/tcp.h"

#define MAX_CLIENTS 64

typedef struct client {
    nbio_session *s;
    bool closing;      /* the peer closed: close gracefully, then free */
    unsigned char *held; /* an echo the session could not take yet */
    nbio_buf rest;
} client;

static int usage(void)
{
    fprintf(stderr, "usage: framed_echo_server [--listen HOST:PORT] "
                    "[--framing u64|u32|u16|line] [--max-clients N]\n");
    return 2;
}

/* Echoes what client c sent. Returns false when c is finished (closed
 * gracefully or dropped). */
static bool serve(client *c)
{
    int r;
    if (c->held != NULL) { /* backpressure: finish the last echo first */
        r = nbio_write(c->s, &c->rest);
        if (r == NBIO_PENDING)
            return true;
        free(c->held);
        c->held = NULL;
        if (r < 0)
            goto dropped;
    }
    while (!c->closing) {
        nbio_buf frame;
        r = nbio_read(c->s, &frame);
        if (r == NBIO_IDLE)
            break;
        if (r == NBIO_ACTIVE)
            continue;
        if (r == NBIO_EPEERCLOSED) {
            c->closing = true; /* every frame was echoed: say goodbye */
            break;
        }
        if (r < 0)
            goto dropped;
        nbio_buf echo = frame;
        r = nbio_write(c->s, &echo);
        if (r < 0)
            goto dropped;
        if (r == NBIO_PENDING) {
            /* frame points into the session's read buffer, valid until the
             * next call: keep a copy of the rest to resubmit */
            c->held = malloc(echo.len > 0 ? echo.len : 1);
            if (c->held == NULL)
                goto dropped;
            memcpy(c->held, echo.data, echo.len);
            c->rest.data = c->held;
            c->rest.len = echo.len;
            return true;
        }
    }
    if (c->closing) {
        r = nbio_close(c->s);
        if (r == NBIO_PENDING)
            return true;
        if (r < 0)
            goto dropped;
        return false;
    }
    r = nbio_drive(c->s); /* sends coalesced frames */
    if (r < 0)
        goto dropped;
    return true;
dropped:
    fprintf(stderr, "framed_echo_server: dropped a client: %s: %s\n", nbio_errname(r),
            nbio_detail(c->s));
    return false;
}

int main(int argc, char **argv)
{
    const char *listen = "127.0.0.1:0";
    const nbio_frame_strategy *framing = &nbio_frame_u64le;
    long max_clients = -1;
    for (int i = 1; i < argc; i++) {
        if (i + 1 >= argc)
            return usage();
        if (strcmp(argv[i], "--listen") == 0)
            listen = argv[++i];
        else if (strcmp(argv[i], "--framing") == 0) {
            framing = nbio_frame_strategy_named(argv[++i]);
            if (framing == NULL)
                return usage();
        } else if (strcmp(argv[i], "--max-clients") == 0) {
            max_clients = strtol(argv[++i], NULL, 10);
            if (max_clients <= 0)
                return usage();
        } else
            return usage();
    }

    nbio_session *listener = nbio_tcp_listen(listen, NULL);
    char addr[128];
    if (nbio_status(listener) != NBIO_STATUS_ESTABLISHED ||
        nbio_local_address(listener, addr, sizeof addr) < 0) {
        fprintf(stderr, "framed_echo_server: %s\n", nbio_detail(listener));
        nbio_free(listener);
        return 1;
    }
    printf("listening on %s\n", addr);
    fflush(stdout);

    client clients[MAX_CLIENTS];
    nbio_session *waitset[MAX_CLIENTS + 1];
    size_t n = 0;
    long accepted = 0, finished = 0;
    while (max_clients < 0 || finished < max_clients) {
        /* accept while there is room (and the quota is not used up) */
        while (n < MAX_CLIENTS && (max_clients < 0 || accepted < max_clients)) {
            nbio_session *s = NULL;
            int r = nbio_accept(listener, &s);
            if (r != NBIO_DATA)
                break;
            clients[n] = (client){nbio_frame_new(s, framing, NULL), false, NULL, {NULL, 0}};
            if (clients[n].s == NULL)
                break;
            n++;
            accepted++;
        }
        for (size_t i = 0; i < n;) {
            if (serve(&clients[i])) {
                i++;
                continue;
            }
            nbio_free(clients[i].s);
            free(clients[i].held);
            clients[i] = clients[--n];
            finished++;
        }
        /* sleep until a socket is ready (a pending client may wake us early
         * for readability; it is then served again, which is harmless) */
        waitset[0] = listener;
        for (size_t i = 0; i < n; i++)
            waitset[i + 1] = clients[i].s;
        nbio_wait(waitset, n + 1, 100);
    }
    nbio_free(listener);
    return 0;
}
