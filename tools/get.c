/*
 * `nbio get`: HTTP/1.1 requests from the command line, on the HTTP client
 * (nbio/http_client.h).
 *
 * Every URL goes through one nbio_http_agent, so requests to the same origin
 * reuse one keep-alive connection. Each exchange is driven like any session:
 * read until the response is there, sleeping in nbio_wait() (100 ms at most)
 * whenever a read finds nothing. Bodies are streamed to the output as they
 * arrive (except with --compressed, which needs whole bodies to decode).
 *
 * --pipeline does without the agent: per origin it opens one HTTP client
 * session (nbio_http_client over TCP or TLS), writes every request to it,
 * then reads the responses in order.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "cli.h"
#include "http/url.h"
#include "nbio/http_client.h"
#include "nbio/tcp.h"
#include "nbio/tls.h"

#define GET_EXIT_HTTP_ERROR 22 /* --fail and a status >= 400 (as curl) */
#define GET_MAX_REDIRECTS 10
#define WAIT_MS 100
#define PROGRESS_MIN_BYTES ((uint64_t)1 << 20)
#define PROGRESS_EVERY_MS 250

typedef struct get_options {
    bool include, head, location, compressed, insecure, fail, pipeline, verbose;
    const char *method;  /* -X, or NULL */
    const char *cacert;  /* --cacert, or NULL */
    const char *output;  /* -o, or NULL: standard output */
    nbio_http_header *headers; /* -H, split into name and value */
    size_t num_headers;
    char *body;          /* -d: the bytes (a file's, standard input's or the argument) */
    size_t body_len;
    bool has_body;
    const char **urls;
    size_t num_urls;
} get_options;

/* Progress meter on standard error (a terminal only). */
typedef struct progress {
    bool enabled;  /* stderr is a terminal and the output is not */
    bool shown;    /* a line was drawn: finish it with a newline */
    uint64_t got, total; /* total UINT64_MAX: unknown */
    int64_t start_ms, last_ms;
} progress;

typedef struct get_state {
    const get_options *o;
    FILE *out;
    int status;       /* exit status so far: 0, or 22 after a --fail response */
    progress meter;
    /* the response being received */
    bool skip_body;   /* --fail and a status >= 400, or -I */
    bool unfollowed;  /* -L, and still a redirect: the limit was reached */
    int redirect_status;
    char location[512]; /* its Location, for the message */
} get_state;

static void get_help(void)
{
    printf("Usage: nbio get [options] URL...\n"
           "\n"
           "Sends an HTTP/1.1 request to each http:// or https:// URL and writes the\n"
           "response bodies to standard output. Requests to the same origin reuse one\n"
           "keep-alive connection.\n"
           "\n"
           "Options:\n"
           "  -i, --include          print the status line and the header lines, an empty\n"
           "                         line, then the body\n"
           "  -I, --head             send HEAD and print the status line and headers\n"
           "  -X, --request METHOD   the method (default GET, or POST with -d)\n"
           "  -H, --header 'Name: value'\n"
           "                         add a header (repeatable)\n"
           "  -d, --data DATA        send DATA as the body; @FILE sends a file's bytes,\n"
           "                         @- standard input\n"
           "  -o, --output FILE      write the bodies to FILE instead of standard output\n"
           "  -L, --location         follow redirects (at most %d)\n"
           "      --compressed       ask for gzip and decode it\n"
           "      --cacert FILE      trust these CA certificates (PEM) instead of the\n"
           "                         system store\n"
           "  -k, --insecure         UNSAFE: do not verify the server's certificate\n"
           "  -f, --fail             a status >= 400 prints no body and exits 22\n"
           "      --pipeline         send every request to one origin before reading\n"
           "                         the responses (one connection per origin)\n"
           "  -v, --verbose          one line on standard error per connection opened or\n"
           "                         reused, and per request and response\n"
           "  -h, --help             show this help\n"
           "\n"
           "Exit status: 0 every request got a response, 22 with --fail and a status\n"
           ">= 400, 1 a connection or protocol failure (one line on standard error),\n"
           "2 a usage error.\n",
           GET_MAX_REDIRECTS);
}

/* ---- option parsing ---------------------------------------------------- */

