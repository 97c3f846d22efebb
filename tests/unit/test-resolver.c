/* test-resolver.c: the shared resolver against a fake DNS server on a loopback UDP port in this process
 * (same event loop): every status class, the MX order, PTR, A, TXT, the deadline, cancellation. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include "resolver.h"
#include "tests.h"

/* The fake server. */

enum { T_A = 1, T_PTR = 12, T_MX = 15, T_TXT = 16, T_AAAA = 28 };
enum { RC_NOERROR = 0, RC_SERVFAIL = 2, RC_NXDOMAIN = 3 };

typedef struct Msg {
        uint8_t buf[512];
        size_t len;
        unsigned ancount;
} Msg;

static unsigned queries_seen;

static void put8(Msg *m, uint8_t v) {
        ASSERT_TRUE(m->len < sizeof m->buf);
        m->buf[m->len++] = v;
}

static void put16(Msg *m, uint16_t v) {
        put8(m, (uint8_t) (v >> 8));
        put8(m, (uint8_t) v);
}

static void put_name(Msg *m, const char *name) {
        const char *p = name;

        while (*p) {
                const char *dot = strchr(p, '.');
                size_t l = dot ? (size_t) (dot - p) : strlen(p);

                put8(m, (uint8_t) l);
                for (size_t i = 0; i < l; i++)
                        put8(m, (uint8_t) p[i]);
                p += l;
                if (*p == '.')
                        p++;
        }
        put8(m, 0);
}

/* An answer record for the question's name (a pointer to offset 12), with rdata written by the caller
 * between rr_begin() and rr_end(). */
static size_t rr_begin(Msg *m, uint16_t type) {
        put16(m, 0xC00C);
        put16(m, type);
        put16(m, 1);
        put16(m, 0);
        put16(m, 300);
        put16(m, 0);            /* rdlength, patched by rr_end() */
        m->ancount++;
        return m->len;
}

static void rr_end(Msg *m, size_t start) {
        size_t rdlen = m->len - start;

        m->buf[start - 2] = (uint8_t) (rdlen >> 8);
        m->buf[start - 1] = (uint8_t) rdlen;
}

static void add_mx(Msg *m, uint16_t pref, const char *host) {
        size_t s = rr_begin(m, T_MX);

        put16(m, pref);
        put_name(m, host);
        rr_end(m, s);
}

static void add_addr(Msg *m, int family, const char *text) {
        uint8_t b[16];
        size_t s = rr_begin(m, family == AF_INET ? T_A : T_AAAA);

        ASSERT_TRUE(inet_pton(family, text, b) == 1);
        for (size_t i = 0; i < (family == AF_INET ? 4U : 16U); i++)
                put8(m, b[i]);
        rr_end(m, s);
}

static void add_ptr(Msg *m, const char *name) {
        size_t s = rr_begin(m, T_PTR);

        put_name(m, name);
        rr_end(m, s);
}

static void add_txt(Msg *m, const char *a, const char *b) {
        size_t s = rr_begin(m, T_TXT);

        put8(m, (uint8_t) strlen(a));
        for (const char *p = a; *p; p++)
                put8(m, (uint8_t) *p);
        if (b) {
                put8(m, (uint8_t) strlen(b));
                for (const char *p = b; *p; p++)
                        put8(m, (uint8_t) *p);
        }
        rr_end(m, s);
}

