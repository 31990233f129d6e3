/*
 * `nbio serve`: a static file server (GET, HEAD, ranges, conditional
 * requests, directory listings) and a POST /echo endpoint, on the HTTP/1.1
 * server session (nbio/http_server.h) and the epoll poller, one thread.
 *
 * Each connection is one record (conn) registered with the poller through
 * nbio_set_data(). A request is answered at once: the response head (and a
 * small body) is queued; a large file follows in 64 KiB pieces read with
 * pread() as the session's queue drains, so no file is ever held whole in
 * memory. A write the session cannot take (NBIO_PENDING) puts the
 * connection's reads on hold (poller mask) until it is writable again,
 * as the echo server does. The connection's timer carries its header and
 * idle timeouts (nbio_http_server_phase()), a close's grace, the drain
 * after SIGTERM, and a "continue now" for a connection that used its share
 * of one loop step.
 *
 * Paths never leave --root: the target is percent-decoded segment by
 * segment ("..", a decoded '/' or NUL are refused with 400) and opened with
 * openat2(RESOLVE_BENEATH) relative to the root's descriptor; a symbolic
 * link that leaves the root makes that fail, and then realpath() with a
 * prefix check decides (absolute links inside the root are fine).
 */
#define _GNU_SOURCE
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <linux/openat2.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "accept.h"
#include "cli.h"
#include "log.h"
#include "nbio/http_server.h"
#include "nbio/poll.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"

#define EVENTS_PER_STEP 256
#define REQUESTS_PER_STEP 64      /* fairness: requests served per connection per event */
#define BYTES_PER_STEP (1u << 20) /* fairness: file bytes queued per connection per event */
#define PIECE (64u * 1024)        /* file bytes read and written at a time */
#define CLOSE_GRACE_MS 5000       /* how long a graceful close may take */
#define DRAIN_GRACE_MS 5000       /* SIGTERM: responses in flight get this long */
#define WAIT_CAP_MS 250           /* --idle wait: longest sleep (a signal is seen by then) */
#define ACCESS_BURST 1000         /* access lines per second before they are counted */
#define ERROR_BURST 20            /* other log lines per second */
#define MAX_HEADERS 8
#define CACHE_SLOTS 128            /* small files kept in memory (direct-mapped) */
#define CACHE_MAX_FILE (64u * 1024) /* the largest file kept */
#define CACHE_TTL_MS 1000          /* a kept file is looked at again after this */

typedef enum conn_state {
    C_SERVING, /* reading requests, answering them */
    C_CLOSING  /* nbio_close() until NBIO_DONE, bounded by close_deadline */
} conn_state;

/* A response being written: built per request, kept only while the session
 * has not taken it all. */
typedef struct resp {
    nbio_http_reply reply;
    nbio_http_header h[MAX_HEADERS];
    char hbuf[640];     /* header values made for this response */
    size_t hlen;
    bool head_sent;     /* the session took the head (and a whole body) */
    bool body_shared;   /* reply.body is in a buffer others reuse: copy it to wait */
    char *owned;        /* a body this response owns (listing, pending small file) */
    int fd;             /* a file whose bytes follow in parts, or -1 */
    uint64_t off, left; /* where they are, how many remain */
    char *piece;        /* PIECE bytes: read from the file, not taken yet */
    size_t piece_len;
    /* the access-log line */
    char reqline[288];
    int status;
    uint64_t body_bytes;
} resp;

typedef struct server server;

typedef struct conn {
    nbio_session *s;
    server *srv;
    size_t index; /* in srv->conns */
    char peer[64];
    conn_state state;
    resp *r;       /* the response being written, or NULL */
    bool pending;  /* reads on hold until writable */
    bool again;    /* used its share of a step: come back at once */
    bool close_after;
    int64_t close_deadline;
    int64_t last_progress; /* when bytes last left toward the client */
    int64_t timer_at;      /* the deadline armed, -1 none */
} conn;

/* A small file kept in memory, re-checked (open, fstat) once CACHE_TTL_MS
 * have passed, so a change shows within that time. */
typedef struct cached {
    char *rel; /* NULL: an empty slot */
    char *data;
    size_t size;
    struct timespec mtime;
    dev_t dev;
    ino_t ino;
    char lm[40];      /* its Last-Modified */
    int64_t checked;  /* when it was last compared with the file */
} cached;

struct server {
    nbio_session *listener;
    nbio_poller *poller;
    char address[128];
    char *root;        /* realpath of --root */
    size_t root_len;
    int root_fd;
    bool no_openat2;   /* the kernel has no openat2: realpath every time */
    nbio_tls_config *tls;
    nbio_http_server_options hopt;
    int idle_timeout_ms, header_timeout_ms;
    bool quiet;
    cli_log access, log;
    conn **conns;
    size_t n, cap;
    int64_t now;
    bool draining;
    int64_t drain_deadline;
    char scratch[PIECE]; /* a small file's bytes, copied by the session */
    cached cache[CACHE_SLOTS];
};

/* ---- helpers --------------------------------------------------------------- */

/* Adds a header whose value is copied into r->hbuf (or static when copy is
 * false). */
static void add_header(resp *r, const char *name, const char *value, size_t len, bool copy)
{
    if (r->reply.num_headers >= MAX_HEADERS)
        return;
    if (copy) {
        if (r->hlen + len > sizeof r->hbuf)
            return;
        memcpy(r->hbuf + r->hlen, value, len);
        value = r->hbuf + r->hlen;
        r->hlen += len;
    }
    nbio_http_header *h = &r->h[r->reply.num_headers++];
    h->name.data = name;
    h->name.len = strlen(name);
    h->value.data = value;
    h->value.len = len;
}

static void add_header_str(resp *r, const char *name, const char *value)
{
    add_header(r, name, value, strlen(value), false);
}

static void add_header_fmt(resp *r, const char *name, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_header_fmt(resp *r, const char *name, const char *fmt, ...)
{
    char buf[256];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof buf)
        return;
    add_header(r, name, buf, (size_t)n, true);
}

static const char *content_type(const char *path)
{
    static const struct {
        const char *ext, *type;
    } types[] = {
        {"html", "text/html; charset=utf-8"},
        {"htm", "text/html; charset=utf-8"},
        {"txt", "text/plain; charset=utf-8"},
        {"css", "text/css"},
        {"js", "text/javascript"},
        {"mjs", "text/javascript"},
        {"json", "application/json"},
        {"svg", "image/svg+xml"},
        {"png", "image/png"},
        {"jpg", "image/jpeg"},
        {"jpeg", "image/jpeg"},
        {"gif", "image/gif"},
        {"wasm", "application/wasm"},
        {"pdf", "application/pdf"},
    };
    const char *slash = strrchr(path, '/');
    const char *base = slash != NULL ? slash + 1 : path;
    const char *dot = strrchr(base, '.');
    if (dot != NULL && dot != base)
        for (size_t i = 0; i < sizeof types / sizeof types[0]; i++)
            if (strcasecmp(dot + 1, types[i].ext) == 0)
                return types[i].type;
    return "application/octet-stream";
}

