/*
 * policy.c - the request policy (see policy.h for the order of checks).
 */
#include <string.h>

#include "pcp_wire.h"
#include "policy.h"
#include "table.h"

#define POLICY_ADDR_BITS	128
#define POLICY_PORT_FIRST	1	/* external port 0 is never mapped */

static bool
prefix_contains(const struct policy_prefix *p, const struct in6_addr *a)
{
	unsigned int full = p->prefix_len / 8, rest = p->prefix_len % 8;
	uint8_t mask;

	if (p->prefix_len > POLICY_ADDR_BITS)
		return false;
	if (memcmp(p->addr.s6_addr, a->s6_addr, full) != 0)
		return false;
	if (rest == 0)
		return true;
	mask = (uint8_t)(0xff << (8 - rest));
	return (p->addr.s6_addr[full] & mask) == (a->s6_addr[full] & mask);
}

bool
policy_is_lan(const struct policy *pol, const struct in6_addr *a)
{
	size_t i;

	for (i = 0; i < pol->n_lan_prefixes; i++)
		if (prefix_contains(&pol->lan_prefixes[i], a))
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

static bool
port_is_pcp_reserved(uint8_t proto, uint16_t port)
{
	/* RFC 6887 §11.3: MUST NOT map external UDP 5350/5351. */
	return proto == MAP_PROTO_UDP &&
	    (port == PCP_CLIENT_PORT || port == PCP_SERVER_PORT);
}

enum map_err
policy_ext_port_check(void *arg, const struct map_req *req, uint16_t port)
{
	const struct policy *pol = arg;

	if (port_is_pcp_reserved(req->protocol, port))
		return MAP_ERR_RESERVED_PORT;
	if (!acl_allows(pol->acl, pol->n_acl, &req->internal_addr, port,
	    req->internal_port))
		return MAP_ERR_NOT_AUTHORIZED;
	return MAP_OK;
}

/*
 * Does the ACL allow (internal address, internal port) any external port?
 * With first match wins the answer only changes where some rule's external
 * range starts or ends, so testing port 1 and each range start and end + 1
 * covers every case: O(n^2) in the rule count, never in the port count.
 */
static bool
acl_allows_some_port(const struct policy *pol, const struct map_req *req)
{
	const struct acl_rule *r;
	uint32_t cand[2];
	size_t i, k;

	if (acl_allows(pol->acl, pol->n_acl, &req->internal_addr,
	    POLICY_PORT_FIRST, req->internal_port))
		return true;
	for (i = 0; i < pol->n_acl; i++) {
		r = &pol->acl[i];
		cand[0] = r->ext_min;
		cand[1] = (uint32_t)r->ext_max + 1;
		for (k = 0; k < 2; k++) {
			if (cand[k] < POLICY_PORT_FIRST || cand[k] > UINT16_MAX)
				continue;
			if (acl_allows(pol->acl, pol->n_acl,
			    &req->internal_addr, (uint16_t)cand[k],
			    req->internal_port))
				return true;
		}
	}
	return false;
}

static enum map_err
policy_check_acl(const struct policy *pol, const struct map_req *req)
{
	if ((req->flags & MAP_F_PREFER_FAILURE) != 0 && req->ext_port != 0) {
		if (!acl_allows(pol->acl, pol->n_acl, &req->internal_addr,
		    req->ext_port, req->internal_port))
			return MAP_ERR_NOT_AUTHORIZED;
		return MAP_OK;
	}
	/* RFC 6887 §11.3: a forbidden hint is moved, not failed; fail only
	   when no port at all would do. */
	if (!acl_allows_some_port(pol, req))
		return MAP_ERR_NOT_AUTHORIZED;
	return MAP_OK;
}

static enum map_err
policy_check_quota(const struct policy *pol, const struct table *t,
    const struct map_req *req)
{
	if (pol->max_mappings_per_host == 0)
		return MAP_OK;
	/* A refresh of an existing mapping is not a new one. */
	if (table_find_internal(t, req->protocol, &req->internal_addr,
	    req->internal_port) != NULL)
		return MAP_OK;
	if (table_count_host(t, &req->internal_addr) >=
	    pol->max_mappings_per_host)
		return MAP_ERR_QUOTA;
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
	if (!IN6_ARE_ADDR_EQUAL(&req->internal_addr, &req->requester)) {
		if (!pol->third_party)
			return MAP_ERR_THIRD_PARTY_DENIED;
		if (!policy_is_lan(pol, &req->internal_addr))
			return MAP_ERR_NOT_AUTHORIZED;
	}
	if (req->lifetime == 0 || (req->flags & MAP_F_DELETE) != 0)
		return MAP_OK;
	if ((req->flags & MAP_F_PREFER_FAILURE) != 0 &&
	    port_is_pcp_reserved(req->protocol, req->ext_port))
		return MAP_ERR_RESERVED_PORT;
	if ((err = policy_check_acl(pol, req)) != MAP_OK)
		return err;
	if ((err = policy_check_quota(pol, t, req)) != MAP_OK)
		return err;
	*lifetime = policy_clamp_lifetime(pol, req->lifetime);
	return MAP_OK;
}
