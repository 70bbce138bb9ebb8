/*
 * upstream.c - the RFC 6887 client engine toward the upstream PCP server(s).
 *
 * Pure: no sockets, no clock. Transactions in flight sit in two structures:
 * a binary min-heap on their next due time (a send or the deadline), so that
 * upstream_tick() and upstream_next_deadline() stay O(log n) per event even
 * when a server restart makes the proxy re-create thousands of mappings at
 * once; and a hash on the fields a response echoes (opcode, nonce, protocol,
 * internal port), so that matching a response is O(1) too.
 *
 * Every callback into the caller happens with the transaction already out of
 * both structures, from one place at a time: events that touch many
 * transactions (a hard error, a server that does not speak version 2) only
 * mark them and make them due now; upstream_tick() then ends or moves them
 * one by one, so a done() that cancels or starts other transactions never
 * invalidates an iteration.
 *
 * The liveness probe (RFC 6887 §14.1.2) lives beside the transactions, one
 * timer per server: a carrier whose restart ANNOUNCE (§14.1.3) never reached
 * us, or a server we marked DOWN, is otherwise heard from again only when a
 * renewal falls due, hours later for long grants. A probe is one ANNOUNCE
 * datagram, never retransmitted on the §8.1.1 schedule: the next probe,
 * an interval later, is its retransmission, so a dead server costs one
 * datagram per interval and no storm. It is outside the match hash and a
 * MAP or PEER answer never matches an ANNOUNCE (opcode first), so its reply
 * is never taken for a transaction's; an ANNOUNCE transaction of the
 * caller's, if any, gets the reply first.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pcp_retrans.h"
#include "pcp_wire.h"
#include "upstream.h"

#define UPSTREAM_HASH_MIN	64	/* buckets; a power of two */
#define UPSTREAM_HEAP_MIN	64
#define UPSTREAM_MS_PER_S	1000u
/* RFC 6887 §8.5: two seconds of slack and a 1/16 clock-rate tolerance. */
#define UPSTREAM_EPOCH_SLACK_S	2u
#define UPSTREAM_EPOCH_RATE_DIV	16u
/* The probe's interval is drawn from [I - I/4, I + I/4]: after a carrier
   outage every gateway starts probing at once, and a spread of half the
   interval (not §8.1.1's +-10 %) breaks that wave up in a few rounds. */
#define UPSTREAM_PROBE_JITTER_DIV	4u
/* A DOWN server that holds our mappings is probed twice as often: it is
   worth a datagram every 15 s (by default) to have them back soon. */
#define UPSTREAM_PROBE_DOWN_DIV		2u
/* A DOWN server without our mappings backs off, doubling, to RFC 7488
   §3's retry of a failed server list every 15 minutes. */
#define UPSTREAM_PROBE_RETRY_MAX_MS	(15u * 60u * UPSTREAM_MS_PER_S)
#define UPSTREAM_PROBE_SHIFT_MAX	16u
/* A server that has answered a probe and then leaves this many in a row
   unanswered is DOWN (one lost datagram is no outage). One that never
   answered ANNOUNCE is not judged by it: it may not implement §14.1.2. */
#define UPSTREAM_PROBE_MISSES		3u

/* A deferred event on a transaction, handled by upstream_tick(). */
enum upstream_pending {
	UPSTREAM_PENDING_NONE = 0,
	UPSTREAM_PENDING_FAILOVER,	/* hard error: next server or end */
	UPSTREAM_PENDING_UNSUPP,	/* the server answered another version */
	UPSTREAM_PENDING_REPLACED,	/* a newer one for the mapping began */
};

struct upstream_server {
	struct in6_addr	 addr;
	uint16_t	 port;
	bool		 local_known;
	struct in6_addr	 local;
	enum upstream_state state;
	/* RFC 6887 §8.5: the previous server epoch and client time (s). */
	bool		 epoch_known;
	uint32_t	 prev_server_epoch;
	uint64_t	 prev_client_s;
	char		 last_error[UPSTREAM_ERROR_MAX];
	uint64_t	 replies, timeouts;
	/* The last UNSUPP_VERSION of another version (§9), handed to the
	   transactions it ends. */
	struct pcp_msg	 unsupp;
	/* the liveness probe (see the top of the file) */
	uint64_t	 probe_at;	/* ms; 0: arm at the next tick */
	uint64_t	 last_heard;	/* ms of the last accepted response */
	bool		 heard;
	bool		 probe_out;	/* the last probe is unanswered */
	bool		 probe_answered; /* it has answered one: it does
					   solicited ANNOUNCE */
	uint32_t	 probe_misses;	/* unanswered probes in a row */
	uint64_t	 probes;
};

struct upstream {
	struct upstream_cb	 cb;
	void			*arg;
	upstream_send_fn	 send;
	void			*send_arg;
	uint64_t		 rng;
	size_t			 nservers;
	struct upstream_server	 srv[UPSTREAM_MAX_SERVERS];
	/* min-heap on txn->due */
	struct upstream_txn	**heap;
	size_t			 n, cap;
	/* match hash, chained through txn->next */
	struct upstream_txn	**bucket;
	size_t			 nbuckets;
	uint32_t		 probe_ms;	/* 0: no liveness probe */
};

static const char *const upstream_state_names[UPSTREAM_STATE_COUNT] = {
	[UPSTREAM_UNKNOWN] = "unknown",
	[UPSTREAM_UP] = "up",
	[UPSTREAM_DOWN] = "down",
};

const char *
upstream_state_name(enum upstream_state s)
{
	if ((unsigned int)s >= UPSTREAM_STATE_COUNT)
		return "invalid";
	return upstream_state_names[s];
}

