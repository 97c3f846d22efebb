/* postcat.c: Postfix's postcat command for postbus: prints queue files, the envelope (arrival time,
 * attributes, sender, recipients with their DSN options and whether they are done) and the message, in
 * Postfix's layout ("*** ENVELOPE RECORDS hold/ID ***", "sender: ...", "*** MESSAGE CONTENTS ... ***").
 * -q takes queue IDs and looks for them in the queues under $queue_directory (-c: the main.cf of another
 * directory); -e, -h and -b print only the envelope, the header or the body; -v prefixes each content line
 * with its record name, as Postfix's does. Without names, it reads the queue file on standard input
 * (redirected from the file: a pipe is refused, as the file is validated whole before it is printed).
 *
 * SECURITY: reads queue files with the rights of whoever runs it (root, in practice: the queue is postbus's
 * alone); it writes nothing. Every file is validated whole before anything of it is printed. */
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <sysexits.h>
#include <time.h>

#include "config.h"
#include "log.h"
#include "queue-file.h"
#include "queue-id.h"
#include "string-util.h"

typedef enum PostcatShow {
        SHOW_ENVELOPE = 1 << 0,
        SHOW_HEADER = 1 << 1,
        SHOW_BODY = 1 << 2,
} PostcatShow;

typedef struct PostcatOutput {
        PostcatShow show;
        bool verbose;
        bool in_header;         /* before the empty line that ends the header */
        bool line_start;
} PostcatOutput;

/* The queues that -q searches, in Postfix's order (then postbus's corrupt queue). */
static const QueueName search_order[] = {
        QUEUE_INCOMING, QUEUE_ACTIVE, QUEUE_DEFERRED, QUEUE_HOLD, QUEUE_CORRUPT,
};

static int usage(void) {
        fprintf(stderr, "usage: postcat [-behqv] [-c config_dir] [file or queue ID...]\n");
        return EX_USAGE;
}

static int fatal(int status, const char *fmt, ...) _printf_(2, 3);
static int fatal(int status, const char *fmt, ...) {
        int saved = errno;      /* for %m */
        va_list ap;

        fflush(stdout);
        errno = saved;
        fputs("postcat: fatal: ", stderr);
        va_start(ap, fmt);
        vfprintf(stderr, fmt, ap);
        va_end(ap);
        fputc('\n', stderr);
        return status;
}

/* Prints a piece of the content: the parts of its lines that -h and -b ask for. */
static int print_content(const char *data, size_t len, void *userdata) {
        PostcatOutput *o = userdata;

        while (len > 0) {
                const char *nl = memchr(data, '\n', len);
                size_t n = nl ? (size_t) (nl - data) + 1 : len;

                if (o->line_start && o->in_header && data[0] == '\n')
                        o->in_header = false;
                if (o->show & (o->in_header ? SHOW_HEADER : SHOW_BODY)) {
                        if (o->line_start && o->verbose)
                                fputs("regular_text: ", stdout);
                        fwrite(data, 1, n, stdout);
                }
                o->line_start = nl != NULL;
                data += n;
                len -= n;
        }
        return 0;
}

static void print_envelope(const QueueEnvelope *e) {
        time_t t = (time_t) (e->arrival_usec / 1000000);
        char when[64] = "";
        struct tm tm;

        if (localtime_r(&t, &tm))
                (void) strftime(when, sizeof(when), "%a %b %e %H:%M:%S %Y", &tm);
        /* Postfix's six columns: content size, its offset in the file, recipients to go, queue manager
         * options (none), content size again, SMTPUTF8 flags (none kept apart). */
        printf("message_size: %15" PRIu64 " %15" PRIu64 " %15zu %15d %15" PRIu64 " %15d\n", e->content_size,
               e->content_offset, queue_envelope_pending(e), 0, e->content_size, 0);
        printf("message_arrival_time: %s\n", when);
        for (char **a = e->attrs; a && *a; a++)
                printf("named_attribute: %s\n", *a);
        printf("sender: %s\n", e->sender);
        for (size_t i = 0; i < e->n_recipients; i++) {
                const QueueRecipient *r = &e->recipients[i];

                if (r->notify)
                        printf("named_attribute: dsn_notify=%s\n", r->notify);
                if (r->orcpt)
                        printf("named_attribute: dsn_orig_rcpt=%s\n", r->orcpt);
                printf("%s: %s\n", r->done ? "done_recipient" : "recipient", r->address);
        }
}