/* RFC 1123 (IMF-fixdate) form of t. */
static void http_date(time_t t, char *buf, size_t len)
{
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(buf, len, "%a, %d %b %Y %H:%M:%S GMT", &tm);
}

/* Parses an HTTP date (IMF-fixdate, RFC 850 or asctime). Returns false when
 * it is none of them. */
static bool parse_http_date(const nbio_http_slice *v, time_t *out)
{
    char buf[64];
    if (v->len == 0 || v->len >= sizeof buf)
        return false;
    memcpy(buf, v->data, v->len);
    buf[v->len] = '\0';
    static const char *const formats[] = {"%a, %d %b %Y %H:%M:%S GMT",
                                          "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %e %H:%M:%S %Y"};
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        struct tm tm;
        memset(&tm, 0, sizeof tm);
        const char *end = strptime(buf, formats[i], &tm);
        if (end != NULL && *end == '\0') {
            *out = timegm(&tm);
            return *out != (time_t)-1;
        }
    }
    return false;
}

/* Parses decimal digits [p, end) into *v. Returns false when empty or too
 * large. */
static bool parse_u64(const char *p, const char *end, uint64_t *v)
{
    if (p == end)
        return false;
    uint64_t x = 0;
    for (; p < end; p++) {
        if (*p < '0' || *p > '9' || x > (UINT64_MAX - 9) / 10)
            return false;
        x = x * 10 + (uint64_t)(*p - '0');
    }
    *v = x;
    return true;
}

/* A Range header against a file of size bytes: 0 ignore it (absent,
 * malformed, several ranges: the whole file is served), 1 one satisfiable
 * range [*start, *start + *len), -1 unsatisfiable (416). */
static int parse_range(const nbio_http_slice *v, uint64_t size, uint64_t *start, uint64_t *len)
{
    const char *p = v->data, *end = v->data + v->len;
    if (v->len < 6 || strncasecmp(p, "bytes=", 6) != 0)
        return 0;
    p += 6;
    while (p < end && (*p == ' ' || *p == '\t'))
        p++;
    while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
        end--;
    if (memchr(p, ',', (size_t)(end - p)) != NULL)
        return 0;
    const char *dash = memchr(p, '-', (size_t)(end - p));
    if (dash == NULL)
        return 0;
    uint64_t a, b;
    if (dash == p) { /* -N: the last N bytes */
        if (!parse_u64(dash + 1, end, &b))
            return 0;
        if (b == 0 || size == 0)
            return -1;
        if (b > size)
            b = size;
        *start = size - b;
        *len = b;
        return 1;
    }
    if (!parse_u64(p, dash, &a)) {
        /* a first position too large for 64 bits is past any file */
        for (const char *q = p; q < dash; q++)
            if (*q < '0' || *q > '9')
                return 0;
        return -1;
    }
    if (dash + 1 == end) { /* A- */
        if (a >= size)
            return -1;
        *start = a;
        *len = size - a;
        return 1;
    }
    if (!parse_u64(dash + 1, end, &b)) {
        for (const char *q = dash + 1; q < end; q++)
            if (*q < '0' || *q > '9')
                return 0;
        b = UINT64_MAX; /* a last position too large: to the end */
    }
    if (b < a)
        return 0; /* invalid: ignored (RFC 9110 §14.2) */
    if (a >= size)
        return -1;
    if (b >= size)
        b = size - 1;
    *start = a;
    *len = b - a + 1;
    return 1;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)tolower((unsigned char)c);
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

/*
 * Turns a request target into a path relative to the root ("" for the root
 * itself, "a/b.txt"): absolute-form is reduced to its path, the query is
 * cut, each segment is percent-decoded; empty and "." segments vanish.
 * Returns 0, or the status to answer: 400 for a target that is not a path,
 * a bad escape, a decoded NUL or '/', or a ".." segment; 414 when too long.
 * *dir_form: the path ends with '/'. *raw_len: bytes of the path part.
 */
static int target_path(nbio_http_slice t, char *out, size_t cap, bool *dir_form, size_t *raw_len)
{
    const char *p = t.data, *end = t.data + t.len;
    if ((t.len > 7 && strncasecmp(p, "http://", 7) == 0) ||
        (t.len > 8 && strncasecmp(p, "https://", 8) == 0)) {
        p = (const char *)memchr(p, ':', t.len) + 3;
        const char *slash = memchr(p, '/', (size_t)(end - p));
        if (slash == NULL)
            return 400;
        p = slash;
    }
    if (p == end || *p != '/')
        return 400;
    const char *q = p;
    while (q < end && *q != '?' && *q != '#')
        q++;
    end = q;
    *raw_len = (size_t)(end - t.data);
    *dir_form = end[-1] == '/';
    size_t o = 0;
    while (p < end) {
        while (p < end && *p == '/')
            p++;
        if (p == end)
            break;
        size_t seg_start = o;
        if (o > 0) {
            if (o + 1 >= cap)
                return 414;
            out[o++] = '/';
            seg_start = o;
        }
        for (; p < end && *p != '/'; p++) {
            char c = *p;
            if (c == '%') {
                int hi, lo;
                if (end - p < 3 || (hi = hexval(p[1])) < 0 || (lo = hexval(p[2])) < 0)
                    return 400;
                c = (char)(hi * 16 + lo);
                p += 2;
                if (c == '\0' || c == '/')
                    return 400;
            }
            if (o + 1 >= cap)
                return 414;
            out[o++] = c;
        }
        size_t seg = o - seg_start;
        if (seg == 2 && out[seg_start] == '.' && out[seg_start + 1] == '.')
            return 400;
        if (seg == 1 && out[seg_start] == '.') /* "." : nothing */
            o = seg_start > 0 ? seg_start - 1 : 0;
    }
    out[o] = '\0';
    return 0;
}

/* Opens rel (relative to the root) without leaving it. Returns the
 * descriptor, or minus the status to answer (-403, -404). */
