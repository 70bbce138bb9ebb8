/*
 * pcp_server.c - the PCP server front-end, pure layer: a datagram from the
 * LAN becomes a drop, a reply, a hand-over to NAT-PMP, or a struct map_req
 * for the proxy core; a struct map_result becomes the MAP response.
 *
 * The codec (pcp_wire.c) runs the RFC 6887 §8.2 pipeline; this file adds
 * what a server of *this* gateway does not implement, and says so with the
 * code the RFC gives for it. Policy, the table and the upstream are the
 * core's (STYLE.md habit 3).
 */
#include <string.h>

#include "cursor.h"
#include "map_err.h"
#include "pcp_server.h"
#include "policy.h"

/* §7.2: octets 12..23 of a response are reserved (0) once the request
 * parsed; the codec's error builder copies the Client IP's last 96 bits
 * there, which §7.2 asks for only when the request did not parse. */
#define PCP_RESP_RESERVED_OFF	12
#define PCP_RESP_RESERVED_SIZE	12

/* RFC 3629 §3: continuation octets are 10xxxxxx. */
#define UTF8_CONT_MASK		0xc0
#define UTF8_CONT_BITS		0x80

static uint32_t
pcp_server_error_lifetime(enum pcp_result rc)
{
	/* §7.4: short (30 s) for 7, 8, 10; long (30 min) for the rest */
	return pcp_result_is_short(rc) ? PCP_LIFETIME_SHORT_ERR :
	    PCP_LIFETIME_LONG_ERR;
}

/*
 * §8.2 error response: the request copied, R set, result, lifetime, epoch.
 * parsed: the request was understood (the refusal is ours, not a parse
 * failure), so the reserved octets are zeroed (§7.2).
 */
static size_t
pcp_server_error_wire(const uint8_t *pkt, size_t len, enum pcp_result rc,
    uint32_t lifetime, uint32_t epoch, bool parsed, uint8_t *out, size_t cap)
{
	size_t n;

	n = pcp_encode_error(pkt, len, rc, lifetime, epoch, out, cap);
	if (n >= PCP_HDR_SIZE && parsed)
		memset(out + PCP_RESP_RESERVED_OFF, 0, PCP_RESP_RESERVED_SIZE);
	return n;
}

static enum pcp_server_action
pcp_server_error(struct pcp_server_req *out, const uint8_t *pkt, size_t len,
    enum pcp_result rc, uint32_t epoch, bool parsed)
{
	out->reply_len = pcp_server_error_wire(pkt, len, rc,
	    pcp_server_error_lifetime(rc), epoch, parsed, out->reply,
	    sizeof(out->reply));
	out->result = rc;
	out->action = out->reply_len > 0 ? PCP_SERVER_REPLY : PCP_SERVER_DROP;
	return out->action;
}

size_t
pcp_server_refuse(const uint8_t *pkt, size_t len, enum pcp_result rc,
    uint32_t epoch, uint8_t *out, size_t cap)
{
	if (pkt == NULL || out == NULL)
		return 0;
	return pcp_server_error_wire(pkt, len, rc,
	    pcp_server_error_lifetime(rc), epoch, true, out, cap);
}

size_t
pcp_server_announce(uint32_t epoch, uint8_t *out, size_t cap)
{
	struct wbuf w;

	if (out == NULL)
		return 0;
	/*
	 * §7.2 response header, §14.1.1: no opcode data, lifetime 0. No
	 * options: PREFIX64 (RFC 7225 §4) MUST be omitted when no prefix is
	 * configured, and none is.
	 */
	wbuf_init(&w, out, cap);
	wbuf_u8(&w, PCP_VERSION);
	wbuf_u8(&w, PCP_R_BIT | PCP_OP_ANNOUNCE);
	wbuf_u8(&w, 0);				/* reserved */
	wbuf_u8(&w, PCP_SUCCESS);
	wbuf_u32(&w, 0);			/* lifetime */
	wbuf_u32(&w, epoch);
	wbuf_zero(&w, PCP_RESP_RESERVED_SIZE);
	return w.err ? 0 : w.len;
}

/*
 * RFC 7220 §4: store at least 128 octets, truncating if needed, and echo
 * what was stored. The text is valid UTF-8 (checked by the codec); cut it
 * before a character that does not fit whole, so what is stored and echoed
 * stays valid UTF-8.
 */
