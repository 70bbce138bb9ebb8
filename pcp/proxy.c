/*
 * proxy.c - the proxy core: one path from a struct map_req to a
 * struct map_result for every front-end (DESIGN.md "Data flow").
 *
 * A mapping's life (STYLE.md habit 7; transitions through
 * mapping_set_state(), which logs old -> new):
 *
 *   REQUESTED -> PENDING_UPSTREAM -> GRANTED <-> RENEWING -> (removed)
 *
 * A mapping with work in flight (an upstream transaction, a backend change,
 * or both) carries a struct proxy_pending in owner_data; the front-ends'
 * clients wait on it as struct proxy_waiter entries. Local rule and upstream
 * mapping live and die together: the rule goes in only after the upstream
 * granted, and if the rule fails the upstream mapping is deleted again.
 */
#include <errno.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "log.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"
#include "upstream.h"

/*
 * The kernel keeps a local rule this much longer than the mapping: the
 * daemon removes rules itself when mappings expire; the element timeout is
 * only the safety net for a daemon that died (DESIGN.md "State").
 */
#define PROXY_RULE_GRACE_S	60
/* How long a delete keeps trying upstream (fire and forget). */
#define PROXY_DELETE_TRY_MS	45000
/* RFC 6887 §14.1.3: wait a uniform 0-5 s before re-creating. */
#define PROXY_RECREATE_JITTER_MS 5000
/*
 * Re-creation is paced (issue 7: "spread to avoid a burst"): a burst of
 * thousands of datagrams in one loop turn overflows the socket buffer
 * (tests/bench/bench_recreate) and comes back as one wave of
 * retransmissions. At most PROXY_RECREATE_BATCH requests start every
 * PROXY_RECREATE_GAP_MS, at most PROXY_RECREATE_WINDOW unanswered at once
 * (all servers together); one step looks at no more than
 * PROXY_RECREATE_SCAN mappings, so a loop turn stays short.
 */
#define PROXY_RECREATE_BATCH	128
#define PROXY_RECREATE_GAP_MS	20
#define PROXY_RECREATE_WINDOW	512
#define PROXY_RECREATE_SCAN	4096
/* A re-creation that met a transient error is tried again after this. */
#define PROXY_RECREATE_RETRY_MS	30000
/*
 * Client leases (map_req.lease, RFC 6970 §5.9): a lease that outlasts the
 * grant by more than this is renewed upstream halfway through each grant
 * (RFC 6887 §11.2.1: between 1/2 and 5/8 of the lifetime); less, and the
 * mapping just ends with its grant. A renewal that met a transient error
 * is tried again after at most PROXY_RENEW_RETRY_MS, while at least
 * PROXY_RENEW_RETRY_MIN_MS of the grant is left.
 */
#define PROXY_LEASE_SLACK_MS	2000
#define PROXY_RENEW_RETRY_MS	30000
#define PROXY_RENEW_RETRY_MIN_MS 2000

enum proxy_work {
	PROXY_WORK_CREATE = 0,	/* new mapping: upstream, then local rule */
	PROXY_WORK_REFRESH,	/* client refresh past the cache rule */
	PROXY_WORK_RECREATE,	/* upstream lost state: re-make it (§14) */
	PROXY_WORK_DELETE,	/* fire-and-forget delete upstream */
	PROXY_WORK_RENEW,	/* our own renewal of a client lease */
};

/*
 * Client waits differ by front-end (struct map_req wait_ms: NAT-PMP
 * clients wait longer than PCP's). Waiters of one wait are queued in one
 * FIFO, which is then in deadline order with O(1) inserts; proxy_tick()
 * looks at the heads only. More distinct waits than classes share the
 * last class, inserted in deadline order from its tail.
 */
#define PROXY_WAIT_CLASSES	4

struct proxy_fifo {
	struct proxy_waiter	*head, *tail;
	uint32_t		 wait_ms;	/* of its waiters, while any */
};

struct proxy_waiter {
	struct proxy_waiter	*next_fifo, *prev_fifo;	/* by deadline */
	struct proxy_fifo	*fifo;
	struct proxy_waiter	*next;		/* on its pending */
	struct proxy_pending	*pend;
	proxy_done_fn		 fn;
	void			*arg;
	uint64_t		 deadline;
	struct map_req		 req;
};

struct proxy_pending {
	struct upstream_txn	 txn;
	struct proxy		*proxy;
	struct proxy_pending	*next_all, *prev_all;	/* proxy->pendings */
	struct mapping		*m;		/* NULL for deletes */
	struct proxy_waiter	*waiters;
	enum proxy_work		 work;
	bool			 txn_active;
	bool			 backend_active;
	/* PROXY_WORK_REFRESH upstream: the client's request, taken into the
	   table only when the upstream granted it (S-03: an error changes
	   no state) */
	struct map_req		*refresh;
	/* what the backend change, once done, completes */
	uint32_t		 granted;
	struct map_result	 result;
};

struct proxy {
	struct proxy_params	 p;
	struct proxy_fifo	 fifo[PROXY_WAIT_CLASSES];
	struct in6_addr		 ext_addr;	/* outermost, learned */
	uint64_t		 recreate_at[UPSTREAM_MAX_SERVERS]; /* 0: none */
	/* a re-creation under way: its mappings carry MAPPING_M_RECREATE
	   and are started from the cursor on, a batch at a time */
	bool			 recreate_marked[UPSTREAM_MAX_SERVERS];
	size_t			 recreate_cursor[UPSTREAM_MAX_SERVERS];
	/* mappings looked at since the last mark was met: a whole table's
	   worth of them (over as many steps as it takes) ends the walk */
	size_t			 recreate_clean[UPSTREAM_MAX_SERVERS];
	size_t			 n_recreating;	/* RECREATE pendings */
	/* the next pass over re-creations that met a transient error
	   (MAPPING_M_RETRY); 0: none */
	uint64_t		 retry_at[UPSTREAM_MAX_SERVERS];
	uint64_t		 rng;
	bool			 ext_addr_known;
	size_t			 n_pending;
	/* Every pending, deletes included (they hang off no mapping), so
	   that proxy_free() can release them all. */
	struct proxy_pending	*pendings;
	/* The latest `now` handed in: backend completions run from
	   backend_commit() without one (test_proxy: backend failure). */
	uint64_t		 now;
};

static void	proxy_finish(struct proxy *, struct proxy_pending *,
		    const struct map_result *);
static struct backend_rule proxy_rule(const struct proxy *,
		    const struct mapping *, uint32_t);
static bool	proxy_has_rule(const struct proxy *, const struct mapping *);

static void
proxy_kick(struct proxy *p)
{
	if (p->p.kick != NULL)
		p->p.kick(p->p.cb_arg);
}

static bool
proxy_has_upstream(const struct proxy *p)
{
	return p->p.upstream != NULL && upstream_server_count(p->p.upstream) > 0;
}

struct proxy *
proxy_new(const struct proxy_params *params)
{
	struct proxy *p;

	if ((p = calloc(1, sizeof(*p))) == NULL)
		return NULL;
	p->p = *params;
	p->rng = params->random_seed;
	if (p->p.client_wait_ms == 0)
		p->p.client_wait_ms = PROXY_CLIENT_WAIT_MS;
	return p;
}

void
proxy_set_wan_addr(struct proxy *p, const struct in6_addr *addr)
{
	struct backend_rule r;
	struct mapping *m;
	size_t i;
	bool changed = p->p.wan_addr_known &&
	    !IN6_ARE_ADDR_EQUAL(&p->p.wan_addr, addr);

	p->p.wan_addr = *addr;
	p->p.wan_addr_known = true;
	if (!changed)
		return;
	/* The mappings the gateway holds alone name its WAN address as their
	   external one, and a PEER's SNAT rule translates to it: both move
	   with it (upstream mappings are re-created by the caller: their
	   server has to learn the new address). */
	for (i = 0; (m = table_at(p->p.table, i)) != NULL; i++) {
		if (m->upstream != UPSTREAM_NO_SERVER)
			continue;
		m->outer_addr = *addr;
		table_touch(p->p.table, m);	/* the journal keeps it */
		if (mapping_peer(m) != NULL && proxy_has_rule(p, m)) {
			r = proxy_rule(p, m, mapping_remaining(m, p->now));
			if (p->p.backend->ops->refresh(p->p.backend, &r, NULL,
			    NULL) == -1)
				log_warnx("proxy: cannot queue the new source "
				    "address of port %u", m->ext_port);
		}
	}
	proxy_kick(p);
}

bool
proxy_external_addr(const struct proxy *p, struct in6_addr *addr)
{
	if (proxy_has_upstream(p)) {
		if (!p->ext_addr_known)
			return false;
		*addr = p->ext_addr;
		return true;
	}
	if (!p->p.wan_addr_known)
		return false;
	*addr = p->p.wan_addr;
	return true;
}

/* ---- waiters ------------------------------------------------------------ */

static void
proxy_fifo_unlink(struct proxy *p, struct proxy_waiter *w)
{
	struct proxy_fifo *f = w->fifo;

	(void)p;
	if (f == NULL)
		return;
	if (w->prev_fifo != NULL)
		w->prev_fifo->next_fifo = w->next_fifo;
	else
		f->head = w->next_fifo;
	if (w->next_fifo != NULL)
		w->next_fifo->prev_fifo = w->prev_fifo;
	else
		f->tail = w->prev_fifo;
	w->next_fifo = w->prev_fifo = NULL;
	w->fifo = NULL;
}

/* The FIFO for a wait: the class of that wait, else a free class, else
   the last one (shared, kept in order by proxy_fifo_insert). */
