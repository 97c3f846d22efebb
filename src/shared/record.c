/* record.c: reading typed record streams strictly, section by section, and writing them through one buffer.
 * Used by every process that reads or writes a queue file, a maildrop file or a per-message log. */
#include <assert.h>

#include "io-util.h"
#include "record.h"

static uint32_t format_max_len(const RecordFormat *f) {
        return f->max_len > 0 ? f->max_len : RECORD_MAX;
}

void record_reader_init(RecordReader *r, const RecordFormat *f, const void *buf, size_t len) {
        assert(f->n_sections > 0);
        *r = (RecordReader) {
                .format = f,
                .buf = buf,
                .fd = -EBADF,
                .size = len,
        };
}

void record_reader_init_fd(RecordReader *r, const RecordFormat *f, int fd, uint64_t size) {
        assert(f->n_sections > 0);
        *r = (RecordReader) {
                .format = f,
                .fd = fd,
                .size = size,
        };
}

void record_reader_done(RecordReader *r) {
        r->window = mfree(r->window);
        r->window_len = r->window_size = 0;
}

/* Points *ret at len bytes of the file at off, which the caller has checked lie within the reader's size:
 * from the window when it holds them, else after one pread() of them and what follows, up to
 * RECORD_READ_AHEAD bytes in all. */
static int reader_window(RecordReader *r, uint64_t off, size_t len, const unsigned char **ret) {
        size_t want;
        int k;

        assert(off <= r->size && len <= r->size - off);
        if (r->window && off >= r->window_off && off - r->window_off <= r->window_len &&
            len <= r->window_len - (off - r->window_off)) {
                *ret = r->window + (off - r->window_off);
                return 0;
        }
        want = (size_t) MIN((uint64_t) MAX(len, (size_t) RECORD_READ_AHEAD), r->size - off);
        if (want > r->window_size) {
                unsigned char *w = malloc(want);
                if (!w)
                        return -ENOMEM;
                free(r->window);
                r->window = w;
                r->window_size = want;
        }
        r->window_len = 0;      /* nothing valid, should the read fail */
        k = pread_full(r->fd, r->window, want, off);
        if (k < 0)
                return k;
        r->window_off = off;
        r->window_len = want;
        *ret = r->window;
        return 0;
}

void record_reader_seek(RecordReader *r, uint64_t offset, size_t section) {
        assert(section < r->format->n_sections);
        r->offset = offset;
        r->section = section;
        r->done = false;
}

static bool type_in(char type, const char *set) {
        return type != '\0' && set && strchr(set, type);
}

int record_reader_next(RecordReader *r, Record *ret) {
        const RecordFormat *f = r->format;
        const RecordSection *s;
        const unsigned char *h;
        uint64_t off = r->offset, next;
        uint32_t len;
        bool last, closes;
        char type;
        int k;

        if (r->done)
                return 0;
        assert(r->section < f->n_sections);
        s = f->sections + r->section;
        last = r->section + 1 == f->n_sections;
        if (off == r->size && last && s->end == '\0') {
                r->done = true;
                return 0;
        }

        /* Written so that no sum can overflow: off <= size is checked first. */
        if (off > r->size || RECORD_HEADER > r->size - off)
                return -EBADMSG;
        if (r->buf)
                h = r->buf + off;
        else {
                k = reader_window(r, off, RECORD_HEADER, &h);
                if (k < 0)
                        return k;
        }
        len = (uint32_t) h[1] << 24 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 8 | h[4];
        if (len > format_max_len(f) || len > r->size - off - RECORD_HEADER)
                return -EBADMSG;
        next = off + RECORD_HEADER + len;
        if (f->head_max > 0 && !last && next > f->head_max)
                return -E2BIG;

        type = (char) h[0];
        closes = type != '\0' && type == s->end;
        if (!closes && !type_in(type, s->allowed))
                return -EBADMSG;
        if (len > 0 && type_in(type, f->empty))
                return -EBADMSG;
        if (closes && last && next != r->size)
                return -EBADMSG;        /* trailing bytes after the end */

        *ret = (Record) {
                .type = type,
                .len = len,
                .offset = off,
                .section = r->section,
        };
        r->offset = next;
        if (closes) {
                if (last)
                        r->done = true;
                else
                        r->section++;
        }
        return 1;
}

