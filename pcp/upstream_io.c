/*
 * upstream_io.c - sockets and the timer for the upstream PCP engine.
 *
 * Each server gets a UDP socket bound to port 0 (a random source port, RFC
 * 6887 §8.1, C-02) and connect()ed to the server: only its datagrams arrive
 * (§8.3: the source must be the server's), ICMP errors come back as
 * ECONNREFUSED and the like on recv() and become upstream_hard_error() (RFC
 * 7488 §3), and getsockname() gives the Client IP field (§8.1, C-01).
 */
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <errno.h>
#include <net/if.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "log.h"
#include "pcp_wire.h"
#include "upstream.h"
#include "upstream_io.h"

/* Room past the PCP maximum, so an oversized datagram shows as one. */
#define UPSTREAM_IO_BUFSIZE	(PCP_MAX_SIZE + 4)
#define UPSTREAM_IO_MS_PER_S	1000u
#define UPSTREAM_IO_US_PER_MS	1000u

enum { UPSTREAM_IO_V4 = 0, UPSTREAM_IO_V6, UPSTREAM_IO_FAMILIES };

struct upstream_io;

struct upstream_io_sock {
	struct upstream_io	*io;
	unsigned int		 index;		/* server, or family */
	int			 fd;
	struct event		*ev;
	uint16_t		 port;		/* our bound port, kept */
	/* the server this socket is for (upstream_io_sync matches by it) */
	bool			 named;
	struct in6_addr		 server;
	uint16_t		 server_port;
};

struct upstream_io {
	struct event_base	*base;
	struct upstream		*u;
	uint64_t		(*now)(void *);
	void			*now_arg;
	char			 ifname[IF_NAMESIZE];
	unsigned int		 ifindex;
	size_t			 n;
	struct upstream_io_sock	 srv[UPSTREAM_MAX_SERVERS];
	struct upstream_io_sock	 announce[UPSTREAM_IO_FAMILIES];
	struct event		*timer;
	uint64_t		 next_retry;	/* UINT64_MAX: none needed */
};

static uint64_t
upstream_io_now(const struct upstream_io *io)
{
	return io->now(io->now_arg);
}

/* The server's address as a sockaddr; false if the port is unknown. */
static socklen_t
upstream_io_sockaddr(const struct upstream_io *io, const struct in6_addr *a,
    uint16_t port, struct sockaddr_storage *ss)
{
	struct sockaddr_in *sin = (struct sockaddr_in *)ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)ss;

	memset(ss, 0, sizeof(*ss));
	if (pcp_addr_is_v4(a)) {
		sin->sin_family = AF_INET;
		pcp_addr_to_v4(a, &sin->sin_addr);
		sin->sin_port = htons(port);
		return sizeof(*sin);
	}
	sin6->sin6_family = AF_INET6;
	sin6->sin6_addr = *a;
	sin6->sin6_port = htons(port);
	if (IN6_IS_ADDR_LINKLOCAL(a))
		sin6->sin6_scope_id = io->ifindex;
	return sizeof(*sin6);
}

/* 128-bit form of a socket address (IPv4-mapped for IPv4, §5). */
static bool
upstream_io_addr(const struct sockaddr_storage *ss, struct in6_addr *a,
    uint16_t *port)
{
	const struct sockaddr_in *sin = (const struct sockaddr_in *)ss;
	const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)ss;

	if (ss->ss_family == AF_INET) {
		pcp_addr_from_v4(a, &sin->sin_addr);
		*port = ntohs(sin->sin_port);
		return true;
	}
	if (ss->ss_family == AF_INET6) {
		*a = sin6->sin6_addr;
		*port = ntohs(sin6->sin6_port);
		return true;
	}
	return false;
}

/* Tie fd to the WAN device when one is named. A fresh socket needs no
   capability for it since Linux 5.7 (only re-binding a bound one needs
   CAP_NET_RAW), so this works after the privilege drop; where it fails the
   routing table decides, which is normally the WAN anyway. */
static void
upstream_io_bind_device(const struct upstream_io *io, int fd)
{
	if (io->ifname[0] == '\0')
		return;
	if (setsockopt(fd, SOL_SOCKET, SO_BINDTODEVICE, io->ifname,
	    (socklen_t)strlen(io->ifname)) == -1)
		log_warn("upstream: SO_BINDTODEVICE %s", io->ifname);
}

