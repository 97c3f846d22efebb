/* mailbox.h: writing a message into a mailbox, shared by the delivery agents that do it (local, virtual): the
 * result of a delivery, mbox files (locking, From_ line, ">From " quoting) and Maildirs. Runs in the processes
 * of those agents that write mailboxes. */
#pragma once

#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <time.h>

#include "macro.h"
#include "queue-file.h"

typedef enum MailboxStatus {
        MAILBOX_STATUS_SENT,
        MAILBOX_STATUS_DEFERRED,
        MAILBOX_STATUS_BOUNCED,
        _MAILBOX_STATUS_MAX,
        _MAILBOX_STATUS_INVALID = -EINVAL,
} MailboxStatus;

/* "x.yyy.zzz" and a NUL. */
#define MAILBOX_DSN_SIZE 10
/* Human text of a result; longer text is cut. Small, so that a whole result is one atomic pipe write. */
#define MAILBOX_TEXT_SIZE 512

/* The outcome of one recipient: the status follows from the class of the enhanced status code. */
typedef struct MailboxResult {
        MailboxStatus status;
        char dsn[MAILBOX_DSN_SIZE];
        char text[MAILBOX_TEXT_SIZE];
} MailboxResult;

const char *mailbox_status_to_string(MailboxStatus s);

/* The status of an enhanced status code: 2 sent, 5 bounced, else deferred. */
MailboxStatus mailbox_status_from_dsn(const char *dsn);
/* Cuts s to at most max bytes without splitting a UTF-8 sequence. */
void mailbox_truncate_utf8(char *s, size_t max);

/* Sets the result; dsn must be "2.x.y", "4.x.y" or "5.x.y". */
void mailbox_result_set(MailboxResult *r, const char *dsn, const char *fmt, ...) _printf_(3, 4);

/* The result as the child reports it over its pipe ("<dsn> <text>"), and back. */
#define MAILBOX_RESULT_WIRE_MAX (MAILBOX_DSN_SIZE + MAILBOX_TEXT_SIZE)
size_t mailbox_result_format(const MailboxResult *r, char *buf, size_t size);
int mailbox_result_parse(const char *buf, size_t len, MailboxResult *ret);

/* Where a piece of output goes; negative errno stops the stream. */
typedef int (*MailboxOutputFunc)(const char *data, size_t len, void *userdata);

/* ">From " quoting of mbox content that arrives in pieces split anywhere. */
typedef struct MboxQuote {
        bool line_start;        /* the next byte starts a line */
        size_t matched;         /* bytes of "From " seen at the start of this line and held back */
} MboxQuote;

void mbox_quote_init(MboxQuote *q);
int mbox_quote_feed(MboxQuote *q, const char *data, size_t len, MailboxOutputFunc out, void *userdata);
/* Hands out what is held back at the end of the content. */
int mbox_quote_finish(MboxQuote *q, MailboxOutputFunc out, void *userdata);

/* "From <sender or MAILER-DAEMON>  Www Mmm dd hh:mm:ss yyyy\n" into buf (two blanks before the date, as
 * Postfix writes asctime()'s form); the length, or -ENOBUFS. */
int mbox_from_line(const char *sender, const struct tm *tm, char *buf, size_t size);

/* A Maildir file name: "<sec>.M<usec>P<pid>R<random>.<host>", with '/' and ':' of host escaped. */
int maildir_unique_name(uint64_t realtime_usec, pid_t pid, uint64_t random, const char *hostname,
                        char **ret);

/* What every delivery writes: the content of the queue file and the added headers. */
typedef struct MailboxMessage {
        int queue_fd;
        const QueueEnvelope *envelope;
        const char *sender;             /* "" for the null sender */
        const char *recipient;          /* for Delivered-To: */
        const char *original;           /* for X-Original-To: the queue file's recipient; NULL or "": none */
} MailboxMessage;

/* The headers a delivery puts before the content, in Postfix's order: from_line (the mbox From_ line, or
 * NULL), Return-Path, X-Original-To (when m has an original recipient) and Delivered-To. */
