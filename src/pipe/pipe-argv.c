/* pipe-argv.c: the command line of a pipe transport, in the pipe process: the letters of flags= and eol=,
 * addresses in the forms Postfix's pipe(8) hands to commands (unquoted, RFC 5322-quoted, case-folded,
 * split into user, extension and domain), and the expansion of the argv= macros, a word per recipient where
 * the word names one. Pure functions over strings. */
#include <ctype.h>

#include "pipe.h"
#include "string-util.h"

int pipe_flags_parse(const char *s, unsigned *ret, char *ret_bad) {
        static const struct {
                char letter;
                PipeFlag flag;
        } table[] = {
                { 'B', PIPE_FLAG_BLANK },       { 'D', PIPE_FLAG_DELIVERED_TO }, { 'F', PIPE_FLAG_FROM_LINE },
                { 'O', PIPE_FLAG_ORIGINAL_TO }, { 'R', PIPE_FLAG_RETURN_PATH },  { 'X', PIPE_FLAG_FINAL },
                { 'h', PIPE_FLAG_FOLD_HOST },   { 'q', PIPE_FLAG_QUOTE },        { 'u', PIPE_FLAG_FOLD_USER },
                { '.', PIPE_FLAG_DOT },         { '>', PIPE_FLAG_QUOTE_FROM },
        };
        unsigned flags = 0;

        for (const char *p = s; *p; p++) {
                size_t i;

                for (i = 0; i < ELEMENTSOF(table); i++)
                        if (table[i].letter == *p)
                                break;
                if (i == ELEMENTSOF(table)) {
                        if (ret_bad)
                                *ret_bad = *p;
                        return -EINVAL;
                }
                flags |= table[i].flag;
        }
        *ret = flags;
        return 0;
}

int pipe_eol_parse(const char *s, char **ret) {
        char buf[PIPE_EOL_MAX + 1];
        size_t n = 0;

        for (const char *p = s; *p; p++) {
                char c = *p;

                if (c == '\\') {
                        static const char from[] = "abfnrtv\\", to[] = "\a\b\f\n\r\t\v\\";
                        const char *e = p[1] ? strchr(from, p[1]) : NULL;

                        if (e) {
                                c = to[e - from];
                                p++;
                        } else if (p[1] >= '0' && p[1] <= '7') {
                                unsigned v = 0;
                                for (int k = 0; k < 3 && p[1] >= '0' && p[1] <= '7'; k++)
                                        v = v * 8 + (unsigned) (*++p - '0');
                                if (v == 0 || v > 0xFF)
                                        return -EINVAL;
                                c = (char) v;
                        }
                        /* Any other backslash stands for itself, as Postfix's unescape() leaves it. */
                }
                if (n >= PIPE_EOL_MAX)
                        return -EINVAL;
                buf[n++] = c;
        }
        if (n == 0)
                return -EINVAL;
        buf[n] = '\0';
        *ret = strdup(buf);
        return *ret ? 0 : -ENOMEM;
}

/* Where the local part starts: after a source route "@a,@b:". */
static const char *skip_route(const char *address) {
        const char *colon;

        if (address[0] == '@' && (colon = strchr(address, ':')))
                return colon + 1;
        return address;
}

int pipe_address_unquote(const char *address, char **ret) {
        const char *start = skip_route(address), *bare_at = NULL;
        size_t size = strlen(address) + 1, n = (size_t) (start - address), at_pos = 0;
        _cleanup_free_ char *out = malloc(size);
        bool quoted = false;

        if (!out)
                return -ENOMEM;
        memcpy(out, address, n);
        for (const char *p = start; *p; p++) {
                if (*p == '"') {
                        quoted = !quoted;
                        continue;
                }
                if (*p == '@' && !quoted) {
                        bare_at = p;
                        at_pos = n;
                } else if (*p == '\\' && p[1])
                        p++;
                out[n++] = *p;
        }
        /* The domain stays as it was. */
        if (bare_at) {
                strcpy(out + at_pos, bare_at);
                n = at_pos + strlen(bare_at);
        }
        out[n] = '\0';
        *ret = TAKE_PTR(out);
        return 0;
}

