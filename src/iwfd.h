/*
 * iwfd.h - the one context (STYLE.md habit 2): the event base, the
 * configuration, the mapping table, the policy and the front-ends hang off
 * struct iwfd, which is passed, never global.
 */
#ifndef IWFD_IWFD_H
#define IWFD_IWFD_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>

#include "config.h"
#include "iwf_nonce.h"
#include "policy.h"

struct addr_probe;
struct backend;
struct control;
struct event;
struct event_base;
struct natpmp;
struct outbox;
struct pcp_frontend;
struct proxy;
struct ratelimit;
struct state_journal;
struct table;
struct upstream;
struct upstream_io;
struct upnp;
struct wanwatch;

/* LAN prefixes learned from the LAN interfaces' addresses. */
#define IWFD_MAX_LAN_PREFIXES	64

/* What a reload could not apply (struct iwfd reload_missing). */
#define IWFD_MISSING_UDP	0x01	/* PCP / NAT-PMP on some LAN interface */
#define IWFD_MISSING_BACKEND	0x02	/* the nft table for wan_interface */
#define IWFD_MISSING_WAN	0x04	/* upstream sockets not on wan_interface */

struct iwfd {
	struct event_base	*base;
	const char		*config_path;
	struct iwfd_config	*conf;
	struct table		*table;
	struct policy		 policy;
	struct policy_prefix	 lan_prefixes[IWFD_MAX_LAN_PREFIXES];
	struct control		*control;
	struct backend		*backend;	/* nat = local: nft */
	struct upstream		*upstream;	/* the PCP client engine */
	struct upstream_io	*upstream_io;	/* its sockets */
	/* upstream_server = dhcp (src/discovery.h): the servers the DHCP
	   client handed over last (pcp-iwfctl set-upstream); a restart
	   takes them from the state file's upstream lines. router: the
	   engine uses the WAN default router instead (none handed over,
	   upstream_default_router, RFC 6887 §8.1). */
	struct config_upstream	 dhcp_servers[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t			 n_dhcp_servers;
	bool			 dhcp_router;
	struct proxy		*proxy;		/* the core */
	/* the external-address probe NAT-PMP and UPnP share */
	struct addr_probe	*probe;
	struct pcp_frontend	*pcp;		/* PCP on the LAN */
	struct natpmp		*natpmp;	/* NAT-PMP, on pcp's socket */
	struct upnp		*upnp;		/* UPnP IGD (pupnp) */
	/* issue 8: the per-host request rate of every protocol */
	struct ratelimit	*ratelimit;	/* PCP, NAT-PMP */
	struct ratelimit	*ratelimit_http; /* UPnP SOAP */
	/* the guard's owner rule: the user after the drop; false
	   when that is root */
	bool			 owner_on;
	/* the WAN interface's IPv4 address (DHCP renew, PPP reconnect) */
	struct wanwatch		*wanwatch;
	/* the last one known, and whether one is */
	struct in6_addr		 wan_addr;
	bool			 wan_addr_known;
	/* LAN interfaces that gave no prefix (missing, or no address yet):
	   a reload cannot tell which mappings left the LAN */
	size_t			 n_lan_unknown;
	/* What a reload could not apply (IWFD_MISSING_*): the next SIGHUP
	   applies it again even when the file did not change. */
	unsigned int		 reload_missing;
	uint64_t		 seed;		/* re-opened front-ends' */

	struct event		*ev_sigterm;
	struct event		*ev_sigint;
	struct event		*ev_sighup;
	struct event		*ev_timer;	/* proxy_next_deadline() */
	struct event		*ev_turn;	/* end of a loop turn */

	/* RFC 6887 §8.5: the Epoch counts seconds since our state began:
	   epoch_base_s (a resumed Epoch, else 0) plus the seconds since
	   epoch_start_ms. */
	uint32_t		 epoch_base_s;
	uint64_t		 epoch_start_ms;
	uint64_t		 started_ms;
	/* a re-creation moved external ports: restart the Epoch at this
	   time (iwfd_mapping_moved); 0: none */
	uint64_t		 moved_at;

	/* The state file (docs/state.md): the NAT-PMP nonce secret it keeps,
	   the table generation last written, a change the table does not
	   count (an upstream moved a mapping), and the retry after a failed
	   write. */
	uint8_t			 natpmp_key[IWF_NONCE_KEY_SIZE];
	uint64_t		 state_generation;
	bool			 state_dirty;
	bool			 state_failing;
	bool			 epoch_resumed;	/* state file */
	uint64_t		 state_retry_ms;
	struct state_journal	*journal;	/* the group commits */
	/* replies held until the turn's commit (outbox.h) */
	struct outbox		*outbox;
	int			 exit_status;
};

/* Set up everything from a parsed configuration (taken over on success). */
int		 iwfd_init(struct iwfd *, const char *path, struct iwfd_config *);
/* Detach (daemon(3)) and re-initialise the event base after the fork. */
int		 iwfd_daemonize(struct iwfd *);
int		 iwfd_run(struct iwfd *);
void		 iwfd_shutdown(struct iwfd *);
/*
 * Re-read the configuration (SIGHUP); the old one stays on any parse
 * error (-1). Otherwise every key but state_file, control_socket,
 * nft_table, user and sandbox applies at once, each with the smallest
 * re-open, and the mappings that still fit are kept (docs/pcp-iwfd.8
 * "SIGHUP"); what could not be applied is logged and tried again by the
 * next SIGHUP.
 */
int		 iwfd_reload(struct iwfd *);
uint64_t	 iwfd_now_ms(const struct iwfd *);
uint32_t	 iwfd_epoch(const struct iwfd *);
/* Something changed: at the end of this loop turn commit the backend
   batch and re-arm the timers. */
void		 iwfd_kick(struct iwfd *);

#endif
