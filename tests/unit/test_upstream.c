/*
 * test_upstream.c - scenario tests of the upstream PCP client engine on a
 * fake clock with a scripted server (STYLE.md: Unbound's TIME_PASSES).
 *
 * The harness records every datagram the engine sends (decoded with the
 * request decoder so fields can be asserted), every callback, and builds the
 * server's responses with the codec. Transactions live in static storage:
 * one still in flight when a test returns is dropped by upstream_free() in
 * the teardown, which must still find it.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "pcp_retrans.h"
#include "pcp_wire.h"
#include "scenario.h"
#include "upstream.h"

#define H_MAX_SENT	512
#define H_T0		1000000u	/* ms: not 0, so a 0 would show */
#define H_FAR		((uint64_t)1 << 40)
#define H_EPOCH0	7000u

struct h_sent {
	unsigned int	 server;
	uint64_t	 at;
	size_t		 len;
	uint8_t		 pkt[PCP_MAX_SIZE];
};

struct harness {
	struct upstream	*u;
	uint64_t	 now;
	size_t		 nsent;
	struct h_sent	 sent[H_MAX_SENT];
	int		 send_error[UPSTREAM_MAX_SERVERS];
	/* done */
	size_t		 ndone;
	struct upstream_txn *done_txn;
	enum upstream_outcome done_outcome;
	bool		 done_has_resp;
	struct pcp_msg	 done_resp;
	unsigned int	 done_server;
	uint64_t	 done_at;
	bool		 restart_on_done;
	/* lost_state, mapping_update, state_changed */
	size_t		 nlost;
	unsigned int	 lost_server;
	size_t		 nupdate;
	unsigned int	 update_server;
	struct pcp_msg	 update;
	size_t		 nstate;
	enum upstream_state state_old, state_new;
	unsigned int	 state_server;
	/* holds_mappings */
	bool		 holds[UPSTREAM_MAX_SERVERS];
	size_t		 nholds;
};

static struct harness *h;

/* ---- the fake transport and callbacks ---- */

static int
h_send(void *arg, unsigned int server, const uint8_t *pkt, size_t len)
{
	struct h_sent *s;

	assert_ptr_equal(arg, h);
	assert_true(len <= PCP_MAX_SIZE);
	if (h->send_error[server] != 0)
		return h->send_error[server];
	s = &h->sent[h->nsent % H_MAX_SENT];
	s->server = server;
	s->at = h->now;
	s->len = len;
	memcpy(s->pkt, pkt, len);
	h->nsent++;
	return 0;
}

static void
h_done(void *arg, struct upstream_txn *t, enum upstream_outcome outcome,
    const struct pcp_msg *resp)
{
	assert_ptr_equal(arg, h);
	h->ndone++;
	h->done_txn = t;
	h->done_outcome = outcome;
	h->done_has_resp = resp != NULL;
	h->done_server = t->server;
	h->done_at = h->now;
	if (resp != NULL)
		memcpy(&h->done_resp, resp, sizeof(*resp));
	assert_true((outcome == UPSTREAM_REPLY) == (resp != NULL));
	if (h->restart_on_done) {
		h->restart_on_done = false;
		t->deadline = h->now + 60000;
		assert_true(upstream_start(h->u, t, h->now));
	}
}

static void
h_lost(void *arg, unsigned int server)
{
	assert_ptr_equal(arg, h);
	h->nlost++;
	h->lost_server = server;
}

static void
h_update(void *arg, unsigned int server, const struct pcp_msg *m)
{
	assert_ptr_equal(arg, h);
	h->nupdate++;
	h->update_server = server;
	memcpy(&h->update, m, sizeof(*m));
}

static void
h_state(void *arg, unsigned int server, enum upstream_state old,
    enum upstream_state new_state)
{
	assert_ptr_equal(arg, h);
	assert_int_not_equal(old, new_state);
	h->nstate++;
	h->state_server = server;
	h->state_old = old;
	h->state_new = new_state;
}

static bool
h_holds(void *arg, unsigned int server)
{
	assert_ptr_equal(arg, h);
	assert_true(server < UPSTREAM_MAX_SERVERS);
	h->nholds++;
	return h->holds[server];
}

static const struct upstream_cb h_cb = {
	.done = h_done,
	.lost_state = h_lost,
	.mapping_update = h_update,
	.state_changed = h_state,
	.holds_mappings = h_holds,
};

/* ---- addresses ---- */

static struct in6_addr
h_addr(const char *s)
{
	return scn_addr(s);
}

#define H_SERVER0	"192.0.2.1"
#define H_SERVER1	"192.0.2.2"
#define H_LOCAL0	"198.51.100.7"
#define H_LOCAL1	"198.51.100.8"

/* A fresh engine with n servers (all with a local address). */
static void
h_servers(size_t n)
{
	struct in6_addr addrs[2] = { h_addr(H_SERVER0), h_addr(H_SERVER1) };
	uint16_t ports[2] = { PCP_SERVER_PORT, PCP_SERVER_PORT };
	struct in6_addr l0 = h_addr(H_LOCAL0), l1 = h_addr(H_LOCAL1);

	assert_int_equal(upstream_set_servers(h->u, addrs, ports, n), 0);
	assert_int_equal(upstream_server_count(h->u), n);
	upstream_set_local(h->u, 0, &l0);
	if (n > 1)
		upstream_set_local(h->u, 1, &l1);
}

static int
h_setup(void **state)
{
	h = calloc(1, sizeof(*h));
	assert_non_null(h);
	h->now = H_T0;
	h->u = upstream_new(&h_cb, h, 12345);
	assert_non_null(h->u);
	upstream_set_transport(h->u, h_send, h);
	h_servers(1);
	*state = h;
	return 0;
}

static int
h_teardown(void **state)
{
	(void)state;
	upstream_free(h->u);
	free(h);
	h = NULL;
	return 0;
}

/* ---- time ---- */

/* Advance the clock by ms, running upstream_tick at every deadline on the
   way (Unbound's TIME_PASSES). */
static void
h_time_passes(uint64_t ms)
{
	uint64_t target = h->now + ms, next;

	while ((next = upstream_next_deadline(h->u)) <= target) {
		if (next > h->now)
			h->now = next;
		upstream_tick(h->u, h->now);
	}
	h->now = target;
}
#define TIME_PASSES(ms)	h_time_passes(ms)

/* Advance to the next deadline and run it. */
static void
h_step(void)
{
	uint64_t next = upstream_next_deadline(h->u);

	assert_true(next != UINT64_MAX);
	if (next > h->now)
		h->now = next;
	upstream_tick(h->u, h->now);
}

