/* local-worker.c: runs in the per-user worker: a process forked by local once for a recipient's identity, which
 * takes that identity for good and then writes every delivery to that user's mailbox (mail spool or
 * home_mailbox) that local hands it over a socket: a request with the queue file inside (or its descriptor);
 * it answers with one result each, in order. The requests that wait when it comes to them are written
 * together and made durable together (one mbox lock and one fsync; or one sync of Maildir's new/) before any
 * is answered. A spool that only root can write has one worker that stays root (see local-pool.c). */
#include <assert.h>
#include <fcntl.h>
#include <grp.h>
#include <pwd.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include "local.h"

/* A user name that is safe as the last component of a path in the mail spool directory. */
static bool user_name_ok(const char *name) {
        return !isempty(name) && !strchr(name, '/') && !streq(name, ".") && !streq(name, "..");
}

/* What the mail spool directory's mode means for the identities of delivery, as Postfix chooses them: a
 * world-writable spool is written as the recipient; a group-writable one (Debian: root:mail 2775) as the
 * recipient with the spool's group; any other needs root, and a mailbox it creates is handed to the recipient
 * and the "mail" group. Looked at once in a worker's life: its own identity was chosen from the same mode
 * when it was forked (local_worker_id()), and a reload retires it. */
typedef struct SpoolMode {
        bool known;
        bool world, group;
        gid_t spool_gid;
        bool have_mail_gid;
        gid_t mail_gid;
} SpoolMode;

static void spool_identities(const char *spool, const struct passwd *pw, MailboxMbox *mb) {
        static SpoolMode mode;

        if (!mode.known) {
                struct stat st;
                struct group *gr;

                mode.known = true;
                if (stat(spool, &st) < 0 || (st.st_mode & S_IWOTH))
                        mode.world = true;
                else if (st.st_mode & S_IWGRP) {
                        mode.group = true;
                        mode.spool_gid = st.st_gid;
                } else if ((gr = getgrnam("mail"))) {
                        mode.have_mail_gid = true;
                        mode.mail_gid = gr->gr_gid;
                }
        }
        mb->uid = mb->lock_uid = pw->pw_uid;
        mb->gid = mb->lock_gid = mb->create_gid = pw->pw_gid;
        if (mode.world)
                return;
        if (mode.group) {
                mb->lock_gid = mode.spool_gid;
                return;
        }
        mb->lock_uid = 0;
        mb->lock_gid = 0;
        if (mode.have_mail_gid)
                mb->create_gid = mode.mail_gid;
}

bool local_home_maildir(const Config *c) {
        return !isempty(c->home_mailbox) && c->home_mailbox[strlen(c->home_mailbox) - 1] == '/';
}

/* The first result for all n. */
static void results_fill(MailboxResult *ret, size_t n) {
        for (size_t k = 1; k < n; k++)
                ret[k] = ret[0];
}

MailboxLocking local_mailbox_locking(const Config *c) {
        MailboxLocking l = {
                .attempts = (unsigned) c->deliver_lock_attempts,
                .delay_usec = (uint64_t) c->deliver_lock_delay * USEC_PER_SEC,
                .stale_usec = (uint64_t) c->stale_lock_time * USEC_PER_SEC,
        };

        (void) mailbox_lock_parse(c->mailbox_delivery_lock, &l);        /* checked when local started */
        return l;
}

