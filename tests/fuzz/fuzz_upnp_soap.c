/*
 * fuzz_upnp_soap.c - libFuzzer target for SOAP sent to pupnp's own port as
 * the daemon serves it (iwf/upnp_xml_gate.h; spec/iwf.md) and
 * the action layer behind it.
 *
 * The input is a SOAP request body as a control point sends it. It goes
 * through the gate exactly as pupnp's calls do in the daemon: the gate
 * reads it with our own reader and gives libixml (the real one) only the
 * canonical envelope it writes; pupnp's second parse, of the action
 * element it printed, is done too; the arguments are taken as pupnp's
 * action callback takes them. The action is then run in IGD:1 and IGD:2
 * mode against each of the three services, on the real proxy core, table
 * and policy with no upstream (the gateway is the last NAT: every answer
 * comes at once), from two LAN hosts; then the listing actions walk what
 * it made.
 * Invariants: libixml gets only the canonical envelope and that print;
 * the gate passes a body exactly when our reader reads it and its names
 * fit the alphabet, and then the canonical document has
 * Envelope/Body/action, its re-parse
 * passes once, and the arguments are our reader's; the copied action is
 * bounded and NUL-terminated, names are unique and values trimmed unless
 * it is malformed; every answer is at once, is 0 or a code the error
 * table names, with out arguments only on success; every mapping left is
 * a granted UPnP mapping of the requester that made it, with a
 * description of at most MAP_DESCRIPTION_MAX bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <upnp/ixml.h>

#include "map.h"
#include "map_err.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"
#include "soap_xml.h"
#include "upnp.h"
#include "upnp_soap.h"
#include "upnp_xml_gate.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Bodies beyond pupnp's content limit never reach the callback. */
#define FUZZ_MAX_BODY	16000

static const char *const fuzz_hosts[] = { "192.0.2.10", "192.0.2.11" };

/* What libixml may be given: the gate's canonical envelope, or (pupnp's
   second parse) exactly the print of its action element. */
#define FUZZ_CANON_HEAD	"<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/" \
	"soap/envelope/\"><s:Body><"
static const char *fuzz_printed;	/* set for the second parse */

static int
fuzz_ixml(const char *buf, IXML_Document **doc)
{
	if (fuzz_printed != NULL ? strcmp(buf, fuzz_printed) != 0 :
	    strncmp(buf, FUZZ_CANON_HEAD, strlen(FUZZ_CANON_HEAD)) != 0)
		abort();
	return ixmlParseBufferEx(buf, doc);
}

/* Envelope/Body/action: what pupnp's check_soap_request walks. */
static IXML_Node *
fuzz_action_node(IXML_Document *doc)
{
	IXML_Node *n = ixmlNode_getFirstChild(&doc->n);

	if (n == NULL || strcmp(ixmlNode_getLocalName(n), "Envelope") != 0 ||
	    (n = ixmlNode_getFirstChild(n)) == NULL ||
	    strcmp(ixmlNode_getLocalName(n), "Body") != 0 ||
	    (n = ixmlNode_getFirstChild(n)) == NULL ||
	    ixmlNode_getFirstChild(n) != NULL)
		abort();
	return n;
}

