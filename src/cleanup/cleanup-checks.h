/* cleanup-checks.h: header_checks and body_checks, as Postfix: a list of tables (regexp:, pcre:, or any
 * other type) that each logical header, or each line of the body, is looked up in; the value of the first
 * match is an action ("REJECT text", "HOLD", ...). Runs in the cleanup process. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "table.h"

typedef enum CleanupCheckAction {
        CLEANUP_CHECK_NONE,     /* no rule matched */
        CLEANUP_CHECK_DUNNO,    /* DUNNO, OK: stop looking, change nothing */
        CLEANUP_CHECK_REJECT,
        CLEANUP_CHECK_DISCARD,
        CLEANUP_CHECK_HOLD,
        CLEANUP_CHECK_IGNORE,   /* the header or body line is removed */
        CLEANUP_CHECK_WARN,     /* logged, nothing else */
        CLEANUP_CHECK_FILTER,   /* FILTER transport:destination: the message's content filter */
        CLEANUP_CHECK_PREPEND,  /* PREPEND text: text goes in before the header or line */
        CLEANUP_CHECK_REPLACE,  /* REPLACE text: text takes the place of the header or line */
        _CLEANUP_CHECK_ACTION_MAX,
        _CLEANUP_CHECK_ACTION_INVALID = -EINVAL,
} CleanupCheckAction;

/* Opens a header_checks or body_checks list; a plain absolute path means regexp:, as it always did here. Errors as
 * table_open()'s (logged). */
int cleanup_checks_open(const char *value, TableList **ret);

/* A value found in a header_checks or body_checks table, "ACTION [text]": the action and the text after it (borrowed from
 * value; NULL when there is none). -EOPNOTSUPP for an action that is not one of the above, -EINVAL for a
 * FILTER without transport:destination, and for a PREPEND or REPLACE without text. Pure. */
int cleanup_check_action_parse(const char *value, CleanupCheckAction *ret_action, const char **ret_text);

const char *cleanup_check_action_to_string(CleanupCheckAction a);
