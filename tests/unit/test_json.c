/*
 * test_json.c - the JSON writer: structure and commas, escaping, invalid
 * UTF-8 replacement, numbers, and the sticky error on misuse.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include <event2/buffer.h>

#include "json.h"

struct fixture {
	struct evbuffer		*buf;
	struct json_writer	 w;
	char			 text[4096];
};

static int
setup(void **state)
{
	static struct fixture f;

	memset(&f, 0, sizeof(f));
	f.buf = evbuffer_new();
	if (f.buf == NULL)
		return -1;
	json_init(&f.w, f.buf);
	*state = &f;
	return 0;
}

static int
teardown(void **state)
{
	struct fixture *f = *state;

	evbuffer_free(f->buf);
	return 0;
}

/* The buffer's contents as a C string. */
static const char *
text(struct fixture *f)
{
	size_t len = evbuffer_get_length(f->buf);

	assert_true(len < sizeof(f->text));
	assert_int_equal(evbuffer_copyout(f->buf, f->text, len), len);
	f->text[len] = '\0';
	return f->text;
}

/* One string value, written alone, as the buffer holds it. */
static const char *
string_of(struct fixture *f, const void *s, size_t len)
{
	json_string_len(&f->w, s, len);
	assert_true(json_done(&f->w));
	return text(f);
}

static void
test_empty_containers(void **state)
{
	struct fixture *f = *state;

	json_array_begin(&f->w);
	json_object_begin(&f->w);
	json_object_end(&f->w);
	json_array_begin(&f->w);
	json_array_end(&f->w);
	json_array_end(&f->w);
	assert_true(json_done(&f->w));
	assert_string_equal(text(f), "[{},[]]");
}

static void
test_object_commas(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_kv_string(&f->w, "result", "SUCCESS");
	json_kv_uint(&f->w, "result_code", 0);
	json_kv_int(&f->w, "delta", -5);
	json_kv_bool(&f->w, "prefer_failure", true);
	json_kv_bool(&f->w, "third_party", false);
	json_kv_null(&f->w, "description");
	json_key(&f->w, "list");
	json_array_begin(&f->w);
	json_uint(&f->w, 1);
	json_uint(&f->w, 2);
	json_object_begin(&f->w);
	json_kv_string(&f->w, "a", "b");
	json_object_end(&f->w);
	json_array_end(&f->w);
	json_object_end(&f->w);
	assert_true(json_done(&f->w));
	assert_string_equal(text(f),
	    "{\"result\":\"SUCCESS\",\"result_code\":0,\"delta\":-5,"
	    "\"prefer_failure\":true,\"third_party\":false,"
	    "\"description\":null,\"list\":[1,2,{\"a\":\"b\"}]}");
}

static void
test_number_limits(void **state)
{
	struct fixture *f = *state;

	json_array_begin(&f->w);
	json_uint(&f->w, UINT64_MAX);
	json_int(&f->w, INT64_MIN);
	json_uint(&f->w, 4294967295u);
	json_array_end(&f->w);
	assert_string_equal(text(f),
	    "[18446744073709551615,-9223372036854775808,4294967295]");
}

static void
test_escapes(void **state)
{
	struct fixture *f = *state;
	static const char in[] = "a\"b\\c/\b\f\n\r\t\x01\x1f\x7f";

	assert_string_equal(string_of(f, in, sizeof(in) - 1),
	    "\"a\\\"b\\\\c/\\b\\f\\n\\r\\t\\u0001\\u001f\x7f\"");
}

static void
test_embedded_nul(void **state)
{
	struct fixture *f = *state;

	assert_string_equal(string_of(f, "x\0y", 3), "\"x\\u0000y\"");
}

static void
test_valid_utf8_kept(void **state)
{
	struct fixture *f = *state;
	/* 2-, 3- and 4-byte forms, and the edges U+0080, U+FFFF, U+10FFFF */
	static const char in[] = "\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	    "\xc2\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf";

	assert_string_equal(string_of(f, in, sizeof(in) - 1),
	    "\"\xc3\xa9\xe2\x82\xac\xf0\x9f\x98\x80"
	    "\xc2\x80\xef\xbf\xbf\xf4\x8f\xbf\xbf\"");
}

