/* maildrop-file.c: writing and strictly reading maildrop files. */
#include <ctype.h>
#include <inttypes.h>
#include <sys/random.h>

#include "address.h"
#include "dsn.h"
#include "maildrop-file.h"
#include "string-util.h"
#include "verp.h"

MaildropEnvelope *maildrop_envelope_free(MaildropEnvelope *e) {
        if (!e)
                return NULL;
        free(e->sender);
        strv_free(e->recipients);
        free(e->full_name);
        free(e->dsn_notify);
        free(e->dsn_ret);
        free(e->dsn_envid);
        free(e->body_type);
        free(e->verp_delims);
        free(e);
        return NULL;
}

static void upcase(char *s) {
        for (; *s; s++)
                *s = (char) toupper((unsigned char) *s);
}

/* The DSN values follow dsn.h, as smtpd and cleanup check them. */
bool maildrop_dsn_notify_normalize(char *s) {
        char text[DSN_NOTIFY_TEXT_MAX];
        unsigned mask;

        if (!s || strlen(s) >= 64 || dsn_notify_parse(s, strlen(s), &mask) < 0)
                return false;
        dsn_notify_format(mask, text);
        strcpy(s, text);        /* the canonical form is never longer than a valid input */
        return true;
}

bool maildrop_dsn_ret_normalize(char *s) {
        const char *canonical = s ? dsn_ret_parse(s, strlen(s)) : NULL;

        if (!canonical)
                return false;
        strcpy(s, canonical);
        return true;
}

bool maildrop_body_type_normalize(char *s) {
        if (!s)
                return false;
        upcase(s);
        return streq(s, "7BIT") || streq(s, "8BITMIME");
}

bool maildrop_envid_valid(const char *s) {
        return s && dsn_envid_valid(s, strlen(s));
}

bool maildrop_full_name_valid(const char *s) {
        if (!s || strlen(s) > MAILDROP_ATTR_MAX)
                return false;
        for (; *s; s++)
                if ((unsigned char) *s < ' ' || *s == 0x7f)
                        return false;
        return true;
}

int maildrop_name_new(char ret[static MAILDROP_NAME_SIZE]) {
        char id[QUEUE_ID_SIZE];
        uint64_t rnd;
        int r;

        r = queue_id_new(id);
        if (r < 0)
                return r;
        /* Blocks only before the kernel's pool is initialised, early at boot. */
        if (getrandom(&rnd, sizeof rnd, 0) != (ssize_t) sizeof rnd)
                return errno > 0 ? -errno : -EIO;
        (void) snprintf(ret, MAILDROP_NAME_SIZE, "%s%016" PRIX64, id, rnd);
        return 0;
}

