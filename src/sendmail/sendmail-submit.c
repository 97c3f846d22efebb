/* sendmail-submit.c: a message into the maildrop: written under a hidden name, synced, renamed into view
 * for pickup, and the directory synced, before sendmail returns 0. Also the stdin filter of a plain
 * submission. */
#include <fcntl.h>
#include <grp.h>
#include <inttypes.h>
#include <pwd.h>
#include <stdio.h>
#include <sys/stat.h>
#include <sysexits.h>

#include "address.h"
#include "addrlist.h"
#include "daemon.h"
#include "log.h"
#include "sendmail.h"
#include "verp.h"

#define MAILDROP_CREATE_ATTEMPTS 8
#define SENDMAIL_READ_CHUNK (64U * 1024U)

struct MaildropDraft {
        char *dir_path;
        int dir_fd;                     /* O_PATH: the directory is not readable by the postdrop group */
        int fd;
        char name[MAILDROP_NAME_SIZE];
        char tmp[MAILDROP_NAME_SIZE + 1 + STRLEN(MAILDROP_TMP_SUFFIX)];
        QueueWriter *w;
        uint64_t content_size, content_max;
        bool committed;
};

MaildropDraft *maildrop_draft_free(MaildropDraft *d) {
        if (!d)
                return NULL;
        if (d->fd >= 0 && !d->committed)
                (void) unlinkat(d->dir_fd, d->tmp, 0);
        safe_close(d->fd);
        safe_close(d->dir_fd);
        free(d->dir_path);
        free(d->w);
        free(d);
        return NULL;
}

