/* pickup-maildrop.c: reading the maildrop directory, and checking each file before anything of it goes
 * on: a regular file with one link, owned by a known user, no larger than message_size_limit allows,
 * and a maildrop file record by record (maildrop_parse()). Anything else is removed with a record. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pwd.h>
#include <sys/stat.h>

#include "io-util.h"
#include "log.h"
#include "pickup.h"
#include "string-util.h"

void pickup_set_working(Pickup *p, bool working) {
        if (p->working == working)
                return;
        p->working = working;
        if (working)
                daemon_busy_inc(p->daemon);
        else
                daemon_busy_dec(p->daemon);
}

void pickup_discard(Pickup *p, const char *name, uid_t uid, const char *why) {
        _cleanup_free_ char *ename = log_escape(name, strlen(name));
        char uid_text[32] = "";
        int r = 0;

        if (uid != (uid_t) -1)
                (void) snprintf(uid_text, sizeof uid_text, "%u", (unsigned) uid);
        if (unlinkat(p->dir_fd, name, 0) < 0 && (errno != EISDIR || unlinkat(p->dir_fd, name, AT_REMOVEDIR) < 0))
                r = -errno;
        if (r < 0 && r != -ENOENT) {
                log_mail(LOG_ERR, NULL, LOG_FIELDS({ "MAILDROP_FILE", ename }, { "UID", uid_text[0] ? uid_text : NULL }),
                         "maildrop file %s%s%s: %s; failed to remove it: %s", strna(ename),
                         uid_text[0] ? " from uid " : "", uid_text, why, strerror(-r));
                /* Left in place, it must not be read again at once. */
                p->temporary_failure = true;
                return;
        }
        log_mail(LOG_WARNING, NULL,
                 LOG_FIELDS({ "MAILDROP_FILE", ename }, { "UID", uid_text[0] ? uid_text : NULL },
                            { "MESSAGE_ID", POSTBUS_MESSAGE_MAILDROP_FILE_DISCARDED }),
                 "maildrop file %s%s%s: %s; removed", strna(ename), uid_text[0] ? " from uid " : "", uid_text, why);
}

PickupMessage *pickup_message_free(PickupMessage *m) {
        if (!m)
                return NULL;
        sd_bus_slot_unref(m->slot);
        pickup_milter_free(m);
        if (m->pickup && m->pickup->n_in_flight == 0)
                pickup_retired_free(m->pickup);
        maildrop_envelope_free(m->envelope);
        free(m->login);
        free(m->full_name);
        free(m->reject_text);
        safe_close(m->content_fd);
        free(m);
        return NULL;
}

/* The first field of the GECOS entry, if it is fit for a From header. */
static char *gecos_name(const char *gecos) {
        size_t n = strcspn(strempty(gecos), ",");
        char *s;

        if (n == 0)
                return NULL;
        s = strndup(gecos, n);
        if (s && !maildrop_full_name_valid(s))
                s = mfree(s);
        return s;
}

