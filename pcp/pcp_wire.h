/*
 * pcp_wire.h - RFC 6887 PCP wire codec (pure: bytes in, struct out).
 *
 * decode -> validate -> commit: the decoders fill a local struct and copy it
 * to the caller only when the whole message is valid. No pointers into the
 * receive buffer survive a call; option data is copied.
 */
#ifndef IWFD_PCP_WIRE_H
#define IWFD_PCP_WIRE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PCP_VERSION		2
#define PCP_SERVER_PORT		5351	/* RFC 6887 §19.1 */
#define PCP_CLIENT_PORT		5350	/* announcements, §14.1.1 */
#define PCP_MAX_SIZE		1100	/* §7 */
#define PCP_HDR_SIZE		24	/* §7.1, §7.2 */
#define PCP_MAP_BODY_SIZE	36	/* §11.1 */
#define PCP_PEER_BODY_SIZE	56	/* §12.1 */
#define PCP_NONCE_SIZE		12	/* §11.1: 96 bits */
#define PCP_OPT_HDR_SIZE	4	/* §7.3 */
#define PCP_DESCRIPTION_MAX	1016	/* RFC 7220 §3: fills a 1100-octet PEER
					   (80 + 4 + 1016); a MAP with it is 1080 */
#define PCP_THIRD_PARTY_ID_MAX	1016	/* RFC 7843 */
/* FILTER options that can fit in one MAP: (1100 - 60) / 24. */
#define PCP_MAX_FILTERS		43
#define PCP_MAX_UNKNOWN_OPTS	64
#define PCP_LIFETIME_SHORT_ERR	30	/* §7.4 */
#define PCP_LIFETIME_LONG_ERR	1800	/* §7.4 */
#define PCP_R_BIT		0x80	/* §7.1: byte 1 is R << 7 | opcode */
#define PCP_OPCODE_MASK		0x7f
#define PCP_MAP_MSG_SIZE	(PCP_HDR_SIZE + PCP_MAP_BODY_SIZE)	/* 60 */
#define PCP_PEER_MSG_SIZE	(PCP_HDR_SIZE + PCP_PEER_BODY_SIZE)	/* 80 */

enum pcp_opcode {
	PCP_OP_ANNOUNCE = 0,
	PCP_OP_MAP = 1,
	PCP_OP_PEER = 2,
	PCP_OP_AUTHENTICATION = 3,	/* RFC 7652 */
};

enum pcp_result {
	PCP_SUCCESS = 0,
	PCP_UNSUPP_VERSION = 1,
	PCP_NOT_AUTHORIZED = 2,
	PCP_MALFORMED_REQUEST = 3,
	PCP_UNSUPP_OPCODE = 4,
	PCP_UNSUPP_OPTION = 5,
	PCP_MALFORMED_OPTION = 6,
	PCP_NETWORK_FAILURE = 7,
	PCP_NO_RESOURCES = 8,
	PCP_UNSUPP_PROTOCOL = 9,
	PCP_USER_EX_QUOTA = 10,
	PCP_CANNOT_PROVIDE_EXTERNAL = 11,
	PCP_ADDRESS_MISMATCH = 12,
	PCP_EXCESSIVE_REMOTE_PEERS = 13,
	/* RFC 7843 */
	PCP_THIRD_PARTY_ID_UNKNOWN = 24,
	PCP_THIRD_PARTY_MISSING_OPTION = 25,
	PCP_UNSUPP_THIRD_PARTY_ID_LENGTH = 26,
};

enum pcp_option_code {
	PCP_OPT_THIRD_PARTY = 1,
	PCP_OPT_PREFER_FAILURE = 2,
	PCP_OPT_FILTER = 3,
	PCP_OPT_NONCE = 4,		/* RFC 7652, AUTHENTICATION only */
	PCP_OPT_AUTHENTICATION_TAG = 5,	/* RFC 7652 */
	PCP_OPT_THIRD_PARTY_ID = 13,	/* RFC 7843 */
	PCP_OPT_DESCRIPTION = 128,	/* RFC 7220 */
	PCP_OPT_PREFIX64 = 129,		/* RFC 7225 */
	PCP_OPT_PORT_SET = 130,		/* RFC 7753 */
};

