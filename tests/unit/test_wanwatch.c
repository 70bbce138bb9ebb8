/*
 * test_wanwatch.c - the WAN address watcher's pure parts: the rtnetlink
 * parse over hand-built RTM_NEWADDR / RTM_DELADDR buffers (rtnetlink(7)),
 * cut and malformed ones included, and the debounce on a fake clock (a
 * DHCP renew's delete-then-add is one change). The socket part runs in
 * netns/faults.sh wan_change.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
#include <string.h>

#include <event2/event.h>

#include "pcp_wire.h"
#include "wanwatch.h"

#define TEST_WAN_INDEX	7

/* A buffer of netlink messages built the way the kernel lays them out. */
struct nlbuf {
	uint8_t		 b[1024];
	size_t		 len;
};

static void
nl_put(struct nlbuf *nb, const void *data, size_t len)
{
	assert_true(nb->len + len <= sizeof(nb->b));
	memcpy(nb->b + nb->len, data, len);
	nb->len += len;
}

static void
nl_pad(struct nlbuf *nb)
{
	static const uint8_t zero[NLMSG_ALIGNTO];

	nl_put(nb, zero, NLMSG_ALIGN(nb->len) - nb->len);
}

/* Open a message; returns its offset for nl_end. */
static size_t
nl_begin(struct nlbuf *nb, uint16_t type)
{
	struct nlmsghdr nh;
	size_t start = nb->len;

	memset(&nh, 0, sizeof(nh));
	nh.nlmsg_type = type;
	nl_put(nb, &nh, sizeof(nh));
	return start;
}

/* The kernel's nlmsg_len covers the padding of the last attribute. */
static void
nl_end(struct nlbuf *nb, size_t start)
{
	uint32_t len;

	nl_pad(nb);
	len = (uint32_t)(nb->len - start);
	memcpy(nb->b + start + offsetof(struct nlmsghdr, nlmsg_len), &len,
	    sizeof(len));
}

static void
nl_ifaddr(struct nlbuf *nb, uint8_t family, uint32_t index)
{
	struct ifaddrmsg ifa;

	memset(&ifa, 0, sizeof(ifa));
	ifa.ifa_family = family;
	ifa.ifa_prefixlen = 24;
	ifa.ifa_index = index;
	nl_put(nb, &ifa, sizeof(ifa));
	nl_pad(nb);
}

static void
nl_attr(struct nlbuf *nb, uint16_t type, const void *data, size_t len)
{
	struct rtattr rta;

	rta.rta_type = type;
	rta.rta_len = (unsigned short)RTA_LENGTH(len);
	nl_put(nb, &rta, sizeof(rta));
	nl_put(nb, data, len);
	nl_pad(nb);
}

static void
nl_attr_v4(struct nlbuf *nb, uint16_t type, const char *text)
{
	struct in_addr a;

	assert_int_equal(inet_pton(AF_INET, text, &a), 1);
	nl_attr(nb, type, &a, sizeof(a));
}

/* One IPv4 address message as the kernel sends it for an Ethernet-like
   interface: IFA_ADDRESS and IFA_LOCAL both the address. */
static void
nl_addr_msg(struct nlbuf *nb, uint16_t type, uint32_t index, const char *a)
{
	size_t start = nl_begin(nb, type);

	nl_ifaddr(nb, AF_INET, index);
	nl_attr_v4(nb, IFA_ADDRESS, a);
	nl_attr_v4(nb, IFA_LOCAL, a);
	nl_attr(nb, IFA_LABEL, "wan0", 5);
	nl_end(nb, start);
}

static void
assert_v4(const struct in6_addr *a, const char *text)
{
	char buf[INET6_ADDRSTRLEN];

	assert_true(pcp_addr_is_v4(a));
	assert_string_equal(pcp_addr_ntop(a, buf, sizeof(buf)), text);
}

static struct in6_addr
v4(const char *text)
{
	struct in_addr a;
	struct in6_addr m;

	assert_int_equal(inet_pton(AF_INET, text, &a), 1);
	pcp_addr_from_v4(&m, &a);
	return m;
}

/* ---- the parse ---------------------------------------------------------- */

