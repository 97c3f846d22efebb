/* sendmail.h: private to the sendmail front end (sendmail, mailq, newaliases). */
#pragma once

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "config.h"
#include "maildrop-file.h"

typedef enum SendmailMode {
        SENDMAIL_MODE_DELIVER,          /* -bm, the default: a message from stdin into the maildrop */
        SENDMAIL_MODE_SMTP,             /* -bs: SMTP on stdin and stdout */
        SENDMAIL_MODE_LIST,             /* -bp, mailq */
        SENDMAIL_MODE_ALIASES,          /* -bi, -I, newaliases */
        SENDMAIL_MODE_FLUSH,            /* -q, -qRsite, -qSsite */
        SENDMAIL_MODE_NOTHING,          /* -q with an interval: nothing to do, as Postfix */
        _SENDMAIL_MODE_MAX,
        _SENDMAIL_MODE_INVALID = -EINVAL,
} SendmailMode;

typedef struct SendmailOptions {
        SendmailMode mode;
        bool extract_recipients;        /* -t */
        bool ignore_dots;               /* -i, -oi */
        bool verbose;                   /* -v */
        char *sender;                   /* -f, -r; NULL: the submitting user */
        char *full_name;                /* -F */
        char *dsn_notify;               /* -N */
        char *dsn_ret;                  /* -R */
        char *dsn_envid;                /* -V */
        char *verp_delims;              /* -XV[delims]: "" for default_verp_delimiters; NULL: no VERP */
        char *body_type;                /* -B */
        char *config_dir;               /* -C (root only) */
        char *flush_site;               /* -qRsite, -qSsite; NULL: -q, the whole queue */
        char **recipients;              /* NULL-terminated */
        size_t n_recipients;
        char **warnings;                /* options ignored, for -v */
} SendmailOptions;

void sendmail_options_done(SendmailOptions *o);

/* Parses the command line; the program's name picks the default mode (mailq, newaliases). Pure but for
 * getopt's state. -EINVAL with *ret_error set (a message for the user) on bad usage. */
int sendmail_parse_argv(int argc, char **argv, SendmailOptions *ret, char **ret_error);

/* Splits one argument ("a@b, Name <c@d>") into addresses, appending to *list. -EINVAL: bad syntax. */
int sendmail_split_addresses(const char *arg, char ***list, size_t *n);

/* An envelope address as the options give it: "<>" and "" are the null sender; angle brackets dropped. */
int sendmail_address_normalize(const char *arg, bool allow_null, char **ret);

/* A message being written into the maildrop, under a hidden name until it is committed. */
typedef struct MaildropDraft MaildropDraft;

int maildrop_draft_open(const Config *c, const MaildropEnvelope *e, MaildropDraft **ret);
/* -EFBIG once more than message_size_limit bytes of content were given (the rest is dropped). */
int maildrop_draft_write(MaildropDraft *d, const void *buf, size_t len);
uint64_t maildrop_draft_size(const MaildropDraft *d);
/* Makes the file durable and visible to pickup; returns its name. */
int maildrop_draft_commit(MaildropDraft *d, char ret_name[static MAILDROP_NAME_SIZE]);
/* Removes an uncommitted draft. */
MaildropDraft *maildrop_draft_free(MaildropDraft *d);
DEFINE_TRIVIAL_CLEANUP_FUNC(MaildropDraft *, maildrop_draft_free);

/* The stdin filter of a plain submission: CRLF to LF, and unless ignore_dots a line of one "." ends the
 * message. Pure over pieces of any size. */
typedef struct SendmailInput {
        bool ignore_dots;
        bool pending_cr;
        bool dot_pending;
        bool line_start;
        bool done;                      /* the "." line was seen: the rest is ignored */
} SendmailInput;

void sendmail_input_init(SendmailInput *in, bool ignore_dots);
/* Filters len bytes into out, which has room for len + 2; returns the bytes written. */
size_t sendmail_input_feed(SendmailInput *in, const char *buf, size_t len, char *out);
/* At the end of input: what is still held back (a CR, a dot), into out (room for 2). */
size_t sendmail_input_finish(SendmailInput *in, char *out);

/* The envelope of a submission by the calling user, from the options. */
int sendmail_envelope_from_options(const SendmailOptions *o, MaildropEnvelope **ret);

/* The modes; each returns an exit status from sysexits.h and has told the user why. */
int sendmail_deliver(const Config *c, const SendmailOptions *o);
int sendmail_smtp(const Config *c, const SendmailOptions *o);
int sendmail_list_queue(const Config *c, const SendmailOptions *o);
int sendmail_flush_queue(const Config *c, const SendmailOptions *o);
int sendmail_rebuild_aliases(const Config *c, const SendmailOptions *o);

