/*
 * test_upnp_soap.c - the UPnP IGD action layer (iwf/upnp_soap.c) on a fake
 * clock, wired the way the daemon wires it: the table, the policy (LAN
 * 192.0.2.0/24), the upstream PCP engine with a recording transport and a
 * scripted carrier (or none: the gateway is the last NAT), the fake NAT
 * backend, the proxy core, and upnp_soap in IGD:1 or IGD:2 mode.
 *
 * Spec IDs: spec/iwf.md §3.3-§3.6 (U-03..U-13), §4 (I-01..I-15), X-05.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ixml.h>
#include <miniupnpc/portlistingparse.h>

#include "backend.h"
#include "backend_fake.h"
#include "iwf_nonce.h"
#include "ixml_action.h"
#include "map.h"
#include "map_err.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "scenario.h"
#include "table.h"
#include "upnp_desc.h"
#include "upnp_soap.h"
#include "upstream.h"

#define UT_GW_LAN	"192.0.2.1"
#define UT_HOST		"192.0.2.10"
#define UT_HOST2	"192.0.2.11"
#define UT_HOST3	"192.0.2.12"
#define UT_MAX_LIFETIME	86400u
#define UT_MS		1000u
#define UT_UDN		"uuid:11111111-2222-4333-8444-555555555555"
#define UT_MAX_ARGS	16

/* A reply delivered through done, copied. */
struct ut_done {
	bool		 called;
	int		 err;
	size_t		 nout;
	char		 name[UPNP_OUT_MAX][UPNP_NAME_MAX + 1];
	char		 value[UPNP_OUT_MAX][UPNP_OUT_VALUE_MAX + 1];
};

struct ut {
	struct scn_world w;		/* the proxy, its engine, the carrier */
	unsigned int	 version;
	struct upnp_soap *s;
	bool		 connected;
	struct upnp_wan_counters counters;
	struct ut_done	 done[4];
	struct upnp_reply reply;	/* the last answer at once */
	bool		 answered;	/* ... came at once */
};

static struct ut *x;

/* ---- glue ---- */

static bool
ut_connected(void *arg)
{
	(void)arg;
	return x->connected;
}

static bool
ut_ext_addr(void *arg, struct in6_addr *a)
{
	(void)arg;
	return proxy_external_addr(x->w.p, a);
}

static bool
ut_counters(void *arg, struct upnp_wan_counters *c)
{
	(void)arg;
	*c = x->counters;
	return true;
}

static uint32_t
ut_uptime(void *arg)
{
	(void)arg;
	return (uint32_t)((x->w.now - SCN_T0) / UT_MS);
}

/* The address probe's mapping is the gateway's own: hidden. */
static bool
ut_hidden(void *arg, const struct mapping *m)
{
	struct in6_addr gw = scn_addr(UT_GW_LAN);

	(void)arg;
	return IN6_ARE_ADDR_EQUAL(&m->internal_addr, &gw);
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

static void
ut_turn_end(void *arg, uint64_t now)
{
	(void)arg;
	upnp_soap_tick(x->s, now);
}

/* The end of a loop turn: the daemon commits and ticks upnp_soap. */
#define END_TURN()	scn_end_turn(&x->w)
/* The daemon ends its turn before the clock moves, and at the end. */
#define TIME_PASSES(ms)	do {						\
	END_TURN();							\
	scn_time_passes(&x->w, (ms));					\
	END_TURN();							\
} while (0)

/* ---- setup ---- */

static int
ut_setup(unsigned int version, bool upstream)
{
	/* the last NAT without local rules answers at once (proxy.h);
	   with an upstream, local rules go through the fake backend */
	const struct scn_world_conf conf = {
		.upstream = upstream,
		.backend_new = upstream ? backend_fake_new : NULL,
		.max_lifetime = UT_MAX_LIFETIME,
		.timers = ut_timers,
		.ntimers = sizeof(ut_timers) / sizeof(ut_timers[0]),
		.turn_end = ut_turn_end,
	};
	struct upnp_soap_params sp;

	x = calloc(1, sizeof(*x));
	assert_non_null(x);
	x->version = version;
	x->connected = true;
	assert_int_equal(scn_world_init(&x->w, &conf), 0);
	memset(&sp, 0, sizeof(sp));
	sp.version = version;
	sp.proxy = x->w.p;
	sp.table = x->w.t;
	/* the world's policy: no third_party_host until a test lists one */
	sp.policy = &x->w.pol;
	memcpy(sp.nonce_key, x->w.key, sizeof(x->w.key));
	sp.connected = ut_connected;
	sp.ext_addr = ut_ext_addr;
	sp.wan_counters = ut_counters;
	sp.uptime = ut_uptime;
	sp.cb_arg = x;
	sp.upstream = upstream;
	sp.wanconn_udn = UT_UDN;
	sp.hidden = ut_hidden;
	assert_non_null(x->s = upnp_soap_new(&sp));
	return 0;
}

static int
setup_v1(void **state)
{
	(void)state;
	return ut_setup(1, true);
}

static int
setup_v2(void **state)
{
	(void)state;
	return ut_setup(2, true);
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
ut_teardown(void **state)
{
	(void)state;
	END_TURN();
	upnp_reply_free(&x->reply);
	upnp_soap_free(x->s);
	scn_world_free(&x->w);
	free(x);
	x = NULL;
	return 0;
}

/* ---- the control point ---- */

static void
ut_done_fn(void *arg, const struct upnp_reply *r)
{
	struct ut_done *d = arg;
	size_t i;

	assert_false(d->called);
	d->called = true;
	d->err = r->err;
	d->nout = r->nout;
	for (i = 0; i < r->nout; i++) {
		snprintf(d->name[i], sizeof(d->name[i]), "%s", r->out[i].name);
		snprintf(d->value[i], sizeof(d->value[i]), "%s",
		    r->out[i].long_value != NULL ? r->out[i].long_value :
		    r->out[i].value);
	}
}

/* Build an action from "Name=Value" strings (NULL-terminated). */
static void
ut_action(struct upnp_action *a, enum upnp_service svc, const char *host,
    const char *name, const char *const *args)
{
	const char *eq;
	size_t i;

	memset(a, 0, sizeof(*a));
	a->service = svc;
	snprintf(a->name, sizeof(a->name), "%s", name);
	a->requester = scn_addr(host);
	for (i = 0; args != NULL && args[i] != NULL; i++) {
		assert_true(i < UPNP_ARGS_MAX);
		eq = strchr(args[i], '=');
		assert_non_null(eq);
		snprintf(a->args[i].name, sizeof(a->args[i].name), "%.*s",
		    (int)(eq - args[i]), args[i]);
		snprintf(a->args[i].value, sizeof(a->args[i].value), "%s",
		    eq + 1);
		a->nargs++;
	}
}

/*
 * Run an action from host; the answer at once lands in x->reply
 * (x->answered true), a later one in x->done[slot]. Returns the error
 * code of the answer at once, or -1 when it comes later.
 */
static int
ut_run_svc(size_t slot, enum upnp_service svc, const char *host,
    const char *name, const char *const *args)
{
	struct upnp_action a;

	ut_action(&a, svc, host, name, args);
	upnp_reply_free(&x->reply);
	memset(&x->done[slot], 0, sizeof(x->done[slot]));
	x->answered = upnp_soap_run(x->s, &a, x->w.now, ut_done_fn,
	    &x->done[slot], &x->reply);
	END_TURN();
	return x->answered ? x->reply.err : -1;
}

static int
ut_run(const char *host, const char *name, const char *const *args)
{
	return ut_run_svc(0, UPNP_SVC_WANIPC, host, name, args);
}

static const char *
ut_out(const char *name)
{
	size_t i;

	assert_true(x->answered);
	for (i = 0; i < x->reply.nout; i++)
		if (strcmp(x->reply.out[i].name, name) == 0)
			return x->reply.out[i].long_value != NULL ?
			    x->reply.out[i].long_value : x->reply.out[i].value;
	fail_msg("no out argument %s", name);
	return NULL;
}

static const char *
ut_done_out(size_t slot, const char *name)
{
	const struct ut_done *d = &x->done[slot];
	size_t i;

	assert_true(d->called);
	for (i = 0; i < d->nout; i++)
		if (strcmp(d->name[i], name) == 0)
			return d->value[i];
	fail_msg("no out argument %s", name);
	return NULL;
}

/* AddPortMapping args with the given values. */
struct ut_add {
	char	 args[8][80];
	const char *v[9];
};

static const char *const *
ut_add_args(struct ut_add *b, const char *host, unsigned int ext,
    unsigned int internal, const char *proto, unsigned int lease,
    const char *desc)
{
	size_t i;

	snprintf(b->args[0], sizeof(b->args[0]), "NewRemoteHost=");
	snprintf(b->args[1], sizeof(b->args[1]), "NewExternalPort=%u", ext);
	snprintf(b->args[2], sizeof(b->args[2]), "NewProtocol=%s", proto);
	snprintf(b->args[3], sizeof(b->args[3]), "NewInternalPort=%u",
	    internal);
	snprintf(b->args[4], sizeof(b->args[4]), "NewInternalClient=%s", host);
	snprintf(b->args[5], sizeof(b->args[5]), "NewEnabled=1");
	snprintf(b->args[6], sizeof(b->args[6]),
	    "NewPortMappingDescription=%s", desc);
	snprintf(b->args[7], sizeof(b->args[7]), "NewLeaseDuration=%u", lease);
	for (i = 0; i < 8; i++)
		b->v[i] = b->args[i];
	b->v[8] = NULL;
	return b->v;
}

static int
ut_add(size_t slot, const char *host, const char *action, unsigned int ext,
    unsigned int internal, const char *proto, unsigned int lease)
{
	struct ut_add b;

	return ut_run_svc(slot, UPNP_SVC_WANIPC, host, action,
	    ut_add_args(&b, host, ext, internal, proto, lease, "test"));
}

static struct mapping *
ut_find(const char *host, uint8_t proto, uint16_t port)
{
	struct in6_addr a = scn_addr(host);

	return table_find_internal(x->w.t, proto, &a, port);
}

/* ---- the scripted carrier ---- */

static void
srv_answer_last(uint8_t result, uint32_t lifetime, uint16_t ext_port)
{
	scn_answer_last(&x->w, result, lifetime, ext_port);
	END_TURN();
}

/* A whole Add through the carrier, granted with outer port `outer`. */
static void
ut_grant(const char *host, const char *action, unsigned int ext,
    unsigned int internal, const char *proto, unsigned int lease,
    uint16_t outer)
{
	assert_int_equal(ut_add(1, host, action, ext, internal, proto, lease),
	    -1);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, outer);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 0);
}

