/* test-smtpd-restrictions.c: restriction lists parsed, access(5) results parsed, lookup keys, HELO and
 * address checks, and whole evaluations against real GDBM tables built in a temporary directory. */
#include <arpa/inet.h>
#include <sys/stat.h>

#include "../../src/smtpd/smtpd-restrictions.h"
#include "config.h"
#include "log.h"
#include "tests.h"

static SmtpdAddress addr(const char *text) {
        SmtpdAddress a = {};

        a.family = strchr(text, ':') ? AF_INET6 : AF_INET;
        ASSERT_TRUE(inet_pton(a.family, text, a.bytes) == 1);
        strcpy(a.text, text);
        return a;
}

static void assert_strv(char **l, const char *const *want) {
        size_t i = 0;

        for (; want[i]; i++)
                ASSERT_STREQ(l[i], want[i]);
        ASSERT_TRUE(l[i] == NULL);
}

TEST(list_parse) {
        SmtpdRestrictionList l;

        ASSERT_OK(smtpd_restriction_list_parse(
                "permit_mynetworks,\tcheck_client_access gdbm:/etc/postbus/access, reject_rbl_client zen.test "
                "REJECT_UNAUTH_DESTINATION reject_non_fqdn_hostname",
                "smtpd_client_restrictions", "main.cf:3", NULL, &l));
        ASSERT_EQ(l.n, 5);
        ASSERT_EQ(l.items[0].type, SMTPD_RESTRICTION_PERMIT_MYNETWORKS);
        ASSERT_TRUE(l.items[0].arg == NULL);
        ASSERT_EQ(l.items[1].type, SMTPD_RESTRICTION_CHECK_CLIENT_ACCESS);
        ASSERT_STREQ(l.items[1].arg, "gdbm:/etc/postbus/access");
        ASSERT_EQ(l.items[2].type, SMTPD_RESTRICTION_REJECT_RBL_CLIENT);
        ASSERT_STREQ(l.items[2].arg, "zen.test");
        ASSERT_EQ(l.items[3].type, SMTPD_RESTRICTION_REJECT_UNAUTH_DESTINATION);
        ASSERT_EQ(l.items[4].type, SMTPD_RESTRICTION_REJECT_NON_FQDN_HELO_HOSTNAME);
        ASSERT_TRUE(smtpd_restriction_list_has(&l, SMTPD_RESTRICTION_REJECT_RBL_CLIENT));
        ASSERT_TRUE(!smtpd_restriction_list_has(&l, SMTPD_RESTRICTION_REJECT));
        smtpd_restriction_list_done(&l);

        ASSERT_OK(smtpd_restriction_list_parse("", "p", "default", NULL, &l));
        ASSERT_EQ(l.n, 0);
        smtpd_restriction_list_done(&l);

        ASSERT_ERR(smtpd_restriction_list_parse("permit_mynetworks reject_everything", "p", "main.cf:1", NULL, &l),
                   EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("check_sender_access", "p", "main.cf:1", NULL, &l), EINVAL);
        /* a restriction name is no table */
        ASSERT_ERR(smtpd_restriction_list_parse("check_sender_access reject", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rbl_client", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("sleep", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_OK(smtpd_restriction_list_parse("sleep 1, permit_dnswl_client wl.test=127.0.0.2, permit_rhswl_client wl.test",
                                               "p", "main.cf:1", NULL, &l));
        ASSERT_EQ(l.n, (size_t) 3);
        ASSERT_EQ(l.items[0].type, SMTPD_RESTRICTION_SLEEP);
        ASSERT_STREQ(l.items[0].arg, "1");
        ASSERT_EQ(l.items[1].type, SMTPD_RESTRICTION_PERMIT_DNSWL_CLIENT);
        ASSERT_STREQ(l.items[1].arg, "wl.test");
        ASSERT_TRUE(l.items[1].filter != NULL);
        ASSERT_EQ(l.items[2].type, SMTPD_RESTRICTION_PERMIT_RHSWL_CLIENT);
        ASSERT_TRUE(l.items[2].filter == NULL);
        smtpd_restriction_list_done(&l);
        ASSERT_OK(smtpd_restriction_list_parse("reject_rbl_client zen.test=127.0.0.[2..11]", "p", "main.cf:1", NULL, &l));
        ASSERT_EQ(l.n, 1);
        ASSERT_STREQ(l.items[0].arg, "zen.test");
        ASSERT_TRUE(l.items[0].filter);
        smtpd_restriction_list_done(&l);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rbl_client zen.test=127.0.0.x", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rbl_client =127.0.0.2", "p", "main.cf:1", NULL, &l), EINVAL);
        /* the right-hand side lists take the same argument */
        ASSERT_OK(smtpd_restriction_list_parse("reject_rhsbl_sender dbl.test=127.0.1.[2..99], reject_rhsbl_helo h.test",
                                               "p", "main.cf:1", NULL, &l));
        ASSERT_EQ(l.n, 2);
        ASSERT_EQ(l.items[0].type, SMTPD_RESTRICTION_REJECT_RHSBL_SENDER);
        ASSERT_STREQ(l.items[0].arg, "dbl.test");
        ASSERT_TRUE(l.items[0].filter);
        ASSERT_EQ(l.items[1].type, SMTPD_RESTRICTION_REJECT_RHSBL_HELO);
        ASSERT_TRUE(!l.items[1].filter);
        smtpd_restriction_list_done(&l);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rhsbl_client", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rhsbl_recipient reject", "p", "main.cf:1", NULL, &l), EINVAL);
        ASSERT_ERR(smtpd_restriction_list_parse("reject_rhsbl_reverse_client d.test=1.2.3", "p", "main.cf:1", NULL, &l),
                   EINVAL);
        /* Postfix's old name */
        ASSERT_OK(smtpd_restriction_list_parse("reject_unknown_hostname", "p", "main.cf:1", NULL, &l));
        ASSERT_EQ(l.items[0].type, SMTPD_RESTRICTION_REJECT_UNKNOWN_HELO_HOSTNAME);
        smtpd_restriction_list_done(&l);
        /* smtpd_restriction_classes: a class's name is a restriction, any case; unknown without the class */
        char *classes[] = { (char *) "strict", (char *) "Relaxed", NULL };
        ASSERT_OK(smtpd_restriction_list_parse("warn_if_reject STRICT, relaxed defer_if_permit", "p", "main.cf:1",
                                               classes, &l));
        ASSERT_EQ(l.n, 4);
        ASSERT_EQ(l.items[0].type, SMTPD_RESTRICTION_WARN_IF_REJECT);
        ASSERT_EQ(l.items[1].type, SMTPD_RESTRICTION_CLASS_NAME);
        ASSERT_EQ(l.items[1].class_index, 0);
        ASSERT_STREQ(l.items[1].arg, "strict");
        ASSERT_EQ(l.items[2].class_index, 1);
        ASSERT_EQ(l.items[3].type, SMTPD_RESTRICTION_DEFER_IF_PERMIT);
        smtpd_restriction_list_done(&l);
        ASSERT_ERR(smtpd_restriction_list_parse("strict", "p", "main.cf:1", NULL, &l), EINVAL);
}

