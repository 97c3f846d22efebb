/* queue-file.c: reading, validating and writing queue files. */
#include <stdarg.h>
#include <sys/stat.h>

#include "dsn.h"
#include "io-util.h"
#include "queue-file.h"

static const char *const queue_names[_QUEUE_NAME_MAX] = {
        [QUEUE_INCOMING] = "incoming",
        [QUEUE_ACTIVE] = "active",
        [QUEUE_DEFERRED] = "deferred",
        [QUEUE_HOLD] = "hold",
        [QUEUE_CORRUPT] = "corrupt",
};

const char *queue_name_to_string(QueueName q) {
        return q >= 0 && q < _QUEUE_NAME_MAX ? queue_names[q] : NULL;
}

QueueName queue_name_from_string(const char *s) {
        for (QueueName q = 0; q < _QUEUE_NAME_MAX; q++)
                if (s && streq(s, queue_names[q]))
                        return q;
        return _QUEUE_NAME_INVALID;
}

QueueEnvelope *queue_envelope_free(QueueEnvelope *e) {
        if (!e)
                return NULL;
        free(e->sender);
        strv_free(e->attrs);
        for (size_t i = 0; i < e->n_recipients; i++) {
                free(e->recipients[i].address);
                free(e->recipients[i].notify);
                free(e->recipients[i].orcpt);
        }
        free(e->recipients);
        free(e);
        return NULL;
}

const char *queue_envelope_attr(const QueueEnvelope *e, const char *name) {
        size_t n = strlen(name);

        for (char **a = e->attrs; a && *a; a++)
                if (strncmp(*a, name, n) == 0 && (*a)[n] == '=')
                        return *a + n + 1;
        return NULL;
}

size_t queue_envelope_pending(const QueueEnvelope *e) {
        size_t n = 0;

        for (size_t i = 0; i < e->n_recipients; i++)
                if (!e->recipients[i].done)
                        n++;
        return n;
}

/* Reads the record header at off. The data must fit in the file. */
static int record_header(int fd, uint64_t off, uint64_t size, char *ret_type, uint32_t *ret_len) {
        unsigned char h[QUEUE_RECORD_HEADER];
        uint32_t len;
        int r;

        if (QUEUE_RECORD_HEADER > size - off)
                return -EBADMSG;
        r = pread_full(fd, h, sizeof h, off);
        if (r < 0)
                return r;
        len = (uint32_t) h[1] << 24 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 8 | h[4];
        if (len > QUEUE_RECORD_MAX || len > size - off - QUEUE_RECORD_HEADER)
                return -EBADMSG;
        *ret_type = (char) h[0];
        *ret_len = len;
        return 0;
}

