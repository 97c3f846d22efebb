/* queue-file.c: reading, validating and writing queue files. */
#include <stdarg.h>
#include <sys/stat.h>

#include "dsn.h"
#include "io-util.h"
#include "queue-file.h"
#include "string-util.h"

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
        free(e->file);
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

const RecordFormat queue_file_format = {
        .sections = (const RecordSection[_QUEUE_SECTION_MAX]) {
                [QUEUE_SECTION_MAGIC] = { .end = QUEUE_REC_MAGIC },
                [QUEUE_SECTION_TIME] = { .end = QUEUE_REC_TIME },
                [QUEUE_SECTION_ATTRS] = { RECORD_TYPES(QUEUE_REC_ATTR), QUEUE_REC_SENDER },
                [QUEUE_SECTION_RECIPIENTS] = { RECORD_TYPES(QUEUE_REC_RECIPIENT, QUEUE_REC_DONE,
                                                            QUEUE_REC_DSN_RECIPIENT_OPTIONS),
                                               QUEUE_REC_MESSAGE },
                [QUEUE_SECTION_CONTENT] = { RECORD_TYPES(QUEUE_REC_CONTENT), QUEUE_REC_END },
        },
        .n_sections = _QUEUE_SECTION_MAX,
        .empty = RECORD_TYPES(QUEUE_REC_MESSAGE, QUEUE_REC_END),
};

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

/* One record that the allow-list let through (queue_file_format): what is left to check is its data. */
static int envelope_add(QueueEnvelope *e, RecordReader *rr, const Record *rec, size_t *n_attrs) {
        _cleanup_free_ char *s = NULL;
        char *end;
        int r;

        if (rec->type == QUEUE_REC_CONTENT) {
                e->content_size += rec->len;
                return 0;
        }
        if (rec->type == QUEUE_REC_MESSAGE) {
                if (e->n_recipients == 0)
                        return -EBADMSG;
                e->content_offset = rec->offset + QUEUE_RECORD_HEADER;
                return 0;
        }
        if (rec->type == QUEUE_REC_END)
                return 0;
        r = record_reader_string(rr, rec, &s);
        if (r < 0)
                return r;

        switch (rec->type) {
        case QUEUE_REC_MAGIC:
                return streq(s, QUEUE_MAGIC) ? 0 : -EBADMSG;
        case QUEUE_REC_TIME:
                errno = 0;
                e->arrival_usec = strtoull(s, &end, 10);
                if (errno != 0 || isempty(s) || *end != '\0')
                        return -EBADMSG;
                return 0;
        case QUEUE_REC_ATTR:
                if (!strchr(s, '='))
                        return -EBADMSG;
                return strv_push(&e->attrs, n_attrs, TAKE_PTR(s));
        case QUEUE_REC_SENDER:
                e->sender = TAKE_PTR(s);
                return 0;
        case QUEUE_REC_DSN_RECIPIENT_OPTIONS: {
                QueueRecipient *last = e->recipients + e->n_recipients - 1;
                return dsn_options_parse(s, &last->notify, &last->orcpt);
        }
        case QUEUE_REC_RECIPIENT:
        case QUEUE_REC_DONE: {
                if (isempty(s))
                        return -EBADMSG;
                QueueRecipient *nr = realloc(e->recipients, (e->n_recipients + 1) * sizeof(QueueRecipient));
                if (!nr)
                        return -ENOMEM;
                e->recipients = nr;
                nr[e->n_recipients++] = (QueueRecipient) {
                        .address = TAKE_PTR(s),
                        .offset = rec->offset,
                        .done = rec->type == QUEUE_REC_DONE,
                };
                return 0;
        }
        default:
                return -EBADMSG;        /* not in the allow-list: never reached */
        }
}

static int envelope_read(RecordReader *rr, uint64_t size, QueueEnvelope **ret);

