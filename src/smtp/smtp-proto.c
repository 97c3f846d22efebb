/* smtp-proto.c: the smtp role's pure protocol helpers over (buf, len): server replies, EHLO keywords, next
 * hops, the encoder that turns queue file content into SMTP DATA, and the pure parts of SASL client
 * authentication (AUTH in EHLO, security options, password table keys, the PLAIN response). Run by
 * postbus-smtp; unit-tested. */
#include <arpa/inet.h>
#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>

#include "dsn.h"
#include "sasl-util.h"
#include "smtp.h"
#include "string-util.h"

void smtp_reply_init(SmtpReply *r) {
        *r = (SmtpReply) {};
}

void smtp_reply_done(SmtpReply *r) {
        free(r->text);
        strv_free(r->lines);
        smtp_reply_init(r);
}

/* An enhanced status code followed by a space or the end of the line: its length, or 0. */
static size_t enhanced_code_len(const char *s, size_t len) {
        size_t n = dsn_status_length(s, len);

        return n < len && s[n] != ' ' ? 0 : n;
}

static int text_append(SmtpReply *r, const char *s, size_t len) {
        size_t add = len + (r->text_len > 0);

        if (r->text_len >= SMTP_REPLY_TEXT_MAX)
                return 0;
        if (add > SMTP_REPLY_TEXT_MAX - r->text_len)
                len = SMTP_REPLY_TEXT_MAX - r->text_len - (r->text_len > 0);
        char *t = realloc(r->text, r->text_len + len + 2);
        if (!t)
                return -ENOMEM;
        r->text = t;
        if (r->text_len > 0)
                t[r->text_len++] = ' ';
        memcpy(t + r->text_len, s, len);
        r->text_len += len;
        t[r->text_len] = '\0';
        return 0;
}

int smtp_reply_add_line(SmtpReply *r, const char *line, size_t len) {
        int code, r_;

        if (r->done)
                return -EBADMSG;
        if (len < 3 || !isdigit((unsigned char) line[0]) || !isdigit((unsigned char) line[1]) ||
            !isdigit((unsigned char) line[2]) || line[0] < '2' || line[0] > '5')
                return -EBADMSG;
        if (len > 3 && line[3] != ' ' && line[3] != '-')
                return -EBADMSG;
        code = (line[0] - '0') * 100 + (line[1] - '0') * 10 + (line[2] - '0');
        if (r->n_lines > 0 && code != r->code)
                return -EBADMSG;
        if (r->n_lines >= SMTP_REPLY_LINES_MAX)
                return -E2BIG;
        if (len > SMTP_REPLY_LINE_MAX)
                len = SMTP_REPLY_LINE_MAX;

        if (r->n_lines == 0) {
                size_t n;

                r->code = code;
                n = len > 4 ? enhanced_code_len(line + 4, len - 4) : 0;
                if (n > 0 && n < sizeof r->dsn && line[4] == line[0]) {
                        memcpy(r->dsn, line + 4, n);
                        r->dsn[n] = '\0';
                }
        }
        /* The text as Postfix logs it: every line whole, codes included, joined with spaces. */
        r_ = text_append(r, line, len);
        if (r_ < 0)
                return r_;
        r_ = strv_push(&r->lines, &r->n_lines, strndup(len > 4 ? line + 4 : "", len > 4 ? len - 4 : 0));
        if (r_ < 0)
                return r_;
        if (len == 3 || line[3] == ' ') {
                r->done = true;
                return 1;
        }
        return 0;
}

const char *smtp_reply_dsn(const SmtpReply *r, char buf[static 16]) {
        if (r->dsn[0] && r->dsn[0] == '0' + r->code / 100)
                return strcpy(buf, r->dsn);
        (void) snprintf(buf, 16, "%d.0.0", r->code / 100);
        return buf;
}

