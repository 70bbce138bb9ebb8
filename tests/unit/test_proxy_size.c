/*
 * test_proxy_size.c - the 1100-octet question (RFC 6887 §7: a PCP message
 * is at most 1100 octets; spec/pcp.md §2.4: adding THIRD_PARTY costs 20
 * octets, and a request whose upstream form would exceed 1100 would have
 * to be refused with MALFORMED_REQUEST). docs/proxy.md gives the answer
 * these tests prove: the proxy never relays the client's packet, it builds
 * the upstream MAP from stored fields (pcp/proxy.c proxy_txn_fill): the
 * description stored truncated to MAP_DESCRIPTION_MAX (128) octets on a
 * UTF-8 boundary (RFC 7220 §4), unknown options not relayed, at most one
 * THIRD_PARTY and one PREFER_FAILURE. The largest upstream MAP is thus
 * 60 + 20 + 4 + (4 + 128) = 216 octets, the largest PEER 80 + 20 + 132 =
 * 232, whatever the client sent; no request needs MALFORMED_REQUEST.
 *
 * The whole LAN-side path runs: a client datagram built with the codec,
 * the PCP server front-end's decision (pcp_server_handle), the proxy core
 * with the real table and policy, the upstream engine with a recording
 * transport and a scripted server (scenario.h), the fake NAT backend, and
 * the reply to the client (pcp_server_reply).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_fake.h"
#include "map.h"
#include "pcp_server.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define SZ_T0		1000000u	/* ms */
#define SZ_EPOCH	4242u		/* the scripted server's epoch */
#define SZ_OUR_EPOCH	17u		/* the proxy's own, in its replies */
#define SZ_LAN		"192.0.2.0"
#define SZ_WAN		"198.51.100.2"
#define SZ_SERVER	"198.51.100.1"
#define SZ_EXT		"203.0.113.1"
#define SZ_HOST		"192.0.2.10"
#define SZ_OTHER_HOST	"192.0.2.11"
#define SZ_HOST_PORT	40000
#define SZ_INT_PORT	7000
#define SZ_OUTER_PORT	27000
#define SZ_LIFETIME	3600u
/* RFC 7220 §3 / spec/pcp.md §3: a DESCRIPTION holds at most 1016 octets;
   a MAP carrying it alone is 60 + 4 + 1016 = 1080 octets. */
#define SZ_DESC_FULL	PCP_DESCRIPTION_MAX
/* A three-octet UTF-8 character (U+20AC) placed to straddle octet 128:
   it starts at 126, so the stored text is cut to 126 octets. */
#define SZ_STRADDLE_AT	(MAP_DESCRIPTION_MAX - 2)
#define SZ_STORED_LEN	SZ_STRADDLE_AT
#define SZ_UNKNOWN_OPT	200	/* an optional option code nobody defines */
#define SZ_UNKNOWN_LEN	12
/* The largest upstream requests (PCP_OPT_HDR_SIZE-aligned options). */
#define SZ_TP_OPT	(PCP_OPT_HDR_SIZE + 16)
#define SZ_PF_OPT	PCP_OPT_HDR_SIZE
#define SZ_DESC_OPT(n)	(PCP_OPT_HDR_SIZE + (((n) + 3) & ~(size_t)3))

struct sz {
	uint64_t	 now;
	struct policy_prefix lan;
	struct acl_prefix tp_hosts;	/* third_party_host: the LAN */
	struct policy	 pol;
	struct pcp_server_conf conf;
	struct table	*t;
	struct backend	*be;
	struct upstream	*u;
	struct proxy	*p;
	struct scn_wire	 wire;
	bool		 kicked;
	uint16_t	 granted;	/* the outer port the server gave */
	/* the client's answer */
	size_t		 ndone;
	struct map_result res;
};

static struct sz *z;
static int tag;

/* ---- the glue (as iwfd.c wires the engine to the proxy) ---- */

