/*
 * addr_probe.c - the external-address probe (spec/iwf.md §2, RFC 6970
 * §4.2; docs/natpmp.md "The external address"), one per daemon, shared
 * by the front-ends that answer "what is my external address?" (NAT-PMP
 * op 0, UPnP GetExternalIPAddress).
 *
 * The probe is a MAP for UDP from the gateway's own LAN address through
 * the normal proxy path. At most one runs at a time; whoever asks while
 * it runs is told to wait, and every listener hears when it ends. Its
 * mapping serves only that answer: once nobody waits for it any more it
 * is deleted at the next tick, never from inside the proxy's callback
 * (the core may be in the middle of a change).
 */
#include <arpa/inet.h>
#include <stdlib.h>
#include <string.h>

#include "addr_probe.h"
#include "log.h"
#include "map.h"
#include "map_err.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "table.h"

struct addr_probe_listener {
	addr_probe_fn	 fn;
	void		*arg;
};

struct addr_probe {
	struct addr_probe_params p;
	struct addr_probe_stats	 stats;
	struct addr_probe_listener listeners[ADDR_PROBE_LISTENERS];
	bool			 in_flight;	/* an answer is owed */
	bool			 tried;
	uint64_t		 last_at;	/* last start or failure */
	uint16_t		 port;
	uint8_t			 nonce[MAP_NONCE_SIZE];
};

static uint64_t
addr_probe_now(const struct addr_probe *ap)
{
	return ap->p.now(ap->p.clock_arg);
}

/* The outermost external address, if it is a known IPv4 address (the
   only kind NAT-PMP and WANIPConnection report). */
static bool
addr_probe_known(const struct addr_probe *ap, struct in6_addr *addr)
{
	return proxy_external_addr(ap->p.proxy, addr) && pcp_addr_is_v4(addr);
}

static bool
addr_probe_wanted(const struct addr_probe *ap)
{
	struct in6_addr a;

	return ap->p.upstream && !IN6_IS_ADDR_UNSPECIFIED(&ap->p.probe_addr) &&
	    !addr_probe_known(ap, &a);
}

/*
 * spec/iwf.md §2: a NAT-PMP-style request of the gateway itself - UDP,
 * internal = requester = the probe address, the port suggested as the
 * external one, no PREFER_FAILURE, no DESCRIPTION (miniupnpd's option
 * parser refuses unpadded ones, docs/natpmp.md), the synthesized nonce
 * of that NAT-PMP request.
 */
static void
addr_probe_req(const struct addr_probe *ap, struct map_req *req)
{
	struct in_addr any = { 0 };

	memset(req, 0, sizeof(*req));
	req->origin = MAP_ORIGIN_NATPMP;
	req->requester = ap->p.probe_addr;
	/* RFC 6887 App. A: NAT-PMP and PCP share the server port */
	req->requester_port = PCP_SERVER_PORT;
	req->internal_addr = ap->p.probe_addr;
	req->protocol = MAP_PROTO_UDP;
	req->internal_port = ap->port;
	req->ext_port = ap->port;
	pcp_addr_from_v4(&req->ext_addr, &any);
	req->lifetime = ADDR_PROBE_LIFETIME;
	req->wait_ms = ADDR_PROBE_WAIT_MS;
	memcpy(req->nonce, ap->nonce, sizeof(req->nonce));
}

/*
 * The probe's mapping, in whatever state, if it is in the table: the
 * probe's key and nonce (so never another owner's mapping of that port).
 */
static struct mapping *
addr_probe_mapping(const struct addr_probe *ap)
{
	struct mapping *m;

	if (IN6_IS_ADDR_UNSPECIFIED(&ap->p.probe_addr))
		return NULL;
	m = table_find_internal(ap->p.table, MAP_PROTO_UDP, &ap->p.probe_addr,
	    ap->port);
	if (m == NULL || !addr_probe_owns(ap, m))
		return NULL;
	return m;
}

/*
 * The probe's mapping serves only its answer. Once nobody waits for it -
 * answered, or the wait ran out while the carrier may still grant it
 * later (a DNAT to the gateway itself for its whole lifetime) - it goes,
 * at the next tick.
 */
static bool
addr_probe_stale(const struct addr_probe *ap)
{
	return !ap->in_flight && addr_probe_mapping(ap) != NULL;
}

static void
addr_probe_notify(struct addr_probe *ap, bool known)
{
	size_t i;

	for (i = 0; i < ADDR_PROBE_LISTENERS; i++)
		if (ap->listeners[i].fn != NULL)
			ap->listeners[i].fn(ap->listeners[i].arg, known);
}

static void
addr_probe_result(struct addr_probe *ap, const struct map_result *res)
{
	char a[INET6_ADDRSTRLEN];
	struct in6_addr ext;

	ap->in_flight = false;
	if (res->err == MAP_OK)
		log_info("address probe: external address %s",
		    pcp_addr_ntop(&res->ext_addr, a, sizeof(a)));
	else {
		log_info("address probe failed: %s (upstream result %d)",
		    map_err_name(res->err), res->upstream_result);
		ap->stats.failures++;
		/* RFC 6887 §7.4: the short error lifetime from now on */
		ap->last_at = addr_probe_now(ap);
	}
	addr_probe_notify(ap, addr_probe_known(ap, &ext));
}

