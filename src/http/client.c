/*
 * The HTTP/1.1 client session: requests out, responses in, over any byte
 * session.
 *
 * Writes serialise a request into `out` (the queue; it goes out on the next
 * read that finds nothing to hand out, or on drive/flush/close) and push
 * the request's method class on `reqs`, the FIFO that matches responses to
 * requests (a HEAD answer has no body; a CONNECT 2xx is a tunnel).
 *
 * Reads collect bytes in `in` and run a state machine:
 *
 *   R_HEAD   parse the status line and headers (the codec, resumable);
 *            1xx answers are skipped (or handed out with `interim`);
 *            nbio__http_body_kind() decides the framing;
 *   R_BODY   collect the body: whole (the head stays at the front of `in`,
 *            the body follows it; a chunked body is decoded in place
 *            behind the head) or streamed (the head is handed out first,
 *            then each part as it arrives);
 *   R_CLOSED the last response did not keep the connection: every later
 *            read says so, naming the requests left unanswered.
 *
 * What was handed out stays at the front of `in` until the next read
 * (`handed`), so every slice lives until then.
 */
#define _GNU_SOURCE
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <zlib.h>

#include "core/bytes.h"
#include "core/session.h"
#include "http/client.h"
#include "http/codec.h"
#include "http/msgin.h"
#include "http/write.h"

/* Request classes on the FIFO. */
#define REQ_HEAD 1u    /* the answer has no body */
#define REQ_CONNECT 2u /* a 2xx answer is a tunnel */
#define REQ_CLOSE 4u   /* we asked for Connection: close */

typedef enum rstate { R_HEAD, R_BODY, R_CLOSED } rstate;

typedef struct nbio__http {
    nbio_session base; /* base.inner: the byte session */
    nbio_http_options opt;
    char *host;
    /* write side */
    nbio__bytes out;
    bool body_open; /* a chunked request body is being written */
    nbio__bytes reqs; /* FIFO of request classes, one byte each */
    unsigned written, answered;
    /* read side */
    nbio__msgin m;
    bool got_any; /* bytes of a response arrived since the last one ended */
    bool examine; /* bytes wait that no read looked at yet */
    rstate state;
    unsigned cls; /* class of the request being answered */
    bool keep_alive;
    nbio__bytes z; /* decoded (gunzipped) whole bodies */
} nbio__http;

static const nbio__vtable http_vtable;

void nbio_http_options_init(nbio_http_options *o)
{
    memset(o, 0, sizeof *o);
    o->max_head = NBIO__HTTP_MAX_HEAD;
    o->max_headers = NBIO__HTTP_MAX_HEADERS;
    o->max_line = NBIO__HTTP_MAX_LINE;
    o->max_body = (uint64_t)64 << 20;
    o->read_buffer_size = 16384;
    o->write_buffer_size = 65536;
}

nbio__http *nbio__http_of(const nbio_session *s)
{
    return (nbio__http *)nbio__find_layer(s, &http_vtable);
}

static int http_read_response(nbio_session *s, nbio_http_response *out);

/* ---- writing requests -------------------------------------------------- */

static int push_class(nbio__http *h, unsigned cls)
{
    unsigned char c = (unsigned char)cls;
    return nbio__bytes_append(&h->reqs, &c, 1);
}

/* Checks what the caller gives before any byte is queued. */
static int check_request(nbio__http *h, const char *method, const char *target,
                         const nbio_http_request *r)
{
    nbio_session *s = &h->base;
    if (!nbio__http_is_token(method, strlen(method)))
        return nbio__fail(s, NBIO_EINVAL, "HTTP request: method \"%s\" is not a token", method);
    size_t tl = strlen(target);
    if (tl == 0 || !nbio__http_is_field_safe(target, tl) || strchr(target, ' ') != NULL)
        return nbio__fail(s, NBIO_EINVAL,
                          "HTTP request: the target must be non-empty, without spaces, CR or LF");
    for (size_t i = 0; i < r->num_headers; i++) {
        const nbio_http_header *x = &r->headers[i];
        if (!nbio__http_is_token(x->name.data, x->name.len) ||
            !nbio__http_is_field_safe(x->value.data, x->value.len))
            return nbio__fail(s, NBIO_EINVAL,
                              "HTTP request: header %zu has a bad name or a CR/LF in its value",
                              i);
    }
    if (r->chunked && r->body != NULL)
        return nbio__fail(s, NBIO_EINVAL, "HTTP request: a chunked body comes in parts, not in body");
    return 0;
}

