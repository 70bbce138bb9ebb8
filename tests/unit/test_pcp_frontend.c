/*
 * test_pcp_frontend.c - the PCP front-end's sockets on the loopback
 * interface: open/close, refusal of unknown interfaces, the interface check
 * (S-01), replies from the address the request went to, the NAT-PMP hook,
 * and one MAP answered by a real proxy core (no upstream: the gateway is
 * the last NAT). The network-namespace tests cover real LAN/WAN interfaces.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "map.h"
#include "pcp_frontend.h"
#include "pcp_server.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"

#define TEST_EPOCH	42

struct fixture {
	struct event_base	*base;
	struct pcp_frontend	*fe;
	uint16_t		 port;
	int			 natpmp_calls;
	struct pcp_frontend_peer natpmp_peer;
};

static struct pcp_msg msg, resp;

static uint32_t
test_epoch(void *arg)
{
	(void)arg;
	return TEST_EPOCH;
}

static uint64_t
test_now(void *arg)
{
	(void)arg;
	return 1000;
}

/* A port of our own, away from 5351 and from parallel runs. */
static uint16_t
test_port(void)
{
	return (uint16_t)(20000 + getpid() % 20000);
}

static void
params_init(struct pcp_frontend_params *p, const char *const *lan,
    size_t n_lan, uint16_t port)
{
	memset(p, 0, sizeof(*p));
	p->lan_ifnames = lan;
	p->n_lan = n_lan;
	p->epoch = test_epoch;
	p->now = test_now;
	p->port = port;
}

static void
test_open_refuses(void **state)
{
	static const char *const nope[] = { "lo", "iwfd-nope0" };
	struct pcp_frontend_params p;
	struct event_base *base;

	(void)state;
	assert_non_null(base = event_base_new());
	/* an interface that does not exist: refused, nothing left open */
	params_init(&p, nope, 2, test_port());
	assert_null(pcp_frontend_open(base, &p));
	/* no LAN interface at all */
	params_init(&p, nope, 0, test_port());
	assert_null(pcp_frontend_open(base, &p));
	/* no clock */
	params_init(&p, nope, 1, test_port());
	p.epoch = NULL;
	assert_null(pcp_frontend_open(base, &p));
	assert_null(pcp_frontend_open(base, NULL));
	/* after the refusals the port is free: opening works */
	params_init(&p, nope, 1, test_port());
	{
		struct pcp_frontend *fe = pcp_frontend_open(base, &p);

		assert_non_null(fe);
		pcp_frontend_close(fe);
	}
	pcp_frontend_close(NULL);
	event_base_free(base);
}

/* ---- a client on the loopback ---- */

static int
client_socket(int family)
{
	struct timeval tv = { 0, 300 * 1000 };
	int fd;

	fd = socket(family, SOCK_DGRAM, 0);
	assert_true(fd >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	return fd;
}

static void
client_send4(int fd, uint16_t port, const uint8_t *buf, size_t len)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sin,
	    sizeof(sin)), (ssize_t)len);
}

/* Let the front-end read what is queued, then read the reply (or time
   out: -1). The reply must come from 127.0.0.1:port. */
static ssize_t
client_recv4(struct fixture *f, int fd, uint8_t *buf, size_t cap)
{
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n;

	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
	n = recvfrom(fd, buf, cap, 0, (struct sockaddr *)&from, &fl);
	if (n >= 0) {
		assert_int_equal(from.sin_addr.s_addr,
		    htonl(INADDR_LOOPBACK));
		assert_int_equal(ntohs(from.sin_port), f->port);
	}
	return n;
}

static void
announce_request(uint8_t *buf, size_t *len, const struct in6_addr *client)
{
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	msg.client_addr = *client;
	*len = pcp_encode(&msg, buf, PCP_MAX_SIZE);
	assert_int_equal(*len, PCP_HDR_SIZE);
}

static void
test_natpmp_hook(void *arg, struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len)
{
	struct fixture *f = arg;
	uint8_t echo[4] = { 0, 128, 0, 0 };

	assert_int_equal(len, 2);
	assert_int_equal(pkt[0], 0);
	f->natpmp_calls++;
	f->natpmp_peer = *peer;
	/* the NAT-PMP front-end answers through the shared socket */
	assert_true(pcp_frontend_send(fe, peer, echo, sizeof(echo)));
}