static struct proxy_fifo *
proxy_fifo_for(struct proxy *p, uint32_t wait_ms)
{
	struct proxy_fifo *free_class = NULL;
	size_t i;

	for (i = 0; i < PROXY_WAIT_CLASSES; i++) {
		if (p->fifo[i].head == NULL) {
			if (free_class == NULL)
				free_class = &p->fifo[i];
		} else if (p->fifo[i].wait_ms == wait_ms)
			return &p->fifo[i];
	}
	if (free_class != NULL) {
		free_class->wait_ms = wait_ms;
		return free_class;
	}
	return &p->fifo[PROXY_WAIT_CLASSES - 1];
}

/* In deadline order from the tail: O(1) when the waits are equal. */
static void
proxy_fifo_insert(struct proxy_fifo *f, struct proxy_waiter *w)
{
	struct proxy_waiter *after = f->tail;

	while (after != NULL && after->deadline > w->deadline)
		after = after->prev_fifo;
	w->fifo = f;
	w->prev_fifo = after;
	w->next_fifo = after != NULL ? after->next_fifo : f->head;
	if (w->next_fifo != NULL)
		w->next_fifo->prev_fifo = w;
	else
		f->tail = w;
	if (after != NULL)
		after->next_fifo = w;
	else
		f->head = w;
}

/* The waiter whose deadline comes first, or NULL. */
static struct proxy_waiter *
proxy_fifo_first(const struct proxy *p)
{
	struct proxy_waiter *first = NULL;
	size_t i;

	for (i = 0; i < PROXY_WAIT_CLASSES; i++)
		if (p->fifo[i].head != NULL && (first == NULL ||
		    p->fifo[i].head->deadline < first->deadline))
			first = p->fifo[i].head;
	return first;
}

/* Take w off its pending's list. */
static void
proxy_waiter_detach(struct proxy_waiter *w)
{
	struct proxy_waiter **pp;

	if (w->pend == NULL)
		return;
	for (pp = &w->pend->waiters; *pp != NULL; pp = &(*pp)->next)
		if (*pp == w) {
			*pp = w->next;
			break;
		}
	w->pend = NULL;
}

/* The client waits req->wait_ms, or the proxy's client_wait_ms. */
static bool
proxy_wait(struct proxy *p, struct proxy_pending *pend,
    const struct map_req *req, uint64_t now, proxy_done_fn fn, void *arg)
{
	struct proxy_waiter *w;
	uint32_t wait_ms;

	if (fn == NULL)
		return true;
	if ((w = calloc(1, sizeof(*w))) == NULL)
		return false;
	wait_ms = req->wait_ms != 0 ? req->wait_ms : p->p.client_wait_ms;
	w->pend = pend;
	w->fn = fn;
	w->arg = arg;
	w->req = *req;
	w->deadline = now + wait_ms;
	w->next = pend->waiters;
	pend->waiters = w;
	proxy_fifo_insert(proxy_fifo_for(p, wait_ms), w);
	return true;
}

static void
proxy_answer(struct proxy *p, struct proxy_waiter *w,
    const struct map_result *res)
{
	proxy_fifo_unlink(p, w);
	proxy_waiter_detach(w);
	w->fn(w->arg, &w->req, res);
	free(w);
}

void
proxy_cancel(struct proxy *p, void *arg)
{
	struct proxy_waiter *w, *next;
	size_t i;

	for (i = 0; i < PROXY_WAIT_CLASSES; i++)
		for (w = p->fifo[i].head; w != NULL; w = next) {
			next = w->next_fifo;
			if (w->arg != arg)
				continue;
			proxy_fifo_unlink(p, w);
			proxy_waiter_detach(w);
			free(w);
		}
}

/* ---- results ------------------------------------------------------------ */

static void
proxy_result_err(struct map_result *res, enum map_err err)
{
	memset(res, 0, sizeof(*res));
	res->err = err;
	res->lifetime = map_err_pcp_lifetime(err);
	res->upstream_result = -1;
}

/* The outermost address and port, and the lifetime left (RFC 7648 §3). */
static void
proxy_result_mapping(struct map_result *res, const struct mapping *m,
    uint64_t now)
{
	memset(res, 0, sizeof(*res));
	res->err = MAP_OK;
	res->ext_addr = m->outer_addr;
	res->ext_port = m->outer_port;
	res->lifetime = mapping_remaining(m, now);
	res->upstream_result = -1;
}

/* ---- pending work ------------------------------------------------------- */

static struct proxy_pending *
proxy_pending_new(struct proxy *p, struct mapping *m, enum proxy_work work)
{
	struct proxy_pending *pend;

	if ((pend = calloc(1, sizeof(*pend))) == NULL)
		return NULL;
	pend->proxy = p;
	pend->m = m;
	pend->work = work;
	if (work == PROXY_WORK_RECREATE)
		p->n_recreating++;
	pend->txn.arg = pend;
	if (m != NULL)
		m->owner_data = pend;
	pend->next_all = p->pendings;
	if (p->pendings != NULL)
		p->pendings->prev_all = pend;
	p->pendings = pend;
	p->n_pending++;
	return pend;
}

static void
proxy_pending_free(struct proxy *p, struct proxy_pending *pend)
{
	if (pend->txn_active)
		upstream_cancel(p->p.upstream, &pend->txn);
	if (pend->m != NULL && pend->m->owner_data == pend)
		pend->m->owner_data = NULL;
	if (pend->prev_all != NULL)
		pend->prev_all->next_all = pend->next_all;
	else
		p->pendings = pend->next_all;
	if (pend->next_all != NULL)
		pend->next_all->prev_all = pend->prev_all;
	p->n_pending--;
	if (pend->work == PROXY_WORK_RECREATE)
		p->n_recreating--;
	free(pend->refresh);
	free(pend);
}

/* Undo a pending whose work could not start: its waiters are dropped
   unanswered (the caller answers through proxy_submit's result). */
static void
proxy_pending_abort(struct proxy *p, struct proxy_pending *pend)
{
	struct proxy_waiter *w;

	while ((w = pend->waiters) != NULL) {
		proxy_fifo_unlink(p, w);
		proxy_waiter_detach(w);
		free(w);
	}
	proxy_pending_free(p, pend);
}

/* Answer everybody waiting on pend with res. */
static void
proxy_answer_all(struct proxy *p, struct proxy_pending *pend,
    const struct map_result *res)
{
	while (pend->waiters != NULL)
		proxy_answer(p, pend->waiters, res);
}

static struct backend_rule
proxy_rule(const struct proxy *p, const struct mapping *m, uint32_t lifetime)
{
	const struct mapping_peer *peer = mapping_peer(m);
	struct backend_rule r;

	memset(&r, 0, sizeof(r));
	r.int_addr = m->internal_addr;
	r.int_port = m->internal_port;
	r.ext_port = m->ext_port;
	r.protocol = m->protocol;
	if (peer != NULL) {
		/* PEER: the flow to the remote peer leaves from the gateway's
		   WAN address and the port table_peer_port() chose. */
		r.kind = BACKEND_RULE_PEER_SNAT;
		r.peer_addr = peer->addr;
		r.peer_port = peer->port;
		r.ext_addr = p->p.wan_addr;
	}
	r.timeout = lifetime == TABLE_LIFETIME_INFINITE ? 0 :
	    lifetime + PROXY_RULE_GRACE_S;
	return r;
}

/* Does this proxy make local rules at all? */
static bool
proxy_local_rules(const struct proxy *p)
{
	return p->p.backend != NULL && p->p.nat == PROXY_NAT_LOCAL;
}

/* A local rule exists only for nat = local and mappings that were granted. */
static bool
proxy_has_rule(const struct proxy *p, const struct mapping *m)
{
	return proxy_local_rules(p) &&
	    (m->state == MAP_STATE_GRANTED || m->state == MAP_STATE_RENEWING);
}

/* ---- upstream requests -------------------------------------------------- */

/* Fill the upstream transaction for mapping m (RFC 7648 §3, P-06..P-09). */
static void
proxy_txn_fill(struct proxy *p, struct proxy_pending *pend,
    const struct mapping *m, const struct map_req *req, uint32_t lifetime,
    uint64_t now)
{
	struct upstream_txn *t = &pend->txn;
	const struct mapping_peer *peer = mapping_peer(m);
	const char *desc;
	bool prefer;

	memset(t, 0, offsetof(struct upstream_txn, next));
	t->arg = pend;
	t->opcode = PCP_OP_MAP;
	if (peer != NULL) {
		/* P-09: the remote peer is copied upstream (RFC 7648 §3). */
		t->opcode = PCP_OP_PEER;
		t->peer_addr = peer->addr;
		t->peer_port = peer->port;
	}
	memcpy(t->nonce, m->nonce, sizeof(t->nonce));
	t->protocol = m->protocol;
	t->lifetime = lifetime;
	if (p->p.nat == PROXY_NAT_LOCAL) {
		/* P-06: the upstream's internal port is the gateway's own
		   port; the request goes out from the gateway's WAN address. */
		t->internal_port = m->ext_port;
	} else {
		/* P-15: firewall case, THIRD_PARTY carries the host. */
		t->internal_port = m->internal_port;
		t->has_third_party = true;
		t->third_party = m->internal_addr;
	}
	/* P-07: the client's suggestion; a renewal suggests the last grant
	   (RFC 6887 §11.2). */
	if (m->state == MAP_STATE_GRANTED || m->state == MAP_STATE_RENEWING ||
	    pend->work == PROXY_WORK_RECREATE) {
		t->ext_port = m->outer_port;
		t->ext_addr = m->outer_addr;
	} else if (req != NULL) {
		t->ext_port = req->ext_port;
		t->ext_addr = req->ext_addr;
	}
	if (pcp_addr_is_any(&t->ext_addr) || IN6_IS_ADDR_UNSPECIFIED(&t->ext_addr)) {
		struct in_addr any = { 0 };

		/* RFC 6887 §5: IPv4 "any" is ::ffff:0:0. */
		pcp_addr_from_v4(&t->ext_addr, &any);
	}
	/* A refresh is not in the table before the upstream granted it
	   (proxy_refresh): its flags and description come from req. */
	if (req != NULL)
		prefer = (req->flags & MAP_F_PREFER_FAILURE) != 0;
	else
		prefer = (m->flags & MAPPING_F_PREFER_FAILURE) != 0;
	t->prefer_failure = prefer && lifetime != 0;
	desc = m->description;
	if (req != NULL && (req->flags & MAP_F_HAS_DESCRIPTION) != 0)
		desc = req->description;
	if (desc != NULL && lifetime != 0)	/* t is zeroed: terminated */
		memcpy(t->description, desc,
		    strnlen(desc, sizeof(t->description) - 1));
	t->server = m->upstream;
	t->deadline = now + PROXY_UPSTREAM_TRY_MS;
}

