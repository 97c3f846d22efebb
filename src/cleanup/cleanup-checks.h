/* cleanup-checks.h: header_checks, Postfix's regexp_table(5) syntax: "/regex/flags ACTION text" rules in a
 * file, POSIX extended regular expressions, tried in order against each logical header; the first
 * match decides. */
#pragma once

#include <regex.h>
#include <stdbool.h>
#include <stddef.h>

#include "macro.h"

typedef enum CleanupCheckAction {
        CLEANUP_CHECK_NONE,     /* no rule matched */
        CLEANUP_CHECK_DUNNO,    /* DUNNO, OK: stop looking, change nothing */
        CLEANUP_CHECK_REJECT,
        CLEANUP_CHECK_DISCARD,
        CLEANUP_CHECK_HOLD,
        CLEANUP_CHECK_IGNORE,   /* the header is removed */
        CLEANUP_CHECK_WARN,     /* logged, nothing else */
        CLEANUP_CHECK_FILTER,   /* FILTER transport:destination: the message's content filter */
        _CLEANUP_CHECK_ACTION_MAX,
        _CLEANUP_CHECK_ACTION_INVALID = -EINVAL,
} CleanupCheckAction;

typedef struct CleanupCheckRule {
        regex_t regex;
        bool negate;            /* !/regex/: matches what does not match */
        CleanupCheckAction action;
        char *text;             /* the optional text after the action */
        unsigned line;
} CleanupCheckRule;

typedef struct CleanupChecks {
        char *path;
        CleanupCheckRule *rules;
        size_t n_rules;
} CleanupChecks;

/* Parses the rules of one file (text, named path for messages). Errors are logged as "path:line: ..."
 * and return -EINVAL: a line that is not a rule, a bad regular expression, an unknown flag or action. */
int cleanup_checks_parse(const char *text, const char *path, CleanupChecks **ret);
/* Loads "regexp:/path" (or a plain path); -EPROTONOSUPPORT for another table type. */
int cleanup_checks_load(const char *spec, CleanupChecks **ret);
CleanupChecks *cleanup_checks_free(CleanupChecks *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(CleanupChecks *, cleanup_checks_free);

/* The first rule matching header (a whole logical header, NUL-terminated), or NULL. */
const CleanupCheckRule *cleanup_checks_match(const CleanupChecks *c, const char *header);

const char *cleanup_check_action_to_string(CleanupCheckAction a);
