/*
 * test_pcp_retrans.c - RFC 6887 §8.1.1 retransmission timer and §11.2.1
 * renewal schedule, with pinned random numbers and exact expected values.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <math.h>

#include "pcp_retrans.h"

static void
test_rand_mapping(void **state)
{
	(void)state;
	/* §8.1.1: RAND spans [-0.1, +0.1] inclusive */
	assert_true(pcp_rt_rand(0) == -0.1);
	assert_true(fabs(pcp_rt_rand(UINT32_MAX) - 0.1) < 1e-15);
	assert_true(fabs(pcp_rt_rand(UINT32_MAX / 2)) < 1e-9);
	/* unit: [0, 1), never 1 */
	assert_true(pcp_rand_unit(0) == 0.0);
	assert_true(pcp_rand_unit(0x80000000u) == 0.5);
	assert_true(pcp_rand_unit(UINT32_MAX) < 1.0);
}

static void
test_first_rt(void **state)
{
	(void)state;
	/* §8.1.1: RT = (1 + RAND) * IRT, IRT = 3 s */
	assert_int_equal(pcp_rt_first_ms(0.0), 3000);
	assert_int_equal(pcp_rt_first_ms(0.1), 3300);
	assert_int_equal(pcp_rt_first_ms(-0.1), 2700);
	assert_int_equal(pcp_rt_first_ms(0.05), 3150);
	/* out-of-range RAND is clamped, NaN taken as the low end */
	assert_int_equal(pcp_rt_first_ms(0.5), 3300);
	assert_int_equal(pcp_rt_first_ms(-3.0), 2700);
	assert_int_equal(pcp_rt_first_ms(NAN), 2700);
}

static void
test_next_rt_doubles(void **state)
{
	(void)state;
	/* §8.1.1: RT = (1 + RAND) * MIN(2 * RTprev, MRT) */
	assert_int_equal(pcp_rt_next_ms(3000, 0.0, PCP_RT_MRT_MS), 6000);
	assert_int_equal(pcp_rt_next_ms(3300, 0.1, PCP_RT_MRT_MS), 7260);
	assert_int_equal(pcp_rt_next_ms(2700, -0.1, PCP_RT_MRT_MS), 4860);
	assert_int_equal(pcp_rt_next_ms(6000, 0.0, PCP_RT_MRT_MS), 12000);
}

static void
test_next_rt_capped_by_mrt(void **state)
{
	(void)state;
	/* MRT = 1024 s caps 2 * RTprev before RAND is applied */
	assert_int_equal(pcp_rt_next_ms(512000, 0.0, PCP_RT_MRT_MS), 1024000);
	assert_int_equal(pcp_rt_next_ms(1000000, 0.0, PCP_RT_MRT_MS),
	    1024000);
	assert_int_equal(pcp_rt_next_ms(1000000, 0.1, PCP_RT_MRT_MS),
	    1126400);
	assert_int_equal(pcp_rt_next_ms(1126400, -0.1, PCP_RT_MRT_MS),
	    921600);
	/* a smaller MRT of the caller's choice */
	assert_int_equal(pcp_rt_next_ms(3000, 0.0, 5000), 5000);
}

static void
test_next_rt_no_mrt_saturates(void **state)
{
	(void)state;
	/* MRT 0: no upper limit */
	assert_int_equal(pcp_rt_next_ms(1000000, 0.0, 0), 2000000);
	assert_int_equal(pcp_rt_next_ms(3000000000u, 0.0, 0), UINT32_MAX);
	assert_int_equal(pcp_rt_next_ms(UINT32_MAX, 0.1, 0), UINT32_MAX);
}

static void
test_rt_sequence(void **state)
{
	uint32_t rt;
	unsigned int i;

	(void)state;
	/* with RAND 0 the sequence is 3, 6, 12, ... 768, 1024, 1024 s */
	rt = pcp_rt_first_ms(0.0);
	for (i = 0; i < 8; i++)
		rt = pcp_rt_next_ms(rt, 0.0, PCP_RT_MRT_MS);
	assert_int_equal(rt, 768000);
	rt = pcp_rt_next_ms(rt, 0.0, PCP_RT_MRT_MS);
	assert_int_equal(rt, 1024000);
	rt = pcp_rt_next_ms(rt, 0.0, PCP_RT_MRT_MS);
	assert_int_equal(rt, 1024000);
}

