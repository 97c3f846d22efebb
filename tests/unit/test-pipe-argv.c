/* test-pipe-argv.c: the pure parts of the pipe role: flags= and eol=, addresses as commands see them, argv=
 * macro expansion (a word per recipient, q h u, the null sender), a transport's options, the lines the flags
 * put before the message, the content copy with its quoting in pieces split anywhere, the Delivered-To loop
 * check, and the mapping of a command's end to a delivery result. */
#include <stdarg.h>
#include <sys/wait.h>
#include <sysexits.h>

#include "tests.h"
#include "utf8.h"
#include "../../src/pipe/pipe.h"

static char **words(const char *s) {
        /* Blank-separated words, as argv= comes from qmgr. */
        char **l = calloc(64, sizeof(char *));
        size_t n = 0;
        char *copy = strdup(s), *save = NULL;

        for (char *w = strtok_r(copy, " ", &save); w; w = strtok_r(NULL, " ", &save))
                l[n++] = strdup(w);
        free(copy);
        return l;
}

/* The expansion of argv as one string, words joined by '|'. */
static char *expand(const char *argv, const PipeExpand *x) {
        _cleanup_strv_free_ char **in = words(argv), **out = NULL;
        _cleanup_free_ char *error = NULL;
        char *joined = NULL;
        size_t len = 0;
        FILE *f;

        ASSERT_OK(pipe_argv_expand(in, x, &out, &error));
        f = open_memstream(&joined, &len);
        for (char **w = out; *w; w++)
                fprintf(f, "%s%s", w == out ? "" : "|", *w);
        fclose(f);
        return joined;
}

static char *expand_error(const char *argv, const PipeExpand *x) {
        _cleanup_strv_free_ char **in = words(argv), **out = NULL;
        char *error = NULL;

        ASSERT_ERR(pipe_argv_expand(in, x, &out, &error), EINVAL);
        ASSERT_TRUE(out == NULL && error != NULL);
        return error;
}

TEST(flags) {
        unsigned f;
        char bad = 0;

        ASSERT_OK(pipe_flags_parse("", &f, &bad));
        ASSERT_EQ(f, 0);
        ASSERT_OK(pipe_flags_parse("BDFORXhqu.>", &f, &bad));
        ASSERT_EQ(f, PIPE_FLAG_BLANK | PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_FROM_LINE | PIPE_FLAG_ORIGINAL_TO |
                             PIPE_FLAG_RETURN_PATH | PIPE_FLAG_FINAL | PIPE_FLAG_FOLD_HOST | PIPE_FLAG_QUOTE |
                             PIPE_FLAG_FOLD_USER | PIPE_FLAG_DOT | PIPE_FLAG_QUOTE_FROM);
        ASSERT_OK(pipe_flags_parse("DRhu", &f, &bad));
        ASSERT_EQ(f, PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_RETURN_PATH | PIPE_FLAG_FOLD_HOST | PIPE_FLAG_FOLD_USER);
        ASSERT_ERR(pipe_flags_parse("DRx", &f, &bad), EINVAL);
        ASSERT_EQ(bad, 'x');
        ASSERT_ERR(pipe_flags_parse("d", &f, &bad), EINVAL);     /* letters are case-sensitive */
}

TEST(eol) {
        char *e = NULL;

        ASSERT_OK(pipe_eol_parse("\\r\\n", &e));
        ASSERT_STREQ(e, "\r\n");
        free(e);
        ASSERT_OK(pipe_eol_parse("\\n", &e));
        ASSERT_STREQ(e, "\n");
        free(e);
        ASSERT_OK(pipe_eol_parse("\\015\\012", &e));
        ASSERT_STREQ(e, "\r\n");
        free(e);
        ASSERT_OK(pipe_eol_parse("\\\\x", &e));
        ASSERT_STREQ(e, "\\x");
        free(e);
        ASSERT_ERR(pipe_eol_parse("", &e), EINVAL);
        ASSERT_ERR(pipe_eol_parse("\\0", &e), EINVAL);           /* a NUL cannot end a line */
        ASSERT_ERR(pipe_eol_parse("12345678901234567", &e), EINVAL);
}

