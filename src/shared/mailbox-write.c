/* mailbox-write.c: writing one message into an mbox file (dot-lock and fcntl lock, From_ line, ">From "
 * quoting, truncation after a failed write) or into a Maildir (tmp/, fsync, link into new/, fsync new/). Runs
 * in the processes of local and virtual that write mailboxes, as the mailbox's user. */
#include <dirent.h>
#include <fcntl.h>
#include <grp.h>
#include <signal.h>
#include <sys/stat.h>
#include <time.h>

#include "address.h"
#include "daemon.h"
#include "io-util.h"
#include "mailbox.h"

#define MAILBOX_WRITE_BUFFER (64U * 1024U)

/* Buffered output to the mailbox. */
typedef struct MailboxWriter {
        int fd;
        int error;              /* the first failed write, negative errno */
        char last;              /* the last byte of output, to end the message with a newline */
        uint64_t written;       /* bytes written to fd */
        size_t len;
        char buf[MAILBOX_WRITE_BUFFER];
} MailboxWriter;

static int writer_flush(MailboxWriter *w) {
        int r = write_full(w->fd, w->buf, w->len);

        if (r < 0)
                return w->error = r;
        w->written += w->len;
        w->len = 0;
        return 0;
}

static int writer_put(const char *data, size_t len, void *userdata) {
        MailboxWriter *w = userdata;
        int r;

        if (len == 0)
                return 0;
        w->last = data[len - 1];
        while (len > 0) {
                if (w->len == sizeof w->buf) {
                        r = writer_flush(w);
                        if (r < 0)
                                return r;
                }
                size_t n = MIN(len, sizeof w->buf - w->len);
                memcpy(w->buf + w->len, data, n);
                w->len += n;
                data += n;
                len -= n;
        }
        return 0;
}

typedef struct MailboxCopy {
        MailboxWriter *writer;
        MboxQuote *quote;       /* NULL: no ">From " quoting */
} MailboxCopy;

static int copy_piece(const char *data, size_t len, void *userdata) {
        MailboxCopy *c = userdata;

        if (c->quote)
                return mbox_quote_feed(c->quote, data, len, writer_put, c->writer);
        return writer_put(data, len, c->writer);
}

/* Writes the From_ line (mbox only), the added headers, the content ending in a newline, and for mbox an
 * empty line. On failure w->error tells a failed write from a queue file that could not be read. */
static int write_message(const MailboxMessage *m, MailboxWriter *w, const char *from_line) {
        _cleanup_free_ char *headers = NULL;
        MboxQuote quote;
        MailboxCopy copy = { .writer = w, .quote = from_line ? &quote : NULL };
        int r;

        r = mailbox_delivery_headers(m, from_line, &headers);
        if (r < 0)
                return r;
        r = writer_put(headers, strlen(headers), w);
        if (r < 0)
                return r;

        mbox_quote_init(&quote);
        r = queue_file_content_foreach(m->queue_fd, m->envelope, copy_piece, &copy);
        if (r >= 0 && from_line)
                r = mbox_quote_finish(&quote, writer_put, w);
        if (r >= 0 && w->last != '\n')
                r = writer_put("\n", 1, w);
        if (r >= 0 && from_line)
                r = writer_put("\n", 1, w);
        if (r >= 0)
                r = writer_flush(w);
        return r;
}

/* A full quota or a file larger than mailbox_size_limit is permanent, as in Postfix; a full disk and
 * everything else temporary. */
static const char *errno_dsn(int error, const char *def) {
        error = abs(error);
        if (error == EDQUOT || error == EFBIG)
                return "5.2.2";
        if (error == ENOSPC)
                return "4.3.1";
        return def;
}