/* False only when the engine is out of memory: nothing was started. */
static bool
proxy_txn_start(struct proxy *p, struct proxy_pending *pend, uint64_t now)
{
	pend->txn_active = upstream_start(p->p.upstream, &pend->txn, now);
	if (!pend->txn_active)
		log_warnx("proxy: out of memory, upstream request not sent");
	return pend->txn_active;
}

/* The family of m's external address: the grant's once known, else the
   internal address's. */
static bool
proxy_addr_is_v6(const struct mapping *m)
{
	if (!IN6_IS_ADDR_UNSPECIFIED(&m->outer_addr))
		return !pcp_addr_is_v4(&m->outer_addr);
	return !pcp_addr_is_v4(&m->internal_addr);
}

/* Send the delete pend holds to server. */
static void
proxy_delete_start(struct proxy *p, struct proxy_pending *pend, bool v6,
    unsigned int server, uint64_t now)
{
	/* RFC 6887 §15 and erratum 3621: a delete suggests port 0 and the
	   all-zeros address of its family. (Fix, test_proxy test_delete:
	   the address of the last grant was sent.) */
	pend->txn.ext_port = 0;
	if (v6)
		memset(&pend->txn.ext_addr, 0, sizeof(pend->txn.ext_addr));
	else {
		struct in_addr any = { 0 };

		pcp_addr_from_v4(&pend->txn.ext_addr, &any);
	}
	pend->txn.server = (uint8_t)server;
	pend->txn.deadline = now + PROXY_DELETE_TRY_MS;
	if (!proxy_txn_start(p, pend, now))
		proxy_pending_free(p, pend);
}

/* Fire-and-forget delete of m upstream (P-04: always sent). */
static void
proxy_delete_upstream(struct proxy *p, const struct mapping *m, uint64_t now)
{
	struct proxy_pending *pend;

	if (!proxy_has_upstream(p) || m->upstream == UPSTREAM_NO_SERVER)
		return;
	/* RFC 6887 §12.1: PEER cannot delete (lifetime 0 is no delete); the
	   upstream mapping reverts to implicit behaviour when not renewed
	   (§12.3). Nothing to send. */
	if (mapping_peer(m) != NULL)
		return;
	if ((pend = proxy_pending_new(p, NULL, PROXY_WORK_DELETE)) == NULL) {
		log_warnx("proxy: out of memory, upstream delete not sent");
		return;
	}
	proxy_txn_fill(p, pend, m, NULL, 0, now);
	proxy_delete_start(p, pend, proxy_addr_is_v6(m), m->upstream, now);
}

/*
 * m was granted upstream in the form of the other nat mode (a reload
 * switched it while the request was in flight): delete what txn asked
 * for, in its form (P-04). PEER cannot be deleted (RFC 6887 §12.1).
 */
static void
proxy_delete_form(struct proxy *p, const struct mapping *m,
    const struct upstream_txn *txn, uint64_t now)
{
	struct proxy_pending *pend;

	if (txn->server == UPSTREAM_NO_SERVER || txn->opcode != PCP_OP_MAP)
		return;
	if ((pend = proxy_pending_new(p, NULL, PROXY_WORK_DELETE)) == NULL) {
		log_warnx("proxy: out of memory, upstream delete not sent");
		return;
	}
	memcpy(&pend->txn, txn, offsetof(struct upstream_txn, next));
	pend->txn.arg = pend;
	pend->txn.lifetime = 0;
	pend->txn.prefer_failure = false;
	pend->txn.description[0] = '\0';
	proxy_delete_start(p, pend, proxy_addr_is_v6(m), txn->server, now);
}

/* Was txn asked in the other mode's form (P-06: nat = local, the
   gateway's port; P-15: nat = none, THIRD_PARTY)? */
static bool
proxy_txn_stale(const struct proxy *p, const struct upstream_txn *txn)
{
	return txn->has_third_party != (p->p.nat != PROXY_NAT_LOCAL);
}

/* ---- removing ----------------------------------------------------------- */

/* Undo everything about m: rule, pending work, table entry. The caller
   has answered the waiters. */
static void
proxy_forget(struct proxy *p, struct mapping *m, uint64_t now)
{
	struct proxy_pending *pend = m->owner_data;
	struct backend_rule r;

	if (proxy_has_rule(p, m)) {
		r = proxy_rule(p, m, 0);
		if (p->p.backend->ops->remove(p->p.backend, &r, NULL, NULL) == -1)
			log_warnx("proxy: cannot queue the removal of local "
			    "port %u", m->ext_port);
	}
	if (pend != NULL) {
		pend->m = NULL;
		if (!pend->backend_active)
			proxy_pending_free(p, pend);
		/* else: the backend callback frees it */
	}
	m->owner_data = NULL;
	table_remove(p->p.table, m, now);
}

void
proxy_delete(struct proxy *p, struct mapping *m, uint64_t now)
{
	struct proxy_pending *pend = m->owner_data;
	struct map_result res;

	/* any change here is committed at the end of this loop turn */
	proxy_kick(p);

	p->now = now;
	if (pend != NULL) {
		proxy_result_err(&res, MAP_ERR_NOT_FOUND);
		proxy_answer_all(p, pend, &res);
		/* A create still pending upstream may already have been
		   granted there: delete it on the server the engine sent it
		   to (P-04; fix, test_proxy test_delete_while_pending: no
		   delete was sent, m->upstream is set only by the answer). */
		if (pend->txn_active && m->upstream == UPSTREAM_NO_SERVER)
			m->upstream = pend->txn.server;
	}
	if (m->state != MAP_STATE_REQUESTED)
		proxy_delete_upstream(p, m, now);
	proxy_forget(p, m, now);
}

static void
proxy_expired_cb(struct mapping *m, void *arg)
{
	struct proxy *p = arg;
	struct proxy_pending *pend = m->owner_data;
	struct backend_rule r;
	struct map_result res;

	log_info("mapping %s port %u -> %u expired",
	    map_proto_name(m->protocol) != NULL ?
	    map_proto_name(m->protocol) : "?", m->internal_port,
	    m->outer_port);
	if (pend != NULL) {
		proxy_result_err(&res, MAP_ERR_NETWORK_FAILURE);
		proxy_answer_all(p, pend, &res);
		pend->m = NULL;
		if (!pend->backend_active)
			proxy_pending_free(p, pend);
		m->owner_data = NULL;
	}
	/* m is EXPIRED already (table_expire), so proxy_has_rule() says no:
	   a mapping that was ever granted has its rule (fix, test_proxy
	   test_expiry / test_last_nat: rules were left to the kernel). */
	if (proxy_local_rules(p) && (m->flags & MAPPING_F_WAS_GRANTED) != 0) {
		r = proxy_rule(p, m, 0);
		(void)p->p.backend->ops->remove(p->p.backend, &r, NULL, NULL);
	}
	/* A client lease may end before the upstream grant does (a server
	   that grants no less than its minimum): the lease ended, so the
	   mapping goes upstream too (RFC 6970 §5.9). */
	if (m->lease_end != TABLE_LEASE_NONE &&
	    (m->flags & MAPPING_F_WAS_GRANTED) != 0)
		proxy_delete_upstream(p, m, p->now);
	/* table_expire() removes it after this callback. */
}

/* ---- the request path --------------------------------------------------- */

/* The mapping the gateway serves alone: its WAN address and local port. */
static void
proxy_grant_local(struct proxy *p, struct mapping *m)
{
	m->outer_addr = p->p.wan_addr;
	m->outer_port = m->ext_port;
	m->upstream = UPSTREAM_NO_SERVER;
}

/*
 * Install or re-arm the local rule for m and finish pend when the backend
 * has spoken; without a rule to install, finish now.
 */
static void
proxy_backend_done(void *arg, int error)
{
	struct proxy_pending *pend = arg;
	struct proxy *p = pend->proxy;
	struct mapping *m = pend->m;
	struct map_result res;

	pend->backend_active = false;
	if (m == NULL) {		/* deleted or expired meanwhile */
		if (!pend->txn_active)
			proxy_pending_free(p, pend);
		return;
	}
	if (error != 0) {
		log_warnx("proxy: local rule for port %u failed: %s; undoing "
		    "the mapping", m->ext_port, strerror(error));
		proxy_result_err(&res, MAP_ERR_INTERNAL);
		proxy_answer_all(p, pend, &res);
		/* p->now, not 0 (fix, test_proxy test_backend_failure: the
		   delete's deadline lay in the past, so the engine timed it
		   out at once and marked the server DOWN) */
		proxy_delete_upstream(p, m, p->now);
		/* the queued removal of a rule that is not there succeeds
		   (backend.h), so forgetting is the same as for any mapping */
		proxy_forget(p, m, p->now);
		return;
	}
	proxy_finish(p, pend, &pend->result);
}

/*
 * Fit m's timer to its client lease (RFC 6970 §5.9, I-07): a lease that
 * outlasts the grant makes m come due for our own renewal halfway through
 * the grant; a lease that ends first ends the mapping; without a lease
 * (PCP, NAT-PMP: the client renews) the grant alone counts.
 */