static void
upstream_io_sock_close(struct upstream_io_sock *s)
{
	if (s->ev != NULL)
		event_free(s->ev);
	s->ev = NULL;
	if (s->fd != -1)
		(void)close(s->fd);
	s->fd = -1;
}

static void	upstream_io_rearm(struct upstream_io *);

/* Datagrams from server s->index (the socket is connected to it). */
static void
upstream_io_server_cb(int fd, short what, void *arg)
{
	struct upstream_io_sock *s = arg;
	struct upstream_io *io = s->io;
	uint8_t buf[UPSTREAM_IO_BUFSIZE];
	ssize_t n;

	(void)what;
	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_TRUNC);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				/* an ICMP error for our last send */
				upstream_hard_error(io->u, s->index, errno,
				    upstream_io_now(io));
			break;
		}
		if ((size_t)n > PCP_MAX_SIZE) {
			log_debug("upstream server %u: %zd-octet datagram "
			    "dropped", s->index, n);
			continue;
		}
		upstream_input(io->u, s->index, buf, (size_t)n,
		    upstream_io_now(io));
	}
	upstream_io_rearm(io);
}

/* Open, bind and connect server i's socket; the Client IP follows. */
static bool
upstream_io_connect(struct upstream_io *io, unsigned int i)
{
	struct upstream_io_sock *s = &io->srv[i];
	struct upstream_server_info info;
	struct sockaddr_storage ss, local;
	struct in6_addr local_addr;
	socklen_t slen, llen;
	uint16_t local_port;
	int fd, error;

	upstream_io_sock_close(s);
	upstream_set_local(io->u, i, NULL);
	upstream_server_info(io->u, i, &info);
	s->named = true;
	s->server = info.addr;
	s->server_port = info.port;
	slen = upstream_io_sockaddr(io, &info.addr, info.port, &ss);
	if ((fd = socket(ss.ss_family, SOCK_DGRAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1)
		goto fail;
	s->fd = fd;
	upstream_io_bind_device(io, fd);
	/* keep the source port across reconnects: Mapping Updates are sent
	   to it (spec/pcp.md §2.4); the first time, port 0 = random (C-02) */
	memset(&local, 0, sizeof(local));
	local.ss_family = ss.ss_family;
	llen = slen;
	if (s->port != 0) {
		((struct sockaddr_in *)&local)->sin_port = htons(s->port);
		if (ss.ss_family == AF_INET6)
			((struct sockaddr_in6 *)&local)->sin6_port =
			    htons(s->port);
		if (bind(fd, (struct sockaddr *)&local, llen) == -1) {
			log_warn("upstream server %u: port %u", i, s->port);
			memset(&local, 0, sizeof(local));
			local.ss_family = ss.ss_family;
		}
	}
	if (connect(fd, (struct sockaddr *)&ss, slen) == -1)
		goto fail;
	llen = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &llen) == -1 ||
	    !upstream_io_addr(&local, &local_addr, &local_port))
		goto fail;
	if ((s->ev = event_new(io->base, fd, EV_READ | EV_PERSIST,
	    upstream_io_server_cb, s)) == NULL || event_add(s->ev, NULL) == -1) {
		errno = ENOMEM;
		goto fail;
	}
	s->port = local_port;
	upstream_set_local(io->u, i, &local_addr);
	{
		char a[INET6_ADDRSTRLEN], l[INET6_ADDRSTRLEN];

		log_debug("upstream server %u: %s port %u from %s port %u", i,
		    pcp_addr_ntop(&info.addr, a, sizeof(a)), info.port,
		    pcp_addr_ntop(&local_addr, l, sizeof(l)), local_port);
	}
	return true;
fail:
	error = errno;
	log_warnx("upstream server %u: socket: %s", i, strerror(error));
	upstream_io_sock_close(s);
	upstream_hard_error(io->u, i, error, upstream_io_now(io));
	return false;
}

/* Connect whatever is not connected; schedule the next retry if needed. */
static void
upstream_io_connect_missing(struct upstream_io *io)
{
	unsigned int i;
	bool missing = false;

	for (i = 0; i < io->n; i++)
		if (io->srv[i].fd == -1 && !upstream_io_connect(io, i))
			missing = true;
	io->next_retry = missing ? upstream_io_now(io) + UPSTREAM_IO_RETRY_MS :
	    UINT64_MAX;
}

