/*
 * The WebSocket session (RFC 6455), client and server, over any byte
 * session.
 *
 * Establishment is the opening handshake (handshake.c-style checks live in
 * the codec; the HTTP heads are parsed with the HTTP codec):
 *   client: the upgrade request is queued at construction; the establish
 *           hook sends it, reads the 101 and checks it;
 *   server: the establish hook reads the upgrade request, checks it and
 *           queues the 101 (or a refusal, then the session ends).
 *
 * Reads collect bytes in `in` until a whole frame is there, unmask it in
 * place, and then:
 *   - a control frame is handled at once (ping → pong queued; close →
 *     answered and the read side ends), also between the fragments of a
 *     message;
 *   - a data frame that is a whole uncompressed message is handed out
 *     where it lies (zero-copy);
 *   - fragments (and compressed messages) are collected in `msg`, checked
 *     incrementally (UTF-8 of text, the size limit), inflated when whole.
 * Protocol errors queue a close frame with the RFC's code, send it as far
 * as the transport takes it, and end the session.
 *
 * Writes frame messages into `out` (masked with fresh keys on the client);
 * it goes out when a read has nothing to hand out, on drive/flush/close, or
 * when it fills. A message larger than the queue is framed once and its
 * payload copied in as room frees up (the caller resubmits the rest).
 */
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/bytes.h"
#include "core/session.h"
#include "http/codec.h"
#include "http/handoff.h"
#include "http/url.h"
#include "http/write.h"
#include "nbio/mock.h"
#include "nbio/tcp.h"
#include "nbio/ws.h"
#include "ws/codec.h"

#define CLOSE_NORMAL 1000
#define CLOSE_PROTOCOL 1002
#define CLOSE_NO_STATUS 1005
#define CLOSE_BAD_DATA 1007
#define CLOSE_TOO_BIG 1009

typedef struct nbio__ws {
    nbio_session base; /* base.inner: the byte session */
    nbio_ws_options opt;
    bool server;
    /* the handshake */
    char key[25];
    char *protocol;   /* agreed subprotocol */
    char **offer;     /* owned copies of the protocol lists */
    size_t noffer;
    int64_t deadline; /* handshake limit */
    bool pmd;
    nbio__pmd_params pmdp;
    nbio__pmd z;
    bool z_ready;
    nbio__ws_rng rng;
    /* read side */
    nbio__bytes in;
    size_t handed;        /* bytes of `in` handed out last (a zero-copy frame) */
    bool msg_handed;      /* msg / zout was handed out last */
    bool inner_eof;
    bool examine;         /* bytes wait that no read looked at */
    bool in_message;      /* fragments of a message are being collected */
    uint8_t msg_opcode;
    bool msg_compressed;
    uint32_t utf8;
    nbio__bytes msg, zout;
    /* write side */
    nbio__bytes out, ztmp;
    uint64_t stream_rem;  /* payload bytes of a large message still owed */
    uint8_t stream_mask[4];
    uint64_t stream_off;
    nbio_ws_type stream_type;
    int64_t last_write;
    /* closing */
    bool close_sent, close_received;
    unsigned my_code, peer_code;
    char my_reason[124], peer_reason[124];
} nbio__ws;

static const nbio__vtable ws_vtable;

static nbio__ws *ws_of(const nbio_session *s)
{
    return (nbio__ws *)nbio__find_layer(s, &ws_vtable);
}

/* ---- frames out ---------------------------------------------------------- */

/* Queues one frame with payload p (masked on the client). Returns 0 or
 * NBIO_ENOMEM. */
static int queue_frame(nbio__ws *w, uint8_t opcode, bool fin, bool rsv1, const void *p,
                       size_t len)
{
    unsigned char hdr[NBIO__WS_MAX_HEADER];
    uint8_t mask[4];
    if (!w->server)
        nbio__ws_rng_mask(&w->rng, mask);
    size_t hl = nbio__ws_encode_header(hdr, opcode, fin, rsv1, len, w->server ? NULL : mask);
    size_t room;
    unsigned char *dst = nbio__bytes_wbuf(&w->out, w->out.len + hl + len + 1, &room);
    if (dst == NULL || room < hl + len) {
        if (nbio__bytes_append(&w->out, hdr, hl) != 0 || nbio__bytes_append(&w->out, p, len) != 0)
            return NBIO_ENOMEM;
        dst = (unsigned char *)nbio__bytes_peek(&w->out) + w->out.len - len;
    } else {
        memcpy(dst, hdr, hl);
        if (len > 0)
            memcpy(dst + hl, p, len);
        nbio__bytes_wack(&w->out, hl + len);
        dst += hl;
    }
    if (!w->server && len > 0)
        nbio__ws_mask(dst, len, mask, 0);
    w->last_write = nbio_now_ms();
    return 0;
}

static int queue_close(nbio__ws *w, unsigned code, const char *reason)
{
    unsigned char p[125];
    size_t n = 0;
    if (code != CLOSE_NO_STATUS) {
        p[0] = (unsigned char)(code >> 8);
        p[1] = (unsigned char)code;
        n = 2;
        size_t rl = reason != NULL ? strlen(reason) : 0;
        if (rl > 123)
            rl = 123;
        if (rl > 0)
            memcpy(p + 2, reason, rl);
        n += rl;
    }
    w->close_sent = true;
    return queue_frame(w, 8, true, false, p, n);
}

static int flush_out(nbio__ws *w, bool *wrote)
{
    return nbio__send_queued(&w->base, &w->out, true, wrote);
}

/* A protocol error: a close frame with code, sent as far as the transport
 * takes it now, then the session ends with err. */
static int ws_fail(nbio__ws *w, int err, unsigned code, const char *why)
{
    nbio_session *s = &w->base;
    if (!w->close_sent && nbio__write_open(s->inner))
        (void)queue_close(w, code, why);
    (void)flush_out(w, NULL);
    if (w->out.len == 0)
        (void)nbio_shutdown(s->inner);
    return nbio__fail(s, err, "WebSocket: %s (closed with %u)", why, code);
}

