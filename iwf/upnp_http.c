/*
 * upnp_http.c - SOAP control on the libevent loop with evhttp (upnp_http.h;
 * spec/iwf.md §3, §5.3; X-05).
 *
 * Why not pupnp's SOAP server: pupnp 1.8.4 answers 400 to an unquoted
 * SOAPACTION (soap_device.c check_soapaction_hdr) and to an envelope in
 * the default namespace (check_soap_request), both sent by deployed
 * control points that miniupnpd serves, and a short or stalled body pins
 * one of its 12 worker threads. Here evhttp reads the request on the
 * loop: a stalled client costs one socket until the inactivity timeout.
 *
 * What a control request must be (lenient where clients differ, strict
 * where it matters):
 *   - POST (anything else 405) to a controlURL path of the configured
 *     version (else 404); a body of at most UPNP_MAX_CONTENT (evhttp: 413)
 *     and headers of at most UPNP_HTTP_MAX_HEADERS (evhttp: 400);
 *   - SOAPACTION in any spelling (evhttp_find_header is case-blind),
 *     quoted with " or ' or not at all, "serviceType#Action", its service
 *     type that of the path, in our version or a lower one (a
 *     WANIPConnection:1 client of a :2 service is served, as pupnp does).
 *     A header that says otherwise is answered 401. A missing header is
 *     not fatal [derived]: miniupnpd answers 400 (upnphttp.c), but the
 *     body names the action just as well, so it is taken from there;
 *   - the envelope found by local names whatever the prefixes or default
 *     namespace: Envelope, its Body (a Header before it skipped), the
 *     Body's first element child is the action; its local name must be
 *     the header's action (else 401). The body is read by soap_xml.c,
 *     a bounded reader of our own (not libixml: tests/fuzz/known/README),
 *     which skips a UTF-8 byte order mark; the request's Content-Type is
 *     not looked at (miniupnpd does not either).
 * A body that cannot be parsed or has no Body or action: miniupnpd never
 * parses the envelope, it reads the arguments by name, so a broken body
 * gets 402 Invalid Args from its actions and 401 when the action itself
 * is unknown. Here the same: the action (from the header) runs as
 * malformed, so upnp_soap_run answers 402, or 401 for an action that does
 * not exist; without a header and without a usable body it is 401.
 * Answers are byte for byte miniupnpd's (upnpsoap.c
 * BuildSendAndCloseSoapResp, SoapError): every client parses those.
 *
 * libevent 2.1.12 behaviour relied on (http.c, checked):
 *   - evhttp_handle_request disables reading before it calls us, so a
 *     held request sees no EOF or timeout: a client that goes away while
 *     its action waits for the carrier is noticed only when the answer is
 *     written (the write fails or the peer resets), and then
 *     evhttp_connection_fail_ finds userdone set and frees the
 *     connection with the request. Had evhttp detached the request
 *     (evhttp_connection_incoming_fail: req->evcon = NULL), evhttp_send
 *     frees it. Either way evhttp_send_reply on a held request is safe,
 *     and the wait is bounded by the action layer's deadline
 *     (UPNP_CLIENT_WAIT_MS);
 *   - a method outside evhttp_set_allowed_methods gets 501, not 405: all
 *     methods evhttp parses are allowed and we answer 405 ourselves;
 *   - evhttp_set_timeout arms the bufferevent's read and write timeouts:
 *     a request stalled in its headers or body is dropped without an
 *     answer (EVREQ_HTTP_TIMEOUT);
 *   - a Content-Length above the body limit gets 413; with
 *     EVHTTP_SERVER_LINGERING_CLOSE evhttp reads (and drops) the body
 *     first, so the client is not reset before it reads the 413;
 *   - "Expect: 100-continue" on HTTP/1.1 is answered by evhttp_get_body
 *     when the body is not there yet; HTTP/1.0 and "Connection: close"
 *     close after the answer, HTTP/1.1 keeps the connection.
 *
 * The connection cap: evhttp has no hook for a closing connection it
 * never handed us a request on, so each connection's bufferevent is ours
 * (evhttp_set_bevcb) and we hold a reference on it. When evhttp frees it
 * (bufferevent_free clears its callbacks; evhttp never leaves all three
 * unset) our reference keeps it, the sweep sees the cleared callbacks and
 * drops the last reference, which closes the socket (BEV_OPT_CLOSE_ON_FREE;
 * evhttp then only shut it down). At UPNP_HTTP_MAX_CONNS the listener is
 * disabled: new clients wait in the kernel's accept queue, served as soon
 * as a slot frees, instead of being refused (a burst of upnpc calls, one
 * connection each, must not fail); a stalled slot frees at the timeout.
 *
 * The abuse limits (issue 8):
 *   - admission: evhttp calls the bevcb before it sets the socket, so the
 *     peer is not known there; the bevcb activates the admit event, which
 *     runs once the listener's callback has returned (same loop turn,
 *     before any read of the new sockets can be dispatched: their reads
 *     need the next poll) and reads each new socket's peer. A peer outside
 *     the LAN prefixes (split horizon), or one that already holds its
 *     share (max_conns_per_host) of the connections, is freed there and
 *     then with evhttp_connection_free (public; called outside any evhttp
 *     callback; the connection is the callback argument of its
 *     bufferevent: http.c sets every evhttp bufferevent's callbacks with
 *     evcon) and reset (SO_LINGER 0) before evhttp read a byte of it: a
 *     request already in the socket buffer is never parsed (shutdown(2)
 *     alone would not do: Linux still hands out data queued before
 *     SHUT_RD). It stops counting against the cap and the share at once,
 *     so one host holding its share of idle connections leaves the other
 *     slots to the others (the console's requests);
 *   - rate: one token of the shared limiter (ratelimit.h) per SOAP action
 *     request, keyed by the peer, taken before the body is parsed; a
 *     request over the rate is answered 501 Action Failed (the UPnP
 *     Device Architecture's generic error, also what a carrier that does
 *     not answer gets: every control point handles it, retrying or
 *     reporting) and never reaches the action layer or the carrier.
 */
