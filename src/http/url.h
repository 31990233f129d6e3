/* Internal: http:// and https:// URLs, split for a request. */
#ifndef NBIO__HTTP_URL_H
#define NBIO__HTTP_URL_H

#include <stdbool.h>
#include <stddef.h>

#define NBIO__URL_HOST_MAX 256

typedef struct nbio__url {
    bool tls;                      /* https */
    char host[NBIO__URL_HOST_MAX]; /* name or address, IPv6 without brackets */
    bool ipv6;                     /* host is an IPv6 literal */
    int port;                      /* explicit or the scheme's default */
    bool default_port;             /* the scheme's port (Host: omits it) */
    /* The request target is "/" when slash is set, followed by
     * target[0, target_len): path and query, pointing into the URL parsed
     * (the fragment is dropped). */
    bool slash;
    const char *target;
    size_t target_len;
} nbio__url;

/* Parses an absolute http(s) URL: scheme (case-insensitive), host (name,
 * IPv4, or [IPv6]), optional port 1-65535, path and query. Credentials
 * (user@) are refused: they do not belong in URLs sent on. Returns 0, or
 * NBIO_EINVAL with *why set to a static reason. u->target points into url,
 * which must outlive u. */
int nbio__url_parse(const char *url, nbio__url *u, const char **why);

/* Writes "host[:port]" as a Host header value (IPv6 in brackets, the port
 * only when not the default). Returns the length, or -1 when cap is too
 * small. */
int nbio__url_authority(const nbio__url *u, char *buf, size_t cap);

/* Writes "host:port" as nbio_tcp_connect() takes it ("[v6]:port").
 * Returns the length, or -1 when cap is too small. */
int nbio__url_connect_addr(const nbio__url *u, char *buf, size_t cap);

#endif