static void
test_parse_new_and_del(void **state)
{
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[4];
	size_t n;

	(void)state;
	/* a DHCP renew with a new address: the old goes, the new comes */
	nl_addr_msg(&nb, RTM_DELADDR, TEST_WAN_INDEX, "198.51.100.2");
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 2);
	assert_int_equal(ev[0].kind, WANWATCH_ADDR_DEL);
	assert_int_equal(ev[0].ifindex, TEST_WAN_INDEX);
	assert_v4(&ev[0].addr, "198.51.100.2");
	assert_int_equal(ev[1].kind, WANWATCH_ADDR_NEW);
	assert_int_equal(ev[1].ifindex, TEST_WAN_INDEX);
	assert_v4(&ev[1].addr, "198.51.100.3");
}

static void
test_parse_ppp_local_wins(void **state)
{
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[2];
	size_t n, start;

	(void)state;
	/* point-to-point: IFA_ADDRESS is the peer, IFA_LOCAL ours, and the
	   kernel puts IFA_ADDRESS first */
	start = nl_begin(&nb, RTM_NEWADDR);
	nl_ifaddr(&nb, AF_INET, 12);
	nl_attr_v4(&nb, IFA_ADDRESS, "10.64.64.64");
	nl_attr_v4(&nb, IFA_LOCAL, "100.70.1.9");
	nl_end(&nb, start);
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 2, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].ifindex, 12);
	assert_v4(&ev[0].addr, "100.70.1.9");

	/* without IFA_LOCAL, IFA_ADDRESS is the address */
	nb.len = 0;
	start = nl_begin(&nb, RTM_DELADDR);
	nl_ifaddr(&nb, AF_INET, 12);
	nl_attr_v4(&nb, IFA_ADDRESS, "100.70.1.9");
	nl_end(&nb, start);
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 2, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 1);
	assert_int_equal(ev[0].kind, WANWATCH_ADDR_DEL);
	assert_v4(&ev[0].addr, "100.70.1.9");
}

static void
test_parse_skips_others(void **state)
{
	static const uint8_t v6[16] = { 0x20, 0x01, 0x0d, 0xb8, [15] = 1 };
	static const uint8_t v4_16[16] = { 198, 51, 100, 9 };
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[4];
	size_t n, start;

	(void)state;
	/* an IPv6 address */
	start = nl_begin(&nb, RTM_NEWADDR);
	nl_ifaddr(&nb, AF_INET6, TEST_WAN_INDEX);
	nl_attr(&nb, IFA_ADDRESS, v6, sizeof(v6));
	nl_end(&nb, start);
	/* a link message */
	start = nl_begin(&nb, RTM_NEWLINK);
	nl_ifaddr(&nb, AF_UNSPEC, TEST_WAN_INDEX);
	nl_end(&nb, start);
	/* an IPv4 message whose address attributes have the wrong size */
	start = nl_begin(&nb, RTM_NEWADDR);
	nl_ifaddr(&nb, AF_INET, TEST_WAN_INDEX);
	nl_attr(&nb, IFA_LOCAL, v4_16, sizeof(v4_16));
	nl_attr(&nb, IFA_ADDRESS, v4_16, 3);
	nl_end(&nb, start);
	/* NLMSG_DONE and NLMSG_NOOP */
	nl_end(&nb, nl_begin(&nb, NLMSG_DONE));
	nl_end(&nb, nl_begin(&nb, NLMSG_NOOP));
	/* and the one that counts, last */
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 1);
	assert_v4(&ev[0].addr, "198.51.100.3");
}

static void
test_parse_error_and_overrun(void **state)
{
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[4];
	struct nlmsgerr err;
	size_t n, start;

	(void)state;
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	start = nl_begin(&nb, NLMSG_ERROR);
	memset(&err, 0, sizeof(err));
	err.error = -ENOBUFS;
	nl_put(&nb, &err, sizeof(err));
	nl_end(&nb, start);
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_ERROR);
	assert_int_equal(n, 1);		/* what came before still counts */

	nb.len = 0;
	nl_end(&nb, nl_begin(&nb, NLMSG_OVERRUN));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_ERROR);
	assert_int_equal(n, 0);
}