#include <sys/queue.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/utsname.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <event2/http.h>
#include <event2/listener.h>

#include "log.h"
#include "map_err.h"
#include "outbox.h"
#include "policy.h"
#include "ratelimit.h"
#include "soap_xml.h"
#include "upnp.h"
#include "upnp_http.h"
#include "util.h"

/* The listen(2) backlog: clients beyond the cap wait here. */
#define UPNP_HTTP_BACKLOG	64
/* How often connections evhttp let go are looked for (their sockets are
   closed then; a new connection looks too). */
#define UPNP_HTTP_SWEEP_MS	250
#define UPNP_HTTP_MS_PER_S	1000
/* Refusals are logged at most this often (a flood must not flood the
   log), with the count since the last report. */
#define UPNP_HTTP_US_PER_MS	1000
/* A service type we answer in: ours with the client's version. */
#define UPNP_HTTP_TYPE_MAX	96
#define UPNP_HTTP_VERSION_DIGITS 3
#define UPNP_HTTP_SERVER_MAX	128
/* Every method evhttp 2.1 parses: the others get 405 from us. */
#define UPNP_HTTP_METHODS	(EVHTTP_REQ_GET | EVHTTP_REQ_POST |	\
	EVHTTP_REQ_HEAD | EVHTTP_REQ_PUT | EVHTTP_REQ_DELETE |		\
	EVHTTP_REQ_OPTIONS | EVHTTP_REQ_TRACE | EVHTTP_REQ_CONNECT |	\
	EVHTTP_REQ_PATCH)

#define UPNP_HTTP_SOAP_ENV	"http://schemas.xmlsoap.org/soap/envelope/"
#define UPNP_HTTP_SOAP_ENC	"http://schemas.xmlsoap.org/soap/encoding/"
#define UPNP_HTTP_CONTROL_NS	"urn:schemas-upnp-org:control-1-0"
/* UDA 1.1 §3.2.2; miniupnpd's value. */
#define UPNP_HTTP_CONTENT_TYPE	"text/xml; charset=\"utf-8\""

/* miniupnpd upnpsoap.c BuildSendAndCloseSoapResp. */
#define UPNP_HTTP_RESP_HEAD	"<?xml version=\"1.0\"?>\r\n"		\
	"<s:Envelope xmlns:s=\"" UPNP_HTTP_SOAP_ENV "\" "		\
	"s:encodingStyle=\"" UPNP_HTTP_SOAP_ENC "\"><s:Body>"
#define UPNP_HTTP_RESP_TAIL	"</s:Body></s:Envelope>\r\n"
/* miniupnpd upnpsoap.c SoapError (no XML declaration there). */
#define UPNP_HTTP_FAULT_FMT	"<s:Envelope "				\
	"xmlns:s=\"" UPNP_HTTP_SOAP_ENV "\" "				\
	"s:encodingStyle=\"" UPNP_HTTP_SOAP_ENC "\"><s:Body><s:Fault>"	\
	"<faultcode>s:Client</faultcode>"				\
	"<faultstring>UPnPError</faultstring><detail>"			\
	"<UPnPError xmlns=\"" UPNP_HTTP_CONTROL_NS "\">"		\
	"<errorCode>%d</errorCode>"					\
	"<errorDescription>%s</errorDescription>"			\
	"</UPnPError></detail></s:Fault></s:Body></s:Envelope>"
#define UPNP_HTTP_405_BODY	"<html><head><title>405 Method Not Allowed"\
	"</title></head><body>405 Method Not Allowed</body></html>\r\n"

/* A connection's bufferevent, with our reference on it. */
struct upnp_http_conn {
	TAILQ_ENTRY(upnp_http_conn) entry;
	struct bufferevent	*bev;
	struct in6_addr		 host;		/* the peer, IPv4-mapped */
	bool			 admitted;	/* host known and let in */
};

/* One throttled log line about refusals of one kind. */
/* An action waiting for the carrier (upnp_soap_run said false). */
struct upnp_http_job {
	TAILQ_ENTRY(upnp_http_job) entry;
	struct upnp_http	*h;
	struct evhttp_request	*req;
	char			 type[UPNP_HTTP_TYPE_MAX + 1];
	char			 action[UPNP_NAME_MAX + 1];
};

/* A SOAP answer held until the turn's commit (outbox.h). evhttp does
   not read a connection while its request waits for us (see above), so
   req stays valid until we answer or evhttp_free. */
struct upnp_http_held {
	TAILQ_ENTRY(upnp_http_held) entry;
	struct upnp_http	*h;
	struct evhttp_request	*req;
	struct evbuffer		*body;
	int			 code;
	const char		*reason;	/* static text */
};

struct upnp_http {
	struct upnp_http_params	 p;
	struct evhttp		*http;
	struct evhttp_bound_socket *bound;
	struct event		*sweep;
	struct event		*admit;		/* new connections' peers */
	uint16_t		 port;
	size_t			 nconns;
	bool			 paused;
	struct policy_prefix	*lan;		/* a copy; NULL: no check */
	size_t			 n_lan;
	struct upnp_http_stats	 stats;
	/* one per kind, so that one kind cannot hide another */
	struct upnp_report	 not_lan_report;
	struct upnp_report	 share_report;
	struct upnp_report	 rate_report;
	TAILQ_HEAD(, upnp_http_conn) conns;
	TAILQ_HEAD(, upnp_http_job) jobs;
	TAILQ_HEAD(, upnp_http_held) held;
	char			 server[UPNP_HTTP_SERVER_MAX];
};

/* ---- connections ------------------------------------------------------ */

