/*
 * backend_fake.h - a backend for tests (STYLE.md habit 6): keeps its rules
 * in memory with the same meaning as backend_nft (add replaces the rule for
 * its (protocol, ext_port), remove of an absent rule succeeds, callbacks
 * run once from commit(), ECANCELED from close()), counts what it was
 * asked to do, and fails on request so the proxy's error paths can be
 * driven.
 *
 * Link it into a test with ${IWFD_TEST_BACKEND_FAKE} (tests/CMakeLists.txt).
 */
#ifndef IWFD_BACKEND_FAKE_H
#define IWFD_BACKEND_FAKE_H

#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backend.h"

extern const struct backend_ops backend_fake_ops;

struct backend_fake_counters {
	unsigned int	 commit_calls;	/* every commit() */
	unsigned int	 commits;	/* commit() with changes: batches */
	unsigned int	 adds;		/* changes applied with success */
	unsigned int	 removes;
	unsigned int	 refreshes;
	unsigned int	 failures;	/* changes completed with an error */
	unsigned int	 reconciles;
	unsigned int	 destroys;
	size_t		 last_batch;	/* changes in the last batch */
};

/* What set_guard asked for, as given (no deduplication). */
#define BACKEND_FAKE_GUARD_MAX_LANS	16
struct backend_fake_guard {
	char		 lans[BACKEND_FAKE_GUARD_MAX_LANS][IFNAMSIZ];
	size_t		 n_lan;
	uint16_t	 tcp[BACKEND_GUARD_MAX_PORTS];
	size_t		 n_tcp;
	size_t		 n_limited;	/* the first n_limited of tcp */
	uint16_t	 udp[BACKEND_GUARD_MAX_PORTS];
	size_t		 n_udp;
};

/* backend_fake_ops.open() without parameters. */
struct backend	*backend_fake_new(void);

const struct backend_fake_counters *
		 backend_fake_counters(const struct backend *);
size_t		 backend_fake_rule_count(const struct backend *);
/* The installed DNAT rule for (protocol, ext_port), or NULL. */
const struct backend_rule *
		 backend_fake_lookup(const struct backend *, uint8_t protocol,
		    uint16_t ext_port);
/* The installed PEER SNAT rule for that flow, or NULL. */
const struct backend_rule *
		 backend_fake_lookup_peer(const struct backend *,
		    uint8_t protocol, const struct in6_addr *int_addr,
		    uint16_t int_port, const struct in6_addr *peer_addr,
		    uint16_t peer_port);
/* The i-th installed rule (any order), i < backend_fake_rule_count(). */
const struct backend_rule *
		 backend_fake_rule(const struct backend *, size_t i);
/* The guard the last commit applied (NULL: none yet), and how many
   set_guard calls were applied; set_guard refuses what backend_nft
   refuses (port 0, too many ports, n_limited > n_tcp, an empty name)
   and more than
   BACKEND_FAKE_GUARD_MAX_LANS names. */
const struct backend_fake_guard *
		 backend_fake_guard(const struct backend *);
unsigned int	 backend_fake_guard_sets(const struct backend *);

/* Changes queued and not committed yet. */
size_t		 backend_fake_queued(const struct backend *);

/* The next n adds / removes / refreshes complete with error and change
   nothing; the next n commits fail every change they hold with error; the
   next n reconciles return -1 and change nothing. */
void		 backend_fake_fail_adds(struct backend *, unsigned int n,
		    int error);
void		 backend_fake_fail_removes(struct backend *, unsigned int n,
		    int error);
void		 backend_fake_fail_refreshes(struct backend *, unsigned int n,
		    int error);
void		 backend_fake_fail_commits(struct backend *, unsigned int n,
		    int error);
void		 backend_fake_fail_reconciles(struct backend *,
		    unsigned int n);

/* The kernel expired a rule behind the daemon's back: it is gone, no
   callback runs. False when there was no such rule. */
bool		 backend_fake_expire(struct backend *, uint8_t protocol,
		    uint16_t ext_port);

#endif
