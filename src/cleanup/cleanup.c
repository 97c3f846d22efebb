/* cleanup.c: the cleanup role: the last step of receiving. Takes a message (a file descriptor plus its
 * envelope) from smtpd, adds the headers it lacks, writes it durably into the incoming queue and tells
 * qmgr its queue ID.
 *
 * SECURITY: runs as the unprivileged user postbus-cleanup, with the group postbus, which gives it incoming
 * and nothing else of the queue. It accepts connections only from root (local's forwarding), smtpd, pickup
 * and bounce (SO_PEERCRED at accept; the socket is 0660 postbus-cleanup:postbus-to-cleanup). It trusts
 * neither the envelope nor the content: addresses are checked, counts and sizes bounded, the content only
 * copied, never interpreted beyond the header names it looks for. It writes only below
 * queue_directory/incoming, and answers only once a file there and its queue ID are synced (by a few worker
 * threads, cleanup-sync.c, that make those system calls only, or in the loop for a job alone; the event loop
 * answers). It asks the rewrite role for the canonical form of addresses and reads canonical,
 * virtual alias and header_checks tables, which belong to root. */
#include <dirent.h>
#include <fcntl.h>

#include "address.h"
#include "cleanup.h"
#include "log.h"
#include "queue-file.h"

static int cleanup_bus_setup(sd_bus *bus, void *userdata) {
        return sd_bus_add_object_vtable(bus, NULL, "/org/postbus/Cleanup1", "org.postbus.Cleanup1", cleanup_vtable,
                                        userdata);
}

/* Leftovers of writes that were interrupted: never acknowledged, so never promised to anyone. */
static void remove_stale_temporary_files(Cleanup *c) {
        int fd = fcntl(c->incoming_fd, F_DUPFD_CLOEXEC, 3);
        DIR *d = fd >= 0 ? fdopendir(fd) : NULL;
        struct dirent *de;

        if (!d) {
                safe_close(fd);
                return;
        }
        while ((de = readdir(d))) {
                size_t n = strlen(de->d_name);
                if (n == QUEUE_ID_LEN + 4 && streq(de->d_name + QUEUE_ID_LEN, ".tmp") &&
                    unlinkat(c->incoming_fd, de->d_name, 0) >= 0)
                        log_info("Removed the unfinished queue file incoming/%s.", de->d_name);
        }
        closedir(d);
}

/* The tables and lists of config, into c's fields for them: at start, and again on each reload. A bad one
 * is -EINVAL, logged. */
