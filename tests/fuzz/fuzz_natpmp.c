/*
 * fuzz_natpmp.c - libFuzzer target for the NAT-PMP codec (iwf/natpmp_wire.c)
 * and the front-end behind it (iwf/natpmp.c) on the real proxy core, table
 * and policy (the gateway as the last NAT, so every answer comes at once).
 *
 * The input is decoded as one datagram; then it is read as a sequence of
 * records (length octet, source host octet, that many octets) fed to the
 * front-end as datagrams from four LAN hosts and one outside host.
 * Invariants: decode/encode round trips; every reply is a NAT-PMP response
 * (version 0, top bit of the opcode set) of a valid size; after the run
 * every mapping in the table is granted, made through NAT-PMP, for a LAN
 * host - no half-made mapping (spec/iwf.md X-12).
 */
#include <arpa/inet.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "map.h"
#include "natpmp.h"
#include "natpmp_wire.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static uint64_t fuzz_clock;

static uint32_t
fuzz_epoch(void *arg)
{
	(void)arg;
	return (uint32_t)(fuzz_clock / 1000);
}

static uint64_t
fuzz_now(void *arg)
{
	(void)arg;
	return fuzz_clock;
}

static bool
fuzz_send(void *arg, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	(void)arg;
	(void)peer;
	if (len < NATPMP_HDR_SIZE || len > NATPMP_ECHO_MAX ||
	    buf[0] != NATPMP_VERSION || (buf[1] & NATPMP_OP_RESPONSE) == 0)
		abort();
	/* "Unsupported Version" is the 8-octet header for any opcode */
	if (buf[3] == NATPMP_RESULT_UNSUPP_VERSION)
		return len == NATPMP_HDR_SIZE ? true : (abort(), false);
	if (buf[1] == (NATPMP_OP_RESPONSE | NATPMP_OP_ADDRESS) &&
	    len != NATPMP_ADDR_RESP_SIZE)
		abort();
	if ((buf[1] == (NATPMP_OP_RESPONSE | NATPMP_OP_MAP_UDP) ||
	    buf[1] == (NATPMP_OP_RESPONSE | NATPMP_OP_MAP_TCP)) &&
	    len != NATPMP_MAP_RESP_SIZE)
		abort();
	return true;
}

static size_t
fuzz_multicast(void *arg, const uint8_t *buf, size_t len)
{
	(void)arg;
	if (len != NATPMP_ADDR_RESP_SIZE || buf[1] != NATPMP_OP_RESPONSE)
		abort();
	return 1;
}

static void
fuzz_codec(const uint8_t *data, size_t size)
{
	static uint8_t out[NATPMP_ECHO_MAX];
	struct natpmp_request req, back;
	struct natpmp_response resp, resp2;
	size_t n, want;

	switch (natpmp_decode_request(data, size, &req)) {
	case NATPMP_REQUEST:
		if (req.version != 0 || req.opcode > NATPMP_OP_MAP_TCP)
			abort();
		n = natpmp_encode_request(&req, out, sizeof(out));
		if (n == 0 || n > size ||
		    natpmp_decode_request(out, n, &back) != NATPMP_REQUEST ||
		    memcmp(&req, &back, sizeof(req)) != 0)
			abort();
		break;
	case NATPMP_BAD_OPCODE:
		want = size > NATPMP_ECHO_MAX ? NATPMP_ECHO_MAX : size;
		if (want < NATPMP_HDR_SIZE)
			want = NATPMP_HDR_SIZE;
		if (natpmp_encode_bad_opcode(data, size, 1, out,
		    sizeof(out)) != want || out[3] != 5)
			abort();
		break;
	case NATPMP_BAD_VERSION:
		if (req.version == 0 ||
		    natpmp_encode_bad_version(req.opcode, 1, out,
		    sizeof(out)) != NATPMP_HDR_SIZE)
			abort();
		break;
	case NATPMP_DROP:
		break;
	}
	if (natpmp_decode_response(data, size, &resp)) {
		n = natpmp_encode_response(&resp, out, sizeof(out));
		if (n == 0 || !natpmp_decode_response(out, n, &resp2) ||
		    resp2.opcode != resp.opcode || resp2.result != resp.result)
			abort();
	}
}

