/*
 * test_outbox.c - replies held until the turn's commit (src/outbox.h,
 * docs/state.md "Replies wait for the commit"): the outbox itself (order,
 * fates, the kick, entries held while releasing, forget, busy), which
 * replies promise durability, and the PCP front-end on the loopback
 * interface with a real proxy core and a real state journal, driven the
 * way iwfd_turn_commit drives them: nothing is sent before the commit; a
 * SUCCESS is sent after it with its mapping in the files; when the commit
 * fails (the disk full: RLIMIT_FSIZE) the SUCCESS is not sent, an error
 * reply of the same turn is, and the client's retry (same nonce) is
 * answered from the table once a commit succeeds; a busy outbox stops the
 * reads until the turn has ended.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "map.h"
#include "natpmp_wire.h"
#include "outbox.h"
#include "pcp_frontend.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "state.h"
#include "table.h"

#define TEST_EPOCH	42
#define LOG_MAX		16

/* ---- the outbox by itself ------------------------------------------- */

struct log_entry {
	int		 id;
	enum outbox_fate fate;
	char		 data[8];
};

static struct log_entry log_[LOG_MAX];
static int nlog, kicks;
static struct outbox *current;

static void
record(void *arg, enum outbox_fate fate, const void *data, size_t len)
{
	struct log_entry *e;

	if (nlog == LOG_MAX)
		return;		/* a bulk release: not looked at */
	e = &log_[nlog++];
	e->id = (int)(intptr_t)arg;
	e->fate = fate;
	memset(e->data, 0, sizeof(e->data));
	memcpy(e->data, data, len < sizeof(e->data) ? len : sizeof(e->data));
}

/* holds one more while it is released */
static void
record_and_hold(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	record(arg, fate, data, len);
	if (fate == OUTBOX_SEND)
		assert_int_equal(outbox_hold(current, record, (void *)99, false,
		    "late", 4), 0);
}

static void
kick(void *arg)
{
	(void)arg;
	kicks++;
}

static void
test_outbox_order_and_fates(void **state)
{
	struct outbox_params p = { .busy = 3, .kick = kick };
	struct outbox *ob;

	(void)state;
	nlog = kicks = 0;
	assert_non_null(ob = outbox_new(&p));
	current = ob;
	assert_int_equal(outbox_hold(ob, record, (void *)1, true, "ok1", 3),
	    0);
	assert_int_equal(kicks, 1);	/* the first of a turn */
	assert_int_equal(outbox_hold(ob, record, (void *)2, false, "err", 3),
	    0);
	assert_false(outbox_busy(ob));
	assert_int_equal(outbox_hold(ob, record, (void *)3, true, "ok3", 3),
	    0);
	assert_true(outbox_busy(ob));
	assert_int_equal(kicks, 1);
	assert_int_equal(nlog, 0);	/* nothing before the release */
	outbox_release(ob, true);
	assert_int_equal(nlog, 3);
	assert_int_equal(log_[0].id, 1);
	assert_string_equal(log_[0].data, "ok1");
	assert_int_equal(log_[1].id, 2);
	assert_int_equal(log_[2].id, 3);
	assert_int_equal(log_[2].fate, OUTBOX_SEND);
	assert_int_equal(outbox_count(ob), 0);

	/* the commit failed: the promises are not sent, the rest is */
	nlog = 0;
	(void)outbox_hold(ob, record, (void *)1, true, "ok1", 3);
	(void)outbox_hold(ob, record, (void *)2, false, "err", 3);
	assert_int_equal(kicks, 2);
	outbox_release(ob, false);
	assert_int_equal(log_[0].fate, OUTBOX_NOT_DURABLE);
	assert_int_equal(log_[1].fate, OUTBOX_SEND);
	assert_int_equal(outbox_stats(ob)->not_durable, 1);

	/* held while releasing: waits for the next release, and kicks */
	nlog = 0;
	(void)outbox_hold(ob, record_and_hold, (void *)5, false, "a", 1);
	(void)outbox_hold(ob, record, (void *)6, false, "b", 1);
	outbox_release(ob, true);
	assert_int_equal(nlog, 2);
	assert_int_equal(outbox_count(ob), 1);
	assert_int_equal(kicks, 4);
	outbox_release(ob, true);
	assert_int_equal(nlog, 3);
	assert_int_equal(log_[2].id, 99);
	assert_string_equal(log_[2].data, "late");

	/* forgotten: discarded at once, never sent */
	nlog = 0;
	(void)outbox_hold(ob, record, (void *)7, true, "x", 1);
	(void)outbox_hold(ob, record, (void *)8, true, "y", 1);
	outbox_forget(ob, (void *)7);
	assert_int_equal(nlog, 1);
	assert_int_equal(log_[0].fate, OUTBOX_DISCARD);
	outbox_release(ob, true);
	assert_int_equal(nlog, 2);
	assert_int_equal(log_[1].id, 8);
	/* freed with entries: discarded */
	(void)outbox_hold(ob, record, (void *)9, true, "z", 1);
	outbox_free(ob);
	assert_int_equal(log_[2].fate, OUTBOX_DISCARD);
}

