/*
 * test_state.c - the state file (src/state.c): format and parse round
 * trips through the table, every malformed line with its line number,
 * truncation, duplicates, expiry on restore, the version check, the
 * client lease (version 2: none, infinite, finite; ended while down;
 * version-1 files without it), MAPPING_F_RENEW never written, the
 * durable write (a failed write leaves the old file intact), the corrupt
 * file moved aside, the Epoch across a restart, and the cost at 50,000
 * mappings.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/resource.h>
#include <sys/stat.h>

#include <arpa/inet.h>
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "config.h"
#include "pcp_wire.h"
#include "state.h"
#include "table.h"
#include "test_file.h"

#define NAME		"t.state"
#define NOW_MS		5000000ULL	/* monotonic */
#define NOW_WALL	1700000000ULL
#define BIG_COUNT	50000
#define FNV_OFFSET	0xcbf29ce484222325ULL
#define FNV_PRIME	0x100000001b3ULL

static struct in6_addr
addr(const char *s)
{
	struct in6_addr a;

	assert_true(pcp_addr_pton(s, &a));
	return a;
}

static struct map_req
req_make(enum map_origin origin, const char *host, uint8_t proto,
    uint16_t port, uint8_t nonce, const char *desc)
{
	struct map_req r;

	memset(&r, 0, sizeof(r));
	r.origin = origin;
	r.requester = addr(host);
	r.internal_addr = r.requester;
	r.requester_port = 40000;
	r.protocol = proto;
	r.internal_port = port;
	r.lifetime = 7200;
	memset(r.nonce, nonce, sizeof(r.nonce));
	if (desc != NULL) {
		r.flags |= MAP_F_HAS_DESCRIPTION;
		snprintf(r.description, sizeof(r.description), "%s", desc);
	}
	return r;
}

static struct mapping *
add_granted(struct table *t, struct map_req *r, uint16_t ext,
    uint32_t lifetime)
{
	struct mapping *m;
	enum map_err err;

	m = table_add(t, r, ext, lifetime, NOW_MS, &err);
	assert_non_null(m);
	assert_true(mapping_set_state(t, m, MAP_STATE_GRANTED));
	m->outer_addr = addr("198.51.100.7");
	m->outer_port = (uint16_t)(ext + 1);
	m->upstream = 0;
	return m;
}

static const char *const descriptions[] = {
	"plain",
	"with spaces and \"quotes\" and 'single'",
	"caf\xc3\xa9 \xe2\x98\x83 non-ASCII",
	"line one\nline two\r\ttab",
	"-",
	"100% %41 literal",
};

/* A table with MAP mappings of every origin and PEER mappings. */
static struct table *
table_fixture(void)
{
	struct table *t = table_new();
	struct map_req r;
	struct mapping *m;
	size_t i;

	assert_non_null(t);
	table_set_seed(t, 1);
	for (i = 0; i < sizeof(descriptions) / sizeof(descriptions[0]); i++) {
		r = req_make((enum map_origin)(i % MAP_ORIGIN_COUNT ==
		    MAP_ORIGIN_CONTROL ? MAP_ORIGIN_PCP : i % MAP_ORIGIN_COUNT),
		    "192.168.1.10", MAP_PROTO_TCP, (uint16_t)(8000 + i),
		    (uint8_t)i, descriptions[i]);
		(void)add_granted(t, &r, (uint16_t)(9000 + i), 3600);
	}
	r = req_make(MAP_ORIGIN_UPNP, "192.168.1.11", MAP_PROTO_UDP, 500, 9,
	    "any port");
	r.flags |= MAP_F_ANY_PORT;
	(void)add_granted(t, &r, 20500, 600);
	r = req_make(MAP_ORIGIN_CONTROL, "192.168.1.12", MAP_PROTO_TCP, 22,
	    0, "static ssh");
	r.flags |= MAP_F_STATIC;
	m = add_granted(t, &r, 2222, TABLE_LIFETIME_INFINITE);
	m->upstream = STATE_UPSTREAM_NONE;
	r = req_make(MAP_ORIGIN_PCP, "2001:db8::20", MAP_PROTO_UDP, 4000,
	    0x42, NULL);
	r.requester = addr("2001:db8::1");
	r.flags |= MAP_F_THIRD_PARTY | MAP_F_PREFER_FAILURE;
	m = add_granted(t, &r, 4000, 120);
	m->outer_addr = addr("2001:db8:ffff::1");
	/* PEER mappings: two remotes of one endpoint, sharing its port */
	r = req_make(MAP_ORIGIN_PCP, "192.168.1.13", MAP_PROTO_TCP, 5555,
	    0x51, "peer one");
	r.flags |= MAP_F_PEER;
	r.peer_addr = addr("203.0.113.9");
	r.peer_port = 443;
	(void)add_granted(t, &r, 5555, 300);
	r.peer_addr = addr("2001:db8:1::9");
	r.peer_port = 80;
	r.flags &= ~(unsigned int)MAP_F_HAS_DESCRIPTION;
	(void)add_granted(t, &r, 5555, 300);
	/* UPnP client leases the proxy keeps alive upstream (RFC 6970
	   §5.9): IGD:1 lease 0, renewed until deleted, and an IGD:2 lease
	   of a day on a two-hour grant, both between renewals
	   (MAPPING_F_RENEW: expiry is the renewal point); and a lease
	   shorter than its grant */
	r = req_make(MAP_ORIGIN_UPNP, "192.168.1.15", MAP_PROTO_UDP, 3074,
	    0x61, "Xbox");
	r.flags |= MAP_F_PREFER_FAILURE;
	r.lifetime = TABLE_LIFETIME_INFINITE;
	r.lease = MAP_LEASE_INFINITE;
	m = add_granted(t, &r, 3074, 7200);
	table_set_renewal(t, m, NOW_MS + 3600 * 1000ULL,
	    NOW_MS + 7200 * 1000ULL);
	r = req_make(MAP_ORIGIN_UPNP, "192.168.1.15", MAP_PROTO_TCP, 51413,
	    0x62, "torrent");
	r.lifetime = 86400;
	r.lease = 86400;
	m = add_granted(t, &r, 51413, 7200);
	table_set_renewal(t, m, NOW_MS + 3600 * 1000ULL,
	    NOW_MS + 7200 * 1000ULL);
	r = req_make(MAP_ORIGIN_UPNP, "192.168.1.16", MAP_PROTO_TCP, 8443,
	    0x63, NULL);
	r.lifetime = 600;
	r.lease = 600;
	(void)add_granted(t, &r, 8443, 3600);
	/* never granted: not saved */
	r = req_make(MAP_ORIGIN_PCP, "192.168.1.14", MAP_PROTO_TCP, 1,
	    0x77, NULL);
	assert_non_null(table_add(t, &r, 30001, 60, NOW_MS,
	    &(enum map_err){ MAP_OK }));
	return t;
}

