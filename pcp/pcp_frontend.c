/*
 * pcp_frontend.c - the PCP server front-end's sockets (libevent).
 *
 * One UDP socket per family on port 5351, bound to the wildcard address
 * with IP_PKTINFO / IPV6_RECVPKTINFO: the arrival interface decides whether
 * a datagram is served (RFC 6887 §8.2 first step, S-01: only the LAN;
 * anything else is dropped without a word), and the address it was sent to
 * is the source of the reply (§8.3: clients accept replies only from the
 * address they sent to). pcp_server.c decides; the proxy core answers
 * submitted requests now or later through pcp_frontend_done().
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <arpa/inet.h>
#include <errno.h>
#include <ifaddrs.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "map_err.h"
#include "natpmp_wire.h"
#include "outbox.h"
#include "pcp_frontend.h"
#include "policy.h"
#include "pcp_relay.h"
#include "pcp_server.h"
#include "proxy.h"
#include "ratelimit.h"

/* Larger than PCP_MAX_SIZE: a longer datagram must be seen as longer
   (§8.2: MALFORMED_REQUEST), not silently cut to a valid size. */
#define PCP_FRONTEND_RECV_BUF	2048
/* Datagrams read per readiness callback before yielding to the loop. */
#define PCP_FRONTEND_RECV_BURST	64
#define PCP_FRONTEND_V4		0
#define PCP_FRONTEND_V6		1
#define PCP_FRONTEND_NSOCK	2

/* A submitted request waiting for the core: what the reply needs. */
struct pcp_pending {
	TAILQ_ENTRY(pcp_pending) entry;
	struct pcp_frontend	*fe;
	struct pcp_frontend_peer peer;
	struct map_req		 req;
	size_t			 len;
	uint8_t			 pkt[];		/* the request, as received */
};
TAILQ_HEAD(pcp_pending_list, pcp_pending);

struct pcp_sock {
	int		 fd;
	struct event	*ev;
};

struct pcp_frontend {
	struct event_base	*base;
	struct proxy		*proxy;
	uint32_t		(*epoch)(void *);
	uint64_t		(*now)(void *);
	void			*clock_arg;
	pcp_natpmp_input_fn	 natpmp_input;
	void			*natpmp_arg;
	struct pcp_server_conf	 conf;
	struct pcp_relay	*relay;		/* NULL: no relaying */
	unsigned int		*lan_ifindex;
	size_t			 n_lan;
	size_t			 max_pending;
	struct pcp_sock		 sock[PCP_FRONTEND_NSOCK];
	struct pcp_pending_list	 pending;
	struct event		*announce_ev;
	unsigned int		 announce_sent;
	unsigned int		 announce_gap_ms;
	struct pcp_frontend_stats stats;
	struct outbox		*outbox;	/* NULL: send at once */
	struct ratelimit	*ratelimit;	/* NULL: no limit */
	const struct policy	*policy;	/* NULL: no prefix check */
	bool			 paused;	/* reads stopped (outbox) */
	/* pcp_server_handle()'s output, kept here rather than on the stack
	   (it holds a 1100-octet reply); used by the read path only. */
	struct pcp_server_req	 scratch;
};

/* ---- addresses ---- */

static bool
pcp_frontend_lan(const struct pcp_frontend *fe, unsigned int ifindex)
{
	size_t i;

	for (i = 0; i < fe->n_lan; i++)
		if (fe->lan_ifindex[i] == ifindex)
			return true;
	return false;
}

static void
pcp_frontend_src(const struct sockaddr_storage *ss, struct in6_addr *addr,
    uint16_t *port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		pcp_addr_from_v4(addr, &sin->sin_addr);
		*port = ntohs(sin->sin_port);
	} else {
		*addr = sin6->sin6_addr;
		*port = ntohs(sin6->sin6_port);
	}
}