static void
upnp_http_listening(struct upnp_http *h, bool on)
{
	struct evconnlistener *lev;

	if (h->bound == NULL || h->paused == !on)
		return;
	lev = evhttp_bound_socket_get_listener(h->bound);
	if ((on ? evconnlistener_enable(lev) : evconnlistener_disable(lev)) ==
	    -1) {
		log_warnx("upnp http: cannot %s the listener",
		    on ? "enable" : "disable");
		return;
	}
	h->paused = !on;
	if (!on)
		log_info("upnp http: %zu connections, not accepting more",
		    h->nconns);
}

static void
upnp_http_arm_sweep(struct upnp_http *h)
{
	struct timeval tv;

	if (TAILQ_EMPTY(&h->conns) || evtimer_pending(h->sweep, NULL))
		return;
	tv.tv_sec = UPNP_HTTP_SWEEP_MS / UPNP_HTTP_MS_PER_S;
	tv.tv_usec = (UPNP_HTTP_SWEEP_MS % UPNP_HTTP_MS_PER_S) *
	    UPNP_HTTP_US_PER_MS;
	evtimer_add(h->sweep, &tv);
}

/* Drop our reference on the bufferevents evhttp freed. */
static void
upnp_http_sweep(struct upnp_http *h)
{
	struct upnp_http_conn *c, *next;
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;

	for (c = TAILQ_FIRST(&h->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, NULL);
		if (rcb != NULL || wcb != NULL || ecb != NULL)
			continue;
		TAILQ_REMOVE(&h->conns, c, entry);
		bufferevent_decref(c->bev);
		free(c);
		h->nconns--;
	}
	if (h->nconns < h->p.max_conns)
		upnp_http_listening(h, true);
}

static void
upnp_http_sweep_cb(evutil_socket_t fd, short what, void *arg)
{
	struct upnp_http *h = arg;

	(void)fd;
	(void)what;
	upnp_http_sweep(h);
	upnp_http_arm_sweep(h);
}

/* A socket address as an IPv4-mapped or IPv6 address; false for
   another family. */
static bool
upnp_http_sockaddr_host(const struct sockaddr_storage *ss, socklen_t len,
    struct in6_addr *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	memset(a, 0, sizeof(*a));
	if (ss->ss_family == AF_INET && len >= (socklen_t)sizeof(sin)) {
		memcpy(&sin, ss, sizeof(sin));
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &sin.sin_addr, sizeof(sin.sin_addr));
		return true;
	}
	if (ss->ss_family == AF_INET6 && len >= (socklen_t)sizeof(sin6)) {
		memcpy(&sin6, ss, sizeof(sin6));
		*a = sin6.sin6_addr;
		return true;
	}
	return false;
}

/* Split horizon (spec/iwf.md X-02; RFC 6887 §18.3.2 for PCP): is the
   control point inside a LAN prefix? */
static bool
upnp_http_is_lan(const struct upnp_http *h, const struct in6_addr *a)
{
	return h->lan == NULL || policy_prefixes_match(h->lan, h->n_lan, a);
}

void
upnp_report(struct upnp_report *r, uint64_t now, const char *prefix,
    const char *what, const struct in6_addr *host)
{
	char buf[INET6_ADDRSTRLEN];

	r->count++;
	if (r->last != 0 && now - r->last < UPNP_REPORT_MS)
		return;
	if (IN6_IS_ADDR_V4MAPPED(host))
		inet_ntop(AF_INET, &host->s6_addr[12], buf, sizeof(buf));
	else
		inet_ntop(AF_INET6, host, buf, sizeof(buf));
	log_info("%s: %s %s; %" PRIu64 " refused since the last report",
	    prefix, what, buf, r->count);
	r->count = 0;
	r->last = now != 0 ? now : 1;
}

/* A refusal of this server, at the loop's now. */
static void
upnp_http_report(struct upnp_http *h, struct upnp_report *r,
    const char *what, const struct in6_addr *host)
{
	upnp_report(r, h->p.now(h->p.clock_arg), "upnp http", what, host);
}

/*
 * Has the peer closed or reset this connection? evhttp learns it at its
 * next read, which may come after a new connection of the same host was
 * accepted in the same loop turn: a client that closes a connection and
 * opens another at once must not be refused for the one it closed. A
 * peek (recv(2) is on the seccomp list, poll(2) is not): 0 is the close,
 * an error other than "nothing yet" the reset. A close behind data evhttp
 * has not read yet still counts until evhttp reads it.
 */
static bool
upnp_http_conn_gone(const struct upnp_http_conn *c)
{
	int fd = bufferevent_getfd(c->bev);
	ssize_t n;
	char b;

	if (fd == -1)
		return true;
	n = recv(fd, &b, sizeof(b), MSG_PEEK | MSG_DONTWAIT);
	return n == 0 || (n == -1 && errno != EAGAIN && errno != EWOULDBLOCK &&
	    errno != EINTR);
}

/* The host's open connections; with alive, those whose peer is still
   there (a recv(2) each). */
static size_t
upnp_http_count_host(const struct upnp_http *h, const struct in6_addr *host,
    bool alive)
{
	const struct upnp_http_conn *c;
	size_t n = 0;

	TAILQ_FOREACH(c, &h->conns, entry)
		if (c->admitted && IN6_ARE_ADDR_EQUAL(&c->host, host) &&
		    (!alive || !upnp_http_conn_gone(c)))
			n++;
	return n;
}

/* Free a connection before evhttp read anything of it, reset it, and
   forget it (see "The abuse limits" at the top). */
static void
upnp_http_refuse(struct upnp_http *h, struct upnp_http_conn *c, int fd)
{
	const struct linger reset = { 1, 0 };
	bufferevent_data_cb rcb, wcb;
	bufferevent_event_cb ecb;
	void *evcon = NULL;

	bufferevent_getcb(c->bev, &rcb, &wcb, &ecb, &evcon);
	if ((rcb != NULL || wcb != NULL || ecb != NULL) && evcon != NULL)
		evhttp_connection_free(evcon);
	/* our reference keeps the socket open until the decref: a reset,
	   not an orderly close, is what a refused client should see */
	if (fd != -1 && setsockopt(fd, SOL_SOCKET, SO_LINGER, &reset,
	    sizeof(reset)) == -1)
		log_warn("upnp http: SO_LINGER");
	TAILQ_REMOVE(&h->conns, c, entry);
	bufferevent_decref(c->bev);	/* closes the socket */
	free(c);
	h->nconns--;
}

