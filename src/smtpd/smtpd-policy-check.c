/* smtpd-policy-check.c: check_policy_service in the smtpd process's restriction lists: the request built
 * from what the session knows (SMTPD_POLICY_README's attributes), sent through the process's policy
 * connections (smtpd-policy.c), and the answer taken as an access(5) action (smtpd-access.c).
 *
 * An evaluation that meets check_policy_service stops there (SMTPD_CHECK_WAIT) while the request is out;
 * when the answer is in, the session asks again and the evaluation runs from the start, every other
 * restriction deciding as before, and this one now deciding by the answer it keeps until the evaluation
 * ends. A service that gave no answer gives smtpd_policy_service_default_action. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "log.h"
#include "postbus-config.h"
#include "smtpd-restrictions-internal.h"

void smtpd_policy_answers_clear(SmtpdCheckSession *cs) {
        cs->answers = mfree(cs->answers);
        cs->n_answers = 0;
}

static const SmtpdPolicyAnswer *answer_find(const SmtpdCheckSession *cs, const SmtpdRestriction *item) {
        for (size_t i = 0; i < cs->n_answers; i++)
                if (cs->answers[i].item == item)
                        return cs->answers + i;
        return NULL;
}

static void on_policy_answer(int error, const char *action, void *userdata) {
        SmtpdCheckSession *cs = userdata;
        SmtpdPolicyAnswer *l, *a;

        cs->policy = NULL;
        l = reallocarray(cs->answers, cs->n_answers + 1, sizeof(SmtpdPolicyAnswer));
        if (l) {
                cs->answers = l;
                a = l + cs->n_answers++;
                *a = (SmtpdPolicyAnswer) { .item = cs->policy_item, .error = error };
                if (action)
                        (void) snprintf(a->action, sizeof a->action, "%s", action);
        } else
                /* Asking again gives the default action: no answer is kept. */
                log_oom();
        if (!smtpd_check_session_pending(cs))
                cs->done(cs->userdata);
}

/* The request, as Postfix's smtpd sends it. Returns its length in buf. */
static int policy_request(SmtpdCheckContext *ctx, char *buf, size_t size) {
        const SmtpdCheckInput *in = ctx->in;
        const Config *config = ctx->cs->checks->config;
        char count[16], port[8], sport[8], bits[16], sz[24];
        bool peer = in->peer != NULL;
        struct sockaddr_storage local;
        socklen_t local_len = sizeof local;
        SmtpdAddress server;
        /* Asked here, not for every connection: most sites have no policy service. */
        bool have_server = in->server_fd >= 0 &&
                           getsockname(in->server_fd, (struct sockaddr *) &local, &local_len) >= 0 &&
                           smtpd_address_from_sockaddr((struct sockaddr *) &local, local_len, &server) >= 0;

        (void) snprintf(count, sizeof count, "%u", in->recipient_count);
        (void) snprintf(port, sizeof port, "%u", (unsigned) in->client->port);
        (void) snprintf(sport, sizeof sport, "%u", have_server ? (unsigned) server.port : 0U);
        (void) snprintf(bits, sizeof bits, "%d", in->tls_bits);
        (void) snprintf(sz, sizeof sz, "%" PRIu64, in->size);

        const SmtpdPolicyAttr attrs[] = {
                { "request", "smtpd_access_policy" },
                { "protocol_state", ctx->protocol_state },
                { "protocol_name", in->protocol_name ?: "SMTP" },
                { "helo_name", in->helo },
                { "queue_id", NULL },   /* cleanup names the message, after the transaction */
                { "sender", in->sender },
                { "recipient", in->recipient },
                { "recipient_count", count },
                { "client_address", in->client->text },
                { "client_name", peer ? in->peer->name : SMTPD_PEER_UNKNOWN },
                { "reverse_client_name", peer ? in->peer->reverse_name : SMTPD_PEER_UNKNOWN },
                { "instance", in->instance },
                { "sasl_method", in->sasl_method },
                { "sasl_username", in->sasl_username },
                { "sasl_sender", NULL },
                { "size", sz },
                { "ccert_subject", NULL },      /* smtpd asks no client for a certificate */
                { "ccert_issuer", NULL },
                { "ccert_fingerprint", NULL },
                { "ccert_pubkey_fingerprint", NULL },
                { "encryption_protocol", in->tls_protocol },
                { "encryption_cipher", in->tls_cipher },
                { "encryption_keysize", in->tls_protocol ? bits : "0" },
                { "etrn_domain", NULL },
                { "stress", NULL },
                { "client_port", port },
                { "policy_context", config->smtpd_policy_service_policy_context },
                { "server_address", have_server ? server.text : NULL },
                { "server_port", have_server ? sport : NULL },
                { "compatibility_level", config->compatibility_level },
                { "mail_version", POSTBUS_VERSION },
        };
        return smtpd_policy_request_format(attrs, ELEMENTSOF(attrs), buf, size);
}

SmtpdCheckStatus smtpd_restriction_check_policy(SmtpdCheckContext *ctx, const SmtpdRestriction *item) {
        SmtpdCheckSession *cs = ctx->cs;
        const Config *config = cs->checks->config;
        const SmtpdPolicyAnswer *a = answer_find(cs, item);
        const char *name, *class;
        char what[256];
        int r;

        smtpd_restriction_subject(ctx, ctx->cls, &name, &class);
        (void) snprintf(what, sizeof what, "check_policy_service %s", item->arg);
        if (a && a->error == 0)
                return smtpd_access_action(ctx, a->action, name, class, what, name);
        if (!a && cs->checks->policy && !cs->policy) {
                _cleanup_free_ char *buf = malloc(SMTPD_POLICY_REQUEST_MAX);

                r = buf ? policy_request(ctx, buf, SMTPD_POLICY_REQUEST_MAX) : -ENOMEM;
                if (r >= 0)
                        r = smtpd_policy_query(cs->checks->policy, item->endpoint, buf, (size_t) r, on_policy_answer,
                                               cs, &cs->policy);
                if (r >= 0) {
                        cs->policy_item = item;
                        return SMTPD_CHECK_WAIT;
                }
                log_warning_errno(r, "%s: cannot make the request: %m", what);
        } else if (a)
                log_warning_errno(a->error, "%s: no answer, using smtpd_policy_service_default_action: %m", what);
        (void) snprintf(what, sizeof what, "smtpd_policy_service_default_action (for %s)", item->arg);
        return smtpd_access_action(ctx, config->smtpd_policy_service_default_action, name, class, what, name);
}
