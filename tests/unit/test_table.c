/*
 * test_table.c - the mapping table on a fake clock: the RFC 6887 §11.3 /
 * §15 decisions, port allocation (suggestion, fallback, reserved ports, the
 * reuse hold, the NAT-PMP twin port of RFC 6886 §3.3), the state machine,
 * expiry order against a naive model, the RFC 7648 3/4 cache rule, PEER
 * mappings (RFC 6887 §12: 5-tuple keys beside MAP, the shared port of
 * RFC 4787 REQ-1, their memory), and growth to 50,000 mappings and back
 * within the memory budget.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "table.h"

#define MS		TABLE_MS_PER_SECOND
#define BIG_COUNT	50000
#define BYTES_BUDGET	300	/* per mapping, indexes included */
#define PER_HOST	64	/* the default max_mappings_per_host */

/* ---- helpers ------------------------------------------------------------ */

/* "192.168.1.10" -> ::ffff:192.168.1.10; IPv6 text as is. */
static struct in6_addr
addr(const char *text)
{
	struct in6_addr a;
	struct in_addr v4;

	memset(&a, 0, sizeof(a));
	if (inet_pton(AF_INET, text, &v4) == 1) {
		a.s6_addr[10] = 0xff;
		a.s6_addr[11] = 0xff;
		memcpy(&a.s6_addr[12], &v4, sizeof(v4));
	} else
		assert_int_equal(inet_pton(AF_INET6, text, &a), 1);
	return a;
}

/* Host number n in 10.0.0.0/8. */
static struct in6_addr
host_addr(uint32_t n)
{
	struct in6_addr a;
	uint32_t v4 = htonl(0x0a000000u | (n & 0xffffff));

	memset(&a, 0, sizeof(a));
	a.s6_addr[10] = 0xff;
	a.s6_addr[11] = 0xff;
	memcpy(&a.s6_addr[12], &v4, sizeof(v4));
	return a;
}

static struct map_req
req_make(uint8_t proto, struct in6_addr internal, uint16_t int_port,
    uint16_t ext_port, uint32_t lifetime, uint8_t nonce)
{
	struct map_req r;

	memset(&r, 0, sizeof(r));
	r.origin = MAP_ORIGIN_PCP;
	r.requester = internal;
	r.requester_port = 40000;
	r.internal_addr = internal;
	r.protocol = proto;
	r.internal_port = int_port;
	r.ext_port = ext_port;
	r.lifetime = lifetime;
	memset(r.nonce, nonce, sizeof(r.nonce));
	return r;
}

static struct table *
table_make(void)
{
	struct table *t = table_new();

	assert_non_null(t);
	table_set_seed(t, 42);
	return t;
}

/* table_add that must succeed. */
static struct mapping *
add_ok(struct table *t, const struct map_req *r, uint16_t port,
    uint32_t lifetime, uint64_t now)
{
	enum map_err err = MAP_ERR_INTERNAL;
	struct mapping *m = table_add(t, r, port, lifetime, now, &err);

	assert_non_null(m);
	assert_int_equal(err, MAP_OK);
	return m;
}

/* Allocate and add, as the engine would for TABLE_NEW. */
static struct mapping *
alloc_add(struct table *t, const struct map_req *r, uint64_t now)
{
	uint16_t port = 0;

	assert_int_equal(table_alloc_port(t, r, now, &port), MAP_OK);
	return add_ok(t, r, port, r->lifetime, now);
}

/* ---- basics ----------------------------------------------------------- */

static void
test_sizeof_mapping(void **state)
{
	(void)state;
	printf("sizeof(struct mapping) = %zu\n", sizeof(struct mapping));
	/* fields ordered by size: no more than the 168 bytes of data (LP64) */
	assert_true(sizeof(struct mapping) <= 168);
}

static void
test_add_find(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    8080, 0, 600, 1);
	struct mapping *m;
	struct in6_addr other = addr("192.168.1.11");

	(void)state;
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_next_expiry(t), TABLE_EXPIRY_NEVER);
	m = add_ok(t, &r, 18080, 600, 1000);
	assert_int_equal(table_count(t), 1);
	assert_ptr_equal(table_find_internal(t, MAP_PROTO_TCP,
	    &r.internal_addr, 8080), m);
	assert_null(table_find_internal(t, MAP_PROTO_UDP, &r.internal_addr,
	    8080));
	assert_null(table_find_internal(t, MAP_PROTO_TCP, &other, 8080));
	assert_ptr_equal(table_find_external(t, MAP_PROTO_TCP, 18080), m);
	assert_null(table_find_external(t, MAP_PROTO_UDP, 18080));
	assert_ptr_equal(table_at(t, 0), m);
	assert_null(table_at(t, 1));
	assert_int_equal(m->state, MAP_STATE_REQUESTED);
	assert_int_equal(m->ext_port, 18080);
	assert_int_equal(m->outer_port, 18080);
	assert_int_equal(m->lifetime, 600);
	assert_int_equal(m->requested_lifetime, 600);
	assert_int_equal(m->requester_port, 40000);
	assert_int_equal(m->origin, MAP_ORIGIN_PCP);
	assert_null(m->description);
	assert_int_equal(m->expiry, 1000 + 600 * MS);
	assert_int_equal(table_next_expiry(t), 1000 + 600 * MS);
	assert_int_equal(mapping_remaining(m, 1000), 600);
	assert_int_equal(mapping_remaining(m, 1001), 600);	/* rounds up */
	assert_int_equal(mapping_remaining(m, 1000 + 600 * MS), 0);
	assert_int_equal(table_count_host(t, &r.internal_addr), 1);
	assert_int_equal(table_count_host(t, &other), 0);
	assert_int_equal(table_count_state(t, MAP_STATE_REQUESTED), 1);
	table_remove(t, m, 2000);
	assert_int_equal(table_count(t), 0);
	assert_null(table_find_external(t, MAP_PROTO_TCP, 18080));
	assert_int_equal(table_count_host(t, &r.internal_addr), 0);
	assert_int_equal(table_count_state(t, MAP_STATE_REQUESTED), 0);
	table_free(t);
}