/* Is this new connection let in? */
static bool
upnp_http_admit_one(struct upnp_http *h, struct upnp_http_conn *c, int fd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (fd == -1 || getpeername(fd, (struct sockaddr *)&ss, &len) == -1 ||
	    !upnp_http_sockaddr_host(&ss, len, &c->host)) {
		/* gone already (ENOTCONN): evhttp sees it too */
		return false;
	}
	if (!upnp_http_is_lan(h, &c->host)) {
		h->stats.not_lan++;
		upnp_http_report(h, &h->not_lan_report, "refused a control "
		    "point outside the LAN:", &c->host);
		return false;
	}
	/* the peeks only for a host at its share */
	if (upnp_http_count_host(h, &c->host, false) >=
	    h->p.max_conns_per_host && upnp_http_count_host(h, &c->host,
	    true) >= h->p.max_conns_per_host) {
		h->stats.host_refused++;
		upnp_http_report(h, &h->share_report, "a host's share of the "
		    "connections is taken: refused", &c->host);
		return false;
	}
	c->admitted = true;
	return true;
}

/* The admit event: the peers of the connections accepted since. */
static void
upnp_http_admit_cb(evutil_socket_t unused, short what, void *arg)
{
	struct upnp_http *h = arg;
	struct upnp_http_conn *c, *next;
	int fd;

	(void)unused;
	(void)what;
	for (c = TAILQ_FIRST(&h->conns); c != NULL; c = next) {
		next = TAILQ_NEXT(c, entry);
		if (c->admitted)
			continue;
		fd = bufferevent_getfd(c->bev);
		if (!upnp_http_admit_one(h, c, fd))
			upnp_http_refuse(h, c, fd);
	}
	if (h->nconns < h->p.max_conns)
		upnp_http_listening(h, true);
}

/* evhttp_set_bevcb: a new connection's bufferevent, counted. */
static struct bufferevent *
upnp_http_bevcb(struct event_base *base, void *arg)
{
	struct upnp_http *h = arg;
	struct upnp_http_conn *c;
	struct bufferevent *bev;

	upnp_http_sweep(h);
	if ((bev = bufferevent_socket_new(base, -1, BEV_OPT_CLOSE_ON_FREE)) ==
	    NULL) {
		/* evhttp tries one of its own; it goes uncounted */
		log_warnx("upnp http: no bufferevent");
		return NULL;
	}
	if ((c = calloc(1, sizeof(*c))) == NULL) {
		log_warn("upnp http: connection");
		return bev;	/* uncounted, freed by evhttp alone */
	}
	bufferevent_incref(bev);
	c->bev = bev;
	TAILQ_INSERT_TAIL(&h->conns, c, entry);
	h->nconns++;
	if (h->nconns >= h->p.max_conns)
		upnp_http_listening(h, false);
	upnp_http_arm_sweep(h);
	/* its peer once evhttp has set the socket (see the top) */
	event_active(h->admit, EV_TIMEOUT, 1);
	return bev;
}

/* ---- the request -------------------------------------------------------- */

/* The control point's address, IPv4-mapped (U-04's requester). evhttp
   keeps it as getnameinfo(NI_NUMERICHOST) text: no DNS anywhere. */
static bool
upnp_http_peer(struct evhttp_request *req, struct in6_addr *a)
{
	struct evhttp_connection *evcon = evhttp_request_get_connection(req);
	char *addr = NULL, buf[INET6_ADDRSTRLEN];
	ev_uint16_t port;
	struct in_addr v4;
	size_t n;

	if (evcon == NULL)
		return false;
	evhttp_connection_get_peer(evcon, &addr, &port);
	if (addr == NULL)
		return false;
	/* a link-local peer comes with its scope: "fe80::1%eth0" */
	n = strcspn(addr, "%");
	if (n >= sizeof(buf))
		return false;
	memcpy(buf, addr, n);
	buf[n] = '\0';
	memset(a, 0, sizeof(*a));
	if (inet_pton(AF_INET, buf, &v4) == 1) {
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &v4, sizeof(v4));
		return true;
	}
	return inet_pton(AF_INET6, buf, a) == 1;
}

/* The service whose controlURL path this is, or -1. */
static int
upnp_http_service_at(const struct upnp_http *h, struct evhttp_request *req)
{
	const struct evhttp_uri *uri = evhttp_request_get_evhttp_uri(req);
	const char *path = uri != NULL ? evhttp_uri_get_path(uri) : NULL;
	const struct upnp_service_info *info;
	int svc;

	if (path == NULL)
		return -1;
	for (svc = 0; svc < UPNP_SVC_COUNT; svc++) {
		info = upnp_service_info(h->p.version, (enum upnp_service)svc);
		if (info != NULL && strcmp(path, info->control_path) == 0)
			return svc;
	}
	return -1;
}

/*
 * Is s (len bytes) the service type of svc in our version or a lower one
 * ("urn:schemas-upnp-org:service:WANIPConnection:1" for a :2 service)? The
 * URN is compared without regard to case (RFC 8141 §3.1 makes only the
 * NID case-blind; clients are not that careful). On success `type` is our
 * spelling with the client's version: what the answer's namespace is.
 */
