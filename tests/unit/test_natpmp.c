/*
 * test_natpmp.c - the NAT-PMP front-end interworked to PCP upstream
 * (RFC 6886; spec/iwf.md §1, §2) on a fake clock, wired the way the daemon
 * wires it: the table, the policy (LAN 192.0.2.0/24), the upstream PCP
 * engine with a recording transport and a scripted carrier, the fake NAT
 * backend, the proxy core, the address probe (addr_probe.c) and natpmp
 * with recording send/multicast.
 *
 * Spec IDs: spec/iwf.md N-04..N-10, §2 (translation table, nonce, probe).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "addr_probe.h"
#include "backend.h"
#include "backend_fake.h"
#include "iwf_nonce.h"
#include "map.h"
#include "map_err.h"
#include "natpmp.h"
#include "natpmp_wire.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define NT_GW_LAN	"192.0.2.1"
#define NT_EXT2		"203.0.113.2"
#define NT_HOST		"192.0.2.10"
#define NT_HOST2	"192.0.2.11"
#define NT_MAX_OUT	256
#define NT_MS		1000u
#define NT_OUR_EPOCH_OFFSET 40u	/* our SSSoE = seconds since SCN_T0 + 40 */

struct nt_out {
	struct in6_addr	 to;		/* IPv4-mapped; :: for multicast */
	uint16_t	 to_port;
	uint64_t	 at;
	size_t		 len;
	uint8_t		 pkt[NATPMP_ECHO_MAX];
};

/* A proxy client other than NAT-PMP (a PCP request submitted directly). */
struct nt_wait {
	bool		 done;
	uint64_t	 at;
	enum map_err	 err;
};
#define NT_WAITS	8

struct nt {
	struct scn_world w;		/* the proxy, its engine, the carrier */
	struct addr_probe *probe;
	struct natpmp	*n;
	size_t		 nout;
	struct nt_out	 out[NT_MAX_OUT];
	size_t		 nmc;		/* multicast copies */
	uint64_t	 mc_at[NT_MAX_OUT];
	struct natpmp_response mc[NT_MAX_OUT];
	struct nt_wait	 waits[NT_WAITS];
};

static struct nt *x;

/* ---- glue (iwfd.c) ---- */

static void
nt_ext_changed(void *arg, const struct in6_addr *addr)
{
	(void)arg;
	(void)addr;
	natpmp_announce(x->n);
}

static uint32_t
nt_epoch(void *arg)
{
	(void)arg;
	return NT_OUR_EPOCH_OFFSET + (uint32_t)((x->w.now - SCN_T0) / NT_MS);
}

static uint64_t
nt_now(void *arg)
{
	(void)arg;
	return x->w.now;
}

static bool
nt_send(void *arg, const struct pcp_frontend_peer *peer, const uint8_t *buf,
    size_t len)
{
	const struct sockaddr_in *sin =
	    (const struct sockaddr_in *)(const void *)&peer->src;
	struct nt_out *o;

	assert_ptr_equal(arg, x);
	assert_true(x->nout < NT_MAX_OUT);
	assert_true(len <= sizeof(o->pkt));
	o = &x->out[x->nout++];
	pcp_addr_from_v4(&o->to, &sin->sin_addr);
	o->to_port = ntohs(sin->sin_port);
	o->at = x->w.now;
	o->len = len;
	memcpy(o->pkt, buf, len);
	return true;
}

static size_t
nt_multicast(void *arg, const uint8_t *buf, size_t len)
{
	assert_ptr_equal(arg, x);
	assert_true(x->nmc < NT_MAX_OUT);
	assert_int_equal(len, NATPMP_ADDR_RESP_SIZE);
	assert_true(natpmp_decode_response(buf, len, &x->mc[x->nmc]));
	x->mc_at[x->nmc] = x->w.now;
	x->nmc++;
	return 1;
}

/* The front-ends' timers: the probe's, then natpmp's. */
static uint64_t
nt_probe_deadline(void *arg)
{
	(void)arg;
	return addr_probe_next_deadline(x->probe);
}

static void
nt_probe_tick(void *arg, uint64_t now)
{
	(void)arg;
	addr_probe_tick(x->probe, now);
}

static uint64_t
nt_natpmp_deadline(void *arg)
{
	(void)arg;
	return natpmp_next_deadline(x->n);
}

static void
nt_natpmp_tick(void *arg, uint64_t now)
{
	(void)arg;
	natpmp_tick(x->n, now);
}

static const struct scn_timer nt_timers[] = {
	{ nt_probe_deadline, nt_probe_tick },
	{ nt_natpmp_deadline, nt_natpmp_tick },
};

/* The end of a loop turn. */
#define END_TURN()	scn_end_turn(&x->w)
/* The daemon ends its turn before the clock moves. */
#define TIME_PASSES(ms)	do {						\
	END_TURN();							\
	scn_time_passes(&x->w, (ms));					\
} while (0)

/* ---- setup ---- */

static int
nt_setup(bool upstream)
{
	const struct scn_world_conf conf = {
		.upstream = upstream,
		.backend_new = backend_fake_new,
		.ext_addr_changed = nt_ext_changed,
		.timers = nt_timers,
		.ntimers = sizeof(nt_timers) / sizeof(nt_timers[0]),
	};
	struct addr_probe_params ap;
	struct natpmp_params np;

	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(scn_world_init(&x->w, &conf), 0);
	memset(&ap, 0, sizeof(ap));
	ap.proxy = x->w.p;
	ap.table = x->w.t;
	memcpy(ap.nonce_key, x->w.key, sizeof(x->w.key));
	ap.upstream = upstream;
	ap.probe_addr = scn_addr(NT_GW_LAN);
	ap.random_seed = 5;
	ap.now = scn_world_now;
	ap.clock_arg = &x->w;
	assert_non_null(x->probe = addr_probe_new(&ap));
	memset(&np, 0, sizeof(np));
	np.proxy = x->w.p;
	np.table = x->w.t;
	np.epoch = nt_epoch;
	np.now = nt_now;
	np.send = nt_send;
	np.multicast = nt_multicast;
	np.io_arg = x;
	memcpy(np.nonce_key, x->w.key, sizeof(x->w.key));
	np.probe = x->probe;
	assert_non_null(x->n = natpmp_new(&np));
	return 0;
}

