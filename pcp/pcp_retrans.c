/*
 * pcp_retrans.c - RFC 6887 §8.1.1 retransmission timer and §11.2.1 renewal
 * schedule. Pure arithmetic; see pcp_retrans.h.
 */
#include "pcp_retrans.h"

/* 2^32 as a double, for turning 32 random bits into a fraction. */
#define TWO_POW_32	4294967296.0

double
pcp_rt_rand(uint32_t random_bits)
{
	/* UINT32_MAX maps to exactly +0.1, 0 to exactly -0.1. */
	return -PCP_RT_RAND_MAX +
	    2.0 * PCP_RT_RAND_MAX * ((double)random_bits / (double)UINT32_MAX);
}

double
pcp_rand_unit(uint32_t random_bits)
{
	return (double)random_bits / TWO_POW_32;
}

static double
rt_clamp_rand(double rand)
{
	if (!(rand >= -PCP_RT_RAND_MAX))	/* also catches NaN */
		return -PCP_RT_RAND_MAX;
	if (rand > PCP_RT_RAND_MAX)
		return PCP_RT_RAND_MAX;
	return rand;
}

static uint32_t
rt_scale(uint64_t base_ms, double rand)
{
	double rt;

	rt = (1.0 + rt_clamp_rand(rand)) * (double)base_ms;
	if (rt >= (double)UINT32_MAX - 0.5)
		return UINT32_MAX;
	/* rt is positive: adding 0.5 and truncating rounds to nearest */
	return (uint32_t)(rt + 0.5);
}

uint32_t
pcp_rt_first_ms(double rand)
{
	/* §8.1.1: RT = (1 + RAND) * IRT */
	return rt_scale(PCP_RT_IRT_MS, rand);
}

uint32_t
pcp_rt_next_ms(uint32_t prev_ms, double rand, uint32_t mrt_ms)
{
	uint64_t base;

	/* §8.1.1: RT = (1 + RAND) * MIN(2 * RTprev, MRT); MRT 0 = no limit */
	base = 2 * (uint64_t)prev_ms;
	if (mrt_ms != 0 && base > mrt_ms)
		base = mrt_ms;
	return rt_scale(base, rand);
}

/* x / 2^shift, 0 once the shift covers every bit. */
static uint64_t
renew_fraction(uint64_t x, unsigned int shift)
{
	return shift >= 64 ? 0 : x >> shift;
}

uint32_t
pcp_renew_at_ms(uint32_t lifetime_s, unsigned int renewals_sent,
    double unit_rand)
{
	uint64_t life_ms = (uint64_t)lifetime_s * 1000;
	uint64_t lo = 0, hi = 0, prev_hi = 0, at;
	unsigned int k;

	if (!(unit_rand >= 0.0))		/* also catches NaN */
		unit_rand = 0.0;
	if (unit_rand >= 1.0)
		unit_rand = 0.0;

	for (k = 0; k <= renewals_sent; k++) {
		/* §11.2.1: window k is [1 - 2^-(k+1), that + 2^-(k+3)] */
		lo = life_ms - renew_fraction(life_ms, k + 1);
		hi = lo + renew_fraction(life_ms, k + 3);
		/* §11.2.1: renewals MUST NOT be sent less than 4 s apart */
		if (k > 0) {
			uint64_t floor_ms = prev_hi + PCP_RENEW_MIN_GAP_MS;

			if (lo < floor_ms)
				lo = floor_ms;
			if (hi < floor_ms)
				hi = floor_ms;
		}
		if (lo >= life_ms)
			return PCP_RENEW_NONE;
		prev_hi = hi;
	}
	at = lo + (uint64_t)(unit_rand * (double)(hi - lo));
	if (at >= PCP_RENEW_NONE)
		return PCP_RENEW_NONE - 1;
	return (uint32_t)at;
}
