/* test-local-alias.c: destination lists of aliases(5) values and of .forward and :include: files,
 * forward_path expansion, the command environment filter, the Delivered-To scan, the mapping of how a
 * command ended, and the report lines of a delivery child. */
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <sysexits.h>

#include "tests.h"
#include "src/local/local.h"

static void expect(const LocalTargetList *l, size_t i, LocalTargetType type, const char *value) {
        ASSERT_TRUE(i < l->n);
        ASSERT_EQ(l->items[i].type, type);
        ASSERT_STREQ(l->items[i].value, value);
}

TEST(alias_values) {
        LocalTargetList l = {};

        ASSERT_OK(local_targets_parse("bob, carol@example.org ,<dave@example.net>", 42, 100, &l));
        ASSERT_EQ(l.n, 3);
        expect(&l, 0, LOCAL_TARGET_ADDRESS, "bob");
        expect(&l, 1, LOCAL_TARGET_ADDRESS, "carol@example.org");
        expect(&l, 2, LOCAL_TARGET_ADDRESS, "dave@example.net");
        local_target_list_done(&l);

        /* Quotes protect commas and blanks of commands and go away; a quoted local part keeps them. */
        const char *v = "\"|/usr/bin/foo -a x, y\", /var/log/mail.copy, :include:/etc/mail/list ,"
                        " \\alice, \"john doe\"@example.org, |/bin/true, \":include: /etc/x\"";
        ASSERT_OK(local_targets_parse(v, strlen(v), 100, &l));
        ASSERT_EQ(l.n, 7);
        expect(&l, 0, LOCAL_TARGET_COMMAND, "/usr/bin/foo -a x, y");
        expect(&l, 1, LOCAL_TARGET_FILE, "/var/log/mail.copy");
        expect(&l, 2, LOCAL_TARGET_INCLUDE, "/etc/mail/list");
        expect(&l, 3, LOCAL_TARGET_MAILBOX, "alice");
        expect(&l, 4, LOCAL_TARGET_ADDRESS, "\"john doe\"@example.org");
        expect(&l, 5, LOCAL_TARGET_COMMAND, "/bin/true");
        expect(&l, 6, LOCAL_TARGET_INCLUDE, "/etc/x");
        local_target_list_done(&l);

        /* A backslash inside quotes escapes the next character. */
        v = "\"|echo \\\"hi\\\"\"";
        ASSERT_OK(local_targets_parse(v, strlen(v), 100, &l));
        ASSERT_EQ(l.n, 1);
        expect(&l, 0, LOCAL_TARGET_COMMAND, "echo \"hi\"");
        local_target_list_done(&l);

        /* Empty elements are skipped; only the given length is read. */
        ASSERT_OK(local_targets_parse(" , ,bob,,", 9, 100, &l));
        ASSERT_EQ(l.n, 1);
        local_target_list_done(&l);
        ASSERT_OK(local_targets_parse("bob, carol", 3, 100, &l));
        ASSERT_EQ(l.n, 1);
        expect(&l, 0, LOCAL_TARGET_ADDRESS, "bob");
        local_target_list_done(&l);
}

TEST(alias_values_bad) {
        LocalTargetList l = {};

        ASSERT_ERR(local_targets_parse("\"|unbalanced, bob", 17, 100, &l), EINVAL);
        local_target_list_done(&l);
        ASSERT_ERR(local_targets_parse("bob, |", 6, 100, &l), EINVAL);
        local_target_list_done(&l);
        ASSERT_ERR(local_targets_parse(":include:relative", 17, 100, &l), EINVAL);
        local_target_list_done(&l);
        ASSERT_ERR(local_targets_parse(":include:", 9, 100, &l), EINVAL);
        local_target_list_done(&l);
        ASSERT_ERR(local_targets_parse("a\0b", 3, 100, &l), EINVAL);
        local_target_list_done(&l);
        /* The limit counts what the list holds already. */
        ASSERT_OK(local_targets_parse("a, b", 4, 3, &l));
        ASSERT_ERR(local_targets_parse("c, d", 4, 3, &l), E2BIG);
        ASSERT_EQ(l.n, 3);
        local_target_list_done(&l);
}