static void
header_fixture(struct state_header *h)
{
	size_t i;

	memset(h, 0, sizeof(*h));
	h->epoch = 123456;
	h->written = NOW_WALL;
	h->has_natpmp_key = true;
	for (i = 0; i < IWF_NONCE_KEY_SIZE; i++)
		h->natpmp_key[i] = (uint8_t)(i * 17);
	h->n_upstream = 2;
	h->upstream[0].addr = addr("192.0.2.1");
	h->upstream[0].port = 5351;
	h->upstream[0].epoch_known = true;
	h->upstream[0].epoch = 999;
	h->upstream[0].epoch_age = 12;
	h->upstream[1].addr = addr("2001:db8::5351");
	h->upstream[1].port = 15351;
}

static char *
format_text(const struct state_image *img, size_t *len)
{
	char *text = NULL;
	FILE *f;

	assert_non_null(f = open_memstream(&text, len));
	assert_int_equal(state_format(img, f), 0);
	assert_int_equal(fclose(f), 0);
	return text;
}

/* The real end of a mapping: with MAPPING_F_RENEW expiry is only its
   next renewal point. */
static uint64_t
mapping_end(const struct mapping *m)
{
	return (m->flags & MAPPING_F_RENEW) != 0 ? m->grant_end : m->expiry;
}

/* b, restored up to a second later on the monotonic clock (NOW_MS + 7,
   rounded up to whole seconds), has a's lease */
static void
assert_lease_equal(const struct mapping *a, const struct mapping *b)
{
	if (a->lease_end == TABLE_LEASE_NONE ||
	    a->lease_end == TABLE_LEASE_FOREVER) {
		assert_int_equal(b->lease_end, a->lease_end);
		return;
	}
	assert_true(b->lease_end >= a->lease_end &&
	    b->lease_end <= a->lease_end + 1);
}

static void
assert_mapping_equal(const struct mapping *a, const struct mapping *b)
{
	const char *da = a->description != NULL ? a->description : "";
	const char *db = b->description != NULL ? b->description : "";

	assert_memory_equal(&a->internal_addr, &b->internal_addr, 16);
	assert_memory_equal(&a->requester, &b->requester, 16);
	assert_memory_equal(&a->outer_addr, &b->outer_addr, 16);
	assert_memory_equal(a->nonce, b->nonce, MAP_NONCE_SIZE);
	assert_int_equal(a->internal_port, b->internal_port);
	assert_int_equal(a->ext_port, b->ext_port);
	assert_int_equal(a->outer_port, b->outer_port);
	assert_int_equal(a->requester_port, b->requester_port);
	assert_int_equal(a->protocol, b->protocol);
	assert_int_equal(a->origin, b->origin);
	/* MAPPING_F_RENEW is the table's own: never saved, never restored */
	assert_int_equal(a->flags & ~MAPPING_F_RENEW, b->flags);
	assert_int_equal(a->upstream, b->upstream);
	assert_int_equal(a->lifetime, b->lifetime);
	assert_int_equal(a->requested_lifetime, b->requested_lifetime);
	assert_int_equal(b->state, MAP_STATE_GRANTED);
	assert_string_equal(da, db);
	if (mapping_end(a) == TABLE_EXPIRY_NEVER)
		assert_true(b->expiry == TABLE_EXPIRY_NEVER);
	else	/* whole seconds, rounded up when saved */
		assert_true(b->expiry >= mapping_end(a) &&
		    b->expiry < mapping_end(a) + 1000);
	assert_lease_equal(a, b);
	assert_int_equal(mapping_peer(a) != NULL, mapping_peer(b) != NULL);
	if (mapping_peer(a) != NULL) {
		assert_memory_equal(&mapping_peer(a)->addr,
		    &mapping_peer(b)->addr, 16);
		assert_int_equal(mapping_peer(a)->port, mapping_peer(b)->port);
	}
}

static const struct mapping *
find_same(const struct table *t, const struct mapping *m)
{
	const struct mapping_peer *p = mapping_peer(m);

	if (p != NULL)
		return table_find_peer(t, m->protocol, &m->internal_addr,
		    m->internal_port, &p->addr, p->port);
	return table_find_internal(t, m->protocol, &m->internal_addr,
	    m->internal_port);
}

static void
assert_header_equal(const struct state_header *a, const struct state_header *b)
{
	size_t i;

	assert_int_equal(a->epoch, b->epoch);
	assert_int_equal(a->written, b->written);
	assert_int_equal(a->has_natpmp_key, b->has_natpmp_key);
	assert_memory_equal(a->natpmp_key, b->natpmp_key, IWF_NONCE_KEY_SIZE);
	assert_int_equal(a->n_upstream, b->n_upstream);
	for (i = 0; i < a->n_upstream; i++) {
		assert_memory_equal(&a->upstream[i].addr, &b->upstream[i].addr,
		    16);
		assert_int_equal(a->upstream[i].port, b->upstream[i].port);
		assert_int_equal(a->upstream[i].epoch_known,
		    b->upstream[i].epoch_known);
		assert_int_equal(a->upstream[i].epoch, b->upstream[i].epoch);
		assert_int_equal(a->upstream[i].epoch_age,
		    b->upstream[i].epoch_age);
	}
}

/* table -> image -> text -> image -> table: every field survives. */
static void
test_round_trip(void **state)
{
	struct table *t = table_fixture(), *t2;
	struct state_image img, back;
	struct state_errors errs;
	struct state_restore_stats st;
	char *text, *again;
	size_t len, len2, i;
	struct mapping *m;

	(void)state;
	state_image_init(&img);
	header_fixture(&img.hdr);
	assert_int_equal(state_image_from_table(t, NOW_MS, NOW_WALL, &img), 0);
	assert_int_equal(img.count, table_count(t) - 1);	/* not pending */
	text = format_text(&img, &len);
	assert_int_equal(state_parse(NAME, text, len, &back, &errs), 0);
	assert_int_equal(errs.count, 0);
	assert_int_equal(back.count, img.count);
	assert_header_equal(&back.hdr, &img.hdr);
	again = format_text(&back, &len2);
	assert_int_equal(len, len2);
	assert_memory_equal(text, again, len);

	assert_non_null(t2 = table_new());
	assert_int_equal(state_restore_table(&back, t2, NULL, NOW_MS + 7,
	    NOW_WALL, NAME, &st, &errs), 0);
	assert_int_equal(st.restored, img.count);
	assert_int_equal(st.expired + st.failed, 0);
	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if (m->state != MAP_STATE_GRANTED)
			continue;
		assert_non_null(find_same(t2, m));
		assert_mapping_equal(m, find_same(t2, m));
	}
	/* the restored PEER mappings share their endpoint's gateway port */
	assert_int_equal(table_count_state(t2, MAP_STATE_GRANTED), img.count);
	free(text);
	free(again);
	state_image_free(&img);
	state_image_free(&back);
	table_free(t);
	table_free(t2);
}

