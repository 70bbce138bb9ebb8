/*
 * pcp_relay.c - RFC 7648 §3.4.2 relaying of unknown opcodes: one connected
 * UDP socket per transaction, the Client IP field rewritten on the way up,
 * our Epoch Time on the way down (pcp_relay.h says what and why).
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "pcp_relay.h"
#include "pcp_server.h"

/* RFC 6887 §7.1: the request header's PCP Client IP field. */
#define PCP_REQ_CLIENT_IP_OFF	8
/* §7.2: the response header's Epoch Time and its 96 reserved bits. */
#define PCP_RESP_EPOCH_OFF	8
#define PCP_RESP_RESERVED_OFF	12
#define PCP_RESP_RESERVED_SIZE	12
#define PCP_ADDR_SIZE		16
/* The last 96 bits of a 128-bit address (§7.2). */
#define PCP_ADDR_TAIL_OFF	(PCP_ADDR_SIZE - PCP_RESP_RESERVED_SIZE)
/* Larger than PCP_MAX_SIZE: a longer reply must be seen as longer. */
#define PCP_RELAY_RECV_BUF	2048
#define PCP_RELAY_MS_PER_S	1000
#define PCP_RELAY_US_PER_MS	1000

struct pcp_relay_txn {
	TAILQ_ENTRY(pcp_relay_txn) entry;
	struct pcp_relay	*relay;
	int			 fd;
	struct event		*read_ev;
	struct event		*timer_ev;
	struct pcp_frontend_peer client;
	struct in6_addr		 client_ip;	/* the request's own field */
	struct in6_addr		 our_ip;	/* what it became upstream */
	uint8_t			 opcode;
	size_t			 len;
	uint8_t			 pkt[];		/* the request, as received */
};
TAILQ_HEAD(pcp_relay_txn_list, pcp_relay_txn);

struct pcp_relay {
	struct event_base	*base;
	struct sockaddr_storage	 server;
	socklen_t		 server_len;
	char			 ifname[IFNAMSIZ];
	bool			 bind_warned;
	uint32_t		(*epoch)(void *);
	void			*epoch_arg;
	pcp_relay_send_fn	 send;
	void			*send_arg;
	size_t			 max_active;
	struct timeval		 timeout;
	struct pcp_relay_txn_list txns;
	struct pcp_relay_stats	 stats;
};

/* ---- the packet rewrites (no I/O) ---- */

/*
 * A datagram on the transaction's socket is its reply if it is a PCP
 * response (§8.3: R set, 24..1100 octets, a multiple of 4) to the opcode
 * that was sent, in version 2 or the UNSUPP_VERSION of another (§9).
 * The socket is connected: only the server can have sent it.
 */
static bool
pcp_relay_is_reply(const struct pcp_relay_txn *t, const uint8_t *buf,
    size_t len)
{
	if (len < PCP_HDR_SIZE || len > PCP_MAX_SIZE || len % 4 != 0)
		return false;
	if ((buf[1] & PCP_R_BIT) == 0 ||
	    (buf[1] & PCP_OPCODE_MASK) != t->opcode)
		return false;
	return buf[0] == PCP_VERSION || buf[3] == PCP_UNSUPP_VERSION;
}

/*
 * The reply for the client, in out (cap >= PCP_MAX_SIZE). Returns its
 * length, 0 when nothing can be built.
 */
