/*
 * util.h - small helpers several modules share: strict decimal parsing and
 * address prefixes. IPv4 travels IPv4-mapped (RFC 6887 §5), so one 128-bit
 * prefix routine serves both families.
 */
#ifndef IWFD_UTIL_H
#define IWFD_UTIL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UTIL_ADDR_BITS	128

/* An inclusive range of ports, lo <= hi (ACL results, port allocation). */
struct port_range {
	uint16_t	 lo, hi;
};

/*
 * Strict unsigned decimal: digits only (no sign, white space, base prefix
 * or trailing junk that strtoul() would let through). A value too big for
 * unsigned long long reads as ULLONG_MAX, above every maximum, so callers
 * range-check the result alone.
 */
bool	util_parse_decimal(const char *text, unsigned long long *out);

/* Clear every bit after the first plen (plen >= 128: nothing). */
void	util_addr_mask(struct in6_addr *, unsigned int plen);
/* Do a and b agree in their first plen bits? False for plen > 128. */
bool	util_prefix_match(const struct in6_addr *a, const struct in6_addr *b,
	    unsigned int plen);

/* The value of one hex digit (either case), or -1. */
int	util_hex_digit(char);
/* Exactly 2 * len hex digits -> len bytes; false on anything else. */
bool	util_hex_decode(const char *, uint8_t *out, size_t len);

/* The 64-bit finalizer of MurmurHash3: every input bit reaches every
   output bit (hash tables of the table and the nft backend). */
uint64_t util_hash_mix(uint64_t);
/* Mix an address into a running hash h. */
uint64_t util_hash_addr(uint64_t h, const struct in6_addr *);

#endif