/* ---- the PRNG for RAND (§8.1.1): splitmix64, deterministic per seed ---- */

static uint32_t
upstream_random(struct upstream *u)
{
	uint64_t z;

	z = (u->rng += 0x9e3779b97f4a7c15ULL);
	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

/* ---- the heap on due times ---- */

static void
upstream_heap_set(struct upstream *u, size_t i, struct upstream_txn *t)
{
	u->heap[i] = t;
	t->heap_index = i;
}

static void
upstream_heap_up(struct upstream *u, size_t i)
{
	struct upstream_txn *t = u->heap[i];
	size_t parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (u->heap[parent]->due <= t->due)
			break;
		upstream_heap_set(u, i, u->heap[parent]);
		i = parent;
	}
	upstream_heap_set(u, i, t);
}

static void
upstream_heap_down(struct upstream *u, size_t i)
{
	struct upstream_txn *t = u->heap[i];
	size_t child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= u->n)
			break;
		if (child + 1 < u->n &&
		    u->heap[child + 1]->due < u->heap[child]->due)
			child++;
		if (t->due <= u->heap[child]->due)
			break;
		upstream_heap_set(u, i, u->heap[child]);
		i = child;
	}
	upstream_heap_set(u, i, t);
}

/* Room for one more, so that a push never fails: upstream_start() reserves
   before a transaction enters, and the tick pops before it pushes back. */
static bool
upstream_heap_reserve(struct upstream *u)
{
	struct upstream_txn **h;
	size_t cap;

	if (u->n < u->cap)
		return true;
	cap = u->cap == 0 ? UPSTREAM_HEAP_MIN : u->cap * 2;
	if ((h = reallocarray(u->heap, cap, sizeof(*h))) == NULL)
		return false;
	u->heap = h;
	u->cap = cap;
	return true;
}

static void
upstream_heap_push(struct upstream *u, struct upstream_txn *t)
{
	upstream_heap_set(u, u->n++, t);
	upstream_heap_up(u, u->n - 1);
}

static void
upstream_heap_remove(struct upstream *u, struct upstream_txn *t)
{
	struct upstream_txn *moved;
	size_t i = t->heap_index;

	if (i != --u->n) {
		moved = u->heap[u->n];
		upstream_heap_set(u, i, moved);
		upstream_heap_down(u, i);
		upstream_heap_up(u, moved->heap_index);
	}
}

/* Floyd's O(n) rebuild, after many keys changed at once. */
static void
upstream_heap_rebuild(struct upstream *u)
{
	size_t i;

	for (i = u->n / 2; i-- > 0;)
		upstream_heap_down(u, i);
}

/* Whether t is in flight; safe on a txn whose private part is garbage. */
static bool
upstream_txn_active(const struct upstream *u, const struct upstream_txn *t)
{
	return t->heap_index < u->n && u->heap[t->heap_index] == t;
}

/* ---- the match hash ---- */

/* FNV-1a over what a response echoes (§11.4, §12.4). ANNOUNCE has no body:
   its transactions hash on the opcode alone, like their responses. */
static size_t
upstream_hash(uint8_t opcode, const uint8_t *nonce, uint8_t protocol,
    uint16_t internal_port)
{
	uint32_t h = 2166136261u;
	size_t i;

#define UPSTREAM_FNV(b)	(h = (h ^ (uint8_t)(b)) * 16777619u)
	UPSTREAM_FNV(opcode);
	if (opcode == PCP_OP_ANNOUNCE)
		return h;
	for (i = 0; i < PCP_NONCE_SIZE; i++)
		UPSTREAM_FNV(nonce[i]);
	UPSTREAM_FNV(protocol);
	UPSTREAM_FNV(internal_port >> 8);
	UPSTREAM_FNV(internal_port);
#undef UPSTREAM_FNV
	return h;
}

static size_t
upstream_txn_hash(const struct upstream_txn *t)
{
	return upstream_hash(t->opcode, t->nonce, t->protocol,
	    t->internal_port);
}

static void
upstream_hash_link(struct upstream *u, struct upstream_txn *t)
{
	size_t b = upstream_txn_hash(t) & (u->nbuckets - 1);

	t->next = u->bucket[b];
	u->bucket[b] = t;
}

static void
upstream_hash_unlink(struct upstream *u, struct upstream_txn *t)
{
	struct upstream_txn **pp;

	pp = &u->bucket[upstream_txn_hash(t) & (u->nbuckets - 1)];
	for (; *pp != NULL; pp = &(*pp)->next)
		if (*pp == t) {
			*pp = t->next;
			return;
		}
}

/* Keep the load at most one per bucket; on allocation failure the chains
   just grow longer. */
static void
upstream_hash_grow(struct upstream *u)
{
	struct upstream_txn **old = u->bucket, *t, *next;
	size_t i, oldn = u->nbuckets;

	if (u->n < u->nbuckets)
		return;
	if ((u->bucket = calloc(oldn * 2, sizeof(*u->bucket))) == NULL) {
		u->bucket = old;
		return;
	}
	u->nbuckets = oldn * 2;
	for (i = 0; i < oldn; i++)
		for (t = old[i]; t != NULL; t = next) {
			next = t->next;
			upstream_hash_link(u, t);
		}
	free(old);
}

/* ---- servers ---- */

static const char *
upstream_server_name(const struct upstream *u, unsigned int i, char *buf,
    size_t len)
{
	return pcp_addr_ntop(&u->srv[i].addr, buf, len);
}

/* The one place a server changes state (STYLE.md habit 7). */
static void
upstream_server_transition(struct upstream *u, unsigned int i,
    enum upstream_state new_state)
{
	enum upstream_state old = u->srv[i].state;
	char name[INET6_ADDRSTRLEN];

