/*
 * test_policy.c - the request policy: LAN only, third party, reserved
 * ports, ACL (first match wins, hints moved rather than failed), per-host
 * quota across protocols and for PEER mappings, the global mapping cap,
 * lifetime bounds, and the order of the checks.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "acl.h"
#include "policy.h"
#include "table.h"

#define MIN_LIFE	120
#define MAX_LIFE	86400
#define V4_MAPPED_BITS	96

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

static struct policy_prefix lan[2];
/* third_party_host lines: the whole IPv4 LAN, and the IPv6 one */
static struct acl_prefix tp_lan[2];

/* third_party = allow, third_party_host = 192.168.1.0/24 and fd00:1::/64 */
static void
policy_allow_third_party(struct policy *p)
{
	tp_lan[0].addr = addr("192.168.1.0");
	tp_lan[0].prefix_len = V4_MAPPED_BITS + 24;
	tp_lan[1].addr = addr("fd00:1::");
	tp_lan[1].prefix_len = 64;
	p->third_party_hosts = tp_lan;
	p->n_third_party_hosts = 2;
}

static struct policy
policy_make(void)
{
	struct policy p;

	lan[0].addr = addr("192.168.1.0");
	lan[0].prefix_len = V4_MAPPED_BITS + 24;
	lan[1].addr = addr("fd00:1::");
	lan[1].prefix_len = 64;
	memset(&p, 0, sizeof(p));
	p.lan_prefixes = lan;
	p.n_lan_prefixes = 2;
	p.max_mappings_per_host = 64;
	p.min_lifetime = MIN_LIFE;
	p.max_lifetime = MAX_LIFE;
	return p;
}

static struct map_req
req_make(uint8_t proto, const char *host, uint16_t int_port,
    uint16_t ext_port, uint32_t lifetime)
{
	struct map_req r;

	memset(&r, 0, sizeof(r));
	r.origin = MAP_ORIGIN_PCP;
	r.requester = addr(host);
	r.internal_addr = r.requester;
	r.protocol = proto;
	r.internal_port = int_port;
	r.ext_port = ext_port;
	r.lifetime = lifetime;
	r.nonce[0] = (uint8_t)int_port;
	return r;
}

static void
parse_rule(const char *text, bool allow, struct acl_rule *out)
{
	char err[ACL_RULE_TEXT_MAX];

	if (!acl_rule_parse(text, allow, out, err, sizeof(err)))
		fail_msg("rule \"%s\": %s", text, err);
}

