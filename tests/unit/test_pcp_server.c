/*
 * test_pcp_server.c - the PCP server front-end's pure layer: what it drops,
 * what it answers at once (exact bytes), what it submits to the core (every
 * struct map_req field), and the replies it builds from the core's results.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "map.h"
#include "map_err.h"
#include "pcp_server.h"
#include "pcp_wire.h"
#include "policy.h"

#define EPOCH		0x01020304u

/* ::ffff:192.168.1.2, the requesting client */
static const struct in6_addr client_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 2 } };
/* ::ffff:192.168.1.50, a third party */
static const struct in6_addr third_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 50 } };
/* ::ffff:203.0.113.7, the outermost external address */
static const struct in6_addr ext_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7 } };
/* ::ffff:0.0.0.0, IPv4 "any" (§5) */
static const struct in6_addr any4 = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0 } };
/* 2001:db8::7 */
static const struct in6_addr v6_ip = { .s6_addr = {
	0x20, 0x01, 0x0d, 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 7 } };
static const uint8_t nonce[PCP_NONCE_SIZE] = {
	1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12 };

static const struct pcp_server_conf conf_deny = { .third_party_allowed = false };
static const struct pcp_server_conf conf_allow = { .third_party_allowed = true };
static const struct pcp_server_conf conf_natpmp = { .natpmp = true };
/* RFC 7648 §3.4.2: a relay is configured (relay_unknown, an upstream) */
static const struct pcp_server_conf conf_relay = { .relay_unknown = true };
/* pcp = no, natpmp = yes */
static const struct pcp_server_conf conf_pcp_off = { .natpmp = true,
    .pcp_off = true };

/* Static: struct pcp_msg is kilobytes. */
static struct pcp_msg msg, resp;
static struct pcp_server_req out;

/* ---- building requests ---- */

/* A MAP request from client_ip: TCP 8080, suggested 8080, any address. */
static void
map_base(struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->opcode = PCP_OP_MAP;
	m->lifetime = 3600;
	m->client_addr = client_ip;
	memcpy(m->nonce, nonce, sizeof(nonce));
	m->protocol = MAP_PROTO_TCP;
	m->internal_port = 8080;
	m->ext_port = 8080;
	m->ext_addr = any4;
}

static void
map_description(struct pcp_msg *m, const char *text, size_t len)
{
	m->has_description = true;
	m->description_len = (uint16_t)len;
	memcpy(m->description, text, len);
}

static void
map_raw_option(struct pcp_msg *m, uint8_t code, const uint8_t *data,
    uint16_t len)
{
	m->raw[m->n_raw].code = code;
	m->raw[m->n_raw].len = len;
	m->raw[m->n_raw].data_off = m->raw_data_len;
	memcpy(m->raw_data + m->raw_data_len, data, len);
	m->raw_data_len += len;
	m->n_raw++;
}

static size_t
encode(const struct pcp_msg *m, uint8_t *buf)
{
	size_t n = pcp_encode(m, buf, PCP_MAX_SIZE);

	assert_true(n >= PCP_HDR_SIZE);
	return n;
}

/* Every reply: within 1100 octets, a multiple of 4 (§7, §8.2). */
static void
check_size(size_t n)
{
	assert_true(n >= PCP_HDR_SIZE);
	assert_true(n <= PCP_MAX_SIZE);
	assert_int_equal(n % 4, 0);
}

/*
 * The §8.2 error layout, built here independently of the codec: the
 * request copied (at most 1100, zero-padded to 4 and to 24), version 2, R,
 * result, lifetime, epoch; octets 12..23 the request's when it did not
 * parse, zero when it did.
 */
static size_t
expect_error(const uint8_t *req, size_t len, uint8_t result,
    uint32_t lifetime, uint32_t epoch, int parsed, uint8_t *exp)
{
	size_t n = len > PCP_MAX_SIZE ? PCP_MAX_SIZE : len;
	size_t total = (n + 3) & ~(size_t)3;

	if (total < PCP_HDR_SIZE)
		total = PCP_HDR_SIZE;
	memset(exp, 0, total);
	memcpy(exp, req, n);
	exp[0] = PCP_VERSION;
	exp[1] = req[1] | PCP_R_BIT;
	exp[2] = 0;
	exp[3] = result;
	exp[4] = (uint8_t)(lifetime >> 24);
	exp[5] = (uint8_t)(lifetime >> 16);
	exp[6] = (uint8_t)(lifetime >> 8);
	exp[7] = (uint8_t)lifetime;
	exp[8] = (uint8_t)(epoch >> 24);
	exp[9] = (uint8_t)(epoch >> 16);
	exp[10] = (uint8_t)(epoch >> 8);
	exp[11] = (uint8_t)epoch;
	if (parsed)
		memset(exp + 12, 0, 12);
	return total;
}

/* ---- DROP ---- */

