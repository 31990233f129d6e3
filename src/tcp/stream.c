/* Stream-socket sessions: non-blocking connect, reads, writes, half-close. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tcp/stream.h"

void nbio_tcp_options_init(nbio_tcp_options *o)
{
    memset(o, 0, sizeof *o);
    o->read_buffer_size = 65536;
    o->connect_timeout_ms = 10000;
    o->nodelay = true;
    o->family = AF_UNSPEC;
    o->dns_timeout_ms = 2000;
    o->dns_tries = 2;
}

int nbio__socket(int domain)
{
    int fd = socket(domain, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    return fd >= 0 ? fd : nbio__errno(errno);
}

void nbio__stream_sockopts(int fd, int domain, const nbio_tcp_options *o)
{
    if (domain != AF_UNIX && o->nodelay) {
        int one = 1;
        (void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    }
    if (o->send_buffer_size > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_SNDBUF, &o->send_buffer_size,
                         sizeof o->send_buffer_size);
    if (o->recv_buffer_size > 0)
        (void)setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &o->recv_buffer_size,
                         sizeof o->recv_buffer_size);
}

const nbio__stream *nbio__stream_of(const nbio_session *s)
{
    const nbio_session *t = nbio__find_layer(s, &nbio__tcp_vtable);
    return (const nbio__stream *)(t != NULL ? t : nbio__find_layer(s, &nbio__unix_vtable));
}

static void close_fd(nbio__stream *t)
{
    if (t->fd >= 0)
        close(t->fd);
    t->fd = -1;
}

static void become_established(nbio__stream *t)
{
    nbio__established(&t->base);
    nbio__resolve_free(t->resolver);
    t->resolver = NULL;
    free(t->addrs);
    t->addrs = NULL;
    t->naddrs = t->next_addr = 0;
}

static int fail_connect(nbio__stream *t, int err)
{
    close_fd(t);
    if (t->last_addr[0] != '\0' && strcmp(t->last_addr, t->target) != 0)
        return nbio__fail(&t->base, err, "connect %s (%s): %s", t->target, t->last_addr,
                          nbio_strerror(err));
    return nbio__fail(&t->base, err, "connect %s: %s", t->target, nbio_strerror(err));
}

/* Starts a connect to the next address. Returns NBIO_ACTIVE when a connect
 * is in flight or done, or an error when no address is left. */
static int start_next(nbio__stream *t)
{
    while (t->next_addr < t->naddrs) {
        const nbio__addr *a = &t->addrs[t->next_addr++];
        nbio__format_sockaddr((const struct sockaddr *)&a->ss, a->len, t->last_addr,
                              sizeof t->last_addr);
        int fd = nbio__socket(a->ss.ss_family);
        if (fd < 0) {
            t->last_err = fd;
            continue;
        }
        t->fd = fd;
        t->domain = a->ss.ss_family;
        nbio__stream_sockopts(fd, t->domain, &t->opt);
        if (connect(fd, (const struct sockaddr *)&a->ss, a->len) == 0) {
            become_established(t);
            return NBIO_ACTIVE;
        }
        if (errno == EINPROGRESS || errno == EINTR)
            return NBIO_ACTIVE;
        if (errno == EAGAIN && t->domain == AF_UNIX) {
            /* The listener's backlog is full and nothing was queued: try the
             * same path again on a later drive, until the connect timeout. */
            close_fd(t);
            t->next_addr--;
            t->last_err = NBIO_ETIMEDOUT;
            return NBIO_IDLE;
        }
        t->last_err = nbio__errno(errno);
        close_fd(t);
    }
    return fail_connect(t, t->last_err != 0 ? t->last_err : NBIO_ECONNREFUSED);
}

/* Checks an in-flight connect. */
static int check_connect(nbio__stream *t)
{
    struct pollfd p = {.fd = t->fd, .events = POLLOUT, .revents = 0};
    int n = poll(&p, 1, 0);
    if (n <= 0)
        return NBIO_IDLE;
    int soerr = 0;
    socklen_t sl = sizeof soerr;
    if (getsockopt(t->fd, SOL_SOCKET, SO_ERROR, &soerr, &sl) != 0)
        soerr = errno;
    if (soerr == 0) {
        become_established(t);
        return NBIO_ACTIVE;
    }
    t->last_err = nbio__errno(soerr);
    close_fd(t);
    return start_next(t);
}

