/*
 * test_addr_probe.c - the external-address probe on its own (spec/iwf.md
 * §2, RFC 6970 §4.2; iwf/addr_probe.h), on a fake clock, wired the way
 * the daemon wires it: the table, the policy (LAN 192.0.2.0/24), the
 * upstream PCP engine with a recording transport and a scripted carrier,
 * the fake NAT backend, the proxy core, and two recording listeners (the
 * front-ends NAT-PMP and UPnP).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "addr_probe.h"
#include "backend.h"
#include "backend_fake.h"
#include "iwf_nonce.h"
#include "map.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define AP_GW_LAN	"192.0.2.1"
#define AP_LISTENED	2		/* listeners the setup registers */

/* What one listener heard. */
struct ap_heard {
	unsigned int	 calls;
	bool		 known;
	uint64_t	 at;
};

struct ap {
	struct scn_world w;		/* the proxy, its engine, the carrier */
	struct addr_probe *ap;
	struct ap_heard	 heard[ADDR_PROBE_LISTENERS + 1];
};

static struct ap *x;

/* ---- glue (iwfd.c) ---- */

static uint64_t
ap_now(void *arg)
{
	assert_ptr_equal(arg, x);
	return x->w.now;
}

/* addr_probe_fn: arg is the listener's record. */
static void
ap_listener(void *arg, bool known)
{
	struct ap_heard *h = arg;

	h->calls++;
	h->known = known;
	h->at = x->w.now;
}

/* The probe's timer (a test may have freed it). */
static uint64_t
ap_deadline(void *arg)
{
	(void)arg;
	return x->ap != NULL ? addr_probe_next_deadline(x->ap) : UINT64_MAX;
}

static void
ap_tick(void *arg, uint64_t now)
{
	(void)arg;
	addr_probe_tick(x->ap, now);
}

static const struct scn_timer ap_timers[] = {
	{ ap_deadline, ap_tick },
};

/* The end of a loop turn. */
#define END_TURN()	scn_end_turn(&x->w)
/* The daemon ends its turn before the clock moves. */
#define TIME_PASSES(ms)	do {						\
	END_TURN();							\
	scn_time_passes(&x->w, (ms));					\
} while (0)

/* ---- setup ---- */

static void
ap_params(struct addr_probe_params *pp, bool upstream)
{
	memset(pp, 0, sizeof(*pp));
	pp->proxy = x->w.p;
	pp->table = x->w.t;
	memcpy(pp->nonce_key, x->w.key, sizeof(x->w.key));
	pp->probe_addr = scn_addr(AP_GW_LAN);
	pp->upstream = upstream;
	pp->random_seed = 5;
	pp->now = ap_now;
	pp->clock_arg = x;
}

static int
ap_setup(bool upstream)
{
	const struct scn_world_conf conf = {
		.upstream = upstream,
		.backend_new = backend_fake_new,
		.timers = ap_timers,
		.ntimers = sizeof(ap_timers) / sizeof(ap_timers[0]),
	};
	struct addr_probe_params app;
	size_t i;

	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	assert_int_equal(scn_world_init(&x->w, &conf), 0);
	ap_params(&app, upstream);
	assert_non_null(x->ap = addr_probe_new(&app));
	for (i = 0; i < AP_LISTENED; i++)
		assert_int_equal(addr_probe_listen(x->ap, ap_listener,
		    &x->heard[i]), 0);
	return 0;
}

static int
setup_upstream(void **state)
{
	(void)state;
	return ap_setup(true);
}

static int
setup_last(void **state)
{
	(void)state;
	return ap_setup(false);
}

static int
ap_teardown(void **state)
{
	(void)state;
	END_TURN();
	addr_probe_free(x->ap);
	scn_world_free(&x->w);
	free(x);
	x = NULL;
	return 0;
}

/* ---- the scripted carrier ---- */

static void
srv_answer(size_t i, uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	scn_answer(&x->w, i, result, lifetime, ext_port);
	END_TURN();
}

/* ---- helpers ---- */

/* Ask for the address; returns whether it is known, *waiting set. */
static bool
ap_get(struct in6_addr *addr, bool *waiting)
{
	bool known = addr_probe_get(x->ap, addr, waiting);

	END_TURN();
	return known;
}