static int
setup_lo(void **state, bool hook)
{
	static const char *const lo[] = { "lo" };
	static struct fixture f;
	struct pcp_frontend_params p;

	memset(&f, 0, sizeof(f));
	f.port = test_port();
	assert_non_null(f.base = event_base_new());
	params_init(&p, lo, 1, f.port);
	if (hook) {
		p.natpmp_input = test_natpmp_hook;
		p.natpmp_arg = &f;
	}
	assert_non_null(f.fe = pcp_frontend_open(f.base, &p));
	*state = &f;
	return 0;
}

static int
setup_plain(void **state)
{
	return setup_lo(state, false);
}

static int
setup_hook(void **state)
{
	return setup_lo(state, true);
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	pcp_frontend_close(f->fe);
	event_base_free(f->base);
	return 0;
}

static void
test_loopback_replies(void **state)
{
	struct fixture *f = *state;
	struct in6_addr lo4;
	struct in_addr a = { htonl(INADDR_LOOPBACK) };
	uint8_t buf[PCP_MAX_SIZE], rep[2048];
	uint8_t natpmp[2] = { 0, 0 };
	size_t len;
	ssize_t n;
	int fd = client_socket(AF_INET);

	pcp_addr_from_v4(&lo4, &a);
	/* ANNOUNCE: SUCCESS with our epoch, from the address we asked */
	announce_request(buf, &len, &lo4);
	client_send4(fd, f->port, buf, len);
	n = client_recv4(f, fd, rep, sizeof(rep));
	assert_int_equal(n, PCP_HDR_SIZE);
	assert_true(pcp_decode_response(rep, (size_t)n, &resp));
	assert_int_equal(resp.opcode, PCP_OP_ANNOUNCE);
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.epoch, TEST_EPOCH);

	/* NAT-PMP without a NAT-PMP front-end: UNSUPP_VERSION */
	client_send4(fd, f->port, natpmp, sizeof(natpmp));
	n = client_recv4(f, fd, rep, sizeof(rep));
	assert_int_equal(n, PCP_HDR_SIZE);
	assert_int_equal(rep[3], PCP_UNSUPP_VERSION);

	/* a MAP the front-end refuses itself (SCTP): no core involved */
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_MAP;
	msg.lifetime = 3600;
	msg.client_addr = lo4;
	msg.protocol = 132;
	msg.internal_port = 9;
	len = pcp_encode(&msg, buf, sizeof(buf));
	client_send4(fd, f->port, buf, len);
	n = client_recv4(f, fd, rep, sizeof(rep));
	assert_int_equal(n, PCP_MAP_MSG_SIZE);
	assert_int_equal(rep[3], PCP_UNSUPP_PROTOCOL);

	/* an oversized datagram is MALFORMED_REQUEST, cut to 1100 */
	memset(rep, 0, sizeof(rep));
	memcpy(rep, buf, len);
	client_send4(fd, f->port, rep, 1500);
	n = client_recv4(f, fd, rep, sizeof(rep));
	assert_int_equal(n, PCP_MAX_SIZE);
	assert_int_equal(rep[3], PCP_MALFORMED_REQUEST);

	/* a response (R set) is dropped without a word */
	client_send4(fd, f->port, rep, PCP_HDR_SIZE);
	assert_int_equal(client_recv4(f, fd, rep, sizeof(rep)), -1);

	assert_int_equal(pcp_frontend_stats(f->fe)->replied, 4);
	assert_int_equal(pcp_frontend_stats(f->fe)->dropped, 1);
	assert_int_equal(pcp_frontend_stats(f->fe)->not_lan, 0);
	close(fd);
}

static void
test_loopback_natpmp_hook(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in me;
	socklen_t ml = sizeof(me);
	uint8_t natpmp[2] = { 0, 0 }, rep[64];
	ssize_t n;
	int fd = client_socket(AF_INET);

	client_send4(fd, f->port, natpmp, sizeof(natpmp));
	n = client_recv4(f, fd, rep, sizeof(rep));
	assert_int_equal(n, 4);
	assert_int_equal(rep[1], 128);
	assert_int_equal(f->natpmp_calls, 1);
	/* the hook saw who asked, on which interface, at which address */
	assert_int_equal(getsockname(fd, (struct sockaddr *)&me, &ml), 0);
	assert_int_equal(f->natpmp_peer.src.ss_family, AF_INET);
	assert_int_equal(((struct sockaddr_in *)&f->natpmp_peer.src)->sin_port,
	    me.sin_port);
	assert_int_equal(f->natpmp_peer.ifindex, if_nametoindex("lo"));
	assert_true(pcp_addr_is_v4(&f->natpmp_peer.dst));
	assert_int_equal(f->natpmp_peer.dst.s6_addr[12], 127);
	assert_int_equal(pcp_frontend_stats(f->fe)->natpmp, 1);
	close(fd);
}

