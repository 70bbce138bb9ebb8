/*
 * pcp_wire.c - RFC 6887 PCP wire codec.
 *
 * Pure: bytes in, struct out, no globals, no clock, no sockets. Every read
 * and write goes through the sticky-error cursor (src/cursor.h); decoders
 * fill a zeroed local struct pcp_msg and copy it to the caller only when the
 * whole message was accepted.
 *
 * Request decoding follows the RFC 6887 §8.2 server pipeline in its order;
 * response decoding follows the §8.3 client acceptance rules and is liberal
 * about options (§7.3: clients MUST ignore options they do not understand).
 */
#include <arpa/inet.h>
#include <string.h>

#include "cursor.h"
#include "pcp_wire.h"

#define PCP_ADDR_SIZE		16	/* §5: every address is 128 bits */
#define PCP_RESP_RESERVED_SIZE	12	/* §7.2: 96 reserved bits */
#define PCP_THIRD_PARTY_LEN	16	/* §13.1 */
#define PCP_PREFER_FAILURE_LEN	0	/* §13.2 */
#define PCP_FILTER_LEN		20	/* §13.3 */
#define PCP_PORT_SET_LEN	5	/* RFC 7753 §4 */
#define PCP_PORT_SET_PARITY	0x01	/* RFC 7753 §4: P, the low bit */
#define PCP_V4_PREFIX_BITS	96	/* §13.3: IPv4-mapped ::ffff:0:0/96 */
#define PCP_ADDR_BITS		128
/* RFC 7652 §5.2: NONCE .. ID_INDICATOR, all for the AUTHENTICATION opcode
 * except AUTHENTICATION_TAG (5), which protects MAP/PEER/ANNOUNCE. */
#define PCP_OPT_AUTH_FIRST	PCP_OPT_NONCE
#define PCP_OPT_AUTH_LAST	12

#define PCP_OPBIT(op)		(1u << (op))
#define PCP_PAD4(n)		(((n) + 3u) & ~(size_t)3u)

/* Per-call decoding state shared by the option handlers. */
struct pcp_optctx {
	struct pcp_msg		*msg;
	const struct in6_addr	*src;	/* requests: packet source, or NULL */
	unsigned int		 flags;
	bool			 response;
};

typedef enum pcp_result (*pcp_opt_decoder)(struct pcp_optctx *,
    struct cursor *, uint16_t);

struct pcp_optdef {
	uint8_t		 code;
	unsigned int	 opcodes;	/* PCP_OPBIT() of the valid opcodes */
	pcp_opt_decoder	 decode;
};

static enum pcp_result pcp_opt_third_party(struct pcp_optctx *,
    struct cursor *, uint16_t);
static enum pcp_result pcp_opt_prefer_failure(struct pcp_optctx *,
    struct cursor *, uint16_t);
static enum pcp_result pcp_opt_filter(struct pcp_optctx *,
    struct cursor *, uint16_t);
static enum pcp_result pcp_opt_third_party_id(struct pcp_optctx *,
    struct cursor *, uint16_t);
static enum pcp_result pcp_opt_description(struct pcp_optctx *,
    struct cursor *, uint16_t);
static enum pcp_result pcp_opt_port_set(struct pcp_optctx *,
    struct cursor *, uint16_t);

/*
 * The options this codec interprets, with the opcodes their definitions
 * allow ("Valid for Opcodes", §13.1-13.3, RFC 7843 §4, RFC 7220 §2,
 * RFC 7753 §4). PREFIX64 (RFC 7225) is deliberately absent: kept raw.
 */
static const struct pcp_optdef pcp_optdefs[] = {
	{ PCP_OPT_THIRD_PARTY, PCP_OPBIT(PCP_OP_MAP) | PCP_OPBIT(PCP_OP_PEER),
	    pcp_opt_third_party },
	{ PCP_OPT_PREFER_FAILURE, PCP_OPBIT(PCP_OP_MAP),
	    pcp_opt_prefer_failure },
	{ PCP_OPT_FILTER, PCP_OPBIT(PCP_OP_MAP), pcp_opt_filter },
	{ PCP_OPT_THIRD_PARTY_ID,
	    PCP_OPBIT(PCP_OP_MAP) | PCP_OPBIT(PCP_OP_PEER),
	    pcp_opt_third_party_id },
	{ PCP_OPT_DESCRIPTION, PCP_OPBIT(PCP_OP_MAP) | PCP_OPBIT(PCP_OP_PEER),
	    pcp_opt_description },
	{ PCP_OPT_PORT_SET, PCP_OPBIT(PCP_OP_MAP), pcp_opt_port_set },
};

/* ---- small helpers ---- */

static void
cur_addr(struct cursor *c, struct in6_addr *a)
{
	cur_bytes(c, a->s6_addr, PCP_ADDR_SIZE);
}

static void
wbuf_addr(struct wbuf *w, const struct in6_addr *a)
{
	wbuf_bytes(w, a->s6_addr, PCP_ADDR_SIZE);
}

static bool
pcp_addr_equal(const struct in6_addr *a, const struct in6_addr *b)
{
	return memcmp(a->s6_addr, b->s6_addr, PCP_ADDR_SIZE) == 0;
}

/*
 * RFC 3629 §3-4: well-formed UTF-8 (no overlong forms, no surrogates, at
 * most U+10FFFF). A NUL octet is refused as well: the text is stored as a C
 * string and a NUL would silently cut it.
 */
