/*
 * proxy.h - the proxy core (RFC 7648, RFC 6970 §5): one path for every
 * front-end. A front-end decodes its wire format into a struct map_req and
 * submits it; the core applies policy, consults the table (duplicates,
 * refreshes, conflicts, the ¾ cache rule), drives the upstream PCP engine
 * and the local NAT backend, and hands back a struct map_result.
 *
 * Pure like the engine: no sockets, no clock, no libevent. The daemon glue
 * passes `now`, forwards upstream events and calls proxy_commit() once per
 * loop turn; scenario tests drive it with a fake clock, a scripted upstream
 * and the fake backend.
 *
 * Modes (DESIGN.md "Modes"):
 *   PROXY_NAT_LOCAL + upstream: a gateway WAN port, a local DNAT rule, MAP
 *     upstream for that port from the gateway's WAN address;
 *   PROXY_NAT_NONE + upstream: MAP upstream with THIRD_PARTY = the client;
 *   no upstream: the gateway is the last NAT and answers from its table.
 */
#ifndef IWFD_PROXY_H
#define IWFD_PROXY_H

#include <stdbool.h>
#include <stdint.h>

#include "map.h"

struct backend;
struct policy;
struct table;
struct upstream;
struct pcp_msg;
struct mapping;

enum proxy_nat {
	PROXY_NAT_LOCAL = 0,
	PROXY_NAT_NONE,
};

/* How long a front-end's client waits for the upstream before it gets
   NETWORK_FAILURE (the upstream transaction may go on; spec/pcp.md §2.4). */
#define PROXY_CLIENT_WAIT_MS		5000
/* How long the engine keeps trying a new mapping upstream: RFC 7488's four
   sends at 3, 6, 12, 24 s. */
#define PROXY_UPSTREAM_TRY_MS		45000

struct proxy_params {
	enum proxy_nat	 nat;
	struct table	*table;
	const struct policy *policy;
	struct backend	*backend;	/* NULL: no local rules (nat none) */
	struct upstream	*upstream;	/* NULL or no servers: last NAT */
	uint32_t	 client_wait_ms;
	uint64_t	 random_seed;	/* timing jitter */
	/* The gateway's own WAN address (IPv4-mapped): the external address
	   reported when there is no upstream. */
	struct in6_addr	 wan_addr;
	bool		 wan_addr_known;
	/* The outermost external address changed (not: became known). The
	   daemon restarts its Epoch (RFC 6887 §8.5) and tells its clients. */
	void		(*ext_addr_changed)(void *cb_arg, const struct in6_addr *);
	/* Our own work (a re-creation after the upstream lost state, a
	   lease renewal) came back with another outermost address or port
	   for m: its client was not told. NULL: nobody listens. */
	void		(*mapping_moved)(void *cb_arg, const struct mapping *);
	/* The proxy queued work or changed its deadlines: at the end of this
	   loop turn call proxy_commit() and re-arm the timer at
	   proxy_next_deadline(). */
	void		(*kick)(void *cb_arg);
	void		*cb_arg;
};

/* A front-end's continuation: called once, later, unless cancelled. */
typedef void (*proxy_done_fn)(void *arg, const struct map_req *,
	    const struct map_result *);

struct proxy;

struct proxy	*proxy_new(const struct proxy_params *);
void		 proxy_free(struct proxy *);
void		 proxy_set_wan_addr(struct proxy *, const struct in6_addr *);

/*
 * Submit a request. Returns true when it was answered at once (*res filled,
 * done not called): policy refusals, cache hits, deletes, mappings the
 * gateway serves alone. Returns false when the answer comes later through
 * done(arg, req, res) - after the upstream and the backend have spoken, or
 * after req->wait_ms (0: client_wait_ms) at the latest. A request for a
 * mapping whose upstream transaction is still pending joins it (client
 * retransmissions), each waiter with its own wait.
 */
bool		 proxy_submit(struct proxy *, const struct map_req *,
		    uint64_t now, proxy_done_fn, void *arg,
		    struct map_result *res);
/* The front-end no longer wants the answer for arg (e.g. a UPnP handler
   timed out): done is not called for it. */
void		 proxy_cancel(struct proxy *, void *arg);

/* The outermost external address clients are told about; false when not
   known yet (no upstream answer so far). */
bool		 proxy_external_addr(const struct proxy *, struct in6_addr *);

/* Timers: client waits, temporary mappings. */
void		 proxy_tick(struct proxy *, uint64_t now);
uint64_t	 proxy_next_deadline(const struct proxy *);
/* End of a loop turn: commit the backend batch. */
void		 proxy_commit(struct proxy *, uint64_t now);

/* The upstream engine's callbacks, forwarded by the glue. */
void		 proxy_upstream_done(struct proxy *, void *txn, int outcome,
		    const struct pcp_msg *resp, uint64_t now);
void		 proxy_upstream_lost_state(struct proxy *, unsigned int server,
		    uint64_t now);
void		 proxy_upstream_mapping_update(struct proxy *,
		    unsigned int server, const struct pcp_msg *, uint64_t now);

/*
 * The table was just filled from the state file (all GRANTED, nothing
 * pending): make the local backend hold exactly their rules (reconcile),
 * and refresh every upstream mapping with its stored nonce, after a 0-5 s
 * jitter (like proxy_upstream_lost_state). -1 when the backend could not
 * be reconciled (logged); the upstream refreshes are scheduled anyway.
 */
int		 proxy_restored(struct proxy *, uint64_t now);
/*
 * Make the local backend hold exactly the rules of the live mappings, in
 * one batch (backend ops->reconcile); *nrules says how many. Without
 * local rules (nat = none, no backend) nothing is done. -1 when the
 * backend could not be reconciled (logged by it).
 */
int		 proxy_reconcile(struct proxy *, uint64_t now, size_t *nrules);

/* A re-creation after an upstream's loss of state is scheduled or under
   way (paced: it may take several loop turns). */
bool		 proxy_recreating(const struct proxy *);

/* The server list changed: map[i] is old server i's new index or
   UPSTREAM_NO_SERVER, for i < old_n. The re-creation work of a server
   that stays follows it (the caller renumbers the mappings). */
void		 proxy_upstream_renumber(struct proxy *, const uint8_t *map,
		    size_t old_n);
/* m's server is gone and m now names another (m->upstream, set by the
   caller): re-create m alone there, after the RFC 6887 §14.1.3 wait and
   paced with any other re-creation; the mappings that server holds
   already are left alone. m->upstream UPSTREAM_NO_SERVER: no server is
   left and m's external address and port became the gateway's (set by
   the caller): mapping_moved tells the daemon. */
void		 proxy_upstream_moved(struct proxy *, struct mapping *,
		    uint64_t now);
/* A reload changed nat or re-opened the backend (NULL for nat = none):
   see proxy.c. Mappings stay; with a new mode the upstream ones are
   deleted in the old form and re-made in the new. */
void		 proxy_set_nat(struct proxy *, enum proxy_nat,
		    struct backend *, uint64_t now);

/* Remove one mapping everywhere (control socket): local rule, table, and
   a delete upstream. */
void		 proxy_delete(struct proxy *, struct mapping *, uint64_t now);

#endif
