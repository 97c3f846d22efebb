/* qmgr-queue.c: the queue directories: scanning, moving files between queues, loading active messages. */
#include <dirent.h>
#include <fcntl.h>
#include <inttypes.h>
#include <sys/stat.h>

#include "agent-bus.h"
#include "log.h"
#include "qmgr.h"

static unsigned id_hash(const char *id) {
        unsigned h = 2166136261U;

        for (; *id; id++)
                h = (h ^ (unsigned char) *id) * 16777619U;
        return h % QMGR_HASH_BUCKETS;
}

QmgrMessage *qmgr_message_find(Qmgr *q, const char *id) {
        for (QmgrMessage *m = q->by_id[id_hash(id)]; m; m = m->hash_next)
                if (streq(m->id, id))
                        return m;
        return NULL;
}

static void message_unlink(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        QmgrMessage **p = &q->by_id[id_hash(m->id)];

        while (*p != m)
                p = &(*p)->hash_next;
        *p = m->hash_next;

        if (m->prev)
                m->prev->next = m->next;
        else
                q->messages = m->next;
        if (m->next)
                m->next->prev = m->prev;
        q->n_messages--;
}

static void message_close(QmgrMessage *m) {
        if (m->fd >= 0)
                m->qmgr->n_kept_fds--;
        if (m->wfd >= 0)
                m->qmgr->n_kept_fds--;
        m->fd = safe_close(m->fd);
        m->wfd = safe_close(m->wfd);
}

static QmgrMessage *message_free(QmgrMessage *m) {
        if (!m)
                return NULL;
        message_close(m);
        if (m->envelope->file)
                m->qmgr->kept_file_bytes -= m->envelope->file_size;
        qmgr_schedule_message_free(m);
        qmgr_message_routes_free(m);
        queue_envelope_free(m->envelope);
        free(m->action_reason);
        free(m);
        return NULL;
}

/* Moves from/<id> to to/<id>, never over another file: when the name is taken there, the message takes a
 * fresh ID, which ret_id gets (it may be id itself; NULL when not wanted). The index follows the move. */
int qmgr_queue_move_as(Qmgr *q, QueueName from, QueueName to, const char *id, char ret_id[QUEUE_ID_SIZE]) {
        char new_id[QUEUE_ID_SIZE];
        /* A message the index does not know yet (new mail, taken from incoming by a scan, or by cleanup's
         * wake-up without a look at it first): into active, load_active() reads its file anyway and puts it
         * into the index and announces it from there; anywhere else it is read and announced here. */
        bool fresh = from == QUEUE_INCOMING && !qmgr_index_known(q, id);
        int r;

        strncpy(new_id, id, sizeof new_id - 1);
        new_id[sizeof new_id - 1] = '\0';
        r = queue_id_rename(q->queue_fds[from], id, q->queue_fds[to], new_id);
        if (r < 0)
                return r;
        if (r > 0) {
                log_mail(LOG_WARNING, id, LOG_FIELDS({ "NEW_QUEUE_ID", new_id }),
                         "queue ID taken in the %s queue, now queued as %s", queue_name_to_string(to), new_id);
                qmgr_index_remove(q, id);
        }
        qmgr_queue_changed(q);
        if (!(fresh && to == QUEUE_ACTIVE))
                (void) qmgr_index_update(q, to, new_id, fresh);
        if (ret_id)
                memcpy(ret_id, new_id, QUEUE_ID_SIZE);
        return 0;
}

int qmgr_queue_move(Qmgr *q, QueueName from, QueueName to, const char *id) {
        return qmgr_queue_move_as(q, from, to, id, NULL);
}

/* Moves a file that cannot be read as a queue file out of the way; other mail goes on. */
static void quarantine(Qmgr *q, QueueName from, const char *id, int error) {
        int r = qmgr_queue_move(q, from, QUEUE_CORRUPT, id);

        if (r < 0) {
                log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to move the corrupt queue file to corrupt: %s",
                         strerror(-r));
                qmgr_alert(q, "resource", "%s: failed to move the corrupt queue file to corrupt: %s", id,
                           strerror(-r));
                return;
        }
        (void) fsync(q->queue_fds[QUEUE_CORRUPT]);
        log_mail(LOG_WARNING, id, LOG_FIELDS({ "QUEUE", "corrupt" }, { "MESSAGE_ID", POSTBUS_MESSAGE_QUEUE_FILE_CORRUPT }),
                 "corrupt queue file (%s), moved to the corrupt queue", strerror(-error));
        qmgr_alert(q, "software", "%s: corrupt queue file (%s), moved to the corrupt queue", id, strerror(-error));
}

