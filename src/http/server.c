/*
 * The HTTP/1.1 server session: requests in, responses out, over any byte
 * session.
 *
 * Reads run a state machine over msgin (the reading shared with the
 * client):
 *
 *   S_HEAD    parse a request head; check Host; decide the body framing
 *             (smuggling attempts refused there); refuse a body announced
 *             over max_body;
 *   S_BODY    collect the body, whole or in parts; "100 Continue" goes out
 *             first when the client asked for it;
 *   S_CLOSED  the connection ends after the responses owed: no more
 *             requests are read (Connection: close, HTTP/1.0, a response
 *             written before its request's body was read).
 *
 * Every request read pushes its class on `owed` (HEAD, close); writes
 * answer the oldest. A refused request is answered here, best effort,
 * before the session ends with the error.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "core/bytes.h"
#include "core/session.h"
#include "http/codec.h"
#include "http/handoff.h"
#include "http/msgin.h"
#include "http/write.h"
#include "nbio/http_server.h"
#include "nbio/mock.h"

#define OWED_HEAD 1u   /* answer without a body */
#define OWED_CLOSE 2u  /* the connection ends after this answer */
#define OWED_KA10 4u   /* HTTP/1.0 keep-alive: say so in the answer */

typedef enum sstate { S_HEAD, S_BODY, S_CLOSED } sstate;

typedef struct nbio__hsrv {
    nbio_session base; /* base.inner: the byte session */
    nbio_http_server_options opt;
    nbio__msgin m;
    sstate state;
    bool examine;          /* bytes wait that no read looked at */
    bool req_ka;           /* the request in hand keeps the connection */
    bool expect_continue;  /* it asked for 100 Continue, not sent yet */
    bool upgrade;
    unsigned read_count;   /* requests whose head was handed out */
    nbio__bytes owed;      /* classes of the requests not answered yet */
    /* a response body in parts */
    bool body_open, body_chunked;
    uint64_t body_left;
    nbio__bytes out;
    int status_sent;
    /* since when the session waits for what it waits for */
    int64_t t_idle, t_head, t_body, t_resp;
    /* the Date header, made once a second */
    char date[40];
    time_t date_at;
} nbio__hsrv;

static const nbio__vtable hsrv_vtable;

void nbio_http_server_options_init(nbio_http_server_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_head = NBIO__HTTP_MAX_HEAD;
    o->max_headers = NBIO__HTTP_MAX_HEADERS;
    o->max_line = NBIO__HTTP_MAX_LINE;
    o->max_body = (uint64_t)16 << 20;
    o->read_buffer_size = 16384;
    o->write_buffer_size = 262144;
}

const char *nbio_http_reason(int status)
{
    switch (status) {
    case 100: return "Continue";
    case 101: return "Switching Protocols";
    case 103: return "Early Hints";
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 206: return "Partial Content";
    case 301: return "Moved Permanently";
    case 302: return "Found";
    case 303: return "See Other";
    case 304: return "Not Modified";
    case 307: return "Temporary Redirect";
    case 308: return "Permanent Redirect";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 411: return "Length Required";
    case 413: return "Content Too Large";
    case 414: return "URI Too Long";
    case 416: return "Range Not Satisfiable";
    case 417: return "Expectation Failed";
    case 426: return "Upgrade Required";
    case 431: return "Request Header Fields Too Large";
    case 500: return "Internal Server Error";
    case 501: return "Not Implemented";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "";
    }
}

static nbio__hsrv *hsrv_of(const nbio_session *s)
{
    return (nbio__hsrv *)nbio__find_layer(s, &hsrv_vtable);
}

/* Frees everything but the inner session. */
static void hsrv_free_shell(nbio__hsrv *h)
{
    nbio__msgin_free(&h->m);
    nbio__bytes_free(&h->out);
    nbio__bytes_free(&h->owed);
    free(h);
}

/* ---- output --------------------------------------------------------------- */

/* Sends queued responses. NBIO_DONE when none is left, NBIO_PENDING, or an
 * error. */
