/*
 * upnp_soap.h - the UPnP IGD actions (spec/iwf.md §3.3-3.5, RFC 6970 §4,
 * §5; checklists U-03..U-13, I-01..I-15), on the loop thread.
 *
 * Two layers, both without pupnp:
 *   - a struct upnp_action is what a request body says: soap_xml_read()
 *     (iwf/soap_xml.h, tests/fuzz/fuzz_soap_xml.c) reads it for our SOAP
 *     server and, through the XML gate (upnp_xml_gate.h), for pupnp's own
 *     port;
 *   - upnp_soap_run() validates an action strictly (402 on a missing or
 *     bad argument), turns AddPortMapping / AddAnyPortMapping /
 *     DeletePortMapping* into a struct map_req for the one proxy path,
 *     answers the listing actions from the local table (RFC 6970 §5.7:
 *     never proxied) and every error through the one error table
 *     (map_err.h, U-13).
 * The glue (upnp.c) moves a struct upnp_action from a pupnp worker thread
 * to the loop and the struct upnp_reply back.
 */
#ifndef IWFD_UPNP_SOAP_H
#define IWFD_UPNP_SOAP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "iwf_nonce.h"
#include "upnp_desc.h"

struct mapping;
struct policy;
struct proxy;
struct table;

/* Limits on what a control point may send. An action with more
   arguments, a longer name or a longer value is answered 402. */
#define UPNP_ARGS_MAX		16
#define UPNP_NAME_MAX		64	/* action and argument names */
#define UPNP_VALUE_MAX		256	/* argument values (descriptions
					   longer than MAP_DESCRIPTION_MAX
					   are cut on a UTF-8 boundary) */
#define UPNP_OUT_MAX		8	/* out arguments of one action */
#define UPNP_OUT_VALUE_MAX	(MAP_DESCRIPTION_MAX + 1)

/*
 * How long a control point waits for the carrier before it gets 501
 * ActionFailed (I-13, issue "upstream down": a clean error within 10 s
 * instead of a hung console UI). The worker thread's own deadline
 * (upnp.c) is a little longer, a safety net for a stalled loop.
 */
#define UPNP_CLIENT_WAIT_MS	8000
/* IGD:2 lease bounds (spec/iwf.md §3.5): 0 or more -> 604800. */
#define UPNP_V2_LEASE_MAX	604800
/* GetListOfPortMappings: NewNumberOfPorts 0 (all) means at most this
   many (miniupnpd's figure). */
#define UPNP_LIST_MAX		1000
/* PortMappingNumberOfEntries is counted again at most this often (a walk
   of the table; the count is cached by table generation). */
#define UPNP_COUNT_INTERVAL_MS	1000

struct upnp_arg {
	char		 name[UPNP_NAME_MAX + 1];
	char		 value[UPNP_VALUE_MAX + 1];
};

/* One action request, copied out of pupnp's DOM. */
struct upnp_action {
	enum upnp_service service;
	char		 name[UPNP_NAME_MAX + 1];
	struct upnp_arg	 args[UPNP_ARGS_MAX];
	size_t		 nargs;
	/* The arguments could not be copied (too many, too long, markup
	   inside a value, a name twice): the action is answered 402. */
	bool		 malformed;
	/* The control point's TCP peer (IPv4-mapped): U-04's requester. */
	struct in6_addr	 requester;
};

/* One out argument; long_value (malloc'd) replaces value when set (the
   IGD:2 NewPortListing: a PortMappingList XML document, its values
   escaped. miniupnpc reads it only from a CDATA section (it decodes no
   entities), as miniupnpd sends it: the glue puts it in one.) */
struct upnp_out {
	const char	*name;		/* static */
	char		 value[UPNP_OUT_VALUE_MAX + 1];
	char		*long_value;
};

struct upnp_reply {
	int		 err;		/* 0, or the UPnP error code */
	const char	*err_desc;	/* its name (spec/iwf.md §3.4) */
	struct upnp_out	 out[UPNP_OUT_MAX];
	size_t		 nout;
};

void		 upnp_reply_free(struct upnp_reply *);	/* long values */

/* Interface counters of the WAN for WANCommonInterfaceConfig. */
struct upnp_wan_counters {
	uint64_t	 bytes_sent, bytes_received;
	uint64_t	 packets_sent, packets_received;
	/* GetCommonLinkProperties' Layer1 max bit rates (bit/s, the link
	   speed); 0 when unknown. */
	uint32_t	 bitrate_up, bitrate_down;
};

/* The state variables we event (U-11), as text. */
struct upnp_event_vars {
	char		 external_ip[INET6_ADDRSTRLEN];	/* "" unknown */
	char		 connection_status[16];	/* Connected/Disconnected */
	uint32_t	 port_mapping_entries;
};

struct upnp_soap_params {
	unsigned int	 version;	/* upnp_igd_version: 1 or 2 */
	struct proxy	*proxy;
	struct table	*table;
	/* Who may name another host as NewInternalClient, and delete that
	   host's UPnP mappings (policy_third_party_ok: third_party_host);
	   NULL: nobody (U-04, X-03). */
	const struct policy *policy;
	uint8_t		 nonce_key[IWF_NONCE_KEY_SIZE];	/* iwf_nonce() */
	/* The upstream works (or there is none: the gateway is the last
	   NAT): GetStatusInfo's Connected (U-10). */
	bool		(*connected)(void *);
	/* The outermost external address (U-09), false when unknown; asking
	   may start the address probe (RFC 6970 §4.2). */
	bool		(*ext_addr)(void *, struct in6_addr *);
	/* false when they cannot be read (then 0s are reported). */
	bool		(*wan_counters)(void *, struct upnp_wan_counters *);
	uint32_t	(*uptime)(void *);	/* seconds: GetStatusInfo */
	void		*cb_arg;
	/* An upstream server is configured: an unknown external address
	   is worth waiting for (GetExternalIPAddress waits up to
	   UPNP_CLIENT_WAIT_MS, then answers ""). */
	bool		 upstream;
	/* The WANConnectionDevice's UDN ("uuid:..."), for Layer3Forwarding
	   GetDefaultConnectionService; NULL: "". */
	const char	*wanconn_udn;
	/* A mapping no listing shows (the address probe's: addr_probe_owns);
	   NULL: none hidden. Called with cb_arg. */
	bool		(*hidden)(void *, const struct mapping *);
};

typedef void	(*upnp_soap_done_fn)(void *arg, const struct upnp_reply *);

struct upnp_soap;

struct upnp_soap *upnp_soap_new(const struct upnp_soap_params *);
/* Cancels everything pending with the proxy; done is not called. */
void		 upnp_soap_free(struct upnp_soap *);
/*
 * Run one action. True when answered at once (*reply filled); false when
 * the answer comes later through done(arg, reply), exactly once (after
 * the proxy or the address probe spoke, or at the deadline), unless
 * upnp_soap_cancel(arg) came first. The reply passed to done is the
 * callee's: copy what you keep (long_value included) before returning.
 */
bool		 upnp_soap_run(struct upnp_soap *, const struct upnp_action *,
		    uint64_t now, upnp_soap_done_fn, void *arg,
		    struct upnp_reply *reply);
void		 upnp_soap_cancel(struct upnp_soap *, void *arg);
/* Timers (address waits); the daemon calls it at the deadline. */
void		 upnp_soap_tick(struct upnp_soap *, uint64_t now);
uint64_t	 upnp_soap_next_deadline(const struct upnp_soap *);
/* The evented variables now (the glue notifies on change). */
void		 upnp_soap_event_vars(struct upnp_soap *, uint64_t now,
		    struct upnp_event_vars *);

#endif