int qmgr_message_open(QmgrMessage *m, int flags) {
        int fd = openat(m->qmgr->queue_fds[QUEUE_ACTIVE], m->id, flags | O_CLOEXEC | O_NOFOLLOW);
        return fd < 0 ? -errno : fd;
}

/* A queue file's envelope, with the file's bytes when one read took it whole (queue_file_read_delivery()). */
static int read_envelope(int fd, QueueEnvelope **ret) {
        struct stat st;

        if (fstat(fd, &st) < 0)
                return -errno;
        return queue_file_read_delivery(fd, &st, ret);
}

int qmgr_message_fd(QmgrMessage *m, int flags, bool *ret_owned) {
        int *kept = (flags & O_ACCMODE) == O_RDONLY ? &m->fd : &m->wfd;
        int fd;

        *ret_owned = false;
        if (*kept >= 0)
                return *kept;
        fd = qmgr_message_open(m, flags);
        if (fd < 0)
                return fd;
        if (m->qmgr->n_kept_fds >= QMGR_KEPT_FDS_MAX) {
                *ret_owned = true;
                return fd;
        }
        m->qmgr->n_kept_fds++;
        return *kept = fd;
}

double qmgr_message_delay(const QmgrMessage *m) {
        uint64_t now = now_realtime_usec();
        return (double) (now - MIN(now, m->envelope->arrival_usec)) / 1e6;
}

/* The message leaves the active queue in memory (its file has gone where it belongs). */
static void message_done(QmgrMessage *m) {
        Qmgr *q = m->qmgr;

        q->n_recipients -= MIN(q->n_recipients, m->counted);
        message_unlink(m);
        message_free(m);
        if (q->rescan && q->n_messages < (unsigned) q->daemon->config->qmgr_message_active_limit &&
            q->n_recipients < (size_t) q->daemon->config->qmgr_message_recipient_limit) {
                q->rescan = false;
                (void) qmgr_queue_scan(q, QUEUE_INCOMING);
                (void) qmgr_queue_scan(q, QUEUE_DEFERRED);
        }
}

void qmgr_message_remove(QmgrMessage *m) {
        Qmgr *q = m->qmgr;

        if (unlinkat(q->queue_fds[QUEUE_ACTIVE], m->id, 0) < 0) {
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to remove the queue file: %s", strerror(errno));
                qmgr_marks_write(m);
        } else {
                qmgr_done_sync_forget(q, m->id);
                log_mail(LOG_INFO, m->id, LOG_NO_FIELDS, "removed");
                qmgr_queue_changed(q);
                qmgr_index_remove(q, m->id);
        }
        message_done(m);
}

/* As Postfix: the wait before the next try grows with the message's age, between the two back-off
 * limits. In seconds. */
int64_t qmgr_message_backoff(const QmgrMessage *m) {
        const Config *c = m->qmgr->daemon->config;
        int64_t delay = (int64_t) qmgr_message_delay(m);

        return MAX(MIN(delay, c->maximal_backoff_time), c->minimal_backoff_time);
}

void qmgr_message_defer(QmgrMessage *m) {
        Qmgr *q = m->qmgr;
        uint64_t now = now_realtime_usec() / USEC_PER_SEC;
        int64_t delay = qmgr_message_backoff(m);
        int r;

        /* The file's modification time is when it is due again, so a restart keeps the schedule. */
        struct timespec ts[2] = { { .tv_nsec = UTIME_OMIT }, { .tv_sec = (time_t) (now + (uint64_t) delay) } };
        if (utimensat(q->queue_fds[QUEUE_ACTIVE], m->id, ts, AT_SYMLINK_NOFOLLOW) < 0)
                log_mail(LOG_WARNING, m->id, LOG_NO_FIELDS, "failed to set the retry time, ignoring: %s",
                         strerror(errno));
        r = qmgr_queue_move(q, QUEUE_ACTIVE, QUEUE_DEFERRED, m->id);
        if (r < 0) {
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to move to the deferred queue: %s", strerror(-r));
                qmgr_alert(q, "resource", "%s: failed to move to the deferred queue: %s", m->id, strerror(-r));
        } else {
                qmgr_index_update_message(m, QUEUE_DEFERRED);
                qmgr_index_set_next_attempt(q, m->id, (now + (uint64_t) delay) * USEC_PER_SEC);
        }
        message_done(m);
}