static void
test_lan_only(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0,
	    600);
	uint32_t life = 1;

	(void)state;
	assert_non_null(t);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 600);
	assert_true(policy_is_lan(&p, &r.requester));
	r = req_make(MAP_PROTO_TCP, "192.168.2.10", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	assert_int_equal(life, 0);
	r = req_make(MAP_PROTO_TCP, "fd00:1::abcd", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r = req_make(MAP_PROTO_TCP, "fd00:2::abcd", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* a /24 is exact at its edges */
	r = req_make(MAP_PROTO_TCP, "192.168.1.255", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r = req_make(MAP_PROTO_TCP, "192.168.0.255", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* an odd prefix length: 192.168.1.0/25 */
	lan[0].prefix_len = V4_MAPPED_BITS + 25;
	r = req_make(MAP_PROTO_TCP, "192.168.1.127", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r = req_make(MAP_PROTO_TCP, "192.168.1.128", 80, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* no LAN known: nobody is served; deletes neither */
	p.n_lan_prefixes = 0;
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0, 0);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	table_free(t);
}

static void
test_third_party(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0,
	    600);
	uint32_t life;

	(void)state;
	assert_non_null(t);
	r.internal_addr = addr("192.168.1.11");
	r.flags = MAP_F_THIRD_PARTY;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	/* deleting another host's mapping is third party too */
	r.lifetime = 0;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	policy_allow_third_party(&p);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.lifetime = 600;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* allowed, but only for LAN hosts */
	r.internal_addr = addr("8.8.8.8");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	table_free(t);
}

static bool
tp_ok(const struct policy *p, const char *requester)
{
	struct in6_addr a = addr(requester);

	return policy_third_party_ok(p, &a);
}

/* third_party_host names the requesters; the others are denied,
   whatever internal address they name. */
static void
test_third_party_hosts(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_prefix hosts[3];
	struct map_req r;
	char err[128];
	uint32_t life;

	(void)state;
	assert_non_null(t);
	/* a host, a prefix and an IPv6 prefix, parsed as the config does */
	assert_true(acl_prefix_parse("192.168.1.10", &hosts[0], err,
	    sizeof(err)));
	assert_true(acl_prefix_parse("192.168.1.64/28", &hosts[1], err,
	    sizeof(err)));
	assert_true(acl_prefix_parse("fd00:1::/120", &hosts[2], err,
	    sizeof(err)));
	p.third_party_hosts = hosts;
	p.n_third_party_hosts = 3;

	/* listed host */
	assert_true(tp_ok(&p, "192.168.1.10"));
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0, 600);
	r.internal_addr = addr("192.168.1.20");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 600);
	/* its neighbour is not */
	r.requester = addr("192.168.1.11");
	assert_false(policy_third_party_ok(&p, &r.requester));
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	assert_int_equal(life, 0);
	/* ... not even for a delete */
	r.lifetime = 0;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	/* but it still maps for itself */
	r.internal_addr = r.requester;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* the /28: .64 .. .79 */
	r = req_make(MAP_PROTO_UDP, "192.168.1.64", 5000, 0, 600);
	r.internal_addr = addr("192.168.1.20");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.requester = addr("192.168.1.79");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.requester = addr("192.168.1.80");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	r.requester = addr("192.168.1.63");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	/* a listed requester still maps only for LAN hosts */
	r.requester = addr("192.168.1.70");
	r.internal_addr = addr("10.1.2.3");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* ... and never for the gateway itself: a WAN port to the router's
	   own services (fix, review) */
	lan[0].own = addr("192.168.1.1");
	r.internal_addr = addr("192.168.1.1");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	r.internal_addr = addr("192.168.1.2");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	memset(&lan[0].own, 0, sizeof(lan[0].own));
	/* IPv6: fd00:1::/120 */
	r = req_make(MAP_PROTO_TCP, "fd00:1::5", 443, 0, 600);
	r.internal_addr = addr("fd00:1::1:5");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.requester = addr("fd00:1::1:6");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	/* outside the LAN (192.168.1.0/24): never */
	assert_false(tp_ok(&p, "192.168.2.10"));
	/* a listed prefix reaching beyond the LAN lets no outsider in */
	hosts[0].addr = addr("0.0.0.0");
	hosts[0].prefix_len = V4_MAPPED_BITS;
	assert_true(tp_ok(&p, "192.168.1.99"));
	assert_false(tp_ok(&p, "10.9.9.9"));
	/* none listed (third_party = deny): nobody */
	p.n_third_party_hosts = 0;
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0, 600);
	r.internal_addr = addr("192.168.1.20");
	assert_false(policy_third_party_ok(&p, &r.requester));
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	table_free(t);
}

static void
test_delete_skips_the_rest(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r = req_make(MAP_PROTO_UDP, "192.168.1.10", 5351, 0,
	    0);
	struct acl_rule deny_all;
	uint32_t life = 7;

	(void)state;
	assert_non_null(t);
	parse_rule("0-65535 0.0.0.0/0 0-65535", false, &deny_all);
	p.acl = &deny_all;
	p.n_acl = 1;
	p.max_mappings_per_host = 1;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 0);	/* never clamped up to min */
	r.lifetime = 600;
	r.flags = MAP_F_DELETE;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 0);
	table_free(t);
}

static void
test_reserved_ports(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r = req_make(MAP_PROTO_UDP, "192.168.1.10", 5351,
	    5351, 600);
	uint32_t life;

	(void)state;
	assert_non_null(t);
	/* a hint: the table moves it */
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_RESERVED_PORT);
	r.ext_port = 5350;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_RESERVED_PORT);
	r.protocol = MAP_PROTO_TCP;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* the port check for the allocator says the same */
	r.protocol = MAP_PROTO_UDP;
	assert_int_equal(policy_ext_port_check(&p, &r, 5350),
	    MAP_ERR_RESERVED_PORT);
	assert_int_equal(policy_ext_port_check(&p, &r, 5352), MAP_OK);
	table_free(t);
}