/* The probe's mapping in the table (any state), or NULL. */
static struct mapping *
ap_probe_mapping(uint16_t port)
{
	struct in6_addr gw = scn_addr(AP_GW_LAN);

	return table_find_internal(x->w.t, MAP_PROTO_UDP, &gw, port);
}

static void
ap_assert_heard(unsigned int calls, bool known)
{
	size_t i;

	for (i = 0; i < AP_LISTENED; i++) {
		assert_int_equal(x->heard[i].calls, calls);
		if (calls > 0)
			assert_int_equal(x->heard[i].known, known);
	}
}

/* Count the deletes (lifetime 0) sent upstream for the probe's mapping
   since datagram `from`. */
static size_t
srv_probe_deletes(size_t from, const struct pcp_msg *probe)
{
	struct pcp_msg m;
	size_t i, n = 0;

	for (i = from; i < x->w.wire.nsent; i++) {
		scn_decode_sent(&x->w, i, &m);
		if (m.opcode == PCP_OP_MAP && m.lifetime == 0 &&
		    m.internal_port == probe->internal_port &&
		    memcmp(m.nonce, probe->nonce, sizeof(m.nonce)) == 0)
			n++;
	}
	return n;
}

/* ---- tests ---- */

/* RFC 6970 §4.2, spec/iwf.md §2: the first ask starts one MAP for UDP
   from the gateway's own LAN address - a dynamic port suggested as
   itself, the shortest lifetime, the synthesized NAT-PMP nonce; asks
   while it runs (a client's retransmissions, another front-end's
   request, a start) join it: still one MAP, one probe counted. */
static void
test_starts_once(void **state)
{
	struct in6_addr gw = scn_addr(AP_GW_LAN), a;
	uint8_t nonce[MAP_NONCE_SIZE];
	struct pcp_msg m;
	struct mapping *mp;
	bool waiting = false;
	int i;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	assert_true(waiting);
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_sent(&x->w, 0, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.protocol, MAP_PROTO_UDP);
	assert_true(m.internal_port >= ADDR_PROBE_PORT_MIN);
	assert_int_equal(m.ext_port, m.internal_port);
	assert_int_equal(m.lifetime, ADDR_PROBE_LIFETIME);
	assert_false(m.prefer_failure);
	iwf_nonce(x->w.key, MAP_ORIGIN_NATPMP, &gw, MAP_PROTO_UDP,
	    m.internal_port, nonce);
	assert_memory_equal(m.nonce, nonce, sizeof(nonce));
	assert_non_null(mp = ap_probe_mapping(m.internal_port));
	assert_true(addr_probe_owns(x->ap, mp));
	assert_int_equal(addr_probe_stats(x->ap)->probes, 1);

	for (i = 0; i < 3; i++) {
		TIME_PASSES(250);
		waiting = false;
		assert_false(ap_get(&a, &waiting));
		assert_true(waiting);
	}
	addr_probe_start(x->ap);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 1);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 1);
	ap_assert_heard(0, false);
}

/* The carrier answers: every listener hears once that the address is
   known, and the next ask gets it at once, with nothing waiting. The
   mapping is not deleted inside the proxy's callback but at the next
   tick (deadline 0), locally and upstream; then no deadline. */
static void
test_answer_and_delete(void **state)
{
	struct in6_addr a;
	struct pcp_msg probe;
	bool waiting;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	scn_decode_sent(&x->w, 0, &probe);
	assert_int_equal(addr_probe_next_deadline(x->ap), UINT64_MAX);
	srv_answer(0, PCP_SUCCESS, ADDR_PROBE_LIFETIME, 61000);
	ap_assert_heard(1, true);
	assert_int_equal(x->heard[0].at, x->w.now);
	assert_true(ap_get(&a, &waiting));
	assert_false(waiting);
	assert_memory_equal(&a, &x->w.ext_addr, sizeof(a));

	/* served: still there until the tick, which is due now */
	assert_non_null(ap_probe_mapping(probe.internal_port));
	assert_int_equal(addr_probe_next_deadline(x->ap), 0);
	addr_probe_tick(x->ap, x->w.now);
	END_TURN();
	assert_null(ap_probe_mapping(probe.internal_port));
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	assert_int_equal(srv_probe_deletes(1, &probe), 1);
	assert_int_equal(addr_probe_next_deadline(x->ap), UINT64_MAX);

	/* known: no more probes, however often asked */
	TIME_PASSES(ADDR_PROBE_RETRY_MS);
	assert_true(ap_get(&a, &waiting));
	addr_probe_start(x->ap);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 1);
	assert_int_equal(addr_probe_stats(x->ap)->failures, 0);
	ap_assert_heard(1, true);
}

