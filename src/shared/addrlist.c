/* addrlist.c: RFC 5322 address lists (3.4): a tokenizer and a small state machine over its
 * tokens. Whatever a header holds, parsing ends and every string it returns is bounded by the input. */
#include <stdbool.h>
#include <string.h>
#include <strings.h>

#include "address.h"
#include "addrlist.h"

typedef enum AddrTokenType {
        ADDR_TOKEN_ATOM,        /* atom or dot-atom text, an encoded word included */
        ADDR_TOKEN_QUOTED,      /* "quoted string", quotes included */
        ADDR_TOKEN_LITERAL,     /* [domain literal], brackets included */
        ADDR_TOKEN_SPECIAL,     /* one of < > , : ; @ . */
        ADDR_TOKEN_END,
        _ADDR_TOKEN_TYPE_MAX,
        _ADDR_TOKEN_TYPE_INVALID = -EINVAL,
} AddrTokenType;

typedef struct AddrToken {
        AddrTokenType type;
        size_t start, end;
} AddrToken;

static bool is_special(char c) {
        return c == '<' || c == '>' || c == ',' || c == ':' || c == ';' || c == '@' || c == '.' || c == '(' ||
               c == ')' || c == '"' || c == '[' || c == ']' || c == '\\';
}

static bool is_space(char c) {
        return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

/* The next token at or after *off; comments and white space are skipped. */
static AddrToken next_token(const char *buf, size_t len, size_t *off) {
        size_t i = *off;

        for (;;) {
                while (i < len && is_space(buf[i]))
                        i++;
                if (i < len && buf[i] == '(') {
                        unsigned depth = 0;
                        for (; i < len; i++) {
                                if (buf[i] == '\\' && i + 1 < len)
                                        i++;
                                else if (buf[i] == '(')
                                        depth++;
                                else if (buf[i] == ')' && --depth == 0) {
                                        i++;
                                        break;
                                }
                        }
                        continue;
                }
                break;
        }
        AddrToken t = { .start = i };
        if (i >= len) {
                t.type = ADDR_TOKEN_END;
        } else if (buf[i] == '"' || buf[i] == '[') {
                char close = buf[i] == '"' ? '"' : ']';
                t.type = buf[i] == '"' ? ADDR_TOKEN_QUOTED : ADDR_TOKEN_LITERAL;
                for (i++; i < len; i++) {
                        if (buf[i] == '\\' && i + 1 < len)
                                i++;
                        else if (buf[i] == close) {
                                i++;
                                break;
                        }
                }
        } else if (buf[i] == '<' || buf[i] == '>' || buf[i] == ',' || buf[i] == ':' || buf[i] == ';' ||
                   buf[i] == '@' || buf[i] == '.') {
                t.type = ADDR_TOKEN_SPECIAL;
                i++;
        } else {
                /* An atom; a stray ')', ']' or '\' is taken as part of it rather than lost. */
                t.type = ADDR_TOKEN_ATOM;
                i++;
                while (i < len && !is_space(buf[i]) && !is_special(buf[i]))
                        i++;
        }
        t.end = MIN(i, len);
        *off = t.end;
        return t;
}

typedef struct AddrItem {
        size_t start, end;      /* the addr-spec's extent: from its first to its last token */
        bool have;
        bool angle;             /* inside <...> */
        bool angle_done;        /* an angle address was seen: it is the item's address */
        bool route;             /* inside an obsolete source route "<@a,@b:" */
        size_t angle_start, angle_end;
        bool angle_have;
} AddrItem;

static char *addr_join(const char *buf, size_t start, size_t end) {
        /* The addr-spec without the white space and comments between its tokens. */
        char *out = malloc(end - start + 1), *o = out;
        size_t off = start;

        if (!out)
                return NULL;
        for (;;) {
                AddrToken t = next_token(buf, end, &off);
                if (t.type == ADDR_TOKEN_END)
                        break;
                memcpy(o, buf + t.start, t.end - t.start);
                o += t.end - t.start;
        }
        *o = '\0';
        return out;
}

static int item_finish(const char *buf, AddrItem *it, AddressItem **l, size_t *n, size_t max) {
        size_t s, e;

        if (it->angle_done || it->angle) {
                if (!it->angle_have)
                        goto reset;
                s = it->angle_start;
                e = it->angle_end;
        } else {
                if (!it->have)
                        goto reset;
                s = it->start;
                e = it->end;
        }
        if (*n >= max)
                return -E2BIG;
        char *a = addr_join(buf, s, e);
        if (!a)
                return -ENOMEM;
        if (a[0] == '\0') {
                free(a);
                goto reset;
        }
        AddressItem *nl = realloc(*l, (*n + 1) * sizeof(AddressItem));
        if (!nl) {
                free(a);
                return -ENOMEM;
        }
        *l = nl;
        nl[(*n)++] = (AddressItem) { .address = a, .start = s, .end = e };
reset:
        *it = (AddrItem) {};
        return 0;
}

void addrlist_free(AddressItem *l, size_t n) {
        for (size_t i = 0; l && i < n; i++)
                free(l[i].address);
        free(l);
}

int addrlist_parse(const char *buf, size_t len, size_t max, AddressItem **ret) {
        AddressItem *l = NULL;
        size_t n = 0, off = 0;
        AddrItem it = {};
        bool group = false;
        int r;

        for (;;) {
                AddrToken t = next_token(buf, len, &off);
                char c = t.type == ADDR_TOKEN_SPECIAL ? buf[t.start] : '\0';

                if (t.type == ADDR_TOKEN_END) {
                        r = item_finish(buf, &it, &l, &n, max);
                        break;
                }
                if (it.angle) {
                        if (c == '>') {
                                it.angle = false;
                                it.angle_done = true;
                        } else if (it.route) {
                                /* "@a,@b:" before the address: obsolete, dropped */
                                if (c == ':')
                                        it.route = false;
                        } else if (c == '@' && !it.angle_have) {
                                it.route = true;
                        } else if (c == ',' || c == ';' || c == '<') {
                                /* A broken angle address: end it here. */
                                it.angle = false;
                                it.angle_done = true;
                                if (c == '<')
                                        continue;
                                r = item_finish(buf, &it, &l, &n, max);
                                if (r < 0)
                                        break;
                                if (c == ';')
                                        group = false;
                        } else {
                                if (!it.angle_have)
                                        it.angle_start = t.start;
                                it.angle_have = true;
                                it.angle_end = t.end;
                        }
                        continue;
                }
                if (c == ',' || c == ';') {     /* a stray ';' outside a group separates too */
                        r = item_finish(buf, &it, &l, &n, max);
                        if (r < 0)
                                break;
                        if (c == ';')
                                group = false;
                } else if (c == ':' && !group && !it.angle_done) {
                        /* "display name:" starts a group; what came before is its name. */
                        it = (AddrItem) {};
                        group = true;
                } else if (c == '<' && !it.angle_done) {
                        it.angle = true;
                } else if (c == '>' || c == ';' || c == ':' || it.angle_done) {
                        continue;       /* stray, or words after an angle address: ignored */
                } else {
                        if (!it.have)
                                it.start = t.start;
                        it.have = true;
                        it.end = t.end;
                }
        }
        if (r < 0) {
                addrlist_free(l, n);
                return r;
        }
        *ret = l;
        return (int) n;
}

static bool header_is(const char *h, size_t hlen, const char *name) {
        size_t n = strlen(name);
        return hlen > n && h[n] == ':' && strncasecmp(h, name, n) == 0;
}

bool addrlist_header_names_recipients(const char *h, size_t hlen, bool resent) {
        if (resent)
                return header_is(h, hlen, "Resent-To") || header_is(h, hlen, "Resent-Cc") ||
                       header_is(h, hlen, "Resent-Bcc");
        return header_is(h, hlen, "To") || header_is(h, hlen, "Cc") || header_is(h, hlen, "Bcc");
}

AddrlistHeaderClass addrlist_header_class(const char *h, size_t hlen) {
        static const char *const sender[] = {
                "From", "Sender", "Reply-To", "Return-Receipt-To", "Errors-To", "Disposition-Notification-To",
                "Resent-From", "Resent-Sender", "Resent-Reply-To",
        };
        static const char *const recipient[] = {
                "To", "Cc", "Bcc", "Apparently-To", "Resent-To", "Resent-Cc", "Resent-Bcc",
        };

        for (size_t i = 0; i < ELEMENTSOF(sender); i++)
                if (header_is(h, hlen, sender[i]))
                        return ADDRLIST_HEADER_SENDER;
        for (size_t i = 0; i < ELEMENTSOF(recipient); i++)
                if (header_is(h, hlen, recipient[i]))
                        return ADDRLIST_HEADER_RECIPIENT;
        return ADDRLIST_HEADER_OTHER;
}

/* The end of the logical header starting at off: its first line and the lines that continue it. */
static size_t header_end(const char *hdr, size_t len, size_t off) {
        size_t end = off;

        do {
                const char *nl = memchr(hdr + end, '\n', len - end);
                end = nl ? (size_t) (nl - hdr) + 1 : len;
        } while (end < len && (hdr[end] == ' ' || hdr[end] == '\t'));
        return end;
}

bool addrlist_headers_resent(const char *hdr, size_t len) {
        for (size_t off = 0; off < len; off = header_end(hdr, len, off))
                if (len - off > 7 && strncasecmp(hdr + off, "Resent-", 7) == 0)
                        return true;
        return false;
}

size_t addrlist_count_header_recipients(const char *hdr, size_t len, size_t max) {
        bool resent = addrlist_headers_resent(hdr, len);
        size_t count = 0;

        for (size_t off = 0, end; off < len && count < max; off = end) {
                end = header_end(hdr, len, off);
                if (!addrlist_header_names_recipients(hdr + off, end - off, resent))
                        continue;
                const char *colon = memchr(hdr + off, ':', end - off);
                AddressItem *l = NULL;
                int n = addrlist_parse(colon + 1, end - (size_t) (colon + 1 - hdr), max - count, &l);
                if (n < 0)
                        return max;     /* more than max */
                for (int i = 0; i < n; i++)
                        if (address_valid(l[i].address))
                                count++;
                addrlist_free(l, (size_t) n);
        }
        return count;
}
