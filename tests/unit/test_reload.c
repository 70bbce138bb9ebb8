/*
 * test_reload.c - what a reload (SIGHUP) does to the upstream side, in the
 * scenario world (tests/unit/scenario.h) on a fake clock:
 *
 *   - a server list change keeps a server that stays - its Epoch record
 *     (RFC 6887 §8.5), state, Client IP, counters, transactions in
 *     flight - under its new index (RFC 7488: a server is its address and
 *     port), and its mappings untouched: no re-creation;
 *   - only the mappings of a server that is gone are re-created, on the
 *     new first server (discovery_apply, the path iwfd_reload takes);
 *   - nat local <-> none (proxy_set_nat): the mappings stay, the local
 *     rules follow the mode, the upstream mappings are deleted in the old
 *     form and re-made in the new (P-06, P-15);
 *   - work in flight across a change: a re-creation, a refresh or a
 *     renewal when the last server goes is the gateway's own to grant
 *     (the mapping and its rule stay); a create granted in the old nat
 *     form is deleted in it and re-made in the new; clients of mappings
 *     that became the gateway's own are told (mapping_moved);
 *   - a new backend (wan_interface) is reconciled to every live rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "backend_fake.h"
#include "config.h"
#include "discovery.h"
#include "iwfd.h"
#include "map.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define RL_SERVER2	"198.51.100.2"
#define RL_SERVER3	"198.51.100.3"
#define RL_HOST_A	"192.0.2.10"
#define RL_HOST_B	"192.0.2.11"
#define RL_HOST_C	"192.0.2.12"
#define RL_LIFETIME	3600u
/* past RFC 6887 §14.1.3's 0-5 s wait and the paced re-creation */
#define RL_SETTLE_MS	6000u

struct rl {
	struct scn_world	 w;
	struct iwfd		 iwfd;	/* what discovery_apply reads */
	unsigned int		 ndone;
	struct map_result	 last;	/* the last answer rl_done saw */
};

static struct rl *x;

#define END_TURN()		scn_end_turn(&x->w)
#define TIME_PASSES(ms)		scn_time_passes(&x->w, (ms))

static int
rl_setup(const struct scn_world_conf *c)
{
	assert_non_null(x = calloc(1, sizeof(*x)));
	assert_int_equal(scn_world_init(&x->w, c), 0);
	assert_non_null(x->iwfd.conf = calloc(1, sizeof(*x->iwfd.conf)));
	config_defaults(x->iwfd.conf);
	/* no such interface here: a mapping left without a server keeps
	   its outer address */
	strcpy(x->iwfd.conf->wan_interface, "rl-none0");
	x->iwfd.table = x->w.t;
	x->iwfd.upstream = x->w.u;
	x->iwfd.proxy = x->w.p;
	return 0;
}

static int
setup(void **state)
{
	struct scn_world_conf c = { .nat = PROXY_NAT_LOCAL, .upstream = true };

	(void)state;
	return rl_setup(&c);
}

static int
teardown(void **state)
{
	(void)state;
	scn_world_free(&x->w);
	free(x->iwfd.conf);
	free(x);
	x = NULL;
	return 0;
}

static void
rl_done(void *arg, const struct map_req *req, const struct map_result *res)
{
	(void)arg;
	(void)req;
	x->last = *res;
	x->ndone++;
}

/* The list the engine gets, as the reload hands it over; a new server's
   socket gets the WAN address as its source (what upstream_io does). */
static void
rl_servers(const char *const *names, size_t n)
{
	struct config_upstream list[CONFIG_MAX_UPSTREAM_SERVERS];
	struct upstream_server_info info;
	size_t i;

	memset(list, 0, sizeof(list));
	for (i = 0; i < n; i++) {
		list[i].addr = scn_addr(names[i]);
		list[i].port = PCP_SERVER_PORT;
	}
	assert_int_equal(discovery_apply(&x->iwfd, list, n, x->w.now), 0);
	for (i = 0; i < n; i++) {
		upstream_server_info(x->w.u, (unsigned int)i, &info);
		if (!info.local_known)
			upstream_set_local(x->w.u, (unsigned int)i, &x->w.wan);
	}
}

/* A MAP request of host for UDP port, nonce filled with nonce; not
   answered. */
