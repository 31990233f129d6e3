/*
 * HTTP/1.1 heads (RFC 9112 §2-§5): request lines, status lines, field
 * lines; the public message model's lookups. See codec.h for the contract.
 *
 * The parser is one sequential function of the bytes (run()): it walks the
 * head line by line. For each line it first finds the line's end with a
 * fast scan that stops only at control bytes (CR, LF, the others, DEL), and
 * only then parses the line's content, which is known to hold no control
 * byte other than HTAB. So a line's content is looked at only once its line
 * ending is there, which is what lets a resumed call skip everything before
 * the unfinished line: the result of a call depends only on buf[0, len).
 */
#define _GNU_SOURCE /* memrchr */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#ifdef __SSE2__
#include <emmintrin.h>
#endif

#include "http/codec.h"

const char nbio__http_why_head_too_large[] = "header block larger than the limit";
const char nbio__http_why_too_many_headers[] = "too many header fields";
const char nbio__http_why_field_too_long[] = "header field line longer than the limit";
const char nbio__http_why_request_line_too_long[] = "request line longer than the limit";
const char nbio__http_why_status_line_too_long[] = "status line longer than the limit";
const char nbio__http_why_version[] = "HTTP version not supported";

/* clang-format off */
const unsigned char nbio__http_cls[256] = {
    2, 2, 2, 2, 2, 2, 2, 2, 2, 0, 2, 2, 2, 2, 2, 2,
    2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2, 2,
    0, 1, 0, 1, 1, 1, 1, 1, 0, 0, 1, 1, 0, 1, 1, 0,
    5, 5, 5, 5, 5, 5, 5, 5, 5, 5, 0, 0, 0, 0, 0, 0,
    0, 5, 5, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0, 1, 1,
    1, 5, 5, 5, 5, 5, 5, 1, 1, 1, 1, 1, 1, 1, 1, 1,
    1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 1, 0, 1, 2,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
};
/* clang-format on */

/* ---- the public model ---------------------------------------------------- */

static inline unsigned char lower(unsigned char c)
{
    return (unsigned char)((unsigned)(c - 'A') < 26u ? c + ('a' - 'A') : c);
}

static inline bool is_digit(unsigned char c)
{
    return (unsigned)(c - '0') < 10u;
}

bool nbio_http_slice_eq(nbio_http_slice s, const char *lit)
{
    size_t n = strlen(lit);
    return s.len == n && (n == 0 || memcmp(s.data, lit, n) == 0);
}

/* s and a NUL-terminated lit of length n, case-insensitively. */
static bool ieq_n(const char *s, size_t len, const char *lit, size_t n)
{
    if (len != n)
        return false;
    for (size_t i = 0; i < n; i++)
        if (lower((unsigned char)s[i]) != lower((unsigned char)lit[i]))
            return false;
    return true;
}

bool nbio_http_slice_ieq(nbio_http_slice s, const char *lit)
{
    return ieq_n(s.data, s.len, lit, strlen(lit));
}

const nbio_http_slice *nbio_http_header_find(const nbio_http_head *h, const char *name,
                                             size_t *from)
{
    if (h == NULL || name == NULL)
        return NULL;
    size_t n = strlen(name);
    for (size_t i = from != NULL ? *from : 0; i < h->num_headers; i++) {
        const nbio_http_header *f = &h->headers[i];
        if (ieq_n(f->name.data, f->name.len, name, n)) {
            if (from != NULL)
                *from = i + 1;
            return &f->value;
        }
    }
    return NULL;
}

/* ---- scanning ------------------------------------------------------------ */

