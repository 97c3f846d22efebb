/* rewrite-address.c: canonical address form, transport(5) results and resolution; pure, for the rewrite
 * role, its unit test and its fuzz target. */
#include <ctype.h>
#include <strings.h>

#include "address.h"
#include "config.h"
#include "rewrite-address.h"
#include "string-util.h"

/* Where the local part ends, scanning quotes and backslash escapes: the last '@' outside quotes. A
 * backslash outside quotes escapes the next character too (RFC 5321 quoted-pair only occurs inside
 * quotes, but Postfix's tokenizer accepts it outside). -2: unbalanced quotes, or a backslash at the end
 * (which would escape whatever is appended). */
static ssize_t find_at(const char *s, size_t len) {
        ssize_t at = -1;
        bool quoted = false;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\\' && i + 1 == len)
                        return -2;
                if (s[i] == '\\')
                        i++;
                else if (s[i] == '"')
                        quoted = !quoted;
                else if (s[i] == '@' && !quoted)
                        at = (ssize_t) i;
        }
        return quoted ? -2 : at;
}

/* The first (or last) c outside quotes, or -1. */
static ssize_t find_unquoted(const char *s, size_t len, char c, bool first) {
        ssize_t found = -1;
        bool quoted = false;

        for (size_t i = 0; i < len; i++) {
                if (s[i] == '\\' && i + 1 < len)
                        i++;
                else if (s[i] == '"')
                        quoted = !quoted;
                else if (s[i] == c && !quoted) {
                        found = (ssize_t) i;
                        if (first)
                                break;
                }
        }
        return found;
}

ssize_t rewrite_address_at(const char *addr) {
        ssize_t at = find_at(addr, strlen(addr));
        return at < 0 ? -1 : at;
}

/* The first ':' outside quotes, which ends a source route, or NULL. */
static const char *route_end(const char *s) {
        bool quoted = false;

        for (const char *p = s; *p; p++) {
                if (*p == '\\' && p[1])
                        p++;
                else if (*p == '"')
                        quoted = !quoted;
                else if (*p == ':' && !quoted)
                        return p;
        }
        return NULL;
}

int rewrite_address(const RewriteContext *ctx, const char *addr, char **ret) {
        size_t len = strlen(addr), dlen;
        const char *s = addr, *domain;
        ssize_t at;
        char *out = NULL;

        if (len > REWRITE_INPUT_MAX)
                return -E2BIG;
        for (size_t i = 0; i < len; i++)
                if ((unsigned char) addr[i] < 0x20 || addr[i] == 0x7F)
                        return -EINVAL;

        /* RFC 5321 4.1.1.3: a source route ("@relay1,@relay2:user@domain") is to be ignored. */
        if (s[0] == '@') {
                const char *colon = route_end(s);
                if (colon) {
                        s = colon + 1;
                        if (*s == '\0')
                                return -EINVAL;
                }
        }
        len = strlen(s);
        at = find_at(s, len);
        if (at == -2)
                return -EINVAL;

        /* The old forms, only where there is no '@' to say otherwise. */
        _cleanup_free_ char *swapped = NULL;
        if (at < 0 && (ctx->swap_bangpath || ctx->allow_percent_hack)) {
                ssize_t bang = ctx->swap_bangpath ? find_unquoted(s, len, '!', true) : -1;
                ssize_t pct = ctx->allow_percent_hack ? find_unquoted(s, len, '%', false) : -1;
                int n = 0;

                if (bang > 0 && (size_t) bang + 1 < len)
                        n = asprintf(&swapped, "%s@%.*s", s + bang + 1, (int) bang, s);
                else if (pct > 0 && (size_t) pct + 1 < len)
                        n = asprintf(&swapped, "%.*s@%s", (int) pct, s, s + pct + 1);
                else
                        n = -EAGAIN;    /* nothing to take apart */
                if (n == -1) {
                        swapped = NULL; /* undefined after a failed asprintf() */
                        return -ENOMEM;
                }
                if (n >= 0) {
                        s = swapped;
                        len = (size_t) n;
                        at = find_at(s, len);
                }
        }

        if (at >= 0) {
                domain = s + at + 1;
                dlen = strlen(domain);
                while (dlen > 0 && domain[dlen - 1] == '.')
                        dlen--;
        } else {
                domain = NULL;
                dlen = 0;
                at = (ssize_t) len;
        }

        if (len == 0) {
                out = strdup("");
                if (!out)
                        return -ENOMEM;
                *ret = out;
                return 0;
        }

        if (dlen == 0) {
                /* "user" or "user@": the domain is $myorigin. */
                if (ctx->append_at_myorigin && !isempty(ctx->myorigin)) {
                        domain = ctx->myorigin;
                        dlen = strlen(domain);
                        while (dlen > 0 && domain[dlen - 1] == '.')
                                dlen--;
                } else
                        domain = NULL;
        }

        bool add_dot = domain && dlen > 0 && ctx->append_dot_mydomain && !isempty(ctx->mydomain) &&
                       domain[0] != '[' && !memchr(domain, '.', dlen);
        int n;
        if (!domain || dlen == 0)
                n = asprintf(&out, "%.*s", (int) at, s);
        else
                n = asprintf(&out, "%.*s@%.*s%s%s", (int) at, s, (int) dlen, domain, add_dot ? "." : "",
                             add_dot ? ctx->mydomain : "");
        if (n < 0)
                return -ENOMEM;
        if ((size_t) n > ADDRESS_MAX) {
                free(out);
                return -E2BIG;
        }
        /* What was taken apart and put together must read back the same way (a domain that ends in an
         * escaped dot, say, must not end in a backslash now). */
        if (find_at(out, (size_t) n) == -2) {
                free(out);
                return -EINVAL;
        }
        *ret = out;
        return 0;
}

