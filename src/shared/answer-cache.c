/* answer-cache.c: see answer-cache.h. Run by cleanup and qmgr. */
#include <stdlib.h>
#include <string.h>

#include "answer-cache.h"
#include "daemon.h"

const char *answer_cache_get(AnswerCache *c, const char *question, size_t question_size, size_t *ret_size) {
        uint64_t now = now_monotonic_usec();

        for (size_t i = 0; i < ANSWER_CACHE_SIZE; i++) {
                const char *q = c->entries[i].question;
                if (q && c->entries[i].expire > now && c->entries[i].question_size == question_size &&
                    memcmp(q, question, question_size) == 0) {
                        *ret_size = c->entries[i].answer_size;
                        return q + question_size;
                }
        }
        return NULL;
}

void answer_cache_put(AnswerCache *c, const char *question, size_t question_size, const char *answer,
                      size_t answer_size) {
        char *q = malloc(question_size + answer_size);

        if (!q)
                return;
        memcpy(q, question, question_size);
        memcpy(q + question_size, answer, answer_size);
        free(c->entries[c->next].question);
        c->entries[c->next].question = q;
        c->entries[c->next].question_size = question_size;
        c->entries[c->next].answer_size = answer_size;
        c->entries[c->next].expire = now_monotonic_usec() + ANSWER_CACHE_USEC;
        c->next = (c->next + 1) % ANSWER_CACHE_SIZE;
}

void answer_cache_flush(AnswerCache *c) {
        for (size_t i = 0; i < ANSWER_CACHE_SIZE; i++) {
                free(c->entries[i].question);
                c->entries[i].question = NULL;
        }
}
