/*
 * table.c - the mapping table (see table.h for the model and the rules).
 *
 * Memory at 50,000 mappings, LP64: struct mapping 152 bytes; each hash
 * index (internal, external, host) at most 2 bucket pointers a mapping
 * (power of two, load factor <= 1); the heap and the listing array one slot
 * each, at most 2 after doubling; a struct table_host per distinct internal
 * address. Measured by test_table with short descriptions: 204 bytes a
 * mapping at 64 mappings a host, 254 in the worst case of one host each.
 * table_memory_bytes() counts all of it as requested from malloc (its own
 * per-chunk overhead comes on top: about 8-16 bytes a chunk on glibc).
 */
#include <sys/queue.h>

#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "log.h"
#include "pcp_wire.h"
#include "table.h"

#define IDX_INTERNAL		0	/* struct mapping next[] slots */
#define IDX_EXTERNAL		1
#define IDX_COUNT		2

#define TABLE_BUCKETS_MIN	16	/* power of two */
#define TABLE_ARRAY_MIN		16
/* Grow a bucket array when count > size (load factor 1); shrink when
   count < size / TABLE_SHRINK_RATIO, so growth and shrink never chase. */
#define TABLE_SHRINK_RATIO	8
/* Heap and listing arrays halve when count < capacity / 4. */
#define TABLE_ARRAY_SHRINK	4
/* Random probes before the linear scan of the port range. */
#define TABLE_ALLOC_RANDOM_TRIES 32
#define TABLE_SEED_DEFAULT	0x9e3779b97f4a7c15ULL

/* Per internal address: the quota count and the list of its mappings. */
struct table_host {
	struct in6_addr		 addr;
	struct table_host	*next;		/* hash chain */
	struct mapping		*first;		/* via host_next/host_prev */
	uint32_t		 count;
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

struct table {
	struct mapping		**buckets[IDX_COUNT];
	uint32_t		 nbuckets[IDX_COUNT];
	struct table_host	**host_buckets;
	uint32_t		 nhost_buckets;
	uint32_t		 nhosts;
	struct port_hold	**hold_buckets;
	uint32_t		 nhold_buckets;
	uint32_t		 nholds;
	struct port_hold_fifo	 hold_fifo;
	struct mapping		**heap;		/* min-heap on expiry */
	struct mapping		**list;		/* table_at() order */
	uint32_t		 count;		/* length of heap and list */
	uint32_t		 heap_cap;
	uint32_t		 list_cap;
	uint32_t		 state_count[MAP_STATE_COUNT];
	uint64_t		 seed;		/* hash key */
	uint64_t		 rng;		/* xorshift64* state */
	size_t			 memory;	/* bytes held, see memory_*() */
	table_port_check_fn	 port_check;
	void			*port_check_arg;
	uint64_t		 hold_ms;
	uint16_t		 port_min, port_max;
};

/* ---- memory accounting ------------------------------------------------ */

static void *
table_calloc(struct table *t, size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) != NULL)
		t->memory += n * size;
	return p;
}

