/*
 * ratelimit.h - per-host request rate limits (issue 8, DESIGN.md
 * "Security": request-rate limits), one token bucket per LAN host shared by
 * every protocol (PCP, NAT-PMP, UPnP SOAP): a host may send `burst`
 * requests at once and `rate` a second after that, whatever it speaks.
 *
 * Bounded memory: a fixed number of host slots, chosen at creation. When
 * they are all taken the slot of the host seen least recently is reused;
 * a reused slot starts full, so forgetting a host only ever lets it send
 * more, never wrongly refuses it. Lookup is O(1) (hashed, keyed with a
 * secret seed so that LAN hosts cannot aim at one chain).
 *
 * Pure: no clock of its own (now is passed in, ms), no sockets, no globals.
 */
#ifndef IWFD_RATELIMIT_H
#define IWFD_RATELIMIT_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RATELIMIT_DEFAULT_HOSTS	1024

struct ratelimit;

struct ratelimit_params {
	uint32_t	 rate;		/* requests per second per host; 0: no limit */
	uint32_t	 burst;		/* bucket size (>= 1 when rate > 0) */
	size_t		 hosts;		/* slots; 0: RATELIMIT_DEFAULT_HOSTS */
	uint64_t	 seed;		/* hash key */
};

struct ratelimit_stats {
	uint64_t	 allowed;
	uint64_t	 limited;	/* requests refused */
	size_t		 hosts;		/* slots in use */
};

/* NULL on allocation failure. */
struct ratelimit	*ratelimit_new(const struct ratelimit_params *);
void			 ratelimit_free(struct ratelimit *);
/* SIGHUP: new rate and burst; every bucket keeps its level, clamped to
   the new burst. */
void			 ratelimit_set(struct ratelimit *, uint32_t rate,
			    uint32_t burst);
/*
 * One request from host (an IPv4-mapped or IPv6 address; IPv6 hosts are
 * charged by their /64) at now (ms, monotonic): true when it may be served
 * (one token taken), false when the host is over its rate. A NULL limiter
 * allows everything.
 */
bool			 ratelimit_allow(struct ratelimit *,
			    const struct in6_addr *host, uint64_t now);
void			 ratelimit_stats(const struct ratelimit *,
			    struct ratelimit_stats *);

#endif