/* The first index in [i, end) whose byte is NBIO__HTTP_STOP, or end. */
static inline size_t find_stop(const unsigned char *b, size_t i, size_t end)
{
#ifdef __SSE2__
    const __m128i c1f = _mm_set1_epi8(0x1f), tab = _mm_set1_epi8('\t'),
                  del = _mm_set1_epi8(0x7f);
    while (end - i >= 16) {
        __m128i x = _mm_loadu_si128((const __m128i *)(const void *)(b + i));
        __m128i ctl = _mm_cmpeq_epi8(_mm_max_epu8(x, c1f), c1f); /* x <= 0x1f */
        ctl = _mm_andnot_si128(_mm_cmpeq_epi8(x, tab), ctl);
        ctl = _mm_or_si128(ctl, _mm_cmpeq_epi8(x, del));
        unsigned m = (unsigned)_mm_movemask_epi8(ctl);
        if (m != 0)
            return i + (size_t)__builtin_ctz(m);
        i += 16;
    }
#endif
    while (i < end && !(nbio__http_cls[b[i]] & NBIO__HTTP_STOP))
        i++;
    return i;
}

/* The first index in [i, end) whose byte is not a tchar, or end. */
static inline size_t skip_token(const unsigned char *b, size_t i, size_t end)
{
    while (i < end && (nbio__http_cls[b[i]] & NBIO__HTTP_TCHAR))
        i++;
    return i;
}

enum mode { M_REQUEST, M_RESPONSE, M_FIELDS };
enum { R_ERR = -1, R_MORE = 0, R_LINE = 1, R_END = 2 };

typedef struct scan {
    const unsigned char *b;
    size_t len; /* bytes that may be looked at: min(len, max_head) */
    size_t max_line;
    size_t max_fields;
    enum mode mode;
    /* store mode (fields != NULL): the fields found */
    nbio_http_header *fields;
    size_t nfields;     /* field lines seen (may exceed max_fields) */
    size_t over_where;  /* start of field line max_fields + 1 */
    nbio_http_head *h;  /* the start line's parts (store mode, not M_FIELDS) */
    int err;
    const char *why;
    size_t where;
} scan;

static int fail(scan *s, int err, const char *why, size_t where)
{
    s->err = err;
    s->why = why;
    s->where = where;
    return R_ERR;
}

static inline nbio_http_slice slice(const scan *s, size_t from, size_t to)
{
    return (nbio_http_slice){(const char *)s->b + from, to - from};
}

/*
 * Finds the end of the line starting at ls. R_LINE: the content is
 * [ls, *q) and holds no STOP byte, the next line starts at *next. R_MORE:
 * the line ending is not there yet. R_ERR: the line is too long (too_long
 * is its why), or its first STOP byte is not a valid line ending.
 */
static inline int line_end(scan *s, size_t ls, const char *too_long, size_t *q, size_t *next)
{
    size_t cend = s->len - ls > s->max_line ? ls + s->max_line : s->len;
    size_t p = find_stop(s->b, ls, cend);
    if (p == cend) {
        if (cend == s->len)
            return R_MORE;
        /* The byte at the limit exists: only a line ending may be there. */
        if (s->b[p] != '\r' && s->b[p] != '\n')
            return fail(s, NBIO_ETOOLARGE, too_long, p);
    }
    unsigned char c = s->b[p];
    if (c == '\r') {
        if (p + 1 >= s->len)
            return R_MORE;
        if (s->b[p + 1] != '\n')
            return fail(s, NBIO_EPROTOCOL, "bare CR in the head", p);
        *q = p;
        *next = p + 2;
        return R_LINE;
    }
    if (c == '\n') {
        if (s->mode != M_RESPONSE)
            return fail(s, NBIO_EPROTOCOL,
                        s->mode == M_REQUEST ? "bare LF line ending in a request"
                                             : "bare LF line ending in the trailer section",
                        p);
        *q = p;
        *next = p + 1;
        return R_LINE;
    }
    return fail(s, NBIO_EPROTOCOL,
                c == 0x7f ? "DEL character in the head" : "control character in the head", p);
}

/* "HTTP/" DIGIT "." DIGIT at b[i, i + 8) (the caller checked the length).
 * Returns the major * 10 + minor, or -1. */
