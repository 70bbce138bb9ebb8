/*
 * scenario.c - the scripted upstream PCP server, the recording transport
 * and the world (table, policy, engine, backend, proxy and their glue)
 * shared by scenario tests; see scenario.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <string.h>

#include "backend.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

/* The seeds every test's expectations (ports, nonces, jitter) rest on. */
#define SCN_TABLE_SEED		42
#define SCN_UPSTREAM_SEED	4711
#define SCN_PROXY_SEED		99
#define SCN_KEY_FIRST		0xa0	/* the nonce key: a0 a1 a2 ... */
#define SCN_MS_PER_S		1000u
/* A loop turn that keeps kicking, or a deadline that never moves, would
   spin: these bound both. */
#define SCN_TURN_GUARD		8
#define SCN_STEP_GUARD		100000

int
scn_send(void *arg, unsigned int server, const uint8_t *pkt, size_t len)
{
	struct scn_wire *w = arg;
	struct scn_sent *s;

	assert_non_null(w);
	assert_true(server < UPSTREAM_MAX_SERVERS);
	assert_true(len <= PCP_MAX_SIZE);
	if (w->send_error[server] != 0)
		return w->send_error[server];
	s = &w->sent[w->nsent % SCN_MAX_SENT];
	s->server = server;
	s->at = w->now != NULL ? *w->now : 0;
	s->len = len;
	memcpy(s->pkt, pkt, len);
	w->nsent++;
	return 0;
}

const struct scn_sent *
scn_sent_at(const struct scn_wire *w, size_t i)
{
	assert_true(i < w->nsent);
	assert_true(w->nsent - i <= SCN_MAX_SENT);
	return &w->sent[i % SCN_MAX_SENT];
}

const struct scn_sent *
scn_last_sent(const struct scn_wire *w)
{
	assert_true(w->nsent > 0);
	return scn_sent_at(w, w->nsent - 1);
}

struct in6_addr
scn_addr(const char *s)
{
	struct in6_addr a;

	assert_true(pcp_addr_pton(s, &a));
	return a;
}

void
scn_decode(const uint8_t *pkt, size_t len, struct pcp_msg *m)
{
	enum pcp_result res;

	assert_int_equal(pcp_decode_request(pkt, len, NULL, 0, m, &res),
	    PCP_VERDICT_OK);
}

void
scn_reply_to(const struct pcp_msg *req, uint8_t result, uint32_t lifetime,
    uint32_t epoch, struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->response = true;
	m->opcode = req->opcode;
	m->result = result;
	m->lifetime = lifetime;
	m->epoch = epoch;
	memcpy(m->nonce, req->nonce, PCP_NONCE_SIZE);
	m->protocol = req->protocol;
	m->internal_port = req->internal_port;
	m->ext_port = req->ext_port;
	m->ext_addr = req->ext_addr;
	m->peer_port = req->peer_port;
	m->peer_addr = req->peer_addr;
	/* §13.1: a processed THIRD_PARTY is copied into the response */
	m->has_third_party = req->has_third_party;
	m->third_party = req->third_party;
}

void
scn_input(struct upstream *u, unsigned int server, const struct pcp_msg *m,
    uint64_t now)
{
	uint8_t buf[PCP_MAX_SIZE];
	size_t len;

	len = pcp_encode(m, buf, sizeof(buf));
	assert_true(len > 0);
	upstream_input(u, server, buf, len, now);
}

void
scn_announce(struct upstream *u, unsigned int server, uint32_t epoch,
    uint64_t now)
{
	struct pcp_msg m;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.epoch = epoch;
	scn_input(u, server, &m, now);
}

/* ---- the glue: what iwfd.c does between the engine and the proxy ---- */

static void
scn_up_done(void *arg, struct upstream_txn *t, enum upstream_outcome outcome,
    const struct pcp_msg *resp)
{
	struct scn_world *w = arg;

	proxy_upstream_done(w->p, t, (int)outcome, resp, w->now);
}

static void
scn_up_lost(void *arg, unsigned int server)
{
	struct scn_world *w = arg;

	w->nlost++;
	proxy_upstream_lost_state(w->p, server, w->now);
}

