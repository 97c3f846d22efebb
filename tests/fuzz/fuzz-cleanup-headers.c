/* fuzz-cleanup-headers.c: cleanup's header parsers over arbitrary bytes: the header scan of a submitted
 * message (where the headers end, which are present), the action a header_checks value gives, and what a
 * Content-Type header says of the MIME structure, with the boundary matched against the next line (the
 * input's first and second lines). The rule files are fuzz-table-regexp's. */
#include <string.h>

#include "header-checks.h"
#include "../../src/cleanup/cleanup.h"
#include "fuzz.h"
#include "log.h"
#include "mime.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        CleanupHeaderScan h;
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
        char *nl = strchr(text, '\n');
        if (nl)
                *nl = '\0';
        HeaderCheckAction a;
        const char *t;
        int r = header_check_action_parse(text, &a, &t);
        CHECK(r == 0 || r == -EOPNOTSUPP);
        if (r == 0) {
                CHECK(a > HEADER_CHECK_NONE && a < _HEADER_CHECK_ACTION_MAX);
                CHECK(!t || (t >= text && t < text + strlen(text) && *t));
        }

        MimeContentType kind;
        char *boundary = NULL;
        r = mime_content_type_parse(text, &kind, &boundary);
        CHECK(r == 0 || r == -EINVAL || r == -ENOMEM);
        CHECK(!boundary || (kind == MIME_CONTENT_MULTIPART && *boundary &&
                            strlen(boundary) <= MIME_BOUNDARY_MAX));
        if (boundary && nl) {
                const char *line = nl + 1, *end = strchr(line, '\n');
                size_t len = end ? (size_t) (end - line) : strlen(line);
                int m = mime_boundary_match(line, len, boundary);
                CHECK(m >= 0 && m <= 2);
                CHECK(m == 0 || (len >= strlen(boundary) + 2 && strncmp(line + 2, boundary, strlen(boundary)) == 0));
        }
        (void) mime_header_is_mime(text, strlen(text));
        free(boundary);
        free(text);
        return 0;
}