/* ---- argument copy out of the DOM ---- */

/* The action element: the first element child of Body, or the document
   element (the glue hands the action element; the fuzz target does
   this too). */
static IXML_Node *
ut_find_action(IXML_Document *doc)
{
	IXML_Node *n = ixmlNode_getFirstChild(&doc->n), *c;
	const char *name;

	while (n != NULL && ixmlNode_getNodeType(n) != eELEMENT_NODE)
		n = ixmlNode_getNextSibling(n);
	if (n == NULL)
		return NULL;
	for (c = ixmlNode_getFirstChild(n); c != NULL;
	    c = ixmlNode_getNextSibling(c)) {
		if (ixmlNode_getNodeType(c) != eELEMENT_NODE)
			continue;
		name = ixmlNode_getLocalName(c);
		if (name != NULL && strcmp(name, "Body") == 0) {
			for (c = ixmlNode_getFirstChild(c); c != NULL;
			    c = ixmlNode_getNextSibling(c))
				if (ixmlNode_getNodeType(c) == eELEMENT_NODE)
					return c;
			return NULL;
		}
	}
	return n;
}

static void
ut_parse(const char *xml, struct upnp_action *a)
{
	IXML_Document *doc = NULL;

	memset(a, 0, sizeof(*a));
	assert_int_equal(ixmlParseBufferEx(xml, &doc), IXML_SUCCESS);
	upnp_action_from_xml(ut_find_action(doc), a);
	ixmlDocument_free(doc);
}

static const char *
ut_arg(const struct upnp_action *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->nargs; i++)
		if (strcmp(a->args[i].name, name) == 0)
			return a->args[i].value;
	return NULL;
}

#define UT_ENV_S	"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/" \
	"envelope/\" s:encodingStyle=\"http://schemas.xmlsoap.org/soap/" \
	"encoding/\"><s:Body>"
#define UT_ENV_E	"</s:Body></s:Envelope>"
#define UT_NS1		"urn:schemas-upnp-org:service:WANIPConnection:1"

/* The shapes deployed clients send (X-05, issue 6 "raw SOAP"). */
static void
test_from_xml_shapes(void **state)
{
	struct upnp_action a;

	(void)state;
	/* miniupnpc 2.2.4 (upnpcommands.c / minisoap.c) */
	ut_parse("<?xml version=\"1.0\"?>\r\n" UT_ENV_S
	    "<u:AddPortMapping xmlns:u=\"" UT_NS1 "\">"
	    "<NewRemoteHost></NewRemoteHost><NewExternalPort>5000"
	    "</NewExternalPort><NewProtocol>TCP</NewProtocol>"
	    "<NewInternalPort>5000</NewInternalPort><NewInternalClient>"
	    "192.0.2.10</NewInternalClient><NewEnabled>1</NewEnabled>"
	    "<NewPortMappingDescription>libminiupnpc</NewPortMappingDescription>"
	    "<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	    UT_ENV_E, &a);
	assert_false(a.malformed);
	assert_string_equal(a.name, "AddPortMapping");
	assert_int_equal(a.nargs, 8);
	assert_string_equal(ut_arg(&a, "NewRemoteHost"), "");
	assert_string_equal(ut_arg(&a, "NewExternalPort"), "5000");
	assert_string_equal(ut_arg(&a, "NewPortMappingDescription"),
	    "libminiupnpc");
	/* other prefixes, dt:dt types, pretty-printed, self-closing, no
	   XML declaration, values trimmed */
	ut_parse("<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org"
	    "/soap/envelope/\" xmlns:dt=\"urn:schemas-microsoft-com:"
	    "datatypes\">\n  <SOAP-ENV:Body>\n    <m:AddPortMapping "
	    "xmlns:m=\"" UT_NS1 "\">\n      <NewRemoteHost/>\n"
	    "      <NewExternalPort dt:dt=\"ui2\"> 6000 </NewExternalPort>\n"
	    "      <NewProtocol dt:dt=\"string\">udp</NewProtocol>\n"
	    "    </m:AddPortMapping>\n  </SOAP-ENV:Body>\n"
	    "</SOAP-ENV:Envelope>\n", &a);
	assert_false(a.malformed);
	assert_string_equal(a.name, "AddPortMapping");
	assert_int_equal(a.nargs, 3);
	assert_string_equal(ut_arg(&a, "NewRemoteHost"), "");
	assert_string_equal(ut_arg(&a, "NewExternalPort"), "6000");
	assert_string_equal(ut_arg(&a, "NewProtocol"), "udp");
	/* arguments with a prefix of their own */
	ut_parse(UT_ENV_S "<u:DeletePortMapping xmlns:u=\"" UT_NS1 "\">"
	    "<u:NewRemoteHost></u:NewRemoteHost><u:NewExternalPort>7"
	    "</u:NewExternalPort></u:DeletePortMapping>" UT_ENV_E, &a);
	assert_false(a.malformed);
	assert_string_equal(ut_arg(&a, "NewExternalPort"), "7");
	/* an argument-less action, self-closing */
	ut_parse(UT_ENV_S "<u:GetExternalIPAddress xmlns:u=\"" UT_NS1 "\"/>"
	    UT_ENV_E, &a);
	assert_false(a.malformed);
	assert_string_equal(a.name, "GetExternalIPAddress");
	assert_int_equal(a.nargs, 0);
	/* entities decoded, CDATA taken, a comment skipped */
	ut_parse(UT_ENV_S "<u:AddPortMapping xmlns:u=\"" UT_NS1 "\">"
	    "<NewPortMappingDescription>a &amp; b<!-- c --><![CDATA[<d>]]>"
	    "</NewPortMappingDescription></u:AddPortMapping>" UT_ENV_E, &a);
	assert_false(a.malformed);
	assert_string_equal(ut_arg(&a, "NewPortMappingDescription"),
	    "a & b<d>");
	/* the action element as the document element, and a name already
	   set by the glue kept */
	memset(&a, 0, sizeof(a));
	snprintf(a.name, sizeof(a.name), "GetStatusInfo");
	{
		IXML_Document *doc = NULL;

		assert_int_equal(ixmlParseBufferEx("<u:X xmlns:u=\"" UT_NS1
		    "\"><A>1</A></u:X>", &doc), IXML_SUCCESS);
		upnp_action_from_xml(doc, &a);
		ixmlDocument_free(doc);
	}
	assert_false(a.malformed);
	assert_string_equal(a.name, "GetStatusInfo");
	assert_string_equal(ut_arg(&a, "A"), "1");
}

/* what cannot be copied makes the action malformed (402). */
static void
test_from_xml_malformed(void **state)
{
	static const char *const bad[] = {
		/* markup inside a value */
		"<u:A xmlns:u=\"" UT_NS1 "\"><N><x/></N></u:A>",
		/* a name twice */
		"<u:A xmlns:u=\"" UT_NS1 "\"><N>1</N><N>2</N></u:A>",
		/* text between the arguments */
		"<u:A xmlns:u=\"" UT_NS1 "\">junk<N>1</N></u:A>",
	};
	struct upnp_action a;
	char xml[4096], name[UPNP_NAME_MAX + 1], *p;
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ut_parse(bad[i], &a);
		assert_true(a.malformed);
	}
	/* UPNP_ARGS_MAX arguments are fine, one more is not */
	p = xml + sprintf(xml, "<u:A xmlns:u=\"" UT_NS1 "\">");
	for (i = 0; i < UPNP_ARGS_MAX; i++)
		p += sprintf(p, "<N%zu>%zu</N%zu>", i, i, i);
	sprintf(p, "</u:A>");
	ut_parse(xml, &a);
	assert_false(a.malformed);
	assert_int_equal(a.nargs, UPNP_ARGS_MAX);
	sprintf(p, "<Z>1</Z></u:A>");
	ut_parse(xml, &a);
	assert_true(a.malformed);
	/* a name of UPNP_NAME_MAX is fine, longer is not */
	memset(name, 'n', sizeof(name));
	sprintf(xml, "<u:A xmlns:u=\"" UT_NS1 "\"><%.*s>1</%.*s></u:A>",
	    UPNP_NAME_MAX, name, UPNP_NAME_MAX, name);
	ut_parse(xml, &a);
	assert_false(a.malformed);
	sprintf(xml, "<u:A xmlns:u=\"" UT_NS1 "\"><%.*s>1</%.*s></u:A>",
	    UPNP_NAME_MAX + 1, name, UPNP_NAME_MAX + 1, name);
	ut_parse(xml, &a);
	assert_true(a.malformed);
	/* a value of UPNP_VALUE_MAX is fine, longer is not */
	p = xml + sprintf(xml, "<u:A xmlns:u=\"" UT_NS1 "\"><N>");
	memset(p, 'v', UPNP_VALUE_MAX);
	sprintf(p + UPNP_VALUE_MAX, "</N></u:A>");
	ut_parse(xml, &a);
	assert_false(a.malformed);
	assert_int_equal(strlen(ut_arg(&a, "N")), UPNP_VALUE_MAX);
	p = xml + sprintf(xml, "<u:A xmlns:u=\"" UT_NS1 "\"><N>");
	memset(p, 'v', UPNP_VALUE_MAX + 1);
	sprintf(p + UPNP_VALUE_MAX + 1, "</N></u:A>");
	ut_parse(xml, &a);
	assert_true(a.malformed);
	/* no element at all */
	memset(&a, 0, sizeof(a));
	upnp_action_from_xml(NULL, &a);
	assert_true(a.malformed);
}