TEST(addresses) {
        char *s = NULL;

        ASSERT_OK(pipe_address_unquote("\"john doe\"@Example.org", &s));
        ASSERT_STREQ(s, "john doe@Example.org");
        free(s);
        ASSERT_OK(pipe_address_unquote("\"a\\\"b\"@x", &s));
        ASSERT_STREQ(s, "a\"b@x");
        free(s);
        ASSERT_OK(pipe_address_unquote("\"a@b\"@x", &s));
        ASSERT_STREQ(s, "a@b@x");
        free(s);
        ASSERT_OK(pipe_address_unquote("plain@x", &s));
        ASSERT_STREQ(s, "plain@x");
        free(s);

        ASSERT_OK(pipe_address_quote("john doe@Example.org", &s));
        ASSERT_STREQ(s, "\"john doe\"@Example.org");
        free(s);
        ASSERT_OK(pipe_address_quote("a\"b@x", &s));
        ASSERT_STREQ(s, "\"a\\\"b\"@x");
        free(s);
        ASSERT_OK(pipe_address_quote("a@b@x", &s));              /* the last '@' separates the domain */
        ASSERT_STREQ(s, "\"a@b\"@x");
        free(s);
        ASSERT_OK(pipe_address_quote("first.last+ext@x", &s));
        ASSERT_STREQ(s, "first.last+ext@x");
        free(s);
        ASSERT_OK(pipe_address_quote("a..b@x", &s));
        ASSERT_STREQ(s, "\"a..b\"@x");
        free(s);
        ASSERT_OK(pipe_address_quote(".a@x", &s));
        ASSERT_STREQ(s, "\".a\"@x");
        free(s);
        ASSERT_OK(pipe_address_quote("j\xc3\xb6rg@x", &s));      /* 8-bit is left alone */
        ASSERT_STREQ(s, "j\xc3\xb6rg@x");
        free(s);
        ASSERT_OK(pipe_address_quote("MAILER-DAEMON", &s));
        ASSERT_STREQ(s, "MAILER-DAEMON");
        free(s);

        char a[] = "Bob.Smith@Example.ORG";
        pipe_address_fold(a, true, false);
        ASSERT_STREQ(a, "bob.smith@Example.ORG");
        pipe_address_fold(a, false, true);
        ASSERT_STREQ(a, "bob.smith@example.org");
}

TEST(extension) {
        const char *ext;

        ASSERT_EQ(pipe_split_extension("bob+lists", "+", &ext), 3);
        ASSERT_STREQ(ext, "lists");
        ASSERT_EQ(pipe_split_extension("bob+a+b", "+", &ext), 3);
        ASSERT_STREQ(ext, "a+b");
        ASSERT_EQ(pipe_split_extension("bob-x", "+-", &ext), 3);
        ASSERT_STREQ(ext, "x");
        ASSERT_EQ(pipe_split_extension("bob+lists", "", &ext), 9);
        ASSERT_TRUE(ext == NULL);
        ASSERT_EQ(pipe_split_extension("+lists", "+", &ext), 6);        /* never an empty user part */
        ASSERT_TRUE(ext == NULL);
        ASSERT_EQ(pipe_split_extension("owner-list", "-", &ext), 10);
        ASSERT_TRUE(ext == NULL);
        ASSERT_EQ(pipe_split_extension("list-request", "-", &ext), 12);
        ASSERT_TRUE(ext == NULL);
        ASSERT_EQ(pipe_split_extension("owner-list", "+", &ext), 10);
        ASSERT_EQ(pipe_split_extension("MAILER-DAEMON", "-", &ext), 13);
        ASSERT_EQ(pipe_split_extension("bob+", "+", &ext), 3);
        ASSERT_STREQ(ext, "");
}

