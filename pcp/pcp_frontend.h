/*
 * pcp_frontend.h - the PCP server front-end, I/O layer (libevent): UDP 5351
 * on the LAN, IPv4 and IPv6, the interface check (RFC 6887 §8.2, S-01),
 * replies from the address a request was sent to, pending records for
 * requests the proxy core answers later, and the unsolicited ANNOUNCE
 * (§14.1.3). The decisions are pcp_server.h's and the core's.
 *
 * NAT-PMP shares the port (RFC 6887 App. A): with a natpmp_input hook,
 * version-0 datagrams go to it, and the NAT-PMP front-end answers through
 * pcp_frontend_send() / pcp_frontend_multicast().
 *
 * Requests with an opcode this daemon does not know go, when configured,
 * to a relay the front-end owns (pcp_relay.h; RFC 7648 §3.4.2, P-16), and
 * the relayed replies come back out through pcp_frontend_send().
 */
#ifndef IWFD_PCP_FRONTEND_H
#define IWFD_PCP_FRONTEND_H

#include <sys/socket.h>

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct outbox;
struct policy;
struct proxy;
struct pcp_frontend;
struct pcp_relay_stats;
struct ratelimit;

/* How many submitted requests may wait for the core at once; beyond it a
   request gets NO_RESOURCES (§8.2 step 5: an overloaded server). */
#define PCP_FRONTEND_MAX_PENDING	4096
/* §14.1.3: at most 10 announcements, the first gap >= 250 ms, doubling */
#define PCP_ANNOUNCE_COUNT		10
#define PCP_ANNOUNCE_FIRST_GAP_MS	250

/* Where a datagram came from and where it was sent to: what a reply needs
   (§8.3: the client accepts replies from the address it sent to). */
struct pcp_frontend_peer {
	struct sockaddr_storage	 src;		/* client address and port */
	socklen_t		 src_len;
	struct in6_addr		 dst;		/* ours (IPv4-mapped for v4) */
	unsigned int		 ifindex;	/* the LAN interface */
};

/* A version-0 (NAT-PMP) datagram from a LAN interface. */
typedef void (*pcp_natpmp_input_fn)(void *arg, struct pcp_frontend *,
	    const struct pcp_frontend_peer *, const uint8_t *, size_t);

struct pcp_frontend_params {
	struct proxy		 *proxy;
	const char *const	 *lan_ifnames;	/* lan_interface, >= 1 */
	size_t			  n_lan;
	/* Our Epoch Time (RFC 6887 §8.5) and the monotonic clock (ms). */
	uint32_t		(*epoch)(void *);
	uint64_t		(*now)(void *);
	void			 *clock_arg;
	bool			  third_party_allowed;
	/* pcp = no: every datagram goes to the NAT-PMP hook (which must be
	   set), PCP requests included. */
	bool			  pcp_off;
	/* NULL: version 0 gets PCP's UNSUPP_VERSION (pcp_server.c). */
	pcp_natpmp_input_fn	  natpmp_input;
	void			 *natpmp_arg;
	/* 0: PCP_SERVER_PORT; tests may pick another. */
	uint16_t		  port;
	/* 0: PCP_FRONTEND_MAX_PENDING. */
	size_t			  max_pending;
	/*
	 * RFC 7648 §3.4.2 (P-16..P-18): relay requests with an opcode this
	 * daemon does not know to relay_server (config relay_unknown, the
	 * first upstream_server). Without relay_unknown, or with relay_server
	 * all zeros (no upstream: the gateway is the last NAT, nobody to
	 * relay to), they get UNSUPP_OPCODE.
	 */
	bool			  relay_unknown;
	struct in6_addr		  relay_server;	/* IPv4-mapped for IPv4 */
	uint16_t		  relay_port;	/* 0: PCP_SERVER_PORT */
	const char		 *wan_interface;	/* relay sockets' device */
	/* 0: PCP_RELAY_MAX_ACTIVE, PCP_RELAY_TIMEOUT_MS; tests pick others. */
	size_t			  relay_max_active;
	unsigned int		  relay_timeout_ms;
	/*
	 * DESIGN.md "State and durability": every reply (PCP and, through
	 * pcp_frontend_send, NAT-PMP) is held here until the end of the
	 * loop turn, released after the state commit (outbox.h); a SUCCESS
	 * of a MAP or PEER (PCP) or of a port mapping (NAT-PMP) is dropped
	 * when the commit failed. While the outbox is busy the sockets are
	 * not read. NULL: replies go out at once (tests of the wire).
	 */
	struct outbox		 *outbox;
	/*
	 * Issue 8 (DESIGN.md "Security"): the per-host request rate limit
	 * the daemon's protocols share (src/ratelimit.h); one token per PCP
	 * request from a LAN interface, taken before it is parsed, excess
	 * dropped. NAT-PMP's datagrams are the NAT-PMP front-end's to
	 * charge. NULL: no limit. It must outlive the front-end.
	 */
	struct ratelimit	 *ratelimit;
	/*
	 * spec/iwf.md X-02 (RFC 6887 §18.3.2 ingress filtering): a datagram
	 * whose source is outside every LAN prefix is dropped without an
	 * answer, PCP and NAT-PMP alike, before it is charged or parsed (an
	 * answer would go to a forged address). NULL: no prefix check (tests
	 * of the wire). It must outlive the front-end.
	 */
	const struct policy	 *policy;
};

