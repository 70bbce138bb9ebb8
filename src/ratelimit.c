/*
 * ratelimit.c - per-host token buckets (see ratelimit.h).
 *
 * Levels are kept in thousandths of a token: a host earns `rate` of them
 * per millisecond, so the refill is exact integer arithmetic with no
 * rounding lost between calls however short the gaps (at 3/s a host gets
 * its token after 334 ms, then 333, 333, 334 ...), and a request costs
 * RATELIMIT_MS_PER_S of them.
 *
 * Slots live in one array made at creation: a chained hash index over it
 * (the chains are slot indices, keyed with the seed like the mapping
 * table's, src/table.c) finds a host, and a doubly linked list in the
 * order of last use gives the least recently seen host to reuse in O(1)
 * when every slot is taken. Nothing is allocated per request.
 */
#include <stdlib.h>
#include <string.h>

#include "ratelimit.h"
#include "util.h"

/* The bucket unit: thousandths of a token, earned `rate` per ms. */
#define RATELIMIT_MS_PER_S	1000
/* Indices are 32-bit; far more hosts than any LAN has. */
#define RATELIMIT_MAX_HOSTS	(1u << 20)
#define RATELIMIT_NONE		UINT32_MAX

struct ratelimit_slot {
	struct in6_addr	 host;
	uint64_t	 level;		/* thousandths of a token */
	uint64_t	 last;		/* ms of the last refill */
	uint32_t	 chain_prev, chain_next;	/* hash chain */
	uint32_t	 lru_prev, lru_next;	/* prev: more recently seen */
};

struct ratelimit {
	uint32_t		 rate;
	uint32_t		 burst;
	uint64_t		 seed;
	struct ratelimit_slot	*slots;
	uint32_t		 n_slots;
	uint32_t		 used;
	uint32_t		*heads;		/* hash chains, n_heads of them */
	uint32_t		 n_heads;	/* a power of two */
	uint32_t		 lru_first;	/* most recently seen */
	uint32_t		 lru_last;	/* least recently seen */
	uint64_t		 allowed;
	uint64_t		 limited;
};

/* rate > 0 needs room for one request (ratelimit.h: burst >= 1). */
static uint32_t
ratelimit_burst(uint32_t rate, uint32_t burst)
{
	return rate > 0 && burst == 0 ? 1 : burst;
}

static uint64_t
ratelimit_full(const struct ratelimit *rl)
{
	return (uint64_t)rl->burst * RATELIMIT_MS_PER_S;
}

static uint32_t
ratelimit_head(const struct ratelimit *rl, const struct in6_addr *host)
{
	return (uint32_t)util_hash_mix(util_hash_addr(rl->seed, host)) &
	    (rl->n_heads - 1);
}

struct ratelimit *
ratelimit_new(const struct ratelimit_params *p)
{
	struct ratelimit *rl;
	size_t hosts, i;

	hosts = p->hosts != 0 ? p->hosts : RATELIMIT_DEFAULT_HOSTS;
	if (hosts > RATELIMIT_MAX_HOSTS)
		hosts = RATELIMIT_MAX_HOSTS;
	if ((rl = calloc(1, sizeof(*rl))) == NULL)
		return NULL;
	rl->n_slots = (uint32_t)hosts;
	for (rl->n_heads = 1; rl->n_heads < rl->n_slots; rl->n_heads <<= 1)
		;
	rl->slots = calloc(rl->n_slots, sizeof(*rl->slots));
	rl->heads = calloc(rl->n_heads, sizeof(*rl->heads));
	if (rl->slots == NULL || rl->heads == NULL) {
		ratelimit_free(rl);
		return NULL;
	}
	for (i = 0; i < rl->n_heads; i++)
		rl->heads[i] = RATELIMIT_NONE;
	rl->lru_first = rl->lru_last = RATELIMIT_NONE;
	rl->seed = p->seed;
	rl->rate = p->rate;
	rl->burst = ratelimit_burst(p->rate, p->burst);
	return rl;
}

void
ratelimit_free(struct ratelimit *rl)
{
	if (rl == NULL)
		return;
	free(rl->slots);
	free(rl->heads);
	free(rl);
}

void
ratelimit_set(struct ratelimit *rl, uint32_t rate, uint32_t burst)
{
	uint64_t full;
	uint32_t i;

	if (rl == NULL)
		return;
	rl->rate = rate;
	rl->burst = ratelimit_burst(rate, burst);
	full = ratelimit_full(rl);
	for (i = 0; i < rl->used; i++)
		if (rl->slots[i].level > full)
			rl->slots[i].level = full;
}

/* ---- the two lists ---- */

static void
ratelimit_lru_unlink(struct ratelimit *rl, uint32_t i)
{
	struct ratelimit_slot *s = &rl->slots[i];

	if (s->lru_prev != RATELIMIT_NONE)
		rl->slots[s->lru_prev].lru_next = s->lru_next;
	else
		rl->lru_first = s->lru_next;
	if (s->lru_next != RATELIMIT_NONE)
		rl->slots[s->lru_next].lru_prev = s->lru_prev;
	else
		rl->lru_last = s->lru_prev;
}

