/*
 * test_pcp_wire.c - the RFC 6887 PCP wire codec: hand-written vectors, the
 * §8.2 pipeline and option rules case by case, round trips, size limits.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pcp_wire.h"

/* ::ffff:192.168.1.2, the requesting client in the vectors below */
static const struct in6_addr client_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2 } };
/* ::ffff:192.168.1.50, a third party */
static const struct in6_addr third_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 50 } };
/* 2001:db8::7 */
static const struct in6_addr v6_ip = { .s6_addr = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7 } };
static const uint8_t nonce[PCP_NONCE_SIZE] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

/*
 * MAP request (§7.1, §11.1) with THIRD_PARTY (§13.1) and DESCRIPTION
 * (RFC 7220), laid out by hand from the RFC figures.
 */
static const uint8_t map_req_vec[] = {
	/* version 2, R=0 opcode 1 (MAP), reserved 16 bits */
	0x02, 0x01, 0x00, 0x00,
	/* requested lifetime 3600 */
	0x00, 0x00, 0x0e, 0x10,
	/* PCP client IP ::ffff:192.168.1.2 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xff, 0xff, 0xc0, 0xa8, 0x01, 0x02,
	/* mapping nonce (96 bits) */
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c,
	/* protocol 6 (TCP), 24 reserved bits */
	0x06, 0x00, 0x00, 0x00,
	/* internal port 8080, suggested external port 8080 */
	0x1f, 0x90, 0x1f, 0x90,
	/* suggested external IP ::ffff:0.0.0.0 (IPv4 "any", §5) */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xff, 0xff, 0x00, 0x00, 0x00, 0x00,
	/* THIRD_PARTY: code 1, reserved, length 16 */
	0x01, 0x00, 0x00, 0x10,
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xff, 0xff, 0xc0, 0xa8, 0x01, 0x32,
	/* DESCRIPTION: code 128, reserved, length 5, "https", 3 pad */
	0x80, 0x00, 0x00, 0x05,
	'h', 't', 't', 'p', 's', 0x00, 0x00, 0x00,
};

/* MAP success response (§7.2, §11.1) */
static const uint8_t map_resp_vec[] = {
	/* version 2, R=1 opcode 1, reserved, result 0 */
	0x02, 0x81, 0x00, 0x00,
	/* lifetime 7200 */
	0x00, 0x00, 0x1c, 0x20,
	/* epoch 1234 */
	0x00, 0x00, 0x04, 0xd2,
	/* 96 reserved bits */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0x00, 0x00,
	/* nonce */
	0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07, 0x08,
	0x09, 0x0a, 0x0b, 0x0c,
	/* protocol 17 (UDP), reserved */
	0x11, 0x00, 0x00, 0x00,
	/* internal port 5000, assigned external port 50000 */
	0x13, 0x88, 0xc3, 0x50,
	/* assigned external IP ::ffff:203.0.113.7 */
	0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
	0x00, 0x00, 0xff, 0xff, 0xcb, 0x00, 0x71, 0x07,
};

static void
test_map_request_vector_decodes(void **state)
{
	struct pcp_msg m;
	enum pcp_result r = PCP_NETWORK_FAILURE;
	struct in6_addr any4;
	struct in_addr zero = { 0 };

	(void)state;
	assert_int_equal(pcp_decode_request(map_req_vec, sizeof(map_req_vec),
	    &client_ip, 0, &m, &r), PCP_VERDICT_OK);
	assert_int_equal(r, PCP_SUCCESS);
	assert_int_equal(m.version, 2);
	assert_false(m.response);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_int_equal(m.lifetime, 3600);
	assert_memory_equal(&m.client_addr, &client_ip, 16);
	assert_memory_equal(m.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.protocol, 6);
	assert_int_equal(m.internal_port, 8080);
	assert_int_equal(m.ext_port, 8080);
	pcp_addr_from_v4(&any4, &zero);
	assert_memory_equal(&m.ext_addr, &any4, 16);
	assert_true(pcp_addr_is_any(&m.ext_addr));
	assert_true(m.has_third_party);
	assert_memory_equal(&m.third_party, &third_ip, 16);
	assert_true(m.has_description);
	assert_int_equal(m.description_len, 5);
	assert_string_equal(m.description, "https");
	assert_true(m.description_utf8_ok);
	assert_false(m.prefer_failure);
	assert_int_equal(m.n_filters, 0);
	assert_false(m.has_third_party_id);
	assert_false(m.has_port_set);
	assert_int_equal(m.n_raw, 0);
	assert_int_equal(m.body_len, 0);
}

static void
test_map_request_vector_encodes(void **state)
{
	struct pcp_msg m;
	uint8_t buf[PCP_MAX_SIZE];

	(void)state;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = PCP_OP_MAP;
	m.lifetime = 3600;
	m.client_addr = client_ip;
	memcpy(m.nonce, nonce, sizeof(nonce));
	m.protocol = 6;
	m.internal_port = 8080;
	m.ext_port = 8080;
	assert_true(pcp_addr_pton("0.0.0.0", &m.ext_addr));
	m.has_third_party = true;
	m.third_party = third_ip;
	m.has_description = true;
	m.description_len = 5;
	memcpy(m.description, "https", 6);
	m.description_utf8_ok = true;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), sizeof(map_req_vec));
	assert_memory_equal(buf, map_req_vec, sizeof(map_req_vec));
}

static void
test_map_response_vector(void **state)
{
	struct pcp_msg m, d;
	uint8_t buf[PCP_MAX_SIZE];

	(void)state;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_MAP;
	m.result = PCP_SUCCESS;
	m.lifetime = 7200;
	m.epoch = 1234;
	memcpy(m.nonce, nonce, sizeof(nonce));
	m.protocol = 17;
	m.internal_port = 5000;
	m.ext_port = 50000;
	assert_true(pcp_addr_pton("203.0.113.7", &m.ext_addr));
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)),
	    sizeof(map_resp_vec));
	assert_memory_equal(buf, map_resp_vec, sizeof(map_resp_vec));

	assert_true(pcp_decode_response(map_resp_vec, sizeof(map_resp_vec),
	    &d));
	assert_true(pcp_msg_equal(&m, &d));
	assert_false(d.truncated);
	assert_int_equal(d.epoch, 1234);
	assert_int_equal(d.ext_port, 50000);
}

/*
 * §8.2 error reply from a request that did not parse (26 octets: not a
 * multiple of 4): the copy padded to 28, version 2, R, result, lifetime,
 * epoch; octets 12..23 keep the last 96 bits of the Client IP field.
 */
