/*
 * wanwatch.c - the WAN interface's IPv4 address, followed through rtnetlink
 * (rtnetlink(7), RTMGRP_IPV4_IFADDR), debounced, reported as changes.
 *
 * A netlink message is only a hint that something happened: what counts is
 * the address netif_ipv4_address() reads afterwards, the same the daemon
 * read at start-up. So a lost message (ENOBUFS, NLMSG_OVERRUN) costs
 * nothing but a re-read, and the parse never decides alone.
 */
#include <sys/socket.h>

#include <linux/netlink.h>
#include <linux/rtnetlink.h>

#include <errno.h>
#include <net/if.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "clock.h"
#include "log.h"
#include "netif.h"
#include "pcp_wire.h"
#include "wanwatch.h"

#define WANWATCH_MS_PER_S	1000u
#define WANWATCH_US_PER_MS	1000u
#define WANWATCH_IPV4_LEN	4
/* events taken from one datagram; more only arm the same deadline */
#define WANWATCH_MAX_EVENTS	64

/* ---- the parse (pure) --------------------------------------------------- */

/* An aligned length, in size_t so that no 32-bit length can wrap. */
static size_t
wanwatch_align(size_t len, size_t to)
{
	return (len + to - 1) & ~(to - 1);
}

/*
 * The attributes of one address message (rtnetlink(7): struct ifaddrmsg,
 * then rtattrs). False when an attribute runs past the message. *addr is
 * IFA_LOCAL, else IFA_ADDRESS; *found false when neither is an IPv4
 * address.
 */
static bool
wanwatch_parse_attrs(const uint8_t *p, size_t len, struct in_addr *addr,
    bool *found)
{
	struct rtattr rta;
	struct in_addr local, address;
	bool has_local = false, has_address = false;
	size_t off = 0, step, payload;

	memset(&local, 0, sizeof(local));
	memset(&address, 0, sizeof(address));
	while (len - off >= sizeof(rta)) {
		memcpy(&rta, p + off, sizeof(rta));
		if (rta.rta_len < sizeof(rta) || rta.rta_len > len - off)
			return false;
		payload = rta.rta_len - RTA_LENGTH(0);
		if (payload == WANWATCH_IPV4_LEN && rta.rta_type == IFA_LOCAL) {
			memcpy(&local, p + off + RTA_LENGTH(0), sizeof(local));
			has_local = true;
		} else if (payload == WANWATCH_IPV4_LEN &&
		    rta.rta_type == IFA_ADDRESS) {
			memcpy(&address, p + off + RTA_LENGTH(0),
			    sizeof(address));
			has_address = true;
		}
		step = wanwatch_align(rta.rta_len, RTA_ALIGNTO);
		off = step > len - off ? len : off + step;
	}
	/* a point-to-point link's IFA_ADDRESS is the peer (rtnetlink(7)) */
	*found = has_local || has_address;
	if (*found)
		*addr = has_local ? local : address;
	return off == len;
}

/* One RTM_NEWADDR / RTM_DELADDR message of len bytes (header included).
   False when it is cut short. */
static bool
wanwatch_parse_addr(const uint8_t *msg, size_t len, uint16_t type,
    struct wanwatch_event *ev, size_t max, size_t *n)
{
	struct ifaddrmsg ifa;
	struct in_addr a;
	size_t attrs = NLMSG_HDRLEN + NLMSG_ALIGN(sizeof(ifa));
	bool found, whole;

	if (len < NLMSG_HDRLEN + sizeof(ifa))
		return false;
	memcpy(&ifa, msg + NLMSG_HDRLEN, sizeof(ifa));
	if (ifa.ifa_family != AF_INET)
		return true;
	if (len < attrs)
		return false;
	whole = wanwatch_parse_attrs(msg + attrs, len - attrs, &a, &found);
	if (!whole || !found)
		return whole;
	if (*n < max) {
		memset(&ev[*n], 0, sizeof(ev[*n]));
		ev[*n].ifindex = ifa.ifa_index;
		pcp_addr_from_v4(&ev[*n].addr, &a);
		ev[*n].kind = type == RTM_NEWADDR ? WANWATCH_ADDR_NEW :
		    WANWATCH_ADDR_DEL;
	}
	(*n)++;
	return true;
}

