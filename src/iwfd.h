/*
 * iwfd.h - the one context (STYLE.md habit 2): the event base, the
 * configuration, the mapping table, the policy and the front-ends hang off
 * struct iwfd, which is passed, never global.
 */
#ifndef IWFD_IWFD_H
#define IWFD_IWFD_H

#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "policy.h"

struct event;
struct event_base;
struct table;
struct control;

/* LAN prefixes learned from the LAN interfaces' addresses. */
#define IWFD_MAX_LAN_PREFIXES	64

struct iwfd {
	struct event_base	*base;
	const char		*config_path;
	struct iwfd_config	*conf;
	struct table		*table;
	struct policy		 policy;
	struct policy_prefix	 lan_prefixes[IWFD_MAX_LAN_PREFIXES];
	struct control		*control;

	struct event		*ev_sigterm;
	struct event		*ev_sigint;
	struct event		*ev_sighup;
	struct event		*ev_expire;

	/* RFC 6887 §8.5: the Epoch counts seconds since our state began. */
	uint64_t		 epoch_start_ms;
	uint64_t		 started_ms;
	int			 exit_status;
};

/* Set up everything from a parsed configuration (taken over on success). */
int		 iwfd_init(struct iwfd *, const char *path, struct iwfd_config *);
int		 iwfd_run(struct iwfd *);
void		 iwfd_shutdown(struct iwfd *);
/* Re-read the configuration (SIGHUP); the old one stays on any error. */
int		 iwfd_reload(struct iwfd *);
uint64_t	 iwfd_now_ms(const struct iwfd *);
uint32_t	 iwfd_epoch(const struct iwfd *);
/* The table changed: re-arm the expiry timer. */
void		 iwfd_table_changed(struct iwfd *);

#endif