static void deliver_user(const MailboxMessage *m, size_t n, const Config *c, const MailboxLocking *locking,
                         const struct passwd *pw, uid_t worker_uid, gid_t worker_gid, MailboxResult *ret) {
        _cleanup_free_ char *path = NULL;

        if (!user_name_ok(pw->pw_name)) {
                mailbox_result_set(ret, "4.3.0", "unusable user name \"%s\"", strna(pw->pw_name));
                results_fill(ret, n);
                return;
        }

        if (isempty(c->home_mailbox)) {
                MailboxMbox mb = { .locking = *locking };

                mb.locking.keep_lock_file = true;       /* this worker delivers one message after another */

                if (asprintf(&path, "%s/%s", c->mail_spool_directory, pw->pw_name) < 0) {
                        mailbox_result_set(ret, "4.3.0", "out of memory");
                        results_fill(ret, n);
                        return;
                }
                spool_identities(c->mail_spool_directory, pw, &mb);
                mb.path = path;
                mailbox_deliver_mbox_batch(m, n, &mb, ret);
                return;
        }

        if (!pw->pw_dir || pw->pw_dir[0] != '/') {
                mailbox_result_set(ret, "4.3.0", "user %s has no usable home directory", pw->pw_name);
                results_fill(ret, n);
                return;
        }
        /* In the home directory everything is done as the user, who owns it: the worker is that user (or
         * root, for root). */
        if (pw->pw_uid != worker_uid || pw->pw_gid != worker_gid) {
                mailbox_result_set(ret, "4.3.0", "delivery process of uid %u cannot deliver as user %s",
                                 (unsigned) worker_uid, pw->pw_name);
                results_fill(ret, n);
                return;
        }
        if (asprintf(&path, "%s/%s", pw->pw_dir, c->home_mailbox) < 0) {
                mailbox_result_set(ret, "4.3.0", "out of memory");
                results_fill(ret, n);
                return;
        }
        if (local_home_maildir(c)) {
                (void) mailbox_store_maildir_batch(m, n, path, c->myhostname, ret);
                return;
        }
        const MailboxMbox mb = {
                .path = path,
                .uid = pw->pw_uid, .gid = pw->pw_gid,
                .lock_uid = pw->pw_uid, .lock_gid = pw->pw_gid,
                .create_gid = pw->pw_gid,
                .locking = *locking,
        };
        mailbox_deliver_mbox_batch(m, n, &mb, ret);
}

/* Takes on id for good: a worker that is not root can never become root again, nor anyone else. */
static int worker_drop(const LocalWorkerId *id, const char *user) {
        uid_t ruid, euid, suid;
        gid_t rgid, egid, sgid;

        if (id->uid == 0)
                return 0;
        if (initgroups(user, id->gid) < 0 || setresgid(id->gid, id->gid, id->sgid) < 0 ||
            setresuid(id->uid, id->uid, id->uid) < 0)
                return -errno;
        if (getresuid(&ruid, &euid, &suid) < 0 || getresgid(&rgid, &egid, &sgid) < 0)
                return -errno;
        if (ruid != id->uid || euid != id->uid || suid != id->uid || rgid != id->gid || egid != id->gid ||
            sgid != id->sgid)
                return -EPERM;
        if (setuid(0) >= 0)
                return -EPERM;
        return 0;
}

/* One request: the header, then user, home, sender, recipient and original recipient, each NUL-terminated,
 * then the queue file when it comes inside (h.file_size bytes). */
static int request_parse(char *buf, size_t len, const char *f[static 5], LocalWorkHeader *ret) {
        size_t off = sizeof(LocalWorkHeader);

        if (len < off)
                return -EBADMSG;
        memcpy(ret, buf, sizeof *ret);
        for (size_t k = 0; k < 5; k++) {
                char *nul = memchr(buf + off, '\0', len - off);
                if (!nul)
                        return -EBADMSG;
                f[k] = buf + off;
                off = (size_t) (nul - buf) + 1;
        }
        return len - off == ret->file_size ? 0 : -EBADMSG;
}

/* One request of a batch: what it asked for, and once done its result. */
typedef struct WorkerRequest {
        char *buf;
        size_t len;
        int queue_fd;                   /* or -EBADF: the file came inside */
        LocalWorkHeader h;
        const char *f[5];               /* user, home, sender, recipient, original recipient */
        QueueEnvelope *env;             /* NULL: failed already, result set */
        MailboxResult result;
} WorkerRequest;

/* Receives the requests that wait, at most max, in one call: with MSG_WAITFORONE at least one, waited for;
 * with MSG_DONTWAIT none if none waits. Written together, they are made durable together. Returns how many
 * (*ret_end: local closed the socket). A request that came damaged has its result set already. */
