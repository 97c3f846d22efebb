/* local-pass.c: runs in local, the long-lived process: mailbox_transport and fallback_transport. A mailbox
 * delivery is handed on to another delivery agent, as Postfix's local(8) hands it on: after aliases and
 * .forward, local calls the agent of the master.cf service named, as qmgr calls it (org.postbus.Delivery1,
 * with the queue file qmgr gave local), for the address as expanded; the agent's result is the address's,
 * and the agent writes its journal record (to=<the address>, orig_to=<the queue file's recipient>).
 *
 * Only lmtp services: the lmtp socket lets local in through its group (units/postbus-lmtp.socket,
 * postbus-local.service's SupplementaryGroups=); the other agents' sockets are qmgr's alone. */
#include <fcntl.h>
#include <inttypes.h>

#include "agent-bus.h"
#include "dsn.h"
#include "bus-util.h"
#include "local.h"
#include "log.h"
#include "master-cf.h"

/* One hand-off: everything its call needs when the window lets it out, copied from the request, which may
 * be gone by then. */
typedef struct PassCall {
        LocalPass *pass;
        LocalPassDone done;             /* NULL: forgotten */
        void *userdata;
        int fd;                         /* a copy of the queue file's descriptor, or -EBADF: bytes */
        void *bytes;
        size_t size;
        char queue_id[QUEUE_ID_SIZE];
        char *sender, *transport, *nexthop, *address;
        char **options;                 /* "name", "value" pairs */
        uint64_t active_usec;
        uint32_t index;
        struct PassCall *prev, *next;
} PassCall;

struct LocalPass {
        Daemon *daemon;
        MasterConfig *master;
        BusClient *lmtp;
        PassCall *calls;                /* in flight */
};

int local_pass_reload(LocalPass *p, const Config *c) {
        MasterConfig *m = NULL;
        int r;

        r = master_config_load_beside(c->path, &m);
        if (r < 0)
                return r;
        master_config_free(p->master);
        p->master = m;
        return 0;
}

