/* pickup-milter.c: non_smtpd_milters in the pickup process: each sendmail message, held in its sealed
 * memory file, is shown to the milters as a connection from localhost (connect, HELO, MAIL, RCPT, then the
 * message), on pickup's event loop; their changes make a new memory file and envelope, which is what goes
 * to cleanup (the one queue file, see src/shared/milter.c). */
#include <stdio.h>

#include "address.h"
#include "io-util.h"
#include "log.h"
#include "pickup.h"
#include "string-util.h"

/* The macros of a local submission, besides main.cf's and the queue ID (src/shared/milter*.c). */
static const char *message_macro(const char *name, void *userdata) {
        PickupMessage *m = userdata;
        const char *v = milter_config_macro(m->pickup->daemon->config, name);

        if (v)
                return v;
        if (streq(name, "_"))
                return "localhost [127.0.0.1]";
        if (streq(name, "{client_addr}"))
                return "127.0.0.1";
        if (streq(name, "{client_name}") || streq(name, "{client_ptr}"))
                return "localhost";
        if (streq(name, "{mail_addr}"))
                return m->envelope->sender;
        if (streq(name, "{rcpt_addr}"))
                return m->milter_rcpt < m->envelope->n_recipients ? m->envelope->recipients[m->milter_rcpt] : NULL;
        return NULL;
}

void pickup_milter_free(PickupMessage *m) {
        m->milter = milter_chain_free(m->milter);
        m->milter_in = milter_input_free(m->milter_in);
        free(m->milter_hold);
        free(m->queue_id);
}

/* The changes to the envelope and content: a new sealed memory file for cleanup. */
static int message_apply(PickupMessage *m) {
        MaildropEnvelope *e = m->envelope;
        MilterMessage *mm = &m->milter_in->message;
        int r;

        if (mm->sender) {
                char *s = strdup(mm->sender);
                if (!s)
                        return -ENOMEM;
                free(e->sender);
                e->sender = s;
        }
        for (size_t i = 0; i < mm->n_del_rcpt; i++)
                for (size_t k = 0; k < e->n_recipients; k++)
                        if (strcasecmp(e->recipients[k], mm->del_rcpt[i]) == 0) {
                                free(e->recipients[k]);
                                memmove(e->recipients + k, e->recipients + k + 1,
                                        (e->n_recipients - k) * sizeof(char *));
                                e->n_recipients--;
                                k--;
                        }
        for (size_t i = 0; i < mm->n_add_rcpt; i++) {
                r = strv_push(&e->recipients, &e->n_recipients, strdup(mm->add_rcpt[i]));
                if (r < 0)
                        return r;
        }
        if (mm->quarantine && !(m->milter_hold = strdup(mm->quarantine)))
                return -ENOMEM;
        if (mm->changed) {
                _cleanup_close_ int fd = -EBADF;

                r = milter_message_memfd(mm, "postbus-pickup", &fd);
                if (r >= 0)
                        r = memfd_seal(fd);
                if (r < 0)
                        return r;
                safe_close(m->content_fd);
                m->content_fd = TAKE_FD(fd);
        }
        return 0;
}

static void on_step(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata);

/* The next step after the one that just ended with "continue": connect, HELO, MAIL, each RCPT, the
 * message. */
static int milter_next(PickupMessage *m) {
        MaildropEnvelope *e = m->envelope;
        char addr[ADDRESS_MAX + 3], *args[2] = { addr, NULL };
        size_t step = m->milter_step++;
        int r;

        if (step == 0)
                return milter_chain_connect(m->milter, "localhost", '4', "127.0.0.1", 0, on_step);
        if (step == 1)
                return milter_chain_helo(m->milter, "localhost", on_step);
        if (step == 2) {
                (void) snprintf(addr, sizeof addr, "<%s>", e->sender);
                return milter_chain_mail(m->milter, args, on_step);
        }
        if (step - 3 < e->n_recipients) {
                m->milter_rcpt = step - 3;
                (void) snprintf(addr, sizeof addr, "<%s>", e->recipients[m->milter_rcpt]);
                return milter_chain_rcpt(m->milter, args, on_step);
        }
        r = milter_input_new(m->content_fd, (size_t) m->pickup->daemon->config->message_size_limit, &m->milter_in);
        if (r < 0)
                return r;
        return milter_chain_message(m->milter, &m->milter_in->message, on_step);
}

static void on_step(MilterChain *c, MilterVerdict verdict, const char *reply, void *userdata) {
        PickupMessage *m = userdata;
        int r = 0;

        if (verdict == MILTER_CONTINUE && !m->milter_in) {
                r = milter_next(m);
                if (r >= 0)
                        return;
                log_warning_errno(r, "maildrop file %s: cannot ask the milters: %m", m->name);
        } else if (verdict == MILTER_CONTINUE)
                r = message_apply(m);   /* the end of the message */
        /* The queue ID the milters saw: cleanup names the message so. */
        if (r >= 0 && milter_chain_queue_id(c) && !(m->queue_id = strdup(milter_chain_queue_id(c))))
                r = -ENOMEM;
        if (r < 0) {
                verdict = MILTER_TEMPFAIL;
                reply = "451 4.3.0 Error: milter client failure";
        }
        m->milter_in = milter_input_free(m->milter_in);
        m->milter = milter_chain_free(m->milter);
        pickup_milter_done(m, verdict, reply);
}

int pickup_milter_start(PickupMessage *m) {
        Pickup *p = m->pickup;
        int r;

        r = milter_chain_new(p->daemon->event, &p->milters, message_macro, m, &m->milter);
        if (r < 0)
                return r;
        m->milter_step = m->milter_rcpt = 0;
        return milter_next(m);
}