static void
test_error_reply_vector(void **state)
{
	static const uint8_t req[26] = {
		0x02, 0x01, 0x00, 0x00, 0x00, 0x00, 0x0e, 0x10,
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00,
		0x00, 0x00, 0xff, 0xff, 0xc0, 0xa8, 0x01, 0x02,
		0x01, 0x02,
	};
	static const uint8_t want[28] = {
		0x02, 0x81, 0x00, 0x03,		/* MALFORMED_REQUEST */
		0x00, 0x00, 0x07, 0x08,		/* lifetime 1800 */
		0x00, 0x00, 0x00, 0x63,		/* epoch 99 */
		0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0xff, 0xff,
		0xc0, 0xa8, 0x01, 0x02,		/* last 96 bits, client IP */
		0x01, 0x02, 0x00, 0x00,		/* copy, zero-padded */
	};
	uint8_t out[PCP_MAX_SIZE];
	enum pcp_result r;

	(void)state;
	assert_int_equal(pcp_decode_request(req, sizeof(req), &client_ip, 0,
	    NULL, &r), PCP_VERDICT_ERROR);
	assert_int_equal(r, PCP_MALFORMED_REQUEST);
	assert_int_equal(pcp_encode_error(req, sizeof(req), r,
	    PCP_LIFETIME_LONG_ERR, 99, out, sizeof(out)), sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
}

/* An error reply to a full request echoes all of it, options included. */
static void
test_error_reply_copies_request(void **state)
{
	uint8_t out[PCP_MAX_SIZE];
	struct pcp_msg d;

	(void)state;
	assert_int_equal(pcp_encode_error(map_req_vec, sizeof(map_req_vec),
	    PCP_NOT_AUTHORIZED, 1800, 7, out, sizeof(out)),
	    sizeof(map_req_vec));
	assert_int_equal(out[0], 2);
	assert_int_equal(out[1], 0x81);
	assert_int_equal(out[2], 0);
	assert_int_equal(out[3], PCP_NOT_AUTHORIZED);
	assert_memory_equal(out + 12, map_req_vec + 12,
	    sizeof(map_req_vec) - 12);
	/* and a client reads it as a MAP error with the echoed options */
	assert_true(pcp_decode_response(out, sizeof(map_req_vec), &d));
	assert_int_equal(d.result, PCP_NOT_AUTHORIZED);
	assert_int_equal(d.lifetime, 1800);
	assert_int_equal(d.epoch, 7);
	assert_int_equal(d.internal_port, 8080);
	assert_true(d.has_third_party);
	assert_string_equal(d.description, "https");
	/* a too-small output buffer refuses */
	assert_int_equal(pcp_encode_error(map_req_vec, sizeof(map_req_vec),
	    PCP_NOT_AUTHORIZED, 1800, 7, out, 40), 0);
}

static void
test_error_reply_edges(void **state)
{
	static const uint8_t v1[2] = { 0x01, 0x01 };
	uint8_t big[PCP_MAX_SIZE + 8], out[PCP_MAX_SIZE];
	size_t i;

	(void)state;
	/* §9: UNSUPP_VERSION to a 2-octet version-1 request: a full header
	 * carrying version 2, the version this server speaks */
	assert_int_equal(pcp_encode_error(v1, sizeof(v1), PCP_UNSUPP_VERSION,
	    1800, 5, out, sizeof(out)), PCP_HDR_SIZE);
	assert_int_equal(out[0], PCP_VERSION);
	assert_int_equal(out[1], 0x81);
	assert_int_equal(out[3], PCP_UNSUPP_VERSION);
	for (i = 12; i < PCP_HDR_SIZE; i++)
		assert_int_equal(out[i], 0);
	/* fewer than 2 octets: nothing to answer */
	assert_int_equal(pcp_encode_error(v1, 1, PCP_UNSUPP_VERSION, 0, 0,
	    out, sizeof(out)), 0);
	/* §8.2: truncated to 1100 */
	memset(big, 0xaa, sizeof(big));
	big[0] = 2;
	big[1] = 1;
	assert_int_equal(pcp_encode_error(big, sizeof(big),
	    PCP_MALFORMED_REQUEST, 1800, 0, out, sizeof(out)), PCP_MAX_SIZE);
	assert_int_equal(out[PCP_MAX_SIZE - 1], 0xaa);
}

/* ---- the malformed cases, table-driven ---- */

struct opt_spec {
	uint8_t		 code;
	uint16_t	 len;
	const uint8_t	*data;		/* NULL: len zero octets */
};

struct bad_case {
	const char	*rule;		/* what is tested, and the RFC rule */
	uint8_t		 version;
	uint8_t		 opcode;	/* 0x80 set = R bit */
	uint32_t	 lifetime;
	uint8_t		 proto;
	uint16_t	 iport, eport, pport;
	struct opt_spec	 opts[3];
	size_t		 final_len;	/* 0: as built; else cut/zero-extend */
	bool		 with_src;
	const struct in6_addr *src;	/* NULL with with_src: client_ip */
	unsigned int	 flags;
	enum pcp_verdict verdict;
	enum pcp_result	 result;
};

static const uint8_t tp_self[16] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2 };
static const uint8_t tp_other[16] = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 50 };
/* FILTER bodies: reserved, prefix, port, address */
static const uint8_t filt_v4_95[20] = { 0, 95, 0, 80,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 0 };
static const uint8_t filt_v4_96[20] = { 0, 96, 0, 80,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 0 };
static const uint8_t filt_v4_129[20] = { 0, 129, 0, 80,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 198, 51, 100, 1 };
static const uint8_t filt_v4_0[20] = { 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0 };
static const uint8_t filt_v6_0[20] = { 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
static const uint8_t filt_v6_129[20] = { 0, 129, 0, 0,
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1 };
static const uint8_t portset_ok[5] = { 0, 10, 0x1f, 0x90, 1 };
static const uint8_t portset_zero[5] = { 0, 0, 0x1f, 0x90, 0 };
static const uint8_t tpid[4] = { 0xde, 0xad, 0xbe, 0xef };

#define MAPC(l, p, i, e)	PCP_VERSION, PCP_OP_MAP, l, p, i, e, 0
#define PEERC(l, p, i, e, r)	PCP_VERSION, PCP_OP_PEER, l, p, i, e, r
#define ANNC			PCP_VERSION, PCP_OP_ANNOUNCE, 0, 0, 0, 0, 0
#define OK			PCP_VERDICT_OK, PCP_SUCCESS
#define DROP			PCP_VERDICT_DROP, PCP_SUCCESS
#define ERR(r)			PCP_VERDICT_ERROR, r
#define NOOPT			{ { 0, 0, NULL } }
#define O1(c, l, d)		{ { c, l, d } }
#define O2(c1, l1, d1, c2, l2, d2) { { c1, l1, d1 }, { c2, l2, d2 } }

static const struct bad_case bad_cases[] = {
	/* ---- spec/pcp.md §1.5, RFC 6887 §8.2 pipeline ---- */
	{ "§8.2: 1 octet is dropped", MAPC(3600, 6, 80, 0), NOOPT, 1,
	    true, NULL, 0, DROP },
	{ "§8.2: R bit set is dropped", PCP_VERSION, PCP_OP_MAP | 0x80,
	    3600, 6, 80, 0, 0, NOOPT, 0, true, NULL, 0, DROP },
	{ "§8.2/§9: version 1 -> UNSUPP_VERSION", 1, PCP_OP_MAP, 3600, 6,
	    80, 0, 0, NOOPT, 0, true, NULL, 0, ERR(PCP_UNSUPP_VERSION) },
	{ "§8.2: 2-octet version 3 -> UNSUPP_VERSION (before the 24 check)",
	    3, PCP_OP_MAP, 0, 0, 0, 0, 0, NOOPT, 2, true, NULL, 0,
	    ERR(PCP_UNSUPP_VERSION) },
	{ "§9: version 0 (NAT-PMP) reaching the codec -> UNSUPP_VERSION", 0,
	    PCP_OP_ANNOUNCE, 0, 0, 0, 0, 0, NOOPT, 0, true, NULL, 0,
	    ERR(PCP_UNSUPP_VERSION) },
	{ "§8.2: version 2 shorter than 24 is dropped", MAPC(3600, 6, 80, 0),
	    NOOPT, 20, true, NULL, 0, DROP },
	{ "§8.2: longer than 1100 -> MALFORMED_REQUEST", MAPC(3600, 6, 80, 0),
	    NOOPT, PCP_MAX_SIZE + 4, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: not a multiple of 4 -> MALFORMED_REQUEST",
	    MAPC(3600, 6, 80, 0), NOOPT, 62, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: MAP shorter than 60 -> MALFORMED_REQUEST",
	    MAPC(3600, 6, 80, 0), NOOPT, 56, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: PEER shorter than 80 -> MALFORMED_REQUEST",
	    PEERC(3600, 6, 80, 0, 443), NOOPT, 76, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: source != Client IP -> ADDRESS_MISMATCH",
	    MAPC(3600, 6, 80, 0), NOOPT, 0, true, &third_ip, 0,
	    ERR(PCP_ADDRESS_MISMATCH) },
	{ "§8.2: no src given skips the address check",
	    MAPC(3600, 6, 80, 0), NOOPT, 0, false, NULL, 0, OK },
	{ "§8.2: length checked before address",
	    MAPC(3600, 6, 80, 0), NOOPT, 56, true, &third_ip, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: unknown opcode -> UNSUPP_OPCODE", PCP_VERSION, 9, 0, 0, 0,
	    0, 0, NOOPT, 0, true, NULL, 0, ERR(PCP_UNSUPP_OPCODE) },
	{ "RFC 7648 §3.4: relaying accepts an unknown opcode", PCP_VERSION,
	    9, 0, 0, 0, 0, 0, NOOPT, 40, true, NULL,
	    PCP_DECODE_RELAY_UNKNOWN, OK },
	{ "§8.2: address checked before opcode", PCP_VERSION, 9, 0, 0, 0, 0,
	    0, NOOPT, 0, true, &third_ip, 0, ERR(PCP_ADDRESS_MISMATCH) },
	{ "RFC 7652: AUTHENTICATION -> UNSUPP_OPCODE even relaying",
	    PCP_VERSION, PCP_OP_AUTHENTICATION, 0, 0, 0, 0, 0, NOOPT, 32,
	    true, NULL, PCP_DECODE_RELAY_UNKNOWN, ERR(PCP_UNSUPP_OPCODE) },

	/* ---- spec/pcp.md §1.4, RFC 6887 §7.3 option structure ---- */
	{ "§7.3: option length past the end -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_THIRD_PARTY, 16, tp_other), 64,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§7.3: optional option past the end -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_DESCRIPTION, 100, NULL), 72,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§13.1: THIRD_PARTY length 4 -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_THIRD_PARTY, 4, tp_other), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§7.3: THIRD_PARTY twice -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O2(PCP_OPT_THIRD_PARTY, 16, tp_other,
	    PCP_OPT_THIRD_PARTY, 16, tp_other), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§13.1: THIRD_PARTY == source -> MALFORMED_REQUEST",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_THIRD_PARTY, 16, tp_self), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_REQUEST) },
	{ "§13: THIRD_PARTY on ANNOUNCE -> MALFORMED_OPTION (our choice)",
	    ANNC, O1(PCP_OPT_THIRD_PARTY, 16, tp_other), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§7.3: FILTER on PEER -> MALFORMED_OPTION (our choice)",
	    PEERC(3600, 6, 80, 0, 443), O1(PCP_OPT_FILTER, 20, filt_v4_96), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§14.1.1: unknown optional option on ANNOUNCE is fine", ANNC,
	    O1(200, 3, tp_other), 0, true, NULL, 0, OK },
	{ "§7.3: DESCRIPTION on ANNOUNCE is optional: kept raw", ANNC,
	    O1(PCP_OPT_DESCRIPTION, 4, tpid), 0, true, NULL, 0, OK },

	/* PREFER_FAILURE, §11.3, §12.1, §13.2 */
	{ "§11.3: PREFER_FAILURE with lifetime 0 -> MALFORMED_OPTION",
	    MAPC(0, 6, 80, 8080), O1(PCP_OPT_PREFER_FAILURE, 0, NULL), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§12.1: PREFER_FAILURE with PEER -> MALFORMED_REQUEST",
	    PEERC(3600, 6, 80, 8080, 443),
	    O1(PCP_OPT_PREFER_FAILURE, 0, NULL), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§13.2: PREFER_FAILURE with ext port 0 -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_PREFER_FAILURE, 0, NULL), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§13.2: PREFER_FAILURE length 4 -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 8080), O1(PCP_OPT_PREFER_FAILURE, 4, tpid), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§7.3: PREFER_FAILURE twice -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 8080), O2(PCP_OPT_PREFER_FAILURE, 0, NULL,
	    PCP_OPT_PREFER_FAILURE, 0, NULL), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§13.2: PREFER_FAILURE with a port is fine",
	    MAPC(3600, 6, 80, 8080), O1(PCP_OPT_PREFER_FAILURE, 0, NULL), 0,
	    true, NULL, 0, OK },

	/* FILTER, §13.3 */
	{ "§13.3: IPv4 prefix 95 -> MALFORMED_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 20, filt_v4_95), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§13.3: IPv4 prefix 129 -> MALFORMED_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 20, filt_v4_129), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§13.3: IPv6 prefix 129 -> MALFORMED_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 20, filt_v6_129), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "§13.3: IPv4 prefix 96 is fine", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 20, filt_v4_96), 0, true, NULL, 0, OK },
	{ "§13.3: IPv6 prefix 0 (remove all) is fine", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 20, filt_v6_0), 0, true, NULL, 0, OK },
	{ "§13.3 + erratum 3891: IPv4 prefix 0 (remove all) is fine",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_FILTER, 20, filt_v4_0), 0,
	    true, NULL, 0, OK },
	{ "§13.3: FILTER with lifetime 0 -> MALFORMED_OPTION",
	    MAPC(0, 6, 80, 0), O1(PCP_OPT_FILTER, 20, filt_v4_96), 0, true,
	    NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "§13.3: FILTER length 16 -> MALFORMED_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_FILTER, 16, filt_v4_96), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },

	/* MAP and PEER bodies, §11.3, §12.1 */
	{ "§11.3: MAP protocol 0, port 80 -> MALFORMED_REQUEST",
	    MAPC(3600, 0, 80, 0), NOOPT, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§11.3: MAP protocol 0, port 80, lifetime 0 -> MALFORMED_REQUEST",
	    MAPC(0, 0, 80, 0), NOOPT, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§11.3: MAP protocol 0, port 0 (DMZ) is fine", MAPC(3600, 0, 0, 0),
	    NOOPT, 0, true, NULL, 0, OK },
	{ "§12.1: PEER protocol 0 -> MALFORMED_REQUEST",
	    PEERC(3600, 0, 80, 0, 443), NOOPT, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§12.1: PEER internal port 0 -> MALFORMED_REQUEST",
	    PEERC(3600, 6, 0, 0, 443), NOOPT, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§12.1: PEER remote port 0 -> MALFORMED_REQUEST",
	    PEERC(3600, 6, 80, 0, 0), NOOPT, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },
	{ "§8.2: body checked before options",
	    MAPC(3600, 0, 80, 0), O1(99, 0, NULL), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_REQUEST) },

	/* THIRD_PARTY_ID, RFC 7843 */
	{ "RFC 7843 §5.2: THIRD_PARTY_ID alone -> THIRD_PARTY_MISSING_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_THIRD_PARTY_ID, 4, tpid), 0,
	    true, NULL, 0, ERR(PCP_THIRD_PARTY_MISSING_OPTION) },
	{ "RFC 7843: THIRD_PARTY_ID before THIRD_PARTY is fine",
	    PEERC(3600, 6, 80, 0, 443), O2(PCP_OPT_THIRD_PARTY_ID, 4, tpid,
	    PCP_OPT_THIRD_PARTY, 16, tp_other), 0, true, NULL, 0, OK },
	{ "RFC 7843 §4: empty THIRD_PARTY_ID -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O2(PCP_OPT_THIRD_PARTY, 16, tp_other,
	    PCP_OPT_THIRD_PARTY_ID, 0, NULL), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7843 §4: THIRD_PARTY_ID twice -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), { { PCP_OPT_THIRD_PARTY, 16, tp_other },
	    { PCP_OPT_THIRD_PARTY_ID, 4, tpid },
	    { PCP_OPT_THIRD_PARTY_ID, 4, tpid } }, 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },

	/* PORT_SET, RFC 7753 §4.2 */
	{ "RFC 7753 §4.2: size 0 -> MALFORMED_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_PORT_SET, 5, portset_zero), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7753 §4.2: with PREFER_FAILURE -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 8080), O2(PCP_OPT_PORT_SET, 5, portset_ok,
	    PCP_OPT_PREFER_FAILURE, 0, NULL), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7753 §4.2: after PREFER_FAILURE -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 8080), O2(PCP_OPT_PREFER_FAILURE, 0, NULL,
	    PCP_OPT_PORT_SET, 5, portset_ok), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7753 §4.2: PORT_SET twice -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O2(PCP_OPT_PORT_SET, 5, portset_ok,
	    PCP_OPT_PORT_SET, 5, portset_ok), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7753 §4: PORT_SET length 4 -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_PORT_SET, 4, portset_ok), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7753: PORT_SET on PEER is optional: kept raw",
	    PEERC(3600, 6, 80, 0, 443), O1(PCP_OPT_PORT_SET, 5, portset_ok), 0,
	    true, NULL, 0, OK },

	/* DESCRIPTION, RFC 7220 */
	{ "RFC 7220 §2: DESCRIPTION twice -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O2(PCP_OPT_DESCRIPTION, 2, tpid,
	    PCP_OPT_DESCRIPTION, 2, tpid), 0, true, NULL, 0,
	    ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7220 §2: DESCRIPTION of 1017 -> MALFORMED_OPTION",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_DESCRIPTION, 1017, NULL), 0,
	    true, NULL, 0, ERR(PCP_MALFORMED_OPTION) },
	{ "RFC 7220 §2: empty DESCRIPTION (erase) is fine",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_DESCRIPTION, 0, NULL), 0,
	    true, NULL, 0, OK },

	/* unknown and unsupported options, §7.3 */
	{ "§7.3: unknown mandatory option -> UNSUPP_OPTION",
	    MAPC(3600, 6, 80, 0), O1(99, 4, tpid), 0, true, NULL, 0,
	    ERR(PCP_UNSUPP_OPTION) },
	{ "RFC 7648 §3.4: relaying keeps an unknown mandatory option",
	    MAPC(3600, 6, 80, 0), O1(99, 4, tpid), 0, true, NULL,
	    PCP_DECODE_RELAY_UNKNOWN, OK },
	{ "RFC 7652: AUTHENTICATION_TAG -> UNSUPP_OPTION even relaying",
	    MAPC(3600, 6, 80, 0), O1(PCP_OPT_AUTHENTICATION_TAG, 4, tpid), 0,
	    true, NULL, PCP_DECODE_RELAY_UNKNOWN, ERR(PCP_UNSUPP_OPTION) },
	{ "RFC 7652: NONCE on MAP -> UNSUPP_OPTION", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_NONCE, 4, tpid), 0, true, NULL, 0,
	    ERR(PCP_UNSUPP_OPTION) },
	{ "§7.3: unknown optional option is kept", MAPC(3600, 6, 80, 0),
	    O1(222, 1, tpid), 0, true, NULL, 0, OK },
	{ "RFC 7225: PREFIX64 is kept raw", MAPC(3600, 6, 80, 0),
	    O1(PCP_OPT_PREFIX64, 4, tpid), 0, true, NULL, 0, OK },
	{ "§7.3: options processed in order: first error wins",
	    MAPC(3600, 6, 80, 0), O2(99, 0, NULL, PCP_OPT_THIRD_PARTY, 4,
	    tpid), 0, true, NULL, 0, ERR(PCP_UNSUPP_OPTION) },
};

