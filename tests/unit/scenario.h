/*
 * scenario.h - pieces shared by the scenario tests that drive the upstream
 * PCP engine with a scripted server on a fake clock (STYLE.md: Unbound's
 * TIME_PASSES): a transport that records what the engine sends, and the
 * server's side - decode a request, build the answer that echoes it
 * (RFC 6887 §11.4), encode and feed it to upstream_input().
 *
 * On top of them, the world a front-end's scenario runs in, wired the way
 * iwfd.c wires the daemon: the table, the policy (one LAN prefix), the
 * upstream engine on that transport with one server, the NAT backend, the
 * proxy core and the glue between them; END_TURN and TIME_PASSES.
 *
 * Every helper asserts with cmocka (include <cmocka.h> before using them),
 * except scn_world_init() and scn_world_free(), which a benchmark on the
 * real clock shares.
 */
#ifndef IWFD_TEST_SCENARIO_H
#define IWFD_TEST_SCENARIO_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"
#include "iwf_nonce.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"
#include "upstream.h"

#define SCN_MAX_SENT	256

/* One datagram the engine sent. */
struct scn_sent {
	unsigned int	 server;
	uint64_t	 at;		/* *wire->now when sent */
	size_t		 len;
	uint8_t		 pkt[PCP_MAX_SIZE];
};

/* The fake transport's record (a ring of the last SCN_MAX_SENT). */
struct scn_wire {
	const uint64_t	*now;		/* the test's clock */
	size_t		 nsent;		/* all sends so far */
	struct scn_sent	 sent[SCN_MAX_SENT];
	int		 send_error[UPSTREAM_MAX_SERVERS]; /* errno to fail */
};

/* An upstream_send_fn: pass the struct scn_wire as send_arg. */
int		 scn_send(void *wire, unsigned int server, const uint8_t *,
		    size_t);
/* The i-th datagram sent (0-based, i < nsent, among the last kept). */
const struct scn_sent *scn_sent_at(const struct scn_wire *, size_t i);
const struct scn_sent *scn_last_sent(const struct scn_wire *);

/* "192.0.2.1" (IPv4-mapped) or an IPv6 literal; asserts it parses. */
struct in6_addr	 scn_addr(const char *);
/* Decode a request the engine sent; asserts it is valid. */
void		 scn_decode(const uint8_t *, size_t, struct pcp_msg *);

/*
 * The server's answer to req (RFC 6887 §11.4, §8.3): R bit, result, epoch,
 * lifetime; nonce, protocol, internal port and THIRD_PARTY echoed; the
 * assigned address and port are the suggested ones (what an error echoes,
 * §11.1) until the caller sets others.
 */
void		 scn_reply_to(const struct pcp_msg *req, uint8_t result,
		    uint32_t lifetime, uint32_t epoch, struct pcp_msg *resp);
/* Encode m and hand it to the engine as coming from server. */
void		 scn_input(struct upstream *, unsigned int server,
		    const struct pcp_msg *, uint64_t now);
/* An unsolicited ANNOUNCE from server (§14.1.3). */
void		 scn_announce(struct upstream *, unsigned int server,
		    uint32_t epoch, uint64_t now);

/* ---- the world ---- */

/* The world's defaults: documentation and CGN space (RFC 5737, 6598). */
#define SCN_T0		1000000u	/* ms: not 0, so a 0 would show */
#define SCN_EPOCH0	7000u		/* the server's epoch at SCN_T0 */
#define SCN_LAN		"192.0.2.0"
#define SCN_LAN_PREFIX_LEN (96 + 24)	/* a /24, IPv4-mapped */
#define SCN_WAN		"100.64.0.2"	/* the gateway's WAN (CGN space) */
#define SCN_SERVER	"198.51.100.1"	/* the carrier's PCP server */
#define SCN_EXT		"203.0.113.1"	/* what the carrier grants */
#define SCN_MIN_LIFETIME 120u
#define SCN_MAX_LIFETIME 86400u
#define SCN_MAX_TIMERS	4

/*
 * A front-end's timer, run by scn_time_passes() with the engine's and the
 * proxy's: tick (if any) is called when the deadline read at the top of a
 * step has come, before the end of that turn.
 */
struct scn_timer {
	uint64_t	(*next_deadline)(void *hook_arg);
	void		(*tick)(void *hook_arg, uint64_t now);
};

