/* smtpd.c: the SMTP server role: receives mail from the network and hands each message to cleanup.
 *
 * SECURITY: smtpd talks to anyone who can reach port 25 and trusts nothing they send. It runs as the
 * unprivileged user postbus-smtpd without capabilities: systemd binds the port and passes the socket. Peer
 * input is held in a bounded buffer per session (line_length_limit plus one read), parsed only by the
 * pure functions of smtpd-protocol.c, and limited in line length, message size, recipients, errors,
 * junk commands, idle time and session time; smtpd_session_limit bounds the sessions at once, and the
 * smtpd_client_* limits the sessions, new sessions, messages and recipients of one client address, in a
 * table bounded by smtpd_client_table_limit. Message content (DATA or BDAT) is stored with LF line ends
 * only, every CRLF, bare LF and bare CR taken as a line end, so that nothing in the queue can end a
 * message for another MTA where smtpd saw none (SMTP smuggling; smtpd_forbid_bare_newline). smtpd
 * writes no files: a message goes into an anonymous memory file, sealed and passed to cleanup over
 * $rundir/cleanup, and only cleanup's answer that the message is durable makes smtpd reply 250.
 * It trusts cleanup, a local role behind a socket that only postbus may open, for the queue ID and
 * for rejection texts, and still checks both before passing them on. It reads main.cf, master.cf, the user
 * database (getpwnam(), to tell local recipients that exist) and the GDBM tables its restriction lists
 * and local_recipient_maps name. For reject_rbl_client it sends DNS queries over UDP to the name
 * servers of /etc/resolv.conf and believes only replies from them to its random ID and exact question,
 * parsed by the pure parser of smtpd-dnsbl.c; a TXT text is reduced to printable ASCII before it goes
 * into a reply. It reads the TLS certificate and private key at start (smtpd_tls_*: the key must be
 * readable by postbus) and speaks TLS 1.2 or later through OpenSSL; plaintext a client pipelines after
 * STARTTLS is discarded. For AUTH it trusts Dovecot's auth service, behind smtpd_sasl_path, to check
 * passwords; AUTH is offered and accepted only over TLS, the client's base64 is checked before it is
 * passed on, and Dovecot's answers are bounded and parsed by the pure parser of smtpd-sasl.c. */
#include <limits.h>
#include <sys/socket.h>

#include "log.h"
#include "master-cf.h"
#include "postbus-config.h"
#include "smtpd.h"
#include "string-util.h"

static const char *const service_names[_SMTPD_SERVICE_MAX] = {
        [SMTPD_SERVICE_SMTP] = "smtp",
        [SMTPD_SERVICE_SUBMISSION] = "submission",
        [SMTPD_SERVICE_SMTPS] = "smtps",
};

const char *smtpd_service_to_string(SmtpdService s) {
        return s >= 0 && s < _SMTPD_SERVICE_MAX ? service_names[s] : NULL;
}

SmtpdService smtpd_service_from_string(const char *s) {
        for (int i = 0; s && i < _SMTPD_SERVICE_MAX; i++)
                if (streq(s, service_names[i]))
                        return (SmtpdService) i;
        return _SMTPD_SERVICE_INVALID;
}

/* Each service's own defaults, as Postfix's master.cf sets them for submission and smtps; the -o options
 * of the service's master.cf line come after these. */
static const char *const *const service_defaults[_SMTPD_SERVICE_MAX] = {
        [SMTPD_SERVICE_SMTP] = NULL,
        [SMTPD_SERVICE_SUBMISSION] = (const char *const[]) {
                "smtpd_tls_security_level", "encrypt",
                "smtpd_sasl_auth_enable", "yes",
                NULL,
        },
        [SMTPD_SERVICE_SMTPS] = (const char *const[]) {
                "smtpd_tls_wrappermode", "yes",
                "smtpd_sasl_auth_enable", "yes",
                NULL,
        },
};

/* The parameters a service's -o may set ("-o smtpd_sasl_auth_enable=yes"): those that sessions read from
 * their listener's config. Any other is the same for every service of the process, and an -o of it is
 * warned about and ignored. */
