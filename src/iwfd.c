/*
 * iwfd.c - the daemon's context and loop: one event_base owns all state
 * (DESIGN.md "Threads and the loop"); signals, the expiry timer and the
 * control socket are events on it.
 */
#include <sys/random.h>

#include <signal.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>

#include "clock.h"
#include "control.h"
#include "iwfd.h"
#include "log.h"
#include "netif.h"
#include "pcp_wire.h"
#include "table.h"

uint64_t
iwfd_now_ms(const struct iwfd *iwfd)
{
	(void)iwfd;
	return clock_now_ms();
}

uint32_t
iwfd_epoch(const struct iwfd *iwfd)
{
	return (uint32_t)((iwfd_now_ms(iwfd) - iwfd->epoch_start_ms) / 1000);
}

/* Fill the policy from the configuration and the LAN interfaces' prefixes
   (split horizon, RFC 6887 §8.2 / RFC 7648 §4). */
static void
iwfd_build_policy(struct iwfd *iwfd, const struct iwfd_config *conf)
{
	struct policy *p = &iwfd->policy;
	size_t i, n = 0;

	for (i = 0; i < conf->n_lan_interface; i++)
		if (!netif_prefixes(conf->lan_interface[i], iwfd->lan_prefixes,
		    IWFD_MAX_LAN_PREFIXES, &n))
			log_warnx("lan_interface %s does not exist (yet)",
			    conf->lan_interface[i]);
	memset(p, 0, sizeof(*p));
	p->lan_prefixes = iwfd->lan_prefixes;
	p->n_lan_prefixes = n;
	p->acl = conf->acl;
	p->n_acl = conf->n_acl;
	p->third_party = conf->third_party == CONFIG_THIRD_PARTY_ALLOW;
	p->max_mappings_per_host = conf->max_mappings_per_host;
	p->min_lifetime = conf->min_lifetime;
	p->max_lifetime = conf->max_lifetime;
}

static void
iwfd_expired(struct mapping *m, void *arg)
{
	char a[INET6_ADDRSTRLEN];

	(void)arg;
	log_info("mapping %s %s:%u -> port %u expired",
	    map_proto_name(m->protocol) != NULL ?
	    map_proto_name(m->protocol) : "?",
	    pcp_addr_ntop(&m->internal_addr, a, sizeof(a)),
	    m->internal_port, m->outer_port);
}

static void
iwfd_expire_cb(evutil_socket_t fd, short what, void *arg)
{
	struct iwfd *iwfd = arg;

	(void)fd;
	(void)what;
	table_expire(iwfd->table, iwfd_now_ms(iwfd), iwfd_expired, iwfd);
	iwfd_table_changed(iwfd);
}

void
iwfd_table_changed(struct iwfd *iwfd)
{
	uint64_t next = table_next_expiry(iwfd->table), now;
	struct timeval tv;

	if (next == TABLE_EXPIRY_NEVER) {
		event_del(iwfd->ev_expire);
		return;
	}
	now = iwfd_now_ms(iwfd);
	next = next > now ? next - now : 0;
	tv.tv_sec = (time_t)(next / 1000);
	tv.tv_usec = (suseconds_t)(next % 1000) * 1000;
	event_add(iwfd->ev_expire, &tv);
}

int
iwfd_reload(struct iwfd *iwfd)
{
	struct iwfd_config *conf;
	struct config_errors errs;
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
	/* Mappings stay in the table. Interface, mode and upstream changes
	   are applied to them by the proxy core (later); the policy and the
	   limits take effect for new requests now. */
	if (strcmp(conf->control_socket, iwfd->conf->control_socket) != 0)
		log_warnx("reload: control_socket changes need a restart");
	strcpy(conf->control_socket, iwfd->conf->control_socket);
	free(iwfd->conf);
	iwfd->conf = conf;
	iwfd_build_policy(iwfd, conf);
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

int
iwfd_init(struct iwfd *iwfd, const char *path, struct iwfd_config *conf)
{
	uint64_t seed;

	memset(iwfd, 0, sizeof(*iwfd));
	iwfd->config_path = path;
	iwfd->conf = conf;
	log_route_libevent();
	/* libevent: the base is explicit, never the global event_init(). */
	if ((iwfd->base = event_base_new()) == NULL) {
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
	iwfd_build_policy(iwfd, conf);
	table_set_port_check(iwfd->table, policy_ext_port_check, &iwfd->policy);
	if (!netif_exists(conf->wan_interface))
		log_warnx("wan_interface %s does not exist (yet)",
		    conf->wan_interface);

	signal(SIGPIPE, SIG_IGN);
	iwfd->ev_sigterm = iwfd_signal(iwfd, SIGTERM);
	iwfd->ev_sigint = iwfd_signal(iwfd, SIGINT);
	iwfd->ev_sighup = iwfd_signal(iwfd, SIGHUP);
	iwfd->ev_expire = evtimer_new(iwfd->base, iwfd_expire_cb, iwfd);
	if (iwfd->ev_expire == NULL)
		return -1;

	iwfd->started_ms = iwfd_now_ms(iwfd);
	/* No state file yet (a later step): state begins now, RFC 6887 §8.5. */
	iwfd->epoch_start_ms = iwfd->started_ms;

	if ((iwfd->control = control_open(iwfd, conf->control_socket)) == NULL)
		return -1;
	return 0;
}

int
iwfd_run(struct iwfd *iwfd)
{
	log_info("pcp-iwfd %s started", PACKAGE_VERSION);
	if (event_base_dispatch(iwfd->base) == -1) {
		log_warnx("event loop failed");
		return 1;
	}
	return iwfd->exit_status;
}

void
iwfd_shutdown(struct iwfd *iwfd)
{
	control_close(iwfd->control);
	iwfd->control = NULL;
	if (iwfd->ev_sigterm != NULL)
		event_free(iwfd->ev_sigterm);
	if (iwfd->ev_sigint != NULL)
		event_free(iwfd->ev_sigint);
	if (iwfd->ev_sighup != NULL)
		event_free(iwfd->ev_sighup);
	if (iwfd->ev_expire != NULL)
		event_free(iwfd->ev_expire);
	if (iwfd->table != NULL)
		table_free(iwfd->table);
	if (iwfd->base != NULL)
		event_base_free(iwfd->base);
	free(iwfd->conf);
	memset(iwfd, 0, sizeof(*iwfd));
}
