/* test-bounce-report.c: the bounce role's pure parts: RFC 3464 reports (a golden failure report, the
 * multipart/report structure, RET=HDRS, bounce_size_limit, NOTIFY, folding, boundaries), the delivery
 * status log format (round trip, torn tails, the last record per recipient), and notify_classes. */
#include <fcntl.h>
#include <sys/mman.h>

#include "tests.h"
#include "src/bounce/bounce.h"

#define T0 1700000000000000ULL  /* Tue, 14 Nov 2023 22:13:20 +0000 */

static const char original[] =
        "Received: from client.test (unknown [192.0.2.7])\n"
        "\tby mail.example.org (postbus) with ESMTP id 6553F1000000A0B1C;\n"
        "\tTue, 14 Nov 2023 22:13:20 +0000 (UTC)\n"
        "From: Alice <alice@example.org>\n"
        "To: bob@remote.test, carol@example.org\n"
        "Subject: lunch\n"
        "Message-ID: <lunch@example.org>\n"
        "\n"
        "Shall we?\n";

static BounceRecord rec(const char *rcpt, const char *orig, const char *orcpt, const char *notify, const char *action,
                        const char *status, const char *relay, const char *text) {
        return (BounceRecord) {
                .recipient = (char *) rcpt, .original_recipient = (char *) orig, .orcpt = (char *) orcpt,
                .notify = (char *) notify, .action = (char *) action, .status = (char *) status,
                .relay = (char *) relay, .text = (char *) text, .time_usec = T0 + 60 * 1000000ULL,
        };
}

static BounceReport failure(const BounceRecord *records, size_t n) {
        return (BounceReport) {
                .kind = BOUNCE_REPORT_FAILURE,
                .myhostname = "mail.example.org",
                .queue_id = "6553F1000000A0B1C",
                .sender = "alice@example.org",
                .to = "alice@example.org",
                .message_id = "<20231114221500.6553F1000000A0B1D.bounce@mail.example.org>",
                .envid = "lunch+2B1",
                .arrival_usec = T0,
                .now_usec = T0 + 120 * 1000000ULL,
                .records = records,
                .n_records = n,
                .content = original,
                .content_size = strlen(original),
                .original_size = strlen(original),
                .size_limit = 50000,
        };
}

static char *compose(const BounceReport *r) {
        char *out = NULL;
        size_t size = 0;

        ASSERT_OK(bounce_report_compose(r, &out, &size));
        ASSERT_EQ(strlen(out), size);
        return out;
}

/* ---- a small multipart reader, enough to check the structure ---- */

typedef struct Part {
        char *headers;
        char *body;
} Part;

/* The value of a header (the first one), unfolded, or NULL. */
static char *header_value(const char *headers, const char *name) {
        size_t n = strlen(name);

        for (const char *p = headers; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL) {
                if (strncasecmp(p, name, n) != 0 || p[n] != ':')
                        continue;
                const char *v = p + n + 1, *end = v;
                while (*end && !(end[0] == '\n' && end[1] != ' ' && end[1] != '\t'))
                        end++;
                char *out = strndup(v + strspn(v, " "), (size_t) (end - v) - strspn(v, " ")), *o = out;
                for (const char *s = out; *s; s++)
                        if (*s != '\n')
                                *o++ = *s;
                *o = '\0';
                return out;
        }
        return NULL;
}

/* Splits a multipart message into its parts; returns their number. */
static size_t split_parts(const char *msg, Part parts[], size_t max, char **ret_top) {
        const char *body = strstr(msg, "\n\n");
        char *top, *ct, *b, delim[256];
        size_t n = 0;

        ASSERT_TRUE(body);
        top = strndup(msg, (size_t) (body - msg) + 1);
        ct = header_value(top, "Content-Type");
        ASSERT_TRUE(ct);
        b = strstr(ct, "boundary=\"");
        ASSERT_TRUE(b);
        b += strlen("boundary=\"");
        *strchr(b, '"') = '\0';
        (void) snprintf(delim, sizeof delim, "\n--%s", b);
        const char *p = strstr(body, delim);
        ASSERT_TRUE(p);
        for (;;) {
                p += strlen(delim);
                if (p[0] == '-' && p[1] == '-')
                        break;
                ASSERT_TRUE(p[0] == '\n');
                p++;
                const char *next = strstr(p, delim), *hend = strstr(p, "\n\n");
                ASSERT_TRUE(next && hend && hend <= next && n < max);
                parts[n].headers = strndup(p, (size_t) (hend - p) + 1);
                parts[n].body = strndup(hend + 2, (size_t) (next - hend - 2));
                n++;
                p = next;
        }
        ASSERT_STREQ(p, "--\n");
        free(ct);
        *ret_top = top;
        return n;
}

