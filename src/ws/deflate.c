/*
 * permessage-deflate (RFC 7692): negotiation in the opening handshake and
 * message compression with zlib (raw deflate). See codec.h.
 */
#include <limits.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/codec.h"
#include "ws/codec.h"

void nbio__pmd_params_init(nbio__pmd_params *p)
{
    memset(p, 0, sizeof *p);
    p->server_max_window_bits = 15;
    p->client_max_window_bits = 15;
}

/* 0 (a zeroed struct) means the default, 15. */
static int bits_of(int b)
{
    return b == 0 ? 15 : b;
}

static bool bits_ok(int b)
{
    return b >= 8 && b <= 15;
}

/* ======================================================================== */
/* The Sec-WebSocket-Extensions syntax                                       */
/* ======================================================================== */

/*
 * RFC 6455 §9.1:
 *   Sec-WebSocket-Extensions = 1#extension
 *   extension = extension-token *( ";" extension-param )
 *   extension-param = token [ "=" (token | quoted-string) ]
 * with OWS around the separators (RFC 9110 lists: empty elements are
 * ignored), and a quoted value that must be a token once unescaped.
 */

#define MAX_PARAMS 16

typedef struct ext_param {
    nbio_http_slice name;
    bool has_value;
    nbio_http_slice value; /* raw: a token, or a quoted-string with its quotes */
} ext_param;

typedef struct ext_elem {
    nbio_http_slice name;
    ext_param params[MAX_PARAMS];
    size_t num_params;
    bool too_many; /* more than MAX_PARAMS: never acceptable */
} ext_elem;

static bool is_tchar(unsigned char c)
{
    return (nbio__http_cls[c] & NBIO__HTTP_TCHAR) != 0;
}

static size_t skip_ows(const char *s, size_t n, size_t i)
{
    while (i < n && (s[i] == ' ' || s[i] == '\t'))
        i++;
    return i;
}

static size_t token_end(const char *s, size_t n, size_t i)
{
    while (i < n && is_tchar((unsigned char)s[i]))
        i++;
    return i;
}

/* A quoted-string at s[i] == '"': returns the index after the closing
 * quote, or 0 when malformed (unterminated, or a character that is neither
 * qdtext nor quoted-pair, or unescaped content that is not a token). */
static size_t quoted_end(const char *s, size_t n, size_t i)
{
    size_t chars = 0;
    for (i++; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"')
            return chars > 0 ? i + 1 : 0; /* an empty token is no token */
        if (c == '\\') {
            if (++i == n)
                return 0;
            c = (unsigned char)s[i];
        }
        if (!is_tchar(c)) /* RFC 6455 §9.1: the unescaped value is a token */
            return 0;
        chars++;
    }
    return 0;
}

/*
 * Parses the next list element of s[*pos, n) into *e. Returns 1 with *e
 * filled, 0 at the end of the value, NBIO_EPROTOCOL (*why) when malformed.
 */
static int next_ext(const char *s, size_t n, size_t *pos, ext_elem *e, const char **why)
{
    size_t i = *pos;
    for (;;) { /* empty elements */
        i = skip_ows(s, n, i);
        if (i < n && s[i] == ',') {
            i++;
            continue;
        }
        break;
    }
    if (i == n) {
        *pos = i;
        return 0;
    }
    size_t t = token_end(s, n, i);
    if (t == i) {
        *why = "Sec-WebSocket-Extensions: expected an extension name";
        return NBIO_EPROTOCOL;
    }
    e->name = (nbio_http_slice){s + i, t - i};
    e->num_params = 0;
    e->too_many = false;
    i = skip_ows(s, n, t);
    while (i < n && s[i] == ';') {
        i = skip_ows(s, n, i + 1);
        t = token_end(s, n, i);
        if (t == i) {
            *why = "Sec-WebSocket-Extensions: expected a parameter name";
            return NBIO_EPROTOCOL;
        }
        ext_param prm = {.name = {s + i, t - i}, .has_value = false, .value = {NULL, 0}};
        i = skip_ows(s, n, t);
        if (i < n && s[i] == '=') {
            i = skip_ows(s, n, i + 1);
            if (i < n && s[i] == '"')
                t = quoted_end(s, n, i);
            else
                t = token_end(s, n, i);
            if (t == 0 || t == i) {
                *why = "Sec-WebSocket-Extensions: bad parameter value";
                return NBIO_EPROTOCOL;
            }
            prm.has_value = true;
            prm.value = (nbio_http_slice){s + i, t - i};
            i = skip_ows(s, n, t);
        }
        if (e->num_params < MAX_PARAMS)
            e->params[e->num_params++] = prm;
        else
            e->too_many = true;
    }
    if (i < n && s[i] != ',') {
        *why = "Sec-WebSocket-Extensions: unexpected character";
        return NBIO_EPROTOCOL;
    }
    if (i < n)
        i++; /* the comma */
    *pos = i;
    return 1;
}

