/* bounce-log.c: the per-message bounce, defer and trace logs that the bounce role alone writes, next to
 * the queue: record files in the queue file's framing, appended durably and read back strictly. */
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "address.h"
#include "bounce.h"
#include "dsn.h"
#include "io-util.h"
#include "log.h"

static const char *const log_kinds[_BOUNCE_LOG_KIND_MAX] = {
        [BOUNCE_LOG_KIND_BOUNCE] = "bounce",
        [BOUNCE_LOG_KIND_DEFER] = "defer",
        [BOUNCE_LOG_KIND_TRACE] = "trace",
};

const char *bounce_log_kind_to_string(BounceLogKind k) {
        return k >= 0 && k < _BOUNCE_LOG_KIND_MAX ? log_kinds[k] : NULL;
}

BounceLogKind bounce_log_kind_from_string(const char *s) {
        for (BounceLogKind k = 0; k < _BOUNCE_LOG_KIND_MAX; k++)
                if (s && streq(s, log_kinds[k]))
                        return k;
        return _BOUNCE_LOG_KIND_INVALID;
}

void bounce_record_done(BounceRecord *r) {
        free(r->recipient);
        free(r->original_recipient);
        free(r->orcpt);
        free(r->notify);
        free(r->action);
        free(r->status);
        free(r->relay);
        free(r->text);
        *r = (BounceRecord) {};
}

BounceLog *bounce_log_free(BounceLog *l) {
        if (!l)
                return NULL;
        for (size_t i = 0; i < l->n_records; i++)
                bounce_record_done(l->records + i);
        free(l->records);
        free(l);
        return NULL;
}

bool bounce_status_valid(const char *s) {
        size_t n;

        /* class "." subject "." detail: 2, 4 or 5; then 1 to 3 digits twice (RFC 3463). */
        if (!s || (s[0] != '2' && s[0] != '4' && s[0] != '5') || s[1] != '.')
                return false;
        s += 2;
        for (int part = 0; part < 2; part++) {
                n = strspn(s, "0123456789");
                if (n < 1 || n > 3)
                        return false;
                s += n;
                if (part == 0 && *s++ != '.')
                        return false;
        }
        return *s == '\0';
}

static bool text_clean(const char *s, size_t max) {
        size_t n = strlen(s);

        if (n > max)
                return false;
        for (size_t i = 0; i < n; i++)
                if ((unsigned char) s[i] < 0x20 && s[i] != '\t')
                        return false;
        return true;
}

int bounce_record_check(const BounceRecord *r, const char **ret_why) {
        static const char *const actions[] = { "failed", "delayed", "delivered", "expanded", "relayed" };
        unsigned mask;
        bool action = false;

        for (size_t i = 0; i < ELEMENTSOF(actions); i++)
                action = action || streq(r->action, actions[i]);
        *ret_why = NULL;
        if (isempty(r->recipient) || !address_valid(r->recipient))
                *ret_why = "bad recipient";
        else if (!isempty(r->original_recipient) && !address_valid(r->original_recipient))
                *ret_why = "bad original recipient";
        else if (!isempty(r->orcpt) && !dsn_orcpt_valid(r->orcpt, strlen(r->orcpt)))
                *ret_why = "bad ORCPT";
        else if (!isempty(r->notify) && dsn_notify_parse(r->notify, strlen(r->notify), &mask) < 0)
                *ret_why = "bad NOTIFY";
        else if (!action)
                *ret_why = "bad action";
        else if (!bounce_status_valid(r->status))
                *ret_why = "bad status";
        else if (!text_clean(r->relay, BOUNCE_RELAY_MAX))
                *ret_why = "bad relay";
        else if (!text_clean(r->text, BOUNCE_TEXT_MAX))
                *ret_why = "bad text";
        return *ret_why ? -EINVAL : 0;
}

/* ---- reading ---- */

/* For the record reader: the magic record, then entries and 'W' records up to the end of the file, which must
 * fall on a record boundary (the log is appended to). The order within an entry is parse_entry()'s to check. */
