/* local.h: private to the local role: delivery results, the mbox and Maildir helpers, the writers of
 * mailboxes, the delivery child and the Delivery1 bus service. */
#pragma once

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "queue-file.h"

/* Most recipients in one Deliver call. */
#define LOCAL_RECIPIENTS_MAX 1000U

typedef enum LocalStatus {
        LOCAL_STATUS_SENT,
        LOCAL_STATUS_DEFERRED,
        LOCAL_STATUS_BOUNCED,
        _LOCAL_STATUS_MAX,
        _LOCAL_STATUS_INVALID = -EINVAL,
} LocalStatus;

/* "x.yyy.zzz" and a NUL. */
#define LOCAL_DSN_SIZE 10
/* Human text of a result; longer text is cut. Small, so that a whole result is one atomic pipe write. */
#define LOCAL_TEXT_SIZE 512

/* The outcome of one recipient: the status follows from the class of the enhanced status code. */
typedef struct LocalResult {
        LocalStatus status;
        char dsn[LOCAL_DSN_SIZE];
        char text[LOCAL_TEXT_SIZE];
} LocalResult;

const char *local_status_to_string(LocalStatus s);

/* Sets the result; dsn must be "2.x.y", "4.x.y" or "5.x.y". */
void local_result_set(LocalResult *r, const char *dsn, const char *fmt, ...) _printf_(3, 4);

/* The result as the child reports it over its pipe ("<dsn> <text>"), and back. */
#define LOCAL_RESULT_WIRE_MAX (LOCAL_DSN_SIZE + LOCAL_TEXT_SIZE)
size_t local_result_format(const LocalResult *r, char *buf, size_t size);
int local_result_parse(const char *buf, size_t len, LocalResult *ret);

/* Where a piece of output goes; negative errno stops the stream. */
typedef int (*LocalOutputFunc)(const char *data, size_t len, void *userdata);

/* ">From " quoting of mbox content that arrives in pieces split anywhere. */
typedef struct MboxQuote {
        bool line_start;        /* the next byte starts a line */
        size_t matched;         /* bytes of "From " seen at the start of this line and held back */
} MboxQuote;

void mbox_quote_init(MboxQuote *q);
int mbox_quote_feed(MboxQuote *q, const char *data, size_t len, LocalOutputFunc out, void *userdata);
/* Hands out what is held back at the end of the content. */
int mbox_quote_finish(MboxQuote *q, LocalOutputFunc out, void *userdata);

/* "From <sender or MAILER-DAEMON> Www Mmm dd hh:mm:ss yyyy\n" into buf; the length, or -ENOBUFS. */
int mbox_from_line(const char *sender, const struct tm *tm, char *buf, size_t size);

/* A Maildir file name: "<sec>.M<usec>P<pid>R<random>.<host>", with '/' and ':' of host escaped. */
int maildir_unique_name(uint64_t realtime_usec, pid_t pid, uint64_t random, const char *hostname,
                        char **ret);

/* What every delivery writes: the content of the queue file and the added headers. */
typedef struct LocalMessage {
        int queue_fd;
        const QueueEnvelope *envelope;
        const char *sender;             /* "" for the null sender */
        const char *recipient;          /* for Delivered-To: */
} LocalMessage;

typedef struct LocalLocking {
        unsigned attempts;
        uint64_t delay_usec;
        uint64_t stale_usec;            /* a dot-lock older than this is removed */
} LocalLocking;

/* An mbox file and the identities that touch it. The process switches its effective ids between them, so
 * with all ids equal to the current ones no privilege is needed (as in the unit tests). */
typedef struct LocalMbox {
        const char *path;
        uid_t uid;                      /* the recipient: owns the mailbox and writes the message */
        gid_t gid;
        uid_t lock_uid;                 /* create the mailbox and its dot-lock (rights on the directory) */
        gid_t lock_gid;
        gid_t create_gid;               /* group of a mailbox created by someone other than the recipient */
        LocalLocking locking;
} LocalMbox;

/* Append the message to an mbox file, locked by a dot-lock and fcntl. */
void local_deliver_mbox(const LocalMessage *m, const LocalMbox *mbox, LocalResult *ret);
/* Deliver into a Maildir (path ends in '/'), creating it if missing, as the current user. */
void local_deliver_maildir(const LocalMessage *m, const char *path, const char *hostname, LocalResult *ret);

/* Switches the effective uid and gid (and the groups to gid alone); a process whose real uid is 0 can
 * switch back. Nothing happens when they are already these. */
int local_set_eugid(uid_t uid, gid_t gid);

/* Forks a child that delivers to m->recipient as the recipient and reports over the returned pipe. */
int local_child_start(const LocalMessage *m, const Config *config, pid_t *ret_pid, int *ret_result_fd);
/* The result of a child that has ended with si, read from its pipe; a child that died or said nothing
 * valid is a temporary failure. timed_out: it was killed for the time limit. */
void local_child_result(int result_fd, const siginfo_t *si, bool timed_out, LocalResult *ret);

/* The role: the org.postbus.Delivery1 service on listen_fd, for uid 0 and peer_uid ((uid_t) -1: none), and
 * the deliveries in progress. */
typedef struct Local Local;

int local_new(Daemon *d, int listen_fd, uid_t peer_uid, Local **ret);
/* Waits for the running children, answers every call in progress, closes the connections, and frees. */
Local *local_free(Local *l);