static int worker_receive(int fd, char bufs[][LOCAL_WORK_MAX + LOCAL_WORK_FILE_MAX], WorkerRequest *q, size_t max,
                          int flags, bool *ret_end) {
        union {
                struct cmsghdr cmsghdr;
                uint8_t buf[CMSG_SPACE(sizeof(int))];
        } control[LOCAL_WORKER_BATCH];
        struct iovec iov[LOCAL_WORKER_BATCH];
        struct mmsghdr mm[LOCAL_WORKER_BATCH];
        int n;

        assert(max <= LOCAL_WORKER_BATCH);
        for (size_t k = 0; k < max; k++) {
                iov[k] = (struct iovec) { .iov_base = bufs[k], .iov_len = LOCAL_WORK_MAX + LOCAL_WORK_FILE_MAX };
                mm[k] = (struct mmsghdr) { .msg_hdr = { .msg_iov = iov + k, .msg_iovlen = 1,
                                                        .msg_control = control + k,
                                                        .msg_controllen = sizeof control[k] } };
        }
        /* MSG_WAITFORONE: the first is waited for, then what else has come is taken without waiting. */
        do
                n = recvmmsg(fd, mm, (unsigned) max, flags | MSG_CMSG_CLOEXEC, NULL);
        while (n < 0 && errno == EINTR);
        if (n < 0 && errno == EAGAIN && (flags & MSG_DONTWAIT))
                return 0;
        if (n < 0)
                return -errno;
        *ret_end = n == 0;
        for (int k = 0; k < n; k++) {
                struct msghdr *mh = &mm[k].msg_hdr;
                int queue_fd = -EBADF;

                for (struct cmsghdr *c = CMSG_FIRSTHDR(mh); c; c = CMSG_NXTHDR(mh, c))
                        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SCM_RIGHTS &&
                            c->cmsg_len == CMSG_LEN(sizeof(int)))
                                memcpy(&queue_fd, CMSG_DATA(c), sizeof(int));
                if (mm[k].msg_len == 0) {
                        /* The end: the kernel reads it once for every entry left. */
                        safe_close(queue_fd);
                        *ret_end = true;
                        return k;
                }
                q[k] = (WorkerRequest) { .buf = bufs[k], .len = mm[k].msg_len, .queue_fd = queue_fd };
                if ((mh->msg_flags & (MSG_TRUNC | MSG_CTRUNC)) ||
                    request_parse(q[k].buf, q[k].len, q[k].f, &q[k].h) < 0 ||
                    (q[k].h.file_size == 0) != (queue_fd >= 0)) {
                        q[k].queue_fd = safe_close(queue_fd);
                        q[k].h.file_size = 0;
                        mailbox_result_set(&q[k].result, "4.3.0", "malformed request to the delivery process");
                }
        }
        return n;
}

/* Checks a request and reads its queue file; false when it failed (its result is set). */
static bool worker_prepare(const LocalWorkerId *id, WorkerRequest *q) {
        int r;

        /* A worker serves its own user alone (or, as root, the users of a spool only root can write). */
        if (id->uid != 0 && (q->h.uid != id->uid || q->h.gid != id->gid)) {
                mailbox_result_set(&q->result, "4.3.0", "delivery process of uid %u asked to deliver as uid %u",
                                 (unsigned) id->uid, (unsigned) q->h.uid);
                return false;
        }
        if (q->h.file_size > 0)
                r = queue_file_read_delivery_bytes(q->buf + q->len - q->h.file_size, q->h.file_size, &q->env);
        else {
                struct stat st;
                r = fstat(q->queue_fd, &st) < 0 ? -errno : queue_file_read_delivery(q->queue_fd, &st, &q->env);
        }
        if (r < 0) {
                mailbox_result_set(&q->result, "4.3.0", "%s", r == -EBADMSG ? "queue file is corrupt"
                                                                          : "cannot read the queue file");
                return false;
        }
        return true;
}

static bool same_user(const WorkerRequest *a, const WorkerRequest *b) {
        return a->h.uid == b->h.uid && a->h.gid == b->h.gid && streq(a->f[0], b->f[0]) && streq(a->f[1], b->f[1]);
}

/* Delivers a batch: the requests of one user that follow each other go to the mailbox together (one lock,
 * one fsync), in order. */
static void worker_deliver(const Config *c, const MailboxLocking *locking, const LocalWorkerId *id,
                           WorkerRequest *q, size_t n) {
        MailboxMessage m[LOCAL_WORKER_BATCH];
        MailboxResult res[LOCAL_WORKER_BATCH];
        bool ok[LOCAL_WORKER_BATCH];

        for (size_t k = 0; k < n; k++)
                ok[k] = (q[k].queue_fd >= 0 || q[k].h.file_size > 0) && worker_prepare(id, q + k);
        for (size_t k = 0; k < n;) {
                size_t j = 0;

                if (!ok[k]) {
                        k++;
                        continue;
                }
                for (size_t i = k; i < n && ok[i] && same_user(q + k, q + i); i++, j++)
                        m[j] = (MailboxMessage) { .queue_fd = q[i].queue_fd, .envelope = q[i].env,
                                                  .sender = q[i].f[2], .recipient = q[i].f[3],
                                                  .original = q[i].f[4] };
                const struct passwd pw = {
                        .pw_name = (char *) q[k].f[0], .pw_uid = q[k].h.uid, .pw_gid = q[k].h.gid,
                        .pw_dir = (char *) q[k].f[1],
                };
                deliver_user(m, j, c, locking, &pw, id->uid, id->gid, res);
                for (size_t i = 0; i < j; i++)
                        q[k + i].result = res[i];
                k += j;
        }
}

