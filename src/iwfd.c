/*
 * iwfd.c - the daemon's context and loop: one event_base owns all state
 * (DESIGN.md "Threads and the loop"); signals, the expiry timer and the
 * control socket are events on it.
 */
#include <sys/random.h>
#include <sys/stat.h>

#include <arpa/inet.h>

#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "addr_probe.h"
#include "backend.h"
#include "clock.h"
#include "control.h"
#include "discovery.h"
#include "iwfd.h"
#include "log.h"
#include "natpmp.h"
#include "netif.h"
#include "outbox.h"
#include "pcp_frontend.h"
#include "pcp_wire.h"
#include "priv.h"
#include "proxy.h"
#include "ratelimit.h"
#include "state.h"
#include "table.h"
#include "upstream.h"
#include "upstream_io.h"
#include "upnp.h"
#include "upnp_guard.h"
#include "wanwatch.h"

uint64_t
iwfd_now_ms(const struct iwfd *iwfd)
{
	(void)iwfd;
	return clock_now_ms();
}

uint32_t
iwfd_epoch(const struct iwfd *iwfd)
{
	/* modulo 2^32, RFC 6887 §8.5 */
	return iwfd->epoch_base_s +
	    (uint32_t)((iwfd_now_ms(iwfd) - iwfd->epoch_start_ms) / 1000);
}

/* The wall clock, only for the state file: its times must survive a
   reboot, which the monotonic clock does not (docs/state.md). */
static uint64_t
iwfd_now_wall(void)
{
	struct timespec ts;

	if (clock_gettime(CLOCK_REALTIME, &ts) == -1 || ts.tv_sec < 0)
		return 0;
	return (uint64_t)ts.tv_sec;
}

/* RFC 6887 §8.5: our state begins now (fresh Epoch). */
static void
iwfd_epoch_restart(struct iwfd *iwfd)
{
	iwfd->epoch_base_s = 0;
	iwfd->epoch_start_ms = iwfd_now_ms(iwfd);
}

/* Fill the policy from the configuration and the LAN interfaces' prefixes
   (split horizon, RFC 6887 §8.2 / RFC 7648 §4). */
static void
iwfd_build_policy(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct policy *p = &iwfd->policy;
	size_t i, n = 0, before;

	iwfd->n_lan_unknown = 0;
	for (i = 0; i < conf->n_lan_interface; i++) {
		before = n;
		if (!netif_prefixes(conf->lan_interface[i], iwfd->lan_prefixes,
		    IWFD_MAX_LAN_PREFIXES, &n))
			log_warnx("lan_interface %s does not exist (yet)",
			    conf->lan_interface[i]);
		if (n == before)
			iwfd->n_lan_unknown++;
	}
	memset(p, 0, sizeof(*p));
	p->lan_prefixes = iwfd->lan_prefixes;
	p->n_lan_prefixes = n;
	p->acl = conf->acl;
	p->n_acl = conf->n_acl;
	/* config.c: hosts only with allow, allow only with hosts */
	if (conf->third_party == CONFIG_THIRD_PARTY_ALLOW) {
		p->third_party_hosts = conf->third_party_host;
		p->n_third_party_hosts = conf->n_third_party_host;
	}
	p->max_mappings_per_host = conf->max_mappings_per_host;
	p->max_mappings = conf->max_mappings;
	p->min_lifetime = conf->min_lifetime;
	p->max_lifetime = conf->max_lifetime;
}

/* Issue 8: a per-host request limiter. Its hash key, like the table's,
   must not be guessable by LAN hosts (one hash chain would make every
   lookup slow). */
static struct ratelimit *
iwfd_new_ratelimit(const struct iwfd_config *conf)
{
	struct ratelimit_params rp;
	struct ratelimit *rl;

	memset(&rp, 0, sizeof(rp));
	rp.rate = conf->rate_limit;
	rp.burst = conf->rate_burst;
	rp.hosts = RATELIMIT_DEFAULT_HOSTS;
	if (getrandom(&rp.seed, sizeof(rp.seed), 0) != sizeof(rp.seed)) {
		log_warn("getrandom");
		return NULL;
	}
	if ((rl = ratelimit_new(&rp)) == NULL)
		log_warnx("out of memory");
	return rl;
}

/* Two buckets per host with the same rate: one for PCP and NAT-PMP, one
   for UPnP's SOAP. A datagram's source can be forged by any LAN host; a
   TCP peer cannot: with one shared bucket, forged datagrams in a console's
   name would empty it and starve the console's UPnP (fix, review). */
static int
iwfd_open_ratelimit(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	if ((iwfd->ratelimit = iwfd_new_ratelimit(conf)) == NULL ||
	    (iwfd->ratelimit_http = iwfd_new_ratelimit(conf)) == NULL)
		return -1;
	return 0;
}

/* ---- the state file (docs/state.md) ------------------------------------ */

/* After a failed write, the next try waits this long (each failure is
   logged by state_write; a full disk must not flood the log). */
#define IWFD_STATE_RETRY_MS	5000
/* Re-creations that moved external ports settle this long before the one
   Epoch restart that tells the clients (iwfd_mapping_moved). */
#define IWFD_MOVED_SETTLE_MS	2000

static void	iwfd_epoch_announce(struct iwfd *);

static void
iwfd_state_header(const struct iwfd *iwfd, struct state_header *hdr)
{
	const struct iwfd_config *conf = iwfd->conf;
	struct upstream_server_info info;
	size_t i;

	memset(hdr, 0, sizeof(*hdr));
	hdr->epoch = iwfd_epoch(iwfd);
	hdr->has_natpmp_key = true;
	memcpy(hdr->natpmp_key, iwfd->natpmp_key, sizeof(hdr->natpmp_key));
	/* The servers by address and port, so that a changed configuration
	   is matched on restore (state_upstream_remap). Their Epochs are not
	   kept: the upstream engine starts each server afresh. */
	for (i = 0; i < conf->n_upstream_server && i < STATE_MAX_UPSTREAM;
	    i++) {
		hdr->upstream[i].addr = conf->upstream_server[i].addr;
		hdr->upstream[i].port = conf->upstream_server[i].port;
	}
	/* upstream_server = dhcp: the servers in use, learned at run time
	   (the mappings' indexes are theirs; discovery_restore) */
	if (conf->upstream_dhcp && iwfd->upstream != NULL)
		for (i = 0; i < upstream_server_count(iwfd->upstream) &&
		    i < STATE_MAX_UPSTREAM; i++) {
			upstream_server_info(iwfd->upstream, (unsigned int)i,
			    &info);
			hdr->upstream[i].addr = info.addr;
			hdr->upstream[i].port = info.port;
		}
	/* ... and before the engine exists (the first write at start), the
	   list restored from the file (fix, review: the start-up write
	   dropped it, and every mapping's server with it) */
	else if (conf->upstream_dhcp) {
		struct config_upstream use[CONFIG_MAX_UPSTREAM_SERVERS];
		size_t n;
		bool router;

		n = discovery_effective(iwfd, use, &router);
		for (i = 0; i < n && i < STATE_MAX_UPSTREAM; i++) {
			hdr->upstream[i].addr = use[i].addr;
			hdr->upstream[i].port = use[i].port;
		}
	}
	hdr->n_upstream = i;
}

/*
 * Make the table's changes durable: one journal group, or the whole file
 * (whole: start, shutdown; or a change the table does not track,
 * state_dirty; or when the journal says so). 0 or -1 (logged why).
 */
static int
iwfd_state_write(struct iwfd *iwfd, uint64_t now, bool whole)
{
	struct state_header hdr;
	uint64_t gen = table_generation(iwfd->table);
	struct state_journal *j;

	/* a reload moved the state file: a new journal, a whole file */
	if (iwfd->journal != NULL && strcmp(state_journal_base(iwfd->journal),
	    iwfd->conf->state_file) != 0 &&
	    (j = state_journal_new(iwfd->conf->state_file)) != NULL) {
		state_journal_free(iwfd->journal);
		iwfd->journal = j;
	}
	iwfd_state_header(iwfd, &hdr);
	if (iwfd->journal == NULL ||
	    state_journal_commit(iwfd->journal, &hdr, iwfd->table, now,
	    iwfd_now_wall(), whole || iwfd->state_dirty) == -1) {
		if (!iwfd->state_failing)
			log_warnx("state file %s not written: a restart now "
			    "would lose the mappings, and SUCCESS replies are "
			    "withheld until it is; retrying",
			    iwfd->conf->state_file);
		iwfd->state_failing = true;
		iwfd->state_retry_ms = now + IWFD_STATE_RETRY_MS;
		return -1;
	}
	if (iwfd->state_failing)
		log_info("state file %s written again", iwfd->conf->state_file);
	iwfd->state_failing = false;
	iwfd->state_generation = gen;
	iwfd->state_dirty = false;
	return 0;
}

/*
 * Group commit (DESIGN.md "State and durability"): at most one write per
 * loop turn, only when the table changed since the last one. True when
 * everything the table holds is durable: the turn's held replies may go.
 */
static bool
iwfd_state_commit(struct iwfd *iwfd, uint64_t now)
{
	if (!iwfd->state_dirty &&
	    table_generation(iwfd->table) == iwfd->state_generation)
		return true;
	if (iwfd->state_failing && now < iwfd->state_retry_ms)
		return false;
	return iwfd_state_write(iwfd, now, false) == 0;
}

/*
 * The end of a turn: the backend batch (its answers make mappings
 * GRANTED and answer clients), the state commit, then the replies held
 * meanwhile (outbox.h). When the commit failed a SUCCESS is not sent
 * (docs/state.md "Replies wait for the commit"): its client asks again
 * and is answered from the table once a commit succeeds.
 */
static void
iwfd_turn_commit(struct iwfd *iwfd, uint64_t now)
{
	bool durable;

	proxy_commit(iwfd->proxy, now);
	durable = iwfd_state_commit(iwfd, now);
	if (iwfd->outbox != NULL)
		outbox_release(iwfd->outbox, durable);
}

/* "file:line: message", each on its own line */
static void
iwfd_state_errors(const struct state_errors *errs)
{
	size_t i;

	for (i = 0; i < errs->count; i++)
		log_warnx("%s", errs->msg[i]);
	if (errs->dropped > 0)
		log_warnx("... and %zu more error(s)", errs->dropped);
}

