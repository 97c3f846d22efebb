/* bounce-report.c: delivery status notifications as RFC 3464 has them (multipart/report with a text part
 * for people, a message/delivery-status part for programs, and the original or its headers), in the shape
 * Postfix's bounce(8) gives them. Pure: a report is a function of its BounceReport, for the unit tests. */
#include <inttypes.h>
#include <time.h>

#include "bounce.h"
#include "dsn.h"
#include "format-util.h"
#include "utf8.h"

/* Human text is wrapped at this column; header-like fields are folded at it. */
#define REPORT_WIDTH 76U
/* A word longer than this is cut, so that no line comes near RFC 5322's 998. */
#define REPORT_WORD_MAX 900U
/* At most this much of the original's header section is returned. */
#define REPORT_HEADERS_MAX (1024U * 1024U)

bool bounce_record_notify_allows(const BounceRecord *r, BounceReportKind kind) {
        unsigned mask;

        if (isempty(r->notify))
                return kind != BOUNCE_REPORT_SUCCESS;
        if (dsn_notify_parse(r->notify, strlen(r->notify), &mask) < 0 || (mask & DSN_NOTIFY_NEVER))
                return false;
        switch (kind) {
        case BOUNCE_REPORT_FAILURE:
                return mask & DSN_NOTIFY_FAILURE;
        case BOUNCE_REPORT_DELAY:
                return mask & DSN_NOTIFY_DELAY;
        case BOUNCE_REPORT_SUCCESS:
                return mask & DSN_NOTIFY_SUCCESS;
        default:
                return false;
        }
}

bool bounce_report_full_content(const BounceReport *r) {
        if (r->postmaster || r->kind == BOUNCE_REPORT_DELAY || r->original_size > r->size_limit)
                return false;
        if (r->kind == BOUNCE_REPORT_SUCCESS)
                return r->ret && streq(r->ret, "FULL");
        return !(r->ret && streq(r->ret, "HDRS"));
}

void bounce_format_date(uint64_t usec, char *buf, size_t size) {
        format_rfc5322_date((time_t) (usec / USEC_PER_SEC), buf, size);
}

/* ---- text output ---- */

/* A memory stream, and whether a piece of text could not be built for it (the stream itself reports its
 * own failures through ferror()). */
typedef struct Out {
        FILE *f;
        char *buf;
        size_t size;
        bool oom;
} Out;

static int out_open(Out *o) {
        *o = (Out) {};
        o->f = open_memstream(&o->buf, &o->size);
        return o->f ? 0 : -ENOMEM;
}

/* Closes the stream: 0 with o->buf and o->size, or -ENOMEM with nothing. */
static int out_close(Out *o) {
        bool failed = fflush(o->f) != 0 || ferror(o->f) || o->oom;

        (void) fclose(o->f);
        o->f = NULL;
        if (failed) {
                o->buf = mfree(o->buf);
                return -ENOMEM;
        }
        return 0;
}

static void out_done(Out *o) {
        if (o->f)
                (void) fclose(o->f);
        free(o->buf);
        *o = (Out) {};
}

static bool clean_char(unsigned char c) {
        return c >= 0x20 && c != 0x7F;
}

/* Writes text with every control character as a space, wrapped at REPORT_WIDTH from column col. At a
 * break, a folded field keeps the white space after the line break (unfolding gives the text back); human
 * text puts indent there instead. */
static void put_wrapped(Out *o, const char *text, size_t col, bool fold, const char *indent) {
        const char *p = strempty(text);
        size_t min_col = fold ? 1 : strlen(indent);

        while (*p) {
                size_t lead = strspn(p, " ");
                size_t word = strcspn(p + lead, " ");

                if (lead > 0 && word > 0 && col > min_col && col + lead + MIN(word, (size_t) REPORT_WORD_MAX) > REPORT_WIDTH) {
                        fputc('\n', o->f);
                        if (fold) {
                                fwrite(p, 1, lead, o->f);
                                col = lead;
                        } else {
                                fputs(indent, o->f);
                                col = strlen(indent);
                        }
                } else {
                        fwrite(p, 1, lead, o->f);
                        col += lead;
                }
                p += lead;
                for (size_t i = 0; i < word; i++, col++) {
                        if (i > 0 && i % REPORT_WORD_MAX == 0) {
                                fputc('\n', o->f);
                                fputs(fold ? " " : indent, o->f);
                                col = fold ? 1 : strlen(indent);
                        }
                        fputc(clean_char((unsigned char) p[i]) ? p[i] : ' ', o->f);
                }
                p += word;
        }
}

