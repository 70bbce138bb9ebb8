/*
 * test_pcp_relay.c - RFC 7648 §3.4.2 relaying of unknown opcodes on the
 * loopback: a client on 127.0.0.3 asks the PCP front-end on 127.0.0.1, the
 * relay sends to a fake upstream server on 127.0.0.2 (a plain socket of
 * this test), which checks what arrived and answers as the test says.
 * Covered: the Client IP field rewritten to the gateway's own source
 * address, each transaction from its own socket, the reply with our epoch
 * (P-11) and nothing else changed, the reserved bits given back, upstream
 * UNSUPP_VERSION / ADDRESS_MISMATCH and ICMP errors as NETWORK_FAILURE,
 * junk ignored, the timeout (no reply), the bound on open transactions
 * (NO_RESOURCES), and no relay without a server or with relaying off.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "pcp_frontend.h"
#include "pcp_relay.h"
#include "pcp_server.h"
#include "pcp_wire.h"

#define TEST_EPOCH		42
#define UPSTREAM_EPOCH		999
#define TEST_OPCODE		100
#define TEST_TIMEOUT_MS		1000
#define TEST_MAX_ACTIVE		2
#define GATEWAY_V4		0x7f000001	/* 127.0.0.1 */
#define UPSTREAM_V4		0x7f000002	/* 127.0.0.2 */
#define CLIENT_V4		0x7f000003	/* 127.0.0.3 */

struct fixture {
	struct event_base	*base;
	struct pcp_frontend	*fe;
	uint16_t		 port;		/* the front-end's */
	int			 upstream;	/* the fake server's socket */
	uint16_t		 upstream_port;
	int			 client;
};

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

/* A port of our own, away from 5351, test_pcp_frontend and parallel runs. */
static uint16_t
test_port(void)
{
	return (uint16_t)(40000 + getpid() % 20000);
}

static void
sin_init(struct sockaddr_in *sin, uint32_t addr, uint16_t port)
{
	memset(sin, 0, sizeof(*sin));
	sin->sin_family = AF_INET;
	sin->sin_addr.s_addr = htonl(addr);
	sin->sin_port = htons(port);
}

static void
v4_mapped(struct in6_addr *a, uint32_t addr)
{
	struct in_addr v4 = { htonl(addr) };

	pcp_addr_from_v4(a, &v4);
}