static int stream_establish(nbio__stream *t)
{
    if (t->deadline >= 0 && nbio_now_ms() >= t->deadline) {
        if (t->resolver != NULL)
            return nbio__fail(&t->base, NBIO_ETIMEDOUT, "resolve %s: timed out after %d ms",
                              t->target, t->opt.connect_timeout_ms);
        return fail_connect(t, NBIO_ETIMEDOUT);
    }
    if (t->resolver != NULL && t->addrs == NULL) {
        const char *why = "";
        int r = nbio__resolve_poll(t->resolver, &why);
        if (r == 0)
            return NBIO_IDLE;
        if (r < 0)
            return nbio__fail(&t->base, r, "resolve %s: %s", t->target, why);
        size_t n;
        const nbio__addr *a = nbio__resolve_addrs(t->resolver, &n);
        t->addrs = malloc(n * sizeof *a);
        if (t->addrs == NULL)
            return nbio__fail(&t->base, NBIO_ENOMEM, "resolve %s: out of memory", t->target);
        memcpy(t->addrs, a, n * sizeof *a);
        t->naddrs = n;
        t->next_addr = 0;
        nbio__resolve_free(t->resolver);
        t->resolver = NULL;
        return start_next(t);
    }
    if (t->fd >= 0)
        return check_connect(t);
    return start_next(t);
}

static int stream_drive(nbio_session *s)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING)
        return stream_establish(t);
    return NBIO_IDLE;
}

/* True when received bytes wait in the socket. */
static bool unread_input(const nbio__stream *t)
{
    char c;
    return recv(t->fd, &c, 1, MSG_PEEK | MSG_DONTWAIT) > 0;
}

/*
 * A send failed with err. When the peer reset or closed the connection
 * while bytes it sent are still unread, those bytes may say why (a TLS
 * alert: "certificate required"), so the failure waits until they are
 * read: the write reports would-block and the session looks ready to read.
 * Returns 0 (deferred) or the error.
 */
static int send_failed(nbio__stream *t, int err)
{
    if ((err == NBIO_EPIPE || err == NBIO_ECONNRESET) && unread_input(t)) {
        t->send_err = err;
        t->write_blocked = false;
        return 0;
    }
    return nbio__fail(&t->base, err, "send: %s", nbio_strerror(err));
}

/* A deferred send failure, once nothing is left to read: 0 or the error. */
static int deferred_send_error(nbio__stream *t)
{
    if (t->send_err == 0 || unread_input(t))
        return 0;
    return nbio__fail(&t->base, t->send_err, "send: %s", nbio_strerror(t->send_err));
}

static long stream_read_into(nbio_session *s, void *dst, size_t cap)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = stream_establish(t);
        return r < 0 ? r : NBIO_IDLE;
    }
    for (;;) {
        ssize_t n = recv(t->fd, dst, cap, 0);
        if (n > 0)
            return (long)n;
        if (n == 0)
            return nbio__fail(s, NBIO_EPEERCLOSED, "closed by peer");
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK)
            return t->send_err != 0 ? deferred_send_error(t) : NBIO_IDLE;
        int e = nbio__errno(errno);
        return nbio__fail(s, e, "recv: %s", nbio_strerror(e));
    }
}

static int stream_read(nbio_session *s, nbio_buf *out)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = stream_establish(t);
        return r < 0 ? r : (s->phase == NBIO__OPEN ? NBIO_ACTIVE : r);
    }
    if (t->rbuf == NULL) {
        t->rbuf = malloc(t->rcap);
        if (t->rbuf == NULL)
            return nbio__fail(s, NBIO_ENOMEM, "read buffer: out of memory");
    }
    long n = stream_read_into(s, t->rbuf, t->rcap);
    if (n <= 0)
        return (int)n;
    out->data = t->rbuf;
    out->len = (size_t)n;
    return NBIO_DATA;
}

