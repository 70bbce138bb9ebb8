/*
 * natpmp.c - the NAT-PMP front-end and its interworking with PCP upstream
 * (RFC 6886; spec/iwf.md §1, §2; the behaviour choices are explained in
 * docs/natpmp.md).
 *
 *   op 0     the outermost external address the proxy learned (N-10: 3
 *            and 0.0.0.0 while none is known; the daemon's address probe,
 *            addr_probe.c, learns one, and requests arriving meanwhile
 *            wait for it);
 *   op 1/2   a struct map_req down the one proxy path (policy, table,
 *            upstream MAP, local rule); lifetime 0 deletes; internal
 *            port 0 with lifetime 0 deletes all of the host's NAT-PMP
 *            mappings of that protocol (§3.4);
 *   other    §3.5: responses dropped, unknown opcodes echoed with 5.
 *
 * Every map request carries the same synthesized nonce for the same
 * (host, protocol, internal port), so refreshes, retransmissions and
 * deletes reach the same upstream mapping, and the proxy joins a request
 * to the transaction already under way (N-09). A client's retransmission
 * of a request still waiting here joins its record and is answered once
 * with it; a host has at most NATPMP_MAX_PENDING_HOST records.
 *
 * Nothing here calls into the proxy from one of the proxy's callbacks
 * (the core may be in the middle of a change).
 */
#include <sys/queue.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "addr_probe.h"
#include "log.h"
#include "map.h"
#include "map_err.h"
#include "natpmp.h"
#include "natpmp_wire.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "ratelimit.h"
#include "table.h"

/* A map request waiting for the core. */
struct natpmp_pending {
	TAILQ_ENTRY(natpmp_pending) entry;
	struct natpmp		*n;
	struct pcp_frontend_peer peer;
	uint8_t			 opcode;
	struct map_req		 req;
};
TAILQ_HEAD(natpmp_pending_list, natpmp_pending);

/* An address request waiting for the probe (one per client socket). */
struct natpmp_addr_wait {
	TAILQ_ENTRY(natpmp_addr_wait) entry;
	struct pcp_frontend_peer peer;
};
TAILQ_HEAD(natpmp_addr_list, natpmp_addr_wait);

struct natpmp {
	struct natpmp_params	 p;
	struct natpmp_pending_list pending;
	struct natpmp_addr_list	 addr_wait;
	struct natpmp_stats	 stats;
	/* announcements (§3.2.1) */
	bool			 ann_active;
	unsigned int		 ann_sent;
	uint32_t		 ann_gap_ms;
	uint64_t		 ann_next_at;
	bool			 ann_known;	/* ann_addr was announced */
	struct in6_addr		 ann_addr;
};

/* Address requests wait for the probe as long as map requests wait for
   the carrier (docs/natpmp.md). */
_Static_assert(ADDR_PROBE_WAIT_MS == NATPMP_CLIENT_WAIT_MS,
    "op 0 waits for the address probe like a map request");

static void	natpmp_addr_check(struct natpmp *);

static uint64_t
natpmp_now(const struct natpmp *n)
{
	return n->p.now(n->p.clock_arg);
}

static uint32_t
natpmp_epoch(const struct natpmp *n)
{
	return n->p.epoch(n->p.clock_arg);
}

/* The outermost external address, if it is a known IPv4 address. */
static bool
natpmp_ext_addr(const struct natpmp *n, struct in6_addr *addr)
{
	return proxy_external_addr(n->p.proxy, addr) && pcp_addr_is_v4(addr);
}

static void
natpmp_send(struct natpmp *n, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	if (len == 0) {
		log_warnx("natpmp: cannot build a reply");
		return;
	}
	if (n->p.send(n->p.io_arg, peer, buf, len))
		n->stats.replied++;
}

/* ---- answers ------------------------------------------------------------ */

