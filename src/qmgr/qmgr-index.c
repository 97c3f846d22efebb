/* qmgr-index.c: an in-memory index of every queued message (queue, sender, arrival, size, pending
 * recipients, attempts, next attempt, last reason), filled once at start-up and kept current on every
 * move, so that the bus answers without reading the queue directories. Run by qmgr.
 *
 * Memory: one allocation per message with the sender and up to INDEX_RECIPIENTS_MAX bytes of pending
 * recipients; a message with more is marked truncated and its file is read when all are needed. */
#include <ctype.h>
#include <dirent.h>
#include <fcntl.h>
#include <sys/stat.h>

#include "address.h"
#include "log.h"
#include "qmgr.h"

#define INDEX_RECIPIENTS_MAX 512U
/* Files read into the index per turn of the event loop at start-up: mail flows meanwhile. */
#define INDEX_LOAD_BATCH 256U

struct QmgrIndex {
        QmgrIndexEntry **buckets;
        size_t n_buckets;
        size_t n_entries;
        /* the start-up read, a batch at a time */
        sd_event_source *loader;
        QueueName loading;
        DIR *dir;
};

static size_t index_hash(const QmgrIndex *ix, const char *id) {
        size_t h = 14695981039346656037ULL;

        for (; *id; id++)
                h = (h ^ (unsigned char) *id) * 1099511628211ULL;
        return h % ix->n_buckets;
}

int qmgr_index_new(Qmgr *q) {
        QmgrIndex *ix = calloc(1, sizeof(QmgrIndex));

        if (!ix)
                return -ENOMEM;
        ix->n_buckets = 4096;
        ix->buckets = calloc(ix->n_buckets, sizeof(QmgrIndexEntry *));
        if (!ix->buckets) {
                free(ix);
                return -ENOMEM;
        }
        q->index = ix;
        return 0;
}

static void entry_free(QmgrIndexEntry *e) {
        if (!e)
                return;
        free(e->reason);
        free(e);
}

void qmgr_index_free(Qmgr *q) {
        QmgrIndex *ix = q->index;

        if (!ix)
                return;
        for (size_t b = 0; b < ix->n_buckets; b++)
                while (ix->buckets[b]) {
                        QmgrIndexEntry *e = ix->buckets[b];
                        ix->buckets[b] = e->hash_next;
                        entry_free(e);
                }
        free(ix->buckets);
        sd_event_source_disable_unref(ix->loader);
        if (ix->dir)
                closedir(ix->dir);
        free(ix);
        q->index = NULL;
}

static void index_grow(QmgrIndex *ix) {
        size_t n = ix->n_buckets * 2;
        QmgrIndexEntry **b = calloc(n, sizeof(QmgrIndexEntry *));

        if (!b)
                return;         /* longer chains, still correct */
        QmgrIndexEntry **old = ix->buckets;
        size_t n_old = ix->n_buckets;
        ix->buckets = b;
        ix->n_buckets = n;
        for (size_t i = 0; i < n_old; i++)
                while (old[i]) {
                        QmgrIndexEntry *e = old[i];
                        old[i] = e->hash_next;
                        size_t h = index_hash(ix, e->id);
                        e->hash_next = b[h];
                        b[h] = e;
                }
        free(old);
}

/* Without completing the start-up read: for the index's own upkeep. */
static QmgrIndexEntry *index_lookup(Qmgr *q, const char *id) {
        QmgrIndex *ix = q->index;

        if (!ix || !id)
                return NULL;
        for (QmgrIndexEntry *e = ix->buckets[index_hash(ix, id)]; e; e = e->hash_next)
                if (streq(e->id, id))
                        return e;
        return NULL;
}

