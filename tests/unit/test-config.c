/* test-config.c: main.cf syntax, expansion, typed values, errors with file and line. */
#include <fcntl.h>
#include <stdlib.h>
#include <syslog.h>
#include <unistd.h>

#include "tests.h"
#include "config.h"
#include "log.h"

static Config *parse(const char *text) {
        Config *c = NULL;
        ASSERT_OK(config_parse(text, "main.cf", &c));
        return c;
}

TEST(defaults) {
        _cleanup_(config_freep) Config *c = parse("");
        ASSERT_EQ(c->line_length_limit, 2048);
        ASSERT_EQ(c->smtpd_timeout, 300);
        ASSERT_EQ(c->message_size_limit, 10240000);
        ASSERT_TRUE(!isempty(c->myhostname));
        ASSERT_STREQ(c->myorigin, c->myhostname);
        ASSERT_TRUE(strstr(c->mydestination, c->myhostname) == c->mydestination);
        ASSERT_EQ(c->lines[CONFIG_PARAM_smtpd_timeout], 0);
}

TEST(syntax) {
        _cleanup_(config_freep) Config *c = parse(
                "# a comment\n"
                "myhostname = mail.example.org\n"
                "\n"
                "   # an indented comment does not continue anything\n"
                "mydestination = $myhostname,\n"
                "    localhost.${mydomain}\n"
                "\tlocalhost\n"
                "smtpd_timeout = 5m\n"
                "message_size_limit=2048   \n"
                "my_own = value\n"
                "smtpd_banner = $my_own ${my_own?set} ${undefined?x}${undefined:unset} $(mydomain)\n"
                "smtpd_timeout = 2h\n");

        ASSERT_STREQ(c->myhostname, "mail.example.org");
        ASSERT_STREQ(c->mydomain, "example.org");
        ASSERT_STREQ(c->mydestination, "mail.example.org, localhost.example.org localhost");
        ASSERT_EQ(c->smtpd_timeout, 7200);      /* the last definition wins */
        ASSERT_EQ(c->lines[CONFIG_PARAM_smtpd_timeout], 12);
        ASSERT_EQ(c->lines[CONFIG_PARAM_mydestination], 5);
        ASSERT_EQ(c->message_size_limit, 2048);
        ASSERT_STREQ(c->smtpd_banner, "value set unset example.org");
}

TEST(errors) {
        Config *c = NULL;

        ASSERT_ERR(config_parse("smtpd_timeout = soon\n", "main.cf", &c), EINVAL);
        ASSERT_ERR(config_parse("line_length_limit = 10\n", "main.cf", &c), ERANGE);
        ASSERT_ERR(config_parse("no equals sign\n", "main.cf", &c), EINVAL);
        ASSERT_ERR(config_parse("  leading continuation = 1\n", "main.cf", &c), EINVAL);
        ASSERT_ERR(config_parse("a = $b\nb = $a\nsmtpd_banner = $a\n", "main.cf", &c), ELOOP);
        ASSERT_ERR(config_parse("smtpd_banner = ${unclosed\n", "main.cf", &c), EINVAL);
        ASSERT_ERR(config_parse("smtpd_timeout = 99999999999999999999\n", "main.cf", &c), EINVAL);
        ASSERT_TRUE(c == NULL);
}

TEST(where) {
        _cleanup_(config_freep) Config *c = parse("\n\nsmtpd_timeout = 10\n");
        char buf[64];
        ASSERT_STREQ(config_where(c, CONFIG_PARAM_smtpd_timeout, buf, sizeof buf), "main.cf:3");
        ASSERT_STREQ(config_where(c, CONFIG_PARAM_max_idle, buf, sizeof buf), "default of max_idle");
}

TEST(time) {
        int64_t t;
        ASSERT_OK(config_parse_time("10", &t));
        ASSERT_EQ(t, 10);
        ASSERT_OK(config_parse_time("1w", &t));
        ASSERT_EQ(t, 604800);
        ASSERT_ERR(config_parse_time("1x", &t), EINVAL);
        ASSERT_ERR(config_parse_time("1ss", &t), EINVAL);
        ASSERT_ERR(config_parse_time("-1", &t), EINVAL);

        /* A value without a unit is in the unit of the parameter's default, as in Postfix. */
        Config *c = NULL;
        ASSERT_OK(config_parse("maximal_queue_lifetime = 2\ndelay_warning_time = 3\nminimal_backoff_time = 7\n"
                               "bounce_queue_lifetime = 90m\n", "main.cf", &c));
        ASSERT_EQ(c->maximal_queue_lifetime, 2 * 86400);
        ASSERT_EQ(c->delay_warning_time, 3 * 3600);
        ASSERT_EQ(c->minimal_backoff_time, 7);
        ASSERT_EQ(c->bounce_queue_lifetime, 90 * 60);
        config_free(c);
}

