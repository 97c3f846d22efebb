/* smtpd-dnsbl.c: DNS for the smtpd process's reject_rbl_client: query names, DNS messages, and a
 * non-blocking UDP resolver.
 *
 * A reply comes from whoever can send a UDP datagram to our port, so it is checked before it is believed:
 * the socket is connected to the name server (the kernel drops datagrams from anyone else), the source
 * port is the kernel's random ephemeral port, the query ID is random, and the reply must repeat our
 * question exactly. The parser reads at most the datagram and follows at most a few compression pointers. */
/* resolv.h pulls in sys/param.h, whose MIN and MAX macro.h defines its own way. */
#include <resolv.h>
#undef MIN
#undef MAX

#include <arpa/inet.h>
#include <assert.h>
#include <ctype.h>
#include <netinet/in.h>
#include <sys/random.h>
#include <sys/socket.h>

#include "daemon.h"
#include "log.h"
#include "smtpd-dnsbl.h"

/* Compression pointers followed while reading one name: a loop must end. */
#define DNS_POINTERS_MAX 16
#define DNS_HEADER_SIZE 12U
#define DNS_SERVERS_MAX 3

int smtpd_dnsbl_query_name(const SmtpdAddress *client, const char *domain, char *ret, size_t size) {
        char name[SMTPD_DNS_NAME_MAX + 64 + 2];
        size_t n = 0;

        assert(size > SMTPD_DNS_NAME_MAX);
        if (isempty(domain))
                return -EINVAL;
        if (client->family == AF_INET)
                n = (size_t) snprintf(name, sizeof name, "%u.%u.%u.%u.", client->bytes[3], client->bytes[2],
                                      client->bytes[1], client->bytes[0]);
        else if (client->family == AF_INET6)
                for (int i = 15; i >= 0; i--)
                        n += (size_t) snprintf(name + n, sizeof name - n, "%x.%x.", client->bytes[i] & 0xf,
                                               client->bytes[i] >> 4);
        else
                return -EAFNOSUPPORT;

        size_t dlen = strlen(domain);
        if (dlen > 0 && domain[dlen - 1] == '.')
                dlen--;
        if (dlen == 0 || n + dlen > SMTPD_DNS_NAME_MAX)
                return -ENAMETOOLONG;
        memcpy(name + n, domain, dlen);
        name[n + dlen] = '\0';
        memcpy(ret, name, n + dlen + 1);
        return 0;
}

static int octet_parse(const char **p, uint8_t *ret) {
        unsigned v = 0, digits = 0;

        while (**p >= '0' && **p <= '9') {
                v = v * 10 + (unsigned) (**p - '0');
                (*p)++;
                if (++digits > 3 || v > 255)
                        return -EINVAL;
        }
        if (digits == 0)
                return -EINVAL;
        *ret = (uint8_t) v;
        return 0;
}

int smtpd_dnsbl_filter_parse(const char *s, SmtpdDnsblFilter *ret) {
        SmtpdDnsblFilter f = {};
        const char *p = s;

        for (unsigned i = 0; i < 4; i++) {
                bool list;

                if (i > 0 && *p++ != '.')
                        return -EINVAL;
                list = *p == '[';
                if (list)
                        p++;
                for (;;) {
                        uint8_t lo, hi;

                        if (f.n[i] >= SMTPD_DNSBL_FILTER_RANGES || octet_parse(&p, &lo) < 0)
                                return -EINVAL;
                        hi = lo;
                        if (list && p[0] == '.' && p[1] == '.') {
                                p += 2;
                                if (octet_parse(&p, &hi) < 0 || hi < lo)
                                        return -EINVAL;
                        }
                        f.ranges[i][f.n[i]].lo = lo;
                        f.ranges[i][f.n[i]].hi = hi;
                        f.n[i]++;
                        if (!list)
                                break;
                        if (*p == ';') {
                                p++;
                                continue;
                        }
                        if (*p++ != ']')
                                return -EINVAL;
                        break;
                }
        }
        if (*p != '\0')
                return -EINVAL;
        *ret = f;
        return 0;
}