/* No answer: the listeners hear "unknown" after ADDR_PROBE_WAIT_MS, not
   before; the mapping goes (at the tick, upstream too). Asks within
   ADDR_PROBE_RETRY_MS of the failure (RFC 6887 §7.4) start nothing and
   wait for nothing; at ADDR_PROBE_RETRY_MS a new probe goes. */
static void
test_failure_retry(void **state)
{
	struct in6_addr a;
	struct pcp_msg probe;
	uint64_t failed_at;
	size_t nsent;
	bool waiting;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	scn_decode_sent(&x->w, 0, &probe);
	TIME_PASSES(ADDR_PROBE_WAIT_MS - 1);
	ap_assert_heard(0, false);
	TIME_PASSES(1);
	ap_assert_heard(1, false);
	failed_at = x->w.now;
	assert_int_equal(x->heard[1].at, failed_at);
	assert_int_equal(addr_probe_stats(x->ap)->failures, 1);
	TIME_PASSES(1);
	assert_null(ap_probe_mapping(probe.internal_port));
	assert_true(srv_probe_deletes(1, &probe) >= 1);

	/* (the engine may still resend the delete meanwhile) */
	TIME_PASSES(ADDR_PROBE_RETRY_MS - 2);
	nsent = x->w.wire.nsent;
	assert_false(ap_get(&a, &waiting));
	assert_false(waiting);
	addr_probe_start(x->ap);
	END_TURN();
	assert_int_equal(addr_probe_stats(x->ap)->probes, 1);
	assert_int_equal(x->w.wire.nsent, nsent);
	ap_assert_heard(1, false);

	TIME_PASSES(1);
	assert_int_equal(x->w.now - failed_at, ADDR_PROBE_RETRY_MS);
	nsent = x->w.wire.nsent;
	assert_false(ap_get(&a, &waiting));
	assert_true(waiting);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 2);
	assert_int_equal(x->w.wire.nsent, nsent + 1);
	scn_decode_sent(&x->w, nsent, &probe);
	assert_int_equal(probe.lifetime, ADDR_PROBE_LIFETIME);
	srv_answer(nsent, PCP_SUCCESS, ADDR_PROBE_LIFETIME, 61000);
	ap_assert_heard(2, true);
	assert_true(ap_get(&a, &waiting));
}

/* The carrier refuses: a failure at the moment of the answer, so the
   retry time counts from it, not from the start. */
static void
test_refusal_retry(void **state)
{
	struct in6_addr a;
	uint64_t refused_at;
	bool waiting;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	TIME_PASSES(2000);
	srv_answer(0, PCP_NOT_AUTHORIZED, 30, 0);
	refused_at = x->w.now;
	ap_assert_heard(1, false);
	assert_int_equal(addr_probe_stats(x->ap)->failures, 1);
	TIME_PASSES(ADDR_PROBE_RETRY_MS - 1);
	assert_false(ap_get(&a, &waiting));
	assert_false(waiting);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 1);
	TIME_PASSES(1);
	assert_int_equal(x->w.now - refused_at, ADDR_PROBE_RETRY_MS);
	addr_probe_start(x->ap);
	END_TURN();
	assert_int_equal(addr_probe_stats(x->ap)->probes, 2);
}

/* Nothing to learn: without an upstream the proxy's address (the WAN's)
   is the answer at once, and no probe goes. */
static void
test_not_wanted(void **state)
{
	struct in6_addr a, wan = scn_addr(SCN_WAN);
	bool waiting = true;

	(void)state;
	assert_true(ap_get(&a, &waiting));
	assert_false(waiting);
	assert_memory_equal(&a, &wan, sizeof(a));
	addr_probe_start(x->ap);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 0);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(addr_probe_next_deadline(x->ap), UINT64_MAX);
}

/* With an upstream but no probe address (the LAN interface had no IPv4
   address): unknown, nothing sent, nobody waits. */
