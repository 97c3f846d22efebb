/* fuzz-cleanup-headers.c: cleanup's header parsers over arbitrary bytes: the header scan of a submitted
 * message (where the headers end, which are present), and header_checks rule files (regexp_table(5)),
 * whose rules are then matched against the input's first line. */
#include <string.h>

#include "../../src/cleanup/cleanup-checks.h"
#include "../../src/cleanup/cleanup.h"
#include "fuzz.h"
#include "log.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CleanupHeaderScan h;
        CleanupChecks *c = NULL;
        char *text;

        if (size > 65536)
                return 0;
        log_set_max_level(LOG_CRIT);    /* rule errors are logged: not what is being tested */

        if (cleanup_header_scan((const char *) data, size, &h) >= 0) {
                CHECK(h.header_end <= size);
                CHECK(!h.message_id || strlen(h.message_id) <= size);
                cleanup_header_scan_done(&h);
        }

        text = strndup((const char *) data, size);
        if (!text)
                return 0;
        int r = cleanup_checks_parse(text, "fuzz", &c);
        CHECK(r >= 0 || r == -EINVAL || r == -ENOMEM);
        if (r >= 0) {
                char *nl = strchr(text, '\n');
                if (nl)
                        *nl = '\0';
                const CleanupCheckRule *rule = cleanup_checks_match(c, text);
                CHECK(!rule || (rule->action > CLEANUP_CHECK_NONE && rule->action < _CLEANUP_CHECK_ACTION_MAX));
                cleanup_checks_free(c);
        }
        free(text);
        return 0;
}
