/* pickup-submit.c: maildrop files to cleanup over its socket, a few at a time, each removed only once
 * cleanup has answered with a queue ID (a crash in between can at worst cause a duplicate). */
#include <fcntl.h>
#include <inttypes.h>

#include "agent-bus.h"
#include "log.h"
#include "pickup.h"
#include "verp.h"

#define CLEANUP_OBJECT "/org/postbus/Cleanup1"
#define CLEANUP_INTERFACE "org.postbus.Cleanup1"

static void message_unlink(PickupMessage *m) {
        Pickup *p = m->pickup;

        if (m->prev)
                m->prev->next = m->next;
        else if (p->in_flight == m)
                p->in_flight = m->next;
        if (m->next)
                m->next->prev = m->prev;
        m->prev = m->next = NULL;
        p->n_in_flight--;
}

static int on_retry(sd_event_source *s, uint64_t usec, void *userdata) {
        pickup_scan(userdata);
        return 0;
}

/* The batch is through: read the directory again, at once if all went well (more may have come), after
 * a pause if something failed for now; with nothing found, linger for max_idle (inotify) and exit. */
static void batch_done(Pickup *p) {
        int r;

        if (p->temporary_failure) {
                p->retry_usec = p->retry_usec == 0 ? PICKUP_RETRY_MIN_USEC
                                                   : MIN(p->retry_usec * 2, PICKUP_RETRY_MAX_USEC);
                r = p->retry_timer ? sd_event_source_set_time_relative(p->retry_timer, p->retry_usec)
                                   : sd_event_add_time_relative(p->daemon->event, &p->retry_timer, CLOCK_MONOTONIC,
                                                                p->retry_usec, USEC_PER_SEC / 10, on_retry, p);
                if (r >= 0)
                        r = sd_event_source_set_enabled(p->retry_timer, SD_EVENT_ONESHOT);
                if (r < 0)
                        log_error_errno(r, "Failed to arm the retry timer: %m");
                log_info("Some maildrop files must wait; trying again in %llus.", (unsigned long long) (p->retry_usec / USEC_PER_SEC));
                return;
        }
        p->retry_usec = 0;
        if (p->n_names > 0) {
                (void) sd_event_source_set_enabled(p->scan_event, SD_EVENT_ONESHOT);
                return;
        }
        pickup_set_working(p, false);
}

static void message_link(Pickup *p, PickupMessage *m) {
        m->next = p->in_flight;
        if (m->next)
                m->next->prev = m;
        p->in_flight = m;
        p->n_in_flight++;
}

static int on_reject_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(pickup_message_freep) PickupMessage *m = userdata;
        Pickup *p = m->pickup;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_free_ char *sender = log_escape(m->envelope->sender, strlen(m->envelope->sender));
        _cleanup_free_ char *text = log_escape(m->reject_text, strlen(m->reject_text));
        const char *notice = NULL;
        char uid[32];

        message_unlink(m);
        (void) snprintf(uid, sizeof uid, "%u", (unsigned) m->uid);
        if (e && sd_bus_error_has_name(e, POSTBUS_ERROR_INVALID_ARGS))
                notice = "";    /* nothing to return it to (sendmail -t: the recipients were in the headers) */
        else if (e || sd_bus_message_read(reply, "s", &notice) < 0) {
                log_warning("maildrop file %s: rejected by cleanup, and bounce could not tell the sender (%s); "
                            "it stays for another attempt.", m->name, e ? strna(e->message) : "a malformed answer");
                p->temporary_failure = true;
                pickup_pump(p);
                return 0;
        }
        if (unlinkat(p->dir_fd, m->name, 0) < 0 && errno != ENOENT)
                p->temporary_failure = true;
        log_mail(LOG_ERR, isempty(notice) ? NULL : notice,
                 LOG_FIELDS({ "MAILDROP_FILE", m->name }, { "UID", uid }, { "SENDER", sender }),
                 "maildrop file %s: uid=%s from=<%s>: rejected by cleanup: %s; %s%s; removed", m->name, uid,
                 strempty(sender), strna(text), isempty(notice) ? "no notice sent" : "sender notified as ",
                 strempty(notice));
        pickup_pump(p);
        return 0;
}