/*
 * Start-up: load the state file and put its mappings back into the table
 * (before anything can make a new mapping). Returns true when the file
 * was loaded (the backend is then reconciled to the restored mappings by
 * proxy_restored, not emptied), and resumes the Epoch on a clean restore;
 * every other outcome starts a fresh Epoch (RFC 6887 §8.5).
 */
static bool
iwfd_state_load(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct state_image img;
	struct state_errors errs;
	struct state_restore_stats stats;
	uint8_t map[STATE_MAX_UPSTREAM];
	char moved[PATH_MAX + 64];
	uint64_t wall = iwfd_now_wall(), now = iwfd_now_ms(iwfd);
	uint32_t epoch;
	size_t gone;
	int rc;

	state_errors_init(&errs);
	moved[0] = '\0';
	switch (state_load(conf->state_file, wall, &img, &errs, moved,
	    sizeof(moved))) {
	case STATE_LOAD_OK:
		break;
	case STATE_LOAD_NONE:
		log_info("no state file %s: a fresh start", conf->state_file);
		state_image_free(&img);
		return false;
	case STATE_LOAD_CORRUPT:
		iwfd_state_errors(&errs);
		log_warnx("state file %s is corrupt, moved to %s: starting "
		    "with no mappings and a fresh epoch", conf->state_file,
		    moved);
		state_image_free(&img);
		return false;
	default:
		iwfd_state_errors(&errs);
		log_warnx("state file %s cannot be read: starting with no "
		    "mappings and a fresh epoch", conf->state_file);
		state_image_free(&img);
		return false;
	}
	if (img.hdr.has_natpmp_key)
		memcpy(iwfd->natpmp_key, img.hdr.natpmp_key,
		    sizeof(iwfd->natpmp_key));
	if (conf->upstream_dhcp)
		discovery_restore(iwfd, &img.hdr);
	gone = conf->upstream_dhcp ? state_upstream_remap(&img.hdr,
	    iwfd->dhcp_servers, iwfd->n_dhcp_servers, map) :
	    state_upstream_remap(&img.hdr, conf->upstream_server,
	    conf->n_upstream_server, map);
	if (gone > 0)
		log_warnx("state file: %zu upstream server(s) no longer "
		    "configured: their mappings are kept locally only", gone);
	state_errors_init(&errs);
	rc = state_restore_table(&img, iwfd->table, map, now, wall,
	    conf->state_file, &stats, &errs);
	iwfd_state_errors(&errs);
	log_info("state file %s: %zu mapping(s) restored, %zu expired while "
	    "down, %zu failed", conf->state_file, stats.restored,
	    stats.expired, stats.failed);
	/* RFC 6887 §8.5: continue the Epoch only when nothing was lost
	   (docs/state.md "Time and the Epoch across a restart"). */
	if (rc == 0 && state_epoch_resume(&img.hdr, wall, &epoch)) {
		iwfd->epoch_base_s = epoch;
		iwfd->epoch_start_ms = now;
		iwfd->epoch_resumed = true;
		log_info("epoch resumed at %u", epoch);
	} else
		log_info("epoch starts afresh");
	state_image_free(&img);
	/* what was loaded is what the file holds */
	iwfd->state_generation = table_generation(iwfd->table);
	return true;
}

/* ---- the loop turn ------------------------------------------------------ */

void
iwfd_kick(struct iwfd *iwfd)
{
	/* Priority 2 of 3: runs after every I/O event of this turn, so one
	   backend batch covers all of them (nft changes are never one
	   netlink round trip per mapping). */
	if (iwfd->ev_turn != NULL)
		event_active(iwfd->ev_turn, EV_TIMEOUT, 0);
}

static void
iwfd_arm(struct event *ev, uint64_t deadline, uint64_t now)
{
	struct timeval tv;
	uint64_t delay;

	if (deadline == UINT64_MAX) {
		event_del(ev);
		return;
	}
	delay = deadline > now ? deadline - now : 0;
	tv.tv_sec = (time_t)(delay / 1000);
	tv.tv_usec = (suseconds_t)(delay % 1000) * 1000;
	event_add(ev, &tv);
}

static void
iwfd_turn_cb(evutil_socket_t fd, short what, void *arg)
{
	struct iwfd *iwfd = arg;
	uint64_t now = iwfd_now_ms(iwfd);
	uint64_t deadline;

	(void)fd;
	(void)what;
	/* the state after the backend's answers: they make mappings
	   GRANTED; the replies after the state */
	iwfd_turn_commit(iwfd, now);
	deadline = proxy_next_deadline(iwfd->proxy);
	if (iwfd->moved_at != 0 && iwfd->moved_at < deadline)
		deadline = iwfd->moved_at;
	if (iwfd->state_failing && iwfd->state_retry_ms < deadline)
		deadline = iwfd->state_retry_ms;
	/* the address probe: deleting its mapping after the core's answer */
	if (iwfd->probe != NULL && addr_probe_next_deadline(iwfd->probe) <
	    deadline)
		deadline = addr_probe_next_deadline(iwfd->probe);
	/* NAT-PMP: announcements, and work that follows the core's answers */
	if (iwfd->natpmp != NULL && natpmp_next_deadline(iwfd->natpmp) <
	    deadline)
		deadline = natpmp_next_deadline(iwfd->natpmp);
	/* UPnP: answers that waited for this turn's results (the address
	   probe's), then the evented variables that changed (U-11) */
	if (iwfd->upnp != NULL) {
		upnp_tick(iwfd->upnp, now);
		upnp_update(iwfd->upnp);
		if (upnp_next_deadline(iwfd->upnp) < deadline)
			deadline = upnp_next_deadline(iwfd->upnp);
	}
	iwfd_arm(iwfd->ev_timer, deadline, now);
	if (iwfd->upstream_io != NULL)
		upstream_io_kick(iwfd->upstream_io);
}

static void
iwfd_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct iwfd *iwfd = arg;
	uint64_t now = iwfd_now_ms(iwfd);

	(void)fd;
	(void)what;
	proxy_tick(iwfd->proxy, now);	/* kicks */
	if (iwfd->moved_at != 0 && iwfd->moved_at <= now) {
		iwfd->moved_at = 0;
		log_info("external ports moved upstream: restarting the Epoch "
		    "so that clients map again and learn them");
		iwfd_epoch_announce(iwfd);
		iwfd_kick(iwfd);
	}
	if (iwfd->probe != NULL)
		addr_probe_tick(iwfd->probe, now);
	if (iwfd->natpmp != NULL)
		natpmp_tick(iwfd->natpmp, now);
}

/* ---- glue between the upstream engine and the proxy --------------------- */

static void
iwfd_upstream_done(void *arg, struct upstream_txn *txn,
    enum upstream_outcome outcome, const struct pcp_msg *resp)
{
	struct iwfd *iwfd = arg;

	proxy_upstream_done(iwfd->proxy, txn, outcome, resp, iwfd_now_ms(iwfd));
}

static void
iwfd_upstream_lost_state(void *arg, unsigned int server)
{
	struct iwfd *iwfd = arg;

	proxy_upstream_lost_state(iwfd->proxy, server, iwfd_now_ms(iwfd));
}

static void
iwfd_upstream_update(void *arg, unsigned int server, const struct pcp_msg *msg)
{
	struct iwfd *iwfd = arg;

	/* it may move a mapping's outer port, a field the table's
	   generation does not count */
	iwfd->state_dirty = true;
	proxy_upstream_mapping_update(iwfd->proxy, server, msg,
	    iwfd_now_ms(iwfd));
}

/* The engine probes a server that is up only while it holds mappings of
   ours (RFC 6887 §14.1.2, upstream.h): live ones that it granted. Asked
   once per probe interval; it stops at the first one. */
static bool
iwfd_upstream_holds(void *arg, unsigned int server)
{
	struct iwfd *iwfd = arg;
	struct mapping *m;
	size_t i;

	for (i = 0; (m = table_at(iwfd->table, i)) != NULL; i++)
		if (m->upstream == server &&
		    (m->state == MAP_STATE_GRANTED ||
		    m->state == MAP_STATE_RENEWING))
			return true;
	return false;
}

static const struct upstream_cb iwfd_upstream_cb = {
	.done = iwfd_upstream_done,
	.lost_state = iwfd_upstream_lost_state,
	.mapping_update = iwfd_upstream_update,
	.holds_mappings = iwfd_upstream_holds,
};

static void
iwfd_proxy_kick(void *arg)
{
	iwfd_kick(arg);
}

/* RFC 6887 §8.5 (S-06, N-04): the external address we report changed, so
   our Epoch starts again, and the clients hear about it (§14.1.3). */
static void
iwfd_ext_addr_changed(void *arg, const struct in6_addr *addr)
{
	struct iwfd *iwfd = arg;

	(void)addr;
	iwfd_epoch_announce(iwfd);
}

/*
 * A re-creation moved a mapping's external port (the carrier gave
 * another after losing its state): its client believes the old one. PCP
 * and NAT-PMP clients map again when our Epoch restarts (RFC 6887 §8.5:
 * lost mappings reset it; RFC 6886 §3.6, §3.7) and learn the new port
 * from the answer, which the table gives at once. One restart after the
 * wave of re-creations settles (IWFD_MOVED_SETTLE_MS), not one each.
 * UPnP control points cannot be told (RFC 6970 §5.10).
 */
static void
iwfd_mapping_moved(void *arg, const struct mapping *m)
{
	struct iwfd *iwfd = arg;

	(void)m;
	if (iwfd->moved_at == 0)
		iwfd->moved_at = iwfd_now_ms(iwfd) + IWFD_MOVED_SETTLE_MS;
}

/* Restart our Epoch and tell the clients (PCP ANNOUNCE, NAT-PMP). */
static void
iwfd_epoch_announce(struct iwfd *iwfd)
{
	iwfd_epoch_restart(iwfd);
	iwfd->state_dirty = true;
	if (iwfd->pcp != NULL && iwfd->conf->pcp)
		pcp_frontend_announce(iwfd->pcp);
	/* RFC 6886 §3.2.1 (N-08): and the NAT-PMP announcement */
	if (iwfd->natpmp != NULL)
		natpmp_announce(iwfd->natpmp);
}

static uint32_t
iwfd_epoch_cb(void *arg)
{
	return iwfd_epoch(arg);
}

static uint64_t
iwfd_now_cb(void *arg)
{
	return iwfd_now_ms(arg);
}

/* ---- the mapping path ---------------------------------------------------- */

/* The nft table for conf (nat = local); NULL (logged) when it cannot be
   opened. */
