/* local.h: private to the local role: delivery results, the mbox and Maildir helpers, the writers of
 * mailboxes, the delivery child and its expansion of a recipient, and the Delivery1 bus service. */
#pragma once

#include <pwd.h>
#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "delivery-agent.h"
#include "format-util.h"
#include "mailbox.h"
#include "queue-file.h"
#include "string-util.h"
#include "table.h"

/* Most recipients in one Deliver call. */
#define LOCAL_RECIPIENTS_MAX 1000U

/* The destinations of aliases(5) values and of :include: and .forward files. */
typedef enum LocalTargetType {
        LOCAL_TARGET_ADDRESS,           /* user, user@domain: expanded again when local, else forwarded */
        LOCAL_TARGET_MAILBOX,           /* \user: the user's own mailbox, without aliases or .forward */
        LOCAL_TARGET_COMMAND,           /* |command: run with the message on stdin */
        LOCAL_TARGET_FILE,              /* /path: appended in mbox format; ending in '/': a Maildir */
        LOCAL_TARGET_INCLUDE,           /* :include:/path: more destinations, one list per line */
        _LOCAL_TARGET_TYPE_MAX,
        _LOCAL_TARGET_TYPE_INVALID = -EINVAL,
} LocalTargetType;

typedef struct LocalTarget {
        LocalTargetType type;
        char *value;                    /* the address, command, path or user, without its marker */
} LocalTarget;

typedef struct LocalTargetList {
        LocalTarget *items;
        size_t n;
} LocalTargetList;

void local_target_list_done(LocalTargetList *l);
const char *local_target_type_to_string(LocalTargetType t);

/* Most bytes of one logical line of a .forward or :include: file, and of such a file. */
#define LOCAL_LIST_LINE_MAX (8U * 1024U)
#define LOCAL_LIST_FILE_MAX (64U * 1024U)

/* Appends to l the destinations of one alias value or one line of a .forward or :include: file: a list
 * separated by commas, where double quotes protect commas and blanks ("|cmd a, b"). -EINVAL for an
 * unbalanced quote or an empty destination after its marker, -E2BIG when l would hold more than max. */
int local_targets_parse(const char *s, size_t len, size_t max, LocalTargetList *l);
/* A whole .forward or :include: file: one list per line; empty lines and lines starting with '#'
 * are skipped. -EINVAL also for a NUL byte or a line longer than LOCAL_LIST_LINE_MAX. */
int local_targets_parse_file(const char *buf, size_t len, size_t max, LocalTargetList *l);

/* Replaces every byte outside Postfix's command_expansion_filter set with '_', in place. */
void local_sanitize(char *s);

/* Collects the Delivered-To values of a message's headers (lower case, trimmed), fed in pieces split
 * anywhere; stops at the end of the headers. At most max values are kept; a header longer than
 * LOCAL_HEADER_LINE_MAX cannot be a Delivered-To of an address and is skipped. */
#define LOCAL_HEADER_LINE_MAX 1024U
typedef struct LocalHeaderScan {
        char buf[LOCAL_HEADER_LINE_MAX];
        size_t len;
        bool truncated;                 /* the current header did not fit */
        bool line_start;
        bool done;                      /* the empty line after the headers was seen */
        char **values;
        size_t n_values, max_values;
} LocalHeaderScan;

void local_header_scan_init(LocalHeaderScan *s, size_t max_values);
/* 1 once the end of the headers is reached, 0 for more, -ENOMEM. */
int local_header_scan_feed(LocalHeaderScan *s, const char *data, size_t len);
/* Takes the last header into account when the content ends without a body. */
int local_header_scan_finish(LocalHeaderScan *s);
bool local_header_scan_has(const LocalHeaderScan *s, const char *address);
void local_header_scan_done(LocalHeaderScan *s);

/* The result of a |command delivery, as Postfix maps it: exit 0 is sent; a sysexits.h code has its own
 * enhanced status (EX_TEMPFAIL and EX_OSERR temporary); another status or a signal bounces 5.3.0 or
 * defers 4.3.0; the time limit bounces. output (may be NULL) is the command's output for the text. */
void local_command_status(int wait_status, bool timed_out, const char *command, const char *output,
                          MailboxResult *ret);

/* The identity a command or file delivery runs as. */
typedef struct LocalPrivs {
        uid_t uid;
        gid_t gid;
        char *user;
        char *home;
        char *shell;
} LocalPrivs;

void local_privs_done(LocalPrivs *p);
/* local-privs.c: the identity of pw (a shell of "/bin/sh" where it has none), and a copy of p. */
int local_privs_from_pw(const struct passwd *pw, LocalPrivs *ret);
int local_privs_copy(const LocalPrivs *p, LocalPrivs *ret);