bool smtpd_dnsbl_filter_match(const SmtpdDnsblFilter *f, const uint8_t a[4]) {
        for (unsigned i = 0; i < 4; i++) {
                bool match = false;

                for (unsigned k = 0; k < f->n[i] && !match; k++)
                        match = a[i] >= f->ranges[i][k].lo && a[i] <= f->ranges[i][k].hi;
                if (!match)
                        return false;
        }
        return true;
}

/* Writes name in wire form at buf; returns its length. */
static int name_encode(const char *name, uint8_t *buf, size_t size) {
        size_t len = strlen(name), off = 0;

        if (len > 0 && name[len - 1] == '.')
                len--;
        if (len == 0 || len > SMTPD_DNS_NAME_MAX)
                return len == 0 ? -EINVAL : -ENAMETOOLONG;
        for (size_t start = 0; start <= len;) {
                const char *dot = memchr(name + start, '.', len - start);
                size_t label = dot ? (size_t) (dot - (name + start)) : len - start;

                if (label == 0)
                        return -EINVAL;
                if (label > 63)
                        return -ENAMETOOLONG;
                if (label + 1 > size - off)
                        return -ENOBUFS;
                buf[off++] = (uint8_t) label;
                memcpy(buf + off, name + start, label);
                off += label;
                start += label + 1;
        }
        if (off >= size)
                return -ENOBUFS;
        buf[off++] = 0;
        return (int) off;
}

static void put16(uint8_t *p, uint16_t v) {
        p[0] = (uint8_t) (v >> 8);
        p[1] = (uint8_t) v;
}

static uint16_t get16(const uint8_t *p) {
        return (uint16_t) (p[0] << 8 | p[1]);
}

int smtpd_dns_query_build(uint16_t id, const char *name, uint16_t type, uint8_t *buf, size_t size) {
        int n;

        if (size < DNS_HEADER_SIZE + 4)
                return -ENOBUFS;
        memset(buf, 0, DNS_HEADER_SIZE);
        put16(buf, id);
        buf[2] = 0x01;          /* RD: recursion desired */
        put16(buf + 4, 1);      /* QDCOUNT */
        n = name_encode(name, buf + DNS_HEADER_SIZE, size - DNS_HEADER_SIZE - 4);
        if (n < 0)
                return n;
        put16(buf + DNS_HEADER_SIZE + n, type);
        put16(buf + DNS_HEADER_SIZE + n + 2, SMTPD_DNS_CLASS_IN);
        return (int) DNS_HEADER_SIZE + n + 4;
}

/* Reads the name at *off (following compression pointers) into ret as dotted text without the final
 * dot, in lower case; *off moves past the name as it stands at *off. */
static int name_read(const uint8_t *buf, size_t len, size_t *off, char *ret, size_t size) {
        size_t p = *off, out = 0, end = 0;
        unsigned pointers = 0;
        bool jumped = false;

        for (;;) {
                if (p >= len)
                        return -EBADMSG;
                uint8_t l = buf[p];

                if ((l & 0xC0) == 0xC0) {
                        if (len - p < 2 || ++pointers > DNS_POINTERS_MAX)
                                return -EBADMSG;
                        if (!jumped)
                                end = p + 2;
                        jumped = true;
                        p = (size_t) ((l & 0x3F) << 8 | buf[p + 1]);
                        continue;
                }
                if (l & 0xC0)           /* 0x40, 0x80: extended label types, obsolete */
                        return -EBADMSG;
                if (l == 0) {
                        if (!jumped)
                                end = p + 1;
                        break;
                }
                if (l > len - p - 1)
                        return -EBADMSG;
                /* the label, its dot (or the final NUL) */
                if (out + l + 1 > size || out + l > SMTPD_DNS_NAME_MAX)
                        return -EBADMSG;
                if (out > 0)
                        ret[out - 1] = '.';
                for (size_t i = 0; i < l; i++)
                        ret[out + i] = (char) tolower(buf[p + 1 + i]);
                out += l + 1;
                ret[out - 1] = '\0';
                p += 1 + l;
        }
        if (out == 0) {
                if (size < 1)
                        return -EBADMSG;
                ret[0] = '\0';          /* the root */
        }
        *off = end;
        return 0;
}