	if (old == new_state)
		return;
	u->srv[i].state = new_state;
	/* its probe moves to the DOWN pace at the next tick */
	if (new_state == UPSTREAM_DOWN)
		u->srv[i].probe_at = 0;
	log_debug("upstream server %u (%s): %s -> %s", i,
	    upstream_server_name(u, i, name, sizeof(name)),
	    upstream_state_name(old), upstream_state_name(new_state));
	if (u->cb.state_changed != NULL)
		u->cb.state_changed(u->arg, i, old, new_state);
}

static void
upstream_server_error(struct upstream *u, unsigned int i, const char *why)
{
	(void)snprintf(u->srv[i].last_error, sizeof(u->srv[i].last_error),
	    "%s", why);
}

static bool
upstream_server_usable(const struct upstream *u, unsigned int i)
{
	return i < u->nservers && u->srv[i].local_known;
}

/*
 * RFC 7488 §3: stay with a server that answers; otherwise try them in the
 * configured order, those not known to be down first. `tried` excludes.
 */
static unsigned int
upstream_pick_from(const struct upstream *u, uint8_t tried)
{
	static const enum upstream_state order[] = {
		UPSTREAM_UP, UPSTREAM_UNKNOWN, UPSTREAM_DOWN,
	};
	size_t k;
	unsigned int i;

	for (k = 0; k < sizeof(order) / sizeof(order[0]); k++)
		for (i = 0; i < u->nservers; i++)
			if (upstream_server_usable(u, i) &&
			    (tried & (1u << i)) == 0 &&
			    u->srv[i].state == order[k])
				return i;
	return UPSTREAM_NO_SERVER;
}

unsigned int
upstream_pick(const struct upstream *u)
{
	return upstream_pick_from(u, 0);
}

/*
 * RFC 6887 §8.5 client side. The first response is accepted; afterwards the
 * server's epoch must not go back by more than one second and must advance
 * at about the rate of the client's clock (1/16 + 2 s of slack). The values
 * are recorded whatever the verdict. A 1-second step back gives a negative
 * server delta, taken as 0 (spec/pcp.md §1.9 [derived]).
 */
static bool
upstream_epoch_check(struct upstream *u, unsigned int i, uint32_t epoch,
    uint64_t now)
{
	struct upstream_server *s = &u->srv[i];
	uint64_t client_s = now / UPSTREAM_MS_PER_S, cd, sd;
	bool valid = true;

	if (s->epoch_known) {
		if ((uint64_t)epoch + 1 < s->prev_server_epoch)
			valid = false;
		cd = client_s >= s->prev_client_s ?
		    client_s - s->prev_client_s : 0;
		sd = epoch >= s->prev_server_epoch ?
		    (uint64_t)epoch - s->prev_server_epoch : 0;
		if (cd + UPSTREAM_EPOCH_SLACK_S <
		    sd - sd / UPSTREAM_EPOCH_RATE_DIV ||
		    sd + UPSTREAM_EPOCH_SLACK_S <
		    cd - cd / UPSTREAM_EPOCH_RATE_DIV)
			valid = false;
	}
	s->epoch_known = true;
	s->prev_server_epoch = epoch;
	s->prev_client_s = client_s;
	if (!valid)
		log_info("upstream server %u: epoch %u is out of step: "
		    "it lost state (RFC 6887 §8.5)", i, epoch);
	return valid;
}

/* ---- transactions ---- */

static void
upstream_build(const struct upstream *u, const struct upstream_txn *t,
    struct pcp_msg *m)
{
	size_t dlen;

	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = t->opcode;
	m->lifetime = t->lifetime;
	/* C-01: the source address of the socket toward that server */
	m->client_addr = u->srv[t->server].local;
	if (t->opcode == PCP_OP_ANNOUNCE)
		return;		/* §14.1.1: no body, no options */
	memcpy(m->nonce, t->nonce, PCP_NONCE_SIZE);
	m->protocol = t->protocol;
	m->internal_port = t->internal_port;
	m->ext_port = t->ext_port;
	m->ext_addr = t->ext_addr;
	if (t->opcode == PCP_OP_PEER) {
		m->peer_port = t->peer_port;
		m->peer_addr = t->peer_addr;
	}
	m->has_third_party = t->has_third_party;
	m->third_party = t->third_party;
	/* §13.2: MAP only */
	m->prefer_failure = t->prefer_failure && t->opcode == PCP_OP_MAP;
	dlen = strnlen(t->description, UPSTREAM_DESCRIPTION_MAX);
	if (dlen > 0) {
		/* RFC 7220 */
		m->has_description = true;
		m->description_len = (uint16_t)dlen;
		memcpy(m->description, t->description, dlen);
	}
}

/* Encode t for its current server, once: retransmissions resend these
   very bytes (C-03). */
static bool
upstream_encode(struct upstream *u, struct upstream_txn *t)
{
	struct pcp_msg m;
	uint8_t buf[PCP_MAX_SIZE];
	uint8_t *pkt;
	size_t len;

	upstream_build(u, t, &m);
	if ((len = pcp_encode(&m, buf, sizeof(buf))) == 0) {
		log_warnx("upstream: request does not encode");
		return false;
	}
	if ((pkt = malloc(len)) == NULL) {
		log_warn("upstream: request");
		return false;
	}
	memcpy(pkt, buf, len);
	free(t->pkt);
	t->pkt = pkt;
	t->len = (uint16_t)len;
	return true;
}

static void
upstream_set_due(struct upstream_txn *t)
{
	t->due = t->next_send < t->deadline ? t->next_send : t->deadline;
}