static int flush_out(nbio__hsrv *h, bool *wrote)
{
    return nbio__send_queued(&h->base, &h->out, true, wrote);
}

static const char *date_now(nbio__hsrv *h)
{
    time_t now = time(NULL);
    if (now != h->date_at) {
        struct tm tm;
        gmtime_r(&now, &tm);
        strftime(h->date, sizeof h->date, "%a, %d %b %Y %H:%M:%S GMT", &tm);
        h->date_at = now;
    }
    return h->date;
}

/* Refuses the request in hand: queues the answer its status calls for,
 * with a close, and sends what the transport takes now; then ends the read
 * side with err and a detail. Writes go on, so nbio_close() finishes
 * sending the answer (and earlier answers still queued), then the FIN. */
static int refuse(nbio__hsrv *h, int err, int status, const char *why)
{
    nbio_session *s = &h->base;
    const char *reason = nbio_http_reason(status);
    char head[256];
    int bl = (int)strlen(why) + 1;
    int n = snprintf(head, sizeof head,
                     "HTTP/1.1 %d %s\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n"
                     "Connection: close\r\n\r\n",
                     status, reason, bl);
    if (nbio__bytes_append(&h->out, head, (size_t)n) != 0 ||
        nbio__bytes_append(&h->out, why, strlen(why)) != 0 ||
        nbio__bytes_append(&h->out, "\n", 1) != 0)
        return nbio__fail(s, NBIO_ENOMEM, "HTTP server: out of memory");
    int r = flush_out(h, NULL);
    if (r < 0)
        return r;
    h->status_sent = status;
    h->state = S_CLOSED;
    h->body_open = false;
    h->owed.len = h->owed.head = 0; /* nothing else is answered on this connection */
    return nbio__end_read(s, err, "HTTP request refused with %d %s: %s", status, reason, why);
}

/* ---- reading requests ------------------------------------------------------- */

/* Checks the head just parsed and decides its body. Returns 0 or a refusal. */
static int start_request(nbio__hsrv *h)
{
    nbio_http_head *hd = &h->m.head;
    if (hd->minor_version >= 1) { /* RFC 9112 §3.2: exactly one Host */
        size_t from = 0;
        int hosts = 0;
        while (nbio_http_header_find(hd, "host", &from) != NULL)
            hosts++;
        if (hosts != 1)
            return refuse(h, NBIO_EPROTOCOL, 400,
                          hosts == 0 ? "no Host header" : "more than one Host header");
    }
    nbio__body_kind kind;
    uint64_t length = 0;
    bool ka = false;
    const char *why = "";
    int r = nbio__http_body_kind(hd, true, (nbio_http_slice){NULL, 0}, &kind, &length, &ka, &why);
    if (r < 0)
        return refuse(h, r, nbio__http_error_status(r, why), why);
    if (kind == NBIO__BODY_LENGTH && length > h->opt.max_body)
        return refuse(h, NBIO_ETOOLARGE, 413, "request body larger than the limit");
    const nbio_http_slice *ex = nbio_http_header_find(hd, "expect", NULL);
    h->expect_continue = ex != NULL && nbio_http_slice_ieq(*ex, "100-continue") &&
                         kind != NBIO__BODY_NONE;
    h->upgrade = nbio__http_header_has_token(hd, "connection", "upgrade") &&
                 nbio_http_header_find(hd, "upgrade", NULL) != NULL;
    h->req_ka = ka;
    unsigned char cls = 0;
    if (nbio_http_slice_eq(hd->method, "HEAD"))
        cls |= OWED_HEAD;
    if (!ka)
        cls |= OWED_CLOSE;
    else if (hd->minor_version == 0)
        cls |= OWED_KA10;
    if (nbio__bytes_append(&h->owed, &cls, 1) != 0)
        return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP server: out of memory");
    nbio__msgin_start_body(&h->m, kind, length);
    h->state = S_BODY;
    h->t_body = nbio_now_ms();
    return 0;
}

