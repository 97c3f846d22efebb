/* cleanup-sync.c: the blocking tail of a submission (fsync of the queue file, its no-replace rename into
 * incoming/, and the group commit: one fsync of incoming/ for every file renamed before it began) on a few
 * worker threads, so that the event loop reads other jobs meanwhile. Runs in the cleanup process. The workers
 * make system calls only and store their errno; no logging, no sd-bus: every answer is given on the loop,
 * woken through an eventfd once the file and its name are both durable.
 *
 * Without the directory's sync (cleanup_directory_sync), the file is renamed first and synced after: on ext4,
 * XFS and btrfs the rename changed the file's inode in the journal transaction that renamed it, so the file's
 * fsync commits its name with its content, one journal commit instead of two, as Postfix's queue files rely
 * on the file's fsync for their names too. A crash before that fsync can leave incoming/<ID> empty, never
 * acknowledged: qmgr removes such a file. */
#include <linux/magic.h>
#include <pthread.h>
#include <signal.h>
#include <sys/eventfd.h>
#include <sys/statfs.h>

#include "cleanup.h"
#include "log.h"

struct CleanupSync {
        int dir_fd;                     /* incoming/, borrowed */
        bool dir_sync;                  /* a sync of incoming/ after the renames; else the file's after its own */
        sd_event_source *source;        /* the eventfd: items are done */
        sd_event_source *commit;        /* without threads: the group commit, once per turn of the loop */
        int event_fd;
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* items to do, or stop */
        CleanupSyncItem *todo, **todo_tail;
        CleanupSyncItem *renamed;       /* in incoming/, waiting for the next sync of it */
        bool dir_syncing;               /* a thread syncs incoming/; it takes renamed when done */
        CleanupSyncItem *done;          /* in any order */
        pthread_t *threads;
        unsigned n_threads;
        bool stop;
};

/* Never over another message's file: a taken name gets a fresh ID. */
static int item_rename(CleanupSync *s, CleanupSyncItem *item) {
        int r = queue_id_rename(s->dir_fd, item->tmp, s->dir_fd, item->id);
        if (r > 0)
                item->collided = true;
        return r;
}

/* The file's part, in the calling thread: 0, or the item failed and its file is gone. */
static int item_run_file(CleanupSync *s, CleanupSyncItem *item) {
        const char *name = item->tmp;
        int r = 0;

        if (s->dir_sync) {
                if (fsync(item->fd) < 0)
                        r = -errno;
                if (r >= 0)
                        r = item_rename(s, item);
        } else {
                r = item_rename(s, item);
                if (r >= 0) {
                        name = item->id;
                        if (fsync(item->fd) < 0)
                                r = -errno;
                }
        }
        if (r < 0)
                (void) unlinkat(s->dir_fd, name, 0);
        item->fd = safe_close(item->fd);
        item->error = MIN(r, 0);
        return item->error;
}

/* One sync of incoming/ for the items of list, which are renamed into it; they go to the done list (the lock
 * is held on entry and on return, not during the sync). On failure their files are taken back, since the
 * senders will retry: a name may still survive a crash, and then the worst is a duplicate. */
static bool batch_commit(CleanupSync *s, CleanupSyncItem *list) {
        bool was_empty;
        int r = 0;

        (void) pthread_mutex_unlock(&s->lock);
        if (fsync(s->dir_fd) < 0)
                r = -errno;
        for (CleanupSyncItem *i = list; i; i = i->next)
                if (r < 0) {
                        i->error = r;
                        i->dir_failed = true;
                        i->unlink_error = unlinkat(s->dir_fd, i->id, 0) < 0 ? -errno : 0;
                }
        (void) pthread_mutex_lock(&s->lock);
        was_empty = !s->done;
        while (list) {
                CleanupSyncItem *i = list;
                list = i->next;
                i->next = s->done;
                s->done = i;
        }
        return was_empty;
}

/* Whoever finds no sync of incoming/ running starts one for all that is renamed, and goes on while more
 * comes; the others leave their items to it. Lock held. Returns whether the loop must be woken. */
static bool commit_pending(CleanupSync *s) {
        bool wake = false;

        if (s->dir_syncing)
                return false;
        s->dir_syncing = true;
        while (s->renamed) {
                CleanupSyncItem *list = s->renamed;
                s->renamed = NULL;
                wake = batch_commit(s, list) || wake;
        }
        s->dir_syncing = false;
        return wake;
}

/* An item whose file is done (renamed, or failed): to the list that waits for the directory, or done. */
static void item_filed(CleanupSync *s, CleanupSyncItem *item, bool *wake) {
        if (item->error < 0 || !s->dir_sync) {
                *wake = !s->done || *wake;
                item->next = s->done;
                s->done = item;
        } else {
                item->next = s->renamed;
                s->renamed = item;
        }
}

static void *worker(void *userdata) {
        CleanupSync *s = userdata;
        uint64_t one = 1;

        (void) pthread_mutex_lock(&s->lock);
        for (;;) {
                CleanupSyncItem *item = s->todo;
                bool wake = false;

                if (!item) {
                        if (s->stop)
                                break;
                        (void) pthread_cond_wait(&s->wake, &s->lock);
                        continue;
                }
                s->todo = item->next;
                if (!s->todo)
                        s->todo_tail = &s->todo;
                (void) pthread_mutex_unlock(&s->lock);

                (void) item_run_file(s, item);

                (void) pthread_mutex_lock(&s->lock);
                item_filed(s, item, &wake);
                wake = commit_pending(s) || wake;
                /* The loop is woken when the done list was empty: when it is not, a wake-up for it is on its
                 * way and the loop takes the whole list then. The counter only grows, and the loop reads it
                 * before it takes the list: no wake-up is lost. A full counter (never, at 2^64-2) would fail
                 * with EAGAIN, and it is read anyway. Written outside the lock, which others wait for. */
                if (wake) {
                        (void) pthread_mutex_unlock(&s->lock);
                        (void) write(s->event_fd, &one, sizeof one);
                        (void) pthread_mutex_lock(&s->lock);
                }
        }
        (void) pthread_mutex_unlock(&s->lock);
        return NULL;
}