/* Records equal in every field but where they were read. */
static void
assert_record_equal(const struct state_record *a, const struct state_record *b)
{
	assert_memory_equal(&a->internal_addr, &b->internal_addr, 16);
	assert_memory_equal(&a->requester, &b->requester, 16);
	assert_memory_equal(&a->outer_addr, &b->outer_addr, 16);
	assert_memory_equal(&a->peer_addr, &b->peer_addr, 16);
	assert_true(a->expiry == b->expiry);
	assert_true(a->lease == b->lease);
	assert_int_equal(a->lifetime, b->lifetime);
	assert_int_equal(a->requested_lifetime, b->requested_lifetime);
	assert_memory_equal(a->nonce, b->nonce, MAP_NONCE_SIZE);
	assert_int_equal(a->internal_port, b->internal_port);
	assert_int_equal(a->ext_port, b->ext_port);
	assert_int_equal(a->outer_port, b->outer_port);
	assert_int_equal(a->requester_port, b->requester_port);
	assert_int_equal(a->peer_port, b->peer_port);
	assert_int_equal(a->protocol, b->protocol);
	assert_int_equal(a->origin, b->origin);
	assert_int_equal(a->flags, b->flags);
	assert_int_equal(a->upstream, b->upstream);
	assert_string_equal(a->description, b->description);
}

#define GOLDEN_V1	IWFD_TEST_DATA_DIR "/golden/state/v1.state"
#define GOLDEN_V2	IWFD_TEST_DATA_DIR "/golden/state/v2.state"

/* The golden file: the documented format, byte for byte. */
static void
test_golden_v2(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char moved[256], *text, *want;
	size_t len, wlen;

	(void)state;
	assert_int_equal(state_load(GOLDEN_V2, NOW_WALL, &img, &errs, moved,
	    sizeof(moved)), STATE_LOAD_OK);
	assert_int_equal(img.count, 6);
	assert_int_equal(img.hdr.epoch, 86400);
	assert_int_equal(img.hdr.n_upstream, 1);
	assert_true(img.hdr.upstream[0].epoch_known);
	assert_int_equal(img.hdr.upstream[0].epoch, 5000);
	assert_int_equal(img.rec[0].protocol, MAP_PROTO_TCP);
	assert_int_equal(img.rec[0].internal_port, 8080);
	assert_string_equal(img.rec[0].description, "Web server \"main\"");
	assert_true((img.rec[3].flags & MAPPING_F_PEER) != 0);
	assert_int_equal(img.rec[3].peer_port, 443);
	assert_true(img.rec[2].expiry == STATE_EXPIRY_NEVER);
	/* leases: none on the first four, then "inf" and a wall time */
	assert_true(img.rec[0].lease == STATE_LEASE_NONE);
	assert_true(img.rec[3].lease == STATE_LEASE_NONE);
	assert_true(img.rec[4].lease == STATE_LEASE_FOREVER);
	assert_int_equal(img.rec[4].requested_lifetime, UINT32_MAX);
	assert_true(img.rec[5].lease == 1700086000);
	assert_int_equal(img.rec[5].flags, MAPPING_F_ANY_PORT |
	    MAPPING_F_WAS_GRANTED);
	text = format_text(&img, &len);
	assert_non_null(want = test_slurp(GOLDEN_V2, &wlen));
	assert_int_equal(wlen, len);
	assert_memory_equal(want, text, len);
	free(want);
	free(text);
	state_image_free(&img);
}

/*
 * A version-1 file (before the lease) still loads, every mapping without
 * a lease, and is written back as version 2: v2.state begins with the
 * same four mappings.
 */
static void
test_golden_v1(void **state)
{
	struct state_image img, v2;
	struct state_errors errs;
	char *text;
	size_t len, i;

	(void)state;
	assert_int_equal(state_load(GOLDEN_V1, NOW_WALL, &img, &errs, NULL,
	    0), STATE_LOAD_OK);
	assert_int_equal(state_load(GOLDEN_V2, NOW_WALL, &v2, &errs, NULL,
	    0), STATE_LOAD_OK);
	assert_int_equal(img.count, 4);
	assert_header_equal(&img.hdr, &v2.hdr);
	for (i = 0; i < img.count; i++) {
		assert_true(img.rec[i].lease == STATE_LEASE_NONE);
		assert_record_equal(&img.rec[i], &v2.rec[i]);
	}
	text = format_text(&img, &len);
	assert_true(strncmp(text, "pcp-iwfd-state 2\n", 17) == 0);
	free(text);
	state_image_free(&img);
	state_image_free(&v2);
}

/* text + the end line with the right count and checksum */
static char *
finish(const char *body, size_t count)
{
	uint64_t h = FNV_OFFSET;
	size_t i, n = strlen(body);
	char *out;

	for (i = 0; i < n; i++) {
		h ^= (uint8_t)body[i];
		h *= FNV_PRIME;
	}
	assert_non_null(out = malloc(n + 64));
	snprintf(out, n + 64, "%send %zu %016llx\n", body, count,
	    (unsigned long long)h);
	return out;
}

#define HDR "pcp-iwfd-state 1\nepoch 10\nwritten 1700000000\n" \
	"natpmp-key 000102030405060708090a0b0c0d0e0f\n" \
	"upstream 0 192.0.2.1 5351 77 3\n"
#define MAP_OK_LINE "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 " \
	"0102030405060708090a0b0c pcp 192.168.1.10 5350 was-granted 0 " \
	"3600 3600 1700003600 web\n"

/* Parse body + a correct end line; expect failure with the first
   message "t.state:line: <contains want>". */
static void
expect_error(const char *body, size_t count, unsigned line, const char *want)
{
	struct state_image img;
	struct state_errors errs;
	char *text = finish(body, count), prefix[64];

	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    -1);
	assert_int_equal(img.count, 0);
	assert_true(errs.count >= 1);
	snprintf(prefix, sizeof(prefix), NAME ":%u: ", line);
	if (strncmp(errs.msg[0], prefix, strlen(prefix)) != 0 ||
	    strstr(errs.msg[0], want) == NULL)
		fail_msg("want \"%s...%s\", got \"%s\"", prefix, want,
		    errs.msg[0]);
	free(text);
	state_image_free(&img);
}

static void
test_valid_minimal(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char *text = finish(HDR MAP_OK_LINE, 1);

	(void)state;
	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    0);
	assert_int_equal(img.count, 1);
	assert_int_equal(img.rec[0].line, 6);
	assert_int_equal(img.rec[0].outer_port, 18080);
	assert_int_equal(img.rec[0].requester_port, 5350);
	assert_int_equal(img.rec[0].flags, MAPPING_F_WAS_GRANTED);
	assert_int_equal(img.rec[0].expiry, 1700003600);
	assert_int_equal(img.hdr.upstream[0].epoch_age, 3);
	free(text);
	state_image_free(&img);
}