static void
proxy_schedule(struct proxy *p, struct mapping *m, uint64_t now)
{
	uint64_t lease = mapping_lease_end_ms(m);
	uint64_t end = (m->flags & MAPPING_F_RENEW) != 0 ? m->grant_end :
	    m->expiry;
	uint64_t half, renew_at;

	if (lease == 0 || end == TABLE_EXPIRY_NEVER) {
		if ((m->flags & MAPPING_F_RENEW) != 0)
			table_set_expiry(p->p.table, m, end);
		return;
	}
	if (lease != TABLE_EXPIRY_NEVER && lease <= end + PROXY_LEASE_SLACK_MS) {
		table_set_expiry(p->p.table, m, lease < end ? lease : end);
		return;
	}
	half = (uint64_t)m->lifetime * 1000 / 2;
	renew_at = end > now + half ? end - half : now;
	table_set_renewal(p->p.table, m, renew_at, end);
}

/* m is live for `granted` seconds from now. */
static void
proxy_set_granted(struct proxy *p, struct mapping *m, uint32_t granted,
    uint64_t now)
{
	m->lifetime = granted;
	table_set_expiry(p->p.table, m, granted == TABLE_LIFETIME_INFINITE ?
	    TABLE_EXPIRY_NEVER : now + (uint64_t)granted * 1000);
	(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
	proxy_schedule(p, m, now);
}

/* The upstream (or nobody) granted `granted` seconds: commit m. */
static void
proxy_granted(struct proxy *p, struct proxy_pending *pend, uint32_t granted,
    uint64_t now)
{
	struct mapping *m = pend->m;
	struct backend_rule r;
	bool had_rule = proxy_has_rule(p, m);
	int rc;

	proxy_set_granted(p, m, granted, now);
	proxy_result_mapping(&pend->result, m, now);
	if (p->p.backend == NULL || p->p.nat != PROXY_NAT_LOCAL) {
		proxy_finish(p, pend, &pend->result);
		return;
	}
	r = proxy_rule(p, m, granted);
	pend->backend_active = true;
	if (had_rule)
		rc = p->p.backend->ops->refresh(p->p.backend, &r,
		    proxy_backend_done, pend);
	else
		rc = p->p.backend->ops->add(p->p.backend, &r,
		    proxy_backend_done, pend);
	if (rc == -1) {
		pend->backend_active = false;
		proxy_backend_done(pend, ENOMEM);
	}
}

/* Work on m is complete: answer the waiters, release the pending. */
static void
proxy_finish(struct proxy *p, struct proxy_pending *pend,
    const struct map_result *res)
{
	struct map_result copy = *res;

	proxy_answer_all(p, pend, &copy);
	if (!pend->txn_active && !pend->backend_active)
		proxy_pending_free(p, pend);
}

/*
 * The gateway port of a new PEER flow. Without an upstream the gateway is
 * the outermost NAT: the suggestion names its own address and port and
 * must be met (RFC 6887 §12.1, PEER implies PREFER_FAILURE). With one,
 * the suggestion is the outermost's business and goes upstream (P-07).
 * A local SNAT rule needs the WAN address to translate to.
 */
static enum map_err
proxy_peer_port(struct proxy *p, const struct map_req *req, uint64_t now,
    uint16_t *port)
{
	bool exact = !proxy_has_upstream(p);

	if (proxy_local_rules(p) && !p->p.wan_addr_known)
		return MAP_ERR_NETWORK_FAILURE;
	if (exact && !pcp_addr_is_any(&req->ext_addr) &&
	    !IN6_IS_ADDR_UNSPECIFIED(&req->ext_addr) &&
	    (!p->p.wan_addr_known ||
	    !IN6_ARE_ADDR_EQUAL(&req->ext_addr, &p->p.wan_addr)))
		return MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
	return table_peer_port(p->p.table, req, exact, now, port);
}

/* A brand-new mapping (table verdict NEW). */
static bool
proxy_create(struct proxy *p, const struct map_req *req, uint32_t lifetime,
    uint64_t now, proxy_done_fn fn, void *arg, struct map_result *res)
{
	struct proxy_pending *pend;
	struct mapping *m;
	enum map_err err;
	uint16_t port;

	if ((err = (req->flags & MAP_F_PEER) != 0 ?
	    proxy_peer_port(p, req, now, &port) :
	    table_alloc_port(p->p.table, req, now, &port)) != MAP_OK ||
	    (m = table_add(p->p.table, req, port, lifetime, now, &err)) == NULL) {
		proxy_result_err(res, err);
		return true;
	}
	if (!proxy_has_upstream(p) && !proxy_local_rules(p)) {
		/* Nothing to wait for: answer now, as proxy.h promises
		   (fix, test_proxy test_last_nat_none: done was called from
		   inside proxy_submit, which then returned false). */
		proxy_grant_local(p, m);
		proxy_set_granted(p, m, lifetime, now);
		proxy_result_mapping(res, m, now);
		return true;
	}
	if ((pend = proxy_pending_new(p, m, PROXY_WORK_CREATE)) == NULL ||
	    !proxy_wait(p, pend, req, now, fn, arg)) {
		if (pend != NULL)
			proxy_pending_free(p, pend);
		table_remove(p->p.table, m, now);
		proxy_result_err(res, MAP_ERR_NO_RESOURCES);
		return true;
	}
	if (!proxy_has_upstream(p)) {
		proxy_grant_local(p, m);
		proxy_granted(p, pend, lifetime, now);
		return false;
	}
	/* P-03: a temporary mapping until the upstream confirms it. */
	m->upstream = UPSTREAM_NO_SERVER;
	(void)mapping_set_state(p->p.table, m, MAP_STATE_PENDING_UPSTREAM);
	table_set_expiry(p->p.table, m, now + PROXY_UPSTREAM_TRY_MS +
	    PROXY_RULE_GRACE_S * 1000);
	proxy_txn_fill(p, pend, m, req, lifetime, now);
	if (!proxy_txn_start(p, pend, now)) {
		proxy_pending_abort(p, pend);
		table_remove(p->p.table, m, now);
		proxy_result_err(res, MAP_ERR_NO_RESOURCES);
		return true;
	}
	return false;
}

/*
 * Take a client's refresh into the table: requester, flags, description,
 * requested lifetime. The granted lifetime and the expiry stay as they
 * are: proxy_set_granted() sets them.
 */
static int
proxy_apply_refresh(struct proxy *p, struct mapping *m,
    const struct map_req *req, uint64_t now)
{
	uint64_t expiry = m->expiry;

	if (table_refresh(p->p.table, m, req, m->lifetime, now) == -1)
		return -1;
	table_set_expiry(p->p.table, m, expiry);
	return 0;
}

/* An existing mapping of the same owner, past the cache rule. */
static bool
proxy_refresh(struct proxy *p, struct mapping *m, const struct map_req *req,
    uint32_t lifetime, uint64_t now, proxy_done_fn fn, void *arg,
    struct map_result *res)
{
	struct proxy_pending *pend;
	bool upstream = proxy_has_upstream(p) &&
	    m->upstream != UPSTREAM_NO_SERVER;

	if (!upstream && !proxy_local_rules(p)) {
		/* nothing to wait for (see proxy_create) */
		if (proxy_apply_refresh(p, m, req, now) == -1) {
			proxy_result_err(res, MAP_ERR_NO_RESOURCES);
			return true;
		}
		proxy_grant_local(p, m);
		proxy_set_granted(p, m, lifetime, now);
		proxy_result_mapping(res, m, now);
		return true;
	}
	if ((pend = proxy_pending_new(p, m, PROXY_WORK_REFRESH)) == NULL ||
	    !proxy_wait(p, pend, req, now, fn, arg)) {
		if (pend != NULL)
			proxy_pending_free(p, pend);
		proxy_result_err(res, MAP_ERR_NO_RESOURCES);
		return true;
	}
	if (!upstream) {
		if (proxy_apply_refresh(p, m, req, now) == -1) {
			proxy_pending_abort(p, pend);
			proxy_result_err(res, MAP_ERR_NO_RESOURCES);
			return true;
		}
		proxy_grant_local(p, m);
		proxy_granted(p, pend, lifetime, now);
		return false;
	}
	/* S-03: the table takes the refresh only once the upstream granted
	   it (proxy_upstream_done); until then, and after an error, the
	   mapping keeps its flags, description, requester and expiry (fix,
	   test_proxy test_refresh_error_changes_nothing) */
	if ((pend->refresh = malloc(sizeof(*pend->refresh))) == NULL) {
		proxy_pending_abort(p, pend);
		proxy_result_err(res, MAP_ERR_NO_RESOURCES);
		return true;
	}
	*pend->refresh = *req;
	(void)mapping_set_state(p->p.table, m, MAP_STATE_RENEWING);
	proxy_txn_fill(p, pend, m, req, lifetime, now);
	if (!proxy_txn_start(p, pend, now)) {
		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_abort(p, pend);
		proxy_result_err(res, MAP_ERR_NO_RESOURCES);
		return true;
	}
	return false;
}

/* A delete (lifetime 0): P-04, remove locally and always tell upstream;
   the client is answered at once (the local rule is gone with it). */
static bool
proxy_delete_req(struct proxy *p, struct mapping *m, uint64_t now,
    struct map_result *res)
{
	proxy_delete(p, m, now);
	memset(res, 0, sizeof(*res));
	res->err = MAP_OK;
	res->upstream_result = -1;
	return true;
}

/*
 * A PEER request (RFC 6887 §12.3; RFC 7648 §3 with the remote peer in the
 * key). Lifetime 0 neither deletes nor shortens (§12.1, §15): it asks for
 * the shortest lifetime, which policy turns into its minimum; a refresh
 * never grants less than the mapping has left, and one that asks for no
 * more than that is answered from the table.
 */
static bool
proxy_submit_peer(struct proxy *p, const struct map_req *req, uint64_t now,
    proxy_done_fn fn, void *arg, struct map_result *res)
{
	struct map_req q = *req;
	struct mapping *m = NULL;
	struct proxy_pending *pend;
	enum map_err err;
	uint32_t lifetime, left;

	q.flags &= ~(unsigned int)(MAP_F_DELETE | MAP_F_PREFER_FAILURE);
	if (q.lifetime == 0)
		q.lifetime = 1;
	if ((err = policy_check(p->p.policy, p->p.table, &q, &lifetime)) !=
	    MAP_OK) {
		proxy_result_err(res, err);
		return true;
	}
	switch (table_check(p->p.table, &q, &m)) {
	case TABLE_NEW:
		return proxy_create(p, &q, lifetime, now, fn, arg, res);
	case TABLE_NONCE_MISMATCH:
		/* §12.3: NOT_AUTHORIZED for the existing mapping's duration. */
		proxy_result_err(res, MAP_ERR_NOT_AUTHORIZED);
		res->lifetime = mapping_remaining(m, now);
		return true;
	case TABLE_REFRESH:
		break;
	default:
		proxy_result_err(res, MAP_ERR_INTERNAL);
		return true;
	}
	if ((pend = m->owner_data) != NULL) {
		if (!proxy_wait(p, pend, &q, now, fn, arg)) {
			proxy_result_err(res, MAP_ERR_NO_RESOURCES);
			return true;
		}
		return false;
	}
	left = mapping_remaining(m, now);
	if (m->state == MAP_STATE_GRANTED &&
	    (left >= lifetime || table_cache_hit(m, lifetime, now))) {
		proxy_result_mapping(res, m, now);
		return true;
	}
	if (left > lifetime)
		lifetime = left;
	return proxy_refresh(p, m, &q, lifetime, now, fn, arg, res);
}

static bool
proxy_submit_one(struct proxy *p, const struct map_req *req, uint64_t now,
    proxy_done_fn fn, void *arg, struct map_result *res)
{
	struct mapping *m = NULL;
	struct proxy_pending *pend;
	enum table_verdict v;
	enum map_err err;
	uint32_t lifetime;

	if ((req->flags & MAP_F_PEER) != 0)
		return proxy_submit_peer(p, req, now, fn, arg, res);
	if ((err = policy_check(p->p.policy, p->p.table, req, &lifetime)) !=
	    MAP_OK) {
		proxy_result_err(res, err);
		return true;
	}
	v = table_check(p->p.table, req, &m);
	switch (v) {
	case TABLE_NEW:
		return proxy_create(p, req, lifetime, now, fn, arg, res);
	case TABLE_DELETE:
		return proxy_delete_req(p, m, now, res);
	case TABLE_DELETE_MISSING:
		/* RFC 6887 §15: deleting nothing is a success. */
		proxy_result_err(res, MAP_ERR_NOT_FOUND);
		return true;
	case TABLE_NONCE_MISMATCH:
		/* §11.3 (S-08): lifetime = the mapping's remaining life. */
		proxy_result_err(res, MAP_ERR_NOT_AUTHORIZED);
		res->lifetime = mapping_remaining(m, now);
		return true;
	case TABLE_REFRESH:
		break;
	case TABLE_STATIC:
		proxy_result_mapping(res, m, now);
		res->lifetime = TABLE_LIFETIME_INFINITE;
		return true;
	default:
		proxy_result_err(res, table_verdict_err(v));
		return true;
	}
	/* A retransmission, or a refresh while work is in flight: join it.
	   A client lease it brings counts now: the work's grant is fitted
	   to it when it ends (proxy_schedule) (fix, review: a repeated
	   AddPortMapping with a longer lease during our own renewal kept
	   the old lease). */
	if ((pend = m->owner_data) != NULL) {
		if (req->lease != MAP_LEASE_NONE)
			table_set_lease(p->p.table, m, req->lease, now);
		if (!proxy_wait(p, pend, req, now, fn, arg)) {
			proxy_result_err(res, MAP_ERR_NO_RESOURCES);
			return true;
		}
		return false;
	}
	/* RFC 7648 §3 (P-01/P-02): at least 3/4 of the lifetime left. A
	   client with a lease of its own (UPnP) renews that lease here:
	   repeating AddPortMapping extends it. */
	if (table_cache_hit(m, lifetime, now)) {
		if (req->lease != MAP_LEASE_NONE && m->state ==
		    MAP_STATE_GRANTED) {
			table_set_lease(p->p.table, m, req->lease, now);
			proxy_schedule(p, m, now);
		}
		proxy_result_mapping(res, m, now);
		return true;
	}
	return proxy_refresh(p, m, req, lifetime, now, fn, arg, res);
}

bool
proxy_submit(struct proxy *p, const struct map_req *req, uint64_t now,
    proxy_done_fn fn, void *arg, struct map_result *res)
{
	bool answered;

	p->now = now;
	answered = proxy_submit_one(p, req, now, fn, arg, res);

	proxy_kick(p);
	return answered;
}

/* ---- upstream results --------------------------------------------------- */

/* RFC 6887 §5: :: and ::ffff:0.0.0.0 name no address. */
static bool
proxy_addr_unspecified(const struct in6_addr *a)
{
	return pcp_addr_is_any(a);
}

/* Remember the outermost address; its change restarts our epoch (§8.5).
   "No address" is never learned (fix, test_proxy test_delete_recreate:
   a delete's answer taught the proxy 0.0.0.0 and reset its epoch). */
static void
proxy_learn_ext_addr(struct proxy *p, const struct in6_addr *addr)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

	if (proxy_addr_unspecified(addr))
		return;
	if (p->ext_addr_known && IN6_ARE_ADDR_EQUAL(&p->ext_addr, addr))
		return;
	if (p->ext_addr_known)
		log_info("external address changed: %s -> %s",
		    pcp_addr_ntop(&p->ext_addr, a, sizeof(a)),
		    pcp_addr_ntop(addr, b, sizeof(b)));
	else
		log_info("external address is %s",
		    pcp_addr_ntop(addr, b, sizeof(b)));
	if (p->ext_addr_known && p->p.ext_addr_changed != NULL)
		p->p.ext_addr_changed(p->p.cb_arg, addr);
	p->ext_addr = *addr;
	p->ext_addr_known = true;
}

