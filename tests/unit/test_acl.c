/*
 * test_acl.c - allow/deny rules: parsing (every accepted and refused
 * form), matching at the edges of each range and prefix, first match wins,
 * default allow, and the printed form reading back to the same rule.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "acl.h"
#include "util.h"

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

static struct acl_rule
rule(const char *text, bool allow)
{
	struct acl_rule r;
	char err[ACL_RULE_TEXT_MAX] = "";

	if (!acl_rule_parse(text, allow, &r, err, sizeof(err)))
		fail_msg("\"%s\" refused: %s", text, err);
	return r;
}

/* Field by field: struct padding is not part of a rule. */
static void
assert_rule_equal(const struct acl_rule *a, const struct acl_rule *b)
{
	assert_int_equal(a->allow, b->allow);
	assert_int_equal(a->ext_min, b->ext_min);
	assert_int_equal(a->ext_max, b->ext_max);
	assert_memory_equal(&a->addr, &b->addr, sizeof(a->addr));
	assert_int_equal(a->prefix_len, b->prefix_len);
	assert_int_equal(a->int_min, b->int_min);
	assert_int_equal(a->int_max, b->int_max);
}

static void
test_parse_ipv4(void **state)
{
	struct acl_rule r;
	struct in6_addr want = addr("192.168.1.0");

	(void)state;
	r = rule("1024-65535 192.168.1.0/24 1024-65535", true);
	assert_true(r.allow);
	assert_int_equal(r.ext_min, 1024);
	assert_int_equal(r.ext_max, 65535);
	assert_int_equal(r.int_min, 1024);
	assert_int_equal(r.int_max, 65535);
	assert_int_equal(r.prefix_len, 24 + ACL_V4_PREFIX_OFFSET);
	assert_memory_equal(&r.addr, &want, sizeof(want));

	/* a bare address is one host; a single port is N-N */
	r = rule("  80\t192.168.1.10   8080 ", false);
	assert_false(r.allow);
	assert_int_equal(r.ext_min, 80);
	assert_int_equal(r.ext_max, 80);
	assert_int_equal(r.int_min, 8080);
	assert_int_equal(r.int_max, 8080);
	assert_int_equal(r.prefix_len, 128);

	r = rule("0-65535 0.0.0.0/0 0-65535", false);
	assert_int_equal(r.prefix_len, ACL_V4_PREFIX_OFFSET);
	assert_int_equal(r.ext_min, 0);
}

static void
test_parse_ipv6(void **state)
{
	struct acl_rule r;
	struct in6_addr want = addr("2001:db8::");

	(void)state;
	r = rule("5000-5010 2001:db8::/32 5000-5010", true);
	assert_int_equal(r.prefix_len, 32);
	assert_memory_equal(&r.addr, &want, sizeof(want));
	r = rule("1 2001:db8::7 2", true);
	assert_int_equal(r.prefix_len, 128);
	r = rule("1 ::/0 2", true);
	assert_int_equal(r.prefix_len, 0);
}

