/*
 * upstream_io.h - the daemon's sockets for the upstream PCP engine (libevent).
 *
 * One connected UDP socket per upstream server, bound to a random source port
 * (C-02) on the WAN interface, kept for the daemon's life because Mapping
 * Updates come back to it (spec/pcp.md §2.4); an ANNOUNCE listener on port
 * 5350 joined to 224.0.0.1 / ff02::1 on the WAN (RFC 6887 §14.1.1, C-11);
 * one timer armed at upstream_next_deadline().
 *
 * Wiring: the engine keeps the proxy's callbacks and argument (struct
 * upstream_cb); upstream_io_open() installs itself as the engine's transport
 * with upstream_set_transport(engine, upstream_io_send, io), so the two sides
 * each keep their own argument:
 *
 *	u = upstream_new(&proxy_side_cb, proxy_glue, seed);
 *	upstream_set_servers(u, addrs, ports, n);
 *	io = upstream_io_open(base, u, wan_interface, now_fn, now_arg);
 *	... upstream_start(u, txn, now); upstream_io_kick(io);
 */
#ifndef IWFD_UPSTREAM_IO_H
#define IWFD_UPSTREAM_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct upstream;
struct upstream_io;

/* Retry connecting a server socket that could not be connected (no route
   yet, WAN down) this often. */
#define UPSTREAM_IO_RETRY_MS	30000

/*
 * Open the sockets for every server the engine has now (call after
 * upstream_set_servers). wan_interface may be NULL or "": then the sockets
 * are not tied to a device and no ANNOUNCE group is joined on one. Binding to
 * the device (SO_BINDTODEVICE) needs root or CAP_NET_RAW; without it the
 * sockets follow the routing table, which is logged. A server whose socket
 * cannot be connected is marked down (upstream_hard_error) and retried
 * every UPSTREAM_IO_RETRY_MS. NULL only when out of memory or timers.
 */
struct upstream_io *upstream_io_open(struct event_base *, struct upstream *,
		    const char *wan_interface, uint64_t (*now)(void *),
		    void *now_arg);
/* Close the sockets and detach from the engine (its sends then fail). */
void		 upstream_io_close(struct upstream_io *);
/* Re-arm the timer: call after upstream_start() (or anything else that
   changes the engine's next deadline outside the io's own callbacks). */
void		 upstream_io_kick(struct upstream_io *);
/* The WAN address changed: reconnect every socket (keeping its source port
   when possible) so the Client IP field follows (C-01). */
void		 upstream_io_refresh(struct upstream_io *);
/*
 * The engine's server list changed (upstream_set_servers): a server that
 * stays keeps its socket - its source port, which its Mapping Updates
 * are sent to (spec/pcp.md §2.4), and whatever is queued on it - under
 * its new index; sockets of servers that are gone close, new servers get
 * new ones.
 */
void		 upstream_io_sync(struct upstream_io *);
/*
 * Tie the sockets to another WAN interface (a reload changed
 * wan_interface): the ANNOUNCE listeners join the group there and every
 * server socket is reconnected on it, keeping its source port. False when
 * the interface does not exist (logged): the sockets then follow the
 * routing table until this is called again.
 */
bool		 upstream_io_set_interface(struct upstream_io *,
		    const char *wan_interface);
/* The engine's transport (upstream_send_fn); io is the upstream_io. */
int		 upstream_io_send(void *io, unsigned int server, const uint8_t *,
		    size_t);

#endif