static const struct {
	const char	*line;		/* replaces the map line (line 6) */
	const char	*want;
} bad_map_lines[] = {
	{ "map tcp 192.168.1.10 8080 8080\n", "map needs 16 fields" },
	{ "map  tcp\n", "stray space" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web \n", "stray space" },
	{ "mop tcp\n", "unknown line type \"mop\"" },
	{ "map sctpx 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad protocol" },
	{ "map tcp 192.168.1.300 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad internal address" },
	{ "map tcp 192.168.1.10 65536 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad internal port" },
	{ "map tcp 192.168.1.10 8080 +80 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad external port" },
	{ "map tcp 192.168.1.10 8080 8080 nowhere 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad outer address" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 0x10 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad outer port" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0g pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "nonce is not 24 hex digits" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "nonce is not 24 hex digits" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c igd 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "unknown origin \"igd\"" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp ::g 5350 - 0 3600 3600 "
	  "1700003600 web\n", "bad requester address" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 -1 - 0 3600 3600 "
	  "1700003600 web\n", "bad requester port" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 sticky 0 3600 3600 "
	  "1700003600 web\n", "unknown flag \"sticky\"" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 "
	  "was-granted,was-granted 0 3600 3600 1700003600 web\n",
	  "flag \"was-granted\" twice" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 8 3600 3600 "
	  "1700003600 web\n", "bad upstream index" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 1 3600 3600 "
	  "1700003600 web\n", "upstream index without an upstream line" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 4294967296 "
	  "3600 1700003600 web\n", "bad lifetime" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 - "
	  "1700003600 web\n", "bad requested lifetime" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "99999999999999 web\n", "bad expiry" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 a%2\n", "bad %XX escape" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 a%00b\n", "NUL byte" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 "
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx"
	  "x\n", "longer than 128" },
	/* invalid combinations */
	{ "map 0 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "protocol 0 needs internal port 0" },
	{ "map udp 192.168.1.10 8080 5351 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "reserved external port" },
	{ "map tcp 192.168.1.10 8080 0 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "external port 0" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c upnp 192.168.1.10 5350 static 0 3600 "
	  "3600 1700003600 web\n", "static mapping is made by the control" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 any-port 0 3600 "
	  "3600 1700003600 web\n", "any-port is a UPnP flag" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 0 "
	  "3600 1700003600 web\n", "granted lifetime 0" },
	{ "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "peer needs 18 fields" },
	{ "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 prefer-failure 0 "
	  "3600 3600 1700003600 203.0.113.1 80 web\n",
	  "flag not allowed on a peer" },
	{ "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 "
	  "3600 3600 1700003600 203.0.113.1.1 80 web\n", "bad peer address" },
	{ "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 "
	  "3600 3600 1700003600 203.0.113.1 80000 web\n", "bad peer port" },
	{ "upstream 1 192.0.2.2 5351 - -\n", "upstream line after a mapping" },
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\r\n", "carriage return" },
};

/* Each bad map line is reported at its own line (7: after a good one). */
static void
test_bad_map_lines(void **state)
{
	char body[2048];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_map_lines) / sizeof(bad_map_lines[0]);
	    i++) {
		snprintf(body, sizeof(body), "%s%s%s", HDR,
		    "map udp 192.168.1.9 53 5353 198.51.100.7 5353 "
		    "000000000000000000000000 natpmp 192.168.1.9 5350 - - "
		    "60 60 1700000060 -\n", bad_map_lines[i].line);
		expect_error(body, 2, 7, bad_map_lines[i].want);
	}
}

static void
test_bad_header_lines(void **state)
{
	(void)state;
	expect_error("", 0, 1, "not a pcp-iwfd state file");
	expect_error("PCP-IWFD-STATE 1\n", 0, 1, "not a pcp-iwfd state");
	expect_error("pcp-iwfd-state 3\nepoch 1\n", 0, 1,
	    "version \"3\" is not 1 to 2");
	expect_error("pcp-iwfd-state 0\nepoch 1\n", 0, 1,
	    "version \"0\" is not 1 to 2");
	expect_error("pcp-iwfd-state 01x\n", 0, 1, "version");
	expect_error("pcp-iwfd-state 1\nepoch -1\n", 0, 2, "bad epoch");
	expect_error("pcp-iwfd-state 1\nepoch 4294967296\n", 0, 2,
	    "bad epoch");
	expect_error("pcp-iwfd-state 1\nwritten 1\n", 0, 2,
	    "expected \"epoch <number>\"");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten x\n", 0, 3,
	    "bad written");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key 00\n",
	    0, 4, "natpmp-key is not 32 hex digits");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nkey -\n", 0, 4,
	    "expected \"natpmp-key");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 1 192.0.2.1 5351 - -\n", 0, 5,
	    "upstream index \"1\": expected 0");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 0 192.0.2.1 0 - -\n", 0, 5, "bad upstream port");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 0 192.0.2.1 5351 5 -\n", 0, 5, "both known");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 0 host 5351 - -\n", 0, 5, "bad upstream address");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 0 192.0.2.1 5351\n", 0, 5, "upstream needs 5 fields");
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "\n", 0, 5, "stray space");
}

/* The end line: count, checksum, and nothing after it. */
static void
test_end_line(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char *text = finish(HDR MAP_OK_LINE, 1), *bad;
	size_t len = strlen(text);

	(void)state;
	/* count 2 of 1: reported */
	expect_error(HDR MAP_OK_LINE, 2, 7, "1 mappings were read");
	/* a changed byte: the checksum */
	assert_non_null(bad = strdup(text));
	/* "web" -> "wxb": a valid line, but not what was summed */
	bad[strlen(HDR) + strlen(MAP_OK_LINE) - 3] = 'x';
	assert_int_equal(state_parse(NAME, bad, len, &img, &errs), -1);
	assert_non_null(strstr(errs.msg[0], NAME ":7: checksum mismatch"));
	free(bad);
	/* data after the end line */
	assert_non_null(bad = malloc(len + 32));
	snprintf(bad, len + 32, "%sepoch 5\n", text);
	assert_int_equal(state_parse(NAME, bad, strlen(bad), &img, &errs),
	    -1);
	assert_string_equal(errs.msg[0], NAME ":8: data after the end line");
	/* a NUL byte inside a line (len counts it) */
	memcpy(bad, text, len + 1);
	bad[strlen(HDR) + 3] = '\0';
	assert_int_equal(state_parse(NAME, bad, len, &img, &errs), -1);
	assert_string_equal(errs.msg[0], NAME ":6: NUL byte in line");
	free(bad);
	free(text);
}

/* Cut anywhere, a file never parses: the end line is the proof of
   completeness. */
static void
test_truncation(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char *text = finish(HDR MAP_OK_LINE MAP_OK_LINE, 2);
	size_t len = strlen(text), cut;

	(void)state;
	for (cut = 0; cut < len; cut++) {
		assert_int_equal(state_parse(NAME, text, cut, &img, &errs),
		    -1);
		assert_int_equal(img.count, 0);
		assert_true(errs.count >= 1);
	}
	/* at a line boundary: "no end line" after the last whole line */
	assert_int_equal(state_parse(NAME, text, strlen(HDR) +
	    strlen(MAP_OK_LINE), &img, &errs), -1);
	assert_string_equal(errs.msg[0],
	    NAME ":7: no end line (truncated file)");
	/* mid-line */
	assert_int_equal(state_parse(NAME, text, strlen(HDR) + 10, &img,
	    &errs), -1);
	assert_string_equal(errs.msg[0],
	    NAME ":6: last line has no newline (truncated file)");
	assert_int_equal(state_parse(NAME, text, 0, &img, &errs), -1);
	assert_string_equal(errs.msg[0], NAME ":1: empty file");
	free(text);
}