static void
rl_request(const char *host, uint16_t port, uint8_t nonce)
{
	struct map_req r;
	struct map_result res;

	memset(&r, 0, sizeof(r));
	r.origin = MAP_ORIGIN_PCP;
	r.requester = scn_addr(host);
	r.requester_port = 50000;
	r.internal_addr = r.requester;
	r.protocol = MAP_PROTO_UDP;
	r.internal_port = port;
	r.ext_addr = scn_addr("0.0.0.0");
	r.lifetime = RL_LIFETIME;
	memset(r.nonce, nonce, sizeof(r.nonce));
	assert_false(proxy_submit(x->w.p, &r, x->w.now, rl_done, NULL, &res));
	END_TURN();
}

static struct mapping *
rl_find(const char *host, uint16_t port)
{
	struct in6_addr a = scn_addr(host);

	return table_find_internal(x->w.t, MAP_PROTO_UDP, &a, port);
}

/* A mapping granted by whichever server the engine picks; returns it. */
static struct mapping *
rl_map(const char *host, uint16_t port, uint8_t nonce, uint16_t ext)
{
	struct mapping *m;

	rl_request(host, port, nonce);
	scn_answer_last(&x->w, PCP_SUCCESS, RL_LIFETIME, ext);
	END_TURN();
	assert_non_null(m = rl_find(host, port));
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	assert_int_equal(m->outer_port, ext);
	return m;
}

/* Answer the i-th request sent as server (its index now, which may not
   be the one it was sent to). */
static void
rl_answer_as(size_t i, unsigned int server, uint16_t ext)
{
	struct pcp_msg req, resp;

	scn_decode_sent(&x->w, i, &req);
	scn_reply_to(&req, PCP_SUCCESS, RL_LIFETIME, scn_server_epoch(&x->w),
	    &resp);
	resp.ext_addr = x->w.ext_addr;
	resp.ext_port = ext;
	scn_input(x->w.u, server, &resp, x->w.now);
	END_TURN();
}

/* How many requests sent from index `from` on carry nonce byte n. */
static size_t
rl_sent_with_nonce(size_t from, uint8_t n, unsigned int *server)
{
	struct pcp_msg m;
	size_t i, count = 0;

	for (i = from; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &m);
		if (m.opcode == PCP_OP_MAP && m.nonce[0] == n) {
			count++;
			*server = scn_sent_at(&x->w.wire, i)->server;
		}
	}
	return count;
}

/*
 * Two servers, the second holding mappings and a request in flight; the
 * first is removed. The second, now server 0, keeps its state and its
 * transaction (answered under its new index); its mappings are untouched
 * (nothing is sent for them); only the first's are re-created, on it.
 */
static void
test_remove_first(void **state)
{
	static const char *const both[] = { SCN_SERVER, RL_SERVER2 };
	static const char *const second[] = { RL_SERVER2 };
	struct upstream_server_info before, after;
	struct mapping *a1, *a2, *b1, *b2, *c;
	uint64_t b1_expiry, b2_expiry;
	size_t sent, in_flight;
	unsigned int server = UPSTREAM_NO_SERVER;

	(void)state;
	rl_servers(both, 2);
	a1 = rl_map(RL_HOST_A, 1000, 1, 41000);
	a2 = rl_map(RL_HOST_A, 1001, 2, 41001);
	assert_int_equal(a1->upstream, 0);
	assert_int_equal(a2->upstream, 0);
	/* the first fails hard (RFC 7488 §3): new mappings go to the second */
	upstream_hard_error(x->w.u, 0, ECONNREFUSED, x->w.now);
	b1 = rl_map(RL_HOST_B, 2000, 3, 42000);
	b2 = rl_map(RL_HOST_B, 2001, 4, 42001);
	assert_int_equal(b1->upstream, 1);
	assert_int_equal(b2->upstream, 1);
	rl_request(RL_HOST_C, 3000, 5);
	in_flight = x->w.wire.nsent - 1;
	assert_int_equal(scn_sent_at(&x->w.wire, in_flight)->server, 1);
	upstream_server_info(x->w.u, 1, &before);
	assert_true(before.epoch_known);
	assert_int_equal(before.state, UPSTREAM_UP);
	TIME_PASSES(1000);
	b1_expiry = b1->expiry;
	b2_expiry = b2->expiry;
	sent = x->w.wire.nsent;

	rl_servers(second, 1);
	assert_int_equal(upstream_server_count(x->w.u), 1);
	upstream_server_info(x->w.u, 0, &after);
	assert_memory_equal(&after.addr, &before.addr, sizeof(after.addr));
	assert_int_equal(after.state, UPSTREAM_UP);
	assert_true(after.epoch_known);
	assert_int_equal(after.epoch, before.epoch);
	assert_int_equal(after.replies, before.replies);
	assert_true(after.local_known);
	/* the second's mappings follow it, the first's move to it */
	assert_int_equal(b1->upstream, 0);
	assert_int_equal(b2->upstream, 0);
	assert_int_equal(a1->upstream, 0);
	assert_int_equal(a2->upstream, 0);
	/* the transaction in flight is still there, now server 0's */
	assert_int_equal(upstream_in_flight(x->w.u), 1);
	rl_answer_as(in_flight, 0, 43000);
	assert_non_null(c = rl_find(RL_HOST_C, 3000));
	assert_int_equal(c->state, MAP_STATE_GRANTED);
	assert_int_equal(c->upstream, 0);
	assert_int_equal(x->w.nlost, 0);

	TIME_PASSES(RL_SETTLE_MS);
	/* only the first server's two mappings were re-created, on server 0 */
	assert_int_equal(rl_sent_with_nonce(sent, 1, &server), 1);
	assert_int_equal(server, 0);
	assert_int_equal(rl_sent_with_nonce(sent, 2, &server), 1);
	assert_int_equal(rl_sent_with_nonce(sent, 3, &server), 0);
	assert_int_equal(rl_sent_with_nonce(sent, 4, &server), 0);
	assert_int_equal(x->w.wire.nsent, sent + 2);
	/* the second's mappings were not touched */
	assert_int_equal(b1->state, MAP_STATE_GRANTED);
	assert_int_equal(b1->expiry, b1_expiry);
	assert_int_equal(b2->expiry, b2_expiry);
	assert_int_equal(b1->outer_port, 42000);
}

