/* table-gdbm.c: gdbm: (and hash:) tables: Postfix-format text compiled into GDBM files by `postbusctl map
 * build` or newaliases, and lookups in them that follow a database replaced under a running process. */
#include <assert.h>
#include <fcntl.h>
#include <gdbm.h>
#include <limits.h>
#include <sys/stat.h>

#include "io-util.h"
#include "log.h"
#include "table-internal.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n' || c == '\v' || c == '\f';
}

static char ascii_lower(char c) {
        return c >= 'A' && c <= 'Z' ? (char) (c - 'A' + 'a') : c;
}

/* GDBM reports its own error codes; callers of this module see negative errno values. */
static int gdbm_error_to_errno(gdbm_error e, int syserr) {
        switch (e) {
        case GDBM_MALLOC_ERROR:
                return -ENOMEM;
        case GDBM_FILE_OPEN_ERROR:
        case GDBM_FILE_WRITE_ERROR:
        case GDBM_FILE_SEEK_ERROR:
        case GDBM_FILE_READ_ERROR:
        case GDBM_FILE_STAT_ERROR:
        case GDBM_FILE_CLOSE_ERROR:
        case GDBM_FILE_SYNC_ERROR:
        case GDBM_FILE_TRUNCATE_ERROR:
                return syserr > 0 ? -syserr : -EIO;
        case GDBM_BAD_MAGIC_NUMBER:
        case GDBM_EMPTY_DATABASE:
        case GDBM_BYTE_SWAPPED:
        case GDBM_BAD_FILE_OFFSET:
        case GDBM_FILE_EOF:
        case GDBM_NEED_RECOVERY:
        case GDBM_DIR_OVERFLOW:
        case GDBM_BAD_BUCKET:
        case GDBM_BAD_HEADER:
        case GDBM_BAD_AVAIL:
        case GDBM_BAD_HASH_TABLE:
        case GDBM_BAD_DIR_ENTRY:
        case GDBM_BUCKET_CACHE_CORRUPTED:
        case GDBM_BAD_HASH_ENTRY:
        case GDBM_MALFORMED_DATA:
                return -EBADMSG;
        default:
                return -EIO;
        }
}

/* ---- reading tables ---- */

static int gdbm_table_open(Table *t) {
        const char *path = t->arg;

        if (path[0] != '/' || path[strlen(path) - 1] == '/' || strlen(path) > PATH_MAX - sizeof(TABLE_DB_SUFFIX)) {
                _cleanup_free_ char *e = log_escape(t->spec, strlen(t->spec));
                log_error("Table \"%s\" does not name an absolute file path.", strna(e));
                return -EINVAL;
        }
        if (asprintf(&t->db_path, "%s" TABLE_DB_SUFFIX, path) < 0) {
                t->db_path = NULL;
                return -ENOMEM;
        }
        return 0;
}

static void table_close_db(Table *t) {
        if (t->data)
                (void) gdbm_close(t->data);
        t->data = NULL;
}

static void gdbm_table_free_data(void *data) {
        if (data)
                (void) gdbm_close(data);
}

/* Opens the database, or reopens it when the file at its path is no longer the one open. The
 * builder replaces databases only by rename(), so a reader needs no lock: the file it has open is
 * never written again. */