static int
setup_upstream(void **state)
{
	(void)state;
	return nt_setup(true);
}

static int
setup_last(void **state)
{
	(void)state;
	return nt_setup(false);
}

static int
nt_teardown(void **state)
{
	(void)state;
	END_TURN();
	natpmp_free(x->n);
	addr_probe_free(x->probe);
	scn_world_free(&x->w);
	free(x);
	x = NULL;
	return 0;
}

/* ---- the LAN side ---- */

static void
nt_peer(struct pcp_frontend_peer *peer, const char *host, uint16_t port)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer->src;

	memset(peer, 0, sizeof(*peer));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	assert_int_equal(inet_pton(AF_INET, host, &sin->sin_addr), 1);
	peer->src_len = sizeof(*sin);
	peer->dst = scn_addr(NT_GW_LAN);
	peer->ifindex = 2;
}

static void
nt_input_raw(const char *host, uint16_t port, const uint8_t *pkt, size_t len)
{
	struct pcp_frontend_peer peer;

	nt_peer(&peer, host, port);
	natpmp_input(x->n, NULL, &peer, pkt, len);
	END_TURN();
}

static void
nt_map_from(const char *host, uint16_t src_port, uint8_t op,
    uint16_t internal, uint16_t suggested, uint32_t lifetime)
{
	struct natpmp_request r;
	uint8_t buf[NATPMP_MAP_REQ_SIZE];

	memset(&r, 0, sizeof(r));
	r.opcode = op;
	r.internal_port = internal;
	r.ext_port = suggested;
	r.lifetime = lifetime;
	assert_int_equal(natpmp_encode_request(&r, buf, sizeof(buf)),
	    sizeof(buf));
	nt_input_raw(host, src_port, buf, sizeof(buf));
}

static void
nt_map(const char *host, uint8_t op, uint16_t internal, uint16_t suggested,
    uint32_t lifetime)
{
	nt_map_from(host, 40000, op, internal, suggested, lifetime);
}

static void
nt_addr_req(const char *host)
{
	static const uint8_t req[] = { 0, 0 };

	nt_input_raw(host, 40001, req, sizeof(req));
}

static void
nt_reply(size_t i, struct natpmp_response *r)
{
	assert_true(i < x->nout);
	assert_true(natpmp_decode_response(x->out[i].pkt, x->out[i].len, r));
}

static void
nt_last_reply(struct natpmp_response *r)
{
	assert_true(x->nout > 0);
	nt_reply(x->nout - 1, r);
}

/* ---- the scripted carrier ---- */

static void
srv_answer(size_t i, uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	scn_answer(&x->w, i, result, lifetime, ext_port);
	END_TURN();
}

static void
srv_answer_last(uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	scn_answer_last(&x->w, result, lifetime, ext_port);
	END_TURN();
}

static struct mapping *
nt_find(const char *host, uint8_t proto, uint16_t port)
{
	struct in6_addr a = scn_addr(host);

	return table_find_internal(x->w.t, proto, &a, port);
}

/* Learn the carrier's address through the probe, answered at once. */
static void
nt_learn_address(void)
{
	size_t nout = x->nout;

	nt_addr_req(NT_HOST);
	srv_answer_last(PCP_SUCCESS, 120, 55555);
	assert_int_equal(x->nout, nout + 1);
	TIME_PASSES(1);		/* the probe's delete */
}

/* A whole map: request, carrier's grant; returns the reply. */
static void
nt_grant(const char *host, uint8_t op, uint16_t internal, uint16_t outer,
    uint32_t lifetime, struct natpmp_response *r)
{
	size_t nout = x->nout;

	nt_map(host, op, internal, internal, lifetime);
	assert_int_equal(x->nout, nout);
	srv_answer_last(PCP_SUCCESS, lifetime, outer);
	assert_int_equal(x->nout, nout + 1);
	nt_last_reply(r);
	assert_int_equal(r->result, NATPMP_RESULT_SUCCESS);
}

/* proxy_done_fn of the requests nt_pcp_submit() makes. */
static void
nt_wait_done(void *arg, const struct map_req *req,
    const struct map_result *res)
{
	struct nt_wait *w = arg;

	(void)req;
	assert_false(w->done);
	w->done = true;
	w->at = x->w.now;
	w->err = res->err;
}

/* A PCP MAP straight to the proxy, waiting wait_ms (0: the default);
   the answer lands in x->waits[slot]. */
static void
nt_pcp_submit(size_t slot, uint16_t internal, uint32_t wait_ms)
{
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };

	assert_true(slot < NT_WAITS);
	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_PCP;
	req.requester = req.internal_addr = scn_addr(NT_HOST2);
	req.protocol = MAP_PROTO_UDP;
	req.internal_port = internal;
	req.ext_port = internal;
	req.lifetime = 3600;
	req.wait_ms = wait_ms;
	pcp_addr_from_v4(&req.ext_addr, &any);
	memset(req.nonce, (int)(0x70 + slot), sizeof(req.nonce));
	assert_false(proxy_submit(x->w.p, &req, x->w.now, nt_wait_done,
	    &x->waits[slot], &res));
	END_TURN();
}

/* The index of the last MAP sent upstream for this internal port. */
static size_t
srv_last_for(uint16_t internal_port)
{
	struct pcp_msg m;
	size_t i;

	for (i = x->w.wire.nsent; i-- > 0;) {
		scn_decode_sent(&x->w, i, &m);
		if (m.opcode == PCP_OP_MAP && m.internal_port == internal_port)
			return i;
	}
	fail_msg("no MAP for port %u", internal_port);
	return 0;
}

/* ---- tests ---- */

/* N-10, spec/iwf.md §2: before any mapping the address is unknown; op 0
   starts the probe, waits for it (retransmissions join, no second MAP),
   and gets the carrier's address; the probe's mapping is deleted again,
   and the newly learned address is announced (N-08). */
