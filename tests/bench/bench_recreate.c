/*
 * bench_recreate.c - how long the proxy takes to re-create every upstream
 * mapping after the carrier's PCP server lost its state (issue 7: "the time
 * to re-create 10,000 upstream mappings after an epoch reset against a fast
 * scripted upstream").
 *
 * The real proxy core, mapping table, policy and upstream PCP engine are
 * wired as the daemon (and tests/unit/test_proxy.c) wires them, with the
 * fake NAT backend (the scenario tests' world, tests/unit/scenario.h), on
 * the real monotonic clock. The carrier is a fast PCP
 * server in this process: the engine's transport queues each datagram and
 * the loop drains the queue at the start of every turn, decoding each
 * request with pcp_wire and answering SUCCESS at once (the network is a
 * zero-delay queue, the server costs one decode and one encode).
 *
 * For each N (default 1,000, 10,000 and 50,000), in a child process of its
 * own so that its peak RSS is its own:
 *   1. create N mappings through proxy_submit(), 256 requests per loop
 *      turn, until every client has its answer;
 *   2. the server restarts (its state is gone, its Epoch starts again at 0)
 *      and sends an unsolicited ANNOUNCE (RFC 6887 §14.1.3); the engine
 *      finds the Epoch out of step (§8.5) and reports the lost state;
 *   3. the loop runs on the real clock until every mapping is GRANTED again
 *      with its local rule refreshed; the §14.1.3 0-5 s random wait is
 *      measured apart from the re-creation itself;
 *   4. checks: every mapping back with the external port it had, exactly N
 *      requests sent, none twice, nothing left in flight.
 *
 * Not a pass/fail test (tests/bench/README.md): it prints tables, and exits
 * non-zero only when a check in step 4 failed.
 *
 *   bench_recreate [-s seed] [N ...]
 */
#include <sys/resource.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "backend.h"
#include "backend_fake.h"
#include "clock.h"
#include "map.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upstream.h"

#define BENCH_BATCH		256	/* client requests per loop turn */
#define BENCH_PER_HOST		100	/* mappings per LAN host */
#define BENCH_PORT_BASE		20000	/* the hosts' internal ports */
#define BENCH_LIFETIME		3600u	/* no renewal during a run */
#define BENCH_EPOCH0		1000000u /* the server's Epoch at start */
#define BENCH_MAX_N		100000	/* two protocols' worth of ports */
#define BENCH_PORTS		65536
#define BENCH_PROTOS		2	/* TCP, UDP */
#define BENCH_LIMIT_MS		300000	/* a phase that takes longer hangs */
/* RFC 6887 §14.1.3: re-creation starts within 5 s; twice that is late */
#define BENCH_FIRST_SEND_MS	10000
#define BENCH_NS_PER_MS		1000000.0
#define BENCH_MS_PER_S		1000
#define BENCH_KIB_PER_MIB	1024.0
#define BENCH_DGRAM_HDR		sizeof(uint16_t)
#define BENCH_DEFAULT_NS	{ 1000, 10000, 50000 }
/* The proxy's and the engine's jitter come from this: runs compare */
#define BENCH_DEFAULT_SEED	1
#define BENCH_LAN		"10.0.0.0"
#define BENCH_LAN_PREFIX	(96 + 8)
#define BENCH_LAN_NET		0x0a000000u	/* 10.0.0.0: hosts 10.0.0.1 on */
#define BENCH_EXT		"203.0.113.1"	/* what the carrier grants */
#define BENCH_SRV_PORT_MIN	1024

/* ---- the fast scripted carrier ---- */

/*
 * The "network" toward the server: datagrams the engine sent and the
 * server has not read yet, each a 16-bit length and its octets, packed in
 * one growing buffer (a burst of 50,000 requests would take 55 MB as
 * PCP_MAX_SIZE slots).
 */
struct bench_net {
	uint8_t		*buf;
	size_t		 len, cap;
	size_t		 count;		/* datagrams in buf */
};

