/* cleanup-message.c: org.postbus.Cleanup1: a submitted message becomes a durable queue file in incoming/, with
 * the headers it lacks; and the group commit of incoming/. Runs in the cleanup process. */
#include <arpa/inet.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "address.h"
#include "dsn.h"
#include "format-util.h"
#include "cleanup.h"
#include "log.h"
#include "queue-bus.h"
#include "queue-file.h"
#include "verp.h"

#define CLEANUP_CREATE_ATTEMPTS 8

const char *cleanup_attr_get(char **attrs, const char *name) {
        size_t n = strlen(name);

        for (char **a = attrs; a && *a; a++)
                if (strncmp(*a, name, n) == 0 && (*a)[n] == '=')
                        return *a + n + 1;
        return NULL;
}

/* Creates incoming/<ID>.tmp for the proposed queue ID (valid, or NULL), or a fresh one. The rename that
 * follows never takes a name that is there (queue_id_rename()); a proposed ID, which pickup offers again
 * for a maildrop file it hands in a second time, is looked for first, so that the one in the headers is
 * the one the file gets. */
static int create_queue_file(Cleanup *c, const char *proposed, char id[static QUEUE_ID_SIZE],
                             char tmp[static QUEUE_ID_SIZE + 4]) {
        for (unsigned i = 0; i < CLEANUP_CREATE_ATTEMPTS; i++) {
                if (i == 0 && proposed) {
                        strcpy(id, proposed);
                        if (faccessat(c->incoming_fd, id, F_OK, AT_SYMLINK_NOFOLLOW) == 0)
                                continue;
                } else {
                        int r = queue_id_new(id);
                        if (r < 0)
                                return r;
                }
                (void) snprintf(tmp, QUEUE_ID_SIZE + 4, "%s.tmp", id);
                /* Group postbus (cleanup's group) may read and write it: qmgr, the queue's owner, marks its
                 * recipients done. The unit's UMask=0007 keeps it from others. */
                int fd = openat(c->incoming_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0660);
                if (fd >= 0)
                        return fd;
                if (errno != EEXIST)
                        return -errno;
        }
        return -EEXIST;
}

/* Writes text, made by strprintf() (NULL: it could not be), as content, and frees it. */
static int write_text(QueueWriter *w, char *text) {
        _cleanup_free_ char *s = text;

        return s ? queue_writer_content(w, s, strlen(s)) : -ENOMEM;
}
#define write_header(w, ...) write_text(w, strprintf(__VA_ARGS__))

static int write_received(QueueWriter *w, Cleanup *c, const CleanupRequest *req, const char *id, time_t now) {
        const char *helo = cleanup_attr_get(req->attrs, "helo_name");
        const char *name = cleanup_attr_get(req->attrs, "client_name");
        const char *addr = cleanup_attr_get(req->attrs, "client_address");
        const char *proto = cleanup_attr_get(req->attrs, "protocol");
        const char *user = cleanup_attr_get(req->attrs, "uid");
        const char *sasl = cleanup_attr_get(req->attrs, "sasl_username");
        const char *tls = cleanup_attr_get(req->attrs, "tls_cipher");
        const char *kex = cleanup_attr_get(req->attrs, "tls_kex");
        _cleanup_free_ char *using = NULL;
        char date[64];

        /* smtpd's AUTH name, as Postfix shows it; smtpd allows printable ASCII only, and no line break may
         * ever get into a header from it. */
        if (sasl && strpbrk(sasl, "\r\n"))
                sasl = NULL;
        /* smtpd_tls_received_header: the TLS session as Postfix shows it, and that smtpd asked for no client
         * certificate. */
        if (tls && strpbrk(tls, "\r\n"))
                tls = NULL;
        if (tls && kex && !strpbrk(kex, "\r\n")) {
                if (asprintf(&using, "\t(using %s\n\t %s)\n\t(No client certificate requested)\n", tls, kex) < 0)
                        return -ENOMEM;
        } else if (tls && asprintf(&using, "\t(using %s)\n\t(No client certificate requested)\n", tls) < 0)
                return -ENOMEM;
        format_rfc5322_date(now, date, sizeof date);
        if (addr) {
                /* As Postfix: "for <recipient>; date" when there is one recipient, else "id ...;" and the date
                 * on a line of its own. */
                bool one = !req->recipients[1];
                return write_header(w, "Received: from %s (%s [%s])\n%s%s%s%s"
                                       "\tby %s (postbus) with %s id %s%s%s%s%s\n",
                                    helo ?: name ?: "unknown", name ?: "unknown", addr, strempty(using),
                                    sasl ? "\t(Authenticated sender: " : "", strempty(sasl), sasl ? ")\n" : "",
                                    c->daemon->config->myhostname, proto ?: "SMTP", id,
                                    one ? "\n\tfor <" : ";\n\t", one ? req->recipients[0] : "", one ? ">; " : "",
                                    date);
        }
        /* Local submission names its user, as Postfix's pickup does; mail that postbus makes itself (a notice)
         * has none. */
        if (!user)
                return write_header(w, "Received: by %s (postbus)\n\tid %s; %s\n", c->daemon->config->myhostname,
                                    id, date);
        return write_header(w, "Received: by %s (postbus, from userid %s)\n\tid %s; %s\n",
                            c->daemon->config->myhostname, user, id, date);
}