TEST(forward_file) {
        LocalTargetList l = {};
        const char *f = "# my forwards\n"
                        "\n"
                        "   \\alice, bob@example.org\n"
                        "  # indented comment\n"
                        "\"|/usr/bin/procmail -f-\"\n"
                        "/home/alice/mail/copy\n"
                        "carol";        /* no final newline */

        ASSERT_OK(local_targets_parse_file(f, strlen(f), 100, &l));
        ASSERT_EQ(l.n, 5);
        expect(&l, 0, LOCAL_TARGET_MAILBOX, "alice");
        expect(&l, 1, LOCAL_TARGET_ADDRESS, "bob@example.org");
        expect(&l, 2, LOCAL_TARGET_COMMAND, "/usr/bin/procmail -f-");
        expect(&l, 3, LOCAL_TARGET_FILE, "/home/alice/mail/copy");
        expect(&l, 4, LOCAL_TARGET_ADDRESS, "carol");
        local_target_list_done(&l);

        /* Only comments and blank lines: no destinations, not an error. */
        ASSERT_OK(local_targets_parse_file("#x\n\n  \n", 7, 100, &l));
        ASSERT_EQ(l.n, 0);

        /* A quote does not reach across lines. */
        ASSERT_ERR(local_targets_parse_file("\"|a\nb\"\n", 7, 100, &l), EINVAL);
        local_target_list_done(&l);

        /* A line longer than the limit. */
        size_t n = LOCAL_LIST_LINE_MAX + 10;
        char *big = malloc(n);
        ASSERT_TRUE(big);
        memset(big, 'a', n);
        ASSERT_ERR(local_targets_parse_file(big, n, 100, &l), EINVAL);
        local_target_list_done(&l);
        free(big);
}

TEST(expand_vars) {
        const char *vars[] = { "home", "/home/alice", "user", "alice", "extension", "", NULL };
        char *s;

        ASSERT_OK(format_expand_vars("$home/.forward", vars, &s));
        ASSERT_STREQ(s, "/home/alice/.forward");
        free(s);
        ASSERT_OK(format_expand_vars("${home}/.forward${extension?+}${extension}", vars, &s));
        ASSERT_STREQ(s, "/home/alice/.forward");
        free(s);
        ASSERT_OK(format_expand_vars("${user?x$user}${user:nobody}-${extension:none}-$unknown.", vars, &s));
        ASSERT_STREQ(s, "xalice-none-.");
        free(s);
        ASSERT_OK(format_expand_vars("$$user costs $$1", vars, &s));
        ASSERT_STREQ(s, "$user costs $1");
        free(s);
        ASSERT_OK(format_expand_vars("plain", vars, &s));
        ASSERT_STREQ(s, "plain");
        free(s);
        ASSERT_ERR(format_expand_vars("$", vars, &s), EINVAL);
        ASSERT_ERR(format_expand_vars("${home", vars, &s), EINVAL);
        ASSERT_ERR(format_expand_vars("${home?x", vars, &s), EINVAL);
}

TEST(sanitize) {
        char s[] = "a;b`c$(d) e\nf@g.h-i_j+k=l%m!n:o,p/q";

        local_sanitize(s);
        ASSERT_STREQ(s, "a_b_c__d__e_f@g.h-i_j+k=l%m!n:o,p/q");
}

static void scan_pieces(const char *msg, size_t step, LocalHeaderScan *s) {
        size_t len = strlen(msg);
        int r = 0;

        local_header_scan_init(s, 10);
        for (size_t off = 0; off < len && r == 0; off += step) {
                r = local_header_scan_feed(s, msg + off, MIN(step, len - off));
                ASSERT_OK(r);
        }
        ASSERT_OK(local_header_scan_finish(s));
}