/*
 * A server added in front of the one holding the mappings: that one, now
 * server 1, keeps its Epoch record (an ANNOUNCE with an Epoch that went
 * back is still seen as a loss of state, §8.5) and its mappings; nothing
 * is sent for them.
 */
static void
test_add_in_front(void **state)
{
	static const char *const front[] = { RL_SERVER3, SCN_SERVER };
	struct upstream_server_info info;
	struct in6_addr addr;
	struct mapping *a1, *a2;
	size_t sent;

	(void)state;
	a1 = rl_map(RL_HOST_A, 1000, 1, 41000);
	a2 = rl_map(RL_HOST_A, 1001, 2, 41001);
	TIME_PASSES(1000);
	sent = x->w.wire.nsent;

	rl_servers(front, 2);
	assert_int_equal(a1->upstream, 1);
	assert_int_equal(a2->upstream, 1);
	upstream_server_info(x->w.u, 1, &info);
	addr = scn_addr(SCN_SERVER);
	assert_memory_equal(&info.addr, &addr, sizeof(addr));
	assert_true(info.epoch_known);
	assert_int_equal(info.state, UPSTREAM_UP);
	upstream_server_info(x->w.u, 0, &info);
	assert_false(info.epoch_known);
	assert_int_equal(info.state, UPSTREAM_UNKNOWN);
	TIME_PASSES(RL_SETTLE_MS);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(a1->state, MAP_STATE_GRANTED);

	/* its Epoch record came along: a restart of it is still seen */
	scn_announce(x->w.u, 1, 0, x->w.now);
	assert_int_equal(x->w.nlost, 1);
}

/*
 * The engine alone: a transaction pinned to a server that moves follows
 * it; one pinned to a server that is gone ends UNREACHABLE naming no
 * server (its old index is another server's now).
 */