bool
pcp_utf8_valid(const void *text, size_t n)
{
	static const uint32_t min_cp[] = { 0, 0x80, 0x800, 0x10000 };
	const uint8_t *s = text;
	size_t i = 0, k, more;
	uint32_t cp;

	while (i < n) {
		if (s[i] == 0)
			return false;
		if (s[i] < 0x80) {
			i++;
			continue;
		}
		if ((s[i] & 0xe0) == 0xc0) {
			more = 1;
			cp = s[i] & 0x1f;
		} else if ((s[i] & 0xf0) == 0xe0) {
			more = 2;
			cp = s[i] & 0x0f;
		} else if ((s[i] & 0xf8) == 0xf0) {
			more = 3;
			cp = s[i] & 0x07;
		} else
			return false;
		if (n - i - 1 < more)
			return false;
		for (k = 1; k <= more; k++) {
			if ((s[i + k] & 0xc0) != 0x80)
				return false;
			cp = cp << 6 | (s[i + k] & 0x3f);
		}
		if (cp < min_cp[more] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff))
			return false;
		i += more + 1;
	}
	return true;
}

/* Keep an option uninterpreted (copied). False when there is no room. */
static bool
pcp_raw_add(struct pcp_msg *m, uint8_t code, struct cursor *data,
    uint16_t len)
{
	struct pcp_opt_raw *r;

	if (m->n_raw >= PCP_MAX_UNKNOWN_OPTS ||
	    len > sizeof(m->raw_data) - m->raw_data_len)
		return false;
	r = &m->raw[m->n_raw];
	r->code = code;
	r->len = len;
	r->data_off = m->raw_data_len;
	cur_bytes(data, m->raw_data + m->raw_data_len, len);
	if (data->err)
		return false;
	m->raw_data_len += len;
	m->n_raw++;
	return true;
}

/* ---- option handlers: validate everything before touching msg ---- */

static enum pcp_result
pcp_opt_third_party(struct pcp_optctx *ctx, struct cursor *data, uint16_t len)
{
	struct pcp_msg *m = ctx->msg;
	struct in6_addr a;

	/* §13.1: length 16, maximum occurrences 1; §7.3: MALFORMED_OPTION */
	if (len != PCP_THIRD_PARTY_LEN || m->has_third_party)
		return PCP_MALFORMED_OPTION;
	cur_addr(data, &a);
	/* §13.1: the packet's own source address MUST give MALFORMED_REQUEST */
	if (!ctx->response && ctx->src != NULL && pcp_addr_equal(&a, ctx->src))
		return PCP_MALFORMED_REQUEST;
	m->has_third_party = true;
	m->third_party = a;
	return PCP_SUCCESS;
}

static enum pcp_result
pcp_opt_prefer_failure(struct pcp_optctx *ctx, struct cursor *data,
    uint16_t len)
{
	struct pcp_msg *m = ctx->msg;

	(void)data;
	/* §13.2: length 0, maximum occurrences 1 */
	if (len != PCP_PREFER_FAILURE_LEN || m->prefer_failure)
		return PCP_MALFORMED_OPTION;
	if (!ctx->response) {
		/* §11.3: makes no sense on a delete (lifetime 0) */
		if (m->lifetime == 0)
			return PCP_MALFORMED_OPTION;
		/* §13.2: suggested external port 0 MUST be MALFORMED_OPTION */
		if (m->ext_port == 0)
			return PCP_MALFORMED_OPTION;
		/* RFC 7753 §4.2: PREFER_FAILURE with PORT_SET */
		if (m->has_port_set)
			return PCP_MALFORMED_OPTION;
	}
	m->prefer_failure = true;
	return PCP_SUCCESS;
}

/*
 * §13.3 prefix lengths: 96..128 for IPv4-mapped addresses, 0..128 for IPv6.
 * Prefix 0 is the "remove all filters" value for either family (§13.3 "To
 * remove all existing filters, the Prefix Length 0 is used"; erratum 3891,
 * held for update, says its address is then ignored), so an IPv4 client can
 * still clear its filters.
 */
static bool
pcp_filter_prefix_ok(const struct pcp_filter *f)
{
	if (f->prefix_len == 0)
		return true;
	if (f->prefix_len > PCP_ADDR_BITS)
		return false;
	return !pcp_addr_is_v4(&f->remote_addr) ||
	    f->prefix_len >= PCP_V4_PREFIX_BITS;
}

static enum pcp_result
pcp_opt_filter(struct pcp_optctx *ctx, struct cursor *data, uint16_t len)
{
	struct pcp_msg *m = ctx->msg;
	struct pcp_filter f;

	if (len != PCP_FILTER_LEN)
		return PCP_MALFORMED_OPTION;
	(void)cur_u8(data);		/* reserved */
	f.prefix_len = cur_u8(data);
	f.remote_port = cur_u16(data);
	cur_addr(data, &f.remote_addr);
	if (!pcp_filter_prefix_ok(&f))
		return PCP_MALFORMED_OPTION;
	/* §13.3: FILTER on a delete (lifetime 0) is MALFORMED_OPTION */
	if (!ctx->response && m->lifetime == 0)
		return PCP_MALFORMED_OPTION;
	/* As many as fit in 1100 octets: PCP_MAX_FILTERS always suffices for
	 * MAP; the check only guards the array. */
	if (m->n_filters >= PCP_MAX_FILTERS)
		return PCP_MALFORMED_OPTION;
	m->filters[m->n_filters++] = f;
	return PCP_SUCCESS;
}

