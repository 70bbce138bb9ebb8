/*
 * test_proxy.c - scenario tests of the proxy core (RFC 7648) on a fake
 * clock (STYLE.md: Unbound's TIME_PASSES). The real pieces are wired the
 * way the daemon wires them: the mapping table, the policy (LAN
 * 192.0.2.0/24), the upstream PCP engine with a transport that records
 * what it sends, and the fake NAT backend. A scripted upstream server
 * decodes what was sent and answers with the codec; the engine's callbacks
 * are forwarded to the proxy as the glue does, and END_TURN() plays the end
 * of a loop turn: proxy_commit() when the proxy kicked.
 *
 * Spec IDs: spec/pcp.md §2.5 (P-xx), §1.6; spec/iwf.md N-09.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_fake.h"
#include "map.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define PX_MAX_DONE	1024
#define PX_EXT2		"203.0.113.2"
#define PX_HOST		"192.0.2.10"
#define PX_HOST2	"192.0.2.11"
#define PX_HOST3	"192.0.2.12"
#define PX_LIFETIME	3600u
#define PX_GRACE_S	60u		/* proxy.c: PROXY_RULE_GRACE_S */
#define PX_MS		1000u

struct px_done {
	const void	*arg;
	struct map_req	 req;
	struct map_result res;
	uint64_t	 at;
};

struct px {
	/* the table, policy, engine, backend, proxy and the scripted server;
	   what the proxy told the daemon (kicks, turns, ext_changes, nlost) */
	struct scn_world w;
	size_t		 ndone;
	struct px_done	 done[PX_MAX_DONE];
};

static struct px *x;
/* waiters' identities */
static int tag_a, tag_b, tag_c;

/* Fault injection: the engine's heap grows with reallocarray(), which
   this file interposes (test_upstream_out_of_memory). */
static bool px_fail_reallocarray;

void *
reallocarray(void *ptr, size_t nmemb, size_t size)
{
	if (px_fail_reallocarray ||
	    (size != 0 && nmemb > SIZE_MAX / size)) {
		errno = ENOMEM;
		return NULL;
	}
	return realloc(ptr, nmemb * size);
}

/* A front-end's continuation: record the answer. */
static void
px_done_cb(void *arg, const struct map_req *req, const struct map_result *res)
{
	struct px_done *d;

	assert_true(x->ndone < PX_MAX_DONE);
	d = &x->done[x->ndone++];
	d->arg = arg;
	d->req = *req;
	d->res = *res;
	d->at = x->w.now;
}

/* The end of a loop turn: the daemon commits when the proxy kicked. */
#define END_TURN()	scn_end_turn(&x->w)
/* Advance the clock by ms, running the engine's and the proxy's timers at
   their deadlines on the way, each followed by the end of its loop turn. */
#define TIME_PASSES(ms)	scn_time_passes(&x->w, (ms))

/* ---- setup ---- */

static int
px_setup(enum proxy_nat nat, bool upstream, bool backend)
{
	/* P-06 / C-01: the engine's Client IP is the gateway's WAN address */
	const struct scn_world_conf conf = {
		.nat = nat,
		.upstream = upstream,
		.backend_new = backend ? backend_fake_new : NULL,
	};

	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(scn_world_init(&x->w, &conf), 0);
	return 0;
}

static int
setup_local(void **state)
{
	(void)state;
	return px_setup(PROXY_NAT_LOCAL, true, true);
}

/* nat = none with a backend all the same: it must stay untouched. */
static int
setup_none(void **state)
{
	(void)state;
	return px_setup(PROXY_NAT_NONE, true, true);
}

/* No upstream: the gateway is the last NAT. */
static int
setup_last(void **state)
{
	(void)state;
	return px_setup(PROXY_NAT_LOCAL, false, true);
}

static int
setup_last_none(void **state)
{
	(void)state;
	return px_setup(PROXY_NAT_NONE, false, false);
}

static int
px_teardown(void **state)
{
	(void)state;
	px_fail_reallocarray = false;
	END_TURN();
	scn_world_free(&x->w);
	free(x);
	x = NULL;
	return 0;
}

/* ---- requests ---- */

static void
px_req(struct map_req *r, const char *host, uint8_t proto, uint16_t port,
    uint16_t suggested, uint32_t lifetime, uint8_t nonce)
{
	memset(r, 0, sizeof(*r));
	r->origin = MAP_ORIGIN_PCP;
	r->requester = scn_addr(host);
	r->requester_port = 50000;
	r->internal_addr = r->requester;
	r->protocol = proto;
	r->internal_port = port;
	r->ext_port = suggested;
	r->ext_addr = scn_addr("0.0.0.0");
	r->lifetime = lifetime;
	memset(r->nonce, nonce, sizeof(r->nonce));
}

/* proxy_submit as a front-end calls it; every submit kicks the loop. */
static bool
px_submit(const struct map_req *r, void *arg, struct map_result *res)
{
	unsigned int kicks = x->w.kicks;
	bool answered;

	memset(res, 0xa5, sizeof(*res));
	answered = proxy_submit(x->w.p, r, x->w.now, px_done_cb, arg, res);
	assert_true(x->w.kicks > kicks);
	return answered;
}

static struct mapping *
px_find(const char *host, uint8_t proto, uint16_t port)
{
	struct in6_addr a = scn_addr(host);

	return table_find_internal(x->w.t, proto, &a, port);
}

static const struct px_done *
px_last_done(void)
{
	assert_true(x->ndone > 0);
	return &x->done[x->ndone - 1];
}

static void
px_assert_addr(const struct in6_addr *a, const char *s)
{
	struct in6_addr b = scn_addr(s);

	assert_memory_equal(a, &b, sizeof(b));
}

/* ---- the scripted upstream server ---- */

/* Answer the i-th datagram sent, a MAP: a grant of ext_port for lifetime
   seconds on the server's current address, an error, or a delete's echo. */
static void
srv_answer(size_t i, uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	struct pcp_msg req;

	scn_decode_sent(&x->w, i, &req);
	assert_int_equal(req.opcode, PCP_OP_MAP);
	scn_answer(&x->w, i, result, lifetime, ext_port);
}

static void
srv_answer_last(uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	assert_true(x->w.wire.nsent > 0);
	srv_answer(x->w.wire.nsent - 1, result, lifetime, ext_port);
}

/* The request sent last must be a delete of mapping m (RFC 6887 §15,
   erratum 3621: lifetime 0, suggested port 0, same nonce). */
static void
px_assert_delete_sent(const uint8_t *nonce, uint16_t internal_port)
{
	struct pcp_msg m;

	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.lifetime, 0);
	assert_int_equal(m.ext_port, 0);
	assert_true(pcp_addr_is_any(&m.ext_addr));
	assert_false(m.prefer_failure);
	assert_memory_equal(m.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.internal_port, internal_port);
}

/* Create a mapping and let the server grant outer_port: the whole path,
   answered after the commit. Returns the table's mapping. */
static struct mapping *
px_grant(const char *host, uint8_t proto, uint16_t port, uint32_t lifetime,
    uint8_t nonce, uint16_t outer_port)
{
	struct map_req r;
	struct map_result res;
	size_t ndone = x->ndone;

	px_req(&r, host, proto, port, port, lifetime, nonce);
	assert_false(px_submit(&r, &tag_c, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, lifetime, outer_port);
	END_TURN();
	assert_int_equal(x->ndone, ndone + 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(px_last_done()->res.ext_port, outer_port);
	assert_non_null(px_find(host, proto, port));
	return px_find(host, proto, port);
}

/* ---- 1. nat = local create ---- */

/* P-03, P-06, P-07, P-09, P-10, P-13: a miss goes upstream for the
   gateway's own port from its WAN address; the local rule goes in after
   the grant; the client gets the outermost address and port. */
static void
test_local_create(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;
	struct mapping *mp;
	const struct backend_rule *rule;
	struct in6_addr ext;
	size_t nsent;

	(void)state;
	/* take local ports 9000 and 8080 so that the client's suggestion
	   (9000) and its internal port (8080) are both unavailable locally
	   and the three ports differ */
	(void)px_grant(PX_HOST2, MAP_PROTO_TCP, 9000, PX_LIFETIME, 2, 30001);
	(void)px_grant(PX_HOST3, MAP_PROTO_TCP, 8080, PX_LIFETIME, 3, 30002);
	nsent = x->w.wire.nsent;

	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 9000, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->ndone, 2);
	mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
	assert_non_null(mp);
	assert_int_equal(mp->state, MAP_STATE_PENDING_UPSTREAM);
	assert_int_not_equal(mp->ext_port, 8080);
	assert_int_not_equal(mp->ext_port, 9000);

	/* exactly one upstream MAP */
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_false(m.response);
	assert_int_equal(m.lifetime, PX_LIFETIME);
	px_assert_addr(&m.client_addr, SCN_WAN);		/* P-06 */
	assert_int_equal(m.internal_port, mp->ext_port);	/* P-06 */
	assert_int_equal(m.ext_port, 9000);			/* P-07 */
	assert_true(pcp_addr_is_any(&m.ext_addr));
	assert_memory_equal(m.nonce, r.nonce, PCP_NONCE_SIZE);	/* P-09 */
	assert_int_equal(m.protocol, MAP_PROTO_TCP);
	assert_false(m.has_third_party);
	assert_false(m.prefer_failure);
	assert_int_equal(backend_fake_queued(x->w.be), 0);

	/* P-10: the server grants less than asked; the rule is queued, the
	   client waits for the commit */
	srv_answer(nsent, PCP_SUCCESS, 3000, 40000);
	assert_int_equal(x->ndone, 2);
	assert_int_equal(backend_fake_queued(x->w.be), 1);
	assert_true(x->w.kicked);
	END_TURN();
	assert_int_equal(x->ndone, 3);
	assert_ptr_equal(px_last_done()->arg, &tag_a);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_EXT);	/* P-13 */
	assert_int_equal(px_last_done()->res.ext_port, 40000);
	assert_int_equal(px_last_done()->res.lifetime, 3000);

	/* the local DNAT: WAN port -> client, kept a grace longer */
	rule = backend_fake_lookup(x->w.be, MAP_PROTO_TCP, mp->ext_port);
	assert_non_null(rule);
	px_assert_addr(&rule->int_addr, PX_HOST);
	assert_int_equal(rule->int_port, 8080);
	assert_int_equal(rule->timeout, 3000 + PX_GRACE_S);
	assert_int_equal(backend_fake_rule_count(x->w.be), 3);

	mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	px_assert_addr(&mp->outer_addr, SCN_EXT);
	assert_int_equal(mp->outer_port, 40000);
	assert_int_equal(mp->lifetime, 3000);
	assert_int_equal(mp->upstream, 0);
	assert_true(proxy_external_addr(x->w.p, &ext));
	px_assert_addr(&ext, SCN_EXT);
	assert_int_equal(x->w.ext_changes, 0);	/* learned, not changed */
	assert_int_equal(upstream_in_flight(x->w.u), 0);
}