static size_t
pcp_server_utf8_cut(const char *s, size_t len, size_t max)
{
	if (len <= max)
		return len;
	while (max > 0 &&
	    ((uint8_t)s[max] & UTF8_CONT_MASK) == UTF8_CONT_BITS)
		max--;
	return max;
}

/*
 * What this gateway does not implement in a MAP request, in the order of
 * the request's fields, then its options (§7.3: options in order; §7.4:
 * the most specific error).
 */
/* §13.1, S-11: may src send THIRD_PARTY? Deny stops here; allow asks the
   policy (third_party_host), so an unlisted host is refused before its
   request reaches the core (which checks again: policy_check step 3). */
static bool
pcp_server_third_party_ok(const struct pcp_server_conf *conf,
    const struct in6_addr *src)
{
	if (!conf->third_party_allowed)
		return false;
	return conf->policy == NULL || policy_third_party_ok(conf->policy, src);
}

static enum pcp_result
pcp_server_map_refusal(const struct pcp_server_conf *conf,
    const struct pcp_msg *m, const struct in6_addr *src)
{
	uint8_t i;

	/*
	 * §11.3, S-07: the gateway maps TCP and UDP ports one by one. Other
	 * protocols, "all ports of a protocol" (internal port 0) and "all
	 * protocols" (DMZ, protocol 0 / port 0) cannot be fully provided:
	 * UNSUPP_PROTOCOL. Deletes of such mappings get the same answer,
	 * as no such mapping can exist here. (Protocol 0 with a port is
	 * MALFORMED_REQUEST, from the codec.)
	 */
	if (m->protocol != MAP_PROTO_TCP && m->protocol != MAP_PROTO_UDP)
		return PCP_UNSUPP_PROTOCOL;
	if (m->internal_port == 0)
		return PCP_UNSUPP_PROTOCOL;
	/* §13.1, S-11: THIRD_PARTY prohibited or not authorised MUST give
	   UNSUPP_OPTION (a CPE prohibits it by default, RECOMMENDED). */
	if (m->has_third_party && !pcp_server_third_party_ok(conf, src))
		return PCP_UNSUPP_OPTION;
	/* RFC 7843 §5.2: a server that does not support THIRD_PARTY_ID
	   MUST answer UNSUPP_OPTION. It belongs to carrier equipment
	   (spec/pcp.md §3); a home gateway never takes it from the LAN. */
	if (m->has_third_party_id)
		return PCP_UNSUPP_OPTION;
	/*
	 * FILTER (§13.3). The core keeps no filters yet: neither the table,
	 * the nft backend nor the upstream leg carries them. S-12 says every
	 * server MUST support at least one filter per mapping; we do not,
	 * and say so: §7.3 gives UNSUPP_OPTION for a mandatory option that
	 * is "unimplemented". The alternatives lie: granting the mapping
	 * without the filter while echoing FILTER tells the client a
	 * security restriction is in force that is not; dropping the option
	 * from the reply is not allowed for a mandatory option (§7.3 MUST
	 * process). Prefix length 0 means "remove all filters" (§13.3): a
	 * mapping here never has any, so that request is met as asked and
	 * the option is processed (and echoed). Revisit with S-12.
	 */
	for (i = 0; i < m->n_filters; i++)
		if (m->filters[i].prefix_len != 0)
			return PCP_UNSUPP_OPTION;
	return PCP_SUCCESS;
}

/*
 * §12.3: a device that validates the destinations of implicit mappings
 * SHOULD validate a PEER's remote peer the same way; an invalid one is
 * MALFORMED_REQUEST. Ours: unspecified, loopback, multicast or broadcast
 * destinations never leave through a NAT, and §12.1 puts the remote peer
 * in the internal address's family.
 */
static bool
pcp_server_peer_valid(const struct pcp_msg *m, const struct in6_addr *src)
{
	const struct in6_addr *a = &m->peer_addr;
	const struct in6_addr *internal = m->has_third_party ?
	    &m->third_party : src;
	uint8_t first;

	if (pcp_addr_is_v4(a) != pcp_addr_is_v4(internal))
		return false;
	if (pcp_addr_is_v4(a)) {
		first = a->s6_addr[12];
		/* 0/8, 127/8, 224/4 and up (multicast, reserved, broadcast) */
		return first != 0 && first != 127 && first < 224;
	}
	return !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_LOOPBACK(a) &&
	    !IN6_IS_ADDR_MULTICAST(a);
}

