/* postbusctl-map.c: "map build FILE" compiles a text table into FILE.gdbm (and checks a regexp:, pcre:,
 * cidr: or texthash: file, which needs no database); "map query TABLE KEY" looks a key up in any type as the
 * roles do, and exits as postmap -q does (0 found, 1 not found, 2 error). */
#include <limits.h>

#include "log.h"
#include "postbusctl.h"
#include "table.h"

#define QUERY_NOT_FOUND 1
#define QUERY_ERROR 2

/* "gdbm:/path" and "hash:/path" name the text file /path, as for postmap; another type is an error. */
static int source_path(const char *arg, const char **ret) {
        const char *colon = strchr(arg, ':'), *slash = strchr(arg, '/');

        if (!colon || (slash && slash < colon)) {
                *ret = arg;
                return 0;
        }
        if (strncmp(arg, "gdbm:", 5) == 0 || strncmp(arg, "hash:", 5) == 0) {
                *ret = colon + 1;
                return isempty(*ret) ? -EINVAL : 0;
        }
        return -EPROTONOSUPPORT;
}

static int table_spec(const char *arg, char **ret);

static int map_build(const char *arg) {
        TableFormat format = arg_aliases ? TABLE_FORMAT_ALIASES : TABLE_FORMAT_MAP;
        const char *source;
        int r;

        r = source_path(arg, &source);
        if (r == -EPROTONOSUPPORT) {
                /* regexp:, pcre:, cidr:, texthash:, ... have no database: their text is read as it is. Checking
                 * it here tells the administrator of a mistake before a role does. */
                _cleanup_(table_freep) Table *t = NULL;
                _cleanup_free_ char *spec = NULL;

                r = table_spec(arg, &spec);
                if (r < 0) {
                        log_error_errno(r, "Failed to resolve %s: %m", arg);
                        return EX_USAGE;
                }
                r = table_open(spec, &t);
                if (r < 0)
                        return r == -EPROTONOSUPPORT ? EX_USAGE : EX_DATAERR;     /* table_open() said why */
                printf("%s: no database to build; the roles read this table as it is.\n", spec);
                return 0;
        }
        if (r < 0) {
                _cleanup_free_ char *e = log_escape(arg, strlen(arg));
                log_error("Cannot build \"%s\": %s.", strna(e),
                          r == -EPROTONOSUPPORT ? "unsupported table type (gdbm: or hash: expected)" : "no file name");
                return EX_USAGE;
        }
        r = table_build(source, format);
        if (r < 0)
                return exit_status_from_errno(r);     /* table_build() said what and where */
        printf("%s%s: %i %s\n", source, TABLE_DB_SUFFIX, r,
               format == TABLE_FORMAT_ALIASES ? (r == 1 ? "alias" : "aliases") : (r == 1 ? "entry" : "entries"));
        return 0;
}