/* ---- the handshake ---------------------------------------------------------- */

/* The head at the front of `in`: > 0 its length, 0 more needed, or an error. */
static int handshake_head(nbio__ws *w, nbio_http_head *h, nbio_http_header *hdrs)
{
    const char *why = "";
    size_t where = 0;
    h->headers = hdrs;
    nbio__http_limits lim = {16384, 64, 8192};
    const char *b = (const char *)nbio__bytes_peek(&w->in);
    int r = w->server ? nbio__http_parse_request(b, w->in.len, 0, h, &lim, &why, &where)
                      : nbio__http_parse_response(b, w->in.len, 0, h, &lim, &why, &where);
    if (r < 0)
        return nbio__fail(&w->base, NBIO_EPROTOCOL, "WebSocket handshake: %s", why);
    return r;
}

/* Reads handshake bytes. Returns > 0 (bytes), NBIO_IDLE, or an error. */
static long handshake_fill(nbio__ws *w)
{
    size_t room;
    unsigned char *p = nbio__bytes_wbuf(&w->in, w->in.len + 1, &room);
    if (p == NULL)
        return nbio__fail(&w->base, NBIO_ENOMEM, "WebSocket: out of memory");
    if (w->in.len > 16384)
        return nbio__fail(&w->base, NBIO_EPROTOCOL, "WebSocket handshake: head too large");
    long n = nbio__read_into(w->base.inner, p, room);
    if (n == NBIO_EPEERCLOSED)
        return nbio__fail(&w->base, NBIO_EPROTOCOL,
                          "WebSocket handshake: connection closed by peer");
    if (n < 0)
        return nbio__fail_from(&w->base, w->base.inner, (int)n);
    if (n > 0)
        nbio__bytes_wack(&w->in, (size_t)n);
    return n;
}

static bool offered(const nbio__ws *w, nbio_http_slice p)
{
    for (size_t i = 0; i < w->noffer; i++)
        if (nbio_http_slice_eq(p, w->offer[i]))
            return true;
    return false;
}

static int take_protocol(nbio__ws *w, const char *p, size_t len)
{
    free(w->protocol);
    w->protocol = strndup(p, len);
    return w->protocol != NULL ? 0 : NBIO_ENOMEM;
}

/* What a client offers: takeover both ways, its window negotiable. */
static nbio__pmd_params client_offer(void)
{
    nbio__pmd_params p;
    nbio__pmd_params_init(&p);
    p.client_max_window_bits_offered = true;
    return p;
}

/* Client: checks the server's answer. Returns 0 or an error. */
static int check_answer(nbio__ws *w, const nbio_http_head *h)
{
    nbio_session *s = &w->base;
    if (h->status != 101)
        return nbio__fail(s, NBIO_EPROTOCOL, "handshake: server answered %d %.*s", h->status,
                          (int)h->reason.len, h->reason.data != NULL ? h->reason.data : "");
    const nbio_http_slice *up = nbio_http_header_find(h, "upgrade", NULL);
    if (up == NULL || !nbio__http_list_has(*up, "websocket") ||
        !nbio__http_header_has_token(h, "connection", "upgrade"))
        return nbio__fail(s, NBIO_EPROTOCOL, "handshake: 101 without Upgrade: websocket");
    char want[29];
    nbio__ws_accept_key(w->key, strlen(w->key), want);
    const nbio_http_slice *acc = nbio_http_header_find(h, "sec-websocket-accept", NULL);
    if (acc == NULL || !nbio_http_slice_eq(*acc, want))
        return nbio__fail(s, NBIO_EPROTOCOL, "handshake: wrong Sec-WebSocket-Accept");
    const nbio_http_slice *pr = nbio_http_header_find(h, "sec-websocket-protocol", NULL);
    if (pr != NULL) {
        if (!offered(w, *pr))
            return nbio__fail(s, NBIO_EPROTOCOL,
                              "handshake: the server chose subprotocol \"%.*s\", not offered",
                              (int)pr->len, pr->data);
        if (take_protocol(w, pr->data, pr->len) != 0)
            return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
    }
    const char *why = "";
    w->pmdp = client_offer(); /* what was offered: the answer is checked against it */
    int r = nbio__pmd_negotiate(h, true, &w->pmdp, &why);
    if (r < 0 || (r == 1 && !w->opt.compress))
        return nbio__fail(s, NBIO_EPROTOCOL, "handshake: extensions: %s",
                          r < 0 ? why : "permessage-deflate was not offered");
    w->pmd = r == 1;
    return 0;
}

/* Server: the request's verdict. On success sets the protocol and
 * extension choices; else returns the status to answer (400/403/426) and
 * *why. */
