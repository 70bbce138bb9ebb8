/*
 * upnp_http.h - SOAP control of the UPnP IGD on the libevent loop
 * (spec/iwf.md §3, §5.3; X-05), with libevent's own HTTP server (evhttp).
 *
 * pupnp 1.8.4 keeps SSDP, the description, the SCPDs and GENA; the
 * description's controlURLs point here. Control requests never touch a
 * pupnp worker: evhttp reads them on the loop, this module parses the
 * envelope leniently (any namespace prefix or a default namespace, the
 * SOAPACTION header quoted or not, in any spelling) and hands the action
 * element to soap_xml_read() and the action to upnp_soap_run().
 * A slow or stalled client is dropped by evhttp's timeout and pins
 * nothing; the number of connections is capped, and so is each host's
 * share of them.
 *
 * Abuse limits (issue 8, DESIGN.md "Security"): a connection from outside
 * the LAN prefixes (split horizon) or beyond its host's share is closed
 * as soon as it is accepted, before a byte of it is read; a SOAP request
 * over its host's rate (ratelimit.h) is answered 501 ActionFailed
 * without running.
 *
 * The process must ignore SIGPIPE (iwfd.c does): libevent writes with
 * writev(2).
 */
#ifndef IWFD_UPNP_HTTP_H
#define IWFD_UPNP_HTTP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct event_base;
struct outbox;
struct policy_prefix;
struct ratelimit;
struct upnp_soap;

/* Inactivity timeout of a connection (a read or a write that makes no
   progress): a stalled half-sent request is dropped after it. */
#define UPNP_HTTP_TIMEOUT_MS	10000
/* Connections served at once; beyond it new ones wait in the kernel's
   accept queue until one closes. */
#define UPNP_HTTP_MAX_CONNS	32
/* Connections one host may hold at once: a quarter of the cap, so one
   compromised host (or a client that leaks connections) cannot starve the
   others (issue 8). Deployed control points use one connection per action
   (upnpc, libminiupnpc, goupnp), consoles a few at once. */
#define UPNP_HTTP_MAX_CONNS_PER_HOST	8
/* The request line and headers together (evhttp answers 400 beyond). */
#define UPNP_HTTP_MAX_HEADERS	8192

struct upnp_http_params {
	struct event_base *base;
	/* The LAN address to listen on: IPv4-mapped, or IPv6. */
	struct in6_addr	 bind_addr;
	uint16_t	 port;		/* 0: the kernel picks */
	unsigned int	 version;	/* upnp_igd_version: 1 or 2 */
	struct upnp_soap *soap;
	uint64_t	(*now)(void *);	/* monotonic ms */
	void		*clock_arg;
	/* An action ran: the daemon ends the turn (proxy_commit, the action
	   layer's deadline in its timer; iwfd_kick). NULL: none. */
	void		(*kick)(void *);
	void		*kick_arg;
	unsigned int	 timeout_ms;	/* 0: UPNP_HTTP_TIMEOUT_MS */
	unsigned int	 max_conns;	/* 0: UPNP_HTTP_MAX_CONNS */
	/* 0: UPNP_HTTP_MAX_CONNS_PER_HOST; never more than max_conns */
	unsigned int	 max_conns_per_host;
	/*
	 * Split horizon (spec/iwf.md X-02): only control points inside
	 * these prefixes (struct policy_prefix: IPv4-mapped) are served; a
	 * connection from anywhere else is closed unanswered. Copied.
	 * NULL: no check (unit tests); n_lan 0 with a pointer: nobody.
	 */
	const struct policy_prefix *lan;
	size_t		 n_lan;
	/* Per-host request rate, shared with the other front-ends: one
	   token per SOAP action request, keyed by the control point's
	   address. NULL: no limit. */
	struct ratelimit *ratelimit;
	/*
	 * DESIGN.md "State and durability": SOAP answers are held here
	 * until the turn's state commit (outbox.h). A successful answer to
	 * an action that changes mappings (upnp_http_action_changes) is
	 * replaced by 501 ActionFailed when the commit failed: the client
	 * was not told of a mapping that a restart could lose (asked
	 * again, the same host's AddPortMapping is a refresh). NULL: at
	 * once.
	 */
	struct outbox	*outbox;
};

/* What the abuse limits refused (for logs, pcp-iwfctl and tests). */
struct upnp_http_stats {
	uint64_t	 rate_limited;	/* answered 501: over the rate */
	uint64_t	 host_refused;	/* connections over a host's share */
	uint64_t	 not_lan;	/* connections from outside the LAN */
};

struct upnp_http;

/*
 * A kind of refusal counted for the log (both SOAP ports): the first line
 * at once, then at most one per UPNP_REPORT_MS with the count between, so
 * that a flood does not flood the log. The caller serialises the calls.
 */
#define UPNP_REPORT_MS	10000
struct upnp_report {
	uint64_t	 last;		/* ms; 0: never */
	uint64_t	 count;		/* since the last line */
};
/* One refusal at now (ms) of host; the line reads "PREFIX: WHAT HOST". */
void		 upnp_report(struct upnp_report *, uint64_t now,
		    const char *prefix, const char *what,
		    const struct in6_addr *host);

/* Listen on bind_addr:port. NULL (logged) when it cannot. */
struct upnp_http *upnp_http_open(const struct upnp_http_params *);
/* Cancel pending actions (upnp_soap_cancel), close every connection, free.
   Call it before upnp_soap_free(). NULL is fine. */
void		 upnp_http_close(struct upnp_http *);
/* Replace the LAN prefixes (a reload; copied): new connections are judged
   by them, those already accepted are served to their end. -1 (logged):
   no memory, the old stay. */
int		 upnp_http_set_lan(struct upnp_http *,
		    const struct policy_prefix *lan, size_t n_lan);
/* The port listened on (the one the kernel picked for 0). */
uint16_t	 upnp_http_port(const struct upnp_http *);
/* Connections open now (counted against max_conns; for logs and tests). */
size_t		 upnp_http_connections(const struct upnp_http *);
/* Connections of one host (IPv4-mapped or IPv6) open now. */
size_t		 upnp_http_host_connections(const struct upnp_http *,
		    const struct in6_addr *host);
void		 upnp_http_stats(const struct upnp_http *,
		    struct upnp_http_stats *);
/* Does a successful action of this name make, change or delete mappings
   (so its answer waits until that is durable)? */
bool		 upnp_http_action_changes(const char *name);

#endif
