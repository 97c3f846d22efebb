/* pipe.h: private to the pipe role: a transport's settings from qmgr's options, the expansion of its argv=
 * words, what is written to a command (headers the flags ask for, the content transformed), how a command's
 * end becomes a delivery result, the commands themselves and the Delivery1 bus service. */
#pragma once

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>
#include <systemd/sd-event.h>
#include <time.h>

#include "config.h"
#include "daemon.h"
#include "queue-file.h"
#include "string-util.h"

/* Most recipients in one Deliver call, most options, and the longest option value. */
#define PIPE_RECIPIENTS_MAX 1000U
#define PIPE_OPTIONS_MAX 64U
#define PIPE_OPTION_VALUE_MAX 8192U
/* Most words of argv=, and of the expanded command line. */
#define PIPE_WORDS_MAX 256U
#define PIPE_ARGS_MAX 20000U
/* Bytes of command output kept for the diagnostic text, as Postfix keeps one buffer's worth. */
#define PIPE_OUTPUT_MAX 4096U
/* The diagnostic text: the command's output and what is said around it. */
#define PIPE_TEXT_SIZE (PIPE_OUTPUT_MAX + 1024U)
#define PIPE_DSN_SIZE 10
/* Longest end-of-line string after unescaping (eol=). */
#define PIPE_EOL_MAX 16U
/* The sender that stands for the null sender by default, as in Postfix (null_sender=). */
#define PIPE_NULL_SENDER "MAILER-DAEMON"

/* The letters of flags=, as Postfix's pipe(8) has them. */
typedef enum PipeFlag {
        PIPE_FLAG_BLANK = 1 << 0,               /* B: a blank line after the message */
        PIPE_FLAG_DELIVERED_TO = 1 << 1,        /* D: Delivered-To: recipient; a loop bounces */
        PIPE_FLAG_FROM_LINE = 1 << 2,           /* F: "From sender  date" line first */
        PIPE_FLAG_ORIGINAL_TO = 1 << 3,         /* O: X-Original-To: original recipient */
        PIPE_FLAG_RETURN_PATH = 1 << 4,         /* R: Return-Path: <sender> */
        PIPE_FLAG_FINAL = 1 << 5,               /* X: final delivery ("delivered"), not "relayed" */
        PIPE_FLAG_FOLD_HOST = 1 << 6,           /* h: lower-case domains and nexthop in argv */
        PIPE_FLAG_QUOTE = 1 << 7,               /* q: RFC 5322 quoting of addresses in argv */
        PIPE_FLAG_FOLD_USER = 1 << 8,           /* u: lower-case local parts in argv */
        PIPE_FLAG_DOT = 1 << 9,                 /* .: "." before lines that start with "." */
        PIPE_FLAG_QUOTE_FROM = 1 << 10,         /* >: ">" before lines that start with "From " */
} PipeFlag;

/* The letters of s; -EINVAL for any other letter, which goes to *ret_bad. */
int pipe_flags_parse(const char *s, unsigned *ret, char *ret_bad);

/* eol= with C escapes (\a \b \f \n \r \t \v \\ and \ooo, up to three octal digits) undone. -EINVAL for an
 * empty result, a NUL byte or more than PIPE_EOL_MAX bytes. */
int pipe_eol_parse(const char *s, char **ret);

/* An address as the envelope has it (RFC 5321, a quoted local part quoted) in the form Postfix's pipe works
 * on: quotes and backslash escapes of the local part removed ("a b"@x -> a b@x). */
int pipe_address_unquote(const char *address, char **ret);
/* The reverse, as Postfix's quote_822_local(): a local part that is no RFC 5322 dot-atom is put in quotes
 * (the text left of the last '@'; bytes beyond ASCII are left alone). */
int pipe_address_quote(const char *internal, char **ret);
/* Lower-cases (ASCII) the local part and/or the domain of an unquoted address, in place. */
void pipe_address_fold(char *address, bool user, bool host);
/* user+extension as Postfix splits a local part: at the first of the delimiter characters after the first
 * byte; never postmaster, MAILER-DAEMON or double-bounce, nor owner-x and x-request when '-' is a delimiter.
 * Returns the length of the user part and the extension (after the delimiter) or NULL. */
