/*
 * netif.h - what the daemon needs to know about its interfaces.
 */
#ifndef IWFD_NETIF_H
#define IWFD_NETIF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdio.h>

#include "policy.h"

/* The interface's first IPv4 address (IPv4-mapped). false if none. */
bool	netif_ipv4_address(const char *ifname, struct in6_addr *);
/*
 * Append the prefixes on ifname (IPv4 as ::ffff:a.b.c.d/96+len, IPv6
 * global/ULA ones and link-local fe80::/64) to out[*n] up to max.
 * Returns false if the interface does not exist.
 */
bool	netif_prefixes(const char *ifname, struct policy_prefix *out,
	    size_t max, size_t *n);
bool	netif_exists(const char *ifname);
/*
 * The IPv4 default router on ifname (IPv4-mapped): the gateway of its
 * default route with the lowest metric, from /proc/net/route. RFC 6887
 * §8.1 lets a PCP client use it as the server when none is configured
 * (upstream_default_router). false if there is none.
 */
bool	netif_ipv4_default_router(const char *ifname, struct in6_addr *);
/* The same from a /proc/net/route text (for tests). */
bool	netif_parse_default_router(FILE *, const char *ifname,
	    struct in6_addr *);

#endif