unsigned smtp_ehlo_features(const SmtpReply *r, uint64_t *ret_size_limit) {
        static const struct {
                const char *keyword;
                SmtpFeature feature;
        } table[] = {
                { "PIPELINING", SMTP_FEATURE_PIPELINING },
                { "SIZE", SMTP_FEATURE_SIZE },
                { "8BITMIME", SMTP_FEATURE_8BITMIME },
                { "SMTPUTF8", SMTP_FEATURE_SMTPUTF8 },
                { "DSN", SMTP_FEATURE_DSN },
                { "STARTTLS", SMTP_FEATURE_STARTTLS },
                { "ENHANCEDSTATUSCODES", SMTP_FEATURE_ENHANCEDSTATUSCODES },
        };
        unsigned features = 0;
        uint64_t size = 0;

        /* The first line names the server; each further line is one keyword and its parameters. */
        for (size_t i = 1; i < r->n_lines; i++) {
                const char *l = r->lines[i], *end = l + strcspn(l, " ");

                for (size_t j = 0; j < ELEMENTSOF(table); j++) {
                        if ((size_t) (end - l) != strlen(table[j].keyword) ||
                            strncasecmp(l, table[j].keyword, (size_t) (end - l)) != 0)
                                continue;
                        features |= table[j].feature;
                        if (table[j].feature == SMTP_FEATURE_SIZE && *end == ' ') {
                                char *e;
                                errno = 0;
                                unsigned long long v = strtoull(end + 1, &e, 10);
                                if (errno == 0 && e > end + 1 && (*e == '\0' || *e == ' ') &&
                                    isdigit((unsigned char) end[1]))
                                        size = v;
                        }
                }
        }
        if (ret_size_limit)
                *ret_size_limit = size;
        return features;
}

static int parse_port(const char *s, bool lmtp, uint16_t *ret) {
        char *e;
        unsigned long v;

        if (streq(s, "smtp")) {
                *ret = 25;
                return 0;
        }
        if (streq(s, "lmtp")) {
                *ret = 24;
                return 0;
        }
        if (!isdigit((unsigned char) s[0]))
                return -EINVAL;
        errno = 0;
        v = strtoul(s, &e, 10);
        if (errno != 0 || *e || v == 0 || v > 65535)
                return -EINVAL;
        *ret = (uint16_t) v;
        return 0;
}

static bool host_name_valid(const char *s, size_t len) {
        if (len == 0 || len > 253)
                return false;
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '.' && s[i] != '_')
                        return false;
        return true;
}

static bool ip_literal_valid(const char *s, size_t len) {
        char buf[64];
        struct in6_addr a6;
        struct in_addr a4;

        if (len == 0 || len >= sizeof buf)
                return false;
        memcpy(buf, s, len);
        buf[len] = '\0';
        if (strncasecmp(buf, "ipv6:", 5) == 0)
                return inet_pton(AF_INET6, buf + 5, &a6) == 1;
        return inet_pton(AF_INET, buf, &a4) == 1 || inet_pton(AF_INET6, buf, &a6) == 1;
}

int smtp_hop_parse(const char *s, bool lmtp, uint16_t default_port, SmtpHop *ret) {
        SmtpHop h = { .kind = SMTP_HOP_INET, .port = default_port };
        const char *host, *host_end, *rest;

        if (lmtp && strncmp(s, "unix:", 5) == 0) {
                s += 5;
                if (s[0] != '/' || strlen(s) >= sizeof ((struct sockaddr_un *) NULL)->sun_path)
                        return -EINVAL;
                h.kind = SMTP_HOP_UNIX;
                strcpy(h.host, s);
                h.port = 0;
                *ret = h;
                return 0;
        }
        if (lmtp && strncmp(s, "inet:", 5) == 0)
                s += 5;
        if (s[0] == '[') {
                host = s + 1;
                host_end = strchr(host, ']');
                if (!host_end)
                        return -EINVAL;
                rest = host_end + 1;
                if (!host_name_valid(host, (size_t) (host_end - host)) &&
                    !ip_literal_valid(host, (size_t) (host_end - host)))
                        return -EINVAL;
        } else {
                host = s;
                host_end = s + strcspn(s, ":");
                rest = host_end;
                if (!host_name_valid(host, (size_t) (host_end - host)))
                        return -EINVAL;
                /* LMTP has no MX records; a bare IP address needs none either. */
                h.mx = !lmtp && !ip_literal_valid(host, (size_t) (host_end - host));
        }
        if (*rest == ':') {
                if (parse_port(rest + 1, lmtp, &h.port) < 0)
                        return -EINVAL;
        } else if (*rest)
                return -EINVAL;
        if ((size_t) (host_end - host) >= sizeof h.host)
                return -EINVAL;
        memcpy(h.host, host, (size_t) (host_end - host));
        h.host[host_end - host] = '\0';
        if (strncasecmp(h.host, "ipv6:", 5) == 0)
                memmove(h.host, h.host + 5, strlen(h.host + 5) + 1);
        *ret = h;
        return 0;
}

