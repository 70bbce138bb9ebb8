/*
 * test_upnp_http.c - SOAP control over evhttp (iwf/upnp_http.c) with real
 * TCP sockets on 127.0.0.1 and a real event_base the test drives, on the
 * real action layer (upnp_soap) on the real proxy and table: without an
 * upstream (the gateway is the last NAT: everything answers at once) and
 * with a scripted carrier (scenario.c) for answers that come later.
 *
 * The request shapes are the ones deployed control points send (issue 6
 * "raw SOAP"; spec/iwf.md §6): miniupnpc's s:/u:, SOAP-ENV:/m:, soap:,
 * a default-namespace envelope without prefixes, the SOAPACTION header in
 * three spellings, quoted, single-quoted and bare, dt:dt typed arguments,
 * "tcp", a self-closing action, no XML declaration, a pretty-printed body,
 * Expect: 100-continue, keep-alive, HTTP/1.0, a chunked body. Then what
 * must fail, and how (X-05): 413, a stalled body, 404, 405, broken XML,
 * 401, 402, another host's address (U-04), the connection cap. The abuse
 * limits (issue 8), from several source addresses (127.0.0.2, .3 ... are
 * loopback too): a host's share of the connections, split horizon, the
 * per-host request rate.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <sys/socket.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "backend.h"
#include "backend_fake.h"
#include "iwf_nonce.h"
#include "map.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "ratelimit.h"
#include "scenario.h"
#include "table.h"
#include "upnp.h"
#include "upnp_desc.h"
#include "upnp_http.h"
#include "upnp_soap.h"
#include "upstream.h"
#include "util.h"

#define UT_LAN		"127.0.0.0"
#define UT_LAN_PREFIX_LEN (96 + 8)	/* 127/8, IPv4-mapped */
#define UT_HOST		"127.0.0.1"
#define UT_OTHER	"127.0.0.2"
#define UT_THIRD	"127.0.0.3"
#define UT_MAX_LIFETIME	86400u
#define UT_MS		1000u
#define UT_UDN		"uuid:11111111-2222-4333-8444-555555555555"
/* Real time: how long a test waits for an answer, and the short
   inactivity timeout the tests run evhttp with. */
#define UT_WAIT_MS	3000
#define UT_QUIET_MS	200
#define UT_TIMEOUT_MS	400
#define UT_SLACK_MS	50
#define UT_BUF		16384

#define UT_CTL		"/ctl/IPConn"
#define UT_NS1		"urn:schemas-upnp-org:service:WANIPConnection:1"
#define UT_NS2		"urn:schemas-upnp-org:service:WANIPConnection:2"
#define UT_ENV_NS	"http://schemas.xmlsoap.org/soap/envelope/"
#define UT_ENC_NS	"http://schemas.xmlsoap.org/soap/encoding/"
#define UT_ENV_S	"<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\""	\
	UT_ENV_NS "\" s:encodingStyle=\"" UT_ENC_NS "\"><s:Body>"
#define UT_ENV_E	"</s:Body></s:Envelope>\r\n"

struct ut {
	struct scn_world w;		/* the proxy, its engine, the carrier */
	unsigned int	 version;
	struct upnp_soap *s;
	unsigned int	 http_kicks;
	struct event_base *base;
	struct upnp_http *h;
	uint16_t	 port;
	/* a test leaves an action pending for upnp_http_close */
	bool		 pending_at_close;
	/* what ut_open_http gives the server (the world's LAN unless a
	   test says otherwise) */
	const struct policy_prefix *lan;
	size_t		 n_lan;
	struct ratelimit *rl;
};

static struct ut *x;

/* One client connection and what it received. */
struct ut_conn {
	int		 fd;
	bool		 eof;
	size_t		 len;
	char		 buf[UT_BUF];
};

struct ut_resp {
	int		 status;
	char		 line[128];
	char		 head[4096];
	char		 body[UT_BUF];
};

/* ---- glue ---- */

static void
ut_http_kick(void *arg)
{
	(void)arg;
	x->http_kicks++;
	x->w.kicked = true;
}

static bool
ut_connected(void *arg)
{
	(void)arg;
	return true;
}

static bool
ut_ext_addr(void *arg, struct in6_addr *a)
{
	(void)arg;
	return proxy_external_addr(x->w.p, a);
}

static uint32_t
ut_uptime(void *arg)
{
	(void)arg;
	return (uint32_t)((x->w.now - SCN_T0) / UT_MS);
}

/* upnp_soap's timer: ticked at the end of every turn. */
static uint64_t
ut_soap_deadline(void *arg)
{
	(void)arg;
	return upnp_soap_next_deadline(x->s);
}

static const struct scn_timer ut_timers[] = {
	{ ut_soap_deadline, NULL },
};

/* The end of a loop turn: the daemon commits and ticks upnp_soap. */
static void
ut_turn_end(void *arg, uint64_t now)
{
	(void)arg;
	upnp_soap_tick(x->s, now);
}

/* The fake clock moves (the action layer's and the engine's timers). */
static void
ut_time_passes(uint64_t ms)
{
	scn_end_turn(&x->w);
	scn_time_passes(&x->w, ms);
	scn_end_turn(&x->w);
}

/* ---- setup ---- */

static void
ut_open_http(unsigned int timeout_ms, unsigned int max_conns)
{
	struct upnp_http_params hp;

	upnp_http_close(x->h);
	memset(&hp, 0, sizeof(hp));
	hp.base = x->base;
	hp.bind_addr = scn_addr(UT_HOST);
	hp.port = 0;
	hp.version = x->version;
	hp.soap = x->s;
	hp.now = scn_world_now;
	hp.clock_arg = &x->w;
	hp.kick = ut_http_kick;
	hp.kick_arg = x;
	hp.timeout_ms = timeout_ms;
	hp.max_conns = max_conns;
	hp.lan = x->lan;
	hp.n_lan = x->n_lan;
	hp.ratelimit = x->rl;
	assert_non_null(x->h = upnp_http_open(&hp));
	x->port = upnp_http_port(x->h);
	assert_int_not_equal(x->port, 0);
}

static int
ut_setup(unsigned int version, bool upstream)
{
	/* the last NAT without local rules answers at once (proxy.h) */
	const struct scn_world_conf conf = {
		.upstream = upstream,
		.backend_new = upstream ? backend_fake_new : NULL,
		.lan = UT_LAN,
		.lan_prefix_len = UT_LAN_PREFIX_LEN,
		.max_lifetime = UT_MAX_LIFETIME,
		.timers = ut_timers,
		.ntimers = sizeof(ut_timers) / sizeof(ut_timers[0]),
		.turn_end = ut_turn_end,
	};
	struct upnp_soap_params sp;

	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->version = version;
	assert_int_equal(scn_world_init(&x->w, &conf), 0);
	memset(&sp, 0, sizeof(sp));
	sp.version = version;
	sp.proxy = x->w.p;
	sp.table = x->w.t;
	memcpy(sp.nonce_key, x->w.key, sizeof(x->w.key));
	sp.connected = ut_connected;
	sp.ext_addr = ut_ext_addr;
	sp.uptime = ut_uptime;
	sp.cb_arg = x;
	sp.upstream = upstream;
	sp.wanconn_udn = UT_UDN;
	assert_non_null(x->s = upnp_soap_new(&sp));
	assert_non_null(x->base = event_base_new());
	x->lan = &x->w.lan;
	x->n_lan = 1;
	ut_open_http(UT_TIMEOUT_MS, 0);
	return 0;
}

