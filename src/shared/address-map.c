/* address-map.c: an address looked up in lookup tables in Postfix's key order (its mail_addr_find()), as
 * canonical(5), virtual(5), the BCC maps and generic(5) use it, in cleanup and in smtp. */
#include <stdio.h>
#include <strings.h>

#include "address-map.h"
#include "config.h"
#include "string-util.h"

ssize_t address_map_at(const char *addr) {
        ssize_t at = -1;
        bool quoted = false;

        for (size_t i = 0; addr[i]; i++) {
                if (addr[i] == '\\' && addr[i + 1])
                        i++;
                else if (addr[i] == '"')
                        quoted = !quoted;
                else if (addr[i] == '@' && !quoted)
                        at = (ssize_t) i;
        }
        return at;
}

int address_map_table_lookup(void *table_list, const char *key, bool partial, char **ret_value) {
        return partial ? table_list_lookup_partial(table_list, key, ret_value)
                       : table_list_lookup(table_list, key, ret_value);
}

/* The result's addresses (separated by commas or white space) each with ext inserted before its domain:
 * propagate_unmatched_extensions. */
static int propagate_extension(const char *value, const char *ext, size_t ext_len, char **ret) {
        _cleanup_free_ char *out = NULL;
        size_t len = 0;

        for (const char *p = value; *p;) {
                size_t n = strcspn(p, ", \t");
                if (n > 0) {
                        _cleanup_free_ char *a = strndup(p, n);
                        if (!a)
                                return -ENOMEM;
                        ssize_t at = address_map_at(a);
                        size_t cut = at >= 0 ? (size_t) at : n;
                        char *grown = realloc(out, len + n + ext_len + 3);
                        if (!grown)
                                return -ENOMEM;
                        out = grown;
                        len += (size_t) sprintf(out + len, "%s%.*s%.*s%s", len ? ", " : "", (int) cut, a,
                                                (int) ext_len, ext, a + cut);
                }
                p += n;
                p += strspn(p, ", \t");
        }
        if (!out && !(out = strdup("")))
                return -ENOMEM;
        *ret = TAKE_PTR(out);
        return 0;
}

int address_map_find(AddressMapLookupFunc lookup, void *table, const char *addr, char **mydestination,
                           const char *myorigin, const char *delimiter, bool propagate, char **ret) {
        _cleanup_free_ char *value = NULL, *local = NULL, *key = NULL, *bare = NULL;
        ssize_t at = address_map_at(addr);
        const char *domain = at >= 0 ? addr + at + 1 : NULL;
        size_t local_len = at >= 0 ? (size_t) at : strlen(addr), k = local_len;
        bool stripped = false;          /* found under a key without the extension */
        int r;

        if (isempty(addr))
                return 0;
        /* user+ext: the extension runs from the first delimiter character to the '@'. */
        if (!isempty(delimiter)) {
                k = strcspn(addr, delimiter);
                if (k == 0 || k >= local_len)
                        k = local_len;
        }
        const char *ext = addr + k;
        size_t ext_len = local_len - k;
        if (ext_len > 0 && asprintf(&bare, "%.*s%s", (int) k, addr, domain ? addr + at : "") < 0)
                return -ENOMEM;

        /* Postfix's order: user+ext@domain, user@domain, then for a local domain user+ext and user, then
         * @domain. */
        r = lookup(table, addr, false, &value);
        if (r == 0 && bare) {
                r = lookup(table, bare, true, &value);
                stripped = r > 0;
        }
        if (r == 0 && domain && (config_list_contains_domain(mydestination, domain) ||
                                 (myorigin && strcasecmp(domain, myorigin) == 0))) {
                local = strndup(addr, local_len);
                if (!local)
                        return -ENOMEM;
                r = lookup(table, local, true, &value);
                if (r == 0 && ext_len > 0) {
                        local[k] = '\0';
                        r = lookup(table, local, true, &value);
                        stripped = r > 0;
                }
        }
        if (r == 0 && domain) {
                if (asprintf(&key, "@%s", domain) < 0)
                        return -ENOMEM;
                r = lookup(table, key, true, &value);
        }
        if (r <= 0)
                return r;

        char *v = strstrip(value), *out;
        if (v[0] == '@' && at >= 0) {
                /* The user before another domain; an extension that did not match is not carried over. */
                if (asprintf(&out, "%.*s%s", (int) (stripped ? k : local_len), addr, v) < 0)
                        return -ENOMEM;
        } else if (stripped && propagate) {
                r = propagate_extension(v, ext, ext_len, &out);
                if (r < 0)
                        return r;
        } else {
                out = strdup(v);
                if (!out)
                        return -ENOMEM;
        }
        *ret = out;
        return 1;
}
