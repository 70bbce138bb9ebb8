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
#include "iwfd.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "table.h"

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

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_list_json_fields, setup, teardown),
		cmocka_unit_test_setup_teardown(test_list_text_and_status, setup, teardown),
		cmocka_unit_test_setup_teardown(test_delete, setup, teardown),
		cmocka_unit_test_setup_teardown(test_bad_requests, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
