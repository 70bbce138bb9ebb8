/*
 * test_upnp_desc.c - the IGD description and SCPDs (spec/iwf.md §3.1,
 * §3.2, §3.3; U-01, U-02, X-10): well-formed for pupnp's ixml, usable by
 * miniupnpc's own parser (how upnpc decides a device is an IGD), the
 * exact action / argument lists of the spec, nothing of IGD:2 in an IGD:1
 * tree, escaping, and stable per-install UDNs.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <ctype.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ixml.h>
#include <miniupnpc/miniupnpc.h>

#include "upnp_desc.h"

#define DESC_URL	"http://192.168.1.1:49152" UPNP_DESC_PATH
#define BASE_URL	"http://192.168.1.1:49152/"
#define NS_DEVICE	"urn:schemas-upnp-org:device-1-0"
#define NS_SERVICE	"urn:schemas-upnp-org:service-1-0"

static const uint8_t key_a[IWF_NONCE_KEY_SIZE] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f };
static const uint8_t key_b[IWF_NONCE_KEY_SIZE] = {
	0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
	0x08, 0x09, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0e };

static void
params_init(struct upnp_desc_params *p, unsigned int version)
{
	memset(p, 0, sizeof(*p));
	p->version = version;
	p->friendly_name = "pcp-iwfd Internet Gateway";
	p->manufacturer = "pcp-iwfd developers";
	p->model_name = "pcp-iwfd";
	p->model_number = "1";
	p->serial = "00000001";
	upnp_desc_udns(key_a, p);
}

/* --- DOM helpers --- */

static IXML_Node *
child(IXML_Node *parent, const char *name)
{
	IXML_Node *n;

	for (n = ixmlNode_getFirstChild(parent); n != NULL;
	    n = ixmlNode_getNextSibling(n))
		if (ixmlNode_getNodeType(n) == eELEMENT_NODE &&
		    strcmp(ixmlNode_getNodeName(n), name) == 0)
			return n;
	return NULL;
}

static size_t
count_children(IXML_Node *parent, const char *name)
{
	IXML_Node *n;
	size_t k = 0;

	for (n = ixmlNode_getFirstChild(parent); n != NULL;
	    n = ixmlNode_getNextSibling(n))
		if (ixmlNode_getNodeType(n) == eELEMENT_NODE &&
		    strcmp(ixmlNode_getNodeName(n), name) == 0)
			k++;
	return k;
}

/* The text of <name> under parent; "" for an empty element, NULL when
   there is no such element. */
static const char *
text_of(IXML_Node *parent, const char *name)
{
	IXML_Node *e = child(parent, name), *t;
	const char *v;

	if (e == NULL)
		return NULL;
	t = ixmlNode_getFirstChild(e);
	if (t == NULL)
		return "";
	assert_int_equal(ixmlNode_getNodeType(t), eTEXT_NODE);
	assert_null(ixmlNode_getNextSibling(t));
	v = ixmlNode_getNodeValue(t);
	return v != NULL ? v : "";
}

static IXML_Document *
parse_or_fail(const char *text, size_t len)
{
	IXML_Document *doc;

	assert_non_null(text);
	assert_int_equal(strlen(text), len);
	doc = ixmlParseBuffer(text);
	if (doc == NULL)
		fail_msg("not well-formed XML:\n%s", text);
	return doc;
}

static IXML_Node *
doc_root(IXML_Document *doc, const char *name, const char *ns)
{
	IXML_Node *r = child((IXML_Node *)doc, name);

	assert_non_null(r);
	assert_string_equal(ixmlNode_getNamespaceURI(r), ns);
	return r;
}

/* --- the root description (U-01, U-02) --- */

/* device: the tree's node for dev, with its service (spec/iwf.md §3.1). */
static IXML_Node *
check_device(IXML_Node *device, const struct upnp_desc_params *p,
    enum upnp_device dev, enum upnp_service svc)
{
	const struct upnp_service_info *si = upnp_service_info(p->version,
	    svc);
	IXML_Node *list, *s;

	assert_non_null(device);
	assert_string_equal(text_of(device, "deviceType"),
	    upnp_device_type(p->version, dev));
	assert_string_equal(text_of(device, "UDN"), p->udn[dev]);
	/* UDA 1.0 §2.1: required in every device */
	assert_non_null(text_of(device, "friendlyName"));
	assert_non_null(text_of(device, "manufacturer"));
	assert_non_null(text_of(device, "modelName"));
	list = child(device, "serviceList");
	assert_non_null(list);
	assert_int_equal(count_children(list, "service"), 1);
	s = child(list, "service");
	assert_string_equal(text_of(s, "serviceType"), si->type);
	assert_string_equal(text_of(s, "serviceId"), si->id);
	assert_string_equal(text_of(s, "SCPDURL"), si->scpd_path);
	assert_string_equal(text_of(s, "controlURL"), si->control_path);
	assert_string_equal(text_of(s, "eventSubURL"), si->event_path);
	if (dev == UPNP_DEV_WANCONN) {
		assert_null(child(device, "deviceList"));
		return NULL;
	}
	list = child(device, "deviceList");
	assert_non_null(list);
	assert_int_equal(count_children(list, "device"), 1);
	return child(list, "device");
}