static int
setup_v1_last(void **state)
{
	(void)state;
	return ut_setup(1, false);
}

static int
setup_v2_last(void **state)
{
	(void)state;
	return ut_setup(2, false);
}

static int
setup_v1(void **state)
{
	(void)state;
	return ut_setup(1, true);
}

static void	ut_wait_no_conns(void);

static int
ut_teardown(void **state)
{
	(void)state;
	/* whatever the test did, every connection is gone in the end: the
	   cap's count comes back to 0 */
	if (!x->pending_at_close)
		ut_wait_no_conns();
	scn_end_turn(&x->w);
	/* before the action layer: it cancels what is pending there */
	upnp_http_close(x->h);
	upnp_soap_free(x->s);
	ratelimit_free(x->rl);
	scn_world_free(&x->w);
	event_base_free(x->base);
	free(x);
	x = NULL;
	return 0;
}

/* ---- the loop and the clients ---- */

static uint64_t
ut_clock_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

/* One turn of the daemon's loop, then a short wait for fd (if any). */
static void
ut_pump(int fd)
{
	struct pollfd pfd;

	event_base_loop(x->base, EVLOOP_NONBLOCK);
	scn_end_turn(&x->w);
	if (fd >= 0) {
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		(void)poll(&pfd, 1, 2);
	} else
		usleep(2000);
}

static void
ut_pump_for(unsigned int ms)
{
	uint64_t end = ut_clock_ms() + ms;

	while (ut_clock_ms() < end)
		ut_pump(-1);
}

/* A connection from the loopback address src (NULL: the kernel's
   choice, 127.0.0.1). */
static void
ut_connect_from(struct ut_conn *c, const char *src)
{
	struct sockaddr_in sin;

	memset(c, 0, sizeof(*c));
	c->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
	assert_true(c->fd >= 0);
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	if (src != NULL) {
		assert_int_equal(inet_pton(AF_INET, src, &sin.sin_addr), 1);
		assert_int_equal(bind(c->fd, (struct sockaddr *)&sin,
		    sizeof(sin)), 0);
	}
	sin.sin_port = htons(x->port);
	assert_int_equal(inet_pton(AF_INET, UT_HOST, &sin.sin_addr), 1);
	/* loopback: the kernel completes it from the accept queue */
	if (connect(c->fd, (struct sockaddr *)&sin, sizeof(sin)) == -1)
		assert_int_equal(errno, EINPROGRESS);
}

static void
ut_connect(struct ut_conn *c)
{
	ut_connect_from(c, NULL);
}

static void
ut_close(struct ut_conn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	c->fd = -1;
}

static void
ut_send(struct ut_conn *c, const char *data, size_t len)
{
	uint64_t end = ut_clock_ms() + UT_WAIT_MS;
	ssize_t n;

	while (len > 0) {
		n = send(c->fd, data, len, MSG_NOSIGNAL);
		if (n > 0) {
			data += n;
			len -= (size_t)n;
			continue;
		}
		assert_true(n == -1 && (errno == EAGAIN || errno == EINTR ||
		    errno == ENOTCONN));
		assert_true(ut_clock_ms() < end);
		ut_pump(-1);
	}
}

static void
ut_sends(struct ut_conn *c, const char *s)
{
	ut_send(c, s, strlen(s));
}

/* Read what is there; eof once the peer closed or reset. */
static void
ut_recv(struct ut_conn *c)
{
	ssize_t n;

	while (!c->eof && c->len < sizeof(c->buf) - 1) {
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - 1 - c->len,
		    MSG_DONTWAIT);
		if (n > 0) {
			c->len += (size_t)n;
			c->buf[c->len] = '\0';
		} else if (n == 0 || (errno != EAGAIN && errno != EINTR))
			c->eof = true;
		else
			break;
	}
}

static const char *
ut_header(const struct ut_resp *r, const char *name)
{
	static char value[512];
	const char *p = r->head, *eol, *colon;
	size_t n = strlen(name);

	while ((eol = strstr(p, "\r\n")) != NULL) {
		colon = memchr(p, ':', (size_t)(eol - p));
		if (colon != NULL && (size_t)(colon - p) == n &&
		    strncasecmp(p, name, n) == 0) {
			colon++;
			while (*colon == ' ')
				colon++;
			snprintf(value, sizeof(value), "%.*s",
			    (int)(eol - colon), colon);
			return value;
		}
		p = eol + 2;
	}
	return NULL;
}

/* One whole response off c's buffer; false while it is incomplete. */
static bool
ut_take(struct ut_conn *c, struct ut_resp *r)
{
	const char *end = strstr(c->buf, "\r\n\r\n"), *cl;
	size_t hlen, blen;

	if (end == NULL)
		return false;
	hlen = (size_t)(end - c->buf) + 4;
	memset(r, 0, sizeof(*r));
	assert_true(hlen < sizeof(r->head));
	memcpy(r->head, c->buf, hlen);
	assert_int_equal(sscanf(r->head, "HTTP/1.%*d %d", &r->status), 1);
	snprintf(r->line, sizeof(r->line), "%.*s",
	    (int)strcspn(r->head, "\r"), r->head);
	if (r->status >= 100 && r->status < 200)
		blen = 0;
	else if ((cl = ut_header(r, "Content-Length")) != NULL)
		blen = (size_t)strtoul(cl, NULL, 10);
	else if (c->eof)
		blen = c->len - hlen;	/* delimited by the close */
	else
		return false;
	if (c->len < hlen + blen)
		return false;
	assert_true(blen < sizeof(r->body));
	memcpy(r->body, c->buf + hlen, blen);
	r->body[blen] = '\0';
	memmove(c->buf, c->buf + hlen + blen, c->len - hlen - blen);
	c->len -= hlen + blen;
	c->buf[c->len] = '\0';
	return true;
}

/* Pump until a response came on c (true) or ms passed (false). */
static bool
ut_wait_resp(struct ut_conn *c, struct ut_resp *r, unsigned int ms)
{
	uint64_t end = ut_clock_ms() + ms;

	for (;;) {
		ut_recv(c);
		if (ut_take(c, r))
			return true;
		if (c->eof || ut_clock_ms() >= end)
			return false;
		ut_pump(c->fd);
	}
}

/* Every connection gone at the server (the sweep counted it out). */
static void
ut_wait_no_conns(void)
{
	uint64_t end = ut_clock_ms() + UT_WAIT_MS;

	while (upnp_http_connections(x->h) != 0) {
		if (ut_clock_ms() >= end)
			fail_msg("%zu connections left",
			    upnp_http_connections(x->h));
		ut_pump(-1);
	}
}

/* Pump until the server closed c (true) or ms passed. */
static bool
ut_wait_eof(struct ut_conn *c, unsigned int ms)
{
	uint64_t end = ut_clock_ms() + ms;

	while (!c->eof && ut_clock_ms() < end) {
		ut_pump(c->fd);
		ut_recv(c);
	}
	return c->eof;
}

