/*
 * test_backend.c - the backend contract (backend.h) on backend_none and on
 * the fake the scenario tests use: callbacks run once, at commit, with the
 * right status; ECANCELED at close; the fake's rules, counters and failure
 * injection; set_guard on both (the fake records the guard a commit
 * applied). backend_nft is tested against a real kernel in
 * tests/netns/backend_nft.sh, its guard too.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <string.h>

#include "backend.h"
#include "backend_fake.h"
#include "map.h"

#define MAX_CALLS	16

/* Each callback records its status in its own slot. */
struct done_log {
	int		 status[MAX_CALLS];
	unsigned int	 calls[MAX_CALLS];
};

struct done_ref {
	struct done_log	*log;
	unsigned int	 i;
};

static void
record_done(void *arg, int error)
{
	struct done_ref *ref = arg;

	ref->log->calls[ref->i]++;
	ref->log->status[ref->i] = error;
}

static void
refs_init(struct done_log *log, struct done_ref *refs)
{
	unsigned int i;

	memset(log, 0, sizeof(*log));
	for (i = 0; i < MAX_CALLS; i++) {
		refs[i].log = log;
		refs[i].i = i;
	}
}

static struct backend_rule
rule(uint8_t protocol, uint16_t ext_port, uint8_t host, uint16_t int_port,
    uint32_t timeout)
{
	struct backend_rule r;

	memset(&r, 0, sizeof(r));
	/* ::ffff:192.0.2.host (RFC 5737) */
	r.int_addr.s6_addr[10] = 0xff;
	r.int_addr.s6_addr[11] = 0xff;
	r.int_addr.s6_addr[12] = 192;
	r.int_addr.s6_addr[13] = 0;
	r.int_addr.s6_addr[14] = 2;
	r.int_addr.s6_addr[15] = host;
	r.ext_port = ext_port;
	r.int_port = int_port;
	r.protocol = protocol;
	r.timeout = timeout;
	return r;
}

static const struct backend_params params = {
	.table = "pcp_iwfd_test",
	.wan_interface = "wan0",
};

/* --- backend_none --- */

static void
test_none_callbacks_at_commit(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule r = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_none_ops.open(&params);
	assert_non_null(b);
	assert_ptr_equal(b->ops, &backend_none_ops);
	assert_false(b->ops->pending(b));
	assert_int_equal(b->ops->add(b, &r, record_done, &refs[0]), 0);
	assert_int_equal(b->ops->refresh(b, &r, record_done, &refs[1]), 0);
	assert_int_equal(b->ops->remove(b, &r, record_done, &refs[2]), 0);
	assert_int_equal(b->ops->add(b, &r, NULL, NULL), 0);
	assert_true(b->ops->pending(b));
	/* nothing runs before the commit */
	assert_int_equal(log.calls[0] + log.calls[1] + log.calls[2], 0);
	b->ops->commit(b);
	assert_false(b->ops->pending(b));
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(log.calls[1], 1);
	assert_int_equal(log.calls[2], 1);
	assert_int_equal(log.status[0], 0);
	assert_int_equal(log.status[1], 0);
	assert_int_equal(log.status[2], 0);
	/* ... and once only */
	b->ops->commit(b);
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(b->ops->reconcile(b, &r, 1), 0);
	assert_int_equal(b->ops->destroy(b), 0);
	b->ops->close(b);
}

static void
test_none_close_cancels(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule r = rule(MAP_PROTO_UDP, 7000, 11, 7000, 0);
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_none_ops.open(&params);
	assert_non_null(b);
	assert_int_equal(b->ops->add(b, &r, record_done, &refs[0]), 0);
	b->ops->close(b);
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(log.status[0], ECANCELED);
}

/* A callback that queues a new change: it waits for the next commit. */
struct requeue {
	struct backend	*b;
	struct done_ref	*next;
	unsigned int	 calls;
};