static void fill_in(nbio__hsrv *h, nbio_http_incoming *out, enum nbio_http_part part)
{
    memset(out, 0, sizeof *out);
    out->part = part;
    if (part == NBIO_HTTP_WHOLE || part == NBIO_HTTP_HEAD)
        out->head = h->m.head;
    out->content_length = h->m.kind == NBIO__BODY_LENGTH   ? h->m.length
                          : h->m.kind == NBIO__BODY_CHUNKED ? UINT64_MAX
                                                            : 0;
    out->keep_alive = h->req_ka;
    out->upgrade = h->upgrade;
    out->index = h->read_count;
}

/* The request in hand was read whole. */
static void request_done(nbio__hsrv *h)
{
    h->read_count++;
    h->state = h->req_ka && h->state != S_CLOSED ? S_HEAD : S_CLOSED;
    nbio__msgin_next(&h->m);
    h->t_resp = nbio_now_ms();
}

/* "100 Continue" before the body is read, when asked and in order. */
static void maybe_continue(nbio__hsrv *h)
{
    if (!h->expect_continue)
        return;
    h->expect_continue = false;
    if (h->owed.len == 1) /* nothing is owed before it */
        (void)nbio__bytes_append(&h->out, "HTTP/1.1 100 Continue\r\n\r\n", 25);
}

static int body_refusal(nbio__hsrv *h, int r, const char *why)
{
    if (r == NBIO_ETOOLARGE)
        return refuse(h, r, 413, "request body larger than the limit");
    return refuse(h, r, 400, why);
}

/* One step on what the buffer holds: 1 (out filled), 0, or an error. */
static int examine(nbio__hsrv *h, nbio_http_incoming *out)
{
    const char *why = "";
    if (h->state == S_CLOSED)
        return 0;
    if (h->state == S_HEAD) {
        size_t where = 0;
        int r = nbio__msgin_head(&h->m, &why, &where);
        if (r < 0)
            return refuse(h, r, nbio__http_error_status(r, why), why);
        if (r == 0)
            return 0;
        if ((r = start_request(h)) < 0)
            return r;
        if (h->opt.stream_body) {
            fill_in(h, out, NBIO_HTTP_HEAD);
            return 1;
        }
    }
    maybe_continue(h);
    nbio_http_slice body, trailers;
    int r, n = 0;
    if (!h->opt.stream_body) {
        r = nbio__msgin_whole(&h->m, &body, &trailers, &why);
        if (r <= 0)
            return r == 0 ? 0 : body_refusal(h, r, why);
        fill_in(h, out, NBIO_HTTP_WHOLE);
    } else {
        bool last = false;
        r = nbio__msgin_part(&h->m, &body, &last, &trailers, &why);
        if (r <= 0)
            return r == 0 ? 0 : body_refusal(h, r, why);
        if (h->m.received > h->opt.max_body)
            return refuse(h, NBIO_ETOOLARGE, 413, "request body larger than the limit");
        fill_in(h, out, last ? NBIO_HTTP_END : NBIO_HTTP_BODY);
        if (!last) {
            out->body = body;
            return 1;
        }
    }
    out->body = body;
    if ((n = nbio__msgin_trailers(&h->m, trailers, &why)) < 0)
        return refuse(h, n, 400, why);
    out->trailers = n > 0 ? h->m.trls : NULL;
    out->num_trailers = (size_t)n;
    request_done(h);
    return 1;
}

/* The byte session ended: what that means where we are. */
static int ops_at_eof(nbio_session *s)
{
    nbio__hsrv *h = (nbio__hsrv *)s;
    if (h->state != S_BODY && h->m.in.len == 0)
        return nbio__fail_from(s, s->inner, NBIO_EPEERCLOSED);
    return nbio__msgin_truncated(&h->m, s, "request", h->state == S_BODY);
}

static int ops_examine(nbio_session *s, void *out)
{
    return examine((nbio__hsrv *)s, out);
}

/* No more requests after a closing answer: the caller closes. */
static bool ops_done(const nbio_session *s)
{
    return ((const nbio__hsrv *)s)->state == S_CLOSED;
}