static int open_beneath(server *srv, const char *rel)
{
    const char *path = rel[0] != '\0' ? rel : ".";
    int flags = O_RDONLY | O_CLOEXEC | O_NONBLOCK | O_NOCTTY;
    if (!srv->no_openat2) {
        struct open_how how;
        memset(&how, 0, sizeof how);
        how.flags = (uint64_t)flags;
        how.resolve = RESOLVE_BENEATH | RESOLVE_NO_MAGICLINKS;
        long fd = syscall(SYS_openat2, srv->root_fd, path, &how, sizeof how);
        if (fd >= 0)
            return (int)fd;
        if (errno == ENOENT || errno == ENOTDIR || errno == ENAMETOOLONG)
            return -404;
        if (errno == EACCES)
            return -403;
        if (errno == ENOSYS || errno == E2BIG || errno == EPERM)
            srv->no_openat2 = true; /* not on this kernel (or filtered): realpath */
        else if (errno != EXDEV && errno != ELOOP)
            return -404;
        /* EXDEV: a link leaves the root or is absolute; realpath decides */
    }
    char full[PATH_MAX + 1], real[PATH_MAX + 1];
    if ((size_t)snprintf(full, sizeof full, "%s/%s", srv->root, rel) >= sizeof full)
        return -404;
    if (realpath(full, real) == NULL)
        return errno == EACCES ? -403 : -404;
    bool inside = srv->root_len == 1 /* the root is "/" */ ||
                  (strncmp(real, srv->root, srv->root_len) == 0 &&
                   (real[srv->root_len] == '/' || real[srv->root_len] == '\0'));
    if (!inside)
        return -403;
    int fd = open(real, flags);
    if (fd < 0)
        return errno == EACCES ? -403 : -404;
    return fd;
}

/* Appends to a growing buffer; returns false when out of memory. */
typedef struct sbuf {
    char *p;
    size_t len, cap;
    bool oom;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n)
{
    if (b->oom)
        return;
    if (b->len + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 4096;
        while (cap < b->len + n + 1)
            cap *= 2;
        char *p = realloc(b->p, cap);
        if (p == NULL) {
            b->oom = true;
            return;
        }
        b->p = p;
        b->cap = cap;
    }
    memcpy(b->p + b->len, s, n);
    b->len += n;
    b->p[b->len] = '\0';
}

static void sb_str(sbuf *b, const char *s)
{
    sb_add(b, s, strlen(s));
}

static void sb_html(sbuf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': sb_str(b, "&amp;"); break;
        case '<': sb_str(b, "&lt;"); break;
        case '>': sb_str(b, "&gt;"); break;
        case '"': sb_str(b, "&quot;"); break;
        case '\'': sb_str(b, "&#39;"); break;
        default: sb_add(b, s, 1);
        }
    }
}

static void sb_url(sbuf *b, const char *s)
{
    static const char hex[] = "0123456789ABCDEF";
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
            sb_add(b, s, 1);
        } else {
            char e[3] = {'%', hex[c >> 4], hex[c & 15]};
            sb_add(b, e, 3);
        }
    }
}

static int name_cmp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* An HTML listing of the directory open as fd (which this takes). rel is
 * its path under the root. Returns the page, or NULL. */
