/* fuzz-table-cidr.c: cidr_table(5) files as table_cidr_parse() reads them; the input is the file, up to a
 * NUL. A parsed table's rules must be well formed (prefix within the family's length, no host bits), and its
 * own lines and a few addresses looked up must give a value or none. */
#include <arpa/inet.h>
#include <sys/socket.h>

#include "fuzz.h"
#include "log.h"
#include "table-internal.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
        static const char *const keys[] = { "192.0.2.1", "10.1.2.3", "::1", "2001:db8::1", "0.0.0.0", "::" };
        _cleanup_(table_cidr_freep) TableCidr *t = NULL;
        _cleanup_free_ char *text = NULL;
        const char *v;
        int r;

        if (size > 16384)
                return 0;
        log_set_max_level(LOG_CRIT);
        text = strndup((const char *) data, size);
        CHECK(text);

        r = table_cidr_parse(text, "fuzz", &t);
        if (r < 0) {
                CHECK(r == -EINVAL || r == -ENOMEM);
                CHECK(!t);
                return 0;
        }
        for (size_t i = 0; i < t->n; i++) {
                const TableCidrRule *rule = t->rules + i;

                if (rule->kind == TABLE_RULE_ENDIF)
                        continue;
                CHECK(rule->family == AF_INET || rule->family == AF_INET6);
                CHECK(rule->prefix <= (rule->family == AF_INET ? 32U : 128U));
                CHECK((rule->kind == TABLE_RULE_MATCH) == (rule->value != NULL));
                if (rule->kind == TABLE_RULE_IF)
                        CHECK(rule->endif > i && rule->endif < t->n && t->rules[rule->endif].kind == TABLE_RULE_ENDIF);
                /* The network itself is in it, unless negated. */
                if (rule->kind == TABLE_RULE_MATCH && !rule->negate && i == 0) {
                        char buf[64];
                        CHECK(inet_ntop(rule->family, rule->addr, buf, sizeof buf));
                        CHECK(table_cidr_match(t, buf, &v) == 1);
                }
        }
        for (size_t i = 0; i < ELEMENTSOF(keys); i++) {
                r = table_cidr_match(t, keys[i], &v);
                CHECK(r == 0 || r == 1);
        }
        for (char *line = text, *nl; line; line = nl ? nl + 1 : NULL) {
                nl = strchr(line, '\n');
                if (nl)
                        *nl = '\0';
                r = table_cidr_match(t, line, &v);
                CHECK(r == 0 || r == 1);
        }
        return 0;
}