/* Syncs the new/ of every Maildir that the requests stored into, once each, before any is answered. */
static void worker_sync_maildirs(const Config *c, WorkerRequest *q, size_t n) {
        bool synced[LOCAL_WORKER_BATCH] = {};

        for (size_t k = 0; k < n; k++) {
                _cleanup_free_ char *path = NULL;
                int r;

                if (synced[k] || !q[k].env || q[k].result.status != MAILBOX_STATUS_SENT)
                        continue;
                r = asprintf(&path, "%s/%s", q[k].f[1], c->home_mailbox) < 0 ? -ENOMEM : mailbox_sync_maildir(path);
                for (size_t i = k; i < n; i++)
                        if (q[i].env && q[i].result.status == MAILBOX_STATUS_SENT && streq(q[i].f[1], q[k].f[1])) {
                                synced[i] = true;
                                if (r < 0)
                                        mailbox_maildir_sync_failed(&q[i].result, strna(path), r);
                        }
        }
}

_Noreturn void local_worker_main(int fd, const Config *c, const LocalWorkerId *id, const char *user) {
        static char bufs[LOCAL_WORKER_BATCH][LOCAL_WORK_MAX + LOCAL_WORK_FILE_MAX];
        const LocalWorkerId me = *id;
        const MailboxLocking locking = local_mailbox_locking(c);        /* once: a reload retires the worker */

        /* SIGTERM stays blocked as in local: a stop lets the write in progress finish; local then closes the
         * socket and the worker ends. */
        (void) signal(SIGXFSZ, SIG_IGN);        /* a write past mailbox_size_limit fails with EFBIG */
        (void) signal(SIGPIPE, SIG_IGN);
        (void) close_range(3, (unsigned) fd - 1, 0);
        (void) close_range((unsigned) fd + 1, ~0U, 0);
        const rlim_t limit = (rlim_t) c->mailbox_size_limit;
        const struct rlimit rl = { .rlim_cur = limit, .rlim_max = limit };
        if (c->mailbox_size_limit > 0 && setrlimit(RLIMIT_FSIZE, &rl) < 0)
                _exit(EXIT_FAILURE);
        if (worker_drop(&me, user) < 0)
                _exit(EXIT_FAILURE);    /* local answers its requests with a temporary failure */

        int status = EXIT_SUCCESS;
        for (bool end = false; !end;) {
                WorkerRequest q[LOCAL_WORKER_BATCH];
                int n = worker_receive(fd, bufs, q, LOCAL_WORKER_BATCH, MSG_WAITFORONE, &end);

                if (n < 0) {
                        status = EXIT_FAILURE;
                        break;
                }
                worker_deliver(c, &locking, &me, q, (size_t) n);
                /* Maildir: what came while these were written and synced joins them before the one sync of
                 * new/. Its files' own fsync commits the names moved into new/ before it, so on a journalling
                 * file system that sync finds little left to do: about one commit a message, not two, while
                 * one user's mail comes one message after another. */
                while (local_home_maildir(c) && !end && (size_t) n < LOCAL_WORKER_BATCH) {
                        int k = worker_receive(fd, bufs + n, q + n, LOCAL_WORKER_BATCH - (size_t) n, MSG_DONTWAIT,
                                               &end);
                        if (k <= 0)
                                break;
                        worker_deliver(c, &locking, &me, q + n, (size_t) k);
                        n += k;
                }
                if (local_home_maildir(c))
                        worker_sync_maildirs(c, q, (size_t) n);
                /* The root worker of a spool switches its effective ids per delivery: back to root, or end. */
                bool lost = n > 0 && me.uid == 0 && mailbox_set_eugid(0, 0) < 0;
                for (int k = 0; k < n; k++) {
                        char reply[MAILBOX_RESULT_WIRE_MAX + 1];
                        size_t len = mailbox_result_format(&q[k].result, reply, sizeof reply);

                        q[k].env = queue_envelope_free(q[k].env);
                        safe_close(q[k].queue_fd);
                        if (send(fd, reply, len, MSG_NOSIGNAL) != (ssize_t) len)
                                lost = true;
                }
                if (lost) {
                        status = EXIT_FAILURE;
                        break;
                }
        }
        mailbox_dotlock_forget();
        _exit(status);
}