/* ---- transactions and packets ---- */

static void
h_txn(struct upstream_txn *t, uint8_t seed, uint16_t port)
{
	struct in_addr any = { 0 };

	memset(t, 0, sizeof(*t));
	t->opcode = PCP_OP_MAP;
	memset(t->nonce, seed, sizeof(t->nonce));
	t->nonce[0] = (uint8_t)(port >> 8);
	t->nonce[1] = (uint8_t)port;
	t->protocol = 6;
	t->internal_port = port;
	t->ext_port = port;
	pcp_addr_from_v4(&t->ext_addr, &any);
	t->lifetime = 3600;
	t->server = UPSTREAM_NO_SERVER;
	t->deadline = h->now + H_FAR;
}

static const struct h_sent *
h_last_sent(void)
{
	assert_true(h->nsent > 0);
	return &h->sent[(h->nsent - 1) % H_MAX_SENT];
}

static void
h_decode_sent(const struct h_sent *s, struct pcp_msg *m)
{
	scn_decode(s->pkt, s->len, m);
}

/* The server's answer to t: the fields it echoes (§11.4) and a grant. */
static void
h_response(const struct upstream_txn *t, uint8_t result, uint32_t epoch,
    struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->response = true;
	m->opcode = t->opcode;
	m->result = result;
	m->lifetime = result == PCP_SUCCESS ? t->lifetime :
	    PCP_LIFETIME_LONG_ERR;
	m->epoch = epoch;
	memcpy(m->nonce, t->nonce, PCP_NONCE_SIZE);
	m->protocol = t->protocol;
	m->internal_port = t->internal_port;
	m->ext_port = (uint16_t)(t->internal_port + 10000);
	m->ext_addr = h_addr("203.0.113.9");
	m->peer_port = t->peer_port;
	m->peer_addr = t->peer_addr;
	m->has_third_party = t->has_third_party;
	m->third_party = t->third_party;
}

static void
h_input(unsigned int server, const struct pcp_msg *m)
{
	scn_input(h->u, server, m, h->now);
}

static void
h_announce(unsigned int server, uint32_t epoch)
{
	scn_announce(h->u, server, epoch, h->now);
}

/* ---- tests ---- */

static void
test_first_send_now(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg m;
	struct in6_addr local = h_addr(H_LOCAL0);

	(void)state;
	h_txn(&t, 1, 5000);
	assert_int_equal(upstream_pick(h->u), 0);
	assert_true(upstream_start(h->u, &t, h->now));
	assert_int_equal(h->nsent, 1);
	assert_int_equal(h_last_sent()->at, H_T0);
	assert_int_equal(h_last_sent()->server, 0);
	assert_int_equal(t.server, 0);
	assert_int_equal(upstream_in_flight(h->u), 1);
	h_decode_sent(h_last_sent(), &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_false(m.response);
	/* C-01: the Client IP field is the socket's source address */
	assert_memory_equal(&m.client_addr, &local, sizeof(local));
	assert_memory_equal(m.nonce, t.nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.protocol, 6);
	assert_int_equal(m.internal_port, 5000);
	assert_int_equal(m.ext_port, 5000);
	assert_true(pcp_addr_is_any(&m.ext_addr));
	assert_int_equal(m.lifetime, 3600);
	/* no option unless asked for */
	assert_false(m.has_third_party);
	assert_false(m.prefer_failure);
	assert_false(m.has_description);
	/* §8.1.1: the next send is RT = (1 + RAND) * 3 s away */
	assert_in_range(upstream_next_deadline(h->u) - H_T0, 2700, 3300);
}

/* §8.1.1: 3 s (1 +- 0.1), then doubling with a fresh RAND, identical
   bytes each time (C-03). */
static void
test_retransmit_schedule(void **state)
{
	static struct upstream_txn t;
	const struct h_sent *first;
	uint64_t gap, prev_gap = 0;
	double ratio, first_ratio = 0;
	bool ratios_differ = false;
	size_t i;

	(void)state;
	h_txn(&t, 2, 5001);
	assert_true(upstream_start(h->u, &t, h->now));
	TIME_PASSES(400000);
	/* about 0, 3, 9, 21, 45, 93, 189, 381 s: RAND compounds */
	assert_in_range(h->nsent, 7, 9);
	first = &h->sent[0];
	for (i = 1; i < h->nsent; i++) {
		assert_int_equal(h->sent[i].len, first->len);
		assert_memory_equal(h->sent[i].pkt, first->pkt, first->len);
		assert_int_equal(h->sent[i].server, 0);
		gap = h->sent[i].at - h->sent[i - 1].at;
		if (i == 1) {
			assert_in_range(gap, 2700, 3300);
		} else {
			ratio = (double)gap / (double)prev_gap;
			assert_true(ratio >= 1.8 - 0.001 && ratio <= 2.2 + 0.001);
			if (i == 2)
				first_ratio = ratio;
			else if (ratio != first_ratio)
				ratios_differ = true;
		}
		prev_gap = gap;
	}
	/* a new RAND for each RT */
	assert_true(ratios_differ);
	assert_int_equal(h->ndone, 0);
}

/* §8.1.1: RT never exceeds (1 + 0.1) * MRT and reaches MRT's range. */
static void
test_retransmit_mrt_cap(void **state)
{
	static struct upstream_txn t;
	uint64_t gap, max_gap = 0;
	size_t i;

	(void)state;
	h_txn(&t, 3, 5002);
	assert_true(upstream_start(h->u, &t, h->now));
	TIME_PASSES(8000000);
	assert_true(h->nsent > 12 && h->nsent < H_MAX_SENT);
	for (i = 1; i < h->nsent; i++) {
		gap = h->sent[i].at - h->sent[i - 1].at;
		assert_true(gap <= PCP_RT_MRT_MS + PCP_RT_MRT_MS / 10);
		if (gap > max_gap)
			max_gap = gap;
	}
	assert_true(max_gap >= PCP_RT_MRT_MS - PCP_RT_MRT_MS / 10);
	gap = h->sent[h->nsent - 1].at - h->sent[h->nsent - 2].at;
	assert_true(gap >= PCP_RT_MRT_MS - PCP_RT_MRT_MS / 10);
}

static void
test_deadline_timeout(void **state)
{
	static struct upstream_txn t;
	struct upstream_server_info info;
	size_t i;

	(void)state;
	h_txn(&t, 4, 5003);
	t.deadline = h->now + 45000;
	assert_true(upstream_start(h->u, &t, h->now));
	TIME_PASSES(44999);
	assert_int_equal(h->ndone, 0);
	/* RFC 7488's four sends at about 0, 3, 9, 21 s; RAND may fit a
	   fifth */
	assert_in_range(h->nsent, 4, 5);
	TIME_PASSES(1);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &t);
	assert_int_equal(h->done_outcome, UPSTREAM_TIMEOUT);
	assert_false(h->done_has_resp);
	assert_int_equal(h->done_at, H_T0 + 45000);
	assert_int_equal(upstream_in_flight(h->u), 0);
	assert_true(upstream_next_deadline(h->u) == UINT64_MAX);
	/* no answer: the server is down */
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	assert_int_equal(info.timeouts, 1);
	assert_string_equal(info.last_error, "no answer");
	assert_int_equal(h->nstate, 1);
	assert_int_equal(h->state_old, UPSTREAM_UNKNOWN);
	assert_int_equal(h->state_new, UPSTREAM_DOWN);
	i = h->nsent;
	TIME_PASSES(100000);
	assert_int_equal(h->nsent, i);
	assert_int_equal(h->ndone, 1);
}