static const RecordFormat bounce_log_format = {
        .sections = (const RecordSection[]) {
                { .end = BOUNCE_REC_MAGIC },
                { RECORD_TYPES(BOUNCE_REC_RECIPIENT, BOUNCE_REC_ORIGINAL, BOUNCE_REC_ORCPT, BOUNCE_REC_NOTIFY,
                               BOUNCE_REC_ACTION, BOUNCE_REC_STATUS, BOUNCE_REC_RELAY, BOUNCE_REC_TEXT,
                               BOUNCE_REC_TIME, BOUNCE_REC_WARNED),
                  '\0' },
        },
        .n_sections = 2,
};

/* The next record, if a whole one of a type allowed where it stands is there. */
static bool reader_next(RecordReader *rr, char *ret_type, const char **ret_data, size_t *ret_len) {
        Record rec;

        if (record_reader_next(rr, &rec) <= 0 || record_reader_data(rr, &rec, ret_data) < 0)
                return false;
        *ret_type = rec.type;
        *ret_len = rec.len;
        return true;
}

static int parse_time(const char *data, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (len == 0 || len > 20)
                return -EBADMSG;
        for (size_t i = 0; i < len; i++) {
                if (data[i] < '0' || data[i] > '9')
                        return -EBADMSG;
                if (v > (UINT64_MAX - (uint64_t) (data[i] - '0')) / 10)
                        return -EBADMSG;
                v = v * 10 + (uint64_t) (data[i] - '0');
        }
        *ret = v;
        return 0;
}

/* One entry from its 'R' record on: 0 and the record, -EBADMSG where it is incomplete or malformed. */
static int parse_entry(RecordReader *rr, const char *data, size_t len, BounceRecord *ret) {
        static const char order[] = { BOUNCE_REC_ORIGINAL, BOUNCE_REC_ORCPT, BOUNCE_REC_NOTIFY, BOUNCE_REC_ACTION,
                                      BOUNCE_REC_STATUS, BOUNCE_REC_RELAY, BOUNCE_REC_TEXT };
        BounceRecord r = {};
        char **fields[] = { &r.recipient, &r.original_recipient, &r.orcpt, &r.notify, &r.action, &r.status,
                            &r.relay, &r.text };
        const char *why;
        char type = BOUNCE_REC_RECIPIENT;
        int k = -EBADMSG;

        for (size_t i = 0; i < ELEMENTSOF(fields); i++) {
                if (i > 0 && (!reader_next(rr, &type, &data, &len) || type != order[i - 1]))
                        goto fail;
                if (memchr(data, '\0', len))
                        goto fail;
                *fields[i] = strndup(data, len);
                if (!*fields[i]) {
                        k = -ENOMEM;
                        goto fail;
                }
        }
        if (!reader_next(rr, &type, &data, &len) || type != BOUNCE_REC_TIME || parse_time(data, len, &r.time_usec) < 0)
                goto fail;
        /* What went in was checked; what comes out is checked again, as the file may have been damaged. */
        if (bounce_record_check(&r, &why) < 0)
                goto fail;
        *ret = r;
        return 0;
fail:
        bounce_record_done(&r);
        return k;
}

