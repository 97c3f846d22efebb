/* test-master-cf: master.cf parsing: columns, continuation lines, -o overrides, pipe argv, errors. */
#undef NDEBUG
#include "config.h"
#include "master-cf.h"
#include "tests.h"

static void test_debian_lines(void) {
        _cleanup_(master_config_freep) MasterConfig *m = NULL;
        const MasterService *s;
        _cleanup_free_ char *argv = NULL;

        ASSERT_OK(master_config_parse(
                "# comment\n"
                "smtp      inet  n       -       y       -       -       smtpd\n"
                "pickup    unix  n       -       y       60      1       pickup\n"
                "relay     unix  -       -       y       -       -       smtp\n"
                "        -o syslog_name=postfix/$service_name\n"
                "\n"
                "retry     unix  -       -       y       -       -       error\n"
                "dovecot   unix  -       n       n       -       -       pipe\n"
                "  flags=DRhu user=vmail:vmail argv=/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}\n"
                "slow      unix  -       n       n       -       1       pipe flags=R user=nobody argv=/bin/cat\n"
                "submission inet n       -       y       -       -       smtpd -o { smtpd_tls_security_level = encrypt }\n",
                "master.cf", &m));
        ASSERT_EQ(m->n_services, 7U);

        ASSERT_TRUE(master_config_transport(m, "smtp") == NULL);        /* an inet smtpd, not a transport */
        s = master_config_transport(m, "relay");
        ASSERT_TRUE(s);
        ASSERT_EQ(s->kind, MASTER_COMMAND_SMTP);
        ASSERT_STREQ(s->overrides[0], "syslog_name=postfix/$service_name");
        ASSERT_TRUE(s->overrides[1] == NULL);
        ASSERT_EQ(s->line, 4U);

        s = master_config_transport(m, "retry");
        ASSERT_EQ(s->kind, MASTER_COMMAND_RETRY);

        s = master_config_transport(m, "dovecot");
        ASSERT_EQ(s->kind, MASTER_COMMAND_PIPE);
        ASSERT_STREQ(master_service_arg(s, "flags"), "DRhu");
        ASSERT_STREQ(master_service_arg(s, "user"), "vmail:vmail");
        ASSERT_TRUE(master_service_arg(s, "f") == NULL);
        ASSERT_OK(master_service_argv(s, &argv));
        ASSERT_STREQ(argv, "/usr/lib/dovecot/deliver -f ${sender} -d ${recipient}");
        ASSERT_EQ(s->maxproc, -1);

        s = master_config_transport(m, "slow");
        ASSERT_EQ(s->maxproc, 1);

        ASSERT_STREQ(m->services[6].overrides[0], "smtpd_tls_security_level=encrypt");
}

