/*
 * The HTTP agent: URLs to exchanges, a pool of idle keep-alive connections
 * per origin, one safe retry, redirects.
 *
 * An exchange is a session whose inner session is the HTTP client session
 * (connection) it uses; the core forwards fd, interest, flush and close to
 * it. The connection goes back to the pool only after the response was
 * handed out whole and the caller read again (the response's slices live
 * in the connection's buffer until then), or when the exchange is freed.
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/session.h"
#include "http/client.h"
#include "http/url.h"
#include "nbio/tcp.h"

#define ORIGIN_MAX 320

typedef struct pooled {
    nbio_session *conn;
    char origin[ORIGIN_MAX];
    int64_t idle_since;
    struct pooled *next;
} pooled;

struct nbio_http_agent {
    nbio_tls_config *tls; /* our reference, or NULL: the default client config */
    nbio_http_agent_options o;
    pooled *idle;
    int refs;   /* the caller's one while not freed, plus one per exchange */
    bool freed; /* nbio_http_agent_free() was called */
};

typedef struct nbio__exchange {
    nbio_session base; /* base.inner: the connection, or NULL between two */
    nbio_http_agent *agent;
    char *url;         /* the URL of the current request (owned) */
    nbio__url u;
    char origin[ORIGIN_MAX];
    /* the request, copied */
    char *method;
    nbio_http_header *hdrs;
    size_t nh;
    char *blob; /* header names and values */
    unsigned char *body;
    size_t body_len;
    bool has_body;
    int reused;       /* 1 / 0 / -1 */
    bool retried;     /* the one retry was spent */
    int redirects;
    bool discarding;  /* streaming a redirect's body away */
    char *location;   /* the redirect to follow once its body is read */
    bool done;        /* the response was handed out; release on the next call */
    bool keep;        /* ...and the connection may be pooled */
} nbio__exchange;

static const nbio__vtable exchange_vtable;

void nbio_http_agent_options_init(nbio_http_agent_options *o)
{
    memset(o, 0, sizeof *o);
    nbio_http_options_init(&o->http);
    o->max_idle_per_origin = 4;
    o->idle_timeout_ms = 30000;
    o->max_redirects = 0;
    o->connect_timeout_ms = 10000;
}

nbio_http_agent *nbio_http_agent_new(nbio_tls_config *tls, const nbio_http_agent_options *o)
{
    nbio_http_agent *a = calloc(1, sizeof *a);
    if (a == NULL)
        return NULL;
    if (o != NULL)
        a->o = *o;
    else
        nbio_http_agent_options_init(&a->o);
    if (tls != NULL)
        a->tls = nbio_tls_config_ref(tls);
    a->refs = 1;
    return a;
}

static void agent_unref(nbio_http_agent *a)
{
    if (a != NULL && --a->refs == 0) {
        nbio_tls_config_unref(a->tls);
        free(a);
    }
}

static void drop_pool(nbio_http_agent *a)
{
    while (a->idle != NULL) {
        pooled *p = a->idle;
        a->idle = p->next;
        nbio_free(p->conn);
        free(p);
    }
}

void nbio_http_agent_free(nbio_http_agent *a)
{
    if (a == NULL || a->freed)
        return;
    a->freed = true;
    drop_pool(a);
    agent_unref(a);
}

/* ---- the pool ----------------------------------------------------------- */

/* A pooled connection to origin that still works, or NULL. Connections
 * found closed or expired on the way are dropped. */
static nbio_session *pool_take(nbio_http_agent *a, const char *origin)
{
    int64_t now = nbio_now_ms();
    for (pooled **pp = &a->idle; *pp != NULL;) {
        pooled *p = *pp;
        bool expired = now - p->idle_since > a->o.idle_timeout_ms;
        if (!expired && strcmp(p->origin, origin) != 0) {
            pp = &p->next;
            continue;
        }
        *pp = p->next;
        nbio_session *c = p->conn;
        free(p);
        if (!expired) {
            /* The server may have closed it while it idled: a read now
             * finds its end (or stray bytes); nothing means alive. */
            nbio_http_response r;
            if (nbio_http_read_response(c, &r) == NBIO_IDLE && nbio__http_idle(c))
                return c;
        }
        nbio_free(c);
    }
    return NULL;
}

static void pool_put(nbio_http_agent *a, const char *origin, nbio_session *c)
{
    int same = 0;
    for (pooled *p = a->idle; p != NULL; p = p->next)
        same += strcmp(p->origin, origin) == 0;
    pooled *p = same < a->o.max_idle_per_origin && !a->freed ? calloc(1, sizeof *p) : NULL;
    if (p == NULL) {
        nbio_free(c);
        return;
    }
    p->conn = c;
    snprintf(p->origin, sizeof p->origin, "%s", origin);
    p->idle_since = nbio_now_ms();
    p->next = a->idle;
    a->idle = p;
}

