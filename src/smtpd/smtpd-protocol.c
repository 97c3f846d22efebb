/* smtpd-protocol.c: the smtpd process's SMTP parsers: command lines, MAIL/RCPT/BDAT/VRFY arguments, the
 * DATA/BDAT content reader and status texts, as pure functions over (buf, len). Everything here reads peer
 * input: every index is checked against len. */
#include <assert.h>
#include <strings.h>

#include "smtpd-protocol.h"
#include "utf8.h"

static bool is_blank(char c) {
        return c == ' ' || c == '\t';
}

static bool is_digit(char c) {
        return c >= '0' && c <= '9';
}

/* Whether s[0 .. len) is word, in any case. */
static bool word_eq(const char *s, size_t len, const char *word) {
        return s && strlen(word) == len && strncasecmp(s, word, len) == 0;
}

void smtpd_line_reader_init(SmtpdLineReader *r, size_t limit) {
        assert(limit < SIZE_MAX / 2);
        *r = (SmtpdLineReader) { .state = SMTPD_LINE_TEXT, .limit = limit };
}

int smtpd_line_next(SmtpdLineReader *r, const char *buf, size_t len, size_t *ret_line_len,
                    size_t *consumed) {
        const char *p = buf + r->scanned;

        assert(r->scanned <= len);
        /* Any LF ends the line; the CR of a CRLF may be the last byte searched before. */
        p = memchr(p, '\n', len - r->scanned);
        if (p) {
                bool crlf = p > buf && p[-1] == '\r';
                size_t line_len = (size_t) (p - buf) - crlf;
                bool overlong = r->state == SMTPD_LINE_DISCARD || line_len > r->limit;

                r->bare_lf = !crlf;
                r->state = SMTPD_LINE_TEXT;
                r->scanned = 0;
                *consumed = (size_t) (p - buf) + 1;
                if (overlong)
                        return -E2BIG;
                *ret_line_len = line_len;
                return 1;
        }

        /* limit bytes and a CR may still become a line; more cannot. Drop them as they come, but keep a
         * final CR: it may be the start of the CRLF that ends the overlong line. */
        if (r->state == SMTPD_LINE_DISCARD || len > r->limit + 1) {
                size_t keep = len > 0 && buf[len - 1] == '\r';

                r->state = SMTPD_LINE_DISCARD;
                r->scanned = 0;
                *consumed = len - keep;
                return 0;
        }
        r->scanned = len;
        *consumed = 0;
        return 0;
}

static const char *const command_names[_SMTPD_COMMAND_MAX] = {
        [SMTPD_COMMAND_HELO] = "HELO",
        [SMTPD_COMMAND_EHLO] = "EHLO",
        [SMTPD_COMMAND_MAIL] = "MAIL",
        [SMTPD_COMMAND_RCPT] = "RCPT",
        [SMTPD_COMMAND_DATA] = "DATA",
        [SMTPD_COMMAND_RSET] = "RSET",
        [SMTPD_COMMAND_NOOP] = "NOOP",
        [SMTPD_COMMAND_VRFY] = "VRFY",
        [SMTPD_COMMAND_QUIT] = "QUIT",
        [SMTPD_COMMAND_BDAT] = "BDAT",
        [SMTPD_COMMAND_STARTTLS] = "STARTTLS",
        [SMTPD_COMMAND_AUTH] = "AUTH",
};

const char *smtpd_command_to_string(SmtpdCommandType t) {
        return t >= 0 && t < _SMTPD_COMMAND_MAX ? command_names[t] : NULL;
}

int smtpd_command_parse(const char *line, size_t len, SmtpdCommand *ret) {
        size_t verb_len = 0, start, end;
        SmtpdCommandType t;

        for (size_t i = 0; i < len; i++) {
                unsigned char c = (unsigned char) line[i];
                if ((c < 0x20 && c != '\t') || c == 0x7F)
                        return -EBADMSG;
        }
        if (!utf8_valid(line, len))
                return -EBADMSG;

        while (verb_len < len && !is_blank(line[verb_len]))
                verb_len++;
        for (t = 0; t < _SMTPD_COMMAND_MAX; t++)
                if (word_eq(line, verb_len, command_names[t]))
                        break;
        if (t == _SMTPD_COMMAND_MAX)
                return -EOPNOTSUPP;

        start = verb_len;
        while (start < len && is_blank(line[start]))
                start++;
        end = len;
        while (end > start && is_blank(line[end - 1]))
                end--;
        *ret = (SmtpdCommand) { .type = t, .arg = line + start, .arg_len = end - start };
        return 0;
}

