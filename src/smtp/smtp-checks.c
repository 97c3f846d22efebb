/* smtp-checks.c: smtp_header_checks, smtp_mime_header_checks, smtp_nested_header_checks and smtp_body_checks in the
 * smtp process: the content of mail leaving by SMTP, line by line as the queue file gives it, through the rules
 * of header_checks(5) "FILTERS WHILE DELIVERING MAIL", with cleanup's MIME walk (mime.c). Only what changes the
 * copy that goes out is done here: IGNORE, REPLACE, PREPEND, WARN, DUNNO and OK; the actions that concern the
 * message as a whole (REJECT, DISCARD, HOLD, FILTER) are logged and ignored, as Postfix's smtp(8) does. */
#include "header-checks.h"
#include "log.h"
#include "mime.h"
#include "smtp.h"
#include "string-util.h"

/* The tables of the last spec of each kind, kept while the transports use the same one (as the generic maps). */
static struct {
        char *spec;
        TableList *tables;
} cache[_SMTP_CHECKS_MAX];

void smtp_checks_cleanup(void) {
        for (size_t i = 0; i < ELEMENTSOF(cache); i++) {
                cache[i].spec = mfree(cache[i].spec);
                cache[i].tables = table_list_free(cache[i].tables);
        }
}

static int checks_open(SmtpChecksKind kind, const char *spec, TableList **ret) {
        int r;

        if (isempty(spec)) {
                *ret = NULL;
                return 0;
        }
        if (!cache[kind].spec || !streq(cache[kind].spec, spec)) {
                cache[kind].spec = mfree(cache[kind].spec);
                cache[kind].tables = table_list_free(cache[kind].tables);
                r = header_checks_open(spec, &cache[kind].tables);
                if (r < 0)
                        return r;
                cache[kind].spec = strdup(spec);
                if (!cache[kind].spec) {
                        cache[kind].tables = table_list_free(cache[kind].tables);
                        return -ENOMEM;
                }
        }
        *ret = cache[kind].tables;
        return 0;
}

struct SmtpChecks {
        TableList *tables[_SMTP_CHECKS_MAX];    /* borrowed from the cache */
        size_t header_limit, body_limit;
        const char *queue_id;
        SmtpChecksOutput output;
        void *userdata;

        MimeWalk walk;
        bool in_primary;                /* in the message's own header section */
        Buffer line;                    /* the line in progress */
        bool passing;                   /* the rest of a line longer than SMTP_CHECKS_LINE_MAX goes out as it is */
        Buffer header;                  /* the logical header in progress: a line and its continuations */
        bool header_passing;            /* the rest of a header longer than SMTP_CHECKS_LINE_MAX goes out as it is */
        MimeHeaderClass header_class;
        uint64_t body_seen;             /* bytes of body lines so far */
};

SmtpChecks *smtp_checks_free(SmtpChecks *k) {
        if (!k)
                return NULL;
        mime_walk_done(&k->walk);
        buffer_done(&k->line);
        buffer_done(&k->header);
        return mfree(k);
}

int smtp_checks_new(const SmtpChecksSpec *spec, SmtpChecksOutput output, void *userdata, SmtpChecks **ret) {
        _cleanup_(smtp_checks_freep) SmtpChecks *k = NULL;
        bool any = false;
        int r;

        k = calloc(1, sizeof(SmtpChecks));
        if (!k)
                return -ENOMEM;
        for (SmtpChecksKind i = 0; i < _SMTP_CHECKS_MAX; i++) {
                r = checks_open(i, spec->tables[i], &k->tables[i]);
                if (r < 0)
                        return r;
                any = any || k->tables[i];
        }
        if (!any) {
                *ret = NULL;
                return 0;
        }
        r = mime_walk_init(&k->walk, spec->nesting_limit);
        if (r < 0)
                return r;
        k->header_limit = spec->header_limit;
        k->body_limit = spec->body_limit;
        k->queue_id = spec->queue_id;
        k->output = output;
        k->userdata = userdata;
        k->in_primary = true;
        *ret = TAKE_PTR(k);
        return 1;
}

/* Does what the rules say to the header or body line data (len bytes, its line end included; logical: what
 * the rules saw): it goes out as it is, or changed, or not at all. */
static int check(SmtpChecks *k, TableList *tables, const char *what, const char *logical, const char *data,
                 size_t len) {
        _cleanup_free_ char *value = NULL;
        HeaderCheckAction action;
        const char *text;
        int r;

        r = tables ? table_list_lookup(tables, logical, &value) : 0;
        if (r < 0) {
                log_warning_errno(r, "%s: smtp_%s_checks: lookup failed: %m", k->queue_id, what);
                return -EIO;
        }
        if (r == 0)
                return k->output(data, len, k->userdata);
        if (header_check_action_parse(value, &action, &text) < 0) {
                _cleanup_free_ char *v = log_escape(value, MIN(strlen(value), (size_t) 200));
                log_warning("%s: smtp_%s_checks: unknown action, or one without its text, in \"%s\", ignoring",
                            k->queue_id, what, strempty(v));
                return k->output(data, len, k->userdata);
        }
        if (action == HEADER_CHECK_DUNNO)
                return k->output(data, len, k->userdata);

        const char *name = header_check_action_to_string(action);
        _cleanup_free_ char *escaped = log_escape(logical, MIN(strlen(logical), (size_t) 200));
        switch (action) {
        case HEADER_CHECK_IGNORE:
        case HEADER_CHECK_WARN:
        case HEADER_CHECK_PREPEND:
        case HEADER_CHECK_REPLACE:
                log_mail(LOG_INFO, k->queue_id, LOG_FIELDS({ "SMTP_ACTION", name }), "%s: %s %s%s%s", name, what,
                         strempty(escaped), text ? ": " : "", strempty(text));
                break;
        default:
                log_mail(LOG_WARNING, k->queue_id, LOG_FIELDS({ "SMTP_ACTION", name }),
                         "smtp_%s_checks: unsupported action %s for %s %s, ignoring", what, name, what,
                         strempty(escaped));
                return k->output(data, len, k->userdata);
        }

        if (action == HEADER_CHECK_IGNORE)
                return 0;
        if (action == HEADER_CHECK_WARN)
                return k->output(data, len, k->userdata);
        r = k->output(text, strlen(text), k->userdata);
        if (r >= 0)
                r = k->output("\n", 1, k->userdata);
        if (r >= 0 && action == HEADER_CHECK_PREPEND)
                r = k->output(data, len, k->userdata);
        return r;
}

