/*
 * Internal: the WebSocket codec (RFC 6455, RFC 7692). Functions over the
 * caller's bytes: no I/O and no global state of their own. Only
 * permessage-deflate allocates (zlib's state, the output buffers it is
 * given); keys come from OpenSSL's RAND_bytes. Everything is safe to use
 * from several threads at once on different objects. The WebSocket session
 * (src/ws/session.c) is built on it; the public API is nbio/ws.h.
 *
 * Parts:
 *
 *  1. Frames (frame.c): header parsing and encoding, payload masking,
 *     close codes, the per-session masking-key generator.
 *  2. UTF-8 (utf8.c): an incremental validator for text messages and close
 *     reasons.
 *  3. The opening handshake (handshake.c): Sec-WebSocket-Key and
 *     Sec-WebSocket-Accept.
 *  4. permessage-deflate (deflate.c): negotiation of the extension in the
 *     handshake, and message compression with zlib.
 *
 * Errors are the library's codes (nbio/errors.h). A protocol error comes
 * with a static `why` sentence (never NULL, never freed) naming what was
 * wrong, for the session's detail and close reason.
 */
#ifndef NBIO__WS_CODEC_H
#define NBIO__WS_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <zlib.h>

#include "core/bytes.h"
#include "nbio/errors.h"
#include "nbio/http.h"

/* ======================================================================== */
/* Frames (frame.c)                                                          */
/* ======================================================================== */

/* The longest frame header: 2 bytes, an 8-byte extended length, a 4-byte
 * masking key. */
#define NBIO__WS_MAX_HEADER 14

/* Opcodes (RFC 6455 §5.2). */
#define NBIO__WS_OP_CONT 0
#define NBIO__WS_OP_TEXT 1
#define NBIO__WS_OP_BINARY 2
#define NBIO__WS_OP_CLOSE 8
#define NBIO__WS_OP_PING 9
#define NBIO__WS_OP_PONG 10

/* The longest payload of a control frame (close, ping, pong). */
#define NBIO__WS_MAX_CONTROL 125

typedef struct nbio__ws_frame {
    bool fin, rsv1, rsv2, rsv3;
    uint8_t opcode;          /* 0 continuation, 1 text, 2 binary, 8 close, 9 ping, 10 pong */
    bool masked;
    uint8_t mask[4];         /* the masking key when masked, else all zero */
    uint64_t len;            /* payload length (< 2^63) */
    size_t header_len;       /* 2..14: the payload starts at buf + header_len */
} nbio__ws_frame;

/*
 * Parses the frame header at the start of buf[0, len). Looks at no byte
 * past the header (at most NBIO__WS_MAX_HEADER bytes), never at the payload.
 *
 * Returns:
 *   > 0  the header is complete: its length (2..14, == f->header_len); *f is
 *        filled. The payload is the next f->len bytes, which may or may not
 *        be in buf yet;
 *   0    more bytes are needed (len is shorter than the header, whose length
 *        is known from its first two bytes); *f is unspecified;
 *   NBIO_EPROTOCOL  with *why set (static) for
 *        - an unknown opcode (3-7, 11-15),
 *        - a control frame (opcode >= 8) with fin 0 (fragmented),
 *        - a control frame with a payload longer than 125 bytes,
 *        - a 64-bit length with its most significant bit set.
 *        Errors are reported as soon as the bytes that show them are there:
 *        the opcode and fin checks need 1 byte, the control length 2, the
 *        64-bit top bit 3; with fewer the result is 0.
 * why is set only on errors. A result never changes when more bytes are
 * appended (a header parsed on a prefix gives the same result on the whole).
 *
 * Not judged here, because the session knows the context:
 *   - the reserved bits (rsv1 is permessage-deflate's "compressed" bit when
 *     it was agreed; any set bit without an extension is a protocol error);
 *   - the mask bit (a server requires it, a client refuses it);
 *   - continuation frames out of sequence;
 *   - a close payload of length 1 (a code needs 2 bytes).
 * Non-minimal length encodings (126 with a 16-bit length below 126, 127
 * with a 64-bit length below 65536) are accepted: RFC 6455 §5.2 says the
 * minimal form MUST be used by senders, but does not ask receivers to
 * fail, and being strict would break interop for no safety gain.
 */
int nbio__ws_parse_header(const unsigned char *buf, size_t len, nbio__ws_frame *f,
                          const char **why);

