/* smtp-tls-policy.c: the TLS settings of one delivery of postbus-smtp: smtp_tls_security_level and the CA and
 * match parameters from main.cf and master.cf's -o overrides, then smtp_tls_policy_maps by next hop ("level
 * [match=name:name...]"), as Postfix's smtp(8) applies them. */
#include "log.h"
#include "smtp.h"
#include "table.h"

/* The policy tables, opened once per spec (the process restarts when main.cf changes). */
static TableList *policy_tables;
static char *policy_spec;

void smtp_tls_policy_cleanup(void) {
        policy_tables = table_list_free(policy_tables);
        policy_spec = mfree(policy_spec);
}

/* "o:smtp_x", or for lmtp transports "o:lmtp_x", overrides main.cf's smtp_x. */
static const char *option(char **options, const char *name, const char *value) {
        for (char **o = options; o && o[0]; o += 2)
                if (strncmp(o[0], "o:", 2) == 0 &&
                    (streq(o[0] + 2, name) || (strncmp(o[0] + 2, "lmtp_", 5) == 0 && streq(o[0] + 7, name + 5))))
                        value = o[1];
        return value;
}

static int policy_lookup(const char *spec, const char *nexthop, const SmtpHop *hop, char **ret) {
        char keys[3][sizeof hop->host + 4];
        int r;

        if (!policy_spec || !streq(policy_spec, spec)) {
                smtp_tls_policy_cleanup();
                r = table_list_open(spec, &policy_tables);
                if (r < 0)
                        return r;
                policy_spec = strdup(spec);
                if (!policy_spec)
                        return -ENOMEM;
        }
        /* The next hop as written, without its port, then the bare domain. */
        (void) snprintf(keys[0], sizeof keys[0], "%s", nexthop);
        (void) snprintf(keys[1], sizeof keys[1], hop->mx ? "%s" : "[%s]", hop->host);
        (void) snprintf(keys[2], sizeof keys[2], "%s", hop->host);
        for (size_t i = 0; i < 3; i++) {
                if (i > 0 && streq(keys[i], keys[i - 1]))
                        continue;
                r = table_list_lookup(policy_tables, keys[i], ret);
                if (r != 0)
                        return r;
        }
        return 0;
}

int smtp_tls_settings_load(const Config *cfg, char **options, const char *nexthop, SmtpSettings *set) {
        const char *level = option(options, "smtp_tls_security_level", cfg->smtp_tls_security_level);
        const char *match = NULL, *spec = option(options, "smtp_tls_policy_maps", cfg->smtp_tls_policy_maps);
        _cleanup_free_ char *policy = NULL;
        char *state = NULL;
        SmtpHop hop;
        int r;

        if (smtp_hop_parse(nexthop, set->lmtp, 25, &hop) >= 0) {
                set->tls_nexthop = strdup(hop.host);
                if (!set->tls_nexthop)
                        return -ENOMEM;
                if (!isempty(spec)) {
                        r = policy_lookup(spec, nexthop, &hop, &policy);
                        if (r < 0)
                                return log_warning_errno(r, "Cannot look up the TLS policy of %s in %s: %m",
                                                         nexthop, spec);
                }
        }
        if (policy) {
                level = strtok_r(policy, " \t", &state);
                for (char *w = strtok_r(NULL, " \t", &state); w; w = strtok_r(NULL, " \t", &state))
                        if (strncmp(w, "match=", 6) == 0)
                                match = w + 6;
        }
        r = smtp_tls_level_from_string(level);
        if (r < 0) {
                /* dane and anything unknown: never clear text for them. */
                log_warning("Unsupported TLS security level \"%s\" for %s, using encrypt.", strna(level), nexthop);
                r = SMTP_TLS_ENCRYPT;
        }
        set->tls_level = r;
        if (!match)
                match = r == SMTP_TLS_SECURE ? option(options, "smtp_tls_secure_cert_match", cfg->smtp_tls_secure_cert_match)
                                             : option(options, "smtp_tls_verify_cert_match", cfg->smtp_tls_verify_cert_match);
        set->tls_match = strdup(strempty(match));
        set->tls_cafile = strdup(strempty(option(options, "smtp_tls_CAfile", cfg->smtp_tls_CAfile)));
        set->tls_capath = strdup(strempty(option(options, "smtp_tls_CApath", cfg->smtp_tls_CApath)));
        if (!set->tls_match || !set->tls_cafile || !set->tls_capath)
                return -ENOMEM;
        return 0;
}
