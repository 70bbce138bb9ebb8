/*
 * control.c - the control socket: a UNIX stream socket, mode 0600, one
 * request line per connection (see control.h). The answer is built in one
 * pass into the connection's evbuffer (50,000 mappings: ~12 MB, well under
 * 0.1 s) and written out as the client reads it.
 */
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/listener.h>

#include "control.h"
#include "discovery.h"
#include "iwfd.h"
#include "json.h"
#include "log.h"
#include "map.h"
#include "netif.h"
#include "pcp_wire.h"
#include "proxy.h"
#include "ratelimit.h"
#include "table.h"
#include "upstream.h"

/* A client that sends nothing useful is dropped after this long. */
#define CONTROL_TIMEOUT_SEC	10
/* "set-upstream" and its servers, and one more to tell "too many" */
#define CONTROL_MAX_ARGS	(CONFIG_MAX_UPSTREAM_SERVERS + 2)

struct control {
	struct iwfd		*iwfd;
	struct evconnlistener	*listener;
	char			 path[sizeof(((struct sockaddr_un *)0)->sun_path)];
};

static void
control_reply_error(struct evbuffer *out, const char *msg)
{
	evbuffer_add_printf(out, "error %s\n", msg);
}

/* The external address clients are told: the upstream's once learned;
   without an upstream, the WAN interface's own (DESIGN.md "Time, epoch,
   external address"). */
static bool
control_external_address(const struct iwfd *iwfd, struct in6_addr *addr)
{
	return proxy_external_addr(iwfd->proxy, addr);
}

/* The servers in use: the engine's (upstream_server = dhcp: learned at
   run time), else the configured ones. */
static size_t
control_upstream_count(const struct iwfd *iwfd)
{
	if (iwfd->upstream != NULL)
		return upstream_server_count(iwfd->upstream);
	return iwfd->conf->n_upstream_server;
}

/* Where the servers come from: status's "upstream_source". */
static const char *
control_upstream_source(const struct iwfd *iwfd)
{
	if (!iwfd->conf->upstream_dhcp)
		return iwfd->conf->n_upstream_server > 0 ? "config" : "none";
	return iwfd->dhcp_router ? "default_router" : "dhcp";
}

static void
control_upstream_info(const struct iwfd *iwfd, size_t i,
    struct upstream_server_info *info)
{
	memset(info, 0, sizeof(*info));
	if (iwfd->upstream != NULL && i < upstream_server_count(iwfd->upstream))
		upstream_server_info(iwfd->upstream, (unsigned int)i, info);
	else {
		info->addr = iwfd->conf->upstream_server[i].addr;
		info->port = iwfd->conf->upstream_server[i].port;
		info->state = UPSTREAM_UNKNOWN;
	}
}

/* Both limiters' refusals together (iwfd_open_ratelimit). */
static void
control_rate_limited(const struct iwfd *iwfd, struct ratelimit_stats *rl)
{
	struct ratelimit_stats http;

	ratelimit_stats(iwfd->ratelimit, rl);
	ratelimit_stats(iwfd->ratelimit_http, &http);
	rl->allowed += http.allowed;
	rl->limited += http.limited;
	rl->hosts += http.hosts;
}

