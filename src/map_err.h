/*
 * map_err.h - the neutral error enum and its one translation table
 * (STYLE.md habit 4). Every front-end turns an enum map_err into its own
 * protocol's code through map_err_row(); no literal codes at call sites.
 */
#ifndef IWFD_MAP_ERR_H
#define IWFD_MAP_ERR_H

#include <stdint.h>

enum map_err {
	MAP_OK = 0,
	MAP_ERR_NOT_AUTHORIZED,		/* policy/ACL deny, nonce mismatch */
	MAP_ERR_THIRD_PARTY_DENIED,	/* mapping for another host */
	MAP_ERR_MALFORMED,		/* bad request (PCP MALFORMED_REQUEST) */
	MAP_ERR_INVALID_ARGS,		/* bad argument (UPnP 402) */
	MAP_ERR_UNSUPP_PROTOCOL,
	MAP_ERR_CONFLICT,		/* external port held by another host */
	MAP_ERR_CANNOT_PROVIDE_EXTERNAL,/* PREFER_FAILURE could not be met */
	MAP_ERR_QUOTA,			/* per-host quota */
	MAP_ERR_NO_RESOURCES,		/* table full, no free port */
	MAP_ERR_NETWORK_FAILURE,	/* upstream unreachable/timed out */
	MAP_ERR_NOT_FOUND,		/* delete/lookup of a missing mapping */
	MAP_ERR_RESERVED_PORT,		/* 5350/5351 or the gateway's own */
	MAP_ERR_UPSTREAM_PROTOCOL,	/* upstream answered with a code that
					   means a bug or incompatibility */
	MAP_ERR_INTERNAL,		/* our failure (nft, memory) */
	/* UPnP argument errors (spec/iwf.md §3.4); PCP/NAT-PMP never see
	   them from their own decoders, the rows still give their codes. */
	MAP_ERR_WILDCARD_EXT_PORT,	/* ExternalPort 0 in AddPortMapping */
	MAP_ERR_WILDCARD_INT_PORT,	/* InternalPort 0 */
	MAP_ERR_REMOTE_HOST_WILDCARD,	/* v1: RemoteHost must be empty */
	MAP_ERR_INDEX_INVALID,		/* GetGeneric index past the end */
	MAP_ERR_RANGE_EMPTY,		/* nothing in the port range */
	MAP_ERR_INCONSISTENT,		/* StartPort > EndPort etc. */
	/* UPnP action layer (iwf/upnp_soap.c, spec/iwf.md §3.3, §4.3). */
	MAP_ERR_INVALID_ACTION,		/* unknown action (UPnP 401) */
	MAP_ERR_ACTION_DENIED,		/* an action the IWF never performs
					   (UPnP 606 in both versions) */
	MAP_ERR_OTHER_MECHANISM,	/* held by a NAT-PMP, PCP or static
					   mapping (UPnP 718 / 729) */
	MAP_ERR_COUNT
};

/* How long a PCP error lasts (RFC 6887 §7.4). */
enum map_err_life {
	MAP_LIFE_NONE = 0,		/* success */
	MAP_LIFE_SHORT,			/* 30 s */
	MAP_LIFE_LONG,			/* 30 min */
};

struct map_err_row {
	enum map_err	 err;
	const char	*name;		/* "CONFLICT", for logs and JSON */
	uint8_t		 pcp_result;	/* RFC 6887 §7.4 */
	enum map_err_life pcp_life;
	uint16_t	 natpmp_result;	/* RFC 6886 §3.5 */
	uint16_t	 upnp_v1;	/* WANIPConnection:1 code */
	uint16_t	 upnp_v2;	/* WANIPConnection:2 code */
	const char	*text;		/* log text */
};

const struct map_err_row *map_err_row(enum map_err);
const char	*map_err_name(enum map_err);
/* UPnP error description for a code ("ConflictInMappingEntry"), or NULL. */
const char	*map_err_upnp_name(unsigned int);
/* PCP result code received from upstream -> neutral error. */
enum map_err	 map_err_from_pcp(unsigned int);
/* Seconds for the PCP error lifetime class. */
uint32_t	 map_err_pcp_lifetime(enum map_err);

#endif
