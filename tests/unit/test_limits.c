/*
 * test_limits.c - the abuse limits of issue 8 end to end in the scenario
 * world (tests/unit/scenario.h), wired the way iwfd.c wires the daemon:
 * the PCP front-end's real socket on the loopback (the LAN: 127.0.0.0/8),
 * the NAT-PMP front-end on it, one per-host rate limiter
 * (src/ratelimit.h) shared by both, the proxy core with its policy.
 * Host A is 127.0.0.1, host B 127.0.0.2.
 *
 *   - a host over its rate is dropped silently (PCP and NAT-PMP, one
 *     bucket for both) while another host is served;
 *   - retransmitted copies of a request that waits for the upstream
 *     server cost no token (PCP: dropped, the first's answer answers
 *     them; NAT-PMP: joined);
 *   - the global mapping cap: a new mapping gets each protocol's
 *     resource error, refreshes and deletes pass.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "map.h"
#include "map_err.h"
#include "natpmp.h"
#include "natpmp_wire.h"
#include "pcp_frontend.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "ratelimit.h"
#include "scenario.h"

#define LT_LAN		"127.0.0.0"
#define LT_LAN_LEN	(96 + 8)
#define LT_HOST_A	"127.0.0.1"
#define LT_HOST_B	"127.0.0.2"
#define LT_EPOCH	4242
#define LT_LIFETIME	3600
#define LT_GRANTED_PORT	40000
#define LT_MS_PER_S	1000

struct lt {
	struct scn_world	 w;
	struct event_base	*base;
	struct ratelimit	*rl;
	struct natpmp		*n;
	struct pcp_frontend	*fe;
	uint16_t		 port;
	int			 fd_a, fd_b;
};

static uint32_t
lt_epoch(void *arg)
{
	(void)arg;
	return LT_EPOCH;
}

/* natpmp's io: replies through the PCP front-end's socket (iwfd.c). */
static bool
lt_natpmp_send(void *arg, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	struct lt *t = arg;

	return pcp_frontend_send(t->fe, peer, buf, len);
}

static size_t
lt_natpmp_multicast(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)buf;
	(void)len;
	return 0;
}

/* A port of our own, away from 5351, test_pcp_frontend's and parallel
   runs. */
static uint16_t
lt_port(void)
{
	return (uint16_t)(40000 + getpid() % 20000);
}

