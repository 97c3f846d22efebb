/* cleanup-job.c: one submission from request to reply. The header pass (header_checks, recipients from
 * To/Cc/Bcc for sendmail -t) runs first; then every address is brought into canonical form by the rewrite
 * role (asynchronous calls, all of a round in flight at once), canonical maps and masquerading are
 * applied, virtual aliases expanded round by round (each round's results canonicalized again), and the
 * queue file written. Only then does the submitter get its answer. */
#include <ctype.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <strings.h>
#include <sys/mman.h>
#include <sys/stat.h>

#include "address.h"
#include "cleanup-addrlist.h"
#include "cleanup-maps.h"
#include "cleanup.h"
#include "log.h"

typedef struct CleanupJob CleanupJob;
typedef void (*CleanupJobStep)(CleanupJob *j);

/* A recipient in the virtual alias expansion tree. */
typedef struct VirtualNode {
        char *address;
        struct VirtualNode *parent;
        unsigned depth;
        bool final;
        struct VirtualNode *next;       /* all nodes, for freeing */
        struct VirtualNode *round_next; /* the frontier of the current round */
} VirtualNode;

/* An address in a header that canonical maps and masquerading may change. */
typedef struct HeaderAddress {
        size_t start, end;              /* of the addr-spec in the content */
        char *original;
        char *address;                  /* what it becomes */
        bool sender;                    /* From, Sender, Reply-To, ...: else To, Cc, ... */
} HeaderAddress;

/* Most addresses in the headers of one message that cleanup rewrites; those beyond are left alone. */
#define CLEANUP_HEADER_ADDRESSES_MAX 10000U

struct CleanupJob {
        Cleanup *cleanup;
        sd_bus_message *request;
        int fd;
        void *content;
        size_t size;

        char *sender;
        char **recipients;
        size_t n_recipients;
        char **dsn_notify, **dsn_orcpt; /* RFC 3461, per submitted recipient ("" where not given) */
        size_t n_dsn;
        char **attrs;

        CleanupRange *drops;
        size_t n_drops;
        HeaderAddress *header_addresses;
        size_t n_header_addresses;
        char *hold;
        bool discard;
        char *reject;                   /* "550 5.7.1 ...": the permanent answer */
        char *defer;                    /* "451 4.3.0 ...": the temporary answer */

        unsigned pending;               /* rewrite calls in flight */
        char ***queue;                  /* the slots of this round, sent a window at a time */
        size_t n_queue, queue_next;
        CleanupJobStep next;            /* what runs once they are all back */

        VirtualNode *nodes, *frontier;
        size_t n_nodes;
};

typedef struct RewriteCall {
        CleanupJob *job;
        char **slot;
} RewriteCall;

static void job_free(CleanupJob *j) {
        if (!j)
                return;
        if (j->content)
                (void) munmap(j->content, j->size);
        safe_close(j->fd);
        sd_bus_message_unref(j->request);
        free(j->sender);
        for (size_t i = 0; i < j->n_recipients; i++)
                free(j->recipients[i]);
        free(j->recipients);
        strv_free(j->attrs);
        strv_free(j->dsn_notify);
        strv_free(j->dsn_orcpt);
        free(j->drops);
        free(j->queue);
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                free(j->header_addresses[i].original);
                free(j->header_addresses[i].address);
        }
        free(j->header_addresses);
        free(j->hold);
        free(j->reject);
        free(j->defer);
        while (j->nodes) {
                VirtualNode *n = j->nodes;
                j->nodes = n->next;
                free(n->address);
                free(n);
        }
        daemon_busy_dec(j->cleanup->daemon);
        free(j);
}

static void job_reply_error(CleanupJob *j) {
        const char *name = j->reject ? POSTBUS_ERROR_REJECTED : POSTBUS_ERROR_TEMPORARY;
        const char *text = j->reject ?: j->defer ?: "451 4.3.0 Error: internal error";
        _cleanup_free_ char *escaped = log_escape(j->sender, strlen(j->sender));

        log_info("reject: from=<%s>: %s", strempty(escaped), text);
        (void) sd_bus_reply_method_error(j->request, &SD_BUS_ERROR_MAKE_CONST(name, text));
        job_free(j);
}

static void job_set_defer(CleanupJob *j, const char *text) {
        if (!j->defer && !j->reject)
                j->defer = strdup(text);
}

_printf_(2, 3) static int set_text(char **slot, const char *fmt, ...) {
        va_list ap;
        int n;

        free(*slot);
        va_start(ap, fmt);
        n = vasprintf(slot, fmt, ap);
        va_end(ap);
        if (n < 0) {
                *slot = NULL;
                return -ENOMEM;
        }
        return 0;
}

/* ---- rewrite rounds ---------------------------------------------------------------------------- */

/* Rewrite calls one submission keeps in flight: pipelined, but bounded however many addresses it has. */
#define CLEANUP_REWRITE_WINDOW 32U