static const char *const service_params[] = {
        "smtpd_banner",
        "smtpd_tls_cert_file",
        "smtpd_tls_key_file",
        "smtpd_tls_security_level",
        "smtpd_tls_wrappermode",
        "smtpd_sasl_auth_enable",
        "smtpd_tls_auth_only",
        "smtpd_sasl_security_options",
        "broken_sasl_auth_clients",
        "smtpd_sasl_type",
        "smtpd_sasl_path",
        "smtpd_client_restrictions",
        "smtpd_helo_restrictions",
        "smtpd_sender_restrictions",
        "smtpd_relay_restrictions",
        "smtpd_recipient_restrictions",
        "smtpd_data_restrictions",
        "smtpd_end_of_data_restrictions",
        "smtpd_sender_login_maps",
        "content_filter",
        "smtpd_milters",
        "receive_override_options",
        "smtpd_discard_ehlo_keywords",
        "smtpd_discard_ehlo_keyword_address_maps",
        "smtpd_reject_footer",
        "smtpd_reject_footer_maps",
};

static bool service_param_allowed(const char *name) {
        for (size_t i = 0; i < ELEMENTSOF(service_params); i++)
                if (streq(name, service_params[i]))
                        return true;
        return false;
}

/* The first master.cf inet smtpd line whose socket has this FileDescriptorName=, or NULL. */
static const MasterService *master_line(SmtpdConf *conf, const char *fd_name) {
        for (size_t i = 0; i < conf->master->n_services; i++) {
                const MasterService *m = conf->master->services + i;
                char name[MASTER_SOCKET_NAME_MAX], listen[MASTER_LISTEN_MAX];

                if (master_service_smtpd_socket(m, name, listen) >= 0 && streq(name, fd_name))
                        return m;
        }
        return NULL;
}

/* The -o options of the service's master.cf line (none without one), those smtpd takes per service. */
static int service_overrides(SmtpdConf *conf, const MasterService *m, char ***ret, char *where, size_t size) {
        _cleanup_strv_free_ char **l = calloc(1, sizeof(char *));
        size_t n = 0;

        if (!l)
                return -ENOMEM;
        (void) snprintf(where, size, "%s:%u", conf->master->path, m ? m->line : 0);
        for (char **o = m ? m->overrides : NULL; o && *o; o++) {
                const char *eq = strchr(*o, '=');
                _cleanup_free_ char *name = strndup(*o, eq ? (size_t) (eq - *o) : strlen(*o));

                if (!name)
                        return -ENOMEM;
                if (config_param_find(name) && !service_param_allowed(name)) {
                        log_warning("%s: -o %s: smtpd takes %s from main.cf for every service, ignoring", where,
                                    *o, name);
                        continue;
                }
                if (strv_push(&l, &n, strdup(*o)) < 0)
                        return -ENOMEM;
        }
        *ret = TAKE_PTR(l);
        return 0;
}

/* receive_override_options of a service: its value is the main.cf line's, or the -o's of the master.cf line at
 * where. no_unknown_recipient_checks makes reject_unlisted_recipient (smtpd_reject_unlisted_recipient, or written
 * in a list) refuse nobody there, as Postfix skips it (smtpd-restriction-checks.c); no_milters asks none of
 * smtpd_milters. The options that are cleanup's go with each message (smtpd-submit.c). */
static int listener_receive_override(SmtpdListener *l, const char *where) {
        char buf[PATH_MAX + 32];
        int r;

        if (l->config->lines[CONFIG_PARAM_receive_override_options] > 0)
                where = config_where(l->config, CONFIG_PARAM_receive_override_options, buf, sizeof buf);
        r = receive_override_from_config(l->config, where, &l->receive_override);
        if (r < 0)
                return r;
        return 0;
}

/* Builds a service's view of the configuration and its TLS context: one of the three built in, or another
 * inet smtpd line of master.cf. *ret is NULL for a socket of no service (warned about). -EINVAL: a
 * configuration error, logged with file and line. */
