/* test-rewrite-address.c: canonical address form, transport(5) results and resolution of the rewrite role. */
#include "tests.h"
#include "../../src/rewrite/rewrite-address.h"

static const RewriteContext ctx = {
        .myorigin = "host.example.org",
        .mydomain = "example.org",
        .append_at_myorigin = true,
        .append_dot_mydomain = false,
};

static void check_rewrite(const RewriteContext *c, const char *in, const char *want) {
        char *out = NULL;
        ASSERT_OK(rewrite_address(c, in, &out));
        ASSERT_STREQ(out, want);
        free(out);
}

TEST(canonical) {
        check_rewrite(&ctx, "alice", "alice@host.example.org");
        check_rewrite(&ctx, "alice@", "alice@host.example.org");
        check_rewrite(&ctx, "alice@example.com", "alice@example.com");
        check_rewrite(&ctx, "alice@example.com.", "alice@example.com");
        check_rewrite(&ctx, "alice@otherhost", "alice@otherhost");
        check_rewrite(&ctx, "", "");
        check_rewrite(&ctx, "\"john smith\"", "\"john smith\"@host.example.org");
        check_rewrite(&ctx, "\"a@b\"@example.com", "\"a@b\"@example.com");
        check_rewrite(&ctx, "\"a@b\"", "\"a@b\"@host.example.org");
        check_rewrite(&ctx, "@relay1.example,@relay2.example:bob@example.com", "bob@example.com");
        check_rewrite(&ctx, "@relay1.example:bob", "bob@host.example.org");
        check_rewrite(&ctx, "user@[192.0.2.1]", "user@[192.0.2.1]");

        RewriteContext dot = ctx;
        dot.append_dot_mydomain = true;
        check_rewrite(&dot, "alice@otherhost", "alice@otherhost.example.org");
        check_rewrite(&dot, "alice@otherhost.", "alice@otherhost.example.org");
        check_rewrite(&dot, "alice@a.b", "alice@a.b");
        check_rewrite(&dot, "user@[192.0.2.1]", "user@[192.0.2.1]");
        dot.myorigin = "localhost";
        check_rewrite(&dot, "alice", "alice@localhost.example.org");

        RewriteContext old = ctx;
        old.allow_percent_hack = old.swap_bangpath = true;
        check_rewrite(&old, "user%example.com", "user@example.com");
        check_rewrite(&old, "a%b%example.com", "a%b@example.com");
        check_rewrite(&old, "uucphost!user", "user@uucphost");
        check_rewrite(&old, "a!b!user", "b!user@a");
        check_rewrite(&old, "user%example.com@host.example.org", "user%example.com@host.example.org");
        check_rewrite(&old, "\"a%b\"", "\"a%b\"@host.example.org");
        check_rewrite(&old, "user%", "user%@host.example.org");
        check_rewrite(&ctx, "user%example.com", "user%example.com@host.example.org");
        check_rewrite(&ctx, "uucphost!user", "uucphost!user@host.example.org");

        RewriteContext noappend = ctx;
        noappend.append_at_myorigin = false;
        check_rewrite(&noappend, "alice", "alice");
        check_rewrite(&noappend, "alice@", "alice");
}

TEST(canonical_errors) {
        char *out = NULL, big[REWRITE_INPUT_MAX + 2];

        ASSERT_ERR(rewrite_address(&ctx, "\"unbalanced@example.org", &out), EINVAL);
        ASSERT_ERR(rewrite_address(&ctx, "a\nb@example.org", &out), EINVAL);
        ASSERT_ERR(rewrite_address(&ctx, "@relay:", &out), EINVAL);
        ASSERT_ERR(rewrite_address(&ctx, "user\\", &out), EINVAL);     /* would escape the '@' appended */
        memset(big, 'a', sizeof big - 1);
        big[sizeof big - 1] = '\0';
        ASSERT_ERR(rewrite_address(&ctx, big, &out), E2BIG);
        memset(big, 'a', 400);
        big[400] = '\0';
        ASSERT_ERR(rewrite_address(&ctx, big, &out), E2BIG);
        ASSERT_TRUE(out == NULL);
}

static void check_transport(const char *in, const char *t, const char *n) {
        char *tt = (char *) 1, *nn = (char *) 1;
        ASSERT_OK(rewrite_transport_parse(in, &tt, &nn));
        if (t)
                ASSERT_STREQ(tt, t);
        else
                ASSERT_TRUE(tt == NULL);
        if (n)
                ASSERT_STREQ(nn, n);
        else
                ASSERT_TRUE(nn == NULL);
        free(tt);
        free(nn);
}