static void
test_address_probe(void **state)
{
	struct natpmp_response r;
	struct pcp_msg m;
	struct in6_addr gw = scn_addr(NT_GW_LAN), ext;
	struct mapping *mp;
	size_t i;

	(void)state;
	assert_false(proxy_external_addr(x->w.p, &ext));
	nt_addr_req(NT_HOST);
	assert_int_equal(x->nout, 0);
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_sent(&x->w, 0, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.protocol, MAP_PROTO_UDP);
	assert_true(m.internal_port >= ADDR_PROBE_PORT_MIN);
	assert_int_equal(m.lifetime, ADDR_PROBE_LIFETIME);
	mp = table_host_first(x->w.t, &gw);
	assert_non_null(mp);
	assert_int_equal(mp->origin, MAP_ORIGIN_NATPMP);

	/* client retransmissions at 250 and 500 ms join the wait */
	TIME_PASSES(250);
	nt_addr_req(NT_HOST);
	TIME_PASSES(500);
	nt_addr_req(NT_HOST);
	assert_int_equal(x->nout, 0);
	assert_int_equal(x->w.wire.nsent, 1);
	assert_int_equal(natpmp_stats(x->n)->addr_waiting, 1);
	assert_int_equal(addr_probe_stats(x->probe)->probes, 1);

	srv_answer(0, PCP_SUCCESS, 120, 61000);
	assert_int_equal(x->nout, 1);
	nt_reply(0, &r);
	assert_int_equal(r.opcode, NATPMP_OP_ADDRESS);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.epoch, NT_OUR_EPOCH_OFFSET);
	assert_int_equal(x->out[0].to_port, 40001);
	pcp_addr_from_v4(&ext, &r.ext_addr);
	assert_memory_equal(&ext, &x->w.ext_addr, sizeof(ext));

	/* next tick: the probe mapping is deleted locally and upstream */
	TIME_PASSES(1);
	assert_null(table_host_first(x->w.t, &gw));
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.lifetime, 0);

	/* RFC 6886 §3.2.1: 10 announcements, 250 ms doubling */
	TIME_PASSES(300000);
	assert_int_equal(x->nmc, NATPMP_ANNOUNCE_COUNT);
	for (i = 0; i < x->nmc; i++) {
		assert_int_equal(x->mc[i].result, 0);
		assert_memory_equal(&x->mc[i].ext_addr, &r.ext_addr, 4);
		assert_int_equal(x->mc[i].epoch, nt_epoch(NULL) -
		    (uint32_t)((x->w.now - x->mc_at[i]) / NT_MS));
		if (i >= 1)
			assert_int_equal(x->mc_at[i] - x->mc_at[i - 1],
			    (uint64_t)NATPMP_ANNOUNCE_FIRST_GAP_MS << (i - 1));
	}
	/* known now: answered at once, no more probes */
	nt_addr_req(NT_HOST2);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(addr_probe_stats(x->probe)->probes, 1);
}

/* N-10: the probe gets no answer: 3 and address 0 after the NAT-PMP
   client wait (not the proxy's shorter one); its mapping goes with it,
   upstream too (a delete); another op 0 within the retry time after the
   failure is answered 3 at once, no probe; after it a new probe goes. */
static void
test_address_probe_fails(void **state)
{
	static const uint8_t zero[4];
	struct in6_addr gw = scn_addr(NT_GW_LAN);
	struct natpmp_response r;
	struct pcp_msg m;
	size_t nsent;

	(void)state;
	nt_addr_req(NT_HOST);
	TIME_PASSES(PROXY_CLIENT_WAIT_MS);
	assert_int_equal(x->nout, 0);
	TIME_PASSES(NATPMP_CLIENT_WAIT_MS - PROXY_CLIENT_WAIT_MS);
	assert_int_equal(x->nout, 1);
	nt_reply(0, &r);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	assert_memory_equal(&r.ext_addr, zero, 4);
	assert_memory_equal(x->out[0].pkt + 8, zero, 4);
	assert_null(table_host_first(x->w.t, &gw));
	scn_decode_sent(&x->w, x->w.wire.nsent - 1, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.lifetime, 0);
	nsent = x->w.wire.nsent;
	nt_addr_req(NT_HOST);
	assert_int_equal(x->nout, 2);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	assert_int_equal(addr_probe_stats(x->probe)->probes, 1);
	assert_int_equal(x->w.wire.nsent, nsent);
	/* ADDR_PROBE_RETRY_MS counts from the failure */
	TIME_PASSES(ADDR_PROBE_RETRY_MS - 1);
	nt_addr_req(NT_HOST);
	assert_int_equal(x->nout, 3);
	assert_int_equal(addr_probe_stats(x->probe)->probes, 1);
	TIME_PASSES(1);
	nsent = x->w.wire.nsent;
	nt_addr_req(NT_HOST);
	assert_int_equal(addr_probe_stats(x->probe)->probes, 2);
	assert_int_equal(x->nout, 3);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &m);
	assert_int_equal(m.lifetime, ADDR_PROBE_LIFETIME);
	srv_answer_last(PCP_SUCCESS, 120, 61000);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	/* the upstream goes silent later: the last learned address stays
	   (docs/natpmp.md) */
	TIME_PASSES(1);
	nt_addr_req(NT_HOST2);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
}

/* spec/iwf.md §2: op 1 becomes a MAP upstream (UDP, the client's port as
   suggestion, the synthesized nonce, no PREFER_FAILURE); retransmissions
   join it (N-09): one answer per client socket, with the carrier's port
   and lifetime. */
