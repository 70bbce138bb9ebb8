/*
 * discovery.h - upstream_server = dhcp: the upstream PCP servers learned
 * at run time instead of from the configuration.
 *
 * The DHCP client's hook script (contrib/dhcp/) hands the servers of
 * DHCPv4 option 158 / DHCPv6 option 86 (RFC 7291) over with pcp-iwfctl
 * set-upstream; the control socket calls discovery_set(). With none handed
 * over and upstream_default_router = yes, the WAN interface's IPv4 default
 * router is the server (RFC 6887 §8.1); with none at all the gateway is
 * the last NAT, as without upstream_server (docs/deployment.md "DHCP").
 *
 * A change of the list moves the mappings (RFC 7488: a mapping stays on
 * the server that holds it): one held by a server that stays keeps it
 * under its new index, untouched (no re-creation: the engine keeps that
 * server's Epoch record and socket, upstream.h); one held by a server
 * that is gone, or by the gateway alone while no server was known, is
 * re-created on the new first server (proxy_upstream_moved: it alone,
 * not the mappings that server holds already); with no server left every
 * mapping is the gateway's alone (its WAN address and local port).
 *
 * Across a restart the list lives in the state file's upstream lines
 * (docs/state.md): they always name the servers in use.
 */
#ifndef IWFD_DISCOVERY_H
#define IWFD_DISCOVERY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct config_upstream;
struct iwfd;
struct mapping;
struct state_header;
struct table;

/* What a change of the server list did to the table. */
struct discovery_moves {
	size_t	 kept;		/* on a server that stays */
	size_t	 moved;		/* to server 0, to be re-created there */
	size_t	 local;		/* now the gateway's alone */
};

/*
 * The servers the engine is to use now: the ones handed over, else the
 * WAN default router when upstream_default_router says so (*router true),
 * else none. Returns how many were written to out (at most
 * CONFIG_MAX_UPSTREAM_SERVERS).
 */
size_t	discovery_effective(const struct iwfd *, struct config_upstream *out,
	    bool *router);
/* Start-up: the servers the state file names become the handed-over
   list (the DHCP client calls again at its next renewal). */
void	discovery_restore(struct iwfd *, const struct state_header *);
/*
 * The DHCP client handed over servers (n == 0: it knows none): remember
 * them and apply discovery_effective(). 0, or -1 when n is too large or
 * the daemon has no upstream engine (upstream_server is not dhcp).
 */
int	discovery_set(struct iwfd *, const struct config_upstream *,
	    size_t n, uint64_t now);
/*
 * Give the engine servers[0..n) (order = preference), move the mappings
 * (see above) and reopen the sockets. Nothing happens when the list is the
 * one in use. 0, or -1 (nothing changed).
 */
int	discovery_apply(struct iwfd *, const struct config_upstream *,
	    size_t n, uint64_t now);
/*
 * The table part of a change, alone: map[i] is old server i's new index or
 * UPSTREAM_NO_SERVER (gone), for i < old_n; new_n servers follow. wan is
 * the gateway's WAN address for mappings that become its own (NULL:
 * unknown, their outer address is left). mv counts what happened.
 */
void	discovery_rehome(struct table *, const uint8_t *map, size_t old_n,
	    size_t new_n, const struct in6_addr *wan,
	    struct discovery_moves *mv);
/* The same, calling moved(arg, m) for each mapping moved to server 0, and
   (new_n == 0) for each that became the gateway's own with another
   external address or port than it had (m->upstream UPSTREAM_NO_SERVER). */
void	discovery_rehome_each(struct table *, const uint8_t *map,
	    size_t old_n, size_t new_n, const struct in6_addr *wan,
	    struct discovery_moves *mv,
	    void (*moved)(void *, struct mapping *), void *arg);

#endif