/* Reads a text record's data as a string; it must hold no NUL. */
static int record_string(int fd, uint64_t off, uint32_t len, char **ret) {
        _cleanup_free_ char *s = malloc((size_t) len + 1);
        int r;

        if (!s)
                return -ENOMEM;
        r = pread_full(fd, s, len, off + QUEUE_RECORD_HEADER);
        if (r < 0)
                return r;
        if (memchr(s, '\0', len))
                return -EBADMSG;
        s[len] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

static int strv_push(char ***l, size_t *n, char *s) {
        char **nl = realloc(*l, (*n + 2) * sizeof(char *));
        if (!nl)
                return -ENOMEM;
        nl[(*n)++] = s;
        nl[*n] = NULL;
        *l = nl;
        return 0;
}

/* The data of a DSN options record: "NOTIFY=..." and/or "ORCPT=...", each once, separated by one space,
 * each value valid. */
static int dsn_options_parse(const char *s, char **ret_notify, char **ret_orcpt) {
        _cleanup_free_ char *notify = NULL, *orcpt = NULL;

        if (isempty(s))
                return -EBADMSG;
        for (const char *p = s; *p;) {
                const char *end = strchrnul(p, ' ');
                size_t n = (size_t) (end - p);
                unsigned mask;

                if (n > STRLEN("NOTIFY=") && strncmp(p, "NOTIFY=", STRLEN("NOTIFY=")) == 0 && !notify) {
                        if (dsn_notify_parse(p + STRLEN("NOTIFY="), n - STRLEN("NOTIFY="), &mask) < 0)
                                return -EBADMSG;
                        notify = strndup(p + STRLEN("NOTIFY="), n - STRLEN("NOTIFY="));
                        if (!notify)
                                return -ENOMEM;
                } else if (n > STRLEN("ORCPT=") && strncmp(p, "ORCPT=", STRLEN("ORCPT=")) == 0 && !orcpt) {
                        if (!dsn_orcpt_valid(p + STRLEN("ORCPT="), n - STRLEN("ORCPT=")))
                                return -EBADMSG;
                        orcpt = strndup(p + STRLEN("ORCPT="), n - STRLEN("ORCPT="));
                        if (!orcpt)
                                return -ENOMEM;
                } else
                        return -EBADMSG;
                p = end;
                if (*p == ' ' && *++p == '\0')
                        return -EBADMSG;
        }
        *ret_notify = TAKE_PTR(notify);
        *ret_orcpt = TAKE_PTR(orcpt);
        return 0;
}

typedef enum QueueSection {
        SECTION_MAGIC,
        SECTION_TIME,
        SECTION_ATTRS,          /* attributes, then the sender */
        SECTION_RECIPIENTS,     /* at least one, then QUEUE_REC_MESSAGE */
        SECTION_CONTENT,        /* content records, then QUEUE_REC_END */
        SECTION_DONE,
} QueueSection;

int queue_file_read(int fd, QueueEnvelope **ret) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        QueueSection section = SECTION_MAGIC;
        bool options_allowed = false;   /* the record before was 'R' or 'D' */
        size_t n_attrs = 0;
        struct stat st;
        uint64_t off = 0;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        e = calloc(1, sizeof(QueueEnvelope));
        if (!e)
                return -ENOMEM;
        e->file_size = (uint64_t) st.st_size;

        while (section != SECTION_DONE) {
                _cleanup_free_ char *s = NULL;
                uint32_t len;
                char type;

                r = record_header(fd, off, e->file_size, &type, &len);
                if (r < 0)
                        return r;

                switch (section) {
                case SECTION_MAGIC:
                        if (type != QUEUE_REC_MAGIC)
                                return -EBADMSG;
                        r = record_string(fd, off, len, &s);
                        if (r < 0)
                                return r;
                        if (!streq(s, QUEUE_MAGIC))
                                return -EBADMSG;
                        section = SECTION_TIME;
                        break;
                case SECTION_TIME: {
                        char *end;
                        if (type != QUEUE_REC_TIME)
                                return -EBADMSG;
                        r = record_string(fd, off, len, &s);
                        if (r < 0)
                                return r;
                        errno = 0;
                        e->arrival_usec = strtoull(s, &end, 10);
                        if (errno != 0 || isempty(s) || *end != '\0')
                                return -EBADMSG;
                        section = SECTION_ATTRS;
                        break;
                }
                case SECTION_ATTRS:
                        if (type != QUEUE_REC_ATTR && type != QUEUE_REC_SENDER)
                                return -EBADMSG;
                        r = record_string(fd, off, len, &s);
                        if (r < 0)
                                return r;
                        if (type == QUEUE_REC_SENDER) {
                                e->sender = TAKE_PTR(s);
                                section = SECTION_RECIPIENTS;
                                break;
                        }
                        if (!strchr(s, '='))
                                return -EBADMSG;
                        r = strv_push(&e->attrs, &n_attrs, s);
                        if (r < 0)
                                return r;
                        s = NULL;
                        break;
                case SECTION_RECIPIENTS:
                        if (type == QUEUE_REC_MESSAGE) {
                                if (len != 0 || e->n_recipients == 0)
                                        return -EBADMSG;
                                e->content_offset = off + QUEUE_RECORD_HEADER;
                                section = SECTION_CONTENT;
                                break;
                        }
                        if (type == QUEUE_REC_DSN_RECIPIENT_OPTIONS) {
                                if (!options_allowed)
                                        return -EBADMSG;
                                r = record_string(fd, off, len, &s);
                                if (r < 0)
                                        return r;
                                QueueRecipient *last = e->recipients + e->n_recipients - 1;
                                r = dsn_options_parse(s, &last->notify, &last->orcpt);
                                if (r < 0)
                                        return r;
                                options_allowed = false;
                                break;
                        }
                        if (type != QUEUE_REC_RECIPIENT && type != QUEUE_REC_DONE)
                                return -EBADMSG;
                        r = record_string(fd, off, len, &s);
                        if (r < 0)
                                return r;
                        if (isempty(s))
                                return -EBADMSG;
                        QueueRecipient *nr = realloc(e->recipients, (e->n_recipients + 1) * sizeof(QueueRecipient));
                        if (!nr)
                                return -ENOMEM;
                        e->recipients = nr;
                        nr[e->n_recipients++] = (QueueRecipient) {
                                .address = TAKE_PTR(s),
                                .offset = off,
                                .done = type == QUEUE_REC_DONE,
                        };
                        options_allowed = true;
                        break;
                case SECTION_CONTENT:
                        if (type == QUEUE_REC_END) {
                                if (len != 0)
                                        return -EBADMSG;
                                section = SECTION_DONE;
                                break;
                        }
                        if (type != QUEUE_REC_CONTENT)
                                return -EBADMSG;
                        e->content_size += len;
                        break;
                case SECTION_DONE:
                        break;
                }
                off += QUEUE_RECORD_HEADER + len;
        }
        if (off != e->file_size)
                return -EBADMSG;        /* trailing bytes after the end marker */
        *ret = TAKE_PTR(e);
        return 0;
}