size_t pipe_split_extension(const char *local, const char *delimiters, const char **ret_extension);

/* A recipient as argv expansion sees it. */
typedef struct PipeAddress {
        const char *address;            /* as qmgr resolved it */
        const char *original;           /* before rewriting: the queue file's recipient */
} PipeAddress;

/* What the macros of argv= expand to, besides the per-recipient ones. */
typedef struct PipeExpand {
        unsigned flags;
        const char *delimiter;          /* recipient_delimiter; "" for none */
        const char *sender;             /* the envelope sender, "" for the null sender */
        const char *null_sender;        /* what ${sender} is for the null sender */
        const char *nexthop;
        const char *const *vars;        /* "name", "value" pairs, NULL-terminated: size, queue_id, client_... */
        const PipeAddress *recipients;
        size_t n_recipients;
} PipeExpand;

/* Expands $name, ${name}, $(name), ${name?text}, ${name:text} and $$ in each word of argv. A word that refers
 * to recipient, original_recipient, user, extension, mailbox or domain is repeated once per recipient (and
 * left out for a recipient whose user part is empty); any other word appears once. -EINVAL for an unknown
 * name or a malformed reference, described in *ret_error; -E2BIG beyond PIPE_ARGS_MAX words. */
int pipe_argv_expand(char **argv, const PipeExpand *x, char ***ret, char **ret_error);

/* The names the argv macros know, NULL-terminated. */
extern const char *const pipe_macro_names[];

/* The lines the flags put before the content (F, R, O, D in Postfix's order), each ending in eol. sender is
 * the envelope sender ("" for the null sender) and null_sender what stands for it. */
int pipe_message_prefix(unsigned flags, const char *sender, const char *null_sender, const char *original,
                        const char *delivered, const char *eol, time_t now, char **ret);


/* The content as a command gets it, in pieces split anywhere: LF becomes eol, and lines get '>' before
 * "From " and '.' before '.' as the flags ask. */
typedef struct PipeCopy {
        unsigned flags;
        const char *eol;
        size_t eol_len;
        bool line_start;
        size_t held;                    /* bytes of "From " held back at the start of this line */
} PipeCopy;

void pipe_copy_init(PipeCopy *c, unsigned flags, const char *eol);
int pipe_copy_feed(PipeCopy *c, const char *data, size_t len, Buffer *out);
/* What the end needs: the held bytes, eol after an unfinished last line, and with B a blank line. */
int pipe_copy_finish(PipeCopy *c, Buffer *out);

/* Whether a message's headers hold "Delivered-To: address" (any case, blanks around it), for the D flag's
 * loop check. Fed in pieces split anywhere; stops at the end of the headers. */
#define PIPE_HEADER_MAX 1024U
typedef struct PipeHeaderScan {
        const char *address;
        char header[PIPE_HEADER_MAX];   /* the logical header being read, continuation lines joined */
        size_t len;
        bool truncated;                 /* too long to be a Delivered-To of an address */
        bool line_start;
        bool done;
        bool found;
} PipeHeaderScan;

void pipe_header_scan_init(PipeHeaderScan *s, const char *address);
/* 1 once the answer is known (found, or the end of the headers), else 0. */
int pipe_header_scan_feed(PipeHeaderScan *s, const char *data, size_t len);
void pipe_header_scan_finish(PipeHeaderScan *s);

typedef enum PipeStatus {
        PIPE_STATUS_SENT,
        PIPE_STATUS_DEFERRED,
        PIPE_STATUS_BOUNCED,
        _PIPE_STATUS_MAX,
        _PIPE_STATUS_INVALID = -EINVAL,
} PipeStatus;

const char *pipe_status_to_string(PipeStatus s);

typedef struct PipeResult {
        PipeStatus status;
        char dsn[PIPE_DSN_SIZE];
        char text[PIPE_TEXT_SIZE];
} PipeResult;

/* Sets the result; dsn is "2.x.y", "4.x.y" or "5.x.y" and decides the status. */
void pipe_result_set(PipeResult *r, const char *dsn, const char *fmt, ...) _printf_(3, 4);

/* Output for a diagnostic: tabs and line ends become blanks, other control bytes and invalid UTF-8 '_',
 * trailing blanks go. out holds size bytes and is always terminated. */