/* ---- our own renewals (client leases, RFC 6970 §5.9) ------------------- */

/* A renewal could not be made or met a transient error: try again while
   enough of the grant is left (m is due no more when this returns). */
static void
proxy_renew_later(struct proxy *p, struct mapping *m, uint64_t now)
{
	uint64_t end = (m->flags & MAPPING_F_RENEW) != 0 ? m->grant_end :
	    m->expiry, wait;

	if (end == TABLE_EXPIRY_NEVER || end <= now + PROXY_RENEW_RETRY_MIN_MS) {
		table_set_expiry(p->p.table, m, end);
		return;
	}
	wait = (end - now) / 2;
	if (wait > PROXY_RENEW_RETRY_MS)
		wait = PROXY_RENEW_RETRY_MS;
	table_set_renewal(p->p.table, m, now + wait, end);
}

/*
 * m came due (table_renewal_due): its client lease outlasts the grant, so
 * ask for more ourselves - upstream with the stored nonce, suggesting the
 * last grant (RFC 6887 §11.2), for what the client asked (bounded by the
 * policy), no longer than the lease has left. The
 * answer reaches no client (RFC 6970 §5.9); proxy_granted() re-arms the
 * local rule and the next renewal. m is due no more when this returns.
 */
static void
proxy_renew(struct proxy *p, struct mapping *m, uint64_t now)
{
	struct proxy_pending *pend;
	uint64_t end = m->grant_end;
	/* what the client asked, within our bounds (IGD:1 lease 0: the
	   maximum, as RFC 6970 §5.9 asks), no longer than its lease has left;
	   the server may grant less again */
	uint32_t ask = policy_clamp_lifetime(p->p.policy, m->requested_lifetime);
	uint32_t left;

	table_set_expiry(p->p.table, m, end);
	if (end <= now || m->owner_data != NULL ||
	    m->state != MAP_STATE_GRANTED)
		return;
	left = mapping_lease_remaining(m, now);
	if (left < ask)
		ask = left;
	if ((!proxy_has_upstream(p) || m->upstream == UPSTREAM_NO_SERVER) &&
	    !proxy_local_rules(p)) {
		proxy_set_granted(p, m, ask, now);
		return;
	}
	if ((pend = proxy_pending_new(p, m, PROXY_WORK_RENEW)) == NULL) {
		proxy_renew_later(p, m, now);
		return;
	}
	if (!proxy_has_upstream(p) || m->upstream == UPSTREAM_NO_SERVER) {
		proxy_grant_local(p, m);
		proxy_granted(p, pend, ask, now);
		return;
	}
	log_debug("proxy: renewing %s port %u upstream for its client's lease",
	    map_proto_name(m->protocol) != NULL ?
	    map_proto_name(m->protocol) : "?", m->ext_port);
	(void)mapping_set_state(p->p.table, m, MAP_STATE_RENEWING);
	proxy_txn_fill(p, pend, m, NULL, ask, now);
	if (!proxy_txn_start(p, pend, now)) {
		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_free(p, pend);
		proxy_renew_later(p, m, now);
	}
}

/* Upstream errors after which a later renewal may well succeed
   (spec/pcp.md §2.4): a refresh that meets one keeps the mapping. */
static bool
proxy_err_transient(enum map_err err)
{
	return err == MAP_ERR_NETWORK_FAILURE || err == MAP_ERR_NO_RESOURCES;
}

/* A refresh's request goes into the table now that it is granted. */
static void
proxy_take_refresh(struct proxy *p, struct proxy_pending *pend, uint64_t now)
{
	struct mapping *m = pend->m;

	if (pend->refresh == NULL)
		return;
	if (proxy_apply_refresh(p, m, pend->refresh, now) == -1)
		log_warnx("proxy: out of memory: the renewal of port %u keeps "
		    "the mapping's old details", m->ext_port);
	free(pend->refresh);
	pend->refresh = NULL;
}

