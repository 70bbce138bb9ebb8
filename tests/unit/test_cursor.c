/*
 * test_cursor.c - the bounds-checked reader/writer and its sticky error.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include "cursor.h"

static void
test_reads_big_endian(void **state)
{
	static const uint8_t buf[] = { 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07 };
	struct cursor c;

	(void)state;
	cur_init(&c, buf, sizeof(buf));
	assert_int_equal(cur_u8(&c), 0x01);
	assert_int_equal(cur_u16(&c), 0x0203);
	assert_int_equal(cur_u32(&c), 0x04050607);
	assert_false(c.err);
	assert_int_equal(cur_left(&c), 0);
}

static void
test_short_read_is_sticky(void **state)
{
	static const uint8_t buf[] = { 0xaa, 0xbb, 0xcc };
	uint8_t out[4] = { 1, 1, 1, 1 };
	struct cursor c;

	(void)state;
	cur_init(&c, buf, sizeof(buf));
	assert_int_equal(cur_u16(&c), 0xaabb);
	assert_int_equal(cur_u32(&c), 0);	/* short: error, zero */
	assert_true(c.err);
	/* every later read is a no-op yielding zeros, even one that fits */
	assert_int_equal(cur_u8(&c), 0);
	cur_bytes(&c, out, sizeof(out));
	assert_memory_equal(out, "\0\0\0\0", 4);
	assert_int_equal(cur_left(&c), 0);
}

static void
test_sub_cursor(void **state)
{
	static const uint8_t buf[] = { 1, 2, 3, 4, 5 };
	struct cursor c, sub;

	(void)state;
	cur_init(&c, buf, sizeof(buf));
	cur_sub(&c, 3, &sub);
	assert_int_equal(cur_u8(&c), 4);
	assert_int_equal(cur_u16(&sub), 0x0102);
	assert_int_equal(cur_u16(&sub), 0);
	assert_true(sub.err);
	assert_false(c.err);
	cur_sub(&c, 2, &sub);
	assert_true(c.err);
	assert_true(sub.err);
}

static void
test_writer_overflow_is_sticky(void **state)
{
	uint8_t buf[6];
	struct wbuf w;

	(void)state;
	wbuf_init(&w, buf, sizeof(buf));
	wbuf_u16(&w, 0x0102);
	wbuf_u16(&w, 0);
	wbuf_put_u16_at(&w, 2, 0xbeef);
	assert_false(w.err);
	wbuf_u32(&w, 0xdeadbeef);	/* needs 4, 2 left */
	assert_true(w.err);
	wbuf_u8(&w, 9);			/* fits, but the error sticks */
	assert_int_equal(w.len, 4);
	assert_memory_equal(buf, "\x01\x02\xbe\xef", 4);
	wbuf_init(&w, buf, sizeof(buf));
	wbuf_zero(&w, 2);
	wbuf_put_u16_at(&w, 1, 1);	/* would run past len */
	assert_true(w.err);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_reads_big_endian),
		cmocka_unit_test(test_short_read_is_sticky),
		cmocka_unit_test(test_sub_cursor),
		cmocka_unit_test(test_writer_overflow_is_sticky),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
