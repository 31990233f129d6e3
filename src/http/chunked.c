/*
 * The chunked transfer coding (RFC 9112 §7.1): an incremental decoder that
 * works in place. See nbio__chunked_decode() in codec.h for the contract.
 *
 *   chunked-body = *chunk last-chunk trailer-section CRLF
 *   chunk        = chunk-size [ chunk-ext ] CRLF chunk-data CRLF
 *   last-chunk   = 1*("0") [ chunk-ext ] CRLF
 *   chunk-ext    = *( BWS ";" BWS ext-name [ BWS "=" BWS ext-val ] )
 *   ext-val      = token / quoted-string
 *
 * Every byte of a chunk-size line goes through the state machine below
 * once; chunk data is moved in one memmove() per run; the trailer section
 * is scanned for its end (resuming where the previous call stopped) and
 * parsed as a field section once it is complete.
 */
#include <limits.h>
#include <stdint.h>
#include <string.h>

#include "http/codec.h"

enum state {
    S_SIZE_FIRST,      /* the first HEXDIG of a chunk-size */
    S_SIZE,            /* more HEXDIG, or what follows the size */
    S_EXT_WS,          /* BWS that must lead to ";" */
    S_EXT_NAME_FIRST,  /* after ";": BWS, then the first byte of a name */
    S_EXT_NAME,        /* in an extension name */
    S_EXT_NAME_WS,     /* BWS after a name: "=" or ";" must follow */
    S_EXT_VAL_FIRST,   /* after "=": BWS, then a token or a quoted-string */
    S_EXT_VAL_TOKEN,   /* in a token value */
    S_EXT_QUOTED,      /* in a quoted-string value */
    S_EXT_QUOTED_ESC,  /* after a backslash in a quoted-string */
    S_EXT_AFTER_QUOTE, /* after the closing quote */
    S_SIZE_LF,         /* CR of the chunk-size line seen: LF must follow */
    S_DATA,            /* chunk data: `remaining` bytes to go */
    S_DATA_CR,         /* CRLF after chunk data: the CR */
    S_DATA_LF,         /* ... the LF */
    S_TRAILER,         /* in the trailer section (after the last chunk) */
    S_DONE,
    S_ERROR
};

void nbio__chunked_init(nbio__chunked *c, size_t max_line, size_t max_trailer)
{
    memset(c, 0, sizeof *c);
    c->state = S_SIZE_FIRST;
    c->max_line = max_line != 0 ? max_line : NBIO__CHUNK_MAX_LINE;
    c->max_trailer = max_trailer != 0 ? max_trailer : NBIO__CHUNK_MAX_TRAILER;
    if (c->max_trailer > INT_MAX) /* nbio__http_parse_fields() returns an int */
        c->max_trailer = INT_MAX;
}

static inline bool is_tchar(unsigned char ch)
{
    return (nbio__http_cls[ch] & NBIO__HTTP_TCHAR) != 0;
}

static inline unsigned hex_value(unsigned char ch)
{
    return ch <= '9' ? ch - '0' : (ch | 0x20) - 'a' + 10;
}

/* qdtext = HTAB / SP / %x21 / %x23-5B / %x5D-7E / obs-text */
static inline bool is_qdtext(unsigned char ch)
{
    return ch == '\t' || (ch >= 0x20 && ch != '"' && ch != '\\' && ch != 0x7f);
}

/*
 * Scans the trailer section, which starts at buf[t0]; c->trailer_len bytes
 * of it were scanned by earlier calls. Returns 1 with *end set when the
 * section is complete, 0 when more bytes are needed, or an error with
 * *why and *end (the offending offset) set.
 */