void smtp_encoder_init(SmtpEncoder *e, size_t line_limit) {
        *e = (SmtpEncoder) { .line_limit = line_limit, .line_start = true };
}

size_t smtp_encoder_bound(const SmtpEncoder *e, size_t len) {
        /* Each input octet becomes at most two ('.' at a line start, or LF as CRLF); a wrap adds three per
         * line_limit - 1 octets of a line. */
        size_t wraps = e->line_limit > 0 ? len / MAX(e->line_limit - 1, (size_t) 1) + 1 : 0;
        return 2 * len + 3 * wraps;
}

size_t smtp_encoder_feed(SmtpEncoder *e, const char *in, size_t len, char *out) {
        size_t o = 0, i = 0;

        /* Line by line, and within a line in runs that memcpy() copies: the octets are looked at one by one
         * only at a line's start (the dot) and at a wrap. */
        while (i < len) {
                const char *nl = memchr(in + i, '\n', len - i);
                size_t end = nl ? (size_t) (nl - in) : len;

                while (i < end) {
                        size_t n;

                        /* Postfix's smtp_line_length_limit: the line goes on after CRLF SPACE, which needs no dot. */
                        if (e->line_limit > 0 && e->column >= e->line_limit) {
                                memcpy(out + o, "\r\n ", 3);
                                o += 3;
                                e->column = 1;
                                e->line_start = false;
                        }
                        if (e->line_start && in[i] == '.') {
                                out[o++] = '.';
                                e->column++;
                        }
                        /* The first octet goes out whatever the column (the dot may have filled it); the run
                         * after it up to the limit. */
                        out[o++] = in[i++];
                        e->column++;
                        e->line_start = false;
                        n = end - i;
                        if (e->line_limit > 0)
                                n = MIN(n, e->column < e->line_limit ? e->line_limit - e->column : 0);
                        memcpy(out + o, in + i, n);
                        o += n;
                        i += n;
                        e->column += n;
                }
                if (nl) {
                        memcpy(out + o, "\r\n", 2);
                        o += 2;
                        i++;
                        e->line_start = true;
                        e->column = 0;
                }
        }
        return o;
}

size_t smtp_encoder_finish(SmtpEncoder *e, char *out) {
        size_t o = 0;

        if (!e->line_start) {
                out[o++] = '\r';
                out[o++] = '\n';
        }
        memcpy(out + o, ".\r\n", 3);
        e->line_start = true;
        e->column = 0;
        return o + 3;
}

int smtp_sasl_options_parse(const char *s, unsigned *ret) {
        static const struct {
                const char *name;
                unsigned flag;
        } table[] = {
                { "noplaintext", SMTP_SASL_NOPLAINTEXT },
                { "noactive", SMTP_SASL_NOACTIVE },
                { "nodictionary", SMTP_SASL_NODICTIONARY },
                { "noanonymous", SMTP_SASL_NOANONYMOUS },
                { "mutual_auth", SMTP_SASL_MUTUAL_AUTH },
                { "forward_secrecy", SMTP_SASL_FORWARD_SECRECY },
        };
        unsigned flags = 0;
        int r = 0;

        for (const char *p = s; p && *p;) {
                size_t n;

                p += strspn(p, " ,\t");
                n = strcspn(p, " ,\t");
                if (n == 0)
                        break;
                bool known = false;
                for (size_t i = 0; i < ELEMENTSOF(table); i++)
                        if (strlen(table[i].name) == n && strncasecmp(p, table[i].name, n) == 0) {
                                flags |= table[i].flag;
                                known = true;
                        }
                if (!known)
                        r = -EINVAL;
                p += n;
        }
        *ret = flags;
        return r;
}

/* Whether the filter (NULL or empty: every mechanism) lets the mechanism name[0 .. len) through. */
static bool mechanism_passes(char **filter, const char *name, size_t len) {
        if (!filter || !filter[0])
                return true;
        for (char **f = filter; *f; f++)
                if (strlen(*f) == len && strncasecmp(*f, name, len) == 0)
                        return true;
        return false;
}

