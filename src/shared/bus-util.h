/* bus-util.h: sd-bus in peer-to-peer mode over AF_UNIX between roles: a server that accepts connections
 * on a socket-activated listening socket, and a client that keeps one connection and reconnects with
 * back-off after the peer went away. File descriptors pass as 'h' arguments. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "daemon.h"

#define POSTBUS_ERROR_NO_SUCH_MESSAGE "org.postbus.Error.NoSuchMessage"
#define POSTBUS_ERROR_INVALID_ARGS "org.postbus.Error.InvalidArguments"
#define POSTBUS_ERROR_REJECTED "org.postbus.Error.Rejected"              /* permanent: text is "5.x.y ..." */
#define POSTBUS_ERROR_TEMPORARY "org.postbus.Error.TemporaryFailure"     /* retry later: "4.x.y ..." */
#define POSTBUS_ERROR_ACCESS_DENIED "org.postbus.Error.AccessDenied"

typedef struct BusServer BusServer;

/* Called for each new connection, to add the role's vtables; userdata is the server's. */
typedef int (*BusServerSetupFunc)(sd_bus *bus, void *userdata);

/* Accepts peers on listen_fd whose uid is 0 or one of allowed_uids (or anyone when allow_any). */
int bus_server_new(Daemon *d, int listen_fd, BusServerSetupFunc setup, void *userdata, BusServer **ret);
void bus_server_allow_uid(BusServer *s, uid_t uid);
/* The usual start of a role that other roles call: serves the passed socket with this
 * FileDescriptorName= to root and the postbus user. -ENOENT when no such socket was passed; other
 * errors are logged. */
int bus_server_serve(Daemon *d, const char *fd_name, BusServerSetupFunc setup, void *userdata, BusServer **ret);
void bus_server_allow_any(BusServer *s);
BusServer *bus_server_free(BusServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusServer *, bus_server_free);

typedef struct BusClient BusClient;

int bus_client_new(sd_event *e, const char *socket_path, BusClient **ret);
BusClient *bus_client_free(BusClient *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusClient *, bus_client_free);

/* The connection, opened if needed. -EAGAIN while backing off after a failed connection attempt. */
int bus_client_get(BusClient *c, sd_bus **ret);
const char *bus_client_path(const BusClient *c);

/* For calls that pass file descriptors: returns 1 with *ret when the connection is ready; else 0 after
 * arranging for callback (an sd-bus reply handler) to run once it is, or has failed: the callback then
 * checks sd_bus_is_ready(sd_bus_message_get_bus(m)) and sends its call. */
int bus_client_get_ready(BusClient *c, sd_bus_message_handler_t callback, void *userdata, sd_bus_slot **ret_slot,
                         sd_bus **ret);

/* Maps an error reply to negative errno; -EIO when the peer is gone or silent. */
int bus_error_to_errno(const sd_bus_error *e);

/* The uid of the named user, or -ENOENT. */
int get_user_uid(const char *name, uid_t *ret);