static enum pcp_result
pcp_opt_third_party_id(struct pcp_optctx *ctx, struct cursor *data,
    uint16_t len)
{
	struct pcp_msg *m = ctx->msg;

	/*
	 * RFC 7843 §4: variable, at most 1016 octets, at most once. An empty
	 * identifier identifies nothing: malformed contents (§7.3), not an
	 * "unsupported length" (26), which is the server's policy to apply.
	 */
	if (len == 0 || len > PCP_THIRD_PARTY_ID_MAX || m->has_third_party_id)
		return PCP_MALFORMED_OPTION;
	cur_bytes(data, m->third_party_id, len);
	m->third_party_id_len = len;
	m->has_third_party_id = true;
	return PCP_SUCCESS;
}

static enum pcp_result
pcp_opt_description(struct pcp_optctx *ctx, struct cursor *data,
    uint16_t len)
{
	struct pcp_msg *m = ctx->msg;

	/* RFC 7220 §2: at most 1016 octets, maximum occurrences 1 (a
	 * repeated once-only option the server understands: §7.3) */
	if (len > PCP_DESCRIPTION_MAX || m->has_description)
		return PCP_MALFORMED_OPTION;
	cur_bytes(data, m->description, len);
	m->description[len] = '\0';
	m->description_len = len;
	m->description_utf8_ok = pcp_utf8_valid((const uint8_t *)m->description,
	    len);
	m->has_description = true;
	return PCP_SUCCESS;
}

static enum pcp_result
pcp_opt_port_set(struct pcp_optctx *ctx, struct cursor *data, uint16_t len)
{
	struct pcp_msg *m = ctx->msg;
	struct pcp_port_set ps;

	/* RFC 7753 §4: length 5, once; §4.2: duplicate -> MALFORMED_OPTION */
	if (len != PCP_PORT_SET_LEN || m->has_port_set)
		return PCP_MALFORMED_OPTION;
	ps.size = cur_u16(data);
	ps.first_internal_port = cur_u16(data);
	ps.parity = (cur_u8(data) & PCP_PORT_SET_PARITY) != 0;
	if (!ctx->response) {
		/* RFC 7753 §4: Size MUST NOT be zero; §4.2 lists it (and
		 * PREFER_FAILURE) as MALFORMED_OPTION. Applied whatever the
		 * lifetime: a zero size is never a valid field value. */
		if (ps.size == 0 || m->prefer_failure)
			return PCP_MALFORMED_OPTION;
	}
	m->port_set = ps;
	m->has_port_set = true;
	return PCP_SUCCESS;
}

/* ---- option dispatch ---- */

static const struct pcp_optdef *
pcp_optdef_find(uint8_t code)
{
	size_t i;

	for (i = 0; i < sizeof(pcp_optdefs) / sizeof(pcp_optdefs[0]); i++)
		if (pcp_optdefs[i].code == code)
			return &pcp_optdefs[i];
	return NULL;
}

static enum pcp_result
pcp_opt_unknown(struct pcp_optctx *ctx, uint8_t code, struct cursor *data,
    uint16_t len)
{
	/* §7.3: clients ignore unknown options in responses; servers MAY
	 * ignore optional ones. Both are kept raw (dropped if no room). */
	if (ctx->response || PCP_OPT_IS_OPTIONAL(code)) {
		(void)pcp_raw_add(ctx->msg, code, data, len);
		return PCP_SUCCESS;
	}
	/* §7.3: unknown mandatory -> UNSUPP_OPTION; RFC 7648 §3.4 (P-16,
	 * P-18): relayed when the proxy is configured to. One it cannot
	 * carry is, for this server, unimplemented. */
	if ((ctx->flags & PCP_DECODE_RELAY_UNKNOWN) == 0 ||
	    !pcp_raw_add(ctx->msg, code, data, len))
		return PCP_UNSUPP_OPTION;
	return PCP_SUCCESS;
}

/*
 * A known option sent with an opcode its definition does not list. §13:
 * "These options MUST NOT appear with other Opcodes"; the RFC names no code
 * (spec/pcp.md §5 item 6). Mandatory ones get MALFORMED_OPTION: §11.3 uses
 * it for a mandatory option that "does not make sense" in the request, and
 * UNSUPP_OPTION would wrongly tell the client the server lacks the option
 * altogether. PREFER_FAILURE on PEER has its own rule. Optional ones may be
 * ignored (§7.3) and are kept raw, uninterpreted.
 */
static enum pcp_result
pcp_opt_out_of_scope(struct pcp_optctx *ctx, uint8_t code,
    struct cursor *data, uint16_t len)
{
	if (ctx->response || PCP_OPT_IS_OPTIONAL(code)) {
		(void)pcp_raw_add(ctx->msg, code, data, len);
		return PCP_SUCCESS;
	}
	/* §12.1: PREFER_FAILURE in a PEER request MUST be MALFORMED_REQUEST */
	if (code == PCP_OPT_PREFER_FAILURE && ctx->msg->opcode == PCP_OP_PEER)
		return PCP_MALFORMED_REQUEST;
	return PCP_MALFORMED_OPTION;
}

static enum pcp_result
pcp_decode_option(struct pcp_optctx *ctx, uint8_t code, struct cursor *data,
    uint16_t len)
{
	const struct pcp_optdef *def;
	struct cursor saved = *data;
	enum pcp_result rc;

	/*
	 * RFC 7652 options are known but not implemented: authentication is
	 * hop-by-hop, so relaying them blindly would break it (spec/pcp.md §3
	 * "7652"). UNSUPP_OPTION even when relaying.
	 */
	if (code >= PCP_OPT_AUTH_FIRST && code <= PCP_OPT_AUTH_LAST) {
		if (!ctx->response)
			return PCP_UNSUPP_OPTION;
		(void)pcp_raw_add(ctx->msg, code, data, len);
		return PCP_SUCCESS;
	}
	def = pcp_optdef_find(code);
	if (def == NULL)
		return pcp_opt_unknown(ctx, code, data, len);
	if ((def->opcodes & PCP_OPBIT(ctx->msg->opcode)) == 0)
		return pcp_opt_out_of_scope(ctx, code, data, len);
	rc = def->decode(ctx, data, len);
	if (rc != PCP_SUCCESS && ctx->response) {
		/* §7.3: a client never rejects a response for its options */
		(void)pcp_raw_add(ctx->msg, code, &saved, len);
		rc = PCP_SUCCESS;
	}
	return rc;
}