static int table_refresh(Table *t) {
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        GDBM_FILE db;

        if (stat(t->db_path, &st) < 0) {
                table_close_db(t);
                return -errno;
        }
        if (t->data && st.st_dev == t->dev && st.st_ino == t->ino && st.st_mtim.tv_sec == t->mtim.tv_sec &&
            st.st_mtim.tv_nsec == t->mtim.tv_nsec)
                return 0;

        table_close_db(t);
        fd = open(t->db_path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
        if (fd < 0)
                return -errno;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;

        errno = 0;
        db = gdbm_fd_open(TAKE_FD(fd), t->db_path, 0, GDBM_READER | GDBM_NOLOCK | GDBM_CLOEXEC | GDBM_CLOERROR,
                          NULL);
        if (!db) {
                int r = gdbm_error_to_errno(gdbm_errno, errno);
                log_debug("Failed to open %s: %s", t->db_path, gdbm_strerror(gdbm_errno));
                return r;
        }
        t->data = db;
        t->dev = st.st_dev;
        t->ino = st.st_ino;
        t->mtim = st.st_mtim;
        return 0;
}

static int gdbm_table_lookup(Table *t, const char *key, char **ret_value) {
        char buf[TABLE_KEY_MAX];
        size_t len;
        datum k, v;
        int r;

        assert(t);
        assert(key);

        len = strnlen(key, TABLE_KEY_MAX + 1);
        r = table_refresh(t);
        if (r < 0)
                return r;
        if (len == 0 || len > TABLE_KEY_MAX)    /* the builder stores no such key */
                return 0;

        for (size_t i = 0; i < len; i++)
                buf[i] = ascii_lower(key[i]);
        k = (datum) { .dptr = buf, .dsize = (int) len };
        v = gdbm_fetch(t->data, k);
        if (!v.dptr) {
                gdbm_error e = gdbm_last_errno(t->data);
                if (e == GDBM_ITEM_NOT_FOUND || e == GDBM_NO_ERROR)
                        return 0;
                log_debug("Failed to look up in %s: %s", t->db_path, gdbm_db_strerror(t->data));
                r = gdbm_error_to_errno(e, gdbm_last_syserr(t->data));
                gdbm_clear_error(t->data);
                /* A damaged file stays damaged: open it afresh next time, in case it was repaired. */
                table_close_db(t);
                return r;
        }
        if (v.dsize < 0 || memchr(v.dptr, 0, (size_t) v.dsize)) {
                free(v.dptr);
                return -EBADMSG;
        }
        if (ret_value) {
                char *s = malloc((size_t) v.dsize + 1);
                if (!s) {
                        free(v.dptr);
                        return -ENOMEM;
                }
                memcpy(s, v.dptr, (size_t) v.dsize);
                s[v.dsize] = '\0';
                *ret_value = s;
        }
        free(v.dptr);
        return 1;
}

const TableType table_type_gdbm = {
        .name = "gdbm",
        .open = gdbm_table_open,
        .lookup = gdbm_table_lookup,
        .free_data = gdbm_table_free_data,
};

/* ---- building tables ---- */

/* Reads one physical line into buf (size TABLE_LINE_MAX + 1), without its LF or CRLF. 0 at the end
 * of the file, 1 for a line, -E2BIG for an overlong line, -EBADMSG for a NUL byte. */
static int read_physical_line(FILE *f, char *buf, size_t *ret_len) {
        size_t n = 0;
        int c;

        for (;;) {
                c = getc_unlocked(f);
                if (c == EOF) {
                        if (ferror(f))
                                return -EIO;
                        if (n == 0)
                                return 0;
                        break;
                }
                if (c == '\n')
                        break;
                if (c == '\0')
                        return -EBADMSG;
                if (n >= TABLE_LINE_MAX)
                        return -E2BIG;
                buf[n++] = (char) c;
        }
        if (n > 0 && buf[n - 1] == '\r')
                n--;
        buf[n] = '\0';
        *ret_len = n;
        return 1;
}

typedef struct TableBuilder {
        const char *source;
        TableFormat format;
        GDBM_FILE db;
        unsigned entries;
} TableBuilder;

static int builder_add(TableBuilder *b, const char *line, unsigned lineno) {
        _cleanup_free_ char *key = NULL, *value = NULL;
        datum k, v;
        int r;

        r = table_parse_line(line, b->format, &key, &value);
        switch (r) {
        case 0:
                break;
        case -ENOMEM:
                return log_oom();
        case -ENAMETOOLONG:
                return log_error_errno(r, "%s:%u: key longer than %u bytes.", b->source, lineno, TABLE_KEY_MAX);
        case -E2BIG:
                return log_error_errno(r, "%s:%u: logical line longer than %u bytes.", b->source, lineno,
                                       TABLE_LINE_MAX);
        default:
                return log_error_errno(r, "%s:%u: expected format: %s.", b->source, lineno,
                                       b->format == TABLE_FORMAT_MAP ? "key whitespace value" : "name: value");
        }

        k = (datum) { .dptr = key, .dsize = (int) strlen(key) };
        v = (datum) { .dptr = value, .dsize = (int) strlen(value) };
        r = gdbm_store(b->db, k, v, GDBM_INSERT);
        if (r == 1) {
                _cleanup_free_ char *e = log_escape(key, strlen(key));
                log_warning("%s:%u: duplicate entry \"%s\", the last one wins.", b->source, lineno, strna(e));
                r = gdbm_store(b->db, k, v, GDBM_REPLACE);
                if (r == 0)
                        return 0;
        }
        if (r != 0)
                return log_error_errno(gdbm_error_to_errno(gdbm_last_errno(b->db), gdbm_last_syserr(b->db)),
                                       "%s:%u: failed to store the entry: %s", b->source, lineno,
                                       gdbm_db_strerror(b->db));
        if (b->entries >= INT_MAX)
                return log_error_errno(E2BIG, "%s:%u: too many entries.", b->source, lineno);
        b->entries++;
        return 0;
}

/* Joins continuation lines into logical lines, skips comments and blank lines, and stores each. */
static int builder_read(TableBuilder *b, FILE *f) {
        _cleanup_free_ char *phys = NULL, *logical = NULL;
        size_t logical_len = 0, len;
        unsigned lineno = 0, logical_line = 0;
        int r;

        phys = malloc(TABLE_LINE_MAX + 1);
        logical = malloc(TABLE_LINE_MAX + 1);
        if (!phys || !logical)
                return log_oom();

        for (;;) {
                const char *p;

                r = read_physical_line(f, phys, &len);
                if (r < 0) {
                        if (r == -E2BIG)
                                return log_error_errno(r, "%s:%u: line longer than %u bytes.", b->source,
                                                       lineno + 1, TABLE_LINE_MAX);
                        if (r == -EBADMSG)
                                return log_error_errno(r, "%s:%u: NUL byte in line.", b->source, lineno + 1);
                        return log_error_errno(r, "Failed to read %s: %m", b->source);
                }
                if (r == 0)
                        break;
                lineno++;

                for (p = phys; is_blank(*p); p++)
                        ;
                if (*p == '\0' || *p == '#')    /* blank lines and comments end nothing */
                        continue;

                if (p != phys) {
                        size_t n = len - (size_t) (p - phys);
                        if (logical_line == 0)
                                return log_error_errno(EINVAL,
                                                       "%s:%u: continuation line (starting with white space) "
                                                       "without a line to continue.", b->source, lineno);
                        if (n + 1 > TABLE_LINE_MAX - logical_len)
                                return log_error_errno(E2BIG, "%s:%u: logical line longer than %u bytes.",
                                                       b->source, logical_line, TABLE_LINE_MAX);
                        logical[logical_len++] = ' ';
                        memcpy(logical + logical_len, p, n + 1);
                        logical_len += n;
                        continue;
                }

                if (logical_line > 0) {
                        r = builder_add(b, logical, logical_line);
                        if (r < 0)
                                return r;
                }
                memcpy(logical, phys, len + 1);
                logical_len = len;
                logical_line = lineno;
        }
        if (logical_line > 0)
                return builder_add(b, logical, logical_line);
        return 0;
}

int table_build(const char *source, TableFormat format) {
        _cleanup_free_ char *db_path = NULL, *tmp_path = NULL;
        _cleanup_fclose_ FILE *f = NULL;
        _cleanup_close_ int fd = -EBADF;
        TableBuilder b = { .source = source, .format = format };
        struct stat st;
        mode_t mode;
        int r;

        assert(source);
        assert(format >= 0 && format < _TABLE_FORMAT_MAX);

        f = fopen(source, "re");
        if (!f)
                return log_error_errno(errno, "Failed to open %s: %m", source);
        if (fstat(fileno(f), &st) < 0)
                return log_error_errno(errno, "Failed to stat %s: %m", source);
        if (!S_ISREG(st.st_mode))
                return log_error_errno(EINVAL, "%s is not a regular file.", source);
        mode = st.st_mode & 0666;
        if (mode == 0)
                mode = 0644;

        if (asprintf(&db_path, "%s" TABLE_DB_SUFFIX, source) < 0 ||
            asprintf(&tmp_path, "%s" TABLE_DB_SUFFIX ".tmp.%d", source, (int) getpid()) < 0) {
                db_path = tmp_path = NULL;
                return log_oom();
        }

        /* The name is ours by its PID; one left by a crashed earlier process with the same PID is junk. */
        fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0 && errno == EEXIST && unlink(tmp_path) >= 0)
                fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, mode);
        if (fd < 0)
                return log_error_errno(errno, "Failed to create %s: %m", tmp_path);

        if (fchmod(fd, mode) < 0) {
                r = log_error_errno(errno, "Failed to set the mode of %s: %m", tmp_path);
                goto fail;
        }
        if (geteuid() == 0 && (st.st_uid != 0 || st.st_gid != 0) && fchown(fd, st.st_uid, st.st_gid) < 0) {
                r = log_error_errno(errno, "Failed to set the owner of %s: %m", tmp_path);
                goto fail;
        }

        errno = 0;
        b.db = gdbm_fd_open(TAKE_FD(fd), tmp_path, 0, GDBM_NEWDB | GDBM_NOLOCK | GDBM_CLOEXEC | GDBM_CLOERROR,
                            NULL);
        if (!b.db) {
                r = log_error_errno(gdbm_error_to_errno(gdbm_errno, errno), "Failed to create database %s: %s",
                                    tmp_path, gdbm_strerror(gdbm_errno));
                goto fail;
        }

        r = builder_read(&b, f);
        if (r < 0)
                goto fail;

        if (gdbm_sync(b.db) != 0) {
                r = log_error_errno(gdbm_error_to_errno(gdbm_last_errno(b.db), gdbm_last_syserr(b.db)),
                                    "Failed to write %s: %s", tmp_path, gdbm_db_strerror(b.db));
                goto fail;
        }
        r = gdbm_close(b.db);
        b.db = NULL;
        if (r != 0) {
                r = log_error_errno(gdbm_error_to_errno(gdbm_errno, errno), "Failed to close %s: %s", tmp_path,
                                    gdbm_strerror(gdbm_errno));
                goto fail;
        }

        if (rename(tmp_path, db_path) < 0) {
                r = log_error_errno(errno, "Failed to rename %s to %s: %m", tmp_path, db_path);
                goto fail;
        }
        r = fsync_directory_of(db_path);
        if (r < 0)
                return log_error_errno(r, "Failed to sync the directory of %s: %m", db_path);
        return (int) b.entries;

fail:
        if (b.db)
                (void) gdbm_close(b.db);
        (void) unlink(tmp_path);
        return r;
}
