/* fuzz.h: what every fuzz target shares: the libFuzzer entry point, a check that holds in any build, and a
 * sink that collects what a content walk hands out. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* Not assert(): it must not vanish under NDEBUG, and a failure must crash for libFuzzer to see it. */
#define CHECK(x)                        \
        do {                            \
                if (!(x))               \
                        abort();        \
        } while (0)

typedef struct FuzzSink {
        char *buf;
        size_t len;
} FuzzSink;

/* A content walk's callback (RecordDataFunc): appends the piece to the FuzzSink userdata. */
static inline int fuzz_sink(const char *data, size_t len, void *userdata) {
        FuzzSink *s = userdata;
        char *n = realloc(s->buf, s->len + len);

        CHECK(n);
        memcpy(n + s->len, data, len);
        s->buf = n;
        s->len += len;
        return 0;
}

static inline bool streq_null(const char *a, const char *b) {
        return (!a && !b) || (a && b && strcmp(a, b) == 0);
}
