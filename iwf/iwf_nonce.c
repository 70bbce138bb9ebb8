/*
 * iwf_nonce.c - synthesized mapping nonces (spec/iwf.md §2): SipHash-2-4
 * of the mapping's identity, twice with a domain octet, 12 of the 16
 * octets kept.
 */
#include <string.h>

#include "iwf_nonce.h"

#define IWF_ROTL(x, b)	(uint64_t)(((x) << (b)) | ((x) >> (64 - (b))))

static uint64_t
iwf_le64(const uint8_t *p)
{
	uint64_t v = 0;
	int i;

	for (i = 7; i >= 0; i--)
		v = (v << 8) | p[i];
	return v;
}

static void
iwf_sipround(uint64_t v[4])
{
	v[0] += v[1]; v[1] = IWF_ROTL(v[1], 13); v[1] ^= v[0];
	v[0] = IWF_ROTL(v[0], 32);
	v[2] += v[3]; v[3] = IWF_ROTL(v[3], 16); v[3] ^= v[2];
	v[0] += v[3]; v[3] = IWF_ROTL(v[3], 21); v[3] ^= v[0];
	v[2] += v[1]; v[1] = IWF_ROTL(v[1], 17); v[1] ^= v[2];
	v[2] = IWF_ROTL(v[2], 32);
}

uint64_t
iwf_siphash(const uint8_t key[IWF_NONCE_KEY_SIZE], const void *data,
    size_t len)
{
	const uint8_t *in = data;
	uint64_t k0 = iwf_le64(key), k1 = iwf_le64(key + 8), m, b;
	uint64_t v[4];
	uint8_t tail[8];
	size_t i, left = len % 8;

	v[0] = k0 ^ 0x736f6d6570736575ULL;
	v[1] = k1 ^ 0x646f72616e646f6dULL;
	v[2] = k0 ^ 0x6c7967656e657261ULL;
	v[3] = k1 ^ 0x7465646279746573ULL;
	for (i = 0; i + 8 <= len; i += 8) {
		m = iwf_le64(in + i);
		v[3] ^= m;
		iwf_sipround(v);
		iwf_sipround(v);
		v[0] ^= m;
	}
	memset(tail, 0, sizeof(tail));
	if (left > 0)
		memcpy(tail, in + len - left, left);
	b = ((uint64_t)len << 56) | iwf_le64(tail);
	v[3] ^= b;
	iwf_sipround(v);
	iwf_sipround(v);
	v[0] ^= b;
	v[2] ^= 0xff;
	for (i = 0; i < 4; i++)
		iwf_sipround(v);
	return v[0] ^ v[1] ^ v[2] ^ v[3];
}

void
iwf_nonce(const uint8_t key[IWF_NONCE_KEY_SIZE], enum map_origin origin,
    const struct in6_addr *client, uint8_t protocol, uint16_t internal_port,
    uint8_t nonce[MAP_NONCE_SIZE])
{
	/* domain, origin, address, protocol, port (big-endian) */
	uint8_t msg[1 + 1 + sizeof(struct in6_addr) + 1 + 2];
	uint8_t out[16];
	uint64_t h;
	size_t i;

	msg[1] = (uint8_t)origin;
	memcpy(msg + 2, client, sizeof(*client));
	msg[2 + sizeof(*client)] = protocol;
	msg[3 + sizeof(*client)] = (uint8_t)(internal_port >> 8);
	msg[4 + sizeof(*client)] = (uint8_t)internal_port;
	for (i = 0; i < 2; i++) {
		msg[0] = (uint8_t)i;
		h = iwf_siphash(key, msg, sizeof(msg));
		memcpy(out + 8 * i, &h, sizeof(h));
	}
	memcpy(nonce, out, MAP_NONCE_SIZE);
}
