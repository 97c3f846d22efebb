/* test-receive-override.c: receive_override_options: its option names, their text for cleanup, and a bad
 * name as a configuration error with the line that set it. */
#include <errno.h>

#include "config.h"
#include "log.h"
#include "receive-override.h"
#include "tests.h"

TEST(parse) {
        unsigned mask = 0;
        char *bad = NULL;

        ASSERT_OK(receive_override_parse("", &mask, &bad));
        ASSERT_EQ(mask, 0);
        ASSERT_OK(receive_override_parse(NULL, &mask, &bad));
        ASSERT_EQ(mask, 0);
        /* Postfix's FILTER_README line for the re-injection smtpd: commas, white space, both. */
        ASSERT_OK(receive_override_parse("no_unknown_recipient_checks,no_header_body_checks, no_milters\n"
                                         "\tno_address_mappings", &mask, &bad));
        ASSERT_EQ(mask, RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS | RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS |
                                RECEIVE_OVERRIDE_NO_MILTERS | RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS);
        ASSERT_TRUE(!bad);
        ASSERT_OK(receive_override_parse(" , no_address_mappings ,, ", &mask, &bad));
        ASSERT_EQ(mask, RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS);

        /* A name that is no option, also one in another case (Postfix's names are lower case), fails, naming it. */
        mask = 42;
        ASSERT_ERR(receive_override_parse("no_milters, no_body_checks no_address_mappings", &mask, &bad), EINVAL);
        ASSERT_STREQ(bad, "no_body_checks");
        ASSERT_EQ(mask, 42);
        free(bad);
        ASSERT_ERR(receive_override_parse("No_Milters", &mask, &bad), EINVAL);
        ASSERT_STREQ(bad, "No_Milters");
        free(bad);
        ASSERT_ERR(receive_override_parse("no_milters=yes", &mask, &bad), EINVAL);
        free(bad);
}

TEST(format) {
        char text[RECEIVE_OVERRIDE_TEXT_MAX];
        unsigned all = RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS | RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS |
                       RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS | RECEIVE_OVERRIDE_NO_MILTERS, mask;
        char *bad;

        ASSERT_STREQ(receive_override_format(0, text), "");
        ASSERT_STREQ(receive_override_format(RECEIVE_OVERRIDE_CLEANUP, text),
                     "no_address_mappings,no_header_body_checks");
        /* What a submitter formats, cleanup parses back. */
        ASSERT_OK(receive_override_parse(receive_override_format(all, text), &mask, &bad));
        ASSERT_EQ(mask, all);
        ASSERT_TRUE(RECEIVE_OVERRIDE_CLEANUP & RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS);
        ASSERT_TRUE(!(RECEIVE_OVERRIDE_CLEANUP & (RECEIVE_OVERRIDE_NO_MILTERS |
                                                  RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS)));
}

/* receive_override_from_config() with stderr (the log) captured: its return, and the log in ret_log. */
static int from_config_capture(const Config *c, const char *where, unsigned *mask, char **ret_log) {
        char path[] = "/tmp/test-receive-override-log.XXXXXX", buf[4096];
        int fd = mkstemp(path), saved, r;
        ssize_t n;

        ASSERT_TRUE(fd >= 0);
        (void) unlink(path);
        fflush(stderr);
        saved = dup(STDERR_FILENO);
        ASSERT_TRUE(saved >= 0 && dup2(fd, STDERR_FILENO) >= 0);
        log_set_max_level(LOG_WARNING);
        r = receive_override_from_config(c, where, mask);
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

TEST(from_config) {
        char *sub[] = { "receive_override_options=no_milters,no_unknown_recipient_checks", NULL };
        char *log = NULL, where[64];
        unsigned mask = 0;
        Config *c, *s;

        ASSERT_OK(config_parse("myhostname = mx.example\n\nreceive_override_options = no_address_mappings\n",
                               "main.cf", &c));
        ASSERT_OK(from_config_capture(c, "main.cf:3", &mask, &log));
        ASSERT_EQ(mask, RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS);
        ASSERT_STREQ(log, "");
        free(log);
        /* A service's -o replaces the main.cf value. */
        ASSERT_OK(config_for_service(c, NULL, sub, "master.cf:7", &s));
        ASSERT_OK(from_config_capture(s, "master.cf:7", &mask, &log));
        ASSERT_EQ(mask, RECEIVE_OVERRIDE_NO_MILTERS | RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS);
        free(log);
        config_free(s);
        config_free(c);

        /* An unknown option stops the role, with the line that set it and the word. */
        ASSERT_OK(config_parse("myhostname = mx.example\nreceive_override_options = no_milters, no_checks\n",
                               "main.cf", &c));
        mask = 42;
        ASSERT_ERR(from_config_capture(c, config_where(c, CONFIG_PARAM_receive_override_options, where,
                                                       sizeof where), &mask, &log), EINVAL);
        ASSERT_EQ(mask, 42);
        ASSERT_TRUE(strstr(log, "main.cf:2: receive_override_options: unknown option \"no_checks\""));
        free(log);
        config_free(c);
}

/* config_set(): a service's own value, as a built-in default is set. */
TEST(config_set) {
        Config *c, *s;

        ASSERT_OK(config_parse("local_recipient_maps = hash:/etc/aliases\nsmtpd_timeout = 60s\n", "main.cf", &c));
        ASSERT_OK(config_for_service(c, NULL, NULL, "master.cf:1", &s));
        ASSERT_OK(config_set(s, CONFIG_PARAM_local_recipient_maps, ""));
        ASSERT_STREQ(s->local_recipient_maps, "");
        ASSERT_EQ(s->lines[CONFIG_PARAM_local_recipient_maps], 0);
        ASSERT_STREQ(c->local_recipient_maps, "hash:/etc/aliases");
        ASSERT_OK(config_set(s, CONFIG_PARAM_smtpd_timeout, "10s"));
        ASSERT_EQ(s->smtpd_timeout, 10);
        ASSERT_ERR(config_set(s, CONFIG_PARAM_smtpd_timeout, "soon"), EINVAL);
        ASSERT_EQ(s->smtpd_timeout, 10);
        config_free(s);
        config_free(c);
}

int main(void) {
        log_set_max_level(LOG_EMERG);
        RUN(parse);
        RUN(format);
        RUN(from_config);
        RUN(config_set);
        return 0;
}