static void
check_root_tree(unsigned int version)
{
	struct upnp_desc_params p;
	IXML_Document *doc;
	IXML_Node *root, *spec, *d;
	size_t len;
	char *text;

	params_init(&p, version);
	p.presentation_url = "http://192.168.1.1/";
	text = upnp_desc_root(&p, &len);
	doc = parse_or_fail(text, len);
	root = doc_root(doc, "root", NS_DEVICE);
	spec = child(root, "specVersion");
	assert_string_equal(text_of(spec, "major"), "1");
	assert_string_equal(text_of(spec, "minor"), "0");
	assert_int_equal(count_children(root, "device"), 1);
	d = child(root, "device");
	assert_string_equal(text_of(d, "friendlyName"), p.friendly_name);
	assert_string_equal(text_of(d, "manufacturer"), p.manufacturer);
	assert_string_equal(text_of(d, "modelName"), p.model_name);
	assert_string_equal(text_of(d, "modelNumber"), p.model_number);
	assert_string_equal(text_of(d, "serialNumber"), p.serial);
	assert_non_null(text_of(d, "modelDescription"));
	assert_string_equal(text_of(d, "presentationURL"),
	    "http://192.168.1.1/");
	assert_null(text_of(d, "manufacturerURL"));
	d = check_device(d, &p, UPNP_DEV_ROOT, UPNP_SVC_L3F);
	d = check_device(d, &p, UPNP_DEV_WAN, UPNP_SVC_WANCIC);
	assert_null(check_device(d, &p, UPNP_DEV_WANCONN, UPNP_SVC_WANIPC));
	ixmlDocument_free(doc);
	free(text);
}

/* U-01: the IGD:1 tree, parsed by pupnp's XML parser. */
static void
test_root_tree_v1(void **state)
{
	(void)state;
	check_root_tree(1);
}

/* U-01: the IGD:2 tree. */
static void
test_root_tree_v2(void **state)
{
	(void)state;
	check_root_tree(2);
}

/*
 * spec/iwf.md §3.2 "miniupnpc 2.2.4": upnpc takes a device for an IGD
 * when a serviceType starts with WANCommonInterfaceConfig:, and sends
 * every action to the first WANIPConnection's controlURL, relative URLs
 * resolved against URLBase or the description URL.
 */
static void
check_miniupnpc(const char *text, size_t len, unsigned int version,
    const char *urlbase)
{
	const struct upnp_service_info *ip = upnp_service_info(version,
	    UPNP_SVC_WANIPC);
	const struct upnp_service_info *cif = upnp_service_info(version,
	    UPNP_SVC_WANCIC);
	struct IGDdatas data;
	struct UPNPUrls urls;

	memset(&data, 0, sizeof(data));
	parserootdesc(text, (int)len, &data);
	assert_string_equal(data.urlbase, urlbase);
	assert_string_equal(data.first.servicetype, ip->type);
	assert_string_equal(data.first.controlurl, "/ctl/IPConn");
	assert_string_equal(data.first.scpdurl, "/scpd/WANIPCn.xml");
	assert_string_equal(data.first.eventsuburl, "/evt/IPConn");
	assert_string_equal(data.second.servicetype, "");
	assert_string_equal(data.CIF.servicetype, cif->type);
	assert_int_equal(strncmp(data.CIF.servicetype,
	    "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:",
	    strlen("urn:schemas-upnp-org:service:WANCommonInterfaceConfig:")),
	    0);
	assert_string_equal(data.CIF.controlurl, "/ctl/CmnIfCfg");
	assert_string_equal(data.IPv6FC.servicetype, "");

	memset(&urls, 0, sizeof(urls));
	GetUPNPUrls(&urls, &data, DESC_URL, 0);
	assert_non_null(urls.controlURL);
	assert_string_equal(urls.controlURL,
	    "http://192.168.1.1:49152/ctl/IPConn");
	assert_string_equal(urls.ipcondescURL,
	    "http://192.168.1.1:49152/scpd/WANIPCn.xml");
	assert_string_equal(urls.controlURL_CIF,
	    "http://192.168.1.1:49152/ctl/CmnIfCfg");
	FreeUPNPUrls(&urls);
}

static void
check_root_miniupnpc(unsigned int version)
{
	struct upnp_desc_params p;
	size_t len;
	char *text;

	params_init(&p, version);
	text = upnp_desc_root(&p, &len);
	assert_non_null(text);
	check_miniupnpc(text, len, version, "");
	free(text);
}

static void
test_root_miniupnpc_v1(void **state)
{
	(void)state;
	check_root_miniupnpc(1);
}

static void
test_root_miniupnpc_v2(void **state)
{
	(void)state;
	check_root_miniupnpc(2);
}

/*
 * What pupnp serves is not our text but its own reprint: with
 * config_baseURL it parses the description, appends <URLBase> to the
 * root element and serves ixmlPrintDocument() of it (urlconfig.c
 * config_description_doc, configure_urlbase). miniupnpc must read that.
 */
static char *
as_pupnp_serves(const char *text, size_t len)
{
	IXML_Document *doc = parse_or_fail(text, len);
	IXML_Element *base;
	IXML_Node *t;
	char *out;

	base = ixmlDocument_createElement(doc, "URLBase");
	assert_non_null(base);
	t = ixmlDocument_createTextNode(doc, BASE_URL);
	assert_non_null(t);
	assert_int_equal(ixmlNode_appendChild((IXML_Node *)base, t),
	    IXML_SUCCESS);
	assert_int_equal(ixmlNode_appendChild(child((IXML_Node *)doc, "root"),
	    (IXML_Node *)base), IXML_SUCCESS);
	out = ixmlPrintDocument(doc);
	assert_non_null(out);
	ixmlDocument_free(doc);
	return out;
}

static void
test_root_as_served_by_pupnp(void **state)
{
	struct upnp_desc_params p;
	unsigned int v;
	size_t len;
	char *text, *served;

	(void)state;
	for (v = 1; v <= 2; v++) {
		params_init(&p, v);
		text = upnp_desc_root(&p, &len);
		assert_non_null(text);
		served = as_pupnp_serves(text, len);
		check_miniupnpc(served, strlen(served), v, BASE_URL);
		ixmlFreeDOMString(served);
		free(text);
	}
}

/*
 * Configuration text is escaped (XML 1.0 §2.4) and comes back unchanged
 * from pupnp's parser, also after pupnp's reprint; UTF-8 passes as is.
 */
