/*
 * natpmp.h - the NAT-PMP front-end (RFC 6886) and its interworking with
 * PCP upstream (spec/iwf.md §1, §2; docs/natpmp.md).
 *
 * It shares UDP 5351 with the PCP front-end (RFC 6887 App. A): the PCP
 * front-end hands it every version-0 datagram from a LAN interface
 * (natpmp_input, a pcp_natpmp_input_fn) and sends its replies and its
 * announcements (the io callbacks). Map requests become a struct map_req
 * and take the one proxy path; the answer carries the outermost (the
 * carrier's) external port. Pure of libevent and of the clock: the daemon
 * calls natpmp_tick() at natpmp_next_deadline(), tests use a fake clock.
 */
#ifndef IWFD_NATPMP_H
#define IWFD_NATPMP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iwf_nonce.h"
#include "pcp_frontend.h"

struct addr_probe;
struct proxy;
struct ratelimit;
struct table;

/* Requests waiting for the core at once, in all and from one host (so
   that one host cannot starve the others); beyond: result 4 (§3.5). A
   client's retransmissions of a waiting request are no new requests:
   they join it (same source address and port, opcode, internal port). */
#define NATPMP_MAX_PENDING	1024
#define NATPMP_MAX_PENDING_HOST	16
/*
 * How long a client waits for the carrier before it gets 3 (spec/iwf.md
 * §2 "Timing"): longer than PCP's PROXY_CLIENT_WAIT_MS, so that lost
 * upstream packets are resent (RFC 6887 §8.1.1: after ~3, 6, 12 s; RFC
 * 7488 MRC 4, ~45 s) before we give up, and well below the ~128 s a
 * NAT-PMP client keeps trying (RFC 6886 §3.1: 250 ms doubling; it gives
 * up 64 s after its ninth attempt), so it still hears our answer. Also
 * how long op 0 requests wait for the address probe (addr_probe.h,
 * ADDR_PROBE_WAIT_MS).
 */
#define NATPMP_CLIENT_WAIT_MS	40000

struct natpmp_params {
	struct proxy	*proxy;
	struct table	*table;		/* delete-all walks a host's list */
	/* Our Epoch (SSSoE, RFC 6886 §3.6, N-04) and the monotonic ms. */
	uint32_t	(*epoch)(void *);
	uint64_t	(*now)(void *);
	void		*clock_arg;
	/* Reply to peer->src from peer->dst (pcp_frontend_send). */
	bool		(*send)(void *, const struct pcp_frontend_peer *,
			    const uint8_t *, size_t);
	/* One copy from each LAN IPv4 address to 224.0.0.1:5350
	   (pcp_frontend_multicast); returns how many went out. */
	size_t		(*multicast)(void *, const uint8_t *, size_t);
	void		*io_arg;
	/* The per-install secret of the synthesized nonces. */
	uint8_t		 nonce_key[IWF_NONCE_KEY_SIZE];
	/* The daemon's external-address probe, shared with the other
	   front-ends (op 0 waits for it); NULL: none, op 0 is answered
	   from what the proxy knows. It must outlive the natpmp. */
	struct addr_probe *probe;
	/* Issue 8: the per-host request rate limit the daemon's protocols
	   share (src/ratelimit.h): one token per request, taken before it
	   is parsed; over the rate dropped. NULL: no limit. It must outlive
	   the natpmp. */
	struct ratelimit *ratelimit;
};

struct natpmp_stats {
	uint64_t	 received;
	uint64_t	 dropped;	/* silently: short, responses, IPv6 */
	uint64_t	 replied;
	uint64_t	 submitted;	/* map requests handed to the core */
	uint64_t	 overload;	/* answered 4: too many pending */
	uint64_t	 joined;	/* retransmissions joined to a wait */
	uint64_t	 rate_limited;	/* dropped: the host over its rate */
	uint64_t	 announcements;	/* multicast copies sent */
	size_t		 pending;	/* map requests waiting now */
	size_t		 addr_waiting;	/* op 0 waiting for the probe */
};

struct natpmp;

struct natpmp	*natpmp_new(const struct natpmp_params *);
/* Cancel everything pending with the core, free. */
void		 natpmp_free(struct natpmp *);
/* A version-0 datagram (the pcp_natpmp_input_fn; arg is the natpmp). */
void		 natpmp_input(void *arg, struct pcp_frontend *,
		    const struct pcp_frontend_peer *, const uint8_t *, size_t);
/*
 * Start (or restart) the address announcements (§3.2.1, N-08): now,
 * then 250 ms, 500 ms, ... NATPMP_ANNOUNCE_COUNT in all, each with the
 * SSSoE of its moment. Without a known external address nothing is sent;
 * the sequence starts when the address becomes known.
 */
void		 natpmp_announce(struct natpmp *);
/* Start-up: the address probe now if it is wanted (addr_probe_start;
   each front-end that uses the probe starts it, the first one wins),
   the announcements if the address is known already. */
void		 natpmp_start(struct natpmp *);
/* Timers: due announcements; notices a newly learned address. */
void		 natpmp_tick(struct natpmp *, uint64_t now);
uint64_t	 natpmp_next_deadline(const struct natpmp *);
const struct natpmp_stats *natpmp_stats(const struct natpmp *);

#endif