TEST(every_param_documented) {
        for (size_t i = 0; i < _CONFIG_PARAM_MAX; i++) {
                ASSERT_TRUE(!isempty(config_params[i].doc));
                ASSERT_TRUE(!isempty(config_params[i].roles));
                ASSERT_TRUE(config_param_find(config_params[i].name) == config_params + i);
        }
}

/* Postfix's 2bounce_notice_recipient is no C identifier: its field has another name, main.cf keeps Postfix's. */
TEST(spelling) {
        _cleanup_(config_freep) Config *c = parse("2bounce_notice_recipient = admin\n"
                                                  "bounce_notice_recipient = $2bounce_notice_recipient\n");
        ASSERT_TRUE(config_param_find("2bounce_notice_recipient") ==
                    config_params + CONFIG_PARAM_double_bounce_notice_recipient);
        ASSERT_TRUE(config_param_find("double_bounce_notice_recipient") == NULL);
        ASSERT_STREQ(c->double_bounce_notice_recipient, "admin");
        ASSERT_STREQ(c->bounce_notice_recipient, "admin");
        ASSERT_EQ(c->lines[CONFIG_PARAM_double_bounce_notice_recipient], 1);
        ASSERT_STREQ(config_params[CONFIG_PARAM_myhostname].name, "myhostname");
}

TEST(list) {
        _cleanup_strv_free_ char **l = NULL;
        ASSERT_OK(config_split_list(" a, b\tc,,d ", &l));
        ASSERT_STREQ(l[0], "a");
        ASSERT_STREQ(l[3], "d");
        ASSERT_TRUE(l[4] == NULL);
}

/* One service's view (config_for_service): main.cf, the service's built-in defaults, then its master.cf -o
 * options, as Postfix's -o gives them. */
TEST(service_overrides) {
        static const char *const builtin[] = { "smtpd_tls_security_level", "encrypt", "smtpd_sasl_auth_enable",
                                               "yes", NULL };
        char *sub[] = { "smtpd_banner=sub $smtpd_banner", "smtpd_tls_security_level=may",
                        "syslog_name=postfix/submission", NULL };
        char *smtps[] = { "smtpd_timeout=10s", NULL };
        char *bad[] = { "smtpd_timeout=soon", NULL };
        char *unexpandable[] = { "smtpd_client_restrictions=$mua_client_restrictions", NULL };
        Config *c, *s;

        ASSERT_OK(config_parse("smtpd_banner = main\n", "main.cf", &c));
        ASSERT_STREQ(c->smtpd_banner, "main");

        /* Built-in defaults first, the -o options after them; the rest as in main.cf. */
        ASSERT_OK(config_for_service(c, builtin, sub, "master.cf:3", &s));
        ASSERT_STREQ(s->smtpd_banner, "sub main");
        ASSERT_STREQ(s->smtpd_tls_security_level, "may");
        ASSERT_TRUE(s->smtpd_sasl_auth_enable);
        ASSERT_EQ(s->smtpd_timeout, c->smtpd_timeout);
        config_free(s);

        ASSERT_OK(config_for_service(c, NULL, smtps, "master.cf:4", &s));
        ASSERT_EQ(s->smtpd_timeout, 10);
        ASSERT_STREQ(s->smtpd_banner, "main");
        ASSERT_TRUE(!s->smtpd_sasl_auth_enable);
        config_free(s);

        ASSERT_OK(config_for_service(c, NULL, NULL, "master.cf:0", &s));
        ASSERT_STREQ(s->smtpd_banner, "main");
        config_free(s);

        /* A bad value, or a $name that is not a parameter postbus keeps, fails the service. */
        ASSERT_ERR(config_for_service(c, NULL, bad, "master.cf:5", &s), EINVAL);
        ASSERT_ERR(config_for_service(c, NULL, unexpandable, "master.cf:6", &s), EINVAL);
        config_free(c);

        /* A service's copy has its own copies of the kept lines (per-transport limits, restriction classes):
         * both are freed. A restriction class's list is kept only when smtpd_restriction_classes names it. */
        ASSERT_OK(config_parse("relay_destination_recipient_limit = 3\n"
                               "smtpd_restriction_classes = strict\n"
                               "strict = reject_unlisted_sender, $other\n"
                               "other = reject\n"
                               "lax = permit\n", "main.cf", &c));
        ASSERT_OK(config_for_service(c, NULL, NULL, "master.cf:0", &s));
        ASSERT_EQ(c->n_extras, 2U);
        ASSERT_EQ(s->n_extras, 2U);
        unsigned line = 0;
        ASSERT_STREQ(config_extra(s, "strict", &line), "reject_unlisted_sender, reject");
        ASSERT_EQ(line, 3U);
        ASSERT_TRUE(s->extras[1].value != c->extras[1].value);
        ASSERT_TRUE(config_extra(s, "lax", NULL) == NULL);
        ASSERT_TRUE(config_extra(s, "other", NULL) == NULL);
        config_free(s);
        config_free(c);
}