static void
test_root_escaping(void **state)
{
	/* "Bob's <Gateway> & "Ü-Box" ✓" */
	static const char name[] = "Bob's <Gateway> & \"\xc3\x9c-Box\" "
	    "\xe2\x9c\x93";
	struct upnp_desc_params p;
	IXML_Document *doc;
	IXML_Node *d;
	size_t len;
	char *text, *served;

	(void)state;
	params_init(&p, 1);
	p.friendly_name = name;
	p.manufacturer = "A&B <C>";
	p.model_name = "'m'";
	p.model_number = "\"1\"";
	p.serial = "<&>";
	p.manufacturer_url = "http://example.com/?a=1&b=2";
	p.presentation_url = "http://192.168.1.1/?x=<y>&z='1'";
	text = upnp_desc_root(&p, &len);
	assert_non_null(strstr(text, "Bob&apos;s &lt;Gateway&gt; &amp; "
	    "&quot;\xc3\x9c-Box&quot;"));
	doc = parse_or_fail(text, len);
	d = child(doc_root(doc, "root", NS_DEVICE), "device");
	assert_string_equal(text_of(d, "friendlyName"), name);
	assert_string_equal(text_of(d, "manufacturer"), "A&B <C>");
	assert_string_equal(text_of(d, "modelName"), "'m'");
	assert_string_equal(text_of(d, "modelNumber"), "\"1\"");
	assert_string_equal(text_of(d, "serialNumber"), "<&>");
	assert_string_equal(text_of(d, "manufacturerURL"),
	    "http://example.com/?a=1&b=2");
	assert_string_equal(text_of(d, "presentationURL"),
	    "http://192.168.1.1/?x=<y>&z='1'");
	ixmlDocument_free(doc);

	served = as_pupnp_serves(text, len);
	doc = parse_or_fail(served, strlen(served));
	d = child(doc_root(doc, "root", NS_DEVICE), "device");
	assert_string_equal(text_of(d, "friendlyName"), name);
	assert_string_equal(text_of(d, "serialNumber"), "<&>");
	ixmlDocument_free(doc);
	ixmlFreeDOMString(served);
	free(text);
}

/* A C0 control cannot be carried by XML 1.0 at all: replaced, so the
   document stays well-formed (the config never lets one through). */
static void
test_root_control_characters(void **state)
{
	struct upnp_desc_params p;
	IXML_Document *doc;
	IXML_Node *d;
	size_t len;
	char *text;

	(void)state;
	params_init(&p, 1);
	p.friendly_name = "a\x01" "b\tc\x7f";
	text = upnp_desc_root(&p, &len);
	doc = parse_or_fail(text, len);
	d = child(doc_root(doc, "root", NS_DEVICE), "device");
	assert_string_equal(text_of(d, "friendlyName"), "a?b?c?");
	ixmlDocument_free(doc);
	free(text);
}

/* UDA 1.0 §2.1: friendlyName, manufacturer, modelName are required;
   empty optional fields are left out rather than sent empty. */
static void
test_root_defaults(void **state)
{
	struct upnp_desc_params p;
	IXML_Document *doc;
	IXML_Node *d;
	size_t len;
	char *text;

	(void)state;
	memset(&p, 0, sizeof(p));
	p.version = 2;
	p.friendly_name = "";
	p.model_number = "";
	p.presentation_url = "";
	upnp_desc_udns(key_b, &p);
	text = upnp_desc_root(&p, &len);
	doc = parse_or_fail(text, len);
	d = child(doc_root(doc, "root", NS_DEVICE), "device");
	assert_true(strlen(text_of(d, "friendlyName")) > 0);
	assert_true(strlen(text_of(d, "manufacturer")) > 0);
	assert_true(strlen(text_of(d, "modelName")) > 0);
	assert_null(text_of(d, "modelNumber"));
	assert_null(text_of(d, "serialNumber"));
	assert_null(text_of(d, "presentationURL"));
	assert_null(text_of(d, "manufacturerURL"));
	assert_string_equal(text_of(d, "UDN"), p.udn[UPNP_DEV_ROOT]);
	ixmlDocument_free(doc);
	free(text);

	p.version = 3;
	assert_null(upnp_desc_root(&p, &len));
	p.version = 0;
	assert_null(upnp_desc_root(&p, &len));
}

/* --- the SCPDs (U-01, U-03) --- */

struct exp_arg {
	const char	*name;
	const char	*dir;
	const char	*var;
};

#define EXP_ARGS_MAX	10

struct exp_action {
	const char	*name;
	bool		 v2_only;
	struct exp_arg	 args[EXP_ARGS_MAX];
};

/* spec/iwf.md §3.3, argument order as in miniupnpd's upnpdescgen.c; the
   action order is miniupnpd's too. */
#define A_REMOTE_IN	{ "NewRemoteHost", "in", "RemoteHost" }
#define A_EXT_IN	{ "NewExternalPort", "in", "ExternalPort" }
#define A_PROTO_IN	{ "NewProtocol", "in", "PortMappingProtocol" }
#define A_VALUE_OUT							\
	{ "NewInternalPort", "out", "InternalPort" },			\
	{ "NewInternalClient", "out", "InternalClient" },		\
	{ "NewEnabled", "out", "PortMappingEnabled" },			\
	{ "NewPortMappingDescription", "out", "PortMappingDescription" },\
	{ "NewLeaseDuration", "out", "PortMappingLeaseDuration" }
#define A_ADD_IN							\
	A_REMOTE_IN, A_EXT_IN, A_PROTO_IN,				\
	{ "NewInternalPort", "in", "InternalPort" },			\
	{ "NewInternalClient", "in", "InternalClient" },		\
	{ "NewEnabled", "in", "PortMappingEnabled" },			\
	{ "NewPortMappingDescription", "in", "PortMappingDescription" },\
	{ "NewLeaseDuration", "in", "PortMappingLeaseDuration" }

