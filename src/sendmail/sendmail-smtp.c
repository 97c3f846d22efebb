/* sendmail-smtp.c: sendmail -bs: a minimal ESMTP server on stdin and stdout, run as the submitting user,
 * for programs (mutt's smtp-over-a-pipe, some PHP set-ups) that speak SMTP to a local command. Each
 * message goes into the maildrop like any other local submission, so pickup (not smtpd) takes it on: the
 * user's identity is the file's owner, exactly as for "sendmail -t". Postfix runs its smtpd for this;
 * here a small dialogue suffices, because none of smtpd's network policy applies to a local user. */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <strings.h>
#include <sysexits.h>

#include "address.h"
#include "daemon.h"
#include "log.h"
#include "sendmail.h"
#include "string-util.h"
#include "verp.h"

#define SMTP_DATA_CHUNK (64U * 1024U)

typedef enum SmtpState {
        SMTP_STATE_IDLE,                /* no transaction */
        SMTP_STATE_MAIL,                /* MAIL given */
        SMTP_STATE_RCPT,                /* at least one RCPT given */
        _SMTP_STATE_MAX,
        _SMTP_STATE_INVALID = -EINVAL,
} SmtpState;

typedef struct SmtpSession {
        const Config *config;
        const SendmailOptions *options;
        SmtpState state;
        char *sender;
        char *body_type;
        char *verp_delims;              /* MAIL ... XVERP: local submission may always ask */
        char **recipients;
        size_t n_recipients;
        unsigned errors;
} SmtpSession;

static volatile sig_atomic_t timed_out;

static void on_alarm(int sig) {
        timed_out = 1;
}

_printf_(1, 2) static void reply(const char *fmt, ...) {
        va_list ap;

        va_start(ap, fmt);
        (void) vfprintf(stdout, fmt, ap);
        va_end(ap);
        (void) fputs("\r\n", stdout);
        (void) fflush(stdout);
}

static void session_reset(SmtpSession *s) {
        s->sender = mfree(s->sender);
        s->body_type = mfree(s->body_type);
        s->verp_delims = mfree(s->verp_delims);
        s->recipients = strv_free(s->recipients);
        s->n_recipients = 0;
        s->state = SMTP_STATE_IDLE;
}

/* One command line without its line end. 1: a line; 0: end of input; -E2BIG: too long (consumed);
 * -ETIME: smtpd_timeout passed. */
static int read_line(char *buf, size_t size, const Config *c) {
        size_t n = 0;
        bool too_long = false;
        int ch;

        timed_out = 0;
        alarm((unsigned) MIN(c->smtpd_timeout, (int64_t) 86400));
        for (;;) {
                ch = getc_unlocked(stdin);
                if (ch == EOF) {
                        alarm(0);
                        if (timed_out)
                                return -ETIME;
                        return n > 0 || too_long ? (too_long ? -E2BIG : 1) : 0;
                }
                if (ch == '\n')
                        break;
                if (n + 1 < size)
                        buf[n++] = (char) ch;
                else
                        too_long = true;
        }
        alarm(0);
        if (n > 0 && buf[n - 1] == '\r')
                n--;
        buf[n] = '\0';
        return too_long ? -E2BIG : 1;
}

/* "<addr> PARAMS" or "addr PARAMS": the address (without brackets) and where the parameters begin. */
static int parse_path(const char *arg, char **ret_addr, const char **ret_params) {
        const char *start, *end;

        arg += strspn(arg, " ");
        if (*arg == '<') {
                start = arg + 1;
                end = strchr(start, '>');
                if (!end)
                        return -EINVAL;
                *ret_params = end + 1;
        } else {
                start = arg;
                end = start + strcspn(start, " ");
                *ret_params = end;
        }
        *ret_addr = strndup(start, (size_t) (end - start));
        return *ret_addr ? 0 : -ENOMEM;
}