TEST(access_result) {
        SmtpdAccessResult a;

        ASSERT_OK(smtpd_access_result_parse("OK", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_PERMIT);
        ASSERT_OK(smtpd_access_result_parse("permit", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_PERMIT);
        ASSERT_OK(smtpd_access_result_parse("1234", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_PERMIT);
        ASSERT_OK(smtpd_access_result_parse("DUNNO", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_DUNNO);

        ASSERT_OK(smtpd_access_result_parse("REJECT", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_REJECT);
        ASSERT_EQ(a.code, 554);
        ASSERT_STREQ(a.dsn, "5.7.1");
        ASSERT_STREQ(a.text, "Access denied");
        ASSERT_OK(smtpd_access_result_parse("reject  go away\tnow", &a));
        ASSERT_STREQ(a.text, "go away now");
        ASSERT_OK(smtpd_access_result_parse("DEFER busy", &a));
        ASSERT_EQ(a.code, 450);
        ASSERT_STREQ(a.dsn, "4.7.1");
        ASSERT_STREQ(a.text, "busy");

        ASSERT_OK(smtpd_access_result_parse("550 5.7.0 no spam here", &a));
        ASSERT_EQ(a.code, 550);
        ASSERT_STREQ(a.dsn, "5.7.0");
        ASSERT_STREQ(a.text, "no spam here");
        ASSERT_OK(smtpd_access_result_parse("421 come back later", &a));
        ASSERT_EQ(a.code, 421);
        ASSERT_STREQ(a.dsn, "4.7.1");
        ASSERT_STREQ(a.text, "come back later");
        ASSERT_OK(smtpd_access_result_parse("553 5.1.8", &a));
        ASSERT_STREQ(a.dsn, "5.1.8");
        ASSERT_STREQ(a.text, "Access denied");

        /* all digits, even a reply code alone, is OK (Postfix's compatibility rule) */
        ASSERT_OK(smtpd_access_result_parse("550", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_PERMIT);
        ASSERT_ERR(smtpd_access_result_parse("650 nope", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("550 4.7.1 class mismatch", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("EXPLODE", &a), EOPNOTSUPP);

        /* the message-wide actions, with their arguments */
        ASSERT_OK(smtpd_access_result_parse("HOLD", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_HOLD);
        ASSERT_STREQ(a.text, "");
        ASSERT_OK(smtpd_access_result_parse("hold  for review  ", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_HOLD);
        ASSERT_STREQ(a.text, "for review");
        ASSERT_OK(smtpd_access_result_parse("DISCARD spam", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_DISCARD);
        ASSERT_STREQ(a.text, "spam");
        ASSERT_OK(smtpd_access_result_parse("FILTER smtp:[127.0.0.1]:10025", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_FILTER);
        ASSERT_STREQ(a.text, "smtp:[127.0.0.1]:10025");
        ASSERT_ERR(smtpd_access_result_parse("FILTER nocolon", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("FILTER :nexthop", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("FILTER smtp:a b", &a), EINVAL);
        ASSERT_OK(smtpd_access_result_parse("REDIRECT abuse@example.org", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_REDIRECT);
        ASSERT_STREQ(a.text, "abuse@example.org");
        ASSERT_ERR(smtpd_access_result_parse("REDIRECT", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("REDIRECT not an address", &a), EINVAL);
        ASSERT_OK(smtpd_access_result_parse("PREPEND X-Checked: yes, by table", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_PREPEND);
        ASSERT_STREQ(a.text, "X-Checked: yes, by table");
        ASSERT_ERR(smtpd_access_result_parse("PREPEND no header", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("PREPEND : x", &a), EINVAL);
        ASSERT_OK(smtpd_access_result_parse("WARN look at this", &a));
        ASSERT_EQ(a.action, SMTPD_ACCESS_WARN);
        ASSERT_STREQ(a.text, "look at this");
        ASSERT_OK(smtpd_access_result_parse("filter amavis:", &a));
        ASSERT_STREQ(a.text, "amavis:");
        ASSERT_ERR(smtpd_access_result_parse("FILTER", &a), EINVAL);
        ASSERT_ERR(smtpd_access_result_parse("", &a), EINVAL);
        /* control characters from a table never reach a reply */
        ASSERT_OK(smtpd_access_result_parse("REJECT a\rb", &a));
        ASSERT_STREQ(a.text, "a?b");
}

TEST(keys) {
        char **l = NULL;
        SmtpdAddress v4 = addr("192.0.2.1"), v6 = addr("2001:db8:1:2::5");

        ASSERT_OK(smtpd_access_client_keys(&v4, &l));
        assert_strv(l, (const char *const[]) { "192.0.2.1", "192.0.2", "192.0", "192", NULL });
        l = strv_free(l);
        ASSERT_OK(smtpd_access_client_keys(&v6, &l));
        assert_strv(l, (const char *const[]) { "2001:db8:1:2::5", "2001:db8:1:2:", "2001:db8:1:2", "2001:db8:1",
                                               "2001:db8", "2001", NULL });
        l = strv_free(l);

        ASSERT_OK(smtpd_access_domain_keys("Mail.Sub.Example.ORG.", &l));
        assert_strv(l, (const char *const[]) { "mail.sub.example.org", "sub.example.org", "example.org", "org",
                                               NULL });
        l = strv_free(l);
        ASSERT_OK(smtpd_access_domain_keys("[192.0.2.1]", &l));
        assert_strv(l, (const char *const[]) { "[192.0.2.1]", NULL });
        l = strv_free(l);

        ASSERT_OK(smtpd_access_address_keys("Joe@Sub.Example.org", &l));
        assert_strv(l, (const char *const[]) { "joe@sub.example.org", "sub.example.org", "example.org", "org",
                                               "joe@", NULL });
        l = strv_free(l);
        ASSERT_OK(smtpd_access_address_keys("postmaster", &l));
        assert_strv(l, (const char *const[]) { "postmaster", "postmaster@", NULL });
        l = strv_free(l);
        ASSERT_OK(smtpd_access_address_keys("", &l));
        assert_strv(l, (const char *const[]) { "<>", NULL });
        l = strv_free(l);
}

TEST(names) {
        ASSERT_TRUE(smtpd_helo_valid("mail.example.org"));
        ASSERT_TRUE(smtpd_helo_valid("localhost"));
        ASSERT_TRUE(smtpd_helo_valid("a-b.example"));
        ASSERT_TRUE(smtpd_helo_valid("[192.0.2.1]"));
        ASSERT_TRUE(smtpd_helo_valid("[IPv6:2001:db8::1]"));
        ASSERT_TRUE(!smtpd_helo_valid("bad_name.example"));
        ASSERT_TRUE(!smtpd_helo_valid("-a.example"));
        ASSERT_TRUE(!smtpd_helo_valid("a-.example"));
        ASSERT_TRUE(!smtpd_helo_valid("a..example"));
        ASSERT_TRUE(!smtpd_helo_valid("192.0.2.1"));
        ASSERT_TRUE(!smtpd_helo_valid("[192.0.2.300]"));
        ASSERT_TRUE(!smtpd_helo_valid("[192.0.2.1"));
        ASSERT_TRUE(!smtpd_helo_valid("exa mple"));

        ASSERT_TRUE(smtpd_helo_fqdn("mail.example.org"));
        ASSERT_TRUE(smtpd_helo_fqdn("[192.0.2.1]"));
        ASSERT_TRUE(!smtpd_helo_fqdn("localhost"));
        ASSERT_TRUE(!smtpd_helo_fqdn("bad_name.example"));

        ASSERT_TRUE(smtpd_address_fqdn("a@example.org"));
        ASSERT_TRUE(smtpd_address_fqdn("a@[192.0.2.1]"));
        ASSERT_TRUE(!smtpd_address_fqdn("a@localhost"));
        ASSERT_TRUE(!smtpd_address_fqdn("a"));
        ASSERT_TRUE(!smtpd_address_fqdn("a@"));
}

/* Evaluation against real tables. */

static char tmpdir[] = "/tmp/test-smtpd-restrictions-XXXXXX";

static void write_file(const char *name, const char *text) {
        char path[256];
        FILE *f;

        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        f = fopen(path, "we");
        ASSERT_TRUE(f);
        ASSERT_TRUE(fputs(text, f) >= 0);
        ASSERT_TRUE(fclose(f) == 0);
}

static void build_table(const char *name, const char *text, TableFormat format) {
        char path[256];

        write_file(name, text);
        snprintf(path, sizeof path, "%s/%s", tmpdir, name);
        ASSERT_TRUE(table_build(path, format) >= 0);
}

typedef struct Env {
        Config *config;
        SmtpdNetworks mynetworks;
        char **mydestination;
        sd_event *event;
        Resolver *resolver;
        SmtpdChecks *checks;
        SmtpdCheckSession *session;
        SmtpdAddress client;
} Env;

static void on_done(void *userdata) {
}

/* main.cf text with @ replaced by the temporary directory. */
static int env_setup(Env *e, const char *maincf_template, const char *client) {
        char text[4096], *o = text;
        int r;

        for (const char *p = maincf_template; *p; p++)
                if (*p == '@')
                        o += sprintf(o, "%s", tmpdir);
                else
                        *o++ = *p;
        *o = '\0';
        *e = (Env) { .client = addr(client) };
        ASSERT_OK(config_parse(text, "main.cf", &e->config));
        ASSERT_OK(smtpd_networks_parse(e->config->mynetworks, "main.cf", &e->mynetworks));
        ASSERT_OK(config_split_list(e->config->mydestination, &e->mydestination));
        ASSERT_OK(sd_event_new(&e->event));
        ASSERT_OK(resolver_new(e->event, &e->resolver));
        r = smtpd_checks_new(e->config, &e->mynetworks, e->mydestination, e->resolver, &e->checks);
        if (r < 0)
                return r;
        ASSERT_OK(smtpd_check_session_new(e->checks, &e->client, on_done, NULL, &e->session));
        ASSERT_TRUE(!smtpd_check_session_pending(e->session));
        return 0;
}

static void env_done(Env *e) {
        smtpd_check_session_free(e->session);
        smtpd_checks_free(e->checks);
        resolver_free(e->resolver);
        sd_event_unref(e->event);
        strv_free(e->mydestination);
        smtpd_networks_done(&e->mynetworks);
        config_free(e->config);
}

/* The reply to RCPT, "" when accepted. */
static const char *rcpt(Env *e, const char *helo, const char *sender, const char *recipient, bool auth) {
        static char reply[SMTPD_REPLY_LINE_MAX];
        SmtpdCheckInput in = {
                .client = &e->client, .helo = helo, .sender = sender, .recipient = recipient, .authenticated = auth,
                .server_fd = -1,
        };

        if (smtpd_check_rcpt(e->session, &in, reply) == 0)
                return "";
        return reply;
}

static const char *rcpt_actions(Env *e, const char *sender, const char *recipient, SmtpdMessageActions *a) {
        static char reply[SMTPD_REPLY_LINE_MAX];
        SmtpdCheckInput in = {
                .client = &e->client, .helo = "h.example", .sender = sender, .recipient = recipient, .actions = a,
                .server_fd = -1,
        };

        if (smtpd_check_rcpt(e->session, &in, reply) == 0)
                return "";
        return reply;
}

/* The message-wide actions: noted for the message, the evaluation going on (DISCARD: ending, accepting). */
TEST(evaluate_message_actions) {
        SmtpdMessageActions a = {};
        Env e;

        write_file("actions.re", "/^hold@/ HOLD for review\n"
                                 "/^discard@/ DISCARD\n"
                                 "/^redirect@/ REDIRECT abuse@example.org\n"
                                 "/^prepend@/ PREPEND X-Tagged: yes\n"
                                 "/^warn@/ WARN just saying\n"
                                 "/^filter@/ FILTER smtp:[127.0.0.1]:10025\n"
                                 "/^bad@/ REDIRECT\n");
        write_file("actions.sender", "hold@x.example REJECT after hold\n");
        write_file("actions.rcpt", "nobody@localhost 550 5.1.1 no such user\n");
        ASSERT_OK(env_setup(&e, "smtpd_sender_restrictions = check_sender_access regexp:@/actions.re, "
                                "check_sender_access texthash:@/actions.sender\n"
                                "smtpd_recipient_restrictions = check_recipient_access texthash:@/actions.rcpt\n"
                                "alias_maps =\n",
                            "192.0.2.1"));
        /* HOLD goes on: the next restriction still refuses */
        ASSERT_STREQ(rcpt_actions(&e, "hold@x.example", "root@localhost", &a),
                     "554 5.7.1 <hold@x.example>: Sender address rejected: after hold");
        ASSERT_STREQ(a.hold, "for review");
        smtpd_message_actions_clear(&a);
        ASSERT_STREQ(rcpt_actions(&e, "hold@y.example", "root@localhost", &a), "");
        ASSERT_STREQ(a.hold, "for review");
        smtpd_message_actions_clear(&a);
        /* DISCARD ends everything, accepting even a recipient a later list refuses */
        ASSERT_STREQ(rcpt_actions(&e, "discard@y.example", "nobody@localhost", &a), "");
        ASSERT_STREQ(a.discard, "");
        ASSERT_STREQ(rcpt_actions(&e, "discard@y.example", "x@far.example", &a), "");
        smtpd_message_actions_clear(&a);
        ASSERT_STREQ(rcpt_actions(&e, "other@y.example", "nobody@localhost", &a),
                     "550 5.1.1 <nobody@localhost>: Recipient address rejected: no such user");
        ASSERT_STREQ(rcpt_actions(&e, "redirect@y.example", "root@localhost", &a), "");
        ASSERT_STREQ(a.redirect, "abuse@example.org");
        /* PREPEND: each header once, however many recipients ask for it */
        ASSERT_STREQ(rcpt_actions(&e, "prepend@y.example", "root@localhost", &a), "");
        ASSERT_STREQ(rcpt_actions(&e, "prepend@y.example", "ROOT@localhost", &a), "");
        ASSERT_EQ(a.n_prepend, 1);
        ASSERT_STREQ(a.prepend[0], "X-Tagged: yes");
        ASSERT_STREQ(rcpt_actions(&e, "warn@y.example", "root@localhost", &a), "");
        ASSERT_TRUE(!a.hold && !a.discard);
        ASSERT_STREQ(rcpt_actions(&e, "filter@y.example", "root@localhost", &a), "");
        ASSERT_STREQ(a.filter, "smtp:[127.0.0.1]:10025");
        /* a malformed action is a configuration error, not ignored */
        ASSERT_STREQ(rcpt_actions(&e, "bad@y.example", "root@localhost", &a),
                     "451 4.3.5 <bad@y.example>: Sender address rejected: Server configuration error");
        smtpd_message_actions_clear(&a);
        ASSERT_TRUE(!a.redirect && !a.prepend && a.n_prepend == 0 && !a.filter);
        env_done(&e);
}

TEST(evaluate_defaults) {
        Env e;

        /* no aliases table at all: only users are local recipients */
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nmynetworks = 10.0.0.0/8\n"
                                "alias_maps = hash:@/no-aliases\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@mx.example.org", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false),
                     "550 5.1.1 <nosuchuser-xyz@localhost>: Recipient address rejected: User unknown in local "
                     "recipient table");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", false),
                     "554 5.7.1 <x@elsewhere.example>: Relay access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", true), "");
        env_done(&e);

        /* from mynetworks: relaying allowed, unknown local users still refused */
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nmynetworks = 10.0.0.0/8\n"
                                "alias_maps = hash:@/no-aliases\n", "10.1.2.3"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", false), "");
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false), "550 ", 4) == 0);
        env_done(&e);
}

TEST(evaluate_aliases) {
        Env e;

        build_table("aliases", "postmaster: root\nsales: root, nobody\n", TABLE_FORMAT_ALIASES);
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nalias_maps = hash:@/aliases\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "Sales@mx.example.org", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "postmaster", false), "");
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false), "550 5.1.1", 9) == 0);
        env_done(&e);

        /* the text is there but not built: a temporary failure, as local defers (and Postfix does) */
        write_file("aliases2", "x: root\n");
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nalias_maps = hash:@/aliases2\n", "192.0.2.1"));
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "x@localhost", false), "45", 2) == 0);
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false), "");
        env_done(&e);

        /* not a database at all: a temporary failure, never a wrong 550 */
        write_file("aliases3.gdbm", "this is not a GDBM file, it only has the name of one\n");
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nalias_maps = hash:@/aliases3\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false),
                     "451 4.3.0 <nosuchuser-xyz@localhost>: Temporary lookup failure");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false), "");
        env_done(&e);

        /* user+ext, as local splits it (recipient_delimiter): the user or alias without the extension */
        ASSERT_OK(env_setup(&e, "recipient_delimiter = +-\nalias_maps = hash:@/aliases\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root+lists@localhost", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "sales-eu@localhost", false), "");
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "nosuchuser+x@localhost", false), "550 5.1.1", 9) == 0);
        /* a delimiter at the very start is no extension */
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "+root@localhost", false), "550 5.1.1", 9) == 0);
        env_done(&e);
        ASSERT_OK(env_setup(&e, "alias_maps = hash:@/aliases\n", "192.0.2.1"));
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "root+lists@localhost", false), "550 5.1.1", 9) == 0);
        env_done(&e);

        /* smtpd_reject_unlisted_recipient = no: only the explicit restriction checks */
        ASSERT_OK(env_setup(&e, "smtpd_reject_unlisted_recipient = no\nalias_maps = hash:@/aliases\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false), "");
        env_done(&e);
        ASSERT_OK(env_setup(&e, "smtpd_reject_unlisted_recipient = no\nalias_maps = hash:@/aliases\n"
                                "smtpd_recipient_restrictions = reject_unlisted_recipient\n", "192.0.2.1"));
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false), "550 5.1.1", 9) == 0);
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "sales@localhost", false), "");
        /* not a local domain: not its business */
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@far.example", true), "");
        env_done(&e);

        /* no local_recipient_maps: any local recipient */
        ASSERT_OK(env_setup(&e, "local_recipient_maps =\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser-xyz@localhost", false), "");
        env_done(&e);
}

