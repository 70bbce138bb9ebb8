/*
 * map_err.c - the one error translation table (STYLE.md habit 4).
 *
 * Sources: RFC 6887 §7.4 (PCP codes and lifetimes), RFC 6886 §3.5 (NAT-PMP),
 * RFC 6970 §4.3 and spec/iwf.md §2, §3.4, §4.3 (UPnP codes and the PCP ->
 * NAT-PMP / UPnP translations).
 */
#include <stddef.h>

#include "map_err.h"
#include "pcp_wire.h"

/* NAT-PMP result codes, RFC 6886 §3.5. */
#define NATPMP_SUCCESS		0
#define NATPMP_REFUSED		2
#define NATPMP_NETWORK_FAILURE	3
#define NATPMP_NO_RESOURCES	4
#define NATPMP_UNSUPP_OPCODE	5

static const struct map_err_row map_err_table[MAP_ERR_COUNT] = {
	[MAP_OK] = { MAP_OK, "OK",
	    PCP_SUCCESS, MAP_LIFE_NONE, NATPMP_SUCCESS, 0, 0,
	    "success" },
	[MAP_ERR_NOT_AUTHORIZED] = { MAP_ERR_NOT_AUTHORIZED, "NOT_AUTHORIZED",
	    PCP_NOT_AUTHORIZED, MAP_LIFE_LONG, NATPMP_REFUSED, 718, 606,
	    "not authorized" },
	/* RFC 6887 §13.1: THIRD_PARTY prohibited -> UNSUPP_OPTION (MUST);
	   UPnP: spec/iwf.md U-04, 606 (v2) / 718 (v1). */
	[MAP_ERR_THIRD_PARTY_DENIED] = { MAP_ERR_THIRD_PARTY_DENIED,
	    "THIRD_PARTY_DENIED", PCP_UNSUPP_OPTION, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 718, 606, "mapping for another host denied" },
	[MAP_ERR_MALFORMED] = { MAP_ERR_MALFORMED, "MALFORMED",
	    PCP_MALFORMED_REQUEST, MAP_LIFE_LONG, NATPMP_REFUSED, 402, 402,
	    "malformed request" },
	[MAP_ERR_INVALID_ARGS] = { MAP_ERR_INVALID_ARGS, "INVALID_ARGS",
	    PCP_MALFORMED_REQUEST, MAP_LIFE_LONG, NATPMP_REFUSED, 402, 402,
	    "invalid arguments" },
	/* spec/iwf.md §2: 9 -> NAT-PMP 2; §4.3: 9 -> UPnP 501. */
	[MAP_ERR_UNSUPP_PROTOCOL] = { MAP_ERR_UNSUPP_PROTOCOL,
	    "UNSUPP_PROTOCOL", PCP_UNSUPP_PROTOCOL, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 501, 501, "protocol not supported" },
	/* An external port held by another host: PCP only fails on it with
	   PREFER_FAILURE (§11.3); UPnP 718 (U-07). */
	[MAP_ERR_CONFLICT] = { MAP_ERR_CONFLICT, "CONFLICT",
	    PCP_CANNOT_PROVIDE_EXTERNAL, MAP_LIFE_SHORT, NATPMP_NO_RESOURCES,
	    718, 718, "external port in use by another mapping" },
	[MAP_ERR_CANNOT_PROVIDE_EXTERNAL] = { MAP_ERR_CANNOT_PROVIDE_EXTERNAL,
	    "CANNOT_PROVIDE_EXTERNAL", PCP_CANNOT_PROVIDE_EXTERNAL,
	    MAP_LIFE_SHORT, NATPMP_NO_RESOURCES, 718, 718,
	    "suggested external address/port cannot be provided" },
	/* RFC 6887 §17.2 quota; UPnP 501 (v1, as miniupnpd) / 728 (v2). */
	[MAP_ERR_QUOTA] = { MAP_ERR_QUOTA, "QUOTA",
	    PCP_USER_EX_QUOTA, MAP_LIFE_SHORT, NATPMP_NO_RESOURCES, 501, 728,
	    "per-host mapping quota exceeded" },
	[MAP_ERR_NO_RESOURCES] = { MAP_ERR_NO_RESOURCES, "NO_RESOURCES",
	    PCP_NO_RESOURCES, MAP_LIFE_SHORT, NATPMP_NO_RESOURCES, 501, 728,
	    "no resources" },
	/* RFC 6970 §5.1: unreachable server -> 501. */
	[MAP_ERR_NETWORK_FAILURE] = { MAP_ERR_NETWORK_FAILURE,
	    "NETWORK_FAILURE", PCP_NETWORK_FAILURE, MAP_LIFE_SHORT,
	    NATPMP_NETWORK_FAILURE, 501, 501, "upstream network failure" },
	/* RFC 6887 §15: deleting a missing mapping is SUCCESS; RFC 6886 §3.4
	   likewise; UPnP DeletePortMapping answers 714 (RFC 6970 §5.8). */
	[MAP_ERR_NOT_FOUND] = { MAP_ERR_NOT_FOUND, "NOT_FOUND",
	    PCP_SUCCESS, MAP_LIFE_NONE, NATPMP_SUCCESS, 714, 714,
	    "no such mapping" },
	/* RFC 6887 §11.3: never map external 5350/5351. */
	[MAP_ERR_RESERVED_PORT] = { MAP_ERR_RESERVED_PORT, "RESERVED_PORT",
	    PCP_CANNOT_PROVIDE_EXTERNAL, MAP_LIFE_LONG, NATPMP_NO_RESOURCES,
	    718, 729, "external port reserved by the gateway" },
	/* spec/iwf.md §2, §4.3: upstream codes 1, 3-6, 12, 13 (a bug or an
	   incompatibility, or a non-PCP NAT above us). */
	[MAP_ERR_UPSTREAM_PROTOCOL] = { MAP_ERR_UPSTREAM_PROTOCOL,
	    "UPSTREAM_PROTOCOL", PCP_NETWORK_FAILURE, MAP_LIFE_SHORT,
	    NATPMP_NETWORK_FAILURE, 501, 501,
	    "upstream server rejected the request" },
	[MAP_ERR_INTERNAL] = { MAP_ERR_INTERNAL, "INTERNAL",
	    PCP_NO_RESOURCES, MAP_LIFE_SHORT, NATPMP_NETWORK_FAILURE, 501, 501,
	    "internal error" },
	[MAP_ERR_WILDCARD_EXT_PORT] = { MAP_ERR_WILDCARD_EXT_PORT,
	    "WILDCARD_EXT_PORT", PCP_MALFORMED_REQUEST, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 716, 716, "external port 0 not permitted" },
	/* spec/iwf.md §3.5: InternalPort 0 -> 732 (v2), 402 (v1). */
	[MAP_ERR_WILDCARD_INT_PORT] = { MAP_ERR_WILDCARD_INT_PORT,
	    "WILDCARD_INT_PORT", PCP_MALFORMED_REQUEST, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 402, 732, "internal port 0 not permitted" },
	[MAP_ERR_REMOTE_HOST_WILDCARD] = { MAP_ERR_REMOTE_HOST_WILDCARD,
	    "REMOTE_HOST_WILDCARD", PCP_MALFORMED_REQUEST, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 726, 726, "remote host must be a wildcard" },
	[MAP_ERR_INDEX_INVALID] = { MAP_ERR_INDEX_INVALID, "INDEX_INVALID",
	    PCP_MALFORMED_REQUEST, MAP_LIFE_LONG, NATPMP_REFUSED, 713, 713,
	    "array index out of range" },
	[MAP_ERR_RANGE_EMPTY] = { MAP_ERR_RANGE_EMPTY, "RANGE_EMPTY",
	    PCP_SUCCESS, MAP_LIFE_NONE, NATPMP_SUCCESS, 714, 730,
	    "no mapping in the range" },
	[MAP_ERR_INCONSISTENT] = { MAP_ERR_INCONSISTENT, "INCONSISTENT",
	    PCP_MALFORMED_REQUEST, MAP_LIFE_LONG, NATPMP_REFUSED, 402, 733,
	    "inconsistent parameters" },
	/* UPnP Device Architecture: an action the service does not have. */
	[MAP_ERR_INVALID_ACTION] = { MAP_ERR_INVALID_ACTION,
	    "INVALID_ACTION", PCP_UNSUPP_OPCODE, MAP_LIFE_LONG,
	    NATPMP_UNSUPP_OPCODE, 401, 401, "invalid action" },
	/* spec/iwf.md §3.3 [derived]: SetConnectionType, RequestConnection,
	   ForceTermination, SetDefaultConnectionService - the IWF does not
	   own the WAN connection (miniupnpd answers 606 too). */
	[MAP_ERR_ACTION_DENIED] = { MAP_ERR_ACTION_DENIED, "ACTION_DENIED",
	    PCP_NOT_AUTHORIZED, MAP_LIFE_LONG, NATPMP_REFUSED, 606, 606,
	    "action not authorized" },
	/* spec/iwf.md §4.3 [derived]: the port or the internal endpoint is
	   held by another mechanism's mapping -> 729 on IGD:2; IGD:1 has no
	   such code: 718. */
	[MAP_ERR_OTHER_MECHANISM] = { MAP_ERR_OTHER_MECHANISM,
	    "OTHER_MECHANISM", PCP_NOT_AUTHORIZED, MAP_LIFE_LONG,
	    NATPMP_REFUSED, 718, 729,
	    "held by a mapping of another protocol" },
};