static int reject_send(PickupMessage *m, sd_bus *bus) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        const MaildropEnvelope *e = m->envelope;
        char status[16] = "5.0.0";
        const char *text = m->reject_text;
        size_t len = strcspn(text, " ");
        int r;

        /* cleanup's text starts with its enhanced status code: "5.7.1 message content rejected". */
        if (len >= 5 && len < sizeof status && text[0] == '5' && text[1] == '.' &&
            strspn(text, "0123456789.") == len) {
                memcpy(status, text, len);
                status[len] = '\0';
                text += len + strspn(text + len, " ");
        }
        r = sd_bus_message_new_method_call(bus, &msg, NULL, BOUNCE_OBJECT_PATH, BOUNCE_INTERFACE, "Reject");
        if (r >= 0)
                r = sd_bus_message_append(msg, "hs", m->content_fd, e->sender);
        if (r >= 0)
                r = sd_bus_message_append_strv(msg, e->recipients);
        if (r >= 0)
                r = sd_bus_message_append(msg, "ss", status, text);
        if (r >= 0)
                r = sd_bus_call_async(bus, &m->slot, msg, on_reject_reply, m,
                                      (uint64_t) m->pickup->daemon->config->daemon_timeout * USEC_PER_SEC);
        return r;
}

static int on_bounce_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PickupMessage *m = userdata;
        sd_bus *bus = sd_bus_message_get_bus(reply);

        m->slot = sd_bus_slot_unref(m->slot);
        if (sd_bus_is_ready(bus) <= 0 || reject_send(m, bus) < 0) {
                /* on_reject_reply()'s failure path: the file stays for another attempt */
                Pickup *p = m->pickup;
                log_warning("maildrop file %s: rejected by cleanup; bounce cannot be reached, it stays.", m->name);
                message_unlink(m);
                p->temporary_failure = true;
                pickup_message_free(m);
                pickup_pump(p);
        }
        return 0;
}

/* Asks bounce to return a message cleanup refused; the maildrop file goes once bounce has it. */
static void pickup_reject(PickupMessage *m, const char *why) {
        Pickup *p = m->pickup;
        sd_bus *bus = NULL;
        int r;

        m->slot = sd_bus_slot_unref(m->slot);
        m->reject_text = strdup(why);
        message_link(p, m);
        r = m->reject_text ? bus_client_get_ready(p->bounce, on_bounce_ready, m, &m->slot, &bus) : -ENOMEM;
        if (r > 0)
                r = reject_send(m, bus);
        if (r < 0) {
                log_warning_errno(r, "maildrop file %s: rejected by cleanup; cannot ask bounce to return it, "
                                  "it stays: %m", m->name);
                message_unlink(m);
                p->temporary_failure = true;
                pickup_message_free(m);
                pickup_pump(p);
        }
}

static int on_submit_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        _cleanup_(pickup_message_freep) PickupMessage *m = userdata;
        Pickup *p = m->pickup;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        _cleanup_free_ char *sender = log_escape(m->envelope->sender, strlen(m->envelope->sender));
        char uid[32];
        const char *id;

        (void) snprintf(uid, sizeof uid, "%u", (unsigned) m->uid);

        if (e && sd_bus_error_has_names(e, POSTBUS_ERROR_REJECTED, POSTBUS_ERROR_INVALID_ARGS)) {
                /* Permanent: kept, it would be refused again and again. The sender hears of it from bounce
                 * first; the file goes only once bounce has the notice. */
                message_unlink(m);
                pickup_reject(TAKE_PTR(m), strna(e->message));
                return 0;
        }
        message_unlink(m);
        if (e || sd_bus_message_read(reply, "s", &id) < 0 || !queue_id_valid(id)) {
                _cleanup_free_ char *text = e ? log_escape(strna(e->message), strlen(strna(e->message))) : NULL;
                log_warning("maildrop file %s: cleanup did not take it (%s); it stays for another attempt.", m->name,
                            e ? strna(text) : "a malformed answer");
                p->temporary_failure = true;
        } else {
                log_mail(LOG_INFO, id,
                         LOG_FIELDS({ "MAILDROP_FILE", m->name }, { "UID", uid }, { "SENDER", sender }),
                         "uid=%s from=<%s>", uid, strempty(sender));
                if (unlinkat(p->dir_fd, m->name, 0) < 0 && errno != ENOENT) {
                        log_mail(LOG_ERR, id, LOG_FIELDS({ "MAILDROP_FILE", m->name }),
                                 "failed to remove maildrop file %s; it may be delivered twice: %s", m->name,
                                 strerror(errno));
                        p->temporary_failure = true;
                }
        }
        pickup_pump(p);
        return 0;
}