static void parts_free(Part parts[], size_t n) {
        for (size_t i = 0; i < n; i++) {
                free(parts[i].headers);
                free(parts[i].body);
        }
}

static void assert_header(const char *headers, const char *name, const char *expected) {
        char *v = header_value(headers, name);
        ASSERT_STREQ(v, expected);
        free(v);
}

static char *read_golden(const char *name) {
        const char *dir = getenv("POSTBUS_TEST_DATA");
        char path[4096];
        FILE *f;
        char *buf;
        long n;

        ASSERT_TRUE(dir);
        (void) snprintf(path, sizeof path, "%s/bounce/%s", dir, name);
        f = fopen(path, "re");
        ASSERT_TRUE(f);
        ASSERT_TRUE(fseek(f, 0, SEEK_END) == 0);
        n = ftell(f);
        rewind(f);
        buf = calloc(1, (size_t) n + 1);
        ASSERT_TRUE(buf && fread(buf, 1, (size_t) n, f) == (size_t) n);
        fclose(f);
        return buf;
}

/* ---- reports ---- */

TEST(failure_golden) {
        BounceRecord records[] = {
                rec("bob@remote.test", "", "rfc822;bob+40remote.test", "", "failed", "5.1.1",
                    "mx.remote.test[192.0.2.25]:25",
                    "host mx.remote.test[192.0.2.25] said: 550 5.1.1 <bob@remote.test>: Recipient address rejected: "
                    "User unknown in virtual mailbox table (in reply to RCPT TO command)"),
                rec("carol@example.org", "team@example.org", "", "FAILURE", "failed", "5.2.2", "local",
                    "cannot update mailbox /var/mail/carol for user carol. mailbox is over its size limit"),
        };
        BounceReport r = failure(records, ELEMENTSOF(records));
        char *out = compose(&r), *golden = read_golden("failure.eml");

        if (strcmp(out, golden) != 0)
                fprintf(stderr, "---- composed ----\n%s---- end ----\n", out);
        ASSERT_STREQ(out, golden);
        free(out);
        free(golden);
}

TEST(failure_structure) {
        BounceRecord records[] = {
                rec("bob@remote.test", "", "", "", "failed", "5.1.1", "mx.remote.test[192.0.2.25]:25",
                    "host mx.remote.test[192.0.2.25] said: 550 5.1.1 unknown (in reply to RCPT TO command)"),
        };
        BounceReport r = failure(records, 1);
        Part parts[4];
        char *top, *out = compose(&r);
        size_t n = split_parts(out, parts, 4, &top);

        ASSERT_EQ(n, 3);
        assert_header(top, "From", "Mail Delivery System <MAILER-DAEMON@mail.example.org>");
        assert_header(top, "To", "alice@example.org");
        assert_header(top, "Subject", "Undelivered Mail Returned to Sender");
        assert_header(top, "Auto-Submitted", "auto-replied");
        assert_header(top, "MIME-Version", "1.0");
        assert_header(top, "Message-ID", "<20231114221500.6553F1000000A0B1D.bounce@mail.example.org>");
        assert_header(top, "Date", "Tue, 14 Nov 2023 22:15:20 +0000 (UTC)");
        assert_header(parts[0].headers, "Content-Type", "text/plain; charset=us-ascii");
        ASSERT_TRUE(strstr(parts[0].body, "This is the mail system at host mail.example.org."));
        ASSERT_TRUE(strstr(parts[0].body, "<bob@remote.test>: host mx.remote.test[192.0.2.25] said: 550"));
        assert_header(parts[1].headers, "Content-Type", "message/delivery-status");
        /* per-message fields, then the recipient's, each block ended by an empty line */
        assert_header(parts[1].body, "Reporting-MTA", "dns; mail.example.org");
        assert_header(parts[1].body, "X-Postbus-Queue-ID", "6553F1000000A0B1C");
        assert_header(parts[1].body, "X-Postbus-Sender", "rfc822; alice@example.org");
        assert_header(parts[1].body, "Original-Envelope-Id", "lunch+1");
        assert_header(parts[1].body, "Arrival-Date", "Tue, 14 Nov 2023 22:13:20 +0000 (UTC)");
        char *rcpt = strstr(parts[1].body, "\n\nFinal-Recipient:");
        ASSERT_TRUE(rcpt);
        assert_header(rcpt + 2, "Final-Recipient", "rfc822; bob@remote.test");
        assert_header(rcpt + 2, "Action", "failed");
        assert_header(rcpt + 2, "Status", "5.1.1");
        assert_header(rcpt + 2, "Remote-MTA", "dns; mx.remote.test");
        assert_header(rcpt + 2, "Diagnostic-Code", "smtp; 550 5.1.1 unknown");
        assert_header(rcpt + 2, "Last-Attempt-Date", "Tue, 14 Nov 2023 22:14:20 +0000 (UTC)");
        ASSERT_TRUE(!strstr(rcpt, "Will-Retry-Until"));
        ASSERT_TRUE(!strstr(rcpt, "Original-Recipient"));
        assert_header(parts[2].headers, "Content-Type", "message/rfc822");
        ASSERT_STREQ(parts[2].body, original);
        parts_free(parts, n);
        free(top);
        free(out);
}