/* A UDP socket bound to addr (port 0: any), reads time out. */
static int
bound_socket(uint32_t addr, uint16_t *port)
{
	struct timeval tv = { 0, 300 * 1000 };
	struct sockaddr_in sin;
	socklen_t len = sizeof(sin);
	int fd;

	assert_true((fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
	sin_init(&sin, addr, 0);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	assert_int_equal(getsockname(fd, (struct sockaddr *)&sin, &len), 0);
	if (port != NULL)
		*port = ntohs(sin.sin_port);
	return fd;
}

/* Run the loop for ms milliseconds. */
static void
pump(struct fixture *f, unsigned int ms)
{
	struct timeval tv = { 0, (suseconds_t)ms * 1000 };

	assert_int_equal(event_base_loopexit(f->base, &tv), 0);
	assert_true(event_base_dispatch(f->base) >= 0);
}

static void
params_init(struct pcp_frontend_params *p, const char *const *lan,
    uint16_t port, uint16_t upstream_port)
{
	memset(p, 0, sizeof(*p));
	p->lan_ifnames = lan;
	p->n_lan = 1;
	p->epoch = test_epoch;
	p->now = test_now;
	p->port = port;
	p->relay_unknown = true;
	v4_mapped(&p->relay_server, UPSTREAM_V4);
	p->relay_port = upstream_port;
	p->relay_max_active = TEST_MAX_ACTIVE;
	p->relay_timeout_ms = TEST_TIMEOUT_MS;
}

static int
setup(void **state)
{
	static const char *const lo[] = { "lo" };
	static struct fixture f;
	struct pcp_frontend_params p;

	memset(&f, 0, sizeof(f));
	f.port = test_port();
	assert_non_null(f.base = event_base_new());
	f.upstream = bound_socket(UPSTREAM_V4, &f.upstream_port);
	f.client = bound_socket(CLIENT_V4, NULL);
	params_init(&p, lo, f.port, f.upstream_port);
	assert_non_null(f.fe = pcp_frontend_open(f.base, &p));
	assert_non_null(pcp_frontend_relay_stats(f.fe));
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	pcp_frontend_close(f->fe);
	event_base_free(f->base);
	close(f->upstream);
	close(f->client);
	return 0;
}

/* ---- the client and the fake server ---- */

/* An opcode-op request from the client: lifetime 600, an 8-octet body. */
static size_t
request(uint8_t op, uint8_t tag, uint8_t *buf)
{
	struct in6_addr me;
	size_t i;

	memset(buf, 0, PCP_HDR_SIZE + 8);
	buf[0] = PCP_VERSION;
	buf[1] = op;
	buf[6] = 0x02;
	buf[7] = 0x58;
	v4_mapped(&me, CLIENT_V4);
	memcpy(buf + 8, me.s6_addr, sizeof(me.s6_addr));
	for (i = 0; i < 8; i++)
		buf[PCP_HDR_SIZE + i] = (uint8_t)(tag + i);
	return PCP_HDR_SIZE + 8;
}

static void
client_send(struct fixture *f, const uint8_t *buf, size_t len)
{
	struct sockaddr_in to;

	sin_init(&to, GATEWAY_V4, f->port);
	assert_int_equal(sendto(f->client, buf, len, 0, (struct sockaddr *)&to,
	    sizeof(to)), (ssize_t)len);
}

/* The client's next datagram (-1: none; the loop has run, pump(), so
   whatever was sent is queued already); it must come from the address
   and port it asked (RFC 6887 §8.3). */
static ssize_t
client_recv(struct fixture *f, uint8_t *buf, size_t cap)
{
	struct sockaddr_in from;
	socklen_t fl = sizeof(from);
	ssize_t n;

	n = recvfrom(f->client, buf, cap, MSG_DONTWAIT,
	    (struct sockaddr *)&from, &fl);
	if (n >= 0) {
		assert_int_equal(from.sin_addr.s_addr, htonl(GATEWAY_V4));
		assert_int_equal(ntohs(from.sin_port), f->port);
	}
	return n;
}

/*
 * What the fake server received: one relayed request, which must be the
 * client's packet with the Client IP field set to the address it came
 * from (the gateway's own, 127.0.0.1), sent from a port that is not the
 * front-end's. Returns its length; *from is where to answer.
 */
static size_t
upstream_recv(struct fixture *f, const uint8_t *sent, size_t sent_len,
    uint8_t *buf, struct sockaddr_in *from)
{
	socklen_t fl = sizeof(*from);
	struct in6_addr src;
	ssize_t n;

	n = recvfrom(f->upstream, buf, PCP_MAX_SIZE, 0,
	    (struct sockaddr *)from, &fl);
	assert_int_equal(n, (ssize_t)sent_len);
	assert_int_equal(from->sin_addr.s_addr, htonl(GATEWAY_V4));
	assert_int_not_equal(ntohs(from->sin_port), f->port);
	pcp_addr_from_v4(&src, &from->sin_addr);
	/* RFC 6887 §8.2 at the server: Client IP == source */
	assert_memory_equal(buf + 8, src.s6_addr, 16);
	/* everything else as the client sent it */
	assert_memory_equal(buf, sent, 8);
	assert_memory_equal(buf + PCP_HDR_SIZE, sent + PCP_HDR_SIZE,
	    sent_len - PCP_HDR_SIZE);
	return (size_t)n;
}

static void
upstream_send(struct fixture *f, const struct sockaddr_in *to,
    const uint8_t *buf, size_t len)
{
	assert_int_equal(sendto(f->upstream, buf, len, 0,
	    (const struct sockaddr *)to, sizeof(*to)), (ssize_t)len);
}

/* A response to req from the fake server: result, lifetime 1234, epoch
   999, the request's body and 4 more octets. */
static size_t
upstream_reply(const uint8_t *req, size_t len, uint8_t result, uint8_t *out)
{
	memset(out, 0, len + 4);
	out[0] = PCP_VERSION;
	out[1] = req[1] | PCP_R_BIT;
	out[3] = result;
	out[6] = 0x04;			/* lifetime 1234 */
	out[7] = 0xd2;
	out[10] = UPSTREAM_EPOCH >> 8;
	out[11] = UPSTREAM_EPOCH & 0xff;
	memcpy(out + PCP_HDR_SIZE, req + PCP_HDR_SIZE, len - PCP_HDR_SIZE);
	memset(out + len, 0x5a, 4);
	return len + 4;
}

static uint32_t
epoch_of(const uint8_t *buf)
{
	return (uint32_t)buf[8] << 24 | (uint32_t)buf[9] << 16 |
	    (uint32_t)buf[10] << 8 | buf[11];
}

/* ---- the tests ---- */

static void
test_relay_reply(void **state)
{
	struct fixture *f = *state;
	uint8_t req[PCP_MAX_SIZE], up[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	uint8_t got[2048], junk[PCP_HDR_SIZE];
	struct sockaddr_in from;
	size_t len, rlen;
	ssize_t n;

	len = request(TEST_OPCODE, 0xa0, req);
	client_send(f, req, len);
	pump(f, 20);
	upstream_recv(f, req, len, up, &from);
	assert_int_equal(pcp_frontend_stats(f->fe)->relayed, 1);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 1);
	/* a datagram that is no reply (R clear) is ignored */
	memcpy(junk, up, sizeof(junk));
	upstream_send(f, &from, junk, sizeof(junk));
	pump(f, 20);
	assert_int_equal(client_recv(f, got, sizeof(got)), -1);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->ignored, 1);
	/* the answer, with the upstream's epoch 999 */
	rlen = upstream_reply(up, len, PCP_SUCCESS, rep);
	upstream_send(f, &from, rep, rlen);
	pump(f, 20);
	n = client_recv(f, got, sizeof(got));
	assert_int_equal(n, (ssize_t)rlen);
	/* P-11: our epoch; everything else as the server sent it */
	assert_int_equal(epoch_of(got), TEST_EPOCH);
	assert_memory_equal(got, rep, 8);
	assert_memory_equal(got + 12, rep + 12, rlen - 12);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->replied, 1);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 0);
	/* the transaction is over: a second copy of the reply goes nowhere */
	upstream_send(f, &from, rep, rlen);
	pump(f, 20);
	assert_int_equal(client_recv(f, got, sizeof(got)), -1);
}