/*
 * One send of t's packet, then the next RT (§8.1.1: a fresh RAND each
 * time). Returns the transport's errno, 0 when sent.
 */
static int
upstream_send(struct upstream *u, struct upstream_txn *t, uint64_t now)
{
	double rand = pcp_rt_rand(upstream_random(u));
	int error;

	if (t->sends == 0)
		t->rt_ms = pcp_rt_first_ms(rand);
	else
		t->rt_ms = pcp_rt_next_ms(t->rt_ms, rand, PCP_RT_MRT_MS);
	t->sends++;
	t->next_send = now + t->rt_ms;
	upstream_set_due(t);
	if (u->send == NULL)
		return ENOTCONN;
	error = u->send(u->send_arg, t->server, t->pkt, t->len);
	return error;
}

/* Take t out of flight: the heap (if still there), the hash, its packet. */
static void
upstream_detach(struct upstream *u, struct upstream_txn *t)
{
	if (upstream_txn_active(u, t))
		upstream_heap_remove(u, t);
	upstream_hash_unlink(u, t);
	free(t->pkt);
	t->pkt = NULL;
	t->len = 0;
	t->next = NULL;
	t->heap_index = SIZE_MAX;
}

static void
upstream_finish(struct upstream *u, struct upstream_txn *t,
    enum upstream_outcome outcome, const struct pcp_msg *resp)
{
	upstream_detach(u, t);
	if (u->cb.done != NULL)
		u->cb.done(u->arg, t, outcome, resp);
}

/*
 * Server i failed hard (send error, ICMP, RFC 7488 §3): every transaction on
 * it fails over or ends, from upstream_tick() (see the top of the file).
 */
static void
upstream_server_failed(struct upstream *u, unsigned int i, int error,
    uint64_t now)
{
	struct upstream_txn *t;
	size_t k;

	for (k = 0; k < u->n; k++) {
		t = u->heap[k];
		if (t->server == i && t->pending == UPSTREAM_PENDING_NONE) {
			t->pending = UPSTREAM_PENDING_FAILOVER;
			t->due = now;
		}
	}
	upstream_heap_rebuild(u);
	upstream_server_error(u, i, strerror(error));
	upstream_server_transition(u, i, UPSTREAM_DOWN);
}

/* Send t now; a hard error defers its failover to the tick. t is out of
   the heap and goes back in. */
static void
upstream_send_and_queue(struct upstream *u, struct upstream_txn *t,
    uint64_t now)
{
	int error;

	if ((error = upstream_send(u, t, now)) != 0) {
		log_debug("upstream server %u: send: %s", t->server,
		    strerror(error));
		upstream_server_failed(u, t->server, error, now);
		t->pending = UPSTREAM_PENDING_FAILOVER;
		t->due = now;
	}
	upstream_heap_push(u, t);
}

/* Put t on server i with a fresh §8.1.1 schedule and send. t is out of the
   heap. False when it cannot be encoded. */
static bool
upstream_use_server(struct upstream *u, struct upstream_txn *t,
    unsigned int i, uint64_t now)
{
	t->server = (uint8_t)i;
	t->tried |= (uint8_t)(1u << i);
	t->sends = 0;
	t->pending = UPSTREAM_PENDING_NONE;
	if (!upstream_encode(u, t))
		return false;
	upstream_send_and_queue(u, t, now);
	return true;
}

/* RFC 7488 §3: the next server not yet tried, if t may move. t is out of
   the heap; false when it stays out (the caller ends it). */
static bool
upstream_failover(struct upstream *u, struct upstream_txn *t, uint64_t now)
{
	unsigned int next;

	if (!t->may_fail_over)
		return false;
	if ((next = upstream_pick_from(u, t->tried)) == UPSTREAM_NO_SERVER)
		return false;
	log_debug("upstream: transaction moves from server %u to %u",
	    t->server, next);
	return upstream_use_server(u, t, next, now);
}

/* The deadline passed (§8.1.1 MRD, here the caller's): the server did not
   answer. */
static void
upstream_timeout(struct upstream *u, struct upstream_txn *t)
{
	if (t->server < u->nservers) {
		u->srv[t->server].timeouts++;
		upstream_server_error(u, t->server, "no answer");
		upstream_server_transition(u, t->server, UPSTREAM_DOWN);
	}
	upstream_finish(u, t, UPSTREAM_TIMEOUT, NULL);
}

/* t is due (and out of the heap): handle it. */
static void
upstream_due(struct upstream *u, struct upstream_txn *t, uint64_t now)
{
	unsigned int s = t->server;

	switch (t->pending) {
	case UPSTREAM_PENDING_FAILOVER:
		if (!upstream_failover(u, t, now)) {
			upstream_finish(u, t, UPSTREAM_UNREACHABLE, NULL);
		}
		return;
	case UPSTREAM_PENDING_UNSUPP:
		upstream_finish(u, t, UPSTREAM_REPLY, &u->srv[s].unsupp);
		return;
	case UPSTREAM_PENDING_REPLACED:
		upstream_finish(u, t, UPSTREAM_REPLACED, NULL);
		return;
	default:
		break;
	}
	if (now >= t->deadline) {
		upstream_timeout(u, t);
		return;
	}
	/* RFC 7488 §3: MRC 4 per server, then the next one. */
	if (t->sends >= UPSTREAM_MRC_PER_SERVER && t->may_fail_over &&
	    upstream_pick_from(u, t->tried) != UPSTREAM_NO_SERVER) {
		upstream_server_error(u, s, "no answer");
		upstream_server_transition(u, s, UPSTREAM_DOWN);
		if (upstream_failover(u, t, now))
			return;
		upstream_finish(u, t, UPSTREAM_UNREACHABLE, NULL);
		return;
	}
	upstream_send_and_queue(u, t, now);
}