static void
test_duplicates(void **state)
{
	(void)state;
	/* same internal endpoint, another external port */
	expect_error(HDR MAP_OK_LINE
	    "map tcp 192.168.1.10 8080 8081 198.51.100.7 18081 "
	    "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	    "1700003600 web\n", 2, 7,
	    "duplicate internal endpoint (first at line 6)");
	/* same external port, another host */
	expect_error(HDR MAP_OK_LINE
	    "map tcp 192.168.1.11 8080 8080 198.51.100.7 18081 "
	    "0102030405060708090a0b0c pcp 192.168.1.11 5350 - 0 3600 3600 "
	    "1700003600 web\n", 2, 7,
	    "duplicate external port (first at line 6)");
	/* the same PEER 5-tuple twice */
	expect_error(HDR
	    "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	    "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	    "1700003600 203.0.113.1 80 -\n"
	    "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	    "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	    "1700003600 203.0.113.1 80 -\n", 2, 7,
	    "duplicate peer 5-tuple (first at line 6)");
	/* a second upstream 0 */
	expect_error("pcp-iwfd-state 1\nepoch 1\nwritten 1\nnatpmp-key -\n"
	    "upstream 0 192.0.2.1 5351 - -\nupstream 0 192.0.2.2 5351 - -\n",
	    0, 6, "upstream index \"0\": expected 1");
}

/* Restore drops what expired while the daemon was down and measures the
   rest from now; a clock behind `written` does not lengthen a mapping. */
static void
test_restore_expiry(void **state)
{
	struct state_image img;
	struct state_errors errs;
	struct state_restore_stats st;
	struct table *t;
	struct mapping *m;
	char *text = finish(HDR MAP_OK_LINE
	    "map udp 192.168.1.9 53 5353 198.51.100.7 5353 "
	    "000000000000000000000000 natpmp 192.168.1.9 5350 - - "
	    "60 60 1700000060 -\n", 2);

	(void)state;
	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    0);
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, NOW_MS,
	    NOW_WALL + 60, NAME, &st, &errs), 0);
	assert_int_equal(st.restored, 1);
	assert_int_equal(st.expired, 1);
	m = table_at(t, 0);
	assert_int_equal(m->internal_port, 8080);
	assert_true(m->expiry == NOW_MS + 3540 * 1000ULL);
	assert_int_equal(m->state, MAP_STATE_GRANTED);
	table_free(t);
	/* clock stepped back 1000 s: remaining from `written` */
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, NOW_MS,
	    NOW_WALL - 1000, NAME, &st, &errs), 0);
	assert_int_equal(st.restored, 2);
	m = table_find_internal(t, MAP_PROTO_TCP, &img.rec[0].internal_addr,
	    8080);
	assert_true(m->expiry == NOW_MS + 3600 * 1000ULL);
	table_free(t);
	free(text);
	state_image_free(&img);
}

/* A NAT-PMP mapping listed before another host's UPnP mapping of the
   twin port, and a conflict reported with its line. */
static void
test_restore_order_and_conflict(void **state)
{
	struct state_image img;
	struct state_errors errs;
	struct state_restore_stats st;
	struct table *t;
	char *text = finish(HDR
	    "map tcp 192.168.1.20 5000 5000 198.51.100.7 5000 "
	    "000000000000000000000001 natpmp 192.168.1.20 5350 - - "
	    "3600 3600 1700003600 -\n"
	    "map udp 192.168.1.21 5000 5000 198.51.100.7 5000 "
	    "000000000000000000000002 upnp 192.168.1.21 0 - - "
	    "3600 3600 1700003600 -\n"
	    /* a MAP on the gateway port another endpoint's PEER uses */
	    "peer tcp 192.168.1.22 6000 6000 198.51.100.7 6000 "
	    "000000000000000000000003 pcp 192.168.1.22 5350 - - "
	    "3600 3600 1700003600 203.0.113.5 443 -\n"
	    "map tcp 192.168.1.23 6001 6000 198.51.100.7 6000 "
	    "000000000000000000000004 pcp 192.168.1.23 5350 - - "
	    "3600 3600 1700003600 -\n", 4);

	(void)state;
	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    0);
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, NOW_MS, NOW_WALL,
	    NAME, &st, &errs), -1);
	assert_int_equal(st.restored, 3);
	assert_int_equal(st.failed, 1);
	assert_string_equal(errs.msg[0],
	    NAME ":9: mapping not restored: CONFLICT");
	table_free(t);
	free(text);
	state_image_free(&img);
}

/* ---- the client lease (version 2) -------------------------------------- */

#define HDR2 "pcp-iwfd-state 2\nepoch 10\nwritten 1700000000\n" \
	"natpmp-key 000102030405060708090a0b0c0d0e0f\n" \
	"upstream 0 192.0.2.1 5351 77 3\n"
/* "map ... <expiry> " and the description follow a lease */
#define MAP2_HEAD "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 " \
	"0102030405060708090a0b0c upnp 192.168.1.10 0 was-granted 0 " \
	"3600 4294967295 1700003600 "
#define PEER2_HEAD "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 " \
	"0102030405060708090a0b0c pcp 192.168.1.10 5350 was-granted 0 " \
	"3600 3600 1700003600 "

static const struct {
	const char	*line;		/* line 6 of a version-2 file */
	const char	*want;
} bad_lease_lines[] = {
	/* a version-1 line in a version-2 file */
	{ "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 web\n", "map needs 17 fields, not 16" },
	{ "peer tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
	  "0102030405060708090a0b0c pcp 192.168.1.10 5350 - 0 3600 3600 "
	  "1700003600 203.0.113.1 80 -\n", "peer needs 19 fields, not 18" },
	{ MAP2_HEAD "0 web\n", "bad lease \"0\" (no lease is \"-\")" },
	{ MAP2_HEAD "INF web\n", "bad lease \"INF\"" },
	{ MAP2_HEAD "infinite web\n", "bad lease \"infinite\"" },
	{ MAP2_HEAD "-1 web\n", "bad lease \"-1\"" },
	{ MAP2_HEAD "1099511627777 web\n", "bad lease \"1099511627777\"" },
	/* RFC 6887 §12.3: a PEER client renews itself; no front-end gives
	   a PEER mapping a lease */
	{ PEER2_HEAD "inf 203.0.113.1 80 -\n", "a peer mapping has no lease" },
	{ PEER2_HEAD "1700009999 203.0.113.1 80 -\n",
	  "a peer mapping has no lease" },
};

