/* milter-settings.c: the milter parameters of main.cf, checked once when smtpd or pickup starts, as the
 * milter client (milter.c) takes them. */
#include <stdlib.h>
#include <string.h>

#include "daemon.h"
#include "log.h"
#include "milter.h"

static const char *const action_names[_MILTER_ACTION_MAX] = {
        [MILTER_ACTION_TEMPFAIL] = "tempfail",
        [MILTER_ACTION_ACCEPT] = "accept",
        [MILTER_ACTION_REJECT] = "reject",
        [MILTER_ACTION_QUARANTINE] = "quarantine",
};

MilterAction milter_action_from_string(const char *s) {
        for (size_t i = 0; i < _MILTER_ACTION_MAX; i++)
                if (s && strcmp(s, action_names[i]) == 0)
                        return (MilterAction) i;
        return _MILTER_ACTION_INVALID;
}

void milter_settings_done(MilterSettings *s) {
        s->milters = strv_free(s->milters);
        for (size_t i = 0; i < _MILTER_STAGE_MAX; i++)
                s->macros[i] = strv_free(s->macros[i]);
}

static bool spec_valid(const char *s) {
        if (strncmp(s, "unix:/", 6) == 0 || strncmp(s, "local:/", 7) == 0)
                return true;
        /* inet:host:port, inet:[v6]:port; the port is a number. */
        if (strncmp(s, "inet:", 5) != 0)
                return false;
        const char *port = strrchr(s + 5, ':');
        return port && port > s + 5 && port[1] && strspn(port + 1, "0123456789") == strlen(port + 1);
}

int milter_settings_load(const Config *config, const char *list, MilterSettings *ret) {
        MilterSettings s = {
                .protocol = (uint32_t) config->milter_protocol,
                .connect_timeout = (uint64_t) config->milter_connect_timeout * USEC_PER_SEC,
                .command_timeout = (uint64_t) config->milter_command_timeout * USEC_PER_SEC,
                .content_timeout = (uint64_t) config->milter_content_timeout * USEC_PER_SEC,
                .size_max = (size_t) config->message_size_limit,
        };
        const char *macros[_MILTER_STAGE_MAX] = {
                [MILTER_STAGE_CONNECT] = config->milter_connect_macros,
                [MILTER_STAGE_HELO] = config->milter_helo_macros,
                [MILTER_STAGE_MAIL] = config->milter_mail_macros,
                [MILTER_STAGE_RCPT] = config->milter_rcpt_macros,
                [MILTER_STAGE_DATA] = config->milter_data_macros,
                [MILTER_STAGE_EOM] = config->milter_end_of_data_macros,
                [MILTER_STAGE_EOH] = config->milter_end_of_header_macros,
        };
        int r;

        s.default_action = milter_action_from_string(config->milter_default_action);
        if (s.default_action < 0) {
                log_error("milter_default_action = %s: not one of tempfail, accept, reject, quarantine",
                          config->milter_default_action);
                return -EINVAL;
        }
        r = config_split_list(list, &s.milters);
        for (size_t i = 0; r >= 0 && i < _MILTER_STAGE_MAX; i++)
                r = config_split_list(macros[i], &s.macros[i]);
        if (r < 0) {
                milter_settings_done(&s);
                return log_error_errno(r, "Failed to read the milter parameters: %m");
        }
        for (char **m = s.milters; *m; m++)
                if (!spec_valid(*m)) {
                        log_error("Milter %s: not inet:host:port or unix:/path", *m);
                        milter_settings_done(&s);
                        return -EINVAL;
                }
        *ret = s;
        return 0;
}