static int judge_request(nbio__ws *w, const nbio_http_head *h, const char **why)
{
    const nbio_http_slice *up = nbio_http_header_find(h, "upgrade", NULL);
    const nbio_http_slice *ver = nbio_http_header_find(h, "sec-websocket-version", NULL);
    const nbio_http_slice *key = nbio_http_header_find(h, "sec-websocket-key", NULL);
    if (!nbio_http_slice_eq(h->method, "GET") || h->minor_version < 1) {
        *why = "not a GET over HTTP/1.1";
        return 400;
    }
    if (nbio_http_header_find(h, "host", NULL) == NULL) {
        *why = "no Host header";
        return 400;
    }
    if (up == NULL || !nbio__http_list_has(*up, "websocket") ||
        !nbio__http_header_has_token(h, "connection", "upgrade")) {
        *why = "not an Upgrade: websocket request";
        return 426;
    }
    if (ver == NULL || !nbio_http_slice_eq(*ver, "13")) {
        *why = "Sec-WebSocket-Version is not 13";
        return 426;
    }
    if (key == NULL || !nbio__ws_key_ok(key->data, key->len)) {
        *why = "bad Sec-WebSocket-Key";
        return 400;
    }
    if (w->opt.check_origin != NULL) {
        const nbio_http_slice *o = nbio_http_header_find(h, "origin", NULL);
        nbio_http_slice none = {NULL, 0};
        if (!w->opt.check_origin(w->opt.check_origin_arg, o != NULL ? *o : none)) {
            *why = "Origin refused";
            return 403;
        }
    }
    /* the first accepted subprotocol the client offers */
    for (size_t i = 0; i < w->noffer && w->protocol == NULL; i++) {
        size_t from = 0;
        const nbio_http_slice *v;
        while ((v = nbio_http_header_find(h, "sec-websocket-protocol", &from)) != NULL)
            if (nbio__http_list_has(*v, w->offer[i])) {
                if (take_protocol(w, w->offer[i], strlen(w->offer[i])) != 0) {
                    *why = "out of memory";
                    return 500;
                }
                break;
            }
    }
    if (w->opt.compress) {
        int r = nbio__pmd_negotiate(h, false, &w->pmdp, why);
        if (r < 0)
            return 400;
        w->pmd = r == 1;
    }
    return 0;
}

/* Server: queues the 101 for key. Returns 0 or NBIO_ENOMEM. */
static int queue_accept(nbio__ws *w, nbio_http_slice key)
{
    char acc[29];
    nbio__ws_accept_key(key.data, key.len, acc);
    static const char head[] = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                               "Connection: Upgrade\r\n";
    int bad = nbio__http_put(&w->out, head, sizeof head - 1);
    bad |= nbio__http_put_header(&w->out, "Sec-WebSocket-Accept", 20, acc, 28);
    if (w->protocol != NULL)
        bad |= nbio__http_put_header(&w->out, "Sec-WebSocket-Protocol", 22, w->protocol,
                                     strlen(w->protocol));
    if (w->pmd) {
        char ext[NBIO__PMD_FORMAT_MAX];
        int n = nbio__pmd_format(&w->pmdp, true, ext, sizeof ext);
        if (n > 0)
            bad |= nbio__http_put_header(&w->out, "Sec-WebSocket-Extensions", 24, ext, (size_t)n);
    }
    bad |= nbio__http_put(&w->out, "\r\n", 2);
    return bad != 0 ? NBIO_ENOMEM : 0;
}

static int start_open(nbio__ws *w)
{
    if (w->pmd) {
        if (nbio__pmd_init(&w->z, &w->pmdp, w->server) != 0)
            return nbio__fail(&w->base, NBIO_ENOMEM, "WebSocket: out of memory");
        w->z_ready = true;
    }
    nbio__established(&w->base);
    w->last_write = nbio_now_ms();
    w->examine = w->in.len > 0;
    return NBIO_ACTIVE;
}

/* The establish hook: one step of the opening handshake. */
static int ws_establish(nbio_session *s)
{
    nbio__ws *w = (nbio__ws *)s;
    if (nbio_now_ms() >= w->deadline)
        return nbio__fail(s, NBIO_ETIMEDOUT, "WebSocket handshake: timed out after %d ms",
                          w->opt.handshake_timeout_ms);
    if (nbio__is_establishing(s->inner))
        return NBIO_IDLE;
    bool moved = false;
    int r = flush_out(w, &moved);
    if (r < 0)
        return r;
    for (;;) {
        nbio_http_head h;
        nbio_http_header hdrs[64];
        r = handshake_head(w, &h, hdrs);
        if (r < 0)
            return r;
        if (r > 0) {
            size_t head_len = (size_t)r;
            if (!w->server) {
                if ((r = check_answer(w, &h)) < 0)
                    return r;
            } else {
                const char *why = "";
                int status = judge_request(w, &h, &why);
                if (status != 0) {
                    char ans[160];
                    int n = snprintf(ans, sizeof ans,
                                     "HTTP/1.1 %d %s\r\n%sContent-Length: 0\r\nConnection: "
                                     "close\r\n\r\n",
                                     status, nbio_http_reason(status),
                                     status == 426 ? "Sec-WebSocket-Version: 13\r\n" : "");
                    (void)nbio__bytes_append(&w->out, ans, (size_t)n);
                    (void)flush_out(w, NULL);
                    (void)nbio_shutdown(s->inner);
                    return nbio__fail(s, NBIO_EPROTOCOL, "WebSocket handshake refused with %d: %s",
                                      status, why);
                }
                const nbio_http_slice *key = nbio_http_header_find(&h, "sec-websocket-key", NULL);
                if (queue_accept(w, *key) != 0)
                    return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
            }
            nbio__bytes_rack(&w->in, head_len);
            r = start_open(w);
            if (w->server)
                (void)flush_out(w, NULL);
            return r;
        }
        long n = handshake_fill(w);
        if (n < 0)
            return (int)n;
        if (n == 0)
            return moved ? NBIO_ACTIVE : NBIO_IDLE;
        moved = true;
    }
}

/* ---- frames in ------------------------------------------------------------ */

/* Drops what the last read handed out. */
static void release(nbio__ws *w)
{
    if (w->handed > 0) {
        nbio__bytes_rack(&w->in, w->handed);
        w->handed = 0;
    }
    if (w->msg_handed) {
        w->msg.len = w->msg.head = 0;
        w->zout.len = w->zout.head = 0;
        nbio__bytes_shrink(&w->msg);
        nbio__bytes_shrink(&w->zout);
        w->msg_handed = false;
    }
}

/* A close frame's payload p[0,len): records it, answers it, ends the read
 * side. */