struct bench_server {
	uint32_t	 epoch_base;	/* Epoch at epoch_t0 (RFC 6887 §8.5) */
	uint64_t	 epoch_t0;
	struct in6_addr	 ext_addr;
	/* its mappings: the external port granted to (protocol, internal
	   port) - the gateway is the only client - and which are taken */
	uint16_t	 granted[BENCH_PROTOS][BENCH_PORTS];
	uint8_t		 taken[BENCH_PROTOS][BENCH_PORTS];
	uint16_t	 cursor[BENCH_PROTOS];
	/* what it received in the current phase, per (protocol, internal
	   port): a second request for one mapping is a duplicate */
	uint8_t		 seen[BENCH_PROTOS][BENCH_PORTS];
	uint64_t	 duplicates, refused;
};

/* ---- the daemon's side ---- */

struct bench {
	size_t		 n;
	/* the table, policy, engine, backend and proxy; now is
	   clock_now_ms(), nlost counts the engine's lost-state reports */
	struct scn_world w;
	struct bench_net net;
	struct bench_server *srv;
	/* the clients */
	size_t		 submitted, answered, failed;
	uint16_t	*outer_before;	/* per request index */
	/* measurements of the current phase (ns, bench_ns()) */
	uint64_t	 sent;		/* datagrams the engine sent */
	uint64_t	 first_send_ns, last_answer_ns;
	uint64_t	 commit_ns;	/* inside proxy_commit (the backend) */
	size_t		 max_queued;	/* the largest burst on the wire */
};

/* One row of the result tables, sent from the child to the parent. */
struct bench_row {
	size_t		 n;
	bool		 ok;
	char		 why[160];
	double		 create_ms, create_commit_ms;
	double		 jitter_ms, recreate_ms, answers_ms, recreate_commit_ms;
	uint64_t	 create_sent, recreate_sent, duplicates;
	size_t		 recreate_burst, same_port;
	size_t		 table_bytes;
	long		 maxrss_kib;
};

static struct bench *b;