/* An error leaves the table exactly as it was. */
static void
test_add_errors_leave_table_unchanged(void **state)
{
	struct table *t = table_make();
	struct map_req a = req_make(MAP_PROTO_UDP, addr("192.168.1.10"),
	    5000, 0, 600, 1);
	struct map_req b = req_make(MAP_PROTO_UDP, addr("192.168.1.11"),
	    5000, 0, 600, 2);
	enum map_err err;
	size_t mem;

	(void)state;
	add_ok(t, &a, 5000, 600, 0);
	mem = table_memory_bytes(t);
	/* same internal key again */
	assert_null(table_add(t, &a, 6000, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	/* external port taken */
	assert_null(table_add(t, &b, 5000, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	/* RFC 6887 §11.3: never UDP 5350/5351, even when asked directly */
	assert_null(table_add(t, &b, 5351, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_RESERVED_PORT);
	assert_null(table_add(t, &b, 5350, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_RESERVED_PORT);
	assert_null(table_add(t, &b, 0, 600, 0, &err));
	assert_int_not_equal(err, MAP_OK);
	assert_int_equal(table_count(t), 1);
	assert_int_equal(table_count_host(t, &b.internal_addr), 0);
	assert_int_equal(table_memory_bytes(t), mem);
	/* TCP 5351 is an ordinary port */
	b.protocol = MAP_PROTO_TCP;
	add_ok(t, &b, 5351, 600, 0);
	table_free(t);
}

/* ---- RFC 6887 §11.3 / §15 decisions ------------------------------------ */

static void
test_check_new_and_refresh(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    8080, 8080, 600, 7);
	struct mapping *m, *ex = NULL;

	(void)state;
	assert_int_equal(table_check(t, &r, &ex), TABLE_NEW);
	assert_null(ex);
	m = add_ok(t, &r, 9090, 600, 0);
	/* same owner suggests another port: refresh, keep 9090 (S-08) */
	r.ext_port = 1234;
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	assert_ptr_equal(ex, m);
	assert_int_equal(table_verdict_err(TABLE_REFRESH), MAP_OK);
	r.lifetime = 300;
	r.requester_port = 41000;
	assert_int_equal(table_refresh(t, m, &r, 300, 50 * MS), 0);
	assert_int_equal(m->ext_port, 9090);
	assert_int_equal(m->expiry, 350 * MS);
	assert_int_equal(m->lifetime, 300);
	assert_int_equal(m->requested_lifetime, 300);
	assert_int_equal(m->requester_port, 41000);
	assert_int_equal(table_next_expiry(t), 350 * MS);
	/* another protocol is another mapping */
	r.protocol = MAP_PROTO_UDP;
	assert_int_equal(table_check(t, &r, &ex), TABLE_NEW);
	table_free(t);
}

static void
test_check_nonce_mismatch(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    8080, 0, 600, 7);
	struct mapping *m, *ex = NULL;

	(void)state;
	m = add_ok(t, &r, 8080, 600, 0);
	r.nonce[11] ^= 1;
	assert_int_equal(table_check(t, &r, &ex), TABLE_NONCE_MISMATCH);
	assert_ptr_equal(ex, m);
	assert_int_equal(table_verdict_err(TABLE_NONCE_MISMATCH),
	    MAP_ERR_NOT_AUTHORIZED);
	/* S-08: the error carries the remaining lifetime */
	assert_int_equal(mapping_remaining(ex, 100 * MS), 500);
	/* a delete with a wrong nonce is refused too */
	r.lifetime = 0;
	assert_int_equal(table_check(t, &r, &ex), TABLE_NONCE_MISMATCH);
	assert_int_equal(table_count(t), 1);
	table_free(t);
}

static void
test_check_prefer_failure(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    8080, 0, 600, 7);
	struct mapping *m, *ex = NULL;

	(void)state;
	m = add_ok(t, &r, 8080, 600, 0);
	m->outer_addr = addr("203.0.113.5");
	m->outer_port = 30000;		/* what upstream granted */
	r.flags = MAP_F_PREFER_FAILURE;
	r.ext_port = 30001;
	assert_int_equal(table_check(t, &r, &ex), TABLE_CANNOT_PROVIDE);
	assert_int_equal(table_verdict_err(TABLE_CANNOT_PROVIDE),
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	/* the client suggests what it saw: the outermost port */
	r.ext_port = 30000;
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	r.ext_port = 0;
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	/* a specific other external address fails too; "any" does not */
	r.ext_port = 30000;
	r.ext_addr = addr("203.0.113.6");
	assert_int_equal(table_check(t, &r, &ex), TABLE_CANNOT_PROVIDE);
	r.ext_addr = addr("0.0.0.0");
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	r.ext_addr = addr("203.0.113.5");
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	/* without PREFER_FAILURE a differing suggestion is only a hint */
	r.flags = 0;
	r.ext_port = 1;
	r.ext_addr = addr("203.0.113.6");
	assert_int_equal(table_check(t, &r, &ex), TABLE_REFRESH);
	table_free(t);
}

static void
test_check_delete(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_UDP, addr("192.168.1.10"),
	    4000, 0, 0, 3);
	struct mapping *m, *ex = NULL;

	(void)state;
	/* S-13: deleting nothing is success (NOT_FOUND row: PCP SUCCESS,
	   NAT-PMP 0, UPnP 714) */
	assert_int_equal(table_check(t, &r, &ex), TABLE_DELETE_MISSING);
	assert_null(ex);
	assert_int_equal(table_verdict_err(TABLE_DELETE_MISSING),
	    MAP_ERR_NOT_FOUND);
	r.lifetime = 600;
	m = add_ok(t, &r, 4000, 600, 0);
	r.lifetime = 0;
	assert_int_equal(table_check(t, &r, &ex), TABLE_DELETE);
	assert_ptr_equal(ex, m);
	/* MAP_F_DELETE means delete whatever the lifetime field says */
	r.lifetime = 600;
	r.flags = MAP_F_DELETE;
	assert_int_equal(table_check(t, &r, &ex), TABLE_DELETE);
	table_remove(t, ex, 0);
	assert_int_equal(table_check(t, &r, &ex), TABLE_DELETE_MISSING);
	table_free(t);
}

static void
test_check_static(void **state)
{
	struct table *t = table_make();
	struct map_req s = req_make(MAP_PROTO_TCP, addr("192.168.1.20"),
	    22, 2222, TABLE_LIFETIME_INFINITE, 0);
	struct map_req r;
	struct mapping *m, *ex = NULL;

	(void)state;
	s.origin = MAP_ORIGIN_CONTROL;
	s.flags = MAP_F_STATIC;
	m = add_ok(t, &s, 2222, TABLE_LIFETIME_INFINITE, 0);
	assert_true(m->flags & MAPPING_F_STATIC);
	assert_int_equal(m->expiry, TABLE_EXPIRY_NEVER);
	assert_int_equal(mapping_remaining(m, 1000 * MS),
	    TABLE_LIFETIME_INFINITE);
	/* RFC 6887 §11.3: any nonce gets the static mapping as is */
	r = req_make(MAP_PROTO_TCP, addr("192.168.1.20"), 22, 0, 600, 9);
	assert_int_equal(table_check(t, &r, &ex), TABLE_STATIC);
	assert_ptr_equal(ex, m);
	assert_int_equal(table_verdict_err(TABLE_STATIC), MAP_OK);
	r.flags = MAP_F_PREFER_FAILURE;
	r.ext_port = 2223;
	assert_int_equal(table_check(t, &r, &ex), TABLE_CANNOT_PROVIDE);
	/* S-13 / RFC 6886 §3.4: a client cannot delete it */
	r.flags = 0;
	r.lifetime = 0;
	assert_int_equal(table_check(t, &r, &ex), TABLE_STATIC_DENIED);
	assert_int_equal(table_verdict_err(TABLE_STATIC_DENIED),
	    MAP_ERR_NOT_AUTHORIZED);
	/* the control socket can */
	s.lifetime = 0;
	assert_int_equal(table_check(t, &s, &ex), TABLE_DELETE);
	/* never expires */
	assert_int_equal(table_expire(t, UINT64_MAX - 1, NULL, NULL), 0);
	assert_int_equal(table_count(t), 1);
	table_free(t);
}

static void
test_verdict_names(void **state)
{
	int v;

	(void)state;
	for (v = TABLE_NEW; v <= TABLE_STATIC_DENIED; v++) {
		assert_string_not_equal(table_verdict_name(
		    (enum table_verdict)v), "unknown");
		assert_int_not_equal(table_verdict_err((enum table_verdict)v),
		    MAP_ERR_INTERNAL);
	}
}

/* ---- port allocation ---------------------------------------------------- */

static void
test_alloc_suggested_then_internal_then_range(void **state)
{
	struct table *t = table_make();
	struct map_req a = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    3000, 4000, 600, 1);
	struct map_req b = req_make(MAP_PROTO_TCP, addr("192.168.1.11"),
	    3000, 4000, 600, 2);
	struct map_req c = req_make(MAP_PROTO_TCP, addr("192.168.1.12"),
	    3000, 4000, 600, 3);
	uint16_t port = 0;

	(void)state;
	assert_int_equal(table_alloc_port(t, &a, 0, &port), MAP_OK);
	assert_int_equal(port, 4000);			/* the suggestion */
	add_ok(t, &a, port, 600, 0);
	assert_int_equal(table_alloc_port(t, &b, 0, &port), MAP_OK);
	assert_int_equal(port, 3000);			/* the internal port */
	add_ok(t, &b, port, 600, 0);
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_OK);
	assert_true(port >= TABLE_PORT_MIN_DEFAULT);	/* from the range */
	assert_true(port != 3000 && port != 4000);
	assert_null(table_find_external(t, MAP_PROTO_TCP, port));
	/* no suggestion: the internal port first */
	c.ext_port = 0;
	c.internal_port = 3001;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_OK);
	assert_int_equal(port, 3001);
	/* PREFER_FAILURE: the suggestion or nothing */
	c.ext_port = 4000;
	c.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_ERR_CONFLICT);
	c.ext_port = 4001;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_OK);
	assert_int_equal(port, 4001);
	/* the other protocol's port is independent (no NAT-PMP twin here) */
	c.protocol = MAP_PROTO_UDP;
	c.ext_port = 4000;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_OK);
	assert_int_equal(port, 4000);
	table_free(t);
}

static void
test_alloc_reserved_ports(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_UDP, addr("192.168.1.10"),
	    5351, 5351, 600, 1);
	uint16_t port = 0;

	(void)state;
	/* RFC 6887 §11.3: a hint of 5351 is moved, the internal port too */
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_not_equal(port, 5351);
	assert_int_not_equal(port, 5350);
	r.ext_port = 5350;
	r.internal_port = 5350;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_not_equal(port, 5350);
	assert_int_not_equal(port, 5351);
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_RESERVED_PORT);
	/* TCP 5350 is fine */
	r.protocol = MAP_PROTO_TCP;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 5350);
	/* the range never yields them either */
	r.protocol = MAP_PROTO_UDP;
	r.flags = 0;
	r.ext_port = 0;
	r.internal_port = 5351;
	assert_int_equal(table_set_port_range(t, 5350, 5352), 0);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 5352);
	add_ok(t, &r, port, 600, 0);
	r.internal_port = 5350;
	r.internal_addr = r.requester = addr("192.168.1.11");
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	assert_int_equal(table_set_port_range(t, 0, 10), -1);
	assert_int_equal(table_set_port_range(t, 10, 9), -1);
	table_free(t);
}

/* The gateway's own ports (and the ACL) come in through the callback. */
static enum map_err
gateway_ports(void *arg, const struct map_req *req, uint16_t port)
{
	int *calls = arg;

	(*calls)++;
	(void)req;
	if (port == 80 || port == 443)
		return MAP_ERR_RESERVED_PORT;
	if (port >= 1024 && port < 2000)
		return MAP_ERR_NOT_AUTHORIZED;
	return MAP_OK;
}

static void
test_alloc_port_check_callback(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    443, 80, 600, 1);
	uint16_t port = 0;
	int calls = 0;

	(void)state;
	table_set_port_check(t, gateway_ports, &calls);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_true(port >= 2000);
	assert_true(calls >= 3);
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_RESERVED_PORT);
	r.ext_port = 1500;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NOT_AUTHORIZED);
	r.ext_port = 2500;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 2500);
	/* only refused ports in the range: nothing */
	assert_int_equal(table_set_port_range(t, 1024, 1999), 0);
	r.flags = 0;
	r.ext_port = 80;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	table_free(t);
}