/* Answers every item that is done, on the loop. */
static void sync_dispatch(CleanupSync *s) {
        CleanupSyncItem *list;

        (void) pthread_mutex_lock(&s->lock);
        list = s->done;
        s->done = NULL;
        (void) pthread_mutex_unlock(&s->lock);
        while (list) {
                CleanupSyncItem *item = list;
                list = item->next;
                item->next = NULL;
                item->done(item, item->userdata);
        }
}

static int on_event(sd_event_source *source, int fd, uint32_t revents, void *userdata) {
        uint64_t n;

        if (read(fd, &n, sizeof n) < 0 && errno != EAGAIN && errno != EINTR)
                log_warning_errno(errno, "Failed to read the sync threads' eventfd, ignoring: %m");
        sync_dispatch(userdata);
        return 0;
}

/* Without threads, or after they stopped: everything renamed in this turn of the loop is committed at once. */
static void commit_here(CleanupSync *s) {
        (void) pthread_mutex_lock(&s->lock);
        (void) commit_pending(s);
        (void) pthread_mutex_unlock(&s->lock);
        sync_dispatch(s);
}

static int on_commit(sd_event_source *source, void *userdata) {
        commit_here(userdata);
        return 0;
}

void cleanup_sync_submit(CleanupSync *s, CleanupSyncItem *item, bool here) {
        bool wake = false;

        item->next = NULL;
        item->error = item->unlink_error = 0;
        item->collided = item->dir_failed = false;
        if (s->n_threads == 0 || s->stop || here) {
                (void) item_run_file(s, item);
                (void) pthread_mutex_lock(&s->lock);
                item_filed(s, item, &wake);
                (void) pthread_mutex_unlock(&s->lock);
                if (s->stop || here || !s->commit || sd_event_source_set_enabled(s->commit, SD_EVENT_ONESHOT) < 0)
                        commit_here(s);
                return;
        }
        (void) pthread_mutex_lock(&s->lock);
        *s->todo_tail = item;
        s->todo_tail = &item->next;
        (void) pthread_mutex_unlock(&s->lock);
        /* After the unlock: the worker it wakes does not wait for the lock then. It looks at todo under the
         * lock before it sleeps, so the item is not missed. */
        (void) pthread_cond_signal(&s->wake);
}

/* Whether the fsync of a file that was renamed makes its new name durable too: the journaling file systems
 * whose rename logs the renamed inode. */
bool cleanup_sync_file_carries_name(int dir_fd) {
        struct statfs sfs;

        if (fstatfs(dir_fd, &sfs) < 0)
                return false;
        switch ((uint32_t) sfs.f_type) {
        case EXT4_SUPER_MAGIC:  /* ext2's too, which has no journal: there set cleanup_directory_sync = yes */
        case XFS_SUPER_MAGIC:
        case BTRFS_SUPER_MAGIC:
                return true;
        default:
                return false;
        }
}

int cleanup_sync_new(sd_event *e, int dir_fd, bool dir_sync, unsigned n_threads, CleanupSync **ret) {
        CleanupSync *s;
        int r;

        s = calloc(1, sizeof(CleanupSync));
        if (!s)
                return -ENOMEM;
        s->dir_fd = dir_fd;
        s->dir_sync = dir_sync;
        s->event_fd = -EBADF;
        s->todo_tail = &s->todo;
        (void) pthread_mutex_init(&s->lock, NULL);
        (void) pthread_cond_init(&s->wake, NULL);
        *ret = s;               /* cleanup_sync_free() takes it from here on, in any state */
        if (n_threads == 0) {
                r = sd_event_add_defer(e, &s->commit, on_commit, s);
                if (r < 0)
                        return r;
                return sd_event_source_set_enabled(s->commit, SD_EVENT_OFF);
        }

        s->event_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
        if (s->event_fd < 0)
                return -errno;
        r = sd_event_add_io(e, &s->source, s->event_fd, EPOLLIN, on_event, s);
        if (r < 0)
                return r;
        s->threads = calloc(n_threads, sizeof(pthread_t));
        if (!s->threads)
                return -ENOMEM;
        /* The workers take no signal: they stay with the loop's signal sources. */
        sigset_t all, old;
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &old);
        for (r = 0; r >= 0 && s->n_threads < n_threads; s->n_threads++) {
                r = -pthread_create(s->threads + s->n_threads, NULL, worker, s);
                if (r < 0)
                        break;
        }
        (void) pthread_sigmask(SIG_SETMASK, &old, NULL);
        return MIN(r, 0);
}

CleanupSync *cleanup_sync_free(CleanupSync *s) {
        if (!s)
                return NULL;
        /* The workers finish what is queued and exit; what the answers queue then runs at once, here. */
        (void) pthread_mutex_lock(&s->lock);
        s->stop = true;
        (void) pthread_cond_broadcast(&s->wake);
        (void) pthread_mutex_unlock(&s->lock);
        for (unsigned i = 0; i < s->n_threads; i++)
                (void) pthread_join(s->threads[i], NULL);
        commit_here(s);
        sd_event_source_disable_unref(s->source);
        sd_event_source_disable_unref(s->commit);
        safe_close(s->event_fd);
        (void) pthread_cond_destroy(&s->wake);
        (void) pthread_mutex_destroy(&s->lock);
        free(s->threads);
        free(s);
        return NULL;
}