static void
test_acl(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_rule rules[3];
	struct map_req r;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	parse_rule("22 192.168.1.0/24 0-65535", false, &rules[0]);
	parse_rule("1024-65535 192.168.1.0/24 1024-65535", true, &rules[1]);
	/* ::/0 covers IPv6 and IPv4-mapped hosts alike (acl.h) */
	parse_rule("0-65535 ::/0 0-65535", false, &rules[2]);
	p.acl = rules;
	p.n_acl = 3;
	/* PREFER_FAILURE on a denied port: refused */
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 2222, 22, 600);
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	r.ext_port = 2222;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* a denied hint is moved (RFC 6887 §11.3), not failed */
	r.flags = 0;
	r.ext_port = 22;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* internal port 80 matches no allow rule, then deny-all */
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 8080, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* a LAN host outside the ACL's prefix */
	r = req_make(MAP_PROTO_TCP, "fd00:1::5", 3000, 3000, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	table_free(t);
}

/* Only one external port allowed, found between two deny ranges and the
   default allow: the "some port" test must see it. */
static void
test_acl_single_port_between_denies(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_rule rules[2];
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 3000, 0,
	    600);
	uint32_t life;
	uint16_t port = 0;

	(void)state;
	assert_non_null(t);
	parse_rule("0-4999 0.0.0.0/0 0-65535", false, &rules[0]);
	parse_rule("5001-65535 0.0.0.0/0 0-65535", false, &rules[1]);
	p.acl = rules;
	p.n_acl = 2;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* the allocator, picking from the ACL's ranges, finds exactly 5000 */
	table_set_port_check(t, policy_ext_port_check, &p);
	table_set_port_ranges(t, policy_ext_port_ranges, &p);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 5000);
	/* and with 5000 denied too, nothing is left */
	parse_rule("0-65535 0.0.0.0/0 0-65535", false, &rules[1]);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	table_free(t);
}

static int port_checks;

static enum map_err
counted_port_check(void *arg, const struct map_req *req, uint16_t port)
{
	port_checks++;
	return policy_ext_port_check(arg, req, port);
}

/* The allocator with the policy's ranges keeps to allowed ports when the
   hint is denied, and asks the ACL of one port a request. */
static void
test_acl_steers_allocation(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_rule rules[2];
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 22, 22,
	    600);
	uint16_t port = 0;
	int i;

	(void)state;
	assert_non_null(t);
	parse_rule("20000-20099 192.168.1.0/24 0-65535", true, &rules[0]);
	parse_rule("0-65535 0.0.0.0/0 0-65535", false, &rules[1]);
	p.acl = rules;
	p.n_acl = 2;
	table_set_port_check(t, counted_port_check, &p);
	table_set_port_ranges(t, policy_ext_port_ranges, &p);
	for (i = 0; i < 20; i++) {
		r.internal_port = (uint16_t)(22 + i);
		port_checks = 0;
		assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
		assert_true(port >= 20000 && port <= 20099);
		/* the hint and the internal port (denied), then one */
		assert_true(port_checks <= 3);
	}
	table_free(t);
}

/*
 * The review's case: 256 rules of which one allows port 80 (outside the
 * allocator's range) for the host, then deny all. Before, the policy said
 * yes ("some port is allowed") and the allocator checked all 64,512 ports
 * of its range against the 256 rules (16 ms) to fail. Now the policy says
 * NOT_AUTHORIZED at once, and with the hint 80 the table takes 80.
 */
static void
test_acl_port_outside_range(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_rule rules[256];
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 8080, 0,
	    600);
	char text[ACL_RULE_TEXT_MAX];
	uint32_t life;
	uint16_t port = 0;
	size_t i;

	(void)state;
	assert_non_null(t);
	for (i = 0; i < 254; i++) {
		snprintf(text, sizeof(text), "1024-65535 10.%zu.0.0/16 0-65535",
		    i);
		parse_rule(text, false, &rules[i]);
	}
	parse_rule("80 192.168.1.0/24 0-65535", true, &rules[254]);
	parse_rule("0-65535 0.0.0.0/0 0-65535", false, &rules[255]);
	p.acl = rules;
	p.n_acl = 256;
	table_set_port_check(t, counted_port_check, &p);
	table_set_port_ranges(t, policy_ext_port_ranges, &p);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* the allocator alone, asked anyway: NO_RESOURCES after checking
	   the internal port only, nothing of the range */
	port_checks = 0;
	assert_int_equal(table_alloc_port(t, &r, 0, &port),
	    MAP_ERR_NO_RESOURCES);
	assert_int_equal(port_checks, 1);
	r.ext_port = 80;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_int_equal(port, 80);
	/* an internal port of 80 is a candidate too */
	r.ext_port = 0;
	r.internal_port = 80;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* a range that reaches into the allocator's: found */
	parse_rule("80-1030 192.168.1.0/24 0-65535", true, &rules[254]);
	r.internal_port = 8080;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(table_alloc_port(t, &r, 0, &port), MAP_OK);
	assert_true(port >= TABLE_PORT_MIN_DEFAULT && port <= 1030);
	table_free(t);
}

