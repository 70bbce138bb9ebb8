/*
 * cursor.h - the one bounds-checked reader and writer every codec uses.
 *
 * Both carry a sticky error (Knot DNS style): after the first short read or
 * overflowing write every later call is a no-op (reads yield zeros), so a codec
 * decodes a run of fields and checks the error once. No pointers into the
 * buffer are handed out: bytes are always copied.
 */
#ifndef IWFD_CURSOR_H
#define IWFD_CURSOR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct cursor {
	const uint8_t	*buf;
	size_t		 len;
	size_t		 off;
	bool		 err;
};

struct wbuf {
	uint8_t		*buf;
	size_t		 cap;
	size_t		 len;
	bool		 err;
};

void	 cur_init(struct cursor *, const void *, size_t);
uint8_t	 cur_u8(struct cursor *);
uint16_t cur_u16(struct cursor *);		/* big-endian */
uint32_t cur_u32(struct cursor *);		/* big-endian */
void	 cur_bytes(struct cursor *, void *, size_t);
void	 cur_skip(struct cursor *, size_t);
size_t	 cur_left(const struct cursor *);
/* A sub-cursor over the next n bytes; the parent skips them (error if short). */
void	 cur_sub(struct cursor *, size_t, struct cursor *);

void	 wbuf_init(struct wbuf *, void *, size_t);
void	 wbuf_u8(struct wbuf *, uint8_t);
void	 wbuf_u16(struct wbuf *, uint16_t);
void	 wbuf_u32(struct wbuf *, uint32_t);
void	 wbuf_bytes(struct wbuf *, const void *, size_t);
void	 wbuf_zero(struct wbuf *, size_t);
/* Overwrite at an earlier offset (for length fields); error if out of range. */
void	 wbuf_put_u16_at(struct wbuf *, size_t, uint16_t);

#endif