static void
test_parse_truncated(void **state)
{
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[4];
	struct nlmsghdr nh;
	struct rtattr rta;
	size_t n, whole, cut, start;
	uint32_t bad;

	(void)state;
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	whole = nb.len;
	nl_addr_msg(&nb, RTM_DELADDR, TEST_WAN_INDEX, "198.51.100.2");
	/* every cut of the second message: the first is kept, the walk
	   stops, nothing is read past the cut */
	for (cut = whole + 1; cut < nb.len; cut++) {
		assert_int_not_equal(wanwatch_parse(nb.b, cut, ev, 4, &n),
		    WANWATCH_PARSE_OK);
		assert_int_equal(n, 1);
		assert_int_equal(ev[0].kind, WANWATCH_ADDR_NEW);
	}
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 2);

	/* a message length shorter than its header */
	memcpy(&nh, nb.b, sizeof(nh));
	nh.nlmsg_len = sizeof(nh) - 1;
	memcpy(nb.b, &nh, sizeof(nh));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 0);
	/* ... or longer than the buffer */
	bad = 0xffffffffu;
	memcpy(nb.b + offsetof(struct nlmsghdr, nlmsg_len), &bad, sizeof(bad));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 0);

	/* an address message too short for its struct ifaddrmsg */
	nb.len = 0;
	start = nl_begin(&nb, RTM_NEWADDR);
	nl_put(&nb, "\x02\x18", 2);
	nl_end(&nb, start);
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 0);

	/* an attribute running past its message, and one shorter than its
	   own header */
	nb.len = 0;
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	start = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(struct ifaddrmsg));
	memcpy(&rta, nb.b + start, sizeof(rta));
	rta.rta_len = 200;
	memcpy(nb.b + start, &rta, sizeof(rta));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 0);
	rta.rta_len = 2;
	memcpy(nb.b + start, &rta, sizeof(rta));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 0);

	/* bytes after the last message, too few for a header */
	nb.len = 0;
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	nl_put(&nb, "\0\0\0\0", 4);
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 4, &n),
	    WANWATCH_PARSE_TRUNCATED);
	assert_int_equal(n, 1);
	/* and nothing at all is nothing */
	assert_int_equal(wanwatch_parse(nb.b, 0, ev, 4, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 0);
}

static void
test_parse_more_than_max(void **state)
{
	struct nlbuf nb = { .len = 0 };
	struct wanwatch_event ev[3];
	size_t n;

	(void)state;
	nl_addr_msg(&nb, RTM_NEWADDR, 1, "192.0.2.1");
	nl_addr_msg(&nb, RTM_NEWADDR, 2, "192.0.2.2");
	nl_addr_msg(&nb, RTM_NEWADDR, 3, "192.0.2.3");
	memset(ev, 0xee, sizeof(ev));
	assert_int_equal(wanwatch_parse(nb.b, nb.len, ev, 2, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 3);		/* counted, not written */
	assert_int_equal(ev[1].ifindex, 2);
	assert_int_equal(ev[2].kind, 0xee);
}

static void
test_parse_unaligned_buffer(void **state)
{
	struct nlbuf nb = { .len = 0 };
	uint8_t shifted[sizeof(nb.b) + 1];
	struct wanwatch_event ev[2];
	size_t n;

	(void)state;
	/* headers are copied out, never read in place (STYLE.md habit 1) */
	nl_addr_msg(&nb, RTM_NEWADDR, TEST_WAN_INDEX, "198.51.100.3");
	memcpy(shifted + 1, nb.b, nb.len);
	assert_int_equal(wanwatch_parse(shifted + 1, nb.len, ev, 2, &n),
	    WANWATCH_PARSE_OK);
	assert_int_equal(n, 1);
	assert_v4(&ev[0].addr, "198.51.100.3");
}

/* ---- the debounce ------------------------------------------------------- */

static void
test_debounce_renew_is_one_change(void **state)
{
	struct wanwatch_state s;
	struct wanwatch_change chg;
	struct in6_addr a = v4("198.51.100.2"), b = v4("198.51.100.3");

	(void)state;
	wanwatch_state_init(&s, &a);
	assert_true(wanwatch_state_deadline(&s) == UINT64_MAX);
	/* delete: wait for a successor */
	wanwatch_state_note(&s, WANWATCH_ADDR_DEL, 1000);
	assert_true(wanwatch_state_deadline(&s) == 1000 + WANWATCH_DEBOUNCE_MS);
	/* the addition shortens the wait to the settle time */
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 1300);
	assert_true(wanwatch_state_deadline(&s) == 1300 + WANWATCH_SETTLE_MS);
	assert_true(wanwatch_state_settle(&s, &b, &chg));
	assert_true(chg.had);
	assert_true(chg.has);
	assert_v4(&chg.old, "198.51.100.2");
	assert_v4(&chg.addr, "198.51.100.3");
	assert_true(wanwatch_state_deadline(&s) == UINT64_MAX);
	/* the same address read again is no change */
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 5000);
	assert_false(wanwatch_state_settle(&s, &b, &chg));
}