static void
requeue_done(void *arg, int error)
{
	struct requeue *rq = arg;
	struct backend_rule r = rule(MAP_PROTO_TCP, 6001, 10, 6001, 30);

	assert_int_equal(error, 0);
	rq->calls++;
	assert_int_equal(rq->b->ops->add(rq->b, &r, record_done, rq->next),
	    0);
}

static void
requeue_during_commit(const struct backend_ops *ops)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule r = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct requeue rq;

	refs_init(&log, refs);
	rq.b = ops->open(&params);
	assert_non_null(rq.b);
	rq.next = &refs[0];
	rq.calls = 0;
	assert_int_equal(ops->add(rq.b, &r, requeue_done, &rq), 0);
	ops->commit(rq.b);
	assert_int_equal(rq.calls, 1);
	assert_int_equal(log.calls[0], 0);
	assert_true(ops->pending(rq.b));
	ops->commit(rq.b);
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(log.status[0], 0);
	ops->close(rq.b);
}

static void
test_none_requeue(void **state)
{
	(void)state;
	requeue_during_commit(&backend_none_ops);
}

/* --- the fake --- */

static void
test_fake_add_remove_refresh(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule a = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend_rule u = rule(MAP_PROTO_UDP, 6000, 11, 7000, 0);
	const struct backend_fake_counters *c;
	const struct backend_rule *got;
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_fake_new();
	assert_non_null(b);
	c = backend_fake_counters(b);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[0]), 0);
	assert_int_equal(b->ops->add(b, &u, record_done, &refs[1]), 0);
	assert_int_equal(backend_fake_queued(b), 2);
	/* queued is not installed */
	assert_int_equal(backend_fake_rule_count(b), 0);
	assert_int_equal(log.calls[0], 0);
	b->ops->commit(b);
	assert_int_equal(c->commits, 1);
	assert_int_equal(c->last_batch, 2);
	assert_int_equal(c->adds, 2);
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(log.calls[1], 1);
	assert_int_equal(log.status[0], 0);
	assert_int_equal(backend_fake_rule_count(b), 2);
	/* TCP and UDP 6000 are two rules */
	got = backend_fake_lookup(b, MAP_PROTO_UDP, 6000);
	assert_non_null(got);
	assert_int_equal(got->int_port, 7000);
	assert_int_equal(got->int_addr.s6_addr[15], 11);
	assert_null(backend_fake_lookup(b, MAP_PROTO_TCP, 6001));

	/* refresh re-arms the timeout; add replaces the target */
	a.timeout = 120;
	assert_int_equal(b->ops->refresh(b, &a, record_done, &refs[2]), 0);
	u.int_port = 7001;
	assert_int_equal(b->ops->add(b, &u, record_done, &refs[3]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[2], 0);
	assert_int_equal(log.status[3], 0);
	assert_int_equal(c->refreshes, 1);
	assert_int_equal(backend_fake_lookup(b, MAP_PROTO_TCP, 6000)->timeout,
	    120);
	assert_int_equal(backend_fake_lookup(b, MAP_PROTO_UDP, 6000)->int_port,
	    7001);
	assert_int_equal(backend_fake_rule_count(b), 2);

	/* remove, and remove of what is not there: both succeed */
	assert_int_equal(b->ops->remove(b, &a, record_done, &refs[4]), 0);
	assert_int_equal(b->ops->remove(b, &a, record_done, &refs[5]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[4], 0);
	assert_int_equal(log.status[5], 0);
	assert_int_equal(c->removes, 2);
	assert_int_equal(backend_fake_rule_count(b), 1);
	assert_null(backend_fake_lookup(b, MAP_PROTO_TCP, 6000));
	assert_int_equal(c->commits, 3);
	/* an empty commit is not a batch */
	b->ops->commit(b);
	assert_int_equal(c->commits, 3);
	assert_int_equal(c->commit_calls, 4);
	assert_int_equal(c->failures, 0);
	b->ops->close(b);
}

static void
test_fake_order_in_batch(void **state)
{
	struct backend_rule a = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend *b;

	(void)state;
	b = backend_fake_new();
	assert_non_null(b);
	/* add then remove in one batch: gone; remove then add: there */
	assert_int_equal(b->ops->add(b, &a, NULL, NULL), 0);
	assert_int_equal(b->ops->remove(b, &a, NULL, NULL), 0);
	b->ops->commit(b);
	assert_int_equal(backend_fake_rule_count(b), 0);
	assert_int_equal(b->ops->remove(b, &a, NULL, NULL), 0);
	assert_int_equal(b->ops->add(b, &a, NULL, NULL), 0);
	b->ops->commit(b);
	assert_int_equal(backend_fake_rule_count(b), 1);
	assert_int_equal(backend_fake_counters(b)->commits, 2);
	b->ops->close(b);
}

static void
test_fake_invalid_rules(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule icmp = rule(1, 6000, 10, 6000, 30);
	struct backend_rule any = rule(0, 6000, 10, 6000, 30);
	struct backend_rule v6 = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend_rule port0 = rule(MAP_PROTO_UDP, 0, 10, 6000, 30);
	struct backend_rule good = rule(MAP_PROTO_UDP, 5000, 10, 5000, 30);
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	v6.int_addr.s6_addr[10] = 0;	/* no longer IPv4-mapped */
	b = backend_fake_new();
	assert_non_null(b);
	assert_int_equal(b->ops->add(b, &icmp, record_done, &refs[0]), 0);
	assert_int_equal(b->ops->add(b, &any, record_done, &refs[1]), 0);
	assert_int_equal(b->ops->add(b, &v6, record_done, &refs[2]), 0);
	assert_int_equal(b->ops->add(b, &port0, record_done, &refs[3]), 0);
	assert_int_equal(b->ops->add(b, &good, record_done, &refs[4]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[0], EPROTONOSUPPORT);
	assert_int_equal(log.status[1], EPROTONOSUPPORT);
	assert_int_equal(log.status[2], EINVAL);
	assert_int_equal(log.status[3], EINVAL);
	/* one bad change does not sink the others */
	assert_int_equal(log.status[4], 0);
	assert_int_equal(backend_fake_rule_count(b), 1);
	assert_int_equal(backend_fake_counters(b)->failures, 4);
	b->ops->close(b);
}

static void
test_fake_fail_injection(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule a = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend_rule d = rule(MAP_PROTO_TCP, 6001, 10, 6001, 30);
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_fake_new();
	assert_non_null(b);

	/* the next add fails, the one after succeeds */
	backend_fake_fail_adds(b, 1, EIO);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[0]), 0);
	assert_int_equal(b->ops->add(b, &d, record_done, &refs[1]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[0], EIO);
	assert_int_equal(log.status[1], 0);
	assert_null(backend_fake_lookup(b, MAP_PROTO_TCP, 6000));
	assert_non_null(backend_fake_lookup(b, MAP_PROTO_TCP, 6001));

	/* a failed remove leaves the rule; a failed refresh its timeout */
	backend_fake_fail_removes(b, 1, EBUSY);
	backend_fake_fail_refreshes(b, 1, ENOSPC);
	assert_int_equal(b->ops->remove(b, &d, record_done, &refs[2]), 0);
	d.timeout = 300;
	assert_int_equal(b->ops->refresh(b, &d, record_done, &refs[3]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[2], EBUSY);
	assert_int_equal(log.status[3], ENOSPC);
	assert_int_equal(backend_fake_lookup(b, MAP_PROTO_TCP, 6001)->timeout,
	    30);

	/* a failed commit fails every change in it, and only that commit */
	backend_fake_fail_commits(b, 1, ENOMEM);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[4]), 0);
	assert_int_equal(b->ops->remove(b, &d, record_done, &refs[5]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[4], ENOMEM);
	assert_int_equal(log.status[5], ENOMEM);
	assert_int_equal(backend_fake_rule_count(b), 1);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[6]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[6], 0);
	assert_int_equal(backend_fake_rule_count(b), 2);
	assert_int_equal(backend_fake_counters(b)->failures, 5);
	b->ops->close(b);
}