/* What the world is made of; zero is the usual. */
struct scn_world_conf {
	enum proxy_nat	 nat;
	bool		 upstream;	/* the engine and one server; else
					   the gateway is the last NAT */
	struct backend	*(*backend_new)(void); /* NULL: no backend */
	const char	*lan;		/* NULL: SCN_LAN/SCN_LAN_PREFIX_LEN */
	uint8_t		 lan_prefix_len;
	uint32_t	 max_lifetime;	/* 0: SCN_MAX_LIFETIME */
	uint64_t	 now;		/* 0: SCN_T0 */
	/* One seed for the table, the engine and the proxy (a benchmark's
	   -s); else the fixed ones every test's expectations rest on. */
	bool		 seeded;
	uint64_t	 seed;
	/* The engine's transport; NULL: scn_send() on the world's wire. */
	upstream_send_fn send;
	void		*send_arg;
	/* The front-end's side, all called with hook_arg: the outermost
	   address changed (after the world recorded it), its timers, and
	   what it does at the end of every loop turn. */
	void		(*ext_addr_changed)(void *hook_arg,
			    const struct in6_addr *);
	const struct scn_timer *timers;
	size_t		 ntimers;	/* <= SCN_MAX_TIMERS */
	void		(*turn_end)(void *hook_arg, uint64_t now);
	void		*hook_arg;
};

struct scn_world {
	uint64_t	 now;		/* ms: the test's clock */
	struct policy_prefix lan;
	struct policy	 pol;
	struct table	*t;
	struct backend	*be;		/* NULL without one */
	struct upstream	*u;		/* NULL: the last NAT */
	struct proxy	*p;
	struct scn_wire	 wire;
	struct in6_addr	 wan;		/* the gateway's WAN address */
	uint8_t		 key[IWF_NONCE_KEY_SIZE]; /* the front-ends' nonces */
	/* the scripted server: what it grants, its epoch (RFC 6887 §8.5)
	   advancing with the clock from epoch_base at epoch_t0 */
	struct in6_addr	 ext_addr;
	uint32_t	 epoch_base;
	uint64_t	 epoch_t0;
	/* what the proxy and the engine told the daemon */
	bool		 kicked;
	unsigned int	 kicks;
	unsigned int	 turns;		/* scn_end_turn()s that committed */
	unsigned int	 nlost;		/* lost_state reports */
	unsigned int	 ext_changes;
	unsigned int	 moved;		/* proxy mapping_moved calls */
	struct in6_addr	 ext_changed_to;
	struct scn_world_conf conf;
};

/*
 * Builds the world in w, zeroed memory (calloc: the wire's ring is left
 * untouched for a benchmark's RSS). No cmocka: 0, or -1 with errno when
 * something could not be made; scn_world_free() frees what was made
 * either way.
 */
int		 scn_world_init(struct scn_world *,
		    const struct scn_world_conf *);
/* The daemon's order: the proxy (it cancels its transactions), the
   engine, the backend, the table. */
void		 scn_world_free(struct scn_world *);

/* The end of a loop turn: proxy_commit() while the proxy kicked, then the
   front-end's turn_end. */
void		 scn_end_turn(struct scn_world *);
/*
 * Advance the clock by ms, running the engine's, the proxy's and the
 * front-end's timers at their deadlines on the way, each step followed by
 * the end of its loop turn. The turn in progress is not ended first.
 */
void		 scn_time_passes(struct scn_world *, uint64_t ms);
/* A clock callback for front-ends (arg: the world). */
uint64_t	 scn_world_now(void *world);

/* The scripted server's epoch now, and its restart without its mappings
   (its epoch starts again at 0). */
uint32_t	 scn_server_epoch(const struct scn_world *);
void		 scn_server_restart(struct scn_world *);
/* Decode the i-th (or the last) request the engine sent. */
void		 scn_decode_sent(const struct scn_world *, size_t i,
		    struct pcp_msg *);
void		 scn_decode_last(const struct scn_world *, struct pcp_msg *);
/*
 * The server answers the i-th (or the last) request sent: result and
 * lifetime, its epoch now; a SUCCESS that is not a delete grants
 * w->ext_addr and ext_port (RFC 6887 §11.4), anything else echoes the
 * suggestion (§11.1). The turn is not ended.
 */
void		 scn_answer(struct scn_world *, size_t i, uint8_t result,
		    uint32_t lifetime, uint16_t ext_port);
void		 scn_answer_last(struct scn_world *, uint8_t result,
		    uint32_t lifetime, uint16_t ext_port);

#endif
