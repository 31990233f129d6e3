/* Internal: non-blocking name resolution with c-ares. */
#ifndef NBIO__RESOLVE_H
#define NBIO__RESOLVE_H

#include <stdbool.h>
#include <sys/socket.h>

#include "nbio/tcp.h"

typedef struct nbio__resolver nbio__resolver;

typedef struct nbio__addr {
    struct sockaddr_storage ss;
    socklen_t len;
} nbio__addr;

/* Starts resolving host for port. Returns NULL when out of memory, else a
 * resolver whose nbio__resolve_poll() reports the outcome. */
nbio__resolver *nbio__resolve_start(const char *host, int port, const nbio_tcp_options *o);

/* Makes progress without blocking. Returns 0 while pending, 1 when done
 * (addresses available), or NBIO_ERESOLVE / NBIO_ENOMEM with a reason in
 * *why (static storage). */
int nbio__resolve_poll(nbio__resolver *r, const char **why);

/* The resolved addresses (valid after poll returned 1, until free). */
const nbio__addr *nbio__resolve_addrs(const nbio__resolver *r, size_t *count);

/* A socket to wait on, or -1; *want_write (may be NULL) is set when c-ares
 * waits for it to become writable (a TCP query connecting) rather than
 * readable. */
int nbio__resolve_fd(const nbio__resolver *r, bool *want_write);

void nbio__resolve_free(nbio__resolver *r);

#endif
