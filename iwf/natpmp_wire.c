/*
 * natpmp_wire.c - the NAT-PMP codec (RFC 6886 §3). Decoding reads a run
 * of fields through the sticky-error cursor and checks once; encoding
 * writes through the bounded writer and returns 0 on any overflow.
 */
#include <string.h>

#include "cursor.h"
#include "natpmp_wire.h"

static bool
natpmp_op_is_map(uint8_t op)
{
	return op == NATPMP_OP_MAP_UDP || op == NATPMP_OP_MAP_TCP;
}

enum natpmp_verdict
natpmp_decode_request(const uint8_t *pkt, size_t len,
    struct natpmp_request *req)
{
	struct natpmp_request r;
	struct cursor c;

	memset(req, 0, sizeof(*req));
	memset(&r, 0, sizeof(r));
	if (pkt == NULL)
		return NATPMP_DROP;
	cur_init(&c, pkt, len);
	r.version = cur_u8(&c);
	r.opcode = cur_u8(&c);
	if (c.err)
		return NATPMP_DROP;		/* shorter than 2 */
	/* §3.5: an opcode with the top bit set is a response: ignore it. */
	if ((r.opcode & NATPMP_OP_RESPONSE) != 0)
		return NATPMP_DROP;
	/* A short map request is dropped whatever its version (miniupnpd;
	   spec/iwf.md §1.2): it cannot be a complete request of ours. */
	if (natpmp_op_is_map(r.opcode) && len < NATPMP_MAP_REQ_SIZE)
		return NATPMP_DROP;
	req->version = r.version;
	req->opcode = r.opcode;
	if (r.version != NATPMP_VERSION)
		return NATPMP_BAD_VERSION;
	if (r.opcode == NATPMP_OP_ADDRESS)
		return NATPMP_REQUEST;		/* trailing octets ignored */
	if (!natpmp_op_is_map(r.opcode))
		return NATPMP_BAD_OPCODE;
	/* §3.3: the reserved field MUST be ignored on reception. */
	cur_skip(&c, 2);
	r.internal_port = cur_u16(&c);
	r.ext_port = cur_u16(&c);
	r.lifetime = cur_u32(&c);
	if (c.err)
		return NATPMP_DROP;
	*req = r;
	return NATPMP_REQUEST;
}

static void
natpmp_put_header(struct wbuf *w, uint8_t opcode, uint16_t result,
    uint32_t epoch)
{
	wbuf_u8(w, NATPMP_VERSION);
	wbuf_u8(w, (uint8_t)(NATPMP_OP_RESPONSE | opcode));
	wbuf_u16(w, result);
	wbuf_u32(w, epoch);
}

size_t
natpmp_encode_response(const struct natpmp_response *r, uint8_t *out,
    size_t cap)
{
	struct wbuf w;

	wbuf_init(&w, out, cap);
	natpmp_put_header(&w, r->opcode, r->result, r->epoch);
	if (r->opcode == NATPMP_OP_ADDRESS) {
		/* §3.2: the address MUST be zero when the result is not 0. */
		if (r->result == NATPMP_RESULT_SUCCESS)
			wbuf_bytes(&w, &r->ext_addr, sizeof(r->ext_addr));
		else
			wbuf_zero(&w, sizeof(r->ext_addr));
	} else if (natpmp_op_is_map(r->opcode)) {
		wbuf_u16(&w, r->internal_port);
		wbuf_u16(&w, r->ext_port);
		wbuf_u32(&w, r->lifetime);
	} else
		return 0;
	return w.err ? 0 : w.len;
}

size_t
natpmp_encode_bad_version(uint8_t opcode, uint32_t epoch, uint8_t *out,
    size_t cap)
{
	struct wbuf w;

	wbuf_init(&w, out, cap);
	natpmp_put_header(&w, opcode, NATPMP_RESULT_UNSUPP_VERSION, epoch);
	return w.err ? 0 : w.len;
}

size_t
natpmp_encode_bad_opcode(const uint8_t *req, size_t len, uint32_t epoch,
    uint8_t *out, size_t cap)
{
	struct wbuf w;

	if (req == NULL || len < NATPMP_ADDR_REQ_SIZE)
		return 0;
	if (len > NATPMP_ECHO_MAX)
		len = NATPMP_ECHO_MAX;
	wbuf_init(&w, out, cap);
	natpmp_put_header(&w, req[1], NATPMP_RESULT_UNSUPP_OPCODE, epoch);
	if (len > NATPMP_HDR_SIZE)
		wbuf_bytes(&w, req + NATPMP_HDR_SIZE, len - NATPMP_HDR_SIZE);
	return w.err ? 0 : w.len;
}

size_t
natpmp_encode_request(const struct natpmp_request *r, uint8_t *out,
    size_t cap)
{
	struct wbuf w;

	wbuf_init(&w, out, cap);
	wbuf_u8(&w, r->version);
	wbuf_u8(&w, r->opcode);
	if (natpmp_op_is_map(r->opcode)) {
		wbuf_zero(&w, 2);	/* reserved, §3.3 */
		wbuf_u16(&w, r->internal_port);
		wbuf_u16(&w, r->ext_port);
		wbuf_u32(&w, r->lifetime);
	}
	return w.err ? 0 : w.len;
}

bool
natpmp_decode_response(const uint8_t *pkt, size_t len,
    struct natpmp_response *r)
{
	struct natpmp_response out;
	struct cursor c;
	uint8_t version, op;

	memset(r, 0, sizeof(*r));
	memset(&out, 0, sizeof(out));
	if (pkt == NULL)
		return false;
	cur_init(&c, pkt, len);
	version = cur_u8(&c);
	op = cur_u8(&c);
	out.result = cur_u16(&c);
	out.epoch = cur_u32(&c);
	if (c.err || version != NATPMP_VERSION ||
	    (op & NATPMP_OP_RESPONSE) == 0)
		return false;
	out.opcode = op & (uint8_t)~NATPMP_OP_RESPONSE;
	if (out.opcode == NATPMP_OP_ADDRESS)
		cur_bytes(&c, &out.ext_addr, sizeof(out.ext_addr));
	else if (natpmp_op_is_map(out.opcode)) {
		out.internal_port = cur_u16(&c);
		out.ext_port = cur_u16(&c);
		out.lifetime = cur_u32(&c);
	} else
		return false;
	if (c.err)
		return false;
	*r = out;
	return true;
}

const char *
natpmp_result_name(unsigned int result)
{
	switch (result) {
	case NATPMP_RESULT_SUCCESS:
		return "SUCCESS";
	case NATPMP_RESULT_UNSUPP_VERSION:
		return "UNSUPP_VERSION";
	case NATPMP_RESULT_NOT_AUTHORIZED:
		return "NOT_AUTHORIZED";
	case NATPMP_RESULT_NETWORK_FAILURE:
		return "NETWORK_FAILURE";
	case NATPMP_RESULT_NO_RESOURCES:
		return "NO_RESOURCES";
	case NATPMP_RESULT_UNSUPP_OPCODE:
		return "UNSUPP_OPCODE";
	}
	return "UNKNOWN";
}