/*
 * Writes a frame header into out, which has room for NBIO__WS_MAX_HEADER
 * bytes. The length is encoded minimally (7 bits up to 125, 16 bits up to
 * 65535, else 64 bits; len must be < 2^63). mask NULL: the mask bit is 0
 * and no key is written (server to client); else the mask bit is 1 and the
 * 4 key bytes follow (client to server; the caller masks the payload with
 * nbio__ws_mask()). rsv2 and rsv3 are always 0; opcode is written as given
 * (its low 4 bits). Returns the header's length, 2..14.
 */
size_t nbio__ws_encode_header(unsigned char *out, uint8_t opcode, bool fin, bool rsv1,
                              uint64_t len, const uint8_t *mask);

/*
 * XORs data[0, len) in place with the masking key, as if data started at
 * byte `offset` of the payload: byte i of data is XORed with
 * mask[(offset + i) % 4]. So a payload can be (un)masked in pieces as it
 * arrives: call with offset 0, then with offset = bytes done so far. Masking
 * twice with the same key and offset restores the data. len 0 does nothing
 * (data may then be NULL).
 * Fast: 8 bytes at a time on the aligned middle part, through memcpy (no
 * unaligned access or aliasing UB); bytes before and after it one by one.
 */
void nbio__ws_mask(unsigned char *data, size_t len, const uint8_t mask[4], uint64_t offset);

/*
 * True for a status code a peer may send in a close frame (RFC 6455 §7.4,
 * and the IANA registry): 1000-1003, 1007-1011, 1012-1014 (registered:
 * service restart, try again later, bad gateway), 3000-4999 (libraries,
 * frameworks, applications). False for 0-999, 1004 (reserved), 1005 and
 * 1006 (never sent on the wire), 1015 (TLS failure, never sent), 1016-2999
 * (reserved for future RFCs), >= 5000.
 */
bool nbio__ws_close_code_ok(unsigned code);

/*
 * Masking keys without a syscall per frame (RFC 6455 §5.3, §10.3: a client
 * must pick each key unpredictably, because script in a browser-like
 * client sees the keys of earlier frames; a linear generator such as
 * xorshift128+ would let it compute the next one from two outputs).
 *
 * The generator is SipHash-2-4 used as a pseudo-random function: s is a
 * 128-bit secret key from RAND_bytes, and key number n is 32 bits of
 * SipHash(s, n). Without s, the keys seen so far say nothing about the next
 * one. The secret is replaced from RAND_bytes after 2^20 keys. About 20 ns
 * a key. One per session, not shared between threads.
 */
typedef struct nbio__ws_rng {
    uint64_t s[2];
    uint32_t uses;
} nbio__ws_rng;

#define NBIO__WS_RNG_RESEED (1u << 20)

/* Seeds r from RAND_bytes. Returns 0, or NBIO_EIO when OpenSSL has no
 * randomness to give (then r must not be used). */
int nbio__ws_rng_init(nbio__ws_rng *r);

/* Writes the next masking key into mask. Reseeds from RAND_bytes every
 * NBIO__WS_RNG_RESEED keys; should RAND_bytes fail then, the next secret
 * is derived from the current one through SipHash (still unpredictable to
 * an observer of the keys) and reseeding is tried again after the next
 * NBIO__WS_RNG_RESEED keys. Never fails. */
void nbio__ws_rng_mask(nbio__ws_rng *r, uint8_t mask[4]);

/* ======================================================================== */
/* UTF-8 (utf8.c)                                                            */
/* ======================================================================== */

/* Validator states: NBIO__UTF8_ACCEPT between characters (also the start);
 * NBIO__UTF8_REJECT once the input was invalid (sticky). Any other value is
 * a character in progress (opaque: only pass it back). */
#define NBIO__UTF8_ACCEPT 0u
#define NBIO__UTF8_REJECT 1u

/*
 * Validates p[0, len) as the continuation of a UTF-8 byte stream in state
 * `state` (NBIO__UTF8_ACCEPT at the start of a message). Returns the new
 * state: NBIO__UTF8_ACCEPT when p ends between characters, NBIO__UTF8_REJECT
 * as soon as any byte is invalid (and for every later call: the state is
 * sticky), otherwise an in-progress state (a character is split at the end
 * of p; pass it to the next call).
 *
 * A whole message is valid when its final state is NBIO__UTF8_ACCEPT: a
 * message ending in an in-progress state is truncated, hence invalid. The
 * session may reject early on NBIO__UTF8_REJECT (RFC 6455 §8.1 fails fast).
 *
 * Rules (RFC 3629): shortest form only (no overlongs: C0, C1, E0 80-9F,
 * F0 80-8F), no surrogates (ED A0-BF), nothing above U+10FFFF (F4 90-BF,
 * F5-FF), no continuation byte without a lead byte. U+0000, noncharacters
 * (U+FFFE, U+FFFF) and U+10FFFF are valid.
 * The result for a byte stream never depends on how it is split into calls.
 * Fast path: in state ACCEPT, ASCII runs are checked 8 bytes at a time.
 * len 0 returns state unchanged (p may then be NULL).
 */