/* ---- argument validation ---- */

struct ut_row {
	const char	*id;		/* spec ID */
	const char	*action;
	const char	*args[UT_MAX_ARGS];
	int		 v1, v2;	/* expected code; 0: success */
};

#define UT_ADD_OK(ext, proto, iport, client, en, lease) \
	"NewRemoteHost=", "NewExternalPort=" ext, "NewProtocol=" proto, \
	"NewInternalPort=" iport, "NewInternalClient=" client, \
	"NewEnabled=" en, "NewPortMappingDescription=d", \
	"NewLeaseDuration=" lease

static const struct ut_row ut_rows[] = {
	/* U-03: unknown action 401; IGD:2 actions do not exist in IGD:1 */
	{ "U-03", "NoSuchAction", { NULL }, 401, 401 },
	{ "U-03", "GetListOfPortMappings", { "NewStartPort=1",
	    "NewEndPort=2", "NewProtocol=TCP", "NewManage=1",
	    "NewNumberOfPorts=0" }, 401, 730 },
	{ "U-03", "DeletePortMappingRange", { "NewStartPort=1",
	    "NewEndPort=2", "NewProtocol=TCP", "NewManage=1" }, 401, 730 },
	{ "U-03", "AddAnyPortMapping", { UT_ADD_OK("0", "TCP", "0",
	    UT_HOST, "1", "0") }, 401, 732 },
	/* U-03, X-05: missing or unparseable -> 402, strictly decimal */
	{ "U-03", "AddPortMapping", { "NewProtocol=TCP",
	    "NewInternalPort=80" }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("65536", "TCP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("-1", "TCP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("0x50", "TCP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("80a", "TCP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("", "TCP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST, "1", "4294967296") }, 402, 402 },
	{ "U-03", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST, "1", "1e3") }, 402, 402 },
	/* U-05: protocol other than TCP/UDP -> 402 */
	{ "U-05", "AddPortMapping", { UT_ADD_OK("80", "ICMP", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	{ "U-05", "AddPortMapping", { UT_ADD_OK("80", "6", "80",
	    UT_HOST, "1", "0") }, 402, 402 },
	/* U-05: ExternalPort 0 -> 716 (also "*"); InternalPort 0 -> 402 /
	   732 */
	{ "U-05", "AddPortMapping", { UT_ADD_OK("0", "TCP", "80",
	    UT_HOST, "1", "0") }, 716, 716 },
	{ "U-05", "AddPortMapping", { UT_ADD_OK("*", "TCP", "80",
	    UT_HOST, "1", "0") }, 716, 716 },
	{ "U-05", "AddPortMapping", { UT_ADD_OK("80", "TCP", "0",
	    UT_HOST, "1", "0") }, 402, 732 },
	/* I-15: NewEnabled != 1 -> 402; UDA booleans */
	{ "I-15", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST, "0", "0") }, 402, 402 },
	{ "I-15", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST, "false", "0") }, 402, 402 },
	{ "I-15", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST, "2", "0") }, 402, 402 },
	/* U-04: InternalClient == the TCP peer, an IPv4 literal, no DNS */
	{ "U-04", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    UT_HOST2, "1", "0") }, 718, 606 },
	{ "U-04", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    "host.lan", "1", "0") }, 402, 402 },
	{ "U-04", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    "192.0.2.010", "1", "0") }, 402, 402 },
	{ "U-04", "AddPortMapping", { UT_ADD_OK("80", "TCP", "80",
	    "::ffff:192.0.2.10", "1", "0") }, 402, 402 },
	/* §3.5: a specific RemoteHost: 726 (no FILTER yet, in v2 too) */
	{ "§3.5", "AddPortMapping", { "NewRemoteHost=198.51.100.7",
	    "NewExternalPort=80", "NewProtocol=TCP", "NewInternalPort=80",
	    "NewInternalClient=" UT_HOST, "NewEnabled=1",
	    "NewLeaseDuration=0" }, 726, 726 },
	/* U-08: listing errors */
	{ "U-08", "GetGenericPortMappingEntry", { NULL }, 402, 402 },
	{ "U-08", "GetGenericPortMappingEntry", { "NewPortMappingIndex=70000" },
	    402, 402 },
	{ "U-08", "GetGenericPortMappingEntry", { "NewPortMappingIndex=0" },
	    713, 713 },
	{ "U-08", "GetSpecificPortMappingEntry", { "NewRemoteHost=",
	    "NewExternalPort=80" }, 402, 402 },
	{ "U-08", "GetSpecificPortMappingEntry", { "NewRemoteHost=",
	    "NewExternalPort=80", "NewProtocol=TCP" }, 714, 714 },
	{ "I-04", "DeletePortMapping", { "NewRemoteHost=",
	    "NewExternalPort=80", "NewProtocol=TCP" }, 714, 714 },
	{ "I-04", "DeletePortMapping", { "NewRemoteHost=",
	    "NewExternalPort=80", "NewProtocol=SCTP" }, 402, 402 },
	{ "U-08", "DeletePortMappingRange", { "NewStartPort=2",
	    "NewEndPort=1", "NewProtocol=TCP", "NewManage=1" }, 401, 733 },
	{ "U-08", "DeletePortMappingRange", { "NewStartPort=1",
	    "NewEndPort=2", "NewProtocol=TCP" }, 401, 402 },
	{ "U-08", "GetListOfPortMappings", { "NewStartPort=2",
	    "NewEndPort=1", "NewProtocol=TCP", "NewManage=0",
	    "NewNumberOfPorts=0" }, 401, 733 },
	{ "U-08", "GetListOfPortMappings", { "NewStartPort=1",
	    "NewEndPort=2", "NewProtocol=TCP", "NewManage=maybe",
	    "NewNumberOfPorts=0" }, 401, 402 },
	/* §3.3 [derived]: the IWF does not own the WAN connection */
	{ "§3.3", "SetConnectionType", { "NewConnectionType=IP_Routed" },
	    606, 606 },
	{ "§3.3", "RequestConnection", { NULL }, 606, 606 },
	{ "§3.3", "ForceTermination", { NULL }, 606, 606 },
	/* the successes next to the errors: lenient where miniupnpd is */
	{ "U-05", "AddPortMapping", { UT_ADD_OK("81", "tcp", "81",
	    UT_HOST, "yes", "0") }, 0, 0 },
	{ "U-04", "AddPortMapping", { "NewExternalPort=82",
	    "NewProtocol=UDP", "NewInternalPort=82",
	    "NewInternalClient=" }, 0, 0 },
	{ "§3.5", "AddPortMapping", { UT_ADD_OK("83", "UDP", "83",
	    UT_HOST, "1", "0"), }, 0, 0 },
};