static bool transport_name_valid(const char *s, size_t len) {
        for (size_t i = 0; i < len; i++)
                if (!isalnum((unsigned char) s[i]) && s[i] != '-' && s[i] != '_' && s[i] != '.')
                        return false;
        return true;
}

int rewrite_transport_parse(const char *value, char **ret_transport, char **ret_nexthop) {
        _cleanup_free_ char *transport = NULL, *nexthop = NULL;
        const char *v = value, *e, *colon;

        e = v + strlen(v);
        strstrip_span(&v, &e);
        colon = memchr(v, ':', (size_t) (e - v));
        const char *tend = colon ?: e;

        if (!transport_name_valid(v, (size_t) (tend - v)))
                return -EINVAL;
        if (tend > v) {
                transport = strndup(v, (size_t) (tend - v));
                if (!transport)
                        return -ENOMEM;
        }
        if (colon && colon + 1 < e) {
                nexthop = strndup(colon + 1, (size_t) (e - colon - 1));
                if (!nexthop)
                        return -ENOMEM;
        }
        *ret_transport = TAKE_PTR(transport);
        *ret_nexthop = TAKE_PTR(nexthop);
        return 0;
}

void rewrite_resolution_done(RewriteResolution *r) {
        r->transport = mfree(r->transport);
        r->nexthop = mfree(r->nexthop);
        r->address = mfree(r->address);
}

/* Applies a transport(5) result the way Postfix does: ":" changes nothing; an empty transport keeps the
 * one that would be used; an empty next hop becomes the recipient domain (nothing for error). */
static int apply_result(char *t, char *n, const char *domain, char **transport, char **nexthop) {
        if (!t && !n)
                return 0;
        if (t) {
                free(*transport);
                *transport = t;
        }
        if (n) {
                free(*nexthop);
                *nexthop = n;
                return 0;
        }
        n = strdup(streq(*transport, "error") ? "" : strempty(domain));
        if (!n)
                return -ENOMEM;
        free(*nexthop);
        *nexthop = n;
        return 0;
}

/* Looks key up; on a match, its parts override transport and nexthop. 1: matched. */
static int lookup_transport(const RewriteResolveContext *ctx, const char *key, bool partial, const char *domain,
                            char **transport, char **nexthop) {
        _cleanup_free_ char *value = NULL;
        char *t = NULL, *n = NULL;
        int r;

        r = ctx->lookup(key, partial, &value, ctx->userdata);
        if (r <= 0)
                return r;
        r = rewrite_transport_parse(value, &t, &n);
        if (r < 0)
                return r;
        r = apply_result(t, n, domain, transport, nexthop);
        return r < 0 ? r : 1;
}