static bool
upnp_http_type_ok(const struct upnp_http *h, enum upnp_service svc,
    const char *s, size_t len, char *type, size_t size)
{
	const char *ours = upnp_service_info(h->p.version, svc)->type;
	const char *colon = strrchr(ours, ':');
	unsigned long v = 0, max;
	size_t plen, i;

	if (colon == NULL)
		return false;
	plen = (size_t)(colon - ours) + 1;
	max = strtoul(colon + 1, NULL, 10);
	if (len <= plen || len - plen > UPNP_HTTP_VERSION_DIGITS ||
	    strncasecmp(s, ours, plen) != 0)
		return false;
	for (i = plen; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return false;
		v = v * 10 + (unsigned long)(s[i] - '0');
	}
	if (v < 1 || v > max || plen + UPNP_HTTP_VERSION_DIGITS >= size)
		return false;
	snprintf(type, size, "%.*s%lu", (int)plen, ours, v);
	return true;
}

/*
 * SOAPACTION: "serviceType#Action", the quotes optional (old goupnp sends
 * none; pupnp 1.8.4 refuses that, miniupnpd takes it). False: 401.
 */
static bool
upnp_http_soapaction(const struct upnp_http *h, enum upnp_service svc,
    const char *hdr, struct upnp_http_job *job)
{
	const char *b = hdr, *e = hdr + strlen(hdr), *hash;
	size_t alen;

	while (b < e && (*b == ' ' || *b == '\t'))
		b++;
	while (e > b && (e[-1] == ' ' || e[-1] == '\t'))
		e--;
	if (b < e && (*b == '"' || *b == '\''))
		b++;
	if (e > b && (e[-1] == '"' || e[-1] == '\''))
		e--;
	if ((hash = memrchr(b, '#', (size_t)(e - b))) == NULL)
		return false;
	alen = (size_t)(e - hash - 1);
	if (alen == 0 || alen > UPNP_NAME_MAX ||
	    !upnp_http_type_ok(h, svc, b, (size_t)(hash - b), job->type,
	    sizeof(job->type)))
		return false;
	memcpy(job->action, hash + 1, alen);
	job->action[alen] = '\0';
	return true;
}

/*
 * The body read by our own bounded reader (soap_xml.h; libixml read past
 * its own heap block on fuzzed bodies, tests/fuzz/known/README): true and
 * the action element's arguments in act when it is well-formed and has
 * Envelope/Body/<action> (SOAP 1.1 §4), whatever the prefixes.
 */
static bool
upnp_http_parse(struct evhttp_request *req, struct upnp_action *act,
    struct soap_xml_elem *elem)
{
	struct evbuffer *in = evhttp_request_get_input_buffer(req);
	size_t len = evbuffer_get_length(in);
	const char *buf;

	/* evhttp enforced the limit; the reader refuses a NUL */
	if (len == 0 || len > UPNP_MAX_CONTENT ||
	    (buf = (const char *)evbuffer_pullup(in, (ev_ssize_t)len)) == NULL)
		return false;
	return soap_xml_read(buf, len, act, elem);
}

/* ---- answers ------------------------------------------------------------ */

static void
upnp_http_headers(const struct upnp_http *h, struct evhttp_request *req,
    const char *type, size_t len)
{
	struct evkeyvalq *out = evhttp_request_get_output_headers(req);
	char n[32];

	snprintf(n, sizeof(n), "%zu", len);
	evhttp_add_header(out, "Content-Type", type);
	evhttp_add_header(out, "Content-Length", n);
	/* UDA 1.0 §3.2.2: EXT and SERVER in every control response */
	evhttp_add_header(out, "EXT", "");
	evhttp_add_header(out, "Server", h->server);
}

/* Text content escaped (miniupnpc decodes no entities, so no more than
   XML needs: & and <, and > for "]]>"). */
static int
upnp_http_add_escaped(struct evbuffer *b, const char *s)
{
	size_t n;

	while (*s != '\0') {
		n = strcspn(s, "&<>");
		if (n > 0 && evbuffer_add(b, s, n) == -1)
			return -1;
		s += n;
		if (*s == '\0')
			break;
		if (evbuffer_add_printf(b, "%s", *s == '&' ? "&amp;" :
		    *s == '<' ? "&lt;" : "&gt;") == -1)
			return -1;
		s++;
	}
	return 0;
}

/* One out argument. A value that is an XML document of its own (IGD:2
   NewPortListing) goes in a CDATA section, as miniupnpd sends it
   (miniupnpc's parser reads CDATA but decodes no entities); one that
   holds "]]>" cannot, it is escaped. */
static int
upnp_http_add_out(struct evbuffer *b, const struct upnp_out *o)
{
	const char *v = o->long_value != NULL ? o->long_value : o->value;

	if (evbuffer_add_printf(b, "<%s>", o->name) == -1)
		return -1;
	if (o->long_value != NULL && strstr(v, "]]>") == NULL) {
		if (evbuffer_add_printf(b, "<![CDATA[%s]]>", v) == -1)
			return -1;
	} else if (upnp_http_add_escaped(b, v) == -1)
		return -1;
	return evbuffer_add_printf(b, "</%s>", o->name) == -1 ? -1 : 0;
}

static void
upnp_http_send_now(const struct upnp_http *h, struct evhttp_request *req,
    int code, const char *reason, struct evbuffer *b)
{
	upnp_http_headers(h, req, UPNP_HTTP_CONTENT_TYPE,
	    evbuffer_get_length(b));
	evhttp_send_reply(req, code, reason, b);
}

/* HTTP 500 with the UPnP fault (spec/iwf.md §5.3; U-13); NULL on
   memory. */
static struct evbuffer *
upnp_http_fault_body(int code, const char *desc)
{
	struct evbuffer *b;

	if (desc == NULL || *desc == '\0')
		desc = map_err_upnp_name((unsigned int)code);
	if (desc == NULL)
		desc = map_err_upnp_name(map_err_row(MAP_ERR_INTERNAL)->upnp_v1);
	log_debug("upnp http: fault %d %s", code, desc);
	if ((b = evbuffer_new()) == NULL ||
	    evbuffer_add_printf(b, UPNP_HTTP_FAULT_FMT, code, desc) == -1) {
		evbuffer_free(b);
		return NULL;
	}
	return b;
}

