/*
 * outbox.h - replies held until the loop turn's changes are durable
 * (DESIGN.md "State and durability": a SUCCESS is sent only after its
 * record is durable; docs/state.md "Replies wait for the commit").
 *
 * During a loop turn the front-ends hold every reply they would send
 * (PCP and NAT-PMP datagrams, UPnP SOAP answers, the wake-up of a pupnp
 * worker that waits for an answer) in the daemon's one outbox; at the end
 * of the turn the daemon commits the state (one journal group) and then
 * releases the outbox: each entry's release function runs, in the order
 * held, with the commit's outcome. An entry that promises durability (a
 * SUCCESS for a mapping) is told OUTBOX_NOT_DURABLE when the commit
 * failed, and must not be sent then; the others are sent either way.
 *
 * Cheap: one array of entries and one byte arena, both reused from turn
 * to turn (they grow to the largest turn seen; nothing is allocated per
 * reply once warm). Bounded: outbox_busy() tells a front-end reading a
 * burst of requests to stop reading until the turn has ended (it holds
 * an entry that resumes it), so the turn, and its commit, come soon even
 * under a flood. Replies made by the core's later answers are held
 * whatever the count: they cannot be refused.
 */
#ifndef IWFD_OUTBOX_H
#define IWFD_OUTBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Entries past which outbox_busy() says stop reading requests. */
#define OUTBOX_BUSY_DEFAULT	256
/* Room held from the start: a busy turn of datagrams of the usual size
   needs no allocation. */
#define OUTBOX_ARENA_INITIAL	(64u * 1024)

enum outbox_fate {
	OUTBOX_SEND = 0,	/* committed, or the entry promises nothing */
	OUTBOX_NOT_DURABLE,	/* the commit failed: a SUCCESS must not go
				   out (the client asks again) */
	OUTBOX_DISCARD,		/* shutting down or forgotten: free only */
};

/* Let one entry go; data is the copy held (len bytes, may be 0). */
typedef void (*outbox_release_fn)(void *arg, enum outbox_fate,
	    const void *data, size_t len);

struct outbox_params {
	size_t		 busy;		/* 0: OUTBOX_BUSY_DEFAULT */
	/* The first entry of a turn: make sure the turn ends (iwfd_kick). */
	void		(*kick)(void *);
	void		*kick_arg;
};

struct outbox_stats {
	uint64_t	 held;
	uint64_t	 sent;		/* released with OUTBOX_SEND */
	uint64_t	 not_durable;	/* released with OUTBOX_NOT_DURABLE */
	uint64_t	 discarded;
	uint64_t	 unheld;	/* memory ran out: released at once */
	size_t		 max_count;	/* the most held at one time */
};

struct outbox;

struct outbox	*outbox_new(const struct outbox_params *);
/* Discards what is held (OUTBOX_DISCARD), frees. NULL is fine. */
void		 outbox_free(struct outbox *);
/*
 * Hold a reply: fn(arg, fate, copy of data, len) at the next release.
 * promise: a SUCCESS that needs its record durable. When memory runs
 * out the entry is released at once (SEND, or NOT_DURABLE for a
 * promise) and -1 returned; the caller need do nothing more.
 */
int		 outbox_hold(struct outbox *, outbox_release_fn, void *arg,
		    bool promise, const void *data, size_t len);
/* End of the turn: every entry in order, with durable the commit's
   outcome. Entries held while releasing wait for the next release. */
void		 outbox_release(struct outbox *, bool durable);
/* Drop (OUTBOX_DISCARD) the entries of arg: it is going away. */
void		 outbox_forget(struct outbox *, void *arg);
size_t		 outbox_count(const struct outbox *);
bool		 outbox_busy(const struct outbox *);
const struct outbox_stats *outbox_stats(const struct outbox *);

#endif