/* A small range fills completely, every port once, then NO_RESOURCES. */
static void
test_alloc_fills_range(void **state)
{
	struct table *t = table_make();
	struct map_req r;
	bool seen[10] = { false };
	uint16_t port;
	uint32_t i;

	(void)state;
	assert_int_equal(table_set_port_range(t, 40000, 40009), 0);
	for (i = 0; i < 10; i++) {
		r = req_make(MAP_PROTO_UDP, host_addr(i + 1), 40000, 0, 600,
		    (uint8_t)i);
		assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
		assert_true(port >= 40000 && port <= 40009);
		assert_false(seen[port - 40000]);
		seen[port - 40000] = true;
		add_ok(t, &r, port, 600, 0);
	}
	r = req_make(MAP_PROTO_UDP, host_addr(100), 40000, 40005, 600, 100);
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	table_free(t);
}

static void
test_alloc_is_pseudo_random(void **state)
{
	struct table *t = table_make();
	struct map_req r;
	uint16_t port, prev = 0;
	uint32_t i, sequential = 0;

	(void)state;
	for (i = 0; i < 50; i++) {
		/* internal port 0 is never tried, suggestion none */
		r = req_make(MAP_PROTO_TCP, host_addr(i + 1), 0, 0, 600,
		    (uint8_t)i);
		assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
		if (port == prev + 1)
			sequential++;
		prev = port;
		r.internal_port = (uint16_t)(i + 1);
		add_ok(t, &r, port, 600, 0);
	}
	assert_true(sequential < 5);
	table_free(t);
}

/* Counts the port checks; refuses the ports below allow_from. */
struct check_counter {
	int		 calls;
	uint32_t	 allow_from;	/* ports below are refused */
};

static enum map_err
counting_check(void *arg, const struct map_req *req, uint16_t port)
{
	struct check_counter *c = arg;

	(void)req;
	c->calls++;
	return port >= c->allow_from ? MAP_OK : MAP_ERR_NOT_AUTHORIZED;
}

/*
 * The work of one allocation is bounded whatever the range holds: a port
 * check that refuses everything (the ACL of the review: 64,512 checks a
 * request before) and a range that is full are both answered
 * NO_RESOURCES after a fixed number of checks.
 */
static void
test_alloc_bounded_work(void **state)
{
	struct table *t = table_make();
	struct check_counter c = { 0, UINT32_MAX };
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    8080, 0, 600, 1);
	uint16_t port = 0;
	uint32_t i;

	(void)state;
	table_set_port_check(t, counting_check, &c);
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	printf("refuse-all: %d port checks\n", c.calls);
	/* internal port, then the candidates */
	assert_true(c.calls <= 1 + TABLE_ALLOC_CANDIDATES);
	/* a full range costs no check at all: the bitmap says so */
	table_set_port_check(t, NULL, NULL);
	assert_int_equal(table_set_port_range(t, 30000, 30999), 0);
	for (i = 0; i < 1000; i++) {
		r = req_make(MAP_PROTO_UDP, host_addr(i + 1), 30000, 0, 600,
		    (uint8_t)i);
		alloc_add(t, &r, 0);
	}
	c.calls = 0;
	c.allow_from = 0;
	table_set_port_check(t, counting_check, &c);
	r = req_make(MAP_PROTO_UDP, host_addr(5000), 30000, 0, 600, 9);
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	assert_int_equal(c.calls, 0);
	/* the one free port left is found, with one check */
	table_remove(t, table_find_external(t, MAP_PROTO_UDP, 30777), 0);
	c.calls = 0;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 30777);
	assert_int_equal(c.calls, 1);
	table_free(t);
}

/* The allowed ranges, e.g. the ACL's: the choice keeps to them and to the
   allocator's range; a suggestion outside the range is still honoured. */
static size_t
two_ranges(void *arg, const struct map_req *req, struct port_range *out,
    size_t max)
{
	int *calls = arg;

	(void)req;
	(*calls)++;
	if (max < 3)
		return 3;
	out[0].lo = 80;		/* outside the default range */
	out[0].hi = 80;
	out[1].lo = 40000;
	out[1].hi = 40001;
	out[2].lo = 50000;
	out[2].hi = 50000;
	return 3;
}

static void
test_alloc_ranges(void **state)
{
	struct table *t = table_make();
	struct map_req r;
	uint16_t port = 0;
	int calls = 0;
	uint32_t i;
	bool seen[3] = { false, false, false };

	(void)state;
	table_set_port_ranges(t, two_ranges, &calls);
	for (i = 0; i < 3; i++) {
		r = req_make(MAP_PROTO_TCP, host_addr(i + 1), 0, 0, 600,
		    (uint8_t)i);
		assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
		assert_true(port == 40000 || port == 40001 || port == 50000);
		seen[port == 50000 ? 2 : port - 40000] = true;
		r.internal_port = (uint16_t)(i + 1);
		add_ok(t, &r, port, 600, 0);
	}
	assert_true(seen[0] && seen[1] && seen[2]);
	/* 80 is allowed but outside the range: only by suggestion */
	r = req_make(MAP_PROTO_TCP, host_addr(9), 1234, 0, 600, 9);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 1234);		/* the internal port */
	add_ok(t, &r, port, 600, 0);
	r.internal_port = 1235;
	r.ext_port = 1234;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 1235);
	add_ok(t, &r, port, 600, 0);
	/* internal port and suggestion taken, the ranges full */
	r.internal_port = 40000;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	r.ext_port = 80;
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 80);
	/* the scratch grew once; later calls fit at the first try */
	assert_true(calls > 0);
	table_free(t);
}

/* RFC 6887 §15 holds are capped at half the range: a host that churns
   mappings cannot hold every port for the 124-minute TCP hold. */
static void
test_hold_cap(void **state)
{
	struct table *t = table_make();
	struct map_req r;
	struct mapping *m;
	uint16_t port = 0;
	uint32_t i;

	(void)state;
	assert_int_equal(table_set_port_range(t, 20000, 20009), 0);
	for (i = 0; i < 10; i++) {
		r = req_make(MAP_PROTO_TCP, addr("192.168.1.66"),
		    (uint16_t)(100 + i), 0, 600, (uint8_t)i);
		m = alloc_add(t, &r, i * MS);
		assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
		table_remove(t, m, i * MS);
		assert_true(table_hold_count(t) <= 5);
	}
	assert_int_equal(table_hold_count(t), 5);
	/* another host still finds a port at once */
	r = req_make(MAP_PROTO_TCP, addr("192.168.1.67"), 1, 0, 600, 77);
	assert_int_equal(table_alloc_port(t, &r, 11 * MS, &port), MAP_OK);
	table_free(t);
}

/* RFC 6887 §15: a released TCP port is held for its owner for the TCP
   idle timeout, 124 minutes (RFC 5382), not just 2 MSL. */
static void
test_hold_time(void **state)
{
	struct table *t = table_make();
	struct map_req a = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    6000, 6000, 600, 1);
	struct map_req b = req_make(MAP_PROTO_TCP, addr("192.168.1.11"),
	    6001, 6000, 600, 2);
	struct mapping *m;
	uint16_t port = 0;
	enum map_err err;

	(void)state;
	m = add_ok(t, &a, 6000, 600, 0);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	table_remove(t, m, 10 * MS);
	assert_int_equal(table_hold_count(t), 1);
	/* another owner does not get it during the hold */
	assert_int_equal(table_alloc_port(t, &b, 60 * MS, &port), MAP_OK);
	assert_int_not_equal(port, 6000);
	b.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &b, 60 * MS, &port),
	    MAP_ERR_CONFLICT);
	assert_null(table_add(t, &b, 6000, 600, 60 * MS, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	/* nor does the same host with another nonce or internal port */
	a.nonce[0] ^= 1;
	a.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &a, 60 * MS, &port),
	    MAP_ERR_CONFLICT);
	a.nonce[0] ^= 1;
	a.internal_port = 6002;
	assert_int_equal(table_alloc_port(t, &a, 60 * MS, &port),
	    MAP_ERR_CONFLICT);
	a.internal_port = 6000;
	/* the same (internal address, port, nonce) reclaims it */
	assert_int_equal(table_alloc_port(t, &a, 60 * MS, &port), MAP_OK);
	assert_int_equal(port, 6000);
	m = add_ok(t, &a, 6000, 600, 60 * MS);
	assert_int_equal(table_hold_count(t), 0);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	table_remove(t, m, 100 * MS);
	/* after the hold anyone may have it */
	assert_int_equal(table_alloc_port(t, &b,
	    (100 + TABLE_HOLD_TCP_SECONDS) * MS - 1, &port),
	    MAP_ERR_CONFLICT);
	assert_int_equal(table_alloc_port(t, &b,
	    (100 + TABLE_HOLD_TCP_SECONDS) * MS, &port), MAP_OK);
	assert_int_equal(port, 6000);
	assert_int_equal(table_hold_count(t), 0);	/* purged */
	table_free(t);
}

