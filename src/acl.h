/*
 * acl.h - the allow/deny rules on which mappings LAN hosts may ask for.
 *
 * One rule is "EXTPORTS INTADDR[/LEN] INTPORTS" as in miniupnpd's
 * "allow"/"deny" lines: ports as N or N-M, the internal address IPv4 or
 * IPv6 with a prefix length. One rule list serves every front-end
 * (spec/iwf.md X-09); the first matching rule wins, no match allows.
 */
#ifndef IWFD_ACL_H
#define IWFD_ACL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "util.h"

/* Room for the text of any valid rule (and a readable error). */
#define ACL_RULE_TEXT_MAX	128
/* IPv4 prefixes are stored on the IPv4-mapped address: +96 bits. */
#define ACL_V4_PREFIX_OFFSET	96
#define ACL_V4_PREFIX_MAX	32
#define ACL_V6_PREFIX_MAX	128

/* An address prefix as the rules write it, ADDR[/LEN] (also the value of
   third_party_host): IPv4 as above, IPv4-mapped and +96. */
struct acl_prefix {
	struct in6_addr	 addr;		/* host bits 0 */
	uint8_t		 prefix_len;	/* 0..128, +96 for IPv4 */
};
/* Room for the text of any prefix. */
#define ACL_PREFIX_TEXT_MAX	(INET6_ADDRSTRLEN + sizeof("/128"))

struct acl_rule {
	bool		 allow;
	uint16_t	 ext_min, ext_max;
	struct in6_addr	 addr;		/* IPv4-mapped for IPv4, host bits 0 */
	uint8_t		 prefix_len;	/* 0..128, +96 for IPv4 */
	uint16_t	 int_min, int_max;
};

/*
 * Parse the value of an "allow" or "deny" line. On failure write a short
 * reason (without key or line) to err and leave *out untouched.
 */
bool	acl_rule_parse(const char *text, bool allow, struct acl_rule *out,
	    char *err, size_t errlen);
/*
 * Parse "ADDR" or "ADDR/LEN" (IPv4 or IPv6; a bare address is a host,
 * /32 or /128; host bits set are an error that names the network meant),
 * the INTADDR field of a rule. On failure write a short reason to err and
 * leave *out untouched.
 */
bool	acl_prefix_parse(const char *text, struct acl_prefix *out,
	    char *err, size_t errlen);
/* The prefix in the family it was written in ("192.168.1.0/24"). */
void	acl_prefix_format(const struct acl_prefix *, char *buf, size_t len);
bool	acl_prefix_match(const struct acl_prefix *,
	    const struct in6_addr *);
bool	acl_rule_match(const struct acl_rule *,
	    const struct in6_addr *internal_addr, uint16_t ext_port,
	    uint16_t int_port);
/* First match wins; no match -> allow (INTERFACE.md: default allow). */
bool	acl_allows(const struct acl_rule *rules, size_t n,
	    const struct in6_addr *addr, uint16_t ext_port, uint16_t int_port);
/*
 * The external ports the rules allow for (addr, int_port), first match
 * wins: ascending, disjoint, non-adjacent ranges within 0..65535 written to
 * out, which must hold ACL_RANGES_MAX(n) entries; returns how many. Cost
 * O(n^2) integer steps at worst, independent of the port count.
 */
#define ACL_RANGES_MAX(n)	((n) + 1)
size_t	acl_ext_ranges(const struct acl_rule *rules, size_t n,
	    const struct in6_addr *addr, uint16_t int_port,
	    struct port_range *out);
/* The rule value in normal form ("1024-65535 192.168.1.0/24 1024-65535"),
   without the allow/deny word; acl_rule_parse() reads it back. */
void	acl_rule_format(const struct acl_rule *, char *buf, size_t len);

#endif
