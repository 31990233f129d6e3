/* Listeners: TCP and Unix-domain, non-blocking accept. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <unistd.h>

#include "tcp/stream.h"

typedef struct nbio__listener {
    nbio_session base;
    int fd;
    int spare_fd; /* held to accept-and-drop a connection when out of fds */
    nbio_tcp_options accepted;
    char *dns_servers;
    char unlink_path[sizeof(((struct sockaddr_un *)0)->sun_path) + 1];
} nbio__listener;

void nbio_listen_options_init(nbio_listen_options *o)
{
    memset(o, 0, sizeof *o);
    o->backlog = 511;
    o->reuseaddr = true;
    o->v6only = false;
    nbio_tcp_options_init(&o->accepted);
}

static void listener_free(nbio_session *s)
{
    nbio__listener *l = (nbio__listener *)s;
    if (l->fd >= 0)
        close(l->fd);
    if (l->spare_fd >= 0)
        close(l->spare_fd);
    if (l->unlink_path[0] != '\0')
        unlink(l->unlink_path);
    free(l->dns_servers);
    free(l);
}

static int listener_fd(const nbio_session *s)
{
    return ((const nbio__listener *)s)->fd;
}

static unsigned listener_interest(const nbio_session *s)
{
    (void)s;
    return NBIO_WANT_READ;
}

static const nbio__vtable listener_vtable = {
    .kind = "listener",
    .free = listener_free,
    .fd = listener_fd,
    .interest = listener_interest,
};

static nbio__listener *listener_new(const nbio_listen_options *opt, nbio_listen_options *o)
{
    if (opt != NULL)
        *o = *opt;
    else
        nbio_listen_options_init(o);
    nbio__listener *l = calloc(1, sizeof *l);
    if (l == NULL)
        return NULL;
    nbio__session_init(&l->base, &listener_vtable, true);
    l->fd = -1;
    l->spare_fd = -1;
    l->accepted = o->accepted;
    if (o->accepted.dns_servers != NULL) {
        l->dns_servers = strdup(o->accepted.dns_servers);
        if (l->dns_servers == NULL) {
            free(l);
            return NULL;
        }
        l->accepted.dns_servers = l->dns_servers;
    }
    return l;
}

/* Binds and listens on ss; on failure the listener is terminated. */
static void bind_listen(nbio__listener *l, const nbio_listen_options *o, const char *what,
                        const struct sockaddr_storage *ss, socklen_t len)
{
    int fd = nbio__socket(ss->ss_family);
    if (fd < 0) {
        nbio__fail(&l->base, fd, "listen %s: socket: %s", what, nbio_strerror(fd));
        return;
    }
    int one = 1, v6only = o->v6only ? 1 : 0;
    if (ss->ss_family != AF_UNIX && o->reuseaddr)
        (void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (ss->ss_family == AF_INET6)
        (void)setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &v6only, sizeof v6only);
    if (bind(fd, (const struct sockaddr *)ss, len) != 0 ||
        listen(fd, o->backlog > 0 ? o->backlog : 511) != 0) {
        int e = nbio__errno(errno);
        close(fd);
        nbio__fail(&l->base, e, "listen %s: %s", what, nbio_strerror(e));
        return;
    }
    l->fd = fd;
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    nbio__established(&l->base);
}

/* Out of file descriptors, the connection stays queued and the listener
 * stays readable: a poll loop would spin. Give back the spare descriptor,
 * accept the connection and close it at once (the client sees it closed),
 * then take the spare again. */
static void drop_one_connection(nbio__listener *l)
{
    if (l->spare_fd < 0)
        return;
    close(l->spare_fd);
    int fd = accept4(l->fd, NULL, NULL, SOCK_CLOEXEC);
    if (fd >= 0)
        close(fd);
    l->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
}

nbio_session *nbio_tcp_listen(const char *addr, const nbio_listen_options *opt)
{
    nbio_listen_options o;
    nbio__listener *l = listener_new(opt, &o);
    if (l == NULL)
        return NULL;
    char host[NBIO__HOST_MAX] = "";
    int port;
    const char *why = "";
    if (nbio__split_hostport(addr, host, &port, &why) != 0) {
        nbio__fail(&l->base, NBIO_EINVAL, "listen %s: %s", addr != NULL ? addr : "(null)", why);
        return &l->base;
    }
    const char *h = host;
    if (h[0] == '\0' || strcmp(h, "*") == 0)
        h = "0.0.0.0";
    else if (strcmp(h, "localhost") == 0)
        h = "127.0.0.1";
    struct sockaddr_storage ss;
    socklen_t len = nbio__numeric_sockaddr(h, port, &ss);
    if (len == 0) {
        nbio__fail(&l->base, NBIO_EINVAL,
                   "listen %s: host must be a numeric address or localhost", addr);
        return &l->base;
    }
    bind_listen(l, &o, addr, &ss, len);
    return &l->base;
}

