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
#include "http/write.h"

/* Request classes on the FIFO. */
#define REQ_HEAD 1u    /* the answer has no body */
#define REQ_CONNECT 2u /* a 2xx answer is a tunnel */
#define REQ_CLOSE 4u   /* we asked for Connection: close */

typedef enum rstate { R_HEAD, R_BODY, R_CLOSED } rstate;

typedef struct nbio__http {
    nbio_session base; /* base.inner: the byte session */
    nbio_http_options opt;
    nbio__http_limits lim;
    char *host;
    /* write side */
    nbio__bytes out;
    bool body_open; /* a chunked request body is being written */
    nbio__bytes reqs; /* FIFO of request classes, one byte each */
    unsigned written, answered;
    /* read side */
    nbio__bytes in;
    size_t handed;  /* bytes at the front of `in` handed out last */
    size_t scanned; /* head bytes the parser already looked at */
    bool inner_eof;
    bool got_any;   /* bytes of a response arrived since the last one ended */
    bool examine;   /* bytes wait in `in` that no read looked at yet */
    rstate state;
    unsigned cls;   /* class of the request being answered */
    nbio_http_head head;
    nbio_http_header *hdrs, *trls;
    size_t head_len;
    nbio__body_kind kind;
    uint64_t length;    /* Content-Length */
    uint64_t remaining; /* streaming: body bytes still to come (LENGTH) */
    uint64_t received;  /* body bytes received (for details) */
    size_t body_have;   /* whole mode: payload bytes behind the head */
    bool keep_alive;
    nbio__chunked ch;
    nbio__bytes z;      /* decoded (gunzipped) whole bodies */
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
    if (h->out.len == 0)
        return NBIO_DONE;
    if (nbio__is_establishing(&h->base))
        return NBIO_PENDING;
    struct iovec iov = {(void *)nbio__bytes_peek(&h->out), h->out.len};
    long n = nbio__writev(h->base.inner, &iov, 1);
    if (n < 0)
        return nbio__fail_from(&h->base, h->base.inner, (int)n);
    if (n > 0 && wrote != NULL)
        *wrote = true;
    nbio__bytes_rack(&h->out, (size_t)n);
    if (h->out.len == 0)
        nbio__bytes_shrink(&h->out);
    return h->out.len == 0 ? NBIO_DONE : NBIO_PENDING;
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
    h->scanned = 0;
    h->got_any = false;
}

static int head_error(nbio__http *h, int r, const char *why, size_t where)
{
    if (r == NBIO_ETOOLARGE)
        return nbio__fail(&h->base, r, "HTTP response: %s", why);
    return nbio__fail(&h->base, r, "malformed HTTP response: %s (at byte %zu of the head)", why,
                      where);
}

/* Tries to parse a head at the front of `in`. Returns 1 (a head to act on),
 * 0 (more bytes needed), or an error. */
static int take_head(nbio__http *h)
{
    const char *why = "";
    size_t where = 0;
    h->head.headers = h->hdrs;
    int r = nbio__http_parse_response((const char *)nbio__bytes_peek(&h->in), h->in.len,
                                      h->scanned, &h->head, &h->lim, &why, &where);
    if (r < 0)
        return head_error(h, r, why, where);
    if (r == 0) {
        h->scanned = h->in.len;
        return 0;
    }
    h->scanned = 0;
    h->head_len = (size_t)r;
    if (h->reqs.len == 0)
        return nbio__fail(&h->base, NBIO_EPROTOCOL,
                          "HTTP response %d without a request to answer", h->head.status);
    h->cls = nbio__bytes_peek(&h->reqs)[0];
    return 1;
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
    int r = nbio__http_body_kind(&h->head, false, method, &h->kind, &h->length, &ka, &why);
    if (r < 0)
        return nbio__fail(&h->base, r, "malformed HTTP response: %s", why);
    h->keep_alive = ka && !(h->cls & REQ_CLOSE);
    h->remaining = h->length;
    h->received = 0;
    h->body_have = 0;
    if (h->kind == NBIO__BODY_CHUNKED)
        nbio__chunked_init(&h->ch, 0, 0);
    if (!h->opt.stream_body && h->kind == NBIO__BODY_LENGTH && h->length > h->opt.max_body)
        return nbio__fail(&h->base, NBIO_ETOOLARGE,
                          "HTTP response body of %" PRIu64 " bytes is over the limit of %" PRIu64,
                          h->length, h->opt.max_body);
    h->state = R_BODY;
    return 0;
}

static void fill_head(nbio__http *h, nbio_http_response *out, enum nbio_http_part part)
{
    memset(out, 0, sizeof *out);
    out->part = part;
    out->head = h->head;
    out->content_length = h->kind == NBIO__BODY_LENGTH ? h->length
                          : h->kind == NBIO__BODY_NONE ? 0
                                                       : UINT64_MAX;
    out->keep_alive = h->keep_alive;
    out->index = h->answered;
}