static int on_close(nbio__ws *w, const unsigned char *p, size_t len)
{
    unsigned code = CLOSE_NO_STATUS;
    if (len == 1)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "close frame of 1 byte");
    if (len >= 2) {
        code = (unsigned)p[0] << 8 | p[1];
        if (!nbio__ws_close_code_ok(code))
            return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "invalid close code");
        if (nbio__utf8_step(NBIO__UTF8_ACCEPT, p + 2, len - 2) != NBIO__UTF8_ACCEPT)
            return ws_fail(w, NBIO_EPROTOCOL, CLOSE_BAD_DATA, "close reason is not UTF-8");
        memcpy(w->peer_reason, p + 2, len - 2);
        w->peer_reason[len - 2] = '\0';
    }
    w->close_received = true;
    w->peer_code = code;
    if (!w->close_sent) /* the answer echoes the code */
        (void)queue_close(w, code == CLOSE_NO_STATUS ? CLOSE_NORMAL : code, NULL);
    (void)flush_out(w, NULL);
    return nbio__fail(&w->base, NBIO_EPEERCLOSED, "WebSocket: closed by peer: %u %s", code,
                      w->peer_reason);
}

/* Appends a fragment to the message being collected. Returns 0 or an error. */
static int collect(nbio__ws *w, const unsigned char *p, size_t len)
{
    if (w->msg.len + len > w->opt.max_message)
        return ws_fail(w, NBIO_ETOOLARGE, CLOSE_TOO_BIG, "message larger than the limit");
    if (nbio__bytes_append(&w->msg, p, len) != 0)
        return nbio__fail(&w->base, NBIO_ENOMEM, "WebSocket: out of memory");
    if (w->msg_opcode == 1 && !w->msg_compressed) {
        w->utf8 = nbio__utf8_step(w->utf8, p, len);
        if (w->utf8 == NBIO__UTF8_REJECT)
            return ws_fail(w, NBIO_EPROTOCOL, CLOSE_BAD_DATA, "invalid UTF-8 in a text message");
    }
    return 0;
}

/* The message in `msg` is whole: inflate and check it, hand it out. */
static int finish_message(nbio__ws *w, nbio_ws_message *m)
{
    nbio__bytes *src = &w->msg;
    if (w->msg_compressed) {
        int r = nbio__pmd_inflate(&w->z, nbio__bytes_peek(&w->msg), w->msg.len, &w->zout,
                                  w->opt.max_message);
        if (r == NBIO_ETOOLARGE)
            return ws_fail(w, r, CLOSE_TOO_BIG, "message inflates past the limit");
        if (r == NBIO_ENOMEM)
            return nbio__fail(&w->base, r, "WebSocket: out of memory inflating a message");
        if (r < 0)
            return ws_fail(w, NBIO_EPROTOCOL, CLOSE_BAD_DATA, "bad compressed data");
        src = &w->zout;
        if (w->msg_opcode == 1)
            w->utf8 = nbio__utf8_step(NBIO__UTF8_ACCEPT, nbio__bytes_peek(src), src->len);
    }
    if (w->msg_opcode == 1 && w->utf8 != NBIO__UTF8_ACCEPT)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_BAD_DATA, "invalid UTF-8 in a text message");
    m->type = (nbio_ws_type)w->msg_opcode;
    m->data.data = src->len > 0 ? nbio__bytes_peek(src) : (const void *)"";
    m->data.len = src->len;
    w->in_message = false;
    w->msg_handed = true;
    return 1;
}

/* One frame at the front of `in`, if whole: 1 (m filled), 0 (more bytes
 * needed, or a frame consumed: call again), 2 (consumed, nothing to hand
 * out), or an error. */
static int one_frame(nbio__ws *w, nbio_ws_message *m, bool *need_more)
{
    nbio__ws_frame f;
    const char *why = "";
    *need_more = false;
    int hl = nbio__ws_parse_header(nbio__bytes_peek(&w->in), w->in.len, &f, &why);
    if (hl < 0)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, why);
    if (hl == 0) {
        *need_more = true;
        return 0;
    }
    if (w->server && !f.masked)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "unmasked frame from a client");
    if (!w->server && f.masked)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "masked frame from a server");
    bool data = f.opcode < 8;
    if (f.rsv2 || f.rsv3 || (f.rsv1 && (!w->pmd || !data || f.opcode == 0)))
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "reserved bit set without an extension");
    if (f.opcode == 0 && !w->in_message)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "continuation without a message");
    if ((f.opcode == 1 || f.opcode == 2) && w->in_message)
        return ws_fail(w, NBIO_EPROTOCOL, CLOSE_PROTOCOL, "new message inside a fragmented one");
    if (data && f.len > w->opt.max_message - (w->in_message ? w->msg.len : 0))
        return ws_fail(w, NBIO_ETOOLARGE, CLOSE_TOO_BIG, "message larger than the limit");
    size_t total = (size_t)hl + (size_t)f.len;
    if (w->in.len < total) {
        *need_more = true;
        return 0;
    }
    unsigned char *p = (unsigned char *)nbio__bytes_peek(&w->in) + hl;
    if (f.masked && f.len > 0)
        nbio__ws_mask(p, (size_t)f.len, f.mask, 0);
    size_t len = (size_t)f.len;
    switch (f.opcode) {
    case 8:
        return on_close(w, p, len);
    case 9: /* ping: pong with the same payload */
        if (queue_frame(w, 10, true, false, p, len) != 0)
            return nbio__fail(&w->base, NBIO_ENOMEM, "WebSocket: out of memory");
        /* fall through */
    case 10:
        if (w->opt.show_control) {
            m->type = (nbio_ws_type)f.opcode;
            m->data.data = p;
            m->data.len = len;
            w->handed = total;
            return 1;
        }
        nbio__bytes_rack(&w->in, total);
        return 2;
    default:
        break;
    }
    if (f.fin && !w->in_message && !f.rsv1) { /* a whole message: where it lies */
        if (f.opcode == 1 && nbio__utf8_step(NBIO__UTF8_ACCEPT, p, len) != NBIO__UTF8_ACCEPT)
            return ws_fail(w, NBIO_EPROTOCOL, CLOSE_BAD_DATA, "invalid UTF-8 in a text message");
        m->type = (nbio_ws_type)f.opcode;
        m->data.data = p;
        m->data.len = len;
        w->handed = total;
        return 1;
    }
    if (!w->in_message) {
        w->in_message = true;
        w->msg_opcode = f.opcode;
        w->msg_compressed = f.rsv1;
        w->utf8 = NBIO__UTF8_ACCEPT;
        w->msg.len = w->msg.head = 0;
    }
    int r = collect(w, p, len);
    nbio__bytes_rack(&w->in, total);
    if (r < 0)
        return r;
    if (f.fin)
        return finish_message(w, m);
    return 2;
}