static void test_errors(void) {
        MasterConfig *m = NULL;

        ASSERT_ERR(master_config_parse("local unix - n n - - \n", "m", &m), EINVAL);       /* 7 columns */
        ASSERT_ERR(master_config_parse("local unixx - n n - - local\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("local unix - n n - x local\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("local unix - q n - - local\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("  -o a=b\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - pipe flags=R user=a\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - pipe argv=relative\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - smtp -o\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - smtp -o novalue\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - smtp\nx unix - n n - - lmtp\n", "m", &m), EINVAL);
        ASSERT_ERR(master_config_parse("x unix - n n - - smtp -o { a=b\n", "m", &m), EINVAL);
        ASSERT_TRUE(m == NULL);

        /* an unknown command is a warning, not a transport */
        ASSERT_OK(master_config_parse("x unix - n n - - frobnicate\n", "m", &m));
        ASSERT_TRUE(master_config_transport(m, "x") == NULL);
        master_config_free(m);
}

static void test_builtin(void) {
        _cleanup_(master_config_freep) MasterConfig *m = NULL;

        ASSERT_OK(master_config_load("/nonexistent/master.cf", &m));
        ASSERT_EQ(master_config_transport(m, "local")->kind, MASTER_COMMAND_LOCAL);
        ASSERT_EQ(master_config_transport(m, "smtp")->kind, MASTER_COMMAND_SMTP);
        ASSERT_EQ(master_config_transport(m, "relay")->kind, MASTER_COMMAND_SMTP);
        ASSERT_EQ(master_config_transport(m, "lmtp")->kind, MASTER_COMMAND_LMTP);
        ASSERT_EQ(master_config_transport(m, "error")->kind, MASTER_COMMAND_ERROR);
        ASSERT_EQ(master_config_transport(m, "retry")->kind, MASTER_COMMAND_RETRY);
        ASSERT_EQ(master_config_transport(m, "discard")->kind, MASTER_COMMAND_DISCARD);
}

static void test_transport_params(void) {
        _cleanup_(config_freep) Config *c = NULL;
        Config *bad = NULL;
        int64_t v;

        ASSERT_OK(config_parse("dovecot_destination_recipient_limit = 1\n"
                               "default_destination_concurrency_limit = 7\n"
                               "slow_destination_rate_delay = 2m\n",
                               "main.cf", &c));
        ASSERT_OK(config_transport_int(c, "dovecot", "destination_recipient_limit",
                                       CONFIG_PARAM_default_destination_recipient_limit, &v));
        ASSERT_EQ(v, 1);
        ASSERT_OK(config_transport_int(c, "smtp", "destination_recipient_limit",
                                       CONFIG_PARAM_default_destination_recipient_limit, &v));
        ASSERT_EQ(v, 50);
        ASSERT_OK(config_transport_int(c, "smtp", "destination_concurrency_limit",
                                       CONFIG_PARAM_default_destination_concurrency_limit, &v));
        ASSERT_EQ(v, 7);
        ASSERT_OK(config_transport_int(c, "local", "destination_concurrency_limit",
                                       CONFIG_PARAM_default_destination_concurrency_limit, &v));
        ASSERT_EQ(v, 2);        /* a declared parameter of its own */
        ASSERT_OK(config_transport_int(c, "slow", "destination_rate_delay",
                                       CONFIG_PARAM_default_destination_rate_delay, &v));
        ASSERT_EQ(v, 120);

        ASSERT_OK(config_parse("x_destination_recipient_limit = many\n", "main.cf", &bad));
        ASSERT_ERR(config_transport_int(bad, "x", "destination_recipient_limit",
                                        CONFIG_PARAM_default_destination_recipient_limit, &v), EINVAL);
        config_free(bad);
}

/* inet smtpd lines as systemd listens for them (master_service_smtpd_socket). */
static void test_smtpd_sockets(void) {
        MasterConfig *m;
        char name[MASTER_SOCKET_NAME_MAX], listen[MASTER_LISTEN_MAX];

        ASSERT_OK(master_config_parse("smtp inet n - n - - smtpd\n"
                                      "127.0.0.1:submission inet n - n - - smtpd\n"
                                      "[::1]:465 inet n - n - - smtpd\n"
                                      "127.0.0.1:10025 inet n - n - - smtpd -o content_filter=\n"
                                      "2525 inet n - n - - smtpd\n"
                                      "127.0.0.1:nosuchservice inet n - n - - smtpd\n"
                                      "local unix - n n - - local\n"
                                      "relay inet n - n - - smtp\n", "master.cf", &m));
        ASSERT_EQ(m->n_services, 8);
        ASSERT_OK(master_service_smtpd_socket(m->services + 0, name, listen));
        ASSERT_STREQ(name, "smtp");
        ASSERT_STREQ(listen, "");
        ASSERT_OK(master_service_smtpd_socket(m->services + 1, name, listen));
        ASSERT_STREQ(name, "submission");
        ASSERT_STREQ(listen, "127.0.0.1:587");
        ASSERT_OK(master_service_smtpd_socket(m->services + 2, name, listen));
        ASSERT_STREQ(name, "smtps");
        ASSERT_STREQ(listen, "[::1]:465");
        ASSERT_OK(master_service_smtpd_socket(m->services + 3, name, listen));
        ASSERT_STREQ(name, "smtpd-127.0.0.1_10025");
        ASSERT_STREQ(listen, "127.0.0.1:10025");
        ASSERT_OK(master_service_smtpd_socket(m->services + 4, name, listen));
        ASSERT_STREQ(name, "smtpd-2525");
        ASSERT_STREQ(listen, "2525");
        ASSERT_ERR(master_service_smtpd_socket(m->services + 5, name, listen), EINVAL);
        ASSERT_ERR(master_service_smtpd_socket(m->services + 6, name, listen), ENOENT);
        ASSERT_ERR(master_service_smtpd_socket(m->services + 7, name, listen), ENOENT);
        master_config_free(m);
}

int main(void) {
        test_smtpd_sockets();
        test_debian_lines();
        test_errors();
        test_builtin();
        test_transport_params();
        return 0;
}
