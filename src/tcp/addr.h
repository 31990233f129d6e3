/* Internal: parsing "host:port" and formatting socket addresses. */
#ifndef NBIO__ADDR_H
#define NBIO__ADDR_H

#include <stddef.h>
#include <sys/socket.h>

#define NBIO__HOST_MAX 256
#define NBIO__ADDRSTR_MAX 128

/* Splits "host:port", "[v6]:port" or ":port" into host (without brackets)
 * and port. Returns 0, or NBIO_EINVAL with a reason in why. */
int nbio__split_hostport(const char *addr, char host[NBIO__HOST_MAX], int *port,
                         const char **why);

/* Formats a socket address as "1.2.3.4:80", "[::1]:80" or a Unix path.
 * Returns the port (0 for Unix). */
int nbio__format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap);

/* Parses a numeric IPv4/IPv6 host into ss with port. Returns the address
 * length, or 0 when host is not numeric. */
socklen_t nbio__numeric_sockaddr(const char *host, int port, struct sockaddr_storage *ss);

/* Fills a Unix-domain address for path ("@name": abstract). Returns its
 * length, or 0 when the path is too long or empty. */
socklen_t nbio__unix_sockaddr(const char *path, struct sockaddr_storage *ss);

#endif