static struct backend *
iwfd_backend_new(const struct iwfd_config *conf)
{
	const char *lans[CONFIG_MAX_LAN_INTERFACES];
	struct backend_params bp;
	size_t i;

	for (i = 0; i < conf->n_lan_interface; i++)
		lans[i] = conf->lan_interface[i];
	memset(&bp, 0, sizeof(bp));
	bp.table = conf->nft_table;
	bp.wan_interface = conf->wan_interface;
	bp.lan_interfaces = lans;
	bp.n_lan_interfaces = conf->n_lan_interface;
	return backend_nft_ops.open(&bp);
}

static int
iwfd_open_backend(struct iwfd *iwfd, const struct iwfd_config *conf,
    bool restored)
{
	/* nat = none: the gateway routes; nothing to install locally. */
	if (conf->nat != CONFIG_NAT_LOCAL)
		return 0;
	if ((iwfd->backend = iwfd_backend_new(conf)) == NULL)
		return -1;
	/* With restored mappings proxy_restored() reconciles the kernel to
	   their rules. Without, whatever an earlier run left in our table
	   belongs to nobody (the table owns the truth). */
	if (!restored &&
	    iwfd->backend->ops->reconcile(iwfd->backend, NULL, 0) == -1)
		log_warnx("nft table %s: could not clear old rules",
		    conf->nft_table);
	return 0;
}

static int
iwfd_open_upstream(struct iwfd *iwfd, const struct iwfd_config *conf,
    uint64_t seed)
{
	struct in6_addr addrs[CONFIG_MAX_UPSTREAM_SERVERS];
	uint16_t ports[CONFIG_MAX_UPSTREAM_SERVERS];
	struct config_upstream found[CONFIG_MAX_UPSTREAM_SERVERS];
	const struct config_upstream *list = conf->upstream_server;
	size_t i, n = conf->n_upstream_server;

	/* The engine exists even with no server (the gateway is then the
	   last NAT): a reload may give it some, and the proxy keeps it. */
	iwfd->upstream = upstream_new(&iwfd_upstream_cb, iwfd, (uint32_t)seed);
	if (iwfd->upstream == NULL)
		return -1;
	upstream_set_probe_interval(iwfd->upstream,
	    conf->upstream_probe_interval * UPSTREAM_PROBE_MS_PER_S);
	/* upstream_server = dhcp: what the state file named, else the
	   default router, else none until the DHCP client calls */
	if (conf->upstream_dhcp) {
		n = discovery_effective(iwfd, found, &iwfd->dhcp_router);
		list = found;
		log_info("upstream_server = dhcp: %zu server(s) known%s", n,
		    iwfd->dhcp_router ? " (the WAN default router)" : "");
	}
	for (i = 0; i < n; i++) {
		addrs[i] = list[i].addr;
		ports[i] = list[i].port;
	}
	return upstream_set_servers(iwfd->upstream, addrs, ports, n);
}

static int
iwfd_open_proxy(struct iwfd *iwfd, const struct iwfd_config *conf,
    uint64_t seed)
{
	struct proxy_params pp;
	struct in6_addr wan;

	memset(&pp, 0, sizeof(pp));
	pp.nat = conf->nat == CONFIG_NAT_LOCAL ? PROXY_NAT_LOCAL : PROXY_NAT_NONE;
	pp.table = iwfd->table;
	pp.policy = &iwfd->policy;
	pp.backend = iwfd->backend;
	pp.upstream = iwfd->upstream;
	pp.random_seed = seed;
	pp.ext_addr_changed = iwfd_ext_addr_changed;
	pp.mapping_moved = iwfd_mapping_moved;
	pp.kick = iwfd_proxy_kick;
	pp.cb_arg = iwfd;
	if ((iwfd->proxy = proxy_new(&pp)) == NULL)
		return -1;
	if (netif_ipv4_address(conf->wan_interface, &wan)) {
		proxy_set_wan_addr(iwfd->proxy, &wan);
		iwfd->wan_addr = wan;
		iwfd->wan_addr_known = true;
	}
	else if (!config_has_upstream(conf))
		log_warnx("wan_interface %s has no IPv4 address: external "
		    "address unknown", conf->wan_interface);
	return 0;
}

/* ---- the external-address probe (RFC 6970 §4.2), NAT-PMP's and UPnP's -- */

static int
iwfd_open_probe(struct iwfd *iwfd, const struct iwfd_config *conf,
    uint64_t seed)
{
	struct addr_probe_params ap;

	memset(&ap, 0, sizeof(ap));
	ap.proxy = iwfd->proxy;
	ap.table = iwfd->table;
	/* its mapping is a NAT-PMP one of the gateway (docs/natpmp.md) */
	memcpy(ap.nonce_key, iwfd->natpmp_key, sizeof(ap.nonce_key));
	ap.upstream = config_has_upstream(conf);
	ap.random_seed = seed;
	ap.now = iwfd_now_cb;
	ap.clock_arg = iwfd;
	/* it maps a port of the gateway's own LAN address */
	if (ap.upstream &&
	    !netif_ipv4_address(conf->lan_interface[0], &ap.probe_addr))
		log_warnx("%s has no IPv4 address: no address probe",
		    conf->lan_interface[0]);
	if ((iwfd->probe = addr_probe_new(&ap)) == NULL) {
		log_warnx("address probe: out of memory");
		return -1;
	}
	return 0;
}

/* ---- NAT-PMP (RFC 6886) on the PCP front-end's socket ---------------- */

static bool
iwfd_natpmp_send(void *arg, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	struct iwfd *iwfd = arg;

	return iwfd->pcp != NULL && pcp_frontend_send(iwfd->pcp, peer, buf, len);
}

static size_t
iwfd_natpmp_multicast(void *arg, const uint8_t *buf, size_t len)
{
	struct iwfd *iwfd = arg;

	/* RFC 6886 §3.2.1: 224.0.0.1:5350 from each LAN address */
	return iwfd->pcp == NULL ? 0 :
	    pcp_frontend_multicast(iwfd->pcp, PCP_FRONTEND_MC_V4, buf, len);
}

static int
iwfd_open_natpmp(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct natpmp_params np;

	if (!conf->natpmp)
		return 0;
	/* RFC 6886 §3.8 (spec/iwf.md §1.1): a box that does no NAT, with no
	   NAT above it to speak for, must not answer NAT-PMP. */
	if (conf->nat != CONFIG_NAT_LOCAL && !config_has_upstream(conf)) {
		log_warnx("natpmp: nat = none without an upstream_server: "
		    "nobody NATs, NAT-PMP stays off (RFC 6886 §3.8)");
		return 0;
	}
	memset(&np, 0, sizeof(np));
	np.proxy = iwfd->proxy;
	np.table = iwfd->table;
	np.epoch = iwfd_epoch_cb;
	np.now = iwfd_now_cb;
	np.clock_arg = iwfd;
	np.send = iwfd_natpmp_send;
	np.multicast = iwfd_natpmp_multicast;
	np.io_arg = iwfd;
	/* The nonce secret lives as long as the mappings: the state file
	   keeps it (docs/natpmp.md), so a restarted daemon refreshes the
	   upstream mappings of its NAT-PMP clients with the same nonces. */
	memcpy(np.nonce_key, iwfd->natpmp_key, sizeof(np.nonce_key));
	np.probe = iwfd->probe;
	np.ratelimit = iwfd->ratelimit;
	if ((iwfd->natpmp = natpmp_new(&np)) == NULL) {
		log_warnx("natpmp: out of memory");
		return -1;
	}
	return 0;
}

/*
 * The LAN interfaces the UDP front-end serves: all of them at start (one
 * that does not exist stops the start, as a typo should); on a reload
 * those that exist, the others logged and left to the next SIGHUP
 * (IWFD_MISSING_UDP).
 */
static size_t
iwfd_udp_lans(struct iwfd *iwfd, const struct iwfd_config *conf,
    bool reload, const char **lans)
{
	size_t i, n = 0;

	for (i = 0; i < conf->n_lan_interface; i++) {
		if (reload && !netif_exists(conf->lan_interface[i])) {
			log_warnx("reload: lan_interface %s does not exist: "
			    "PCP and NAT-PMP are not served on it until a "
			    "SIGHUP after it exists", conf->lan_interface[i]);
			iwfd->reload_missing |= IWFD_MISSING_UDP;
			continue;
		}
		lans[n++] = conf->lan_interface[i];
	}
	return n;
}

/*
 * PCP and NAT-PMP on UDP 5351 of the LAN interfaces (NAT-PMP on the PCP
 * front-end's socket). At start a failure stops the daemon (-1); on a
 * reload it is logged, the rest runs without them, and the next SIGHUP
 * tries again (0).
 */
static int
iwfd_open_udp(struct iwfd *iwfd, const struct iwfd_config *conf, bool reload)
{
	const char *lans[CONFIG_MAX_LAN_INTERFACES];
	struct pcp_frontend_params fp;
	size_t n_lans;

	if (!conf->pcp && !conf->natpmp)
		return 0;
	if (iwfd_open_natpmp(iwfd, conf) == -1)
		return -1;
	if (!conf->pcp && iwfd->natpmp == NULL)
		return 0;
	/* NAT-PMP shares UDP 5351 with PCP (RFC 6887 App. A): the socket is
	   the PCP front-end's; with pcp = no every datagram goes to NAT-PMP,
	   which answers PCP's versions "unsupported version" like a NAT-PMP
	   only server (RFC 6886 §3.5; RFC 6887 §9: the client falls back). */
	n_lans = iwfd_udp_lans(iwfd, conf, reload, lans);
	memset(&fp, 0, sizeof(fp));
	fp.proxy = iwfd->proxy;
	fp.lan_ifnames = lans;
	fp.n_lan = n_lans;
	fp.epoch = iwfd_epoch_cb;
	fp.now = iwfd_now_cb;
	fp.clock_arg = iwfd;
	fp.third_party_allowed = conf->third_party == CONFIG_THIRD_PARTY_ALLOW;
	fp.pcp_off = !conf->pcp;
	/* RFC 7648 §3.4.2 (P-16..P-18): unknown opcodes go to the first
	   upstream server (a stateless relay: RFC 7488 stickiness does not
	   apply); without one the gateway is the last NAT and answers
	   UNSUPP_OPCODE itself. */
	/* upstream_server = dhcp: the relay's server is fixed here, the
	   discovered ones change: no relay (docs/deployment.md "DHCP") */
	fp.relay_unknown = conf->relay_unknown && conf->n_upstream_server > 0;
	if (conf->n_upstream_server > 0) {
		fp.relay_server = conf->upstream_server[0].addr;
		fp.relay_port = conf->upstream_server[0].port;
	}
	fp.wan_interface = conf->wan_interface;
	fp.outbox = iwfd->outbox;
	fp.ratelimit = iwfd->ratelimit;
	fp.policy = &iwfd->policy;
	if (iwfd->natpmp != NULL) {
		fp.natpmp_input = natpmp_input;
		fp.natpmp_arg = iwfd->natpmp;
	}
	if (n_lans == 0 ||
	    (iwfd->pcp = pcp_frontend_open(iwfd->base, &fp)) == NULL) {
		natpmp_free(iwfd->natpmp);
		iwfd->natpmp = NULL;
		if (!reload)
			return -1;
		log_warnx("reload: PCP and NAT-PMP are not served: no socket "
		    "on UDP %u of the LAN interfaces; the next SIGHUP tries "
		    "again", PCP_SERVER_PORT);
		iwfd->reload_missing |= IWFD_MISSING_UDP;
		return 0;
	}
	/* RFC 6886 §3.2.1 (N-08): the NAT-PMP announcement once the address
	   is known (now without an upstream; after the probe with one). */
	if (iwfd->natpmp != NULL) {
		natpmp_start(iwfd->natpmp);
		iwfd_kick(iwfd);	/* arm its timer */
	}
	return 0;
}

