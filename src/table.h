/*
 * table.h - the mapping table, the single source of truth for mappings
 * (DESIGN.md "Data flow" step 3, STYLE.md habit 5).
 *
 * Every per-request operation is O(1) on average and flat in table size:
 * two intrusive hash indexes (protocol + internal address + internal port;
 * protocol + the gateway's external port), a per-host index (count and list
 * of a host's mappings), a binary min-heap on expiry, an array of all
 * mappings for listing by index and a bitmap of the ports in use per
 * protocol for allocation. Bucket arrays are powers of two that grow (and
 * shrink) with the count; a failed growth leaves the old, still correct,
 * arrays in place. The exceptions, bounded by max_mappings_per_host: removing
 * a mapping walks its host's list (singly linked to save memory).
 *
 * Time: `now` is always a parameter, in MILLISECONDS of the monotonic clock
 * (clock_now_ms(), clock.h); lifetimes are in seconds, as on the wire. The
 * table never reads a clock, so tests drive it with a fake one.
 *
 * Errors leave the table unchanged: every function that can fail allocates
 * first and links only when nothing can fail any more.
 */
#ifndef IWFD_TABLE_H
#define IWFD_TABLE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "util.h"

/* RFC 6887 §11.3: static mappings are reported with lifetime 2^32-1; a
   mapping with this lifetime never expires. */
#define TABLE_LIFETIME_INFINITE	UINT32_MAX
#define TABLE_EXPIRY_NEVER	UINT64_MAX
/* struct mapping lease_end */
#define TABLE_LEASE_NONE	0
#define TABLE_LEASE_FOREVER	UINT32_MAX
/*
 * RFC 6887 §15: a released external port SHOULD NOT be reused for the NAT's
 * reuse time of implicit mappings (2 MSL, 2 minutes) nor, against port
 * stealing, for the time an idle implicit mapping is kept: 2 minutes for
 * UDP (RFC 4787 REQ-5), 124 minutes for TCP (RFC 5382 REQ-5). So UDP and
 * other protocols are held 2 minutes and TCP 124.
 */
#define TABLE_HOLD_SECONDS	120
#define TABLE_HOLD_TCP_SECONDS	(124 * 60)
/* Default range for ports the table picks itself (not for suggestions). */
#define TABLE_PORT_MIN_DEFAULT	1024
#define TABLE_PORT_MAX_DEFAULT	65535
#define TABLE_MS_PER_SECOND	1000

/*
 * A mapping's life (STYLE.md habit 7). EXPIRED and DELETED are terminal:
 * the mapping is freed right after it enters them.
 */
enum map_state {
	MAP_STATE_REQUESTED = 0,	/* allocated locally, nothing sent */
	MAP_STATE_PENDING_UPSTREAM,	/* temporary, waiting for upstream */
	MAP_STATE_GRANTED,		/* live */
	MAP_STATE_RENEWING,		/* live, a renewal is in flight */
	MAP_STATE_EXPIRED,
	MAP_STATE_DELETED,
	MAP_STATE_COUNT
};

/* struct mapping flags. */
#define MAPPING_F_PREFER_FAILURE 0x01	/* asked with PREFER_FAILURE */
#define MAPPING_F_THIRD_PARTY	0x02	/* made for another host */
#define MAPPING_F_ANY_PORT	0x04	/* UPnP AddAnyPortMapping */
#define MAPPING_F_STATIC	0x08	/* manual: no nonce, no client delete */
#define MAPPING_F_WAS_GRANTED	0x10	/* reached GRANTED once: its port
					   is held after release (§15) */
#define MAPPING_F_PEER		0x20	/* a PEER mapping (RFC 6887 §12):
					   mapping_peer() is its remote */
#define MAPPING_F_RENEW		0x40	/* expiry is the next renewal
					   point, grant_end the real end
					   (table_set_renewal); never
					   saved */

/* struct mapping proxy_marks: the proxy's own working marks, never saved. */
#define MAPPING_M_RECREATE	0x01	/* the paced re-creation has yet to
					   start it */
#define MAPPING_M_RETRY		0x02	/* its re-creation met a transient
					   error: again at the next retry
					   pass */

/*
 * One mapping. Fields are ordered by size so that nothing is wasted on
 * padding (sizeof is 168 on LP64, a 176-byte malloc chunk). Read any field
 * freely; change the indexed ones (protocol, internal_addr, internal_port,
 * ext_port, expiry, state) only through table functions. outer_addr,
 * outer_port, upstream and owner_data are the caller's to set.
 */