static void
test_map_udp_retransmissions(void **state)
{
	struct natpmp_response r;
	struct pcp_msg m;
	struct mapping *mp;
	uint8_t nonce[MAP_NONCE_SIZE];
	struct in6_addr host = scn_addr(NT_HOST);
	size_t nsent, i;

	(void)state;
	nt_learn_address();
	nsent = x->w.wire.nsent;
	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 6000, 3600);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &m);
	assert_int_equal(m.protocol, MAP_PROTO_UDP);
	assert_int_equal(m.ext_port, 6000);
	assert_int_equal(m.lifetime, 3600);
	assert_false(m.prefer_failure);
	iwf_nonce(x->w.key, MAP_ORIGIN_NATPMP, &host, MAP_PROTO_UDP, 5000,
	    nonce);
	assert_memory_equal(m.nonce, nonce, sizeof(nonce));
	/* libnatpmp's retransmissions: 250, 500, 1000 ms */
	for (i = 0; i < 3; i++) {
		TIME_PASSES((uint64_t)250 << i);
		nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 6000, 3600);
	}
	assert_int_equal(natpmp_stats(x->n)->joined, 3);
	/* the same request from another socket of the host: its own answer */
	nt_map_from(NT_HOST, 40002, NATPMP_OP_MAP_UDP, 5000, 6000, 3600);
	assert_int_equal(natpmp_stats(x->n)->pending, 2);
	assert_int_equal(x->nout, 1);	/* only the probe's answer */
	/* the engine's own retransmission is of the same request */
	for (i = nsent; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &m);
		assert_memory_equal(m.nonce, nonce, sizeof(nonce));
	}
	srv_answer(nsent, PCP_SUCCESS, 1800, 40404);
	assert_int_equal(x->nout, 1 + 2);
	for (i = 1; i < x->nout; i++) {
		nt_reply(i, &r);
		assert_int_equal(r.opcode, NATPMP_OP_MAP_UDP);
		assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
		assert_int_equal(r.internal_port, 5000);
		assert_int_equal(r.ext_port, 40404);
		assert_int_equal(r.lifetime, 1800);
	}
	assert_int_not_equal(x->out[1].to_port, x->out[2].to_port);
	assert_true(x->out[1].to_port == 40000 || x->out[1].to_port == 40002);
	assert_true(x->out[2].to_port == 40000 || x->out[2].to_port == 40002);
	assert_int_equal(x->out[x->nout - 1].len, NATPMP_MAP_RESP_SIZE);
	mp = nt_find(NT_HOST, MAP_PROTO_UDP, 5000);
	assert_non_null(mp);
	assert_int_equal(mp->origin, MAP_ORIGIN_NATPMP);
	assert_int_equal(mp->outer_port, 40404);
	assert_non_null(backend_fake_lookup(x->w.be, MAP_PROTO_UDP,
	    mp->ext_port));
	assert_int_equal(natpmp_stats(x->n)->pending, 0);
}

/* spec/iwf.md §2: suggestion 0 -> the internal port as the hint. */
static void
test_map_tcp_no_suggestion(void **state)
{
	struct natpmp_response r;
	struct pcp_msg m;
	size_t nsent;

	(void)state;
	nt_learn_address();
	nsent = x->w.wire.nsent;
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 8080, 0, 7200);
	scn_decode_sent(&x->w, nsent, &m);
	assert_int_equal(m.protocol, MAP_PROTO_TCP);
	assert_int_equal(m.ext_port, 8080);
	srv_answer_last(PCP_SUCCESS, 7200, 18080);
	nt_last_reply(&r);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_TCP);
	assert_int_equal(r.ext_port, 18080);
	assert_int_equal(x->out[x->nout - 1].pkt[1], 130);
}

/* N-06: lifetime 0 deletes, locally and upstream with the same nonce;
   deleting it again (a retransmitted delete) is the same success. */
static void
test_delete(void **state)
{
	struct natpmp_response r;
	struct pcp_msg m;
	uint8_t nonce[MAP_NONCE_SIZE];
	uint16_t local;
	size_t nsent, k;

	(void)state;
	nt_learn_address();
	nt_grant(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 40404, 3600, &r);
	memcpy(nonce, nt_find(NT_HOST, MAP_PROTO_UDP, 5000)->nonce,
	    sizeof(nonce));
	local = nt_find(NT_HOST, MAP_PROTO_UDP, 5000)->ext_port;
	for (k = 0; k < 2; k++) {
		nsent = x->w.wire.nsent;
		nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 40404, 0);
		nt_last_reply(&r);
		assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
		assert_int_equal(r.internal_port, 5000);
		assert_int_equal(r.ext_port, 0);
		assert_int_equal(r.lifetime, 0);
		assert_null(nt_find(NT_HOST, MAP_PROTO_UDP, 5000));
		assert_null(backend_fake_lookup(x->w.be, MAP_PROTO_UDP, local));
		if (k == 0) {
			assert_int_equal(x->w.wire.nsent, nsent + 1);
			scn_decode_sent(&x->w, nsent, &m);
			assert_int_equal(m.lifetime, 0);
			assert_int_equal(m.ext_port, 0);
			assert_memory_equal(m.nonce, nonce, sizeof(nonce));
		} else
			assert_int_equal(x->w.wire.nsent, nsent);
	}
}

/* RFC 6886 §3.4: internal port 0 + lifetime 0 deletes all of the host's
   NAT-PMP mappings of that protocol, nothing else; internal port 0 with a
   lifetime is refused (2). */