/* A ping when nothing was written for ping_interval_ms. */
static void maybe_ping(nbio__ws *w)
{
    if (w->opt.ping_interval_ms > 0 && !w->close_sent &&
        nbio_now_ms() - w->last_write >= w->opt.ping_interval_ms)
        (void)queue_frame(w, 9, true, false, NULL, 0);
}

static int ws_read_msg(nbio_session *s, nbio_ws_message *m)
{
    nbio__ws *w = (nbio__ws *)s;
    release(w);
    maybe_ping(w);
    bool got_bytes = false;
    for (;;) {
        bool need_more = false;
        int r = 2;
        while (r == 2 && w->in.len > 0)
            r = one_frame(w, m, &need_more);
        if (r < 0)
            return r;
        if (r == 1) {
            w->examine = w->in.len > w->handed;
            return NBIO_DATA;
        }
        w->examine = false;
        /* Nothing to hand out: what was written meanwhile goes now. */
        if (w->out.len > 0 && (r = flush_out(w, NULL)) < 0)
            return r;
        if (w->inner_eof) {
            if (w->in.len > 0 || w->in_message)
                return nbio__fail(s, NBIO_ETRUNCATED,
                                  "WebSocket: closed by peer inside a frame or message");
            return nbio__fail(s, NBIO_EPEERCLOSED,
                              "WebSocket: closed by peer without a close frame (1006)");
        }
        if (got_bytes)
            return NBIO_ACTIVE;
        size_t room;
        unsigned char *p = nbio__bytes_wbuf(&w->in, w->in.len + 1, &room);
        if (p == NULL)
            return nbio__fail(s, NBIO_ENOMEM, "WebSocket read buffer: out of memory");
        long n = nbio__read_into(s->inner, p, room);
        if (n == NBIO_EPEERCLOSED) {
            w->inner_eof = true;
            continue;
        }
        if (n < 0)
            return nbio__fail_from(s, s->inner, (int)n);
        if (n == 0) {
            if (w->in.len == 0)
                nbio__bytes_shrink(&w->in);
            return NBIO_IDLE;
        }
        nbio__bytes_wack(&w->in, (size_t)n);
        got_bytes = true;
    }
}

static int typed_read(nbio_session *s, void *m)
{
    return ws_read_msg(s, m);
}

int nbio_ws_read(nbio_session *s, nbio_ws_message *m)
{
    return nbio__typed_read(s, &ws_vtable, typed_read, m);
}

/* ---- writing messages ---------------------------------------------------------- */

/* Continues a large message: copies (and masks) as much of buf as the
 * queue takes. */
static int stream_more(nbio__ws *w, nbio_buf *buf)
{
    while (buf->len > 0) {
        size_t room;
        if (w->out.len >= w->opt.write_buffer_size) {
            int r = flush_out(w, NULL);
            if (r < 0)
                return r;
            if (w->out.len >= w->opt.write_buffer_size)
                return NBIO_PENDING;
        }
        unsigned char *dst = nbio__bytes_wbuf(&w->out, w->opt.write_buffer_size, &room);
        if (dst == NULL)
            return nbio__fail(&w->base, NBIO_ENOMEM, "WebSocket: out of memory");
        size_t n = buf->len < room ? buf->len : room;
        memcpy(dst, buf->data, n);
        if (!w->server)
            nbio__ws_mask(dst, n, w->stream_mask, w->stream_off);
        nbio__bytes_wack(&w->out, n);
        w->stream_off += n;
        w->stream_rem -= n;
        buf->data = (const char *)buf->data + n;
        buf->len -= n;
    }
    w->last_write = nbio_now_ms();
    return NBIO_DONE;
}

