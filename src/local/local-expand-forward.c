/* local-expand-forward.c: forwarding in an expansion: a user's ~/.forward (the first of forward_path that
 * passes Postfix's checks), and the addresses of other domains that aliases and .forward files name, sent
 * on through cleanup in one message per Delivered-To. Runs in local, the long-lived process (root). */
#include <fcntl.h>

#include "local.h"
#include "string-util.h"

/* Postfix's checks of a .forward: a regular file of the user or root, writable by no one else. Reads the
 * first of forward_path that exists and passes; 1 with its destinations, 0 when there is none. */
static int read_forward(LocalExpand *e, size_t i, const struct passwd *pw, const char *local, const char *domain,
                        const LocalExtension *x, LocalTargetList *ret, char **ret_unmatched) {
        _cleanup_strv_free_ char **paths = NULL;
        _cleanup_free_ char *user = strdup(pw->pw_name), *l = strdup(local), *d = strdup(strempty(domain)),
                            *ext = strdup(strempty(x->extension)), *rcpt = strdup(e->items[i].value),
                            *delim = strdup(x->delimiter);
        int r;

        if (!user || !l || !d || !ext || !rcpt || !delim)
                return -ENOMEM;
        local_sanitize(user);
        local_sanitize(l);
        local_sanitize(d);
        local_sanitize(ext);
        local_sanitize(rcpt);
        local_sanitize(delim);
        const char *vars[] = {
                "home", pw->pw_dir, "user", user, "local", l, "domain", d, "extension", ext,
                "recipient", rcpt, "recipient_delimiter", delim, "shell", strempty(pw->pw_shell),
                NULL,
        };
        r = config_split_list(e->c->forward_path, &paths);
        if (r < 0)
                return r;
        /* Every candidate expanded, then all opened as the user at once. */
        size_t n = 0, n_paths = strv_length(paths);
        _cleanup_free_ char **expanded = calloc(MAX(n_paths, 1U), sizeof(char *));
        _cleanup_free_ int *fds = calloc(MAX(n_paths, 1U), sizeof(int));
        _cleanup_free_ const char **templates = calloc(MAX(n_paths, 1U), sizeof(char *));
        if (!expanded || !fds || !templates)
                return -ENOMEM;
        _cleanup_free_ char *missing = NULL;    /* the last candidate that is not there */
        const char *previous = NULL;
        for (size_t k = 0; k < n_paths; k++) {
                char *path = NULL;
                if (format_expand_vars(paths[k], vars, &path) < 0 || path[0] != '/' ||
                    (previous && streq(path, previous))) {
                        /* Postfix's default forward_path gives $home/.forward twice without an extension. */
                        free(path);
                        continue;
                }
                /* What root does not find, the user does not either: most users have no .forward, and
                 * for them local looks as root alone and does not switch its ids (four calls saved). Only
                 * a name that is there is opened, as the user. */
                if (fstatat(AT_FDCWD, path, &(struct stat) {}, AT_SYMLINK_NOFOLLOW) < 0 &&
                    (errno == ENOENT || errno == ENOTDIR)) {
                        free(missing);
                        previous = missing = path;
                        continue;
                }
                templates[n] = paths[k];
                previous = expanded[n++] = path;
        }
        if (n == 0)
                return 0;
        r = local_open_list_files(expanded, n, pw->pw_uid, pw->pw_gid, fds);
        if (r < 0) {
                for (size_t k = 0; k < n; k++)
                        free(expanded[k]);
                return r;
        }
        int found = 0;
        size_t k = 0;
        for (; k < n; k++) {
                _cleanup_free_ char *path = TAKE_PTR(expanded[k]), *buf = NULL;
                _cleanup_close_ int fd = fds[k];
                struct stat st;
                size_t len;

                r = fd < 0 ? fd : local_read_list_fd(fd, &buf, &len, &st);
                if (r == -ENOENT || r == -ENOTDIR)
                        continue;
                if (r == -EBADFD) {
                        (void) local_report_ignored(e->report, path, "is not a regular file");
                        continue;
                }
                if (r < 0) {
                        (void) local_report_ignored(e->report, path, "cannot be read: %s",
                                                    r == -EFBIG ? "file too large" : strerror(-r));
                        continue;
                }
                if (st.st_uid != pw->pw_uid && st.st_uid != 0) {
                        (void) local_report_ignored(e->report, path, "has bad owner uid %u", (unsigned) st.st_uid);
                        continue;
                }
                if (st.st_mode & (S_IWOTH | S_IWGRP)) {
                        (void) local_report_ignored(e->report, path, "is %s writable",
                                                    st.st_mode & S_IWOTH ? "world" : "group");
                        continue;
                }
                r = local_targets_parse_file(buf, len, (size_t) e->c->duplicate_filter_limit, ret);
                if (r == -E2BIG) {
                        found = r;
                        k++;
                        break;
                }
                /* A file named without the extension (~/.forward for user+ext) leaves it unmatched, for
                 * propagate_unmatched_extensions = ... forward; one named with it (~/.forward+ext) matched it. */
                if (r >= 0 && !strstr(templates[k], "extension") && x->extension) {
                        _cleanup_free_ char *unmatched = NULL;
                        if (asprintf(&unmatched, "%s%s", x->delimiter, x->extension) < 0)
                                r = -ENOMEM;
                        else
                                r = local_propagate_extension(e, "forward", unmatched, ret);
                        if (r < 0) {
                                local_target_list_done(ret);
                                found = r;
                                k++;
                                break;
                        }
                        if (r > 0)
                                *ret_unmatched = TAKE_PTR(unmatched);
                }
                if (r < 0) {
                        local_target_list_done(ret);
                        (void) local_report_ignored(e->report, path, "has a malformed destination list");
                        continue;
                }
                found = ret->n > 0;
                k++;
                break;
        }
        for (; k < n; k++) {    /* the candidates after the one read */
                free(expanded[k]);
                safe_close(fds[k]);
        }
        return found;
}