/* "name: value", folded. */
static void put_field(Out *o, const char *name, const char *value) {
        fprintf(o->f, "%s: ", name);
        put_wrapped(o, value, strlen(name) + 2, true, "");
        fputc('\n', o->f);
}

/* Text made by strprintf() (NULL: it could not be), as a field when a name is given, else as a paragraph of
 * human text, wrapped, and an empty line; then freed. */
static void put_text(Out *o, const char *name, char *text) {
        _cleanup_free_ char *v = text;

        if (!v)
                o->oom = true;
        else if (name)
                put_field(o, name, v);
        else {
                put_wrapped(o, v, 0, false, "");
                fputs("\n\n", o->f);
        }
}
#define put_fieldf(o, name, ...) put_text(o, name, strprintf(__VA_ARGS__))
#define put_para(o, ...) put_text(o, NULL, strprintf(__VA_ARGS__))

static bool is_hex(char c) {
        return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'F');
}

static int hex_value(char c) {
        return c <= '9' ? c - '0' : c - 'A' + 10;
}

/* xtext decoded ("+40" is '@'), or NULL when that would give a control character: then the text is shown
 * as it came. */
static char *xtext_decode(const char *s) {
        char *out = malloc(strlen(s) + 1), *o = out;

        if (!out)
                return NULL;
        for (const char *p = s; *p; p++) {
                if (*p == '+' && is_hex(p[1]) && is_hex(p[2])) {
                        char c = (char) (hex_value(p[1]) << 4 | hex_value(p[2]));
                        if (!clean_char((unsigned char) c) || c == ' ') {
                                free(out);
                                return NULL;
                        }
                        *o++ = c;
                        p += 2;
                } else
                        *o++ = *p;
        }
        *o = '\0';
        return out;
}

/* ---- the parts ---- */

static const char *report_subject(const BounceReport *r) {
        switch (r->kind) {
        case BOUNCE_REPORT_FAILURE:
                return r->postmaster ? "Postmaster Copy: Undelivered Mail" : "Undelivered Mail Returned to Sender";
        case BOUNCE_REPORT_DELAY:
                return r->postmaster ? "Postmaster Warning: Delayed Mail" : "Delayed Mail (still being retried)";
        default:
                return "Successful Mail Delivery Report";
        }
}

/* "3 hours", "1 day", "10 minutes". */
static void format_duration(uint64_t usec, char *buf, size_t size) {
        uint64_t s = usec / USEC_PER_SEC;
        const char *unit = "minute";
        uint64_t n = s / 60;

        if (s >= 2 * 86400) {
                n = s / 86400;
                unit = "day";
        } else if (s >= 2 * 3600) {
                n = s / 3600;
                unit = "hour";
        }
        (void) snprintf(buf, size, "%" PRIu64 " %s%s", n, unit, n == 1 ? "" : "s");
}