static int ws_write_msg(nbio__ws *w, nbio_ws_type type, nbio_buf *buf)
{
    nbio_session *s = &w->base;
    if (w->close_sent)
        return NBIO_ECLOSED;
    if (w->stream_rem > 0) {
        if (buf->len != w->stream_rem || type != w->stream_type)
            return nbio__fail(s, NBIO_EUSAGE,
                              "a %zu-byte write while %llu bytes of a message are owed", buf->len,
                              (unsigned long long)w->stream_rem);
        return stream_more(w, buf);
    }
    bool control = type == NBIO_WS_PING || type == NBIO_WS_PONG;
    if (control && buf->len > 125)
        return NBIO_EINVAL;
    if (type == NBIO_WS_TEXT &&
        nbio__utf8_step(NBIO__UTF8_ACCEPT, buf->data, buf->len) != NBIO__UTF8_ACCEPT)
        return NBIO_EINVAL;
    if (w->out.len > w->opt.write_buffer_size) {
        int r = flush_out(w, NULL);
        if (r < 0)
            return r;
        if (w->out.len > w->opt.write_buffer_size)
            return NBIO_PENDING;
    }
    const void *p = buf->data;
    size_t len = buf->len;
    bool rsv1 = false;
    if (w->pmd && !control) {
        w->ztmp.len = w->ztmp.head = 0;
        if (nbio__pmd_deflate(&w->z, p, len, &w->ztmp) != 0)
            return nbio__fail(s, NBIO_ENOMEM, "WebSocket: compression failed");
        p = nbio__bytes_peek(&w->ztmp);
        len = w->ztmp.len;
        rsv1 = true;
    }
    if (control || rsv1 || len <= w->opt.write_buffer_size) {
        size_t frag = w->opt.fragment_size > 0 && !control ? w->opt.fragment_size : len;
        size_t off = 0;
        do { /* whole, or in fragments */
            size_t n = len - off < frag ? len - off : frag;
            bool fin = off + n == len;
            int r = queue_frame(w, off == 0 ? (uint8_t)type : 0, fin, off == 0 && rsv1,
                                (const char *)p + off, n);
            if (r != 0)
                return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
            off += n;
        } while (off < len);
        nbio__bytes_shrink(&w->ztmp);
        buf->data = (const char *)buf->data + buf->len;
        buf->len = 0;
        if (w->out.len >= w->opt.write_buffer_size) {
            int r = flush_out(w, NULL);
            if (r < 0)
                return r;
        }
        return NBIO_DONE;
    }
    /* Larger than the queue: one header, then the payload as room frees. */
    unsigned char hdr[NBIO__WS_MAX_HEADER];
    if (!w->server)
        nbio__ws_rng_mask(&w->rng, w->stream_mask);
    size_t hl = nbio__ws_encode_header(hdr, (uint8_t)type, true, false, len,
                                       w->server ? NULL : w->stream_mask);
    if (nbio__bytes_append(&w->out, hdr, hl) != 0)
        return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
    w->stream_rem = len;
    w->stream_off = 0;
    w->stream_type = type;
    int r = stream_more(w, buf);
    if (r == NBIO_PENDING || (r == NBIO_DONE && w->out.len > 0))
        (void)flush_out(w, NULL);
    return r;
}

int nbio_ws_write(nbio_session *s, nbio_ws_type type, nbio_buf *buf)
{
    if (s == NULL || buf == NULL || (buf->data == NULL && buf->len > 0) ||
        (type != NBIO_WS_TEXT && type != NBIO_WS_BINARY && type != NBIO_WS_PING &&
         type != NBIO_WS_PONG))
        return NBIO_EINVAL;
    if (s->vt != &ws_vtable)
        return NBIO_EUNSUPPORTED;
    int r = nbio__write_prologue(s);
    if (r != 1)
        return r;
    if (buf->data == NULL)
        buf->data = "";
    return nbio__settle(s, ws_write_msg((nbio__ws *)s, type, buf));
}

int nbio_ws_close(nbio_session *s, unsigned code, const char *reason)
{
    nbio__ws *w = ws_of(s);
    if (w == NULL || code < 1000 || code > 4999)
        return NBIO_EINVAL;
    nbio__touch(s);
    w->my_code = code;
    snprintf(w->my_reason, sizeof w->my_reason, "%s", reason != NULL ? reason : "");
    if (s->error != 0 || w->close_received || s->phase != NBIO__OPEN)
        return nbio_close(s);
    if (!w->close_sent && queue_close(w, code, w->my_reason) != 0)
        return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
    int r = nbio__settle(s, flush_out(w, NULL));
    return r < 0 ? r : NBIO_PENDING;
}

bool nbio_ws_peer_close(const nbio_session *s, unsigned *code, const char **reason)
{
    const nbio__ws *w = ws_of(s);
    if (w == NULL || !w->close_received)
        return false;
    if (code != NULL)
        *code = w->peer_code;
    if (reason != NULL)
        *reason = w->peer_reason;
    return true;
}

const char *nbio_ws_protocol(const nbio_session *s)
{
    const nbio__ws *w = ws_of(s);
    return w != NULL ? w->protocol : NULL;
}

bool nbio_ws_compressed(const nbio_session *s)
{
    const nbio__ws *w = ws_of(s);
    return w != NULL && w->pmd;
}

/* ---- the vtable ---------------------------------------------------------------- */

static int ws_read(nbio_session *s, nbio_buf *out)
{
    nbio_ws_message m;
    int r = ws_read_msg(s, &m);
    if (r == NBIO_DATA)
        *out = m.data;
    return r;
}

static int ws_write(nbio_session *s, nbio_buf *buf)
{
    return ws_write_msg((nbio__ws *)s, NBIO_WS_BINARY, buf);
}

static int ws_drive(nbio_session *s)
{
    nbio__ws *w = (nbio__ws *)s;
    maybe_ping(w);
    return nbio__drive_queued(s, &w->out);
}

static int ws_flush(nbio_session *s)
{
    return flush_out((nbio__ws *)s, NULL);
}

/* Our close frame, then the peer's (read and dropped what comes before
 * it); the core then closes the transport. */
static int ws_goodbye(nbio_session *s)
{
    nbio__ws *w = (nbio__ws *)s;
    if (w->stream_rem > 0)
        return nbio__fail(s, NBIO_EUSAGE, "close while %llu bytes of a message are owed",
                          (unsigned long long)w->stream_rem);
    if (!w->close_sent &&
        queue_close(w, w->my_code != 0 ? w->my_code : CLOSE_NORMAL, w->my_reason) != 0)
        return nbio__fail(s, NBIO_ENOMEM, "WebSocket: out of memory");
    int r = flush_out(w, NULL);
    if (r != NBIO_DONE)
        return r;
    while (!w->close_received && !w->inner_eof && s->read_end == 0) {
        nbio_ws_message m;
        r = ws_read_msg(s, &m);
        if (r == NBIO_IDLE)
            return NBIO_PENDING;
        if (r < 0 && r != NBIO_EPEERCLOSED)
            return r;
    }
    return flush_out(w, NULL);
}

