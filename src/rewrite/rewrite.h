/* rewrite.h: private to the rewrite role. */
#pragma once

#include <systemd/sd-bus.h>

#include "bus-util.h"
#include "daemon.h"
#include "rewrite-address.h"
#include "table.h"
#include "virtual-maps.h"

typedef struct Rewrite {
        Daemon *daemon;
        BusServer *server;
        RewriteContext context;
        char **mydestination;
        TableList *transport_maps;
        VirtualDomains virtual_domains;
        VirtualDomains relay_domains;
        TableList *relayhost_maps;      /* sender_dependent_relayhost_maps */
} Rewrite;

extern const sd_bus_vtable rewrite_vtable[];