static void
test_lease_field(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char body[2048], *text;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad_lease_lines) / sizeof(bad_lease_lines[0]);
	    i++) {
		snprintf(body, sizeof(body), "%s%s", HDR2,
		    bad_lease_lines[i].line);
		expect_error(body, 1, 6, bad_lease_lines[i].want);
	}
	/* the three kinds, and a peer line without one */
	text = finish(HDR2 MAP2_HEAD "- none\n"
	    "map udp 192.168.1.11 3074 3074 198.51.100.7 3074 "
	    "0102030405060708090a0b0d upnp 192.168.1.11 0 was-granted 0 "
	    "3600 4294967295 1700003600 inf forever\n"
	    "map tcp 192.168.1.12 80 80 198.51.100.7 80 "
	    "0102030405060708090a0b0e upnp 192.168.1.12 0 was-granted 0 "
	    "3600 86400 1700003600 1700086400 day\n"
	    PEER2_HEAD "- 203.0.113.1 80 -\n", 4);
	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    0);
	assert_int_equal(img.count, 4);
	assert_true(img.rec[0].lease == STATE_LEASE_NONE);
	assert_true(img.rec[1].lease == STATE_LEASE_FOREVER);
	assert_true(img.rec[2].lease == 1700086400);
	assert_true(img.rec[3].lease == STATE_LEASE_NONE);
	assert_string_equal(img.rec[2].description, "day");
	assert_int_equal(img.rec[3].peer_port, 80);
	free(text);
	state_image_free(&img);
}

/*
 * Restore gives each mapping its lease back on the monotonic clock of the
 * loader (seconds left from max(now, written)); a lease that ended while
 * the daemon was down drops its mapping like an expiry, even with grant
 * time left; a running lease keeps a mapping whose grant runs on.
 */
static void
test_restore_lease(void **state)
{
	struct state_image img;
	struct state_errors errs;
	struct state_restore_stats st;
	struct table *t;
	struct mapping *m;
	struct in6_addr a;
	/* restored at NOW_MS + 500: a lease end is in whole seconds of the
	   monotonic clock, the seconds left counted from now rounded up
	   (as the table does for a fresh lease) */
	const uint64_t now_ms = NOW_MS + 500, now_s = NOW_MS / 1000 + 1;
	char *text = finish(HDR2
	    "map tcp 192.168.1.10 1 1 198.51.100.7 1 "
	    "000000000000000000000001 pcp 192.168.1.10 5350 - 0 "
	    "3600 3600 1700003600 - none\n"
	    "map tcp 192.168.1.10 2 2 198.51.100.7 2 "
	    "000000000000000000000002 upnp 192.168.1.10 0 - 0 "
	    "7200 4294967295 1700007200 inf forever\n"
	    "map tcp 192.168.1.10 3 3 198.51.100.7 3 "
	    "000000000000000000000003 upnp 192.168.1.10 0 - 0 "
	    "7200 86400 1700007200 1700000100 running\n"
	    /* ended at written + 30; its grant would run an hour more */
	    "map tcp 192.168.1.10 4 4 198.51.100.7 4 "
	    "000000000000000000000004 upnp 192.168.1.10 0 - 0 "
	    "3600 3600 1700003600 1700000030 ended\n"
	    /* a running lease, but the grant ran out: kept a short while
	       for the proxy to re-create it upstream */
	    "map tcp 192.168.1.10 5 5 198.51.100.7 5 "
	    "000000000000000000000005 upnp 192.168.1.10 0 - 0 "
	    "7200 4294967295 1700000050 inf grant-over\n"
	    /* a lease far beyond the monotonic seconds a uint32 holds:
	       still finite */
	    "map tcp 192.168.1.10 6 6 198.51.100.7 6 "
	    "000000000000000000000006 upnp 192.168.1.10 0 - 0 "
	    "7200 86400 1700007200 1000000000000 far\n", 6);

	(void)state;
	a = addr("192.168.1.10");
	assert_int_equal(state_parse(NAME, text, strlen(text), &img, &errs),
	    0);
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, now_ms,
	    NOW_WALL + 60, NAME, &st, &errs), 0);
	assert_int_equal(st.restored, 5);
	assert_int_equal(st.expired, 1);
	assert_int_equal(st.failed, 0);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 1);
	assert_int_equal(m->lease_end, TABLE_LEASE_NONE);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 2);
	assert_int_equal(m->lease_end, TABLE_LEASE_FOREVER);
	assert_int_equal(mapping_lease_remaining(m, now_ms),
	    TABLE_LIFETIME_INFINITE);
	assert_true(m->expiry == now_ms + 7140 * 1000ULL);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 3);
	assert_int_equal(m->lease_end, now_s + 40);	/* 100 - 60 left */
	assert_true(mapping_lease_end_ms(m) == (now_s + 40) * 1000);
	assert_int_equal(mapping_lease_remaining(m, now_s * 1000), 40);
	assert_null(table_find_internal(t, MAP_PROTO_TCP, &a, 4));
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 5);
	assert_non_null(m);
	assert_int_equal(m->lease_end, TABLE_LEASE_FOREVER);
	assert_true(m->expiry == now_ms + STATE_LAPSED_GRACE_S * 1000ULL);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 6);
	assert_true(m->lease_end != TABLE_LEASE_FOREVER &&
	    m->lease_end > now_s + 4000000000U);
	table_free(t);

	/* at the lease's last second it still runs; at its end it is over */
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, now_ms,
	    NOW_WALL + 99, NAME, &st, &errs), 0);
	assert_int_equal(table_find_internal(t, MAP_PROTO_TCP, &a,
	    3)->lease_end, now_s + 1);
	table_free(t);
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, now_ms,
	    NOW_WALL + 100, NAME, &st, &errs), 0);
	assert_null(table_find_internal(t, MAP_PROTO_TCP, &a, 3));
	assert_int_equal(st.expired, 2);
	table_free(t);

	/* clock stepped back 1000 s: the lease is measured from `written`
	   (never lengthened), and "ended" has 30 s left by that measure */
	assert_non_null(t = table_new());
	assert_int_equal(state_restore_table(&img, t, NULL, now_ms,
	    NOW_WALL - 1000, NAME, &st, &errs), 0);
	assert_int_equal(st.restored, 6);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 3);
	assert_int_equal(m->lease_end, now_s + 100);
	m = table_find_internal(t, MAP_PROTO_TCP, &a, 4);
	assert_int_equal(m->lease_end, now_s + 30);
	table_free(t);
	free(text);
	state_image_free(&img);
}

static void
test_epoch_resume(void **state)
{
	struct state_header h;
	uint32_t e = 0;

	(void)state;
	memset(&h, 0, sizeof(h));
	h.epoch = 1000;
	h.written = NOW_WALL;
	assert_true(state_epoch_resume(&h, NOW_WALL + 30, &e));
	assert_int_equal(e, 1030);
	assert_true(state_epoch_resume(&h, NOW_WALL, &e));
	assert_int_equal(e, 1000);
	assert_false(state_epoch_resume(&h, NOW_WALL - 1, &e));
	h.epoch = UINT32_MAX - 5;
	assert_false(state_epoch_resume(&h, NOW_WALL + 6, &e));
}

