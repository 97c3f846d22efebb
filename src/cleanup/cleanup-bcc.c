/* cleanup-bcc.c: the automatic BCC recipients of one submission (always_bcc, sender_bcc_maps,
 * recipient_bcc_maps), in the cleanup process: envelope recipients added after canonical mapping, brought into
 * canonical form and through the recipient canonical maps, then expanded by virtual aliases with the others. */
#include "address.h"
#include "address-map.h"
#include "cleanup-maps.h"
#include "cleanup.h"
#include "log.h"

/* Postfix makes BCC copies of new mail only: not of what it forwards itself (local's aliases and .forward
 * files) nor of what it writes itself (bounces), which would loop. */
static bool bcc_wanted(CleanupJob *j) {
        const char *origin = strempty(cleanup_attr_get(j->attrs, "origin"));

        return !streq(origin, "local") && !streq(origin, "bounce");
}

/* addr's BCC address in maps (Postfix's key order, recipient_delimiter as the other maps): 1 and *ret, 0 when
 * none; a lookup failure answers the submitter and frees j: -errno. */
static int bcc_lookup(CleanupJob *j, TableList *maps, const char *name, const char *addr, char **ret) {
        Cleanup *c = j->cleanup;
        _cleanup_free_ char *value = NULL;
        int r;

        if (table_list_is_empty(maps) || isempty(addr))
                return 0;
        r = address_map_find(address_map_table_lookup, maps, addr, c->mydestination, c->daemon->config->myorigin,
                                   c->daemon->config->recipient_delimiter, false, &value);
        if (r < 0) {
                _cleanup_free_ char *escaped = log_escape(addr, strlen(addr));
                log_error_errno(r, "Failed to look up <%s> in %s: %m", strempty(escaped), name);
                cleanup_job_fail(j, "451 4.3.0 Error: BCC table lookup failure");
                return r;
        }
        if (r == 0)
                return 0;
        /* One address, as in Postfix: the first if there are more. */
        value[strcspn(value, ", \t")] = '\0';
        if (isempty(value) || !address_valid(value)) {
                _cleanup_free_ char *escaped = log_escape(addr, strlen(addr));
                log_warning("%s: <%s> gives no valid address, ignoring", name, strempty(escaped));
                return 0;
        }
        *ret = TAKE_PTR(value);
        return 1;
}

static int bcc_add(CleanupJob *j, const char *address) {
        int r = cleanup_job_add_recipient(j, address);

        if (r == -E2BIG) {
                (void) cleanup_job_reject(j, "552 5.5.3 Error: too many recipients");
                cleanup_job_reply_error(j);
        } else if (r < 0)
                cleanup_job_fail(j, "451 4.3.0 Error: out of memory");
        return r;
}

static void bcc_canonical(CleanupJob *j) {
        Cleanup *c = j->cleanup;

        for (size_t i = j->bcc_first; i < j->n_recipients; i++)
                if (cleanup_job_canonicalize(j, &j->recipients[i], c->recipient_canonical_maps, c->canonical_maps) < 0)
                        return;
        cleanup_job_round_start(j, cleanup_virtual_start);
}

/* The sender and recipients are canonical and masqueraded by now: the keys Postfix looks up. */
void cleanup_bcc_start(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        const char *always = c->daemon->config->always_bcc;
        size_t n = j->n_recipients;
        int r;

        j->bcc_first = n;
        if (!bcc_wanted(j) || (isempty(always) && table_list_is_empty(c->sender_bcc_maps) &&
                               table_list_is_empty(c->recipient_bcc_maps))) {
                cleanup_virtual_start(j);
                return;
        }

        /* Each lookup comes before the addition it may make: j->recipients moves as it grows. */
        for (size_t i = 0; i <= n; i++) {
                _cleanup_free_ char *bcc = NULL;

                if (i == 0)
                        r = bcc_lookup(j, c->sender_bcc_maps, "sender_bcc_maps", j->sender, &bcc);
                else
                        r = bcc_lookup(j, c->recipient_bcc_maps, "recipient_bcc_maps", j->recipients[i - 1], &bcc);
                if (r < 0)
                        return;
                if (r > 0 && bcc_add(j, bcc) < 0)
                        return;
        }
        if (!isempty(always) && bcc_add(j, always) < 0)
                return;

        for (size_t i = j->bcc_first; i < j->n_recipients; i++)
                cleanup_job_rewrite(j, &j->recipients[i]);
        cleanup_job_round_start(j, bcc_canonical);
}