static int
lt_client(const char *host)
{
	struct sockaddr_in sin;
	int fd;

	assert_true((fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	assert_int_equal(inet_pton(AF_INET, host, &sin.sin_addr), 1);
	assert_int_equal(bind(fd, (struct sockaddr *)&sin, sizeof(sin)), 0);
	return fd;
}

/* rate 0: no limit. */
static struct lt *
lt_new(bool upstream, uint32_t rate, uint32_t burst)
{
	static const char *const lo[] = { "lo" };
	struct scn_world_conf wc;
	struct ratelimit_params rp;
	struct natpmp_params np;
	struct pcp_frontend_params fp;
	struct lt *t;

	assert_non_null(t = calloc(1, sizeof(*t)));
	memset(&wc, 0, sizeof(wc));
	wc.nat = PROXY_NAT_NONE;
	wc.upstream = upstream;
	wc.lan = LT_LAN;
	wc.lan_prefix_len = LT_LAN_LEN;
	assert_int_equal(scn_world_init(&t->w, &wc), 0);
	memset(&rp, 0, sizeof(rp));
	rp.rate = rate;
	rp.burst = burst;
	rp.seed = 1;
	assert_non_null(t->rl = ratelimit_new(&rp));

	memset(&np, 0, sizeof(np));
	np.proxy = t->w.p;
	np.table = t->w.t;
	np.epoch = lt_epoch;
	np.now = scn_world_now;
	np.clock_arg = &t->w;
	np.send = lt_natpmp_send;
	np.multicast = lt_natpmp_multicast;
	np.io_arg = t;
	memcpy(np.nonce_key, t->w.key, sizeof(np.nonce_key));
	np.ratelimit = t->rl;
	assert_non_null(t->n = natpmp_new(&np));

	assert_non_null(t->base = event_base_new());
	t->port = lt_port();
	memset(&fp, 0, sizeof(fp));
	fp.proxy = t->w.p;
	fp.lan_ifnames = lo;
	fp.n_lan = 1;
	fp.epoch = lt_epoch;
	fp.now = scn_world_now;
	fp.clock_arg = &t->w;
	fp.natpmp_input = natpmp_input;
	fp.natpmp_arg = t->n;
	fp.port = t->port;
	fp.ratelimit = t->rl;
	assert_non_null(t->fe = pcp_frontend_open(t->base, &fp));
	t->fd_a = lt_client(LT_HOST_A);
	t->fd_b = lt_client(LT_HOST_B);
	return t;
}

static void
lt_free(struct lt *t)
{
	close(t->fd_a);
	close(t->fd_b);
	pcp_frontend_close(t->fe);
	natpmp_free(t->n);
	event_base_free(t->base);
	scn_world_free(&t->w);
	ratelimit_free(t->rl);
	free(t);
}

/* Send to the gateway, then let the front-end read it and the turn end
   (a reply the core made goes out now). */
static void
lt_send(struct lt *t, int fd, const uint8_t *buf, size_t len)
{
	struct sockaddr_in sin;

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(t->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(fd, buf, len, 0, (struct sockaddr *)&sin,
	    sizeof(sin)), (ssize_t)len);
	assert_int_equal(event_base_loop(t->base, EVLOOP_NONBLOCK), 0);
	scn_end_turn(&t->w);
}

/* The reply waiting on fd, or -1 when there is none (loopback: a reply
   is there as soon as it was sent). */
static ssize_t
lt_recv(int fd, uint8_t *buf, size_t cap)
{
	ssize_t n = recv(fd, buf, cap, MSG_DONTWAIT);

	if (n == -1)
		assert_true(errno == EAGAIN || errno == EWOULDBLOCK);
	return n;
}

static size_t
lt_pcp_map(const char *host, uint16_t port, uint32_t lifetime, uint8_t *buf)
{
	struct pcp_msg m;
	size_t len;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.lifetime = lifetime;
	assert_true(pcp_addr_pton(host, &m.client_addr));
	m.protocol = MAP_PROTO_TCP;
	m.internal_port = port;
	m.nonce[0] = (uint8_t)port;
	m.nonce[1] = (uint8_t)(port >> 8);
	assert_true(pcp_addr_pton("0.0.0.0", &m.ext_addr));
	len = pcp_encode(&m, buf, PCP_MAX_SIZE);
	assert_int_equal(len, PCP_MAP_MSG_SIZE);
	return len;
}

/* A PCP MAP from host on fd; its result, or -1 when dropped. */
static int
lt_pcp(struct lt *t, int fd, const char *host, uint16_t port,
    uint32_t lifetime, struct pcp_msg *resp)
{
	uint8_t buf[PCP_MAX_SIZE];
	ssize_t n;

	lt_send(t, fd, buf, lt_pcp_map(host, port, lifetime, buf));
	if ((n = lt_recv(fd, buf, sizeof(buf))) < 0)
		return -1;
	assert_true(pcp_decode_response(buf, (size_t)n, resp));
	assert_int_equal(resp->internal_port, port);
	return resp->result;
}

static size_t
lt_natpmp_map(uint16_t port, uint32_t lifetime, uint8_t *buf)
{
	struct natpmp_request r;
	size_t len;

	memset(&r, 0, sizeof(r));
	r.version = NATPMP_VERSION;
	r.opcode = NATPMP_OP_MAP_TCP;
	r.internal_port = port;
	r.lifetime = lifetime;
	len = natpmp_encode_request(&r, buf, NATPMP_MAP_REQ_SIZE);
	assert_int_equal(len, NATPMP_MAP_REQ_SIZE);
	return len;
}

/* A NAT-PMP TCP map request on fd; its result, or -1 when dropped. */
static int
lt_natpmp(struct lt *t, int fd, uint16_t port, uint32_t lifetime,
    struct natpmp_response *resp)
{
	uint8_t buf[NATPMP_ECHO_MAX];
	ssize_t n;

	lt_send(t, fd, buf, lt_natpmp_map(port, lifetime, buf));
	if ((n = lt_recv(fd, buf, sizeof(buf))) < 0)
		return -1;
	assert_true(natpmp_decode_response(buf, (size_t)n, resp));
	assert_int_equal(resp->internal_port, port);
	return resp->result;
}

/* ---- per-host rate ---- */

/* Host A spends its burst on PCP, and is then dropped in both protocols
   (one bucket); host B is served meanwhile; A's bucket refills. */
static void
test_rate_per_host(void **state)
{
	struct lt *t = lt_new(false, 1, 3);
	struct natpmp_response nr;
	struct ratelimit_stats st;
	struct pcp_msg r;
	uint16_t port;

	(void)state;
	for (port = 1001; port <= 1003; port++)
		assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, port,
		    LT_LIFETIME, &r), PCP_SUCCESS);
	/* over the rate: no answer at all, nothing made */
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1004, LT_LIFETIME, &r),
	    -1);
	assert_int_equal(lt_natpmp(t, t->fd_a, 1005, LT_LIFETIME, &nr), -1);
	assert_int_equal(table_count(t->w.t), 3);
	assert_int_equal(pcp_frontend_stats(t->fe)->rate_limited, 1);
	assert_int_equal(natpmp_stats(t->n)->rate_limited, 1);
	/* host B has its own bucket, in either protocol */
	assert_int_equal(lt_pcp(t, t->fd_b, LT_HOST_B, 2001, LT_LIFETIME, &r),
	    PCP_SUCCESS);
	assert_int_equal(lt_natpmp(t, t->fd_b, 2002, LT_LIFETIME, &nr), 0);
	/* a second later A has one token again: NAT-PMP spends it */
	t->w.now += LT_MS_PER_S;
	assert_int_equal(lt_natpmp(t, t->fd_a, 1005, LT_LIFETIME, &nr), 0);
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1004, LT_LIFETIME, &r),
	    -1);
	ratelimit_stats(t->rl, &st);
	assert_int_equal(st.allowed, 6);
	assert_int_equal(st.limited, 3);
	assert_int_equal(st.hosts, 2);
	assert_int_equal(table_count(t->w.t), 6);
	lt_free(t);
}