static void
test_upstream_remap(void **state)
{
	struct state_header h;
	struct config_upstream conf[2];
	uint8_t map[STATE_MAX_UPSTREAM];

	(void)state;
	header_fixture(&h);
	conf[0].addr = addr("2001:db8::5351");
	conf[0].port = 15351;
	conf[1].addr = addr("192.0.2.1");
	conf[1].port = 5352;		/* another port: another server */
	assert_int_equal(state_upstream_remap(&h, conf, 2, map), 1);
	assert_int_equal(map[0], STATE_UPSTREAM_NONE);
	assert_int_equal(map[1], 0);
	conf[1].port = 5351;
	assert_int_equal(state_upstream_remap(&h, conf, 2, map), 0);
	assert_int_equal(map[0], 1);
}

/* ---- files ----------------------------------------------------------- */

static char tmpdir[64];

static void
path_in(char *out, size_t size, const char *name)
{
	snprintf(out, size, "%s/%s", tmpdir, name);
}

static int
setup_dir(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_state.XXXXXX");
	return mkdtemp(tmpdir) == NULL ? -1 : 0;
}

static int
teardown_dir(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

/* The record of the one mapping in t saved at (now_ms, now_wall), via
   state_image_from_table and, as text, via state_write_table. */
static size_t
save_records(struct table *t, uint64_t now_ms, uint64_t now_wall,
    struct state_image *img, char **text)
{
	struct state_header h;
	char path[128];
	size_t len;

	memset(&h, 0, sizeof(h));
	h.n_upstream = 1;
	h.upstream[0].addr = addr("192.0.2.1");
	h.upstream[0].port = 5351;
	state_image_init(img);
	img->hdr = h;
	assert_int_equal(state_image_from_table(t, now_ms, now_wall, img), 0);
	snprintf(path, sizeof(path), "%s/renew.state", tmpdir);
	assert_int_equal(state_write_table(path, &h, t, now_ms, now_wall), 0);
	assert_non_null(*text = test_slurp(path, &len));
	return len;
}

/*
 * MAPPING_F_RENEW (the proxy renews by itself; expiry is the next
 * renewal point, grant_end the real end) is never written: the saved
 * expiry is the grant's end and the flag is masked out, in both writers.
 * A mapping whose lease has ended is not saved; nor is a PEER mapping
 * with a lease (a bug: the parser would refuse it).
 */
static void
test_renew_never_written(void **state)
{
	struct state_image img, back;
	struct state_errors errs;
	struct table *t;
	struct mapping *m, *p;
	struct map_req r;
	char *text, *line;
	size_t len;

	(void)state;
	assert_non_null(t = table_new());
	r = req_make(MAP_ORIGIN_UPNP, "192.168.1.30", MAP_PROTO_TCP, 7000,
	    0x30, "renewed");
	r.lifetime = TABLE_LIFETIME_INFINITE;
	r.lease = 86400;
	m = add_granted(t, &r, 7000, 3600);
	/* due for renewal in 100 s, the grant ends in 3600 s */
	table_set_renewal(t, m, NOW_MS + 100 * 1000ULL,
	    NOW_MS + 3600 * 1000ULL);
	assert_true((m->flags & MAPPING_F_RENEW) != 0);
	len = save_records(t, NOW_MS, NOW_WALL, &img, &text);
	assert_int_equal(img.count, 1);
	assert_int_equal(img.rec[0].flags & MAPPING_F_RENEW, 0);
	assert_int_equal(img.rec[0].flags, MAPPING_F_WAS_GRANTED);
	assert_true(img.rec[0].expiry == NOW_WALL + 3600);
	assert_true(img.rec[0].lease == NOW_WALL + 86400);
	/* the streamed writer says the same */
	assert_int_equal(state_parse(NAME, text, len, &back, &errs), 0);
	assert_int_equal(back.count, 1);
	assert_record_equal(&back.rec[0], &img.rec[0]);
	assert_non_null(line = strstr(text, "\nmap "));
	assert_non_null(strstr(line, " was-granted 0 3600 4294967295 "
	    "1700003600 1700086400 renewed\n"));
	free(text);
	state_image_free(&img);
	state_image_free(&back);

	/* half an hour on, the renewal point passed unrenewed: still the
	   grant's end */
	len = save_records(t, NOW_MS + 1800 * 1000ULL, NOW_WALL + 1800, &img,
	    &text);
	assert_true(img.rec[0].expiry == NOW_WALL + 3600);
	assert_true(img.rec[0].lease == NOW_WALL + 86400);
	free(text);
	state_image_free(&img);

	/* the lease ends before the grant: saved until it ends, not after */
	table_set_lease(t, m, 600, NOW_MS);
	len = save_records(t, NOW_MS + 599 * 1000ULL, NOW_WALL + 599, &img,
	    &text);
	assert_int_equal(img.count, 1);
	assert_true(img.rec[0].lease == NOW_WALL + 600);
	free(text);
	state_image_free(&img);
	len = save_records(t, NOW_MS + 600 * 1000ULL, NOW_WALL + 600, &img,
	    &text);
	assert_int_equal(img.count, 0);
	assert_null(strstr(text, "\nmap "));
	free(text);
	state_image_free(&img);

	/* a PEER mapping with a lease is not written */
	table_set_lease(t, m, MAP_LEASE_INFINITE, NOW_MS);
	r = req_make(MAP_ORIGIN_PCP, "192.168.1.31", MAP_PROTO_TCP, 7001,
	    0x31, NULL);
	r.flags |= MAP_F_PEER;
	r.peer_addr = addr("203.0.113.9");
	r.peer_port = 443;
	r.lease = 3600;
	p = add_granted(t, &r, 7001, 300);
	assert_int_not_equal(p->lease_end, TABLE_LEASE_NONE);
	len = save_records(t, NOW_MS, NOW_WALL, &img, &text);
	assert_int_equal(img.count, 1);
	assert_true(img.rec[0].lease == STATE_LEASE_FOREVER);
	assert_null(strstr(text, "\npeer "));
	(void)len;
	free(text);
	state_image_free(&img);
	table_free(t);
}

static void
image_fixture(struct state_image *img)
{
	struct table *t = table_fixture();

	state_image_init(img);
	header_fixture(&img->hdr);
	assert_int_equal(state_image_from_table(t, NOW_MS, NOW_WALL, img), 0);
	table_free(t);
}

/* Write, then fail two ways: the old file stays whole, no temp is left. */
static void
test_write_failure_keeps_old(void **state)
{
	struct state_image img, small, back;
	struct state_errors errs;
	struct rlimit old, lim;
	char path[128], tmp[160], *before, *after;
	size_t blen, alen;
	struct stat sb;

	(void)state;
	path_in(path, sizeof(path), "w.state");
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	image_fixture(&img);
	state_image_init(&small);
	small.hdr = img.hdr;
	assert_int_equal(state_write(path, &small), 0);
	assert_non_null(before = test_slurp(path, &blen));
	assert_int_equal(stat(tmp, &sb), -1);

	/* the temp file cannot be created (a directory has its name; this
	   fails for root too, unlike a read-only directory) */
	assert_int_equal(mkdir(tmp, 0700), 0);
	assert_int_equal(state_write(path, &img), -1);
	assert_int_equal(rmdir(tmp), 0);
	assert_non_null(after = test_slurp(path, &alen));
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(after);

	/* the disk fills up half-way (RLIMIT_FSIZE: EFBIG) */
	assert_int_equal(getrlimit(RLIMIT_FSIZE, &old), 0);
	lim = old;
	lim.rlim_cur = 512;
	signal(SIGXFSZ, SIG_IGN);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &lim), 0);
	assert_int_equal(state_write(path, &img), -1);
	assert_int_equal(setrlimit(RLIMIT_FSIZE, &old), 0);
	signal(SIGXFSZ, SIG_DFL);
	assert_int_equal(stat(tmp, &sb), -1);	/* removed */
	assert_non_null(after = test_slurp(path, &alen));
	assert_int_equal(alen, blen);
	assert_memory_equal(before, after, blen);
	free(after);

	/* and then it works, replacing the old file */
	assert_int_equal(state_write(path, &img), 0);
	assert_int_equal(state_load(path, NOW_WALL, &back, &errs, NULL, 0),
	    STATE_LOAD_OK);
	assert_int_equal(back.count, img.count);
	free(before);
	state_image_free(&back);
	state_image_free(&img);
}