/* The result of a failed write_message(). */
static void write_failed(MailboxResult *ret, const MailboxWriter *w, int r, const char *path) {
        if (w->error < 0)
                mailbox_result_set(ret, errno_dsn(w->error, "4.3.0"), "cannot write %s: %s", path,
                                 strerror(-w->error));
        else if (r == -EBADMSG)
                mailbox_result_set(ret, "4.3.0", "queue file is corrupt");
        else
                mailbox_result_set(ret, "4.3.0", "cannot read the queue file: %s", strerror(-r));
}

/* A process whose uids are one and not root's (a per-user worker) keeps them for good, and its effective
 * gid moves only here: once the kernel has told them, they are known without asking again. */
typedef struct FixedIds {
        bool known;
        uid_t uid;
        gid_t egid;
} FixedIds;
static FixedIds fixed_ids;

int mailbox_set_eugid(uid_t uid, gid_t gid) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        if (!fixed_ids.known) {
                /* Two calls tell all the ids (getuid(), geteuid() and getegid() are a system call each). */
                if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                        return -errno;
                if (ruid != 0 && ruid == euid && euid == suid)
                        fixed_ids = (FixedIds) { .known = true, .uid = ruid, .egid = egid };
                else if (euid == uid && egid == gid)
                        return 0;
                else
                        return mailbox_switch_eugid(euid, uid, gid, true);
        }
        /* Its uid is its own for good; its effective gid alone moves, between its own and the saved one it
         * was given (the group of a group-writable spool). */
        if (uid != fixed_ids.uid)
                return -EPERM;
        if (gid == fixed_ids.egid)
                return 0;
        if (setegid(gid) < 0) {
                fixed_ids.known = false;
                return -errno;
        }
        fixed_ids.egid = gid;
        return 0;
}

int mailbox_switch_eugid(uid_t from_uid, uid_t uid, gid_t gid, bool groups) {
        if (from_uid != 0 && seteuid(0) < 0)
                return -errno;
        if ((groups && setgroups(1, &gid) < 0) || setegid(gid) < 0)
                return -errno;
        if (uid != 0 && seteuid(uid) < 0)
                return -errno;
        return 0;
}

static void sleep_usec(uint64_t usec) {
        struct timespec ts = {
                .tv_sec = (time_t) (usec / USEC_PER_SEC),
                .tv_nsec = (long) (usec % USEC_PER_SEC) * 1000,
        };

        while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
                ;
}

/* Whether the dot-lock at lock_path names, as liblockfile's do, a process of this machine that is gone (one
 * that a kill took while it held the lock), or this process, which holds no lock while it asks for one. Then
 * it is removed at once, without waiting stale_lock_time. A lock with no process ID in it, or one whose
 * process may still run, is not. */
static bool dotlock_orphaned(const char *lock_path) {
        _cleanup_close_ int fd = open(lock_path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC);
        char buf[32];
        ssize_t n;
        char *end;

        if (fd < 0)
                return false;
        n = read(fd, buf, sizeof buf - 1);
        if (n <= 0)
                return false;
        buf[n] = '\0';
        errno = 0;
        long pid = strtol(buf, &end, 10);
        if (errno != 0 || end == buf || (*end != '\n' && *end != '\0') || pid <= 1 || pid > INT32_MAX)
                return false;
        if ((pid_t) pid == getpid_cached())
                return true;
        return kill((pid_t) pid, 0) < 0 && errno == ESRCH;
}

/* A process that delivers one message after another (local's per-user worker) keeps its dot-lock file from
 * one delivery to the next, under a name of its own in the lock's directory, ".postbus-lock.<pid>" (no user
 * name starts with a dot), and renames it to "<mailbox>.lock" to lock, where no such name is yet
 * (RENAME_NOREPLACE), and back to unlock. So no file is created or removed for a delivery: on a busy spool
 * that is an inode allocated and freed less for every message, and two system calls. The file holds the
 * process ID from its first moment, like a lock made by dotlock_create(), and its time is set before it
 * becomes the lock, so that no reader takes a fresh lock for a stale one. mailbox_dotlock_forget() removes it
 * when the process ends; one that a kill ends leaves it behind, for mailbox_dotlock_sweep() (local, when it
 * starts) or a later process with the same ID, which takes it over. */