/* ---- 2. retransmissions join ---- */

/* N-09, spec/pcp.md §2.4: a client's retransmission joins the pending
   transaction; one upstream request, every copy answered. */
static void
test_retransmission_joins(void **state)
{
	struct map_req r;
	struct map_result res;
	const struct scn_sent *first, *second;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 4000, 4000, PX_LIFETIME, 7);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	TIME_PASSES(1000);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 1);
	assert_int_equal(table_count(x->w.t), 1);
	/* the engine's own retransmission (~3 s) is the same datagram */
	TIME_PASSES(2500);
	assert_int_equal(x->w.wire.nsent, 2);
	first = scn_sent_at(&x->w.wire, 0);
	second = scn_sent_at(&x->w.wire, 1);
	assert_int_equal(first->len, second->len);
	assert_memory_equal(first->pkt, second->pkt, first->len);

	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 44000);
	END_TURN();
	assert_int_equal(x->ndone, 2);
	assert_true((x->done[0].arg == &tag_a && x->done[1].arg == &tag_b) ||
	    (x->done[0].arg == &tag_b && x->done[1].arg == &tag_a));
	assert_int_equal(x->done[0].res.err, MAP_OK);
	assert_int_equal(x->done[1].res.err, MAP_OK);
	assert_int_equal(x->done[0].res.ext_port, 44000);
	assert_int_equal(x->done[1].res.ext_port, 44000);
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 1);
	assert_int_equal(x->w.wire.nsent, 2);
}

/* ---- 3. the cache rule and the renewal ---- */

/* P-01/P-02 (RFC 7648 §3) and RFC 6887 §11.2: answered locally while 3/4
   of the lifetime is left; then a renewal upstream with the same nonce
   suggesting the last grant, a backend refresh and a new expiry. */
static void
test_cache_hit_then_refresh(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;
	struct pcp_msg m;
	const struct backend_rule *rule;
	uint64_t expiry;
	size_t nsent;

	(void)state;
	mp = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
	nsent = x->w.wire.nsent;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);

	/* 600 s later: 3000 s left >= 2700 (3/4 of 3600): a cache hit */
	TIME_PASSES(600 * PX_MS);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_OK);
	px_assert_addr(&res.ext_addr, SCN_EXT);
	assert_int_equal(res.ext_port, 40000);
	assert_int_equal(res.lifetime, 3000);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_int_equal(x->ndone, 1);

	/* 2699 s left: below 3/4, P-02 sends it upstream */
	TIME_PASSES(301 * PX_MS);
	expiry = mp->expiry;
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &m);
	assert_memory_equal(m.nonce, mp->nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.internal_port, mp->ext_port);
	assert_int_equal(m.ext_port, 40000);	/* §11.2: the last grant */
	px_assert_addr(&m.ext_addr, SCN_EXT);
	assert_int_equal(m.lifetime, PX_LIFETIME);
	assert_int_equal(mp->state, MAP_STATE_RENEWING);
	/* nothing is extended before the upstream has granted it */
	assert_int_equal(mp->expiry, expiry);

	srv_answer(nsent, PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(x->ndone, 2);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(px_last_done()->res.lifetime, PX_LIFETIME);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_int_equal(mp->expiry, x->w.now + (uint64_t)PX_LIFETIME * PX_MS);
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 1);
	assert_int_equal(backend_fake_counters(x->w.be)->refreshes, 1);
	rule = backend_fake_lookup(x->w.be, MAP_PROTO_TCP, mp->ext_port);
	assert_non_null(rule);
	assert_int_equal(rule->timeout, PX_LIFETIME + PX_GRACE_S);
}

/* ---- 4. upstream errors ---- */

static void
px_upstream_error(uint8_t result, uint32_t err_lifetime, enum map_err want)
{
	struct map_req r;
	struct map_result res;
	size_t ndone = x->ndone;

	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	srv_answer_last(result, err_lifetime, 0);
	END_TURN();
	assert_int_equal(x->ndone, ndone + 1);
	assert_ptr_equal(px_last_done()->arg, &tag_a);
	assert_int_equal(px_last_done()->res.err, want);
	/* spec/pcp.md §2.4: the upstream code relayed, no longer than it */
	assert_int_equal(px_last_done()->res.upstream_result, result);
	assert_true(px_last_done()->res.lifetime <= err_lifetime);
	assert_true(px_last_done()->res.lifetime > 0);
	/* no half-made mapping */
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(backend_fake_queued(x->w.be), 0);
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 0);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
}

static void
test_upstream_errors(void **state)
{
	(void)state;
	px_upstream_error(PCP_NOT_AUTHORIZED, PCP_LIFETIME_LONG_ERR,
	    MAP_ERR_NOT_AUTHORIZED);
	px_upstream_error(PCP_NO_RESOURCES, 10, MAP_ERR_NO_RESOURCES);
	assert_int_equal(px_last_done()->res.lifetime, 10);
	/* the port is free again: the next try makes a mapping */
	(void)px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
}

/* ---- 5. upstream silence ---- */

static struct mapping *
px_silence_start(void)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;

	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	/* spec/pcp.md §2.4: the client gets NETWORK_FAILURE after the
	   client wait, with a short lifetime */
	TIME_PASSES(PROXY_CLIENT_WAIT_MS - 1);
	assert_int_equal(x->ndone, 0);
	TIME_PASSES(1);
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->at, SCN_T0 + PROXY_CLIENT_WAIT_MS);
	assert_int_equal(px_last_done()->res.err, MAP_ERR_NETWORK_FAILURE);
	assert_true(px_last_done()->res.lifetime <= PCP_LIFETIME_SHORT_ERR);
	/* P-03: the temporary mapping stays while the engine retries */
	mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
	assert_non_null(mp);
	assert_int_equal(mp->state, MAP_STATE_PENDING_UPSTREAM);
	assert_int_equal(x->w.wire.nsent, 2);	/* 0 s and ~3 s */
	assert_int_equal(upstream_in_flight(x->w.u), 1);
	return mp;
}

static void
test_silence_late_success(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;

	(void)state;
	mp = px_silence_start();
	TIME_PASSES(10 * PX_MS);
	/* a late answer before the engine gives up */
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(x->ndone, 1);		/* nobody waits any more */
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_int_equal(mp->outer_port, 40000);
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP,
	    mp->ext_port));
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	/* the client's retry is a cache hit */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_OK);
	assert_int_equal(res.ext_port, 40000);
}

static void
test_silence_gives_up(void **state)
{
	struct upstream_server_info info;
	uint8_t nonce[PCP_NONCE_SIZE];
	uint16_t local_port;
	size_t nsent;

	(void)state;
	local_port = px_silence_start()->ext_port;
	memset(nonce, 1, sizeof(nonce));
	nsent = x->w.wire.nsent;
	TIME_PASSES(PROXY_UPSTREAM_TRY_MS);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(x->ndone, 1);
	/* P-04: the server may have granted it and only the answers were
	   lost: a delete goes to the server the create went to, and ends
	   after its own tries (fix: no delete was sent) */
	assert_true(x->w.wire.nsent > nsent);
	px_assert_delete_sent(nonce, local_port);
	assert_int_equal(scn_last_sent(&x->w.wire)->server, 0);
	assert_int_equal(upstream_in_flight(x->w.u), 1);
	TIME_PASSES(60 * PX_MS);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	/* the backend never heard of it */
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 0);
	assert_int_equal(backend_fake_counters(x->w.be)->removes, 0);
	assert_int_equal(backend_fake_counters(x->w.be)->commits, 0);
	upstream_server_info(x->w.u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	assert_int_equal(proxy_next_deadline(x->w.p), TABLE_EXPIRY_NEVER);
}

/* ---- 6. the local rule fails ---- */

/* Local rule and upstream mapping live and die together (DESIGN.md step
   4): a failed rule deletes the upstream mapping again. */
static void
test_backend_failure(void **state)
{
	struct map_req r;
	struct map_result res;
	struct upstream_server_info info;
	uint16_t local_port;
	size_t nsent;

	(void)state;
	backend_fake_fail_adds(x->w.be, 1, EIO);
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	local_port = px_find(PX_HOST, MAP_PROTO_TCP, 8080)->ext_port;
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	nsent = x->w.wire.nsent;
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_ERR_INTERNAL);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	/* P-04: the upstream delete, same nonce, suggested port 0 */
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	px_assert_delete_sent(r.nonce, local_port);
	/* it keeps trying on the normal schedule, the server stays up */
	TIME_PASSES(1000);
	assert_int_equal(upstream_in_flight(x->w.u), 1);
	upstream_server_info(x->w.u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	srv_answer_last(PCP_SUCCESS, 0, 0);
	END_TURN();
	assert_int_equal(upstream_in_flight(x->w.u), 0);
}

/* ---- 7. deletes ---- */

/* P-04, §15: answered at once, rule removed at the commit, a delete
   upstream; deleting nothing is NOT_FOUND (success for PCP/NAT-PMP). */
static void
test_delete(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;
	uint16_t local_port;
	size_t nsent;

	(void)state;
	mp = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
	local_port = mp->ext_port;
	nsent = x->w.wire.nsent;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 0, 0, 1);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_OK);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);	/* queued */
	END_TURN();
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(backend_fake_counters(x->w.be)->removes, 1);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	px_assert_delete_sent(r.nonce, local_port);
	srv_answer_last(PCP_SUCCESS, 0, 0);
	END_TURN();
	assert_int_equal(upstream_in_flight(x->w.u), 0);

	/* again: nothing there */
	nsent = x->w.wire.nsent;
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_ERR_NOT_FOUND);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_int_equal(x->ndone, 1);
}

/* A delete while the create is still pending upstream: the server may
   have made the mapping already, so the delete goes up too (P-04). */