/* Arrival interface and the address the datagram was sent to. */
static bool
pcp_frontend_pktinfo(struct msghdr *msg, struct pcp_frontend_peer *peer)
{
	struct cmsghdr *cm;
	struct in_pktinfo pi;
	struct in6_pktinfo pi6;

	for (cm = CMSG_FIRSTHDR(msg); cm != NULL; cm = CMSG_NXTHDR(msg, cm)) {
		if (cm->cmsg_level == IPPROTO_IP &&
		    cm->cmsg_type == IP_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(pi))) {
			memcpy(&pi, CMSG_DATA(cm), sizeof(pi));
			peer->ifindex = (unsigned int)pi.ipi_ifindex;
			pcp_addr_from_v4(&peer->dst, &pi.ipi_addr);
			return true;
		}
		if (cm->cmsg_level == IPPROTO_IPV6 &&
		    cm->cmsg_type == IPV6_PKTINFO &&
		    cm->cmsg_len >= CMSG_LEN(sizeof(pi6))) {
			memcpy(&pi6, CMSG_DATA(cm), sizeof(pi6));
			peer->ifindex = pi6.ipi6_ifindex;
			peer->dst = pi6.ipi6_addr;
			return true;
		}
	}
	return false;
}

/* A PCP server is asked by unicast (§8.1); a reply cannot come from a
   group or broadcast address. */
static bool
pcp_frontend_dst_unicast(const struct in6_addr *dst)
{
	struct in_addr v4;

	if (!pcp_addr_is_v4(dst))
		return !IN6_IS_ADDR_MULTICAST(dst);
	pcp_addr_to_v4(dst, &v4);
	return !IN_MULTICAST(ntohl(v4.s_addr)) &&
	    v4.s_addr != htonl(INADDR_BROADCAST);
}

/* ---- sending ---- */

/* The source address and interface of a datagram we send (IP_PKTINFO's
   ipi_spec_dst, IPV6_PKTINFO's ipi6_addr). */
static void
pcp_frontend_pktinfo_put(struct msghdr *msg, int family,
    const struct in6_addr *from, unsigned int ifindex)
{
	struct cmsghdr *cm = CMSG_FIRSTHDR(msg);
	struct in_pktinfo pi;
	struct in6_pktinfo pi6;

	if (family == AF_INET) {
		memset(&pi, 0, sizeof(pi));
		pi.ipi_ifindex = (int)ifindex;
		pcp_addr_to_v4(from, &pi.ipi_spec_dst);
		msg->msg_controllen = CMSG_SPACE(sizeof(pi));
		cm->cmsg_level = IPPROTO_IP;
		cm->cmsg_type = IP_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi));
		memcpy(CMSG_DATA(cm), &pi, sizeof(pi));
	} else {
		memset(&pi6, 0, sizeof(pi6));
		pi6.ipi6_ifindex = ifindex;
		pi6.ipi6_addr = *from;
		msg->msg_controllen = CMSG_SPACE(sizeof(pi6));
		cm->cmsg_level = IPPROTO_IPV6;
		cm->cmsg_type = IPV6_PKTINFO;
		cm->cmsg_len = CMSG_LEN(sizeof(pi6));
		memcpy(CMSG_DATA(cm), &pi6, sizeof(pi6));
	}
}

