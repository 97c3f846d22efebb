/* local-expand-include.c: :include: files in an expansion, and the careful reading of a list file (an
 * :include: or a .forward) as the user it belongs to. Runs in local, the long-lived process (root). */
#include <fcntl.h>
#include <unistd.h>

#include "local.h"

int local_open_list_files(char *const *paths, size_t n, uid_t uid, gid_t gid, int *ret_fds) {
        static int real_root = -1;
        int r;

        if (real_root < 0)
                real_root = getuid() == 0;
        /* local's real ids are root's for good: the switch alone, without asking the kernel what they are. It
         * has no supplementary groups (local_setup() drops them), so the effective ids are all there is to
         * switch. Not root (a test): mailbox_set_eugid(). */
        r = real_root ? mailbox_switch_eugid(0, uid, gid, false) : mailbox_set_eugid(uid, gid);
        if (r < 0) {
                if (real_root)
                        (void) mailbox_switch_eugid(uid, 0, 0, false); /* what was switched before the failure */
                return r;
        }
        /* All under one switch of the effective ids. */
        for (size_t k = 0; k < n; k++) {
                ret_fds[k] = open(paths[k], O_RDONLY | O_NOCTTY | O_NONBLOCK | O_CLOEXEC);
                if (ret_fds[k] < 0)
                        ret_fds[k] = -errno;
        }
        r = real_root ? mailbox_switch_eugid(uid, 0, 0, false) : mailbox_set_eugid(0, 0);
        if (r < 0) {
                /* local cannot go on with another's ids: what it opened is not trusted either. */
                for (size_t k = 0; k < n; k++)
                        ret_fds[k] = ret_fds[k] >= 0 ? (safe_close(ret_fds[k]), r) : ret_fds[k];
                return r;
        }
        return 0;
}

int local_read_list_fd(int fd, char **ret, size_t *ret_len, struct stat *ret_st) {
        _cleanup_free_ char *buf = NULL;
        size_t len = 0;

        if (fstat(fd, ret_st) < 0)
                return -errno;
        if (!S_ISREG(ret_st->st_mode))
                return -EBADFD;
        if (ret_st->st_size > (off_t) LOCAL_LIST_FILE_MAX)
                return -EFBIG;
        buf = malloc(LOCAL_LIST_FILE_MAX + 1);
        if (!buf)
                return -ENOMEM;
        for (;;) {
                ssize_t n = read(fd, buf + len, LOCAL_LIST_FILE_MAX + 1 - len);
                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0)
                        return -errno;
                if (n == 0)
                        break;
                len += (size_t) n;
                if (len > LOCAL_LIST_FILE_MAX)
                        return -EFBIG;
        }
        buf[len] = '\0';
        *ret = TAKE_PTR(buf);
        *ret_len = len;
        return 0;
}

int local_read_list_file(const char *path, uid_t uid, gid_t gid, char **ret, size_t *ret_len, struct stat *ret_st) {
        char *const paths[] = { (char *) path };
        _cleanup_close_ int fd = -EBADF;
        int r;

        r = local_open_list_files(paths, 1, uid, gid, &fd);
        if (r < 0)
                return r;
        if (fd < 0)
                return fd;
        return local_read_list_fd(fd, ret, ret_len, ret_st);
}

void local_expand_include(LocalExpand *e, size_t i) {
        _cleanup_(local_privs_done) LocalPrivs privs = {};
        _cleanup_free_ char *buf = NULL;
        LocalTargetList l = {};
        const LocalItem *it = e->items + i;
        struct stat st;
        size_t len;
        int r;

        for (size_t j = it->parent; j != SIZE_MAX; j = e->items[j].parent)
                if (e->items[j].type == LOCAL_TARGET_INCLUDE && streq(e->items[j].value, it->value)) {
                        local_expand_fail(e, i, "5.4.6", "include file loop for %s", it->value);
                        return;
                }
        /* Read with the rights of whoever named it: an alias table's owner, or the .forward's user. */
        uid_t uid = it->privs.uid == (uid_t) -1 ? 0 : it->privs.uid;
        gid_t gid = it->privs.uid == (uid_t) -1 ? 0 : it->privs.gid;
        r = local_read_list_file(it->value, uid, gid, &buf, &len, &st);
        if (r == -EBADFD) {
                local_expand_fail(e, i, "5.3.0", "include file %s is not a regular file", it->value);
                return;
        }
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "cannot read include file %s: %s", it->value,
                                  r == -EFBIG ? "file too large" : strerror(-r));
                return;
        }
        if (st.st_mode & S_IWOTH) {
                local_expand_fail(e, i, "4.7.0", "include file %s is world writable", it->value);
                return;
        }
        r = local_expand_privs_for_owner(e, st.st_uid, &privs);
        if (r < 0) {
                local_expand_fail(e, i, "4.3.0", "cannot find the user to act as for %s: %s", it->value, strerror(-r));
                return;
        }
        r = local_targets_parse_file(buf, len, (size_t) e->c->duplicate_filter_limit, &l);
        /* An extension its alias or .forward left unmatched: with include listed, its addresses get it. */
        _cleanup_free_ char *unmatched = it->unmatched ? strdup(it->unmatched) : NULL;
        bool propagated = false;
        if (r >= 0 && it->unmatched) {
                r = unmatched ? local_propagate_extension(e, "include", unmatched, &l) : -ENOMEM;
                propagated = r > 0;
        }
        size_t first = e->n_items;
        if (r == -ENOMEM)
                local_expand_fail(e, i, "4.3.0", "out of memory");
        else if (r == -E2BIG)
                local_expand_limit_exceeded(e, i);
        else if (r < 0)
                local_expand_fail(e, i, "4.3.0", "include file %s: malformed destination list", it->value);
        else if (l.n == 0)
                local_expand_fail(e, i, "5.3.0", "include file %s names no destinations", it->value);
        else {
                local_expand_add_children(e, i, LOCAL_SOURCE_INCLUDE, &privs, &l);
                if (propagated && local_expand_mark_unmatched(e, first, unmatched) < 0)
                        local_expand_fail(e, i, "4.3.0", "out of memory");
        }
        local_target_list_done(&l);
}