static int cleanup_state_load(const Config *config, Cleanup *c) {
        char where[PATH_MAX + 32];
        int r;

        if (config_split_list(config->mydestination, &c->mydestination) < 0 ||
            config_split_list(config->masquerade_domains, &c->masquerade_domains) < 0 ||
            config_split_list(config->masquerade_exceptions, &c->masquerade_exceptions) < 0)
                return log_oom();

        /* propagate_unmatched_extensions: cleanup's are canonical and virtual; alias, forward, include and
         * generic are other roles' words, accepted here. */
        _cleanup_strv_free_ char **propagate = NULL;
        if (config_split_list(config->propagate_unmatched_extensions, &propagate) < 0)
                return log_oom();
        for (char **p = propagate; *p; p++) {
                if (streq(*p, "canonical"))
                        c->propagate_canonical = true;
                else if (streq(*p, "virtual"))
                        c->propagate_virtual = true;
                else if (!streq(*p, "alias") && !streq(*p, "forward") && !streq(*p, "include") &&
                         !streq(*p, "generic"))
                        log_warning("propagate_unmatched_extensions: unknown word \"%s\", ignoring", *p);
        }

        c->mime = !config->disable_mime_input_processing;
        if (!isempty(config->undisclosed_recipients_header) &&
            !mime_is_header_start(config->undisclosed_recipients_header, strlen(config->undisclosed_recipients_header))) {
                log_error("%s: undisclosed_recipients_header = %s: not a header (\"To: undisclosed-recipients:;\")",
                          config_where(config, CONFIG_PARAM_undisclosed_recipients_header, where, sizeof where),
                          config->undisclosed_recipients_header);
                return -EINVAL;
        }
        const struct {
                ConfigParamId id;
                const char *value;
                ByteSet *set;
        } sets[] = {
                { CONFIG_PARAM_message_reject_characters, config->message_reject_characters, &c->reject_chars },
                { CONFIG_PARAM_message_strip_characters, config->message_strip_characters, &c->strip_chars },
        };
        for (size_t i = 0; i < ELEMENTSOF(sets); i++)
                if (byte_set_parse(sets[i].value, sets[i].set) < 0) {
                        log_error("%s: %s = %s: a backslash at the end, or an octal escape above \\377",
                                  config_where(config, sets[i].id, where, sizeof where), config_params[sets[i].id].name,
                                  sets[i].value);
                        return -EINVAL;
                }
        _cleanup_strv_free_ char **classes = NULL;
        if (config_split_list(config->internal_mail_filter_classes, &classes) < 0)
                return log_oom();
        for (char **k = classes; *k; k++) {
                if (!streq(*k, "bounce") && !streq(*k, "notify")) {
                        log_error("%s: internal_mail_filter_classes: unknown class \"%s\" (bounce, notify)",
                                  config_where(config, CONFIG_PARAM_internal_mail_filter_classes, where, sizeof where),
                                  *k);
                        return -EINVAL;
                }
                c->inspect_notices = true;
        }

        /* Tables and rules are configuration: a bad one stops the role at start, naming its line. */
        const struct {
                ConfigParamId id;
                const char *value;
                TableList **list;
        } maps[] = {
                { CONFIG_PARAM_canonical_maps, config->canonical_maps, &c->canonical_maps },
                { CONFIG_PARAM_sender_canonical_maps, config->sender_canonical_maps, &c->sender_canonical_maps },
                { CONFIG_PARAM_recipient_canonical_maps, config->recipient_canonical_maps,
                  &c->recipient_canonical_maps },
                { CONFIG_PARAM_virtual_alias_maps, config->virtual_alias_maps, &c->virtual_alias_maps },
                { CONFIG_PARAM_sender_bcc_maps, config->sender_bcc_maps, &c->sender_bcc_maps },
                { CONFIG_PARAM_recipient_bcc_maps, config->recipient_bcc_maps, &c->recipient_bcc_maps },
        };
        for (size_t i = 0; i < ELEMENTSOF(maps); i++) {
                r = table_list_open(maps[i].value, maps[i].list);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        log_error("%s: %s = %s: bad table list.", config_where(config, maps[i].id, where, sizeof where),
                                  config_params[maps[i].id].name, maps[i].value);
                        return -EINVAL;
                }
        }
        /* One address, which Postfix would take as it is: a list or a broken one is a mistake of the
         * administrator's. */
        if (!isempty(config->always_bcc) &&
            (strpbrk(config->always_bcc, ", \t") || !address_valid(config->always_bcc))) {
                log_error("%s: always_bcc: \"%s\": not one valid address",
                          config_where(config, CONFIG_PARAM_always_bcc, where, sizeof where), config->always_bcc);
                return -EINVAL;
        }
        /* header_checks and body_checks: a plain path means regexp: (header_checks_open()). */
        const struct {
                const char *name, *value;
                TableList **list;
        } checks[] = {
                { "header_checks", config->header_checks, &c->header_checks },
                { "mime_header_checks", config->mime_header_checks, &c->mime_header_checks },
                { "nested_header_checks", config->nested_header_checks, &c->nested_header_checks },
                { "body_checks", config->body_checks, &c->body_checks },
        };
        for (size_t i = 0; i < ELEMENTSOF(checks); i++) {
                if (isempty(checks[i].value))
                        continue;
                r = header_checks_open(checks[i].value, checks[i].list);
                if (r == -ENOMEM)
                        return log_oom();
                if (r < 0) {
                        log_error("%s = %s: cannot be used.", checks[i].name, checks[i].value);
                        return -EINVAL;
                }
        }
        return 0;
}