static bool
pcp_frontend_sendmsg(struct pcp_frontend *fe, const struct sockaddr *to,
    socklen_t to_len, const struct in6_addr *from, unsigned int ifindex,
    const uint8_t *buf, size_t len)
{
	union {
		struct cmsghdr	 align;
		uint8_t		 b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	struct iovec iov;
	struct msghdr msg;
	int fd;

	fd = fe->sock[to->sa_family == AF_INET ? PCP_FRONTEND_V4 :
	    PCP_FRONTEND_V6].fd;
	memset(&ctl, 0, sizeof(ctl));
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = (void *)(uintptr_t)buf;
	iov.iov_len = len;
	msg.msg_name = (void *)(uintptr_t)to;
	msg.msg_namelen = to_len;
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.b;
	msg.msg_controllen = sizeof(ctl.b);
	pcp_frontend_pktinfo_put(&msg, to->sa_family, from, ifindex);
	if (fd == -1 || sendmsg(fd, &msg, 0) == -1) {
		fe->stats.send_errors++;
		log_debug("pcp: send %zu octets: %s", len,
		    fd == -1 ? "no socket for the family" : strerror(errno));
		return false;
	}
	return true;
}

static bool
pcp_frontend_send_now(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *buf, size_t len)
{
	if (!pcp_frontend_sendmsg(fe, (const struct sockaddr *)&peer->src,
	    peer->src_len, &peer->dst, peer->ifindex, buf, len))
		return false;
	fe->stats.replied++;
	return true;
}

bool
pcp_frontend_reply_promises(const uint8_t *buf, size_t len)
{
	uint8_t op;

	if (len < NATPMP_HDR_SIZE)
		return false;
	op = buf[1];
	if (buf[0] == PCP_VERSION)
		/* §7.2: the result code is octet 3 */
		return (op & PCP_R_BIT) != 0 && len >= PCP_HDR_SIZE &&
		    ((op & PCP_OPCODE_MASK) == PCP_OP_MAP ||
		    (op & PCP_OPCODE_MASK) == PCP_OP_PEER) &&
		    buf[3] == PCP_SUCCESS;
	/* RFC 6886 §3.5: opcode 128 + n, result code in octets 2-3 */
	return buf[0] == NATPMP_VERSION &&
	    (op == (NATPMP_OP_RESPONSE | NATPMP_OP_MAP_UDP) ||
	    op == (NATPMP_OP_RESPONSE | NATPMP_OP_MAP_TCP)) &&
	    buf[2] == 0 && buf[3] == NATPMP_RESULT_SUCCESS;
}

/* outbox_release_fn of a held datagram: the peer, then the bytes. */
static void
pcp_frontend_release(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	struct pcp_frontend *fe = arg;
	struct pcp_frontend_peer peer;

	if (fate == OUTBOX_NOT_DURABLE)
		fe->stats.not_durable++;
	if (fate != OUTBOX_SEND || len <= sizeof(peer))
		return;
	memcpy(&peer, data, sizeof(peer));
	(void)pcp_frontend_send_now(fe, &peer, (const uint8_t *)data +
	    sizeof(peer), len - sizeof(peer));
}

bool
pcp_frontend_send(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *buf, size_t len)
{
	uint8_t held[sizeof(*peer) + PCP_MAX_SIZE];

	if (len == 0)
		return false;
	if (fe->outbox == NULL || len > PCP_MAX_SIZE)
		return pcp_frontend_send_now(fe, peer, buf, len);
	/* DESIGN.md "State and durability": out after the turn's commit */
	memcpy(held, peer, sizeof(*peer));
	memcpy(held + sizeof(*peer), buf, len);
	return outbox_hold(fe->outbox, pcp_frontend_release, fe,
	    pcp_frontend_reply_promises(buf, len), held,
	    sizeof(*peer) + len) == 0;
}

/* One copy from one LAN address to its family's all-hosts group. */
static bool
pcp_frontend_mc_one(struct pcp_frontend *fe, const struct sockaddr *addr,
    unsigned int ifindex, unsigned int families, const uint8_t *buf,
    size_t len)
{
	struct sockaddr_in to4;
	struct sockaddr_in6 to6;
	struct in6_addr from;

	if (addr->sa_family == AF_INET && (families & PCP_FRONTEND_MC_V4)) {
		memset(&to4, 0, sizeof(to4));
		to4.sin_family = AF_INET;
		to4.sin_port = htons(PCP_CLIENT_PORT);
		to4.sin_addr.s_addr = htonl(INADDR_ALLHOSTS_GROUP);
		pcp_addr_from_v4(&from,
		    &((const struct sockaddr_in *)(const void *)addr)->sin_addr);
		return pcp_frontend_sendmsg(fe, (struct sockaddr *)&to4,
		    sizeof(to4), &from, ifindex, buf, len);
	}
	if (addr->sa_family == AF_INET6 && (families & PCP_FRONTEND_MC_V6) &&
	    fe->sock[PCP_FRONTEND_V6].fd != -1) {
		memset(&to6, 0, sizeof(to6));
		to6.sin6_family = AF_INET6;
		to6.sin6_port = htons(PCP_CLIENT_PORT);
		/* ff02::1, all nodes on the link (§14.1.3) */
		to6.sin6_addr.s6_addr[0] = 0xff;
		to6.sin6_addr.s6_addr[1] = 0x02;
		to6.sin6_addr.s6_addr[15] = 0x01;
		to6.sin6_scope_id = ifindex;
		from = ((const struct sockaddr_in6 *)(const void *)addr)->
		    sin6_addr;
		return pcp_frontend_sendmsg(fe, (struct sockaddr *)&to6,
		    sizeof(to6), &from, ifindex, buf, len);
	}
	return false;
}

size_t
pcp_frontend_multicast(struct pcp_frontend *fe, unsigned int families,
    const uint8_t *buf, size_t len)
{
	struct ifaddrs *ifap, *ifa;
	unsigned int ifindex;
	size_t sent = 0;

	/* Addresses are read each time: they may change while we run. */
	if (getifaddrs(&ifap) == -1) {
		log_warn("pcp: getifaddrs");
		return 0;
	}
	for (ifa = ifap; ifa != NULL; ifa = ifa->ifa_next) {
		if (ifa->ifa_addr == NULL || ifa->ifa_name == NULL)
			continue;
		if ((ifindex = if_nametoindex(ifa->ifa_name)) == 0 ||
		    !pcp_frontend_lan(fe, ifindex))
			continue;
		if (pcp_frontend_mc_one(fe, ifa->ifa_addr, ifindex, families,
		    buf, len))
			sent++;
	}
	freeifaddrs(ifap);
	return sent;
}

/* ---- the unsolicited ANNOUNCE (§14.1.3) ---- */

static void
pcp_frontend_announce_once(struct pcp_frontend *fe)
{
	uint8_t buf[PCP_HDR_SIZE];
	size_t n, sent;

	/* "with an appropriate Epoch Time value in each" */
	n = pcp_server_announce(fe->epoch(fe->clock_arg), buf, sizeof(buf));
	sent = pcp_frontend_multicast(fe, PCP_FRONTEND_MC_V4 |
	    PCP_FRONTEND_MC_V6, buf, n);
	fe->announce_sent++;
	log_debug("pcp: ANNOUNCE %u/%u, %zu copies", fe->announce_sent,
	    PCP_ANNOUNCE_COUNT, sent);
}

static void
pcp_frontend_announce_arm(struct pcp_frontend *fe)
{
	struct timeval tv;

	if (fe->announce_sent >= PCP_ANNOUNCE_COUNT)
		return;
	tv.tv_sec = fe->announce_gap_ms / 1000;
	tv.tv_usec = (suseconds_t)(fe->announce_gap_ms % 1000) * 1000;
	evtimer_add(fe->announce_ev, &tv);
}

static void
pcp_frontend_announce_timer(evutil_socket_t fd, short what, void *arg)
{
	struct pcp_frontend *fe = arg;

	(void)fd;
	(void)what;
	pcp_frontend_announce_once(fe);
	/* the first gap >= 250 ms, each later one at least double */
	fe->announce_gap_ms *= 2;
	pcp_frontend_announce_arm(fe);
}

void
pcp_frontend_announce(struct pcp_frontend *fe)
{
	evtimer_del(fe->announce_ev);
	fe->announce_sent = 0;
	fe->announce_gap_ms = PCP_ANNOUNCE_FIRST_GAP_MS;
	pcp_frontend_announce_once(fe);
	pcp_frontend_announce_arm(fe);
}

/* ---- requests and the core's answers ---- */

static void
pcp_frontend_answer(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len,
    const struct map_req *req, const struct map_result *res)
{
	uint8_t buf[PCP_MAX_SIZE];
	size_t n;

	n = pcp_server_reply(pkt, len, req, res, fe->epoch(fe->clock_arg),
	    buf, sizeof(buf));
	if (n == 0) {
		log_warnx("pcp: cannot build the reply to a submitted request");
		return;
	}
	(void)pcp_frontend_send(fe, peer, buf, n);
}

static void
pcp_frontend_pending_free(struct pcp_frontend *fe, struct pcp_pending *p)
{
	TAILQ_REMOVE(&fe->pending, p, entry);
	fe->stats.pending--;
	free(p);
}

/* proxy_done_fn: the core's later answer. */
static void
pcp_frontend_done(void *arg, const struct map_req *req,
    const struct map_result *res)
{
	struct pcp_pending *p = arg;

	(void)req;
	pcp_frontend_answer(p->fe, &p->peer, p->pkt, p->len, &p->req, res);
	pcp_frontend_pending_free(p->fe, p);
}

/* §8.2 step 5: an overloaded server MAY answer NO_RESOURCES (short). */
static void
pcp_frontend_overload(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len,
    const struct map_req *req)
{
	struct map_result res;

	memset(&res, 0, sizeof(res));
	res.err = MAP_ERR_NO_RESOURCES;
	res.lifetime = map_err_pcp_lifetime(MAP_ERR_NO_RESOURCES);
	res.upstream_result = -1;
	fe->stats.overload++;
	pcp_frontend_answer(fe, peer, pkt, len, req, &res);
}

/*
 * A request the core has not answered yet. A copy of one that waits (the
 * client retransmitting, RFC 6887 §8.1.1) is dropped before parsing
 * (pcp_frontend_input): the answer to the first goes to the same socket
 * and answers the copy as well. The same request from another socket of
 * the host is a request of its own; the core joins it to the transaction
 * under way (DESIGN.md "Threads and the loop").
 */
static void
pcp_frontend_submit(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len,
    const struct map_req *req)
{
	struct pcp_pending *p;
	struct map_result res;

	if (fe->stats.pending >= fe->max_pending ||
	    (p = malloc(sizeof(*p) + len)) == NULL) {
		pcp_frontend_overload(fe, peer, pkt, len, req);
		return;
	}
	p->fe = fe;
	p->peer = *peer;
	p->req = *req;
	p->len = len;
	memcpy(p->pkt, pkt, len);
	TAILQ_INSERT_TAIL(&fe->pending, p, entry);
	fe->stats.pending++;
	fe->stats.submitted++;
	memset(&res, 0, sizeof(res));
	if (proxy_submit(fe->proxy, &p->req, fe->now(fe->clock_arg),
	    pcp_frontend_done, p, &res)) {
		pcp_frontend_answer(fe, &p->peer, p->pkt, p->len, &p->req,
		    &res);
		pcp_frontend_pending_free(fe, p);
	}
}

/* pcp_relay_send_fn: a relayed reply goes out like our own. */
static bool
pcp_frontend_relay_send(void *arg, const struct pcp_frontend_peer *peer,
    const uint8_t *buf, size_t len)
{
	return pcp_frontend_send(arg, peer, buf, len);
}

/* RFC 7648 §3.4.2: an unknown opcode, sent upstream by the relay. When it
   cannot go, our own error over the request (pcp_relay_start() says
   which: NO_RESOURCES, NETWORK_FAILURE). */
static void
pcp_frontend_relay(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len)
{
	uint8_t buf[PCP_MAX_SIZE];
	enum pcp_result rc;

	if ((rc = pcp_relay_start(fe->relay, peer, pkt, len)) == PCP_SUCCESS) {
		fe->stats.relayed++;
		return;
	}
	fe->stats.relay_refused++;
	(void)pcp_frontend_send(fe, peer, buf, pcp_server_refuse(pkt, len, rc,
	    fe->epoch(fe->clock_arg), buf, sizeof(buf)));
}

/* Is pkt a copy of a request from the same socket that waits for the
   core? O(pending), and nothing at all while none waits. */
static bool
pcp_frontend_waiting(const struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len)
{
	const struct pcp_pending *p;

	TAILQ_FOREACH(p, &fe->pending, entry)
		if (p->len == len && p->peer.src_len == peer->src_len &&
		    memcmp(&p->peer.src, &peer->src, peer->src_len) == 0 &&
		    memcmp(p->pkt, pkt, len) == 0)
			return true;
	return false;
}

/*
 * Issue 8: one token of the host's rate limit per PCP request, taken
 * before parsing so that a flood of junk costs little. The interface
 * check (S-01) came first: nothing from outside the LAN reaches here, so
 * nobody outside can spend a LAN host's tokens. Over the rate the
 * request is dropped without an answer (an answer would amplify the
 * flood; the client retransmits, RFC 6887 §8.1.1). A retransmitted copy
 * of a request still waiting costs nothing and is dropped too: the
 * waiting one's answer answers it.
 */
static bool
pcp_frontend_charge(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const struct in6_addr *src,
    const uint8_t *pkt, size_t len)
{
	if (pcp_frontend_waiting(fe, peer, pkt, len)) {
		fe->stats.joined++;
		return false;
	}
	if (!ratelimit_allow(fe->ratelimit, src, fe->now(fe->clock_arg))) {
		fe->stats.rate_limited++;
		return false;
	}
	return true;
}

static void
pcp_frontend_input(struct pcp_frontend *fe,
    const struct pcp_frontend_peer *peer, const uint8_t *pkt, size_t len)
{
	struct pcp_server_req *out = &fe->scratch;
	struct in6_addr src;
	uint16_t src_port;

	pcp_frontend_src(&peer->src, &src, &src_port);
	/* a forged or foreign source gets nothing, not even an error */
	if (fe->policy != NULL && !policy_is_lan(fe->policy, &src)) {
		fe->stats.not_lan_src++;
		return;
	}
	if (!pcp_server_is_natpmp(&fe->conf, pkt, len) &&
	    !pcp_frontend_charge(fe, peer, &src, pkt, len))
		return;
	switch (pcp_server_handle(&fe->conf, pkt, len, &src, src_port,
	    fe->epoch(fe->clock_arg), out)) {
	case PCP_SERVER_DROP:
		fe->stats.dropped++;
		break;
	case PCP_SERVER_REPLY:
		(void)pcp_frontend_send(fe, peer, out->reply, out->reply_len);
		break;
	case PCP_SERVER_NATPMP:
		fe->stats.natpmp++;
		fe->natpmp_input(fe->natpmp_arg, fe, peer, pkt, len);
		break;
	case PCP_SERVER_SUBMIT:
		pcp_frontend_submit(fe, peer, pkt, len, &out->req);
		break;
	case PCP_SERVER_RELAY:
		pcp_frontend_relay(fe, peer, pkt, len);
		break;
	}
}

/* Read one datagram; false when there is nothing more to read. */
static bool
pcp_frontend_recv_one(struct pcp_frontend *fe, int fd)
{
	union {
		struct cmsghdr	 align;
		uint8_t		 b[CMSG_SPACE(sizeof(struct in6_pktinfo))];
	} ctl;
	uint8_t buf[PCP_FRONTEND_RECV_BUF];
	struct pcp_frontend_peer peer;
	struct iovec iov;
	struct msghdr msg;
	ssize_t n;
	size_t len;

	memset(&peer, 0, sizeof(peer));
	memset(&msg, 0, sizeof(msg));
	iov.iov_base = buf;
	iov.iov_len = sizeof(buf);
	msg.msg_name = &peer.src;
	msg.msg_namelen = sizeof(peer.src);
	msg.msg_iov = &iov;
	msg.msg_iovlen = 1;
	msg.msg_control = ctl.b;
	msg.msg_controllen = sizeof(ctl.b);
	if ((n = recvmsg(fd, &msg, 0)) == -1) {
		if (errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR)
			log_warn("pcp: recvmsg");
		return false;
	}
	fe->stats.received++;
	peer.src_len = msg.msg_namelen;
	/* cut: it was longer than anything valid, and stays so */
	len = (msg.msg_flags & MSG_TRUNC) ? sizeof(buf) : (size_t)n;
	/* §8.2, S-01: only requests that arrived on a LAN interface; the
	   others (WAN above all) are ignored without a reply. */
	if (!pcp_frontend_pktinfo(&msg, &peer) ||
	    !pcp_frontend_lan(fe, peer.ifindex)) {
		fe->stats.not_lan++;
		return true;
	}
	if (!pcp_frontend_dst_unicast(&peer.dst)) {
		fe->stats.dropped++;
		return true;
	}
	pcp_frontend_input(fe, &peer, buf, len);
	return true;
}

/* outbox_release_fn: the turn ended, read again. */
static void
pcp_frontend_resume(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	struct pcp_frontend *fe = arg;
	int i;

	(void)data;
	(void)len;
	if (fate == OUTBOX_DISCARD || !fe->paused)
		return;
	fe->paused = false;
	for (i = 0; i < PCP_FRONTEND_NSOCK; i++)
		if (fe->sock[i].ev != NULL)
			(void)event_add(fe->sock[i].ev, NULL);
}

/* The outbox is full of this turn's replies: stop reading until it is
   released (the datagrams wait in the socket buffer), so the turn ends. */
static void
pcp_frontend_pause(struct pcp_frontend *fe)
{
	int i;

	for (i = 0; i < PCP_FRONTEND_NSOCK; i++)
		if (fe->sock[i].ev != NULL)
			(void)event_del(fe->sock[i].ev);
	fe->paused = true;
	fe->stats.paused++;
	(void)outbox_hold(fe->outbox, pcp_frontend_resume, fe, false, NULL,
	    0);
}

static void
pcp_frontend_read(evutil_socket_t fd, short what, void *arg)
{
	struct pcp_frontend *fe = arg;
	int i;

	(void)what;
	for (i = 0; i < PCP_FRONTEND_RECV_BURST; i++) {
		if (fe->outbox != NULL && outbox_busy(fe->outbox)) {
			pcp_frontend_pause(fe);
			break;
		}
		if (!pcp_frontend_recv_one(fe, fd))
			break;
	}
}

/* ---- open and close ---- */

static int
pcp_frontend_socket(int family, uint16_t port)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;
	int fd, on = 1, rc;

	fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd == -1)
		return -1;
	if (family == AF_INET) {
		memset(&sin, 0, sizeof(sin));
		sin.sin_family = AF_INET;
		sin.sin_port = htons(port);
		sin.sin_addr.s_addr = htonl(INADDR_ANY);
		rc = setsockopt(fd, IPPROTO_IP, IP_PKTINFO, &on, sizeof(on));
		if (rc == 0)
			rc = bind(fd, (struct sockaddr *)&sin, sizeof(sin));
	} else {
		memset(&sin6, 0, sizeof(sin6));
		sin6.sin6_family = AF_INET6;
		sin6.sin6_port = htons(port);
		sin6.sin6_addr = in6addr_any;
		/* IPv4 has its own socket */
		rc = setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof(on));
		if (rc == 0)
			rc = setsockopt(fd, IPPROTO_IPV6, IPV6_RECVPKTINFO,
			    &on, sizeof(on));
		if (rc == 0)
			rc = bind(fd, (struct sockaddr *)&sin6, sizeof(sin6));
	}
	if (rc == -1) {
		rc = errno;
		close(fd);
		errno = rc;
		return -1;
	}
	return fd;
}