static void
test_delete_while_pending(void **state)
{
	struct map_req r, d;
	struct map_result res;
	uint16_t local_port;
	size_t nsent;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	local_port = px_find(PX_HOST, MAP_PROTO_TCP, 8080)->ext_port;
	nsent = x->w.wire.nsent;
	assert_int_equal(nsent, 1);

	px_req(&d, PX_HOST, MAP_PROTO_TCP, 8080, 0, 0, 1);
	assert_true(px_submit(&d, &tag_b, &res));
	assert_int_equal(res.err, MAP_OK);
	/* the create's waiter is told it did not happen */
	assert_int_equal(x->ndone, 1);
	assert_ptr_equal(px_last_done()->arg, &tag_a);
	assert_int_not_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(table_count(x->w.t), 0);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	px_assert_delete_sent(r.nonce, local_port);
	/* the create is cancelled */
	assert_int_equal(upstream_in_flight(x->w.u), 1);
	/* the server answers both, late: nothing comes back to life */
	srv_answer(nsent, PCP_SUCCESS, 0, 0);
	srv_answer(0, PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(x->ndone, 1);
}

/* ---- 8. nonce mismatch, PREFER_FAILURE ---- */

static void
test_nonce_and_prefer_failure(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;
	size_t nsent;

	(void)state;
	(void)px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
	TIME_PASSES(100 * PX_MS);
	nsent = x->w.wire.nsent;
	/* §11.3 (S-08): another nonce -> NOT_AUTHORIZED, lifetime = the
	   mapping's remaining life */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 9);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_ERR_NOT_AUTHORIZED);
	assert_int_equal(res.lifetime, PX_LIFETIME - 100);
	/* ... and its delete is refused the same way */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 0, 0, 9);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_ERR_NOT_AUTHORIZED);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_int_equal(table_count(x->w.t), 1);

	/* C-09: PREFER_FAILURE and the upstream grants another port */
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 7000, 7000, PX_LIFETIME, 5);
	r.flags |= MAP_F_PREFER_FAILURE;
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &m);
	assert_true(m.prefer_failure);
	assert_int_equal(m.ext_port, 7000);
	assert_int_equal(m.internal_port, 7000);
	srv_answer(nsent, PCP_SUCCESS, PX_LIFETIME, 7001);
	END_TURN();
	assert_int_equal(x->ndone, 2);
	assert_ptr_equal(px_last_done()->arg, &tag_b);
	assert_int_equal(px_last_done()->res.err,
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	/* ... and what the upstream made is deleted again */
	assert_int_equal(x->w.wire.nsent, nsent + 2);
	px_assert_delete_sent(r.nonce, 7000);
	assert_null(px_find(PX_HOST, MAP_PROTO_UDP, 7000));
	assert_int_equal(table_count(x->w.t), 1);
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 1);
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);
}

/* ---- 9, 10. the upstream lost state ---- */

/* Run the re-creation (RFC 6887 §14.1.3: after 0-5 s); returns the index
   of the first re-request; exactly n go out at once. */
static size_t
px_recreate(uint64_t lost_at, size_t n)
{
	uint64_t when = proxy_next_deadline(x->w.p);
	size_t nsent = x->w.wire.nsent;

	assert_true(when > lost_at);
	assert_true(when <= lost_at + 5000);
	TIME_PASSES(when - x->w.now);
	assert_int_equal(x->w.wire.nsent, nsent + n);
	return nsent;
}

/* The i-th re-request re-makes one of ms[] with its nonce, suggesting its
   outer port (P-12, §14); mark which. */
static struct mapping *
px_assert_recreate(size_t i, struct mapping **ms, size_t n)
{
	struct pcp_msg m;
	size_t k;

	scn_decode_sent(&x->w, i, &m);
	assert_true(m.lifetime > 0);
	for (k = 0; k < n; k++)
		if (memcmp(ms[k]->nonce, m.nonce, PCP_NONCE_SIZE) == 0)
			break;
	assert_true(k < n);
	assert_int_equal(m.internal_port, ms[k]->ext_port);
	assert_int_equal(m.ext_port, ms[k]->outer_port);
	assert_memory_equal(&m.ext_addr, &ms[k]->outer_addr,
	    sizeof(m.ext_addr));
	assert_int_equal(ms[k]->state, MAP_STATE_RENEWING);
	return ms[k];
}

static void
test_lost_state_recreates(void **state)
{
	struct mapping *ms[3];
	struct map_req r;
	struct map_result res;
	uint64_t lost_at;
	size_t i, first, nsent, refreshes;

	(void)state;
	ms[0] = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	ms[1] = px_grant(PX_HOST, MAP_PROTO_UDP, 8081, PX_LIFETIME, 2, 40081);
	ms[2] = px_grant(PX_HOST2, MAP_PROTO_TCP, 8082, PX_LIFETIME, 3,
	    40082);
	/* a client refresh below 3/4; the server restarted meanwhile and its
	   reply carries an epoch that went back (§8.5) */
	TIME_PASSES(1000 * PX_MS);
	scn_server_restart(&x->w);
	TIME_PASSES(2 * PX_MS);
	nsent = x->w.wire.nsent;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40080);
	lost_at = x->w.now;
	END_TURN();
	assert_int_equal(x->w.nlost, 1);
	assert_int_equal(x->ndone, 4);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	refreshes = backend_fake_counters(x->w.be)->refreshes;

	first = px_recreate(lost_at, 3);
	for (i = 0; i < 3; i++) {
		struct mapping *mp = px_assert_recreate(first + i, ms, 3);

		srv_answer(first + i, PCP_SUCCESS, PX_LIFETIME,
		    mp->outer_port);
	}
	END_TURN();
	for (i = 0; i < 3; i++) {
		assert_int_equal(ms[i]->state, MAP_STATE_GRANTED);
		px_assert_addr(&ms[i]->outer_addr, SCN_EXT);
		assert_int_equal(ms[i]->outer_port, 40080 + i);
		assert_non_null(backend_fake_lookup(x->w.be, ms[i]->protocol,
		    ms[i]->ext_port));
	}
	/* the clients were not disturbed; the rules were re-armed */
	assert_int_equal(x->ndone, 4);
	assert_int_equal(x->w.ext_changes, 0);
	assert_int_equal(backend_fake_counters(x->w.be)->refreshes,
	    refreshes + 3);
	assert_int_equal(backend_fake_rule_count(x->w.be), 3);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	assert_int_equal(x->w.nlost, 1);
}

/* P-21, RFC 6887 §8.5: an ANNOUNCE reveals the restart; the re-created
   mappings come back on another external address: the daemon hears of
   the change once. */
static void
test_ext_addr_change(void **state)
{
	struct mapping *ms[2];
	struct in6_addr ext;
	uint64_t lost_at;
	size_t i, first;

	(void)state;
	ms[0] = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	ms[1] = px_grant(PX_HOST2, MAP_PROTO_UDP, 8081, PX_LIFETIME, 2,
	    40081);
	TIME_PASSES(60 * PX_MS);
	scn_server_restart(&x->w);
	x->w.ext_addr = scn_addr(PX_EXT2);
	TIME_PASSES(1 * PX_MS);
	scn_announce(x->w.u, 0, scn_server_epoch(&x->w), x->w.now);
	lost_at = x->w.now;
	END_TURN();
	assert_int_equal(x->w.nlost, 1);
	first = px_recreate(lost_at, 2);
	for (i = 0; i < 2; i++) {
		struct mapping *mp = px_assert_recreate(first + i, ms, 2);

		srv_answer(first + i, PCP_SUCCESS, PX_LIFETIME,
		    mp->outer_port);
	}
	END_TURN();
	assert_int_equal(x->w.ext_changes, 1);
	px_assert_addr(&x->w.ext_changed_to, PX_EXT2);
	assert_true(proxy_external_addr(x->w.p, &ext));
	px_assert_addr(&ext, PX_EXT2);
	for (i = 0; i < 2; i++) {
		assert_int_equal(ms[i]->state, MAP_STATE_GRANTED);
		px_assert_addr(&ms[i]->outer_addr, PX_EXT2);
	}
	assert_int_equal(x->ndone, 2);
}

/* ---- 11. nat = none ---- */

/* P-15: the firewall case; THIRD_PARTY carries the host, the internal
   port is the client's, and no local rule is made. */
static void
test_nat_none(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;
	const struct backend_fake_counters *c;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 0, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_sent(&x->w, 0, &m);
	assert_true(m.has_third_party);
	px_assert_addr(&m.third_party, PX_HOST);
	px_assert_addr(&m.client_addr, SCN_WAN);
	assert_int_equal(m.internal_port, 8080);
	assert_int_equal(m.ext_port, 0);
	srv_answer(0, PCP_SUCCESS, PX_LIFETIME, 45000);
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_EXT);
	assert_int_equal(px_last_done()->res.ext_port, 45000);
	assert_int_equal(px_last_done()->res.lifetime, PX_LIFETIME);

	/* the delete carries THIRD_PARTY too */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 0, 0, 1);
	assert_true(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 2);
	px_assert_delete_sent(r.nonce, 8080);
	scn_decode_sent(&x->w, 1, &m);
	assert_true(m.has_third_party);
	px_assert_addr(&m.third_party, PX_HOST);

	c = backend_fake_counters(x->w.be);
	assert_int_equal(c->adds + c->removes + c->refreshes + c->failures, 0);
	assert_int_equal(c->commits, 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
}

/* ---- 12. no upstream: the gateway is the last NAT ---- */

static void
test_last_nat(void **state)
{
	struct map_req r;
	struct map_result res;
	const struct backend_rule *rule;
	struct in6_addr ext;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 600, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	assert_int_equal(x->ndone, 0);		/* after the commit */
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_WAN);
	assert_int_equal(px_last_done()->res.ext_port, 8080);
	assert_int_equal(px_last_done()->res.lifetime, 600);
	assert_true(proxy_external_addr(x->w.p, &ext));
	px_assert_addr(&ext, SCN_WAN);
	rule = backend_fake_lookup(x->w.be, MAP_PROTO_TCP, 8080);
	assert_non_null(rule);
	assert_int_equal(rule->timeout, 600 + PX_GRACE_S);
	/* its expiry removes the rule and the mapping */
	TIME_PASSES(600 * PX_MS - 1);
	assert_int_equal(table_count(x->w.t), 1);
	TIME_PASSES(1);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_counters(x->w.be)->removes, 1);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(x->ndone, 1);
}

/* Nothing to wait for (no upstream, no local rule): answered at once, as
   proxy.h promises, never through done from inside proxy_submit. */
static void
test_last_nat_none(void **state)
{
	struct map_req r;
	struct map_result res;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 5000, 5000, 600, 1);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(x->ndone, 0);
	assert_int_equal(res.err, MAP_OK);
	px_assert_addr(&res.ext_addr, SCN_WAN);
	assert_int_equal(res.ext_port, 5000);
	assert_int_equal(res.lifetime, 600);
	assert_int_equal(px_find(PX_HOST, MAP_PROTO_UDP, 5000)->state,
	    MAP_STATE_GRANTED);
	/* a refresh past the cache rule: answered at once too */
	TIME_PASSES(300 * PX_MS);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_OK);
	assert_int_equal(res.lifetime, 600);
	END_TURN();
	assert_int_equal(x->ndone, 0);
}

/* ---- 14. PEER (RFC 6887 §12, RFC 7648 §3) ---- */

#define PX_PEER		"198.51.100.77"	/* the remote peer */

/* A PEER request: UDP host:port -> PX_PEER:7200. */
static void
px_peer_req(struct map_req *r, const char *host, uint16_t port,
    uint32_t lifetime, uint8_t nonce)
{
	px_req(r, host, MAP_PROTO_UDP, port, 0, lifetime, nonce);
	r->flags = MAP_F_PEER;
	r->peer_addr = scn_addr(PX_PEER);
	r->peer_port = 7200;
}

static struct mapping *
px_find_peer(const char *host, uint16_t port)
{
	struct in6_addr a = scn_addr(host), b = scn_addr(PX_PEER);

	return table_find_peer(x->w.t, MAP_PROTO_UDP, &a, port, &b, 7200);
}