static void
test_engine_renumber(void **state)
{
	static const char *const two[] = { SCN_SERVER, RL_SERVER2 };
	static const char *const swapped[] = { RL_SERVER2, RL_SERVER3 };
	static const char *const back[] = { SCN_SERVER, RL_SERVER2 };
	struct upstream_server_info info;
	struct mapping *m;

	(void)state;
	rl_servers(two, 2);
	upstream_hard_error(x->w.u, 0, ECONNREFUSED, x->w.now);
	m = rl_map(RL_HOST_A, 1000, 1, 41000);
	assert_int_equal(m->upstream, 1);
	/* the DOWN server 0 goes, a new one comes last */
	rl_servers(swapped, 2);
	assert_int_equal(m->upstream, 0);
	upstream_server_info(x->w.u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	upstream_server_info(x->w.u, 1, &info);
	assert_int_equal(info.state, UPSTREAM_UNKNOWN);
	/* the one that came back starts afresh; the UP one moves again */
	rl_servers(back, 2);
	assert_int_equal(m->upstream, 1);
	upstream_server_info(x->w.u, 1, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	upstream_server_info(x->w.u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UNKNOWN);
	assert_int_equal(x->w.nlost, 0);
}

/* Every server gone: the mappings are the gateway's own (last NAT). */
static void
test_none_left(void **state)
{
	struct mapping *m;
	size_t sent;

	(void)state;
	m = rl_map(RL_HOST_A, 1000, 1, 41000);
	sent = x->w.wire.nsent;
	rl_servers(NULL, 0);
	assert_int_equal(m->upstream, UPSTREAM_NO_SERVER);
	assert_int_equal(m->outer_port, m->ext_port);
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	TIME_PASSES(RL_SETTLE_MS);
	assert_int_equal(x->w.wire.nsent, sent);
}

static int
setup_rules(void **state)
{
	struct scn_world_conf c = { .nat = PROXY_NAT_LOCAL, .upstream = true,
	    .backend_new = backend_fake_new };

	(void)state;
	return rl_setup(&c);
}

static int
setup_none(void **state)
{
	struct scn_world_conf c = { .nat = PROXY_NAT_NONE, .upstream = true };

	(void)state;
	return rl_setup(&c);
}

/* The upstream MAPs sent from `from` on: deletes, creates, and the creates
   with THIRD_PARTY (a delete's retransmissions count as deletes). */
static void
rl_count_maps(size_t from, size_t *del, size_t *create, size_t *third)
{
	struct pcp_msg m;
	size_t i;

	*del = *create = *third = 0;
	for (i = from; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &m);
		if (m.opcode != PCP_OP_MAP)
			continue;
		if (m.lifetime == 0) {
			(*del)++;
			continue;
		}
		(*create)++;
		if (m.has_third_party)
			(*third)++;
	}
}

/*
 * nat none -> local -> none (proxy_set_nat): the mappings stay; local
 * rules for each arrive in one batch and go again; upstream, each
 * mapping is deleted in the old form and re-made in the new.
 */
static void
test_nat_switch(void **state)
{
	struct backend *be;
	struct mapping *m1, *m2;
	struct pcp_msg req;
	size_t sent, del, create, third, i;

	(void)state;
	m1 = rl_map(RL_HOST_A, 1000, 1, 41000);
	m2 = rl_map(RL_HOST_B, 2000, 2, 42000);
	scn_decode_last(&x->w, &req);
	assert_true(req.has_third_party);		/* P-15 */
	sent = x->w.wire.nsent;

	assert_non_null(be = backend_fake_new());
	proxy_set_nat(x->w.p, PROXY_NAT_LOCAL, be, x->w.now);
	assert_int_equal(backend_fake_queued(be), 2);
	END_TURN();
	assert_int_equal(backend_fake_rule_count(be), 2);
	rl_count_maps(sent, &del, &create, &third);
	assert_int_equal(del, 2);
	assert_int_equal(create, 0);
	scn_decode_last(&x->w, &req);
	assert_true(req.has_third_party);		/* the old form */
	sent = x->w.wire.nsent;
	TIME_PASSES(RL_SETTLE_MS);
	rl_count_maps(sent, &del, &create, &third);
	assert_int_equal(create, 2);
	assert_int_equal(third, 0);			/* P-06 */
	for (i = sent; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &req);
		assert_true(req.internal_port == m1->ext_port ||
		    req.internal_port == m2->ext_port);
		rl_answer_as(i, 0, req.ext_port);
	}
	assert_int_equal(table_count(x->w.t), 2);
	assert_int_equal(m1->state, MAP_STATE_GRANTED);
	assert_int_equal(m1->outer_port, 41000);
	assert_int_equal(x->w.nlost, 0);

	/* and back: the caller removes the rules (iwfd_reload_backend) */
	sent = x->w.wire.nsent;
	proxy_set_nat(x->w.p, PROXY_NAT_NONE, NULL, x->w.now);
	assert_int_equal(backend_fake_queued(be), 0);
	END_TURN();
	rl_count_maps(sent, &del, &create, &third);
	assert_int_equal(del, 2);
	scn_decode_last(&x->w, &req);
	assert_false(req.has_third_party);		/* the old form */
	TIME_PASSES(RL_SETTLE_MS);
	rl_count_maps(sent, &del, &create, &third);
	assert_int_equal(create, 2);
	assert_int_equal(third, 2);			/* the creates' */
	assert_int_equal(table_count(x->w.t), 2);
	be->ops->close(be);
}

