/*
 * netif.c - interface addresses and prefixes through getifaddrs(3), the
 * default router from /proc/net/route.
 */
#include <sys/socket.h>

#include <ifaddrs.h>
#include <net/if.h>
#include <net/route.h>
#include <limits.h>
#include <stdint.h>
#include <stdlib.h>
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
		p.own = p.addr;
		util_addr_mask(&p.addr, p.prefix_len);
		out[(*n)++] = p;
	}
	freeifaddrs(ifap);
	return true;
}

/* /proc/net/route: a header line, then one route a line, white-space
   separated: Iface Destination Gateway Flags RefCnt Use Metric Mask ...,
   the addresses as the kernel's 32-bit value in hex (network order in
   memory, printed as a host integer). */
#define NETIF_PROC_ROUTE	"/proc/net/route"
#define NETIF_ROUTE_LINE_MAX	512

struct netif_route {
	char		 ifname[IF_NAMESIZE + 1];
	unsigned long	 dest, gateway, flags, metric, mask;
};

static bool
netif_route_line(const char *line, struct netif_route *r)
{
	unsigned long refcnt, use;
	char ifname[IF_NAMESIZE + 1];

	/* %16s: IF_NAMESIZE is 16 */
	if (sscanf(line, "%16s %lx %lx %lx %lu %lu %lu %lx", ifname, &r->dest,
	    &r->gateway, &r->flags, &refcnt, &use, &r->metric, &r->mask) != 8)
		return false;
	memcpy(r->ifname, ifname, sizeof(r->ifname));
	return true;
}

bool
netif_parse_default_router(FILE *f, const char *ifname, struct in6_addr *out)
{
	char line[NETIF_ROUTE_LINE_MAX];
	struct netif_route r;
	struct in_addr gw;
	unsigned long best = ULONG_MAX;
	bool found = false;

	while (fgets(line, sizeof(line), f) != NULL) {
		if (!netif_route_line(line, &r) || strcmp(r.ifname, ifname) != 0)
			continue;
		/* a default route through a router, in use */
		if (r.dest != 0 || r.mask != 0 || r.gateway == 0 ||
		    r.gateway > UINT32_MAX ||
		    (r.flags & (RTF_UP | RTF_GATEWAY)) !=
		    (RTF_UP | RTF_GATEWAY) || (found && r.metric >= best))
			continue;
		gw.s_addr = (uint32_t)r.gateway;
		pcp_addr_from_v4(out, &gw);
		best = r.metric;
		found = true;
	}
	return found;
}

bool
netif_ipv4_default_router(const char *ifname, struct in6_addr *out)
{
	FILE *f;
	bool found;

	if ((f = fopen(NETIF_PROC_ROUTE, "re")) == NULL)
		return false;
	found = netif_parse_default_router(f, ifname, out);
	fclose(f);
	return found;
}