/* Answer the last datagram, a PEER, with a grant of ext_port. */
static void
srv_answer_peer(uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	const struct scn_sent *s = scn_sent_at(&x->w.wire, x->w.wire.nsent - 1);
	struct pcp_msg req, resp;

	scn_decode(s->pkt, s->len, &req);
	assert_int_equal(req.opcode, PCP_OP_PEER);
	scn_reply_to(&req, result, lifetime, scn_server_epoch(&x->w), &resp);
	if (result == PCP_SUCCESS) {
		resp.ext_addr = x->w.ext_addr;
		resp.ext_port = ext_port;
	}
	scn_input(x->w.u, s->server, &resp, x->w.now);
}

/*
 * nat = local: the flow leaves the gateway from its WAN address and a
 * gateway port (the internal port when free; the port of the endpoint's
 * MAP when it has one, RFC 4787 REQ-1); PEER goes upstream for that port
 * with the same remote peer (P-06, P-09); the local SNAT goes in after
 * the grant; the client gets the carrier's address and port (P-13). A
 * MAP and PEERs of one endpoint coexist. PEER lifetime 0 neither deletes
 * nor shortens (§12.1); a control delete removes the SNAT and sends
 * nothing upstream (PEER cannot delete).
 */
static void
test_peer_local(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;
	struct in6_addr host = scn_addr(PX_HOST), peer = scn_addr(PX_PEER);
	const struct backend_rule *rule;
	struct mapping *pm, *mm;
	size_t nsent;

	(void)state;
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_sent(&x->w, 0, &m);
	assert_int_equal(m.opcode, PCP_OP_PEER);
	px_assert_addr(&m.client_addr, SCN_WAN);
	assert_false(m.has_third_party);
	assert_int_equal(m.protocol, MAP_PROTO_UDP);
	assert_int_equal(m.internal_port, 7100);	/* the gateway port */
	assert_int_equal(m.peer_port, 7200);
	px_assert_addr(&m.peer_addr, PX_PEER);
	assert_memory_equal(m.nonce, r.nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.lifetime, PX_LIFETIME);
	/* no rule before the grant */
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	srv_answer_peer(PCP_SUCCESS, PX_LIFETIME, 61000);
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_EXT);
	assert_int_equal(px_last_done()->res.ext_port, 61000);
	assert_int_equal(px_last_done()->res.lifetime, PX_LIFETIME);
	rule = backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &host, 7100,
	    &peer, 7200);
	assert_non_null(rule);
	assert_int_equal(rule->kind, BACKEND_RULE_PEER_SNAT);
	assert_int_equal(rule->ext_port, 7100);
	px_assert_addr(&rule->ext_addr, SCN_WAN);
	assert_int_equal(rule->timeout, PX_LIFETIME + PX_GRACE_S);
	/* the PEER is not a MAP mapping: no DNAT, no inbound key */
	assert_null(px_find(PX_HOST, MAP_PROTO_UDP, 7100));
	assert_null(backend_fake_lookup(x->w.be, MAP_PROTO_UDP, 7100));
	assert_non_null(pm = px_find_peer(PX_HOST, 7100));
	assert_int_equal(pm->state, MAP_STATE_GRANTED);

	/* a MAP of the same endpoint coexists with it */
	mm = px_grant(PX_HOST, MAP_PROTO_UDP, 7100, PX_LIFETIME, 5, 61000);
	assert_int_equal(mm->ext_port, 7100);
	assert_int_equal(table_count(x->w.t), 2);

	/* lifetime 0: a query, answered from the table, nothing shortened */
	TIME_PASSES(10 * PX_MS);
	nsent = x->w.wire.nsent;
	px_peer_req(&r, PX_HOST, 7100, 0, 5);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_OK);
	assert_int_equal(res.ext_port, 61000);
	assert_int_equal(res.lifetime, PX_LIFETIME - 10);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);

	/* another remote peer of the same endpoint: same gateway port */
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	r.peer_port = 7300;
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.internal_port, 7100);
	assert_int_equal(m.peer_port, 7300);
	srv_answer_peer(PCP_SUCCESS, PX_LIFETIME, 61001);
	END_TURN();
	assert_int_equal(px_last_done()->res.ext_port, 61001);
	assert_int_equal(table_count(x->w.t), 3);

	/* a control delete: the SNAT goes, nothing goes upstream */
	nsent = x->w.wire.nsent;
	proxy_delete(x->w.p, pm, x->w.now);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_null(backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &host,
	    7100, &peer, 7200));
	assert_null(px_find_peer(PX_HOST, 7100));
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_UDP, 7100));
}

/* The gateway port is the internal port only when free: another host's
   MAP holds it, so the PEER flow leaves from another port. */
static void
test_peer_local_port_taken(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;

	(void)state;
	(void)px_grant(PX_HOST2, MAP_PROTO_UDP, 7100, PX_LIFETIME, 9, 50000);
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.opcode, PCP_OP_PEER);
	assert_true(m.internal_port != 7100);
	assert_int_equal(px_find_peer(PX_HOST, 7100)->ext_port,
	    m.internal_port);
}

/* nat = none: PEER upstream with THIRD_PARTY = the host, its own port,
   no local rule (P-15). */
static void
test_peer_none(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg m;

	(void)state;
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	scn_decode_sent(&x->w, 0, &m);
	assert_int_equal(m.opcode, PCP_OP_PEER);
	assert_true(m.has_third_party);
	px_assert_addr(&m.third_party, PX_HOST);
	assert_int_equal(m.internal_port, 7100);
	px_assert_addr(&m.peer_addr, PX_PEER);
	srv_answer_peer(PCP_SUCCESS, 600, 62000);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_EXT);
	assert_int_equal(px_last_done()->res.ext_port, 62000);
	assert_int_equal(px_last_done()->res.lifetime, 600);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(backend_fake_counters(x->w.be)->commits, 0);
}

/* No upstream: the gateway's own SNAT and WAN address:port answer; a
   suggestion it cannot meet is CANNOT_PROVIDE_EXTERNAL (§12.1). */
static void
test_peer_last(void **state)
{
	struct map_req r;
	struct map_result res;
	struct in6_addr host = scn_addr(PX_HOST), peer = scn_addr(PX_PEER);

	(void)state;
	px_peer_req(&r, PX_HOST, 7100, 600, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	px_assert_addr(&px_last_done()->res.ext_addr, SCN_WAN);
	assert_int_equal(px_last_done()->res.ext_port, 7100);
	assert_int_equal(px_last_done()->res.lifetime, 600);
	assert_non_null(backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &host,
	    7100, &peer, 7200));
	/* another host's MAP holds 7101: a PEER suggesting it fails */
	px_req(&r, PX_HOST2, MAP_PROTO_UDP, 7101, 7101, 600, 9);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	px_peer_req(&r, PX_HOST3, 7000, 600, 6);
	r.ext_port = 7101;
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	assert_null(px_find_peer(PX_HOST3, 7000));
	/* expiry removes the SNAT */
	TIME_PASSES(600 * PX_MS);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
}

/* §12.3: a later PEER for the 5-tuple with another nonce is
   NOT_AUTHORIZED, lifetime = the mapping's remaining life; upstream
   errors are relayed and leave nothing behind. */
static void
test_peer_nonce_and_errors(void **state)
{
	struct map_req r;
	struct map_result res;

	(void)state;
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	srv_answer_peer(PCP_SUCCESS, PX_LIFETIME, 61000);
	END_TURN();
	TIME_PASSES(100 * PX_MS);
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 6);
	assert_true(px_submit(&r, &tag_a, &res));
	assert_int_equal(res.err, MAP_ERR_NOT_AUTHORIZED);
	assert_int_equal(res.lifetime, PX_LIFETIME - 100);

	/* upstream refuses another flow: relayed, no state, no rule */
	px_peer_req(&r, PX_HOST2, 7100, PX_LIFETIME, 7);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	srv_answer_peer(PCP_CANNOT_PROVIDE_EXTERNAL, 30, 0);
	END_TURN();
	assert_int_equal(px_last_done()->res.err,
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	assert_int_equal(px_last_done()->res.upstream_result,
	    PCP_CANNOT_PROVIDE_EXTERNAL);
	assert_true(px_last_done()->res.lifetime <= 30);
	assert_null(px_find_peer(PX_HOST2, 7100));
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);
	px_peer_req(&r, PX_HOST2, 7100, PX_LIFETIME, 7);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	srv_answer_peer(PCP_NO_RESOURCES, 30, 0);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_ERR_NO_RESOURCES);
	assert_int_equal(px_last_done()->res.upstream_result,
	    PCP_NO_RESOURCES);
	assert_null(px_find_peer(PX_HOST2, 7100));
}

/* ---- 13. policy ---- */

static void
px_refused(const struct map_req *r, enum map_err want)
{
	struct map_result res;
	size_t nsent = x->w.wire.nsent, count = table_count(x->w.t);
	size_t ndone = x->ndone;

	assert_true(px_submit(r, &tag_a, &res));
	assert_int_equal(res.err, want);
	assert_int_equal(res.upstream_result, -1);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_int_equal(table_count(x->w.t), count);
	assert_int_equal(x->ndone, ndone);
}

static void
test_policy_refusals(void **state)
{
	struct map_req r;

	(void)state;
	/* X-02, RFC 6887 §18.3.2: not from the LAN */
	px_req(&r, "10.0.0.5", MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	px_refused(&r, MAP_ERR_NOT_AUTHORIZED);
	/* §13.1, S-11: third party is off */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	r.internal_addr = scn_addr("192.0.2.20");
	r.flags |= MAP_F_THIRD_PARTY;
	px_refused(&r, MAP_ERR_THIRD_PARTY_DENIED);
	/* §11.3: never UDP 5351, and PREFER_FAILURE forbids moving it */
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 5351, 5351, PX_LIFETIME, 1);
	r.flags |= MAP_F_PREFER_FAILURE;
	px_refused(&r, MAP_ERR_RESERVED_PORT);
	/* §11.3: only TCP and UDP (SCTP here) */
	px_req(&r, PX_HOST, 132, 8080, 8080, PX_LIFETIME, 1);
	px_refused(&r, MAP_ERR_UNSUPP_PROTOCOL);
	assert_int_equal(x->w.wire.nsent, 0);
}

/* §17.2: the quota counts the host's mappings. */
static void
test_policy_quota(void **state)
{
	struct map_req r;

	(void)state;
	x->w.pol.max_mappings_per_host = 2;
	(void)px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	(void)px_grant(PX_HOST, MAP_PROTO_UDP, 8080, PX_LIFETIME, 2, 40081);
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8081, 8081, PX_LIFETIME, 3);
	px_refused(&r, MAP_ERR_QUOTA);
	/* another host is not affected */
	(void)px_grant(PX_HOST2, MAP_PROTO_TCP, 8081, PX_LIFETIME, 4, 40082);
}

/* ---- 14. proxy_cancel ---- */

