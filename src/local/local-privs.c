/* local-privs.c: taking on a recipient's (or an alias owner's) identity in a delivery or command process. */
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
