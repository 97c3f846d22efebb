/* queue-id.c: queue ID generation and validation. */
#include <stdio.h>
#include <sys/random.h>
#include <time.h>

#include "macro.h"
#include "queue-id.h"

int queue_id_new(char ret[static QUEUE_ID_SIZE]) {
        struct timespec ts;
        unsigned short rnd;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        if (getrandom(&rnd, sizeof rnd, GRND_NONBLOCK) != (ssize_t) sizeof rnd)
                rnd = (unsigned short) (ts.tv_nsec ^ getpid());
        (void) snprintf(ret, QUEUE_ID_SIZE, "%08llX%05lX%03X", (unsigned long long) ts.tv_sec & 0xFFFFFFFFULL,
                        (unsigned long) (ts.tv_nsec / 1000), rnd & 0xFFFU);
        return 0;
}

bool queue_id_valid(const char *s) {
        size_t i;

        if (!s)
                return false;
        for (i = 0; i < QUEUE_ID_LEN; i++)
                if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'A' && s[i] <= 'F')))
                        return false;
        if (s[i] != '\0')
                return false;
        /* the microseconds field never exceeds 999999 */
        char usec[6] = { s[8], s[9], s[10], s[11], s[12], '\0' };
        return strtoul(usec, NULL, 16) <= 999999;
}

unsigned long long queue_id_usec(const char *id) {
        char sec[9], usec[6];

        memcpy(sec, id, 8);
        sec[8] = '\0';
        memcpy(usec, id + 8, 5);
        usec[5] = '\0';
        return strtoull(sec, NULL, 16) * 1000000ULL + strtoull(usec, NULL, 16);
}