static void
test_delete_all(void **state)
{
	struct natpmp_response r;
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };

	(void)state;
	nt_learn_address();
	nt_grant(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 40001, 3600, &r);
	nt_grant(NT_HOST, NATPMP_OP_MAP_UDP, 5001, 40002, 3600, &r);
	nt_grant(NT_HOST, NATPMP_OP_MAP_TCP, 5000, 40003, 3600, &r);
	nt_grant(NT_HOST2, NATPMP_OP_MAP_UDP, 5000, 40004, 3600, &r);
	/* a PCP mapping of the same host and protocol */
	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_PCP;
	req.requester = req.internal_addr = scn_addr(NT_HOST);
	req.protocol = MAP_PROTO_UDP;
	req.internal_port = 5002;
	req.ext_port = 5002;
	req.lifetime = 3600;
	pcp_addr_from_v4(&req.ext_addr, &any);
	memset(req.nonce, 7, sizeof(req.nonce));
	assert_false(proxy_submit(x->w.p, &req, x->w.now, NULL, NULL, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, 3600, 40005);
	assert_int_equal(table_count(x->w.t), 5);

	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 0, 0, 0);
	nt_last_reply(&r);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_UDP);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.internal_port, 0);
	assert_int_equal(r.ext_port, 0);
	assert_int_equal(r.lifetime, 0);
	assert_null(nt_find(NT_HOST, MAP_PROTO_UDP, 5000));
	assert_null(nt_find(NT_HOST, MAP_PROTO_UDP, 5001));
	assert_non_null(nt_find(NT_HOST, MAP_PROTO_TCP, 5000));
	assert_non_null(nt_find(NT_HOST2, MAP_PROTO_UDP, 5000));
	assert_non_null(nt_find(NT_HOST, MAP_PROTO_UDP, 5002));
	assert_int_equal(table_count(x->w.t), 3);

	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 0, 0, 3600);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_NOT_AUTHORIZED);
	assert_int_equal(r.ext_port, 0);
	assert_int_equal(r.lifetime, 0);
	assert_non_null(nt_find(NT_HOST, MAP_PROTO_TCP, 5000));
}

/* One table: a NAT-PMP request for a port the host mapped through PCP
   is another owner's (2, untouched); a second host asking for the same
   external port gets another local port (N-05). */
static void
test_one_table(void **state)
{
	struct natpmp_response r;
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };
	struct mapping *a, *b;

	(void)state;
	nt_learn_address();
	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_PCP;
	req.requester = req.internal_addr = scn_addr(NT_HOST);
	req.protocol = MAP_PROTO_TCP;
	req.internal_port = 7000;
	req.ext_port = 7000;
	req.lifetime = 3600;
	pcp_addr_from_v4(&req.ext_addr, &any);
	memset(req.nonce, 7, sizeof(req.nonce));
	assert_false(proxy_submit(x->w.p, &req, x->w.now, NULL, NULL, &res));
	END_TURN();
	srv_answer_last(PCP_SUCCESS, 3600, 47000);
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 7000, 7000, 3600);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_NOT_AUTHORIZED);
	assert_int_equal(nt_find(NT_HOST, MAP_PROTO_TCP, 7000)->origin,
	    MAP_ORIGIN_PCP);

	nt_grant(NT_HOST, NATPMP_OP_MAP_UDP, 9000, 49000, 3600, &r);
	nt_map(NT_HOST2, NATPMP_OP_MAP_UDP, 9000, 9000, 3600);
	a = nt_find(NT_HOST, MAP_PROTO_UDP, 9000);
	b = nt_find(NT_HOST2, MAP_PROTO_UDP, 9000);
	assert_non_null(b);
	assert_int_not_equal(a->ext_port, b->ext_port);
	srv_answer_last(PCP_SUCCESS, 3600, 49001);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.ext_port, 49001);
	assert_int_equal(a->outer_port, 49000);
	/* RFC 6886 §3.3: the TCP twin of the first host's UDP port is
	   reserved for it: the second host does not get that local port */
	nt_map(NT_HOST2, NATPMP_OP_MAP_TCP, 9100, a->ext_port, 3600);
	b = nt_find(NT_HOST2, MAP_PROTO_TCP, 9100);
	assert_non_null(b);
	assert_int_not_equal(b->ext_port, a->ext_port);
}

/* spec/iwf.md §2 translation table: the carrier's PCP result -> the
   NAT-PMP result the client sees, row by row; nothing is left behind. */
static void
test_result_translation(void **state)
{
	static const struct { uint8_t pcp; uint16_t natpmp; } rows[] = {
		{ PCP_NOT_AUTHORIZED, NATPMP_RESULT_NOT_AUTHORIZED },
		{ PCP_UNSUPP_PROTOCOL, NATPMP_RESULT_NOT_AUTHORIZED },
		{ PCP_NO_RESOURCES, NATPMP_RESULT_NO_RESOURCES },
		{ PCP_USER_EX_QUOTA, NATPMP_RESULT_NO_RESOURCES },
		{ PCP_CANNOT_PROVIDE_EXTERNAL, NATPMP_RESULT_NO_RESOURCES },
		{ PCP_NETWORK_FAILURE, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_ADDRESS_MISMATCH, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_UNSUPP_VERSION, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_MALFORMED_REQUEST, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_UNSUPP_OPCODE, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_UNSUPP_OPTION, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_MALFORMED_OPTION, NATPMP_RESULT_NETWORK_FAILURE },
		{ PCP_EXCESSIVE_REMOTE_PEERS, NATPMP_RESULT_NETWORK_FAILURE },
	};
	struct natpmp_response r;
	size_t i, nout;
	uint16_t port;

	(void)state;
	nt_learn_address();
	for (i = 0; i < sizeof(rows) / sizeof(rows[0]); i++) {
		port = (uint16_t)(10000 + i);
		nout = x->nout;
		nt_map(NT_HOST, NATPMP_OP_MAP_UDP, port, port, 3600);
		srv_answer_last(rows[i].pcp, 30, 0);
		assert_int_equal(x->nout, nout + 1);
		nt_last_reply(&r);
		assert_int_equal(r.result, rows[i].natpmp);
		assert_int_equal(r.internal_port, port);
		assert_int_equal(r.ext_port, 0);
		assert_int_equal(r.lifetime, 0);
		/* no half-made mapping */
		assert_null(nt_find(NT_HOST, MAP_PROTO_UDP, port));
	}
	/* and the upstream timing out: 3 after the NAT-PMP client wait */
	nout = x->nout;
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 12000, 12000, 3600);
	TIME_PASSES(NATPMP_CLIENT_WAIT_MS - 1);
	assert_int_equal(x->nout, nout);
	TIME_PASSES(1);
	assert_int_equal(x->nout, nout + 1);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	/* every neutral error has its NAT-PMP code within RFC 6886 §3.5 */
	for (i = 0; i < MAP_ERR_COUNT; i++)
		assert_true(map_err_row((enum map_err)i)->natpmp_result <=
		    NATPMP_RESULT_UNSUPP_OPCODE);
}