static int
iwfd_open_frontends(struct iwfd *iwfd, const struct iwfd_config *conf,
    uint64_t seed)
{
	/* first: every front-end that reports the address shares it */
	if (iwfd_open_probe(iwfd, conf, seed) == -1 ||
	    iwfd_open_udp(iwfd, conf, false) == -1)
		return -1;
	/* RFC 6887 §14.1.3 (S-16): tell the LAN our state is new, unless
	   the state file let the Epoch continue (the clients' mappings are
	   all here). */
	if (iwfd->pcp != NULL && conf->pcp && !iwfd->epoch_resumed)
		pcp_frontend_announce(iwfd->pcp);
	return 0;
}

/* ---- the WAN address (issue 7: DHCP renew, PPP reconnect) -------------- */

static void
iwfd_wan_log(const char *ifname, const struct wanwatch_change *chg)
{
	char a[INET6_ADDRSTRLEN], b[INET6_ADDRSTRLEN];

	if (!chg->has)
		log_warnx("wan_interface %s lost its IPv4 address %s: the "
		    "mappings are kept until an address is back", ifname,
		    pcp_addr_ntop(&chg->old, a, sizeof(a)));
	else if (!chg->had)
		log_info("wan_interface %s has the IPv4 address %s", ifname,
		    pcp_addr_ntop(&chg->addr, b, sizeof(b)));
	else if (IN6_ARE_ADDR_EQUAL(&chg->old, &chg->addr))
		log_info("wan_interface %s has its IPv4 address %s again",
		    ifname, pcp_addr_ntop(&chg->addr, b, sizeof(b)));
	else
		log_info("wan_interface %s changed its IPv4 address: %s -> %s",
		    ifname, pcp_addr_ntop(&chg->old, a, sizeof(a)),
		    pcp_addr_ntop(&chg->addr, b, sizeof(b)));
}

/*
 * The WAN interface's address changed (wanwatch.h: debounced, so a DHCP
 * renew's delete-then-add is one change). Every upstream mapping was made
 * from the old address - with nat = local it is the carrier's internal
 * address of the mapping - which is ours no more: RFC 6970 §5.10 and RFC
 * 7648 §3.5, renew them all. The sockets toward the servers take the new
 * source first (the Client IP field, C-01); then each server's mappings
 * are re-made with their stored nonces after the 0-5 s jitter, paced
 * (proxy_upstream_lost_state); the answers re-arm the local rules, PEER
 * SNAT ones now toward the new address (proxy_rule). The old upstream
 * mappings cannot be deleted from an address we no longer have: they
 * expire on the carrier (RFC 6970 §5.10). The external address clients
 * are told stays the carrier's: if that moved, proxy_learn_ext_addr()
 * restarts the Epoch. Without an upstream the WAN address IS the external
 * address: RFC 6887 §8.5, the Epoch restarts and the clients hear of it
 * (spec/iwf.md §8 item 6; UPnP's ExternalIPAddress event at the end of
 * the turn).
 */
static void
iwfd_wan_changed(void *arg, const struct wanwatch_change *chg)
{
	struct iwfd *iwfd = arg;
	uint64_t now = iwfd_now_ms(iwfd);
	size_t i, n;

	iwfd_wan_log(iwfd->conf->wan_interface, chg);
	if (!chg->has)
		return;		/* nothing can be sent; wait for it */
	iwfd->wan_addr = chg->addr;
	iwfd->wan_addr_known = true;
	/* a reload named an interface that did not exist then: it does now
	   (it has an address), so the upstream sockets go onto it */
	if ((iwfd->reload_missing & IWFD_MISSING_WAN) != 0 &&
	    iwfd->upstream_io != NULL &&
	    upstream_io_set_interface(iwfd->upstream_io,
	    iwfd->conf->wan_interface)) {
		iwfd->reload_missing &= ~IWFD_MISSING_WAN;
		log_info("wan_interface %s exists now: the upstream sockets "
		    "are bound to it", iwfd->conf->wan_interface);
	}
	/* the same lease back: our mappings upstream are still ours, only
	   the sockets may have failed meanwhile */
	if (chg->had && IN6_ARE_ADDR_EQUAL(&chg->old, &chg->addr)) {
		if (iwfd->upstream_io != NULL)
			upstream_io_refresh(iwfd->upstream_io);
		iwfd_kick(iwfd);
		return;
	}
	proxy_set_wan_addr(iwfd->proxy, &chg->addr);
	/* upstream_server = dhcp falling back to the default router: a new
	   lease may bring a new router, read it again */
	if (iwfd->dhcp_router)
		(void)discovery_set(iwfd, iwfd->dhcp_servers,
		    iwfd->n_dhcp_servers, now);
	n = iwfd->upstream != NULL ? upstream_server_count(iwfd->upstream) : 0;
	if (n > 0) {
		if (iwfd->upstream_io != NULL)
			upstream_io_refresh(iwfd->upstream_io);
		for (i = 0; i < n; i++)
			proxy_upstream_lost_state(iwfd->proxy, (unsigned int)i,
			    now);
	} else if (chg->had)	/* the gateway is the last NAT (dhcp: none
				   known yet, too) */
		iwfd_ext_addr_changed(iwfd, &chg->addr);
	iwfd_kick(iwfd);
}

/* ---- UPnP IGD (spec/iwf.md §3-§5, docs/upnp.md) ----------------------- */

/* U-10: Connected without an upstream (the gateway is the last NAT), or
   while some upstream server can be used (not DOWN, its source known). */
static bool
iwfd_upnp_connected(void *arg)
{
	struct iwfd *iwfd = arg;
	struct upstream_server_info info;
	size_t i, n;

	/* upstream_server = dhcp with none known: the last NAT too */
	if (iwfd->upstream == NULL ||
	    upstream_server_count(iwfd->upstream) == 0)
		return true;
	n = upstream_server_count(iwfd->upstream);
	for (i = 0; i < n; i++) {
		upstream_server_info(iwfd->upstream, (unsigned int)i, &info);
		if (info.local_known && info.state != UPSTREAM_DOWN)
			return true;
	}
	return false;
}

/* U-09: the outermost address, the same NAT-PMP and PCP report: with an
   upstream the carrier's (the probe learns it when nothing is mapped),
   without one the WAN interface's. */
static bool
iwfd_upnp_ext_addr(void *arg, struct in6_addr *addr)
{
	struct iwfd *iwfd = arg;
	bool waiting;

	if (config_has_upstream(iwfd->conf) && iwfd->probe != NULL)
		return addr_probe_get(iwfd->probe, addr, &waiting);
	if (proxy_external_addr(iwfd->proxy, addr))
		return true;
	return (iwfd->upstream == NULL ||
	    upstream_server_count(iwfd->upstream) == 0) &&
	    netif_ipv4_address(iwfd->conf->wan_interface, addr);
}

#define IWFD_SYSFS_NET		"/sys/class/net"

static bool
iwfd_wan_counter(const char *ifname, const char *name, uint64_t *v)
{
	char path[PATH_MAX], buf[32], *end;
	FILE *f;
	bool ok;

	if (snprintf(path, sizeof(path), "%s/%s/statistics/%s",
	    IWFD_SYSFS_NET, ifname, name) >= (int)sizeof(path) ||
	    (f = fopen(path, "r")) == NULL)
		return false;
	ok = fgets(buf, sizeof(buf), f) != NULL;
	fclose(f);
	if (!ok)
		return false;
	errno = 0;
	*v = strtoull(buf, &end, 10);
	return errno == 0 && end != buf && (*end == '\n' || *end == '\0');
}

/* WANCommonInterfaceConfig's counters: the WAN interface's. */
static bool
iwfd_upnp_wan_counters(void *arg, struct upnp_wan_counters *c)
{
	struct iwfd *iwfd = arg;
	const char *wan = iwfd->conf->wan_interface;

	return iwfd_wan_counter(wan, "tx_bytes", &c->bytes_sent) &&
	    iwfd_wan_counter(wan, "rx_bytes", &c->bytes_received) &&
	    iwfd_wan_counter(wan, "tx_packets", &c->packets_sent) &&
	    iwfd_wan_counter(wan, "rx_packets", &c->packets_received);
}

static uint32_t
iwfd_upnp_uptime(void *arg)
{
	struct iwfd *iwfd = arg;

	return (uint32_t)((iwfd_now_ms(iwfd) - iwfd->started_ms) / 1000);
}

/* The address probe's own mapping is no client's: listings hide it. */
static bool
iwfd_upnp_hidden(void *arg, const struct mapping *m)
{
	struct iwfd *iwfd = arg;

	return iwfd->probe != NULL && addr_probe_owns(iwfd->probe, m);
}

/* SSDP's port (UPnP Device Architecture 1.1 §1.1.2); pupnp binds it on
   INADDR_ANY (spec/iwf.md §5.1). */
#define IWFD_SSDP_PORT	1900