static char *kept_lock;                 /* its path, or NULL */
static bool kept_lock_unusable;         /* renameat2() cannot do it here */

void mailbox_dotlock_forget(void) {
        if (kept_lock)
                (void) unlink(kept_lock);
        kept_lock = mfree(kept_lock);
}

void mailbox_dotlock_sweep(const char *dir) {
        static const char prefix[] = ".postbus-lock.";
        DIR *d = opendir(dir);

        if (!d)
                return;
        for (struct dirent *de; (de = readdir(d));) {
                const char *p = de->d_name + strlen(prefix);
                char *end;

                if (strncmp(de->d_name, prefix, strlen(prefix)) != 0 || *p < '0' || *p > '9')
                        continue;
                errno = 0;
                long pid = strtol(p, &end, 10);
                if (errno != 0 || *end || pid <= 1 || pid > INT32_MAX)
                        continue;
                if (kill((pid_t) pid, 0) < 0 && errno == ESRCH)
                        (void) unlinkat(dirfd(d), de->d_name, 0);
        }
        closedir(d);
}

/* What a dot-lock of ours holds: our process ID and a newline, as liblockfile's do. Its length. */
static int dotlock_content(char buf[static 16]) {
        return snprintf(buf, 16, "%d\n", (int) getpid_cached());
}

/* The kept file for the directory of lock_path, created when there is none; NULL when there cannot be one. */
static const char *kept_lock_get(const char *lock_path) {
        const char *slash = strrchr(lock_path, '/');
        size_t dir_len = slash ? (size_t) (slash - lock_path) + 1 : 0;
        char pid[16];
        int len;

        if (kept_lock && strncmp(kept_lock, lock_path, dir_len) == 0 && !strchr(kept_lock + dir_len, '/'))
                return kept_lock;
        mailbox_dotlock_forget();
        if (asprintf(&kept_lock, "%.*s.postbus-lock.%d", (int) dir_len, lock_path, (int) getpid_cached()) < 0) {
                kept_lock = NULL;
                return NULL;
        }
        /* What is there under our name is a kept lock of a process of ours that a kill ended. */
        (void) unlink(kept_lock);
        len = dotlock_content(pid);
        _cleanup_close_ int fd = open(kept_lock, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC,
                                      0600);
        if (fd < 0 || write(fd, pid, (size_t) len) != len) {
                if (fd >= 0)
                        (void) unlink(kept_lock);
                kept_lock = mfree(kept_lock);
        }
        return kept_lock;
}

/* Renames the kept file to the lock: 0, -EEXIST when the lock is there, or another negative errno when the
 * kept file cannot be had (the caller then creates the lock). */
static int kept_lock_take(const char *lock_path) {
        for (unsigned attempt = 0; attempt < 2; attempt++) {
                const char *kept = kept_lock_get(lock_path);

                if (!kept)
                        return -ENOENT;
                if (utimensat(AT_FDCWD, kept, NULL, AT_SYMLINK_NOFOLLOW) >= 0 &&
                    renameat2(AT_FDCWD, kept, AT_FDCWD, lock_path, RENAME_NOREPLACE) >= 0)
                        return 0;
                if (errno == EEXIST)
                        return -EEXIST;
                if (errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP) {
                        kept_lock_unusable = true;      /* a file system without RENAME_NOREPLACE */
                        mailbox_dotlock_forget();
                        return -EOPNOTSUPP;
                }
                kept_lock = mfree(kept_lock);   /* someone removed it: make it again, once */
        }
        return -ENOENT;
}

/* Unlocks: the lock back to the kept name, or removed. */
static void dotlock_release(const char *lock_path, bool kept) {
        if (kept && kept_lock && renameat2(AT_FDCWD, lock_path, AT_FDCWD, kept_lock, RENAME_NOREPLACE) >= 0)
                return;
        if (kept)
                kept_lock = mfree(kept_lock);
        (void) unlink(lock_path);
}