static void
test_fake_reconcile_expire_destroy(void **state)
{
	struct backend_rule rules[3] = {
		rule(MAP_PROTO_TCP, 6000, 10, 6000, 30),
		rule(MAP_PROTO_UDP, 6000, 11, 6000, 30),
		rule(MAP_PROTO_TCP, 6000, 12, 6000, 30),	/* same key */
	};
	struct backend_rule stranger = rule(MAP_PROTO_TCP, 9000, 13, 9000, 0);
	struct backend *b;

	(void)state;
	b = backend_fake_new();
	assert_non_null(b);
	assert_int_equal(b->ops->add(b, &stranger, NULL, NULL), 0);
	b->ops->commit(b);
	assert_int_equal(b->ops->reconcile(b, rules, 3), 0);
	/* exactly the rules given, the first of a key wins */
	assert_int_equal(backend_fake_rule_count(b), 2);
	assert_null(backend_fake_lookup(b, MAP_PROTO_TCP, 9000));
	assert_int_equal(backend_fake_lookup(b, MAP_PROTO_TCP, 6000)->
	    int_addr.s6_addr[15], 10);
	assert_int_equal(backend_fake_counters(b)->reconciles, 1);

	backend_fake_fail_reconciles(b, 1);
	assert_int_equal(b->ops->reconcile(b, NULL, 0), -1);
	assert_int_equal(backend_fake_rule_count(b), 2);

	/* kernel expiry: gone without a callback */
	assert_true(backend_fake_expire(b, MAP_PROTO_UDP, 6000));
	assert_false(backend_fake_expire(b, MAP_PROTO_UDP, 6000));
	assert_int_equal(backend_fake_rule_count(b), 1);
	assert_non_null(backend_fake_rule(b, 0));
	assert_null(backend_fake_rule(b, 1));

	assert_int_equal(b->ops->destroy(b), 0);
	assert_int_equal(backend_fake_rule_count(b), 0);
	assert_int_equal(backend_fake_counters(b)->destroys, 1);
	b->ops->close(b);
}