/* The zone: returns the rcode, fills answers; -1 for a query never answered. */
static int zone(const char *name, unsigned type, Msg *m) {
        if (streq(name, "black.hole.test"))
                return -1;
        if (streq(name, "nx.test"))
                return RC_NXDOMAIN;
        if (streq(name, "fail.test"))
                return RC_SERVFAIL;
        if (streq(name, "mx.test") && type == T_MX) {
                add_mx(m, 20, "last.mx.test");
                add_mx(m, 10, "a.mx.test");
                add_mx(m, 10, "b.mx.test");
                add_mx(m, 5, "First.MX.test");
                add_mx(m, 10, "c.mx.test");
        } else if (streq(name, "nullmx.test") && type == T_MX)
                add_mx(m, 0, "");
        else if (streq(name, "dotamong.test") && type == T_MX) {
                add_mx(m, 0, "");
                add_mx(m, 10, "real.dotamong.test");
        } else if (streq(name, "host.test") && type == T_A) {
                add_addr(m, AF_INET, "192.0.2.1");
                add_addr(m, AF_INET, "192.0.2.2");
        } else if (streq(name, "host.test") && type == T_AAAA)
                add_addr(m, AF_INET6, "2001:db8::1");
        else if (streq(name, "v4only.test") && type == T_A)
                add_addr(m, AF_INET, "192.0.2.3");
        else if (streq(name, "halffail.test") && type == T_A)
                add_addr(m, AF_INET, "192.0.2.4");
        else if (streq(name, "halffail.test") && type == T_AAAA)
                return RC_SERVFAIL;
        else if (streq(name, "1.2.0.192.in-addr.arpa") && type == T_PTR)
                add_ptr(m, "Host.Test");
        else if (streq(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa") &&
                 type == T_PTR)
                add_ptr(m, "v6.host.test");
        else if (streq(name, "2.0.0.127.bl.test") && type == T_A)
                add_addr(m, AF_INET, "127.0.0.2");
        else if (streq(name, "2.0.0.127.bl.test") && type == T_TXT) {
                add_txt(m, "listed ", "see http://bl.test/\x01");
                add_txt(m, "second", NULL);
        }
        return RC_NOERROR;
}

static int on_server(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        uint8_t q[512];
        struct sockaddr_storage from;
        socklen_t fromlen = sizeof from;
        char name[256];
        size_t off = 12, n = 0, qend;
        unsigned type;
        ssize_t len;
        Msg m = {};
        int rcode;

        len = recvfrom(fd, q, sizeof q, MSG_DONTWAIT, (struct sockaddr *) &from, &fromlen);
        if (len < 12)
                return 0;
        queries_seen++;
        while (off < (size_t) len && q[off] != 0) {
                size_t l = q[off];

                ASSERT_TRUE(l < 64 && off + 1 + l < (size_t) len);
                if (n > 0)
                        name[n++] = '.';
                for (size_t i = 0; i < l; i++)
                        name[n++] = (char) tolower(q[off + 1 + i]);
                off += 1 + l;
        }
        name[n] = '\0';
        off++;
        ASSERT_TRUE(off + 4 <= (size_t) len);
        type = (unsigned) (q[off] << 8 | q[off + 1]);
        qend = off + 4;

        /* The header and the question, echoed; the answers after them. */
        memcpy(m.buf, q, qend);
        m.len = qend;
        rcode = zone(name, type, &m);
        if (rcode < 0)
                return 0;
        m.buf[2] = 0x80 | (q[2] & 0x01);        /* QR, RD as asked */
        m.buf[3] = 0x80 | (uint8_t) rcode;      /* RA */
        m.buf[4] = 0;
        m.buf[5] = 1;
        m.buf[6] = (uint8_t) (m.ancount >> 8);
        m.buf[7] = (uint8_t) m.ancount;
        memset(m.buf + 8, 0, 4);
        ASSERT_TRUE(sendto(fd, m.buf, m.len, 0, (struct sockaddr *) &from, fromlen) == (ssize_t) m.len);
        return 0;
}

/* The test harness. */

static sd_event *event;
static Resolver *resolver;

typedef struct Result {
        bool called;
        unsigned calls;
        ResolverStatus status;
        char items[16][300];
        size_t n;
} Result;

static void format_address(const ResolverAddress *a, char *buf, size_t size) {
        ASSERT_TRUE(inet_ntop(a->family, a->bytes, buf, (socklen_t) size));
}

static void on_reply(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        Result *res = userdata;

        res->called = true;
        res->calls++;
        res->status = reply->status;
        ASSERT_TRUE(reply->detail);
        res->n = 0;
        for (size_t i = 0; i < reply->n_mx && res->n < 16; i++)
                snprintf(res->items[res->n++], sizeof res->items[0], "%u %s", reply->mx[i].preference,
                         reply->mx[i].host);
        for (size_t i = 0; i < reply->n_addresses && res->n < 16; i++)
                format_address(&reply->addresses[i], res->items[res->n++], sizeof res->items[0]);
        for (size_t i = 0; i < reply->n_names && res->n < 16; i++)
                snprintf(res->items[res->n++], sizeof res->items[0], "%s", reply->names[i]);
        for (size_t i = 0; i < reply->n_txt && res->n < 16; i++)
                snprintf(res->items[res->n++], sizeof res->items[0], "%s", reply->txt[i]);
        if (reply->status != RESOLVER_FOUND)
                ASSERT_EQ(res->n, 0);
}

static void wait_for(Result *res) {
        /* Bounded by the resolver's deadline; 200 loop runs of at most 100 ms is far beyond it. */
        for (unsigned i = 0; i < 200 && !res->called; i++)
                ASSERT_OK(sd_event_run(event, 100 * 1000));
        ASSERT_TRUE(res->called);
}

static Result lookup_mx(const char *domain) {
        Result res = {};
        ResolverQuery *q = NULL;

        ASSERT_OK(resolver_lookup_mx(resolver, domain, on_reply, &res, &q));
        ASSERT_TRUE(q);
        wait_for(&res);
        return res;
}

static Result lookup_address(const char *host, int family) {
        Result res = {};

        ASSERT_OK(resolver_lookup_address(resolver, host, family, on_reply, &res, NULL));
        wait_for(&res);
        return res;
}

static Result lookup(const char *name, ResolverType type) {
        Result res = {};

        ASSERT_OK(resolver_lookup(resolver, name, type, on_reply, &res, NULL));
        wait_for(&res);
        return res;
}

static ResolverAddress address(const char *text) {
        ResolverAddress a = { .family = strchr(text, ':') ? AF_INET6 : AF_INET };

        ASSERT_TRUE(inet_pton(a.family, text, a.bytes) == 1);
        return a;
}

static Result lookup_ptr(const char *text) {
        Result res = {};
        ResolverAddress a = address(text);

        ASSERT_OK(resolver_lookup_ptr(resolver, &a, on_reply, &res, NULL));
        wait_for(&res);
        return res;
}

TEST(names) {
        char name[RESOLVER_NAME_MAX + 1], longname[300];
        ResolverAddress a = address("192.0.2.1"), b = address("2001:db8::1"), u = { .family = AF_UNIX };

        ASSERT_OK(resolver_ptr_name(&a, name, sizeof name));
        ASSERT_STREQ(name, "1.2.0.192.in-addr.arpa");
        ASSERT_OK(resolver_ptr_name(&b, name, sizeof name));
        ASSERT_STREQ(name, "1.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.0.8.b.d.0.1.0.0.2.ip6.arpa");
        ASSERT_ERR(resolver_ptr_name(&u, name, sizeof name), EAFNOSUPPORT);

        ASSERT_OK(resolver_name_valid("example.org"));
        ASSERT_OK(resolver_name_valid("example.org."));
        ASSERT_OK(resolver_name_valid("localhost"));
        ASSERT_ERR(resolver_name_valid(""), EINVAL);
        ASSERT_ERR(resolver_name_valid("."), EINVAL);
        ASSERT_ERR(resolver_name_valid("a..b"), EINVAL);
        ASSERT_ERR(resolver_name_valid(".a"), EINVAL);
        ASSERT_ERR(resolver_name_valid("a b"), EINVAL);
        ASSERT_ERR(resolver_name_valid("a\\.b"), EINVAL);
        memset(longname, 'a', 64);
        longname[64] = '\0';
        ASSERT_ERR(resolver_name_valid(longname), EINVAL);
        longname[63] = '\0';
        ASSERT_OK(resolver_name_valid(longname));
        for (size_t i = 0; i < 255; i++)
                longname[i] = i % 2 ? '.' : 'a';
        longname[255] = '\0';
        ASSERT_ERR(resolver_name_valid(longname), EINVAL);
        longname[253] = '\0';   /* 253 characters, ending in a label */
        ASSERT_OK(resolver_name_valid(longname));

        ASSERT_TRUE(resolver_address_equal(&a, &a));
        ASSERT_TRUE(!resolver_address_equal(&a, &b));
        ASSERT_STREQ(resolver_status_to_string(RESOLVER_NULL_MX), "null-mx");
        ASSERT_TRUE(!resolver_status_to_string(_RESOLVER_STATUS_MAX));

        /* A name that cannot be sent fails at once, without callback. */
        Result res = {};
        ASSERT_ERR(resolver_lookup_mx(resolver, "a..b", on_reply, &res, NULL), EINVAL);
        ASSERT_ERR(resolver_lookup_address(resolver, "host.test", AF_UNIX, on_reply, &res, NULL), EAFNOSUPPORT);
        ASSERT_TRUE(!res.called);
}

TEST(mx) {
        Result res;
        bool firsts[3] = {};

        /* Preference order always; the three of preference 10 in an order that varies. */
        for (unsigned run = 0; run < 40; run++) {
                res = lookup_mx("mx.test");
                ASSERT_EQ(res.status, RESOLVER_FOUND);
                ASSERT_EQ(res.n, 5);
                ASSERT_STREQ(res.items[0], "5 first.mx.test");
                ASSERT_STREQ(res.items[4], "20 last.mx.test");
                for (unsigned i = 1; i <= 3; i++)
                        ASSERT_TRUE(strncmp(res.items[i], "10 ", 3) == 0);
                ASSERT_TRUE(!streq(res.items[1], res.items[2]) && !streq(res.items[2], res.items[3]) &&
                            !streq(res.items[1], res.items[3]));
                firsts[res.items[1][3] - 'a'] = true;
        }
        ASSERT_EQ(firsts[0] + firsts[1] + firsts[2], 3);

        res = lookup_mx("mx.test.");
        ASSERT_EQ(res.status, RESOLVER_FOUND);

        res = lookup_mx("nullmx.test");
        ASSERT_EQ(res.status, RESOLVER_NULL_MX);

        res = lookup_mx("dotamong.test");
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.items[0], "10 real.dotamong.test");

        res = lookup_mx("nodata.test");
        ASSERT_EQ(res.status, RESOLVER_NODATA);
        res = lookup_mx("nx.test");
        ASSERT_EQ(res.status, RESOLVER_NXDOMAIN);
        res = lookup_mx("fail.test");
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);
}