static size_t
build_case(const struct bad_case *bc, uint8_t *buf, size_t cap)
{
	static const uint8_t zeros[PCP_MAX_SIZE];
	size_t len = 0, i, pad;

	memset(buf, 0, cap);
	buf[0] = bc->version;
	buf[1] = bc->opcode;
	buf[4] = (uint8_t)(bc->lifetime >> 24);
	buf[5] = (uint8_t)(bc->lifetime >> 16);
	buf[6] = (uint8_t)(bc->lifetime >> 8);
	buf[7] = (uint8_t)bc->lifetime;
	memcpy(buf + 8, &client_ip, 16);
	len = PCP_HDR_SIZE;
	if ((bc->opcode & 0x7f) == PCP_OP_MAP ||
	    (bc->opcode & 0x7f) == PCP_OP_PEER) {
		memcpy(buf + len, nonce, sizeof(nonce));
		buf[len + 12] = bc->proto;
		buf[len + 16] = (uint8_t)(bc->iport >> 8);
		buf[len + 17] = (uint8_t)bc->iport;
		buf[len + 18] = (uint8_t)(bc->eport >> 8);
		buf[len + 19] = (uint8_t)bc->eport;
		buf[len + 30] = 0xff;		/* ext addr ::ffff:0.0.0.0 */
		buf[len + 31] = 0xff;
		len += PCP_MAP_BODY_SIZE;
	}
	if ((bc->opcode & 0x7f) == PCP_OP_PEER) {
		buf[len] = (uint8_t)(bc->pport >> 8);
		buf[len + 1] = (uint8_t)bc->pport;
		memcpy(buf + len + 4, &v6_ip, 16);
		len += PCP_PEER_BODY_SIZE - PCP_MAP_BODY_SIZE;
	}
	for (i = 0; i < 3 && bc->opts[i].code != 0; i++) {
		pad = (4 - bc->opts[i].len % 4) % 4;
		if (len + 4 + bc->opts[i].len + pad > cap)
			break;
		buf[len] = bc->opts[i].code;
		buf[len + 2] = (uint8_t)(bc->opts[i].len >> 8);
		buf[len + 3] = (uint8_t)bc->opts[i].len;
		memcpy(buf + len + 4, bc->opts[i].data != NULL ?
		    bc->opts[i].data : zeros, bc->opts[i].len);
		len += 4 + bc->opts[i].len + pad;
	}
	return bc->final_len != 0 ? bc->final_len : len;
}

