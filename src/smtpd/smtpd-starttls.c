/* smtpd-starttls.c: TLS on a session in the smtpd process: STARTTLS, port 465's TLS from the first byte, the
 * handshake, and the connection's reads and writes through OpenSSL (smtpd-tls.c). */
#include <sys/socket.h>
#include <unistd.h>

#include "log.h"
#include "smtpd-session.h"

/* Whether the EHLO reply offers STARTTLS: a certificate, a level other than none, no TLS yet, not discarded
 * (smtpd_discard_ehlo_keywords). Where it is not, STARTTLS is an unknown command. */
bool smtpd_session_tls_offered(const SmtpdSession *s) {
        const SmtpdListener *l = s->listener;

        return l->tls && l->tls_level != SMTPD_TLS_NONE && !l->wrappermode && !s->tls &&
               !(s->ehlo_discard & SMTPD_EHLO_STARTTLS);
}

void smtpd_session_tls_handshake(SmtpdSession *s) {
        int r;

        r = smtpd_tls_handshake(s->tls);
        if (r == 0)
                return;
        if (r < 0) {
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "SSL_accept error from %s[%s]: %s", s->peer.name, s->client.text, smtpd_tls_error(s->tls));
                smtpd_session_lost(s);
                return;
        }
        if (s->conf->config->smtpd_tls_loglevel > 0)
                log_mail(LOG_INFO, NULL,
                         LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }, { "TLS_PROTOCOL", smtpd_tls_version(s->tls) },
                                    { "TLS_CIPHER", smtpd_tls_cipher(s->tls) }),
                         "Anonymous TLS connection established from %s[%s]: %s with cipher %s (%d/%d bits)",
                         s->peer.name, s->client.text, smtpd_tls_version(s->tls), smtpd_tls_cipher(s->tls),
                         smtpd_tls_bits(s->tls), smtpd_tls_bits(s->tls));
        /* RFC 3207 4.2: the client starts over, and nothing said before the handshake counts. */
        s->helo = mfree(s->helo);
        s->esmtp = false;
        smtpd_session_reset(s);
        s->state = SMTPD_SESSION_COMMAND;
        s->last_io_usec = now_monotonic_usec();
        if (s->listener->wrappermode)
                smtpd_session_greet(s); /* the restrictions' side (smtpd-restrictions.c) */
}

/* Starts the handshake: after the 220 to STARTTLS has gone out in plaintext, or at connect on port 465.
 * smtpd_timeout bounds the whole handshake: last_io_usec is not moved until it is complete. */
void smtpd_session_tls_start(SmtpdSession *s) {
        int r;

        r = smtpd_tls_new(s->listener->tls, s->fd, &s->tls);
        if (r < 0) {
                log_warning_errno(r, "Failed to start TLS with %s, closing: %m", s->client.text);
                s->state = SMTPD_SESSION_CLOSED;
                return;
        }
        s->state = SMTPD_SESSION_TLS_HANDSHAKE;
        s->last_io_usec = now_monotonic_usec();
        smtpd_session_tls_handshake(s);
}

void smtpd_cmd_starttls(SmtpdSession *s, const SmtpdCommand *c) {
        if (c->arg_len > 0) {
                smtpd_session_reply(s, "501 5.5.4 Syntax: STARTTLS");
                return;
        }
        if (s->tls) {
                smtpd_session_reply(s, "554 5.5.1 Error: TLS already active");
                return;
        }
        if (!smtpd_session_tls_offered(s)) {
                /* Where TLS is not offered (no certificate, or level none) STARTTLS is an unknown command, and
                 * this is Postfix's smtpd's answer to it, word for word (test_smtpd_tls checks it). */
                smtpd_session_reply(s, "502 5.5.1 Error: command not implemented");
                return;
        }
        if (s->in_mail) {
                smtpd_session_reply(s, "503 5.5.1 Error: MAIL transaction in progress");
                return;
        }
        smtpd_session_reply(s, "220 2.0.0 Ready to start TLS");
        /* Whatever the client pipelined after STARTTLS came in plaintext: executed after the handshake
         * it would pass for the client's word over TLS (CVE-2011-0411). It is dropped. */
        if (s->in_end > s->in_start)
                log_mail(LOG_WARNING, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "%s[%s]: discarding %zu bytes of plaintext pipelined after STARTTLS",
                         s->peer.name, s->client.text, s->in_end - s->in_start);
        s->in_start = s->in_end;
        smtpd_line_reader_init(&s->lines, (size_t) s->conf->config->line_length_limit);
        s->state = SMTPD_SESSION_STARTTLS;
}

/* Reading and writing the client's connection, in plaintext or through TLS: like read(2) and send(2),
 * with errno set on failure. */
ssize_t smtpd_session_recv(SmtpdSession *s, void *buf, size_t n) {
        ssize_t k;

        if (!s->tls)
                return read(s->fd, buf, n);
        k = smtpd_tls_read(s->tls, buf, n);
        if (k >= 0)
                return k;
        if (k != -EAGAIN)
                log_mail(LOG_INFO, NULL, LOG_FIELDS({ "CLIENT_ADDRESS", s->client.text }),
                         "TLS read error from %s[%s]: %s", s->peer.name, s->client.text, smtpd_tls_error(s->tls));
        errno = (int) -k;
        return -1;
}

ssize_t smtpd_session_send(SmtpdSession *s, const void *buf, size_t n) {
        ssize_t k;

        if (!s->tls)
                return send(s->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
        k = smtpd_tls_write(s->tls, buf, n);
        if (k >= 0)
                return k;
        errno = (int) -k;
        return -1;
}