/* Puts e in place of the entry with its ID (taking over what only the index knows), or adds it. */
static QmgrIndexEntry *index_put(Qmgr *q, QmgrIndexEntry *e) {
        QmgrIndex *ix = q->index;
        QmgrIndexEntry **p = &ix->buckets[index_hash(ix, e->id)];

        for (; *p; p = &(*p)->hash_next)
                if (streq((*p)->id, e->id)) {
                        QmgrIndexEntry *old = *p;
                        e->attempts = old->attempts;
                        e->crashes = old->crashes;
                        e->suspect = old->suspect;
                        e->waiting_agent = old->waiting_agent;
                        if (!e->reason) {
                                e->reason = old->reason;
                                old->reason = NULL;
                        }
                        if (e->next_attempt_usec == 0 && e->queue == old->queue)
                                e->next_attempt_usec = old->next_attempt_usec;
                        e->hash_next = old->hash_next;
                        *p = e;
                        entry_free(old);
                        return e;
                }
        e->hash_next = NULL;
        *p = e;
        ix->n_entries++;
        if (ix->n_entries > ix->n_buckets * 2)
                index_grow(ix);
        return e;
}

static QmgrIndexEntry *entry_from_envelope(const char *id, QueueName which, const QueueEnvelope *env) {
        size_t size = 1, n_pending = 0, kept = 0;
        bool truncated = false;
        QmgrIndexEntry *e;
        char *p;

        if (env) {
                size += strlen(env->sender);
                for (size_t i = 0; i < env->n_recipients; i++) {
                        if (env->recipients[i].done)
                                continue;
                        n_pending++;
                        size_t l = strlen(env->recipients[i].address) + 1;
                        if (kept + l > INDEX_RECIPIENTS_MAX && kept > 0)
                                truncated = true;
                        else
                                kept += l;
                }
        }
        size += kept;
        e = calloc(1, sizeof(QmgrIndexEntry) + size);
        if (!e)
                return NULL;
        memcpy(e->id, id, QUEUE_ID_SIZE);
        e->queue = (uint8_t) which;
        e->truncated = truncated;
        e->strings_size = size;
        p = e->strings;
        if (env) {
                e->arrival_usec = env->arrival_usec;
                e->size = env->content_size;
                e->n_recipients = (uint32_t) env->n_recipients;
                e->n_pending = (uint32_t) n_pending;
                p = stpcpy(p, env->sender) + 1;
                size_t used = 0;
                for (size_t i = 0; i < env->n_recipients; i++) {
                        const char *a = env->recipients[i].address;
                        size_t l = strlen(a) + 1;
                        if (env->recipients[i].done || used + l > kept)
                                continue;
                        p = stpcpy(p, a) + 1;
                        used += l;
                }
        } else {
                e->arrival_usec = queue_id_usec(id);
                *p = '\0';
        }
        return e;
}

static int read_envelope_at(int dirfd, const char *id, QueueEnvelope **ret, struct stat *ret_st) {
        _cleanup_close_ int fd = openat(dirfd, id, O_RDONLY | O_CLOEXEC | O_NOFOLLOW | O_NONBLOCK);

        if (fd < 0)
                return -errno;
        if (ret_st && fstat(fd, ret_st) < 0)
                return -errno;
        return queue_file_read(fd, ret);
}

int qmgr_index_read_envelope(Qmgr *q, const QmgrIndexEntry *e, QueueEnvelope **ret) {
        return read_envelope_at(q->queue_fds[e->queue], e->id, ret, NULL);
}

QmgrIndexEntry *qmgr_index_update(Qmgr *q, QueueName which, const char *id, bool announce) {
        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        QmgrIndexEntry *e = index_lookup(q, id);
        struct stat st = {};
        int r;

        if (!q->index)
                return NULL;
        if (e && !announce) {
                bool moved = e->queue != (uint8_t) which;
                e->queue = (uint8_t) which;
                if (which != QUEUE_DEFERRED)
                        e->next_attempt_usec = 0;
                if (which == QUEUE_DEFERRED && fstatat(q->queue_fds[which], id, &st, AT_SYMLINK_NOFOLLOW) >= 0)
                        e->next_attempt_usec = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC;
                if (moved)
                        qmgr_bus_message_changed(q, id);
                return e;
        }
        r = read_envelope_at(q->queue_fds[which], id, &env, &st);
        if (r == -ENOENT || r == -ELOOP)
                return NULL;
        e = entry_from_envelope(id, which, r < 0 ? NULL : env);
        if (!e) {
                log_oom();
                return NULL;
        }
        if (which == QUEUE_DEFERRED)
                e->next_attempt_usec = (uint64_t) st.st_mtim.tv_sec * USEC_PER_SEC;
        e = index_put(q, e);
        if (announce)
                qmgr_signal_queued(q, e);
        return e;
}

