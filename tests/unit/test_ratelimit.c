/*
 * test_ratelimit.c - the per-host token buckets (src/ratelimit.h) on a
 * fake clock: burst, exact refill in milliseconds, huge gaps, rate 0,
 * reuse of the least recently seen host's slot, ratelimit_set, the
 * IPv4-mapped and IPv6 keys, the counters.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "pcp_wire.h"
#include "ratelimit.h"

#define RL_SEED		0x5eed5eed5eed5eedULL

static struct in6_addr
rl_addr(const char *text)
{
	struct in6_addr a;

	assert_true(pcp_addr_pton(text, &a));
	return a;
}

/* Host number i as 10.x.y.z, IPv4-mapped. */
static struct in6_addr
rl_host(uint32_t i)
{
	struct in6_addr a;
	struct in_addr v4;

	v4.s_addr = htonl(0x0a000000u | i);
	pcp_addr_from_v4(&a, &v4);
	return a;
}

static struct ratelimit *
rl_new(uint32_t rate, uint32_t burst, size_t hosts)
{
	struct ratelimit_params p;
	struct ratelimit *rl;

	memset(&p, 0, sizeof(p));
	p.rate = rate;
	p.burst = burst;
	p.hosts = hosts;
	p.seed = RL_SEED;
	assert_non_null(rl = ratelimit_new(&p));
	return rl;
}

/* How many requests pass at `now` before the first refusal (at most max). */
static unsigned int
rl_drain(struct ratelimit *rl, const struct in6_addr *a, uint64_t now,
    unsigned int max)
{
	unsigned int n = 0;

	while (n < max && ratelimit_allow(rl, a, now))
		n++;
	return n;
}

static void
test_burst(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.10");
	struct ratelimit_stats st;
	struct ratelimit *rl = rl_new(10, 5, 0);

	(void)state;
	/* a new host starts with a full bucket */
	assert_int_equal(rl_drain(rl, &a, 1000, 100), 5);
	assert_false(ratelimit_allow(rl, &a, 1000));
	ratelimit_stats(rl, &st);
	assert_int_equal(st.allowed, 5);
	assert_int_equal(st.limited, 2);
	assert_int_equal(st.hosts, 1);
	/* 10/s: one token per 100 ms, not before */
	assert_false(ratelimit_allow(rl, &a, 1099));
	assert_true(ratelimit_allow(rl, &a, 1100));
	assert_false(ratelimit_allow(rl, &a, 1100));
	/* a long pause refills to the burst, never beyond */
	assert_int_equal(rl_drain(rl, &a, 60000, 100), 5);
	ratelimit_free(rl);
}

/* Thousandths of a token carry over: 3/s gives tokens after 334, 333,
   333 ms (1000 ms for three), none lost to rounding. */
static void
test_refill_ms_rounding(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.11");
	struct ratelimit *rl = rl_new(3, 10, 0);

	(void)state;
	/* empty, and far from full, so nothing is cut at the top */
	assert_int_equal(rl_drain(rl, &a, 0, 100), 10);
	assert_false(ratelimit_allow(rl, &a, 333));
	assert_true(ratelimit_allow(rl, &a, 334));	/* 1002: 2 left */
	assert_false(ratelimit_allow(rl, &a, 666));	/* 2 + 332 * 3 = 998 */
	assert_true(ratelimit_allow(rl, &a, 667));	/* 1001: 1 left */
	assert_false(ratelimit_allow(rl, &a, 999));	/* 1 + 332 * 3 = 997 */
	assert_true(ratelimit_allow(rl, &a, 1000));	/* 1000: 0 left */
	/* many small steps earn what one big step does */
	assert_false(ratelimit_allow(rl, &a, 1001));
	assert_false(ratelimit_allow(rl, &a, 1200));
	assert_false(ratelimit_allow(rl, &a, 1333));
	assert_true(ratelimit_allow(rl, &a, 1334));
	ratelimit_free(rl);

	/* at the top the bucket is full: what it would earn beyond is lost */
	rl = rl_new(3, 1, 0);
	assert_true(ratelimit_allow(rl, &a, 0));
	assert_true(ratelimit_allow(rl, &a, 2000));
	assert_false(ratelimit_allow(rl, &a, 2333));
	assert_true(ratelimit_allow(rl, &a, 2334));
	ratelimit_free(rl);

	/* 1000/s: one a millisecond */
	rl = rl_new(1000, 2, 0);
	assert_int_equal(rl_drain(rl, &a, 50, 10), 2);
	assert_true(ratelimit_allow(rl, &a, 51));
	assert_false(ratelimit_allow(rl, &a, 51));
	assert_int_equal(rl_drain(rl, &a, 53, 10), 2);
	ratelimit_free(rl);
}