static long stream_writev(nbio_session *s, const struct iovec *iov, int iovcnt)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = stream_establish(t);
        if (r < 0 || s->phase == NBIO__ESTABLISHING)
            return r < 0 ? r : 0;
    }
    if (t->send_err != 0)
        return deferred_send_error(t);
    struct msghdr mh;
    memset(&mh, 0, sizeof mh);
    mh.msg_iov = (struct iovec *)iov;
    mh.msg_iovlen = (size_t)iovcnt;
    size_t want = 0;
    for (int i = 0; i < iovcnt; i++)
        want += iov[i].iov_len;
    for (;;) {
        ssize_t n = sendmsg(t->fd, &mh, MSG_NOSIGNAL);
        if (n >= 0) {
            t->write_blocked = (size_t)n < want;
            return (long)n;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->write_blocked = true;
            return 0;
        }
        return send_failed(t, nbio__errno(errno));
    }
}

static int stream_write(nbio_session *s, nbio_buf *buf)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = stream_establish(t);
        if (r < 0)
            return r;
        if (s->phase == NBIO__ESTABLISHING)
            return NBIO_PENDING;
    }
    if (t->send_err != 0) {
        int e = deferred_send_error(t);
        return e < 0 ? e : NBIO_PENDING;
    }
    for (;;) {
        ssize_t n = send(t->fd, buf->data, buf->len, MSG_NOSIGNAL);
        if (n >= 0) {
            buf->data = (const char *)buf->data + n;
            buf->len -= (size_t)n;
            t->write_blocked = buf->len > 0;
            return buf->len == 0 ? NBIO_DONE : NBIO_PENDING;
        }
        if (errno == EINTR)
            continue;
        if (errno == EAGAIN || errno == EWOULDBLOCK) {
            t->write_blocked = true;
            return NBIO_PENDING;
        }
        int e = send_failed(t, nbio__errno(errno));
        return e < 0 ? e : NBIO_PENDING;
    }
}

static int stream_goodbye(nbio_session *s)
{
    nbio__stream *t = (nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING)
        return NBIO_PENDING;
    if (t->fd >= 0)
        (void)shutdown(t->fd, SHUT_WR); /* a reset peer is reported by reads */
    return NBIO_DONE;
}

static void stream_free(nbio_session *s)
{
    nbio__stream *t = (nbio__stream *)s;
    close_fd(t);
    nbio__resolve_free(t->resolver);
    free(t->addrs);
    free(t->rbuf);
    free(t->dns_servers);
    free(t);
}

static int stream_fd(const nbio_session *s)
{
    const nbio__stream *t = (const nbio__stream *)s;
    if (t->fd < 0 && t->resolver != NULL)
        return nbio__resolve_fd(t->resolver, NULL);
    return t->fd;
}

static unsigned stream_interest(const nbio_session *s)
{
    const nbio__stream *t = (const nbio__stream *)s;
    if (s->phase == NBIO__ESTABLISHING) {
        if (t->fd < 0 && t->resolver == NULL)
            return NBIO_READY; /* a connect to retry (a full Unix backlog) */
        bool ww = t->fd >= 0;
        if (t->fd < 0)
            (void)nbio__resolve_fd(t->resolver, &ww);
        return ww ? NBIO_WANT_WRITE : NBIO_WANT_READ;
    }
    if (t->send_err != 0)
        return NBIO_READY; /* read what is left, then the failure is reported */
    unsigned w = t->write_blocked ? NBIO_WANT_WRITE : 0;
    if (!nbio__read_ended(s))
        w |= NBIO_WANT_READ;
    return w;
}

/* TCP and Unix sockets share everything but the name. Writes go straight
 * to the socket: no flush of their own. */
#define STREAM_VTABLE(name)            \
    {                                  \
        .kind = name,                  \
        .drive = stream_drive,         \
        .read = stream_read,           \
        .write = stream_write,         \
        .read_into = stream_read_into, \
        .writev = stream_writev,       \
        .goodbye = stream_goodbye,     \
        .free = stream_free,           \
        .fd = stream_fd,               \
        .interest = stream_interest,   \
    }

const nbio__vtable nbio__tcp_vtable = STREAM_VTABLE("tcp");
const nbio__vtable nbio__unix_vtable = STREAM_VTABLE("unix");

