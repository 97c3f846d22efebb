/* milter.c: the milter client on the role's sd-event loop (smtpd: smtpd_milters; pickup: non_smtpd_milters).
 * A chain holds one connection per milter; each step (connect, HELO, MAIL, RCPT, DATA, the message) goes
 * to the milters in turn, each with its own timer, and ends in one callback.
 *
 * Where each stage runs, and where the changes are applied: the role that has the client runs the chain.
 * smtpd holds the whole message in a memory file before it hands it to cleanup, and pickup holds a sendmail
 * message the same way, so the stages up to RCPT run as their SMTP commands arrive (the reply to each
 * command waits for the milters, other sessions go on), and the message stages (headers, body, end of
 * message) run when the message is complete, before cleanup is called. The end-of-message changes are
 * applied to that in-memory message (milter-message.c) and the envelope the role submits, so cleanup
 * writes the one queue file, already changed, and the 250 follows cleanup's answer as for any message.
 * Quarantine is an attribute of the submission that cleanup turns into its hold. No milter code runs in
 * cleanup, which stays the one writer of the queue and never waits on a third party.
 *
 * A milter that cannot be reached, does not answer in time, or sends anything malformed or oversized is
 * closed for the rest of the chain, and milter_default_action answers for it at this step and the later
 * ones, as Postfix does. */
#include <arpa/inet.h>
#include <assert.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "milter.h"
#include "queue-id.h"
#include "string-util.h"

#define REPLY_REJECT "550 5.7.1 Command rejected"
#define REPLY_TEMPFAIL "451 4.7.1 Service unavailable - try again later"

typedef enum MilterState {
        MILTER_CLOSED,
        MILTER_CONNECTING,
        MILTER_NEGOTIATING,
        MILTER_READY,
        MILTER_FAILED,
} MilterState;

typedef enum MilterStep {
        STEP_CONNECT,
        STEP_HELO,
        STEP_MAIL,
        STEP_RCPT,
        STEP_DATA,
        STEP_MESSAGE,
} MilterStep;

typedef enum MilterPhase {
        PHASE_DATA,
        PHASE_HEADER,
        PHASE_EOH,
        PHASE_BODY,
        PHASE_EOM,
        PHASE_DONE,
} MilterPhase;

/* What a milter's turn in a step came to. */
enum { TURN_WAIT, TURN_NEXT, TURN_STOP };

typedef struct Milter {
        MilterChain *chain;
        const char *spec;
        const struct sockaddr_storage *address;
        socklen_t address_len;
        int fd;
        sd_event_source *io, *timer;
        MilterBuf out;
        size_t out_off;
        uint8_t *in;
        size_t in_len;
        MilterState state;
        uint32_t actions, protocol;
        char **own_macros[_MILTER_STAGE_MAX];   /* the lists the milter asked for */
        bool accepted_session, accepted_message, in_message, data_sent, waiting;
        MilterPhase phase;
        size_t header_index, body_off;
} Milter;

struct MilterChain {
        sd_event *event;
        const MilterSettings *settings;
        MilterMacroFunc macro;
        void *userdata;
        Milter *milters;
        size_t n_milters;
        sd_event_source *kick;          /* answers a step that ended while it started */
        bool busy, hold_default, starting, finish_deferred;
        MilterStep step;
        MilterBuf cmd;                  /* the step's command packet, the same for every milter */
        MilterMessage *message;
        size_t cur;
        MilterDoneFunc done;
        MilterVerdict verdict;
        char reply[1024];
        char queue_id[QUEUE_ID_SIZE];   /* the transaction's, made at MAIL: the macro "i"; "" before */
};