struct pcp_frontend_stats {
	uint64_t	 received;	/* datagrams read */
	uint64_t	 not_lan;	/* dropped: arrived off the LAN (S-01) */
	uint64_t	 not_lan_src;	/* dropped: source outside the LAN
					   prefixes */
	uint64_t	 dropped;	/* dropped silently (§8.2) */
	uint64_t	 replied;	/* replies sent */
	uint64_t	 submitted;	/* handed to the core */
	uint64_t	 overload;	/* NO_RESOURCES: pending table full */
	uint64_t	 natpmp;	/* handed to the NAT-PMP hook */
	uint64_t	 relayed;	/* unknown opcodes sent upstream */
	uint64_t	 relay_refused;	/* relay full or upstream unreachable:
					   NO_RESOURCES / NETWORK_FAILURE */
	uint64_t	 send_errors;
	uint64_t	 not_durable;	/* SUCCESS replies not sent: the
					   state commit failed (the client
					   asks again) */
	uint64_t	 paused;	/* reads stopped: the outbox busy */
	uint64_t	 rate_limited;	/* dropped: the host over its rate */
	uint64_t	 joined;	/* dropped: a copy of a request that
					   waits for the core (its answer
					   answers the copy) */
	size_t		 pending;	/* waiting for the core now */
};

/* Open the sockets. NULL (logged) when an interface does not exist or
   port 5351 cannot be bound. */
struct pcp_frontend *pcp_frontend_open(struct event_base *,
		    const struct pcp_frontend_params *);
/* Cancel every pending request with the core, close, free. */
void		 pcp_frontend_close(struct pcp_frontend *);

/* Start (or restart) the unsolicited ANNOUNCE sequence (§14.1.3): now,
   then after 250 ms, 500 ms, ... up to PCP_ANNOUNCE_COUNT sends, each
   with the epoch of its moment, from each LAN address's port 5351 to
   224.0.0.1:5350 and [ff02::1]:5350. */
void		 pcp_frontend_announce(struct pcp_frontend *);

/* Send a reply to peer->src from peer->dst (for the NAT-PMP front-end;
   also used for PCP's own replies); with an outbox, held until the turn's
   commit (true: held). */
bool		 pcp_frontend_send(struct pcp_frontend *,
		    const struct pcp_frontend_peer *, const uint8_t *, size_t);
/* Does this reply (PCP or NAT-PMP) tell a client its mapping was made,
   renewed or deleted, so that it may go out only once that is durable?
   A SUCCESS response to MAP or PEER (RFC 6887 §7.2), or to a NAT-PMP port
   mapping (RFC 6886 §3.3). */
bool		 pcp_frontend_reply_promises(const uint8_t *, size_t);
#define PCP_FRONTEND_MC_V4	0x01	/* 224.0.0.1:5350 */
#define PCP_FRONTEND_MC_V6	0x02	/* [ff02::1]:5350 */
/* Send one copy from every address of every LAN interface of the chosen
   families to the all-hosts group, port 5350 (RFC 6887 §14.1.3, RFC 6886
   §3.2.1). Returns how many copies went out. */
size_t		 pcp_frontend_multicast(struct pcp_frontend *, unsigned int,
		    const uint8_t *, size_t);

const struct pcp_frontend_stats *pcp_frontend_stats(
		    const struct pcp_frontend *);
/* The relay's counters (pcp_relay.h); NULL when nothing is relayed. */
const struct pcp_relay_stats *pcp_frontend_relay_stats(
		    const struct pcp_frontend *);

#endif