static void
natpmp_reply_addr(struct natpmp *n, const struct pcp_frontend_peer *peer)
{
	struct natpmp_response r;
	struct in6_addr a;
	uint8_t buf[NATPMP_ADDR_RESP_SIZE];

	memset(&r, 0, sizeof(r));
	r.opcode = NATPMP_OP_ADDRESS;
	r.epoch = natpmp_epoch(n);
	if (natpmp_ext_addr(n, &a)) {
		r.result = map_err_row(MAP_OK)->natpmp_result;
		pcp_addr_to_v4(&a, &r.ext_addr);
	} else {
		/* N-10: no address known: 3, address 0 (RFC 6886 §3.2);
		   never the gateway's own private WAN address. */
		r.result = map_err_row(MAP_ERR_NETWORK_FAILURE)->natpmp_result;
	}
	natpmp_send(n, peer, buf, natpmp_encode_response(&r, buf, sizeof(buf)));
}

/*
 * A map response (§3.3-3.5): the internal port copied; on success the
 * outermost external port and the granted lifetime; a delete, or any
 * failure, has external port and lifetime 0.
 */
static void
natpmp_reply_map(struct natpmp *n, const struct pcp_frontend_peer *peer,
    uint8_t opcode, uint16_t internal_port, bool del,
    const struct map_result *res)
{
	struct natpmp_response r;
	uint8_t buf[NATPMP_MAP_RESP_SIZE];

	memset(&r, 0, sizeof(r));
	r.opcode = opcode;
	r.epoch = natpmp_epoch(n);
	/*
	 * A create answered "not found": its mapping was deleted while it
	 * waited (a delete, a delete-all, the control socket). RFC 6886
	 * §3.5's 0 would read as a grant of port 0: the mapping did not come
	 * through, say 3 (port and lifetime 0, as for every failure).
	 */
	if (res->err == MAP_ERR_NOT_FOUND && !del)
		r.result = map_err_row(MAP_ERR_NETWORK_FAILURE)->natpmp_result;
	else
		r.result = map_err_row(res->err)->natpmp_result;
	r.internal_port = internal_port;
	if (res->err == MAP_OK && !del) {
		r.ext_port = res->ext_port;
		r.lifetime = res->lifetime;
	}
	natpmp_send(n, peer, buf, natpmp_encode_response(&r, buf, sizeof(buf)));
}

static void
natpmp_reply_err(struct natpmp *n, const struct pcp_frontend_peer *peer,
    uint8_t opcode, uint16_t internal_port, enum map_err err)
{
	struct map_result res;

	memset(&res, 0, sizeof(res));
	res.err = err;
	res.upstream_result = -1;
	natpmp_reply_map(n, peer, opcode, internal_port, false, &res);
}

/* ---- map requests -------------------------------------------------------- */

static uint8_t
natpmp_proto(uint8_t opcode)
{
	return opcode == NATPMP_OP_MAP_UDP ? MAP_PROTO_UDP : MAP_PROTO_TCP;
}

/*
 * spec/iwf.md §2: protocol 17/6, internal = requester = the source
 * (§3.3: "The source address of the packet MUST be used"), no
 * PREFER_FAILURE (NAT-PMP takes any port, N-05), a suggestion of 0 made
 * the internal port as a hint, lifetime 0 a delete with suggestion 0.
 */
static void
natpmp_map_req(const struct natpmp *n, const struct in6_addr *src,
    uint16_t src_port, uint8_t proto, uint16_t internal_port,
    uint16_t suggested, uint32_t lifetime, struct map_req *req)
{
	struct in_addr any = { 0 };

	memset(req, 0, sizeof(*req));
	req->origin = MAP_ORIGIN_NATPMP;
	req->requester = *src;
	req->requester_port = src_port;
	req->internal_addr = *src;
	req->protocol = proto;
	req->internal_port = internal_port;
	req->lifetime = lifetime;
	pcp_addr_from_v4(&req->ext_addr, &any);
	req->wait_ms = NATPMP_CLIENT_WAIT_MS;
	if (lifetime == 0)
		req->flags |= MAP_F_DELETE;	/* §3.4: suggestion ignored */
	else
		req->ext_port = suggested != 0 ? suggested : internal_port;
	iwf_nonce(n->p.nonce_key, MAP_ORIGIN_NATPMP, src, proto,
	    internal_port, req->nonce);
}

static void
natpmp_pending_free(struct natpmp *n, struct natpmp_pending *pd)
{
	TAILQ_REMOVE(&n->pending, pd, entry);
	n->stats.pending--;
	free(pd);
}

