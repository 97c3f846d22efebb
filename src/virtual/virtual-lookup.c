/* virtual-lookup.c: what the virtual role decides about a hosted recipient before anything is written: its
 * mailbox, uid and gid from the maps (in the long-lived virtual process, as root), the checks of those values,
 * and the delivery itself, run in the process that has become the mapped uid. */
#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "virtual.h"

int virtual_maps_open(VirtualMaps *m, const Config *c) {
        int r;

        *m = (VirtualMaps) {};
        r = virtual_map_open(c->virtual_mailbox_maps, &m->mailboxes);
        if (r >= 0)
                r = virtual_map_open(c->virtual_uid_maps, &m->uids);
        if (r >= 0)
                r = virtual_map_open(c->virtual_gid_maps, &m->gids);
        if (r < 0)
                virtual_maps_done(m);
        return r;
}

void virtual_maps_done(VirtualMaps *m) {
        virtual_map_done(&m->mailboxes);
        virtual_map_done(&m->uids);
        virtual_map_done(&m->gids);
}

void virtual_target_done(VirtualTarget *t) {
        t->path = mfree(t->path);
}

int virtual_mailbox_path(const char *base, const char *value, char **ret) {
        const char *v = value;

        while (*v && isspace((unsigned char) *v))
                v++;
        size_t len = strlen(v);
        while (len > 0 && isspace((unsigned char) v[len - 1]))
                len--;
        if (len == 0 || memchr(v, '\n', len))
                return -EINVAL;
        /* No way up and out of virtual_mailbox_base. */
        for (size_t i = 0; i < len;) {
                size_t n = strcspn(v + i, "/");
                if (n > len - i)
                        n = len - i;
                if (n == 2 && v[i] == '.' && v[i + 1] == '.')
                        return -EINVAL;
                i += n + 1;
        }
        while (len > 0 && v[0] == '/') {
                v++;
                len--;
        }
        if (len == 0)
                return -EINVAL;
        size_t blen = strlen(base);
        while (blen > 1 && base[blen - 1] == '/')
                blen--;
        if (asprintf(ret, "%.*s/%.*s", (int) blen, base, (int) len, v) < 0)
                return -ENOMEM;
        return 0;
}

int virtual_parse_id(const char *value, unsigned long *ret) {
        const char *v = value;
        char *end;
        unsigned long n;

        while (isspace((unsigned char) *v))
                v++;
        if (!isdigit((unsigned char) *v))
                return -EINVAL;
        errno = 0;
        n = strtoul(v, &end, 10);
        if (errno != 0 || n > (unsigned long) INT32_MAX)
                return -EINVAL;
        while (isspace((unsigned char) *end))
                end++;
        if (*end != '\0')
                return -EINVAL;
        *ret = n;
        return 0;
}

/* A uid or gid from map: 1 and the id, or 0 with ret_result set. */
static int lookup_id(VirtualMap *map, const Config *c, const char *recipient, const char *what, unsigned long *ret,
                     MailboxResult *ret_result) {
        _cleanup_free_ char *value = NULL, *escaped = NULL;
        int r;

        r = virtual_map_lookup_address(map, recipient, c->recipient_delimiter, &value);
        if (r < 0) {
                mailbox_result_set(ret_result, "4.3.0", "%s lookup failure: %s", what, strerror(-r));
                return 0;
        }
        escaped = log_escape(recipient, strlen(recipient));
        if (r == 0) {
                log_warning("recipient %s: not found in %s", strna(escaped), what);
                mailbox_result_set(ret_result, "4.3.5", "mail system configuration error");
                return 0;
        }
        if (virtual_parse_id(value, ret) < 0) {
                _cleanup_free_ char *v = log_escape(value, strlen(value));
                log_warning("recipient %s: bad value \"%s\" in %s", strna(escaped), strna(v), what);
                mailbox_result_set(ret_result, "4.3.5", "mail system configuration error");
                return 0;
        }
        return 1;
}

int virtual_lookup(VirtualMaps *m, const Config *c, const char *recipient, VirtualTarget *ret,
                   MailboxResult *ret_result) {
        _cleanup_free_ char *value = NULL, *path = NULL, *escaped = NULL;
        unsigned long uid, gid;
        int r;

        r = virtual_map_lookup_address(&m->mailboxes, recipient, c->recipient_delimiter, &value);
        if (r < 0) {
                mailbox_result_set(ret_result, "4.3.0", "virtual_mailbox_maps lookup failure: %s", strerror(-r));
                return 0;
        }
        if (r == 0) {
                mailbox_result_set(ret_result, "5.1.1", "unknown user: \"%s\"", recipient);
                return 0;
        }
        escaped = log_escape(recipient, strlen(recipient));
        r = virtual_mailbox_path(c->virtual_mailbox_base, value, &path);
        if (r == -ENOMEM) {
                mailbox_result_set(ret_result, "4.3.0", "out of memory");
                return 0;
        }
        if (r < 0) {
                _cleanup_free_ char *v = log_escape(value, strlen(value));
                log_warning("recipient %s: unusable mailbox \"%s\" in virtual_mailbox_maps", strna(escaped),
                            strna(v));
                mailbox_result_set(ret_result, "4.3.5", "mail system configuration error");
                return 0;
        }
        if (!lookup_id(&m->uids, c, recipient, "virtual_uid_maps", &uid, ret_result) ||
            !lookup_id(&m->gids, c, recipient, "virtual_gid_maps", &gid, ret_result))
                return 0;
        /* Never as root, nor as a system account: as Postfix, a configuration error to fix, not a bounce. */
        if (uid < (unsigned long) c->virtual_minimum_uid) {
                log_warning("recipient %s: bad uid %lu in virtual_uid_maps (below virtual_minimum_uid = %" PRIi64 ")",
                            strna(escaped), uid, c->virtual_minimum_uid);
                mailbox_result_set(ret_result, "4.3.5", "mail system configuration error");
                return 0;
        }
        *ret = (VirtualTarget) { .path = TAKE_PTR(path), .uid = (uid_t) uid, .gid = (gid_t) gid };
        return 1;
}

void virtual_deliver(const MailboxMessage *m, const Config *c, const VirtualTarget *t, MailboxResult *ret) {
        MailboxMbox mb = {
                .path = t->path,
                .uid = t->uid, .gid = t->gid,
                .lock_uid = t->uid, .lock_gid = t->gid,
                .create_gid = t->gid,
                .locking = {
                        .attempts = (unsigned) c->deliver_lock_attempts,
                        .delay_usec = (uint64_t) c->deliver_lock_delay * USEC_PER_SEC,
                        .stale_usec = (uint64_t) c->stale_lock_time * USEC_PER_SEC,
                },
        };

        if (t->path[strlen(t->path) - 1] == '/') {
                mailbox_deliver_maildir(m, t->path, c->myhostname, ret);
                return;
        }
        if (mailbox_lock_parse(c->virtual_mailbox_lock, &mb.locking) < 0) {
                mailbox_result_set(ret, "4.3.5", "mail system configuration error");
                return;
        }
        mailbox_deliver_mbox(m, &mb, ret);
}
