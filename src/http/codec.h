/*
 * Internal: the HTTP/1.1 codec (RFC 9112). Pure functions over the caller's
 * bytes: no I/O, no allocation, no global state. The HTTP client and server
 * sessions are built on it; the public model (slices, heads, lookups) is
 * nbio/http.h.
 *
 * Three parts:
 *
 *  1. Heads (parse.c): nbio__http_parse_request() / _response() find and
 *     parse a request or response head (start line + header fields + empty
 *     line) at the start of a buffer; nbio__http_parse_fields() parses a
 *     bare field section (a chunked body's trailers).
 *  2. Body framing (body.c): nbio__http_body_kind() decides from a parsed
 *     head how its body is delimited (none, Content-Length, chunked, until
 *     close, tunnel) and whether the connection stays open.
 *  3. Chunked bodies (chunked.c): nbio__chunked_decode() is an incremental,
 *     in-place decoder of the chunked transfer coding, trailers included.
 *
 * Errors are the library's codes: NBIO_EPROTOCOL (malformed input),
 * NBIO_ETOOLARGE (a limit was exceeded), NBIO_EUNSUPPORTED (well-formed but
 * not supported: an HTTP version other than 1.0/1.1 in a request, an
 * unknown transfer coding in a request). Each comes with a static `why`
 * sentence; nbio__http_error_status() turns (error, why) into the status a
 * server answers with.
 */
#ifndef NBIO__HTTP_CODEC_H
#define NBIO__HTTP_CODEC_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "nbio/errors.h"
#include "nbio/http.h"

/* ======================================================================== */
/* Heads                                                                     */
/* ======================================================================== */

/*
 * Limits of one head. A field of 0 means its default; a NULL limits pointer
 * means all defaults.
 *
 *  max_head     bytes of the whole head: leading empty lines, start line,
 *               field lines and the final empty line, line endings
 *               included (default 64 KiB; values above INT_MAX act as
 *               INT_MAX, since the head length is returned as an int);
 *  max_headers  header field lines (default 100); h->headers must have room
 *               for this many entries;
 *  max_line     bytes of one line, its line ending excluded: the start line
 *               and each field line (default 8 KiB).
 */
typedef struct nbio__http_limits {
    size_t max_head;
    size_t max_headers;
    size_t max_line;
} nbio__http_limits;

#define NBIO__HTTP_MAX_HEAD 65536
#define NBIO__HTTP_MAX_HEADERS 100
#define NBIO__HTTP_MAX_LINE 8192
/* Empty lines (CRLF; in responses also LF) accepted and skipped before a
 * start line, as RFC 9112 §2.2 asks of servers (a client may send a CRLF
 * after a POST body). One more is an error. */
#define NBIO__HTTP_MAX_LEADING_EMPTY 4

