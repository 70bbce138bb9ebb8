/*
 * outbox.c - replies held until the turn's commit (outbox.h).
 */
#include <stdlib.h>
#include <string.h>

#include "outbox.h"

#define OUTBOX_ENTRIES_INITIAL	64

struct outbox_entry {
	outbox_release_fn	 fn;		/* NULL: forgotten */
	void			*arg;
	size_t			 off;		/* in the arena */
	size_t			 len;
	bool			 promise;
};

struct outbox {
	struct outbox_entry	*e;
	size_t			 count, cap;
	uint8_t			*arena;
	size_t			 used, arena_cap;
	size_t			 busy;
	bool			 releasing;
	void			(*kick)(void *);
	void			*kick_arg;
	struct outbox_stats	 stats;
};

struct outbox *
outbox_new(const struct outbox_params *p)
{
	struct outbox *ob;

	if ((ob = calloc(1, sizeof(*ob))) == NULL)
		return NULL;
	ob->busy = p != NULL && p->busy != 0 ? p->busy : OUTBOX_BUSY_DEFAULT;
	if (p != NULL) {
		ob->kick = p->kick;
		ob->kick_arg = p->kick_arg;
	}
	ob->e = calloc(OUTBOX_ENTRIES_INITIAL, sizeof(*ob->e));
	ob->arena = malloc(OUTBOX_ARENA_INITIAL);
	if (ob->e == NULL || ob->arena == NULL) {
		outbox_free(ob);
		return NULL;
	}
	ob->cap = OUTBOX_ENTRIES_INITIAL;
	ob->arena_cap = OUTBOX_ARENA_INITIAL;
	return ob;
}

void
outbox_free(struct outbox *ob)
{
	size_t i;

	if (ob == NULL)
		return;
	for (i = 0; i < ob->count; i++)
		if (ob->e[i].fn != NULL)
			ob->e[i].fn(ob->e[i].arg, OUTBOX_DISCARD,
			    ob->arena + ob->e[i].off, ob->e[i].len);
	free(ob->e);
	free(ob->arena);
	free(ob);
}

static int
outbox_reserve(struct outbox *ob, size_t len)
{
	struct outbox_entry *e;
	uint8_t *a;
	size_t cap;

	if (ob->count == ob->cap) {
		cap = ob->cap * 2;
		if (cap < ob->cap || (e = reallocarray(ob->e, cap,
		    sizeof(*e))) == NULL)
			return -1;
		ob->e = e;
		ob->cap = cap;
	}
	if (len > ob->arena_cap - ob->used) {
		cap = ob->arena_cap;
		while (cap - ob->used < len) {
			if (cap * 2 < cap)
				return -1;
			cap *= 2;
		}
		if ((a = realloc(ob->arena, cap)) == NULL)
			return -1;
		ob->arena = a;
		ob->arena_cap = cap;
	}
	return 0;
}

int
outbox_hold(struct outbox *ob, outbox_release_fn fn, void *arg,
    bool promise, const void *data, size_t len)
{
	struct outbox_entry *e;

	if (outbox_reserve(ob, len) == -1) {
		ob->stats.unheld++;
		fn(arg, promise ? OUTBOX_NOT_DURABLE : OUTBOX_SEND, data, len);
		return -1;
	}
	e = &ob->e[ob->count++];
	e->fn = fn;
	e->arg = arg;
	e->promise = promise;
	e->off = ob->used;
	e->len = len;
	if (len > 0)
		memcpy(ob->arena + ob->used, data, len);
	ob->used += len;
	ob->stats.held++;
	if (ob->count > ob->stats.max_count)
		ob->stats.max_count = ob->count;
	/* the first of a turn: the turn must end for it to go out */
	if (ob->count == 1 && !ob->releasing && ob->kick != NULL)
		ob->kick(ob->kick_arg);
	return 0;
}

void
outbox_release(struct outbox *ob, bool durable)
{
	struct outbox_entry e;
	enum outbox_fate fate;
	size_t i, n = ob->count, base;

	ob->releasing = true;
	for (i = 0; i < n; i++) {
		/* by index: a release function may hold more (the arrays
		   may move: it must be done with its data before it holds
		   anything new) */
		e = ob->e[i];
		if (e.fn == NULL)
			continue;
		fate = durable || !e.promise ? OUTBOX_SEND : OUTBOX_NOT_DURABLE;
		if (fate == OUTBOX_SEND)
			ob->stats.sent++;
		else
			ob->stats.not_durable++;
		e.fn(e.arg, fate, ob->arena + e.off, e.len);
	}
	ob->releasing = false;
	/* what was held while releasing moves to the front */
	if (ob->count > n) {
		base = ob->e[n].off;
		memmove(ob->arena, ob->arena + base, ob->used - base);
		for (i = n; i < ob->count; i++)
			ob->e[i].off -= base;
		memmove(ob->e, ob->e + n, (ob->count - n) * sizeof(*ob->e));
		ob->used -= base;
		ob->count -= n;
		if (ob->kick != NULL)
			ob->kick(ob->kick_arg);
		return;
	}
	ob->count = 0;
	ob->used = 0;
}

void
outbox_forget(struct outbox *ob, void *arg)
{
	size_t i;

	if (ob == NULL)
		return;
	for (i = 0; i < ob->count; i++)
		if (ob->e[i].fn != NULL && ob->e[i].arg == arg) {
			ob->e[i].fn(arg, OUTBOX_DISCARD,
			    ob->arena + ob->e[i].off, ob->e[i].len);
			ob->e[i].fn = NULL;
			ob->stats.discarded++;
		}
}

size_t
outbox_count(const struct outbox *ob)
{
	return ob->count;
}

bool
outbox_busy(const struct outbox *ob)
{
	return ob->count >= ob->busy;
}

const struct outbox_stats *
outbox_stats(const struct outbox *ob)
{
	return &ob->stats;
}
