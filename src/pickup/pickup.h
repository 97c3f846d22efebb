/* pickup.h: private to the pickup role. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <systemd/sd-event.h>

#include "bus-util.h"
#include "daemon.h"
#include "maildrop-file.h"
#include "milter.h"
#include "receive-override.h"

/* Submissions to cleanup in flight at once: each holds its message in a memory file. */
#define PICKUP_IN_FLIGHT_MAX 8U
/* Names taken from one reading of the directory; the rest wait for the next. */
#define PICKUP_BATCH_MAX 1024U
/* Retry after a temporary failure (cleanup unreachable or failing), doubling up to the maximum. */
#define PICKUP_RETRY_MIN_USEC (1 * USEC_PER_SEC)
#define PICKUP_RETRY_MAX_USEC (60 * USEC_PER_SEC)
/* A hidden file sendmail is writing; one this old belongs to a sendmail that died. */
#define PICKUP_STALE_TMP_USEC (24ULL * 3600 * USEC_PER_SEC)

typedef struct Pickup Pickup;

/* A maildrop file, checked and with its content in a sealed memory file, on its way to cleanup. */
typedef struct PickupMessage {
        Pickup *pickup;
        char name[MAILDROP_NAME_SIZE];
        uid_t uid;
        char *login;
        MaildropEnvelope *envelope;
        char *full_name;                /* -F, or the owner's GECOS name; NULL: none usable */
        int content_fd;
        sd_bus_slot *slot;
        char *reject_text;              /* cleanup's refusal, for bounce */
        MilterChain *milter;            /* non_smtpd_milters asked about it (pickup-milter.c) */
        size_t milter_step, milter_rcpt;
        MilterInput *milter_in;         /* the message they are reading */
        char *queue_id;                 /* the one the milters saw as "i", proposed to cleanup */
        char *milter_hold;              /* quarantine: to hold, for this reason */
        struct PickupMessage *prev, *next;
} PickupMessage;

struct Pickup {
        Daemon *daemon;
        char *maildrop_path;
        int dir_fd;
        BusClient *cleanup;
        MilterSettings milters;         /* non_smtpd_milters */
        unsigned receive_override;      /* receive_override_options (RECEIVE_OVERRIDE_*) */
        MilterSettings *retired;        /* replaced by reloads, kept for the messages in flight that use them */
        size_t n_retired;
        BusClient *bounce;              /* for mail cleanup refuses */
        sd_bus_slot *ping;              /* a connection to cleanup being set up */
        sd_event_source *inotify;       /* new files while pickup lingers */
        sd_event_source *scan_event;    /* a reading of the directory is due */
        sd_event_source *retry_timer;
        uint64_t retry_usec;

        char **names;                   /* this batch, in arrival order */
        size_t n_names, next_name;
        PickupMessage *in_flight;
        unsigned n_in_flight;
        bool temporary_failure;         /* in this batch: read the directory again only after a pause */
        bool working;                   /* counted in the daemon's busy count */
};

/* pickup-maildrop.c */
void pickup_scan(Pickup *p);
/* Opens, checks and reads one file. 1 and *ret: ready to submit; 0: nothing to do (gone, or hostile
 * and removed with a journal record); negative: a temporary failure, the file stays. */
int pickup_message_load(Pickup *p, const char *name, PickupMessage **ret);
PickupMessage *pickup_message_free(PickupMessage *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(PickupMessage *, pickup_message_free);
/* Removes a file that will never be mail, with a journal record saying why. */
void pickup_discard(Pickup *p, const char *name, uid_t uid, const char *why);
void pickup_set_working(Pickup *p, bool working);
/* Frees the milter settings that reloads replaced, once no message in flight may use them. */
void pickup_retired_free(Pickup *p);

/* pickup-submit.c */
void pickup_pump(Pickup *p);
/* The milters' verdict on a message (reply: the SMTP reply of a refusal). */
void pickup_milter_done(PickupMessage *m, MilterVerdict verdict, const char *reply);

/* pickup-milter.c: the message, linked in flight, goes through the milters; pickup_milter_done() follows. */
int pickup_milter_start(PickupMessage *m);
void pickup_milter_free(PickupMessage *m);