/* Gaps that would overflow gap * rate fill the bucket, no more. */
static void
test_large_gaps(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.12");
	struct ratelimit *rl = rl_new(1000, 5, 0);

	(void)state;
	assert_int_equal(rl_drain(rl, &a, 1, 10), 5);
	/* (2^64 - 2) * 1000 wraps in 64 bits */
	assert_int_equal(rl_drain(rl, &a, UINT64_MAX, 10), 5);
	ratelimit_free(rl);

	rl = rl_new(UINT32_MAX, 3, 0);
	assert_int_equal(rl_drain(rl, &a, 0, 10), 3);
	assert_int_equal(rl_drain(rl, &a, 1, 10), 3);
	assert_int_equal(rl_drain(rl, &a, UINT64_MAX / 2, 10), 3);
	ratelimit_free(rl);

	/* the largest bucket at the slowest rate: a gap of 2^64 ms fills it */
	rl = rl_new(1, UINT32_MAX, 0);
	assert_true(ratelimit_allow(rl, &a, 0));
	assert_int_equal(rl_drain(rl, &a, UINT64_MAX, 1000), 1000);
	ratelimit_free(rl);
}

/* A clock that steps back earns nothing until it passes the last time. */
static void
test_clock_back(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.13");
	struct ratelimit *rl = rl_new(1, 1, 0);

	(void)state;
	assert_true(ratelimit_allow(rl, &a, 10000));
	assert_false(ratelimit_allow(rl, &a, 5000));
	assert_false(ratelimit_allow(rl, &a, 10999));
	assert_true(ratelimit_allow(rl, &a, 11000));
	ratelimit_free(rl);
}

static void
test_rate_zero_off(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.14");
	struct ratelimit_stats st;
	struct ratelimit *rl = rl_new(0, 0, 0);
	unsigned int i;

	(void)state;
	for (i = 0; i < 10000; i++)
		assert_true(ratelimit_allow(rl, &a, 0));
	ratelimit_stats(rl, &st);
	assert_int_equal(st.allowed, 10000);
	assert_int_equal(st.limited, 0);
	assert_int_equal(st.hosts, 0);	/* nothing is tracked while off */
	ratelimit_free(rl);

	/* NULL: no limiter, everything passes, stats all zero */
	assert_true(ratelimit_allow(NULL, &a, 0));
	ratelimit_stats(NULL, &st);
	assert_int_equal(st.allowed, 0);
	assert_int_equal(st.hosts, 0);
	ratelimit_set(NULL, 1, 1);
	ratelimit_free(NULL);
}

/* rate > 0 with burst 0 still lets one request through. */
static void
test_burst_zero_is_one(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.15");
	struct ratelimit *rl = rl_new(5, 0, 0);

	(void)state;
	assert_int_equal(rl_drain(rl, &a, 0, 10), 1);
	assert_true(ratelimit_allow(rl, &a, 200));
	ratelimit_set(rl, 5, 0);
	assert_int_equal(rl_drain(rl, &a, 10000, 10), 1);
	ratelimit_free(rl);
}