/* The gate as pupnp meets it; true with *a filled when the body passed. */
static bool
fuzz_gate(char *buf, struct upnp_action *a)
{
	struct upnp_action want;
	struct soap_xml_elem elem;
	IXML_Document *doc = NULL, *again = NULL;
	DOMString printed;
	bool read;
	int rc;
	size_t i, len;

	/* pupnp hands the body over as a C string: a NUL ends it for the
	   gate as for libixml */
	len = strlen(buf);
	memset(&want, 0, sizeof(want));
	read = len <= UPNP_MAX_CONTENT && soap_xml_read(buf, len, &want, &elem);
	fuzz_printed = NULL;
	rc = upnp_xml_gate_parse(buf, &doc, fuzz_ixml);
	if (rc != IXML_SUCCESS) {
		if (doc != NULL || upnp_xml_gate_take(a))
			abort();
		return false;
	}
	if (!read)
		abort();
	/* pupnp's second parse: the action element it printed */
	if ((printed = ixmlPrintNode(fuzz_action_node(doc))) == NULL)
		abort();
	fuzz_printed = printed;
	if (upnp_xml_gate_parse(printed, &again, fuzz_ixml) != IXML_SUCCESS)
		abort();
	fuzz_printed = NULL;
	ixmlDocument_free(again);
	ixmlFreeDOMString(printed);
	ixmlDocument_free(doc);
	memset(a, 0, sizeof(*a));
	if (!upnp_xml_gate_take(a) || upnp_xml_gate_take(a))
		abort();
	if (a->nargs != want.nargs || a->malformed != want.malformed)
		abort();
	for (i = 0; i < a->nargs; i++)
		if (strcmp(a->args[i].name, want.args[i].name) != 0 ||
		    strcmp(a->args[i].value, want.args[i].value) != 0)
			abort();
	/* the callback names the action from pupnp's SOAPACTION header:
	   here, the body's */
	memcpy(a->name, want.name, sizeof(a->name));
	return true;
}

static bool
fuzz_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
fuzz_check_action(const struct upnp_action *a)
{
	size_t i, j, len;

	if (a->nargs > UPNP_ARGS_MAX ||
	    memchr(a->name, '\0', sizeof(a->name)) == NULL)
		abort();
	for (i = 0; i < a->nargs; i++) {
		if (memchr(a->args[i].name, '\0', sizeof(a->args[i].name)) ==
		    NULL || memchr(a->args[i].value, '\0',
		    sizeof(a->args[i].value)) == NULL)
			abort();
		if (a->malformed)
			continue;
		if (a->args[i].name[0] == '\0')
			abort();
		len = strlen(a->args[i].value);
		if (len > 0 && (fuzz_blank(a->args[i].value[0]) ||
		    fuzz_blank(a->args[i].value[len - 1])))
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(a->args[i].name, a->args[j].name) == 0)
				abort();
	}
}

static void
fuzz_never(void *arg, const struct upnp_reply *r)
{
	(void)arg;
	(void)r;
	abort();	/* no upstream: nothing is answered later */
}

static void
fuzz_check_reply(const struct upnp_reply *r)
{
	size_t i;

	if (r->nout > UPNP_OUT_MAX)
		abort();
	if (r->err != 0) {
		if (r->nout != 0 || r->err_desc == NULL ||
		    map_err_upnp_name((unsigned int)r->err) == NULL ||
		    strcmp(r->err_desc,
		    map_err_upnp_name((unsigned int)r->err)) != 0)
			abort();
		return;
	}
	for (i = 0; i < r->nout; i++)
		if (r->out[i].name == NULL ||
		    memchr(r->out[i].value, '\0', sizeof(r->out[i].value)) ==
		    NULL)
			abort();
}

static void
fuzz_run_one(struct upnp_soap *s, const struct upnp_action *a, uint64_t now)
{
	struct upnp_reply r;

	if (!upnp_soap_run(s, a, now, fuzz_never, NULL, &r))
		abort();
	fuzz_check_reply(&r);
	upnp_reply_free(&r);
}

/* The listings over whatever the input made. */
static void
fuzz_listings(struct upnp_soap *s, const struct in6_addr *host, uint64_t now)
{
	struct upnp_action a;
	unsigned int i;

	memset(&a, 0, sizeof(a));
	a.service = UPNP_SVC_WANIPC;
	a.requester = *host;
	strcpy(a.name, "GetGenericPortMappingEntry");
	strcpy(a.args[0].name, "NewPortMappingIndex");
	a.nargs = 1;
	for (i = 0; i < 4; i++) {
		a.args[0].value[0] = (char)('0' + i);
		a.args[0].value[1] = '\0';
		fuzz_run_one(s, &a, now);
	}
	memset(&a, 0, sizeof(a));
	a.service = UPNP_SVC_WANIPC;
	a.requester = *host;
	strcpy(a.name, "GetListOfPortMappings");
	strcpy(a.args[0].name, "NewStartPort");
	strcpy(a.args[0].value, "0");
	strcpy(a.args[1].name, "NewEndPort");
	strcpy(a.args[1].value, "65535");
	strcpy(a.args[2].name, "NewProtocol");
	strcpy(a.args[2].value, "TCP");
	strcpy(a.args[3].name, "NewManage");
	strcpy(a.args[3].value, "0");
	strcpy(a.args[4].name, "NewNumberOfPorts");
	strcpy(a.args[4].value, "0");
	a.nargs = 5;
	fuzz_run_one(s, &a, now);
	strcpy(a.args[2].value, "UDP");
	fuzz_run_one(s, &a, now);
}