static void bench_fail(struct bench_row *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

static uint64_t
bench_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static double
bench_ms(uint64_t from_ns, uint64_t to_ns)
{
	return to_ns > from_ns ? (double)(to_ns - from_ns) / BENCH_NS_PER_MS :
	    0.0;
}

static void
bench_fail(struct bench_row *row, const char *fmt, ...)
{
	va_list ap;

	if (!row->ok)
		return;			/* the first failure is the story */
	row->ok = false;
	va_start(ap, fmt);
	vsnprintf(row->why, sizeof(row->why), fmt, ap);
	va_end(ap);
}

static struct in6_addr
bench_addr(const char *s)
{
	struct in6_addr a;

	if (!pcp_addr_pton(s, &a)) {
		fprintf(stderr, "bench_recreate: bad address %s\n", s);
		exit(2);
	}
	return a;
}

static void *
bench_calloc(size_t n, size_t size)
{
	void *p;

	if ((p = calloc(n, size)) == NULL) {
		perror("bench_recreate: calloc");
		exit(2);
	}
	return p;
}

static unsigned int
bench_proto_index(uint8_t protocol)
{
	return protocol == MAP_PROTO_TCP ? 0 : 1;
}

/* ---- the wire ---- */

/* The engine's transport (upstream_send_fn): queue for the server. */
static int
bench_send(void *arg, unsigned int server, const uint8_t *pkt, size_t len)
{
	struct bench_net *net = arg;
	size_t need = net->len + BENCH_DGRAM_HDR + len, cap;
	uint16_t len16 = (uint16_t)len;
	uint8_t *nb;

	if (server != 0 || len > PCP_MAX_SIZE)
		return EINVAL;
	if (need > net->cap) {
		cap = net->cap != 0 ? net->cap : 4096;
		while (cap < need)
			cap *= 2;
		if ((nb = realloc(net->buf, cap)) == NULL)
			return 0;	/* dropped: retransmission recovers */
		net->buf = nb;
		net->cap = cap;
	}
	memcpy(net->buf + net->len, &len16, sizeof(len16));
	memcpy(net->buf + net->len + BENCH_DGRAM_HDR, pkt, len);
	net->len = need;
	net->count++;
	if (b->sent++ == 0)
		b->first_send_ns = bench_ns();
	if (net->count > b->max_queued)
		b->max_queued = net->count;
	return 0;
}

/* ---- the server ---- */

static uint32_t
srv_epoch(const struct bench_server *s, uint64_t now)
{
	return s->epoch_base + (uint32_t)((now - s->epoch_t0) /
	    BENCH_MS_PER_S);
}

/* The external port for a new mapping: the suggestion when it is free
   (RFC 6887 §11.3, also what re-creation relies on, §14), else the next
   free one. 0 when every port is taken. */
static uint16_t
srv_alloc(struct bench_server *s, unsigned int pi, uint16_t suggested)
{
	unsigned int tries;
	uint16_t port;

	if (suggested >= BENCH_SRV_PORT_MIN && !s->taken[pi][suggested])
		return suggested;
	for (tries = 0; tries < BENCH_PORTS; tries++) {
		port = s->cursor[pi]++;
		if (port >= BENCH_SRV_PORT_MIN && !s->taken[pi][port])
			return port;
	}
	return 0;
}

/* Answer one MAP request (RFC 6887 §11.3, §11.4, §15). */
static void
srv_map(struct bench_server *s, const struct pcp_msg *req,
    struct pcp_msg *resp)
{
	unsigned int pi = bench_proto_index(req->protocol);
	uint16_t *g = &s->granted[pi][req->internal_port];
	uint16_t port;

	if (s->seen[pi][req->internal_port])
		s->duplicates++;
	s->seen[pi][req->internal_port] = 1;
	if (req->lifetime == 0) {		/* §15: delete */
		if (*g != 0)
			s->taken[pi][*g] = 0;
		*g = 0;
		return;
	}
	if (*g == 0) {
		if ((port = srv_alloc(s, pi, req->ext_port)) == 0) {
			resp->result = PCP_NO_RESOURCES;
			s->refused++;
			return;
		}
		*g = port;
		s->taken[pi][port] = 1;
	}
	resp->ext_addr = s->ext_addr;
	resp->ext_port = *g;
}

/* The server reads one datagram and answers at once. */
static void
srv_input(struct bench_server *s, const uint8_t *pkt, size_t len)
{
	struct pcp_msg req, resp;
	enum pcp_result result;
	uint8_t out[PCP_MAX_SIZE];
	size_t olen;

	if (pcp_decode_request(pkt, len, NULL, 0, &req, &result) !=
	    PCP_VERDICT_OK || req.opcode != PCP_OP_MAP) {
		s->refused++;
		return;
	}
	memset(&resp, 0, sizeof(resp));
	resp.version = PCP_VERSION;
	resp.response = true;
	resp.opcode = req.opcode;
	resp.result = PCP_SUCCESS;
	resp.lifetime = req.lifetime;
	resp.epoch = srv_epoch(s, b->w.now);
	memcpy(resp.nonce, req.nonce, PCP_NONCE_SIZE);
	resp.protocol = req.protocol;
	resp.internal_port = req.internal_port;
	resp.ext_port = req.ext_port;
	resp.ext_addr = req.ext_addr;
	srv_map(s, &req, &resp);
	if ((olen = pcp_encode(&resp, out, sizeof(out))) == 0) {
		s->refused++;
		return;
	}
	upstream_input(b->w.u, 0, out, olen, b->w.now);
	b->last_answer_ns = bench_ns();
}

/* Deliver everything on the wire. Answers may make the engine send more:
   those wait for the next turn, as on a real socket. */
static bool
srv_drain(struct bench_server *s)
{
	struct bench_net net = b->net;
	size_t off = 0;
	uint16_t len;

	if (net.count == 0)
		return false;
	memset(&b->net, 0, sizeof(b->net));
	while (off < net.len) {
		memcpy(&len, net.buf + off, sizeof(len));
		srv_input(s, net.buf + off + BENCH_DGRAM_HDR, len);
		off += BENCH_DGRAM_HDR + len;
	}
	free(net.buf);
	return true;
}

/* RFC 6887 §14.1.3: the server restarted without its state; it tells its
   clients with an unsolicited ANNOUNCE carrying its new Epoch. */
static void
srv_restart(struct bench_server *s)
{
	struct pcp_msg m;
	uint8_t out[PCP_MAX_SIZE];
	size_t olen;

	memset(s->granted, 0, sizeof(s->granted));
	memset(s->taken, 0, sizeof(s->taken));
	s->epoch_base = 0;
	s->epoch_t0 = b->w.now;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.result = PCP_SUCCESS;
	m.epoch = srv_epoch(s, b->w.now);
	if ((olen = pcp_encode(&m, out, sizeof(out))) == 0) {
		fprintf(stderr, "bench_recreate: cannot encode ANNOUNCE\n");
		exit(2);
	}
	upstream_input(b->w.u, 0, out, olen, b->w.now);
}

static void
srv_new_phase(struct bench_server *s)
{
	memset(s->seen, 0, sizeof(s->seen));
	s->duplicates = s->refused = 0;
}

static void
bench_client_done(void *arg, const struct map_req *req,
    const struct map_result *res)
{
	(void)arg;
	(void)req;
	b->answered++;
	if (res->err != MAP_OK)
		b->failed++;
}

/* The end of a loop turn: commit when the proxy kicked. */
static void
bench_end_turn(void)
{
	uint64_t t0;

	while (b->w.kicked) {
		b->w.kicked = false;
		t0 = bench_ns();
		proxy_commit(b->w.p, b->w.now);
		b->commit_ns += bench_ns() - t0;
	}
}

/* One turn of the daemon's loop: datagrams in, timers, commit. */
static bool
bench_turn(void)
{
	bool worked;

	b->w.now = clock_now_ms();
	worked = srv_drain(b->srv);
	if (upstream_next_deadline(b->w.u) <= b->w.now) {
		upstream_tick(b->w.u, b->w.now);
		worked = true;
	}
	if (proxy_next_deadline(b->w.p) <= b->w.now) {
		proxy_tick(b->w.p, b->w.now);
		worked = true;
	}
	bench_end_turn();
	return worked;
}

/* Nothing to do: sleep until the next timer, as the event loop would. */
static void
bench_idle(uint64_t limit_ms)
{
	uint64_t un = upstream_next_deadline(b->w.u);
	uint64_t pn = proxy_next_deadline(b->w.p);
	uint64_t next = un < pn ? un : pn;
	struct timespec ts;

	if (b->net.count != 0)
		return;
	if (next > limit_ms)
		next = limit_ms;
	ts.tv_sec = (time_t)(next / BENCH_MS_PER_S);
	ts.tv_nsec = (long)(next % BENCH_MS_PER_S) * 1000000L;
	while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) ==
	    EINTR)
		continue;
}

