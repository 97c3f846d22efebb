/* local-privs.c: the identity a delivery acts as (a recipient's, or an alias or list file owner's); it is taken
 * on with become_user() (command-util.h). Runs in the delivery child and the processes it starts. */
#include "local.h"

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