/* Parses chunked trailers into trls. Returns 0 or an error. */
static int take_trailers(nbio__http *h, nbio_http_slice t, nbio_http_response *out)
{
    size_t n = 0, where = 0;
    const char *why = "";
    if (t.len <= 2)
        return 0;
    int r = nbio__http_parse_fields(t.data, t.len, h->trls, &n, &h->lim, &why, &where);
    if (r < 0)
        return nbio__fail(&h->base, r, "malformed HTTP trailer: %s", why);
    out->trailers = h->trls;
    out->num_trailers = n;
    return 0;
}

/* Whole bodies with Content-Encoding gzip/deflate, when asked: decodes
 * body into `z` (bounded by max_body). Returns 0 or an error. */
static int maybe_inflate(nbio__http *h, nbio_http_response *out)
{
    const nbio_http_slice *ce = nbio_http_header_find(&h->head, "content-encoding", NULL);
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

/* Whole mode: the body behind the head is complete? Returns 1 (out
 * filled), 0 (more bytes needed), or an error. */
static int whole_body(nbio__http *h, nbio_http_response *out)
{
    char *base = (char *)h->in.data + h->in.head;
    size_t after = h->in.len - h->head_len; /* bytes behind the head */
    nbio_http_slice trailers = {NULL, 0};
    size_t msg_len;
    switch (h->kind) {
    case NBIO__BODY_NONE:
    case NBIO__BODY_TUNNEL:
        msg_len = h->head_len;
        h->body_have = 0;
        break;
    case NBIO__BODY_LENGTH:
        if (after < h->length)
            return 0;
        msg_len = h->head_len + (size_t)h->length;
        h->body_have = (size_t)h->length;
        break;
    case NBIO__BODY_CLOSE:
        if (!h->inner_eof) {
            if (after > h->opt.max_body)
                return nbio__fail(&h->base, NBIO_ETOOLARGE,
                                  "HTTP response body over the limit of %" PRIu64 " bytes",
                                  h->opt.max_body);
            return 0;
        }
        msg_len = h->in.len;
        h->body_have = after;
        break;
    case NBIO__BODY_CHUNKED: {
        char *p = base + h->head_len + h->body_have;
        size_t len = after - h->body_have, out_len = 0, consumed = 0;
        const char *why = "";
        int r = nbio__chunked_decode(&h->ch, p, len, &out_len, &consumed, &trailers, &why);
        if (r < 0)
            return nbio__fail(&h->base, r, "malformed chunked HTTP body: %s", why);
        h->body_have += out_len;
        h->received = h->body_have;
        if (h->body_have > h->opt.max_body)
            return nbio__fail(&h->base, NBIO_ETOOLARGE,
                              "HTTP response body over the limit of %" PRIu64 " bytes",
                              h->opt.max_body);
        if (r == 0) { /* drop the framing decoded so far: the payload stays contiguous */
            size_t rest = len - consumed;
            memmove(p + out_len, p + consumed, rest);
            h->in.len -= consumed - out_len;
            return 0;
        }
        msg_len = (size_t)(p + consumed - base);
        break;
    }
    default:
        return nbio__fail(&h->base, NBIO_EPROTOCOL, "HTTP response: unknown body framing");
    }
    /* The buffer may have moved since the head was parsed: parse it again
     * in place so every slice points where the bytes are now. */
    const char *why = "";
    size_t where = 0;
    h->head.headers = h->hdrs;
    if (nbio__http_parse_response(base, h->head_len, 0, &h->head, &h->lim, &why, &where) !=
        (int)h->head_len)
        return nbio__fail(&h->base, NBIO_EPROTOCOL, "HTTP response head changed");
    fill_head(h, out, NBIO_HTTP_WHOLE);
    out->body.data = base + h->head_len;
    out->body.len = h->body_have;
    if (trailers.len > 0) {
        /* re-derive: the decoder's slice is relative to the same bytes */
        int r = take_trailers(h, trailers, out);
        if (r < 0)
            return r;
    }
    int r = maybe_inflate(h, out);
    if (r < 0)
        return r;
    h->handed = msg_len;
    if (h->kind == NBIO__BODY_TUNNEL)
        h->keep_alive = false;
    response_done(h);
    return 1;
}

/* Streaming mode: hands out what arrived of the body. Returns 1 (out
 * filled), 0 (more bytes needed), or an error. */
static int body_part(nbio__http *h, nbio_http_response *out)
{
    char *base = (char *)h->in.data + h->in.head;
    memset(out, 0, sizeof *out);
    out->index = h->answered;
    out->keep_alive = h->keep_alive;
    out->content_length = h->kind == NBIO__BODY_LENGTH ? h->length : UINT64_MAX;
    switch (h->kind) {
    case NBIO__BODY_NONE:
    case NBIO__BODY_TUNNEL:
        out->part = NBIO_HTTP_END;
        out->content_length = 0;
        break;
    case NBIO__BODY_LENGTH: {
        size_t take = h->in.len < h->remaining ? h->in.len : (size_t)h->remaining;
        if (take == 0 && h->remaining > 0)
            return 0;
        h->remaining -= take;
        h->received += take;
        out->body = (nbio_http_slice){base, take};
        out->part = h->remaining == 0 ? NBIO_HTTP_END : NBIO_HTTP_BODY;
        h->handed = take;
        break;
    }
    case NBIO__BODY_CLOSE:
        if (h->in.len == 0 && !h->inner_eof)
            return 0;
        h->received += h->in.len;
        out->body = (nbio_http_slice){base, h->in.len};
        out->part = h->inner_eof ? NBIO_HTTP_END : NBIO_HTTP_BODY;
        h->handed = h->in.len;
        break;
    case NBIO__BODY_CHUNKED: {
        size_t out_len = 0, consumed = 0;
        nbio_http_slice trailers = {NULL, 0};
        const char *why = "";
        if (h->in.len == 0)
            return 0;
        int r = nbio__chunked_decode(&h->ch, base, h->in.len, &out_len, &consumed, &trailers,
                                     &why);
        if (r < 0)
            return nbio__fail(&h->base, r, "malformed chunked HTTP body: %s", why);
        h->received += out_len;
        if (r == 0 && out_len == 0) {
            /* only framing so far: drop it, keep an unfinished trailer */
            nbio__bytes_rack(&h->in, consumed);
            return 0;
        }
        out->body = (nbio_http_slice){base, out_len};
        out->part = r == 1 ? NBIO_HTTP_END : NBIO_HTTP_BODY;
        h->handed = consumed;
        if (r == 1 && (r = take_trailers(h, trailers, out)) < 0)
            return r;
        break;
    }
    }
    if (out->part == NBIO_HTTP_END) {
        if (h->kind == NBIO__BODY_TUNNEL)
            h->keep_alive = false;
        out->keep_alive = h->keep_alive;
        response_done(h);
    }
    return 1;
}

/* The inner session ended: what that means where we are. */
static int at_eof(nbio__http *h)
{
    nbio_session *s = &h->base;
    unsigned left = queued_requests(h);
    if (h->state == R_HEAD && h->in.len == 0) {
        if (left == 0)
            return nbio__fail_from(s, s->inner, NBIO_EPEERCLOSED);
        return nbio__fail(s, NBIO_EPEERCLOSED,
                          "HTTP: the server closed the connection with %u request%s unanswered",
                          left, left == 1 ? "" : "s");
    }
    if (h->state == R_HEAD)
        return nbio__fail(s, NBIO_ETRUNCATED,
                          "HTTP: closed by peer inside a response head (%zu bytes)", h->in.len);
    if (h->kind == NBIO__BODY_LENGTH) {
        uint64_t got = h->opt.stream_body ? h->received + h->in.len
                                          : (uint64_t)(h->in.len - h->head_len);
        return nbio__fail(s, NBIO_ETRUNCATED,
                          "HTTP: closed by peer inside a response body (got %" PRIu64
                          " of %" PRIu64 " bytes)",
                          got, h->length);
    }
    return nbio__fail(s, NBIO_ETRUNCATED,
                      "HTTP: closed by peer inside a chunked response body (got %" PRIu64
                      " bytes)",
                      h->received);
}

/* One step on what `in` holds. Returns 1 (out filled), 0 (more bytes
 * needed), or an error. */
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
            if (h->in.len == 0)
                return 0;
            int r = take_head(h);
            if (r <= 0)
                return r;
            int st = h->head.status;
            if (st >= 100 && st < 200 && st != 101) {
                if (h->opt.interim) {
                    fill_head(h, out, NBIO_HTTP_WHOLE);
                    out->content_length = 0;
                    h->handed = h->head_len;
                    return 1;
                }
                nbio__bytes_rack(&h->in, h->head_len); /* an interim answer: the final follows */
                continue;
            }
            if ((r = start_body(h)) < 0)
                return r;
            if (h->opt.stream_body) {
                fill_head(h, out, NBIO_HTTP_HEAD);
                h->handed = h->head_len;
                return 1;
            }
        }
        return h->opt.stream_body ? body_part(h, out) : whole_body(h, out);
    }
}