int queue_file_read(int fd, QueueEnvelope **ret) {
        _cleanup_(record_reader_done) RecordReader rr = {};
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        record_reader_init_fd(&rr, &queue_file_format, fd, (uint64_t) st.st_size);
        return envelope_read(&rr, (uint64_t) st.st_size, ret);
}

int queue_file_read_delivery(int fd, const struct stat *st, QueueEnvelope **ret) {
        _cleanup_(record_reader_done) RecordReader rr = {};
        QueueEnvelope *e;
        int r;

        if (!S_ISREG(st->st_mode))
                return -EBADMSG;
        record_reader_init_fd(&rr, &queue_file_format, fd, (uint64_t) st->st_size);
        r = envelope_read(&rr, (uint64_t) st->st_size, &e);
        if (r < 0)
                return r;
        if (rr.window && rr.window_off == 0 && rr.window_len == e->file_size)
                e->file = TAKE_PTR(rr.window);
        *ret = e;
        return 0;
}

int queue_file_read_delivery_bytes(const void *file, size_t size, QueueEnvelope **ret) {
        RecordReader rr;
        unsigned char *copy = malloc(MAX(size, 1U));
        QueueEnvelope *e;
        int r;

        if (!copy)
                return -ENOMEM;
        memcpy(copy, file, size);
        record_reader_init(&rr, &queue_file_format, copy, size);
        r = envelope_read(&rr, size, &e);
        if (r < 0) {
                free(copy);
                return r;
        }
        e->file = copy;
        *ret = e;
        return 0;
}

static int envelope_read(RecordReader *rr, uint64_t size, QueueEnvelope **ret) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        bool options_allowed = false;   /* the record before was 'R' or 'D' */
        size_t n_attrs = 0;
        Record rec;
        int r;

        e = calloc(1, sizeof(QueueEnvelope));
        if (!e)
                return -ENOMEM;
        e->file_size = size;

        while ((r = record_reader_next(rr, &rec)) > 0) {
                /* The one rule of order the table cannot say: options belong to the recipient before. */
                if (rec.type == QUEUE_REC_DSN_RECIPIENT_OPTIONS && !options_allowed)
                        return -EBADMSG;
                r = envelope_add(e, rr, &rec, &n_attrs);
                if (r < 0)
                        return r;
                options_allowed = rec.type == QUEUE_REC_RECIPIENT || rec.type == QUEUE_REC_DONE;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

void queue_file_content_reader(RecordReader *rr, int fd, const QueueEnvelope *e, uint64_t offset) {
        if (e->file)
                record_reader_init(rr, &queue_file_format, e->file, (size_t) e->file_size);
        else
                record_reader_init_fd(rr, &queue_file_format, fd, e->file_size);
        record_reader_seek(rr, offset, QUEUE_SECTION_CONTENT);
}

int queue_file_content_next(int fd, const QueueEnvelope *e, uint64_t *offset, char buf[static QUEUE_RECORD_MAX]) {
        _cleanup_(record_reader_done) RecordReader rr = {};
        const char *data;
        Record rec;
        int r;

        queue_file_content_reader(&rr, fd, e, *offset);
        for (;;) {
                r = record_reader_next(&rr, &rec);
                if (r <= 0)
                        return r;
                if (rec.type == QUEUE_REC_END)
                        return 0;
                *offset = rr.offset;
                if (rec.len == 0)
                        continue;       /* nothing writes them, but they must not read as the end */
                r = record_reader_data(&rr, &rec, &data);
                if (r < 0)
                        return r;
                memcpy(buf, data, rec.len);
                return (int) rec.len;
        }
}

int queue_file_content_foreach(int fd, const QueueEnvelope *e, QueueContentFunc cb, void *userdata) {
        _cleanup_(record_reader_done) RecordReader rr = {};

        queue_file_content_reader(&rr, fd, e, e->content_offset);
        return record_reader_foreach(&rr, cb, userdata);
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
        va_list ap;
        int r;

        va_start(ap, fmt);
        r = record_writer_recordv(w, (char) type, fmt, ap);
        va_end(ap);
        return r;
}