/* Reads all of f into *out. Returns 0 or -errno. */
static int slurp(FILE *f, char **out, size_t *len)
{
    size_t cap = 65536, n = 0;
    char *buf = malloc(cap);
    if (buf == NULL)
        return -ENOMEM;
    for (;;) {
        if (n == cap) {
            char *p = cap > SIZE_MAX / 2 ? NULL : realloc(buf, cap * 2);
            if (p == NULL) {
                free(buf);
                return -ENOMEM;
            }
            buf = p;
            cap *= 2;
        }
        size_t k = fread(buf + n, 1, cap - n, f);
        n += k;
        if (k == 0) {
            if (ferror(f)) {
                int e = errno ? errno : EIO;
                free(buf);
                return -e;
            }
            break;
        }
    }
    *out = buf;
    *len = n;
    return 0;
}

/* -d DATA, -d @FILE, -d @-. Returns 0, CLI_EXIT_FAIL (a file that cannot be
 * read) or CLI_EXIT_USAGE. */
static int set_body(get_options *o, const char *v)
{
    free(o->body);
    o->body = NULL;
    o->has_body = true;
    if (v[0] != '@') {
        o->body_len = strlen(v);
        o->body = malloc(o->body_len + 1);
        if (o->body == NULL)
            return CLI_EXIT_FAIL;
        memcpy(o->body, v, o->body_len + 1);
        return 0;
    }
    const char *path = v + 1;
    if (path[0] == '\0')
        return cli_usage_error("get", "-d @FILE needs a file name (or @- for standard input)");
    FILE *f = strcmp(path, "-") == 0 ? stdin : fopen(path, "rb");
    if (f == NULL) {
        int e = -errno;
        fprintf(stderr, "nbio get: %s: cannot read %s: %s\n", nbio_errname(e), path,
                nbio_strerror(e));
        return CLI_EXIT_FAIL;
    }
    int r = slurp(f, &o->body, &o->body_len);
    if (f != stdin)
        fclose(f);
    if (r < 0) {
        fprintf(stderr, "nbio get: %s: cannot read %s: %s\n", nbio_errname(r), path,
                nbio_strerror(r));
        return CLI_EXIT_FAIL;
    }
    return 0;
}

/* -H 'Name: value': the name must be a token, the value must not break the
 * head. Points into v (argv lives as long as the program). */
static int add_header(get_options *o, const char *v)
{
    const char *colon = strchr(v, ':');
    if (colon == NULL || colon == v)
        return cli_usage_error("get", "a header is 'Name: value', not '%s'", v);
    for (const char *p = v; p < colon; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("\"(),/:;<=>?@[\\]{}", *p) != NULL)
            return cli_usage_error("get", "bad header name in '%s'", v);
    const char *val = colon + 1;
    while (*val == ' ' || *val == '\t')
        val++;
    size_t vlen = strlen(val);
    while (vlen > 0 && (val[vlen - 1] == ' ' || val[vlen - 1] == '\t'))
        vlen--;
    if (strpbrk(val, "\r\n") != NULL)
        return cli_usage_error("get", "a header value cannot hold CR or LF: '%s'", v);
    nbio_http_header *h = realloc(o->headers, (o->num_headers + 1) * sizeof *h);
    if (h == NULL)
        return CLI_EXIT_FAIL;
    o->headers = h;
    h[o->num_headers].name = (nbio_http_slice){v, (size_t)(colon - v)};
    h[o->num_headers].value = (nbio_http_slice){val, vlen};
    o->num_headers++;
    return 0;
}

/* The options that take a value: short letter and long name. */
typedef struct valued_option {
    char letter;
    const char *name;
} valued_option;

static const valued_option valued[] = {
    {'X', "--request"}, {'H', "--header"}, {'d', "--data"}, {'o', "--output"},
    {0, "--cacert"},
};

