/*
 * cursor.c - bounds-checked reader and writer with a sticky error.
 */
#include <string.h>

#include "cursor.h"

void
cur_init(struct cursor *c, const void *buf, size_t len)
{
	c->buf = buf;
	c->len = buf == NULL ? 0 : len;
	c->off = 0;
	c->err = false;
}

size_t
cur_left(const struct cursor *c)
{
	return c->err ? 0 : c->len - c->off;
}

/* Claim n bytes; on shortage set the sticky error and return NULL. */
static const uint8_t *
cur_take(struct cursor *c, size_t n)
{
	const uint8_t *p;

	if (c->err || n > c->len - c->off) {
		c->err = true;
		return NULL;
	}
	p = c->buf + c->off;
	c->off += n;
	return p;
}

uint8_t
cur_u8(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 1);

	return p == NULL ? 0 : p[0];
}

uint16_t
cur_u16(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 2);

	return p == NULL ? 0 : (uint16_t)(p[0] << 8 | p[1]);
}

uint32_t
cur_u32(struct cursor *c)
{
	const uint8_t *p = cur_take(c, 4);

	if (p == NULL)
		return 0;
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	    (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

void
cur_bytes(struct cursor *c, void *out, size_t n)
{
	const uint8_t *p = cur_take(c, n);

	if (p == NULL)
		memset(out, 0, n);
	else if (n > 0)
		memcpy(out, p, n);
}

void
cur_skip(struct cursor *c, size_t n)
{
	(void)cur_take(c, n);
}

void
cur_sub(struct cursor *c, size_t n, struct cursor *sub)
{
	const uint8_t *p = cur_take(c, n);

	cur_init(sub, p, p == NULL ? 0 : n);
	sub->err = p == NULL;
}

void
wbuf_init(struct wbuf *w, void *buf, size_t cap)
{
	w->buf = buf;
	w->cap = buf == NULL ? 0 : cap;
	w->len = 0;
	w->err = false;
}

static uint8_t *
wbuf_claim(struct wbuf *w, size_t n)
{
	uint8_t *p;

	if (w->err || n > w->cap - w->len) {
		w->err = true;
		return NULL;
	}
	p = w->buf + w->len;
	w->len += n;
	return p;
}

void
wbuf_u8(struct wbuf *w, uint8_t v)
{
	uint8_t *p = wbuf_claim(w, 1);

	if (p != NULL)
		p[0] = v;
}

void
wbuf_u16(struct wbuf *w, uint16_t v)
{
	uint8_t *p = wbuf_claim(w, 2);

	if (p != NULL) {
		p[0] = (uint8_t)(v >> 8);
		p[1] = (uint8_t)v;
	}
}

void
wbuf_u32(struct wbuf *w, uint32_t v)
{
	uint8_t *p = wbuf_claim(w, 4);

	if (p != NULL) {
		p[0] = (uint8_t)(v >> 24);
		p[1] = (uint8_t)(v >> 16);
		p[2] = (uint8_t)(v >> 8);
		p[3] = (uint8_t)v;
	}
}

void
wbuf_bytes(struct wbuf *w, const void *src, size_t n)
{
	uint8_t *p = wbuf_claim(w, n);

	if (p != NULL && n > 0)
		memcpy(p, src, n);
}

void
wbuf_zero(struct wbuf *w, size_t n)
{
	uint8_t *p = wbuf_claim(w, n);

	if (p != NULL && n > 0)
		memset(p, 0, n);
}

void
wbuf_put_u16_at(struct wbuf *w, size_t off, uint16_t v)
{
	if (w->err || off > w->len || w->len - off < 2) {
		w->err = true;
		return;
	}
	w->buf[off] = (uint8_t)(v >> 8);
	w->buf[off + 1] = (uint8_t)v;
}