/* §14.1.3: an ANNOUNCE (or any response) multicast or unicast to 5350 from
   one of our servers' address and port; others are dropped. */
static void
upstream_io_announce_cb(int fd, short what, void *arg)
{
	struct upstream_io_sock *s = arg;
	struct upstream_io *io = s->io;
	struct upstream_server_info info;
	struct sockaddr_storage from;
	struct in6_addr addr;
	uint8_t buf[UPSTREAM_IO_BUFSIZE];
	socklen_t flen;
	ssize_t n;
	uint16_t port;
	unsigned int i;

	(void)what;
	for (;;) {
		flen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC,
		    (struct sockaddr *)&from, &flen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			break;
		}
		if ((size_t)n > PCP_MAX_SIZE ||
		    !upstream_io_addr(&from, &addr, &port))
			continue;
		for (i = 0; i < io->n; i++) {
			upstream_server_info(io->u, i, &info);
			if (info.port == port &&
			    IN6_ARE_ADDR_EQUAL(&info.addr, &addr)) {
				upstream_input(io->u, i, buf, (size_t)n,
				    upstream_io_now(io));
				break;
			}
		}
	}
	upstream_io_rearm(io);
}

static bool
upstream_io_join(const struct upstream_io *io, int fd, int family)
{
	struct ip_mreqn mr4;
	struct ipv6_mreq mr6;

	if (family == AF_INET) {
		/* §14.1.3: 224.0.0.1 */
		memset(&mr4, 0, sizeof(mr4));
		mr4.imr_multiaddr.s_addr = htonl(INADDR_ALLHOSTS_GROUP);
		mr4.imr_ifindex = (int)io->ifindex;
		return setsockopt(fd, IPPROTO_IP, IP_ADD_MEMBERSHIP, &mr4,
		    sizeof(mr4)) == 0;
	}
	/* §14.1.3: ff02::1 */
	memset(&mr6, 0, sizeof(mr6));
	(void)inet_pton(AF_INET6, "ff02::1", &mr6.ipv6mr_multiaddr);
	mr6.ipv6mr_interface = io->ifindex;
	return setsockopt(fd, IPPROTO_IPV6, IPV6_JOIN_GROUP, &mr6,
	    sizeof(mr6)) == 0;
}

/* The listener on port 5350 for one family (§14.1.1: SO_REUSEPORT, other
   PCP clients on this host may listen too). Failure only costs the
   announcements: logged, not fatal. */
static void
upstream_io_announce_open(struct upstream_io *io, unsigned int fam)
{
	struct upstream_io_sock *s = &io->announce[fam];
	int family = fam == UPSTREAM_IO_V4 ? AF_INET : AF_INET6;
	struct sockaddr_storage ss;
	struct in6_addr any6 = IN6ADDR_ANY_INIT;
	struct in_addr any4 = { htonl(INADDR_ANY) };
	struct in6_addr any;
	socklen_t slen;
	int one = 1;

	if (family == AF_INET)
		pcp_addr_from_v4(&any, &any4);
	else
		any = any6;
	slen = upstream_io_sockaddr(io, &any, PCP_CLIENT_PORT, &ss);
	if ((s->fd = socket(family, SOCK_DGRAM | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    0)) == -1)
		goto fail;
	if (setsockopt(s->fd, SOL_SOCKET, SO_REUSEADDR, &one,
	    sizeof(one)) == -1 || setsockopt(s->fd, SOL_SOCKET, SO_REUSEPORT,
	    &one, sizeof(one)) == -1)
		goto fail;
	if (family == AF_INET6 && setsockopt(s->fd, IPPROTO_IPV6, IPV6_V6ONLY,
	    &one, sizeof(one)) == -1)
		goto fail;
	upstream_io_bind_device(io, s->fd);
	if (bind(s->fd, (struct sockaddr *)&ss, slen) == -1)
		goto fail;
	if (io->ifindex != 0 && !upstream_io_join(io, s->fd, family))
		log_warn("upstream: joining the all-hosts group on %s",
		    io->ifname);
	if ((s->ev = event_new(io->base, s->fd, EV_READ | EV_PERSIST,
	    upstream_io_announce_cb, s)) == NULL ||
	    event_add(s->ev, NULL) == -1)
		goto fail;
	return;
fail:
	log_warn("upstream: ANNOUNCE listener on port %u", PCP_CLIENT_PORT);
	upstream_io_sock_close(s);
}

