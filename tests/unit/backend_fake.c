/*
 * backend_fake.c - the in-memory backend for tests; see backend_fake.h.
 */
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "backend.h"
#include "backend_fake.h"

enum fake_op {
	FAKE_OP_ADD,
	FAKE_OP_REMOVE,
	FAKE_OP_REFRESH,
};

struct fake_change {
	struct backend_rule	 rule;
	backend_done_fn		 done;
	void			*arg;
	enum fake_op		 op;
};

/* "fail the next n with error" */
struct fake_fault {
	unsigned int	 n;
	int		 error;
};

struct fake_backend {
	struct backend		 base;		/* first: the vtable */
	struct backend_rule	*rules;
	size_t			 n_rules;
	size_t			 cap_rules;
	struct fake_change	*queue;
	size_t			 n_queue;
	size_t			 cap_queue;
	struct backend_fake_counters counters;
	struct fake_fault	 fail_add;
	struct fake_fault	 fail_remove;
	struct fake_fault	 fail_refresh;
	struct fake_fault	 fail_commit;
	unsigned int		 fail_reconcile;
	struct backend_fake_guard guard;	/* applied */
	struct backend_fake_guard next_guard;	/* for the next commit */
	bool			 has_guard;
	bool			 guard_pending;
	unsigned int		 guard_sets;
};

static struct fake_backend *
fake_of(struct backend *b)
{
	if (b == NULL || b->ops != &backend_fake_ops)
		abort();
	return (struct fake_backend *)b;
}

static const struct fake_backend *
fake_of_const(const struct backend *b)
{
	if (b == NULL || b->ops != &backend_fake_ops)
		abort();
	return (const struct fake_backend *)b;
}

/* --- the rules --- */

/* The installed rule with key's name (backend_rule_same_key), or NULL. */
static struct backend_rule *
fake_find_key(const struct fake_backend *fb, const struct backend_rule *key)
{
	size_t i;

	for (i = 0; i < fb->n_rules; i++)
		if (backend_rule_same_key(&fb->rules[i], key))
			return &fb->rules[i];
	return NULL;
}

/* The DNAT rule for (protocol, ext_port), or NULL. */
static struct backend_rule *
fake_find(const struct fake_backend *fb, uint8_t protocol, uint16_t ext_port)
{
	struct backend_rule key = { .protocol = protocol,
	    .ext_port = ext_port, .kind = BACKEND_RULE_DNAT };

	return fake_find_key(fb, &key);
}

static int
fake_install(struct fake_backend *fb, const struct backend_rule *r)
{
	struct backend_rule *slot, *p;
	size_t cap;

	if ((slot = fake_find_key(fb, r)) != NULL) {
		*slot = *r;
		return 0;
	}
	if (fb->n_rules == fb->cap_rules) {
		cap = fb->cap_rules ? fb->cap_rules * 2 : 16;
		if ((p = reallocarray(fb->rules, cap, sizeof(*p))) == NULL)
			return ENOMEM;
		fb->rules = p;
		fb->cap_rules = cap;
	}
	fb->rules[fb->n_rules++] = *r;
	return 0;
}

static bool
fake_uninstall(struct fake_backend *fb, const struct backend_rule *key)
{
	struct backend_rule *r;

	if ((r = fake_find_key(fb, key)) == NULL)
		return false;
	*r = fb->rules[--fb->n_rules];
	return true;
}

/* The same checks as backend_nft: DNAT needs a protocol with ports. */
static int
fake_check(const struct fake_change *c)
{
	const struct backend_rule *r = &c->rule;

	switch (r->protocol) {
	case IPPROTO_TCP:
	case IPPROTO_UDP:
	case IPPROTO_DCCP:
	case IPPROTO_SCTP:
	case IPPROTO_UDPLITE:
		break;
	default:
		return EPROTONOSUPPORT;
	}
	if (r->ext_port == 0)
		return EINVAL;
	if (c->op != FAKE_OP_REMOVE &&
	    (!IN6_IS_ADDR_V4MAPPED(&r->int_addr) || r->int_port == 0))
		return EINVAL;
	/* a PEER SNAT names its flow, and needs the address to SNAT to */
	if (r->kind == BACKEND_RULE_PEER_SNAT &&
	    (!IN6_IS_ADDR_V4MAPPED(&r->int_addr) || r->int_port == 0 ||
	    !IN6_IS_ADDR_V4MAPPED(&r->peer_addr) || r->peer_port == 0 ||
	    (c->op != FAKE_OP_REMOVE &&
	    !IN6_IS_ADDR_V4MAPPED(&r->ext_addr))))
		return EINVAL;
	if (r->kind != BACKEND_RULE_DNAT && r->kind != BACKEND_RULE_PEER_SNAT)
		return EINVAL;
	return 0;
}

static bool
fake_fault_hit(struct fake_fault *f, int *error)
{
	if (f->n == 0)
		return false;
	f->n--;
	*error = f->error;
	return true;
}

/* --- the vtable --- */

