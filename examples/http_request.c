/*
 * HTTP request/response: one GET, driven and read like any other session.
 * (The third example of the Rust crate nbio, in C.)
 *
 *   http_request URL
 *
 * An agent (the seed's HttpClient) turns the URL into an exchange session;
 * reading it drives the connect, the request and the response. It prints
 * the status line and the size of the body, and exits 0 once a whole
 * response arrived (any status), 1 on a failure. https:// URLs are verified
 * against the system's trust store.
 */
#define _GNU_SOURCE
#include <stdio.h>

#include "nbio/http_client.h"
#include "nbio/nbio.h"

static int fail(nbio_session *s, const char *what, int err)
{
    fprintf(stderr, "http_request: %s: %s: %s\n", what, nbio_errname(err), nbio_detail(s));
    return 1;
}

int main(int argc, char **argv)
{
    if (argc != 2) {
        fprintf(stderr, "usage: http_request URL\n");
        return 2;
    }

    /* create the client and make the request: this never blocks, the
     * exchange connects while we read it (NULL: GET, default options) */
    nbio_http_agent *client = nbio_http_agent_new(NULL, NULL);
    if (client == NULL)
        return 1;
    nbio_session *conn = nbio_http_agent_request(client, argv[1], NULL);
    if (conn == NULL)
        return 1;

    /* drive and read the conn until a full response is received */
    nbio_http_response r;
    int64_t deadline = nbio_now_ms() + 30000;
    int rc = 0, st;
    while ((st = nbio_http_read_response(conn, &r)) != NBIO_DATA) {
        if (st < 0) {
            rc = fail(conn, "read", st);
            break;
        }
        if (nbio_now_ms() > deadline) {
            rc = fail(conn, "read", NBIO_ETIMEDOUT);
            break;
        }
        if (st == NBIO_IDLE)
            nbio_wait(&conn, 1, 100); /* sleep until the socket has news */
    }

    if (rc == 0) {
        /* the response: status, headers and body are slices into the
         * session's buffer, valid until its next read */
        printf("Response: HTTP/1.%d %d %.*s\n", r.head.minor_version, r.head.status,
               (int)r.head.reason.len, r.head.reason.data ? r.head.reason.data : "");
        const nbio_http_slice *type = nbio_http_header_find(&r.head, "content-type", NULL);
        if (type != NULL)
            printf("Content-Type: %.*s\n", (int)type->len, type->data);
        printf("Response Body: %zu bytes\n", r.body.len);
    }

    nbio_free(conn); /* after a whole response, its connection went back to the pool */
    nbio_http_agent_free(client);
    return rc;
}
