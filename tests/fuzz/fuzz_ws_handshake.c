/*
 * libFuzzer harness: the WebSocket opening handshake's parsers
 * (src/ws/codec.h) over a parsed HTTP head — permessage-deflate
 * negotiation on both sides, and Sec-WebSocket-Key checks.
 *
 * Input: byte 0 picks the client's offer (flags and window bits) used for
 * the client-side checks, byte 1 is reserved (0); the rest is an upgrade
 * request as a peer sent it, parsed with nbio__http_parse_request().
 * abort()s when an invariant breaks:
 *
 *  1. Server side, nbio__pmd_negotiate(h, false): 0, 1 or NBIO_EPROTOCOL
 *     with a why; the same again on a second call. On 1 the params are in
 *     range, the answer formats (within NBIO__PMD_FORMAT_MAX), and a client that made
 *     the matching offer accepts that answer and agrees on every parameter.
 *  2. Client side, nbio__pmd_negotiate(h, true) with the offer from byte 0
 *     (the head's Sec-WebSocket-Extensions taken as the server's answer):
 *     0, 1 or NBIO_EPROTOCOL; NBIO_EPROTOCOL whenever the server side found
 *     the header malformed; *p untouched unless 1; on 1 the agreement
 *     honours the offer (windows no larger than asked, takeover flags
 *     asked for present).
 *  3. The offer from byte 0, formatted and parsed by a server, gives back
 *     exactly what was offered.
 *  4. Every Sec-WebSocket-Key value: nbio__ws_key_ok() only for 24
 *     characters ending in "=="; nbio__ws_accept_key() always gives 28
 *     base64 characters ending in "=".
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http/codec.h"
#include "ws/codec.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (!(cond)) {                                                                 \
            fprintf(stderr, "%s:%d: invariant failed: %s\n", __FILE__, __LINE__, #cond); \
            abort();                                                                   \
        }                                                                              \
    } while (0)

static bool params_ok(const nbio__pmd_params *p)
{
    return p->server_max_window_bits >= 8 && p->server_max_window_bits <= 15 &&
           p->client_max_window_bits >= 8 && p->client_max_window_bits <= 15;
}

static void offer_from(uint8_t sel, nbio__pmd_params *o)
{
    nbio__pmd_params_init(o);
    o->server_no_context_takeover = (sel & 1) != 0;
    o->client_no_context_takeover = (sel & 2) != 0;
    o->client_max_window_bits_offered = (sel & 4) != 0;
    o->server_max_window_bits = (sel & 8) ? 8 + ((sel >> 4) & 7) : 15;
    o->client_max_window_bits = (sel & 128) ? 15 - ((sel >> 4) & 7) : 15;
}

/* A head whose only header is Sec-WebSocket-Extensions: value. */
static void one_header(nbio_http_head *h, nbio_http_header *f, const char *value)
{
    memset(h, 0, sizeof *h);
    f->name = (nbio_http_slice){"Sec-WebSocket-Extensions", 24};
    f->value = (nbio_http_slice){value, strlen(value)};
    h->headers = f;
    h->num_headers = 1;
}

static bool same_params(const nbio__pmd_params *a, const nbio__pmd_params *b)
{
    return a->server_no_context_takeover == b->server_no_context_takeover &&
           a->client_no_context_takeover == b->client_no_context_takeover &&
           a->server_max_window_bits == b->server_max_window_bits &&
           a->client_max_window_bits == b->client_max_window_bits;
}