/* Validates and prints one queue file, under the name given (a path, or "queue/ID"). */
static int print_file(int fd, const char *name, PostcatShow show, bool verbose) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        PostcatOutput o = { .show = show, .verbose = verbose, .in_header = true, .line_start = true };
        bool markers = show & SHOW_ENVELOPE;
        int r;

        r = queue_file_read(fd, &e);
        if (r == -EBADMSG)
                return fatal(EX_DATAERR, "%s: not a postbus queue file, or a corrupt or truncated one", name);
        if (r < 0)
                return fatal(EX_IOERR, "read %s: %s", name, strerror(-r));
        if (markers) {
                printf("*** ENVELOPE RECORDS %s ***\n", name);
                print_envelope(e);
                printf("*** MESSAGE CONTENTS %s ***\n", name);
        }
        if (show & (SHOW_HEADER | SHOW_BODY)) {
                r = queue_file_content_foreach(fd, e, print_content, &o);
                if (r < 0)
                        return fatal(EX_DATAERR, "%s: the content cannot be read: %s", name, strerror(-r));
                if (!o.line_start && (show & (o.in_header ? SHOW_HEADER : SHOW_BODY)))
                        putchar('\n');
        }
        if (markers) {
                printf("*** HEADER EXTRACTED %s ***\n", name);
                printf("*** MESSAGE FILE END %s ***\n", name);
        }
        if (fflush(stdout) != 0 || ferror(stdout))
                return fatal(EX_IOERR, "output write error: %s", strerror(errno));
        return EX_OK;
}

/* -q: opens the first queue's file of id; EX_OK, or the exit status after the error is printed. */
static int open_queued(const char *spool, const char *id, int *ret_fd, char **ret_name) {
        if (!queue_id_valid(id)) {
                _cleanup_free_ char *esc = log_escape(id, strlen(id));

                return fatal(EX_USAGE, "bad queue ID: \"%s\"", strna(esc));
        }
        for (size_t i = 0; i < ELEMENTSOF(search_order); i++) {
                const char *q = queue_name_to_string(search_order[i]);
                _cleanup_free_ char *path = NULL;
                int fd;

                if (asprintf(&path, "%s/%s/%s", spool, q, id) < 0)
                        return fatal(EX_OSERR, "out of memory");
                fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NOCTTY);
                if (fd < 0 && errno == ENOENT)
                        continue;
                if (fd < 0)
                        return fatal(errno == EACCES ? EX_NOPERM : EX_IOERR, "open %s: %m", path);
                if (asprintf(ret_name, "%s/%s", q, id) < 0) {
                        close(fd);
                        return fatal(EX_OSERR, "out of memory");
                }
                *ret_fd = fd;
                return EX_OK;
        }
        return fatal(EX_NOINPUT, "open queue file %s: No such file or directory", id);
}

int main(int argc, char **argv) {
        _cleanup_(config_freep) Config *config = NULL;
        _cleanup_free_ char *main_cf = NULL;
        const char *config_dir = NULL;
        PostcatShow show = 0;
        bool by_id = false, verbose = false;
        int c, r, status = EX_OK;

        log_setup("postcat");
        log_set_target(LOG_TARGET_STDERR);

        opterr = 0;
        while ((c = getopt(argc, argv, "bc:ehqv")) >= 0) {
                switch (c) {
                case 'b':
                        show |= SHOW_BODY;
                        break;
                case 'c':
                        config_dir = optarg;
                        break;
                case 'e':
                        show |= SHOW_ENVELOPE;
                        break;
                case 'h':
                        show |= SHOW_HEADER;
                        break;
                case 'q':
                        by_id = true;
                        break;
                case 'v':
                        verbose = true;
                        break;
                default:
                        return usage();
                }
        }
        if (show == 0)
                show = SHOW_ENVELOPE | SHOW_HEADER | SHOW_BODY;

        if (optind == argc) {
                if (by_id)
                        return usage();
                return print_file(STDIN_FILENO, "(stdin)", show, verbose);
        }
        if (by_id) {
                if (config_dir && asprintf(&main_cf, "%s/main.cf", config_dir) < 0)
                        return fatal(EX_OSERR, "out of memory");
                r = config_load(main_cf, &config);
                if (r < 0)
                        return fatal(EX_CONFIG, "%s: %s", main_cf ?: POSTBUS_CONFDIR "/main.cf", strerror(-r));
        }
        for (int i = optind; i < argc && status == EX_OK; i++) {
                _cleanup_free_ char *name = NULL;
                _cleanup_close_ int fd = -EBADF;

                if (by_id) {
                        status = open_queued(config->queue_directory, argv[i], &fd, &name);
                        if (status != EX_OK)
                                break;
                } else {
                        fd = open(argv[i], O_RDONLY | O_CLOEXEC | O_NOCTTY);
                        if (fd < 0)
                                return fatal(errno == ENOENT ? EX_NOINPUT : errno == EACCES ? EX_NOPERM : EX_IOERR,
                                             "open %s: %m", argv[i]);
                }
                status = print_file(fd, name ?: argv[i], show, verbose);
        }
        return status;
}