static const struct {
        char cmd;
        MilterStage stage;
        uint32_t no, nr;
} step_info[] = {
        [STEP_CONNECT] = { MILTER_CMD_CONNECT, MILTER_STAGE_CONNECT, MILTER_P_NOCONNECT, MILTER_P_NR_CONN },
        [STEP_HELO] = { MILTER_CMD_HELO, MILTER_STAGE_HELO, MILTER_P_NOHELO, MILTER_P_NR_HELO },
        [STEP_MAIL] = { MILTER_CMD_MAIL, MILTER_STAGE_MAIL, MILTER_P_NOMAIL, MILTER_P_NR_MAIL },
        [STEP_RCPT] = { MILTER_CMD_RCPT, MILTER_STAGE_RCPT, MILTER_P_NORCPT, MILTER_P_NR_RCPT },
        [STEP_DATA] = { MILTER_CMD_DATA, MILTER_STAGE_DATA, MILTER_P_NODATA, MILTER_P_NR_DATA },
};

static void chain_next(MilterChain *c, int turn);
static int milter_turn(Milter *m);

static void milter_close(Milter *m) {
        m->io = sd_event_source_disable_unref(m->io);
        m->timer = sd_event_source_disable_unref(m->timer);
        m->fd = safe_close(m->fd);
        milter_buf_done(&m->out);
        m->out_off = m->in_len = 0;
        m->waiting = false;
}

/* The verdict of milter_default_action, for a milter that failed. */
static int chain_default(MilterChain *c) {
        switch (c->settings->default_action) {
        case MILTER_ACTION_ACCEPT:
                return TURN_NEXT;
        case MILTER_ACTION_QUARANTINE:
                c->hold_default = true;
                return TURN_NEXT;
        case MILTER_ACTION_REJECT:
                c->verdict = MILTER_REJECT;
                strcpy(c->reply, REPLY_REJECT);
                return TURN_STOP;
        default:
                c->verdict = MILTER_TEMPFAIL;
                strcpy(c->reply, REPLY_TEMPFAIL);
                return TURN_STOP;
        }
}

/* The milter is closed for the rest of the chain; the default action answers this step for it. */
static int milter_fail(Milter *m, const char *why) {
        log_warning("milter %s: %s; milter_default_action applies", m->spec, why);
        milter_close(m);
        m->state = MILTER_FAILED;
        m->in_message = false;
        if (m->chain->message)
                milter_message_rollback(m->chain->message);
        return chain_default(m->chain);
}

static void milter_fail_next(Milter *m, const char *why) {
        chain_next(m->chain, milter_fail(m, why));
}

static int on_timer(sd_event_source *s, uint64_t usec, void *userdata) {
        Milter *m = userdata;

        milter_fail_next(m, m->state == MILTER_CONNECTING ? "timeout while connecting" : "timeout");
        return 0;
}

/* Milter timeouts are seconds long: a timer that may fire a quarter second late lets the event loop keep its
 * timerfd as it is when the deadline moves on with each command, instead of setting it again each time. */
#define MILTER_TIMER_ACCURACY_USEC (1000000ULL / 4)

static int milter_arm(Milter *m, uint64_t usec) {
        int r;

        r = m->timer ? sd_event_source_set_time_relative(m->timer, usec)
                     : sd_event_add_time_relative(m->chain->event, &m->timer, CLOCK_MONOTONIC, usec,
                                                  MILTER_TIMER_ACCURACY_USEC, on_timer, m);
        if (r >= 0)
                r = sd_event_source_set_enabled(m->timer, SD_EVENT_ONESHOT);
        return r;
}

static int milter_flush(Milter *m) {
        uint32_t events = EPOLLIN;

        while (m->out_off < m->out.len) {
                ssize_t n = send(m->fd, m->out.data + m->out_off, m->out.len - m->out_off, MSG_NOSIGNAL | MSG_DONTWAIT);
                if (n < 0) {
                        if (errno == EINTR)
                                continue;
                        if (errno == EAGAIN)
                                break;
                        return -errno;
                }
                m->out_off += (size_t) n;
        }
        if (m->out_off == m->out.len) {
                m->out.len = m->out_off = 0;
        } else
                events |= EPOLLOUT;
        return sd_event_source_set_io_events(m->io, events);
}

