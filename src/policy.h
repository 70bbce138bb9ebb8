/*
 * policy.h - who may ask for which mapping (DESIGN.md "Data flow" step 2,
 * "Security"). A plain struct of values the daemon fills from its config
 * and the LAN interfaces' addresses; policy_check() reads it and the table
 * and changes nothing.
 */
#ifndef IWFD_POLICY_H
#define IWFD_POLICY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "acl.h"
#include "map.h"

struct table;

/* A LAN prefix. IPv4 as in acl.h: the IPv4-mapped address (::ffff:a.b.c.d)
   and 96 + the IPv4 prefix length. */
struct policy_prefix {
	struct in6_addr	 addr;
	uint8_t		 prefix_len;	/* 0..128 */
	/* The gateway's own address in it (netif_prefixes), never a
	   third party's internal address; :: when unknown. */
	struct in6_addr	 own;
};

struct policy {
	const struct policy_prefix *lan_prefixes; /* none: nobody is LAN */
	size_t		 n_lan_prefixes;
	const struct acl_rule *acl;	/* first match wins, default allow */
	size_t		 n_acl;
	/* third_party = allow: the requesters that may ask for mappings for
	   other LAN hosts (RFC 6887 §13.1, X-03: THIRD_PARTY, UPnP
	   NewInternalClient); none: nobody may (third_party = deny) */
	const struct acl_prefix *third_party_hosts;
	size_t		 n_third_party_hosts;
	uint32_t	 max_mappings_per_host;	/* 0: no limit */
	uint32_t	 max_mappings;	/* all hosts together; 0: no cap */
	uint32_t	 min_lifetime;	/* seconds */
	uint32_t	 max_lifetime;
};

/*
 * Check a LAN request, in this order (the first failure is the answer):
 *   1. LAN only: the requester must be inside a LAN prefix
 *      (RFC 6887 §18.3.2 ingress filtering, spec/iwf.md X-02)
 *      -> MAP_ERR_NOT_AUTHORIZED;
 *   2. protocol: only TCP and UDP with a non-zero internal port, deletes
 *      included (RFC 6887 §11.3, §15.1: we make no all-protocols,
 *      all-ports or DMZ mappings) -> MAP_ERR_UNSUPP_PROTOCOL;
 *   3. third party: internal address != requester is denied unless the
 *      requester is inside one of third_party_hosts (policy_third_party_ok;
 *      RFC 6887 §13.1, S-11, X-03) -> MAP_ERR_THIRD_PARTY_DENIED; when
 *      allowed, the internal address must be a LAN address too, and
 *      not one of the gateway's own -> MAP_ERR_NOT_AUTHORIZED;
 *   4. a delete (lifetime 0 or MAP_F_DELETE) stops here: MAP_OK, lifetime 0
 *      (ownership is the table's nonce check);
 *   5. reserved port: PREFER_FAILURE with suggested UDP 5350/5351
 *      (RFC 6887 §11.3) -> MAP_ERR_RESERVED_PORT (a mere hint is moved by
 *      the table instead);
 *   6. ACL: with PREFER_FAILURE the suggested port must be allowed; without
 *      it one of the allocator's candidates must be: the hint, the internal
 *      port or a port of the table's range (table_get_port_range) allowed
 *      for (internal address, internal port) -> MAP_ERR_NOT_AUTHORIZED; the
 *      allocator then picks only allowed ports (policy_ext_port_ranges,
 *      policy_ext_port_check); that all of them are taken is its
 *      MAP_ERR_NO_RESOURCES;
 *   7. quota: a request that would create a mapping (none exists for its
 *      protocol, internal address and port) when the internal address
 *      already holds max_mappings_per_host of any protocol
 *      (RFC 6887 §17.2) -> MAP_ERR_QUOTA;
 *   8. global cap: a request that would create a mapping when the table
 *      already holds max_mappings (issue 8: a flood of hosts, each under
 *      its quota, still cannot grow the table without bound)
 *      -> MAP_ERR_NO_RESOURCES (PCP NO_RESOURCES, short lifetime;
 *      NAT-PMP 4; UPnP 728 / 501);
 *   9. lifetime: clamped to [min_lifetime, max_lifetime] into *lifetime.
 * Refreshes of existing mappings pass 7 and 8, deletes stop at 4: a host
 * can always renew and free what it holds.
 * Control-socket (static) requests do not come through here.
 */
enum map_err	 policy_check(const struct policy *, const struct table *,
		    const struct map_req *, uint32_t *lifetime);
/* May `requester` ask for mappings for another host (step 3)? Only a LAN
   host inside one of third_party_hosts; the front-ends ask before they
   build a third-party request (PCP THIRD_PARTY, UPnP NewInternalClient). */
bool		 policy_third_party_ok(const struct policy *,
		    const struct in6_addr *requester);
/* Is `addr` inside one of the LAN prefixes? */
bool		 policy_is_lan(const struct policy *, const struct in6_addr *);
/* The same over a copy of the prefixes (the UPnP front-end keeps one for
   pupnp's threads: the policy's are rebuilt in place on SIGHUP). */
bool		 policy_prefixes_match(const struct policy_prefix *, size_t,
		    const struct in6_addr *);
/* A malloc'd copy of n prefixes with room for one at least (a copy with
   no prefixes means nobody is LAN, not "no check"). NULL: no memory. */
struct policy_prefix *policy_prefixes_dup(const struct policy_prefix *,
		    size_t n);
/* The ACL for one candidate external port: MAP_OK or MAP_ERR_NOT_AUTHORIZED
   (and MAP_ERR_RESERVED_PORT for UDP 5350/5351). Shaped for
   table_set_port_check(): pass the policy as arg. */
enum map_err	 policy_ext_port_check(void *policy, const struct map_req *,
		    uint16_t ext_port);
/* The external ports the ACL allows for req's (internal address, internal
   port), ascending and disjoint, into out[0..max); returns how many, or,
   when max is too small, how many slots to call again with (> max).
   O(rules^2) integer steps at worst. Shaped for table_set_port_ranges():
   pass the policy as arg. */
size_t		 policy_ext_port_ranges(void *policy, const struct map_req *,
		    struct port_range *out, size_t max);
/* Clamp a requested lifetime; 0 (delete) stays 0. */
uint32_t	 policy_clamp_lifetime(const struct policy *, uint32_t);

#endif