static void
test_cancel(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;

	(void)state;
	/* one of two waiters cancelled */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	proxy_cancel(x->w.p, &tag_a);
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_ptr_equal(px_last_done()->arg, &tag_b);

	/* the only waiter cancelled, past its wait too: never called, and
	   the work completes anyway */
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 9000, 9000, PX_LIFETIME, 2);
	assert_false(px_submit(&r, &tag_c, &res));
	END_TURN();
	proxy_cancel(x->w.p, &tag_c);
	TIME_PASSES(2 * PROXY_CLIENT_WAIT_MS);
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 49000);
	END_TURN();
	assert_int_equal(x->ndone, 1);
	mp = px_find(PX_HOST, MAP_PROTO_UDP, 9000);
	assert_non_null(mp);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_int_equal(mp->outer_port, 49000);
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_UDP,
	    mp->ext_port));
	/* cancelling what is not waiting changes nothing */
	proxy_cancel(x->w.p, &tag_c);
	proxy_cancel(x->w.p, NULL);
}

/* ---- 15. expiry ---- */

/* The daemon removes the rule when the mapping expires (DESIGN.md
   "State": the kernel's timeout is only the safety net). */
static void
test_expiry(void **state)
{
	struct mapping *mp;
	uint16_t local_port;
	unsigned int turns;

	(void)state;
	mp = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, 600, 1, 40000);
	local_port = mp->ext_port;
	assert_int_equal(proxy_next_deadline(x->w.p),
	    x->w.now + 600 * (uint64_t)PX_MS);
	TIME_PASSES(600 * PX_MS - 1);
	assert_int_equal(table_count(x->w.t), 1);
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP,
	    local_port));
	turns = x->w.turns;
	TIME_PASSES(1);
	assert_true(x->w.turns > turns);
	assert_int_equal(table_count(x->w.t), 0);
	assert_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP, local_port));
	assert_int_equal(backend_fake_counters(x->w.be)->removes, 1);
	assert_int_equal(backend_fake_queued(x->w.be), 0);
	assert_int_equal(proxy_next_deadline(x->w.p), TABLE_EXPIRY_NEVER);
}

/* ---- 15. Mapping Update for PEER (RFC 6887 §14.2) ---- */

/* Grant two PEERs of PX_HOST:7100 (remote ports 7200, 7300); the first
   request as sent upstream goes to *sent. */
static struct mapping *
px_two_peers(struct pcp_msg *sent)
{
	struct map_req r;
	struct map_result res;

	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, sent);
	srv_answer_peer(PCP_SUCCESS, PX_LIFETIME, 61000);
	END_TURN();
	px_peer_req(&r, PX_HOST, 7100, PX_LIFETIME, 5);
	r.peer_port = 7300;
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	srv_answer_peer(PCP_SUCCESS, PX_LIFETIME, 61001);
	END_TURN();
	assert_int_equal(table_count(x->w.t), 2);
	return px_find_peer(PX_HOST, 7100);
}

static void
px_check_peer_update(struct mapping *pm, const struct pcp_msg *sent)
{
	struct in6_addr host = scn_addr(PX_HOST), rp = scn_addr(PX_PEER);
	struct mapping *other;
	struct pcp_msg upd;

	assert_non_null(pm);
	assert_int_equal(pm->outer_port, 61000);
	other = table_find_peer(x->w.t, MAP_PROTO_UDP, &host, 7100, &rp, 7300);
	assert_non_null(other);
	TIME_PASSES(5 * PX_MS);
	scn_reply_to(sent, PCP_SUCCESS, PX_LIFETIME, scn_server_epoch(&x->w),
	    &upd);
	upd.ext_addr = scn_addr(PX_EXT2);
	upd.ext_port = 62000;
	/* another nonce: not ours, ignored */
	upd.nonce[0] ^= 1;
	scn_input(x->w.u, 0, &upd, x->w.now);
	END_TURN();
	assert_int_equal(pm->outer_port, 61000);
	upd.nonce[0] ^= 1;
	/* another remote peer: no such PEER, ignored */
	upd.peer_port = 7400;
	scn_input(x->w.u, 0, &upd, x->w.now);
	END_TURN();
	assert_int_equal(pm->outer_port, 61000);
	assert_int_equal(other->outer_port, 61001);
	/* a MAP update for that port names no PEER */
	upd.peer_port = 7200;
	upd.opcode = PCP_OP_MAP;
	scn_input(x->w.u, 0, &upd, x->w.now);
	END_TURN();
	assert_int_equal(pm->outer_port, 61000);
	/* the real one: followed, the other PEER untouched */
	upd.opcode = PCP_OP_PEER;
	scn_input(x->w.u, 0, &upd, x->w.now);
	END_TURN();
	assert_int_equal(pm->outer_port, 62000);
	px_assert_addr(&pm->outer_addr, PX_EXT2);
	assert_int_equal(other->outer_port, 61001);
	assert_int_equal(pm->state, MAP_STATE_GRANTED);
}

static void
test_peer_update_local(void **state)
{
	struct in6_addr host = scn_addr(PX_HOST), rp = scn_addr(PX_PEER);
	const struct backend_rule *rule;
	struct pcp_msg sent;

	(void)state;
	px_check_peer_update(px_two_peers(&sent), &sent);
	/* the local SNAT names our own port, which did not move */
	rule = backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &host, 7100,
	    &rp, 7200);
	assert_non_null(rule);
	assert_int_equal(rule->ext_port, 7100);
}

static void
test_peer_update_none(void **state)
{
	struct pcp_msg sent;

	(void)state;
	px_check_peer_update(px_two_peers(&sent), &sent);
}

/* RFC 7220 §3: DESCRIPTION is optional; an upstream that rejects a request
   for carrying it (miniupnpd < 2.3.11, docs/lab.md) gets it once more
   without, and the client still gets its mapping. */
static void
test_description_refused_upstream(void **state)
{
	struct map_req r;
	struct map_result res;
	struct pcp_msg sent;
	struct mapping *mp;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	r.flags |= MAP_F_HAS_DESCRIPTION;
	strcpy(r.description, "odd");
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_sent(&x->w, 0, &sent);
	assert_true(sent.has_description);
	assert_string_equal(sent.description, "odd");
	srv_answer_last(PCP_MALFORMED_OPTION, PCP_LIFETIME_LONG_ERR, 0);
	END_TURN();
	assert_int_equal(x->ndone, 0);
	assert_int_equal(x->w.wire.nsent, 2);
	scn_decode_sent(&x->w, 1, &sent);
	assert_false(sent.has_description);
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(px_last_done()->res.ext_port, 40000);
	mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
	assert_non_null(mp);
	assert_string_equal(mp->description, "odd");
	/* without a description to drop, the refusal is the answer */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 9090, 9090, PX_LIFETIME, 2);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	srv_answer_last(PCP_MALFORMED_OPTION, PCP_LIFETIME_LONG_ERR, 0);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 3);
	assert_int_equal(x->ndone, 2);
	assert_int_equal(px_last_done()->res.err, MAP_ERR_UPSTREAM_PROTOCOL);
	assert_int_equal(px_last_done()->res.upstream_result,
	    PCP_MALFORMED_OPTION);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 9090));
}

/* ---- 16. one mapping, one upstream transaction (review fixes) ---- */

/* Answer the i-th datagram with a SUCCESS that grants ext_port for
   lifetime seconds on address addr (a broken server's answer). */
static void
srv_answer_addr(size_t i, uint32_t lifetime, uint16_t ext_port,
    const char *addr)
{
	const struct scn_sent *s = scn_sent_at(&x->w.wire, i);
	struct pcp_msg req, resp;

	scn_decode(s->pkt, s->len, &req);
	scn_reply_to(&req, PCP_SUCCESS, lifetime, scn_server_epoch(&x->w),
	    &resp);
	resp.ext_addr = scn_addr(addr);
	resp.ext_port = ext_port;
	scn_input(x->w.u, s->server, &resp, x->w.now);
}

/* Delete, then re-create at once (UPnP DeletePortMapping + Add): the
   fire-and-forget delete and the create ask about one mapping (same
   nonce, protocol and gateway port). The newer request replaces the
   older; the delete's answer (lifetime 0, no address) is nobody's grant,
   in either order. (Fix: the client got SUCCESS lifetime 0 port 0, the
   proxy learned 0.0.0.0 and reset its epoch, the real grant was lost.) */
static void
test_delete_recreate(void **state)
{
	struct map_req r, d;
	struct map_result res;
	struct mapping *mp;
	struct pcp_msg del, cre;
	struct in6_addr ext;
	size_t ndel, ncre, round;

	(void)state;
	(void)px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
	for (round = 0; round < 2; round++) {
		px_req(&d, PX_HOST, MAP_PROTO_TCP, 8080, 0, 0, 1);
		assert_true(px_submit(&d, &tag_b, &res));
		END_TURN();
		ndel = x->w.wire.nsent - 1;
		px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
		assert_false(px_submit(&r, &tag_a, &res));
		END_TURN();
		ncre = x->w.wire.nsent - 1;
		/* the same match key: the collision is real */
		scn_decode_sent(&x->w, ndel, &del);
		scn_decode_sent(&x->w, ncre, &cre);
		assert_int_equal(del.lifetime, 0);
		assert_int_equal(cre.lifetime, PX_LIFETIME);
		assert_int_equal(del.internal_port, cre.internal_port);
		assert_memory_equal(del.nonce, cre.nonce, PCP_NONCE_SIZE);
		/* the older (the delete) ends at the next tick */
		assert_int_equal(upstream_in_flight(x->w.u), 2);
		TIME_PASSES(1);
		assert_int_equal(upstream_in_flight(x->w.u), 1);
		if (round == 0) {
			/* the server answers in order: the delete first */
			srv_answer(ndel, PCP_SUCCESS, 0, 0);
			END_TURN();
			assert_int_equal(x->ndone, 1 + round);
			srv_answer(ncre, PCP_SUCCESS, PX_LIFETIME, 40000);
			END_TURN();
		} else {
			/* the delete's answer comes late: no Mapping Update */
			srv_answer(ncre, PCP_SUCCESS, PX_LIFETIME, 40000);
			END_TURN();
			srv_answer(ndel, PCP_SUCCESS, 0, 0);
			END_TURN();
		}
		assert_int_equal(x->ndone, 2 + round);
		assert_ptr_equal(px_last_done()->arg, &tag_a);
		assert_int_equal(px_last_done()->res.err, MAP_OK);
		assert_int_equal(px_last_done()->res.lifetime, PX_LIFETIME);
		assert_int_equal(px_last_done()->res.ext_port, 40000);
		px_assert_addr(&px_last_done()->res.ext_addr, SCN_EXT);
		mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
		assert_non_null(mp);
		assert_int_equal(mp->state, MAP_STATE_GRANTED);
		assert_int_equal(mp->outer_port, 40000);
		px_assert_addr(&mp->outer_addr, SCN_EXT);
		assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP,
		    mp->ext_port));
		assert_int_equal(upstream_in_flight(x->w.u), 0);
		/* nothing learned from the delete's answer */
		assert_int_equal(x->w.ext_changes, 0);
		assert_true(proxy_external_addr(x->w.p, &ext));
		px_assert_addr(&ext, SCN_EXT);
	}
}