int nbio__http_queue_request(nbio_session *s, const nbio_http_request *r, const char *host)
{
    nbio__http *h = nbio__http_of(s);
    if (h == NULL)
        return NBIO_EUNSUPPORTED;
    if (h->base.error != 0)
        return h->base.error;
    if (h->body_open)
        return NBIO_EUSAGE;
    if (h->out.len > h->opt.write_buffer_size)
        return NBIO_PENDING;
    const char *method = r->method != NULL ? r->method : r->body != NULL ? "POST" : "GET";
    const char *target = r->target != NULL ? r->target : "/";
    int e = check_request(h, method, target, r);
    if (e < 0)
        return e;
    if (host == NULL)
        host = h->host;
    size_t before = h->out.len;
    const nbio_http_header *x = r->headers;
    size_t n = r->num_headers;
    bool post_like = strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0 ||
                     strcmp(method, "PATCH") == 0;
    int bad = 0;
    bad |= nbio__http_put(&h->out, method, strlen(method));
    bad |= nbio__http_put(&h->out, " ", 1);
    bad |= nbio__http_put(&h->out, target, strlen(target));
    bad |= nbio__http_put(&h->out, " HTTP/1.1\r\n", 11);
    if (!nbio__http_has_header(x, n, "host") && host != NULL && host[0] != '\0')
        bad |= nbio__http_put_header(&h->out, "Host", 4, host, strlen(host));
    for (size_t i = 0; i < n; i++)
        bad |= nbio__http_put_header(&h->out, x[i].name.data, x[i].name.len, x[i].value.data,
                                     x[i].value.len);
    if (h->opt.decompress && !nbio__http_has_header(x, n, "accept-encoding"))
        bad |= nbio__http_put(&h->out, "Accept-Encoding: gzip, deflate\r\n", 32);
    if (r->chunked) {
        if (!nbio__http_has_header(x, n, "transfer-encoding"))
            bad |= nbio__http_put(&h->out, "Transfer-Encoding: chunked\r\n", 28);
    } else if ((r->body != NULL || post_like) && !nbio__http_has_header(x, n, "content-length")) {
        bad |= nbio__http_put(&h->out, "Content-Length: ", 16);
        bad |= nbio__http_put_u64(&h->out, r->body != NULL ? r->body_len : 0);
        bad |= nbio__http_put(&h->out, "\r\n", 2);
    }
    bad |= nbio__http_put(&h->out, "\r\n", 2);
    if (r->body != NULL && r->body_len > 0)
        bad |= nbio__http_put(&h->out, r->body, r->body_len);
    unsigned cls = 0;
    if (strcmp(method, "HEAD") == 0)
        cls |= REQ_HEAD;
    if (strcmp(method, "CONNECT") == 0)
        cls |= REQ_CONNECT;
    for (size_t i = 0; i < n; i++)
        if (nbio_http_slice_ieq(x[i].name, "connection") && nbio__http_list_has(x[i].value, "close"))
            cls |= REQ_CLOSE;
    if (bad != 0 || push_class(h, cls) != 0) {
        h->out.len = before; /* nothing of it stays queued */
        return nbio__fail(s, NBIO_ENOMEM, "HTTP request: out of memory");
    }
    h->body_open = r->chunked;
    h->written++;
    return NBIO_DONE;
}

