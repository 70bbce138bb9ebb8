/*
 * table.c - the mapping table (see table.h for the model and the rules).
 *
 * Memory at 50,000 mappings, LP64, counted as glibc malloc chunks (usable
 * size + an 8-byte header, 16-byte steps): struct mapping 168 bytes, a
 * 176-byte chunk; its description exact-sized apart (a 60-character one is
 * an 80-byte chunk); no per-host allocation (a host's first mapping carries
 * the host's count and is what the host index links); three hash indexes
 * (internal, external, host) at most 1 bucket pointer a mapping each (load
 * factor <= 2, power of two); the heap and the listing array one slot each,
 * at most 2 after doubling; a fixed 32 KiB of port bitmaps. Measured by
 * test_table (table_memory_bytes() and mallinfo2() agree): 244 bytes a
 * mapping with a short description at one host per mapping, 292 with a
 * 60-character one, 239 at 64 mappings a host (before: 261 and 341 real
 * bytes at one host a mapping).
 */
#include <sys/queue.h>
#include <sys/types.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <malloc.h>
#endif

#include "log.h"
#include "pcp_wire.h"
#include "table.h"

#define IDX_INTERNAL		0	/* struct mapping next[] slots */
#define IDX_EXTERNAL		1
#define IDX_HOST		2	/* links a host's first mapping only */
#define IDX_PEER		3	/* PEER 5-tuples; links through
					   next[IDX_INTERNAL], which a PEER
					   mapping never uses */
#define IDX_PEER_PORT		4	/* PEERs by (protocol, gateway port);
					   links through table_peer's
					   port_next */
#define IDX_COUNT		5

#define TABLE_BUCKETS_MIN	16	/* power of two */
#define TABLE_ARRAY_MIN		16
/* Grow a bucket array when count > size * TABLE_LOAD_MAX; shrink when
   count < size / TABLE_SHRINK_RATIO, so growth and shrink never chase.
   Two entries a bucket on average cost one more pointer comparison a
   lookup and save a bucket pointer a mapping in each index. */
#define TABLE_LOAD_MAX		2
#define TABLE_SHRINK_RATIO	8
/* Heap and listing arrays halve when count < capacity / 4. */
#define TABLE_ARRAY_SHRINK	4
/* Uniform random probes before the sweep from a random point. */
#define TABLE_ALLOC_PROBES	8
#define TABLE_SEED_DEFAULT	0x9e3779b97f4a7c15ULL
/* Port bitmaps: one bit a port, for TCP and UDP. */
#define TABLE_PORTS		65536
#define TABLE_WORD_BITS		64
#define TABLE_PORT_WORDS	(TABLE_PORTS / TABLE_WORD_BITS)
#define TABLE_BITMAP_PROTOS	2	/* TCP, UDP */
/* Holds of one class never exceed span / TABLE_HOLD_SHARE ports of the
   allocator's range: see hold_add(). */
#define TABLE_HOLD_SHARE	2
#ifdef __linux__
/* glibc's chunk header; malloc_usable_size() gives the rest. */
#define TABLE_CHUNK_HEADER	sizeof(size_t)
#endif

/*
 * An intrusive chained hash index over entries of one type, linked through
 * a pointer at offset `link` inside each entry: one link, unlink, resize
 * and rehash for the mapping indexes and the holds.
 */
struct chain {
	void		**buckets;
	uint32_t	 size;		/* power of two */
	uint32_t	 count;
	size_t		 link;		/* offsetof the entry's next pointer */
	uint64_t	(*hash)(uint64_t seed, const void *entry);
};

/* RFC 6887 §15: a released external port, held for its last owner. */
struct port_hold {
	struct in6_addr		 internal_addr;
	uint64_t		 until;		/* ms */
	struct port_hold	*next;		/* hash chain */
	TAILQ_ENTRY(port_hold)	 fifo;		/* oldest first */
	uint8_t			 nonce[MAP_NONCE_SIZE];
	uint16_t		 internal_port;
	uint16_t		 ext_port;
	uint8_t			 protocol;
};

TAILQ_HEAD(port_hold_fifo, port_hold);

/*
 * A PEER mapping: the mapping, then its remote peer (table.h) and its link
 * in the index of gateway ports that PEER flows leave from. That index is
 * the port's owner record and reference count: every PEER on one port is
 * of one internal endpoint, so a port is that endpoint's while any of its
 * PEERs is there (MAP mappings pay nothing for it).
 */
struct table_peer {
	struct mapping		 m;	/* first: a mapping pointer is ours */
	struct mapping		*port_next;
	struct mapping_peer	 peer;
};

/* Hold classes: one hold time each, so each FIFO is ordered by `until`. */
enum hold_class {
	HOLD_CLASS_TCP = 0,
	HOLD_CLASS_OTHER,
	HOLD_CLASS_COUNT
};

struct table {
	struct chain		 index[IDX_COUNT];
	struct chain		 holds;
	struct port_hold_fifo	 hold_fifo[HOLD_CLASS_COUNT];
	uint32_t		 nholds[HOLD_CLASS_COUNT];
	uint64_t		 hold_ms[HOLD_CLASS_COUNT];
	struct mapping		**heap;		/* min-heap on expiry */
	struct mapping		**list;		/* table_at() order */
	uint32_t		 count;		/* length of heap and list */
	uint32_t		 heap_cap;
	uint32_t		 list_cap;
	uint32_t		 state_count[MAP_STATE_COUNT];
	uint64_t		 generation;	/* table_generation() */
	/* What changed since table_dirty_clear() (the state journal's group
	   commit): the mappings changed, each once (dirty_slot), in an
	   array with room for every mapping (reserved with heap and list,
	   so marking never fails), and the keys of the removed ones. */
	struct mapping		**dirty;
	uint32_t		 ndirty;
	uint32_t		 dirty_cap;
	struct table_key	*removed;
	size_t			 nremoved, removed_cap;
	bool			 dirty_lost;	/* a removed key not logged */
	bool			 tracking;	/* table_track_changes() */
	uint64_t		 seed;		/* hash key */
	uint64_t		 rng;		/* xorshift64* state */
	size_t			 memory;	/* bytes held, see table_chunk() */
	table_port_check_fn	 port_check;
	void			*port_check_arg;
	table_port_ranges_fn	 port_ranges;
	void			*port_ranges_arg;
	struct port_range	*ranges;	/* scratch for port_pick() */
	size_t			 ranges_cap;
	uint16_t		 port_min, port_max;
	/* Per protocol: ports in use (a mapping, a hold, reserved) and ports
	   of NAT-PMP mappings (their twins are promised, RFC 6886 §3.3). */
	uint64_t		 used[TABLE_BITMAP_PROTOS][TABLE_PORT_WORDS];
	uint64_t		 natpmp[TABLE_BITMAP_PROTOS][TABLE_PORT_WORDS];
};

/* ---- memory accounting ------------------------------------------------ */

/* What an allocation really costs: the chunk, not the request. */
static size_t
table_chunk(void *p, size_t requested)
{
#ifdef __linux__
	(void)requested;
	return malloc_usable_size(p) + TABLE_CHUNK_HEADER;
#else
	return requested;
#endif
}

static void *
table_calloc(struct table *t, size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) != NULL)
		t->memory += table_chunk(p, n * size);
	return p;
}

static void
table_release(struct table *t, void *p, size_t size)
{
	if (p == NULL)
		return;
	t->memory -= table_chunk(p, size);
	free(p);
}

/*
 * realloc with accounting; *p unchanged on failure. A shrink moves to a
 * fresh allocation: glibc shrinks an mmap()ed chunk in place to whole
 * pages, which would keep kilobytes for a few slots.
 */
static int
table_realloc(struct table *t, void **p, size_t oldsize, size_t size)
{
	size_t before = *p != NULL ? table_chunk(*p, oldsize) : 0;
	void *n;

	if (*p != NULL && size < oldsize) {
		if ((n = malloc(size)) == NULL)
			return -1;
		memcpy(n, *p, size);
		free(*p);
	} else if ((n = realloc(*p, size)) == NULL)
		return -1;
	t->memory = t->memory - before + table_chunk(n, size);
	*p = n;
	return 0;
}

static char *
table_strdup(struct table *t, const char *s)
{
	size_t len = strlen(s) + 1;
	char *p;

	if ((p = table_calloc(t, len, 1)) != NULL)
		memcpy(p, s, len);
	return p;
}

static void
table_release_string(struct table *t, char *s)
{
	if (s != NULL)
		table_release(t, s, strlen(s) + 1);
}

/* ---- hashing ----------------------------------------------------------- */

/* Hashes are util_hash_mix() keyed with the table seed, so LAN hosts
   cannot aim at one chain without knowing it. */

