/*
 * Mock and memory byte sessions, for tests and in-process plumbing.
 *
 * A mock session is a scripted byte transport: the test feeds its input,
 * scripts what each read and write does (N bytes, would-block, EOF, an
 * error) and inspects everything written to it. A memory pair is two
 * connected byte sessions in one process. Neither has a file descriptor.
 * Both implement every byte-session fast path, so message layers (framing,
 * TLS) run over them unchanged.
 */
#ifndef NBIO_MOCK_H
#define NBIO_MOCK_H

#include "nbio/nbio.h"

#ifdef __cplusplus
extern "C" {
#endif

/** What one scripted read or write does. */
typedef enum nbio_mock_action {
    NBIO_MOCK_BYTES = 0,    /**< deliver / accept at most n bytes (n > 0) */
    NBIO_MOCK_WOULDBLOCK,   /**< nothing happens: read idle, write pending */
    NBIO_MOCK_EOF,          /**< read: end of stream from the peer */
    NBIO_MOCK_ERROR         /**< fail with `error` (negative) */
} nbio_mock_action;

typedef struct nbio_mock_step {
    nbio_mock_action action;
    size_t n;
    int error;
} nbio_mock_step;

/** Unscripted behaviour of a mock session. Zero means "unlimited". */
typedef struct nbio_mock_options {
    size_t read_chunk;   /**< max bytes per read when no step is scripted (0: all) */
    size_t write_chunk;  /**< max bytes per write when no step is scripted (0: all) */
    size_t write_limit;  /**< max bytes kept unread in the output log (0: no limit) */
    int establish_after; /**< drive calls before it is established (0: at once) */
} nbio_mock_options;

/**
 * Creates a mock byte session. opt may be NULL (everything unlimited,
 * established at once). Returns NULL when out of memory. Freed by nbio_free().
 */
NBIO_API nbio_session *nbio_mock_new(const nbio_mock_options *opt);

/** Appends len bytes to what the session will read. Returns 0 or NBIO_ENOMEM. */
NBIO_API int nbio_mock_feed(nbio_session *mock, const void *data, size_t len);

/** Marks the end of the input: once every fed byte was read, reads return
 *  NBIO_EPEERCLOSED. */
NBIO_API void nbio_mock_feed_eof(nbio_session *mock);

/** Appends steps to the read script; each read consumes one step, and
 *  unscripted reads follow the options. Returns 0 or NBIO_ENOMEM. */
NBIO_API int nbio_mock_script_read(nbio_session *mock, const nbio_mock_step *steps, size_t n);

/** Appends steps to the write script (NBIO_MOCK_EOF acts as EPIPE). */
NBIO_API int nbio_mock_script_write(nbio_session *mock, const nbio_mock_step *steps, size_t n);

/**
 * Returns the bytes written to the session and not yet consumed; *len gets
 * their count. Valid until the next call on the mock.
 */
NBIO_API const void *nbio_mock_output(const nbio_session *mock, size_t *len);

/** Drops the first n bytes of the output log (n larger: all of it). */
NBIO_API void nbio_mock_consume_output(nbio_session *mock, size_t n);

/** Returns how many times the goodbye (shutdown of the write side) was sent. */
NBIO_API int nbio_mock_goodbyes(const nbio_session *mock);

/** Options of a memory pair. */
typedef struct nbio_pair_options {
    size_t capacity;   /**< bytes buffered per direction (default 65536) */
    size_t max_read;   /**< max bytes per read (0: no limit) */
    size_t max_write;  /**< max bytes accepted per write (0: no limit) */
} nbio_pair_options;

/**
 * Creates two connected byte sessions: bytes written to *a are read from *b
 * and the other way round. A write beyond the free capacity is pending.
 * Shutting down one side gives the other NBIO_EPEERCLOSED after the last
 * byte; freeing one side gives the other NBIO_ECONNRESET on its next call
 * (or NBIO_EPEERCLOSED when it was shut down first). Single-threaded.
 * Returns 0, or NBIO_ENOMEM (nothing is created). opt may be NULL.
 */
NBIO_API int nbio_pair_new(nbio_session **a, nbio_session **b, const nbio_pair_options *opt);

#ifdef __cplusplus
}
#endif

#endif /* NBIO_MOCK_H */
