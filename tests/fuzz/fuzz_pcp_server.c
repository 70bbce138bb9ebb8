/*
 * fuzz_pcp_server.c - libFuzzer target for the PCP server front-end's pure
 * layer (pcp/pcp_server.c).
 *
 * Every input is handled as a datagram from its own Client IP and from a
 * foreign source, with third party denied and allowed, with and without a
 * NAT-PMP front-end. Invariants: a reply is 24..1100 octets, a multiple of
 * 4, and a response a PCP client accepts (§8.3); a submitted request is a
 * TCP/UDP MAP with a port, its flags consistent with the packet, its
 * description a C string within MAP_DESCRIPTION_MAX; and every submitted
 * request yields a valid reply for a handful of core results (success,
 * a delete, errors from the table and relayed from upstream).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "map_err.h"
#include "pcp_server.h"
#include "pcp_wire.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Static: large structs; keep the stack small. */
static struct pcp_server_req out;
static struct pcp_msg resp;
static uint8_t wire[PCP_MAX_SIZE];

static void
fuzz_check_reply(const uint8_t *buf, size_t n)
{
	if (n < PCP_HDR_SIZE || n > PCP_MAX_SIZE || n % 4 != 0)
		abort();
	if (!pcp_decode_response(buf, n, &resp) || !resp.response)
		abort();
}

static void
fuzz_results(const uint8_t *data, size_t size)
{
	static const struct {
		enum map_err	 err;
		uint32_t	 lifetime;
		int16_t		 upstream;
	} results[] = {
		{ MAP_OK, 3600, -1 },
		{ MAP_OK, 0, 0 },
		{ MAP_ERR_NOT_FOUND, 0, -1 },
		{ MAP_ERR_NOT_AUTHORIZED, 1800, -1 },
		{ MAP_ERR_CONFLICT, 0, -1 },
		{ MAP_ERR_NETWORK_FAILURE, 30, PCP_ADDRESS_MISMATCH },
		{ MAP_ERR_QUOTA, 0, PCP_USER_EX_QUOTA },
		{ MAP_ERR_UPSTREAM_PROTOCOL, 0, 200 },
		{ MAP_ERR_COUNT, 0, -1 },	/* out of range: INTERNAL */
	};
	struct map_result res;
	size_t i, n;

	for (i = 0; i < sizeof(results) / sizeof(results[0]); i++) {
		memset(&res, 0, sizeof(res));
		res.err = results[i].err;
		res.lifetime = results[i].lifetime;
		res.upstream_result = results[i].upstream;
		res.ext_port = 50000;
		res.ext_addr.s6_addr[10] = 0xff;
		res.ext_addr.s6_addr[11] = 0xff;
		res.ext_addr.s6_addr[12] = 203;
		n = pcp_server_reply(data, size, &out.req, &res, 7, wire,
		    sizeof(wire));
		fuzz_check_reply(wire, n);
		/* a success reply never outgrows the request */
		if (resp.result == PCP_SUCCESS && n > size)
			abort();
	}
}

static void
fuzz_submitted(const uint8_t *data, size_t size, const struct in6_addr *src)
{
	const struct map_req *r = &out.req;

	if (r->origin != MAP_ORIGIN_PCP ||
	    (r->protocol != MAP_PROTO_TCP && r->protocol != MAP_PROTO_UDP) ||
	    r->internal_port == 0 ||
	    memcmp(&r->requester, src, sizeof(*src)) != 0 ||
	    /* MAP lifetime 0 deletes; PEER cannot delete (RFC 6887 §12.1) */
	    ((r->flags & MAP_F_PEER) != 0 ? (r->flags & MAP_F_DELETE) != 0 :
	    ((r->flags & MAP_F_DELETE) != 0) != (r->lifetime == 0)) ||
	    ((r->flags & MAP_F_THIRD_PARTY) == 0 &&
	    memcmp(&r->internal_addr, src, sizeof(*src)) != 0) ||
	    memchr(r->description, '\0', sizeof(r->description)) == NULL ||
	    strlen(r->description) > MAP_DESCRIPTION_MAX)
		abort();
	if ((r->flags & MAP_F_HAS_DESCRIPTION) == 0 && r->description[0])
		abort();
	fuzz_results(data, size);
}

static void
fuzz_one(const struct pcp_server_conf *conf, const uint8_t *data,
    size_t size, const struct in6_addr *src)
{
	enum pcp_server_action a;

	a = pcp_server_handle(conf, data, size, src, 5350, 7, &out);
	/* pcp = no: everything non-empty is NAT-PMP's to answer */
	if (conf->pcp_off && conf->natpmp && size > 0 && a != PCP_SERVER_NATPMP)
		abort();
	switch (a) {
	case PCP_SERVER_DROP:
		if (out.reply_len != 0)
			abort();
		break;
	case PCP_SERVER_REPLY:
		fuzz_check_reply(out.reply, out.reply_len);
		if (resp.result != out.result)
			abort();
		break;
	case PCP_SERVER_NATPMP:
		/* version 0, or anything with pcp = no */
		if (!conf->natpmp || size == 0 || (data[0] != 0 && !conf->pcp_off))
			abort();
		break;
	case PCP_SERVER_SUBMIT:
		if (size < PCP_MAP_MSG_SIZE || (conf->natpmp && data[0] == 0))
			abort();
		fuzz_submitted(data, size, src);
		break;
	case PCP_SERVER_RELAY:
		/* RFC 7648 §3.4.2: only unknown opcodes, only when relaying;
		   never ANNOUNCE, MAP, PEER or AUTHENTICATION */
		if (!conf->relay_unknown || size < PCP_HDR_SIZE ||
		    (data[1] & PCP_OPCODE_MASK) <= PCP_OP_AUTHENTICATION)
			abort();
		break;
	default:
		abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct pcp_server_conf confs[] = {
		{ .third_party_allowed = false },
		{ .third_party_allowed = true },
		{ .natpmp = true },
		{ .relay_unknown = true },
		{ .natpmp = true, .pcp_off = true },
	};
	struct in6_addr own, other;
	size_t i;

	memset(&other, 0, sizeof(other));
	other.s6_addr[10] = 0xff;
	other.s6_addr[11] = 0xff;
	other.s6_addr[15] = 1;
	memset(&own, 0, sizeof(own));
	if (size >= PCP_HDR_SIZE)
		memcpy(own.s6_addr, data + 8, sizeof(own.s6_addr));
	for (i = 0; i < sizeof(confs) / sizeof(confs[0]); i++) {
		fuzz_one(&confs[i], data, size, &own);
		fuzz_one(&confs[i], data, size, &other);
	}
	return 0;
}