/* Whether the message is local mail, whose headers cleanup completes without always_add_missing_headers: as
 * Postfix's default local_header_rewrite_clients (permit_inet_interfaces), mail that came from no network
 * client (sendmail, notices, local's forwarding) or from a client on this host's loopback. */
static bool local_mail(const CleanupRequest *req) {
        const char *a = cleanup_attr_get(req->attrs, "client_address");
        struct in6_addr a6;
        struct in_addr a4;

        if (isempty(a) || streq(strempty(cleanup_attr_get(req->attrs, "origin")), "pickup"))
                return true;
        if (inet_pton(AF_INET, a, &a4) == 1)
                return (ntohl(a4.s_addr) >> 24) == 127;
        if (inet_pton(AF_INET6, a, &a6) == 1)
                return IN6_IS_ADDR_LOOPBACK(&a6) ||
                       (IN6_IS_ADDR_V4MAPPED(&a6) && a6.s6_addr[12] == 127);
        return false;
}

static int write_missing_headers(QueueWriter *w, Cleanup *c, const CleanupRequest *req, const CleanupHeaderScan *h,
                                 const char *id, time_t now, char **ret_message_id) {
        const Config *cfg = c->daemon->config;
        _cleanup_free_ char *mid = NULL;
        char date[64];
        int r;

        /* As Postfix since 2.6: mail from other hosts keeps its header as it came (a header added there
         * could break a DKIM signature that covers its absence). */
        if (!cfg->always_add_missing_headers && !local_mail(req)) {
                *ret_message_id = NULL;
                return 0;
        }
        if (!h->has_to_or_cc && !isempty(cfg->undisclosed_recipients_header)) {
                r = write_header(w, "%s\n", cfg->undisclosed_recipients_header);
                if (r < 0)
                        return r;
        }

        if (!h->has_message_id) {
                r = format_message_id(now, id, NULL, c->daemon->config->myhostname, &mid);
                if (r < 0)
                        return r;
                r = write_header(w, "Message-ID: %s\n", mid);
                if (r < 0)
                        return r;
        }
        if (!h->has_date) {
                format_rfc5322_date(now, date, sizeof date);
                r = write_header(w, "Date: %s\n", date);
                if (r < 0)
                        return r;
        }
        if (!h->has_from) {
                const char *full_name = cleanup_attr_get(req->attrs, "full_name");
                _cleanup_free_ char *phrase = NULL;

                /* Local mail: the submitting user, with the full name sendmail -F or the password
                 * database gave. */
                if (!isempty(req->sender) && !isempty(full_name) &&
                    streq(strempty(cleanup_attr_get(req->attrs, "origin")), "pickup")) {
                        phrase = cleanup_phrase(full_name);
                        if (!phrase)
                                return -ENOMEM;
                }
                if (phrase)
                        r = write_header(w, "From: %s <%s>\n", phrase, req->sender);
                else
                        r = write_header(w, "From: %s\n", isempty(req->sender) ? "MAILER-DAEMON" : req->sender);
                if (r < 0)
                        return r;
        }
        *ret_message_id = TAKE_PTR(mid);
        return 0;
}

/* The VERP request the attribute a makes ("verp_delimiters=+=", "" for the default), as the queue file keeps
 * it: the delimiters, or NULL when it is ignored, as Postfix's cleanup ignores it (null sender, delimiters
 * outside verp_delimiter_filter) with a warning. */