enum wanwatch_parse_status
wanwatch_parse(const uint8_t *buf, size_t len, struct wanwatch_event *ev,
    size_t max, size_t *n)
{
	enum wanwatch_parse_status status = WANWATCH_PARSE_OK;
	struct nlmsghdr nh;
	size_t off = 0, step;

	*n = 0;
	while (len - off >= sizeof(nh)) {
		memcpy(&nh, buf + off, sizeof(nh));
		if (nh.nlmsg_len < sizeof(nh) || nh.nlmsg_len > len - off)
			return WANWATCH_PARSE_TRUNCATED;
		switch (nh.nlmsg_type) {
		case NLMSG_ERROR:
		case NLMSG_OVERRUN:
			/* we ask nothing, so no ACK is expected: the kernel
			   is telling of trouble */
			status = WANWATCH_PARSE_ERROR;
			break;
		case RTM_NEWADDR:
		case RTM_DELADDR:
			if (!wanwatch_parse_addr(buf + off, nh.nlmsg_len,
			    nh.nlmsg_type, ev, max, n))
				return WANWATCH_PARSE_TRUNCATED;
			break;
		default:
			break;		/* NLMSG_DONE, NLMSG_NOOP, others */
		}
		step = wanwatch_align(nh.nlmsg_len, NLMSG_ALIGNTO);
		off = step > len - off ? len : off + step;
	}
	if (off != len)
		return WANWATCH_PARSE_TRUNCATED;
	return status;
}

/* ---- the debounce (pure) ------------------------------------------------ */

void
wanwatch_state_init(struct wanwatch_state *s, const struct in6_addr *addr)
{
	memset(s, 0, sizeof(*s));
	s->due = UINT64_MAX;
	if (addr != NULL) {
		s->known = s->present = true;
		s->addr = *addr;
	}
}

void
wanwatch_state_note(struct wanwatch_state *s, enum wanwatch_kind kind,
    uint64_t now)
{
	/* The last event decides: DHCP clients and pppd delete the old
	   address, then add the new one; the addition then shortens the
	   wait the deletion began. */
	s->due = now + (kind == WANWATCH_ADDR_DEL ? WANWATCH_DEBOUNCE_MS :
	    WANWATCH_SETTLE_MS);
}

uint64_t
wanwatch_state_deadline(const struct wanwatch_state *s)
{
	return s->due;
}

bool
wanwatch_state_settle(struct wanwatch_state *s, const struct in6_addr *cur,
    struct wanwatch_change *chg)
{
	s->due = UINT64_MAX;
	memset(chg, 0, sizeof(*chg));
	chg->had = s->known;
	chg->old = s->addr;
	if (cur == NULL) {
		if (!s->present)
			return false;
		s->present = false;
		return true;
	}
	if (s->present && IN6_ARE_ADDR_EQUAL(&s->addr, cur))
		return false;
	chg->has = true;
	chg->addr = *cur;
	s->known = s->present = true;
	s->addr = *cur;
	return true;
}

/* ---- the daemon's watcher ---------------------------------------------- */

struct wanwatch {
	struct event_base	*base;
	char			 ifname[IF_NAMESIZE];
	unsigned int		 ifindex;	/* last seen; 0: none */
	int			 fd;
	struct event		*ev_read;
	struct event		*ev_timer;
	struct wanwatch_state	 state;
	wanwatch_fn		 fn;
	void			*arg;
	bool			 recv_failing;	/* logged once */
};

static void
wanwatch_arm(struct wanwatch *w)
{
	uint64_t due = wanwatch_state_deadline(&w->state), now, ms;
	struct timeval tv;

	if (due == UINT64_MAX) {
		(void)evtimer_del(w->ev_timer);
		return;
	}
	now = clock_now_ms();
	ms = due > now ? due - now : 0;
	tv.tv_sec = (time_t)(ms / WANWATCH_MS_PER_S);
	tv.tv_usec = (suseconds_t)(ms % WANWATCH_MS_PER_S *
	    WANWATCH_US_PER_MS);
	if (evtimer_add(w->ev_timer, &tv) == -1)
		log_warnx("wanwatch: timer");
}

static void
wanwatch_timer_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wanwatch *w = arg;
	struct wanwatch_change chg;
	struct in6_addr cur;
	bool has;

	(void)fd;
	(void)what;
	has = netif_ipv4_address(w->ifname, &cur);
	if (wanwatch_state_settle(&w->state, has ? &cur : NULL, &chg))
		w->fn(w->arg, &chg);
	wanwatch_arm(w);
}

/* The events of one datagram: those of the WAN interface - by its index
   now, or the one it had (a PPP interface is deleted with its address and
   comes back with another index) - arm the deadline. */