static void
test_malformed_table(void **state)
{
	uint8_t buf[PCP_MAX_SIZE + 64];
	const struct bad_case *bc;
	const struct in6_addr *src;
	enum pcp_verdict v;
	enum pcp_result r;
	struct pcp_msg m;
	size_t i, len;

	(void)state;
	for (i = 0; i < sizeof(bad_cases) / sizeof(bad_cases[0]); i++) {
		bc = &bad_cases[i];
		len = build_case(bc, buf, sizeof(buf));
		src = bc->with_src ? (bc->src != NULL ? bc->src : &client_ip) :
		    NULL;
		memset(&m, 0x5a, sizeof(m));
		r = PCP_NETWORK_FAILURE;
		v = pcp_decode_request(buf, len, src, bc->flags, &m, &r);
		if (v != bc->verdict || r != bc->result)
			fail_msg("%s: verdict %d result %s, want %d %s",
			    bc->rule, v, pcp_result_name(r), bc->verdict,
			    pcp_result_name(bc->result));
		/* decode -> validate -> commit: no output unless OK */
		if (v != PCP_VERDICT_OK && m.version != 0x5a)
			fail_msg("%s: output touched on failure", bc->rule);
	}
}

/* What the OK cases of the table keep, checked field by field. */
static void
test_kept_options(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct bad_case bc;
	struct pcp_msg m;
	size_t len;

	(void)state;
	/* unknown mandatory option relayed: raw, in order, copied */
	memset(&bc, 0, sizeof(bc));
	bc.version = PCP_VERSION;
	bc.opcode = PCP_OP_MAP;
	bc.lifetime = 3600;
	bc.proto = 6;
	bc.iport = 80;
	bc.opts[0] = (struct opt_spec){ 99, 4, tpid };
	bc.opts[1] = (struct opt_spec){ PCP_OPT_PREFIX64, 3, tpid };
	bc.opts[2] = (struct opt_spec){ PCP_OPT_FILTER, 20, filt_v4_96 };
	len = build_case(&bc, buf, sizeof(buf));
	assert_int_equal(pcp_decode_request(buf, len, &client_ip,
	    PCP_DECODE_RELAY_UNKNOWN, &m, NULL), PCP_VERDICT_OK);
	assert_int_equal(m.n_raw, 2);
	assert_int_equal(m.raw[0].code, 99);
	assert_int_equal(m.raw[0].len, 4);
	assert_memory_equal(m.raw_data + m.raw[0].data_off, tpid, 4);
	assert_int_equal(m.raw[1].code, PCP_OPT_PREFIX64);
	assert_int_equal(m.raw[1].len, 3);
	assert_memory_equal(m.raw_data + m.raw[1].data_off, tpid, 3);
	assert_int_equal(m.n_filters, 1);
	assert_int_equal(m.filters[0].prefix_len, 96);
	assert_int_equal(m.filters[0].remote_port, 80);
	assert_true(pcp_addr_is_v4(&m.filters[0].remote_addr));

	/* unknown opcode relayed: everything after the header is the body */
	memset(&bc, 0, sizeof(bc));
	bc.version = PCP_VERSION;
	bc.opcode = 9;
	bc.final_len = 40;
	len = build_case(&bc, buf, sizeof(buf));
	buf[30] = 0x77;
	assert_int_equal(pcp_decode_request(buf, len, &client_ip,
	    PCP_DECODE_RELAY_UNKNOWN, &m, NULL), PCP_VERDICT_OK);
	assert_int_equal(m.opcode, 9);
	assert_int_equal(m.body_len, 16);
	assert_int_equal(m.body[6], 0x77);
}