static void
ut_rows_run(unsigned int version)
{
	const struct ut_row *row;
	size_t i;
	int want;

	for (i = 0; i < sizeof(ut_rows) / sizeof(ut_rows[0]); i++) {
		row = &ut_rows[i];
		want = version == 1 ? row->v1 : row->v2;
		if (ut_run(UT_HOST, row->action, row->args) != want)
			fail_msg("%s %s row %zu: IGD:%u got %d, want %d",
			    row->id, row->action, i, version, x->reply.err,
			    want);
		if (want != 0) {
			/* U-13: every error with its name */
			assert_non_null(x->reply.err_desc);
			assert_string_equal(x->reply.err_desc,
			    map_err_upnp_name((unsigned int)want));
			assert_int_equal(x->reply.nout, 0);
		}
	}
	/* only the three successes made mappings */
	assert_int_equal(table_count(x->w.t), 3);
	/* no upstream here: nothing went anywhere */
	assert_int_equal(x->w.wire.nsent, 0);
}

static void
test_validation_v1(void **state)
{
	(void)state;
	ut_rows_run(1);
}

static void
test_validation_v2(void **state)
{
	(void)state;
	ut_rows_run(2);
}

/* A malformed action is 402; an action on the wrong service is 401. */
static void
test_malformed_and_service(void **state)
{
	struct upnp_action a;
	struct upnp_reply r;

	(void)state;
	ut_action(&a, UPNP_SVC_WANIPC, UT_HOST, "GetStatusInfo", NULL);
	a.malformed = true;
	assert_true(upnp_soap_run(x->s, &a, x->w.now, ut_done_fn, &x->done[0],
	    &r));
	assert_int_equal(r.err, 402);
	assert_string_equal(r.err_desc, "Invalid Args");
	upnp_reply_free(&r);
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetStatusInfo", NULL), 401);
	assert_string_equal(x->reply.err_desc, "Invalid Action");
	assert_int_equal(ut_run_svc(0, UPNP_SVC_L3F, UT_HOST,
	    "AddPortMapping", NULL), 401);
	assert_int_equal(ut_run_svc(0, UPNP_SVC_L3F, UT_HOST,
	    "SetDefaultConnectionService", NULL), 606);
}

/* ---- adding through the carrier ---- */

/* I-01, I-03, U-06, I-07: AddPortMapping -> MAP with PREFER_FAILURE, the
   synthesized nonce, lifetime from the lease; IGD:1 lease 0 is infinite. */
static void
test_add_carrier(void **state)
{
	uint8_t nonce[MAP_NONCE_SIZE];
	struct in6_addr host = scn_addr(UT_HOST);
	struct pcp_msg m;
	struct mapping *mp;

	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), -1);
	assert_int_equal(x->w.wire.nsent, 1);
	scn_decode_last(&x->w, &m);
	assert_int_equal(m.opcode, PCP_OP_MAP);
	assert_true(m.prefer_failure);
	assert_int_equal(m.protocol, MAP_PROTO_TCP);
	assert_int_equal(m.ext_port, 5000);
	/* lease 0: the longest lifetime the policy grants */
	assert_int_equal(m.lifetime, UT_MAX_LIFETIME);
	iwf_nonce(x->w.key, MAP_ORIGIN_UPNP, &host, MAP_PROTO_TCP, 5000, nonce);
	assert_memory_equal(m.nonce, nonce, MAP_NONCE_SIZE);
	assert_true(m.has_description);
	assert_string_equal(m.description, "test");
	assert_false(x->done[1].called);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 5000);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 0);
	assert_int_equal(x->done[1].nout, 0);
	mp = ut_find(UT_HOST, MAP_PROTO_TCP, 5000);
	assert_non_null(mp);
	assert_int_equal(mp->origin, MAP_ORIGIN_UPNP);
	assert_int_equal(mp->outer_port, 5000);
	/* map_req.lease was MAP_LEASE_INFINITE */
	assert_int_equal(mp->lease_end, TABLE_LEASE_FOREVER);
	assert_string_equal(mp->description, "test");
	/* GetSpecific: IGD:1 says 0 for the infinite lease */
	assert_int_equal(ut_run(UT_HOST, "GetSpecificPortMappingEntry",
	    (const char *const[]){ "NewRemoteHost=", "NewExternalPort=5000",
	    "NewProtocol=TCP", NULL }), 0);
	assert_string_equal(ut_out("NewInternalPort"), "5000");
	assert_string_equal(ut_out("NewInternalClient"), UT_HOST);
	assert_string_equal(ut_out("NewEnabled"), "1");
	assert_string_equal(ut_out("NewPortMappingDescription"), "test");
	assert_string_equal(ut_out("NewLeaseDuration"), "0");
	/* a finite lease is the requested lifetime */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5001, 5001,
	    "UDP", 3600), -1);
	scn_decode_last(&x->w, &m);
	assert_int_equal(m.lifetime, 3600);
	srv_answer_last(PCP_SUCCESS, 3600, 5001);
	mp = ut_find(UT_HOST, MAP_PROTO_UDP, 5001);
	assert_non_null(mp);
	assert_int_equal(mapping_lease_remaining(mp, x->w.now), 3600);
}

/* §4.3: the carrier's refusals through the one table (U-13, I-08). */
static void
ut_refusal(uint8_t result, int want)
{
	size_t sent = x->w.wire.nsent;

	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 3600), -1);
	assert_int_equal(x->w.wire.nsent, sent + 1);
	srv_answer_last(result, 30, 5000);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, want);
	/* no half-made mapping */
	assert_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
	TIME_PASSES(1);
}

static void
test_refusals_v1(void **state)
{
	(void)state;
	ut_refusal(PCP_CANNOT_PROVIDE_EXTERNAL, 718);	/* I-01 */
	ut_refusal(PCP_NO_RESOURCES, 501);
	ut_refusal(PCP_USER_EX_QUOTA, 501);
	ut_refusal(PCP_NOT_AUTHORIZED, 718);
	ut_refusal(PCP_UNSUPP_PROTOCOL, 501);
	ut_refusal(PCP_NETWORK_FAILURE, 501);
}

static void
test_refusals_v2(void **state)
{
	(void)state;
	ut_refusal(PCP_CANNOT_PROVIDE_EXTERNAL, 718);
	ut_refusal(PCP_NO_RESOURCES, 728);		/* issue 6 */
	ut_refusal(PCP_USER_EX_QUOTA, 728);
	ut_refusal(PCP_NOT_AUTHORIZED, 606);
	ut_refusal(PCP_NETWORK_FAILURE, 501);
}

/* C-09 / I-01: another port than asked is no grant for AddPortMapping. */
static void
test_add_other_port_granted(void **state)
{
	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 3600), -1);
	srv_answer_last(PCP_SUCCESS, 3600, 5999);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 718);
	assert_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
}

/* I-13: no answer -> 501 within UPNP_CLIENT_WAIT_MS. */
static void
test_add_no_answer(void **state)
{
	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), -1);
	TIME_PASSES(UPNP_CLIENT_WAIT_MS - 1);
	assert_false(x->done[1].called);
	TIME_PASSES(1);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 501);
}

/* I-02, U-12: AddAnyPortMapping without PREFER_FAILURE returns the
   carrier's port; a repeat refreshes and returns the same one. */