/* ---- setup ---- */

static void
bench_setup(size_t n, uint64_t seed)
{
	struct scn_world_conf conf = {
		.upstream = true,
		.backend_new = backend_fake_new,
		.lan = BENCH_LAN,
		.lan_prefix_len = BENCH_LAN_PREFIX,
		.seeded = true,
		.seed = seed,
		.send = bench_send,
	};

	b = bench_calloc(1, sizeof(*b));
	b->srv = bench_calloc(1, sizeof(*b->srv));
	b->outer_before = bench_calloc(n, sizeof(*b->outer_before));
	b->n = n;
	conf.now = clock_now_ms();
	conf.send_arg = &b->net;
	/* C-01: the world's engine sends from the gateway's WAN address */
	if (scn_world_init(&b->w, &conf) == -1) {
		perror("bench_recreate: the world");
		exit(2);
	}
	b->srv->epoch_base = BENCH_EPOCH0;
	b->srv->epoch_t0 = b->w.now;
	b->srv->ext_addr = bench_addr(BENCH_EXT);
	b->srv->cursor[0] = b->srv->cursor[1] = BENCH_SRV_PORT_MIN;
}

/* The daemon's order: proxy, engine, backend, table. */
static void
bench_teardown(void)
{
	scn_world_free(&b->w);
	free(b->net.buf);
	free(b->outer_before);
	free(b->srv);
	free(b);
	b = NULL;
}

static void
bench_new_phase(void)
{
	b->sent = 0;
	b->first_send_ns = b->last_answer_ns = 0;
	b->commit_ns = 0;
	b->max_queued = 0;
	srv_new_phase(b->srv);
}

/* ---- the clients ---- */

/* Request i: host 10.0.x.y (BENCH_PER_HOST each), a console's port, TCP
   and UDP in turn, suggesting its internal port outside, a PCP nonce of
   its own. */