static int append_attr(sd_bus_message *msg, const char *name, const char *value) {
        if (!value)
                return 0;
        return sd_bus_message_append(msg, "{ss}", name, value);
}

static int message_submit(Pickup *p, sd_bus *bus, PickupMessage *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *msg = NULL;
        const MaildropEnvelope *e = m->envelope;
        char uid[32];
        int r;

        (void) snprintf(uid, sizeof uid, "%u", (unsigned) m->uid);
        r = sd_bus_message_new_method_call(bus, &msg, NULL, CLEANUP_OBJECT, CLEANUP_INTERFACE, "Submit");
        if (r >= 0)
                r = sd_bus_message_append(msg, "hs", m->content_fd, e->sender);
        /* (address, NOTIFY, ORCPT): sendmail -N applies to every recipient; there is no ORCPT. */
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "(sss)");
        for (size_t i = 0; r >= 0 && i < e->n_recipients; i++)
                r = sd_bus_message_append(msg, "(sss)", e->recipients[i], strempty(e->dsn_notify), "");
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_message_open_container(msg, 'a', "{ss}");
        if (r >= 0)
                r = append_attr(msg, "origin", "pickup");
        if (r >= 0)
                r = append_attr(msg, "protocol", "local");
        if (r >= 0)
                r = append_attr(msg, "queue_id", m->queue_id);
        if (r >= 0)
                r = append_attr(msg, "uid", uid);
        if (r >= 0)
                r = append_attr(msg, "login", m->login);
        if (r >= 0)
                r = append_attr(msg, "full_name", m->full_name);
        if (r >= 0)
                r = append_attr(msg, "extract_recipients", e->extract_recipients ? "yes" : NULL);
        if (r >= 0)
                r = append_attr(msg, "dsn_notify", e->dsn_notify);
        if (r >= 0)
                r = append_attr(msg, "dsn_ret", e->dsn_ret);
        if (r >= 0)
                r = append_attr(msg, "dsn_envid", e->dsn_envid);
        if (r >= 0)
                r = append_attr(msg, "body_type", e->body_type);
        if (r >= 0)
                r = append_attr(msg, VERP_ATTR, e->verp_delims);
        /* As Postfix's pickup: local mail goes to the content filter too. */
        if (r >= 0 && !isempty(p->daemon->config->content_filter))
                r = append_attr(msg, "content_filter", p->daemon->config->content_filter);
        /* receive_override_options: what cleanup leaves out (no_address_mappings, no_header_body_checks). */
        if (r >= 0 && (p->receive_override & RECEIVE_OVERRIDE_CLEANUP)) {
                char text[RECEIVE_OVERRIDE_TEXT_MAX];
                r = append_attr(msg, RECEIVE_OVERRIDE_ATTR,
                                receive_override_format(p->receive_override & RECEIVE_OVERRIDE_CLEANUP, text));
        }
        if (r >= 0)
                r = append_attr(msg, "milter_hold", m->milter_hold);
        if (r >= 0)
                r = sd_bus_message_close_container(msg);
        if (r >= 0)
                r = sd_bus_call_async(bus, &m->slot, msg, on_submit_reply, m,
                                      (uint64_t) p->daemon->config->daemon_timeout * USEC_PER_SEC);
        if (r < 0)
                return log_warning_errno(r, "Failed to send maildrop file %s to cleanup: %m", m->name);

        message_link(p, m);
        return 0;
}