static void
scn_up_update(void *arg, unsigned int server, const struct pcp_msg *m)
{
	struct scn_world *w = arg;

	proxy_upstream_mapping_update(w->p, server, m, w->now);
}

static const struct upstream_cb scn_up_cb = {
	.done = scn_up_done,
	.lost_state = scn_up_lost,
	.mapping_update = scn_up_update,
};

static void
scn_kick(void *arg)
{
	struct scn_world *w = arg;

	w->kicks++;
	w->kicked = true;
}

static void
scn_ext_changed(void *arg, const struct in6_addr *addr)
{
	struct scn_world *w = arg;

	w->ext_changes++;
	w->ext_changed_to = *addr;
	if (w->conf.ext_addr_changed != NULL)
		w->conf.ext_addr_changed(w->conf.hook_arg, addr);
}

/* proxy_params.mapping_moved: counted */
static void
scn_mapping_moved(void *arg, const struct mapping *m)
{
	struct scn_world *w = arg;

	(void)m;
	w->moved++;
}

/* ---- the world ---- */

static int
scn_parse(const char *s, struct in6_addr *a)
{
	if (!pcp_addr_pton(s, a)) {
		errno = EINVAL;
		return -1;
	}
	return 0;
}

static int
scn_world_upstream(struct scn_world *w)
{
	const struct scn_world_conf *c = &w->conf;
	struct in6_addr srv;
	uint16_t port = PCP_SERVER_PORT;

	if (scn_parse(SCN_SERVER, &srv) == -1 ||
	    (w->u = upstream_new(&scn_up_cb, w, c->seeded ? (uint32_t)c->seed :
	    SCN_UPSTREAM_SEED)) == NULL)
		return -1;
	if (c->send != NULL)
		upstream_set_transport(w->u, c->send, c->send_arg);
	else
		upstream_set_transport(w->u, scn_send, &w->wire);
	if (upstream_set_servers(w->u, &srv, &port, 1) == -1)
		return -1;
	/* RFC 6887 §8.1: the Client IP is the gateway's WAN address */
	upstream_set_local(w->u, 0, &w->wan);
	return 0;
}

static int
scn_world_proxy(struct scn_world *w)
{
	const struct scn_world_conf *c = &w->conf;
	struct proxy_params pp;

	memset(&pp, 0, sizeof(pp));
	pp.nat = c->nat;
	pp.table = w->t;
	pp.policy = &w->pol;
	pp.backend = w->be;
	pp.upstream = w->u;
	pp.random_seed = c->seeded ? c->seed : SCN_PROXY_SEED;
	pp.wan_addr = w->wan;
	pp.wan_addr_known = true;
	pp.ext_addr_changed = scn_ext_changed;
	pp.mapping_moved = scn_mapping_moved;
	pp.kick = scn_kick;
	pp.cb_arg = w;
	return (w->p = proxy_new(&pp)) == NULL ? -1 : 0;
}

int
scn_world_init(struct scn_world *w, const struct scn_world_conf *c)
{
	size_t i;

	w->conf = *c;
	if (c->ntimers > SCN_MAX_TIMERS) {
		errno = EINVAL;
		return -1;
	}
	w->now = c->now != 0 ? c->now : SCN_T0;
	w->wire.now = &w->now;
	w->epoch_base = SCN_EPOCH0;
	w->epoch_t0 = w->now;
	for (i = 0; i < sizeof(w->key); i++)
		w->key[i] = (uint8_t)(SCN_KEY_FIRST + i);
	if (scn_parse(SCN_EXT, &w->ext_addr) == -1 ||
	    scn_parse(SCN_WAN, &w->wan) == -1 ||
	    scn_parse(c->lan != NULL ? c->lan : SCN_LAN, &w->lan.addr) == -1)
		return -1;
	w->lan.prefix_len = c->lan != NULL ? c->lan_prefix_len :
	    SCN_LAN_PREFIX_LEN;
	w->pol.lan_prefixes = &w->lan;
	w->pol.n_lan_prefixes = 1;
	w->pol.min_lifetime = SCN_MIN_LIFETIME;
	w->pol.max_lifetime = c->max_lifetime != 0 ? c->max_lifetime :
	    SCN_MAX_LIFETIME;
	if ((w->t = table_new()) == NULL)
		return -1;
	table_set_seed(w->t, c->seeded ? c->seed : SCN_TABLE_SEED);
	if (c->backend_new != NULL && (w->be = c->backend_new()) == NULL)
		return -1;
	if (c->upstream && scn_world_upstream(w) == -1)
		return -1;
	return scn_world_proxy(w);
}

