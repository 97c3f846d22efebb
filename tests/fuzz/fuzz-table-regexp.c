/* fuzz-table-regexp.c: regexp_table(5) and pcre_table(5) rule files as table_regexp_parse() reads them. The
 * first byte picks the engine (even: POSIX, odd: PCRE); the rest is the file, up to a NUL. A parsed table's
 * if/endif structure must be consistent, and matching its own lines (as keys) must give a value or none,
 * never fail otherwise than for memory. */
#include "fuzz.h"
#include "log.h"
#include "table-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        _cleanup_(table_regexp_freep) TableRegexp *t = NULL;
        _cleanup_free_ char *text = NULL;
        int r;

        if (size < 1 || size > 16384)
                return 0;
        log_set_max_level(LOG_CRIT);    /* rule errors are logged: not what is being tested */
        text = strndup((const char *) data + 1, size - 1);
        CHECK(text);

        r = table_regexp_parse(text, "fuzz", data[0] % 2 ? &table_regexp_engine_pcre : &table_regexp_engine_posix,
                               &t);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(!t);
                return 0;
        }
        for (size_t i = 0; i < t->n; i++) {
                const TableRegexpRule *rule = t->rules + i;

                CHECK((rule->kind == TABLE_RULE_MATCH) == (rule->value != NULL));
                if (rule->kind == TABLE_RULE_IF) {
                        CHECK(rule->endif > i && rule->endif < t->n);
                        CHECK(t->rules[rule->endif].kind == TABLE_RULE_ENDIF);
                }
        }
        for (char *line = text, *nl; line; line = nl ? nl + 1 : NULL) {
                _cleanup_free_ char *value = NULL;

                nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                r = table_regexp_match(t, line, &value);
                CHECK(r == 0 || r == 1 || r == -ENOMEM);
                CHECK((r == 1) == (value != NULL));
        }
        return 0;
}