static void
bench_req(size_t i, struct map_req *r)
{
	struct in_addr host;
	struct in_addr any = { 0 };

	memset(r, 0, sizeof(*r));
	host.s_addr = htonl(BENCH_LAN_NET | (uint32_t)(i / BENCH_PER_HOST + 1));
	r->origin = MAP_ORIGIN_PCP;
	pcp_addr_from_v4(&r->requester, &host);
	r->requester_port = 5350;
	r->internal_addr = r->requester;
	r->protocol = i % 2 == 0 ? MAP_PROTO_TCP : MAP_PROTO_UDP;
	r->internal_port = (uint16_t)(BENCH_PORT_BASE + i % BENCH_PER_HOST);
	r->ext_port = r->internal_port;
	pcp_addr_from_v4(&r->ext_addr, &any);
	r->lifetime = BENCH_LIFETIME;
	memcpy(r->nonce, &i, sizeof(i) < sizeof(r->nonce) ? sizeof(i) :
	    sizeof(r->nonce));
	r->nonce[MAP_NONCE_SIZE - 1] = 0xb0;
}

static struct mapping *
bench_find(size_t i)
{
	struct map_req r;

	bench_req(i, &r);
	return table_find_internal(b->w.t, r.protocol, &r.internal_addr,
	    r.internal_port);
}

static void
bench_submit_batch(void)
{
	struct map_req r;
	struct map_result res;
	size_t k;

	for (k = 0; k < BENCH_BATCH && b->submitted < b->n; k++) {
		bench_req(b->submitted++, &r);
		if (proxy_submit(b->w.p, &r, b->w.now, bench_client_done, NULL,
		    &res))
			bench_client_done(NULL, &r, &res);
	}
}

/* ---- the phases ---- */

/* 1. N clients ask; done when each has its answer. */
static void
bench_create(struct bench_row *row)
{
	uint64_t t0, limit;
	size_t i;
	struct mapping *m;

	bench_new_phase();
	t0 = bench_ns();
	limit = clock_now_ms() + BENCH_LIMIT_MS;
	while (b->answered < b->n) {
		b->w.now = clock_now_ms();
		if (b->w.now > limit) {
			bench_fail(row, "create: %zu of %zu answered in %d s",
			    b->answered, b->n, BENCH_LIMIT_MS / BENCH_MS_PER_S);
			return;
		}
		bench_submit_batch();
		if (!bench_turn() && b->submitted == b->n)
			bench_idle(limit);
	}
	row->create_ms = bench_ms(t0, bench_ns());
	row->create_commit_ms = (double)b->commit_ns / BENCH_NS_PER_MS;
	row->create_sent = b->sent;
	row->table_bytes = table_memory_bytes(b->w.t);
	if (b->failed != 0)
		bench_fail(row, "create: %zu of %zu requests failed", b->failed,
		    b->n);
	if (row->create_sent != b->n || b->srv->duplicates != 0)
		bench_fail(row, "create: %" PRIu64 " requests (%" PRIu64
		    " repeated) for %zu mappings", row->create_sent,
		    b->srv->duplicates, b->n);
	for (i = 0; i < b->n; i++) {
		if ((m = bench_find(i)) == NULL ||
		    m->state != MAP_STATE_GRANTED) {
			bench_fail(row, "create: mapping %zu not granted", i);
			return;
		}
		b->outer_before[i] = m->outer_port;
	}
}

/* Everything back: the re-creation ran, all GRANTED, nothing in flight or
   queued anywhere. */
static bool
bench_recovered(void)
{
	return b->sent > 0 && b->net.count == 0 && !proxy_recreating(b->w.p) &&
	    upstream_in_flight(b->w.u) == 0 &&
	    backend_fake_queued(b->w.be) == 0 &&
	    table_count_state(b->w.t, MAP_STATE_GRANTED) == b->n;
}