static uint64_t
hash_internal(uint64_t seed, uint8_t proto, const struct in6_addr *a,
    uint16_t port)
{
	return util_hash_mix(util_hash_addr(seed, a) ^
	    ((uint64_t)proto << 16 | port));
}

static uint64_t
hash_external(uint64_t seed, uint8_t proto, uint16_t port)
{
	return util_hash_mix(seed ^ ((uint64_t)proto << 16 | port));
}

static uint64_t
hash_mapping_internal(uint64_t seed, const void *entry)
{
	const struct mapping *m = entry;

	return hash_internal(seed, m->protocol, &m->internal_addr,
	    m->internal_port);
}

static uint64_t
hash_mapping_external(uint64_t seed, const void *entry)
{
	const struct mapping *m = entry;

	return hash_external(seed, m->protocol, m->ext_port);
}

static uint64_t
hash_peer(uint64_t seed, uint8_t proto, const struct in6_addr *a,
    uint16_t port, const struct in6_addr *peer, uint16_t peer_port)
{
	return util_hash_mix(util_hash_addr(hash_internal(seed, proto, a, port), peer) ^
	    peer_port);
}

static uint64_t
hash_mapping_peer(uint64_t seed, const void *entry)
{
	const struct table_peer *tp = entry;

	return hash_peer(seed, tp->m.protocol, &tp->m.internal_addr,
	    tp->m.internal_port, &tp->peer.addr, tp->peer.port);
}

static uint64_t
hash_mapping_peer_port(uint64_t seed, const void *entry)
{
	const struct mapping *m = entry;

	return hash_external(seed, m->protocol, m->ext_port);
}

static uint64_t
hash_mapping_host(uint64_t seed, const void *entry)
{
	const struct mapping *m = entry;

	return util_hash_addr(seed, &m->internal_addr);
}

static uint64_t
hash_hold(uint64_t seed, const void *entry)
{
	const struct port_hold *h = entry;

	return hash_external(seed, h->protocol, h->ext_port);
}

/* xorshift64*: pseudo-random port choice, reproducible from the seed. */
static uint64_t
table_random(struct table *t)
{
	t->rng ^= t->rng >> 12;
	t->rng ^= t->rng << 25;
	t->rng ^= t->rng >> 27;
	return t->rng * 0x2545f4914f6cdd1dULL;
}

/* ---- chained hash indexes ---------------------------------------------- */

/* The bucket count for n entries: a power of two >= n / TABLE_LOAD_MAX,
   at least the minimum. */
static uint32_t
buckets_for(uint32_t n)
{
	uint32_t size = TABLE_BUCKETS_MIN;

	while ((uint64_t)size * TABLE_LOAD_MAX < n &&
	    size < (UINT32_C(1) << 31))
		size <<= 1;
	return size;
}

static bool
buckets_need_resize(uint32_t count, uint32_t size)
{
	return count > (uint64_t)size * TABLE_LOAD_MAX ||
	    (size > TABLE_BUCKETS_MIN && count < size / TABLE_SHRINK_RATIO);
}

static void **
chain_next(const struct chain *c, void *entry)
{
	return (void **)(void *)((char *)entry + c->link);
}

static uint32_t
chain_bucket(const struct table *t, const struct chain *c, const void *e,
    uint32_t size)
{
	return (uint32_t)c->hash(t->seed, e) & (size - 1);
}

static int
chain_init(struct table *t, struct chain *c, size_t link,
    uint64_t (*hash)(uint64_t, const void *))
{
	c->link = link;
	c->hash = hash;
	c->size = TABLE_BUCKETS_MIN;
	c->count = 0;
	c->buckets = table_calloc(t, c->size, sizeof(*c->buckets));
	return c->buckets == NULL ? -1 : 0;
}

static void
chain_link(const struct table *t, struct chain *c, void *e)
{
	uint32_t b = chain_bucket(t, c, e, c->size);

	*chain_next(c, e) = c->buckets[b];
	c->buckets[b] = e;
	c->count++;
}

static void
chain_unlink(const struct table *t, struct chain *c, void *e)
{
	void **pp;

	for (pp = &c->buckets[chain_bucket(t, c, e, c->size)]; *pp != NULL;
	    pp = chain_next(c, *pp)) {
		if (*pp == e) {
			*pp = *chain_next(c, e);
			*chain_next(c, e) = NULL;
			c->count--;
			return;
		}
	}
}

/* Move every entry of `from` (size `n`) into `to` (size `size`). */
static void
chain_move(const struct table *t, const struct chain *c, void **from,
    uint32_t n, void **to, uint32_t size)
{
	void *e, *next;
	uint32_t i, b;

	for (i = 0; i < n; i++) {
		for (e = from[i]; e != NULL; e = next) {
			next = *chain_next(c, e);
			b = chain_bucket(t, c, e, size);
			*chain_next(c, e) = to[b];
			to[b] = e;
		}
		from[i] = NULL;
	}
}

/* Rehash into the size the count wants; on allocation failure keep the
   old buckets, which stay correct. */
static void
chain_fit(struct table *t, struct chain *c)
{
	void **nb;
	uint32_t size;

	if (!buckets_need_resize(c->count, c->size))
		return;
	size = buckets_for(c->count);
	if ((nb = table_calloc(t, size, sizeof(*nb))) == NULL)
		return;
	chain_move(t, c, c->buckets, c->size, nb, size);
	table_release(t, c->buckets, (size_t)c->size * sizeof(*nb));
	c->buckets = nb;
	c->size = size;
}

/* Relink every entry under the current seed, in place (cannot fail). */
static void
chain_rehash(const struct table *t, struct chain *c)
{
	void *all = NULL, *e, *next;
	uint32_t i, b;

	for (i = 0; i < c->size; i++) {
		for (e = c->buckets[i]; e != NULL; e = next) {
			next = *chain_next(c, e);
			*chain_next(c, e) = all;
			all = e;
		}
		c->buckets[i] = NULL;
	}
	for (e = all; e != NULL; e = next) {
		next = *chain_next(c, e);
		b = chain_bucket(t, c, e, c->size);
		*chain_next(c, e) = c->buckets[b];
		c->buckets[b] = e;
	}
}

static void
chain_free(struct chain *c)
{
	free(c->buckets);
	c->buckets = NULL;
}

/* ---- hosts ------------------------------------------------------------- */

/*
 * A host is its first mapping: that one carries the count and is what the
 * host index links; the others follow through host_next. This saves a
 * per-host allocation (48 bytes a host at one mapping each) at the price
 * of a walk of the host's list on removal, bounded by the quota.
 */
static struct mapping *
host_find(const struct table *t, const struct in6_addr *addr)
{
	const struct chain *c = &t->index[IDX_HOST];
	struct mapping *m;

	for (m = c->buckets[(uint32_t)util_hash_addr(t->seed, addr) &
	    (c->size - 1)]; m != NULL; m = m->next[IDX_HOST])
		if (IN6_ARE_ADDR_EQUAL(&m->internal_addr, addr))
			return m;
	return NULL;
}

static void
host_insert_mapping(struct table *t, struct mapping *m)
{
	struct mapping *first = host_find(t, &m->internal_addr);

	if (first == NULL) {
		m->host_next = NULL;
		m->host_count = 1;
		chain_link(t, &t->index[IDX_HOST], m);
		return;
	}
	/* after the first: the host keeps its entry in the index */
	m->host_next = first->host_next;
	first->host_next = m;
	first->host_count++;
}

static void
host_remove_mapping(struct table *t, struct mapping *m)
{
	struct mapping *first = host_find(t, &m->internal_addr), *p;

	if (first == NULL)
		return;
	if (first == m) {
		chain_unlink(t, &t->index[IDX_HOST], m);
		if ((p = m->host_next) != NULL) {
			p->host_count = m->host_count - 1;
			chain_link(t, &t->index[IDX_HOST], p);
		}
	} else {
		for (p = first; p->host_next != NULL && p->host_next != m;
		    p = p->host_next)
			continue;
		if (p->host_next == m)
			p->host_next = m->host_next;
		first->host_count--;
	}
	m->host_next = NULL;
}

/* ---- port bitmaps ------------------------------------------------------ */

/* The bitmap row of a protocol, -1 for those without one. */
static int
bitmap_row(uint8_t proto)
{
	if (proto == MAP_PROTO_TCP)
		return 0;
	if (proto == MAP_PROTO_UDP)
		return 1;
	return -1;
}

static uint8_t
other_protocol(uint8_t proto)
{
	if (proto == MAP_PROTO_TCP)
		return MAP_PROTO_UDP;
	if (proto == MAP_PROTO_UDP)
		return MAP_PROTO_TCP;
	return 0;
}

static void
bitmap_set(uint64_t *words, uint16_t port, bool on)
{
	uint64_t bit = UINT64_C(1) << (port % TABLE_WORD_BITS);

	if (on)
		words[port / TABLE_WORD_BITS] |= bit;
	else
		words[port / TABLE_WORD_BITS] &= ~bit;
}