TEST(address) {
        Result res;

        res = lookup_address("host.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 3);
        ASSERT_STREQ(res.items[0], "192.0.2.1");
        ASSERT_STREQ(res.items[1], "192.0.2.2");
        ASSERT_STREQ(res.items[2], "2001:db8::1");

        res = lookup_address("host.test", AF_INET6);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.items[0], "2001:db8::1");

        res = lookup_address("host.test", AF_INET);
        ASSERT_EQ(res.n, 2);

        res = lookup_address("v4only.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.items[0], "192.0.2.3");
        res = lookup_address("v4only.test", AF_INET6);
        ASSERT_EQ(res.status, RESOLVER_NODATA);

        /* One family failing does not hide what the other found. */
        res = lookup_address("halffail.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_STREQ(res.items[0], "192.0.2.4");
        res = lookup_address("halffail.test", AF_INET6);
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);

        res = lookup_address("nx.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_NXDOMAIN);
        res = lookup_address("fail.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);
}

TEST(ptr_and_generic) {
        Result res;

        res = lookup_ptr("192.0.2.1");
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.items[0], "host.test");
        res = lookup_ptr("2001:db8::1");
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_STREQ(res.items[0], "v6.host.test");
        res = lookup_ptr("192.0.2.9");
        ASSERT_EQ(res.status, RESOLVER_NODATA);

        res = lookup("2.0.0.127.bl.test", RESOLVER_TYPE_A);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 1);
        ASSERT_STREQ(res.items[0], "127.0.0.2");
        res = lookup("2.0.0.127.bl.test", RESOLVER_TYPE_TXT);
        ASSERT_EQ(res.status, RESOLVER_FOUND);
        ASSERT_EQ(res.n, 2);
        ASSERT_STREQ(res.items[0], "listed see http://bl.test/?");
        ASSERT_STREQ(res.items[1], "second");
        res = lookup("3.0.0.127.bl.test", RESOLVER_TYPE_A);
        ASSERT_EQ(res.status, RESOLVER_NODATA);
        res = lookup("nx.test", RESOLVER_TYPE_TXT);
        ASSERT_EQ(res.status, RESOLVER_NXDOMAIN);
}

TEST(timeout) {
        Result res;

        res = lookup_mx("black.hole.test");
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);
        res = lookup_address("black.hole.test", AF_UNSPEC);
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);
        ASSERT_EQ(res.calls, 1);
}

