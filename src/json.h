/*
 * json.h - a small streaming JSON writer that appends to a libevent
 * evbuffer (the control socket's reply buffer, or a buffer the control
 * client prints).
 *
 * The writer puts the commas and colons; the caller only says what comes
 * next. Strings are always emitted as valid JSON: quotes, backslashes and
 * control characters are escaped, and bytes that are not valid UTF-8 are
 * replaced by U+FFFD, so a mapping description taken from the network
 * cannot break the output.
 *
 * Misuse (a value in an object without a key, a key in an array, an end
 * that does not match, nesting deeper than JSON_MAX_DEPTH) and allocation
 * failure set a sticky error: every later call is a no-op and json_ok()
 * returns false.
 */
#ifndef IWFD_JSON_H
#define IWFD_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct evbuffer;

#define JSON_MAX_DEPTH		16

struct json_writer {
	struct evbuffer	*buf;
	unsigned int	 depth;			/* open containers */
	bool		 is_object[JSON_MAX_DEPTH];
	bool		 has_items[JSON_MAX_DEPTH];
	bool		 have_key;		/* a key awaits its value */
	bool		 top_done;		/* the top-level value is complete */
	bool		 err;
};

void	json_init(struct json_writer *, struct evbuffer *);
/* True when nothing went wrong so far. */
bool	json_ok(const struct json_writer *);
/* True when exactly one complete top-level value was written, no error. */
bool	json_done(const struct json_writer *);

void	json_object_begin(struct json_writer *);
void	json_object_end(struct json_writer *);
void	json_array_begin(struct json_writer *);
void	json_array_end(struct json_writer *);
/* A member name inside an object; the next call writes its value. */
void	json_key(struct json_writer *, const char *);

/* A NUL-terminated string; NULL writes null. */
void	json_string(struct json_writer *, const char *);
/* len bytes that may contain NULs or invalid UTF-8. */
void	json_string_len(struct json_writer *, const void *, size_t);
void	json_uint(struct json_writer *, uint64_t);
void	json_int(struct json_writer *, int64_t);
void	json_bool(struct json_writer *, bool);
void	json_null(struct json_writer *);

/* key + value shorthands */
void	json_kv_string(struct json_writer *, const char *, const char *);
void	json_kv_uint(struct json_writer *, const char *, uint64_t);
void	json_kv_int(struct json_writer *, const char *, int64_t);
void	json_kv_bool(struct json_writer *, const char *, bool);
void	json_kv_null(struct json_writer *, const char *);

#endif