/* A turn of many big replies: the arena grows, the copies stay right. */
static void
test_outbox_grows(void **state)
{
	struct outbox *ob;
	uint8_t buf[PCP_MAX_SIZE];
	int i;

	(void)state;
	nlog = 0;
	assert_non_null(ob = outbox_new(NULL));
	for (i = 0; i < 300; i++) {
		memset(buf, i, sizeof(buf));
		assert_int_equal(outbox_hold(ob, record, (void *)(intptr_t)i,
		    false, buf, sizeof(buf)), 0);
	}
	assert_int_equal(outbox_count(ob), 300);
	assert_true(outbox_busy(ob));	/* OUTBOX_BUSY_DEFAULT */
	nlog = 0;
	outbox_forget(ob, (void *)299);
	assert_int_equal((uint8_t)log_[0].data[0], 299 & 0xff);
	nlog = 0;
	outbox_forget(ob, (void *)150);
	assert_int_equal((uint8_t)log_[0].data[7], 150);
	outbox_free(ob);
}

static void
test_reply_promises(void **state)
{
	struct pcp_msg m;
	uint8_t buf[PCP_MAX_SIZE];
	size_t n;
	uint8_t nat[NATPMP_MAP_RESP_SIZE] = { 0, 128 + 2, 0, 0 };
	uint8_t addr[NATPMP_ADDR_RESP_SIZE] = { 0, 128, 0, 0 };

	(void)state;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.response = true;
	m.result = PCP_SUCCESS;
	m.lifetime = 3600;
	n = pcp_encode(&m, buf, sizeof(buf));
	assert_true(n > 0);
	assert_true(pcp_frontend_reply_promises(buf, n));
	m.result = PCP_NO_RESOURCES;
	n = pcp_encode(&m, buf, sizeof(buf));
	assert_false(pcp_frontend_reply_promises(buf, n));
	m.result = PCP_SUCCESS;
	m.opcode = PCP_OP_ANNOUNCE;
	n = pcp_encode(&m, buf, sizeof(buf));
	assert_false(pcp_frontend_reply_promises(buf, n));
	/* NAT-PMP: a TCP mapping granted; an error; the address */
	assert_true(pcp_frontend_reply_promises(nat, sizeof(nat)));
	nat[3] = NATPMP_RESULT_NO_RESOURCES;
	assert_false(pcp_frontend_reply_promises(nat, sizeof(nat)));
	assert_false(pcp_frontend_reply_promises(addr, sizeof(addr)));
}

/* ---- the PCP front-end, gated -------------------------------------- */