static const struct exp_action wanipc_actions[] = {
	{ "SetConnectionType", false,
	    { { "NewConnectionType", "in", "ConnectionType" } } },
	{ "GetConnectionTypeInfo", false,
	    { { "NewConnectionType", "out", "ConnectionType" },
	      { "NewPossibleConnectionTypes", "out",
		"PossibleConnectionTypes" } } },
	{ "RequestConnection", false, { { NULL, NULL, NULL } } },
	{ "ForceTermination", false, { { NULL, NULL, NULL } } },
	{ "GetStatusInfo", false,
	    { { "NewConnectionStatus", "out", "ConnectionStatus" },
	      { "NewLastConnectionError", "out", "LastConnectionError" },
	      { "NewUptime", "out", "Uptime" } } },
	{ "GetNATRSIPStatus", false,
	    { { "NewRSIPAvailable", "out", "RSIPAvailable" },
	      { "NewNATEnabled", "out", "NATEnabled" } } },
	{ "GetGenericPortMappingEntry", false,
	    { { "NewPortMappingIndex", "in", "PortMappingNumberOfEntries" },
	      { "NewRemoteHost", "out", "RemoteHost" },
	      { "NewExternalPort", "out", "ExternalPort" },
	      { "NewProtocol", "out", "PortMappingProtocol" },
	      A_VALUE_OUT } },
	{ "GetSpecificPortMappingEntry", false,
	    { A_REMOTE_IN, A_EXT_IN, A_PROTO_IN, A_VALUE_OUT } },
	{ "AddPortMapping", false, { A_ADD_IN } },
	{ "DeletePortMapping", false, { A_REMOTE_IN, A_EXT_IN, A_PROTO_IN } },
	{ "GetExternalIPAddress", false,
	    { { "NewExternalIPAddress", "out", "ExternalIPAddress" } } },
	{ "DeletePortMappingRange", true,
	    { { "NewStartPort", "in", "ExternalPort" },
	      { "NewEndPort", "in", "ExternalPort" },
	      A_PROTO_IN,
	      { "NewManage", "in", "A_ARG_TYPE_Manage" } } },
	{ "GetListOfPortMappings", true,
	    { { "NewStartPort", "in", "ExternalPort" },
	      { "NewEndPort", "in", "ExternalPort" },
	      A_PROTO_IN,
	      { "NewManage", "in", "A_ARG_TYPE_Manage" },
	      { "NewNumberOfPorts", "in", "PortMappingNumberOfEntries" },
	      { "NewPortListing", "out", "A_ARG_TYPE_PortListing" } } },
	{ "AddAnyPortMapping", true,
	    { A_ADD_IN, { "NewReservedPort", "out", "ExternalPort" } } },
};

static const struct exp_action wancic_actions[] = {
	{ "GetCommonLinkProperties", false,
	    { { "NewWANAccessType", "out", "WANAccessType" },
	      { "NewLayer1UpstreamMaxBitRate", "out",
		"Layer1UpstreamMaxBitRate" },
	      { "NewLayer1DownstreamMaxBitRate", "out",
		"Layer1DownstreamMaxBitRate" },
	      { "NewPhysicalLinkStatus", "out", "PhysicalLinkStatus" } } },
	{ "GetTotalBytesSent", false,
	    { { "NewTotalBytesSent", "out", "TotalBytesSent" } } },
	{ "GetTotalBytesReceived", false,
	    { { "NewTotalBytesReceived", "out", "TotalBytesReceived" } } },
	{ "GetTotalPacketsSent", false,
	    { { "NewTotalPacketsSent", "out", "TotalPacketsSent" } } },
	{ "GetTotalPacketsReceived", false,
	    { { "NewTotalPacketsReceived", "out", "TotalPacketsReceived" } } },
};

static const struct exp_action l3f_actions[] = {
	{ "SetDefaultConnectionService", false,
	    { { "NewDefaultConnectionService", "in",
		"DefaultConnectionService" } } },
	{ "GetDefaultConnectionService", false,
	    { { "NewDefaultConnectionService", "out",
		"DefaultConnectionService" } } },
};

struct exp_service {
	const struct exp_action	*actions;
	size_t			 n;
	/* evented variables (spec/iwf.md §3.5), NULL-terminated */
	const char		*events[6];
	const char		*events_v2[6];
};

#define NELEM(a)	(sizeof(a) / sizeof((a)[0]))

static const struct exp_service exp_services[UPNP_SVC_COUNT] = {
	[UPNP_SVC_L3F] = { l3f_actions, NELEM(l3f_actions),
	    { "DefaultConnectionService", NULL },
	    { "DefaultConnectionService", NULL } },
	[UPNP_SVC_WANCIC] = { wancic_actions, NELEM(wancic_actions),
	    { "PhysicalLinkStatus", NULL },
	    { "PhysicalLinkStatus", NULL } },
	[UPNP_SVC_WANIPC] = { wanipc_actions, NELEM(wanipc_actions),
	    { "PossibleConnectionTypes", "ConnectionStatus",
	      "ExternalIPAddress", "PortMappingNumberOfEntries", NULL },
	    { "PossibleConnectionTypes", "ConnectionStatus",
	      "ExternalIPAddress", "PortMappingNumberOfEntries",
	      "SystemUpdateID", NULL } },
};

/* The <stateVariable> named name, or NULL. */
static IXML_Node *
state_var(IXML_Node *scpd, const char *name)
{
	IXML_Node *n;
	const char *v;

	for (n = ixmlNode_getFirstChild(child(scpd, "serviceStateTable"));
	    n != NULL; n = ixmlNode_getNextSibling(n)) {
		if (ixmlNode_getNodeType(n) != eELEMENT_NODE)
			continue;
		assert_string_equal(ixmlNode_getNodeName(n), "stateVariable");
		v = text_of(n, "name");
		if (v != NULL && strcmp(v, name) == 0)
			return n;
	}
	return NULL;
}

static bool
in_list(const char *const *list, const char *s)
{
	for (; *list != NULL; list++)
		if (strcmp(*list, s) == 0)
			return true;
	return false;
}

