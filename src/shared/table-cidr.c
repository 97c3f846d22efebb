/* table-cidr.c: cidr: tables (cidr_table(5)): "network/len value" rules, IPv4 and IPv6, tried in file order
 * against an address key, with if/endif blocks and '!'. Every role that reads such a table runs this
 * code (smtpd's check_client_access above all). */
#include <arpa/inet.h>
#include <ctype.h>
#include <strings.h>
#include <sys/socket.h>

#include "log.h"
#include "logical-lines.h"
#include "table-internal.h"

TableCidr *table_cidr_free(TableCidr *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; i < c->n; i++)
                free(c->rules[i].value);
        free(c->rules);
        return mfree(c);
}

typedef struct CidrParser {
        TableCidr *table;
        const char *path;
        TableIfs ifs;
} CidrParser;

/* An IPv4 or IPv6 address, with or without [], into family and 16 bytes. */
static int parse_address(const char *s, size_t len, int *ret_family, uint8_t *ret_addr) {
        char buf[INET6_ADDRSTRLEN + 1];

        if (len >= 2 && s[0] == '[' && s[len - 1] == ']') {
                s++;
                len -= 2;
        }
        if (len == 0 || len >= sizeof buf)
                return -EINVAL;
        memcpy(buf, s, len);
        buf[len] = '\0';
        memset(ret_addr, 0, 16);
        if (inet_pton(AF_INET, buf, ret_addr) == 1) {
                *ret_family = AF_INET;
                return 0;
        }
        if (strchr(buf, ':') && inet_pton(AF_INET6, buf, ret_addr) == 1) {
                *ret_family = AF_INET6;
                return 0;
        }
        return -EINVAL;
}

static bool prefix_matches(const uint8_t *a, const uint8_t *b, unsigned prefix) {
        unsigned bytes = prefix / 8, bits = prefix % 8;

        if (memcmp(a, b, bytes) != 0)
                return false;
        if (bits == 0)
                return true;
        uint8_t mask = (uint8_t) (0xFFu << (8 - bits));
        return (a[bytes] & mask) == (b[bytes] & mask);
}

/* "[!]address[/len]" at *p; leaves *p after it and the white space that follows. */
static int parse_network(CidrParser *ps, char **p, unsigned line, TableCidrRule *rule) {
        char *s = *p, *end, *slash;
        unsigned max;

        if (*s == '!') {
                rule->negate = true;
                s++;
        }
        for (end = s; *end && !isspace((unsigned char) *end); end++)
                ;
        slash = memchr(s, '/', (size_t) (end - s));
        if (parse_address(s, (size_t) ((slash ?: end) - s), &rule->family, rule->addr) < 0) {
                log_error("%s:%u: bad network address \"%.*s\"", ps->path, line,
                          (int) MIN((size_t) ((slash ?: end) - s), (size_t) 64), s);
                return -EINVAL;
        }
        max = rule->family == AF_INET ? 32 : 128;
        rule->prefix = max;
        if (slash) {
                const char *d = slash + 1;
                unsigned v = 0;

                if (d == end || (size_t) (end - d) > 3) {
                        log_error("%s:%u: bad network length", ps->path, line);
                        return -EINVAL;
                }
                for (; d < end; d++) {
                        if (!isdigit((unsigned char) *d)) {
                                log_error("%s:%u: bad network length", ps->path, line);
                                return -EINVAL;
                        }
                        v = v * 10 + (unsigned) (*d - '0');
                }
                if (v > max) {
                        log_error("%s:%u: network length %u beyond %u", ps->path, line, v, max);
                        return -EINVAL;
                }
                rule->prefix = v;
        }
        /* As Postfix: 10.0.0.1/8 is a mistake (which network was meant?), not 10.0.0.0/8. */
        uint8_t zero[16] = {}, masked[16];
        memcpy(masked, rule->addr, 16);
        for (unsigned bit = rule->prefix; bit < max; bit++)
                masked[bit / 8] &= (uint8_t) ~(0x80u >> (bit % 8));
        if (memcmp(masked, rule->addr, 16) != 0 || (rule->prefix == 0 && memcmp(rule->addr, zero, 16) != 0)) {
                log_error("%s:%u: non-null host address bits in \"%.*s\"", ps->path, line,
                          (int) MIN((size_t) (end - s), (size_t) 64), s);
                return -EINVAL;
        }
        while (isspace((unsigned char) *end))
                end++;
        *p = end;
        return 0;
}