static int listener_setup(Smtpd *server, SmtpdConf *conf, const char *fd_name, SmtpdListener **ret) {
        SmtpdService service = smtpd_service_from_string(fd_name);
        const MasterService *m = master_line(conf, fd_name);
        const Config *base = conf->config;
        _cleanup_strv_free_ char **overrides = NULL;
        char where[PATH_MAX + 32];
        SmtpdListener *l;
        const Config *c;
        int r;

        *ret = NULL;
        if (service < 0 && !m) {
                log_warning("Socket named \"%s\" is not smtp, submission, smtps or an inet smtpd service of %s, "
                            "ignoring.", fd_name, conf->master->path);
                return 0;
        }
        if (conf->n_listeners >= SMTPD_LISTENERS_MAX || strlen(fd_name) >= sizeof l->fd_name) {
                log_warning("Socket named \"%s\": more services than smtpd serves (%u), ignoring.", fd_name,
                            SMTPD_LISTENERS_MAX);
                return 0;
        }
        l = conf->listeners + conf->n_listeners++;
        l->server = server;
        l->conf = conf;
        l->service = service >= 0 ? service : SMTPD_SERVICE_SMTP;
        strcpy(l->fd_name, fd_name);
        l->name = l->fd_name;
        r = service_overrides(conf, m, &overrides, where, sizeof where);
        if (r < 0)
                return log_oom();
        r = config_for_service(base, service >= 0 ? service_defaults[service] : NULL, overrides, where, &l->config);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return -EINVAL;
        r = listener_receive_override(l, where);
        if (r < 0)
                return r;
        c = l->config;
        /* Each service has its own milters, as a master.cf "-o smtpd_milters=" gives them in Postfix (a
         * re-injection port with none, or receive_override_options = no_milters). */
        r = milter_settings_load(c, l->receive_override & RECEIVE_OVERRIDE_NO_MILTERS ? "" : c->smtpd_milters,
                                 &l->milters);
        if (r < 0)
                return r;

        l->tls_level = smtpd_tls_level_from_string(c->smtpd_tls_security_level);
        if (l->tls_level < 0) {
                log_error("%s: bad value for %s: \"%s\" (none, may or encrypt)",
                          config_where(c, CONFIG_PARAM_smtpd_tls_security_level, where, sizeof where),
                          "smtpd_tls_security_level", c->smtpd_tls_security_level);
                return -EINVAL;
        }
        if (!streq(c->smtpd_sasl_type, "dovecot")) {
                log_error("%s: smtpd_sasl_type = %s is not supported (only dovecot)",
                          config_where(c, CONFIG_PARAM_smtpd_sasl_type, where, sizeof where), c->smtpd_sasl_type);
                return -EINVAL;
        }
        if (c->smtpd_sasl_path[0] != '/') {
                log_error("%s: smtpd_sasl_path must be the absolute path of Dovecot's auth socket",
                          config_where(c, CONFIG_PARAM_smtpd_sasl_path, where, sizeof where));
                return -EINVAL;
        }
        r = table_list_open(c->smtpd_discard_ehlo_keyword_address_maps, &l->ehlo_discard_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("%s: smtpd_discard_ehlo_keyword_address_maps: cannot use \"%s\"",
                          config_where(c, CONFIG_PARAM_smtpd_discard_ehlo_keyword_address_maps, where, sizeof where),
                          c->smtpd_discard_ehlo_keyword_address_maps);
                return -EINVAL;
        }
        r = table_list_open(c->smtpd_reject_footer_maps, &l->reject_footer_maps);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0) {
                log_error("%s: smtpd_reject_footer_maps: cannot use \"%s\"",
                          config_where(c, CONFIG_PARAM_smtpd_reject_footer_maps, where, sizeof where),
                          c->smtpd_reject_footer_maps);
                return -EINVAL;
        }
        /* The restriction lists (smtpd-restrictions.c): a bad list stops the role with file and line. */
        r = smtpd_checks_new(c, &conf->mynetworks, conf->mydestination, server->resolver, &l->checks);
        if (r < 0)
                return r;
        smtpd_checks_set_policy_pool(l->checks, server->policy);
        smtpd_checks_set_event(l->checks, server->daemon->event);
        l->wrappermode = c->smtpd_tls_wrappermode;
        l->sasl = c->smtpd_sasl_auth_enable;
        if (!isempty(c->smtpd_tls_cert_file)) {
                r = smtpd_tls_context_new(c->smtpd_tls_cert_file,
                                          isempty(c->smtpd_tls_key_file) ? c->smtpd_tls_cert_file
                                                                         : c->smtpd_tls_key_file,
                                          config_where(c, CONFIG_PARAM_smtpd_tls_cert_file, where, sizeof where),
                                          &l->tls);
                if (r < 0)
                        return -EINVAL;
        } else if (l->wrappermode)
                log_warning("%s: no certificate (smtpd_tls_cert_file is empty): every connection is refused.",
                            l->name);
        else if (l->tls_level == SMTPD_TLS_ENCRYPT)
                log_warning("%s: smtpd_tls_security_level = encrypt without a certificate (smtpd_tls_cert_file): "
                            "STARTTLS and AUTH are not offered and all mail is refused.", l->name);
        *ret = l;
        return 0;
}

