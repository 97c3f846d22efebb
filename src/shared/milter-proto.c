/* milter-proto.c: the milter protocol's packets: framing and parsing of a milter's replies (pure, fuzzed
 * by tests/fuzz/fuzz-milter-reply.c), and encoding of the MTA's commands. Runs in smtpd and pickup. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "milter-proto.h"

static uint32_t get_u32(const uint8_t *p) {
        return (uint32_t) p[0] << 24 | (uint32_t) p[1] << 16 | (uint32_t) p[2] << 8 | p[3];
}

int milter_packet_frame(const uint8_t *buf, size_t len, size_t max, size_t *ret) {
        uint32_t n;

        if (len < 4)
                return 0;
        n = get_u32(buf);
        if (n == 0 || n > max)
                return -EBADMSG;
        if (len - 4 < n)
                return 0;
        *ret = (size_t) n + 4;
        return 1;
}

/* A reader of the fields of one packet: every string must end with its NUL inside the packet. */
typedef struct Fields {
        const uint8_t *p;
        size_t len, off;
} Fields;

static int field_str(Fields *f, const char **ret) {
        const uint8_t *nul;

        if (f->off >= f->len)
                return -EBADMSG;
        nul = memchr(f->p + f->off, '\0', f->len - f->off);
        if (!nul)
                return -EBADMSG;
        *ret = (const char *) f->p + f->off;
        f->off = (size_t) (nul - f->p) + 1;
        return 0;
}

static int field_u32(Fields *f, uint32_t *ret) {
        if (f->len - f->off < 4)
                return -EBADMSG;
        *ret = get_u32(f->p + f->off);
        f->off += 4;
        return 0;
}

static int fields_end(const Fields *f) {
        return f->off == f->len ? 0 : -EBADMSG;
}

static int parse_optneg(Fields *f, MilterReply *r) {
        if (field_u32(f, &r->version) < 0 || field_u32(f, &r->actions) < 0 || field_u32(f, &r->protocol) < 0)
                return -EBADMSG;
        /* Version 6: (stage, "macro names") pairs the milter wants instead of the configured lists. */
        while (f->off < f->len) {
                uint32_t stage;
                const char *list;

                if (field_u32(f, &stage) < 0 || field_str(f, &list) < 0)
                        return -EBADMSG;
                if (stage >= _MILTER_STAGE_MAX)
                        return -EBADMSG;
                r->macros[stage] = list;
        }
        return 0;
}

int milter_reply_parse(const uint8_t *pkt, size_t len, MilterReply *ret) {
        MilterReply r = {};
        Fields f = { .p = pkt, .len = len, .off = 1 };
        int k = 0;

        if (len < 1)
                return -EBADMSG;
        switch (pkt[0]) {
        case 'c': r.type = MILTER_REPLY_CONTINUE; break;
        case 'a': r.type = MILTER_REPLY_ACCEPT; break;
        case 'r': r.type = MILTER_REPLY_REJECT; break;
        case 't': r.type = MILTER_REPLY_TEMPFAIL; break;
        case 'd': r.type = MILTER_REPLY_DISCARD; break;
        case 's': r.type = MILTER_REPLY_SKIP; break;
        case 'p': r.type = MILTER_REPLY_PROGRESS; break;
        case '4':
        case 'f': r.type = MILTER_REPLY_SHUTDOWN; break;
        case 'y':
                r.type = MILTER_REPLY_REPLYCODE;
                k = field_str(&f, &r.text);
                if (k >= 0 && !milter_reply_text_valid(r.text))
                        k = -EBADMSG;
                break;
        case 'q':
                r.type = MILTER_REPLY_QUARANTINE;
                k = field_str(&f, &r.text);
                break;
        case 'h':
                r.type = MILTER_REPLY_ADDHEADER;
                k = field_str(&f, &r.name);
                if (k >= 0)
                        k = field_str(&f, &r.text);
                break;
        case 'i':
        case 'm':
                r.type = pkt[0] == 'i' ? MILTER_REPLY_INSHEADER : MILTER_REPLY_CHGHEADER;
                k = field_u32(&f, &r.index);
                if (k >= 0)
                        k = field_str(&f, &r.name);
                if (k >= 0)
                        k = field_str(&f, &r.text);
                break;
        case 'b':
                r.type = MILTER_REPLY_REPLBODY;
                r.data = pkt + 1;
                r.len = len - 1;
                f.off = len;
                break;
        case '+':
        case '-':
                r.type = pkt[0] == '+' ? MILTER_REPLY_ADDRCPT : MILTER_REPLY_DELRCPT;
                k = field_str(&f, &r.text);
                break;
        case '2':
        case 'e':
                r.type = pkt[0] == '2' ? MILTER_REPLY_ADDRCPT : MILTER_REPLY_CHGFROM;
                k = field_str(&f, &r.text);
                /* The arguments are optional in smfi_chgfrom() and smfi_addrcpt_par(). */
                if (k >= 0 && f.off < f.len)
                        k = field_str(&f, &r.args);
                break;
        case 'O':
                r.type = MILTER_REPLY_OPTNEG;
                k = parse_optneg(&f, &r);
                break;
        default:
                return -EBADMSG;
        }
        if (k < 0 || fields_end(&f) < 0)
                return -EBADMSG;
        /* A header must have a name a header can have (RFC 5322 2.2: printable ASCII but the colon). */
        if (r.name) {
                if (!r.name[0])
                        return -EBADMSG;
                for (const char *p = r.name; *p; p++)
                        if (*p <= ' ' || *p >= 127 || *p == ':')
                                return -EBADMSG;
        }
        *ret = r;
        return 0;
}