/*
 * The guard in our nft table (backend.h; spec/iwf.md ): the
 * ports of what runs now answer only on the LAN interfaces, and pupnp's
 * HTTP server gets a per-host connection limit. Set when the front-ends
 * are open, again when the IGD started (its ports are known only then)
 * and after a reload changed the LAN interfaces; the turn's commit
 * applies it. nat = none installs nothing, so no guard (docs).
 */
static void
iwfd_guard(struct iwfd *iwfd)
{
	const struct iwfd_config *conf = iwfd->conf;
	const char *lans[CONFIG_MAX_LAN_INTERFACES];
	uint16_t tcp[2], udp[2], desc_port, control_port;
	size_t i, n_tcp = 0, n_limited = 0, n_udp = 0;

	if (iwfd->backend == NULL || iwfd->backend->ops->set_guard == NULL)
		return;
	for (i = 0; i < conf->n_lan_interface; i++)
		lans[i] = conf->lan_interface[i];
	/* PCP and NAT-PMP share the front-end's socket (RFC 6887 App. A) */
	if (iwfd->pcp != NULL)
		udp[n_udp++] = PCP_SERVER_PORT;
	if (iwfd->upnp != NULL) {
		udp[n_udp++] = IWFD_SSDP_PORT;
		upnp_ports(iwfd->upnp, &desc_port, &control_port);
		/* first, limited per host: pupnp's (its workers can be held);
		   the SOAP server on the loop drops stalled clients itself */
		if (desc_port != 0) {
			tcp[n_tcp++] = desc_port;
			n_limited = 1;
		}
		if (control_port != 0)
			tcp[n_tcp++] = control_port;
	}
	if (iwfd->backend->ops->set_owner != NULL &&
	    iwfd->backend->ops->set_owner(iwfd->backend, iwfd->owner_on ?
	    conf->user : NULL) == -1)
		log_warnx("nft table %s: the owner rule could not be set",
		    conf->nft_table);
	if (iwfd->backend->ops->set_guard(iwfd->backend, lans,
	    conf->n_lan_interface, tcp, n_tcp, n_limited, udp, n_udp) == -1)
		log_warnx("nft table %s: the WAN guard could not be set",
		    conf->nft_table);
	iwfd_kick(iwfd);
}

/*
 * Is the daemon's user root (then no owner rule, backend.h set_owner,
 * it would refuse every root process's TCP off the LAN)? Looked up
 * once at start: user is restart-only.
 */
static int
iwfd_owner(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct priv_user pu;

	if (priv_user_lookup(conf->user, &pu) == -1)
		return -1;
	iwfd->owner_on = pu.uid != 0;
	return 0;
}

/* The same lan_interface list (a reload re-applies the guard if not). */
static bool
iwfd_same_lans(const struct iwfd_config *a, const struct iwfd_config *b)
{
	size_t i;

	if (a->n_lan_interface != b->n_lan_interface)
		return false;
	for (i = 0; i < a->n_lan_interface; i++)
		if (strcmp(a->lan_interface[i], b->lan_interface[i]) != 0)
			return false;
	return true;
}

/*
 * Start the IGD on the first LAN interface (pupnp serves one: spec/iwf.md
 * §5.1, docs/upnp.md). A pupnp that does not start is logged and the
 * daemon goes on without UPnP.
 */
static void
iwfd_open_upnp(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct upnp_params up;
	struct in6_addr lan;
	char addr[INET_ADDRSTRLEN], url[sizeof("http:///") + INET_ADDRSTRLEN];

	if (!conf->upnp || iwfd->upnp != NULL)
		return;
	memset(&up, 0, sizeof(up));
	up.base = iwfd->base;
	up.ifname = conf->lan_interface[0];
	up.port = conf->upnp_port;
	up.desc.version = conf->upnp_igd_version;
	up.desc.friendly_name = conf->upnp_friendly_name;
	up.desc.manufacturer = conf->upnp_manufacturer;
	up.desc.model_name = conf->upnp_model_name;
	up.desc.model_number = conf->upnp_model_number;
	up.desc.serial = conf->upnp_serial;
	/* stable across restarts: the state file keeps the key (U-02) */
	upnp_desc_udns(iwfd->natpmp_key, &up.desc);
	if (netif_ipv4_address(up.ifname, &lan) &&
	    inet_ntop(AF_INET, &lan.s6_addr[12], addr, sizeof(addr)) != NULL) {
		snprintf(url, sizeof(url), "http://%s/", addr);
		up.desc.presentation_url = url;
	}
	up.soap.version = conf->upnp_igd_version;
	up.soap.proxy = iwfd->proxy;
	up.soap.table = iwfd->table;
	/* rebuilt in place on SIGHUP: third_party_host follows at once */
	up.soap.policy = &iwfd->policy;
	memcpy(up.soap.nonce_key, iwfd->natpmp_key, sizeof(up.soap.nonce_key));
	up.soap.connected = iwfd_upnp_connected;
	up.soap.ext_addr = iwfd_upnp_ext_addr;
	up.soap.wan_counters = iwfd_upnp_wan_counters;
	up.soap.uptime = iwfd_upnp_uptime;
	up.soap.hidden = iwfd_upnp_hidden;
	up.soap.cb_arg = iwfd;
	up.soap.upstream = config_has_upstream(conf);
	up.lan = iwfd->lan_prefixes;
	up.n_lan = iwfd->policy.n_lan_prefixes;
	up.now = iwfd_now_cb;
	up.clock_arg = iwfd;
	up.kick = iwfd_proxy_kick;
	up.kick_arg = iwfd;
	up.outbox = iwfd->outbox;
	up.ratelimit = iwfd->ratelimit_http;
	if ((iwfd->upnp = upnp_open(&up)) == NULL)
		log_warnx("upnp: not started; going on without UPnP IGD");
	else
		iwfd_guard(iwfd);	/* its ports, and a kick */
}

/* Does the state file keep m (state_image_from_table's rule: its client
   holds a SUCCESS for it)? */
static bool
iwfd_state_keeps(const struct mapping *m)
{
	return m->state == MAP_STATE_GRANTED ||
	    m->state == MAP_STATE_RENEWING ||
	    (m->flags & MAPPING_F_WAS_GRANTED) != 0;
}

/*
 * Shutdown: withdraw the mappings no restart will find again, locally and
 * upstream - all of them when the state could not be saved (all: true),
 * else only those the file does not keep (never granted: their clients
 * got no SUCCESS and retry).
 */
static void
iwfd_withdraw(struct iwfd *iwfd, bool all)
{
	uint64_t now = iwfd_now_ms(iwfd);
	struct mapping *m;
	size_t i = 0, n = 0;

	if (iwfd->proxy == NULL)
		return;
	/* proxy_delete removes m: the last mapping moves into slot i */
	while ((m = table_at(iwfd->table, i)) != NULL) {
		if (!all && iwfd_state_keeps(m)) {
			i++;
			continue;
		}
		proxy_delete(iwfd->proxy, m, now);
		n++;
	}
	proxy_commit(iwfd->proxy, now);
	if (n > 0)
		log_info("withdrew %zu mapping(s)", n);
}

/* SIGTERM: save the state a last time and keep the mappings (their nft
   element timeouts and upstream lifetimes carry them until the daemon is
   back); if it cannot be saved, nothing may be orphaned: withdraw all. */
static void
iwfd_save_or_withdraw(struct iwfd *iwfd)
{
	uint64_t now = iwfd_now_ms(iwfd);

	if (iwfd->proxy == NULL || iwfd->table == NULL)
		return;
	iwfd_withdraw(iwfd, false);
	if (iwfd_state_write(iwfd, now, true) == 0) {
		log_info("state saved to %s: %zu mapping(s) kept",
		    iwfd->conf->state_file, table_count(iwfd->table));
		return;
	}
	log_warnx("state file %s not written: withdrawing every mapping",
	    iwfd->conf->state_file);
	iwfd_withdraw(iwfd, true);
}

/* ---- SIGHUP: the new configuration, applied at once ------------------- */

/*
 * The keys only a restart applies: log each one that changed and keep its
 * running value in the new configuration. The state file, the control
 * socket and the nft table are what a second daemon is kept off by, and
 * the user and the sandbox cannot be taken back once dropped into
 * (docs/pcp-iwfd.8 "SIGHUP").
 */
#define IWFD_KEEP(field, name)						\
	do {								\
		if (memcmp(&old->field, &conf->field,			\
		    sizeof(conf->field)) != 0) {			\
			log_warnx("reload: %s changes need a restart; "	\
			    "keeping the running value", name);		\
			memcpy(&conf->field, &old->field,		\
			    sizeof(conf->field));			\
		}							\
	} while (0)

static void
iwfd_reload_keep(const struct iwfd_config *old, struct iwfd_config *conf)
{
	IWFD_KEEP(state_file, "state_file");
	IWFD_KEEP(control_socket, "control_socket");
	IWFD_KEEP(nft_table, "nft_table");
	IWFD_KEEP(user, "user");
	IWFD_KEEP(sandbox, "sandbox");	/* a filter cannot be removed */
}
#undef IWFD_KEEP

/* What a reload changed, decided once from the old and new files. */
struct iwfd_changes {
	bool	 lans;		/* the lan_interface list */
	/* the LAN prefixes read again differ (with lans, or an address
	   added to or removed from a LAN interface) */
	bool	 prefixes;
	bool	 lan0;		/* the first one: UPnP's, the probe's */
	bool	 wan;		/* wan_interface */
	bool	 nat;
	bool	 servers;	/* upstream_server, its dhcp form, the router */
	bool	 has_upstream;	/* config_has_upstream() flipped */
	bool	 udp;		/* the PCP / NAT-PMP front-end's parameters */
	bool	 upnp;		/* the IGD's */
};

static bool
iwfd_same_servers(const struct iwfd_config *a, const struct iwfd_config *b)
{
	size_t i;

	if (a->n_upstream_server != b->n_upstream_server ||
	    a->upstream_dhcp != b->upstream_dhcp ||
	    a->upstream_default_router != b->upstream_default_router)
		return false;
	for (i = 0; i < a->n_upstream_server; i++)
		if (a->upstream_server[i].port != b->upstream_server[i].port ||
		    !IN6_ARE_ADDR_EQUAL(&a->upstream_server[i].addr,
		    &b->upstream_server[i].addr))
			return false;
	return true;
}

