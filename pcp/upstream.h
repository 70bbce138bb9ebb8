/*
 * upstream.h - the RFC 6887 client engine toward the upstream PCP server(s).
 *
 * Pure, like the codecs: no sockets, no clock, no libevent. Time comes in as
 * `now` (monotonic ms), packets come in through upstream_input() and go out
 * through the send callback; the daemon's glue (upstream_io.c) owns the
 * sockets and arms one timer at upstream_next_deadline(). Scenario tests
 * drive the same engine with a fake clock and a scripted server
 * (STYLE.md, Unbound's TIME_PASSES).
 *
 * What the engine does (spec/pcp.md C-01..C-12): builds each request from a
 * struct upstream_txn, sends it, retransmits identical packets on the
 * §8.1.1 schedule (IRT 3 s, MRT 1024 s, RAND ±0.1) until the transaction's
 * deadline, matches responses (source server, opcode, nonce, protocol,
 * internal port, THIRD_PARTY, remote peer), checks each server's Epoch
 * (§8.5) and reports a server that lost state, handles unsolicited ANNOUNCE
 * and Mapping Updates, tracks each server's state (unknown -> up -> down,
 * one transition function that logs old -> new) and fails over to the next
 * server on a hard error or after RFC 7488's MRC of 4 sends.
 *
 * Renewal scheduling is not here: the proxy knows its mappings and starts a
 * new transaction for each renewal (pcp_retrans.h has the §11.2.1 times).
 */
#ifndef IWFD_UPSTREAM_H
#define IWFD_UPSTREAM_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp_wire.h"

#define UPSTREAM_MAX_SERVERS	8
#define UPSTREAM_NO_SERVER	0xff
/* RFC 7488 §3: at most 4 sends to one address before trying the next. */
#define UPSTREAM_MRC_PER_SERVER	4
#define UPSTREAM_DESCRIPTION_MAX 128
#define UPSTREAM_ERROR_MAX	96
/*
 * The liveness probe (RFC 6887 §14.1.2, a solicited ANNOUNCE), for the
 * daemon's default of upstream_probe_interval: how long a server that
 * holds our mappings may stay silent before we ask for its Epoch. It bounds
 * how late a restart is seen whose unsolicited ANNOUNCE (§14.1.3) never
 * arrived: 30 s, +-25 % jitter, keeps issue 7's "back within 60 s" with the
 * 0-5 s wait and the re-creation, for one 24-octet datagram each way per
 * half-minute of silence (nothing at all while real replies flow). A DOWN
 * server is probed twice as often (see upstream.c).
 */
#define UPSTREAM_PROBE_INTERVAL_MS	30000u
#define UPSTREAM_PROBE_MS_PER_S		1000u	/* upstream_probe_interval is in s */

enum upstream_state {
	UPSTREAM_UNKNOWN = 0,	/* nothing heard yet */
	UPSTREAM_UP,		/* answered */
	UPSTREAM_DOWN,		/* hard error or no answer within MRC sends */
	UPSTREAM_STATE_COUNT
};

/* How a transaction ended. */
enum upstream_outcome {
	UPSTREAM_REPLY = 0,	/* resp holds the server's answer (any result) */
	UPSTREAM_TIMEOUT,	/* deadline passed without an answer */
	UPSTREAM_UNREACHABLE,	/* hard error (send() failed / ICMP) on every
				   server it could use */
	UPSTREAM_REPLACED,	/* a newer transaction for the same mapping
				   started (upstream_start): nothing will
				   match this one any more */
};

/*
 * One request in flight. The caller owns the memory (it may embed it) and
 * fills the public fields; the engine owns the private ones between
 * upstream_start() and the done callback or upstream_cancel().
 */
