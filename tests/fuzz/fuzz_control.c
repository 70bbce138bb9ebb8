/*
 * fuzz_control.c - libFuzzer target for the control socket (src/control.c):
 * the line framing of a connection's input (control_read_line), the
 * request parser (control_parse) and the whole dispatch (control_dispatch)
 * on a small real daemon context.
 *
 * The context is built afresh for every input, so an input replays alike:
 * upstream_server = dhcp with the upstream engine on a transport that
 * records nothing and two servers handed over (discovery_set, as a DHCP
 * hook's set-upstream does), the proxy core (nat none, no backend, no
 * sockets), and a table holding a TCP and a UDP mapping granted by each
 * server and one the gateway holds alone.
 *
 * The input is what a client writes: it is split into lines the way a
 * connection is, each line answered as if it came on its own connection,
 * until no whole line is left or the framing refuses an overlong one (a
 * line holding a NUL is what the dispatch sees: a C string cut there).
 * Each line is parsed twice and then dispatched. After the lines, the loop's
 * end of turn and timers run, 6 s later (RFC 6887 §14's 0-5 s wait is
 * over), so the re-creations a set-upstream scheduled are sent.
 *
 * Invariants, any broken one aborts: every answer is "ok\n" and a body, or
 * exactly one line "error MESSAGE\n"; a request the parser refuses is
 * answered with an error, one it takes as status or list with "ok"; an
 * "ok" delete removed exactly one mapping; an "ok" set-upstream left the
 * engine with exactly the servers the parser read; the parser is a pure
 * function (the same line parses to the same request twice).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>

#include "config.h"
#include "control.h"
#include "discovery.h"
#include "iwfd.h"
#include "map.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"
#include "upstream.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* RFC 5737 documentation addresses, as the scenario world uses them. */
#define FUZZ_LAN		"192.0.2.0"
#define FUZZ_LAN_PREFIX_LEN	(96 + 24)
#define FUZZ_SERVER_A		"198.51.100.1"
#define FUZZ_SERVER_B		"198.51.100.2"
#define FUZZ_EXT		"203.0.113.7"
#define FUZZ_LOCAL		"100.64.0.2"	/* the WAN side (RFC 6598) */
#define FUZZ_SEED		0x5eed
#define FUZZ_LIFETIME		600
/* After the lines: past RFC 6887 §14.1.3's 0-5 s wait. */
#define FUZZ_LATER_MS		6000

struct fuzz_world {
	struct iwfd		 iwfd;
	struct policy_prefix	 lan;
	uint64_t		 now;
	bool			 kicked;
};

/* Static: the configuration is tens of kilobytes. */
static struct iwfd_config conf;
static struct fuzz_world world;

/* ---- the glue iwfd.c has between the engine and the proxy ---------------- */

static void
fuzz_upstream_done(void *arg, struct upstream_txn *txn,
    enum upstream_outcome outcome, const struct pcp_msg *resp)
{
	struct fuzz_world *w = arg;

	proxy_upstream_done(w->iwfd.proxy, txn, outcome, resp, w->now);
}

static void
fuzz_upstream_lost_state(void *arg, unsigned int server)
{
	struct fuzz_world *w = arg;

	proxy_upstream_lost_state(w->iwfd.proxy, server, w->now);
}

static void
fuzz_upstream_update(void *arg, unsigned int server, const struct pcp_msg *m)
{
	struct fuzz_world *w = arg;

	proxy_upstream_mapping_update(w->iwfd.proxy, server, m, w->now);
}

static const struct upstream_cb fuzz_upstream_cb = {
	.done = fuzz_upstream_done,
	.lost_state = fuzz_upstream_lost_state,
	.mapping_update = fuzz_upstream_update,
};

/* The transport: every datagram "sent", none kept. */
static int
fuzz_send(void *arg, unsigned int server, const uint8_t *pkt, size_t len)
{
	(void)arg;
	if (server >= UPSTREAM_MAX_SERVERS || len > PCP_MAX_SIZE)
		abort();
	(void)pkt;
	return 0;
}

static void
fuzz_kick(void *arg)
{
	struct fuzz_world *w = arg;

	w->kicked = true;
}

/* ---- the world ----------------------------------------------------------- */

static void
fuzz_addr(const char *s, struct in6_addr *a)
{
	if (!pcp_addr_pton(s, a))
		abort();
}

