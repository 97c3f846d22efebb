/* pipe-message.c: what a pipe command reads and what its end means, in the pipe process: the header lines the
 * flags put first, the content with eol= line ends and '>' or '.' quoting, the Delivered-To loop check of the
 * D flag, and the mapping of an exit status and the command's output to a delivery result, as Postfix's
 * pipe(8) and mail_copy() do it. Pure functions over (buf, len). */
#include <stdarg.h>
#include <sys/wait.h>

#include "pipe.h"
#include "sys-exits.h"
#include "utf8.h"

static const char *const pipe_status_table[_PIPE_STATUS_MAX] = {
        [PIPE_STATUS_SENT] = "sent",
        [PIPE_STATUS_DEFERRED] = "deferred",
        [PIPE_STATUS_BOUNCED] = "bounced",
};

const char *pipe_status_to_string(PipeStatus s) {
        return s >= 0 && s < _PIPE_STATUS_MAX ? pipe_status_table[s] : NULL;
}

void pipe_result_set(PipeResult *r, const char *dsn, const char *fmt, ...) {
        va_list ap;

        r->status = dsn[0] == '2' ? PIPE_STATUS_SENT : dsn[0] == '4' ? PIPE_STATUS_DEFERRED : PIPE_STATUS_BOUNCED;
        (void) snprintf(r->dsn, sizeof r->dsn, "%s", dsn);
        va_start(ap, fmt);
        int n = vsnprintf(r->text, sizeof r->text, fmt, ap);
        va_end(ap);

        /* Text that did not fit is cut, perhaps inside a character: a D-Bus string must be valid UTF-8. */
        if (n >= (int) sizeof r->text) {
                size_t len = strlen(r->text), i = 0;
                while (i < len) {
                        size_t k = utf8_sequence_len(r->text + i, len - i);
                        if (k == 0)
                                break;
                        i += k;
                }
                r->text[i] = '\0';
        }
}

/* An address in the form headers carry it: unquoted, then quoted where RFC 5322 needs it. */
static int header_address(const char *address, char **ret) {
        _cleanup_free_ char *internal = NULL;
        int r = pipe_address_unquote(address, &internal);

        return r < 0 ? r : pipe_address_quote(internal, ret);
}

int pipe_message_prefix(unsigned flags, const char *sender, const char *null_sender, const char *original,
                        const char *delivered, const char *eol, time_t now, char **ret) {
        _cleanup_free_ char *out = NULL, *s = NULL, *o = NULL, *d = NULL;
        size_t len = 0;
        FILE *f;
        int r = 0;

        /* As Postfix: the null sender's stand-in is the sender of the From_ line and Return-Path; an empty
         * stand-in makes "Return-Path: <>" and MAILER-DAEMON in the From_ line. */
        if (!isempty(sender))
                r = header_address(sender, &s);
        else if (!isempty(null_sender))
                r = pipe_address_quote(null_sender, &s);
        else
                s = strdup("");
        if (r >= 0 && !isempty(original))
                r = header_address(original, &o);
        if (r >= 0 && delivered)
                r = header_address(delivered, &d);
        if (r < 0)
                return r;
        if (!s)
                return -ENOMEM;

        f = open_memstream(&out, &len);
        if (!f)
                return -ENOMEM;
        if (flags & PIPE_FLAG_FROM_LINE) {
                struct tm tm;
                char date[64];

                /* asctime()'s form, which Postfix writes after two blanks. */
                if (!localtime_r(&now, &tm) || strftime(date, sizeof date, "%a %b %e %H:%M:%S %Y", &tm) == 0)
                        r = -EINVAL;
                else
                        fprintf(f, "From %s  %s%s", isempty(s) ? PIPE_NULL_SENDER : s, date, eol);
        }
        if (flags & PIPE_FLAG_RETURN_PATH)
                fprintf(f, "Return-Path: <%s>%s", s, eol);
        /* An empty original recipient means none was recorded: no header. */
        if ((flags & PIPE_FLAG_ORIGINAL_TO) && o)
                fprintf(f, "X-Original-To: %s%s", o, eol);
        if ((flags & PIPE_FLAG_DELIVERED_TO) && d)
                fprintf(f, "Delivered-To: %s%s", d, eol);
        if (fclose(f) != 0)
                return -ENOMEM;
        if (r < 0)
                return r;
        *ret = TAKE_PTR(out);
        return 0;
}