static void
test_reply_matching(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;
	struct upstream_server_info info;

	(void)state;
	h_servers(2);
	h_txn(&t, 5, 5004);
	assert_true(upstream_start(h->u, &t, h->now));
	TIME_PASSES(100);
	/* error replies that do not match are ignored (§8.3) */
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.nonce[5] ^= 1;
	h_input(0, &r);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.internal_port++;
	h_input(0, &r);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.protocol = 17;
	h_input(0, &r);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.has_third_party = true;
	r.third_party = h_addr("10.0.0.5");
	h_input(0, &r);
	/* the right answer from another server */
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	h_input(1, &r);
	assert_int_equal(h->ndone, 0);
	assert_int_equal(h->nupdate, 0);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(upstream_in_flight(h->u), 1);
	/* an unmatched SUCCESS is a Mapping Update (§14.2), not the reply */
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.nonce[0] ^= 0xff;
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	assert_int_equal(h->nupdate, 1);
	/* malformed: not a multiple of 4, or a request */
	{
		uint8_t buf[PCP_MAX_SIZE];
		size_t len;

		h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
		len = pcp_encode(&r, buf, sizeof(buf));
		upstream_input(h->u, 0, buf, len - 1, h->now);
		buf[1] &= (uint8_t)~PCP_R_BIT;
		upstream_input(h->u, 0, buf, len, h->now);
		upstream_input(h->u, 0, buf, 3, h->now);
		upstream_input(h->u, 7, buf, len, h->now);
	}
	assert_int_equal(h->ndone, 0);
	assert_int_equal(h->nupdate, 1);
	/* the right one */
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &t);
	assert_int_equal(h->done_outcome, UPSTREAM_REPLY);
	assert_true(h->done_has_resp);
	assert_int_equal(h->done_resp.result, PCP_SUCCESS);
	assert_int_equal(h->done_resp.ext_port, 15004);
	assert_int_equal(h->done_resp.lifetime, 3600);
	assert_int_equal(h->done_server, 0);
	assert_int_equal(upstream_in_flight(h->u), 0);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	assert_true(info.epoch_known);
	assert_int_equal(info.epoch, H_EPOCH0);
	assert_int_equal(info.replies, 2);	/* the update and the reply */
	assert_int_equal(h->state_old, UPSTREAM_UNKNOWN);
	assert_int_equal(h->state_new, UPSTREAM_UP);
	/* a duplicate later is unmatched: a Mapping Update */
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->nupdate, 2);
}

/* An error reply is a reply too (the proxy translates it). */
static void
test_error_reply(void **state)
{
	static struct upstream_txn t;
	uint8_t buf[PCP_MAX_SIZE];
	size_t len;

	(void)state;
	h_txn(&t, 6, 5005);
	assert_true(upstream_start(h->u, &t, h->now));
	/* §8.2: an error reply copies the request */
	len = pcp_encode_error(h_last_sent()->pkt, h_last_sent()->len,
	    PCP_NO_RESOURCES, PCP_LIFETIME_SHORT_ERR, H_EPOCH0, buf,
	    sizeof(buf));
	assert_true(len > 0);
	upstream_input(h->u, 0, buf, len, h->now);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_outcome, UPSTREAM_REPLY);
	assert_int_equal(h->done_resp.result, PCP_NO_RESOURCES);
	assert_int_equal(h->done_resp.lifetime, PCP_LIFETIME_SHORT_ERR);
}

static void
test_options_encoded(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg m, r;
	struct in6_addr host = h_addr("192.168.1.20");

	(void)state;
	h_txn(&t, 7, 5006);
	t.has_third_party = true;
	t.third_party = host;
	t.prefer_failure = true;
	strcpy(t.description, "console: game port");
	assert_true(upstream_start(h->u, &t, h->now));
	h_decode_sent(h_last_sent(), &m);
	assert_true(m.has_third_party);
	assert_memory_equal(&m.third_party, &host, sizeof(host));
	assert_true(m.prefer_failure);
	assert_true(m.has_description);
	assert_int_equal(m.description_len, strlen("console: game port"));
	assert_string_equal(m.description, "console: game port");
	/* §8.3: a THIRD_PARTY request is answered for THIRD_PARTY's host */
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.has_third_party = false;
	h_input(0, &r);
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.third_party = h_addr("192.168.1.21");
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_true(h->done_resp.has_third_party);
}

static void
test_peer_match(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg m, r;

	(void)state;
	h_txn(&t, 8, 5007);
	t.opcode = PCP_OP_PEER;
	t.prefer_failure = true;	/* §13.2: not for PEER, not sent */
	t.peer_port = 443;
	t.peer_addr = h_addr("203.0.113.80");
	assert_true(upstream_start(h->u, &t, h->now));
	h_decode_sent(h_last_sent(), &m);
	assert_int_equal(m.opcode, PCP_OP_PEER);
	assert_int_equal(m.peer_port, 443);
	assert_false(m.prefer_failure);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.peer_port = 444;
	h_input(0, &r);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.peer_addr = h_addr("203.0.113.81");
	h_input(0, &r);
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	r.opcode = PCP_OP_MAP;
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_resp.opcode, PCP_OP_PEER);
}

