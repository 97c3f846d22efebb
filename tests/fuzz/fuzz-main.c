/* fuzz-main.c: runs a fuzz target without libFuzzer, so that its corpus is a regression test with any
 * compiler: each argument is a file or a directory of files, each fed once to LLVMFuzzerTestOneInput().
 * No input at all is a failure, so that a lost corpus does not pass unnoticed. */
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "fuzz.h"
#include "macro.h"

static int run_file(int dir_fd, const char *path) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ uint8_t *buf = NULL;
        struct stat st;
        size_t n = 0;

        fd = openat(dir_fd, path, O_RDONLY | O_CLOEXEC);
        if (fd < 0 || fstat(fd, &st) < 0) {
                int r = -errno;
                fprintf(stderr, "%s: %s\n", path, strerror(-r));
                return r;
        }
        /* One more byte than the size, so that a read of exactly size bytes is not mistaken for empty. */
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        while (n < (size_t) st.st_size) {
                ssize_t k = read(fd, buf + n, (size_t) st.st_size - n);
                if (k <= 0) {
                        fprintf(stderr, "%s: short read\n", path);
                        return -EIO;
                }
                n += (size_t) k;
        }
        LLVMFuzzerTestOneInput(buf, n);
        return 0;
}

int main(int argc, char **argv) {
        unsigned count = 0;

        for (int i = 1; i < argc; i++) {
                _cleanup_close_ int dir_fd = open(argv[i], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                DIR *d;

                if (dir_fd < 0) {
                        if (run_file(AT_FDCWD, argv[i]) < 0)
                                return EXIT_FAILURE;
                        count++;
                        continue;
                }
                d = fdopendir(dir_fd);
                if (!d)
                        return EXIT_FAILURE;
                TAKE_FD(dir_fd);
                for (struct dirent *de; (de = readdir(d));) {
                        if (de->d_name[0] == '.')
                                continue;
                        fprintf(stderr, "  %s\n", de->d_name);
                        if (run_file(dirfd(d), de->d_name) < 0) {
                                closedir(d);
                                return EXIT_FAILURE;
                        }
                        count++;
                }
                closedir(d);
        }
        if (count == 0) {
                fprintf(stderr, "No inputs.\n");
                return EXIT_FAILURE;
        }
        fprintf(stderr, "%u inputs, no crash.\n", count);
        return EXIT_SUCCESS;
}
