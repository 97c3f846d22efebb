/* smtpd.h: private to the smtpd role: the server state that all sessions share. */
#pragma once

#include <systemd/sd-event.h>

#include "bus-util.h"
#include "daemon.h"
#include "smtpd-anvil.h"
#include "smtpd-mynetworks.h"

/* Bytes read from a client at once; the input buffer holds one line of line_length_limit, its CRLF,
 * and one read. */
#define SMTPD_READ_CHUNK (16U * 1024U)
/* Message content is converted into this buffer and written to the memory file from it. */
#define SMTPD_DATA_CHUNK (64U * 1024U)

typedef struct SmtpdSession SmtpdSession;

typedef struct Smtpd {
        Daemon *daemon;
        const Config *config;
        char **mydestination;
        SmtpdNetworks mynetworks;
        SmtpdNetworks limit_exceptions; /* smtpd_client_event_limit_exceptions */
        SmtpdAnvil *anvil;              /* per-client connection, message and recipient counts */
        bool reject_bare_lf;            /* smtpd_forbid_bare_newline = reject */
        SmtpdNetworks bare_newline_exclusions;  /* smtpd_forbid_bare_newline_exclusions: normalized only */
        BusClient *cleanup;
        sd_event_source **listen_sources;       /* one per socket named "smtp" */
        size_t n_listen;
        sd_event_source *accept_retry;  /* accepting again after running out of file descriptors */
        SmtpdSession *sessions;
        unsigned n_sessions;
        /* Shared by all sessions: each uses it only within one event callback. */
        char data_buf[SMTPD_DATA_CHUNK];
} Smtpd;

/* Starts accepting clients on a listening socket; server->listen_sources has room for it. */
int smtpd_listen(Smtpd *server, int fd);

/* Closes every session at once (at exit). */
void smtpd_sessions_free(Smtpd *server);