/* Whether [s, end) is an RFC 5322 dot-atom, bytes beyond ASCII allowed. */
static bool dot_atom(const char *s, const char *end) {
        if (s == end || *s == '.' || end[-1] == '.')
                return false;
        for (const char *p = s; p < end; p++) {
                unsigned char c = (unsigned char) *p;

                if (c == '.' && p + 1 < end && p[1] == '.')
                        return false;
                if (c <= ' ' || c == 0x7F || strchr("()<>@,;:\\\"[]", c))
                        return false;
        }
        return true;
}

int pipe_address_quote(const char *internal, char **ret) {
        const char *start = skip_route(internal), *end = strrchr(start, '@');
        char *out, *o;

        if (!end)
                end = start + strlen(start);
        if (dot_atom(start, end)) {
                out = strdup(internal);
                if (!out)
                        return -ENOMEM;
                *ret = out;
                return 0;
        }
        /* At worst every byte of the local part escaped, and two quotes. */
        out = malloc(2 * strlen(internal) + 3);
        if (!out)
                return -ENOMEM;
        o = mempcpy(out, internal, (size_t) (start - internal));
        *o++ = '"';
        for (const char *p = start; p < end; p++) {
                if (*p == '"' || *p == '\\' || *p == '\r')
                        *o++ = '\\';
                *o++ = *p;
        }
        *o++ = '"';
        strcpy(o, end);
        *ret = out;
        return 0;
}

void pipe_address_fold(char *address, bool user, bool host) {
        char *at = strrchr(address, '@');

        for (char *p = address; *p; p++)
                if ((at && p > at) ? host : user)
                        *p = (char) tolower((unsigned char) *p);
}

size_t pipe_split_extension(const char *local, const char *delimiters, const char **ret_extension) {
        size_t len = strlen(local), k;

        *ret_extension = NULL;
        if (isempty(delimiters) || len == 0)
                return len;
        if (strcaseeq(local, "postmaster") || strcaseeq(local, "MAILER-DAEMON") || strcaseeq(local, "double-bounce"))
                return len;
        if (strchr(delimiters, '-') &&
            (strncasecmp(local, "owner-", 6) == 0 || (len > 8 && strcaseeq(local + len - 8, "-request"))))
                return len;
        /* Not at the first byte: the user part is never empty. */
        k = 1 + strcspn(local + 1, delimiters);
        if (k >= len)
                return len;
        *ret_extension = local + k + 1;
        return k;
}

/* The names of the macros; the first PIPE_MACROS_PER_RECIPIENT are a recipient's. */
const char *const pipe_macro_names[] = {
        "recipient", "original_recipient", "user", "extension", "mailbox", "domain",
        "sender", "nexthop", "size", "queue_id", "client_address", "client_hostname", "client_helo",
        "client_port", "client_protocol", "sasl_method", "sasl_username", "sasl_sender", NULL,
};

enum {
        MACRO_RECIPIENT,
        MACRO_ORIGINAL_RECIPIENT,
        MACRO_USER,
        MACRO_EXTENSION,
        MACRO_MAILBOX,
        MACRO_DOMAIN,
        PIPE_MACROS_PER_RECIPIENT,
        MACRO_SENDER = PIPE_MACROS_PER_RECIPIENT,
        MACRO_NEXTHOP,
        MACRO_FIRST_VAR,
        _MACRO_MAX = ELEMENTSOF(pipe_macro_names) - 1,
};

static int macro_find(const char *name, size_t len) {
        for (int i = 0; i < _MACRO_MAX; i++)
                if (strlen(pipe_macro_names[i]) == len && strncmp(pipe_macro_names[i], name, len) == 0)
                        return i;
        return -1;
}

/* Expands one word with values (a string per macro), or with values NULL only checks it; in both cases
 * the per-recipient macros it refers to go into *ret_mask. $$ is a '$'. */