/* Creates the dot-lock with our process ID in it from its first moment: written into an unnamed file in the
 * lock's directory, which is then linked under the lock's name. A kill between creating a lock and writing it
 * would otherwise leave an empty lock that nobody can tell is orphaned, and the mailbox would wait
 * stale_lock_time. Where the file system has no unnamed files, the lock is created, then written. Returns 0,
 * -EEXIST when the lock is there, or another negative errno. */
static int dotlock_create(const char *lock_path) {
        _cleanup_free_ char *dir = NULL;
        _cleanup_close_ int fd = -EBADF;
        char pid[16], proc[32];
        int len = dotlock_content(pid);
        const char *slash = strrchr(lock_path, '/');

        dir = slash ? strndup(lock_path, (size_t) (slash - lock_path) + 1) : strdup(".");
        if (!dir)
                return -ENOMEM;
        fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0600);
        if (fd < 0 && errno != EOPNOTSUPP && errno != EISDIR)
                return -errno;
        if (fd >= 0) {
                if (write(fd, pid, (size_t) len) != len)
                        return errno > 0 ? -errno : -EIO;
                /* linkat() with AT_EMPTY_PATH needs CAP_DAC_READ_SEARCH; the descriptor's /proc name does not. */
                (void) snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
                if (linkat(AT_FDCWD, proc, AT_FDCWD, lock_path, AT_SYMLINK_FOLLOW) >= 0)
                        return 0;
                if (errno == EEXIST)
                        return -EEXIST;
                fd = safe_close(fd);    /* no /proc, say: the two steps */
        }
        fd = open(lock_path, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC, 0600);
        if (fd < 0)
                return -errno;
        (void) write(fd, pid, (size_t) len);
        return 0;
}

/* The dot-lock "<mailbox>.lock" that mail readers honour, with our process ID in it; removed when older than
 * stale_usec, or when the process it names is gone. */
static int dotlock_acquire(const char *lock_path, const MailboxLocking *l, MailboxResult *ret, bool *ret_kept) {
        for (unsigned attempt = 1;; attempt++) {
                struct stat st;
                int r = -ENOENT;

                *ret_kept = l->keep_lock_file && !kept_lock_unusable;
                if (*ret_kept)
                        r = kept_lock_take(lock_path);
                if (r != 0 && r != -EEXIST) {
                        *ret_kept = false;
                        r = dotlock_create(lock_path);
                }
                if (r >= 0)
                        return 0;
                if (r != -EEXIST) {
                        errno = -r;
                        mailbox_result_set(ret, errno_dsn(-r, "4.2.0"), "cannot create lock file %s: %m",
                                         lock_path);
                        return r;
                }
                if (lstat(lock_path, &st) == 0 &&
                    (now_realtime_usec() >= (uint64_t) st.st_mtime * USEC_PER_SEC + l->stale_usec ||
                     dotlock_orphaned(lock_path))) {
                        if (unlink(lock_path) < 0 && errno != ENOENT) {
                                mailbox_result_set(ret, "4.2.0", "cannot remove stale lock file %s: %m",
                                                 lock_path);
                                return -errno;
                        }
                        if (attempt <= l->attempts)
                                continue;       /* at once, and once more than the attempts at most */
                }
                if (attempt >= l->attempts)
                        break;
                sleep_usec(l->delay_usec);
        }
        mailbox_result_set(ret, "4.2.0", "cannot lock mailbox: lock file %s is busy", lock_path);
        return -EBUSY;
}

static int fcntl_lock(int fd, const char *path, const MailboxLocking *l, MailboxResult *ret) {
        struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };

        if (l->no_fcntl)
                return 0;
        for (unsigned attempt = 1;; attempt++) {
                if (fcntl(fd, F_SETLK, &fl) >= 0)
                        return 0;
                if (errno != EAGAIN && errno != EACCES) {
                        mailbox_result_set(ret, "4.2.0", "cannot lock mailbox %s: %m", path);
                        return -errno;
                }
                if (attempt >= l->attempts)
                        break;
                sleep_usec(l->delay_usec);
        }
        mailbox_result_set(ret, "4.2.0", "cannot lock mailbox %s: it is locked by another process", path);
        return -EBUSY;
}

