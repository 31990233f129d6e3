/*
 * Body framing (RFC 9112 §6) and keep-alive: which of Content-Length,
 * Transfer-Encoding, the status and the request method delimits a body.
 * See nbio__http_body_kind() in codec.h for the rules.
 */
#include <string.h>

#include "http/codec.h"

const char nbio__http_why_unknown_coding[] = "unknown transfer coding";

static inline bool is_ows(char c)
{
    return c == ' ' || c == '\t';
}

/*
 * The next element of a comma-separated list (RFC 9110 §5.6.1) in
 * [*p, end): skips empty elements, trims OWS, and does not split inside a
 * quoted-string. Returns false when no element is left.
 */
static bool next_element(const char **p, const char *end, nbio_http_slice *el)
{
    const char *s = *p;
    while (s < end && (*s == ',' || is_ows(*s)))
        s++;
    if (s == end) {
        *p = s;
        return false;
    }
    const char *e = s;
    bool quoted = false;
    while (e < end && (quoted || *e != ',')) {
        if (*e == '"')
            quoted = !quoted;
        else if (*e == '\\' && quoted && e + 1 < end)
            e++;
        e++;
    }
    *p = e;
    while (e > s && is_ows(e[-1]))
        e--;
    *el = (nbio_http_slice){s, (size_t)(e - s)};
    return true;
}

bool nbio__http_list_has(nbio_http_slice list, const char *token)
{
    const char *p = list.data, *end = list.data + list.len;
    nbio_http_slice el;
    if (list.data == NULL)
        return false;
    while (next_element(&p, end, &el))
        if (nbio_http_slice_ieq(el, token))
            return true;
    return false;
}

bool nbio__http_header_has_token(const nbio_http_head *h, const char *name, const char *token)
{
    size_t i = 0;
    const nbio_http_slice *v;
    while ((v = nbio_http_header_find(h, name, &i)) != NULL)
        if (nbio__http_list_has(*v, token))
            return true;
    return false;
}

/* Content-Length: every element of every line is 1*DIGIT, all equal.
 * Returns 1 with *len set, 0 when absent, or NBIO_EPROTOCOL. */
static int content_length(const nbio_http_head *h, uint64_t *len, const char **why)
{
    size_t i = 0;
    const nbio_http_slice *v;
    bool have = false;
    while ((v = nbio_http_header_find(h, "content-length", &i)) != NULL) {
        const char *p = v->data, *end = v->data + v->len;
        for (;;) {
            while (p < end && is_ows(*p))
                p++;
            if (p == end || (unsigned)(*p - '0') >= 10u) {
                *why = p == end || *p == ',' ? "empty Content-Length"
                                             : "Content-Length is not a number";
                return NBIO_EPROTOCOL;
            }
            uint64_t n = 0;
            for (; p < end && (unsigned)(*p - '0') < 10u; p++) {
                unsigned d = (unsigned)(*p - '0');
                if (n > (NBIO__HTTP_MAX_CONTENT_LENGTH - d) / 10) {
                    *why = "Content-Length out of range";
                    return NBIO_EPROTOCOL;
                }
                n = n * 10 + d;
            }
            if (have && n != *len) {
                *why = "conflicting Content-Length values";
                return NBIO_EPROTOCOL;
            }
            *len = n;
            have = true;
            while (p < end && is_ows(*p))
                p++;
            if (p == end)
                break;
            if (*p != ',') {
                *why = "Content-Length is not a number";
                return NBIO_EPROTOCOL;
            }
            p++;
        }
    }
    return have ? 1 : 0;
}

typedef struct codings {
    size_t count;     /* codings named */
    size_t chunked;   /* how many of them are chunked */
    bool last_chunked;
    bool unknown;     /* a coding this library does not know */
    const char *bad;  /* why the list is malformed, or NULL */
} codings;