/* A window bits value: a decimal integer 8..15 without leading zeros, as a
 * token or quoted (escapes allowed). Returns it, or -1. */
static int window_bits(nbio_http_slice v)
{
    char digits[3];
    size_t nd = 0;
    size_t i = 0, n = v.len;
    bool quoted = n > 0 && v.data[0] == '"';
    if (quoted) {
        i = 1;
        n--; /* the closing quote */
    }
    for (; i < n; i++) {
        char c = v.data[i];
        if (quoted && c == '\\')
            c = v.data[++i];
        if (c < '0' || c > '9' || nd == sizeof digits)
            return -1;
        digits[nd++] = c;
    }
    if (nd == 0 || (nd > 1 && digits[0] == '0'))
        return -1;
    int b = 0;
    for (size_t k = 0; k < nd; k++)
        b = b * 10 + (digits[k] - '0');
    return bits_ok(b) ? b : -1;
}

/* The parameters of one permessage-deflate element, checked. */
typedef struct pmd_seen {
    bool snct, cnct;       /* the no_context_takeover flags */
    int smwb;              /* server_max_window_bits: 0 absent, else 8..15 */
    bool cmwb;             /* client_max_window_bits present */
    int cmwb_value;        /* its value: 0 none, else 8..15 */
} pmd_seen;

/* Checks e's parameters. Returns NULL when they are acceptable, else why
 * not (static). response: client_max_window_bits needs a value. */
static const char *pmd_params(const ext_elem *e, bool response, pmd_seen *s)
{
    memset(s, 0, sizeof *s);
    if (e->too_many)
        return "permessage-deflate: too many parameters";
    bool seen[4] = {false, false, false, false};
    for (size_t k = 0; k < e->num_params; k++) {
        const ext_param *p = &e->params[k];
        int which;
        if (nbio_http_slice_ieq(p->name, "server_no_context_takeover"))
            which = 0;
        else if (nbio_http_slice_ieq(p->name, "client_no_context_takeover"))
            which = 1;
        else if (nbio_http_slice_ieq(p->name, "server_max_window_bits"))
            which = 2;
        else if (nbio_http_slice_ieq(p->name, "client_max_window_bits"))
            which = 3;
        else
            return "permessage-deflate: unknown parameter";
        if (seen[which])
            return "permessage-deflate: repeated parameter";
        seen[which] = true;
        switch (which) {
        case 0:
        case 1:
            if (p->has_value)
                return "permessage-deflate: no_context_takeover takes no value";
            if (which == 0)
                s->snct = true;
            else
                s->cnct = true;
            break;
        case 2:
            if (!p->has_value || (s->smwb = window_bits(p->value)) < 0)
                return "permessage-deflate: server_max_window_bits is not 8..15";
            break;
        default:
            s->cmwb = true;
            if (p->has_value) {
                if ((s->cmwb_value = window_bits(p->value)) < 0)
                    return "permessage-deflate: client_max_window_bits is not 8..15";
            } else if (response) {
                return "permessage-deflate: client_max_window_bits without a value";
            }
            break;
        }
    }
    return NULL;
}

/* ======================================================================== */
/* Negotiation                                                               */
/* ======================================================================== */