void qmgr_message_move(QmgrMessage *m, QueueName to) {
        int r = qmgr_queue_move(m->qmgr, QUEUE_ACTIVE, to, m->id);

        if (r < 0)
                log_mail(LOG_ERR, m->id, LOG_NO_FIELDS, "failed to move to the %s queue: %s",
                         queue_name_to_string(to), strerror(-r));
        else
                qmgr_index_update_message(m, to);
        message_done(m);
}

/* An agent found active/<id> corrupt after qmgr had loaded it: read again, it goes to corrupt (true), or, if
 * it reads well now, its pending recipients are deferred as usual (false). */
static bool quarantine_if_corrupt(QmgrMessage *m) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *e = NULL;
        _cleanup_close_ int fd = qmgr_message_open(m, O_RDONLY);
        int r = fd < 0 ? fd : queue_file_read(fd, &e);

        m->corrupt = false;
        if (r != -EBADMSG)
                return false;
        quarantine(m->qmgr, QUEUE_ACTIVE, m->id, r);
        message_done(m);
        return true;
}

void qmgr_message_finish(QmgrMessage *m) {
        const Config *c = m->qmgr->daemon->config;

        /* Marks left in memory for a file that goes now (qmgr_mark_done(), which found no bounce log then;
         * one appended since sets had_logs); written when it does not. */
        if (m->marks_unwritten && (m->action != QMGR_ACTION_NONE || m->calls > 0 || m->entries > 0 ||
                                   !m->resolved || m->finishing || m->corrupt ||
                                   queue_envelope_pending(m->envelope) > 0 || m->had_logs))
                qmgr_marks_write(m);

        if (m->action != QMGR_ACTION_NONE && m->calls == 0 && !m->finishing && qmgr_control_apply(m))
                return;
        if (m->calls > 0 || m->entries > 0 || !m->resolved || m->finishing)
                return;
        if (m->corrupt && quarantine_if_corrupt(m))
                return;
        m->finishing = true;
        if (queue_envelope_pending(m->envelope) == 0) {
                if (qmgr_bounce_logs_exist(m))
                        qmgr_bounce_finish(m);  /* notices first, then the file goes */
                else
                        qmgr_message_remove(m);
                return;
        }
        double age = qmgr_message_delay(m);
        int64_t lifetime = isempty(m->envelope->sender) ? c->bounce_queue_lifetime : c->maximal_queue_lifetime;
        if (age >= (double) lifetime)
                qmgr_bounce_expire(m);
        else if (c->delay_warning_time > 0 && age >= (double) c->delay_warning_time)
                qmgr_bounce_warn(m);
        else
                qmgr_message_defer(m);
}

/* Loads active/<id> and starts its delivery, or the action asked for. With *fd and *env: the file, opened
 * read-only and read already (before its move from incoming); they are taken. */
static int load_active(Qmgr *q, const char *id, QmgrAction action, const char *reason, int *fd,
                       QueueEnvelope **env, bool new_mail) {
        QmgrMessage *m;
        int r;

        if (*fd < 0 && !*env) {
                *fd = openat(q->queue_fds[QUEUE_ACTIVE], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (*fd < 0) {
                        r = -errno;
                        log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to open the queue file: %s", strerror(-r));
                        return r;
                }
        }

        m = calloc(1, sizeof(QmgrMessage));
        if (!m)
                return log_oom();
        m->fd = m->wfd = -EBADF;
        if (*env)
                m->envelope = TAKE_PTR(*env);
        else {
                r = read_envelope(*fd, &m->envelope);
                if (r < 0) {
                        free(m);
                        if (r == -EBADMSG)
                                quarantine(q, QUEUE_ACTIVE, id, r);
                        else
                                log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to read the queue file: %s",
                                         strerror(-r));
                        return r;
                }
        }
        m->qmgr = q;
        m->new_mail = new_mail;
        memcpy(m->id, id, QUEUE_ID_SIZE);
        m->action = action;
        if (reason) {
                m->action_reason = strdup(reason);
                if (!m->action_reason) {
                        queue_envelope_free(m->envelope);
                        free(m);
                        return log_oom();
                }
        }
        /* The file's bytes, when small, are kept for the DeliverInline calls while their total allows; else
         * its descriptor is kept for the Deliver calls while few are: one read or one open of the file for
         * its whole delivery. */
        QueueEnvelope *e = m->envelope;
        if (e->file && e->file_size <= DELIVERY_INLINE_MAX &&
            q->kept_file_bytes + e->file_size <= QMGR_KEPT_FILE_BYTES_MAX)
                q->kept_file_bytes += e->file_size;
        else
                e->file = mfree(e->file);
        if (!e->file && *fd >= 0 && q->n_kept_fds < QMGR_KEPT_FDS_MAX) {
                m->fd = TAKE_FD(*fd);
                q->n_kept_fds++;
        } else
                *fd = safe_close(*fd);
        unsigned h = id_hash(id);
        m->hash_next = q->by_id[h];
        q->by_id[h] = m;
        m->next = q->messages;
        if (m->next)
                m->next->prev = m;
        q->messages = m;
        q->n_messages++;
        m->counted = queue_envelope_pending(m->envelope);
        m->active_usec = now_realtime_usec();
        q->n_recipients += m->counted;

        _cleanup_free_ char *sender = log_escape(m->envelope->sender, strlen(m->envelope->sender));
        char size[32], nrcpt[32];
        (void) snprintf(size, sizeof size, "%" PRIu64, m->envelope->content_size);
        (void) snprintf(nrcpt, sizeof nrcpt, "%zu", queue_envelope_pending(m->envelope));
        log_mail(LOG_INFO, id, LOG_FIELDS({ "SENDER", sender }, { "SIZE", size }, { "NRCPT", nrcpt }),
                 "from=<%s>, size=%s, nrcpt=%s (queue active)", strempty(sender), size, nrcpt);
        /* An attempt counted in the same signal as the move (for new mail: in its announcement). */
        qmgr_index_update_message_attempted(m, QUEUE_ACTIVE, action == QMGR_ACTION_NONE);
        QmgrIndexEntry *ie = qmgr_index_peek(q, id);
        m->suspect = ie && ie->suspect;         /* an agent died under it before: delivered alone */

        qmgr_deliver_message(m);
        return 0;
}