static bool
pcp_frontend_open_sock(struct pcp_frontend *fe, int slot, int family,
    uint16_t port)
{
	struct pcp_sock *s = &fe->sock[slot];

	if ((s->fd = pcp_frontend_socket(family, port)) == -1)
		return false;
	s->ev = event_new(fe->base, s->fd, EV_READ | EV_PERSIST,
	    pcp_frontend_read, fe);
	if (s->ev == NULL || event_add(s->ev, NULL) == -1) {
		log_warnx("pcp: cannot watch the socket");
		return false;
	}
	return true;
}

static bool
pcp_frontend_lan_resolve(struct pcp_frontend *fe,
    const struct pcp_frontend_params *p)
{
	size_t i;

	if (p->n_lan == 0 || p->lan_ifnames == NULL) {
		log_warnx("pcp: no LAN interface");
		return false;
	}
	if ((fe->lan_ifindex = calloc(p->n_lan, sizeof(unsigned int))) ==
	    NULL) {
		log_warn("pcp: calloc");
		return false;
	}
	fe->n_lan = p->n_lan;
	for (i = 0; i < p->n_lan; i++) {
		fe->lan_ifindex[i] = if_nametoindex(p->lan_ifnames[i]);
		if (fe->lan_ifindex[i] == 0) {
			log_warnx("pcp: LAN interface %s does not exist",
			    p->lan_ifnames[i]);
			return false;
		}
	}
	return true;
}

