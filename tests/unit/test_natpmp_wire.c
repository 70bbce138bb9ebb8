/*
 * test_natpmp_wire.c - the NAT-PMP codec (RFC 6886 §3; spec/iwf.md §1.2):
 * exact bytes of every layout, round trips, and every malformed input.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <string.h>

#include "natpmp_wire.h"

static void
test_decode_address_request(void **state)
{
	static const uint8_t pkt[] = { 0, 0 };
	static const uint8_t longer[] = { 0, 0, 0xde, 0xad, 0xbe, 0xef };
	struct natpmp_request r;

	(void)state;
	assert_int_equal(natpmp_decode_request(pkt, sizeof(pkt), &r),
	    NATPMP_REQUEST);
	assert_int_equal(r.version, 0);
	assert_int_equal(r.opcode, NATPMP_OP_ADDRESS);
	/* trailing octets are ignored (spec/iwf.md §1.2) */
	assert_int_equal(natpmp_decode_request(longer, sizeof(longer), &r),
	    NATPMP_REQUEST);
	assert_int_equal(r.opcode, NATPMP_OP_ADDRESS);
}

static void
test_decode_map_request(void **state)
{
	/* natpmpc -a 8080 80 tcp 3600, reserved octets set: ignored */
	static const uint8_t pkt[] = { 0, 2, 0xff, 0xff, 0x00, 0x50, 0x1f,
	    0x90, 0x00, 0x00, 0x0e, 0x10, 0xaa };
	struct natpmp_request r;

	(void)state;
	assert_int_equal(natpmp_decode_request(pkt, sizeof(pkt), &r),
	    NATPMP_REQUEST);
	assert_int_equal(r.opcode, NATPMP_OP_MAP_TCP);
	assert_int_equal(r.internal_port, 80);
	assert_int_equal(r.ext_port, 8080);
	assert_int_equal(r.lifetime, 3600);
	assert_int_equal(natpmp_decode_request(pkt, NATPMP_MAP_REQ_SIZE, &r),
	    NATPMP_REQUEST);
	assert_int_equal(r.lifetime, 3600);
}

static void
test_decode_malformed(void **state)
{
	static const uint8_t map[] = { 0, 1, 0, 0, 0, 80, 0, 80, 0, 0, 0, 1 };
	static const uint8_t one[] = { 0 };
	static const uint8_t resp[] = { 0, 128, 0, 0 };
	static const uint8_t resp2[] = { 0, 0x81, 0, 0, 0, 80, 0, 80, 0, 0,
	    0, 1 };
	static const uint8_t bad_op[] = { 0, 3 };
	static const uint8_t op127[] = { 0, 127, 1, 2, 3 };
	static const uint8_t v1[] = { 1, 0 };
	static const uint8_t v2_map_short[] = { 2, 1, 0, 0 };
	static const uint8_t v1_resp[] = { 1, 0x80 };
	struct natpmp_request r;
	size_t len;

	(void)state;
	assert_int_equal(natpmp_decode_request(NULL, 0, &r), NATPMP_DROP);
	assert_int_equal(natpmp_decode_request(one, 0, &r), NATPMP_DROP);
	assert_int_equal(natpmp_decode_request(one, sizeof(one), &r),
	    NATPMP_DROP);
	/* op 1/2 shorter than 12: every length from 2 to 11 */
	for (len = 2; len < NATPMP_MAP_REQ_SIZE; len++) {
		assert_int_equal(natpmp_decode_request(map, len, &r),
		    NATPMP_DROP);
		assert_int_equal(r.lifetime, 0);
	}
	/* §3.5: responses are ignored */
	assert_int_equal(natpmp_decode_request(resp, sizeof(resp), &r),
	    NATPMP_DROP);
	assert_int_equal(natpmp_decode_request(resp2, sizeof(resp2), &r),
	    NATPMP_DROP);
	assert_int_equal(natpmp_decode_request(v1_resp, sizeof(v1_resp), &r),
	    NATPMP_DROP);
	/* unknown opcodes < 128 */
	assert_int_equal(natpmp_decode_request(bad_op, sizeof(bad_op), &r),
	    NATPMP_BAD_OPCODE);
	assert_int_equal(r.opcode, 3);
	assert_int_equal(natpmp_decode_request(op127, sizeof(op127), &r),
	    NATPMP_BAD_OPCODE);
	/* another version */
	assert_int_equal(natpmp_decode_request(v1, sizeof(v1), &r),
	    NATPMP_BAD_VERSION);
	assert_int_equal(r.version, 1);
	assert_int_equal(natpmp_decode_request(v2_map_short,
	    sizeof(v2_map_short), &r), NATPMP_DROP);
}