struct mapping {
	struct in6_addr	 internal_addr;
	struct in6_addr	 requester;	/* who asked (PCP/NAT-PMP replies) */
	struct in6_addr	 outer_addr;	/* outermost external address: the
					   upstream grant, else ours */
	uint64_t	 expiry;	/* ms, absolute; TABLE_EXPIRY_NEVER.
					   The heap key: with MAPPING_F_RENEW
					   the next renewal, else the end */
	uint64_t	 grant_end;	/* ms: the end of the current grant
					   while MAPPING_F_RENEW is set */
	char		*description;	/* NULL when none or empty */
	void		*owner_data;	/* the proxy engine's hook */
	struct mapping	*next[3];	/* hash chains (private) */
	struct mapping	*host_next;	/* this host's mappings (private
					   links; use table_host_next) */
	uint32_t	 host_count;	/* private; valid in a host's first */
	uint32_t	 heap_index;	/* private */
	uint32_t	 list_index;	/* private; table_at() position */
	uint32_t	 lifetime;	/* granted seconds */
	uint32_t	 requested_lifetime; /* what the client last asked */
	uint32_t	 lease_end;	/* the client's lease (map_req.lease):
					   TABLE_LEASE_NONE, the end in
					   seconds of the monotonic clock, or
					   TABLE_LEASE_FOREVER */
	uint32_t	 dirty_slot;	/* private: table_dirty_at() index
					   + 1, 0 when unchanged. In what
					   was padding: sizeof stays 168 */
	uint8_t		 nonce[MAP_NONCE_SIZE];
	uint16_t	 internal_port;
	uint16_t	 ext_port;	/* the gateway's own (local) port */
	uint16_t	 outer_port;	/* outermost external port */
	uint16_t	 requester_port;/* requester's source port */
	uint8_t		 protocol;	/* MAP_PROTO_* */
	uint8_t		 origin;	/* enum map_origin */
	uint8_t		 state;		/* enum map_state */
	uint8_t		 flags;		/* MAPPING_F_* */
	uint8_t		 upstream;	/* upstream server index */
	uint8_t		 proxy_marks;	/* MAPPING_M_*: the proxy's */
};

/*
 * PEER mappings (RFC 6887 §12.3) live in the same table as MAP mappings:
 * the same heap, listing, host index and quota, but keyed by the 5-tuple
 * (protocol, internal address, internal port, remote address, remote
 * port) in an index of their own, so a MAP and any number of PEERs of one
 * internal endpoint coexist. A PEER mapping is in neither the internal
 * nor the external index (table_find_internal/_external never return
 * one) and holds no port after release: its ext_port is the gateway port
 * its outbound flow leaves from, shared with the endpoint's MAP and other
 * PEERs (RFC 4787 REQ-1), not an inbound port. While a PEER flow uses a
 * port it is that internal endpoint's alone: no other endpoint's PEER or
 * MAP gets it. The remote peer is stored in a tail allocated with PEER
 * mappings only, so MAP mappings pay nothing for it (flag MAPPING_F_PEER,
 * mapping_peer()).
 */
struct mapping_peer {
	struct in6_addr	 addr;		/* as the client sees it (§12.1) */
	uint16_t	 port;
};

/* What the table says about a create/refresh/delete request
   (RFC 6887 §11.3, §15; spec/pcp.md §1.6, S-08, S-13). */
enum table_verdict {
	TABLE_NEW,		/* no mapping: allocate a port, table_add */
	TABLE_REFRESH,		/* same owner: refresh, keep the ports */
	TABLE_DELETE,		/* same owner asks for deletion */
	TABLE_DELETE_MISSING,	/* delete of nothing: success */
	TABLE_NONCE_MISMATCH,	/* NOT_AUTHORIZED, lifetime = remaining */
	TABLE_CANNOT_PROVIDE,	/* PREFER_FAILURE, the existing mapping's
				   external port/address differs */
	TABLE_STATIC,		/* a static mapping: answer it as is, with
				   TABLE_LIFETIME_INFINITE */
	TABLE_STATIC_DENIED,	/* delete of a static mapping */
};

/*
 * Extra check for a candidate external port, e.g. "the gateway's own
 * services use it" or the ACL (policy_ext_port_check). Return MAP_OK when
 * the port may be used, else the error to report with PREFER_FAILURE.
 */