static void
test_hold_rules(void **state)
{
	struct table *t = table_make();
	struct map_req a = req_make(MAP_PROTO_UDP, addr("192.168.1.10"),
	    7000, 7000, 10, 1);
	struct map_req b = req_make(MAP_PROTO_UDP, addr("192.168.1.11"),
	    7001, 7000, 600, 2);
	struct mapping *m;
	uint16_t port = 0;

	(void)state;
	b.flags = MAP_F_PREFER_FAILURE;
	/* never granted (upstream refused it): no traffic, no hold */
	m = add_ok(t, &a, 7000, 10, 0);
	assert_true(mapping_set_state(t, m, MAP_STATE_PENDING_UPSTREAM));
	table_remove(t, m, 1 * MS);
	assert_int_equal(table_hold_count(t), 0);
	assert_int_equal(table_alloc_port(t, &b, 2 * MS, &port), MAP_OK);
	/* expiry holds too */
	m = add_ok(t, &a, 7000, 10, 0);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_int_equal(table_expire(t, 10 * MS, NULL, NULL), 1);
	assert_int_equal(table_hold_count(t), 1);
	assert_int_equal(table_alloc_port(t, &b, 11 * MS, &port),
	    MAP_ERR_CONFLICT);
	/* UDP is held 2 minutes (RFC 4787 idle timeout), not 124 */
	assert_int_equal(table_alloc_port(t, &b,
	    (10 + TABLE_HOLD_SECONDS) * MS - 1, &port), MAP_ERR_CONFLICT);
	assert_int_equal(table_alloc_port(t, &b,
	    (10 + TABLE_HOLD_SECONDS) * MS, &port), MAP_OK);
	m = add_ok(t, &a, 7000, 10, 200 * MS);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_int_equal(table_expire(t, 210 * MS, NULL, NULL), 1);
	assert_int_equal(table_hold_count(t), 1);
	/* a hold of 0 turns it off; holds are per protocol */
	b.protocol = MAP_PROTO_TCP;
	assert_int_equal(table_alloc_port(t, &b, 211 * MS, &port), MAP_OK);
	table_set_hold(t, 0);
	m = add_ok(t, &a, 7002, 10, 220 * MS);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	table_remove(t, m, 221 * MS);
	assert_int_equal(table_hold_count(t), 1);	/* only the old one */
	table_free(t);
}

/* RFC 6886 §3.3 (N-05): a NAT-PMP mapping of P/tcp reserves P/udp for
   the same client; another host may not take it. */
static void
test_natpmp_twin_port(void **state)
{
	struct table *t = table_make();
	struct map_req a = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    9000, 9000, 600, 1);
	struct map_req b = req_make(MAP_PROTO_UDP, addr("192.168.1.11"),
	    9000, 9000, 600, 2);
	struct map_req a_udp = req_make(MAP_PROTO_UDP, addr("192.168.1.10"),
	    9000, 9000, 600, 3);
	struct mapping *m;
	uint16_t port = 0;
	enum map_err err;

	(void)state;
	a.origin = MAP_ORIGIN_NATPMP;
	b.origin = MAP_ORIGIN_NATPMP;
	a_udp.origin = MAP_ORIGIN_NATPMP;
	m = add_ok(t, &a, 9000, 600, 0);
	/* host B: another port (NAT-PMP takes any, N-05) */
	assert_int_equal(table_alloc_port(t, &b, 0, &port), MAP_OK);
	assert_int_not_equal(port, 9000);
	/* and never 9000 even when it insists, whatever its front-end */
	b.flags = MAP_F_PREFER_FAILURE;
	b.origin = MAP_ORIGIN_UPNP;
	assert_int_equal(table_alloc_port(t, &b, 0, &port), MAP_ERR_CONFLICT);
	assert_null(table_add(t, &b, 9000, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	/* host A itself may map its twin */
	assert_int_equal(table_alloc_port(t, &a_udp, 0, &port), MAP_OK);
	assert_int_equal(port, 9000);
	/* the reservation lasts as long as the NAT-PMP lease */
	table_remove(t, m, 0);
	table_set_hold(t, 0);
	assert_int_equal(table_alloc_port(t, &b, 0, &port), MAP_OK);
	assert_int_equal(port, 9000);
	/* a UPnP or PCP mapping makes no such promise */
	a.origin = MAP_ORIGIN_UPNP;
	add_ok(t, &a, 9000, 600, 0);
	assert_int_equal(table_alloc_port(t, &b, 0, &port), MAP_OK);
	assert_int_equal(port, 9000);
	table_free(t);
}

/* ---- state machine ----------------------------------------------------- */

static void
test_state_machine(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    1000, 0, 600, 1);
	struct mapping *m;

	(void)state;
	m = add_ok(t, &r, 1000, 600, 0);
	assert_int_equal(m->state, MAP_STATE_REQUESTED);
	assert_false(m->flags & MAPPING_F_WAS_GRANTED);
	/* renewing needs a granted mapping */
	assert_false(mapping_set_state(t, m, MAP_STATE_RENEWING));
	assert_int_equal(m->state, MAP_STATE_REQUESTED);
	assert_true(mapping_set_state(t, m, MAP_STATE_PENDING_UPSTREAM));
	assert_int_equal(table_count_state(t, MAP_STATE_PENDING_UPSTREAM), 1);
	assert_int_equal(table_count_state(t, MAP_STATE_REQUESTED), 0);
	assert_false(mapping_set_state(t, m, MAP_STATE_REQUESTED));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_true(m->flags & MAPPING_F_WAS_GRANTED);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));  /* no-op */
	assert_true(mapping_set_state(t, m, MAP_STATE_RENEWING));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	/* RFC 6887 §14: upstream lost it, re-create */
	assert_true(mapping_set_state(t, m, MAP_STATE_PENDING_UPSTREAM));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_int_equal(table_count_state(t, MAP_STATE_GRANTED), 1);
	assert_true(mapping_set_state(t, m, MAP_STATE_DELETED));
	/* terminal */
	assert_false(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_false(mapping_set_state(t, m, MAP_STATE_EXPIRED));
	assert_false(mapping_set_state(t, m, MAP_STATE_COUNT));
	assert_int_equal(table_count_state(t, MAP_STATE_DELETED), 1);
	table_remove(t, m, 0);
	assert_int_equal(table_count_state(t, MAP_STATE_DELETED), 0);
	assert_string_equal(map_state_name(MAP_STATE_PENDING_UPSTREAM),
	    "pending-upstream");
	assert_string_equal(map_state_name(MAP_STATE_COUNT), "unknown");
	table_free(t);
}

/* ---- expiry ----------------------------------------------------------- */

struct expired_log {
	uint16_t	 ports[16];
	size_t		 n;
};

static void
collect_expired(struct mapping *m, void *arg)
{
	struct expired_log *log = arg;

	assert_int_equal(m->state, MAP_STATE_EXPIRED);
	assert_true(log->n < 16);
	log->ports[log->n++] = m->ext_port;
}

static void
test_expire_order(void **state)
{
	struct table *t = table_make();
	static const uint32_t lifetimes[] = { 50, 10, 30, 20, 40, 10 };
	struct expired_log log = { .n = 0 };
	struct map_req r;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(lifetimes) / sizeof(lifetimes[0]); i++) {
		r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
		    (uint16_t)(100 + i), 0, lifetimes[i], (uint8_t)i);
		add_ok(t, &r, (uint16_t)(100 + i), lifetimes[i], 0);
	}
	assert_int_equal(table_next_expiry(t), 10 * MS);
	assert_int_equal(table_expire(t, 10 * MS - 1, collect_expired, &log),
	    0);
	assert_int_equal(table_expire(t, 10 * MS, collect_expired, &log), 2);
	assert_int_equal(table_next_expiry(t), 20 * MS);
	assert_int_equal(table_expire(t, 35 * MS, collect_expired, &log), 2);
	assert_int_equal(log.ports[2], 103);
	assert_int_equal(log.ports[3], 102);
	assert_int_equal(table_expire(t, 100 * MS, collect_expired, &log), 2);
	assert_int_equal(log.ports[4], 104);
	assert_int_equal(log.ports[5], 100);
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_next_expiry(t), TABLE_EXPIRY_NEVER);
	assert_int_equal(table_count_host(t, &r.internal_addr), 0);
	table_free(t);
}

/* The naive model: for each slot, the port it holds (0 = free) and its
   expiry. */
#define MODEL_SLOTS	600
#define MODEL_OPS	20000

struct model {
	uint64_t	 expiry[MODEL_SLOTS];
	bool		 live[MODEL_SLOTS];
	size_t		 n;
	uint64_t	 expired_sum;	/* slot numbers seen by the callback */
	size_t		 expired_n;
};

static void
model_expired(struct mapping *m, void *arg)
{
	struct model *mo = arg;
	size_t slot = m->internal_port - 1;

	assert_true(mo->live[slot]);
	mo->live[slot] = false;
	mo->n--;
	mo->expired_sum += slot;
	mo->expired_n++;
}

static uint64_t
model_min(const struct model *mo)
{
	uint64_t min = TABLE_EXPIRY_NEVER;
	size_t i;

	for (i = 0; i < MODEL_SLOTS; i++)
		if (mo->live[i] && mo->expiry[i] < min)
			min = mo->expiry[i];
	return min;
}

static struct map_req
model_req(size_t slot)
{
	return req_make(MAP_PROTO_UDP, host_addr((uint32_t)(slot % 37) + 1),
	    (uint16_t)(slot + 1), 0, 100, (uint8_t)slot);
}

