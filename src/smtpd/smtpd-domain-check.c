/* smtpd-domain-check.c: reject_unknown_sender_domain and reject_unknown_recipient_domain in the smtpd
 * process, as Postfix: an address in a domain this server is not the final destination for, whose domain
 * has no MX record and no A or AAAA record, is refused (unknown_address_reject_code); a Null MX (RFC 7505)
 * is refused with nullmx_reject_code. reject_unknown_helo_hostname asks the same of the HELO name
 * (unknown_hostname_reject_code; a Null MX is no refusal). A temporary DNS failure is a 450, given now or,
 * by default, only if nothing else refuses (unknown_address_tempfail_action, unknown_helo_hostname_tempfail_action).
 *
 * The lookup runs on the session's resolver: the evaluation stops there (SMTPD_CHECK_WAIT), and once the
 * answer is in the session asks again, this check then deciding by the answer kept for the session. */
#include <stdio.h>
#include <sys/socket.h>

#include "address.h"
#include "log.h"
#include "smtpd-restrictions-internal.h"

#define DOMAIN_PENDING (-1)

struct SmtpdDomainLookup {
        SmtpdCheckSession *session;
        char *domain;
        ResolverQuery *query;
        int status;                     /* DOMAIN_PENDING, or a ResolverStatus */
};

void smtpd_domain_lookups_free(SmtpdCheckSession *cs) {
        for (size_t i = 0; i < cs->n_domains; i++) {
                resolver_query_cancel(cs->domains[i]->query);
                free(cs->domains[i]->domain);
                free(cs->domains[i]);
        }
        cs->domains = mfree(cs->domains);
        cs->n_domains = 0;
}

static void lookup_finish(SmtpdDomainLookup *l, ResolverStatus status, const char *detail) {
        SmtpdCheckSession *cs = l->session;

        l->query = NULL;
        l->status = status;
        log_debug("Domain lookup of %s: %s (%s).", l->domain, resolver_status_to_string(status), detail);
        cs->pending--;
        if (cs->pending == 0 && !cs->policy)
                cs->done(cs->userdata);
}

static void on_address(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdDomainLookup *l = userdata;

        lookup_finish(l, reply->status == RESOLVER_NODATA ? RESOLVER_NXDOMAIN : reply->status, reply->detail);
}

static void on_mx(ResolverQuery *q, const ResolverReply *reply, void *userdata) {
        SmtpdDomainLookup *l = userdata;
        int r;

        l->query = NULL;
        if (reply->status == RESOLVER_NODATA) {
                /* No MX: the domain's own A or AAAA records would take the mail. */
                r = resolver_lookup_address(l->session->checks->resolver, l->domain, AF_UNSPEC, on_address, l,
                                            &l->query);
                if (r >= 0)
                        return;
                log_warning_errno(r, "Failed to look up the addresses of %s: %m", l->domain);
                lookup_finish(l, r == -EINVAL ? RESOLVER_NXDOMAIN : RESOLVER_TEMPFAIL, "no lookup");
                return;
        }
        lookup_finish(l, reply->status, reply->detail);
}

/* The lookup of domain, started when there is none yet. NULL when out of memory. */
static SmtpdDomainLookup *lookup_get(SmtpdCheckSession *cs, const char *domain) {
        SmtpdDomainLookup *l, **list;
        int r;

        for (size_t i = 0; i < cs->n_domains; i++)
                if (strcaseeq(cs->domains[i]->domain, domain))
                        return cs->domains[i];
        if (cs->n_domains >= SMTPD_SESSION_LOOKUPS_MAX) {
                /* As a lookup that failed for now: the tempfail actions apply. */
                static SmtpdDomainLookup full = { .status = RESOLVER_TEMPFAIL };
                log_warning("More than %u domains looked up in one session: %s is not.", SMTPD_SESSION_LOOKUPS_MAX,
                            domain);
                return &full;
        }
        list = reallocarray(cs->domains, cs->n_domains + 1, sizeof(SmtpdDomainLookup *));
        if (!list)
                return NULL;
        cs->domains = list;
        l = calloc(1, sizeof(SmtpdDomainLookup));
        if (!l)
                return NULL;
        l->domain = strdup(domain);
        if (!l->domain) {
                free(l);
                return NULL;
        }
        l->session = cs;
        list[cs->n_domains++] = l;
        r = resolver_lookup_mx(cs->checks->resolver, domain, on_mx, l, &l->query);
        if (r < 0) {
                /* A name that cannot be in DNS does not exist (Postfix's DNS_INVAL). */
                if (r != -EINVAL)
                        log_warning_errno(r, "Failed to look up the MX records of %s: %m", domain);
                l->status = r == -EINVAL ? RESOLVER_NXDOMAIN : RESOLVER_TEMPFAIL;
                return l;
        }
        l->status = DOMAIN_PENDING;
        cs->pending++;
        return l;
}

