/* milter-message.c: the message milters see at the end of DATA, and their end-of-message changes applied
 * to it in memory (unit-tested in tests/unit/test-milter.c); the memory file mapped for them and the one
 * written with their changes. Runs in smtpd and pickup, which hand the result to cleanup. */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "io-util.h"
#include "milter-message.h"
#include "string-util.h"

static int free_and_strdup(char **p, const char *s) {
        char *n = strdup(s);

        if (!n)
                return -ENOMEM;
        free(*p);
        *p = n;
        return 0;
}

static void header_done(MilterHeader *h) {
        free(h->name);
        free(h->value);
        free(h->raw);
}

void milter_message_done(MilterMessage *m) {
        for (size_t i = 0; i < m->n_headers; i++)
                header_done(m->headers + i);
        free(m->headers);
        free(m->body_owned);
        free(m->new_body);
        free(m->sender);
        strv_free(m->add_rcpt);
        strv_free(m->del_rcpt);
        free(m->quarantine);
        *m = (MilterMessage) {};
}

/* The size of a header as written: "name: value\n", or its received form. */
static size_t header_size(const MilterHeader *h) {
        return h->raw ? strlen(h->raw) : strlen(h->name) + 2 + strlen(h->value) + 1;
}

static int header_from_raw(const char *p, size_t len, MilterHeader *ret) {
        const char *colon = memchr(p, ':', len), *v, *end = p + len;
        size_t n_name;
        char *value, *o;

        n_name = (size_t) (colon - p);
        while (n_name > 0 && (p[n_name - 1] == ' ' || p[n_name - 1] == '\t'))
                n_name--;
        v = colon + 1;
        while (v < end && (*v == ' ' || *v == '\t'))
                v++;
        /* The value without its last LF; folded lines stay joined with "\n". */
        if (end > v && end[-1] == '\n')
                end--;
        value = o = malloc((size_t) (end - v) + 1);
        if (!value)
                return -ENOMEM;
        for (; v < end; v++)
                if (*v != '\r')
                        *o++ = *v;
        *o = '\0';
        ret->name = strndup(p, n_name);
        ret->raw = strndup(p, len);
        ret->value = value;
        if (!ret->name || !ret->raw) {
                header_done(ret);
                return -ENOMEM;
        }
        return 0;
}

static bool is_header_start(const char *p, size_t len) {
        size_t i = 0;

        while (i < len && p[i] > ' ' && p[i] < 127 && p[i] != ':')
                i++;
        while (i < len && (p[i] == ' ' || p[i] == '\t'))
                i++;
        return i > 0 && i < len && p[i] == ':' && p[0] != ' ' && p[0] != '\t';
}

int milter_message_parse(const char *buf, size_t len, size_t size_max, MilterMessage *ret) {
        MilterMessage m = { .size_max = size_max, .size = len };
        size_t off = 0;
        int r;

        /* Each header: a line that starts one, and the lines that begin with a blank after it. */
        while (off < len) {
                const char *p = buf + off, *nl;
                size_t n;

                if (!is_header_start(p, len - off))
                        break;
                nl = memchr(p, '\n', len - off);
                n = nl ? (size_t) (nl - p) + 1 : len - off;
                while (off + n < len && (buf[off + n] == ' ' || buf[off + n] == '\t')) {
                        nl = memchr(buf + off + n, '\n', len - off - n);
                        n = nl ? (size_t) (nl - p) + 1 : len - off;
                }
                if (m.n_headers >= MILTER_HEADERS_MAX) {
                        milter_message_done(&m);
                        return -E2BIG;
                }
                if (m.n_headers % 16 == 0) {
                        MilterHeader *h = realloc(m.headers, (m.n_headers + 16) * sizeof(MilterHeader));
                        if (!h) {
                                milter_message_done(&m);
                                return -ENOMEM;
                        }
                        m.headers = h;
                }
                r = header_from_raw(p, n, m.headers + m.n_headers);
                if (r < 0) {
                        milter_message_done(&m);
                        return r;
                }
                m.n_headers++;
                off += n;
        }
        if (off < len && buf[off] == '\n') {
                m.separator = true;
                off++;
        } else if (off + 1 < len && buf[off] == '\r' && buf[off + 1] == '\n') {
                m.separator = true;
                off += 2;
        }
        m.body = buf + off;
        m.body_len = len - off;
        *ret = m;
        return 0;
}