/* RFC 6887 §8.5 on a run of responses, with the formula's edges. */
static void
test_epoch_checks(void **state)
{
	uint32_t e = H_EPOCH0;

	(void)state;
	h_announce(0, e);			/* the first is accepted */
	assert_int_equal(h->nlost, 0);
	TIME_PASSES(10000);
	h_announce(0, e += 10);			/* normal progression */
	TIME_PASSES(1000);
	h_announce(0, e += 1);
	/* [derived] a 1-second step back is tolerated */
	h_announce(0, e -= 1);
	assert_int_equal(h->nlost, 0);
	/* too slow: cd 100 s, sd + 2 < cd - cd/16 = 94 fails at sd < 92 */
	TIME_PASSES(100000);
	h_announce(0, e += 92);
	assert_int_equal(h->nlost, 0);
	TIME_PASSES(100000);
	h_announce(0, e += 91);
	assert_int_equal(h->nlost, 1);
	assert_int_equal(h->lost_server, 0);
	/* too fast: cd 100 s, cd + 2 < sd - sd/16 fails at sd > 108 */
	TIME_PASSES(100000);
	h_announce(0, e += 108);
	assert_int_equal(h->nlost, 1);
	TIME_PASSES(100000);
	h_announce(0, e += 109);
	assert_int_equal(h->nlost, 2);
	/* back by two seconds: a reset */
	TIME_PASSES(1000);
	h_announce(0, e -= 2);
	assert_int_equal(h->nlost, 3);
	/* the values were recorded anyway: continuing from there is fine */
	TIME_PASSES(5000);
	h_announce(0, e += 5);
	assert_int_equal(h->nlost, 3);
}

/* §14.1.3: a restarted server announces itself with a small epoch. */
static void
test_announce_reset(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;

	(void)state;
	h_txn(&t, 9, 5008);
	assert_true(upstream_start(h->u, &t, h->now));
	h_response(&t, PCP_SUCCESS, 500000, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	TIME_PASSES(60000);
	h_announce(0, 3);
	assert_int_equal(h->nlost, 1);
	assert_int_equal(h->lost_server, 0);
	/* the repeats of that ANNOUNCE are consistent with it */
	TIME_PASSES(1000);
	h_announce(0, 4);
	TIME_PASSES(2000);
	h_announce(0, 6);
	assert_int_equal(h->nlost, 1);
	/* an ANNOUNCE with an error result is not acted on */
	{
		struct pcp_msg m;

		memset(&m, 0, sizeof(m));
		m.version = PCP_VERSION;
		m.response = true;
		m.opcode = PCP_OP_ANNOUNCE;
		m.result = PCP_NOT_AUTHORIZED;
		m.epoch = 0;
		TIME_PASSES(60000);
		h_input(0, &m);
		assert_int_equal(h->nlost, 1);
	}
}

/* A reply whose epoch shows a restart: done first, then lost_state. */
static void
test_reply_epoch_lost(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;

	(void)state;
	h_announce(0, 90000);
	TIME_PASSES(10000);
	h_txn(&t, 10, 5009);
	assert_true(upstream_start(h->u, &t, h->now));
	h_response(&t, PCP_SUCCESS, 10, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->nlost, 1);
}

static void
test_mapping_update(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;

	(void)state;
	h_txn(&t, 11, 5010);			/* not started */
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.ext_port = 40000;
	h_input(0, &r);
	assert_int_equal(h->nupdate, 1);
	assert_int_equal(h->update_server, 0);
	assert_int_equal(h->update.ext_port, 40000);
	assert_memory_equal(h->update.nonce, t.nonce, PCP_NONCE_SIZE);
	/* unmatched errors are ignored (§8.3) */
	h_response(&t, PCP_CANNOT_PROVIDE_EXTERNAL, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->nupdate, 1);
	assert_int_equal(h->ndone, 0);
}

/* RFC 7488 §3: four sends, then the next server. */
static void
test_failover_after_mrc(void **state)
{
	static struct upstream_txn t;
	struct upstream_server_info info;
	struct pcp_msg m, r;
	struct in6_addr local1 = h_addr(H_LOCAL1);
	size_t i;

	(void)state;
	h_servers(2);
	h_txn(&t, 12, 5011);
	t.deadline = h->now + 200000;
	assert_true(upstream_start(h->u, &t, h->now));
	while (h->nsent < 5)
		h_step();
	assert_int_equal(h->nsent, 5);
	for (i = 0; i < 4; i++)
		assert_int_equal(h->sent[i].server, 0);
	assert_int_equal(h->sent[4].server, 1);
	/* the fifth send is when the fifth RT to server 0 would have been */
	assert_in_range(h->sent[4].at - h->sent[3].at,
	    (uint64_t)(h->sent[3].at - h->sent[2].at) * 18 / 10,
	    (uint64_t)(h->sent[3].at - h->sent[2].at) * 22 / 10 + 1);
	assert_int_equal(t.server, 1);
	/* the Client IP toward server 1 is that socket's address */
	h_decode_sent(&h->sent[4], &m);
	assert_memory_equal(&m.client_addr, &local1, sizeof(local1));
	assert_memory_equal(m.nonce, t.nonce, PCP_NONCE_SIZE);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	/* a fresh §8.1.1 schedule on the new server */
	h_step();
	assert_int_equal(h->nsent, 6);
	assert_int_equal(h->sent[5].server, 1);
	assert_in_range(h->sent[5].at - h->sent[4].at, 2700, 3300);
	/* a late reply from server 0 does not end it (RFC 7488) */
	h_response(&t, PCP_NO_RESOURCES, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(1, &r);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_server, 1);
	/* server 1 answered: the engine now prefers it */
	assert_int_equal(upstream_pick(h->u), 1);
}

/* A mapping stays on its server: no failover for a fixed server. */
static void
test_fixed_server_stays(void **state)
{
	static struct upstream_txn t, t2;
	size_t i;

	(void)state;
	h_servers(2);
	h_txn(&t, 13, 5012);
	t.server = 0;
	assert_true(upstream_start(h->u, &t, h->now));
	TIME_PASSES(400000);
	assert_true(h->nsent >= 7);
	for (i = 0; i < h->nsent; i++)
		assert_int_equal(h->sent[i].server, 0);
	assert_int_equal(t.server, 0);
	/* and a fixed server 1 goes to 1 although 0 comes first */
	h_txn(&t2, 14, 5013);
	t2.server = 1;
	assert_true(upstream_start(h->u, &t2, h->now));
	assert_int_equal(h_last_sent()->server, 1);
}

static void
test_hard_error(void **state)
{
	static struct upstream_txn a, b;
	struct upstream_server_info info;

	(void)state;
	h_servers(2);
	h_txn(&a, 15, 5014);
	h_txn(&b, 15, 5015);
	b.server = 0;
	assert_true(upstream_start(h->u, &a, h->now));
	assert_true(upstream_start(h->u, &b, h->now));
	assert_int_equal(h->nsent, 2);
	TIME_PASSES(1000);
	/* ICMP port unreachable on server 0's socket: a moves at once, the
	   fixed b ends */
	upstream_hard_error(h->u, 0, ECONNREFUSED, h->now);
	assert_int_equal(h->nsent, 3);
	assert_int_equal(h_last_sent()->server, 1);
	assert_int_equal(h_last_sent()->at, H_T0 + 1000);
	assert_int_equal(a.server, 1);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &b);
	assert_int_equal(h->done_outcome, UPSTREAM_UNREACHABLE);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	assert_string_equal(info.last_error, strerror(ECONNREFUSED));
	/* server 1 fails too: nowhere left */
	upstream_hard_error(h->u, 1, EHOSTUNREACH, h->now);
	assert_int_equal(h->ndone, 2);
	assert_ptr_equal(h->done_txn, &a);
	assert_int_equal(h->done_outcome, UPSTREAM_UNREACHABLE);
	assert_int_equal(upstream_in_flight(h->u), 0);
}