static char *listing(int fd, const char *rel, size_t *len)
{
    DIR *d = fdopendir(fd);
    if (d == NULL) {
        close(fd);
        return NULL;
    }
    char **names = NULL;
    size_t n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        bool is_dir = e->d_type == DT_DIR;
        if (e->d_type == DT_UNKNOWN || e->d_type == DT_LNK) {
            struct stat st;
            is_dir = fstatat(dirfd(d), e->d_name, &st, 0) == 0 && S_ISDIR(st.st_mode);
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 64;
            char **p = realloc(names, cap * sizeof *p);
            if (p == NULL)
                break;
            names = p;
        }
        size_t l = strlen(e->d_name);
        char *copy = malloc(l + 2);
        if (copy == NULL)
            break;
        memcpy(copy, e->d_name, l);
        copy[l] = is_dir ? '/' : '\0';
        copy[l + 1] = '\0';
        names[n++] = copy;
    }
    closedir(d);
    qsort(names, n, sizeof *names, name_cmp);
    sbuf b = {0};
    char title[PATH_MAX + 4];
    snprintf(title, sizeof title, "/%s%s", rel, rel[0] ? "/" : "");
    sb_str(&b, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>Index of ");
    sb_html(&b, title);
    sb_str(&b, "</title></head>\n<body><h1>Index of ");
    sb_html(&b, title);
    sb_str(&b, "</h1>\n<ul>\n");
    if (rel[0] != '\0')
        sb_str(&b, "<li><a href=\"../\">../</a></li>\n");
    for (size_t i = 0; i < n; i++) {
        size_t l = strlen(names[i]);
        bool is_dir = l > 0 && names[i][l - 1] == '/';
        if (is_dir)
            names[i][l - 1] = '\0';
        sb_str(&b, "<li><a href=\"");
        sb_url(&b, names[i]);
        if (is_dir)
            sb_str(&b, "/");
        sb_str(&b, "\">");
        sb_html(&b, names[i]);
        if (is_dir)
            sb_str(&b, "/");
        sb_str(&b, "</a></li>\n");
        free(names[i]);
    }
    free(names);
    sb_str(&b, "</ul>\n</body></html>\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    *len = b.len;
    return b.p;
}

/* ---- connections ------------------------------------------------------------ */

static void resp_free(resp *r)
{
    if (r == NULL)
        return;
    if (r->fd >= 0)
        close(r->fd);
    free(r->owned);
    free(r->piece);
    free(r);
}

static void remove_conn(server *srv, conn *c)
{
    size_t i = c->index;
    srv->conns[i] = srv->conns[--srv->n];
    srv->conns[i]->index = i;
    resp_free(c->r);
    nbio_free(c->s); /* also leaves the poller */
    free(c);
}

/* The connection's next deadline, or -1. */
static int64_t conn_deadline(const server *srv, const conn *c)
{
    if (c->state == C_CLOSING)
        return c->close_deadline;
    if (c->again)
        return srv->now;
    int64_t since = 0, d = -1;
    switch (nbio_http_server_phase(c->s, &since)) {
    case NBIO_HTTP_WAIT_REQUEST:
        d = srv->idle_timeout_ms > 0 ? since + srv->idle_timeout_ms : -1;
        if (srv->draining)
            d = srv->now; /* idle keep-alive connection: close it now */
        break;
    case NBIO_HTTP_WAIT_HEAD:
    case NBIO_HTTP_WAIT_BODY:
        d = srv->header_timeout_ms > 0 ? since + srv->header_timeout_ms : -1;
        break;
    case NBIO_HTTP_WAIT_RESPONSE:
        /* a client that stopped reading its response */
        if (c->pending && srv->idle_timeout_ms > 0)
            d = c->last_progress + srv->idle_timeout_ms;
        break;
    case NBIO_HTTP_WAIT_DONE:
        break;
    }
    if (srv->draining && (d < 0 || d > srv->drain_deadline))
        d = srv->drain_deadline;
    return d;
}

static void arm_timer(server *srv, conn *c)
{
    int64_t d = conn_deadline(srv, c);
    if (d != c->timer_at) {
        c->timer_at = d;
        (void)nbio_poller_set_timer(srv->poller, c->s, d);
    }
}

static void set_pending(server *srv, conn *c, bool pending)
{
    if (c->pending != pending) {
        c->pending = pending;
        (void)nbio_poller_set_mask(srv->poller, c->s, pending ? NBIO_WANT_WRITE : ~0u);
    }
}

static void start_closing(server *srv, conn *c)
{
    c->state = C_CLOSING;
    c->again = false;
    c->close_deadline = srv->now + CLOSE_GRACE_MS;
    if (srv->draining && c->close_deadline > srv->drain_deadline)
        c->close_deadline = srv->drain_deadline;
    set_pending(srv, c, false);
}

static void log_error(server *srv, conn *c, int err, const char *what)
{
    const char *d = nbio_detail(c->s);
    cli_log_line(&srv->log, "%s %s: %s: %s", what, c->peer, nbio_errname(err),
                 d[0] ? d : nbio_strerror(err));
}

static void access_line(server *srv, conn *c, const char *reqline, int status, uint64_t bytes)
{
    if (!srv->quiet)
        cli_log_line(&srv->access, "%s \"%s\" %d %" PRIu64, c->peer, reqline, status, bytes);
}

/* "GET /path HTTP/1.1" for the log: quotes, backslashes and bytes outside
 * printable ASCII escaped, the target cut at 200 bytes. */
static void make_reqline(resp *r, const nbio_http_incoming *in)
{
    char *o = r->reqline, *end = r->reqline + sizeof r->reqline - 16;
    const nbio_http_slice parts[2] = {in->head.method, in->head.target};
    for (int k = 0; k < 2; k++) {
        size_t max = k == 0 ? 24 : 200;
        for (size_t i = 0; i < parts[k].len && o < end; i++) {
            unsigned char ch = (unsigned char)parts[k].data[i];
            if (i == max) {
                o += snprintf(o, (size_t)(end - o), "...");
                break;
            }
            if (ch < 0x21 || ch > 0x7e || ch == '"' || ch == '\\')
                o += snprintf(o, (size_t)(end - o), "\\x%02x", ch);
            else
                *o++ = (char)ch;
        }
        *o++ = ' ';
    }
    snprintf(o, 16, "HTTP/1.%d", in->head.minor_version);
}

/* Continues the response in hand. Returns NBIO_DONE (all taken: r freed),
 * NBIO_PENDING (the session's queue is full), NBIO_ACTIVE (this step's share
 * used: come back), or an error. */
static int advance(server *srv, conn *c)
{
    resp *r = c->r;
    size_t budget = BYTES_PER_STEP;
    for (int tries = 0;; tries++) {
        int w = NBIO_DONE;
        if (!r->head_sent) {
            w = nbio_http_write_response(c->s, &r->reply);
            if (w == NBIO_DONE) {
                r->head_sent = true;
                if (r->reply.body != NULL)
                    c->last_progress = srv->now;
            } else if (w == NBIO_PENDING && r->body_shared) {
                /* keep the body: the scratch buffer or cache slot is shared */
                char *copy = malloc(r->reply.body_len > 0 ? r->reply.body_len : 1);
                if (copy == NULL)
                    return NBIO_ENOMEM;
                memcpy(copy, r->reply.body, r->reply.body_len);
                free(r->owned);
                r->owned = copy;
                r->reply.body = copy;
                r->body_shared = false;
            }
        }
        while (w == NBIO_DONE && r->left > 0) {
            if (r->piece_len == 0) {
                if (budget == 0)
                    return NBIO_ACTIVE;
                if (r->piece == NULL && (r->piece = malloc(PIECE)) == NULL)
                    return NBIO_ENOMEM;
                size_t want = r->left < PIECE ? (size_t)r->left : PIECE;
                ssize_t got = pread(r->fd, r->piece, want, (off_t)r->off);
                if (got <= 0) {
                    /* the file shrank or failed under us: the length we
                     * announced cannot be kept, the connection must end */
                    cli_log_line(&srv->log, "dropped %s: reading the file failed at byte %" PRIu64
                                 ": %s", c->peer, r->off,
                                 got < 0 ? strerror(errno) : "it shrank");
                    return NBIO_EIO;
                }
                r->piece_len = (size_t)got;
                budget = budget > (size_t)got ? budget - (size_t)got : 0;
            }
            w = nbio_http_write_response_body(c->s, r->piece, r->piece_len);
            if (w == NBIO_DONE) {
                r->off += r->piece_len;
                r->left -= r->piece_len;
                r->piece_len = 0;
                c->last_progress = srv->now;
            }
        }
        if (w < 0)
            return w;
        if (w == NBIO_DONE)
            break;
        /* NBIO_PENDING: the queue is full; send some of it and try again */
        int d = nbio_drive(c->s);
        if (d < 0)
            return d;
        if (d == NBIO_IDLE || tries >= 8)
            return NBIO_PENDING;
        c->last_progress = srv->now;
    }
    access_line(srv, c, r->reqline, r->status, r->body_bytes);
    resp_free(r);
    c->r = NULL;
    return NBIO_DONE;
}

/* Fills in a short text response. */
static void plain(resp *r, int status, const char *text)
{
    r->status = status;
    r->reply.status = status;
    add_header_str(r, "Content-Type", "text/plain; charset=utf-8");
    r->reply.body = text;
    r->reply.body_len = strlen(text);
    r->body_bytes = r->reply.body_len;
}

static bool method_is(const nbio_http_incoming *in, const char *m)
{
    return nbio_http_slice_eq(in->head.method, m);
}

/* FNV-1a of a path, for its cache slot. */
static size_t cache_slot(const char *rel)
{
    uint64_t h = 1469598103934665603ull;
    for (; *rel; rel++)
        h = (h ^ (unsigned char)*rel) * 1099511628211ull;
    return (size_t)(h % CACHE_SLOTS);
}

/* The kept copy of rel when it was checked less than CACHE_TTL_MS ago. */
static const cached *cache_fresh(server *srv, const char *rel)
{
    const cached *k = &srv->cache[cache_slot(rel)];
    if (k->rel != NULL && srv->now - k->checked < CACHE_TTL_MS && strcmp(k->rel, rel) == 0)
        return k;
    return NULL;
}

/* rel was opened as fd (taken here) and fstat'ed into sb: returns its kept
 * copy, brought up to date, or NULL when it cannot be read whole. */
static const cached *cache_fill(server *srv, const char *rel, int fd, const struct stat *sb)
{
    cached *k = &srv->cache[cache_slot(rel)];
    if (k->rel != NULL && strcmp(k->rel, rel) == 0 && k->dev == sb->st_dev &&
        k->ino == sb->st_ino && k->size == (size_t)sb->st_size &&
        k->mtime.tv_sec == sb->st_mtim.tv_sec && k->mtime.tv_nsec == sb->st_mtim.tv_nsec) {
        close(fd);
        k->checked = srv->now;
        return k;
    }
    size_t size = (size_t)sb->st_size;
    char *data = malloc(size > 0 ? size : 1);
    char *name = strdup(rel);
    size_t got = 0;
    while (data != NULL && name != NULL && got < size) {
        ssize_t n = pread(fd, data + got, size - got, (off_t)got);
        if (n <= 0)
            break;
        got += (size_t)n;
    }
    close(fd);
    if (data == NULL || name == NULL || got != size) {
        free(data);
        free(name);
        return NULL;
    }
    free(k->rel);
    free(k->data);
    k->rel = name;
    k->data = data;
    k->size = size;
    k->mtime = sb->st_mtim;
    k->dev = sb->st_dev;
    k->ino = sb->st_ino;
    http_date(sb->st_mtim.tv_sec, k->lm, sizeof k->lm);
    k->checked = srv->now;
    return k;
}

/* Answers GET/HEAD for a regular file: its bytes are in data (a kept copy)
 * or read from fd (taken here). Conditional and range requests included. */
static void answer_file(server *srv, resp *r, const nbio_http_incoming *in, const char *rel,
                        int fd, const char *data, uint64_t size, time_t mtime, const char *lm)
{
    bool head = method_is(in, "HEAD");
    add_header_str(r, "Content-Type", content_type(rel));
    add_header(r, "Last-Modified", lm, strlen(lm), true);
    const nbio_http_slice *ims = nbio_http_header_find(&in->head, "if-modified-since", NULL);
    time_t since;
    if (ims != NULL && nbio_http_header_find(&in->head, "if-none-match", NULL) == NULL &&
        parse_http_date(ims, &since) && mtime <= since) {
        if (fd >= 0)
            close(fd);
        r->status = r->reply.status = 304;
        return;
    }
    add_header_str(r, "Accept-Ranges", "bytes");
    uint64_t start = 0, len = size;
    int status = 200;
    const nbio_http_slice *range = nbio_http_header_find(&in->head, "range", NULL);
    const nbio_http_slice *if_range = nbio_http_header_find(&in->head, "if-range", NULL);
    if (range != NULL && (if_range == NULL || nbio_http_slice_eq(*if_range, lm))) {
        int k = parse_range(range, size, &start, &len);
        if (k < 0) {
            if (fd >= 0)
                close(fd);
            r->reply.num_headers = 0; /* a plain 416 */
            r->hlen = 0;
            add_header_fmt(r, "Content-Range", "bytes */%" PRIu64, size);
            plain(r, 416, "Range Not Satisfiable\n");
            return;
        }
        if (k > 0) {
            status = 206;
            add_header_fmt(r, "Content-Range", "bytes %" PRIu64 "-%" PRIu64 "/%" PRIu64, start,
                           start + len - 1, size);
        } else {
            start = 0;
            len = size;
        }
    }
    r->status = r->reply.status = status;
    if (head) {
        if (fd >= 0)
            close(fd);
        add_header_fmt(r, "Content-Length", "%" PRIu64, len);
        return;
    }
    r->body_bytes = len;
    if (data != NULL) {
        r->reply.body = data + start;
        r->reply.body_len = (size_t)len;
        r->body_shared = true;
        return;
    }
    if (len <= PIECE) {
        ssize_t got = len > 0 ? pread(fd, srv->scratch, (size_t)len, (off_t)start) : 0;
        close(fd);
        if (got != (ssize_t)len) {
            r->reply.num_headers = 0;
            r->hlen = 0;
            r->body_bytes = 0;
            plain(r, 500, "Internal Server Error: the file could not be read\n");
            return;
        }
        r->reply.body = srv->scratch;
        r->reply.body_len = (size_t)len;
        r->body_shared = true;
        return;
    }
    r->fd = fd;
    r->off = start;
    r->left = len;
    r->reply.content_length = len;
}

/* Builds the response for a file or directory request. */
static void answer_path(server *srv, resp *r, const nbio_http_incoming *in)
{
    bool get = method_is(in, "GET"), head = method_is(in, "HEAD");
    char rel[PATH_MAX];
    bool dir_form = false;
    size_t raw_len = 0;
    int st = target_path(in->head.target, rel, sizeof rel, &dir_form, &raw_len);
    if (st == 400) {
        plain(r, 400, "Bad Request: the path is not allowed\n");
        return;
    }
    if (st != 0) {
        plain(r, st, "URI Too Long\n");
        return;
    }
    if (strcmp(rel, "echo") == 0 && !dir_form && method_is(in, "POST")) {
        r->status = 200;
        r->reply.status = 200;
        const nbio_http_slice *ct = nbio_http_header_find(&in->head, "content-type", NULL);
        if (ct != NULL)
            add_header(r, "Content-Type", ct->data, ct->len, false); /* lives until the next read */
        r->reply.body = in->body.data != NULL ? in->body.data : "";
        r->reply.body_len = in->body.len;
        r->body_bytes = in->body.len;
        return;
    }
    if ((get || head) && rel[0] != '\0' && !dir_form) {
        const cached *k = cache_fresh(srv, rel);
        if (k != NULL) {
            answer_file(srv, r, in, rel, -1, k->data, k->size, k->mtime.tv_sec, k->lm);
            return;
        }
    }
    int fd = open_beneath(srv, rel);
    if (fd == -403) {
        plain(r, 403, "Forbidden\n");
        return;
    }
    if (fd < 0) {
        plain(r, 404, "Not Found\n");
        return;
    }
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !(S_ISREG(sb.st_mode) || S_ISDIR(sb.st_mode))) {
        close(fd);
        plain(r, 403, "Forbidden\n");
        return;
    }
    if (!get && !head) {
        close(fd);
        plain(r, 405, "Method Not Allowed\n");
        add_header_str(r, "Allow", "GET, HEAD");
        return;
    }
    if (S_ISDIR(sb.st_mode)) {
        if (!dir_form) { /* relative links in the page need the slash */
            close(fd);
            r->status = r->reply.status = 301;
            char loc[600];
            const char *t = in->head.target.data;
            size_t q = in->head.target.len - raw_len;
            if (raw_len + 1 + q < sizeof loc && t[0] == '/') {
                memcpy(loc, t, raw_len);
                loc[raw_len] = '/';
                memcpy(loc + raw_len + 1, t + raw_len, q);
                add_header(r, "Location", loc, raw_len + 1 + q, true);
            }
            plain(r, 301, "Moved Permanently\n");
            return;
        }
        char index[PATH_MAX + 16];
        snprintf(index, sizeof index, "%s%sindex.html", rel, rel[0] ? "/" : "");
        int ifd = open_beneath(srv, index);
        struct stat isb;
        if (ifd >= 0 && fstat(ifd, &isb) == 0 && S_ISREG(isb.st_mode)) {
            close(fd);
            fd = ifd;
            sb = isb;
            size_t il = strlen(index);
            if (il < sizeof rel)
                memcpy(rel, index, il + 1); /* its name gives the type */
        } else {
            if (ifd >= 0)
                close(ifd);
            size_t len = 0;
            char *page = listing(fd, rel, &len); /* takes fd */
            if (page == NULL) {
                plain(r, 500, "Internal Server Error\n");
                return;
            }
            r->status = r->reply.status = 200;
            add_header_str(r, "Content-Type", "text/html; charset=utf-8");
            r->owned = page;
            if (head) {
                add_header_fmt(r, "Content-Length", "%zu", len);
            } else {
                r->reply.body = page;
                r->reply.body_len = len;
                r->body_bytes = len;
            }
            return;
        }
    }
    /* a regular file */
    if ((uint64_t)sb.st_size <= CACHE_MAX_FILE) {
        const cached *k = cache_fill(srv, rel, fd, &sb); /* takes fd */
        if (k != NULL) {
            answer_file(srv, r, in, rel, -1, k->data, k->size, k->mtime.tv_sec, k->lm);
            return;
        }
        if ((fd = open_beneath(srv, rel)) < 0) {
            plain(r, 404, "Not Found\n");
            return;
        }
    }
    char lm[40];
    http_date(sb.st_mtim.tv_sec, lm, sizeof lm);
    answer_file(srv, r, in, rel, fd, NULL, (uint64_t)sb.st_size, sb.st_mtim.tv_sec, lm);
}