TEST(evaluate_virtual) {
        Env e;

        build_table("vmailbox", "bob@hosted.example hosted.example/bob/\n@catchall.example all/\n", TABLE_FORMAT_MAP);
        ASSERT_OK(env_setup(&e, "myhostname = mx.example.org\nmynetworks = 10.0.0.0/8\nrecipient_delimiter = +\n"
                                "virtual_mailbox_domains = hosted.example, catchall.example\n"
                                "virtual_mailbox_maps = hash:@/vmailbox\n", "192.0.2.1"));
        /* a hosted domain is a destination of this server: no relay access needed */
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "bob@hosted.example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "Bob+tag@Hosted.Example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "anyone@catchall.example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@hosted.example", false),
                     "550 5.1.1 <carol@hosted.example>: Recipient address rejected: User unknown in virtual mailbox "
                     "table");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", false),
                     "554 5.7.1 <x@elsewhere.example>: Relay access denied");
        env_done(&e);

        /* virtual_mailbox_domains defaults to $virtual_mailbox_maps: the domains are keys of the table */
        build_table("vmailbox2", "hosted.example x\nbob@hosted.example hosted.example/bob/\n", TABLE_FORMAT_MAP);
        ASSERT_OK(env_setup(&e, "virtual_mailbox_maps = hash:@/vmailbox2\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "bob@hosted.example", false), "");
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "carol@hosted.example", false), "550 5.1.1", 9) == 0);
        env_done(&e);

        /* a table that cannot be read: a temporary failure, never a wrong 550 */
        ASSERT_OK(env_setup(&e, "virtual_mailbox_domains = hosted.example\nvirtual_mailbox_maps = hash:@/nonexistent\n",
                            "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "bob@hosted.example", false),
                     "451 4.3.0 <bob@hosted.example>: Temporary lookup failure");
        env_done(&e);

        /* smtpd_reject_unlisted_recipient = no: unknown hosted users pass */
        ASSERT_OK(env_setup(&e, "smtpd_reject_unlisted_recipient = no\nvirtual_mailbox_domains = hosted.example\n"
                                "virtual_mailbox_maps = hash:@/vmailbox\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@hosted.example", false), "");
        env_done(&e);
}