static size_t
pcp_relay_reply_fix(const struct pcp_relay_txn *t, const uint8_t *buf,
    size_t len, uint32_t epoch, uint8_t *out, size_t cap)
{
	uint8_t *reserved;

	/*
	 * spec/pcp.md §2.4: UNSUPP_VERSION (the client's version 2 is fine
	 * here) and ADDRESS_MISMATCH (a non-PCP NAT above the gateway)
	 * describe the relay's leg, not the client's request: the client
	 * gets NETWORK_FAILURE over its own request, as for MAP.
	 */
	if (buf[3] == PCP_UNSUPP_VERSION || buf[3] == PCP_ADDRESS_MISMATCH)
		return pcp_server_refuse(t->pkt, t->len, PCP_NETWORK_FAILURE,
		    epoch, out, cap);
	if (len > cap)
		return 0;
	memcpy(out, buf, len);
	/* RFC 7648 §3 (P-11): our Epoch Time, never the upstream's */
	out[PCP_RESP_EPOCH_OFF] = (uint8_t)(epoch >> 24);
	out[PCP_RESP_EPOCH_OFF + 1] = (uint8_t)(epoch >> 16);
	out[PCP_RESP_EPOCH_OFF + 2] = (uint8_t)(epoch >> 8);
	out[PCP_RESP_EPOCH_OFF + 3] = (uint8_t)epoch;
	/* RFC 6887 §7.2: a server that could not parse the request copies
	   the last 96 bits of the Client IP field here; it saw ours, the
	   client must see its own. */
	reserved = out + PCP_RESP_RESERVED_OFF;
	if (memcmp(reserved, t->our_ip.s6_addr + PCP_ADDR_TAIL_OFF,
	    PCP_RESP_RESERVED_SIZE) == 0)
		memcpy(reserved, t->client_ip.s6_addr + PCP_ADDR_TAIL_OFF,
		    PCP_RESP_RESERVED_SIZE);
	return len;
}

/* ---- transactions ---- */

static void
pcp_relay_txn_free(struct pcp_relay_txn *t)
{
	struct pcp_relay *r = t->relay;

	TAILQ_REMOVE(&r->txns, t, entry);
	r->stats.active--;
	if (t->read_ev != NULL)
		event_free(t->read_ev);
	if (t->timer_ev != NULL)
		event_free(t->timer_ev);
	if (t->fd != -1)
		(void)close(t->fd);
	free(t);
}

static void
pcp_relay_deliver(struct pcp_relay_txn *t, const uint8_t *buf, size_t len)
{
	struct pcp_relay *r = t->relay;

	if (len == 0) {
		log_warnx("pcp relay: cannot build the reply");
		return;
	}
	if (r->send(r->send_arg, &t->client, buf, len))
		r->stats.replied++;
}

/* The transaction's socket is readable: its reply, or an ICMP error. */
static void
pcp_relay_read(evutil_socket_t fd, short what, void *arg)
{
	struct pcp_relay_txn *t = arg;
	struct pcp_relay *r = t->relay;
	uint8_t buf[PCP_RELAY_RECV_BUF], out[PCP_MAX_SIZE];
	ssize_t n;

	(void)what;
	if ((n = recv(fd, buf, sizeof(buf), MSG_TRUNC)) == -1) {
		if (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)
			return;
		/* RFC 7488 §3: an ICMP error is a hard one; nobody answers
		   there, and the client may as well know now */
		log_debug("pcp relay: opcode %u: %s", t->opcode,
		    strerror(errno));
		r->stats.hard_errors++;
		pcp_relay_deliver(t, out, pcp_server_refuse(t->pkt, t->len,
		    PCP_NETWORK_FAILURE, r->epoch(r->epoch_arg), out,
		    sizeof(out)));
		pcp_relay_txn_free(t);
		return;
	}
	if (!pcp_relay_is_reply(t, buf, (size_t)n)) {
		r->stats.ignored++;
		return;		/* keep waiting until the timer */
	}
	log_debug("pcp relay: opcode %u: upstream result %s", t->opcode,
	    pcp_result_name(buf[3]));
	pcp_relay_deliver(t, out, pcp_relay_reply_fix(t, buf, (size_t)n,
	    r->epoch(r->epoch_arg), out, sizeof(out)));
	pcp_relay_txn_free(t);
}

