/* receive-override.c: receive_override_options, the option names and their bits (receive-override.h). */
#include "log.h"
#include "receive-override.h"
#include "string-util.h"

static const ConfigFlagName receive_override_names[] = {
        { "no_unknown_recipient_checks", RECEIVE_OVERRIDE_NO_UNKNOWN_RECIPIENT_CHECKS },
        { "no_address_mappings", RECEIVE_OVERRIDE_NO_ADDRESS_MAPPINGS },
        { "no_header_body_checks", RECEIVE_OVERRIDE_NO_HEADER_BODY_CHECKS },
        { "no_milters", RECEIVE_OVERRIDE_NO_MILTERS },
};

int receive_override_parse(const char *value, unsigned *ret_mask, char **ret_bad) {
        return config_parse_flags(value, receive_override_names, ELEMENTSOF(receive_override_names), false, ret_mask,
                                  ret_bad);
}

const char *receive_override_format(unsigned mask, char buf[static RECEIVE_OVERRIDE_TEXT_MAX]) {
        size_t len = 0;

        buf[0] = '\0';
        for (size_t i = 0; i < ELEMENTSOF(receive_override_names); i++)
                if (mask & receive_override_names[i].flag)
                        len += (size_t) snprintf(buf + len, RECEIVE_OVERRIDE_TEXT_MAX - len, "%s%s",
                                                 len > 0 ? "," : "", receive_override_names[i].name);
        return buf;
}

int receive_override_from_config(const Config *c, const char *where, unsigned *ret_mask) {
        _cleanup_free_ char *bad = NULL;
        unsigned mask;
        int r;

        r = receive_override_parse(c->receive_override_options, &mask, &bad);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                _cleanup_free_ char *escaped = log_escape(bad, strlen(bad));
                log_error("%s: receive_override_options: unknown option \"%s\" (no_unknown_recipient_checks, "
                          "no_address_mappings, no_header_body_checks, no_milters)", where, strempty(escaped));
                return -EINVAL;
        }
        *ret_mask = mask;
        return 0;
}
