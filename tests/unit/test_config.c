/*
 * test_config.c - the configuration parser.
 *
 * Golden tests: tests/golden/config/NAME.conf is parsed with the name
 * "NAME.conf"; NAME.out holds the expected config_print() output (and that
 * output must parse back to itself), NAME.err the exact expected error
 * lines. docs/pcp-iwfd.conf.example is checked against docs-example.out.
 * The unit tests below cover what a text file cannot show (NUL bytes, the
 * error cap, the stored values, reading files).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "test_file.h"

#define GOLDEN_DIR		IWFD_TEST_DATA_DIR "/golden/config"
#define DOCS_EXAMPLE		IWFD_TEST_DATA_DIR "/../docs/pcp-iwfd.conf.example"
#define DOCS_EXAMPLE_OUT	"docs-example.out"
/* The cases written so far; fewer means files went missing. */
#define GOLDEN_MIN_CASES	40

/* Both large; static keeps cmocka's stack small. */
static struct iwfd_config cfg, cfg2;
static struct config_errors errs;

static char *
print_config(const struct iwfd_config *c, size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	assert_non_null(f);
	config_print(c, f);
	assert_int_equal(fclose(f), 0);
	return text;
}

static char *
print_errors(size_t *len)
{
	char *text = NULL;
	FILE *f = open_memstream(&text, len);

	assert_non_null(f);
	config_errors_print(&errs, f);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* Report a mismatch with both texts; return 1 so callers can count. */
static int
mismatch(const char *name, const char *what, const char *want,
    const char *got)
{
	printf("FAIL %s: %s differs\n--- expected\n%s--- got\n%s---\n",
	    name, what, want, got);
	return 1;
}

/* A printed configuration must parse to the same printed text. */
static int
check_round_trip(const char *name, const char *printed, size_t len)
{
	char *again;
	size_t again_len;
	int failed = 0;

	if (config_parse_buffer(name, printed, len, &cfg2, &errs) != 0) {
		char *e = print_errors(&again_len);

		failed = mismatch(name, "re-parse of the printed config",
		    "", e);
		free(e);
		return failed;
	}
	again = print_config(&cfg2, &again_len);
	if (strcmp(again, printed) != 0)
		failed = mismatch(name, "round trip", printed, again);
	free(again);
	return failed;
}

/*
 * Parse text as `name` and compare with the expected output: want_out is
 * the config_print() text (success expected) or, when is_err, the error
 * lines. Returns the number of failures (0 or 1).
 */
static int
check_case(const char *name, const char *text, size_t len,
    const char *want, bool is_err)
{
	char *got;
	size_t got_len;
	int rc, failed;

	rc = config_parse_buffer(name, text, len, &cfg, &errs);
	if (rc != 0) {
		got = print_errors(&got_len);
		failed = is_err ? (strcmp(got, want) != 0 ?
		    mismatch(name, "errors", want, got) : 0) :
		    mismatch(name, "parse (expected success)", want, got);
		free(got);
		return failed;
	}
	got = print_config(&cfg, &got_len);
	if (is_err)
		failed = mismatch(name, "parse (expected errors)", want, got);
	else if (strcmp(got, want) != 0)
		failed = mismatch(name, "config_print output", want, got);
	else
		failed = check_round_trip(name, got, got_len);
	free(got);
	return failed;
}

static bool
has_suffix(const char *s, const char *suffix)
{
	size_t n = strlen(s), m = strlen(suffix);

	return n >= m && strcmp(s + n - m, suffix) == 0;
}

/* One NAME.conf with its NAME.out or NAME.err (exactly one of them). */
static int
run_golden_case(const char *conf)
{
	char path[1024], base[256];
	char *text, *out, *err;
	size_t len, out_len, err_len;
	int failed;

	snprintf(base, sizeof(base), "%.*s", (int)(strlen(conf) -
	    strlen(".conf")), conf);
	snprintf(path, sizeof(path), "%s/%s", GOLDEN_DIR, conf);
	text = test_slurp(path, &len);
	assert_non_null(text);
	snprintf(path, sizeof(path), "%s/%s.out", GOLDEN_DIR, base);
	out = test_slurp(path, &out_len);
	snprintf(path, sizeof(path), "%s/%s.err", GOLDEN_DIR, base);
	err = test_slurp(path, &err_len);
	if ((out == NULL) == (err == NULL)) {
		printf("FAIL %s: needs exactly one of %s.out, %s.err\n",
		    conf, base, base);
		failed = 1;
	} else
		failed = check_case(conf, text, len, out != NULL ? out : err,
		    err != NULL);
	free(text);
	free(out);
	free(err);
	return failed;
}

/* Every .out/.err belongs to a .conf (docs-example.out to the docs). */
static int
check_orphan(const char *name)
{
	char path[1024];
	size_t n = strlen(name) - strlen(".out");
	FILE *f;

	if (strcmp(name, DOCS_EXAMPLE_OUT) == 0)
		return 0;
	snprintf(path, sizeof(path), "%s/%.*s.conf", GOLDEN_DIR, (int)n, name);
	if ((f = fopen(path, "r")) == NULL) {
		printf("FAIL %s: no matching .conf\n", name);
		return 1;
	}
	fclose(f);
	return 0;
}

static void
test_golden(void **state)
{
	struct dirent **names;
	int i, n, cases = 0, failed = 0;

	(void)state;
	n = scandir(GOLDEN_DIR, &names, NULL, alphasort);
	assert_true(n >= 0);
	for (i = 0; i < n; i++) {
		if (has_suffix(names[i]->d_name, ".conf")) {
			failed += run_golden_case(names[i]->d_name);
			cases++;
		} else if (has_suffix(names[i]->d_name, ".out") ||
		    has_suffix(names[i]->d_name, ".err"))
			failed += check_orphan(names[i]->d_name);
		free(names[i]);
	}
	free(names);
	printf("golden/config: %d cases, %d failed\n", cases, failed);
	assert_int_equal(failed, 0);
	/* An emptied or half-copied directory must not pass. */
	assert_true(cases >= GOLDEN_MIN_CASES);
}

/* The shipped example parses, through the file reader, to its golden. */
static void
test_docs_example(void **state)
{
	char *want, *got;
	size_t want_len, got_len;

	(void)state;
	want = test_slurp(GOLDEN_DIR "/" DOCS_EXAMPLE_OUT, &want_len);
	assert_non_null(want);
	if (config_parse_file(DOCS_EXAMPLE, &cfg, &errs) != 0) {
		config_errors_print(&errs, stdout);
		fail_msg("%s does not parse", DOCS_EXAMPLE);
	}
	got = print_config(&cfg, &got_len);
	assert_string_equal(got, want);
	free(got);
	free(want);
}

static void
test_defaults(void **state)
{
	(void)state;
	memset(&cfg, 0xa5, sizeof(cfg));
	config_defaults(&cfg);
	assert_int_equal(cfg.n_lan_interface, 0);
	assert_string_equal(cfg.wan_interface, "");
	assert_int_equal(cfg.n_upstream_server, 0);
	assert_int_equal(cfg.nat, CONFIG_NAT_LOCAL);
	assert_true(cfg.upnp);
	assert_int_equal(cfg.upnp_igd_version, 1);
	assert_int_equal(cfg.upnp_port, 0);
	assert_string_equal(cfg.upnp_friendly_name,
	    "pcp-iwfd Internet Gateway");
	assert_true(cfg.natpmp);
	assert_true(cfg.pcp);
	assert_true(cfg.relay_unknown);
	assert_int_equal(cfg.third_party, CONFIG_THIRD_PARTY_DENY);
	assert_int_equal(cfg.max_mappings_per_host, 64);
	assert_int_equal(cfg.min_lifetime, 120);
	assert_int_equal(cfg.max_lifetime, 86400);
	assert_string_equal(cfg.state_file, "/var/lib/pcp-iwfd/state");
	assert_string_equal(cfg.control_socket, "/run/pcp-iwfd.sock");
	assert_string_equal(cfg.nft_table, "pcp_iwfd");
	assert_string_equal(cfg.user, "pcp-iwfd");
	assert_int_equal(cfg.n_acl, 0);
	assert_false(cfg.upstream_dhcp);
	assert_false(cfg.upstream_default_router);
	assert_false(config_has_upstream(&cfg));
}

/* upstream_server = dhcp (RFC 7291 discovery) is a flag, not a list
   element: no server is known from the file, yet there is an upstream. */
static void
test_upstream_dhcp(void **state)
{
	static const char text[] = "lan_interface = br0\n"
	    "wan_interface = eth0\nupstream_server = dhcp\n";
	static const char text_dr[] = "lan_interface = br0\n"
	    "wan_interface = eth0\nupstream_server =  dhcp \n"
	    "upstream_default_router = yes\n";
	static const char bad[] = "lan_interface = br0\n"
	    "wan_interface = eth0\nupstream_server = DHCP\n";

	(void)state;
	assert_int_equal(config_parse_buffer("t", text, strlen(text), &cfg,
	    &errs), 0);
	assert_true(cfg.upstream_dhcp);
	assert_false(cfg.upstream_default_router);
	assert_int_equal(cfg.n_upstream_server, 0);
	assert_true(config_has_upstream(&cfg));
	assert_int_equal(config_parse_buffer("t", text_dr, strlen(text_dr),
	    &cfg, &errs), 0);
	assert_true(cfg.upstream_dhcp);
	assert_true(cfg.upstream_default_router);
	/* the keyword is lower case, like every other word of the file */
	assert_int_equal(config_parse_buffer("t", bad, strlen(bad), &cfg,
	    &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_string_equal(errs.msg[0], "t:3: upstream_server: \"DHCP\" is "
	    "not an IPv4 or IPv6 address");
}

static void
assert_addr(const struct in6_addr *a, const char *text)
{
	char buf[INET6_ADDRSTRLEN];

	if (IN6_IS_ADDR_V4MAPPED(a))
		inet_ntop(AF_INET, &a->s6_addr[12], buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, a, buf, sizeof(buf));
	assert_string_equal(buf, text);
}

/* The stored values, not only their printed form. */
static void
test_stored_values(void **state)
{
	char *text;
	size_t len;

	(void)state;
	text = test_slurp(GOLDEN_DIR "/full.conf", &len);
	assert_non_null(text);
	assert_int_equal(config_parse_buffer("full.conf", text, len, &cfg,
	    &errs), 0);
	free(text);
	assert_int_equal(cfg.n_lan_interface, 2);
	assert_string_equal(cfg.lan_interface[0], "br-lan");
	assert_string_equal(cfg.lan_interface[1], "wlan0");
	assert_string_equal(cfg.wan_interface, "eth1");
	assert_int_equal(cfg.n_upstream_server, 2);
	assert_true(IN6_IS_ADDR_V4MAPPED(&cfg.upstream_server[0].addr));
	assert_addr(&cfg.upstream_server[0].addr, "192.0.2.1");
	assert_int_equal(cfg.upstream_server[0].port, 5351);
	assert_false(IN6_IS_ADDR_V4MAPPED(&cfg.upstream_server[1].addr));
	assert_addr(&cfg.upstream_server[1].addr, "2001:db8::1");
	assert_int_equal(cfg.upstream_server[1].port, 5352);
	assert_int_equal(cfg.nat, CONFIG_NAT_NONE);
	assert_false(cfg.upnp);
	assert_int_equal(cfg.upnp_igd_version, 2);
	assert_int_equal(cfg.upnp_port, 5000);
	assert_false(cfg.natpmp);
	assert_false(cfg.pcp);
	assert_false(cfg.relay_unknown);
	assert_int_equal(cfg.third_party, CONFIG_THIRD_PARTY_ALLOW);
	/* a bare IPv4 address is a host: /32 on the IPv4-mapped form */
	assert_int_equal(cfg.n_third_party_host, 2);
	assert_addr(&cfg.third_party_host[0].addr, "192.168.1.10");
	assert_int_equal(cfg.third_party_host[0].prefix_len, 96 + 32);
	assert_addr(&cfg.third_party_host[1].addr, "2001:db8:1::");
	assert_int_equal(cfg.third_party_host[1].prefix_len, 64);
	assert_int_equal(cfg.max_mappings_per_host, 16);
	assert_int_equal(cfg.min_lifetime, 60);
	assert_int_equal(cfg.max_lifetime, 7200);
	assert_int_equal(cfg.n_acl, 2);
	assert_true(cfg.acl[0].allow);
	assert_int_equal(cfg.acl[0].prefix_len, 96 + 24);
	assert_false(cfg.acl[1].allow);
	assert_int_equal(cfg.acl[1].ext_max, 65535);
}

static void
test_nul_byte(void **state)
{
	static const char text[] = "lan_interface = br0\nwan_interface = e\0th0"
	    "\nupnp = no\n";
	static const char in_comment[] = "lan_interface = br0 #\0\n"
	    "wan_interface = eth0";
	char *got;
	size_t len;

	(void)state;
	assert_int_equal(config_parse_buffer("nul.conf", text,
	    sizeof(text) - 1, &cfg, &errs), -1);
	got = print_errors(&len);
	assert_string_equal(got, "nul.conf:2: NUL character in line\n"
	    "nul.conf: missing required key \"wan_interface\"\n");
	free(got);
	/* a NUL inside a comment is part of the comment */
	assert_int_equal(config_parse_buffer("nul.conf", in_comment,
	    sizeof(in_comment) - 1, &cfg, &errs), 0);
}

/* Every error counts; past the cap they are counted, not stored. */
static void
test_error_cap(void **state)
{
	char *text, *got, want[64];
	size_t i, len = 0, cap = 200 * sizeof("bogus = 1\n");

	(void)state;
	text = malloc(cap);
	assert_non_null(text);
	for (i = 0; i < 200; i++)
		len += (size_t)snprintf(text + len, cap - len, "bogus = 1\n");
	assert_int_equal(config_parse_buffer("cap.conf", text, len, &cfg,
	    &errs), -1);
	assert_int_equal(errs.count, CONFIG_ERRORS_MAX);
	/* 200 unknown keys and two missing required keys */
	assert_int_equal(errs.count + errs.dropped, 202);
	assert_string_equal(errs.msg[0], "cap.conf:1: unknown key \"bogus\"");
	got = print_errors(&len);
	snprintf(want, sizeof(want), "(%d more errors not shown)\n",
	    202 - CONFIG_ERRORS_MAX);
	assert_true(has_suffix(got, want));
	free(got);
	free(text);
}

static void
test_long_value(void **state)
{
	static const char head[] = "lan_interface = br0\nwan_interface = eth0"
	    "\nstate_file = /";
	char *text;
	/* the value is "/" and CONFIG_VALUE_MAX letters: one too many */
	size_t len = sizeof(head) - 1 + CONFIG_VALUE_MAX;

	(void)state;
	text = malloc(len);
	assert_non_null(text);
	memcpy(text, head, sizeof(head) - 1);
	memset(text + sizeof(head) - 1, 'a', len - (sizeof(head) - 1));
	assert_int_equal(config_parse_buffer("long.conf", text, len, &cfg,
	    &errs), -1);
	assert_int_equal(errs.count, 1);
	assert_non_null(strstr(errs.msg[0], "long.conf:3: state_file: value "
	    "is longer than"));
	/* one less fits a line but not state_file[PATH_MAX] */
	assert_int_equal(config_parse_buffer("long.conf", text, len - 1, &cfg,
	    &errs), -1);
	assert_non_null(strstr(errs.msg[0], "is longer than 4095 characters"));
	free(text);
}

static void
test_parse_file_errors(void **state)
{
	char *got;
	size_t len;

	(void)state;
	assert_int_equal(config_parse_file(GOLDEN_DIR "/no-such.conf", &cfg,
	    &errs), -1);
	got = print_errors(&len);
	assert_string_equal(got, GOLDEN_DIR "/no-such.conf: No such file or "
	    "directory\n");
	free(got);
	assert_int_equal(config_parse_file(GOLDEN_DIR, &cfg, &errs), -1);
	assert_int_equal(errs.count, 1);
	/* a file's errors carry the path as given */
	assert_int_equal(config_parse_file(GOLDEN_DIR "/empty.conf", &cfg,
	    &errs), -1);
	assert_string_equal(errs.msg[0], GOLDEN_DIR "/empty.conf: missing "
	    "required key \"lan_interface\"");
	assert_int_equal(config_parse_file(GOLDEN_DIR "/minimal.conf", &cfg,
	    &errs), 0);
	assert_string_equal(cfg.wan_interface, "eth0");
}

/* SIGHUP: a failed parse into a fresh struct leaves the live one alone. */
static void
test_reload_independent(void **state)
{
	static struct iwfd_config live, copy;
	static const char good[] = "lan_interface = br0\nwan_interface = eth0\n";
	static const char bad[] = "lan_interface = br1\nwan_interface = x/y\n";

	(void)state;
	assert_int_equal(config_parse_buffer("a", good, sizeof(good) - 1,
	    &live, &errs), 0);
	memcpy(&copy, &live, sizeof(copy));
	assert_int_equal(config_parse_buffer("b", bad, sizeof(bad) - 1,
	    &cfg, &errs), -1);
	assert_memory_equal(&live, &copy, sizeof(copy));
	/* no state carried from one parse to the next */
	assert_int_equal(config_parse_buffer("a", good, sizeof(good) - 1,
	    &cfg, &errs), 0);
	assert_int_equal(errs.count, 0);
	assert_int_equal(cfg.n_lan_interface, 1);
}

static void
test_odd_inputs(void **state)
{
	static const char no_newline[] = "lan_interface=a\nwan_interface=b";
	char name[CONFIG_ERROR_LEN * 2];

	(void)state;
	assert_int_equal(config_parse_buffer("null.conf", NULL, 0, &cfg,
	    &errs), -1);
	assert_int_equal(errs.count, 2);
	/* no final newline */
	assert_int_equal(config_parse_buffer("x", no_newline,
	    sizeof(no_newline) - 1, &cfg, &errs), 0);
	assert_string_equal(cfg.wan_interface, "b");
	/* a file name longer than a message is cut, not overrun */
	memset(name, 'n', sizeof(name) - 1);
	name[sizeof(name) - 1] = '\0';
	assert_int_equal(config_parse_buffer(name, "x", 1, &cfg, &errs), -1);
	assert_int_equal(strlen(errs.msg[0]), CONFIG_ERROR_LEN - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_golden),
		cmocka_unit_test(test_docs_example),
		cmocka_unit_test(test_defaults),
		cmocka_unit_test(test_stored_values),
		cmocka_unit_test(test_upstream_dhcp),
		cmocka_unit_test(test_nul_byte),
		cmocka_unit_test(test_error_cap),
		cmocka_unit_test(test_long_value),
		cmocka_unit_test(test_parse_file_errors),
		cmocka_unit_test(test_reload_independent),
		cmocka_unit_test(test_odd_inputs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