/* The server PCP's relay sends unknown opcodes to (iwfd_open_udp). */
static bool
iwfd_same_relay(const struct iwfd_config *a, const struct iwfd_config *b)
{
	bool ra = a->relay_unknown && a->n_upstream_server > 0;
	bool rb = b->relay_unknown && b->n_upstream_server > 0;

	if (ra != rb)
		return false;
	return !ra || (a->upstream_server[0].port == b->upstream_server[0].port &&
	    IN6_ARE_ADDR_EQUAL(&a->upstream_server[0].addr,
	    &b->upstream_server[0].addr) &&
	    strcmp(a->wan_interface, b->wan_interface) == 0);
}

static bool
iwfd_same_upnp(const struct iwfd_config *a, const struct iwfd_config *b)
{
	return a->upnp == b->upnp && a->upnp_igd_version == b->upnp_igd_version &&
	    a->upnp_port == b->upnp_port &&
	    strcmp(a->upnp_friendly_name, b->upnp_friendly_name) == 0 &&
	    strcmp(a->upnp_manufacturer, b->upnp_manufacturer) == 0 &&
	    strcmp(a->upnp_model_name, b->upnp_model_name) == 0 &&
	    strcmp(a->upnp_model_number, b->upnp_model_number) == 0 &&
	    strcmp(a->upnp_serial, b->upnp_serial) == 0;
}

static void
iwfd_changes(const struct iwfd *iwfd, const struct iwfd_config *old,
    const struct iwfd_config *conf, struct iwfd_changes *c)
{
	memset(c, 0, sizeof(*c));
	c->lans = !iwfd_same_lans(old, conf);
	c->lan0 = strcmp(old->lan_interface[0], conf->lan_interface[0]) != 0;
	c->wan = strcmp(old->wan_interface, conf->wan_interface) != 0;
	c->nat = old->nat != conf->nat;
	c->servers = !iwfd_same_servers(old, conf);
	c->has_upstream = config_has_upstream(old) != config_has_upstream(conf);
	/* NAT-PMP answers only where somebody NATs (RFC 6886 §3.8): nat and
	   the upstream decide whether it runs */
	c->udp = c->lans || c->nat || c->has_upstream ||
	    old->pcp != conf->pcp || old->natpmp != conf->natpmp ||
	    old->third_party != conf->third_party ||
	    !iwfd_same_relay(old, conf) ||
	    (iwfd->reload_missing & IWFD_MISSING_UDP) != 0 ||
	    ((conf->pcp || conf->natpmp) && iwfd->pcp == NULL);
	/* the IGD serves the first LAN interface and says whether it has an
	   upstream; the last failed start is tried again */
	c->upnp = !iwfd_same_upnp(old, conf) || c->lan0 || c->has_upstream ||
	    (conf->upnp && iwfd->upnp == NULL);
}

/*
 * lan_interface changed: a mapping for a host that is on none of the LAN
 * interfaces now (iwfd_left_lan) is deleted the way a client's delete is -
 * its local rule, its table entry, and upstream (P-04) - and every other
 * mapping is left as it is. The gateway's own mappings (static ones, the
 * address probe's) are not a LAN host's.
 */
#define IWFD_PROC_ROUTE	"/proc/net/route"
#define IWFD_RTF_UP	0x0001		/* <linux/route.h> RTF_UP */

/*
 * The interface the kernel routes IPv4 address a out of: the longest
 * matching prefix of /proc/net/route (the kernel's own choice for a host
 * route such as a LAN host's on its own interface). False for IPv6 or
 * without a route.
 */
static bool
iwfd_route_ifname(const struct in6_addr *a, char *ifname, size_t len)
{
	char line[256], name[IFNAMSIZ];
	unsigned int dst, gw, flags, metric, mask, addr;
	int best = -1, bits;
	FILE *f;

	if (!pcp_addr_is_v4(a) || (f = fopen(IWFD_PROC_ROUTE, "r")) == NULL)
		return false;
	/* the kernel prints the addresses as the u32 of their octets */
	memcpy(&addr, &a->s6_addr[12], sizeof(addr));
	while (fgets(line, sizeof(line), f) != NULL) {
		if (sscanf(line, "%15s %x %x %x %*u %*u %u %x", name, &dst, &gw,
		    &flags, &metric, &mask) != 6 || (flags & IWFD_RTF_UP) == 0 ||
		    (addr & mask) != dst)
			continue;
		bits = __builtin_popcount(mask);
		if (bits > best) {
			best = bits;
			snprintf(ifname, len, "%s", name);
		}
	}
	fclose(f);
	return best >= 0;
}

/* Was ifname a LAN interface of old and is it none of conf's? */
static bool
iwfd_lan_removed(const struct iwfd_config *old, const struct iwfd_config *conf,
    const char *ifname)
{
	size_t i;
	bool was = false;

	for (i = 0; i < old->n_lan_interface; i++)
		if (strcmp(old->lan_interface[i], ifname) == 0)
			was = true;
	for (i = 0; i < conf->n_lan_interface; i++)
		if (strcmp(conf->lan_interface[i], ifname) == 0)
			return false;
	return was;
}

/* Is m a LAN host's mapping that the new lan_interface list leaves out:
   its host routed out of an interface that is no LAN one any more, or
   (when every LAN interface gave its prefixes) outside all of them? */
static bool
iwfd_left_lan(const struct iwfd *iwfd, const struct iwfd_config *old,
    const struct mapping *m)
{
	char ifname[IFNAMSIZ];

	if ((m->flags & MAPPING_F_STATIC) != 0 ||
	    (iwfd->probe != NULL && addr_probe_owns(iwfd->probe, m)))
		return false;
	if (iwfd_route_ifname(&m->internal_addr, ifname, sizeof(ifname)) &&
	    iwfd_lan_removed(old, iwfd->conf, ifname))
		return true;
	return iwfd->n_lan_unknown == 0 &&
	    !policy_is_lan(&iwfd->policy, &m->internal_addr);
}

static void
iwfd_reload_sweep(struct iwfd *iwfd, const struct iwfd_config *old,
    uint64_t now)
{
	struct mapping *m;
	size_t i = 0, n = 0;

	if (iwfd->n_lan_unknown > 0)
		log_warnx("reload: %zu lan_interface(s) without an address: "
		    "only mappings of hosts routed out of a removed LAN "
		    "interface go; those outside the LAN prefixes known now "
		    "are kept until a SIGHUP once every LAN interface has "
		    "one (and the prefixes changed)", iwfd->n_lan_unknown);
	/* proxy_delete removes m: the last mapping moves into slot i */
	while ((m = table_at(iwfd->table, i)) != NULL) {
		if (!iwfd_left_lan(iwfd, old, m)) {
			i++;
			continue;
		}
		proxy_delete(iwfd->proxy, m, now);
		n++;
	}
	if (n > 0)
		log_info("reload: %zu mapping(s) of hosts no longer on a LAN "
		    "interface deleted", n);
}

/*
 * nat or wan_interface changed (the nft rules DNAT what arrives on the
 * WAN interface, backend.h): toward nat = none the table is removed and
 * the proxy makes no rules; toward nat = local, or on a new WAN interface,
 * a backend is opened and the proxy installs every live mapping's rule
 * into it (proxy_set_nat). The proxy re-makes the upstream mappings in the
 * new mode's form. When the nft table cannot be opened the running mode
 * stays (logged; conf says so, and the next SIGHUP tries again).
 */
static void
iwfd_reload_backend(struct iwfd *iwfd, const struct iwfd_config *old,
    struct iwfd_config *conf, const struct iwfd_changes *c, uint64_t now)
{
	struct backend *nb, *ob = iwfd->backend;
	bool local = conf->nat == CONFIG_NAT_LOCAL;
	size_t n;

	if (!c->nat && (!local || (!c->wan &&
	    (iwfd->reload_missing & IWFD_MISSING_BACKEND) == 0)))
		return;
	/* what the running backend holds queued completes there first */
	proxy_commit(iwfd->proxy, now);
	iwfd->reload_missing &= ~IWFD_MISSING_BACKEND;
	if (!local) {
		proxy_set_nat(iwfd->proxy, PROXY_NAT_NONE, NULL, now);
		if (ob != NULL) {
			/* nat = none installs nothing: no rules, no guard */
			if (ob->ops->destroy(ob) == -1)
				log_warnx("nft table %s: could not be removed",
				    conf->nft_table);
			ob->ops->close(ob);
		}
		iwfd->backend = NULL;
		log_info("reload: nat none: the local rules are removed, the "
		    "upstream mappings re-made with THIRD_PARTY");
		return;
	}
	if ((nb = iwfd_backend_new(conf)) == NULL) {
		if (ob != NULL) {
			log_warnx("reload: nft table %s cannot be opened for "
			    "wan_interface %s: the local rules stay on %s until "
			    "a SIGHUP succeeds", conf->nft_table,
			    conf->wan_interface, old->wan_interface);
			iwfd->reload_missing |= IWFD_MISSING_BACKEND;
		} else {
			log_warnx("reload: nat local: nft table %s cannot be "
			    "opened (the nft error is above): staying nat "
			    "none until a SIGHUP succeeds", conf->nft_table);
			conf->nat = CONFIG_NAT_NONE;
		}
		return;
	}
	/* coming from nat = none: what an earlier run left belongs to
	   nobody; the proxy then adds every live mapping's rule */
	if (ob == NULL && nb->ops->reconcile(nb, NULL, 0) == -1)
		log_warnx("nft table %s: could not clear old rules",
		    conf->nft_table);
	proxy_set_nat(iwfd->proxy, PROXY_NAT_LOCAL, nb, now);
	iwfd->backend = nb;
	if (ob != NULL) {
		ob->ops->close(ob);	/* its rules are the new one's now */
		/* the new backend knows only the DNAT ports it read back
		   (backend_nft: not the PEER SNAT elements, so removing one
		   would emit nothing): it is made to hold every live
		   mapping's rule, one batch, as at start (fix, review) */
		if (proxy_reconcile(iwfd->proxy, now, &n) == -1)
			log_warnx("reload: nft table %s: the local rules "
			    "could not be reconciled", conf->nft_table);
	}
	if (c->nat)
		log_info("reload: nat local: local rules installed, the "
		    "upstream mappings re-made from the WAN address");
}

/*
 * wan_interface changed: the upstream sockets are bound to the new one
 * (keeping their source ports), the WAN watch follows it, and its address
 * is taken the way a WAN address change is (iwfd_wan_changed: the proxy's
 * WAN address, every upstream mapping re-made from it). An interface that
 * does not exist yet: the sockets follow the routing table, and once it
 * appears with an address the WAN watch reports it and the sockets are
 * bound to it then (IWFD_MISSING_WAN).
 */