SmtpdConf *smtpd_conf_ref(SmtpdConf *conf) {
        if (conf)
                conf->n_ref++;
        return conf;
}

SmtpdConf *smtpd_conf_unref(SmtpdConf *conf) {
        if (!conf || --conf->n_ref > 0)
                return NULL;
        for (size_t i = 0; i < conf->n_listeners; i++) {
                SSL_CTX_free(conf->listeners[i].tls);
                smtpd_checks_free(conf->listeners[i].checks);
                table_list_free(conf->listeners[i].ehlo_discard_maps);
                table_list_free(conf->listeners[i].reject_footer_maps);
                config_free(conf->listeners[i].config);
                milter_settings_done(&conf->listeners[i].milters);
        }
        master_config_free(conf->master);
        smtpd_networks_done(&conf->mynetworks);
        smtpd_networks_done(&conf->limit_exceptions);
        smtpd_networks_done(&conf->verp_clients);
        smtpd_networks_done(&conf->bare_newline_exclusions);
        strv_free(conf->mydestination);
        config_free(conf->config);
        free(conf);
        return NULL;
}
DEFINE_TRIVIAL_CLEANUP_FUNC(SmtpdConf *, smtpd_conf_unref);

static void smtpd_free(Smtpd *server) {
        if (!server)
                return;
        smtpd_sessions_free(server);
        smtpd_conf_unref(server->conf);         /* after the sessions, which hold it too */
        bus_client_free(server->cleanup);
        resolver_free(server->resolver);        /* after the sessions and checks whose lookups it runs */
        smtpd_policy_pool_free(server->policy); /* after the sessions, whose requests it may hold */
        for (size_t i = 0; i < server->n_listen; i++)
                sd_event_source_disable_unref(server->listen_sources[i]);
        free(server->listen_sources);
        sd_event_source_disable_unref(server->accept_retry);
        sd_event_source_disable_unref(server->anvil_timer);
        smtpd_anvil_free(server->anvil);
        free(server);
}

/* One of the address list parameters (mynetworks and the like), whose value is value. */
static int networks_parse(const Config *config, ConfigParamId id, const char *value, SmtpdNetworks *ret) {
        char where[PATH_MAX + 32];
        int r;

        r = smtpd_networks_parse(value, config_where(config, id, where, sizeof where), ret);
        if (r == -ENOMEM)
                return log_oom();
        if (r < 0)
                return -EINVAL;         /* logged with file and line; a bad main.cf is not retried */
        return 0;
}

/* inet_interfaces: systemd, not smtpd, chooses the listening addresses (ListenStream= of the socket units),
 * so the parameter cannot change them; a value other than "all" is compared with the sockets smtpd was
 * given, and a socket it does not describe is warned about. Host names other than localhost are not looked up. */
static void check_inet_interfaces(Daemon *d) {
        const char *value = d->config->inet_interfaces;
        _cleanup_strv_free_ char **l = NULL;
        char where[PATH_MAX + 32];

        if (streq(value, "all") || config_split_list(value, &l) < 0)
                return;
        (void) config_where(d->config, CONFIG_PARAM_inet_interfaces, where, sizeof where);
        for (int i = 0; i < d->n_fds; i++) {
                struct sockaddr_storage ss;
                socklen_t len = sizeof ss;
                SmtpdAddress a;
                bool described = false, comparable = true;

                if (getsockname(d->fds[i], (struct sockaddr *) &ss, &len) < 0 ||
                    smtpd_address_from_sockaddr((struct sockaddr *) &ss, len, &a) < 0 || a.family == AF_UNSPEC)
                        continue;
                for (char **item = l; *item && !described; item++) {
                        SmtpdNetwork n[2];
                        size_t k = 1;

                        if (streq(*item, "loopback-only") || streq(*item, "localhost")) {
                                (void) smtpd_network_parse("127.0.0.0/8", n);
                                (void) smtpd_network_parse("[::1]", n + 1);
                                k = 2;
                        } else if (smtpd_network_parse(*item, n) < 0) {
                                comparable = false;
                                continue;
                        }
                        described = smtpd_networks_match(&(SmtpdNetworks) { .items = n, .n = k }, &a);
                }
                if (!described && comparable)
                        log_warning("%s: inet_interfaces = %s, but smtpd listens on %s port %u: the listening "
                                    "addresses are ListenStream= of postbus-smtpd*.socket (systemctl edit), "
                                    "ignoring.", where, value, a.text, a.port);
        }
}