static const char *third_part_type(const BounceReport *r, char **ret_body) {
        static char type[64];
        Part parts[4];
        char *top, *out = compose(r), *t;
        size_t n = split_parts(out, parts, 4, &top);

        ASSERT_EQ(n, 3);
        t = header_value(parts[2].headers, "Content-Type");
        (void) snprintf(type, sizeof type, "%s", t);
        free(t);
        *ret_body = strdup(parts[2].body);
        parts_free(parts, n);
        free(top);
        free(out);
        return type;
}

TEST(headers_only) {
        BounceRecord records[] = { rec("bob@remote.test", "", "", "", "failed", "5.1.1", "none", "no such user") };
        BounceReport r = failure(records, 1);
        const char *headers_end = strstr(original, "\n\n") + 1;
        char *body;

        /* RET=HDRS */
        r.ret = "HDRS";
        ASSERT_STREQ(third_part_type(&r, &body), "text/rfc822-headers");
        ASSERT_EQ(strlen(body), (size_t) (headers_end - original));
        ASSERT_TRUE(strncmp(body, original, (size_t) (headers_end - original)) == 0);
        ASSERT_TRUE(!strstr(body, "Shall we?"));
        free(body);

        /* over bounce_size_limit, with only the headers read */
        r.ret = NULL;
        r.size_limit = 100;
        ASSERT_TRUE(!bounce_report_full_content(&r));
        r.content_size = (size_t) (headers_end - original) + 1;
        ASSERT_STREQ(third_part_type(&r, &body), "text/rfc822-headers");
        ASSERT_TRUE(strstr(body, "Subject: lunch\n") && !strstr(body, "Shall we?"));
        free(body);

        /* a postmaster's copy never carries the body */
        r = failure(records, 1);
        ASSERT_TRUE(bounce_report_full_content(&r));
        r.postmaster = true;
        ASSERT_STREQ(third_part_type(&r, &body), "text/rfc822-headers");
        free(body);
        char *out = compose(&r);
        ASSERT_TRUE(strstr(out, "\nSubject: Postmaster Copy: Undelivered Mail\n"));
        ASSERT_TRUE(strstr(out, "\nAuto-Submitted: auto-generated\n"));
        free(out);
}

