/* smtpd-data.c: message content in the smtpd process: DATA and BDAT chunks, read through the content reader
 * (smtpd-protocol.c) into a memory file, then handed to cleanup (smtpd-submit.c). */
#include <inttypes.h>
#include <sys/mman.h>
#include <unistd.h>

#include "io-util.h"
#include "log.h"
#include "smtpd-session.h"

/* A message is received into memory, and goes to cleanup in the call itself (Cleanup1.SubmitInline) while it
 * is no larger than this: a memory file costs smtpd six system calls a message and cleanup four. A larger
 * one, and one that the milters see, goes into a memory file. */
#define SMTPD_INLINE_MAX (64U * 1024U)

static void session_data_open(SmtpdSession *s) {
        s->data_fd = safe_close(s->data_fd);
        s->data_mem.len = 0;
        s->data_failed = false;
}

int smtpd_data_spill(SmtpdSession *s) {
        int fd, r;

        if (s->data_fd >= 0)
                return 0;
        fd = memfd_new("postbus-smtpd");
        if (fd < 0)
                return log_warning_errno(fd, "Failed to create a memory file for a message: %m");
        r = write_full(fd, s->data_mem.data, s->data_mem.len);
        if (r < 0) {
                safe_close(fd);
                return log_warning_errno(r, "Failed to write to a message file: %m");
        }
        s->data_fd = fd;
        s->data_mem.len = 0;
        return 0;
}

/* The recipient the DATA and end-of-data restrictions are told of: only when it is the only one, as in
 * Postfix, since their decision is about every recipient alike. */
static const char *session_sole_recipient(const SmtpdSession *s) {
        return s->n_recipients == 1 ? s->recipients[0] : NULL;
}

void smtpd_cmd_data(SmtpdSession *s, const SmtpdCommand *c) {
        if (c->arg_len > 0) {
                smtpd_session_reply(s, "501 5.5.4 Syntax: DATA");
                return;
        }
        if (!s->in_mail) {
                smtpd_session_reply(s, "503 5.5.1 Error: need RCPT command");
                return;
        }
        if (s->n_recipients == 0) {
                smtpd_session_reply(s, "554 5.5.1 Error: no valid recipients");
                return;
        }
        /* RFC 3030 2: BDAT and DATA are not mixed in one transaction. */
        if (s->bdat) {
                smtpd_session_reply(s, "503 5.5.1 Error: DATA after BDAT");
                return;
        }
        /* smtpd_data_restrictions, before the milters hear of DATA, as in Postfix. */
        if (smtpd_session_check(s, smtpd_check_data, s->helo, s->sender, session_sole_recipient(s)) != 0)
                return;
        if (smtpd_milter_command(s, c, SMTPD_COMMAND_DATA, NULL, NULL))
                return;         /* smtpd_data_begin() follows if the milters let it through */
        smtpd_data_begin(s);
}