/* proxy_done_fn: the proxy's later answer; arg is the probe itself. */
static void
addr_probe_done(void *arg, const struct map_req *req,
    const struct map_result *res)
{
	(void)req;
	addr_probe_result(arg, res);
}

/* Start the probe unless one runs or the last one is too recent. True
   when an answer is on its way. */
static bool
addr_probe_try(struct addr_probe *ap)
{
	struct map_result res;
	struct map_req req;
	uint64_t now = addr_probe_now(ap);

	if (ap->in_flight)
		return true;
	if (!addr_probe_wanted(ap) || (ap->tried &&
	    now - ap->last_at < ADDR_PROBE_RETRY_MS))
		return false;
	ap->tried = true;
	ap->last_at = now;
	ap->stats.probes++;
	addr_probe_req(ap, &req);
	memset(&res, 0, sizeof(res));
	ap->in_flight = true;
	if (proxy_submit(ap->p.proxy, &req, now, addr_probe_done, ap, &res)) {
		addr_probe_result(ap, &res);
		return false;
	}
	log_debug("address probe: MAP udp %u upstream", ap->port);
	return true;
}

/* Locally and upstream; proxy_delete, not a delete request: no policy
   in the way, so the mapping surely goes and the tick is not re-armed. */
static void
addr_probe_delete(struct addr_probe *ap)
{
	struct mapping *m;

	if ((m = addr_probe_mapping(ap)) == NULL)
		return;
	log_debug("address probe: deleting its mapping (%s)",
	    map_state_name((enum map_state)m->state));
	proxy_delete(ap->p.proxy, m, addr_probe_now(ap));
}

/* ---- the interface ----------------------------------------------------- */

int
addr_probe_listen(struct addr_probe *ap, addr_probe_fn fn, void *arg)
{
	size_t i;

	for (i = 0; i < ADDR_PROBE_LISTENERS; i++)
		if (ap->listeners[i].fn == NULL) {
			ap->listeners[i].fn = fn;
			ap->listeners[i].arg = arg;
			return 0;
		}
	return -1;
}

void
addr_probe_unlisten(struct addr_probe *ap, addr_probe_fn fn, void *arg)
{
	size_t i;

	for (i = 0; i < ADDR_PROBE_LISTENERS; i++)
		if (ap->listeners[i].fn == fn && ap->listeners[i].arg == arg)
			memset(&ap->listeners[i], 0, sizeof(ap->listeners[i]));
}

bool
addr_probe_get(struct addr_probe *ap, struct in6_addr *addr, bool *waiting)
{
	*waiting = false;
	if (addr_probe_known(ap, addr))
		return true;
	*waiting = addr_probe_try(ap);
	/* an answer at once (a refusal, or a local grant) may have told it */
	return addr_probe_known(ap, addr);
}

void
addr_probe_start(struct addr_probe *ap)
{
	(void)addr_probe_try(ap);
}

void
addr_probe_tick(struct addr_probe *ap, uint64_t now)
{
	(void)now;
	if (addr_probe_stale(ap))
		addr_probe_delete(ap);
}

uint64_t
addr_probe_next_deadline(const struct addr_probe *ap)
{
	return addr_probe_stale(ap) ? 0 : UINT64_MAX;
}

bool
addr_probe_owns(const struct addr_probe *ap, const struct mapping *m)
{
	return !IN6_IS_ADDR_UNSPECIFIED(&ap->p.probe_addr) &&
	    m->origin == MAP_ORIGIN_NATPMP && m->protocol == MAP_PROTO_UDP &&
	    m->internal_port == ap->port &&
	    IN6_ARE_ADDR_EQUAL(&m->internal_addr, &ap->p.probe_addr) &&
	    memcmp(m->nonce, ap->nonce, sizeof(m->nonce)) == 0;
}

const struct addr_probe_stats *
addr_probe_stats(const struct addr_probe *ap)
{
	return &ap->stats;
}

/* ---- life -------------------------------------------------------------- */

/* A port of the dynamic range, fixed for this run (splitmix64). */
static uint16_t
addr_probe_pick_port(uint64_t seed)
{
	uint64_t z = seed + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	z ^= z >> 31;
	return (uint16_t)(ADDR_PROBE_PORT_MIN +
	    z % (UINT16_MAX - ADDR_PROBE_PORT_MIN + 1));
}

struct addr_probe *
addr_probe_new(const struct addr_probe_params *params)
{
	struct addr_probe *ap;

	if (params->proxy == NULL || params->table == NULL ||
	    params->now == NULL)
		return NULL;
	if ((ap = calloc(1, sizeof(*ap))) == NULL)
		return NULL;
	ap->p = *params;
	ap->port = addr_probe_pick_port(params->random_seed);
	iwf_nonce(ap->p.nonce_key, MAP_ORIGIN_NATPMP, &ap->p.probe_addr,
	    MAP_PROTO_UDP, ap->port, ap->nonce);
	return ap;
}

void
addr_probe_free(struct addr_probe *ap)
{
	if (ap == NULL)
		return;
	/* the core must not call back into freed memory */
	proxy_cancel(ap->p.proxy, ap);
	free(ap);
}