static void
sz_up_done(void *arg, struct upstream_txn *t, enum upstream_outcome outcome,
    const struct pcp_msg *resp)
{
	assert_ptr_equal(arg, z);
	proxy_upstream_done(z->p, t, (int)outcome, resp, z->now);
}

static void
sz_up_lost(void *arg, unsigned int server)
{
	assert_ptr_equal(arg, z);
	proxy_upstream_lost_state(z->p, server, z->now);
}

static void
sz_up_update(void *arg, unsigned int server, const struct pcp_msg *m)
{
	assert_ptr_equal(arg, z);
	proxy_upstream_mapping_update(z->p, server, m, z->now);
}

static const struct upstream_cb sz_up_cb = {
	.done = sz_up_done,
	.lost_state = sz_up_lost,
	.mapping_update = sz_up_update,
};

static void
sz_kick(void *arg)
{
	assert_ptr_equal(arg, z);
	z->kicked = true;
}

static void
sz_done(void *arg, const struct map_req *req, const struct map_result *res)
{
	(void)req;
	assert_ptr_equal(arg, &tag);
	z->ndone++;
	z->res = *res;
}

static void
sz_end_turn(void)
{
	unsigned int guard = 0;

	while (z->kicked) {
		z->kicked = false;
		proxy_commit(z->p, z->now);
		assert_true(++guard < 8);
	}
}

static int
sz_setup(enum proxy_nat nat, bool third_party)
{
	struct proxy_params pp;
	struct in6_addr srv, wan;
	uint16_t port = PCP_SERVER_PORT;

	z = calloc(1, sizeof(*z));
	assert_non_null(z);
	z->now = SZ_T0;
	z->wire.now = &z->now;
	z->lan.addr = scn_addr(SZ_LAN);
	z->lan.prefix_len = 96 + 24;
	z->pol.lan_prefixes = &z->lan;
	z->pol.n_lan_prefixes = 1;
	if (third_party) {
		z->tp_hosts.addr = z->lan.addr;
		z->tp_hosts.prefix_len = z->lan.prefix_len;
		z->pol.third_party_hosts = &z->tp_hosts;
		z->pol.n_third_party_hosts = 1;
	}
	z->pol.min_lifetime = 120;
	z->pol.max_lifetime = 86400;
	z->conf.third_party_allowed = third_party;
	assert_non_null(z->t = table_new());
	table_set_seed(z->t, 42);
	if (nat == PROXY_NAT_LOCAL)
		assert_non_null(z->be = backend_fake_new());
	assert_non_null(z->u = upstream_new(&sz_up_cb, z, 4711));
	upstream_set_transport(z->u, scn_send, &z->wire);
	srv = scn_addr(SZ_SERVER);
	assert_int_equal(upstream_set_servers(z->u, &srv, &port, 1), 0);
	wan = scn_addr(SZ_WAN);
	upstream_set_local(z->u, 0, &wan);
	memset(&pp, 0, sizeof(pp));
	pp.nat = nat;
	pp.table = z->t;
	pp.policy = &z->pol;
	pp.backend = z->be;
	pp.upstream = z->u;
	pp.random_seed = 99;
	pp.wan_addr = wan;
	pp.wan_addr_known = true;
	pp.kick = sz_kick;
	pp.cb_arg = z;
	assert_non_null(z->p = proxy_new(&pp));
	return 0;
}

static int
setup_none(void **state)
{
	(void)state;
	return sz_setup(PROXY_NAT_NONE, false);
}

static int
setup_none_third_party(void **state)
{
	(void)state;
	return sz_setup(PROXY_NAT_NONE, true);
}

static int
setup_local(void **state)
{
	(void)state;
	return sz_setup(PROXY_NAT_LOCAL, false);
}

static int
sz_teardown(void **state)
{
	(void)state;
	sz_end_turn();
	proxy_free(z->p);
	upstream_free(z->u);
	if (z->be != NULL)
		z->be->ops->close(z->be);
	table_free(z->t);
	free(z);
	z = NULL;
	return 0;
}