/* Runs command with /bin/sh -c as privs, in a session of its own, with the environment env
 * ("NAME=value", NULL-terminated) and the message on stdin (From_ line, Return-Path and Delivered-To
 * headers first); captures its output (bounded) and kills its process group after time_limit_usec. */
void local_command_run(const MailboxMessage *m, const char *command, const LocalPrivs *privs, char **env,
                       uint64_t time_limit_usec, MailboxResult *ret);

/* Submits a copy of the message to cleanup for recipients, with "Delivered-To: delivered_to" first and
 * the envelope sender given (NULL: the original); the new queue ID into ret_id, or a result that says why
 * not. */
int local_forward_submit(const MailboxMessage *m, const char *delivered_to, const char *sender, char **recipients,
                         uint64_t timeout_usec, char ret_id[static QUEUE_ID_SIZE], MailboxResult *ret);

/* The report of a delivery child: one line per final delivery ("D <dsn> <to>\t<orig_to>\t<text>"), per
 * warning for the journal ("W <text>"), and per forward file ignored as unsafe ("I <path>\t<why>"). Tabs
 * and control characters in fields become blanks. */
#define LOCAL_REPORT_MAX (1024U * 1024U)

/* Where report lines go: local keeps its own in memory (no system call per line); a delivery child, which
 * cannot write local's memory, appends them to a memory file (fd >= 0) that local reads when it ends. */
typedef struct LocalReport {
        int fd;                         /* >= 0: lines are appended here; else to buf */
        Buffer buf;
} LocalReport;

#define LOCAL_REPORT_MEMORY ((LocalReport) { .fd = -EBADF })
void local_report_done(LocalReport *r);

int local_report_delivery(LocalReport *rep, const char *to, const char *orig_to, const MailboxResult *r);
int local_report_warning(LocalReport *rep, const char *fmt, ...) _printf_(2, 3);
int local_report_ignored(LocalReport *rep, const char *path, const char *fmt, ...) _printf_(3, 4);

typedef struct LocalReportLine {
        char type;                      /* 'D', 'W' or 'I' */
        MailboxResult result;             /* 'D' */
        char *to, *orig_to;             /* 'D', escaped */
        char *path;                     /* 'I', escaped */
        char *text;                     /* 'W' and 'I', escaped */
} LocalReportLine;

/* Parses one line (without its newline). -EBADMSG when it is malformed. */
int local_report_parse(const char *line, size_t len, LocalReportLine *ret);
void local_report_line_done(LocalReportLine *l);

/* What an expansion leaves to do: the final deliveries, each with the address it reports as. Mailboxes are
 * written by the per-user workers; files, commands and forwarding by a process of their own. */
typedef enum LocalJobType {
        LOCAL_JOB_MAILBOX,              /* the mailbox of privs (mail spool or home_mailbox) */
        LOCAL_JOB_FILE,                 /* value: an mbox file or a Maildir/, written as privs */
        LOCAL_JOB_COMMAND,              /* value: a command run as privs with env */
        LOCAL_JOB_PASS,                 /* value: "transport:nexthop" (mailbox_transport, fallback_transport) */
        _LOCAL_JOB_TYPE_MAX,
        _LOCAL_JOB_TYPE_INVALID = -EINVAL,
} LocalJobType;

typedef struct LocalJob {
        LocalJobType type;
        char *address;                  /* Delivered-To:, and to= of the report */
        char *value;
        LocalPrivs privs;
        char **env;
} LocalJob;

/* Addresses of other domains that share a Delivered-To: one submission to cleanup. */
typedef struct LocalForwardGroup {
        char *delivered_to;
        char *sender;                   /* owner-<alias> (owner_request_special); NULL: the original */
        char **recipients;              /* NULL-terminated */
        size_t n;
} LocalForwardGroup;

typedef struct LocalPlan {
        LocalJob *jobs;
        size_t n_jobs;
        LocalForwardGroup *groups;
        size_t n_groups;
} LocalPlan;

void local_plan_done(LocalPlan *p);
/* Whether the plan has work for a process of its own (files, commands, forwarding). */
bool local_plan_needs_child(const LocalPlan *p);

/* alias_maps, and the per-user maps of the mailbox delivery (mailbox_transport_maps, mailbox_command_maps,
 * fallback_transport_maps), opened once and kept open by the long-lived local process (a rebuilt table is
 * reopened at its next lookup). */
