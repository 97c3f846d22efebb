/* maildrop-file.c: writing and strictly reading maildrop files. */
#include <ctype.h>
#include <inttypes.h>
#include <sys/random.h>

#include "address.h"
#include "dsn.h"
#include "maildrop-file.h"

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

typedef enum MaildropSection {
        MAILDROP_SECTION_MAGIC,
        MAILDROP_SECTION_TIME,
        MAILDROP_SECTION_ATTRS,         /* attributes, then the sender */
        MAILDROP_SECTION_RECIPIENTS,    /* any number, then the message marker */
        MAILDROP_SECTION_CONTENT,       /* content, then the end marker */
        MAILDROP_SECTION_DONE,
        _MAILDROP_SECTION_MAX,
        _MAILDROP_SECTION_INVALID = -EINVAL,
} MaildropSection;

/* The record at off: its type and data, which must lie inside the buffer. */
static int record_at(const unsigned char *buf, size_t len, size_t off, char *ret_type, const char **ret_data,
                     uint32_t *ret_len) {
        uint32_t n;

        if (off > len || QUEUE_RECORD_HEADER > len - off)
                return -EBADMSG;
        n = (uint32_t) buf[off + 1] << 24 | (uint32_t) buf[off + 2] << 16 | (uint32_t) buf[off + 3] << 8 |
            buf[off + 4];
        if (n > QUEUE_RECORD_MAX || n > len - off - QUEUE_RECORD_HEADER)
                return -EBADMSG;
        *ret_type = (char) buf[off];
        *ret_data = (const char *) buf + off + QUEUE_RECORD_HEADER;
        *ret_len = n;
        return 0;
}

/* A text record's data as a string: no NUL inside. */
static int record_string(const char *data, uint32_t len, char **ret) {
        char *s;

        if (memchr(data, '\0', len))
                return -EBADMSG;
        s = strndup(data, len);
        if (!s)
                return -ENOMEM;
        *ret = s;
        return 0;
}

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

static int envelope_add_recipient(MaildropEnvelope *e, char *s) {
        char **l = realloc(e->recipients, (e->n_recipients + 2) * sizeof(char *));

        if (!l)
                return -ENOMEM;
        e->recipients = l;
        l[e->n_recipients++] = s;
        l[e->n_recipients] = NULL;
        return 0;
}

int maildrop_parse(const void *buf, size_t len, uint64_t content_max, MaildropEnvelope **ret) {
        _cleanup_(maildrop_envelope_freep) MaildropEnvelope *e = NULL;
        MaildropSection section = MAILDROP_SECTION_MAGIC;
        size_t off = 0;
        int r;

        e = calloc(1, sizeof(MaildropEnvelope));
        if (!e)
                return -ENOMEM;
        e->recipients = calloc(1, sizeof(char *));
        if (!e->recipients)
                return -ENOMEM;

        while (section != MAILDROP_SECTION_DONE) {
                _cleanup_free_ char *s = NULL;
                const char *data;
                uint32_t n;
                char type;

                r = record_at(buf, len, off, &type, &data, &n);
                if (r < 0)
                        return r;
                if (section != MAILDROP_SECTION_CONTENT && off + QUEUE_RECORD_HEADER + n > MAILDROP_ENVELOPE_MAX)
                        return -E2BIG;

                switch (section) {
                case MAILDROP_SECTION_MAGIC:
                        if (type != QUEUE_REC_MAGIC || n != STRLEN(MAILDROP_MAGIC) ||
                            memcmp(data, MAILDROP_MAGIC, n) != 0)
                                return -EBADMSG;
                        section = MAILDROP_SECTION_TIME;
                        break;
                case MAILDROP_SECTION_TIME: {
                        char *end;
                        if (type != QUEUE_REC_TIME)
                                return -EBADMSG;
                        r = record_string(data, n, &s);
                        if (r < 0)
                                return r;
                        if (isempty(s) || !isdigit((unsigned char) s[0]))
                                return -EBADMSG;
                        errno = 0;
                        e->time_usec = strtoull(s, &end, 10);
                        if (errno != 0 || *end != '\0')
                                return -EBADMSG;
                        section = MAILDROP_SECTION_ATTRS;
                        break;
                }
                case MAILDROP_SECTION_ATTRS:
                        if (type != QUEUE_REC_ATTR && type != QUEUE_REC_SENDER)
                                return -EBADMSG;
                        r = record_string(data, n, &s);
                        if (r < 0)
                                return r;
                        if (type == QUEUE_REC_SENDER) {
                                if (!address_valid(s))
                                        return -EBADMSG;
                                e->sender = TAKE_PTR(s);
                                section = MAILDROP_SECTION_RECIPIENTS;
                                break;
                        }
                        if (n > MAILDROP_ATTR_MAX)
                                return -EBADMSG;
                        r = envelope_set_attr(e, s);
                        if (r < 0)
                                return r;
                        break;
                case MAILDROP_SECTION_RECIPIENTS:
                        if (type == QUEUE_REC_MESSAGE) {
                                if (n != 0 || (e->n_recipients == 0 && !e->extract_recipients))
                                        return -EBADMSG;
                                e->content_offset = off + QUEUE_RECORD_HEADER;
                                section = MAILDROP_SECTION_CONTENT;
                                break;
                        }
                        if (type != QUEUE_REC_RECIPIENT)
                                return -EBADMSG;
                        r = record_string(data, n, &s);
                        if (r < 0)
                                return r;
                        if (isempty(s) || !address_valid(s))
                                return -EBADMSG;
                        r = envelope_add_recipient(e, s);
                        if (r < 0)
                                return r;
                        s = NULL;
                        break;
                case MAILDROP_SECTION_CONTENT:
                        if (type == QUEUE_REC_END) {
                                if (n != 0)
                                        return -EBADMSG;
                                section = MAILDROP_SECTION_DONE;
                                break;
                        }
                        if (type != QUEUE_REC_CONTENT)
                                return -EBADMSG;
                        if (n > content_max || e->content_size > content_max - n)
                                return -EFBIG;
                        e->content_size += n;
                        break;
                case MAILDROP_SECTION_DONE:
                default:
                        break;
                }
                off += QUEUE_RECORD_HEADER + n;
        }
        if (off != len)
                return -EBADMSG;        /* trailing bytes after the end marker */
        *ret = TAKE_PTR(e);
        return 0;
}

int maildrop_content_foreach(const void *buf, size_t len, const MaildropEnvelope *e, QueueContentFunc cb,
                             void *userdata) {
        size_t off = e->content_offset;
        int r;

        for (;;) {
                const char *data;
                uint32_t n;
                char type;

                r = record_at(buf, len, off, &type, &data, &n);
                if (r < 0)
                        return r;
                if (type == QUEUE_REC_END)
                        return 0;
                if (type != QUEUE_REC_CONTENT)
                        return -EBADMSG;
                if (n > 0) {
                        r = cb(data, n, userdata);
                        if (r < 0)
                                return r;
                }
                off += QUEUE_RECORD_HEADER + n;
        }
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