int pickup_message_load(Pickup *p, const char *name, PickupMessage **ret) {
        _cleanup_(pickup_message_freep) PickupMessage *m = NULL;
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *buf = NULL;
        const Config *c = p->daemon->config;
        uint64_t size_max = (uint64_t) c->message_size_limit + MAILDROP_ENVELOPE_MAX;
        struct passwd *pw;
        struct stat st;
        char why[128];
        int r;

        fd = openat(p->dir_fd, name, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        if (fd < 0) {
                r = -errno;
                if (r == -ENOENT)
                        return 0;
                struct stat lst;
                uid_t owner = fstatat(p->dir_fd, name, &lst, AT_SYMLINK_NOFOLLOW) >= 0 ? lst.st_uid : (uid_t) -1;
                if (r == -ELOOP)
                        pickup_discard(p, name, owner, "a symbolic link");
                else if (r == -EACCES)
                        pickup_discard(p, name, owner, "not readable by the postdrop group (not made by sendmail)");
                else if (r == -ENXIO || r == -ENODEV)
                        pickup_discard(p, name, owner, "not a regular file");
                else
                        return log_error_errno(r, "Failed to open maildrop file %s: %m", name);
                return 0;
        }
        if (fstat(fd, &st) < 0)
                return log_error_errno(errno, "Failed to stat maildrop file %s: %m", name);
        if (!S_ISREG(st.st_mode)) {
                pickup_discard(p, name, st.st_uid, "not a regular file");
                return 0;
        }
        if (st.st_nlink != 1) {
                pickup_discard(p, name, st.st_uid, "a file with more than one name (a hard link)");
                return 0;
        }
        if ((uint64_t) st.st_size > size_max) {
                (void) snprintf(why, sizeof why, "%" PRIu64 " bytes, larger than message_size_limit allows",
                                (uint64_t) st.st_size);
                pickup_discard(p, name, st.st_uid, why);
                return 0;
        }
        errno = 0;
        pw = getpwuid(st.st_uid);
        if (!pw) {
                if (errno != 0 && errno != ENOENT && errno != ESRCH)
                        return log_error_errno(errno, "Failed to look up uid %u: %m", (unsigned) st.st_uid);
                pickup_discard(p, name, st.st_uid, "owned by a uid that is no user");
                return 0;
        }

        m = calloc(1, sizeof(PickupMessage));
        if (!m)
                return log_oom();
        m->pickup = p;
        m->content_fd = -EBADF;
        memcpy(m->name, name, MAILDROP_NAME_SIZE);
        m->uid = st.st_uid;
        m->login = strdup(pw->pw_name);
        if (!m->login)
                return log_oom();
        m->full_name = gecos_name(pw->pw_gecos);

        buf = malloc(MAX((size_t) st.st_size, (size_t) 1));
        if (!buf)
                return log_oom();
        r = pread_full(fd, buf, (size_t) st.st_size, 0);
        if (r == -EBADMSG) {     /* shorter than fstat said */
                pickup_discard(p, name, st.st_uid, "truncated while being read");
                return 0;
        }
        if (r < 0)
                return log_error_errno(r, "Failed to read maildrop file %s: %m", name);

        r = maildrop_parse(buf, (size_t) st.st_size, (uint64_t) c->message_size_limit, &m->envelope);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                pickup_discard(p, name, st.st_uid,
                               r == -EFBIG ? "more content than message_size_limit allows"
                               : r == -E2BIG ? "an envelope larger than sendmail writes"
                               : "malformed (a record of a type, order or length sendmail does not write, or truncated)");
                return 0;
        }
        if (m->envelope->full_name) {
                free(m->full_name);
                m->full_name = strdup(m->envelope->full_name);
                if (!m->full_name)
                        return log_oom();
        }

        /* cleanup gets the content alone, in a memory file sealed against change while it maps it. */
        m->content_fd = memfd_new("postbus-pickup");
        if (m->content_fd < 0)
                return log_error_errno(m->content_fd, "Failed to create a memory file: %m");
        r = maildrop_content_foreach(buf, (size_t) st.st_size, m->envelope, write_full_cb, &m->content_fd);
        if (r < 0)
                return log_error_errno(r, "Failed to copy maildrop file %s: %m", name);
        r = memfd_seal(m->content_fd);
        if (r < 0)
                return log_error_errno(r, "Failed to seal a memory file: %m");

        *ret = TAKE_PTR(m);
        return 1;
}

static void remove_stale_tmp(Pickup *p, const char *name) {
        size_t n = strlen(name);
        struct stat st;

        if (n <= STRLEN(MAILDROP_TMP_SUFFIX) || !streq(name + n - STRLEN(MAILDROP_TMP_SUFFIX), MAILDROP_TMP_SUFFIX))
                return;
        if (fstatat(p->dir_fd, name, &st, AT_SYMLINK_NOFOLLOW) < 0)
                return;
        uint64_t mtime = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC;
        if (mtime + PICKUP_STALE_TMP_USEC > now_realtime_usec())
                return;         /* sendmail may still be writing it */
        pickup_discard(p, name, st.st_uid, "left unfinished by a sendmail that did not complete");
}

static bool in_flight(Pickup *p, const char *name) {
        for (PickupMessage *m = p->in_flight; m; m = m->next)
                if (streq(m->name, name))
                        return true;
        return false;
}

static int name_compare(const void *a, const void *b) {
        return strcmp(*(char *const *) a, *(char *const *) b);
}

void pickup_scan(Pickup *p) {
        int fd;
        DIR *d;
        struct dirent *de;

        p->names = strv_free(p->names);
        p->n_names = p->next_name = 0;
        p->temporary_failure = false;

        fd = fcntl(p->dir_fd, F_DUPFD_CLOEXEC, 3);
        d = fd >= 0 ? fdopendir(fd) : NULL;
        if (!d) {
                log_error_errno(errno, "Failed to read %s: %m", p->maildrop_path);
                safe_close(fd);
                p->temporary_failure = true;
                pickup_pump(p);
                return;
        }
        rewinddir(d);
        while ((de = readdir(d)) && p->n_names < PICKUP_BATCH_MAX) {
                if (streq(de->d_name, ".") || streq(de->d_name, ".."))
                        continue;
                if (de->d_name[0] == '.') {
                        remove_stale_tmp(p, de->d_name);
                        continue;
                }
                if (!maildrop_name_valid(de->d_name)) {
                        struct stat st;
                        uid_t owner = fstatat(p->dir_fd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) >= 0 ? st.st_uid
                                                                                                : (uid_t) -1;
                        pickup_discard(p, de->d_name, owner, "not named as sendmail names its files");
                        continue;
                }
                if (in_flight(p, de->d_name))
                        continue;
                if (strv_push(&p->names, &p->n_names, strdup(de->d_name)) < 0) {
                        log_oom();
                        p->temporary_failure = true;
                        break;
                }
        }
        closedir(d);
        if (p->n_names > 0)
                qsort(p->names, p->n_names, sizeof(char *), name_compare);
        pickup_pump(p);
}