void pipe_output_sanitize(const char *in, size_t len, char *out, size_t size);

/* How a command ended. */
typedef struct PipeEnd {
        int code;                       /* CLD_EXITED, CLD_KILLED or CLD_DUMPED */
        int status;                     /* the exit status or the signal */
        bool timed_out;                 /* killed at its time limit */
} PipeEnd;

/* The result of a command as Postfix's pipe maps it: exit 0 sent ("delivered via <transport> service"); at
 * the time limit bounced 5.3.0; killed by a signal deferred 4.3.0; otherwise the "4.x.y text" or "5.x.y text"
 * the output starts with, else the <sysexits.h> code's status, else bounced 5.3.0 "Command died with status
 * N". The sanitized output follows the text ("... Command output: ..."). */
void pipe_command_result(const PipeEnd *end, const char *command, const char *transport, const char *output,
                         size_t output_len, PipeResult *ret);

/* Identities a command may never run as: root, the mail system's owner and its groups. */
typedef struct PipeForbidden {
        uid_t owner_uid;                /* (uid_t) -1: none */
        gid_t owner_gid;                /* (gid_t) -1: none */
        gid_t setgid_gid;               /* postdrop; (gid_t) -1: none */
} PipeForbidden;

/* A transport's settings, from the options qmgr passes. */
typedef struct PipeSettings {
        char **argv;                    /* the words of argv= */
        unsigned flags;
        char *user;
        char *group;                    /* NULL: the user's own */
        uid_t uid;
        gid_t gid;
        gid_t *groups;                  /* supplementary groups */
        size_t n_groups;
        char *home;
        uint64_t size_limit;            /* 0: none */
        char *eol;
        uint64_t time_limit_usec;
        char *null_sender;
        char *directory;                /* NULL: the user's home directory, or / */
        char *recipient_delimiter;
        char *export_environment;
} PipeSettings;

/* Reads options ("name", "value" pairs, NULL-terminated) against the defaults of c. -EINVAL for a missing
 * argv= or user=, an unknown option or a bad value, described in *ret_error. Looks nothing up. */
int pipe_settings_parse(const char *const *options, const Config *c, PipeSettings *ret, char **ret_error);
/* Looks the user (and group) up and refuses privileged identities: -EINVAL or -ENOENT with *ret_error. */
int pipe_settings_resolve_user(PipeSettings *s, const PipeForbidden *forbidden, char **ret_error);
void pipe_settings_done(PipeSettings *s);

/* The environment of a command: PATH=/usr/bin:/bin and the export_environment variables this process has.
 * NULL-terminated "NAME=value" strings. */
int pipe_environment(const char *export_environment, char ***ret);

/* A command running for one Deliver call. */
typedef struct PipeCommand PipeCommand;
typedef void (*PipeCommandDone)(PipeCommand *cmd, const PipeResult *result, void *userdata);

typedef struct PipeCommandSpec {
        char **argv;
        char **env;
        const PipeSettings *settings;   /* identity, directory, flags, eol, time limit */
        const char *transport;
        const char *prefix;             /* written before the content */
        int queue_fd;
        const QueueEnvelope *envelope;
} PipeCommandSpec;

/* Forks and runs the command; done is called once when it has ended and its result is known. The spec's
 * strings are copied; the queue file descriptor and envelope must outlive the command. */
int pipe_command_start(sd_event *e, const PipeCommandSpec *spec, PipeCommandDone done, void *userdata,
                       PipeCommand **ret);
/* Kills the command's process group now; done follows. */
void pipe_command_kill(PipeCommand *c);
pid_t pipe_command_pid(const PipeCommand *c);
/* Kills and reaps a command still running (done is not called), and frees. */
PipeCommand *pipe_command_free(PipeCommand *c);

/* The role: the org.postbus.Delivery1 service on listen_fd, for uid 0 and peer_uid ((uid_t) -1: none). */
typedef struct Pipe Pipe;

int pipe_new(Daemon *d, int listen_fd, uid_t peer_uid, const PipeForbidden *forbidden, Pipe **ret);
/* Kills the commands still running, answers every call in progress, and frees. */
Pipe *pipe_free(Pipe *p);