static void
ut_request(char *buf, size_t size, const char *version, const char *path,
    const char *headers, const char *body)
{
	int n;

	n = snprintf(buf, size, "POST %s HTTP/%s\r\nHost: %s:%u\r\n"
	    "Content-Type: text/xml; charset=\"utf-8\"\r\n%s"
	    "Content-Length: %zu\r\n\r\n%s", path, version, UT_HOST, x->port,
	    headers, strlen(body), body);
	assert_true(n > 0 && (size_t)n < size);
}

/* POST body to path with the extra headers (each ending in CRLF) on a
   new connection from src (NULL: 127.0.0.1); the response in r. */
static void
ut_call_from(const char *src, const char *path, const char *headers,
    const char *body, struct ut_resp *r)
{
	static struct ut_conn c;
	static char req[UT_BUF];

	ut_request(req, sizeof(req), "1.1", path, headers, body);
	ut_connect_from(&c, src);
	ut_sends(&c, req);
	assert_true(ut_wait_resp(&c, r, UT_WAIT_MS));
	ut_close(&c);
}

static void
ut_call(const char *path, const char *headers, const char *body,
    struct ut_resp *r)
{
	ut_call_from(NULL, path, headers, body, r);
}

/* The text of <name>...</name> in a response body. */
static const char *
ut_out(const struct ut_resp *r, const char *name)
{
	static char value[1024];
	char open[128], close_[128];
	const char *b, *e;

	snprintf(open, sizeof(open), "<%s>", name);
	snprintf(close_, sizeof(close_), "</%s>", name);
	b = strstr(r->body, open);
	if (b == NULL)
		fail_msg("no <%s> in %s", name, r->body);
	b += strlen(open);
	e = strstr(b, close_);
	assert_non_null(e);
	snprintf(value, sizeof(value), "%.*s", (int)(e - b), b);
	return value;
}

static int
ut_fault_code(const struct ut_resp *r)
{
	assert_int_equal(r->status, 500);
	return atoi(ut_out(r, "errorCode"));
}

/* ---- requests as clients write them ---- */

#define UT_HDR(spelling, q, ns, action)	\
	spelling ": " q ns "#" action q "\r\n"
#define UT_SA(action)	UT_HDR("SOAPAction", "\"", UT_NS1, action)

/* miniupnpc 2.2.4 (upnpcommands.c, minisoap.c). */
static void
ut_body_add(char *buf, size_t size, const char *action, unsigned int ext,
    unsigned int internal, const char *proto, const char *client)
{
	snprintf(buf, size, UT_ENV_S "<u:%s xmlns:u=\"" UT_NS1 "\">"
	    "<NewRemoteHost></NewRemoteHost><NewExternalPort>%u"
	    "</NewExternalPort><NewProtocol>%s</NewProtocol>"
	    "<NewInternalPort>%u</NewInternalPort><NewInternalClient>%s"
	    "</NewInternalClient><NewEnabled>1</NewEnabled>"
	    "<NewPortMappingDescription>libminiupnpc"
	    "</NewPortMappingDescription><NewLeaseDuration>0"
	    "</NewLeaseDuration></u:%s>" UT_ENV_E, action, ext, proto,
	    internal, client, action);
}

static void
ut_body_specific(char *buf, size_t size, unsigned int ext, const char *proto)
{
	snprintf(buf, size, UT_ENV_S "<u:GetSpecificPortMappingEntry xmlns:u=\""
	    UT_NS1 "\"><NewRemoteHost></NewRemoteHost><NewExternalPort>%u"
	    "</NewExternalPort><NewProtocol>%s</NewProtocol>"
	    "</u:GetSpecificPortMappingEntry>" UT_ENV_E, ext, proto);
}