TEST(evaluate_relay_domains) {
        Env e;

        build_table("relayrcpt", "bob@backup.example x\n@open.example x\n", TABLE_FORMAT_MAP);
        build_table("relaydoms", "tabled.example x\n", TABLE_FORMAT_MAP);
        ASSERT_OK(env_setup(&e, "relay_domains = backup.example, open.example, hash:@/relaydoms\n"
                                "relay_recipient_maps = hash:@/relayrcpt\nrecipient_delimiter = +\nalias_maps =\n",
                            "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "bob@backup.example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "Bob+x@Backup.Example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "anyone@open.example", false), "");
        /* a subdomain of a relay domain is one too (parent_domain_matches_subdomains): relayed, and then
         * unknown, as @open.example is not @sub.open.example */
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "anyone@sub.open.example", false),
                     "550 5.1.1 <anyone@sub.open.example>: Recipient address rejected: User unknown in relay "
                     "recipient table");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@backup.example", false),
                     "550 5.1.1 <carol@backup.example>: Recipient address rejected: User unknown in relay recipient "
                     "table");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@tabled.example", false),
                     "550 5.1.1 <carol@tabled.example>: Recipient address rejected: User unknown in relay recipient "
                     "table");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", false),
                     "554 5.7.1 <x@elsewhere.example>: Relay access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@notbackup.example", false),
                     "554 5.7.1 <x@notbackup.example>: Relay access denied");
        env_done(&e);

        /* without relay_recipient_maps every recipient of a relay domain passes; codes as parameters */
        ASSERT_OK(env_setup(&e, "relay_domains = backup.example\nrelay_domains_reject_code = 450\n"
                                "unknown_local_recipient_reject_code = 450\nalias_maps =\n", "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@backup.example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "carol@mx.sub.backup.example", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@elsewhere.example", false),
                     "450 4.7.1 <x@elsewhere.example>: Relay access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nosuchuser12345@localhost", false),
                     "450 4.1.1 <nosuchuser12345@localhost>: Recipient address rejected: User unknown in local "
                     "recipient table");
        env_done(&e);

        /* (env_setup() makes every at sign of main.cf the test directory: the keys are domains) */
        const char *maincf = "smtpd_recipient_restrictions = check_recipient_access inline:{ no.example=REJECT, "
                             "later.example=DEFER }, permit_mynetworks, reject\nreject_code = 550\n"
                             "access_map_reject_code = 551\naccess_map_defer_code = 451\n"
                             "mynetworks = 192.0.2.0/24\nalias_maps =\n";
        ASSERT_OK(env_setup(&e, maincf, "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "550 5.7.1 <root@localhost>: Recipient address rejected: Access denied");
        env_done(&e);
        ASSERT_OK(env_setup(&e, maincf, "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@no.example", false),
                     "551 5.7.1 <x@no.example>: Recipient address rejected: Access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@later.example", false),
                     "451 4.7.1 <x@later.example>: Recipient address rejected: Access denied");
        env_done(&e);
}