/* The reason cleanup gave for holding incoming/<id> (a "hold=" attribute, from header_checks HOLD), or
 * NULL. Only the envelope's first records are read: attributes come before the sender. */
static char *incoming_hold_reason(Qmgr *q, const char *id) {
        _cleanup_(record_reader_done) RecordReader rr = {};
        _cleanup_close_ int fd = -EBADF;
        struct stat st;
        Record rec;

        fd = openat(q->queue_fds[QUEUE_INCOMING], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
        if (fd < 0 || fstat(fd, &st) < 0)
                return NULL;
        record_reader_init_fd(&rr, &queue_file_format, fd, (uint64_t) st.st_size);
        while (record_reader_next(&rr, &rec) > 0 && rec.type != QUEUE_REC_SENDER) {
                _cleanup_free_ char *attr = NULL;
                if (rec.type != QUEUE_REC_ATTR || record_reader_string(&rr, &rec, &attr) < 0)
                        continue;
                if (strncmp(attr, "hold=", 5) == 0)
                        return strdup(attr + 5);
        }
        return NULL;    /* no hold, or corrupt: load_active() will tell */
}

int qmgr_queue_activate(Qmgr *q, QueueName from, const char *id) {
        return qmgr_queue_activate_for(q, from, id, QMGR_ACTION_NONE, NULL);
}

/* cleanup renames a written file into incoming/ and syncs it then (cleanup_directory_sync = no): a crash in
 * between can leave the name with no content. That file was never acknowledged to anyone, and is removed. */
static bool incoming_empty(Qmgr *q, int fd, const char *id) {
        struct stat st;

        if (fstat(fd, &st) < 0 || st.st_size != 0 || unlinkat(q->queue_fds[QUEUE_INCOMING], id, 0) < 0)
                return false;
        log_mail(LOG_WARNING, id, LOG_NO_FIELDS, "removed the empty queue file incoming/%s: a write that a crash "
                 "cut short, never acknowledged", id);
        return true;
}

/* given: the envelope of incoming/<id> from its file's bytes as cleanup sent them (taken over), or NULL. */
static int activate(Qmgr *q, QueueName from, const char *id, QmgrAction action, const char *reason,
                    QueueEnvelope *given) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = given;
        _cleanup_close_ int fd = -EBADF;
        bool new_mail = false;
        int r;

        if (!queue_id_valid(id))
                return -EINVAL;
        if (qmgr_message_find(q, id))
                return 0;
        if (from == QUEUE_INCOMING)
                new_mail = !qmgr_index_known(q, id);
        if (from == QUEUE_INCOMING && !env) {
                /* Read once, here, and the same descriptor delivers it after the move: a file that does not
                 * read well takes the way through active, where load_active() sets it aside. */
                fd = openat(q->queue_fds[QUEUE_INCOMING], id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
                if (fd >= 0 && read_envelope(fd, &env) < 0) {
                        env = NULL;
                        if (incoming_empty(q, fd, id))
                                return 0;
                        fd = safe_close(fd);
                }
        }
        if (from == QUEUE_INCOMING && action == QMGR_ACTION_NONE) {
                /* Straight from incoming to hold in one rename: no moment in active where a crash would
                 * let it be delivered. */
                const char *h = env ? queue_envelope_attr(env, "hold") : NULL;
                _cleanup_free_ char *hold = env ? (h ? strdup(h) : NULL) : incoming_hold_reason(q, id);
                if (h && !hold)
                        return log_oom();       /* it stays in incoming, never delivered unheld */
                if (hold) {
                        _cleanup_free_ char *why = log_escape(hold, strlen(hold));
                        r = qmgr_queue_move(q, QUEUE_INCOMING, QUEUE_HOLD, id);
                        if (r == -ENOENT)
                                return 0;
                        if (r < 0)
                                log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to move to the hold queue: %s",
                                         strerror(-r));
                        else {
                                log_mail(LOG_INFO, id, LOG_FIELDS({ "QUEUE", "hold" }), "held: %s", strempty(why));
                                qmgr_index_set_reason(q, id, hold);
                        }
                        return r;
                }
        }
        char active_id[QUEUE_ID_SIZE];
        memcpy(active_id, id, QUEUE_ID_SIZE);
        if (from != QUEUE_ACTIVE) {
                r = qmgr_queue_move_as(q, from, QUEUE_ACTIVE, id, active_id);
                if (r == -ENOENT)
                        return 0;       /* taken already, or never there */
                if (r < 0) {
                        log_mail(LOG_ERR, id, LOG_NO_FIELDS, "failed to move to the active queue: %s", strerror(-r));
                        return r;
                }
        }
        return load_active(q, active_id, action, reason, &fd, &env, new_mail);
}