static void
test_invalid_utf8_replaced(void **state)
{
	struct fixture *f = *state;
	/*
	 * lone continuation; overlong C0 AF; surrogate ED A0 80; F5 (never
	 * valid); above U+10FFFF (F4 90 ...); a truncated 3-byte form at the
	 * end. Maximal subparts: E2 82 then 'x' gives one replacement.
	 */
	static const char in[] = "a\x80" "b\xc0\xaf" "c\xed\xa0\x80"
	    "d\xf5" "e\xf4\x90\x80\x80" "f\xe2\x82x\xe2\x82";

	assert_string_equal(string_of(f, in, sizeof(in) - 1),
	    "\"a\\ufffdb\\ufffd\\ufffdc\\ufffd\\ufffd\\ufffdd\\ufffd"
	    "e\\ufffd\\ufffd\\ufffd\\ufffdf\\ufffdx\\ufffd\"");
}

static void
test_escaped_keys(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_kv_string(&f->w, "k\"\n", "v");
	json_object_end(&f->w);
	assert_string_equal(text(f), "{\"k\\\"\\n\":\"v\"}");
}

static void
test_null_string_is_null(void **state)
{
	struct fixture *f = *state;

	json_array_begin(&f->w);
	json_string(&f->w, NULL);
	json_string(&f->w, "");
	json_array_end(&f->w);
	assert_string_equal(text(f), "[null,\"\"]");
}

static void
test_value_without_key_fails(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_uint(&f->w, 1);
	assert_false(json_ok(&f->w));
	/* sticky: nothing more is written */
	json_kv_uint(&f->w, "a", 1);
	json_object_end(&f->w);
	assert_false(json_done(&f->w));
	assert_string_equal(text(f), "{");
}

static void
test_key_in_array_fails(void **state)
{
	struct fixture *f = *state;

	json_array_begin(&f->w);
	json_key(&f->w, "a");
	assert_false(json_ok(&f->w));
}

static void
test_mismatched_end_fails(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_array_end(&f->w);
	assert_false(json_ok(&f->w));
}

static void
test_key_without_value_fails(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_key(&f->w, "a");
	json_object_end(&f->w);
	assert_false(json_ok(&f->w));
}

static void
test_two_keys_fail(void **state)
{
	struct fixture *f = *state;

	json_object_begin(&f->w);
	json_key(&f->w, "a");
	json_key(&f->w, "b");
	assert_false(json_ok(&f->w));
}

static void
test_second_top_level_value_fails(void **state)
{
	struct fixture *f = *state;

	json_uint(&f->w, 1);
	assert_true(json_done(&f->w));
	json_uint(&f->w, 2);
	assert_false(json_ok(&f->w));
	assert_string_equal(text(f), "1");
}

static void
test_unclosed_is_not_done(void **state)
{
	struct fixture *f = *state;

	assert_false(json_done(&f->w));	/* nothing written yet */
	json_array_begin(&f->w);
	assert_true(json_ok(&f->w));
	assert_false(json_done(&f->w));
}

static void
test_depth_limit(void **state)
{
	struct fixture *f = *state;
	unsigned int i;

	for (i = 0; i < JSON_MAX_DEPTH; i++)
		json_array_begin(&f->w);
	assert_true(json_ok(&f->w));
	json_array_begin(&f->w);
	assert_false(json_ok(&f->w));
}

static void
test_null_buffer(void **state)
{
	struct json_writer w;

	(void)state;
	json_init(&w, NULL);
	json_null(&w);
	assert_false(json_ok(&w));
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_empty_containers,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_object_commas,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_number_limits,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_escapes, setup, teardown),
		cmocka_unit_test_setup_teardown(test_embedded_nul,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_valid_utf8_kept,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_invalid_utf8_replaced,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_escaped_keys,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_null_string_is_null,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_value_without_key_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_in_array_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_mismatched_end_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_key_without_value_fails,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_two_keys_fail,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(
		    test_second_top_level_value_fails, setup, teardown),
		cmocka_unit_test_setup_teardown(test_unclosed_is_not_done,
		    setup, teardown),
		cmocka_unit_test_setup_teardown(test_depth_limit,
		    setup, teardown),
		cmocka_unit_test(test_null_buffer),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