typedef struct LocalAliases {
        const Config *config;
        Table **tables;
        size_t n_tables;
        TableList *mailbox_transport_maps, *mailbox_command_maps, *fallback_transport_maps;
} LocalAliases;

int local_aliases_open(LocalAliases *a, const Config *c);
void local_aliases_done(LocalAliases *a);

/* Expands m->recipient (aliases, :include:, .forward) into plan, writing a report line for every destination
 * that fails (and for warnings) to report_fd. Runs in local, the long-lived process, as root; list files are
 * opened with the rights of their user. */
void local_expand(const MailboxMessage *m, const Config *c, LocalAliases *aliases, LocalReport *report,
                  LocalPlan *plan);

/* The way Postfix reaches the mailbox of pw: the identity a per-user worker takes for good. sgid is a group
 * the worker may switch its effective gid to (the group of a group-writable mail spool); uid 0: a spool that
 * only root can write, served by one worker that stays root and switches its effective ids per delivery. */
typedef struct LocalWorkerId {
        uid_t uid;
        gid_t gid;
        gid_t sgid;
} LocalWorkerId;

LocalWorkerId local_worker_id(const Config *c, const LocalPrivs *user);

/* A request to a worker, one SOCK_SEQPACKET message: this header, then the user's name, home, the sender, the
 * recipient (for Delivered-To:) and the original recipient (for X-Original-To:, "" for none), each
 * NUL-terminated, then the queue file's file_size bytes. A queue file over LOCAL_WORK_FILE_MAX (or one local
 * did not read whole) comes as a descriptor instead (SCM_RIGHTS), and file_size is 0. The answer is a
 * result as mailbox_result_format() writes it. */
typedef struct LocalWorkHeader {
        uint32_t uid;
        uint32_t gid;
        uint32_t file_size;
} LocalWorkHeader;
#define LOCAL_WORK_MAX (16U * 1024U)            /* the header and the names */
#define LOCAL_WORK_FILE_MAX (64U * 1024U)
/* Most requests local has sent a worker and not had answered; the worker writes those that wait together
 * and makes them durable together (group commit) before it answers any. */
#define LOCAL_WORKER_BATCH 16U

/* home_mailbox names a Maildir (it ends in "/"): no lock, and one sync of new/ for all a worker stored. */
bool local_home_maildir(const Config *c);
/* How an mbox file is locked (mailbox_delivery_lock, deliver_lock_*, stale_lock_time): for the workers and
 * for /file destinations. */
MailboxLocking local_mailbox_locking(const Config *c);

/* The worker's life: takes on id for good, then serves deliveries on fd until it is closed. */
_Noreturn void local_worker_main(int fd, const Config *c, const LocalWorkerId *id, const char *user);

/* local-pool.c: the per-user workers as local sees them. A worker is forked once per identity and reused for
 * every delivery to its user; one idle for LOCAL_WORKER_IDLE_USEC is closed. At most default_process_limit
 * live at once: the idle one used longest ago makes way for a new one, and while all are busy a delivery
 * for another identity waits in line. */
#define LOCAL_WORKER_IDLE_USEC (60U * USEC_PER_SEC)
typedef struct LocalPool LocalPool;
typedef void (*LocalPoolDone)(const char *recipient, const MailboxResult *r, void *userdata);

int local_pool_new(Daemon *d, LocalPool **ret);
/* A reload: each worker, forked with the configuration of its time, is closed once idle, so that the next
 * delivery to its user forks one with the new. */
void local_pool_reload(LocalPool *p);
LocalPool *local_pool_free(LocalPool *p);
/* Hands m (its queue file goes along as a descriptor) to the worker of user; done gets the result, or a
 * temporary failure when the worker ends without one. */
int local_pool_deliver(LocalPool *p, const MailboxMessage *m, const LocalPrivs *user, LocalPoolDone done,
                       void *userdata);
/* Waits for the answers owed to userdata (blocking: used when local stops), calling done for each. */
void local_pool_drain(LocalPool *p, void *userdata);
/* Kills the workers that hold deliveries of userdata (its time is up); done follows with a failure. */
void local_pool_kill(LocalPool *p, void *userdata);
/* Forgets the deliveries of userdata: done is not called for them. */
void local_pool_forget(LocalPool *p, void *userdata);

/* local-pass.c: mailbox_transport and fallback_transport: a delivery handed on to the lmtp delivery agent. */
typedef struct LocalPass LocalPass;
typedef void (*LocalPassDone)(const MailboxResult *r, void *userdata);