/*
 * Walk the options in order (§7.3: the server MUST process them in the
 * order they appear). A header or length running past the message is an
 * unparseable option structure: MALFORMED_OPTION (§7.3 MUST).
 */
static enum pcp_result
pcp_decode_options(struct pcp_optctx *ctx, struct cursor *c)
{
	struct cursor data;
	enum pcp_result rc;
	uint8_t code;
	uint16_t len;

	while (cur_left(c) > 0) {
		if (cur_left(c) < PCP_OPT_HDR_SIZE)
			return PCP_MALFORMED_OPTION;
		code = cur_u8(c);
		(void)cur_u8(c);	/* reserved, ignored (§7.3) */
		len = cur_u16(c);
		if (PCP_PAD4(len) > cur_left(c))
			return PCP_MALFORMED_OPTION;
		cur_sub(c, len, &data);
		cur_skip(c, PCP_PAD4(len) - len);	/* padding, ignored */
		rc = pcp_decode_option(ctx, code, &data, len);
		if (rc != PCP_SUCCESS)
			return rc;
	}
	return PCP_SUCCESS;
}

/* ---- opcode bodies (§11.1, §12.1; same layout in both directions) ---- */

static void
pcp_decode_map_body(struct cursor *c, struct pcp_msg *m)
{
	cur_bytes(c, m->nonce, PCP_NONCE_SIZE);
	m->protocol = cur_u8(c);
	cur_skip(c, 3);			/* reserved */
	m->internal_port = cur_u16(c);
	m->ext_port = cur_u16(c);
	cur_addr(c, &m->ext_addr);
}

static void
pcp_decode_peer_tail(struct cursor *c, struct pcp_msg *m)
{
	m->peer_port = cur_u16(c);
	cur_skip(c, 2);			/* reserved */
	cur_addr(c, &m->peer_addr);
}

static size_t
pcp_body_size(uint8_t opcode)
{
	switch (opcode) {
	case PCP_OP_MAP:
		return PCP_MAP_BODY_SIZE;
	case PCP_OP_PEER:
		return PCP_PEER_BODY_SIZE;
	default:
		return 0;	/* ANNOUNCE (§14.1.1) and unknown opcodes */
	}
}

static void
pcp_decode_body(struct cursor *c, struct pcp_msg *m)
{
	if (m->opcode == PCP_OP_MAP || m->opcode == PCP_OP_PEER)
		pcp_decode_map_body(c, m);
	if (m->opcode == PCP_OP_PEER)
		pcp_decode_peer_tail(c, m);
}

/* Request-side checks on the opcode fields themselves. */
static enum pcp_result
pcp_check_body(const struct pcp_msg *m)
{
	if (m->opcode == PCP_OP_MAP) {
		/*
		 * §11.3: protocol 0 with a non-zero internal port MUST be
		 * MALFORMED_REQUEST. §11.3 states it in the non-zero-lifetime
		 * list; applied to deletes too (spec/pcp.md §1.6 "any"), as a
		 * delete of that shape names no mapping either.
		 */
		if (m->protocol == 0 && m->internal_port != 0)
			return PCP_MALFORMED_REQUEST;
	} else if (m->opcode == PCP_OP_PEER) {
		/* §12.1: protocol, internal and remote port MUST be non-zero */
		if (m->protocol == 0 || m->internal_port == 0 ||
		    m->peer_port == 0)
			return PCP_MALFORMED_REQUEST;
	}
	return PCP_SUCCESS;
}

/* ---- request decoding: the §8.2 pipeline ---- */

static enum pcp_verdict
pcp_error(enum pcp_result *rc, enum pcp_result code)
{
	*rc = code;
	return PCP_VERDICT_ERROR;
}

/* §8.2 steps up to and including the address check. */
static enum pcp_verdict
pcp_request_header(struct cursor *c, size_t len, const struct in6_addr *src,
    struct pcp_msg *m, enum pcp_result *rc)
{
	uint8_t op;

	/* §8.2: fewer than 2 octets, or the R bit set: silently dropped */
	if (len < 2)
		return PCP_VERDICT_DROP;
	m->version = cur_u8(c);
	op = cur_u8(c);
	if ((op & PCP_R_BIT) != 0)
		return PCP_VERDICT_DROP;
	m->opcode = op & PCP_OPCODE_MASK;
	/* §8.2, §9: a version we lack (0 = NAT-PMP, if it got here; 1 is
	 * never valid) -> UNSUPP_VERSION */
	if (m->version != PCP_VERSION)
		return pcp_error(rc, PCP_UNSUPP_VERSION);
	/* §8.2: supported version but shorter than 24 octets: dropped */
	if (len < PCP_HDR_SIZE)
		return PCP_VERDICT_DROP;
	/* §8.2: longer than 1100, not a multiple of 4, or too short for the
	 * opcode -> MALFORMED_REQUEST */
	if (len > PCP_MAX_SIZE || len % 4 != 0 ||
	    len < PCP_HDR_SIZE + pcp_body_size(m->opcode))
		return pcp_error(rc, PCP_MALFORMED_REQUEST);
	cur_skip(c, 2);		/* reserved; RFC 7652 uses byte 3: ignored */
	m->lifetime = cur_u32(c);
	cur_addr(c, &m->client_addr);
	/* §8.2: source address != PCP Client IP field MUST give
	 * ADDRESS_MISMATCH (a non-PCP NAT sits on the path) */
	if (src != NULL && !pcp_addr_equal(src, &m->client_addr))
		return pcp_error(rc, PCP_ADDRESS_MISMATCH);
	return PCP_VERDICT_OK;
}

