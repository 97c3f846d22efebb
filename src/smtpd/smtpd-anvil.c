/* smtpd-anvil.c: the smtpd process's per-client counters: a hash table of clients (seeded, so that a client
 * cannot choose addresses that collide), and a list of the idle ones, from which the least recently used are
 * dropped when their time unit is over or when the table is full. */
#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "macro.h"
#include "smtpd-anvil.h"

struct SmtpdAnvil {
        SmtpdAnvilClient **buckets;
        size_t n_buckets;               /* a power of two */
        size_t size, limit;
        uint64_t window_usec;
        uint64_t seed;
        SmtpdAnvilClient *idle_head, *idle_tail;
};

static size_t bucket_of(const SmtpdAnvil *a, const char *key) {
        /* FNV-1a over a random seed: cheap, and the seed keeps collisions out of the client's hands. */
        uint64_t h = 0xcbf29ce484222325ULL ^ a->seed;

        for (const unsigned char *p = (const unsigned char *) key; *p; p++) {
                h ^= *p;
                h *= 0x100000001b3ULL;
        }
        h ^= h >> 29;
        return (size_t) (h & (a->n_buckets - 1));
}

int smtpd_anvil_new(size_t limit, uint64_t window_usec, SmtpdAnvil **ret) {
        SmtpdAnvil *a;
        size_t n = 64;

        while (n < limit && n < ((size_t) 1 << 24))
                n *= 2;
        a = calloc(1, sizeof(SmtpdAnvil));
        if (!a)
                return -ENOMEM;
        a->buckets = calloc(n, sizeof(SmtpdAnvilClient *));
        if (!a->buckets) {
                free(a);
                return -ENOMEM;
        }
        a->n_buckets = n;
        a->limit = limit;
        a->window_usec = window_usec;
        if (getrandom(&a->seed, sizeof a->seed, GRND_NONBLOCK) != sizeof a->seed)
                a->seed = (uint64_t) (uintptr_t) a ^ 0x9e3779b97f4a7c15ULL;
        *ret = a;
        return 0;
}

SmtpdAnvil *smtpd_anvil_free(SmtpdAnvil *a) {
        if (!a)
                return NULL;
        for (size_t i = 0; i < a->n_buckets; i++)
                for (SmtpdAnvilClient *c = a->buckets[i], *next; c; c = next) {
                        next = c->hash_next;
                        free(c);
                }
        free(a->buckets);
        free(a);
        return NULL;
}

static void idle_unlink(SmtpdAnvil *a, SmtpdAnvilClient *c) {
        if (c->idle_prev)
                c->idle_prev->idle_next = c->idle_next;
        else
                a->idle_head = c->idle_next;
        if (c->idle_next)
                c->idle_next->idle_prev = c->idle_prev;
        else
                a->idle_tail = c->idle_prev;
        c->idle_prev = c->idle_next = NULL;
}

static void drop(SmtpdAnvil *a, SmtpdAnvilClient *c) {
        SmtpdAnvilClient **p = &a->buckets[bucket_of(a, c->key)];

        while (*p != c)
                p = &(*p)->hash_next;
        *p = c->hash_next;
        idle_unlink(a, c);
        a->size--;
        free(c);
}

/* Starts a new time unit when the current one is over. */
static void roll(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now) {
        if (now < c->window_start || now - c->window_start >= a->window_usec) {
                c->window_start = now;
                c->connection_rate = c->message_rate = c->recipient_rate = 0;
        }
}

/* Drops idle clients at the old end of the list whose time unit is over; a few per call, so that the
 * work is spread over the connections. */
static void expire(SmtpdAnvil *a, uint64_t now) {
        for (unsigned i = 0; i < 4 && a->idle_tail; i++) {
                SmtpdAnvilClient *c = a->idle_tail;

                if (now >= c->window_start && now - c->window_start < a->window_usec)
                        break;
                drop(a, c);
        }
}

int smtpd_anvil_connect(SmtpdAnvil *a, const char *key, uint64_t now, SmtpdAnvilClient **ret) {
        size_t b = bucket_of(a, key);
        SmtpdAnvilClient *c;

        expire(a, now);
        for (c = a->buckets[b]; c; c = c->hash_next)
                if (streq(c->key, key))
                        break;
        if (!c) {
                if (strlen(key) >= SMTPD_ANVIL_KEY_MAX)
                        return -EINVAL;
                if (a->size >= a->limit) {
                        if (!a->idle_tail)
                                return -ENOBUFS;
                        drop(a, a->idle_tail);
                        b = bucket_of(a, key);
                }
                c = calloc(1, sizeof(SmtpdAnvilClient));
                if (!c)
                        return -ENOMEM;
                strcpy(c->key, key);
                c->window_start = now;
                c->hash_next = a->buckets[b];
                a->buckets[b] = c;
                a->size++;
        } else if (c->connections == 0)
                idle_unlink(a, c);
        roll(a, c, now);
        c->connections++;
        c->connection_rate++;
        *ret = c;
        return 0;
}

void smtpd_anvil_disconnect(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now) {
        if (!c || c->connections == 0)
                return;
        if (--c->connections > 0)
                return;
        c->idle_prev = NULL;
        c->idle_next = a->idle_head;
        if (a->idle_head)
                a->idle_head->idle_prev = c;
        else
                a->idle_tail = c;
        a->idle_head = c;
        expire(a, now);
}

unsigned smtpd_anvil_message(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now) {
        roll(a, c, now);
        return ++c->message_rate;
}

unsigned smtpd_anvil_recipient(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now) {
        roll(a, c, now);
        return ++c->recipient_rate;
}

size_t smtpd_anvil_expire(SmtpdAnvil *a, uint64_t now) {
        for (SmtpdAnvilClient *c = a->idle_tail, *prev; c; c = prev) {
                prev = c->idle_prev;
                if (now < c->window_start || now - c->window_start >= a->window_usec)
                        drop(a, c);
        }
        return a->size;
}

size_t smtpd_anvil_size(const SmtpdAnvil *a) {
        return a->size;
}