static void job_pump(CleanupJob *j);

static void job_round_done(CleanupJob *j) {
        if (j->pending > 0 || j->queue_next < j->n_queue)
                return;
        j->n_queue = j->queue_next = 0;
        if (j->reject || j->defer) {
                job_reply_error(j);
                return;
        }
        j->next(j);
}

static int on_rewrite_reply(sd_bus_message *reply, void *userdata, sd_bus_error *ret_error) {
        RewriteCall *call = userdata;
        CleanupJob *j = call->job;
        const sd_bus_error *e = sd_bus_message_get_error(reply);
        const char *out;

        j->pending--;
        if (e) {
                if (sd_bus_error_has_name(e, POSTBUS_ERROR_INVALID_ARGS)) {
                        _cleanup_free_ char *escaped = log_escape(*call->slot, strlen(*call->slot));
                        if (!j->reject)
                                (void) set_text(&j->reject, "553 5.1.3 Bad address syntax: <%s>", strempty(escaped));
                } else {
                        log_warning("rewrite did not answer: %s", e->message ?: e->name);
                        job_set_defer(j, "451 4.3.0 Error: address rewriting failed, try again later");
                }
        } else if (sd_bus_message_read(reply, "s", &out) < 0 || !address_valid(out)) {
                job_set_defer(j, "451 4.3.0 Error: malformed answer from rewrite");
        } else {
                char *copy = strdup(out);
                if (!copy)
                        job_set_defer(j, "451 4.3.0 Error: out of memory");
                else {
                        free(*call->slot);
                        *call->slot = copy;
                }
        }
        free(call);
        job_pump(j);
        job_round_done(j);
        return 0;
}

/* Asks rewrite for the canonical form of *slot in this round; the answer replaces it. */
static void job_rewrite(CleanupJob *j, char **slot) {
        if (isempty(*slot) || j->defer || j->reject)
                return;
        char ***q = realloc(j->queue, (j->n_queue + 1) * sizeof(char **));
        if (!q) {
                job_set_defer(j, "451 4.3.0 Error: out of memory");
                return;
        }
        j->queue = q;
        q[j->n_queue++] = slot;
}

static void job_send(CleanupJob *j, char **slot) {
        RewriteCall *call;
        sd_bus *bus;
        int r;

        r = bus_client_get(j->cleanup->rewrite, &bus);
        if (r < 0) {
                log_warning_errno(r, "Failed to connect to rewrite: %m");
                job_set_defer(j, "451 4.3.0 Error: address rewriting is unavailable, try again later");
                return;
        }
        call = malloc(sizeof(RewriteCall));
        if (!call) {
                job_set_defer(j, "451 4.3.0 Error: out of memory");
                return;
        }
        *call = (RewriteCall) { .job = j, .slot = slot };
        r = sd_bus_call_method_async(bus, NULL, NULL, "/org/postbus/Rewrite1", "org.postbus.Rewrite1", "Rewrite",
                                     on_rewrite_reply, call, "s", *slot);
        if (r < 0) {
                free(call);
                job_set_defer(j, "451 4.3.0 Error: address rewriting is unavailable, try again later");
                return;
        }
        j->pending++;
}

static void job_pump(CleanupJob *j) {
        while (j->pending < CLEANUP_REWRITE_WINDOW && j->queue_next < j->n_queue) {
                if (j->defer || j->reject) {
                        j->queue_next = j->n_queue;     /* the answer is known: ask no more */
                        break;
                }
                job_send(j, j->queue[j->queue_next++]);
        }
}

/* Sends a round; next runs when its last answer is in (at once when nothing was asked). */
static void job_round_start(CleanupJob *j, CleanupJobStep next) {
        /* Replies are dispatched from the event loop, never from within the calls that sent them. */
        j->next = next;
        job_pump(j);
        job_round_done(j);
}

/* ---- maps -------------------------------------------------------------------------------------- */

/* Looks *addr up in each table list given, in order; the first match replaces it. 1: changed. */
static int apply_canonical(CleanupJob *j, char **addr, TableList *first, TableList *second) {
        Cleanup *c = j->cleanup;
        TableList *lists[] = { first, second };
        int r;

        for (size_t i = 0; i < ELEMENTSOF(lists); i++) {
                char *out = NULL;
                if (table_list_is_empty(lists[i]))
                        continue;
                r = cleanup_map_lookup(cleanup_table_lookup, lists[i], *addr, c->mydestination,
                                       c->daemon->config->myorigin, &out);
                if (r < 0) {
                        _cleanup_free_ char *escaped = log_escape(*addr, strlen(*addr));
                        log_error_errno(r, "Failed to look up <%s> in a canonical table: %m", strempty(escaped));
                        job_set_defer(j, "451 4.3.0 Error: canonical table lookup failure");
                        return r;
                }
                if (r > 0) {
                        /* A canonical result is one address: the first if there are more. */
                        size_t len = strcspn(out, ", \t");
                        out[len] = '\0';
                        if (len == 0 || !address_valid(out) || strcmp(out, *addr) == 0) {
                                free(out);
                                return 0;
                        }
                        free(*addr);
                        *addr = out;
                        return 1;
                }
        }
        return 0;
}