static int scan_trailer(nbio__chunked *c, const unsigned char *b, size_t len, size_t t0,
                        size_t *end, const char **why)
{
    size_t lim = len - t0 > c->max_trailer ? t0 + c->max_trailer : len;
    size_t i = t0 + c->trailer_len;
    if (i > len)
        i = len; /* a caller that did not keep the section: stay in bounds */
    for (; i < lim; i++) {
        unsigned char ch = b[i];
        if (ch == '\r') {
            if (i + 1 >= lim)
                break;
            if (b[i + 1] != '\n') {
                *why = "bare CR in the trailer section";
                *end = i;
                return NBIO_EPROTOCOL;
            }
            i++;
            /* An empty line (the section's first, or right after a line's
             * LF) ends the section. */
            if (i - 1 == t0 || b[i - 2] == '\n') {
                *end = i + 1;
                return 1;
            }
        } else if (nbio__http_cls[ch] & NBIO__HTTP_STOP) {
            *why = ch == '\n' ? "bare LF in the trailer section"
                              : "control character in the trailer section";
            *end = i;
            return NBIO_EPROTOCOL;
        }
    }
    c->trailer_len = i - t0;
    if (lim < len) {
        *why = "trailer section larger than the limit";
        *end = lim;
        return NBIO_ETOOLARGE;
    }
    return 0;
}