static void
test_add_any(void **state)
{
	struct pcp_msg m;

	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddAnyPortMapping", 5000, 5000,
	    "TCP", 3600), -1);
	scn_decode_last(&x->w, &m);
	assert_false(m.prefer_failure);
	assert_int_equal(m.ext_port, 5000);
	srv_answer_last(PCP_SUCCESS, 3600, 40123);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 0);
	assert_string_equal(ut_done_out(1, "NewReservedPort"), "40123");
	/* the repeat: the same mapping (cache hit), no second one */
	assert_int_equal(ut_add(1, UT_HOST, "AddAnyPortMapping", 6000, 5000,
	    "TCP", 3600), 0);
	assert_string_equal(ut_out("NewReservedPort"), "40123");
	assert_int_equal(table_count(x->w.t), 1);
	/* external port 0 is a mere hint in AddAny: the internal port */
	assert_int_equal(ut_add(1, UT_HOST, "AddAnyPortMapping", 0, 5100,
	    "UDP", 0), -1);
	scn_decode_last(&x->w, &m);
	assert_int_equal(m.ext_port, 5100);
	/* IGD:2 lease 0 -> 604800, clamped by the policy */
	assert_int_equal(m.lifetime, UT_MAX_LIFETIME);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 5100);
	assert_string_equal(ut_done_out(1, "NewReservedPort"), "5100");
	assert_int_equal(ut_find(UT_HOST, MAP_PROTO_UDP, 5100)->lease_end,
	    (uint32_t)((x->w.now + UT_MS - 1) / UT_MS) + UPNP_V2_LEASE_MAX);
}

/* Issue 6: a repeated AddPortMapping refreshes the mapping (same nonce:
   the table says REFRESH) and extends its lease - no duplicate. */
static void
test_repeat_add_refreshes(void **state)
{
	struct mapping *m;
	uint32_t end;

	(void)state;
	ut_grant(UT_HOST, "AddPortMapping", 5000, 5000, "TCP", 3600, 5000);
	m = ut_find(UT_HOST, MAP_PROTO_TCP, 5000);
	assert_non_null(m);
	end = m->lease_end;
	TIME_PASSES(600 * UT_MS);
	/* within the 3/4 rule: answered from the table */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 3600), 0);
	assert_int_equal(table_count(x->w.t), 1);
	m = ut_find(UT_HOST, MAP_PROTO_TCP, 5000);
	assert_non_null(m);
	assert_int_equal(m->lease_end, end + 600);
	assert_int_equal(ut_run(UT_HOST, "GetSpecificPortMappingEntry",
	    (const char *const[]){ "NewRemoteHost=", "NewExternalPort=5000",
	    "NewProtocol=TCP", NULL }), 0);
	assert_string_equal(ut_out("NewLeaseDuration"), "3600");
	/* the same mapping asked for another external port: 718 */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5005, 5000,
	    "TCP", 3600), 718);
	assert_int_equal(table_count(x->w.t), 1);
}

/* U-07: two hosts, the same external port: 718 for the second, at once,
   nothing sent upstream; no stealing. */
static void
test_two_hosts_same_port(void **state)
{
	size_t sent;

	(void)state;
	ut_grant(UT_HOST, "AddPortMapping", 5000, 5000, "TCP", 3600, 5000);
	sent = x->w.wire.nsent;
	assert_int_equal(ut_add(1, UT_HOST2, "AddPortMapping", 5000, 5000,
	    "TCP", 3600), 718);
	assert_string_equal(x->reply.err_desc, "ConflictInMappingEntry");
	assert_int_equal(x->w.wire.nsent, sent);
	assert_null(ut_find(UT_HOST2, MAP_PROTO_TCP, 5000));
	assert_non_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
}

/* ---- another mechanism ---- */

/* A NAT-PMP mapping made straight through the proxy (no upstream). */
static void
ut_natpmp_map(const char *host, uint16_t internal, uint16_t ext)
{
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };

	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_NATPMP;
	req.requester = req.internal_addr = scn_addr(host);
	req.protocol = MAP_PROTO_TCP;
	req.internal_port = internal;
	req.ext_port = ext;
	req.lifetime = 3600;
	pcp_addr_from_v4(&req.ext_addr, &any);
	iwf_nonce(x->w.key, MAP_ORIGIN_NATPMP, &req.internal_addr,
	    MAP_PROTO_TCP, internal, req.nonce);
	assert_true(proxy_submit(x->w.p, &req, x->w.now, NULL, NULL, &res));
	assert_int_equal(res.err, MAP_OK);
	END_TURN();
}

/* spec/iwf.md §4.3 [derived]: held by another mechanism -> 729 (IGD:2) /
   718 (IGD:1); the requester cannot delete its NAT-PMP mapping. */
static void
ut_other_mechanism(int want, int want_delete)
{
	ut_natpmp_map(UT_HOST, 6000, 6000);
	/* the same internal endpoint */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 6001, 6000,
	    "TCP", 3600), want);
	/* the same external port, another internal endpoint */
	assert_int_equal(ut_add(1, UT_HOST2, "AddPortMapping", 6000, 6002,
	    "TCP", 3600), want);
	assert_int_equal(table_count(x->w.t), 1);
	assert_int_equal(ut_run(UT_HOST, "DeletePortMapping",
	    (const char *const[]){ "NewRemoteHost=", "NewExternalPort=6000",
	    "NewProtocol=TCP", NULL }), want_delete);
	assert_int_equal(table_count(x->w.t), 1);
	/* but it is listed */
	assert_int_equal(ut_run(UT_HOST, "GetGenericPortMappingEntry",
	    (const char *const[]){ "NewPortMappingIndex=0", NULL }), 0);
	assert_string_equal(ut_out("NewExternalPort"), "6000");
}

static void
test_other_mechanism_v1(void **state)
{
	(void)state;
	ut_other_mechanism(718, 718);
}

static void
test_other_mechanism_v2(void **state)
{
	(void)state;
	ut_other_mechanism(729, 606);
}

/* ---- deleting ---- */

/* I-04: own -> a MAP delete with the stored nonce; another host's ->
   718/606; none -> 714 with no PCP traffic. */
static void
ut_delete(int other)
{
	const char *const del[] = { "NewRemoteHost=", "NewExternalPort=5000",
	    "NewProtocol=TCP", NULL };
	struct mapping *m;
	struct pcp_msg msg;
	uint8_t nonce[MAP_NONCE_SIZE];
	size_t sent;

	ut_grant(UT_HOST, "AddPortMapping", 5000, 5000, "TCP", 3600, 5000);
	m = ut_find(UT_HOST, MAP_PROTO_TCP, 5000);
	assert_non_null(m);
	memcpy(nonce, m->nonce, sizeof(nonce));
	sent = x->w.wire.nsent;
	assert_int_equal(ut_run(UT_HOST2, "DeletePortMapping", del), other);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(table_count(x->w.t), 1);
	assert_int_equal(ut_run(UT_HOST, "DeletePortMapping", del), 0);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(x->w.wire.nsent, sent + 1);
	scn_decode_last(&x->w, &msg);
	assert_int_equal(msg.opcode, PCP_OP_MAP);
	assert_int_equal(msg.lifetime, 0);
	assert_memory_equal(msg.nonce, nonce, MAP_NONCE_SIZE);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);
	/* gone: 714, nothing sent */
	sent = x->w.wire.nsent;
	assert_int_equal(ut_run(UT_HOST, "DeletePortMapping", del), 714);
	assert_string_equal(x->reply.err_desc, "NoSuchEntryInArray");
	assert_int_equal(x->w.wire.nsent, sent);
}

static void
test_delete_v1(void **state)
{
	(void)state;
	ut_delete(718);
}

static void
test_delete_v2(void **state)
{
	(void)state;
	ut_delete(606);
}

/*
 * X-03 (U-04), RFC 6887 §13.1: with third_party_host = UT_HOST2 that CP
 * maps for UT_HOST and deletes the mapping; an unlisted CP gets `denied`
 * (718 v1 / 606 v2) for both, as before. The mapping is UT_HOST's UPnP
 * mapping: the nonce is derived from UT_HOST (iwf_nonce.h), so UT_HOST
 * refreshes it with its own AddPortMapping and deletes it itself.
 */
