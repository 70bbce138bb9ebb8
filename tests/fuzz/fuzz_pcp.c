/*
 * fuzz_pcp.c - libFuzzer target for the PCP wire codec (pcp/pcp_wire.c).
 *
 * Every input is decoded as a request (no source, the packet's own Client IP
 * as source, a foreign source; with and without relaying) and as a response.
 * Whatever decodes must re-encode and decode to the same fields; an error
 * reply built from the input must itself be an acceptable response. Any
 * broken invariant aborts, which libFuzzer (and the replay driver) report.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "pcp_wire.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Static: struct pcp_msg is several kilobytes; keep the stack small. */
static struct pcp_msg first, second;
static uint8_t wire[PCP_MAX_SIZE];

static void
fuzz_request(const uint8_t *data, size_t size, const struct in6_addr *src,
    unsigned int flags)
{
	enum pcp_result r, r2;
	enum pcp_verdict v;
	size_t n;

	v = pcp_decode_request(data, size, src, flags, &first, &r);
	if (v == PCP_VERDICT_OK && r != PCP_SUCCESS)
		abort();
	if (v == PCP_VERDICT_ERROR && r == PCP_SUCCESS)
		abort();
	if (v != PCP_VERDICT_OK)
		return;
	/* A decoded request never grows when re-encoded: it fits again. */
	if ((n = pcp_encode(&first, wire, sizeof(wire))) == 0 || n > size)
		abort();
	if (pcp_decode_request(wire, n, src, flags, &second, &r2) !=
	    PCP_VERDICT_OK || !pcp_msg_equal(&first, &second))
		abort();
}

static void
fuzz_response(const uint8_t *data, size_t size)
{
	size_t n;

	if (!pcp_decode_response(data, size, &first))
		return;
	if (!first.response)
		abort();
	/* The encoder speaks version 2 only: a foreign UNSUPP_VERSION reply
	 * decodes but cannot round-trip its version byte. */
	if (first.version != PCP_VERSION)
		return;
	if ((n = pcp_encode(&first, wire, sizeof(wire))) == 0)
		abort();
	if (!pcp_decode_response(wire, n, &second) ||
	    !pcp_msg_equal(&first, &second))
		abort();
}

static void
fuzz_error_reply(const uint8_t *data, size_t size)
{
	enum pcp_result r = PCP_MALFORMED_REQUEST;
	size_t n;

	(void)pcp_decode_request(data, size, NULL, 0, NULL, &r);
	if (r == PCP_SUCCESS)
		r = PCP_NOT_AUTHORIZED;
	n = pcp_encode_error(data, size, r, PCP_LIFETIME_LONG_ERR, 1,
	    wire, sizeof(wire));
	if (size < 2) {
		if (n != 0)
			abort();
		return;
	}
	if (n < PCP_HDR_SIZE || n > PCP_MAX_SIZE || n % 4 != 0)
		abort();
	/* §8.3: a client must accept the §8.2 error reply */
	if (!pcp_decode_response(wire, n, &second) || second.result != r)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct in6_addr own, other;

	memset(&other, 0, sizeof(other));
	other.s6_addr[15] = 1;
	memset(&own, 0, sizeof(own));
	if (size >= PCP_HDR_SIZE)
		memcpy(own.s6_addr, data + 8, sizeof(own.s6_addr));

	fuzz_request(data, size, NULL, 0);
	fuzz_request(data, size, NULL, PCP_DECODE_RELAY_UNKNOWN);
	fuzz_request(data, size, &own, 0);
	fuzz_request(data, size, &own, PCP_DECODE_RELAY_UNKNOWN);
	fuzz_request(data, size, &other, 0);
	fuzz_response(data, size);
	fuzz_error_reply(data, size);
	return 0;
}
