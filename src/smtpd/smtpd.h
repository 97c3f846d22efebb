/* smtpd.h: private to the smtpd role: the server state that all sessions share. */
#pragma once

#include <systemd/sd-event.h>

#include "bus-util.h"
#include "daemon.h"
#include "milter.h"
#include "master-cf.h"
#include "receive-override.h"
#include "smtpd-anvil.h"
#include "smtpd-mynetworks.h"
#include "smtpd-restrictions.h"
#include "smtpd-tls.h"

/* Bytes read from a client at once; the input buffer holds one line of line_length_limit, its CRLF,
 * and one read. */
#define SMTPD_READ_CHUNK (64U * 1024U)
/* Message content is converted into this buffer and written to the memory file from it. */
#define SMTPD_DATA_CHUNK (64U * 1024U)

/* A time parameter (seconds in main.cf) as sd-event counts it. */
static inline uint64_t sec_to_usec(int64_t sec) {
        return (uint64_t) sec * USEC_PER_SEC;
}

typedef struct SmtpdSession SmtpdSession;

typedef struct Smtpd Smtpd;

/* Services (master.cf inet smtpd lines with a socket) one smtpd process serves at most. */
#define SMTPD_LISTENERS_MAX 16U

/* The built-in services, by FileDescriptorName= of their sockets: "smtp" (port 25), "submission" (587) and
 * "smtps" (465, TLS from the first byte). Any other inet smtpd line of master.cf is a service of the
 * "smtp" kind, whose socket postbus-generator makes ("smtpd-127.0.0.1_10025"). */
typedef enum SmtpdService {
        SMTPD_SERVICE_SMTP,
        SMTPD_SERVICE_SUBMISSION,
        SMTPD_SERVICE_SMTPS,
        _SMTPD_SERVICE_MAX,
        _SMTPD_SERVICE_INVALID = -EINVAL,
} SmtpdService;

/* One service, shared by all its sockets: its own view of the parameters, as Postfix gives each master.cf
 * service its -o overrides. config is main.cf with the service's built-in defaults (587: encrypt and
 * AUTH; 465: wrapper mode and AUTH) and the -o options of its master.cf line applied; a session reads
 * every parameter that may differ per service (smtpd.c: service_params[]) from here, the others from
 * server->config. */
typedef struct SmtpdConf SmtpdConf;

typedef struct SmtpdListener {
        Smtpd *server;
        SmtpdConf *conf;                /* the configuration it belongs to */
        SmtpdService service;           /* the kind: its built-in defaults */
        char fd_name[MASTER_SOCKET_NAME_MAX];   /* FileDescriptorName= of its sockets */
        const char *name;               /* "smtp", "submission", "smtps" */
        Config *config;                 /* NULL: no socket of this service was passed */
        SSL_CTX *tls;                   /* NULL: no certificate, no TLS */
        SmtpdTlsLevel tls_level;        /* as configured; without a certificate "may" means none */
        bool wrappermode;               /* TLS from the first byte */
        bool sasl;                      /* AUTH offered (after TLS only) */
        SmtpdChecks *checks;            /* the service's restriction lists (smtpd-restrictions.c) */
        MilterSettings milters;         /* the service's smtpd_milters, with the milter_* parameters */
        unsigned receive_override;      /* the service's receive_override_options (RECEIVE_OVERRIDE_*) */
        TableList *ehlo_discard_maps;   /* smtpd_discard_ehlo_keyword_address_maps */
        TableList *reject_footer_maps;  /* smtpd_reject_footer_maps */
} SmtpdListener;

/* Everything smtpd derives from main.cf and master.cf: built at start and again on each reload (systemctl
 * reload), when the new one serves new connections and each session keeps the one it began with (a
 * reference) until it ends. */
struct SmtpdConf {
        unsigned n_ref;
        Config *config;                 /* main.cf (a reference) */
        char **mydestination;
        SmtpdNetworks mynetworks;
        SmtpdNetworks limit_exceptions; /* smtpd_client_event_limit_exceptions */
        SmtpdNetworks verp_clients;     /* smtpd_authorized_verp_clients: may send MAIL ... XVERP */
        bool reject_bare_lf;            /* smtpd_forbid_bare_newline = reject */
        SmtpdNetworks bare_newline_exclusions;  /* smtpd_forbid_bare_newline_exclusions: normalized only */
        MasterConfig *master;           /* master.cf: each smtpd service's -o options */
        SmtpdListener listeners[SMTPD_LISTENERS_MAX];
        size_t n_listeners;
};

SmtpdConf *smtpd_conf_ref(SmtpdConf *conf);
SmtpdConf *smtpd_conf_unref(SmtpdConf *conf);

struct Smtpd {
        Daemon *daemon;
        const Config *config;           /* conf->config: the limits of the whole process */
        SmtpdConf *conf;                /* for new connections */
        SmtpdAnvil *anvil;              /* per-client connection, message and recipient counts */
        sd_event_source *anvil_timer;   /* drops expired counters; while any are kept with a rate limit... */
        bool anvil_busy;                /* ...on, smtpd counts as busy and does not exit idle */
        BusClient *cleanup;
        Resolver *resolver;             /* DNS for every session: client names, reject_rbl_client */
        SmtpdPolicyPool *policy;        /* connections to the policy services (check_policy_service) */
        sd_event_source **listen_sources;       /* one per socket of any service */
        size_t n_listen;
        sd_event_source *accept_retry;  /* accepting again after running out of file descriptors */
        SmtpdSession *sessions;
        unsigned n_sessions;
        /* Shared by all sessions: each uses it only within one event callback. */
        char data_buf[SMTPD_DATA_CHUNK];
};

/* "smtp", "submission", "smtps". */
const char *smtpd_service_to_string(SmtpdService s);
SmtpdService smtpd_service_from_string(const char *s);

/* Starts accepting clients of a service on a listening socket; server->listen_sources has room for it. */
int smtpd_listen(SmtpdListener *l, int fd);

/* Closes every session at once (at exit). */
void smtpd_sessions_free(Smtpd *server);