static void
ut_third_party(int denied)
{
	const char *const del[] = { "NewRemoteHost=", "NewExternalPort=5000",
	    "NewProtocol=TCP", NULL };
	struct acl_prefix listed;
	struct in6_addr host = scn_addr(UT_HOST);
	struct ut_add b;
	struct mapping *m;
	struct pcp_msg msg;
	uint8_t nonce[MAP_NONCE_SIZE];
	char err[64];
	size_t sent;

	/* nobody listed: UT_HOST2 may not name UT_HOST */
	sent = x->w.wire.nsent;
	assert_int_equal(ut_run(UT_HOST2, "AddPortMapping", ut_add_args(&b,
	    UT_HOST, 5000, 5000, "TCP", 3600, "tv")), denied);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(table_count(x->w.t), 0);

	/* third_party = allow, third_party_host = UT_HOST2 */
	assert_true(acl_prefix_parse(UT_HOST2, &listed, err, sizeof(err)));
	x->w.pol.third_party_hosts = &listed;
	x->w.pol.n_third_party_hosts = 1;
	assert_int_equal(ut_run_svc(1, UPNP_SVC_WANIPC, UT_HOST2,
	    "AddPortMapping", ut_add_args(&b, UT_HOST, 5000, 5000, "TCP",
	    3600, "tv")), -1);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 5000);
	assert_true(x->done[1].called);
	assert_int_equal(x->done[1].err, 0);
	assert_non_null(m = ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
	assert_null(ut_find(UT_HOST2, MAP_PROTO_TCP, 5000));
	assert_int_equal(m->origin, MAP_ORIGIN_UPNP);
	assert_true((m->flags & MAPPING_F_THIRD_PARTY) != 0);
	iwf_nonce(x->w.key, MAP_ORIGIN_UPNP, &host, MAP_PROTO_TCP, 5000,
	    nonce);
	assert_memory_equal(m->nonce, nonce, MAP_NONCE_SIZE);
	/* every CP reads it, UT_HOST as its client */
	assert_int_equal(ut_run(UT_HOST3, "GetSpecificPortMappingEntry",
	    del), 0);
	assert_string_equal(ut_out("NewInternalClient"), UT_HOST);

	/* UT_HOST's own Add of the endpoint refreshes the same mapping */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 3600), 0);
	assert_int_equal(table_count(x->w.t), 1);
	assert_ptr_equal(ut_find(UT_HOST, MAP_PROTO_TCP, 5000), m);

	/* an unlisted CP neither maps for UT_HOST nor deletes its mapping */
	sent = x->w.wire.nsent;
	assert_int_equal(ut_run(UT_HOST3, "AddPortMapping", ut_add_args(&b,
	    UT_HOST, 5001, 5001, "TCP", 3600, "tv")), denied);
	assert_int_equal(ut_run(UT_HOST3, "DeletePortMapping", del), denied);
	assert_int_equal(x->w.wire.nsent, sent);
	assert_int_equal(table_count(x->w.t), 1);

	/* a listed CP maps only for LAN hosts (the policy: 606 / 718) */
	assert_int_equal(ut_run(UT_HOST2, "AddPortMapping", ut_add_args(&b,
	    "198.51.100.7", 5002, 5002, "TCP", 3600, "tv")), denied);
	assert_int_equal(x->w.wire.nsent, sent);

	/* the listed CP deletes it: a MAP delete with UT_HOST's nonce */
	assert_int_equal(ut_run(UT_HOST2, "DeletePortMapping", del), 0);
	assert_int_equal(table_count(x->w.t), 0);
	assert_int_equal(x->w.wire.nsent, sent + 1);
	scn_decode_last(&x->w, &msg);
	assert_int_equal(msg.opcode, PCP_OP_MAP);
	assert_int_equal(msg.lifetime, 0);
	assert_memory_equal(msg.nonce, nonce, MAP_NONCE_SIZE);
	assert_int_equal(backend_fake_rule_count(x->w.be), 0);

	/* made again by the listed CP (AddAnyPortMapping on IGD:2), deleted
	   by UT_HOST itself */
	assert_int_equal(ut_run_svc(1, UPNP_SVC_WANIPC, UT_HOST2,
	    x->version >= 2 ? "AddAnyPortMapping" : "AddPortMapping",
	    ut_add_args(&b, UT_HOST, 5000, 5000, "TCP", 3600, "tv")), -1);
	srv_answer_last(PCP_SUCCESS, UT_MAX_LIFETIME, 5000);
	assert_int_equal(x->done[1].err, 0);
	if (x->version >= 2)
		assert_string_equal(ut_done_out(1, "NewReservedPort"),
		    "5000");
	assert_non_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
	assert_int_equal(ut_run(UT_HOST, "DeletePortMapping", del), 0);
	assert_int_equal(table_count(x->w.t), 0);

	/* unlisted again (SIGHUP rebuilt the policy): denied again */
	x->w.pol.n_third_party_hosts = 0;
	assert_int_equal(ut_run(UT_HOST2, "AddPortMapping", ut_add_args(&b,
	    UT_HOST, 5000, 5000, "TCP", 3600, "tv")), denied);
	x->w.pol.third_party_hosts = NULL;
}

static void
test_third_party_v1(void **state)
{
	(void)state;
	ut_third_party(718);
}

static void
test_third_party_v2(void **state)
{
	(void)state;
	ut_third_party(606);
}

/* RFC 6970 §5.8: DeletePortMappingRange deletes the requester's own of
   the protocol within the range; none -> 730. */
static void
test_delete_range(void **state)
{
	const char *const range[] = { "NewStartPort=5000", "NewEndPort=5003",
	    "NewProtocol=TCP", "NewManage=1", NULL };
	struct ut_add b;

	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5001, 5001,
	    "TCP", 0), 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5004, 5004,
	    "TCP", 0), 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5002, 5002,
	    "UDP", 0), 0);
	assert_int_equal(ut_run(UT_HOST2, "AddPortMapping",
	    ut_add_args(&b, UT_HOST2, 5003, 5003, "TCP", 0, "h2")), 0);
	assert_int_equal(table_count(x->w.t), 5);
	assert_int_equal(ut_run(UT_HOST, "DeletePortMappingRange", range), 0);
	assert_int_equal(table_count(x->w.t), 3);
	assert_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
	assert_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5001));
	assert_non_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5004));
	assert_non_null(ut_find(UT_HOST, MAP_PROTO_UDP, 5002));
	assert_non_null(ut_find(UT_HOST2, MAP_PROTO_TCP, 5003));
	assert_int_equal(ut_run(UT_HOST, "DeletePortMappingRange", range),
	    730);
	assert_string_equal(x->reply.err_desc, "PortMappingNotFound");
}

/* ---- listing ---- */

/* A PCP PEER flow (RFC 6887 §12): in the table, never listed. */
static void
ut_peer(const char *host, uint16_t internal)
{
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };

	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_PCP;
	req.requester = req.internal_addr = scn_addr(host);
	req.protocol = MAP_PROTO_UDP;
	req.internal_port = internal;
	req.lifetime = 3600;
	req.flags = MAP_F_PEER;
	req.peer_addr = scn_addr("198.51.100.77");
	req.peer_port = 4000;
	pcp_addr_from_v4(&req.ext_addr, &any);
	memset(req.nonce, 0x55, sizeof(req.nonce));
	assert_true(proxy_submit(x->w.p, &req, x->w.now, NULL, NULL, &res));
	assert_int_equal(res.err, MAP_OK);
	END_TURN();
}

static int
ut_generic(unsigned int index)
{
	char arg[40];
	const char *const args[] = { arg, NULL };

	snprintf(arg, sizeof(arg), "NewPortMappingIndex=%u", index);
	return ut_run(UT_HOST2, "GetGenericPortMappingEntry", args);
}

/* U-08, I-05: indexes 0..n-1 of the listed mappings, then 713; PEER
   flows and the address probe's mapping are not listed. */