/* RFC 6887 §7.2: a server that could not parse the request puts the
   Client IP's last 96 bits in the reserved field; the client gets its own. */
static void
test_relay_reserved_bits(void **state)
{
	struct fixture *f = *state;
	uint8_t req[PCP_MAX_SIZE], up[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	uint8_t got[2048];
	struct sockaddr_in from;
	size_t len, rlen;

	len = request(TEST_OPCODE, 0x10, req);
	client_send(f, req, len);
	pump(f, 20);
	upstream_recv(f, req, len, up, &from);
	rlen = upstream_reply(up, len, PCP_UNSUPP_OPCODE, rep);
	memcpy(rep + 12, up + 12, 12);	/* ::ffff:127.0.0.1's tail */
	upstream_send(f, &from, rep, rlen);
	pump(f, 20);
	assert_int_equal(client_recv(f, got, sizeof(got)), (ssize_t)rlen);
	assert_int_equal(got[3], PCP_UNSUPP_OPCODE);
	assert_int_equal(epoch_of(got), TEST_EPOCH);
	assert_memory_equal(got + 12, req + 12, 12);	/* 127.0.0.3's */
	assert_memory_equal(got + PCP_HDR_SIZE, rep + PCP_HDR_SIZE,
	    rlen - PCP_HDR_SIZE);
}

/* spec/pcp.md §2.4: codes about the relay's own leg are NETWORK_FAILURE
   over the client's request. */
static void
test_relay_leg_errors(void **state)
{
	static const uint8_t codes[] = { PCP_ADDRESS_MISMATCH,
	    PCP_UNSUPP_VERSION };
	struct fixture *f = *state;
	uint8_t req[PCP_MAX_SIZE], up[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	uint8_t got[2048], exp[PCP_MAX_SIZE];
	struct sockaddr_in from;
	size_t i, len, rlen, elen;

	for (i = 0; i < sizeof(codes); i++) {
		len = request(TEST_OPCODE, 0x20, req);
		client_send(f, req, len);
		pump(f, 20);
		upstream_recv(f, req, len, up, &from);
		rlen = upstream_reply(up, len, codes[i], rep);
		if (codes[i] == PCP_UNSUPP_VERSION)
			rep[0] = 1;	/* §9: the version it speaks */
		upstream_send(f, &from, rep, rlen);
		pump(f, 20);
		elen = pcp_server_refuse(req, len, PCP_NETWORK_FAILURE,
		    TEST_EPOCH, exp, sizeof(exp));
		assert_int_equal(client_recv(f, got, sizeof(got)),
		    (ssize_t)elen);
		assert_memory_equal(got, exp, elen);
	}
}

/* No reply in time: nothing is sent, the transaction ends. */
static void
test_relay_timeout(void **state)
{
	struct fixture *f = *state;
	uint8_t req[PCP_MAX_SIZE], up[PCP_MAX_SIZE], got[2048];
	struct sockaddr_in from;
	size_t len;

	len = request(TEST_OPCODE, 0x30, req);
	client_send(f, req, len);
	pump(f, 20);
	upstream_recv(f, req, len, up, &from);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 1);
	pump(f, TEST_TIMEOUT_MS + 100);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->timeouts, 1);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 0);
	assert_int_equal(client_recv(f, got, sizeof(got)), -1);
}