/* Missing: no state. Corrupt: moved aside, never overwritten. */
static void
test_load_missing_and_corrupt(void **state)
{
	struct state_image img;
	struct state_errors errs;
	char path[128], moved[256], moved2[256], want[300], *text;
	const char garbage[] = "pcp-iwfd-state 1\nepoch 1\nwritten 1\n";
	size_t len;
	FILE *f;
	int round;

	(void)state;
	path_in(path, sizeof(path), "c.state");
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, moved,
	    sizeof(moved)), STATE_LOAD_NONE);
	assert_int_equal(errs.count, 0);
	for (round = 0; round < 2; round++) {
		assert_non_null(f = fopen(path, "w"));
		fputs(garbage, f);
		fclose(f);
		assert_int_equal(state_load(path, NOW_WALL, &img, &errs,
		    round == 0 ? moved : moved2, sizeof(moved)),
		    STATE_LOAD_CORRUPT);
		assert_int_equal(img.count, 0);
		snprintf(want, sizeof(want), "%s:4: no end line (truncated "
		    "file)", path);
		assert_string_equal(errs.msg[0], want);
		assert_int_equal(access(path, F_OK), -1);
	}
	snprintf(want, sizeof(want), "%s.corrupt-%llu", path, NOW_WALL);
	assert_string_equal(moved, want);
	snprintf(want, sizeof(want), "%s.corrupt-%llu-1", path, NOW_WALL);
	assert_string_equal(moved2, want);
	/* both kept, intact */
	assert_non_null(text = test_slurp(moved, &len));
	assert_int_equal(len, strlen(garbage));
	assert_memory_equal(text, garbage, len);
	free(text);
	assert_non_null(text = test_slurp(moved2, &len));
	assert_int_equal(len, strlen(garbage));
	free(text);
	/* unreadable (a directory): an error, left in place */
	assert_int_equal(mkdir(path, 0700), 0);
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, moved,
	    sizeof(moved)), STATE_LOAD_ERROR);
	assert_int_equal(access(path, F_OK), 0);
	assert_int_equal(rmdir(path), 0);
}

static double
seconds_since(const struct timespec *t0)
{
	struct timespec t1;

	clock_gettime(CLOCK_MONOTONIC, &t1);
	return (double)(t1.tv_sec - t0->tv_sec) +
	    (double)(t1.tv_nsec - t0->tv_nsec) / 1e9;
}

/* 50,000 mappings: write (streamed from the table), load, restore. */
static void
test_50000(void **state)
{
	struct state_image img;
	struct state_errors errs;
	struct state_restore_stats st;
	struct state_header h;
	struct table *t, *t2;
	struct timespec t0;
	struct map_req r;
	char path[128], host[32];
	double w, l, rs;
	struct stat sb;
	size_t i;

	(void)state;
	path_in(path, sizeof(path), "big.state");
	assert_non_null(t = table_new());
	table_set_seed(t, 7);
	for (i = 0; i < BIG_COUNT; i++) {
		snprintf(host, sizeof(host), "10.%zu.%zu.%zu", i >> 16,
		    (i >> 8) & 0xff, i & 0xff);
		r = req_make((enum map_origin)(i % 3), host,
		    i % 2 ? MAP_PROTO_TCP : MAP_PROTO_UDP, (uint16_t)(1000 + i),
		    (uint8_t)i, i % 4 ? "Some application (TCP)" : NULL);
		(void)add_granted(t, &r, (uint16_t)(10000 + i), 7200);
	}
	header_fixture(&h);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(state_write_table(path, &h, t, NOW_MS, NOW_WALL), 0);
	w = seconds_since(&t0);
	assert_int_equal(stat(path, &sb), 0);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(state_load(path, NOW_WALL, &img, &errs, NULL, 0),
	    STATE_LOAD_OK);
	l = seconds_since(&t0);
	assert_int_equal(img.count, BIG_COUNT);
	assert_non_null(t2 = table_new());
	clock_gettime(CLOCK_MONOTONIC, &t0);
	assert_int_equal(state_restore_table(&img, t2, NULL, NOW_MS, NOW_WALL,
	    path, &st, &errs), 0);
	rs = seconds_since(&t0);
	assert_int_equal(st.restored, BIG_COUNT);
	print_message("50000 mappings: %lld bytes; write+fsync %.3f s, "
	    "load+parse %.3f s, restore %.3f s\n", (long long)sb.st_size, w, l,
	    rs);
	/* "well under a second" on the build host; generous for sanitizers
	   and loaded CI machines */
	assert_true(w < 5.0 && l < 5.0 && rs < 5.0);
	state_image_free(&img);
	table_free(t);
	table_free(t2);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_round_trip),
		cmocka_unit_test(test_golden_v2),
		cmocka_unit_test(test_golden_v1),
		cmocka_unit_test(test_valid_minimal),
		cmocka_unit_test(test_bad_map_lines),
		cmocka_unit_test(test_bad_header_lines),
		cmocka_unit_test(test_end_line),
		cmocka_unit_test(test_truncation),
		cmocka_unit_test(test_duplicates),
		cmocka_unit_test(test_restore_expiry),
		cmocka_unit_test(test_restore_order_and_conflict),
		cmocka_unit_test(test_lease_field),
		cmocka_unit_test(test_restore_lease),
		cmocka_unit_test(test_renew_never_written),
		cmocka_unit_test(test_epoch_resume),
		cmocka_unit_test(test_upstream_remap),
		cmocka_unit_test(test_write_failure_keeps_old),
		cmocka_unit_test(test_load_missing_and_corrupt),
		cmocka_unit_test(test_50000),
	};

	return cmocka_run_group_tests(tests, setup_dir, teardown_dir);
}