/* Option code bit 7 clear: mandatory to process (§7.3). */
#define PCP_OPT_IS_OPTIONAL(code)	(((code) & 0x80) != 0)

struct pcp_filter {			/* §13.3 */
	uint8_t		 prefix_len;
	uint16_t	 remote_port;
	struct in6_addr	 remote_addr;
};

struct pcp_port_set {			/* RFC 7753 §5 */
	uint16_t	 size;
	uint16_t	 first_internal_port;
	bool		 parity;
};

/* An option the codec does not interpret: kept by value, in order. */
struct pcp_opt_raw {
	uint8_t		 code;
	uint16_t	 len;
	uint16_t	 data_off;	/* into pcp_msg.raw_data */
};

/*
 * One PCP message, request or response. Addresses are always 128 bits
 * (IPv4-mapped for IPv4, §5).
 */
struct pcp_msg {
	uint8_t		 version;
	bool		 response;	/* R bit */
	uint8_t		 opcode;
	uint8_t		 result;	/* responses */
	uint32_t	 lifetime;
	uint32_t	 epoch;		/* responses */
	/*
	 * Responses only: part of the message could not be decoded (an error
	 * reply carrying a short request copy, a cut option, or UNSUPP_VERSION
	 * from another version); the fields that fit are filled, the rest 0.
	 */
	bool		 truncated;
	struct in6_addr	 client_addr;	/* requests: PCP Client IP */

	/* MAP and PEER (§11.1, §12.1) */
	uint8_t		 nonce[PCP_NONCE_SIZE];
	uint8_t		 protocol;
	uint16_t	 internal_port;
	uint16_t	 ext_port;	/* suggested (request) / assigned */
	struct in6_addr	 ext_addr;
	/* PEER only */
	uint16_t	 peer_port;
	struct in6_addr	 peer_addr;

	/* Opcode body of an opcode the codec does not know, copied. */
	uint16_t	 body_len;
	uint8_t		 body[PCP_MAX_SIZE - PCP_HDR_SIZE];

	/* Options (§7.3, §13; RFC 7220, 7843, 7753) */
	bool		 has_third_party;
	struct in6_addr	 third_party;
	bool		 prefer_failure;
	uint8_t		 n_filters;
	struct pcp_filter filters[PCP_MAX_FILTERS];
	bool		 has_description;
	uint16_t	 description_len;
	char		 description[PCP_DESCRIPTION_MAX + 1];	/* NUL added */
	/*
	 * RFC 7220 §3: the text MUST be UTF-8; an invalid one is still decoded
	 * (the server decides: it must then not echo the option). False also
	 * when the text holds a NUL octet, which no C consumer can keep.
	 */
	bool		 description_utf8_ok;
	bool		 has_third_party_id;
	uint16_t	 third_party_id_len;
	uint8_t		 third_party_id[PCP_THIRD_PARTY_ID_MAX];
	bool		 has_port_set;
	struct pcp_port_set port_set;

	/* Unknown options (and known ones without a struct field), in order. */
	uint8_t		 n_raw;
	struct pcp_opt_raw raw[PCP_MAX_UNKNOWN_OPTS];
	uint16_t	 raw_data_len;
	uint8_t		 raw_data[PCP_MAX_SIZE];
};

/*
 * Result of decoding a request on the server side, following the RFC 6887
 * §8.2 pipeline order.
 */
enum pcp_verdict {
	PCP_VERDICT_OK = 0,	/* msg is valid; act on it */
	PCP_VERDICT_DROP,	/* silently drop (§8.2: < 2 octets, R set, < 24) */
	PCP_VERDICT_ERROR,	/* reply with *result via pcp_encode_error() */
};

/*
 * Decoder flags. RFC 7648 §3.4 (P-16..P-18): a proxy with a co-located NAT
 * relays unknown opcodes and unknown mandatory options unless configured not
 * to; PCP_DECODE_RELAY_UNKNOWN keeps them (opcode body in msg->body, options
 * in msg->raw) instead of answering UNSUPP_OPCODE / UNSUPP_OPTION.
 */
#define PCP_DECODE_RELAY_UNKNOWN	0x01

