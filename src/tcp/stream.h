/* Internal: the stream-socket session shared by TCP and Unix sockets. */
#ifndef NBIO__STREAM_H
#define NBIO__STREAM_H

#include "core/session.h"
#include "nbio/tcp.h"
#include "tcp/addr.h"
#include "tcp/resolve.h"

typedef struct nbio__stream {
    nbio_session base;
    int fd;
    int domain;                 /* AF_INET, AF_INET6 or AF_UNIX */
    nbio_tcp_options opt;
    char *dns_servers;          /* owned copy of opt.dns_servers */
    /* establishing */
    char target[NBIO__HOST_MAX + 8]; /* what the caller asked for, for details */
    nbio__resolver *resolver;
    nbio__addr *addrs;          /* owned list to try, or NULL */
    size_t naddrs, next_addr;
    int64_t deadline;           /* monotonic ms, or -1 */
    int last_err;
    char last_addr[NBIO__ADDRSTR_MAX];
    /* established */
    bool write_blocked;         /* the last write returned pending */
    int send_err;               /* a send failed while input was still unread: reported
                                   once that input is read (it may explain the failure) */
    unsigned char *rbuf;
    size_t rcap;
} nbio__stream;

extern const nbio__vtable nbio__tcp_vtable;
extern const nbio__vtable nbio__unix_vtable;

/* Returns the stream session under s (walking wrapped layers), or NULL. */
const nbio__stream *nbio__stream_of(const nbio_session *s);

/* Creates a socket of the given domain: non-blocking, close-on-exec.
 * Returns the fd or a negative error. */
int nbio__socket(int domain);

/* Applies per-connection socket options (TCP_NODELAY). */
void nbio__stream_sockopts(int fd, int domain, const nbio_tcp_options *o);

#endif
