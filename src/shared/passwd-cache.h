/* passwd-cache.h: accounts found in the last second, as getpwnam() gave them. Used by local (a message for
 * ten users of one host asks for each once, not once per copy) and by smtpd (local_recipient_maps'
 * unix:passwd.byname check of each RCPT TO): a stream of mail for one user reads the user database once a
 * second instead of once a recipient. A user that is not found is asked for every time, so that a new
 * account is known at once. Not thread-safe: for a role's event loop. */
#pragma once

#include <errno.h>
#include <pwd.h>
#include <stdbool.h>

#define PASSWD_CACHE_SIZE 64U
#define PASSWD_CACHE_USEC 1000000ULL

/* As getpwnam(3): NULL with errno 0 or one of ENOENT, ESRCH, EBADF, EPERM when there is no such user, with
 * another errno when the user database cannot be read. The entry returned stays valid until
 * PASSWD_CACHE_SIZE other users were asked for, or its own renewal: longer than getpwnam()'s own, which the
 * next call overwrites. */
struct passwd *getpwnam_recent(const char *user);

/* Whether getpwnam_recent()'s NULL means that there is no such user (not an error reading the database). */
static inline bool passwd_not_found(int error) {
        return error == 0 || error == ENOENT || error == ESRCH || error == EBADF || error == EPERM;
}
