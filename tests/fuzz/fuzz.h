/* fuzz.h: what every fuzz target shares: the libFuzzer entry point, and a check that holds in any build. */
#pragma once

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): it must not vanish under NDEBUG, and a failure must crash for libFuzzer to see it. */
#define CHECK(x)                        \
        do {                            \
                if (!(x))               \
                        abort();        \
        } while (0)
