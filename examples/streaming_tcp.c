/*
 * Streaming TCP: send a stream of bytes and print what comes back.
 * (The first example of the Rust crate nbio, in C.)
 *
 *   streaming_tcp [HOST:PORT]
 *
 * With an address it talks to that echo server (e.g. `nbio echo-server
 * --listen 127.0.0.1:7000`); without one it starts a tiny echo peer in this
 * process. It exits 0 once "hello world!" came back.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "local_echo.h"
#include "nbio/nbio.h"
#include "nbio/tcp.h"

static int fail(nbio_session *s, const char *what, int err)
{
    fprintf(stderr, "streaming_tcp: %s: %s: %s\n", what, nbio_errname(err), nbio_detail(s));
    nbio_free(s);
    return 1;
}

int main(int argc, char **argv)
{
    local_echo echo, *local = NULL;
    const char *addr = argc > 1 ? argv[1] : NULL;
    if (addr == NULL) {
        if (local_echo_start(&echo) != 0)
            return 1;
        local = &echo;
        addr = echo.addr;
    }

    /* establish connection: this never blocks, the session starts
     * NBIO_STATUS_ESTABLISHING and connects while we drive it */
    nbio_session *client = nbio_tcp_connect(addr, NULL);
    if (client == NULL)
        return 1;

    /* send some bytes until completion: on NBIO_PENDING, `remaining` was
     * advanced to what is left; resubmit it */
    const char *hello = "hello world!";
    nbio_buf remaining = {hello, strlen(hello)};
    int64_t deadline = nbio_now_ms() + 10000;
    int r;
    while ((r = nbio_write(client, &remaining)) == NBIO_PENDING) {
        local_echo_drive(local);
        if (nbio_now_ms() > deadline)
            return fail(client, "write", NBIO_ETIMEDOUT);
    }
    if (r < 0)
        return fail(client, "write", r);

    /* print received bytes: a read returns whatever arrived */
    size_t received = 0;
    while (received < strlen(hello)) {
        nbio_buf data;
        r = nbio_read(client, &data);
        if (r == NBIO_DATA) {
            printf("received: %.*s\n", (int)data.len, (const char *)data.data);
            received += data.len;
        } else if (r < 0) {
            return fail(client, "read", r);
        } else if (nbio_now_ms() > deadline) {
            return fail(client, "read", NBIO_ETIMEDOUT);
        } else if (local != NULL) {
            local_echo_drive(local); /* NBIO_IDLE: let our echo peer work */
        } else {
            nbio_wait(&client, 1, 100); /* NBIO_IDLE: sleep until readable */
        }
    }

    /* graceful close (FIN), then release */
    while ((r = nbio_close(client)) == NBIO_PENDING)
        local_echo_drive(local);
    nbio_free(client);
    if (local != NULL)
        local_echo_stop(local);
    return r == NBIO_DONE ? 0 : 1;
}