typedef enum map_err (*table_port_check_fn)(void *arg,
    const struct map_req *, uint16_t ext_port);
/*
 * The external ports req may have (e.g. the ACL's, policy_ext_port_ranges):
 * ascending, disjoint ranges written to out[0..max); return how many, or,
 * when max is too small, how many slots to call again with (> max).
 */
typedef size_t (*table_port_ranges_fn)(void *arg, const struct map_req *,
    struct port_range *out, size_t max);

struct table;

struct table	*table_new(void);
void		 table_free(struct table *);
/* Seed the pseudo-random port choice and the hash keys (the daemon passes
   getrandom() bytes; tests a constant). Safe with entries present. */
void		 table_set_seed(struct table *, uint64_t seed);
/* Range for ports the table picks itself; lo <= hi, lo >= 1. */
int		 table_set_port_range(struct table *, uint16_t lo, uint16_t hi);
void		 table_get_port_range(const struct table *, uint16_t *lo,
		    uint16_t *hi);
/* One hold time for every protocol (0: no holds); the default is
   TABLE_HOLD_TCP_SECONDS for TCP, TABLE_HOLD_SECONDS for the others. */
void		 table_set_hold(struct table *, uint32_t seconds);
void		 table_set_port_check(struct table *, table_port_check_fn,
		    void *arg);
/* Where the allocator picks from (intersected with the port range); none
   set: the whole range, each candidate then asked of the port check. */
void		 table_set_port_ranges(struct table *, table_port_ranges_fn,
		    void *arg);
/* RFC 6887 §11.3: external UDP 5350/5351 are never mapped. */
bool		 table_port_reserved(uint8_t proto, uint16_t port);

struct mapping	*table_find_internal(const struct table *, uint8_t proto,
		    const struct in6_addr *, uint16_t port);
struct mapping	*table_find_external(const struct table *, uint8_t proto,
		    uint16_t ext_port);

/* The PEER mapping of that 5-tuple, or NULL. */
struct mapping	*table_find_peer(const struct table *, uint8_t proto,
		    const struct in6_addr *int_addr, uint16_t int_port,
		    const struct in6_addr *peer_addr, uint16_t peer_port);
/* A PEER mapping's remote peer; NULL for a MAP mapping. */
const struct mapping_peer *mapping_peer(const struct mapping *);

/* Decide what a request means; *existing is the mapping concerned, or NULL.
   A request with lifetime 0 or MAP_F_DELETE is a delete. A MAP_F_PEER
   request is looked up by its 5-tuple and is never a delete (RFC 6887
   §12.1: PEER cannot delete): TABLE_NEW, TABLE_REFRESH or, when a PEER
   with another nonce holds the 5-tuple, TABLE_NONCE_MISMATCH (§12.3). */
enum table_verdict table_check(const struct table *, const struct map_req *,
		    struct mapping **existing);
/* The neutral error for a verdict (MAP_OK for those that go ahead;
   MAP_ERR_NOT_FOUND for TABLE_DELETE_MISSING, which PCP/NAT-PMP answer
   with success and UPnP with 714). */
enum map_err	 table_verdict_err(enum table_verdict);
const char	*table_verdict_name(enum table_verdict);

/*
 * Pick a local external port for a TABLE_NEW request: the suggestion if
 * usable, else (unless PREFER_FAILURE came with a suggestion) the internal
 * port, else a pseudo-random free port of the range set by
 * table_set_port_range (which binds only this last choice: a suggestion
 * or internal port outside it is honoured). Never UDP 5350/5351 (RFC 6887
 * §11.3), never a port held for another owner (§15), never a port whose
 * other-protocol twin a different host holds through NAT-PMP (RFC 6886
 * §3.3). With PREFER_FAILURE and an unusable suggestion: MAP_ERR_CONFLICT
 * (held by another mapping), MAP_ERR_RESERVED_PORT, or the port check's
 * error. MAP_ERR_NO_RESOURCES when nothing is free. The table is unchanged.
 *
 * The pseudo-random choice (RFC 6887 §15: no port prediction) takes only
 * ports of the ranges callback that the port bitmap shows free, and asks
 * the port check of at most TABLE_ALLOC_CANDIDATES of them, so a request
 * costs O(ranges + a fixed number of probes) however full the range is.
 * Protocols other than TCP and UDP have no bitmap: random probes only.
 */