static void
fuzz_check_table(const struct table *t, const struct policy *pol)
{
	const struct mapping *m;
	size_t i;

	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if (m->state != MAP_STATE_GRANTED ||
		    m->origin != MAP_ORIGIN_NATPMP ||
		    m->internal_port == 0 ||
		    (m->protocol != MAP_PROTO_UDP &&
		    m->protocol != MAP_PROTO_TCP) ||
		    /* within ::ffff:192.0.2.0/120: 15 leading octets */
		    memcmp(&m->internal_addr, &pol->lan_prefixes[0].addr,
		    15) != 0)
			abort();
	}
}

static void
fuzz_frontend(const uint8_t *data, size_t size)
{
	static const char *hosts[] = { "192.0.2.10", "192.0.2.11",
	    "192.0.2.12", "192.0.2.13", "10.1.2.3" };
	struct policy_prefix lan;
	struct policy pol;
	struct proxy_params pp;
	struct natpmp_params np;
	struct pcp_frontend_peer peer;
	struct sockaddr_in *sin = (struct sockaddr_in *)&peer.src;
	struct in_addr wan4;
	struct table *t;
	struct proxy *p;
	struct natpmp *n;
	size_t off = 0, len;

	memset(&lan, 0, sizeof(lan));
	inet_pton(AF_INET, "192.0.2.0", &wan4);
	pcp_addr_from_v4(&lan.addr, &wan4);
	lan.prefix_len = 96 + 24;
	memset(&pol, 0, sizeof(pol));
	pol.lan_prefixes = &lan;
	pol.n_lan_prefixes = 1;
	pol.min_lifetime = 120;
	pol.max_lifetime = 86400;
	pol.max_mappings_per_host = 8;
	if ((t = table_new()) == NULL)
		abort();
	table_set_seed(t, 1);
	memset(&pp, 0, sizeof(pp));
	pp.nat = PROXY_NAT_NONE;
	pp.table = t;
	pp.policy = &pol;
	inet_pton(AF_INET, "198.51.100.2", &wan4);
	pcp_addr_from_v4(&pp.wan_addr, &wan4);
	pp.wan_addr_known = true;
	if ((p = proxy_new(&pp)) == NULL)
		abort();
	memset(&np, 0, sizeof(np));
	np.proxy = p;
	np.table = t;
	np.epoch = fuzz_epoch;
	np.now = fuzz_now;
	np.send = fuzz_send;
	np.multicast = fuzz_multicast;
	if ((n = natpmp_new(&np)) == NULL)
		abort();
	fuzz_clock = 1000;
	natpmp_start(n);

	memset(&peer, 0, sizeof(peer));
	sin->sin_family = AF_INET;
	sin->sin_port = htons(5350);
	peer.src_len = sizeof(*sin);
	inet_pton(AF_INET, hosts[0], &sin->sin_addr);
	natpmp_input(n, NULL, &peer, data, size);
	while (off + 2 <= size) {
		len = data[off];
		inet_pton(AF_INET, hosts[data[off + 1] % 5], &sin->sin_addr);
		off += 2;
		if (len > size - off)
			len = size - off;
		natpmp_input(n, NULL, &peer, data + off, len);
		off += len;
		/* time passes between datagrams: timers and expiry run */
		fuzz_clock += 100000;
		proxy_tick(p, fuzz_clock);
		natpmp_tick(n, fuzz_clock);
		fuzz_check_table(t, &pol);
	}
	fuzz_check_table(t, &pol);
	natpmp_free(n);
	proxy_free(p);
	table_free(t);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	fuzz_codec(data, size);
	fuzz_frontend(data, size);
	return 0;
}
