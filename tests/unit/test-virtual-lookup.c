/* test-virtual-lookup.c: the virtual role's decisions about a hosted recipient: mailbox paths below
 * virtual_mailbox_base, uid and gid values, virtual_mailbox_lock, the lookup order of the maps (a GDBM table
 * and static:), and the results of unknown users and refused uids; the hosted domains of virtual-maps.c. */
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/stat.h>

#include "tests.h"
#include "src/virtual/virtual.h"

static char tmpdir[] = "/tmp/test-virtual-lookup-XXXXXX";

static void check_path(const char *base, const char *value, const char *expected) {
        _cleanup_free_ char *p = NULL;

        ASSERT_OK(virtual_mailbox_path(base, value, &p));
        ASSERT_STREQ(p, expected);
}

TEST(path) {
        char *p = NULL;

        check_path("/var/mail/vhosts", "example.com/bob/", "/var/mail/vhosts/example.com/bob/");
        check_path("/var/mail/vhosts/", "example.com/bob", "/var/mail/vhosts/example.com/bob");
        check_path("/var/mail/vhosts", " /example.com/bob/ ", "/var/mail/vhosts/example.com/bob/");
        check_path("/v", "a..b/c", "/v/a..b/c");
        ASSERT_ERR(virtual_mailbox_path("/v", "../etc/passwd", &p), EINVAL);
        ASSERT_ERR(virtual_mailbox_path("/v", "a/../../x", &p), EINVAL);
        ASSERT_ERR(virtual_mailbox_path("/v", "a/..", &p), EINVAL);
        ASSERT_ERR(virtual_mailbox_path("/v", "", &p), EINVAL);
        ASSERT_ERR(virtual_mailbox_path("/v", "/", &p), EINVAL);
        ASSERT_ERR(virtual_mailbox_path("/v", "a\nb", &p), EINVAL);
        ASSERT_TRUE(p == NULL);
}

TEST(ids) {
        unsigned long n;

        ASSERT_OK(virtual_parse_id("5000", &n));
        ASSERT_EQ(n, 5000UL);
        ASSERT_OK(virtual_parse_id(" 0 ", &n));
        ASSERT_EQ(n, 0UL);
        ASSERT_ERR(virtual_parse_id("-1", &n), EINVAL);
        ASSERT_ERR(virtual_parse_id("50x", &n), EINVAL);
        ASSERT_ERR(virtual_parse_id("", &n), EINVAL);
        ASSERT_ERR(virtual_parse_id("99999999999", &n), EINVAL);
}

TEST(lock) {
        MailboxLocking l = {};

        ASSERT_OK(mailbox_lock_parse("fcntl, dotlock", &l));
        ASSERT_TRUE(!l.no_dotlock && !l.no_fcntl);
        ASSERT_OK(mailbox_lock_parse("fcntl", &l));
        ASSERT_TRUE(l.no_dotlock && !l.no_fcntl);
        ASSERT_OK(mailbox_lock_parse("dotlock", &l));
        ASSERT_TRUE(!l.no_dotlock && l.no_fcntl);
        ASSERT_ERR(mailbox_lock_parse("flock", &l), EINVAL);
        ASSERT_ERR(mailbox_lock_parse("", &l), EINVAL);
}

static Config *config_with(const char *text) {
        Config *c = NULL;

        ASSERT_OK(config_parse(text, "test main.cf", &c));
        return c;
}