static int expand_word(const char *word, const char *const *values, char **ret, unsigned *ret_mask, char **ret_error) {
        _cleanup_free_ char *out = NULL;
        size_t out_len = 0;
        FILE *f = NULL;
        unsigned mask = 0;

        if (values) {
                f = open_memstream(&out, &out_len);
                if (!f)
                        return -ENOMEM;
        }
        for (const char *p = word; *p;) {
                const char *name, *end;
                size_t len;

                if (*p != '$' || p[1] == '$') {
                        if (f)
                                fputc(*p, f);
                        p += *p == '$' ? 2 : 1;
                        continue;
                }
                p++;
                if (*p == '{' || *p == '(') {
                        char close = *p == '{' ? '}' : ')';
                        name = p + 1;
                        end = strchr(name, close);
                        if (!end) {
                                if (f)
                                        fclose(f);
                                return asprintf(ret_error, "truncated macro reference in \"%s\"", word) < 0
                                               ? -ENOMEM : -EINVAL;
                        }
                        p = end + 1;
                } else {
                        name = p;
                        for (end = p; isalnum((unsigned char) *end) || *end == '_'; end++)
                                ;
                        p = end;
                }
                len = (size_t) (end - name);
                int m = len > 0 ? macro_find(name, len) : -1;
                if (m < 0) {
                        if (f)
                                fclose(f);
                        if (len == 0)
                                return asprintf(ret_error, "empty macro name in \"%s\"", word) < 0 ? -ENOMEM : -EINVAL;
                        return asprintf(ret_error, "unknown macro name \"%.*s\" in \"%s\"", (int) len, name, word) < 0
                                       ? -ENOMEM : -EINVAL;
                }
                if (m < PIPE_MACROS_PER_RECIPIENT)
                        mask |= 1U << m;
                if (f)
                        fputs(strempty(values[m]), f);
        }
        if (f && fclose(f) != 0)
                return -ENOMEM;
        *ret_mask = mask;
        if (ret)
                *ret = TAKE_PTR(out);
        return 0;
}

/* An address as $recipient and $original_recipient show it: unquoted, or quoted with q; then folded. */
static int morph_address(const char *address, unsigned flags, char **ret) {
        _cleanup_free_ char *internal = NULL;
        char *out;
        int r;

        r = pipe_address_unquote(address, &internal);
        if (r < 0)
                return r;
        if (flags & PIPE_FLAG_QUOTE) {
                r = pipe_address_quote(internal, &out);
                if (r < 0)
                        return r;
        } else
                out = TAKE_PTR(internal);
        pipe_address_fold(out, flags & PIPE_FLAG_FOLD_USER, flags & PIPE_FLAG_FOLD_HOST);
        *ret = out;
        return 0;
}

/* The per-recipient values a word needs (mask) for one recipient, into values[0..PIPE_MACROS_PER_RECIPIENT).
 * Returns 1 when the word is to be left out for this recipient (an empty user part). */
static int recipient_values(const PipeExpand *x, const PipeAddress *a, unsigned mask, char **values) {
        _cleanup_free_ char *internal = NULL;
        const char *extension;
        int r;

        if (mask & (1U << MACRO_RECIPIENT)) {
                r = morph_address(a->address, x->flags, &values[MACRO_RECIPIENT]);
                if (r < 0)
                        return r;
        }
        if (mask & (1U << MACRO_ORIGINAL_RECIPIENT)) {
                r = morph_address(a->original ? a->original : a->address, x->flags, &values[MACRO_ORIGINAL_RECIPIENT]);
                if (r < 0)
                        return r;
        }
        if (!(mask & ((1U << MACRO_USER) | (1U << MACRO_EXTENSION) | (1U << MACRO_MAILBOX) | (1U << MACRO_DOMAIN))))
                return 0;

        /* The parts, from the unquoted address, folded but never quoted. */
        r = pipe_address_unquote(a->address, &internal);
        if (r < 0)
                return r;
        pipe_address_fold(internal, x->flags & PIPE_FLAG_FOLD_USER, x->flags & PIPE_FLAG_FOLD_HOST);
        char *at = strrchr(internal, '@');
        values[MACRO_DOMAIN] = strdup(at ? at + 1 : "");
        if (at)
                *at = '\0';
        values[MACRO_MAILBOX] = strdup(internal);
        size_t user_len = pipe_split_extension(internal, x->delimiter, &extension);
        values[MACRO_EXTENSION] = strdup(strempty(extension));
        values[MACRO_USER] = strndup(internal, user_len);
        if (!values[MACRO_DOMAIN] || !values[MACRO_MAILBOX] || !values[MACRO_EXTENSION] || !values[MACRO_USER])
                return -ENOMEM;
        return (mask & (1U << MACRO_USER)) && user_len == 0;
}

