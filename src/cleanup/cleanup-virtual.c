/* cleanup-virtual.c: virtual alias expansion of one submission's recipients, round by round, each round's
 * results brought into canonical form by rewrite before the next, with loop and limit checks. Runs in the
 * cleanup process. */
#include <inttypes.h>
#include <strings.h>

#include "address.h"
#include "address-map.h"
#include "cleanup-maps.h"
#include "cleanup.h"
#include "log.h"

/* A recipient in the virtual alias expansion tree. */
struct CleanupVirtualNode {
        char *address;
        size_t root;                    /* the index of the submitted recipient it comes from */
        CleanupVirtualNode *parent;
        unsigned depth;
        bool final;
        CleanupVirtualNode *next;       /* all nodes, for freeing */
        CleanupVirtualNode *round_next; /* the frontier of the current round */
};

static void virtual_round(CleanupJob *j);

static int add_node(CleanupJob *j, const char *address, size_t root, CleanupVirtualNode *parent,
                    CleanupVirtualNode **ret) {
        CleanupVirtualNode *n = calloc(1, sizeof(CleanupVirtualNode));

        if (!n)
                return -ENOMEM;
        n->address = strdup(address);
        if (!n->address) {
                free(n);
                return -ENOMEM;
        }
        n->root = parent ? parent->root : root;
        n->parent = parent;
        n->depth = parent ? parent->depth + 1 : 0;
        n->next = j->nodes;
        j->nodes = n;
        j->n_nodes++;
        *ret = n;
        return 0;
}

/* The children of the last round are canonical now: check them, and expand them in the next round. */
static void virtual_check(CleanupJob *j) {
        const Config *cfg = j->cleanup->daemon->config;
        CleanupVirtualNode *frontier = NULL;

        for (CleanupVirtualNode *n = j->frontier; n; n = n->round_next) {
                if (!n->parent)
                        continue;
                /* The address its own parent expanded into: delivered as it is (Postfix's "a -> a, b"). */
                if (strcasecmp(n->address, n->parent->address) == 0) {
                        n->final = true;
                        continue;
                }
                for (CleanupVirtualNode *a = n->parent->parent; a; a = a->parent)
                        if (strcasecmp(a->address, n->address) == 0) {
                                _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                                log_mail(LOG_WARNING, NULL,
                                         LOG_FIELDS({ "RECIPIENT", escaped }, { "CLEANUP_ACTION", "reject" },
                                                    { "MESSAGE_ID", POSTBUS_MESSAGE_VIRTUAL_ALIAS_LOOP }),
                                         "virtual alias loop: <%s> expands into itself through virtual_alias_maps",
                                         strempty(escaped));
                                (void) cleanup_job_reject(j, "554 5.4.6 Virtual alias loop for <%s>",
                                                          strempty(escaped));
                                cleanup_job_reply_error(j);
                                return;
                        }
                if (n->depth > (unsigned) cfg->virtual_alias_recursion_limit) {
                        log_warning("virtual_alias_recursion_limit (%" PRIi64 ") exceeded expanding a recipient",
                                    cfg->virtual_alias_recursion_limit);
                        cleanup_job_fail(j, "451 4.6.0 Error: virtual alias recursion limit exceeded");
                        return;
                }
        }
        /* Next round: everything not final yet of this round (the original recipients in the first). */
        for (CleanupVirtualNode *n = j->frontier, *next; n; n = next) {
                next = n->round_next;
                if (!n->final) {
                        n->round_next = frontier;
                        frontier = n;
                }
        }
        j->frontier = frontier;
        virtual_round(j);
}