static void server_side(const nbio_http_head *h, int *result)
{
    nbio__pmd_params p;
    const char *why = NULL;
    int r = nbio__pmd_negotiate(h, false, &p, &why);
    CHECK(r == 0 || r == 1 || r == NBIO_EPROTOCOL);
    *result = r;
    nbio__pmd_params p2;
    const char *why2 = NULL;
    CHECK(nbio__pmd_negotiate(h, false, &p2, &why2) == r);
    if (r < 0) {
        CHECK(why != NULL && why[0] != '\0' && why2 == why);
        return;
    }
    if (r == 0)
        return;
    CHECK(params_ok(&p) && same_params(&p, &p2));
    char answer[NBIO__PMD_FORMAT_MAX];
    int n = nbio__pmd_format(&p, true, answer, sizeof answer);
    CHECK(n > 0 && (size_t)n == strlen(answer));
    /* The client whose offer this was (a bare client_max_window_bits when
     * the server saw one, and the client's own window as it asked). */
    nbio__pmd_params offer;
    nbio__pmd_params_init(&offer);
    offer.client_max_window_bits_offered = p.client_max_window_bits_offered;
    offer.server_no_context_takeover = p.server_no_context_takeover;
    offer.server_max_window_bits = p.server_max_window_bits;
    nbio_http_header f;
    nbio_http_head ah;
    one_header(&ah, &f, answer);
    const char *cwhy = NULL;
    int cr = nbio__pmd_negotiate(&ah, true, &offer, &cwhy);
    if (cr != 1)
        fprintf(stderr, "answer \"%s\": %d %s\n", answer, cr, cwhy ? cwhy : "-");
    CHECK(cr == 1);
    CHECK(same_params(&offer, &p));
}

static void client_side(const nbio_http_head *h, uint8_t sel, int server_result)
{
    nbio__pmd_params o, p;
    offer_from(sel, &o);
    p = o;
    const char *why = NULL;
    int r = nbio__pmd_negotiate(h, true, &p, &why);
    CHECK(r == 0 || r == 1 || r == NBIO_EPROTOCOL);
    if (server_result < 0)
        CHECK(r == NBIO_EPROTOCOL);
    if (r < 0)
        CHECK(why != NULL && why[0] != '\0');
    if (r != 1) {
        CHECK(memcmp(&p, &o, sizeof p) == 0);
        return;
    }
    CHECK(params_ok(&p));
    CHECK(p.server_max_window_bits <= o.server_max_window_bits);
    CHECK(p.client_max_window_bits <= o.client_max_window_bits);
    CHECK(!o.server_no_context_takeover || p.server_no_context_takeover);
    CHECK(!o.client_no_context_takeover || p.client_no_context_takeover);
    CHECK(p.client_max_window_bits_offered == o.client_max_window_bits_offered);
}

static void offer_round_trip(uint8_t sel)
{
    nbio__pmd_params o, p;
    offer_from(sel, &o);
    char offer[NBIO__PMD_FORMAT_MAX];
    int n = nbio__pmd_format(&o, false, offer, sizeof offer);
    CHECK(n > 0);
    nbio_http_header f;
    nbio_http_head h;
    one_header(&h, &f, offer);
    const char *why = NULL;
    CHECK(nbio__pmd_negotiate(&h, false, &p, &why) == 1);
    CHECK(same_params(&p, &o));
    CHECK(p.client_max_window_bits_offered ==
          (o.client_max_window_bits_offered || o.client_max_window_bits < 15));
}

static bool b64(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
           c == '+' || c == '/';
}

static void keys(const nbio_http_head *h)
{
    size_t from = 0;
    const nbio_http_slice *v;
    while ((v = nbio_http_header_find(h, "sec-websocket-key", &from)) != NULL) {
        bool ok = nbio__ws_key_ok(v->data, v->len);
        if (ok)
            CHECK(v->len == 24 && v->data[22] == '=' && v->data[23] == '=');
        char acc[29];
        memset(acc, 'x', sizeof acc);
        nbio__ws_accept_key(v->data, v->len, acc);
        CHECK(strlen(acc) == 28 && acc[27] == '=');
        for (size_t i = 0; i < 27; i++)
            CHECK(b64(acc[i]));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 2)
        return 0;
    uint8_t sel = data[0];
    offer_round_trip(sel);
    size_t len = size - 2;
    char *buf = malloc(len ? len : 1);
    CHECK(buf != NULL);
    if (len)
        memcpy(buf, data + 2, len);
    nbio_http_header fields[NBIO__HTTP_MAX_HEADERS];
    nbio_http_head h = {.headers = fields};
    const char *why = NULL;
    size_t where = 0;
    int r = nbio__http_parse_request(buf, len, 0, &h, NULL, &why, &where);
    if (r > 0) {
        int sr;
        server_side(&h, &sr);
        client_side(&h, sel, sr);
        keys(&h);
    }
    free(buf);
    return 0;
}
