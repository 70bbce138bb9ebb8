/*
 * test_dhcp_pcp.c - RFC 7291's DHCP PCP server options (src/dhcp_pcp.h)
 * and the default router that RFC 6887 §8.1 falls back to (src/netif.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "dhcp_pcp.h"
#include "netif.h"
#include "pcp_wire.h"

static void
assert_addr(const struct in6_addr *a, const char *text)
{
	char buf[INET6_ADDRSTRLEN];

	assert_string_equal(pcp_addr_ntop(a, buf, sizeof(buf)), text);
}

/* hex text -> octets, then option 158 */
static enum dhcp_pcp_err
decode_v4_hex(const char *hex, struct dhcp_pcp_servers *s)
{
	uint8_t buf[DHCP_PCP_OPTION_MAX];
	enum dhcp_pcp_err err;
	size_t len;

	if ((err = dhcp_pcp_hex(hex, buf, sizeof(buf), &len)) != DHCP_PCP_OK)
		return err;
	return dhcp_pcp_decode_v4(buf, len, s);
}

static void
test_hex_forms(void **state)
{
	uint8_t buf[8];
	size_t len = 99;

	(void)state;
	/* udhcpc's opt158 and odhcp6c: contiguous pairs, any case */
	assert_int_equal(dhcp_pcp_hex("04C6336401", buf, sizeof(buf), &len),
	    DHCP_PCP_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "\x04\xc6\x33\x64\x01", 5);
	/* ISC dhclient's string type: colon-separated, no leading zero */
	assert_int_equal(dhcp_pcp_hex("4:c6:33:64:1", buf, sizeof(buf), &len),
	    DHCP_PCP_OK);
	assert_int_equal(len, 5);
	assert_memory_equal(buf, "\x04\xc6\x33\x64\x01", 5);
	assert_int_equal(dhcp_pcp_hex(" 04 c6 33 64 01\n", buf, sizeof(buf),
	    &len), DHCP_PCP_OK);
	assert_int_equal(len, 5);
	assert_int_equal(dhcp_pcp_hex("", buf, sizeof(buf), &len), DHCP_PCP_OK);
	assert_int_equal(len, 0);
	/* malformed: odd digits, a glued pair in the separated form,
	   not hex, too long; len untouched */
	len = 99;
	assert_int_equal(dhcp_pcp_hex("04c", buf, sizeof(buf), &len),
	    DHCP_PCP_BAD_HEX);
	assert_int_equal(dhcp_pcp_hex("4:c633", buf, sizeof(buf), &len),
	    DHCP_PCP_BAD_HEX);
	assert_int_equal(dhcp_pcp_hex("4:c6x", buf, sizeof(buf), &len),
	    DHCP_PCP_BAD_HEX);
	assert_int_equal(dhcp_pcp_hex("0xc6", buf, sizeof(buf), &len),
	    DHCP_PCP_BAD_HEX);
	assert_int_equal(dhcp_pcp_hex("000102030405060708", buf, sizeof(buf),
	    &len), DHCP_PCP_TOO_LONG);
	assert_int_equal(len, 99);
}

/* RFC 7291 §4.1, Figure 2: one list, one server, one address. */
static void
test_v4_one_server(void **state)
{
	struct dhcp_pcp_servers s;

	(void)state;
	dhcp_pcp_init(&s);
	assert_int_equal(decode_v4_hex("04c6336401", &s), DHCP_PCP_OK);
	assert_int_equal(s.n, 1);
	assert_int_equal(s.servers, 1);
	assert_addr(&s.addr[0], "198.51.100.1");
}

/* Several lists (servers), each with several addresses: one ordered
   failover list, the first server's addresses first. */
static void
test_v4_lists(void **state)
{
	struct dhcp_pcp_servers s;

	(void)state;
	dhcp_pcp_init(&s);
	assert_int_equal(decode_v4_hex(
	    "08" "c0000201" "c0000202"	/* server 1: 192.0.2.1, .2 */
	    "04" "c6336401",		/* server 2: 198.51.100.1 */
	    &s), DHCP_PCP_OK);
	assert_int_equal(s.servers, 2);
	assert_int_equal(s.n, 3);
	assert_addr(&s.addr[0], "192.0.2.1");
	assert_addr(&s.addr[1], "192.0.2.2");
	assert_addr(&s.addr[2], "198.51.100.1");
}

/* RFC 7291 §4.2: multicast and loopback silently discarded; repeats
   once; more than the engine holds dropped and counted. */
static void
test_v4_discard_and_cap(void **state)
{
	struct dhcp_pcp_servers s;

	(void)state;
	dhcp_pcp_init(&s);
	assert_int_equal(decode_v4_hex("10" "e0000001" "7f000001" "00000000"
	    "ffffffff" "04" "c0000201" "08" "c0000201" "c0000202", &s),
	    DHCP_PCP_OK);
	assert_int_equal(s.discarded, 4);
	assert_int_equal(s.repeated, 1);
	assert_int_equal(s.n, 2);
	assert_int_equal(s.servers, 3);
	dhcp_pcp_init(&s);
	assert_int_equal(decode_v4_hex("28" "0a000001" "0a000002" "0a000003"
	    "0a000004" "0a000005" "0a000006" "0a000007" "0a000008" "0a000009"
	    "0a00000a", &s), DHCP_PCP_OK);
	assert_int_equal(s.n, DHCP_PCP_MAX_ADDRS);
	assert_int_equal(s.dropped, 2);
	assert_addr(&s.addr[7], "10.0.0.8");
}