/* Policy: a source outside the LAN prefixes is refused (2). */
static void
test_policy_refusal(void **state)
{
	struct natpmp_response r;

	(void)state;
	nt_learn_address();
	nt_map("10.9.9.9", NATPMP_OP_MAP_TCP, 80, 80, 3600);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_NOT_AUTHORIZED);
	assert_int_equal(table_count(x->w.t), 0);
}

/* RFC 6886 §3.5 over the front-end: short and response packets dropped,
   unknown opcodes echoed with 5, IPv6 sources dropped. */
static void
test_malformed_input(void **state)
{
	static const uint8_t one[] = { 0 };
	static const uint8_t short_map[] = { 0, 1, 0, 0, 0, 80 };
	static const uint8_t resp[] = { 0, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	static const uint8_t op9[] = { 0, 9, 0xaa, 0xbb, 1, 2, 3, 4, 5, 6 };
	static const uint8_t v1[] = { 1, 0 };
	struct pcp_frontend_peer peer;
	struct sockaddr_in6 *sin6;
	uint8_t buf[NATPMP_MAP_REQ_SIZE] = { 0, 1 };

	(void)state;
	nt_input_raw(NT_HOST, 1, one, sizeof(one));
	nt_input_raw(NT_HOST, 1, short_map, sizeof(short_map));
	nt_input_raw(NT_HOST, 1, resp, sizeof(resp));
	assert_int_equal(x->nout, 0);
	assert_int_equal(natpmp_stats(x->n)->dropped, 3);
	nt_input_raw(NT_HOST, 1, op9, sizeof(op9));
	assert_int_equal(x->nout, 1);
	assert_int_equal(x->out[0].len, sizeof(op9));
	assert_int_equal(x->out[0].pkt[1], 128 + 9);
	assert_int_equal(x->out[0].pkt[3], NATPMP_RESULT_UNSUPP_OPCODE);
	assert_int_equal(x->out[0].pkt[8], 5);
	nt_input_raw(NT_HOST, 1, v1, sizeof(v1));
	assert_int_equal(x->nout, 2);
	assert_int_equal(x->out[1].len, NATPMP_HDR_SIZE);
	assert_int_equal(x->out[1].pkt[3], NATPMP_RESULT_UNSUPP_VERSION);
	/* IPv6: not NAT-PMP */
	memset(&peer, 0, sizeof(peer));
	sin6 = (struct sockaddr_in6 *)&peer.src;
	sin6->sin6_family = AF_INET6;
	peer.src_len = sizeof(*sin6);
	natpmp_input(x->n, NULL, &peer, buf, sizeof(buf));
	assert_int_equal(x->nout, 2);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(x->w.wire.nsent, 0);
}

/* No upstream: the gateway's WAN address at once, announced at start;
   a map is granted locally; SSSoE is our epoch. */
static void
test_last_nat(void **state)
{
	struct natpmp_response r;
	struct in6_addr a, wan = scn_addr(SCN_WAN);

	(void)state;
	natpmp_start(x->n);
	TIME_PASSES(1);
	assert_int_equal(x->nmc, 1);
	nt_addr_req(NT_HOST);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	pcp_addr_from_v4(&a, &r.ext_addr);
	assert_memory_equal(&a, &wan, sizeof(a));
	TIME_PASSES(5000);
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 8000, 8000, 600);
	TIME_PASSES(1);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.ext_port, 8000);
	assert_int_equal(r.lifetime, 600);
	assert_int_equal(r.epoch, nt_epoch(NULL));
	assert_int_equal(addr_probe_stats(x->probe)->probes, 0);
	TIME_PASSES(300000);
	assert_int_equal(x->nmc, NATPMP_ANNOUNCE_COUNT);
}

/* RFC 6887 §8.5 / RFC 6886 §3.2.1: the carrier's address changes: a new
   announcement sequence with the new address. */
static void
test_address_change_announced(void **state)
{
	struct natpmp_response r;
	struct in6_addr a;
	size_t nmc;

	(void)state;
	nt_learn_address();
	TIME_PASSES(300000);
	nmc = x->nmc;
	assert_int_equal(nmc, NATPMP_ANNOUNCE_COUNT);
	x->w.ext_addr = scn_addr(NT_EXT2);
	nt_grant(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 40001, 3600, &r);
	TIME_PASSES(300000);
	assert_int_equal(x->nmc, 2 * NATPMP_ANNOUNCE_COUNT);
	pcp_addr_from_v4(&a, &x->mc[nmc].ext_addr);
	assert_memory_equal(&a, &x->w.ext_addr, sizeof(a));
}

/* The synthesized nonce: SipHash-2-4's reference vector, stability, and
   every input field counting. */
static void
test_nonce(void **state)
{
	uint8_t key[IWF_NONCE_KEY_SIZE], msg[15], a[MAP_NONCE_SIZE],
	    b[MAP_NONCE_SIZE];
	struct in6_addr h1 = scn_addr(NT_HOST), h2 = scn_addr(NT_HOST2);
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(key); i++)
		key[i] = (uint8_t)i;
	for (i = 0; i < sizeof(msg); i++)
		msg[i] = (uint8_t)i;
	/* Aumasson & Bernstein, SipHash paper, Appendix A */
	assert_true(iwf_siphash(key, msg, sizeof(msg)) ==
	    0xa129ca6149be45e5ULL);
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h1, MAP_PROTO_UDP, 5000, a);
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h1, MAP_PROTO_UDP, 5000, b);
	assert_memory_equal(a, b, sizeof(a));
	iwf_nonce(key, MAP_ORIGIN_UPNP, &h1, MAP_PROTO_UDP, 5000, b);
	assert_memory_not_equal(a, b, sizeof(a));
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h2, MAP_PROTO_UDP, 5000, b);
	assert_memory_not_equal(a, b, sizeof(a));
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h1, MAP_PROTO_TCP, 5000, b);
	assert_memory_not_equal(a, b, sizeof(a));
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h1, MAP_PROTO_UDP, 5001, b);
	assert_memory_not_equal(a, b, sizeof(a));
	key[0] ^= 1;
	iwf_nonce(key, MAP_ORIGIN_NATPMP, &h1, MAP_PROTO_UDP, 5000, b);
	assert_memory_not_equal(a, b, sizeof(a));
}