static void
control_status_json(struct iwfd *iwfd, struct evbuffer *out)
{
	const struct iwfd_config *conf = iwfd->conf;
	struct ratelimit_stats rl;
	struct upstream_server_info info;
	struct json_writer jw;
	struct in6_addr ext;
	char buf[INET6_ADDRSTRLEN];
	size_t i;

	json_init(&jw, out);
	json_object_begin(&jw);
	json_kv_string(&jw, "version", PACKAGE_VERSION);
	json_kv_uint(&jw, "epoch", iwfd_epoch(iwfd));
	json_kv_uint(&jw, "uptime", (iwfd_now_ms(iwfd) - iwfd->started_ms) / 1000);
	if (control_external_address(iwfd, &ext))
		json_kv_string(&jw, "external_address",
		    pcp_addr_ntop(&ext, buf, sizeof(buf)));
	else
		json_kv_null(&jw, "external_address");
	json_kv_uint(&jw, "mappings", table_count(iwfd->table));
	/* issue 8: the abuse limits and what they refused (0: none) */
	control_rate_limited(iwfd, &rl);
	json_kv_uint(&jw, "max_mappings", conf->max_mappings);
	json_kv_uint(&jw, "rate_limit", conf->rate_limit);
	json_kv_uint(&jw, "rate_burst", conf->rate_burst);
	json_kv_uint(&jw, "rate_limited", rl.limited);
	json_kv_string(&jw, "nat", conf->nat == CONFIG_NAT_LOCAL ? "local" : "none");
	json_kv_string(&jw, "wan_interface", conf->wan_interface);
	json_key(&jw, "lan_interfaces");
	json_array_begin(&jw);
	for (i = 0; i < conf->n_lan_interface; i++)
		json_string(&jw, conf->lan_interface[i]);
	json_array_end(&jw);
	json_kv_string(&jw, "upstream_source", control_upstream_source(iwfd));
	json_key(&jw, "upstream");
	json_array_begin(&jw);
	for (i = 0; i < control_upstream_count(iwfd); i++) {
		control_upstream_info(iwfd, i, &info);
		json_object_begin(&jw);
		json_kv_string(&jw, "address", pcp_addr_ntop(&info.addr, buf,
		    sizeof(buf)));
		json_kv_uint(&jw, "port", info.port);
		json_kv_string(&jw, "state", upstream_state_name(info.state));
		if (info.epoch_known)
			json_kv_uint(&jw, "epoch", info.epoch);
		else
			json_kv_null(&jw, "epoch");
		if (info.last_error[0] != '\0')
			json_kv_string(&jw, "last_error", info.last_error);
		else
			json_kv_null(&jw, "last_error");
		json_kv_uint(&jw, "replies", info.replies);
		json_kv_uint(&jw, "timeouts", info.timeouts);
		json_object_end(&jw);
	}
	json_array_end(&jw);
	json_object_end(&jw);
	evbuffer_add(out, "\n", 1);
}

static void
control_status_text(struct iwfd *iwfd, struct evbuffer *out)
{
	const struct iwfd_config *conf = iwfd->conf;
	struct ratelimit_stats rl;
	struct upstream_server_info info;
	struct in6_addr ext;
	char buf[INET6_ADDRSTRLEN];
	size_t i;

	evbuffer_add_printf(out, "pcp-iwfd %s, epoch %u, %zu mapping(s)\n",
	    PACKAGE_VERSION, iwfd_epoch(iwfd), table_count(iwfd->table));
	control_rate_limited(iwfd, &rl);
	evbuffer_add_printf(out, "limits: max_mappings %u, rate %u/s burst %u "
	    "per host, %llu request(s) rate-limited\n", conf->max_mappings,
	    conf->rate_limit, conf->rate_burst, (unsigned long long)rl.limited);
	evbuffer_add_printf(out, "external address: %s\n",
	    control_external_address(iwfd, &ext) ?
	    pcp_addr_ntop(&ext, buf, sizeof(buf)) : "unknown");
	evbuffer_add_printf(out, "nat: %s, wan: %s, lan:",
	    conf->nat == CONFIG_NAT_LOCAL ? "local" : "none",
	    conf->wan_interface);
	for (i = 0; i < conf->n_lan_interface; i++)
		evbuffer_add_printf(out, " %s", conf->lan_interface[i]);
	evbuffer_add_printf(out, "\n");
	if (control_upstream_count(iwfd) == 0)
		evbuffer_add_printf(out, "upstream: none%s (this gateway is "
		    "the last NAT)\n", conf->upstream_dhcp ?
		    " known yet (upstream_server = dhcp)" : "");
	else if (conf->upstream_dhcp)
		evbuffer_add_printf(out, "upstream servers from %s:\n",
		    iwfd->dhcp_router ? "the WAN default router (RFC 6887 "
		    "§8.1)" : "the DHCP client (pcp-iwfctl set-upstream)");
	for (i = 0; i < control_upstream_count(iwfd); i++) {
		control_upstream_info(iwfd, i, &info);
		evbuffer_add_printf(out, "upstream %s port %u: %s%s%s\n",
		    pcp_addr_ntop(&info.addr, buf, sizeof(buf)), info.port,
		    upstream_state_name(info.state),
		    info.last_error[0] != '\0' ? ", last error: " : "",
		    info.last_error);
	}
}