/* ---- the liveness probe (RFC 6887 §14.1.2) ---- */

static bool
upstream_probe_armed(const struct upstream *u, unsigned int i)
{
	return u->probe_ms > 0 && upstream_server_usable(u, i);
}

static bool
upstream_holds_mappings(struct upstream *u, unsigned int i)
{
	return u->cb.holds_mappings != NULL &&
	    u->cb.holds_mappings(u->arg, i);
}

/* The interval before server i's next probe, before jitter. */
static uint64_t
upstream_probe_interval(struct upstream *u, unsigned int i, bool held)
{
	const struct upstream_server *s = &u->srv[i];
	uint64_t base = u->probe_ms, cap = UPSTREAM_PROBE_RETRY_MAX_MS;
	uint32_t shift;

	if (s->state != UPSTREAM_DOWN)
		return base;
	base /= UPSTREAM_PROBE_DOWN_DIV;
	if (base == 0)
		base = 1;
	if (held)
		return base;
	/* RFC 7488 §3: doubling up to the 15-minute retry */
	shift = s->probe_misses < UPSTREAM_PROBE_SHIFT_MAX ?
	    s->probe_misses : UPSTREAM_PROBE_SHIFT_MAX;
	if (cap < base)
		cap = base;
	return (base << shift) < cap ? base << shift : cap;
}

/* interval +- 1/4, uniform (no synchronized gateways) */
static uint64_t
upstream_probe_jitter(struct upstream *u, uint64_t interval)
{
	uint64_t spread = interval / UPSTREAM_PROBE_JITTER_DIV;

	return interval - spread + upstream_random(u) % (2 * spread + 1);
}

/* One ANNOUNCE request (§14.1.2: lifetime 0, no body) to server i. */
static int
upstream_probe_send(struct upstream *u, unsigned int i)
{
	struct pcp_msg m;
	uint8_t buf[PCP_MAX_SIZE];
	size_t len;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_ANNOUNCE;
	m.lifetime = 0;
	m.client_addr = u->srv[i].local;	/* C-01 */
	if ((len = pcp_encode(&m, buf, sizeof(buf))) == 0)
		return EINVAL;
	if (u->send == NULL)
		return ENOTCONN;
	return u->send(u->send_arg, i, buf, len);
}

/* Server i's probe time came. True when it failed hard (its transactions
   then wait in the heap, due now). */
static bool
upstream_probe_due(struct upstream *u, unsigned int i, uint64_t now)
{
	struct upstream_server *s = &u->srv[i];
	uint64_t min_quiet = u->probe_ms - u->probe_ms /
	    UPSTREAM_PROBE_JITTER_DIV;
	bool held = upstream_holds_mappings(u, i);
	int error;

	if (s->probe_out) {
		s->probe_out = false;
		s->probe_misses++;
	}
	if (s->state != UPSTREAM_DOWN) {
		if (!held) {
			/* nothing of ours to lose there: stay quiet */
			s->probe_misses = 0;
			s->probe_at = now + upstream_probe_jitter(u, u->probe_ms);
			return false;
		}
		if (s->probe_answered &&
		    s->probe_misses >= UPSTREAM_PROBE_MISSES) {
			upstream_server_error(u, i, "no answer to ANNOUNCE");
			upstream_server_transition(u, i, UPSTREAM_DOWN);
		} else if (s->heard && now < s->last_heard + min_quiet) {
			/* its replies show it alive (and their epochs
			   were checked): wait for a whole silence */
			s->probe_at = s->last_heard +
			    upstream_probe_jitter(u, u->probe_ms);
			return false;
		}
	}
	s->probe_at = now + upstream_probe_jitter(u,
	    upstream_probe_interval(u, i, held));
	s->probes++;
	s->probe_out = true;
	log_debug("upstream server %u: probe (%s, %u unanswered)", i,
	    upstream_state_name(s->state), s->probe_misses);
	if ((error = upstream_probe_send(u, i)) != 0) {
		log_debug("upstream server %u: probe: %s", i, strerror(error));
		upstream_server_failed(u, i, error, now);
		return true;
	}
	return false;
}

/* Arm or run the probes that are due; true when a server failed hard. */
static bool
upstream_probe_run(struct upstream *u, uint64_t now)
{
	struct upstream_server *s;
	unsigned int i;
	bool failed = false;

	for (i = 0; i < u->nservers; i++) {
		s = &u->srv[i];
		if (!upstream_probe_armed(u, i) || s->probe_at > now)
			continue;
		if (s->probe_at == 0)
			s->probe_at = now + upstream_probe_jitter(u,
			    upstream_probe_interval(u, i,
			    upstream_holds_mappings(u, i)));
		else if (upstream_probe_due(u, i, now))
			failed = true;
	}
	return failed;
}

void
upstream_set_probe_interval(struct upstream *u, uint32_t interval_ms)
{
	size_t i;

	u->probe_ms = interval_ms;
	for (i = 0; i < u->nservers; i++)
		u->srv[i].probe_at = 0;		/* re-armed at the next tick */
}

static void
upstream_tick_heap(struct upstream *u, uint64_t now)
{
	struct upstream_txn *t;

	while (u->n > 0 && u->heap[0]->due <= now) {
		t = u->heap[0];
		upstream_heap_remove(u, t);
		t->heap_index = SIZE_MAX;
		upstream_due(u, t, now);
	}
}

void
upstream_tick(struct upstream *u, uint64_t now)
{
	upstream_tick_heap(u, now);
	/* a probe that failed hard left that server's transactions due */
	if (upstream_probe_run(u, now))
		upstream_tick_heap(u, now);
}