TEST(delay_and_success) {
        BounceRecord delayed[] = { rec("bob@remote.test", "", "", "DELAY", "delayed", "4.4.1",
                                       "mx.remote.test[192.0.2.25]:25", "connect to mx.remote.test: timed out") };
        BounceReport r = failure(delayed, 1);
        char *body, *out;

        r.kind = BOUNCE_REPORT_DELAY;
        r.now_usec = T0 + 4 * 3600 * 1000000ULL;
        r.retry_until_usec = T0 + 5 * 86400 * 1000000ULL;
        ASSERT_STREQ(third_part_type(&r, &body), "text/rfc822-headers");
        free(body);
        out = compose(&r);
        ASSERT_TRUE(strstr(out, "\nSubject: Delayed Mail (still being retried)\n"));
        ASSERT_TRUE(strstr(out, "\nAction: delayed\n"));
        ASSERT_TRUE(strstr(out, "\nWill-Retry-Until: Sun, 19 Nov 2023 22:13:20 +0000 (UTC)\n"));
        ASSERT_TRUE(strstr(out, "after 4 hours"));
        ASSERT_TRUE(strstr(out, "\nDiagnostic-Code: X-Postfix; connect to mx.remote.test: timed out\n"));
        free(out);

        BounceRecord delivered[] = { rec("carol@example.org", "", "", "SUCCESS", "delivered", "2.0.0", "local",
                                         "delivered to mailbox") };
        r = failure(delivered, 1);
        r.kind = BOUNCE_REPORT_SUCCESS;
        ASSERT_STREQ(third_part_type(&r, &body), "text/rfc822-headers");
        free(body);
        r.ret = "FULL";
        ASSERT_STREQ(third_part_type(&r, &body), "message/rfc822");
        free(body);
        out = compose(&r);
        ASSERT_TRUE(strstr(out, "\nSubject: Successful Mail Delivery Report\n"));
        ASSERT_TRUE(strstr(out, "\nAction: delivered\n"));
        ASSERT_TRUE(!strstr(out, "Remote-MTA"));
        free(out);
}

TEST(notify) {
        BounceRecord r = rec("a@x", "", "", "", "failed", "5.0.0", "none", "x");
        static const struct {
                const char *notify;
                bool failure, delay, success;
        } cases[] = {
                { "", true, true, false },
                { "NEVER", false, false, false },
                { "FAILURE", true, false, false },
                { "DELAY", false, true, false },
                { "SUCCESS", false, false, true },
                { "success,failure", true, false, true },
                { "SUCCESS,FAILURE,DELAY", true, true, true },
        };

        for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
                r.notify = (char *) cases[i].notify;
                ASSERT_EQ(bounce_record_notify_allows(&r, BOUNCE_REPORT_FAILURE), cases[i].failure);
                ASSERT_EQ(bounce_record_notify_allows(&r, BOUNCE_REPORT_DELAY), cases[i].delay);
                ASSERT_EQ(bounce_record_notify_allows(&r, BOUNCE_REPORT_SUCCESS), cases[i].success);
        }
}

TEST(folding_and_control_characters) {
        char text[600];
        BounceRecord records[] = { rec("bob@remote.test", "", "", "", "failed", "5.7.1", "mx.remote.test[192.0.2.25]:25",
                                       text) };
        BounceReport r = failure(records, 1);
        Part parts[4];
        char *top, *out;
        size_t n, k = 0;

        k += (size_t) snprintf(text + k, sizeof text - k, "host mx.remote.test[192.0.2.25] said: 554 5.7.1");
        while (k < 500)
                k += (size_t) snprintf(text + k, sizeof text - k, " policy");
        text[20] = '\t';
        (void) snprintf(text + k, sizeof text - k, " end\r\nX-Injected: yes");
        out = compose(&r);
        n = split_parts(out, parts, 4, &top);
        ASSERT_EQ(n, 3);
        /* no line is long, no header can be injected, and unfolding gives the words back */
        for (const char *p = out; *p; p = strchr(p, '\n') + 1)
                ASSERT_TRUE(strcspn(p, "\n") <= 78);
        ASSERT_TRUE(!strstr(out, "\nX-Injected"));
        char *diag = header_value(strstr(parts[1].body, "\n\n") + 2, "Diagnostic-Code");
        ASSERT_TRUE(strncmp(diag, "smtp; 554 5.7.1 policy policy", 29) == 0);
        ASSERT_TRUE(strstr(diag, " end  X-Injected: yes"));
        free(diag);
        parts_free(parts, n);
        free(top);
        free(out);
}