static const char *const vars[] = {
        "size", "1234", "queue_id", "6925A7F30B81C3A4F", "client_address", "192.0.2.7", "client_hostname",
        "mx.example.net", "sasl_username", "alice", NULL,
};

TEST(expand_one_recipient) {
        const PipeAddress r[] = { { "Bob+Lists@Example.ORG", "bob@example.org" } };
        PipeExpand x = {
                .delimiter = "+",
                .sender = "alice@example.net",
                .null_sender = PIPE_NULL_SENDER,
                .nexthop = "Example.ORG",
                .vars = vars,
                .recipients = r,
                .n_recipients = 1,
        };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        a = expand("/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}", &x);
        ASSERT_STREQ(a, "/usr/lib/dovecot/deliver|-f|alice@example.net|-d|Bob+Lists@Example.ORG");
        b = expand("/bin/x $user ${extension} $(mailbox) ${domain} ${nexthop} ${original_recipient}", &x);
        ASSERT_STREQ(b, "/bin/x|Bob|Lists|Bob+Lists|Example.ORG|Example.ORG|bob@example.org");
        c = expand("/bin/x --size=${size} ${queue_id} ${client_address} ${client_hostname} ${sasl_username} "
                   "[${client_helo}] cost=$$5",
                   &x);
        ASSERT_STREQ(c, "/bin/x|--size=1234|6925A7F30B81C3A4F|192.0.2.7|mx.example.net|alice|[]|cost=$5");

        /* h and u fold what they name; ${user} and ${mailbox} folded too. */
        x.flags = PIPE_FLAG_FOLD_HOST | PIPE_FLAG_FOLD_USER;
        d = expand("/bin/x ${recipient} ${user} ${domain} ${nexthop} ${sender}", &x);
        ASSERT_STREQ(d, "/bin/x|bob+lists@example.org|bob|example.org|example.org|alice@example.net");
        free(d);
        x.flags = PIPE_FLAG_FOLD_HOST;
        d = expand("/bin/x ${recipient} ${mailbox}", &x);
        ASSERT_STREQ(d, "/bin/x|Bob+Lists@example.org|Bob+Lists");
}

TEST(expand_recipients) {
        const PipeAddress r[] = {
                { "a@x.org", NULL },
                { "b+ext@y.org", NULL },
                { "\"c d\"@z.org", NULL },
        };
        PipeExpand x = {
                .delimiter = "+",
                .sender = "",
                .null_sender = PIPE_NULL_SENDER,
                .nexthop = "x.org",
                .recipients = r,
                .n_recipients = 3,
        };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL, *e = NULL;

        /* A word that names a recipient's macro comes once per recipient, the others once. */
        a = expand("/usr/sbin/sendmail -oi -f $sender -- $recipient", &x);
        ASSERT_STREQ(a, "/usr/sbin/sendmail|-oi|-f|MAILER-DAEMON|--|a@x.org|b+ext@y.org|c d@z.org");
        b = expand("/bin/x --to=${user}:${extension} ${domain}", &x);
        ASSERT_STREQ(b, "/bin/x|--to=a:|--to=b:ext|--to=c d:|x.org|y.org|z.org");
        /* q quotes whole addresses only. */
        x.flags = PIPE_FLAG_QUOTE;
        c = expand("/bin/x ${recipient} ${mailbox} ${sender}", &x);
        ASSERT_STREQ(c, "/bin/x|a@x.org|b+ext@y.org|\"c d\"@z.org|a|b+ext|c d|MAILER-DAEMON");
        /* Without a recipient macro, one command for all, with no per-recipient words. */
        d = expand("/bin/filter -v", &x);
        ASSERT_STREQ(d, "/bin/filter|-v");
        /* An empty null sender stays an empty argument, never quoted. */
        x.null_sender = "";
        e = expand("/bin/x -f ${sender}", &x);
        ASSERT_STREQ(e, "/bin/x|-f|");
}

