/*
 * map.h - the common mapping model every front-end translates into
 * (DESIGN.md "Data flow"): a PCP MAP, a NAT-PMP map request and a UPnP
 * AddPortMapping all become one struct map_req; the answer is a
 * struct map_result that each front-end encodes in its own protocol.
 */
#ifndef IWFD_MAP_H
#define IWFD_MAP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "map_err.h"

#define MAP_NONCE_SIZE		12	/* RFC 6887 §11.1 */
#define MAP_DESCRIPTION_MAX	128	/* RFC 7220 §4: store at least 128 */
#define MAP_LEASE_NONE		0
#define MAP_LEASE_INFINITE	UINT32_MAX
#define MAP_PROTO_TCP		6	/* IANA protocol numbers, as PCP uses */
#define MAP_PROTO_UDP		17

enum map_origin {
	MAP_ORIGIN_PCP = 0,
	MAP_ORIGIN_NATPMP,
	MAP_ORIGIN_UPNP,
	MAP_ORIGIN_CONTROL,		/* pcp-iwfctl / static */
	MAP_ORIGIN_COUNT
};

/* Request flags. */
#define MAP_F_PREFER_FAILURE	0x01	/* exact external port or fail */
#define MAP_F_ANY_PORT		0x02	/* UPnP AddAnyPortMapping */
#define MAP_F_DELETE		0x04	/* lifetime 0 */
#define MAP_F_THIRD_PARTY	0x08	/* internal_addr != requester */
#define MAP_F_HAS_DESCRIPTION	0x10	/* description given (may be empty) */
#define MAP_F_STATIC		0x20	/* manual mapping (control origin):
					   no nonce check, clients cannot
					   delete it (RFC 6887 §11.3, §15) */
#define MAP_F_PEER		0x40	/* PCP PEER (RFC 6887 §12): the
					   outbound flow to peer_addr:
					   peer_port; never a delete */

struct map_req {
	enum map_origin	 origin;
	struct in6_addr	 requester;	/* source address of the request */
	uint16_t	 requester_port;/* its source port (PCP/NAT-PMP) */
	struct in6_addr	 internal_addr;	/* == requester unless third party */
	uint8_t		 protocol;	/* MAP_PROTO_* (0: all, PCP only) */
	uint16_t	 internal_port;
	uint16_t	 ext_port;	/* suggested; 0 = no preference */
	struct in6_addr	 ext_addr;	/* suggested; any = no preference */
	uint32_t	 lifetime;	/* requested seconds */
	uint8_t		 nonce[MAP_NONCE_SIZE];	/* mapping identity */
	unsigned int	 flags;		/* MAP_F_* */
	/* MAP_F_PEER: the remote peer as the client sees it (§12.1) */
	struct in6_addr	 peer_addr;
	uint16_t	 peer_port;
	char		 description[MAP_DESCRIPTION_MAX + 1];
	/*
	 * The client's own lease, for clients that do not renew (UPnP IGD,
	 * RFC 6970 §5.9, I-07): MAP_LEASE_NONE (the client renews itself,
	 * PCP and NAT-PMP), seconds, or MAP_LEASE_INFINITE (IGD:1 lease 0:
	 * until deleted). A lease longer than what the upstream grants is
	 * kept alive by the proxy, which renews upstream by itself until it
	 * ends; the renewal replies reach no client.
	 */
	uint32_t	 lease;
	/* How long the front-end's client waits for a later answer before
	   it gets NETWORK_FAILURE; 0 = the proxy's default (client_wait_ms).
	   NAT-PMP clients retry for ~128 s and wait longer than PCP's
	   (spec/iwf.md §2 "Timing"). */
	uint32_t	 wait_ms;
};

struct map_result {
	enum map_err	 err;
	struct in6_addr	 ext_addr;	/* what the outside world uses */
	uint16_t	 ext_port;
	uint32_t	 lifetime;	/* granted, or error lifetime */
	/* The PCP result code the upstream server answered, or -1. The PCP
	   front-end relays it as is (spec/pcp.md §2.4); the other front-ends
	   go through err. */
	int16_t		 upstream_result;
};

const char	*map_origin_name(enum map_origin);
const char	*map_proto_name(uint8_t);	/* "tcp", "udp", or NULL */
/* "tcp"/"udp" (any case) or a number 0..255 -> protocol; -1 if bad. */
int		 map_proto_parse(const char *);

#endif