nbio_session *nbio_unix_listen(const char *path, const nbio_listen_options *opt)
{
    nbio_listen_options o;
    nbio__listener *l = listener_new(opt, &o);
    if (l == NULL)
        return NULL;
    struct sockaddr_storage ss;
    socklen_t len = nbio__unix_sockaddr(path, &ss);
    if (len == 0) {
        nbio__fail(&l->base, NBIO_EINVAL, "listen %s: Unix socket path empty or too long",
                   path != NULL ? path : "(null)");
        return &l->base;
    }
    bind_listen(l, &o, path, &ss, len);
    if (l->fd >= 0 && path[0] != '@')
        snprintf(l->unlink_path, sizeof l->unlink_path, "%s", path);
    return &l->base;
}

int nbio_accept(nbio_session *s, nbio_session **out)
{
    if (s == NULL || out == NULL)
        return NBIO_EINVAL;
    *out = NULL;
    if (s->vt != &listener_vtable)
        return NBIO_EUNSUPPORTED;
    if (s->error != 0)
        return s->error;
    nbio__touch(s);
    nbio__listener *l = (nbio__listener *)s;
    for (;;) {
        struct sockaddr_storage peer;
        socklen_t plen = sizeof peer;
        int fd = accept4(l->fd, (struct sockaddr *)&peer, &plen, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            nbio_session *c = nbio_stream_from_fd(fd, &l->accepted);
            if (c == NULL)
                return NBIO_ENOMEM;
            nbio__stream *t = (nbio__stream *)c;
            if (t->target[0] == '\0' && plen > 0) /* reset already: keep who it was */
                nbio__format_sockaddr((struct sockaddr *)&peer, plen, t->target,
                                      sizeof t->target);
            *out = c;
            return NBIO_DATA;
        }
        switch (errno) {
        case EINTR:
            continue;
        case EAGAIN:
            return NBIO_IDLE;
        case EMFILE:
        case ENFILE:
        case ENOBUFS:
        case ENOMEM: {
            int e = nbio__errno(errno);
            drop_one_connection(l);
            return e; /* transient: the listener lives on */
        }
        case ECONNABORTED:
        case EPROTO:
        case ENETDOWN:
        case ENOPROTOOPT:
        case EHOSTDOWN:
        case ENONET:
        case EHOSTUNREACH:
        case EOPNOTSUPP:
        case ENETUNREACH:
        case EPERM:
            return nbio__errno(errno); /* transient: the listener lives on */
        default: {
            int e = nbio__errno(errno);
            return nbio__fail(s, e, "accept: %s", nbio_strerror(e));
        }
        }
    }
}

static int sock_address(const nbio_session *s, char *buf, size_t len, bool peer)
{
    int fd = -1;
    if (s != NULL && s->vt == &listener_vtable) {
        fd = ((const nbio__listener *)s)->fd;
    } else {
        const nbio__stream *t = nbio__stream_of(s);
        if (t == NULL)
            return NBIO_EUNSUPPORTED;
        fd = t->fd;
    }
    if (fd < 0)
        return NBIO_ENOTCONN;
    struct sockaddr_storage ss;
    socklen_t sl = sizeof ss;
    int r = peer ? getpeername(fd, (struct sockaddr *)&ss, &sl)
                 : getsockname(fd, (struct sockaddr *)&ss, &sl);
    if (r != 0 && peer && s->vt != &listener_vtable) {
        /* A connection reset before anyone asked: the address accept gave. */
        const nbio__stream *t = nbio__stream_of(s);
        if (t->target[0] != '\0' && strlen(t->target) < len) {
            memcpy(buf, t->target, strlen(t->target) + 1);
            const char *colon = strrchr(t->target, ':');
            return colon != NULL ? atoi(colon + 1) : 0;
        }
    }
    if (r != 0)
        return nbio__errno(errno);
    return nbio__format_sockaddr((struct sockaddr *)&ss, sl, buf, len);
}

int nbio_local_address(const nbio_session *s, char *buf, size_t len)
{
    return sock_address(s, buf, len, false);
}

int nbio_peer_address(const nbio_session *s, char *buf, size_t len)
{
    return sock_address(s, buf, len, true);
}