uint32_t nbio__utf8_step(uint32_t state, const unsigned char *p, size_t len);

/* ======================================================================== */
/* The opening handshake (handshake.c)                                       */
/* ======================================================================== */

/*
 * The Sec-WebSocket-Accept value for a Sec-WebSocket-Key, key[0, key_len)
 * as it appeared in the request (not NUL-terminated; used as is, no
 * trimming or decoding): base64(SHA-1(key + "258EAFA5-E914-47DA-95CA-
 * C5AB0DC85B11")). Writes 28 characters and a NUL into out. Should OpenSSL
 * fail (out of memory), out is the empty string, which matches no accept
 * value.
 */
void nbio__ws_accept_key(const char *key, size_t key_len, char out[29]);

/* A fresh Sec-WebSocket-Key for a client's request: base64 of 16 bytes from
 * RAND_bytes, 24 characters and a NUL into out. Returns 0, or NBIO_EIO when
 * OpenSSL has no randomness to give (out is then the empty string). */
int nbio__ws_new_key(char out[25]);

/*
 * True when key[0, len) is a valid Sec-WebSocket-Key (RFC 6455 §4.2.1):
 * base64 that decodes to exactly 16 bytes, i.e. 22 characters of the
 * base64 alphabet (A-Z a-z 0-9 + /) followed by "==". The 4 unused bits of
 * the 22nd character are not required to be 0 (RFC 4648 §3.5 lets decoders
 * accept them; the accept value is computed from the key's text anyway).
 * No surrounding whitespace (the HTTP parser trims it).
 */
bool nbio__ws_key_ok(const char *key, size_t len);

/* ======================================================================== */
/* permessage-deflate, RFC 7692 (deflate.c)                                  */
/* ======================================================================== */

/*
 * The parameters of permessage-deflate. "server" and "client" name the
 * direction: server_* applies to what the server compresses (and the client
 * decompresses), client_* to what the client compresses.
 *
 *  *_no_context_takeover  the compressor of that side starts every message
 *                         with an empty window;
 *  *_max_window_bits      the LZ77 window of that side's compressor is at
 *                         most 2^bits bytes (8..15; 15 = no limit);
 *  client_max_window_bits_offered
 *                         the client's offer carried client_max_window_bits
 *                         (with or without a value): only then may the
 *                         server's answer name it.
 *
 * Use nbio__pmd_params_init() for the defaults (no flags, 15, 15, false).
 * Every function here also takes a window bits value of 0 (a zeroed
 * struct) as 15.
 */
typedef struct nbio__pmd_params {
    bool server_no_context_takeover, client_no_context_takeover;
    int server_max_window_bits;   /* 8..15, default 15 */
    int client_max_window_bits;   /* 8..15, default 15 */
    bool client_max_window_bits_offered; /* the client's offer had client_max_window_bits
                                            (bare or with a value) */
} nbio__pmd_params;

/* The defaults: takeover both ways, windows 15, nothing offered. */
void nbio__pmd_params_init(nbio__pmd_params *p);