uint64_t
upstream_next_deadline(const struct upstream *u)
{
	uint64_t at = u->n > 0 ? u->heap[0]->due : UINT64_MAX;
	unsigned int i;

	for (i = 0; i < u->nservers; i++)
		if (upstream_probe_armed(u, i) && u->srv[i].probe_at < at)
			at = u->srv[i].probe_at;
	return at;
}

size_t
upstream_in_flight(const struct upstream *u)
{
	return u->n;
}

void
upstream_cancel(struct upstream *u, struct upstream_txn *t)
{
	if (upstream_txn_active(u, t))
		upstream_detach(u, t);
}

/* Do a and b ask for the same mapping (what a response would echo, the
   server aside)? Only MAP and PEER name a mapping. */
static bool
upstream_same_mapping(const struct upstream_txn *a,
    const struct upstream_txn *b)
{
	if (a->opcode != b->opcode ||
	    (a->opcode != PCP_OP_MAP && a->opcode != PCP_OP_PEER))
		return false;
	if (memcmp(a->nonce, b->nonce, PCP_NONCE_SIZE) != 0 ||
	    a->protocol != b->protocol || a->internal_port != b->internal_port)
		return false;
	if (a->has_third_party != b->has_third_party || (a->has_third_party &&
	    !IN6_ARE_ADDR_EQUAL(&a->third_party, &b->third_party)))
		return false;
	return a->opcode != PCP_OP_PEER || (a->peer_port == b->peer_port &&
	    IN6_ARE_ADDR_EQUAL(&a->peer_addr, &b->peer_addr));
}

/*
 * A newer request for a mapping replaces the older (upstream.h): the older
 * leaves the match hash now, so no response reaches it, and ends with
 * UPSTREAM_REPLACED at the next tick (never a callback from here). t is
 * not in the hash yet.
 */
static void
upstream_replace_older(struct upstream *u, const struct upstream_txn *t,
    uint64_t now)
{
	struct upstream_txn **pp, *o;

	pp = &u->bucket[upstream_txn_hash(t) & (u->nbuckets - 1)];
	while ((o = *pp) != NULL) {
		if (!upstream_same_mapping(o, t) ||
		    o->pending == UPSTREAM_PENDING_REPLACED ||
		    o->pending == UPSTREAM_PENDING_UNSUPP) {
			pp = &o->next;
			continue;
		}
		*pp = o->next;
		o->next = NULL;
		o->pending = UPSTREAM_PENDING_REPLACED;
		o->due = now;
		if (upstream_txn_active(u, o))
			upstream_heap_up(u, o->heap_index);
	}
}

bool
upstream_start(struct upstream *u, struct upstream_txn *t, uint64_t now)
{
	unsigned int s;

	upstream_cancel(u, t);
	t->next = NULL;
	t->heap_index = SIZE_MAX;
	t->pkt = NULL;
	t->len = 0;
	t->tried = 0;
	t->sends = 0;
	t->rt_ms = 0;
	t->pending = UPSTREAM_PENDING_NONE;
	if (!upstream_heap_reserve(u)) {
		log_warn("upstream: transaction");
		return false;
	}
	if (t->deadline <= now)
		t->deadline = now + 1;
	t->may_fail_over = t->server == UPSTREAM_NO_SERVER;
	s = t->may_fail_over ? upstream_pick(u) : t->server;
	upstream_replace_older(u, t, now);
	upstream_hash_link(u, t);
	if (upstream_server_usable(u, s)) {
		t->server = (uint8_t)s;
		t->tried = (uint8_t)(1u << s);
		if (upstream_encode(u, t)) {
			upstream_send_and_queue(u, t, now);
			upstream_hash_grow(u);
			return true;
		}
	}
	/* nothing to send to (yet), or no memory for the packet: fail over
	   or end at the next tick, never from here */
	t->pending = UPSTREAM_PENDING_FAILOVER;
	t->next_send = t->due = now;
	upstream_heap_push(u, t);
	upstream_hash_grow(u);
	return true;
}

/* ---- input ---- */

/* §8.3, §11.4, §12.4, §13.1: does resp answer t? */
static bool
upstream_matches(const struct upstream_txn *t, unsigned int server,
    const struct pcp_msg *r)
{
	if (t->server != server || t->opcode != r->opcode)
		return false;
	if (t->pending != UPSTREAM_PENDING_NONE)
		return false;		/* already ending */
	if (t->opcode == PCP_OP_ANNOUNCE)
		return true;
	/* RFC 6887 §15: a delete's SUCCESS has lifetime 0, a grant's not;
	   the late answer to a delete is never a re-create's (upstream.h) */
	if (r->result == PCP_SUCCESS &&
	    (r->lifetime == 0) != (t->lifetime == 0))
		return false;
	if (memcmp(t->nonce, r->nonce, PCP_NONCE_SIZE) != 0 ||
	    t->protocol != r->protocol || t->internal_port != r->internal_port)
		return false;
	if (t->opcode == PCP_OP_PEER && (t->peer_port != r->peer_port ||
	    !IN6_ARE_ADDR_EQUAL(&t->peer_addr, &r->peer_addr)))
		return false;
	/* §8.3: the internal address is THIRD_PARTY's when one was sent (a
	   success echoes it, §13.1; an error copies the request, unless its
	   copy was cut short); else the response must carry none. */
	if (r->has_third_party)
		return t->has_third_party &&
		    IN6_ARE_ADDR_EQUAL(&t->third_party, &r->third_party);
	return !t->has_third_party || r->truncated;
}