struct upstream_txn {
	/* public: what to ask */
	uint8_t		 opcode;	/* PCP_OP_MAP or PCP_OP_PEER */
	uint8_t		 nonce[PCP_NONCE_SIZE];
	uint8_t		 protocol;
	uint16_t	 internal_port;
	uint16_t	 ext_port;	/* suggested */
	struct in6_addr	 ext_addr;	/* suggested; ::ffff:0:0 = none */
	uint32_t	 lifetime;	/* 0 deletes */
	bool		 prefer_failure;
	bool		 has_third_party;
	struct in6_addr	 third_party;
	uint16_t	 peer_port;	/* PEER */
	struct in6_addr	 peer_addr;
	char		 description[UPSTREAM_DESCRIPTION_MAX + 1]; /* "" none */
	/*
	 * In: the server to use; UPSTREAM_NO_SERVER lets the engine pick (and
	 * fail over, RFC 7488 §3). A mapping stays on the server that holds
	 * it (RFC 7488), so renewals and deletes name it. Out: the engine
	 * writes the server it uses here; in done() it is the one that
	 * answered (or the last one tried).
	 */
	uint8_t		 server;
	uint64_t	 deadline;	/* ms: give up (UPSTREAM_TIMEOUT) */
	void		*arg;		/* the caller's */

	/* private: `next` must stay the first private field (callers clear
	   the public part with offsetof(struct upstream_txn, next)) */
	struct upstream_txn *next;	/* match hash chain */
	size_t		 heap_index;	/* in the deadline heap */
	uint64_t	 due;		/* min(next_send, deadline) */
	uint64_t	 next_send;
	uint32_t	 rt_ms;		/* current RT, RFC 6887 §8.1.1 */
	uint16_t	 sends;		/* to the current server */
	uint16_t	 len;
	uint8_t		 tried;		/* bitmap of servers tried */
	uint8_t		 pending;	/* deferred event, see upstream.c */
	bool		 may_fail_over;	/* server was UPSTREAM_NO_SERVER */
	uint8_t		*pkt;		/* encoded request, len bytes */
};

struct upstream_server_info {
	struct in6_addr	 addr;
	uint16_t	 port;
	bool		 local_known;
	struct in6_addr	 local;		/* the Client IP used toward it */
	enum upstream_state state;
	bool		 epoch_known;
	uint32_t	 epoch;		/* last server Epoch seen */
	/* the last error seen, kept when the server comes back up; "" none */
	char		 last_error[UPSTREAM_ERROR_MAX];
	uint64_t	 replies, timeouts;
	uint64_t	 probes;	/* liveness probes sent */
	uint32_t	 probe_misses;	/* unanswered probes in a row */
};

/*
 * The transport: send one datagram to server i. Return 0 (also when the
 * datagram was merely dropped, e.g. EAGAIN: retransmission recovers), or an
 * errno value for a hard error (the engine then fails over at once, RFC 7488
 * §3). It is set apart from struct upstream_cb so that the socket layer
 * (upstream_io_open) and the proxy's callbacks each keep their own argument.
 */
typedef int	(*upstream_send_fn)(void *send_arg, unsigned int server,
		    const uint8_t *, size_t);

/*
 * The proxy's side. Callbacks run from upstream_start/input/hard_error/tick
 * and may start or cancel transactions (the engine is re-entrant there),
 * except state_changed, which only observes.
 */
struct upstream_cb {
	/* A transaction ended; resp is NULL unless outcome is UPSTREAM_REPLY.
	   The txn is the caller's again (it may free or restart it). */
	void	(*done)(void *arg, struct upstream_txn *,
		    enum upstream_outcome, const struct pcp_msg *resp);
	/* Server i lost state (Epoch check failed, §8.5, or an unsolicited
	   ANNOUNCE revealed it, §14.1.3): re-create its mappings. */
	void	(*lost_state)(void *arg, unsigned int server);
	/* An unsolicited MAP/PEER response (Mapping Update, §14.2). */
	void	(*mapping_update)(void *arg, unsigned int server,
		    const struct pcp_msg *);
	/* Optional: a server changed state. */
	void	(*state_changed)(void *arg, unsigned int server,
		    enum upstream_state old, enum upstream_state new_state);
	/* Optional: whether the caller holds mappings on server i (granted
	   there; RFC 7488 keeps them there). Only then is a server that is
	   not DOWN probed (upstream_set_probe_interval); NULL: never. It
	   only looks, like state_changed. */
	bool	(*holds_mappings)(void *arg, unsigned int server);
};

struct upstream;

/* random_seed seeds the engine's small PRNG for RAND (§8.1.1); the daemon
   passes a random value, tests a constant. NULL on allocation failure. */
struct upstream	*upstream_new(const struct upstream_cb *, void *arg,
		    uint32_t random_seed);
