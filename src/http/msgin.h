/*
 * Internal: reading HTTP messages from a byte session, shared by the client
 * (responses) and the server (requests).
 *
 * Bytes collect in `in`. A head is parsed at its front (resumably); then
 * the body, framed as nbio__http_body_kind() decided:
 *  - whole: the head stays at the front and the body follows it; a chunked
 *    body is decoded in place behind the head, so the payload is one slice;
 *  - streamed: the head is handed out first and dropped; each part is then
 *    a slice at the front.
 * What was handed out stays at the front until the next read (`handed`).
 * The functions report problems as a negative error with a static *why;
 * the session turns them into its own details and goodbyes.
 */
#ifndef NBIO__HTTP_MSGIN_H
#define NBIO__HTTP_MSGIN_H

#include "core/bytes.h"
#include "core/session.h"
#include "http/codec.h"

typedef struct nbio__msgin {
    nbio__bytes in;
    size_t handed;  /* bytes at the front handed out last, dropped on the next read */
    size_t scanned; /* head bytes the parser already looked at */
    bool inner_eof; /* the byte session ended */
    bool is_request;
    bool stream;    /* streamed bodies */
    uint64_t max_body; /* whole bodies (streamed: no limit here) */
    nbio__http_limits lim;
    nbio_http_head head;
    nbio_http_header *hdrs, *trls; /* lim.max_headers entries each */
    size_t head_len;
    nbio__body_kind kind;
    uint64_t length;    /* Content-Length */
    uint64_t remaining; /* streamed LENGTH bodies: bytes still to come */
    uint64_t received;  /* body bytes so far (details) */
    size_t body_have;   /* whole bodies: payload bytes behind the head */
    nbio__chunked ch;
} nbio__msgin;

/* Sets up the reader; the buffers (the read buffer, max_headers entries
 * for headers and for trailers) come with the first bytes. Returns 0. */
int nbio__msgin_init(nbio__msgin *m, bool is_request, bool stream, uint64_t max_body,
                     const nbio__http_limits *lim, size_t read_buffer_size);
void nbio__msgin_free(nbio__msgin *m);

/* Between messages, with nothing buffered: gives the read buffer and the
 * header arrays back (they come again with the next bytes). */
void nbio__msgin_idle(nbio__msgin *m);

/* Drops what was handed out last. */
void nbio__msgin_release(nbio__msgin *m);

/* Parses a head at the front: 1 (m->head, head_len set), 0 (more bytes
 * needed), or an error with *why and *where. */
int nbio__msgin_head(nbio__msgin *m, const char **why, size_t *where);

/* The message in hand is complete: the next one starts with a head. */
static inline void nbio__msgin_next(nbio__msgin *m)
{
    m->kind = NBIO__BODY_NONE;
    m->head_len = 0;
    m->scanned = 0;
}

/* The body of the head just parsed is framed by kind/length. */
void nbio__msgin_start_body(nbio__msgin *m, nbio__body_kind kind, uint64_t length);

/* Whole mode: 1 when the body is complete (*body and *trailers set, the
 * head re-parsed in place so its slices are current, the message marked
 * handed), 0 when more bytes are needed, or an error with *why
 * (NBIO_ETOOLARGE past max_body). */
int nbio__msgin_whole(nbio__msgin *m, nbio_http_slice *body, nbio_http_slice *trailers,
                      const char **why);

/* Streaming: 1 with the next part in *body (*last set when it is the final
 * one; *trailers then), 0 when more bytes are needed, or an error. */
int nbio__msgin_part(nbio__msgin *m, nbio_http_slice *body, bool *last,
                     nbio_http_slice *trailers, const char **why);

/* Parses trailers into m->trls: the count, or an error with *why. */
int nbio__msgin_trailers(nbio__msgin *m, nbio_http_slice t, const char **why);

/* Reads what the byte session has into the buffer, growing it by what a
 * whole body still needs. Returns bytes read (> 0), NBIO_IDLE, or an error
 * of inner; its end of stream sets inner_eof and returns NBIO_ACTIVE. */
long nbio__msgin_fill(nbio__msgin *m, nbio_session *inner);

/* What a session plugs into nbio__msgin_read(). */
typedef struct nbio__msgin_ops {
    /* One step on what is buffered: 1 (out filled), 0 (more bytes needed),
     * or an error. */
    int (*examine)(nbio_session *s, void *out);
    /* Nothing to hand out and the byte session ended: 1 to examine again
     * (a body that ends with the stream), or the error to report. */
    int (*at_eof)(nbio_session *s);
    /* May be NULL: true when the session reads no more messages. */
    bool (*done)(const nbio_session *s);
    /* May be NULL: bytes arrived into an empty buffer (a message began). */
    void (*began)(nbio_session *s);
} nbio__msgin_ops;

/* The read loop of the HTTP sessions: examines what is buffered; when
 * nothing can be handed out, sends the session's queued output first (a
 * burst of answers or requests leaves in one send), then reports the end
 * of the stream or reads more. *examine is set when bytes wait unexamined
 * after a hand-out; *got_any (may be NULL) when bytes arrived. Returns
 * NBIO_DATA, NBIO_ACTIVE, NBIO_IDLE, or an error. */
int nbio__msgin_read(nbio__msgin *m, nbio_session *s, nbio__bytes *queued,
                     const nbio__msgin_ops *ops, void *out, bool *examine, bool *got_any);

/* The byte session ended inside a message: fails s with NBIO_ETRUNCATED
 * naming what ("request", "response") and, in a body, how far it got. */
int nbio__msgin_truncated(nbio__msgin *m, nbio_session *s, const char *what, bool in_body);

/* True when bytes wait that no read looked at. */
static inline bool nbio__msgin_pending(const nbio__msgin *m)
{
    return m->in.len > m->handed;
}

#endif