/* Every state variable: a UDA data type, sendEvents as expected, unique. */
static void
check_state_table(IXML_Node *scpd, unsigned int version,
    const struct exp_service *e)
{
	static const char *const types[] = { "string", "boolean", "ui2",
	    "ui4", NULL };
	const char *const *events = version == 2 ? e->events_v2 : e->events;
	IXML_Node *n;
	size_t nevents = 0, k;
	const char *name;

	for (n = ixmlNode_getFirstChild(child(scpd, "serviceStateTable"));
	    n != NULL; n = ixmlNode_getNextSibling(n)) {
		if (ixmlNode_getNodeType(n) != eELEMENT_NODE)
			continue;
		name = text_of(n, "name");
		assert_non_null(name);
		assert_ptr_equal(state_var(scpd, name), n);	/* unique */
		assert_true(in_list(types, text_of(n, "dataType")));
		if (in_list(events, name)) {
			assert_string_equal(ixmlElement_getAttribute(
			    (IXML_Element *)n, "sendEvents"), "yes");
			nevents++;
		} else
			assert_string_equal(ixmlElement_getAttribute(
			    (IXML_Element *)n, "sendEvents"), "no");
	}
	for (k = 0; events[k] != NULL; k++)
		;
	assert_int_equal(nevents, k);
}

static void
check_action(IXML_Node *scpd, IXML_Node *action, const struct exp_action *x)
{
	IXML_Node *list, *a;
	size_t k = 0;

	assert_string_equal(text_of(action, "name"), x->name);
	list = child(action, "argumentList");
	if (x->args[0].name == NULL) {
		assert_null(list);
		return;
	}
	assert_non_null(list);
	for (a = ixmlNode_getFirstChild(list); a != NULL;
	    a = ixmlNode_getNextSibling(a)) {
		if (ixmlNode_getNodeType(a) != eELEMENT_NODE)
			continue;
		assert_true(k < EXP_ARGS_MAX);
		assert_non_null(x->args[k].name);
		assert_string_equal(text_of(a, "name"), x->args[k].name);
		assert_string_equal(text_of(a, "direction"), x->args[k].dir);
		assert_string_equal(text_of(a, "relatedStateVariable"),
		    x->args[k].var);
		/* UDA 1.0 §2.3: it names a variable of this service */
		assert_non_null(state_var(scpd, x->args[k].var));
		k++;
	}
	assert_true(k == EXP_ARGS_MAX || x->args[k].name == NULL);
}

/* U-03: exactly the expected actions, in order, with their arguments. */
static void
check_scpd(unsigned int version, enum upnp_service svc)
{
	const struct exp_service *e = &exp_services[svc];
	IXML_Document *doc;
	IXML_Node *scpd, *spec, *a;
	const char *text;
	size_t len, i = 0;

	text = upnp_desc_scpd(version, svc, &len);
	doc = parse_or_fail(text, len);
	scpd = doc_root(doc, "scpd", NS_SERVICE);
	spec = child(scpd, "specVersion");
	assert_string_equal(text_of(spec, "major"), "1");
	assert_string_equal(text_of(spec, "minor"), "0");
	check_state_table(scpd, version, e);
	for (a = ixmlNode_getFirstChild(child(scpd, "actionList")); a != NULL;
	    a = ixmlNode_getNextSibling(a)) {
		if (ixmlNode_getNodeType(a) != eELEMENT_NODE)
			continue;
		assert_string_equal(ixmlNode_getNodeName(a), "action");
		while (i < e->n && version == 1 && e->actions[i].v2_only)
			i++;
		assert_true(i < e->n);
		check_action(scpd, a, &e->actions[i]);
		assert_true(upnp_desc_has_action(version, svc,
		    e->actions[i].name));
		i++;
	}
	while (i < e->n && version == 1 && e->actions[i].v2_only)
		i++;
	assert_int_equal(i, e->n);
	ixmlDocument_free(doc);
}

static void
test_scpd_v1(void **state)
{
	int s;

	(void)state;
	for (s = 0; s < UPNP_SVC_COUNT; s++)
		check_scpd(1, s);
}

static void
test_scpd_v2(void **state)
{
	int s;

	(void)state;
	for (s = 0; s < UPNP_SVC_COUNT; s++)
		check_scpd(2, s);
}

/* allowedValueList / allowedValueRange of a variable, as text. */
static void
check_allowed(unsigned int version, enum upnp_service svc, const char *var,
    const char *const *values)
{
	IXML_Document *doc;
	IXML_Node *scpd, *v, *list, *n;
	const char *text;
	size_t len, k = 0;

	text = upnp_desc_scpd(version, svc, &len);
	doc = parse_or_fail(text, len);
	scpd = doc_root(doc, "scpd", NS_SERVICE);
	v = state_var(scpd, var);
	assert_non_null(v);
	list = child(v, "allowedValueList");
	assert_non_null(list);
	for (n = ixmlNode_getFirstChild(list); n != NULL;
	    n = ixmlNode_getNextSibling(n)) {
		assert_non_null(values[k]);
		assert_string_equal(ixmlNode_getNodeName(n), "allowedValue");
		assert_string_equal(ixmlNode_getNodeValue(
		    ixmlNode_getFirstChild(n)), values[k]);
		k++;
	}
	assert_null(values[k]);
	ixmlDocument_free(doc);
}

static void
check_range(unsigned int version, const char *var, const char *min,
    const char *max)
{
	IXML_Document *doc;
	IXML_Node *v, *range;
	const char *text;
	size_t len;

	text = upnp_desc_scpd(version, UPNP_SVC_WANIPC, &len);
	doc = parse_or_fail(text, len);
	v = state_var(doc_root(doc, "scpd", NS_SERVICE), var);
	assert_non_null(v);
	range = child(v, "allowedValueRange");
	if (min == NULL)
		assert_null(range);
	else {
		assert_non_null(range);
		assert_string_equal(text_of(range, "minimum"), min);
		assert_string_equal(text_of(range, "maximum"), max);
	}
	ixmlDocument_free(doc);
}