static struct upstream_txn *
upstream_match(const struct upstream *u, unsigned int server,
    const struct pcp_msg *r)
{
	struct upstream_txn *t;
	size_t b;

	b = upstream_hash(r->opcode, r->nonce, r->protocol, r->internal_port) &
	    (u->nbuckets - 1);
	for (t = u->bucket[b]; t != NULL; t = t->next)
		if (upstream_matches(t, server, r))
			return t;
	return NULL;
}

/*
 * §9: a server that answers UNSUPP_VERSION with another version did not
 * parse our request at all and will not parse the others either: every
 * transaction on it ends with that reply, which the proxy translates.
 */
static void
upstream_input_unsupp(struct upstream *u, unsigned int server,
    const struct pcp_msg *r, uint64_t now)
{
	struct upstream_txn *t;
	size_t k;

	log_info("upstream server %u speaks PCP version %u, not %u",
	    server, r->version, PCP_VERSION);
	memcpy(&u->srv[server].unsupp, r, sizeof(*r));
	upstream_server_error(u, server, "unsupported version");
	for (k = 0; k < u->n; k++) {
		t = u->heap[k];
		if (t->server == server && t->pending == UPSTREAM_PENDING_NONE) {
			t->pending = UPSTREAM_PENDING_UNSUPP;
			t->due = now;
		}
	}
	upstream_heap_rebuild(u);
	upstream_tick(u, now);
}

/* A response accepted from server i: it is up, and its epoch is checked. */
static bool
upstream_accept(struct upstream *u, unsigned int i, const struct pcp_msg *r,
    uint64_t now)
{
	struct upstream_server *s = &u->srv[i];

	s->replies++;
	/* it is alive: the probe waits for another interval of silence */
	s->heard = true;
	s->last_heard = now;
	s->probe_out = false;
	s->probe_misses = 0;
	upstream_server_transition(u, i, UPSTREAM_UP);
	return upstream_epoch_check(u, i, r->epoch, now);
}

static void
upstream_input_unsolicited(struct upstream *u, unsigned int i,
    const struct pcp_msg *r, uint64_t now)
{
	bool epoch_ok;

	/* §8.3: unmatched responses are ignored, except an unsolicited
	   ANNOUNCE (§14.1.3) and a Mapping Update (§14.2) */
	if (r->result != PCP_SUCCESS ||
	    (r->opcode != PCP_OP_ANNOUNCE && r->opcode != PCP_OP_MAP &&
	    r->opcode != PCP_OP_PEER)) {
		log_debug("upstream server %u: unmatched %s response (%s) "
		    "ignored", i, pcp_opcode_name(r->opcode),
		    pcp_result_name(r->result));
		return;
	}
	epoch_ok = upstream_accept(u, i, r, now);
	if (r->opcode != PCP_OP_ANNOUNCE && u->cb.mapping_update != NULL)
		u->cb.mapping_update(u->arg, i, r);
	if (!epoch_ok && u->cb.lost_state != NULL)
		u->cb.lost_state(u->arg, i);
}

/*
 * The answer to our probe (§14.1.2), whatever its result: any response
 * shows the server alive and carries its Epoch (§8.5). An unsolicited
 * ANNOUNCE that crosses the probe is taken the same way, to the same
 * effect.
 */
static void
upstream_input_probe(struct upstream *u, unsigned int i,
    const struct pcp_msg *r, uint64_t now)
{
	log_debug("upstream server %u: probe answered (%s, epoch %u)", i,
	    pcp_result_name(r->result), r->epoch);
	u->srv[i].probe_answered = true;
	if (!upstream_accept(u, i, r, now) && u->cb.lost_state != NULL)
		u->cb.lost_state(u->arg, i);
}

void
upstream_input(struct upstream *u, unsigned int server, const uint8_t *buf,
    size_t len, uint64_t now)
{
	struct pcp_msg r;
	struct upstream_txn *t;
	bool epoch_ok;

	if (server >= u->nservers || buf == NULL)
		return;
	/* C-04: length, R bit, version; only what decodes is looked at */
	if (!pcp_decode_response(buf, len, &r)) {
		log_debug("upstream server %u: invalid response of %zu octets "
		    "dropped", server, len);
		return;
	}
	if (r.version != PCP_VERSION) {
		upstream_input_unsupp(u, server, &r, now);
		return;
	}
	if ((t = upstream_match(u, server, &r)) == NULL) {
		if (r.opcode == PCP_OP_ANNOUNCE && u->srv[server].probe_out)
			upstream_input_probe(u, server, &r, now);
		else
			upstream_input_unsolicited(u, server, &r, now);
		return;
	}
	epoch_ok = upstream_accept(u, server, &r, now);
	/* the reply first: a re-creation started by lost_state may then
	   restart this very transaction */
	upstream_finish(u, t, UPSTREAM_REPLY, &r);
	if (!epoch_ok && u->cb.lost_state != NULL)
		u->cb.lost_state(u->arg, server);
}

void
upstream_hard_error(struct upstream *u, unsigned int server, int error,
    uint64_t now)
{
	char name[INET6_ADDRSTRLEN];

	if (server >= u->nservers)
		return;
	log_debug("upstream server %u (%s): %s", server,
	    upstream_server_name(u, server, name, sizeof(name)),
	    strerror(error));
	upstream_server_failed(u, server, error, now);
	upstream_tick(u, now);
}

/* ---- setup ---- */

struct upstream *
upstream_new(const struct upstream_cb *cb, void *arg, uint32_t random_seed)
{
	struct upstream *u;

	if ((u = calloc(1, sizeof(*u))) == NULL)
		return NULL;
	if ((u->bucket = calloc(UPSTREAM_HASH_MIN, sizeof(*u->bucket))) ==
	    NULL) {
		free(u);
		return NULL;
	}
	u->nbuckets = UPSTREAM_HASH_MIN;
	if (cb != NULL)
		u->cb = *cb;
	u->arg = arg;
	u->rng = random_seed;
	return u;
}