static enum pcp_verdict
pcp_request_parse(const uint8_t *buf, size_t len, const struct in6_addr *src,
    unsigned int flags, struct pcp_msg *m, enum pcp_result *rc)
{
	struct pcp_optctx ctx = { m, src, flags, false };
	struct cursor c;
	enum pcp_verdict v;
	enum pcp_result r;

	cur_init(&c, buf, len);
	if ((v = pcp_request_header(&c, c.len, src, m, rc)) != PCP_VERDICT_OK)
		return v;

	switch (m->opcode) {
	case PCP_OP_ANNOUNCE:
	case PCP_OP_MAP:
	case PCP_OP_PEER:
		break;
	case PCP_OP_AUTHENTICATION:
		/* RFC 7652 is hop-by-hop: known, unsupported, never relayed
		 * (spec/pcp.md §3 "7652") */
		return pcp_error(rc, PCP_UNSUPP_OPCODE);
	default:
		/* §8.2: unknown opcode -> UNSUPP_OPCODE; RFC 7648 §3.4: a
		 * relaying proxy passes it on, body and options as is. */
		if ((flags & PCP_DECODE_RELAY_UNKNOWN) == 0)
			return pcp_error(rc, PCP_UNSUPP_OPCODE);
		m->body_len = (uint16_t)cur_left(&c);
		cur_bytes(&c, m->body, m->body_len);
		return PCP_VERDICT_OK;
	}

	pcp_decode_body(&c, m);
	if ((r = pcp_check_body(m)) != PCP_SUCCESS)
		return pcp_error(rc, r);
	if ((r = pcp_decode_options(&ctx, &c)) != PCP_SUCCESS)
		return pcp_error(rc, r);
	/* RFC 7843 §5.2: THIRD_PARTY_ID without THIRD_PARTY. Checked after
	 * all options: the two may come in either order. */
	if (m->has_third_party_id && !m->has_third_party)
		return pcp_error(rc, PCP_THIRD_PARTY_MISSING_OPTION);
	return c.err ? pcp_error(rc, PCP_MALFORMED_REQUEST) : PCP_VERDICT_OK;
}

enum pcp_verdict
pcp_decode_request(const uint8_t *buf, size_t len, const struct in6_addr *src,
    unsigned int flags, struct pcp_msg *out, enum pcp_result *result)
{
	struct pcp_msg m;
	enum pcp_result rc = PCP_SUCCESS;
	enum pcp_verdict v;

	memset(&m, 0, sizeof(m));
	if (buf == NULL)
		len = 0;
	v = pcp_request_parse(buf, len, src, flags, &m, &rc);
	if (v != PCP_VERDICT_ERROR)
		rc = PCP_SUCCESS;
	if (result != NULL)
		*result = rc;
	if (v == PCP_VERDICT_OK && out != NULL)
		memcpy(out, &m, sizeof(m));
	return v;
}

/* ---- response decoding: §8.3 ---- */

static bool
pcp_response_len_ok(size_t len)
{
	return len >= PCP_HDR_SIZE && len <= PCP_MAX_SIZE && len % 4 == 0;
}

/*
 * The opcode body of a response. An error reply is a copy of the request
 * (§8.2), which may itself have been too short (that is why it failed):
 * decode what is there, zero-extended, and mark the message truncated.
 */
static bool
pcp_response_body(struct cursor *c, struct pcp_msg *m)
{
	uint8_t body[PCP_PEER_BODY_SIZE];
	size_t need = pcp_body_size(m->opcode), have = cur_left(c);
	struct cursor bc;

	if (m->opcode != PCP_OP_ANNOUNCE && need == 0) {
		/* unknown opcode (or AUTHENTICATION): copied, uninterpreted */
		m->body_len = (uint16_t)have;
		cur_bytes(c, m->body, have);
		return true;
	}
	if (have >= need) {
		pcp_decode_body(c, m);
		return true;
	}
	if (m->result == PCP_SUCCESS)
		return false;
	memset(body, 0, sizeof(body));
	cur_bytes(c, body, have);
	cur_init(&bc, body, need);
	pcp_decode_body(&bc, m);
	m->truncated = true;
	return true;
}

static bool
pcp_response_parse(const uint8_t *buf, size_t len, struct pcp_msg *m)
{
	struct pcp_optctx ctx = { m, NULL, 0, true };
	struct cursor c;
	uint8_t op;

	/* §8.3: fewer than 4 octets, or R clear: silently dropped */
	if (len < 4)
		return false;
	cur_init(&c, buf, len);
	m->version = cur_u8(&c);
	op = cur_u8(&c);
	(void)cur_u8(&c);		/* reserved */
	m->result = cur_u8(&c);
	if ((op & PCP_R_BIT) == 0)
		return false;
	m->response = true;
	m->opcode = op & PCP_OPCODE_MASK;

	/*
	 * §8.3, §9: UNSUPP_VERSION is handed to version negotiation before
	 * the length checks; with another version (NAT-PMP's 8-octet reply
	 * lines up: §1.12) only the common fields are meaningful.
	 */
	if (m->result == PCP_UNSUPP_VERSION &&
	    (m->version != PCP_VERSION || !pcp_response_len_ok(len))) {
		m->lifetime = cur_left(&c) >= 4 ? cur_u32(&c) : 0;
		m->epoch = cur_left(&c) >= 4 ? cur_u32(&c) : 0;
		m->truncated = true;
		return true;
	}
	/* §8.3: shorter than 24, longer than 1100 or not a multiple of 4:
	 * invalid and ignored; other versions are not ours */
	if (m->version != PCP_VERSION || !pcp_response_len_ok(len))
		return false;
	m->lifetime = cur_u32(&c);
	m->epoch = cur_u32(&c);
	cur_skip(&c, PCP_RESP_RESERVED_SIZE);
	if (!pcp_response_body(&c, m))
		return false;
	if (m->truncated || m->body_len > 0)
		return true;
	/* A cut option (a request copy truncated to 1100) ends the walk;
	 * what parsed so far stays. */
	if (pcp_decode_options(&ctx, &c) != PCP_SUCCESS)
		m->truncated = true;
	return true;
}