TEST(evaluate_access) {
        Env e;

        build_table("client", "192.0.2.66 REJECT go away\n198.51.100 OK\n203.0.113.7 DUNNO\n203.0.113 REJECT\n",
                    TABLE_FORMAT_MAP);
        build_table("sender", "spammer@example.com 550 5.7.0 not you\nexample.net DEFER\nbad@ REJECT\n"
                              "<> 554 no bounces here\n",
                    TABLE_FORMAT_MAP);
        build_table("helo", "example.biz REJECT no biz\n", TABLE_FORMAT_MAP);
        build_table("rcpt", "root@localhost 452 4.2.2 Mailbox full\n", TABLE_FORMAT_MAP);
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client\n"
                                "smtpd_helo_restrictions = check_helo_access gdbm:@/helo\n"
                                "smtpd_sender_restrictions = check_sender_access gdbm:@/sender\n"
                                "smtpd_recipient_restrictions = check_recipient_access gdbm:@/rcpt\n"
                                "alias_maps =\n",
                            "192.0.2.66"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <unknown[192.0.2.66]>: Client host rejected: go away");
        env_done(&e);

        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client\n"
                                "smtpd_helo_restrictions = check_helo_access gdbm:@/helo\n"
                                "smtpd_sender_restrictions = check_sender_access gdbm:@/sender\n"
                                "smtpd_recipient_restrictions = check_recipient_access gdbm:@/rcpt\n"
                                "alias_maps =\n",
                            "198.51.100.20"));
        /* OK in the client list ends that list only: the next lists still apply */
        ASSERT_STREQ(rcpt(&e, "mail.example.biz", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <mail.example.biz>: Helo command rejected: no biz");
        ASSERT_STREQ(rcpt(&e, "h.example", "Spammer@Example.com", "root@localhost", false),
                     "550 5.7.0 <Spammer@Example.com>: Sender address rejected: not you");
        ASSERT_STREQ(rcpt(&e, "h.example", "x@sub.example.net", "root@localhost", false),
                     "450 4.7.1 <x@sub.example.net>: Sender address rejected: Access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "bad@anywhere.example", "root@localhost", false),
                     "554 5.7.1 <bad@anywhere.example>: Sender address rejected: Access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "", "root@localhost", false),
                     "554 5.7.1 <>: Sender address rejected: no bounces here");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "ROOT@localhost", false),
                     "452 4.2.2 <ROOT@localhost>: Recipient address rejected: Mailbox full");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "nobody@localhost", false), "");
        env_done(&e);

        /* a value that names restrictions: evaluated in place */
        build_table("client2", "192.0.2 permit_mynetworks, reject\n198.51.100.1 reject_unauth_destination\n"
                               "198.51.100.2 HOLD\n",
                    TABLE_FORMAT_MAP);
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client2\n"
                                "mynetworks = 192.0.2.1/32\nalias_maps =\n",
                            "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@far.example", false), "");
        env_done(&e);
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client2\n"
                                "mynetworks = 192.0.2.1/32\nalias_maps =\n",
                            "192.0.2.2"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <unknown[192.0.2.2]>: Client host rejected: Access denied");
        env_done(&e);
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client2\n"
                                "smtpd_relay_restrictions = permit\nsmtpd_recipient_restrictions = reject\n"
                                "alias_maps =\n",
                            "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@far.example", false),
                     "554 5.7.1 <x@far.example>: Relay access denied");
        env_done(&e);
        /* an action we do not implement: a temporary failure, not a silent pass */
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client2\nalias_maps =\n",
                            "198.51.100.2"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "451 4.3.5 <unknown[198.51.100.2]>: Client host rejected: Server configuration error");
        env_done(&e);

        /* DUNNO stops the search at the more specific key: 203.0.113 is not consulted */
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client\nalias_maps =\n",
                            "203.0.113.7"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false), "");
        env_done(&e);
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access gdbm:@/client\nalias_maps =\n",
                            "203.0.113.8"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <unknown[203.0.113.8]>: Client host rejected: Access denied");
        env_done(&e);

        /* a table not built yet: the role starts, lookups fail temporarily */
        ASSERT_OK(env_setup(&e, "smtpd_sender_restrictions = check_sender_access gdbm:@/missing\nalias_maps =\n",
                            "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "451 4.3.0 <a@b.example>: Temporary lookup failure");
        env_done(&e);
}

TEST(evaluate_builtin) {
        Env e;

        ASSERT_OK(env_setup(&e,
                            "smtpd_helo_restrictions = reject_invalid_helo_hostname, reject_non_fqdn_helo_hostname\n"
                            "smtpd_sender_restrictions = reject_non_fqdn_sender\n"
                            "smtpd_recipient_restrictions = reject_non_fqdn_recipient, permit_mynetworks, reject\n"
                            "mynetworks = 192.0.2.0/24\nalias_maps =\n",
                            "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "bad_helo", "a@b.example", "root@localhost", false),
                     "501 5.5.2 <bad_helo>: Helo command rejected: Invalid name");
        ASSERT_STREQ(rcpt(&e, "shorty", "a@b.example", "root@localhost", false),
                     "504 5.5.2 <shorty>: Helo command rejected: need fully-qualified hostname");
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b", "root@localhost", false),
                     "504 5.5.2 <a@b>: Sender address rejected: need fully-qualified address");
        ASSERT_STREQ(rcpt(&e, "h.example", "", "x@c.example", false), "");
        ASSERT_STREQ(rcpt(&e, "[192.0.2.1]", "a@b.example", "root", false),
                     "504 5.5.2 <root>: Recipient address rejected: need fully-qualified address");
        env_done(&e);

        ASSERT_OK(env_setup(&e, "smtpd_recipient_restrictions = permit_mynetworks, reject\n"
                                "mynetworks = 192.0.2.0/24\nalias_maps =\n",
                            "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <root@localhost>: Recipient address rejected: Access denied");
        env_done(&e);

        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = defer\nalias_maps =\n", "198.51.100.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "450 4.3.2 <unknown[198.51.100.1]>: Client host rejected: Try again later");
        env_done(&e);

        ASSERT_OK(env_setup(&e, "smtpd_relay_restrictions = defer_unauth_destination\nalias_maps =\n", "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "x@far.example", false),
                     "454 4.7.1 <x@far.example>: Relay access denied");
        env_done(&e);

        /* smtpd_delay_reject = no: the client list is for connect time, not RCPT */
        ASSERT_OK(env_setup(&e, "smtpd_delay_reject = no\nsmtpd_client_restrictions = reject\nalias_maps =\n",
                            "192.0.2.1"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false), "");
        {
                char reply[SMTPD_REPLY_LINE_MAX];
                SmtpdCheckInput in = { .client = &e.client, .server_fd = -1 };
                ASSERT_EQ(smtpd_check_client(e.session, &in, reply), 1);
                ASSERT_STREQ(reply, "554 5.7.1 <unknown[192.0.2.1]>: Client host rejected: Access denied");
        }
        env_done(&e);
}

/* smtpd_data_restrictions and smtpd_end_of_data_restrictions: the list's own name in the reply, the recipient
 * count, and the flag of improper pipelining. */
TEST(evaluate_data) {
        char reply[SMTPD_REPLY_LINE_MAX];
        Env e;

        ASSERT_OK(env_setup(&e, "smtpd_data_restrictions = reject_unauth_pipelining, reject_multi_recipient_bounce\n"
                                "smtpd_end_of_data_restrictions = reject_multi_recipient_bounce, reject\n"
                                "multi_recipient_bounce_reject_code = 450\nalias_maps =\n",
                            "192.0.2.1"));
        SmtpdCheckInput in = { .client = &e.client, .server_fd = -1, .helo = "h.example", .sender = "",
                               .recipient_count = 1 };
        ASSERT_EQ(smtpd_check_data(e.session, &in, reply), 0);
        in.recipient_count = 2;
        ASSERT_EQ(smtpd_check_data(e.session, &in, reply), 1);
        ASSERT_STREQ(reply, "450 4.5.3 <DATA>: Data command rejected: Multi-recipient bounce");
        ASSERT_EQ(smtpd_check_eod(e.session, &in, reply), 1);
        ASSERT_STREQ(reply, "450 4.5.3 <END-OF-DATA>: End-of-data rejected: Multi-recipient bounce");
        in.sender = "a@b.example";
        ASSERT_EQ(smtpd_check_data(e.session, &in, reply), 0);
        ASSERT_EQ(smtpd_check_eod(e.session, &in, reply), 1);
        ASSERT_STREQ(reply, "554 5.7.1 <END-OF-DATA>: End-of-data rejected: Access denied");
        in.ill_pipelining = true;
        ASSERT_EQ(smtpd_check_data(e.session, &in, reply), 1);
        ASSERT_STREQ(reply, "503 5.5.0 <DATA>: Data command rejected: Improper use of SMTP command pipelining");
        env_done(&e);
}

TEST(config_errors) {
        Env e;

        ASSERT_ERR(env_setup(&e, "smtpd_client_restrictions = permit_mynetworks reject_bogus\n", "192.0.2.1"),
                   EINVAL);
        env_done(&e);
        ASSERT_ERR(env_setup(&e, "smtpd_sender_restrictions = check_sender_access cdb:/etc/x\n", "192.0.2.1"),
                   EINVAL);
        env_done(&e);
        /* an open relay is refused */
        ASSERT_ERR(env_setup(&e, "smtpd_relay_restrictions = permit_mynetworks\n", "192.0.2.1"), EINVAL);
        env_done(&e);
        ASSERT_ERR(env_setup(&e, "smtpd_data_restrictions = reject_rhsbl_sender\n", "192.0.2.1"), EINVAL);
        env_done(&e);
        ASSERT_ERR(env_setup(&e, "smtpd_end_of_data_restrictions = reject_bogus\n", "192.0.2.1"), EINVAL);
        env_done(&e);
        ASSERT_OK(env_setup(&e, "smtpd_relay_restrictions =\nsmtpd_recipient_restrictions = permit_mynetworks "
                                "reject_unauth_destination\n",
                            "192.0.2.1"));
        env_done(&e);
}

/* Pattern tables: cidr: for the client address, regexp: and pcre: for the sender, inline: for HELO; a pattern
 * table is asked the whole address and domain only, never a parent domain or "user@". */
TEST(evaluate_pattern_tables) {
        Env e;

        write_file("client.cidr", "192.0.2.0/28 REJECT small net\n192.0.2.0/24 OK\n2001:db8::/32 REJECT v6 net\n");
        write_file("sender.re", "/^bad@/ REJECT bad user\n/^example\\.net$/ REJECT whole domain\n"
                                "/^(.*)@spam\\.example$/ 550 5.7.1 $1 is spam\n");
        write_file("sender.pcre", "/^\\d+@numbers\\.example$/ REJECT digits only\n");
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access cidr:@/client.cidr\n"
                                "smtpd_helo_restrictions = check_helo_access inline:{ evil.example=REJECT, "
                                "{ other.example = 554 5.7.1 go away } }\n"
                                "smtpd_sender_restrictions = check_sender_access regexp:@/sender.re, "
                                "check_sender_access pcre:@/sender.pcre\n"
                                "alias_maps =\n",
                            "192.0.2.5"));
        ASSERT_STREQ(rcpt(&e, "h.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <unknown[192.0.2.5]>: Client host rejected: small net");
        env_done(&e);

        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access cidr:@/client.cidr\n"
                                "smtpd_helo_restrictions = check_helo_access inline:{ evil.example=REJECT, "
                                "{ other.example = 554 5.7.1 go away } }\n"
                                "smtpd_sender_restrictions = check_sender_access regexp:@/sender.re, "
                                "check_sender_access pcre:@/sender.pcre\n"
                                "alias_maps =\n",
                            "198.51.100.20"));
        ASSERT_STREQ(rcpt(&e, "Evil.Example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <Evil.Example>: Helo command rejected: Access denied");
        ASSERT_STREQ(rcpt(&e, "other.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <other.example>: Helo command rejected: go away");
        /* a parent domain is a partial key: inline: is asked it, as a hash table would be */
        ASSERT_STREQ(rcpt(&e, "mx.evil.example", "a@b.example", "root@localhost", false),
                     "554 5.7.1 <mx.evil.example>: Helo command rejected: Access denied");
        ASSERT_STREQ(rcpt(&e, "h.example", "bad@anywhere.example", "root@localhost", false),
                     "554 5.7.1 <bad@anywhere.example>: Sender address rejected: bad user");
        ASSERT_STREQ(rcpt(&e, "h.example", "x@example.net", "root@localhost", false),
                     "554 5.7.1 <x@example.net>: Sender address rejected: whole domain");
        /* ... but a regexp: table is not: sub.example.net's parent example.net is not looked up there */
        ASSERT_STREQ(rcpt(&e, "h.example", "x@sub.example.net", "root@localhost", false), "");
        ASSERT_STREQ(rcpt(&e, "h.example", "joe@spam.example", "root@localhost", false),
                     "550 5.7.1 <joe@spam.example>: Sender address rejected: joe is spam");
        ASSERT_STREQ(rcpt(&e, "h.example", "123@numbers.example", "root@localhost", false),
                     "554 5.7.1 <123@numbers.example>: Sender address rejected: digits only");
        ASSERT_STREQ(rcpt(&e, "h.example", "a1@numbers.example", "root@localhost", false), "");
        env_done(&e);

        /* a cidr: file that is missing: a temporary failure */
        ASSERT_OK(env_setup(&e, "smtpd_client_restrictions = check_client_access cidr:@/missing.cidr\n"
                                "alias_maps =\n",
                            "192.0.2.5"));
        ASSERT_TRUE(strncmp(rcpt(&e, "h.example", "a@b.example", "root@localhost", false), "451 4.3.0", 9) == 0);
        env_done(&e);
}

int main(void) {
        log_set_max_level(LOG_WARNING);
        RUN(list_parse);
        RUN(access_result);
        RUN(keys);
        RUN(names);
        ASSERT_TRUE(mkdtemp(tmpdir));
        RUN(evaluate_defaults);
        RUN(evaluate_aliases);
        RUN(evaluate_virtual);
        RUN(evaluate_relay_domains);
        RUN(evaluate_access);
        RUN(evaluate_pattern_tables);
        RUN(evaluate_message_actions);
        RUN(evaluate_builtin);
        RUN(evaluate_data);
        RUN(config_errors);
        {
                char cmd[128];
                snprintf(cmd, sizeof cmd, "rm -rf '%s'", tmpdir);
                ASSERT_EQ(system(cmd), 0);
        }
        return 0;
}