static inline int version_at(const unsigned char *b, size_t i)
{
    if (memcmp(b + i, "HTTP/", 5) != 0 || b[i + 6] != '.' || !is_digit(b[i + 5]) ||
        !is_digit(b[i + 7]))
        return -1;
    return (b[i + 5] - '0') * 10 + (b[i + 7] - '0');
}

/* request-line = method SP request-target SP HTTP-version, in [ls, q). */
static int request_line(scan *s, size_t ls, size_t q)
{
    const unsigned char *b = s->b;
    size_t m = skip_token(b, ls, q);
    if (m == q)
        return fail(s, NBIO_EPROTOCOL, "request line without a target", m);
    if (b[m] != ' ' || m == ls)
        return fail(s, NBIO_EPROTOCOL,
                    m == ls && b[m] == ' ' ? "empty method" : "invalid character in the method",
                    m);
    size_t t = m + 1;
    const unsigned char *sp = memchr(b + t, ' ', q - t);
    if (sp == NULL)
        return fail(s, NBIO_EPROTOCOL, "request line without an HTTP version", q);
    size_t te = (size_t)(sp - b);
    if (te == t)
        return fail(s, NBIO_EPROTOCOL, "empty request target", t);
    const unsigned char *tab = memchr(b + t, '\t', te - t);
    if (tab != NULL)
        return fail(s, NBIO_EPROTOCOL, "whitespace in the request target",
                    (size_t)(tab - b));
    size_t v = te + 1;
    int ver = q - v == 8 ? version_at(b, v) : -1;
    if (ver < 0)
        return fail(s, NBIO_EPROTOCOL, "malformed HTTP version in the request line", v);
    if (ver != 10 && ver != 11)
        return fail(s, NBIO_EUNSUPPORTED, nbio__http_why_version, v);
    if (s->h != NULL) {
        s->h->method = slice(s, ls, m);
        s->h->target = slice(s, t, te);
        s->h->minor_version = ver % 10;
        s->h->status = 0;
        s->h->reason = (nbio_http_slice){NULL, 0};
    }
    return R_LINE;
}

/* status-line = HTTP-version SP 3DIGIT [SP reason-phrase], in [ls, q). */
static int status_line(scan *s, size_t ls, size_t q)
{
    const unsigned char *b = s->b;
    int ver = q - ls >= 8 ? version_at(b, ls) : -1;
    if (ver < 0)
        return fail(s, NBIO_EPROTOCOL, "malformed HTTP version in the status line", ls);
    if (ver / 10 != 1)
        return fail(s, NBIO_EPROTOCOL, "status line with an HTTP version other than 1.x", ls);
    size_t d = ls + 9;
    if (q - ls < 12 || b[ls + 8] != ' ' || !is_digit(b[d]) || b[d] == '0' ||
        !is_digit(b[d + 1]) || !is_digit(b[d + 2]) || (q - ls > 12 && b[d + 3] != ' '))
        return fail(s, NBIO_EPROTOCOL, "malformed status code", q - ls > 8 ? ls + 8 : q);
    if (s->h != NULL) {
        s->h->minor_version = ver % 10;
        s->h->status = (b[d] - '0') * 100 + (b[d + 1] - '0') * 10 + (b[d + 2] - '0');
        s->h->reason = q - ls > 12 ? slice(s, d + 4, q) : slice(s, q, q);
        s->h->method = (nbio_http_slice){NULL, 0};
        s->h->target = (nbio_http_slice){NULL, 0};
    }
    return R_LINE;
}