int mailbox_delivery_headers(const MailboxMessage *m, const char *from_line, char **ret);

typedef struct MailboxLocking {
        unsigned attempts;
        uint64_t delay_usec;
        uint64_t stale_usec;            /* a dot-lock older than this is removed */
        bool no_dotlock;                /* mailbox_delivery_lock (virtual_mailbox_lock) without dotlock */
        bool no_fcntl;                  /* ... without fcntl */
        bool keep_lock_file;            /* keep the dot-lock file between deliveries (mailbox_dotlock_forget()) */
} MailboxLocking;

/* mailbox_delivery_lock or virtual_mailbox_lock into locking: fcntl and dotlock, at least one of them; -EINVAL
 * for another word (Postfix's flock is not offered). */
int mailbox_lock_parse(const char *value, MailboxLocking *locking);

/* Removes the dot-lock file that a process which delivers with keep_lock_file kept; at its end. */
void mailbox_dotlock_forget(void);
/* Removes from dir the dot-lock files kept by processes that are gone (a kill ended them). */
void mailbox_dotlock_sweep(const char *dir);

/* An mbox file and the identities that touch it. The process switches its effective ids between them, so
 * with all ids equal to the current ones no privilege is needed (as in the unit tests). */
typedef struct MailboxMbox {
        const char *path;
        uid_t uid;                      /* the recipient: owns the mailbox and writes the message */
        gid_t gid;
        uid_t lock_uid;                 /* create the mailbox and its dot-lock (rights on the directory) */
        gid_t lock_gid;
        gid_t create_gid;               /* group of a mailbox created by someone other than the recipient */
        MailboxLocking locking;
        bool file_target;               /* an alias or .forward /file: any owner the writer may write to, and
                                         * no dot-lock where the directory does not allow one */
} MailboxMbox;

/* Append the message to an mbox file, locked by a dot-lock and fcntl. */
void mailbox_deliver_mbox(const MailboxMessage *m, const MailboxMbox *mbox, MailboxResult *ret);
/* n messages appended to one mbox under one lock and made durable by one fsync before any is reported:
 * ret[k] is the result of m[k]. A message that fails is cut off and the others go on. */
void mailbox_deliver_mbox_batch(const MailboxMessage *m, size_t n, const MailboxMbox *mbox, MailboxResult *ret);
/* Deliver into a Maildir (path ends in '/'), creating it if missing, as the current user. */
void mailbox_deliver_maildir(const MailboxMessage *m, const char *path, const char *hostname, MailboxResult *ret);
/* n messages into one Maildir, each file synced and linked into new/, then one sync of new/ for them all
 * before any is reported: ret[k] is the result of m[k]. */
void mailbox_deliver_maildir_batch(const MailboxMessage *m, size_t n, const char *path, const char *hostname,
                                   MailboxResult *ret);
/* Its two halves, for a caller that stores more before the sync: the files synced and in new/ (ret says
 * delivered; true when any is), and the sync of new/ that must come before any of them is reported. When it
 * fails, mailbox_maildir_sync_failed() turns each delivered result into a temporary failure. */
bool mailbox_store_maildir_batch(const MailboxMessage *m, size_t n, const char *path, const char *hostname,
                                 MailboxResult *ret);
int mailbox_sync_maildir(const char *path);
void mailbox_maildir_sync_failed(MailboxResult *ret, const char *path, int error);

/* Switches the effective uid and gid (and the groups to gid alone); a process whose real uid is 0 can
 * switch back. Nothing happens when they are already these. */
int mailbox_set_eugid(uid_t uid, gid_t gid);
/* The same switch without asking the kernel first, for a process whose real ids are root's and that knows its
 * effective uid (from_uid): three calls each way, or two without groups, for a process that has no
 * supplementary groups (its effective gid then stands for them). */
int mailbox_switch_eugid(uid_t from_uid, uid_t uid, gid_t gid, bool groups);