static const char *verp_request(const Config *c, const CleanupRequest *req, const char *id, const char *a) {
        const char *d = a + STRLEN(VERP_ATTR "=");

        if (isempty(d))
                d = c->default_verp_delimiters;
        if (isempty(req->sender)) {
                log_mail(LOG_WARNING, id, LOG_NO_FIELDS, "ignoring VERP request for null sender");
                return NULL;
        }
        if (!verp_delimiters_valid(d, c->verp_delimiter_filter)) {
                _cleanup_free_ char *esc = log_escape(d, strlen(d));
                log_mail(LOG_WARNING, id, LOG_NO_FIELDS, "ignoring bad VERP request: \"%s\"", strempty(esc));
                return NULL;
        }
        return d;
}

static int write_envelope(QueueWriter *w, const Config *c, const CleanupRequest *req, const char *id,
                          uint64_t now_usec) {
        int r;

        if ((r = queue_writer_record(w, QUEUE_REC_MAGIC, QUEUE_MAGIC, STRLEN(QUEUE_MAGIC))) < 0 ||
            (r = queue_writer_recordf(w, QUEUE_REC_TIME, "%" PRIu64, now_usec)) < 0)
                return r;
        for (char **a = req->attrs; a && *a; a++) {
                if (req->filter && strncmp(*a, "content_filter=", 15) == 0)
                        continue;
                if (strncmp(*a, VERP_ATTR "=", STRLEN(VERP_ATTR "=")) == 0) {
                        const char *d = verp_request(c, req, id, *a);
                        if (d && (r = queue_writer_recordf(w, QUEUE_REC_ATTR, VERP_ATTR "=%s", d)) < 0)
                                return r;
                        continue;
                }
                if ((r = queue_writer_record(w, QUEUE_REC_ATTR, *a, strlen(*a))) < 0)
                        return r;
        }
        if (req->filter && (r = queue_writer_recordf(w, QUEUE_REC_ATTR, "content_filter=%s", req->filter)) < 0)
                return r;
        if (req->hold && (r = queue_writer_recordf(w, QUEUE_REC_ATTR, "hold=%s", req->hold)) < 0)
                return r;
        if ((r = queue_writer_record(w, QUEUE_REC_SENDER, req->sender, strlen(req->sender))) < 0)
                return r;
        /* Each recipient with its RFC 3461 NOTIFY and ORCPT, for the bounce role. */
        for (size_t i = 0; req->recipients[i]; i++)
                if ((r = queue_writer_recipient(w, req->recipients[i], req->dsn_notify ? req->dsn_notify[i] : NULL,
                                                req->dsn_orcpt ? req->dsn_orcpt[i] : NULL)) < 0)
                        return r;
        return queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0);
}

/* Writes the content from *from up to edit e, and e's text in place of its range. */
static int write_edit(QueueWriter *w, const char *content, const CleanupRange *e, size_t *from) {
        int r;

        if (e->start < *from)
                return 0;
        r = queue_writer_content(w, content + *from, e->start - *from);
        if (r >= 0 && e->text)
                r = queue_writer_content(w, e->text, strlen(e->text));
        *from = e->end;
        return r;
}

