/*
 * netif.h - what the daemon needs to know about its interfaces.
 */
#ifndef IWFD_NETIF_H
#define IWFD_NETIF_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>

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

#endif