/* Queues the chain's current command packet, after the stage's macros. */
static void put_macros(Milter *m, MilterStage stage, char cmd) {
        MilterChain *c = m->chain;
        char **names = m->own_macros[stage] ?: c->settings->macros[stage];
        size_t start, before;

        if (!names || !c->macro)
                return;
        milter_buf_begin(&m->out, MILTER_CMD_MACRO, &start);
        milter_buf_put(&m->out, &cmd, 1);
        before = m->out.len;
        for (char **n = names; *n; n++) {
                const char *v = streq(*n, "i") ? (c->queue_id[0] ? c->queue_id : NULL) : c->macro(*n, c->userdata);
                if (!v)
                        continue;
                milter_buf_put_str(&m->out, *n);
                milter_buf_put_str(&m->out, v);
        }
        if (m->out.len == before && !m->out.failed) {
                m->out.len = start;     /* none has a value: no packet */
                return;
        }
        milter_buf_end(&m->out, start);
}

/* Sends what is queued; a reply is due unless noreply. A command the milter does not answer (SMFIP_NR_*) waits
 * in the buffer for the next one that it does, or for ABORT or QUIT, so that they go out in one write (all the
 * headers, say); a long run of them (the body) is written as it grows. */
static int milter_send(Milter *m, bool noreply, uint64_t timeout) {
        int r;

        if (m->out.failed)
                return milter_fail(m, "out of memory");
        if (noreply && m->out.len < MILTER_CHUNK_SIZE)
                return TURN_NEXT;
        r = milter_flush(m);
        if (r < 0)
                return milter_fail(m, "cannot write");
        if (noreply)
                return TURN_NEXT;
        m->waiting = true;
        if (milter_arm(m, timeout) < 0)
                return milter_fail(m, "cannot set a timer");
        return TURN_WAIT;
}

/* ---- the message: DATA, headers, end of headers, body, end of message -------------------------- */

static int message_advance(Milter *m) {
        MilterChain *c = m->chain;
        const MilterMessage *msg = c->message;
        uint64_t t = c->settings->content_timeout;
        size_t start;
        int turn;

        for (;;) {
                switch (m->phase) {
                case PHASE_DATA:
                        m->phase = PHASE_HEADER;
                        m->header_index = 0;
                        if (m->data_sent || (m->protocol & MILTER_P_NODATA))
                                break;
                        m->data_sent = true;
                        put_macros(m, MILTER_STAGE_DATA, MILTER_CMD_DATA);
                        milter_buf_command(&m->out, MILTER_CMD_DATA, NULL);
                        turn = milter_send(m, m->protocol & MILTER_P_NR_DATA, t);
                        if (turn != TURN_NEXT)
                                return turn;
                        break;
                case PHASE_HEADER:
                        if ((m->protocol & MILTER_P_NOHDRS) || m->header_index >= msg->n_headers) {
                                m->phase = PHASE_EOH;
                                break;
                        }
                        milter_buf_command(&m->out, MILTER_CMD_HEADER,
                                           (const char *const[]) { msg->headers[m->header_index].name,
                                                                   msg->headers[m->header_index].value, NULL });
                        m->header_index++;
                        turn = milter_send(m, m->protocol & MILTER_P_NR_HDR, t);
                        if (turn != TURN_NEXT)
                                return turn;
                        break;
                case PHASE_EOH:
                        m->phase = PHASE_BODY;
                        m->body_off = 0;
                        if (m->protocol & MILTER_P_NOEOH)
                                break;
                        put_macros(m, MILTER_STAGE_EOH, MILTER_CMD_EOH);
                        milter_buf_command(&m->out, MILTER_CMD_EOH, NULL);
                        turn = milter_send(m, m->protocol & MILTER_P_NR_EOH, t);
                        if (turn != TURN_NEXT)
                                return turn;
                        break;
                case PHASE_BODY: {
                        char chunk[MILTER_CHUNK_SIZE];
                        size_t n;

                        n = (m->protocol & MILTER_P_NOBODY) ? 0
                                : milter_message_body_chunk(msg, &m->body_off, chunk, sizeof chunk);
                        if (n == 0) {
                                m->phase = PHASE_EOM;
                                break;
                        }
                        milter_buf_begin(&m->out, MILTER_CMD_BODY, &start);
                        milter_buf_put(&m->out, chunk, n);
                        milter_buf_end(&m->out, start);
                        turn = milter_send(m, m->protocol & MILTER_P_NR_BODY, t);
                        if (turn != TURN_NEXT)
                                return turn;
                        break;
                }
                case PHASE_EOM:
                        m->phase = PHASE_DONE;
                        put_macros(m, MILTER_STAGE_EOM, MILTER_CMD_BODYEOB);
                        milter_buf_command(&m->out, MILTER_CMD_BODYEOB, NULL);
                        return milter_send(m, false, t);
                default:
                        return milter_fail(m, "internal error: message step over");
                }
        }
}