bool
pcp_decode_response(const uint8_t *buf, size_t len, struct pcp_msg *out)
{
	struct pcp_msg m;

	memset(&m, 0, sizeof(m));
	if (buf == NULL || !pcp_response_parse(buf, len, &m))
		return false;
	if (out != NULL)
		memcpy(out, &m, sizeof(m));
	return true;
}

/* ---- encoding ---- */

/* Lengths the struct can hold but the wire cannot (or must not). */
static bool
pcp_encode_sane(const struct pcp_msg *m)
{
	uint8_t i;

	if (m->opcode > PCP_OPCODE_MASK || m->n_filters > PCP_MAX_FILTERS ||
	    m->description_len > PCP_DESCRIPTION_MAX ||
	    m->third_party_id_len > PCP_THIRD_PARTY_ID_MAX ||
	    m->n_raw > PCP_MAX_UNKNOWN_OPTS ||
	    m->raw_data_len > sizeof(m->raw_data) ||
	    m->body_len > sizeof(m->body))
		return false;
	for (i = 0; i < m->n_raw; i++)
		if (m->raw[i].data_off > m->raw_data_len ||
		    m->raw[i].len > m->raw_data_len - m->raw[i].data_off)
			return false;
	return true;
}

static void
pcp_encode_opt_hdr(struct wbuf *w, uint8_t code, uint16_t len)
{
	wbuf_u8(w, code);
	wbuf_u8(w, 0);			/* reserved: sent as 0 (§7.3) */
	wbuf_u16(w, len);
}

/* §7.3: data, then 0-3 zero octets to a multiple of 4. */
static void
pcp_encode_opt(struct wbuf *w, uint8_t code, const void *data, uint16_t len)
{
	pcp_encode_opt_hdr(w, code, len);
	wbuf_bytes(w, data, len);
	wbuf_zero(w, PCP_PAD4(len) - len);
}

static void
pcp_encode_header(struct wbuf *w, const struct pcp_msg *m)
{
	/* Always version 2: this codec speaks only PCP (§7.1, §9). */
	wbuf_u8(w, PCP_VERSION);
	wbuf_u8(w, (uint8_t)((m->response ? PCP_R_BIT : 0) | m->opcode));
	wbuf_u8(w, 0);			/* reserved */
	if (m->response) {
		/* §7.2: result at byte 3, lifetime, epoch, 96 reserved */
		wbuf_u8(w, m->result);
		wbuf_u32(w, m->lifetime);
		wbuf_u32(w, m->epoch);
		wbuf_zero(w, PCP_RESP_RESERVED_SIZE);
	} else {
		/* §7.1 */
		wbuf_u8(w, 0);
		wbuf_u32(w, m->lifetime);
		wbuf_addr(w, &m->client_addr);
	}
}

static void
pcp_encode_body(struct wbuf *w, const struct pcp_msg *m)
{
	switch (m->opcode) {
	case PCP_OP_ANNOUNCE:
		return;
	case PCP_OP_MAP:
	case PCP_OP_PEER:
		wbuf_bytes(w, m->nonce, PCP_NONCE_SIZE);
		wbuf_u8(w, m->protocol);
		wbuf_zero(w, 3);
		wbuf_u16(w, m->internal_port);
		wbuf_u16(w, m->ext_port);
		wbuf_addr(w, &m->ext_addr);
		if (m->opcode == PCP_OP_PEER) {
			wbuf_u16(w, m->peer_port);
			wbuf_zero(w, 2);
			wbuf_addr(w, &m->peer_addr);
		}
		return;
	default:
		wbuf_bytes(w, m->body, m->body_len);
		return;
	}
}

static void
pcp_encode_filter(struct wbuf *w, const struct pcp_filter *f)
{
	pcp_encode_opt_hdr(w, PCP_OPT_FILTER, PCP_FILTER_LEN);
	wbuf_u8(w, 0);
	wbuf_u8(w, f->prefix_len);
	wbuf_u16(w, f->remote_port);
	wbuf_addr(w, &f->remote_addr);
}

static void
pcp_encode_port_set(struct wbuf *w, const struct pcp_port_set *ps)
{
	pcp_encode_opt_hdr(w, PCP_OPT_PORT_SET, PCP_PORT_SET_LEN);
	wbuf_u16(w, ps->size);
	wbuf_u16(w, ps->first_internal_port);
	wbuf_u8(w, ps->parity ? PCP_PORT_SET_PARITY : 0);
	wbuf_zero(w, PCP_PAD4(PCP_PORT_SET_LEN) - PCP_PORT_SET_LEN);
}

/* One stable order: THIRD_PARTY, PREFER_FAILURE, FILTERs, DESCRIPTION,
 * THIRD_PARTY_ID, PORT_SET, then the raw ones as decoded. */