/* The transport's errno is a hard error too; done never runs inside
   upstream_start. */
static void
test_send_error(void **state)
{
	static struct upstream_txn a, b;

	(void)state;
	h_servers(2);
	h->send_error[0] = ENETUNREACH;
	h_txn(&a, 16, 5016);
	assert_true(upstream_start(h->u, &a, h->now));
	assert_int_equal(h->nsent, 0);
	assert_int_equal(h->ndone, 0);
	assert_true(upstream_next_deadline(h->u) == h->now);
	upstream_tick(h->u, h->now);
	assert_int_equal(h->nsent, 1);
	assert_int_equal(h_last_sent()->server, 1);
	/* fixed on the failing server: UNREACHABLE at the tick */
	h_txn(&b, 16, 5017);
	b.server = 0;
	assert_true(upstream_start(h->u, &b, h->now));
	assert_int_equal(h->ndone, 0);
	upstream_tick(h->u, h->now);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &b);
	assert_int_equal(h->done_outcome, UPSTREAM_UNREACHABLE);
	assert_int_equal(upstream_in_flight(h->u), 1);
}

/* A server without a local address (socket not connected) is not used. */
static void
test_no_local_address(void **state)
{
	static struct upstream_txn t;

	(void)state;
	upstream_set_local(h->u, 0, NULL);
	assert_int_equal(upstream_pick(h->u), UPSTREAM_NO_SERVER);
	h_txn(&t, 17, 5018);
	assert_true(upstream_start(h->u, &t, h->now));
	assert_int_equal(h->nsent, 0);
	TIME_PASSES(1);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_outcome, UPSTREAM_UNREACHABLE);
}

static void
test_cancel(void **state)
{
	static struct upstream_txn t[5], never;
	struct pcp_msg r;
	size_t i;

	(void)state;
	for (i = 0; i < 5; i++) {
		h_txn(&t[i], 18, (uint16_t)(6000 + i));
		assert_true(upstream_start(h->u, &t[i], h->now));
		TIME_PASSES(100);
	}
	upstream_cancel(h->u, &t[2]);
	upstream_cancel(h->u, &t[2]);		/* twice is harmless */
	memset(&never, 0, sizeof(never));
	upstream_cancel(h->u, &never);		/* never started */
	assert_int_equal(upstream_in_flight(h->u), 4);
	h_response(&t[2], PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	h->nsent = 0;
	TIME_PASSES(4000);
	assert_int_equal(h->nsent, 4);
	for (i = 0; i < h->nsent; i++)
		assert_int_not_equal(h->sent[i].pkt[41], 6002 & 0xff);
	for (i = 0; i < 5; i++)
		upstream_cancel(h->u, &t[i]);
	assert_int_equal(upstream_in_flight(h->u), 0);
	assert_true(upstream_next_deadline(h->u) == UINT64_MAX);
	TIME_PASSES(100000);
	assert_int_equal(h->nsent, 4);
	assert_int_equal(h->ndone, 0);
}

/* done() may restart the transaction it is handed. */
static void
test_restart_from_done(void **state)
{
	static struct upstream_txn t;

	(void)state;
	h_txn(&t, 19, 5019);
	t.deadline = h->now + 10000;
	assert_true(upstream_start(h->u, &t, h->now));
	h->restart_on_done = true;
	TIME_PASSES(10000);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_outcome, UPSTREAM_TIMEOUT);
	assert_int_equal(upstream_in_flight(h->u), 1);
	assert_int_equal(h_last_sent()->at, h->now);
	TIME_PASSES(60000);
	assert_int_equal(h->ndone, 2);
	assert_int_equal(upstream_in_flight(h->u), 0);
}

/* §9: a server of another version ends everything sent to it. */
static void
test_unsupp_version(void **state)
{
	static struct upstream_txn a, b;
	/* NAT-PMP's answer (RFC 6886): version 0, op 128 + 0, result 1 */
	const uint8_t natpmp[8] = { 0, 0x80, 0, PCP_UNSUPP_VERSION, 0, 0, 1, 0 };

	(void)state;
	h_txn(&a, 20, 5020);
	h_txn(&b, 20, 5021);
	assert_true(upstream_start(h->u, &a, h->now));
	assert_true(upstream_start(h->u, &b, h->now));
	upstream_input(h->u, 0, natpmp, sizeof(natpmp), h->now);
	assert_int_equal(h->ndone, 2);
	assert_int_equal(h->done_outcome, UPSTREAM_REPLY);
	assert_int_equal(h->done_resp.result, PCP_UNSUPP_VERSION);
	assert_int_equal(h->done_resp.version, 0);
	assert_int_equal(upstream_in_flight(h->u), 0);
}

static void
test_set_servers(void **state)
{
	static struct upstream_txn t;
	struct in6_addr addrs[UPSTREAM_MAX_SERVERS + 1];
	uint16_t ports[UPSTREAM_MAX_SERVERS + 1];
	struct upstream_server_info info;

	(void)state;
	memset(addrs, 0, sizeof(addrs));
	memset(ports, 0, sizeof(ports));
	assert_int_equal(upstream_set_servers(h->u, addrs, ports,
	    UPSTREAM_MAX_SERVERS + 1), -1);
	h_servers(2);
	h_txn(&t, 21, 5022);
	t.server = 1;
	assert_true(upstream_start(h->u, &t, h->now));
	/* server 1 is removed: its transaction ends (fixed) */
	h_servers(1);
	TIME_PASSES(1);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->done_outcome, UPSTREAM_UNREACHABLE);
	upstream_server_info(h->u, 1, &info);
	assert_int_equal(info.port, 0);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.port, PCP_SERVER_PORT);
	assert_true(info.local_known);
	assert_string_equal(upstream_state_name(UPSTREAM_UP), "up");
}