TEST(transport) {
        check_transport("smtp:[mail.example.org]:587", "smtp", "[mail.example.org]:587");
        check_transport("  smtp:mx.example.org  ", "smtp", "mx.example.org");
        check_transport("local", "local", NULL);
        check_transport("smtp:", "smtp", NULL);
        check_transport(":[relay.example]", NULL, "[relay.example]");
        check_transport(":", NULL, NULL);
        check_transport("", NULL, NULL);
        check_transport("error:5.1.1 mailbox unavailable", "error", "5.1.1 mailbox unavailable");
        check_transport("smtp:[::1]:25", "smtp", "[::1]:25");
        char *t, *n;
        ASSERT_ERR(rewrite_transport_parse("sm tp:x", &t, &n), EINVAL);
        ASSERT_ERR(rewrite_transport_parse("a/b", &t, &n), EINVAL);
}

/* A transport table as a list of key, value pairs. */
static int fake_lookup(const char *key, bool partial, char **ret_value, void *userdata) {
        const char *const *table = userdata;

        for (size_t i = 0; table[i]; i += 2)
                if (strcasecmp(table[i], key) == 0) {
                        *ret_value = strdup(table[i + 1]);
                        return *ret_value ? 1 : -ENOMEM;
                }
        return 0;
}

static int failing_lookup(const char *key, bool partial, char **ret_value, void *userdata) {
        return -EBADMSG;
}

static void check_resolve(const RewriteResolveContext *c, const char *addr, const char *t, const char *n) {
        RewriteResolution res = {};
        ASSERT_OK(rewrite_resolve(c, addr, &res));
        ASSERT_STREQ(res.transport, t);
        ASSERT_STREQ(res.nexthop, n);
        ASSERT_STREQ(res.address, addr);
        rewrite_resolution_done(&res);
}

TEST(resolve) {
        char *mydest[] = { "host.example.org", "localhost", NULL };
        const char *table[] = {
                "special@example.com", "error:5.1.1 gone away",
                "example.com", "smtp:[mx.example.com]",
                ".example.net", "relay:",
                "example.net", ":[net-relay.example]",
                "host.example.org", "",
                NULL,
        };
        RewriteResolveContext c = {
                .mydestination = mydest,
                .local_transport = "local:host.example.org",
                .default_transport = "smtp",
                .relayhost = "",
        };

        check_resolve(&c, "alice@host.example.org", "local", "host.example.org");
        check_resolve(&c, "alice@HOST.example.org", "local", "host.example.org");
        check_resolve(&c, "alice", "local", "host.example.org");
        check_resolve(&c, "bob@example.com", "smtp", "example.com");
        c.relayhost = "[relay.example]:587";
        check_resolve(&c, "bob@example.com", "smtp", "[relay.example]:587");
        check_resolve(&c, "alice@localhost", "local", "host.example.org");

        c.lookup = fake_lookup;
        c.userdata = table;
        c.relayhost = "";
        check_resolve(&c, "special@example.com", "error", "5.1.1 gone away");
        check_resolve(&c, "other@example.com", "smtp", "[mx.example.com]");
        check_resolve(&c, "x@a.b.example.net", "relay", "a.b.example.net");
        check_resolve(&c, "x@example.net", "smtp", "[net-relay.example]");
        check_resolve(&c, "x@example.org", "smtp", "example.org");
        check_resolve(&c, "alice@host.example.org", "local", "host.example.org");

        /* Postfix's inheritance: a new transport without next hop goes to the recipient domain */
        const char *inherit[] = {
                "host.example.org", "smtp:",
                "example.com", ":[fixed.example]",
                "example.org", "error:",
                NULL,
        };
        c.userdata = inherit;
        check_resolve(&c, "alice@host.example.org", "smtp", "host.example.org");
        check_resolve(&c, "bob@example.com", "smtp", "[fixed.example]");
        check_resolve(&c, "bob@example.org", "error", "");

        const char *star[] = { "*", "smtp:[outbound.example]", NULL };
        c.userdata = star;
        check_resolve(&c, "x@example.org", "smtp", "[outbound.example]");

        RewriteResolution res = {};
        c.lookup = failing_lookup;
        ASSERT_ERR(rewrite_resolve(&c, "x@example.org", &res), EBADMSG);
        const char *bad[] = { "example.org", "bad transport:x", NULL };
        c.lookup = fake_lookup;
        c.userdata = bad;
        ASSERT_ERR(rewrite_resolve(&c, "x@example.org", &res), EINVAL);
        ASSERT_TRUE(res.transport == NULL);
}

static int fake_hosted(const char *domain, void *userdata) {
        return strcasecmp(domain, "hosted.example") == 0 || strcasecmp(domain, "host.example.org") == 0;
}

static int failing_hosted(const char *domain, void *userdata) {
        return -ENOENT;
}