static void
test_debounce_same_lease(void **state)
{
	struct wanwatch_state s;
	struct wanwatch_change chg;
	struct in6_addr a = v4("198.51.100.2");

	(void)state;
	/* a renew that deletes and re-adds the same address, or a second
	   address coming and going: no change */
	wanwatch_state_init(&s, &a);
	wanwatch_state_note(&s, WANWATCH_ADDR_DEL, 0);
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 10);
	assert_false(wanwatch_state_settle(&s, &a, &chg));
}

static void
test_debounce_loss_and_return(void **state)
{
	struct wanwatch_state s;
	struct wanwatch_change chg;
	struct in6_addr a = v4("100.70.1.9"), b = v4("100.70.2.1");

	(void)state;
	/* PPP down: the address goes and nothing follows in time */
	wanwatch_state_init(&s, &a);
	wanwatch_state_note(&s, WANWATCH_ADDR_DEL, 0);
	assert_true(wanwatch_state_settle(&s, NULL, &chg));
	assert_true(chg.had);
	assert_false(chg.has);
	assert_v4(&chg.old, "100.70.1.9");
	/* still none: said once */
	wanwatch_state_note(&s, WANWATCH_ADDR_DEL, 3000);
	assert_false(wanwatch_state_settle(&s, NULL, &chg));
	/* back with the same address: reported, old == new */
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 9000);
	assert_true(wanwatch_state_settle(&s, &a, &chg));
	assert_true(chg.had && chg.has);
	assert_true(IN6_ARE_ADDR_EQUAL(&chg.old, &chg.addr));
	/* gone again, back with another: a change from the last known */
	wanwatch_state_note(&s, WANWATCH_ADDR_DEL, 20000);
	assert_true(wanwatch_state_settle(&s, NULL, &chg));
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 30000);
	assert_true(wanwatch_state_settle(&s, &b, &chg));
	assert_true(chg.had && chg.has);
	assert_v4(&chg.old, "100.70.1.9");
	assert_v4(&chg.addr, "100.70.2.1");
}

static void
test_debounce_first_address(void **state)
{
	struct wanwatch_state s;
	struct wanwatch_change chg;
	struct in6_addr a = v4("198.51.100.2");

	(void)state;
	/* started before the WAN had an address */
	wanwatch_state_init(&s, NULL);
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 0);
	assert_false(wanwatch_state_settle(&s, NULL, &chg));
	wanwatch_state_note(&s, WANWATCH_ADDR_NEW, 100);
	assert_true(wanwatch_state_settle(&s, &a, &chg));
	assert_false(chg.had);
	assert_true(chg.has);
	assert_v4(&chg.addr, "198.51.100.2");
}

/* ---- the socket ---------------------------------------------------------- */

static void
test_watch_fn(void *arg, const struct wanwatch_change *chg)
{
	(void)chg;
	(*(int *)arg)++;
}

static void
test_open_close(void **state)
{
	struct event_base *base = event_base_new();
	struct wanwatch *w;
	int calls = 0;

	(void)state;
	assert_non_null(base);
	/* any user may listen to address events; nothing changes on lo */
	w = wanwatch_open(base, "lo", test_watch_fn, &calls);
	assert_non_null(w);
	assert_int_equal(event_base_loop(base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(calls, 0);
	wanwatch_close(w);
	/* a name no interface can have */
	assert_null(wanwatch_open(base, "a-name-far-too-long-for-ifnamsiz",
	    test_watch_fn, &calls));
	/* an interface that does not exist (yet) is watched for */
	w = wanwatch_open(base, "ppp-none9", test_watch_fn, &calls);
	assert_non_null(w);
	wanwatch_close(w);
	wanwatch_close(NULL);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_parse_new_and_del),
		cmocka_unit_test(test_parse_ppp_local_wins),
		cmocka_unit_test(test_parse_skips_others),
		cmocka_unit_test(test_parse_error_and_overrun),
		cmocka_unit_test(test_parse_truncated),
		cmocka_unit_test(test_parse_more_than_max),
		cmocka_unit_test(test_parse_unaligned_buffer),
		cmocka_unit_test(test_debounce_renew_is_one_change),
		cmocka_unit_test(test_debounce_same_lease),
		cmocka_unit_test(test_debounce_loss_and_return),
		cmocka_unit_test(test_debounce_first_address),
		cmocka_unit_test(test_open_close),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
