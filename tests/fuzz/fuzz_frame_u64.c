/* libFuzzer harness: the u64 framing strategy (nbio_frame_u64le).
 * See fuzz_frame_common.h for the properties checked. */
#include "fuzz_frame_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_frame_run(&nbio_frame_u64le, data, size);
}