static unsigned ws_interest(const nbio_session *s)
{
    const nbio__ws *w = (const nbio__ws *)s;
    if ((w->examine || w->inner_eof) && !nbio__read_ended(s))
        return NBIO_READY;
    unsigned x = w->out.len > 0 ? NBIO_WANT_WRITE : 0;
    if (s->phase == NBIO__ESTABLISHING && w->in.len > 0)
        x |= NBIO_READY;
    return x;
}

static void ws_free(nbio_session *s)
{
    nbio__ws *w = (nbio__ws *)s;
    nbio_free(s->inner);
    if (w->z_ready)
        nbio__pmd_free(&w->z);
    nbio__bytes_free(&w->in);
    nbio__bytes_free(&w->msg);
    nbio__bytes_free(&w->zout);
    nbio__bytes_free(&w->out);
    nbio__bytes_free(&w->ztmp);
    for (size_t i = 0; i < w->noffer; i++)
        free(w->offer[i]);
    free(w->offer);
    free(w->protocol);
    free(w);
}

static const nbio__vtable ws_vtable = {
    .kind = "ws",
    .establish = ws_establish,
    .drive = ws_drive,
    .read = ws_read,
    .write = ws_write,
    .flush = ws_flush,
    .goodbye = ws_goodbye,
    .free = ws_free,
    .interest = ws_interest,
};

/* ---- construction ------------------------------------------------------------ */

static int copy_list(nbio__ws *w, const char *const *list, size_t n)
{
    if (n == 0)
        return 0;
    if ((w->offer = calloc(n, sizeof *w->offer)) == NULL)
        return NBIO_ENOMEM;
    for (size_t i = 0; i < n; i++) {
        if ((w->offer[i] = strdup(list[i] != NULL ? list[i] : "")) == NULL)
            return NBIO_ENOMEM;
        w->noffer++;
    }
    return 0;
}

static nbio__ws *ws_new(nbio_session *inner, bool server, const nbio_ws_options *o)
{
    nbio__ws *w = calloc(1, sizeof *w);
    if (w == NULL) {
        nbio_free(inner);
        return NULL;
    }
    nbio__layer_init(&w->base, &ws_vtable, inner);
    w->server = server;
    if (o != NULL)
        w->opt = *o;
    if (w->opt.max_message == 0)
        w->opt.max_message = (size_t)16 << 20;
    if (w->opt.write_buffer_size == 0)
        w->opt.write_buffer_size = 65536;
    if (w->opt.handshake_timeout_ms <= 0)
        w->opt.handshake_timeout_ms = 10000;
    w->deadline = nbio_now_ms() + w->opt.handshake_timeout_ms;
    w->in.base = 16384;
    w->out.base = 4096;
    int r = server ? copy_list(w, w->opt.accept_protocols, w->opt.num_accept_protocols)
                   : copy_list(w, w->opt.protocols, w->opt.num_protocols);
    /* the caller's pointers are not kept */
    w->opt.protocols = w->opt.accept_protocols = NULL;
    w->opt.headers = NULL;
    w->opt.num_headers = 0;
    w->opt.origin = NULL;
    if (r != 0 || (!server && nbio__ws_rng_init(&w->rng) != 0)) {
        nbio_free(&w->base);
        return NULL;
    }
    return w;
}

nbio_session *nbio_ws_client(nbio_session *inner, const char *host, const char *target,
                             const nbio_ws_options *o)
{
    if (inner == NULL)
        return NULL;
    nbio__ws *w = ws_new(inner, false, o);
    if (w == NULL)
        return NULL;
    nbio_session *s = &w->base;
    if (host == NULL || target == NULL || !nbio__http_is_field_safe(host, strlen(host)) ||
        target[0] == '\0' || !nbio__http_is_field_safe(target, strlen(target)) ||
        strchr(target, ' ') != NULL) {
        nbio__fail(s, NBIO_EINVAL, "WebSocket client: bad host or target");
        return s;
    }
    if (nbio__ws_new_key(w->key) != 0) {
        nbio__fail(s, NBIO_EIO, "WebSocket client: no random bytes for the key");
        return s;
    }
    int bad = nbio__http_put(&w->out, "GET ", 4);
    bad |= nbio__http_put(&w->out, target, strlen(target));
    bad |= nbio__http_put(&w->out, " HTTP/1.1\r\n", 11);
    bad |= nbio__http_put_header(&w->out, "Host", 4, host, strlen(host));
    bad |= nbio__http_put(&w->out, "Upgrade: websocket\r\nConnection: Upgrade\r\n", 41);
    bad |= nbio__http_put_header(&w->out, "Sec-WebSocket-Key", 17, w->key, 24);
    bad |= nbio__http_put(&w->out, "Sec-WebSocket-Version: 13\r\n", 27);
    if (o != NULL && o->origin != NULL && nbio__http_is_field_safe(o->origin, strlen(o->origin)))
        bad |= nbio__http_put_header(&w->out, "Origin", 6, o->origin, strlen(o->origin));
    if (w->noffer > 0) {
        bad |= nbio__http_put(&w->out, "Sec-WebSocket-Protocol: ", 24);
        for (size_t i = 0; i < w->noffer; i++) {
            if (!nbio__http_is_token(w->offer[i], strlen(w->offer[i]))) {
                nbio__fail(s, NBIO_EINVAL, "WebSocket client: subprotocol \"%s\" is not a token",
                           w->offer[i]);
                return s;
            }
            if (i > 0)
                bad |= nbio__http_put(&w->out, ", ", 2);
            bad |= nbio__http_put(&w->out, w->offer[i], strlen(w->offer[i]));
        }
        bad |= nbio__http_put(&w->out, "\r\n", 2);
    }
    if (w->opt.compress) {
        nbio__pmd_params p = client_offer();
        char ext[NBIO__PMD_FORMAT_MAX];
        int n = nbio__pmd_format(&p, false, ext, sizeof ext);
        if (n > 0)
            bad |= nbio__http_put_header(&w->out, "Sec-WebSocket-Extensions", 24, ext, (size_t)n);
    }
    for (size_t i = 0; o != NULL && i < o->num_headers; i++) {
        const nbio_http_header *x = &o->headers[i];
        if (!nbio__http_is_token(x->name.data, x->name.len) ||
            !nbio__http_is_field_safe(x->value.data, x->value.len)) {
            nbio__fail(s, NBIO_EINVAL, "WebSocket client: header %zu would break the request", i);
            return s;
        }
        bad |= nbio__http_put_header(&w->out, x->name.data, x->name.len, x->value.data,
                                     x->value.len);
    }
    bad |= nbio__http_put(&w->out, "\r\n", 2);
    if (bad != 0)
        nbio__fail(s, NBIO_ENOMEM, "WebSocket client: out of memory");
    return s;
}