#define TABLE_ALLOC_CANDIDATES	32
enum map_err	 table_alloc_port(struct table *, const struct map_req *,
		    uint64_t now, uint16_t *port);
/*
 * The gateway port a new PEER flow (req has MAP_F_PEER) leaves from:
 * RFC 4787 REQ-1 (endpoint-independent mapping) wants one external port
 * per internal endpoint, so the port of the endpoint's MAP mapping or of
 * another of its PEERs when there is one; else the internal port when
 * free (as masquerade keeps source ports when it can); else a
 * pseudo-random free port (table_alloc_port's rules). With `exact` (the
 * gateway is the outermost NAT, so the suggestion is about its own port)
 * a non-zero suggested port must be met: MAP_ERR_CANNOT_PROVIDE_EXTERNAL
 * when it cannot (RFC 6887 §12.1: PEER implies PREFER_FAILURE).
 */
enum map_err	 table_peer_port(struct table *, const struct map_req *,
		    bool exact, uint64_t now, uint16_t *port);
/*
 * Add a mapping in state REQUESTED with the given local external port and
 * granted lifetime; outer_addr is unspecified and outer_port = ext_port
 * until the caller sets them. Fails (NULL, *err set, table unchanged) when
 * the internal key exists, the port is taken, reserved or held for another
 * owner (MAP_ERR_CONFLICT / MAP_ERR_RESERVED_PORT), or memory runs out
 * (MAP_ERR_NO_RESOURCES). MAP_F_STATIC in req->flags makes it static.
 * MAP_F_PEER adds a PEER mapping (its 5-tuple must be new; ext_port is
 * the one table_peer_port() chose: MAP_ERR_CONFLICT when a PEER or MAP of
 * another internal endpoint uses it).
 */
struct mapping	*table_add(struct table *, const struct map_req *,
		    uint16_t ext_port, uint32_t lifetime, uint64_t now,
		    enum map_err *err);
/*
 * A refresh was granted: take the requester, its port, the request flags,
 * the description (if req carries one), the requested lifetime and lease
 * from req and the granted lifetime; expiry = now + granted. State is the caller's (one
 * transition function). -1 (table unchanged) when memory runs out.
 */
int		 table_refresh(struct table *, struct mapping *,
		    const struct map_req *, uint32_t granted, uint64_t now);
/* Set the absolute expiry (ms) of a mapping, e.g. a temporary one;
   clears MAPPING_F_RENEW. */
void		 table_set_expiry(struct table *, struct mapping *,
		    uint64_t expiry);
/*
 * A mapping the proxy renews by itself (a client lease beyond the grant,
 * map_req.lease): it lives until `end` (ms) but comes due at `renew_at`
 * (< end) for its renewal. Sets MAPPING_F_RENEW and grant_end; the
 * mapping's remaining life (mapping_remaining) is still counted to end.
 */
void		 table_set_renewal(struct table *, struct mapping *,
		    uint64_t renew_at, uint64_t end);
/* Take a client's lease (map_req.lease) without touching the grant (a
   refresh answered from the table). */
void		 table_set_lease(struct table *, struct mapping *,
		    uint32_t lease, uint64_t now);
/* The earliest mapping whose renewal point (MAPPING_F_RENEW) has come, or
   NULL; call before table_expire(), and clear or move it (table_set_expiry
   or table_set_renewal) before asking again. */
struct mapping	*table_renewal_due(const struct table *, uint64_t now);
/* The lease end (ms) of a client lease; TABLE_EXPIRY_NEVER for
   TABLE_LEASE_FOREVER; 0 for none. */
uint64_t	 mapping_lease_end_ms(const struct mapping *);
/* Seconds left of the client's lease: mapping_remaining() without one,
   TABLE_LIFETIME_INFINITE for a lease that never ends. */
uint32_t	 mapping_lease_remaining(const struct mapping *, uint64_t now);
/* Replace the description (NULL or "" clears it). -1 on memory. */
int		 table_set_description(struct table *, struct mapping *,
		    const char *);
/* Remove and free a mapping (state -> DELETED unless already terminal).
   A mapping that was ever granted leaves its port held (RFC 6887 §15).
   The caller has released owner_data. */