/* ---- the client's request ---- */

/*
 * A MAP from SZ_HOST for TCP SZ_INT_PORT with a DESCRIPTION of SZ_DESC_FULL
 * octets: ASCII with one three-octet character straddling octet 128.
 */
static void
sz_client_map(struct pcp_msg *m)
{
	static const char euro[] = "\xe2\x82\xac";	/* U+20AC */
	size_t i;

	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_MAP;
	m->lifetime = SZ_LIFETIME;
	m->client_addr = scn_addr(SZ_HOST);
	memset(m->nonce, 0x5a, sizeof(m->nonce));
	m->protocol = MAP_PROTO_TCP;
	m->internal_port = SZ_INT_PORT;
	m->ext_port = SZ_INT_PORT;
	m->ext_addr = scn_addr("0.0.0.0");
	m->has_description = true;
	m->description_len = SZ_DESC_FULL;
	for (i = 0; i < SZ_DESC_FULL; i++)
		m->description[i] = (char)('a' + i % 26);
	memcpy(m->description + SZ_STRADDLE_AT, euro, sizeof(euro) - 1);
	m->description[SZ_DESC_FULL] = '\0';
}

/* An unknown optional option (code >= 128, §7.3: MAY be ignored). */
static void
sz_add_unknown_option(struct pcp_msg *m)
{
	m->n_raw = 1;
	m->raw[0].code = SZ_UNKNOWN_OPT;
	m->raw[0].len = SZ_UNKNOWN_LEN;
	m->raw[0].data_off = 0;
	memset(m->raw_data, 0x33, SZ_UNKNOWN_LEN);
	m->raw_data_len = SZ_UNKNOWN_LEN;
}

/*
 * The whole path for one client datagram: the front-end submits it, the
 * upstream MAP goes out (returned in *up, its length in *up_len), the
 * server grants SZ_OUTER_PORT (the suggested port for PREFER_FAILURE,
 * C-09), and the reply to the client is built into reply (its length
 * returned).
 */