bool
table_port_reserved(uint8_t proto, uint16_t port)
{
	/* RFC 6887 §11.3: MUST NOT map external UDP 5350/5351. */
	return proto == MAP_PROTO_UDP &&
	    (port == PCP_CLIENT_PORT || port == PCP_SERVER_PORT);
}

static struct port_hold *hold_find(const struct table *, uint8_t, uint16_t);

/* A PEER mapping whose flow leaves from gateway port (proto, port), or
   NULL: all of them are of one internal endpoint (struct table_peer). */
static const struct mapping *
peer_port_user(const struct table *t, uint8_t proto, uint16_t port)
{
	const struct chain *c = &t->index[IDX_PEER_PORT];
	const struct mapping *m;

	for (m = c->buckets[(uint32_t)hash_external(t->seed, proto, port) &
	    (c->size - 1)]; m != NULL;
	    m = ((const struct table_peer *)(const void *)m)->port_next)
		if (m->protocol == proto && m->ext_port == port)
			return m;
	return NULL;
}

/* Recompute the bits of (proto, port) after any change there. */
static void
port_mark(struct table *t, uint8_t proto, uint16_t port)
{
	const struct mapping *m = table_find_external(t, proto, port);
	int row = bitmap_row(proto);

	if (row < 0)
		return;
	bitmap_set(t->used[row], port, port == 0 ||
	    table_port_reserved(proto, port) || m != NULL ||
	    hold_find(t, proto, port) != NULL ||
	    peer_port_user(t, proto, port) != NULL);
	bitmap_set(t->natpmp[row], port, m != NULL &&
	    m->origin == MAP_ORIGIN_NATPMP);
}

/* Ports a new mapping of row may not take whoever asks: in use, or the
   twin of a NAT-PMP mapping (even the asker's own, which it can still
   get by suggestion or internal port). */
static uint64_t
bitmap_busy(const struct table *t, int row, uint32_t word)
{
	return t->used[row][word] | t->natpmp[1 - row][word];
}

static bool
bitmap_port_busy(const struct table *t, int row, uint16_t port)
{
	return (bitmap_busy(t, row, port / TABLE_WORD_BITS) >>
	    (port % TABLE_WORD_BITS) & 1) != 0;
}

/* The first port of [from, to] not busy, or -1. At most 1024 words. */
static int32_t
bitmap_next_free(const struct table *t, int row, uint32_t from, uint32_t to)
{
	uint32_t w, last = to / TABLE_WORD_BITS;
	uint64_t freebits;

	for (w = from / TABLE_WORD_BITS; w <= last; w++) {
		freebits = ~bitmap_busy(t, row, w);
		if (w == from / TABLE_WORD_BITS)
			freebits &= ~UINT64_C(0) << (from % TABLE_WORD_BITS);
		if (w == last && to % TABLE_WORD_BITS != TABLE_WORD_BITS - 1)
			freebits &= ~(~UINT64_C(0) <<
			    (to % TABLE_WORD_BITS + 1));
		if (freebits != 0)
			return (int32_t)(w * TABLE_WORD_BITS +
			    (uint32_t)__builtin_ctzll(freebits));
	}
	return -1;
}

static void
bitmap_init(struct table *t)
{
	uint16_t reserved[] = { 0, PCP_CLIENT_PORT, PCP_SERVER_PORT };
	size_t i;

	for (i = 0; i < sizeof(reserved) / sizeof(reserved[0]); i++) {
		port_mark(t, MAP_PROTO_TCP, reserved[i]);
		port_mark(t, MAP_PROTO_UDP, reserved[i]);
	}
}

/* ---- port holds (RFC 6887 §15) ----------------------------------------- */

static enum hold_class
hold_class_of(uint8_t proto)
{
	return proto == MAP_PROTO_TCP ? HOLD_CLASS_TCP : HOLD_CLASS_OTHER;
}

static struct port_hold *
hold_find(const struct table *t, uint8_t proto, uint16_t port)
{
	const struct chain *c = &t->holds;
	struct port_hold *h;

	for (h = c->buckets[(uint32_t)hash_external(t->seed, proto, port) &
	    (c->size - 1)]; h != NULL; h = h->next)
		if (h->protocol == proto && h->ext_port == port)
			return h;
	return NULL;
}

static void
hold_drop(struct table *t, struct port_hold *h)
{
	enum hold_class cl = hold_class_of(h->protocol);
	uint8_t proto = h->protocol;
	uint16_t port = h->ext_port;

	chain_unlink(t, &t->holds, h);
	TAILQ_REMOVE(&t->hold_fifo[cl], h, fifo);
	t->nholds[cl]--;
	table_release(t, h, sizeof(*h));
	port_mark(t, proto, port);
}

/* Holds of a class end in the order they began (one hold time a class),
   so the oldest is always at the head: O(1) amortized. A hold time changed
   at run time only delays the purge of a few records, whose `until` still
   decides. */
static void
hold_purge(struct table *t, uint64_t now)
{
	struct port_hold *h;
	int cl;

	for (cl = 0; cl < HOLD_CLASS_COUNT; cl++)
		while ((h = TAILQ_FIRST(&t->hold_fifo[cl])) != NULL &&
		    h->until <= now)
			hold_drop(t, h);
	chain_fit(t, &t->holds);
}

static bool
hold_same_owner(const struct port_hold *h, const struct map_req *req)
{
	return IN6_ARE_ADDR_EQUAL(&h->internal_addr, &req->internal_addr) &&
	    h->internal_port == req->internal_port &&
	    memcmp(h->nonce, req->nonce, MAP_NONCE_SIZE) == 0;
}

/*
 * Remember a released port for its owner; best effort (no memory: no
 * hold, which only weakens a SHOULD). The 124-minute TCP hold would let a
 * LAN host that creates and deletes mappings fast hold the whole range for
 * two hours; so a class never holds more than half the allocator's range,
 * and beyond that its oldest hold ends early.
 */
static void
hold_add(struct table *t, const struct mapping *m, uint64_t now)
{
	enum hold_class cl = hold_class_of(m->protocol);
	uint32_t cap = ((uint32_t)t->port_max - t->port_min + 1) /
	    TABLE_HOLD_SHARE;
	struct port_hold *h;

	if (t->hold_ms[cl] == 0)
		return;
	if (t->nholds[cl] >= cap && (h = TAILQ_FIRST(&t->hold_fifo[cl])) !=
	    NULL)
		hold_drop(t, h);
	if ((h = table_calloc(t, 1, sizeof(*h))) == NULL)
		return;
	h->internal_addr = m->internal_addr;
	h->until = now + t->hold_ms[cl];
	memcpy(h->nonce, m->nonce, MAP_NONCE_SIZE);
	h->internal_port = m->internal_port;
	h->ext_port = m->ext_port;
	h->protocol = m->protocol;
	chain_link(t, &t->holds, h);
	TAILQ_INSERT_TAIL(&t->hold_fifo[cl], h, fifo);
	t->nholds[cl]++;
	port_mark(t, h->protocol, h->ext_port);
	chain_fit(t, &t->holds);
}

/* ---- heap on expiry ---------------------------------------------------- */

static void
heap_place(struct table *t, struct mapping *m, uint32_t i)
{
	t->heap[i] = m;
	m->heap_index = i;
}

static void
heap_up(struct table *t, uint32_t i)
{
	struct mapping *m = t->heap[i];
	uint32_t parent;

	while (i > 0) {
		parent = (i - 1) / 2;
		if (t->heap[parent]->expiry <= m->expiry)
			break;
		heap_place(t, t->heap[parent], i);
		i = parent;
	}
	heap_place(t, m, i);
}

static void
heap_down(struct table *t, uint32_t i)
{
	struct mapping *m = t->heap[i];
	uint32_t child;

	for (;;) {
		child = 2 * i + 1;
		if (child >= t->count)
			break;
		if (child + 1 < t->count &&
		    t->heap[child + 1]->expiry < t->heap[child]->expiry)
			child++;
		if (m->expiry <= t->heap[child]->expiry)
			break;
		heap_place(t, t->heap[child], i);
		i = child;
	}
	heap_place(t, m, i);
}

/* Restore order after m's expiry changed. */
static void
heap_fix(struct table *t, struct mapping *m)
{
	heap_up(t, m->heap_index);
	heap_down(t, m->heap_index);
}

/* Take out heap slot i; t->count is already one less, so the old last
   element sits at heap[t->count]. */
static void
heap_delete(struct table *t, uint32_t i)
{
	struct mapping *last = t->heap[t->count];

	if (i == t->count)
		return;
	heap_place(t, last, i);
	heap_fix(t, last);
}