static void
model_check(struct table *t, struct model *mo, uint64_t now)
{
	struct map_req r;
	struct mapping *m;
	size_t i, should = 0, before;

	for (i = 0; i < MODEL_SLOTS; i++)
		if (mo->live[i] && mo->expiry[i] <= now)
			should++;
	before = mo->expired_n;
	assert_int_equal(table_expire(t, now, model_expired, mo), should);
	assert_int_equal(mo->expired_n - before, should);
	assert_int_equal(table_count(t), mo->n);
	assert_int_equal(table_next_expiry(t), model_min(mo));
	for (i = 0; i < MODEL_SLOTS; i++) {
		r = model_req(i);
		m = table_find_internal(t, MAP_PROTO_UDP, &r.internal_addr,
		    r.internal_port);
		assert_int_equal(m != NULL, mo->live[i]);
		if (m != NULL)
			assert_int_equal(m->expiry, mo->expiry[i]);
	}
	for (i = 0; i < table_count(t); i++)
		assert_true(mo->live[table_at(t, i)->internal_port - 1]);
}

static void
test_heap_against_model(void **state)
{
	struct table *t = table_make();
	struct model *mo = calloc(1, sizeof(*mo));
	struct map_req r;
	struct mapping *m;
	uint64_t now = 0;
	size_t op, slot;
	uint32_t life;

	(void)state;
	assert_non_null(mo);
	srandom(7);
	for (op = 0; op < MODEL_OPS; op++) {
		slot = (size_t)random() % MODEL_SLOTS;
		r = model_req(slot);
		life = (uint32_t)(random() % 200);
		m = table_find_internal(t, MAP_PROTO_UDP, &r.internal_addr,
		    r.internal_port);
		switch (random() % 4) {
		case 0:		/* insert or refresh */
		case 1:
			r.lifetime = life;
			if (m == NULL) {
				m = alloc_add(t, &r, now);
				mo->live[slot] = true;
				mo->n++;
			} else
				assert_int_equal(table_refresh(t, m, &r, life,
				    now), 0);
			mo->expiry[slot] = now + (uint64_t)life * MS;
			assert_int_equal(m->expiry, mo->expiry[slot]);
			break;
		case 2:		/* remove */
			if (m != NULL) {
				table_remove(t, m, now);
				mo->live[slot] = false;
				mo->n--;
			}
			break;
		default:	/* time passes */
			now += (uint64_t)(random() % 5000);
			model_check(t, mo, now);
			break;
		}
	}
	model_check(t, mo, now);
	model_check(t, mo, UINT64_MAX - 1);
	assert_int_equal(table_count(t), 0);
	free(mo);
	table_free(t);
}

/* ---- RFC 7648 cache rule ----------------------------------------------- */

static void
test_cache_hit(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    1000, 0, 1000, 1);
	struct mapping *m;

	(void)state;
	m = add_ok(t, &r, 1000, 1000, 0);
	/* only a granted mapping answers locally (P-03 keeps the rest) */
	assert_false(table_cache_hit(m, 1000, 0));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	assert_true(table_cache_hit(m, 1000, 0));
	/* P-01: 750 of 1000 left is exactly 3/4 */
	assert_true(table_cache_hit(m, 1000, 250 * MS));
	/* P-02: less than 3/4 goes upstream */
	assert_false(table_cache_hit(m, 1000, 251 * MS));
	/* a shorter request is satisfied longer */
	assert_true(table_cache_hit(m, 500, 600 * MS));
	assert_false(table_cache_hit(m, 0, 0));	/* a delete never */
	assert_true(mapping_set_state(t, m, MAP_STATE_RENEWING));
	assert_false(table_cache_hit(m, 1000, 0));
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	/* upstream capped 7200 to 3600: compare with 3600, not 7200 */
	r.lifetime = 7200;
	assert_int_equal(table_refresh(t, m, &r, 3600, 1000 * MS), 0);
	assert_int_equal(m->requested_lifetime, 7200);
	assert_int_equal(m->lifetime, 3600);
	assert_true(table_cache_hit(m, 7200, 1000 * MS));
	assert_true(table_cache_hit(m, 7200, 1900 * MS));	/* 2700 left */
	assert_false(table_cache_hit(m, 7200, 1901 * MS));
	/* granted in full: a longer request must go upstream */
	r.lifetime = 3600;
	assert_int_equal(table_refresh(t, m, &r, 3600, 1000 * MS), 0);
	assert_true(table_cache_hit(m, 3600, 1000 * MS));
	assert_false(table_cache_hit(m, 7200, 1000 * MS));
	table_free(t);
}

/* ---- hosts and descriptions -------------------------------------------- */

static void
test_host_count_and_list(void **state)
{
	struct table *t = table_make();
	struct in6_addr h1 = addr("192.168.1.10"), h2 = addr("fd00::2");
	struct map_req r;
	struct mapping *m, *next;
	size_t n, deleted = 0;
	uint16_t i;

	(void)state;
	for (i = 0; i < 6; i++) {
		r = req_make(i % 2 ? MAP_PROTO_UDP : MAP_PROTO_TCP, h1,
		    (uint16_t)(2000 + i / 2), 0, 600, (uint8_t)i);
		alloc_add(t, &r, 0);
	}
	r = req_make(MAP_PROTO_TCP, h2, 2000, 0, 600, 99);
	alloc_add(t, &r, 0);
	/* quota counts all protocols of the host */
	assert_int_equal(table_count_host(t, &h1), 6);
	assert_int_equal(table_count_host(t, &h2), 1);
	for (n = 0, m = table_host_first(t, &h1); m != NULL;
	    m = table_host_next(m), n++)
		assert_true(IN6_ARE_ADDR_EQUAL(&m->internal_addr, &h1));
	assert_int_equal(n, 6);
	/* NAT-PMP "delete all UDP" (RFC 6886 §3.4): walk, save next */
	for (m = table_host_first(t, &h1); m != NULL; m = next) {
		next = table_host_next(m);
		if (m->protocol == MAP_PROTO_UDP) {
			table_remove(t, m, 0);
			deleted++;
		}
	}
	assert_int_equal(deleted, 3);
	assert_int_equal(table_count_host(t, &h1), 3);
	assert_int_equal(table_count(t), 4);
	for (m = table_host_first(t, &h1); m != NULL; m = next) {
		next = table_host_next(m);
		table_remove(t, m, 0);
	}
	assert_null(table_host_first(t, &h1));
	assert_int_equal(table_count_host(t, &h1), 0);
	assert_int_equal(table_count_host(t, &h2), 1);
	table_free(t);
}

static void
test_description(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("192.168.1.10"),
	    3074, 0, 600, 1);
	struct mapping *m;
	size_t base, with;

	(void)state;
	/* warm up the heap and listing arrays, which keep a minimum size */
	table_remove(t, alloc_add(t, &r, 0), 0);
	base = table_memory_bytes(t);
	r.flags = MAP_F_HAS_DESCRIPTION;
	snprintf(r.description, sizeof(r.description), "Xbox Live");
	m = alloc_add(t, &r, 0);
	assert_string_equal(m->description, "Xbox Live");
	with = table_memory_bytes(t);
	/* the struct and the string, as malloc chunks */
	assert_true(with >= base + sizeof(*m) + sizeof("Xbox Live"));
	/* a refresh with a new description replaces it */
	snprintf(r.description, sizeof(r.description), "a longer description");
	assert_int_equal(table_refresh(t, m, &r, 600, 0), 0);
	assert_string_equal(m->description, "a longer description");
	assert_true(table_memory_bytes(t) >= with);
	/* one without a description keeps the old one */
	r.flags = 0;
	assert_int_equal(table_refresh(t, m, &r, 600, 0), 0);
	assert_string_equal(m->description, "a longer description");
	/* an empty one clears it */
	r.flags = MAP_F_HAS_DESCRIPTION;
	r.description[0] = '\0';
	assert_int_equal(table_refresh(t, m, &r, 600, 0), 0);
	assert_null(m->description);
	assert_int_equal(table_set_description(t, m, "x"), 0);
	assert_string_equal(m->description, "x");
	table_remove(t, m, 0);
	assert_int_equal(table_memory_bytes(t), base);
	table_free(t);
}

/* ---- PEER mappings (RFC 6887 §12) --------------------------------------- */

/* A PEER request of internal endpoint (host, port) to remote:rport. */
static struct map_req
peer_make(uint8_t proto, struct in6_addr internal, uint16_t int_port,
    const char *remote, uint16_t rport, uint8_t nonce)
{
	struct map_req r = req_make(proto, internal, int_port, 0, 600, nonce);

	r.flags = MAP_F_PEER;
	r.peer_addr = addr(remote);
	r.peer_port = rport;
	return r;
}

/* table_peer_port that must succeed. */
static uint16_t
peer_port_ok(struct table *t, const struct map_req *r, bool exact,
    uint64_t now)
{
	uint16_t port = 0;

	assert_int_equal(table_peer_port(t, r, exact, now, &port), MAP_OK);
	assert_int_not_equal(port, 0);
	return port;
}

/*
 * §12.3: a PEER is keyed by its 5-tuple, apart from the MAP index: a MAP
 * and PEERs of one internal endpoint coexist, every field of the 5-tuple
 * counts, a PEER never shows up as a MAP (and the other way round).
 */