int record_reader_data(RecordReader *r, const Record *rec, const char **ret) {
        const unsigned char *p;
        int k;

        assert(rec->len <= format_max_len(r->format));
        if (r->buf) {
                *ret = (const char *) r->buf + rec->offset + RECORD_HEADER;
                return 0;
        }
        k = reader_window(r, rec->offset + RECORD_HEADER, rec->len, &p);
        if (k < 0)
                return k;
        *ret = (const char *) p;
        return 0;
}

int record_reader_string(RecordReader *r, const Record *rec, char **ret) {
        _cleanup_free_ char *s = malloc((size_t) rec->len + 1);
        const char *data;
        int k;

        if (!s)
                return -ENOMEM;
        k = record_reader_data(r, rec, &data);
        if (k < 0)
                return k;
        memcpy(s, data, rec->len);
        if (memchr(s, '\0', rec->len))
                return -EBADMSG;
        s[rec->len] = '\0';
        *ret = TAKE_PTR(s);
        return 0;
}

int record_reader_foreach(RecordReader *r, RecordDataFunc cb, void *userdata) {
        size_t section = r->section;
        char end = r->format->sections[section].end;

        for (;;) {
                const char *data;
                Record rec;
                int k;

                k = record_reader_next(r, &rec);
                if (k <= 0)
                        return k;
                if (rec.section == section && rec.type == end && end != '\0')
                        return 0;
                if (rec.len == 0)
                        continue;
                k = record_reader_data(r, &rec, &data);
                if (k < 0)
                        return k;
                k = cb(data, rec.len, userdata);
                if (k < 0)
                        return k;
        }
}

void record_writer_init(RecordWriter *w, int fd) {
        w->fd = fd;
        w->len = 0;
        w->written = 0;
        w->last = 0;
}

int record_writer_flush(RecordWriter *w) {
        int k = write_full(w->fd, w->buf, w->len);

        if (k < 0)
                return k;
        w->written += w->len;
        w->last = w->len;
        w->len = 0;
        return 0;
}

const void *record_writer_whole(const RecordWriter *w, size_t *ret_len) {
        if (w->len != 0 || w->written != w->last)
                return NULL;
        *ret_len = w->last;
        return w->buf;
}

uint64_t record_writer_offset(const RecordWriter *w) {
        return w->written + w->len;
}

int record_writer_record(RecordWriter *w, char type, const void *data, size_t len) {
        unsigned char *h;
        int k;

        if (len > RECORD_MAX)
                return -E2BIG;
        if (len + RECORD_HEADER > sizeof w->buf - w->len) {
                k = record_writer_flush(w);
                if (k < 0)
                        return k;
        }
        h = (unsigned char *) w->buf + w->len;
        h[0] = (unsigned char) type;
        h[1] = (unsigned char) (len >> 24);
        h[2] = (unsigned char) (len >> 16);
        h[3] = (unsigned char) (len >> 8);
        h[4] = (unsigned char) len;
        if (len > 0)
                memcpy(h + RECORD_HEADER, data, len);
        w->len += RECORD_HEADER + len;
        return 0;
}

int record_writer_recordv(RecordWriter *w, char type, const char *fmt, va_list ap) {
        _cleanup_free_ char *s = NULL;
        int n = vasprintf(&s, fmt, ap);

        if (n < 0)
                return -ENOMEM;
        return record_writer_record(w, type, s, (size_t) n);
}

int record_writer_recordf(RecordWriter *w, char type, const char *fmt, ...) {
        va_list ap;
        int k;

        va_start(ap, fmt);
        k = record_writer_recordv(w, type, fmt, ap);
        va_end(ap);
        return k;
}

int record_writer_split(RecordWriter *w, char type, const void *data, size_t len) {
        const char *p = data;
        int k;

        while (len > 0) {
                /* Fill the buffer's room exactly, so that the records stay large. */
                size_t room = sizeof w->buf - w->len;
                if (room <= RECORD_HEADER) {
                        k = record_writer_flush(w);
                        if (k < 0)
                                return k;
                        room = sizeof w->buf;
                }
                size_t n = MIN(len, MIN(room - RECORD_HEADER, (size_t) RECORD_MAX));
                k = record_writer_record(w, type, p, n);
                if (k < 0)
                        return k;
                p += n;
                len -= n;
        }
        return 0;
}