/* Where the address that begins at s[i] ends: at the first '>' (or, with to_blank, the first blank) outside a
 * quoted part, or at len. */
static size_t address_end(const char *s, size_t i, size_t len, bool to_blank) {
        bool quoted = false;

        for (; i < len; i++) {
                if (quoted) {
                        if (s[i] == '\\')
                                i++;
                        else if (s[i] == '"')
                                quoted = false;
                } else if (s[i] == '"')
                        quoted = true;
                else if (to_blank ? is_blank(s[i]) : s[i] == '>')
                        break;
        }
        return MIN(i, len);
}

/* s[start..end) into address, if it is one. */
static int address_copy(const char *s, size_t start, size_t end, char address[static ADDRESS_MAX + 1]) {
        if (end - start > ADDRESS_MAX || memchr(s + start, '\0', end - start))
                return -EBADMSG;
        memcpy(address, s + start, end - start);
        address[end - start] = '\0';
        return address_valid(address) ? 0 : -EBADMSG;
}

/* An address without brackets at the start of s (strict_rfc821_envelopes = no), as Postfix takes it: the first
 * word; *ret_used is its length. */
static int bare_path_parse(const char *s, size_t len, char address[static ADDRESS_MAX + 1], size_t *ret_used) {
        size_t end = address_end(s, 0, len, true);
        int r;

        if (end == 0)
                return -EBADMSG;
        r = address_copy(s, 0, end, address);
        if (r < 0)
                return r;
        *ret_used = end;
        return 0;
}

/* Parses "<path>" at the start of s into address; *ret_used is its length, brackets included. */
static int path_parse(const char *s, size_t len, char address[static ADDRESS_MAX + 1], size_t *ret_used) {
        bool route = false;
        size_t i = 1, end;
        int r;

        if (len == 0 || s[0] != '<')
                return -EBADMSG;
        /* A source route ("<@relay1,@relay2:user@domain>") must be accepted and ignored (RFC 5321 C). */
        if (i < len && s[i] == '@') {
                const char *colon = memchr(s + i, ':', len - i), *gt = memchr(s + i, '>', len - i);

                if (!colon || (gt && gt < colon))
                        return -EBADMSG;
                i = (size_t) (colon - s) + 1;
                route = true;
        }
        /* The closing '>' is the first one outside a quoted local part. */
        end = address_end(s, i, len, false);
        if (end >= len || (route && end == i))
                return -EBADMSG;
        r = address_copy(s, i, end, address);
        if (r < 0)
                return r;
        *ret_used = end + 1;
        return 0;
}

static int size_parse(const char *s, size_t len, uint64_t *ret) {
        uint64_t v = 0;

        if (!s || len == 0)
                return -EINVAL;
        for (size_t i = 0; i < len; i++) {
                if (!is_digit(s[i]))
                        return -EINVAL;
                unsigned d = (unsigned) (s[i] - '0');
                if (v > (UINT64_MAX - d) / 10)
                        return -EINVAL;
                v = v * 10 + d;
        }
        *ret = v;
        return 0;
}

/* -EOPNOTSUPP, with the parameter (cut short at a character's end) in ret->unsupported for the reply. */
static int unsupported(const char *param, size_t len, SmtpdPath *ret) {
        size_t n = MIN(len, sizeof ret->unsupported - 1);

        while (n > 0 && !utf8_valid(param, n))
                n--;
        memcpy(ret->unsupported, param, n);
        ret->unsupported[n] = '\0';
        return -EOPNOTSUPP;
}

/* "KEYWORD<path> params": MAIL takes SIZE (RFC 1870), BODY (RFC 6152), SMTPUTF8 (RFC 6531), RET and ENVID
 * (RFC 3461), XVERP (Postfix); RCPT takes NOTIFY and ORCPT (RFC 3461). Each at most once. */
