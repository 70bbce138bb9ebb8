/*
 * json.c - streaming JSON writer on a libevent evbuffer (RFC 8259).
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include <event2/buffer.h>

#include "json.h"

/* RFC 8259 §7: characters below U+0020 must be escaped. */
#define JSON_CTRL_LIMIT		0x20
/* "\uXXXX" plus NUL */
#define JSON_ESC_MAX		7
/* A decimal int64 with its sign, plus NUL */
#define JSON_NUM_MAX		24
/* The Unicode replacement character, for bytes that are not UTF-8. */
#define JSON_REPLACEMENT	"\\ufffd"

static void
json_raw(struct json_writer *w, const void *data, size_t len)
{
	if (w->err || len == 0)
		return;
	if (evbuffer_add(w->buf, data, len) == -1)
		w->err = true;
}

static void
json_raw_str(struct json_writer *w, const char *s)
{
	json_raw(w, s, strlen(s));
}

void
json_init(struct json_writer *w, struct evbuffer *buf)
{
	memset(w, 0, sizeof(*w));
	w->buf = buf;
	if (buf == NULL)
		w->err = true;
}

bool
json_ok(const struct json_writer *w)
{
	return !w->err;
}

bool
json_done(const struct json_writer *w)
{
	return !w->err && w->depth == 0 && w->top_done;
}

/* Place a value: its comma in an array, its key check in an object. */
static bool
json_value_start(struct json_writer *w)
{
	unsigned int top;

	if (w->err)
		return false;
	if (w->depth == 0) {
		if (w->top_done)
			w->err = true;	/* one top-level value only */
		return !w->err;
	}
	top = w->depth - 1;
	if (w->is_object[top]) {
		if (!w->have_key) {
			w->err = true;	/* object member without a name */
			return false;
		}
		w->have_key = false;
		return true;
	}
	if (w->has_items[top])
		json_raw(w, ",", 1);
	w->has_items[top] = true;
	return !w->err;
}

static void
json_value_end(struct json_writer *w)
{
	if (w->depth == 0)
		w->top_done = true;
}

static void
json_open(struct json_writer *w, bool is_object)
{
	if (!json_value_start(w))
		return;
	if (w->depth == JSON_MAX_DEPTH) {
		w->err = true;
		return;
	}
	json_raw(w, is_object ? "{" : "[", 1);
	w->is_object[w->depth] = is_object;
	w->has_items[w->depth] = false;
	w->depth++;
}

static void
json_close(struct json_writer *w, bool is_object)
{
	if (w->err)
		return;
	if (w->depth == 0 || w->is_object[w->depth - 1] != is_object ||
	    w->have_key) {
		w->err = true;
		return;
	}
	json_raw(w, is_object ? "}" : "]", 1);
	w->depth--;
	json_value_end(w);
}

void
json_object_begin(struct json_writer *w)
{
	json_open(w, true);
}

void
json_object_end(struct json_writer *w)
{
	json_close(w, true);
}

void
json_array_begin(struct json_writer *w)
{
	json_open(w, false);
}

void
json_array_end(struct json_writer *w)
{
	json_close(w, false);
}

/*
 * Length of the well-formed UTF-8 sequence at s (Unicode Table 3-7: no
 * overlongs, no surrogates, nothing past U+10FFFF), or 0 if there is none.
 * *bad_len is then the maximal ill-formed prefix to replace by one U+FFFD
 * (Unicode §3.9 "U+FFFD substitution of maximal subparts"), at least 1.
 */
static size_t
json_utf8_len(const uint8_t *s, size_t len, size_t *bad_len)
{
	uint8_t c = s[0], lo = 0x80, hi = 0xbf;
	size_t need, i;

	*bad_len = 1;
	if (c < 0x80)
		return 1;
	if (c >= 0xc2 && c <= 0xdf)
		need = 1;
	else if (c >= 0xe0 && c <= 0xef) {
		need = 2;
		if (c == 0xe0)
			lo = 0xa0;	/* no overlong 3-byte forms */
		else if (c == 0xed)
			hi = 0x9f;	/* no UTF-16 surrogates */
	} else if (c >= 0xf0 && c <= 0xf4) {
		need = 3;
		if (c == 0xf0)
			lo = 0x90;	/* no overlong 4-byte forms */
		else if (c == 0xf4)
			hi = 0x8f;	/* nothing above U+10FFFF */
	} else
		return 0;
	for (i = 1; i <= need; i++) {
		if (i >= len || s[i] < lo || s[i] > hi) {
			*bad_len = i;
			return 0;
		}
		lo = 0x80;
		hi = 0xbf;
	}
	return need + 1;
}