TEST(delivered_to_scan) {
        const char *msg = "Received: by x\n"
                          "Delivered-To: Alice@Example.ORG\n"
                          "delivered-to:   <bob@example.org>  \n"
                          "Delivered-To-Not: carol@example.org\n"
                          "X-Delivered-To: dave@example.org\n"
                          "Delivered-To:\n"
                          " folded@example.org\n"
                          "Subject: hi\n"
                          "\n"
                          "Delivered-To: body@example.org\n";

        for (size_t step = 1; step <= strlen(msg); step++) {
                LocalHeaderScan s;

                scan_pieces(msg, step, &s);
                ASSERT_EQ(s.n_values, 3);
                ASSERT_STREQ(s.values[0], "alice@example.org");
                ASSERT_STREQ(s.values[1], "bob@example.org");
                ASSERT_STREQ(s.values[2], "folded@example.org");
                ASSERT_TRUE(local_header_scan_has(&s, "ALICE@example.org"));
                ASSERT_TRUE(!local_header_scan_has(&s, "carol@example.org"));
                ASSERT_TRUE(!local_header_scan_has(&s, "body@example.org"));
                local_header_scan_done(&s);
        }

        /* Headers only, the last one without a newline; an over-long header is skipped; the count is
         * bounded. */
        LocalHeaderScan s;
        scan_pieces("Delivered-To: x@y", 5, &s);
        ASSERT_EQ(s.n_values, 1);
        ASSERT_STREQ(s.values[0], "x@y");
        local_header_scan_done(&s);

        char *big = malloc(LOCAL_HEADER_LINE_MAX + 100);
        ASSERT_TRUE(big);
        strcpy(big, "Delivered-To: ");
        memset(big + 14, 'a', LOCAL_HEADER_LINE_MAX);
        strcpy(big + 14 + LOCAL_HEADER_LINE_MAX, "\nDelivered-To: ok@z\n\n");
        scan_pieces(big, 100, &s);
        ASSERT_EQ(s.n_values, 1);
        ASSERT_STREQ(s.values[0], "ok@z");
        local_header_scan_done(&s);
        free(big);

        char many[2000] = "";
        for (int i = 0; i < 20; i++)
                sprintf(many + strlen(many), "Delivered-To: u%d@x\n", i);
        scan_pieces(many, 7, &s);
        ASSERT_EQ(s.n_values, 10);
        local_header_scan_done(&s);
}