static void
ratelimit_lru_push(struct ratelimit *rl, uint32_t i)
{
	struct ratelimit_slot *s = &rl->slots[i];

	s->lru_prev = RATELIMIT_NONE;
	s->lru_next = rl->lru_first;
	if (rl->lru_first != RATELIMIT_NONE)
		rl->slots[rl->lru_first].lru_prev = i;
	else
		rl->lru_last = i;
	rl->lru_first = i;
}

static void
ratelimit_chain_unlink(struct ratelimit *rl, uint32_t i)
{
	struct ratelimit_slot *s = &rl->slots[i];

	if (s->chain_prev != RATELIMIT_NONE)
		rl->slots[s->chain_prev].chain_next = s->chain_next;
	else
		rl->heads[ratelimit_head(rl, &s->host)] = s->chain_next;
	if (s->chain_next != RATELIMIT_NONE)
		rl->slots[s->chain_next].chain_prev = s->chain_prev;
}

static void
ratelimit_chain_push(struct ratelimit *rl, uint32_t i, uint32_t head)
{
	struct ratelimit_slot *s = &rl->slots[i];

	s->chain_prev = RATELIMIT_NONE;
	s->chain_next = rl->heads[head];
	if (rl->heads[head] != RATELIMIT_NONE)
		rl->slots[rl->heads[head]].chain_prev = i;
	rl->heads[head] = i;
}

/* ---- buckets ---- */

static uint32_t
ratelimit_find(const struct ratelimit *rl, const struct in6_addr *host,
    uint32_t head)
{
	uint32_t i;

	for (i = rl->heads[head]; i != RATELIMIT_NONE;
	    i = rl->slots[i].chain_next)
		if (IN6_ARE_ADDR_EQUAL(&rl->slots[i].host, host))
			return i;
	return RATELIMIT_NONE;
}

/* A slot for a host not seen (or forgotten): a free one, else the least
   recently seen host's. It starts full (ratelimit.h). */
static uint32_t
ratelimit_take(struct ratelimit *rl, const struct in6_addr *host,
    uint32_t head, uint64_t now)
{
	struct ratelimit_slot *s;
	uint32_t i;

	if (rl->used < rl->n_slots)
		i = rl->used++;
	else {
		i = rl->lru_last;
		ratelimit_chain_unlink(rl, i);
		ratelimit_lru_unlink(rl, i);
	}
	s = &rl->slots[i];
	s->host = *host;
	s->level = ratelimit_full(rl);
	s->last = now;
	ratelimit_chain_push(rl, i, head);
	ratelimit_lru_push(rl, i);
	return i;
}

/*
 * Add what the host earned since s->last, at most up to a full bucket.
 * A gap longer than filling an empty bucket takes is cut short first, so
 * gap * rate cannot overflow whatever the gap. A clock that went back
 * (it should not: monotonic) earns nothing until it passes s->last again.
 */
static void
ratelimit_refill(const struct ratelimit *rl, struct ratelimit_slot *s,
    uint64_t now)
{
	uint64_t full = ratelimit_full(rl), gap;

	if (now <= s->last)
		return;
	gap = now - s->last;
	s->last = now;
	if (s->level >= full) {
		s->level = full;
		return;
	}
	if (gap > (full - s->level) / rl->rate)
		s->level = full;
	else	/* gap * rate <= full - level: no overflow, no overshoot */
		s->level += gap * rl->rate;
}

/*
 * The key a host is charged under: an IPv4(-mapped) address as it is; an
 * IPv6 address by its /64, the prefix one host gets on a LAN (RFC 4291
 * §2.5.1), because a host picks any interface identifier it likes (RFC
 * 8981 temporary addresses) and would otherwise get a fresh, full bucket
 * per address (fix, review).
 */
static void
ratelimit_key(const struct in6_addr *host, struct in6_addr *key)
{
	*key = *host;
	if (!IN6_IS_ADDR_V4MAPPED(host))
		memset(&key->s6_addr[8], 0, 8);
}

bool
ratelimit_allow(struct ratelimit *rl, const struct in6_addr *addr,
    uint64_t now)
{
	struct ratelimit_slot *s;
	struct in6_addr key, *host = &key;
	uint32_t head, i;

	if (rl == NULL)
		return true;
	if (rl->rate == 0) {
		rl->allowed++;
		return true;
	}
	ratelimit_key(addr, &key);
	head = ratelimit_head(rl, host);
	if ((i = ratelimit_find(rl, host, head)) == RATELIMIT_NONE)
		i = ratelimit_take(rl, host, head, now);
	else if (rl->lru_first != i) {
		ratelimit_lru_unlink(rl, i);
		ratelimit_lru_push(rl, i);
	}
	s = &rl->slots[i];
	ratelimit_refill(rl, s, now);
	if (s->level < RATELIMIT_MS_PER_S) {
		rl->limited++;
		return false;
	}
	s->level -= RATELIMIT_MS_PER_S;
	rl->allowed++;
	return true;
}

void
ratelimit_stats(const struct ratelimit *rl, struct ratelimit_stats *st)
{
	memset(st, 0, sizeof(*st));
	if (rl == NULL)
		return;
	st->allowed = rl->allowed;
	st->limited = rl->limited;
	st->hosts = rl->used;
}
