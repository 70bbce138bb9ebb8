/*
 * pcp_server.h - the PCP server front-end on the LAN, pure layer: one
 * received datagram in, one decision out (drop, reply now, hand version 0
 * to NAT-PMP, or submit a struct map_req to the proxy core), and the reply
 * for a submitted request built from its struct map_result.
 *
 * No sockets, no clock, no globals: the I/O layer (pcp_frontend.h) owns the
 * sockets and the pending records, the proxy core owns policy, the table and
 * the upstream (STYLE.md habit 3: front-ends translate, the core decides).
 *
 * What this front-end answers by itself, and why (RFC 6887 unless named):
 *   - the §8.2 pipeline errors of the codec (UNSUPP_VERSION, MALFORMED_*,
 *     ADDRESS_MISMATCH, UNSUPP_OPCODE, UNSUPP_OPTION, ...);
 *   - ANNOUNCE: SUCCESS, lifetime 0, our epoch (§14.1.2);
 *   - PEER with an invalid remote peer (unspecified, loopback, multicast,
 *     broadcast, or not the internal address's family): MALFORMED_REQUEST
 *     (§12.3); a valid PEER is submitted like MAP, with MAP_F_PEER;
 *   - MAP for protocols other than TCP/UDP, for "all ports" (internal port
 *     0) and "all protocols" (DMZ): UNSUPP_PROTOCOL (§11.3, S-07);
 *   - THIRD_PARTY when the configuration forbids it, or from a host not
 *     named by third_party_host: UNSUPP_OPTION (§13.1, S-11: "prohibited
 *     or from an unauthorised client"); THIRD_PARTY_ID (RFC 7843):
 *     UNSUPP_OPTION;
 *   - FILTER with a non-zero prefix: UNSUPP_OPTION (see pcp_server.c);
 *   - an opcode it does not know: UNSUPP_OPCODE, unless relaying (RFC 7648
 *     §3.4.2, P-16..P-18): then PCP_SERVER_RELAY, and pcp_relay.h sends
 *     the packet upstream. AUTHENTICATION (opcode 3, RFC 7652) is known
 *     and unsupported, ANNOUNCE answered here (P-19): neither is relayed.
 *     Unknown mandatory options in MAP/PEER get UNSUPP_OPTION even when
 *     relaying (see pcp_server_relay_flags() in pcp_server.c).
 */
#ifndef IWFD_PCP_SERVER_H
#define IWFD_PCP_SERVER_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "map.h"
#include "pcp_wire.h"

#define PCP_NATPMP_VERSION	0	/* RFC 6886 §3; RFC 6887 App. A */

struct policy;

struct pcp_server_conf {
	/* third_party = allow: honour THIRD_PARTY from the LAN hosts the
	   policy names (§13.1; default deny on a CPE, RECOMMENDED). */
	bool		 third_party_allowed;
	/* With third_party_allowed: who may (policy_third_party_ok); the
	   others get UNSUPP_OPTION here. NULL: every host passes this
	   layer and the core's policy_check step 3 decides alone. */
	const struct policy *policy;
	/* A NAT-PMP front-end takes version 0 on this port (App. A). When
	   false, version 0 gets PCP's UNSUPP_VERSION like any other. */
	bool		 natpmp;
	/* RFC 7648 §3.4.2 (P-16, P-17): requests with an opcode this server
	   does not know go to a relay (pcp_relay.h). Set only when there is
	   one, i.e. an upstream server to relay to; false: UNSUPP_OPCODE
	   (P-18, and the gateway that is the last NAT). */
	bool		 relay_unknown;
	/* pcp = no (with natpmp): PCP requests go to the NAT-PMP front-end
	   too, which answers them as a NAT-PMP-only server does. */
	bool		 pcp_off;
};

enum pcp_server_action {
	PCP_SERVER_DROP = 0,	/* silently (§8.2) */
	PCP_SERVER_REPLY,	/* send out->reply[0 .. out->reply_len) */
	PCP_SERVER_SUBMIT,	/* proxy_submit(out->req); reply later with
				   pcp_server_reply() over the same packet */
	PCP_SERVER_NATPMP,	/* version 0: the NAT-PMP front-end's */
	PCP_SERVER_RELAY,	/* unknown opcode, conf->relay_unknown: relay
				   the packet as received (RFC 7648 §3.4.2) */
};

struct pcp_server_req {
	enum pcp_server_action action;
	/* REPLY: the result code sent (for logs and counters). */
	enum pcp_result	 result;
	size_t		 reply_len;
	uint8_t		 reply[PCP_MAX_SIZE];
	/* SUBMIT: the request in the common model. */
	struct map_req	 req;
};

/* Is this datagram the NAT-PMP front-end's (RFC 6887 App. A: version 0,
   or every datagram with pcp = no)? Looks at the first octet only. */
bool	pcp_server_is_natpmp(const struct pcp_server_conf *,
	    const uint8_t *pkt, size_t len);

/*
 * Decide what to do with one datagram that arrived on a LAN interface
 * (the interface check, §8.2's first step, is the I/O layer's). src is the
 * source address (IPv4-mapped for IPv4), src_port its port, epoch our
 * current Epoch Time (§8.5) for replies made now. Returns out->action.
 */
enum pcp_server_action pcp_server_handle(const struct pcp_server_conf *,
	    const uint8_t *pkt, size_t len, const struct in6_addr *src,
	    uint16_t src_port, uint32_t epoch, struct pcp_server_req *out);

/*
 * The response to a request pcp_server_handle() submitted: pkt/len are the
 * request as received, req the struct map_req it produced, res the core's
 * answer, epoch our Epoch Time now. Success: the §8.2 success layout (MAP
 * body with the assigned external address and port, the options that were
 * processed). Error: the §8.2 error layout (a copy of the request, every
 * option echoed, the suggestion echoed in the assigned fields) with the
 * upstream's result code when the core relays one (spec/pcp.md §2.4),
 * else map_err_row(res->err)->pcp_result. Returns the length (a multiple
 * of 4, at most PCP_MAX_SIZE), 0 if pkt is not a request this module
 * submitted or cap is too small.
 */
size_t	pcp_server_reply(const uint8_t *pkt, size_t len,
	    const struct map_req *req, const struct map_result *res,
	    uint32_t epoch, uint8_t *out, size_t cap);

/*
 * Our own error response to a request pcp_server_handle() accepted (SUBMIT
 * or RELAY) when it cannot be served after all (a relay that is full:
 * NO_RESOURCES, an upstream that cannot be reached: NETWORK_FAILURE): the
 * §8.2 copy of the request with rc, the §7.4 lifetime of rc's class and
 * epoch, reserved octets zero (§7.2: it parsed). Returns the length, 0 if
 * len < 2 or cap is too small.
 */
size_t	pcp_server_refuse(const uint8_t *pkt, size_t len,
	    enum pcp_result rc, uint32_t epoch, uint8_t *out, size_t cap);

/*
 * The unsolicited ANNOUNCE response (§14.1.3): SUCCESS, lifetime 0, epoch,
 * no options. Returns its length (PCP_HDR_SIZE), 0 if cap is too small.
 */
size_t	pcp_server_announce(uint32_t epoch, uint8_t *out, size_t cap);

#endif