static void
fuzz_add_mapping(struct fuzz_world *w, uint8_t proto, const char *host,
    uint16_t port, uint8_t server, const char *desc)
{
	struct map_req req;
	struct mapping *m;
	enum map_err err;

	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_PCP;
	fuzz_addr(host, &req.internal_addr);
	req.requester = req.internal_addr;
	req.protocol = proto;
	req.internal_port = port;
	req.lifetime = FUZZ_LIFETIME;
	req.nonce[0] = (uint8_t)port;
	m = table_add(w->iwfd.table, &req, port, FUZZ_LIFETIME, w->now, &err);
	if (m == NULL || !mapping_set_state(w->iwfd.table, m,
	    MAP_STATE_GRANTED))
		abort();
	m->upstream = server;
	if (server == UPSTREAM_NO_SERVER)
		fuzz_addr(FUZZ_LOCAL, &m->outer_addr);
	else
		fuzz_addr(FUZZ_EXT, &m->outer_addr);
	/* the outermost port differs from the local one (control.c) */
	m->outer_port = (uint16_t)(port + 1);
	if (desc != NULL && table_set_description(w->iwfd.table, m, desc) != 0)
		abort();
}

/* The engine knows its source address toward every server (upstream_io
   would tell it once its sockets are open). */
static void
fuzz_set_locals(struct fuzz_world *w)
{
	struct in6_addr local;
	size_t i;

	fuzz_addr(FUZZ_LOCAL, &local);
	for (i = 0; i < upstream_server_count(w->iwfd.upstream); i++)
		upstream_set_local(w->iwfd.upstream, (unsigned int)i, &local);
}

static void
fuzz_world_init(struct fuzz_world *w)
{
	struct config_upstream servers[2];
	struct proxy_params pp;
	char err[CONFIG_ERROR_LEN];

	memset(w, 0, sizeof(*w));
	config_defaults(&conf);
	conf.upstream_dhcp = true;
	/* the WAN's default router is read from the kernel: not here */
	conf.upstream_default_router = false;
	strcpy(conf.wan_interface, "fuzz-absent0");
	strcpy(conf.lan_interface[0], "lan0");
	conf.n_lan_interface = 1;
	w->iwfd.conf = &conf;
	w->now = iwfd_now_ms(&w->iwfd);
	w->iwfd.started_ms = w->now;
	w->iwfd.epoch_start_ms = w->now;

	fuzz_addr(FUZZ_LAN, &w->lan.addr);
	w->lan.prefix_len = FUZZ_LAN_PREFIX_LEN;
	w->iwfd.policy.lan_prefixes = &w->lan;
	w->iwfd.policy.n_lan_prefixes = 1;
	w->iwfd.policy.min_lifetime = conf.min_lifetime;
	w->iwfd.policy.max_lifetime = conf.max_lifetime;

	if ((w->iwfd.table = table_new()) == NULL)
		abort();
	table_set_seed(w->iwfd.table, FUZZ_SEED);
	if ((w->iwfd.upstream = upstream_new(&fuzz_upstream_cb, w,
	    FUZZ_SEED)) == NULL)
		abort();
	upstream_set_transport(w->iwfd.upstream, fuzz_send, w);
	memset(&pp, 0, sizeof(pp));
	pp.nat = PROXY_NAT_NONE;
	pp.table = w->iwfd.table;
	pp.policy = &w->iwfd.policy;
	pp.upstream = w->iwfd.upstream;
	pp.random_seed = FUZZ_SEED;
	pp.kick = fuzz_kick;
	pp.cb_arg = w;
	if ((w->iwfd.proxy = proxy_new(&pp)) == NULL)
		abort();

	/* what a DHCP hook hands over first: two servers */
	if (!config_parse_server(FUZZ_SERVER_A, &servers[0], err, sizeof(err)) ||
	    !config_parse_server(FUZZ_SERVER_B ":15351", &servers[1], err,
	    sizeof(err)) ||
	    discovery_set(&w->iwfd, servers, 2, w->now) != 0)
		abort();
	fuzz_set_locals(w);
	fuzz_add_mapping(w, MAP_PROTO_TCP, "192.0.2.10", 6000, 0, "web");
	fuzz_add_mapping(w, MAP_PROTO_UDP, "192.0.2.10", 6000, 0, NULL);
	fuzz_add_mapping(w, MAP_PROTO_TCP, "192.0.2.11", 7000, 1,
	    "game \"x\"\n\x01");
	fuzz_add_mapping(w, MAP_PROTO_UDP, "192.0.2.12", 8000,
	    UPSTREAM_NO_SERVER, NULL);
}

static void
fuzz_world_free(struct fuzz_world *w)
{
	/* the daemon's order: the proxy cancels its transactions first */
	proxy_free(w->iwfd.proxy);
	upstream_free(w->iwfd.upstream);
	table_free(w->iwfd.table);
}

/* The end of a loop turn (iwfd.c: ev_turn). */
static void
fuzz_end_turn(struct fuzz_world *w)
{
	unsigned int guard = 0;

	while (w->kicked) {
		w->kicked = false;
		proxy_commit(w->iwfd.proxy, w->now);
		if (++guard > 1000)
			abort();	/* a commit that kicks for ever */
	}
}