static void
control_list_json(struct iwfd *iwfd, struct evbuffer *out)
{
	struct json_writer jw;
	const struct mapping *m;
	const struct mapping_peer *peer;
	uint64_t now = iwfd_now_ms(iwfd);
	char a[INET6_ADDRSTRLEN];
	const char *proto;
	size_t i;

	json_init(&jw, out);
	json_array_begin(&jw);
	for (i = 0; (m = table_at(iwfd->table, i)) != NULL; i++) {
		json_object_begin(&jw);
		proto = map_proto_name(m->protocol);
		if (proto != NULL)
			json_kv_string(&jw, "protocol", proto);
		else
			json_kv_uint(&jw, "protocol", m->protocol);
		json_kv_string(&jw, "internal_address",
		    pcp_addr_ntop(&m->internal_addr, a, sizeof(a)));
		json_kv_uint(&jw, "internal_port", m->internal_port);
		json_kv_string(&jw, "external_address",
		    pcp_addr_ntop(&m->outer_addr, a, sizeof(a)));
		json_kv_uint(&jw, "external_port", m->outer_port);
		json_kv_uint(&jw, "local_port", m->ext_port);
		/* RFC 6887 §12: a PEER mapping is one outbound flow; its
		   remote peer tells it from the MAP of the same port */
		if ((peer = mapping_peer(m)) != NULL) {
			json_kv_string(&jw, "remote_address",
			    pcp_addr_ntop(&peer->addr, a, sizeof(a)));
			json_kv_uint(&jw, "remote_port", peer->port);
		}
		json_kv_uint(&jw, "lifetime", mapping_remaining(m, now));
		/* a client lease the proxy keeps alive (RFC 6970 §5.9):
		   seconds left, 4294967295 for one that never ends */
		if (m->lease_end != TABLE_LEASE_NONE)
			json_kv_uint(&jw, "lease",
			    mapping_lease_remaining(m, now));
		json_kv_string(&jw, "origin", map_origin_name(m->origin));
		json_kv_string(&jw, "description",
		    m->description != NULL ? m->description : "");
		json_kv_string(&jw, "state", map_state_name(m->state));
		json_kv_string(&jw, "requester",
		    pcp_addr_ntop(&m->requester, a, sizeof(a)));
		json_object_end(&jw);
	}
	json_array_end(&jw);
	evbuffer_add(out, "\n", 1);
}

/* "addr:port", with brackets for IPv6 (RFC 5952 §6). */
static const char *
control_endpoint(const struct in6_addr *addr, uint16_t port, char *buf,
    size_t len)
{
	char a[INET6_ADDRSTRLEN];

	pcp_addr_ntop(addr, a, sizeof(a));
	snprintf(buf, len, pcp_addr_is_v4(addr) ? "%s:%u" : "[%s]:%u", a, port);
	return buf;
}

static void
control_list_text(struct iwfd *iwfd, struct evbuffer *out)
{
	const struct mapping *m;
	const struct mapping_peer *peer;
	uint64_t now = iwfd_now_ms(iwfd);
	char in[INET6_ADDRSTRLEN + 8], ex[INET6_ADDRSTRLEN + 8];
	char re[INET6_ADDRSTRLEN + 8];
	const char *proto;
	size_t i;

	evbuffer_add_printf(out, "%-5s %-21s %-21s %10s %-7s %s\n", "PROTO",
	    "INTERNAL", "EXTERNAL", "LIFETIME", "ORIGIN", "DESCRIPTION");
	for (i = 0; (m = table_at(iwfd->table, i)) != NULL; i++) {
		proto = map_proto_name(m->protocol);
		evbuffer_add_printf(out, "%-5s %-21s %-21s %10u %-7s ",
		    proto != NULL ? proto : "?",
		    control_endpoint(&m->internal_addr, m->internal_port, in,
		    sizeof(in)),
		    control_endpoint(&m->outer_addr, m->outer_port, ex,
		    sizeof(ex)),
		    mapping_remaining(m, now), map_origin_name(m->origin));
		/* a PEER mapping (RFC 6887 §12) names its remote peer first */
		if ((peer = mapping_peer(m)) != NULL)
			evbuffer_add_printf(out, "peer %s%s",
			    control_endpoint(&peer->addr, peer->port, re,
			    sizeof(re)), m->description != NULL ? " " : "");
		evbuffer_add_printf(out, "%s\n",
		    m->description != NULL ? m->description : "");
	}
}