static void
test_peer_keys(void **state)
{
	struct table *t = table_make();
	struct in6_addr h = addr("192.168.1.10");
	struct map_req map = req_make(MAP_PROTO_UDP, h, 7100, 0, 600, 1);
	struct map_req a = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.50",
	    7200, 2);
	struct map_req b = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.50",
	    7201, 3);
	struct map_req q;
	struct mapping *mm, *pa, *pb, *ex = NULL;
	const struct mapping_peer *peer;
	enum map_err err;

	(void)state;
	mm = add_ok(t, &map, 7100, 600, 0);
	assert_null(mapping_peer(mm));
	assert_int_equal(mm->flags & MAPPING_F_PEER, 0);
	/* the MAP of the same internal port is no PEER of it */
	assert_int_equal(table_check(t, &a, &ex), TABLE_NEW);
	assert_null(ex);
	/* RFC 4787 REQ-1: the flow leaves from the MAP's port */
	assert_int_equal(peer_port_ok(t, &a, false, 0), 7100);
	pa = add_ok(t, &a, 7100, 600, 0);
	assert_true((pa->flags & MAPPING_F_PEER) != 0);
	assert_non_null(peer = mapping_peer(pa));
	assert_true(IN6_ARE_ADDR_EQUAL(&peer->addr, &a.peer_addr));
	assert_int_equal(peer->port, 7200);
	assert_int_equal(pa->ext_port, 7100);
	assert_int_equal(pa->outer_port, 7100);
	assert_int_equal(pa->state, MAP_STATE_REQUESTED);
	/* a second remote of the same endpoint is another PEER */
	assert_int_equal(table_check(t, &b, &ex), TABLE_NEW);
	pb = add_ok(t, &b, 7100, 600, 0);
	assert_int_equal(table_count(t), 3);
	assert_int_equal(table_count_host(t, &h), 3);
	/* lookups: each index finds its own kind only */
	assert_ptr_equal(table_find_internal(t, MAP_PROTO_UDP, &h, 7100), mm);
	assert_ptr_equal(table_find_external(t, MAP_PROTO_UDP, 7100), mm);
	assert_ptr_equal(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200), pa);
	assert_ptr_equal(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &b.peer_addr, 7201), pb);
	/* every field of the 5-tuple is part of the key */
	assert_null(table_find_peer(t, MAP_PROTO_TCP, &h, 7100,
	    &a.peer_addr, 7200));
	q = a;
	q.internal_addr = addr("192.168.1.11");
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &q.internal_addr, 7100,
	    &a.peer_addr, 7200));
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &h, 7101,
	    &a.peer_addr, 7200));
	q.peer_addr = addr("203.0.113.51");
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &q.peer_addr, 7200));
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7202));
	/* the same 5-tuple cannot be added twice */
	assert_null(table_add(t, &a, 7100, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	assert_int_equal(table_count(t), 3);
	/* §12.3: the owner refreshes; lifetime 0 is no delete (§12.1) */
	assert_int_equal(table_check(t, &a, &ex), TABLE_REFRESH);
	assert_ptr_equal(ex, pa);
	q = a;
	q.lifetime = 0;
	assert_int_equal(table_check(t, &q, &ex), TABLE_REFRESH);
	q.flags |= MAP_F_DELETE;
	assert_int_equal(table_check(t, &q, &ex), TABLE_REFRESH);
	/* a refresh keeps it a PEER with its remote */
	assert_int_equal(table_refresh(t, pa, &a, 900, 10 * MS), 0);
	assert_true((pa->flags & MAPPING_F_PEER) != 0);
	assert_int_equal(mapping_peer(pa)->port, 7200);
	assert_ptr_equal(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200), pa);
	/* removing the MAP leaves the PEERs; removing a PEER leaves the
	   other one */
	table_remove(t, mm, 20 * MS);
	assert_null(table_find_internal(t, MAP_PROTO_UDP, &h, 7100));
	assert_ptr_equal(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200), pa);
	table_remove(t, pa, 20 * MS);
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200));
	assert_ptr_equal(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &b.peer_addr, 7201), pb);
	assert_int_equal(table_count(t), 1);
	assert_int_equal(table_count_host(t, &h), 1);
	assert_ptr_equal(table_at(t, 0), pb);
	assert_int_equal(table_check(t, &a, &ex), TABLE_NEW);
	table_free(t);
}

/* §12.3: a PEER with another nonce for the same 5-tuple is someone else. */
static void
test_peer_nonce_mismatch(void **state)
{
	struct table *t = table_make();
	struct in6_addr h = addr("192.168.1.10");
	struct map_req a = peer_make(MAP_PROTO_TCP, h, 5000, "198.51.100.9",
	    443, 7);
	struct map_req map = req_make(MAP_PROTO_TCP, h, 5000, 0, 600, 8);
	struct mapping *p, *ex = NULL;

	(void)state;
	p = add_ok(t, &a, 5000, 600, 0);
	a.nonce[11] ^= 1;
	assert_int_equal(table_check(t, &a, &ex), TABLE_NONCE_MISMATCH);
	assert_ptr_equal(ex, p);
	assert_int_equal(table_verdict_err(TABLE_NONCE_MISMATCH),
	    MAP_ERR_NOT_AUTHORIZED);
	assert_int_equal(mapping_remaining(ex, 100 * MS), 500);
	/* also with lifetime 0: a PEER never deletes */
	a.lifetime = 0;
	assert_int_equal(table_check(t, &a, &ex), TABLE_NONCE_MISMATCH);
	/* the PEER's nonce is nothing to a MAP of the same internal port */
	assert_int_equal(table_check(t, &map, &ex), TABLE_NEW);
	assert_null(ex);
	map.lifetime = 0;
	assert_int_equal(table_check(t, &map, &ex), TABLE_DELETE_MISSING);
	assert_int_equal(table_count(t), 1);
	table_free(t);
}

/* table_peer_port: the endpoint's port if it has one, else the suggestion
   (exact: met or failed), else the internal port, else any free port. */
static void
test_peer_port(void **state)
{
	struct table *t = table_make();
	struct in6_addr h = addr("192.168.1.10"), o = addr("192.168.1.11");
	struct map_req a = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.50",
	    7200, 1);
	struct map_req b = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.51",
	    7200, 2);
	struct map_req other = req_make(MAP_PROTO_UDP, o, 7100, 0, 600, 3);
	uint16_t port = 0, p1;

	(void)state;
	/* a free internal port is kept, as masquerade would */
	assert_int_equal(peer_port_ok(t, &a, false, 0), 7100);
	assert_int_equal(peer_port_ok(t, &a, true, 0), 7100);
	/* a suggestion: without `exact` it is the upstream's business */
	a.ext_port = 7300;
	assert_int_equal(peer_port_ok(t, &a, false, 0), 7100);
	assert_int_equal(peer_port_ok(t, &a, true, 0), 7300);
	/* another host holds the internal port: never that one */
	add_ok(t, &other, 7100, 600, 0);
	a.ext_port = 0;
	p1 = peer_port_ok(t, &a, false, 0);
	assert_int_not_equal(p1, 7100);
	a.ext_port = 7100;
	assert_int_equal(table_peer_port(t, &a, true, 0, &port),
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	/* exact suggestions of reserved ports fail too (RFC 6887 §11.3) */
	a.ext_port = 5351;
	assert_int_equal(table_peer_port(t, &a, true, 0, &port),
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	a.ext_port = 0;
	add_ok(t, &a, p1, 600, 0);
	/* REQ-1: every flow of the endpoint leaves from the same port,
	   whatever the suggestion says when it is not binding */
	assert_int_equal(peer_port_ok(t, &b, false, 0), p1);
	b.ext_port = 7400;
	assert_int_equal(peer_port_ok(t, &b, false, 0), p1);
	assert_int_equal(table_peer_port(t, &b, true, 0, &port),
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	b.ext_port = p1;
	assert_int_equal(peer_port_ok(t, &b, true, 0), p1);
	/* another endpoint of the same host does not share it */
	b.internal_port = 7101;
	b.ext_port = 0;
	assert_int_equal(peer_port_ok(t, &b, false, 0), 7101);
	/* nor does the other protocol */
	b.internal_port = 7100;
	b.protocol = MAP_PROTO_TCP;
	assert_int_equal(peer_port_ok(t, &b, false, 0), 7100);
	table_free(t);
}

/* A granted PEER expires like a MAP but holds no port (table.h). */
static void
test_peer_expiry_no_hold(void **state)
{
	struct table *t = table_make();
	struct in6_addr h = addr("192.168.1.10");
	struct map_req a = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.50",
	    7200, 1);
	struct mapping *p;

	(void)state;
	p = add_ok(t, &a, 7100, 10, 0);
	assert_true(mapping_set_state(t, p, MAP_STATE_GRANTED));
	assert_int_equal(table_next_expiry(t), 10 * MS);
	assert_int_equal(table_expire(t, 10 * MS, NULL, NULL), 1);
	assert_int_equal(table_count(t), 0);
	assert_int_equal(table_hold_count(t), 0);
	assert_null(table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200));
	assert_int_equal(table_count_host(t, &h), 0);
	table_free(t);
}

/* RFC 4787 REQ-1 without the clash: a gateway port PEER flows leave from
   is their internal endpoint's (its MAP and its PEERs), held while any of
   them is there; other hosts get other ports and no MAP of theirs takes
   it. (Fix: two hosts' PEERs from UDP 7100 both got 7100, and a third
   host's MAP then got 7100 too.) */
