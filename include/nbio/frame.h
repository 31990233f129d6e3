/*
 * Framing: a message session over any byte session.
 *
 * Each nbio_write() sends one frame; each NBIO_DATA from nbio_read() is
 * exactly one frame's payload, pointing into the session's read buffer
 * (zero-copy). How frames look on the wire is a pluggable strategy.
 *
 * Writes are coalesced: a frame that fits the write buffer is copied there
 * whole (NBIO_DONE) or not at all (NBIO_PENDING, buf untouched), and goes out
 * on the next drive/read/flush/close, or as soon as the buffer fills. A frame
 * larger than the write buffer is streamed from the caller's memory: the
 * result may be NBIO_PENDING with buf advanced, and then only the rest of
 * that frame may be written next. Frames never interleave.
 */
#ifndef NBIO_FRAME_H
#define NBIO_FRAME_H

#include <stdbool.h>

#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** Where a decoded frame lies in the bytes the strategy was shown. */
typedef struct nbio_frame_info {
    size_t frame_len;   /**< header + payload + trailer: bytes to consume */
    size_t payload_off; /**< payload starts here */
    size_t payload_len; /**< payload length */
    size_t need;        /**< when incomplete: total bytes needed, if known (else 0) */
} nbio_frame_info;

/**
 * A framing strategy: a small vtable users can implement.
 * - decode: looks at len buffered bytes. Returns 1 with *info filled when a
 *   whole frame is buffered; 0 when more bytes are needed (info->need set
 *   when the frame's size is known); NBIO_ETOOLARGE when the frame would
 *   exceed max_payload (decide this from the header, before the payload
 *   arrives); NBIO_EPROTOCOL for malformed input. `scanned` is a count of
 *   leading bytes this strategy already examined without finding a frame
 *   end (0 on a new frame), which delimiter scanners may skip. eof is true
 *   when no more bytes will come (close-delimited frames may end there).
 * - encode: writes the header for a payload of payload_len bytes into hdr
 *   (at most max_header bytes) and the trailer into trl (at most
 *   max_trailer bytes); returns 0 or a negative error (e.g. NBIO_EINVAL for
 *   a payload the format cannot carry).
 */
typedef struct nbio_frame_strategy {
    const char *name;
    size_t max_header;
    size_t max_trailer;
    int (*decode)(const struct nbio_frame_strategy *st, const unsigned char *buf, size_t len,
                  size_t scanned, bool eof, size_t max_payload, nbio_frame_info *info);
    int (*encode)(const struct nbio_frame_strategy *st, const void *payload, size_t payload_len,
                  unsigned char *hdr, size_t *hdr_len, unsigned char *trl, size_t *trl_len);
    void *user; /**< for the strategy's own use */
} nbio_frame_strategy;

/** u64 little-endian length prefix (wire-compatible with nbio's U64FramingStrategy). */
NBIO_API extern const nbio_frame_strategy nbio_frame_u64le;
/** u32 big-endian length prefix. */
NBIO_API extern const nbio_frame_strategy nbio_frame_u32be;
/** u16 big-endian length prefix (payloads up to 65535 bytes). */
NBIO_API extern const nbio_frame_strategy nbio_frame_u16be;
/** Newline-delimited: the payload is the line without its '\n'; a payload
 *  containing '\n' is rejected on write with NBIO_EINVAL. */
NBIO_API extern const nbio_frame_strategy nbio_frame_line;

/** Returns the built-in strategy called name ("u64", "u32", "u16", "line"),
 *  or NULL. */
NBIO_API const nbio_frame_strategy *nbio_frame_strategy_named(const char *name);

/** Options of a framing session. Start from nbio_frame_options_init(). */
typedef struct nbio_frame_options {
    size_t max_frame;         /**< max payload bytes, read and write (default 64 MiB) */
    size_t read_buffer_size;  /**< initial read buffer (default 65536); grows up to
                                   max_frame + header for a large frame */
    size_t write_buffer_size; /**< write coalescing buffer (default 65536, min 64) */
    bool release_buffers;     /**< free both buffers whenever they are empty (default
                                   false). Both are allocated on first use anyway; with
                                   this an idle session holds no buffer at all, at the
                                   price of allocations on each burst. */
} nbio_frame_options;

/** Fills o with the defaults. */
NBIO_API void nbio_frame_options_init(nbio_frame_options *o);

/**
 * Wraps the byte session inner in a framing session using strategy st
 * (which must outlive the session). Takes ownership of inner, also when this
 * fails. Returns NULL only when inner is NULL or memory runs out (inner is
 * then freed). opt may be NULL. The new session's status follows inner's.
 * Read errors: NBIO_ETOOLARGE (a length header over max_frame, reported
 * before anything is allocated), NBIO_ETRUNCATED (end of stream inside a
 * frame), NBIO_EPEERCLOSED (clean end between frames), NBIO_EPROTOCOL.
 * Write errors: NBIO_ETOOLARGE (payload over max_frame, or over what the
 * length prefix can express), NBIO_EINVAL (a payload the strategy cannot
 * carry, e.g. a newline in a line frame), NBIO_EUSAGE (after a streamed
 * frame went pending, something other than its rest was written, or the
 * session was closed before its rest). Like every error, they end the
 * session; nothing of a rejected frame reached the wire.
 * A NULL or malformed strategy gives a session terminated with NBIO_EINVAL.
 */
NBIO_API nbio_session *nbio_frame_new(nbio_session *inner, const nbio_frame_strategy *st,
                                      const nbio_frame_options *opt);

/** Returns the session a framing session wraps (still owned by it). */
NBIO_API nbio_session *nbio_frame_inner(const nbio_session *frame);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_FRAME_H */