static void
pcp_relay_timeout(evutil_socket_t fd, short what, void *arg)
{
	struct pcp_relay_txn *t = arg;

	(void)fd;
	(void)what;
	/* the client retransmits (RFC 6887 §8.1.1), each copy relayed anew */
	log_debug("pcp relay: opcode %u: no reply from the server", t->opcode);
	t->relay->stats.timeouts++;
	pcp_relay_txn_free(t);
}

static void
pcp_relay_bind_device(struct pcp_relay *r, int fd)
{
	if (r->ifname[0] == '\0')
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, r->ifname,
	    (socklen_t)strlen(r->ifname)) == -1 && !r->bind_warned) {
		/* once: every transaction would say the same */
		log_warn("pcp relay: SO_BINDTODEVICE %s, following the "
		    "routing table", r->ifname);
		r->bind_warned = true;
	}
}

/* 128-bit form of the socket's own address (IPv4-mapped for IPv4, §5). */
static bool
pcp_relay_local_addr(int fd, struct in6_addr *a)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1)
		return false;
	if (ss.ss_family == AF_INET)
		pcp_addr_from_v4(a, &((struct sockaddr_in *)&ss)->sin_addr);
	else if (ss.ss_family == AF_INET6)
		*a = ((struct sockaddr_in6 *)&ss)->sin6_addr;
	else
		return false;
	return true;
}

/*
 * The transaction's socket, connected to the server (a random ephemeral
 * source port, RFC 6887 §8.1), and the address the server will see.
 * PCP_SUCCESS or the code for the client.
 */
static enum pcp_result
pcp_relay_connect(struct pcp_relay *r, struct pcp_relay_txn *t)
{
	t->fd = socket(r->server.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (t->fd == -1) {
		log_warn("pcp relay: socket");
		return PCP_NO_RESOURCES;
	}
	pcp_relay_bind_device(r, t->fd);
	if (connect(t->fd, (struct sockaddr *)&r->server,
	    r->server_len) == -1 || !pcp_relay_local_addr(t->fd, &t->our_ip)) {
		log_debug("pcp relay: connect: %s", strerror(errno));
		return PCP_NETWORK_FAILURE;
	}
	return PCP_SUCCESS;
}

static enum pcp_result
pcp_relay_send_up(struct pcp_relay *r, struct pcp_relay_txn *t)
{
	uint8_t up[PCP_MAX_SIZE];
	enum pcp_result rc;

	if ((rc = pcp_relay_connect(r, t)) != PCP_SUCCESS)
		return rc;
	t->read_ev = event_new(r->base, t->fd, EV_READ | EV_PERSIST,
	    pcp_relay_read, t);
	t->timer_ev = evtimer_new(r->base, pcp_relay_timeout, t);
	if (t->read_ev == NULL || t->timer_ev == NULL ||
	    event_add(t->read_ev, NULL) == -1 ||
	    evtimer_add(t->timer_ev, &r->timeout) == -1) {
		log_warnx("pcp relay: cannot arm the transaction's events");
		return PCP_NO_RESOURCES;
	}
	/* spec/pcp.md §2.3 [derived]: the server checks the Client IP field
	   against the source it sees (RFC 6887 §8.2), which is ours */
	memcpy(up, t->pkt, t->len);
	memcpy(up + PCP_REQ_CLIENT_IP_OFF, t->our_ip.s6_addr, PCP_ADDR_SIZE);
	if (send(t->fd, up, t->len, 0) != (ssize_t)t->len) {
		log_debug("pcp relay: send: %s", strerror(errno));
		return PCP_NETWORK_FAILURE;
	}
	return PCP_SUCCESS;
}

enum pcp_result
pcp_relay_start(struct pcp_relay *r, const struct pcp_frontend_peer *client,
    const uint8_t *pkt, size_t len)
{
	struct pcp_relay_txn *t;
	enum pcp_result rc;

	if (len < PCP_HDR_SIZE || len > PCP_MAX_SIZE)
		return PCP_MALFORMED_REQUEST;	/* not a checked request */
	if (r->stats.active >= r->max_active) {
		r->stats.busy++;
		return PCP_NO_RESOURCES;
	}
	if ((t = calloc(1, sizeof(*t) + len)) == NULL) {
		log_warn("pcp relay: calloc");
		return PCP_NO_RESOURCES;
	}
	t->relay = r;
	t->fd = -1;
	t->client = *client;
	t->opcode = pkt[1] & PCP_OPCODE_MASK;
	memcpy(t->client_ip.s6_addr, pkt + PCP_REQ_CLIENT_IP_OFF,
	    PCP_ADDR_SIZE);
	t->len = len;
	memcpy(t->pkt, pkt, len);
	TAILQ_INSERT_TAIL(&r->txns, t, entry);
	r->stats.active++;
	if ((rc = pcp_relay_send_up(r, t)) != PCP_SUCCESS) {
		r->stats.failed++;
		pcp_relay_txn_free(t);
		return rc;
	}
	r->stats.started++;
	log_debug("pcp relay: opcode %u, %zu octets, sent upstream", t->opcode,
	    len);
	return PCP_SUCCESS;
}

/* ---- the relay ---- */

static bool
pcp_relay_server(struct pcp_relay *r, const struct pcp_relay_params *p)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)&r->server;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&r->server;
	uint16_t port = p->server_port != 0 ? p->server_port :
	    PCP_SERVER_PORT;

	if (pcp_addr_is_any(&p->server) ||
	    IN6_IS_ADDR_UNSPECIFIED(&p->server))
		return false;
	if (pcp_addr_is_v4(&p->server)) {
		sin->sin_family = AF_INET;
		pcp_addr_to_v4(&p->server, &sin->sin_addr);
		sin->sin_port = htons(port);
		r->server_len = sizeof(*sin);
		return true;
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = p->server;
	sin6->sin6_port = htons(port);
	/* a link-local server is on the WAN link */
	if (IN6_IS_ADDR_LINKLOCAL(&p->server) && r->ifname[0] != '\0')
		sin6->sin6_scope_id = if_nametoindex(r->ifname);
	r->server_len = sizeof(*sin6);
	return true;
}