TEST(lookup) {
        char src[PATH_MAX], cf[4 * PATH_MAX];
        FILE *f;

        (void) snprintf(src, sizeof src, "%s/vmailbox", tmpdir);
        f = fopen(src, "we");
        ASSERT_TRUE(f != NULL);
        fputs("bob@example.com example.com/bob/\n"
              "carol@example.com example.com/carol\n"
              "@catchall.example catchall/all/\n"
              "root@example.com example.com/root/\n", f);
        ASSERT_OK(fclose(f));
        ASSERT_EQ(table_build(src, TABLE_FORMAT_MAP), 4);
        (void) snprintf(src, sizeof src, "%s/vuid", tmpdir);
        f = fopen(src, "we");
        ASSERT_TRUE(f != NULL);
        fputs("root@example.com 0\ncarol@example.com 5001\n", f);
        ASSERT_OK(fclose(f));
        ASSERT_EQ(table_build(src, TABLE_FORMAT_MAP), 2);

        (void) snprintf(cf, sizeof cf,
                        "virtual_mailbox_base = /var/mail/vhosts\nrecipient_delimiter = +\n"
                        "virtual_mailbox_maps = hash:%s/vmailbox\n"
                        "virtual_uid_maps = hash:%s/vuid, static:5000\n"
                        "virtual_gid_maps = static:5000\n",
                        tmpdir, tmpdir);
        _cleanup_(config_freep) Config *c = config_with(cf);
        VirtualMaps maps;
        VirtualTarget t = {};
        MailboxResult r;

        ASSERT_OK(virtual_maps_open(&maps, c));

        ASSERT_EQ(virtual_lookup(&maps, c, "bob@example.com", &t, &r), 1);
        ASSERT_STREQ(t.path, "/var/mail/vhosts/example.com/bob/");
        ASSERT_EQ(t.uid, (uid_t) 5000);
        ASSERT_EQ(t.gid, (gid_t) 5000);
        virtual_target_done(&t);

        /* The extension comes off, as recipient_delimiter says. */
        ASSERT_EQ(virtual_lookup(&maps, c, "carol+lists@example.com", &t, &r), 1);
        ASSERT_STREQ(t.path, "/var/mail/vhosts/example.com/carol");
        /* Each key goes through the whole list, as Postfix's maps do: static: holds the full address. */
        ASSERT_EQ(t.uid, (uid_t) 5000);
        virtual_target_done(&t);
        ASSERT_EQ(virtual_lookup(&maps, c, "carol@example.com", &t, &r), 1);
        ASSERT_EQ(t.uid, (uid_t) 5001);
        virtual_target_done(&t);

        ASSERT_EQ(virtual_lookup(&maps, c, "anyone@catchall.example", &t, &r), 1);
        ASSERT_STREQ(t.path, "/var/mail/vhosts/catchall/all/");
        virtual_target_done(&t);

        ASSERT_EQ(virtual_lookup(&maps, c, "nobody@example.com", &t, &r), 0);
        ASSERT_STREQ(r.dsn, "5.1.1");
        ASSERT_EQ(r.status, MAILBOX_STATUS_BOUNCED);
        ASSERT_STREQ(r.text, "unknown user: \"nobody@example.com\"");

        /* Root and system uids: a configuration error, deferred. */
        ASSERT_EQ(virtual_lookup(&maps, c, "root@example.com", &t, &r), 0);
        ASSERT_STREQ(r.dsn, "4.3.5");
        ASSERT_EQ(r.status, MAILBOX_STATUS_DEFERRED);
        ASSERT_STREQ(r.text, "mail system configuration error");
        virtual_maps_done(&maps);

        /* No uid for the address at all. */
        (void) snprintf(cf, sizeof cf,
                        "virtual_mailbox_base = /v\nvirtual_mailbox_maps = hash:%s/vmailbox\n"
                        "virtual_uid_maps = hash:%s/vuid\nvirtual_gid_maps = static:5000\n", tmpdir, tmpdir);
        _cleanup_(config_freep) Config *c2 = config_with(cf);
        ASSERT_OK(virtual_maps_open(&maps, c2));
        ASSERT_EQ(virtual_lookup(&maps, c2, "bob@example.com", &t, &r), 0);
        ASSERT_STREQ(r.dsn, "4.3.5");
        virtual_maps_done(&maps);

        /* A table that is not built: deferred, never bounced. */
        (void) snprintf(cf, sizeof cf,
                        "virtual_mailbox_base = /v\nvirtual_mailbox_maps = hash:%s/missing\n"
                        "virtual_uid_maps = static:5000\nvirtual_gid_maps = static:5000\n", tmpdir);
        _cleanup_(config_freep) Config *c3 = config_with(cf);
        ASSERT_OK(virtual_maps_open(&maps, c3));
        ASSERT_EQ(virtual_lookup(&maps, c3, "bob@example.com", &t, &r), 0);
        ASSERT_STREQ(r.dsn, "4.3.0");
        virtual_maps_done(&maps);
}

TEST(domains) {
        char src[PATH_MAX], spec[PATH_MAX + 8];
        VirtualDomains d;
        FILE *f;

        ASSERT_OK(virtual_domains_open("example.com, Example.NET", &d));
        ASSERT_EQ(virtual_domains_contain(&d, "example.com"), 1);
        ASSERT_EQ(virtual_domains_contain(&d, "EXAMPLE.com."), 1);
        ASSERT_EQ(virtual_domains_contain(&d, "example.net"), 1);
        ASSERT_EQ(virtual_domains_contain(&d, "sub.example.com"), 0);
        virtual_domains_done(&d);

        ASSERT_OK(virtual_domains_open("", &d));
        ASSERT_TRUE(virtual_domains_is_empty(&d));
        virtual_domains_done(&d);

        /* A table of domains, as with Postfix's default virtual_mailbox_domains = $virtual_mailbox_maps. */
        (void) snprintf(src, sizeof src, "%s/vdomains", tmpdir);
        f = fopen(src, "we");
        ASSERT_TRUE(f != NULL);
        fputs("hosted.example OK\n", f);
        ASSERT_OK(fclose(f));
        ASSERT_EQ(table_build(src, TABLE_FORMAT_MAP), 1);
        (void) snprintf(spec, sizeof spec, "hash:%s", src);
        ASSERT_OK(virtual_domains_open(spec, &d));
        ASSERT_TRUE(!virtual_domains_is_empty(&d));
        ASSERT_EQ(virtual_domains_contain(&d, "hosted.example"), 1);
        ASSERT_EQ(virtual_domains_contain(&d, "other.example"), 0);
        virtual_domains_done(&d);

        ASSERT_ERR(virtual_domains_open("nosuchtype:/x", &d), EINVAL);
}

int main(void) {
        ASSERT_TRUE(mkdtemp(tmpdir) != NULL);
        RUN(path);
        RUN(ids);
        RUN(lock);
        RUN(lookup);
        RUN(domains);
        (void) system("rm -rf /tmp/test-virtual-lookup-*");
        return 0;
}