static void
pcp_encode_options(struct wbuf *w, const struct pcp_msg *m)
{
	uint8_t i;

	if (m->has_third_party)
		pcp_encode_opt(w, PCP_OPT_THIRD_PARTY, m->third_party.s6_addr,
		    PCP_THIRD_PARTY_LEN);
	if (m->prefer_failure)
		pcp_encode_opt(w, PCP_OPT_PREFER_FAILURE, NULL,
		    PCP_PREFER_FAILURE_LEN);
	for (i = 0; i < m->n_filters; i++)
		pcp_encode_filter(w, &m->filters[i]);
	if (m->has_description)
		pcp_encode_opt(w, PCP_OPT_DESCRIPTION, m->description,
		    m->description_len);
	if (m->has_third_party_id)
		pcp_encode_opt(w, PCP_OPT_THIRD_PARTY_ID, m->third_party_id,
		    m->third_party_id_len);
	if (m->has_port_set)
		pcp_encode_port_set(w, &m->port_set);
	for (i = 0; i < m->n_raw; i++)
		pcp_encode_opt(w, m->raw[i].code,
		    m->raw_data + m->raw[i].data_off, m->raw[i].len);
}

size_t
pcp_encode(const struct pcp_msg *m, uint8_t *buf, size_t cap)
{
	struct wbuf w;

	if (m == NULL || buf == NULL || !pcp_encode_sane(m))
		return 0;
	/* §7: never more than 1100 octets, whatever room the caller has */
	wbuf_init(&w, buf, cap < PCP_MAX_SIZE ? cap : PCP_MAX_SIZE);
	pcp_encode_header(&w, m);
	pcp_encode_body(&w, m);
	pcp_encode_options(&w, m);
	return w.err ? 0 : w.len;
}

/*
 * §8.2 error response: the request copied (at most 1100 octets), zero-padded
 * to a multiple of 4 and to at least a full header, with version 2 (§9: the
 * version the server supports), R, the result, lifetime and epoch. Octets
 * 12..23 are the request's, i.e. the last 96 bits of its Client IP field, as
 * §7.2 asks for requests that did not parse. Byte 2 is reserved: 0.
 */
size_t
pcp_encode_error(const uint8_t *req, size_t req_len, enum pcp_result result,
    uint32_t lifetime, uint32_t epoch, uint8_t *out, size_t cap)
{
	size_t n, total;
	struct wbuf w;

	if (req == NULL || out == NULL || req_len < 2)
		return 0;
	n = req_len < PCP_MAX_SIZE ? req_len : PCP_MAX_SIZE;
	total = PCP_PAD4(n);
	if (total < PCP_HDR_SIZE)
		total = PCP_HDR_SIZE;
	wbuf_init(&w, out, cap < PCP_MAX_SIZE ? cap : PCP_MAX_SIZE);
	wbuf_u8(&w, PCP_VERSION);
	wbuf_u8(&w, (uint8_t)(req[1] | PCP_R_BIT));
	wbuf_u8(&w, 0);
	wbuf_u8(&w, (uint8_t)result);
	wbuf_u32(&w, lifetime);
	wbuf_u32(&w, epoch);
	if (n > w.len)
		wbuf_bytes(&w, req + w.len, n - w.len);
	if (total > w.len)
		wbuf_zero(&w, total - w.len);
	return w.err ? 0 : w.len;
}

/* ---- comparison ---- */

static bool
pcp_raw_equal(const struct pcp_msg *a, const struct pcp_msg *b)
{
	const struct pcp_opt_raw *ra, *rb;
	uint8_t i;

	if (a->n_raw != b->n_raw)
		return false;
	for (i = 0; i < a->n_raw; i++) {
		ra = &a->raw[i];
		rb = &b->raw[i];
		if (ra->code != rb->code || ra->len != rb->len ||
		    memcmp(a->raw_data + ra->data_off,
		    b->raw_data + rb->data_off, ra->len) != 0)
			return false;
	}
	return true;
}

static bool
pcp_filters_equal(const struct pcp_msg *a, const struct pcp_msg *b)
{
	uint8_t i;

	if (a->n_filters != b->n_filters)
		return false;
	for (i = 0; i < a->n_filters; i++)
		if (a->filters[i].prefix_len != b->filters[i].prefix_len ||
		    a->filters[i].remote_port != b->filters[i].remote_port ||
		    !pcp_addr_equal(&a->filters[i].remote_addr,
		    &b->filters[i].remote_addr))
			return false;
	return true;
}

/* Option contents are compared only where the option is present. */
static bool
pcp_options_equal(const struct pcp_msg *a, const struct pcp_msg *b)
{
	if (a->has_third_party != b->has_third_party ||
	    a->prefer_failure != b->prefer_failure ||
	    a->has_description != b->has_description ||
	    a->has_third_party_id != b->has_third_party_id ||
	    a->has_port_set != b->has_port_set)
		return false;
	if (a->has_third_party &&
	    !pcp_addr_equal(&a->third_party, &b->third_party))
		return false;
	if (a->has_description && (a->description_len != b->description_len ||
	    a->description_len > PCP_DESCRIPTION_MAX ||
	    memcmp(a->description, b->description, a->description_len) != 0 ||
	    a->description_utf8_ok != b->description_utf8_ok))
		return false;
	if (a->has_third_party_id &&
	    (a->third_party_id_len != b->third_party_id_len ||
	    a->third_party_id_len > PCP_THIRD_PARTY_ID_MAX ||
	    memcmp(a->third_party_id, b->third_party_id,
	    a->third_party_id_len) != 0))
		return false;
	if (a->has_port_set && (a->port_set.size != b->port_set.size ||
	    a->port_set.first_internal_port !=
	    b->port_set.first_internal_port ||
	    a->port_set.parity != b->port_set.parity))
		return false;
	return pcp_filters_equal(a, b) && pcp_raw_equal(a, b);
}