/* ---- heap and listing arrays ------------------------------------------- */

static int
array_resize(struct table *t, struct mapping ***arr, uint32_t *cap,
    uint32_t ncap)
{
	void *p = *arr;

	if (table_realloc(t, &p, (size_t)*cap * sizeof(**arr),
	    (size_t)ncap * sizeof(**arr)) == -1)
		return -1;
	*arr = p;
	*cap = ncap;
	return 0;
}

static int
array_reserve(struct table *t, struct mapping ***arr, uint32_t *cap)
{
	if (t->count < *cap)
		return 0;
	if (*cap >= UINT32_MAX / 2)
		return -1;
	return array_resize(t, arr, cap,
	    *cap == 0 ? TABLE_ARRAY_MIN : *cap * 2);
}

/* Room for one more in the heap and the listing array. A failure after
   one of them grew leaves it larger, which is harmless. */
static int
arrays_reserve(struct table *t)
{
	if (array_reserve(t, &t->heap, &t->heap_cap) == -1 ||
	    array_reserve(t, &t->list, &t->list_cap) == -1 ||
	    (t->tracking && array_reserve(t, &t->dirty, &t->dirty_cap) == -1))
		return -1;
	return 0;
}

static void
array_shrink(struct table *t, struct mapping ***arr, uint32_t *cap)
{
	if (*cap > TABLE_ARRAY_MIN && t->count < *cap / TABLE_ARRAY_SHRINK)
		(void)array_resize(t, arr, cap, *cap / 2);
}

/* ---- change tracking (the state journal) ------------------------------ */

/* m changed: note it once. The array has room for every mapping
   (arrays_reserve), so this cannot fail. */
static void
dirty_mark(struct table *t, struct mapping *m)
{
	t->generation++;
	if (!t->tracking || m->dirty_slot != 0)
		return;
	t->dirty[t->ndirty++] = m;
	m->dirty_slot = t->ndirty;
}

/* m goes away: out of the dirty array (the last entry takes its slot). */
static void
dirty_unmark(struct table *t, struct mapping *m)
{
	struct mapping *last;

	if (m->dirty_slot == 0)
		return;
	last = t->dirty[--t->ndirty];
	t->dirty[m->dirty_slot - 1] = last;
	last->dirty_slot = m->dirty_slot;
	m->dirty_slot = 0;
}

static void
removed_log(struct table *t, const struct mapping *m)
{
	const struct mapping_peer *peer = mapping_peer(m);
	struct table_key *k;
	void *p = t->removed;
	size_t cap;

	/* never granted, never saved: nothing to take back */
	if (!t->tracking || (m->flags & MAPPING_F_WAS_GRANTED) == 0)
		return;
	if (t->nremoved == t->removed_cap) {
		cap = t->removed_cap == 0 ? TABLE_ARRAY_MIN :
		    t->removed_cap * 2;
		if (table_realloc(t, &p, t->removed_cap * sizeof(*k),
		    cap * sizeof(*k)) == -1) {
			/* the journal cannot say it: the next save is whole */
			t->dirty_lost = true;
			return;
		}
		t->removed = p;
		t->removed_cap = cap;
	}
	k = &t->removed[t->nremoved++];
	memset(k, 0, sizeof(*k));
	k->internal_addr = m->internal_addr;
	k->internal_port = m->internal_port;
	k->protocol = m->protocol;
	if (peer != NULL) {
		k->peer = true;
		k->peer_addr = peer->addr;
		k->peer_port = peer->port;
	}
}

int
table_track_changes(struct table *t, bool on)
{
	if (on && !t->tracking && t->dirty_cap < t->list_cap &&
	    array_resize(t, &t->dirty, &t->dirty_cap, t->list_cap) == -1)
		return -1;
	if (!on)
		table_dirty_clear(t);
	t->tracking = on;
	return 0;
}

void
table_touch(struct table *t, struct mapping *m)
{
	dirty_mark(t, m);
}

size_t
table_dirty_count(const struct table *t)
{
	return t->ndirty;
}

struct mapping *
table_dirty_at(const struct table *t, size_t i)
{
	return i < t->ndirty ? t->dirty[i] : NULL;
}

size_t
table_removed_count(const struct table *t)
{
	return t->nremoved;
}

const struct table_key *
table_removed_at(const struct table *t, size_t i)
{
	return i < t->nremoved ? &t->removed[i] : NULL;
}

bool
table_dirty_lost(const struct table *t)
{
	return t->dirty_lost;
}

void
table_dirty_clear(struct table *t)
{
	uint32_t i;

	for (i = 0; i < t->ndirty; i++)
		t->dirty[i]->dirty_slot = 0;
	t->ndirty = 0;
	t->nremoved = 0;
	t->dirty_lost = false;
	/* a burst of removals (a mass expiry) does not pin its log */
	if (t->removed_cap > TABLE_ARRAY_MIN) {
		table_release(t, t->removed, t->removed_cap *
		    sizeof(*t->removed));
		t->removed = NULL;
		t->removed_cap = 0;
	}
}

/* ---- life cycle -------------------------------------------------------- */

struct table *
table_new(void)
{
	struct table *t;
	int cl;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->memory = table_chunk(t, sizeof(*t));
	for (cl = 0; cl < HOLD_CLASS_COUNT; cl++) {
		TAILQ_INIT(&t->hold_fifo[cl]);
		t->hold_ms[cl] = (uint64_t)(cl == HOLD_CLASS_TCP ?
		    TABLE_HOLD_TCP_SECONDS : TABLE_HOLD_SECONDS) *
		    TABLE_MS_PER_SECOND;
	}
	t->seed = TABLE_SEED_DEFAULT;
	t->rng = TABLE_SEED_DEFAULT;
	t->port_min = TABLE_PORT_MIN_DEFAULT;
	t->port_max = TABLE_PORT_MAX_DEFAULT;
	if (chain_init(t, &t->index[IDX_INTERNAL],
	    offsetof(struct mapping, next[IDX_INTERNAL]),
	    hash_mapping_internal) == -1 ||
	    chain_init(t, &t->index[IDX_EXTERNAL],
	    offsetof(struct mapping, next[IDX_EXTERNAL]),
	    hash_mapping_external) == -1 ||
	    chain_init(t, &t->index[IDX_HOST],
	    offsetof(struct mapping, next[IDX_HOST]),
	    hash_mapping_host) == -1 ||
	    chain_init(t, &t->index[IDX_PEER],
	    offsetof(struct mapping, next[IDX_INTERNAL]),
	    hash_mapping_peer) == -1 ||
	    chain_init(t, &t->index[IDX_PEER_PORT],
	    offsetof(struct table_peer, port_next),
	    hash_mapping_peer_port) == -1 ||
	    chain_init(t, &t->holds, offsetof(struct port_hold, next),
	    hash_hold) == -1) {
		table_free(t);
		return NULL;
	}
	bitmap_init(t);
	return t;
}

static bool
mapping_is_peer(const struct mapping *m)
{
	return (m->flags & MAPPING_F_PEER) != 0;
}

static void
mapping_free(struct table *t, struct mapping *m)
{
	table_release_string(t, m->description);
	table_release(t, m, mapping_is_peer(m) ? sizeof(struct table_peer) :
	    sizeof(*m));
}

const struct mapping_peer *
mapping_peer(const struct mapping *m)
{
	if (!mapping_is_peer(m))
		return NULL;
	return &((const struct table_peer *)(const void *)m)->peer;
}

void
table_free(struct table *t)
{
	struct port_hold *ph;
	uint32_t i;
	int idx;

	if (t == NULL)
		return;
	for (i = 0; i < t->count; i++)
		mapping_free(t, t->list[i]);
	for (idx = 0; idx < HOLD_CLASS_COUNT; idx++) {
		while ((ph = TAILQ_FIRST(&t->hold_fifo[idx])) != NULL) {
			TAILQ_REMOVE(&t->hold_fifo[idx], ph, fifo);
			free(ph);
		}
	}
	for (idx = 0; idx < IDX_COUNT; idx++)
		chain_free(&t->index[idx]);
	chain_free(&t->holds);
	free(t->heap);
	free(t->list);
	free(t->dirty);
	free(t->removed);
	free(t->ranges);
	free(t);
}

void
table_set_seed(struct table *t, uint64_t seed)
{
	int idx;

	/* xorshift must not start at zero */
	t->rng = seed != 0 ? seed : TABLE_SEED_DEFAULT;
	t->seed = util_hash_mix(seed ^ TABLE_SEED_DEFAULT);
	for (idx = 0; idx < IDX_COUNT; idx++)
		chain_rehash(t, &t->index[idx]);
	chain_rehash(t, &t->holds);
}

