/* local-privs.c: the identity a delivery acts as (a recipient's, or an alias or list file owner's), and taking
 * it on in a delivery or command process. Runs in the delivery child and the processes it starts. */
#include <grp.h>
#include <unistd.h>

#include "local.h"

int local_become_user(const char *user, uid_t uid, gid_t gid) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        if (getuid() == uid && geteuid() == uid)
                return 0;       /* already the user (a role run by hand as that user) */
        if (initgroups(user, gid) < 0 || setresgid(gid, gid, gid) < 0 || setresuid(uid, uid, uid) < 0)
                return -errno;
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return -errno;
        if (ruid != uid || euid != uid || suid != uid || rgid != gid || egid != gid || sgid != gid)
                return -EPERM;
        if (uid != 0 && setuid(0) >= 0)
                return -EPERM;
        return 0;
}

int local_privs_from_pw(const struct passwd *pw, LocalPrivs *ret) {
        LocalPrivs p = {
                .uid = pw->pw_uid,
                .gid = pw->pw_gid,
                .user = strdup(pw->pw_name),
                .home = strdup(strempty(pw->pw_dir)),
                .shell = strdup(isempty(pw->pw_shell) ? "/bin/sh" : pw->pw_shell),
        };

        if (!p.user || !p.home || !p.shell) {
                local_privs_done(&p);
                return -ENOMEM;
        }
        *ret = p;
        return 0;
}

int local_privs_copy(const LocalPrivs *p, LocalPrivs *ret) {
        if (p->uid == (uid_t) -1) {
                *ret = (LocalPrivs) { .uid = (uid_t) -1, .gid = (gid_t) -1 };
                return 0;
        }
        struct passwd pw = {
                .pw_name = p->user, .pw_uid = p->uid, .pw_gid = p->gid, .pw_dir = p->home, .pw_shell = p->shell,
        };
        return local_privs_from_pw(&pw, ret);
}