/* ---- replies ------------------------------------------------------------------------------------ */

static uint32_t action_of(MilterReplyType t) {
        switch (t) {
        case MILTER_REPLY_ADDHEADER:
        case MILTER_REPLY_INSHEADER:
                return MILTER_ACT_ADDHDRS;
        case MILTER_REPLY_CHGHEADER:
                return MILTER_ACT_CHGHDRS;
        case MILTER_REPLY_REPLBODY:
                return MILTER_ACT_CHGBODY;
        case MILTER_REPLY_ADDRCPT:
                return MILTER_ACT_ADDRCPT | MILTER_ACT_ADDRCPT_PAR;
        case MILTER_REPLY_DELRCPT:
                return MILTER_ACT_DELRCPT;
        case MILTER_REPLY_CHGFROM:
                return MILTER_ACT_CHGFROM;
        case MILTER_REPLY_QUARANTINE:
                return MILTER_ACT_QUARANTINE;
        default:
                return 0;
        }
}

static int on_optneg(Milter *m, const MilterReply *r) {
        uint32_t version = m->chain->settings->protocol;

        if (r->type != MILTER_REPLY_OPTNEG)
                return milter_fail(m, "no answer to the option negotiation");
        if (r->version < 2 || r->version > version)
                return milter_fail(m, "unsupported protocol version");
        if ((r->protocol & ~MILTER_P_OFFERED) != 0)
                return milter_fail(m, "asks for protocol steps this client does not offer");
        m->actions = r->actions & MILTER_ACT_ALL;
        m->protocol = r->protocol;
        for (size_t i = 0; i < _MILTER_STAGE_MAX; i++)
                if (r->macros[i] && config_split_list(r->macros[i], &m->own_macros[i]) < 0)
                        return milter_fail(m, "out of memory");
        m->timer = sd_event_source_disable_unref(m->timer);
        m->state = MILTER_READY;
        return milter_turn(m);
}

/* A final reply to a command: its verdict. */
static int on_verdict(Milter *m, const MilterReply *r) {
        MilterChain *c = m->chain;

        switch (r->type) {
        case MILTER_REPLY_CONTINUE:
                return TURN_NEXT;
        case MILTER_REPLY_ACCEPT:
                if (c->step == STEP_CONNECT || c->step == STEP_HELO)
                        m->accepted_session = true;
                else
                        m->accepted_message = true;
                return TURN_NEXT;
        case MILTER_REPLY_REJECT:
                c->verdict = MILTER_REJECT;
                strcpy(c->reply, REPLY_REJECT);
                return TURN_STOP;
        case MILTER_REPLY_TEMPFAIL:
        case MILTER_REPLY_SHUTDOWN:
                c->verdict = MILTER_TEMPFAIL;
                strcpy(c->reply, REPLY_TEMPFAIL);
                return TURN_STOP;
        case MILTER_REPLY_REPLYCODE:
                c->verdict = r->text[0] == '5' ? MILTER_REJECT : MILTER_TEMPFAIL;
                (void) snprintf(c->reply, sizeof c->reply, "%s", r->text);
                return TURN_STOP;
        case MILTER_REPLY_DISCARD:
                /* The milter is done with this message (libmilter asks nothing more about it). */
                m->accepted_message = true;
                c->verdict = MILTER_DISCARD;
                return TURN_STOP;
        default:
                return milter_fail(m, "sent a reply not valid at this stage");
        }
}