/* ---- exchanges ------------------------------------------------------------ */

bool nbio__http_is_exchange(const nbio_session *s)
{
    return s != NULL && s->vt == &exchange_vtable;
}

/* Gives the connection back (to the pool when it can carry more). */
static void release_conn(nbio__exchange *x)
{
    nbio_session *c = x->base.inner;
    x->base.inner = NULL;
    if (c == NULL)
        return;
    if (x->keep && !x->agent->freed && nbio__http_idle(c))
        pool_put(x->agent, x->origin, c);
    else
        nbio_free(c);
}

static bool idempotent(const char *m)
{
    static const char *const ok[] = {"GET", "HEAD", "OPTIONS", "TRACE", "PUT", "DELETE"};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++)
        if (strcmp(m, ok[i]) == 0)
            return true;
    return false;
}

/* Sets x->url (taking ownership of url) and parses it. Returns 0 or an
 * error (the exchange ends). */
static int set_url(nbio__exchange *x, char *url)
{
    free(x->url);
    x->url = url;
    const char *why = "";
    if (nbio__url_parse(url, &x->u, &why) < 0)
        return nbio__fail(&x->base, NBIO_EINVAL, "bad URL \"%s\": %s", url, why);
    snprintf(x->origin, sizeof x->origin, "%s://%s%s%s:%d", x->u.tls ? "https" : "http",
             x->u.ipv6 ? "[" : "", x->u.host, x->u.ipv6 ? "]" : "", x->u.port);
    return 0;
}

/* Puts the request on a connection: a pooled one when allowed, else a new
 * one. Returns 0 or an error. */
static int send_request(nbio__exchange *x, bool allow_pool)
{
    nbio_session *s = &x->base;
    nbio_http_agent *a = x->agent;
    nbio_session *c = allow_pool ? pool_take(a, x->origin) : NULL;
    char authority[NBIO__URL_HOST_MAX + 16];
    if (nbio__url_authority(&x->u, authority, sizeof authority) < 0)
        return nbio__fail(s, NBIO_EINVAL, "URL host too long");
    x->reused = c != NULL;
    if (c == NULL) {
        char addr[NBIO__URL_HOST_MAX + 16];
        (void)nbio__url_connect_addr(&x->u, addr, sizeof addr);
        nbio_tcp_options to;
        nbio_tcp_options_init(&to);
        to.connect_timeout_ms = a->o.connect_timeout_ms;
        if (x->u.tls && a->tls == NULL) {
            /* the system's trust store, verification on, ALPN http/1.1 */
            nbio_tls_options o;
            nbio_tls_options_init(&o);
            o.alpn = "http/1.1";
            char why[NBIO__DETAIL_MAX];
            if (nbio_tls_config_new(&a->tls, NBIO_TLS_CLIENT, &o, why, sizeof why) < 0)
                return nbio__fail(s, NBIO_ETLS, "%s", why);
        }
        nbio_session *t = nbio_tcp_connect(addr, &to);
        if (x->u.tls)
            t = nbio_tls_client(t, a->tls, x->u.host);
        c = nbio_http_client(t, authority, &a->o.http);
        if (c == NULL)
            return nbio__fail(s, NBIO_ENOMEM, "HTTP: out of memory");
    }
    /* the target: "/" + the URL's, or the URL's */
    size_t tlen = x->u.target_len + 2;
    char *target = malloc(tlen);
    if (target == NULL) {
        nbio_free(c);
        return nbio__fail(s, NBIO_ENOMEM, "HTTP: out of memory");
    }
    snprintf(target, tlen, "%s%.*s", x->u.slash ? "/" : "", (int)x->u.target_len, x->u.target);
    nbio_http_request r = {x->method, target, x->hdrs, x->nh, x->has_body ? x->body : NULL,
                           x->body_len, false};
    if (x->has_body && r.body == NULL)
        r.body = "";
    int q = nbio__http_queue_request(c, &r, authority);
    free(target);
    if (q < 0) {
        int e = nbio_error(c) != 0 ? nbio__fail_from(s, c, q) : nbio__fail(s, q, "HTTP request: %s", nbio_strerror(q));
        nbio_free(c);
        return e;
    }
    x->base.inner = c;
    x->done = false;
    x->keep = false;
    return 0;
}

/* Resolves a Location against the current URL. Returns a new string, or
 * NULL when out of memory. */