static void put_intro(Out *o, const BounceReport *r, bool full) {
        const char *attached = full ? "The message itself is attached." : "The headers of the message are attached.";
        char until[64], age[32];

        put_para(o, "This is the mail system at host %s.", r->myhostname);
        switch (r->kind) {
        case BOUNCE_REPORT_FAILURE:
                if (r->postmaster && isempty(r->sender))
                        put_para(o, "The message below could not be delivered, and it came from the null sender "
                                 "<>: it was itself a delivery notification, so no report can go back to where it "
                                 "came from. This report is for the postmaster. %s", attached);
                else if (r->postmaster)
                        put_para(o, "This is the postmaster's copy of a report that the message below could not be "
                                 "delivered; the report went to its sender <%s>. %s", r->sender, attached);
                else {
                        put_para(o, "Your message could not be delivered to one or more of its recipients. The "
                                 "reasons are given below. %s", attached);
                        put_para(o, "If you need help with this, write to the postmaster of this system and "
                                 "include this report.");
                }
                break;
        case BOUNCE_REPORT_DELAY:
                bounce_format_date(r->retry_until_usec, until, sizeof until);
                format_duration(r->now_usec - MIN(r->now_usec, r->arrival_usec), age, sizeof age);
                if (r->postmaster)
                        put_para(o, "This is the postmaster's copy of a delay warning: the message below, from "
                                 "<%s>, has waited %s for the recipients listed. It will be tried until %s. %s",
                                 r->sender, age, until, attached);
                else {
                        put_para(o, "This is a warning only: you do not need to send your message again.");
                        put_para(o, "Your message has not been delivered yet to the recipients listed below, "
                                 "after %s of trying. The mail system will go on trying until %s, and tell you "
                                 "if it gives up. %s", age, until, attached);
                }
                break;
        default:
                put_para(o, "Your message was delivered to the recipients listed below, as you asked to be told "
                         "(a delivery status notification request). Where it went on to a system that does not "
                         "give such notifications, this is the last you will hear of it. %s", attached);
                break;
        }
        if (!r->postmaster && r->kind == BOUNCE_REPORT_FAILURE)
                fputs("                   The mail system\n\n", o->f);
}

static void put_human(Out *o, const BounceReport *r, bool full) {
        put_intro(o, r, full);
        for (size_t i = 0; i < r->n_records; i++) {
                const BounceRecord *e = r->records + i;
                _cleanup_free_ char *line = NULL;

                if (asprintf(&line, "<%s>%s%s%s: %s", e->recipient, isempty(e->original_recipient) ? "" : " (expanded from <",
                             strempty(e->original_recipient), isempty(e->original_recipient) ? "" : ">)",
                             isempty(e->text) ? e->status : e->text) < 0) {
                        o->oom = true;
                        return;
                }
                put_wrapped(o, line, 0, false, "    ");
                fputs("\n\n", o->f);
        }
}

/* "550 ...": a reply code, class 2, 4 or 5. */
static bool is_smtp_reply(const char *s) {
        return (s[0] >= '2' && s[0] <= '5') && s[1] >= '0' && s[1] <= '9' && s[2] >= '0' && s[2] <= '9' &&
               (s[3] == ' ' || s[3] == '-' || s[3] == '\0');
}

/* A remote server's reply is an smtp diagnostic ("host mx[...] said: 550 5.1.1 ... (in reply to RCPT TO
 * command)" gives "550 5.1.1 ..."); anything else is ours. */
static void put_diagnostic(Out *o, const BounceRecord *e) {
        const char *text = strempty(e->text), *said = strstr(text, " said: "), *reply = NULL;
        _cleanup_free_ char *copy = NULL;

        if (said && is_smtp_reply(said + STRLEN(" said: ")))
                reply = said + STRLEN(" said: ");
        else if (is_smtp_reply(text))
                reply = text;
        if (!reply) {
                put_fieldf(o, "Diagnostic-Code", "X-Postfix; %s", isempty(text) ? e->status : text);
                return;
        }
        copy = strdup(reply);
        if (!copy) {
                o->oom = true;
                return;
        }
        char *tail = strstr(copy, " (in reply to ");
        if (tail && tail[strlen(tail) - 1] == ')')
                *tail = '\0';
        put_fieldf(o, "Diagnostic-Code", "smtp; %s", copy);
}