struct rig {
	struct event_base	*base;
	struct pcp_frontend	*fe;
	struct table		*t;
	struct proxy		*px;
	struct outbox		*ob;
	struct state_journal	*j;
	struct policy		 pol;
	struct policy_prefix	 lan;
	char			 dir[64];
	char			 path[128];
	uint16_t		 port;
	int			 fd;
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

static void
rig_kick(void *arg)
{
	(void)arg;
}

static void
rig_open(struct rig *r, size_t busy)
{
	static const char *const lo[] = { "lo" };
	struct outbox_params op = { .busy = busy, .kick = rig_kick };
	struct pcp_frontend_params p;
	struct proxy_params pp;
	struct state_header h;
	struct timeval tv = { 0, 200 * 1000 };
	static unsigned int opened;

	memset(r, 0, sizeof(*r));
	snprintf(r->dir, sizeof(r->dir), "/tmp/test_outbox.XXXXXX");
	assert_non_null(mkdtemp(r->dir));
	snprintf(r->path, sizeof(r->path), "%s/state", r->dir);
	assert_true(pcp_addr_pton("127.0.0.0", &r->lan.addr));
	r->lan.prefix_len = 96 + 8;
	r->pol.lan_prefixes = &r->lan;
	r->pol.n_lan_prefixes = 1;
	r->pol.min_lifetime = 120;
	r->pol.max_lifetime = 86400;
	assert_non_null(r->t = table_new());
	assert_int_equal(table_track_changes(r->t, true), 0);
	memset(&pp, 0, sizeof(pp));
	pp.nat = PROXY_NAT_NONE;
	pp.table = r->t;
	pp.policy = &r->pol;
	assert_true(pcp_addr_pton("203.0.113.9", &pp.wan_addr));
	pp.wan_addr_known = true;
	assert_non_null(r->px = proxy_new(&pp));
	assert_non_null(r->ob = outbox_new(&op));
	assert_non_null(r->j = state_journal_new(r->path));
	memset(&h, 0, sizeof(h));
	assert_int_equal(state_journal_commit(r->j, &h, r->t, 1000,
	    1700000000, true), 0);
	assert_non_null(r->base = event_base_new());
	r->port = (uint16_t)(20000 + (getpid() * 3 + opened++) % 20000);
	memset(&p, 0, sizeof(p));
	p.lan_ifnames = lo;
	p.n_lan = 1;
	p.epoch = test_epoch;
	p.now = test_now;
	p.port = r->port;
	p.proxy = r->px;
	p.outbox = r->ob;
	assert_non_null(r->fe = pcp_frontend_open(r->base, &p));
	assert_true((r->fd = socket(AF_INET, SOCK_DGRAM, 0)) >= 0);
	assert_int_equal(setsockopt(r->fd, SOL_SOCKET, SO_RCVTIMEO, &tv,
	    sizeof(tv)), 0);
}

static void
rig_close(struct rig *r)
{
	struct dirent *de;
	char p[sizeof(r->dir) + sizeof(de->d_name) + 1];
	DIR *d;

	close(r->fd);
	pcp_frontend_close(r->fe);
	event_base_free(r->base);
	outbox_free(r->ob);
	state_journal_free(r->j);
	proxy_free(r->px);
	table_free(r->t);
	if ((d = opendir(r->dir)) != NULL) {
		while ((de = readdir(d)) != NULL) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", r->dir, de->d_name);
			(void)unlink(p);
		}
		closedir(d);
	}
	(void)rmdir(r->dir);
}

/* iwfd_turn_commit: the core's batch, the state, then the replies. */
static int
rig_turn(struct rig *r)
{
	struct state_header h;
	int rc;

	memset(&h, 0, sizeof(h));
	proxy_commit(r->px, 1000);
	rc = state_journal_commit(r->j, &h, r->t, 1000, 1700000000, false);
	outbox_release(r->ob, rc == 0);
	return rc;
}

static void
rig_send_map(struct rig *r, uint16_t port, uint8_t nonce)
{
	struct sockaddr_in sin;
	struct pcp_msg m;
	struct in_addr a = { htonl(INADDR_LOOPBACK) };
	uint8_t buf[PCP_MAX_SIZE];
	size_t len;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.lifetime = 3600;
	pcp_addr_from_v4(&m.client_addr, &a);
	m.protocol = MAP_PROTO_TCP;
	m.internal_port = port;
	m.nonce[0] = nonce;
	assert_true(pcp_addr_pton("0.0.0.0", &m.ext_addr));
	len = pcp_encode(&m, buf, sizeof(buf));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(r->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(r->fd, buf, len, 0, (struct sockaddr *)&sin,
	    sizeof(sin)), (ssize_t)len);
}

/* A request PCP refuses at once (version 1: UNSUPP_VERSION). */
static void
rig_send_bad(struct rig *r)
{
	struct sockaddr_in sin;
	uint8_t buf[PCP_HDR_SIZE] = { 1, PCP_OP_MAP };

	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(r->port);
	sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	assert_int_equal(sendto(r->fd, buf, sizeof(buf), 0,
	    (struct sockaddr *)&sin, sizeof(sin)), (ssize_t)sizeof(buf));
}

static ssize_t
rig_recv(struct rig *r, struct pcp_msg *resp)
{
	uint8_t buf[PCP_MAX_SIZE];
	ssize_t n;

	n = recv(r->fd, buf, sizeof(buf), 0);
	if (n > 0 && buf[0] == PCP_VERSION)
		assert_true(pcp_decode_response(buf, (size_t)n, resp));
	else if (n > 0)
		resp->version = buf[0];
	return n;
}