TEST(cancel) {
        Result cancelled = {}, hole = {}, other;
        ResolverQuery *q = NULL, *h = NULL;
        unsigned seen;

        /* Cancelled before its reply came: the reply arrives (the server saw the query) and is dropped. */
        seen = queries_seen;
        ASSERT_OK(resolver_lookup_mx(resolver, "mx.test", on_reply, &cancelled, &q));
        ASSERT_OK(resolver_lookup_address(resolver, "black.hole.test", AF_UNSPEC, on_reply, &hole, &h));
        q = resolver_query_cancel(q);
        ASSERT_TRUE(!q);
        h = resolver_query_cancel(h);
        other = lookup_mx("nx.test");
        ASSERT_EQ(other.status, RESOLVER_NXDOMAIN);
        ASSERT_TRUE(queries_seen >= seen + 2);
        /* Past the black hole's deadline too. */
        other = lookup_mx("black.hole.test");
        ASSERT_EQ(other.status, RESOLVER_TEMPFAIL);
        ASSERT_TRUE(!cancelled.called);
        ASSERT_TRUE(!hole.called);
        ASSERT_TRUE(!resolver_query_cancel(NULL));
}

/* A callback that starts another lookup and cancels a third, from inside the resolver. */
typedef struct Chain {
        Result second;
        ResolverQuery *victim;
        bool done;
} Chain;