static int envelope_parse(const char *arg, size_t len, const char *keyword, bool mail, bool strict,
                          SmtpdPath *ret) {
        size_t klen = strlen(keyword), i, used;
        bool have_size = false, have_body = false, have_envid = false, have_orcpt = false, have_auth = false;
        SmtpdPath p = {};
        int r;

        if (len < klen || strncasecmp(arg, keyword, klen) != 0)
                return -EPROTO;
        /* "MAIL FROM: <a@b>" is not RFC 5321, but common enough to accept. */
        for (i = klen; i < len && is_blank(arg[i]); i++)
                ;
        if (i == len)
                return -EPROTO;
        if (arg[i] != '<' && !strict)
                r = bare_path_parse(arg + i, len - i, p.address, &used);
        else
                r = path_parse(arg + i, len - i, p.address, &used);
        if (r < 0)
                return r;
        if (!mail && p.address[0] == '\0')
                return -EBADMSG;
        i += used;
        if (i < len && !is_blank(arg[i]))
                return -EBADMSG;

        while (i < len) {
                const char *param, *value = NULL;
                size_t plen, nlen, vlen = 0;

                while (i < len && is_blank(arg[i]))
                        i++;
                param = arg + i;
                while (i < len && !is_blank(arg[i]))
                        i++;
                plen = (size_t) (arg + i - param);
                if (plen == 0)
                        break;
                const char *eq = memchr(param, '=', plen);
                nlen = eq ? (size_t) (eq - param) : plen;
                if (eq) {
                        value = eq + 1;
                        vlen = plen - nlen - 1;
                }

                if (mail && word_eq(param, nlen, "SIZE")) {
                        if (have_size || size_parse(value, vlen, &p.size) < 0)
                                return -EINVAL;
                        have_size = true;
                } else if (mail && word_eq(param, nlen, "BODY")) {
                        if (have_body)
                                return -EINVAL;
                        if (word_eq(value, vlen, "8BITMIME"))
                                p.body_8bitmime = true;
                        else if (!word_eq(value, vlen, "7BIT"))
                                return unsupported(param, plen, ret);   /* BINARYMIME, as Postfix answers it */
                        have_body = p.body_given = true;
                } else if (mail && word_eq(param, nlen, "SMTPUTF8")) {
                        if (p.smtputf8 || eq)
                                return -EINVAL;
                        p.smtputf8 = true;
                } else if (mail && word_eq(param, nlen, "RET")) {
                        if (p.dsn_ret || !value || !(p.dsn_ret = dsn_ret_parse(value, vlen)))
                                return -EINVAL;
                } else if (mail && word_eq(param, nlen, "AUTH")) {
                        /* RFC 4954 5: AUTH=<> or AUTH=xtext, accepted and not used (smtpd-sasl.c). */
                        if (have_auth || !value || vlen == 0 || vlen > 500)
                                return -EINVAL;
                        for (size_t k = 0; k < vlen; k++)
                                if (value[k] < 0x21 || value[k] > 0x7E)
                                        return -EINVAL;
                        have_auth = true;
                } else if (mail && word_eq(param, nlen, "ENVID")) {
                        if (have_envid || !value || !dsn_envid_valid(value, vlen))
                                return -EINVAL;
                        memcpy(p.dsn_envid, value, vlen);
                        p.dsn_envid[vlen] = '\0';
                        have_envid = true;
                } else if (mail && word_eq(param, nlen, "XVERP")) {
                        /* Whether this client may ask, and whether the delimiters will do, is the caller's
                         * to say (smtpd_authorized_verp_clients, verp_delimiter_filter). */
                        if (p.verp)
                                return -EINVAL;
                        p.verp = true;
                        if (eq) {
                                size_t n = MIN(vlen, sizeof p.verp_delims - 1);
                                p.verp_given = true;
                                memcpy(p.verp_delims, value, n);
                                p.verp_delims[n] = '\0';
                        }
                } else if (!mail && word_eq(param, nlen, "NOTIFY")) {
                        if (p.dsn_notify != 0 || !value || dsn_notify_parse(value, vlen, &p.dsn_notify) < 0)
                                return -EINVAL;
                } else if (!mail && word_eq(param, nlen, "ORCPT")) {
                        if (have_orcpt || !value || !dsn_orcpt_valid(value, vlen))
                                return -EINVAL;
                        memcpy(p.dsn_orcpt, value, vlen);
                        p.dsn_orcpt[vlen] = '\0';
                        have_orcpt = true;
                } else
                        return unsupported(param, plen, ret);
        }
        *ret = p;
        return 0;
}