static int on_cleanup_ping(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        Pickup *p = userdata;

        p->ping = sd_bus_slot_unref(p->ping);
        if (sd_bus_is_ready(sd_bus_message_get_bus(reply)) <= 0) {
                const sd_bus_error *e = sd_bus_message_get_error(reply);
                log_warning("The connection to cleanup failed: %s", e ? strna(e->message) : "not ready");
                p->temporary_failure = true;
                p->next_name = p->n_names;      /* the rest of the batch waits too */
        }
        pickup_pump(p);
        return 0;
}

static int on_cleanup_ready(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        PickupMessage *m = userdata;
        Pickup *p = m->pickup;
        sd_bus *bus = sd_bus_message_get_bus(reply);

        m->slot = sd_bus_slot_unref(m->slot);
        if (sd_bus_is_ready(bus) <= 0 || message_submit(p, bus, m) < 0) {
                log_warning("maildrop file %s: cleanup cannot be reached; it stays for another attempt.", m->name);
                p->temporary_failure = true;
                pickup_message_free(m);
        }
        pickup_pump(p);
        return 0;
}

void pickup_milter_done(PickupMessage *m, MilterVerdict verdict, const char *reply) {
        Pickup *p = m->pickup;
        sd_bus *bus;
        int r;

        message_unlink(m);
        switch (verdict) {
        case MILTER_CONTINUE:
                r = bus_client_get_ready(p->cleanup, on_cleanup_ready, m, &m->slot, &bus);
                if (r > 0)
                        r = message_submit(p, bus, m);
                if (r >= 0)
                        break;
                log_warning_errno(r, "maildrop file %s: cannot reach cleanup, it stays: %m", m->name);
                p->temporary_failure = true;
                pickup_message_free(m);
                break;
        case MILTER_REJECT:
                /* "550 5.7.1 text": bounce takes the status and the text. */
                pickup_reject(m, strlen(reply) > 4 ? reply + 4 : reply);
                return;
        case MILTER_DISCARD:
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "MAILDROP_FILE", m->name }),
                         "maildrop file %s: milter-discard: milter triggers DISCARD action; removed", m->name);
                if (unlinkat(p->dir_fd, m->name, 0) < 0 && errno != ENOENT)
                        p->temporary_failure = true;
                pickup_message_free(m);
                break;
        default: {
                _cleanup_free_ char *text = log_escape(strna(reply), strlen(strna(reply)));
                log_warning("maildrop file %s: the milters say try again later (%s); it stays.", m->name, text);
                p->temporary_failure = true;
                pickup_message_free(m);
                break;
        }
        }
        pickup_pump(p);
}

void pickup_pump(Pickup *p) {
        int r;

        pickup_set_working(p, true);
        while (p->next_name < p->n_names && p->n_in_flight < PICKUP_IN_FLIGHT_MAX && !p->ping) {
                _cleanup_(pickup_message_freep) PickupMessage *m = NULL;
                sd_bus *bus;

                r = bus_client_get_ready(p->cleanup, on_cleanup_ping, p, &p->ping, &bus);
                if (r == 0)
                        return;         /* on_cleanup_ping() goes on */
                if (r < 0) {
                        log_warning_errno(r, "Cannot reach cleanup at %s: %m", bus_client_path(p->cleanup));
                        p->temporary_failure = true;
                        p->next_name = p->n_names;
                        break;
                }
                r = pickup_message_load(p, p->names[p->next_name++], &m);
                if (r < 0)
                        p->temporary_failure = true;
                if (r <= 0)
                        continue;
                /* non_smtpd_milters: the message is in flight while they read it (pickup-milter.c). */
                if (p->milters.milters[0]) {
                        r = pickup_milter_start(m);
                        if (r < 0) {
                                log_warning_errno(r, "maildrop file %s: cannot ask the milters: %m", m->name);
                                p->temporary_failure = true;
                                continue;
                        }
                        message_link(p, TAKE_PTR(m));
                        continue;
                }
                if (message_submit(p, bus, m) < 0) {
                        p->temporary_failure = true;
                        continue;
                }
                TAKE_PTR(m);
        }
        if (p->next_name >= p->n_names && p->n_in_flight == 0 && !p->ping)
                batch_done(p);
}