/* rate 0: a host may send as much as it likes. */
static void
test_rate_off(void **state)
{
	struct lt *t = lt_new(false, 0, 0);
	struct pcp_msg r;
	uint16_t port;

	(void)state;
	for (port = 1001; port <= 1050; port++)
		assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, port,
		    LT_LIFETIME, &r), PCP_SUCCESS);
	assert_int_equal(pcp_frontend_stats(t->fe)->rate_limited, 0);
	lt_free(t);
}

/* A client retransmitting a request that waits for the carrier spends no
   more tokens: PCP copies are dropped and answered with the first, NAT-PMP
   copies join the waiting request. */
static void
test_retransmissions_free(void **state)
{
	struct lt *t = lt_new(true, 1, 1);
	uint8_t buf[PCP_MAX_SIZE];
	struct natpmp_response nr;
	struct pcp_msg r;
	size_t len, sent;
	int i;

	(void)state;
	len = lt_pcp_map(LT_HOST_A, 1001, LT_LIFETIME, buf);
	lt_send(t, t->fd_a, buf, len);
	assert_int_equal(pcp_frontend_stats(t->fe)->pending, 1);
	sent = t->w.wire.nsent;
	assert_true(sent >= 1);
	for (i = 0; i < 3; i++)
		lt_send(t, t->fd_a, buf, len);
	assert_int_equal(pcp_frontend_stats(t->fe)->joined, 3);
	assert_int_equal(pcp_frontend_stats(t->fe)->rate_limited, 0);
	assert_int_equal(pcp_frontend_stats(t->fe)->pending, 1);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)), -1);
	/* the carrier grants it: one answer */
	scn_answer_last(&t->w, PCP_SUCCESS, LT_LIFETIME, LT_GRANTED_PORT);
	scn_end_turn(&t->w);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)), PCP_MAP_MSG_SIZE);
	assert_true(pcp_decode_response(buf, PCP_MAP_MSG_SIZE, &r));
	assert_int_equal(r.result, PCP_SUCCESS);
	assert_int_equal(r.ext_port, LT_GRANTED_PORT);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)), -1);
	/* only the first copy was charged, and it emptied the bucket */
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1002, LT_LIFETIME, &r),
	    -1);
	assert_int_equal(pcp_frontend_stats(t->fe)->rate_limited, 1);

	/* NAT-PMP: the same */
	scn_time_passes(&t->w, LT_MS_PER_S);
	len = lt_natpmp_map(1003, LT_LIFETIME, buf);
	lt_send(t, t->fd_a, buf, len);
	assert_int_equal(natpmp_stats(t->n)->pending, 1);
	for (i = 0; i < 2; i++)
		lt_send(t, t->fd_a, buf, len);
	assert_int_equal(natpmp_stats(t->n)->joined, 2);
	assert_int_equal(natpmp_stats(t->n)->rate_limited, 0);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)), -1);
	scn_answer_last(&t->w, PCP_SUCCESS, LT_LIFETIME, LT_GRANTED_PORT + 1);
	scn_end_turn(&t->w);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)),
	    NATPMP_MAP_RESP_SIZE);
	assert_true(natpmp_decode_response(buf, NATPMP_MAP_RESP_SIZE, &nr));
	assert_int_equal(nr.result, 0);
	assert_int_equal(nr.ext_port, LT_GRANTED_PORT + 1);
	assert_int_equal(lt_recv(t->fd_a, buf, sizeof(buf)), -1);
	assert_int_equal(lt_natpmp(t, t->fd_a, 1004, LT_LIFETIME, &nr), -1);
	assert_int_equal(natpmp_stats(t->n)->rate_limited, 1);
	lt_free(t);
}