static void step_write(CleanupJob *j);
static void step_masquerade(CleanupJob *j);
static void step_virtual_round(CleanupJob *j);

static int add_node(CleanupJob *j, const char *address, VirtualNode *parent, VirtualNode **ret) {
        VirtualNode *n = calloc(1, sizeof(VirtualNode));

        if (!n)
                return -ENOMEM;
        n->address = strdup(address);
        if (!n->address) {
                free(n);
                return -ENOMEM;
        }
        n->parent = parent;
        n->depth = parent ? parent->depth + 1 : 0;
        n->next = j->nodes;
        j->nodes = n;
        j->n_nodes++;
        *ret = n;
        return 0;
}

/* The children of the last round are canonical now: check them, and expand them in the next round. */
static void step_virtual_check(CleanupJob *j) {
        const Config *cfg = j->cleanup->daemon->config;
        VirtualNode *frontier = NULL;

        for (VirtualNode *n = j->frontier; n; n = n->round_next) {
                if (!n->parent)
                        continue;
                /* The address its own parent expanded into: delivered as it is (Postfix's "a -> a, b"). */
                if (strcasecmp(n->address, n->parent->address) == 0) {
                        n->final = true;
                        continue;
                }
                for (VirtualNode *a = n->parent->parent; a; a = a->parent)
                        if (strcasecmp(a->address, n->address) == 0) {
                                _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                                log_mail(LOG_WARNING, NULL,
                                         LOG_FIELDS({ "RECIPIENT", escaped }, { "CLEANUP_ACTION", "reject" },
                                                    { "MESSAGE_ID", POSTBUS_MESSAGE_VIRTUAL_ALIAS_LOOP }),
                                         "virtual alias loop: <%s> expands into itself through virtual_alias_maps",
                                         strempty(escaped));
                                (void) set_text(&j->reject, "554 5.4.6 Virtual alias loop for <%s>", strempty(escaped));
                                job_reply_error(j);
                                return;
                        }
                if (n->depth > (unsigned) cfg->virtual_alias_recursion_limit) {
                        log_warning("virtual_alias_recursion_limit (%" PRIi64 ") exceeded expanding a recipient",
                                    cfg->virtual_alias_recursion_limit);
                        job_set_defer(j, "451 4.6.0 Error: virtual alias recursion limit exceeded");
                        job_reply_error(j);
                        return;
                }
        }
        /* Next round: everything not final yet of this round (the original recipients in the first). */
        for (VirtualNode *n = j->frontier, *next; n; n = next) {
                next = n->round_next;
                if (!n->final) {
                        n->round_next = frontier;
                        frontier = n;
                }
        }
        j->frontier = frontier;
        step_virtual_round(j);
}

static void step_virtual_round(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        const Config *cfg = c->daemon->config;
        VirtualNode *children = NULL;
        int r;

        if (!j->frontier) {
                step_write(j);
                return;
        }
        for (VirtualNode *n = j->frontier; n; n = n->round_next) {
                _cleanup_free_ char *value = NULL;
                _cleanup_strv_free_ char **list = NULL;

                r = cleanup_map_lookup(cleanup_table_lookup, c->virtual_alias_maps, n->address, c->mydestination,
                                       cfg->myorigin, &value);
                if (r < 0) {
                        _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                        log_error_errno(r, "Failed to look up <%s> in virtual_alias_maps: %m", strempty(escaped));
                        job_set_defer(j, "451 4.3.0 Error: virtual_alias_maps lookup failure");
                        break;
                }
                n->final = true;
                if (r == 0)
                        continue;
                r = config_split_list(value, &list);
                if (r < 0) {
                        job_set_defer(j, "451 4.3.0 Error: out of memory");
                        break;
                }
                if (list[0])
                        n->final = false;       /* replaced by what it expands into */
                for (char **a = list; *a; a++) {
                        VirtualNode *child;
                        if (!address_valid(*a) || isempty(*a)) {
                                _cleanup_free_ char *escaped = log_escape(*a, strlen(*a));
                                _cleanup_free_ char *from = log_escape(n->address, strlen(n->address));
                                log_warning("virtual_alias_maps: <%s> expands into the malformed address <%s>, "
                                            "ignoring it", strempty(from), strempty(escaped));
                                continue;
                        }
                        if (j->n_nodes >= j->n_recipients + (size_t) cfg->virtual_alias_expansion_limit) {
                                _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                                log_warning("virtual_alias_expansion_limit (%" PRIi64 ") exceeded expanding <%s>",
                                            cfg->virtual_alias_expansion_limit, strempty(escaped));
                                job_set_defer(j, "451 4.6.0 Error: virtual alias expansion limit exceeded");
                                break;
                        }
                        if (add_node(j, *a, n, &child) < 0) {
                                job_set_defer(j, "451 4.3.0 Error: out of memory");
                                break;
                        }
                        child->round_next = children;
                        children = child;
                }
                if (j->defer)
                        break;
        }
        j->frontier = children;
        for (VirtualNode *n = children; n && !j->defer; n = n->round_next)
                job_rewrite(j, &n->address);
        job_round_start(j, step_virtual_check);
}