/* Parse a port number 1..65535 strictly. */
static bool
control_parse_port(const char *s, uint16_t *port)
{
	unsigned long long v;

	if (!util_parse_decimal(s, &v) || v == 0 || v > UINT16_MAX)
		return false;
	*port = (uint16_t)v;
	return true;
}

/* The answer's message into err; -1 for control_parse() to return. */
static int LOG_ATTR_PRINTF(3, 4)
control_parse_error(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* Split a line into at most max words in place. */
static int
control_split(char *line, char **argv, int max)
{
	char *p, *save = NULL;
	int argc = 0;

	for (p = strtok_r(line, " \t", &save); p != NULL;
	    p = strtok_r(NULL, " \t", &save)) {
		if (argc == max)
			return -1;
		argv[argc++] = p;
	}
	return argc;
}

/* delete PROTO EXTPORT */
static int
control_parse_delete(char **argv, int argc, struct control_request *req,
    char *err, size_t errlen)
{
	int proto;

	if (argc != 3 || (proto = map_proto_parse(argv[1])) < 0 ||
	    map_proto_name((uint8_t)proto) == NULL)
		return control_parse_error(err, errlen,
		    "usage: delete tcp|udp EXTPORT");
	req->protocol = (uint8_t)proto;
	if (!control_parse_port(argv[2], &req->port))
		return control_parse_error(err, errlen,
		    "external port must be 1..65535");
	return 0;
}

/*
 * set-upstream [ADDR[:PORT]...]: each as upstream_server writes one, at
 * most CONFIG_MAX_UPSTREAM_SERVERS, none twice (RFC 7291 §3, §4: the DHCP
 * client's list, in order of preference).
 */
static int
control_parse_servers(char **argv, int argc, struct control_request *req,
    char *err, size_t errlen)
{
	struct config_upstream *s;
	size_t j;
	int i;

	if (argc - 1 > CONFIG_MAX_UPSTREAM_SERVERS)
		return control_parse_error(err, errlen,
		    "more than %d upstream servers", CONFIG_MAX_UPSTREAM_SERVERS);
	for (i = 1; i < argc; i++) {
		s = &req->servers[req->n_servers];
		if (!config_parse_server(argv[i], s, err, errlen))
			return -1;
		/* field by field: a struct copy need not keep the padding */
		for (j = 0; j < req->n_servers; j++)
			if (req->servers[j].port == s->port &&
			    IN6_ARE_ADDR_EQUAL(&req->servers[j].addr, &s->addr))
				return control_parse_error(err, errlen,
				    "%s is listed twice", argv[i]);
		req->n_servers++;
	}
	return 0;
}

static enum control_cmd
control_cmd_named(const char *word)
{
	if (strcmp(word, "status") == 0)
		return CONTROL_CMD_STATUS;
	if (strcmp(word, "list") == 0)
		return CONTROL_CMD_LIST;
	if (strcmp(word, "delete") == 0)
		return CONTROL_CMD_DELETE;
	if (strcmp(word, "set-upstream") == 0)
		return CONTROL_CMD_SET_UPSTREAM;
	return CONTROL_CMD_NONE;
}

int
control_parse(const char *line, struct control_request *req, char *err,
    size_t errlen)
{
	char buf[CONTROL_LINE_MAX], *argv[CONTROL_MAX_ARGS];
	enum control_cmd cmd;
	int argc;

	memset(req, 0, sizeof(*req));
	if (errlen > 0)
		err[0] = '\0';
	if (strlen(line) >= sizeof(buf))
		return control_parse_error(err, errlen, "request too long");
	strcpy(buf, line);
	argc = control_split(buf, argv, CONTROL_MAX_ARGS);
	if (argc <= 0)
		return control_parse_error(err, errlen,
		    "empty or overlong request");
	cmd = control_cmd_named(argv[0]);
	if (cmd == CONTROL_CMD_DELETE) {
		req->cmd = cmd;
		return control_parse_delete(argv, argc, req, err, errlen);
	}
	if (cmd == CONTROL_CMD_SET_UPSTREAM) {
		req->cmd = cmd;
		return control_parse_servers(argv, argc, req, err, errlen);
	}
	/* status|list [json|text]: the form is checked before the name */
	req->cmd = cmd;
	req->json = argc == 2 && strcmp(argv[1], "json") == 0;
	if (argc > 2 || (argc == 2 && !req->json &&
	    strcmp(argv[1], "text") != 0))
		return control_parse_error(err, errlen,
		    "usage: status|list [json|text]");
	if (cmd == CONTROL_CMD_NONE)
		return control_parse_error(err, errlen, "unknown command");
	return 0;
}

/*
 * The external port a user sees is the outermost one (the upstream's
 * grant); with no upstream it equals the gateway's local port. An operator
 * command, so a scan is fine; front-end paths use the hashed lookups.
 */
static struct mapping *
control_find_outer(const struct table *t, uint8_t proto, uint16_t port)
{
	struct mapping *m;
	size_t i;

	for (i = 0; (m = table_at(t, i)) != NULL; i++)
		if (m->protocol == proto && m->outer_port == port)
			return m;
	return NULL;
}

static void
control_delete(struct iwfd *iwfd, const struct control_request *req,
    struct evbuffer *out)
{
	struct mapping *m;

	m = control_find_outer(iwfd->table, req->protocol, req->port);
	if (m == NULL) {
		control_reply_error(out, "no such mapping");
		return;
	}
	log_info("control: deleting %s mapping of external port %u",
	    map_proto_name(req->protocol), req->port);
	/* locally and upstream, like a client's delete (INTERFACE.md) */
	proxy_delete(iwfd->proxy, m, iwfd_now_ms(iwfd));
	evbuffer_add_printf(out, "ok\n");
}

/* Only with upstream_server = dhcp: a configured list is the operator's. */
static bool
control_takes_servers(const struct iwfd *iwfd)
{
	return iwfd->conf->upstream_dhcp && iwfd->upstream != NULL;
}

/* The servers the DHCP client handed over (RFC 7291; contrib/dhcp/);
   none: it knows none. */
static void
control_set_upstream(struct iwfd *iwfd, const struct control_request *req,
    struct evbuffer *out)
{
	if (discovery_set(iwfd, req->servers, req->n_servers,
	    iwfd_now_ms(iwfd)) == -1) {
		control_reply_error(out, "the upstream servers could not be "
		    "changed");
		return;
	}
	log_info("control: set-upstream with %zu server(s)", req->n_servers);
	evbuffer_add_printf(out, "ok\n");
	control_status_text(iwfd, out);
}

void
control_dispatch(struct iwfd *iwfd, const char *line, struct evbuffer *out)
{
	struct control_request req;
	char err[CONTROL_ERROR_LEN];
	int rc;

	rc = control_parse(line, &req, err, sizeof(err));
	/* a daemon that takes no servers says so whatever the list */
	if (req.cmd == CONTROL_CMD_SET_UPSTREAM && !control_takes_servers(iwfd)) {
		control_reply_error(out, "set-upstream needs upstream_server = "
		    "dhcp in the configuration");
		return;
	}
	if (rc == -1) {
		control_reply_error(out, err);
		return;
	}
	switch (req.cmd) {
	case CONTROL_CMD_STATUS:
		evbuffer_add_printf(out, "ok\n");
		if (req.json)
			control_status_json(iwfd, out);
		else
			control_status_text(iwfd, out);
		break;
	case CONTROL_CMD_LIST:
		evbuffer_add_printf(out, "ok\n");
		if (req.json)
			control_list_json(iwfd, out);
		else
			control_list_text(iwfd, out);
		break;
	case CONTROL_CMD_DELETE:
		control_delete(iwfd, &req, out);
		break;
	case CONTROL_CMD_SET_UPSTREAM:
		control_set_upstream(iwfd, &req, out);
		break;
	case CONTROL_CMD_NONE:
		control_reply_error(out, "unknown command");
		break;
	}
}

enum control_read
control_read_line(struct evbuffer *in, char **line)
{
	size_t len;

	if ((*line = evbuffer_readln(in, &len, EVBUFFER_EOL_CRLF)) != NULL)
		return CONTROL_READ_LINE;
	/* no end within CONTROL_LINE_MAX bytes: not a request */
	if (evbuffer_get_length(in) >= CONTROL_LINE_MAX)
		return CONTROL_READ_TOO_LONG;
	return CONTROL_READ_MORE;
}

static void
control_conn_close(struct bufferevent *bev)
{
	bufferevent_free(bev);
}

static void
control_conn_written(struct bufferevent *bev, void *arg)
{
	(void)arg;
	if (evbuffer_get_length(bufferevent_get_output(bev)) == 0)
		control_conn_close(bev);
}

static void
control_conn_event(struct bufferevent *bev, short what, void *arg)
{
	(void)arg;
	if (what & (BEV_EVENT_EOF | BEV_EVENT_ERROR | BEV_EVENT_TIMEOUT))
		control_conn_close(bev);
}

static void
control_conn_read(struct bufferevent *bev, void *arg)
{
	struct control *ctl = arg;
	char *line;

	switch (control_read_line(bufferevent_get_input(bev), &line)) {
	case CONTROL_READ_MORE:
		return;
	case CONTROL_READ_TOO_LONG:
		log_warnx("control: request line too long");
		control_conn_close(bev);
		return;
	case CONTROL_READ_LINE:
		break;
	}
	bufferevent_disable(bev, EV_READ);
	control_dispatch(ctl->iwfd, line, bufferevent_get_output(bev));
	free(line);
	/* Keep the event callback: a client that hangs up before reading
	   must still free its connection and reply. */
	bufferevent_setcb(bev, NULL, control_conn_written, control_conn_event,
	    ctl);
	bufferevent_enable(bev, EV_WRITE);
}

static void
control_accept(struct evconnlistener *l, evutil_socket_t fd,
    struct sockaddr *sa, int salen, void *arg)
{
	struct control *ctl = arg;
	struct bufferevent *bev;
	struct timeval tv = { CONTROL_TIMEOUT_SEC, 0 };

	(void)l;
	(void)sa;
	(void)salen;
	bev = bufferevent_socket_new(ctl->iwfd->base, fd, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		log_warnx("control: out of memory");
		close(fd);
		return;
	}
	bufferevent_setcb(bev, control_conn_read, NULL, control_conn_event, ctl);
	bufferevent_set_timeouts(bev, &tv, &tv);
	bufferevent_enable(bev, EV_READ);
}

/* Another daemon answering on the path? Then we must not steal it. */
static bool
control_path_in_use(const struct sockaddr_un *sun)
{
	int fd, rc;

	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1)
		return false;
	rc = connect(fd, (const struct sockaddr *)sun, sizeof(*sun));
	close(fd);
	return rc == 0;
}

