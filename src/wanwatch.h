/*
 * wanwatch.h - watch the WAN interface's IPv4 address (issue 7: a DHCP
 * renew or a PPP reconnect that brings a new address).
 *
 * Three parts, the first two pure (bytes or events in, results out; no
 * sockets, no clock) so that unit tests and the fuzzer drive them:
 *
 *   wanwatch_parse    one buffer read from an rtnetlink socket
 *                     (RTMGRP_IPV4_IFADDR) -> address events: interface
 *                     index, IPv4 address, new or deleted. A bounded
 *                     NLMSG/RTA walk that copies every header out of the
 *                     buffer (no overlays, no unaligned loads).
 *   wanwatch_state    the debounce: events on the WAN interface arm a
 *                     deadline; when it passes, the interface's address
 *                     is read again and only a real change of the
 *                     address is reported. A deletion followed within
 *                     WANWATCH_DEBOUNCE_MS by an addition - as a DHCP
 *                     client or pppd does - is one change, not a loss
 *                     and a gain.
 *   wanwatch_open     the daemon's part: a non-blocking NETLINK_ROUTE
 *                     socket and a timer on the event base; it reads the
 *                     address with netif_ipv4_address() and calls back.
 */
#ifndef IWFD_WANWATCH_H
#define IWFD_WANWATCH_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* An address went away: wait this long for its successor before the loss
   is reported (a DHCP renew or a PPP reconnect deletes, then adds). */
#define WANWATCH_DEBOUNCE_MS	2000
/* An address came: report it this much later, so the routes the DHCP
   client or pppd adds right after the address are there when the daemon
   reconnects its upstream sockets. */
#define WANWATCH_SETTLE_MS	500
/* The receive buffer: room for a burst of address messages (the socket's
   own buffer holds more; an overrun is noticed as ENOBUFS). */
#define WANWATCH_BUFSIZE	8192

enum wanwatch_kind {
	WANWATCH_ADDR_NEW = 0,		/* RTM_NEWADDR */
	WANWATCH_ADDR_DEL,		/* RTM_DELADDR */
};

/* One IPv4 address message. */
struct wanwatch_event {
	unsigned int	 ifindex;
	struct in6_addr	 addr;		/* IPv4-mapped */
	uint8_t		 kind;		/* enum wanwatch_kind */
};

/* What wanwatch_parse found besides the events. */
enum wanwatch_parse_status {
	WANWATCH_PARSE_OK = 0,		/* the whole buffer was walked */
	WANWATCH_PARSE_TRUNCATED,	/* a message or attribute ran past the
					   buffer or its own length: the walk
					   stopped there */
	WANWATCH_PARSE_ERROR,		/* NLMSG_ERROR or NLMSG_OVERRUN: the
					   kernel lost messages, read the
					   address again */
};

/*
 * Walk len bytes of netlink messages and write the IPv4 address events
 * (RTM_NEWADDR / RTM_DELADDR, AF_INET, with an IFA_LOCAL or IFA_ADDRESS
 * attribute of 4 octets) to ev[0..max), in order. Other messages and
 * families are skipped; events beyond max are counted in *n but not
 * written (*n may exceed max). IFA_LOCAL is the interface's own address;
 * IFA_ADDRESS is taken only without it (on a point-to-point link such as
 * PPP, IFA_ADDRESS is the peer's).
 */
enum wanwatch_parse_status wanwatch_parse(const uint8_t *buf, size_t len,
		    struct wanwatch_event *ev, size_t max, size_t *n);

/* A change to report: the last address the watcher knew and the one the
   interface has now. */
struct wanwatch_change {
	bool		 had;		/* an address was known before */
	struct in6_addr	 old;		/* it (IPv4-mapped), if had */
	bool		 has;		/* the interface has one now */
	struct in6_addr	 addr;		/* it (IPv4-mapped), if has */
};

/* The debounce (pure). */
struct wanwatch_state {
	uint64_t	 due;		/* re-read the address then; UINT64_MAX:
					   nothing pending */
	bool		 known;		/* an address was ever seen */
	bool		 present;	/* ... and is there, last we looked */
	struct in6_addr	 addr;		/* the last address seen */
};

/* Start from the interface's address now (NULL: none). */
void		 wanwatch_state_init(struct wanwatch_state *,
		    const struct in6_addr *addr);
/* An event for the WAN interface (or a lost message: kind NEW, so the
   address is read again soon) arrived at now: (re)arm the deadline. The
   last event decides: a deletion waits WANWATCH_DEBOUNCE_MS for an
   addition, an addition WANWATCH_SETTLE_MS for its routes. */
void		 wanwatch_state_note(struct wanwatch_state *,
		    enum wanwatch_kind, uint64_t now);
uint64_t	 wanwatch_state_deadline(const struct wanwatch_state *);
/*
 * The deadline passed; cur is the interface's address now (NULL: none).
 * True, with *chg filled, when it is a change to report: an address that
 * differs from the last one seen (or the first), the loss of the address,
 * or an address back after a loss (then chg->old may equal chg->addr: the
 * same lease again). The same address as before, never lost, is no change.
 */
bool		 wanwatch_state_settle(struct wanwatch_state *,
		    const struct in6_addr *cur, struct wanwatch_change *chg);

/* ---- the daemon's watcher ---------------------------------------------- */

struct event_base;
struct wanwatch;

typedef void	(*wanwatch_fn)(void *arg, const struct wanwatch_change *);

/*
 * Watch ifname's IPv4 address on base and call fn(arg, change) for each
 * change, from the loop. The starting point is the address ifname has now
 * (also when the interface does not exist yet: a PPP interface comes and
 * goes by name; events for an interface of that name are followed across
 * its re-creation). NULL (logged) when the socket cannot be opened.
 */
struct wanwatch	*wanwatch_open(struct event_base *, const char *ifname,
		    wanwatch_fn fn, void *arg);
void		 wanwatch_close(struct wanwatch *);

#endif