/* Reads every Transfer-Encoding line. Returns false when there is none. */
static bool transfer_codings(const nbio_http_head *h, codings *c)
{
    static const char *const known[] = {"gzip", "x-gzip", "deflate", "compress", "x-compress"};
    memset(c, 0, sizeof *c);
    size_t i = 0;
    bool present = false;
    const nbio_http_slice *v;
    while ((v = nbio_http_header_find(h, "transfer-encoding", &i)) != NULL) {
        present = true;
        const char *p = v->data, *end = v->data + v->len;
        nbio_http_slice el;
        while (next_element(&p, end, &el)) {
            /* transfer-coding = token *( OWS ";" OWS transfer-parameter ) */
            size_t n = 0;
            while (n < el.len && (nbio__http_cls[(unsigned char)el.data[n]] & NBIO__HTTP_TCHAR))
                n++;
            size_t rest = n;
            while (rest < el.len && is_ows(el.data[rest]))
                rest++;
            bool params = rest < el.len;
            if (n == 0 || (params && el.data[rest] != ';')) {
                c->bad = "malformed Transfer-Encoding";
                continue;
            }
            nbio_http_slice name = {el.data, n};
            c->count++;
            c->last_chunked = nbio_http_slice_ieq(name, "chunked");
            if (c->last_chunked) {
                c->chunked++;
                if (params)
                    c->bad = "parameters on the chunked transfer coding";
                continue;
            }
            bool ok = false;
            for (size_t k = 0; k < sizeof known / sizeof known[0]; k++)
                ok = ok || nbio_http_slice_ieq(name, known[k]);
            c->unknown = c->unknown || !ok;
        }
    }
    if (present && c->bad == NULL && c->count == 0)
        c->bad = "empty Transfer-Encoding";
    if (c->bad == NULL && c->chunked > 1)
        c->bad = "chunked transfer coding applied more than once";
    return present;
}

int nbio__http_body_kind(const nbio_http_head *h, bool is_request, nbio_http_slice req_method,
                         nbio__body_kind *kind, uint64_t *length, bool *keep_alive,
                         const char **why)
{
    bool close_tok = nbio__http_header_has_token(h, "connection", "close");
    bool keep = h->minor_version >= 1
                    ? !close_tok
                    : !close_tok && nbio__http_header_has_token(h, "connection", "keep-alive");
    *length = 0;
    *keep_alive = keep;

    if (!is_request) {
        int st = h->status;
        if (st == 101 || (st / 100 == 2 && nbio_http_slice_eq(req_method, "CONNECT"))) {
            *kind = NBIO__BODY_TUNNEL;
            *keep_alive = false;
            return 0;
        }
        if (nbio_http_slice_eq(req_method, "HEAD") || st / 100 == 1 || st == 204 || st == 304) {
            *kind = NBIO__BODY_NONE;
            return 0;
        }
    }

    codings c;
    uint64_t cl = 0;
    bool te = transfer_codings(h, &c);
    if (te && is_request) {
        if (nbio_http_header_find(h, "content-length", NULL) != NULL) {
            *why = "both Content-Length and Transfer-Encoding";
            return NBIO_EPROTOCOL;
        }
        if (h->minor_version == 0) {
            *why = "Transfer-Encoding in an HTTP/1.0 request";
            return NBIO_EPROTOCOL;
        }
    }
    if (te) {
        if (c.bad != NULL) {
            *why = c.bad;
            return NBIO_EPROTOCOL;
        }
        if (is_request && !c.last_chunked) {
            *why = "chunked is not the final transfer coding";
            return NBIO_EPROTOCOL;
        }
        if (is_request && c.unknown) {
            *why = nbio__http_why_unknown_coding;
            return NBIO_EUNSUPPORTED;
        }
        *kind = c.last_chunked ? NBIO__BODY_CHUNKED : NBIO__BODY_CLOSE;
        if (!is_request && (!c.last_chunked || h->minor_version == 0 ||
                            nbio_http_header_find(h, "content-length", NULL) != NULL))
            *keep_alive = false;
        return 0;
    }

    int r = content_length(h, &cl, why);
    if (r < 0)
        return r;
    if (r > 0) {
        *kind = NBIO__BODY_LENGTH;
        *length = cl;
        return 0;
    }
    if (is_request) {
        *kind = NBIO__BODY_NONE;
    } else {
        *kind = NBIO__BODY_CLOSE;
        *keep_alive = false;
    }
    return 0;
}
