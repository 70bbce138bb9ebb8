/*
 * test_control.c - the control protocol without a socket: control_dispatch()
 * on a daemon context whose table holds real mappings (docs/control.md,
 * INTERFACE.md "list --json" fields).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdlib.h>
#include <string.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "control.h"
#include "discovery.h"
#include "iwfd.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "table.h"
#include "upstream.h"

struct fixture {
	struct iwfd	 iwfd;
	struct evbuffer	*out;
};

static int
setup(void **state)
{
	struct fixture *f = calloc(1, sizeof(*f));
	struct proxy_params pp;

	assert_non_null(f);
	f->iwfd.conf = calloc(1, sizeof(*f->iwfd.conf));
	assert_non_null(f->iwfd.conf);
	config_defaults(f->iwfd.conf);
	strcpy(f->iwfd.conf->wan_interface, "wan-absent0");
	f->iwfd.base = event_base_new();
	f->iwfd.table = table_new();
	memset(&pp, 0, sizeof(pp));
	pp.table = f->iwfd.table;
	pp.policy = &f->iwfd.policy;
	f->iwfd.proxy = proxy_new(&pp);
	assert_non_null(f->iwfd.proxy);
	f->out = evbuffer_new();
	*state = f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	evbuffer_free(f->out);
	proxy_free(f->iwfd.proxy);
	table_free(f->iwfd.table);
	event_base_free(f->iwfd.base);
	free(f->iwfd.conf);
	free(f);
	return 0;
}

/* The whole answer as a NUL-terminated string (owned by the fixture). */
static const char *
answer(struct fixture *f, const char *request)
{
	evbuffer_drain(f->out, evbuffer_get_length(f->out));
	control_dispatch(&f->iwfd, request, f->out);
	evbuffer_add(f->out, "", 1);
	return (const char *)evbuffer_pullup(f->out, -1);
}

static void
add_mapping(struct fixture *f, uint8_t proto, const char *addr,
    uint16_t port, const char *desc)
{
	struct map_req req;
	struct mapping *m;
	enum map_err err;

	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_NATPMP;
	assert_true(pcp_addr_pton(addr, &req.internal_addr));
	req.requester = req.internal_addr;
	req.protocol = proto;
	req.internal_port = port;
	req.lifetime = 600;
	m = table_add(f->iwfd.table, &req, port, 600, iwfd_now_ms(&f->iwfd),
	    &err);
	assert_non_null(m);
	assert_true(pcp_addr_pton("203.0.113.7", &m->outer_addr));
	m->outer_port = (uint16_t)(port + 1);
	if (desc != NULL)
		assert_int_equal(table_set_description(f->iwfd.table, m, desc), 0);
}

static void
test_list_json_fields(void **state)
{
	struct fixture *f = *state;
	const char *a;

	add_mapping(f, MAP_PROTO_TCP, "192.0.2.10", 6000, "game \"x\"\n");
	add_mapping(f, MAP_PROTO_UDP, "192.0.2.11", 7000, NULL);
	a = answer(f, "list json");
	assert_true(strncmp(a, "ok\n[{", 5) == 0);
	/* INTERFACE.md: the fields every element carries */
	assert_non_null(strstr(a, "\"protocol\":\"tcp\""));
	assert_non_null(strstr(a, "\"internal_address\":\"192.0.2.10\""));
	assert_non_null(strstr(a, "\"internal_port\":6000"));
	assert_non_null(strstr(a, "\"external_address\":\"203.0.113.7\""));
	assert_non_null(strstr(a, "\"external_port\":6001"));
	assert_non_null(strstr(a, "\"lifetime\":600"));
	assert_non_null(strstr(a, "\"origin\":\"natpmp\""));
	/* the description is escaped, never breaks the JSON */
	assert_non_null(strstr(a, "\"description\":\"game \\\"x\\\"\\n\""));
	assert_non_null(strstr(a, "\"protocol\":\"udp\""));
	assert_non_null(strstr(a, "\"description\":\"\""));
}

static void
test_list_text_and_status(void **state)
{
	struct fixture *f = *state;
	const char *a;

	add_mapping(f, MAP_PROTO_TCP, "192.0.2.10", 6000, "web");
	a = answer(f, "list text");
	assert_true(strncmp(a, "ok\nPROTO", 8) == 0);
	assert_non_null(strstr(a, "192.0.2.10:6000"));
	assert_non_null(strstr(a, "203.0.113.7:6001"));
	a = answer(f, "status json");
	assert_true(strncmp(a, "ok\n{", 4) == 0);
	assert_non_null(strstr(a, "\"mappings\":1"));
	assert_non_null(strstr(a, "\"epoch\":"));
	/* no upstream and no WAN address: unknown, never made up */
	assert_non_null(strstr(a, "\"external_address\":null"));
	assert_non_null(strstr(a, "\"upstream\":[]"));
}