/* Opens (creating if missing) and locks the mailbox, with the dot-lock held. Refuses what is not the
 * recipient's own regular file. Returns the fd and its state once locked. */
static int mbox_open_locked(const MailboxMbox *mb, MailboxResult *ret, struct stat *ret_st) {
        const int flags = O_WRONLY | O_APPEND | O_NOFOLLOW | O_NONBLOCK | O_NOCTTY | O_CLOEXEC;

        for (unsigned attempt = 1;; attempt++) {
                _cleanup_close_ int fd = -EBADF;
                struct stat st, now;
                bool created = false;

                if (attempt > mb->locking.attempts) {
                        mailbox_result_set(ret, "4.2.0", "cannot open mailbox %s: it keeps changing",
                                         mb->path);
                        return -EBUSY;
                }
                fd = open(mb->path, flags);
                if (fd < 0 && errno == ENOENT) {
                        fd = open(mb->path, flags | O_CREAT | O_EXCL, 0600);
                        if (fd < 0 && errno == EEXIST)
                                continue;       /* created by someone else meanwhile */
                        created = fd >= 0;
                }
                if (fd < 0) {
                        if (errno == ELOOP)
                                mailbox_result_set(ret, "5.2.0", "mailbox %s is a symbolic link", mb->path);
                        else if (errno == EISDIR || errno == ENXIO)     /* ENXIO: a FIFO without reader */
                                mailbox_result_set(ret, "5.2.0", "mailbox %s is not a regular file", mb->path);
                        else
                                mailbox_result_set(ret, errno_dsn(errno, "4.2.0"),
                                                 "cannot open mailbox %s: %m", mb->path);
                        return -errno;
                }
                if (created && mb->lock_uid != mb->uid && fchown(fd, mb->uid, mb->create_gid) < 0) {
                        mailbox_result_set(ret, "4.3.0", "cannot set the owner of mailbox %s: %m", mb->path);
                        (void) unlink(mb->path);
                        return -EPERM;
                }
                if (fstat(fd, &st) < 0) {
                        mailbox_result_set(ret, "4.3.0", "cannot stat mailbox %s: %m", mb->path);
                        return -errno;
                }
                if (!S_ISREG(st.st_mode)) {
                        mailbox_result_set(ret, "5.2.0", "mailbox %s is not a regular file", mb->path);
                        return -EPERM;
                }
                if (st.st_nlink == 0)
                        continue;       /* removed after we opened it */
                if (st.st_nlink != 1) {
                        mailbox_result_set(ret, "5.2.0", "mailbox %s has %lu hard links", mb->path,
                                         (unsigned long) st.st_nlink);
                        return -EPERM;
                }
                /* Probably set up wrongly rather than permanently wrong: like Postfix, try again later. */
                if (st.st_uid != mb->uid && !mb->file_target) {
                        mailbox_result_set(ret, "4.2.0", "mailbox %s is not owned by the recipient", mb->path);
                        return -EPERM;
                }

                if (fcntl_lock(fd, mb->path, &mb->locking, ret) < 0)
                        return -EBUSY;
                /* A mail reader may have replaced the file while we waited for the lock. */
                if (lstat(mb->path, &now) < 0 || now.st_dev != st.st_dev || now.st_ino != st.st_ino)
                        continue;
                /* The same file: its size now, which no other writer changes while we hold the lock. */
                *ret_st = now;
                return TAKE_FD(fd);
        }
}

/* Appends message m at the end of the locked fd, whose size is *size; on success *size is the new end. A
 * failed message is cut off again, so that the next one starts where it started. Whether the fd is still
 * usable: false when the cut failed, and nothing more may be appended. */
