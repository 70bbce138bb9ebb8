/*
 * natpmp_wire.h - the NAT-PMP (RFC 6886) wire codec: pure, like pcp_wire
 * (STYLE.md habit 1). Bytes in, struct out, through the one cursor; no
 * globals, no clock, no sockets.
 *
 * Layouts (RFC 6886 §3.2-3.5; spec/iwf.md §1.2):
 *   address request   ver 0 · op 0                                    2
 *   map request       ver 0 · op 1|2 · reserved u16 · internal port ·
 *                     suggested external port · lifetime u32         12
 *   address response  ver 0 · op 128 · result u16 · SSSoE · IPv4     12
 *   map response      ver 0 · op 128+op · result · SSSoE · internal
 *                     port · mapped external port · lifetime         16
 *   error header      ver 0 · op 128+op · result · SSSoE              8
 */
#ifndef IWFD_NATPMP_WIRE_H
#define IWFD_NATPMP_WIRE_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define NATPMP_VERSION		0	/* RFC 6886 §3 */
#define NATPMP_SERVER_PORT	5351	/* §1.1: requests */
#define NATPMP_CLIENT_PORT	5350	/* §3.2.1: announcements */

#define NATPMP_OP_ADDRESS	0	/* §3.2 */
#define NATPMP_OP_MAP_UDP	1	/* §3.3 */
#define NATPMP_OP_MAP_TCP	2
#define NATPMP_OP_RESPONSE	0x80	/* §3.5: top bit of the opcode */

#define NATPMP_ADDR_REQ_SIZE	2
#define NATPMP_MAP_REQ_SIZE	12
#define NATPMP_HDR_SIZE		8	/* ver, op, result, SSSoE */
#define NATPMP_ADDR_RESP_SIZE	12
#define NATPMP_MAP_RESP_SIZE	16
/* An unknown opcode's request is returned whole (§3.5); longer ones are
   cut here (PCP's limit, RFC 6887 §7: the same port, the same budget). */
#define NATPMP_ECHO_MAX		1100

/* §3.3: the RECOMMENDED lifetime; what natpmpc asks by default is 3600. */
#define NATPMP_LIFETIME_RECOMMENDED 7200
/* §3.2.1: 10 announcements, the first gap 250 ms, doubling. */
#define NATPMP_ANNOUNCE_COUNT	10
#define NATPMP_ANNOUNCE_FIRST_GAP_MS 250

/* Result codes, RFC 6886 §3.5. */
enum natpmp_result {
	NATPMP_RESULT_SUCCESS = 0,
	NATPMP_RESULT_UNSUPP_VERSION = 1,
	NATPMP_RESULT_NOT_AUTHORIZED = 2,
	NATPMP_RESULT_NETWORK_FAILURE = 3,
	NATPMP_RESULT_NO_RESOURCES = 4,
	NATPMP_RESULT_UNSUPP_OPCODE = 5,
};

enum natpmp_verdict {
	NATPMP_DROP = 0,	/* silently: too short, or a response (§3.5) */
	NATPMP_REQUEST,		/* a valid op 0/1/2 request */
	NATPMP_BAD_VERSION,	/* answer natpmp_encode_bad_version() */
	NATPMP_BAD_OPCODE,	/* answer natpmp_encode_bad_opcode() */
};

struct natpmp_request {
	uint8_t		 version;
	uint8_t		 opcode;
	uint16_t	 internal_port;	/* op 1/2 */
	uint16_t	 ext_port;	/* suggested; 0 = any */
	uint32_t	 lifetime;	/* 0 = delete */
};

struct natpmp_response {
	uint8_t		 opcode;	/* the request's (0, 1, 2) */
	uint16_t	 result;	/* enum natpmp_result */
	uint32_t	 epoch;		/* Seconds Since Start of Epoch */
	struct in_addr	 ext_addr;	/* op 0 */
	uint16_t	 internal_port;	/* op 1/2 */
	uint16_t	 ext_port;
	uint32_t	 lifetime;
};

/*
 * Decode a datagram a client sent to 5351. Shorter than 2 octets, or
 * op 1/2 shorter than 12 -> DROP (miniupnpd's rule; spec/iwf.md §1.2);
 * opcode >= 128 -> DROP (§3.5: a response); version != 0 -> BAD_VERSION;
 * an unknown opcode < 128 -> BAD_OPCODE; octets past the layout are
 * ignored. *req is filled for REQUEST (and version/opcode for the rest).
 */
enum natpmp_verdict natpmp_decode_request(const uint8_t *, size_t,
		    struct natpmp_request *);
/* A response of the request's opcode: 12 octets for op 0, 16 for op 1/2
   (a result other than success zeroes the address, RFC 6886 §3.2).
   Returns the length, 0 when cap is too small or the opcode unknown. */
size_t		 natpmp_encode_response(const struct natpmp_response *,
		    uint8_t *, size_t cap);
/* §3.5 "Unsupported Version": 8 octets, result 1. The figure shows op 0;
   we send 128 + op as miniupnpd does (libnatpmp refuses other opcodes;
   spec/iwf.md §1.2). Returns 8, or 0 when cap is too small. */
size_t		 natpmp_encode_bad_version(uint8_t opcode, uint32_t epoch,
		    uint8_t *, size_t cap);
/*
 * §3.5 unknown opcode: "the entire request MUST be returned ... with the
 * top bit of the opcode set and the result code set to 5". Every packet
 * we send carries SSSoE (§3.6), so octets 2-7 are the result and SSSoE
 * header and the request follows from octet 8 on; a request shorter than
 * 8 is answered with the 8-octet header. Cut at NATPMP_ECHO_MAX.
 */
size_t		 natpmp_encode_bad_opcode(const uint8_t *req, size_t len,
		    uint32_t epoch, uint8_t *, size_t cap);

/* The client's side, for tests and tools. */
size_t		 natpmp_encode_request(const struct natpmp_request *,
		    uint8_t *, size_t cap);
/* A response to op 0/1/2 of the right size (extra octets ignored); false
   for anything else. */
bool		 natpmp_decode_response(const uint8_t *, size_t,
		    struct natpmp_response *);

const char	*natpmp_result_name(unsigned int);

#endif