TEST(command_status) {
        MailboxResult r;

        local_command_status(0, false, "/bin/true", "", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_SENT);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_STREQ(r.text, "delivered to command: /bin/true");

        local_command_status(EX_TEMPFAIL << 8, false, "x", "try later\n", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_DEFERRED);
        ASSERT_STREQ(r.dsn, "4.3.0");
        ASSERT_STREQ(r.text, "temporary failure. Command output: try later");

        local_command_status(EX_OSERR << 8, false, "x", NULL, &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_DEFERRED);
        ASSERT_STREQ(r.text, "system resource problem");

        local_command_status(EX_NOUSER << 8, false, "x", "", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.1.1");

        local_command_status(1 << 8, false, "/usr/bin/foo", "no such\nthing\n", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.3.0");
        ASSERT_STREQ(r.text, "Command died with status 1: \"/usr/bin/foo\". Command output: no such thing");

        local_command_status(9 /* SIGKILL */, false, "x", "", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_DEFERRED);
        ASSERT_STREQ(r.text, "Command died with signal 9: \"x\"");

        local_command_status(9, true, "sleep 9", "zzz", &r);
        ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_STREQ(r.text, "Command time limit exceeded: \"sleep 9\". Command output: zzz");
}

TEST(report_lines) {
        int fd = memfd_create("test", MFD_CLOEXEC);
        MailboxResult r;
        char buf[4096];
        ssize_t n;

        ASSERT_TRUE(fd >= 0);
        /* The same lines into a child's memory file and into local's memory. */
        LocalReport child = { .fd = fd }, mem = LOCAL_REPORT_MEMORY;
        LocalReport *reps[] = { &child, &mem };
        for (size_t k = 0; k < ELEMENTSOF(reps); k++) {
                mailbox_result_set(&r, "2.0.0", "delivered to command: a\tb\nc");
                ASSERT_OK(local_report_delivery(reps[k], "bob@x", "alias@x", &r));
                mailbox_result_set(&r, "5.4.6", "mail forwarding loop for bob@x");
                ASSERT_OK(local_report_delivery(reps[k], "bob@x", NULL, &r));
                ASSERT_OK(local_report_warning(reps[k], "file %s is world writable -- ignored", "/h/.forward\x01"));
                ASSERT_OK(local_report_ignored(reps[k], "/h/.forward\t", "is %s writable", "group"));
        }
        ASSERT_EQ(child.buf.len, 0U);
        n = pread(fd, buf, sizeof buf - 1, 0);
        ASSERT_TRUE(n > 0);
        buf[n] = '\0';
        ASSERT_STREQ(buf, "D 2.0.0 bob@x\talias@x\tdelivered to command: a b c\n"
                          "D 5.4.6 bob@x\t\tmail forwarding loop for bob@x\n"
                          "W file /h/.forward  is world writable -- ignored\n"
                          "I /h/.forward \tis group writable\n");
        ASSERT_EQ(mem.buf.len, (size_t) n);
        ASSERT_TRUE(memcmp(mem.buf.data, buf, (size_t) n) == 0);
        local_report_done(&mem);
        ASSERT_TRUE(mem.buf.data == NULL);

        LocalReportLine l;
        char *p = buf, *nl = strchr(p, '\n');
        ASSERT_OK(local_report_parse(p, (size_t) (nl - p), &l));
        ASSERT_EQ(l.type, 'D');
        ASSERT_EQ(l.result.status, MAILBOX_STATUS_SENT);
        ASSERT_STREQ(l.to, "bob@x");
        ASSERT_STREQ(l.orig_to, "alias@x");
        ASSERT_STREQ(l.result.text, "delivered to command: a b c");
        local_report_line_done(&l);
        p = nl + 1;
        nl = strchr(p, '\n');
        ASSERT_OK(local_report_parse(p, (size_t) (nl - p), &l));
        ASSERT_EQ(l.result.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_STREQ(l.orig_to, "");
        local_report_line_done(&l);
        p = nl + 1;
        nl = strchr(p, '\n');
        ASSERT_OK(local_report_parse(p, (size_t) (nl - p), &l));
        ASSERT_EQ(l.type, 'W');
        local_report_line_done(&l);
        p = nl + 1;
        nl = strchr(p, '\n');
        ASSERT_OK(local_report_parse(p, (size_t) (nl - p), &l));
        ASSERT_EQ(l.type, 'I');
        ASSERT_STREQ(l.path, "/h/.forward ");
        ASSERT_STREQ(l.text, "is group writable");
        local_report_line_done(&l);

        /* Malformed lines from a child are refused. */
        static const char *const bad[] = {
                "", "D", "X x", "D 2.0.0", "D 2.0.0 bob", "D 2.0.0 bob\tx", "D 7.0.0 bob\t\tx", "D 2.0.0 \t\tx",
                "D 2.0 bob\t\tx", "I /x", "I \twhy",
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++)
                ASSERT_ERR(local_report_parse(bad[i], strlen(bad[i]), &l), EBADMSG);
        close(fd);
}

int main(void) {
        RUN(alias_values);
        RUN(alias_values_bad);
        RUN(forward_file);
        RUN(expand_vars);
        RUN(sanitize);
        RUN(delivered_to_scan);
        RUN(command_status);
        RUN(report_lines);
        return 0;
}