/* natpmp_free with requests pending: nothing is called back later. */
static void
test_free_pending(void **state)
{
	(void)state;
	nt_addr_req(NT_HOST);
	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 5000, 3600);
	assert_int_equal(natpmp_stats(x->n)->pending, 1);
	natpmp_free(x->n);
	x->n = NULL;
	srv_answer(0, PCP_SUCCESS, 120, 61000);
	srv_answer(1, PCP_SUCCESS, 3600, 40000);
	assert_int_equal(x->nout, 0);
	/* teardown frees nothing twice */
	assert_non_null(x->n = natpmp_new(&(struct natpmp_params){
	    .proxy = x->w.p, .table = x->w.t, .epoch = nt_epoch, .now = nt_now,
	    .send = nt_send, .multicast = nt_multicast, .io_arg = x }));
}

/* Issue 5: one host cannot block NAT-PMP for the others (RFC 6886 §3.5
   allows 4 when out of resources). Its retransmissions of a waiting
   request join that request: one record, one MAP upstream, one answer.
   Beyond NATPMP_MAX_PENDING_HOST different waiting requests it gets 4 at
   once; another host is served as usual, and the flooding host can still
   delete. */
static void
test_one_host_flood(void **state)
{
	struct natpmp_response r;
	size_t i, nsent, nout, nover;

	(void)state;
	nt_learn_address();
	nsent = x->w.wire.nsent;
	nout = x->nout;
	for (i = 0; i < NATPMP_MAX_PENDING; i++)
		nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 5000, 3600);
	assert_int_equal(natpmp_stats(x->n)->pending, 1);
	assert_int_equal(natpmp_stats(x->n)->joined, NATPMP_MAX_PENDING - 1);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	assert_int_equal(x->nout, nout);

	/* different requests: up to the host's share, then 4 at once */
	nover = 4;
	for (i = 1; i < NATPMP_MAX_PENDING_HOST + nover; i++)
		nt_map(NT_HOST, NATPMP_OP_MAP_TCP, (uint16_t)(6000 + i),
		    (uint16_t)(6000 + i), 3600);
	assert_int_equal(natpmp_stats(x->n)->pending,
	    NATPMP_MAX_PENDING_HOST);
	assert_int_equal(natpmp_stats(x->n)->overload, nover);
	assert_int_equal(x->nout, nout + nover);
	for (i = 0; i < nover; i++) {
		nt_reply(nout + i, &r);
		assert_int_equal(r.opcode, NATPMP_OP_MAP_TCP);
		assert_int_equal(r.result, NATPMP_RESULT_NO_RESOURCES);
		assert_int_equal(r.internal_port,
		    6000 + NATPMP_MAX_PENDING_HOST + i);
		assert_int_equal(r.ext_port, 0);
		assert_int_equal(r.lifetime, 0);
	}
	/* a retransmission of a waiting request is still no new request */
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 6001, 6001, 3600);
	assert_int_equal(x->nout, nout + nover);

	/* another host: waits for the carrier and gets its mapping */
	nt_grant(NT_HOST2, NATPMP_OP_MAP_TCP, 7000, 47000, 3600, &r);
	assert_int_equal(r.ext_port, 47000);

	/* the flooding host's delete is answered (0: nothing to delete) */
	nout = x->nout;
	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 9999, 0, 0);
	assert_int_equal(x->nout, nout + 1);
	nt_last_reply(&r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);

	/* the carrier grants the first: one answer for its 1024 copies */
	srv_answer(nsent, PCP_SUCCESS, 3600, 45000);
	assert_int_equal(x->nout, nout + 2);
	nt_last_reply(&r);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_UDP);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.internal_port, 5000);
	assert_int_equal(r.ext_port, 45000);
	assert_int_equal(x->out[x->nout - 1].to_port, 40000);
	assert_int_equal(natpmp_stats(x->n)->pending,
	    NATPMP_MAX_PENDING_HOST - 1);
}

/* Issue 5: a create still waiting for the carrier when its mapping is
   deleted (the client's own delete, a delete-all): the create is answered
   3 with port and lifetime 0 - never "0, port 0, lifetime 0", which reads
   as a grant - and the delete 0; the carrier's late grant changes
   nothing. */
static void
test_delete_while_waiting(void **state)
{
	struct natpmp_response r;
	size_t first;

	(void)state;
	nt_learn_address();
	x->nout = 0;
	first = x->w.wire.nsent;
	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 5000, 3600);
	assert_int_equal(x->nout, 0);
	nt_map(NT_HOST, NATPMP_OP_MAP_UDP, 5000, 0, 0);
	assert_int_equal(x->nout, 2);
	nt_reply(0, &r);	/* the waiting create */
	assert_int_equal(r.opcode, NATPMP_OP_MAP_UDP);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	assert_int_equal(r.internal_port, 5000);
	assert_int_equal(r.ext_port, 0);
	assert_int_equal(r.lifetime, 0);
	nt_reply(1, &r);	/* the delete */
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.internal_port, 5000);
	assert_null(nt_find(NT_HOST, MAP_PROTO_UDP, 5000));
	assert_int_equal(natpmp_stats(x->n)->pending, 0);

	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 6000, 6000, 3600);
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 0, 0, 0);
	assert_int_equal(x->nout, 4);
	nt_reply(2, &r);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_TCP);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	assert_int_equal(r.internal_port, 6000);
	assert_int_equal(r.ext_port, 0);
	assert_int_equal(r.lifetime, 0);
	nt_reply(3, &r);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.internal_port, 0);

	srv_answer(first, PCP_SUCCESS, 3600, 45000);
	TIME_PASSES(1000);
	assert_int_equal(x->nout, 4);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
}