/* Builds the response to one request (c->r); advance() writes it. */
static int handle_request(server *srv, conn *c, const nbio_http_incoming *in)
{
    resp *r = calloc(1, sizeof *r);
    if (r == NULL)
        return NBIO_ENOMEM;
    r->fd = -1;
    if (!srv->quiet)
        make_reqline(r, in);
    answer_path(srv, r, in);
    if (method_is(in, "HEAD") || r->status == 304)
        r->body_bytes = 0;
    c->close_after = !in->keep_alive || srv->draining;
    r->reply.headers = r->h;
    r->reply.close = c->close_after;
    c->r = r;
    return 0;
}

/* Serves what the connection has: the response in hand, then requests.
 * Returns 0 or an error that ends it. */
static int serve_requests(server *srv, conn *c)
{
    c->again = false;
    bool wrote = false;
    for (int k = 0;; k++) {
        if (c->r != NULL) {
            int w = advance(srv, c);
            if (w < 0)
                return w;
            if (w == NBIO_PENDING) {
                set_pending(srv, c, true);
                return 0;
            }
            set_pending(srv, c, false);
            wrote = true;
            if (w == NBIO_ACTIVE) { /* its share of this step is used */
                c->again = true;
                break;
            }
            if (c->close_after) {
                start_closing(srv, c);
                return 0;
            }
        }
        if (k == REQUESTS_PER_STEP) /* more requests buffered: READY brings it back */
            break;
        nbio_http_incoming in;
        int r = nbio_http_read_request(c->s, &in);
        wrote = false; /* a read that finds nothing sends what was queued */
        if (r == NBIO_IDLE)
            break;
        if (r == NBIO_ACTIVE)
            continue;
        if (r == NBIO_EPEERCLOSED) { /* between requests: nothing owed */
            start_closing(srv, c);
            return 0;
        }
        if (r < 0) {
            int st = nbio_http_server_status_sent(c->s);
            if (st == 0)
                return r;
            access_line(srv, c, "-", st, 0);
            start_closing(srv, c); /* let the refusal go out */
            return 0;
        }
        if ((r = handle_request(srv, c, &in)) < 0)
            return r;
    }
    if (wrote) {
        int d = nbio_drive(c->s);
        if (d < 0)
            return d;
    }
    return 0;
}