static size_t
sz_run(const uint8_t *pkt, size_t len, struct pcp_msg *up, size_t *up_len,
    uint8_t *reply, size_t cap)
{
	static struct pcp_server_req out;
	static struct pcp_msg resp;
	struct in6_addr src = scn_addr(SZ_HOST);
	struct map_result res;
	const struct scn_sent *s;
	size_t n;

	assert_int_equal(pcp_server_handle(&z->conf, pkt, len, &src,
	    SZ_HOST_PORT, SZ_OUR_EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_false(proxy_submit(z->p, &out.req, z->now, sz_done, &tag,
	    &res));
	sz_end_turn();
	/* exactly one upstream MAP, within RFC 6887 §7's 1100 octets */
	assert_int_equal(z->wire.nsent, 1);
	s = scn_last_sent(&z->wire);
	assert_true(s->len <= PCP_MAX_SIZE);
	*up_len = s->len;
	scn_decode(s->pkt, s->len, up);

	scn_reply_to(up, PCP_SUCCESS, SZ_LIFETIME, SZ_EPOCH, &resp);
	resp.ext_addr = scn_addr(SZ_EXT);
	z->granted = up->prefer_failure ? up->ext_port : SZ_OUTER_PORT;
	resp.ext_port = z->granted;
	scn_input(z->u, s->server, &resp, z->now);
	sz_end_turn();
	assert_int_equal(z->ndone, 1);
	assert_int_equal(z->res.err, MAP_OK);
	assert_int_equal(z->res.ext_port, z->granted);

	n = pcp_server_reply(pkt, len, &out.req, &z->res, SZ_OUR_EPOCH,
	    reply, cap);
	assert_true(n > 0);
	assert_true(n <= PCP_MAX_SIZE);
	return n;
}

/* RFC 7220 §4: the stored (and relayed) text is the first 126 octets,
   cut before the character that does not fit whole, valid UTF-8. */
static void
sz_assert_description_cut(const struct pcp_msg *m)
{
	static struct pcp_msg client;

	sz_client_map(&client);
	assert_true(m->has_description);
	assert_int_equal(m->description_len, SZ_STORED_LEN);
	assert_true(m->description_len <= MAP_DESCRIPTION_MAX);
	assert_memory_equal(m->description, client.description,
	    SZ_STORED_LEN);
	assert_true(m->description_utf8_ok);
	assert_true(pcp_utf8_valid(m->description, m->description_len));
}

/* The reply to the client: SUCCESS, the outermost port, the description
   as stored (§7.3: processed options only; unknown ones not echoed). */
static void
sz_assert_reply(const uint8_t *reply, size_t n, size_t expect_len)
{
	static struct pcp_msg r;

	assert_int_equal(n, expect_len);
	assert_true(pcp_decode_response(reply, n, &r));
	assert_int_equal(r.result, PCP_SUCCESS);
	assert_int_equal(r.ext_port, z->granted);
	assert_int_equal(r.epoch, SZ_OUR_EPOCH);
	sz_assert_description_cut(&r);
	assert_int_equal(r.n_raw, 0);
}

/* ---- the tests ---- */

/*
 * nat = none: the largest DESCRIPTION there is (a 1080-octet MAP). The
 * proxy adds THIRD_PARTY (RFC 7648 §3.3, P-15) and the upstream request is
 * 60 + 20 + 132 = 212 octets: the description went up as stored.
 */
static void
test_none_full_description(void **state)
{
	static struct pcp_msg client, up;
	static uint8_t pkt[PCP_MAX_SIZE], reply[PCP_MAX_SIZE];
	struct in6_addr wan;
	size_t len, up_len, n;

	(void)state;
	sz_client_map(&client);
	len = pcp_encode(&client, pkt, sizeof(pkt));
	assert_int_equal(len, PCP_MAP_MSG_SIZE + SZ_DESC_OPT(SZ_DESC_FULL));
	assert_int_equal(len, 1080);

	n = sz_run(pkt, len, &up, &up_len, reply, sizeof(reply));
	assert_int_equal(up_len, PCP_MAP_MSG_SIZE + SZ_TP_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
	/* P-06 / C-01: the Client IP is the gateway's WAN address */
	wan = scn_addr(SZ_WAN);
	assert_memory_equal(&up.client_addr, &wan, sizeof(wan));
	assert_true(up.has_third_party);
	assert_memory_equal(&up.third_party, &client.client_addr,
	    sizeof(struct in6_addr));
	assert_false(up.prefer_failure);
	sz_assert_description_cut(&up);
	/* the client did not send THIRD_PARTY: none in its reply */
	sz_assert_reply(reply, n, PCP_MAP_MSG_SIZE +
	    SZ_DESC_OPT(SZ_STORED_LEN));
}

/*
 * nat = none: a MAP of exactly 1100 octets - PREFER_FAILURE, the full
 * DESCRIPTION and an unknown optional option. Relaying it with THIRD_PARTY
 * added would be 1120 octets; the upstream request is 216 octets, the
 * largest MAP the proxy can send: unknown options are not relayed (§7.3:
 * an optional option MAY be ignored; P-26: strip them), the description
 * is the stored one.
 */
static void
test_none_1100_octets(void **state)
{
	static struct pcp_msg client, up;
	static uint8_t pkt[PCP_MAX_SIZE + 2 * PCP_OPT_HDR_SIZE];
	static uint8_t reply[PCP_MAX_SIZE];
	size_t len, up_len, n;

	(void)state;
	sz_client_map(&client);
	client.prefer_failure = true;
	sz_add_unknown_option(&client);
	len = pcp_encode(&client, pkt, sizeof(pkt));
	assert_int_equal(len, PCP_MAX_SIZE);

	n = sz_run(pkt, len, &up, &up_len, reply, sizeof(reply));
	assert_int_equal(up_len, PCP_MAP_MSG_SIZE + SZ_TP_OPT + SZ_PF_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
	assert_int_equal(up_len, 216);
	assert_true(up.has_third_party);
	assert_true(up.prefer_failure);
	assert_int_equal(up.n_raw, 0);
	sz_assert_description_cut(&up);
	sz_assert_reply(reply, n, PCP_MAP_MSG_SIZE + SZ_PF_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
}

/*
 * nat = none, third_party = allow: the client's own THIRD_PARTY (another
 * LAN host) with the full DESCRIPTION is exactly 1100 octets. Upstream it
 * stays one THIRD_PARTY (the same host), never two.
 */
static void
test_none_client_third_party(void **state)
{
	static struct pcp_msg client, up;
	static uint8_t pkt[PCP_MAX_SIZE], reply[PCP_MAX_SIZE];
	struct in6_addr other = scn_addr(SZ_OTHER_HOST);
	size_t len, up_len, n;

	(void)state;
	sz_client_map(&client);
	client.has_third_party = true;
	client.third_party = other;
	len = pcp_encode(&client, pkt, sizeof(pkt));
	assert_int_equal(len, PCP_MAX_SIZE);

	n = sz_run(pkt, len, &up, &up_len, reply, sizeof(reply));
	assert_int_equal(up_len, PCP_MAP_MSG_SIZE + SZ_TP_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
	assert_true(up.has_third_party);
	assert_memory_equal(&up.third_party, &other, sizeof(other));
	sz_assert_description_cut(&up);
	sz_assert_reply(reply, n, PCP_MAP_MSG_SIZE + SZ_TP_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
}

/*
 * nat = local: the same 1100-octet MAP. No THIRD_PARTY upstream (the
 * mapping's external address is the gateway's own, RFC 7648 §3.3), so
 * 60 + 4 + 132 = 196 octets.
 */
static void
test_local_1100_octets(void **state)
{
	static struct pcp_msg client, up;
	static uint8_t pkt[PCP_MAX_SIZE], reply[PCP_MAX_SIZE];
	size_t len, up_len, n;

	(void)state;
	sz_client_map(&client);
	client.prefer_failure = true;
	sz_add_unknown_option(&client);
	len = pcp_encode(&client, pkt, sizeof(pkt));
	assert_int_equal(len, PCP_MAX_SIZE);

	n = sz_run(pkt, len, &up, &up_len, reply, sizeof(reply));
	assert_int_equal(up_len, PCP_MAP_MSG_SIZE + SZ_PF_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
	assert_false(up.has_third_party);
	assert_true(up.prefer_failure);
	assert_int_equal(up.n_raw, 0);
	sz_assert_description_cut(&up);
	sz_assert_reply(reply, n, PCP_MAP_MSG_SIZE + SZ_PF_OPT +
	    SZ_DESC_OPT(SZ_STORED_LEN));
}

/*
 * The bound that makes MALFORMED_REQUEST unnecessary holds in the codec
 * too: a client cannot send more than 1100 octets (§8.2 step 6), so one
 * more option on the 1100-octet MAP is refused before the proxy sees it.
 */
static void
test_client_over_1100_refused(void **state)
{
	static struct pcp_msg client;
	static uint8_t pkt[PCP_MAX_SIZE + 2 * PCP_OPT_HDR_SIZE];
	static uint8_t big[PCP_MAX_SIZE + PCP_OPT_HDR_SIZE];
	static struct pcp_server_req out;
	struct in6_addr src = scn_addr(SZ_HOST);
	enum pcp_result rc;
	size_t len;

	(void)state;
	sz_client_map(&client);
	client.prefer_failure = true;
	sz_add_unknown_option(&client);
	len = pcp_encode(&client, pkt, sizeof(pkt));
	assert_int_equal(len, PCP_MAX_SIZE);
	/* the same bytes plus one empty optional option: 1104 octets */
	memcpy(big, pkt, len);
	big[len] = SZ_UNKNOWN_OPT;
	memset(big + len + 1, 0, PCP_OPT_HDR_SIZE - 1);
	assert_int_equal(pcp_decode_request(big, sizeof(big), &src, 0, NULL,
	    &rc), PCP_VERDICT_ERROR);
	assert_int_equal(rc, PCP_MALFORMED_REQUEST);
	assert_int_equal(pcp_server_handle(&z->conf, big, sizeof(big), &src,
	    SZ_HOST_PORT, SZ_OUR_EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_MALFORMED_REQUEST);
	/* §8.2: the error reply is truncated to 1100 octets */
	assert_true(out.reply_len <= PCP_MAX_SIZE);
	assert_int_equal(z->wire.nsent, 0);
}

/*
 * The engine's own bound: the largest request an upstream_txn can describe
 * (THIRD_PARTY, PREFER_FAILURE on MAP, a full UPSTREAM_DESCRIPTION_MAX
 * description) is 216 octets for MAP and 232 for PEER.
 */
static void
test_engine_largest(void **state)
{
	static struct upstream_txn t;
	static struct pcp_msg m;
	const struct scn_sent *s;
	size_t i;

	(void)state;
	for (i = 0; i < 2; i++) {
		memset(&t, 0, offsetof(struct upstream_txn, next));
		t.opcode = i == 0 ? PCP_OP_MAP : PCP_OP_PEER;
		memset(t.nonce, 0x11 + (int)i, sizeof(t.nonce));
		t.protocol = MAP_PROTO_UDP;
		t.internal_port = (uint16_t)(SZ_INT_PORT + i);
		t.ext_addr = scn_addr("0.0.0.0");
		t.lifetime = SZ_LIFETIME;
		t.prefer_failure = t.opcode == PCP_OP_MAP;
		t.ext_port = t.prefer_failure ? SZ_INT_PORT : 0;
		t.has_third_party = true;
		t.third_party = scn_addr(SZ_HOST);
		t.peer_port = 443;
		t.peer_addr = scn_addr("203.0.113.100");
		memset(t.description, 'd', UPSTREAM_DESCRIPTION_MAX);
		t.description[UPSTREAM_DESCRIPTION_MAX] = '\0';
		t.server = UPSTREAM_NO_SERVER;
		t.deadline = z->now + 1000;
		t.arg = &t;
		assert_true(upstream_start(z->u, &t, z->now));
		s = scn_last_sent(&z->wire);
		scn_decode(s->pkt, s->len, &m);
		assert_int_equal(m.description_len, UPSTREAM_DESCRIPTION_MAX);
		assert_int_equal(s->len, (t.opcode == PCP_OP_MAP ?
		    PCP_MAP_MSG_SIZE + SZ_PF_OPT : PCP_PEER_MSG_SIZE) +
		    SZ_TP_OPT + SZ_DESC_OPT(UPSTREAM_DESCRIPTION_MAX));
		assert_true(s->len <= PCP_MAX_SIZE);
		upstream_cancel(z->u, &t);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_none_full_description,
		    setup_none, sz_teardown),
		cmocka_unit_test_setup_teardown(test_none_1100_octets,
		    setup_none, sz_teardown),
		cmocka_unit_test_setup_teardown(test_none_client_third_party,
		    setup_none_third_party, sz_teardown),
		cmocka_unit_test_setup_teardown(test_local_1100_octets,
		    setup_local, sz_teardown),
		cmocka_unit_test_setup_teardown(test_client_over_1100_refused,
		    setup_none, sz_teardown),
		cmocka_unit_test_setup_teardown(test_engine_largest,
		    setup_none, sz_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
