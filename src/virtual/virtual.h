/* virtual.h: private to the virtual role (Postfix's virtual(8)): the lookups of a hosted recipient, the delivery
 * into its mailbox as the mapped uid, and the Delivery1 service. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>

#include "config.h"
#include "daemon.h"
#include "delivery-agent.h"
#include "mailbox.h"
#include "virtual-maps.h"

/* Most recipients in one Deliver call. */
#define VIRTUAL_RECIPIENTS_MAX 1000U

/* virtual_mailbox_maps, virtual_uid_maps and virtual_gid_maps, opened once. */
typedef struct VirtualMaps {
        VirtualMap mailboxes;
        VirtualMap uids;
        VirtualMap gids;
} VirtualMaps;

int virtual_maps_open(VirtualMaps *m, const Config *c);
void virtual_maps_done(VirtualMaps *m);

/* Where and as whom a recipient's mail is written. */
typedef struct VirtualTarget {
        char *path;                     /* below virtual_mailbox_base; ending in '/': a Maildir */
        uid_t uid;
        gid_t gid;
} VirtualTarget;

void virtual_target_done(VirtualTarget *t);

/* A mailbox path from virtual_mailbox_maps joined to base: -EINVAL for an empty value or one with a ".."
 * component, or with a NUL or a newline. */
int virtual_mailbox_path(const char *base, const char *value, char **ret);
/* A decimal uid or gid as a map gives it (white space around it allowed): -EINVAL otherwise. */
int virtual_parse_id(const char *value, unsigned long *ret);

/* Looks recipient up as Postfix's virtual(8) does: 1 and the target, or 0 and the result that settles it
 * (unknown: bounced 5.1.1; no uid or gid, or a uid below virtual_minimum_uid: deferred 4.3.5; a table that
 * cannot be read: deferred 4.3.0). */
int virtual_lookup(VirtualMaps *m, const Config *c, const char *recipient, VirtualTarget *ret,
                   MailboxResult *ret_result);

/* In the delivery process, once it is the target's uid and gid: writes the message into the mailbox. */
void virtual_deliver(const MailboxMessage *m, const Config *c, const VirtualTarget *t, MailboxResult *ret);

/* The role: org.postbus.Delivery1 on listen_fd, for uid 0 and peer_uid ((uid_t) -1: none). */
int virtual_new(Daemon *d, int listen_fd, uid_t peer_uid, DeliveryAgent **ret);
DeliveryAgent *virtual_free(DeliveryAgent *a);
/* A reload: the maps of c replace the open ones; -EINVAL (logged) keeps them. */
int virtual_reload(DeliveryAgent *a, const Config *c);