static void
upstream_io_timer_cb(int fd, short what, void *arg)
{
	struct upstream_io *io = arg;
	uint64_t now = upstream_io_now(io);

	(void)fd;
	(void)what;
	if (now >= io->next_retry)
		upstream_io_connect_missing(io);
	upstream_tick(io->u, now);
	upstream_io_rearm(io);
}

/* One timer at the earlier of the engine's deadline and the retry. */
static void
upstream_io_rearm(struct upstream_io *io)
{
	uint64_t now = upstream_io_now(io), at, ms;
	struct timeval tv;

	at = upstream_next_deadline(io->u);
	if (io->next_retry < at)
		at = io->next_retry;
	if (at == UINT64_MAX) {
		(void)evtimer_del(io->timer);
		return;
	}
	ms = at > now ? at - now : 0;
	tv.tv_sec = (time_t)(ms / UPSTREAM_IO_MS_PER_S);
	tv.tv_usec = (suseconds_t)(ms % UPSTREAM_IO_MS_PER_S *
	    UPSTREAM_IO_US_PER_MS);
	if (evtimer_add(io->timer, &tv) == -1)
		log_warnx("upstream: timer");
}

void
upstream_io_kick(struct upstream_io *io)
{
	if (io != NULL)
		upstream_io_rearm(io);
}

int
upstream_io_send(void *arg, unsigned int server, const uint8_t *pkt,
    size_t len)
{
	struct upstream_io *io = arg;
	ssize_t n;

	if (io == NULL || server >= io->n || io->srv[server].fd == -1)
		return ENOTCONN;
	do {
		n = send(io->srv[server].fd, pkt, len, 0);
	} while (n == -1 && errno == EINTR);
	if (n != -1)
		return 0;
	/* a full queue loses this copy only; §8.1.1 sends another */
	if (errno == EAGAIN || errno == EWOULDBLOCK || errno == ENOBUFS) {
		log_debug("upstream server %u: send: %s", server,
		    strerror(errno));
		return 0;
	}
	return errno;
}

void
upstream_io_refresh(struct upstream_io *io)
{
	unsigned int i;

	for (i = 0; i < io->n; i++)
		upstream_io_sock_close(&io->srv[i]);
	upstream_io_connect_missing(io);
	upstream_io_rearm(io);
}

static void
upstream_io_sock_init(struct upstream_io *io, struct upstream_io_sock *s,
    unsigned int index)
{
	memset(s, 0, sizeof(*s));
	s->io = io;
	s->index = index;
	s->fd = -1;
}

/* The WAN device the sockets are tied to; false (logged, the sockets
   then follow the routing table) when it does not exist. */
static bool
upstream_io_ifname(struct upstream_io *io, const char *wan_interface)
{
	io->ifname[0] = '\0';
	io->ifindex = 0;
	if (wan_interface == NULL || wan_interface[0] == '\0')
		return true;
	if (strlen(wan_interface) >= sizeof(io->ifname) ||
	    (io->ifindex = if_nametoindex(wan_interface)) == 0) {
		io->ifindex = 0;
		log_warnx("upstream: no interface %s: the sockets toward the "
		    "servers follow the routing table", wan_interface);
		return false;
	}
	memcpy(io->ifname, wan_interface, strlen(wan_interface) + 1);
	return true;
}

/* An ANNOUNCE listener for every family a server has (§14.1.3). */
static void
upstream_io_announce_sync(struct upstream_io *io)
{
	struct upstream_server_info info;
	bool fam[UPSTREAM_IO_FAMILIES] = { false, false };
	unsigned int i;

	for (i = 0; i < io->n; i++) {
		upstream_server_info(io->u, i, &info);
		fam[pcp_addr_is_v4(&info.addr) ? UPSTREAM_IO_V4 :
		    UPSTREAM_IO_V6] = true;
	}
	for (i = 0; i < UPSTREAM_IO_FAMILIES; i++)
		if (fam[i] && io->announce[i].fd == -1)
			upstream_io_announce_open(io, i);
}