int nbio__pmd_negotiate(const nbio_http_head *h, bool is_response, nbio__pmd_params *p,
                        const char **why)
{
    nbio__pmd_params offer; /* client side: what was offered (*p is output only
                               on the server side: not read) */
    nbio__pmd_params got;
    if (is_response)
        offer = *p;
    else
        nbio__pmd_params_init(&offer);
    bool found = false;
    ext_elem e;
    size_t from = 0;
    const nbio_http_slice *v;
    while ((v = nbio_http_header_find(h, "sec-websocket-extensions", &from)) != NULL) {
        size_t pos = 0;
        int r;
        while ((r = next_ext(v->data, v->len, &pos, &e, why)) == 1) {
            bool pmd = nbio_http_slice_ieq(e.name, "permessage-deflate");
            if (!is_response) {
                /* Server: the first acceptable offer; keep checking the
                 * syntax of the rest. */
                pmd_seen s;
                if (!pmd || found || pmd_params(&e, false, &s) != NULL)
                    continue;
                nbio__pmd_params_init(&got);
                got.server_no_context_takeover = s.snct;
                got.client_no_context_takeover = s.cnct;
                if (s.smwb != 0)
                    got.server_max_window_bits = s.smwb;
                got.client_max_window_bits_offered = s.cmwb;
                if (s.cmwb_value != 0)
                    got.client_max_window_bits = s.cmwb_value;
                found = true;
                continue;
            }
            /* Client: exactly one permessage-deflate, as offered. */
            if (!pmd) {
                *why = "Sec-WebSocket-Extensions: the server chose an extension not offered";
                return NBIO_EPROTOCOL;
            }
            if (found) {
                *why = "Sec-WebSocket-Extensions: permessage-deflate twice in the answer";
                return NBIO_EPROTOCOL;
            }
            pmd_seen s;
            const char *bad = pmd_params(&e, true, &s);
            if (bad != NULL) {
                *why = bad;
                return NBIO_EPROTOCOL;
            }
            int offer_smwb = bits_of(offer.server_max_window_bits);
            int offer_cmwb = bits_of(offer.client_max_window_bits);
            bool cmwb_offered = offer.client_max_window_bits_offered || offer_cmwb < 15;
            if (s.cmwb && !cmwb_offered) {
                *why = "permessage-deflate: client_max_window_bits in the answer was not offered";
                return NBIO_EPROTOCOL;
            }
            if (offer_smwb < 15 && (s.smwb == 0 || s.smwb > offer_smwb)) {
                *why = "permessage-deflate: server_max_window_bits larger than offered";
                return NBIO_EPROTOCOL;
            }
            if (offer.server_no_context_takeover && !s.snct) {
                *why = "permessage-deflate: server_no_context_takeover missing from the answer";
                return NBIO_EPROTOCOL;
            }
            nbio__pmd_params_init(&got);
            got.server_no_context_takeover = s.snct;
            got.client_no_context_takeover = s.cnct || offer.client_no_context_takeover;
            got.server_max_window_bits = s.smwb != 0 ? s.smwb : 15;
            got.client_max_window_bits = offer_cmwb;
            if (s.cmwb_value != 0 && s.cmwb_value < offer_cmwb)
                got.client_max_window_bits = s.cmwb_value;
            got.client_max_window_bits_offered = offer.client_max_window_bits_offered;
            found = true;
        }
        if (r < 0)
            return r;
    }
    if (found)
        *p = got;
    return found ? 1 : 0;
}

/* Appends the NUL-terminated s to buf[*n, cap); false when it does not fit
 * (with its NUL). */
static bool put(char *buf, size_t cap, size_t *n, const char *s)
{
    size_t l = strlen(s);
    if (l >= cap - *n)
        return false;
    memcpy(buf + *n, s, l + 1);
    *n += l;
    return true;
}

int nbio__pmd_format(const nbio__pmd_params *p, bool is_response, char *buf, size_t cap)
{
    int smwb = bits_of(p->server_max_window_bits);
    int cmwb = bits_of(p->client_max_window_bits);
    if (!bits_ok(smwb) || !bits_ok(cmwb) || cap == 0)
        return -1;
    size_t n = 0;
    char num[40];
    bool ok = put(buf, cap, &n, "permessage-deflate");
    if (p->server_no_context_takeover)
        ok = ok && put(buf, cap, &n, "; server_no_context_takeover");
    if (p->client_no_context_takeover)
        ok = ok && put(buf, cap, &n, "; client_no_context_takeover");
    if (smwb < 15) {
        snprintf(num, sizeof num, "; server_max_window_bits=%d", smwb);
        ok = ok && put(buf, cap, &n, num);
    }
    if (!is_response && (p->client_max_window_bits_offered || cmwb < 15)) {
        ok = ok && put(buf, cap, &n, "; client_max_window_bits");
        if (cmwb < 15) {
            snprintf(num, sizeof num, "=%d", cmwb);
            ok = ok && put(buf, cap, &n, num);
        }
    } else if (is_response && p->client_max_window_bits_offered && cmwb < 15) {
        snprintf(num, sizeof num, "; client_max_window_bits=%d", cmwb);
        ok = ok && put(buf, cap, &n, num);
    }
    return ok ? (int)n : -1;
}

/* ======================================================================== */
/* Compression                                                               */
/* ======================================================================== */