/* Adds what n expands into (value, a list) as its children; -1 when that settles a temporary failure. */
static int expand_node(CleanupJob *j, CleanupVirtualNode *n, const char *value, CleanupVirtualNode **children) {
        const Config *cfg = j->cleanup->daemon->config;
        _cleanup_strv_free_ char **list = NULL;

        if (config_split_list(value, &list) < 0) {
                cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                return -1;
        }
        if (list[0])
                n->final = false;       /* replaced by what it expands into */
        for (char **a = list; *a; a++) {
                CleanupVirtualNode *child;
                if (!address_valid(*a) || isempty(*a)) {
                        _cleanup_free_ char *escaped = log_escape(*a, strlen(*a));
                        _cleanup_free_ char *from = log_escape(n->address, strlen(n->address));
                        log_warning("virtual_alias_maps: <%s> expands into the malformed address <%s>, ignoring it",
                                    strempty(from), strempty(escaped));
                        continue;
                }
                if (j->n_nodes >= j->n_recipients + (size_t) cfg->virtual_alias_expansion_limit) {
                        _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                        log_warning("virtual_alias_expansion_limit (%" PRIi64 ") exceeded expanding <%s>",
                                    cfg->virtual_alias_expansion_limit, strempty(escaped));
                        cleanup_job_defer(j, "451 4.6.0 Error: virtual alias expansion limit exceeded");
                        return -1;
                }
                if (add_node(j, *a, 0, n, &child) < 0) {
                        cleanup_job_defer(j, "451 4.3.0 Error: out of memory");
                        return -1;
                }
                child->round_next = *children;
                *children = child;
        }
        return 0;
}

static void virtual_round(CleanupJob *j) {
        Cleanup *c = j->cleanup;
        CleanupVirtualNode *children = NULL;
        int r;

        if (!j->frontier) {
                cleanup_job_write(j);
                return;
        }
        for (CleanupVirtualNode *n = j->frontier; n; n = n->round_next) {
                _cleanup_free_ char *value = NULL;

                r = address_map_find(address_map_table_lookup, c->virtual_alias_maps, n->address,
                                           c->mydestination, c->daemon->config->myorigin,
                                           c->daemon->config->recipient_delimiter, c->propagate_virtual, &value);
                if (r < 0) {
                        _cleanup_free_ char *escaped = log_escape(n->address, strlen(n->address));
                        log_error_errno(r, "Failed to look up <%s> in virtual_alias_maps: %m", strempty(escaped));
                        cleanup_job_defer(j, "451 4.3.0 Error: virtual_alias_maps lookup failure");
                        break;
                }
                n->final = true;
                if (r > 0 && expand_node(j, n, value, &children) < 0)
                        break;
        }
        j->frontier = children;
        for (CleanupVirtualNode *n = children; n && !j->defer; n = n->round_next)
                cleanup_job_rewrite(j, &n->address);
        cleanup_job_round_start(j, virtual_check);
}

void cleanup_virtual_start(CleanupJob *j) {
        if (table_list_is_empty(j->cleanup->virtual_alias_maps)) {
                cleanup_job_write(j);
                return;
        }
        j->frontier = NULL;
        for (size_t i = 0; i < j->n_recipients; i++) {
                CleanupVirtualNode *n;
                if (add_node(j, j->recipients[i], i, NULL, &n) < 0) {
                        cleanup_job_fail(j, "451 4.3.0 Error: out of memory");
                        return;
                }
                n->round_next = j->frontier;
                j->frontier = n;
        }
        virtual_round(j);
}

int cleanup_virtual_final(CleanupJob *j, char ***ret, size_t **ret_roots, size_t *ret_n) {
        _cleanup_free_ char **vec = calloc(j->n_nodes + j->n_recipients + 1, sizeof(char *));
        _cleanup_free_ size_t *roots = calloc(j->n_nodes + j->n_recipients + 1, sizeof(size_t));
        size_t n = 0;

        if (!vec || !roots)
                return -ENOMEM;
        if (j->nodes) {
                /* nodes is newest first: collect, then reverse into the order of expansion. */
                for (CleanupVirtualNode *v = j->nodes; v; v = v->next)
                        if (v->final) {
                                vec[n] = v->address;
                                roots[n++] = v->root;
                        }
                for (size_t a = 0, b = n; a + 1 < b; a++, b--) {
                        SWAP_TWO(vec[a], vec[b - 1]);
                        SWAP_TWO(roots[a], roots[b - 1]);
                }
        } else
                for (size_t i = 0; i < j->n_recipients; i++) {
                        vec[n] = j->recipients[i];
                        roots[n++] = i;
                }
        *ret = TAKE_PTR(vec);
        *ret_roots = TAKE_PTR(roots);
        *ret_n = n;
        return 0;
}

void cleanup_virtual_free(CleanupJob *j) {
        while (j->nodes) {
                CleanupVirtualNode *n = j->nodes;
                j->nodes = n->next;
                free(n->address);
                free(n);
        }
        j->frontier = NULL;
        j->n_nodes = 0;
}