static void put_status(Out *o, const BounceReport *r) {
        char date[64];

        if (!isempty(r->envid)) {
                _cleanup_free_ char *envid = xtext_decode(r->envid);
                put_field(o, "Original-Envelope-Id", envid ?: r->envid);
        }
        put_fieldf(o, "Reporting-MTA", "dns; %s", r->myhostname);
        if (r->queue_id)
                put_field(o, "X-Postbus-Queue-ID", r->queue_id);
        /* No white space at the end of a line for the null sender. */
        put_fieldf(o, "X-Postbus-Sender", "rfc822;%s%s", isempty(r->sender) ? "" : " ", r->sender);
        bounce_format_date(r->arrival_usec, date, sizeof date);
        put_field(o, "Arrival-Date", date);

        for (size_t i = 0; i < r->n_records; i++) {
                const BounceRecord *e = r->records + i;

                fputc('\n', o->f);
                put_fieldf(o, "Final-Recipient", "%s; %s", ascii_only(e->recipient, strlen(e->recipient)) ? "rfc822" : "utf-8",
                           e->recipient);
                if (!isempty(e->orcpt)) {
                        /* type;xtext as given; an rfc822 address is shown decoded (RFC 3464 2.3.1). */
                        const char *semi = strchr(e->orcpt, ';');
                        _cleanup_free_ char *decoded = NULL;
                        if (semi && (size_t) (semi - e->orcpt) == 6 && strncasecmp(e->orcpt, "rfc822", 6) == 0)
                                decoded = xtext_decode(semi + 1);
                        if (decoded)
                                put_fieldf(o, "Original-Recipient", "rfc822;%s", decoded);
                        else
                                put_field(o, "Original-Recipient", e->orcpt);
                } else if (!isempty(e->original_recipient))
                        put_fieldf(o, "Original-Recipient", "rfc822;%s", e->original_recipient);
                put_field(o, "Action", e->action);
                put_field(o, "Status", e->status);
                /* A host, as "name[address]:port"; "local", "none" and transport names are not. */
                const char *bracket = e->relay ? strchr(e->relay, '[') : NULL;
                if (bracket) {
                        if (bracket > e->relay)
                                put_fieldf(o, "Remote-MTA", "dns; %.*s", (int) (bracket - e->relay), e->relay);
                        else
                                put_fieldf(o, "Remote-MTA", "dns; %.*s", (int) strcspn(e->relay, "]") + 1, e->relay);
                }
                put_diagnostic(o, e);
                if (e->time_usec > 0) {
                        bounce_format_date(e->time_usec, date, sizeof date);
                        put_field(o, "Last-Attempt-Date", date);
                }
                if (r->kind == BOUNCE_REPORT_DELAY) {
                        bounce_format_date(r->retry_until_usec, date, sizeof date);
                        put_field(o, "Will-Retry-Until", date);
                }
        }
}

/* The length of the original's header section (its last header line included, not the empty line). */
static size_t header_section_length(const BounceReport *r) {
        const char *c = r->content;
        size_t n = MIN(r->content_size, (size_t) REPORT_HEADERS_MAX);

        if (n == 0 || c[0] == '\n')
                return 0;
        for (size_t i = 1; i < n; i++)
                if (c[i] == '\n' && c[i - 1] == '\n')
                        return i;
        if (n == r->original_size)
                return n;
        /* only a part was read: up to its last whole line */
        while (n > 0 && c[n - 1] != '\n')
                n--;
        return n;
}

static bool has_8bit(const char *s, size_t n) {
        return !ascii_only(s, n);
}

/* "<queue id>.<time>/<host>", as Postfix makes it, made longer until no part holds it. */
static int choose_boundary(const BounceReport *r, const Out *human, const Out *status, const char *original,
                           size_t original_size, char **ret) {
        for (unsigned n = 0;; n++) {
                _cleanup_free_ char *b = NULL, *delimiter = NULL;
                int k;

                if (n == 0)
                        k = asprintf(&b, "%s.%" PRIu64 "/%s", r->queue_id ?: "NOQUEUE", (uint64_t) (r->now_usec / USEC_PER_SEC),
                                     r->myhostname);
                else
                        k = asprintf(&b, "%s.%" PRIu64 ".%u/%s", r->queue_id ?: "NOQUEUE",
                                     (uint64_t) (r->now_usec / USEC_PER_SEC), n, r->myhostname);
                if (k < 0 || asprintf(&delimiter, "--%s", b) < 0)
                        return -ENOMEM;
                if (!memmem(human->buf, human->size, delimiter, strlen(delimiter)) &&
                    !memmem(status->buf, status->size, delimiter, strlen(delimiter)) &&
                    !memmem(original, original_size, delimiter, strlen(delimiter))) {
                        *ret = TAKE_PTR(b);
                        return 0;
                }
        }
}

static const char *part_encoding(const char *s, size_t n) {
        return has_8bit(s, n) ? "Content-Transfer-Encoding: 8bit\n" : "";
}