/* m has its local rule in the world's backend. */
static void
rl_has_rule(const struct mapping *m)
{
	const struct backend_rule *r;

	assert_non_null(r = backend_fake_lookup(x->w.be, m->protocol,
	    m->ext_port));
	assert_int_equal(r->int_port, m->internal_port);
}

/* The server restarts (RFC 6887 §8.5): m's re-creation goes out and is
   left unanswered. */
static void
rl_recreation_in_flight(struct mapping *m)
{
	size_t sent;

	TIME_PASSES(1000);
	scn_server_restart(&x->w);
	scn_announce(x->w.u, 0, 0, x->w.now);
	assert_int_equal(x->w.nlost, 1);
	sent = x->w.wire.nsent;
	TIME_PASSES(RL_SETTLE_MS);
	assert_true(x->w.wire.nsent > sent);
	assert_int_equal(m->state, MAP_STATE_RENEWING);
	assert_non_null(m->owner_data);
}

/*
 * A re-creation in flight when the last server is removed (a reload to
 * no upstream): the gateway is the last NAT, so the mapping stays, its
 * own, with its rule; its client is told (mapping_moved). (Fix, review:
 * the re-creation ended UNREACHABLE and took mapping and rule away.)
 */
static void
test_recreate_none_left(void **state)
{
	struct mapping *m;
	uint64_t expiry;
	unsigned int moved;

	(void)state;
	m = rl_map(RL_HOST_A, 1000, 1, 41000);
	rl_has_rule(m);
	rl_recreation_in_flight(m);
	expiry = m->expiry;
	moved = x->w.moved;
	rl_servers(NULL, 0);
	TIME_PASSES(RL_SETTLE_MS);
	assert_ptr_equal(rl_find(RL_HOST_A, 1000), m);
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	assert_null(m->owner_data);
	assert_int_equal(m->upstream, UPSTREAM_NO_SERVER);
	assert_int_equal(m->outer_port, m->ext_port);
	assert_int_equal(m->expiry, expiry);
	rl_has_rule(m);
	assert_int_equal(x->w.moved, moved + 1);
	assert_int_equal(upstream_in_flight(x->w.u), 0);
}

/*
 * A client's refresh in flight when the last server goes: the gateway
 * grants it itself (proxy_refresh without an upstream), the client gets
 * the mapping, not NETWORK_FAILURE; the rule follows the new lifetime.
 */
static void
test_refresh_none_left(void **state)
{
	struct mapping *m;
	uint64_t expiry;

	(void)state;
	m = rl_map(RL_HOST_A, 1000, 1, 41000);
	/* past the cache rule (RFC 7648 §3: less than 3/4 left) */
	TIME_PASSES((uint64_t)RL_LIFETIME * 1000 / 2);
	expiry = m->expiry;
	x->ndone = 0;
	rl_request(RL_HOST_A, 1000, 1);
	assert_int_equal(m->state, MAP_STATE_RENEWING);
	assert_int_equal(x->ndone, 0);
	rl_servers(NULL, 0);
	TIME_PASSES(RL_SETTLE_MS);
	assert_ptr_equal(rl_find(RL_HOST_A, 1000), m);
	assert_int_equal(x->ndone, 1);
	assert_int_equal(x->last.err, MAP_OK);
	assert_int_equal(x->last.ext_port, m->ext_port);
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	assert_int_equal(m->upstream, UPSTREAM_NO_SERVER);
	assert_true(m->expiry > expiry);
	rl_has_rule(m);
}

/*
 * Every server gone: the clients of the mappings whose external address
 * and port changed (the carrier's -> the gateway's) are told, one
 * mapping_moved each (the daemon restarts its Epoch, RFC 6887 §8.5).
 */
static void
test_none_left_tells(void **state)
{
	struct mapping *m1, *m2;
	unsigned int moved;

	(void)state;
	m1 = rl_map(RL_HOST_A, 1000, 1, 41000);
	m2 = rl_map(RL_HOST_B, 2000, 2, 42000);
	assert_int_not_equal(m1->ext_port, 41000);
	assert_int_not_equal(m2->ext_port, 42000);
	moved = x->w.moved;
	rl_servers(NULL, 0);
	assert_int_equal(x->w.moved, moved + 2);
	/* nothing moves when nothing changes */
	rl_servers(NULL, 0);
	assert_int_equal(x->w.moved, moved + 2);
}