int
table_set_port_range(struct table *t, uint16_t lo, uint16_t hi)
{
	if (lo == 0 || lo > hi)
		return -1;
	t->port_min = lo;
	t->port_max = hi;
	return 0;
}

void
table_get_port_range(const struct table *t, uint16_t *lo, uint16_t *hi)
{
	*lo = t->port_min;
	*hi = t->port_max;
}

void
table_set_hold(struct table *t, uint32_t seconds)
{
	int cl;

	for (cl = 0; cl < HOLD_CLASS_COUNT; cl++)
		t->hold_ms[cl] = (uint64_t)seconds * TABLE_MS_PER_SECOND;
}

void
table_set_port_check(struct table *t, table_port_check_fn fn, void *arg)
{
	t->port_check = fn;
	t->port_check_arg = arg;
}

void
table_set_port_ranges(struct table *t, table_port_ranges_fn fn, void *arg)
{
	t->port_ranges = fn;
	t->port_ranges_arg = arg;
}

/* ---- lookups ----------------------------------------------------------- */

struct mapping *
table_find_internal(const struct table *t, uint8_t proto,
    const struct in6_addr *addr, uint16_t port)
{
	const struct chain *c = &t->index[IDX_INTERNAL];
	struct mapping *m;

	for (m = c->buckets[(uint32_t)hash_internal(t->seed, proto, addr,
	    port) & (c->size - 1)]; m != NULL; m = m->next[IDX_INTERNAL])
		if (m->protocol == proto && m->internal_port == port &&
		    IN6_ARE_ADDR_EQUAL(&m->internal_addr, addr))
			return m;
	return NULL;
}

struct mapping *
table_find_external(const struct table *t, uint8_t proto, uint16_t port)
{
	const struct chain *c = &t->index[IDX_EXTERNAL];
	struct mapping *m;

	for (m = c->buckets[(uint32_t)hash_external(t->seed, proto, port) &
	    (c->size - 1)]; m != NULL; m = m->next[IDX_EXTERNAL])
		if (m->protocol == proto && m->ext_port == port)
			return m;
	return NULL;
}

struct mapping *
table_find_peer(const struct table *t, uint8_t proto,
    const struct in6_addr *addr, uint16_t port,
    const struct in6_addr *peer, uint16_t peer_port)
{
	const struct chain *c = &t->index[IDX_PEER];
	struct table_peer *tp;
	struct mapping *m;

	for (m = c->buckets[(uint32_t)hash_peer(t->seed, proto, addr, port,
	    peer, peer_port) & (c->size - 1)]; m != NULL;
	    m = m->next[IDX_INTERNAL]) {
		tp = (struct table_peer *)(void *)m;
		if (m->protocol == proto && m->internal_port == port &&
		    tp->peer.port == peer_port &&
		    IN6_ARE_ADDR_EQUAL(&m->internal_addr, addr) &&
		    IN6_ARE_ADDR_EQUAL(&tp->peer.addr, peer))
			return m;
	}
	return NULL;
}

uint64_t
table_generation(const struct table *t)
{
	return t->generation;
}

size_t
table_count(const struct table *t)
{
	return t->count;
}

size_t
table_count_host(const struct table *t, const struct in6_addr *addr)
{
	const struct mapping *first = host_find(t, addr);

	return first == NULL ? 0 : first->host_count;
}

size_t
table_count_state(const struct table *t, enum map_state st)
{
	if ((unsigned int)st >= MAP_STATE_COUNT)
		return 0;
	return t->state_count[st];
}

struct mapping *
table_at(const struct table *t, size_t index)
{
	if (index >= t->count)
		return NULL;
	return t->list[index];
}

struct mapping *
table_host_first(const struct table *t, const struct in6_addr *addr)
{
	return host_find(t, addr);
}

struct mapping *
table_host_next(const struct mapping *m)
{
	return m->host_next;
}

uint64_t
table_next_expiry(const struct table *t)
{
	return t->count == 0 ? TABLE_EXPIRY_NEVER : t->heap[0]->expiry;
}

size_t
table_memory_bytes(const struct table *t)
{
	return t->memory;
}

size_t
table_hold_count(const struct table *t)
{
	return (size_t)t->nholds[HOLD_CLASS_TCP] + t->nholds[HOLD_CLASS_OTHER];
}

/* ---- states (STYLE.md habit 7) ----------------------------------------- */

const char *
map_state_name(enum map_state st)
{
	static const char *const names[MAP_STATE_COUNT] = {
		[MAP_STATE_REQUESTED] = "requested",
		[MAP_STATE_PENDING_UPSTREAM] = "pending-upstream",
		[MAP_STATE_GRANTED] = "granted",
		[MAP_STATE_RENEWING] = "renewing",
		[MAP_STATE_EXPIRED] = "expired",
		[MAP_STATE_DELETED] = "deleted",
	};

	if ((unsigned int)st >= MAP_STATE_COUNT)
		return "unknown";
	return names[st];
}

static bool
map_state_terminal(enum map_state st)
{
	return st == MAP_STATE_EXPIRED || st == MAP_STATE_DELETED;
}

/*
 * Allowed moves: forward through requested -> pending -> granted, renewing
 * and back, and from any live state to a terminal one. A live mapping may
 * go back to pending when upstream lost it (RFC 6887 §14 re-creation).
 */
static bool
map_state_allowed(enum map_state from, enum map_state to)
{
	if (map_state_terminal(from))
		return false;
	if (map_state_terminal(to))
		return true;
	switch (to) {
	case MAP_STATE_REQUESTED:
		return false;
	case MAP_STATE_PENDING_UPSTREAM:
	case MAP_STATE_GRANTED:
		return true;
	case MAP_STATE_RENEWING:
		return from == MAP_STATE_GRANTED;
	default:
		return false;
	}
}

bool
mapping_set_state(struct table *t, struct mapping *m, enum map_state st)
{
	enum map_state old = (enum map_state)m->state;
	char addr[INET6_ADDRSTRLEN];

	if (old == st)
		return true;
	if ((unsigned int)st >= MAP_STATE_COUNT ||
	    !map_state_allowed(old, st)) {
		log_warnx("mapping %u/%u: refused state %s -> %s",
		    m->protocol, m->ext_port, map_state_name(old),
		    map_state_name(st));
		return false;
	}
	if (log_getverbose() > 0) {
		if (inet_ntop(AF_INET6, &m->internal_addr, addr,
		    sizeof(addr)) == NULL)
			addr[0] = '\0';
		log_debug("mapping %s [%s]:%u ext %u: %s -> %s",
		    map_proto_name(m->protocol) != NULL ?
		    map_proto_name(m->protocol) : "?", addr, m->internal_port,
		    m->ext_port, map_state_name(old), map_state_name(st));
	}
	t->state_count[old]--;
	t->state_count[st]++;
	dirty_mark(t, m);
	m->state = (uint8_t)st;
	if (st == MAP_STATE_GRANTED)
		m->flags |= MAPPING_F_WAS_GRANTED;
	return true;
}

/* ---- time -------------------------------------------------------------- */

static uint64_t
expiry_after(uint64_t now, uint32_t lifetime)
{
	uint64_t ms;

	if (lifetime == TABLE_LIFETIME_INFINITE)
		return TABLE_EXPIRY_NEVER;
	ms = (uint64_t)lifetime * TABLE_MS_PER_SECOND;
	if (now > TABLE_EXPIRY_NEVER - 1 - ms)
		return TABLE_EXPIRY_NEVER - 1;
	return now + ms;
}

static uint32_t
remaining_until(uint64_t end, uint64_t now)
{
	uint64_t left;

	if (end == TABLE_EXPIRY_NEVER)
		return TABLE_LIFETIME_INFINITE;
	if (end <= now)
		return 0;
	left = (end - now + TABLE_MS_PER_SECOND - 1) / TABLE_MS_PER_SECOND;
	return left >= TABLE_LIFETIME_INFINITE ? TABLE_LIFETIME_INFINITE - 1 :
	    (uint32_t)left;
}

uint32_t
mapping_remaining(const struct mapping *m, uint64_t now)
{
	return remaining_until((m->flags & MAPPING_F_RENEW) != 0 ?
	    m->grant_end : m->expiry, now);
}

uint64_t
mapping_lease_end_ms(const struct mapping *m)
{
	if (m->lease_end == TABLE_LEASE_NONE)
		return 0;
	if (m->lease_end == TABLE_LEASE_FOREVER)
		return TABLE_EXPIRY_NEVER;
	return (uint64_t)m->lease_end * TABLE_MS_PER_SECOND;
}

uint32_t
mapping_lease_remaining(const struct mapping *m, uint64_t now)
{
	if (m->lease_end == TABLE_LEASE_NONE)
		return mapping_remaining(m, now);
	return remaining_until(mapping_lease_end_ms(m), now);
}

/* struct mapping lease_end for a request's lease, rounded up to whole
   seconds of the monotonic clock. */