/* Frees the engine; transactions in flight are dropped without done. */
void		 upstream_free(struct upstream *);
/* Until a transport is set every send fails with ENOTCONN. */
void		 upstream_set_transport(struct upstream *, upstream_send_fn,
		    void *send_arg);
/*
 * Configure the server list (order = preference). A server is its address
 * and port (RFC 7488): one that was in the old list keeps all its state
 * (Epoch record, state, Client IP, probe timers, last error, counters)
 * under its new index, wherever others were added or removed, and its
 * transactions in flight follow it (txn->server is renumbered). A new
 * server starts afresh (unknown, no epoch, no local address); transactions
 * on a server that is gone fail over or end UNREACHABLE (their server
 * reads UPSTREAM_NO_SERVER). -1 if n > UPSTREAM_MAX_SERVERS (nothing
 * changed).
 */
int		 upstream_set_servers(struct upstream *,
		    const struct in6_addr *addrs, const uint16_t *ports,
		    size_t n);
size_t		 upstream_server_count(const struct upstream *);
/* The source address the socket toward server i uses: the PCP Client IP
   field (C-01), IPv4-mapped for IPv4. Until it is known the server cannot
   be used; NULL forgets it. Transactions already encoded keep theirs. */
void		 upstream_set_local(struct upstream *, unsigned int server,
		    const struct in6_addr *);
/*
 * The liveness probe (RFC 6887 §14.1.2): while the caller holds mappings
 * on a server (cb.holds_mappings) and no reply came from it for about
 * interval_ms, and while a server is DOWN (every interval_ms / 2), the
 * engine sends it one ANNOUNCE request, jittered +-25 %. The answer goes
 * through the Epoch check (§8.5): an Epoch that went back reports
 * lost_state, and any answer brings a DOWN server up. 0 turns probing off
 * (the default of upstream_new); upstream_next_deadline() includes the
 * probes' times.
 */
void		 upstream_set_probe_interval(struct upstream *,
		    uint32_t interval_ms);
/* The server the engine would pick for a new mapping, or NO_SERVER. */
unsigned int	 upstream_pick(const struct upstream *);

/*
 * Start (or restart) a transaction: the first send happens now. If that send
 * fails, or no server can be used, the failover or the UNREACHABLE ending
 * happens at the next upstream_tick (upstream_next_deadline() is then now),
 * so done is never called from within upstream_start. A deadline not after
 * now is taken as now + 1. A newer request for a mapping replaces the
 * older: a MAP or PEER transaction in flight for the same mapping (opcode,
 * nonce, protocol, internal port, THIRD_PARTY, peer; any server) ends with
 * UPSTREAM_REPLACED at the next tick, and no response matches it any more
 * (a delete followed at once by a re-create would otherwise share one
 * match key, and the delete's answer would be taken for the create's).
 * A SUCCESS with lifetime 0 answers only a request with lifetime 0 (a
 * delete, RFC 6887 §15) and a SUCCESS with a lifetime only a request with
 * one. False (and t is not in flight, done will not come) only when out
 * of memory; nothing else changed then.
 */
bool		 upstream_start(struct upstream *, struct upstream_txn *,
		    uint64_t now);
/* Forget a transaction without calling done. */
void		 upstream_cancel(struct upstream *, struct upstream_txn *);
/* A datagram from server i (its address and port, already checked by the
   caller's connected socket or source check). */
void		 upstream_input(struct upstream *, unsigned int server,
		    const uint8_t *, size_t, uint64_t now);
/* A hard error on server i's socket (ICMP unreachable, send failure): the
   server goes DOWN and its transactions fail over or end UNREACHABLE, now. */
void		 upstream_hard_error(struct upstream *, unsigned int server,
		    int error, uint64_t now);
/* Retransmit and time out whatever is due. */
void		 upstream_tick(struct upstream *, uint64_t now);
/* When upstream_tick() must next run (ms), UINT64_MAX when idle. */
uint64_t	 upstream_next_deadline(const struct upstream *);
void		 upstream_server_info(const struct upstream *, unsigned int,
		    struct upstream_server_info *);
const char	*upstream_state_name(enum upstream_state);
size_t		 upstream_in_flight(const struct upstream *);

#endif