/*
 * Looks through the Sec-WebSocket-Extensions header values of h (every
 * header line named sec-websocket-extensions, case-insensitively, in
 * order) for permessage-deflate.
 *
 * Syntax (RFC 6455 §9.1, RFC 9110 lists): comma-separated extensions
 * (empty list elements are ignored), each a token followed by
 * `;`-separated parameters `name` or `name=value`, value a token or a
 * quoted-string (backslash escapes allowed) whose unescaped text is a
 * token; optional whitespace around `,` `;` `=`. Extension and parameter
 * names are compared case-insensitively. A header value that does not
 * follow this syntax is NBIO_EPROTOCOL with *why set, whichever side.
 *
 * Server side (is_response false; h is the client's request): *p is
 * output only. The offers are tried in order; the first acceptable one is
 * taken: returns 1 with *p holding the answer the server will send (format
 * it with nbio__pmd_format(p, true, ...)). An offer is declined, as
 * RFC 7692 §7.1 requires (declined, not failed: a later offer may be
 * taken), when it has
 *   - a parameter not defined for offers,
 *   - a parameter twice,
 *   - a value where none belongs (the no_context_takeover ones),
 *   - a window bits value that is not a decimal integer 8..15 without
 *     leading zeros (7, 16, "08", "x"; server_max_window_bits needs one,
 *     client_max_window_bits may have none).
 * The answer agrees to the offer as made: server_no_context_takeover,
 * server_max_window_bits when the client asked for them (this server can
 * honour any of them), client_no_context_takeover when the client offered
 * it, client_max_window_bits with the client's value when it gave one
 * (client_max_window_bits_offered is then set; a bare offer is answered
 * without it, so the client keeps 15). A server that wants a smaller client
 * window (to save its decompressor's memory) may lower
 * client_max_window_bits before formatting, but only when
 * client_max_window_bits_offered. Returns 0 when there is no
 * permessage-deflate offer or none is acceptable (no compression; other
 * extensions are ignored), NBIO_EPROTOCOL for a malformed header (also
 * when the malformed part follows an acceptable offer: the whole header is
 * checked).
 *
 * Client side (is_response true; h is the server's 101): on entry *p is
 * what the client offered (what it passed to nbio__pmd_format(p, false,
 * ...)); on return 1, *p is what was agreed. Returns 0 when the answer has
 * no Sec-WebSocket-Extensions (the server declined: no compression), 1
 * when it accepted permessage-deflate, NBIO_EPROTOCOL with *why (the client
 * must fail the connection, RFC 7692 §7.1) when
 *   - it names an extension other than permessage-deflate (the client
 *     offered nothing else), or permessage-deflate twice,
 *   - a parameter is unknown, repeated, or has a bad value (as above;
 *     client_max_window_bits needs a value in an answer),
 *   - client_max_window_bits is there although the offer had no
 *     client_max_window_bits,
 *   - server_max_window_bits is missing or larger than the offer's when the
 *     offer limited it (server_max_window_bits < 15 in *p), or
 *     server_no_context_takeover is missing when the offer asked for it.
 * A server may add server_no_context_takeover, client_no_context_takeover
 * or server_max_window_bits unasked. The agreed client window is the
 * smaller of the offered and the answered one; the agreed
 * client_no_context_takeover is set when either side named it (the offer's
 * is the client's promise); client_max_window_bits_offered is kept.
 * A client that offered no permessage-deflate at all must not call this: it
 * treats any Sec-WebSocket-Extensions in the answer as an error itself.
 *
 * Either side: *p is written only when the result is 1; why is set only on
 * errors. h's bytes are only read.
 */
int nbio__pmd_negotiate(const nbio_http_head *h, bool is_response, nbio__pmd_params *p,
                        const char **why);

/*
 * Formats the Sec-WebSocket-Extensions value (no header name, no CRLF) into
 * buf[0, cap) with a NUL:
 *   is_response false, the client's offer: "permessage-deflate", then
 *     "; server_no_context_takeover" and "; client_no_context_takeover"
 *     when set, "; server_max_window_bits=N" when N < 15, and
 *     "; client_max_window_bits" (with "=N" when N < 15) when
 *     client_max_window_bits_offered or N < 15;
 *   is_response true, the server's answer: "permessage-deflate", the two
 *     no_context_takeover flags when set, "; server_max_window_bits=N" when
 *     N < 15, "; client_max_window_bits=N" when client_max_window_bits_offered
 *     and N < 15.
 * Returns the length (without the NUL), or -1 when cap is too small or a
 * window bits value is outside 8..15 (buf then holds no useful value).
 * NBIO__PMD_FORMAT_MAX bytes are always enough (the longest value, an offer
 * with every parameter, is 128 characters).
 */
#define NBIO__PMD_FORMAT_MAX 160
int nbio__pmd_format(const nbio__pmd_params *p, bool is_response, char *buf, size_t cap);

/*
 * One side's compression state: a raw-deflate compressor for the messages
 * it sends, a raw-inflate decompressor for those it receives. Zero it, then
 * nbio__pmd_init(); nbio__pmd_free() when done (also after a failed init).
 *
 * def_reset / inf_reset: no context takeover for that direction (reset
 * after every message). def_bits / inf_bits: the zlib windowBits in use.
 */
typedef struct nbio__pmd {
    z_stream def, inf;
    bool def_ready, inf_ready;
    bool def_reset, inf_reset;
    int def_bits, inf_bits;
} nbio__pmd;