/* sender_dependent_relayhost_maps, as Postfix: the sender, then its @domain; "<>" for the null sender. */
static int sender_relayhost(const RewriteResolveContext *ctx, char **ret) {
        _cleanup_free_ char *value = NULL;
        ssize_t at;
        int r;

        if (!ctx->relayhost_lookup || !ctx->sender)
                return 0;
        r = ctx->relayhost_lookup(isempty(ctx->sender) ? "<>" : ctx->sender, false, &value, ctx->userdata);
        at = rewrite_address_at(ctx->sender);
        if (r == 0 && at >= 0 && ctx->sender[at + 1])
                r = ctx->relayhost_lookup(ctx->sender + at, true, &value, ctx->userdata);
        if (r <= 0)
                return r;
        const char *v = value, *e = value + strlen(value);
        strstrip_span(&v, &e);
        if (v == e)
                return 0;
        *ret = strndup(v, (size_t) (e - v));
        return *ret ? 1 : -ENOMEM;
}

int rewrite_resolve(const RewriteResolveContext *ctx, const char *addr, RewriteResolution *ret) {
        _cleanup_free_ char *transport = NULL, *nexthop = NULL, *address = NULL, *domain = NULL;
        ssize_t at = rewrite_address_at(addr);
        bool local;
        int r;

        if (at >= 0) {
                size_t dlen = strlen(addr + at + 1);
                while (dlen > 0 && addr[at + 1 + dlen - 1] == '.')
                        dlen--;
                if (dlen > 0) {
                        domain = strndup(addr + at + 1, dlen);
                        if (!domain)
                                return -ENOMEM;
                }
        }
        local = !domain || config_list_contains_domain(ctx->mydestination, domain);
        /* As in Postfix, the local class comes first: a domain in both is delivered locally. */
        bool hosted = false;
        if (!local && ctx->virtual_domain) {
                r = ctx->virtual_domain(domain, ctx->userdata);
                if (r < 0)
                        return r;
                hosted = r > 0;
        }
        /* Then relay_domains (Postfix's relay class), before the default one. */
        bool relay = false;
        if (!local && !hosted && ctx->relay_domain) {
                r = ctx->relay_domain(domain, ctx->userdata);
                if (r < 0)
                        return r;
                relay = r > 0;
        }

        r = rewrite_transport_parse(local ? ctx->local_transport :
                                    hosted ? ctx->virtual_transport :
                                    relay  ? strempty(ctx->relay_transport) : ctx->default_transport,
                                    &transport, &nexthop);
        if (r < 0)
                return r;
        if (!transport)
                return -EINVAL;
        if (!nexthop && !local) {
                r = sender_relayhost(ctx, &nexthop);
                if (r < 0)
                        return r;
        }
        if (!nexthop) {
                const char *n = !local && !hosted && !isempty(ctx->relayhost) ? ctx->relayhost : domain;
                nexthop = strdup(strempty(n));
                if (!nexthop)
                        return -ENOMEM;
        }

        if (ctx->lookup && !isempty(addr)) {
                r = 0;
                if (domain)
                        r = lookup_transport(ctx, addr, false, domain, &transport, &nexthop);
                if (r == 0 && domain)
                        r = lookup_transport(ctx, domain, false, domain, &transport, &nexthop);
                /* Parent domains: ".example.org" matches every subdomain of example.org. */
                for (const char *p = domain ? strchr(domain, '.') : NULL; r == 0 && p; p = strchr(p + 1, '.'))
                        if (p[1] != '\0')
                                r = lookup_transport(ctx, p, true, domain, &transport, &nexthop);
                if (r == 0)
                        r = lookup_transport(ctx, "*", true, domain, &transport, &nexthop);
                if (r < 0)
                        return r;
        }

        address = strdup(addr);
        if (!address)
                return -ENOMEM;
        *ret = (RewriteResolution) {
                .transport = TAKE_PTR(transport),
                .nexthop = TAKE_PTR(nexthop),
                .address = TAKE_PTR(address),
        };
        return 0;
}