/*
 * Four slots: the fifth host takes the slot of the host seen least
 * recently (not the one that came first), and a forgotten host comes back
 * with a full bucket.
 */
static void
test_slot_reuse_lru(void **state)
{
	struct in6_addr h[6];
	struct ratelimit_stats st;
	struct ratelimit *rl = rl_new(1, 2, 4);
	unsigned int i;

	(void)state;
	for (i = 0; i < 6; i++)
		h[i] = rl_host(i + 1);
	for (i = 0; i < 4; i++)
		assert_int_equal(rl_drain(rl, &h[i], 0, 10), 2);
	/* h0 was first in, but is now the most recently seen: h1 is the
	   least recently seen */
	assert_false(ratelimit_allow(rl, &h[0], 0));
	assert_int_equal(rl_drain(rl, &h[4], 0, 10), 2);	/* h1's slot */
	ratelimit_stats(rl, &st);
	assert_int_equal(st.hosts, 4);
	/* h0, h2, h3 are remembered, empty */
	assert_false(ratelimit_allow(rl, &h[0], 0));
	assert_false(ratelimit_allow(rl, &h[3], 0));
	assert_false(ratelimit_allow(rl, &h[2], 0));
	/* h1 was forgotten: back with a full bucket, in h4's slot (h4 is now
	   the least recently seen) */
	assert_int_equal(rl_drain(rl, &h[1], 0, 10), 2);
	/* h4 comes back in h0's slot, then h0 in h3's */
	assert_int_equal(rl_drain(rl, &h[4], 0, 10), 2);
	assert_int_equal(rl_drain(rl, &h[0], 0, 10), 2);
	assert_false(ratelimit_allow(rl, &h[1], 0));
	assert_false(ratelimit_allow(rl, &h[4], 0));
	ratelimit_stats(rl, &st);
	assert_int_equal(st.hosts, 4);
	ratelimit_free(rl);
}

/* Many more hosts than slots, through the hash chains: the last n_slots
   hosts are remembered exactly, every earlier one forgotten. */
static void
test_slot_reuse_many(void **state)
{
	struct ratelimit_stats st;
	struct ratelimit *rl = rl_new(1, 1, 64);
	struct in6_addr a;
	uint32_t i;

	(void)state;
	for (i = 0; i < 5000; i++) {
		a = rl_host(i);
		assert_true(ratelimit_allow(rl, &a, 0));
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.hosts, 64);
	for (i = 5000 - 64; i < 5000; i++) {
		a = rl_host(i);
		assert_false(ratelimit_allow(rl, &a, 0));
	}
	/* the refusals made them the most recent again: the first of the
	   remembered ones is the least recently seen now */
	a = rl_host(0);
	assert_true(ratelimit_allow(rl, &a, 0));
	a = rl_host(5000 - 64);
	assert_true(ratelimit_allow(rl, &a, 0));
	a = rl_host(4999);
	assert_false(ratelimit_allow(rl, &a, 0));
	ratelimit_free(rl);

	/* the default size */
	rl = rl_new(1, 1, 0);
	for (i = 0; i < 2 * RATELIMIT_DEFAULT_HOSTS; i++) {
		a = rl_host(i);
		assert_true(ratelimit_allow(rl, &a, 0));
	}
	ratelimit_stats(rl, &st);
	assert_int_equal(st.hosts, RATELIMIT_DEFAULT_HOSTS);
	ratelimit_free(rl);
}

/* SIGHUP: levels kept, clamped to the new burst; a larger burst adds
   nothing at once; rate 0 switches it off, and back on keeps levels. */