int bounce_log_parse(const char *buf, size_t len, BounceLog **ret, size_t *ret_valid) {
        _cleanup_(bounce_log_freep) BounceLog *l = NULL;
        _cleanup_(record_reader_done) RecordReader rr = {};
        const char *data;
        size_t n, valid = 0;
        char type;

        l = calloc(1, sizeof(BounceLog));
        if (!l)
                return -ENOMEM;
        record_reader_init(&rr, &bounce_log_format, buf, len);
        if (reader_next(&rr, &type, &data, &n) && n == STRLEN(BOUNCE_LOG_MAGIC) &&
            memcmp(data, BOUNCE_LOG_MAGIC, n) == 0) {
                valid = rr.offset;
                while (reader_next(&rr, &type, &data, &n)) {
                        if (type == BOUNCE_REC_WARNED) {
                                uint64_t t;
                                if (parse_time(data, n, &t) < 0)
                                        break;
                                l->warned = true;
                        } else if (type == BOUNCE_REC_RECIPIENT) {
                                BounceRecord r;
                                int k = parse_entry(&rr, data, n, &r);
                                if (k == -ENOMEM)
                                        return k;
                                if (k < 0)
                                        break;
                                BounceRecord *nr = realloc(l->records, (l->n_records + 1) * sizeof(BounceRecord));
                                if (!nr) {
                                        bounce_record_done(&r);
                                        return -ENOMEM;
                                }
                                l->records = nr;
                                l->records[l->n_records++] = r;
                        } else
                                break;
                        valid = rr.offset;
                }
        }
        *ret = TAKE_PTR(l);
        *ret_valid = valid;
        return 0;
}

/* ---- writing ---- */

static int write_string(QueueWriter *w, BounceLogRecordType type, const char *s) {
        return queue_writer_record(w, (QueueRecordType) type, strempty(s), strlen(strempty(s)));
}

int bounce_log_write(QueueWriter *w, bool magic, const BounceRecord *records, size_t n, bool warned) {
        int r;

        if (magic && (r = write_string(w, BOUNCE_REC_MAGIC, BOUNCE_LOG_MAGIC)) < 0)
                return r;
        for (size_t i = 0; i < n; i++) {
                const BounceRecord *e = records + i;
                if ((r = write_string(w, BOUNCE_REC_RECIPIENT, e->recipient)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_ORIGINAL, e->original_recipient)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_ORCPT, e->orcpt)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_NOTIFY, e->notify)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_ACTION, e->action)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_STATUS, e->status)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_RELAY, e->relay)) < 0 ||
                    (r = write_string(w, BOUNCE_REC_TEXT, e->text)) < 0 ||
                    (r = queue_writer_recordf(w, (QueueRecordType) BOUNCE_REC_TIME, "%" PRIu64, e->time_usec)) < 0)
                        return r;
        }
        if (warned && (r = queue_writer_recordf(w, (QueueRecordType) BOUNCE_REC_WARNED, "%" PRIu64,
                                                now_realtime_usec())) < 0)
                return r;
        return queue_writer_flush(w);
}

/* The whole file, at most BOUNCE_LOG_SIZE_MAX bytes. */
static int read_all(int fd, char **ret, size_t *ret_size) {
        _cleanup_free_ char *buf = NULL;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        if (!S_ISREG(st.st_mode))
                return -EBADMSG;
        if ((uint64_t) st.st_size > BOUNCE_LOG_SIZE_MAX)
                return -EFBIG;
        buf = malloc((size_t) st.st_size + 1);
        if (!buf)
                return -ENOMEM;
        r = pread_full(fd, buf, (size_t) st.st_size, 0);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(buf);
        *ret_size = (size_t) st.st_size;
        return 0;
}

int bounce_log_read(int dir_fd, const char *id, BounceLog **ret) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        size_t size, valid;
        int r;

        if (!queue_id_valid(id))
                return -EINVAL;
        fd = openat(dir_fd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0) {
                if (errno != ENOENT)
                        return -errno;
                *ret = calloc(1, sizeof(BounceLog));
                return *ret ? 0 : -ENOMEM;
        }
        r = read_all(fd, &buf, &size);
        if (r < 0)
                return r;
        r = bounce_log_parse(buf, size, ret, &valid);
        if (r < 0)
                return r;
        if (valid != size)
                log_mail(LOG_WARNING, id, LOG_NO_FIELDS,
                         "a delivery status log is damaged after byte %zu of %zu; using what comes before", valid,
                         size);
        return 0;
}