static void cleanup_state_done(Cleanup *c) {
        strv_free(c->mydestination);
        strv_free(c->masquerade_domains);
        strv_free(c->masquerade_exceptions);
        table_list_free(c->canonical_maps);
        table_list_free(c->sender_canonical_maps);
        table_list_free(c->recipient_canonical_maps);
        table_list_free(c->virtual_alias_maps);
        table_list_free(c->sender_bcc_maps);
        table_list_free(c->recipient_bcc_maps);
        table_list_free(c->header_checks);
        table_list_free(c->mime_header_checks);
        table_list_free(c->nested_header_checks);
        table_list_free(c->body_checks);
}

/* A job looks its tables up within one callback at a time and keeps no pointer into them across its waits
 * for rewrite, so they may change between any two callbacks: a job in progress takes the new ones at its
 * next step. */
static int cleanup_reload(Daemon *d, Config *new) {
        Cleanup *c = d->userdata, next = {};
        int r;

        r = cleanup_state_load(new, &next);
        if (r < 0) {
                cleanup_state_done(&next);
                return r;
        }
        cleanup_state_done(c);
        c->mydestination = next.mydestination;
        c->masquerade_domains = next.masquerade_domains;
        c->masquerade_exceptions = next.masquerade_exceptions;
        c->canonical_maps = next.canonical_maps;
        c->sender_canonical_maps = next.sender_canonical_maps;
        c->recipient_canonical_maps = next.recipient_canonical_maps;
        c->virtual_alias_maps = next.virtual_alias_maps;
        c->sender_bcc_maps = next.sender_bcc_maps;
        c->recipient_bcc_maps = next.recipient_bcc_maps;
        c->header_checks = next.header_checks;
        c->mime_header_checks = next.mime_header_checks;
        c->nested_header_checks = next.nested_header_checks;
        c->body_checks = next.body_checks;
        c->mime = next.mime;
        c->reject_chars = next.reject_chars;
        c->strip_chars = next.strip_chars;
        c->inspect_notices = next.inspect_notices;
        c->propagate_canonical = next.propagate_canonical;
        c->propagate_virtual = next.propagate_virtual;
        /* rewrite's answers may change with the same reload */
        answer_cache_flush(&c->rewrite_cache);
        return 0;
}

static int cleanup_setup(Daemon *d) {
        Cleanup *c;
        _cleanup_free_ char *incoming = NULL, *qmgr_path = NULL;
        int r;

        c = calloc(1, sizeof(Cleanup));
        if (!c)
                return log_oom();
        d->userdata = c;
        c->daemon = d;
        c->incoming_fd = -EBADF;

        if (asprintf(&incoming, "%s/incoming", d->config->queue_directory) < 0)
                return log_oom();
        c->incoming_fd = open(incoming, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (c->incoming_fd < 0)
                return log_error_errno(errno, "Failed to open %s: %m", incoming);
        remove_stale_temporary_files(c);

        r = bus_server_serve(d, "cleanup", cleanup_bus_setup, c, &c->server);
        if (r == -ENOENT)
                return log_error_errno(r, "No socket named \"cleanup\" was passed.");
        if (r < 0)
                return r;

        r = bus_client_new(d->event, POSTBUS_RUNDIR "/qmgr", &c->qmgr);
        if (r < 0)
                return log_oom();
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/rewrite", &c->rewrite);
        if (r < 0)
                return log_oom();

        r = cleanup_commit_setup(c);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the queue commits: %m");
        return cleanup_state_load(d->config, c);
}

static void cleanup_done(Daemon *d) {
        Cleanup *c = d->userdata;

        if (!c)
                return;
        cleanup_commit_done(c);
        answer_cache_flush(&c->rewrite_cache);
        bus_server_free(c->server);
        bus_client_free(c->qmgr);
        bus_client_free(c->rewrite);
        cleanup_state_done(c);
        safe_close(c->incoming_fd);
        free(c);
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "cleanup",
                .may_exit_idle = true,
                .reload = cleanup_reload,
                .needs_sockets = true,
                .setup = cleanup_setup,
                .done = cleanup_done,
        };
        return daemon_main(argc, argv, &spec);
}