/* Parses text with stderr (where the log goes) captured at warning level; the log is returned in ret_log. */
static int parse_capture(const char *text, Config **ret, char **ret_log) {
        char path[] = "/tmp/test-config-log.XXXXXX", buf[4096];
        int fd = mkstemp(path), saved, r;
        ssize_t n;

        ASSERT_TRUE(fd >= 0);
        (void) unlink(path);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        ASSERT_TRUE(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
        log_set_max_level(LOG_WARNING);
        r = config_parse(text, "main.cf", ret);
        log_set_max_level(LOG_EMERG);
        fflush(stderr);
        ASSERT_TRUE(dup2(saved, STDERR_FILENO) >= 0);
        close(saved);
        n = pread(fd, buf, sizeof buf - 1, 0);
        ASSERT_TRUE(n >= 0);
        buf[n] = '\0';
        close(fd);
        *ret_log = strdup(buf);
        ASSERT_TRUE(*ret_log);
        return r;
}

/* Debian 12's main.cf after "Internet Site": every line is taken with Postfix's meaning, without a warning. */
TEST(debian_main_cf) {
        char mailname[] = "/tmp/test-config-mailname.XXXXXX";
        _cleanup_free_ char *text = NULL, *log = NULL;
        _cleanup_strv_free_ char **dest = NULL;
        Config *c = NULL;
        int fd = mkstemp(mailname);

        ASSERT_TRUE(fd >= 0);
        ASSERT_TRUE(write(fd, "mail.example.org\nsecond line\n", 30) == 30);
        close(fd);
        ASSERT_TRUE(asprintf(&text,
                "smtpd_banner = $myhostname ESMTP $mail_name (Debian/GNU)\n"
                "biff = no\n"
                "append_dot_mydomain = no\n"
                "readme_directory = no\n"
                "compatibility_level = 3.6\n"
                "smtpd_tls_cert_file=/etc/ssl/certs/ssl-cert-snakeoil.pem\n"
                "smtpd_tls_key_file=/etc/ssl/private/ssl-cert-snakeoil.key\n"
                "smtpd_tls_security_level=may\n"
                "smtp_tls_CApath=/etc/ssl/certs\n"
                "smtp_tls_security_level=may\n"
                "smtp_tls_session_cache_database = btree:${data_directory}/smtp_scache\n"
                "smtpd_relay_restrictions = permit_mynetworks permit_sasl_authenticated defer_unauth_destination\n"
                "myhostname = debian\n"
                "alias_maps = hash:/etc/aliases\n"
                "alias_database = hash:/etc/aliases\n"
                "myorigin = %s\n"
                "mydestination = $myhostname, debian, localhost.localdomain, , localhost\n"
                "relayhost =\n"
                "mynetworks = 127.0.0.0/8 [::ffff:127.0.0.0]/104 [::1]/128\n"
                "mailbox_size_limit = 0\n"
                "recipient_delimiter = +\n"
                "inet_interfaces = all\n"
                "inet_protocols = all\n", mailname) > 0);

        ASSERT_OK(parse_capture(text, &c, &log));
        ASSERT_STREQ(log, "");
        ASSERT_STREQ(c->smtpd_banner, "debian ESMTP postbus (Debian/GNU)");
        ASSERT_STREQ(c->myorigin, "mail.example.org");
        ASSERT_STREQ(c->smtp_tls_session_cache_database, "btree:/var/lib/postbus/smtp_scache");
        ASSERT_EQ(c->mailbox_size_limit, 0);
        ASSERT_TRUE(!c->biff);
        ASSERT_STREQ(c->alias_database, "hash:/etc/aliases");
        ASSERT_STREQ(c->inet_interfaces, "all");
        ASSERT_OK(config_split_list(c->mydestination, &dest));
        ASSERT_STREQ(dest[0], "debian");
        ASSERT_STREQ(dest[2], "localhost.localdomain");
        ASSERT_STREQ(dest[3], "localhost");
        ASSERT_TRUE(dest[4] == NULL);
        /* Postfix's defaults for the two that Debian leaves out. */
        ASSERT_TRUE(!c->smtpd_helo_required);
        ASSERT_TRUE(c->smtputf8_enable);
        c = config_free(c);
        log = mfree(log);

        /* biff = yes is taken, with a warning that no comsat notice is sent. */
        ASSERT_OK(parse_capture("biff = yes\nsmtpd_helo_required = yes\nsmtputf8_enable = no\n"
                                "mailbox_command = procmail -a \"$EXTENSION\" ${home}\n", &c, &log));
        ASSERT_TRUE(strstr(log, "biff = yes") != NULL);
        /* Debian's procmail line: mailbox_command keeps its $names for the shell, as in Postfix. */
        ASSERT_STREQ(c->mailbox_command, "procmail -a \"$EXTENSION\" ${home}");
        ASSERT_TRUE(c->smtpd_helo_required && !c->smtputf8_enable);
        c = config_free(c);
        log = mfree(log);

        /* Postfix's smtp client parameters are not smtpd's "smtp" service: smtp_line_length_limit is the
         * client's, line_length_limit stays as it was, and smtp_banner is a name postbus does not use (a
         * warning, never an override of smtpd_banner or banner). */
        ASSERT_OK(parse_capture("smtp_line_length_limit = 990\nsmtp_banner = not smtpd's\n", &c, &log));
        ASSERT_TRUE(strstr(log, "unknown parameter \"smtp_banner\"") != NULL);
        ASSERT_EQ(c->smtp_line_length_limit, 990);
        ASSERT_EQ(c->line_length_limit, 2048);
        ASSERT_TRUE(strstr(c->smtpd_banner, "not smtpd") == NULL);
        c = config_free(c);
        log = mfree(log);

        /* What set-up guides add for submission with Dovecot: taken without a warning. */
        ASSERT_OK(parse_capture("smtpd_sasl_auth_enable = yes\nsmtpd_sasl_type = dovecot\n"
                                "smtpd_sasl_security_options = noanonymous\nbroken_sasl_auth_clients = yes\n"
                                "smtpd_tls_auth_only = yes\nhome_mailbox = Maildir/\n", &c, &log));
        ASSERT_STREQ(log, "");
        ASSERT_TRUE(c->broken_sasl_auth_clients && c->smtpd_tls_auth_only);
        c = config_free(c);
        log = mfree(log);
        /* What postbus cannot do is said. */
        ASSERT_OK(parse_capture("smtpd_tls_auth_only = no\nsmtpd_sasl_security_options = noanonymous, noplaintext\n",
                                &c, &log));
        ASSERT_TRUE(strstr(log, "smtpd_tls_auth_only = no") != NULL);
        ASSERT_TRUE(strstr(log, "noplaintext") != NULL);
        c = config_free(c);
        log = mfree(log);

        /* A myorigin file that is missing or empty is an error, as in Postfix. */
        ASSERT_TRUE(truncate(mailname, 0) == 0);
        free(text);
        ASSERT_TRUE(asprintf(&text, "myorigin = %s\n", mailname) > 0);
        ASSERT_ERR(config_parse(text, "main.cf", &c), EINVAL);
        (void) unlink(mailname);
        ASSERT_ERR(config_parse(text, "main.cf", &c), ENOENT);
        /* A value that only starts with a letter is a domain, as before. */
        ASSERT_OK(config_parse("myorigin = example.net\n", "main.cf", &c));
        ASSERT_STREQ(c->myorigin, "example.net");
        config_free(c);
}

/* A reload keeps the old configuration for whoever still holds a reference: the last config_free() frees it. */
TEST(refcount) {
        Config *c = parse("myhostname = old.example.org\n");
        Config *held = NULL;
        ASSERT_EQ(c->n_ref, 1U);
        held = config_ref(c);
        ASSERT_TRUE(held == c);
        ASSERT_EQ(c->n_ref, 2U);
        ASSERT_TRUE(config_free(c) == NULL);    /* the daemon's reference goes */
        ASSERT_EQ(held->n_ref, 1U);
        ASSERT_STREQ(held->myhostname, "old.example.org");     /* still readable by the session */
        ASSERT_TRUE(config_ref(NULL) == NULL);

        Config *s = NULL;
        ASSERT_OK(config_for_service(held, NULL, NULL, "master.cf:1", &s));
        ASSERT_EQ(s->n_ref, 1U);                /* a service's copy has references of its own */
        ASSERT_EQ(held->n_ref, 1U);
        config_free(s);
        config_free(held);
}

int main(void) {
        log_set_max_level(LOG_EMERG);   /* the error tests are noisy by design */
        RUN(defaults);
        RUN(syntax);
        RUN(errors);
        RUN(where);
        RUN(time);
        RUN(every_param_documented);
        RUN(spelling);
        RUN(list);
        RUN(service_overrides);
        RUN(debian_main_cf);
        RUN(refcount);
        return 0;
}