static void
test_encode_address_response(void **state)
{
	static const uint8_t want[] = { 0, 128, 0, 0, 0, 0, 0x01, 0x2c,
	    203, 0, 113, 1 };
	static const uint8_t want_fail[] = { 0, 128, 0, 3, 0, 0, 0x01, 0x2c,
	    0, 0, 0, 0 };
	struct natpmp_response r, back;
	uint8_t buf[64];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.opcode = NATPMP_OP_ADDRESS;
	r.epoch = 300;
	inet_pton(AF_INET, "203.0.113.1", &r.ext_addr);
	assert_int_equal(natpmp_encode_response(&r, buf, sizeof(buf)),
	    NATPMP_ADDR_RESP_SIZE);
	assert_memory_equal(buf, want, sizeof(want));
	assert_true(natpmp_decode_response(buf, NATPMP_ADDR_RESP_SIZE, &back));
	assert_int_equal(back.opcode, 0);
	assert_int_equal(back.epoch, 300);
	assert_memory_equal(&back.ext_addr, &r.ext_addr, 4);
	/* §3.2: with a failure the address MUST be zero */
	r.result = NATPMP_RESULT_NETWORK_FAILURE;
	assert_int_equal(natpmp_encode_response(&r, buf, sizeof(buf)),
	    NATPMP_ADDR_RESP_SIZE);
	assert_memory_equal(buf, want_fail, sizeof(want_fail));
	/* too small a buffer: nothing */
	assert_int_equal(natpmp_encode_response(&r, buf, 11), 0);
}

static void
test_encode_map_response(void **state)
{
	static const uint8_t want[] = { 0, 130, 0, 0, 0, 0, 0, 9, 0, 80,
	    0x9c, 0x40, 0, 0, 0x0e, 0x10 };
	struct natpmp_response r, back;
	uint8_t buf[64];

	(void)state;
	memset(&r, 0, sizeof(r));
	r.opcode = NATPMP_OP_MAP_TCP;
	r.epoch = 9;
	r.internal_port = 80;
	r.ext_port = 40000;
	r.lifetime = 3600;
	assert_int_equal(natpmp_encode_response(&r, buf, sizeof(buf)),
	    NATPMP_MAP_RESP_SIZE);
	assert_memory_equal(buf, want, sizeof(want));
	assert_true(natpmp_decode_response(buf, NATPMP_MAP_RESP_SIZE, &back));
	assert_int_equal(back.opcode, NATPMP_OP_MAP_TCP);
	assert_int_equal(back.internal_port, 80);
	assert_int_equal(back.ext_port, 40000);
	assert_int_equal(back.lifetime, 3600);
	assert_int_equal(natpmp_encode_response(&r, buf, 15), 0);
	assert_false(natpmp_decode_response(buf, 15, &back));
	/* an opcode without a layout */
	r.opcode = 7;
	assert_int_equal(natpmp_encode_response(&r, buf, sizeof(buf)), 0);
}

static void
test_encode_bad_version(void **state)
{
	static const uint8_t want[] = { 0, 129, 0, 1, 0, 0, 0x10, 0 };
	uint8_t buf[16];

	(void)state;
	assert_int_equal(natpmp_encode_bad_version(1, 4096, buf, sizeof(buf)),
	    NATPMP_HDR_SIZE);
	assert_memory_equal(buf, want, sizeof(want));
	assert_int_equal(natpmp_encode_bad_version(1, 4096, buf, 7), 0);
}