static void ops_began(nbio_session *s)
{
    nbio__hsrv *h = (nbio__hsrv *)s;
    if (h->state == S_HEAD)
        h->t_head = nbio_now_ms();
}

static const nbio__msgin_ops server_ops = {ops_examine, ops_at_eof, ops_done, ops_began};

static int hsrv_read_request(nbio_session *s, nbio_http_incoming *out)
{
    nbio__hsrv *h = (nbio__hsrv *)s;
    int r = nbio__msgin_read(&h->m, s, &h->out, &server_ops, out, &h->examine, NULL);
    if (r == NBIO_IDLE && h->opt.release_buffers && h->state == S_HEAD && h->owed.len == 0) {
        nbio__msgin_idle(&h->m); /* an idle keep-alive connection holds no buffers */
        if (h->out.len == 0)
            nbio__bytes_free(&h->out);
    }
    return r;
}

static int typed_read(nbio_session *s, void *out)
{
    return hsrv_read_request(s, out);
}

int nbio_http_read_request(nbio_session *s, nbio_http_incoming *out)
{
    return nbio__typed_read(s, &hsrv_vtable, typed_read, out);
}

/* ---- writing responses ------------------------------------------------------ */

/* The response to the oldest request is complete. */
static void answered(nbio__hsrv *h)
{
    unsigned char cls = nbio__bytes_peek(&h->owed)[0];
    nbio__bytes_rack(&h->owed, 1);
    if (cls & OWED_CLOSE)
        h->state = S_CLOSED;
    h->t_idle = nbio_now_ms();
}