static bool mbox_append(const MailboxMessage *m, const MailboxMbox *mb, int fd, MailboxWriter *w, off_t *size,
                        MailboxResult *ret) {
        char from_line[ADDRESS_MAX + 64];
        time_t now = time(NULL);
        struct tm tm;
        int r;

        if (!localtime_r(&now, &tm) || mbox_from_line(m->sender, &tm, from_line, sizeof from_line) < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot format the From_ line");
                return true;
        }
        *w = (MailboxWriter) { .fd = fd };
        r = write_message(m, w, from_line);
        if (r >= 0) {
                /* Appended under both locks: the file ends where this message does. */
                mailbox_result_set(ret, "2.0.0", "delivered to mailbox");
                *size += (off_t) w->written;
                return true;
        }
        write_failed(ret, w, r, mb->path);
        /* Leave no partial message behind. */
        if (ftruncate(fd, *size) < 0 || fsync(fd) < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot write mailbox %s, and cannot truncate it: %m", mb->path);
                return false;
        }
        return true;
}

void mailbox_deliver_mbox_batch(const MailboxMessage *m, size_t n, const MailboxMbox *mb, MailboxResult *ret) {
        _cleanup_free_ char *lock_path = NULL;
        _cleanup_free_ MailboxWriter *w = NULL;
        _cleanup_close_ int fd = -EBADF;
        struct stat st = {};
        off_t size;
        size_t done = 0;
        bool any = false, kept = false;
        int r;

        w = calloc(1, sizeof(MailboxWriter));
        if (!w || asprintf(&lock_path, "%s.lock", mb->path) < 0) {
                mailbox_result_set(ret, "4.3.0", "out of memory");
                goto fail_rest;
        }

        r = mailbox_set_eugid(mb->lock_uid, mb->lock_gid);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot switch to uid %u: %s", (unsigned) mb->lock_uid,
                                 strerror(-r));
                goto fail_rest;
        }
        r = mb->locking.no_dotlock ? -EACCES : dotlock_acquire(lock_path, &mb->locking, ret, &kept);
        if (r == -EACCES && (mb->file_target || mb->locking.no_dotlock))
                lock_path = mfree(lock_path);   /* as Postfix: the fcntl lock alone */
        else if (r < 0)
                goto fail_rest;
        fd = mbox_open_locked(mb, ret, &st);
        if (fd < 0)
                goto unlock;

        /* Written as the recipient. When the locks were taken as the recipient too, with the spool's group
         * alone for the dot-lock (a per-user worker), the ids stay: nothing is created from here on, and
         * writes through the open descriptor check no ids (two switches, six system calls, saved). */
        r = mb->lock_uid == mb->uid ? 0 : mailbox_set_eugid(mb->uid, mb->gid);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot switch to uid %u: %s", (unsigned) mb->uid,
                                 strerror(-r));
                goto unlock;
        }
        /* The messages one after another under one lock, then one fsync for them all: none is reported
         * delivered before it is on disk. */
        size = st.st_size;
        for (; done < n; done++) {
                bool usable = mbox_append(m + done, mb, fd, w, &size, ret + done);

                any = any || ret[done].status == MAILBOX_STATUS_SENT;
                if (!usable)
                        break;          /* the rest fail as this one did */
        }
        if (any && fsync(fd) < 0) {
                MailboxResult failed;

                mailbox_result_set(&failed, errno_dsn(errno, "4.3.0"), "cannot write %s: %m", mb->path);
                if (ftruncate(fd, st.st_size) < 0 || fsync(fd) < 0)
                        mailbox_result_set(&failed, "4.3.0", "cannot write mailbox %s, and cannot truncate it: %m",
                                         mb->path);
                for (size_t k = 0; k < n && k <= done; k++)
                        if (ret[k].status == MAILBOX_STATUS_SENT)
                                ret[k] = failed;
        }