static void
test_delete(void **state)
{
	struct fixture *f = *state;

	add_mapping(f, MAP_PROTO_TCP, "192.0.2.10", 6000, NULL);
	add_mapping(f, MAP_PROTO_UDP, "192.0.2.10", 6000, NULL);
	/* the outermost port is what a user sees and names */
	assert_string_equal(answer(f, "delete tcp 6000"), "error no such mapping\n");
	assert_string_equal(answer(f, "delete tcp 6001"), "ok\n");
	assert_int_equal(table_count(f->iwfd.table), 1);
	assert_non_null(table_find_internal(f->iwfd.table, MAP_PROTO_UDP,
	    &table_at(f->iwfd.table, 0)->internal_addr, 6000));
	assert_string_equal(answer(f, "delete tcp 6001"), "error no such mapping\n");
}

static void
test_bad_requests(void **state)
{
	struct fixture *f = *state;
	char longline[CONTROL_LINE_MAX + 10];

	assert_true(strncmp(answer(f, ""), "error ", 6) == 0);
	assert_true(strncmp(answer(f, "frob"), "error unknown", 13) == 0);
	assert_true(strncmp(answer(f, "list xml"), "error usage", 11) == 0);
	assert_true(strncmp(answer(f, "delete sctp 5"), "error usage", 11) == 0);
	assert_true(strncmp(answer(f, "delete tcp 70000"), "error ", 6) == 0);
	assert_true(strncmp(answer(f, "delete tcp 12x"), "error ", 6) == 0);
	assert_true(strncmp(answer(f, "delete tcp 1 2"), "error ", 6) == 0);
	assert_true(strncmp(answer(f, "a b c d e f"), "error ", 6) == 0);
	memset(longline, 'a', sizeof(longline) - 1);
	longline[sizeof(longline) - 1] = '\0';
	assert_true(strncmp(answer(f, longline), "error request too long", 22) == 0);
}

/* ---- set-upstream (upstream_server = dhcp, RFC 7291) ---- */

static void
dhcp_done(void *arg, struct upstream_txn *t, enum upstream_outcome o,
    const struct pcp_msg *resp)
{
	(void)arg;
	(void)t;
	(void)o;
	(void)resp;
	fail_msg("no transaction ends in these tests");
}

static void
dhcp_lost_state(void *arg, unsigned int server)
{
	(void)arg;
	(void)server;
}

static const struct upstream_cb dhcp_cb = {
	.done = dhcp_done,
	.lost_state = dhcp_lost_state,
};

/* The daemon of upstream_server = dhcp: an engine with no server yet. */
static int
setup_dhcp(void **state)
{
	struct fixture *f;
	struct proxy_params pp;

	setup(state);
	f = *state;
	proxy_free(f->iwfd.proxy);
	f->iwfd.conf->upstream_dhcp = true;
	f->iwfd.upstream = upstream_new(&dhcp_cb, f, 1);
	assert_non_null(f->iwfd.upstream);
	memset(&pp, 0, sizeof(pp));
	pp.table = f->iwfd.table;
	pp.policy = &f->iwfd.policy;
	pp.upstream = f->iwfd.upstream;
	f->iwfd.proxy = proxy_new(&pp);
	assert_non_null(f->iwfd.proxy);
	return 0;
}

static int
teardown_dhcp(void **state)
{
	struct fixture *f = *state;
	struct upstream *u = f->iwfd.upstream;

	teardown(state);	/* the proxy first: it uses the engine */
	upstream_free(u);
	return 0;
}

/* A live mapping on server `server` (UPSTREAM_NO_SERVER: the gateway's
   alone), its outer port distinct from its local one. */
static struct mapping *
add_granted(struct fixture *f, const char *addr, uint16_t port,
    uint8_t server)
{
	struct mapping *m;

	add_mapping(f, MAP_PROTO_UDP, addr, port, NULL);
	m = table_find_internal(f->iwfd.table, MAP_PROTO_UDP,
	    &table_at(f->iwfd.table, table_count(f->iwfd.table) - 1)->
	    internal_addr, port);
	assert_non_null(m);
	assert_true(mapping_set_state(f->iwfd.table, m, MAP_STATE_GRANTED));
	m->upstream = server;
	return m;
}

static void
assert_server(struct fixture *f, unsigned int i, const char *addr,
    uint16_t port)
{
	struct upstream_server_info info;
	char buf[INET6_ADDRSTRLEN];

	assert_true(i < upstream_server_count(f->iwfd.upstream));
	upstream_server_info(f->iwfd.upstream, i, &info);
	assert_string_equal(pcp_addr_ntop(&info.addr, buf, sizeof(buf)), addr);
	assert_int_equal(info.port, port);
}