static uint32_t
lease_end_at(uint32_t lease, uint64_t now)
{
	uint64_t end;

	if (lease == MAP_LEASE_NONE)
		return TABLE_LEASE_NONE;
	if (lease == MAP_LEASE_INFINITE)
		return TABLE_LEASE_FOREVER;
	end = (now + TABLE_MS_PER_SECOND - 1) / TABLE_MS_PER_SECOND + lease;
	return end >= TABLE_LEASE_FOREVER ? TABLE_LEASE_FOREVER - 1 :
	    (uint32_t)end;
}

static uint32_t
lease_end_from(const struct map_req *req, uint64_t now)
{
	return lease_end_at(req->lease, now);
}

void
table_set_lease(struct table *t, struct mapping *m, uint32_t lease,
    uint64_t now)
{
	m->lease_end = lease_end_at(lease, now);
	dirty_mark(t, m);
}

bool
table_cache_hit(const struct mapping *m, uint32_t requested, uint64_t now)
{
	uint64_t effective = requested, left;

	if (m->state != MAP_STATE_GRANTED || requested == 0)
		return false;
	/* Upstream capped the last request: it will cap this one too. */
	if (m->lifetime < m->requested_lifetime && requested > m->lifetime)
		effective = m->lifetime;
	left = mapping_remaining(m, now);
	/* RFC 7648 §3: remaining >= 3/4 of the requested lifetime. */
	return left * 4 >= effective * 3;
}

/* ---- decisions --------------------------------------------------------- */

static bool
req_is_delete(const struct map_req *req)
{
	return req->lifetime == 0 || (req->flags & MAP_F_DELETE) != 0;
}

/*
 * RFC 6887 §12.3: a PEER is looked up by its 5-tuple. No match: create.
 * A match: refresh it, unless a PEER with another nonce made it (Simple
 * Threat Model: NOT_AUTHORIZED). Lifetime 0 is not a delete (§12.1: PEER
 * cannot shorten or delete a mapping); the caller treats it as a query.
 */
static enum table_verdict
table_check_peer(const struct table *t, const struct map_req *req,
    struct mapping **existing)
{
	struct mapping *m;

	m = table_find_peer(t, req->protocol, &req->internal_addr,
	    req->internal_port, &req->peer_addr, req->peer_port);
	*existing = m;
	if (m == NULL)
		return TABLE_NEW;
	if (memcmp(m->nonce, req->nonce, MAP_NONCE_SIZE) != 0)
		return TABLE_NONCE_MISMATCH;
	return TABLE_REFRESH;
}

enum table_verdict
table_check(const struct table *t, const struct map_req *req,
    struct mapping **existing)
{
	struct mapping *m;
	bool del = req_is_delete(req);

	if ((req->flags & MAP_F_PEER) != 0)
		return table_check_peer(t, req, existing);

	m = table_find_internal(t, req->protocol, &req->internal_addr,
	    req->internal_port);
	*existing = m;
	if (m == NULL)
		return del ? TABLE_DELETE_MISSING : TABLE_NEW;
	/* RFC 6887 §11.3, §15 (S-13): a static mapping has no nonce to
	   match; clients cannot delete it. */
	if ((m->flags & MAPPING_F_STATIC) != 0 &&
	    req->origin != MAP_ORIGIN_CONTROL) {
		if (del)
			return TABLE_STATIC_DENIED;
		if ((req->flags & MAP_F_PREFER_FAILURE) != 0 &&
		    req->ext_port != 0 && req->ext_port != m->outer_port)
			return TABLE_CANNOT_PROVIDE;
		return TABLE_STATIC;
	}
	/* RFC 6887 §11.3 (S-08): another nonce is another owner. */
	if (memcmp(m->nonce, req->nonce, MAP_NONCE_SIZE) != 0)
		return TABLE_NONCE_MISMATCH;
	if (del)
		return TABLE_DELETE;
	/* RFC 6887 §11.3: an existing mapping keeps its external address and
	   port whatever was suggested, unless PREFER_FAILURE insists. */
	if ((req->flags & MAP_F_PREFER_FAILURE) != 0 &&
	    ((req->ext_port != 0 && req->ext_port != m->outer_port) ||
	    (!pcp_addr_is_any(&req->ext_addr) &&
	    !pcp_addr_is_any(&m->outer_addr) &&
	    !IN6_ARE_ADDR_EQUAL(&req->ext_addr, &m->outer_addr))))
		return TABLE_CANNOT_PROVIDE;
	return TABLE_REFRESH;
}

enum map_err
table_verdict_err(enum table_verdict v)
{
	switch (v) {
	case TABLE_NEW:
	case TABLE_REFRESH:
	case TABLE_DELETE:
	case TABLE_STATIC:
		return MAP_OK;
	case TABLE_DELETE_MISSING:
		return MAP_ERR_NOT_FOUND;
	case TABLE_NONCE_MISMATCH:
	case TABLE_STATIC_DENIED:
		return MAP_ERR_NOT_AUTHORIZED;
	case TABLE_CANNOT_PROVIDE:
		return MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
	}
	return MAP_ERR_INTERNAL;
}

const char *
table_verdict_name(enum table_verdict v)
{
	switch (v) {
	case TABLE_NEW:
		return "new";
	case TABLE_REFRESH:
		return "refresh";
	case TABLE_DELETE:
		return "delete";
	case TABLE_DELETE_MISSING:
		return "delete-missing";
	case TABLE_NONCE_MISMATCH:
		return "nonce-mismatch";
	case TABLE_CANNOT_PROVIDE:
		return "cannot-provide";
	case TABLE_STATIC:
		return "static";
	case TABLE_STATIC_DENIED:
		return "static-denied";
	}
	return "unknown";
}

/* ---- port allocation --------------------------------------------------- */

/* Do PEER flows of an internal endpoint other than req's leave from
   gateway port (proto, port)? */
static bool
peer_port_other_endpoint(const struct table *t, const struct map_req *req,
    uint16_t port)
{
	const struct mapping *m = peer_port_user(t, req->protocol, port);

	return m != NULL && (m->internal_port != req->internal_port ||
	    !IN6_ARE_ADDR_EQUAL(&m->internal_addr, &req->internal_addr));
}

/*
 * May req's owner take `port` as its external port? The table's own rules
 * (no user check): free, not reserved, not held for someone else, not the
 * twin of another host's NAT-PMP mapping.
 */
static enum map_err
port_conflict(const struct table *t, const struct map_req *req,
    uint16_t port, uint64_t now)
{
	const struct mapping *twin;
	const struct port_hold *h;
	uint8_t other;

	if (port == 0)
		return MAP_ERR_INVALID_ARGS;
	if (table_port_reserved(req->protocol, port))
		return MAP_ERR_RESERVED_PORT;
	if (table_find_external(t, req->protocol, port) != NULL)
		return MAP_ERR_CONFLICT;
	/* RFC 4787 REQ-1: the gateway port of PEER flows is their internal
	   endpoint's alone (its MAP and its PEERs); another host's flow or
	   inbound mapping there would clash in conntrack (fix, test_table
	   test_peer_port_owner: two hosts' PEERs got one port) */
	if (peer_port_other_endpoint(t, req, port))
		return MAP_ERR_CONFLICT;
	/* RFC 6887 §15: held for its last owner, who may reclaim it. */
	h = hold_find(t, req->protocol, port);
	if (h != NULL && h->until > now && !hold_same_owner(h, req))
		return MAP_ERR_CONFLICT;
	/* RFC 6886 §3.3: a NAT-PMP mapping reserves the same port of the other
	   protocol for its client; no other host may take it meanwhile. */
	if ((other = other_protocol(req->protocol)) != 0 &&
	    (twin = table_find_external(t, other, port)) != NULL &&
	    twin->origin == MAP_ORIGIN_NATPMP &&
	    !IN6_ARE_ADDR_EQUAL(&twin->internal_addr, &req->internal_addr))
		return MAP_ERR_CONFLICT;
	return MAP_OK;
}

static enum map_err
port_usable(const struct table *t, const struct map_req *req, uint16_t port,
    uint64_t now)
{
	enum map_err err;

	if ((err = port_conflict(t, req, port, now)) != MAP_OK)
		return err;
	if (t->port_check != NULL)
		return t->port_check(t->port_check_arg, req, port);
	return MAP_OK;
}

/*
 * The ranges to pick from: the callback's (else everything) cut to the
 * allocator's range, into t->ranges. Returns how many, 0 when none, -1 on
 * memory.
 */