TEST(expand_errors) {
        const PipeAddress r[] = { { "a@x.org", NULL } };
        const PipeExpand x = { .sender = "s@x", .nexthop = "x", .recipients = r, .n_recipients = 1 };
        _cleanup_free_ char *a = NULL, *b = NULL, *c = NULL, *d = NULL;

        a = expand_error("/bin/x ${nosuch}", &x);
        ASSERT_TRUE(strstr(a, "unknown macro name \"nosuch\""));
        b = expand_error("/bin/x ${recipient", &x);
        ASSERT_TRUE(strstr(b, "truncated"));
        c = expand_error("/bin/x cost$", &x);
        ASSERT_TRUE(strstr(c, "empty macro name"));
        /* Postfix's pipe knows plain names only. */
        d = expand_error("/bin/x ${sender?yes}", &x);
        ASSERT_TRUE(strstr(d, "unknown macro name"));
}

static const char *const *options(const char *a, ...) {
        static const char *kv[32];
        va_list ap;
        size_t n = 0;

        va_start(ap, a);
        for (const char *s = a; s && n < 30; s = va_arg(ap, const char *))
                kv[n++] = s;
        va_end(ap);
        kv[n] = NULL;
        return kv;
}

TEST(settings) {
        _cleanup_(config_freep) Config *c = NULL;
        PipeSettings s;
        char *error = NULL;

        ASSERT_OK(config_parse("command_time_limit = 100s\nrecipient_delimiter = +\n", "main.cf", &c));
        ASSERT_OK(pipe_settings_parse(options("argv", "/usr/lib/dovecot/deliver  -d ${recipient}", "user",
                                              "vmail:mail", "flags", "DRhu", "size", "5000", "eol", "\\r\\n",
                                              "o:recipient_delimiter", "-", "o:smtp_helo_name", "x", NULL),
                                      c, &s, &error));
        ASSERT_TRUE(error == NULL);
        ASSERT_STREQ(s.argv[0], "/usr/lib/dovecot/deliver");
        ASSERT_STREQ(s.argv[1], "-d");
        ASSERT_STREQ(s.argv[2], "${recipient}");
        ASSERT_TRUE(s.argv[3] == NULL);
        ASSERT_STREQ(s.user, "vmail");
        ASSERT_STREQ(s.group, "mail");
        ASSERT_EQ(s.flags, PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_RETURN_PATH | PIPE_FLAG_FOLD_HOST | PIPE_FLAG_FOLD_USER);
        ASSERT_EQ(s.size_limit, 5000);
        ASSERT_STREQ(s.eol, "\r\n");
        ASSERT_EQ(s.time_limit_usec, 100 * USEC_PER_SEC);        /* command_time_limit */
        ASSERT_STREQ(s.recipient_delimiter, "-");                /* -o overrides main.cf */
        ASSERT_STREQ(s.null_sender, PIPE_NULL_SENDER);
        ASSERT_TRUE(s.directory == NULL);
        pipe_settings_done(&s);

        ASSERT_OK(pipe_settings_parse(options("argv", "/bin/x", "user", "nobody", "time_limit", "2m", "null_sender",
                                              "", "directory", "/srv", NULL),
                                      c, &s, &error));
        ASSERT_EQ(s.time_limit_usec, 120 * USEC_PER_SEC);
        ASSERT_STREQ(s.null_sender, "");
        ASSERT_STREQ(s.directory, "/srv");
        ASSERT_STREQ(s.eol, "\n");
        ASSERT_STREQ(s.recipient_delimiter, "+");
        ASSERT_TRUE(s.group == NULL);
        pipe_settings_done(&s);

        static const struct {
                const char *name, *value, *says;
        } bad[] = {
                { "flags", "DZ", "unknown flag in flags=: 'Z'" },
                { "flags", "\xc3\xa9", "unknown flag in flags=: byte 0xc3" },
                { "size", "-1", "bad size" },
                { "size", "12k", "bad size" },
                { "eol", "", "bad eol" },
                { "time_limit", "0", "time limit" },
                { "chroot", "/var/empty", "unsupported attribute: chroot=" },
                { "directory", "relative", "absolute" },
                { "null_sender", "a b", "null_sender" },
        };
        for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
                ASSERT_ERR(pipe_settings_parse(options("argv", "/bin/x", "user", "nobody", bad[i].name, bad[i].value,
                                                       NULL),
                                               c, &s, &error),
                           EINVAL);
                ASSERT_TRUE(error && strstr(error, bad[i].says));
                error = mfree(error);
        }
        ASSERT_ERR(pipe_settings_parse(options("user", "nobody", NULL), c, &s, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "missing argv="));
        error = mfree(error);
        ASSERT_ERR(pipe_settings_parse(options("argv", "  ", "user", "nobody", NULL), c, &s, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "missing argv="));
        error = mfree(error);
        ASSERT_ERR(pipe_settings_parse(options("argv", "/bin/x", NULL), c, &s, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "missing user="));
        error = mfree(error);
}