/* proxy_done_fn: the core's later answer to a map request. */
static void
natpmp_done(void *arg, const struct map_req *req, const struct map_result *res)
{
	struct natpmp_pending *pd = arg;
	struct natpmp *n = pd->n;

	natpmp_reply_map(n, &pd->peer, pd->opcode, req->internal_port,
	    req->lifetime == 0, res);
	natpmp_pending_free(n, pd);
}

/*
 * The record of req's client socket for the same mapping request, if one
 * waits (RFC 6886 §3.1: the client retransmits the same request), and how
 * many records the host has.
 */
/* The same client socket, opcode, internal port and kind (map or delete):
   the host's requester address was compared by the caller. */
static bool
natpmp_pending_same(const struct natpmp_pending *pd, uint16_t src_port,
    uint8_t opcode, uint16_t internal_port, uint32_t lifetime)
{
	return pd->req.requester_port == src_port && pd->opcode == opcode &&
	    pd->req.internal_port == internal_port &&
	    (pd->req.lifetime == 0) == (lifetime == 0);
}

static struct natpmp_pending *
natpmp_pending_find(const struct natpmp *n, uint8_t opcode,
    const struct map_req *req, size_t *host_count)
{
	struct natpmp_pending *pd, *same = NULL;

	*host_count = 0;
	TAILQ_FOREACH(pd, &n->pending, entry) {
		if (!IN6_ARE_ADDR_EQUAL(&pd->req.requester, &req->requester))
			continue;
		(*host_count)++;
		if (natpmp_pending_same(pd, req->requester_port, opcode,
		    req->internal_port, req->lifetime))
			same = pd;
	}
	return same;
}

static void
natpmp_submit(struct natpmp *n, const struct pcp_frontend_peer *peer,
    uint8_t opcode, const struct map_req *req)
{
	struct natpmp_pending *pd;
	struct map_result res;
	size_t host_count;

	if (natpmp_pending_find(n, opcode, req, &host_count) != NULL) {
		/* its answer goes to this socket when the first's comes */
		n->stats.joined++;
		return;
	}
	/* a delete is answered at once (proxy.h), so it counts against no
	   host's share: a host at its limit can still free mappings */
	if (n->stats.pending >= NATPMP_MAX_PENDING ||
	    (req->lifetime != 0 && host_count >= NATPMP_MAX_PENDING_HOST) ||
	    (pd = calloc(1, sizeof(*pd))) == NULL) {
		n->stats.overload++;
		natpmp_reply_err(n, peer, opcode, req->internal_port,
		    MAP_ERR_NO_RESOURCES);
		return;
	}
	pd->n = n;
	pd->peer = *peer;
	pd->opcode = opcode;
	pd->req = *req;
	TAILQ_INSERT_TAIL(&n->pending, pd, entry);
	n->stats.pending++;
	n->stats.submitted++;
	memset(&res, 0, sizeof(res));
	if (proxy_submit(n->p.proxy, &pd->req, natpmp_now(n), natpmp_done, pd,
	    &res)) {
		natpmp_reply_map(n, &pd->peer, opcode, req->internal_port,
		    req->lifetime == 0, &res);
		natpmp_pending_free(n, pd);
	}
	natpmp_addr_check(n);
}

/*
 * §3.4: internal port 0, lifetime 0: delete all the host's mappings of
 * the opcode's protocol - those it made through NAT-PMP (spec/iwf.md
 * §1.5; a PCP or UPnP mapping has its own owner). Each goes down the
 * proxy path as a delete (local rule, table, upstream delete); the
 * answer says 0 when all went, else the first failure's code, and comes
 * after all are done (deletes are answered at once).
 */