/* RFC 6887 §11.4: a SUCCESS without a lifetime or an address grants
   nothing: the client gets an error, nothing is made or learned, and
   what the server may hold is deleted. */
static void
test_success_without_grant(void **state)
{
	struct map_req r;
	struct map_result res;
	struct in6_addr ext;
	size_t nsent;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	nsent = x->w.wire.nsent;
	srv_answer_addr(nsent - 1, PX_LIFETIME, 40000, "0.0.0.0");
	END_TURN();
	assert_int_equal(x->ndone, 1);
	assert_int_equal(px_last_done()->res.err, MAP_ERR_UPSTREAM_PROTOCOL);
	assert_int_equal(px_last_done()->res.upstream_result, -1);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(backend_fake_counters(x->w.be)->adds, 0);
	assert_false(proxy_external_addr(x->w.p, &ext));
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	px_assert_delete_sent(r.nonce, 8080);

	/* the same with "::" on a live mapping's renewal: it goes away */
	(void)px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40000);
	TIME_PASSES(1000 * PX_MS);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	nsent = x->w.wire.nsent;
	srv_answer_addr(nsent - 1, PX_LIFETIME, 40000, "::");
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_ERR_UPSTREAM_PROTOCOL);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(x->w.ext_changes, 0);
	assert_true(proxy_external_addr(x->w.p, &ext));
	px_assert_addr(&ext, SCN_EXT);
}

/* A re-creation after the server lost state that the server refuses for
   good takes the mapping away with its local rule: local rule and
   upstream mapping live and die together. The server refused, so it
   holds nothing: no delete. (Fix: the rule stayed, GRANTED, with nothing
   upstream.) A transient refusal (NO_RESOURCES: a server busy re-making
   thousands of mappings) keeps the mapping and tries again after
   PROXY_RECREATE_RETRY_MS (30 s): a UPnP client would never ask again. */
static void
test_recreate_fails(void **state)
{
	struct mapping *ms[2];
	uint64_t lost_at;
	size_t first, nsent, i;

	(void)state;
	ms[0] = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	ms[1] = px_grant(PX_HOST2, MAP_PROTO_UDP, 8081, PX_LIFETIME, 2,
	    40081);
	assert_int_equal(backend_fake_rule_count(x->w.be), 2);
	lost_at = x->w.now;
	proxy_upstream_lost_state(x->w.p, 0, x->w.now);
	first = px_recreate(lost_at, 2);
	for (i = 0; i < 2; i++)
		(void)px_assert_recreate(first + i, ms, 2);
	nsent = x->w.wire.nsent;
	srv_answer(first, PCP_NOT_AUTHORIZED, PCP_LIFETIME_LONG_ERR, 0);
	srv_answer(first + 1, PCP_NO_RESOURCES, PCP_LIFETIME_SHORT_ERR, 0);
	END_TURN();
	assert_int_equal(table_count(x->w.t), 1);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_non_null(ms[1] = px_find(PX_HOST2, MAP_PROTO_UDP, 8081));
	assert_int_equal(ms[1]->state, MAP_STATE_GRANTED);
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);
	assert_int_equal(x->w.wire.nsent, nsent);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	assert_int_equal(x->ndone, 2);
	/* 30 s on, the same re-creation once more; granted this time */
	TIME_PASSES(30 * PX_MS - 1);
	assert_int_equal(x->w.wire.nsent, nsent);
	TIME_PASSES(1);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	(void)px_assert_recreate(x->w.wire.nsent - 1, &ms[1], 1);
	srv_answer(x->w.wire.nsent - 1, PCP_SUCCESS, PX_LIFETIME, 40081);
	END_TURN();
	assert_int_equal(ms[1]->state, MAP_STATE_GRANTED);
	assert_int_equal(ms[1]->outer_port, 40081);
	TIME_PASSES(1000);	/* the paced walk's last step */
	assert_false(proxy_recreating(x->w.p));
}

/* A re-creation nobody answers: the server may be busy or gone for a
   while; the mapping keeps its rule and the re-creation is tried again
   30 s later, until the mapping's own lifetime ends. */
static void
test_recreate_times_out(void **state)
{
	struct mapping *mp;
	uint8_t nonce[PCP_NONCE_SIZE];
	uint16_t local_port;
	uint64_t lost_at;

	(void)state;
	mp = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	local_port = mp->ext_port;
	memcpy(nonce, mp->nonce, sizeof(nonce));
	lost_at = x->w.now;
	proxy_upstream_lost_state(x->w.p, 0, x->w.now);
	(void)px_recreate(lost_at, 1);
	TIME_PASSES(PROXY_UPSTREAM_TRY_MS);
	assert_ptr_equal(px_find(PX_HOST, MAP_PROTO_TCP, 8080), mp);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_int_equal(mp->ext_port, local_port);
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);
	assert_true(proxy_recreating(x->w.p));
	TIME_PASSES(30 * PX_MS);
	assert_int_equal(mp->state, MAP_STATE_RENEWING);
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40080);
	END_TURN();
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_memory_equal(mp->nonce, nonce, sizeof(nonce));
	TIME_PASSES(1000);	/* the paced walk's last step */
	assert_false(proxy_recreating(x->w.p));
}

/* RFC 6887 §14.2 / C-09: a PREFER_FAILURE mapping the server re-creates
   on another port is not the one the client holds: deleted upstream and
   removed here. */
static void
test_recreate_prefer_failure(void **state)
{
	struct map_req r;
	struct map_result res;
	uint64_t lost_at;
	size_t first;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 40000, PX_LIFETIME, 1);
	r.flags |= MAP_F_PREFER_FAILURE;
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(backend_fake_rule_count(x->w.be), 1);
	lost_at = x->w.now;
	proxy_upstream_lost_state(x->w.p, 0, x->w.now);
	first = px_recreate(lost_at, 1);
	srv_answer(first, PCP_SUCCESS, PX_LIFETIME, 40555);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, first + 2);
	px_assert_delete_sent(r.nonce, 40000);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
}

/* S-03: a renewal the upstream refuses changes nothing (flags,
   description, requester, requested lifetime, expiry); a transient
   refusal keeps the mapping until it expires, a refusal for good takes
   it away (and deletes the old grant upstream); a granted renewal takes
   the client's new details. (Fix: table_refresh() ran before the
   upstream answered.) */
static void
test_refresh_error_changes_nothing(void **state)
{
	struct map_req r, q;
	struct map_result res;
	struct mapping *mp;
	uint64_t expiry;
	size_t nsent;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 1000, 1);
	r.flags |= MAP_F_HAS_DESCRIPTION;
	strcpy(r.description, "old");
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, 1000, 40000);
	END_TURN();
	mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080);
	assert_non_null(mp);
	TIME_PASSES(500 * PX_MS);

	q = r;
	q.lifetime = PX_LIFETIME;
	q.requester_port = 50123;
	q.flags |= MAP_F_PREFER_FAILURE;
	q.ext_port = 40000;
	strcpy(q.description, "new");
	expiry = mp->expiry;
	assert_false(px_submit(&q, &tag_b, &res));
	END_TURN();
	/* the request upstream carries the new details already */
	{
		struct pcp_msg m;

		scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
		assert_true(m.prefer_failure);
		assert_string_equal(m.description, "new");
	}
	srv_answer_last(PCP_NO_RESOURCES, PCP_LIFETIME_SHORT_ERR, 0);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_ERR_NO_RESOURCES);
	assert_ptr_equal(px_find(PX_HOST, MAP_PROTO_TCP, 8080), mp);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_string_equal(mp->description, "old");
	assert_int_equal(mp->requester_port, 50000);
	assert_int_equal(mp->requested_lifetime, 1000);
	assert_int_equal(mp->flags & MAPPING_F_PREFER_FAILURE, 0);
	assert_int_equal(mp->expiry, expiry);
	assert_int_equal(mp->lifetime, 1000);
	assert_null(mp->owner_data);

	/* granted: now the table takes them */
	assert_false(px_submit(&q, &tag_b, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, PX_LIFETIME, 40000);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_string_equal(mp->description, "new");
	assert_int_equal(mp->requester_port, 50123);
	assert_int_equal(mp->requested_lifetime, PX_LIFETIME);
	assert_int_not_equal(mp->flags & MAPPING_F_PREFER_FAILURE, 0);
	assert_int_equal(mp->lifetime, PX_LIFETIME);

	/* refused for good: gone here and deleted there */
	TIME_PASSES(1000 * PX_MS);
	assert_false(px_submit(&q, &tag_c, &res));
	END_TURN();
	nsent = x->w.wire.nsent;
	srv_answer_last(PCP_NOT_AUTHORIZED, PCP_LIFETIME_LONG_ERR, 0);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_ERR_NOT_AUTHORIZED);
	assert_null(px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	px_assert_delete_sent(q.nonce, 8080);
}

/*
 * Out of memory in the engine (upstream_start() false): the client is
 * answered NO_RESOURCES at once, a new mapping is dropped, a granted one
 * stays as it was, nothing waits for a transaction that never began.
 * (Fix: txn_active stayed true and the mapping waited forever.)
 */

#define PX_ENGINE_HEAP0	64	/* upstream.c: UPSTREAM_HEAP_MIN */

static void
test_upstream_out_of_memory(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;
	uint64_t expiry;
	size_t i, nsent;

	(void)state;
	/* the very first transaction allocates the engine's heap */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, PX_LIFETIME, 1);
	px_fail_reallocarray = true;
	assert_true(px_submit(&r, &tag_a, &res));
	px_fail_reallocarray = false;
	assert_int_equal(res.err, MAP_ERR_NO_RESOURCES);
	END_TURN();
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
	assert_int_equal(x->w.wire.nsent, 0);
	TIME_PASSES(2 * PROXY_CLIENT_WAIT_MS);
	assert_int_equal(x->ndone, 0);

	/* a granted mapping, then a full heap: its renewal cannot start */
	mp = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, 1000, 1, 40000);
	TIME_PASSES(500 * PX_MS);
	for (i = 0; i < PX_ENGINE_HEAP0; i++) {
		px_req(&r, PX_HOST2, MAP_PROTO_UDP, (uint16_t)(20000 + i),
		    (uint16_t)(20000 + i), PX_LIFETIME, 2);
		assert_false(px_submit(&r, &tag_b, &res));
	}
	END_TURN();
	assert_int_equal(upstream_in_flight(x->w.u), PX_ENGINE_HEAP0);
	expiry = mp->expiry;
	nsent = x->w.wire.nsent;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 1000, 1);
	px_fail_reallocarray = true;
	assert_true(px_submit(&r, &tag_c, &res));
	px_fail_reallocarray = false;
	assert_int_equal(res.err, MAP_ERR_NO_RESOURCES);
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	assert_null(mp->owner_data);
	assert_int_equal(mp->expiry, expiry);
	assert_int_equal(x->w.wire.nsent, nsent);
	/* and with memory again it renews */
	assert_false(px_submit(&r, &tag_c, &res));
	END_TURN();
	assert_int_equal(x->w.wire.nsent, nsent + 1);
}