unlock:
        if (mb->lock_uid != mb->uid)
                (void) mailbox_set_eugid(mb->lock_uid, mb->lock_gid);
        fd = safe_close(fd);    /* also drops the fcntl lock, before the dot-lock */
        if (lock_path)
                dotlock_release(lock_path, kept);
fail_rest:
        /* What was not tried shares the reason of the first failure (ret[done], set above). */
        for (size_t k = done + 1; k < n; k++)
                ret[k] = ret[done < n ? done : 0];
}

void mailbox_deliver_mbox(const MailboxMessage *m, const MailboxMbox *mb, MailboxResult *ret) {
        mailbox_deliver_mbox_batch(m, 1, mb, ret);
}

/* Creates directory p (mode 0700) unless it exists, and syncs its parent so that the new entry lasts. */
static int mkdir_synced(const char *p) {
        if (mkdir(p, 0700) < 0)
                return errno == EEXIST ? 0 : -errno;
        return fsync_directory_of(p);
}

/* Creates the Maildir with its missing parents, and its tmp/, new/ and cur/. */
static int maildir_create(const char *path) {
        static const char *const subdirs[] = { "tmp", "new", "cur" };
        _cleanup_free_ char *p = strdup(path);
        int r;

        if (!p)
                return -ENOMEM;
        for (char *s = p + 1; *s; s++) {
                if (*s != '/')
                        continue;
                *s = '\0';
                r = mkdir_synced(p);
                if (r < 0)
                        return r;
                *s = '/';
        }
        for (size_t i = 0; i < ELEMENTSOF(subdirs); i++) {
                _cleanup_free_ char *d = NULL;
                if (asprintf(&d, "%s%s", path, subdirs[i]) < 0)
                        return -ENOMEM;
                r = mkdir_synced(d);
                if (r < 0)
                        return r;
        }
        return 0;
}

/* Moves the file at tmp to new, which must not exist; -1 with errno set. */
static int maildir_move(const char *tmp, const char *new) {
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, new, RENAME_NOREPLACE) >= 0)
                return 0;
        if (errno != EINVAL && errno != ENOSYS)
                return -1;
        if (link(tmp, new) < 0)
                return -1;
        (void) unlink(tmp);
        return 0;
}

/* One message of a batch on its way through tmp/ into new/. */
typedef struct MaildirFile {
        char *tmp, *new;
        int fd;                         /* tmp/'s file, written, until synced */
} MaildirFile;

static void maildir_file_done(MaildirFile *f) {
        f->tmp = mfree(f->tmp);
        f->new = mfree(f->new);
        f->fd = safe_close(f->fd);
}

/* Writes m into a new file in tmp/, left open; false when it failed (ret says why, and it is gone and
 * closed). */
static bool maildir_write(const MailboxMessage *m, const char *path, const char *hostname, MaildirFile *f,
                          MailboxResult *ret) {
        _cleanup_free_ char *name = NULL;
        _cleanup_free_ MailboxWriter *w = NULL;
        uint64_t random;
        int r;

        random_bytes(&random, sizeof random);
        w = calloc(1, sizeof(MailboxWriter));
        if (!w || maildir_unique_name(now_realtime_usec(), getpid_cached(), random, hostname, &name) < 0 ||
            asprintf(&f->tmp, "%stmp/%s", path, name) < 0 || asprintf(&f->new, "%snew/%s", path, name) < 0) {
                mailbox_result_set(ret, "4.3.0", "out of memory");
                return false;
        }

        const int flags = O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_NOCTTY | O_CLOEXEC;
        f->fd = open(f->tmp, flags, 0600);
        if (f->fd < 0 && errno == ENOENT) {
                r = maildir_create(path);
                if (r < 0) {
                        mailbox_result_set(ret, errno_dsn(r, "4.2.0"), "cannot create maildir %s: %s", path,
                                         strerror(-r));
                        return false;
                }
                f->fd = open(f->tmp, flags, 0600);
        }
        if (f->fd < 0) {
                mailbox_result_set(ret, errno_dsn(errno, "4.2.0"), "cannot create %s: %m", f->tmp);
                return false;
        }
        w->fd = f->fd;
        r = write_message(m, w, NULL);
        if (r < 0) {
                write_failed(ret, w, r, f->tmp);
                (void) unlink(f->tmp);
                f->fd = safe_close(f->fd);
                return false;
        }
        return true;
}