/* A server restart makes the proxy re-create everything at once. */
#define H_MANY	10000

static void
test_many_transactions(void **state)
{
	struct upstream_txn *t;
	struct pcp_msg r;
	size_t i;

	(void)state;
	t = calloc(H_MANY, sizeof(*t));
	assert_non_null(t);
	for (i = 0; i < H_MANY; i++) {
		h_txn(&t[i], (uint8_t)(i >> 16), (uint16_t)(1024 + i));
		assert_true(upstream_start(h->u, &t[i], h->now));
	}
	assert_int_equal(upstream_in_flight(h->u), H_MANY);
	assert_int_equal(h->nsent, H_MANY);
	TIME_PASSES(3300);
	assert_int_equal(h->nsent, 2 * H_MANY);
	/* answered in reverse order; each reply reaches its own txn */
	for (i = H_MANY; i-- > 0;) {
		h_response(&t[i], PCP_SUCCESS, H_EPOCH0 + 3, &r);
		h_input(0, &r);
		assert_int_equal(h->ndone, H_MANY - i);
		assert_ptr_equal(h->done_txn, &t[i]);
		assert_int_equal(h->done_resp.internal_port, 1024 + i);
	}
	assert_int_equal(upstream_in_flight(h->u), 0);
	assert_true(upstream_next_deadline(h->u) == UINT64_MAX);
	TIME_PASSES(100000);
	assert_int_equal(h->nsent, 2 * H_MANY);
	assert_int_equal(h->nlost, 0);
	/* and again, this time all timing out */
	for (i = 0; i < H_MANY; i++) {
		h_txn(&t[i], 1, (uint16_t)(1024 + i));
		t[i].deadline = h->now + 10000 + i;
		assert_true(upstream_start(h->u, &t[i], h->now));
	}
	TIME_PASSES(20000);
	assert_int_equal(h->ndone, 2 * H_MANY);
	assert_int_equal(upstream_in_flight(h->u), 0);
	free(t);
}

/* A newer request for a mapping replaces the older (upstream.h): a delete
   followed at once by a re-create of the same mapping share one match
   key; the delete ends REPLACED at the next tick (never from inside
   upstream_start), and its late answer reaches nobody's transaction.
   (Fix: the delete's SUCCESS, lifetime 0, was taken as the create's.) */
static void
test_newer_replaces_older(void **state)
{
	static struct upstream_txn del, cre, other;
	struct pcp_msg r;

	(void)state;
	h_txn(&del, 8, 6000);
	del.lifetime = 0;
	assert_true(upstream_start(h->u, &del, h->now));
	h_txn(&other, 9, 6000);		/* another nonce: not replaced */
	assert_true(upstream_start(h->u, &other, h->now));
	h_txn(&cre, 8, 6000);
	assert_true(upstream_start(h->u, &cre, h->now));
	assert_int_equal(h->ndone, 0);
	assert_int_equal(h->nsent, 3);
	assert_int_equal(upstream_next_deadline(h->u), h->now);
	upstream_tick(h->u, h->now);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &del);
	assert_int_equal(h->done_outcome, UPSTREAM_REPLACED);
	assert_false(h->done_has_resp);
	assert_int_equal(upstream_in_flight(h->u), 2);
	/* the delete's answer: unmatched, so only a (would-be) update */
	h_response(&del, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_int_equal(h->nupdate, 1);
	/* the create's answer reaches the create */
	h_response(&cre, PCP_SUCCESS, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 2);
	assert_ptr_equal(h->done_txn, &cre);
	assert_int_equal(h->done_resp.lifetime, 3600);
	/* restarting a transaction does not replace itself */
	assert_true(upstream_start(h->u, &other, h->now));
	TIME_PASSES(100);
	assert_int_equal(h->ndone, 2);
	assert_int_equal(upstream_in_flight(h->u), 1);
	/* a PEER is another mapping than the MAP of its endpoint */
	h_txn(&cre, 9, 6000);
	cre.opcode = PCP_OP_PEER;
	cre.peer_addr = h_addr("203.0.113.50");
	cre.peer_port = 7200;
	assert_true(upstream_start(h->u, &cre, h->now));
	TIME_PASSES(100);
	assert_int_equal(h->ndone, 2);
	assert_int_equal(upstream_in_flight(h->u), 2);
}

/* RFC 6887 §15: a SUCCESS with lifetime 0 answers a delete only, and a
   SUCCESS with a lifetime a create only; errors match either. */
static void
test_lifetime_zero_matching(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;

	(void)state;
	h_txn(&t, 10, 6100);
	assert_true(upstream_start(h->u, &t, h->now));
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.lifetime = 0;
	h_input(0, &r);
	assert_int_equal(h->ndone, 0);
	assert_int_equal(upstream_in_flight(h->u), 1);
	r.lifetime = 3600;
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);

	h_txn(&t, 10, 6100);
	t.lifetime = 0;
	assert_true(upstream_start(h->u, &t, h->now));
	h_response(&t, PCP_SUCCESS, H_EPOCH0, &r);
	r.lifetime = 3600;
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	r.lifetime = 0;
	h_input(0, &r);
	assert_int_equal(h->ndone, 2);
	assert_int_equal(h->done_resp.lifetime, 0);

	h_txn(&t, 10, 6100);
	t.lifetime = 0;
	assert_true(upstream_start(h->u, &t, h->now));
	h_response(&t, PCP_NOT_AUTHORIZED, H_EPOCH0, &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 3);
	assert_int_equal(h->done_resp.result, PCP_NOT_AUTHORIZED);
}

/* ---- the liveness probe (RFC 6887 §14.1.2) ---- */

#define H_PROBE_MS	30000u
#define H_PROBE_MIN	(H_PROBE_MS - H_PROBE_MS / 4)
#define H_PROBE_MAX	(H_PROBE_MS + H_PROBE_MS / 4)

/* Whether sent packet k is a probe: an ANNOUNCE request, lifetime 0, no
   body, from the local address toward that server (C-01). */
static bool
h_is_probe(size_t k)
{
	const struct h_sent *s = &h->sent[k % H_MAX_SENT];
	struct pcp_msg m;
	struct in6_addr local;

	h_decode_sent(s, &m);
	if (m.opcode != PCP_OP_ANNOUNCE)
		return false;
	local = h_addr(s->server == 0 ? H_LOCAL0 : H_LOCAL1);
	assert_int_equal(s->len, PCP_HDR_SIZE);
	assert_int_equal(m.lifetime, 0);
	assert_memory_equal(&m.client_addr, &local, sizeof(local));
	return true;
}

