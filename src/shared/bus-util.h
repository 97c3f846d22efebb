/* bus-util.h: sd-bus in peer-to-peer mode over AF_UNIX between roles: a server that accepts connections
 * on a socket-activated listening socket (bus-util.c), and a client that keeps one connection, reconnects
 * with back-off after the peer went away, and keeps a window of calls in flight (bus-client.c). File
 * descriptors pass as 'h' arguments. */
#pragma once

#include <stdbool.h>
#include <sys/types.h>
#include <systemd/sd-bus.h>

#include "daemon.h"
#include "io-util.h"

#define POSTBUS_ERROR_NO_SUCH_MESSAGE "org.postbus.Error.NoSuchMessage"
#define POSTBUS_ERROR_INVALID_ARGS "org.postbus.Error.InvalidArguments"
#define POSTBUS_ERROR_REJECTED "org.postbus.Error.Rejected"              /* permanent: text is "5.x.y ..." */
#define POSTBUS_ERROR_TEMPORARY "org.postbus.Error.TemporaryFailure"     /* retry later: "4.x.y ..." */
#define POSTBUS_ERROR_ACCESS_DENIED "org.postbus.Error.AccessDenied"
#define POSTBUS_ERROR_CORRUPT_QUEUE_FILE "org.postbus.Error.CorruptQueueFile" /* an agent found it so */
#define POSTBUS_ERROR_BAD_DESCRIPTOR "org.postbus.Error.UntrustedDescriptor"  /* see peer_fd_check() */

typedef struct BusServer BusServer;

/* A descriptor that the caller of m passed, checked by peer_fd_check() (io-util.h) before any use. On
 * refusal: a journal record (with the caller's uid and pid, MESSAGE_ID=POSTBUS_MESSAGE_DESCRIPTOR_REFUSED),
 * error set to org.postbus.Error.UntrustedDescriptor, and a negative return for the handler to return. 0 and
 * *ret_st (may be NULL) when the descriptor will do. what names it in the record: "message content". */
int bus_check_peer_fd(sd_bus_message *m, int fd, PeerFdKind kind, const char *what, struct stat *ret_st,
                      sd_bus_error *error);

/* Called for each new connection, to add the role's vtables; userdata is the server's. */
typedef int (*BusServerSetupFunc)(sd_bus *bus, void *userdata);

/* Accepts peers on listen_fd whose uid is 0, ours, or one allowed (or anyone when allow_any), up to
 * bus_connection_limit at once; more wait in the listen backlog. Each connection is driven by an io source of
 * its own. The server does not hold the daemon busy for its connections, only while it processes one: a role
 * with work that outlives a call counts it itself (daemon_busy_inc()), so that it can exit idle while its
 * callers keep their connections. */
int bus_server_new(Daemon *d, int listen_fd, BusServerSetupFunc setup, void *userdata, BusServer **ret);
int bus_server_allow_uid(BusServer *s, uid_t uid);
unsigned bus_server_n_connections(const BusServer *s);
/* The usual start of a role that other roles call: serves the passed socket with this
 * FileDescriptorName= to root and the roles that call it (bus_server_allow_callers()). -ENOENT when no such
 * socket was passed; other errors are logged. */
int bus_server_serve(Daemon *d, const char *fd_name, BusServerSetupFunc setup, void *userdata, BusServer **ret);
/* Admits the users of the roles that call the socket of this FileDescriptorName= (a table in bus-util.c, to
 * match units/sysusers-postbus.conf); a socket not in it admits root alone. A refused peer is journaled with
 * its uid and pid. */
int bus_server_allow_callers(BusServer *s, const char *fd_name);
void bus_server_allow_any(BusServer *s);
BusServer *bus_server_free(BusServer *s);
DEFINE_TRIVIAL_CLEANUP_FUNC(BusServer *, bus_server_free);

/* Timeouts chosen for the work of a call, never sd-bus's 25 s default. A call's timeout runs from when it is
 * sent, after its turn in the window and the connection's handshake. */
#define BUS_CONNECT_TIMEOUT_USEC (30 * USEC_PER_SEC)   /* handshake, with the peer's start by activation */
#define BUS_LOOKUP_TIMEOUT_USEC (15 * USEC_PER_SEC)    /* Rewrite, Resolve: in-memory work and table lookups */
#define BUS_WAKE_TIMEOUT_USEC (15 * USEC_PER_SEC)      /* a wake-up that only queues work */

typedef struct BusClient BusClient;

/* Calls in flight on one connection, unless bus_client_set_window() says otherwise (DESIGN.md: 8-32). */
#define BUS_CLIENT_WINDOW_DEFAULT 32U

int bus_client_new(sd_event *e, const char *socket_path, BusClient **ret);
void bus_client_set_window(BusClient *c, unsigned window);
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

/* Flow control: bus_client_call() queues a call on the client; at most the window is in flight on the
 * connection, the rest wait in order. build (may be NULL) appends the arguments when the call is sent, so what
 * it reads must live until done runs. done runs exactly once, from the event loop and never inside
 * bus_client_call(): with the reply, or with reply NULL and an error (the peer's, a timeout, or no
 * connection). Negative errno only when nothing was queued. */
typedef int (*BusCallBuildFunc)(sd_bus_message *m, void *userdata);
typedef void (*BusCallFunc)(sd_bus_message *reply, const sd_bus_error *error, void *userdata);
enum {
        BUS_CALL_IDEMPOTENT = 1 << 0,   /* sent again, once, when the connection closes before its answer */
};
int bus_client_call(BusClient *c, const char *path, const char *interface, const char *member,
                    uint64_t timeout_usec, unsigned flags, BusCallBuildFunc build, BusCallFunc done,
                    void *userdata);
size_t bus_client_n_queued(const BusClient *c);
unsigned bus_client_n_in_flight(const BusClient *c);

/* Maps an error reply to negative errno; -EIO when the peer is gone or silent. */
int bus_error_to_errno(const sd_bus_error *e);

/* The uid of the named user, or -ENOENT. */
int get_user_uid(const char *name, uid_t *ret);