int nbio_http_write_response(nbio_session *s, const nbio_http_reply *r)
{
    nbio__hsrv *h = hsrv_of(s);
    if (h == NULL || r == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (h->base.error != 0)
        return h->base.error;
    if (h->owed.len == 0 || h->body_open)
        return NBIO_EUSAGE;
    if (h->out.len > h->opt.write_buffer_size)
        return NBIO_PENDING;
    const char *reason = r->reason != NULL ? r->reason : nbio_http_reason(r->status);
    if (r->status < 100 || r->status > 999 || !nbio__http_is_field_safe(reason, strlen(reason)))
        return NBIO_EINVAL;
    for (size_t i = 0; i < r->num_headers; i++)
        if (!nbio__http_is_token(r->headers[i].name.data, r->headers[i].name.len) ||
            !nbio__http_is_field_safe(r->headers[i].value.data, r->headers[i].value.len))
            return NBIO_EINVAL;
    unsigned char cls = nbio__bytes_peek(&h->owed)[0];
    bool interim = r->status < 200 && r->status != 101;
    bool no_body = (cls & OWED_HEAD) || r->status < 200 || r->status == 204 || r->status == 304;
    /* Answered before its body was read: that body cannot be told from a
     * next request any more, so the connection ends after this answer. */
    bool early = !interim && h->owed.len == 1 && h->state == S_BODY;
    bool close = r->close || (cls & OWED_CLOSE) || early;
    if (close && !interim) {
        cls |= OWED_CLOSE;
        ((unsigned char *)h->owed.data)[h->owed.head] = cls;
    }
    const nbio_http_header *x = r->headers;
    size_t n = r->num_headers;
    size_t before = h->out.len;
    char line[64];
    int k = snprintf(line, sizeof line, "HTTP/1.1 %d ", r->status);
    int bad = nbio__http_put(&h->out, line, (size_t)k);
    bad |= nbio__http_put(&h->out, reason, strlen(reason));
    bad |= nbio__http_put(&h->out, "\r\n", 2);
    for (size_t i = 0; i < n; i++)
        bad |= nbio__http_put_header(&h->out, x[i].name.data, x[i].name.len, x[i].value.data,
                                     x[i].value.len);
    uint64_t clen = r->body != NULL ? r->body_len : r->content_length;
    bool chunked = r->body == NULL && r->content_length == UINT64_MAX;
    if (!interim) {
        if (!nbio__http_has_header(x, n, "date")) {
            const char *d = date_now(h);
            bad |= nbio__http_put_header(&h->out, "Date", 4, d, strlen(d));
        }
        bool framed = nbio__http_has_header(x, n, "content-length") ||
                      nbio__http_has_header(x, n, "transfer-encoding");
        if (!framed && r->status != 204 && r->status != 304 && r->status >= 200) {
            if (chunked && !(cls & OWED_HEAD))
                bad |= nbio__http_put(&h->out, "Transfer-Encoding: chunked\r\n", 28);
            else if (!chunked) {
                bad |= nbio__http_put(&h->out, "Content-Length: ", 16);
                bad |= nbio__http_put_u64(&h->out, clen);
                bad |= nbio__http_put(&h->out, "\r\n", 2);
            }
        }
        if (close)
            bad |= nbio__http_put(&h->out, "Connection: close\r\n", 19);
        else if (cls & OWED_KA10)
            bad |= nbio__http_put(&h->out, "Connection: keep-alive\r\n", 24);
    }
    bad |= nbio__http_put(&h->out, "\r\n", 2);
    if (r->body != NULL && !no_body)
        bad |= nbio__http_put(&h->out, r->body, r->body_len);
    if (bad != 0) {
        h->out.len = before;
        return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP response: out of memory");
    }
    if (interim) {
        if (r->status == 100)
            h->expect_continue = false;
        return NBIO_DONE;
    }
    if (r->body == NULL && (chunked || clen > 0) && !no_body) {
        h->body_open = true;
        h->body_chunked = chunked;
        h->body_left = chunked ? 0 : clen;
        return NBIO_DONE;
    }
    answered(h);
    return NBIO_DONE;
}

int nbio_http_write_response_body(nbio_session *s, const void *data, size_t len)
{
    nbio__hsrv *h = hsrv_of(s);
    if (h == NULL || (data == NULL && len > 0))
        return NBIO_EINVAL;
    nbio__touch(s);
    if (h->base.error != 0)
        return h->base.error;
    if (!h->body_open || (!h->body_chunked && len > h->body_left))
        return NBIO_EUSAGE;
    if (h->out.len > h->opt.write_buffer_size)
        return NBIO_PENDING;
    size_t before = h->out.len;
    int bad = 0;
    bool end;
    if (h->body_chunked) {
        end = len == 0;
        {
            char size[24];
            int k = snprintf(size, sizeof size, "%zx\r\n", len);
            bad |= nbio__http_put(&h->out, size, (size_t)k);
            bad |= nbio__http_put(&h->out, data, len);
            bad |= nbio__http_put(&h->out, "\r\n", 2); /* after "0\r\n": the end */
        }
    } else {
        bad |= nbio__http_put(&h->out, data, len);
        h->body_left -= len;
        end = h->body_left == 0;
    }
    if (bad != 0) {
        h->out.len = before;
        return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP response body: out of memory");
    }
    if (end) {
        h->body_open = false;
        answered(h);
    }
    return NBIO_DONE;
}

enum nbio_http_server_wait nbio_http_server_phase(const nbio_session *s, int64_t *since)
{
    const nbio__hsrv *h = hsrv_of(s);
    int64_t t = 0;
    enum nbio_http_server_wait w;
    if (h == NULL || h->base.error != 0 || h->base.read_end != 0 ||
        (h->state == S_CLOSED && h->owed.len == 0)) {
        w = NBIO_HTTP_WAIT_DONE;
    } else if (h->state == S_BODY) {
        w = NBIO_HTTP_WAIT_BODY;
        t = h->t_body;
    } else if (h->owed.len > 0) {
        w = NBIO_HTTP_WAIT_RESPONSE;
        t = h->t_resp;
    } else if (h->m.in.len > h->m.handed) {
        w = NBIO_HTTP_WAIT_HEAD;
        t = h->t_head;
    } else {
        w = NBIO_HTTP_WAIT_REQUEST;
        t = h->t_idle;
    }
    if (since != NULL)
        *since = t;
    return w;
}

int nbio_http_server_status_sent(const nbio_session *s)
{
    const nbio__hsrv *h = hsrv_of(s);
    return h != NULL ? h->status_sent : 0;
}

nbio_session *nbio_http_server_upgrade(nbio_session *s)
{
    nbio__hsrv *h = s != NULL && s->vt == &hsrv_vtable ? (nbio__hsrv *)s : NULL;
    if (h == NULL || h->owed.len > 0 || h->body_open || h->base.error != 0 ||
        h->base.inner == NULL) {
        nbio_session *bad = nbio_mock_new(NULL); /* a session to say why */
        if (bad != NULL)
            nbio__fail(bad, NBIO_EUSAGE,
                       "HTTP upgrade: not an HTTP server session between answers");
        nbio_free(s);
        return bad;
    }
    nbio__msgin_release(&h->m);
    nbio_session *inner = h->base.inner;
    h->base.inner = NULL;
    nbio_session *out = nbio__handoff_new(inner, nbio__bytes_peek(&h->m.in), h->m.in.len,
                                          nbio__bytes_peek(&h->out), h->out.len);
    if (h->base.preg != NULL) /* a poller forgets it, as nbio_free() would say */
        nbio__poll_forget(h->base.preg);
    hsrv_free_shell(h);
    return out;
}

/* ---- the vtable --------------------------------------------------------------- */

static int hsrv_read(nbio_session *s, nbio_buf *out)
{
    nbio_http_incoming in;
    int n = hsrv_read_request(s, &in);
    if (n == NBIO_DATA) {
        out->data = in.body.data;
        out->len = in.body.len;
    }
    return n;
}

static int hsrv_drive(nbio_session *s)
{
    return nbio__drive_queued(s, &((nbio__hsrv *)s)->out);
}

static int hsrv_flush(nbio_session *s)
{
    return flush_out((nbio__hsrv *)s, NULL);
}

static unsigned hsrv_interest(const nbio_session *s)
{
    const nbio__hsrv *h = (const nbio__hsrv *)s;
    if ((h->examine || (h->m.inner_eof && h->state != S_CLOSED)) && !nbio__read_ended(s))
        return NBIO_READY;
    return h->out.len > 0 ? NBIO_WANT_WRITE : 0;
}

static void hsrv_free(nbio_session *s)
{
    nbio_free(s->inner);
    hsrv_free_shell((nbio__hsrv *)s);
}

static const nbio__vtable hsrv_vtable = {
    .kind = "http-server",
    .writes_while_establishing = true,
    .drive = hsrv_drive,
    .read = hsrv_read,
    .flush = hsrv_flush,
    .free = hsrv_free,
    .interest = hsrv_interest,
};

nbio_session *nbio_http_server(nbio_session *inner, const nbio_http_server_options *o)
{
    if (inner == NULL)
        return NULL;
    nbio__hsrv *h = calloc(1, sizeof *h);
    if (h == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&h->base, &hsrv_vtable, inner);
    nbio_http_server_options d;
    nbio_http_server_options_init(&d);
    h->opt = o != NULL ? *o : d;
    if (h->opt.max_head == 0)
        h->opt.max_head = d.max_head;
    if (h->opt.max_headers == 0)
        h->opt.max_headers = d.max_headers;
    if (h->opt.max_line == 0)
        h->opt.max_line = d.max_line;
    if (h->opt.max_body == 0)
        h->opt.max_body = d.max_body;
    if (h->opt.read_buffer_size == 0)
        h->opt.read_buffer_size = d.read_buffer_size;
    if (h->opt.write_buffer_size == 0)
        h->opt.write_buffer_size = d.write_buffer_size;
    nbio__http_limits lim = {h->opt.max_head, h->opt.max_headers, h->opt.max_line};
    h->out.base = 4096;
    h->owed.base = 16;
    h->t_idle = nbio_now_ms();
    if (nbio__msgin_init(&h->m, true, h->opt.stream_body, h->opt.max_body, &lim,
                         h->opt.read_buffer_size) != 0) {
        nbio_free(&h->base);
        return NULL;
    }
    return &h->base;
}