/* Our graceful close. Returns 1 when done (free it), 0 to go on, or an
 * error. */
static int serve_closing(conn *c)
{
    int r = nbio_close(c->s);
    if (r == NBIO_DONE)
        return 1;
    return r < 0 ? r : 0;
}

/* A due timer. Returns true when the connection was removed. */
static bool conn_timer(server *srv, conn *c)
{
    c->timer_at = -1; /* it fired */
    if (c->state == C_CLOSING) {
        if (srv->now >= c->close_deadline) {
            cli_log_line(&srv->log, "dropped %s: graceful close took too long", c->peer);
            remove_conn(srv, c);
            return true;
        }
        return false;
    }
    if (c->again)
        return false;
    int64_t since = 0;
    enum nbio_http_server_wait w = nbio_http_server_phase(c->s, &since);
    int64_t due = conn_deadline(srv, c);
    if (due < 0 || srv->now < due)
        return false;
    if (srv->draining && srv->now >= srv->drain_deadline) {
        cli_log_line(&srv->log, "dropped %s: still busy at the end of the drain", c->peer);
        remove_conn(srv, c);
        return true;
    }
    if (srv->draining && w == NBIO_HTTP_WAIT_REQUEST) {
        start_closing(srv, c);
        return false;
    }
    if (w == NBIO_HTTP_WAIT_REQUEST)
        cli_log_line(&srv->log, "closed %s: idle for %d ms (--idle-timeout)", c->peer,
                     srv->idle_timeout_ms);
    else if (w == NBIO_HTTP_WAIT_HEAD || w == NBIO_HTTP_WAIT_BODY)
        cli_log_line(&srv->log, "closed %s: request %s not complete after %d ms (--header-timeout)",
                     c->peer, w == NBIO_HTTP_WAIT_HEAD ? "head" : "body",
                     srv->header_timeout_ms);
    else
        cli_log_line(&srv->log, "closed %s: the response made no progress for %d ms "
                     "(--idle-timeout)", c->peer, srv->idle_timeout_ms);
    start_closing(srv, c);
    return false;
}