int nbio__pmd_init(nbio__pmd *z, const nbio__pmd_params *p, bool is_server)
{
    memset(z, 0, sizeof *z);
    int sb = bits_of(p->server_max_window_bits);
    int cb = bits_of(p->client_max_window_bits);
    if (!bits_ok(sb) || !bits_ok(cb))
        return NBIO_EINVAL;
    z->def_bits = is_server ? sb : cb;
    z->inf_bits = is_server ? cb : sb;
    z->def_reset = is_server ? p->server_no_context_takeover : p->client_no_context_takeover;
    z->inf_reset = is_server ? p->client_no_context_takeover : p->server_no_context_takeover;
    /* zlib's state is allocated on first use (nbio__pmd_deflate/_inflate):
     * a session that only receives never pays for a compressor. */
    return 0;
}

void nbio__pmd_free(nbio__pmd *z)
{
    if (z->def_ready)
        deflateEnd(&z->def);
    if (z->inf_ready)
        inflateEnd(&z->inf);
    z->def_ready = z->inf_ready = false;
}

static int def_start(nbio__pmd *z)
{
    if (z->def_ready)
        return 0;
    memset(&z->def, 0, sizeof z->def);
    /* 8 agreed: zlib's 9 reaches back at most 512 - 262 = 250 bytes (see
     * codec.h). */
    int wb = z->def_bits < 9 ? 9 : z->def_bits;
    int r = deflateInit2(&z->def, Z_DEFAULT_COMPRESSION, Z_DEFLATED, -wb, 8, Z_DEFAULT_STRATEGY);
    if (r != Z_OK)
        return r == Z_MEM_ERROR ? NBIO_ENOMEM : NBIO_EINVAL;
    z->def_ready = true;
    return 0;
}

static int inf_start(nbio__pmd *z)
{
    if (z->inf_ready)
        return 0;
    memset(&z->inf, 0, sizeof z->inf);
    int r = inflateInit2(&z->inf, -z->inf_bits);
    if (r != Z_OK)
        return r == Z_MEM_ERROR ? NBIO_ENOMEM : NBIO_EINVAL;
    z->inf_ready = true;
    return 0;
}

/* zlib counts in uInt. */
#define CHUNK_MAX ((size_t)UINT_MAX)

int nbio__pmd_deflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out)
{
    size_t before = out->len;
    if (len == 0) /* an empty stored block without its LEN/NLEN */
        return nbio__bytes_append(out, "", 1);
    int r = def_start(z);
    if (r < 0)
        return r;
    z_stream *s = &z->def;
    const unsigned char *src = in;
    size_t left = len;
    for (;;) {
        if (s->avail_in == 0 && left > 0) {
            size_t n = left < CHUNK_MAX ? left : CHUNK_MAX;
            s->next_in = (unsigned char *)(uintptr_t)src; /* zlib does not write it */
            s->avail_in = (uInt)n;
            src += n;
            left -= n;
        }
        /* Room for about what deflate may produce from what is left. */
        size_t bound = (size_t)s->avail_in + left;
        bound += bound / 1000 + 64;
        size_t room;
        unsigned char *w = nbio__bytes_wbuf(out, out->len + bound, &room);
        if (w == NULL) {
            out->len = before;
            return NBIO_ENOMEM;
        }
        if (room > CHUNK_MAX)
            room = CHUNK_MAX;
        s->next_out = w;
        s->avail_out = (uInt)room;
        r = deflate(s, Z_SYNC_FLUSH);
        nbio__bytes_wack(out, room - s->avail_out);
        if (r != Z_OK && r != Z_BUF_ERROR) {
            out->len = before;
            return r == Z_MEM_ERROR ? NBIO_ENOMEM : NBIO_EINVAL;
        }
        /* Done when all input is in and the flush completed (output room
         * was left over). */
        if (s->avail_in == 0 && left == 0 && s->avail_out != 0)
            break;
    }
    s->next_in = NULL; /* nothing of the caller's is kept */
    s->avail_in = 0;
    s->next_out = NULL;
    s->avail_out = 0;
    /* A sync flush ends with an empty stored block: 00 00 FF FF after the
     * block's 3 header bits. The tail goes; the receiver puts it back. */
    size_t produced = out->len - before;
    if (produced < 4 ||
        memcmp(nbio__bytes_peek(out) + out->len - 4, "\x00\x00\xff\xff", 4) != 0) {
        out->len = before;
        return NBIO_EINVAL; /* zlib broke its promise; never seen */
    }
    out->len -= 4;
    if (z->def_reset)
        deflateReset(s);
    return 0;
}