/*
 * Parses the head of a request (server side) or a response (client side)
 * at the start of buf[0, len).
 *
 * Returns:
 *   > 0  the head is complete: its length in bytes, leading empty lines and
 *        the final empty line included (the body, or the next message,
 *        starts at buf + result); *h is filled (h->headers[0,
 *        h->num_headers), every slice pointing into buf);
 *   0    the head is not complete yet and nothing wrong was seen: call
 *        again with more bytes appended (same start), passing this call's
 *        len as prev_len;
 *   < 0  NBIO_EPROTOCOL (malformed), NBIO_ETOOLARGE (a limit) or, for
 *        requests, NBIO_EUNSUPPORTED (the HTTP version is well-formed,
 *        HTTP/d.d, but not 1.0 or 1.1: answer 505); *why is set to a static
 *        sentence and *where to the byte offset in buf of the problem.
 * *h is meaningful only after a result > 0; *why and *where only after an
 * error (they are left alone otherwise). h->headers must point to an array
 * of max_headers entries; its other fields are outputs.
 *
 * Incremental use: prev_len is 0 on the first call for a head, else the
 * len of the previous call on the same head, which returned 0. The result
 * never depends on prev_len (a head fed one byte at a time gets exactly the
 * result, *why and *where of one call with every byte); prev_len only saves
 * work. A resumed call scans only the new bytes, buf[prev_len, len), plus
 * one memrchr() back to the start of the unfinished line (never more than
 * max_line bytes); a line is parsed when its line ending arrives, and the
 * whole head once more when it is complete. Nothing before the unfinished
 * line is looked at again, so a slowloris sending one byte per call costs
 * O(1) per byte plus that vectorised memrchr (measured: a 56 KB head of
 * 8 KB lines fed one byte per call, about 30 ns per call all included;
 * the same head in one call, 3.6 us). Errors inside a line (a bad
 * character in the method, a space before a colon) are reported when the
 * line ending arrives; control bytes (other than HTAB) and DEL as soon as
 * they arrive (a TLS ClientHello sent to a plain HTTP port fails on its
 * first byte), a bare CR with the byte after it, a line or head over its
 * limit with the first byte past it.
 *
 * Rules (RFC 9112; deliberate choices marked *):
 *  - Line endings are CRLF. A bare CR anywhere is an error. A bare LF is an
 *    error in requests (request smuggling defence); in responses it is
 *    accepted as a line ending (*), as most clients do.
 *  - Up to NBIO__HTTP_MAX_LEADING_EMPTY empty lines before the start line
 *    are skipped and counted in the head length.
 *  - Request line: method SP request-target SP HTTP-version. The method is
 *    a token; the target is any non-empty run of bytes other than SP,
 *    controls and DEL (bytes 0x80-0xFF are accepted (*): some clients send
 *    raw UTF-8); exactly one SP between the parts. The version must be
 *    "HTTP/" DIGIT "." DIGIT (case-sensitive) or the request is malformed;
 *    a well-formed version other than HTTP/1.0 and HTTP/1.1 (HTTP/2.0,
 *    HTTP/1.2 (*)) is NBIO_EUNSUPPORTED with why ==
 *    nbio__http_why_version: the server answers 505.
 *  - Status line: HTTP-version SP 3DIGIT [SP reason-phrase]. The version
 *    must be HTTP/1.x (x any digit: a higher minor version is compatible,
 *    RFC 9110 §6.2); the status 100-999 (*: RFC 9110 defines 1xx-5xx, but
 *    some servers send 999); the reason may be empty, and the SP before it
 *    may be missing ("HTTP/1.1 200\r\n") (*).
 *  - Field lines: field-name ":" OWS field-value OWS. The name is a
 *    non-empty token, directly followed by ":" (whitespace before the colon
 *    is an error, RFC 9112 §5.1); a line starting with SP or HTAB (obs-fold,
 *    or whitespace before the first field) is an error; the value has OWS
 *    trimmed on both sides and may contain HTAB, SP, VCHAR and obs-text,
 *    no other control bytes.
 *  - Limits: a head longer than max_head, a start line or field line
 *    longer than max_line, more than max_headers field lines: NBIO_ETOOLARGE
 *    with the why strings below. A head that is complete and well-formed
 *    except for the number of fields is reported as "too many header
 *    fields" (the count is checked when the head is complete; a stream of
 *    short lines that never ends is caught by max_head).
 * Semantics (Host, duplicate headers, framing headers) are not checked
 * here; see nbio__http_body_kind().
 */
int nbio__http_parse_request(const char *buf, size_t len, size_t prev_len, nbio_http_head *h,
                             const nbio__http_limits *lim, const char **why, size_t *where);
int nbio__http_parse_response(const char *buf, size_t len, size_t prev_len, nbio_http_head *h,
                              const nbio__http_limits *lim, const char **why, size_t *where);

/*
 * Parses a field section without a start line: zero or more field lines
 * then an empty line, CRLF line endings only (a bare LF is an error). This
 * is what a chunked body's trailer section is (nbio__chunked_decode() hands
 * it out as one slice). Same rules and limits as the field lines of a
 * request head: lim->max_head bounds the whole section, max_line each line,
 * max_headers the fields (and the size of `fields`).
 * Returns the section's length (> 0; 2 for a lone CRLF) with
 * fields[0, *num_fields) filled, 0 when more bytes are needed, or a
 * negative error with *why and *where set. fields may be NULL to check
 * the section without keeping the fields (the count limit still applies).
 * Not incremental (no prev_len): call it on a complete section.
 */
int nbio__http_parse_fields(const char *buf, size_t len, nbio_http_header *fields,
                            size_t *num_fields, const nbio__http_limits *lim, const char **why,
                            size_t *where);

/*
 * The why strings a server answers something other than 400 for. The
 * parser returns exactly these pointers, so compare them with ==, or call
 * nbio__http_error_status().
 */
extern const char nbio__http_why_head_too_large[];    /* "header block larger than the limit": 431 */
extern const char nbio__http_why_too_many_headers[];  /* "too many header fields": 431 */
extern const char nbio__http_why_field_too_long[];    /* "header field line longer than the limit": 431 */
extern const char nbio__http_why_request_line_too_long[]; /* "request line longer than the limit": 414 */
extern const char nbio__http_why_status_line_too_long[];  /* "status line longer than the limit" (responses) */
extern const char nbio__http_why_version[];           /* "HTTP version not supported": 505 */
extern const char nbio__http_why_unknown_coding[];    /* "unknown transfer coding": 501 (nbio__http_body_kind) */

/*
 * The status code a server answers a failed request with, from the error
 * and why of nbio__http_parse_request() or nbio__http_body_kind():
 * 414 (request line too long), 431 (head too large, too many fields, a
 * field line too long), 505 (HTTP version), 501 (unknown transfer coding),
 * else 400. Any other err (not one of the codec's) also gives 400.
 */
