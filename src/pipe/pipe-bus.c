/* pipe-bus.c: what the pipe process does with a Deliver call of org.postbus.Delivery1 (delivery-agent.c
 * serves it and keeps the line for process slots, at most default_process_limit commands at once over all
 * calls): its transport's settings are read from the options, its recipients share one command, and the call
 * is answered, with a journal record per recipient, when the command has ended or the call's time is up. */
#include <inttypes.h>

#include "delivery-agent.h"
#include "log.h"
#include "pipe.h"

struct Pipe {
        DeliveryAgent *agent;
        PipeForbidden forbidden;
};

/* pipe's state of one call. */
typedef struct PipeCall {
        DeliveryRequest req;            /* first: the agent allocates the whole */
        PipeSettings settings;
        char **argv;                    /* expanded */
        char **env;
        char *prefix;
        PipeCommand *command;
        PipeResult result;
} PipeCall;

static void log_recipient(const PipeCall *c, const DeliveryRecipient *rcpt) {
        const PipeResult *result = &c->result;
        /* What a success report says (Postfix's X flag): qmgr knows it too, from the flags it passed. */
        const char *action = result->status != PIPE_STATUS_SENT ? NULL
                             : (c->settings.flags & PIPE_FLAG_FINAL) ? "delivered" : "relayed";

        delivery_request_log(&c->req, rcpt->address, rcpt->original, c->req.transport, result->dsn,
                             pipe_status_to_string(result->status), result->text,
                             LOG_FIELDS({ "DSN_ACTION", action }));
}

static void pipe_result_of(const DeliveryRequest *req, size_t i, DeliveryResult *ret) {
        const PipeResult *r = &((const PipeCall *) req)->result;

        *ret = (DeliveryResult) { pipe_status_to_string(r->status), r->dsn, req->transport, r->text };
}

/* Logs the result for every recipient, answers and frees the call. */
static void pipe_finish(DeliveryRequest *req) {
        for (size_t i = 0; i < req->n_recipients; i++)
                log_recipient((PipeCall *) req, req->recipients + i);
        delivery_request_finish(req, pipe_result_of, true);
}

static void on_command_done(PipeCommand *cmd, const PipeResult *result, void *userdata) {
        PipeCall *c = userdata;
        DeliveryAgent *a = c->req.agent;

        if (c->req.deadline_hit)
                pipe_result_set(&c->result, "4.3.0", "delivery time limit exceeded");
        else
                c->result = *result;
        c->command = pipe_command_free(c->command);
        delivery_request_ended(&c->req);
        pipe_finish(&c->req);
        delivery_agent_dispatch(a);
}

static int pipe_start(DeliveryRequest *req) {
        PipeCall *c = (PipeCall *) req;
        const PipeCommandSpec spec = {
                .argv = c->argv,
                .env = c->env,
                .settings = &c->settings,
                .transport = req->transport,
                .prefix = c->prefix,
                .queue_fd = req->fd,
                .envelope = req->envelope,
        };
        int r;

        r = pipe_command_start(req->agent->daemon->event, &spec, on_command_done, c, &c->command);
        if (r >= 0) {
                log_debug("%s: started %s as %s, pid %d", req->queue_id, c->argv[0], c->settings.user,
                          (int) pipe_command_pid(c->command));
                return 1;
        }
        pipe_result_set(&c->result, "4.3.0", "Delivery failed: cannot start a command: %s", strerror(-r));
        pipe_finish(req);
        return 0;
}

static void pipe_deadline(DeliveryRequest *req) {
        PipeCall *c = (PipeCall *) req;

        if (req->running)
                pipe_command_kill(c->command);  /* on_command_done answers */
        else {
                pipe_result_set(&c->result, "4.3.0", "delivery time limit exceeded");
                pipe_finish(req);
        }
}

/* A command still running is killed (a duplicate at worst, when qmgr tries again). */
static void pipe_stop(DeliveryRequest *req) {
        PipeCall *c = (PipeCall *) req;

        c->command = pipe_command_free(c->command);
        pipe_result_set(&c->result, "4.3.0", "pipe delivery agent is stopping");
}

/* A transport's fault: the mail waits (4.3.5) while the administrator is told. */
static int config_error(PipeCall *c, const char *why) {
        _cleanup_free_ char *t = log_escape(c->req.transport, strlen(c->req.transport));
        _cleanup_free_ char *w = log_escape(why, strlen(why));

        log_mail(LOG_WARNING, c->req.queue_id, LOG_FIELDS({ "RELAY", t }), "warning: transport %s: %s", strna(t),
                 strna(w));
        pipe_result_set(&c->result, "4.3.5", "mail system configuration error: %s", why);
        return 1;
}

/* Whether the message already went through this recipient (D flag). */
static int delivered_to_loop(PipeCall *c, const char *address) {
        _cleanup_free_ char *buf = malloc(QUEUE_RECORD_MAX);
        uint64_t off = c->req.envelope->content_offset;
        PipeHeaderScan scan;
        int n;

        if (!buf)
                return -ENOMEM;
        pipe_header_scan_init(&scan, address);
        while ((n = queue_file_content_next(c->req.fd, c->req.envelope, &off, buf)) > 0)
                if (pipe_header_scan_feed(&scan, buf, (size_t) n))
                        break;
        if (n < 0)
                return n;
        pipe_header_scan_finish(&scan);
        return scan.found;
}

/* A queue file attribute for the argv macros; "" when the message has none. */
static const char *attr(const QueueEnvelope *e, const char *name) {
        return strempty(queue_envelope_attr(e, name));
}