/* master.cf beside d's main.cf is read now and at each local_pass_reload(). */
int local_pass_new(Daemon *d, LocalPass **ret);
int local_pass_reload(LocalPass *p, const Config *c);
LocalPass *local_pass_free(LocalPass *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(LocalPass *, local_pass_free);
/* Hands the recipient index of req, expanded to address, to the service spec ("transport:nexthop"): 1, and
 * done gets the agent's result for it (the agent logs it) or a temporary failure, later; 0 when it is settled
 * now, with *ret (no such lmtp service); negative errno: nothing was started. */
int local_pass_deliver(LocalPass *p, const DeliveryRequest *req, uint32_t index, const char *address,
                       const char *spec, LocalPassDone done, void *userdata, MailboxResult *ret);
/* Forgets the deliveries of userdata: done is not called for them. */
void local_pass_forget(LocalPass *p, void *userdata);

/* local-child.c: forks the process that runs the files, commands and forwarding of plan for m, writing its
 * report lines to report_fd. */
int local_child_start(const MailboxMessage *m, const Config *config, const LocalPlan *plan, int report_fd,
                      pid_t *ret_pid);

/* Why a process that ended with si without a full report failed, as a temporary failure. timed_out: it
 * was killed for the time limit. */
void local_child_failure(const siginfo_t *si, bool timed_out, MailboxResult *ret);

/* The role: the org.postbus.Delivery1 service on listen_fd, for uid 0 and peer_uid ((uid_t) -1: none), and
 * the deliveries in progress. delivery_agent_free() waits for the running deliveries, answers every call in
 * progress, closes the connections, and frees. */
int local_new(Daemon *d, int listen_fd, uid_t peer_uid, DeliveryAgent **ret);
DeliveryAgent *local_free(DeliveryAgent *a);
/* A reload (local.c checked the new configuration): master.cf is read again, alias_maps and the workers
 * follow it. Negative errno: master.cf is not valid, nothing changed. */
int local_reload(DeliveryAgent *a, const Config *new);

/* ---- inside local_expand(), in local: local-expand.c (the tree of destinations and its walk),
 * local-expand-alias.c (alias_maps), local-expand-include.c (:include: files), local-expand-forward.c
 * (.forward files, and addresses sent on to other domains), local-expand-deliver.c (the final deliveries:
 * mailbox, /file, |command, into the plan) ---- */

/* What named a destination. */
typedef enum LocalSource {
        LOCAL_SOURCE_RECIPIENT,
        LOCAL_SOURCE_ALIAS,
        LOCAL_SOURCE_INCLUDE,
        LOCAL_SOURCE_FORWARD,
        _LOCAL_SOURCE_MAX,
        _LOCAL_SOURCE_INVALID = -EINVAL,
} LocalSource;

/* Whether list (allow_mail_to_commands, allow_mail_to_files) allows destinations named by source. */
bool local_source_allowed(const char *list, LocalSource source);

/* A destination in the tree of one recipient's expansion. */
typedef struct LocalItem {
        LocalTargetType type;
        char *value;                    /* ADDRESS: qualified; MAILBOX: user; else command or path */
        size_t parent;                  /* SIZE_MAX: the recipient itself */
        unsigned depth;
        LocalSource source;
        LocalPrivs privs;               /* for commands, files and :include: (uid (uid_t) -1: none yet) */
        bool skip_alias, skip_forward;
        bool luser;                     /* luser_relay's address, or below it: no second relay */
        char *owner;                    /* an alias with an owner-alias: owner-<name>@$myorigin */
        char *unmatched;                /* :include: named by a list that propagated "+ext": its addresses
                                         * get it too when propagate_unmatched_extensions lists include */
} LocalItem;

typedef struct LocalExpand {
        const MailboxMessage *m;
        const Config *c;
        LocalReport *report;
        LocalHeaderScan scan;
        LocalItem *items;
        size_t n_items;
        char **seen;                    /* final deliveries done, as "type\nidentity\nvalue" */
        size_t n_seen;
        LocalPlan *plan;
        char **mydestination;
        LocalAliases *aliases;
        bool limit_reported;
} LocalExpand;

/* user+extension: the length of the user part of local and the extension with its delimiter, as Postfix
 * splits at the first of the recipient_delimiter characters (not at the very start). */
typedef struct LocalExtension {
        size_t user_len;
        char delimiter[2];
        const char *extension;          /* NULL: none */
} LocalExtension;

LocalExtension local_extension_split(const Config *c, const char *local);
/* propagate_unmatched_extensions lists word (alias, forward, include): a list found for the user part
 * without its extension gives unmatched ("+ext") to each address it holds (user+ext@domain, user+ext), as
 * Postfix's local does. 1 when it did (the list's :include: files then carry it on), 0 when not listed. */
int local_propagate_extension(const LocalExpand *e, const char *word, const char *unmatched, LocalTargetList *l);
/* The :include: items from first on get unmatched, for local_expand_include(). */
int local_expand_mark_unmatched(LocalExpand *e, size_t first, const char *unmatched);
/* ASCII letters to lower case, in place. */
void local_lowercase(char *s);

/* local-expand.c. The local address item i belongs to: itself or its nearest address ancestor (the
 * recipient for SIZE_MAX). */
const char *local_expand_item_address(const LocalExpand *e, size_t i);
/* A report line for a final delivery to to, or for item i (to its address). */
void local_expand_report(LocalExpand *e, const char *to, const MailboxResult *r);
void local_expand_report_item(LocalExpand *e, size_t i, const MailboxResult *r);
/* Reports item i as failed (dsn "4.x.y" or "5.x.y"); %m is errno as it was. */
void local_expand_fail(LocalExpand *e, size_t i, const char *dsn, const char *fmt, ...) _printf_(4, 5);
/* Adds the destinations of l below i, to be expanded in turn, named by source and acting as privs. */
void local_expand_add_children(LocalExpand *e, size_t i, LocalSource source, const LocalPrivs *privs,
                               const LocalTargetList *l);
/* Reports, once per expansion, that it has more destinations than duplicate_filter_limit. */
void local_expand_limit_exceeded(LocalExpand *e, size_t i);
/* Whether this final delivery was done already; remembers it otherwise. */
bool local_expand_seen(LocalExpand *e, LocalTargetType type, uid_t uid, const char *value);
/* The identity of files and commands named by something uid owns: uid, or default_privs for root. */
int local_expand_privs_for_owner(LocalExpand *e, uid_t uid, LocalPrivs *ret);
/* The user of a local part; NULL with item i reported (unknown: 5.1.1, a lookup error: 4.3.0). */
struct passwd *local_expand_getpwnam(LocalExpand *e, size_t i, const char *user);

/* local-expand-alias.c. */
/* Expands item i through alias_maps, local part local (user+extension) or else user: 1 when it is an
 * alias (its destinations added, or item i reported), 0 when it is none. */
int local_expand_alias(LocalExpand *e, size_t i, const char *local, const char *user, const LocalExtension *x);

/* local-expand-include.c. A list file (:include: or .forward) opened as uid/gid: -errno from open,
 * -EBADFD for a file that is not regular, -EFBIG beyond LOCAL_LIST_FILE_MAX; with the file's state. */
int local_read_list_file(const char *path, uid_t uid, gid_t gid, char **ret, size_t *ret_len,
                         struct stat *ret_st);
/* The same in two steps, for several candidates at once (forward_path): opens each of paths as uid/gid
 * under one switch of the effective ids, ret_fds[k] the descriptor or -errno; then reads one. */
int local_open_list_files(char *const *paths, size_t n, uid_t uid, gid_t gid, int *ret_fds);
int local_read_list_fd(int fd, char **ret, size_t *ret_len, struct stat *ret_st);
/* :include:/path: its destinations, read as whoever named it and acting as its owner. */
void local_expand_include(LocalExpand *e, size_t i);

/* local-expand-forward.c. Expands item i, of user pw, through the first .forward of forward_path: 1 when
 * there is one (its destinations added, or item i reported), 0 when there is none. */
int local_expand_forward(LocalExpand *e, size_t i, const struct passwd *pw, const char *local, const char *domain,
                         const LocalExtension *x);
/* Item i, an address of another domain, is sent on with the others of its Delivered-To... */
void local_expand_forward_add(LocalExpand *e, size_t i);
/* ...in one submission to cleanup per Delivered-To (in the plan), run once the expansion is done. */

/* local-expand-deliver.c. The final deliveries, put into the plan: the mailbox of pw for address, \user's
 * mailbox, a /file and a |command. */
void local_expand_deliver_user(LocalExpand *e, const struct passwd *pw, const char *address);
/* address's delivery handed on to transport ("transport:nexthop": mailbox_transport, fallback_transport). */
void local_expand_pass(LocalExpand *e, const char *address, const char *transport);
/* The transport that mailbox_transport_maps and mailbox_transport (fallback: fallback_transport_maps and
 * fallback_transport) give user: 1 and *ret (a copy), 0 for none; a lookup failure is reported for address,
 * negative errno. */
int local_expand_transport(LocalExpand *e, bool fallback, const char *user, const char *address, char **ret);
void local_expand_mailbox(LocalExpand *e, size_t i);
void local_expand_file(LocalExpand *e, size_t i);
void local_expand_command(LocalExpand *e, size_t i);