/*
 * Decode a request received from src (IPv4-mapped for IPv4; NULL skips the
 * ADDRESS_MISMATCH check and the §13.1 "THIRD_PARTY equals the source"
 * MALFORMED_REQUEST check). On OK and on DROP *result is PCP_SUCCESS; on
 * PCP_VERDICT_ERROR it holds the code to send, and msg is left untouched.
 * Unknown opcodes yield PCP_VERDICT_ERROR with PCP_UNSUPP_OPCODE, unknown
 * mandatory options PCP_UNSUPP_OPTION (unless relaying: then the opcode body
 * and options go to msg->body uninterpreted, and unknown mandatory options
 * of MAP/PEER/ANNOUNCE to msg->raw). Unknown optional options, PREFIX64, and
 * optional options sent with an opcode they are not defined for are kept in
 * msg->raw. AUTHENTICATION (opcode 3) and the RFC 7652 options 4..12 are
 * refused (UNSUPP_OPCODE / UNSUPP_OPTION) even when relaying. Mandatory
 * MAP/PEER options sent with another opcode give MALFORMED_OPTION (RFC 6887
 * names no code; see pcp_wire.c). msg and result may be NULL. The caller
 * applies policy (THIRD_PARTY permission, DESCRIPTION UTF-8, ...) after.
 */
enum pcp_verdict pcp_decode_request(const uint8_t *, size_t,
    const struct in6_addr *, unsigned int flags, struct pcp_msg *,
    enum pcp_result *);

/*
 * Decode a response (client side, §8.3). Returns false when it must be
 * dropped: shorter than 24 / longer than 1100 / not a multiple of 4, R bit
 * clear, or a body too short for its opcode (error responses may carry a
 * short copy and are accepted with whatever body fields fit).
 * A version other than 2 with result UNSUPP_VERSION decodes as such.
 */
bool	pcp_decode_response(const uint8_t *, size_t, struct pcp_msg *);

/*
 * Encode msg (request or response per msg->response) into buf. Returns the
 * length, or 0 if it would exceed PCP_MAX_SIZE or cap.
 */
size_t	pcp_encode(const struct pcp_msg *, uint8_t *, size_t);

/*
 * Error reply (§8.2, §7.2): copy of the request (truncated to 1100 octets,
 * zero-padded to a multiple of 4) with version 2, R set, result, lifetime and
 * epoch; octets 12..23 keep the last 96 bits of the Client IP field.
 * Returns the length, 0 if req_len < 2.
 */
size_t	pcp_encode_error(const uint8_t *req, size_t req_len,
	    enum pcp_result, uint32_t lifetime, uint32_t epoch,
	    uint8_t *out, size_t cap);

/*
 * True when a and b carry the same message: every header and body field, the
 * contents of the options present, raw options by code and contents (not
 * offsets), the body of an unknown opcode. The truncated flag is ignored.
 */
bool	pcp_msg_equal(const struct pcp_msg *, const struct pcp_msg *);

/*
 * RFC 3629: well-formed UTF-8 (no overlong forms, no surrogates, at most
 * U+10FFFF), as RFC 7220 §3 requires of DESCRIPTION. A NUL octet is refused
 * too (the text is kept as a C string).
 */
bool	pcp_utf8_valid(const void *, size_t);

/* Names as in RFC 6887 §7.4 ("SUCCESS", "NOT_AUTHORIZED", ...). */
const char *pcp_result_name(unsigned int);
/* §7.4: true for the errors whose lifetime is short (7, 8, 10). */
bool	pcp_result_is_short(unsigned int);
const char *pcp_opcode_name(unsigned int);

/* Address helpers (§5): IPv4-mapped test checks all 96 bits. */
bool	pcp_addr_is_v4(const struct in6_addr *);
void	pcp_addr_from_v4(struct in6_addr *, const struct in_addr *);
void	pcp_addr_to_v4(const struct in6_addr *, struct in_addr *);
/* "any" of the family: :: or ::ffff:0:0. */
bool	pcp_addr_is_any(const struct in6_addr *);
/* Text form: dotted quad for IPv4-mapped, else RFC 5952. */
const char *pcp_addr_ntop(const struct in6_addr *, char *, size_t);
bool	pcp_addr_pton(const char *, struct in6_addr *);

#endif
