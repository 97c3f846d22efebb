/* answer-cache.h: the last few answers of the rewrite role, each kept a few seconds, as Postfix's rewrite and
 * resolve clients keep their last one: a question asked again meanwhile takes the answer it got then instead
 * of a call. Used by cleanup for rewrite's Rewrite, whose answers follow main.cf alone, and by qmgr for the
 * Resolve answers that rewrite calls lasting (no table took part: a rebuilt table takes effect at once). A
 * reload forgets them. A question and an answer are byte strings with a length, so that they can hold
 * several strings, each ended by its NUL. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define ANSWER_CACHE_SIZE 16U
/* A reload of rewrite alone takes effect in its callers at most this long after; their own reload forgets. */
#define ANSWER_CACHE_USEC (5 * 1000000ULL)

typedef struct AnswerCache {
        struct {
                char *question;         /* question, then answer, in one allocation */
                size_t question_size, answer_size;
                uint64_t expire;        /* CLOCK_MONOTONIC */
        } entries[ANSWER_CACHE_SIZE];
        unsigned next;                  /* the slot the next answer takes */
} AnswerCache;

/* The answer kept for the question (its size in *ret_size), or NULL. */
const char *answer_cache_get(AnswerCache *c, const char *question, size_t question_size, size_t *ret_size);
/* Keeps an answer in place of the oldest; best effort (no memory, no entry). */
void answer_cache_put(AnswerCache *c, const char *question, size_t question_size, const char *answer,
                      size_t answer_size);
void answer_cache_flush(AnswerCache *c);