/* ---- the global mapping cap ---- */

static void
test_cap(void **state)
{
	struct lt *t = lt_new(false, 0, 0);
	const struct map_err_row *row = map_err_row(MAP_ERR_NO_RESOURCES);
	struct natpmp_response nr;
	struct pcp_msg r;

	(void)state;
	t->w.pol.max_mappings = 2;
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1001, LT_LIFETIME, &r),
	    PCP_SUCCESS);
	assert_int_equal(lt_natpmp(t, t->fd_b, 2001, LT_LIFETIME, &nr), 0);
	/* full: PCP NO_RESOURCES with the short error lifetime (RFC 6887
	   §7.4), NAT-PMP 4 Out of resources (RFC 6886 §3.5), for any host */
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1002, LT_LIFETIME, &r),
	    PCP_NO_RESOURCES);
	assert_int_equal(r.lifetime, map_err_pcp_lifetime(MAP_ERR_NO_RESOURCES));
	assert_int_equal(row->pcp_life, MAP_LIFE_SHORT);
	assert_int_equal(lt_pcp(t, t->fd_b, LT_HOST_B, 2002, LT_LIFETIME, &r),
	    PCP_NO_RESOURCES);
	assert_int_equal(lt_natpmp(t, t->fd_a, 1003, LT_LIFETIME, &nr), 4);
	assert_int_equal(nr.lifetime, 0);
	/* and UPnP's row: 728 NoPortMapsAvailable (IGD:2), 501 (IGD:1) */
	assert_int_equal(row->upnp_v2, 728);
	assert_int_equal(row->upnp_v1, 501);
	assert_int_equal(table_count(t->w.t), 2);
	/* refreshes of what exists pass, in both protocols */
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1001, LT_LIFETIME, &r),
	    PCP_SUCCESS);
	assert_int_equal(lt_natpmp(t, t->fd_b, 2001, LT_LIFETIME, &nr), 0);
	/* a delete passes and makes room */
	assert_int_equal(lt_pcp(t, t->fd_a, LT_HOST_A, 1001, 0, &r),
	    PCP_SUCCESS);
	assert_int_equal(table_count(t->w.t), 1);
	assert_int_equal(lt_natpmp(t, t->fd_a, 1003, LT_LIFETIME, &nr), 0);
	assert_int_equal(lt_pcp(t, t->fd_b, LT_HOST_B, 2002, LT_LIFETIME, &r),
	    PCP_NO_RESOURCES);
	/* 0: no cap */
	t->w.pol.max_mappings = 0;
	assert_int_equal(lt_pcp(t, t->fd_b, LT_HOST_B, 2002, LT_LIFETIME, &r),
	    PCP_SUCCESS);
	lt_free(t);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_rate_per_host),
		cmocka_unit_test(test_rate_off),
		cmocka_unit_test(test_retransmissions_free),
		cmocka_unit_test(test_cap),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