/*
 * A create in flight across nat none -> local, answered in the old form
 * (THIRD_PARTY) after the switch: the client gets its mapping and its
 * rule; upstream the old form is deleted (P-04) and the mapping re-made
 * in the new one (P-06: the gateway's port, no THIRD_PARTY). (Fix,
 * review: it stayed in the old form.)
 */
static void
test_nat_switch_create_in_flight(void **state)
{
	struct backend *be;
	struct mapping *m;
	struct pcp_msg req;
	size_t i, create, sent, del = 0, old_form = 0, new_form = 0;
	size_t new_at = 0;

	(void)state;
	rl_request(RL_HOST_A, 1000, 7);
	create = x->w.wire.nsent - 1;
	scn_decode_sent(&x->w, create, &req);
	assert_true(req.has_third_party);
	assert_non_null(be = backend_fake_new());
	proxy_set_nat(x->w.p, PROXY_NAT_LOCAL, be, x->w.now);
	END_TURN();
	sent = x->w.wire.nsent;
	rl_answer_as(create, 0, 41000);
	assert_non_null(m = rl_find(RL_HOST_A, 1000));
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	assert_int_equal(x->last.err, MAP_OK);
	assert_non_null(backend_fake_lookup(be, MAP_PROTO_UDP, m->ext_port));
	TIME_PASSES(RL_SETTLE_MS);
	for (i = sent; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &req);
		if (req.opcode != PCP_OP_MAP || req.nonce[0] != 7)
			continue;
		if (req.lifetime == 0) {
			/* the old form's delete: THIRD_PARTY, client port */
			assert_true(req.has_third_party);
			assert_int_equal(req.internal_port, 1000);
			del++;
		} else if (req.has_third_party)
			old_form++;
		else {
			assert_int_equal(req.internal_port, m->ext_port);
			new_form++;
			new_at = i;
		}
	}
	assert_true(del >= 1);
	assert_int_equal(old_form, 0);
	assert_int_equal(new_form, 1);
	rl_answer_as(new_at, 0, 41000);
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	assert_null(m->owner_data);
	assert_int_equal(m->outer_port, 41000);
	assert_int_equal(table_count(x->w.t), 1);
	/* the proxy lets go of it before it is closed */
	proxy_set_nat(x->w.p, PROXY_NAT_NONE, NULL, x->w.now);
	be->ops->close(be);
}

/*
 * A new backend (wan_interface changed, iwfd_reload_backend) knows none
 * of the rules the old one installed: proxy_reconcile makes it hold
 * every live mapping's, in one batch.
 */
static void
test_new_backend_reconciled(void **state)
{
	struct backend *nb;
	struct mapping *m1, *m2;
	size_t n;

	(void)state;
	m1 = rl_map(RL_HOST_A, 1000, 1, 41000);
	m2 = rl_map(RL_HOST_B, 2000, 2, 42000);
	assert_non_null(nb = backend_fake_new());
	proxy_set_nat(x->w.p, PROXY_NAT_LOCAL, nb, x->w.now);
	END_TURN();
	assert_int_equal(backend_fake_rule_count(nb), 0);
	assert_int_equal(proxy_reconcile(x->w.p, x->w.now, &n), 0);
	assert_int_equal(n, 2);
	assert_int_equal(backend_fake_counters(nb)->reconciles, 1);
	assert_int_equal(backend_fake_rule_count(nb), 2);
	assert_non_null(backend_fake_lookup(nb, MAP_PROTO_UDP, m1->ext_port));
	assert_non_null(backend_fake_lookup(nb, MAP_PROTO_UDP, m2->ext_port));
	/* the world's backend goes with the world: put it back */
	proxy_set_nat(x->w.p, PROXY_NAT_LOCAL, x->w.be, x->w.now);
	nb->ops->close(nb);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_remove_first, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_add_in_front, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_engine_renumber, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_none_left, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nat_switch, setup_none,
		    teardown),
		cmocka_unit_test_setup_teardown(test_recreate_none_left,
		    setup_rules, teardown),
		cmocka_unit_test_setup_teardown(test_refresh_none_left,
		    setup_rules, teardown),
		cmocka_unit_test_setup_teardown(test_none_left_tells, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_nat_switch_create_in_flight,
		    setup_none, teardown),
		cmocka_unit_test_setup_teardown(test_new_backend_reconciled,
		    setup_rules, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