static int parse_line(char *line, unsigned lineno, void *userdata) {
        CidrParser *ps = userdata;
        TableCidrRule rule = { .kind = TABLE_RULE_MATCH, .line = lineno };
        char *p = line;
        size_t closed;
        int r;

        r = table_if_line(&ps->ifs, &p, ps->path, lineno, &closed);
        if (r < 0)
                return r;
        rule.kind = (TableRuleKind) r;
        if (rule.kind == TABLE_RULE_ENDIF) {
                ps->table->rules[closed].endif = ps->table->n;
                return table_rule_append(&ps->table->rules, &ps->table->n, &rule, sizeof rule);
        }
        r = parse_network(ps, &p, lineno, &rule);
        if (r < 0)
                return r;
        r = table_rule_rest(&ps->ifs, rule.kind, p, "network", ps->path, lineno, ps->table->n);
        if (r < 0)
                return r;
        if (rule.kind == TABLE_RULE_MATCH && !(rule.value = strdup(p)))
                return -ENOMEM;
        r = table_rule_append(&ps->table->rules, &ps->table->n, &rule, sizeof rule);
        if (r < 0)
                free(rule.value);
        return r;
}

int table_cidr_parse(const char *text, const char *path, TableCidr **ret) {
        _cleanup_(table_cidr_freep) TableCidr *t = NULL;
        CidrParser ps = { .path = path };
        int r;

        t = calloc(1, sizeof(TableCidr));
        if (!t)
                return -ENOMEM;
        ps.table = t;
        r = logical_lines_foreach(text, path, "rule", parse_line, &ps);
        if (r < 0)
                return r;
        if (ps.ifs.n > 0) {
                log_error("%s:%u: if without an endif", path, t->rules[ps.ifs.open[ps.ifs.n - 1]].line);
                return -EINVAL;
        }
        *ret = TAKE_PTR(t);
        return 0;
}

int table_cidr_match(const TableCidr *t, const char *key, const char **ret_value) {
        uint8_t addr[16];
        int family;

        if (!t || parse_address(key, strlen(key), &family, addr) < 0)
                return 0;
        for (size_t i = 0; i < t->n; i++) {
                const TableCidrRule *rule = t->rules + i;

                if (rule->kind == TABLE_RULE_ENDIF)
                        continue;
                /* An address of the other family matches neither the network nor its negation. */
                bool m = rule->family == family && prefix_matches(rule->addr, addr, rule->prefix);
                if (rule->family != family || m == rule->negate) {
                        if (rule->kind == TABLE_RULE_IF)
                                i = rule->endif;
                        continue;
                }
                if (rule->kind == TABLE_RULE_IF)
                        continue;
                if (ret_value)
                        *ret_value = rule->value;
                return 1;
        }
        return 0;
}

/* ---- the cidr: table type ---- */

static int cidr_parse_data(const char *text, const char *path, void **ret) {
        return table_cidr_parse(text, path, (TableCidr **) ret);
}

static int cidr_table_open(Table *t) {
        return table_file_open(t, cidr_parse_data);
}

static int cidr_table_lookup(Table *t, const char *key, char **ret_value) {
        const char *value;
        int r;

        r = table_file_refresh(t, cidr_parse_data);
        if (r < 0)
                return r;
        r = table_cidr_match(t->data, key, &value);
        if (r <= 0 || !ret_value)
                return r;
        *ret_value = strdup(value);
        return *ret_value ? 1 : -ENOMEM;
}

static void cidr_table_free_data(void *data) {
        table_cidr_free(data);
}

const TableType table_type_cidr = {
        .name = "cidr",
        .pattern = true,
        .open = cidr_table_open,
        .lookup = cidr_table_lookup,
        .free_data = cidr_table_free_data,
};