/* At most TEST_MAX_ACTIVE transactions; the next request is answered
   NO_RESOURCES (short lifetime) at once, and relaying resumes when one
   ends. */
static void
test_relay_bound(void **state)
{
	struct fixture *f = *state;
	uint8_t req[3][PCP_MAX_SIZE], up[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	uint8_t got[2048], exp[PCP_MAX_SIZE];
	struct sockaddr_in from[2];
	size_t i, len = 0, rlen, elen;

	for (i = 0; i < 3; i++) {
		len = request(TEST_OPCODE, (uint8_t)(0x40 + 0x10 * i), req[i]);
		client_send(f, req[i], len);
	}
	pump(f, 20);
	elen = pcp_server_refuse(req[2], len, PCP_NO_RESOURCES, TEST_EPOCH,
	    exp, sizeof(exp));
	assert_int_equal(client_recv(f, got, sizeof(got)), (ssize_t)elen);
	assert_memory_equal(got, exp, elen);
	assert_int_equal(got[3], PCP_NO_RESOURCES);
	assert_int_equal(got[7], PCP_LIFETIME_SHORT_ERR);
	assert_int_equal(pcp_frontend_stats(f->fe)->relay_refused, 1);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->busy, 1);
	/* the first two went up, each from its own socket */
	upstream_recv(f, req[0], len, up, &from[0]);
	upstream_recv(f, req[1], len, up, &from[1]);
	assert_int_not_equal(from[0].sin_port, from[1].sin_port);
	assert_int_equal(recv(f->upstream, up, sizeof(up), MSG_DONTWAIT), -1);
	/* the second's answer goes back although the first's is pending:
	   the socket tells them apart, not the (unparsed) body */
	rlen = upstream_reply(up, len, PCP_SUCCESS, rep);
	upstream_send(f, &from[1], rep, rlen);
	pump(f, 20);
	assert_int_equal(client_recv(f, got, sizeof(got)), (ssize_t)rlen);
	assert_memory_equal(got + PCP_HDR_SIZE, req[1] + PCP_HDR_SIZE,
	    len - PCP_HDR_SIZE);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 1);
	/* room again: a retransmission is a new transaction */
	client_send(f, req[2], len);
	pump(f, 20);
	upstream_recv(f, req[2], len, up, &from[1]);
	assert_int_equal(pcp_frontend_relay_stats(f->fe)->active, 2);
	assert_int_equal(pcp_frontend_stats(f->fe)->relayed, 3);
}