TEST(settings_user) {
        _cleanup_(config_freep) Config *c = NULL;
        const PipeForbidden none = { (uid_t) -1, (gid_t) -1, (gid_t) -1 };
        PipeSettings s;
        char *error = NULL;

        ASSERT_OK(config_parse("", "main.cf", &c));
        ASSERT_OK(pipe_settings_parse(options("argv", "/bin/x", "user", "root", NULL), c, &s, &error));
        ASSERT_ERR(pipe_settings_resolve_user(&s, &none, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "user=root: refusing to run a command as root"));
        error = mfree(error);
        pipe_settings_done(&s);

        ASSERT_OK(pipe_settings_parse(options("argv", "/bin/x", "user", "no-such-user-here", NULL), c, &s, &error));
        ASSERT_ERR(pipe_settings_resolve_user(&s, &none, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "unknown user name"));
        error = mfree(error);
        pipe_settings_done(&s);

        /* nobody exists on every system this runs on; as the mail system owner it is refused. */
        ASSERT_OK(pipe_settings_parse(options("argv", "/bin/x", "user", "nobody", NULL), c, &s, &error));
        ASSERT_OK(pipe_settings_resolve_user(&s, &none, &error));
        ASSERT_TRUE(s.uid != 0 && s.n_groups >= 1 && s.home != NULL);
        const PipeForbidden owner = { s.uid, (gid_t) -1, (gid_t) -1 };
        ASSERT_ERR(pipe_settings_resolve_user(&s, &owner, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "mail system owner"));
        error = mfree(error);
        const PipeForbidden group = { (uid_t) -1, (gid_t) -1, s.gid };
        ASSERT_ERR(pipe_settings_resolve_user(&s, &group, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "mail system group"));
        error = mfree(error);
        pipe_settings_done(&s);

        ASSERT_OK(pipe_settings_parse(options("argv", "/bin/x", "user", "nobody:root", NULL), c, &s, &error));
        ASSERT_ERR(pipe_settings_resolve_user(&s, &none, &error), EINVAL);
        ASSERT_TRUE(strstr(error, "user=nobody:root: refusing to run a command with group id 0"));
        error = mfree(error);
        pipe_settings_done(&s);
}

TEST(environment) {
        _cleanup_strv_free_ char **env = NULL;

        ASSERT_OK(setenv("TZ", "Europe/Paris", 1));
        ASSERT_OK(setenv("SECRET", "x", 1));
        ASSERT_OK(unsetenv("LANG"));
        ASSERT_OK(pipe_environment("TZ MAIL_CONFIG LANG PATH", &env));
        ASSERT_STREQ(env[0], "PATH=/usr/bin:/bin");
        ASSERT_STREQ(env[1], "TZ=Europe/Paris");
        ASSERT_TRUE(env[2] == NULL);
}