/* The mapping for ext is the host's, to its internal port. */
static void
ut_check_mapping(unsigned int ext, const char *proto, unsigned int internal)
{
	char body[2048], port[16];
	struct ut_resp r;

	ut_body_specific(body, sizeof(body), ext, proto);
	ut_call(UT_CTL, UT_SA("GetSpecificPortMappingEntry"), body, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewInternalClient"), UT_HOST);
	snprintf(port, sizeof(port), "%u", internal);
	assert_string_equal(ut_out(&r, "NewInternalPort"), port);
	assert_string_equal(ut_out(&r, "NewEnabled"), "1");
}

/*
 * AddPortMapping envelopes in the shapes of deployed clients; {E} stands
 * for the external port, {P} the protocol, {I} the internal port.
 */
static const char *const ut_add_shapes[] = {
	/* miniupnpc, libtorrent: s:/u:, XML declaration */
	UT_ENV_S "<u:AddPortMapping xmlns:u=\"" UT_NS1 "\"><NewRemoteHost>"
	"</NewRemoteHost><NewExternalPort>{E}</NewExternalPort><NewProtocol>{P}"
	"</NewProtocol><NewInternalPort>{I}</NewInternalPort>"
	"<NewInternalClient>" UT_HOST "</NewInternalClient><NewEnabled>1"
	"</NewEnabled><NewPortMappingDescription>a</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>" UT_ENV_E,
	/* Windows / UPnP.NET style: SOAP-ENV:/m:, no XML declaration */
	"<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" UT_ENV_NS "\" "
	"SOAP-ENV:encodingStyle=\"" UT_ENC_NS "\"><SOAP-ENV:Body>"
	"<m:AddPortMapping xmlns:m=\"" UT_NS1 "\"><NewRemoteHost/>"
	"<NewExternalPort>{E}</NewExternalPort><NewProtocol>{P}</NewProtocol>"
	"<NewInternalPort>{I}</NewInternalPort><NewInternalClient>" UT_HOST
	"</NewInternalClient><NewEnabled>1</NewEnabled>"
	"<NewPortMappingDescription>b</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></m:AddPortMapping>"
	"</SOAP-ENV:Body></SOAP-ENV:Envelope>",
	/* soap: prefix (Open.NAT, .NET) */
	"<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope "
	"xmlns:soap=\"" UT_ENV_NS "\" soap:encodingStyle=\"" UT_ENC_NS "\">"
	"<soap:Body><u:AddPortMapping xmlns:u=\"" UT_NS1 "\"><NewRemoteHost>"
	"</NewRemoteHost><NewExternalPort>{E}</NewExternalPort><NewProtocol>{P}"
	"</NewProtocol><NewInternalPort>{I}</NewInternalPort>"
	"<NewInternalClient>" UT_HOST "</NewInternalClient><NewEnabled>1"
	"</NewEnabled><NewPortMappingDescription>c</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	"</soap:Body></soap:Envelope>",
	/* the default namespace, no prefix anywhere (pupnp 1.8.4: 400) */
	"<?xml version=\"1.0\"?><Envelope xmlns=\"" UT_ENV_NS "\" "
	"encodingStyle=\"" UT_ENC_NS "\"><Body><AddPortMapping xmlns=\""
	UT_NS1 "\"><NewRemoteHost></NewRemoteHost><NewExternalPort>{E}"
	"</NewExternalPort><NewProtocol>{P}</NewProtocol><NewInternalPort>{I}"
	"</NewInternalPort><NewInternalClient>" UT_HOST "</NewInternalClient>"
	"<NewEnabled>1</NewEnabled><NewPortMappingDescription>d"
	"</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>"
	"</AddPortMapping></Body></Envelope>",
	/* typed arguments (xmlns:dt, dt:dt), as Mono.Nat/Windows send */
	"<s:Envelope xmlns:s=\"" UT_ENV_NS "\" s:encodingStyle=\"" UT_ENC_NS
	"\" xmlns:dt=\"urn:schemas-microsoft-com:datatypes\"><s:Body>"
	"<u:AddPortMapping xmlns:u=\"" UT_NS1 "\"><NewRemoteHost dt:dt="
	"\"string\"></NewRemoteHost><NewExternalPort dt:dt=\"ui2\">{E}"
	"</NewExternalPort><NewProtocol dt:dt=\"string\">{P}</NewProtocol>"
	"<NewInternalPort dt:dt=\"ui2\">{I}</NewInternalPort>"
	"<NewInternalClient dt:dt=\"string\">" UT_HOST "</NewInternalClient>"
	"<NewEnabled dt:dt=\"boolean\">1</NewEnabled>"
	"<NewPortMappingDescription dt:dt=\"string\">e"
	"</NewPortMappingDescription><NewLeaseDuration dt:dt=\"ui4\">0"
	"</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>",
	/* a UTF-8 byte order mark first (.NET's XmlWriter) */
	"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope "
	"xmlns:s=\"" UT_ENV_NS "\" s:encodingStyle=\"" UT_ENC_NS "\"><s:Body>"
	"<u:AddPortMapping xmlns:u=\"" UT_NS1 "\"><NewRemoteHost />"
	"<NewExternalPort>{E}</NewExternalPort><NewProtocol>{P}</NewProtocol>"
	"<NewInternalPort>{I}</NewInternalPort><NewInternalClient>" UT_HOST
	"</NewInternalClient><NewEnabled>1</NewEnabled>"
	"<NewPortMappingDescription>g</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	"</s:Body></s:Envelope>",
	/* pretty-printed, no XML declaration (python upnpclient, jUPnP) */
	"<s:Envelope\n    xmlns:s=\"" UT_ENV_NS "\"\n    s:encodingStyle=\""
	UT_ENC_NS "\">\n  <s:Body>\n    <u:AddPortMapping xmlns:u=\"" UT_NS1
	"\">\n      <NewRemoteHost></NewRemoteHost>\n      <NewExternalPort>"
	"{E}</NewExternalPort>\n      <NewProtocol>{P}</NewProtocol>\n"
	"      <NewInternalPort>{I}</NewInternalPort>\n"
	"      <NewInternalClient>" UT_HOST "</NewInternalClient>\n"
	"      <NewEnabled>1</NewEnabled>\n"
	"      <NewPortMappingDescription>f</NewPortMappingDescription>\n"
	"      <NewLeaseDuration>0</NewLeaseDuration>\n"
	"    </u:AddPortMapping>\n  </s:Body>\n</s:Envelope>\n",
};

/* SOAPACTION header spellings and quotings (pupnp 1.8.4: 400 unquoted). */
static const char *const ut_add_headers[] = {
	UT_HDR("SOAPAction", "\"", UT_NS1, "AddPortMapping"),
	UT_HDR("Soapaction", "", UT_NS1, "AddPortMapping"),
	UT_HDR("SOAPACTION", "", UT_NS1, "AddPortMapping"),
	UT_HDR("SOAPACTION", "\"", UT_NS1, "AddPortMapping"),
	UT_HDR("soapaction", "'", UT_NS1, "AddPortMapping"),
	"SOAPAction:\"" UT_NS1 "#AddPortMapping\"\r\n",
};

#define UT_NELEM(a)	(sizeof(a) / sizeof((a)[0]))

/* A shape with its {E}, {P} and {I} filled in. */
static void
ut_fill(char *buf, size_t size, const char *tmpl, unsigned int ext,
    const char *proto, unsigned int internal)
{
	char num[16];
	const char *v;
	size_t len = 0, n;

	while (*tmpl != '\0') {
		v = NULL;
		if (strncmp(tmpl, "{E}", 3) == 0 ||
		    strncmp(tmpl, "{I}", 3) == 0) {
			snprintf(num, sizeof(num), "%u", tmpl[1] == 'E' ? ext :
			    internal);
			v = num;
		} else if (strncmp(tmpl, "{P}", 3) == 0)
			v = proto;
		if (v != NULL) {
			n = strlen(v);
			tmpl += 3;
		} else {
			v = tmpl++;
			n = 1;
		}
		assert_true(len + n < size);
		memcpy(buf + len, v, n);
		len += n;
	}
	buf[len] = '\0';
}

/* Every shape with every header spelling, "TCP", "tcp" and "UDP": 200
   and the mapping made for the peer. */
static void
test_shapes(void **state)
{
	char body[4096];
	const char *proto;
	struct ut_resp r;
	unsigned int port = 20000, kicks;
	size_t i, j;

	(void)state;
	for (i = 0; i < UT_NELEM(ut_add_shapes); i++) {
		for (j = 0; j < UT_NELEM(ut_add_headers); j++) {
			port++;
			proto = (port % 3) == 0 ? "TCP" : (port % 3) == 1 ?
			    "tcp" : "UDP";
			ut_fill(body, sizeof(body), ut_add_shapes[i], port,
			    proto, port + 1000);
			kicks = x->http_kicks;
			ut_call(UT_CTL, ut_add_headers[j], body, &r);
			if (r.status != 200)
				fail_msg("shape %zu header %zu: %s\n%s", i, j,
				    r.line, r.body);
			assert_true(x->http_kicks > kicks);
			assert_non_null(strstr(r.body,
			    "<u:AddPortMappingResponse xmlns:u=\"" UT_NS1
			    "\"></u:AddPortMappingResponse>"));
			ut_check_mapping(port, strcasecmp(proto, "udp") == 0 ?
			    "UDP" : "TCP", port + 1000);
		}
	}
}

/* The answer is miniupnpd's to the byte (upnpsoap.c), with its headers;
   a self-closing argument-less action. */
static void
test_response_format(void **state)
{
	struct ut_resp r;
	const char *v;

	(void)state;
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(r.line, "HTTP/1.1 200 OK");
	assert_string_equal(r.body, "<?xml version=\"1.0\"?>\r\n"
	    "<s:Envelope xmlns:s=\"" UT_ENV_NS "\" s:encodingStyle=\""
	    UT_ENC_NS "\"><s:Body><u:GetExternalIPAddressResponse xmlns:u=\""
	    UT_NS1 "\"><NewExternalIPAddress>" SCN_WAN "</NewExternalIPAddress>"
	    "</u:GetExternalIPAddressResponse></s:Body></s:Envelope>\r\n");
	assert_string_equal(ut_header(&r, "Content-Type"),
	    "text/xml; charset=\"utf-8\"");
	assert_non_null(ut_header(&r, "EXT"));
	v = ut_header(&r, "Server");
	assert_non_null(v);
	assert_non_null(strstr(v, " UPnP/1.0 pcp-iwfd/"));
	/* an argument-less action as <u:X></u:X> and without a declaration */
	ut_call(UT_CTL, UT_SA("GetStatusInfo"), "<s:Envelope xmlns:s=\""
	    UT_ENV_NS "\"><s:Body><u:GetStatusInfo xmlns:u=\"" UT_NS1 "\">"
	    "</u:GetStatusInfo></s:Body></s:Envelope>", &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewConnectionStatus"), "Connected");
	/* the error: HTTP 500 and miniupnpd's fault, to the byte */
	ut_call(UT_CTL, UT_SA("NoSuchAction"), UT_ENV_S "<u:NoSuchAction "
	    "xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_string_equal(r.line, "HTTP/1.1 500 Internal Server Error");
	assert_string_equal(r.body, "<s:Envelope xmlns:s=\"" UT_ENV_NS
	    "\" s:encodingStyle=\"" UT_ENC_NS "\"><s:Body><s:Fault>"
	    "<faultcode>s:Client</faultcode><faultstring>UPnPError"
	    "</faultstring><detail><UPnPError xmlns=\"urn:schemas-upnp-org:"
	    "control-1-0\"><errorCode>401</errorCode><errorDescription>"
	    "Invalid Action</errorDescription></UPnPError></detail></s:Fault>"
	    "</s:Body></s:Envelope>");
	assert_string_equal(ut_header(&r, "Content-Type"),
	    "text/xml; charset=\"utf-8\"");
}

/* Without a SOAPACTION header the body names the action; the answer's
   namespace is the body's. Another service's path works the same. */
static void
test_no_soapaction(void **state)
{
	struct ut_resp r;

	(void)state;
	ut_call(UT_CTL, "", UT_ENV_S "<u:GetExternalIPAddress xmlns:u=\""
	    UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewExternalIPAddress"), SCN_WAN);
	assert_non_null(strstr(r.body, "xmlns:u=\"" UT_NS1 "\""));
	/* WANCommonInterfaceConfig at its own controlURL */
	ut_call(upnp_service_info(1, UPNP_SVC_WANCIC)->control_path,
	    "SOAPAction: \"urn:schemas-upnp-org:service:"
	    "WANCommonInterfaceConfig:1#GetCommonLinkProperties\"\r\n",
	    UT_ENV_S "<u:GetCommonLinkProperties xmlns:u=\"urn:schemas-upnp-"
	    "org:service:WANCommonInterfaceConfig:1\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "<NewPhysicalLinkStatus>"));
}

/* Expect: 100-continue: evhttp says 100 before the body is sent. */
static void
test_expect_continue(void **state)
{
	struct ut_conn c;
	struct ut_resp r;
	char body[2048], head[1024];

	(void)state;
	ut_body_add(body, sizeof(body), "AddPortMapping", 30000, 30000, "TCP",
	    UT_HOST);
	snprintf(head, sizeof(head), "POST " UT_CTL " HTTP/1.1\r\n"
	    "Host: " UT_HOST ":%u\r\nContent-Type: text/xml\r\n" UT_SA(
	    "AddPortMapping") "Expect: 100-continue\r\nContent-Length: %zu\r\n"
	    "\r\n", x->port, strlen(body));
	ut_connect(&c);
	ut_sends(&c, head);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 100);
	ut_sends(&c, body);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	ut_close(&c);
	ut_check_mapping(30000, "TCP", 30000);
}

/* Two requests on one HTTP/1.1 connection, one after the other and
   pipelined; HTTP/1.0 gets its answer and the close; a chunked body is
   read whole. */
static void
test_keepalive_http10_chunked(void **state)
{
	struct ut_conn c;
	struct ut_resp r;
	char body[2048], req[4096], chunked[4096];

	(void)state;
	ut_connect(&c);
	ut_body_add(body, sizeof(body), "AddPortMapping", 30001, 30001, "UDP",
	    UT_HOST);
	ut_request(req, sizeof(req), "1.1", UT_CTL, UT_SA("AddPortMapping"),
	    body);
	ut_sends(&c, req);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_false(c.eof);
	ut_body_specific(body, sizeof(body), 30001, "UDP");
	ut_request(req, sizeof(req), "1.1", UT_CTL,
	    UT_SA("GetSpecificPortMappingEntry"), body);
	ut_sends(&c, req);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewInternalPort"), "30001");
	ut_close(&c);

	ut_connect(&c);
	ut_request(req, sizeof(req), "1.0", UT_CTL,
	    UT_SA("GetSpecificPortMappingEntry"), body);
	ut_sends(&c, req);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_string_equal(r.line, "HTTP/1.0 200 OK");
	assert_string_equal(ut_out(&r, "NewInternalClient"), UT_HOST);
	assert_true(ut_wait_eof(&c, UT_WAIT_MS));
	ut_close(&c);

	/* pipelined: two requests in one write */
	ut_connect(&c);
	ut_request(req, sizeof(req), "1.1", UT_CTL,
	    UT_SA("GetSpecificPortMappingEntry"), body);
	ut_sends(&c, req);
	ut_sends(&c, req);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewInternalPort"), "30001");
	ut_close(&c);

	snprintf(chunked, sizeof(chunked), "POST " UT_CTL " HTTP/1.1\r\n"
	    "Host: " UT_HOST "\r\n" UT_SA("GetSpecificPortMappingEntry")
	    "Transfer-Encoding: chunked\r\n\r\n10\r\n%.16s\r\n%zx\r\n%s\r\n"
	    "0\r\n\r\n", body, strlen(body) - 16, body + 16);
	ut_connect(&c);
	ut_sends(&c, chunked);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewInternalPort"), "30001");
	ut_close(&c);
}

/* IGD:2: a WANIPConnection:1 client is served in its own namespace; a
   version above ours is no service of ours. */
static void
test_lower_version(void **state)
{
	struct ut_resp r;

	(void)state;
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "<u:GetExternalIPAddressResponse "
	    "xmlns:u=\"" UT_NS1 "\">"));
	ut_call(UT_CTL, UT_HDR("SOAPAction", "\"", UT_NS2,
	    "GetExternalIPAddress"), UT_ENV_S "<u:GetExternalIPAddress "
	    "xmlns:u=\"" UT_NS2 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "xmlns:u=\"" UT_NS2 "\""));
	ut_call(UT_CTL, UT_HDR("SOAPAction", "\"", "urn:schemas-upnp-org:"
	    "service:WANIPConnection:3", "GetExternalIPAddress"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS2 "\"/>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 401);
	/* U-04 in IGD:2: another host's address is 606 */
	{
		char body[2048];

		ut_body_add(body, sizeof(body), "AddPortMapping", 30002, 30002,
		    "TCP", UT_OTHER);
		ut_call(UT_CTL, UT_SA("AddPortMapping"), body, &r);
		assert_int_equal(ut_fault_code(&r), 606);
	}
}

/* X-05 and U-03: what is refused, and how. */
static void
test_refusals(void **state)
{
	struct ut_resp r;
	char body[2048];

	(void)state;
	/* unknown path 404, other methods 405 */
	ut_call("/ctl/nothing", UT_SA("GetExternalIPAddress"), "x", &r);
	assert_int_equal(r.status, 404);
	{
		struct ut_conn c;

		ut_connect(&c);
		ut_sends(&c, "GET " UT_CTL " HTTP/1.1\r\nHost: " UT_HOST
		    "\r\n\r\n");
		assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
		assert_int_equal(r.status, 405);
		assert_string_equal(ut_header(&r, "Allow"), "POST");
		ut_close(&c);
	}
	/* garbage: 402 for the action the header names, 401 without it */
	ut_call(UT_CTL, UT_SA("AddPortMapping"), "this is no XML <<<", &r);
	assert_int_equal(ut_fault_code(&r), 402);
	ut_call(UT_CTL, "", "this is no XML <<<", &r);
	assert_int_equal(ut_fault_code(&r), 401);
	/* XML without an envelope, and an empty Body */
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"),
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>", &r);
	assert_int_equal(ut_fault_code(&r), 402);
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 402);
	/* unknown action 401; header and body disagree 401; the header's
	   service is not the path's 401; no '#' 401 */
	ut_call(UT_CTL, UT_SA("FooBar"), UT_ENV_S "<u:FooBar xmlns:u=\""
	    UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 401);
	assert_string_equal(ut_out(&r, "errorDescription"), "Invalid Action");
	ut_call(UT_CTL, UT_SA("GetStatusInfo"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 401);
	ut_call(UT_CTL, "SOAPAction: \"urn:schemas-upnp-org:service:"
	    "WANCommonInterfaceConfig:1#GetExternalIPAddress\"\r\n", UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 401);
	ut_call(UT_CTL, "SOAPAction: GetExternalIPAddress\r\n", UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 401);
	/* a missing argument 402 */
	ut_call(UT_CTL, UT_SA("AddPortMapping"), UT_ENV_S "<u:AddPortMapping "
	    "xmlns:u=\"" UT_NS1 "\"><NewRemoteHost></NewRemoteHost>"
	    "<NewExternalPort>30003</NewExternalPort><NewProtocol>TCP"
	    "</NewProtocol><NewInternalClient>" UT_HOST "</NewInternalClient>"
	    "</u:AddPortMapping>" UT_ENV_E, &r);
	assert_int_equal(ut_fault_code(&r), 402);
	assert_string_equal(ut_out(&r, "errorDescription"), "Invalid Args");
	/* U-04: the requester is the TCP peer: another address is 718 in
	   IGD:1, and nothing is made */
	ut_body_add(body, sizeof(body), "AddPortMapping", 30004, 30004, "TCP",
	    UT_OTHER);
	ut_call(UT_CTL, UT_SA("AddPortMapping"), body, &r);
	assert_int_equal(ut_fault_code(&r), 718);
	ut_body_specific(body, sizeof(body), 30004, "TCP");
	ut_call(UT_CTL, UT_SA("GetSpecificPortMappingEntry"), body, &r);
	assert_int_equal(ut_fault_code(&r), 714);
	/* ... and the peer's own address is taken */
	ut_body_add(body, sizeof(body), "AddPortMapping", 30004, 30004, "TCP",
	    UT_HOST);
	ut_call(UT_CTL, UT_SA("AddPortMapping"), body, &r);
	assert_int_equal(r.status, 200);
	ut_check_mapping(30004, "TCP", 30004);
}

/* A body over UPNP_MAX_CONTENT: 413, and the server goes on serving. */
static void
test_too_large(void **state)
{
	static char big[UPNP_MAX_CONTENT + 512];
	struct ut_resp r;

	(void)state;
	memset(big, ' ', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	memcpy(big, "<x>", 3);
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), big, &r);
	assert_int_equal(r.status, 413);
	/* a header block over the limit: 400 */
	{
		static char hdr[UPNP_HTTP_MAX_HEADERS + 256];

		memset(hdr, 'a', sizeof(hdr) - 3);
		memcpy(hdr, "X-Filler: ", 10);
		memcpy(hdr + sizeof(hdr) - 3, "\r\n", 3);
		ut_call(UT_CTL, hdr, "<x/>", &r);
		assert_int_equal(r.status, 400);
	}
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
}

/* A body shorter than its Content-Length, then silence: another client is
   served meanwhile, and the stalled one is dropped at the timeout without
   an answer (pupnp 1.8.4 hangs a worker on it). */
static void
test_stalled(void **state)
{
	struct ut_conn stall[3];
	struct ut_resp r;
	uint64_t t0;
	size_t i;

	(void)state;
	t0 = ut_clock_ms();
	for (i = 0; i < UT_NELEM(stall); i++) {
		ut_connect(&stall[i]);
		ut_sends(&stall[i], "POST " UT_CTL " HTTP/1.1\r\nHost: x\r\n"
		    UT_SA("GetExternalIPAddress") "Content-Length: 500\r\n\r\n"
		    "<s:Envelope");
	}
	ut_pump_for(50);
	ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S
	    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	assert_true(ut_clock_ms() - t0 < UT_TIMEOUT_MS - UT_SLACK_MS);
	for (i = 0; i < UT_NELEM(stall); i++) {
		assert_true(ut_wait_eof(&stall[i], UT_WAIT_MS));
		assert_int_equal(stall[i].len, 0);	/* no answer */
		ut_close(&stall[i]);
	}
	/* at the timeout, not before (libevent's cached loop time may run
	   a few ms behind this clock) */
	assert_true(ut_clock_ms() - t0 >= UT_TIMEOUT_MS - UT_SLACK_MS);
}

/* The cap: beyond max_conns a new client waits, and is served once a
   connection closes. */
static void
test_connection_cap(void **state)
{
	struct ut_conn idle[2], c;
	struct ut_resp r;
	char req[2048];
	size_t i;

	(void)state;
	/* a long timeout: only our close frees a slot */
	ut_open_http(UT_WAIT_MS * 2, 2);
	for (i = 0; i < UT_NELEM(idle); i++)
		ut_connect(&idle[i]);
	ut_pump_for(50);
	ut_request(req, sizeof(req), "1.1", UT_CTL,
	    UT_SA("GetExternalIPAddress"), UT_ENV_S "<u:GetExternalIPAddress "
	    "xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E);
	ut_connect(&c);
	ut_sends(&c, req);
	assert_false(ut_wait_resp(&c, &r, UT_QUIET_MS));
	ut_close(&idle[0]);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	ut_close(&c);
	ut_close(&idle[1]);
	/* the slots come back: three calls in a row */
	for (i = 0; i < 3; i++) {
		ut_call(UT_CTL, UT_SA("GetExternalIPAddress"), UT_ENV_S
		    "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>"
		    UT_ENV_E, &r);
		assert_int_equal(r.status, 200);
	}
}

/* ---- the abuse limits (issue 8) ---- */

#define UT_GEIP_BODY	UT_ENV_S "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 \
	"\"/>" UT_ENV_E
#define UT_GSI_BODY	UT_ENV_S "<u:GetStatusInfo xmlns:u=\"" UT_NS1 "\"/>" \
	UT_ENV_E

/* A refused connection: closed (reset) by the server without one byte
   of answer, whatever was sent on it. */
static void
ut_assert_refused(struct ut_conn *c, const char *req)
{
	/* the send may fail already: the reset can come first */
	(void)send(c->fd, req, strlen(req), MSG_NOSIGNAL);
	assert_true(ut_wait_eof(c, UT_WAIT_MS));
	assert_int_equal(c->len, 0);
}

/* Pump until the host holds n connections at the server. */
static void
ut_wait_host_conns(const char *host, size_t n)
{
	struct in6_addr a = scn_addr(host);
	uint64_t end = ut_clock_ms() + UT_WAIT_MS;

	while (upnp_http_host_connections(x->h, &a) != n) {
		if (ut_clock_ms() >= end)
			fail_msg("%s holds %zu connections, not %zu", host,
			    upnp_http_host_connections(x->h, &a), n);
		ut_pump(-1);
	}
}

/*
 * A host's share of the connection slots: host A holds its share of
 * idle connections; its next one is reset at once, unanswered, and
 * counted; host B is served meanwhile, and so is A on a connection it
 * holds; once A closes one, A gets a new one again.
 */
static void
test_host_share(void **state)
{
	struct ut_conn idle[UPNP_HTTP_MAX_CONNS_PER_HOST], extra;
	struct upnp_http_stats st;
	struct ut_resp r;
	char req[2048];
	size_t i;

	(void)state;
	/* the defaults (a share of 8 of the cap of 32), and a timeout
	   long enough that only the test's closes free a slot */
	ut_open_http(UT_WAIT_MS * 2, 0);
	for (i = 0; i < UT_NELEM(idle); i++)
		ut_connect_from(&idle[i], UT_OTHER);
	ut_wait_host_conns(UT_OTHER, UPNP_HTTP_MAX_CONNS_PER_HOST);
	ut_pump_for(UT_SLACK_MS);
	for (i = 0; i < UT_NELEM(idle); i++) {
		ut_recv(&idle[i]);
		assert_false(idle[i].eof);
	}
	ut_request(req, sizeof(req), "1.1", UT_CTL,
	    UT_SA("GetExternalIPAddress"), UT_GEIP_BODY);
	ut_connect_from(&extra, UT_OTHER);
	ut_assert_refused(&extra, req);
	ut_close(&extra);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.host_refused, 1);
	assert_int_equal(st.not_lan, 0);
	assert_int_equal(st.rate_limited, 0);
	/* the refused one counts nowhere */
	assert_int_equal(upnp_http_connections(x->h),
	    UPNP_HTTP_MAX_CONNS_PER_HOST);
	/* another host is served, and the host on what it holds */
	ut_call_from(UT_THIRD, UT_CTL, UT_SA("GetExternalIPAddress"),
	    UT_GEIP_BODY, &r);
	assert_int_equal(r.status, 200);
	ut_call_from(UT_HOST, UT_CTL, UT_SA("GetExternalIPAddress"),
	    UT_GEIP_BODY, &r);
	assert_int_equal(r.status, 200);
	ut_sends(&idle[0], req);
	assert_true(ut_wait_resp(&idle[0], &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	/* a slot freed is the host's again */
	ut_close(&idle[1]);
	ut_wait_host_conns(UT_OTHER, UPNP_HTTP_MAX_CONNS_PER_HOST - 1);
	ut_call_from(UT_OTHER, UT_CTL, UT_SA("GetExternalIPAddress"),
	    UT_GEIP_BODY, &r);
	assert_int_equal(r.status, 200);
	/* at its share again, the host opens a connection and closes an
	   old one at once: the server accepts the new one before it reads
	   the old one's close, and must not refuse it for that */
	ut_connect_from(&idle[1], UT_OTHER);
	ut_wait_host_conns(UT_OTHER, UPNP_HTTP_MAX_CONNS_PER_HOST);
	ut_connect_from(&extra, UT_OTHER);
	ut_close(&idle[2]);
	ut_sends(&extra, req);
	assert_true(ut_wait_resp(&extra, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	ut_close(&extra);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.host_refused, 1);
	for (i = 0; i < UT_NELEM(idle); i++)
		ut_close(&idle[i]);
}

/* The share is never more than the cap, and a smaller one applies. */
static void
test_host_share_small(void **state)
{
	struct upnp_http_params hp;
	struct ut_conn idle[2], extra;
	struct upnp_http_stats st;
	struct ut_resp r;
	size_t i;

	(void)state;
	upnp_http_close(x->h);
	memset(&hp, 0, sizeof(hp));
	hp.base = x->base;
	hp.bind_addr = scn_addr(UT_HOST);
	hp.version = x->version;
	hp.soap = x->s;
	hp.now = scn_world_now;
	hp.clock_arg = &x->w;
	hp.timeout_ms = UT_WAIT_MS * 2;
	hp.max_conns = 4;
	hp.max_conns_per_host = 2;
	assert_non_null(x->h = upnp_http_open(&hp));
	x->port = upnp_http_port(x->h);
	for (i = 0; i < UT_NELEM(idle); i++)
		ut_connect_from(&idle[i], UT_OTHER);
	ut_wait_host_conns(UT_OTHER, 2);
	ut_connect_from(&extra, UT_OTHER);
	ut_assert_refused(&extra, "POST " UT_CTL " HTTP/1.1\r\n");
	ut_close(&extra);
	ut_call_from(UT_THIRD, UT_CTL, UT_SA("GetStatusInfo"), UT_GSI_BODY,
	    &r);
	assert_int_equal(r.status, 200);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.host_refused, 1);
	for (i = 0; i < UT_NELEM(idle); i++)
		ut_close(&idle[i]);
}

/*
 * Split horizon (spec/iwf.md X-02): a control point outside the LAN
 * prefixes is reset before its request is read: no answer, nothing made
 * (its request was in the socket before the server accepted). One inside
 * is served. A LAN with no prefix at all serves nobody.
 */
static void
test_split_horizon(void **state)
{
	struct policy_prefix lan[2];
	struct upnp_http_stats st;
	struct ut_conn c;
	struct ut_resp r;
	char body[2048], req[4096];

	(void)state;
	memset(lan, 0, sizeof(lan));
	lan[0].addr = scn_addr(UT_HOST);
	lan[0].prefix_len = UTIL_ADDR_BITS;
	lan[1].addr = scn_addr(UT_OTHER);
	lan[1].prefix_len = UTIL_ADDR_BITS;
	x->lan = lan;
	x->n_lan = UT_NELEM(lan);
	ut_open_http(UT_TIMEOUT_MS, 0);
	/* the server keeps its own copy */
	memset(lan, 0, sizeof(lan));
	ut_body_add(body, sizeof(body), "AddPortMapping", 30010, 30010, "TCP",
	    UT_THIRD);
	ut_request(req, sizeof(req), "1.1", UT_CTL, UT_SA("AddPortMapping"),
	    body);
	ut_connect_from(&c, UT_THIRD);
	ut_assert_refused(&c, req);
	ut_close(&c);
	ut_pump_for(UT_QUIET_MS);
	assert_int_equal(table_count(x->w.t), 0);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.not_lan, 1);
	assert_int_equal(st.host_refused, 0);
	assert_int_equal(upnp_http_connections(x->h), 0);
	/* inside: served */
	ut_body_add(body, sizeof(body), "AddPortMapping", 30011, 30011, "TCP",
	    UT_OTHER);
	ut_call_from(UT_OTHER, UT_CTL, UT_SA("AddPortMapping"), body, &r);
	assert_int_equal(r.status, 200);
	assert_int_equal(table_count(x->w.t), 1);
	ut_call_from(UT_HOST, UT_CTL, UT_SA("GetStatusInfo"), UT_GSI_BODY,
	    &r);
	assert_int_equal(r.status, 200);
	/* prefixes given, none in them: nobody (fails closed) */
	x->n_lan = 0;
	ut_open_http(UT_TIMEOUT_MS, 0);
	ut_connect_from(&c, UT_HOST);
	ut_assert_refused(&c, req);
	ut_close(&c);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.not_lan, 1);
	x->lan = &x->w.lan;
	x->n_lan = 1;
}

/* ---- with the carrier: answers that come later ---- */

static void
srv_answer_last(uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	scn_answer_last(&x->w, result, lifetime, ext_port);
	scn_end_turn(&x->w);
}

/* Send an AddPortMapping on c and pump until the carrier was asked. */
static void
ut_add_pending(struct ut_conn *c, unsigned int port)
{
	char body[2048], req[4096];
	size_t sent = x->w.wire.nsent;
	uint64_t end;

	ut_body_add(body, sizeof(body), "AddPortMapping", port, port, "TCP",
	    UT_HOST);
	ut_request(req, sizeof(req), "1.1", UT_CTL, UT_SA("AddPortMapping"),
	    body);
	ut_connect(c);
	ut_sends(c, req);
	end = ut_clock_ms() + UT_WAIT_MS;
	while (x->w.wire.nsent == sent) {
		assert_true(ut_clock_ms() < end);
		ut_pump(c->fd);
	}
}

/* The answer comes when the carrier grants; the connection stays quiet
   (and is not timed out) until then. */
static void
test_deferred(void **state)
{
	struct ut_conn c;
	struct ut_resp r;
	char req[2048];

	(void)state;
	ut_add_pending(&c, 40000);
	/* the next request on the connection waits behind it */
	ut_request(req, sizeof(req), "1.1", UT_CTL, UT_SA("GetStatusInfo"),
	    UT_ENV_S "<u:GetStatusInfo xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E);
	ut_sends(&c, req);
	/* longer than the inactivity timeout: a held request is not cut */
	assert_false(ut_wait_resp(&c, &r, UT_TIMEOUT_MS + UT_QUIET_MS));
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 40000);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_non_null(strstr(r.body, "<u:AddPortMappingResponse"));
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	assert_string_equal(ut_out(&r, "NewConnectionStatus"), "Connected");
	ut_close(&c);
	/* and a carrier that never answers: 501 at the action layer's
	   deadline */
	ut_add_pending(&c, 40001);
	ut_time_passes(UPNP_CLIENT_WAIT_MS);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(ut_fault_code(&r), 501);
	ut_close(&c);
}

/* The client goes away while its action waits: the late answer is
   written into a dead connection, without a crash or a leak (ASan), and
   the server goes on serving. */
static void
test_client_gone(void **state)
{
	struct ut_conn c;
	struct ut_resp r;

	(void)state;
	ut_add_pending(&c, 40002);
	ut_close(&c);
	ut_pump_for(UT_QUIET_MS);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 40002);
	ut_pump_for(UT_QUIET_MS);
	/* a reset instead of a FIN */
	ut_add_pending(&c, 40003);
	{
		struct linger lg = { 1, 0 };

		assert_int_equal(setsockopt(c.fd, SOL_SOCKET, SO_LINGER, &lg,
		    sizeof(lg)), 0);
	}
	ut_close(&c);
	ut_pump_for(UT_QUIET_MS);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 40003);
	ut_pump_for(UT_QUIET_MS);
	ut_call(UT_CTL, UT_SA("GetStatusInfo"), UT_ENV_S "<u:GetStatusInfo "
	    "xmlns:u=\"" UT_NS1 "\"/>" UT_ENV_E, &r);
	assert_int_equal(r.status, 200);
	ut_wait_no_conns();
	/* one left pending at close: cancelled there (the teardown) */
	ut_add_pending(&c, 40004);
	assert_int_equal(upnp_http_connections(x->h), 1);
	x->pending_at_close = true;
	ut_close(&c);
}