static void
pcp_server_map_req(const struct pcp_msg *m, const struct in6_addr *src,
    uint16_t src_port, struct map_req *r)
{
	size_t n;

	memset(r, 0, sizeof(*r));
	r->origin = MAP_ORIGIN_PCP;
	r->requester = *src;
	r->requester_port = src_port;
	/* §11.1: the internal address is the source unless THIRD_PARTY */
	if (m->has_third_party) {
		r->internal_addr = m->third_party;
		r->flags |= MAP_F_THIRD_PARTY;
	} else
		r->internal_addr = *src;
	r->protocol = m->protocol;
	r->internal_port = m->internal_port;
	r->ext_port = m->ext_port;
	r->ext_addr = m->ext_addr;
	r->lifetime = m->lifetime;
	memcpy(r->nonce, m->nonce, sizeof(r->nonce));
	if (m->prefer_failure)
		r->flags |= MAP_F_PREFER_FAILURE;
	if (m->opcode == PCP_OP_PEER) {
		/* §12.1: the remote peer is part of the key; lifetime 0 is
		   no delete (PEER cannot delete) */
		r->flags |= MAP_F_PEER;
		r->peer_addr = m->peer_addr;
		r->peer_port = m->peer_port;
	} else if (m->lifetime == 0)	/* §15: MAP lifetime 0 deletes */
		r->flags |= MAP_F_DELETE;
	/* RFC 7220 §4: invalid UTF-8 is not stored (nor echoed); length 0
	   is valid and erases the stored text. */
	if (m->has_description && m->description_utf8_ok) {
		n = pcp_server_utf8_cut(m->description, m->description_len,
		    MAP_DESCRIPTION_MAX);
		memcpy(r->description, m->description, n);
		r->description[n] = '\0';
		r->flags |= MAP_F_HAS_DESCRIPTION;
	}
}

static enum pcp_server_action
pcp_server_map(const struct pcp_server_conf *conf, const struct pcp_msg *m,
    const uint8_t *pkt, size_t len, const struct in6_addr *src,
    uint16_t src_port, uint32_t epoch, struct pcp_server_req *out)
{
	enum pcp_result rc;

	if ((rc = pcp_server_map_refusal(conf, m, src)) != PCP_SUCCESS)
		return pcp_server_error(out, pkt, len, rc, epoch, true);
	pcp_server_map_req(m, src, src_port, &out->req);
	out->action = PCP_SERVER_SUBMIT;
	return out->action;
}

/*
 * The codec's flags for this packet. RFC 7648 §3.4.2 (P-16): a proxy with a
 * co-located NAT relays unknown opcodes by default, so the codec keeps
 * their body (PCP_DECODE_RELAY_UNKNOWN) when relaying is on. Only for
 * opcodes this server does not know: ANNOUNCE is answered here (P-19),
 * AUTHENTICATION is hop-by-hop (RFC 7652; the codec refuses it anyway),
 * and MAP/PEER are decoded without the flag, so an unknown mandatory
 * option in them still gets UNSUPP_OPTION. Relaying those would mean
 * carrying raw options through the table and the upstream engine into
 * the proxy's own MAP (built from the stored mapping, not from the
 * client's packet) and mapping the reply's copies back; and such an
 * option may hold an internal address or port that our NAT would not
 * translate, the very risk §3.4.2 names. docs/proxy.md states the
 * deviation. The octet read here is the opcode only if the packet is a
 * request the codec accepts; otherwise the flag changes nothing.
 */
static unsigned int
pcp_server_relay_flags(const struct pcp_server_conf *conf, const uint8_t *pkt,
    size_t len)
{
	uint8_t opcode;

	if (!conf->relay_unknown || len < 2)
		return 0;
	opcode = pkt[1] & PCP_OPCODE_MASK;
	switch (opcode) {
	case PCP_OP_ANNOUNCE:
	case PCP_OP_MAP:
	case PCP_OP_PEER:
	case PCP_OP_AUTHENTICATION:
		return 0;
	default:
		return PCP_DECODE_RELAY_UNKNOWN;
	}
}