static void values_clear(char **values, size_t n) {
        for (size_t i = 0; i < n; i++)
                values[i] = mfree(values[i]);
}

/* strv_push() within PIPE_ARGS_MAX words; takes s in any case. */
static int strv_append(char ***l, size_t *n, char *s) {
        if (*n >= PIPE_ARGS_MAX) {
                free(s);
                return -E2BIG;
        }
        return strv_push(l, n, s);
}

/* The sender as $sender shows it: the null sender's stand-in, unquoted, or quoted with q. */
static int sender_value(const PipeExpand *x, char **ret) {
        _cleanup_free_ char *internal = NULL;
        int r;

        if (isempty(x->sender)) {
                const char *s = strempty(x->null_sender);
                if (*s && (x->flags & PIPE_FLAG_QUOTE))
                        return pipe_address_quote(s, ret);
                *ret = strdup(s);
                return *ret ? 0 : -ENOMEM;
        }
        r = pipe_address_unquote(x->sender, &internal);
        if (r < 0)
                return r;
        if (x->flags & PIPE_FLAG_QUOTE)
                return pipe_address_quote(internal, ret);
        *ret = TAKE_PTR(internal);
        return 0;
}

int pipe_argv_expand(char **argv, const PipeExpand *x, char ***ret, char **ret_error) {
        char *values[_MACRO_MAX] = {};
        _cleanup_strv_free_ char **out = NULL;
        size_t n = 0;
        int r;

        r = sender_value(x, &values[MACRO_SENDER]);
        if (r < 0)
                goto finish;
        values[MACRO_NEXTHOP] = strdup(strempty(x->nexthop));
        if (!values[MACRO_NEXTHOP]) {
                r = -ENOMEM;
                goto finish;
        }
        if (x->flags & PIPE_FLAG_FOLD_HOST)
                for (char *p = values[MACRO_NEXTHOP]; *p; p++)
                        *p = (char) tolower((unsigned char) *p);
        for (int m = MACRO_FIRST_VAR; m < _MACRO_MAX; m++) {
                const char *v = "";
                for (const char *const *kv = x->vars; kv && kv[0] && kv[1]; kv += 2)
                        if (streq(kv[0], pipe_macro_names[m]))
                                v = kv[1];
                values[m] = strdup(v);
                if (!values[m]) {
                        r = -ENOMEM;
                        goto finish;
                }
        }

        for (char **w = argv; w && *w; w++) {
                unsigned mask;
                char *s;

                r = expand_word(*w, NULL, NULL, &mask, ret_error);
                if (r < 0)
                        goto finish;
                if (mask == 0) {
                        r = expand_word(*w, (const char *const *) values, &s, &mask, ret_error);
                        if (r >= 0)
                                r = strv_append(&out, &n, s);
                        if (r < 0)
                                goto finish;
                        continue;
                }
                for (size_t i = 0; i < x->n_recipients; i++) {
                        r = recipient_values(x, x->recipients + i, mask, values);
                        if (r == 0) {
                                r = expand_word(*w, (const char *const *) values, &s, &mask, ret_error);
                                if (r >= 0)
                                        r = strv_append(&out, &n, s);
                        }
                        values_clear(values, PIPE_MACROS_PER_RECIPIENT);
                        if (r < 0)
                                goto finish;
                }
        }
        if (n == 0) {
                r = asprintf(ret_error, "the command line is empty") < 0 ? -ENOMEM : -EINVAL;
                goto finish;
        }
        *ret = TAKE_PTR(out);
        r = 0;
finish:
        values_clear(values, _MACRO_MAX);
        return r;
}