/* 2. + 3. The server restarts; the proxy re-creates everything. */
static void
bench_recover(struct bench_row *row)
{
	uint64_t t_jump, t_done, limit, first_limit;

	bench_new_phase();
	b->w.now = clock_now_ms();
	limit = b->w.now + BENCH_LIMIT_MS;
	first_limit = b->w.now + BENCH_FIRST_SEND_MS;
	t_jump = bench_ns();
	srv_restart(b->srv);
	bench_end_turn();
	if (b->w.nlost != 1) {
		bench_fail(row, "the ANNOUNCE made %u lost-state reports",
		    b->w.nlost);
		return;
	}
	for (;;) {
		if (!bench_turn()) {
			if (bench_recovered())
				break;
			bench_idle(b->sent == 0 ? first_limit : limit);
		}
		if (b->sent == 0 && clock_now_ms() > first_limit) {
			bench_fail(row, "no re-create request within %d ms of "
			    "the epoch reset", BENCH_FIRST_SEND_MS);
			return;
		}
		if (clock_now_ms() > limit) {
			bench_fail(row, "re-create: %zu of %zu granted in %d s",
			    table_count_state(b->w.t, MAP_STATE_GRANTED), b->n,
			    BENCH_LIMIT_MS / BENCH_MS_PER_S);
			return;
		}
	}
	t_done = bench_ns();
	row->jitter_ms = bench_ms(t_jump, b->first_send_ns);
	row->recreate_ms = bench_ms(b->first_send_ns, t_done);
	row->answers_ms = bench_ms(b->first_send_ns, b->last_answer_ns);
	row->recreate_commit_ms = (double)b->commit_ns / BENCH_NS_PER_MS;
	row->recreate_sent = b->sent;
	row->recreate_burst = b->max_queued;
	row->duplicates = b->srv->duplicates;
}

/* 4. Every mapping back where it was, each asked for once. */
static void
bench_verify(struct bench_row *row)
{
	struct mapping *m;
	size_t i;

	for (i = 0; i < b->n; i++) {
		if ((m = bench_find(i)) == NULL) {
			bench_fail(row, "mapping %zu is gone", i);
			return;
		}
		if (m->state != MAP_STATE_GRANTED)
			bench_fail(row, "mapping %zu is %s", i,
			    map_state_name(m->state));
		else if (m->outer_port == b->outer_before[i])
			row->same_port++;
		if (backend_fake_lookup(b->w.be, m->protocol, m->ext_port) ==
		    NULL)
			bench_fail(row, "mapping %zu lost its local rule", i);
	}
	if (row->same_port != b->n)
		bench_fail(row, "%zu of %zu kept their external port",
		    row->same_port, b->n);
	if (row->recreate_sent != b->n)
		bench_fail(row, "%" PRIu64 " re-create requests for %zu "
		    "mappings", row->recreate_sent, b->n);
	if (row->duplicates != 0)
		bench_fail(row, "%" PRIu64 " duplicate requests",
		    row->duplicates);
	if (b->srv->refused != 0)
		bench_fail(row, "the server refused %" PRIu64 " requests",
		    b->srv->refused);
	if (backend_fake_rule_count(b->w.be) != b->n)
		bench_fail(row, "%zu local rules for %zu mappings",
		    backend_fake_rule_count(b->w.be), b->n);
}

static void
bench_run(size_t n, uint64_t seed, struct bench_row *row)
{
	memset(row, 0, sizeof(*row));
	row->n = n;
	row->ok = true;
	bench_setup(n, seed);
	bench_create(row);
	if (row->ok)
		bench_recover(row);
	if (row->ok)
		bench_verify(row);
	bench_teardown();
}

/* ---- the parent: one child per N, then the tables ---- */

static int
bench_child(size_t n, uint64_t seed, struct bench_row *row)
{
	struct rusage ru;
	int fd[2], status;
	pid_t pid;
	ssize_t got;

	if (pipe(fd) == -1 || (pid = fork()) == -1) {
		perror("bench_recreate: fork");
		return -1;
	}
	if (pid == 0) {
		close(fd[0]);
		bench_run(n, seed, row);
		if (getrusage(RUSAGE_SELF, &ru) == 0)
			row->maxrss_kib = ru.ru_maxrss;
		got = write(fd[1], row, sizeof(*row));
		/* exit(), not _exit(): LeakSanitizer checks the run */
		exit(got == (ssize_t)sizeof(*row) ? 0 : 1);
	}
	close(fd[1]);
	got = read(fd[0], row, sizeof(*row));
	close(fd[0]);
	if (waitpid(pid, &status, 0) == -1 || got != (ssize_t)sizeof(*row) ||
	    !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		memset(row, 0, sizeof(*row));
		row->n = n;
		snprintf(row->why, sizeof(row->why), "the run died (status "
		    "0x%x)", status);
		return -1;
	}
	return 0;
}

static double
bench_rate(size_t n, double ms)
{
	return ms > 0 ? (double)n * BENCH_MS_PER_S / ms : 0.0;
}

static double
bench_us_each(size_t n, double ms)
{
	return n > 0 ? ms * BENCH_MS_PER_S / (double)n : 0.0;
}

