/* Internal: what the HTTP agent needs of the client session (client.c). */
#ifndef NBIO__HTTP_CLIENT_INTERNAL_H
#define NBIO__HTTP_CLIENT_INTERNAL_H

#include "nbio/http_client.h"

struct nbio__http;

/* The HTTP client session in s's stack, or NULL. */
struct nbio__http *nbio__http_of(const nbio_session *s);

/* Queues a request on the HTTP client session in s's stack, with host as
 * its Host value (NULL: the session's). Returns as nbio_http_write_request. */
int nbio__http_queue_request(nbio_session *s, const nbio_http_request *r, const char *host);

/* True when the HTTP client session in s's stack is healthy and between
 * exchanges: nothing queued, nothing outstanding, nothing buffered. */
bool nbio__http_idle(const nbio_session *s);

/* agent.c: exchanges. */
bool nbio__http_is_exchange(const nbio_session *s);
int nbio__http_exchange_read(nbio_session *s, nbio_http_response *out);
unsigned nbio__http_exchange_unanswered(const nbio_session *s);

#endif