TEST(resolve_virtual) {
        char *mydest[] = { "host.example.org", NULL };
        const char *table[] = { "other.example", "lmtp:unix:/run/dovecot/lmtp", NULL };
        RewriteResolveContext c = {
                .mydestination = mydest,
                .local_transport = "local:host.example.org",
                .default_transport = "smtp",
                .relayhost = "[relay.example]",
                .virtual_domain = fake_hosted,
                .virtual_transport = "virtual",
        };

        /* A hosted domain goes to virtual_transport, to the domain, never to relayhost. */
        check_resolve(&c, "bob@hosted.example", "virtual", "hosted.example");
        check_resolve(&c, "bob@HOSTED.example", "virtual", "HOSTED.example");
        /* mydestination wins over virtual_mailbox_domains, as in Postfix. */
        check_resolve(&c, "bob@host.example.org", "local", "host.example.org");
        check_resolve(&c, "bob@example.com", "smtp", "[relay.example]");
        c.virtual_transport = "lmtp:unix:/run/dovecot/lmtp";
        check_resolve(&c, "bob@hosted.example", "lmtp", "unix:/run/dovecot/lmtp");
        c.virtual_transport = "virtual";
        c.lookup = fake_lookup;
        c.userdata = table;
        check_resolve(&c, "bob@other.example", "lmtp", "unix:/run/dovecot/lmtp");

        RewriteResolution res = {};
        c.virtual_domain = failing_hosted;
        ASSERT_ERR(rewrite_resolve(&c, "x@hosted.example", &res), ENOENT);
        c.virtual_domain = fake_hosted;
        c.virtual_transport = "bad transport";
        ASSERT_ERR(rewrite_resolve(&c, "x@hosted.example", &res), EINVAL);
}

static int fake_relay(const char *domain, void *userdata) {
        return strcasecmp(domain, "backup.example") == 0 || strcasecmp(domain, "hosted.example") == 0;
}

TEST(resolve_relay) {
        char *mydest[] = { "host.example.org", NULL };
        const char *table[] = { "backup.example", "smtp:[127.0.0.1]:2525", NULL };
        RewriteResolveContext c = {
                .mydestination = mydest,
                .local_transport = "local:host.example.org",
                .default_transport = "smtp",
                .relayhost = "",
                .virtual_domain = fake_hosted,
                .virtual_transport = "virtual",
                .relay_domain = fake_relay,
                .relay_transport = "relay",
        };

        /* relay_domains: relay_transport to the domain, or to relayhost; hosted domains come first. */
        check_resolve(&c, "bob@backup.example", "relay", "backup.example");
        check_resolve(&c, "bob@hosted.example", "virtual", "hosted.example");
        check_resolve(&c, "bob@other.example", "smtp", "other.example");
        c.relayhost = "[relay.example]";
        check_resolve(&c, "bob@backup.example", "relay", "[relay.example]");
        c.relay_transport = "relay:[mx2.example]";
        check_resolve(&c, "bob@backup.example", "relay", "[mx2.example]");
        c.relay_transport = "relay";
        c.lookup = fake_lookup;
        c.userdata = table;
        check_resolve(&c, "bob@backup.example", "smtp", "[127.0.0.1]:2525");

        RewriteResolution res = {};
        c.relay_domain = failing_hosted;
        ASSERT_ERR(rewrite_resolve(&c, "x@backup.example", &res), ENOENT);
}

TEST(resolve_sender_relayhost) {
        char *mydest[] = { "host.example.org", NULL };
        const char *relays[] = {
                "boss@example.com", "[boss-relay.example]:587",
                "@example.com", "[corp-relay.example]",
                "<>", "[bounce-relay.example]",
                NULL,
        };
        RewriteResolveContext c = {
                .mydestination = mydest,
                .local_transport = "local:host.example.org",
                .default_transport = "smtp",
                .relayhost = "[relay.example]",
                .relayhost_lookup = fake_lookup,
                .userdata = relays,
        };

        /* no sender given (Resolve): relayhost */
        check_resolve(&c, "x@example.net", "smtp", "[relay.example]");
        c.sender = "boss@example.com";
        check_resolve(&c, "x@example.net", "smtp", "[boss-relay.example]:587");
        c.sender = "worker@example.com";
        check_resolve(&c, "x@example.net", "smtp", "[corp-relay.example]");
        c.sender = "";
        check_resolve(&c, "x@example.net", "smtp", "[bounce-relay.example]");
        c.sender = "someone@elsewhere.example";
        check_resolve(&c, "x@example.net", "smtp", "[relay.example]");
        /* local mail stays local */
        c.sender = "boss@example.com";
        check_resolve(&c, "alice@host.example.org", "local", "host.example.org");
        /* a default_transport with its own next hop keeps it */
        c.default_transport = "smtp:[fixed.example]";
        check_resolve(&c, "x@example.net", "smtp", "[fixed.example]");
}

TEST(at) {
        ASSERT_EQ(rewrite_address_at("a@b"), 1);
        ASSERT_EQ(rewrite_address_at("\"a@b\"@c"), 5);
        ASSERT_EQ(rewrite_address_at("\"a@b\""), -1);
        ASSERT_EQ(rewrite_address_at("ab"), -1);
}

int main(void) {
        RUN(canonical);
        RUN(canonical_errors);
        RUN(transport);
        RUN(resolve);
        RUN(resolve_virtual);
        RUN(resolve_relay);
        RUN(resolve_sender_relayhost);
        RUN(at);
        return 0;
}
