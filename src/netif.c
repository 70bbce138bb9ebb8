/*
 * netif.c - interface addresses and prefixes through getifaddrs(3).
 */
#include <sys/socket.h>

#include <ifaddrs.h>
#include <net/if.h>
#include <string.h>

#include "netif.h"
#include "pcp_wire.h"
#include "util.h"

bool
netif_exists(const char *ifname)
{
	return if_nametoindex(ifname) != 0;
}

bool
netif_ipv4_address(const char *ifname, struct in6_addr *out)
{
	struct ifaddrs *ifap, *ifa;
	bool found = false;

	if (getifaddrs(&ifap) == -1)
		return false;
	for (ifa = ifap; ifa != NULL && !found; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_addr->sa_family != AF_INET ||
		    strcmp(ifa->ifa_name, ifname) != 0)
			continue;
		pcp_addr_from_v4(out,
		    &((const struct sockaddr_in *)(const void *)ifa->ifa_addr)->sin_addr);
		found = true;
	}
	freeifaddrs(ifap);
	return found;
}

/* Number of leading one bits of a netmask. */
static unsigned int
netif_mask_len(const uint8_t *mask, size_t len)
{
	unsigned int bits = 0;
	size_t i;
	uint8_t b;

	for (i = 0; i < len; i++)
		for (b = mask[i]; b & 0x80; b = (uint8_t)(b << 1))
			bits++;
	return bits;
}

bool
netif_prefixes(const char *ifname, struct policy_prefix *out, size_t max,
    size_t *n)
{
	struct ifaddrs *ifap, *ifa;
	struct policy_prefix p;

	if (!netif_exists(ifname) || getifaddrs(&ifap) == -1)
		return false;
	for (ifa = ifap; ifa != NULL && *n < max; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_netmask == NULL ||
		    strcmp(ifa->ifa_name, ifname) != 0)
			continue;
		if (ifa->ifa_addr->sa_family == AF_INET) {
			const struct sockaddr_in *sin = (const void *)ifa->ifa_addr;
			const struct sockaddr_in *msk = (const void *)ifa->ifa_netmask;

			pcp_addr_from_v4(&p.addr, &sin->sin_addr);
			p.prefix_len = (uint8_t)(96 + netif_mask_len(
			    (const uint8_t *)&msk->sin_addr, 4));
		} else if (ifa->ifa_addr->sa_family == AF_INET6) {
			const struct sockaddr_in6 *sin6 = (const void *)ifa->ifa_addr;
			const struct sockaddr_in6 *msk6 = (const void *)ifa->ifa_netmask;

			p.addr = sin6->sin6_addr;
			p.prefix_len = (uint8_t)netif_mask_len(
			    msk6->sin6_addr.s6_addr, 16);
		} else
			continue;
		/* zero the host bits so that the prefix compares cleanly */
		util_addr_mask(&p.addr, p.prefix_len);
		out[(*n)++] = p;
	}
	freeifaddrs(ifap);
	return true;
}