/* Syncs and closes the file written, then moves it into new/; true when it is there (ret says delivered), the
 * sync of new/ still to come. */
static bool maildir_commit(MaildirFile *f, const char *path, MailboxResult *ret) {
        int r = 0;

        if (fsync(f->fd) < 0)
                r = -errno;
        if (close(TAKE_FD(f->fd)) < 0 && r == 0)
                r = -errno;
        if (r < 0) {
                mailbox_result_set(ret, errno_dsn(r, "4.3.0"), "cannot write %s: %s", f->tmp, strerror(-r));
                goto fail;
        }
        /* Never over an existing file: a rename that refuses to replace one, or where the file system has
         * none such, link() and unlink(). */
        if (maildir_move(f->tmp, f->new) < 0 &&
            (errno != ENOENT || maildir_create(path) < 0 || maildir_move(f->tmp, f->new) < 0)) {
                mailbox_result_set(ret, errno_dsn(errno, "4.2.0"), "cannot link %s to %s: %m", f->tmp, f->new);
                goto fail;
        }
        mailbox_result_set(ret, "2.0.0", "delivered to maildir");
        return true;
fail:
        (void) unlink(f->tmp);
        return false;
}

bool mailbox_store_maildir_batch(const MailboxMessage *m, size_t n, const char *path, const char *hostname,
                                 MailboxResult *ret) {
        _cleanup_free_ MaildirFile *f = calloc(MAX(n, 1U), sizeof(MaildirFile));
        bool any = false;

        if (!f) {
                for (size_t k = 0; k < n; k++)
                        mailbox_result_set(ret + k, "4.3.0", "out of memory");
                return false;
        }
        /* All written first, then each synced and moved into new/, then new/ synced once: every file is on
         * disk before its name is in new/, and that before any is reported delivered. Written together,
         * the files go to disk in one journal commit, which the first fsync makes and the others find done. */
        for (size_t k = 0; k < n; k++) {
                f[k].fd = -EBADF;
                (void) maildir_write(m + k, path, hostname, f + k, ret + k);
        }
        for (size_t k = 0; k < n; k++)
                if (f[k].fd >= 0)       /* written */
                        any = maildir_commit(f + k, path, ret + k) || any;
        for (size_t k = 0; k < n; k++)
                maildir_file_done(f + k);
        return any;
}

int mailbox_sync_maildir(const char *path) {
        _cleanup_free_ char *new_dir = NULL;

        return asprintf(&new_dir, "%snew", path) < 0 ? -ENOMEM : fsync_directory(new_dir);
}

void mailbox_maildir_sync_failed(MailboxResult *ret, const char *path, int error) {
        /* The message may be there; a duplicate is better than a loss. */
        if (ret->status == MAILBOX_STATUS_SENT)
                mailbox_result_set(ret, "4.3.0", "cannot sync %snew: %s", path, strerror(-error));
}

void mailbox_deliver_maildir_batch(const MailboxMessage *m, size_t n, const char *path, const char *hostname,
                                   MailboxResult *ret) {
        int r;

        if (!mailbox_store_maildir_batch(m, n, path, hostname, ret))
                return;
        r = mailbox_sync_maildir(path);
        for (size_t k = 0; r < 0 && k < n; k++)
                mailbox_maildir_sync_failed(ret + k, path, r);
}

void mailbox_deliver_maildir(const MailboxMessage *m, const char *path, const char *hostname, MailboxResult *ret) {
        mailbox_deliver_maildir_batch(m, 1, path, hostname, ret);
}