nbio_session *nbio_ws_server(nbio_session *inner, const nbio_ws_options *o)
{
    if (inner == NULL)
        return NULL;
    nbio__ws *w = ws_new(inner, true, o);
    return w != NULL ? &w->base : NULL;
}

/* A session that only says why it could not be made. */
static nbio_session *refused(const nbio_ws_options *o, const char *url, const char *why)
{
    nbio__ws *w = ws_new(nbio_mock_new(NULL), false, o);
    if (w == NULL)
        return NULL;
    nbio__fail(&w->base, NBIO_EINVAL, "bad URL \"%s\": %s", url, why);
    return &w->base;
}

nbio_session *nbio_ws_connect(const char *url, nbio_tls_config *tls, const nbio_ws_options *o)
{
    char http_url[2048];
    const char *u = url != NULL ? url : "";
    bool secure = strncasecmp(u, "wss://", 6) == 0;
    if (!secure && strncasecmp(u, "ws://", 5) != 0)
        return refused(o, u, "it must start with ws:// or wss://");
    snprintf(http_url, sizeof http_url, "%s://%s", secure ? "https" : "http",
             u + (secure ? 6 : 5));
    nbio__url pu;
    const char *why = "";
    if (nbio__url_parse(http_url, &pu, &why) < 0)
        return refused(o, u, why);
    char addr[NBIO__URL_HOST_MAX + 16], host[NBIO__URL_HOST_MAX + 16];
    char target[2048];
    (void)nbio__url_connect_addr(&pu, addr, sizeof addr);
    (void)nbio__url_authority(&pu, host, sizeof host);
    snprintf(target, sizeof target, "%s%.*s", pu.slash ? "/" : "", (int)pu.target_len, pu.target);
    nbio_session *t = nbio_tcp_connect(addr, NULL);
    if (secure)
        t = nbio_tls_client(t, tls, pu.host);
    return nbio_ws_client(t, host, target, o);
}

int nbio_ws_accept_upgrade(nbio_session *http, const nbio_http_incoming *req,
                           const nbio_ws_options *o, nbio_session **out)
{
    if (http == NULL || req == NULL || out == NULL)
        return NBIO_EINVAL;
    *out = NULL;
    nbio__ws *w = ws_new(nbio_mock_new(NULL), true, o); /* the choices, made on a stand-in */
    if (w == NULL)
        return NBIO_ENOMEM;
    const char *why = "";
    int status = judge_request(w, &req->head, &why);
    if (status != 0) {
        nbio_http_header v = {{"Sec-WebSocket-Version", 21}, {"13", 2}};
        nbio_http_reply r = {status, NULL, status == 426 ? &v : NULL, status == 426 ? 1 : 0,
                             why, strlen(why), 0, true};
        (void)nbio_http_write_response(http, &r);
        nbio_free(&w->base);
        return NBIO_EPROTOCOL;
    }
    const nbio_http_slice *key = nbio_http_header_find(&req->head, "sec-websocket-key", NULL);
    char acc[29], ext[NBIO__PMD_FORMAT_MAX];
    nbio__ws_accept_key(key->data, key->len, acc);
    nbio_http_header h[5] = {{{"Upgrade", 7}, {"websocket", 9}},
                             {{"Connection", 10}, {"Upgrade", 7}},
                             {{"Sec-WebSocket-Accept", 20}, {acc, 28}}};
    size_t n = 3;
    if (w->protocol != NULL)
        h[n++] = (nbio_http_header){{"Sec-WebSocket-Protocol", 22},
                                    {w->protocol, strlen(w->protocol)}};
    if (w->pmd) {
        int k = nbio__pmd_format(&w->pmdp, true, ext, sizeof ext);
        if (k > 0)
            h[n++] = (nbio_http_header){{"Sec-WebSocket-Extensions", 24}, {ext, (size_t)k}};
    }
    nbio_http_reply r = {101, NULL, h, n, NULL, 0, 0, false};
    int wr = nbio_http_write_response(http, &r);
    if (wr != NBIO_DONE) {
        nbio_free(&w->base);
        return wr < 0 ? wr : NBIO_EUSAGE; /* the HTTP session's queue is full */
    }
    nbio_session *b = nbio_http_server_upgrade(http);
    if (b == NULL || nbio_error(b) != 0) {
        int e = b != NULL ? nbio_error(b) : NBIO_ENOMEM;
        nbio_free(b);
        nbio_free(&w->base);
        return e;
    }
    /* the stand-in's choices move to the real session */
    nbio__ws *real = ws_new(b, true, o);
    if (real == NULL) {
        nbio_free(&w->base);
        return NBIO_ENOMEM;
    }
    real->protocol = w->protocol;
    w->protocol = NULL;
    real->pmd = w->pmd;
    real->pmdp = w->pmdp;
    w->pmd = false;
    nbio_free(&w->base);
    nbio__established(&real->base);
    if (start_open(real) < 0) {
        *out = &real->base;
        return nbio_error(&real->base);
    }
    *out = &real->base;
    return 0;
}
