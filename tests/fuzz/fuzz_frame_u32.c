/* libFuzzer harness: the u32 framing strategy (nbio_frame_u32be).
 * See fuzz_frame_common.h for the properties checked. */
#include "fuzz_frame_common.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fuzz_frame_run(&nbio_frame_u32be, data, size);
}