static size_t
h_count_probes(void)
{
	size_t k, n = 0;

	for (k = 0; k < h->nsent; k++)
		if (h_is_probe(k))
			n++;
	return n;
}

/* The server's answer to an ANNOUNCE request, with any result. */
static void
h_announce_result(unsigned int server, uint8_t result, uint32_t epoch)
{
	struct pcp_msg m;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.result = result;
	m.epoch = epoch;
	h_input(server, &m);
}

/* An epoch that advances with our clock since H_T0. */
static uint32_t
h_epoch_now(void)
{
	return H_EPOCH0 + (uint32_t)((h->now - H_T0) / 1000);
}

/* Run the clock until the next send (at most ms), true if one came. */
static bool
h_until_sent(uint64_t ms)
{
	uint64_t target = h->now + ms, next;
	size_t before = h->nsent;

	while (h->nsent == before &&
	    (next = upstream_next_deadline(h->u)) <= target) {
		if (next > h->now)
			h->now = next;
		upstream_tick(h->u, h->now);
	}
	if (h->nsent == before)
		h->now = target;
	return h->nsent > before;
}

/* A server holding our mappings and silent is probed every 30 s +-25 %,
   each probe one ANNOUNCE datagram; the gaps really vary. */
static void
test_probe_interval_jitter(void **state)
{
	uint64_t last, gap, min_gap = UINT64_MAX, max_gap = 0;
	size_t i;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h_announce(0, h_epoch_now());		/* heard from: up */
	last = h->now;
	for (i = 0; i < 40; i++) {
		assert_true(h_until_sent(H_PROBE_MAX + 1));
		assert_true(h_is_probe(h->nsent - 1));
		assert_int_equal(h_last_sent()->server, 0);
		gap = h->now - last;
		assert_in_range(gap, H_PROBE_MIN, H_PROBE_MAX);
		if (gap < min_gap)
			min_gap = gap;
		if (gap > max_gap)
			max_gap = gap;
		last = h->now;
		/* answered at once: the next waits a whole interval */
		h_announce_result(0, PCP_SUCCESS, h_epoch_now());
	}
	assert_int_equal(h->nsent, 40);		/* no retransmission */
	assert_true(max_gap - min_gap > H_PROBE_MS / 4);
	assert_int_equal(h->nlost, 0);
	assert_int_equal(h->ndone, 0);
	{
		struct upstream_server_info info;

		upstream_server_info(h->u, 0, &info);
		assert_int_equal(info.probes, 40);
		assert_int_equal(info.probe_misses, 0);
		assert_int_equal(info.state, UPSTREAM_UP);
	}
	/* unanswered, a probe is not retransmitted before the next one */
	assert_true(h_until_sent(H_PROBE_MAX + 1));
	assert_false(h_until_sent(H_PROBE_MIN - 1));
}

/* Replies to real requests prove the server alive (their epochs are
   checked): no probe while they come, one after a silence. */
static void
test_probe_skipped_while_traffic(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;
	uint64_t last = 0;
	size_t i;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	for (i = 0; i < 20; i++) {
		h_txn(&t, 40, (uint16_t)(7000 + i));
		assert_true(upstream_start(h->u, &t, h->now));
		h_response(&t, PCP_SUCCESS, h_epoch_now(), &r);
		h_input(0, &r);
		last = h->now;
		TIME_PASSES(H_PROBE_MIN - 1000);
	}
	assert_int_equal(h->ndone, 20);
	assert_int_equal(h->nsent, 20);
	assert_int_equal(h_count_probes(), 0);
	/* the traffic stops: a probe within an interval of the last reply */
	assert_true(h_until_sent(H_PROBE_MAX));
	assert_true(h_is_probe(h->nsent - 1));
	assert_in_range(h->now - last, H_PROBE_MIN, H_PROBE_MAX);
}

/* A restart whose ANNOUNCE never arrived: the probe's answer shows the
   Epoch gone back (§8.5) and lost_state fires, once. */
static void
test_probe_finds_epoch_jump(void **state)
{
	struct upstream_server_info info;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h_announce(0, 500000);
	TIME_PASSES(5000);
	assert_true(h_until_sent(H_PROBE_MAX));
	assert_true(h_is_probe(h->nsent - 1));
	assert_int_equal(h->nlost, 0);
	h_announce_result(0, PCP_SUCCESS, 3);
	assert_int_equal(h->nlost, 1);
	assert_int_equal(h->lost_server, 0);
	upstream_server_info(h->u, 0, &info);
	assert_true(info.epoch_known);
	assert_int_equal(info.epoch, 3);
	assert_int_equal(info.state, UPSTREAM_UP);
	/* the next probe finds the new epoch consistent */
	assert_true(h_until_sent(H_PROBE_MAX + 1));
	h_announce_result(0, PCP_SUCCESS, 3 + (uint32_t)(h->now -
	    h->sent[(h->nsent - 2) % H_MAX_SENT].at) / 1000);
	assert_int_equal(h->nlost, 1);
}

/* A DOWN server holding our mappings is probed every 15 s +-25 %; its
   first answer brings it up (and its last error stays for status). */
static void
test_probe_down_to_up(void **state)
{
	struct upstream_server_info info;
	uint64_t last;
	size_t i;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h_announce(0, h_epoch_now());
	upstream_hard_error(h->u, 0, ECONNREFUSED, h->now);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	last = h->now;
	for (i = 0; i < 6; i++) {
		assert_true(h_until_sent(H_PROBE_MAX));
		assert_true(h_is_probe(h->nsent - 1));
		assert_in_range(h->now - last, H_PROBE_MIN / 2,
		    H_PROBE_MAX / 2);
		last = h->now;
	}
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	assert_int_equal(info.probe_misses, 5);
	h->nstate = 0;
	h_announce_result(0, PCP_SUCCESS, h_epoch_now());
	assert_int_equal(h->nstate, 1);
	assert_int_equal(h->state_old, UPSTREAM_DOWN);
	assert_int_equal(h->state_new, UPSTREAM_UP);
	assert_int_equal(h->nlost, 0);
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	assert_int_equal(info.probe_misses, 0);
	assert_string_equal(info.last_error, strerror(ECONNREFUSED));
	/* up again: back to the 30 s pace */
	assert_true(h_until_sent(H_PROBE_MAX));
	assert_in_range(h->now - last, H_PROBE_MIN, H_PROBE_MAX);
}

/* A DOWN server without our mappings: probes back off, doubling, to RFC
   7488's 15 minutes; a probe that cannot be sent keeps it DOWN. */
