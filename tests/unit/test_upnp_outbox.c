/*
 * test_upnp_outbox.c - UPnP SOAP answers held until the turn's commit
 * (docs/state.md "Replies wait for the commit"): our evhttp control
 * server on 127.0.0.1 with the real action layer on the proxy (the
 * gateway the last NAT: answered at once) and an outbox. An
 * AddPortMapping success is not on the wire before the release and is
 * after it; when the commit failed it becomes 501 ActionFailed while the
 * mapping stays in the table (the same host asking again gets it); a
 * GetExternalIPAddress answer is sent either way; closing the server
 * with an answer held discards it.
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
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>

#include "outbox.h"
#include "pcp_wire.h"
#include "scenario.h"
#include "table.h"
#include "upnp_http.h"
#include "upnp_soap.h"

#define UO_LAN		"127.0.0.0"
#define UO_LAN_PREFIX_LEN (96 + 8)
#define UO_HOST		"127.0.0.1"
#define UO_NS1		"urn:schemas-upnp-org:service:WANIPConnection:1"
#define UO_CTL		"/ctl/IPConn"
#define UO_ENV_S	"<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\""	\
	"http://schemas.xmlsoap.org/soap/envelope/\" s:encodingStyle=\""	\
	"http://schemas.xmlsoap.org/soap/encoding/\"><s:Body>"
#define UO_ENV_E	"</s:Body></s:Envelope>\r\n"
#define UO_QUIET_MS	150
#define UO_WAIT_MS	3000
#define UO_BUF		8192

struct uo {
	struct scn_world	 w;
	struct upnp_soap	*s;
	struct event_base	*base;
	struct upnp_http	*h;
	struct outbox		*ob;
	uint16_t		 port;
};

static bool
uo_connected(void *arg)
{
	(void)arg;
	return true;
}

static bool
uo_ext_addr(void *arg, struct in6_addr *a)
{
	(void)arg;
	*a = scn_addr("203.0.113.9");
	return true;
}

static uint32_t
uo_uptime(void *arg)
{
	(void)arg;
	return 1;
}

static void
uo_kick(void *arg)
{
	(void)arg;
}

static void
uo_open(struct uo *u)
{
	const struct scn_world_conf conf = {
		.lan = UO_LAN,
		.lan_prefix_len = UO_LAN_PREFIX_LEN,
	};
	struct upnp_soap_params sp;
	struct upnp_http_params hp;
	struct outbox_params op = { .kick = uo_kick };

	memset(u, 0, sizeof(*u));
	assert_int_equal(scn_world_init(&u->w, &conf), 0);
	memset(&sp, 0, sizeof(sp));
	sp.version = 1;
	sp.proxy = u->w.p;
	sp.table = u->w.t;
	memcpy(sp.nonce_key, u->w.key, sizeof(u->w.key));
	sp.connected = uo_connected;
	sp.ext_addr = uo_ext_addr;
	sp.uptime = uo_uptime;
	sp.wanconn_udn = "uuid:11111111-2222-4333-8444-555555555555";
	assert_non_null(u->s = upnp_soap_new(&sp));
	assert_non_null(u->base = event_base_new());
	assert_non_null(u->ob = outbox_new(&op));
	memset(&hp, 0, sizeof(hp));
	hp.base = u->base;
	hp.bind_addr = scn_addr(UO_HOST);
	hp.version = 1;
	hp.soap = u->s;
	hp.now = scn_world_now;
	hp.clock_arg = &u->w;
	hp.outbox = u->ob;
	assert_non_null(u->h = upnp_http_open(&hp));
	u->port = upnp_http_port(u->h);
}

static void
uo_close(struct uo *u)
{
	upnp_http_close(u->h);
	outbox_free(u->ob);
	event_base_free(u->base);
	upnp_soap_free(u->s);
	scn_world_free(&u->w);
}

static int
uo_call(struct uo *u, const char *action, const char *args)
{
	char body[2048], req[4096];
	struct sockaddr_in sin;
	int fd, n;

	n = snprintf(body, sizeof(body), UO_ENV_S "<u:%s xmlns:u=\"" UO_NS1
	    "\">%s</u:%s>" UO_ENV_E, action, args, action);
	assert_true(n > 0 && (size_t)n < sizeof(body));
	n = snprintf(req, sizeof(req), "POST " UO_CTL " HTTP/1.1\r\nHost: "
	    UO_HOST ":%u\r\nContent-Type: text/xml; charset=\"utf-8\"\r\n"
	    "SOAPAction: \"" UO_NS1 "#%s\"\r\nContent-Length: %zu\r\n\r\n%s",
	    u->port, action, strlen(body), body);
	assert_true(n > 0 && (size_t)n < sizeof(req));
	memset(&sin, 0, sizeof(sin));
	sin.sin_family = AF_INET;
	sin.sin_port = htons(u->port);
	assert_int_equal(inet_pton(AF_INET, UO_HOST, &sin.sin_addr), 1);
	assert_true((fd = socket(AF_INET, SOCK_STREAM, 0)) >= 0);
	assert_int_equal(connect(fd, (struct sockaddr *)&sin, sizeof(sin)),
	    0);
	assert_int_equal(send(fd, req, (size_t)n, MSG_NOSIGNAL), n);
	return fd;
}

/* Run the loop for ms; what arrived on fd (NUL-terminated), its length. */
static size_t
uo_pump(struct uo *u, int fd, unsigned int ms, char *buf, size_t cap)
{
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	size_t len = 0;
	ssize_t n;
	unsigned int waited;

	for (waited = 0; waited < ms; waited += 5) {
		(void)event_base_loop(u->base, EVLOOP_NONBLOCK);
		if (poll(&pfd, 1, 5) == 1) {
			n = recv(fd, buf + len, cap - 1 - len, MSG_DONTWAIT);
			if (n > 0)
				len += (size_t)n;
			if (n > 0 && strstr(buf, "</s:Envelope>") != NULL)
				break;
			if (n == 0)
				break;
		}
		buf[len] = '\0';
	}
	buf[len] = '\0';
	return len;
}