static void
test_drops(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	size_t n;

	(void)state;
	memset(buf, 0, sizeof(buf));
	/* empty, 1 octet (§8.2: fewer than 2) */
	assert_int_equal(pcp_server_handle(&conf_deny, buf, 0, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	buf[0] = PCP_VERSION;
	assert_int_equal(pcp_server_handle(&conf_deny, buf, 1, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	assert_int_equal(pcp_server_handle(&conf_deny, NULL, 60, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	/* R bit set: a response, never answered (§8.2) */
	map_base(&msg);
	n = encode(&msg, buf);
	buf[1] |= PCP_R_BIT;
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	assert_int_equal(out.reply_len, 0);
	/* version 2, shorter than 24 (§8.2) */
	buf[1] = PCP_OP_ANNOUNCE;
	assert_int_equal(pcp_server_handle(&conf_deny, buf, 20, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	/* an ANNOUNCE response (our own multicast coming back) */
	n = pcp_server_announce(EPOCH, buf, sizeof(buf));
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
}

/* ---- REPLY_NOW, table-driven ---- */

enum mutation {
	MUT_VERSION_1,
	MUT_VERSION_3,
	MUT_LEN_NOT_4,
	MUT_LEN_OVER_1100,
	MUT_ADDRESS_MISMATCH,
	MUT_OPCODE_5,
	MUT_OPCODE_AUTH,
	MUT_UNKNOWN_MANDATORY_OPT,
	MUT_PREFER_FAILURE_PORT_0,
	MUT_DUPLICATE_THIRD_PARTY,
	MUT_THIRD_PARTY_IS_SOURCE,
	MUT_THIRD_PARTY_ID_ALONE,
	MUT_PROTO_0_PORT,
	MUT_SHORT_MAP,
	MUT_PEER_LOOPBACK,
	MUT_PEER_FAMILY,
	MUT_PEER_PREFER_FAILURE,
	MUT_PEER_SCTP,
	MUT_PROTO_SCTP,
	MUT_PROTO_0_DMZ,
	MUT_ALL_PORTS,
	MUT_ALL_PORTS_DELETE,
	MUT_THIRD_PARTY_DENIED,
	MUT_THIRD_PARTY_ID_ALLOWED,
	MUT_FILTER,
	MUT_FILTER_AFTER_CLEAR,
};

struct reply_case {
	const char		*name;
	enum mutation		 mut;
	const struct pcp_server_conf *conf;
	uint8_t			 result;
	uint32_t		 lifetime;
	int			 parsed;	/* reserved octets zeroed */
};

static const struct reply_case reply_cases[] = {
	{ "version 1 (never valid)", MUT_VERSION_1, &conf_deny,
	    PCP_UNSUPP_VERSION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "version 3", MUT_VERSION_3, &conf_deny,
	    PCP_UNSUPP_VERSION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "length not a multiple of 4", MUT_LEN_NOT_4, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	{ "longer than 1100", MUT_LEN_OVER_1100, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	{ "MAP shorter than its body", MUT_SHORT_MAP, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	{ "client IP != source", MUT_ADDRESS_MISMATCH, &conf_deny,
	    PCP_ADDRESS_MISMATCH, PCP_LIFETIME_LONG_ERR, 0 },
	{ "unknown opcode", MUT_OPCODE_5, &conf_deny,
	    PCP_UNSUPP_OPCODE, PCP_LIFETIME_LONG_ERR, 0 },
	{ "AUTHENTICATION opcode", MUT_OPCODE_AUTH, &conf_deny,
	    PCP_UNSUPP_OPCODE, PCP_LIFETIME_LONG_ERR, 0 },
	{ "unknown mandatory option", MUT_UNKNOWN_MANDATORY_OPT, &conf_deny,
	    PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 0 },
	/* RFC 7648 §3.4.2: with a relay, unknown mandatory options in MAP
	   are still refused (pcp_server_relay_flags), AUTHENTICATION is
	   hop-by-hop and never relayed (RFC 7652) */
	{ "unknown mandatory option, relaying", MUT_UNKNOWN_MANDATORY_OPT,
	    &conf_relay, PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "AUTHENTICATION opcode, relaying", MUT_OPCODE_AUTH, &conf_relay,
	    PCP_UNSUPP_OPCODE, PCP_LIFETIME_LONG_ERR, 0 },
	{ "PREFER_FAILURE, port 0", MUT_PREFER_FAILURE_PORT_0, &conf_deny,
	    PCP_MALFORMED_OPTION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "THIRD_PARTY twice", MUT_DUPLICATE_THIRD_PARTY, &conf_allow,
	    PCP_MALFORMED_OPTION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "THIRD_PARTY == source", MUT_THIRD_PARTY_IS_SOURCE, &conf_allow,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	{ "THIRD_PARTY_ID alone", MUT_THIRD_PARTY_ID_ALONE, &conf_allow,
	    PCP_THIRD_PARTY_MISSING_OPTION, PCP_LIFETIME_LONG_ERR, 0 },
	{ "protocol 0, port 80", MUT_PROTO_0_PORT, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	/* §12.3: an invalid remote peer is MALFORMED_REQUEST */
	{ "PEER to 127.0.0.1", MUT_PEER_LOOPBACK, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 1 },
	{ "PEER to an IPv6 peer from IPv4", MUT_PEER_FAMILY, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 1 },
	/* §12.1: PREFER_FAILURE in PEER MUST be MALFORMED_REQUEST (codec) */
	{ "PEER with PREFER_FAILURE", MUT_PEER_PREFER_FAILURE, &conf_deny,
	    PCP_MALFORMED_REQUEST, PCP_LIFETIME_LONG_ERR, 0 },
	{ "PEER for SCTP", MUT_PEER_SCTP, &conf_deny,
	    PCP_UNSUPP_PROTOCOL, PCP_LIFETIME_LONG_ERR, 1 },
	{ "SCTP", MUT_PROTO_SCTP, &conf_deny,
	    PCP_UNSUPP_PROTOCOL, PCP_LIFETIME_LONG_ERR, 1 },
	{ "DMZ (protocol 0, port 0)", MUT_PROTO_0_DMZ, &conf_deny,
	    PCP_UNSUPP_PROTOCOL, PCP_LIFETIME_LONG_ERR, 1 },
	{ "all TCP ports", MUT_ALL_PORTS, &conf_deny,
	    PCP_UNSUPP_PROTOCOL, PCP_LIFETIME_LONG_ERR, 1 },
	{ "delete all TCP ports", MUT_ALL_PORTS_DELETE, &conf_deny,
	    PCP_UNSUPP_PROTOCOL, PCP_LIFETIME_LONG_ERR, 1 },
	{ "THIRD_PARTY denied", MUT_THIRD_PARTY_DENIED, &conf_deny,
	    PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 1 },
	{ "THIRD_PARTY_ID", MUT_THIRD_PARTY_ID_ALLOWED, &conf_allow,
	    PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 1 },
	{ "FILTER", MUT_FILTER, &conf_deny,
	    PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 1 },
	{ "FILTER clear, then a FILTER", MUT_FILTER_AFTER_CLEAR, &conf_deny,
	    PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR, 1 },
};

/* Apply a mutation to a MAP request; returns the packet length. */
static size_t
build_case(enum mutation mut, uint8_t *buf)
{
	static const uint8_t opt99[4] = { 1, 2, 3, 4 };
	static const uint8_t tpid[4] = { 0xde, 0xad, 0xbe, 0xef };
	size_t n;

	map_base(&msg);
	switch (mut) {
	case MUT_UNKNOWN_MANDATORY_OPT:
		map_raw_option(&msg, 99, opt99, sizeof(opt99));
		break;
	case MUT_PREFER_FAILURE_PORT_0:
		msg.ext_port = 0;
		msg.prefer_failure = true;
		break;
	case MUT_THIRD_PARTY_IS_SOURCE:
		msg.has_third_party = true;
		msg.third_party = client_ip;
		break;
	case MUT_THIRD_PARTY_ID_ALONE:
		msg.has_third_party_id = true;
		msg.third_party_id_len = sizeof(tpid);
		memcpy(msg.third_party_id, tpid, sizeof(tpid));
		break;
	case MUT_THIRD_PARTY_ID_ALLOWED:
		msg.has_third_party = true;
		msg.third_party = third_ip;
		msg.has_third_party_id = true;
		msg.third_party_id_len = sizeof(tpid);
		memcpy(msg.third_party_id, tpid, sizeof(tpid));
		break;
	case MUT_PROTO_0_PORT:
		msg.protocol = 0;
		break;
	case MUT_PEER_LOOPBACK:
	case MUT_PEER_FAMILY:
	case MUT_PEER_PREFER_FAILURE:
	case MUT_PEER_SCTP:
		msg.opcode = PCP_OP_PEER;
		msg.peer_port = 443;
		msg.peer_addr = ext_ip;
		msg.peer_addr.s6_addr[12] = 127;
		if (mut == MUT_PEER_FAMILY)
			msg.peer_addr = v6_ip;
		if (mut == MUT_PEER_PREFER_FAILURE || mut == MUT_PEER_SCTP)
			msg.peer_addr = ext_ip;
		msg.prefer_failure = mut == MUT_PEER_PREFER_FAILURE;
		if (mut == MUT_PEER_SCTP)
			msg.protocol = 132;
		break;
	case MUT_PROTO_SCTP:
		msg.protocol = 132;
		break;
	case MUT_PROTO_0_DMZ:
		msg.protocol = 0;
		msg.internal_port = 0;
		msg.ext_port = 0;
		break;
	case MUT_ALL_PORTS:
		msg.internal_port = 0;
		break;
	case MUT_ALL_PORTS_DELETE:
		msg.internal_port = 0;
		msg.ext_port = 0;
		msg.lifetime = 0;
		break;
	case MUT_THIRD_PARTY_DENIED:
	case MUT_DUPLICATE_THIRD_PARTY:
		msg.has_third_party = true;
		msg.third_party = third_ip;
		break;
	case MUT_FILTER:
		msg.n_filters = 1;
		msg.filters[0].prefix_len = 128;
		msg.filters[0].remote_port = 443;
		msg.filters[0].remote_addr = ext_ip;
		break;
	case MUT_FILTER_AFTER_CLEAR:
		msg.n_filters = 2;
		msg.filters[0].prefix_len = 0;
		msg.filters[1].prefix_len = 120;
		msg.filters[1].remote_addr = ext_ip;
		break;
	default:
		break;
	}
	n = encode(&msg, buf);
	switch (mut) {
	case MUT_VERSION_1:
		buf[0] = 1;
		break;
	case MUT_VERSION_3:
		buf[0] = 3;
		break;
	case MUT_LEN_NOT_4:
		buf[n++] = 0;
		break;
	case MUT_LEN_OVER_1100:
		memset(buf + n, 0, PCP_MAX_SIZE + 4 - n);
		n = PCP_MAX_SIZE + 4;
		break;
	case MUT_SHORT_MAP:
		n = PCP_HDR_SIZE + 32;
		break;
	case MUT_ADDRESS_MISMATCH:
		buf[23] ^= 0xff;
		break;
	case MUT_OPCODE_5:
		buf[1] = 5;
		break;
	case MUT_OPCODE_AUTH:
		buf[1] = PCP_OP_AUTHENTICATION;
		break;
	case MUT_DUPLICATE_THIRD_PARTY:
		/* a second copy of the THIRD_PARTY option (20 octets) */
		memcpy(buf + n, buf + PCP_MAP_MSG_SIZE, 20);
		n += 20;
		break;
	default:
		break;
	}
	return n;
}

static void
test_reply_now(void **state)
{
	/* room for the 1104-octet case */
	static uint8_t buf[PCP_MAX_SIZE + 8], exp[PCP_MAX_SIZE + 8];
	const struct reply_case *c;
	size_t i, n, elen;

	(void)state;
	for (i = 0; i < sizeof(reply_cases) / sizeof(reply_cases[0]); i++) {
		c = &reply_cases[i];
		print_message("case: %s\n", c->name);
		n = build_case(c->mut, buf);
		assert_int_equal(pcp_server_handle(c->conf, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_REPLY);
		assert_int_equal(out.result, c->result);
		elen = expect_error(buf, n, c->result, c->lifetime, EPOCH,
		    c->parsed, exp);
		check_size(out.reply_len);
		assert_int_equal(out.reply_len, elen);
		assert_memory_equal(out.reply, exp, elen);
		/* a PCP client accepts it (§8.3) */
		assert_true(pcp_decode_response(out.reply, out.reply_len,
		    &resp));
		assert_int_equal(resp.result, c->result);
		assert_int_equal(resp.epoch, EPOCH);
	}
}

/* ---- versions 0, 1, 3 and NAT-PMP ---- */

/* NAT-PMP map TCP request (RFC 6886 §3.3): 12 octets */
static const uint8_t natpmp_map_tcp[] = {
	0x00, 0x02, 0x00, 0x00, 0x1f, 0x90, 0x1f, 0x90,
	0x00, 0x00, 0x0e, 0x10,
};
/* NAT-PMP external address request (RFC 6886 §3.2): 2 octets */
static const uint8_t natpmp_addr[] = { 0x00, 0x00 };

static void
test_natpmp_without_handler(void **state)
{
	/* RFC 6887 App. A, §9: UNSUPP_VERSION, version 2 */
	static const uint8_t exp_map[PCP_HDR_SIZE] = {
		0x02, 0x82, 0x00, 0x01,		/* NAT-PMP result 1 */
		0x00, 0x00, 0x07, 0x08,		/* lifetime 1800 */
		0x01, 0x02, 0x03, 0x04,		/* epoch */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t exp_addr[PCP_HDR_SIZE] = {
		0x02, 0x80, 0x00, 0x01,
		0x00, 0x00, 0x07, 0x08,
		0x01, 0x02, 0x03, 0x04,
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};

	(void)state;
	assert_int_equal(pcp_server_handle(&conf_deny, natpmp_map_tcp,
	    sizeof(natpmp_map_tcp), &client_ip, 5000, EPOCH, &out),
	    PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_VERSION);
	assert_int_equal(out.reply_len, sizeof(exp_map));
	assert_memory_equal(out.reply, exp_map, sizeof(exp_map));
	assert_int_equal(pcp_server_handle(&conf_deny, natpmp_addr,
	    sizeof(natpmp_addr), &client_ip, 5000, EPOCH, &out),
	    PCP_SERVER_REPLY);
	assert_int_equal(out.reply_len, sizeof(exp_addr));
	assert_memory_equal(out.reply, exp_addr, sizeof(exp_addr));
	/* NAT-PMP's view (RFC 6886 §3.5): 16-bit result at octet 2 is 1,
	   opcode 128 + op */
	assert_int_equal((out.reply[2] << 8) | out.reply[3], 1);
	assert_int_equal(out.reply[1], 128);
	/* a NAT-PMP response (op >= 128) is dropped like any R-bit packet */
	{
		uint8_t r[] = { 0x00, 0x80, 0x00, 0x00 };

		assert_int_equal(pcp_server_handle(&conf_deny, r, sizeof(r),
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_DROP);
	}
}

static void
test_natpmp_with_handler(void **state)
{
	uint8_t one[] = { 0x00 };

	(void)state;
	assert_int_equal(pcp_server_handle(&conf_natpmp, natpmp_map_tcp,
	    sizeof(natpmp_map_tcp), &client_ip, 5000, EPOCH, &out),
	    PCP_SERVER_NATPMP);
	assert_int_equal(out.reply_len, 0);
	assert_int_equal(pcp_server_handle(&conf_natpmp, natpmp_addr,
	    sizeof(natpmp_addr), &client_ip, 5000, EPOCH, &out),
	    PCP_SERVER_NATPMP);
	/* whatever version 0 holds is the NAT-PMP front-end's to judge */
	assert_int_equal(pcp_server_handle(&conf_natpmp, one, sizeof(one),
	    &client_ip, 5000, EPOCH, &out), PCP_SERVER_NATPMP);
	/* PCP still served next to it */
	{
		uint8_t buf[PCP_MAX_SIZE];
		size_t n;

		map_base(&msg);
		n = encode(&msg, buf);
		assert_int_equal(pcp_server_handle(&conf_natpmp, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_SUBMIT);
		buf[0] = 1;
		assert_int_equal(pcp_server_handle(&conf_natpmp, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_REPLY);
		assert_int_equal(out.result, PCP_UNSUPP_VERSION);
		/* pcp = no: a PCP request goes to the NAT-PMP front-end too,
		   which answers as a NAT-PMP-only server (RFC 6887 §9) */
		buf[0] = PCP_VERSION;
		assert_int_equal(pcp_server_handle(&conf_pcp_off, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_NATPMP);
	}
}

/* ---- ANNOUNCE ---- */

static void
test_announce(void **state)
{
	static const uint8_t exp[PCP_HDR_SIZE] = {
		0x02, 0x80, 0x00, 0x00,		/* R, ANNOUNCE, SUCCESS */
		0x00, 0x00, 0x00, 0x00,		/* lifetime 0 */
		0x01, 0x02, 0x03, 0x04,		/* our epoch */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	};
	static const uint8_t opt200[4] = { 9, 9, 9, 9 };
	uint8_t buf[PCP_MAX_SIZE];
	size_t n;

	(void)state;
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	msg.client_addr = client_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_SUCCESS);
	assert_int_equal(out.reply_len, sizeof(exp));
	assert_memory_equal(out.reply, exp, sizeof(exp));
	/* §14.1.1: a lifetime in the request is ignored; an optional
	   option we do not process is not echoed (§7.3) */
	msg.lifetime = 77;
	map_raw_option(&msg, 200, opt200, sizeof(opt200));
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.reply_len, sizeof(exp));
	assert_memory_equal(out.reply, exp, sizeof(exp));
	/* ANNOUNCE with a source mismatch still gets ADDRESS_MISMATCH */
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &third_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_ADDRESS_MISMATCH);
	/* the unsolicited one is the same message */
	n = pcp_server_announce(EPOCH, buf, sizeof(buf));
	assert_int_equal(n, sizeof(exp));
	assert_memory_equal(buf, exp, sizeof(exp));
	assert_int_equal(pcp_server_announce(EPOCH, buf, PCP_HDR_SIZE - 1), 0);
}

/* ---- RELAY (RFC 7648 §3.4.2, P-16..P-19) ---- */

/* A request with opcode op: the header from client_ip, lifetime 600, and
   body_len octets of an opaque body (a multiple of 4). */
static size_t
unknown_request(uint8_t op, size_t body_len, uint8_t *buf)
{
	size_t i;

	memset(buf, 0, PCP_HDR_SIZE + body_len);
	buf[0] = PCP_VERSION;
	buf[1] = op;
	buf[6] = 0x02;			/* lifetime 600 */
	buf[7] = 0x58;
	memcpy(buf + 8, client_ip.s6_addr, sizeof(client_ip.s6_addr));
	for (i = 0; i < body_len; i++)
		buf[PCP_HDR_SIZE + i] = (uint8_t)(0xa0 + i);
	return PCP_HDR_SIZE + body_len;
}

static void
test_relay_unknown(void **state)
{
	static const uint8_t ops[] = { 4, 31, 64, 100, 126, 127 };
	uint8_t buf[PCP_MAX_SIZE], exp[PCP_MAX_SIZE];
	size_t i, n, elen;

	(void)state;
	for (i = 0; i < sizeof(ops); i++) {
		/* P-16: relayed by default, the packet left as it came */
		n = unknown_request(ops[i], 8, buf);
		assert_int_equal(pcp_server_handle(&conf_relay, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_RELAY);
		assert_int_equal(out.reply_len, 0);
		/* P-17, P-18: relaying off -> UNSUPP_OPCODE, the §8.2 copy */
		assert_int_equal(pcp_server_handle(&conf_deny, buf, n,
		    &client_ip, 5000, EPOCH, &out), PCP_SERVER_REPLY);
		assert_int_equal(out.result, PCP_UNSUPP_OPCODE);
		elen = expect_error(buf, n, PCP_UNSUPP_OPCODE,
		    PCP_LIFETIME_LONG_ERR, EPOCH, 0, exp);
		assert_int_equal(out.reply_len, elen);
		assert_memory_equal(out.reply, exp, elen);
	}
	/* no body at all is a valid unknown request too */
	n = unknown_request(100, 0, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_RELAY);
	/* options inside it are the unknown opcode's, uninterpreted: even
	   an unknown mandatory one (code 99) goes as it is */
	n = unknown_request(100, 8, buf);
	buf[PCP_HDR_SIZE] = 99;
	buf[PCP_HDR_SIZE + 3] = 4;
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_RELAY);
}

/* The §8.2 header checks come first: they are this server's to make. */
static void
test_relay_header_checks(void **state)
{
	uint8_t buf[PCP_MAX_SIZE + 4];
	size_t n;

	(void)state;
	n = unknown_request(100, 8, buf);
	/* the Client IP field is not the source: ADDRESS_MISMATCH */
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &third_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_ADDRESS_MISMATCH);
	/* not a multiple of 4, longer than 1100: MALFORMED_REQUEST */
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n - 2,
	    &client_ip, 5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_MALFORMED_REQUEST);
	memset(buf + n, 0, sizeof(buf) - n);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, PCP_MAX_SIZE + 4,
	    &client_ip, 5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_MALFORMED_REQUEST);
	/* version 1: UNSUPP_VERSION, not relayed */
	buf[0] = 1;
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_VERSION);
	/* version 0 without NAT-PMP: UNSUPP_VERSION as well */
	buf[0] = PCP_NATPMP_VERSION;
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_VERSION);
	/* a response (R set) is dropped, never relayed (§8.2) */
	n = unknown_request(100 | PCP_R_BIT, 8, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
	/* shorter than a header: dropped */
	assert_int_equal(pcp_server_handle(&conf_relay, buf, 20, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_DROP);
}

/* Known opcodes never reach the relay, whatever they carry. */
static void
test_relay_known_opcodes(void **state)
{
	static const uint8_t opt99[4] = { 1, 2, 3, 4 };
	static const uint8_t opt200[4] = { 9, 9, 9, 9 };
	uint8_t buf[PCP_MAX_SIZE];
	size_t n;

	(void)state;
	/* P-19: ANNOUNCE is answered here, SUCCESS with our epoch */
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	msg.client_addr = client_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_SUCCESS);
	assert_int_equal(out.reply_len, PCP_HDR_SIZE);
	/* ... and so is one with an unknown optional option */
	map_raw_option(&msg, 200, opt200, sizeof(opt200));
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_SUCCESS);
	/* ANNOUNCE with an unknown mandatory option: UNSUPP_OPTION (§7.3),
	   not relayed */
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	msg.client_addr = client_ip;
	map_raw_option(&msg, 99, opt99, sizeof(opt99));
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPTION);
	/* AUTHENTICATION (RFC 7652), even with a full body: UNSUPP_OPCODE */
	n = unknown_request(PCP_OP_AUTHENTICATION, 8, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPCODE);
	/* MAP goes to the core as ever */
	map_base(&msg);
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_SUBMIT);
	/* an unknown optional option in MAP is ignored (§7.3), not relayed */
	map_raw_option(&msg, 200, opt200, sizeof(opt200));
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_relay, buf, n, &client_ip,
	    5000, EPOCH, &out), PCP_SERVER_SUBMIT);
}

/* pcp_server_refuse(): our error over an accepted request (the relay is
   full, the upstream unreachable). */
static void
test_refuse(void **state)
{
	uint8_t buf[PCP_MAX_SIZE], exp[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	size_t n, elen;

	(void)state;
	n = unknown_request(100, 8, buf);
	/* §7.4: NO_RESOURCES and NETWORK_FAILURE are short-lived */
	elen = expect_error(buf, n, PCP_NO_RESOURCES, PCP_LIFETIME_SHORT_ERR,
	    EPOCH, 1, exp);
	assert_int_equal(pcp_server_refuse(buf, n, PCP_NO_RESOURCES, EPOCH,
	    rep, sizeof(rep)), elen);
	assert_memory_equal(rep, exp, elen);
	elen = expect_error(buf, n, PCP_NETWORK_FAILURE,
	    PCP_LIFETIME_SHORT_ERR, EPOCH, 1, exp);
	assert_int_equal(pcp_server_refuse(buf, n, PCP_NETWORK_FAILURE, EPOCH,
	    rep, sizeof(rep)), elen);
	assert_memory_equal(rep, exp, elen);
	/* too little room, or nothing to copy */
	assert_int_equal(pcp_server_refuse(buf, n, PCP_NO_RESOURCES, EPOCH,
	    rep, n - 4), 0);
	assert_int_equal(pcp_server_refuse(NULL, n, PCP_NO_RESOURCES, EPOCH,
	    rep, sizeof(rep)), 0);
}

/* ---- SUBMIT ---- */

static void
test_submit_create(void **state)
{
	static const uint8_t opt200[3] = { 7, 7, 7 };
	uint8_t buf[PCP_MAX_SIZE];
	struct map_req *r = &out.req;
	size_t n;

	(void)state;
	/* every option we process, plus one we do not (200); PORT_SET
	   cannot come with PREFER_FAILURE (RFC 7753 §4.2), see below */
	map_base(&msg);
	msg.has_third_party = true;
	msg.third_party = third_ip;
	msg.prefer_failure = true;
	msg.n_filters = 1;		/* prefix 0: "no filters" (§13.3) */
	map_description(&msg, "web", 3);
	map_raw_option(&msg, 200, opt200, sizeof(opt200));
	n = encode(&msg, buf);

	/* denied by default: UNSUPP_OPTION (§13.1) */
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    40000, EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPTION);

	assert_int_equal(pcp_server_handle(&conf_allow, buf, n, &client_ip,
	    40000, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(out.reply_len, 0);
	assert_int_equal(r->origin, MAP_ORIGIN_PCP);
	assert_memory_equal(&r->requester, &client_ip, 16);
	assert_int_equal(r->requester_port, 40000);
	assert_memory_equal(&r->internal_addr, &third_ip, 16);
	assert_int_equal(r->protocol, MAP_PROTO_TCP);
	assert_int_equal(r->internal_port, 8080);
	assert_int_equal(r->ext_port, 8080);
	assert_memory_equal(&r->ext_addr, &any4, 16);
	assert_int_equal(r->lifetime, 3600);
	assert_memory_equal(r->nonce, nonce, MAP_NONCE_SIZE);
	assert_int_equal(r->flags, MAP_F_THIRD_PARTY | MAP_F_PREFER_FAILURE |
	    MAP_F_HAS_DESCRIPTION);
	assert_string_equal(r->description, "web");

	/* PORT_SET (optional, RFC 7753) is ignored: one port is mapped */
	map_base(&msg);
	msg.has_port_set = true;
	msg.port_set.size = 4;
	msg.port_set.first_internal_port = 8080;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    40000, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(r->internal_port, 8080);
	assert_int_equal(r->flags, 0);
}

static void
test_submit_plain_refresh_delete(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct map_req *r = &out.req;
	size_t n;

	(void)state;
	/* plain create: internal address = source, no flags */
	map_base(&msg);
	msg.protocol = MAP_PROTO_UDP;
	msg.ext_port = 0;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1234, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_memory_equal(&r->internal_addr, &client_ip, 16);
	assert_int_equal(r->protocol, MAP_PROTO_UDP);
	assert_int_equal(r->ext_port, 0);
	assert_int_equal(r->flags, 0);
	assert_string_equal(r->description, "");

	/* refresh (§11.2.1): same nonce, suggesting what was assigned */
	msg.ext_port = 50000;
	msg.ext_addr = ext_ip;
	msg.lifetime = 7200;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1234, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(r->ext_port, 50000);
	assert_memory_equal(&r->ext_addr, &ext_ip, 16);
	assert_int_equal(r->lifetime, 7200);
	assert_memory_equal(r->nonce, nonce, MAP_NONCE_SIZE);

	/* delete (§15): lifetime 0, suggested port 0 and "any" */
	msg.lifetime = 0;
	msg.ext_port = 0;
	msg.ext_addr = any4;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1234, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(r->flags, MAP_F_DELETE);
	assert_int_equal(r->lifetime, 0);

	/* IPv6 client */
	map_base(&msg);
	msg.client_addr = v6_ip;
	memset(&msg.ext_addr, 0, sizeof(msg.ext_addr));
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &v6_ip,
	    1234, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_memory_equal(&r->requester, &v6_ip, 16);
	assert_memory_equal(&r->internal_addr, &v6_ip, 16);
}

static void
test_submit_descriptions(void **state)
{
	char text[PCP_DESCRIPTION_MAX];
	uint8_t buf[PCP_MAX_SIZE];
	struct map_req *r = &out.req;
	size_t n;

	(void)state;
	/* empty: valid, erases the stored text (RFC 7220 §4) */
	map_base(&msg);
	map_description(&msg, "", 0);
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(r->flags, MAP_F_HAS_DESCRIPTION);
	assert_string_equal(r->description, "");

	/* invalid UTF-8: not stored, not flagged */
	map_base(&msg);
	map_description(&msg, "a\xff", 2);
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(r->flags, 0);
	assert_string_equal(r->description, "");

	/* the maximum, 1016 ASCII octets: truncated to 128 */
	memset(text, 'x', sizeof(text));
	map_base(&msg);
	map_description(&msg, text, sizeof(text));
	n = encode(&msg, buf);
	assert_int_equal(n, PCP_MAP_MSG_SIZE + PCP_OPT_HDR_SIZE +
	    PCP_DESCRIPTION_MAX);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(strlen(r->description), MAP_DESCRIPTION_MAX);

	/* a 2-octet character across octet 128: cut before it */
	memset(text, 'y', 127);
	text[127] = (char)0xc3;		/* U+00E9 */
	text[128] = (char)0xa9;
	text[129] = 'z';
	map_base(&msg);
	map_description(&msg, text, 130);
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(strlen(r->description), 127);
	/* exactly 128 with the character whole */
	memset(text, 'y', 126);
	text[126] = (char)0xc3;
	text[127] = (char)0xa9;
	text[128] = 'z';
	map_base(&msg);
	map_description(&msg, text, 129);
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf_deny, buf, n, &client_ip,
	    1, EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_int_equal(strlen(r->description), 128);
	assert_int_equal((uint8_t)r->description[127], 0xa9);
}

/* ---- replies ---- */

static size_t
submit(const struct pcp_server_conf *conf, uint8_t *buf)
{
	size_t n = encode(&msg, buf);

	assert_int_equal(pcp_server_handle(conf, buf, n, &client_ip, 40000,
	    EPOCH, &out), PCP_SERVER_SUBMIT);
	return n;
}

static void
result_ok(struct map_result *res, uint32_t lifetime)
{
	memset(res, 0, sizeof(*res));
	res->err = MAP_OK;
	res->ext_addr = ext_ip;
	res->ext_port = 50000;
	res->lifetime = lifetime;
	res->upstream_result = -1;
}

static void
test_reply_success_exact(void **state)
{
	static const uint8_t exp[] = {
		0x02, 0x81, 0x00, 0x00,		/* R, MAP, SUCCESS */
		0x00, 0x00, 0x1c, 0x20,		/* lifetime 7200 */
		0x01, 0x02, 0x03, 0x04,		/* epoch */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,	/* nonce */
		0x06, 0x00, 0x00, 0x00,		/* TCP */
		0x1f, 0x90, 0xc3, 0x50,		/* 8080 -> 50000 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7,
	};
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	struct map_result res;
	size_t n, r;

	(void)state;
	map_base(&msg);
	n = submit(&conf_deny, buf);
	result_ok(&res, 7200);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_int_equal(r, sizeof(exp));
	assert_memory_equal(rep, exp, sizeof(exp));
	/* too small a buffer: nothing */
	assert_int_equal(pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep,
	    sizeof(exp) - 4), 0);
}

/* A PEER from client_ip: UDP 7100 to 203.0.113.7:7200, lifetime 0. */
static void
peer_base(struct pcp_msg *m)
{
	map_base(m);
	m->opcode = PCP_OP_PEER;
	m->protocol = MAP_PROTO_UDP;
	m->internal_port = 7100;
	m->ext_port = 0;
	m->lifetime = 0;
	m->peer_port = 7200;
	m->peer_addr = ext_ip;
}

/* §12: a PEER is submitted with its remote peer; lifetime 0 is no
   delete (§12.1). */
static void
test_submit_peer(void **state)
{
	uint8_t buf[PCP_MAX_SIZE];
	struct map_req *r = &out.req;

	(void)state;
	peer_base(&msg);
	(void)submit(&conf_deny, buf);
	assert_int_equal(r->flags, MAP_F_PEER);
	assert_memory_equal(&r->internal_addr, &client_ip, 16);
	assert_int_equal(r->protocol, MAP_PROTO_UDP);
	assert_int_equal(r->internal_port, 7100);
	assert_int_equal(r->ext_port, 0);
	assert_int_equal(r->lifetime, 0);
	assert_memory_equal(&r->peer_addr, &ext_ip, 16);
	assert_int_equal(r->peer_port, 7200);
	assert_memory_equal(r->nonce, nonce, MAP_NONCE_SIZE);
	/* THIRD_PARTY and DESCRIPTION as for MAP (RFC 6887 §13.1, 7220) */
	msg.has_third_party = true;
	msg.third_party = third_ip;
	map_description(&msg, "call", 4);
	(void)submit(&conf_allow, buf);
	assert_int_equal(r->flags, MAP_F_PEER | MAP_F_THIRD_PARTY |
	    MAP_F_HAS_DESCRIPTION);
	assert_memory_equal(&r->internal_addr, &third_ip, 16);
}

/* ::ffff:192.168.1.3, a LAN host not named by third_party_host */
static const struct in6_addr other_ip = { .s6_addr = {
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 3 } };

/*
 * X-03, §13.1: third_party = allow with third_party_host = 192.168.1.2
 * (client_ip): THIRD_PARTY from it is submitted; from another LAN host it
 * is UNSUPP_OPTION ("from an unauthorised client", MUST), the error
 * echoing the request (§7.3); with deny nobody passes, listed or not.
 */
static void
test_third_party_listed(void **state)
{
	static uint8_t buf[PCP_MAX_SIZE], exp[PCP_MAX_SIZE];
	struct policy_prefix lan = { .addr = { .s6_addr = {
	    0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 192, 168, 1, 0 } },
	    .prefix_len = 96 + 24 };
	struct acl_prefix host = { .addr = client_ip, .prefix_len = 128 };
	struct policy pol;
	struct pcp_server_conf conf = { .third_party_allowed = true,
	    .policy = &pol };
	struct pcp_server_conf deny = { .third_party_allowed = false,
	    .policy = &pol };
	size_t n, elen;

	(void)state;
	memset(&pol, 0, sizeof(pol));
	pol.lan_prefixes = &lan;
	pol.n_lan_prefixes = 1;
	pol.third_party_hosts = &host;
	pol.n_third_party_hosts = 1;

	/* the listed host: MAP and PEER for 192.168.1.50 */
	map_base(&msg);
	msg.has_third_party = true;
	msg.third_party = third_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf, buf, n, &client_ip, 40000,
	    EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_memory_equal(&out.req.requester, &client_ip, 16);
	assert_memory_equal(&out.req.internal_addr, &third_ip, 16);
	assert_int_equal(out.req.flags & MAP_F_THIRD_PARTY,
	    MAP_F_THIRD_PARTY);
	peer_base(&msg);
	msg.has_third_party = true;
	msg.third_party = third_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf, buf, n, &client_ip, 40000,
	    EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_memory_equal(&out.req.internal_addr, &third_ip, 16);

	/* the same deny answers the listed host as before */
	assert_int_equal(pcp_server_handle(&deny, buf, n, &client_ip, 40000,
	    EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPTION);

	/* another LAN host: UNSUPP_OPTION, the request echoed */
	map_base(&msg);
	msg.client_addr = other_ip;
	msg.has_third_party = true;
	msg.third_party = third_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf, buf, n, &other_ip, 40000,
	    EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPTION);
	elen = expect_error(buf, n, PCP_UNSUPP_OPTION, PCP_LIFETIME_LONG_ERR,
	    EPOCH, 1, exp);
	assert_int_equal(out.reply_len, elen);
	assert_memory_equal(out.reply, exp, elen);
	assert_true(pcp_decode_response(out.reply, out.reply_len, &resp));
	assert_true(resp.has_third_party);
	assert_memory_equal(&resp.third_party, &third_ip, 16);
	/* ... and for PEER */
	peer_base(&msg);
	msg.client_addr = other_ip;
	msg.has_third_party = true;
	msg.third_party = third_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf, buf, n, &other_ip, 40000,
	    EPOCH, &out), PCP_SERVER_REPLY);
	assert_int_equal(out.result, PCP_UNSUPP_OPTION);
	/* its own mappings are its business */
	map_base(&msg);
	msg.client_addr = other_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_handle(&conf, buf, n, &other_ip, 40000,
	    EPOCH, &out), PCP_SERVER_SUBMIT);
	assert_memory_equal(&out.req.internal_addr, &other_ip, 16);
}

/* §12.1 response: nonce, protocol, internal port and remote peer copied,
   the assigned (outermost) address and port filled in. */
static void
test_reply_peer(void **state)
{
	static const uint8_t exp[] = {
		0x02, 0x82, 0x00, 0x00,		/* R, PEER, SUCCESS */
		0x00, 0x00, 0x0e, 0x10,		/* lifetime 3600 */
		0x01, 0x02, 0x03, 0x04,		/* epoch */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
		1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12,	/* nonce */
		0x11, 0x00, 0x00, 0x00,		/* UDP */
		0x1b, 0xbc, 0xc3, 0x50,		/* 7100 -> 50000 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7,
		0x1c, 0x20, 0x00, 0x00,		/* remote port 7200 */
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 203, 0, 113, 7,
	};
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE], e[PCP_MAX_SIZE];
	struct map_result res;
	size_t n, r, en;

	(void)state;
	peer_base(&msg);
	n = submit(&conf_deny, buf);
	result_ok(&res, 3600);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_int_equal(r, sizeof(exp));
	assert_memory_equal(rep, exp, sizeof(exp));
	/* §12.3 nonce mismatch: NOT_AUTHORIZED with the core's lifetime
	   (the existing mapping's), the request echoed (§8.2) */
	memset(&res, 0, sizeof(res));
	res.err = MAP_ERR_NOT_AUTHORIZED;
	res.lifetime = 1234;
	res.upstream_result = -1;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	en = expect_error(buf, n, PCP_NOT_AUTHORIZED, 1234, EPOCH, 1, e);
	assert_int_equal(r, en);
	assert_memory_equal(rep, e, en);
	/* an upstream CANNOT_PROVIDE_EXTERNAL is relayed */
	res.err = MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
	res.lifetime = 30;
	res.upstream_result = PCP_CANNOT_PROVIDE_EXTERNAL;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	en = expect_error(buf, n, PCP_CANNOT_PROVIDE_EXTERNAL, 30, EPOCH, 1,
	    e);
	assert_int_equal(r, en);
	assert_memory_equal(rep, e, en);
}

static void
test_reply_success_options(void **state)
{
	static const uint8_t opt200[3] = { 7, 7, 7 };
	char text[PCP_DESCRIPTION_MAX];
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	struct map_result res;
	size_t n, r;

	(void)state;
	memset(text, 'd', sizeof(text));
	map_base(&msg);
	msg.has_third_party = true;
	msg.third_party = third_ip;
	msg.prefer_failure = true;
	msg.n_filters = 1;
	map_description(&msg, text, 900);
	map_raw_option(&msg, 200, opt200, sizeof(opt200));
	n = submit(&conf_allow, buf);
	result_ok(&res, 3000);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	check_size(r);
	assert_true(r < n);
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.opcode, PCP_OP_MAP);
	assert_int_equal(resp.lifetime, 3000);
	assert_int_equal(resp.epoch, EPOCH);
	assert_memory_equal(resp.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(resp.protocol, MAP_PROTO_TCP);
	assert_int_equal(resp.internal_port, 8080);
	assert_int_equal(resp.ext_port, 50000);
	assert_memory_equal(&resp.ext_addr, &ext_ip, 16);
	/* processed options echoed: THIRD_PARTY, PREFER_FAILURE, the
	   prefix-0 FILTER, DESCRIPTION as stored (128 octets) */
	assert_true(resp.has_third_party);
	assert_memory_equal(&resp.third_party, &third_ip, 16);
	assert_true(resp.prefer_failure);
	assert_int_equal(resp.n_filters, 1);
	assert_int_equal(resp.filters[0].prefix_len, 0);
	assert_true(resp.has_description);
	assert_int_equal(resp.description_len, MAP_DESCRIPTION_MAX);
	/* unprocessed ones not (§7.3) */
	assert_int_equal(resp.n_raw, 0);
	assert_int_equal(r, PCP_MAP_MSG_SIZE + 20 + 4 + 24 +
	    PCP_OPT_HDR_SIZE + MAP_DESCRIPTION_MAX);

	/* PORT_SET not processed, not echoed (RFC 7753 §4.4: one port) */
	map_base(&msg);
	msg.has_port_set = true;
	msg.port_set.size = 4;
	msg.port_set.first_internal_port = 8080;
	n = submit(&conf_deny, buf);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	check_size(r);
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_false(resp.has_port_set);
	assert_int_equal(r, PCP_MAP_MSG_SIZE);

	/* invalid UTF-8 description: not echoed (RFC 7220 §4) */
	map_base(&msg);
	map_description(&msg, "\xc3(", 2);
	n = submit(&conf_deny, buf);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	check_size(r);
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_false(resp.has_description);
	assert_int_equal(r, PCP_MAP_MSG_SIZE);
}

static void
test_reply_errors(void **state)
{
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE], exp[PCP_MAX_SIZE];
	struct map_result res;
	size_t n, r, e;

	(void)state;
	/* a policy refusal: NOT_AUTHORIZED, the request echoed with every
	   option, the core's lifetime */
	map_base(&msg);
	msg.has_third_party = true;
	msg.third_party = third_ip;
	map_description(&msg, "\xff\xfe", 2);	/* echoed even invalid */
	n = submit(&conf_allow, buf);
	memset(&res, 0, sizeof(res));
	res.err = MAP_ERR_NOT_AUTHORIZED;
	res.lifetime = 600;
	res.upstream_result = -1;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	e = expect_error(buf, n, PCP_NOT_AUTHORIZED, 600, EPOCH, 1, exp);
	assert_int_equal(r, e);
	assert_memory_equal(rep, exp, e);

	/* no lifetime from the core: the row's class (§7.4) */
	res.err = MAP_ERR_QUOTA;
	res.lifetime = 0;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	e = expect_error(buf, n, PCP_USER_EX_QUOTA, PCP_LIFETIME_SHORT_ERR,
	    EPOCH, 1, exp);
	assert_int_equal(r, e);
	assert_memory_equal(rep, exp, e);

	/* the upstream's code relayed (spec/pcp.md §2.4) */
	res.err = MAP_ERR_NO_RESOURCES;
	res.upstream_result = PCP_USER_EX_QUOTA;
	res.lifetime = 25;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	e = expect_error(buf, n, PCP_USER_EX_QUOTA, 25, EPOCH, 1, exp);
	assert_int_equal(r, e);
	assert_memory_equal(rep, exp, e);
	/* ... with its class when the core gives no lifetime */
	res.err = MAP_ERR_UPSTREAM_PROTOCOL;
	res.upstream_result = PCP_EXCESSIVE_REMOTE_PEERS;
	res.lifetime = 0;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	e = expect_error(buf, n, PCP_EXCESSIVE_REMOTE_PEERS,
	    PCP_LIFETIME_LONG_ERR, EPOCH, 1, exp);
	assert_memory_equal(rep, exp, e);

	/* ADDRESS_MISMATCH / UNSUPP_VERSION upstream describe the proxy's
	   own leg: the table's code instead */
	res.err = MAP_ERR_NETWORK_FAILURE;
	res.upstream_result = PCP_ADDRESS_MISMATCH;
	res.lifetime = 30;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	e = expect_error(buf, n, PCP_NETWORK_FAILURE, 30, EPOCH, 1, exp);
	assert_int_equal(r, e);
	assert_memory_equal(rep, exp, e);
	res.err = MAP_ERR_UPSTREAM_PROTOCOL;
	res.upstream_result = PCP_UNSUPP_VERSION;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_int_equal(rep[3], PCP_NETWORK_FAILURE);

	/* an upstream SUCCESS with a local failure is a failure */
	res.err = MAP_ERR_INTERNAL;
	res.upstream_result = PCP_SUCCESS;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_int_equal(rep[3], PCP_NO_RESOURCES);
	check_size(r);

	/* the largest request: its error copy fits (1100, §8.2) */
	{
		char text[PCP_DESCRIPTION_MAX];

		memset(text, 'q', sizeof(text));
		map_base(&msg);
		msg.n_filters = 1;
		map_description(&msg, text, sizeof(text) - 4);
		n = submit(&conf_deny, buf);
		assert_int_equal(n, PCP_MAX_SIZE);
		res.err = MAP_ERR_CONFLICT;
		res.upstream_result = -1;
		r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep,
		    sizeof(rep));
		assert_int_equal(r, PCP_MAX_SIZE);
		assert_int_equal(rep[3], PCP_CANNOT_PROVIDE_EXTERNAL);
	}
}

static void
test_reply_delete(void **state)
{
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	struct map_result res;
	size_t n, r;

	(void)state;
	map_base(&msg);
	msg.lifetime = 0;
	msg.ext_port = 0;
	msg.ext_addr = any4;
	n = submit(&conf_deny, buf);
	assert_true(out.req.flags & MAP_F_DELETE);

	/* deleted: lifetime 0, suggestion echoed (erratum 3621) even if the
	   core reports the old external address */
	result_ok(&res, 0);
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	check_size(r);
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.lifetime, 0);
	assert_int_equal(resp.ext_port, 0);
	assert_memory_equal(&resp.ext_addr, &any4, 16);
	assert_memory_equal(resp.nonce, nonce, PCP_NONCE_SIZE);
	assert_int_equal(resp.internal_port, 8080);

	/* not there: SUCCESS, lifetime 0 (§15; the table row) */
	memset(&res, 0, sizeof(res));
	res.err = MAP_ERR_NOT_FOUND;
	res.lifetime = 1800;
	res.upstream_result = -1;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_int_equal(resp.result, PCP_SUCCESS);
	assert_int_equal(resp.lifetime, 0);
	assert_int_equal(resp.ext_port, 0);
	assert_int_equal(r, PCP_MAP_MSG_SIZE);

	/* a static mapping cannot be deleted: NOT_AUTHORIZED (§15) */
	res.err = MAP_ERR_NOT_AUTHORIZED;
	r = pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep, sizeof(rep));
	assert_true(pcp_decode_response(rep, r, &resp));
	assert_int_equal(resp.result, PCP_NOT_AUTHORIZED);
	assert_int_equal(resp.lifetime, 1800);
}

static void
test_reply_refuses_foreign_packets(void **state)
{
	uint8_t buf[PCP_MAX_SIZE], rep[PCP_MAX_SIZE];
	struct map_result res;
	size_t n;

	(void)state;
	result_ok(&res, 100);
	memset(&msg, 0, sizeof(msg));
	msg.version = PCP_VERSION;
	msg.opcode = PCP_OP_ANNOUNCE;
	msg.client_addr = client_ip;
	n = encode(&msg, buf);
	assert_int_equal(pcp_server_reply(buf, n, &out.req, &res, EPOCH, rep,
	    sizeof(rep)), 0);
	assert_int_equal(pcp_server_reply(natpmp_map_tcp,
	    sizeof(natpmp_map_tcp), &out.req, &res, EPOCH, rep, sizeof(rep)),
	    0);
	assert_int_equal(pcp_server_reply(NULL, 60, &out.req, &res, EPOCH,
	    rep, sizeof(rep)), 0);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_drops),
		cmocka_unit_test(test_reply_now),
		cmocka_unit_test(test_natpmp_without_handler),
		cmocka_unit_test(test_natpmp_with_handler),
		cmocka_unit_test(test_announce),
		cmocka_unit_test(test_relay_unknown),
		cmocka_unit_test(test_relay_header_checks),
		cmocka_unit_test(test_relay_known_opcodes),
		cmocka_unit_test(test_refuse),
		cmocka_unit_test(test_submit_create),
		cmocka_unit_test(test_submit_plain_refresh_delete),
		cmocka_unit_test(test_submit_descriptions),
		cmocka_unit_test(test_reply_success_exact),
		cmocka_unit_test(test_reply_success_options),
		cmocka_unit_test(test_reply_errors),
		cmocka_unit_test(test_reply_delete),
		cmocka_unit_test(test_reply_refuses_foreign_packets),
		cmocka_unit_test(test_submit_peer),
		cmocka_unit_test(test_third_party_listed),
		cmocka_unit_test(test_reply_peer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