int bounce_log_append(int dir_fd, const char *id, const BounceRecord *records, size_t n, bool warned) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ QueueWriter *w = NULL;
        _cleanup_free_ char *buf = NULL;
        bool created = true;
        size_t size = 0;
        int r;

        if (!queue_id_valid(id))
                return -EINVAL;
        w = malloc(sizeof(QueueWriter));
        if (!w)
                return -ENOMEM;
        fd = openat(dir_fd, id, O_RDWR | O_APPEND | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
        if (fd < 0 && errno == EEXIST) {
                created = false;
                fd = openat(dir_fd, id, O_RDWR | O_APPEND | O_CLOEXEC | O_NOFOLLOW);
        }
        if (fd < 0)
                return -errno;

        if (!created) {
                _cleanup_(bounce_log_freep) BounceLog *l = NULL;
                size_t valid;

                r = read_all(fd, &buf, &size);
                if (r < 0)
                        return r;
                r = bounce_log_parse(buf, size, &l, &valid);
                if (r < 0)
                        return r;
                /* A torn tail from a crash (or damage): appending after it would hide the new entries
                 * behind it. The calls that wrote it were never answered, so their senders repeat them. */
                if (valid != size) {
                        log_mail(LOG_WARNING, id, LOG_NO_FIELDS,
                                 "cutting a damaged delivery status log back from %zu to %zu bytes", size, valid);
                        if (ftruncate(fd, (off_t) valid) < 0)
                                return -errno;
                        size = valid;
                }
        }

        queue_writer_init(w, fd);
        r = bounce_log_write(w, size == 0, records, n, warned);
        if (r >= 0 && fdatasync(fd) < 0)
                r = -errno;
        if (r < 0) {
                /* Leave no half-written entry behind (ENOSPC): the caller gets an error and repeats. */
                (void) ftruncate(fd, (off_t) size);
                return r;
        }
        /* A new file's name is durable only with its directory; an empty one may be left from an append
         * that failed after creating it. */
        if ((created || size == 0) && fsync(dir_fd) < 0)
                return -errno;
        return 0;
}

static int latest_cmp(const void *a, const void *b) {
        const BounceRecord *x = *(const BounceRecord *const *) a, *y = *(const BounceRecord *const *) b;
        int c = strcmp(x->recipient, y->recipient);

        if (c == 0)
                c = strcmp(x->original_recipient, y->original_recipient);
        return c != 0 ? c : (x < y ? -1 : x > y);
}

static int position_cmp(const void *a, const void *b) {
        const BounceRecord *x = *(const BounceRecord *const *) a, *y = *(const BounceRecord *const *) b;
        return x < y ? -1 : x > y;
}

int bounce_log_latest(const BounceLog *l, BounceRecord **ret, size_t *ret_n) {
        _cleanup_free_ const BounceRecord **sorted = NULL;
        _cleanup_free_ BounceRecord *out = NULL;
        size_t n = 0;

        sorted = calloc(MAX(l->n_records, (size_t) 1), sizeof(BounceRecord *));
        out = calloc(MAX(l->n_records, (size_t) 1), sizeof(BounceRecord));
        if (!sorted || !out)
                return -ENOMEM;
        for (size_t i = 0; i < l->n_records; i++)
                sorted[i] = l->records + i;
        /* By recipient, then by position: the last of each run is the one that counts. */
        qsort(sorted, l->n_records, sizeof(BounceRecord *), latest_cmp);
        for (size_t i = 0; i < l->n_records; i++)
                if (i + 1 == l->n_records || !streq(sorted[i]->recipient, sorted[i + 1]->recipient) ||
                    !streq(sorted[i]->original_recipient, sorted[i + 1]->original_recipient))
                        sorted[n++] = sorted[i];
        qsort(sorted, n, sizeof(BounceRecord *), position_cmp);
        for (size_t i = 0; i < n; i++)
                out[i] = *sorted[i];
        *ret = TAKE_PTR(out);
        *ret_n = n;
        return 0;
}

int bounce_log_remove(int dir_fd, const char *id) {
        if (!queue_id_valid(id))
                return -EINVAL;
        if (unlinkat(dir_fd, id, 0) < 0)
                return errno == ENOENT ? 0 : -errno;
        if (fsync(dir_fd) < 0)
                return -errno;
        return 0;
}