static const unsigned char sync_tail[4] = {0x00, 0x00, 0xff, 0xff};

/* After a final block: the stream has ended, but with context takeover the
 * next message may still reach into this one's window. Restart the
 * decompressor with its window as the dictionary. */
static int inf_restart(nbio__pmd *z)
{
    z_stream *s = &z->inf;
    if (z->inf_reset)
        return inflateReset(s) == Z_OK ? 0 : NBIO_EPROTOCOL;
    unsigned char *dict = malloc((size_t)1 << z->inf_bits);
    if (dict == NULL)
        return NBIO_ENOMEM;
    uInt dlen = 0;
    int r = inflateGetDictionary(s, dict, &dlen);
    if (r == Z_OK)
        r = inflateReset(s);
    if (r == Z_OK && dlen > 0)
        r = inflateSetDictionary(s, dict, dlen);
    free(dict);
    return r == Z_OK ? 0 : NBIO_EPROTOCOL;
}

int nbio__pmd_inflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out, size_t max)
{
    size_t before = out->len;
    if (len == 0) /* leniency: an empty payload is an empty message */
        return 0;
    int r = inf_start(z);
    if (r < 0)
        return r;
    z_stream *s = &z->inf;
    const unsigned char *src = in;
    size_t left = len;
    bool tail_fed = false, ended = false;
    size_t produced = 0;
    unsigned char probe;
    int err = 0;
    for (;;) {
        if (s->avail_in == 0) {
            if (left > 0) {
                size_t n = left < CHUNK_MAX ? left : CHUNK_MAX;
                s->next_in = (unsigned char *)(uintptr_t)src;
                s->avail_in = (uInt)n;
                src += n;
                left -= n;
            } else if (!tail_fed) {
                s->next_in = (unsigned char *)(uintptr_t)sync_tail;
                s->avail_in = sizeof sync_tail;
                tail_fed = true;
            }
        }
        bool probing = produced == max;
        size_t room;
        unsigned char *w;
        if (probing) {
            /* At the limit: one more byte of output means too large. */
            w = &probe;
            room = 1;
        } else {
            size_t want = max - produced;
            if (want > SIZE_MAX - out->len)
                want = SIZE_MAX - out->len;
            w = nbio__bytes_wbuf(out, out->len + want, &room);
            if (w == NULL) {
                err = nbio__bytes_full(out) ? NBIO_ETOOLARGE : NBIO_ENOMEM;
                break;
            }
            if (room > max - produced)
                room = max - produced;
            if (room > CHUNK_MAX)
                room = CHUNK_MAX;
        }
        s->next_out = w;
        s->avail_out = (uInt)room;
        uInt in_before = s->avail_in;
        r = inflate(s, Z_SYNC_FLUSH);
        size_t got = room - s->avail_out;
        if (probing && got > 0) {
            err = NBIO_ETOOLARGE;
            break;
        }
        if (!probing) {
            nbio__bytes_wack(out, got);
            produced += got;
        }
        if (r == Z_STREAM_END) {
            ended = true; /* bytes after the final block are ignored */
            break;
        }
        if (r == Z_DATA_ERROR || r == Z_NEED_DICT || r == Z_STREAM_ERROR) {
            err = NBIO_EPROTOCOL;
            break;
        }
        if (r == Z_MEM_ERROR) {
            err = NBIO_ENOMEM;
            break;
        }
        /* Z_OK or Z_BUF_ERROR. Finished when every byte went in (tail
         * too) and inflate had output room to spare. */
        if (s->avail_in == 0 && left == 0 && tail_fed && s->avail_out != 0)
            break;
        if (r == Z_BUF_ERROR && s->avail_in == in_before && got == 0 && s->avail_out != 0) {
            err = NBIO_EPROTOCOL; /* no progress possible */
            break;
        }
    }
    s->next_in = NULL; /* nothing of the caller's is kept */
    s->avail_in = 0;
    s->next_out = NULL;
    s->avail_out = 0;
    if (err == 0 && !ended && !(s->data_type & 128)) {
        /* The message must end where a block ends: 00 00 FF FF completed
         * an empty stored block, after which zlib waits for a new block
         * header. Anything else means the sender cut a block short. */
        err = NBIO_EPROTOCOL;
    }
    if (err == 0 && ended)
        err = inf_restart(z);
    else if (err == 0 && z->inf_reset && inflateReset(s) != Z_OK)
        err = NBIO_EPROTOCOL;
    if (err != 0)
        out->len = before;
    return err;
}