struct control *
control_open(struct iwfd *iwfd, const char *path)
{
	struct control *ctl;
	struct sockaddr_un sun;
	struct stat st;
	mode_t old_umask;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		log_warnx("control socket path too long: %s", path);
		return NULL;
	}
	strcpy(sun.sun_path, path);
	if (control_path_in_use(&sun)) {
		log_warnx("control socket %s: another pcp-iwfd is running", path);
		return NULL;
	}
	/* Replace a stale socket, never anything else (a typo in
	   control_socket must not delete a file). */
	if (lstat(path, &st) == 0) {
		if (!S_ISSOCK(st.st_mode)) {
			log_warnx("control socket %s: exists and is not a socket",
			    path);
			return NULL;
		}
		if (unlink(path) == -1) {
			log_warn("control socket %s: unlink", path);
			return NULL;
		}
	}
	if ((ctl = calloc(1, sizeof(*ctl))) == NULL)
		return NULL;
	ctl->iwfd = iwfd;
	strcpy(ctl->path, path);
	/* Mode 0600 from the start: no window where others may connect. */
	old_umask = umask(S_IRWXG | S_IRWXO | S_IXUSR);
	ctl->listener = evconnlistener_new_bind(iwfd->base, control_accept, ctl,
	    LEV_OPT_CLOSE_ON_FREE | LEV_OPT_CLOSE_ON_EXEC, 16,
	    (struct sockaddr *)&sun, sizeof(sun));
	umask(old_umask);
	if (ctl->listener == NULL) {
		log_warn("control socket %s", path);
		free(ctl);
		return NULL;
	}
	if (chmod(path, S_IRUSR | S_IWUSR) == -1)
		log_warn("control socket %s: chmod", path);
	log_debug("control socket listening on %s", path);
	return ctl;
}

void
control_close(struct control *ctl)
{
	if (ctl == NULL)
		return;
	evconnlistener_free(ctl->listener);
	unlink(ctl->path);
	free(ctl);
}