static void
test_loopback_ipv6(void **state)
{
	struct fixture *f = *state;
	struct sockaddr_in6 sin6, from;
	socklen_t fl = sizeof(from);
	uint8_t buf[PCP_MAX_SIZE], rep[64];
	size_t len;
	ssize_t n;
	int fd;

	if ((fd = socket(AF_INET6, SOCK_DGRAM, 0)) == -1) {
		skip();
		return;
	}
	memset(&sin6, 0, sizeof(sin6));
	sin6.sin6_family = AF_INET6;
	sin6.sin6_port = htons(f->port);
	sin6.sin6_addr = in6addr_loopback;
	if (connect(fd, (struct sockaddr *)&sin6, sizeof(sin6)) == -1) {
		close(fd);
		skip();		/* no ::1 on this host */
		return;
	}
	close(fd);
	fd = client_socket(AF_INET6);
	announce_request(buf, &len, &in6addr_loopback);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sin6,
	    sizeof(sin6)), (ssize_t)len);
	assert_int_equal(event_base_loop(f->base, EVLOOP_NONBLOCK), 0);
	n = recvfrom(fd, rep, sizeof(rep), 0, (struct sockaddr *)&from, &fl);
	assert_int_equal(n, PCP_HDR_SIZE);
	assert_memory_equal(&from.sin6_addr, &in6addr_loopback, 16);
	assert_int_equal(ntohs(from.sin6_port), f->port);
	assert_int_equal(rep[3], PCP_SUCCESS);
	close(fd);
}

/* X-02 (RFC 6887 §18.3.2): from the LAN interface but from a source
   outside every LAN prefix: no answer in either protocol, not even an
   error (it would go to a forged address); the policy is read live, so a
   reload that adds the prefix lets the same host in. */
static void
test_not_lan_src_dropped(void **state)
{
	static const char *const lo[] = { "lo" };
	struct policy_prefix pfx;
	struct policy pol;
	struct pcp_frontend_params p;
	struct pcp_frontend *fe;
	struct fixture f;
	uint8_t buf[PCP_MAX_SIZE], rep[64];
	uint8_t natpmp[2] = { 0, 0 };
	struct in6_addr lo4, ten;
	struct in_addr a = { htonl(INADDR_LOOPBACK) };
	struct in_addr t = { htonl(0x0a000000) };	/* 10.0.0.0 */
	size_t len;
	int fd;

	(void)state;
	pcp_addr_from_v4(&lo4, &a);
	pcp_addr_from_v4(&ten, &t);
	memset(&pol, 0, sizeof(pol));
	pfx.addr = ten;
	pfx.prefix_len = 96 + 8;
	pol.lan_prefixes = &pfx;
	pol.n_lan_prefixes = 1;
	memset(&f, 0, sizeof(f));
	assert_non_null(f.base = event_base_new());
	f.port = test_port();
	params_init(&p, lo, 1, f.port);
	p.policy = &pol;
	assert_non_null(fe = pcp_frontend_open(f.base, &p));
	fd = client_socket(AF_INET);
	announce_request(buf, &len, &lo4);
	client_send4(fd, f.port, buf, len);
	assert_int_equal(client_recv4(&f, fd, rep, sizeof(rep)), -1);
	client_send4(fd, f.port, natpmp, sizeof(natpmp));
	assert_int_equal(client_recv4(&f, fd, rep, sizeof(rep)), -1);
	assert_int_equal(pcp_frontend_stats(fe)->not_lan_src, 2);
	assert_int_equal(pcp_frontend_stats(fe)->replied, 0);

	/* 127.0.0.0/8 becomes LAN: answered */
	pfx.addr = lo4;
	client_send4(fd, f.port, buf, len);
	assert_int_equal(client_recv4(&f, fd, rep, sizeof(rep)),
	    PCP_HDR_SIZE);
	assert_int_equal(pcp_frontend_stats(fe)->not_lan_src, 2);
	close(fd);
	pcp_frontend_close(fe);
	event_base_free(f.base);
}

/* S-01: a datagram that arrived on an interface outside the LAN set gets
   no answer at all. Needs a second interface to call "the LAN". */
