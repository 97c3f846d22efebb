/* virtual-maps.c: hosted domains and the tables of hosted mailboxes, looked up as Postfix's virtual(8) does.
 * Runs in rewrite, smtpd and the virtual delivery agent. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "config.h"
#include "log.h"
#include "string-util.h"
#include "virtual-maps.h"

void virtual_map_done(VirtualMap *m) {
        for (size_t i = 0; i < m->n; i++) {
                free(m->entries[i].static_value);
                table_free(m->entries[i].table);
        }
        m->entries = mfree(m->entries);
        m->n = 0;
}

bool virtual_map_is_empty(const VirtualMap *m) {
        return m->n == 0;
}

int virtual_map_open(const char *value, VirtualMap *ret) {
        _cleanup_strv_free_ char **specs = NULL;
        VirtualMap m = {};
        int r;

        r = config_split_list(value, &specs);
        if (r < 0)
                return r;
        m.entries = calloc(strv_length(specs) + 1, sizeof(VirtualMapEntry));
        if (!m.entries)
                return -ENOMEM;
        for (char **s = specs; *s; s++) {
                VirtualMapEntry *e = m.entries + m.n;

                if (strncasecmp(*s, "static:", STRLEN("static:")) == 0) {
                        e->static_value = strdup(*s + STRLEN("static:"));
                        if (!e->static_value) {
                                virtual_map_done(&m);
                                return -ENOMEM;
                        }
                        m.n++;
                        continue;
                }
                r = table_open(*s, &e->table);      /* logs what is wrong with the spec */
                if (r < 0) {
                        virtual_map_done(&m);
                        return r == -ENOMEM ? r : -EINVAL;
                }
                m.n++;
        }
        *ret = m;
        return 0;
}

int virtual_map_lookup(VirtualMap *m, const char *key, char **ret_value) {
        for (size_t i = 0; i < m->n; i++) {
                VirtualMapEntry *e = m->entries + i;
                int r;

                if (e->static_value) {
                        if (ret_value) {
                                *ret_value = strdup(e->static_value);
                                if (!*ret_value)
                                        return -ENOMEM;
                        }
                        return 1;
                }
                r = table_lookup(e->table, key, ret_value);
                if (r != 0)
                        return r;
        }
        return 0;
}

int virtual_map_lookup_address(VirtualMap *m, const char *address, const char *delimiters, char **ret_value) {
        const char *at = strrchr(address, '@');
        _cleanup_free_ char *key = NULL;
        int r;

        r = virtual_map_lookup(m, address, ret_value);
        if (r != 0 || !at)
                return r;

        size_t n = (size_t) (at - address);
        size_t k = isempty(delimiters) ? n : strcspn(address, delimiters);
        if (k > 0 && k < n) {
                if (asprintf(&key, "%.*s%s", (int) k, address, at) < 0)
                        return -ENOMEM;
                r = virtual_map_lookup(m, key, ret_value);
                if (r != 0)
                        return r;
        }
        return virtual_map_lookup(m, at, ret_value);
}

void virtual_domains_done(VirtualDomains *d) {
        d->names = strv_free(d->names);
        virtual_map_done(&d->tables);
}

bool virtual_domains_is_empty(const VirtualDomains *d) {
        return (!d->names || !d->names[0]) && virtual_map_is_empty(&d->tables);
}

int virtual_domains_open(const char *value, VirtualDomains *ret) {
        _cleanup_strv_free_ char **specs = NULL;
        _cleanup_free_ char *tables = NULL;
        VirtualDomains d = {};
        size_t n_names = 0;
        int r;

        r = config_split_list(value, &specs);
        if (r < 0)
                return r;
        d.names = calloc(1, sizeof(char *));
        tables = strdup("");
        if (!d.names || !tables) {
                virtual_domains_done(&d);
                return -ENOMEM;
        }
        for (char **s = specs; *s; s++) {
                if (strchr(*s, ':') || (*s)[0] == '/') {
                        char *t = NULL;
                        if (asprintf(&t, "%s%s%s", tables, tables[0] ? ", " : "", *s) < 0) {
                                virtual_domains_done(&d);
                                return -ENOMEM;
                        }
                        free(tables);
                        tables = t;
                        continue;
                }
                r = strv_push(&d.names, &n_names, strdup(*s));
                if (r < 0) {
                        virtual_domains_done(&d);
                        return r;
                }
        }
        r = virtual_map_open(tables, &d.tables);
        if (r < 0) {
                virtual_domains_done(&d);
                return r;
        }
        *ret = d;
        return 0;
}

int virtual_domains_contain(VirtualDomains *d, const char *domain) {
        _cleanup_free_ char *key = NULL;
        size_t len = strlen(domain);

        if (len > 0 && domain[len - 1] == '.')
                len--;
        if (len == 0)
                return 0;
        if (config_list_contains_domain(d->names, domain))
                return 1;
        if (virtual_map_is_empty(&d->tables))
                return 0;
        key = strndup(domain, len);
        if (!key)
                return -ENOMEM;
        return virtual_map_lookup(&d->tables, key, NULL);
}

int virtual_domains_contain_parent(VirtualDomains *d, const char *domain) {
        int r;

        /* parent_domain_matches_subdomains: the domain, then each parent domain, as a name or as a key. */
        for (const char *p = domain; p; p = strchr(p, '.')) {
                if (*p == '.')
                        p++;
                if (*p == '\0' || *p == '.')
                        break;
                r = virtual_domains_contain(d, p);
                if (r != 0)
                        return r;
        }
        return 0;
}