TEST(prefix) {
        char *p = NULL;
        time_t t = 0;   /* the From_ line's date is local time: only its shape is checked */

        ASSERT_OK(pipe_message_prefix(PIPE_FLAG_RETURN_PATH | PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_ORIGINAL_TO,
                                      "\"a b\"@x.org", PIPE_NULL_SENDER, "orig@y.org", "Bob@Y.org", "\n", t, &p));
        ASSERT_STREQ(p, "Return-Path: <\"a b\"@x.org>\nX-Original-To: orig@y.org\nDelivered-To: Bob@Y.org\n");
        free(p);
        /* The null sender: its stand-in, or "<>" and MAILER-DAEMON when the stand-in is empty. */
        ASSERT_OK(pipe_message_prefix(PIPE_FLAG_RETURN_PATH, "", PIPE_NULL_SENDER, NULL, NULL, "\r\n", t, &p));
        ASSERT_STREQ(p, "Return-Path: <MAILER-DAEMON>\r\n");
        free(p);
        ASSERT_OK(pipe_message_prefix(PIPE_FLAG_RETURN_PATH | PIPE_FLAG_FROM_LINE, "", "", NULL, NULL, "\n", t, &p));
        ASSERT_TRUE(strncmp(p, "From MAILER-DAEMON  ", 20) == 0);
        ASSERT_TRUE(strstr(p, "\nReturn-Path: <>\n"));
        free(p);
        ASSERT_OK(pipe_message_prefix(PIPE_FLAG_FROM_LINE, "s@x", "", NULL, NULL, "\n", t, &p));
        /* "From s@x  Thu Jan  1 00:00:00 1970\n" in the time zone of the test */
        ASSERT_TRUE(strncmp(p, "From s@x  ", 10) == 0 && strlen(p) == 10 + 24 + 1 && p[strlen(p) - 1] == '\n');
        free(p);
        /* No X-Original-To without an original recipient; nothing without flags. */
        ASSERT_OK(pipe_message_prefix(PIPE_FLAG_ORIGINAL_TO, "s@x", "", "", "r@x", "\n", t, &p));
        ASSERT_STREQ(p, "");
        free(p);
}

/* The copy of content fed whole and in pieces of every size must agree. */
static char *copy(unsigned flags, const char *eol, const char *content, size_t step) {
        Buffer b = {};
        PipeCopy c;
        size_t len = strlen(content);

        pipe_copy_init(&c, flags, eol);
        for (size_t off = 0; off < len; off += step)
                ASSERT_OK(pipe_copy_feed(&c, content + off, MIN(step, len - off), &b));
        ASSERT_OK(pipe_copy_finish(&c, &b));
        ASSERT_OK(buffer_append(&b, "", 1));
        return b.data;
}

static void check_copy(unsigned flags, const char *eol, const char *content, const char *want) {
        for (size_t step = 1; step <= strlen(content) + 1; step++) {
                _cleanup_free_ char *got = copy(flags, eol, content, step);
                ASSERT_STREQ(got, want);
        }
}

TEST(copy) {
        const char *m = "Subject: x\n\nFrom me\n.dot\nFro\nFrom\n..two\nFrom the end";

        check_copy(0, "\n", m, "Subject: x\n\nFrom me\n.dot\nFro\nFrom\n..two\nFrom the end\n");
        check_copy(PIPE_FLAG_QUOTE_FROM, "\n", m, "Subject: x\n\n>From me\n.dot\nFro\nFrom\n..two\n>From the end\n");
        check_copy(PIPE_FLAG_DOT, "\n", m, "Subject: x\n\nFrom me\n..dot\nFro\nFrom\n...two\nFrom the end\n");
        check_copy(PIPE_FLAG_DOT | PIPE_FLAG_QUOTE_FROM | PIPE_FLAG_BLANK, "\r\n", m,
                   "Subject: x\r\n\r\n>From me\r\n..dot\r\nFro\r\nFrom\r\n...two\r\n>From the end\r\n\r\n");
        check_copy(PIPE_FLAG_BLANK, "\n", "a\n", "a\n\n");
        check_copy(PIPE_FLAG_QUOTE_FROM, "\n", "From ", ">From \n");
        check_copy(PIPE_FLAG_QUOTE_FROM, "\n", "Fr", "Fr\n");
        check_copy(PIPE_FLAG_QUOTE_FROM, "\n", "FFrom x\n", "FFrom x\n");

        _cleanup_free_ char *empty = copy(PIPE_FLAG_BLANK, "\n", "", 1);
        ASSERT_STREQ(empty, "\n");
}