/* RFC 7648 §3.4.2 (P-16, P-17): the relay, when configured and there is
   an upstream server to relay to. */
static bool
pcp_frontend_relay_open(struct pcp_frontend *fe,
    const struct pcp_frontend_params *p)
{
	struct pcp_relay_params rp;
	char a[INET6_ADDRSTRLEN];

	if (!p->relay_unknown || pcp_addr_is_any(&p->relay_server) ||
	    IN6_IS_ADDR_UNSPECIFIED(&p->relay_server))
		return true;
	memset(&rp, 0, sizeof(rp));
	rp.server = p->relay_server;
	rp.server_port = p->relay_port;
	rp.wan_interface = p->wan_interface;
	rp.epoch = p->epoch;
	rp.epoch_arg = p->clock_arg;
	rp.send = pcp_frontend_relay_send;
	rp.send_arg = fe;
	rp.max_active = p->relay_max_active;
	rp.timeout_ms = p->relay_timeout_ms;
	if ((fe->relay = pcp_relay_new(fe->base, &rp)) == NULL)
		return false;
	fe->conf.relay_unknown = true;
	log_info("pcp: relaying unknown opcodes to %s",
	    pcp_addr_ntop(&p->relay_server, a, sizeof(a)));
	return true;
}

static bool
pcp_frontend_init(struct pcp_frontend *fe, struct event_base *base,
    const struct pcp_frontend_params *p)
{
	uint16_t port = p->port != 0 ? p->port : PCP_SERVER_PORT;

	fe->base = base;
	fe->proxy = p->proxy;
	fe->epoch = p->epoch;
	fe->now = p->now;
	fe->clock_arg = p->clock_arg;
	fe->natpmp_input = p->natpmp_input;
	fe->natpmp_arg = p->natpmp_arg;
	fe->outbox = p->outbox;
	fe->ratelimit = p->ratelimit;
	fe->policy = p->policy;
	fe->conf.third_party_allowed = p->third_party_allowed;
	fe->conf.policy = p->policy;
	fe->conf.natpmp = p->natpmp_input != NULL;
	fe->conf.pcp_off = p->pcp_off && fe->conf.natpmp;
	fe->max_pending = p->max_pending != 0 ? p->max_pending :
	    PCP_FRONTEND_MAX_PENDING;
	if (base == NULL || p->epoch == NULL || p->now == NULL) {
		log_warnx("pcp: front-end without a loop or a clock");
		return false;
	}
	if (!pcp_frontend_lan_resolve(fe, p) || !pcp_frontend_relay_open(fe, p))
		return false;
	if ((fe->announce_ev = evtimer_new(base, pcp_frontend_announce_timer,
	    fe)) == NULL) {
		log_warnx("pcp: evtimer_new");
		return false;
	}
	if (!pcp_frontend_open_sock(fe, PCP_FRONTEND_V4, AF_INET, port)) {
		log_warn("pcp: UDP %u (IPv4)", port);
		return false;
	}
	/* IPv6 is served when the host has it; a host without IPv6 (or
	   with it disabled) still serves IPv4. */
	if (!pcp_frontend_open_sock(fe, PCP_FRONTEND_V6, AF_INET6, port)) {
		log_warn("pcp: UDP %u (IPv6), serving IPv4 only", port);
		if (fe->sock[PCP_FRONTEND_V6].ev != NULL)
			event_free(fe->sock[PCP_FRONTEND_V6].ev);
		fe->sock[PCP_FRONTEND_V6].ev = NULL;
		if (fe->sock[PCP_FRONTEND_V6].fd != -1)
			close(fe->sock[PCP_FRONTEND_V6].fd);
		fe->sock[PCP_FRONTEND_V6].fd = -1;
	}
	return true;
}

