/* header-checks.c: header_checks and body_checks (cleanup's, and smtp's smtp_*_checks): opening the tables, and
 * reading the action a matching rule gives. */
#include <ctype.h>
#include <strings.h>

#include "header-checks.h"
#include "config.h"
#include "log.h"
#include "string-util.h"

static const char *const action_names[_HEADER_CHECK_ACTION_MAX] = {
        [HEADER_CHECK_NONE] = "none",
        [HEADER_CHECK_DUNNO] = "DUNNO",
        [HEADER_CHECK_REJECT] = "REJECT",
        [HEADER_CHECK_DISCARD] = "DISCARD",
        [HEADER_CHECK_HOLD] = "HOLD",
        [HEADER_CHECK_IGNORE] = "IGNORE",
        [HEADER_CHECK_WARN] = "WARN",
        [HEADER_CHECK_FILTER] = "FILTER",
        [HEADER_CHECK_PREPEND] = "PREPEND",
        [HEADER_CHECK_REPLACE] = "REPLACE",
};

const char *header_check_action_to_string(HeaderCheckAction a) {
        return a >= 0 && a < _HEADER_CHECK_ACTION_MAX ? action_names[a] : NULL;
}

int header_checks_open(const char *value, TableList **ret) {
        _cleanup_strv_free_ char **items = NULL;
        _cleanup_free_ char *list = NULL;
        size_t len = 0;
        int r;

        r = config_split_list(value, &items);
        if (r < 0)
                return r;
        /* Rebuilt with "regexp:" before each plain path. */
        for (char **i = items; *i; i++)
                len += strlen(*i) + 9;
        list = malloc(len + 1);
        if (!list)
                return -ENOMEM;
        list[0] = '\0';
        for (char **i = items; *i; i++) {
                if ((*i)[0] == '/')
                        strcat(list, "regexp:");
                strcat(list, *i);
                strcat(list, ",");
        }
        return table_list_open(list, ret);
}

int header_check_action_parse(const char *value, HeaderCheckAction *ret_action, const char **ret_text) {
        const char *p = value, *action;
        size_t alen;

        while (isspace((unsigned char) *p))
                p++;
        action = p;
        while (*p && !isspace((unsigned char) *p))
                p++;
        alen = (size_t) (p - action);
        while (isspace((unsigned char) *p))
                p++;

        HeaderCheckAction a = _HEADER_CHECK_ACTION_INVALID;
        for (HeaderCheckAction i = HEADER_CHECK_DUNNO; i < _HEADER_CHECK_ACTION_MAX; i++)
                if (strlen(action_names[i]) == alen && strncasecmp(action, action_names[i], alen) == 0)
                        a = i;
        if (alen == 2 && strncasecmp(action, "OK", 2) == 0)
                a = HEADER_CHECK_DUNNO;
        if (a < 0)
                return -EOPNOTSUPP;
        /* FILTER needs its transport:destination, a transport name before the colon. */
        if (a == HEADER_CHECK_FILTER) {
                const char *colon = strchr(p, ':');
                if (!colon || colon == p || strpbrk(p, " \t") ||
                    strspn(p, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.") != (size_t) (colon - p))
                        return -EINVAL;
        }
        if ((a == HEADER_CHECK_PREPEND || a == HEADER_CHECK_REPLACE) && !*p)
                return -EINVAL;
        *ret_action = a;
        *ret_text = *p ? p : NULL;
        return 0;
}