static void
test_peer_port_owner(void **state)
{
	struct table *t = table_make();
	struct in6_addr h1 = addr("192.168.1.10"), h2 = addr("192.168.1.11");
	struct in6_addr h3 = addr("192.168.1.12");
	struct map_req a = peer_make(MAP_PROTO_UDP, h1, 7100, "203.0.113.50",
	    7200, 1);
	struct map_req a2 = peer_make(MAP_PROTO_UDP, h1, 7100, "203.0.113.51",
	    7200, 1);
	struct map_req b = peer_make(MAP_PROTO_UDP, h2, 7100, "203.0.113.50",
	    7200, 2);
	struct map_req c = req_make(MAP_PROTO_UDP, h3, 7100, 7100, 600, 3);
	struct map_req own = req_make(MAP_PROTO_UDP, h1, 7100, 7100, 600, 1);
	struct mapping *pa, *pa2, *pb, *mc;
	enum map_err err;
	uint16_t port;

	(void)state;
	pa = add_ok(t, &a, peer_port_ok(t, &a, true, 0), 600, 0);
	assert_int_equal(pa->ext_port, 7100);
	/* another host: another port, also when it insists (exact) */
	port = peer_port_ok(t, &b, false, 0);
	assert_int_not_equal(port, 7100);
	b.ext_port = 7100;
	assert_int_equal(table_peer_port(t, &b, true, 0, &port),
	    MAP_ERR_CANNOT_PROVIDE_EXTERNAL);
	b.ext_port = 0;
	/* ... and table_add refuses the port even when told to take it */
	assert_null(table_add(t, &b, 7100, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	pb = add_ok(t, &b, peer_port_ok(t, &b, false, 0), 600, 0);
	assert_int_not_equal(pb->ext_port, 7100);
	/* a third host's MAP: not 7100, not host 2's port */
	mc = alloc_add(t, &c, 0);
	assert_int_not_equal(mc->ext_port, 7100);
	assert_int_not_equal(mc->ext_port, pb->ext_port);
	c.internal_port = 7101;
	c.ext_port = pb->ext_port;
	c.flags |= MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_ERR_CONFLICT);
	assert_null(table_add(t, &c, pb->ext_port, 600, 0, &err));
	assert_int_equal(err, MAP_ERR_CONFLICT);
	/* the endpoint's second PEER and its MAP share 7100 */
	pa2 = add_ok(t, &a2, peer_port_ok(t, &a2, true, 0), 600, 0);
	assert_int_equal(pa2->ext_port, 7100);
	assert_int_equal(table_alloc_port(t, &own, 0, &port), MAP_OK);
	assert_int_equal(port, 7100);
	/* the port stays the endpoint's while one of its PEERs is there */
	table_remove(t, pa, 0);
	c.ext_port = 7100;
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_ERR_CONFLICT);
	table_remove(t, pa2, 0);
	/* PEERs hold no port after release: free for anyone now */
	assert_int_equal(table_alloc_port(t, &c, 0, &port), MAP_OK);
	assert_int_equal(port, 7100);
	table_remove(t, pb, 0);
	table_remove(t, mc, 0);
	assert_int_equal(table_count(t), 0);
	table_free(t);
}

/* Port allocation skips PEER ports in the bitmap too: with one port left
   in the range and a PEER flow on it, a random pick finds nothing. */