static void
test_renew_windows(void **state)
{
	(void)state;
	/* §11.2.1 with a 3600 s lifetime: [1/2, 5/8] = [1800, 2250] s */
	assert_int_equal(pcp_renew_at_ms(3600, 0, 0.0), 1800000);
	assert_int_equal(pcp_renew_at_ms(3600, 0, 0.5), 2025000);
	assert_int_equal(pcp_renew_at_ms(3600, 0, 0.999999), 2249999);
	/* [3/4, 3/4 + 1/16] = [2700, 2925] s */
	assert_int_equal(pcp_renew_at_ms(3600, 1, 0.0), 2700000);
	assert_int_equal(pcp_renew_at_ms(3600, 1, 0.5), 2812500);
	/* [7/8, 7/8 + 1/32] = [3150, 3262.5] s */
	assert_int_equal(pcp_renew_at_ms(3600, 2, 0.0), 3150000);
	assert_int_equal(pcp_renew_at_ms(3600, 2, 0.5), 3206250);
	/* [15/16, 15/16 + 1/64] = [3375, 3431.25] s */
	assert_int_equal(pcp_renew_at_ms(3600, 3, 0.0), 3375000);
}

static void
test_renew_min_gap(void **state)
{
	(void)state;
	/*
	 * 120 s lifetime: windows [60, 75], [90, 97.5], [105, 108.75],
	 * then [112.5, 114.375] starts only 3.75 s after 108.75 and is pushed
	 * to 112.75; [116.25, 117.187] is pushed to 118.375 (one point);
	 * the next would start at 122.375 s, after expiry.
	 */
	assert_int_equal(pcp_renew_at_ms(120, 0, 0.0), 60000);
	assert_int_equal(pcp_renew_at_ms(120, 1, 0.0), 90000);
	assert_int_equal(pcp_renew_at_ms(120, 2, 0.0), 105000);
	assert_int_equal(pcp_renew_at_ms(120, 3, 0.0), 112750);
	assert_int_equal(pcp_renew_at_ms(120, 3, 0.5), 113562);
	assert_int_equal(pcp_renew_at_ms(120, 4, 0.0), 118375);
	assert_int_equal(pcp_renew_at_ms(120, 4, 0.9), 118375);
	assert_int_equal(pcp_renew_at_ms(120, 5, 0.0), PCP_RENEW_NONE);
	assert_int_equal(pcp_renew_at_ms(120, 1000, 0.0), PCP_RENEW_NONE);
}

static void
test_renew_gap_holds_for_any_draws(void **state)
{
	static const double draws[] = { 0.0, 0.25, 0.5, 0.75, 0.999 };
	static const uint32_t lifetimes[] = { 8, 30, 120, 121, 7200, 86400 };
	size_t l, a, b;
	unsigned int k;

	(void)state;
	/* the latest draw of renewal k and the earliest of k+1: >= 4 s */
	for (l = 0; l < sizeof(lifetimes) / sizeof(lifetimes[0]); l++) {
		for (k = 0; k < 40; k++) {
			for (a = 0; a < sizeof(draws) / sizeof(draws[0]); a++)
			for (b = 0; b < sizeof(draws) / sizeof(draws[0]); b++) {
				uint32_t t0, t1;

				t0 = pcp_renew_at_ms(lifetimes[l], k, draws[a]);
				t1 = pcp_renew_at_ms(lifetimes[l], k + 1,
				    draws[b]);
				if (t0 == PCP_RENEW_NONE) {
					assert_int_equal(t1, PCP_RENEW_NONE);
					continue;
				}
				assert_true(t0 < lifetimes[l] * 1000u);
				if (t1 != PCP_RENEW_NONE)
					assert_true(t1 >= t0 +
					    PCP_RENEW_MIN_GAP_MS);
			}
		}
	}
}

static void
test_renew_edge_cases(void **state)
{
	(void)state;
	/* lifetime 0 (a delete): nothing to renew */
	assert_int_equal(pcp_renew_at_ms(0, 0, 0.0), PCP_RENEW_NONE);
	/* a 1 s lifetime still gets its first renewal at 1/2 */
	assert_int_equal(pcp_renew_at_ms(1, 0, 0.0), 500);
	assert_int_equal(pcp_renew_at_ms(1, 1, 0.0), PCP_RENEW_NONE);
	/* out-of-range draws are taken as 0 */
	assert_int_equal(pcp_renew_at_ms(3600, 0, 1.0), 1800000);
	assert_int_equal(pcp_renew_at_ms(3600, 0, -0.5), 1800000);
	assert_int_equal(pcp_renew_at_ms(3600, 0, NAN), 1800000);
	/* an absurd lifetime saturates instead of wrapping */
	assert_int_equal(pcp_renew_at_ms(UINT32_MAX, 0, 0.0),
	    PCP_RENEW_NONE - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rand_mapping),
		cmocka_unit_test(test_first_rt),
		cmocka_unit_test(test_next_rt_doubles),
		cmocka_unit_test(test_next_rt_capped_by_mrt),
		cmocka_unit_test(test_next_rt_no_mrt_saturates),
		cmocka_unit_test(test_rt_sequence),
		cmocka_unit_test(test_renew_windows),
		cmocka_unit_test(test_renew_min_gap),
		cmocka_unit_test(test_renew_gap_holds_for_any_draws),
		cmocka_unit_test(test_renew_edge_cases),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