TEST(boundary_not_in_content) {
        BounceRecord records[] = { rec("bob@remote.test", "", "", "", "failed", "5.1.1", "none", "no such user") };
        const char *tricky = "Subject: x\n\n--6553F1000000A0B1C.1700000120/mail.example.org--\n";
        BounceReport r = failure(records, 1);
        Part parts[4];
        char *top, *out;
        size_t n;

        r.content = tricky;
        r.content_size = r.original_size = strlen(tricky);
        out = compose(&r);
        ASSERT_TRUE(strstr(out, "boundary=\"6553F1000000A0B1C.1700000120.1/mail.example.org\""));
        n = split_parts(out, parts, 4, &top);
        ASSERT_EQ(n, 3);
        ASSERT_STREQ(parts[2].body, tricky);
        parts_free(parts, n);
        free(top);
        free(out);
}

TEST(utf8_and_reject) {
        BounceRecord records[] = { rec("jörg@example.org", "", "utf-8;j\\x{F6}rg@example.org", "", "failed", "5.1.1",
                                       "local", "unknown user: \"jörg\"") };
        BounceReport r = failure(records, 1);
        char *out;

        r.queue_id = NULL;      /* Reject: no queue file */
        r.envid = NULL;
        out = compose(&r);
        ASSERT_TRUE(strstr(out, "\nContent-Transfer-Encoding: 8bit\n"));
        ASSERT_TRUE(strstr(out, "text/plain; charset=utf-8\n"));
        ASSERT_TRUE(strstr(out, "\nFinal-Recipient: utf-8; jörg@example.org\n"));
        ASSERT_TRUE(strstr(out, "\nOriginal-Recipient: utf-8;j\\x{F6}rg@example.org\n"));
        ASSERT_TRUE(strstr(out, "boundary=\"NOQUEUE."));
        ASSERT_TRUE(!strstr(out, "X-Postbus-Queue-ID"));
        free(out);
}

/* ---- logs ---- */

static int write_log(const BounceRecord *records, size_t n, bool warned) {
        int fd = memfd_create("log", MFD_CLOEXEC);
        QueueWriter *w = malloc(sizeof(QueueWriter));

        ASSERT_TRUE(fd >= 0 && w);
        queue_writer_init(w, fd);
        ASSERT_OK(bounce_log_write(w, true, records, n, warned));
        free(w);
        return fd;
}

static char *file_bytes(int fd, size_t *ret_len) {
        off_t n = lseek(fd, 0, SEEK_END);
        char *buf = malloc((size_t) n + 1);

        ASSERT_TRUE(n >= 0 && buf);
        ASSERT_EQ(pread(fd, buf, (size_t) n, 0), n);
        *ret_len = (size_t) n;
        return buf;
}

TEST(log_round_trip) {
        BounceRecord records[] = {
                rec("bob@remote.test", "", "rfc822;bob+40remote.test", "DELAY", "delayed", "4.4.1", "none", "a"),
                rec("carol@example.org", "team@example.org", "", "", "delayed", "4.2.2", "local", "full"),
                rec("bob@remote.test", "", "rfc822;bob+40remote.test", "DELAY", "delayed", "4.4.2", "none", "b"),
        };
        _cleanup_(bounce_log_freep) BounceLog *l = NULL;
        _cleanup_free_ BounceRecord *latest = NULL;
        size_t len, valid, n;
        int fd = write_log(records, ELEMENTSOF(records), true);
        char *buf = file_bytes(fd, &len);

        ASSERT_OK(bounce_log_parse(buf, len, &l, &valid));
        ASSERT_EQ(valid, len);
        ASSERT_EQ(l->n_records, 3);
        ASSERT_TRUE(l->warned);
        ASSERT_STREQ(l->records[1].original_recipient, "team@example.org");
        ASSERT_STREQ(l->records[0].orcpt, "rfc822;bob+40remote.test");
        ASSERT_EQ(l->records[2].time_usec, T0 + 60 * 1000000ULL);

        /* the last record of each recipient, in log order */
        ASSERT_OK(bounce_log_latest(l, &latest, &n));
        ASSERT_EQ(n, 2);
        ASSERT_STREQ(latest[0].recipient, "carol@example.org");
        ASSERT_STREQ(latest[1].text, "b");

        /* every cut short of the end is a torn tail: the good prefix is whole entries only, and reads whole */
        for (size_t cut = 0; cut < len; cut++) {
                _cleanup_(bounce_log_freep) BounceLog *t = NULL, *again = NULL;
                size_t valid2;

                ASSERT_OK(bounce_log_parse(buf, cut, &t, &valid));
                ASSERT_TRUE(valid <= cut);
                ASSERT_TRUE(!(t->n_records == 3 && t->warned));
                if (cut < 5 + strlen(BOUNCE_LOG_MAGIC))
                        ASSERT_EQ(valid, 0);
                ASSERT_OK(bounce_log_parse(buf, valid, &again, &valid2));
                ASSERT_EQ(valid2, valid);
                ASSERT_EQ(again->n_records, t->n_records);
        }
        /* an unknown record type (here, where 'W' was) ends what is read */
        ASSERT_EQ(buf[len - 5 - strlen("1700000000000000")], 'W');
        buf[len - 5 - strlen("1700000000000000")] = 'Z';
        {
                _cleanup_(bounce_log_freep) BounceLog *t = NULL;
                ASSERT_OK(bounce_log_parse(buf, len, &t, &valid));
                ASSERT_EQ(valid, len - 5 - strlen("1700000000000000"));
                ASSERT_EQ(t->n_records, 3);
                ASSERT_TRUE(!t->warned);
        }
        free(buf);
        close(fd);
}