/* RFC 6887 §11.3: only TCP and UDP, single ports; protocol 0, SCTP and
   internal port 0 (all ports, DMZ) are UNSUPP_PROTOCOL, deletes too. */
static void
test_unsupported_protocol(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	r = req_make(0, "192.168.1.10", 0, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	r = req_make(132, "192.168.1.10", 5000, 5000, 600);	/* SCTP */
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 0, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	/* a wildcard delete (§15.1) of something we never create */
	r.lifetime = 0;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	r = req_make(0, "192.168.1.10", 0, 0, 0);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	/* right after the LAN check: outsiders learn nothing more */
	r = req_make(0, "10.9.9.9", 0, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* and before the third-party check */
	r = req_make(132, "192.168.1.11", 5000, 0, 600);
	r.internal_addr = addr("192.168.1.10");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_UNSUPP_PROTOCOL);
	r.protocol = MAP_PROTO_TCP;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	table_free(t);
}

static void
test_quota_across_protocols(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r;
	struct mapping *m;
	enum map_err err;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	p.max_mappings_per_host = 3;
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 1000, 0, 600);
	assert_non_null(table_add(t, &r, 1000, 600, 0, &err));
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 1000, 0, 600);
	assert_non_null(table_add(t, &r, 1000, 600, 0, &err));
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 1001, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_non_null(m = table_add(t, &r, 1001, 600, 0, &err));
	/* a fourth, of either protocol, is over quota */
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 1001, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	assert_int_equal(life, 0);
	/* refreshing one it has is not a new one */
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 1001, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* another host has its own quota */
	r = req_make(MAP_PROTO_TCP, "192.168.1.11", 1001, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* a third party request counts against the internal host */
	policy_allow_third_party(&p);
	r = req_make(MAP_PROTO_TCP, "192.168.1.11", 1002, 0, 600);
	r.internal_addr = addr("192.168.1.10");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	/* room again after a removal */
	table_remove(t, m, 0);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* 0: no limit */
	p.max_mappings_per_host = 0;
	assert_non_null(table_add(t, &r, 1002, 600, 0, &err));
	r.internal_port = 1003;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	table_free(t);
}

/* RFC 6887 §12.3: a PEER is named by its 5-tuple, so a host at its quota
   may refresh the PEER it has but not open one to another remote, and a
   PEER does not make the MAP of its internal port a refresh (nor the other
   way round). */
static void
test_quota_peer(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r;
	enum map_err err;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	p.max_mappings_per_host = 2;
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 7100, 0, 600);
	r.flags = MAP_F_PEER;
	r.peer_addr = addr("203.0.113.50");
	r.peer_port = 7200;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_non_null(table_add(t, &r, 7100, 600, 0, &err));
	r.peer_port = 7201;
	assert_non_null(table_add(t, &r, 7100, 600, 0, &err));
	assert_int_equal(table_count_host(t, &r.internal_addr), 2);
	/* at the quota: both PEERs refresh */
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 600);
	r.peer_port = 7200;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* a third remote (port or address) is a new mapping */
	r.peer_port = 7202;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	assert_int_equal(life, 0);
	r.peer_port = 7200;
	r.peer_addr = addr("203.0.113.51");
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	/* the MAP of the same internal port is not a refresh of a PEER */
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 7100, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	/* and a MAP does not make a new PEER of its port a refresh */
	p.max_mappings_per_host = 3;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_non_null(table_add(t, &r, 7100, 600, 0, &err));
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.flags = MAP_F_PEER;
	r.peer_addr = addr("203.0.113.50");
	r.peer_port = 7203;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	r.peer_port = 7201;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	table_free(t);
}

/* Issue 8: the global cap counts every host's mappings; a new mapping
   beyond it is NO_RESOURCES, refreshes and deletes still pass, and the
   per-host quota speaks first. */