/* Everything before the command runs: the settings, the checks Postfix's pipe makes before it starts one,
 * the command line, its environment and the lines before the message. Returns 1 when the call already has
 * its result, 0 when the command is to run. */
static int pipe_prepare(DeliveryRequest *req) {
        PipeCall *c = (PipeCall *) req;
        const Pipe *p = req->agent->userdata;
        _cleanup_free_ char *error = NULL;
        const QueueEnvelope *e = req->envelope;
        char size[32];
        int r;

        r = pipe_settings_parse((const char *const *) req->options, req->agent->daemon->config, &c->settings,
                                &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r < 0)
                return r;
        r = pipe_settings_resolve_user(&c->settings, &p->forbidden, &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r < 0)
                return r;

        /* Headers about one recipient cannot go to a command for several. */
        if (req->n_recipients > 1 && (c->settings.flags & (PIPE_FLAG_DELIVERED_TO | PIPE_FLAG_ORIGINAL_TO))) {
                _cleanup_free_ char *why = NULL;
                if (asprintf(&why, "flag %s requires %s_destination_recipient_limit = 1",
                             (c->settings.flags & PIPE_FLAG_DELIVERED_TO) ? "D" : "O", req->transport) < 0)
                        return -ENOMEM;
                return config_error(c, why);
        }
        if (c->settings.size_limit > 0 && e->content_size > c->settings.size_limit) {
                pipe_result_set(&c->result, "5.2.3", "message too large");
                return 1;
        }
        if (c->settings.flags & PIPE_FLAG_DELIVERED_TO) {
                _cleanup_free_ char *internal = NULL, *quoted = NULL;
                /* The header is compared in the form D writes it. */
                r = pipe_address_unquote(req->recipients[0].address, &internal);
                if (r >= 0)
                        r = pipe_address_quote(internal, &quoted);
                if (r >= 0)
                        r = delivered_to_loop(c, quoted);
                if (r < 0) {
                        pipe_result_set(&c->result, "4.3.0", "cannot read the queue file: %s", strerror(-r));
                        return 1;
                }
                if (r > 0) {
                        pipe_result_set(&c->result, "5.4.6", "mail forwarding loop for %s",
                                        req->recipients[0].address);
                        return 1;
                }
        }

        (void) snprintf(size, sizeof size, "%" PRIu64, e->content_size);
        const char *const vars[] = {
                "size", size,
                "queue_id", req->queue_id,
                "client_address", attr(e, "client_address"),
                "client_hostname", attr(e, "client_name"),
                "client_helo", attr(e, "helo_name"),
                "client_port", attr(e, "client_port"),
                "client_protocol", attr(e, "protocol"),
                "sasl_method", attr(e, "sasl_method"),
                "sasl_username", attr(e, "sasl_username"),
                "sasl_sender", attr(e, "sasl_sender"),
                NULL,
        };
        _cleanup_free_ PipeAddress *addresses = calloc(req->n_recipients, sizeof(PipeAddress));
        if (!addresses)
                return -ENOMEM;
        for (size_t i = 0; i < req->n_recipients; i++)
                addresses[i] = (PipeAddress) { req->recipients[i].address, req->recipients[i].original };
        const PipeExpand x = {
                .flags = c->settings.flags,
                .delimiter = c->settings.recipient_delimiter,
                .sender = req->sender,
                .null_sender = c->settings.null_sender,
                .nexthop = req->nexthop,
                .vars = vars,
                .recipients = addresses,
                .n_recipients = req->n_recipients,
        };
        r = pipe_argv_expand(c->settings.argv, &x, &c->argv, &error);
        if (r == -EINVAL)
                return config_error(c, error);
        if (r == -E2BIG)
                return config_error(c, "the command line has too many arguments");
        if (r < 0)
                return r;

        r = pipe_environment(c->settings.export_environment, &c->env);
        if (r < 0)
                return r;
        r = pipe_message_prefix(c->settings.flags, req->sender, c->settings.null_sender, req->recipients[0].original,
                                req->recipients[0].address, c->settings.eol, time(NULL), &c->prefix);
        if (r < 0)
                return r;
        return 0;
}

static void pipe_call_done(DeliveryRequest *req) {
        PipeCall *c = (PipeCall *) req;

        pipe_command_free(c->command);
        pipe_settings_done(&c->settings);
        strv_free(c->argv);
        strv_free(c->env);
        free(c->prefix);
}

static const DeliveryAgentOps pipe_ops = {
        .request_size = sizeof(PipeCall),
        .recipients_max = PIPE_RECIPIENTS_MAX,
        .options_max = PIPE_OPTIONS_MAX,
        .option_value_max = PIPE_OPTION_VALUE_MAX,
        .prepare = pipe_prepare,
        .start = pipe_start,
        .deadline = pipe_deadline,
        .stop = pipe_stop,
        .finish = pipe_finish,
        .done = pipe_call_done,
};

int pipe_new(Daemon *d, int listen_fd, uid_t peer_uid, const PipeForbidden *forbidden, Pipe **ret) {
        _cleanup_free_ Pipe *p = calloc(1, sizeof(Pipe));
        int r;

        if (!p)
                return -ENOMEM;
        p->forbidden = *forbidden;
        r = delivery_agent_new(d, listen_fd, peer_uid, &pipe_ops, p, &p->agent);
        if (r < 0)
                return r;
        *ret = TAKE_PTR(p);
        return 0;
}

Pipe *pipe_free(Pipe *p) {
        if (!p)
                return NULL;
        delivery_agent_free(p->agent);
        free(p);
        return NULL;
}