/* The mapping of that external port in the state files, or not. */
static bool
rig_saved(struct rig *r, uint16_t ext)
{
	struct state_image img;
	struct state_errors errs;
	size_t i;
	bool found = false;

	assert_int_equal(state_load(r->path, 1700000000, &img, &errs, NULL,
	    0), STATE_LOAD_OK);
	for (i = 0; i < img.count; i++)
		found |= img.rec[i].ext_port == ext;
	state_image_free(&img);
	return found;
}

static void
test_pcp_success_after_commit(void **state)
{
	struct rig r;
	struct pcp_msg resp;

	(void)state;
	rig_open(&r, 0);
	rig_send_map(&r, 8080, 1);
	assert_int_equal(event_base_loop(r.base, EVLOOP_NONBLOCK), 0);
	/* answered by the core, held: nothing on the wire, nothing saved */
	assert_int_equal(table_count(r.t), 1);
	assert_int_equal(outbox_count(r.ob), 1);
	assert_int_equal(rig_recv(&r, &resp), -1);
	assert_false(rig_saved(&r, 8080));
	/* the end of the turn: saved, then sent */
	assert_int_equal(rig_turn(&r), 0);
	assert_true(rig_saved(&r, 8080));
	assert_int_equal(rig_recv(&r, &resp), PCP_MAP_MSG_SIZE);
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.ext_port, 8080);
	assert_int_equal(pcp_frontend_stats(r.fe)->replied, 1);
	rig_close(&r);
}

/* The disk is full at the end of the turn. */
static void
test_pcp_commit_failure(void **state)
{
	struct rig r;
	struct pcp_msg resp;
	struct rlimit old, lim;

	(void)state;
	rig_open(&r, 0);
	rig_send_map(&r, 8080, 1);
	rig_send_bad(&r);
	assert_int_equal(event_base_loop(r.base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(outbox_count(r.ob), 2);
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 0;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(rig_turn(&r), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	/* the error went out, the SUCCESS did not */
	assert_int_equal(rig_recv(&r, &resp), PCP_HDR_SIZE);
	assert_int_equal(resp.result, PCP_UNSUPP_VERSION);
	assert_int_equal(rig_recv(&r, &resp), -1);
	assert_int_equal(pcp_frontend_stats(r.fe)->not_durable, 1);
	assert_false(rig_saved(&r, 8080));
	/* the client asks again (same nonce): answered from the table,
	   sent once the commit succeeds */
	rig_send_map(&r, 8080, 1);
	assert_int_equal(event_base_loop(r.base, EVLOOP_NONBLOCK), 0);
	assert_int_equal(rig_recv(&r, &resp), -1);
	assert_int_equal(rig_turn(&r), 0);
	assert_true(rig_saved(&r, 8080));
	assert_int_equal(rig_recv(&r, &resp), PCP_MAP_MSG_SIZE);
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.ext_port, 8080);
	assert_int_equal(table_count(r.t), 1);
	rig_close(&r);
}

/* A busy outbox stops the reads; the end of the turn resumes them. */
static void
test_pcp_busy_pauses(void **state)
{
	struct rig r;
	struct pcp_msg resp;
	int i, got = 0;

	(void)state;
	rig_open(&r, 2);
	for (i = 0; i < 5; i++)
		rig_send_map(&r, (uint16_t)(9000 + i), (uint8_t)(i + 1));
	/* (1 once the paused sockets left the loop without events) */
	(void)event_base_loop(r.base, EVLOOP_NONBLOCK);
	assert_int_equal(pcp_frontend_stats(r.fe)->paused, 1);
	assert_int_equal(pcp_frontend_stats(r.fe)->received, 2);
	/* the loop does not read while paused */
	(void)event_base_loop(r.base, EVLOOP_NONBLOCK);
	assert_int_equal(pcp_frontend_stats(r.fe)->received, 2);
	for (i = 0; i < 5 && got < 5; i++) {
		assert_int_equal(rig_turn(&r), 0);
		while (rig_recv(&r, &resp) == PCP_MAP_MSG_SIZE) {
			assert_int_equal(resp.result, PCP_SUCCESS);
			got++;
		}
		(void)event_base_loop(r.base, EVLOOP_NONBLOCK);
	}
	assert_int_equal(got, 5);
	assert_int_equal(table_count(r.t), 5);
	rig_close(&r);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_outbox_order_and_fates),
		cmocka_unit_test(test_outbox_grows),
		cmocka_unit_test(test_reply_promises),
		cmocka_unit_test(test_pcp_success_after_commit),
		cmocka_unit_test(test_pcp_commit_failure),
		cmocka_unit_test(test_pcp_busy_pauses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