bool
pcp_server_is_natpmp(const struct pcp_server_conf *conf, const uint8_t *pkt,
    size_t len)
{
	return conf->natpmp && len > 0 &&
	    (pkt[0] == PCP_NATPMP_VERSION || conf->pcp_off);
}

enum pcp_server_action
pcp_server_handle(const struct pcp_server_conf *conf, const uint8_t *pkt,
    size_t len, const struct in6_addr *src, uint16_t src_port,
    uint32_t epoch, struct pcp_server_req *out)
{
	struct pcp_msg m;
	enum pcp_result rc;

	out->action = PCP_SERVER_DROP;
	out->result = PCP_SUCCESS;
	out->reply_len = 0;
	if (pkt == NULL || src == NULL || len == 0)
		return out->action;
	/*
	 * RFC 6887 App. A: first octet 0 is NAT-PMP. With a NAT-PMP
	 * front-end it is that front-end's packet, whatever else it holds.
	 * Without one, "normal PCP processing will emit a PCP response that
	 * is compatible with NAT-PMP": the codec answers UNSUPP_VERSION, with
	 * version 2 (§9 step 3: the version the server does support; see
	 * pcp_encode_error). A NAT-PMP client reads that as "unsupported
	 * version": octets 2-3 are NAT-PMP's 16-bit result 1 (RFC 6886 §3.5)
	 * and the opcode octet is 128 + op; libnatpmp's readnatpmpresponse()
	 * maps a non-zero version octet to NATPMP_ERR_UNSUPPORTEDVERSION as
	 * well. A copied 0 would instead claim that this server speaks
	 * NAT-PMP (§9 step 4), which it then does not.
	 */
	if (pcp_server_is_natpmp(conf, pkt, len)) {
		out->action = PCP_SERVER_NATPMP;
		return out->action;
	}

	/* §8.2 with RFC 7648 §3.4.2: an unknown opcode is relayed when
	   configured (P-16, P-17), else the codec answers UNSUPP_OPCODE
	   (P-18); unknown mandatory options UNSUPP_OPTION either way. The
	   header checks (version, length, ADDRESS_MISMATCH) apply to a
	   relayed request too: it arrived at this server. */
	switch (pcp_decode_request(pkt, len, src,
	    pcp_server_relay_flags(conf, pkt, len), &m, &rc)) {
	case PCP_VERDICT_DROP:
		return out->action;
	case PCP_VERDICT_ERROR:
		return pcp_server_error(out, pkt, len, rc, epoch, false);
	case PCP_VERDICT_OK:
		break;
	}

	switch (m.opcode) {
	case PCP_OP_ANNOUNCE:
		/* §14.1.2: SUCCESS with lifetime 0; tells the client our
		   epoch. RFC 7648 §3.4 (P-19): never relayed upstream. */
		out->reply_len = pcp_server_announce(epoch, out->reply,
		    sizeof(out->reply));
		out->action = out->reply_len > 0 ? PCP_SERVER_REPLY :
		    PCP_SERVER_DROP;
		return out->action;
	case PCP_OP_MAP:
		return pcp_server_map(conf, &m, pkt, len, src, src_port,
		    epoch, out);
	case PCP_OP_PEER:
		/*
		 * PEER (§12): the core makes the gateway's own mapping of
		 * the flow (a local SNAT for nat = local) and a PEER
		 * upstream (RFC 7648 §3), like MAP. The codec has answered
		 * the §12.1 zero-field and PREFER_FAILURE errors; the
		 * protocol, THIRD_PARTY and THIRD_PARTY_ID rules are MAP's.
		 */
		if (!pcp_server_peer_valid(&m, src))
			return pcp_server_error(out, pkt, len,
			    PCP_MALFORMED_REQUEST, epoch, true);
		return pcp_server_map(conf, &m, pkt, len, src, src_port,
		    epoch, out);
	default:
		/* only with PCP_DECODE_RELAY_UNKNOWN does the codec let an
		   unknown opcode through: relay the packet as received */
		if (conf->relay_unknown) {
			out->action = PCP_SERVER_RELAY;
			return out->action;
		}
		return pcp_server_error(out, pkt, len, PCP_UNSUPP_OPCODE,
		    epoch, true);
	}
}