/* Each refused form: false, a reason naming the problem, *out untouched. */
static void
test_parse_refused(void **state)
{
	static const struct {
		const char	*text;
		const char	*reason;
	} bad[] = {
		{ "", "got 0 fields" },
		{ "1024-65535 192.168.1.0/24", "got 2 fields" },
		{ "1 192.168.1.0/24 1 1", "more than 3 fields" },
		{ "70000 192.168.1.0/24 1", "external ports \"70000\"" },
		{ "65536 192.168.1.0/24 1", "external ports" },
		{ "2000-1000 192.168.1.0/24 1", "range is reversed" },
		{ "-5 192.168.1.0/24 1", "external ports \"-5\"" },
		{ "+5 192.168.1.0/24 1", "external ports \"+5\"" },
		{ "1- 192.168.1.0/24 1", "external ports \"1-\"" },
		{ "1-2-3 192.168.1.0/24 1", "external ports \"1-2-3\"" },
		{ "0x10 192.168.1.0/24 1", "external ports \"0x10\"" },
		{ "1 192.168.1 1", "address \"192.168.1\"" },
		{ "1 host.example 1", "not an IPv4 or IPv6 address" },
		{ "1 192.168.1.0/33 1", "prefix length is not in 0..32" },
		{ "1 192.168.1.0/ 1", "prefix length" },
		{ "1 192.168.1.0/-1 1", "prefix length" },
		{ "1 192.168.1.0/24x 1", "prefix length" },
		{ "1 2001:db8::/129 1", "prefix length is not in 0..128" },
		{ "1 192.168.1.5/24 1", "did you mean 192.168.1.0/24?" },
		{ "1 2001:db8::1/32 1", "did you mean 2001:db8::/32?" },
		{ "1 10.1.2.3/9 1", "did you mean 10.0.0.0/9?" },
		{ "1 192.168.1.0/24 x", "internal ports \"x\"" },
		{ "1 192.168.1.0/24 9-8", "range is reversed" },
		{ "1 fe80::1%eth0 1", "not an IPv4 or IPv6 address" },
		{ "1 ::ffff:0.0.0.0/80 1", "did you mean ::/80?" },
	};
	struct acl_rule r, untouched;
	char err[ACL_RULE_TEXT_MAX];
	char longer[ACL_RULE_TEXT_MAX + 8];
	size_t i;

	(void)state;
	memset(&untouched, 0xa5, sizeof(untouched));
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		r = untouched;
		err[0] = '\0';
		if (acl_rule_parse(bad[i].text, true, &r, err, sizeof(err)))
			fail_msg("\"%s\" accepted", bad[i].text);
		if (strstr(err, bad[i].reason) == NULL)
			fail_msg("\"%s\": reason \"%s\" lacks \"%s\"",
			    bad[i].text, err, bad[i].reason);
		assert_memory_equal(&r, &untouched, sizeof(r));
	}
	memset(longer, '1', sizeof(longer) - 1);
	longer[sizeof(longer) - 1] = '\0';
	assert_false(acl_rule_parse(longer, true, &r, err, sizeof(err)));
	assert_non_null(strstr(err, "longer than"));
	/* a tiny error buffer is not overrun */
	assert_false(acl_rule_parse("1 x 1", true, &r, err, 4));
	assert_int_equal(strlen(err), 3);
}

static void
test_match_ports(void **state)
{
	struct acl_rule r = rule("1000-2000 0.0.0.0/0 3000-4000", true);
	struct in6_addr a = addr("10.0.0.1");

	(void)state;
	assert_true(acl_rule_match(&r, &a, 1000, 3000));
	assert_true(acl_rule_match(&r, &a, 2000, 4000));
	assert_true(acl_rule_match(&r, &a, 1500, 3500));
	assert_false(acl_rule_match(&r, &a, 999, 3000));
	assert_false(acl_rule_match(&r, &a, 2001, 3000));
	assert_false(acl_rule_match(&r, &a, 1000, 2999));
	assert_false(acl_rule_match(&r, &a, 1000, 4001));
	r = rule("0-65535 0.0.0.0/0 0-65535", true);
	assert_true(acl_rule_match(&r, &a, 0, 0));
	assert_true(acl_rule_match(&r, &a, 65535, 65535));
}

static void
test_match_ipv4(void **state)
{
	struct acl_rule r = rule("0-65535 192.168.16.0/20 0-65535", true);
	struct in6_addr in1 = addr("192.168.16.0"), in2 = addr("192.168.31.255");
	struct in6_addr out1 = addr("192.168.15.255");
	struct in6_addr out2 = addr("192.168.32.0");
	struct in6_addr v6 = addr("2001:db8::1");
	struct in6_addr compat = addr("::192.168.16.1");

	(void)state;
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_true(acl_rule_match(&r, &in2, 1, 1));
	assert_false(acl_rule_match(&r, &out1, 1, 1));
	assert_false(acl_rule_match(&r, &out2, 1, 1));
	/* an IPv4 rule never matches an IPv6 host, even "IPv4-compatible" */
	assert_false(acl_rule_match(&r, &v6, 1, 1));
	assert_false(acl_rule_match(&r, &compat, 1, 1));
	r = rule("0-65535 192.168.1.10 0-65535", true);
	in1 = addr("192.168.1.10");
	out1 = addr("192.168.1.11");
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_false(acl_rule_match(&r, &out1, 1, 1));
	/* 0.0.0.0/0 is every IPv4 host and no IPv6 one */
	r = rule("0-65535 0.0.0.0/0 0-65535", true);
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_false(acl_rule_match(&r, &v6, 1, 1));
}