void smtpd_data_begin(SmtpdSession *s) {
        const Config *config = s->conf->config;

        session_data_open(s);
        smtpd_data_reader_init(&s->data, (uint64_t) config->message_size_limit,
                               SMTPD_DATA_DOT_STUFFED |
                               (s->reject_bare_lf ? SMTPD_DATA_REJECT_BARE_LF : 0) |
                               (s->lines.bare_lf ? SMTPD_DATA_AFTER_BARE_LF : 0));
        s->state = SMTPD_SESSION_DATA;
        smtpd_session_reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

/* BDAT size [LAST] (RFC 3030): the chunk's bytes follow the command at once and are always read, also
 * when the chunk is refused, so that they are never taken for commands. */
void smtpd_cmd_bdat(SmtpdSession *s, const SmtpdCommand *c) {
        const Config *config = s->conf->config;
        uint64_t size;
        bool last;
        int r;

        if (smtpd_bdat_parse(c->arg, c->arg_len, &size, &last) < 0) {
                smtpd_session_reply(s, "501 5.5.4 Syntax: BDAT count [LAST]");
                return;
        }
        s->bdat_size = s->bdat_remaining = size;
        s->bdat_last = last;
        s->bdat_error = NULL;
        s->state = SMTPD_SESSION_BDAT;
        /* CHUNKING discarded (smtpd_discard_ehlo_keywords): Postfix's answer to a command it does not have; the
         * chunk is still read, so that its bytes are never taken for commands. */
        if (s->ehlo_discard & SMTPD_EHLO_CHUNKING)
                s->bdat_error = "502 5.5.1 Error: command not implemented";
        else if (!s->in_mail)
                s->bdat_error = "503 5.5.1 Error: need MAIL command";
        else if (s->n_recipients == 0)
                s->bdat_error = "554 5.5.1 Error: no valid recipients";
        else if (s->bdat_failed)
                s->bdat_error = "503 5.5.1 Error: this mail transaction failed, send RSET";
        else if (!s->bdat && (r = smtpd_session_check(s, smtpd_check_data, s->helo, s->sender,
                                                      session_sole_recipient(s))) != 0) {
                /* smtpd_data_restrictions at the first chunk, as at DATA. A refusal is replied to now: the
                 * chunk is read and thrown away, and the transaction has failed. */
                if (r == -EAGAIN) {
                        s->state = SMTPD_SESSION_COMMAND;       /* the command runs again on the answer */
                        return;
                }
                s->bdat_error = "";
                s->bdat_failed = true;
        } else if (!s->bdat) {
                session_data_open(s);
                smtpd_data_reader_init(&s->data, (uint64_t) config->message_size_limit,
                                       s->reject_bare_lf ? SMTPD_DATA_REJECT_BARE_LF : 0);
                s->bdat = true;
        }
}

static void session_data_write(SmtpdSession *s, const char *p, size_t n) {
        int r;

        if (s->data_failed || n == 0)
                return;
        if (s->data_fd < 0 && s->data_mem.len + n <= SMTPD_INLINE_MAX)
                r = buffer_append(&s->data_mem, p, n);
        else {
                r = smtpd_data_spill(s);
                if (r >= 0)
                        r = write_full(s->data_fd, p, n);
        }
        if (r < 0) {
                log_warning_errno(r, "Failed to keep a message's content: %m");
                s->data_failed = true;
        }
}

/* The message goes on (a check, the milters or cleanup answer later), or it ended here: the session is made
 * ready for the next one. */
static void message_end_or_reset(SmtpdSession *s) {
        int r = smtpd_session_message_end(s);

        if (r == 0)
                return;
        if (r < 0)
                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
        smtpd_session_reset(s);
}

static void session_data_end(SmtpdSession *s) {
        const char *rcpt = s->recipients[0];

        s->stage = "END-OF-MESSAGE";
        s->state = SMTPD_SESSION_COMMAND;
        /* RFC 5321 4.5.3.1.10 names 552 for too much mail data. A line longer than RFC 5322 allows is taken,
         * as Postfix takes it: the smtp client wraps it on the way out. */
        if (!s->data.too_big && !s->data_failed) {
                message_end_or_reset(s);
                return;
        }
        if (s->data.too_big)
                smtpd_session_reject(s, s->sender, rcpt, "552 5.3.4 Error: message file too big");
        else
                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
        smtpd_session_reset(s);
}

/* The message is complete: smtpd_end_of_data_restrictions first, then the milters see it (smtpd-milter.c),
 * then cleanup takes it. */
int smtpd_session_message_end(SmtpdSession *s) {
        int r;

        r = smtpd_session_check(s, smtpd_check_eod, s->helo, s->sender, session_sole_recipient(s));
        if (r == -EAGAIN) {
                /* Not a command the dispatcher could run again: the session waits here instead. */
                s->command_wait = false;
                s->state = SMTPD_SESSION_EOD_CHECK;
                return 0;
        }
        if (r != 0)
                return 1;
        r = smtpd_milter_message(s);
        if (r < 0)
                return log_warning_errno(r, "Failed to hand a message to the milters: %m");
        if (r > 0)
                return 0;
        return smtpd_session_submit(s);
}

void smtpd_session_eod_resume(SmtpdSession *s) {
        s->state = SMTPD_SESSION_COMMAND;
        message_end_or_reset(s);
}

/* smtpd_forbid_bare_newline = reject: Postfix 3.9's answer, and the end of the session. */
void smtpd_session_bare_lf(SmtpdSession *s) {
        smtpd_session_reply(s, "521 5.5.2 %s Error: bare <LF> received", s->conf->config->myhostname);
        smtpd_session_log_end(s, "bare <LF> received");
        smtpd_session_reset(s);
        s->state = SMTPD_SESSION_CLOSING;
}

/* Feeds buffered input to the DATA reader. Returns true when the message has ended. */
bool smtpd_session_data(SmtpdSession *s) {
        char *out = s->server->data_buf;

        while (s->in_start < s->in_end && !smtpd_data_done(&s->data) && !smtpd_data_bare_lf(&s->data)) {
                size_t n;

                s->in_start += smtpd_data_read(&s->data, s->in + s->in_start, s->in_end - s->in_start, out,
                                               sizeof s->server->data_buf, &n);
                session_data_write(s, out, n);
        }
        if (smtpd_data_bare_lf(&s->data)) {
                smtpd_session_bare_lf(s);
                return false;
        }
        if (!smtpd_data_done(&s->data))
                return false;
        session_data_end(s);
        return true;
}

/* A BDAT chunk has been read: answer it; after the last one, hand the message to cleanup. A chunk that
 * fails fails the transaction: the chunks after it are read and refused up to LAST (RFC 3030 2). */
static void session_bdat_end(SmtpdSession *s) {
        const char *rcpt = s->recipients ? s->recipients[0] : NULL;
        bool in_transaction = s->in_mail && s->n_recipients > 0;

        s->state = SMTPD_SESSION_COMMAND;
        if (s->bdat_error && !s->bdat_error[0])
                ;       /* refused by smtpd_data_restrictions: the reply has gone out already */
        else if (s->bdat_error)
                smtpd_session_reply(s, "%s", s->bdat_error);
        else {
                if (s->bdat_last) {
                        size_t n = smtpd_data_finish(&s->data, s->server->data_buf, sizeof s->server->data_buf);
                        session_data_write(s, s->server->data_buf, n);
                }
                if (s->data.too_big)
                        smtpd_session_reject(s, s->sender, rcpt, "552 5.3.4 Error: message file too big");
                else if (s->data_failed)
                        smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
                else if (!s->bdat_last) {
                        s->counters[SMTPD_COMMAND_BDAT].ok++;
                        smtpd_session_reply(s, "250 2.0.0 Ok: %" PRIu64 " bytes", s->bdat_size);
                        return;
                } else {
                        int r = smtpd_session_message_end(s);
                        if (r == 0)
                                return;
                        if (r < 0)
                                smtpd_session_reply(s, SMTPD_REPLY_QUEUE_WRITE_ERROR);
                }
        }
        if (s->bdat_last)
                smtpd_session_reset(s);
        else if (in_transaction)
                s->bdat_failed = true;
}

/* Feeds buffered input to the BDAT chunk being read, which bounds it: nothing more than one read is
 * held, and content goes to the memory file (or nowhere once the chunk is refused). Returns true when the
 * chunk is complete. */
bool smtpd_session_bdat(SmtpdSession *s) {
        char *out = s->server->data_buf;

        while (s->bdat_remaining > 0 && s->in_start < s->in_end) {
                size_t avail = (size_t) MIN((uint64_t) (s->in_end - s->in_start), s->bdat_remaining), used, n = 0;

                if (s->bdat_error)
                        used = avail;
                else {
                        used = smtpd_data_read(&s->data, s->in + s->in_start, avail, out,
                                               sizeof s->server->data_buf, &n);
                        if (smtpd_data_bare_lf(&s->data)) {
                                smtpd_session_bare_lf(s);
                                return false;
                        }
                        session_data_write(s, out, n);
                }
                s->in_start += used;
                s->bdat_remaining -= used;
        }
        if (s->bdat_remaining > 0)
                return false;
        session_bdat_end(s);
        return true;
}