/* Applies one option. Returns 0, or an exit status. */
static int apply(get_options *o, char letter, const char *name, const char *value)
{
    (void)name;
    switch (letter) {
    case 'i': o->include = true; return 0;
    case 'I': o->head = true; return 0;
    case 'L': o->location = true; return 0;
    case 'k': o->insecure = true; return 0;
    case 'f': o->fail = true; return 0;
    case 'v': o->verbose = true; return 0;
    case 'C': o->compressed = true; return 0;
    case 'P': o->pipeline = true; return 0;
    case 'X':
        if (value[0] == '\0')
            return cli_usage_error("get", "-X needs a method");
        o->method = value;
        return 0;
    case 'H': return add_header(o, value);
    case 'd': return set_body(o, value);
    case 'o': o->output = value; return 0;
    case 'c': o->cacert = value; return 0;
    default: return CLI_EXIT_USAGE;
    }
}

/* Long flags without a value, and what they mean. */
static const struct {
    const char *name;
    char letter;
} long_flags[] = {
    {"--include", 'i'}, {"--head", 'I'},       {"--location", 'L'}, {"--insecure", 'k'},
    {"--fail", 'f'},    {"--verbose", 'v'},    {"--compressed", 'C'}, {"--pipeline", 'P'},
};

static char long_valued_letter(const char *name)
{
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++)
        if (strcmp(valued[i].name, name) == 0)
            return valued[i].letter ? valued[i].letter : 'c'; /* --cacert */
    return 0;
}

static bool short_valued(char c)
{
    for (size_t i = 0; i < sizeof valued / sizeof valued[0]; i++)
        if (valued[i].letter == c)
            return true;
    return false;
}

/* Parses argv. Returns -1 to go on, or an exit status (help: 0). */
static int parse_args(get_options *o, int argc, char **argv)
{
    o->urls = calloc((size_t)argc, sizeof *o->urls);
    if (o->urls == NULL)
        return CLI_EXIT_FAIL;
    bool options_done = false;
    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i];
        if (options_done || arg[0] != '-' || arg[1] == '\0') {
            o->urls[o->num_urls++] = arg;
            continue;
        }
        if (strcmp(arg, "--") == 0) {
            options_done = true;
            continue;
        }
        if (strcmp(arg, "--help") == 0 || strcmp(arg, "-h") == 0) {
            get_help();
            return CLI_EXIT_OK;
        }
        int r;
        if (arg[1] == '-') {
            const char *eq = strchr(arg, '=');
            char name[64];
            size_t nlen = eq ? (size_t)(eq - arg) : strlen(arg);
            if (nlen >= sizeof name)
                return cli_usage_error("get", "unknown option '%s'", arg);
            memcpy(name, arg, nlen);
            name[nlen] = '\0';
            char letter = long_valued_letter(name);
            if (letter != 0) {
                const char *value = eq ? eq + 1 : NULL;
                if (value == NULL) {
                    if (i + 1 >= argc)
                        return cli_usage_error("get", "option %s needs a value", name);
                    value = argv[++i];
                }
                if ((r = apply(o, letter, name, value)) != 0)
                    return r;
                continue;
            }
            bool found = false;
            for (size_t k = 0; k < sizeof long_flags / sizeof long_flags[0]; k++) {
                if (strcmp(long_flags[k].name, name) == 0) {
                    if (eq != NULL)
                        return cli_usage_error("get", "option %s takes no value", name);
                    (void)apply(o, long_flags[k].letter, name, NULL);
                    found = true;
                }
            }
            if (!found)
                return cli_usage_error("get", "unknown option '%s'", arg);
            continue;
        }
        /* short options, possibly grouped: -iL, -XPOST, -H 'A: b' */
        for (const char *p = arg + 1; *p != '\0'; p++) {
            char c = *p;
            if (short_valued(c)) {
                const char *value = p[1] != '\0' ? p + 1 : NULL;
                if (value == NULL) {
                    if (i + 1 >= argc)
                        return cli_usage_error("get", "option -%c needs a value", c);
                    value = argv[++i];
                }
                if ((r = apply(o, c, NULL, value)) != 0)
                    return r;
                break;
            }
            if (strchr("iILkfv", c) == NULL)
                return cli_usage_error("get", "unknown option '-%c'", c);
            (void)apply(o, c, NULL, NULL);
        }
    }
    if (o->num_urls == 0)
        return cli_usage_error("get", "no URL given");
    if (o->head && o->has_body)
        return cli_usage_error("get", "-I (HEAD) sends no body: drop -d");
    if (o->insecure && o->cacert != NULL)
        return cli_usage_error("get", "--insecure verifies nothing, so --cacert makes no sense with it");
    if (o->pipeline && o->location)
        return cli_usage_error("get", "--pipeline does not follow redirects: drop -L");
    for (size_t k = 0; k < o->num_urls; k++) { /* malformed URLs are usage errors */
        nbio__url u;
        const char *why = "";
        if (nbio__url_parse(o->urls[k], &u, &why) < 0)
            return cli_usage_error("get", "bad URL '%s': %s", o->urls[k], why);
    }
    return -1;
}