static void
test_match_ipv6(void **state)
{
	struct acl_rule r = rule("0-65535 2001:db8:0:10::/63 0-65535", true);
	struct in6_addr in1 = addr("2001:db8:0:10::1");
	struct in6_addr in2 = addr("2001:db8:0:11:ffff:ffff:ffff:ffff");
	struct in6_addr out1 = addr("2001:db8:0:12::");
	struct in6_addr out2 = addr("2001:db8:0:f:ffff:ffff:ffff:ffff");
	struct in6_addr v4 = addr("192.168.1.1");

	(void)state;
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_true(acl_rule_match(&r, &in2, 1, 1));
	assert_false(acl_rule_match(&r, &out1, 1, 1));
	assert_false(acl_rule_match(&r, &out2, 1, 1));
	assert_false(acl_rule_match(&r, &v4, 1, 1));
	/* ::/0 is every address, IPv4-mapped ones included (acl.c) */
	r = rule("0-65535 ::/0 0-65535", true);
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_true(acl_rule_match(&r, &v4, 1, 1));
	r = rule("0-65535 2001:db8::fe/127 0-65535", true);
	in1 = addr("2001:db8::ff");
	out1 = addr("2001:db8::fd");
	assert_true(acl_rule_match(&r, &in1, 1, 1));
	assert_false(acl_rule_match(&r, &out1, 1, 1));
}

static void
test_first_match_wins(void **state)
{
	struct acl_rule rules[4];
	struct in6_addr host = addr("192.168.1.20");
	struct in6_addr other = addr("192.168.2.20");
	struct in6_addr v6 = addr("2001:db8::20");

	(void)state;
	rules[0] = rule("0-1023 192.168.1.0/24 0-65535", false);
	rules[1] = rule("1024-65535 192.168.1.0/24 1024-65535", true);
	rules[2] = rule("0-65535 192.168.1.20 0-65535", true); /* shadowed */
	rules[3] = rule("0-65535 0.0.0.0/0 0-65535", false);

	assert_false(acl_allows(rules, 4, &host, 80, 8080));	/* rule 0 */
	assert_true(acl_allows(rules, 4, &host, 8080, 8080));	/* rule 1 */
	/* rule 2 would allow, but rule 0 comes first */
	assert_false(acl_allows(rules, 4, &host, 22, 22));
	assert_false(acl_allows(rules, 4, &other, 8080, 8080));	/* rule 3 */
	/* no rule matches an IPv6 host here: default allow */
	assert_true(acl_allows(rules, 4, &v6, 22, 22));
	/* the same rules in the other order give the other answer */
	rules[0] = rule("0-65535 192.168.1.20 0-65535", true);
	rules[2] = rule("0-1023 192.168.1.0/24 0-65535", false);
	assert_true(acl_allows(rules, 4, &host, 22, 22));
}

static void
test_default_allow(void **state)
{
	struct acl_rule r = rule("1-2 10.0.0.0/8 1-2", false);
	struct in6_addr a = addr("10.1.1.1");

	(void)state;
	assert_true(acl_allows(NULL, 0, &a, 22, 22));
	assert_true(acl_allows(&r, 1, &a, 3, 3));
	assert_false(acl_allows(&r, 1, &a, 2, 1));
}

/* The printed form is normal and reads back to the same rule. */
static void
test_format_round_trip(void **state)
{
	static const struct {
		const char	*in;
		const char	*out;
	} cases[] = {
		{ "1024-65535 192.168.1.0/24 1024-65535",
		  "1024-65535 192.168.1.0/24 1024-65535" },
		{ "80 192.168.1.10 80", "80 192.168.1.10/32 80" },
		{ "00080-0090 10.0.0.0/8 7-7", "80-90 10.0.0.0/8 7" },
		{ "0-65535 ::/0 0-65535", "0-65535 ::/0 0-65535" },
		{ "1 2001:DB8:0:0::/64 2", "1 2001:db8::/64 2" },
		{ "1 2001:db8::1 2", "1 2001:db8::1/128 2" },
		{ "1 ::ffff:192.168.1.0/120 2", "1 192.168.1.0/24 2" },
		{ "1 ::ffff:0.0.0.0/96 2", "1 0.0.0.0/0 2" },
	};
	struct acl_rule r, back;
	char text[ACL_RULE_TEXT_MAX], small[8];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		r = rule(cases[i].in, true);
		acl_rule_format(&r, text, sizeof(text));
		assert_string_equal(text, cases[i].out);
		back = rule(text, true);
		assert_rule_equal(&back, &r);
	}
	/* truncates, never overruns */
	acl_rule_format(&r, small, sizeof(small));
	assert_int_equal(strlen(small), sizeof(small) - 1);
}

/* acl_ext_ranges() against acl_allows() port by port, for random rule
   lists that overlap, nest and share ends. */