/* Time passes: the engine's and the proxy's timers, up to later. */
static void
fuzz_later(struct fuzz_world *w, uint64_t later)
{
	unsigned int guard = 0;
	uint64_t next;

	for (;;) {
		next = upstream_next_deadline(w->iwfd.upstream);
		if (proxy_next_deadline(w->iwfd.proxy) < next)
			next = proxy_next_deadline(w->iwfd.proxy);
		if (next > later)
			break;
		if (next > w->now)
			w->now = next;
		upstream_tick(w->iwfd.upstream, w->now);
		proxy_tick(w->iwfd.proxy, w->now);
		fuzz_end_turn(w);
		if (++guard > 10000)
			abort();	/* a timer that never moves on */
	}
}

/* ---- the checks ---------------------------------------------------------- */

static void
fuzz_check_parse_pure(const char *line, const struct control_request *req,
    int rc)
{
	static struct control_request again;
	char err[CONTROL_ERROR_LEN];
	size_t i;

	if (control_parse(line, &again, err, sizeof(err)) != rc ||
	    again.cmd != req->cmd || again.json != req->json ||
	    again.protocol != req->protocol || again.port != req->port ||
	    again.n_servers != req->n_servers)
		abort();
	for (i = 0; i < req->n_servers; i++)
		if (again.servers[i].port != req->servers[i].port ||
		    !IN6_ARE_ADDR_EQUAL(&again.servers[i].addr,
		    &req->servers[i].addr))
			abort();
	if (rc == -1 && err[0] == '\0')
		abort();		/* a refusal always says why */
}

/* The answer's shape: "ok\n..." or one line "error MESSAGE\n". */
static bool
fuzz_check_answer(const char *a, size_t len)
{
	const char *nl;

	if (len >= 3 && memcmp(a, "ok\n", 3) == 0)
		return true;
	if (len < 8 || memcmp(a, "error ", 6) != 0)
		abort();
	nl = memchr(a, '\n', len);
	if (nl == NULL || nl != a + len - 1 || memchr(a, '\0', len) != NULL)
		abort();
	return false;
}

static void
fuzz_check_servers(const struct fuzz_world *w,
    const struct control_request *req)
{
	struct upstream_server_info info;
	size_t i;

	if (upstream_server_count(w->iwfd.upstream) != req->n_servers)
		abort();
	for (i = 0; i < req->n_servers; i++) {
		upstream_server_info(w->iwfd.upstream, (unsigned int)i, &info);
		if (info.port != req->servers[i].port ||
		    !IN6_ARE_ADDR_EQUAL(&info.addr, &req->servers[i].addr))
			abort();
	}
}

/* One request line, as one connection would bring it. */
static void
fuzz_line(struct fuzz_world *w, const char *line, struct evbuffer *out)
{
	static struct control_request req;
	char err[CONTROL_ERROR_LEN];
	size_t before, len;
	const char *a;
	bool ok;
	int rc;

	rc = control_parse(line, &req, err, sizeof(err));
	fuzz_check_parse_pure(line, &req, rc);
	before = table_count(w->iwfd.table);
	evbuffer_drain(out, evbuffer_get_length(out));
	control_dispatch(&w->iwfd, line, out);
	if ((len = evbuffer_get_length(out)) == 0)
		abort();		/* every request is answered */
	a = (const char *)evbuffer_pullup(out, -1);
	ok = fuzz_check_answer(a, len);
	if (rc == -1 && ok)
		abort();
	if (rc == 0 && !ok && (req.cmd == CONTROL_CMD_STATUS ||
	    req.cmd == CONTROL_CMD_LIST))
		abort();
	if (ok && req.cmd == CONTROL_CMD_DELETE &&
	    table_count(w->iwfd.table) != before - 1)
		abort();
	if (ok && req.cmd == CONTROL_CMD_SET_UPSTREAM) {
		fuzz_check_servers(w, &req);
		fuzz_set_locals(w);
	}
	fuzz_end_turn(w);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct evbuffer *in, *out;
	char *line;
	bool more = true;

	if ((in = evbuffer_new()) == NULL || (out = evbuffer_new()) == NULL ||
	    evbuffer_add(in, data, size) != 0)
		abort();
	fuzz_world_init(&world);
	while (more) {
		switch (control_read_line(in, &line)) {
		case CONTROL_READ_LINE:
			fuzz_line(&world, line, out);
			free(line);
			break;
		case CONTROL_READ_TOO_LONG:
			/* the connection is closed: nothing was a line */
			if (evbuffer_get_length(in) < CONTROL_LINE_MAX)
				abort();
			more = false;
			break;
		case CONTROL_READ_MORE:
			/* EOF without an end of line: no request */
			if (evbuffer_get_length(in) >= CONTROL_LINE_MAX)
				abort();
			more = false;
			break;
		}
	}
	fuzz_later(&world, world.now + FUZZ_LATER_MS);
	fuzz_world_free(&world);
	evbuffer_free(in);
	evbuffer_free(out);
	return 0;
}