bool maildrop_name_valid(const char *s) {
        char id[QUEUE_ID_SIZE];

        if (!s || strlen(s) != MAILDROP_NAME_LEN)
                return false;
        memcpy(id, s, QUEUE_ID_LEN);
        id[QUEUE_ID_LEN] = '\0';
        if (!queue_id_valid(id))
                return false;
        for (size_t i = QUEUE_ID_LEN; i < MAILDROP_NAME_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
                        return false;
        return true;
}

/* ---- reading ---- */

/* The queue file's sections (queue-file.h), without done recipients or DSN options records. */
static const RecordFormat maildrop_format = {
        .sections = (const RecordSection[_QUEUE_SECTION_MAX]) {
                [QUEUE_SECTION_MAGIC] = { .end = QUEUE_REC_MAGIC },
                [QUEUE_SECTION_TIME] = { .end = QUEUE_REC_TIME },
                [QUEUE_SECTION_ATTRS] = { RECORD_TYPES(QUEUE_REC_ATTR), QUEUE_REC_SENDER },
                [QUEUE_SECTION_RECIPIENTS] = { RECORD_TYPES(QUEUE_REC_RECIPIENT), QUEUE_REC_MESSAGE },
                [QUEUE_SECTION_CONTENT] = { RECORD_TYPES(QUEUE_REC_CONTENT), QUEUE_REC_END },
        },
        .n_sections = _QUEUE_SECTION_MAX,
        .empty = RECORD_TYPES(QUEUE_REC_MESSAGE, QUEUE_REC_END),
        .head_max = MAILDROP_ENVELOPE_MAX,
};

/* Sets one allow-listed attribute, each at most once. */
static int envelope_set_attr(MaildropEnvelope *e, char *attr) {
        char *eq = strchr(attr, '='), **slot;
        const char *name = attr, *value;
        bool ok;

        if (!eq)
                return -EBADMSG;
        *eq = '\0';
        value = eq + 1;
        if (streq(name, "extract_recipients")) {
                if (e->extract_recipients || !streq(value, "yes"))
                        return -EBADMSG;
                e->extract_recipients = true;
                return 0;
        }
        if (streq(name, "full_name")) {
                slot = &e->full_name;
                ok = maildrop_full_name_valid(value);
        } else if (streq(name, "dsn_notify")) {
                slot = &e->dsn_notify;
                ok = strlen(value) <= 64;
        } else if (streq(name, "dsn_ret")) {
                slot = &e->dsn_ret;
                ok = true;
        } else if (streq(name, "dsn_envid")) {
                slot = &e->dsn_envid;
                ok = maildrop_envid_valid(value);
        } else if (streq(name, VERP_ATTR)) {
                /* Checked against verp_delimiter_filter by sendmail and again by cleanup. */
                slot = &e->verp_delims;
                ok = strlen(value) == 2;
        } else if (streq(name, "body_type")) {
                slot = &e->body_type;
                ok = true;
        } else
                return -EBADMSG;
        if (*slot || !ok)
                return -EBADMSG;
        *slot = strdup(value);
        if (!*slot)
                return -ENOMEM;
        /* The normalisers accept only the upper-case forms unchanged. */
        if (slot == &e->dsn_notify || slot == &e->dsn_ret || slot == &e->body_type) {
                _cleanup_free_ char *copy = strdup(*slot);
                if (!copy)
                        return -ENOMEM;
                bool valid = slot == &e->dsn_notify ? maildrop_dsn_notify_normalize(copy)
                           : slot == &e->dsn_ret    ? maildrop_dsn_ret_normalize(copy)
                                                    : maildrop_body_type_normalize(copy);
                if (!valid || !streq(copy, *slot))
                        return -EBADMSG;
        }
        return 0;
}

/* One record that the allow-list let through: its data, and the limits of the whole. */
static int envelope_add(MaildropEnvelope *e, RecordReader *rr, const Record *rec, uint64_t content_max) {
        _cleanup_free_ char *s = NULL;
        const char *data;
        char *end;
        int r;

        switch (rec->type) {
        case QUEUE_REC_MAGIC:
                r = record_reader_data(rr, rec, &data);
                if (r < 0)
                        return r;
                if (rec->len != STRLEN(MAILDROP_MAGIC) || memcmp(data, MAILDROP_MAGIC, rec->len) != 0)
                        return -EBADMSG;
                return 0;
        case QUEUE_REC_MESSAGE:
                if (e->n_recipients == 0 && !e->extract_recipients)
                        return -EBADMSG;
                e->content_offset = rec->offset + QUEUE_RECORD_HEADER;
                return 0;
        case QUEUE_REC_CONTENT:
                if (rec->len > content_max || e->content_size > content_max - rec->len)
                        return -EFBIG;
                e->content_size += rec->len;
                return 0;
        case QUEUE_REC_END:
                return 0;
        default:
                break;
        }

        r = record_reader_string(rr, rec, &s);
        if (r < 0)
                return r;
        switch (rec->type) {
        case QUEUE_REC_TIME:
                if (isempty(s) || !isdigit((unsigned char) s[0]))
                        return -EBADMSG;
                errno = 0;
                e->time_usec = strtoull(s, &end, 10);
                return errno != 0 || *end != '\0' ? -EBADMSG : 0;
        case QUEUE_REC_ATTR:
                return rec->len > MAILDROP_ATTR_MAX ? -EBADMSG : envelope_set_attr(e, s);
        case QUEUE_REC_SENDER:
                if (!address_valid(s))
                        return -EBADMSG;
                e->sender = TAKE_PTR(s);
                return 0;
        case QUEUE_REC_RECIPIENT:
                if (isempty(s) || !address_valid(s))
                        return -EBADMSG;
                return strv_push(&e->recipients, &e->n_recipients, TAKE_PTR(s));
        default:
                return -EBADMSG;        /* not in the allow-list: never reached */
        }
}

int maildrop_parse(const void *buf, size_t len, uint64_t content_max, MaildropEnvelope **ret) {
        _cleanup_(maildrop_envelope_freep) MaildropEnvelope *e = NULL;
        RecordReader rr;
        Record rec;
        int r;

        e = calloc(1, sizeof(MaildropEnvelope));
        if (!e)
                return -ENOMEM;
        e->recipients = calloc(1, sizeof(char *));
        if (!e->recipients)
                return -ENOMEM;

        record_reader_init(&rr, &maildrop_format, buf, len);
        while ((r = record_reader_next(&rr, &rec)) > 0) {
                r = envelope_add(e, &rr, &rec, content_max);
                if (r < 0)
                        return r;
        }
        if (r < 0)
                return r;
        *ret = TAKE_PTR(e);
        return 0;
}

int maildrop_content_foreach(const void *buf, size_t len, const MaildropEnvelope *e, QueueContentFunc cb,
                             void *userdata) {
        RecordReader rr;

        record_reader_init(&rr, &maildrop_format, buf, len);
        record_reader_seek(&rr, e->content_offset, QUEUE_SECTION_CONTENT);
        return record_reader_foreach(&rr, cb, userdata);
}

/* ---- writing ---- */

static int write_attr(QueueWriter *w, const char *name, const char *value) {
        if (!value)
                return 0;
        return queue_writer_recordf(w, QUEUE_REC_ATTR, "%s=%s", name, value);
}

int maildrop_write_envelope(QueueWriter *w, const MaildropEnvelope *e) {
        int r;

        if ((r = queue_writer_record(w, QUEUE_REC_MAGIC, MAILDROP_MAGIC, STRLEN(MAILDROP_MAGIC))) < 0 ||
            (r = queue_writer_recordf(w, QUEUE_REC_TIME, "%" PRIu64, e->time_usec)) < 0 ||
            (r = write_attr(w, "extract_recipients", e->extract_recipients ? "yes" : NULL)) < 0 ||
            (r = write_attr(w, "full_name", e->full_name)) < 0 ||
            (r = write_attr(w, "dsn_notify", e->dsn_notify)) < 0 ||
            (r = write_attr(w, "dsn_ret", e->dsn_ret)) < 0 ||
            (r = write_attr(w, "dsn_envid", e->dsn_envid)) < 0 ||
            (r = write_attr(w, "body_type", e->body_type)) < 0 ||
            (r = write_attr(w, VERP_ATTR, e->verp_delims)) < 0 ||
            (r = queue_writer_record(w, QUEUE_REC_SENDER, strempty(e->sender), strlen(strempty(e->sender)))) < 0)
                return r;
        for (size_t i = 0; i < e->n_recipients; i++)
                if ((r = queue_writer_record(w, QUEUE_REC_RECIPIENT, e->recipients[i], strlen(e->recipients[i]))) < 0)
                        return r;
        if (queue_writer_offset(w) + QUEUE_RECORD_HEADER > MAILDROP_ENVELOPE_MAX)
                return -E2BIG;
        return queue_writer_record(w, QUEUE_REC_MESSAGE, NULL, 0);
}

int maildrop_write_end(QueueWriter *w) {
        int r = queue_writer_record(w, QUEUE_REC_END, NULL, 0);
        return r < 0 ? r : queue_writer_flush(w);
}