/* RFC 7220 §3: invalid UTF-8 decodes; the flag tells the server. */
static void
test_description_utf8(void **state)
{
	static const struct {
		const char	*text;
		bool		 ok;
	} cases[] = {
		{ "Camera", true },
		{ "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x8e\xae", true },
		{ "\xc3", false },		/* cut sequence */
		{ "\xc0\xaf", false },		/* overlong '/' */
		{ "\xed\xa0\x80", false },	/* surrogate U+D800 */
		{ "\xf4\x90\x80\x80", false },	/* above U+10FFFF */
		{ "\xff", false },
		{ "a\x80", false },		/* stray continuation */
	};
	uint8_t buf[PCP_MAX_SIZE];
	struct bad_case bc;
	struct pcp_msg m;
	size_t i, len;
	uint8_t nul[3] = { 'a', 0, 'b' };

	(void)state;
	memset(&bc, 0, sizeof(bc));
	bc.version = PCP_VERSION;
	bc.opcode = PCP_OP_MAP;
	bc.lifetime = 3600;
	bc.proto = 17;
	bc.iport = 5000;
	for (i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		bc.opts[0] = (struct opt_spec){ PCP_OPT_DESCRIPTION,
		    (uint16_t)strlen(cases[i].text),
		    (const uint8_t *)cases[i].text };
		len = build_case(&bc, buf, sizeof(buf));
		assert_int_equal(pcp_decode_request(buf, len, &client_ip, 0,
		    &m, NULL), PCP_VERDICT_OK);
		assert_true(m.has_description);
		assert_int_equal(m.description_len, strlen(cases[i].text));
		assert_string_equal(m.description, cases[i].text);
		if (m.description_utf8_ok != cases[i].ok)
			fail_msg("case %zu: utf8_ok %d", i,
			    m.description_utf8_ok);
	}
	/* an embedded NUL: kept whole (length says so), flagged */
	bc.opts[0] = (struct opt_spec){ PCP_OPT_DESCRIPTION, 3, nul };
	len = build_case(&bc, buf, sizeof(buf));
	assert_int_equal(pcp_decode_request(buf, len, &client_ip, 0, &m, NULL),
	    PCP_VERDICT_OK);
	assert_int_equal(m.description_len, 3);
	assert_memory_equal(m.description, nul, 3);
	assert_false(m.description_utf8_ok);
}