static void serve_conn(server *srv, conn *c, unsigned events)
{
    if ((events & NBIO_EV_TIMER) && conn_timer(srv, c))
        return;
    if (c->state == C_SERVING) {
        int r = serve_requests(srv, c);
        if (r < 0) {
            if (r != NBIO_ECONNRESET && r != NBIO_EPIPE)
                log_error(srv, c, r, "dropped");
            remove_conn(srv, c);
            return;
        }
    }
    if (c->state == C_CLOSING) {
        int r = serve_closing(c);
        if (r != 0) {
            remove_conn(srv, c);
            return;
        }
    }
    arm_timer(srv, c);
}

static int add_conn(server *srv, nbio_session *s)
{
    if (srv->n == srv->cap) {
        size_t cap = srv->cap ? srv->cap * 2 : 64;
        conn **p = realloc(srv->conns, cap * sizeof *p);
        if (p == NULL) {
            nbio_free(s);
            return NBIO_ENOMEM;
        }
        srv->conns = p;
        srv->cap = cap;
    }
    conn *c = calloc(1, sizeof *c);
    if (c == NULL) {
        nbio_free(s);
        return NBIO_ENOMEM;
    }
    if (nbio_peer_address(s, c->peer, sizeof c->peer) < 0 || c->peer[0] == '\0')
        snprintf(c->peer, sizeof c->peer, "%s", nbio_kind(s));
    if (srv->tls != NULL)
        s = nbio_tls_server(s, srv->tls); /* takes s, also on failure */
    if (s != NULL)
        s = nbio_http_server(s, &srv->hopt); /* takes s, also on failure */
    if (s == NULL) {
        free(c);
        return NBIO_ENOMEM;
    }
    c->s = s;
    c->srv = srv;
    c->state = C_SERVING;
    c->timer_at = -1;
    c->last_progress = srv->now;
    nbio_set_data(s, c);
    int r = nbio_poller_add(srv->poller, s);
    if (r < 0) {
        nbio_free(s);
        free(c);
        return r;
    }
    c->index = srv->n;
    srv->conns[srv->n++] = c;
    arm_timer(srv, c);
    return 0;
}

static int accept_conns(server *srv)
{
    for (int k = 0; k < CLI_ACCEPTS_PER_STEP; k++) {
        nbio_session *s = NULL;
        int r = cli_accept(srv->listener, srv->poller, &srv->log, srv->now, &s);
        if (r == NBIO_IDLE)
            break;
        if (r < 0)
            return r;
        if ((r = add_conn(srv, s)) < 0) {
            cli_log_line(&srv->log, "cannot serve a new connection: %s", nbio_strerror(r));
            break;
        }
    }
    return 0;
}

static int server_step(server *srv, int wait_ms)
{
    nbio_event ev[EVENTS_PER_STEP];
    int n = nbio_poller_wait(srv->poller, ev, EVENTS_PER_STEP, wait_ms);
    if (n < 0) {
        cli_log_line(&srv->log, "poll: %s", nbio_strerror(n));
        return n;
    }
    srv->now = nbio_now_ms();
    cli_log_tick(&srv->log, false);
    cli_log_tick(&srv->access, false);
    for (int i = 0; i < n; i++) {
        if (ev[i].session == srv->listener) {
            if (ev[i].events & NBIO_EV_TIMER) /* the accept pause is over */
                cli_accept_resume(srv->poller, srv->listener);
            if (!srv->draining && (ev[i].events & (NBIO_EV_READ | NBIO_EV_READY)))
                if (accept_conns(srv) < 0)
                    return -1;
            continue;
        }
        /* a connection is removed only while its own event is served */
        serve_conn(srv, ev[i].data, ev[i].events);
    }
    return n;
}

static void start_drain(server *srv)
{
    srv->draining = true;
    srv->now = nbio_now_ms();
    srv->drain_deadline = srv->now + DRAIN_GRACE_MS;
    if (srv->listener != NULL) { /* stop accepting */
        nbio_free(srv->listener);
        srv->listener = NULL;
    }
    /* each connection is looked at now: idle ones close, busy ones finish
     * their response (with Connection: close) */
    for (size_t i = 0; i < srv->n; i++) {
        srv->conns[i]->timer_at = srv->now;
        (void)nbio_poller_set_timer(srv->poller, srv->conns[i]->s, srv->now);
    }
}

static void server_free(server *srv)
{
    if (srv == NULL)
        return;
    cli_log_tick(&srv->access, true);
    cli_log_tick(&srv->log, true);
    for (size_t i = 0; i < srv->n; i++) {
        resp_free(srv->conns[i]->r);
        nbio_free(srv->conns[i]->s);
        free(srv->conns[i]);
    }
    free(srv->conns);
    nbio_free(srv->listener);
    nbio_poller_free(srv->poller);
    nbio_tls_config_unref(srv->tls);
    for (size_t i = 0; i < CACHE_SLOTS; i++) {
        free(srv->cache[i].rel);
        free(srv->cache[i].data);
    }
    if (srv->root_fd >= 0)
        close(srv->root_fd);
    free(srv->root);
    free(srv);
}

/* ---- the subcommand ------------------------------------------------------------ */

static void serve_help(void)
{
    printf("Usage: nbio serve --listen HOST:PORT|PATH [options]\n"
           "\n"
           "Serves the files under a directory over HTTP/1.1 (GET and HEAD, byte\n"
           "ranges, If-Modified-Since, directory listings) and echoes POST /echo.\n"
           "One thread serves every connection (keep-alive, pipelining). Prints\n"
           "\"listening on ADDRESS\" (with the real port when port 0 was asked) as its\n"
           "first line. Exits 0 on SIGINT or SIGTERM.\n"
           "\n"
           "Options:\n"
           "  --listen ADDR        127.0.0.1:0, [::1]:8080, :8080, or a Unix socket path\n"
           "  --root DIR           the directory served (default: the current one)\n"
           "  --tls-cert FILE      serve HTTPS with this PEM certificate chain (leaf\n"
           "                       first); needs --tls-key. ALPN offers http/1.1\n"
           "  --tls-key FILE       the PEM private key of --tls-cert\n"
           "  --idle-timeout MS    close a keep-alive connection idle this long, or a\n"
           "                       client not reading its response (default 60000)\n"
           "  --header-timeout MS  close a connection whose request head or body takes\n"
           "                       longer than this to arrive (default 10000)\n"
           "  --max-body BYTES     largest request body (default 16M; K, M, G suffixes);\n"
           "                       over it: 413\n"
           "  --idle spin|wait     wait: sleep in epoll when nothing happens (default);\n"
           "                       spin: busy-poll, lowest latency, one core busy\n"
           "  --quiet              no access log\n"
           "  -h, --help           show this help\n"
           "\n"
           "Each response is one line on standard error (client, request line,\n"
           "status, body bytes sent), unless --quiet; lines never block the server.\n"
           "On SIGINT or SIGTERM it stops accepting, finishes the responses in flight,\n"
           "closes every connection (within 5 seconds) and exits 0. A certificate, key,\n"
           "root or listen address that cannot be used is reported before listening,\n"
           "with exit status 1; usage errors exit 2.\n");
}

