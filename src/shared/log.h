/* log.h: journal logging. Plain diagnostics, and mail records: a Postfix-style one-line MESSAGE with fields. */
#pragma once

#include <stdint.h>

#include <stdbool.h>
#include <stddef.h>
#include <syslog.h>

#include "macro.h"

typedef enum LogTarget {
        LOG_TARGET_STDERR,
        LOG_TARGET_JOURNAL,
        _LOG_TARGET_MAX,
        _LOG_TARGET_INVALID = -EINVAL,
} LogTarget;

typedef struct LogField {
        const char *name;       /* journal field name, e.g. "RECIPIENT" */
        const char *value;      /* NULL: field left out */
} LogField;

/* MESSAGE_ID= of records explained in catalog/postbus.catalog. */
#define POSTBUS_MESSAGE_QUEUE_FILE_CORRUPT "ffd08b0ddfd344579c9159edb9f48b81"
#define POSTBUS_MESSAGE_MAILDROP_FILE_DISCARDED "a33b42e5d0dd41009d44c22616f5fcf0"
#define POSTBUS_MESSAGE_FORWARD_FILE_IGNORED "7fd47c8f70c14cc6acf7a9aaebcc212b"
#define POSTBUS_MESSAGE_VIRTUAL_ALIAS_LOOP "9c59b0bbab0242b6958a0d36612d3724"
#define POSTBUS_MESSAGE_NOTICE_DISCARDED "9614e0a77e454a669e2ac7af2402216d"
#define POSTBUS_MESSAGE_DESCRIPTOR_REFUSED "e853f8191cb9427e980666a6134a5a56"
#define POSTBUS_MESSAGE_DELIVERY_CRASH_HOLD "5c0e3b7d2a8f4e6a9b1d40c7e2f95a13"

#define LOG_FIELDS(...) ((const LogField[]) { __VA_ARGS__, { NULL, NULL } })
#define LOG_NO_FIELDS ((const LogField[]) { { NULL, NULL } })

/* Role name ("smtpd"), and where records go. LOG_TARGET_JOURNAL when run by systemd (INVOCATION_ID set). */
void log_setup(const char *role);
void log_set_target(LogTarget target);
void log_set_max_level(int level);
/* The most verbose level written (LOG_INFO, or LOG_DEBUG with POSTBUS_LOG_LEVEL=debug): to skip work for
 * records that would be dropped. */
int log_get_max_level(void);
const char *log_role(void);

int log_internal(int level, int error, const char *file, int line, const char *func, const char *fmt, ...)
        _printf_(6, 7);

/* Writes MESSAGE="<queue_id>: <text>" with QUEUE_ID=, POSTBUS_ROLE= and the given fields. Returns 0. */
int log_mail(int level, const char *queue_id, const LogField *fields, const char *fmt, ...) _printf_(4, 5);

/* Builds the journal fields of a mail record as "NAME=value" strings (for tests and for log_mail itself). */
int log_mail_fields(int level, const char *queue_id, const LogField *fields, const char *message, char ***ret);

/* One recipient's outcome as Postfix logs it: "to=<r>[, orig_to=<o>], relay=R, delay=D, delays=a/b/c/d,
 * dsn=X, status=S (text)", with RECIPIENT=, ORIGINAL_RECIPIENT=, RELAY=, DSN=, DELIVERY_STATUS= and the
 * extra fields. Addresses and text may be the peer's: they are escaped here. The times are CLOCK_REALTIME
 * microseconds, 0 where not known: delays= is arrival to the active queue (a), the active queue to the
 * agent (b), connection set-up (c) and transmission (d). */
typedef struct LogDelivery {
        const char *recipient;
        const char *original_recipient;         /* NULL or the same as recipient: no orig_to= */
        const char *relay;
        const char *dsn;
        const char *status;                     /* sent, deferred, bounced, expired */
        const char *text;
        uint64_t arrival_usec, active_usec, sent_usec, connected_usec;
        unsigned conn_use;                      /* 2 and more: the transaction number in a reused connection */
        const LogField *fields;                 /* more fields, or NULL */
} LogDelivery;

void log_delivery_record(const char *queue_id, const LogDelivery *d);

/* Escapes peer-supplied text for logging: printable ASCII and valid UTF-8 kept, everything else as \xNN. */
char *log_escape(const char *s, size_t len);

#define log_full_errno(level, error, ...) log_internal(level, error, __FILE__, __LINE__, __func__, __VA_ARGS__)
#define log_full(level, ...) (void) log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...) log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...) log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...) log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...) log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(e, ...) log_full_errno(LOG_DEBUG, e, __VA_ARGS__)
#define log_info_errno(e, ...) log_full_errno(LOG_INFO, e, __VA_ARGS__)
#define log_warning_errno(e, ...) log_full_errno(LOG_WARNING, e, __VA_ARGS__)
#define log_error_errno(e, ...) log_full_errno(LOG_ERR, e, __VA_ARGS__)

#define log_oom() log_error_errno(ENOMEM, "Out of memory.")