/* Writes envelope and content; the content is the submitted file, mapped. */
static int write_queue_file(QueueWriter *w, Cleanup *c, const CleanupRequest *req, const char *id,
                            const char *content, size_t size, char **ret_reject, char **ret_message_id) {
        CleanupHeaderScan h;
        uint64_t now_usec = now_realtime_usec();
        time_t now = (time_t) (now_usec / USEC_PER_SEC);
        int r;

        r = cleanup_header_scan(content, size, &h);
        if (r < 0)
                return r;
        if (h.received >= (unsigned) c->daemon->config->hopcount_limit) {
                cleanup_header_scan_done(&h);
                *ret_reject = strdup("554 5.4.6 Too many hops");
                return *ret_reject ? 0 : -ENOMEM;
        }

        _cleanup_free_ char *mid = NULL;
        if ((r = write_envelope(w, c->daemon->config, req, id, now_usec)) < 0)
                goto finish;
        /* smtpd's PREPEND headers come first, above Received, as in Postfix. */
        for (char **p = req->prepend; p && *p; p++)
                if ((r = write_header(w, "%s\n", *p)) < 0)
                        goto finish;
        if ((r = write_received(w, c, req, id, now)) < 0)
                goto finish;
        /* The headers, less those header_checks said to IGNORE and Bcc when recipients were extracted,
         * with their addresses as canonical and masquerading made them. */
        size_t from = 0, i = 0;
        for (; i < req->n_edits && req->edits[i].start < h.header_end; i++)
                if ((r = write_edit(w, content, req->edits + i, &from)) < 0)
                        goto finish;
        if ((r = queue_writer_content(w, content + from, h.header_end - from)) < 0)
                goto finish;
        if (h.header_end > 0 && content[h.header_end - 1] != '\n' && (r = queue_writer_content(w, "\n", 1)) < 0)
                goto finish;
        if ((r = write_missing_headers(w, c, req, &h, id, now, &mid)) < 0)
                goto finish;
        if (h.needs_separator && (r = queue_writer_content(w, "\n", 1)) < 0)
                goto finish;
        /* The body, with the lines body_checks left out, replaced or prepended to. */
        from = h.header_end;
        for (; i < req->n_edits; i++)
                if ((r = write_edit(w, content, req->edits + i, &from)) < 0)
                        goto finish;
        if ((r = queue_writer_content(w, content + from, size - from)) < 0)
                goto finish;
        if (size > h.header_end && content[size - 1] != '\n' && (r = queue_writer_content(w, "\n", 1)) < 0)
                goto finish;
        r = queue_writer_record(w, QUEUE_REC_END, NULL, 0);
        if (r >= 0)
                r = queue_writer_flush(w);
        if (r >= 0) {
                *ret_message_id = mid ? TAKE_PTR(mid) : h.message_id;
                h.message_id = NULL;
        }
finish:
        cleanup_header_scan_done(&h);
        return r;
}

int cleanup_message_write(Cleanup *c, const CleanupRequest *req, CleanupSyncItem *item, char **ret_reject,
                          char **ret_message_id) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *reject = NULL, *message_id = NULL;
        _cleanup_free_ QueueWriter *w = NULL;
        int r;

        w = malloc(sizeof(QueueWriter));
        if (!w)
                return log_oom();
        fd = create_queue_file(c, req->queue_id, item->id, item->tmp);
        if (fd < 0)
                return log_error_errno(fd, "Failed to create a queue file in incoming: %m");
        queue_writer_init(w, fd);
        r = write_queue_file(w, c, req, item->id, req->content, req->size, &reject, &message_id);
        if (r < 0 || reject) {
                (void) unlinkat(c->incoming_fd, item->tmp, 0);
                if (r < 0)
                        return log_error_errno(r, "%s: failed to write the queue file: %m", item->id);
                *ret_reject = TAKE_PTR(reject);
                return 0;
        }
        item->fd = TAKE_FD(fd);
        /* A small file that went out in one write is still in the buffer: qmgr gets it with the wake-up, and
         * need not open and read what was just written (without the copy, it does). */
        size_t n;
        const void *whole = record_writer_whole(w, &n);
        if (whole && n <= QMGR_WAKE_INLINE_MAX) {
                item->file = malloc(MAX(n, 1U));
                if (item->file) {
                        memcpy(item->file, whole, n);
                        item->file_size = n;
                }
        }
        *ret_message_id = message_id ? log_escape(message_id, strlen(message_id)) : NULL;
        return 0;
}

void cleanup_message_log(const char *id, const char *sender, const char *hold, const char *message_id) {
        log_mail(LOG_INFO, id, LOG_FIELDS({ "SENDER", sender }, { "MESSAGE_ID_HEADER", message_id }),
                 "message-id=%s", strempty(message_id));
        if (hold) {
                _cleanup_free_ char *why = log_escape(hold, strlen(hold));
                log_mail(LOG_INFO, id, LOG_FIELDS({ "SENDER", sender }, { "CLEANUP_ACTION", "hold" }),
                         "hold: %s", strempty(why));
        }
}

int cleanup_commit_setup(Cleanup *c) {
        const Config *config = c->daemon->config;
        const char *v = config->cleanup_directory_sync;
        char where[256];
        bool dir_sync;

        if (streq(v, "auto"))
                dir_sync = !cleanup_sync_file_carries_name(c->incoming_fd);
        else if (streq(v, "yes") || streq(v, "no"))
                dir_sync = streq(v, "yes");
        else
                return log_error_errno(EINVAL, "%s: cleanup_directory_sync = %s: must be auto, yes or no.",
                                       config_where(config, CONFIG_PARAM_cleanup_directory_sync, where, sizeof where),
                                       v);
        log_debug("incoming/ is %s.", dir_sync ? "synced after each rename" : "not synced: each file after its rename");
        return cleanup_sync_new(c->daemon->event, c->incoming_fd, dir_sync,
                                (unsigned) config->cleanup_sync_threads, &c->sync);
}

