/*
 * policy.c - the request policy (see policy.h for the order of checks).
 */
#include <stdlib.h>
#include <string.h>

#include "policy.h"
#include "table.h"
#include "util.h"

bool
policy_prefixes_match(const struct policy_prefix *pfx, size_t n,
    const struct in6_addr *a)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (util_prefix_match(&pfx[i].addr, a, pfx[i].prefix_len))
			return true;
	return false;
}

struct policy_prefix *
policy_prefixes_dup(const struct policy_prefix *pfx, size_t n)
{
	struct policy_prefix *copy;

	if ((copy = calloc(n > 0 ? n : 1, sizeof(*copy))) == NULL)
		return NULL;
	if (n > 0)
		memcpy(copy, pfx, n * sizeof(*copy));
	return copy;
}

bool
policy_is_lan(const struct policy *pol, const struct in6_addr *a)
{
	return policy_prefixes_match(pol->lan_prefixes, pol->n_lan_prefixes, a);
}

/* One of the gateway's own LAN addresses? A third party must not name one:
   it would forward a WAN port to the router's own services (fix, review). */
static bool
policy_is_own(const struct policy *pol, const struct in6_addr *a)
{
	size_t i;

	if (IN6_IS_ADDR_UNSPECIFIED(a))
		return false;
	for (i = 0; i < pol->n_lan_prefixes; i++)
		if (IN6_ARE_ADDR_EQUAL(&pol->lan_prefixes[i].own, a))
			return true;
	return false;
}

bool
policy_third_party_ok(const struct policy *pol, const struct in6_addr *req)
{
	size_t i;

	if (!policy_is_lan(pol, req))
		return false;
	for (i = 0; i < pol->n_third_party_hosts; i++)
		if (acl_prefix_match(&pol->third_party_hosts[i], req))
			return true;
	return false;
}

uint32_t
policy_clamp_lifetime(const struct policy *pol, uint32_t lifetime)
{
	if (lifetime == 0)
		return 0;
	if (lifetime < pol->min_lifetime)
		lifetime = pol->min_lifetime;
	if (lifetime > pol->max_lifetime)
		lifetime = pol->max_lifetime;
	return lifetime;
}

static enum map_err
policy_port_verdict(const struct policy *pol, const struct map_req *req,
    uint16_t port)
{
	if (table_port_reserved(req->protocol, port))
		return MAP_ERR_RESERVED_PORT;
	if (!acl_allows(pol->acl, pol->n_acl, &req->internal_addr, port,
	    req->internal_port))
		return MAP_ERR_NOT_AUTHORIZED;
	return MAP_OK;
}

enum map_err
policy_ext_port_check(void *arg, const struct map_req *req, uint16_t port)
{
	return policy_port_verdict(arg, req, port);
}

size_t
policy_ext_port_ranges(void *arg, const struct map_req *req,
    struct port_range *out, size_t max)
{
	const struct policy *pol = arg;

	if (max < ACL_RANGES_MAX(pol->n_acl))
		return ACL_RANGES_MAX(pol->n_acl);
	return acl_ext_ranges(pol->acl, pol->n_acl, &req->internal_addr,
	    req->internal_port, out);
}

/* Would the allocator accept `port` as far as the policy goes? */
static bool
policy_port_ok(const struct policy *pol, const struct map_req *req,
    uint16_t port)
{
	return port != 0 && policy_port_verdict(pol, req, port) == MAP_OK;
}

/*
 * Is there an external port the allocator may pick for req: the hint, the
 * internal port (both honoured outside the table's range) or an allowed
 * port of the range? The same candidates as table_alloc_port(), so a
 * request we accept fails later only for want of a free port.
 */
static enum map_err
policy_some_port(const struct policy *pol, const struct table *t,
    const struct map_req *req)
{
	struct port_range *ranges;
	size_t n, i;
	uint16_t lo, hi;
	bool found = false;

	if (policy_port_ok(pol, req, req->ext_port) ||
	    policy_port_ok(pol, req, req->internal_port))
		return MAP_OK;
	if ((ranges = calloc(ACL_RANGES_MAX(pol->n_acl),
	    sizeof(*ranges))) == NULL)
		return MAP_ERR_NO_RESOURCES;
	table_get_port_range(t, &lo, &hi);
	n = acl_ext_ranges(pol->acl, pol->n_acl, &req->internal_addr,
	    req->internal_port, ranges);
	for (i = 0; i < n && !found; i++)
		found = ranges[i].hi >= lo && ranges[i].lo <= hi;
	free(ranges);
	return found ? MAP_OK : MAP_ERR_NOT_AUTHORIZED;
}

