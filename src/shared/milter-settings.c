/* milter-settings.c: the milter parameters of main.cf, checked once when smtpd or pickup starts, as the
 * milter client (milter.c) takes them. */
#include <netdb.h>
#include <stdlib.h>
#include <string.h>
#include <sys/un.h>

#include "daemon.h"
#include "log.h"
#include "milter.h"
#include "string-util.h"

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

const char *milter_config_macro(const Config *config, const char *name) {
        if (streq(name, "j"))
                return config->myhostname;
        if (streq(name, "{daemon_name}"))
                return config->milter_macro_daemon_name;
        if (streq(name, "v"))
                return config->milter_macro_v;
        return NULL;
}

void milter_settings_done(MilterSettings *s) {
        s->milters = strv_free(s->milters);
        s->addresses = mfree(s->addresses);
        s->address_lens = mfree(s->address_lens);
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

static int spec_address(const char *spec, struct sockaddr_storage *ret, socklen_t *ret_len) {
        if (strncmp(spec, "unix:", 5) == 0 || strncmp(spec, "local:", 6) == 0) {
                struct sockaddr_un *un = (struct sockaddr_un *) ret;
                const char *path = strchr(spec, ':') + 1;

                if (strlen(path) >= sizeof un->sun_path || path[0] != '/')
                        return -EINVAL;
                *un = (struct sockaddr_un) { .sun_family = AF_UNIX };
                strcpy(un->sun_path, path);
                *ret_len = sizeof *un;
                return 0;
        }
        if (strncmp(spec, "inet:", 5) != 0)
                return -EINVAL;

        char host[256];
        const char *h = spec + 5, *port = strrchr(h, ':');
        struct addrinfo hints = { .ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV }, *ai = NULL;
        size_t n;

        if (!port)
                return -EINVAL;
        n = (size_t) (port - h);
        if (n >= 2 && h[0] == '[' && h[n - 1] == ']')
                h++, n -= 2;
        if (n == 0 || n >= sizeof host)
                return -EINVAL;
        memcpy(host, h, n);
        host[n] = '\0';
        /* A host name is looked up as Postfix does, through the system's resolver. */
        if (getaddrinfo(host, port + 1, &hints, &ai) != 0 || !ai)
                return -EHOSTUNREACH;
        memcpy(ret, ai->ai_addr, ai->ai_addrlen);
        *ret_len = ai->ai_addrlen;
        freeaddrinfo(ai);
        return 0;
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
        /* Host names are looked up once, here, as the role starts: a lookup never blocks a session. One
         * that fails leaves the milter unreachable, to its default action, and is said in the journal. */
        size_t n = strv_length(s.milters);
        s.addresses = calloc(MAX(n, 1U), sizeof(struct sockaddr_storage));
        s.address_lens = calloc(MAX(n, 1U), sizeof(socklen_t));
        if (!s.addresses || !s.address_lens) {
                milter_settings_done(&s);
                return log_oom();
        }
        for (size_t i = 0; i < n; i++)
                if (spec_address(s.milters[i], s.addresses + i, s.address_lens + i) < 0) {
                        log_warning("Milter %s: its host name cannot be looked up; milter_default_action applies "
                                    "to it until the next start", s.milters[i]);
                        s.address_lens[i] = 0;
                }
        *ret = s;
        return 0;
}
