/*
 * Shared body of the framing fuzz harnesses (fuzz_frame_<strategy>.c).
 *
 * fuzz_frame_run() interprets one fuzz input against a built-in framing
 * strategy and abort()s when an invariant breaks:
 *
 * 1. Decoding: the input's tail is the byte stream a peer sent, then EOF.
 *    It is read through a mock session (chunk sizes and would-blocks
 *    scripted from input bytes) wrapped in a framing session with a small
 *    max_frame. Every payload must be exactly what an independent reference
 *    decoder finds, never longer than max_frame, and the session must end
 *    with the reference's error (NBIO_EPEERCLOSED, NBIO_ETRUNCATED or
 *    NBIO_ETOOLARGE; or the scripted transport error), then stay terminated.
 * 2. Round trip: payloads cut from the input are written through a framing
 *    session into a mock that accepts few bytes at a time (pending writes
 *    are resubmitted), flushed and closed. The bytes on the wire must be the
 *    reference encoding, and reading them back through another framing
 *    session must give the same payloads, then NBIO_EPEERCLOSED.
 */
#ifndef NBIO_FUZZ_FRAME_COMMON_H
#define NBIO_FUZZ_FRAME_COMMON_H

#include <stddef.h>
#include <stdint.h>

#include "nbio/frame.h"

/* The libFuzzer entry point, defined by each harness. */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Runs both properties on one input; returns 0 (libFuzzer's convention). */
int fuzz_frame_run(const nbio_frame_strategy *st, const uint8_t *data, size_t size);

#endif
