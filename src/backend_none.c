/*
 * backend_none.c - the backend for gateways that install no local rules
 * (nat = none, or no firewall to talk to): every change succeeds and does
 * nothing. The callbacks still run from commit(), like any backend's, so
 * the core has one code path whatever the backend.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "backend.h"
#include "log.h"

struct none_done {
	backend_done_fn	 done;
	void		*arg;
};

struct none_backend {
	struct backend	 base;		/* first: the vtable */
	struct none_done *queue;
	size_t		 n_queue;
	size_t		 cap_queue;
};

static struct none_backend *
none_of(struct backend *b)
{
	return (struct none_backend *)b;
}

static struct backend *
none_open(const struct backend_params *p)
{
	struct none_backend *nb;

	(void)p;
	if ((nb = calloc(1, sizeof(*nb))) == NULL) {
		log_warn("backend none: calloc");
		return NULL;
	}
	nb->base.ops = &backend_none_ops;
	/* base is the first member (C11 6.7.2.1): the same pointer as
	   &nb->base, which gcc 12's -fanalyzer takes for a leak of nb */
	return (struct backend *)nb;
}

/* Run and forget the queued callbacks; new ones queued meanwhile wait for
   the next commit. */
static void
none_finish(struct none_backend *nb, int error)
{
	struct none_done *q = nb->queue;
	size_t i, n = nb->n_queue;

	nb->queue = NULL;
	nb->n_queue = nb->cap_queue = 0;
	for (i = 0; i < n; i++)
		if (q[i].done != NULL)
			q[i].done(q[i].arg, error);
	free(q);
}

static void
none_close(struct backend *b)
{
	struct none_backend *nb = none_of(b);

	if (nb == NULL)
		return;
	none_finish(nb, ECANCELED);
	free(nb);
}

static int
none_destroy(struct backend *b)
{
	(void)b;
	return 0;
}

static int
none_enqueue(struct backend *b, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	struct none_backend *nb = none_of(b);
	struct none_done *q;
	size_t cap;

	(void)r;
	if (nb->n_queue == nb->cap_queue) {
		cap = nb->cap_queue ? nb->cap_queue * 2 : 16;
		if ((q = reallocarray(nb->queue, cap, sizeof(*q))) == NULL) {
			log_warn("backend none: queue");
			return -1;
		}
		nb->queue = q;
		nb->cap_queue = cap;
	}
	nb->queue[nb->n_queue].done = done;
	nb->queue[nb->n_queue].arg = arg;
	nb->n_queue++;
	return 0;
}

static void
none_commit(struct backend *b)
{
	none_finish(none_of(b), 0);
}

static bool
none_pending(const struct backend *b)
{
	return ((const struct none_backend *)b)->n_queue > 0;
}

static int
none_reconcile(struct backend *b, const struct backend_rule *rules, size_t n)
{
	(void)b;
	(void)rules;
	(void)n;
	return 0;
}

/* Nothing is installed, so there is no guard either: with nat = none the
   daemon's own sockets are the only filter (docs/deployment.md). */
static int
none_set_guard(struct backend *b, const char * const *lan_ifnames,
    size_t n_lan, const uint16_t *tcp_ports, size_t n_tcp, size_t n_limited,
    const uint16_t *udp_ports, size_t n_udp)
{
	(void)b;
	(void)n_limited;
	(void)lan_ifnames;
	(void)n_lan;
	(void)tcp_ports;
	(void)n_tcp;
	(void)udp_ports;
	(void)n_udp;
	return 0;
}

const struct backend_ops backend_none_ops = {
	.name = "none",
	.open = none_open,
	.close = none_close,
	.destroy = none_destroy,
	.add = none_enqueue,
	.remove = none_enqueue,
	.refresh = none_enqueue,
	.commit = none_commit,
	.pending = none_pending,
	.reconcile = none_reconcile,
	.set_guard = none_set_guard,
};