static void
table_release(struct table *t, void *p, size_t size)
{
	if (p == NULL)
		return;
	t->memory -= size;
	free(p);
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

/* The 64-bit finalizer of MurmurHash3: every input bit reaches every
   output bit. Keyed with the table seed so LAN hosts cannot aim at one
   chain without knowing it. */
static uint64_t
hash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

static uint64_t
hash_addr(uint64_t seed, const struct in6_addr *a)
{
	uint64_t hi, lo;

	memcpy(&hi, &a->s6_addr[0], sizeof(hi));
	memcpy(&lo, &a->s6_addr[8], sizeof(lo));
	return hash_mix(hash_mix(seed ^ hi) ^ lo);
}

static uint64_t
hash_internal(uint64_t seed, uint8_t proto, const struct in6_addr *a,
    uint16_t port)
{
	return hash_mix(hash_addr(seed, a) ^ ((uint64_t)proto << 16 | port));
}

static uint64_t
hash_external(uint64_t seed, uint8_t proto, uint16_t port)
{
	return hash_mix(seed ^ ((uint64_t)proto << 16 | port));
}

static uint64_t
mapping_hash(uint64_t seed, const struct mapping *m, int idx)
{
	if (idx == IDX_INTERNAL)
		return hash_internal(seed, m->protocol, &m->internal_addr,
		    m->internal_port);
	return hash_external(seed, m->protocol, m->ext_port);
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

/* The bucket count for n entries: a power of two >= n, at least the
   minimum (load factor <= 1). */
static uint32_t
buckets_for(uint32_t n)
{
	uint32_t size = TABLE_BUCKETS_MIN;

	while (size < n && size < (UINT32_C(1) << 31))
		size <<= 1;
	return size;
}

static bool
buckets_need_resize(uint32_t count, uint32_t size)
{
	return count > size ||
	    (size > TABLE_BUCKETS_MIN && count < size / TABLE_SHRINK_RATIO);
}

/* ---- mapping hash indexes ---------------------------------------------- */

static void
index_link(struct table *t, struct mapping *m, int idx)
{
	uint32_t b = (uint32_t)mapping_hash(t->seed, m, idx) &
	    (t->nbuckets[idx] - 1);

	m->next[idx] = t->buckets[idx][b];
	t->buckets[idx][b] = m;
}

static void
index_unlink(struct table *t, struct mapping *m, int idx)
{
	uint32_t b = (uint32_t)mapping_hash(t->seed, m, idx) &
	    (t->nbuckets[idx] - 1);
	struct mapping **pp;

	for (pp = &t->buckets[idx][b]; *pp != NULL; pp = &(*pp)->next[idx]) {
		if (*pp == m) {
			*pp = m->next[idx];
			m->next[idx] = NULL;
			return;
		}
	}
}

/* Rehash into `size` buckets; on allocation failure keep the old ones. */
static void
index_resize(struct table *t, int idx, uint32_t size)
{
	struct mapping **nb, **ob = t->buckets[idx], *m, *next;
	uint32_t i, osize = t->nbuckets[idx], b;

	if (size == osize)
		return;
	if ((nb = table_calloc(t, size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < osize; i++) {
		for (m = ob[i]; m != NULL; m = next) {
			next = m->next[idx];
			b = (uint32_t)mapping_hash(t->seed, m, idx) & (size - 1);
			m->next[idx] = nb[b];
			nb[b] = m;
		}
	}
	t->buckets[idx] = nb;
	t->nbuckets[idx] = size;
	table_release(t, ob, (size_t)osize * sizeof(*ob));
}

/* ---- hosts ------------------------------------------------------------- */

static struct table_host *
host_find(const struct table *t, const struct in6_addr *addr)
{
	uint32_t b = (uint32_t)hash_addr(t->seed, addr) &
	    (t->nhost_buckets - 1);
	struct table_host *h;

	for (h = t->host_buckets[b]; h != NULL; h = h->next)
		if (IN6_ARE_ADDR_EQUAL(&h->addr, addr))
			return h;
	return NULL;
}

static void
host_link(struct table *t, struct table_host *h)
{
	uint32_t b = (uint32_t)hash_addr(t->seed, &h->addr) &
	    (t->nhost_buckets - 1);

	h->next = t->host_buckets[b];
	t->host_buckets[b] = h;
}

static void
host_unlink(struct table *t, struct table_host *h)
{
	uint32_t b = (uint32_t)hash_addr(t->seed, &h->addr) &
	    (t->nhost_buckets - 1);
	struct table_host **pp;

	for (pp = &t->host_buckets[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			t->nhosts--;
			return;
		}
	}
}

static void
host_resize(struct table *t, uint32_t size)
{
	struct table_host **nb, **ob = t->host_buckets, *h, *next;
	uint32_t i, osize = t->nhost_buckets, b;

	if (size == osize)
		return;
	if ((nb = table_calloc(t, size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < osize; i++) {
		for (h = ob[i]; h != NULL; h = next) {
			next = h->next;
			b = (uint32_t)hash_addr(t->seed, &h->addr) & (size - 1);
			h->next = nb[b];
			nb[b] = h;
		}
	}
	t->host_buckets = nb;
	t->nhost_buckets = size;
	table_release(t, ob, (size_t)osize * sizeof(*ob));
}

/* ---- port holds (RFC 6887 §15) ----------------------------------------- */

static struct port_hold *
hold_find(const struct table *t, uint8_t proto, uint16_t port)
{
	uint32_t b = (uint32_t)hash_external(t->seed, proto, port) &
	    (t->nhold_buckets - 1);
	struct port_hold *h;

	for (h = t->hold_buckets[b]; h != NULL; h = h->next)
		if (h->protocol == proto && h->ext_port == port)
			return h;
	return NULL;
}

static void
hold_link(struct table *t, struct port_hold *h)
{
	uint32_t b = (uint32_t)hash_external(t->seed, h->protocol,
	    h->ext_port) & (t->nhold_buckets - 1);

	h->next = t->hold_buckets[b];
	t->hold_buckets[b] = h;
}

static void
hold_resize(struct table *t, uint32_t size)
{
	struct port_hold **nb, **ob = t->hold_buckets, *h, *next;
	uint32_t i, osize = t->nhold_buckets, b;

	if (size == osize)
		return;
	if ((nb = table_calloc(t, size, sizeof(*nb))) == NULL)
		return;
	for (i = 0; i < osize; i++) {
		for (h = ob[i]; h != NULL; h = next) {
			next = h->next;
			b = (uint32_t)hash_external(t->seed, h->protocol,
			    h->ext_port) & (size - 1);
			h->next = nb[b];
			nb[b] = h;
		}
	}
	t->hold_buckets = nb;
	t->nhold_buckets = size;
	table_release(t, ob, (size_t)osize * sizeof(*ob));
}

static void
hold_drop(struct table *t, struct port_hold *h)
{
	uint32_t b = (uint32_t)hash_external(t->seed, h->protocol,
	    h->ext_port) & (t->nhold_buckets - 1);
	struct port_hold **pp;

	for (pp = &t->hold_buckets[b]; *pp != NULL; pp = &(*pp)->next) {
		if (*pp == h) {
			*pp = h->next;
			break;
		}
	}
	TAILQ_REMOVE(&t->hold_fifo, h, fifo);
	t->nholds--;
	table_release(t, h, sizeof(*h));
}

/* Holds end in the order they began (one hold time for all), so the oldest
   is always at the head: O(1) amortized. A hold time changed at run time
   only delays the purge of a few records, whose `until` still decides. */
static void
hold_purge(struct table *t, uint64_t now)
{
	struct port_hold *h;

	while ((h = TAILQ_FIRST(&t->hold_fifo)) != NULL && h->until <= now)
		hold_drop(t, h);
	if (buckets_need_resize(t->nholds, t->nhold_buckets))
		hold_resize(t, buckets_for(t->nholds));
}

static bool
hold_same_owner(const struct port_hold *h, const struct map_req *req)
{
	return IN6_ARE_ADDR_EQUAL(&h->internal_addr, &req->internal_addr) &&
	    h->internal_port == req->internal_port &&
	    memcmp(h->nonce, req->nonce, MAP_NONCE_SIZE) == 0;
}

/* Remember a released port for its owner; best effort (no memory: no
   hold, which only weakens a SHOULD). */
static void
hold_add(struct table *t, const struct mapping *m, uint64_t now)
{
	struct port_hold *h;

	if (t->hold_ms == 0)
		return;
	if ((h = table_calloc(t, 1, sizeof(*h))) == NULL)
		return;
	h->internal_addr = m->internal_addr;
	h->until = now + t->hold_ms;
	memcpy(h->nonce, m->nonce, MAP_NONCE_SIZE);
	h->internal_port = m->internal_port;
	h->ext_port = m->ext_port;
	h->protocol = m->protocol;
	hold_link(t, h);
	TAILQ_INSERT_TAIL(&t->hold_fifo, h, fifo);
	t->nholds++;
	if (buckets_need_resize(t->nholds, t->nhold_buckets))
		hold_resize(t, buckets_for(t->nholds));
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
	struct mapping **n;

	if ((n = realloc(*arr, (size_t)ncap * sizeof(*n))) == NULL)
		return -1;
	t->memory = t->memory - (size_t)*cap * sizeof(*n) +
	    (size_t)ncap * sizeof(*n);
	*arr = n;
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
	    array_reserve(t, &t->list, &t->list_cap) == -1)
		return -1;
	return 0;
}

static void
array_shrink(struct table *t, struct mapping ***arr, uint32_t *cap)
{
	if (*cap > TABLE_ARRAY_MIN && t->count < *cap / TABLE_ARRAY_SHRINK)
		(void)array_resize(t, arr, cap, *cap / 2);
}

/* ---- life cycle -------------------------------------------------------- */

struct table *
table_new(void)
{
	struct table *t;
	int idx;

	if ((t = calloc(1, sizeof(*t))) == NULL)
		return NULL;
	t->memory = sizeof(*t);
	TAILQ_INIT(&t->hold_fifo);
	t->seed = TABLE_SEED_DEFAULT;
	t->rng = TABLE_SEED_DEFAULT;
	t->hold_ms = (uint64_t)TABLE_HOLD_SECONDS * TABLE_MS_PER_SECOND;
	t->port_min = TABLE_PORT_MIN_DEFAULT;
	t->port_max = TABLE_PORT_MAX_DEFAULT;
	for (idx = 0; idx < IDX_COUNT; idx++) {
		t->nbuckets[idx] = TABLE_BUCKETS_MIN;
		t->buckets[idx] = table_calloc(t, TABLE_BUCKETS_MIN,
		    sizeof(struct mapping *));
	}
	t->nhost_buckets = TABLE_BUCKETS_MIN;
	t->host_buckets = table_calloc(t, TABLE_BUCKETS_MIN,
	    sizeof(struct table_host *));
	t->nhold_buckets = TABLE_BUCKETS_MIN;
	t->hold_buckets = table_calloc(t, TABLE_BUCKETS_MIN,
	    sizeof(struct port_hold *));
	if (t->buckets[IDX_INTERNAL] == NULL ||
	    t->buckets[IDX_EXTERNAL] == NULL || t->host_buckets == NULL ||
	    t->hold_buckets == NULL) {
		table_free(t);
		return NULL;
	}
	return t;
}

static void
mapping_free(struct table *t, struct mapping *m)
{
	table_release_string(t, m->description);
	table_release(t, m, sizeof(*m));
}

void
table_free(struct table *t)
{
	struct table_host *h, *hn;
	struct port_hold *ph;
	uint32_t i;

	if (t == NULL)
		return;
	for (i = 0; i < t->count; i++)
		mapping_free(t, t->list[i]);
	for (i = 0; t->host_buckets != NULL && i < t->nhost_buckets; i++) {
		for (h = t->host_buckets[i]; h != NULL; h = hn) {
			hn = h->next;
			free(h);
		}
	}
	while ((ph = TAILQ_FIRST(&t->hold_fifo)) != NULL) {
		TAILQ_REMOVE(&t->hold_fifo, ph, fifo);
		free(ph);
	}
	free(t->buckets[IDX_INTERNAL]);
	free(t->buckets[IDX_EXTERNAL]);
	free(t->host_buckets);
	free(t->hold_buckets);
	free(t->heap);
	free(t->list);
	free(t);
}

/* Relink every index under the current seed (the bucket sizes stay). */
static void
table_rehash(struct table *t)
{
	struct table_host *hosts = NULL, *h, *next;
	struct port_hold *ph;
	uint32_t i;
	int idx;

	for (idx = 0; idx < IDX_COUNT; idx++)
		memset(t->buckets[idx], 0,
		    t->nbuckets[idx] * sizeof(*t->buckets[idx]));
	for (i = 0; i < t->count; i++)
		for (idx = 0; idx < IDX_COUNT; idx++)
			index_link(t, t->list[i], idx);
	for (i = 0; i < t->nhost_buckets; i++) {
		for (h = t->host_buckets[i]; h != NULL; h = next) {
			next = h->next;
			h->next = hosts;
			hosts = h;
		}
		t->host_buckets[i] = NULL;
	}
	for (h = hosts; h != NULL; h = next) {
		next = h->next;
		host_link(t, h);
	}
	memset(t->hold_buckets, 0,
	    t->nhold_buckets * sizeof(*t->hold_buckets));
	TAILQ_FOREACH(ph, &t->hold_fifo, fifo)
		hold_link(t, ph);
}

void
table_set_seed(struct table *t, uint64_t seed)
{
	/* xorshift must not start at zero */
	t->rng = seed != 0 ? seed : TABLE_SEED_DEFAULT;
	t->seed = hash_mix(seed ^ TABLE_SEED_DEFAULT);
	table_rehash(t);
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
table_set_hold(struct table *t, uint32_t seconds)
{
	t->hold_ms = (uint64_t)seconds * TABLE_MS_PER_SECOND;
}

void
table_set_port_check(struct table *t, table_port_check_fn fn, void *arg)
{
	t->port_check = fn;
	t->port_check_arg = arg;
}

/* ---- lookups ----------------------------------------------------------- */

struct mapping *
table_find_internal(const struct table *t, uint8_t proto,
    const struct in6_addr *addr, uint16_t port)
{
	uint32_t b = (uint32_t)hash_internal(t->seed, proto, addr, port) &
	    (t->nbuckets[IDX_INTERNAL] - 1);
	struct mapping *m;

	for (m = t->buckets[IDX_INTERNAL][b]; m != NULL;
	    m = m->next[IDX_INTERNAL])
		if (m->protocol == proto && m->internal_port == port &&
		    IN6_ARE_ADDR_EQUAL(&m->internal_addr, addr))
			return m;
	return NULL;
}

struct mapping *
table_find_external(const struct table *t, uint8_t proto, uint16_t port)
{
	uint32_t b = (uint32_t)hash_external(t->seed, proto, port) &
	    (t->nbuckets[IDX_EXTERNAL] - 1);
	struct mapping *m;

	for (m = t->buckets[IDX_EXTERNAL][b]; m != NULL;
	    m = m->next[IDX_EXTERNAL])
		if (m->protocol == proto && m->ext_port == port)
			return m;
	return NULL;
}

size_t
table_count(const struct table *t)
{
	return t->count;
}

size_t
table_count_host(const struct table *t, const struct in6_addr *addr)
{
	const struct table_host *h = host_find(t, addr);

	return h == NULL ? 0 : h->count;
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
	const struct table_host *h = host_find(t, addr);

	return h == NULL ? NULL : h->first;
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
	return t->nholds;
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

uint32_t
mapping_remaining(const struct mapping *m, uint64_t now)
{
	uint64_t left;

	if (m->expiry == TABLE_EXPIRY_NEVER)
		return TABLE_LIFETIME_INFINITE;
	if (m->expiry <= now)
		return 0;
	left = (m->expiry - now + TABLE_MS_PER_SECOND - 1) /
	    TABLE_MS_PER_SECOND;
	return left >= TABLE_LIFETIME_INFINITE ? TABLE_LIFETIME_INFINITE - 1 :
	    (uint32_t)left;
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

/* All-zeros, or the IPv4-mapped all-zeros of RFC 6887 §11.1: no
   preference for an external address. */
static bool
addr_is_any(const struct in6_addr *a)
{
	static const struct in6_addr v4any = {
	    .s6_addr = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff } };

	return IN6_IS_ADDR_UNSPECIFIED(a) || IN6_ARE_ADDR_EQUAL(a, &v4any);
}

enum table_verdict
table_check(const struct table *t, const struct map_req *req,
    struct mapping **existing)
{
	struct mapping *m;
	bool del = req_is_delete(req);

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
	    (!addr_is_any(&req->ext_addr) &&
	    !addr_is_any(&m->outer_addr) &&
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

static uint8_t
other_protocol(uint8_t proto)
{
	if (proto == MAP_PROTO_TCP)
		return MAP_PROTO_UDP;
	if (proto == MAP_PROTO_UDP)
		return MAP_PROTO_TCP;
	return 0;
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
	/* RFC 6887 §11.3: MUST NOT map external UDP 5350/5351. */
	if (req->protocol == MAP_PROTO_UDP &&
	    (port == PCP_CLIENT_PORT || port == PCP_SERVER_PORT))
		return MAP_ERR_RESERVED_PORT;
	if (table_find_external(t, req->protocol, port) != NULL)
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

/* A pseudo-random free port of the range: a few random probes (cheap while
   the range is sparse), then one linear pass from a random start, so a
   free port is always found if there is one. */
static enum map_err
port_pick(struct table *t, const struct map_req *req, uint64_t now,
    uint16_t *port)
{
	uint32_t span = (uint32_t)t->port_max - t->port_min + 1, i, start;
	uint16_t p;

	for (i = 0; i < TABLE_ALLOC_RANDOM_TRIES; i++) {
		p = (uint16_t)(t->port_min + table_random(t) % span);
		if (port_usable(t, req, p, now) == MAP_OK) {
			*port = p;
			return MAP_OK;
		}
	}
	start = (uint32_t)(table_random(t) % span);
	for (i = 0; i < span; i++) {
		p = (uint16_t)(t->port_min + (start + i) % span);
		if (port_usable(t, req, p, now) == MAP_OK) {
			*port = p;
			return MAP_OK;
		}
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
host_insert_mapping(struct table_host *h, struct mapping *m)
{
	m->host_prev = NULL;
	m->host_next = h->first;
	if (h->first != NULL)
		h->first->host_prev = m;
	h->first = m;
	h->count++;
}

static void
host_remove_mapping(struct table_host *h, struct mapping *m)
{
	if (m->host_prev != NULL)
		m->host_prev->host_next = m->host_next;
	else
		h->first = m->host_next;
	if (m->host_next != NULL)
		m->host_next->host_prev = m->host_prev;
	m->host_next = m->host_prev = NULL;
	h->count--;
}

static void
indexes_resize(struct table *t)
{
	int idx;

	for (idx = 0; idx < IDX_COUNT; idx++)
		if (buckets_need_resize(t->count, t->nbuckets[idx]))
			index_resize(t, idx, buckets_for(t->count));
	if (buckets_need_resize(t->nhosts, t->nhost_buckets))
		host_resize(t, buckets_for(t->nhosts));
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
}

/* Link a filled mapping into every index; nothing here can fail. */
static void
mapping_link(struct table *t, struct table_host *h, struct mapping *m)
{
	host_insert_mapping(h, m);
	index_link(t, m, IDX_INTERNAL);
	index_link(t, m, IDX_EXTERNAL);
	m->list_index = t->count;
	t->list[t->count] = m;
	m->heap_index = t->count;
	t->heap[t->count] = m;
	t->count++;
	heap_up(t, m->heap_index);
	t->state_count[m->state]++;
	indexes_resize(t);
}

/* The host entry for addr, created (and linked: harmless while empty,
   freed with its last mapping) when missing. NULL on memory. */
static struct table_host *
host_get(struct table *t, const struct in6_addr *addr)
{
	struct table_host *h;

	if ((h = host_find(t, addr)) != NULL)
		return h;
	if ((h = table_calloc(t, 1, sizeof(*h))) == NULL)
		return NULL;
	h->addr = *addr;
	host_link(t, h);
	t->nhosts++;
	return h;
}

struct mapping *
table_add(struct table *t, const struct map_req *req, uint16_t port,
    uint32_t lifetime, uint64_t now, enum map_err *errp)
{
	struct table_host *h;
	struct port_hold *hold;
	struct mapping *m;
	const char *desc = req_description(req);

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
	if ((desc != NULL && (m->description = table_strdup(t, desc)) ==
	    NULL) || (h = host_get(t, &req->internal_addr)) == NULL) {
		mapping_free(t, m);
		return NULL;
	}
	mapping_fill(m, req, port, lifetime, now);
	/* The new owner takes the port: its hold (if any) has ended or was
	   this owner's own (port_conflict checked which). */
	if ((hold = hold_find(t, req->protocol, port)) != NULL)
		hold_drop(t, hold);
	mapping_link(t, h, m);
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
	return 0;
}

void
table_set_expiry(struct table *t, struct mapping *m, uint64_t expiry)
{
	m->expiry = expiry;
	heap_fix(t, m);
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
	    MAPPING_F_WAS_GRANTED)) | mapping_flags_from(req));
	m->requested_lifetime = req->lifetime;
	m->lifetime = granted;
	table_set_expiry(t, m, expiry_after(now, granted));
	return 0;
}

void
table_remove(struct table *t, struct mapping *m, uint64_t now)
{
	struct table_host *h;
	struct mapping *last;
	uint32_t i = m->list_index;

	if (!map_state_terminal((enum map_state)m->state))
		(void)mapping_set_state(t, m, MAP_STATE_DELETED);
	/* RFC 6887 §15: hold the port for its owner. A mapping that never
	   went live received no traffic, so its port is free at once. */
	if ((m->flags & MAPPING_F_WAS_GRANTED) != 0)
		hold_add(t, m, now);
	index_unlink(t, m, IDX_INTERNAL);
	index_unlink(t, m, IDX_EXTERNAL);
	if ((h = host_find(t, &m->internal_addr)) != NULL) {
		host_remove_mapping(h, m);
		if (h->count == 0) {
			host_unlink(t, h);
			table_release(t, h, sizeof(*h));
		}
	}
	t->count--;
	heap_delete(t, m->heap_index);
	last = t->list[t->count];
	t->list[i] = last;
	last->list_index = i;
	t->state_count[m->state]--;
	mapping_free(t, m);
	indexes_resize(t);
	array_shrink(t, &t->heap, &t->heap_cap);
	array_shrink(t, &t->list, &t->list_cap);
}

size_t
table_expire(struct table *t, uint64_t now,
    void (*cb)(struct mapping *, void *), void *arg)
{
	struct mapping *m;
	size_t n = 0;

	while (t->count > 0 && (m = t->heap[0])->expiry <= now) {
		(void)mapping_set_state(t, m, MAP_STATE_EXPIRED);
		if (cb != NULL)
			cb(m, arg);
		table_remove(t, m, now);
		n++;
	}
	hold_purge(t, now);
	return n;
}