static void
test_peer_port_bitmap(void **state)
{
	struct table *t = table_make();
	struct in6_addr h1 = addr("192.168.1.10"), h2 = addr("192.168.1.11");
	struct map_req a = peer_make(MAP_PROTO_UDP, h1, 30000, "203.0.113.50",
	    7200, 1);
	struct map_req m = req_make(MAP_PROTO_UDP, h2, 30000, 0, 600, 2);
	struct mapping *pa;
	uint16_t port;

	(void)state;
	assert_int_equal(table_set_port_range(t, 30000, 30000), 0);
	pa = add_ok(t, &a, peer_port_ok(t, &a, false, 0), 600, 0);
	assert_int_equal(pa->ext_port, 30000);
	assert_int_equal(table_alloc_port(t, &m, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	table_remove(t, pa, 0);
	assert_int_equal(table_alloc_port(t, &m, 0, &port), MAP_OK);
	assert_int_equal(port, 30000);
	table_free(t);
}

/* The remote peer costs PEER mappings only: a MAP mapping is one chunk of
   sizeof(struct mapping), as before PEER existed. */
static void
test_peer_memory(void **state)
{
	struct table *t = table_make();
	struct in6_addr h = addr("192.168.1.10");
	struct map_req map = req_make(MAP_PROTO_UDP, h, 7100, 0, 600, 1);
	struct map_req a = peer_make(MAP_PROTO_UDP, h, 7100, "203.0.113.50",
	    7200, 2);
	size_t base, with_map, with_peer;
	void *probe;
	size_t map_chunk;

	(void)state;
	/* warm up the arrays, which keep a minimum size */
	table_remove(t, add_ok(t, &map, 7100, 600, 0), 0);
	table_remove(t, add_ok(t, &a, 7100, 600, 0), 0);
	base = table_memory_bytes(t);
	/* a glibc chunk: usable size plus its size_t header */
	assert_non_null(probe = calloc(1, sizeof(struct mapping)));
	map_chunk = malloc_usable_size(probe) + sizeof(size_t);
	free(probe);
	add_ok(t, &map, 7100, 600, 0);
	with_map = table_memory_bytes(t);
	assert_int_equal(with_map - base, map_chunk);
	add_ok(t, &a, 7100, 600, 0);
	with_peer = table_memory_bytes(t);
	assert_true(with_peer - with_map >= sizeof(struct mapping) +
	    sizeof(struct mapping_peer));
	assert_true(with_peer - with_map > map_chunk);
	table_remove(t, table_find_peer(t, MAP_PROTO_UDP, &h, 7100,
	    &a.peer_addr, 7200), 0);
	assert_int_equal(table_memory_bytes(t), with_map);
	table_remove(t, table_find_internal(t, MAP_PROTO_UDP, &h, 7100), 0);
	assert_int_equal(table_memory_bytes(t), base);
	table_free(t);
}

static void
test_reseed_keeps_lookups(void **state)
{
	struct table *t = table_make();
	struct map_req r;
	struct mapping *m;
	uint32_t i;
	uint16_t port;

	(void)state;
	for (i = 0; i < 200; i++) {
		r = req_make(MAP_PROTO_TCP, host_addr(i % 10 + 1),
		    (uint16_t)(1000 + i), 0, 600, (uint8_t)i);
		m = alloc_add(t, &r, 0);
		assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
		if (i % 3 == 0)
			table_remove(t, m, 0);	/* leaves holds */
	}
	table_set_seed(t, 0x1234567890abcdefULL);
	for (i = 0; i < 200; i++) {
		r = req_make(MAP_PROTO_TCP, host_addr(i % 10 + 1),
		    (uint16_t)(1000 + i), 0, 600, (uint8_t)i);
		m = table_find_internal(t, MAP_PROTO_TCP, &r.internal_addr,
		    r.internal_port);
		assert_int_equal(m != NULL, i % 3 != 0);
		if (m != NULL)
			assert_ptr_equal(table_find_external(t, MAP_PROTO_TCP,
			    m->ext_port), m);
	}
	assert_int_equal(table_count_host(t, &r.internal_addr), 13);
	/* holds survive the re-key: another owner cannot take port 1000 */
	r = req_make(MAP_PROTO_TCP, addr("192.168.9.9"), 1000, 1000, 600, 1);
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(table_alloc_port(t, &r, 1 * MS, &port),
	    MAP_ERR_CONFLICT);
	table_free(t);
}

/* ---- scale ------------------------------------------------------------ */

static double
seconds_since(const struct timespec *start)
{
	struct timespec now;

	clock_gettime(CLOCK_MONOTONIC, &now);
	return (double)(now.tv_sec - start->tv_sec) +
	    (double)(now.tv_nsec - start->tv_nsec) / 1e9;
}

/* Description length for big_req: 0 gives a short "app N". */
static size_t big_desc_len;

static struct map_req
big_req(uint32_t i, uint32_t per_host)
{
	struct map_req r = req_make(i % 2 ? MAP_PROTO_UDP : MAP_PROTO_TCP,
	    host_addr(i / per_host + 1), (uint16_t)(1024 + i % per_host),
	    0, 3600, 0);

	memcpy(r.nonce, &i, sizeof(i));
	r.flags = MAP_F_HAS_DESCRIPTION;
	snprintf(r.description, sizeof(r.description), "app %u", i);
	if (big_desc_len > 0) {
		memset(r.description, 'd', big_desc_len);
		r.description[big_desc_len] = '\0';
	}
	return r;
}

/* Bytes malloc has handed out, when the C library says (not under ASan,
   which keeps its own books). */
static size_t
heap_in_use(void)
{
#if defined(__GLIBC__) && !defined(__SANITIZE_ADDRESS__)
	struct mallinfo2 mi = mallinfo2();

	/* small chunks from the arenas, big arrays mmap()ed */
	return mi.uordblks + mi.hblkhd;
#else
	return 0;
#endif
}

/* Fill to 50,000 (64 a host, as the default quota allows), check the
   memory budget and the lookups, list them all, then empty the table in a
   shuffled order, checking lookups on the way. */
static void
grow_and_shrink(uint32_t per_host)
{
	struct table *t = table_make();
	struct mapping *m;
	struct map_req r;
	struct timespec start;
	uint32_t *order, i, j, tmp;
	size_t base = table_memory_bytes(t), per, heap0 = heap_in_use();
	uint64_t sum = 0;

	table_set_hold(t, 0);
	for (i = 0; i < BIG_COUNT; i++) {
		r = big_req(i, per_host);
		m = alloc_add(t, &r, i);
		assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	}
	assert_int_equal(table_count(t), BIG_COUNT);
	per = (table_memory_bytes(t) - base) / BIG_COUNT;
	printf("%u mappings, %u per host, description %zu: %zu bytes (%zu "
	    "per mapping, sizeof(struct mapping) %zu; malloc says %zu)\n",
	    BIG_COUNT, per_host, strlen(big_req(0, per_host).description),
	    table_memory_bytes(t), per, sizeof(struct mapping),
	    (heap_in_use() - heap0) / BIG_COUNT);
	assert_true(per < BYTES_BUDGET);
	/* table_memory_bytes() is honest: within 2% of what malloc says
	   (when it says; the bytes outside the table are the test's) */
	if (heap0 != 0)
		assert_true((heap_in_use() - heap0) / BIG_COUNT <= per + 2);
	for (i = 0; i < BIG_COUNT; i += 7) {
		r = big_req(i, per_host);
		m = table_find_internal(t, r.protocol, &r.internal_addr,
		    r.internal_port);
		assert_non_null(m);
		assert_memory_equal(m->nonce, r.nonce, MAP_NONCE_SIZE);
		assert_ptr_equal(table_find_external(t, r.protocol,
		    m->ext_port), m);
		/* the last host holds what is left over */
		assert_int_equal(table_count_host(t, &r.internal_addr),
		    i / per_host == BIG_COUNT / per_host ?
		    BIG_COUNT % per_host : per_host);
	}
	/* listing 50,000 by index */
	clock_gettime(CLOCK_MONOTONIC, &start);
	for (i = 0; i < BIG_COUNT; i++)
		sum += table_at(t, i)->ext_port;
	assert_true(sum > 0);
	assert_true(seconds_since(&start) < 0.5);
	/* empty it in a shuffled order */
	order = calloc(BIG_COUNT, sizeof(*order));
	assert_non_null(order);
	for (i = 0; i < BIG_COUNT; i++)
		order[i] = i;
	srandom(11);
	for (i = BIG_COUNT - 1; i > 0; i--) {
		j = (uint32_t)random() % (i + 1);
		tmp = order[i];
		order[i] = order[j];
		order[j] = tmp;
	}
	for (i = 0; i < BIG_COUNT; i++) {
		r = big_req(order[i], per_host);
		m = table_find_internal(t, r.protocol, &r.internal_addr,
		    r.internal_port);
		assert_non_null(m);
		table_remove(t, m, BIG_COUNT);
		if (i % 4999 == 0 && i + 1 < BIG_COUNT) {
			r = big_req(order[i + 1], per_host);
			assert_non_null(table_find_internal(t, r.protocol,
			    &r.internal_addr, r.internal_port));
			assert_null(table_find_external(t, MAP_PROTO_TCP, 0));
			assert_int_equal(table_count(t), BIG_COUNT - i - 1);
		}
	}
	assert_int_equal(table_count(t), 0);
	/* every index shrank back */
	printf("empty again: %zu bytes (%zu at the start)\n",
	    table_memory_bytes(t), base);
	assert_true(table_memory_bytes(t) < base + 1024);
	free(order);
	table_free(t);
}

static void
test_grow_to_50000_and_back(void **state)
{
	(void)state;
	grow_and_shrink(PER_HOST);
}

/* The worst case for memory: every mapping on its own host. */
static void
test_grow_50000_hosts(void **state)
{
	(void)state;
	grow_and_shrink(1);
}

/* The budget holds for real descriptions too: 60 characters, one host a
   mapping (was 341 bytes a mapping). */
static void
test_grow_50000_hosts_long_descriptions(void **state)
{
	(void)state;
	big_desc_len = 60;
	grow_and_shrink(1);
	big_desc_len = 0;
}

/* Client leases and the renewal point (RFC 6970 §5.9, I-07): a mapping
   due for renewal is reported by table_renewal_due() and never expired by
   table_expire() until it was handled; its remaining life still counts to
   the real end; table_set_expiry() clears the renewal. */
static void
test_lease_and_renewal(void **state)
{
	struct table *t = table_make();
	struct map_req r = req_make(MAP_PROTO_TCP, addr("10.0.0.1"), 80, 80,
	    120, 1), r2 = req_make(MAP_PROTO_TCP, addr("10.0.0.2"), 81, 81,
	    120, 2);
	struct mapping *m, *m2;

	(void)state;
	r.lease = MAP_LEASE_INFINITE;
	m = add_ok(t, &r, 80, 120, 10 * MS);
	assert_int_equal(m->lease_end, TABLE_LEASE_FOREVER);
	assert_int_equal(mapping_lease_end_ms(m), TABLE_EXPIRY_NEVER);
	assert_int_equal(mapping_lease_remaining(m, 10 * MS),
	    TABLE_LIFETIME_INFINITE);
	m2 = add_ok(t, &r2, 81, 120, 10 * MS);
	assert_int_equal(m2->lease_end, TABLE_LEASE_NONE);
	assert_int_equal(mapping_lease_remaining(m2, 10 * MS), 120);
	/* m is due at 70 s and ends at 130 s; m2 ends at 70 s too */
	table_set_renewal(t, m, 70 * MS, 130 * MS);
	table_set_expiry(t, m2, 70 * MS);
	assert_true((m->flags & MAPPING_F_RENEW) != 0);
	assert_int_equal(mapping_remaining(m, 10 * MS), 120);
	assert_null(table_renewal_due(t, 69 * MS));
	/* whichever of the two the heap shows first, m is never expired */
	while (table_renewal_due(t, 70 * MS) == NULL &&
	    table_expire(t, 70 * MS, NULL, NULL) > 0)
		;
	assert_ptr_equal(table_renewal_due(t, 70 * MS), m);
	assert_int_equal(table_expire(t, 70 * MS, NULL, NULL), 0);
	/* handled: back to its real end, then it expires normally */
	table_set_expiry(t, m, m->grant_end);
	assert_true((m->flags & MAPPING_F_RENEW) == 0);
	assert_null(table_renewal_due(t, 70 * MS));
	assert_int_equal(table_expire(t, 70 * MS, NULL, NULL), 1);	/* m2 */
	assert_int_equal(table_count(t), 1);
	assert_int_equal(table_expire(t, 130 * MS, NULL, NULL), 1);
	/* a finite lease in whole seconds, rounded up; table_set_lease */
	r.lease = 300;
	m = add_ok(t, &r, 80, 120, 1500);
	assert_int_equal(m->lease_end, 302);
	assert_int_equal(mapping_lease_remaining(m, 1500), 301);
	table_set_lease(t, m, 600, 100 * MS);
	assert_int_equal(mapping_lease_remaining(m, 100 * MS), 600);
	table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_sizeof_mapping),
		cmocka_unit_test(test_add_find),
		cmocka_unit_test(test_lease_and_renewal),
		cmocka_unit_test(test_add_errors_leave_table_unchanged),
		cmocka_unit_test(test_check_new_and_refresh),
		cmocka_unit_test(test_check_nonce_mismatch),
		cmocka_unit_test(test_check_prefer_failure),
		cmocka_unit_test(test_check_delete),
		cmocka_unit_test(test_check_static),
		cmocka_unit_test(test_verdict_names),
		cmocka_unit_test(test_alloc_suggested_then_internal_then_range),
		cmocka_unit_test(test_alloc_reserved_ports),
		cmocka_unit_test(test_alloc_port_check_callback),
		cmocka_unit_test(test_alloc_fills_range),
		cmocka_unit_test(test_alloc_is_pseudo_random),
		cmocka_unit_test(test_alloc_bounded_work),
		cmocka_unit_test(test_alloc_ranges),
		cmocka_unit_test(test_hold_cap),
		cmocka_unit_test(test_hold_time),
		cmocka_unit_test(test_hold_rules),
		cmocka_unit_test(test_natpmp_twin_port),
		cmocka_unit_test(test_state_machine),
		cmocka_unit_test(test_expire_order),
		cmocka_unit_test(test_heap_against_model),
		cmocka_unit_test(test_cache_hit),
		cmocka_unit_test(test_host_count_and_list),
		cmocka_unit_test(test_description),
		cmocka_unit_test(test_peer_keys),
		cmocka_unit_test(test_peer_nonce_mismatch),
		cmocka_unit_test(test_peer_port),
		cmocka_unit_test(test_peer_expiry_no_hold),
		cmocka_unit_test(test_peer_memory),
		cmocka_unit_test(test_peer_port_owner),
		cmocka_unit_test(test_peer_port_bitmap),
		cmocka_unit_test(test_reseed_keeps_lookups),
		cmocka_unit_test(test_grow_to_50000_and_back),
		cmocka_unit_test(test_grow_50000_hosts),
		cmocka_unit_test(test_grow_50000_hosts_long_descriptions),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