int smtpd_mail_parse(const char *arg, size_t len, bool strict, SmtpdPath *ret) {
        return envelope_parse(arg, len, "FROM:", true, strict, ret);
}

int smtpd_rcpt_parse(const char *arg, size_t len, bool strict, SmtpdPath *ret) {
        return envelope_parse(arg, len, "TO:", false, strict, ret);
}

int smtpd_bdat_parse(const char *arg, size_t len, uint64_t *ret_size, bool *ret_last) {
        size_t n = 0, i;
        bool last = false;
        uint64_t size;

        while (n < len && is_digit(arg[n]))
                n++;
        if (n == 0 || size_parse(arg, n, &size) < 0)
                return -EINVAL;
        for (i = n; i < len && is_blank(arg[i]); i++)
                ;
        if (i < len) {
                if (i == n || !word_eq(arg + i, len - i, "LAST"))
                        return -EINVAL;
                last = true;
        }
        *ret_size = size;
        *ret_last = last;
        return 0;
}

int smtpd_vrfy_parse(const char *arg, size_t len, char address[static ADDRESS_MAX + 1]) {
        size_t used;

        if (len == 0)
                return -EINVAL;
        if (arg[0] == '<') {
                if (path_parse(arg, len, address, &used) < 0 || used != len || address[0] == '\0')
                        return -EINVAL;
                return 0;
        }
        if (len > ADDRESS_MAX || memchr(arg, '\0', len))
                return -EINVAL;
        memcpy(address, arg, len);
        address[len] = '\0';
        return address_valid(address) ? 0 : -EINVAL;
}

void smtpd_data_reader_init(SmtpdDataReader *r, uint64_t size_limit, unsigned flags) {
        *r = (SmtpdDataReader) {
                .state = SMTPD_DATA_LINE_START,
                .flags = flags,
                .size_limit = size_limit,
                .prev_bare = flags & SMTPD_DATA_AFTER_BARE_LF,
        };
}

/* Accounts n bytes of content, and stores those that come before the first byte beyond the size limit: so
 * what is stored does not depend on how the input was cut. */
static void data_store(SmtpdDataReader *r, const char *p, size_t n, char *out, size_t *out_len) {
        size_t keep = r->too_big ? 0 : n;

        if (n > r->size_limit - r->size) {
                keep = MIN(keep, (size_t) (r->size_limit - r->size));
                r->too_big = true;
        } else
                r->size += n;
        memcpy(out + *out_len, p, keep);
        *out_len += keep;
}

/* A line ended: by CRLF (crlf), or by a bare LF or CR. After DATA, the line "." ends the message only when
 * it and the line before ended in CRLF; otherwise it was unstuffed to an empty line, stored as such. */
static void data_line_end(SmtpdDataReader *r, bool crlf, char *out, size_t *out_len) {
        if ((r->flags & SMTPD_DATA_DOT_STUFFED) && r->dot_only && crlf && !r->prev_bare) {
                r->state = SMTPD_DATA_END;
                return;
        }
        data_store(r, "\n", 1, out, out_len);
        r->prev_bare = !crlf;
        r->dot_only = false;
        r->state = SMTPD_DATA_LINE_START;
}

static bool is_line_byte(char c) {
        return c != '\r' && c != '\n';
}

