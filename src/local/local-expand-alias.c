/* local-expand-alias.c: alias_maps in an expansion: the lookup of a local part in each table, and the
 * destinations of the alias found, acting as the owner of its table. Runs in local, the long-lived process,
 * with the tables it keeps open. */
#include <sys/stat.h>

#include "address.h"
#include "local.h"
#include "string-util.h"

/* Looks local up in the alias tables: 1 and the value with the table's owner, 0, or -errno. */
static int alias_lookup(LocalExpand *e, const char *local, char **ret_value, uid_t *ret_owner) {
        for (size_t k = 0; k < e->aliases->n_tables; k++) {
                Table *t = e->aliases->tables[k];
                const char *db = table_db_path(t), *file = db ?: table_source_path(t);
                _cleanup_free_ char *value = NULL;
                struct stat st;
                int r;

                r = table_lookup(t, local, &value);
                if (r == -ENOENT && db && access(table_source_path(t), F_OK) >= 0) {
                        /* Written but never built: as Postfix, a temporary failure until it is. */
                        (void) local_report_warning(e->report, "alias table %s has not been built: run newaliases",
                                                    table_name(t));
                        return r;
                }
                if (r == -ENOENT)
                        /* Neither text nor database: no such table, like an empty one (alias_maps names
                         * /etc/aliases by default, which a system need not have). */
                        continue;
                if (r < 0)
                        return r;
                if (r == 0)
                        continue;
                /* The table's owner; root for one that is no file. */
                if (!file)
                        st.st_uid = 0;
                else if (stat(file, &st) < 0)
                        return -errno;
                *ret_value = TAKE_PTR(value);
                *ret_owner = st.st_uid;
                return 1;
        }
        return 0;
}

/* owner_request_special, as Postfix: when owner-<name> is an alias too, the mail that goes on through the
 * alias name carries owner-<name>@$myorigin as its envelope sender (with expand_owner_alias, what
 * owner-<name> expands to), so that its errors reach the owner. */
static int owner_alias(LocalExpand *e, size_t i, const char *name) {
        _cleanup_free_ char *key = NULL, *value = NULL;
        uid_t uid;
        int r;

        if (!e->c->owner_request_special || strncmp(name, "owner-", 6) == 0)
                return 0;
        if (asprintf(&key, "owner-%s", name) < 0)
                return -ENOMEM;
        r = alias_lookup(e, key, &value, &uid);
        if (r <= 0)
                return r;
        free(e->items[i].owner);
        /* expand_owner_alias: the owner-alias's own expansion instead of its name, when that is one address
         * (a bare user name is qualified with $myorigin); a command, file or list keeps the name. */
        const char *v = strstrip(value);
        if (e->c->expand_owner_alias && !isempty(v) && !strpbrk(v, ", \t|/:\"") && address_valid(v)) {
                if (asprintf(&e->items[i].owner, "%s%s%s", v, strchr(v, '@') ? "" : "@",
                             strchr(v, '@') ? "" : e->c->myorigin) < 0) {
                        e->items[i].owner = NULL;
                        return -ENOMEM;
                }
                return 0;
        }
        if (asprintf(&e->items[i].owner, "%s@%s", key, e->c->myorigin) < 0) {
                e->items[i].owner = NULL;
                return -ENOMEM;
        }
        return 0;
}

int local_expand_alias(LocalExpand *e, size_t i, const char *local, const char *user, const LocalExtension *x) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_free_ char *value = NULL;
        LocalTargetList l = {};
        uid_t owner = 0;
        int r;

        /* user+ext: the whole local part first, then the user part. */
        const char *name = local;
        r = alias_lookup(e, local, &value, &owner);
        if (r == 0 && x->extension) {
                name = user;
                r = alias_lookup(e, user, &value, &owner);
        }
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "alias database unavailable: %s", strerror(-r));
                return 1;
        }
        if (r == 0)
                return 0;
        r = local_expand_privs_for_owner(e, owner, &privs);
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "cannot find the user to act as for alias %s: %s", local,
                                  strerror(-r));
                return 1;
        }
        r = owner_alias(e, i, name);
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "alias database unavailable: %s", strerror(-r));
                return 1;
        }
        _cleanup_free_ char *unmatched = NULL;
        bool propagated = false;
        r = local_targets_parse(value, strlen(value), (size_t) e->c->duplicate_filter_limit, &l);
        if (r >= 0 && name == user && x->extension) {
                if (asprintf(&unmatched, "%s%s", x->delimiter, x->extension) < 0) {
                        unmatched = NULL;
                        r = -ENOMEM;
                } else
                        r = local_propagate_extension(e, "alias", unmatched, &l);
                propagated = r > 0;
        }
        size_t first = e->n_items;
        if (r == -ENOMEM)
                local_expand_fail(e, i, "4.3.0", "out of memory");
        else if (r == -E2BIG)
                local_expand_limit_exceeded(e, i);
        else if (r < 0 || l.n == 0)
                local_expand_fail(e, i, "4.3.0", "alias %s: malformed destination list", local);
        else {
                local_expand_add_children(e, i, LOCAL_SOURCE_ALIAS, &privs, &l);
                if (propagated && local_expand_mark_unmatched(e, first, unmatched) < 0)
                        local_expand_fail(e, i, "4.3.0", "out of memory");
        }
        local_target_list_done(&l);
        return 1;
}
