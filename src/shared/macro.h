/* macro.h: ownership helpers (_cleanup_*, TAKE_PTR, TAKE_FD) and small utility macros used everywhere. */
#pragma once

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define _cleanup_(f) __attribute__((cleanup(f)))
#define _unused_ __attribute__((unused))
#define _printf_(a, b) __attribute__((format(printf, a, b)))
#define _sentinel_ __attribute__((sentinel))
#define _likely_(x) (__builtin_expect(!!(x), 1))
#define _unlikely_(x) (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x) (sizeof(x) / sizeof((x)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define STRLEN(s) (sizeof(s) - 1)
#define SWAP_TWO(x, y)                                  \
        do {                                            \
                typeof(x) _swap_tmp = (x);              \
                (x) = (y);                              \
                (y) = _swap_tmp;                        \
        } while (0)

#define streq(a, b) (strcmp((a), (b)) == 0)
#define strcaseeq(a, b) (strcasecmp((a), (b)) == 0)
#define isempty(s) (!(s) || (s)[0] == '\0')
#define strna(s) ((s) ? (s) : "n/a")
#define strempty(s) ((s) ? (s) : "")

/* Hand ownership out of a cleanup-guarded variable. */
#define TAKE_PTR(p)                                     \
        ({                                              \
                typeof(p) _take_tmp = (p);              \
                (p) = NULL;                             \
                _take_tmp;                              \
        })
#define TAKE_FD(fd)                                     \
        ({                                              \
                int _take_fd = (fd);                    \
                (fd) = -EBADF;                          \
                _take_fd;                               \
        })

static inline void freep(void *p) {
        free(*(void **) p);
}
#define _cleanup_free_ _cleanup_(freep)

static inline void *mfree(void *p) {
        free(p);
        return NULL;
}

static inline int safe_close(int fd) {
        if (fd >= 0) {
                int saved = errno;
                (void) close(fd);
                errno = saved;
        }
        return -EBADF;
}
static inline void closep(int *fd) {
        *fd = safe_close(*fd);
}
#define _cleanup_close_ _cleanup_(closep)

static inline void fclosep(FILE **f) {
        if (*f)
                (void) fclose(*f);
}
#define _cleanup_fclose_ _cleanup_(fclosep)

/* Free every string of a NULL-terminated vector, then the vector. */
static inline char **strv_free(char **l) {
        if (l)
                for (char **i = l; *i; i++)
                        free(*i);
        free(l);
        return NULL;
}
static inline void strv_freep(char ***l) {
        *l = strv_free(*l);
}
#define _cleanup_strv_free_ _cleanup_(strv_freep)

#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)         \
        static inline void func##p(type *p) {           \
                if (*p)                                 \
                        func(*p);                       \
        }

#define NEGATIVE_ERRNO(e) ((e) > 0 ? -(e) : (e))