/* A plain relative path names a file below the working directory; table_open() wants it absolute. */
static int table_spec(const char *arg, char **ret) {
        char cwd[PATH_MAX];

        static const char *const file_types[] = { "gdbm:", "hash:", "regexp:", "pcre:", "cidr:", "texthash:" };
        const char *path = arg;
        size_t type_len = 0;

        /* "type:relative/path" of a file-based type is taken below the working directory, too. */
        for (size_t i = 0; i < ELEMENTSOF(file_types); i++)
                if (strncmp(arg, file_types[i], strlen(file_types[i])) == 0)
                        type_len = strlen(file_types[i]);
        path = arg + type_len;
        if (path[0] == '/' || path[0] == '\0' || (type_len == 0 && strchr(arg, ':'))) {
                *ret = strdup(arg);
                return *ret ? 0 : -ENOMEM;
        }
        if (!getcwd(cwd, sizeof cwd))
                return -errno;
        if (asprintf(ret, "%.*s%s/%s", (int) type_len, arg, streq(cwd, "/") ? "" : cwd, path) < 0) {
                *ret = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* Prints "key<TAB>value" for each key read from stdin that the table holds (as postmap -q - does), and
 * flushes after each, so that a long-lived caller can converse through a pipe. Returns 0 at the end of
 * the input, or QUERY_ERROR. */
static int map_query_stdin(Table *t) {
        char line[TABLE_KEY_MAX + 2];

        while (fgets(line, sizeof line, stdin)) {
                _cleanup_free_ char *value = NULL;
                size_t len = strlen(line);
                int r;

                if (len > 0 && line[len - 1] == '\n')
                        line[--len] = '\0';
                else if (!feof(stdin)) {
                        /* Longer than any key can be: not found; skip the rest of the line. */
                        int c;
                        while ((c = getchar()) != EOF && c != '\n')
                                ;
                        continue;
                }
                if (len > 0 && line[len - 1] == '\r')
                        line[--len] = '\0';
                r = table_lookup(t, line, &value);
                if (r < 0) {
                        _cleanup_free_ char *e = log_escape(line, len);
                        log_error_errno(r, "Failed to look \"%s\" up in %s: %m", strna(e), table_name(t));
                        return QUERY_ERROR;
                }
                if (r > 0 && printf("%s\t%s\n", line, value) < 0)
                        return QUERY_ERROR;
                if (fflush(stdout) != 0)
                        return QUERY_ERROR;
        }
        if (ferror(stdin)) {
                log_error("Failed to read keys from standard input.");
                return QUERY_ERROR;
        }
        return 0;
}

static int map_query(const char *arg, const char *key) {
        _cleanup_(table_freep) Table *t = NULL;
        _cleanup_free_ char *spec = NULL, *value = NULL, *ekey = NULL;
        int r;

        r = table_spec(arg, &spec);
        if (r < 0) {
                log_error_errno(r, "Failed to resolve %s: %m", arg);
                return QUERY_ERROR;
        }
        r = table_open(spec, &t);
        if (r < 0)
                return QUERY_ERROR;     /* table_open() said why */

        if (streq(key, "-"))
                return map_query_stdin(t);

        ekey = log_escape(key, strlen(key));
        r = table_lookup(t, key, &value);
        if (r < 0) {
                if (r == -ENOENT && table_db_path(t))
                        log_error("Failed to look \"%s\" up in %s: %s does not exist (run \"postbusctl map build\").",
                                  strna(ekey), table_name(t), table_db_path(t));
                else if (r == -ENOENT)
                        log_error("Failed to look \"%s\" up in %s: the file does not exist.", strna(ekey),
                                  table_name(t));
                else if (r == -EBADMSG && !table_db_path(t))
                        log_error("Failed to look \"%s\" up in %s: the file has a mistake (see above).",
                                  strna(ekey), table_name(t));
                else if (r == -EBADMSG)
                        log_error("Failed to look \"%s\" up in %s: %s is not a valid database.", strna(ekey),
                                  table_name(t), table_db_path(t));
                else
                        log_error_errno(r, "Failed to look \"%s\" up in %s: %m", strna(ekey), table_name(t));
                return QUERY_ERROR;
        }
        if (r == 0) {
                log_error("\"%s\" not found in %s.", strna(ekey), table_name(t));
                return QUERY_NOT_FOUND;
        }
        if (printf("%s\n", value) < 0 || fflush(stdout) != 0)
                return QUERY_ERROR;
        return 0;
}

int verb_map(int argc, char **argv) {
        if (streq(argv[1], "build")) {
                if (argc != 3) {
                        log_error("Usage: postbusctl [--aliases] map build FILE");
                        return EX_USAGE;
                }
                return map_build(argv[2]);
        }
        if (streq(argv[1], "query")) {
                if (argc != 4) {
                        log_error("Usage: postbusctl map query TABLE KEY");
                        return EX_USAGE;
                }
                if (arg_aliases)
                        log_warning("--aliases only matters for map build, ignoring.");
                return map_query(argv[2], argv[3]);
        }
        {
                _cleanup_free_ char *e = log_escape(argv[1], strlen(argv[1]));
                log_error("Unknown map command \"%s\": build or query (see --help).", strna(e));
        }
        return EX_USAGE;
}
