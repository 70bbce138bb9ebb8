/*
 * upnp.h - the UPnP IGD front-end on pupnp 1.8.4 (spec/iwf.md §5,
 * DESIGN.md "Threads and the loop"): device registration, SSDP, the
 * description and SCPDs from memory, SOAP actions, GENA eventing.
 *
 * pupnp runs its own threads. A worker thread's action callback only
 * copies the action (the arguments the XML gate read), queues it for the libevent
 * loop (a locked queue and event_active) and waits on a condition with a
 * deadline; the loop runs it through upnp_soap and hands the reply back.
 * No mapping state is touched off the loop thread. A worker that times
 * out answers 501 and the loop cancels what the action started.
 */
#ifndef IWFD_UPNP_H
#define IWFD_UPNP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "upnp_desc.h"
#include "upnp_soap.h"

struct event_base;
struct policy_prefix;
struct ratelimit;

/* GENA limits (spec/iwf.md §5.4, X-04). */
#define UPNP_MAX_SUBSCRIPTIONS	32
#define UPNP_SUBSCRIPTION_TIMEOUT 1800
/* SOAP body limit (X-05; UpnpSetMaxContentLength). */
#define UPNP_MAX_CONTENT	4096
/* SSDP advertisement lifetime (seconds, CACHE-CONTROL max-age). */
#define UPNP_ADVERT_EXPIRE	1800

struct upnp_params {
	struct event_base *base;
	const char	*ifname;	/* the LAN interface pupnp binds to */
	uint16_t	 port;		/* 0: pupnp picks (>= 49152) */
	struct upnp_desc_params desc;	/* UDNs filled (upnp_desc_udns) */
	struct upnp_soap_params soap;
	/* The LAN prefixes (copied): GENA callbacks outside them are
	   refused (CallStranger, CVE-2020-12695; X-04), and so are control
	   points outside them on both SOAP paths (split horizon, X-02): our
	   HTTP server closes their connections unanswered, a SOAP request
	   to pupnp's port is answered 606 without reaching the loop. */
	const struct policy_prefix *lan;
	size_t		 n_lan;
	/* Per-host request rate (ratelimit.h), shared with the other
	   front-ends: one token per SOAP action request on either port,
	   keyed by the control point's address; over it, 501 ActionFailed
	   and nothing proxied. Used on the loop thread only. NULL: none. */
	struct ratelimit *ratelimit;
	uint64_t	(*now)(void *);	/* monotonic ms */
	void		*clock_arg;
	/* The loop ran actions: end the turn (upnp_update, the action
	   layer's deadline in the timer); the daemon's iwfd_kick. */
	void		(*kick)(void *);
	void		*kick_arg;
	/* Answers held until the turn's state commit (outbox.h), on our
	   HTTP server and to pupnp's workers; NULL: at once. */
	struct outbox	*outbox;
};

/* What the abuse limits refused, both SOAP paths together. */
struct upnp_stats {
	uint64_t	 rate_limited;	/* SOAP requests answered 501 */
	uint64_t	 host_refused;	/* connections over a host's share */
	uint64_t	 not_lan;	/* control points outside the LAN */
};

struct upnp;

/* Start pupnp on the interface, register the device, advertise. NULL
   (logged) when pupnp cannot start. */
struct upnp	*upnp_open(const struct upnp_params *);
/* Byebye, stop pupnp (joins its threads), free. */
void		 upnp_close(struct upnp *);
/* The LAN prefixes changed (a reload that did not reopen the IGD): both
   SOAP ports judge control points by these from now on (copied).
   Connections already accepted are served to their end. -1 (logged): no
   memory, the old prefixes stay. Loop thread. */
int		 upnp_set_lan(struct upnp *, const struct policy_prefix *,
		    size_t n_lan);
/* End of a loop turn: notify subscribers of evented variables that
   changed (U-11). */
void		 upnp_update(struct upnp *);
/* Timers of the action layer. */
void		 upnp_tick(struct upnp *, uint64_t now);
uint64_t	 upnp_next_deadline(const struct upnp *);
/* The HTTP port pupnp listens on, and the description URL. */
uint16_t	 upnp_port(const struct upnp *);
/* Both HTTP ports the IGD listens on: pupnp's (description, SCPDs,
   GENA) and the SOAP control server's (the guard: backend.h). */
void		 upnp_ports(const struct upnp *, uint16_t *desc_port,
		    uint16_t *control_port);
const char	*upnp_desc_url(const struct upnp *);
/* Loop thread. NULL: zeros. */
void		 upnp_stats(struct upnp *, struct upnp_stats *);

#endif