static void
natpmp_delete_all(struct natpmp *n, const struct pcp_frontend_peer *peer,
    uint8_t opcode, const struct in6_addr *src, uint16_t src_port)
{
	uint8_t proto = natpmp_proto(opcode);
	enum map_err worst = MAP_OK;
	struct map_result res;
	struct map_req req;
	struct mapping *m, *next;
	size_t count = 0;

	for (m = table_host_first(n->p.table, src); m != NULL; m = next) {
		next = table_host_next(m);
		if (m->origin != MAP_ORIGIN_NATPMP || m->protocol != proto ||
		    !IN6_ARE_ADDR_EQUAL(&m->internal_addr, src))
			continue;
		natpmp_map_req(n, src, src_port, proto, m->internal_port, 0,
		    0, &req);
		memset(&res, 0, sizeof(res));
		/* no continuation: a delete is answered at once */
		if (proxy_submit(n->p.proxy, &req, natpmp_now(n), NULL, NULL,
		    &res) && res.err != MAP_OK && res.err != MAP_ERR_NOT_FOUND &&
		    worst == MAP_OK)
			worst = res.err;
		count++;
	}
	log_debug("natpmp: delete-all %s: %zu mapping(s), %s",
	    map_proto_name(proto), count, map_err_name(worst));
	memset(&res, 0, sizeof(res));
	res.err = worst;
	res.upstream_result = -1;
	natpmp_reply_map(n, peer, opcode, 0, true, &res);
}

static void
natpmp_map(struct natpmp *n, const struct pcp_frontend_peer *peer,
    const struct in6_addr *src, uint16_t src_port,
    const struct natpmp_request *wr)
{
	struct map_req req;

	if (wr->internal_port == 0) {
		if (wr->lifetime == 0)
			natpmp_delete_all(n, peer, wr->opcode, src, src_port);
		else	/* undefined in §3.3; miniupnpd and we refuse (2) */
			natpmp_reply_err(n, peer, wr->opcode, 0,
			    MAP_ERR_WILDCARD_INT_PORT);
		return;
	}
	natpmp_map_req(n, src, src_port, natpmp_proto(wr->opcode),
	    wr->internal_port, wr->ext_port, wr->lifetime, &req);
	natpmp_submit(n, peer, wr->opcode, &req);
}

/* ---- address requests and the probe (spec/iwf.md §2, RFC 6970 §4.2) ---- */

/* Answer every address request waiting for the probe. */
static void
natpmp_addr_wait_flush(struct natpmp *n)
{
	struct natpmp_addr_wait *w;

	while ((w = TAILQ_FIRST(&n->addr_wait)) != NULL) {
		TAILQ_REMOVE(&n->addr_wait, w, entry);
		n->stats.addr_waiting--;
		natpmp_reply_addr(n, &w->peer);
		free(w);
	}
}

/* addr_probe_fn: the probe ended, learned or not; the waiting clients
   get the answer it left (N-10: 3 and address 0 when none). */
static void
natpmp_probe_end(void *arg, bool known)
{
	struct natpmp *n = arg;

	(void)known;
	natpmp_addr_wait_flush(n);
	natpmp_addr_check(n);
}

/* The address is unknown and the probe's answer is on its way. */
static bool
natpmp_addr_pending(struct natpmp *n)
{
	struct in6_addr a;
	bool waiting;

	if (n->p.probe == NULL)
		return false;
	return !addr_probe_get(n->p.probe, &a, &waiting) && waiting;
}

static void
natpmp_addr(struct natpmp *n, const struct pcp_frontend_peer *peer)
{
	const struct sockaddr_in *sin =
	    (const struct sockaddr_in *)(const void *)&peer->src, *win;
	struct natpmp_addr_wait *w;
	size_t host_count = 0;

	if (!natpmp_addr_pending(n)) {
		natpmp_reply_addr(n, peer);
		return;
	}
	/* a retransmission joins the request already waiting; a host has
	   its share, as for map requests */
	TAILQ_FOREACH(w, &n->addr_wait, entry) {
		if (w->peer.src_len == peer->src_len &&
		    memcmp(&w->peer.src, &peer->src, peer->src_len) == 0)
			return;
		win = (const struct sockaddr_in *)(const void *)&w->peer.src;
		if (win->sin_addr.s_addr == sin->sin_addr.s_addr)
			host_count++;
	}
	if (n->stats.addr_waiting >= NATPMP_MAX_PENDING ||
	    host_count >= NATPMP_MAX_PENDING_HOST ||
	    (w = calloc(1, sizeof(*w))) == NULL) {
		natpmp_reply_addr(n, peer);
		return;
	}
	w->peer = *peer;
	TAILQ_INSERT_TAIL(&n->addr_wait, w, entry);
	n->stats.addr_waiting++;
}