int nbio_http_write_request(nbio_session *s, const nbio_http_request *req)
{
    if (s == NULL || req == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (s->wside != NBIO__W_OPEN && s->error == 0)
        return NBIO_ECLOSED;
    return nbio__http_queue_request(s, req, NULL);
}

int nbio_http_write_body(nbio_session *s, const void *data, size_t len)
{
    nbio__http *h = nbio__http_of(s);
    if (h == NULL || (data == NULL && len > 0))
        return NBIO_EINVAL;
    nbio__touch(s);
    if (h->base.error != 0)
        return h->base.error;
    if (!h->body_open)
        return NBIO_EUSAGE;
    if (h->out.len > h->opt.write_buffer_size)
        return NBIO_PENDING;
    size_t before = h->out.len;
    char size[24];
    int bad = 0;
    if (len == 0) {
        bad |= nbio__http_put(&h->out, "0\r\n\r\n", 5);
    } else {
        int k = snprintf(size, sizeof size, "%zx\r\n", len);
        bad |= nbio__http_put(&h->out, size, (size_t)k);
        bad |= nbio__http_put(&h->out, data, len);
        bad |= nbio__http_put(&h->out, "\r\n", 2);
    }
    if (bad != 0) {
        h->out.len = before;
        return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP request body: out of memory");
    }
    if (len == 0)
        h->body_open = false;
    return NBIO_DONE;
}

/* Sends queued requests. NBIO_DONE when none is left, NBIO_PENDING, or an
 * error. */
static int flush_out(nbio__http *h, bool *wrote)
{
    return nbio__send_queued(&h->base, &h->out, true, wrote);
}

/* ---- reading responses ------------------------------------------------- */

static unsigned queued_requests(const nbio__http *h)
{
    return (unsigned)h->reqs.len;
}

/* The response in hand is complete: the next one starts. */
static void response_done(nbio__http *h)
{
    nbio__bytes_rack(&h->reqs, 1);
    h->answered++;
    h->state = h->keep_alive ? R_HEAD : R_CLOSED;
    nbio__msgin_next(&h->m);
    h->got_any = false;
}

/* Ends the session after a codec error. */
static int codec_fail(nbio__http *h, int r, const char *what, const char *why)
{
    if (r == NBIO_ETOOLARGE)
        return nbio__fail(&h->base, r, "HTTP response %s: %s (limit %" PRIu64 ")", what, why,
                          h->m.max_body);
    return nbio__fail(&h->base, r, "malformed HTTP response %s: %s", what, why);
}

/* Decides the framing of the head just parsed. Returns 0 or an error. */
static int start_body(nbio__http *h)
{
    nbio_http_slice method = {"GET", 3};
    if (h->cls & REQ_HEAD)
        method = (nbio_http_slice){"HEAD", 4};
    else if (h->cls & REQ_CONNECT)
        method = (nbio_http_slice){"CONNECT", 7};
    const char *why = "";
    bool ka = false;
    nbio__body_kind kind;
    uint64_t length = 0;
    int r = nbio__http_body_kind(&h->m.head, false, method, &kind, &length, &ka, &why);
    if (r < 0)
        return codec_fail(h, r, "head", why);
    h->keep_alive = ka && !(h->cls & REQ_CLOSE);
    if (!h->opt.stream_body && kind == NBIO__BODY_LENGTH && length > h->opt.max_body)
        return nbio__fail(&h->base, NBIO_ETOOLARGE,
                          "HTTP response body of %" PRIu64 " bytes is over the limit of %" PRIu64,
                          length, h->opt.max_body);
    nbio__msgin_start_body(&h->m, kind, length);
    h->state = R_BODY;
    return 0;
}

static void fill_head(nbio__http *h, nbio_http_response *out, enum nbio_http_part part)
{
    memset(out, 0, sizeof *out);
    out->part = part;
    out->head = h->m.head;
    out->content_length = h->m.kind == NBIO__BODY_LENGTH ? h->m.length
                          : h->m.kind == NBIO__BODY_NONE ? 0
                                                         : UINT64_MAX;
    out->keep_alive = h->keep_alive;
    out->index = h->answered;
}

/* Chunked trailers into out. Returns 0 or an error. */
static int take_trailers(nbio__http *h, nbio_http_slice t, nbio_http_response *out)
{
    const char *why = "";
    int n = nbio__msgin_trailers(&h->m, t, &why);
    if (n < 0)
        return codec_fail(h, n, "trailer", why);
    out->trailers = n > 0 ? h->m.trls : NULL;
    out->num_trailers = (size_t)n;
    return 0;
}

/* Whole bodies with Content-Encoding gzip/deflate, when asked: decodes
 * body into `z` (bounded by max_body). Returns 0 or an error. */
static int maybe_inflate(nbio__http *h, nbio_http_response *out)
{
    const nbio_http_slice *ce = nbio_http_header_find(&out->head, "content-encoding", NULL);
    if (!h->opt.decompress || ce == NULL || out->body.len == 0)
        return 0;
    bool gz = nbio__http_list_has(*ce, "gzip") || nbio__http_list_has(*ce, "x-gzip");
    bool df = nbio__http_list_has(*ce, "deflate");
    if (!gz && !df)
        return 0;
    for (int attempt = 0; attempt < 2; attempt++) {
        z_stream zs;
        memset(&zs, 0, sizeof zs);
        /* 32: a gzip or zlib header, found out from the bytes; a second try
         * as raw deflate, which some servers send for "deflate" */
        if (inflateInit2(&zs, attempt == 0 ? 15 + 32 : -15) != Z_OK)
            return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP body decoding: out of memory");
        zs.next_in = (Bytef *)out->body.data;
        zs.avail_in = (uInt)out->body.len;
        h->z.len = 0;
        h->z.head = 0;
        int zr = Z_OK;
        while (zr == Z_OK) {
            size_t room;
            unsigned char *p = nbio__bytes_wbuf(&h->z, h->z.len + out->body.len * 2 + 1024, &room);
            if (p == NULL) {
                inflateEnd(&zs);
                return nbio__fail(&h->base, NBIO_ENOMEM, "HTTP body decoding: out of memory");
            }
            if (room > (1u << 30))
                room = 1u << 30;
            zs.next_out = p;
            zs.avail_out = (uInt)room;
            zr = inflate(&zs, Z_NO_FLUSH);
            nbio__bytes_wack(&h->z, room - zs.avail_out);
            if (h->z.len > h->opt.max_body) {
                inflateEnd(&zs);
                return nbio__fail(&h->base, NBIO_ETOOLARGE,
                                  "HTTP body decodes to more than the limit of %" PRIu64 " bytes",
                                  h->opt.max_body);
            }
            if (zr == Z_BUF_ERROR && zs.avail_in == 0)
                break; /* the input ended without the stream's end: take what came */
            if (zr == Z_BUF_ERROR)
                zr = Z_OK;
        }
        inflateEnd(&zs);
        if (zr == Z_STREAM_END || (zr == Z_BUF_ERROR && h->z.len > 0)) {
            out->body.data = (const char *)nbio__bytes_peek(&h->z);
            out->body.len = h->z.len;
            return 0;
        }
        if (zr != Z_DATA_ERROR || attempt == 1 || !df)
            return nbio__fail(&h->base, NBIO_EPROTOCOL, "HTTP body: bad %s data",
                              gz ? "gzip" : "deflate");
    }
    return 0;
}

/* Whole mode. Returns 1 (out filled), 0 (more bytes needed), or an error. */
static int whole_body(nbio__http *h, nbio_http_response *out)
{
    nbio_http_slice body, trailers;
    const char *why = "";
    int r = nbio__msgin_whole(&h->m, &body, &trailers, &why);
    if (r <= 0)
        return r == 0 ? 0 : codec_fail(h, r, h->m.kind == NBIO__BODY_CHUNKED ? "chunked body" : "body", why);
    fill_head(h, out, NBIO_HTTP_WHOLE);
    out->body = body;
    if ((r = take_trailers(h, trailers, out)) < 0 || (r = maybe_inflate(h, out)) < 0)
        return r;
    if (h->m.kind == NBIO__BODY_TUNNEL)
        h->keep_alive = out->keep_alive = false;
    response_done(h);
    return 1;
}

/* Streaming mode: hands out what arrived of the body. Returns 1 (out
 * filled), 0 (more bytes needed), or an error. */
static int body_part(nbio__http *h, nbio_http_response *out)
{
    nbio_http_slice body, trailers;
    bool last = false;
    const char *why = "";
    int r = nbio__msgin_part(&h->m, &body, &last, &trailers, &why);
    if (r <= 0)
        return r == 0 ? 0 : codec_fail(h, r, h->m.kind == NBIO__BODY_CHUNKED ? "chunked body" : "body", why);
    memset(out, 0, sizeof *out);
    out->index = h->answered;
    out->content_length = h->m.kind == NBIO__BODY_LENGTH ? h->m.length : UINT64_MAX;
    out->body = body;
    out->part = last ? NBIO_HTTP_END : NBIO_HTTP_BODY;
    if (last) {
        if ((r = take_trailers(h, trailers, out)) < 0)
            return r;
        if (h->m.kind == NBIO__BODY_TUNNEL)
            h->keep_alive = false;
        response_done(h);
    }
    out->keep_alive = h->keep_alive;
    return 1;
}

/* The inner session ended: what that means where we are. */
static int at_eof(nbio__http *h)
{
    nbio_session *s = &h->base;
    unsigned left = queued_requests(h);
    if (h->state == R_BODY && h->m.kind == NBIO__BODY_CLOSE)
        return 1; /* examine() ends the body now */
    if (h->state == R_HEAD && h->m.in.len == 0) {
        if (left == 0)
            return nbio__fail_from(s, s->inner, NBIO_EPEERCLOSED);
        return nbio__fail(s, NBIO_EPEERCLOSED,
                          "HTTP: the server closed the connection with %u request%s unanswered",
                          left, left == 1 ? "" : "s");
    }
    return nbio__msgin_truncated(&h->m, s, "response", h->state == R_BODY);
}

/* One step on what the buffer holds. Returns 1 (out filled), 0 (more
 * bytes needed), or an error. */
static int examine(nbio__http *h, nbio_http_response *out)
{
    for (;;) {
        if (h->state == R_CLOSED) {
            unsigned left = queued_requests(h);
            if (left > 0)
                return nbio__fail(&h->base, NBIO_EPEERCLOSED,
                                  "HTTP: the server ended the connection after response %u; "
                                  "%u request%s not answered",
                                  h->answered, left, left == 1 ? "" : "s");
            return nbio__fail(&h->base, NBIO_EPEERCLOSED,
                              "HTTP: the server ended the connection (Connection: close)");
        }
        if (h->state == R_HEAD) {
            const char *why = "";
            size_t where = 0;
            int r = nbio__msgin_head(&h->m, &why, &where);
            if (r < 0 && r != NBIO_ETOOLARGE)
                return nbio__fail(&h->base, r,
                                  "malformed HTTP response: %s (at byte %zu of the head)", why,
                                  where);
            if (r < 0)
                return nbio__fail(&h->base, r, "HTTP response: %s", why);
            if (r == 0)
                return 0;
            if (h->reqs.len == 0)
                return nbio__fail(&h->base, NBIO_EPROTOCOL,
                                  "HTTP response %d without a request to answer",
                                  h->m.head.status);
            h->cls = nbio__bytes_peek(&h->reqs)[0];
            int st = h->m.head.status;
            if (st >= 100 && st < 200 && st != 101) {
                if (h->opt.interim) {
                    fill_head(h, out, NBIO_HTTP_WHOLE);
                    out->content_length = 0;
                    h->m.handed = h->m.head_len;
                    nbio__msgin_next(&h->m);
                    return 1;
                }
                nbio__bytes_rack(&h->m.in, h->m.head_len); /* the final answer follows */
                nbio__msgin_next(&h->m);
                continue;
            }
            if ((r = start_body(h)) < 0)
                return r;
            if (h->opt.stream_body) {
                fill_head(h, out, NBIO_HTTP_HEAD);
                return 1;
            }
        }
        return h->opt.stream_body ? body_part(h, out) : whole_body(h, out);
    }
}

static int ops_examine(nbio_session *s, void *out)
{
    return examine((nbio__http *)s, out);
}

static int ops_at_eof(nbio_session *s)
{
    return at_eof((nbio__http *)s);
}

static const nbio__msgin_ops client_ops = {ops_examine, ops_at_eof, NULL, NULL};

static int http_read_response(nbio_session *s, nbio_http_response *out)
{
    nbio__http *h = (nbio__http *)s;
    return nbio__msgin_read(&h->m, s, &h->out, &client_ops, out, &h->examine, &h->got_any);
}

static int typed_read(nbio_session *s, void *out)
{
    return http_read_response(s, out);
}

static int exchange_read(nbio_session *s, void *out)
{
    return nbio__http_exchange_read(s, out);
}

int nbio_http_read_response(nbio_session *s, nbio_http_response *out)
{
    if (nbio__http_is_exchange(s))
        return nbio__typed_read(s, s->vt, exchange_read, out);
    return nbio__typed_read(s, &http_vtable, typed_read, out);
}

unsigned nbio_http_unanswered(const nbio_session *s)
{
    const nbio__http *h = nbio__http_of(s);
    if (h == NULL)
        return nbio__http_exchange_unanswered(s);
    return queued_requests(h);
}

bool nbio_http_nothing_received(const nbio_session *s)
{
    const nbio__http *h = nbio__http_of(s);
    return h == NULL || (!h->got_any && h->m.in.len == 0);
}

bool nbio__http_idle(const nbio_session *s)
{
    const nbio__http *h = nbio__http_of(s);
    return h != NULL && h->base.error == 0 && h->base.read_end == 0 && h->state == R_HEAD &&
           h->reqs.len == 0 && !nbio__msgin_pending(&h->m) && h->out.len == 0 &&
           !h->m.inner_eof;
}

/* ---- the vtable --------------------------------------------------------- */

static int http_read(nbio_session *s, nbio_buf *out)
{
    nbio_http_response r;
    int n = http_read_response(s, &r);
    if (n == NBIO_DATA) {
        out->data = r.body.data;
        out->len = r.body.len;
    }
    return n;
}

static int http_drive(nbio_session *s)
{
    return nbio__drive_queued(s, &((nbio__http *)s)->out);
}

static int http_flush(nbio_session *s)
{
    return flush_out((nbio__http *)s, NULL);
}

static unsigned http_interest(const nbio_session *s)
{
    const nbio__http *h = (const nbio__http *)s;
    if ((h->examine || h->m.inner_eof || h->state == R_CLOSED) && !nbio__read_ended(s))
        return NBIO_READY;
    return h->out.len > 0 ? NBIO_WANT_WRITE : 0;
}

static void http_free(nbio_session *s)
{
    nbio__http *h = (nbio__http *)s;
    nbio_free(s->inner);
    nbio__msgin_free(&h->m);
    nbio__bytes_free(&h->out);
    nbio__bytes_free(&h->reqs);
    nbio__bytes_free(&h->z);
    free(h->host);
    free(h);
}

static const nbio__vtable http_vtable = {
    .kind = "http",
    .writes_while_establishing = true,
    .drive = http_drive,
    .read = http_read,
    .flush = http_flush,
    .free = http_free,
    .interest = http_interest,
};

nbio_session *nbio_http_client(nbio_session *inner, const char *host, const nbio_http_options *o)
{
    if (inner == NULL)
        return NULL;
    nbio__http *h = calloc(1, sizeof *h);
    if (h == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&h->base, &http_vtable, inner);
    if (o != NULL)
        h->opt = *o;
    else
        nbio_http_options_init(&h->opt);
    nbio_http_options d;
    nbio_http_options_init(&d);
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
    h->reqs.base = 16;
    h->host = strdup(host != NULL ? host : "");
    if (nbio__msgin_init(&h->m, false, h->opt.stream_body, h->opt.max_body, &lim,
                         h->opt.read_buffer_size) != 0 ||
        h->host == NULL) {
        nbio_free(&h->base);
        return NULL;
    }
    if (host == NULL || !nbio__http_is_field_safe(host, strlen(host)))
        nbio__fail(&h->base, NBIO_EINVAL, "HTTP client: the Host value is missing or has CR/LF");
    return &h->base;
}
