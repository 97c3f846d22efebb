/* master-cf.h: /etc/postbus/master.cf in Postfix's syntax: one service per line (continued on lines that
 * start with white space), eight columns and the command's arguments. postbus uses the service name,
 * the command, its arguments and the -o overrides; the process columns are systemd's business. */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "macro.h"

/* What a service runs, as master.cf's command column names it. */
typedef enum MasterCommand {
        MASTER_COMMAND_LOCAL,
        MASTER_COMMAND_SMTP,
        MASTER_COMMAND_LMTP,
        MASTER_COMMAND_PIPE,
        MASTER_COMMAND_ERROR,
        MASTER_COMMAND_DISCARD,
        MASTER_COMMAND_RETRY,
        MASTER_COMMAND_VIRTUAL,
        MASTER_COMMAND_OTHER,           /* a Postfix daemon that is not a delivery agent (smtpd, cleanup, ...) */
        _MASTER_COMMAND_MAX,
        _MASTER_COMMAND_INVALID = -EINVAL,
} MasterCommand;

typedef struct MasterService {
        char *name;
        char *type;                     /* inet, unix, unix-dgram, fifo, pass */
        char *command;                  /* as written: "pipe", "smtp", "smtpd", ... */
        MasterCommand kind;
        int maxproc;                    /* the process limit column; -1: "-" (the default) */
        char **args;                    /* the command's arguments other than -o, NULL-terminated */
        char **overrides;               /* "name=value" of each -o, NULL-terminated */
        unsigned line;
} MasterService;

typedef struct MasterConfig {
        char *path;
        MasterService *services;
        size_t n_services;
} MasterConfig;

MasterConfig *master_config_free(MasterConfig *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(MasterConfig *, master_config_free);

/* Parses master.cf text. A line without its eight columns, a bad -o, a service named twice for the
 * same type or a pipe service without argv= fails with -EINVAL after logging "path:line: ...". A
 * chroot or wakeup column that Postfix would have acted on gets a warning: systemd's units decide. */
int master_config_parse(const char *text, const char *path, MasterConfig **ret);

/* Reads path; a missing file is the built-in set (local, smtp, relay, lmtp, error, discard, retry). */
int master_config_load(const char *path, MasterConfig **ret);

/* master.cf beside the main.cf at main_cf (its directory's). */
int master_config_load_beside(const char *main_cf, MasterConfig **ret);

/* The delivery service (type unix) of this name, or NULL. */
const MasterService *master_config_transport(const MasterConfig *m, const char *name);

/* The value of a "name=value" argument of a service ("flags", "user", "argv" is the rest of the line),
 * or NULL. */
const char *master_service_arg(const MasterService *s, const char *name);

/* The words after argv=, joined by single spaces (newly allocated), or -ENOENT. */
int master_service_argv(const MasterService *s, char **ret);

/* What a delivery agent is told of its service s in each org.postbus.Delivery1 call (agent-bus.h): pipe's
 * argv= and its other arguments, time_limit, and each -o as "o:name"; "name", "value" pairs, NULL-terminated. */
int master_service_delivery_options(const MasterService *s, int64_t time_limit, char ***ret);

const char *master_command_to_string(MasterCommand c);
MasterCommand master_command_from_string(const char *s);

/* An "inet ... smtpd" line as systemd listens for it: the socket's FileDescriptorName= (ret_name,
 * MASTER_SOCKET_NAME_MAX bytes): "smtp", "submission" or "smtps" for those ports (by name or number),
 * "smtpd-<service>" with ':' and other characters systemd does not allow as '_' for any other; and the
 * ListenStream= value (ret_listen, MASTER_LISTEN_MAX bytes): "host:port", or "" for one of the three
 * without a host (their units' own addresses). -ENOENT for a line that is not inet smtpd, -EINVAL for a
 * port that is neither a number nor a name in /etc/services. */
#define MASTER_SOCKET_NAME_MAX 128U
#define MASTER_LISTEN_MAX 160U
int master_service_smtpd_socket(const MasterService *s, char *ret_name, char *ret_listen);