int nbio__chunked_decode(nbio__chunked *c, char *buf, size_t len, size_t *out_len,
                         size_t *consumed, nbio_http_slice *trailers, const char **why)
{
    unsigned char *b = (unsigned char *)buf;
    size_t pos = 0, out = 0, t0 = 0;
    const char *err_why = NULL;
    int err = NBIO_EPROTOCOL;

    *out_len = 0;
    *consumed = 0;
    if (c->state == S_DONE) {
        if (trailers != NULL)
            *trailers = (nbio_http_slice){NULL, 0};
        return 1;
    }
    if (c->state == S_ERROR) {
        *why = c->why;
        return c->err;
    }

    while (pos < len) {
        if (c->state == S_DATA) {
            size_t n = len - pos;
            if (n > c->remaining)
                n = (size_t)c->remaining;
            if (out != pos)
                memmove(b + out, b + pos, n);
            out += n;
            pos += n;
            c->remaining -= n;
            if (c->remaining == 0)
                c->state = S_DATA_CR;
            continue;
        }
        if (c->state == S_TRAILER) {
            size_t end;
            int r = scan_trailer(c, b, len, t0, &end, &err_why);
            if (r == 0) {
                *out_len = out;
                *consumed = t0;
                return 0;
            }
            if (r < 0) {
                err = r;
                pos = end;
                goto fail;
            }
            /* The section is complete: check its field lines. */
            nbio__http_limits lim = {.max_head = end - t0, .max_headers = SIZE_MAX,
                                     .max_line = end - t0};
            size_t nf, where = 0;
            const char *fwhy = NULL;
            int fr = nbio__http_parse_fields(buf + t0, end - t0, NULL, &nf, &lim, &fwhy, &where);
            if (fr < 0) {
                err = NBIO_EPROTOCOL;
                err_why = fwhy;
                pos = t0 + where;
                goto fail;
            }
            c->state = S_DONE;
            *out_len = out;
            *consumed = end;
            if (trailers != NULL)
                *trailers = (nbio_http_slice){buf + t0, end - t0};
            return 1;
        }

        unsigned char ch = b[pos];
        if (c->state <= S_EXT_AFTER_QUOTE && ch != '\r' && c->line_len++ == c->max_line) {
            err = NBIO_ETOOLARGE;
            err_why = "chunk-size line longer than the limit";
            goto fail;
        }
        switch (c->state) {
        case S_SIZE_FIRST:
            if (!(nbio__http_cls[ch] & NBIO__HTTP_HEX)) {
                err_why = ch == '\r' || ch == ';' ? "empty chunk size" : "chunk size is not hex";
                goto fail;
            }
            c->remaining = hex_value(ch);
            c->state = S_SIZE;
            break;
        case S_SIZE:
            if (nbio__http_cls[ch] & NBIO__HTTP_HEX) {
                if (c->remaining > NBIO__CHUNK_MAX_SIZE >> 4) {
                    err_why = "chunk size too large";
                    goto fail;
                }
                c->remaining = c->remaining << 4 | hex_value(ch);
                if (c->remaining > NBIO__CHUNK_MAX_SIZE) {
                    err_why = "chunk size too large";
                    goto fail;
                }
            } else if (ch == '\r') {
                c->state = S_SIZE_LF;
            } else if (ch == ';') {
                c->state = S_EXT_NAME_FIRST;
            } else if (ch == ' ' || ch == '\t') {
                c->state = S_EXT_WS;
            } else {
                err_why = "invalid character after the chunk size";
                goto fail;
            }
            break;
        case S_EXT_WS:
            if (ch == ';')
                c->state = S_EXT_NAME_FIRST;
            else if (ch != ' ' && ch != '\t') {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_NAME_FIRST:
            if (is_tchar(ch))
                c->state = S_EXT_NAME;
            else if (ch != ' ' && ch != '\t') {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_NAME:
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (ch == ';')
                c->state = S_EXT_NAME_FIRST;
            else if (ch == '=')
                c->state = S_EXT_VAL_FIRST;
            else if (ch == ' ' || ch == '\t')
                c->state = S_EXT_NAME_WS;
            else if (!is_tchar(ch)) {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_NAME_WS:
            if (ch == ';')
                c->state = S_EXT_NAME_FIRST;
            else if (ch == '=')
                c->state = S_EXT_VAL_FIRST;
            else if (ch != ' ' && ch != '\t') {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_VAL_FIRST:
            if (ch == '"')
                c->state = S_EXT_QUOTED;
            else if (is_tchar(ch))
                c->state = S_EXT_VAL_TOKEN;
            else if (ch != ' ' && ch != '\t') {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_VAL_TOKEN:
        case S_EXT_AFTER_QUOTE:
            if (ch == '\r')
                c->state = S_SIZE_LF;
            else if (ch == ';')
                c->state = S_EXT_NAME_FIRST;
            else if (ch == ' ' || ch == '\t')
                c->state = S_EXT_WS;
            else if (c->state != S_EXT_VAL_TOKEN || !is_tchar(ch)) {
                err_why = "malformed chunk extension";
                goto fail;
            }
            break;
        case S_EXT_QUOTED:
            if (ch == '"')
                c->state = S_EXT_AFTER_QUOTE;
            else if (ch == '\\')
                c->state = S_EXT_QUOTED_ESC;
            else if (!is_qdtext(ch)) {
                err_why = "control character in a chunk extension";
                goto fail;
            }
            break;
        case S_EXT_QUOTED_ESC:
            if (ch != '\t' && (ch < 0x20 || ch == 0x7f)) {
                err_why = "control character in a chunk extension";
                goto fail;
            }
            c->state = S_EXT_QUOTED;
            break;
        case S_SIZE_LF:
            if (ch != '\n') {
                err_why = "bare CR in a chunk-size line";
                goto fail;
            }
            c->line_len = 0;
            if (c->remaining == 0) {
                c->state = S_TRAILER;
                c->trailer_len = 0;
                t0 = pos + 1;
            } else {
                c->state = S_DATA;
            }
            break;
        case S_DATA_CR:
            if (ch != '\r') {
                err_why = "chunk data not followed by CRLF";
                goto fail;
            }
            c->state = S_DATA_LF;
            break;
        case S_DATA_LF:
            if (ch != '\n') {
                err_why = "chunk data not followed by CRLF";
                goto fail;
            }
            c->state = S_SIZE_FIRST;
            break;
        default:
            err_why = "chunked decoder in an unknown state";
            goto fail;
        }
        pos++;
    }
    /* Out of input: everything was consumed (an empty trailer section so
     * far is consumed too: nothing of it needs keeping). */
    if (c->state == S_TRAILER)
        c->trailer_len = 0;
    *out_len = out;
    *consumed = len;
    return 0;

fail:
    c->state = S_ERROR;
    c->err = err;
    c->why = err_why;
    *why = err_why;
    *out_len = out;
    *consumed = pos;
    return err;
}
