/*
 * pcp_retrans.h - RFC 6887 client timing arithmetic: the retransmission
 * timer of §8.1.1 and the renewal schedule of §11.2.1.
 *
 * Pure: no clock, no random source. The caller draws the random numbers
 * (getrandom() in pcp-iwfctl, the daemon's RNG upstream) and passes them in,
 * so the tests can pin every value. All times are milliseconds.
 */
#ifndef IWFD_PCP_RETRANS_H
#define IWFD_PCP_RETRANS_H

#include <stdint.h>

/* RFC 6887 §8.1.1: initial and maximum retransmission times. */
#define PCP_RT_IRT_MS		3000u
#define PCP_RT_MRT_MS		1024000u
/* MRC and MRD are 0 (no limit) by default: retransmit until answered. */
#define PCP_RT_MRC		0u
#define PCP_RT_MRD_MS		0u
/* RAND is uniform in [-0.1, +0.1]. */
#define PCP_RT_RAND_MAX		0.1

/* RFC 6887 §11.2.1: renewals are never sent less than 4 s apart. */
#define PCP_RENEW_MIN_GAP_MS	4000u
/* pcp_renew_at_ms(): no further renewal fits before the mapping expires. */
#define PCP_RENEW_NONE		UINT32_MAX

/* Map 32 random bits to RAND in [-0.1, +0.1] (§8.1.1). */
double		pcp_rt_rand(uint32_t random_bits);
/* Map 32 random bits to [0, 1) for pcp_renew_at_ms(). */
double		pcp_rand_unit(uint32_t random_bits);

/*
 * §8.1.1: RT = (1 + RAND) * IRT. rand is clamped to [-0.1, +0.1]; the
 * result is rounded to the nearest millisecond.
 */
uint32_t	pcp_rt_first_ms(double rand);

/*
 * §8.1.1: RT = (1 + RAND) * MIN(2 * RTprev, MRT), a new RAND each time;
 * mrt_ms 0 means no upper limit (PCP_RT_MRT_MS is the RFC default).
 * Saturates at UINT32_MAX.
 */
uint32_t	pcp_rt_next_ms(uint32_t prev_ms, double rand, uint32_t mrt_ms);

/*
 * §11.2.1: when to send renewal number `renewals_sent` (0 = the first one)
 * of a mapping granted for lifetime_s seconds, in milliseconds after the
 * grant. Renewal k falls uniformly (unit_rand in [0, 1)) in
 * [1 - 2^-(k+1), 1 - 2^-(k+1) + 2^-(k+3)] of the lifetime: [1/2, 5/8],
 * [3/4, 3/4 + 1/16], [7/8, 7/8 + 1/32], ...
 * Each window is pushed back so that it starts at least 4 s after the end
 * of the previous one: whatever the earlier draws were, two renewals are
 * never less than 4 s apart. Returns PCP_RENEW_NONE when that window would
 * start at or after expiry; the caller then lets the mapping lapse (or
 * requests it anew). Lifetimes should be capped by the caller first
 * (§15, e.g. 24 h); a time past UINT32_MAX - 1 ms saturates there.
 */
uint32_t	pcp_renew_at_ms(uint32_t lifetime_s, unsigned int renewals_sent,
		    double unit_rand);

#endif