int qmgr_queue_activate_for(Qmgr *q, QueueName from, const char *id, QmgrAction action, const char *reason) {
        return activate(q, from, id, action, reason, NULL);
}

int qmgr_queue_activate_new(Qmgr *q, const char *id, QueueEnvelope *env) {
        return activate(q, QUEUE_INCOMING, id, QMGR_ACTION_NONE, NULL, env);
}

/* Calls f for each valid queue ID in a queue directory; stops early when f returns > 0. */
int qmgr_queue_foreach(Qmgr *q, QueueName which, QmgrQueueEntryFunc f, void *userdata) {
        int fd = fcntl(q->queue_fds[which], F_DUPFD_CLOEXEC, 3);
        DIR *d;
        struct dirent *de;
        int r = 0;

        if (fd < 0)
                return -errno;
        d = fdopendir(fd);
        if (!d) {
                safe_close(fd);
                return -errno;
        }
        rewinddir(d);
        while ((de = readdir(d)))
                if (queue_id_valid(de->d_name)) {
                        r = f(q, which, de->d_name, dirfd(d), userdata);
                        if (r != 0)
                                break;
                }
        closedir(d);
        return r < 0 ? r : 0;
}

static int scan_entry(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata) {
        if (q->n_messages >= (unsigned) q->daemon->config->qmgr_message_active_limit ||
            q->n_recipients >= (size_t) q->daemon->config->qmgr_message_recipient_limit) {
                q->rescan = true;
                return 1;
        }
        if (which == QUEUE_DEFERRED) {
                struct stat st;
                if (fstatat(dirfd, id, &st, AT_SYMLINK_NOFOLLOW) < 0 ||
                    (uint64_t) st.st_mtim.tv_sec > now_realtime_usec() / USEC_PER_SEC)
                        return 0;       /* not due yet */
        }
        (void) qmgr_queue_activate(q, which, id);
        return 0;
}

int qmgr_queue_scan(Qmgr *q, QueueName which) {
        return qmgr_queue_foreach(q, which, scan_entry, NULL);
}

static int count_entry(Qmgr *q, QueueName which, const char *id, int dirfd, void *userdata) {
        (*(unsigned *) userdata)++;
        return 0;
}

static int count_indexed(Qmgr *q, QmgrIndexEntry *e, void *userdata) {
        unsigned *counts = userdata;
        counts[e->queue]++;
        return 0;
}

unsigned qmgr_queue_count(Qmgr *q, QueueName which) {
        unsigned n = 0;

        if (q->index && !qmgr_index_loading(q)) {
                unsigned counts[_QUEUE_NAME_MAX] = {};
                (void) qmgr_index_foreach(q, count_indexed, counts);
                return counts[which];
        }
        (void) qmgr_queue_foreach(q, which, count_entry, &n);
        return n;
}