int bounce_report_compose(const BounceReport *r, char **ret, size_t *ret_size) {
        _cleanup_(out_done) Out human = {}, status = {}, out = {};
        _cleanup_free_ char *boundary = NULL;
        const char *original = r->content ?: "";
        bool full = bounce_report_full_content(r) && r->content_size == r->original_size;
        size_t original_size = full ? r->content_size : header_section_length(r);
        char date[64];
        int k;

        if ((k = out_open(&human)) < 0)
                return k;
        put_human(&human, r, full);
        if ((k = out_close(&human)) < 0)
                return k;
        if ((k = out_open(&status)) < 0)
                return k;
        put_status(&status, r);
        if ((k = out_close(&status)) < 0)
                return k;
        k = choose_boundary(r, &human, &status, original, original_size, &boundary);
        if (k < 0)
                return k;

        bool eight = has_8bit(human.buf, human.size) || has_8bit(status.buf, status.size) ||
                     has_8bit(original, original_size);
        if ((k = out_open(&out)) < 0)
                return k;
        FILE *f = out.f;
        fprintf(f, "From: Mail Delivery System <MAILER-DAEMON@%s>\n", r->myhostname);     /* Postfix's form */
        put_field(&out, "To", r->to);
        put_field(&out, "Subject", report_subject(r));
        bounce_format_date(r->now_usec, date, sizeof date);
        put_field(&out, "Date", date);
        put_field(&out, "Message-ID", r->message_id);
        /* RFC 3834: a report to the sender answers its message; one to the postmaster does not. */
        put_field(&out, "Auto-Submitted", r->postmaster ? "auto-generated" : "auto-replied");
        fputs("MIME-Version: 1.0\n", f);
        fprintf(f, "Content-Type: multipart/report; report-type=delivery-status;\n\tboundary=\"%s\"\n", boundary);
        if (eight)
                fputs("Content-Transfer-Encoding: 8bit\n", f);
        fputs("\nThis is a MIME-encapsulated message.\n\n", f);

        fprintf(f, "--%s\nContent-Description: Notification\nContent-Type: text/plain; charset=%s\n%s\n", boundary,
                has_8bit(human.buf, human.size) ? "utf-8" : "us-ascii", part_encoding(human.buf, human.size));
        fwrite(human.buf, 1, human.size, f);

        fprintf(f, "--%s\nContent-Description: Delivery report\nContent-Type: message/delivery-status\n%s\n",
                boundary, part_encoding(status.buf, status.size));
        fwrite(status.buf, 1, status.size, f);
        fputc('\n', f);

        const char *what = r->kind == BOUNCE_REPORT_FAILURE ? "Undelivered Message"
                         : r->kind == BOUNCE_REPORT_DELAY ? "Delayed Message" : "Delivered Message";
        fprintf(f, "--%s\nContent-Description: %s%s\nContent-Type: %s\n%s\n", boundary, what, full ? "" : " Headers",
                full ? "message/rfc822" : "text/rfc822-headers", part_encoding(original, original_size));
        fwrite(original, 1, original_size, f);
        if (original_size > 0 && original[original_size - 1] != '\n')
                fputc('\n', f);
        fprintf(f, "\n--%s--\n", boundary);
        if ((k = out_close(&out)) < 0)
                return k;
        *ret = TAKE_PTR(out.buf);
        *ret_size = out.size;
        return 0;
}

int bounce_notify_classes_parse(const char *value, unsigned *ret_mask, char **ret_bad) {
        static const ConfigFlagName classes[] = {
                { "bounce", BOUNCE_CLASS_BOUNCE },     { "2bounce", BOUNCE_CLASS_2BOUNCE },
                { "data", BOUNCE_CLASS_DATA },         { "delay", BOUNCE_CLASS_DELAY },
                { "policy", BOUNCE_CLASS_POLICY },     { "protocol", BOUNCE_CLASS_PROTOCOL },
                { "resource", BOUNCE_CLASS_RESOURCE }, { "software", BOUNCE_CLASS_SOFTWARE },
        };

        return config_parse_flags(value, classes, ELEMENTSOF(classes), true, ret_mask, ret_bad);
}
