/* queue-id.c: queue ID generation and validation, and the renames that keep IDs unique on disk. Run by
 * cleanup, qmgr, bounce and sendmail. */
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <time.h>

#include "daemon.h"
#include "macro.h"
#include "queue-id.h"

int queue_id_new(char ret[static QUEUE_ID_SIZE]) {
        struct timespec ts;
        uint32_t rnd;

        if (clock_gettime(CLOCK_REALTIME, &ts) < 0)
                return -errno;
        random_bytes(&rnd, sizeof rnd);
        (void) snprintf(ret, QUEUE_ID_SIZE, "%08llX%05lX%07X", (unsigned long long) ts.tv_sec & 0xFFFFFFFFULL,
                        (unsigned long) (ts.tv_nsec / 1000), rnd & 0xFFFFFFFU);
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

int queue_id_rename(int from_dir, const char *from_name, int to_dir, char id[static QUEUE_ID_SIZE]) {
        char from[QUEUE_ID_SIZE + 8];
        int r;

        /* from_name may be id itself, which changes below. */
        if (strlen(from_name) >= sizeof from)
                return -EINVAL;
        strcpy(from, from_name);
        for (unsigned i = 0; i < QUEUE_ID_RENAME_ATTEMPTS; i++) {
                if (renameat2(from_dir, from, to_dir, id, RENAME_NOREPLACE) >= 0)
                        return i > 0;
                if (errno != EEXIST)
                        return -errno;
                r = queue_id_new(id);
                if (r < 0)
                        return r;
        }
        return -EEXIST;
}