static void step_virtual_start(CleanupJob *j) {
        Cleanup *c = j->cleanup;

        if (table_list_is_empty(c->virtual_alias_maps)) {
                step_write(j);
                return;
        }
        j->frontier = NULL;
        for (size_t i = 0; i < j->n_recipients; i++) {
                VirtualNode *n;
                if (add_node(j, j->recipients[i], NULL, &n) < 0) {
                        job_set_defer(j, "451 4.3.0 Error: out of memory");
                        job_reply_error(j);
                        return;
                }
                n->round_next = j->frontier;
                j->frontier = n;
        }
        step_virtual_round(j);
}

/* canonical maps on sender and recipients, masquerading of the sender; what the maps changed is
 * brought into canonical form again (a table may give "user" without a domain). */
static void step_maps(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        int r;

        if (!isempty(j->sender)) {
                r = apply_canonical(j, &j->sender, c->sender_canonical_maps, c->canonical_maps);
                if (r < 0) {
                        job_reply_error(j);
                        return;
                }
                if (r > 0)
                        job_rewrite(j, &j->sender);
        }
        for (size_t i = 0; i < j->n_recipients; i++) {
                r = apply_canonical(j, &j->recipients[i], c->recipient_canonical_maps, c->canonical_maps);
                if (r < 0) {
                        job_reply_error(j);
                        return;
                }
                if (r > 0)
                        job_rewrite(j, &j->recipients[i]);
        }
        /* Header addresses too (canonical_classes: all four by default); as they stand in the header. */
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                HeaderAddress *a = j->header_addresses + i;
                r = apply_canonical(j, &a->address, a->sender ? c->sender_canonical_maps : c->recipient_canonical_maps,
                                    c->canonical_maps);
                if (r < 0) {
                        job_reply_error(j);
                        return;
                }
                if (r > 0)
                        job_rewrite(j, &a->address);
        }
        job_round_start(j, step_masquerade);
}

static void step_masquerade(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        char *out = NULL;
        int r;

        if (!isempty(j->sender)) {
                r = cleanup_masquerade(c->masquerade_domains, c->masquerade_exceptions, j->sender, &out);
                if (r < 0) {
                        job_set_defer(j, "451 4.3.0 Error: out of memory");
                        job_reply_error(j);
                        return;
                }
                if (r > 0) {
                        free(j->sender);
                        j->sender = out;
                }
        }
        /* masquerade_classes: envelope_sender, header_sender, header_recipient. */
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                HeaderAddress *a = j->header_addresses + i;
                out = NULL;
                r = cleanup_masquerade(c->masquerade_domains, c->masquerade_exceptions, a->address, &out);
                if (r < 0) {
                        job_set_defer(j, "451 4.3.0 Error: out of memory");
                        job_reply_error(j);
                        return;
                }
                if (r > 0) {
                        free(a->address);
                        a->address = out;
                }
        }
        step_virtual_start(j);
}

/* ---- the end ----------------------------------------------------------------------------------- */

typedef struct DedupeEntry {
        const char *s;
        size_t index;
} DedupeEntry;

static int dedupe_cmp(const void *a, const void *b) {
        const DedupeEntry *x = a, *y = b;
        int r = strcasecmp(x->s, y->s);
        return r != 0 ? r : (x->index > y->index) - (x->index < y->index);
}

/* Removes later duplicates (any case) from v[0..n), keeping the order; returns the new count. */
static size_t dedupe(char **v, size_t n) {
        DedupeEntry *e = calloc(MAX(n, 1U), sizeof(DedupeEntry));
        bool *drop = calloc(MAX(n, 1U), sizeof(bool));
        size_t k = 0;

        if (!e || !drop) {
                free(e);
                free(drop);
                return n;       /* duplicates only cost a second delivery attempt */
        }
        for (size_t i = 0; i < n; i++)
                e[i] = (DedupeEntry) { v[i], i };
        qsort(e, n, sizeof(DedupeEntry), dedupe_cmp);
        for (size_t i = 1; i < n; i++)
                if (strcasecmp(e[i].s, e[i - 1].s) == 0)
                        drop[e[i].index] = true;
        for (size_t i = 0; i < n; i++)
                if (!drop[i])
                        v[k++] = v[i];
        free(e);
        free(drop);
        return k;
}

/* The DSN options (RFC 3461) of each final recipient: those of the recipient it was submitted as, which an
 * alias expansion passes on to every address it yields. Borrowed from j; both NULL when none was given. */