static void
test_no_probe_addr(void **state)
{
	struct addr_probe_params pp;
	struct in6_addr a;
	bool waiting = true;

	(void)state;
	addr_probe_free(x->ap);
	ap_params(&pp, true);
	memset(&pp.probe_addr, 0, sizeof(pp.probe_addr));
	assert_non_null(x->ap = addr_probe_new(&pp));
	assert_false(ap_get(&a, &waiting));
	assert_false(waiting);
	addr_probe_start(x->ap);
	END_TURN();
	assert_int_equal(x->w.wire.nsent, 0);
	assert_int_equal(addr_probe_stats(x->ap)->probes, 0);
}

/* addr_probe_owns: the probe's mapping and nothing that differs from it
   in address, protocol, port, origin or nonce. */
static void
test_owns(void **state)
{
	struct in6_addr a;
	struct pcp_msg probe;
	struct mapping *mp, m;
	bool waiting;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	scn_decode_sent(&x->w, 0, &probe);
	assert_non_null(mp = ap_probe_mapping(probe.internal_port));
	assert_true(addr_probe_owns(x->ap, mp));
	m = *mp;
	m.internal_addr = scn_addr("192.0.2.2");
	assert_false(addr_probe_owns(x->ap, &m));
	m = *mp;
	m.protocol = MAP_PROTO_TCP;
	assert_false(addr_probe_owns(x->ap, &m));
	m = *mp;
	m.internal_port++;
	assert_false(addr_probe_owns(x->ap, &m));
	m = *mp;
	m.origin = MAP_ORIGIN_PCP;
	assert_false(addr_probe_owns(x->ap, &m));
	m = *mp;
	m.nonce[0] ^= 1;
	assert_false(addr_probe_owns(x->ap, &m));
}

/* Up to ADDR_PROBE_LISTENERS listeners, then -1; one that unlistened
   hears nothing more, the others still do. */
static void
test_listeners(void **state)
{
	struct in6_addr a;
	bool waiting;
	size_t i;

	(void)state;
	for (i = AP_LISTENED; i < ADDR_PROBE_LISTENERS; i++)
		assert_int_equal(addr_probe_listen(x->ap, ap_listener,
		    &x->heard[i]), 0);
	assert_int_equal(addr_probe_listen(x->ap, ap_listener,
	    &x->heard[ADDR_PROBE_LISTENERS]), -1);
	addr_probe_unlisten(x->ap, ap_listener, &x->heard[0]);
	assert_false(ap_get(&a, &waiting));
	srv_answer(0, PCP_SUCCESS, ADDR_PROBE_LIFETIME, 61000);
	assert_int_equal(x->heard[0].calls, 0);
	for (i = 1; i < ADDR_PROBE_LISTENERS; i++) {
		assert_int_equal(x->heard[i].calls, 1);
		assert_true(x->heard[i].known);
	}
	assert_int_equal(x->heard[ADDR_PROBE_LISTENERS].calls, 0);
	/* the freed slot takes a new listener */
	assert_int_equal(addr_probe_listen(x->ap, ap_listener,
	    &x->heard[ADDR_PROBE_LISTENERS]), 0);
}

/* addr_probe_free with the probe under way: the proxy never calls back
   into it (ASan would see it), and nobody hears anything. */
static void
test_free_in_flight(void **state)
{
	struct in6_addr a;
	bool waiting;

	(void)state;
	assert_false(ap_get(&a, &waiting));
	assert_true(waiting);
	addr_probe_free(x->ap);
	x->ap = NULL;
	srv_answer(0, PCP_SUCCESS, ADDR_PROBE_LIFETIME, 61000);
	TIME_PASSES(ADDR_PROBE_WAIT_MS);
	ap_assert_heard(0, false);
}

#define AP_TEST(fn, setup) \
	cmocka_unit_test_setup_teardown(fn, setup, ap_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		AP_TEST(test_starts_once, setup_upstream),
		AP_TEST(test_answer_and_delete, setup_upstream),
		AP_TEST(test_failure_retry, setup_upstream),
		AP_TEST(test_refusal_retry, setup_upstream),
		AP_TEST(test_not_wanted, setup_last),
		AP_TEST(test_no_probe_addr, setup_upstream),
		AP_TEST(test_owns, setup_upstream),
		AP_TEST(test_listeners, setup_upstream),
		AP_TEST(test_free_in_flight, setup_upstream),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