/* RFC 4787 REQ-1 without the clash: a gateway port that PEER flows leave
   from is their internal endpoint's alone. Two hosts' PEERs from one
   internal port to one remote get two gateway ports, and a third host's
   MAP does not take either; the endpoint's own MAP shares its port.
   (Fix: all three got WAN:7100.) */
static void
test_peer_ports_not_shared(void **state)
{
	struct map_req r;
	struct map_result res;
	struct in6_addr h1 = scn_addr(PX_HOST), h2 = scn_addr(PX_HOST2);
	struct in6_addr peer = scn_addr(PX_PEER);
	const struct backend_rule *r1, *r2;
	uint16_t p2, p3;

	(void)state;
	px_peer_req(&r, PX_HOST, 7100, 600, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(px_last_done()->res.ext_port, 7100);
	px_peer_req(&r, PX_HOST2, 7100, 600, 6);
	assert_false(px_submit(&r, &tag_b, &res));
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	p2 = px_last_done()->res.ext_port;
	assert_int_not_equal(p2, 7100);
	r1 = backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &h1, 7100, &peer,
	    7200);
	r2 = backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &h2, 7100, &peer,
	    7200);
	assert_non_null(r1);
	assert_non_null(r2);
	assert_int_equal(r1->ext_port, 7100);
	assert_int_equal(r2->ext_port, p2);
	/* a third host's MAP asks for 7100, then for host 2's port */
	px_req(&r, PX_HOST3, MAP_PROTO_UDP, 7100, 7100, 600, 9);
	assert_false(px_submit(&r, &tag_c, &res));
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	p3 = px_last_done()->res.ext_port;
	assert_int_not_equal(p3, 7100);
	assert_int_not_equal(p3, p2);
	px_req(&r, PX_HOST3, MAP_PROTO_UDP, 7101, p2, 600, 9);
	r.flags |= MAP_F_PREFER_FAILURE;
	assert_true(px_submit(&r, &tag_c, &res));
	assert_int_equal(res.err, MAP_ERR_CONFLICT);
	/* host 1's own MAP shares its PEER port */
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 7100, 7100, 600, 5);
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	assert_int_equal(px_last_done()->res.ext_port, 7100);
}

/* ---- client leases: the proxy renews by itself (RFC 6970 §5.9) ---- */

/* Create a mapping for a client with a lease of its own (UPnP): asks
   `lifetime`, the server grants `granted` for outer port 40000. */
static struct mapping *
px_grant_lease(uint32_t lifetime, uint32_t lease, uint32_t granted)
{
	struct map_req r;
	struct map_result res;
	size_t ndone = x->ndone;

	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, lifetime, 9);
	r.origin = MAP_ORIGIN_UPNP;
	r.flags |= MAP_F_PREFER_FAILURE;
	r.lease = lease;
	assert_false(px_submit(&r, &tag_a, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, granted, 8080);
	END_TURN();
	assert_int_equal(x->ndone, ndone + 1);
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	return px_find(PX_HOST, MAP_PROTO_TCP, 8080);
}

/* The last datagram sent is our own renewal of the lease mapping. */
static void
px_assert_renewal_sent(uint32_t lifetime)
{
	struct pcp_msg m;
	uint8_t nonce[PCP_NONCE_SIZE];

	memset(nonce, 9, sizeof(nonce));
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.lifetime, lifetime);
	/* RFC 6887 §11.2: the same nonce, suggesting the last grant */
	assert_memory_equal(m.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.ext_port, 8080);
	assert_true(m.prefer_failure);
}

/* I-07: an IGD:1 lease 0 (infinite) outlives any grant: the proxy renews
   halfway through each grant, no client hears of it, the local rule is
   re-armed, and the mapping lives on for as long as the renewals work. */
static void
test_lease_renewed(void **state)
{
	struct mapping *mp;
	size_t sent, ndone;
	unsigned int i, refreshes;

	(void)state;
	mp = px_grant_lease(86400, MAP_LEASE_INFINITE, 120);
	assert_non_null(mp);
	assert_int_equal(mapping_remaining(mp, x->w.now), 120);
	assert_int_equal(mapping_lease_remaining(mp, x->w.now),
	    TABLE_LIFETIME_INFINITE);
	assert_int_equal(proxy_next_deadline(x->w.p), x->w.now + 60 * PX_MS);
	ndone = x->ndone;
	for (i = 0; i < 20; i++) {
		sent = x->w.wire.nsent;
		refreshes = backend_fake_counters(x->w.be)->refreshes;
		TIME_PASSES(60 * PX_MS - 1);
		assert_int_equal(x->w.wire.nsent, sent);
		TIME_PASSES(1);
		assert_int_equal(x->w.wire.nsent, sent + 1);
		px_assert_renewal_sent(86400);	/* the maximum again */
		srv_answer_last(PCP_SUCCESS, 120, 8080);
		END_TURN();
		assert_int_equal(backend_fake_counters(x->w.be)->refreshes,
		    refreshes + 1);
		assert_non_null(mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080));
		assert_int_equal(mp->state, MAP_STATE_GRANTED);
		assert_int_equal(mapping_remaining(mp, x->w.now), 120);
	}
	/* 20 minutes on a 2-minute grant, and no client was answered */
	assert_int_equal(x->ndone, ndone);
	assert_int_equal(table_count(x->w.t), 1);
}

/* A finite lease longer than the grant: renewals ask no more than the
   lease has left; the mapping ends with the lease and goes upstream too. */
static void
test_lease_ends(void **state)
{
	struct mapping *mp;
	uint8_t nonce[PCP_NONCE_SIZE];

	(void)state;
	memset(nonce, 9, sizeof(nonce));
	mp = px_grant_lease(200, 200, 120);
	assert_non_null(mp);
	TIME_PASSES(60 * PX_MS);
	px_assert_renewal_sent(140);		/* 140 s of lease left */
	srv_answer_last(PCP_SUCCESS, 120, 8080);
	END_TURN();
	TIME_PASSES(60 * PX_MS);
	px_assert_renewal_sent(80);		/* 80 s left */
	srv_answer_last(PCP_SUCCESS, 80, 8080);
	END_TURN();
	assert_non_null(mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(mapping_remaining(mp, x->w.now), 80);
	TIME_PASSES(80 * PX_MS - 1);
	assert_int_equal(table_count(x->w.t), 1);
	TIME_PASSES(1);
	assert_int_equal(table_count(x->w.t), 0);
	px_assert_delete_sent(nonce, mp == NULL ? 0 : 8080);
	assert_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP, 8080));
}

/* A renewal the server never answers: the mapping keeps its rule until
   its grant ends, one more try goes out meanwhile, then it expires. */
static void
test_lease_renewal_silence(void **state)
{
	struct mapping *mp;
	uint64_t t0 = x->w.now;
	size_t sent;

	(void)state;
	mp = px_grant_lease(86400, MAP_LEASE_INFINITE, 120);
	assert_non_null(mp);
	t0 = x->w.now;
	TIME_PASSES(60 * PX_MS);
	sent = x->w.wire.nsent;
	/* the engine resends and gives up after PROXY_UPSTREAM_TRY_MS (at
	   105 s): the mapping stays, and one more try comes at 112.5 s,
	   halfway through what is left of the grant */
	TIME_PASSES(50 * PX_MS);
	assert_true(x->w.wire.nsent > sent);
	assert_non_null(mp = px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	sent = x->w.wire.nsent;
	TIME_PASSES(t0 + 112500 - x->w.now);
	assert_int_equal(x->w.wire.nsent, sent + 1);
	px_assert_renewal_sent(86400);	/* the maximum again */
	assert_int_equal(mp->state, MAP_STATE_RENEWING);
	TIME_PASSES(t0 + 120 * PX_MS - 1 - x->w.now);
	assert_int_equal(table_count(x->w.t), 1);
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP, 8080));
	TIME_PASSES(1);
	assert_int_equal(table_count(x->w.t), 0);
	assert_null(backend_fake_lookup(x->w.be, MAP_PROTO_TCP, 8080));
}

/* A repeated request answered from the table (the cache rule) still
   extends the client's lease; a lease past the grant then brings a
   renewal. */
static void
test_lease_cache_hit_extends(void **state)
{
	struct mapping *mp;
	struct map_req r;
	struct map_result res;
	size_t sent;

	(void)state;
	mp = px_grant_lease(300, 300, 300);
	assert_non_null(mp);
	/* the lease ends with the grant: nothing to renew */
	assert_int_equal(proxy_next_deadline(x->w.p), x->w.now + 300 * PX_MS);
	TIME_PASSES(10 * PX_MS);
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 300, 9);
	r.origin = MAP_ORIGIN_UPNP;
	r.flags |= MAP_F_PREFER_FAILURE;
	r.lease = 300;
	sent = x->w.wire.nsent;
	assert_true(px_submit(&r, &tag_b, &res));
	assert_int_equal(res.err, MAP_OK);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(mapping_lease_remaining(mp, x->w.now), 300);
	/* renewal halfway through the 300 s grant made 10 s ago */
	assert_int_equal(proxy_next_deadline(x->w.p), x->w.now + 140 * PX_MS);
	TIME_PASSES(140 * PX_MS);
	assert_int_equal(x->w.wire.nsent, sent + 1);
	/* no longer than the lease has left: 310 - 150 */
	px_assert_renewal_sent(160);
}

/* Without an upstream the gateway keeps an infinite lease alive itself:
   the local rule is re-armed, nothing is sent. */
static void
test_lease_last_nat(void **state)
{
	struct map_req r;
	struct map_result res;
	struct mapping *mp;
	unsigned int refreshes;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_UDP, 3074, 3074, 86400, 9);
	r.origin = MAP_ORIGIN_UPNP;
	r.lease = MAP_LEASE_INFINITE;
	(void)px_submit(&r, &tag_a, &res);
	END_TURN();
	assert_non_null(mp = px_find(PX_HOST, MAP_PROTO_UDP, 3074));
	assert_int_equal(mp->state, MAP_STATE_GRANTED);
	refreshes = backend_fake_counters(x->w.be)->refreshes;
	TIME_PASSES(3 * 86400ull * PX_MS);
	assert_non_null(mp = px_find(PX_HOST, MAP_PROTO_UDP, 3074));
	assert_true(backend_fake_counters(x->w.be)->refreshes >= refreshes + 5);
	assert_int_equal(x->w.wire.nsent, 0);
}

/* ---- paced re-creation (issue 7: "spread to avoid a burst") ---- */

/* mappings: more than the window (512) and than one step looks at
   (PROXY_RECREATE_SCAN, 4096): the walk goes on over several steps */
#define PX_PACE_N	5000
#define PX_PACE_BATCH	128	/* proxy.c PROXY_RECREATE_BATCH */
#define PX_PACE_GAP_MS	20	/* PROXY_RECREATE_GAP_MS */
#define PX_PACE_WINDOW	512	/* PROXY_RECREATE_WINDOW */