/* ---- output ------------------------------------------------------------ */

static void progress_draw(progress *m, bool final)
{
    int64_t now = nbio_now_ms();
    if (!final && now - m->last_ms < PROGRESS_EVERY_MS)
        return;
    m->last_ms = now;
    double secs = (double)(now - m->start_ms) / 1000.0;
    double rate = secs > 0 ? (double)m->got / secs : 0;
    char pct[16] = "";
    if (m->total != UINT64_MAX && m->total > 0)
        snprintf(pct, sizeof pct, "  %3u%%", (unsigned)(m->got * 100 / m->total));
    fprintf(stderr, "\r%10.1f MiB  %8.1f MiB/s%s   ", (double)m->got / 1048576.0,
            rate / 1048576.0, pct);
    fflush(stderr);
    m->shown = true;
}

static void progress_start(progress *m, uint64_t total)
{
    m->got = 0;
    m->total = total;
    m->shown = false;
    m->start_ms = nbio_now_ms();
    m->last_ms = 0;
}

static void progress_add(progress *m, size_t n)
{
    if (!m->enabled)
        return;
    m->got += n;
    if (m->got > PROGRESS_MIN_BYTES || (m->shown && m->got > 0))
        progress_draw(m, false);
}

static void progress_end(progress *m)
{
    if (m->enabled && m->shown) {
        progress_draw(m, true);
        fputc('\n', stderr);
        fflush(stderr);
    }
    m->shown = false;
}

static int put(get_state *st, const void *data, size_t len)
{
    if (len > 0 && fwrite(data, 1, len, st->out) != len)
        return -(errno ? errno : EIO);
    return 0;
}

/* Prints the status line and the header lines as received, then the empty
 * line (-i, -I). */
static int put_head(get_state *st, const nbio_http_head *h)
{
    /* the space before an empty reason is left out, as most such servers do */
    if (fprintf(st->out, "HTTP/1.%d %d%s%.*s\r\n", h->minor_version, h->status,
                h->reason.len > 0 ? " " : "", (int)h->reason.len,
                h->reason.data ? h->reason.data : "") < 0)
        return -(errno ? errno : EIO);
    for (size_t i = 0; i < h->num_headers; i++)
        if (fprintf(st->out, "%.*s: %.*s\r\n", (int)h->headers[i].name.len,
                    h->headers[i].name.data, (int)h->headers[i].value.len,
                    h->headers[i].value.data ? h->headers[i].value.data : "") < 0)
            return -(errno ? errno : EIO);
    return put(st, "\r\n", 2);
}

/* Chunked trailers follow the body with -i, one line each (as curl prints
 * them). */
static int put_trailers(get_state *st, const nbio_http_response *r)
{
    if (!st->o->include || st->skip_body)
        return 0;
    for (size_t i = 0; i < r->num_trailers; i++)
        if (fprintf(st->out, "%.*s: %.*s\r\n", (int)r->trailers[i].name.len,
                    r->trailers[i].name.data, (int)r->trailers[i].value.len,
                    r->trailers[i].value.data ? r->trailers[i].value.data : "") < 0)
            return -(errno ? errno : EIO);
    return 0;
}

/* A response head arrived (whole or streamed) for url. Returns 0 or an
 * output error. */