static int
upnp_http_err_code(const struct upnp_http *h, enum map_err err)
{
	const struct map_err_row *row = map_err_row(err);

	return h->p.version >= 2 ? row->upnp_v2 : row->upnp_v1;
}

/* outbox_release_fn: the turn's commit is over. */
static void
upnp_http_release(void *arg, enum outbox_fate fate, const void *data,
    size_t len)
{
	struct upnp_http_held *held = arg;
	struct upnp_http *h = held->h;
	struct evbuffer *b;

	(void)data;
	(void)len;
	TAILQ_REMOVE(&h->held, held, entry);
	if (fate == OUTBOX_SEND)
		upnp_http_send_now(h, held->req, held->code, held->reason,
		    held->body);
	else if (fate == OUTBOX_NOT_DURABLE) {
		/* RFC 6970 §5.1: 501 ActionFailed; the mapping is in the
		   table, a retry of the same host refreshes it */
		log_info("upnp http: the state could not be saved: answering "
		    "501 instead of success");
		if ((b = upnp_http_fault_body(upnp_http_err_code(h,
		    MAP_ERR_INTERNAL), NULL)) == NULL)
			evhttp_send_error(held->req, HTTP_INTERNAL, NULL);
		else {
			upnp_http_send_now(h, held->req, HTTP_INTERNAL,
			    "Internal Server Error", b);
			evbuffer_free(b);
		}
	}
	/* OUTBOX_DISCARD: closing; the request goes with its connection */
	evbuffer_free(held->body);
	free(held);
}

/*
 * Answer now, or (with an outbox) after the turn's state commit; the
 * body is taken (b is left empty). promise: a success that changed
 * mappings (docs/state.md "Replies wait for the commit").
 */