static int header_new(const char *name, const char *value, MilterHeader *ret) {
        char *v, *o;

        /* A milter folds with CRLF; the message keeps LF. */
        v = o = strdup(value);
        if (!v)
                return -ENOMEM;
        for (const char *p = value; *p; p++)
                if (*p != '\r')
                        *o++ = *p;
        *o = '\0';
        *ret = (MilterHeader) { .name = strdup(name), .value = v };
        if (!ret->name) {
                free(v);
                return -ENOMEM;
        }
        return 0;
}

static int header_insert(MilterMessage *m, size_t at, const char *name, const char *value) {
        MilterHeader h, *l;
        int r;

        if (m->n_headers >= MILTER_HEADERS_MAX)
                return -E2BIG;
        r = header_new(name, value, &h);
        if (r < 0)
                return r;
        if (header_size(&h) > m->size_max || m->size > m->size_max - header_size(&h)) {
                header_done(&h);
                return -EFBIG;
        }
        l = realloc(m->headers, (m->n_headers + 1) * sizeof(MilterHeader));
        if (!l) {
                header_done(&h);
                return -ENOMEM;
        }
        m->headers = l;
        at = MIN(at, m->n_headers);
        memmove(l + at + 1, l + at, (m->n_headers - at) * sizeof(MilterHeader));
        l[at] = h;
        m->n_headers++;
        m->size += header_size(&h);
        m->changed = true;
        return 0;
}

/* smfi_chgheader(): the index-th (from 1) header of that name; an empty value deletes it; a header that
 * is not there is added, as Sendmail does, unless the change is a deletion. */
static int header_change(MilterMessage *m, uint32_t index, const char *name, const char *value) {
        uint32_t seen = 0;

        for (size_t i = 0; i < m->n_headers; i++) {
                MilterHeader *h = m->headers + i, n;
                int r;

                if (strcasecmp(h->name, name) != 0 || ++seen < MAX(index, 1U))
                        continue;
                m->size -= header_size(h);
                m->changed = true;
                if (isempty(value)) {
                        header_done(h);
                        memmove(h, h + 1, (m->n_headers - i - 1) * sizeof(MilterHeader));
                        m->n_headers--;
                        return 0;
                }
                r = header_new(h->name, value, &n);
                if (r < 0)
                        return r;
                header_done(h);
                *h = n;
                m->size += header_size(h);
                return m->size > m->size_max ? -EFBIG : 0;
        }
        if (isempty(value))
                return 0;
        return header_insert(m, m->n_headers, name, value);
}

/* A chunk of a new body, with CRLF turned into LF (also across chunks). */
static int body_append(MilterMessage *m, const uint8_t *data, size_t len) {
        char *n;

        if (len > m->size_max || m->new_body_len > m->size_max - len)
                return -EFBIG;
        n = realloc(m->new_body, m->new_body_len + len + 2);
        if (!n)
                return -ENOMEM;
        m->new_body = n;
        m->replacing = true;
        for (size_t i = 0; i < len; i++) {
                char c = (char) data[i];

                if (m->new_body_cr && c != '\n')
                        n[m->new_body_len++] = '\r';
                m->new_body_cr = c == '\r';
                if (!m->new_body_cr)
                        n[m->new_body_len++] = c;
        }
        return 0;
}

int milter_address_strip(const char *s, char *ret, size_t size) {
        size_t len;

        s += strspn(s, " \t");
        len = strlen(s);
        while (len > 0 && (s[len - 1] == ' ' || s[len - 1] == '\t'))
                len--;
        if (len >= 2 && s[0] == '<' && s[len - 1] == '>') {
                s++;
                len -= 2;
        }
        if (len >= size || memchr(s, '<', len) || memchr(s, '>', len))
                return -EINVAL;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) s[i] < ' ' || s[i] == 127)
                        return -EINVAL;
        memcpy(ret, s, len);
        ret[len] = '\0';
        return 0;
}

static int push_address(char ***l, size_t *n, const char *text) {
        char a[1024];

        if (!text || milter_address_strip(text, a, sizeof a) < 0 || a[0] == '\0')
                return -EINVAL;
        if (*n >= 1000)
                return -E2BIG;
        return strv_push(l, n, strdup(a));
}