static void
test_fake_close_cancels(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule a = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_fake_new();
	assert_non_null(b);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[0]), 0);
	assert_true(b->ops->pending(b));
	b->ops->close(b);
	assert_int_equal(log.calls[0], 1);
	assert_int_equal(log.status[0], ECANCELED);
}

static void
test_fake_requeue(void **state)
{
	(void)state;
	requeue_during_commit(&backend_fake_ops);
}

/* --- the guard (set_guard) --- */

static const char *const guard_lans[] = { "lan0", "lan1" };
static const uint16_t guard_tcp[] = { 49152, 40001 };
static const uint16_t guard_udp[] = { 5351, 1900 };

static void
test_none_guard(void **state)
{
	struct backend *b;

	(void)state;
	b = backend_none_ops.open(&params);
	assert_non_null(b);
	assert_non_null(b->ops->set_guard);
	assert_int_equal(b->ops->set_guard(b, guard_lans, 2, guard_tcp, 2, 1,
	    guard_udp, 2), 0);
	/* nothing is installed, so nothing waits for a commit */
	assert_false(b->ops->pending(b));
	b->ops->close(b);
}

static void
test_fake_guard_at_commit(void **state)
{
	struct done_log log;
	struct done_ref refs[MAX_CALLS];
	struct backend_rule a = rule(MAP_PROTO_TCP, 6000, 10, 6000, 30);
	const struct backend_fake_guard *g;
	struct backend *b;

	(void)state;
	refs_init(&log, refs);
	b = backend_fake_new();
	assert_non_null(b);
	assert_null(backend_fake_guard(b));
	assert_int_equal(b->ops->set_guard(b, guard_lans, 2, guard_tcp, 2, 1,
	    guard_udp, 2), 0);
	/* applied by the next commit, like a change */
	assert_true(b->ops->pending(b));
	assert_null(backend_fake_guard(b));
	b->ops->commit(b);
	assert_false(b->ops->pending(b));
	g = backend_fake_guard(b);
	assert_non_null(g);
	assert_int_equal(backend_fake_guard_sets(b), 1);
	assert_int_equal(g->n_lan, 2);
	assert_string_equal(g->lans[0], "lan0");
	assert_string_equal(g->lans[1], "lan1");
	assert_int_equal(g->n_tcp, 2);
	assert_int_equal(g->tcp[0], 49152);
	assert_int_equal(g->tcp[1], 40001);
	assert_int_equal(g->n_limited, 1);
	assert_int_equal(g->n_udp, 2);
	assert_int_equal(g->udp[0], 5351);
	assert_int_equal(g->udp[1], 1900);
	/* a guard alone is not a batch of changes */
	assert_int_equal(backend_fake_counters(b)->commits, 0);

	/* the next one replaces it, in the same commit as a change */
	assert_int_equal(b->ops->set_guard(b, guard_lans, 1, NULL, 0, 0,
	    guard_udp, 1), 0);
	assert_int_equal(b->ops->add(b, &a, record_done, &refs[0]), 0);
	b->ops->commit(b);
	assert_int_equal(log.status[0], 0);
	g = backend_fake_guard(b);
	assert_int_equal(backend_fake_guard_sets(b), 2);
	assert_int_equal(g->n_lan, 1);
	assert_int_equal(g->n_tcp, 0);
	assert_int_equal(g->n_udp, 1);
	assert_int_equal(g->udp[0], 5351);
	b->ops->close(b);
}