struct pcp_relay *
pcp_relay_new(struct event_base *base, const struct pcp_relay_params *p)
{
	struct pcp_relay *r;
	unsigned int ms;

	if (base == NULL || p == NULL || p->epoch == NULL || p->send == NULL) {
		log_warnx("pcp relay: no loop, clock or output");
		return NULL;
	}
	if ((r = calloc(1, sizeof(*r))) == NULL) {
		log_warn("pcp relay: calloc");
		return NULL;
	}
	TAILQ_INIT(&r->txns);
	r->base = base;
	if (p->wan_interface != NULL)
		(void)snprintf(r->ifname, sizeof(r->ifname), "%s",
		    p->wan_interface);
	if (!pcp_relay_server(r, p)) {
		log_warnx("pcp relay: no server address");
		free(r);
		return NULL;
	}
	r->epoch = p->epoch;
	r->epoch_arg = p->epoch_arg;
	r->send = p->send;
	r->send_arg = p->send_arg;
	r->max_active = p->max_active != 0 ? p->max_active :
	    PCP_RELAY_MAX_ACTIVE;
	ms = p->timeout_ms != 0 ? p->timeout_ms : PCP_RELAY_TIMEOUT_MS;
	r->timeout.tv_sec = ms / PCP_RELAY_MS_PER_S;
	r->timeout.tv_usec = (suseconds_t)(ms % PCP_RELAY_MS_PER_S) *
	    PCP_RELAY_US_PER_MS;
	return r;
}

void
pcp_relay_free(struct pcp_relay *r)
{
	struct pcp_relay_txn *t;

	if (r == NULL)
		return;
	while ((t = TAILQ_FIRST(&r->txns)) != NULL)
		pcp_relay_txn_free(t);
	free(r);
}

const struct pcp_relay_stats *
pcp_relay_stats(const struct pcp_relay *r)
{
	return &r->stats;
}