static struct backend *
fake_open(const struct backend_params *p)
{
	struct fake_backend *fb;

	(void)p;
	if ((fb = calloc(1, sizeof(*fb))) == NULL)
		return NULL;
	fb->base.ops = &backend_fake_ops;
	return &fb->base;
}

static void
fake_finish(struct fake_change *q, size_t n, const int *errors)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (q[i].done != NULL)
			q[i].done(q[i].arg, errors[i]);
}

static struct fake_change *
fake_take_queue(struct fake_backend *fb, size_t *n)
{
	struct fake_change *q = fb->queue;

	*n = fb->n_queue;
	fb->queue = NULL;
	fb->n_queue = fb->cap_queue = 0;
	return q;
}

static void
fake_close(struct backend *b)
{
	struct fake_backend *fb;
	struct fake_change *q;
	size_t i, n;

	if (b == NULL)
		return;
	fb = fake_of(b);
	q = fake_take_queue(fb, &n);
	for (i = 0; i < n; i++)
		if (q[i].done != NULL)
			q[i].done(q[i].arg, ECANCELED);
	free(q);
	free(fb->rules);
	free(fb);
}

static int
fake_destroy(struct backend *b)
{
	struct fake_backend *fb = fake_of(b);

	fb->n_rules = 0;
	fb->counters.destroys++;
	return 0;
}

static int
fake_enqueue(struct backend *b, enum fake_op op, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	struct fake_backend *fb = fake_of(b);
	struct fake_change *q;
	size_t cap;

	if (fb->n_queue == fb->cap_queue) {
		cap = fb->cap_queue ? fb->cap_queue * 2 : 16;
		if ((q = reallocarray(fb->queue, cap, sizeof(*q))) == NULL)
			return -1;
		fb->queue = q;
		fb->cap_queue = cap;
	}
	q = &fb->queue[fb->n_queue++];
	q->rule = *r;
	q->op = op;
	q->done = done;
	q->arg = arg;
	return 0;
}

static int
fake_add(struct backend *b, const struct backend_rule *r, backend_done_fn done,
    void *arg)
{
	return fake_enqueue(b, FAKE_OP_ADD, r, done, arg);
}

static int
fake_remove(struct backend *b, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	return fake_enqueue(b, FAKE_OP_REMOVE, r, done, arg);
}

static int
fake_refresh(struct backend *b, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	return fake_enqueue(b, FAKE_OP_REFRESH, r, done, arg);
}

/* One change; its completion status. */
static int
fake_apply(struct fake_backend *fb, const struct fake_change *c)
{
	int error;

	if ((error = fake_check(c)) != 0)
		return error;
	switch (c->op) {
	case FAKE_OP_ADD:
		if (fake_fault_hit(&fb->fail_add, &error))
			return error;
		if ((error = fake_install(fb, &c->rule)) == 0)
			fb->counters.adds++;
		return error;
	case FAKE_OP_REFRESH:
		if (fake_fault_hit(&fb->fail_refresh, &error))
			return error;
		if ((error = fake_install(fb, &c->rule)) == 0)
			fb->counters.refreshes++;
		return error;
	case FAKE_OP_REMOVE:
		if (fake_fault_hit(&fb->fail_remove, &error))
			return error;
		fake_uninstall(fb, &c->rule);
		fb->counters.removes++;
		return 0;
	}
	return EINVAL;
}

static void
fake_commit(struct backend *b)
{
	struct fake_backend *fb = fake_of(b);
	struct fake_change *q;
	size_t i, n;
	int *errors, commit_error = 0;
	bool whole_fails;

	fb->counters.commit_calls++;
	/* like backend_nft: the guard first, in a transaction of its own */
	if (fb->guard_pending) {
		fb->guard = fb->next_guard;
		fb->has_guard = true;
		fb->guard_pending = false;
		fb->guard_sets++;
	}
	/* callbacks may queue changes: they wait for the next commit */
	if ((q = fake_take_queue(fb, &n)) == NULL)
		return;
	fb->counters.commits++;
	fb->counters.last_batch = n;
	if ((errors = calloc(n, sizeof(*errors))) == NULL)
		abort();
	whole_fails = fake_fault_hit(&fb->fail_commit, &commit_error);
	for (i = 0; i < n; i++) {
		errors[i] = whole_fails ? commit_error : fake_apply(fb, &q[i]);
		if (errors[i] != 0)
			fb->counters.failures++;
	}
	fake_finish(q, n, errors);
	free(errors);
	free(q);
}

static bool
fake_pending(const struct backend *b)
{
	const struct fake_backend *fb = fake_of_const(b);

	return fb->n_queue > 0 || fb->guard_pending;
}

static bool
fake_guard_ports(uint16_t *dst, size_t *n_dst, const uint16_t *src, size_t n)
{
	size_t i;

	if (n > BACKEND_GUARD_MAX_PORTS)
		return false;
	for (i = 0; i < n; i++)
		if ((dst[i] = src[i]) == 0)
			return false;
	*n_dst = n;
	return true;
}

