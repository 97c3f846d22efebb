/* postbusctl.h: the control tool's shared state (options) and its verbs. Private to postbusctl. */
#pragma once

#include <stdbool.h>
#include <sysexits.h>
#include <systemd/sd-bus.h>

#include "macro.h"

/* Options, set by main() before a verb runs. */
extern bool arg_json;           /* queue: JSON lines instead of a table */
extern bool arg_aliases;        /* map build: aliases(5) format */
extern bool arg_defaults;       /* config: defaults only */
extern bool arg_non_default;    /* config: only parameters set in main.cf */
extern bool arg_force;          /* tls new-server-cert: replace existing files */
extern const char *arg_config;  /* config: main.cf to read (NULL: the installed one) */
/* queue list (and the commands that act on IDs, when given none): SelectMessages' filter */
extern const char *arg_queue;
extern const char *arg_sender;
extern const char *arg_recipient;
extern const char *arg_destination;
extern const char *arg_older_than;
extern const char *arg_reason;  /* also the text of queue bounce and queue pause */

/* Each verb gets its own name in argv[0] and returns the process exit status: 0, or a sysexits.h
 * code (map query: 1 when the key is not found and 2 on errors, as postmap -q). */
int verb_map(int argc, char **argv);
int verb_config(int argc, char **argv);
int verb_queue(int argc, char **argv);
int verb_tls(int argc, char **argv);
int verb_reload(int argc, char **argv);

/* The queue sub-commands, argv[0] their name (postbusctl-queue-control.c, postbusctl-watch.c). */
int queue_hold(int argc, char **argv);
int queue_release(int argc, char **argv);
int queue_requeue(int argc, char **argv);
int queue_delete(int argc, char **argv);
int queue_bounce(int argc, char **argv);
int queue_flush(int argc, char **argv);
int queue_pause(int argc, char **argv);
int queue_resume(int argc, char **argv);
int queue_destinations(int argc, char **argv);
int queue_hosts(int argc, char **argv);
int queue_watch(int argc, char **argv);

/* SelectMessages with the filter options (queue instead of --queue). Returns 0 with the IDs, or a
 * sysexits status after saying why. */
int queue_select(sd_bus *bus, const char *queue, char ***ret);

/* The exit status for a negative errno from the library. */
int exit_status_from_errno(int r);