static int http_read_response(nbio_session *s, nbio_http_response *out)
{
    nbio__http *h = (nbio__http *)s;
    if (h->handed > 0) {
        nbio__bytes_rack(&h->in, h->handed);
        h->handed = 0;
    }
    bool got_bytes = false;
    for (;;) {
        int r = examine(h, out);
        if (r != 0) {
            h->examine = h->in.len > h->handed;
            return r < 0 ? r : NBIO_DATA;
        }
        h->examine = false;
        /* Nothing to hand out: queued requests go now, in one send. */
        if (h->out.len > 0 && (r = flush_out(h, NULL)) < 0)
            return r;
        if (h->inner_eof) {
            if (h->state == R_BODY && h->kind == NBIO__BODY_CLOSE)
                continue; /* examine() ends the body now */
            return at_eof(h);
        }
        if (got_bytes)
            return NBIO_ACTIVE;
        size_t need = h->in.len + 1;
        if (!h->opt.stream_body && h->state == R_BODY && h->kind == NBIO__BODY_LENGTH)
            need = h->head_len + (size_t)h->length;
        size_t room;
        unsigned char *p = nbio__bytes_wbuf(&h->in, need, &room);
        if (p == NULL)
            return nbio__fail(s, NBIO_ENOMEM, "HTTP read buffer: out of memory");
        long n = nbio__read_into(s->inner, p, room);
        if (n == NBIO_EPEERCLOSED) {
            h->inner_eof = true;
            continue;
        }
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0) {
            if (h->in.len == 0)
                nbio__bytes_shrink(&h->in);
            return NBIO_IDLE;
        }
        nbio__bytes_wack(&h->in, (size_t)n);
        h->got_any = true;
        got_bytes = true;
    }
}

