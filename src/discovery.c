/*
 * discovery.c - upstream servers learned at run time (see discovery.h).
 */
#include <arpa/inet.h>

#include <string.h>

#include "config.h"
#include "discovery.h"
#include "iwfd.h"
#include "log.h"
#include "netif.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "state.h"
#include "table.h"
#include "upstream.h"
#include "upstream_io.h"

_Static_assert(CONFIG_MAX_UPSTREAM_SERVERS <= UPSTREAM_MAX_SERVERS,
    "the engine holds every configured server");
_Static_assert(STATE_MAX_UPSTREAM >= CONFIG_MAX_UPSTREAM_SERVERS,
    "the state file keeps every server");

size_t
discovery_effective(const struct iwfd *iwfd, struct config_upstream *out,
    bool *router)
{
	const struct iwfd_config *conf = iwfd->conf;
	size_t i;

	*router = false;
	for (i = 0; i < iwfd->n_dhcp_servers && i < CONFIG_MAX_UPSTREAM_SERVERS;
	    i++)
		out[i] = iwfd->dhcp_servers[i];
	if (i > 0 || !conf->upstream_default_router)
		return i;
	/* RFC 6887 §8.1: "if no PCP server is configured, the PCP client
	   ... uses the default router" */
	memset(&out[0], 0, sizeof(out[0]));
	if (!netif_ipv4_default_router(conf->wan_interface, &out[0].addr))
		return 0;
	out[0].port = PCP_SERVER_PORT;
	*router = true;
	return 1;
}

void
discovery_restore(struct iwfd *iwfd, const struct state_header *hdr)
{
	struct in6_addr router;
	size_t i;

	memset(iwfd->dhcp_servers, 0, sizeof(iwfd->dhcp_servers));
	for (i = 0; i < hdr->n_upstream && i < CONFIG_MAX_UPSTREAM_SERVERS;
	    i++) {
		iwfd->dhcp_servers[i].addr = hdr->upstream[i].addr;
		iwfd->dhcp_servers[i].port = hdr->upstream[i].port;
	}
	iwfd->n_dhcp_servers = i;
	/* One saved server that is the WAN's default router, with the
	   fallback on: it was the fallback, not a server the DHCP client
	   named; the fallback picks it again (and follows a new router on a
	   WAN change) (fix, review: it was taken for a named one) */
	if (i == 1 && iwfd->conf->upstream_default_router &&
	    netif_ipv4_default_router(iwfd->conf->wan_interface, &router) &&
	    IN6_ARE_ADDR_EQUAL(&router, &hdr->upstream[0].addr)) {
		memset(iwfd->dhcp_servers, 0, sizeof(iwfd->dhcp_servers));
		iwfd->n_dhcp_servers = 0;
		log_info("upstream_server = dhcp: the default router from the "
		    "state file");
		return;
	}
	if (i > 0)
		log_info("upstream_server = dhcp: %zu server(s) from the state "
		    "file until the DHCP client names them again", i);
}

/* A mapping the list change concerns: live, and not a static one (those
   are the gateway's own, never upstream). */
static bool
discovery_movable(const struct mapping *m)
{
	return (m->state == MAP_STATE_GRANTED ||
	    m->state == MAP_STATE_RENEWING) &&
	    (m->flags & MAPPING_F_STATIC) == 0;
}

void
discovery_rehome(struct table *t, const uint8_t *map, size_t old_n,
    size_t new_n, const struct in6_addr *wan, struct discovery_moves *mv)
{
	discovery_rehome_each(t, map, old_n, new_n, wan, mv, NULL, NULL);
}

void
discovery_rehome_each(struct table *t, const uint8_t *map, size_t old_n,
    size_t new_n, const struct in6_addr *wan, struct discovery_moves *mv,
    void (*moved)(void *, struct mapping *), void *arg)
{
	struct mapping *m;
	struct in6_addr was_addr;
	uint16_t was_port;
	size_t i;

	memset(mv, 0, sizeof(*mv));
	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if (!discovery_movable(m))
			continue;
		/* RFC 7488: a mapping stays on the server that holds it */
		if (m->upstream != UPSTREAM_NO_SERVER && m->upstream < old_n &&
		    map[m->upstream] != UPSTREAM_NO_SERVER) {
			m->upstream = map[m->upstream];
			mv->kept++;
			continue;
		}
		if (new_n > 0) {
			/* its server is gone, or it was the gateway's alone:
			   the first server gets it (re-created with its
			   nonce by the caller, proxy_upstream_moved) */
			m->upstream = 0;
			mv->moved++;
			if (moved != NULL)
				moved(arg, m);
			continue;
		}
		/* no server left: the gateway is the last NAT, so the
		   outside sees its WAN address and local port (what
		   proxy_grant_local sets; table.h: these fields are the
		   caller's) */
		if (m->upstream == UPSTREAM_NO_SERVER)
			continue;
		was_addr = m->outer_addr;
		was_port = m->outer_port;
		m->upstream = UPSTREAM_NO_SERVER;
		if (wan != NULL)
			m->outer_addr = *wan;
		m->outer_port = m->ext_port;
		mv->local++;
		/* its client believes the carrier's address and port: told
		   through the caller (RFC 6887 §8.5) */
		if (moved != NULL && (was_port != m->outer_port ||
		    !IN6_ARE_ADDR_EQUAL(&was_addr, &m->outer_addr)))
			moved(arg, m);
	}
}