int milter_message_apply(MilterMessage *m, const MilterReply *r) {
        char a[1024];

        switch (r->type) {
        case MILTER_REPLY_ADDHEADER:
                return header_insert(m, m->n_headers, r->name, r->text);
        case MILTER_REPLY_INSHEADER:
                return header_insert(m, r->index, r->name, r->text);
        case MILTER_REPLY_CHGHEADER:
                return header_change(m, r->index, r->name, r->text);
        case MILTER_REPLY_REPLBODY:
                return body_append(m, r->data, r->len);
        case MILTER_REPLY_ADDRCPT:
                return push_address(&m->add_rcpt, &m->n_add_rcpt, r->text);
        case MILTER_REPLY_DELRCPT:
                return push_address(&m->del_rcpt, &m->n_del_rcpt, r->text);
        case MILTER_REPLY_CHGFROM:
                /* "<>" is the null sender. */
                if (milter_address_strip(r->text, a, sizeof a) < 0)
                        return -EINVAL;
                return free_and_strdup(&m->sender, a);
        case MILTER_REPLY_QUARANTINE:
                return free_and_strdup(&m->quarantine, isempty(r->text) ? "milter quarantine" : r->text);
        default:
                return -EINVAL;
        }
}

int milter_message_commit(MilterMessage *m) {
        if (!m->replacing)
                return 0;
        if (m->new_body_cr) {
                m->new_body[m->new_body_len++] = '\r';
                m->new_body_cr = false;
        }
        if (m->size - m->body_len > m->size_max - MIN(m->new_body_len, m->size_max))
                return -EFBIG;
        m->size = m->size - m->body_len + m->new_body_len;
        free(m->body_owned);
        m->body_owned = TAKE_PTR(m->new_body);
        m->body = m->body_owned ?: "";
        m->body_len = m->new_body_len;
        m->new_body_len = 0;
        m->replacing = false;
        m->changed = true;
        return 0;
}

void milter_message_rollback(MilterMessage *m) {
        m->new_body = mfree(m->new_body);
        m->new_body_len = 0;
        m->new_body_cr = m->replacing = false;
}

size_t milter_message_body_chunk(const MilterMessage *m, size_t *off, char *out, size_t max) {
        size_t n = 0, i = *off;

        while (i < m->body_len && n + 2 <= max) {
                char c = m->body[i];

                if (c == '\n' && (i == 0 || m->body[i - 1] != '\r'))
                        out[n++] = '\r';
                out[n++] = c;
                i++;
        }
        *off = i;
        return n;
}

int milter_message_write(const MilterMessage *m, int fd) {
        _cleanup_free_ char *buf = NULL;
        bool separator = m->separator || m->body_len > 0 || m->changed;
        size_t size = m->body_len + separator, off = 0;

        /* One buffer and one write: a system call per header was most of what rewriting a signed message
         * cost. */
        for (size_t i = 0; i < m->n_headers; i++)
                size += header_size(m->headers + i);
        buf = malloc(MAX(size, 1U));
        if (!buf)
                return -ENOMEM;
        for (size_t i = 0; i < m->n_headers; i++) {
                const MilterHeader *h = m->headers + i;

                if (h->raw) {
                        size_t n = strlen(h->raw);

                        memcpy(buf + off, h->raw, n);
                        off += n;
                } else
                        off += (size_t) sprintf(buf + off, "%s: %s\n", h->name, h->value);
        }
        if (separator)
                buf[off++] = '\n';
        if (m->body_len > 0)
                memcpy(buf + off, m->body, m->body_len);
        off += m->body_len;
        assert(off == size);
        return write_full(fd, buf, off);
}

int milter_input_new(int fd, size_t size_max, MilterInput **ret) {
        _cleanup_(milter_input_freep) MilterInput *in = NULL;
        struct stat st;
        int r;

        if (fstat(fd, &st) < 0)
                return -errno;
        in = calloc(1, sizeof(MilterInput));
        if (!in)
                return -ENOMEM;
        in->map_len = (size_t) st.st_size;
        if (in->map_len > 0 && in->map_len <= MILTER_INPUT_READ_MAX) {
                in->map = malloc(in->map_len);
                if (!in->map)
                        return -ENOMEM;
                r = pread_full(fd, in->map, in->map_len, 0);
                if (r < 0)
                        return r;
        } else if (in->map_len > 0) {
                in->map = mmap(NULL, in->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
                if (in->map == MAP_FAILED) {
                        in->map = NULL;
                        return -errno;
                }
                in->mapped = true;
        }
        r = milter_message_parse(in->map ?: "", in->map_len, size_max, &in->message);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(in);
        return 0;
}

MilterInput *milter_input_free(MilterInput *in) {
        if (!in)
                return NULL;
        milter_message_done(&in->message);
        if (in->map && in->mapped)
                (void) munmap(in->map, in->map_len);
        else
                free(in->map);
        free(in);
        return NULL;
}

int milter_message_memfd(const MilterMessage *m, const char *name, int *ret_fd) {
        _cleanup_close_ int fd = memfd_new(name);
        int r;

        if (fd < 0)
                return fd;
        r = milter_message_write(m, fd);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}