void
scn_world_free(struct scn_world *w)
{
	proxy_free(w->p);
	upstream_free(w->u);
	if (w->be != NULL)
		w->be->ops->close(w->be);
	table_free(w->t);
	w->p = NULL;
	w->u = NULL;
	w->be = NULL;
	w->t = NULL;
}

void
scn_end_turn(struct scn_world *w)
{
	unsigned int guard = 0;

	while (w->kicked) {
		w->kicked = false;
		w->turns++;
		proxy_commit(w->p, w->now);
		assert_true(++guard < SCN_TURN_GUARD);
	}
	if (w->conf.turn_end != NULL)
		w->conf.turn_end(w->conf.hook_arg, w->now);
}

static uint64_t
scn_min(uint64_t a, uint64_t b)
{
	return a < b ? a : b;
}

void
scn_time_passes(struct scn_world *w, uint64_t ms)
{
	const struct scn_world_conf *c = &w->conf;
	uint64_t target = w->now + ms, un, pn, next;
	uint64_t due[SCN_MAX_TIMERS];
	unsigned int guard = 0;
	size_t i;

	for (;;) {
		un = w->u != NULL ? upstream_next_deadline(w->u) : UINT64_MAX;
		pn = proxy_next_deadline(w->p);
		next = scn_min(un, pn);
		for (i = 0; i < c->ntimers; i++) {
			due[i] = c->timers[i].next_deadline(c->hook_arg);
			next = scn_min(next, due[i]);
		}
		if (next > target)
			break;
		if (next > w->now)
			w->now = next;
		if (un <= w->now)
			upstream_tick(w->u, w->now);
		if (pn <= w->now)
			proxy_tick(w->p, w->now);
		for (i = 0; i < c->ntimers; i++)
			if (due[i] <= w->now && c->timers[i].tick != NULL)
				c->timers[i].tick(c->hook_arg, w->now);
		scn_end_turn(w);
		assert_true(++guard < SCN_STEP_GUARD);
	}
	w->now = target;
}

uint64_t
scn_world_now(void *arg)
{
	const struct scn_world *w = arg;

	return w->now;
}

/* ---- the scripted server in the world ---- */

uint32_t
scn_server_epoch(const struct scn_world *w)
{
	return w->epoch_base + (uint32_t)((w->now - w->epoch_t0) /
	    SCN_MS_PER_S);
}

void
scn_server_restart(struct scn_world *w)
{
	w->epoch_base = 0;
	w->epoch_t0 = w->now;
}

void
scn_decode_sent(const struct scn_world *w, size_t i, struct pcp_msg *m)
{
	const struct scn_sent *s = scn_sent_at(&w->wire, i);

	scn_decode(s->pkt, s->len, m);
}

void
scn_decode_last(const struct scn_world *w, struct pcp_msg *m)
{
	const struct scn_sent *s = scn_last_sent(&w->wire);

	scn_decode(s->pkt, s->len, m);
}

void
scn_answer(struct scn_world *w, size_t i, uint8_t result, uint32_t lifetime,
    uint16_t ext_port)
{
	const struct scn_sent *s = scn_sent_at(&w->wire, i);
	struct pcp_msg req, resp;

	scn_decode(s->pkt, s->len, &req);
	scn_reply_to(&req, result, lifetime, scn_server_epoch(w), &resp);
	if (result == PCP_SUCCESS && req.lifetime != 0) {
		resp.ext_addr = w->ext_addr;
		resp.ext_port = ext_port;
	}
	scn_input(w->u, s->server, &resp, w->now);
}

void
scn_answer_last(struct scn_world *w, uint8_t result, uint32_t lifetime,
    uint16_t ext_port)
{
	assert_true(w->wire.nsent > 0);
	scn_answer(w, w->wire.nsent - 1, result, lifetime, ext_port);
}