static void
check_ranges_against_allows(const struct acl_rule *rules, size_t n,
    const struct in6_addr *a, uint16_t int_port)
{
	struct port_range *out = calloc(ACL_RANGES_MAX(n), sizeof(*out));
	size_t count, k = 0, i;
	uint32_t port;
	bool in;

	assert_non_null(out);
	count = acl_ext_ranges(rules, n, a, int_port, out);
	assert_true(count <= ACL_RANGES_MAX(n));
	for (i = 0; i + 1 < count; i++)	/* ascending, not even adjacent */
		assert_true((uint32_t)out[i].hi + 1 < out[i + 1].lo);
	for (port = 0; port <= UINT16_MAX; port++) {
		while (k < count && out[k].hi < port)
			k++;
		in = k < count && out[k].lo <= port;
		assert_int_equal(in, acl_allows(rules, n, a, (uint16_t)port,
		    int_port));
	}
	free(out);
}

static void
test_ext_ranges(void **state)
{
	struct acl_rule rules[40];
	struct in6_addr a;
	char text[ACL_RULE_TEXT_MAX];
	unsigned int lo, hi, round;
	size_t n, i;

	(void)state;
	a = addr("192.168.1.10");
	/* none: everything; deny all: nothing */
	check_ranges_against_allows(rules, 0, &a, 1000);
	rules[0] = rule("0-65535 0.0.0.0/0 0-65535", false);
	check_ranges_against_allows(rules, 1, &a, 1000);
	/* a single port between denies, at both ends, and adjacent allows */
	rules[0] = rule("0 0.0.0.0/0 0-65535", true);
	rules[1] = rule("65535 0.0.0.0/0 0-65535", true);
	rules[2] = rule("1-4999 0.0.0.0/0 0-65535", false);
	rules[3] = rule("5001-65534 0.0.0.0/0 0-65535", false);
	check_ranges_against_allows(rules, 4, &a, 1000);
	srandom(6887);
	for (round = 0; round < 40; round++) {
		n = (size_t)random() % 40;
		for (i = 0; i < n; i++) {
			lo = (unsigned int)random() % 65536;
			hi = lo + (unsigned int)random() % (random() % 2 ?
			    64 : 65536);
			if (hi > 65535)
				hi = 65535;
			snprintf(text, sizeof(text), "%u-%u %s %u-%u", lo, hi,
			    random() % 4 ? "192.168.1.0/24" : "10.0.0.0/8",
			    (unsigned int)random() % 2000,
			    2000 + (unsigned int)random() % 2000);
			rules[i] = rule(text, random() % 2 != 0);
		}
		check_ranges_against_allows(rules, n, &a, 1000);
		check_ranges_against_allows(rules, n, &a, 3000);
	}
}

/* The shared helpers behind acl, config, control, policy and netif. */
static void
test_util_helpers(void **state)
{
	struct in6_addr a = addr("2001:db8:ffff:ffff::1"), b, a_masked;
	unsigned long long v;

	(void)state;
	assert_true(util_parse_decimal("0", &v) && v == 0);
	assert_true(util_parse_decimal("65535", &v) && v == 65535);
	assert_true(util_parse_decimal("99999999999999999999999", &v) &&
	    v == ULLONG_MAX);
	assert_false(util_parse_decimal("", &v));
	assert_false(util_parse_decimal("+1", &v));
	assert_false(util_parse_decimal(" 1", &v));
	assert_false(util_parse_decimal("1 ", &v));
	assert_false(util_parse_decimal("0x10", &v));
	assert_false(util_parse_decimal("-0", &v));
	b = a;
	util_addr_mask(&b, 36);
	a_masked = addr("2001:db8:f000::");
	assert_true(IN6_ARE_ADDR_EQUAL(&b, &a_masked));
	assert_true(util_prefix_match(&a, &b, 36));
	assert_false(util_prefix_match(&a, &b, 37));
	assert_true(util_prefix_match(&a, &b, 0));
	util_addr_mask(&b, 0);
	assert_true(IN6_IS_ADDR_UNSPECIFIED(&b));
	b = a;
	util_addr_mask(&b, 128);
	assert_true(IN6_ARE_ADDR_EQUAL(&a, &b));
	assert_true(util_prefix_match(&a, &b, 128));
	assert_false(util_prefix_match(&a, &b, 129));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_ipv4),
		cmocka_unit_test(test_parse_ipv6),
		cmocka_unit_test(test_parse_refused),
		cmocka_unit_test(test_match_ports),
		cmocka_unit_test(test_match_ipv4),
		cmocka_unit_test(test_match_ipv6),
		cmocka_unit_test(test_first_match_wins),
		cmocka_unit_test(test_default_allow),
		cmocka_unit_test(test_format_round_trip),
		cmocka_unit_test(test_ext_ranges),
		cmocka_unit_test(test_util_helpers),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