static void
test_generic(void **state)
{
	unsigned int i, seen = 0;
	struct upnp_event_vars ev;

	(void)state;
	ut_peer(UT_HOST, 7000);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), 0);
	ut_natpmp_map(UT_GW_LAN, 60000, 60000);		/* "the probe" */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5001, 5002,
	    "UDP", 3600), 0);
	ut_peer(UT_HOST2, 7001);
	assert_int_equal(ut_add(1, UT_HOST2, "AddPortMapping", 5003, 5003,
	    "TCP", 0), 0);
	assert_int_equal(table_count(x->w.t), 6);
	for (i = 0; i < 3; i++) {
		assert_int_equal(ut_generic(i), 0);
		assert_string_equal(ut_out("NewRemoteHost"), "");
		assert_string_equal(ut_out("NewEnabled"), "1");
		if (strcmp(ut_out("NewExternalPort"), "5001") == 0) {
			assert_string_equal(ut_out("NewProtocol"), "UDP");
			assert_string_equal(ut_out("NewInternalPort"), "5002");
			assert_string_equal(ut_out("NewInternalClient"),
			    UT_HOST);
			assert_string_equal(ut_out("NewLeaseDuration"), "3600");
			assert_string_equal(ut_out("NewPortMappingDescription"),
			    "test");
			seen |= 1;
		} else if (strcmp(ut_out("NewExternalPort"), "5003") == 0) {
			assert_string_equal(ut_out("NewInternalClient"),
			    UT_HOST2);
			seen |= 2;
		} else {
			assert_string_equal(ut_out("NewExternalPort"), "5000");
			assert_string_equal(ut_out("NewLeaseDuration"), "0");
			seen |= 4;
		}
	}
	assert_int_equal(seen, 7);
	assert_int_equal(ut_generic(3), 713);
	assert_string_equal(x->reply.err_desc, "SpecifiedArrayIndexInvalid");
	/* out of order, and after a change of the table */
	assert_int_equal(ut_generic(1), 0);
	assert_int_equal(ut_generic(0), 0);
	assert_int_equal(ut_run(UT_HOST, "DeletePortMapping",
	    (const char *const[]){ "NewRemoteHost=", "NewExternalPort=5000",
	    "NewProtocol=TCP", NULL }), 0);
	assert_int_equal(ut_generic(1), 0);
	assert_int_equal(ut_generic(2), 713);
	/* PortMappingNumberOfEntries: the listed ones */
	TIME_PASSES(UPNP_COUNT_INTERVAL_MS);
	upnp_soap_event_vars(x->s, x->w.now, &ev);
	assert_int_equal(ev.port_mapping_entries, 2);
}

/* The cursor makes upnpc -l's sequence O(1) a step and stays right. */
static void
test_generic_many(void **state)
{
	unsigned int i, n = 200;
	unsigned int seen[200];
	unsigned long port;

	(void)state;
	x->w.pol.max_mappings_per_host = 0;
	for (i = 0; i < n; i++) {
		assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping",
		    10000 + i, 10000 + i, i % 2 ? "UDP" : "TCP", 0), 0);
		if (i % 10 == 0)
			ut_natpmp_map(UT_GW_LAN, (uint16_t)(30000 + i),
			    (uint16_t)(30000 + i));
	}
	memset(seen, 0, sizeof(seen));
	for (i = 0; i < n; i++) {
		assert_int_equal(ut_generic(i), 0);
		port = strtoul(ut_out("NewExternalPort"), NULL, 10);
		assert_true(port >= 10000 && port < 10000 + n);
		seen[port - 10000]++;
	}
	for (i = 0; i < n; i++)
		assert_int_equal(seen[i], 1);
	assert_int_equal(ut_generic(n), 713);
}

/* IGD:2 GetListOfPortMappings, read by miniupnpc's own parser. */
static void
test_list(void **state)
{
	const char *const all[] = { "NewStartPort=1", "NewEndPort=65535",
	    "NewProtocol=TCP", "NewManage=0", "NewNumberOfPorts=0", NULL };
	const char *const two[] = { "NewStartPort=1", "NewEndPort=65535",
	    "NewProtocol=TCP", "NewManage=0", "NewNumberOfPorts=2", NULL };
	const char *const mine[] = { "NewStartPort=1", "NewEndPort=65535",
	    "NewProtocol=TCP", "NewManage=1", "NewNumberOfPorts=0", NULL };
	const char *const none[] = { "NewStartPort=1", "NewEndPort=100",
	    "NewProtocol=TCP", "NewManage=0", "NewNumberOfPorts=0", NULL };
	struct PortMappingParserData pd;
	struct PortMapping *pm;
	struct ut_add b;
	const char *xml;
	unsigned int n;

	(void)state;
	assert_int_equal(ut_run(UT_HOST, "AddPortMapping",
	    ut_add_args(&b, UT_HOST, 5002, 5002, "TCP", 3600, "a&b<c>")), 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5001, 5001,
	    "UDP", 0), 0);
	assert_int_equal(ut_add(1, UT_HOST2, "AddPortMapping", 5003, 5003,
	    "TCP", 0), 0);
	assert_int_equal(ut_run(UT_HOST, "GetListOfPortMappings", all), 0);
	assert_int_equal(x->reply.nout, 1);
	assert_string_equal(x->reply.out[0].name, "NewPortListing");
	xml = ut_out("NewPortListing");
	assert_non_null(strstr(xml, "a&amp;b&lt;c&gt;"));
	memset(&pd, 0, sizeof(pd));
	ParsePortListing(xml, (int)strlen(xml), &pd);
	/* sorted by external port (miniupnpc's list comes out reversed) */
	assert_true(strstr(xml, ">5000<") < strstr(xml, ">5002<"));
	assert_true(strstr(xml, ">5002<") < strstr(xml, ">5003<"));
	n = 0;
	for (pm = pd.l_head; pm != NULL; pm = pm->l_next) {
		/* TCP only */
		assert_true(pm->externalPort == 5000 ||
		    pm->externalPort == 5002 || pm->externalPort == 5003);
		assert_string_equal(pm->protocol, "TCP");
		assert_int_equal(pm->enabled, 1);
		assert_string_equal(pm->remoteHost, "");
		if (pm->externalPort == 5002) {
			assert_int_equal(pm->internalPort, 5002);
			assert_string_equal(pm->internalClient, UT_HOST);
			assert_int_equal(pm->leaseTime, 3600);
		}
		if (pm->externalPort == 5003)
			assert_string_equal(pm->internalClient, UT_HOST2);
		n++;
	}
	assert_int_equal(n, 3);
	FreePortListing(&pd);
	/* NewNumberOfPorts caps it */
	assert_int_equal(ut_run(UT_HOST, "GetListOfPortMappings", two), 0);
	xml = ut_out("NewPortListing");
	memset(&pd, 0, sizeof(pd));
	ParsePortListing(xml, (int)strlen(xml), &pd);
	for (n = 0, pm = pd.l_head; pm != NULL; pm = pm->l_next)
		n++;
	assert_int_equal(n, 2);
	FreePortListing(&pd);
	/* NewManage 1: what the CP may manage, its own */
	assert_int_equal(ut_run(UT_HOST2, "GetListOfPortMappings", mine), 0);
	xml = ut_out("NewPortListing");
	memset(&pd, 0, sizeof(pd));
	ParsePortListing(xml, (int)strlen(xml), &pd);
	assert_non_null(pd.l_head);
	assert_int_equal(pd.l_head->externalPort, 5003);
	assert_null(pd.l_head->l_next);
	FreePortListing(&pd);
	/* nothing in the range: 730 */
	assert_int_equal(ut_run(UT_HOST, "GetListOfPortMappings", none), 730);
}

/* ---- the connection ---- */

/* U-09, RFC 6970 §4.2: unknown with an upstream: the CP waits for the
   address; at the deadline it gets "" (not an error). */
static void
test_ext_addr_wait(void **state)
{
	(void)state;
	assert_int_equal(ut_run_svc(2, UPNP_SVC_WANIPC, UT_HOST,
	    "GetExternalIPAddress", NULL), -1);
	TIME_PASSES(UPNP_CLIENT_WAIT_MS - 1);
	assert_false(x->done[2].called);
	TIME_PASSES(1);
	assert_true(x->done[2].called);
	assert_int_equal(x->done[2].err, 0);
	assert_string_equal(ut_done_out(2, "NewExternalIPAddress"), "");
	/* the next one waits too; a grant teaches the address, and the
	   tick at the end of that turn answers */
	assert_int_equal(ut_run_svc(2, UPNP_SVC_WANIPC, UT_HOST,
	    "GetExternalIPAddress", NULL), -1);
	ut_grant(UT_HOST, "AddPortMapping", 5000, 5000, "TCP", 3600, 5000);
	assert_true(x->done[2].called);
	assert_string_equal(ut_done_out(2, "NewExternalIPAddress"), SCN_EXT);
	/* known: at once */
	assert_int_equal(ut_run(UT_HOST, "GetExternalIPAddress", NULL), 0);
	assert_string_equal(ut_out("NewExternalIPAddress"), SCN_EXT);
}

/* Without an upstream: the WAN address, at once. */
static void
test_ext_addr_last(void **state)
{
	(void)state;
	assert_int_equal(ut_run(UT_HOST, "GetExternalIPAddress", NULL), 0);
	assert_string_equal(ut_out("NewExternalIPAddress"), SCN_WAN);
}