static void cmd_mail(SmtpSession *s, const char *arg) {
        _cleanup_free_ char *addr = NULL, *params = NULL, *body_type = NULL, *verp = NULL;
        const char *p;

        if (s->state != SMTP_STATE_IDLE) {
                reply("503 5.5.1 Error: nested MAIL command");
                return;
        }
        if (strncasecmp(arg, "FROM:", 5) != 0 || parse_path(arg + 5, &addr, &p) < 0) {
                reply("501 5.5.4 Syntax: MAIL FROM:<address>");
                return;
        }
        if (!isempty(addr) && !address_valid(addr)) {
                reply("501 5.1.7 Bad sender address syntax");
                return;
        }
        params = strdup(p);
        if (!params) {
                reply("451 4.3.0 Error: out of memory");
                return;
        }
        for (char *save = NULL, *t = strtok_r(params, " ", &save); t; t = strtok_r(NULL, " ", &save)) {
                if (strncasecmp(t, "SIZE=", 5) == 0) {
                        char *end;
                        errno = 0;
                        unsigned long long size = strtoull(t + 5, &end, 10);
                        if (errno != 0 || *end != '\0' || t[5] == '\0') {
                                reply("501 5.5.4 Bad SIZE parameter");
                                return;
                        }
                        if (size > (unsigned long long) s->config->message_size_limit) {
                                reply("552 5.3.4 Message size exceeds fixed limit");
                                return;
                        }
                } else if (strncasecmp(t, "BODY=", 5) == 0) {
                        free(body_type);
                        body_type = strdup(t + 5);
                        if (!body_type || !maildrop_body_type_normalize(body_type)) {
                                reply("501 5.5.4 Bad BODY parameter");
                                return;
                        }
                } else if (strcasecmp(t, "XVERP") == 0 || strncasecmp(t, "XVERP=", 6) == 0) {
                        /* Postfix's VERP: the configured delimiters, or two named ones. */
                        const char *d = t[5] == '=' ? t + 6 : s->config->default_verp_delimiters;
                        if (!verp_delimiters_valid(d, s->config->verp_delimiter_filter)) {
                                reply("501 5.5.4 Error: XVERP needs two characters from %s",
                                      s->config->verp_delimiter_filter);
                                return;
                        }
                        free(verp);
                        verp = strdup(d);
                        if (!verp) {
                                reply("451 4.3.0 Error: out of memory");
                                return;
                        }
                } else {
                        _cleanup_free_ char *e = log_escape(t, strlen(t));
                        reply("555 5.5.4 Unsupported option: %s", strna(e));
                        return;
                }
        }
        if (verp && isempty(addr)) {
                reply("503 5.5.4 Error: XVERP requires non-null sender");
                return;
        }
        s->sender = TAKE_PTR(addr);
        s->body_type = TAKE_PTR(body_type);
        s->verp_delims = TAKE_PTR(verp);
        s->state = SMTP_STATE_MAIL;
        reply("250 2.1.0 Ok");
}

static void cmd_rcpt(SmtpSession *s, const char *arg) {
        _cleanup_free_ char *addr = NULL;
        const char *p;

        if (s->state == SMTP_STATE_IDLE) {
                reply("503 5.5.1 Error: need MAIL command");
                return;
        }
        if (strncasecmp(arg, "TO:", 3) != 0 || parse_path(arg + 3, &addr, &p) < 0) {
                reply("501 5.5.4 Syntax: RCPT TO:<address>");
                return;
        }
        if (p[strspn(p, " ")] != '\0') {
                reply("555 5.5.4 Unsupported option: %s", "RCPT parameters");
                return;
        }
        if (isempty(addr) || !address_valid(addr)) {
                reply("501 5.1.3 Bad recipient address syntax");
                return;
        }
        if (s->n_recipients >= (size_t) s->config->smtpd_recipient_limit) {
                reply("452 4.5.3 Error: too many recipients");
                return;
        }
        if (strv_push(&s->recipients, &s->n_recipients, TAKE_PTR(addr)) < 0) {
                reply("451 4.3.0 Error: out of memory");
                return;
        }
        s->state = SMTP_STATE_RCPT;
        reply("250 2.1.5 Ok");
}

/* Reads the message up to the "." line, unstuffing dots and turning CRLF into LF. 1: complete; 0: end of
 * input first; -ETIME: timeout. Content goes to the draft while it fits (*too_big then). */
static int read_data(SmtpSession *s, MaildropDraft *d, bool *ret_failed, bool *ret_too_big) {
        _cleanup_free_ char *out = malloc(SMTP_DATA_CHUNK + 2);
        bool line_start = true;
        size_t n = 0;
        int ch, r;

        if (!out)
                return -ENOMEM;
        *ret_failed = *ret_too_big = false;
        for (;;) {
                timed_out = 0;
                alarm((unsigned) MIN(s->config->smtpd_timeout, (int64_t) 86400));
                ch = getc_unlocked(stdin);
                alarm(0);
                if (ch == EOF)
                        return timed_out ? -ETIME : 0;
                if (line_start && ch == '.') {
                        ch = getc_unlocked(stdin);
                        if (ch == '\r') {
                                int next = getc_unlocked(stdin);
                                if (next == '\n')
                                        break;
                                if (next != EOF)
                                        (void) ungetc(next, stdin);
                        } else if (ch == '\n')
                                break;
                        if (ch == EOF)
                                return 0;
                }
                if (ch == '\r') {
                        int next = getc_unlocked(stdin);
                        if (next == '\n')
                                ch = '\n';
                        else if (next != EOF)
                                (void) ungetc(next, stdin);
                }
                out[n++] = (char) ch;
                line_start = ch == '\n';
                if (n >= SMTP_DATA_CHUNK) {
                        if (!*ret_failed && !*ret_too_big) {
                                r = maildrop_draft_write(d, out, n);
                                if (r == -EFBIG)
                                        *ret_too_big = true;
                                else if (r < 0)
                                        *ret_failed = true;
                        }
                        n = 0;
                }
        }
        if (n > 0 && !*ret_failed && !*ret_too_big) {
                r = maildrop_draft_write(d, out, n);
                if (r == -EFBIG)
                        *ret_too_big = true;
                else if (r < 0)
                        *ret_failed = true;
        }
        return 1;
}