static void
wanwatch_input(struct wanwatch *w, const uint8_t *buf, size_t len)
{
	struct wanwatch_event ev[WANWATCH_MAX_EVENTS];
	enum wanwatch_parse_status st;
	unsigned int now_index = if_nametoindex(w->ifname);
	uint64_t now = clock_now_ms();
	size_t i, n;
	char a[INET6_ADDRSTRLEN];

	st = wanwatch_parse(buf, len, ev, WANWATCH_MAX_EVENTS, &n);
	if (st != WANWATCH_PARSE_OK || n > WANWATCH_MAX_EVENTS) {
		log_debug("wanwatch: %s message, reading %s's address again",
		    st == WANWATCH_PARSE_ERROR ? "an error" : "a cut or long",
		    w->ifname);
		wanwatch_state_note(&w->state, WANWATCH_ADDR_NEW, now);
	}
	for (i = 0; i < n && i < WANWATCH_MAX_EVENTS; i++) {
		if (ev[i].ifindex == 0 || (ev[i].ifindex != now_index &&
		    ev[i].ifindex != w->ifindex))
			continue;
		log_debug("wanwatch: %s %s %s", w->ifname,
		    ev[i].kind == WANWATCH_ADDR_NEW ? "gained" : "lost",
		    pcp_addr_ntop(&ev[i].addr, a, sizeof(a)));
		wanwatch_state_note(&w->state, ev[i].kind, now);
	}
	if (now_index != 0)
		w->ifindex = now_index;
}

static void
wanwatch_read_cb(evutil_socket_t fd, short what, void *arg)
{
	struct wanwatch *w = arg;
	uint8_t buf[WANWATCH_BUFSIZE];
	struct sockaddr_nl from;
	socklen_t flen;
	ssize_t n;

	(void)what;
	for (;;) {
		flen = sizeof(from);
		n = recvfrom(fd, buf, sizeof(buf), MSG_TRUNC,
		    (struct sockaddr *)&from, &flen);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == ENOBUFS) {
				/* the kernel dropped messages for us: what
				   they said is read from the interface */
				wanwatch_state_note(&w->state,
				    WANWATCH_ADDR_NEW, clock_now_ms());
				continue;
			}
			if (errno != EAGAIN && errno != EWOULDBLOCK &&
			    !w->recv_failing) {
				log_warn("wanwatch: recv");
				w->recv_failing = true;
			}
			break;
		}
		w->recv_failing = false;
		/* only the kernel speaks for the interfaces (a process may
		   send to our port id) */
		if (flen != sizeof(from) || from.nl_family != AF_NETLINK ||
		    from.nl_pid != 0)
			continue;
		if ((size_t)n > sizeof(buf)) {
			wanwatch_state_note(&w->state, WANWATCH_ADDR_NEW,
			    clock_now_ms());
			continue;
		}
		wanwatch_input(w, buf, (size_t)n);
	}
	wanwatch_arm(w);
}

static int
wanwatch_socket(void)
{
	struct sockaddr_nl sa;
	int fd;

	if ((fd = socket(AF_NETLINK, SOCK_RAW | SOCK_NONBLOCK | SOCK_CLOEXEC,
	    NETLINK_ROUTE)) == -1)
		return -1;
	memset(&sa, 0, sizeof(sa));
	sa.nl_family = AF_NETLINK;
	sa.nl_groups = RTMGRP_IPV4_IFADDR;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == -1) {
		(void)close(fd);
		return -1;
	}
	return fd;
}

struct wanwatch *
wanwatch_open(struct event_base *base, const char *ifname, wanwatch_fn fn,
    void *arg)
{
	struct wanwatch *w;
	struct in6_addr cur;

	if (strlen(ifname) >= IF_NAMESIZE) {
		log_warnx("wanwatch: interface name %s too long", ifname);
		return NULL;
	}
	if ((w = calloc(1, sizeof(*w))) == NULL) {
		log_warn("wanwatch");
		return NULL;
	}
	w->base = base;
	w->fn = fn;
	w->arg = arg;
	memcpy(w->ifname, ifname, strlen(ifname) + 1);
	w->ifindex = if_nametoindex(ifname);
	if ((w->fd = wanwatch_socket()) == -1) {
		log_warn("wanwatch: rtnetlink socket");
		free(w);
		return NULL;
	}
	/* subscribed first, then read: no change can fall in between */
	wanwatch_state_init(&w->state, netif_ipv4_address(ifname, &cur) ?
	    &cur : NULL);
	if ((w->ev_read = event_new(base, w->fd, EV_READ | EV_PERSIST,
	    wanwatch_read_cb, w)) == NULL ||
	    (w->ev_timer = evtimer_new(base, wanwatch_timer_cb, w)) == NULL ||
	    event_add(w->ev_read, NULL) == -1) {
		log_warnx("wanwatch: out of memory");
		wanwatch_close(w);
		return NULL;
	}
	log_debug("wanwatch: watching %s's IPv4 address", ifname);
	return w;
}

void
wanwatch_close(struct wanwatch *w)
{
	if (w == NULL)
		return;
	if (w->ev_read != NULL)
		event_free(w->ev_read);
	if (w->ev_timer != NULL)
		event_free(w->ev_timer);
	if (w->fd != -1)
		(void)close(w->fd);
	free(w);
}