int local_pass_new(Daemon *d, LocalPass **ret) {
        _cleanup_(local_pass_freep) LocalPass *p = calloc(1, sizeof(LocalPass));
        int r;

        if (!p)
                return -ENOMEM;
        p->daemon = d;
        r = local_pass_reload(p, d->config);
        if (r < 0)
                return r;
        r = bus_client_new(d->event, POSTBUS_RUNDIR "/lmtp", &p->lmtp);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

static PassCall *pass_call_free(PassCall *pc) {
        if (!pc)
                return NULL;
        if (pc->pass) {
                if (pc->prev)
                        pc->prev->next = pc->next;
                else
                        pc->pass->calls = pc->next;
                if (pc->next)
                        pc->next->prev = pc->prev;
        }
        safe_close(pc->fd);
        free(pc->bytes);
        free(pc->sender);
        free(pc->transport);
        free(pc->nexthop);
        free(pc->address);
        strv_free(pc->options);
        return mfree(pc);
}

LocalPass *local_pass_free(LocalPass *p) {
        if (!p)
                return NULL;
        /* The client's calls end with it: each one's done runs, and frees its PassCall. */
        for (PassCall *pc = p->calls; pc; pc = pc->next)
                pc->done = NULL;
        p->lmtp = bus_client_free(p->lmtp);
        while (p->calls)
                pass_call_free(p->calls);
        master_config_free(p->master);
        return mfree(p);
}

void local_pass_forget(LocalPass *p, void *userdata) {
        for (PassCall *pc = p->calls; pc; pc = pc->next)
                if (pc->userdata == userdata)
                        pc->done = NULL;
}

static int pass_build(sd_bus_message *m, void *userdata) {
        PassCall *pc = userdata;
        char active[32], sent[32];
        int r;

        r = pc->fd >= 0 ? sd_bus_message_append(m, "h", pc->fd) : sd_bus_message_append_array(m, 'y', pc->bytes, pc->size);
        if (r >= 0)
                r = sd_bus_message_append(m, "ssss", pc->queue_id, pc->sender, pc->transport, pc->nexthop);
        if (r >= 0)
                r = sd_bus_message_open_container(m, 'a', "{ss}");
        for (char **o = pc->options; r >= 0 && o[0] && o[1]; o += 2)
                r = sd_bus_message_append(m, "{ss}", o[0], o[1]);
        (void) snprintf(active, sizeof active, "%" PRIu64, pc->active_usec);
        (void) snprintf(sent, sizeof sent, "%" PRIu64, now_realtime_usec());
        if (r >= 0 && pc->active_usec > 0)
                r = sd_bus_message_append(m, "{ss}", DELIVERY_OPTION_ACTIVE_USEC, active);
        if (r >= 0)
                r = sd_bus_message_append(m, "{ss}", DELIVERY_OPTION_SENT_USEC, sent);
        if (r >= 0)
                r = sd_bus_message_close_container(m);
        if (r >= 0)
                r = sd_bus_message_append(m, "a(us)", 1, pc->index, pc->address);
        return r;
}

/* The agent's result for our one recipient, as local's: a strict enhanced status code, else a temporary
 * failure. */
static int read_result(PassCall *pc, sd_bus_message *reply, MailboxResult *ret) {
        const char *status, *dsn, *relay, *text;
        uint32_t index;
        int r;

        r = sd_bus_message_read(reply, "a(ussss)", 1, &index, &status, &dsn, &relay, &text);
        if (r < 0)
                return r;
        if (r == 0 || index != pc->index || dsn_status_length(dsn, strlen(dsn)) != strlen(dsn) ||
            strlen(dsn) >= MAILBOX_DSN_SIZE)
                return -EBADMSG;
        mailbox_result_set(ret, dsn, "%s", text);
        return 0;
}

static void pass_done(sd_bus_message *reply, const sd_bus_error *error, void *userdata) {
        PassCall *pc = userdata;
        MailboxResult result;
        int r;

        if (!pc->done) {
                pass_call_free(pc);
                return;
        }
        if (reply) {
                r = read_result(pc, reply, &result);
                if (r < 0) {
                        log_mail(LOG_WARNING, pc->queue_id, LOG_NO_FIELDS,
                                 "malformed delivery result from transport %s: %s", pc->transport, strerror(-r));
                        mailbox_result_set(&result, "4.3.0", "mail transport unavailable");
                }
        } else
                mailbox_result_set(&result, "4.3.0", "mail transport unavailable: %s",
                                   error && error->message ? error->message : "no answer");
        pc->done(&result, pc->userdata);
        pass_call_free(pc);
}

/* The service of spec's transport, or NULL after setting why. "lmtp" is there even when master.cf lacks it,
 * as it is for qmgr. */
static const MasterService *pass_service(LocalPass *p, const char *transport, MailboxResult *why) {
        static char *none[] = { NULL };
        static const MasterService builtin_lmtp = {
                .name = (char *) "lmtp", .type = (char *) "unix", .command = (char *) "lmtp",
                .kind = MASTER_COMMAND_LMTP, .maxproc = -1, .args = none, .overrides = none,
        };
        const MasterService *s = master_config_transport(p->master, transport);

        if (!s && streq(transport, "lmtp"))
                return &builtin_lmtp;
        if (!s) {
                mailbox_result_set(why, "4.3.5", "mail transport unavailable: no master.cf service \"%s\"",
                                   transport);
                return NULL;
        }
        if (s->kind != MASTER_COMMAND_LMTP) {
                mailbox_result_set(why, "4.3.5", "mail transport unavailable: \"%s\" is a %s service; local hands "
                                   "mailboxes to lmtp services alone", transport, master_command_to_string(s->kind));
                return NULL;
        }
        return s;
}

int local_pass_deliver(LocalPass *p, const DeliveryRequest *req, uint32_t index, const char *address,
                       const char *spec, LocalPassDone done, void *userdata, MailboxResult *ret) {
        const Config *c = p->daemon->config;
        const char *colon = strchr(spec, ':'), *at = strrchr(address, '@');
        _cleanup_free_ char *transport = strndup(spec, colon ? (size_t) (colon - spec) : strlen(spec));
        PassCall *pc;
        int64_t time_limit;
        int r;

        if (!transport)
                return -ENOMEM;
        const MasterService *s = pass_service(p, transport, ret);
        if (!s)
                return 0;
        r = config_transport_int(c, s->name, "time_limit", CONFIG_PARAM_command_time_limit, &time_limit);
        if (r < 0)
                return r;

        pc = calloc(1, sizeof(PassCall));
        if (!pc)
                return -ENOMEM;
        pc->fd = -EBADF;
        pc->transport = TAKE_PTR(transport);
        /* Without a next hop, as for a transport_maps entry: the recipient's domain. */
        pc->nexthop = strdup(colon && colon[1] ? colon + 1 : at ? at + 1 : "");
        pc->sender = strdup(req->sender);
        pc->address = strdup(address);
        memcpy(pc->queue_id, req->queue_id, QUEUE_ID_SIZE);
        pc->index = index;
        pc->active_usec = req->active_usec;
        r = !pc->nexthop || !pc->sender || !pc->address ? -ENOMEM
                : master_service_delivery_options(s, time_limit, &pc->options);
        if (r >= 0 && req->fd >= 0) {
                pc->fd = fcntl(req->fd, F_DUPFD_CLOEXEC, 3);
                r = pc->fd < 0 ? -errno : 0;
        } else if (r >= 0) {
                pc->size = (size_t) req->envelope->file_size;
                pc->bytes = malloc(MAX(pc->size, 1U));
                r = pc->bytes ? 0 : -ENOMEM;
                if (pc->bytes)
                        memcpy(pc->bytes, req->envelope->file, pc->size);
        }
        if (r < 0) {
                pass_call_free(pc);
                return r;
        }

        r = bus_client_call(p->lmtp, DELIVERY_OBJECT_PATH, DELIVERY_INTERFACE, pc->fd >= 0 ? "Deliver" : "DeliverInline",
                            ((uint64_t) time_limit + 30) * USEC_PER_SEC, 0, pass_build, pass_done, pc);
        if (r < 0) {
                pass_call_free(pc);
                return r;
        }
        pc->pass = p;
        pc->done = done;
        pc->userdata = userdata;
        pc->next = p->calls;
        if (p->calls)
                p->calls->prev = pc;
        p->calls = pc;
        return 1;
}