static bool name_equal(const char *a, const char *b) {
        size_t la = strlen(a), lb = strlen(b);

        if (la > 0 && a[la - 1] == '.')
                la--;
        if (lb > 0 && b[lb - 1] == '.')
                lb--;
        return la == lb && strncasecmp(a, b, la) == 0;
}

/* The character-strings of a TXT record's data, joined, as printable ASCII. */
static int txt_read(const uint8_t *rdata, size_t rdlen, char *ret, size_t size) {
        size_t out = 0;

        for (size_t p = 0; p < rdlen;) {
                size_t l = rdata[p];

                if (l > rdlen - p - 1)
                        return -EBADMSG;
                for (size_t i = 0; i < l && out + 1 < size; i++) {
                        uint8_t c = rdata[p + 1 + i];
                        ret[out++] = c >= 0x20 && c < 0x7F ? (char) c : '?';
                }
                p += 1 + l;
        }
        ret[out] = '\0';
        return 0;
}

int smtpd_dns_reply_parse(const uint8_t *buf, size_t len, uint16_t id, const char *name, uint16_t type,
                          SmtpdDnsReply *ret) {
        SmtpdDnsReply reply = {};
        char qname[SMTPD_DNS_NAME_MAX + 2];
        size_t off = DNS_HEADER_SIZE;
        unsigned qdcount, ancount, nscount, arcount;
        int r;

        if (len < DNS_HEADER_SIZE)
                return -EBADMSG;
        qdcount = get16(buf + 4);
        ancount = get16(buf + 6);
        nscount = get16(buf + 8);
        arcount = get16(buf + 10);
        /* QR set, opcode QUERY, one question: anything else is not our reply. */
        if (get16(buf) != id || !(buf[2] & 0x80) || (buf[2] & 0x78) != 0 || qdcount != 1)
                return -ESRCH;
        reply.truncated = buf[2] & 0x02;
        reply.rcode = buf[3] & 0x0F;

        r = name_read(buf, len, &off, qname, sizeof qname);
        if (r < 0)
                return r;
        if (len - off < 4)
                return -EBADMSG;
        if (!name_equal(qname, name) || get16(buf + off) != type || get16(buf + off + 2) != SMTPD_DNS_CLASS_IN)
                return -ESRCH;
        off += 4;

        /* Every record is read, so that a malformed one anywhere fails the whole message; only answers
         * are kept. A truncated reply may end inside a record: what came whole is kept. */
        for (unsigned i = 0; i < ancount + nscount + arcount; i++) {
                char owner[SMTPD_DNS_NAME_MAX + 2];
                uint16_t rtype = 0, rclass = 0, rdlen = 0;

                r = name_read(buf, len, &off, owner, sizeof owner);
                if (r == 0 && len - off < 10)
                        r = -EBADMSG;
                if (r == 0) {
                        rtype = get16(buf + off);
                        rclass = get16(buf + off + 2);
                        rdlen = get16(buf + off + 8);
                        off += 10;
                        if (rdlen > len - off)
                                r = -EBADMSG;
                }
                if (r < 0) {
                        if (reply.truncated)
                                break;
                        return r;
                }
                if (i < ancount && rclass == SMTPD_DNS_CLASS_IN) {
                        if (rtype == SMTPD_DNS_TYPE_A && type == SMTPD_DNS_TYPE_A) {
                                if (rdlen != 4)
                                        return -EBADMSG;
                                if (reply.n_a < SMTPD_DNS_A_MAX)
                                        memcpy(reply.a[reply.n_a++], buf + off, 4);
                        } else if (rtype == SMTPD_DNS_TYPE_TXT && type == SMTPD_DNS_TYPE_TXT && !reply.has_txt) {
                                r = txt_read(buf + off, rdlen, reply.txt, sizeof reply.txt);
                                if (r < 0)
                                        return r;
                                reply.has_txt = true;
                        }
                }
                off += rdlen;
        }
        if (off != len && !reply.truncated)
                return -EBADMSG;
        *ret = reply;
        return 0;
}