/*
 * The result code for the client. An upstream code is relayed as is
 * (spec/pcp.md §2.4) except the two that describe the proxy's own leg and
 * would mislead the client: UNSUPP_VERSION (the client's version 2 is fine
 * here) and ADDRESS_MISMATCH (a non-PCP NAT above the proxy, spec/pcp.md
 * §2.4: NETWORK_FAILURE); for those, and without an upstream code, the
 * error table speaks (STYLE.md habit 4).
 */
static enum pcp_result
pcp_server_result(const struct map_result *res, bool *relayed)
{
	int16_t up = res->upstream_result;

	*relayed = false;
	if (res->err == MAP_OK)
		return PCP_SUCCESS;
	if (up > PCP_SUCCESS && up <= UINT8_MAX && up != PCP_UNSUPP_VERSION &&
	    up != PCP_ADDRESS_MISMATCH) {
		*relayed = true;
		return (enum pcp_result)up;
	}
	return (enum pcp_result)map_err_row(res->err)->pcp_result;
}

/* §11.1 / §12.1 success response built over the decoded request (m): a
   PEER's protocol, internal port, remote peer and nonce stay as the
   request had them (§12.3 copy rule). */
static size_t
pcp_server_success(struct pcp_msg *m, const struct map_req *req,
    const struct map_result *res, uint32_t epoch, uint8_t *out, size_t cap)
{
	size_t n;

	m->response = true;
	m->result = PCP_SUCCESS;
	m->epoch = epoch;
	if (res->err != MAP_OK || (req->flags & MAP_F_DELETE) != 0) {
		/*
		 * A delete (or a delete of a mapping that is not there:
		 * MAP_ERR_NOT_FOUND's row is SUCCESS, §15): lifetime 0 and
		 * the suggested port 0 / all-zeros address echoed back
		 * (erratum 3621). The core may report a remaining lifetime
		 * for a mapping it could not delete yet (§15.1 Simple Threat
		 * Model): that is its res->lifetime on MAP_OK.
		 */
		m->lifetime = res->err == MAP_OK ? res->lifetime : 0;
	} else {
		/* RFC 7648 §3: the outermost external address and port */
		m->lifetime = res->lifetime;
		m->ext_port = res->ext_port;
		m->ext_addr = res->ext_addr;
	}
	/* §7.3: only the options that were processed. THIRD_PARTY,
	   PREFER_FAILURE and prefix-0 FILTERs were; DESCRIPTION as stored;
	   PORT_SET (RFC 7753 §4.4: one port mapped), PREFIX64 and other
	   optional options were not. */
	m->has_description = (req->flags & MAP_F_HAS_DESCRIPTION) != 0;
	if (m->has_description) {
		n = strnlen(req->description, MAP_DESCRIPTION_MAX);
		memcpy(m->description, req->description, n);
		m->description[n] = '\0';
		m->description_len = (uint16_t)n;
	}
	m->has_third_party_id = false;
	m->has_port_set = false;
	m->n_raw = 0;
	m->raw_data_len = 0;
	m->body_len = 0;
	return pcp_encode(m, out, cap);
}

size_t
pcp_server_reply(const uint8_t *pkt, size_t len, const struct map_req *req,
    const struct map_result *res, uint32_t epoch, uint8_t *out, size_t cap)
{
	struct pcp_msg m;
	enum pcp_result rc;
	uint32_t lifetime;
	bool relayed;

	if (pkt == NULL || req == NULL || res == NULL || out == NULL)
		return 0;
	/* The packet passed pcp_server_handle(): it decodes again (no source
	   needed; those checks were made on arrival). */
	if (pcp_decode_request(pkt, len, NULL, 0, &m, NULL) != PCP_VERDICT_OK ||
	    (m.opcode != PCP_OP_MAP && m.opcode != PCP_OP_PEER))
		return 0;
	rc = pcp_server_result(res, &relayed);
	if (rc == PCP_SUCCESS)
		return pcp_server_success(&m, req, res, epoch, out, cap);
	/* §7.4: how long the error persists; the core's, else the class of
	   the code sent. */
	lifetime = res->lifetime;
	if (lifetime == 0)
		lifetime = relayed ? pcp_server_error_lifetime(rc) :
		    map_err_pcp_lifetime(res->err);
	if (lifetime == 0)
		lifetime = pcp_server_error_lifetime(rc);
	/* §8.2: an error changes no state and echoes the whole request */
	return pcp_server_error_wire(pkt, len, rc, lifetime, epoch, true, out,
	    cap);
}