int maildrop_draft_open(const Config *c, const MaildropEnvelope *e, MaildropDraft **ret) {
        _cleanup_(maildrop_draft_freep) MaildropDraft *d = NULL;
        int r;

        d = calloc(1, sizeof(MaildropDraft));
        if (!d)
                return -ENOMEM;
        d->dir_fd = d->fd = -EBADF;
        d->content_max = (uint64_t) c->message_size_limit;
        if (asprintf(&d->dir_path, "%s/maildrop", c->queue_directory) < 0) {
                d->dir_path = NULL;
                return -ENOMEM;
        }
        d->dir_fd = open(d->dir_path, O_PATH | O_DIRECTORY | O_CLOEXEC);
        if (d->dir_fd < 0)
                return -errno;

        for (unsigned i = 0;; i++) {
                r = maildrop_name_new(d->name);
                if (r < 0)
                        return r;
                (void) snprintf(d->tmp, sizeof d->tmp, ".%s%s", d->name, MAILDROP_TMP_SUFFIX);
                d->fd = openat(d->dir_fd, d->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
                if (d->fd >= 0)
                        break;
                if (errno != EEXIST || i + 1 >= MAILDROP_CREATE_ATTEMPTS)
                        return -errno;
        }

        d->w = malloc(sizeof(QueueWriter));
        if (!d->w)
                return -ENOMEM;
        queue_writer_init(d->w, d->fd);
        r = maildrop_write_envelope(d->w, e);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(d);
        return 0;
}

int maildrop_draft_write(MaildropDraft *d, const void *buf, size_t len) {
        if (len > d->content_max - d->content_size)
                return -EFBIG;
        d->content_size += len;
        return queue_writer_content(d->w, buf, len);
}

uint64_t maildrop_draft_size(const MaildropDraft *d) {
        return d->content_size;
}

/* pickup reads the file through the postdrop group; other users cannot even reach the directory. */
static int set_final_permissions(int fd) {
        struct group *g;
        struct stat st;

        errno = 0;
        g = getgrnam("postdrop");
        if (!g)
                return errno > 0 ? -errno : -ENOENT;
        if (fstat(fd, &st) < 0)
                return -errno;
        if (st.st_gid != g->gr_gid && fchown(fd, (uid_t) -1, g->gr_gid) < 0)
                return -errno;
        if (fchmod(fd, 0440) < 0)
                return -errno;
        return 0;
}

int maildrop_draft_commit(MaildropDraft *d, char ret_name[static MAILDROP_NAME_SIZE]) {
        _cleanup_close_ int dfd = -EBADF;
        int r;

        r = maildrop_write_end(d->w);
        if (r < 0)
                return r;
        r = set_final_permissions(d->fd);
        if (r < 0)
                return r;
        if (fsync(d->fd) < 0)
                return -errno;
        if (renameat2(d->dir_fd, d->tmp, d->dir_fd, d->name, RENAME_NOREPLACE) < 0)
                return -errno;
        d->committed = true;
        /* The new name must be on disk too. The postdrop group may not read the directory, so only root
         * can open it to sync it; anyone else syncs the file system, which holds it. */
        dfd = open(d->dir_path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0 ? fsync(dfd) < 0 : syncfs(d->fd) < 0)
                return -errno;
        memcpy(ret_name, d->name, MAILDROP_NAME_SIZE);
        return 0;
}

/* ---- the stdin filter ---- */

void sendmail_input_init(SendmailInput *in, bool ignore_dots) {
        *in = (SendmailInput) { .ignore_dots = ignore_dots, .line_start = true };
}

static void input_char(SendmailInput *in, char c, char *out, size_t *n) {
        if (in->done)
                return;
        if (in->dot_pending) {
                in->dot_pending = false;
                if (c == '\n') {
                        in->done = true;
                        return;
                }
                out[(*n)++] = '.';
        } else if (in->line_start && c == '.' && !in->ignore_dots) {
                in->dot_pending = true;
                in->line_start = false;
                return;
        }
        out[(*n)++] = c;
        in->line_start = c == '\n';
}

size_t sendmail_input_feed(SendmailInput *in, const char *buf, size_t len, char *out) {
        size_t n = 0;

        for (size_t i = 0; i < len && !in->done; i++) {
                char c = buf[i];
                if (in->pending_cr) {
                        in->pending_cr = false;
                        if (c == '\n') {
                                input_char(in, '\n', out, &n);
                                continue;
                        }
                        input_char(in, '\r', out, &n);
                }
                if (c == '\r') {
                        in->pending_cr = true;
                        continue;
                }
                input_char(in, c, out, &n);
        }
        return n;
}

size_t sendmail_input_finish(SendmailInput *in, char *out) {
        size_t n = 0;

        if (in->done)
                return 0;
        if (in->dot_pending) {
                in->dot_pending = false;
                out[n++] = '.';
        }
        if (in->pending_cr) {
                in->pending_cr = false;
                out[n++] = '\r';
        }
        return n;
}

/* ---- sendmail -bm ---- */

int sendmail_envelope_from_options(const SendmailOptions *o, MaildropEnvelope **ret) {
        _cleanup_(maildrop_envelope_freep) MaildropEnvelope *e = NULL;
        struct passwd *pw;

        e = calloc(1, sizeof(MaildropEnvelope));
        if (!e)
                return -ENOMEM;
        e->time_usec = now_realtime_usec();
        e->extract_recipients = o->extract_recipients;
        if (o->sender)
                e->sender = strdup(o->sender);
        else {
                /* The login name; cleanup qualifies it with $myorigin. pickup takes the user from the
                 * file's owner, not from here. */
                errno = 0;
                pw = getpwuid(getuid());
                if (!pw)
                        return errno > 0 ? -errno : -ESRCH;
                e->sender = strdup(pw->pw_name);
        }
        if (!e->sender)
                return -ENOMEM;
        if (!address_valid(e->sender))
                return -EINVAL;
        e->recipients = calloc(o->n_recipients + 1, sizeof(char *));
        if (!e->recipients)
                return -ENOMEM;
        for (size_t i = 0; i < o->n_recipients; i++) {
                e->recipients[i] = strdup(o->recipients[i]);
                if (!e->recipients[i])
                        return -ENOMEM;
                e->n_recipients++;
        }
        if ((o->full_name && !(e->full_name = strdup(o->full_name))) ||
            (o->dsn_notify && !(e->dsn_notify = strdup(o->dsn_notify))) ||
            (o->dsn_ret && !(e->dsn_ret = strdup(o->dsn_ret))) ||
            (o->dsn_envid && !(e->dsn_envid = strdup(o->dsn_envid))) ||
            (o->body_type && !(e->body_type = strdup(o->body_type))) ||
            (o->verp_delims && !(e->verp_delims = strdup(o->verp_delims))))
                return -ENOMEM;
        *ret = TAKE_PTR(e);
        return 0;
}

/* sendmail -t: the header section, kept as it streams by, up to its limit. */
typedef struct HeaderSection {
        char *buf;
        size_t len, max;
        bool complete;                  /* the empty line was seen, or the limit reached */
} HeaderSection;

static void header_section_done(HeaderSection *h) {
        free(h->buf);
}

static int header_section_add(HeaderSection *h, const char *p, size_t n) {
        for (size_t i = 0; i < n && !h->complete; i++) {
                if (p[i] == '\n' && (h->len == 0 || h->buf[h->len - 1] == '\n')) {
                        h->complete = true;
                        break;
                }
                if (h->len == h->max) {
                        h->complete = true;
                        break;
                }
                if (!h->buf) {
                        h->buf = malloc(h->max);
                        if (!h->buf)
                                return -ENOMEM;
                }
                h->buf[h->len++] = p[i];
        }
        return 0;
}

int sendmail_deliver(const Config *c, const SendmailOptions *o) {
        _cleanup_(maildrop_envelope_freep) MaildropEnvelope *e = NULL;
        _cleanup_(maildrop_draft_freep) MaildropDraft *d = NULL;
        _cleanup_free_ char *buf = NULL, *out = NULL;
        char name[MAILDROP_NAME_SIZE];
        /* With -t and no recipient on the command line, the header must name one (Postfix checks the
         * same in sendmail, so the user hears of it and no bounce is made). */
        bool need_header_recipients = o->extract_recipients && o->n_recipients == 0;
        _cleanup_(header_section_done) HeaderSection hs = { .max = (size_t) c->header_size_limit, .complete = !need_header_recipients };
        SendmailInput in;
        size_t n;
        int r;

        r = sendmail_envelope_from_options(o, &e);
        if (r == -EINVAL) {
                log_error("The login name of uid %u is not a valid sender address: use -f.", (unsigned) getuid());
                return EX_USAGE;
        }
        if (r < 0) {
                log_error_errno(r, "Cannot tell who uid %u is: %m", (unsigned) getuid());
                return EX_OSERR;
        }
        /* -XV alone: the configured delimiters. Local submission may always ask for VERP, as in Postfix. */
        if (e->verp_delims && isempty(e->verp_delims)) {
                free(e->verp_delims);
                e->verp_delims = strdup(c->default_verp_delimiters);
                if (!e->verp_delims) {
                        log_oom();
                        return EX_OSERR;
                }
        }
        if (e->verp_delims && !verp_delimiters_valid(e->verp_delims, c->verp_delimiter_filter)) {
                log_error("-XV requires two characters from %s", c->verp_delimiter_filter);
                return EX_USAGE;
        }

        r = maildrop_draft_open(c, e, &d);
        if (r == -E2BIG) {
                log_error("Too many recipients: their addresses exceed %u bytes.", MAILDROP_ENVELOPE_MAX);
                return EX_USAGE;
        }
        if (r < 0) {
                log_error_errno(r, "Cannot write a message into %s/maildrop: %m%s", c->queue_directory,
                                r == -EACCES ? " (sendmail must be set-group-ID postdrop)" : "");
                return EX_TEMPFAIL;
        }

        buf = malloc(SENDMAIL_READ_CHUNK);
        out = malloc(SENDMAIL_READ_CHUNK + 2);
        if (!buf || !out) {
                log_oom();
                return EX_OSERR;
        }
        sendmail_input_init(&in, o->ignore_dots);
        for (;;) {
                ssize_t k = read(STDIN_FILENO, buf, SENDMAIL_READ_CHUNK);
                if (k < 0) {
                        if (errno == EINTR)
                                continue;
                        log_error_errno(errno, "Failed to read the message from standard input: %m");
                        return EX_IOERR;
                }
                n = k == 0 ? sendmail_input_finish(&in, out) : sendmail_input_feed(&in, buf, (size_t) k, out);
                if (!hs.complete && header_section_add(&hs, out, n) < 0) {
                        log_oom();
                        return EX_OSERR;
                }
                r = maildrop_draft_write(d, out, n);
                if (r == -EFBIG) {
                        log_error("The message is larger than message_size_limit (%" PRIi64 " bytes).",
                                  c->message_size_limit);
                        return EX_DATAERR;
                }
                if (r < 0) {
                        log_error_errno(r, "Failed to write into the maildrop: %m");
                        return EX_TEMPFAIL;
                }
                if (k == 0 || in.done)
                        break;
        }

        if (need_header_recipients) {
                size_t found = hs.buf ? addrlist_count_header_recipients(hs.buf, hs.len, 1) : 0;
                if (found == 0) {
                        log_error("No recipient addresses found in message header.");
                        return EX_USAGE;
                }
        }

        r = maildrop_draft_commit(d, name);
        if (r < 0) {
                log_error_errno(r, "Failed to commit the message to the maildrop: %m");
                return EX_TEMPFAIL;
        }
        if (o->verbose)
                fprintf(stderr, "sendmail: queued in the maildrop as %s\n", name);
        return EX_OK;
}