SmtpdCheckStatus smtpd_restriction_check_unknown_helo(SmtpdCheckContext *ctx) {
        const char *helo = ctx->in->helo;
        _cleanup_free_ char *name = NULL;
        SmtpdDomainLookup *l;
        unsigned code;
        char dsn[16];
        size_t len;

        /* An address literal names no host to look up; without HELO there is nothing to check. */
        if (!helo || helo[0] == '\0' || helo[0] == '[' || !ctx->cs->checks->resolver)
                return SMTPD_CHECK_DUNNO;
        len = strlen(helo);
        while (len > 1 && helo[len - 1] == '.')
                len--;
        name = strndup(helo, len);
        l = name ? lookup_get(ctx->cs, name) : NULL;
        if (!l) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", helo);
        }
        switch (l->status) {
        case DOMAIN_PENDING:
                return SMTPD_CHECK_WAIT;
        case RESOLVER_FOUND:
        case RESOLVER_NULL_MX:  /* as Postfix: a mail server's own name may refuse mail */
                return SMTPD_CHECK_DUNNO;
        case RESOLVER_NXDOMAIN:
        case RESOLVER_NODATA:
                code = (unsigned) ctx->cs->checks->config->unknown_hostname_reject_code;
                break;
        default:
                /* DNS failed for now: unknown_helo_hostname_tempfail_action says whether that refuses now. */
                return smtpd_restriction_tempfail(ctx, ctx->cs->checks->unknown_helo_tempfail,
                                                  "450 4.7.1 <%s>: Helo command rejected: Host not found", helo);
        }
        return smtpd_restriction_reject(ctx, "%u %s <%s>: Helo command rejected: Host not found", code,
                                        smtpd_reply_dsn(code, "7.1", dsn), helo);
}

SmtpdCheckStatus smtpd_restriction_check_unknown_domain(SmtpdCheckContext *ctx, bool sender) {
        SmtpdChecks *c = ctx->cs->checks;
        const char *addr = sender ? ctx->in->sender : ctx->in->recipient, *at, *class;
        _cleanup_free_ char *domain = NULL;
        SmtpdDomainLookup *l;
        char dsn[16];
        unsigned code;
        size_t len;
        int r;

        at = addr ? strrchr(addr, '@') : NULL;
        if (!at || at[1] == '\0' || at[1] == '[' || !c->resolver)
                return SMTPD_CHECK_DUNNO;
        /* Only a domain this server is not the final destination for (local, hosted, relayed). */
        if (address_is_local(c->mydestination, addr))
                return SMTPD_CHECK_DUNNO;
        r = smtpd_address_hosted(c, addr);
        if (r == 0)
                r = smtpd_address_relayed(c, addr);
        if (r > 0)
                return SMTPD_CHECK_DUNNO;
        if (r < 0)
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", addr);

        len = strlen(at + 1);
        while (len > 0 && at[len] == '.')
                len--;
        domain = strndup(at + 1, len);
        if (!domain)
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", addr);
        l = lookup_get(ctx->cs, domain);
        if (!l) {
                log_oom();
                return smtpd_restriction_reject(ctx, "451 4.3.0 <%s>: Temporary lookup failure", addr);
        }
        class = sender ? "Sender address" : "Recipient address";
        switch (l->status) {
        case DOMAIN_PENDING:
                return SMTPD_CHECK_WAIT;
        case RESOLVER_FOUND:
                return SMTPD_CHECK_DUNNO;
        case RESOLVER_NULL_MX:
                code = (unsigned) c->config->nullmx_reject_code;
                return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: Domain %s does not accept mail "
                                                "(nullMX)", code, smtpd_reply_dsn(code, sender ? "7.27" : "1.10", dsn),
                                                addr, class, domain);
        case RESOLVER_NXDOMAIN:
        case RESOLVER_NODATA:
                code = (unsigned) c->config->unknown_address_reject_code;
                break;
        default:
                /* DNS failed for now: unknown_address_tempfail_action says whether that refuses now. */
                return smtpd_restriction_tempfail(ctx, c->unknown_address_tempfail,
                                                  "450 %s <%s>: %s rejected: Domain not found",
                                                  sender ? "4.1.8" : "4.1.2", addr, class);
        }
        return smtpd_restriction_reject(ctx, "%u %s <%s>: %s rejected: Domain not found", code,
                                        smtpd_reply_dsn(code, sender ? "1.8" : "1.2", dsn), addr, class);
}