static void
test_scpd_allowed_values(void **state)
{
	static const char *const protocols[] = { "TCP", "UDP", NULL };
	static const char *const conn_types[] = { "Unconfigured",
	    "IP_Routed", "IP_Bridged", NULL };
	static const char *const status[] = { "Unconfigured", "Connecting",
	    "Connected", "PendingDisconnect", "Disconnecting",
	    "Disconnected", NULL };
	static const char *const link[] = { "Up", "Down", "Initializing",
	    "Unavailable", NULL };
	static const char *const access[] = { "DSL", "POTS", "Cable",
	    "Ethernet", NULL };
	unsigned int v;

	(void)state;
	for (v = 1; v <= 2; v++) {
		check_allowed(v, UPNP_SVC_WANIPC, "PortMappingProtocol",
		    protocols);
		check_allowed(v, UPNP_SVC_WANIPC, "ConnectionType",
		    conn_types);
		check_allowed(v, UPNP_SVC_WANIPC, "PossibleConnectionTypes",
		    conn_types);
		check_allowed(v, UPNP_SVC_WANIPC, "ConnectionStatus", status);
		check_allowed(v, UPNP_SVC_WANCIC, "PhysicalLinkStatus", link);
		check_allowed(v, UPNP_SVC_WANCIC, "WANAccessType", access);
		check_range(v, "InternalPort", "1", "65535");
	}
	/* spec/iwf.md §3.5: an IGD:1 lease is any ui4 (0 = infinite), an
	   IGD:2 lease is bounded by 604800 */
	check_range(1, "PortMappingLeaseDuration", NULL, NULL);
	check_range(2, "PortMappingLeaseDuration", "0", "604800");
}

/*
 * spec/iwf.md §3.1, issue 6: Windows and Xbox give up on anything IGD:2,
 * so nothing served in IGDv1 mode may name a version-2 type, a v2-only
 * action, argument or variable.
 */
static void
check_no_v2(const char *text)
{
	static const char *const v2[] = {
		":2<", ":2\"", ":2,", "InternetGatewayDevice:2",
		"WANDevice:2", "WANConnectionDevice:2", "WANIPConnection:2",
		"AddAnyPortMapping", "DeletePortMappingRange",
		"GetListOfPortMappings", "NewReservedPort", "NewPortListing",
		"NewManage", "NewStartPort", "NewEndPort", "NewNumberOfPorts",
		"SystemUpdateID", "A_ARG_TYPE_Manage",
		"A_ARG_TYPE_PortListing", "604800", "DeviceProtection",
		"WANIPv6FirewallControl", NULL };
	size_t i;

	for (i = 0; v2[i] != NULL; i++)
		if (strstr(text, v2[i]) != NULL)
			fail_msg("IGD:1 text mentions \"%s\"", v2[i]);
}

static void
test_v1_mentions_no_v2(void **state)
{
	struct upnp_desc_params p;
	char buf[UPNP_DEFAULT_CONN_SERVICE_SIZE];
	const char *scpd;
	size_t len;
	char *text;
	int s;

	(void)state;
	params_init(&p, 1);
	text = upnp_desc_root(&p, &len);
	assert_non_null(text);
	check_no_v2(text);
	free(text);
	for (s = 0; s < UPNP_SVC_COUNT; s++) {
		check_no_v2(upnp_desc_scpd(1, s, &len));
		assert_non_null(upnp_service_info(1, s));
		check_no_v2(upnp_service_info(1, s)->type);
	}
	assert_true(upnp_desc_default_connection_service(&p, buf,
	    sizeof(buf)));
	check_no_v2(buf);
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "AddAnyPortMapping"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "DeletePortMappingRange"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "GetListOfPortMappings"));

	/* and the check itself catches what the v2 texts contain */
	params_init(&p, 2);
	text = upnp_desc_root(&p, &len);
	assert_non_null(strstr(text, "InternetGatewayDevice:2<"));
	assert_non_null(strstr(text, "WANDevice:2<"));
	assert_non_null(strstr(text, "WANConnectionDevice:2<"));
	assert_non_null(strstr(text, "WANIPConnection:2<"));
	free(text);
	scpd = upnp_desc_scpd(2, UPNP_SVC_WANIPC, &len);
	assert_non_null(strstr(scpd, "<name>AddAnyPortMapping</name>"));
	assert_non_null(strstr(scpd, "<name>DeletePortMappingRange</name>"));
	assert_non_null(strstr(scpd, "<name>GetListOfPortMappings</name>"));
}

static void
test_has_action(void **state)
{
	(void)state;
	assert_true(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "AddPortMapping"));
	assert_true(upnp_desc_has_action(2, UPNP_SVC_WANIPC,
	    "AddAnyPortMapping"));
	assert_true(upnp_desc_has_action(2, UPNP_SVC_WANCIC,
	    "GetTotalBytesSent"));
	assert_true(upnp_desc_has_action(1, UPNP_SVC_L3F,
	    "GetDefaultConnectionService"));
	/* exact names only: prefixes, extensions, case, other services */
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "AddPortMappin"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "AddPortMappingX"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "addportmapping"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "GetTotalBytesSent"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "NewRemoteHost"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC,
	    "RequestTermination"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC, ""));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_WANIPC, NULL));
	assert_false(upnp_desc_has_action(3, UPNP_SVC_WANIPC,
	    "AddPortMapping"));
	assert_false(upnp_desc_has_action(1, UPNP_SVC_COUNT,
	    "AddPortMapping"));
}

/* --- names, paths, lookups (U-02) --- */