void qmgr_index_update_message(QmgrMessage *m, QueueName which) {
        qmgr_index_update_message_attempted(m, which, false);
}

void qmgr_index_update_message_attempted(QmgrMessage *m, QueueName which, bool attempted) {
        Qmgr *q = m->qmgr;
        QmgrIndexEntry *e;
        bool fresh;

        if (!q->index)
                return;
        fresh = !qmgr_index_known(q, m->id);    /* new mail, straight from incoming (qmgr_queue_move_as()) */
        e = entry_from_envelope(m->id, which, m->envelope);
        if (!e) {
                log_oom();
                return;
        }
        e = index_put(q, e);
        if (attempted)
                e->attempts++;  /* in the announcement or the one PropertiesChanged below */
        if (fresh)
                qmgr_signal_queued(q, e);
        else
                qmgr_bus_message_changed(q, m->id);
}

void qmgr_index_set_reason(Qmgr *q, const char *id, const char *reason) {
        QmgrIndexEntry *e = index_lookup(q, id);
        char *copy;

        if (!e)
                return;
        if (e->reason && reason && streq(e->reason, reason))
                return;
        copy = reason ? strdup(reason) : NULL;
        if (reason && !copy)
                return;
        free(e->reason);
        e->reason = copy;
        qmgr_bus_message_changed(q, id);
}

void qmgr_index_set_next_attempt(Qmgr *q, const char *id, uint64_t usec) {
        QmgrIndexEntry *e = index_lookup(q, id);

        if (e && e->next_attempt_usec != usec) {
                e->next_attempt_usec = usec;
                qmgr_bus_message_changed(q, id);
        }
}

void qmgr_index_attempted(Qmgr *q, const char *id) {
        QmgrIndexEntry *e = index_lookup(q, id);

        if (e) {
                e->attempts++;
                qmgr_bus_message_changed(q, id);
        }
}

QmgrIndexEntry *qmgr_index_peek(Qmgr *q, const char *id) {
        return index_lookup(q, id);
}

void qmgr_index_remove(Qmgr *q, const char *id) {
        QmgrIndex *ix = q->index;

        if (!ix)
                return;
        for (QmgrIndexEntry **p = &ix->buckets[index_hash(ix, id)]; *p; p = &(*p)->hash_next)
                if (streq((*p)->id, id)) {
                        QmgrIndexEntry *e = *p;
                        *p = e->hash_next;
                        entry_free(e);
                        ix->n_entries--;
                        break;
                }
        qmgr_signal_removed(q, id);
}

int qmgr_index_foreach(Qmgr *q, QmgrIndexFunc f, void *userdata) {
        QmgrIndex *ix = q->index;

        if (!ix)
                return 0;
        qmgr_index_complete(q);
        for (size_t b = 0; b < ix->n_buckets; b++)
                for (QmgrIndexEntry *e = ix->buckets[b], *next; e; e = next) {
                        next = e->hash_next;    /* f may remove e */
                        int r = f(q, e, userdata);
                        if (r != 0)
                                return r;
                }
        return 0;
}

size_t qmgr_index_count(Qmgr *q) {
        qmgr_index_complete(q);
        return q->index ? q->index->n_entries : 0;
}

const char *qmgr_index_sender(const QmgrIndexEntry *e) {
        return e->strings;
}

const char *qmgr_index_next_recipient(const QmgrIndexEntry *e, const char *prev) {
        const char *p = prev ? prev + strlen(prev) + 1 : e->strings + strlen(e->strings) + 1;

        return p < e->strings + e->strings_size ? p : NULL;
}

static bool domain_is(const char *address, const char *dest) {
        const char *at = strrchr(address, '@');
        return at && strcasecmp(at + 1, dest) == 0;
}

