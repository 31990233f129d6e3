/*
 * Framing TCP: send and receive messages framed with a u64 little-endian
 * length prefix. Almost identical to streaming_tcp.c, except that every
 * read returns exactly one message, as it was written.
 * (The second example of the Rust crate nbio, in C, wire-compatible.)
 *
 *   framing_tcp [HOST:PORT]
 *
 * With an address it talks to that echo server (e.g. `nbio echo-server
 * --listen 127.0.0.1:7000 --framing u64`, or framed_echo_server); without one
 * it starts a tiny echo peer in this process. It exits 0 once both messages
 * came back.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <string.h>

#include "local_echo.h"
#include "nbio/frame.h"
#include "nbio/nbio.h"
#include "nbio/tcp.h"

static int fail(nbio_session *s, const char *what, int err)
{
    fprintf(stderr, "framing_tcp: %s: %s: %s\n", what, nbio_errname(err), nbio_detail(s));
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

    /* establish connection wrapped in a framing session; the framing
     * session owns the TCP session (also if it fails) */
    nbio_frame_options opt;
    nbio_frame_options_init(&opt);
    opt.write_buffer_size = 4096;
    nbio_session *client = nbio_frame_new(nbio_tcp_connect(addr, NULL), &nbio_frame_u64le, &opt);
    if (client == NULL)
        return 1;

    /* send messages until completion: a message is taken whole (NBIO_DONE)
     * or not at all (NBIO_PENDING: resubmit) */
    static const char *const messages[] = {"hello world!", "framed"};
    const size_t count = sizeof messages / sizeof messages[0];
    int64_t deadline = nbio_now_ms() + 10000;
    int r;
    for (size_t i = 0; i < count; i++) {
        nbio_buf remaining = {messages[i], strlen(messages[i])};
        while ((r = nbio_write(client, &remaining)) == NBIO_PENDING) {
            local_echo_drive(local);
            if (nbio_now_ms() > deadline)
                return fail(client, "write", NBIO_ETIMEDOUT);
        }
        if (r < 0)
            return fail(client, "write", r);
    }

    /* print received messages; the writes above sit in the write buffer
     * and go out on this read (or a drive/flush) */
    size_t received = 0;
    while (received < count) {
        nbio_buf msg;
        r = nbio_read(client, &msg);
        if (r == NBIO_DATA) {
            printf("received: %.*s\n", (int)msg.len, (const char *)msg.data);
            if (msg.len != strlen(messages[received]) ||
                memcmp(msg.data, messages[received], msg.len) != 0)
                return fail(client, "read: the message differs from what was sent", NBIO_EPROTOCOL);
            received++;
        } else if (r < 0) {
            return fail(client, "read", r);
        } else if (nbio_now_ms() > deadline) {
            return fail(client, "read", NBIO_ETIMEDOUT);
        } else if (local != NULL) {
            local_echo_drive(local);
        } else {
            nbio_wait(&client, 1, 100);
        }
    }

    while ((r = nbio_close(client)) == NBIO_PENDING)
        local_echo_drive(local);
    nbio_free(client); /* frees the TCP session too */
    if (local != NULL)
        local_echo_stop(local);
    return r == NBIO_DONE ? 0 : 1;
}
