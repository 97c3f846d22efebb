/* queue-id.h: queue IDs: unique, sortable by arrival, validated before any path is built from them, and
 * unique by construction on disk (queue_id_rename()). */
#pragma once

#include <stdbool.h>

/* 20 upper-case hex digits: 8 of seconds, 5 of microseconds, 7 random (28 bits), e.g.
 * "6A1B2C3D0F4240A7C3B91". */
#define QUEUE_ID_LEN 20
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)
#define QUEUE_ID_RANDOM_LEN 7

/* Fresh IDs queue_id_rename() tries before it gives up with -EEXIST. */
#define QUEUE_ID_RENAME_ATTEMPTS 16

int queue_id_new(char ret[static QUEUE_ID_SIZE]);
bool queue_id_valid(const char *s);
/* Arrival time encoded in a valid ID, in microseconds since the epoch. */
unsigned long long queue_id_usec(const char *id);

/* Renames from_dir/from_name to to_dir/id, never over a file that is there (RENAME_NOREPLACE): when the
 * name is taken, id becomes a fresh one and the rename is tried again. Returns 0 with id unchanged, 1 when
 * id was changed, or negative errno. */
int queue_id_rename(int from_dir, const char *from_name, int to_dir, char id[static QUEUE_ID_SIZE]);