size_t smtpd_data_read(SmtpdDataReader *r, const char *buf, size_t len, char *out, size_t out_size,
                       size_t *ret_out_len) {
        size_t i = 0, n = 0;

        assert(out_size > 0);
        /* Each step stores at most one byte, except in TEXT, which stores no more than there is room for. A
         * step that does not consume its byte hands it on to the next state. */
        while (i < len && n < out_size && r->state != SMTPD_DATA_END && r->state != SMTPD_DATA_BARE_LF) {
                char c = buf[i];

                switch (r->state) {
                case SMTPD_DATA_LINE_START:
                        if (c == '.' && (r->flags & SMTPD_DATA_DOT_STUFFED)) {
                                r->dot_only = true;
                                i++;
                        }
                        r->state = SMTPD_DATA_TEXT;
                        break;
                case SMTPD_DATA_TEXT: {
                        size_t room = MIN(len - i, out_size - n), run = 0;

                        while (run < room && is_line_byte(buf[i + run]))
                                run++;
                        if (run > 0) {
                                data_store(r, buf + i, run, out, &n);
                                r->dot_only = false;
                                i += run;
                        } else if (c == '\r') {
                                r->state = SMTPD_DATA_CR;
                                i++;
                        } else if (r->flags & SMTPD_DATA_REJECT_BARE_LF)
                                r->state = SMTPD_DATA_BARE_LF;  /* the LF is not consumed */
                        else {
                                data_line_end(r, false, out, &n);
                                i++;
                        }
                        break;
                }
                case SMTPD_DATA_CR:
                        if (c == '\n') {
                                data_line_end(r, true, out, &n);
                                i++;
                        } else
                                data_line_end(r, false, out, &n);       /* a bare CR: c starts a line */
                        break;
                default:
                        assert(false);
                }
        }
        *ret_out_len = n;
        return i;
}

size_t smtpd_data_finish(SmtpdDataReader *r, char *out, size_t out_size) {
        size_t n = 0;

        assert(out_size > 0);
        if (r->state == SMTPD_DATA_CR)
                data_line_end(r, false, out, &n);
        return n;
}

static size_t digits_span(const char *s, size_t max) {
        size_t n = 0;

        while (n < max && is_digit(s[n]))
                n++;
        return n;
}

int smtpd_status_reply(const char *text, char cls, const char *default_code,
                       char ret[static SMTPD_REPLY_LINE_MAX]) {
        size_t len = strlen(text), i = 0, n;
        bool has_code = false;

        assert(strlen(default_code) == 3 && default_code[0] == cls);
        /* Room for a default code and CRLF. */
        if (len > SMTPD_REPLY_LINE_MAX - STRLEN("554 \r\n") - 1)
                return -EINVAL;
        for (size_t k = 0; k < len; k++)
                if (text[k] < 0x20 || text[k] >= 0x7F)
                        return -EINVAL;

        if (len >= 4 && digits_span(text, 3) == 3 && text[3] == ' ') {
                if (text[0] != cls || text[1] > '5')
                        return -EINVAL;
                has_code = true;
                i = 4;
        }
        /* RFC 3463: class "." subject "." detail, of one to three digits each. */
        if (text[i] != cls || text[i + 1] != '.')
                return -EINVAL;
        i += 2;
        n = digits_span(text + i, 3);
        if (n == 0 || text[i + n] != '.')
                return -EINVAL;
        i += n + 1;
        n = digits_span(text + i, 3);
        if (n == 0 || (text[i + n] != ' ' && text[i + n] != '\0'))
                return -EINVAL;

        if (has_code)
                memcpy(ret, text, len + 1);
        else
                (void) snprintf(ret, SMTPD_REPLY_LINE_MAX, "%s %s", default_code, text);
        return 0;
}

static const char *const ehlo_keywords[] = {
        "8BITMIME", "AUTH", "ETRN", "PIPELINING", "SIZE", "VERP", "VRFY", "XCLIENT", "XFORWARD", "STARTTLS",
        "ENHANCEDSTATUSCODES", "DSN", "SILENT-DISCARD", "SMTPUTF8", "CHUNKING",
};

unsigned smtpd_ehlo_discard_parse(const char *list, size_t len) {
        unsigned mask = 0;

        for (size_t i = 0; i < len;) {
                size_t n = 0;

                while (i < len && (list[i] == ',' || list[i] == ' ' || list[i] == '\t' || list[i] == '\n'))
                        i++;
                while (i + n < len && !strchr(", \t\n", list[i + n]))
                        n++;
                if (n == 0)
                        break;
                for (size_t k = 0; k < ELEMENTSOF(ehlo_keywords); k++) {
                        const char *w = list + i;
                        size_t wn = n;

                        if (streq(ehlo_keywords[k], "VERP") && wn == 5 && (w[0] == 'x' || w[0] == 'X')) {
                                w++;
                                wn--;
                        }
                        if (strlen(ehlo_keywords[k]) == wn && strncasecmp(ehlo_keywords[k], w, wn) == 0)
                                mask |= 1U << k;
                }
                i += n;
        }
        return mask;
}

