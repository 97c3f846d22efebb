/* fuzz-rewrite-address.c: the rewrite role's address canonicalizer and transport(5) result parser over
 * arbitrary bytes: results are bounded, valid, and canonicalizing twice changes nothing. */
#include "../../src/rewrite/rewrite-address.h"
#include "address.h"
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const RewriteContext ctx = {
                .myorigin = "host.example.org",
                .mydomain = "example.org",
                .append_at_myorigin = true,
                .append_dot_mydomain = true,
                .allow_percent_hack = true,
                .swap_bangpath = true,
        };
        char *s, *out = NULL, *again = NULL, *t = NULL, *n = NULL;

        if (size > 4096)
                return 0;
        s = strndup((const char *) data, size);
        if (!s)
                return 0;
        if (rewrite_address(&ctx, s, &out) >= 0) {
                CHECK(strlen(out) <= ADDRESS_MAX);
                CHECK(!strchr(out, '\n'));
                /* A canonical address is its own canonical form. */
                if (out[0] != '@') {
                        CHECK(rewrite_address(&ctx, out, &again) >= 0);
                        CHECK(strcmp(out, again) == 0);
                }
        }
        if (rewrite_transport_parse(s, &t, &n) >= 0) {
                CHECK(!t || (t[0] && !strchr(t, ':')));
                CHECK(!n || n[0]);
        }
        free(s);
        free(out);
        free(again);
        free(t);
        free(n);
        return 0;
}