struct pcp_frontend *
pcp_frontend_open(struct event_base *base,
    const struct pcp_frontend_params *p)
{
	struct pcp_frontend *fe;
	int i;

	if ((fe = calloc(1, sizeof(*fe))) == NULL) {
		log_warn("pcp: calloc");
		return NULL;
	}
	TAILQ_INIT(&fe->pending);
	for (i = 0; i < PCP_FRONTEND_NSOCK; i++)
		fe->sock[i].fd = -1;
	if (p == NULL || !pcp_frontend_init(fe, base, p)) {
		pcp_frontend_close(fe);
		return NULL;
	}
	return fe;
}

void
pcp_frontend_close(struct pcp_frontend *fe)
{
	struct pcp_pending *p;
	int i;

	if (fe == NULL)
		return;
	/* The core must not call back into freed records. */
	while ((p = TAILQ_FIRST(&fe->pending)) != NULL) {
		if (fe->proxy != NULL)
			proxy_cancel(fe->proxy, p);
		pcp_frontend_pending_free(fe, p);
	}
	/* its transactions end unanswered: nothing is sent while closing */
	pcp_relay_free(fe->relay);
	/* held replies point at fe */
	outbox_forget(fe->outbox, fe);
	for (i = 0; i < PCP_FRONTEND_NSOCK; i++) {
		if (fe->sock[i].ev != NULL)
			event_free(fe->sock[i].ev);
		if (fe->sock[i].fd != -1)
			close(fe->sock[i].fd);
	}
	if (fe->announce_ev != NULL)
		event_free(fe->announce_ev);
	free(fe->lan_ifindex);
	free(fe);
}

const struct pcp_frontend_stats *
pcp_frontend_stats(const struct pcp_frontend *fe)
{
	return &fe->stats;
}

const struct pcp_relay_stats *
pcp_frontend_relay_stats(const struct pcp_frontend *fe)
{
	return fe->relay != NULL ? pcp_relay_stats(fe->relay) : NULL;
}