/* ---- round trips ---- */

static void
add_raw(struct pcp_msg *m, uint8_t code, const void *data, uint16_t len)
{
	struct pcp_opt_raw *r = &m->raw[m->n_raw++];

	r->code = code;
	r->len = len;
	r->data_off = m->raw_data_len;
	memcpy(m->raw_data + m->raw_data_len, data, len);
	m->raw_data_len += len;
}

static void
fill_base(struct pcp_msg *m, uint8_t opcode, bool response)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = opcode;
	m->response = response;
	if (response) {
		m->result = PCP_SUCCESS;
		m->epoch = 777;
	} else
		m->client_addr = client_ip;
	m->lifetime = opcode == PCP_OP_ANNOUNCE ? 0 : 7200;
	if (opcode == PCP_OP_MAP || opcode == PCP_OP_PEER) {
		memcpy(m->nonce, nonce, sizeof(nonce));
		m->protocol = 6;
		m->internal_port = 8080;
		m->ext_port = 18080;
		m->ext_addr = v6_ip;
	}
	if (opcode == PCP_OP_PEER) {
		m->peer_port = 443;
		assert_true(pcp_addr_pton("198.51.100.9", &m->peer_addr));
	}
}

static void
add_every_option(struct pcp_msg *m, bool port_set)
{
	static const uint8_t prefix64[] = { 0, 12, 0x00, 0x64, 0xff, 0x9b,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0 };
	static const uint8_t opaque[] = { 1, 2, 3, 4, 5, 6, 7 };

	m->has_third_party = true;
	m->third_party = third_ip;
	if (m->opcode == PCP_OP_MAP) {
		m->prefer_failure = !port_set;
		m->n_filters = 2;
		m->filters[0].prefix_len = 0;
		m->filters[1].prefix_len = 120;
		m->filters[1].remote_port = 9000;
		assert_true(pcp_addr_pton("198.51.100.0",
		    &m->filters[1].remote_addr));
		m->has_port_set = port_set;
		m->port_set.size = 100;
		m->port_set.first_internal_port = 8080;
		m->port_set.parity = true;
		add_raw(m, PCP_OPT_PREFIX64, prefix64, sizeof(prefix64));
	}
	m->has_description = true;
	m->description_len = 14;
	memcpy(m->description, "game \xc3\xa9 server", 15);
	m->description_utf8_ok = true;
	m->has_third_party_id = true;
	m->third_party_id_len = 3;
	memcpy(m->third_party_id, "\x0a\x0b\x0c", 3);
	add_raw(m, 200, opaque, sizeof(opaque));
}

static void
round_trip(const struct pcp_msg *m)
{
	uint8_t buf[PCP_MAX_SIZE], again[PCP_MAX_SIZE];
	struct pcp_msg d;
	enum pcp_result r;
	size_t n, n2;

	n = pcp_encode(m, buf, sizeof(buf));
	assert_true(n >= PCP_HDR_SIZE);
	assert_int_equal(n % 4, 0);
	if (m->response)
		assert_true(pcp_decode_response(buf, n, &d));
	else {
		assert_int_equal(pcp_decode_request(buf, n, &client_ip, 0, &d,
		    &r), PCP_VERDICT_OK);
		assert_int_equal(r, PCP_SUCCESS);
	}
	if (!pcp_msg_equal(m, &d))
		fail_msg("%s %s: decoded message differs",
		    pcp_opcode_name(m->opcode),
		    m->response ? "response" : "request");
	n2 = pcp_encode(&d, again, sizeof(again));
	assert_int_equal(n2, n);
	assert_memory_equal(buf, again, n);
}

static void
test_round_trips(void **state)
{
	struct pcp_msg m;
	int response;

	(void)state;
	for (response = 0; response <= 1; response++) {
		fill_base(&m, PCP_OP_MAP, response);
		round_trip(&m);
		add_every_option(&m, false);
		round_trip(&m);
		fill_base(&m, PCP_OP_MAP, response);
		add_every_option(&m, true);
		round_trip(&m);

		fill_base(&m, PCP_OP_PEER, response);
		round_trip(&m);
		add_every_option(&m, false);
		round_trip(&m);

		fill_base(&m, PCP_OP_ANNOUNCE, response);
		round_trip(&m);
		add_raw(&m, PCP_OPT_PREFIX64, "\0\x0c", 2);
		round_trip(&m);
	}
	/* an error response carries the echoed fields and options */
	fill_base(&m, PCP_OP_MAP, true);
	add_every_option(&m, true);
	m.result = PCP_CANNOT_PROVIDE_EXTERNAL;
	round_trip(&m);
}

static void
test_round_trip_relayed_opcode(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct pcp_msg m, d;
	size_t n;

	(void)state;
	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.opcode = 42;
	m.lifetime = 60;
	m.client_addr = client_ip;
	m.body_len = 8;
	memcpy(m.body, "\x01\x02\x03\x04\x80\x00\x00\x00", 8);
	n = pcp_encode(&m, buf, sizeof(buf));
	assert_int_equal(n, PCP_HDR_SIZE + 8);
	assert_int_equal(pcp_decode_request(buf, n, &client_ip,
	    PCP_DECODE_RELAY_UNKNOWN, &d, NULL), PCP_VERDICT_OK);
	assert_true(pcp_msg_equal(&m, &d));
	/* and the response to it comes back uninterpreted too */
	m.response = true;
	m.result = PCP_SUCCESS;
	memset(&m.client_addr, 0, sizeof(m.client_addr));
	n = pcp_encode(&m, buf, sizeof(buf));
	assert_true(pcp_decode_response(buf, n, &d));
	assert_true(pcp_msg_equal(&m, &d));
}