/* Malformed options change nothing (decode, check, then commit). */
static void
test_v4_malformed(void **state)
{
	static const char *const bad[][2] = {
		{ "04c63364", "short" },		/* 4 octets < 5 */
		{ "03c6336401", "list length 3" },
		{ "00c6336401", "list length 0" },
		{ "08c6336401", "list past the end" },
		{ "04c633640104", "trailing list length" },
		{ "04c6336401" "05c0000201ff", "second list length 5" },
	};
	static const enum dhcp_pcp_err want[] = {
		DHCP_PCP_V4_TOO_SHORT, DHCP_PCP_V4_LIST_LENGTH,
		DHCP_PCP_V4_LIST_LENGTH, DHCP_PCP_V4_TRUNCATED,
		DHCP_PCP_V4_TRUNCATED, DHCP_PCP_V4_LIST_LENGTH,
	};
	struct dhcp_pcp_servers s;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(want) / sizeof(want[0]); i++) {
		dhcp_pcp_init(&s);
		assert_int_equal(decode_v4_hex("04c0000201", &s), DHCP_PCP_OK);
		if (decode_v4_hex(bad[i][0], &s) != want[i])
			fail_msg("%s: got %s", bad[i][1],
			    dhcp_pcp_strerror(decode_v4_hex(bad[i][0], &s)));
		assert_int_equal(s.n, 1);
		assert_int_equal(s.servers, 1);
		assert_non_null(strstr(dhcp_pcp_strerror(want[i]), "158"));
	}
}

/* RFC 7291 §3.1: IPv6 addresses, IPv4-mapped allowed; one server per
   instance. */
static void
test_v6(void **state)
{
	static const uint8_t opt[] = {
		0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1,
		0xff, 0x02, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0x01,
	};
	struct dhcp_pcp_servers s;

	(void)state;
	dhcp_pcp_init(&s);
	assert_int_equal(dhcp_pcp_decode_v6(opt, sizeof(opt), &s), DHCP_PCP_OK);
	assert_int_equal(s.n, 2);
	assert_addr(&s.addr[0], "2001:db8::1");
	assert_addr(&s.addr[1], "198.51.100.1");
	assert_int_equal(s.discarded, 2);	/* ff02::1, ::1 */
	assert_int_equal(dhcp_pcp_decode_v6(opt, 15, &s), DHCP_PCP_V6_LENGTH);
	assert_int_equal(dhcp_pcp_decode_v6(opt, 0, &s), DHCP_PCP_V6_LENGTH);
	assert_int_equal(dhcp_pcp_decode_v6(opt, 17, &s), DHCP_PCP_V6_LENGTH);
	assert_int_equal(s.n, 2);
	assert_string_equal(dhcp_pcp_strerror(DHCP_PCP_ERR_COUNT),
	    "unknown error");
}

/* /proc/net/route: the default route of the interface with the lowest
   metric, gateways as the kernel prints them (little-endian hex here). */
static void
test_default_router(void **state)
{
	static const char table[] =
	    "Iface\tDestination\tGateway \tFlags\tRefCnt\tUse\tMetric\tMask"
	    "\t\tMTU\tWindow\tIRTT\n"
	    "lan0\t00000000\t0102A8C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
	    "wan0\t006433C6\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
	    "wan0\t00000000\t026433C6\t0003\t0\t0\t200\t00000000\t0\t0\t0\n"
	    "wan0\t00000000\t016433C6\t0003\t0\t0\t100\t00000000\t0\t0\t0\n"
	    "wan0\t00000000\t036433C6\t0001\t0\t0\t50\t00000000\t0\t0\t0\n"
	    "wan1\t00000000\t00000000\t0001\t0\t0\t0\t00000000\t0\t0\t0\n";
	struct in6_addr a;
	FILE *f;

	(void)state;
	assert_non_null(f = fmemopen((void *)(uintptr_t)table,
	    sizeof(table) - 1, "r"));
	assert_true(netif_parse_default_router(f, "wan0", &a));
	fclose(f);
	/* metric 100 beats 200; the route without RTF_GATEWAY is none */
	assert_addr(&a, "198.51.100.1");
	assert_non_null(f = fmemopen((void *)(uintptr_t)table,
	    sizeof(table) - 1, "r"));
	assert_false(netif_parse_default_router(f, "wan1", &a));
	fclose(f);
	assert_false(netif_ipv4_default_router("no-such-if0", &a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hex_forms),
		cmocka_unit_test(test_v4_one_server),
		cmocka_unit_test(test_v4_lists),
		cmocka_unit_test(test_v4_discard_and_cap),
		cmocka_unit_test(test_v4_malformed),
		cmocka_unit_test(test_v6),
		cmocka_unit_test(test_default_router),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
