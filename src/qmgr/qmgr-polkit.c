/* qmgr-polkit.c: who may change the queue over the system bus: root, or whom polkit allows the action
 * org.postbus.queue.manage. polkit is asked asynchronously; when it has answered, the original call is
 * dispatched again and finds the answer here. Run by qmgr. */
#include "log.h"
#include "qmgr.h"
#include "queue-bus.h"

struct QmgrAuthQuery {
        Qmgr *qmgr;
        sd_bus_message *request;        /* the call that waits for the answer */
        sd_bus_slot *slot;              /* the CheckAuthorization call while in flight */
        int result;                     /* -1 in flight, 0 denied, 1 allowed */
        bool challenge;                 /* polkit would allow after an interactive authentication */
        char *error;                    /* polkit could not be asked */
        QmgrAuthQuery *next;
};

static QmgrAuthQuery *query_free(QmgrAuthQuery *a) {
        if (!a)
                return NULL;
        sd_bus_slot_unref(a->slot);
        sd_bus_message_unref(a->request);
        free(a->error);
        free(a);
        return NULL;
}

static void query_unlink(QmgrAuthQuery *a) {
        QmgrAuthQuery **p = &a->qmgr->auth_queries;

        while (*p && *p != a)
                p = &(*p)->next;
        if (*p)
                *p = a->next;
}

void qmgr_auth_queries_free(Qmgr *q) {
        while (q->auth_queries) {
                QmgrAuthQuery *a = q->auth_queries;
                q->auth_queries = a->next;
                query_free(a);
        }
}

static int on_check_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        QmgrAuthQuery *a = userdata;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        int authorized = 0, challenge = 0, r;

        a->slot = sd_bus_slot_unref(a->slot);
        if (e)
                a->error = strdup(e->message ?: e->name);
        else {
                r = sd_bus_message_enter_container(reply, 'r', "bba{ss}");
                if (r >= 0)
                        r = sd_bus_message_read(reply, "bb", &authorized, &challenge);
                if (r < 0)
                        a->error = strdup("malformed reply from polkit");
        }
        a->result = authorized ? 1 : 0;
        a->challenge = challenge;
        /* The call is handled again from the start, with the answer waiting here. */
        r = sd_bus_enqueue_for_read(sd_bus_message_get_bus(a->request), a->request);
        if (r < 0) {
                log_error_errno(r, "Failed to dispatch a call again after polkit's answer: %m");
                query_unlink(a);
                query_free(a);
        }
        return 0;
}

static int ask_polkit(Qmgr *q, sd_bus_message *m) {
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL;
        QmgrAuthQuery *a;
        bool interactive = sd_bus_message_get_allow_interactive_authorization(m) > 0;
        int r;

        r = sd_bus_message_new_method_call(q->system_bus, &call, "org.freedesktop.PolicyKit1",
                                           "/org/freedesktop/PolicyKit1/Authority",
                                           "org.freedesktop.PolicyKit1.Authority", "CheckAuthorization");
        if (r < 0)
                return r;
        r = sd_bus_message_append(call, "(sa{sv})sa{ss}us", "system-bus-name", 1, "name", "s",
                                  sd_bus_message_get_sender(m), QUEUE_POLKIT_ACTION_MANAGE, 0,
                                  interactive ? 1U : 0U, "");
        if (r < 0)
                return r;
        a = calloc(1, sizeof(QmgrAuthQuery));
        if (!a)
                return -ENOMEM;
        a->qmgr = q;
        a->result = -1;
        a->request = sd_bus_message_ref(m);
        /* An interactive authentication waits for a person. */
        r = sd_bus_call_async(q->system_bus, &a->slot, call, on_check_reply, a,
                              interactive ? 300 * USEC_PER_SEC : 25 * USEC_PER_SEC);
        if (r < 0) {
                query_free(a);
                return r;
        }
        a->next = q->auth_queries;
        q->auth_queries = a;
        return 0;
}

int qmgr_authorize(Qmgr *q, sd_bus_message *m, sd_bus_error *error) {
        _cleanup_(sd_bus_creds_unrefp) sd_bus_creds *creds = NULL;
        uid_t uid;
        int r;

        for (QmgrAuthQuery *a = q->auth_queries; a; a = a->next) {
                if (a->request != m)
                        continue;
                if (a->result < 0)
                        return 0;       /* dispatched again before the answer: still waiting */
                query_unlink(a);
                int result = a->result;
                bool challenge = a->challenge;
                _cleanup_free_ char *why = TAKE_PTR(a->error);
                query_free(a);
                if (result > 0)
                        return 1;
                if (why)
                        return sd_bus_error_setf(error, POSTBUS_ERROR_ACCESS_DENIED,
                                                 "Access denied: polkit could not be asked: %s", why);
                if (challenge)
                        return sd_bus_error_set(error, POSTBUS_ERROR_ACCESS_DENIED,
                                                "Access denied: interactive authentication required.");
                return sd_bus_error_set(error, POSTBUS_ERROR_ACCESS_DENIED,
                                        "Access denied: changing the mail queue needs root or the polkit action "
                                        QUEUE_POLKIT_ACTION_MANAGE ".");
        }

        /* The bus daemon vouches for the effective uid of the connection (SO_PEERCRED); sd-bus reports it
         * as EUID, or as UID when it asks dbus-daemon (UnixUserID) and cannot read /proc. */
        r = sd_bus_query_sender_creds(m, SD_BUS_CREDS_EUID | SD_BUS_CREDS_UID, &creds);
        if (r < 0)
                return r;
        if (sd_bus_creds_get_euid(creds, &uid) < 0 && sd_bus_creds_get_uid(creds, &uid) < 0)
                return sd_bus_error_set(error, POSTBUS_ERROR_ACCESS_DENIED, "Cannot tell who is asking.");
        if (uid == 0)
                return 1;
        r = ask_polkit(q, m);
        if (r < 0)
                return sd_bus_error_setf(error, POSTBUS_ERROR_ACCESS_DENIED,
                                         "Access denied: polkit could not be asked: %s", strerror(-r));
        return 0;
}