/* Only a dhcp configuration takes servers at run time. */
static void
test_set_upstream_needs_dhcp(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(answer(f, "set-upstream 198.51.100.1"),
	    "error set-upstream needs upstream_server = dhcp in the "
	    "configuration\n");
}

static void
test_set_upstream_list(void **state)
{
	struct fixture *f = *state;
	const char *a;

	/* none known yet: the gateway is the last NAT */
	a = answer(f, "status json");
	assert_non_null(strstr(a, "\"upstream_source\":\"dhcp\""));
	assert_non_null(strstr(a, "\"upstream\":[]"));
	assert_non_null(strstr(answer(f, "status"), "none known yet"));
	a = answer(f, "set-upstream 198.51.100.1 [2001:db8::1]:15351");
	assert_true(strncmp(a, "ok\n", 3) == 0);
	assert_non_null(strstr(a, "upstream 198.51.100.1 port 5351"));
	assert_int_equal(upstream_server_count(f->iwfd.upstream), 2);
	assert_server(f, 0, "198.51.100.1", 5351);
	assert_server(f, 1, "2001:db8::1", 15351);
	assert_true(f->iwfd.state_dirty);	/* the state file names them */
	a = answer(f, "status json");
	assert_non_null(strstr(a, "\"address\":\"2001:db8::1\",\"port\":"
	    "15351"));
	/* refused: nothing changes */
	assert_true(strncmp(answer(f, "set-upstream 198.51.100.1 dhcp"),
	    "error upstream_server: \"dhcp\" is not", 33) == 0);
	assert_string_equal(answer(f, "set-upstream 192.0.2.1 192.0.2.1:5351"),
	    "error 192.0.2.1:5351 is listed twice\n");
	assert_string_equal(answer(f, "set-upstream 10.0.0.1 10.0.0.2 10.0.0.3 "
	    "10.0.0.4 10.0.0.5 10.0.0.6 10.0.0.7 10.0.0.8 10.0.0.9"),
	    "error more than 8 upstream servers\n");
	assert_true(strncmp(answer(f, "set-upstream 224.0.0.1"),
	    "error upstream_server: \"224.0.0.1\" is not a unicast", 47) == 0);
	assert_int_equal(upstream_server_count(f->iwfd.upstream), 2);
	/* none: the DHCP client knows none any more */
	assert_true(strncmp(answer(f, "set-upstream"), "ok\n", 3) == 0);
	assert_int_equal(upstream_server_count(f->iwfd.upstream), 0);
	assert_int_equal(f->iwfd.n_dhcp_servers, 0);
}

/* RFC 7488: a mapping stays on the server that holds it; one whose
   server went, or that the gateway held alone, goes to the first. */
static void
test_set_upstream_rehome(void **state)
{
	struct fixture *f = *state;
	struct mapping *alone, *on_a, *on_b;

	alone = add_granted(f, "192.0.2.10", 6000, UPSTREAM_NO_SERVER);
	assert_true(strncmp(answer(f, "set-upstream 198.51.100.1 "
	    "198.51.100.2"), "ok\n", 3) == 0);
	/* made while no server was known: now created upstream */
	assert_int_equal(alone->upstream, 0);
	on_a = add_granted(f, "192.0.2.11", 6001, 0);	/* 198.51.100.1 */
	on_b = add_granted(f, "192.0.2.12", 6002, 1);	/* 198.51.100.2 */
	/* .2 stays (now index 0), .1 goes, .3 is new */
	assert_true(strncmp(answer(f, "set-upstream 198.51.100.2 "
	    "198.51.100.3"), "ok\n", 3) == 0);
	assert_server(f, 0, "198.51.100.2", 5351);
	assert_server(f, 1, "198.51.100.3", 5351);
	assert_int_equal(on_b->upstream, 0);	/* kept, renumbered */
	assert_int_equal(on_a->upstream, 0);	/* moved to the first */
	assert_int_equal(alone->upstream, 0);
	/* the same list again changes nothing */
	on_a->upstream = 1;
	assert_true(strncmp(answer(f, "set-upstream 198.51.100.2 "
	    "198.51.100.3"), "ok\n", 3) == 0);
	assert_int_equal(on_a->upstream, 1);
	/* no server left: every mapping is the gateway's alone */
	assert_true(strncmp(answer(f, "set-upstream"), "ok\n", 3) == 0);
	assert_int_equal(on_a->upstream, UPSTREAM_NO_SERVER);
	assert_int_equal(on_b->upstream, UPSTREAM_NO_SERVER);
	assert_int_equal(on_b->outer_port, on_b->ext_port);
}