void pipe_copy_init(PipeCopy *c, unsigned flags, const char *eol) {
        *c = (PipeCopy) {
                .flags = flags,
                .eol = eol,
                .eol_len = strlen(eol),
                .line_start = true,
        };
}

#define FROM_ "From "

int pipe_copy_feed(PipeCopy *c, const char *data, size_t len, Buffer *out) {
        int r;

        for (size_t i = 0; i < len;) {
                if (c->line_start) {
                        char b = data[i];

                        if ((c->flags & PIPE_FLAG_QUOTE_FROM) && b == FROM_[c->held]) {
                                i++;
                                if (++c->held < STRLEN(FROM_))
                                        continue;
                                r = buffer_append(out, ">" FROM_, STRLEN(">" FROM_));
                                if (r < 0)
                                        return r;
                                c->held = 0;
                                c->line_start = false;
                                continue;
                        }
                        if (c->held > 0) {
                                /* Not "From " after all: what was held back goes out as it was. */
                                r = buffer_append(out, FROM_, c->held);
                                if (r < 0)
                                        return r;
                                c->held = 0;
                        } else if ((c->flags & PIPE_FLAG_DOT) && b == '.') {
                                r = buffer_append(out, ".", 1);
                                if (r < 0)
                                        return r;
                        }
                        c->line_start = false;
                }

                /* The rest of the line as it is, then its end. */
                const char *nl = memchr(data + i, '\n', len - i);
                size_t n = nl ? (size_t) (nl - (data + i)) : len - i;
                r = buffer_append(out, data + i, n);
                if (r < 0)
                        return r;
                i += n;
                if (nl) {
                        r = buffer_append(out, c->eol, c->eol_len);
                        if (r < 0)
                                return r;
                        i++;
                        c->line_start = true;
                }
        }
        return 0;
}

int pipe_copy_finish(PipeCopy *c, Buffer *out) {
        int r;

        if (c->held > 0) {
                r = buffer_append(out, FROM_, c->held);
                if (r < 0)
                        return r;
                c->held = 0;
                c->line_start = false;
        }
        if (!c->line_start) {
                r = buffer_append(out, c->eol, c->eol_len);
                if (r < 0)
                        return r;
                c->line_start = true;
        }
        if (c->flags & PIPE_FLAG_BLANK)
                return buffer_append(out, c->eol, c->eol_len);
        return 0;
}

void pipe_header_scan_init(PipeHeaderScan *s, const char *address) {
        *s = (PipeHeaderScan) { .address = address, .line_start = true };
}

/* Looks at the logical header collected so far. */
static void header_check(PipeHeaderScan *s) {
        static const char name[] = "Delivered-To:";
        size_t a = STRLEN(name), b = s->len;

        if (s->truncated || s->len < a || strncasecmp(s->header, name, a) != 0) {
                s->len = 0;
                s->truncated = false;
                return;
        }
        while (a < b && (s->header[a] == ' ' || s->header[a] == '\t'))
                a++;
        while (b > a && (s->header[b - 1] == ' ' || s->header[b - 1] == '\t'))
                b--;
        if (b - a == strlen(s->address) && strncasecmp(s->header + a, s->address, b - a) == 0)
                s->found = true;
        s->len = 0;
}