void cleanup_commit_done(Cleanup *c) {
        /* Answer what is written before exiting: the threads finish, then what they left is synced here. */
        c->sync = cleanup_sync_free(c->sync);
}

/* qmgr scans incoming on start and every queue_run_delay anyway: a call that asks for no answer (qmgr's
 * sd-bus then sends none), so that a wake-up costs one message on the connection and no reply to read. With
 * the file's bytes (file not NULL), qmgr takes the message from them. */
void cleanup_wake_qmgr(Cleanup *c, const char *id, const void *file, size_t file_size) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *m = NULL;
        sd_bus *bus;
        int r;

        r = bus_client_get(c->qmgr, &bus);
        if (r >= 0)
                r = sd_bus_message_new_method_call(bus, &m, NULL, QMGR_WAKE_OBJECT, QMGR_WAKE_INTERFACE,
                                                   file ? "WakeInline" : "Wake");
        if (r >= 0)
                r = sd_bus_message_set_expect_reply(m, false);
        if (r >= 0)
                r = sd_bus_message_append(m, "s", id);
        if (r >= 0 && file)
                r = sd_bus_message_append_array(m, 'y', file, file_size);
        if (r >= 0)
                r = sd_bus_send(bus, m, NULL);
        if (r < 0)
                log_debug_errno(r, "%s: failed to wake qmgr, ignoring: %m", id);
}

static int strv_append(char ***l, size_t n, const char *s) {
        char *copy = strdup(s), **nl;

        if (!copy)
                return -ENOMEM;
        nl = realloc(*l, (n + 2) * sizeof(char *));
        if (!nl) {
                free(copy);
                return -ENOMEM;
        }
        nl[n] = copy;
        nl[n + 1] = NULL;
        *l = nl;
        return 0;
}

/* Reads an array of contents element by element with read_element (1: one more, 0: the end, -errno), at
 * most max of them (-E2BIG), and leaves it. */
typedef int (*ReadElementFunc)(sd_bus_message *m, size_t n, void *userdata);

static int read_array(sd_bus_message *m, const char *contents, size_t max, ReadElementFunc read_element,
                      void *userdata) {
        int r;

        r = sd_bus_message_enter_container(m, 'a', contents);
        if (r < 0)
                return r;
        for (size_t n = 0;; n++) {
                r = read_element(m, n, userdata);
                if (r <= 0)
                        break;
                if (n >= max)
                        return -E2BIG;
        }
        if (r < 0)
                return r;
        return sd_bus_message_exit_container(m);
}

typedef struct SubmitRecipients {
        char ***addresses, ***notify, ***orcpt;
} SubmitRecipients;

static int read_recipient(sd_bus_message *m, size_t n, void *userdata) {
        SubmitRecipients *v = userdata;
        const char *a, *nt, *o;
        unsigned mask;
        int r;

        r = sd_bus_message_read(m, "(sss)", &a, &nt, &o);
        if (r <= 0)
                return r;
        if ((*nt && dsn_notify_parse(nt, strlen(nt), &mask) < 0) || (*o && !dsn_orcpt_valid(o, strlen(o))))
                return -EINVAL;
        if ((r = strv_append(v->addresses, n, a)) < 0 || (r = strv_append(v->notify, n, nt)) < 0 ||
            (r = strv_append(v->orcpt, n, o)) < 0)
                return r;
        return 1;
}

/* Submit's recipients, a(sss): address, NOTIFY and ORCPT ("" where not given), into three vectors of the
 * same length. -EINVAL: a NOTIFY or ORCPT that RFC 3461 does not allow. */
static int read_recipients(sd_bus_message *m, char ***ret, char ***ret_notify, char ***ret_orcpt, size_t max) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *)), **notify = calloc(1, sizeof(char *)),
                                 **orcpt = calloc(1, sizeof(char *));
        int r;

        if (!l || !notify || !orcpt)
                return -ENOMEM;
        r = read_array(m, "(sss)", max, read_recipient,
                       &(SubmitRecipients) { .addresses = &l, .notify = &notify, .orcpt = &orcpt });
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        *ret_notify = TAKE_PTR(notify);
        *ret_orcpt = TAKE_PTR(orcpt);
        return 0;
}