/* field-line = field-name ":" OWS field-value OWS, in [ls, q), ls < q. */
static int field_line(scan *s, size_t ls, size_t q)
{
    const unsigned char *b = s->b;
    if (b[ls] == ' ' || b[ls] == '\t')
        return fail(s, NBIO_EPROTOCOL, "obsolete line folding (a field line starts with whitespace)",
                    ls);
    size_t n = skip_token(b, ls, q);
    if (n == q)
        return fail(s, NBIO_EPROTOCOL, "header line without a colon", q);
    if (b[n] != ':') {
        size_t w = n;
        while (w < q && (b[w] == ' ' || b[w] == '\t'))
            w++;
        if (w > n && w < q && b[w] == ':')
            return fail(s, NBIO_EPROTOCOL, "whitespace between the header name and colon", n);
        return fail(s, NBIO_EPROTOCOL, "invalid character in a header name", n);
    }
    if (n == ls)
        return fail(s, NBIO_EPROTOCOL, "empty header name", ls);
    size_t k = s->nfields++;
    if (k < s->max_fields) {
        if (s->fields != NULL) {
            size_t v = n + 1, e = q;
            while (v < e && (b[v] == ' ' || b[v] == '\t'))
                v++;
            while (e > v && (b[e - 1] == ' ' || b[e - 1] == '\t'))
                e--;
            s->fields[k].name = slice(s, ls, n);
            s->fields[k].value = slice(s, v, e);
        }
    } else if (k == s->max_fields) {
        s->over_where = ls;
    }
    return R_LINE;
}

/*
 * The sequential parser: walks lines from pos (a line start; start_line
 * says whether the start line is still to come, so pos 0). Returns R_END
 * with *end the head's length, R_MORE or R_ERR.
 */
static int run(scan *s, size_t pos, bool start_line, size_t *end)
{
    const char *too_long = s->mode == M_REQUEST    ? nbio__http_why_request_line_too_long
                           : s->mode == M_RESPONSE ? nbio__http_why_status_line_too_long
                                                   : nbio__http_why_field_too_long;
    unsigned empties = 0;
    for (;;) {
        size_t q, next;
        int r = line_end(s, pos, start_line ? too_long : nbio__http_why_field_too_long, &q, &next);
        if (r != R_LINE)
            return r;
        if (start_line) {
            if (q == pos) {
                if (++empties > NBIO__HTTP_MAX_LEADING_EMPTY)
                    return fail(s, NBIO_EPROTOCOL, "too many empty lines before the start line",
                                pos);
                pos = next;
                continue;
            }
            r = s->mode == M_REQUEST ? request_line(s, pos, q) : status_line(s, pos, q);
            start_line = false;
        } else {
            if (q == pos) {
                *end = next;
                return R_END;
            }
            r = field_line(s, pos, q);
        }
        if (r != R_LINE)
            return r;
        pos = next;
    }
}

static void limits(const nbio__http_limits *lim, size_t *max_head, size_t *max_fields,
                   size_t *max_line)
{
    *max_head = lim != NULL && lim->max_head != 0 ? lim->max_head : NBIO__HTTP_MAX_HEAD;
    if (*max_head > INT_MAX)
        *max_head = INT_MAX;
    *max_fields = lim != NULL && lim->max_headers != 0 ? lim->max_headers : NBIO__HTTP_MAX_HEADERS;
    *max_line = lim != NULL && lim->max_line != 0 ? lim->max_line : NBIO__HTTP_MAX_LINE;
}

/* The result of run() in store mode, as the public functions return it. */
static int finish(scan *s, int r, size_t end, size_t real_len, size_t max_head, size_t *nfields,
                  const char **why, size_t *where)
{
    if (r == R_END && s->nfields > s->max_fields)
        fail(s, NBIO_ETOOLARGE, nbio__http_why_too_many_headers, s->over_where);
    else if (r == R_END) {
        *nfields = s->nfields;
        return (int)end;
    } else if (r == R_MORE) {
        if (real_len <= max_head)
            return 0;
        fail(s, NBIO_ETOOLARGE, nbio__http_why_head_too_large, max_head);
    }
    *why = s->why;
    *where = s->where;
    return s->err;
}