void		 table_remove(struct table *, struct mapping *, uint64_t now);
/*
 * Expire: for each mapping whose expiry <= now, earliest first, set EXPIRED,
 * call cb (may be NULL; it may read the mapping and its owner_data but must
 * not change the table), then remove it. Returns how many expired. Stops
 * at a mapping due for renewal (table_renewal_due): the caller renews it
 * first, then calls again.
 */
size_t		 table_expire(struct table *, uint64_t now,
		    void (*cb)(struct mapping *, void *), void *arg);
/* Earliest expiry (ms), TABLE_EXPIRY_NEVER when none: arm the timer. */
uint64_t	 table_next_expiry(const struct table *);

size_t		 table_count(const struct table *);
/* Counts changes: table_add, table_remove, table_refresh, table_set_expiry,
   table_set_description, mapping_set_state each bump it, so a caller that
   saves the table (the state file's group commit) writes only when it
   moved. Fields a caller writes itself (outer address and port, upstream,
   flags) do not: the caller notes those. */
uint64_t	 table_generation(const struct table *);

/*
 * What changed since the last table_dirty_clear(), for the state
 * journal's group commit (docs/state.md "The journal"): the cost of a
 * commit is then the changes, not the table. Off until
 * table_track_changes(t, true) (-1 on memory): a table nobody commits
 * must not keep a log. While on, every change that bumps the generation
 * marks its mapping (each at most once; O(1), never fails: an array with
 * room for every mapping, reserved with the heap and the listing, 8
 * bytes a mapping; struct mapping keeps its 168 bytes: the slot index
 * lives in what was padding); table_remove() takes the mapping out and
 * logs its key instead (the mapping is freed) when it was ever granted
 * (MAPPING_F_WAS_GRANTED: the others were never saved). A key may be
 * logged and come back in the same round (removed, then added again).
 * Fields a caller writes itself (outer address and port, upstream,
 * flags) are marked with table_touch(). table_dirty_lost(): a key could
 * not be logged (memory): the next save must be a whole one.
 */
struct table_key {
	struct in6_addr	 internal_addr;
	struct in6_addr	 peer_addr;	/* PEER only */
	uint16_t	 internal_port;
	uint16_t	 peer_port;	/* PEER only */
	uint8_t		 protocol;
	bool		 peer;
};
int		 table_track_changes(struct table *, bool on);
void		 table_touch(struct table *, struct mapping *);
size_t		 table_dirty_count(const struct table *);
struct mapping	*table_dirty_at(const struct table *, size_t);
size_t		 table_removed_count(const struct table *);
const struct table_key *table_removed_at(const struct table *, size_t);
bool		 table_dirty_lost(const struct table *);
void		 table_dirty_clear(struct table *);
size_t		 table_count_host(const struct table *,
		    const struct in6_addr *);
size_t		 table_count_state(const struct table *, enum map_state);
/* Index access for listing and GetGenericPortMappingEntry: 0..count-1,
   NULL past the end. Order is insertion order, except that removing a
   mapping moves the last one into its place. O(1). */
struct mapping	*table_at(const struct table *, size_t index);
/* A host's mappings (all protocols): first, then next until NULL. Save
   next before removing the current one. */
struct mapping	*table_host_first(const struct table *,
		    const struct in6_addr *);
struct mapping	*table_host_next(const struct mapping *);

/* Bytes the table holds: structs, descriptions, indexes, heap, holds,
   counted as malloc chunks (usable size + header) where the C library
   tells the usable size. */
size_t		 table_memory_bytes(const struct table *);
/* How many released ports are still held (RFC 6887 §15). */
size_t		 table_hold_count(const struct table *);

/* Seconds left, rounded up; 0 once expired; TABLE_LIFETIME_INFINITE for
   a mapping that never expires. */
uint32_t	 mapping_remaining(const struct mapping *, uint64_t now);
/*
 * RFC 7648 §3 (P-01/P-02): answer a GRANTED mapping locally when at least
 * 3/4 of the requested lifetime is left. When upstream granted less than
 * the client last asked for, it will do so again: compare with that grant
 * instead, so a capped lifetime does not defeat the cache.
 */
bool		 table_cache_hit(const struct mapping *,
		    uint32_t requested_lifetime, uint64_t now);
/* The one transition function (STYLE.md habit 7): logs old -> new. A
   terminal state is never left; false when the transition is refused. */
bool		 mapping_set_state(struct table *, struct mapping *,
		    enum map_state);
const char	*map_state_name(enum map_state);

#endif