/* Calls match for each pending recipient, from the file when the index keeps only some. */
static bool any_recipient(Qmgr *q, const QmgrIndexEntry *e, bool (*match)(const char *, const char *),
                          const char *arg) {
        for (const char *r = qmgr_index_next_recipient(e, NULL); r; r = qmgr_index_next_recipient(e, r))
                if (match(r, arg))
                        return true;
        if (!e->truncated)
                return false;

        _cleanup_(queue_envelope_freep) QueueEnvelope *env = NULL;
        if (qmgr_index_read_envelope(q, e, &env) < 0)
                return false;
        for (size_t i = 0; i < env->n_recipients; i++)
                if (!env->recipients[i].done && match(env->recipients[i].address, arg))
                        return true;
        return false;
}

static bool address_is(const char *address, const char *want) {
        return strcasecmp(address, want) == 0;
}

bool qmgr_index_has_destination(Qmgr *q, const QmgrIndexEntry *e, const char *dest) {
        return any_recipient(q, e, domain_is, dest);
}

bool qmgr_index_has_recipient(Qmgr *q, const QmgrIndexEntry *e, const char *address) {
        return any_recipient(q, e, address_is, address);
}

/* Reads the next batch of a queue directory into the index; files the index knows already (moved or
 * added since the read began) are left as they are. */
static int on_load(sd_event_source *src, void *userdata) {
        Qmgr *q = userdata;
        QmgrIndex *ix = q->index;
        struct dirent *de;
        unsigned n = 0;

        while (n < INDEX_LOAD_BATCH && ix->loading < _QUEUE_NAME_MAX) {
                if (!ix->dir) {
                        /* A description of its own: a dup would share the offset with the scans'. */
                        int fd = openat(q->queue_fds[ix->loading], ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
                        ix->dir = fd >= 0 ? fdopendir(fd) : NULL;
                        if (!ix->dir) {
                                log_error_errno(errno, "Failed to read the %s queue, its messages are not listed: %m",
                                                queue_name_to_string(ix->loading));
                                safe_close(fd);
                                ix->loading++;
                                continue;
                        }
                }
                de = readdir(ix->dir);
                if (!de) {
                        closedir(ix->dir);
                        ix->dir = NULL;
                        ix->loading++;
                        continue;
                }
                if (!queue_id_valid(de->d_name) || index_lookup(q, de->d_name))
                        continue;
                (void) qmgr_index_update(q, ix->loading, de->d_name, false);
                n++;
        }
        if (ix->loading >= _QUEUE_NAME_MAX) {
                ix->loader = sd_event_source_disable_unref(ix->loader);
                log_info("Queue index complete: %zu messages.", ix->n_entries);
        }
        return 0;
}

int qmgr_index_load(Qmgr *q) {
        QmgrIndex *ix = q->index;
        int r;

        r = sd_event_add_defer(q->daemon->event, &ix->loader, on_load, q);
        if (r < 0)
                return log_error_errno(r, "Failed to start reading the queue into the index: %m");
        /* After everything else: deliveries, calls and the bus come first. */
        r = sd_event_source_set_priority(ix->loader, SD_EVENT_PRIORITY_IDLE);
        if (r < 0)
                return log_error_errno(r, "Failed to start reading the queue into the index: %m");
        return 0;
}

bool qmgr_index_loading(Qmgr *q) {
        return q->index && q->index->loader;
}

void qmgr_index_complete(Qmgr *q) {
        while (qmgr_index_loading(q))
                (void) on_load(q->index->loader, q);
}

bool qmgr_index_known(Qmgr *q, const char *id) {
        /* While the start-up read goes on, a message not read yet is old mail, not news. */
        return !q->index || qmgr_index_loading(q) || index_lookup(q, id);
}

QmgrIndexEntry *qmgr_index_find(Qmgr *q, const char *id) {
        QmgrIndexEntry *e = index_lookup(q, id);

        if (e || !qmgr_index_loading(q))
                return e;
        /* A reader asks before the start-up read is done: it finishes now. */
        qmgr_index_complete(q);
        return index_lookup(q, id);
}