static int read_attr(sd_bus_message *m, size_t n, void *userdata) {
        _cleanup_free_ char *s = NULL;
        const char *k, *v;
        int r;

        r = sd_bus_message_read(m, "{ss}", &k, &v);
        if (r <= 0)
                return r;
        if (strlen(k) == 0 || strchr(k, '=') || strlen(k) + strlen(v) > CLEANUP_ATTR_MAX)
                return -EINVAL;
        if (asprintf(&s, "%s=%s", k, v) < 0) {
                s = NULL;
                return -ENOMEM;
        }
        r = strv_append(userdata, n, s);
        return r < 0 ? r : 1;
}

/* Submit's attributes, a{ss}, as "name=value" strings. */
static int read_attrs(sd_bus_message *m, char ***ret, size_t max) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        int r;

        if (!l)
                return -ENOMEM;
        r = read_array(m, "{ss}", max, read_attr, &l);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(l);
        return 0;
}

/* What Submit and SubmitInline have in common, after the content: the envelope and the attributes, checked,
 * and the job that answers. */
static int submit(sd_bus_message *m, Cleanup *c, const CleanupContent *content, sd_bus_error *error) {
        _cleanup_strv_free_ char **recipients = NULL, **attrs = NULL, **notify = NULL, **orcpt = NULL;
        const char *sender;
        int r;

        r = sd_bus_message_read(m, "s", &sender);
        if (r < 0)
                return r;
        r = read_recipients(m, &recipients, &notify, &orcpt, CLEANUP_RECIPIENTS_MAX);
        if (r >= 0)
                r = read_attrs(m, &attrs, CLEANUP_ATTRS_MAX);
        if (r == -ENOMEM)
                return r;
        if (r < 0)
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Malformed recipients or attributes.");
        /* sendmail -t may name no recipient: they come from the headers then. */
        if (!recipients[0] && !streq(strempty(cleanup_attr_get(attrs, "extract_recipients")), "yes"))
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "No recipients.");
        if (!address_valid(sender))
                return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid sender address.");
        for (char **rc = recipients; *rc; rc++)
                if (isempty(*rc) || !address_valid(*rc))
                        return sd_bus_error_setf(error, POSTBUS_ERROR_INVALID_ARGS, "Invalid recipient address.");

        /* The answer comes once rewrite has answered and the file is durable: cleanup_job_start() takes
         * a reference to m and replies to it. */
        r = cleanup_job_start(c, m, content, sender, TAKE_PTR(recipients), TAKE_PTR(notify), TAKE_PTR(orcpt),
                              TAKE_PTR(attrs));
        if (r < 0)
                return sd_bus_error_setf(error, POSTBUS_ERROR_TEMPORARY, "451 4.3.0 Error: %s",
                                         r == -ENOMEM ? "out of memory" : "cannot read the message");
        return 1;
}

static int method_submit(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        struct stat st;
        int fd, r;

        r = sd_bus_message_read(m, "h", &fd);
        if (r < 0)
                return r;
        /* cleanup maps the content: a file that its sender could still shrink would kill us with SIGBUS. */
        r = bus_check_peer_fd(m, fd, PEER_FD_SEALED, "message content", &st, error);
        if (r < 0)
                return r;
        return submit(m, userdata, &(CleanupContent) { .fd = fd, .size = (uint64_t) st.st_size }, error);
}

static int method_submit_inline(sd_bus_message *m, void *userdata, sd_bus_error *error) {
        const void *bytes;
        size_t size;
        int r;

        r = sd_bus_message_read_array(m, 'y', &bytes, &size);
        if (r < 0)
                return r;
        return submit(m, userdata, &(CleanupContent) { .fd = -EBADF, .bytes = bytes, .size = size }, error);
}

const sd_bus_vtable cleanup_vtable[] = {
        SD_BUS_VTABLE_START(0),
        SD_BUS_METHOD_WITH_ARGS("Submit",
                                SD_BUS_ARGS("h", content, "s", sender, "a(sss)", recipients, "a{ss}", attributes),
                                SD_BUS_RESULT("s", queue_id),
                                method_submit,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_METHOD_WITH_ARGS("SubmitInline",
                                SD_BUS_ARGS("ay", content, "s", sender, "a(sss)", recipients, "a{ss}", attributes),
                                SD_BUS_RESULT("s", queue_id),
                                method_submit_inline,
                                SD_BUS_VTABLE_UNPRIVILEGED),
        SD_BUS_VTABLE_END,
};