/* The configuration-derived state of config (main.cf; master.cf beside it), with a service for each name
 * in fd_names (those of the passed sockets). -EINVAL: a configuration error, logged with file and line. */
static int smtpd_conf_new(Smtpd *server, Config *config, char **fd_names, int n_fds, SmtpdConf **ret) {
        _cleanup_(smtpd_conf_unrefp) SmtpdConf *conf = NULL;
        char where[PATH_MAX + 32];
        int r;

        conf = calloc(1, sizeof(SmtpdConf));
        if (!conf)
                return log_oom();
        conf->n_ref = 1;
        conf->config = config_ref(config);

        r = config_split_list(config->mydestination, &conf->mydestination);
        if (r < 0)
                return log_oom();
        r = networks_parse(config, CONFIG_PARAM_mynetworks, config->mynetworks, &conf->mynetworks);
        if (r < 0)
                return r;
        r = networks_parse(config, CONFIG_PARAM_smtpd_client_event_limit_exceptions,
                           config->smtpd_client_event_limit_exceptions, &conf->limit_exceptions);
        if (r < 0)
                return r;
        r = networks_parse(config, CONFIG_PARAM_smtpd_authorized_verp_clients,
                           config->smtpd_authorized_verp_clients, &conf->verp_clients);
        if (r < 0)
                return r;
        r = networks_parse(config, CONFIG_PARAM_smtpd_forbid_bare_newline_exclusions,
                           config->smtpd_forbid_bare_newline_exclusions, &conf->bare_newline_exclusions);
        if (r < 0)
                return r;
        if (streq(config->smtpd_forbid_bare_newline, "reject") || streq(config->smtpd_forbid_bare_newline, "yes"))
                conf->reject_bare_lf = true;
        else if (!streq(config->smtpd_forbid_bare_newline, "normalize"))
                return log_error_errno(EINVAL, "%s: smtpd_forbid_bare_newline = %s: must be normalize, reject or yes.",
                                       config_where(config, CONFIG_PARAM_smtpd_forbid_bare_newline, where,
                                                    sizeof where),
                                       config->smtpd_forbid_bare_newline);

        /* master.cf beside main.cf: the -o options of the smtp, submission and smtps lines. */
        r = master_config_load_beside(config->path, &conf->master);
        if (r < 0)
                return r;
        for (size_t i = 0; i < conf->master->n_services; i++) {
                const MasterService *m = conf->master->services + i;
                char name[MASTER_SOCKET_NAME_MAX], listen[MASTER_LISTEN_MAX];
                if (master_service_smtpd_socket(m, name, listen) == -EINVAL)
                        log_warning("%s:%u: %s: not a port smtpd can listen on, ignoring", conf->master->path,
                                    m->line, m->name);
        }

        /* Every socket named "smtp", "submission", "smtps" or for another master.cf service: a unit may list
         * several ListenStream= addresses, and each service is set up once, for the first of its sockets. */
        for (int i = 0; i < n_fds; i++) {
                const char *fd_name = fd_names ? strna(fd_names[i]) : "n/a";
                SmtpdListener *l = NULL;

                for (size_t k = 0; k < conf->n_listeners && !l; k++)
                        if (streq(conf->listeners[k].fd_name, fd_name))
                                l = conf->listeners + k;
                if (!l) {
                        r = listener_setup(server, conf, fd_name, &l);
                        if (r < 0)
                                return r;
                }
        }
        *ret = TAKE_PTR(conf);
        return 0;
}

static SmtpdListener *conf_listener(SmtpdConf *conf, const char *fd_name) {
        for (size_t k = 0; k < conf->n_listeners; k++)
                if (streq(conf->listeners[k].fd_name, fd_name))
                        return conf->listeners + k;
        return NULL;
}