/*
 * The last server went (a reload, the DHCP client) while the work on m
 * was in flight: discovery_rehome_each made m the gateway's own, which
 * is now the last NAT. A refresh or renewal is granted here, as
 * proxy_refresh and proxy_renew grant it without an upstream; a
 * re-creation has nothing left to re-make (fix, review: it ended
 * UNREACHABLE and took the mapping and its rule away).
 */
static void
proxy_upstream_gone(struct proxy *p, struct proxy_pending *pend,
    uint64_t now)
{
	struct mapping *m = pend->m;

	proxy_grant_local(p, m);
	if (pend->work == PROXY_WORK_RECREATE) {
		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_free(p, pend);
		return;
	}
	proxy_take_refresh(p, pend, now);
	proxy_granted(p, pend, pend->txn.lifetime, now);
}

/*
 * The upstream refused (or never answered) the work on m. Local rule and
 * upstream mapping live and die together (DESIGN.md): a create leaves
 * nothing behind; a re-create that failed in any way (RFC 6887 §14: the
 * server lost it) and a refresh refused for good take the mapping away
 * here too, rule and all (fix, test_proxy test_recreate_fails: the rule
 * stayed with no upstream mapping behind it). Only a refresh that met a
 * transient error keeps what it had until it expires. `may_exist`: the
 * server may hold something for m (no answer, or an answer we cannot
 * use), so it gets a delete (P-04) where the engine sent the request; so
 * does a refused refresh, whose old grant may still be there. Work that
 * failed because the last server went is the gateway's to finish
 * (proxy_upstream_gone).
 */
static void
proxy_upstream_failed(struct proxy *p, struct proxy_pending *pend,
    const struct map_result *res, bool may_exist, uint64_t now)
{
	struct mapping *m = pend->m;

	bool renewal = pend->work == PROXY_WORK_REFRESH ||
	    pend->work == PROXY_WORK_RENEW;

	if (pend->work != PROXY_WORK_CREATE && !proxy_has_upstream(p) &&
	    m->upstream == UPSTREAM_NO_SERVER) {
		proxy_upstream_gone(p, pend, now);
		return;
	}
	proxy_answer_all(p, pend, res);
	/* A re-creation that met no answer or a transient error (a server
	   busy re-making thousands of mappings, our address just changed):
	   the server may well take it later; keep the mapping and its rule
	   and try again (fix, faults.sh wan_change: a slow carrier made 157
	   of 200 re-creations time out and the mappings were removed). */
	if (pend->work == PROXY_WORK_RECREATE && proxy_err_transient(res->err) &&
	    m->upstream < UPSTREAM_MAX_SERVERS) {
		unsigned int server = m->upstream;

		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_free(p, pend);
		m->proxy_marks |= MAPPING_M_RETRY;
		if (p->retry_at[server] == 0)
			p->retry_at[server] = now + PROXY_RECREATE_RETRY_MS;
		return;
	}
	if (renewal && proxy_err_transient(res->err)) {
		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_free(p, pend);
		if (m->lease_end != TABLE_LEASE_NONE)
			proxy_renew_later(p, m, now);
		return;
	}
	if (pend->work != PROXY_WORK_CREATE)
		log_info("proxy: upstream %s of %s port %u failed (%s): "
		    "mapping removed", renewal ? "renewal" : "re-creation",
		    map_proto_name(m->protocol) != NULL ?
		    map_proto_name(m->protocol) : "?", m->ext_port,
		    map_err_name(res->err));
	if ((may_exist || renewal) && proxy_txn_stale(p, &pend->txn))
		/* asked in the other nat mode's form: deleted in it */
		proxy_delete_form(p, m, &pend->txn, now);
	else if (may_exist || renewal) {
		if (m->upstream == UPSTREAM_NO_SERVER)
			m->upstream = pend->txn.server;
		proxy_delete_upstream(p, m, now);
	}
	/* pend goes with m (txn_active is false) */
	proxy_forget(p, m, now);
}

/* RFC 6887 §11.4: a SUCCESS grants an address and a lifetime. One with
   lifetime 0 or no address answers no create or renewal (fix, test_proxy
   test_delete_recreate: a delete's answer was taken for a create's). */
static bool
proxy_grant_usable(const struct pcp_msg *resp)
{
	return resp->lifetime != 0 && !proxy_addr_unspecified(&resp->ext_addr);
}