static void
test_fake_guard_refused(void **state)
{
	static const uint16_t zero[] = { 5351, 0 };
	static const uint16_t many[BACKEND_GUARD_MAX_PORTS + 1] = {
		1, 2, 3, 4, 5, 6, 7, 8, 9 };
	static const char *const empty[] = { "" };
	static const char *const too_long[] = { "abcdefghijklmnopq" };
	struct backend *b;

	(void)state;
	b = backend_fake_new();
	assert_non_null(b);
	assert_int_equal(b->ops->set_guard(b, guard_lans, 2, zero, 2, 0, NULL,
	    0), -1);
	assert_int_equal(b->ops->set_guard(b, guard_lans, 2, NULL, 0, 0, many,
	    BACKEND_GUARD_MAX_PORTS + 1), -1);
	/* more limited ports than ports */
	assert_int_equal(b->ops->set_guard(b, guard_lans, 2, guard_tcp, 2, 3,
	    NULL, 0), -1);
	assert_int_equal(b->ops->set_guard(b, empty, 1, NULL, 0, 0, guard_udp,
	    1), -1);
	assert_int_equal(b->ops->set_guard(b, too_long, 1, NULL, 0, 0,
	    guard_udp, 1), -1);
	/* nothing changed, nothing to commit */
	assert_false(b->ops->pending(b));
	b->ops->commit(b);
	assert_null(backend_fake_guard(b));
	assert_int_equal(backend_fake_guard_sets(b), 0);
	b->ops->close(b);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_none_callbacks_at_commit),
		cmocka_unit_test(test_none_close_cancels),
		cmocka_unit_test(test_none_requeue),
		cmocka_unit_test(test_fake_add_remove_refresh),
		cmocka_unit_test(test_fake_order_in_batch),
		cmocka_unit_test(test_fake_invalid_rules),
		cmocka_unit_test(test_fake_fail_injection),
		cmocka_unit_test(test_fake_reconcile_expire_destroy),
		cmocka_unit_test(test_fake_close_cancels),
		cmocka_unit_test(test_fake_requeue),
		cmocka_unit_test(test_none_guard),
		cmocka_unit_test(test_fake_guard_at_commit),
		cmocka_unit_test(test_fake_guard_refused),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