int queue_file_content_next(int fd, const QueueEnvelope *e, uint64_t *offset, char buf[static QUEUE_RECORD_MAX]) {
        uint32_t len;
        char type;
        int r;

        /* An empty content record would read as the end: only queue_writer_content() writes them, never empty,
         * but a reader must not stop early on one, so it skips them. */
        for (;;) {
                r = record_header(fd, *offset, e->file_size, &type, &len);
                if (r < 0)
                        return r;
                if (type == QUEUE_REC_END)
                        return 0;
                if (type != QUEUE_REC_CONTENT)
                        return -EBADMSG;
                r = pread_full(fd, buf, len, *offset + QUEUE_RECORD_HEADER);
                if (r < 0)
                        return r;
                *offset += QUEUE_RECORD_HEADER + len;
                if (len > 0)
                        return (int) len;
        }
}

int queue_file_content_foreach(int fd, const QueueEnvelope *e, QueueContentFunc cb, void *userdata) {
        _cleanup_free_ char *buf = malloc(QUEUE_RECORD_MAX);
        uint64_t off = e->content_offset;
        int r;

        if (!buf)
                return -ENOMEM;
        while ((r = queue_file_content_next(fd, e, &off, buf)) > 0) {
                r = cb(buf, (size_t) r, userdata);
                if (r < 0)
                        return r;
        }
        return r;
}

int queue_file_mark_done(int fd, uint64_t offset) {
        char type = QUEUE_REC_DONE, cur;
        int r;

        r = pread_full(fd, &cur, 1, offset);
        if (r < 0)
                return r;
        if (cur == QUEUE_REC_DONE)
                return 0;
        if (cur != QUEUE_REC_RECIPIENT)
                return -EBADMSG;
        if (pwrite(fd, &type, 1, (off_t) offset) != 1)
                return errno > 0 ? -errno : -EIO;
        return 0;
}

void queue_writer_init(QueueWriter *w, int fd) {
        w->fd = fd;
        w->len = 0;
        w->written = 0;
}

int queue_writer_flush(QueueWriter *w) {
        int r = write_full(w->fd, w->buf, w->len);

        if (r < 0)
                return r;
        w->written += w->len;
        w->len = 0;
        return 0;
}

uint64_t queue_writer_offset(const QueueWriter *w) {
        return w->written + w->len;
}

int queue_writer_record(QueueWriter *w, QueueRecordType type, const void *data, size_t len) {
        int r;

        if (len > QUEUE_RECORD_MAX)
                return -E2BIG;
        if (len + QUEUE_RECORD_HEADER > sizeof w->buf - w->len) {
                r = queue_writer_flush(w);
                if (r < 0)
                        return r;
        }
        unsigned char *h = (unsigned char *) w->buf + w->len;
        h[0] = (unsigned char) type;
        h[1] = (unsigned char) (len >> 24);
        h[2] = (unsigned char) (len >> 16);
        h[3] = (unsigned char) (len >> 8);
        h[4] = (unsigned char) len;
        if (len > 0)
                memcpy(h + QUEUE_RECORD_HEADER, data, len);
        w->len += QUEUE_RECORD_HEADER + len;
        return 0;
}

int queue_writer_recipient(QueueWriter *w, const char *address, const char *notify, const char *orcpt) {
        _cleanup_free_ char *options = NULL;
        unsigned mask;
        int r;

        if (!isempty(notify) && dsn_notify_parse(notify, strlen(notify), &mask) < 0)
                return -EINVAL;
        if (!isempty(orcpt) && !dsn_orcpt_valid(orcpt, strlen(orcpt)))
                return -EINVAL;
        r = queue_writer_record(w, QUEUE_REC_RECIPIENT, address, strlen(address));
        if (r < 0 || (isempty(notify) && isempty(orcpt)))
                return r;
        if (asprintf(&options, "%s%s%s%s%s", isempty(notify) ? "" : "NOTIFY=", strempty(notify),
                     !isempty(notify) && !isempty(orcpt) ? " " : "", isempty(orcpt) ? "" : "ORCPT=",
                     strempty(orcpt)) < 0)
                return -ENOMEM;
        return queue_writer_record(w, QUEUE_REC_DSN_RECIPIENT_OPTIONS, options, strlen(options));
}

int queue_writer_recordf(QueueWriter *w, QueueRecordType type, const char *fmt, ...) {
        _cleanup_free_ char *s = NULL;
        va_list ap;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        if (n < 0)
                return -ENOMEM;
        return queue_writer_record(w, type, s, (size_t) n);
}

int queue_writer_content(QueueWriter *w, const void *data, size_t len) {
        const char *p = data;
        int r;

        while (len > 0) {
                /* Fill the buffer's room exactly, so content records stay large. */
                size_t room = sizeof w->buf - w->len;
                if (room <= QUEUE_RECORD_HEADER) {
                        r = queue_writer_flush(w);
                        if (r < 0)
                                return r;
                        room = sizeof w->buf;
                }
                size_t n = MIN(len, MIN(room - QUEUE_RECORD_HEADER, (size_t) QUEUE_RECORD_MAX));
                r = queue_writer_record(w, QUEUE_REC_CONTENT, p, n);
                if (r < 0)
                        return r;
                p += n;
                len -= n;
        }
        return 0;
}
