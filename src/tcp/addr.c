/* "host:port" parsing and socket-address formatting. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "nbio/errors.h"
#include "tcp/addr.h"

static int parse_port(const char *p, int *port)
{
    if (*p == '\0' || strlen(p) > 5)
        return -1;
    int v = 0;
    for (; *p; p++) {
        if (*p < '0' || *p > '9')
            return -1;
        v = v * 10 + (*p - '0');
    }
    if (v > 65535)
        return -1;
    *port = v;
    return 0;
}

int nbio__split_hostport(const char *addr, char host[NBIO__HOST_MAX], int *port,
                         const char **why)
{
    const char *colon;
    size_t hlen;
    if (addr == NULL) {
        *why = "no address";
        return NBIO_EINVAL;
    }
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (close == NULL || close[1] != ':') {
            *why = "expected [IPv6]:PORT";
            return NBIO_EINVAL;
        }
        hlen = (size_t)(close - addr - 1);
        if (hlen >= NBIO__HOST_MAX) {
            *why = "host name too long";
            return NBIO_EINVAL;
        }
        memcpy(host, addr + 1, hlen);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (colon == NULL) {
            *why = "expected HOST:PORT";
            return NBIO_EINVAL;
        }
        hlen = (size_t)(colon - addr);
        if (memchr(addr, ':', hlen) != NULL) {
            *why = "IPv6 addresses need brackets: [IPv6]:PORT";
            return NBIO_EINVAL;
        }
        if (hlen >= NBIO__HOST_MAX) {
            *why = "host name too long";
            return NBIO_EINVAL;
        }
        memcpy(host, addr, hlen);
    }
    host[hlen] = '\0';
    if (parse_port(colon + 1, port) != 0) {
        *why = "port must be a number from 0 to 65535";
        return NBIO_EINVAL;
    }
    return 0;
}

int nbio__format_sockaddr(const struct sockaddr *sa, socklen_t len, char *buf, size_t cap)
{
    char ip[INET6_ADDRSTRLEN];
    if (cap == 0)
        return 0;
    buf[0] = '\0';
    if (sa->sa_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)sa;
        inet_ntop(AF_INET, &in->sin_addr, ip, sizeof ip);
        snprintf(buf, cap, "%s:%u", ip, (unsigned)ntohs(in->sin_port));
        return ntohs(in->sin_port);
    }
    if (sa->sa_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)sa;
        inet_ntop(AF_INET6, &in6->sin6_addr, ip, sizeof ip);
        snprintf(buf, cap, "[%s]:%u", ip, (unsigned)ntohs(in6->sin6_port));
        return ntohs(in6->sin6_port);
    }
    if (sa->sa_family == AF_UNIX) {
        const struct sockaddr_un *un = (const struct sockaddr_un *)sa;
        size_t plen = len > offsetof(struct sockaddr_un, sun_path)
                          ? len - offsetof(struct sockaddr_un, sun_path)
                          : 0;
        if (plen > 0 && un->sun_path[0] == '\0') /* abstract */
            snprintf(buf, cap, "@%.*s", (int)(plen - 1), un->sun_path + 1);
        else
            snprintf(buf, cap, "%.*s", (int)strnlen(un->sun_path, plen), un->sun_path);
        return 0;
    }
    snprintf(buf, cap, "(family %d)", sa->sa_family);
    return 0;
}

socklen_t nbio__numeric_sockaddr(const char *host, int port, struct sockaddr_storage *ss)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *in = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *in6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &in->sin_addr) == 1) {
        in->sin_family = AF_INET;
        in->sin_port = htons((uint16_t)port);
        return sizeof *in;
    }
    if (inet_pton(AF_INET6, host, &in6->sin6_addr) == 1) {
        in6->sin6_family = AF_INET6;
        in6->sin6_port = htons((uint16_t)port);
        return sizeof *in6;
    }
    return 0;
}

socklen_t nbio__unix_sockaddr(const char *path, struct sockaddr_storage *ss)
{
    struct sockaddr_un *un = (struct sockaddr_un *)ss;
    size_t plen = path != NULL ? strlen(path) : 0;
    memset(ss, 0, sizeof *ss);
    if (plen == 0 || plen >= sizeof un->sun_path)
        return 0;
    un->sun_family = AF_UNIX;
    memcpy(un->sun_path, path, plen);
    if (path[0] == '@') {
        un->sun_path[0] = '\0'; /* abstract namespace: no terminator */
        return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen);
    }
    return (socklen_t)(offsetof(struct sockaddr_un, sun_path) + plen + 1);
}