static void
iwfd_reload_wan(struct iwfd *iwfd, const struct iwfd_changes *c)
{
	const struct iwfd_config *conf = iwfd->conf;
	struct wanwatch_change chg;

	if (!c->wan)
		return;
	iwfd->reload_missing &= ~IWFD_MISSING_WAN;
	if (iwfd->upstream_io != NULL &&
	    !upstream_io_set_interface(iwfd->upstream_io, conf->wan_interface))
		iwfd->reload_missing |= IWFD_MISSING_WAN;
	wanwatch_close(iwfd->wanwatch);
	if ((iwfd->wanwatch = wanwatch_open(iwfd->base, conf->wan_interface,
	    iwfd_wan_changed, iwfd)) == NULL)
		log_warnx("reload: wan_interface %s: address changes will not "
		    "be followed until a SIGHUP", conf->wan_interface);
	memset(&chg, 0, sizeof(chg));
	chg.had = iwfd->wan_addr_known;
	chg.old = iwfd->wan_addr;
	chg.has = netif_ipv4_address(conf->wan_interface, &chg.addr);
	if (!chg.has) {
		log_warnx("reload: wan_interface %s has no IPv4 address (yet): "
		    "the upstream mappings are re-made when it has one",
		    conf->wan_interface);
		return;
	}
	iwfd_wan_changed(iwfd, &chg);
}

/*
 * upstream_server (or its dhcp form, or upstream_default_router) changed:
 * the same path as a DHCP client's new list (discovery_apply): a server
 * that stays keeps its state, its socket and its mappings untouched; the
 * mappings of one that is gone are re-created on the new first server;
 * with none left they are the gateway's own.
 */