/* The old socket slot (among io->n) for server (addr, port), not taken. */
static unsigned int
upstream_io_find(const struct upstream_io_sock *old, size_t n,
    const bool *taken, const struct upstream_server_info *info)
{
	unsigned int i;

	for (i = 0; i < n; i++)
		if (!taken[i] && old[i].named &&
		    old[i].server_port == info->port &&
		    IN6_ARE_ADDR_EQUAL(&old[i].server, &info->addr))
			return i;
	return UPSTREAM_NO_SERVER;
}

/* s moved into another slot: its event's argument is the slot. */
static void
upstream_io_sock_moved(struct upstream_io *io, struct upstream_io_sock *s,
    unsigned int index)
{
	s->io = io;
	s->index = index;
	if (s->fd == -1)
		return;
	if (s->ev != NULL)
		event_free(s->ev);
	if ((s->ev = event_new(io->base, s->fd, EV_READ | EV_PERSIST,
	    upstream_io_server_cb, s)) == NULL || event_add(s->ev, NULL) == -1) {
		log_warnx("upstream server %u: cannot watch the socket: "
		    "reconnecting", index);
		upstream_io_sock_close(s);	/* connect_missing: same port */
	}
}

void
upstream_io_sync(struct upstream_io *io)
{
	struct upstream_io_sock old[UPSTREAM_MAX_SERVERS];
	struct upstream_server_info info;
	bool taken[UPSTREAM_MAX_SERVERS] = { false };
	size_t n = upstream_server_count(io->u);
	unsigned int i, from;

	memcpy(old, io->srv, sizeof(old));
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++) {
		upstream_io_sock_init(io, &io->srv[i], i);
		if (i >= n)
			continue;
		upstream_server_info(io->u, i, &info);
		from = upstream_io_find(old, io->n, taken, &info);
		if (from == UPSTREAM_NO_SERVER)
			continue;
		taken[from] = true;
		io->srv[i] = old[from];
		upstream_io_sock_moved(io, &io->srv[i], i);
	}
	/* the sockets of servers that are gone */
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		if (!taken[i])
			upstream_io_sock_close(&old[i]);
	io->n = n;
	upstream_io_connect_missing(io);
	upstream_io_announce_sync(io);
	upstream_io_rearm(io);
}

bool
upstream_io_set_interface(struct upstream_io *io, const char *wan_interface)
{
	unsigned int i;
	bool found;

	found = upstream_io_ifname(io, wan_interface);
	/* the listeners join the group on the new device */
	for (i = 0; i < UPSTREAM_IO_FAMILIES; i++)
		upstream_io_sock_close(&io->announce[i]);
	upstream_io_announce_sync(io);
	/* and every server socket is bound to it, keeping its port */
	upstream_io_refresh(io);
	return found;
}

struct upstream_io *
upstream_io_open(struct event_base *base, struct upstream *u,
    const char *wan_interface, uint64_t (*now)(void *), void *now_arg)
{
	struct upstream_io *io;
	unsigned int i;

	if ((io = calloc(1, sizeof(*io))) == NULL)
		return NULL;
	io->base = base;
	io->u = u;
	io->now = now;
	io->now_arg = now_arg;
	io->n = upstream_server_count(u);
	io->next_retry = UINT64_MAX;
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		upstream_io_sock_init(io, &io->srv[i], i);
	for (i = 0; i < UPSTREAM_IO_FAMILIES; i++)
		upstream_io_sock_init(io, &io->announce[i], i);
	(void)upstream_io_ifname(io, wan_interface);
	if ((io->timer = evtimer_new(base, upstream_io_timer_cb, io)) == NULL) {
		free(io);
		return NULL;
	}
	upstream_set_transport(u, upstream_io_send, io);
	upstream_io_connect_missing(io);
	upstream_io_announce_sync(io);
	upstream_io_rearm(io);
	return io;
}

void
upstream_io_close(struct upstream_io *io)
{
	unsigned int i;

	if (io == NULL)
		return;
	upstream_set_transport(io->u, NULL, NULL);
	for (i = 0; i < UPSTREAM_MAX_SERVERS; i++)
		upstream_io_sock_close(&io->srv[i]);
	for (i = 0; i < UPSTREAM_IO_FAMILIES; i++)
		upstream_io_sock_close(&io->announce[i]);
	event_free(io->timer);
	free(io);
}
