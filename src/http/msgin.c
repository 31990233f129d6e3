/* Reading HTTP messages: heads, whole bodies, streamed parts. */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "http/msgin.h"

int nbio__msgin_init(nbio__msgin *m, bool is_request, bool stream, uint64_t max_body,
                     const nbio__http_limits *lim, size_t read_buffer_size)
{
    memset(m, 0, sizeof *m);
    m->is_request = is_request;
    m->stream = stream;
    m->max_body = max_body;
    m->lim = *lim;
    m->in.base = read_buffer_size;
    return 0;
}

/* The header arrays, allocated when a head is parsed. */
static int ensure_hdrs(nbio__msgin *m)
{
    if (m->hdrs == NULL) {
        m->hdrs = calloc(2 * m->lim.max_headers, sizeof *m->hdrs);
        if (m->hdrs == NULL)
            return NBIO_ENOMEM;
        m->trls = m->hdrs + m->lim.max_headers;
    }
    return 0;
}

void nbio__msgin_idle(nbio__msgin *m)
{
    if (m->in.len == 0 && m->handed == 0) {
        nbio__bytes_free(&m->in);
        free(m->hdrs);
        m->hdrs = m->trls = NULL;
    }
}

void nbio__msgin_free(nbio__msgin *m)
{
    nbio__bytes_free(&m->in);
    free(m->hdrs);
    m->hdrs = m->trls = NULL;
}

void nbio__msgin_release(nbio__msgin *m)
{
    if (m->handed > 0) {
        nbio__bytes_rack(&m->in, m->handed);
        m->handed = 0;
    }
}

static int parse_head(nbio__msgin *m, const char *buf, size_t len, size_t prev, const char **why,
                      size_t *where)
{
    m->head.headers = m->hdrs;
    return m->is_request ? nbio__http_parse_request(buf, len, prev, &m->head, &m->lim, why, where)
                         : nbio__http_parse_response(buf, len, prev, &m->head, &m->lim, why,
                                                     where);
}

int nbio__msgin_head(nbio__msgin *m, const char **why, size_t *where)
{
    if (m->in.len == 0)
        return 0;
    if (ensure_hdrs(m) != 0) {
        *why = "out of memory for the header fields";
        return NBIO_ENOMEM;
    }
    int r = parse_head(m, (const char *)nbio__bytes_peek(&m->in), m->in.len, m->scanned, why,
                       where);
    if (r <= 0) {
        if (r == 0)
            m->scanned = m->in.len;
        return r;
    }
    m->scanned = 0;
    m->head_len = (size_t)r;
    return 1;
}

void nbio__msgin_start_body(nbio__msgin *m, nbio__body_kind kind, uint64_t length)
{
    m->kind = kind;
    m->length = m->remaining = length;
    m->received = 0;
    m->body_have = 0;
    if (kind == NBIO__BODY_CHUNKED)
        nbio__chunked_init(&m->ch, 0, 0);
    if (m->stream) { /* the head is handed out first */
        m->handed = m->head_len;
    }
}

static int too_large(const char **why)
{
    *why = "body larger than the limit";
    return NBIO_ETOOLARGE;
}

int nbio__msgin_whole(nbio__msgin *m, nbio_http_slice *body, nbio_http_slice *trailers,
                      const char **why)
{
    char *base = (char *)m->in.data + m->in.head;
    size_t after = m->in.len - m->head_len; /* bytes behind the head */
    size_t msg_len;
    *trailers = (nbio_http_slice){NULL, 0};
    switch (m->kind) {
    case NBIO__BODY_NONE:
    case NBIO__BODY_TUNNEL:
        msg_len = m->head_len;
        m->body_have = 0;
        break;
    case NBIO__BODY_LENGTH:
        if (after < m->length)
            return 0;
        msg_len = m->head_len + (size_t)m->length;
        m->body_have = (size_t)m->length;
        break;
    case NBIO__BODY_CLOSE:
        if (after > m->max_body)
            return too_large(why);
        if (!m->inner_eof)
            return 0;
        msg_len = m->in.len;
        m->body_have = after;
        break;
    case NBIO__BODY_CHUNKED: {
        char *p = base + m->head_len + m->body_have;
        size_t len = after - m->body_have, out_len = 0, consumed = 0;
        int r = nbio__chunked_decode(&m->ch, p, len, &out_len, &consumed, trailers, why);
        if (r < 0)
            return r;
        m->body_have += out_len;
        m->received = m->body_have;
        if (m->body_have > m->max_body)
            return too_large(why);
        if (r == 0) { /* drop the framing decoded so far: the payload stays contiguous */
            memmove(p + out_len, p + consumed, len - consumed);
            m->in.len -= consumed - out_len;
            return 0;
        }
        msg_len = (size_t)(p + consumed - base);
        break;
    }
    default:
        *why = "unknown body framing";
        return NBIO_EPROTOCOL;
    }
    /* The buffer may have moved since the head was parsed: parse it again
     * in place so every slice points where the bytes are now. */
    size_t where = 0;
    if (parse_head(m, base, m->head_len, 0, why, &where) != (int)m->head_len) {
        *why = "the head changed";
        return NBIO_EPROTOCOL;
    }
    *body = (nbio_http_slice){base + m->head_len, m->body_have};
    m->handed = msg_len;
    return 1;
}