static const struct {
	unsigned int	 code;
	const char	*name;
} upnp_names[] = {
	{ 401, "Invalid Action" },
	{ 402, "Invalid Args" },
	{ 501, "Action Failed" },
	{ 606, "Action not authorized" },
	{ 713, "SpecifiedArrayIndexInvalid" },
	{ 714, "NoSuchEntryInArray" },
	{ 715, "WildCardNotPermittedInSrcIP" },
	{ 716, "WildCardNotPermittedInExtPort" },
	{ 718, "ConflictInMappingEntry" },
	{ 724, "SamePortValuesRequired" },
	{ 725, "OnlyPermanentLeasesSupported" },
	{ 726, "RemoteHostOnlySupportsWildcard" },
	{ 727, "ExternalPortOnlySupportsWildcard" },
	{ 728, "NoPortMapsAvailable" },
	{ 729, "ConflictWithOtherMechanisms" },
	{ 730, "PortMappingNotFound" },
	{ 732, "WildCardNotPermittedInIntPort" },
	{ 733, "InconsistentParameters" },
};

const struct map_err_row *
map_err_row(enum map_err err)
{
	if ((unsigned int)err >= MAP_ERR_COUNT)
		err = MAP_ERR_INTERNAL;
	return &map_err_table[err];
}