int smtp_ehlo_auth(const SmtpReply *r, char **filter, unsigned *ret_mechanisms, size_t *ret_n_passed) {
        unsigned mechanisms = 0;
        size_t passed = 0;
        bool any = false;

        for (size_t i = 1; i < r->n_lines; i++) {
                const char *l = r->lines[i];

                /* "AUTH PLAIN LOGIN", and the "AUTH=PLAIN LOGIN" of old clients' servers. */
                if (strncasecmp(l, "AUTH", 4) != 0 || (l[4] != ' ' && l[4] != '=' && l[4] != '\0'))
                        continue;
                any = true;
                for (const char *p = l + 4; *p;) {
                        size_t n;

                        p += strspn(p, " =");
                        n = strcspn(p, " =");
                        if (n == 0)
                                break;
                        if (mechanism_passes(filter, p, n)) {
                                const char *m = sasl_mechanism(p, n);
                                passed++;
                                for (size_t k = 0; m && k < SASL_MECHANISMS_MAX; k++)
                                        if (sasl_mechanisms[k] == m)
                                                mechanisms |= 1U << k;
                        }
                        p += n;
                }
        }
        *ret_mechanisms = mechanisms;
        *ret_n_passed = passed;
        return any;
}

const char *smtp_sasl_choose(unsigned mechanisms, unsigned options) {
        /* PLAIN and LOGIN send the password itself: a plaintext mechanism, open to active and dictionary
         * attacks, without mutual authentication or forward secrecy. Only noanonymous leaves them usable. */
        if (options & ~(unsigned) SMTP_SASL_NOANONYMOUS)
                return NULL;
        for (size_t k = 0; k < SASL_MECHANISMS_MAX; k++)
                if (mechanisms & (1U << k))
                        return sasl_mechanisms[k];
        return NULL;
}

static int key_push(char ***keys, size_t *n, char *key) {
        if (!key)
                return -ENOMEM;
        for (size_t i = 0; i < *n; i++)
                if (strcaseeq((*keys)[i], key)) {
                        free(key);
                        return 0;
                }
        return strv_push(keys, n, key);
}

static char *format_key(const char *fmt, ...) _printf_(1, 2);
static char *format_key(const char *fmt, ...) {
        va_list ap;
        char *s;
        int n;

        va_start(ap, fmt);
        n = vasprintf(&s, fmt, ap);
        va_end(ap);
        return n < 0 ? NULL : s;
}

int smtp_sasl_keys(const char *sender, const char *host, uint16_t port, const char *nexthop, bool lmtp,
                   char ***ret) {
        _cleanup_strv_free_ char **keys = NULL;
        size_t n = 0;
        SmtpHop hop;
        int r = 0;

        if (!isempty(sender)) {
                const char *at = strrchr(sender, '@');
                r = key_push(&keys, &n, strdup(sender));
                if (r >= 0 && at && at[1])
                        r = key_push(&keys, &n, strdup(at));
        }
        if (r >= 0 && !isempty(host)) {
                if (port > 0)
                        r = key_push(&keys, &n, format_key("[%s]:%u", host, port));
                if (r >= 0)
                        r = key_push(&keys, &n, format_key("[%s]", host));
                if (r >= 0 && port > 0)
                        r = key_push(&keys, &n, format_key("%s:%u", host, port));
                if (r >= 0)
                        r = key_push(&keys, &n, strdup(host));
        }
        if (r >= 0 && !isempty(nexthop)) {
                r = key_push(&keys, &n, strdup(nexthop));
                if (r >= 0 && smtp_hop_parse(nexthop, lmtp, lmtp ? 24 : 25, &hop) >= 0 && hop.kind == SMTP_HOP_INET)
                        r = key_push(&keys, &n, strdup(hop.host));
        }
        if (r < 0)
                return r;
        if (!keys) {
                keys = calloc(1, sizeof(char *));
                if (!keys)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(keys);
        return 0;
}

int smtp_sasl_plain_response(const char *user, const char *password, char **ret) {
        size_t ul = strlen(user), pl = strlen(password);
        _cleanup_free_ char *buf = malloc(ul + pl + 2);
        int r;

        if (!buf)
                return -ENOMEM;
        /* No authorization identity: "\0user\0password". */
        buf[0] = '\0';
        memcpy(buf + 1, user, ul);
        buf[1 + ul] = '\0';
        memcpy(buf + 2 + ul, password, pl);
        r = sasl_base64_encode(buf, ul + pl + 2, ret);
        explicit_bzero(buf, ul + pl + 2);
        return r;
}