static void
test_encode_bad_opcode(void **state)
{
	static const uint8_t req2[] = { 0, 5 };
	static const uint8_t want2[] = { 0, 133, 0, 5, 0, 0, 0, 7 };
	static const uint8_t req10[] = { 0, 9, 1, 2, 3, 4, 5, 6, 7, 8 };
	static const uint8_t want10[] = { 0, 137, 0, 5, 0, 0, 0, 7, 7, 8 };
	uint8_t big[NATPMP_ECHO_MAX + 100];
	uint8_t buf[NATPMP_ECHO_MAX + 100];

	(void)state;
	assert_int_equal(natpmp_encode_bad_opcode(req2, sizeof(req2), 7, buf,
	    sizeof(buf)), sizeof(want2));
	assert_memory_equal(buf, want2, sizeof(want2));
	/* the request is returned whole after the header (§3.5) */
	assert_int_equal(natpmp_encode_bad_opcode(req10, sizeof(req10), 7,
	    buf, sizeof(buf)), sizeof(want10));
	assert_memory_equal(buf, want10, sizeof(want10));
	/* cut at NATPMP_ECHO_MAX */
	memset(big, 0x42, sizeof(big));
	big[0] = 0;
	big[1] = 100;
	assert_int_equal(natpmp_encode_bad_opcode(big, sizeof(big), 7, buf,
	    sizeof(buf)), NATPMP_ECHO_MAX);
	assert_int_equal(buf[NATPMP_ECHO_MAX - 1], 0x42);
	assert_int_equal(natpmp_encode_bad_opcode(big, 1, 7, buf,
	    sizeof(buf)), 0);
	assert_int_equal(natpmp_encode_bad_opcode(req10, sizeof(req10), 7,
	    buf, 9), 0);
}

static void
test_request_round_trip(void **state)
{
	struct natpmp_request r, back;
	uint8_t buf[32];
	uint8_t op;

	(void)state;
	for (op = 0; op <= 2; op++) {
		memset(&r, 0, sizeof(r));
		r.opcode = op;
		if (op != 0) {
			r.internal_port = 1000 + op;
			r.ext_port = 2000 + op;
			r.lifetime = 7200u + op;
		}
		assert_int_equal(natpmp_encode_request(&r, buf, sizeof(buf)),
		    op == 0 ? NATPMP_ADDR_REQ_SIZE : NATPMP_MAP_REQ_SIZE);
		assert_int_equal(natpmp_decode_request(buf, op == 0 ?
		    NATPMP_ADDR_REQ_SIZE : NATPMP_MAP_REQ_SIZE, &back),
		    NATPMP_REQUEST);
		assert_memory_equal(&r, &back, sizeof(r));
	}
	r.opcode = 1;
	assert_int_equal(natpmp_encode_request(&r, buf, 11), 0);
}

static void
test_decode_response_malformed(void **state)
{
	static const uint8_t not_resp[] = { 0, 0, 0, 0, 0, 0, 0, 0, 1, 2, 3,
	    4 };
	static const uint8_t v1[] = { 1, 128, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	static const uint8_t op3[] = { 0, 131, 0, 0, 0, 0, 0, 0, 1, 2, 3, 4 };
	static const uint8_t short_addr[] = { 0, 128, 0, 0, 0, 0, 0, 0, 1, 2,
	    3 };
	struct natpmp_response r;

	(void)state;
	assert_false(natpmp_decode_response(NULL, 0, &r));
	assert_false(natpmp_decode_response(not_resp, sizeof(not_resp), &r));
	assert_false(natpmp_decode_response(v1, sizeof(v1), &r));
	assert_false(natpmp_decode_response(op3, sizeof(op3), &r));
	assert_false(natpmp_decode_response(short_addr, sizeof(short_addr),
	    &r));
	assert_int_equal(r.epoch, 0);
}

static void
test_result_names(void **state)
{
	(void)state;
	assert_string_equal(natpmp_result_name(0), "SUCCESS");
	assert_string_equal(natpmp_result_name(3), "NETWORK_FAILURE");
	assert_string_equal(natpmp_result_name(5), "UNSUPP_OPCODE");
	assert_string_equal(natpmp_result_name(6), "UNKNOWN");
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_decode_address_request),
		cmocka_unit_test(test_decode_map_request),
		cmocka_unit_test(test_decode_malformed),
		cmocka_unit_test(test_encode_address_response),
		cmocka_unit_test(test_encode_map_response),
		cmocka_unit_test(test_encode_bad_version),
		cmocka_unit_test(test_encode_bad_opcode),
		cmocka_unit_test(test_request_round_trip),
		cmocka_unit_test(test_decode_response_malformed),
		cmocka_unit_test(test_result_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