#define UO_ADD	"<NewRemoteHost></NewRemoteHost><NewExternalPort>%u"	\
	"</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>%u"\
	"</NewInternalPort><NewInternalClient>" UO_HOST "</NewInternalClient>"\
	"<NewEnabled>1</NewEnabled><NewPortMappingDescription>t"	\
	"</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>"

static int
uo_add(struct uo *u, unsigned int port)
{
	char args[1024];

	snprintf(args, sizeof(args), UO_ADD, port, port);
	return uo_call(u, "AddPortMapping", args);
}

static void
test_add_after_commit(void **state)
{
	struct uo u;
	char buf[UO_BUF];
	int fd;

	(void)state;
	uo_open(&u);
	fd = uo_add(&u, 8080);
	/* answered by the action layer, held */
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	assert_int_equal(table_count(u.w.t), 1);
	assert_int_equal(outbox_count(u.ob), 1);
	outbox_release(u.ob, true);
	assert_true(uo_pump(&u, fd, UO_WAIT_MS, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(buf, "AddPortMappingResponse"));
	close(fd);
	uo_close(&u);
}

static void
test_add_commit_failed(void **state)
{
	struct uo u;
	char buf[UO_BUF];
	int fd;

	(void)state;
	uo_open(&u);
	fd = uo_add(&u, 8080);
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	outbox_release(u.ob, false);
	assert_true(uo_pump(&u, fd, UO_WAIT_MS, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 500 "));
	assert_non_null(strstr(buf, "<errorCode>501</errorCode>"));
	close(fd);
	/* the mapping is there: the same host asking again gets it */
	assert_int_equal(table_count(u.w.t), 1);
	fd = uo_add(&u, 8080);
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	outbox_release(u.ob, true);
	assert_true(uo_pump(&u, fd, UO_WAIT_MS, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	close(fd);
	/* past the end: the 713 fault, held and sent like the rest */
	fd = uo_call(&u, "GetGenericPortMappingEntry",
	    "<NewPortMappingIndex>5</NewPortMappingIndex>");
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	outbox_release(u.ob, true);
	assert_true(uo_pump(&u, fd, UO_WAIT_MS, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "<errorCode>713</errorCode>"));
	close(fd);
	/* a question about nothing durable is answered either way */
	fd = uo_call(&u, "GetExternalIPAddress", "");
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	outbox_release(u.ob, false);
	assert_true(uo_pump(&u, fd, UO_WAIT_MS, buf, sizeof(buf)) > 0);
	assert_non_null(strstr(buf, "HTTP/1.1 200 OK"));
	assert_non_null(strstr(buf, "203.0.113.9"));
	close(fd);
	uo_close(&u);
}

/* Closed with an answer held: dropped with its connection, no crash,
   nothing left in the outbox for it. */
static void
test_close_with_held(void **state)
{
	struct uo u;
	char buf[UO_BUF];
	int fd;

	(void)state;
	uo_open(&u);
	fd = uo_add(&u, 8080);
	assert_int_equal(uo_pump(&u, fd, UO_QUIET_MS, buf, sizeof(buf)), 0);
	assert_int_equal(outbox_count(u.ob), 1);
	upnp_http_close(u.h);
	u.h = NULL;
	assert_int_equal(outbox_stats(u.ob)->discarded, 1);
	outbox_release(u.ob, true);
	assert_int_equal(outbox_stats(u.ob)->sent, 0);
	close(fd);
	uo_close(&u);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_add_after_commit),
		cmocka_unit_test(test_add_commit_failed),
		cmocka_unit_test(test_close_with_held),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