static int on_head(get_state *st, const nbio_http_response *r, const char *url)
{
    const nbio_http_head *h = &r->head;
    if (st->o->verbose)
        fprintf(stderr, "< %d %.*s\n", h->status, (int)h->reason.len,
                h->reason.data ? h->reason.data : "");
    st->skip_body = st->o->head;
    st->unfollowed = false;
    if (st->o->location && (h->status == 301 || h->status == 302 || h->status == 303 ||
                            h->status == 307 || h->status == 308) &&
        nbio_http_header_find(h, "location", NULL) != NULL) {
        /* the agent hands a redirect out only when it will not follow it */
        const nbio_http_slice *loc = nbio_http_header_find(h, "location", NULL);
        st->unfollowed = true;
        st->redirect_status = h->status;
        snprintf(st->location, sizeof st->location, "%.*s", (int)loc->len, loc->data);
        st->skip_body = true;
        return 0;
    }
    if (st->o->fail && h->status >= 400) {
        fprintf(stderr, "nbio get: %s: the server answered %d %.*s\n", url, h->status,
                (int)h->reason.len, h->reason.data ? h->reason.data : "");
        st->status = GET_EXIT_HTTP_ERROR;
        st->skip_body = true;
        return 0;
    }
    if (st->o->include || st->o->head) {
        int e = put_head(st, h);
        if (e < 0)
            return e;
    }
    progress_start(&st->meter, r->content_length);
    return 0;
}

static int on_body(get_state *st, nbio_http_slice b)
{
    if (st->skip_body)
        return 0;
    progress_add(&st->meter, b.len);
    return put(st, b.data, b.len);
}

/* Handles one part of a response. Returns 1 when the response is complete,
 * 0 when more parts follow, or a negative output error. */
static int on_part(get_state *st, const nbio_http_response *r, const char *url)
{
    int e = 0;
    switch (r->part) {
    case NBIO_HTTP_WHOLE:
        if (r->head.status >= 100 && r->head.status < 200) { /* 100 Continue, 103: with -i */
            if (st->o->verbose)
                fprintf(stderr, "< %d %.*s\n", r->head.status, (int)r->head.reason.len,
                        r->head.reason.data ? r->head.reason.data : "");
            return st->o->include ? put_head(st, &r->head) : 0;
        }
        if ((e = on_head(st, r, url)) == 0 && (e = on_body(st, r->body)) == 0)
            e = put_trailers(st, r);
        progress_end(&st->meter);
        return e < 0 ? e : 1;
    case NBIO_HTTP_HEAD:
        return on_head(st, r, url);
    case NBIO_HTTP_BODY:
        return on_body(st, r->body);
    case NBIO_HTTP_END:
        if ((e = on_body(st, r->body)) == 0)
            e = put_trailers(st, r);
        progress_end(&st->meter);
        return e < 0 ? e : 1;
    }
    return 0;
}

static int output_failed(get_state *st, int e)
{
    progress_end(&st->meter);
    fprintf(stderr, "nbio get: %s: cannot write the output%s%s: %s\n", nbio_errname(e),
            st->o->output ? " to " : "", st->o->output ? st->o->output : "", nbio_strerror(e));
    return CLI_EXIT_FAIL;
}

/* One line on stderr for the error that ended s. */
static int session_failed(get_state *st, const nbio_session *s, int err)
{
    progress_end(&st->meter);
    fflush(st->out);
    const char *d = nbio_detail(s);
    fprintf(stderr, "nbio get: %s: %s\n", nbio_errname(err), d[0] ? d : nbio_strerror(err));
    return CLI_EXIT_FAIL;
}

/* "GET /path?q" for -v. */
static void verbose_request(const char *method, const char *url)
{
    nbio__url u;
    const char *why;
    if (nbio__url_parse(url, &u, &why) < 0)
        return;
    fprintf(stderr, "> %s %s%.*s\n", method, u.slash ? "/" : "", (int)u.target_len, u.target);
}

static void connect_addr(const char *url, char *buf, size_t cap)
{
    nbio__url u;
    const char *why;
    buf[0] = '\0';
    if (nbio__url_parse(url, &u, &why) == 0)
        (void)nbio__url_connect_addr(&u, buf, cap);
}

static const char *request_method(const get_options *o)
{
    if (o->method != NULL)
        return o->method;
    if (o->head)
        return "HEAD";
    return o->has_body ? "POST" : "GET";
}