/* ---- input --------------------------------------------------------------- */

/* Is the datagram a retransmission of a request that waits here (a map
   request for the core, an address request for the probe)? Those join
   the waiting one (natpmp_submit, natpmp_addr). Nothing to look at, and
   nothing parsed, while none waits. */
static bool
natpmp_waiting(const struct natpmp *n, const struct pcp_frontend_peer *peer,
    const struct in6_addr *src, uint16_t src_port, const uint8_t *pkt,
    size_t len)
{
	const struct natpmp_pending *pd;
	const struct natpmp_addr_wait *w;
	struct natpmp_request wr;

	if (n->stats.pending == 0 && n->stats.addr_waiting == 0)
		return false;
	if (natpmp_decode_request(pkt, len, &wr) != NATPMP_REQUEST)
		return false;
	if (wr.opcode == NATPMP_OP_ADDRESS) {
		TAILQ_FOREACH(w, &n->addr_wait, entry)
			if (w->peer.src_len == peer->src_len &&
			    memcmp(&w->peer.src, &peer->src,
			    peer->src_len) == 0)
				return true;
		return false;
	}
	TAILQ_FOREACH(pd, &n->pending, entry)
		if (IN6_ARE_ADDR_EQUAL(&pd->req.requester, src) &&
		    natpmp_pending_same(pd, src_port, wr.opcode,
		    wr.internal_port, wr.lifetime))
			return true;
	return false;
}

/*
 * Issue 8: one token of the host's rate limit per request, taken before
 * parsing; the PCP front-end's interface check came first, so only LAN
 * hosts spend tokens. Over the rate the request is dropped without an
 * answer (an answer would feed the flood; RFC 6886 §3.1: the client
 * retransmits). A retransmission of a request that waits costs nothing:
 * it joins the waiting one.
 */
static bool
natpmp_charge(struct natpmp *n, const struct pcp_frontend_peer *peer,
    const struct in6_addr *src, uint16_t src_port, const uint8_t *pkt,
    size_t len)
{
	if (natpmp_waiting(n, peer, src, src_port, pkt, len))
		return true;
	if (ratelimit_allow(n->p.ratelimit, src, natpmp_now(n)))
		return true;
	n->stats.rate_limited++;
	return false;
}

void
natpmp_input(void *arg, struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len)
{
	struct natpmp *n = arg;
	const struct sockaddr_in *sin;
	struct natpmp_request wr;
	struct in6_addr src;
	uint8_t buf[NATPMP_ECHO_MAX];

	(void)fe;
	n->stats.received++;
	/* RFC 6886 is IPv4 only. */
	if (peer->src.ss_family != AF_INET) {
		n->stats.dropped++;
		return;
	}
	sin = (const struct sockaddr_in *)(const void *)&peer->src;
	pcp_addr_from_v4(&src, &sin->sin_addr);
	if (!natpmp_charge(n, peer, &src, ntohs(sin->sin_port), pkt, len))
		return;
	switch (natpmp_decode_request(pkt, len, &wr)) {
	case NATPMP_DROP:
		n->stats.dropped++;
		return;
	case NATPMP_BAD_VERSION:
		natpmp_send(n, peer, buf, natpmp_encode_bad_version(wr.opcode,
		    natpmp_epoch(n), buf, sizeof(buf)));
		return;
	case NATPMP_BAD_OPCODE:
		natpmp_send(n, peer, buf, natpmp_encode_bad_opcode(pkt, len,
		    natpmp_epoch(n), buf, sizeof(buf)));
		return;
	case NATPMP_REQUEST:
		break;
	}
	if (wr.opcode == NATPMP_OP_ADDRESS)
		natpmp_addr(n, peer);
	else
		natpmp_map(n, peer, &src, ntohs(sin->sin_port), &wr);
}

/* ---- announcements (§3.2.1) ---------------------------------------------- */

void
natpmp_announce(struct natpmp *n)
{
	/* deferred to the tick: the caller may be inside the proxy, before
	   it stored the new address */
	n->ann_active = true;
	n->ann_sent = 0;
	n->ann_gap_ms = NATPMP_ANNOUNCE_FIRST_GAP_MS;
	n->ann_next_at = natpmp_now(n);
}