static int smtpd_setup(Daemon *d) {
        Smtpd *server;
        int r;

        server = calloc(1, sizeof(Smtpd));
        if (!server)
                return log_oom();
        d->userdata = server;   /* freed by smtpd_done(), also when set-up fails half way */
        server->daemon = d;
        server->config = d->config;
        server->listen_sources = calloc((size_t) d->n_fds, sizeof(sd_event_source *));
        if (!server->listen_sources)
                return log_oom();

        r = smtpd_anvil_new((size_t) d->config->smtpd_client_table_limit,
                            (uint64_t) d->config->anvil_rate_time_unit * USEC_PER_SEC, &server->anvil);
        if (r < 0)
                return log_oom();
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/cleanup", &server->cleanup);
        if (r < 0)
                return log_oom();
        /* Reads /etc/resolv.conf once; c-ares opens its sockets only for lookups. */
        r = resolver_new(d->event, &server->resolver);
        if (r < 0)
                return r == -ENOMEM ? log_oom() : r;
        /* check_policy_service: no connection until a session asks. */
        const SmtpdPolicySettings policy = {
                .timeout_usec = (uint64_t) d->config->smtpd_policy_service_timeout * USEC_PER_SEC,
                .max_idle_usec = (uint64_t) d->config->smtpd_policy_service_max_idle * USEC_PER_SEC,
                .max_ttl_usec = (uint64_t) d->config->smtpd_policy_service_max_ttl * USEC_PER_SEC,
                .retry_delay_usec = (uint64_t) d->config->smtpd_policy_service_retry_delay * USEC_PER_SEC,
                .try_limit = (unsigned) d->config->smtpd_policy_service_try_limit,
                .request_limit = (unsigned) d->config->smtpd_policy_service_request_limit,
        };
        r = smtpd_policy_pool_new(d->event, &policy, &server->policy);
        if (r < 0)
                return log_oom();

        r = smtpd_conf_new(server, d->config, d->fd_names, d->n_fds, &server->conf);
        if (r < 0)
                return r;
        for (int i = 0; i < d->n_fds; i++) {
                SmtpdListener *l = conf_listener(server->conf, d->fd_names ? strna(d->fd_names[i]) : "n/a");

                if (!l)
                        continue;
                r = smtpd_listen(l, d->fds[i]);
                if (r < 0)
                        return r;
        }
        check_inet_interfaces(d);
        if (server->n_listen == 0)
                return log_error_errno(ENOENT, "No socket named \"smtp\", \"submission\" or \"smtps\" was "
                                       "passed (FileDescriptorName=).");
        return 0;
}

/* systemctl reload: the new configuration serves the connections accepted from now on, on the same
 * listening sockets (never closed, so no client is refused); each session in progress keeps the one it
 * began with. The connection and rate counters, the policy service connections (smtpd_policy_service_*)
 * and the resolver stay as they were started. */
static int smtpd_reload(Daemon *d, Config *new) {
        Smtpd *server = d->userdata;
        _cleanup_(smtpd_conf_unrefp) SmtpdConf *conf = NULL;
        int r;

        r = smtpd_conf_new(server, new, d->fd_names, d->n_fds, &conf);
        if (r < 0)
                return r;
        /* Every socket served now must have its service in the new configuration too. */
        for (size_t i = 0; i < server->n_listen; i++) {
                SmtpdListener *old = sd_event_source_get_userdata(server->listen_sources[i]);
                if (!conf_listener(conf, old->fd_name))
                        return log_error_errno(EINVAL, "%s: no service for the socket named \"%s\" any more; "
                                               "restart smtpd to stop serving it.", conf->master->path,
                                               old->fd_name);
        }
        for (size_t i = 0; i < server->n_listen; i++) {
                SmtpdListener *old = sd_event_source_get_userdata(server->listen_sources[i]);
                (void) sd_event_source_set_userdata(server->listen_sources[i], conf_listener(conf, old->fd_name));
        }
        smtpd_conf_unref(server->conf);
        server->conf = TAKE_PTR(conf);
        server->config = new;
        return 0;
}

static void smtpd_done(Daemon *d) {
        smtpd_free(d->userdata);
        d->userdata = NULL;
}

static const DaemonSpec smtpd_spec = {
        .role = "smtpd",
        .may_exit_idle = true,
        .needs_sockets = true,
        .setup = smtpd_setup,
        .done = smtpd_done,
        .reload = smtpd_reload,
};

int main(int argc, char **argv) {
        return daemon_main(argc, argv, &smtpd_spec);
}