void smtpd_ehlo_discard_to_string(unsigned mask, char *ret, size_t size) {
        size_t n = 0;

        assert(size > 0);
        ret[0] = '\0';
        for (size_t k = 0; k < ELEMENTSOF(ehlo_keywords); k++) {
                if (!(mask & (1U << k)) || (1U << k) == SMTPD_EHLO_SILENT_DISCARD || n >= size)
                        continue;
                n += (size_t) snprintf(ret + n, size - n, "%s%s", n > 0 ? " " : "", ehlo_keywords[k]);
        }
}

size_t smtpd_reply_strip_enhanced(char *reply, size_t len) {
        size_t in = 0, out = 0;

        while (in < len) {
                const char *l = reply + in, *end = memmem(l, len - in, "\r\n", 2);
                size_t line = end ? (size_t) (end - l) : len - in, skip = 0;

                /* "250-2.1.0 text": the code and its separator stay, "2.1.0 " goes. */
                if (line >= 4 && digits_span(l, 3) == 3 && (l[3] == ' ' || l[3] == '-')) {
                        skip = smtpd_reply_enhanced_len(l, line);
                        skip = skip > 0 && skip + 4 < line ? skip + 1 : 0;     /* with its space, before text */
                }
                memmove(reply + out, l, MIN(line, (size_t) 4));
                if (line > 4)
                        memmove(reply + out + 4, l + 4 + skip, line - 4 - skip);
                out += line - skip;
                in += line;
                if (end) {
                        memcpy(reply + out, "\r\n", 2);
                        out += 2;
                        in += 2;
                }
        }
        return out;
}

void smtpd_reply_censor(char *s) {
        for (; *s; s++)
                if (*s < 0x20 || *s > 0x7e)
                        *s = '_';
}

size_t smtpd_reply_enhanced_len(const char *reply, size_t len) {
        size_t i = 6, n;

        if (len < 7 || (reply[3] != ' ' && reply[3] != '-') || reply[4] < '2' || reply[4] > '5' || reply[5] != '.')
                return 0;
        n = digits_span(reply + i, MIN(len - i, (size_t) 3));
        if (n == 0 || i + n >= len || reply[i + n] != '.')
                return 0;
        i += n + 1;
        n = digits_span(reply + i, MIN(len - i, (size_t) 3));
        if (n == 0 || (i + n < len && reply[i + n] != ' '))
                return 0;
        return i + n - 4;
}

int smtpd_reply_add_footer(char *reply, size_t len, size_t size, const char *footer) {
        bool cont = footer[0] == '\\' && footer[1] == 'c';
        const char *seg = cont ? footer + 2 : footer;
        size_t dsn, last = 0, first_last, o = len;
        char saved;

        if (len < 4 || len > size)
                return -EINVAL;
        dsn = smtpd_reply_enhanced_len(reply, len);
        for (const char *e; (e = memmem(reply + last, len - last, "\r\n", 2));)
                last = (size_t) (e - reply) + 2;
        if (len - last < 4)
                return -EINVAL;
        first_last = last;
        saved = reply[last + 3];
        for (bool first = true;; first = false) {
                const char *end = strstr(seg, "\\n");
                size_t n = end ? (size_t) (end - seg) : strlen(seg);

                if (!first || !cont) {
                        /* A line of its own, "550 5.1.1 ", and the line before it gets '-'. */
                        if (2 + 4 + (dsn ? dsn + 1 : 0) > size - o)
                                goto too_big;
                        reply[last + 3] = '-';
                        memcpy(reply + o, "\r\n", 2);
                        last = o + 2;
                        memcpy(reply + last, reply, 3);
                        reply[last + 3] = ' ';
                        o = last + 4;
                        if (dsn > 0) {
                                memcpy(reply + o, reply + 4, dsn);
                                reply[o + dsn] = ' ';
                                o += dsn + 1;
                        }
                }
                if (n > size - o)
                        goto too_big;
                memcpy(reply + o, seg, n);
                o += n;
                if (!end)
                        break;
                seg = end + 2;
        }
        return (int) o;

too_big:
        reply[first_last + 3] = saved;  /* the one byte changed within len */
        return -E2BIG;
}