/* The round trips lean on pcp_msg_equal: it must see every difference. */
static void
test_msg_equal_discriminates(void **state)
{
	struct pcp_msg a, b;
	int i;

	(void)state;
	fill_base(&a, PCP_OP_MAP, true);
	add_every_option(&a, true);
	b = a;
	assert_true(pcp_msg_equal(&a, &b));
	/* raw options compare by contents, not by where they are stored */
	memmove(b.raw_data + 4, b.raw_data, b.raw_data_len);
	b.raw[0].data_off += 4;
	b.raw[1].data_off += 4;
	b.raw_data_len += 4;
	assert_true(pcp_msg_equal(&a, &b));
	/* contents of absent options do not count */
	b = a;
	b.has_third_party_id = a.has_third_party_id = false;
	b.third_party_id[0] ^= 1;
	assert_true(pcp_msg_equal(&a, &b));
	a.has_third_party_id = true;
	b.truncated = true;
	b.has_third_party_id = true;
	assert_false(pcp_msg_equal(&a, &b));	/* the id differs */
	for (i = 0; i < 14; i++) {
		b = a;
		switch (i) {
		case 0: b.result = 1; break;
		case 1: b.epoch++; break;
		case 2: b.nonce[11] ^= 1; break;
		case 3: b.ext_addr.s6_addr[0] ^= 1; break;
		case 4: b.internal_port++; break;
		case 5: b.third_party.s6_addr[15] ^= 1; break;
		case 6: b.prefer_failure = !b.prefer_failure; break;
		case 7: b.filters[1].prefix_len++; break;
		case 8: b.n_filters--; break;
		case 9: b.description[3] ^= 1; break;
		case 10: b.port_set.parity = !b.port_set.parity; break;
		case 11: b.raw_data[b.raw[1].data_off] ^= 1; break;
		case 12: b.raw[0].code++; break;
		default: b.lifetime++; break;
		}
		if (pcp_msg_equal(&a, &b))
			fail_msg("difference %d not seen", i);
	}
	b = a;
	b.truncated = true;
	assert_true(pcp_msg_equal(&a, &b));
}

/* ---- size limits ---- */

static void
test_encode_refuses_oversize(void **state)
{
	uint8_t buf[PCP_MAX_SIZE + 64];
	struct pcp_msg m;

	(void)state;
	/* 60 + THIRD_PARTY 20 + DESCRIPTION 4 + 1016 = 1100: just fits */
	fill_base(&m, PCP_OP_MAP, false);
	m.has_third_party = true;
	m.third_party = third_ip;
	m.has_description = true;
	m.description_len = PCP_DESCRIPTION_MAX;
	memset(m.description, 'x', PCP_DESCRIPTION_MAX);
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), PCP_MAX_SIZE);
	/* ... and decodes */
	assert_int_equal(pcp_decode_request(buf, PCP_MAX_SIZE, &client_ip, 0,
	    &m, NULL), PCP_VERDICT_OK);
	assert_int_equal(m.description_len, PCP_DESCRIPTION_MAX);
	/* four octets more (PREFER_FAILURE) is over 1100 */
	m.prefer_failure = true;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), 0);
	/* PEER is 20 octets longer than MAP: over too */
	m.prefer_failure = false;
	m.opcode = PCP_OP_PEER;
	m.peer_port = 1;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), 0);
	/* a buffer smaller than the message refuses */
	fill_base(&m, PCP_OP_MAP, false);
	assert_int_equal(pcp_encode(&m, buf, PCP_MAP_MSG_SIZE - 1), 0);
	assert_int_equal(pcp_encode(&m, buf, PCP_MAP_MSG_SIZE),
	    PCP_MAP_MSG_SIZE);
	/* lengths the struct can hold but the wire must not */
	m.description_len = PCP_DESCRIPTION_MAX + 1;
	m.has_description = true;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), 0);
	fill_base(&m, PCP_OP_MAP, false);
	m.opcode = 0x80;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), 0);
	fill_base(&m, PCP_OP_MAP, false);
	m.n_raw = 1;
	m.raw[0].len = 4;
	m.raw[0].data_off = 0;
	m.raw_data_len = 2;
	assert_int_equal(pcp_encode(&m, buf, sizeof(buf)), 0);
}

/* ---- responses, §8.3 ---- */

static void
test_response_acceptance(void **state)
{
	/* NAT-PMP's reply to a PCP request (RFC 6886 §3.5): version 0,
	 * opcode 128 + op, 16-bit result 1, epoch: R set, byte 3 = 1 */
	static const uint8_t natpmp[8] = { 0, 0x81, 0, 1, 0, 0, 0x12, 0x34 };
	uint8_t buf[PCP_MAX_SIZE + 8];
	struct pcp_msg m;

	(void)state;
	memcpy(buf, map_resp_vec, sizeof(map_resp_vec));
	/* §8.3: fewer than 4 octets dropped */
	assert_false(pcp_decode_response(buf, 3, &m));
	/* §8.3: R clear dropped */
	buf[1] = 0x01;
	assert_false(pcp_decode_response(buf, sizeof(map_resp_vec), &m));
	buf[1] = 0x81;
	/* §8.3: shorter than 24, not a multiple of 4, over 1100 ignored */
	assert_false(pcp_decode_response(buf, 20, &m));
	assert_false(pcp_decode_response(buf, 58, &m));
	memset(buf + sizeof(map_resp_vec), 0, sizeof(buf) -
	    sizeof(map_resp_vec));
	assert_false(pcp_decode_response(buf, PCP_MAX_SIZE + 4, &m));
	/* success too short for MAP: dropped */
	assert_false(pcp_decode_response(buf, 40, &m));
	/* another version is meaningful only with UNSUPP_VERSION */
	buf[0] = 1;
	assert_false(pcp_decode_response(buf, sizeof(map_resp_vec), &m));
	buf[0] = 2;
	assert_true(pcp_decode_response(natpmp, sizeof(natpmp), &m));
	assert_int_equal(m.version, 0);
	assert_int_equal(m.result, PCP_UNSUPP_VERSION);
	assert_true(m.truncated);
	/* a 4-octet UNSUPP_VERSION is enough to negotiate on (§8.3) */
	assert_true(pcp_decode_response(natpmp, 4, &m));
	assert_int_equal(m.lifetime, 0);
}