/* The resolver. */

struct SmtpdResolver {
        sd_event *event;
        struct sockaddr_storage servers[DNS_SERVERS_MAX];
        socklen_t server_lens[DNS_SERVERS_MAX];
        unsigned n_servers;
        uint64_t timeout_usec;          /* per attempt */
        unsigned attempts;              /* per server */
};

struct SmtpdDnsQuery {
        SmtpdResolver *resolver;
        char name[SMTPD_DNS_NAME_MAX + 1];
        uint16_t type, id;
        uint8_t packet[SMTPD_DNS_UDP_MAX];
        size_t packet_len;
        unsigned attempt;               /* of n_servers * attempts */
        int fd;
        sd_event_source *io, *timer;
        SmtpdDnsCallback callback;
        void *userdata;
};

int smtpd_resolver_new(sd_event *event, SmtpdResolver **ret) {
        _cleanup_(smtpd_resolver_freep) SmtpdResolver *r = NULL;
        struct __res_state state = {};

        r = calloc(1, sizeof(SmtpdResolver));
        if (!r)
                return -ENOMEM;
        r->event = sd_event_ref(event);

        /* glibc's reading of /etc/resolv.conf: its name servers in order (127.0.0.1 when there is none),
         * "options timeout:n attempts:n". An IPv6 server leaves its nsaddr_list slot empty and is in
         * _u._ext.nsaddrs (glibc's layout since 2.26). */
        if (res_ninit(&state) < 0)
                return log_error_errno(ENOENT, "Failed to read the resolver configuration.");
        for (int i = 0; i < state.nscount && i < MAXNS && r->n_servers < DNS_SERVERS_MAX; i++) {
                const struct sockaddr_in6 *in6 = state._u._ext.nsaddrs[i];

                if (state.nsaddr_list[i].sin_family == AF_INET) {
                        memcpy(&r->servers[r->n_servers], &state.nsaddr_list[i], sizeof(struct sockaddr_in));
                        r->server_lens[r->n_servers++] = sizeof(struct sockaddr_in);
                } else if (in6 && in6->sin6_family == AF_INET6) {
                        memcpy(&r->servers[r->n_servers], in6, sizeof(struct sockaddr_in6));
                        r->server_lens[r->n_servers++] = sizeof(struct sockaddr_in6);
                }
        }
        r->timeout_usec = (uint64_t) MAX(state.retrans, 1) * USEC_PER_SEC;
        r->attempts = (unsigned) MAX(state.retry, 1);
        res_nclose(&state);
        if (r->n_servers == 0) {
                struct sockaddr_in *in = (struct sockaddr_in *) &r->servers[0];

                log_warning("No name server in the resolver configuration, using 127.0.0.1.");
                in->sin_family = AF_INET;
                in->sin_port = htons(53);
                in->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
                r->server_lens[0] = sizeof(struct sockaddr_in);
                r->n_servers = 1;
        }
        *ret = TAKE_PTR(r);
        return 0;
}

SmtpdResolver *smtpd_resolver_free(SmtpdResolver *r) {
        if (!r)
                return NULL;
        sd_event_unref(r->event);
        free(r);
        return NULL;
}

SmtpdDnsQuery *smtpd_dns_query_free(SmtpdDnsQuery *q) {
        if (!q)
                return NULL;
        sd_event_source_disable_unref(q->io);
        sd_event_source_disable_unref(q->timer);
        safe_close(q->fd);
        free(q);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdDnsQuery *, smtpd_dns_query_free);

static void query_finish(SmtpdDnsQuery *q, int error, const SmtpdDnsReply *reply) {
        q->callback(q, error, reply, q->userdata);
        smtpd_dns_query_free(q);
}

static int query_send(SmtpdDnsQuery *q);