void
proxy_upstream_done(struct proxy *p, void *txn_ptr, int outcome,
    const struct pcp_msg *resp, uint64_t now)
{
	struct upstream_txn *txn = txn_ptr;
	struct proxy_pending *pend = txn->arg;
	struct mapping *m = pend->m;
	struct map_result res;
	uint32_t granted;
	bool moved;

	/* any change here is committed at the end of this loop turn */
	proxy_kick(p);

	p->now = now;
	pend->txn_active = false;
	if (pend->work == PROXY_WORK_DELETE || m == NULL) {
		if (outcome == UPSTREAM_REPLY && resp->result != PCP_SUCCESS)
			log_debug("proxy: upstream answered the delete with %s",
			    pcp_result_name(resp->result));
		if (!pend->backend_active)
			proxy_pending_free(p, pend);
		return;
	}
	if (outcome != UPSTREAM_REPLY) {
		/* spec/pcp.md §2.4: unreachable -> NETWORK_FAILURE, short.
		   The server may have granted it and only the answer was
		   lost: P-04, the delete goes up (fix, test_proxy
		   test_silence_gives_up: none was sent). UPSTREAM_REPLACED
		   does not happen here: a mapping has one transaction. */
		proxy_result_err(&res, MAP_ERR_NETWORK_FAILURE);
		proxy_upstream_failed(p, pend, &res,
		    outcome != UPSTREAM_REPLACED, now);
		return;
	}
	/*
	 * DESCRIPTION is an optional option (RFC 7220 §3: a server that does
	 * not support it just leaves it out). A server that rejects a request
	 * for carrying it (miniupnpd before 2.3.11 mis-parses option padding)
	 * gets the request once more without it; the description stays ours.
	 */
	if ((resp->result == PCP_MALFORMED_OPTION ||
	    resp->result == PCP_UNSUPP_OPTION) && txn->description[0] != '\0') {
		log_debug("proxy: upstream refused the request with %s; trying "
		    "again without DESCRIPTION", pcp_result_name(resp->result));
		txn->description[0] = '\0';
		if (!proxy_txn_start(p, pend, now)) {
			proxy_result_err(&res, MAP_ERR_NO_RESOURCES);
			proxy_upstream_failed(p, pend, &res, false, now);
		}
		return;
	}
	if (resp->result != PCP_SUCCESS) {
		proxy_result_err(&res, map_err_from_pcp(resp->result));
		res.upstream_result = resp->result;
		/* no longer than the upstream's error lifetime */
		if (resp->lifetime < res.lifetime)
			res.lifetime = resp->lifetime;
		proxy_upstream_failed(p, pend, &res, false, now);
		return;
	}
	if (!proxy_grant_usable(resp)) {
		log_warnx("proxy: upstream answered port %u with SUCCESS, "
		    "lifetime %u and no usable grant", txn->internal_port,
		    resp->lifetime);
		proxy_result_err(&res, MAP_ERR_UPSTREAM_PROTOCOL);
		proxy_upstream_failed(p, pend, &res, true, now);
		return;
	}
	/* C-09: PREFER_FAILURE must get exactly what it suggested; what the
	   upstream made instead is deleted again (RFC 6887 §14.2: also when
	   a re-creation moved it) */
	if (txn->prefer_failure && (resp->ext_port != txn->ext_port ||
	    (!pcp_addr_is_any(&txn->ext_addr) &&
	    !IN6_ARE_ADDR_EQUAL(&resp->ext_addr, &txn->ext_addr)))) {
		m->upstream = txn->server;
		proxy_result_err(&res, MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
		proxy_upstream_failed(p, pend, &res, true, now);
		return;
	}
	proxy_take_refresh(p, pend, now);
	moved = (pend->work == PROXY_WORK_RECREATE ||
	    pend->work == PROXY_WORK_RENEW) &&
	    (m->outer_port != resp->ext_port ||
	    !IN6_ARE_ADDR_EQUAL(&m->outer_addr, &resp->ext_addr));
	m->upstream = txn->server;
	m->outer_addr = resp->ext_addr;
	m->outer_port = resp->ext_port;
	proxy_learn_ext_addr(p, &resp->ext_addr);
	if (moved) {
		log_info("proxy: %s port %u moved upstream to port %u",
		    map_proto_name(m->protocol) != NULL ?
		    map_proto_name(m->protocol) : "?", m->internal_port,
		    m->outer_port);
		if (p->p.mapping_moved != NULL)
			p->p.mapping_moved(p->p.cb_arg, m);
	}
	/* P-10: never more than the upstream granted. */
	granted = resp->lifetime < txn->lifetime ? resp->lifetime :
	    txn->lifetime;
	/* The nat mode changed while this was in flight (proxy_set_nat
	   leaves mappings with work in flight alone): the grant is in the
	   old form. The client has it; upstream it is deleted in that form
	   (P-04) and re-made in the new one (P-06, P-15), like the others
	   (fix, review: it stayed in the old form). Before proxy_granted,
	   which may free pend (and txn with it) or remove m. */
	if (proxy_txn_stale(p, txn)) {
		proxy_delete_form(p, m, txn, now);
		proxy_upstream_moved(p, m, now);
	}
	proxy_granted(p, pend, granted, now);
}

/* A small PRNG for timing jitter (not for anything secret). */
static uint32_t
proxy_random(struct proxy *p)
{
	uint64_t z = (p->rng += 0x9e3779b97f4a7c15ULL);

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return (uint32_t)((z ^ (z >> 31)) >> 32);
}

void
proxy_upstream_lost_state(struct proxy *p, unsigned int server, uint64_t now)
{
	/* any change here is committed at the end of this loop turn */
	proxy_kick(p);

	p->now = now;
	if (server >= UPSTREAM_MAX_SERVERS)
		return;
	/* RFC 6887 §14.1.3 (C-05): wait a uniform 0-5 s, then re-request
	   everything. A second report before the re-creation began changes
	   nothing; one while it runs (the server lost state again, or our
	   address changed) makes it start over: the mappings re-made so far
	   are marked again. */
	if (p->recreate_marked[server])
		p->recreate_marked[server] = false;
	else if (p->recreate_at[server] == 0)
		p->recreate_at[server] = now + 1 +
		    proxy_random(p) % PROXY_RECREATE_JITTER_MS;
	log_info("upstream server %u lost state: re-creating its mappings in "
	    "%llu ms", server,
	    (unsigned long long)(p->recreate_at[server] - now));
}

/* m may be re-created now: held by server, live, nothing in flight. */
static bool
proxy_recreate_wanted(const struct mapping *m, unsigned int server)
{
	return m->upstream == server && m->owner_data == NULL &&
	    m->state == MAP_STATE_GRANTED;
}

/* RFC 6887 §14 / P-12: re-create m with its nonce, suggesting its last
   external port. False when out of memory (m stays as it was). */
static bool
proxy_recreate_one(struct proxy *p, struct mapping *m, uint64_t now)
{
	struct proxy_pending *pend;

	if ((pend = proxy_pending_new(p, m, PROXY_WORK_RECREATE)) == NULL)
		return false;
	(void)mapping_set_state(p->p.table, m, MAP_STATE_RENEWING);
	proxy_txn_fill(p, pend, m, NULL, mapping_remaining(m, now), now);
	if (!proxy_txn_start(p, pend, now)) {
		(void)mapping_set_state(p->p.table, m, MAP_STATE_GRANTED);
		proxy_pending_free(p, pend);
		return false;
	}
	return true;
}

/*
 * One paced step of re-creating everything server held (the time came:
 * recreate_at). The first step marks the mappings; each step starts the
 * next batch from the cursor. Marks survive the table's reordering (a
 * removal moves the last mapping into its place), so the walk goes round
 * until a whole pass finds none left.
 */
static void
proxy_recreate(struct proxy *p, unsigned int server, uint64_t now)
{
	struct mapping *m;
	size_t count = table_count(p->p.table), scanned = 0, started = 0, n;

	if (!p->recreate_marked[server]) {
		for (n = 0; (m = table_at(p->p.table, n)) != NULL; n++)
			if (proxy_recreate_wanted(m, server)) {
				m->proxy_marks = (uint8_t)((m->proxy_marks &
				    ~MAPPING_M_RETRY) | MAPPING_M_RECREATE);
				started++;
			}
		log_info("upstream server %u: re-creating %zu mapping(s)",
		    server, started);
		p->recreate_marked[server] = true;
		p->recreate_cursor[server] = 0;
		p->recreate_clean[server] = 0;
		started = 0;
	}
	while (scanned < count && scanned < PROXY_RECREATE_SCAN &&
	    started < PROXY_RECREATE_BATCH &&
	    p->n_recreating < PROXY_RECREATE_WINDOW) {
		if (p->recreate_cursor[server] >= count)
			p->recreate_cursor[server] = 0;
		m = table_at(p->p.table, p->recreate_cursor[server]++);
		scanned++;
		if ((m->proxy_marks & MAPPING_M_RECREATE) == 0) {
			p->recreate_clean[server]++;
			continue;
		}
		if (m->upstream != server) {
			/* another server's mark: that server's walk takes
			   it; one for no server any more goes (fix, review:
			   a foreign mark kept this walk from ever ending) */
			if (m->upstream >= UPSTREAM_MAX_SERVERS)
				m->proxy_marks &=
				    (uint8_t)~MAPPING_M_RECREATE;
			p->recreate_clean[server]++;
			continue;
		}
		p->recreate_clean[server] = 0;
		m->proxy_marks &= (uint8_t)~MAPPING_M_RECREATE;
		/* a mapping with work in flight gets the new epoch's answer
		   from that work */
		if (!proxy_recreate_wanted(m, server))
			continue;
		if (!proxy_recreate_one(p, m, now)) {
			m->proxy_marks |= MAPPING_M_RECREATE; /* next step */
			break;
		}
		started++;
	}
	/* done when a whole table's worth of mappings in a row carried no
	   mark; else the next step goes on */
	if (p->recreate_clean[server] >= count) {
		p->recreate_at[server] = 0;
		p->recreate_marked[server] = false;
		return;
	}
	p->recreate_at[server] = now + PROXY_RECREATE_GAP_MS;
}

/*
 * The retry pass (retry_at): the re-creations of server that met a
 * transient error since the last pass go into the paced walk again,
 * joining one under way. A mapping that keeps failing is tried every
 * PROXY_RECREATE_RETRY_MS until its own lifetime ends; the walk never
 * waits for it.
 */
static void
proxy_recreate_retry(struct proxy *p, unsigned int server, uint64_t now)
{
	struct mapping *m;
	size_t i, n = 0;

	p->retry_at[server] = 0;
	for (i = 0; (m = table_at(p->p.table, i)) != NULL; i++) {
		if ((m->proxy_marks & MAPPING_M_RETRY) == 0 ||
		    m->upstream != server)
			continue;
		m->proxy_marks &= (uint8_t)~MAPPING_M_RETRY;
		if (!proxy_recreate_wanted(m, server))
			continue;
		m->proxy_marks |= MAPPING_M_RECREATE;
		n++;
	}
	if (n == 0)
		return;
	log_info("upstream server %u: trying %zu re-creation(s) again", server,
	    n);
	p->recreate_clean[server] = 0;
	if (p->recreate_at[server] == 0) {
		p->recreate_marked[server] = true;
		p->recreate_cursor[server] = 0;
		p->recreate_at[server] = now;
	}
}

/* The backend holds exactly the live mappings' rules (proxy.h). */
int
proxy_reconcile(struct proxy *p, uint64_t now, size_t *nrules)
{
	struct backend_rule *rules = NULL;
	struct mapping *m;
	size_t i, n = 0, count = table_count(p->p.table);
	int rc = 0;

	p->now = now;
	if (!proxy_local_rules(p)) {
		*nrules = 0;
		return 0;
	}
	if (count > 0 && (rules = calloc(count, sizeof(*rules))) == NULL) {
		log_warnx("proxy: out of memory: old rules stay");
		*nrules = 0;
		return -1;
	}
	/* never more rules than the count sized for */
	for (i = 0; i < count && (m = table_at(p->p.table, i)) != NULL; i++)
		if (proxy_has_rule(p, m))
			rules[n++] = proxy_rule(p, m, mapping_remaining(m, now));
	if (p->p.backend->ops->reconcile(p->p.backend, rules, n) == -1)
		rc = -1;
	free(rules);
	*nrules = n;
	return rc;
}

/*
 * The table was restored from the state file (DESIGN.md "State and
 * durability"): every mapping in it is GRANTED and nothing is pending.
 * The kernel's table is made to hold exactly their rules (a crash may have
 * left stale ones, and rules whose timeout ran out during the downtime are
 * put back), then every upstream mapping is refreshed with its stored
 * nonce (RFC 6887 §11.2, §14: the same nonce refreshes or re-creates it,
 * suggesting its last external port), like after an upstream's loss of
 * state, after the same 0-5 s jitter so that a neighbourhood of gateways
 * restarted by one power cut does not hit the server at once.
 */
int
proxy_restored(struct proxy *p, uint64_t now)
{
	struct mapping *m;
	bool server_used[UPSTREAM_MAX_SERVERS] = { false };
	size_t i, n, count = table_count(p->p.table);
	int rc;

	rc = proxy_reconcile(p, now, &n);
	for (i = 0; (m = table_at(p->p.table, i)) != NULL; i++) {
		/* client leases go on being kept alive (RFC 6970 §5.9) */
		proxy_schedule(p, m, now);
		/* the gateway's own mappings name its WAN address as it is
		   now: it may have changed while the daemon was down (fix,
		   review) */
		if (m->upstream == UPSTREAM_NO_SERVER && p->p.wan_addr_known &&
		    !IN6_ARE_ADDR_EQUAL(&m->outer_addr, &p->p.wan_addr)) {
			m->outer_addr = p->p.wan_addr;
			table_touch(p->p.table, m);
		}
		if (m->upstream >= UPSTREAM_MAX_SERVERS ||
		    !proxy_has_upstream(p))
			continue;
		/* the external address clients are told until the upstream
		   answers again (its answer tells of any change) */
		if (!p->ext_addr_known)
			proxy_learn_ext_addr(p, &m->outer_addr);
		server_used[m->upstream] = true;
	}
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		if (server_used[i] && p->recreate_at[i] == 0)
			p->recreate_at[i] = now + 1 +
			    proxy_random(p) % PROXY_RECREATE_JITTER_MS;
	log_info("restored %zu mapping(s), %zu local rule(s)", count, n);
	proxy_kick(p);
	return rc;
}

/*
 * The server list changed (a reload, the DHCP client): per-server
 * re-creation work follows its server to its new index (RFC 7488: a
 * mapping stays on the server that holds it, and so does the work on
 * it); a server that is gone takes its work with it.
 */
void
proxy_upstream_renumber(struct proxy *p, const uint8_t *map, size_t old_n)
{
	uint64_t recreate_at[UPSTREAM_MAX_SERVERS] = { 0 };
	uint64_t retry_at[UPSTREAM_MAX_SERVERS] = { 0 };
	bool marked[UPSTREAM_MAX_SERVERS] = { false };
	size_t cursor[UPSTREAM_MAX_SERVERS] = { 0 };
	size_t clean[UPSTREAM_MAX_SERVERS] = { 0 };
	size_t i, j;

	for (i = 0; i < old_n && i < UPSTREAM_MAX_SERVERS; i++) {
		if ((j = map[i]) >= UPSTREAM_MAX_SERVERS)
			continue;
		recreate_at[j] = p->recreate_at[i];
		retry_at[j] = p->retry_at[i];
		marked[j] = p->recreate_marked[i];
		cursor[j] = p->recreate_cursor[i];
		clean[j] = p->recreate_clean[i];
	}
	memcpy(p->recreate_at, recreate_at, sizeof(recreate_at));
	memcpy(p->retry_at, retry_at, sizeof(retry_at));
	memcpy(p->recreate_marked, marked, sizeof(marked));
	memcpy(p->recreate_cursor, cursor, sizeof(cursor));
	memcpy(p->recreate_clean, clean, sizeof(clean));
	proxy_kick(p);
}

void
proxy_upstream_moved(struct proxy *p, struct mapping *m, uint64_t now)
{
	unsigned int server = m->upstream;

	p->now = now;
	/* no server left: m is the gateway's own and names its WAN address
	   and port now; its client is told (RFC 6887 §8.5, through the
	   daemon's Epoch restart) */
	if (server == UPSTREAM_NO_SERVER && p->p.mapping_moved != NULL)
		p->p.mapping_moved(p->p.cb_arg, m);
	if (server >= UPSTREAM_MAX_SERVERS)
		return;
	/* a whole re-creation of server is scheduled: it takes m too */
	if (p->recreate_at[server] != 0 && !p->recreate_marked[server])
		return;
	m->proxy_marks |= MAPPING_M_RECREATE;
	p->recreate_clean[server] = 0;
	if (!p->recreate_marked[server]) {
		/* RFC 6887 §14.1.3 (C-05): the uniform 0-5 s wait first */
		p->recreate_marked[server] = true;
		p->recreate_cursor[server] = 0;
		p->recreate_at[server] = now + 1 +
		    proxy_random(p) % PROXY_RECREATE_JITTER_MS;
	}
	proxy_kick(p);
}

/*
 * The mode or the backend changed (a reload: nat, or the WAN interface
 * the backend's rules name). Mappings stay. With a new mode, what was
 * asked upstream in the old form (nat = local: the gateway's port from
 * its WAN address; nat = none: THIRD_PARTY and the client's port, P-06,
 * P-15) is deleted in that form (P-04), and every upstream mapping is
 * re-made in the new one after the RFC 6887 §14.1.3 wait, with its nonce
 * and suggesting its external port, paced like any re-creation. Toward
 * nat = local every live mapping gets its local rule (one backend batch,
 * at the commit); the old backend's rules are the caller's to remove.
 */
void
proxy_set_nat(struct proxy *p, enum proxy_nat nat, struct backend *backend,
    uint64_t now)
{
	bool renew = nat != p->p.nat && proxy_has_upstream(p);
	bool had_rules = proxy_local_rules(p);
	bool used[UPSTREAM_MAX_SERVERS] = { false };
	struct backend_rule r;
	struct mapping *m;
	size_t i;

	p->now = now;
	for (i = 0; renew && (m = table_at(p->p.table, i)) != NULL; i++) {
		if (m->upstream >= UPSTREAM_MAX_SERVERS ||
		    (m->flags & MAPPING_F_STATIC) != 0)
			continue;
		used[m->upstream] = true;
		if ((m->flags & MAPPING_F_WAS_GRANTED) != 0)
			proxy_delete_upstream(p, m, now);
	}
	p->p.nat = nat;
	p->p.backend = backend;
	for (i = 0; !had_rules && proxy_local_rules(p) &&
	    (m = table_at(p->p.table, i)) != NULL; i++) {
		if (!proxy_has_rule(p, m))
			continue;
		r = proxy_rule(p, m, mapping_remaining(m, now));
		if (backend->ops->add(backend, &r, NULL, NULL) == -1)
			log_warnx("proxy: cannot queue the local rule of port "
			    "%u", m->ext_port);
	}
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		if (used[i])
			proxy_upstream_lost_state(p, (unsigned int)i, now);
	proxy_kick(p);
}

/*
 * The PEER mapping a PEER Mapping Update names (RFC 6887 §14.2): by the
 * 5-tuple the upstream knows it by (§12.3), then its nonce. nat = none:
 * THIRD_PARTY and the internal port, the table's own key. nat = local:
 * the upstream's internal port is our gateway port, which no index keys
 * PEER mappings by, so a walk of the table; it is paid only for an
 * unsolicited PEER SUCCESS from a configured server, which a carrier
 * sends when it renumbers (the lab's miniupnpd never does).
 */
static struct mapping *
proxy_update_peer(const struct proxy *p, const struct pcp_msg *msg)
{
	const struct mapping_peer *peer;
	struct mapping *m;
	size_t i;

	if (p->p.nat != PROXY_NAT_LOCAL)
		return msg->has_third_party ? table_find_peer(p->p.table,
		    msg->protocol, &msg->third_party, msg->internal_port,
		    &msg->peer_addr, msg->peer_port) : NULL;
	for (i = 0; (m = table_at(p->p.table, i)) != NULL; i++)
		if ((peer = mapping_peer(m)) != NULL &&
		    m->protocol == msg->protocol &&
		    m->ext_port == msg->internal_port &&
		    peer->port == msg->peer_port &&
		    IN6_ARE_ADDR_EQUAL(&peer->addr, &msg->peer_addr) &&
		    memcmp(m->nonce, msg->nonce, sizeof(m->nonce)) == 0)
			return m;
	return NULL;
}

void
proxy_upstream_mapping_update(struct proxy *p, unsigned int server,
    const struct pcp_msg *msg, uint64_t now)
{
	struct mapping *m;

	/* any change here is committed at the end of this loop turn */
	proxy_kick(p);

	p->now = now;
	/* a late answer to a delete we no longer track is no update */
	if (msg->result != PCP_SUCCESS || !proxy_grant_usable(msg))
		return;
	if (msg->opcode == PCP_OP_PEER)
		m = proxy_update_peer(p, msg);
	else if (msg->opcode != PCP_OP_MAP)
		return;
	else if (p->p.nat == PROXY_NAT_LOCAL)
		m = table_find_external(p->p.table, msg->protocol,
		    msg->internal_port);
	else
		m = msg->has_third_party ? table_find_internal(p->p.table,
		    msg->protocol, &msg->third_party, msg->internal_port) :
		    NULL;
	if (m == NULL || m->upstream != server ||
	    memcmp(m->nonce, msg->nonce, sizeof(m->nonce)) != 0)
		return;
	/* §14.2: the server moved the mapping; follow it. A PEER's local
	   SNAT names our own port, which did not move. */
	m->outer_addr = msg->ext_addr;
	m->outer_port = msg->ext_port;
	proxy_learn_ext_addr(p, &msg->ext_addr);
	log_info("upstream moved %s mapping of port %u to external port %u",
	    mapping_peer(m) != NULL ? "PEER" : "MAP", m->ext_port,
	    m->outer_port);
}

/* ---- time --------------------------------------------------------------- */

void
proxy_tick(struct proxy *p, uint64_t now)
{
	struct proxy_waiter *w;
	struct map_result res;
	unsigned int i;

	/* any change here is committed at the end of this loop turn */
	proxy_kick(p);

	p->now = now;
	/* Clients that waited long enough get NETWORK_FAILURE; the work
	   goes on (spec/pcp.md §2.4). */
	while ((w = proxy_fifo_first(p)) != NULL && w->deadline <= now) {
		proxy_result_err(&res, MAP_ERR_NETWORK_FAILURE);
		proxy_answer(p, w, &res);
	}
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++) {
		if (p->retry_at[i] != 0 && p->retry_at[i] <= now)
			proxy_recreate_retry(p, i, now);
		if (p->recreate_at[i] != 0 && p->recreate_at[i] <= now)
			proxy_recreate(p, i, now);
	}
	/* Renewals first: table_expire() stops at a mapping due for one. */
	for (;;) {
		struct mapping *m;

		while ((m = table_renewal_due(p->p.table, now)) != NULL)
			proxy_renew(p, m, now);
		table_expire(p->p.table, now, proxy_expired_cb, p);
		if (table_renewal_due(p->p.table, now) == NULL)
			break;
	}
}