/* The engine's list now. */
static size_t
discovery_current(const struct iwfd *iwfd, struct config_upstream *out)
{
	struct upstream_server_info info;
	size_t i, n = upstream_server_count(iwfd->upstream);

	for (i = 0; i < n && i < CONFIG_MAX_UPSTREAM_SERVERS; i++) {
		upstream_server_info(iwfd->upstream, (unsigned int)i, &info);
		memset(&out[i], 0, sizeof(out[i]));
		out[i].addr = info.addr;
		out[i].port = info.port;
	}
	return i;
}

static bool
discovery_same(const struct config_upstream *a, const struct config_upstream *b)
{
	return a->port == b->port && IN6_ARE_ADDR_EQUAL(&a->addr, &b->addr);
}

struct discovery_move_arg {
	struct proxy	*proxy;
	uint64_t	 now;
};

/* A mapping whose server is gone, now server 0's: re-created there alone
   (RFC 6887 §14 timing: the 0-5 s wait, then paced), never the mappings
   server 0 already held. One left with no server whose external address
   or port changed: its client is told (proxy_upstream_moved). */
static void
discovery_moved(void *arg, struct mapping *m)
{
	struct discovery_move_arg *a = arg;

	proxy_upstream_moved(a->proxy, m, a->now);
}

static void
discovery_log(const struct config_upstream *s, size_t n, bool router,
    const struct discovery_moves *mv)
{
	char list[CONFIG_MAX_UPSTREAM_SERVERS * (INET6_ADDRSTRLEN + 10)];
	char a[INET6_ADDRSTRLEN];
	size_t i, off = 0;
	int w;

	list[0] = '\0';
	for (i = 0; i < n; i++) {
		w = snprintf(list + off, sizeof(list) - off,
		    pcp_addr_is_v4(&s[i].addr) ? "%s%s:%u" : "%s[%s]:%u",
		    i > 0 ? " " : "", pcp_addr_ntop(&s[i].addr, a, sizeof(a)),
		    s[i].port);
		if (w < 0 || (size_t)w >= sizeof(list) - off)
			break;
		off += (size_t)w;
	}
	if (n == 0)
		log_info("upstream servers: none known: this gateway is the "
		    "last NAT; %zu mapping(s) now its own", mv->local);
	else
		log_info("upstream servers%s: %s; %zu mapping(s) stay, %zu to "
		    "be re-created on the first", router ?
		    " (the default router, RFC 6887 §8.1)" : "", list,
		    mv->kept, mv->moved);
}

int
discovery_apply(struct iwfd *iwfd, const struct config_upstream *servers,
    size_t n, uint64_t now)
{
	struct config_upstream old[CONFIG_MAX_UPSTREAM_SERVERS];
	struct in6_addr addrs[CONFIG_MAX_UPSTREAM_SERVERS], wan;
	uint16_t ports[CONFIG_MAX_UPSTREAM_SERVERS];
	uint8_t map[CONFIG_MAX_UPSTREAM_SERVERS];
	struct discovery_moves mv;
	struct discovery_move_arg move = { iwfd->proxy, now };
	size_t i, j, old_n;
	bool changed;

	if (iwfd->upstream == NULL || n > CONFIG_MAX_UPSTREAM_SERVERS)
		return -1;
	old_n = discovery_current(iwfd, old);
	changed = old_n != n;
	for (i = 0; i < old_n; i++) {
		map[i] = UPSTREAM_NO_SERVER;
		for (j = 0; j < n; j++)
			if (discovery_same(&old[i], &servers[j])) {
				map[i] = (uint8_t)j;
				break;
			}
		if (map[i] != i)
			changed = true;
	}
	if (!changed)
		return 0;
	for (i = 0; i < n; i++) {
		addrs[i] = servers[i].addr;
		ports[i] = servers[i].port;
	}
	/* a server that stays keeps its state and its transactions under
	   its new index; those of one that went fail over or end
	   (upstream.h); the mappings and the proxy's work on them follow */
	if (upstream_set_servers(iwfd->upstream, addrs, ports, n) == -1)
		return -1;
	if (iwfd->proxy != NULL)
		proxy_upstream_renumber(iwfd->proxy, map, old_n);
	discovery_rehome_each(iwfd->table, map, old_n, n,
	    netif_ipv4_address(iwfd->conf->wan_interface, &wan) ? &wan : NULL,
	    &mv, iwfd->proxy != NULL ? discovery_moved : NULL, &move);
	/* and its socket (its source port: Mapping Updates, spec/pcp.md
	   §2.4); new servers get new ones */
	if (iwfd->upstream_io != NULL)
		upstream_io_sync(iwfd->upstream_io);
	discovery_log(servers, n, iwfd->dhcp_router, &mv);
	/* the state file names the servers in use (and the indexes) */
	iwfd->state_dirty = true;
	iwfd_kick(iwfd);
	return 0;
}

int
discovery_set(struct iwfd *iwfd, const struct config_upstream *servers,
    size_t n, uint64_t now)
{
	struct config_upstream use[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t i, n_use;

	if (!iwfd->conf->upstream_dhcp || iwfd->upstream == NULL ||
	    n > CONFIG_MAX_UPSTREAM_SERVERS)
		return -1;
	/* servers may be iwfd->dhcp_servers itself (the WAN address
	   changed: the default router is read again with the same list) */
	for (i = 0; i < n; i++)
		use[i] = servers[i];
	memset(iwfd->dhcp_servers, 0, sizeof(iwfd->dhcp_servers));
	for (i = 0; i < n; i++)
		iwfd->dhcp_servers[i] = use[i];
	iwfd->n_dhcp_servers = n;
	n_use = discovery_effective(iwfd, use, &iwfd->dhcp_router);
	return discovery_apply(iwfd, use, n_use, now);
}