static void
upnp_http_send(struct upnp_http *h, struct evhttp_request *req, int code,
    const char *reason, struct evbuffer *b, bool promise)
{
	struct upnp_http_held *held;

	if (h->p.outbox == NULL) {
		upnp_http_send_now(h, req, code, reason, b);
		return;
	}
	if ((held = calloc(1, sizeof(*held))) == NULL ||
	    (held->body = evbuffer_new()) == NULL ||
	    evbuffer_add_buffer(held->body, b) == -1) {
		log_warn("upnp http: holding an answer");
		if (held != NULL)
			evbuffer_free(held->body);
		free(held);
		/* nothing promised if nothing is said */
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	held->h = h;
	held->req = req;
	held->code = code;
	held->reason = reason;
	TAILQ_INSERT_TAIL(&h->held, held, entry);
	(void)outbox_hold(h->p.outbox, upnp_http_release, held, promise, NULL,
	    0);
}

static void
upnp_http_fault(struct upnp_http *h, struct evhttp_request *req, int code,
    const char *desc)
{
	struct evbuffer *b;

	if ((b = upnp_http_fault_body(code, desc)) == NULL) {
		evhttp_send_error(req, HTTP_INTERNAL, NULL);
		return;
	}
	upnp_http_send(h, req, HTTP_INTERNAL, "Internal Server Error", b,
	    false);
	evbuffer_free(b);
}

static void
upnp_http_fault_err(struct upnp_http *h, struct evhttp_request *req,
    enum map_err err)
{
	upnp_http_fault(h, req, upnp_http_err_code(h, err), NULL);
}

bool
upnp_http_action_changes(const char *name)
{
	static const char *const changes[] = {
		"AddPortMapping", "AddAnyPortMapping", "DeletePortMapping",
		"DeletePortMappingRange",
	};
	size_t i;

	for (i = 0; i < sizeof(changes) / sizeof(changes[0]); i++)
		if (strcmp(name, changes[i]) == 0)
			return true;
	return false;
}

static void
upnp_http_answer(struct upnp_http *h, const struct upnp_http_job *job,
    const struct upnp_reply *r)
{
	struct evbuffer *b;
	size_t i;

	if (r->err != 0) {
		upnp_http_fault(h, job->req, r->err, r->err_desc);
		return;
	}
	if ((b = evbuffer_new()) == NULL)
		goto fail;
	if (evbuffer_add_printf(b, UPNP_HTTP_RESP_HEAD
	    "<u:%sResponse xmlns:u=\"%s\">", job->action, job->type) == -1)
		goto fail;
	for (i = 0; i < r->nout && i < UPNP_OUT_MAX; i++)
		if (upnp_http_add_out(b, &r->out[i]) == -1)
			goto fail;
	if (evbuffer_add_printf(b, "</u:%sResponse>" UPNP_HTTP_RESP_TAIL,
	    job->action) == -1)
		goto fail;
	upnp_http_send(h, job->req, HTTP_OK, "OK", b,
	    upnp_http_action_changes(job->action));
	evbuffer_free(b);
	return;
fail:
	log_warnx("upnp http: %s: cannot build the response", job->action);
	evbuffer_free(b);
	upnp_http_fault_err(h, job->req, MAP_ERR_INTERNAL);
}

/* upnp_soap_done_fn: the carrier spoke or the wait ran out. */
static void
upnp_http_done(void *arg, const struct upnp_reply *r)
{
	struct upnp_http_job *job = arg;
	struct upnp_http *h = job->h;

	TAILQ_REMOVE(&h->jobs, job, entry);
	upnp_http_answer(h, job, r);
	free(job);
}

static void
upnp_http_405(const struct upnp_http *h, struct evhttp_request *req)
{
	struct evbuffer *b;

	if ((b = evbuffer_new()) == NULL ||
	    evbuffer_add(b, UPNP_HTTP_405_BODY,
	    sizeof(UPNP_HTTP_405_BODY) - 1) == -1) {
		evbuffer_free(b);
		evhttp_send_error(req, HTTP_BADMETHOD, NULL);
		return;
	}
	upnp_http_headers(h, req, "text/html", evbuffer_get_length(b));
	evhttp_add_header(evhttp_request_get_output_headers(req), "Allow",
	    "POST");
	evhttp_send_reply(req, HTTP_BADMETHOD, "Method Not Allowed", b);
	evbuffer_free(b);
}

/*
 * Turn the request into act (and job->type, job->action). False: answered
 * already (401).
 */
static bool
upnp_http_action(struct upnp_http *h, struct evhttp_request *req,
    enum upnp_service svc, struct upnp_http_job *job,
    struct upnp_action *act)
{
	struct soap_xml_elem elem;
	const char *hdr;
	bool parsed;

	memset(act, 0, sizeof(*act));
	act->service = svc;
	hdr = evhttp_find_header(evhttp_request_get_input_headers(req),
	    "SOAPAction");
	if (hdr != NULL && !upnp_http_soapaction(h, svc, hdr, job)) {
		log_debug("upnp http: bad SOAPACTION \"%.80s\"", hdr);
		upnp_http_fault_err(h, req, MAP_ERR_INVALID_ACTION);
		return false;
	}
	/* the action's name is checked against the header's first */
	if ((parsed = upnp_http_parse(req, act, &elem)) && hdr != NULL &&
	    (elem.local_len != strlen(job->action) ||
	    memcmp(elem.local, job->action, elem.local_len) != 0)) {
		upnp_http_fault_err(h, req, MAP_ERR_INVALID_ACTION);
		return false;
	}
	if (!parsed) {
		/* with the header: 402 for an action we have, else 401 */
		act->malformed = true;
		memcpy(act->name, job->action, sizeof(act->name));
	}
	if (hdr == NULL) {
		memcpy(job->action, act->name, sizeof(job->action));
		if (!parsed || !upnp_http_type_ok(h, svc, elem.ns,
		    strlen(elem.ns), job->type, sizeof(job->type)))
			snprintf(job->type, sizeof(job->type), "%s",
			    upnp_service_info(h->p.version, svc)->type);
	}
	return true;
}

static void
upnp_http_control(struct upnp_http *h, struct evhttp_request *req,
    enum upnp_service svc)
{
	struct upnp_http_job *job;
	struct upnp_action act;
	struct upnp_reply reply;
	struct in6_addr requester;
	uint64_t now;

	if ((job = calloc(1, sizeof(*job))) == NULL) {
		log_warn("upnp http: job");
		upnp_http_fault_err(h, req, MAP_ERR_INTERNAL);
		return;
	}
	job->h = h;
	job->req = req;
	if (!upnp_http_peer(req, &requester)) {
		log_warnx("upnp http: no peer address");
		upnp_http_fault_err(h, req, MAP_ERR_INTERNAL);
		free(job);
		return;
	}
	/* issue 8: charged before anything is parsed, so a flood costs
	   little; 501 ActionFailed, the proxy never sees it */
	now = h->p.now(h->p.clock_arg);
	if (!ratelimit_allow(h->p.ratelimit, &requester, now)) {
		h->stats.rate_limited++;
		upnp_http_report(h, &h->rate_report, "over its request rate: "
		    "501 to", &requester);
		upnp_http_fault_err(h, req, MAP_ERR_INTERNAL);
		free(job);
		return;
	}
	if (!upnp_http_action(h, req, svc, job, &act)) {
		free(job);
		return;
	}
	act.requester = requester;
	if (upnp_soap_run(h->p.soap, &act, now, upnp_http_done, job, &reply)) {
		upnp_http_answer(h, job, &reply);
		upnp_reply_free(&reply);
		free(job);
	} else
		TAILQ_INSERT_TAIL(&h->jobs, job, entry);
	if (h->p.kick != NULL)
		h->p.kick(h->p.kick_arg);
}

/* evhttp_set_gencb: every request evhttp read whole. */
static void
upnp_http_request_cb(struct evhttp_request *req, void *arg)
{
	struct upnp_http *h = arg;
	int svc;

	if (evhttp_request_get_command(req) != EVHTTP_REQ_POST) {
		upnp_http_405(h, req);
		return;
	}
	if ((svc = upnp_http_service_at(h, req)) < 0) {
		evhttp_send_error(req, HTTP_NOTFOUND, NULL);
		return;
	}
	upnp_http_control(h, req, (enum upnp_service)svc);
}

/* ---- life ------------------------------------------------------------- */

/* A listening TCP socket on a:port (no name is resolved). */
static int
upnp_http_listen(const struct in6_addr *a, uint16_t port, uint16_t *bound)
{
	struct sockaddr_storage ss;
	struct sockaddr_in *sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t len;
	int fd, on = 1;

	memset(&ss, 0, sizeof(ss));
	if (IN6_IS_ADDR_V4MAPPED(a)) {
		sin->sin_family = AF_INET;
		sin->sin_port = htons(port);
		memcpy(&sin->sin_addr, &a->s6_addr[12], sizeof(sin->sin_addr));
		len = sizeof(*sin);
	} else {
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		sin6->sin6_addr = *a;
		len = sizeof(*sin6);
	}
	if ((fd = socket(ss.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0)) == -1) {
		log_warn("upnp http: socket");
		return -1;
	}
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof(on)) == -1 ||
	    (ss.ss_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6,
	    IPV6_V6ONLY, &on, sizeof(on)) == -1) ||
	    bind(fd, (struct sockaddr *)&ss, len) == -1 ||
	    listen(fd, UPNP_HTTP_BACKLOG) == -1) {
		log_warn("upnp http: port %u", port);
		close(fd);
		return -1;
	}
	len = sizeof(ss);
	if (getsockname(fd, (struct sockaddr *)&ss, &len) == -1) {
		log_warn("upnp http: getsockname");
		close(fd);
		return -1;
	}
	*bound = ntohs(ss.ss_family == AF_INET ? sin->sin_port :
	    sin6->sin6_port);
	return fd;
}

