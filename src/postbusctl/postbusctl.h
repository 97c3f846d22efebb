/* postbusctl.h: the control tool's shared state (options) and its verbs. Private to postbusctl. */
#pragma once

#include <stdbool.h>
#include <sysexits.h>

#include "macro.h"

/* Options, set by main() before a verb runs. */
extern bool arg_json;           /* queue: JSON lines instead of a table */
extern bool arg_aliases;        /* map build: aliases(5) format */
extern bool arg_defaults;       /* config: defaults only */
extern bool arg_non_default;    /* config: only parameters set in main.cf */
extern const char *arg_config;  /* config: main.cf to read (NULL: the installed one) */

/* Each verb gets its own name in argv[0] and returns the process exit status: 0, or a sysexits.h
 * code (map query: 1 when the key is not found and 2 on errors, as postmap -q). */
int verb_map(int argc, char **argv);
int verb_config(int argc, char **argv);
int verb_queue(int argc, char **argv);

/* The exit status for a negative errno from the library. */
int exit_status_from_errno(int r);
