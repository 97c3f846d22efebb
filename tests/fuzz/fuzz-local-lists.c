/* fuzz-local-lists.c: what users and administrators write for local: the input as a .forward or :include:
 * file and as an alias value (destinations, with limits), as forward_path text, and as message headers
 * for the Delivered-To scan in pieces whose size the first byte picks, and each line as a delivery child's
 * report line; each result checked against what the parsers promise. */
#include "../../src/local/local.h"
#include "fuzz.h"

static void check_list(const LocalTargetList *l, size_t max) {
        CHECK(l->n <= max);
        for (size_t i = 0; i < l->n; i++) {
                CHECK(l->items[i].type >= 0 && l->items[i].type < _LOCAL_TARGET_TYPE_MAX);
                CHECK(l->items[i].value && l->items[i].value[0] != '\0');
                if (l->items[i].type == LOCAL_TARGET_INCLUDE)
                        CHECK(l->items[i].value[0] == '/');
                if (l->items[i].type == LOCAL_TARGET_FILE)
                        CHECK(l->items[i].value[0] == '/');
        }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        const char *buf = (const char *) data;
        LocalTargetList l = {};
        LocalHeaderScan s;
        size_t step;

        if (size == 0)
                return 0;
        step = (size_t) data[0] % 64 + 1;

        if (local_targets_parse_file(buf, size, 50, &l) >= 0)
                check_list(&l, 50);
        local_target_list_done(&l);
        if (size <= LOCAL_LIST_LINE_MAX && local_targets_parse(buf, size, 50, &l) >= 0)
                check_list(&l, 50);
        local_target_list_done(&l);

        char *text = strndup(buf, size);
        if (text) {
                static const char *const vars[] = { "home", "/h", "user", "u", NULL };
                char *x = NULL;
                if (format_expand_vars(text, vars, &x) >= 0)
                        CHECK(x != NULL);
                free(x);
                local_sanitize(text);
                free(text);
        }

        local_header_scan_init(&s, 8);
        int r = 0;
        for (size_t off = 0; off < size && r == 0; off += step) {
                r = local_header_scan_feed(&s, buf + off, size - off < step ? size - off : step);
                CHECK(r >= 0);
        }
        CHECK(local_header_scan_finish(&s) >= 0);
        CHECK(s.n_values <= 8);
        for (size_t i = 0; i < s.n_values; i++) {
                CHECK(s.values[i][0] != '\0');
                CHECK(local_header_scan_has(&s, s.values[i]));
                for (const char *p = s.values[i]; *p; p++)
                        CHECK(!(*p >= 'A' && *p <= 'Z'));
        }
        local_header_scan_done(&s);

        /* Each line as a delivery child's report line, which the parent parses. */
        for (size_t start = 0; start < size;) {
                const char *nl = memchr(buf + start, '\n', size - start);
                size_t end = nl ? (size_t) (nl - buf) : size;
                LocalReportLine line;

                if (local_report_parse(buf + start, end - start, &line) >= 0) {
                        CHECK(line.type == 'D' || line.type == 'W' || line.type == 'I');
                        if (line.type == 'D')
                                CHECK(line.to && line.orig_to && strlen(line.result.text) < MAILBOX_TEXT_SIZE &&
                                      (line.result.dsn[0] == '2' || line.result.dsn[0] == '4' ||
                                       line.result.dsn[0] == '5'));
                        else
                                CHECK(line.text);
                        local_report_line_done(&line);
                }
                start = end + 1;
        }
        return 0;
}