/* The escape for byte c, or NULL if it goes out as is. */
static const char *
json_escape(uint8_t c, char tmp[JSON_ESC_MAX])
{
	switch (c) {
	case '"':
		return "\\\"";
	case '\\':
		return "\\\\";
	case '\b':
		return "\\b";
	case '\f':
		return "\\f";
	case '\n':
		return "\\n";
	case '\r':
		return "\\r";
	case '\t':
		return "\\t";
	default:
		break;
	}
	if (c < JSON_CTRL_LIMIT) {
		(void)snprintf(tmp, JSON_ESC_MAX, "\\u%04x", (unsigned int)c);
		return tmp;
	}
	return NULL;
}

static void
json_string_body(struct json_writer *w, const uint8_t *s, size_t len)
{
	char tmp[JSON_ESC_MAX];
	const char *esc;
	size_t i = 0, run = 0, n, bad;

	/* Copy runs of plain bytes in one go; flush before each escape. */
	while (i < len) {
		n = json_utf8_len(s + i, len - i, &bad);
		if (n == 0) {
			json_raw(w, s + run, i - run);
			json_raw_str(w, JSON_REPLACEMENT);
			i += bad;
			run = i;
			continue;
		}
		if (n == 1 && (esc = json_escape(s[i], tmp)) != NULL) {
			json_raw(w, s + run, i - run);
			json_raw_str(w, esc);
			i++;
			run = i;
			continue;
		}
		i += n;
	}
	json_raw(w, s + run, i - run);
}

static void
json_quoted(struct json_writer *w, const void *s, size_t len)
{
	json_raw(w, "\"", 1);
	json_string_body(w, s, len);
	json_raw(w, "\"", 1);
}

void
json_key(struct json_writer *w, const char *key)
{
	unsigned int top;

	if (w->err)
		return;
	if (w->depth == 0 || key == NULL) {
		w->err = true;
		return;
	}
	top = w->depth - 1;
	if (!w->is_object[top] || w->have_key) {
		w->err = true;
		return;
	}
	if (w->has_items[top])
		json_raw(w, ",", 1);
	w->has_items[top] = true;
	json_quoted(w, key, strlen(key));
	json_raw(w, ":", 1);
	w->have_key = true;
}

void
json_string_len(struct json_writer *w, const void *s, size_t len)
{
	if (s == NULL && len != 0) {
		w->err = true;
		return;
	}
	if (!json_value_start(w))
		return;
	json_quoted(w, s, len);
	json_value_end(w);
}

void
json_string(struct json_writer *w, const char *s)
{
	if (s == NULL)
		json_null(w);
	else
		json_string_len(w, s, strlen(s));
}

static void
json_literal(struct json_writer *w, const char *text)
{
	if (!json_value_start(w))
		return;
	json_raw_str(w, text);
	json_value_end(w);
}

void
json_uint(struct json_writer *w, uint64_t v)
{
	char num[JSON_NUM_MAX];

	(void)snprintf(num, sizeof(num), "%" PRIu64, v);
	json_literal(w, num);
}

void
json_int(struct json_writer *w, int64_t v)
{
	char num[JSON_NUM_MAX];

	(void)snprintf(num, sizeof(num), "%" PRId64, v);
	json_literal(w, num);
}

void
json_bool(struct json_writer *w, bool v)
{
	json_literal(w, v ? "true" : "false");
}

void
json_null(struct json_writer *w)
{
	json_literal(w, "null");
}

void
json_kv_string(struct json_writer *w, const char *key, const char *v)
{
	json_key(w, key);
	json_string(w, v);
}

void
json_kv_uint(struct json_writer *w, const char *key, uint64_t v)
{
	json_key(w, key);
	json_uint(w, v);
}

void
json_kv_int(struct json_writer *w, const char *key, int64_t v)
{
	json_key(w, key);
	json_int(w, v);
}

void
json_kv_bool(struct json_writer *w, const char *key, bool v)
{
	json_key(w, key);
	json_bool(w, v);
}

void
json_kv_null(struct json_writer *w, const char *key)
{
	json_key(w, key);
	json_null(w);
}