static void on_chain(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        Chain *c = userdata;

        ASSERT_EQ(reply->status, RESOLVER_NXDOMAIN);
        c->victim = resolver_query_cancel(c->victim);
        ASSERT_OK(resolver_lookup_address(resolver, "host.test", AF_INET, on_reply, &c->second, NULL));
        c->done = true;
}

TEST(reentrant) {
        Chain c = {};
        Result victim = {};

        ASSERT_OK(resolver_lookup_mx(resolver, "black.hole.test", on_reply, &victim, &c.victim));
        ASSERT_OK(resolver_lookup_mx(resolver, "nx.test", on_chain, &c, NULL));
        wait_for(&c.second);
        ASSERT_TRUE(c.done);
        ASSERT_EQ(c.second.status, RESOLVER_FOUND);
        ASSERT_TRUE(!victim.called);
}

TEST(free_with_pending) {
        Result a = {}, b = {};

        /* Freed with lookups running: no callback, no leak (under ASan), no stray event source. */
        ASSERT_OK(resolver_lookup_mx(resolver, "black.hole.test", on_reply, &a, NULL));
        ASSERT_OK(resolver_lookup_address(resolver, "host.test", AF_UNSPEC, on_reply, &b, NULL));
        resolver = resolver_free(resolver);
        for (unsigned i = 0; i < 5; i++)
                ASSERT_OK(sd_event_run(event, 10 * 1000));
        ASSERT_TRUE(!a.called && !b.called);
}

TEST(no_server) {
        /* Nothing listens on the port: the query fails at once (ICMP refused) or at its deadline. */
        ResolverAddress lo = address("127.0.0.1");
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t salen = sizeof sa;
        int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);

        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(getsockname(fd, (struct sockaddr *) &sa, &salen));
        close(fd);
        ASSERT_OK(resolver_new_with_server(event, &lo, ntohs(sa.sin_port), 300, 2, &resolver));
        Result res = lookup_mx("mx.test");
        ASSERT_EQ(res.status, RESOLVER_TEMPFAIL);
        resolver = resolver_free(resolver);
}

int main(void) {
        struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        socklen_t salen = sizeof sa;
        ResolverAddress lo = address("127.0.0.1");
        sd_event_source *server_source = NULL;
        int fd;

        ASSERT_OK(sd_event_new(&event));
        fd = socket(AF_INET, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        ASSERT_TRUE(fd >= 0);
        ASSERT_OK(bind(fd, (struct sockaddr *) &sa, sizeof sa));
        ASSERT_OK(getsockname(fd, (struct sockaddr *) &sa, &salen));
        ASSERT_OK(sd_event_add_io(event, &server_source, fd, EPOLLIN, on_server, NULL));
        /* 300 ms a try, two tries: a black-holed lookup ends at its 600 ms deadline. */
        ASSERT_OK(resolver_new_with_server(event, &lo, ntohs(sa.sin_port), 300, 2, &resolver));

        RUN(names);
        RUN(mx);
        RUN(address);
        RUN(ptr_and_generic);
        RUN(timeout);
        RUN(cancel);
        RUN(reentrant);
        RUN(free_with_pending);
        RUN(no_server);

        sd_event_source_disable_unref(server_source);
        close(fd);
        sd_event_unref(event);
        return 0;
}