bool
pcp_msg_equal(const struct pcp_msg *a, const struct pcp_msg *b)
{
	return a->version == b->version && a->response == b->response &&
	    a->opcode == b->opcode && a->result == b->result &&
	    a->lifetime == b->lifetime && a->epoch == b->epoch &&
	    pcp_addr_equal(&a->client_addr, &b->client_addr) &&
	    memcmp(a->nonce, b->nonce, PCP_NONCE_SIZE) == 0 &&
	    a->protocol == b->protocol &&
	    a->internal_port == b->internal_port &&
	    a->ext_port == b->ext_port &&
	    pcp_addr_equal(&a->ext_addr, &b->ext_addr) &&
	    a->peer_port == b->peer_port &&
	    pcp_addr_equal(&a->peer_addr, &b->peer_addr) &&
	    a->body_len == b->body_len && a->body_len <= sizeof(a->body) &&
	    memcmp(a->body, b->body, a->body_len) == 0 &&
	    pcp_options_equal(a, b);
}

/* ---- names (§7.4, RFC 7652 §5.3, RFC 7843 §4.1) ---- */

static const char *const pcp_result_names[] = {
	"SUCCESS", "UNSUPP_VERSION", "NOT_AUTHORIZED", "MALFORMED_REQUEST",
	"UNSUPP_OPCODE", "UNSUPP_OPTION", "MALFORMED_OPTION",
	"NETWORK_FAILURE", "NO_RESOURCES", "UNSUPP_PROTOCOL", "USER_EX_QUOTA",
	"CANNOT_PROVIDE_EXTERNAL", "ADDRESS_MISMATCH",
	"EXCESSIVE_REMOTE_PEERS",
	/* RFC 7652 */
	"INITIATION", "AUTHENTICATION_REQUIRED", "AUTHENTICATION_FAILED",
	"AUTHENTICATION_SUCCEEDED", "AUTHORIZATION_FAILED",
	"SESSION_TERMINATED", "UNKNOWN_SESSION_ID",
	"DOWNGRADE_ATTACK_DETECTED", "AUTHENTICATION_REQUEST",
	"AUTHENTICATION_REPLY",
	/* RFC 7843 */
	"THIRD_PARTY_ID_UNKNOWN", "THIRD_PARTY_MISSING_OPTION",
	"UNSUPP_THIRD_PARTY_ID_LENGTH",
};

const char *
pcp_result_name(unsigned int code)
{
	if (code < sizeof(pcp_result_names) / sizeof(pcp_result_names[0]))
		return pcp_result_names[code];
	return "UNKNOWN_RESULT";
}

bool
pcp_result_is_short(unsigned int code)
{
	/* §7.4: the short-lifetime errors */
	return code == PCP_NETWORK_FAILURE || code == PCP_NO_RESOURCES ||
	    code == PCP_USER_EX_QUOTA;
}

const char *
pcp_opcode_name(unsigned int op)
{
	switch (op) {
	case PCP_OP_ANNOUNCE:
		return "ANNOUNCE";
	case PCP_OP_MAP:
		return "MAP";
	case PCP_OP_PEER:
		return "PEER";
	case PCP_OP_AUTHENTICATION:
		return "AUTHENTICATION";
	default:
		return "UNKNOWN_OPCODE";
	}
}

/* ---- addresses (§5) ---- */

bool
pcp_addr_is_v4(const struct in6_addr *a)
{
	/* §5: all 96 prefix bits, ::ffff:0:0/96 */
	static const uint8_t v4mapped[12] = {
		0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff
	};

	return memcmp(a->s6_addr, v4mapped, sizeof(v4mapped)) == 0;
}

void
pcp_addr_from_v4(struct in6_addr *a, const struct in_addr *v4)
{
	memset(a, 0, sizeof(*a));
	a->s6_addr[10] = 0xff;
	a->s6_addr[11] = 0xff;
	memcpy(&a->s6_addr[12], &v4->s_addr, sizeof(v4->s_addr));
}

void
pcp_addr_to_v4(const struct in6_addr *a, struct in_addr *v4)
{
	memcpy(&v4->s_addr, &a->s6_addr[12], sizeof(v4->s_addr));
}

bool
pcp_addr_is_any(const struct in6_addr *a)
{
	struct in6_addr v4any;
	struct in_addr zero = { 0 };

	pcp_addr_from_v4(&v4any, &zero);
	return IN6_IS_ADDR_UNSPECIFIED(a) || pcp_addr_equal(a, &v4any);
}

const char *
pcp_addr_ntop(const struct in6_addr *a, char *buf, size_t len)
{
	struct in_addr v4;

	if (pcp_addr_is_v4(a)) {
		pcp_addr_to_v4(a, &v4);
		return inet_ntop(AF_INET, &v4, buf, (socklen_t)len);
	}
	/* glibc's inet_ntop follows RFC 5952 (lower case, longest zero run
	 * compressed, never a lone zero field) */
	return inet_ntop(AF_INET6, a, buf, (socklen_t)len);
}

bool
pcp_addr_pton(const char *s, struct in6_addr *a)
{
	struct in_addr v4;

	if (inet_pton(AF_INET, s, &v4) == 1) {
		pcp_addr_from_v4(a, &v4);
		return true;
	}
	return inet_pton(AF_INET6, s, a) == 1;
}
