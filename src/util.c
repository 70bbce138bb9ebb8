/*
 * util.c - strict decimal parsing and address prefixes (see util.h).
 */
#include <errno.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "util.h"

#define UTIL_BYTE_BITS	8

bool
util_parse_decimal(const char *text, unsigned long long *out)
{
	const char *c;

	if (*text == '\0')
		return false;
	/* isdigit() would follow the locale; the grammar is ASCII. */
	for (c = text; *c != '\0'; c++)
		if (*c < '0' || *c > '9')
			return false;
	errno = 0;
	*out = strtoull(text, NULL, 10);
	if (errno == ERANGE)
		*out = ULLONG_MAX;
	return true;
}

/* The mask of the first `bits` (0..7) bits of a byte. */
static uint8_t
util_byte_mask(unsigned int bits)
{
	return (uint8_t)(0xff00u >> bits);
}

void
util_addr_mask(struct in6_addr *a, unsigned int plen)
{
	unsigned int full = plen / UTIL_BYTE_BITS;

	if (plen >= UTIL_ADDR_BITS)
		return;
	a->s6_addr[full] &= util_byte_mask(plen % UTIL_BYTE_BITS);
	memset(&a->s6_addr[full + 1], 0, sizeof(a->s6_addr) - full - 1);
}

bool
util_prefix_match(const struct in6_addr *a, const struct in6_addr *b,
    unsigned int plen)
{
	unsigned int full = plen / UTIL_BYTE_BITS;
	unsigned int rest = plen % UTIL_BYTE_BITS;
	uint8_t mask;

	if (plen > UTIL_ADDR_BITS)
		return false;
	if (memcmp(a->s6_addr, b->s6_addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = util_byte_mask(rest);
	return (a->s6_addr[full] & mask) == (b->s6_addr[full] & mask);
}

uint64_t
util_hash_mix(uint64_t x)
{
	x ^= x >> 33;
	x *= 0xff51afd7ed558ccdULL;
	x ^= x >> 33;
	x *= 0xc4ceb9fe1a85ec53ULL;
	x ^= x >> 33;
	return x;
}

uint64_t
util_hash_addr(uint64_t h, const struct in6_addr *a)
{
	uint64_t hi, lo;

	memcpy(&hi, &a->s6_addr[0], sizeof(hi));
	memcpy(&lo, &a->s6_addr[8], sizeof(lo));
	return util_hash_mix(util_hash_mix(h ^ hi) ^ lo);
}

int
util_hex_digit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

bool
util_hex_decode(const char *s, uint8_t *out, size_t len)
{
	size_t i;
	int hi, lo;

	if (strlen(s) != 2 * len)
		return false;
	for (i = 0; i < len; i++) {
		if ((hi = util_hex_digit(s[2 * i])) < 0 ||
		    (lo = util_hex_digit(s[2 * i + 1])) < 0)
			return false;
		out[i] = (uint8_t)(hi << 4 | lo);
	}
	return true;
}