static enum map_err
policy_check_acl(const struct policy *pol, const struct table *t,
    const struct map_req *req)
{
	if ((req->flags & MAP_F_PREFER_FAILURE) != 0 && req->ext_port != 0) {
		if (!acl_allows(pol->acl, pol->n_acl, &req->internal_addr,
		    req->ext_port, req->internal_port))
			return MAP_ERR_NOT_AUTHORIZED;
		return MAP_OK;
	}
	/* RFC 6887 §11.3: a forbidden hint is moved, not failed; fail only
	   when no port at all would do. */
	return policy_some_port(pol, t, req);
}

/*
 * RFC 6887 §11.3: we map single TCP and UDP ports. Any other protocol,
 * protocol 0 (all protocols) and internal port 0 (all ports, the DMZ host
 * of §15.1) cannot be honoured fully -> UNSUPP_PROTOCOL. Deletes get the
 * same answer: with protocol 0 or port 0 they are wildcard deletes (§15.1)
 * of mappings we never create, and saying UNSUPP_PROTOCOL (rather than
 * SUCCESS for "nothing there") tells the client we do not do wildcards.
 */
static bool
policy_protocol_supported(const struct map_req *req)
{
	return (req->protocol == MAP_PROTO_TCP ||
	    req->protocol == MAP_PROTO_UDP) && req->internal_port != 0;
}

/* Does req name a mapping that exists (a refresh, not a new one)? A PEER
   is named by its 5-tuple (RFC 6887 §12.3), a MAP by its internal key. */
static bool
policy_req_exists(const struct table *t, const struct map_req *req)
{
	if ((req->flags & MAP_F_PEER) != 0)
		return table_find_peer(t, req->protocol, &req->internal_addr,
		    req->internal_port, &req->peer_addr,
		    req->peer_port) != NULL;
	return table_find_internal(t, req->protocol, &req->internal_addr,
	    req->internal_port) != NULL;
}

/* Steps 7 and 8: the per-host quota, then the global cap. */
static enum map_err
policy_check_limits(const struct policy *pol, const struct table *t,
    const struct map_req *req)
{
	if (pol->max_mappings_per_host == 0 && pol->max_mappings == 0)
		return MAP_OK;
	/* A refresh of an existing mapping is not a new one. */
	if (policy_req_exists(t, req))
		return MAP_OK;
	if (pol->max_mappings_per_host != 0 &&
	    table_count_host(t, &req->internal_addr) >=
	    pol->max_mappings_per_host)
		return MAP_ERR_QUOTA;
	if (pol->max_mappings != 0 && table_count(t) >= pol->max_mappings)
		return MAP_ERR_NO_RESOURCES;
	return MAP_OK;
}

enum map_err
policy_check(const struct policy *pol, const struct table *t,
    const struct map_req *req, uint32_t *lifetime)
{
	enum map_err err;

	*lifetime = 0;
	if (!policy_is_lan(pol, &req->requester))
		return MAP_ERR_NOT_AUTHORIZED;
	if (!policy_protocol_supported(req))
		return MAP_ERR_UNSUPP_PROTOCOL;
	if (!IN6_ARE_ADDR_EQUAL(&req->internal_addr, &req->requester)) {
		if (!policy_third_party_ok(pol, &req->requester))
			return MAP_ERR_THIRD_PARTY_DENIED;
		if (!policy_is_lan(pol, &req->internal_addr) ||
		    policy_is_own(pol, &req->internal_addr))
			return MAP_ERR_NOT_AUTHORIZED;
	}
	if (req->lifetime == 0 || (req->flags & MAP_F_DELETE) != 0)
		return MAP_OK;
	if ((req->flags & MAP_F_PREFER_FAILURE) != 0 &&
	    table_port_reserved(req->protocol, req->ext_port))
		return MAP_ERR_RESERVED_PORT;
	if ((err = policy_check_acl(pol, t, req)) != MAP_OK)
		return err;
	if ((err = policy_check_limits(pol, t, req)) != MAP_OK)
		return err;
	*lifetime = policy_clamp_lifetime(pol, req->lifetime);
	return MAP_OK;
}