static int job_dsn_options(CleanupJob *j, char **vec, size_t k, const char ***ret_notify,
                           const char ***ret_orcpt) {
        const char **notify, **orcpt;
        bool any = false;

        *ret_notify = *ret_orcpt = NULL;
        for (size_t i = 0; i < j->n_dsn && i < j->n_recipients; i++)
                any = any || !isempty(j->dsn_notify[i]) || !isempty(j->dsn_orcpt[i]);
        if (!any)
                return 0;
        notify = calloc(k + 1, sizeof(char *));
        orcpt = calloc(k + 1, sizeof(char *));
        if (!notify || !orcpt) {
                free(notify);
                free(orcpt);
                return -ENOMEM;
        }
        for (size_t x = 0; x < k; x++) {
                const char *root = vec[x];

                for (VirtualNode *v = j->nodes; v; v = v->next)
                        if (v->address == vec[x]) {
                                while (v->parent)
                                        v = v->parent;
                                root = v->address;
                                break;
                        }
                for (size_t i = 0; i < j->n_dsn && i < j->n_recipients; i++)
                        if (strcasecmp(j->recipients[i], root) == 0) {
                                notify[x] = j->dsn_notify[i];
                                orcpt[x] = j->dsn_orcpt[i];
                                break;
                        }
        }
        *ret_notify = notify;
        *ret_orcpt = orcpt;
        return 0;
}

static int range_cmp(const void *a, const void *b) {
        const CleanupRange *x = a, *y = b;
        return (x->start > y->start) - (x->start < y->start);
}

static void step_write(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        _cleanup_free_ char *reject = NULL;
        char id[QUEUE_ID_SIZE];
        size_t n = 0;
        int r;

        /* The final recipients: the leaves of the expansion (or the recipients), each once. */
        char **vec = calloc(j->n_nodes + j->n_recipients + 1, sizeof(char *));
        if (!vec) {
                job_set_defer(j, "451 4.3.0 Error: out of memory");
                job_reply_error(j);
                return;
        }
        if (j->nodes) {
                /* nodes is newest first: collect, then reverse into the order of expansion. */
                for (VirtualNode *v = j->nodes; v; v = v->next)
                        if (v->final)
                                vec[n++] = v->address;
                for (size_t a = 0, b = n; a + 1 < b; a++, b--) {
                        char *t = vec[a];
                        vec[a] = vec[b - 1];
                        vec[b - 1] = t;
                }
        } else
                for (size_t i = 0; i < j->n_recipients; i++)
                        vec[n++] = j->recipients[i];
        size_t k = dedupe(vec, n);
        vec[k] = NULL;

        if (k == 0) {
                free(vec);
                (void) set_text(&j->reject, "%s", "554 5.1.0 No recipient addresses found in message header");
                job_reply_error(j);
                return;
        }
        if (j->discard) {
                /* Accepted and dropped, as the administrator asked: the submitter is told it was queued. */
                free(vec);
                r = queue_id_new(id);
                if (r < 0) {
                        job_set_defer(j, "451 4.3.0 Error: cannot make a queue ID");
                        job_reply_error(j);
                        return;
                }
                (void) sd_bus_reply_method_return(j->request, "s", id);
                job_free(j);
                return;
        }

        /* The header edits: removed headers, and the addresses that changed outside them, in order. */
        size_t n_edits = 0;
        CleanupRange *edits = calloc(j->n_drops + j->n_header_addresses + 1, sizeof(CleanupRange));
        if (!edits) {
                free(vec);
                job_set_defer(j, "451 4.3.0 Error: out of memory");
                job_reply_error(j);
                return;
        }
        for (size_t i = 0; i < j->n_drops; i++)
                edits[n_edits++] = j->drops[i];
        for (size_t i = 0; i < j->n_header_addresses; i++) {
                const HeaderAddress *a = j->header_addresses + i;
                bool dropped = false;
                if (streq(a->address, a->original))
                        continue;
                for (size_t d = 0; d < j->n_drops && !dropped; d++)
                        dropped = a->start >= j->drops[d].start && a->end <= j->drops[d].end;
                if (!dropped)
                        edits[n_edits++] = (CleanupRange) { a->start, a->end, a->address };
        }
        qsort(edits, n_edits, sizeof(CleanupRange), range_cmp);

        CleanupRequest req = {
                .content = j->content,
                .size = j->size,
                .sender = j->sender,
                .recipients = vec,
                .attrs = j->attrs,
                .edits = edits,
                .n_edits = n_edits,
                .hold = j->hold,
        };
        r = job_dsn_options(j, vec, k, &req.dsn_notify, &req.dsn_orcpt);
        if (r >= 0)
                r = cleanup_message_write(c, &req, id, &reject);
        free(req.dsn_notify);
        free(req.dsn_orcpt);
        free(vec);
        free(edits);
        if (r < 0) {
                job_set_defer(j, "451 4.3.0 Error: queue file write error");
                job_reply_error(j);
                return;
        }
        if (reject) {
                j->reject = TAKE_PTR(reject);
                job_reply_error(j);
                return;
        }
        r = cleanup_commit_later(c, j->request, id);
        if (r < 0) {
                /* written but never confirmed: the sender retries, at worst a duplicate */
                job_set_defer(j, "451 4.3.0 Error: queue file write error");
                job_reply_error(j);
                return;
        }
        job_free(j);
}