TEST(record_check) {
        BounceRecord r = rec("bob@remote.test", "", "", "", "failed", "5.1.1", "none", "x");
        const char *why;

        ASSERT_OK(bounce_record_check(&r, &why));
        r.action = (char *) "bounced";
        ASSERT_ERR(bounce_record_check(&r, &why), EINVAL);
        ASSERT_STREQ(why, "bad action");
        r.action = (char *) "failed";
        r.text = (char *) "two\nlines";
        ASSERT_ERR(bounce_record_check(&r, &why), EINVAL);
        r.text = (char *) "x";
        r.notify = (char *) "SOMETIMES";
        ASSERT_ERR(bounce_record_check(&r, &why), EINVAL);
        r.notify = (char *) "";
        r.recipient = (char *) "bad address@x";
        ASSERT_ERR(bounce_record_check(&r, &why), EINVAL);

        ASSERT_TRUE(bounce_status_valid("5.1.1"));
        ASSERT_TRUE(bounce_status_valid("4.7.0"));
        ASSERT_TRUE(bounce_status_valid("2.123.999"));
        ASSERT_TRUE(!bounce_status_valid("3.0.0"));
        ASSERT_TRUE(!bounce_status_valid("5.1"));
        ASSERT_TRUE(!bounce_status_valid("5.1.1 "));
        ASSERT_TRUE(!bounce_status_valid("5.1234.1"));
}

TEST(notify_classes) {
        unsigned mask;
        char *bad;

        ASSERT_OK(bounce_notify_classes_parse("resource, software", &mask, &bad));
        ASSERT_EQ(mask, BOUNCE_CLASS_RESOURCE | BOUNCE_CLASS_SOFTWARE);
        ASSERT_OK(bounce_notify_classes_parse("2bounce,Bounce delay", &mask, &bad));
        ASSERT_EQ(mask, BOUNCE_CLASS_2BOUNCE | BOUNCE_CLASS_BOUNCE | BOUNCE_CLASS_DELAY);
        ASSERT_OK(bounce_notify_classes_parse("", &mask, &bad));
        ASSERT_EQ(mask, 0);
        ASSERT_ERR(bounce_notify_classes_parse("bounce, everything", &mask, &bad), EINVAL);
        ASSERT_STREQ(bad, "everything");
        free(bad);
}

int main(void) {
        /* The golden report has fixed times in UTC. */
        setenv("TZ", "UTC", 1);
        tzset();
        RUN(failure_golden);
        RUN(failure_structure);
        RUN(headers_only);
        RUN(delay_and_success);
        RUN(notify);
        RUN(folding_and_control_characters);
        RUN(boundary_not_in_content);
        RUN(utf8_and_reject);
        RUN(log_round_trip);
        RUN(record_check);
        RUN(notify_classes);
        return 0;
}