static void
bench_print(const struct bench_row *rows, size_t nrows, uint64_t seed)
{
	const struct bench_row *r;
	size_t i;

	printf("bench_recreate: re-create every upstream mapping after the "
	    "server's epoch reset\n(real proxy + table + upstream engine + "
	    "fake backend, in-process fast PCP server, real clock, "
	    "seed %" PRIu64 ")\n\n", seed);
	printf("%7s %10s %10s %10s %12s %10s %8s %6s %8s %9s\n",
	    "N", "create ms", "create/s", "jitter ms", "re-create ms",
	    "re-crt/s", "sent", "dups", "B/map", "RSS MiB");
	for (i = 0; i < nrows; i++) {
		r = &rows[i];
		if (!r->ok) {
			printf("%7zu  FAILED: %s\n", r->n, r->why);
			continue;
		}
		printf("%7zu %10.1f %10.0f %10.1f %12.1f %10.0f %8" PRIu64
		    " %6" PRIu64 " %8.0f %9.1f\n", r->n, r->create_ms,
		    bench_rate(r->n, r->create_ms), r->jitter_ms,
		    r->recreate_ms, bench_rate(r->n, r->recreate_ms),
		    r->recreate_sent, r->duplicates,
		    (double)r->table_bytes / (double)r->n,
		    (double)r->maxrss_kib / BENCH_KIB_PER_MIB);
	}
	printf("\nwhere the time goes, us per mapping (\"fake be\": inside "
	    "proxy_commit, the test backend;\n\"core\": the rest - proxy, "
	    "table, engine, codec, in-process server)\n");
	printf("%7s %8s %8s %8s %10s %8s %8s %8s %8s %9s\n", "N", "create",
	    "fake be", "core", "re-create", "fake be", "core", "answers",
	    "burst", "same port");
	for (i = 0; i < nrows; i++) {
		r = &rows[i];
		if (!r->ok)
			continue;
		printf("%7zu %8.2f %8.2f %8.2f %10.2f %8.2f %8.2f %8.2f %8zu "
		    "%9zu\n", r->n, bench_us_each(r->n, r->create_ms),
		    bench_us_each(r->n, r->create_commit_ms),
		    bench_us_each(r->n, r->create_ms - r->create_commit_ms),
		    bench_us_each(r->n, r->recreate_ms),
		    bench_us_each(r->n, r->recreate_commit_ms),
		    bench_us_each(r->n, r->recreate_ms -
		    r->recreate_commit_ms),
		    bench_us_each(r->n, r->answers_ms),
		    r->recreate_burst, r->same_port);
	}
}

static void
bench_usage(void)
{
	fprintf(stderr, "usage: bench_recreate [-s seed] [N ...]\n");
	exit(2);
}

int
main(int argc, char *argv[])
{
	static const size_t defaults[] = BENCH_DEFAULT_NS;
	struct bench_row *rows;
	size_t i, nrows;
	uint64_t seed = BENCH_DEFAULT_SEED;
	char *end;
	unsigned long long v;
	int ch, status = 0;

	while ((ch = getopt(argc, argv, "s:")) != -1) {
		if (ch != 's')
			bench_usage();
		errno = 0;
		v = strtoull(optarg, &end, 0);
		if (errno != 0 || *end != '\0' || end == optarg)
			bench_usage();
		seed = v;
	}
	argc -= optind;
	argv += optind;
	nrows = argc > 0 ? (size_t)argc : sizeof(defaults) /
	    sizeof(defaults[0]);
	rows = bench_calloc(nrows, sizeof(*rows));
	for (i = 0; i < nrows; i++) {
		if (argc == 0) {
			rows[i].n = defaults[i];
			continue;
		}
		errno = 0;
		v = strtoull(argv[i], &end, 10);
		if (errno != 0 || *end != '\0' || v == 0 || v > BENCH_MAX_N)
			bench_usage();
		rows[i].n = (size_t)v;
	}
	/* the proxy's log goes to stderr; the tables to stdout */
	fflush(stdout);
	for (i = 0; i < nrows; i++)
		if (bench_child(rows[i].n, seed, &rows[i]) == -1 ||
		    !rows[i].ok)
			status = 1;
	bench_print(rows, nrows, seed);
	free(rows);
	return status;
}
