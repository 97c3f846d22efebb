/* queue-id.h: queue IDs: unique, sortable by arrival, validated before any path is built from them. */
#pragma once

#include <stdbool.h>

/* 16 upper-case hex digits: 8 of seconds, 5 of microseconds, 3 random, e.g. "6A1B2C3D0F4240A7C". */
#define QUEUE_ID_LEN 16
#define QUEUE_ID_SIZE (QUEUE_ID_LEN + 1)

int queue_id_new(char ret[static QUEUE_ID_SIZE]);
bool queue_id_valid(const char *s);
/* Arrival time encoded in a valid ID, in microseconds since the epoch. */
unsigned long long queue_id_usec(const char *id);