const char *
map_err_name(enum map_err err)
{
	return map_err_row(err)->name;
}

const char *
map_err_upnp_name(unsigned int code)
{
	size_t i;

	for (i = 0; i < sizeof(upnp_names) / sizeof(upnp_names[0]); i++)
		if (upnp_names[i].code == code)
			return upnp_names[i].name;
	return NULL;
}

enum map_err
map_err_from_pcp(unsigned int result)
{
	switch (result) {
	case PCP_SUCCESS:
		return MAP_OK;
	case PCP_NOT_AUTHORIZED:
		return MAP_ERR_NOT_AUTHORIZED;
	case PCP_UNSUPP_PROTOCOL:
		return MAP_ERR_UNSUPP_PROTOCOL;
	case PCP_NETWORK_FAILURE:
	/* spec/pcp.md §2.4: ADDRESS_MISMATCH from upstream means a non-PCP
	   NAT sits above the proxy. */
	case PCP_ADDRESS_MISMATCH:
		return MAP_ERR_NETWORK_FAILURE;
	case PCP_NO_RESOURCES:
		return MAP_ERR_NO_RESOURCES;
	case PCP_USER_EX_QUOTA:
		return MAP_ERR_QUOTA;
	case PCP_CANNOT_PROVIDE_EXTERNAL:
		return MAP_ERR_CANNOT_PROVIDE_EXTERNAL;
	default:
		return MAP_ERR_UPSTREAM_PROTOCOL;
	}
}

uint32_t
map_err_pcp_lifetime(enum map_err err)
{
	switch (map_err_row(err)->pcp_life) {
	case MAP_LIFE_SHORT:
		return PCP_LIFETIME_SHORT_ERR;
	case MAP_LIFE_LONG:
		return PCP_LIFETIME_LONG_ERR;
	default:
		return 0;
	}
}