/* ---- the header pass --------------------------------------------------------------------------- */

static int add_drop(CleanupJob *j, size_t start, size_t end) {
        CleanupRange *n = realloc(j->drops, (j->n_drops + 1) * sizeof(CleanupRange));
        if (!n)
                return -ENOMEM;
        j->drops = n;
        j->drops[j->n_drops++] = (CleanupRange) { .start = start, .end = end };
        return 0;
}

static int add_recipient(CleanupJob *j, const char *address) {
        if (j->n_recipients >= CLEANUP_RECIPIENTS_MAX)
                return -E2BIG;
        char **n = realloc(j->recipients, (j->n_recipients + 2) * sizeof(char *));
        if (!n)
                return -ENOMEM;
        j->recipients = n;
        n[j->n_recipients] = strdup(address);
        if (!n[j->n_recipients])
                return -ENOMEM;
        n[++j->n_recipients] = NULL;
        return 0;
}

static bool name_is(const char *h, size_t len, const char *name) {
        size_t n = strlen(name);
        return len > n && h[n] == ':' && strncasecmp(h, name, n) == 0;
}

/* The header checks' view of a header: continuation line breaks removed, bounded. */
static char *logical_header(const char *h, size_t len, size_t limit) {
        char *out = malloc(MIN(len, limit) + 1), *o = out;

        if (!out)
                return NULL;
        for (size_t i = 0; i < len && (size_t) (o - out) < limit; i++)
                if (h[i] != '\n' && h[i] != '\r' && h[i] != '\0')
                        *o++ = h[i];
        *o = '\0';
        return out;
}

static const char *const sender_headers[] = {
        "From", "Sender", "Reply-To", "Return-Receipt-To", "Errors-To", "Resent-From", "Resent-Sender",
        "Resent-Reply-To", NULL,
};
static const char *const recipient_headers[] = {
        "To", "Cc", "Bcc", "Apparently-To", "Resent-To", "Resent-Cc", "Resent-Bcc", NULL,
};

/* Notes the addresses of a sender or recipient header, for canonical maps and masquerading (and for
 * rewrite, in local mail). */