static void
test_not_lan_dropped(void **state)
{
	struct if_nameindex *ifs, *i;
	const char *lan[1] = { NULL };
	struct pcp_frontend_params p;
	struct event_base *base;
	struct pcp_frontend *fe;
	struct fixture f;
	uint8_t buf[PCP_MAX_SIZE], rep[64];
	struct in6_addr lo4;
	struct in_addr a = { htonl(INADDR_LOOPBACK) };
	size_t len;
	int fd;

	(void)state;
	assert_non_null(ifs = if_nameindex());
	for (i = ifs; i->if_index != 0 && lan[0] == NULL; i++)
		if (strcmp(i->if_name, "lo") != 0)
			lan[0] = i->if_name;
	if (lan[0] == NULL) {
		if_freenameindex(ifs);
		skip();
		return;
	}
	assert_non_null(base = event_base_new());
	params_init(&p, lan, 1, test_port());
	assert_non_null(fe = pcp_frontend_open(base, &p));
	memset(&f, 0, sizeof(f));
	f.base = base;
	f.port = test_port();
	fd = client_socket(AF_INET);
	pcp_addr_from_v4(&lo4, &a);
	announce_request(buf, &len, &lo4);
	client_send4(fd, f.port, buf, len);
	assert_int_equal(client_recv4(&f, fd, rep, sizeof(rep)), -1);
	assert_int_equal(pcp_frontend_stats(fe)->not_lan, 1);
	assert_int_equal(pcp_frontend_stats(fe)->replied, 0);
	close(fd);
	pcp_frontend_close(fe);
	event_base_free(base);
	if_freenameindex(ifs);
}

/* One MAP through a real core: no upstream, no backend, the gateway is
   the last NAT and answers at once (proxy_submit returns true). */
static void
test_map_through_core(void **state)
{
	static const char *const lo[] = { "lo" };
	struct policy_prefix lan_prefix;
	struct proxy_params pp;
	struct pcp_frontend_params p;
	struct policy pol;
	struct fixture f;
	struct table *t;
	struct proxy *px;
	struct in6_addr lo4, wan;
	struct in_addr a = { htonl(INADDR_LOOPBACK) };
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	size_t len;
	ssize_t n;
	int fd;

	(void)state;
	pcp_addr_from_v4(&lo4, &a);
	assert_true(pcp_addr_pton("203.0.113.9", &wan));
	memset(&lan_prefix, 0, sizeof(lan_prefix));
	assert_true(pcp_addr_pton("127.0.0.0", &lan_prefix.addr));
	lan_prefix.prefix_len = 96 + 8;
	memset(&pol, 0, sizeof(pol));
	pol.lan_prefixes = &lan_prefix;
	pol.n_lan_prefixes = 1;
	pol.min_lifetime = 120;
	pol.max_lifetime = 86400;
	assert_non_null(t = table_new());
	memset(&pp, 0, sizeof(pp));
	pp.nat = PROXY_NAT_NONE;
	pp.table = t;
	pp.policy = &pol;
	pp.wan_addr = wan;
	pp.wan_addr_known = true;
	assert_non_null(px = proxy_new(&pp));

	memset(&f, 0, sizeof(f));
	f.port = test_port();
	assert_non_null(f.base = event_base_new());
	params_init(&p, lo, 1, f.port);
	p.proxy = px;
	assert_non_null(f.fe = pcp_frontend_open(f.base, &p));

	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_MAP;
	msg.lifetime = 3600;
	msg.client_addr = lo4;
	msg.protocol = MAP_PROTO_TCP;
	msg.internal_port = 8080;
	msg.nonce[0] = 1;
	assert_true(pcp_addr_pton("0.0.0.0", &msg.ext_addr));
	len = pcp_encode(&msg, buf, sizeof(buf));
	fd = client_socket(AF_INET);
	client_send4(fd, f.port, buf, len);
	n = client_recv4(&f, fd, rep, sizeof(rep));
	assert_int_equal(n, PCP_MAP_MSG_SIZE);
	assert_true(pcp_decode_response(rep, (size_t)n, &resp));
	print_message("MAP through the core: %s\n",
	    pcp_result_name(resp.result));
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.internal_port, 8080);
	assert_int_equal(resp.epoch, TEST_EPOCH);
	assert_true(resp.lifetime > 0);
	assert_true(resp.ext_port != 0);
	assert_int_equal(pcp_frontend_stats(f.fe)->submitted, 1);
	assert_int_equal(pcp_frontend_stats(f.fe)->pending, 0);
	close(fd);
	pcp_frontend_close(f.fe);
	event_base_free(f.base);
	proxy_free(px);
	table_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_open_refuses),
		cmocka_unit_test_setup_teardown(test_loopback_replies,
		    setup_plain, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_natpmp_hook,
		    setup_hook, teardown),
		cmocka_unit_test_setup_teardown(test_loopback_ipv6,
		    setup_plain, teardown),
		cmocka_unit_test(test_not_lan_dropped),
		cmocka_unit_test(test_not_lan_src_dropped),
		cmocka_unit_test(test_map_through_core),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
