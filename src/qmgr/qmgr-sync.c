/* qmgr-sync.c: the fdatasync of queue files whose recipients were marked done, on a thread of its own, so
 * that the event loop does not wait for the disk: nothing waits for these syncs (a kill of qmgr loses no
 * mark, which is in the page cache), they only make the marks last through a crash of the machine. Runs in
 * qmgr. The thread makes system calls only; failures are counted and logged from the loop. */
#include <pthread.h>
#include <signal.h>

#include "log.h"
#include "qmgr.h"

/* Most files handed over and not yet synced: each holds a descriptor, and qmgr has a thousand at most.
 * Beyond it the caller syncs on the loop itself, which slows the results down to what the disk takes. */
#define QMGR_SYNC_QUEUED_MAX 128U

struct QmgrSyncThread {
        pthread_mutex_t lock;
        pthread_cond_t wake;            /* files to sync, or stop */
        QmgrDoneSync todo[QMGR_SYNC_QUEUED_MAX];
        size_t n_todo;
        unsigned failed;                /* fdatasync() failures not yet logged */
        int error;                      /* the last of them */
        bool stop;
        pthread_t thread;
};

static void *sync_main(void *userdata) {
        QmgrSyncThread *s = userdata;

        (void) pthread_mutex_lock(&s->lock);
        for (;;) {
                if (s->n_todo == 0) {
                        if (s->stop)
                                break;
                        (void) pthread_cond_wait(&s->wake, &s->lock);
                        continue;
                }
                int fd = s->todo[--s->n_todo].fd;
                (void) pthread_mutex_unlock(&s->lock);
                int r = fdatasync(fd) < 0 ? -errno : 0;
                safe_close(fd);
                (void) pthread_mutex_lock(&s->lock);
                if (r < 0) {
                        s->failed++;
                        s->error = r;
                }
        }
        (void) pthread_mutex_unlock(&s->lock);
        return NULL;
}

static int sync_start(Qmgr *q) {
        _cleanup_free_ QmgrSyncThread *s = NULL;
        sigset_t all, saved;
        int r;

        if (q->sync_thread)
                return 0;
        s = calloc(1, sizeof(QmgrSyncThread));
        if (!s)
                return -ENOMEM;
        (void) pthread_mutex_init(&s->lock, NULL);
        (void) pthread_cond_init(&s->wake, NULL);
        /* The thread takes no signal: they are the loop's (signalfd). */
        (void) sigfillset(&all);
        (void) pthread_sigmask(SIG_SETMASK, &all, &saved);
        r = -pthread_create(&s->thread, NULL, sync_main, s);
        (void) pthread_sigmask(SIG_SETMASK, &saved, NULL);
        if (r < 0) {
                (void) pthread_mutex_destroy(&s->lock);
                (void) pthread_cond_destroy(&s->wake);
                return r;
        }
        q->sync_thread = TAKE_PTR(s);
        return 0;
}

int qmgr_sync_submit(Qmgr *q, const char *id, int fd) {
        QmgrSyncThread *s;
        unsigned failed;
        int r, error;

        r = sync_start(q);
        if (r < 0)
                return r;
        s = q->sync_thread;
        (void) pthread_mutex_lock(&s->lock);
        for (size_t k = 0; k < s->n_todo; k++)
                if (streq(s->todo[k].id, id)) {
                        /* Its sync is still to come, and covers these marks too. */
                        (void) pthread_mutex_unlock(&s->lock);
                        safe_close(fd);
                        return 0;
                }
        if (s->n_todo >= QMGR_SYNC_QUEUED_MAX) {
                (void) pthread_mutex_unlock(&s->lock);
                return -EBUSY;
        }
        (void) snprintf(s->todo[s->n_todo].id, sizeof s->todo[s->n_todo].id, "%s", id);
        s->todo[s->n_todo++].fd = fd;
        failed = s->failed;
        error = s->error;
        s->failed = 0;
        (void) pthread_cond_signal(&s->wake);
        (void) pthread_mutex_unlock(&s->lock);
        if (failed > 0)
                log_error_errno(error, "Failed to sync %u queue files with recipients marked done (a crash of the "
                                "machine may deliver them again): %m", failed);
        return 0;
}

void qmgr_sync_stop(Qmgr *q) {
        QmgrSyncThread *s = q->sync_thread;

        if (!s)
                return;
        (void) pthread_mutex_lock(&s->lock);
        s->stop = true;
        (void) pthread_cond_signal(&s->wake);
        (void) pthread_mutex_unlock(&s->lock);
        (void) pthread_join(s->thread, NULL);   /* what was handed over is synced first */
        if (s->failed > 0)
                log_error_errno(s->error, "Failed to sync %u queue files with recipients marked done: %m", s->failed);
        (void) pthread_mutex_destroy(&s->lock);
        (void) pthread_cond_destroy(&s->wake);
        q->sync_thread = mfree(s);
}