int nbio_http_read_response(nbio_session *s, nbio_http_response *out)
{
    if (s == NULL || out == NULL)
        return NBIO_EINVAL;
    nbio__touch(s);
    if (s->error != 0 || s->read_end != 0)
        return s->error != 0 ? s->error : s->read_end;
    if (nbio__http_is_exchange(s))
        return nbio__settle(s, nbio__http_exchange_read(s, out));
    if (s->vt != &http_vtable)
        return NBIO_EUNSUPPORTED;
    if (s->phase == NBIO__ESTABLISHING) {
        int r = nbio__settle(s, nbio__chain_establish(s));
        if (r < 0 || s->phase == NBIO__ESTABLISHING)
            return r;
    }
    return nbio__settle(s, http_read_response(s, out));
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
    return h == NULL || (!h->got_any && h->in.len == 0);
}

bool nbio__http_idle(const nbio_session *s)
{
    const nbio__http *h = nbio__http_of(s);
    return h != NULL && h->base.error == 0 && h->base.read_end == 0 && h->state == R_HEAD &&
           h->reqs.len == 0 && h->in.len == h->handed && h->out.len == 0 && !h->inner_eof;
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

static int http_write(nbio_session *s, nbio_buf *buf)
{
    (void)buf;
    (void)s;
    return NBIO_EUNSUPPORTED;
}

static int http_drive(nbio_session *s)
{
    bool wrote = false;
    int r = flush_out((nbio__http *)s, &wrote);
    if (r < 0)
        return r;
    return wrote ? NBIO_ACTIVE : NBIO_IDLE;
}

static int http_flush(nbio_session *s)
{
    return flush_out((nbio__http *)s, NULL);
}

static unsigned http_interest(const nbio_session *s)
{
    const nbio__http *h = (const nbio__http *)s;
    if ((h->examine || h->inner_eof || h->state == R_CLOSED) && !nbio__read_ended(s))
        return NBIO_READY;
    return h->out.len > 0 ? NBIO_WANT_WRITE : 0;
}

static void http_free(nbio_session *s)
{
    nbio__http *h = (nbio__http *)s;
    nbio_free(s->inner);
    nbio__bytes_free(&h->in);
    nbio__bytes_free(&h->out);
    nbio__bytes_free(&h->reqs);
    nbio__bytes_free(&h->z);
    free(h->hdrs);
    free(h->host);
    free(h);
}

static const nbio__vtable http_vtable = {
    .kind = "http",
    .writes_while_establishing = true,
    .drive = http_drive,
    .read = http_read,
    .write = http_write,
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
    h->lim.max_head = h->opt.max_head;
    h->lim.max_headers = h->opt.max_headers;
    h->lim.max_line = h->opt.max_line;
    h->in.base = h->opt.read_buffer_size;
    h->out.base = 4096;
    h->reqs.base = 16;
    h->hdrs = calloc(2 * h->opt.max_headers, sizeof *h->hdrs);
    h->host = strdup(host != NULL ? host : "");
    if (h->hdrs == NULL || h->host == NULL) {
        nbio_free(&h->base);
        return NULL;
    }
    h->trls = h->hdrs + h->opt.max_headers;
    if (host == NULL || !nbio__http_is_field_safe(host, strlen(host)))
        nbio__fail(&h->base, NBIO_EINVAL, "HTTP client: the Host value is missing or has CR/LF");
    return &h->base;
}