static int
fake_set_guard(struct backend *b, const char * const *lan_ifnames,
    size_t n_lan, const uint16_t *tcp_ports, size_t n_tcp, size_t n_limited,
    const uint16_t *udp_ports, size_t n_udp)
{
	struct fake_backend *fb = fake_of(b);
	struct backend_fake_guard g;
	size_t i;

	memset(&g, 0, sizeof(g));
	if (n_lan > BACKEND_FAKE_GUARD_MAX_LANS || n_limited > n_tcp ||
	    !fake_guard_ports(g.tcp, &g.n_tcp, tcp_ports, n_tcp) ||
	    !fake_guard_ports(g.udp, &g.n_udp, udp_ports, n_udp))
		return -1;
	for (i = 0; i < n_lan; i++) {
		if (lan_ifnames[i] == NULL || lan_ifnames[i][0] == '\0' ||
		    strlen(lan_ifnames[i]) >= IFNAMSIZ)
			return -1;
		memcpy(g.lans[i], lan_ifnames[i], strlen(lan_ifnames[i]) + 1);
	}
	g.n_lan = n_lan;
	g.n_limited = n_limited;
	fb->next_guard = g;
	fb->guard_pending = true;
	return 0;
}

static int
fake_reconcile(struct backend *b, const struct backend_rule *rules, size_t n)
{
	struct fake_backend *fb = fake_of(b);
	struct fake_change c = { .op = FAKE_OP_ADD };
	size_t i;

	fb->counters.reconciles++;
	if (fb->fail_reconcile > 0) {
		fb->fail_reconcile--;
		return -1;
	}
	fb->n_rules = 0;
	for (i = 0; i < n; i++) {
		c.rule = rules[i];
		/* like backend_nft: bad rules are skipped, the first of two
		   rules with one key wins */
		if (fake_check(&c) != 0 ||
		    fake_find_key(fb, &rules[i]) != NULL)
			continue;
		if (fake_install(fb, &rules[i]) != 0)
			return -1;
	}
	return 0;
}

const struct backend_ops backend_fake_ops = {
	.name = "fake",
	.open = fake_open,
	.close = fake_close,
	.destroy = fake_destroy,
	.add = fake_add,
	.remove = fake_remove,
	.refresh = fake_refresh,
	.commit = fake_commit,
	.pending = fake_pending,
	.reconcile = fake_reconcile,
	.set_guard = fake_set_guard,
};

/* --- test hooks --- */

struct backend *
backend_fake_new(void)
{
	return fake_open(NULL);
}

const struct backend_fake_counters *
backend_fake_counters(const struct backend *b)
{
	return &fake_of_const(b)->counters;
}

size_t
backend_fake_rule_count(const struct backend *b)
{
	return fake_of_const(b)->n_rules;
}

const struct backend_rule *
backend_fake_lookup(const struct backend *b, uint8_t protocol,
    uint16_t ext_port)
{
	return fake_find(fake_of_const(b), protocol, ext_port);
}

const struct backend_rule *
backend_fake_lookup_peer(const struct backend *b, uint8_t protocol,
    const struct in6_addr *int_addr, uint16_t int_port,
    const struct in6_addr *peer_addr, uint16_t peer_port)
{
	struct backend_rule key = { .protocol = protocol,
	    .kind = BACKEND_RULE_PEER_SNAT, .int_addr = *int_addr,
	    .int_port = int_port, .peer_addr = *peer_addr,
	    .peer_port = peer_port };

	return fake_find_key(fake_of_const(b), &key);
}

const struct backend_rule *
backend_fake_rule(const struct backend *b, size_t i)
{
	const struct fake_backend *fb = fake_of_const(b);

	return i < fb->n_rules ? &fb->rules[i] : NULL;
}

const struct backend_fake_guard *
backend_fake_guard(const struct backend *b)
{
	const struct fake_backend *fb = fake_of_const(b);

	return fb->has_guard ? &fb->guard : NULL;
}

unsigned int
backend_fake_guard_sets(const struct backend *b)
{
	return fake_of_const(b)->guard_sets;
}

size_t
backend_fake_queued(const struct backend *b)
{
	return fake_of_const(b)->n_queue;
}

void
backend_fake_fail_adds(struct backend *b, unsigned int n, int error)
{
	fake_of(b)->fail_add = (struct fake_fault){ n, error };
}

void
backend_fake_fail_removes(struct backend *b, unsigned int n, int error)
{
	fake_of(b)->fail_remove = (struct fake_fault){ n, error };
}

void
backend_fake_fail_refreshes(struct backend *b, unsigned int n, int error)
{
	fake_of(b)->fail_refresh = (struct fake_fault){ n, error };
}

void
backend_fake_fail_commits(struct backend *b, unsigned int n, int error)
{
	fake_of(b)->fail_commit = (struct fake_fault){ n, error };
}

void
backend_fake_fail_reconciles(struct backend *b, unsigned int n)
{
	fake_of(b)->fail_reconcile = n;
}

bool
backend_fake_expire(struct backend *b, uint8_t protocol, uint16_t ext_port)
{
	struct backend_rule key = { .protocol = protocol,
	    .ext_port = ext_port, .kind = BACKEND_RULE_DNAT };

	return fake_uninstall(fake_of(b), &key);
}