/* The logical header in progress: checked, as cleanup checks it, and sent on. */
static int header_flush(SmtpChecks *k) {
        TableList *tables = k->tables[SMTP_CHECKS_HEADER];
        const char *h = k->header.data;
        size_t len = k->header.len;
        int r;

        if (len == 0)
                return 0;
        r = mime_walk_content_type(&k->walk, k->header_limit, h, len);
        if (r < 0)
                return r;
        if (k->header_class == MIME_HEADER_PART || mime_header_is_mime(h, len))
                tables = k->tables[SMTP_CHECKS_MIME_HEADER];
        else if (k->header_class == MIME_HEADER_NESTED)
                tables = k->tables[SMTP_CHECKS_NESTED_HEADER];

        _cleanup_free_ char *logical = mime_header_logical(h, len, k->header_limit);
        if (!logical)
                return -ENOMEM;
        r = check(k, tables, "header", logical, h, len);
        k->header.len = 0;
        return r;
}

/* One line, its line end included (none for the last line of a message that lacks it). */
static int line_process(SmtpChecks *k, const char *line, size_t len) {
        size_t text_len = len > 0 && line[len - 1] == '\n' ? len - 1 : len;
        int r;

        if (k->in_primary || k->walk.in_header) {
                if ((k->header.len > 0 || k->header_passing) && len > 0 && (line[0] == ' ' || line[0] == '\t')) {
                        if (k->header_passing)
                                return k->output(line, len, k->userdata);
                        r = buffer_append(&k->header, line, len);
                        if (r >= 0 && k->header.len > SMTP_CHECKS_LINE_MAX) {
                                /* More than anyone writes: checked as far as it came, the rest goes out as it is. */
                                r = header_flush(k);
                                k->header_passing = true;
                        }
                        return r;
                }
                k->header_passing = false;
                r = header_flush(k);
                if (r < 0)
                        return r;
                if (mime_is_header_start(line, text_len)) {
                        k->header_class = k->in_primary ? MIME_HEADER_PRIMARY : k->walk.header;
                        return buffer_append(&k->header, line, len);
                }
                /* The section ends: what its Content-Type said follows. The empty line is no body line. */
                k->in_primary = false;
                mime_walk_header_end(&k->walk);
                if (text_len == 0)
                        return k->output(line, len, k->userdata);
        }
        (void) mime_walk_boundary(&k->walk, line, text_len);
        if (!k->tables[SMTP_CHECKS_BODY] || k->body_seen >= k->body_limit || text_len == 0) {
                k->body_seen += len;
                return k->output(line, len, k->userdata);
        }
        k->body_seen += len;
        _cleanup_free_ char *logical = strndup(line, text_len);
        if (!logical)
                return -ENOMEM;
        return check(k, k->tables[SMTP_CHECKS_BODY], "body", logical, line, len);
}

int smtp_checks_feed(SmtpChecks *k, const char *data, size_t len) {
        int r;

        while (len > 0) {
                const char *nl = memchr(data, '\n', len);
                size_t n = nl ? (size_t) (nl - data) + 1 : len;

                if (k->passing) {
                        r = k->output(data, n, k->userdata);
                        k->passing = !nl;
                } else if (k->line.len == 0 && nl)
                        r = line_process(k, data, n);   /* a whole line in the piece: no copy */
                else {
                        r = buffer_append(&k->line, data, n);
                        if (r >= 0 && nl) {
                                r = line_process(k, k->line.data, k->line.len);
                                k->line.len = 0;
                        } else if (r >= 0 && k->line.len > SMTP_CHECKS_LINE_MAX) {
                                /* More than anyone writes on one line: it goes out as it is, unchecked. */
                                r = header_flush(k);
                                if (r >= 0)
                                        r = k->output(k->line.data, k->line.len, k->userdata);
                                k->line.len = 0;
                                k->passing = true;
                        }
                }
                if (r < 0)
                        return r;
                data += n;
                len -= n;
        }
        return 0;
}

int smtp_checks_finish(SmtpChecks *k) {
        int r = 0;

        if (k->line.len > 0) {
                r = line_process(k, k->line.data, k->line.len);
                k->line.len = 0;
        }
        if (r >= 0)
                r = header_flush(k);
        return r;
}