int nbio__http_error_status(int err, const char *why);

/*
 * Byte classes shared by the codec's parts: nbio__http_cls[byte] is a set of
 * these bits.
 */
#define NBIO__HTTP_TCHAR 1u /* RFC 9110 tchar: a token byte */
#define NBIO__HTTP_STOP 2u  /* ends a scan of line content: CTLs except HTAB
                               (so CR and LF too), and DEL */
#define NBIO__HTTP_HEX 4u   /* HEXDIG */
extern const unsigned char nbio__http_cls[256];

/* ======================================================================== */
/* Body framing                                                              */
/* ======================================================================== */

typedef enum nbio__body_kind {
    NBIO__BODY_NONE,    /* no body: the next message starts right after the head */
    NBIO__BODY_LENGTH,  /* exactly *length bytes (Content-Length; 0 possible) */
    NBIO__BODY_CHUNKED, /* chunked: decode with nbio__chunked_decode() */
    NBIO__BODY_CLOSE,   /* responses only: the body runs until the server closes */
    NBIO__BODY_TUNNEL   /* responses only: 101 Switching Protocols, or 2xx to
                           CONNECT: after the head the connection carries
                           another protocol, no more HTTP messages */
} nbio__body_kind;

/* Content-Length values above this are rejected (they fit an int64_t/off_t). */
#define NBIO__HTTP_MAX_CONTENT_LENGTH ((uint64_t)INT64_MAX)

/*
 * How the body of a parsed head is framed (RFC 9112 §6.3), and whether the
 * connection can carry another message after this one.
 *
 * is_request: h is a request (server side) or a response (client side).
 * req_method: for a response, the method of the request it answers (HEAD
 * and CONNECT matter); ignored for requests ({NULL, 0} is fine).
 *
 * Returns 0 with *kind, *length (the Content-Length for
 * NBIO__BODY_LENGTH, else 0) and *keep_alive set; or a negative error with
 * *why set (outputs then undefined).
 *
 * Responses, in this order:
 *  - to HEAD, or status 1xx (other than 101), 204 or 304: NONE; framing
 *    headers are not looked at (they describe the representation, not this
 *    message);
 *  - 101, or 2xx to CONNECT: TUNNEL (Content-Length/Transfer-Encoding are
 *    ignored, RFC 9110 §9.3.6), keep_alive false;
 *  - Transfer-Encoding present: the list of codings (all Transfer-Encoding
 *    lines in order, comma-separated, empty elements ignored, names
 *    case-insensitive) must be non-empty and name chunked at most once,
 *    else NBIO_EPROTOCOL. Chunked last: CHUNKED; otherwise CLOSE (RFC 9112
 *    §6.3 item 4). A Content-Length beside it is ignored, not checked:
 *    Transfer-Encoding wins (*RFC 9112 §6.3 item 3; the message may be an
 *    attempt at response splitting, so keep_alive is false); so does an
 *    HTTP/1.0 response with Transfer-Encoding (§6.1);
 *  - Content-Length present: LENGTH, see the rules below;
 *  - otherwise CLOSE (keep_alive false).
 * Requests:
 *  - Transfer-Encoding present: NBIO_EPROTOCOL (400) when Content-Length is
 *    present too (smuggling), when the request is HTTP/1.0 (§6.1), when the
 *    list is empty or names chunked twice, when chunked is not the last
 *    coding (§6.3 item 4); NBIO_EUNSUPPORTED with why ==
 *    nbio__http_why_unknown_coding (501) when a coding other than chunked,
 *    gzip, x-gzip, deflate, compress, x-compress is named. Otherwise
 *    CHUNKED. Codings applied before chunked (gzip, chunked) are left to the
 *    caller: the body this layer delivers is still gzip-coded;
 *  - Content-Length present: LENGTH;
 *  - otherwise NONE (a request has a body only when it says so).
 * Content-Length, in both: every Content-Length line is a comma-separated
 * list (OWS around commas); every element must be 1*DIGIT and all of them
 * the same number ("5, 5" and two lines "5" are one length 5, RFC 9110
 * §8.6); an empty element, a non-digit, differing values or a value above
 * NBIO__HTTP_MAX_CONTENT_LENGTH is NBIO_EPROTOCOL.
 * Keep-alive: the Connection header lines form one token list
 * (case-insensitive). HTTP/1.1 and later: keep-alive unless "close" is in
 * it; HTTP/1.0: close unless "keep-alive" is in it (and "close" is not).
 * CLOSE and TUNNEL bodies and the cases marked above force false. The
 * caller still has to combine this with its own side: a client that sent
 * "Connection: close", a server that wants to stop.
 */
int nbio__http_body_kind(const nbio_http_head *h, bool is_request, nbio_http_slice req_method,
                         nbio__body_kind *kind, uint64_t *length, bool *keep_alive,
                         const char **why);