static int parse_head(enum mode mode, const char *buf, size_t len, size_t prev_len,
                      nbio_http_head *h, const nbio__http_limits *lim, const char **why,
                      size_t *where)
{
    size_t max_head, max_fields, max_line;
    limits(lim, &max_head, &max_fields, &max_line);
    scan s = {.b = (const unsigned char *)buf,
              .len = len < max_head ? len : max_head,
              .max_line = max_line,
              .max_fields = max_fields,
              .mode = mode};
    size_t end = 0;
    int r;
    if (prev_len > s.len)
        prev_len = s.len;
    if (prev_len > 0) {
        /* buf[0, prev_len) held no error and no complete head: only the
         * unfinished line and what follows it can change that. That line
         * is at most max_line bytes plus a CR, so its start is found
         * within max_line + 2 bytes back (when it is not, prev_len was not
         * what the contract says: ls 0 reparses everything). */
        size_t back = max_line < SIZE_MAX - 2 ? max_line + 2 : SIZE_MAX;
        size_t lo = prev_len > back ? prev_len - back : 0;
        const unsigned char *nl = memrchr(s.b + lo, '\n', prev_len - lo);
        size_t ls = nl != NULL ? (size_t)(nl - s.b) + 1 : 0;
        if (len == s.len && s.len - ls <= max_line && s.b[prev_len - 1] != '\r' &&
            find_stop(s.b, prev_len, s.len) == s.len)
            return 0; /* no line ending, no bad byte, no limit reached */
        /* Up to the leading empty lines, the start line is still to come:
         * run from the start then (a few bytes more). */
        bool from0 = ls <= 2 * NBIO__HTTP_MAX_LEADING_EMPTY;
        r = run(&s, from0 ? 0 : ls, from0, &end);
        if (r != R_END) {
            size_t unused;
            return finish(&s, r, end, len, max_head, &unused, why, where);
        }
    }
    s.fields = h->headers;
    s.h = h;
    s.nfields = 0;
    r = run(&s, 0, true, &end);
    return finish(&s, r, end, len, max_head, &h->num_headers, why, where);
}

int nbio__http_parse_request(const char *buf, size_t len, size_t prev_len, nbio_http_head *h,
                             const nbio__http_limits *lim, const char **why, size_t *where)
{
    return parse_head(M_REQUEST, buf, len, prev_len, h, lim, why, where);
}

int nbio__http_parse_response(const char *buf, size_t len, size_t prev_len, nbio_http_head *h,
                              const nbio__http_limits *lim, const char **why, size_t *where)
{
    return parse_head(M_RESPONSE, buf, len, prev_len, h, lim, why, where);
}

int nbio__http_parse_fields(const char *buf, size_t len, nbio_http_header *fields,
                            size_t *num_fields, const nbio__http_limits *lim, const char **why,
                            size_t *where)
{
    size_t max_head, max_fields, max_line;
    limits(lim, &max_head, &max_fields, &max_line);
    scan s = {.b = (const unsigned char *)buf,
              .len = len < max_head ? len : max_head,
              .max_line = max_line,
              .max_fields = max_fields,
              .mode = M_FIELDS,
              .fields = fields};
    size_t end = 0;
    int r = run(&s, 0, false, &end);
    return finish(&s, r, end, len, max_head, num_fields, why, where);
}

int nbio__http_error_status(int err, const char *why)
{
    if (err == NBIO_EUNSUPPORTED && why == nbio__http_why_version)
        return 505;
    if (err == NBIO_EUNSUPPORTED && why == nbio__http_why_unknown_coding)
        return 501;
    if (err == NBIO_ETOOLARGE && why == nbio__http_why_request_line_too_long)
        return 414;
    if (err == NBIO_ETOOLARGE &&
        (why == nbio__http_why_head_too_large || why == nbio__http_why_too_many_headers ||
         why == nbio__http_why_field_too_long))
        return 431;
    return 400;
}
