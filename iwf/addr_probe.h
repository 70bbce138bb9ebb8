/*
 * addr_probe.h - learning the outermost external address before anything
 * is mapped (spec/iwf.md §2, RFC 6970 §4.2, I-06): with an upstream
 * server and no address learned yet, a short MAP for the gateway's own
 * LAN address tells it. NAT-PMP's address request (op 0) and UPnP's
 * GetExternalIPAddress both need it; one probe serves both.
 *
 * Its lifetime (RFC 6970 leaves it open) is the shortest a policy grants
 * anyway; once nobody waits for it any more (answered or timed out) its
 * mapping is deleted at the next tick. A failed probe is tried again no
 * sooner than ADDR_PROBE_RETRY_MS (RFC 6887 §7.4: the short error
 * lifetime). Its internal port is in the IANA dynamic range, because
 * carriers (miniupnpd's stock ACL among them) refuse internal ports below
 * 1024 - so not RFC 6970's example, the Discard port 9 (docs/natpmp.md).
 *
 * Pure of libevent and of the clock, like the front-ends that use it.
 */
#ifndef IWFD_ADDR_PROBE_H
#define IWFD_ADDR_PROBE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "iwf_nonce.h"

struct mapping;
struct proxy;
struct table;

#define ADDR_PROBE_LIFETIME	120
#define ADDR_PROBE_RETRY_MS	30000
#define ADDR_PROBE_PORT_MIN	49152
/*
 * How long the probe waits for the carrier before it counts as failed:
 * as long as the most patient front-end's client waits for it - NAT-PMP's
 * (NATPMP_CLIENT_WAIT_MS, spec/iwf.md §2 "Timing": the upstream engine's
 * retransmissions get their chance); a front-end with a shorter wait
 * (UPnP) answers its own clients at its own deadline.
 */
#define ADDR_PROBE_WAIT_MS	40000
/* Front-ends that listen for the probe's end. */
#define ADDR_PROBE_LISTENERS	4

struct addr_probe_params {
	struct proxy	*proxy;
	struct table	*table;
	uint8_t		 nonce_key[IWF_NONCE_KEY_SIZE];
	/* The gateway's own LAN IPv4 address (IPv4-mapped), the probe's
	   internal address; unset (::) disables the probe. */
	struct in6_addr	 probe_addr;
	/* An upstream server is configured (else nothing to learn). */
	bool		 upstream;
	uint64_t	 random_seed;	/* the probe's port */
	uint64_t	(*now)(void *);
	void		*clock_arg;
};

struct addr_probe_stats {
	uint64_t	 probes;	/* started */
	uint64_t	 failures;
};

/* Called when a probe ends, from inside the proxy's callback: answer
   waiting clients, but do not call into the proxy (known: the external
   address is known now). */
typedef void	(*addr_probe_fn)(void *arg, bool known);

struct addr_probe;

struct addr_probe *addr_probe_new(const struct addr_probe_params *);
void		 addr_probe_free(struct addr_probe *);
/* At most ADDR_PROBE_LISTENERS; -1 when full. */
int		 addr_probe_listen(struct addr_probe *, addr_probe_fn,
		    void *arg);
/* A front-end that goes before the probe does (its free). */
void		 addr_probe_unlisten(struct addr_probe *, addr_probe_fn,
		    void *arg);
/*
 * The outermost external IPv4 address (proxy_external_addr) is known
 * (*addr set, true), or: start the probe unless one runs, none is wanted
 * or the last failure is too recent. *waiting tells whether an answer is
 * on its way (then the listeners hear of it). A probe the proxy answers
 * at once has told the listeners before this returns.
 */
bool		 addr_probe_get(struct addr_probe *, struct in6_addr *addr,
		    bool *waiting);
/* Start the probe now if it is wanted (start-up). */
void		 addr_probe_start(struct addr_probe *);
/* Timers: deletes the probe's mapping once it has served. */
void		 addr_probe_tick(struct addr_probe *, uint64_t now);
uint64_t	 addr_probe_next_deadline(const struct addr_probe *);
/* The probe's mapping is this one (front-ends hide it from listings):
   the probe's address, UDP, its port, NAT-PMP origin and its nonce. */
bool		 addr_probe_owns(const struct addr_probe *,
		    const struct mapping *);
const struct addr_probe_stats *addr_probe_stats(const struct addr_probe *);

#endif