static int on_reply(Milter *m, const MilterReply *r) {
        MilterChain *c = m->chain;
        int k;

        if (m->state == MILTER_NEGOTIATING)
                return on_optneg(m, r);
        if (!m->waiting)
                return milter_fail(m, "sent a reply that was not asked for");
        if (r->type == MILTER_REPLY_PROGRESS) {
                if (milter_arm(m, c->settings->content_timeout) < 0)
                        return milter_fail(m, "cannot set a timer");
                return TURN_WAIT;
        }
        if (c->step == STEP_MESSAGE && m->phase == PHASE_DONE && action_of(r->type) != 0) {
                if (!(m->actions & action_of(r->type)))
                        return milter_fail(m, "makes a change it did not negotiate");
                k = milter_message_apply(c->message, r);
                if (k == -ENOMEM || k == -EFBIG)
                        return milter_fail(m, k == -EFBIG ? "changes make the message too large"
                                                          : "out of memory");
                if (k < 0)
                        return milter_fail(m, "sent a malformed change");
                return TURN_WAIT;
        }
        m->waiting = false;
        m->timer = sd_event_source_disable_unref(m->timer);
        if (c->step == STEP_MESSAGE && m->phase != PHASE_DONE) {
                if (r->type == MILTER_REPLY_CONTINUE)
                        return message_advance(m);
                if (r->type == MILTER_REPLY_SKIP && m->phase == PHASE_BODY) {
                        m->phase = PHASE_EOM;
                        return message_advance(m);
                }
        }
        if (c->step == STEP_MESSAGE && m->phase == PHASE_DONE) {
                m->in_message = false;
                if (r->type == MILTER_REPLY_CONTINUE || r->type == MILTER_REPLY_ACCEPT) {
                        k = milter_message_commit(c->message);
                        if (k < 0)
                                return milter_fail(m, "a replaced body makes the message too large");
                } else
                        milter_message_rollback(c->message);
        }
        return on_verdict(m, r);
}

/* The connection is up: the option negotiation. */
static int milter_negotiate(Milter *m) {
        size_t start;

        m->state = MILTER_NEGOTIATING;
        milter_buf_begin(&m->out, MILTER_CMD_OPTNEG, &start);
        milter_buf_put_u32(&m->out, m->chain->settings->protocol);
        milter_buf_put_u32(&m->out, MILTER_ACT_ALL);
        milter_buf_put_u32(&m->out, MILTER_P_OFFERED);
        milter_buf_end(&m->out, start);
        return milter_send(m, false, m->chain->settings->command_timeout);
}