static int collect_header_addresses(CleanupJob *j, const char *h, size_t hlen, size_t start) {
        Cleanup *c = j->cleanup;
        bool sender = false, recipient = false;
        CleanupAddress *list = NULL;
        int n;

        if (table_list_is_empty(c->canonical_maps) && table_list_is_empty(c->sender_canonical_maps) &&
            table_list_is_empty(c->recipient_canonical_maps) && !c->masquerade_domains[0] &&
            !streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup"))
                return 0;
        for (const char *const *n1 = sender_headers; *n1 && !sender; n1++)
                sender = name_is(h, hlen, *n1);
        for (const char *const *n2 = recipient_headers; *n2 && !recipient; n2++)
                recipient = name_is(h, hlen, *n2);
        if (!sender && !recipient)
                return 0;
        if (j->n_header_addresses >= CLEANUP_HEADER_ADDRESSES_MAX)
                return 0;

        const char *colon = memchr(h, ':', hlen);
        size_t value = (size_t) (colon + 1 - h);
        n = cleanup_addrlist_parse(colon + 1, hlen - value, CLEANUP_HEADER_ADDRESSES_MAX - j->n_header_addresses,
                                   &list);
        if (n == -E2BIG)
                return 0;       /* too many to rewrite: the header stays as it is */
        if (n < 0)
                return n;
        HeaderAddress *na = realloc(j->header_addresses,
                                    (j->n_header_addresses + (size_t) n + 1) * sizeof(HeaderAddress));
        if (!na) {
                cleanup_addrlist_free(list, (size_t) n);
                return -ENOMEM;
        }
        j->header_addresses = na;
        for (int i = 0; i < n; i++) {
                /* Only plain addr-specs that an envelope could carry, written without comments or white
                 * space inside: the rewritten text replaces the whole span. */
                if (!address_valid(list[i].address) || list[i].end - list[i].start != strlen(list[i].address))
                        continue;
                HeaderAddress *a = na + j->n_header_addresses;
                a->start = start + value + list[i].start;
                a->end = start + value + list[i].end;
                a->sender = sender;
                a->original = strdup(list[i].address);
                a->address = strdup(list[i].address);
                if (!a->original || !a->address) {
                        free(a->original);
                        free(a->address);
                        cleanup_addrlist_free(list, (size_t) n);
                        return -ENOMEM;
                }
                j->n_header_addresses++;
        }
        cleanup_addrlist_free(list, (size_t) n);
        return 0;
}

static int header_pass(CleanupJob *j, size_t header_end) {
        Cleanup *c = j->cleanup;
        const Config *cfg = c->daemon->config;
        const char *buf = j->content;
        bool extract = streq(strempty(cleanup_attr_get(j->attrs, "extract_recipients")), "yes");
        bool local = streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup");
        bool resent = false;
        int r;

        /* RFC 5322 3.6.6: with Resent- fields, the recipients are those of the resending. */
        for (size_t off = 0; off < header_end;) {
                const char *nl = memchr(buf + off, '\n', header_end - off);
                size_t end = nl ? (size_t) (nl - buf) + 1 : header_end;
                if (end - off > 7 && strncasecmp(buf + off, "Resent-", 7) == 0)
                        resent = true;
                off = end;
        }

        for (size_t off = 0; off < header_end;) {
                size_t start = off, end = off;
                /* One logical header: its first line and the lines that continue it. */
                do {
                        const char *nl = memchr(buf + end, '\n', header_end - end);
                        end = nl ? (size_t) (nl - buf) + 1 : header_end;
                } while (end < header_end && (buf[end] == ' ' || buf[end] == '\t'));
                off = end;
                const char *h = buf + start;
                size_t hlen = end - start;

                if (c->header_checks) {
                        _cleanup_free_ char *logical = logical_header(h, hlen, (size_t) cfg->header_size_limit);
                        if (!logical)
                                return -ENOMEM;
                        const CleanupCheckRule *rule = cleanup_checks_match(c->header_checks, logical);
                        if (rule && rule->action != CLEANUP_CHECK_DUNNO) {
                                _cleanup_free_ char *escaped = log_escape(logical, MIN(strlen(logical), (size_t) 200));
                                _cleanup_free_ char *sender = log_escape(j->sender, strlen(j->sender));
                                const char *action = cleanup_check_action_to_string(rule->action);
                                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLEANUP_ACTION", action }),
                                         "%s: header %s from sender=<%s>%s%s (%s:%u)", action, strempty(escaped),
                                         strempty(sender), rule->text ? ": " : "", strempty(rule->text),
                                         c->header_checks->path, rule->line);
                        }
                        if (rule)
                                switch (rule->action) {
                                case CLEANUP_CHECK_REJECT: {
                                        const char *t = rule->text ?: "message content rejected";
                                        /* The text may bring its own enhanced status code. */
                                        bool has_code = isdigit((unsigned char) t[0]) && t[1] == '.';
                                        if (set_text(&j->reject, "550 %s%s", has_code ? "" : "5.7.1 ", t) < 0)
                                                return -ENOMEM;
                                        return 0;
                                }
                                case CLEANUP_CHECK_DISCARD:
                                        j->discard = true;
                                        break;
                                case CLEANUP_CHECK_HOLD:
                                        if (!j->hold) {
                                                j->hold = strdup(rule->text ?: "header_checks");
                                                if (!j->hold)
                                                        return -ENOMEM;
                                        }
                                        break;
                                case CLEANUP_CHECK_IGNORE:
                                        if ((r = add_drop(j, start, end)) < 0)
                                                return r;
                                        continue;
                                default:
                                        break;
                                }
                }

                r = collect_header_addresses(j, h, hlen, start);
                if (r < 0)
                        return r;

                if (!extract) {
                        /* Local mail never shows its blind copies, -t or not. */
                        if (local && (name_is(h, hlen, "Bcc") || name_is(h, hlen, "Resent-Bcc")) &&
                            (r = add_drop(j, start, end)) < 0)
                                return r;
                        continue;
                }
                bool to = name_is(h, hlen, resent ? "Resent-To" : "To");
                bool cc = name_is(h, hlen, resent ? "Resent-Cc" : "Cc");
                bool bcc = name_is(h, hlen, resent ? "Resent-Bcc" : "Bcc");
                if (!to && !cc && !bcc)
                        continue;
                const char *colon = memchr(h, ':', hlen);
                CleanupAddress *list = NULL;
                r = cleanup_addrlist_parse(colon + 1, hlen - (size_t) (colon + 1 - h),
                                           CLEANUP_RECIPIENTS_MAX - j->n_recipients, &list);
                if (r < 0)
                        return r;
                for (int i = 0; i < r; i++) {
                        if (!address_valid(list[i].address)) {
                                _cleanup_free_ char *escaped = log_escape(list[i].address, strlen(list[i].address));
                                log_warning("Ignoring the malformed address <%s> in a header.", strempty(escaped));
                                continue;
                        }
                        int k = add_recipient(j, list[i].address);
                        if (k < 0) {
                                cleanup_addrlist_free(list, (size_t) r);
                                return k;
                        }
                }
                cleanup_addrlist_free(list, (size_t) r);
                /* Blind copies stay blind: the header goes. */
                if (bcc && (r = add_drop(j, start, end)) < 0)
                        return r;
        }
        return 0;
}

