/* smtp.c: the smtp delivery role, postbus-smtp: delivers queued mail to other mail servers over SMTP, and
 * to LMTP servers, for qmgr over org.postbus.Delivery1, as Postfix's smtp(8) and lmtp(8) do. One process
 * on sd-event drives every session at once; the socket a call comes on (FileDescriptorName= smtp or lmtp)
 * tells the protocol.
 *
 * SECURITY
 * smtp runs as the unprivileged user postbus-smtp in a sandbox (ProtectSystem=strict with nothing writable,
 * no capabilities, only AF_UNIX, AF_INET and AF_INET6 sockets). It trusts only its peer, qmgr: connections
 * are accepted from uid 0 and qmgr's user postbus alone (SO_PEERCRED at accept; the socket is 0600
 * postbus), and even so every argument is checked (queue ID syntax, addresses, transport and next hop text,
 * bounded option and recipient counts, a regular queue file that must validate as a whole, indices within
 * the file). It reads the queue file only through the descriptor qmgr passes and never writes it.
 * Everything a remote server sends is untrusted: replies are parsed line by line with a bounded input
 * buffer (a longer line is cut), a bounded number of lines and of kept text, and every stage has its
 * timeout; reply text is escaped before it goes into a result or the journal. DNS answers (c-ares) only
 * choose where to connect. The passwords of smtp_sasl_password_maps (a table readable by postbus-smtp) are
 * sent only with the mechanisms the SASL security options allow (by default never outside TLS), held only
 * until they are sent, and never logged. */
#include "log.h"
#include "smtp.h"

static int smtp_setup(Daemon *d) {
        Smtp *s;
        int r;

        r = smtp_new(d, &s);
        if (r < 0)
                return log_error_errno(r, "Failed to set up the Delivery1 service: %m");
        d->userdata = s;
        return 0;
}

static void smtp_done(Daemon *d) {
        d->userdata = smtp_free(d->userdata);
}

/* Each delivery call copies its settings from d->config when it begins (smtp-bus.c), so a call in progress
 * keeps its own and the next one gets the new; the TLS policy and password tables are opened again when
 * their parameters name others, and a rebuilt table when its file changed. */
static int smtp_reload(Daemon *d, Config *new) {
        return 0;
}

int main(int argc, char **argv) {
        static const DaemonSpec spec = {
                .role = "smtp",
                .may_exit_idle = true,
                .needs_sockets = true,
                .setup = smtp_setup,
                .done = smtp_done,
                .reload = smtp_reload,
        };

        return daemon_main(argc, argv, &spec);
}