static void
test_response_truncated_error(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct pcp_msg m;

	(void)state;
	/* an error reply carrying a 40-octet request copy: what fits */
	memcpy(buf, map_resp_vec, 40);
	buf[3] = PCP_MALFORMED_REQUEST;
	assert_true(pcp_decode_response(buf, 40, &m));
	assert_true(m.truncated);
	assert_int_equal(m.result, PCP_MALFORMED_REQUEST);
	assert_memory_equal(m.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(m.protocol, 17);
	assert_int_equal(m.internal_port, 0);	/* beyond the copy */
	/* 44 octets: internal and external port fit */
	memcpy(buf, map_resp_vec, 44);
	buf[3] = PCP_MALFORMED_REQUEST;
	assert_true(pcp_decode_response(buf, 44, &m));
	assert_int_equal(m.internal_port, 5000);
	assert_int_equal(m.ext_port, 50000);
}

static void
test_response_options_never_fail(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct pcp_msg m;
	size_t n;

	(void)state;
	memcpy(buf, map_resp_vec, sizeof(map_resp_vec));
	n = sizeof(map_resp_vec);
	/* unknown mandatory 99, THIRD_PARTY with a bad length, a good one */
	memcpy(buf + n, "\x63\x00\x00\x00", 4);
	n += 4;
	memcpy(buf + n, "\x01\x00\x00\x04\xc0\xa8\x01\x32", 8);
	n += 8;
	memcpy(buf + n, "\x01\x00\x00\x10", 4);
	memcpy(buf + n + 4, &third_ip, 16);
	n += 20;
	assert_true(pcp_decode_response(buf, n, &m));
	assert_false(m.truncated);
	assert_true(m.has_third_party);
	assert_memory_equal(&m.third_party, &third_ip, 16);
	assert_int_equal(m.n_raw, 2);
	assert_int_equal(m.raw[0].code, 99);
	assert_int_equal(m.raw[1].code, PCP_OPT_THIRD_PARTY);
	assert_int_equal(m.raw[1].len, 4);
	/* an option running past the end: what parsed stays */
	memcpy(buf + n, "\x80\x00\x00\x40", 4);
	n += 4;
	assert_true(pcp_decode_response(buf, n, &m));
	assert_true(m.truncated);
	assert_true(m.has_third_party);
}

/* ---- names and addresses ---- */

static void
test_names(void **state)
{
	(void)state;
	assert_string_equal(pcp_result_name(PCP_SUCCESS), "SUCCESS");
	assert_string_equal(pcp_result_name(PCP_NOT_AUTHORIZED),
	    "NOT_AUTHORIZED");
	assert_string_equal(pcp_result_name(PCP_EXCESSIVE_REMOTE_PEERS),
	    "EXCESSIVE_REMOTE_PEERS");
	assert_string_equal(pcp_result_name(PCP_THIRD_PARTY_MISSING_OPTION),
	    "THIRD_PARTY_MISSING_OPTION");
	assert_string_equal(pcp_result_name(200), "UNKNOWN_RESULT");
	assert_true(pcp_result_is_short(PCP_NETWORK_FAILURE));
	assert_true(pcp_result_is_short(PCP_NO_RESOURCES));
	assert_true(pcp_result_is_short(PCP_USER_EX_QUOTA));
	assert_false(pcp_result_is_short(PCP_NOT_AUTHORIZED));
	assert_false(pcp_result_is_short(PCP_SUCCESS));
	assert_string_equal(pcp_opcode_name(PCP_OP_MAP), "MAP");
	assert_string_equal(pcp_opcode_name(PCP_OP_PEER), "PEER");
	assert_string_equal(pcp_opcode_name(PCP_OP_ANNOUNCE), "ANNOUNCE");
	assert_string_equal(pcp_opcode_name(99), "UNKNOWN_OPCODE");
}

static void
test_addresses(void **state)
{
	struct in6_addr a;
	struct in_addr v4;
	char text[INET6_ADDRSTRLEN];

	(void)state;
	assert_true(pcp_addr_pton("192.0.2.1", &a));
	assert_true(pcp_addr_is_v4(&a));
	pcp_addr_to_v4(&a, &v4);
	assert_int_equal(ntohl(v4.s_addr), 0xc0000201);
	assert_string_equal(pcp_addr_ntop(&a, text, sizeof(text)),
	    "192.0.2.1");
	/* §5: all 96 prefix bits are checked */
	a.s6_addr[0] = 1;
	assert_false(pcp_addr_is_v4(&a));
	assert_true(pcp_addr_pton("::ffff:10.0.0.1", &a));
	assert_true(pcp_addr_is_v4(&a));
	assert_true(pcp_addr_pton("2001:db8::7", &a));
	assert_false(pcp_addr_is_v4(&a));
	assert_string_equal(pcp_addr_ntop(&a, text, sizeof(text)),
	    "2001:db8::7");
	assert_true(pcp_addr_pton("2001:db8:0:1:1:1:1:1", &a));
	assert_string_equal(pcp_addr_ntop(&a, text, sizeof(text)),
	    "2001:db8:0:1:1:1:1:1");		/* RFC 5952 §4.2.2 */
	assert_null(pcp_addr_ntop(&a, text, 4));
	assert_false(pcp_addr_pton("not-an-address", &a));
	assert_false(pcp_addr_pton("1.2.3.256", &a));
	/* "any": :: and ::ffff:0:0 */
	assert_true(pcp_addr_pton("::", &a));
	assert_true(pcp_addr_is_any(&a));
	assert_true(pcp_addr_pton("0.0.0.0", &a));
	assert_true(pcp_addr_is_any(&a));
	assert_true(pcp_addr_pton("::1", &a));
	assert_false(pcp_addr_is_any(&a));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_map_request_vector_decodes),
		cmocka_unit_test(test_map_request_vector_encodes),
		cmocka_unit_test(test_map_response_vector),
		cmocka_unit_test(test_error_reply_vector),
		cmocka_unit_test(test_error_reply_copies_request),
		cmocka_unit_test(test_error_reply_edges),
		cmocka_unit_test(test_malformed_table),
		cmocka_unit_test(test_kept_options),
		cmocka_unit_test(test_description_utf8),
		cmocka_unit_test(test_round_trips),
		cmocka_unit_test(test_round_trip_relayed_opcode),
		cmocka_unit_test(test_msg_equal_discriminates),
		cmocka_unit_test(test_encode_refuses_oversize),
		cmocka_unit_test(test_response_acceptance),
		cmocka_unit_test(test_response_truncated_error),
		cmocka_unit_test(test_response_options_never_fail),
		cmocka_unit_test(test_names),
		cmocka_unit_test(test_addresses),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