int cleanup_job_start(Cleanup *c, sd_bus_message *m, int fd, const char *sender, char **recipients,
                      char **dsn_notify, char **dsn_orcpt, char **attrs) {
        CleanupJob *j;
        CleanupHeaderScan h;
        struct stat st;
        int r;

        j = calloc(1, sizeof(CleanupJob));
        if (!j) {
                strv_free(recipients);
                strv_free(dsn_notify);
                strv_free(dsn_orcpt);
                strv_free(attrs);
                return -ENOMEM;
        }
        j->cleanup = c;
        daemon_busy_inc(c->daemon);
        j->fd = -EBADF;
        j->recipients = recipients;
        for (char **rc = recipients; *rc; rc++)
                j->n_recipients++;
        j->attrs = attrs;
        /* "hold" in a queue file is cleanup's own word (header_checks HOLD), not a submitter's. */
        for (char **a = j->attrs, **o = j->attrs; a && *a; a++) {
                if (strncmp(*a, "hold=", 5) == 0)
                        free(*a);
                else
                        *o++ = *a;
                if (!a[1])
                        *o = NULL;
        }
        j->dsn_notify = dsn_notify;
        j->dsn_orcpt = dsn_orcpt;
        for (char **d = dsn_notify; d && *d; d++)
                j->n_dsn++;
        j->request = sd_bus_message_ref(m);
        j->sender = strdup(sender);
        if (!j->sender) {
                job_free(j);
                return -ENOMEM;
        }

        /* The descriptor belongs to the message: a copy outlives it. */
        j->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
        if (j->fd < 0 || fstat(j->fd, &st) < 0) {
                r = log_error_errno(errno, "Failed to take the submitted message: %m");
                job_free(j);
                return r;
        }
        if (!S_ISREG(st.st_mode)) {
                log_error("The submitted message is not a regular file.");
                job_free(j);
                return -EBADF;
        }
        if (st.st_size > c->daemon->config->message_size_limit) {
                (void) set_text(&j->reject, "%s", "552 5.3.4 Message file too big");
                job_reply_error(j);
                return 0;
        }
        j->size = (size_t) st.st_size;
        if (j->size > 0) {
                j->content = mmap(NULL, j->size, PROT_READ, MAP_PRIVATE, j->fd, 0);
                if (j->content == MAP_FAILED) {
                        j->content = NULL;
                        r = log_error_errno(errno, "Failed to map the submitted message: %m");
                        job_free(j);
                        return r;
                }
        }

        r = cleanup_header_scan(j->content, j->size, &h);
        if (r < 0) {
                job_free(j);
                return r;
        }
        size_t header_end = h.header_end;
        cleanup_header_scan_done(&h);
        r = header_pass(j, header_end);
        if (r == -E2BIG)
                (void) set_text(&j->reject, "%s", "552 5.5.3 Error: too many recipients");
        else if (r < 0) {
                job_free(j);
                return r;
        }
        if (j->reject) {
                job_reply_error(j);
                return 0;
        }
        if (j->n_recipients == 0) {
                (void) set_text(&j->reject, "%s", "554 5.1.0 No recipient addresses found in message header");
                job_reply_error(j);
                return 0;
        }

        /* Round one: the canonical form of the envelope, and of the header addresses of local mail (as
         * Postfix's local_header_rewrite_clients: mail from other hosts keeps its headers as written). */
        job_rewrite(j, &j->sender);
        for (size_t i = 0; i < j->n_recipients; i++)
                job_rewrite(j, &j->recipients[i]);
        if (streq(strempty(cleanup_attr_get(j->attrs, "origin")), "pickup"))
                for (size_t i = 0; i < j->n_header_addresses; i++)
                        job_rewrite(j, &j->header_addresses[i].address);
        job_round_start(j, step_maps);
        return 0;
}

char *cleanup_phrase(const char *name) {
        bool atoms = true;
        char *out, *o;

        for (const char *p = name; *p; p++)
                if (!isalnum((unsigned char) *p) && !strchr(" !#$%&'*+-/=?^_`{|}~", *p) && (unsigned char) *p < 0x80)
                        atoms = false;
        if (atoms && name[0] != ' ') {
                out = strdup(name);
                if (out)
                        for (o = out; *o; o++)
                                if ((unsigned char) *o < 0x20)
                                        *o = ' ';
                return out;
        }
        out = o = malloc(strlen(name) * 2 + 3);
        if (!out)
                return NULL;
        *o++ = '"';
        for (const char *p = name; *p; p++) {
                if ((unsigned char) *p < 0x20 || *p == 0x7F)
                        continue;
                if (*p == '"' || *p == '\\')
                        *o++ = '\\';
                *o++ = *p;
        }
        *o++ = '"';
        *o = '\0';
        return out;
}