/*
 * Sets up z for one side with the agreed params: is_server true means this
 * side compresses with the server_* parameters and decompresses with the
 * client_* ones; false the other way round. A window bits value of 0 is
 * taken as 15. Returns 0, or NBIO_EINVAL for window bits outside 8..15
 * (z is then zeroed; nbio__pmd_free() is harmless on it).
 *
 * zlib's state is allocated on first use, by nbio__pmd_deflate() and
 * nbio__pmd_inflate() (which report NBIO_ENOMEM then): a session that only
 * receives never pays for a compressor. Memory once in use: about
 * 2^(bits+2) + 128 KiB for the compressor (memLevel 8; 256 KiB at 15 bits)
 * and 2^bits + 7 KiB for the decompressor.
 *
 * Window bits 8: zlib cannot make raw deflate with an 8-bit window, so the
 * compressor uses 9 where 8 was agreed. That is still within the agreement:
 * zlib never emits a distance over its window size minus MIN_LOOKAHEAD
 * (262), so a 9-bit (512-byte) zlib window references at most 250 bytes
 * back, which a 256-byte window holds (the unit test checks it by inflating
 * with an 8-bit window). Hence any offer can be accepted and any answer
 * complied with. The decompressor uses exactly the window the peer agreed
 * to (zlib inflates with 8..15), so a peer reaching further back than it
 * promised is caught as bad data (NBIO_EPROTOCOL) rather than silently
 * accepted.
 */
int nbio__pmd_init(nbio__pmd *z, const nbio__pmd_params *p, bool is_server);

/* Frees zlib's state. z may be zeroed, set up but never used, or used;
 * safe to call twice. */
void nbio__pmd_free(nbio__pmd *z);

/*
 * Compresses one whole message in[0, len) and appends the payload to send
 * (the frame's, or its fragments' concatenated, with rsv1 set on the first
 * frame) to out: raw deflate ended with a sync flush, whose trailing
 * 00 00 FF FF is removed (RFC 7692 §7.2.1). An empty message gives the one
 * byte 00 (an empty stored block without LEN/NLEN, RFC 7692 §7.2.3.6).
 * Afterwards the compressor is reset when no context takeover applies to
 * this side's direction (else the next message may refer back into this
 * one). in may be NULL when len is 0, and must not point into out (out
 * may move when it grows). out grows as needed (its max, when
 * set, is respected: reaching it is NBIO_ENOMEM).
 * Returns 0, or NBIO_ENOMEM (out keeps its previous length; the compressor
 * is then in an unknown state: end the session).
 */
int nbio__pmd_deflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out);

/*
 * Decompresses one whole received message, in[0, len) being its frames'
 * payloads concatenated (unmasked), and appends the message to out. The
 * 00 00 FF FF tail the sender removed is supplied by this function (the
 * caller passes only what arrived). in must not point into out (out may
 * move when it grows).
 *
 * The message must end where a deflate block ends (what a sync flush
 * gives); one cut inside a block is NBIO_EPROTOCOL. Accepted besides:
 *  - an empty payload (len 0), as an empty message (RFC 7692 senders send
 *    00 for it, but some send nothing);
 *  - a message ending in a final block (BFINAL 1, RFC 7692 §7.2.3.4): bytes
 *    after that block are ignored, and with context takeover the next
 *    message may still refer back into this one (the window is kept).
 *
 * max bounds the bytes this call appends (the decompressed message,
 * whatever out held before): the function stops with NBIO_ETOOLARGE as
 * soon as the message would be longer, having decompressed at most
 * max + 1 bytes of it, so a small bomb costs at most max bytes of memory
 * and the time to produce them. out's own max, when set, is a limit too
 * (NBIO_ETOOLARGE).
 *
 * Returns 0, NBIO_ETOOLARGE, NBIO_EPROTOCOL (not valid deflate data, a
 * distance beyond the agreed window, a block cut short), or NBIO_ENOMEM.
 * On any error out->len is back to what it was (out may have grown), and
 * the decompressor is in an unknown state: end the session (close code
 * 1009 for NBIO_ETOOLARGE, 1007 for data that does not decompress). After
 * success the decompressor is reset when no context takeover applies to
 * the peer's direction.
 */
int nbio__pmd_inflate(nbio__pmd *z, const void *in, size_t len, nbio__bytes *out, size_t max);

/* For the unit test only: SipHash-2-4 of the 8-byte little-endian message m
 * under the key (k0, k1), as the masking-key generator computes it. */
uint64_t nbio__ws_siphash8(uint64_t k0, uint64_t k1, uint64_t m);

#endif /* NBIO__WS_CODEC_H */