int cli_serve(int argc, char **argv)
{
    const char *cmd = "serve";
    cli_args a = {argc, argv, 1, cmd};
    const char *listen = NULL, *root = ".", *tls_cert = NULL, *tls_key = NULL, *v = NULL;
    size_t idle_timeout = 60000, header_timeout = 10000, max_body = (size_t)16 << 20;
    bool wait = true, quiet = false;
    while (a.i < argc) {
        if (cli_flag(&a, "--help") || cli_flag(&a, "-h")) {
            serve_help();
            return CLI_EXIT_OK;
        } else if (cli_flag(&a, "--quiet")) {
            quiet = true;
        } else if (cli_option(&a, "--listen", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            listen = v;
        } else if (cli_option(&a, "--root", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            root = v;
        } else if (cli_option(&a, "--tls-cert", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            tls_cert = v;
        } else if (cli_option(&a, "--tls-key", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            tls_key = v;
        } else if (cli_option(&a, "--idle-timeout", &v)) {
            if (v == NULL || !cli_count(cmd, "--idle-timeout", v, 0, 86400000, &idle_timeout))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--header-timeout", &v)) {
            if (v == NULL ||
                !cli_count(cmd, "--header-timeout", v, 0, 86400000, &header_timeout))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--max-body", &v)) {
            if (v == NULL || !cli_size(cmd, "--max-body", v, &max_body))
                return CLI_EXIT_USAGE;
        } else if (cli_option(&a, "--idle", &v)) {
            if (v == NULL)
                return CLI_EXIT_USAGE;
            if (strcmp(v, "spin") == 0)
                wait = false;
            else if (strcmp(v, "wait") == 0)
                wait = true;
            else
                return cli_usage_error(cmd, "--idle wants spin or wait, not '%s'", v);
        } else if (argv[a.i][0] == '-') {
            return cli_usage_error(cmd, "unknown option '%s'", argv[a.i]);
        } else {
            return cli_usage_error(cmd, "unexpected argument '%s'", argv[a.i]);
        }
    }
    if (listen == NULL)
        return cli_usage_error(cmd, "--listen HOST:PORT is required");
    if ((tls_cert == NULL) != (tls_key == NULL))
        return cli_usage_error(cmd, "--tls-cert and --tls-key go together");

    server *srv = calloc(1, sizeof *srv);
    if (srv == NULL) {
        fprintf(stderr, "nbio serve: NBIO_ENOMEM: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    srv->root_fd = -1;
    srv->idle_timeout_ms = (int)idle_timeout;
    srv->header_timeout_ms = (int)header_timeout;
    srv->quiet = quiet;
    nbio_http_server_options_init(&srv->hopt);
    srv->hopt.max_body = max_body;
    srv->hopt.release_buffers = true; /* idle keep-alive connections hold no buffers */
    char err[400];
    int rc = CLI_EXIT_FAIL;

    srv->root = realpath(root, NULL);
    struct stat st;
    if (srv->root == NULL || stat(srv->root, &st) != 0 || !S_ISDIR(st.st_mode)) {
        fprintf(stderr, "nbio serve: cannot serve '%s': %s\n", root,
                srv->root == NULL ? strerror(errno) : "not a directory");
        goto out;
    }
    srv->root_len = strlen(srv->root);
    srv->root_fd = open(srv->root, O_PATH | O_DIRECTORY | O_CLOEXEC);
    if (srv->root_fd < 0) {
        fprintf(stderr, "nbio serve: cannot open '%s': %s\n", srv->root, strerror(errno));
        goto out;
    }
    if (tls_cert != NULL) {
        nbio_tls_options o;
        nbio_tls_options_init(&o);
        o.cert_file = tls_cert;
        o.key_file = tls_key;
        o.alpn = "http/1.1";
        int r = nbio_tls_config_new(&srv->tls, NBIO_TLS_SERVER, &o, err, sizeof err);
        if (r < 0) {
            fprintf(stderr, "nbio serve: %s: %s\n", nbio_errname(r),
                    err[0] ? err : nbio_strerror(r));
            goto out;
        }
    }
    if ((srv->poller = nbio_poller_new()) == NULL) {
        fprintf(stderr, "nbio serve: cannot make a poller: %s\n", strerror(errno));
        goto out;
    }
    srv->listener = cli_is_unix_path(listen) ? nbio_unix_listen(listen, NULL)
                                             : nbio_tcp_listen(listen, NULL);
    if (srv->listener == NULL || nbio_status(srv->listener) != NBIO_STATUS_ESTABLISHED) {
        if (srv->listener == NULL)
            fprintf(stderr, "nbio serve: NBIO_ENOMEM: out of memory\n");
        else
            fprintf(stderr, "nbio serve: %s: %s\n", nbio_errname(nbio_error(srv->listener)),
                    nbio_detail(srv->listener));
        goto out;
    }
    int r = nbio_poller_add(srv->poller, srv->listener);
    if (r < 0) {
        fprintf(stderr, "nbio serve: %s: poller: %s\n", nbio_errname(r), nbio_strerror(r));
        goto out;
    }
    if (nbio_local_address(srv->listener, srv->address, sizeof srv->address) < 0 ||
        srv->address[0] == '\0')
        snprintf(srv->address, sizeof srv->address, "%s", listen);

    cli_install_stop_handlers();
    signal(SIGPIPE, SIG_IGN); /* a log reader that went away must not kill the server */
    cli_log_init(&srv->log, stderr, "nbio serve", ERROR_BURST);
    cli_log_init(&srv->access, stderr, NULL, ACCESS_BURST); /* bare access lines */
    printf("listening on %s\n", srv->address);
    fflush(stdout);
    rc = CLI_EXIT_OK;
    for (;;) {
        if (cli_stop_requested() && !srv->draining)
            start_drain(srv);
        if (srv->draining && (srv->n == 0 || nbio_now_ms() >= srv->drain_deadline))
            break;
        if (server_step(srv, wait ? WAIT_CAP_MS : 0) < 0) {
            rc = CLI_EXIT_FAIL;
            break;
        }
    }
out:
    server_free(srv);
    return rc;
}