/* Issue 5: the carrier answers the probe only after the probe's wait ran
   out. The probe's mapping went with the wait - deleted at the next tick,
   upstream too - so the late grant leaves nothing behind: no mapping, no
   DNAT to the gateway's own address. */
static void
test_probe_late_grant(void **state)
{
	struct in6_addr gw = scn_addr(NT_GW_LAN);
	struct natpmp_response r;
	struct pcp_msg probe, m;
	size_t i, deletes = 0, last_map = 0;

	(void)state;
	nt_addr_req(NT_HOST);
	scn_decode_sent(&x->w, 0, &probe);
	assert_non_null(table_host_first(x->w.t, &gw));
	TIME_PASSES(NATPMP_CLIENT_WAIT_MS);
	assert_int_equal(x->nout, 1);
	nt_reply(0, &r);
	assert_int_equal(r.result, NATPMP_RESULT_NETWORK_FAILURE);
	assert_null(table_host_first(x->w.t, &gw));
	for (i = 0; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &m);
		if (m.internal_port != probe.internal_port ||
		    memcmp(m.nonce, probe.nonce, sizeof(m.nonce)) != 0)
			continue;
		if (m.lifetime == 0)
			deletes++;
		else
			last_map = i;
	}
	assert_true(deletes >= 1);

	/* the carrier's grant of the probe MAP's last copy arrives now */
	srv_answer(last_map, PCP_SUCCESS, 120, 61000);
	TIME_PASSES(1000);
	assert_null(table_host_first(x->w.t, &gw));
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	TIME_PASSES(121000);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(x->nout, 1);
}

/* Issue 5, spec/iwf.md §2 "Timing": a NAT-PMP client waits
   NATPMP_CLIENT_WAIT_MS for the carrier, not PROXY_CLIENT_WAIT_MS; a PCP
   client still gets 3 after the proxy's wait even when it came after the
   NAT-PMP request. The carrier answering at 20 s (its first packets
   lost) gives the NAT-PMP client Success, not 3. */
static void
test_natpmp_long_wait(void **state)
{
	struct natpmp_response r;
	size_t nout, nsent;

	(void)state;
	nt_learn_address();
	nout = x->nout;
	nsent = x->w.wire.nsent;
	nt_map(NT_HOST, NATPMP_OP_MAP_TCP, 8000, 8000, 3600);
	TIME_PASSES(100);
	nt_pcp_submit(0, 9000, 0);
	TIME_PASSES(PROXY_CLIENT_WAIT_MS);
	assert_true(x->waits[0].done);
	assert_int_equal(x->waits[0].err, MAP_ERR_NETWORK_FAILURE);
	assert_int_equal(x->waits[0].at, x->w.now);
	assert_int_equal(x->nout, nout);
	TIME_PASSES(20000 - 100 - PROXY_CLIENT_WAIT_MS);
	/* the engine retransmitted meanwhile (RFC 6887 §8.1.1) */
	assert_true(srv_last_for(8000) > nsent);
	srv_answer(srv_last_for(8000), PCP_SUCCESS, 3600, 48000);
	assert_int_equal(x->nout, nout + 1);
	nt_last_reply(&r);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_TCP);
	assert_int_equal(r.result, NATPMP_RESULT_SUCCESS);
	assert_int_equal(r.internal_port, 8000);
	assert_int_equal(r.ext_port, 48000);
	assert_int_equal(r.lifetime, 3600);
	TIME_PASSES(NATPMP_CLIENT_WAIT_MS);
	assert_int_equal(x->nout, nout + 1);
}

/* The proxy's per-request wait (struct map_req wait_ms): more distinct
   waits than the proxy has FIFO classes, submitted out of order; each
   client gets its 3 at its own deadline; a cancelled one never. */
static void
test_wait_classes(void **state)
{
	static const uint32_t waits[] = {
		6000, 0, 40000, 3000, 2000, 1000, 6000, 2500,
	};
	uint64_t t0, want;
	size_t i;

	(void)state;
	nt_learn_address();
	t0 = x->w.now;
	for (i = 0; i < sizeof(waits) / sizeof(waits[0]); i++)
		nt_pcp_submit(i, (uint16_t)(9000 + i), waits[i]);
	proxy_cancel(x->w.p, &x->waits[7]);
	TIME_PASSES(NATPMP_CLIENT_WAIT_MS);
	for (i = 0; i < sizeof(waits) / sizeof(waits[0]) - 1; i++) {
		want = t0 + (waits[i] != 0 ? waits[i] : PROXY_CLIENT_WAIT_MS);
		assert_true(x->waits[i].done);
		assert_int_equal(x->waits[i].err, MAP_ERR_NETWORK_FAILURE);
		assert_int_equal(x->waits[i].at, want);
	}
	assert_false(x->waits[7].done);
}

#define NT_TEST(fn, setup) \
	cmocka_unit_test_setup_teardown(fn, setup, nt_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		NT_TEST(test_address_probe, setup_upstream),
		NT_TEST(test_address_probe_fails, setup_upstream),
		NT_TEST(test_map_udp_retransmissions, setup_upstream),
		NT_TEST(test_map_tcp_no_suggestion, setup_upstream),
		NT_TEST(test_delete, setup_upstream),
		NT_TEST(test_delete_all, setup_upstream),
		NT_TEST(test_one_table, setup_upstream),
		NT_TEST(test_result_translation, setup_upstream),
		NT_TEST(test_policy_refusal, setup_upstream),
		NT_TEST(test_malformed_input, setup_upstream),
		NT_TEST(test_last_nat, setup_last),
		NT_TEST(test_address_change_announced, setup_upstream),
		NT_TEST(test_nonce, setup_last),
		NT_TEST(test_free_pending, setup_upstream),
		NT_TEST(test_one_host_flood, setup_upstream),
		NT_TEST(test_delete_while_waiting, setup_upstream),
		NT_TEST(test_probe_late_grant, setup_upstream),
		NT_TEST(test_natpmp_long_wait, setup_upstream),
		NT_TEST(test_wait_classes, setup_upstream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