static ssize_t
pick_ranges(struct table *t, const struct map_req *req)
{
	struct port_range all = { 0, UINT16_MAX }, *r;
	size_t n = 1, i, k = 0;
	void *p;

	if (t->ranges_cap == 0 || t->port_ranges != NULL) {
		if (t->port_ranges != NULL)
			n = t->port_ranges(t->port_ranges_arg, req, t->ranges,
			    t->ranges_cap);
		if (n > t->ranges_cap) {
			p = t->ranges;
			if (table_realloc(t, &p, t->ranges_cap *
			    sizeof(*t->ranges), n * sizeof(*t->ranges)) == -1)
				return -1;
			t->ranges = p;
			t->ranges_cap = n;
			if (t->port_ranges != NULL &&
			    (n = t->port_ranges(t->port_ranges_arg, req,
			    t->ranges, t->ranges_cap)) > t->ranges_cap)
				return -1;
		}
	}
	if (t->port_ranges == NULL)
		t->ranges[0] = all;
	for (i = 0; i < n; i++) {
		r = &t->ranges[i];
		if (r->hi < t->port_min || r->lo > t->port_max || r->lo > r->hi)
			continue;
		t->ranges[k].lo = r->lo > t->port_min ? r->lo : t->port_min;
		t->ranges[k].hi = r->hi < t->port_max ? r->hi : t->port_max;
		k++;
	}
	return (ssize_t)k;
}

/* Position `offset` (0 .. total-1) of the concatenated ranges. */
static size_t
pick_locate(const struct port_range *r, size_t n, uint32_t offset,
    uint16_t *port)
{
	size_t i;

	for (i = 0; i + 1 < n &&
	    offset > (uint32_t)r[i].hi - r[i].lo; i++)
		offset -= (uint32_t)r[i].hi - r[i].lo + 1;
	*port = (uint16_t)(r[i].lo + offset);
	return i;
}

/* One candidate: the full check, counted against the budget. */
static enum map_err
pick_try(struct table *t, const struct map_req *req, uint64_t now,
    uint16_t p, uint32_t *budget)
{
	if (port_usable(t, req, p, now) == MAP_OK)
		return MAP_OK;
	return --*budget == 0 ? MAP_ERR_NO_RESOURCES : MAP_ERR_CONFLICT;
}

/* Sweep [from, to] of the bitmap: MAP_OK with *port, MAP_ERR_CONFLICT to
   go on, MAP_ERR_NO_RESOURCES when the budget ran out. */
static enum map_err
pick_sweep(struct table *t, const struct map_req *req, uint64_t now,
    int row, uint32_t from, uint32_t to, uint32_t *budget, uint16_t *port)
{
	enum map_err err;
	int32_t q;

	while (from <= to && (q = bitmap_next_free(t, row, from, to)) >= 0) {
		if ((err = pick_try(t, req, now, (uint16_t)q, budget)) !=
		    MAP_ERR_CONFLICT) {
			*port = (uint16_t)q;
			return err;
		}
		from = (uint32_t)q + 1;
	}
	return MAP_ERR_CONFLICT;
}

/*
 * A pseudo-random free port of the allowed ranges (RFC 6887 §15: not
 * predictable): a few uniform probes, cheap while the ranges are sparse,
 * then one sweep through the bitmap from a random point, so a free port is
 * found whenever the bitmap shows one. Work: O(ranges + 1024 bitmap words)
 * and at most TABLE_ALLOC_CANDIDATES full checks, however full it is.
 */
static enum map_err
port_pick(struct table *t, const struct map_req *req, uint64_t now,
    uint16_t *port)
{
	const struct port_range *r;
	uint32_t total = 0, budget = TABLE_ALLOC_CANDIDATES, i;
	enum map_err err;
	int row = bitmap_row(req->protocol);
	ssize_t n;
	size_t k, start;
	uint16_t p;

	if ((n = pick_ranges(t, req)) <= 0)
		return MAP_ERR_NO_RESOURCES;
	r = t->ranges;
	for (k = 0; k < (size_t)n; k++)
		total += (uint32_t)r[k].hi - r[k].lo + 1;
	for (i = 0; i < TABLE_ALLOC_PROBES; i++) {
		(void)pick_locate(r, (size_t)n,
		    (uint32_t)(table_random(t) % total), &p);
		if (row >= 0 && bitmap_port_busy(t, row, p))
			continue;
		if ((err = pick_try(t, req, now, p, &budget)) !=
		    MAP_ERR_CONFLICT) {
			*port = p;
			return err;
		}
	}
	if (row < 0)
		return MAP_ERR_NO_RESOURCES;
	/* from p to the end of its range, the ranges after it, round to the
	   ones before it, and its own range up to p */
	start = pick_locate(r, (size_t)n, (uint32_t)(table_random(t) % total),
	    &p);
	for (i = 0; i <= (uint32_t)n; i++) {
		k = (start + i) % (size_t)n;
		err = pick_sweep(t, req, now, row,
		    i == 0 ? p : r[k].lo,
		    i == (uint32_t)n ? (uint32_t)p - 1 : r[k].hi, &budget, port);
		if (err != MAP_ERR_CONFLICT)
			return err;
	}
	return MAP_ERR_NO_RESOURCES;
}

enum map_err
table_alloc_port(struct table *t, const struct map_req *req, uint64_t now,
    uint16_t *port)
{
	bool prefer = (req->flags & MAP_F_PREFER_FAILURE) != 0;
	enum map_err err;

	hold_purge(t, now);
	if (req->ext_port != 0) {
		err = port_usable(t, req, req->ext_port, now);
		if (err == MAP_OK) {
			*port = req->ext_port;
			return MAP_OK;
		}
		/* RFC 6887 §11.3: a hint never fails, PREFER_FAILURE does. */
		if (prefer)
			return err;
	}
	if (req->internal_port != 0 && req->internal_port != req->ext_port &&
	    port_usable(t, req, req->internal_port, now) == MAP_OK) {
		*port = req->internal_port;
		return MAP_OK;
	}
	return port_pick(t, req, now, port);
}

/* The port an internal endpoint already leaves from: its MAP mapping's,
   else one of its PEERs' (a walk of the host's list, bounded by the
   quota); 0 when it has none. */
static uint16_t
endpoint_port(const struct table *t, const struct map_req *req)
{
	const struct mapping *m;

	if ((m = table_find_internal(t, req->protocol, &req->internal_addr,
	    req->internal_port)) != NULL)
		return m->ext_port;
	for (m = host_find(t, &req->internal_addr); m != NULL;
	    m = m->host_next)
		if (mapping_is_peer(m) && m->protocol == req->protocol &&
		    m->internal_port == req->internal_port)
			return m->ext_port;
	return 0;
}

enum map_err
table_peer_port(struct table *t, const struct map_req *req, bool exact,
    uint64_t now, uint16_t *port)
{
	uint16_t shared;

	hold_purge(t, now);
	/* RFC 4787 REQ-1: one external port per internal endpoint. */
	if ((shared = endpoint_port(t, req)) != 0) {
		if (exact && req->ext_port != 0 && req->ext_port != shared)
			return MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
		*port = shared;
		return MAP_OK;
	}
	/* RFC 6887 §12.1: a PEER suggestion is met or fails. */
	if (exact && req->ext_port != 0) {
		if (port_usable(t, req, req->ext_port, now) != MAP_OK)
			return MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
		*port = req->ext_port;
		return MAP_OK;
	}
	if (port_usable(t, req, req->internal_port, now) == MAP_OK) {
		*port = req->internal_port;
		return MAP_OK;
	}
	return port_pick(t, req, now, port);
}

/* ---- add, refresh, remove ---------------------------------------------- */

static uint8_t
mapping_flags_from(const struct map_req *req)
{
	uint8_t f = 0;

	if (req->flags & MAP_F_PREFER_FAILURE)
		f |= MAPPING_F_PREFER_FAILURE;
	if (req->flags & MAP_F_THIRD_PARTY)
		f |= MAPPING_F_THIRD_PARTY;
	if (req->flags & MAP_F_ANY_PORT)
		f |= MAPPING_F_ANY_PORT;
	if (req->flags & MAP_F_STATIC)
		f |= MAPPING_F_STATIC;
	if (req->flags & MAP_F_PEER)
		f |= MAPPING_F_PEER;
	return f;
}

/* The description to store for req: NULL when absent or empty. */
static const char *
req_description(const struct map_req *req)
{
	if ((req->flags & MAP_F_HAS_DESCRIPTION) == 0 ||
	    req->description[0] == '\0')
		return NULL;
	return req->description;
}

static void
indexes_fit(struct table *t)
{
	int idx;

	for (idx = 0; idx < IDX_COUNT; idx++)
		chain_fit(t, &t->index[idx]);
}