static void
test_set_clamps(void **state)
{
	struct in6_addr a = rl_addr("192.0.2.16"), b = rl_addr("192.0.2.17");
	struct ratelimit *rl = rl_new(1, 10, 0);

	(void)state;
	assert_int_equal(rl_drain(rl, &a, 0, 2), 2);	/* 8 left */
	assert_int_equal(rl_drain(rl, &b, 0, 9), 9);	/* 1 left */
	ratelimit_set(rl, 1, 3);
	assert_int_equal(rl_drain(rl, &a, 0, 100), 3);
	assert_int_equal(rl_drain(rl, &b, 0, 100), 1);
	ratelimit_set(rl, 1, 100);
	assert_false(ratelimit_allow(rl, &a, 0));
	assert_false(ratelimit_allow(rl, &a, 999));
	assert_true(ratelimit_allow(rl, &a, 1000));
	/* a faster rate applies from the next refill */
	ratelimit_set(rl, 1000, 100);
	assert_int_equal(rl_drain(rl, &a, 1010, 100), 10);
	/* off: everything passes, nothing is charged */
	ratelimit_set(rl, 0, 0);
	assert_int_equal(rl_drain(rl, &a, 1010, 500), 500);
	/* on again: the level it had (0), refilled from its last refill */
	ratelimit_set(rl, 1000, 100);
	assert_false(ratelimit_allow(rl, &a, 1010));
	assert_true(ratelimit_allow(rl, &a, 1011));
	ratelimit_free(rl);
}

/* An IPv4 host (IPv4-mapped) and IPv6 hosts whose last 32 bits spell the
   same IPv4 address are different hosts. */
static void
test_v4_v6_keys(void **state)
{
	struct in6_addr v4 = rl_addr("192.0.2.1");
	struct in6_addr v4_again = rl_addr("::ffff:192.0.2.1");
	struct in6_addr v6 = rl_addr("2001:db8::c000:201");
	struct in6_addr compat = rl_addr("::c000:201");
	struct ratelimit_stats st;
	struct ratelimit *rl = rl_new(1, 2, 0);

	(void)state;
	assert_true(ratelimit_allow(rl, &v4, 0));
	assert_true(ratelimit_allow(rl, &v4_again, 0));	/* the same host */
	assert_false(ratelimit_allow(rl, &v4, 0));
	assert_int_equal(rl_drain(rl, &v6, 0, 10), 2);
	assert_int_equal(rl_drain(rl, &compat, 0, 10), 2);
	ratelimit_stats(rl, &st);
	assert_int_equal(st.hosts, 3);
	assert_int_equal(st.allowed, 6);
	assert_int_equal(st.limited, 3);
	ratelimit_free(rl);
}

/* An IPv6 host is charged by its /64: another interface identifier is
   the same bucket, another /64 another one (fix, review). */
static void
test_v6_by_64(void **state)
{
	struct in6_addr a = rl_addr("2001:db8:0:1::1");
	struct in6_addr a_tmp = rl_addr("2001:db8:0:1:8d2e:11ff:fe00:7");
	struct in6_addr b = rl_addr("2001:db8:0:2::1");
	struct ratelimit *rl = rl_new(1, 2, 0);

	(void)state;
	assert_true(ratelimit_allow(rl, &a, 0));
	assert_true(ratelimit_allow(rl, &a_tmp, 0));
	assert_false(ratelimit_allow(rl, &a, 0));
	assert_false(ratelimit_allow(rl, &a_tmp, 0));
	assert_int_equal(rl_drain(rl, &b, 0, 10), 2);
	ratelimit_free(rl);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_burst),
		cmocka_unit_test(test_refill_ms_rounding),
		cmocka_unit_test(test_large_gaps),
		cmocka_unit_test(test_clock_back),
		cmocka_unit_test(test_rate_zero_off),
		cmocka_unit_test(test_burst_zero_is_one),
		cmocka_unit_test(test_slot_reuse_lru),
		cmocka_unit_test(test_slot_reuse_many),
		cmocka_unit_test(test_set_clamps),
		cmocka_unit_test(test_v4_v6_keys),
		cmocka_unit_test(test_v6_by_64),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