/* UDA 1.0 §3.2.2: "OS/version UPnP/1.0 product/version". */
static void
upnp_http_server_name(struct upnp_http *h)
{
	struct utsname u;

	if (uname(&u) == -1)
		snprintf(h->server, sizeof(h->server),
		    "Linux UPnP/1.0 pcp-iwfd/%s", PACKAGE_VERSION);
	else
		snprintf(h->server, sizeof(h->server),
		    "%.32s/%.32s UPnP/1.0 pcp-iwfd/%s", u.sysname, u.release,
		    PACKAGE_VERSION);
}

static bool
upnp_http_setup(struct upnp_http *h, int fd)
{
	struct timeval tv;

	if ((h->http = evhttp_new(h->p.base)) == NULL ||
	    (h->sweep = evtimer_new(h->p.base, upnp_http_sweep_cb, h)) ==
	    NULL || (h->admit = event_new(h->p.base, -1, 0,
	    upnp_http_admit_cb, h)) == NULL) {
		log_warnx("upnp http: out of memory");
		close(fd);
		return false;
	}
	tv.tv_sec = h->p.timeout_ms / UPNP_HTTP_MS_PER_S;
	tv.tv_usec = (h->p.timeout_ms % UPNP_HTTP_MS_PER_S) *
	    UPNP_HTTP_US_PER_MS;
	evhttp_set_timeout_tv(h->http, &tv);
	evhttp_set_allowed_methods(h->http, UPNP_HTTP_METHODS);
	evhttp_set_max_body_size(h->http, UPNP_MAX_CONTENT);
	evhttp_set_max_headers_size(h->http, UPNP_HTTP_MAX_HEADERS);
	evhttp_set_flags(h->http, EVHTTP_SERVER_LINGERING_CLOSE);
	evhttp_set_bevcb(h->http, upnp_http_bevcb, h);
	evhttp_set_gencb(h->http, upnp_http_request_cb, h);
	if ((h->bound = evhttp_accept_socket_with_handle(h->http, fd)) ==
	    NULL) {
		log_warnx("upnp http: cannot listen");
		close(fd);
		return false;
	}
	return true;
}

/* The LAN prefixes, copied: the caller's may change on a reload. */
static bool
upnp_http_copy_lan(struct upnp_http *h, const struct upnp_http_params *p)
{
	if (p->lan == NULL)
		return true;
	return upnp_http_set_lan(h, p->lan, p->n_lan) == 0;
}

int
upnp_http_set_lan(struct upnp_http *h, const struct policy_prefix *lan,
    size_t n_lan)
{
	struct policy_prefix *copy;

	if ((copy = policy_prefixes_dup(lan, n_lan)) == NULL) {
		log_warn("upnp http: LAN prefixes");
		return -1;
	}
	free(h->lan);
	h->lan = copy;
	h->n_lan = n_lan;
	return 0;
}

struct upnp_http *
upnp_http_open(const struct upnp_http_params *p)
{
	struct upnp_http *h;
	int fd;

	if (p->base == NULL || p->soap == NULL || p->now == NULL ||
	    upnp_service_info(p->version, UPNP_SVC_WANIPC) == NULL) {
		log_warnx("upnp http: bad parameters (version %u)",
		    p->version);
		return NULL;
	}
	if ((h = calloc(1, sizeof(*h))) == NULL) {
		log_warn("upnp http");
		return NULL;
	}
	h->p = *p;
	if (h->p.timeout_ms == 0)
		h->p.timeout_ms = UPNP_HTTP_TIMEOUT_MS;
	if (h->p.max_conns == 0)
		h->p.max_conns = UPNP_HTTP_MAX_CONNS;
	if (h->p.max_conns_per_host == 0)
		h->p.max_conns_per_host = UPNP_HTTP_MAX_CONNS_PER_HOST;
	if (h->p.max_conns_per_host > h->p.max_conns)
		h->p.max_conns_per_host = h->p.max_conns;
	h->p.lan = NULL;	/* our copy below, not the caller's */
	TAILQ_INIT(&h->conns);
	TAILQ_INIT(&h->jobs);
	TAILQ_INIT(&h->held);
	upnp_http_server_name(h);
	if (!upnp_http_copy_lan(h, p)) {
		upnp_http_close(h);
		return NULL;
	}
	if ((fd = upnp_http_listen(&p->bind_addr, p->port, &h->port)) == -1 ||
	    !upnp_http_setup(h, fd)) {
		upnp_http_close(h);
		return NULL;
	}
	log_debug("upnp http: listening on port %u", h->port);
	return h;
}

void
upnp_http_close(struct upnp_http *h)
{
	struct upnp_http_job *job;
	struct upnp_http_conn *c;

	if (h == NULL)
		return;
	/* the requests go with their connections in evhttp_free: forget
	   them first, and make sure done is never called for them */
	while ((job = TAILQ_FIRST(&h->jobs)) != NULL) {
		TAILQ_REMOVE(&h->jobs, job, entry);
		upnp_soap_cancel(h->p.soap, job);
		free(job);
	}
	/* held answers: their requests go in evhttp_free too */
	while (!TAILQ_EMPTY(&h->held))
		outbox_forget(h->p.outbox, TAILQ_FIRST(&h->held));
	if (h->sweep != NULL)
		event_free(h->sweep);
	if (h->admit != NULL)
		event_free(h->admit);
	if (h->http != NULL)
		evhttp_free(h->http);	/* the listener, every connection */
	while ((c = TAILQ_FIRST(&h->conns)) != NULL) {
		TAILQ_REMOVE(&h->conns, c, entry);
		bufferevent_decref(c->bev);	/* closes the socket */
		free(c);
	}
	free(h->lan);
	free(h);
}

uint16_t
upnp_http_port(const struct upnp_http *h)
{
	return h->port;
}

size_t
upnp_http_connections(const struct upnp_http *h)
{
	return h->nconns;
}

size_t
upnp_http_host_connections(const struct upnp_http *h,
    const struct in6_addr *host)
{
	return upnp_http_count_host(h, host, false);
}

void
upnp_http_stats(const struct upnp_http *h, struct upnp_http_stats *st)
{
	*st = h->stats;
}