static void
test_probe_down_backoff(void **state)
{
	static const uint64_t cap = 15 * 60 * 1000;
	uint64_t last, base = H_PROBE_MS / 2, want;
	size_t i;

	(void)state;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h->send_error[0] = EHOSTUNREACH;
	TIME_PASSES(1);				/* armed */
	h_announce(0, h_epoch_now());
	h->holds[0] = true;
	/* the probe's send fails hard: DOWN, like a request's (RFC 7488) */
	assert_false(h_until_sent(H_PROBE_MAX + 1));
	{
		struct upstream_server_info info;

		upstream_server_info(h->u, 0, &info);
		assert_int_equal(info.state, UPSTREAM_DOWN);
		assert_string_equal(info.last_error, strerror(EHOSTUNREACH));
		assert_int_equal(info.probes, 1);
	}
	h->send_error[0] = 0;
	h->holds[0] = false;
	assert_true(h_until_sent(H_PROBE_MAX));
	last = h->now;
	for (i = 1; i < 12; i++) {
		want = base << i < cap ? base << i : cap;
		assert_true(h_until_sent(cap + cap / 4 + 1));
		assert_in_range(h->now - last, want - want / 4,
		    want + want / 4);
		last = h->now;
	}
	assert_int_equal(h->nlost, 0);
}

/* No mappings held and not DOWN, or probing off: nothing is sent. */
static void
test_probe_none_when_idle(void **state)
{
	(void)state;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	TIME_PASSES(3600000);			/* UNKNOWN, nothing held */
	h_announce(0, h_epoch_now());
	TIME_PASSES(3600000);			/* UP, nothing held */
	assert_int_equal(h->nsent, 0);
	assert_true(h->nholds > 0);		/* it did ask */
	/* off: not even a DOWN server is probed */
	upstream_set_probe_interval(h->u, 0);
	h->holds[0] = true;
	upstream_hard_error(h->u, 0, ECONNREFUSED, h->now);
	assert_true(upstream_next_deadline(h->u) == UINT64_MAX);
	TIME_PASSES(3600000);
	assert_int_equal(h->nsent, 0);
	/* a server without a local address cannot be probed either */
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	upstream_set_local(h->u, 0, NULL);
	TIME_PASSES(3600000);
	assert_int_equal(h->nsent, 0);
}

/* The probe's answer is never a transaction's, and a transaction's never
   the probe's; an error answer to the probe still shows the server up. */
static void
test_probe_reply_not_mistaken(void **state)
{
	static struct upstream_txn t;
	struct pcp_msg r;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h_announce(0, h_epoch_now());
	assert_true(h_until_sent(H_PROBE_MAX));
	assert_true(h_is_probe(h->nsent - 1));
	h_txn(&t, 41, 7100);
	t.deadline = h->now + 1000000;
	assert_true(upstream_start(h->u, &t, h->now));
	/* the probe's answer does not end the MAP */
	h_announce_result(0, PCP_UNSUPP_OPCODE, h_epoch_now());
	assert_int_equal(h->ndone, 0);
	assert_int_equal(upstream_in_flight(h->u), 1);
	{
		struct upstream_server_info info;

		upstream_server_info(h->u, 0, &info);
		assert_int_equal(info.probe_misses, 0);
		assert_int_equal(info.replies, 2);
	}
	/* the MAP's answer ends the MAP only */
	h_response(&t, PCP_SUCCESS, h_epoch_now(), &r);
	h_input(0, &r);
	assert_int_equal(h->ndone, 1);
	assert_ptr_equal(h->done_txn, &t);
	assert_int_equal(h->done_resp.opcode, PCP_OP_MAP);
	assert_int_equal(h->nlost, 0);
}

/* A server that answered probes and then leaves three in a row unanswered
   is DOWN; one that never answered one is not judged by them. */
static void
test_probe_misses_mark_down(void **state)
{
	struct upstream_server_info info;
	size_t i;

	(void)state;
	h->holds[0] = true;
	upstream_set_probe_interval(h->u, H_PROBE_MS);
	h_announce(0, h_epoch_now());
	for (i = 0; i < 10; i++)		/* never answered */
		assert_true(h_until_sent(H_PROBE_MAX + 1));
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_UP);
	assert_int_equal(info.probe_misses, 9);
	h_announce_result(0, PCP_SUCCESS, h_epoch_now());	/* answered */
	for (i = 0; i < 3; i++) {
		assert_true(h_until_sent(H_PROBE_MAX + 1));
		upstream_server_info(h->u, 0, &info);
		assert_int_equal(info.state, UPSTREAM_UP);
	}
	/* the fourth probe's time: three went unanswered */
	assert_true(h_until_sent(H_PROBE_MAX + 1));
	upstream_server_info(h->u, 0, &info);
	assert_int_equal(info.state, UPSTREAM_DOWN);
	assert_string_equal(info.last_error, "no answer to ANNOUNCE");
	/* it keeps probing at the DOWN pace */
	{
		uint64_t last = h->now;

		assert_true(h_until_sent(H_PROBE_MAX));
		assert_in_range(h->now - last, H_PROBE_MIN / 2,
		    H_PROBE_MAX / 2);
	}
}

#define H_TEST(f)	cmocka_unit_test_setup_teardown(f, h_setup, h_teardown)

int
main(void)
{
	const struct CMUnitTest tests[] = {
		H_TEST(test_first_send_now),
		H_TEST(test_retransmit_schedule),
		H_TEST(test_retransmit_mrt_cap),
		H_TEST(test_deadline_timeout),
		H_TEST(test_reply_matching),
		H_TEST(test_error_reply),
		H_TEST(test_options_encoded),
		H_TEST(test_peer_match),
		H_TEST(test_epoch_checks),
		H_TEST(test_announce_reset),
		H_TEST(test_reply_epoch_lost),
		H_TEST(test_mapping_update),
		H_TEST(test_failover_after_mrc),
		H_TEST(test_fixed_server_stays),
		H_TEST(test_hard_error),
		H_TEST(test_send_error),
		H_TEST(test_no_local_address),
		H_TEST(test_cancel),
		H_TEST(test_restart_from_done),
		H_TEST(test_unsupp_version),
		H_TEST(test_set_servers),
		H_TEST(test_many_transactions),
		H_TEST(test_newer_replaces_older),
		H_TEST(test_lifetime_zero_matching),
		H_TEST(test_probe_interval_jitter),
		H_TEST(test_probe_skipped_while_traffic),
		H_TEST(test_probe_finds_epoch_jump),
		H_TEST(test_probe_down_to_up),
		H_TEST(test_probe_down_backoff),
		H_TEST(test_probe_none_when_idle),
		H_TEST(test_probe_reply_not_mistaken),
		H_TEST(test_probe_misses_mark_down),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
