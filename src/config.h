/*
 * config.h - pcp-iwfd.conf: the configuration and its strict parser.
 *
 * One schema table in config.c drives parsing, defaults and printing
 * (STYLE.md habit 8). Nothing here is global: a reload parses into a fresh
 * struct iwfd_config and swaps it in only when the parse succeeded.
 */
#ifndef IWFD_CONFIG_H
#define IWFD_CONFIG_H

#include <net/if.h>
#include <netinet/in.h>
#include <limits.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "acl.h"

#define CONFIG_DEFAULT_PATH		"/etc/pcp-iwfd.conf"

#define CONFIG_MAX_LAN_INTERFACES	16
#define CONFIG_MAX_UPSTREAM_SERVERS	8
/* upstream_server's special value (RFC 7291 discovery) */
#define CONFIG_UPSTREAM_DHCP		"dhcp"
#define CONFIG_MAX_ACL_RULES		256
/* third_party_host lines: a few trusted hosts or subnets. */
#define CONFIG_MAX_THIRD_PARTY_HOSTS	64
/* The largest file read; a real one is a few hundred bytes. */
#define CONFIG_FILE_MAX			(1024 * 1024)
/* The longest value on a line (a path is the longest legitimate one). */
#define CONFIG_VALUE_MAX		PATH_MAX

#define CONFIG_NFT_TABLE_MAX		64
#define CONFIG_USER_MAX			32	/* useradd's limit */
/* UPnP Device Architecture 1.0 §2.1: friendlyName < 64 characters. */
#define CONFIG_FRIENDLY_NAME_MAX	63
#define CONFIG_FRIENDLY_NAME_SIZE	(CONFIG_FRIENDLY_NAME_MAX * 4 + 1)
/* sizeof(struct sockaddr_un.sun_path) on Linux; checked in config.c. */
#define CONFIG_SOCKET_PATH_SIZE		108

enum config_nat {
	CONFIG_NAT_LOCAL = 0,	/* this box NATs LAN -> WAN (home router) */
	CONFIG_NAT_NONE,	/* routed LAN: THIRD_PARTY upstream */
};

enum config_third_party {
	CONFIG_THIRD_PARTY_DENY = 0,
	CONFIG_THIRD_PARTY_ALLOW,
};

struct config_upstream {
	struct in6_addr	 addr;		/* IPv4-mapped for IPv4 */
	uint16_t	 port;		/* default PCP_SERVER_PORT (5351) */
};

/* Every key of INTERFACE.md with its effective value. */
struct iwfd_config {
	char		 lan_interface[CONFIG_MAX_LAN_INTERFACES][IFNAMSIZ];
	size_t		 n_lan_interface;
	char		 wan_interface[IFNAMSIZ];
	struct config_upstream upstream_server[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t		 n_upstream_server;
	/* seconds of silence before a server holding mappings is probed
	   (RFC 6887 §14.1.2, pcp/upstream.h) */
	uint32_t	 upstream_probe_interval;
	/* upstream_server = dhcp: the servers come at run time from the DHCP
	   client (RFC 7291, pcp-iwfctl set-upstream, src/discovery.h) */
	bool		 upstream_dhcp;
	/* RFC 6887 §8.1: with dhcp and no server handed over, ask the WAN
	   default router */
	bool		 upstream_default_router;
	enum config_nat	 nat;
	bool		 upnp;
	uint8_t		 upnp_igd_version;	/* 1 or 2 */
	uint16_t	 upnp_port;		/* 0: any */
	char		 upnp_friendly_name[CONFIG_FRIENDLY_NAME_SIZE];
	/* UPnP Device Architecture 1.0 §2.1 description fields. */
	char		 upnp_manufacturer[CONFIG_FRIENDLY_NAME_SIZE];
	char		 upnp_model_name[CONFIG_FRIENDLY_NAME_SIZE];
	char		 upnp_model_number[CONFIG_FRIENDLY_NAME_SIZE];
	char		 upnp_serial[CONFIG_FRIENDLY_NAME_SIZE];
	bool		 natpmp;
	bool		 pcp;
	/* RFC 7648 §3.4 (P-16, P-17): relay unknown opcodes and options. */
	bool		 relay_unknown;
	enum config_third_party third_party;
	/* third_party = allow: the LAN hosts (prefixes) that may ask for
	   mappings for other LAN hosts (RFC 6887 §13.1, X-03); none with
	   deny, at least one with allow (checked) */
	struct acl_prefix third_party_host[CONFIG_MAX_THIRD_PARTY_HOSTS];
	size_t		 n_third_party_host;
	uint32_t	 max_mappings_per_host;
	/* issue 8 abuse limits: mappings over all hosts (0: no cap), and
	   requests a second per LAN host over every protocol with their
	   burst (src/ratelimit.h; 0: no limit) */
	uint32_t	 max_mappings;
	uint32_t	 rate_limit;
	uint32_t	 rate_burst;
	uint32_t	 min_lifetime;
	uint32_t	 max_lifetime;
	char		 state_file[PATH_MAX];
	char		 control_socket[CONFIG_SOCKET_PATH_SIZE];
	char		 nft_table[CONFIG_NFT_TABLE_MAX + 1];
	char		 user[CONFIG_USER_MAX + 1];
	/* seccomp allow-list after the privilege drop (src/sandbox.c) */
	bool		 sandbox;
	/* allow and deny lines together, in file order: first match wins. */
	struct acl_rule	 acl[CONFIG_MAX_ACL_RULES];
	size_t		 n_acl;
};

/* Every error of one parse, each "FILE:LINE: message" or "FILE: message". */
#define CONFIG_ERRORS_MAX	64
#define CONFIG_ERROR_LEN	512

struct config_errors {
	size_t		 count;		/* messages in msg[] */
	size_t		 dropped;	/* errors beyond CONFIG_ERRORS_MAX */
	char		 msg[CONFIG_ERRORS_MAX][CONFIG_ERROR_LEN];
};

void	config_defaults(struct iwfd_config *);
void	config_errors_init(struct config_errors *);
/* One message a line, then a count of the dropped ones if any. */
void	config_errors_print(const struct config_errors *, FILE *);

/*
 * Both start from config_defaults(), collect every error into errs
 * (initialised here) and return 0 on success, -1 when errs->count > 0.
 * On failure *cfg is incomplete and must not be used. name is the file
 * name put in front of each message.
 */
int	config_parse_file(const char *path, struct iwfd_config *,
	    struct config_errors *errs);
int	config_parse_buffer(const char *name, const char *text, size_t len,
	    struct iwfd_config *, struct config_errors *errs);

/* Is there an upstream PCP server to proxy to, now or once the DHCP
   client names one (upstream_server = dhcp)? false: the gateway is the
   last NAT for good. */
bool	config_has_upstream(const struct iwfd_config *);
/* One server as upstream_server takes it ("192.0.2.1", "192.0.2.1:5351",
   "2001:db8::1", "[2001:db8::1]:5351"; not "dhcp"), for the control
   socket and pcp-iwfctl. false with "upstream_server: ..." in err. */
bool	config_parse_server(const char *text, struct config_upstream *,
	    char *err, size_t errlen);

/* "key = value" for every key in schema order, defaults included; the
   output parses back to the same configuration. */
void	config_print(const struct iwfd_config *, FILE *);

#endif