static bool scan(const char *headers, const char *address, size_t step) {
        PipeHeaderScan s;
        size_t len = strlen(headers);

        pipe_header_scan_init(&s, address);
        for (size_t off = 0; off < len; off += step)
                if (pipe_header_scan_feed(&s, headers + off, MIN(step, len - off)))
                        break;
        pipe_header_scan_finish(&s);
        return s.found;
}

TEST(delivered_to) {
        const char *m = "Received: x\nDelivered-To:   Bob@Example.org \nSubject: y\n\nDelivered-To: body@x\n";
        const char *folded = "Delivered-To:\n\tcarol@x\nX: y\n\n";

        for (size_t step = 1; step <= strlen(m); step++) {
                ASSERT_TRUE(scan(m, "bob@example.org", step));
                ASSERT_TRUE(!scan(m, "body@x", step));           /* the body is not a header */
                ASSERT_TRUE(!scan(m, "bob@example.net", step));
                ASSERT_TRUE(scan(folded, "carol@x", step));
                ASSERT_TRUE(scan("Delivered-To: last@x", "last@x", step));
        }
}

static void result(int code, int status, bool timed_out, const char *output, PipeResult *r) {
        const PipeEnd end = { .code = code, .status = status, .timed_out = timed_out };

        pipe_command_result(&end, "/usr/lib/dovecot/deliver", "dovecot", output, output ? strlen(output) : 0, r);
}