static char *resolve_location(const nbio__exchange *x, nbio_http_slice loc)
{
    char scheme[8];
    snprintf(scheme, sizeof scheme, "%s", x->u.tls ? "https" : "http");
    size_t cap = strlen(x->url) + loc.len + ORIGIN_MAX + 8;
    char *out = malloc(cap);
    if (out == NULL)
        return NULL;
    if (loc.len >= 7 && (strncasecmp(loc.data, "http://", 7) == 0 ||
                         (loc.len >= 8 && strncasecmp(loc.data, "https://", 8) == 0))) {
        snprintf(out, cap, "%.*s", (int)loc.len, loc.data);
    } else if (loc.len >= 2 && loc.data[0] == '/' && loc.data[1] == '/') {
        snprintf(out, cap, "%s:%.*s", scheme, (int)loc.len, loc.data);
    } else if (loc.len >= 1 && loc.data[0] == '/') {
        snprintf(out, cap, "%s://%s%s%s:%d%.*s", scheme, x->u.ipv6 ? "[" : "", x->u.host,
                 x->u.ipv6 ? "]" : "", x->u.port, (int)loc.len, loc.data);
    } else { /* relative to the current path's directory */
        const char *path = x->u.slash ? "/" : x->u.target;
        size_t plen = x->u.slash ? 1 : strcspn(x->u.target, "?");
        while (plen > 0 && path[plen - 1] != '/')
            plen--;
        snprintf(out, cap, "%s://%s%s%s:%d%.*s%.*s", scheme, x->u.ipv6 ? "[" : "", x->u.host,
                 x->u.ipv6 ? "]" : "", x->u.port, (int)plen, path, (int)loc.len, loc.data);
    }
    return out;
}

/* The response is a redirect to follow? Sets x->location. */
static bool wants_redirect(nbio__exchange *x, const nbio_http_response *r)
{
    int st = r->head.status;
    if (x->redirects >= x->agent->o.max_redirects ||
        (st != 301 && st != 302 && st != 303 && st != 307 && st != 308))
        return false;
    const nbio_http_slice *loc = nbio_http_header_find(&r->head, "location", NULL);
    if (loc == NULL || loc->len == 0)
        return false;
    free(x->location);
    x->location = resolve_location(x, *loc);
    if (x->location == NULL)
        return false;
    /* 303 (and 301/302 after a POST, as browsers do) become a GET without
     * a body; 307/308 keep the method and the body. */
    if (st == 303 || ((st == 301 || st == 302) && strcmp(x->method, "POST") == 0)) {
        if (strcmp(x->method, "HEAD") != 0) {
            free(x->method);
            x->method = strdup("GET");
        }
        x->has_body = false;
    }
    return x->method != NULL;
}

/* Follows x->location. Returns NBIO_ACTIVE or an error. */
static int follow(nbio__exchange *x, bool keep)
{
    x->keep = keep;
    release_conn(x);
    char *loc = x->location;
    x->location = NULL;
    x->discarding = false;
    x->redirects++;
    int r = set_url(x, loc);
    if (r < 0)
        return r;
    r = send_request(x, true);
    return r < 0 ? r : NBIO_ACTIVE;
}

int nbio__http_exchange_read(nbio_session *s, nbio_http_response *out)
{
    nbio__exchange *x = (nbio__exchange *)s;
    if (x->done) { /* the response was read: the connection goes back now */
        release_conn(x);
        return nbio__fail(s, NBIO_EPEERCLOSED, "HTTP exchange complete");
    }
    nbio_session *c = s->inner;
    if (c == NULL)
        return nbio__fail(s, NBIO_EIO, "HTTP exchange without a connection");
    int r = nbio_http_read_response(c, out);
    if (r == NBIO_DATA) {
        bool last = out->part == NBIO_HTTP_WHOLE || out->part == NBIO_HTTP_END;
        if (x->discarding) {
            if (last)
                return follow(x, out->keep_alive);
            return NBIO_ACTIVE;
        }
        bool head = out->part == NBIO_HTTP_WHOLE || out->part == NBIO_HTTP_HEAD;
        bool interim = out->part == NBIO_HTTP_WHOLE && out->head.status < 200;
        if (head && !interim && wants_redirect(x, out)) {
            if (out->part == NBIO_HTTP_WHOLE)
                return follow(x, out->keep_alive);
            x->discarding = true;
            return NBIO_ACTIVE;
        }
        if (last && !interim) {
            x->done = true;
            x->keep = out->keep_alive;
        }
        return NBIO_DATA;
    }
    if (r >= 0)
        return r;
    /* A reused connection the server had closed: once, on a fresh one,
     * when nothing of the answer came and the method may be repeated. */
    if (x->reused == 1 && !x->retried && nbio_http_nothing_received(c) && idempotent(x->method) &&
        (r == NBIO_EPEERCLOSED || r == NBIO_ECONNRESET || r == NBIO_EPIPE)) {
        x->retried = true;
        x->keep = false;
        release_conn(x);
        int e = send_request(x, false);
        return e < 0 ? e : NBIO_ACTIVE;
    }
    return nbio__fail_from(s, c, r);
}