int local_expand_forward(LocalExpand *e, size_t i, const struct passwd *pw, const char *local, const char *domain,
                         const LocalExtension *x) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_free_ char *unmatched = NULL;
        LocalTargetList l = {};
        int r;

        r = read_forward(e, i, pw, local, domain, x, &l, &unmatched);
        if (r == -E2BIG)
                local_expand_limit_exceeded(e, i);
        else if (r < 0)
                local_expand_fail(e, i, "4.3.0", "cannot read the forward file of %s: %s", local, strerror(-r));
        else if (r > 0) {
                if (local_privs_from_pw(pw, &privs) < 0)
                        local_expand_fail(e, i, "4.3.0", "out of memory");
                else {
                        size_t first = e->n_items;
                        local_expand_add_children(e, i, LOCAL_SOURCE_FORWARD, &privs, &l);
                        if (unmatched && local_expand_mark_unmatched(e, first, unmatched) < 0)
                                local_expand_fail(e, i, "4.3.0", "out of memory");
                }
        }
        local_target_list_done(&l);
        return r != 0;
}

void local_expand_forward_add(LocalExpand *e, size_t i) {
        const char *delivered = local_expand_item_address(e, e->items[i].parent);
        _cleanup_free_ char *lc = strdup(e->items[i].value);
        LocalForwardGroup *g = NULL;

        if (!lc) {
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return;
        }
        local_lowercase(lc);
        if (local_expand_seen(e, LOCAL_TARGET_ADDRESS, 0, lc))
                return;
        /* The nearest alias above with an owner-alias names the sender of the copy. */
        const char *owner = NULL;
        for (size_t j = e->items[i].parent; j != SIZE_MAX && !owner; j = e->items[j].parent)
                owner = e->items[j].owner;
        for (size_t k = 0; k < e->plan->n_groups; k++)
                if (strcaseeq(e->plan->groups[k].delivered_to, delivered) &&
                    (e->plan->groups[k].sender && owner ? streq(e->plan->groups[k].sender, owner)
                                                       : e->plan->groups[k].sender == owner))
                        g = e->plan->groups + k;
        if (!g) {
                LocalForwardGroup *l = realloc(e->plan->groups,
                                               (e->plan->n_groups + 1) * sizeof(LocalForwardGroup));
                if (!l) {
                        local_expand_fail(e, i, "4.3.0", "out of memory");
                        return;
                }
                e->plan->groups = l;
                g = e->plan->groups + e->plan->n_groups;
                *g = (LocalForwardGroup) { .delivered_to = strdup(delivered), .recipients = calloc(1, sizeof(char *)),
                                           .sender = owner ? strdup(owner) : NULL };
                if (!g->delivered_to || !g->recipients || (owner && !g->sender)) {
                        free(g->delivered_to);
                        free(g->sender);
                        free(g->recipients);
                        local_expand_fail(e, i, "4.3.0", "out of memory");
                        return;
                }
                e->plan->n_groups++;
        }
        char **r = realloc(g->recipients, (g->n + 2) * sizeof(char *));
        if (!r || !(r[g->n] = strdup(e->items[i].value))) {
                if (r)
                        g->recipients = r;
                local_expand_fail(e, i, "4.3.0", "out of memory");
                return;
        }
        g->recipients = r;
        r[++g->n] = NULL;
}