int nbio__msgin_part(nbio__msgin *m, nbio_http_slice *body, bool *last,
                     nbio_http_slice *trailers, const char **why)
{
    char *base = (char *)m->in.data + m->in.head;
    *trailers = (nbio_http_slice){NULL, 0};
    *last = false;
    switch (m->kind) {
    case NBIO__BODY_NONE:
    case NBIO__BODY_TUNNEL:
        *body = (nbio_http_slice){base, 0};
        *last = true;
        return 1;
    case NBIO__BODY_LENGTH: {
        size_t take = m->in.len < m->remaining ? m->in.len : (size_t)m->remaining;
        if (take == 0 && m->remaining > 0)
            return 0;
        m->remaining -= take;
        m->received += take;
        *body = (nbio_http_slice){base, take};
        *last = m->remaining == 0;
        m->handed = take;
        return 1;
    }
    case NBIO__BODY_CLOSE:
        if (m->in.len == 0 && !m->inner_eof)
            return 0;
        m->received += m->in.len;
        *body = (nbio_http_slice){base, m->in.len};
        *last = m->inner_eof;
        m->handed = m->in.len;
        return 1;
    case NBIO__BODY_CHUNKED: {
        size_t out_len = 0, consumed = 0;
        if (m->in.len == 0)
            return 0;
        int r = nbio__chunked_decode(&m->ch, base, m->in.len, &out_len, &consumed, trailers, why);
        if (r < 0)
            return r;
        m->received += out_len;
        if (r == 0 && out_len == 0) { /* only framing so far: keep an unfinished trailer */
            nbio__bytes_rack(&m->in, consumed);
            return 0;
        }
        *body = (nbio_http_slice){base, out_len};
        *last = r == 1;
        m->handed = consumed;
        return 1;
    }
    }
    *why = "unknown body framing";
    return NBIO_EPROTOCOL;
}

int nbio__msgin_trailers(nbio__msgin *m, nbio_http_slice t, const char **why)
{
    size_t n = 0, where = 0;
    if (t.len <= 2)
        return 0;
    int r = nbio__http_parse_fields(t.data, t.len, m->trls, &n, &m->lim, why, &where);
    return r < 0 ? r : (int)n;
}

long nbio__msgin_fill(nbio__msgin *m, nbio_session *inner)
{
    size_t need = m->in.len + 1;
    if (!m->stream && m->kind == NBIO__BODY_LENGTH && m->head_len > 0 &&
        m->head_len + m->length > need)
        need = m->head_len + (size_t)m->length;
    size_t room;
    unsigned char *p = nbio__bytes_wbuf(&m->in, need, &room);
    if (p == NULL)
        return NBIO_ENOMEM;
    long n = nbio__read_into(inner, p, room);
    if (n == NBIO_EPEERCLOSED) {
        m->inner_eof = true;
        return NBIO_ACTIVE;
    }
    if (n > 0)
        nbio__bytes_wack(&m->in, (size_t)n);
    else if (n == 0 && m->in.len == 0)
        nbio__bytes_shrink(&m->in);
    return n;
}

int nbio__msgin_read(nbio__msgin *m, nbio_session *s, nbio__bytes *queued,
                     const nbio__msgin_ops *ops, void *out, bool *examine, bool *got_any)
{
    nbio__msgin_release(m);
    bool got_bytes = false;
    for (;;) {
        int r = ops->examine(s, out);
        if (r != 0) {
            *examine = nbio__msgin_pending(m);
            return r < 0 ? r : NBIO_DATA;
        }
        *examine = false;
        /* Nothing to hand out: what was written meanwhile goes now. */
        if (queued->len > 0 && (r = nbio__send_queued(s, queued, true, NULL)) < 0)
            return r;
        if (ops->done != NULL && ops->done(s))
            return got_bytes ? NBIO_ACTIVE : NBIO_IDLE;
        if (m->inner_eof) {
            if ((r = ops->at_eof(s)) == 1)
                continue;
            return r;
        }
        if (got_bytes)
            return NBIO_ACTIVE;
        bool was_empty = m->in.len == 0;
        long n = nbio__msgin_fill(m, s->inner);
        if (n == NBIO_ENOMEM)
            return nbio__fail(s, NBIO_ENOMEM, "HTTP read buffer: out of memory");
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0)
            return NBIO_IDLE;
        if (m->inner_eof && n == NBIO_ACTIVE)
            continue; /* the end of the stream: examined next */
        if (was_empty && ops->began != NULL)
            ops->began(s);
        if (got_any != NULL)
            *got_any = true;
        got_bytes = true;
    }
}

int nbio__msgin_truncated(nbio__msgin *m, nbio_session *s, const char *what, bool in_body)
{
    if (!in_body)
        return nbio__fail(s, NBIO_ETRUNCATED, "HTTP: closed by peer inside a %s head (%zu bytes)",
                          what, m->in.len);
    if (m->kind == NBIO__BODY_LENGTH) {
        uint64_t got = m->stream ? m->received + m->in.len : (uint64_t)(m->in.len - m->head_len);
        return nbio__fail(s, NBIO_ETRUNCATED,
                          "HTTP: closed by peer inside a %s body (got %" PRIu64 " of %" PRIu64
                          " bytes)",
                          what, got, m->length);
    }
    return nbio__fail(s, NBIO_ETRUNCATED,
                      "HTTP: closed by peer inside a chunked %s body (got %" PRIu64 " bytes)", what,
                      m->received);
}