unsigned nbio__http_exchange_unanswered(const nbio_session *s)
{
    const nbio__exchange *x = nbio__http_is_exchange(s) ? (const nbio__exchange *)s : NULL;
    if (x == NULL)
        return 0;
    return x->done ? 0 : 1;
}

int nbio_http_exchange_reused(const nbio_session *s)
{
    return nbio__http_is_exchange(s) ? ((const nbio__exchange *)s)->reused : -1;
}

const char *nbio_http_exchange_url(const nbio_session *s)
{
    return nbio__http_is_exchange(s) ? ((const nbio__exchange *)s)->url : NULL;
}

static int exchange_read(nbio_session *s, nbio_buf *out)
{
    nbio_http_response r;
    int n = nbio__http_exchange_read(s, &r);
    if (n == NBIO_DATA) {
        out->data = r.body.data;
        out->len = r.body.len;
    }
    return n;
}

static unsigned exchange_interest(const nbio_session *s)
{
    const nbio__exchange *x = (const nbio__exchange *)s;
    return x->done || s->inner == NULL ? NBIO_READY : 0;
}

static int exchange_fd(const nbio_session *s)
{
    return s->inner != NULL ? nbio_fd(s->inner) : -1;
}

static void exchange_free(nbio_session *s)
{
    nbio__exchange *x = (nbio__exchange *)s;
    if (!x->done)
        x->keep = false;
    release_conn(x);
    agent_unref(x->agent);
    free(x->url);
    free(x->method);
    free(x->hdrs);
    free(x->blob);
    free(x->body);
    free(x->location);
    free(x);
}

static const nbio__vtable exchange_vtable = {
    .kind = "http-exchange",
    .read = exchange_read,
    .free = exchange_free,
    .fd = exchange_fd,
    .interest = exchange_interest,
};

/* Copies the caller's request. Returns 0 or NBIO_ENOMEM. */
static int copy_request(nbio__exchange *x, const nbio_http_request *req)
{
    const char *m = req != NULL && req->method != NULL ? req->method
                    : req != NULL && req->body != NULL ? "POST"
                                                       : "GET";
    if ((x->method = strdup(m)) == NULL)
        return NBIO_ENOMEM;
    if (req == NULL)
        return 0;
    size_t total = 0;
    for (size_t i = 0; i < req->num_headers; i++)
        total += req->headers[i].name.len + req->headers[i].value.len;
    x->nh = req->num_headers;
    x->hdrs = calloc(x->nh + 1, sizeof *x->hdrs);
    x->blob = malloc(total + 1);
    if (x->hdrs == NULL || x->blob == NULL)
        return NBIO_ENOMEM;
    char *p = x->blob;
    for (size_t i = 0; i < x->nh; i++) {
        const nbio_http_header *h = &req->headers[i];
        memcpy(p, h->name.data, h->name.len);
        x->hdrs[i].name = (nbio_http_slice){p, h->name.len};
        p += h->name.len;
        memcpy(p, h->value.data, h->value.len);
        x->hdrs[i].value = (nbio_http_slice){p, h->value.len};
        p += h->value.len;
    }
    if (req->body != NULL) {
        x->has_body = true;
        x->body_len = req->body_len;
        if ((x->body = malloc(req->body_len + 1)) == NULL)
            return NBIO_ENOMEM;
        memcpy(x->body, req->body, req->body_len);
    }
    return 0;
}

nbio_session *nbio_http_agent_request(nbio_http_agent *a, const char *url,
                                      const nbio_http_request *req)
{
    if (a == NULL)
        return NULL;
    nbio__exchange *x = calloc(1, sizeof *x);
    if (x == NULL)
        return NULL;
    nbio__session_init(&x->base, &exchange_vtable, false);
    x->agent = a;
    a->refs++;
    x->reused = -1;
    if (copy_request(x, req) != 0) {
        nbio_free(&x->base);
        return NULL;
    }
    if (req != NULL && req->chunked) {
        nbio__fail(&x->base, NBIO_EUSAGE, "an agent request takes its body whole");
        return &x->base;
    }
    char *u = strdup(url != NULL ? url : "");
    if (u == NULL) {
        nbio_free(&x->base);
        return NULL;
    }
    if (set_url(x, u) == 0 && send_request(x, true) == 0 && nbio__is_establishing(x->base.inner))
        x->base.phase = NBIO__ESTABLISHING; /* the core brings it up with its connection */
    return &x->base;
}