static nbio__stream *stream_new(const nbio__vtable *vt, const nbio_tcp_options *opt,
                                const char *target)
{
    nbio__stream *t = calloc(1, sizeof *t);
    if (t == NULL)
        return NULL;
    nbio__session_init(&t->base, vt, true);
    t->fd = -1;
    if (opt != NULL)
        t->opt = *opt;
    else
        nbio_tcp_options_init(&t->opt);
    if (t->opt.dns_servers != NULL) {
        t->dns_servers = strdup(t->opt.dns_servers);
        if (t->dns_servers == NULL) {
            free(t);
            return NULL;
        }
        t->opt.dns_servers = t->dns_servers;
    }
    t->rcap = t->opt.read_buffer_size > 0 ? t->opt.read_buffer_size : 65536;
    t->deadline = t->opt.connect_timeout_ms > 0 ? nbio_now_ms() + t->opt.connect_timeout_ms : -1;
    snprintf(t->target, sizeof t->target, "%s", target != NULL ? target : "(null)");
    return t;
}

/* Installs a single address to connect to. */
static int set_single_addr(nbio__stream *t, const struct sockaddr_storage *ss, socklen_t len)
{
    t->addrs = malloc(sizeof *t->addrs);
    if (t->addrs == NULL)
        return NBIO_ENOMEM;
    memcpy(&t->addrs[0].ss, ss, sizeof *ss);
    t->addrs[0].len = len;
    t->naddrs = 1;
    return 0;
}

nbio_session *nbio_tcp_connect(const char *addr, const nbio_tcp_options *opt)
{
    nbio__stream *t = stream_new(&nbio__tcp_vtable, opt, addr);
    if (t == NULL)
        return NULL;
    char host[NBIO__HOST_MAX] = "";
    int port;
    const char *why = "";
    if (nbio__split_hostport(addr, host, &port, &why) != 0 || host[0] == '\0') {
        nbio__fail(&t->base, NBIO_EINVAL, "connect %s: %s", t->target,
                   host[0] == '\0' && why[0] == '\0' ? "no host" : why);
        return &t->base;
    }
    struct sockaddr_storage ss;
    socklen_t len = nbio__numeric_sockaddr(host, port, &ss);
    if (len > 0) {
        if (set_single_addr(t, &ss, len) != 0) {
            stream_free(&t->base);
            return NULL;
        }
        (void)start_next(t);
        return &t->base;
    }
    t->resolver = nbio__resolve_start(host, port, &t->opt);
    if (t->resolver == NULL) {
        stream_free(&t->base);
        return NULL;
    }
    (void)stream_establish(t);
    return &t->base;
}

nbio_session *nbio_unix_connect(const char *path, const nbio_tcp_options *opt)
{
    nbio__stream *t = stream_new(&nbio__unix_vtable, opt, path);
    if (t == NULL)
        return NULL;
    struct sockaddr_storage ss;
    socklen_t len = nbio__unix_sockaddr(path, &ss);
    if (len == 0) {
        nbio__fail(&t->base, NBIO_EINVAL, "connect %s: Unix socket path empty or too long",
                   t->target);
        return &t->base;
    }
    if (set_single_addr(t, &ss, len) != 0) {
        stream_free(&t->base);
        return NULL;
    }
    (void)start_next(t);
    return &t->base;
}

nbio_session *nbio_stream_from_fd(int fd, const nbio_tcp_options *opt)
{
    struct sockaddr_storage ss;
    socklen_t len = sizeof ss;
    int domain = AF_INET;
    if (getsockname(fd, (struct sockaddr *)&ss, &len) == 0)
        domain = ss.ss_family;
    nbio__stream *t = stream_new(domain == AF_UNIX ? &nbio__unix_vtable : &nbio__tcp_vtable,
                                 opt, "");
    if (t == NULL) {
        close(fd);
        return NULL;
    }
    t->fd = fd;
    t->domain = domain;
    int fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0) {
        int e = nbio__errno(errno);
        nbio__fail(&t->base, e, "fcntl(O_NONBLOCK): %s", nbio_strerror(e));
        return &t->base;
    }
    nbio__stream_sockopts(fd, domain, &t->opt);
    t->deadline = -1;
    len = sizeof ss;
    if (getpeername(fd, (struct sockaddr *)&ss, &len) == 0)
        nbio__format_sockaddr((struct sockaddr *)&ss, len, t->target, sizeof t->target);
    nbio__established(&t->base);
    return &t->base;
}
