/* smtpd-anvil.h: per-client counters for smtpd's abuse limits, as Postfix's anvil keeps them, but in
 * smtpd's own memory since one process serves every session: sessions at once, and new sessions,
 * messages and recipients per time unit. Pure data structure (time is passed in), bounded in size. */
#pragma once

#include <stddef.h>
#include <stdint.h>

#define SMTPD_ANVIL_KEY_MAX 64

typedef struct SmtpdAnvilClient SmtpdAnvilClient;
struct SmtpdAnvilClient {
        char key[SMTPD_ANVIL_KEY_MAX];  /* the client address as text */
        unsigned connections;           /* sessions open now */
        uint64_t window_start;          /* the rate counts below are since then, for one time unit */
        unsigned connection_rate, message_rate, recipient_rate;
        SmtpdAnvilClient *hash_next;
        SmtpdAnvilClient *idle_prev, *idle_next;        /* while connections == 0, most recent first */
};

typedef struct SmtpdAnvil SmtpdAnvil;

/* limit: most clients kept; window_usec: the time unit of the rates. */
int smtpd_anvil_new(size_t limit, uint64_t window_usec, SmtpdAnvil **ret);
SmtpdAnvil *smtpd_anvil_free(SmtpdAnvil *a);

/* A new session from key (at most SMTPD_ANVIL_KEY_MAX - 1 bytes): counts it at once and in the rate,
 * and returns the client's counters, valid until the matching smtpd_anvil_disconnect(). When the table
 * is full the clients idle longest are forgotten; -ENOBUFS only when every client kept has a session
 * open (more than limit sessions at once). */
int smtpd_anvil_connect(SmtpdAnvil *a, const char *key, uint64_t now, SmtpdAnvilClient **ret);
void smtpd_anvil_disconnect(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now);

/* Counts a MAIL or a RCPT command of a client with a session open; returns the count in the current
 * time unit, this one included. */
unsigned smtpd_anvil_message(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now);
unsigned smtpd_anvil_recipient(SmtpdAnvil *a, SmtpdAnvilClient *c, uint64_t now);

/* Drops every client without a session whose time unit is over; returns the clients kept. */
size_t smtpd_anvil_expire(SmtpdAnvil *a, uint64_t now);

/* Clients kept now. */
size_t smtpd_anvil_size(const SmtpdAnvil *a);