static int on_query_io(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        SmtpdDnsQuery *q = userdata;
        uint8_t buf[SMTPD_DNS_UDP_MAX + 1];
        SmtpdDnsReply reply;
        ssize_t n;
        int r;

        n = recv(fd, buf, sizeof buf, MSG_DONTWAIT);
        if (n < 0) {
                if (errno == EAGAIN || errno == EINTR)
                        return 0;
                /* ECONNREFUSED: nothing listens there; the next server, or the next attempt. */
                log_debug_errno(errno, "DNS query for %s failed: %m", q->name);
                r = query_send(q);
                if (r < 0)
                        query_finish(q, r, NULL);
                return 0;
        }
        if ((size_t) n > SMTPD_DNS_UDP_MAX) {
                log_debug("Oversized DNS reply for %s, ignoring.", q->name);
                return 0;
        }
        r = smtpd_dns_reply_parse(buf, (size_t) n, q->id, q->name, q->type, &reply);
        if (r < 0) {
                /* Not ours, or garbage: keep waiting for the real reply until the timeout. */
                log_debug_errno(r, "Ignoring a DNS reply that does not answer the query for %s: %m", q->name);
                return 0;
        }
        query_finish(q, 0, &reply);
        return 0;
}

static int on_query_timer(sd_event_source *source, uint64_t usec, void *userdata) {
        SmtpdDnsQuery *q = userdata;
        int r;

        r = query_send(q);
        if (r < 0)
                query_finish(q, r, NULL);
        return 0;
}

/* The next attempt: a new socket (so a new random port) to the next server. -ETIMEDOUT when all are used. */
static int query_send(SmtpdDnsQuery *q) {
        SmtpdResolver *r = q->resolver;
        unsigned server;
        int k;

        q->io = sd_event_source_disable_unref(q->io);
        q->fd = safe_close(q->fd);
        for (;;) {
                if (q->attempt >= r->n_servers * r->attempts)
                        return -ETIMEDOUT;
                server = q->attempt++ % r->n_servers;
                q->fd = socket(r->servers[server].ss_family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
                if (q->fd < 0)
                        return -errno;
                if (connect(q->fd, (struct sockaddr *) &r->servers[server], r->server_lens[server]) >= 0 &&
                    send(q->fd, q->packet, q->packet_len, MSG_NOSIGNAL) == (ssize_t) q->packet_len)
                        break;
                log_debug_errno(errno, "Failed to send a DNS query for %s: %m", q->name);
                q->fd = safe_close(q->fd);
        }
        k = sd_event_add_io(r->event, &q->io, q->fd, EPOLLIN, on_query_io, q);
        if (k < 0)
                return k;
        (void) sd_event_source_set_time(q->timer, now_monotonic_usec() + r->timeout_usec);
        (void) sd_event_source_set_enabled(q->timer, SD_EVENT_ONESHOT);
        return 0;
}

int smtpd_dns_query_start(SmtpdResolver *r, const char *name, uint16_t type, SmtpdDnsCallback callback,
                          void *userdata, SmtpdDnsQuery **ret) {
        _cleanup_(smtpd_dns_query_freep) SmtpdDnsQuery *q = NULL;
        int n, k;

        q = calloc(1, sizeof(SmtpdDnsQuery));
        if (!q)
                return -ENOMEM;
        q->resolver = r;
        q->fd = -EBADF;
        q->type = type;
        q->callback = callback;
        q->userdata = userdata;
        if (strlen(name) > SMTPD_DNS_NAME_MAX)
                return -ENAMETOOLONG;
        strcpy(q->name, name);
        if (getrandom(&q->id, sizeof q->id, GRND_NONBLOCK) != sizeof q->id)
                return -errno;
        n = smtpd_dns_query_build(q->id, name, type, q->packet, sizeof q->packet);
        if (n < 0)
                return n;
        q->packet_len = (size_t) n;

        k = sd_event_add_time(r->event, &q->timer, CLOCK_MONOTONIC, UINT64_MAX, 0, on_query_timer, q);
        if (k < 0)
                return k;
        k = query_send(q);
        if (k < 0)
                return k;
        *ret = TAKE_PTR(q);
        return 0;
}