bool
proxy_recreating(const struct proxy *p)
{
	unsigned int i;

	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		if (p->recreate_at[i] != 0 || p->retry_at[i] != 0)
			return true;
	return false;
}

uint64_t
proxy_next_deadline(const struct proxy *p)
{
	uint64_t next = table_next_expiry(p->p.table);
	const struct proxy_waiter *w = proxy_fifo_first(p);
	unsigned int i;

	if (w != NULL && w->deadline < next)
		next = w->deadline;
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++) {
		if (p->recreate_at[i] != 0 && p->recreate_at[i] < next)
			next = p->recreate_at[i];
		if (p->retry_at[i] != 0 && p->retry_at[i] < next)
			next = p->retry_at[i];
	}
	return next;
}

void
proxy_commit(struct proxy *p, uint64_t now)
{
	/* the backend's callbacks run from here and use p->now */
	p->now = now;
	if (p->p.backend != NULL && p->p.backend->ops->pending(p->p.backend))
		p->p.backend->ops->commit(p->p.backend);
}

void
proxy_free(struct proxy *p)
{
	struct proxy_waiter *w;

	if (p == NULL)
		return;
	while ((w = proxy_fifo_first(p)) != NULL) {
		proxy_fifo_unlink(p, w);
		proxy_waiter_detach(w);
		free(w);
	}
	/*
	 * Apply what is queued, so that no backend callback can reach a
	 * pending freed below (close() would run them with ECANCELED); then
	 * free every pending, the upstream deletes included (fix, test_proxy
	 * under ASan: those hang off no mapping and leaked).
	 */
	proxy_commit(p, p->now);
	while (p->pendings != NULL)
		proxy_pending_free(p, p->pendings);
	free(p);
}