/* Returns false when the session must end. */
static bool cmd_data(SmtpSession *s, const char *arg) {
        _cleanup_(maildrop_envelope_freep) MaildropEnvelope *e = NULL;
        _cleanup_(maildrop_draft_freep) MaildropDraft *d = NULL;
        char name[MAILDROP_NAME_SIZE];
        bool failed, too_big;
        int r;

        if (s->state != SMTP_STATE_RCPT) {
                reply("503 5.5.1 Error: need %s command", s->state == SMTP_STATE_IDLE ? "MAIL" : "RCPT");
                return true;
        }
        if (!isempty(arg)) {
                reply("501 5.5.4 Syntax: DATA");
                return true;
        }
        e = calloc(1, sizeof(MaildropEnvelope));
        if (!e || (s->options->full_name && !(e->full_name = strdup(s->options->full_name)))) {
                reply("451 4.3.0 Error: out of memory");
                return true;
        }
        e->time_usec = now_realtime_usec();
        e->sender = TAKE_PTR(s->sender);
        e->body_type = TAKE_PTR(s->body_type);
        e->verp_delims = TAKE_PTR(s->verp_delims);
        e->recipients = TAKE_PTR(s->recipients);
        e->n_recipients = s->n_recipients;
        session_reset(s);

        r = maildrop_draft_open(s->config, e, &d);
        if (r < 0) {
                log_error_errno(r, "Cannot write a message into %s/maildrop: %m", s->config->queue_directory);
                reply("451 4.3.0 Error: queue file write error");
                return true;
        }
        reply("354 End data with <CR><LF>.<CR><LF>");
        r = read_data(s, d, &failed, &too_big);
        if (r == -ETIME) {
                reply("421 4.4.2 %s Error: timeout exceeded", s->config->myhostname);
                return false;
        }
        if (r <= 0)
                return false;   /* the client went away: nothing was promised */
        if (too_big) {
                reply("552 5.3.4 Message size exceeds fixed limit");
                return true;
        }
        if (!failed && maildrop_draft_commit(d, name) >= 0)
                reply("250 2.0.0 Ok: queued as %s", name);
        else
                reply("451 4.3.0 Error: queue file write error");
        return true;
}

int sendmail_smtp(const Config *c, const SendmailOptions *o) {
        SmtpSession s = { .config = c, .options = o };
        size_t size = (size_t) c->line_length_limit + 3;
        _cleanup_free_ char *line = malloc(size);
        struct sigaction sa = { .sa_handler = on_alarm };
        int r;

        if (!line) {
                log_oom();
                return EX_OSERR;
        }
        /* No SA_RESTART: a read waiting for the client returns at the timeout. */
        (void) sigaction(SIGALRM, &sa, NULL);
        (void) signal(SIGPIPE, SIG_IGN);

        reply("220 %s ESMTP postbus (sendmail -bs)", c->myhostname);
        for (;;) {
                r = read_line(line, size - 1, c);
                if (r == 0)
                        break;
                if (r == -ETIME) {
                        reply("421 4.4.2 %s Error: timeout exceeded", c->myhostname);
                        break;
                }
                if (r == -E2BIG) {
                        reply("500 5.5.0 Error: line too long");
                        continue;
                }
                char *verb = line, *arg = line + strcspn(line, " ");
                if (*arg)
                        *arg++ = '\0';

                if (strcaseeq(verb, "EHLO")) {
                        session_reset(&s);
                        reply("250-%s", c->myhostname);
                        reply("250-PIPELINING");
                        reply("250-SIZE %" PRIi64, c->message_size_limit);
                        reply("250-8BITMIME");
                        reply("250-XVERP");
                        reply("250 ENHANCEDSTATUSCODES");
                } else if (strcaseeq(verb, "HELO")) {
                        session_reset(&s);
                        reply("250 %s", c->myhostname);
                } else if (strcaseeq(verb, "MAIL"))
                        cmd_mail(&s, arg);
                else if (strcaseeq(verb, "RCPT"))
                        cmd_rcpt(&s, arg);
                else if (strcaseeq(verb, "DATA")) {
                        if (!cmd_data(&s, arg))
                                break;
                } else if (strcaseeq(verb, "RSET")) {
                        session_reset(&s);
                        reply("250 2.0.0 Ok");
                } else if (strcaseeq(verb, "NOOP"))
                        reply("250 2.0.0 Ok");
                else if (strcaseeq(verb, "VRFY"))
                        reply("502 5.5.1 VRFY command is disabled");
                else if (strcaseeq(verb, "QUIT")) {
                        reply("221 2.0.0 Bye");
                        break;
                } else
                        reply("502 5.5.2 Error: command not recognized");
        }
        session_reset(&s);
        return EX_OK;
}