static void
mapping_fill(struct mapping *m, const struct map_req *req, uint16_t port,
    uint32_t lifetime, uint64_t now)
{
	m->internal_addr = req->internal_addr;
	m->requester = req->requester;
	m->expiry = expiry_after(now, lifetime);
	memcpy(m->nonce, req->nonce, MAP_NONCE_SIZE);
	m->internal_port = req->internal_port;
	m->ext_port = port;
	m->outer_port = port;
	m->requester_port = req->requester_port;
	m->protocol = req->protocol;
	m->origin = (uint8_t)req->origin;
	m->state = MAP_STATE_REQUESTED;
	m->flags = mapping_flags_from(req);
	m->lifetime = lifetime;
	m->requested_lifetime = req->lifetime;
	m->lease_end = lease_end_from(req, now);
	m->proxy_marks = 0;
}

/* Link a filled mapping into every index; nothing here can fail. */
static void
mapping_link(struct table *t, struct mapping *m)
{
	dirty_mark(t, m);
	host_insert_mapping(t, m);
	if (mapping_is_peer(m)) {
		chain_link(t, &t->index[IDX_PEER], m);
		chain_link(t, &t->index[IDX_PEER_PORT], m);
	} else {
		chain_link(t, &t->index[IDX_INTERNAL], m);
		chain_link(t, &t->index[IDX_EXTERNAL], m);
	}
	m->list_index = t->count;
	t->list[t->count] = m;
	m->heap_index = t->count;
	t->heap[t->count] = m;
	t->count++;
	heap_up(t, m->heap_index);
	t->state_count[m->state]++;
	port_mark(t, m->protocol, m->ext_port);
	indexes_fit(t);
}

/* table_add for a PEER: the 5-tuple is the key; the port is shared. */
static struct mapping *
table_add_peer(struct table *t, const struct map_req *req, uint16_t port,
    uint32_t lifetime, uint64_t now, enum map_err *errp)
{
	struct table_peer *tp;
	const char *desc = req_description(req);

	const struct mapping *map;

	if (table_find_peer(t, req->protocol, &req->internal_addr,
	    req->internal_port, &req->peer_addr, req->peer_port) != NULL) {
		*errp = MAP_ERR_CONFLICT;
		return NULL;
	}
	/* the port is the endpoint's own (table_peer_port): no other
	   endpoint's PEER or MAP is there */
	map = table_find_external(t, req->protocol, port);
	if (port == 0 || peer_port_other_endpoint(t, req, port) ||
	    (map != NULL && (map->internal_port != req->internal_port ||
	    !IN6_ARE_ADDR_EQUAL(&map->internal_addr, &req->internal_addr)))) {
		*errp = MAP_ERR_CONFLICT;
		return NULL;
	}
	*errp = MAP_ERR_NO_RESOURCES;
	if (t->count == UINT32_MAX || arrays_reserve(t) == -1)
		return NULL;
	if ((tp = table_calloc(t, 1, sizeof(*tp))) == NULL)
		return NULL;
	mapping_fill(&tp->m, req, port, lifetime, now);
	tp->peer.addr = req->peer_addr;
	tp->peer.port = req->peer_port;
	if (desc != NULL &&
	    (tp->m.description = table_strdup(t, desc)) == NULL) {
		mapping_free(t, &tp->m);
		return NULL;
	}
	mapping_link(t, &tp->m);
	*errp = MAP_OK;
	return &tp->m;
}

struct mapping *
table_add(struct table *t, const struct map_req *req, uint16_t port,
    uint32_t lifetime, uint64_t now, enum map_err *errp)
{
	struct port_hold *hold;
	struct mapping *m;
	const char *desc = req_description(req);

	if ((req->flags & MAP_F_PEER) != 0)
		return table_add_peer(t, req, port, lifetime, now, errp);
	if (table_find_internal(t, req->protocol, &req->internal_addr,
	    req->internal_port) != NULL) {
		*errp = MAP_ERR_CONFLICT;
		return NULL;
	}
	if ((*errp = port_conflict(t, req, port, now)) != MAP_OK)
		return NULL;
	/* Allocate everything first: a failure changes nothing. */
	*errp = MAP_ERR_NO_RESOURCES;
	if (t->count == UINT32_MAX || arrays_reserve(t) == -1)
		return NULL;
	if ((m = table_calloc(t, 1, sizeof(*m))) == NULL)
		return NULL;
	if (desc != NULL && (m->description = table_strdup(t, desc)) == NULL) {
		mapping_free(t, m);
		return NULL;
	}
	mapping_fill(m, req, port, lifetime, now);
	/* The new owner takes the port: its hold (if any) has ended or was
	   this owner's own (port_conflict checked which). */
	if ((hold = hold_find(t, req->protocol, port)) != NULL)
		hold_drop(t, hold);
	mapping_link(t, m);
	*errp = MAP_OK;
	return m;
}

int
table_set_description(struct table *t, struct mapping *m, const char *desc)
{
	char *copy = NULL;

	if (desc != NULL && desc[0] != '\0' &&
	    (copy = table_strdup(t, desc)) == NULL)
		return -1;
	table_release_string(t, m->description);
	m->description = copy;
	dirty_mark(t, m);
	return 0;
}

void
table_set_expiry(struct table *t, struct mapping *m, uint64_t expiry)
{
	m->flags &= (uint8_t)~MAPPING_F_RENEW;
	m->expiry = expiry;
	heap_fix(t, m);
	dirty_mark(t, m);
}

void
table_set_renewal(struct table *t, struct mapping *m, uint64_t renew_at,
    uint64_t end)
{
	m->flags |= MAPPING_F_RENEW;
	m->grant_end = end;
	m->expiry = renew_at < end ? renew_at : end;
	heap_fix(t, m);
	dirty_mark(t, m);
}

struct mapping *
table_renewal_due(const struct table *t, uint64_t now)
{
	struct mapping *m;

	if (t->count == 0)
		return NULL;
	m = t->heap[0];
	if (m->expiry > now || (m->flags & MAPPING_F_RENEW) == 0)
		return NULL;
	return m;
}

int
table_refresh(struct table *t, struct mapping *m, const struct map_req *req,
    uint32_t granted, uint64_t now)
{
	if ((req->flags & MAP_F_HAS_DESCRIPTION) != 0 &&
	    table_set_description(t, m, req_description(req)) == -1)
		return -1;
	m->requester = req->requester;
	m->requester_port = req->requester_port;
	m->flags = (uint8_t)((m->flags & (MAPPING_F_STATIC |
	    MAPPING_F_WAS_GRANTED | MAPPING_F_PEER)) | mapping_flags_from(req));
	m->requested_lifetime = req->lifetime;
	m->lease_end = lease_end_from(req, now);
	m->lifetime = granted;
	table_set_expiry(t, m, expiry_after(now, granted));
	return 0;
}

void
table_remove(struct table *t, struct mapping *m, uint64_t now)
{
	struct mapping *last;
	uint32_t i = m->list_index;
	uint8_t proto = m->protocol;
	uint16_t port = m->ext_port;
	bool peer = mapping_is_peer(m);

	t->generation++;
	if (!map_state_terminal((enum map_state)m->state))
		(void)mapping_set_state(t, m, MAP_STATE_DELETED);
	/* the state journal says it is gone, by its key (table_key) */
	dirty_unmark(t, m);
	removed_log(t, m);
	/* RFC 6887 §15: hold the port for its owner. A mapping that never
	   went live received no traffic, so its port is free at once. A
	   PEER's port was never an inbound port of its own (table.h). */
	if (peer) {
		chain_unlink(t, &t->index[IDX_PEER], m);
		chain_unlink(t, &t->index[IDX_PEER_PORT], m);
	} else {
		if ((m->flags & MAPPING_F_WAS_GRANTED) != 0)
			hold_add(t, m, now);
		chain_unlink(t, &t->index[IDX_INTERNAL], m);
		chain_unlink(t, &t->index[IDX_EXTERNAL], m);
	}
	host_remove_mapping(t, m);
	t->count--;
	heap_delete(t, m->heap_index);
	last = t->list[t->count];
	t->list[i] = last;
	last->list_index = i;
	t->state_count[m->state]--;
	mapping_free(t, m);
	port_mark(t, proto, port);
	indexes_fit(t);
	array_shrink(t, &t->heap, &t->heap_cap);
	array_shrink(t, &t->list, &t->list_cap);
	if (t->tracking)
		array_shrink(t, &t->dirty, &t->dirty_cap);
}

size_t
table_expire(struct table *t, uint64_t now,
    void (*cb)(struct mapping *, void *), void *arg)
{
	struct mapping *m;
	size_t n = 0;

	while (t->count > 0 && (m = t->heap[0])->expiry <= now &&
	    (m->flags & MAPPING_F_RENEW) == 0) {
		(void)mapping_set_state(t, m, MAP_STATE_EXPIRED);
		if (cb != NULL)
			cb(m, arg);
		table_remove(t, m, now);
		n++;
	}
	hold_purge(t, now);
	return n;
}