/* ---- one URL through the agent ----------------------------------------- */

static int fetch(get_state *st, nbio_http_agent *agent, const char *url)
{
    const get_options *o = st->o;
    nbio_http_request req;
    memset(&req, 0, sizeof req);
    req.method = request_method(o);
    req.headers = o->headers;
    req.num_headers = o->num_headers;
    if (o->has_body) {
        req.body = o->body != NULL ? o->body : "";
        req.body_len = o->body_len;
    }
    nbio_session *ex = nbio_http_agent_request(agent, url, &req);
    if (ex == NULL) {
        fprintf(stderr, "nbio get: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    if (nbio_status(ex) == NBIO_STATUS_TERMINATED && nbio_error(ex) == NBIO_EINVAL) {
        int rc = cli_usage_error("get", "%s: %s", url, nbio_detail(ex));
        nbio_free(ex);
        return rc;
    }
    /* -v: the URL being fetched (it changes as redirects are followed) and
     * whether its connection was reported yet */
    char *shown_url = o->verbose ? strdup(url) : NULL;
    bool told_connection = false;
    if (o->verbose)
        verbose_request(req.method, url);
    int rc = -1;
    while (rc < 0) {
        nbio_http_response resp;
        int before = nbio_http_exchange_reused(ex);
        int r = nbio_http_read_response(ex, &resp);
        const char *cur = nbio_http_exchange_url(ex);
        if (shown_url != NULL && cur != NULL && strcmp(cur, shown_url) != 0) {
            if (!told_connection && before >= 0) { /* connected, answered, followed at once */
                char addr[300];
                connect_addr(shown_url, addr, sizeof addr);
                fprintf(stderr, before ? "* reusing connection to %s\n" : "* connected to %s\n",
                        addr);
            }
            fprintf(stderr, "* redirected to %s\n", cur);
            free(shown_url);
            shown_url = strdup(cur);
            told_connection = false;
        }
        if (shown_url != NULL && !told_connection) {
            int reused = nbio_http_exchange_reused(ex);
            if (reused == 1 || (reused == 0 && (r == NBIO_DATA ||
                                                nbio_status(ex) == NBIO_STATUS_ESTABLISHED))) {
                char addr[300];
                connect_addr(shown_url, addr, sizeof addr);
                fprintf(stderr, reused ? "* reusing connection to %s\n" : "* connected to %s\n",
                        addr);
                told_connection = true;
            }
        }
        if (r == NBIO_DATA) {
            int e = on_part(st, &resp, url);
            if (e < 0) {
                rc = output_failed(st, e);
            } else if (e == 1 && st->unfollowed) {
                const char *at = nbio_http_exchange_url(ex);
                fprintf(stderr, "nbio get: redirect not followed: %s answered %d with Location: "
                        "%s (-L follows at most %d redirects, to http:// and https:// URLs)\n",
                        at ? at : url, st->redirect_status, st->location, GET_MAX_REDIRECTS);
                rc = CLI_EXIT_FAIL;
            } else if (e == 1) {
                rc = CLI_EXIT_OK;
            }
        } else if (r == NBIO_IDLE) {
            (void)nbio_wait(&ex, 1, WAIT_MS);
        } else if (r < 0) {
            rc = session_failed(st, ex, r);
        }
    }
    free(shown_url);
    nbio_free(ex);
    return rc;
}

/* ---- --pipeline ---------------------------------------------------------- */

/* One line: the error, then the URLs left unanswered. */
static int pipeline_failed(get_state *st, const nbio_session *s, int err, const char **left,
                           size_t n)
{
    progress_end(&st->meter);
    fflush(st->out);
    const char *d = nbio_detail(s);
    fprintf(stderr, "nbio get: %s: %s", nbio_errname(err), d[0] ? d : nbio_strerror(err));
    if (n > 0) {
        fprintf(stderr, " (unanswered:");
        for (size_t i = 0; i < n; i++)
            fprintf(stderr, " %s", left[i]);
        fprintf(stderr, ")");
    }
    fprintf(stderr, "\n");
    return CLI_EXIT_FAIL;
}

/* Requests of one origin over one connection: written first, then the
 * responses are read in order. urls are the origin's URLs in the order
 * given. */
static int pipeline_origin(get_state *st, nbio_tls_config *tls, const char **urls, size_t n)
{
    const get_options *o = st->o;
    nbio__url u;
    const char *why;
    char addr[300], authority[300];
    (void)nbio__url_parse(urls[0], &u, &why);
    (void)nbio__url_connect_addr(&u, addr, sizeof addr);
    (void)nbio__url_authority(&u, authority, sizeof authority);
    nbio_session *inner = u.tls ? nbio_tls_connect(addr, tls, NULL, NULL)
                                : nbio_tcp_connect(addr, NULL);
    nbio_http_options ho;
    nbio_http_options_init(&ho);
    ho.stream_body = !o->compressed;
    ho.decompress = o->compressed;
    ho.interim = o->include;
    nbio_session *s = inner != NULL ? nbio_http_client(inner, authority, &ho) : NULL;
    if (s == NULL) {
        fprintf(stderr, "nbio get: out of memory\n");
        return CLI_EXIT_FAIL;
    }
    /* the targets, NUL-terminated */
    char **targets = calloc(n, sizeof *targets);
    if (targets == NULL) {
        nbio_free(s);
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n; i++) {
        nbio__url ui;
        (void)nbio__url_parse(urls[i], &ui, &why);
        if (asprintf(&targets[i], "%s%.*s", ui.slash ? "/" : "", (int)ui.target_len,
                     ui.target) < 0)
            targets[i] = NULL;
    }
    size_t written = 0, answered = 0;
    bool told_connection = false;
    int rc = -1;
    while (rc < 0 && answered < n) {
        bool wrote = false;
        while (written < n) { /* every request first */
            nbio_http_request req;
            memset(&req, 0, sizeof req);
            req.method = request_method(o);
            req.target = targets[written] ? targets[written] : "/";
            req.headers = o->headers;
            req.num_headers = o->num_headers;
            if (o->has_body) {
                req.body = o->body != NULL ? o->body : "";
                req.body_len = o->body_len;
            }
            int w = nbio_http_write_request(s, &req);
            if (w == NBIO_PENDING)
                break;
            if (w < 0) {
                rc = session_failed(st, s, w);
                break;
            }
            if (o->verbose)
                fprintf(stderr, "> %s %s\n", req.method, req.target);
            written++;
            wrote = true;
        }
        if (rc >= 0)
            break;
        nbio_http_response resp;
        int r = nbio_http_read_response(s, &resp);
        if (o->verbose && !told_connection &&
            (r == NBIO_DATA || nbio_status(s) == NBIO_STATUS_ESTABLISHED)) {
            fprintf(stderr, "* connected to %s (%zu requests pipelined)\n", addr, n);
            told_connection = true;
        }
        if (r == NBIO_DATA) {
            int e = on_part(st, &resp, urls[answered]);
            if (e < 0)
                rc = output_failed(st, e);
            else if (e == 1)
                answered++;
        } else if (r == NBIO_IDLE && !wrote) {
            (void)nbio_wait(&s, 1, WAIT_MS);
        } else if (r < 0) {
            rc = pipeline_failed(st, s, r, urls + answered, written - answered);
        }
    }
    if (rc < 0) { /* all answered: say goodbye, briefly */
        rc = CLI_EXIT_OK;
        int64_t deadline = nbio_now_ms() + 1000;
        while (nbio_close(s) == NBIO_PENDING && nbio_now_ms() < deadline)
            (void)nbio_wait(&s, 1, WAIT_MS);
    }
    for (size_t i = 0; i < n; i++)
        free(targets[i]);
    free(targets);
    nbio_free(s);
    return rc;
}

/* Groups the URLs by origin (scheme, host, port), in the order each origin
 * first appears, and runs each group over one connection. */
static int pipeline_all(get_state *st, nbio_tls_config *tls)
{
    const get_options *o = st->o;
    size_t n = o->num_urls;
    bool *done = calloc(n, sizeof *done);
    const char **group = calloc(n, sizeof *group);
    int rc = CLI_EXIT_OK;
    if (done == NULL || group == NULL) {
        free(done);
        free(group);
        return CLI_EXIT_FAIL;
    }
    for (size_t i = 0; i < n && rc == CLI_EXIT_OK; i++) {
        if (done[i])
            continue;
        nbio__url a;
        const char *why;
        char ka[300], kb[300];
        (void)nbio__url_parse(o->urls[i], &a, &why);
        (void)nbio__url_connect_addr(&a, ka, sizeof ka);
        size_t k = 0;
        for (size_t j = i; j < n; j++) {
            nbio__url b;
            if (done[j])
                continue;
            (void)nbio__url_parse(o->urls[j], &b, &why);
            (void)nbio__url_connect_addr(&b, kb, sizeof kb);
            if (a.tls == b.tls && strcasecmp(ka, kb) == 0) {
                group[k++] = o->urls[j];
                done[j] = true;
            }
        }
        rc = pipeline_origin(st, tls, group, k);
    }
    free(done);
    free(group);
    return rc;
}

/* ---- main -------------------------------------------------------------- */

static bool any_https(const get_options *o)
{
    for (size_t i = 0; i < o->num_urls; i++)
        if (strncasecmp(o->urls[i], "https:", 6) == 0)
            return true;
    return o->location; /* a redirect may lead to https */
}

int cli_get(int argc, char **argv)
{
    get_options o;
    memset(&o, 0, sizeof o);
    int rc = parse_args(&o, argc, argv);
    if (rc >= 0)
        goto out;

    get_state st;
    memset(&st, 0, sizeof st);
    st.o = &o;
    st.out = stdout;
    if (o.output != NULL) {
        st.out = fopen(o.output, "wb");
        if (st.out == NULL) {
            int e = -errno;
            fprintf(stderr, "nbio get: %s: cannot open %s: %s\n", nbio_errname(e), o.output,
                    nbio_strerror(e));
            rc = CLI_EXIT_FAIL;
            goto out;
        }
    }
    /* the meter only where someone watches it and the body does not go there */
    st.meter.enabled = isatty(STDERR_FILENO) && !isatty(fileno(st.out));

    nbio_tls_config *tls = NULL;
    if (o.cacert != NULL || o.insecure || (o.pipeline && any_https(&o))) {
        nbio_tls_options to;
        nbio_tls_options_init(&to);
        to.ca_file = o.cacert;
        to.insecure_skip_verify = o.insecure;
        to.alpn = "http/1.1"; /* as the agent's own default configuration */
        char why[400] = "";
        int r = nbio_tls_config_new(&tls, NBIO_TLS_CLIENT, &to, why, sizeof why);
        if (r < 0) {
            fprintf(stderr, "nbio get: %s: %s\n", nbio_errname(r), why[0] ? why : nbio_strerror(r));
            rc = CLI_EXIT_FAIL;
            goto close_out;
        }
    }

    if (o.pipeline) {
        rc = pipeline_all(&st, tls);
    } else {
        nbio_http_agent_options ao;
        nbio_http_agent_options_init(&ao);
        ao.http.stream_body = !o.compressed; /* whole bodies only to decode them */
        ao.http.decompress = o.compressed;
        ao.http.interim = o.include; /* -i prints 100 Continue and 103 as curl does */
        ao.max_redirects = o.location ? GET_MAX_REDIRECTS : 0;
        nbio_http_agent *agent = nbio_http_agent_new(tls, &ao);
        if (agent == NULL) {
            fprintf(stderr, "nbio get: out of memory\n");
            rc = CLI_EXIT_FAIL;
        } else {
            rc = CLI_EXIT_OK;
            for (size_t i = 0; i < o.num_urls && rc == CLI_EXIT_OK; i++)
                rc = fetch(&st, agent, o.urls[i]);
            nbio_http_agent_free(agent);
        }
    }
    nbio_tls_config_unref(tls);
    if (rc == CLI_EXIT_OK)
        rc = st.status;
close_out:
    if (fflush(st.out) != 0 && rc != CLI_EXIT_FAIL) {
        rc = output_failed(&st, -(errno ? errno : EIO));
    }
    if (st.out != stdout)
        fclose(st.out);
out:
    free(o.headers);
    free(o.body);
    free(o.urls);
    return rc;
}