static void
test_service_info(void **state)
{
	static const char *const scpd[] = { "/scpd/L3F.xml",
	    "/scpd/WANCfg.xml", "/scpd/WANIPCn.xml" };
	static const char *const ctl[] = { "/ctl/L3F", "/ctl/CmnIfCfg",
	    "/ctl/IPConn" };
	static const char *const evt[] = { "/evt/L3F", "/evt/CmnIfCfg",
	    "/evt/IPConn" };
	static const char *const ids[] = {
	    "urn:upnp-org:serviceId:L3Forwarding1",
	    "urn:upnp-org:serviceId:WANCommonIFC1",
	    "urn:upnp-org:serviceId:WANIPConn1" };
	const struct upnp_service_info *si;
	unsigned int v;
	int s;

	(void)state;
	for (v = 1; v <= 2; v++)
		for (s = 0; s < UPNP_SVC_COUNT; s++) {
			si = upnp_service_info(v, s);
			assert_non_null(si);
			assert_string_equal(si->scpd_path, scpd[s]);
			assert_int_equal(strncmp(si->scpd_path,
			    UPNP_SCPD_DIR "/", strlen(UPNP_SCPD_DIR) + 1), 0);
			assert_string_equal(si->control_path, ctl[s]);
			assert_string_equal(si->event_path, evt[s]);
			assert_string_equal(si->id, ids[s]);
			assert_int_equal(upnp_service_by_id(v, ids[s]), s);
		}
	assert_string_equal(upnp_service_info(1, UPNP_SVC_L3F)->type,
	    "urn:schemas-upnp-org:service:Layer3Forwarding:1");
	assert_string_equal(upnp_service_info(2, UPNP_SVC_L3F)->type,
	    "urn:schemas-upnp-org:service:Layer3Forwarding:1");
	assert_string_equal(upnp_service_info(1, UPNP_SVC_WANCIC)->type,
	    "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1");
	assert_string_equal(upnp_service_info(2, UPNP_SVC_WANCIC)->type,
	    "urn:schemas-upnp-org:service:WANCommonInterfaceConfig:1");
	assert_string_equal(upnp_service_info(1, UPNP_SVC_WANIPC)->type,
	    "urn:schemas-upnp-org:service:WANIPConnection:1");
	assert_string_equal(upnp_service_info(2, UPNP_SVC_WANIPC)->type,
	    "urn:schemas-upnp-org:service:WANIPConnection:2");
	assert_null(upnp_service_info(0, UPNP_SVC_L3F));
	assert_null(upnp_service_info(3, UPNP_SVC_L3F));
	assert_null(upnp_service_info(1, UPNP_SVC_COUNT));
	assert_int_equal(upnp_service_by_id(1,
	    "urn:upnp-org:serviceId:WANIPConn2"), -1);
	assert_int_equal(upnp_service_by_id(1, ""), -1);
	assert_int_equal(upnp_service_by_id(1, NULL), -1);
	assert_int_equal(upnp_service_by_id(3, ids[0]), -1);
}

static void
test_device_types(void **state)
{
	(void)state;
	assert_string_equal(upnp_device_type(1, UPNP_DEV_ROOT),
	    "urn:schemas-upnp-org:device:InternetGatewayDevice:1");
	assert_string_equal(upnp_device_type(1, UPNP_DEV_WAN),
	    "urn:schemas-upnp-org:device:WANDevice:1");
	assert_string_equal(upnp_device_type(1, UPNP_DEV_WANCONN),
	    "urn:schemas-upnp-org:device:WANConnectionDevice:1");
	assert_string_equal(upnp_device_type(2, UPNP_DEV_ROOT),
	    "urn:schemas-upnp-org:device:InternetGatewayDevice:2");
	assert_string_equal(upnp_device_type(2, UPNP_DEV_WAN),
	    "urn:schemas-upnp-org:device:WANDevice:2");
	assert_string_equal(upnp_device_type(2, UPNP_DEV_WANCONN),
	    "urn:schemas-upnp-org:device:WANConnectionDevice:2");
	assert_null(upnp_device_type(3, UPNP_DEV_ROOT));
	assert_null(upnp_device_type(1, UPNP_DEV_COUNT));
}

/* the web server's virtual directory resolves only our SCPDs. */
static void
test_scpd_at(void **state)
{
	const char *t;
	size_t len, len2;
	unsigned int v;
	int s;

	(void)state;
	for (v = 1; v <= 2; v++)
		for (s = 0; s < UPNP_SVC_COUNT; s++) {
			t = upnp_desc_scpd_at(v,
			    upnp_service_info(v, s)->scpd_path, &len);
			assert_ptr_equal(t, upnp_desc_scpd(v, s, &len2));
			assert_int_equal(len, len2);
			assert_int_equal(strlen(t), len);
		}
	assert_ptr_not_equal(upnp_desc_scpd(1, UPNP_SVC_WANIPC, NULL),
	    upnp_desc_scpd(2, UPNP_SVC_WANIPC, NULL));
	assert_null(upnp_desc_scpd_at(1, "/scpd/", &len));
	assert_null(upnp_desc_scpd_at(1, "/scpd/../rootDesc.xml", &len));
	assert_null(upnp_desc_scpd_at(1, "/scpd/WANIPCn.xml/", &len));
	assert_null(upnp_desc_scpd_at(1, "/scpd/wanipcn.xml", &len));
	assert_null(upnp_desc_scpd_at(1, "/WANIPCn.xml", &len));
	assert_null(upnp_desc_scpd_at(1, UPNP_DESC_PATH, &len));
	assert_null(upnp_desc_scpd_at(1, NULL, &len));
	assert_null(upnp_desc_scpd_at(3, "/scpd/WANIPCn.xml", &len));
	assert_null(upnp_desc_scpd(0, UPNP_SVC_L3F, &len));
	assert_null(upnp_desc_scpd(1, UPNP_SVC_COUNT, &len));
}

/* --- UDNs (U-02, X-10) --- */