TEST(result) {
        PipeResult r;

        result(CLD_EXITED, 0, false, "chatter\n", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_SENT);
        ASSERT_STREQ(r.dsn, "2.0.0");
        ASSERT_STREQ(r.text, "delivered via dovecot service");

        result(CLD_EXITED, EX_TEMPFAIL, false, NULL, &r);
        ASSERT_EQ(r.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(r.dsn, "4.3.0");
        ASSERT_STREQ(r.text, "temporary failure");

        result(CLD_EXITED, EX_NOUSER, false, "no such mailbox\n", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.1.1");
        ASSERT_STREQ(r.text, "user unknown. Command output: no such mailbox");

        static const struct {
                int status;
                const char *dsn;
        } sysexits[] = {
                { EX_USAGE, "5.3.0" },    { EX_DATAERR, "5.6.0" },  { EX_NOINPUT, "5.3.0" },     { EX_NOUSER, "5.1.1" },
                { EX_NOHOST, "5.1.2" },   { EX_UNAVAILABLE, "5.3.0" }, { EX_SOFTWARE, "5.3.0" }, { EX_OSERR, "4.3.0" },
                { EX_OSFILE, "5.3.0" },   { EX_CANTCREAT, "5.2.0" }, { EX_IOERR, "5.3.0" },      { EX_TEMPFAIL, "4.3.0" },
                { EX_PROTOCOL, "5.5.0" }, { EX_NOPERM, "5.7.0" },   { EX_CONFIG, "5.3.5" },
        };
        for (size_t i = 0; i < ELEMENTSOF(sysexits); i++) {
                result(CLD_EXITED, sysexits[i].status, false, "", &r);
                ASSERT_STREQ(r.dsn, sysexits[i].dsn);
                ASSERT_EQ(r.status, sysexits[i].dsn[0] == '4' ? PIPE_STATUS_DEFERRED : PIPE_STATUS_BOUNCED);
        }

        result(CLD_EXITED, 1, false, "oops\tbad\n", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.3.0");
        ASSERT_STREQ(r.text, "Command died with status 1: \"/usr/lib/dovecot/deliver\". Command output: oops bad");
        result(CLD_EXITED, 1, false, NULL, &r);
        ASSERT_STREQ(r.text, "Command died with status 1: \"/usr/lib/dovecot/deliver\"");

        /* An enhanced status code at the start of the output wins over the exit status. */
        result(CLD_EXITED, 1, false, "4.2.2 Mailbox full\n", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(r.dsn, "4.2.2");
        ASSERT_STREQ(r.text, "Mailbox full");
        result(CLD_EXITED, EX_TEMPFAIL, false, "5.7.1 refused by policy", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.7.1");
        result(CLD_EXITED, EX_TEMPFAIL, false, "5.7.1234 x", &r);   /* no code: the exit status */
        ASSERT_STREQ(r.dsn, "4.3.0");
        result(CLD_EXITED, EX_TEMPFAIL, false, "2.0.0 fine", &r);   /* success is not the output's to say */
        ASSERT_STREQ(r.dsn, "4.3.0");

        result(CLD_KILLED, 9, false, "", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_DEFERRED);
        ASSERT_STREQ(r.dsn, "4.3.0");
        ASSERT_STREQ(r.text, "Command died with signal 9: \"/usr/lib/dovecot/deliver\"");
        result(CLD_DUMPED, 11, false, "x", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_DEFERRED);

        result(CLD_KILLED, 9, true, "half", &r);
        ASSERT_EQ(r.status, PIPE_STATUS_BOUNCED);
        ASSERT_STREQ(r.dsn, "5.3.0");
        ASSERT_STREQ(r.text, "Command time limit exceeded: \"/usr/lib/dovecot/deliver\". Command output: half");
}

TEST(long_text) {
        PipeResult r;
        char *word = malloc(2 * PIPE_TEXT_SIZE);

        /* "é" is two bytes: however the text is cut, no half character is left at its end. */
        for (size_t shift = 0; shift < 2; shift++) {
                size_t n = 0;
                for (; n + 2 < 2 * PIPE_TEXT_SIZE - 1; n += 2)
                        memcpy(word + n, "\xc3\xa9", 2);
                word[n] = '\0';
                pipe_result_set(&r, "5.3.0", "%s%s", shift ? "x" : "", word);
                ASSERT_TRUE(strlen(r.text) >= PIPE_TEXT_SIZE - 3);
                ASSERT_TRUE(utf8_valid(r.text, strlen(r.text)));
        }
        ASSERT_EQ(r.status, PIPE_STATUS_BOUNCED);
        free(word);
}

TEST(sanitize) {
        char out[16];

        pipe_output_sanitize("a\tb\r\nc\x01\x7f\xff", 9, out, sizeof out);
        ASSERT_STREQ(out, "a b  c___");
        pipe_output_sanitize("\xc3\xa9t\xc3\xa9\n\n", 7, out, sizeof out);
        ASSERT_STREQ(out, "\xc3\xa9t\xc3\xa9");
        pipe_output_sanitize("0123456789abcdefghij", 20, out, sizeof out);
        ASSERT_STREQ(out, "0123456789abcde");
        /* A multi-byte character that does not fit is left out whole. */
        pipe_output_sanitize("0123456789abcd\xc3\xa9", 16, out, sizeof out);
        ASSERT_STREQ(out, "0123456789abcd_");
}

int main(void) {
        RUN(flags);
        RUN(eol);
        RUN(addresses);
        RUN(extension);
        RUN(expand_one_recipient);
        RUN(expand_recipients);
        RUN(expand_errors);
        RUN(settings);
        RUN(settings_user);
        RUN(environment);
        RUN(prefix);
        RUN(copy);
        RUN(delivered_to);
        RUN(result);
        RUN(long_text);
        RUN(sanitize);
        return 0;
}