/* Reads what the milter sent and handles every complete packet. */
static int on_io(sd_event_source *s, int fd, uint32_t revents, void *userdata) {
        Milter *m = userdata;
        int turn = TURN_WAIT;

        if (m->state == MILTER_CONNECTING) {
                int error = 0;
                socklen_t len = sizeof error;

                if (getsockopt(m->fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0 || error != 0) {
                        milter_fail_next(m, "cannot connect");
                        return 0;
                }
                turn = milter_negotiate(m);
                if (turn != TURN_WAIT)
                        chain_next(m->chain, turn);
                return 0;
        }
        if (revents & EPOLLOUT) {
                if (milter_flush(m) < 0) {
                        milter_fail_next(m, "cannot write");
                        return 0;
                }
        }
        if (!(revents & (EPOLLIN | EPOLLHUP | EPOLLERR)))
                return 0;
        for (;;) {
                ssize_t n = recv(m->fd, m->in + m->in_len, MILTER_REPLY_MAX + 4 - m->in_len, MSG_DONTWAIT);

                if (n < 0 && errno == EINTR)
                        continue;
                if (n < 0 && errno == EAGAIN)
                        break;
                if (n <= 0) {
                        milter_fail_next(m, n == 0 ? "closed the connection" : "cannot read");
                        return 0;
                }
                m->in_len += (size_t) n;
                while (turn == TURN_WAIT) {
                        MilterReply r;
                        size_t size;
                        int k = milter_packet_frame(m->in, m->in_len, MILTER_REPLY_MAX, &size);

                        if (k == 0)
                                break;
                        if (k < 0 || milter_reply_parse(m->in + 4, size - 4, &r) < 0) {
                                milter_fail_next(m, k < 0 ? "sent an oversized packet" : "sent a malformed packet");
                                return 0;
                        }
                        turn = on_reply(m, &r);
                        if (m->state == MILTER_FAILED)
                                break;
                        memmove(m->in, m->in + size, m->in_len - size);
                        m->in_len -= size;
                }
                if (turn != TURN_WAIT || m->state == MILTER_FAILED)
                        break;
        }
        if (turn != TURN_WAIT)
                chain_next(m->chain, turn);
        return 0;
}

/* ---- connecting ------------------------------------------------------------------------------------- */

static int milter_connect(Milter *m) {
        const struct sockaddr_storage *sa = m->address;
        bool connected;
        int r;

        /* Looked up when the role started (milter-settings.c): no lookup blocks the event loop. */
        if (m->address_len == 0)
                return milter_fail(m, "its host name could not be looked up when the role started");
        m->in = m->in ?: malloc(MILTER_REPLY_MAX + 4);
        if (!m->in)
                return milter_fail(m, "out of memory");
        m->fd = socket(sa->ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
        if (m->fd < 0)
                return milter_fail(m, "cannot create a socket");
        connected = connect(m->fd, (const struct sockaddr *) sa, m->address_len) >= 0;
        if (!connected && errno != EINPROGRESS)
                return milter_fail(m, "cannot connect");
        /* A unix socket is connected at once: the negotiation starts without a wait for the socket. */
        r = sd_event_add_io(m->chain->event, &m->io, m->fd, connected ? EPOLLIN : EPOLLOUT, on_io, m);
        if (r >= 0 && connected)
                return milter_negotiate(m);
        if (r >= 0)
                r = milter_arm(m, m->chain->settings->connect_timeout);
        if (r < 0)
                return milter_fail(m, "cannot watch the connection");
        m->state = MILTER_CONNECTING;
        return TURN_WAIT;
}

/* ---- the steps -------------------------------------------------------------------------------------- */

/* This milter's turn in the chain's step. */
static int milter_turn(Milter *m) {
        MilterChain *c = m->chain;

        if (m->state == MILTER_FAILED)
                return chain_default(c);
        if (m->accepted_session || (c->step > STEP_MAIL && m->accepted_message))
                return TURN_NEXT;
        if (m->state == MILTER_CLOSED)
                return milter_connect(m);
        if (c->step == STEP_MAIL)
                m->accepted_message = false;
        if (c->step == STEP_MESSAGE) {
                m->phase = PHASE_DATA;
                return message_advance(m);
        }
        if (m->protocol & step_info[c->step].no)
                return TURN_NEXT;
        put_macros(m, step_info[c->step].stage, step_info[c->step].cmd);
        milter_buf_put(&m->out, c->cmd.data, c->cmd.len);
        if (c->step == STEP_MAIL)
                m->in_message = true;
        if (c->step == STEP_DATA)
                m->data_sent = true;
        return milter_send(m, m->protocol & step_info[c->step].nr, c->settings->command_timeout);
}

static void chain_finish(MilterChain *c) {
        if (c->starting) {
                /* The kick is enabled while a step starts: the callback comes from the event loop, as callers
                 * expect, not from inside their own call. */
                c->finish_deferred = true;
                return;
        }
        c->busy = false;
        if (c->step == STEP_MESSAGE && c->hold_default && c->verdict == MILTER_CONTINUE && !c->message->quarantine)
                c->message->quarantine = strdup("milter_default_action = quarantine");
        c->done(c, c->verdict, c->verdict == MILTER_REJECT || c->verdict == MILTER_TEMPFAIL ? c->reply : NULL,
                c->userdata);
}

/* Goes on after a milter's turn came to turn: to the next milter, or to the end of the step. */
static void chain_next(MilterChain *c, int turn) {
        while (turn != TURN_STOP) {
                if (turn == TURN_WAIT)
                        return;
                if (c->cur >= c->n_milters)
                        break;
                turn = milter_turn(c->milters + c->cur++);
        }
        chain_finish(c);
}

static int on_kick(sd_event_source *s, void *userdata) {
        MilterChain *c = userdata;

        if (c->finish_deferred) {
                c->finish_deferred = false;
                chain_finish(c);
        }
        return 0;
}

static int chain_start(MilterChain *c, MilterStep step, MilterDoneFunc done) {
        int r;

        assert(!c->busy);
        if (c->cmd.failed)
                return -ENOMEM;
        c->step = step;
        c->done = done;
        c->cur = 0;
        c->verdict = MILTER_CONTINUE;
        c->reply[0] = '\0';
        r = sd_event_source_set_enabled(c->kick, SD_EVENT_ONESHOT);
        if (r < 0)
                return r;
        c->busy = true;
        /* The first command goes out now rather than on the next turn of the event loop: one wait for
         * events less a step. */
        c->starting = true;
        chain_next(c, TURN_NEXT);
        c->starting = false;
        if (!c->finish_deferred)
                (void) sd_event_source_set_enabled(c->kick, SD_EVENT_OFF);
        return 0;
}

int milter_chain_connect(MilterChain *c, const char *hostname, char family, const char *addr, uint16_t port,
                         MilterDoneFunc done) {
        size_t start;

        c->cmd.len = 0;
        milter_buf_begin(&c->cmd, MILTER_CMD_CONNECT, &start);
        milter_buf_put_str(&c->cmd, hostname);
        milter_buf_put(&c->cmd, &family, 1);
        if (family != 'U') {
                milter_buf_put_u16(&c->cmd, port);
                milter_buf_put_str(&c->cmd, addr);
        }
        milter_buf_end(&c->cmd, start);
        return chain_start(c, STEP_CONNECT, done);
}

int milter_chain_helo(MilterChain *c, const char *helo, MilterDoneFunc done) {
        c->cmd.len = 0;
        milter_buf_command(&c->cmd, MILTER_CMD_HELO, (const char *const[]) { helo, NULL });
        return chain_start(c, STEP_HELO, done);
}

int milter_chain_mail(MilterChain *c, char *const *args, MilterDoneFunc done) {
        int r;

        milter_chain_abort(c);
        /* The queue ID the message will have (the role proposes it to cleanup), as Postfix knows it from
         * MAIL on. */
        r = queue_id_new(c->queue_id);
        if (r < 0)
                return r;
        c->cmd.len = 0;
        milter_buf_command(&c->cmd, MILTER_CMD_MAIL, (const char *const *) args);
        return chain_start(c, STEP_MAIL, done);
}

int milter_chain_rcpt(MilterChain *c, char *const *args, MilterDoneFunc done) {
        c->cmd.len = 0;
        milter_buf_command(&c->cmd, MILTER_CMD_RCPT, (const char *const *) args);
        return chain_start(c, STEP_RCPT, done);
}

int milter_chain_data(MilterChain *c, MilterDoneFunc done) {
        c->cmd.len = 0;
        milter_buf_command(&c->cmd, MILTER_CMD_DATA, NULL);
        return chain_start(c, STEP_DATA, done);
}

int milter_chain_message(MilterChain *c, MilterMessage *m, MilterDoneFunc done) {
        c->message = m;
        return chain_start(c, STEP_MESSAGE, done);
}

void milter_chain_abort(MilterChain *c) {
        assert(!c->busy);
        for (size_t i = 0; i < c->n_milters; i++) {
                Milter *m = c->milters + i;

                if (m->state == MILTER_READY && m->in_message) {
                        milter_buf_command(&m->out, MILTER_CMD_ABORT, NULL);
                        if (m->out.failed || milter_flush(m) < 0)
                                (void) milter_fail(m, "cannot write");
                }
                m->in_message = m->data_sent = m->accepted_message = false;
        }
        c->message = NULL;
}

bool milter_chain_asks(const MilterChain *c, char cmd) {
        MilterStep step = cmd == MILTER_CMD_HELO ? STEP_HELO : cmd == MILTER_CMD_RCPT ? STEP_RCPT : STEP_DATA;

        assert(cmd == MILTER_CMD_HELO || cmd == MILTER_CMD_RCPT || cmd == MILTER_CMD_DATA);
        for (size_t i = 0; i < c->n_milters; i++) {
                const Milter *m = c->milters + i;

                /* One not connected yet, or failed (its default action answers each step), is asked. */
                if (m->state != MILTER_READY)
                        return true;
                if (m->accepted_session || (step > STEP_MAIL && m->accepted_message))
                        continue;
                if (!(m->protocol & step_info[step].no))
                        return true;
        }
        return false;
}

const char *milter_chain_queue_id(const MilterChain *c) {
        return c && c->queue_id[0] ? c->queue_id : NULL;
}

bool milter_chain_busy(const MilterChain *c) {
        return c->busy;
}

int milter_chain_new(sd_event *event, const MilterSettings *settings, MilterMacroFunc macro, void *userdata,
                     MilterChain **ret) {
        _cleanup_(milter_chain_freep) MilterChain *c = NULL;
        int r;

        c = calloc(1, sizeof(MilterChain));
        if (!c)
                return -ENOMEM;
        c->event = sd_event_ref(event);
        c->settings = settings;
        c->macro = macro;
        c->userdata = userdata;
        c->n_milters = strv_length(settings->milters);
        c->milters = calloc(MAX(c->n_milters, 1U), sizeof(Milter));
        if (!c->milters)
                return -ENOMEM;
        for (size_t i = 0; i < c->n_milters; i++)
                c->milters[i] = (Milter) { .chain = c, .spec = settings->milters[i], .fd = -EBADF,
                                           .address = settings->addresses + i,
                                           .address_len = settings->address_lens[i] };
        r = sd_event_add_defer(event, &c->kick, on_kick, c);
        if (r < 0)
                return r;
        (void) sd_event_source_set_enabled(c->kick, SD_EVENT_OFF);
        *ret = TAKE_PTR(c);
        return 0;
}

MilterChain *milter_chain_free(MilterChain *c) {
        if (!c)
                return NULL;
        for (size_t i = 0; c->milters && i < c->n_milters; i++) {
                Milter *m = c->milters + i;

                /* QUIT as a courtesy, after what is queued (commands that get no reply), in one try; a milter
                 * must cope with a closed connection anyway. */
                if (m->state == MILTER_READY) {
                        milter_buf_command(&m->out, MILTER_CMD_QUIT, NULL);
                        if (!m->out.failed)
                                (void) send(m->fd, m->out.data + m->out_off, m->out.len - m->out_off,
                                            MSG_NOSIGNAL | MSG_DONTWAIT);
                }
                milter_close(m);
                free(m->in);
                for (size_t k = 0; k < _MILTER_STAGE_MAX; k++)
                        strv_free(m->own_macros[k]);
        }
        free(c->milters);
        milter_buf_done(&c->cmd);
        sd_event_source_disable_unref(c->kick);
        sd_event_unref(c->event);
        free(c);
        return NULL;
}
