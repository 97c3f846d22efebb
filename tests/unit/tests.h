/* tests.h: the small assertion macros of the unit tests. */
#pragma once

#undef NDEBUG
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define ASSERT_TRUE(expr)                                                                       \
        do {                                                                                    \
                if (!(expr)) {                                                                  \
                        fprintf(stderr, "%s:%d: assertion failed: %s\n", __FILE__, __LINE__, #expr); \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define ASSERT_EQ(a, b)                                                                         \
        do {                                                                                    \
                long long _a = (long long) (a), _b = (long long) (b);                           \
                if (_a != _b) {                                                                 \
                        fprintf(stderr, "%s:%d: %s == %s failed: %lld != %lld\n", __FILE__, __LINE__, \
                                #a, #b, _a, _b);                                                \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define ASSERT_STREQ(a, b)                                                                      \
        do {                                                                                    \
                const char *_a = (a), *_b = (b);                                                \
                if (!_a || !_b || strcmp(_a, _b) != 0) {                                        \
                        fprintf(stderr, "%s:%d: %s == %s failed: \"%s\" != \"%s\"\n", __FILE__,   \
                                __LINE__, #a, #b, _a ? _a : "(null)", _b ? _b : "(null)");      \
                        abort();                                                                \
                }                                                                               \
        } while (0)

#define ASSERT_OK(expr) ASSERT_TRUE((expr) >= 0)
#define ASSERT_ERR(expr, err) ASSERT_EQ((expr), -(err))

#define TEST(name) static void test_##name(void)
#define RUN(name)                                                                               \
        do {                                                                                    \
                fprintf(stderr, "  %s\n", #name);                                               \
                test_##name();                                                                  \
        } while (0)