/* The table part alone (discovery_rehome): counts. */
static void
test_rehome_counts(void **state)
{
	struct fixture *f = *state;
	struct discovery_moves mv;
	struct in6_addr wan;
	struct mapping *m0, *m1, *m2;
	const uint8_t map[] = { 1, UPSTREAM_NO_SERVER };

	m0 = add_granted(f, "192.0.2.10", 6000, 0);
	m1 = add_granted(f, "192.0.2.11", 6001, 1);
	m2 = add_granted(f, "192.0.2.12", 6002, 0);
	(void)mapping_set_state(f->iwfd.table, m2, MAP_STATE_EXPIRED);
	discovery_rehome(f->iwfd.table, map, 2, 2, NULL, &mv);
	assert_int_equal(mv.kept, 1);
	assert_int_equal(mv.moved, 1);
	assert_int_equal(mv.local, 0);
	assert_int_equal(m0->upstream, 1);
	assert_int_equal(m1->upstream, 0);
	assert_int_equal(m2->upstream, 0);	/* not live: left alone */
	assert_true(pcp_addr_pton("203.0.113.1", &wan));
	discovery_rehome(f->iwfd.table, map, 0, 0, &wan, &mv);
	assert_int_equal(mv.local, 2);
	assert_true(IN6_ARE_ADDR_EQUAL(&m0->outer_addr, &wan));
}

/* ---- the parser and the framing alone (control_parse, control_read_line) ---- */

static void
test_parse(void **state)
{
	struct control_request req;
	char err[CONTROL_ERROR_LEN];

	(void)state;
	assert_int_equal(control_parse("list\tjson", &req, err, sizeof(err)), 0);
	assert_int_equal(req.cmd, CONTROL_CMD_LIST);
	assert_true(req.json);
	assert_int_equal(control_parse("delete UDP 8001", &req, err,
	    sizeof(err)), 0);
	assert_int_equal(req.cmd, CONTROL_CMD_DELETE);
	assert_int_equal(req.protocol, MAP_PROTO_UDP);
	assert_int_equal(req.port, 8001);
	assert_int_equal(control_parse("set-upstream 198.51.100.1 "
	    "[2001:db8::1]:15351", &req, err, sizeof(err)), 0);
	assert_int_equal(req.cmd, CONTROL_CMD_SET_UPSTREAM);
	assert_int_equal(req.n_servers, 2);
	assert_int_equal(req.servers[0].port, 5351);
	assert_int_equal(req.servers[1].port, 15351);
	/* refused: the command is still named, the message says why */
	assert_int_equal(control_parse("set-upstream ::ffff:192.0.2.1 "
	    "192.0.2.1", &req, err, sizeof(err)), -1);
	assert_int_equal(req.cmd, CONTROL_CMD_SET_UPSTREAM);
	assert_string_equal(err, "192.0.2.1 is listed twice");
	assert_int_equal(control_parse("status xml", &req, err, sizeof(err)),
	    -1);
	assert_int_equal(req.cmd, CONTROL_CMD_STATUS);
	assert_int_equal(control_parse("frob", &req, err, sizeof(err)), -1);
	assert_int_equal(req.cmd, CONTROL_CMD_NONE);
	assert_string_equal(err, "unknown command");
}

static void
test_read_line(void **state)
{
	struct evbuffer *in = evbuffer_new();
	char big[CONTROL_LINE_MAX];
	char *line;

	(void)state;
	assert_non_null(in);
	evbuffer_add_printf(in, "stat");
	assert_int_equal(control_read_line(in, &line), CONTROL_READ_MORE);
	evbuffer_add_printf(in, "us\r\nlist\n");
	assert_int_equal(control_read_line(in, &line), CONTROL_READ_LINE);
	assert_string_equal(line, "status");
	free(line);
	assert_int_equal(control_read_line(in, &line), CONTROL_READ_LINE);
	assert_string_equal(line, "list");
	free(line);
	/* CONTROL_LINE_MAX bytes and no end: not a request */
	memset(big, 'a', sizeof(big));
	evbuffer_add(in, big, sizeof(big) - 1);
	assert_int_equal(control_read_line(in, &line), CONTROL_READ_MORE);
	evbuffer_add(in, "a", 1);
	assert_int_equal(control_read_line(in, &line), CONTROL_READ_TOO_LONG);
	evbuffer_free(in);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_json_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_text_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_upstream_needs_dhcp,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_set_upstream_list,
		    setup_dhcp, teardown_dhcp),
		cmocka_unit_test_setup_teardown(test_set_upstream_rehome,
		    setup_dhcp, teardown_dhcp),
		cmocka_unit_test_setup_teardown(test_rehome_counts,
		    setup_dhcp, teardown_dhcp),
		cmocka_unit_test(test_parse),
		cmocka_unit_test(test_read_line),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