static void
iwfd_reload_servers(struct iwfd *iwfd, const struct iwfd_changes *c,
    uint64_t now)
{
	const struct iwfd_config *conf = iwfd->conf;
	struct config_upstream list[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t i, n;

	/* a new WAN interface may have another default router */
	if (!c->servers && !(c->wan && iwfd->dhcp_router))
		return;
	if (conf->upstream_dhcp)
		n = discovery_effective(iwfd, list, &iwfd->dhcp_router);
	else {
		/* dhcp no more: its servers are forgotten (back to dhcp, the
		   DHCP client names them again) */
		memset(iwfd->dhcp_servers, 0, sizeof(iwfd->dhcp_servers));
		iwfd->n_dhcp_servers = 0;
		iwfd->dhcp_router = false;
		for (n = i = 0; i < conf->n_upstream_server; i++)
			list[n++] = conf->upstream_server[i];
	}
	if (discovery_apply(iwfd, list, n, now) == -1)
		log_warnx("reload: upstream_server: the list could not be "
		    "applied; the running one stays");
}

/* Close what a reload re-opens, in iwfd_shutdown's order. */
static void
iwfd_close_udp(struct iwfd *iwfd)
{
	if (iwfd->pcp != NULL)
		pcp_frontend_close(iwfd->pcp);
	iwfd->pcp = NULL;
	natpmp_free(iwfd->natpmp);
	iwfd->natpmp = NULL;
}

/* The probe's mapping, if it has one now (NULL: none). */
static struct mapping *
iwfd_probe_mapping(const struct iwfd *iwfd)
{
	struct mapping *m;
	size_t i;

	if (iwfd->probe == NULL)
		return NULL;
	for (i = 0; (m = table_at(iwfd->table, i)) != NULL; i++)
		if (addr_probe_owns(iwfd->probe, m))
			return m;
	return NULL;
}

/*
 * The front-ends whose parameters changed are closed and opened again;
 * the mappings they made stay in the table and upstream (a UPnP mapping
 * is still valid when the IGD is back). Clients with a request in flight
 * get no answer from the closed one and ask again.
 */
static void
iwfd_reload_frontends(struct iwfd *iwfd, const struct iwfd_changes *c)
{
	const struct iwfd_config *conf = iwfd->conf;
	/* the probe maps the first LAN interface's address, and only where
	   there is an upstream to ask */
	bool probe = c->lan0 || c->has_upstream;
	struct mapping *pm;

	if (c->udp || probe) {
		iwfd_close_udp(iwfd);
		iwfd->reload_missing &= ~IWFD_MISSING_UDP;
	}
	if (c->upnp) {
		/* joins pupnp's threads; its waiters leave the proxy */
		upnp_close(iwfd->upnp);
		iwfd->upnp = NULL;
	}
	if (probe) {
		/* its mapping goes with it, rule and upstream (P-04): it
		   names the old first LAN address (fix, review: it stayed as
		   an ordinary mapping until it expired); the probe's waiter
		   leaves the proxy first (addr_probe_free) */
		pm = iwfd_probe_mapping(iwfd);
		addr_probe_free(iwfd->probe);
		iwfd->probe = NULL;
		if (pm != NULL)
			proxy_delete(iwfd->proxy, pm, iwfd_now_ms(iwfd));
		if (iwfd_open_probe(iwfd, conf, iwfd->seed >> 13) == -1)
			log_warnx("reload: no address probe: NAT-PMP and UPnP "
			    "report the external address once a mapping "
			    "taught it");
	}
	if ((c->udp || probe) && iwfd_open_udp(iwfd, conf, true) == -1)
		log_warnx("reload: out of memory: NAT-PMP is not served until "
		    "the next SIGHUP");
	if (c->upnp)
		iwfd_open_upnp(iwfd, conf);
	else if (iwfd->upnp != NULL && (c->lans || c->prefixes)) {
		/* the prefixes read again (iwfd_build_policy) differ:
		   another lan_interface, or an address added to or removed
		   from one. Split horizon on both SOAP ports, as it is now
		   (fix, review: they kept the prefixes of the IGD's start) */
		if (upnp_set_lan(iwfd->upnp, iwfd->lan_prefixes,
		    iwfd->policy.n_lan_prefixes) == -1)
			log_warnx("reload: the IGD keeps the LAN prefixes it "
			    "had");
		/* CallStranger (upnp_guard.h): callbacks only into the
		   LAN, as it is now */
		if (upnp_guard_arm(iwfd->lan_prefixes,
		    iwfd->policy.n_lan_prefixes) == -1)
			log_warnx("reload: the UPnP callback guard failed "
			    "closed");
	}
}

/* The same LAN prefixes, in the same order (netif_prefixes reads them in
   the kernel's order: a change of order alone is a change, harmlessly). */
static bool
iwfd_same_prefixes(const struct policy_prefix *a, size_t na,
    const struct policy_prefix *b, size_t nb)
{
	size_t i;

	if (na != nb)
		return false;
	for (i = 0; i < na; i++)
		if (a[i].prefix_len != b[i].prefix_len ||
		    memcmp(&a[i].addr, &b[i].addr, sizeof(a[i].addr)) != 0)
			return false;
	return true;
}

int
iwfd_reload(struct iwfd *iwfd)
{
	struct policy_prefix old_pfx[IWFD_MAX_LAN_PREFIXES];
	size_t n_old_pfx;
	struct iwfd_config *conf, *old;
	struct config_errors errs;
	struct iwfd_changes c;
	uint64_t now = iwfd_now_ms(iwfd);
	size_t i;

	if ((conf = malloc(sizeof(*conf))) == NULL) {
		log_warn("reload");
		return -1;
	}
	if (config_parse_file(iwfd->config_path, conf, &errs) == -1) {
		for (i = 0; i < errs.count; i++)
			log_warnx("%s", errs.msg[i]);
		log_warnx("reload: keeping the running configuration");
		free(conf);
		return -1;
	}
	/* Mappings stay in the table. Each change is applied with the
	   smallest re-open (docs/pcp-iwfd.8 "SIGHUP"); the policy, the ACL,
	   the limits and the probe interval take effect at once. */
	old = iwfd->conf;
	iwfd_reload_keep(old, conf);
	iwfd_changes(iwfd, old, conf, &c);
	iwfd->conf = conf;
	memcpy(old_pfx, iwfd->lan_prefixes, sizeof(old_pfx));
	n_old_pfx = iwfd->policy.n_lan_prefixes;
	iwfd_build_policy(iwfd, conf);
	c.prefixes = !iwfd_same_prefixes(old_pfx, n_old_pfx, iwfd->lan_prefixes,
	    iwfd->policy.n_lan_prefixes);
	/* issue 8: rate_limit and rate_burst follow at once (max_mappings
	   with the policy); each host keeps its bucket's level */
	ratelimit_set(iwfd->ratelimit, conf->rate_limit, conf->rate_burst);
	ratelimit_set(iwfd->ratelimit_http, conf->rate_limit, conf->rate_burst);
	/* first, while the old mode and servers still hold them */
	if (c.lans || c.prefixes)
		iwfd_reload_sweep(iwfd, old, now);
	iwfd_reload_backend(iwfd, old, conf, &c, now);
	iwfd_reload_wan(iwfd, &c);
	iwfd_reload_servers(iwfd, &c, now);
	iwfd_reload_frontends(iwfd, &c);
	/* the ports of what runs now, on the LAN interfaces of now */
	iwfd_guard(iwfd);
	if (old->upstream_probe_interval != conf->upstream_probe_interval)
		upstream_set_probe_interval(iwfd->upstream,
		    conf->upstream_probe_interval * UPSTREAM_PROBE_MS_PER_S);
	free(old);
	/* the state file names the servers in use */
	iwfd->state_dirty = true;
	iwfd_kick(iwfd);
	if (iwfd->reload_missing != 0)
		log_warnx("configuration reloaded from %s, not all of it "
		    "applied (see above)", iwfd->config_path);
	else
		log_info("configuration reloaded from %s", iwfd->config_path);
	return 0;
}

static void
iwfd_signal_cb(evutil_socket_t sig, short what, void *arg)
{
	struct iwfd *iwfd = arg;

	(void)what;
	switch (sig) {
	case SIGHUP:
		log_info("SIGHUP: reloading %s", iwfd->config_path);
		(void)iwfd_reload(iwfd);
		break;
	default:
		log_info("%s: shutting down", sig == SIGINT ? "SIGINT" : "SIGTERM");
		event_base_loopbreak(iwfd->base);
		break;
	}
}

static struct event *
iwfd_signal(struct iwfd *iwfd, int sig)
{
	struct event *ev = evsignal_new(iwfd->base, sig, iwfd_signal_cb, iwfd);

	if (ev == NULL || event_add(ev, NULL) == -1)
		fatalx("cannot watch signal %d", sig);
	return ev;
}

/* The state file's directory, made (mode 0700) when it is missing; true
   when made now (priv_state_prepare gives only such a one away). */
static bool
iwfd_state_dir(const char *state_file)
{
	char dir[PATH_MAX];
	char *slash;

	if (snprintf(dir, sizeof(dir), "%s", state_file) >= (int)sizeof(dir) ||
	    (slash = strrchr(dir, '/')) == NULL || slash == dir)
		return false;
	*slash = '\0';
	if (priv_state_mkdir(dir) == 0) {
		log_info("made the state directory %s", dir);
		return true;
	}
	if (errno != EEXIST)
		log_warn("mkdir %s", dir);
	return false;
}

int
iwfd_init(struct iwfd *iwfd, const char *path, struct iwfd_config *conf)
{
	uint64_t seed;
	bool restored, dir_made;

	memset(iwfd, 0, sizeof(*iwfd));
	iwfd->config_path = path;
	iwfd->conf = conf;
	log_route_libevent();
	/* libevent: the base is explicit, never the global event_init().
	   Three priorities: the end-of-turn commit runs last (iwfd_kick). */
	if ((iwfd->base = event_base_new()) == NULL ||
	    event_base_priority_init(iwfd->base, 3) == -1) {
		log_warnx("event_base_new failed");
		return -1;
	}
	if ((iwfd->table = table_new()) == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	/* The table's hash keys and port choices must not be guessable by
	   LAN hosts. */
	if (getrandom(&seed, sizeof(seed), 0) != sizeof(seed)) {
		log_warn("getrandom");
		return -1;
	}
	table_set_seed(iwfd->table, seed);
	iwfd->seed = seed;
	/* the state journal writes what changed (docs/state.md) */
	if (table_track_changes(iwfd->table, true) == -1) {
		log_warnx("out of memory");
		return -1;
	}
	/* the NAT-PMP nonce secret, unless the state file has one */
	if (getrandom(iwfd->natpmp_key, sizeof(iwfd->natpmp_key), 0) !=
	    (ssize_t)sizeof(iwfd->natpmp_key)) {
		log_warn("getrandom");
		return -1;
	}
	if (iwfd_open_ratelimit(iwfd, conf) == -1)
		return -1;
	iwfd_build_policy(iwfd, conf);
	table_set_port_check(iwfd->table, policy_ext_port_check, &iwfd->policy);
	table_set_port_ranges(iwfd->table, policy_ext_port_ranges, &iwfd->policy);
	if (!netif_exists(conf->wan_interface))
		log_warnx("wan_interface %s does not exist (yet)",
		    conf->wan_interface);

	signal(SIGPIPE, SIG_IGN);
	iwfd->ev_sigterm = iwfd_signal(iwfd, SIGTERM);
	iwfd->ev_sigint = iwfd_signal(iwfd, SIGINT);
	iwfd->ev_sighup = iwfd_signal(iwfd, SIGHUP);
	iwfd->ev_timer = evtimer_new(iwfd->base, iwfd_timer_cb, iwfd);
	iwfd->ev_turn = event_new(iwfd->base, -1, 0, iwfd_turn_cb, iwfd);
	if (iwfd->ev_timer == NULL || iwfd->ev_turn == NULL ||
	    event_priority_set(iwfd->ev_turn, 2) == -1)
		return -1;

	iwfd->started_ms = iwfd_now_ms(iwfd);
	/* RFC 6887 §8.5: state begins now, unless the state file says it
	   began earlier (iwfd_state_load). */
	iwfd_epoch_restart(iwfd);

	/* First: a second daemon must stop here, before it touches the
	   first one's nft table, ports or state file. */
	if ((iwfd->control = control_open(iwfd, conf->control_socket)) == NULL)
		return -1;
	/* the table is filled before any front-end can add to it */
	restored = iwfd_state_load(iwfd, conf);
	/* the journal starts from a base holding what was loaded (a torn
	   group dropped, the journal folded in); replies wait for commits */
	if ((iwfd->journal = state_journal_new(conf->state_file)) == NULL ||
	    (iwfd->outbox = outbox_new(&(struct outbox_params){
	    .kick = iwfd_proxy_kick, .kick_arg = iwfd })) == NULL) {
		log_warnx("out of memory");
		return -1;
	}
	/* A SUCCESS is sent only once its mapping is on disk: a state file
	   that cannot be written would leave every client unanswered, so it
	   is an error at start, not a silent failure later. Its directory
	   is made when missing (one level: /var/lib/pcp-iwfd). */
	dir_made = iwfd_state_dir(conf->state_file);
	if (iwfd_state_write(iwfd, iwfd_now_ms(iwfd), true) == -1) {
		log_warnx("cannot write the state file %s: the daemon sends a "
		    "SUCCESS only once its mapping is on disk", conf->state_file);
		return -1;
	}
	/* after the drop (iwfd_run) the user writes them (docs/security.md) */
	if (priv_state_prepare(conf->user, conf->state_file, dir_made) == -1 ||
	    iwfd_owner(iwfd, conf) == -1)
		return -1;
	if (iwfd_open_backend(iwfd, conf, restored) == -1 ||
	    iwfd_open_upstream(iwfd, conf, seed) == -1 ||
	    iwfd_open_proxy(iwfd, conf, seed >> 7) == -1)
		return -1;
	if (iwfd->upstream != NULL && (iwfd->upstream_io = upstream_io_open(
	    iwfd->base, iwfd->upstream, conf->wan_interface, iwfd_now_cb,
	    iwfd)) == NULL)
		return -1;
	/* local rules back, upstream refreshes scheduled */
	if (restored && proxy_restored(iwfd->proxy, iwfd_now_ms(iwfd)) == -1)
		log_warnx("restored mappings: the local rules could not be "
		    "reconciled (they come back as mappings are refreshed)");
	/* issue 7: follow the WAN address (after the upstream and the
	   proxy, which a change re-maps); without it the daemon runs on */
	if ((iwfd->wanwatch = wanwatch_open(iwfd->base, conf->wan_interface,
	    iwfd_wan_changed, iwfd)) == NULL)
		log_warnx("wan_interface %s: address changes will not be "
		    "followed", conf->wan_interface);
	if (iwfd_open_frontends(iwfd, conf, seed >> 13) == -1)
		return -1;
	iwfd_guard(iwfd);
	log_info("nat %s, %zu upstream server(s)%s, backend %s",
	    conf->nat == CONFIG_NAT_LOCAL ? "local" : "none",
	    iwfd->upstream != NULL ? upstream_server_count(iwfd->upstream) : 0,
	    conf->upstream_dhcp ? " (dhcp)" : "",
	    iwfd->backend != NULL ? iwfd->backend->ops->name : "none");
	return 0;
}

int
iwfd_daemonize(struct iwfd *iwfd)
{
	if (daemon(0, 0) == -1)
		return -1;
	/* libevent: the kernel event state does not survive fork(). */
	return event_reinit(iwfd->base);
}

int
iwfd_run(struct iwfd *iwfd)
{
	log_info("pcp-iwfd %s started", PACKAGE_VERSION);
	/* Least privilege (docs/security.md): before pupnp's threads, which
	   inherit the uid, the capabilities and the seccomp filter.
	   CAP_NET_ADMIN stays also with nat none: a SIGHUP to nat local must
	   be able to open the nftables table (issue 7: modes change without
	   a restart). */
	if (priv_drop(iwfd->conf->user, iwfd->conf->sandbox, true) == -1)
		return 1;
	/* pupnp's threads start here, after daemon(3): a fork keeps only
	   the calling thread */
	iwfd_open_upnp(iwfd, iwfd->conf);
	if (event_base_dispatch(iwfd->base) == -1) {
		log_warnx("event loop failed");
		return 1;
	}
	return iwfd->exit_status;
}

void
iwfd_shutdown(struct iwfd *iwfd)
{
	/* the replies of the turn the signal cut short, after its commit */
	if (iwfd->proxy != NULL && iwfd->outbox != NULL &&
	    outbox_count(iwfd->outbox) > 0)
		iwfd_turn_commit(iwfd, iwfd_now_ms(iwfd));
	/* The front-end first: it cancels its waiters in the proxy. */
	if (iwfd->pcp != NULL)
		pcp_frontend_close(iwfd->pcp);
	iwfd->pcp = NULL;
	/* joins pupnp's threads; its waiters leave the proxy and the probe */
	upnp_close(iwfd->upnp);
	iwfd->upnp = NULL;
	/* after the socket (its hook), before the proxy (its waiters) */
	natpmp_free(iwfd->natpmp);
	iwfd->natpmp = NULL;
	/* after the front-ends that listen to it, before the proxy */
	addr_probe_free(iwfd->probe);
	iwfd->probe = NULL;
	/* it calls into the proxy and the upstream */
	wanwatch_close(iwfd->wanwatch);
	iwfd->wanwatch = NULL;
	iwfd_save_or_withdraw(iwfd);
	control_close(iwfd->control);
	if (iwfd->upstream_io != NULL)
		upstream_io_close(iwfd->upstream_io);
	proxy_free(iwfd->proxy);
	if (iwfd->upstream != NULL)
		upstream_free(iwfd->upstream);
	if (iwfd->backend != NULL)
		iwfd->backend->ops->close(iwfd->backend);
	if (iwfd->ev_sigterm != NULL)
		event_free(iwfd->ev_sigterm);
	if (iwfd->ev_sigint != NULL)
		event_free(iwfd->ev_sigint);
	if (iwfd->ev_sighup != NULL)
		event_free(iwfd->ev_sighup);
	if (iwfd->ev_timer != NULL)
		event_free(iwfd->ev_timer);
	if (iwfd->ev_turn != NULL)
		event_free(iwfd->ev_turn);
	/* after the front-ends (they forgot their held replies) */
	outbox_free(iwfd->outbox);
	/* after every front-end that charges it */
	ratelimit_free(iwfd->ratelimit);
	ratelimit_free(iwfd->ratelimit_http);
	state_journal_free(iwfd->journal);
	if (iwfd->table != NULL)
		table_free(iwfd->table);
	if (iwfd->base != NULL)
		event_base_free(iwfd->base);
	free(iwfd->conf);
	memset(iwfd, 0, sizeof(*iwfd));
}