static bool reply_line_valid(const char *p, size_t len, char class, const char *code) {
        size_t n = 4;

        if (len < 3 || memcmp(p, code, 3) != 0)
                return false;
        if (len > 3 && p[3] != ' ' && p[3] != '-')
                return false;
        /* An enhanced status code, if there is one, has the class of the reply code. */
        if (len > 5 && isdigit((unsigned char) p[4]) && p[5] == '.' && p[4] != class)
                return false;
        for (; n < len; n++)
                if (p[n] < ' ' || p[n] >= 127)
                        return false;
        return true;
}

bool milter_reply_text_valid(const char *text) {
        size_t len = strlen(text);
        char code[3];

        /* Long enough for a code, short enough for one SMTP reply buffer of smtpd. */
        if (len < 3 || len > 900)
                return false;
        if ((text[0] != '4' && text[0] != '5') || !isdigit((unsigned char) text[1]) ||
            !isdigit((unsigned char) text[2]))
                return false;
        memcpy(code, text, 3);
        for (const char *p = text;;) {
                const char *e = strstr(p, "\r\n");
                size_t n = e ? (size_t) (e - p) : strlen(p);

                if (!reply_line_valid(p, n, text[0], code))
                        return false;
                /* Every line but the last says "550-"; the last "550 " or "550". */
                if (e && (n < 4 || p[3] != '-'))
                        return false;
                if (!e)
                        return n == 3 || p[3] == ' ';
                p = e + 2;
        }
}

/* ---- commands ----------------------------------------------------------------------------------- */

static void buf_reserve(MilterBuf *b, size_t n) {
        size_t want;
        uint8_t *d;

        if (b->failed)
                return;
        if (b->size - b->len >= n)
                return;
        if (n > SIZE_MAX / 2 - b->len) {
                b->failed = true;
                return;
        }
        want = MAX(b->size * 2, b->len + n + 256);
        d = realloc(b->data, want);
        if (!d) {
                b->failed = true;
                return;
        }
        b->data = d;
        b->size = want;
}

void milter_buf_done(MilterBuf *b) {
        b->data = mfree(b->data);
        b->len = b->size = 0;
        b->failed = false;
}

void milter_buf_put(MilterBuf *b, const void *p, size_t n) {
        buf_reserve(b, n);
        if (b->failed)
                return;
        if (n > 0)
                memcpy(b->data + b->len, p, n);
        b->len += n;
}

void milter_buf_put_str(MilterBuf *b, const char *s) {
        milter_buf_put(b, s, strlen(s) + 1);
}

void milter_buf_put_u32(MilterBuf *b, uint32_t v) {
        uint8_t p[4] = { v >> 24, v >> 16, v >> 8, v };
        milter_buf_put(b, p, 4);
}

void milter_buf_put_u16(MilterBuf *b, uint16_t v) {
        uint8_t p[2] = { v >> 8, v };
        milter_buf_put(b, p, 2);
}

void milter_buf_begin(MilterBuf *b, char cmd, size_t *ret_start) {
        *ret_start = b->len;
        milter_buf_put_u32(b, 0);
        milter_buf_put(b, &cmd, 1);
}

void milter_buf_end(MilterBuf *b, size_t start) {
        size_t n;

        if (b->failed)
                return;
        n = b->len - start - 4;
        if (n > UINT32_MAX) {
                b->failed = true;
                return;
        }
        b->data[start] = (uint8_t) (n >> 24);
        b->data[start + 1] = (uint8_t) (n >> 16);
        b->data[start + 2] = (uint8_t) (n >> 8);
        b->data[start + 3] = (uint8_t) n;
}

void milter_buf_command(MilterBuf *b, char cmd, const char *const *strings) {
        size_t start;

        milter_buf_begin(b, cmd, &start);
        for (const char *const *s = strings; s && *s; s++)
                milter_buf_put_str(b, *s);
        milter_buf_end(b, start);
}