/* RFC 7488 §3: an ICMP error is a hard one: NETWORK_FAILURE, at once. */
static void
test_relay_unreachable(void **state)
{
	static const char *const lo[] = { "lo" };
	struct pcp_frontend_params p;
	struct fixture f;
	uint8_t req[PCP_MAX_SIZE], got[2048], exp[PCP_MAX_SIZE];
	size_t len, elen;
	uint16_t closed;
	int fd;

	(void)state;
	/* a port nobody listens on */
	fd = bound_socket(UPSTREAM_V4, &closed);
	close(fd);
	memset(&f, 0, sizeof(f));
	f.port = test_port();
	assert_non_null(f.base = event_base_new());
	f.client = bound_socket(CLIENT_V4, NULL);
	params_init(&p, lo, f.port, closed);
	assert_non_null(f.fe = pcp_frontend_open(f.base, &p));
	len = request(TEST_OPCODE, 0x70, req);
	client_send(&f, req, len);
	pump(&f, 50);
	elen = pcp_server_refuse(req, len, PCP_NETWORK_FAILURE, TEST_EPOCH,
	    exp, sizeof(exp));
	assert_int_equal(client_recv(&f, got, sizeof(got)), (ssize_t)elen);
	assert_memory_equal(got, exp, elen);
	assert_int_equal(pcp_frontend_relay_stats(f.fe)->hard_errors, 1);
	assert_int_equal(pcp_frontend_relay_stats(f.fe)->active, 0);
	pcp_frontend_close(f.fe);
	event_base_free(f.base);
	close(f.client);
}

/* P-17/P-18: relaying off, or no upstream server (the gateway is the last
   NAT): UNSUPP_OPCODE, and no relay exists. */
static void
test_relay_off(void **state)
{
	static const char *const lo[] = { "lo" };
	struct pcp_frontend_params p;
	struct fixture f;
	uint8_t req[PCP_MAX_SIZE], got[2048];
	size_t len;
	int round;

	(void)state;
	memset(&f, 0, sizeof(f));
	f.port = test_port();
	f.client = bound_socket(CLIENT_V4, NULL);
	len = request(TEST_OPCODE, 0x80, req);
	for (round = 0; round < 2; round++) {
		assert_non_null(f.base = event_base_new());
		params_init(&p, lo, f.port, PCP_SERVER_PORT);
		if (round == 0)
			p.relay_unknown = false;
		else
			memset(&p.relay_server, 0, sizeof(p.relay_server));
		assert_non_null(f.fe = pcp_frontend_open(f.base, &p));
		assert_null(pcp_frontend_relay_stats(f.fe));
		client_send(&f, req, len);
		pump(&f, 20);
		assert_int_equal(client_recv(&f, got, sizeof(got)),
		    (ssize_t)len);
		assert_int_equal(got[3], PCP_UNSUPP_OPCODE);
		assert_int_equal(epoch_of(got), TEST_EPOCH);
		assert_int_equal(pcp_frontend_stats(f.fe)->relayed, 0);
		pcp_frontend_close(f.fe);
		event_base_free(f.base);
	}
	close(f.client);
}

static bool
test_send(void *arg, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)peer;
	(void)buf;
	(void)len;
	return true;
}

static void
test_relay_new_refuses(void **state)
{
	struct pcp_relay_params rp;
	struct event_base *base;
	struct pcp_relay *r;

	(void)state;
	assert_non_null(base = event_base_new());
	memset(&rp, 0, sizeof(rp));
	rp.epoch = test_epoch;
	rp.send = test_send;
	assert_null(pcp_relay_new(base, &rp));		/* no server */
	v4_mapped(&rp.server, 0);
	assert_null(pcp_relay_new(base, &rp));		/* 0.0.0.0 */
	v4_mapped(&rp.server, UPSTREAM_V4);
	assert_null(pcp_relay_new(NULL, &rp));
	assert_null(pcp_relay_new(base, NULL));
	rp.epoch = NULL;
	assert_null(pcp_relay_new(base, &rp));
	rp.epoch = test_epoch;
	rp.send = NULL;
	assert_null(pcp_relay_new(base, &rp));
	rp.send = test_send;
	assert_non_null(r = pcp_relay_new(base, &rp));
	assert_int_equal(pcp_relay_stats(r)->active, 0);
	pcp_relay_free(r);
	pcp_relay_free(NULL);
	event_base_free(base);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_relay_reply, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay_reserved_bits,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_relay_leg_errors, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay_timeout, setup,
		    teardown),
		cmocka_unit_test_setup_teardown(test_relay_bound, setup,
		    teardown),
		cmocka_unit_test(test_relay_unreachable),
		cmocka_unit_test(test_relay_off),
		cmocka_unit_test(test_relay_new_refuses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