static void
fuzz_check_table(const struct table *t)
{
	const struct mapping *m;
	struct in6_addr h0, h1;
	size_t i;

	(void)pcp_addr_pton(fuzz_hosts[0], &h0);
	(void)pcp_addr_pton(fuzz_hosts[1], &h1);
	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if (m->origin != MAP_ORIGIN_UPNP ||
		    m->state != MAP_STATE_GRANTED ||
		    !IN6_ARE_ADDR_EQUAL(&m->internal_addr, &m->requester) ||
		    (!IN6_ARE_ADDR_EQUAL(&m->internal_addr, &h0) &&
		    !IN6_ARE_ADDR_EQUAL(&m->internal_addr, &h1)) ||
		    m->internal_port == 0 ||
		    (m->description != NULL &&
		    strlen(m->description) > MAP_DESCRIPTION_MAX))
			abort();
	}
}

static void
fuzz_versions(const struct upnp_action *parsed)
{
	struct policy_prefix lan;
	struct policy pol;
	struct proxy_params pp;
	struct upnp_soap_params sp;
	struct upnp_action a;
	struct table *t;
	struct proxy *p;
	struct upnp_soap *s;
	struct in6_addr host;
	unsigned int version, svc, h;
	uint64_t now = 1000000;

	memset(&lan, 0, sizeof(lan));
	(void)pcp_addr_pton("192.0.2.0", &lan.addr);
	lan.prefix_len = 96 + 24;
	memset(&pol, 0, sizeof(pol));
	pol.lan_prefixes = &lan;
	pol.n_lan_prefixes = 1;
	pol.min_lifetime = 120;
	pol.max_lifetime = 86400;
	pol.max_mappings_per_host = 8;
	for (version = 1; version <= 2; version++) {
		if ((t = table_new()) == NULL)
			abort();
		table_set_seed(t, 42);
		memset(&pp, 0, sizeof(pp));
		pp.nat = PROXY_NAT_NONE;
		pp.table = t;
		pp.policy = &pol;
		(void)pcp_addr_pton("100.64.0.2", &pp.wan_addr);
		pp.wan_addr_known = true;
		if ((p = proxy_new(&pp)) == NULL)
			abort();
		memset(&sp, 0, sizeof(sp));
		sp.version = version;
		sp.proxy = p;
		sp.table = t;
		sp.wanconn_udn = "uuid:00000000-0000-4000-8000-000000000000";
		if ((s = upnp_soap_new(&sp)) == NULL)
			abort();
		for (svc = 0; svc < UPNP_SVC_COUNT; svc++)
			for (h = 0; h < 2; h++) {
				a = *parsed;
				a.service = (enum upnp_service)svc;
				(void)pcp_addr_pton(fuzz_hosts[h],
				    &a.requester);
				fuzz_run_one(s, &a, now);
				/* a repeat is a refresh, never a second */
				fuzz_run_one(s, &a, now + 1000);
			}
		fuzz_check_table(t);
		(void)pcp_addr_pton(fuzz_hosts[0], &host);
		fuzz_listings(s, &host, now + 2000);
		upnp_soap_free(s);
		proxy_free(p);
		table_free(t);
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct upnp_action a;
	char *buf;
	bool passed;

	if (size > FUZZ_MAX_BODY || (buf = malloc(size + 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	buf[size] = '\0';
	passed = fuzz_gate(buf, &a);
	free(buf);
	if (!passed)
		return 0;
	fuzz_check_action(&a);
	fuzz_versions(&a);
	return 0;
}