/* PX_PACE_N mappings over many hosts; then the server restarts and says
   so with an ANNOUNCE (RFC 6887 §14.1.3). Returns when the first batch
   has gone out, with the count of datagrams sent before it. */
static size_t
px_pace_setup(void)
{
	char host[32];
	size_t i;
	uint64_t when;
	size_t sent;

	x->w.pol.max_mappings_per_host = 0;
	for (i = 0; i < PX_PACE_N; i++) {
		snprintf(host, sizeof(host), "192.0.2.%zu", 10 + i % 200);
		(void)px_grant(host, i % 2 ? MAP_PROTO_UDP : MAP_PROTO_TCP,
		    (uint16_t)(2000 + i), PX_LIFETIME, (uint8_t)(1 + i % 250),
		    (uint16_t)(30000 + i));
		x->ndone = 0;	/* the answers are px_grant's to check */
	}
	TIME_PASSES(10 * PX_MS);
	scn_server_restart(&x->w);
	scn_announce(x->w.u, 0, scn_server_epoch(&x->w), x->w.now);
	END_TURN();
	assert_int_equal(x->w.nlost, 1);
	when = proxy_next_deadline(x->w.p);
	assert_true(when <= x->w.now + 5000);
	sent = x->w.wire.nsent;
	TIME_PASSES(when - x->w.now);
	return sent;
}

/* Batches of PROXY_RECREATE_BATCH every PROXY_RECREATE_GAP_MS, each
   mapping exactly once, all of them back with their ports. */
static void
test_recreate_paced(void **state)
{
	size_t sent0, i, total = 0, k, batch;
	struct mapping *m;

	(void)state;
	sent0 = px_pace_setup();
	for (k = 0; total < PX_PACE_N; k++) {
		batch = x->w.wire.nsent - sent0 - total;
		assert_int_equal(batch, PX_PACE_N - total < PX_PACE_BATCH ?
		    PX_PACE_N - total : PX_PACE_BATCH);
		for (i = x->w.wire.nsent - batch; i < x->w.wire.nsent; i++) {
			struct pcp_msg q;

			scn_decode_sent(&x->w, i, &q);
			srv_answer(i, PCP_SUCCESS, PX_LIFETIME, q.ext_port);
		}
		END_TURN();
		total += batch;
		if (total < PX_PACE_N) {
			/* nothing more before the gap */
			TIME_PASSES(PX_PACE_GAP_MS - 1);
			assert_int_equal(x->w.wire.nsent - sent0, total);
			TIME_PASSES(1);
		}
		assert_true(k < 64);
	}
	TIME_PASSES(1000);
	assert_int_equal(x->w.wire.nsent - sent0, PX_PACE_N);
	for (i = 0; (m = table_at(x->w.t, i)) != NULL; i++) {
		assert_int_equal(m->state, MAP_STATE_GRANTED);
		assert_int_equal(m->outer_port, 30000 + (m->internal_port -
		    2000));
		assert_int_equal(m->proxy_marks, 0);
	}
	assert_int_equal(table_count(x->w.t), PX_PACE_N);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
}

/* A server that does not answer: never more than the window in flight. */
static void
test_recreate_window(void **state)
{
	size_t sent0;

	(void)state;
	sent0 = px_pace_setup();
	TIME_PASSES(10 * PX_PACE_GAP_MS);
	assert_int_equal(upstream_in_flight(x->w.u), PX_PACE_WINDOW);
	assert_true(x->w.wire.nsent - sent0 >= PX_PACE_WINDOW);
}

/* The gateway is the last NAT and its WAN address changes (a DHCP renew
   with a new address): the mappings it holds alone name the new one, and
   a PEER's SNAT rule is re-queued to translate to it. */
static void
test_last_nat_wan_change(void **state)
{
	struct map_req r;
	struct map_result res;
	struct in6_addr host = scn_addr(PX_HOST), peer = scn_addr(PX_PEER);
	struct in6_addr wan2 = scn_addr("100.64.0.9");
	const struct backend_rule *rule;
	struct mapping *m;

	(void)state;
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 600, 1);
	(void)px_submit(&r, &tag_a, &res);
	END_TURN();
	px_peer_req(&r, PX_HOST, 7100, 600, 5);
	(void)px_submit(&r, &tag_b, &res);
	END_TURN();
	proxy_set_wan_addr(x->w.p, &wan2);
	END_TURN();
	assert_non_null(m = px_find(PX_HOST, MAP_PROTO_TCP, 8080));
	px_assert_addr(&m->outer_addr, "100.64.0.9");
	assert_non_null(m = px_find_peer(PX_HOST, 7100));
	px_assert_addr(&m->outer_addr, "100.64.0.9");
	rule = backend_fake_lookup_peer(x->w.be, MAP_PROTO_UDP, &host, 7100,
	    &peer, 7200);
	assert_non_null(rule);
	px_assert_addr(&rule->ext_addr, "100.64.0.9");
	/* a refresh answered from the table tells the new address */
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 600, 1);
	assert_true(px_submit(&r, &tag_a, &res));
	px_assert_addr(&res.ext_addr, "100.64.0.9");
}

/* A client's repeated request that joins our own renewal in flight
   brings its lease along (review fix): lease 300 on a 120 s grant, the
   renewal under way, the client asks again with an infinite lease; the
   mapping then lives on past 300 s. */
static void
test_lease_join_renewal(void **state)
{
	struct mapping *mp;
	struct map_req r;
	struct map_result res;
	unsigned int i;

	(void)state;
	mp = px_grant_lease(300, 300, 120);
	assert_non_null(mp);
	TIME_PASSES(60 * PX_MS);		/* our renewal goes out */
	assert_int_equal(mp->state, MAP_STATE_RENEWING);
	px_req(&r, PX_HOST, MAP_PROTO_TCP, 8080, 8080, 86400, 9);
	r.origin = MAP_ORIGIN_UPNP;
	r.flags |= MAP_F_PREFER_FAILURE;
	r.lease = MAP_LEASE_INFINITE;
	assert_false(px_submit(&r, &tag_b, &res));	/* joins it */
	assert_int_equal(mapping_lease_remaining(mp, x->w.now),
	    TABLE_LIFETIME_INFINITE);
	srv_answer_last(PCP_SUCCESS, 120, 8080);
	END_TURN();
	assert_int_equal(px_last_done()->res.err, MAP_OK);
	/* renewed every 60 s past the old lease's end at 300 s */
	for (i = 0; i < 8; i++) {
		TIME_PASSES(60 * PX_MS);
		assert_int_equal(mp->state, MAP_STATE_RENEWING);
		srv_answer_last(PCP_SUCCESS, 120, 8080);
		END_TURN();
	}
	assert_ptr_equal(px_find(PX_HOST, MAP_PROTO_TCP, 8080), mp);
}

/* A re-creation that comes back with another external port (the carrier
   lost state and gave another): the mapping takes it and the daemon is
   told once for it (mapping_moved: it restarts its Epoch so that clients
   map again); one that keeps its port is no news. */
static void
test_recreate_moved(void **state)
{
	struct mapping *ms[2];
	uint64_t lost_at;
	size_t first, i;

	(void)state;
	ms[0] = px_grant(PX_HOST, MAP_PROTO_TCP, 8080, PX_LIFETIME, 1, 40080);
	ms[1] = px_grant(PX_HOST2, MAP_PROTO_UDP, 8081, PX_LIFETIME, 2,
	    40081);
	lost_at = x->w.now;
	proxy_upstream_lost_state(x->w.p, 0, x->w.now);
	first = px_recreate(lost_at, 2);
	for (i = 0; i < 2; i++) {
		struct mapping *mp = px_assert_recreate(first + i, ms, 2);

		srv_answer(first + i, PCP_SUCCESS, PX_LIFETIME,
		    mp == ms[0] ? 41080 : 40081);
	}
	END_TURN();
	assert_int_equal(ms[0]->outer_port, 41080);
	assert_int_equal(ms[1]->outer_port, 40081);
	assert_int_equal(x->w.moved, 1);
	assert_int_equal(x->ndone, 2);		/* no client was answered */
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
#define PX_TEST(fn, setup)	\
	cmocka_unit_test_setup_teardown(fn, setup, px_teardown)
		PX_TEST(test_local_create, setup_local),
		PX_TEST(test_retransmission_joins, setup_local),
		PX_TEST(test_cache_hit_then_refresh, setup_local),
		PX_TEST(test_upstream_errors, setup_local),
		PX_TEST(test_silence_late_success, setup_local),
		PX_TEST(test_silence_gives_up, setup_local),
		PX_TEST(test_backend_failure, setup_local),
		PX_TEST(test_delete, setup_local),
		PX_TEST(test_delete_while_pending, setup_local),
		PX_TEST(test_nonce_and_prefer_failure, setup_local),
		PX_TEST(test_lost_state_recreates, setup_local),
		PX_TEST(test_recreate_moved, setup_local),
		PX_TEST(test_ext_addr_change, setup_local),
		PX_TEST(test_nat_none, setup_none),
		PX_TEST(test_last_nat, setup_last),
		PX_TEST(test_last_nat_wan_change, setup_last),
		PX_TEST(test_last_nat_none, setup_last_none),
		PX_TEST(test_policy_refusals, setup_local),
		PX_TEST(test_policy_quota, setup_local),
		PX_TEST(test_cancel, setup_local),
		PX_TEST(test_expiry, setup_local),
		PX_TEST(test_lease_renewed, setup_local),
		PX_TEST(test_lease_join_renewal, setup_local),
		PX_TEST(test_recreate_paced, setup_local),
		PX_TEST(test_recreate_window, setup_local),
		PX_TEST(test_lease_ends, setup_local),
		PX_TEST(test_lease_renewal_silence, setup_local),
		PX_TEST(test_lease_cache_hit_extends, setup_local),
		PX_TEST(test_lease_last_nat, setup_last),
		PX_TEST(test_peer_local, setup_local),
		PX_TEST(test_peer_local_port_taken, setup_local),
		PX_TEST(test_peer_none, setup_none),
		PX_TEST(test_peer_last, setup_last),
		PX_TEST(test_peer_nonce_and_errors, setup_local),
		PX_TEST(test_peer_update_local, setup_local),
		PX_TEST(test_peer_update_none, setup_none),
		PX_TEST(test_description_refused_upstream, setup_local),
		PX_TEST(test_delete_recreate, setup_local),
		PX_TEST(test_success_without_grant, setup_local),
		PX_TEST(test_recreate_fails, setup_local),
		PX_TEST(test_recreate_times_out, setup_local),
		PX_TEST(test_recreate_prefer_failure, setup_local),
		PX_TEST(test_refresh_error_changes_nothing, setup_local),
		PX_TEST(test_upstream_out_of_memory, setup_local),
		PX_TEST(test_peer_ports_not_shared, setup_last),
#undef PX_TEST
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
