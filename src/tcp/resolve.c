/* Non-blocking name resolution: one c-ares channel per lookup. */
#define _GNU_SOURCE
#include <ares.h>
#include <poll.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "nbio/errors.h"
#include "tcp/resolve.h"

struct nbio__resolver {
    ares_channel channel;
    int status;   /* -1 pending, else ARES_* */
    int init_status;
    int port;
    nbio__addr *addrs;
    size_t count;
};

static pthread_once_t ares_once = PTHREAD_ONCE_INIT;
static int ares_init_status;

static void ares_global_init(void)
{
    ares_init_status = ares_library_init(ARES_LIB_INIT_ALL);
}

/* ares_getsock() bit tests, without the shift of a signed 1 by 31 that
 * c-ares's own macros do for the last socket. */
static bool sock_readable(int bits, int i)
{
    return ((unsigned)bits >> i) & 1u;
}

static bool sock_writable(int bits, int i)
{
    return ((unsigned)bits >> (i + ARES_GETSOCK_MAXNUM)) & 1u;
}

static void on_addrinfo(void *arg, int status, int timeouts, struct ares_addrinfo *res)
{
    nbio__resolver *r = arg;
    (void)timeouts;
    r->status = status;
    if (status == ARES_SUCCESS && res != NULL) {
        size_t n = 0;
        for (struct ares_addrinfo_node *a = res->nodes; a != NULL; a = a->ai_next)
            n++;
        r->addrs = calloc(n > 0 ? n : 1, sizeof *r->addrs);
        if (r->addrs == NULL) {
            r->status = ARES_ENOMEM;
        } else {
            for (struct ares_addrinfo_node *a = res->nodes; a != NULL; a = a->ai_next) {
                if ((a->ai_family != AF_INET && a->ai_family != AF_INET6) ||
                    (size_t)a->ai_addrlen > sizeof r->addrs[0].ss)
                    continue;
                nbio__addr *d = &r->addrs[r->count++];
                memcpy(&d->ss, a->ai_addr, (size_t)a->ai_addrlen);
                d->len = (socklen_t)a->ai_addrlen;
                if (a->ai_family == AF_INET)
                    ((struct sockaddr_in *)&d->ss)->sin_port = htons((uint16_t)r->port);
                else
                    ((struct sockaddr_in6 *)&d->ss)->sin6_port = htons((uint16_t)r->port);
            }
            if (r->count == 0)
                r->status = ARES_ENODATA;
        }
    }
    if (res != NULL)
        ares_freeaddrinfo(res);
}

nbio__resolver *nbio__resolve_start(const char *host, int port, const nbio_tcp_options *o)
{
    nbio__resolver *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NULL;
    r->status = -1;
    r->port = port;
    pthread_once(&ares_once, ares_global_init);
    if (ares_init_status != ARES_SUCCESS) {
        r->status = r->init_status = ares_init_status;
        return r;
    }
    struct ares_options ao;
    memset(&ao, 0, sizeof ao);
    ao.timeout = o->dns_timeout_ms > 0 ? o->dns_timeout_ms : 2000;
    ao.tries = o->dns_tries > 0 ? o->dns_tries : 2;
    int st = ares_init_options(&r->channel, &ao, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES);
    if (st == ARES_SUCCESS && o->dns_servers != NULL && o->dns_servers[0] != '\0')
        st = ares_set_servers_ports_csv(r->channel, o->dns_servers);
    if (st != ARES_SUCCESS) {
        if (r->channel != NULL)
            ares_destroy(r->channel);
        r->channel = NULL;
        r->status = r->init_status = st;
        return r;
    }
    struct ares_addrinfo_hints hints;
    memset(&hints, 0, sizeof hints);
    hints.ai_family = o->family;
    hints.ai_socktype = SOCK_STREAM;
    ares_getaddrinfo(r->channel, host, NULL, &hints, on_addrinfo, r);
    return r;
}

int nbio__resolve_poll(nbio__resolver *r, const char **why)
{
    if (r->status == -1 && r->channel != NULL) {
        ares_socket_t socks[ARES_GETSOCK_MAXNUM];
        int bits = ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
        struct pollfd pfd[ARES_GETSOCK_MAXNUM];
        int n = 0;
        for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
            short ev = (short)((sock_readable(bits, i) ? POLLIN : 0) |
                               (sock_writable(bits, i) ? POLLOUT : 0));
            if (ev == 0)
                continue;
            pfd[n].fd = socks[i];
            pfd[n].events = ev;
            pfd[n].revents = 0;
            n++;
        }
        if (n > 0 && poll(pfd, (nfds_t)n, 0) > 0) {
            for (int i = 0; i < n && r->status == -1; i++) {
                if (pfd[i].revents == 0)
                    continue;
                ares_socket_t rd = (pfd[i].revents & (POLLIN | POLLERR | POLLHUP)) ? pfd[i].fd
                                                                                   : ARES_SOCKET_BAD;
                ares_socket_t wr = (pfd[i].revents & POLLOUT) ? pfd[i].fd : ARES_SOCKET_BAD;
                ares_process_fd(r->channel, rd, wr);
            }
        }
        if (r->status == -1)
            ares_process_fd(r->channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD); /* timeouts */
    }
    if (r->status == -1)
        return 0;
    if (r->status == ARES_SUCCESS)
        return 1;
    *why = ares_strerror(r->status);
    return r->status == ARES_ENOMEM ? NBIO_ENOMEM : NBIO_ERESOLVE;
}

const nbio__addr *nbio__resolve_addrs(const nbio__resolver *r, size_t *count)
{
    *count = r->count;
    return r->addrs;
}

int nbio__resolve_fd(const nbio__resolver *r, bool *want_write)
{
    if (want_write != NULL)
        *want_write = false;
    if (r->channel == NULL || r->status != -1)
        return -1;
    ares_socket_t socks[ARES_GETSOCK_MAXNUM];
    int bits = ares_getsock(r->channel, socks, ARES_GETSOCK_MAXNUM);
    for (int i = 0; i < ARES_GETSOCK_MAXNUM; i++) {
        if (sock_readable(bits, i) || sock_writable(bits, i)) {
            if (want_write != NULL)
                *want_write = sock_writable(bits, i);
            return socks[i];
        }
    }
    return -1;
}

void nbio__resolve_free(nbio__resolver *r)
{
    if (r == NULL)
        return;
    if (r->channel != NULL) {
        ares_channel ch = r->channel;
        r->channel = NULL;
        ares_destroy(ch); /* may call on_addrinfo with ARES_EDESTRUCTION */
    }
    free(r->addrs);
    free(r);
}