/* A newly learned or changed address is announced (§3.2.1: MUST on
   "acquisition of an external IPv4 address, subsequent change"). */
static void
natpmp_addr_check(struct natpmp *n)
{
	struct in6_addr a;

	if (!natpmp_ext_addr(n, &a) ||
	    (n->ann_known && IN6_ARE_ADDR_EQUAL(&a, &n->ann_addr)))
		return;
	n->ann_known = true;
	n->ann_addr = a;
	natpmp_announce(n);
}

static void
natpmp_announce_once(struct natpmp *n)
{
	struct natpmp_response r;
	struct in6_addr a;
	uint8_t buf[NATPMP_ADDR_RESP_SIZE];
	size_t len;

	if (!natpmp_ext_addr(n, &a)) {
		/* nothing to tell yet: the address check restarts it */
		n->ann_active = false;
		n->ann_known = false;
		return;
	}
	memset(&r, 0, sizeof(r));
	r.opcode = NATPMP_OP_ADDRESS;
	r.result = map_err_row(MAP_OK)->natpmp_result;
	r.epoch = natpmp_epoch(n);	/* MUST: current in each copy */
	pcp_addr_to_v4(&a, &r.ext_addr);
	n->ann_known = true;
	n->ann_addr = a;
	if ((len = natpmp_encode_response(&r, buf, sizeof(buf))) > 0)
		n->stats.announcements += n->p.multicast(n->p.io_arg, buf, len);
	n->ann_sent++;
	log_debug("natpmp: announcement %u/%u", n->ann_sent,
	    NATPMP_ANNOUNCE_COUNT);
}

void
natpmp_tick(struct natpmp *n, uint64_t now)
{
	natpmp_addr_check(n);
	while (n->ann_active && n->ann_next_at <= now) {
		natpmp_announce_once(n);
		if (!n->ann_active)
			break;
		if (n->ann_sent >= NATPMP_ANNOUNCE_COUNT) {
			n->ann_active = false;
			break;
		}
		n->ann_next_at = now + n->ann_gap_ms;
		n->ann_gap_ms *= 2;
	}
}

uint64_t
natpmp_next_deadline(const struct natpmp *n)
{
	struct in6_addr a;

	if (natpmp_ext_addr(n, &a) &&
	    (!n->ann_known || !IN6_ARE_ADDR_EQUAL(&a, &n->ann_addr)))
		return 0;
	return n->ann_active ? n->ann_next_at : UINT64_MAX;
}

void
natpmp_start(struct natpmp *n)
{
	if (n->p.probe != NULL)
		addr_probe_start(n->p.probe);
	natpmp_addr_check(n);
}

/* ---- life ------------------------------------------------------------------ */

struct natpmp *
natpmp_new(const struct natpmp_params *params)
{
	struct natpmp *n;

	if (params->proxy == NULL || params->table == NULL ||
	    params->epoch == NULL || params->now == NULL ||
	    params->send == NULL || params->multicast == NULL)
		return NULL;
	if ((n = calloc(1, sizeof(*n))) == NULL)
		return NULL;
	n->p = *params;
	TAILQ_INIT(&n->pending);
	TAILQ_INIT(&n->addr_wait);
	if (n->p.probe != NULL &&
	    addr_probe_listen(n->p.probe, natpmp_probe_end, n) == -1) {
		free(n);
		return NULL;
	}
	return n;
}

void
natpmp_free(struct natpmp *n)
{
	struct natpmp_pending *pd;
	struct natpmp_addr_wait *w;

	if (n == NULL)
		return;
	/* the core must not call back into freed records */
	while ((pd = TAILQ_FIRST(&n->pending)) != NULL) {
		proxy_cancel(n->p.proxy, pd);
		natpmp_pending_free(n, pd);
	}
	if (n->p.probe != NULL)
		addr_probe_unlisten(n->p.probe, natpmp_probe_end, n);
	while ((w = TAILQ_FIRST(&n->addr_wait)) != NULL) {
		TAILQ_REMOVE(&n->addr_wait, w, entry);
		free(w);
	}
	free(n);
}

const struct natpmp_stats *
natpmp_stats(const struct natpmp *n)
{
	return &n->stats;
}
