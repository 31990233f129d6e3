/* Internal: the byte session handed over after an HTTP Upgrade. */
#ifndef NBIO__HTTP_HANDOFF_H
#define NBIO__HTTP_HANDOFF_H

#include <stddef.h>

#include "nbio/nbio.h"

/* Wraps inner (owned, also on failure): reads hand out in[0, in_len) first,
 * writes send out[0, out_len) first; both are copied. Returns NULL when out
 * of memory. */
nbio_session *nbio__handoff_new(nbio_session *inner, const void *in, size_t in_len,
                                const void *out, size_t out_len);

#endif
