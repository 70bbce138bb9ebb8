/*
 * fuzz_dhcp_pcp_option.c - libFuzzer target for RFC 7291's DHCP PCP
 * server options (src/dhcp_pcp.c), as pcp-iwfctl set-upstream reads them.
 *
 * The first input octet picks the path, the rest is the option: bit 0
 * DHCPv4 option 158 or DHCPv6 option 86, bit 1 raw octets or hex text
 * (the hook scripts' form). Invariants, any broken one aborts: a failed
 * decode leaves the list exactly as it was (decode, check, commit); the
 * list never exceeds DHCP_PCP_MAX_ADDRS, holds no repeats and no
 * multicast, loopback or unspecified address (RFC 7291 §3.2, §4.2); the
 * counts add up with the addresses the option carried.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "dhcp_pcp.h"
#include "pcp_wire.h"

#define FUZZ_V4_ADDR_LEN	4
#define FUZZ_V6_ADDR_LEN	16

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static void
fuzz_check_list(const struct dhcp_pcp_servers *s)
{
	struct in_addr v4;
	size_t i, j;

	if (s->n > DHCP_PCP_MAX_ADDRS)
		abort();
	for (i = 0; i < s->n; i++) {
		if (IN6_IS_ADDR_UNSPECIFIED(&s->addr[i]) ||
		    IN6_IS_ADDR_LOOPBACK(&s->addr[i]) ||
		    IN6_IS_ADDR_MULTICAST(&s->addr[i]))
			abort();
		if (pcp_addr_is_v4(&s->addr[i])) {
			pcp_addr_to_v4(&s->addr[i], &v4);
			if (IN_MULTICAST(ntohl(v4.s_addr)) || v4.s_addr == 0)
				abort();
		}
		for (j = 0; j < i; j++)
			if (IN6_ARE_ADDR_EQUAL(&s->addr[i], &s->addr[j]))
				abort();
	}
}

/* A seeded list: a failed decode must leave it as it is. */
static void
fuzz_seed(struct dhcp_pcp_servers *s)
{
	static const uint8_t seed[] = { 4, 192, 0, 2, 1 };

	dhcp_pcp_init(s);
	if (dhcp_pcp_decode_v4(seed, sizeof(seed), s) != DHCP_PCP_OK)
		abort();
}

static void
fuzz_decode(const uint8_t *buf, size_t len, int v6)
{
	struct dhcp_pcp_servers s, before;
	enum dhcp_pcp_err err;
	size_t addrs;

	fuzz_seed(&s);
	before = s;
	err = v6 ? dhcp_pcp_decode_v6(buf, len, &s) :
	    dhcp_pcp_decode_v4(buf, len, &s);
	if (err != DHCP_PCP_OK) {
		if (memcmp(&s, &before, sizeof(s)) != 0 ||
		    dhcp_pcp_strerror(err) == NULL)
			abort();
		return;
	}
	fuzz_check_list(&s);
	/* every address of the option is in the list or counted */
	addrs = v6 ? len / FUZZ_V6_ADDR_LEN : 0;
	if (!v6) {
		size_t off = 0;

		while (off < len) {
			addrs += buf[off] / FUZZ_V4_ADDR_LEN;
			off += 1 + buf[off];
		}
	}
	if ((s.n - before.n) + s.discarded + s.repeated + s.dropped != addrs)
		abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t *bin;
	char *text;
	size_t len;

	if (size == 0)
		return 0;
	if ((data[0] & 2) == 0) {
		fuzz_decode(data + 1, size - 1, data[0] & 1);
		return 0;
	}
	/* hex text, NUL-terminated */
	if ((text = malloc(size)) == NULL || (bin = malloc(size)) == NULL)
		abort();
	memcpy(text, data + 1, size - 1);
	text[size - 1] = '\0';
	if (dhcp_pcp_hex(text, bin, size, &len) == DHCP_PCP_OK) {
		if (len > strlen(text))
			abort();
		fuzz_decode(bin, len, data[0] & 1);
	}
	free(bin);
	free(text);
	return 0;
}