/*
 * The per-host request rate (issue 8): with a burst of 3 and 1 a second,
 * host A's fourth action is answered 501 Action Failed and never reaches
 * the action layer (an AddPortMapping over the rate sends nothing to the
 * carrier and makes nothing); host B is served meanwhile; a second later
 * A has a token again.
 */
static void
test_rate_limit(void **state)
{
	const struct ratelimit_params rp = { .rate = 1, .burst = 3,
	    .seed = 1 };
	struct upnp_http_stats st;
	struct ut_conn c;
	struct ut_resp r;
	char body[2048];
	size_t sent, i;

	(void)state;
	assert_non_null(x->rl = ratelimit_new(&rp));
	ut_open_http(UT_TIMEOUT_MS, 0);
	for (i = 0; i < rp.burst; i++) {
		ut_call(UT_CTL, UT_SA("GetStatusInfo"), UT_GSI_BODY, &r);
		assert_int_equal(r.status, 200);
	}
	sent = x->w.wire.nsent;
	ut_body_add(body, sizeof(body), "AddPortMapping", 40010, 40010, "TCP",
	    UT_HOST);
	ut_call(UT_CTL, UT_SA("AddPortMapping"), body, &r);
	assert_int_equal(ut_fault_code(&r), 501);
	assert_string_equal(ut_out(&r, "errorDescription"), "Action Failed");
	ut_pump_for(UT_SLACK_MS);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(table_count(x->w.t), 0);
	/* charged before parsing: a broken request gets 501, not 402 */
	ut_call(UT_CTL, UT_SA("GetStatusInfo"), "no XML <<<", &r);
	assert_int_equal(ut_fault_code(&r), 501);
	/* another host has its own bucket */
	ut_call_from(UT_OTHER, UT_CTL, UT_SA("GetStatusInfo"), UT_GSI_BODY,
	    &r);
	assert_int_equal(r.status, 200);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.rate_limited, 2);
	assert_int_equal(st.host_refused, 0);
	assert_int_equal(st.not_lan, 0);
	/* a second later A has one token: its AddPortMapping reaches the
	   carrier and is granted */
	ut_time_passes(UT_MS);
	ut_add_pending(&c, 40010);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 40010);
	assert_true(ut_wait_resp(&c, &r, UT_WAIT_MS));
	assert_int_equal(r.status, 200);
	ut_close(&c);
	ut_call(UT_CTL, UT_SA("GetStatusInfo"), UT_GSI_BODY, &r);
	assert_int_equal(ut_fault_code(&r), 501);
	upnp_http_stats(x->h, &st);
	assert_int_equal(st.rate_limited, 3);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup_teardown(test_shapes, setup_v1_last,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_response_format,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_no_soapaction,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_expect_continue,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_keepalive_http10_chunked,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_lower_version,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_refusals, setup_v1_last,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_too_large, setup_v1_last,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_stalled, setup_v1_last,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_connection_cap,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_deferred, setup_v1,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_client_gone, setup_v1,
		    ut_teardown),
		cmocka_unit_test_setup_teardown(test_host_share,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_host_share_small,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_split_horizon,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_rate_limit, setup_v1,
		    ut_teardown),
	};

	/* as the daemon (iwfd.c): a write to a closed peer is an error */
	signal(SIGPIPE, SIG_IGN);
	/* STYLE.md (libevent): catch misuse of events and bufferevents */
	event_enable_debug_mode();
	return cmocka_run_group_tests(tests, NULL, NULL);
}
