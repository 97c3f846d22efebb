/* header-checks.h: header_checks and body_checks, as Postfix: a list of tables (regexp:, pcre:, or any
 * other type) that each logical header, or each line of the body, is looked up in; the value of the first
 * match is an action ("REJECT text", "HOLD", ...). Used by cleanup, and by smtp for smtp_*_checks. */
#pragma once

#include <stdbool.h>
#include <stddef.h>

#include "macro.h"
#include "table.h"

typedef enum HeaderCheckAction {
        HEADER_CHECK_NONE,     /* no rule matched */
        HEADER_CHECK_DUNNO,    /* DUNNO, OK: stop looking, change nothing */
        HEADER_CHECK_REJECT,
        HEADER_CHECK_DISCARD,
        HEADER_CHECK_HOLD,
        HEADER_CHECK_IGNORE,   /* the header or body line is removed */
        HEADER_CHECK_WARN,     /* logged, nothing else */
        HEADER_CHECK_FILTER,   /* FILTER transport:destination: the message's content filter */
        HEADER_CHECK_PREPEND,  /* PREPEND text: text goes in before the header or line */
        HEADER_CHECK_REPLACE,  /* REPLACE text: text takes the place of the header or line */
        _HEADER_CHECK_ACTION_MAX,
        _HEADER_CHECK_ACTION_INVALID = -EINVAL,
} HeaderCheckAction;

/* Opens a header_checks or body_checks list; a plain absolute path means regexp:, as it always did here. Errors as
 * table_open()'s (logged). */
int header_checks_open(const char *value, TableList **ret);

/* A value found in a header_checks or body_checks table, "ACTION [text]": the action and the text after it (borrowed from
 * value; NULL when there is none). -EOPNOTSUPP for an action that is not one of the above, -EINVAL for a
 * FILTER without transport:destination, and for a PREPEND or REPLACE without text. Pure. */
int header_check_action_parse(const char *value, HeaderCheckAction *ret_action, const char **ret_text);

const char *header_check_action_to_string(HeaderCheckAction a);