/* True when the comma-separated token list `list` holds `token` (ASCII
 * case-insensitive; OWS around elements ignored). For Connection, Upgrade,
 * TE... */
bool nbio__http_list_has(nbio_http_slice list, const char *token);

/* True when some header called name (case-insensitive) has `token` in its
 * comma-separated list: e.g. ("connection", "upgrade"). */
bool nbio__http_header_has_token(const nbio_http_head *h, const char *name, const char *token);

/* ======================================================================== */
/* Chunked transfer coding                                                   */
/* ======================================================================== */

/* Chunk sizes above this (2^60) are rejected as malformed. */
#define NBIO__CHUNK_MAX_SIZE ((uint64_t)1 << 60)
#define NBIO__CHUNK_MAX_LINE 4096     /* default: bytes of one chunk-size line */
#define NBIO__CHUNK_MAX_TRAILER 65536 /* default: bytes of the trailer section */

/*
 * Decoder state. Zero it with nbio__chunked_init(); the fields are the
 * decoder's (read `state`/`remaining` for diagnostics only).
 */
typedef struct nbio__chunked {
    int state;            /* enum in chunked.c */
    uint64_t remaining;   /* chunk data bytes still to come (or the size being read) */
    size_t line_len;      /* bytes of the current chunk-size line so far */
    size_t trailer_len;   /* bytes of the trailer section already scanned */
    size_t max_line;      /* limit of a chunk-size line, CRLF excluded */
    size_t max_trailer;   /* limit of the trailer section, final CRLF included */
    int err;              /* after an error: the error, repeated by later calls */
    const char *why;
} nbio__chunked;

/* Starts a body. max_line bounds one chunk-size line (size digits and
 * extensions, CRLF excluded; 0: NBIO__CHUNK_MAX_LINE); max_trailer the
 * trailer section (0: NBIO__CHUNK_MAX_TRAILER; at most INT_MAX). */
void nbio__chunked_init(nbio__chunked *c, size_t max_line, size_t max_trailer);

/*
 * Decodes chunked body bytes in place.
 *
 * buf[0, len) holds the body's bytes that follow everything an earlier call
 * consumed (first call: the bytes right after the head). The decoder moves
 * the chunk data it finds to the front: on return buf[0, *out_len) is
 * payload (possibly 0 bytes), in order, and buf[0, *consumed) has been
 * used up (*out_len <= *consumed <= len). The caller hands the payload out,
 * drops buf[0, *consumed) and keeps buf[*consumed, len) at the front of the
 * next call's buffer, with more bytes appended.
 *
 * Returns:
 *   0  more bytes are needed. *consumed == len, except inside the trailer
 *      section: the unfinished section stays unconsumed (at most
 *      max_trailer bytes) so it is one contiguous slice when it ends;
 *   1  the body ended (last chunk, trailers, final CRLF). *consumed is the
 *      end of the message: buf[*consumed, len) belongs to the next one.
 *      *trailers is the trailer section, buf[*consumed - trailers->len,
 *      *consumed): the field lines and the final CRLF, so exactly "\r\n"
 *      when there were none; parse it with nbio__http_parse_fields(). It
 *      lies after the payload, which it never overlaps;
 *  < 0 NBIO_EPROTOCOL (a malformed byte: the chunk-size is empty, not hex,
 *      or above NBIO__CHUNK_MAX_SIZE; a bad extension; data not followed by
 *      CRLF; a bare CR or LF; a malformed trailer line), or NBIO_ETOOLARGE
 *      (a chunk-size line or the trailer section over its limit); *why is
 *      set and *consumed is the offset in buf of the offending byte.
 *      Payload decoded before it is in buf[0, *out_len).
 * trailers is set only on 1 (may be NULL if the caller does not want it);
 * why is set only on errors.
 * Once the body ended, later calls return 1 consuming nothing (*trailers
 * {NULL, 0}); after an error they return the same error (*consumed 0).
 *
 * Rules (RFC 9112 §7.1): chunk-size is 1*HEXDIG (leading zeros allowed);
 * extensions *( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )
 * are checked and ignored; whitespace after the size is accepted only
 * before a ";". Every line ends in CRLF (no bare LF, in requests and
 * responses alike). Trailer lines follow the field-line rules of
 * nbio__http_parse_fields(), checked when the section is complete.
 *
 * Cost: every input byte is looked at once, except a trailer section that
 * arrives in pieces (scanned once, then parsed once when complete); data
 * bytes are moved with memmove() only when framing bytes precede them in
 * the same call.
 */
int nbio__chunked_decode(nbio__chunked *c, char *buf, size_t len, size_t *out_len,
                         size_t *consumed, nbio_http_slice *trailers, const char **why);

#endif /* NBIO__HTTP_CODEC_H */