void
upstream_free(struct upstream *u)
{
	if (u == NULL)
		return;
	while (u->n > 0)
		upstream_detach(u, u->heap[0]);
	free(u->heap);
	free(u->bucket);
	free(u);
}

void
upstream_set_transport(struct upstream *u, upstream_send_fn send,
    void *send_arg)
{
	u->send = send;
	u->send_arg = send_arg;
}

static void
upstream_server_reset(struct upstream_server *s, const struct in6_addr *addr,
    uint16_t port)
{
	memset(s, 0, sizeof(*s));
	s->addr = *addr;
	s->port = port;
	s->state = UPSTREAM_UNKNOWN;
}

/* The slot of old server (addr, port) not yet taken, or NO_SERVER. */
static unsigned int
upstream_find_old(const struct upstream_server *old, size_t old_n,
    const bool *taken, const struct in6_addr *addr, uint16_t port)
{
	unsigned int i;

	for (i = 0; i < old_n; i++)
		if (!taken[i] && old[i].port == port &&
		    IN6_ARE_ADDR_EQUAL(&old[i].addr, addr))
			return i;
	return UPSTREAM_NO_SERVER;
}

/* A transaction's bitmap of servers tried, in the new numbering. */
static uint8_t
upstream_remap_tried(uint8_t tried, const uint8_t *map, size_t old_n)
{
	uint8_t out = 0;
	size_t i;

	for (i = 0; i < old_n; i++)
		if ((tried & (1u << i)) != 0 && map[i] != UPSTREAM_NO_SERVER)
			out |= (uint8_t)(1u << map[i]);
	return out;
}

/*
 * RFC 7488: a server is its address and port, not its place in the list.
 * One that stays keeps everything the engine knows of it - Epoch record
 * (§8.5), state, Client IP, probe timers, statistics - under its new
 * index, and its transactions follow it (their packets were encoded for
 * it and stay valid); only a server that is new starts afresh, and only
 * the transactions of one that is gone fail over or end.
 */
int
upstream_set_servers(struct upstream *u, const struct in6_addr *addrs,
    const uint16_t *ports, size_t n)
{
	struct upstream_server old[UPSTREAM_MAX_SERVERS];
	uint8_t map[UPSTREAM_MAX_SERVERS];
	bool taken[UPSTREAM_MAX_SERVERS] = { false };
	struct upstream_txn *t;
	size_t i, k, old_n = u->nservers;
	unsigned int from;
	bool changed = old_n != n;

	if (n > UPSTREAM_MAX_SERVERS || (n > 0 && (addrs == NULL ||
	    ports == NULL)))
		return -1;
	memcpy(old, u->srv, sizeof(old));
	memset(map, UPSTREAM_NO_SERVER, sizeof(map));
	for (i = 0; i < n; i++) {
		from = upstream_find_old(old, old_n, taken, &addrs[i],
		    ports[i]);
		if (from == UPSTREAM_NO_SERVER) {
			upstream_server_reset(&u->srv[i], &addrs[i], ports[i]);
			changed = true;
			continue;
		}
		taken[from] = true;
		map[from] = (uint8_t)i;
		u->srv[i] = old[from];
		if (from != i)
			changed = true;
	}
	for (i = n; i < UPSTREAM_MAX_SERVERS; i++)
		memset(&u->srv[i], 0, sizeof(u->srv[i]));
	u->nservers = n;
	if (!changed)
		return 0;
	/* transactions follow their server; those on a server that is gone
	   move on (or end) at the next tick */
	for (k = 0; k < u->n; k++) {
		t = u->heap[k];
		t->tried = upstream_remap_tried(t->tried, map, old_n);
		if (t->server >= old_n)
			continue;	/* none picked yet: the tick picks */
		if (map[t->server] != UPSTREAM_NO_SERVER) {
			t->server = map[t->server];
			continue;
		}
		/* no index of the old numbering may survive (an UNSUPP ending
		   would read another server's answer, a done() would name
		   another server) */
		t->server = UPSTREAM_NO_SERVER;
		if (t->pending != UPSTREAM_PENDING_REPLACED) {
			t->pending = UPSTREAM_PENDING_FAILOVER;
			t->due = 0;
		}
	}
	upstream_heap_rebuild(u);
	return 0;
}

size_t
upstream_server_count(const struct upstream *u)
{
	return u->nservers;
}

void
upstream_set_local(struct upstream *u, unsigned int i,
    const struct in6_addr *local)
{
	if (i >= u->nservers)
		return;
	u->srv[i].local_known = local != NULL;
	u->srv[i].probe_at = 0;		/* re-armed at the next tick */
	if (local != NULL)
		u->srv[i].local = *local;
	else
		memset(&u->srv[i].local, 0, sizeof(u->srv[i].local));
}

void
upstream_server_info(const struct upstream *u, unsigned int i,
    struct upstream_server_info *info)
{
	const struct upstream_server *s;

	memset(info, 0, sizeof(*info));
	if (i >= u->nservers)
		return;
	s = &u->srv[i];
	info->addr = s->addr;
	info->port = s->port;
	info->local_known = s->local_known;
	info->local = s->local;
	info->state = s->state;
	info->epoch_known = s->epoch_known;
	info->epoch = s->prev_server_epoch;
	memcpy(info->last_error, s->last_error, sizeof(info->last_error));
	info->replies = s->replies;
	info->timeouts = s->timeouts;
	info->probes = s->probes;
	info->probe_misses = s->probe_misses;
}
