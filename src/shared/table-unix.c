/* table-unix.c: unix:passwd.byname and unix:group.byname tables: the system's users and groups through
 * getpwnam() and getgrnam(), with the values Postfix gives (the passwd(5) or group(5) line). Every role
 * that reads such a table runs this code. */
#include <errno.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>

#include "log.h"
#include "table-internal.h"

/* getpwnam(3): these say "no such entry" too, depending on the NSS module. */
#define IN_SET_NOTFOUND(e) ((e) == 0 || (e) == ENOENT || (e) == ESRCH || (e) == EBADF || (e) == EPERM)

typedef enum UnixMap {
        UNIX_PASSWD_BYNAME,
        UNIX_GROUP_BYNAME,
} UnixMap;

int table_unix_passwd_format(const struct passwd *pw, char **ret) {
        char *s;

        if (asprintf(&s, "%s:%s:%ld:%ld:%s:%s:%s", pw->pw_name, strempty(pw->pw_passwd), (long) pw->pw_uid,
                     (long) pw->pw_gid, strempty(pw->pw_gecos), strempty(pw->pw_dir), strempty(pw->pw_shell)) < 0)
                return -ENOMEM;
        *ret = s;
        return 0;
}

static int group_format(const struct group *gr, char **ret) {
        _cleanup_free_ char *buf = NULL;
        size_t size = 0;
        FILE *f = open_memstream(&buf, &size);

        if (!f)
                return -ENOMEM;
        fprintf(f, "%s:%s:%ld:", gr->gr_name, strempty(gr->gr_passwd), (long) gr->gr_gid);
        for (char **m = gr->gr_mem; m && *m; m++)
                fprintf(f, "%s%s", m == gr->gr_mem ? "" : ",", *m);
        if (fclose(f) != 0)
                return -ENOMEM;
        *ret = TAKE_PTR(buf);
        return 0;
}

static int unix_table_open(Table *t) {
        static const UnixMap passwd = UNIX_PASSWD_BYNAME, group = UNIX_GROUP_BYNAME;

        if (streq(t->arg, "passwd.byname"))
                t->data = (void *) &passwd;
        else if (streq(t->arg, "group.byname"))
                t->data = (void *) &group;
        else {
                _cleanup_free_ char *e = log_escape(t->spec, strlen(t->spec));
                log_error("Unsupported table \"%s\" (unix:passwd.byname or unix:group.byname expected).", strna(e));
                return -EPROTONOSUPPORT;
        }
        return 0;
}

static int unix_table_lookup(Table *t, const char *key, char **ret_value) {
        const UnixMap *map = t->data;

        /* An empty or odd name is no user; NSS modules need not cope with it. */
        if (key[0] == '\0' || strlen(key) > 256 || strchr(key, '/'))
                return 0;
        errno = 0;
        if (*map == UNIX_PASSWD_BYNAME) {
                struct passwd *pw = getpwnam(key);
                if (!pw)
                        return IN_SET_NOTFOUND(errno) ? 0 : -errno;
                if (!ret_value)
                        return 1;
                return table_unix_passwd_format(pw, ret_value) < 0 ? -ENOMEM : 1;
        }
        struct group *gr = getgrnam(key);
        if (!gr)
                return IN_SET_NOTFOUND(errno) ? 0 : -errno;
        if (!ret_value)
                return 1;
        return group_format(gr, ret_value) < 0 ? -ENOMEM : 1;
}

const TableType table_type_unix = {
        .name = "unix",
        .open = unix_table_open,
        .lookup = unix_table_lookup,
};
