/* local-forward.c: mail that aliases or .forward files send to other domains. local does not send mail
 * itself: as Postfix's local does, it submits a new message to cleanup (Submit over $rundir/cleanup, like
 * smtpd), the original content with a Delivered-To header first, under the original envelope sender or, for
 * mail through an alias foo with an owner-foo alias, owner-foo (Postfix: errors go to the list's owner).
 * Runs in the delivery child with a blocking connection of its own. */
#include <grp.h>

#include "bus-util.h"
#include "io-util.h"
#include "local.h"
#include "log.h"

#define CLEANUP_OBJECT "/org/postbus/Cleanup1"
#define CLEANUP_INTERFACE "org.postbus.Cleanup1"

/* The new message in a sealed memory file, as smtpd hands cleanup its messages. */
static int forward_content(const MailboxMessage *m, const char *delivered_to, int *ret_fd) {
        _cleanup_close_ int fd = -EBADF;
        _cleanup_free_ char *header = NULL;
        int r;

        fd = memfd_new("postbus-forward");
        if (fd < 0)
                return fd;
        if (asprintf(&header, "Delivered-To: %s\n", delivered_to) < 0)
                return -ENOMEM;
        r = write_full(fd, header, strlen(header));
        if (r >= 0)
                r = queue_file_content_foreach(m->queue_fd, m->envelope, write_full_cb, &fd);
        if (r >= 0)
                r = memfd_seal(fd);
        if (r < 0)
                return r;
        *ret_fd = TAKE_FD(fd);
        return 0;
}

/* cleanup's socket admits its callers' group, postbus-to-cleanup, and local has no CAP_DAC_OVERRIDE. The
 * delivery child (root) takes that group alone: whatever groups local had are gone anyway once it has read a
 * .forward or :include: file with its owner's (mailbox_set_eugid()). */
static int join_cleanup_group(void) {
        struct group *gr;

        errno = 0;
        gr = getgrnam("postbus-to-cleanup");
        if (!gr)
                return errno > 0 ? -errno : -ENOENT;
        return setgroups(1, &gr->gr_gid) < 0 ? -errno : 0;
}

int local_forward_submit(const MailboxMessage *m, const char *delivered_to, const char *sender, char **recipients,
                         uint64_t timeout_usec, char ret_id[static QUEUE_ID_SIZE], MailboxResult *ret) {
        _cleanup_(sd_bus_flush_close_unrefp) sd_bus *bus = NULL;
        _cleanup_(sd_bus_message_unrefp) sd_bus_message *call = NULL, *reply = NULL;
        _cleanup_(sd_bus_error_free) sd_bus_error error = SD_BUS_ERROR_NULL;
        _cleanup_close_ int fd = -EBADF;
        const char *id;
        int r;

        r = forward_content(m, delivered_to, &fd);
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot copy the message for forwarding: %s", strerror(-r));
                return r;
        }

        r = join_cleanup_group();
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot take the group postbus-to-cleanup: %s", strerror(-r));
                return r;
        }
        if ((r = sd_bus_new(&bus)) < 0 ||
            (r = sd_bus_set_address(bus, "unix:path=" POSTBUS_RUNDIR "/cleanup")) < 0 ||
            (r = sd_bus_negotiate_fds(bus, true)) < 0 ||
            (r = sd_bus_start(bus)) < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot connect to cleanup to forward the message: %s",
                                 strerror(-r));
                return r;
        }
        r = sd_bus_message_new_method_call(bus, &call, NULL, CLEANUP_OBJECT, CLEANUP_INTERFACE, "Submit");
        if (r >= 0)
                r = sd_bus_message_append(call, "hs", fd, sender ?: m->sender);
        /* Recipients as (address, DSN NOTIFY, ORCPT); a forwarded copy asks for nothing of its own. */
        if (r >= 0)
                r = sd_bus_message_open_container(call, 'a', "(sss)");
        for (char **rc = recipients; r >= 0 && *rc; rc++)
                r = sd_bus_message_append(call, "(sss)", *rc, "", "");
        if (r >= 0)
                r = sd_bus_message_close_container(call);
        if (r >= 0)
                r = sd_bus_message_append(call, "a{ss}", 1, "origin", "local");
        if (r < 0) {
                mailbox_result_set(ret, "4.3.0", "cannot build the forwarding request: %s", strerror(-r));
                return r;
        }
        r = sd_bus_call(bus, call, timeout_usec, &error, &reply);
        if (r < 0) {
                /* cleanup's rejections are permanent ("554 5.4.6 Too many hops"); anything else may pass. */
                if (sd_bus_error_has_name(&error, POSTBUS_ERROR_REJECTED) && error.message) {
                        const char *text = error.message;
                        if (strlen(text) > 4 && text[0] == '5' && text[3] == ' ')
                                text += 4;
                        mailbox_result_set(ret, "5.3.0", "cannot forward: %s", text);
                } else
                        mailbox_result_set(ret, "4.3.0", "cannot forward: %s",
                                         error.message ?: strerror(-r));
                return r;
        }
        r = sd_bus_message_read(reply, "s", &id);
        if (r < 0 || !queue_id_valid(id)) {
                mailbox_result_set(ret, "4.3.0", "cleanup answered the forwarding request with no queue ID");
                return r < 0 ? r : -EBADMSG;
        }
        memcpy(ret_id, id, QUEUE_ID_SIZE);
        mailbox_result_set(ret, "2.0.0", "forwarded as %s", id);
        return 0;
}