static void
test_global_cap(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r;
	struct mapping *m;
	enum map_err err;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	p.max_mappings = 3;
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_non_null(m = table_add(t, &r, 1000, 600, 0, &err));
	r = req_make(MAP_PROTO_UDP, "192.168.1.11", 1000, 0, 600);
	assert_non_null(table_add(t, &r, 1001, 600, 0, &err));
	r = req_make(MAP_PROTO_TCP, "fd00:1::5", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_non_null(table_add(t, &r, 1002, 600, 0, &err));
	assert_int_equal(table_count(t), 3);
	/* full: a new mapping of any host, any protocol, PEER too */
	r = req_make(MAP_PROTO_TCP, "192.168.1.12", 2000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_NO_RESOURCES);
	assert_int_equal(life, 0);
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_NO_RESOURCES);
	r.flags = MAP_F_PEER;
	r.peer_addr = addr("203.0.113.50");
	r.peer_port = 7200;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_NO_RESOURCES);
	/* refreshes of what exists pass, and so do deletes */
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 1000, 0, 7200);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 7200);
	r = req_make(MAP_PROTO_TCP, "fd00:1::5", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r = req_make(MAP_PROTO_TCP, "192.168.1.12", 2000, 0, 0);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	r.lifetime = 600;
	r.flags = MAP_F_DELETE;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* the host's own quota is the more precise answer */
	p.max_mappings_per_host = 1;
	r = req_make(MAP_PROTO_UDP, "192.168.1.10", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	r = req_make(MAP_PROTO_UDP, "192.168.1.12", 1000, 0, 600);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_NO_RESOURCES);
	/* room again after a removal */
	table_remove(t, m, 0);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	/* full again; 0: no cap */
	assert_non_null(table_add(t, &r, 1003, 600, 0, &err));
	p.max_mappings_per_host = 0;
	r.internal_port = 1001;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_NO_RESOURCES);
	p.max_mappings = 0;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	table_free(t);
}

static void
test_lifetime_clamp(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct map_req r = req_make(MAP_PROTO_TCP, "192.168.1.10", 80, 0, 1);
	uint32_t life;

	(void)state;
	assert_non_null(t);
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, MIN_LIFE);
	r.lifetime = MAX_LIFE + 1;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, MAX_LIFE);
	r.lifetime = UINT32_MAX;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, MAX_LIFE);
	r.lifetime = 7200;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_OK);
	assert_int_equal(life, 7200);
	assert_int_equal(policy_clamp_lifetime(&p, 0), 0);
	assert_int_equal(policy_clamp_lifetime(&p, MIN_LIFE), MIN_LIFE);
	table_free(t);
}

/* The documented order: LAN, third party, delete, reserved, ACL, quota. */
static void
test_check_order(void **state)
{
	struct policy p = policy_make();
	struct table *t = table_new();
	struct acl_rule deny_all;
	struct map_req r;
	enum map_err err;
	uint32_t life;

	(void)state;
	assert_non_null(t);
	parse_rule("0-65535 0.0.0.0/0 0-65535", false, &deny_all);
	/* outside the LAN and third party: the LAN check speaks first */
	r = req_make(MAP_PROTO_UDP, "10.9.9.9", 5351, 5351, 600);
	r.internal_addr = addr("192.168.1.10");
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	/* third party before the reserved port */
	r.requester = addr("192.168.1.11");
	r.flags = MAP_F_PREFER_FAILURE;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_THIRD_PARTY_DENIED);
	/* reserved port before the ACL */
	r.requester = r.internal_addr;
	p.acl = &deny_all;
	p.n_acl = 1;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_RESERVED_PORT);
	/* ACL before the quota */
	p.max_mappings_per_host = 1;
	r = req_make(MAP_PROTO_TCP, "192.168.1.10", 1, 0, 600);
	assert_non_null(table_add(t, &r, 1, 600, 0, &err));
	r.internal_port = 2;
	assert_int_equal(policy_check(&p, t, &r, &life),
	    MAP_ERR_NOT_AUTHORIZED);
	p.n_acl = 0;
	assert_int_equal(policy_check(&p, t, &r, &life), MAP_ERR_QUOTA);
	table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_lan_only),
		cmocka_unit_test(test_third_party),
		cmocka_unit_test(test_third_party_hosts),
		cmocka_unit_test(test_delete_skips_the_rest),
		cmocka_unit_test(test_reserved_ports),
		cmocka_unit_test(test_acl),
		cmocka_unit_test(test_acl_single_port_between_denies),
		cmocka_unit_test(test_acl_steers_allocation),
		cmocka_unit_test(test_acl_port_outside_range),
		cmocka_unit_test(test_unsupported_protocol),
		cmocka_unit_test(test_quota_across_protocols),
		cmocka_unit_test(test_quota_peer),
		cmocka_unit_test(test_global_cap),
		cmocka_unit_test(test_lifetime_clamp),
		cmocka_unit_test(test_check_order),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