/* upnp_soap_cancel: done is never called for a cancelled arg. */
static void
test_cancel(void **state)
{
	(void)state;
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), -1);
	assert_int_equal(ut_run_svc(2, UPNP_SVC_WANIPC, UT_HOST,
	    "GetExternalIPAddress", NULL), -1);
	upnp_soap_cancel(x->s, &x->done[1]);
	upnp_soap_cancel(x->s, &x->done[2]);
	srv_answer_last(PCP_SUCCESS, 3600, 5000);
	TIME_PASSES(UPNP_CLIENT_WAIT_MS);
	assert_false(x->done[1].called);
	assert_false(x->done[2].called);
	/* the mapping itself was made (the CP may repeat the request) */
	assert_non_null(ut_find(UT_HOST, MAP_PROTO_TCP, 5000));
	/* and one left pending at free is cancelled there */
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5001, 5001,
	    "TCP", 0), -1);
}

/* U-10 and the rest of §3.3's answers. */
static void
test_status_and_info(void **state)
{
	(void)state;
	TIME_PASSES(42 * UT_MS);
	assert_int_equal(ut_run(UT_HOST, "GetStatusInfo", NULL), 0);
	assert_string_equal(ut_out("NewConnectionStatus"), "Connected");
	assert_string_equal(ut_out("NewLastConnectionError"), "ERROR_NONE");
	assert_string_equal(ut_out("NewUptime"), "42");
	x->connected = false;
	assert_int_equal(ut_run(UT_HOST, "GetStatusInfo", NULL), 0);
	assert_string_equal(ut_out("NewConnectionStatus"), "Disconnected");
	assert_int_equal(ut_run(UT_HOST, "GetNATRSIPStatus", NULL), 0);
	assert_string_equal(ut_out("NewRSIPAvailable"), "0");
	assert_string_equal(ut_out("NewNATEnabled"), "1");
	assert_int_equal(ut_run(UT_HOST, "GetConnectionTypeInfo", NULL), 0);
	assert_string_equal(ut_out("NewConnectionType"), "IP_Routed");
	assert_string_equal(ut_out("NewPossibleConnectionTypes"),
	    "IP_Routed");
	/* WANCommonInterfaceConfig */
	x->counters.bytes_sent = ((uint64_t)1 << 32) + 5;	/* wraps */
	x->counters.bytes_received = 77;
	x->counters.packets_sent = UINT32_MAX;
	x->counters.packets_received = ((uint64_t)3 << 32);
	x->counters.bitrate_up = 100000000;
	x->counters.bitrate_down = 1000000000;
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetCommonLinkProperties", NULL), 0);
	assert_string_equal(ut_out("NewWANAccessType"), "Ethernet");
	assert_string_equal(ut_out("NewLayer1UpstreamMaxBitRate"), "100000000");
	assert_string_equal(ut_out("NewLayer1DownstreamMaxBitRate"),
	    "1000000000");
	assert_string_equal(ut_out("NewPhysicalLinkStatus"), "Up");
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetTotalBytesSent", NULL), 0);
	assert_string_equal(ut_out("NewTotalBytesSent"), "5");
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetTotalBytesReceived", NULL), 0);
	assert_string_equal(ut_out("NewTotalBytesReceived"), "77");
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetTotalPacketsSent", NULL), 0);
	assert_string_equal(ut_out("NewTotalPacketsSent"), "4294967295");
	assert_int_equal(ut_run_svc(0, UPNP_SVC_WANCIC, UT_HOST,
	    "GetTotalPacketsReceived", NULL), 0);
	assert_string_equal(ut_out("NewTotalPacketsReceived"), "0");
	/* Layer3Forwarding */
	assert_int_equal(ut_run_svc(0, UPNP_SVC_L3F, UT_HOST,
	    "GetDefaultConnectionService", NULL), 0);
	{
		char want[200];

		snprintf(want, sizeof(want), "%s:WANConnectionDevice:%u,%s",
		    UT_UDN, x->version, upnp_service_info(x->version,
		    UPNP_SVC_WANIPC)->id);
		assert_string_equal(ut_out("NewDefaultConnectionService"),
		    want);
	}
}

/* U-11: the evented variables; the entry count is taken again at most
   every UPNP_COUNT_INTERVAL_MS. */
static void
test_event_vars(void **state)
{
	struct upnp_event_vars ev;

	(void)state;
	upnp_soap_event_vars(x->s, x->w.now, &ev);
	assert_string_equal(ev.external_ip, SCN_WAN);
	assert_string_equal(ev.connection_status, "Connected");
	assert_int_equal(ev.port_mapping_entries, 0);
	assert_int_equal(ut_add(1, UT_HOST, "AddPortMapping", 5000, 5000,
	    "TCP", 0), 0);
	ut_natpmp_map(UT_GW_LAN, 60000, 60000);		/* hidden */
	upnp_soap_event_vars(x->s, x->w.now, &ev);
	assert_int_equal(ev.port_mapping_entries, 0);	/* not yet */
	assert_int_equal(upnp_soap_next_deadline(x->s),
	    SCN_T0 + UPNP_COUNT_INTERVAL_MS);
	TIME_PASSES(UPNP_COUNT_INTERVAL_MS);
	upnp_soap_event_vars(x->s, x->w.now, &ev);
	assert_int_equal(ev.port_mapping_entries, 1);
	assert_int_equal(upnp_soap_next_deadline(x->s), UINT64_MAX);
	x->connected = false;
	upnp_soap_event_vars(x->s, x->w.now, &ev);
	assert_string_equal(ev.connection_status, "Disconnected");
}

/* The description is cut to MAP_DESCRIPTION_MAX on a UTF-8 boundary. */
static void
test_description_cut(void **state)
{
	char desc[UPNP_VALUE_MAX + 1];
	struct ut_add b;
	struct mapping *m;
	size_t i;

	(void)state;
	/* 127 ASCII bytes, then a 2-byte character straddling 128 */
	for (i = 0; i < MAP_DESCRIPTION_MAX - 1; i++)
		desc[i] = 'a';
	desc[i++] = (char)0xc3;
	desc[i++] = (char)0xa9;
	desc[i] = '\0';
	assert_int_equal(ut_run(UT_HOST, "AddPortMapping",
	    ut_add_args(&b, UT_HOST, 5000, 5000, "TCP", 0, "x")), 0);
	/* ut_add_args limits its buffer: build the long one by hand */
	snprintf(b.args[6], sizeof(b.args[6]), "NewPortMappingDescription=");
	{
		struct upnp_action a;
		const char *const *v = ut_add_args(&b, UT_HOST, 5001, 5001,
		    "TCP", 0, "");

		ut_action(&a, UPNP_SVC_WANIPC, UT_HOST, "AddPortMapping", v);
		for (i = 0; i < a.nargs; i++)
			if (strcmp(a.args[i].name,
			    "NewPortMappingDescription") == 0)
				snprintf(a.args[i].value,
				    sizeof(a.args[i].value), "%s", desc);
		upnp_reply_free(&x->reply);
		assert_true(upnp_soap_run(x->s, &a, x->w.now, ut_done_fn,
		    &x->done[0], &x->reply));
		assert_int_equal(x->reply.err, 0);
	}
	m = ut_find(UT_HOST, MAP_PROTO_TCP, 5001);
	assert_non_null(m);
	assert_int_equal(strlen(m->description), MAP_DESCRIPTION_MAX - 1);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_from_xml_shapes),
		cmocka_unit_test(test_from_xml_malformed),
		cmocka_unit_test_setup_teardown(test_validation_v1,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_validation_v2,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_malformed_and_service,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_add_carrier,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_refusals_v1,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_refusals_v2,
		    setup_v2, ut_teardown),
		cmocka_unit_test_setup_teardown(test_add_other_port_granted,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_add_no_answer,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_add_any,
		    setup_v2, ut_teardown),
		cmocka_unit_test_setup_teardown(test_repeat_add_refreshes,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_two_hosts_same_port,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_other_mechanism_v1,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_other_mechanism_v2,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_delete_v1,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_delete_v2,
		    setup_v2, ut_teardown),
		cmocka_unit_test_setup_teardown(test_third_party_v1,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_third_party_v2,
		    setup_v2, ut_teardown),
		cmocka_unit_test_setup_teardown(test_delete_range,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_generic,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_generic_many,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_list,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_ext_addr_wait,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_ext_addr_last,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_cancel,
		    setup_v1, ut_teardown),
		cmocka_unit_test_setup_teardown(test_status_and_info,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_status_and_info,
		    setup_v2_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_event_vars,
		    setup_v1_last, ut_teardown),
		cmocka_unit_test_setup_teardown(test_description_cut,
		    setup_v1_last, ut_teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