static void
check_udn_format(const char *udn)
{
	static const size_t dash[] = { 8, 13, 18, 23 };
	const char *u;
	size_t i, d = 0;

	assert_int_equal(strlen(udn), UPNP_UDN_LEN);
	assert_int_equal(strncmp(udn, "uuid:", 5), 0);
	u = udn + 5;
	for (i = 0; i < 36; i++) {
		if (d < NELEM(dash) && i == dash[d]) {
			assert_int_equal(u[i], '-');
			d++;
			continue;
		}
		assert_true(isxdigit((unsigned char)u[i]));
		assert_false(isupper((unsigned char)u[i]));
	}
	/* RFC 4122 §4.4: version 4, variant 10 */
	assert_int_equal(u[14], '4');
	assert_non_null(strchr("89ab", u[19]));
}

static void
test_udn_format_and_stability(void **state)
{
	struct upnp_desc_params a, a2, b;
	int i, j;

	(void)state;
	memset(&a, 0, sizeof(a));
	memset(&a2, 0xff, sizeof(a2));
	memset(&b, 0, sizeof(b));
	upnp_desc_udns(key_a, &a);
	upnp_desc_udns(key_a, &a2);
	upnp_desc_udns(key_b, &b);
	for (i = 0; i < UPNP_DEV_COUNT; i++) {
		check_udn_format(a.udn[i]);
		check_udn_format(b.udn[i]);
		/* stable for one key (across restarts) */
		assert_string_equal(a.udn[i], a2.udn[i]);
		for (j = 0; j < UPNP_DEV_COUNT; j++) {
			/* another install shares none */
			assert_string_not_equal(a.udn[i], b.udn[j]);
			if (i != j)	/* one per device */
				assert_string_not_equal(a.udn[i], a.udn[j]);
		}
	}
}

/*
 * Known answers: a code change must not move the UDNs of an existing
 * install (control points remember them; U-02). Computed by an
 * independent SipHash-2-4 (Python, checked against the paper's vector)
 * of "upnp-udn" || device || half, each half's 8 bytes little-endian.
 */
static void
test_udn_known_answers(void **state)
{
	static const char *const expect[UPNP_DEV_COUNT] = {
		"uuid:f39ec345-426b-40a9-a6d7-29d6c5053991",
		"uuid:470abbf5-c7b5-4871-ab1d-78c1f70c306f",
		"uuid:953f53dc-d085-41c9-a5c0-a8fb251071ca" };
	struct upnp_desc_params p;
	int i;

	(void)state;
	upnp_desc_udns(key_a, &p);
	for (i = 0; i < UPNP_DEV_COUNT; i++)
		assert_string_equal(p.udn[i], expect[i]);
}

static void
test_default_connection_service(void **state)
{
	struct upnp_desc_params p;
	char buf[UPNP_DEFAULT_CONN_SERVICE_SIZE], exp[256];
	unsigned int v;

	(void)state;
	for (v = 1; v <= 2; v++) {
		params_init(&p, v);
		assert_true(upnp_desc_default_connection_service(&p, buf,
		    sizeof(buf)));
		(void)snprintf(exp, sizeof(exp), "%s:WANConnectionDevice:%u,"
		    "urn:upnp-org:serviceId:WANIPConn1",
		    p.udn[UPNP_DEV_WANCONN], v);
		assert_string_equal(buf, exp);
		assert_false(upnp_desc_default_connection_service(&p, buf,
		    strlen(exp)));
		assert_string_equal(buf, "");
		assert_true(upnp_desc_default_connection_service(&p, buf,
		    strlen(exp) + 1));
	}
	p.version = 3;
	assert_false(upnp_desc_default_connection_service(&p, buf,
	    sizeof(buf)));
}

/* SOAP on our own server (iwf/upnp_http.h): with control_base every
   controlURL is absolute there, and miniupnpc takes it as it is while
   the SCPD and event URLs stay with the description's server. */
static void
test_root_control_base(void **state)
{
	struct upnp_desc_params p;
	struct IGDdatas data;
	struct UPNPUrls urls;
	char *text;
	size_t len;

	(void)state;
	params_init(&p, 1);
	p.control_base = "http://192.168.1.1:49153";
	assert_non_null(text = upnp_desc_root(&p, &len));
	memset(&data, 0, sizeof(data));
	parserootdesc(text, (int)len, &data);
	assert_string_equal(data.first.controlurl,
	    "http://192.168.1.1:49153/ctl/IPConn");
	assert_string_equal(data.CIF.controlurl,
	    "http://192.168.1.1:49153/ctl/CmnIfCfg");
	memset(&urls, 0, sizeof(urls));
	GetUPNPUrls(&urls, &data, DESC_URL, 0);
	assert_string_equal(urls.controlURL,
	    "http://192.168.1.1:49153/ctl/IPConn");
	assert_string_equal(urls.ipcondescURL,
	    "http://192.168.1.1:49152/scpd/WANIPCn.xml");
	FreeUPNPUrls(&urls);
	free(text);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_root_tree_v1),
		cmocka_unit_test(test_root_tree_v2),
		cmocka_unit_test(test_root_miniupnpc_v1),
		cmocka_unit_test(test_root_miniupnpc_v2),
		cmocka_unit_test(test_root_control_base),
		cmocka_unit_test(test_root_as_served_by_pupnp),
		cmocka_unit_test(test_root_escaping),
		cmocka_unit_test(test_root_control_characters),
		cmocka_unit_test(test_root_defaults),
		cmocka_unit_test(test_scpd_v1),
		cmocka_unit_test(test_scpd_v2),
		cmocka_unit_test(test_scpd_allowed_values),
		cmocka_unit_test(test_v1_mentions_no_v2),
		cmocka_unit_test(test_has_action),
		cmocka_unit_test(test_service_info),
		cmocka_unit_test(test_device_types),
		cmocka_unit_test(test_scpd_at),
		cmocka_unit_test(test_udn_format_and_stability),
		cmocka_unit_test(test_udn_known_answers),
		cmocka_unit_test(test_default_connection_service),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
