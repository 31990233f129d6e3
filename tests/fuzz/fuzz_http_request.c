/* libFuzzer harness: HTTP request heads (nbio__http_parse_request) and
 * their body framing. See fuzz_http_head.h for the properties checked. */
#include "fuzz_http_head.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return fz_head(true, data, size);
}