int pipe_header_scan_feed(PipeHeaderScan *s, const char *data, size_t len) {
        for (size_t i = 0; i < len && !s->done && !s->found; i++) {
                char c = data[i];

                if (s->line_start) {
                        s->line_start = false;
                        if (c == '\n') {
                                /* The empty line: the headers end. */
                                header_check(s);
                                s->done = true;
                                break;
                        }
                        if (c != ' ' && c != '\t')
                                header_check(s);        /* a new header: the last one is complete */
                        else if (s->len < sizeof s->header)
                                s->header[s->len++] = ' ';
                }
                if (c == '\n') {
                        s->line_start = true;
                        continue;
                }
                if (s->len < sizeof s->header)
                        s->header[s->len++] = c;
                else
                        s->truncated = true;
        }
        if (s->found)
                s->done = true;
        return s->done;
}

void pipe_header_scan_finish(PipeHeaderScan *s) {
        if (!s->done)
                header_check(s);
        s->done = true;
}

void pipe_output_sanitize(const char *in, size_t len, char *out, size_t size) {
        size_t n = 0;

        if (size == 0)
                return;
        for (size_t i = 0; i < len && n + 1 < size;) {
                unsigned char c = (unsigned char) in[i];
                size_t k = c >= 0x80 ? utf8_sequence_len(in + i, len - i) : 1;

                if (c >= 0x80 && k > 1 && k < size - n) {
                        memcpy(out + n, in + i, k);
                        n += k;
                        i += k;
                        continue;
                }
                if (c == '\t' || c == '\n' || c == '\r')
                        out[n++] = ' ';
                else if (c < ' ' || c == 0x7F || c >= 0x80)
                        out[n++] = '_';
                else
                        out[n++] = (char) c;
                i++;
        }
        while (n > 0 && out[n - 1] == ' ')
                n--;
        out[n] = '\0';
}

/* "4.x.y text" or "5.x.y text" at the start of the output, as RFC 3463 writes a status: the length of the
 * code, or 0. */
static size_t output_dsn(const char *s) {
        size_t i = 0;

        if (s[0] != '4' && s[0] != '5')
                return 0;
        i = 1;
        for (int part = 0; part < 2; part++) {
                size_t digits = 0;

                if (s[i++] != '.')
                        return 0;
                while (s[i] >= '0' && s[i] <= '9' && digits < 4) {
                        i++;
                        digits++;
                }
                if (digits == 0 || digits > 3)
                        return 0;
        }
        return s[i] == '\0' || s[i] == ' ' ? i : 0;
}

void pipe_command_result(const PipeEnd *end, const char *command, const char *transport, const char *output,
                         size_t output_len, PipeResult *ret) {
        char out[PIPE_OUTPUT_MAX + 1];
        const char *sep;

        pipe_output_sanitize(output, MIN(output_len, (size_t) PIPE_OUTPUT_MAX), out, sizeof out);
        sep = out[0] ? ". Command output: " : "";

        if (end->timed_out) {
                pipe_result_set(ret, "5.3.0", "Command time limit exceeded: \"%s\"%s%s", command, sep, out);
                return;
        }
        if (end->code != CLD_EXITED) {
                pipe_result_set(ret, "4.3.0", "Command died with signal %d: \"%s\"%s%s", end->status, command, sep,
                                out);
                return;
        }
        if (end->status == 0) {
                pipe_result_set(ret, "2.0.0", "delivered via %s service", transport);
                return;
        }

        /* The command said why, with an enhanced status code. */
        size_t k = output_dsn(out);
        if (k > 0) {
                char dsn[PIPE_DSN_SIZE];
                const char *text = out + k;

                (void) snprintf(dsn, sizeof dsn, "%.*s", (int) k, out);
                while (*text == ' ')
                        text++;
                if (*text)
                        pipe_result_set(ret, dsn, "%s", text);
                else
                        pipe_result_set(ret, dsn, "Command died with status %d: \"%s\"", end->status, command);
                return;
        }

        const SysExit *x = sys_exit_find(end->status);
        if (x) {
                pipe_result_set(ret, x->dsn, "%s%s%s", x->text, sep, out);
                return;
        }
        pipe_result_set(ret, "5.3.0", "Command died with status %d: \"%s\"%s%s", end->status, command, sep, out);
}
