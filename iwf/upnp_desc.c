/*
 * upnp_desc.c - the IGD device description and the SCPDs (spec/iwf.md
 * §3.1, §3.2; U-01, U-02, X-10).
 *
 * The SCPDs are string literals put together by the preprocessor: one
 * text per service and version, no state, nothing built at run time.
 * Action and argument order and the state variables follow miniupnpd's
 * upnpdescgen.c, which every deployed control point has been tested
 * against. The IGD:1 texts are written without any IGD:2 part, not
 * relabelled: Windows and Xbox stop at an IGD:2 description and were
 * reported to stop at a relabelled one too (spec/iwf.md §3.1).
 *
 * The root description carries configuration text, so it is generated:
 * one pass counts, a second writes into a buffer of exactly that size.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "upnp_desc.h"
#include "upnp_soap.h"

#define UPNP_DESC_STR2(x)	#x
#define UPNP_DESC_STR(x)	UPNP_DESC_STR2(x)

#define UPNP_URN_DEVICE		"urn:schemas-upnp-org:device:"
#define UPNP_URN_SERVICE	"urn:schemas-upnp-org:service:"
#define UPNP_URN_SERVICE_ID	"urn:upnp-org:serviceId:"

/* Texts the UDA requires (§2.1) when the configuration left them empty. */
#define UPNP_DESC_DEF_FRIENDLY	"Internet Gateway"
#define UPNP_DESC_DEF_MANUF	"pcp-iwfd"
#define UPNP_DESC_DEF_MODEL	"pcp-iwfd"
#define UPNP_DESC_DEF_MODEL_DESC \
	"UPnP IGD to PCP interworking function (RFC 6970)"
/* The embedded devices' friendly names, as miniupnpd's. */
#define UPNP_DESC_WAN_FRIENDLY	"WANDevice"
#define UPNP_DESC_WANCONN_FRIENDLY "WANConnectionDevice"

/* The supported versions, an index into the tables below. */
#define UPNP_DESC_VERSIONS	2

static int
upnp_desc_vindex(unsigned int version)
{
	if (version == 1)
		return 0;
	if (version == 2)
		return 1;
	return -1;
}

/* --- names and places (spec/iwf.md §3.1) --- */

/* IGD:2 keeps WANCommonInterfaceConfig:1 and Layer3Forwarding:1, and the
   WANIPConnection:2 service keeps the serviceId WANIPConn1 (miniupnpd). */
static const struct upnp_service_info
    upnp_services[UPNP_DESC_VERSIONS][UPNP_SVC_COUNT] = {
	{
		[UPNP_SVC_L3F] = {
			UPNP_URN_SERVICE "Layer3Forwarding:1",
			UPNP_URN_SERVICE_ID "L3Forwarding1",
			UPNP_SCPD_DIR "/L3F.xml", "/ctl/L3F", "/evt/L3F" },
		[UPNP_SVC_WANCIC] = {
			UPNP_URN_SERVICE "WANCommonInterfaceConfig:1",
			UPNP_URN_SERVICE_ID "WANCommonIFC1",
			UPNP_SCPD_DIR "/WANCfg.xml", "/ctl/CmnIfCfg",
			"/evt/CmnIfCfg" },
		[UPNP_SVC_WANIPC] = {
			UPNP_URN_SERVICE "WANIPConnection:1",
			UPNP_URN_SERVICE_ID "WANIPConn1",
			UPNP_SCPD_DIR "/WANIPCn.xml", "/ctl/IPConn",
			"/evt/IPConn" },
	},
	{
		[UPNP_SVC_L3F] = {
			UPNP_URN_SERVICE "Layer3Forwarding:1",
			UPNP_URN_SERVICE_ID "L3Forwarding1",
			UPNP_SCPD_DIR "/L3F.xml", "/ctl/L3F", "/evt/L3F" },
		[UPNP_SVC_WANCIC] = {
			UPNP_URN_SERVICE "WANCommonInterfaceConfig:1",
			UPNP_URN_SERVICE_ID "WANCommonIFC1",
			UPNP_SCPD_DIR "/WANCfg.xml", "/ctl/CmnIfCfg",
			"/evt/CmnIfCfg" },
		[UPNP_SVC_WANIPC] = {
			UPNP_URN_SERVICE "WANIPConnection:2",
			UPNP_URN_SERVICE_ID "WANIPConn1",
			UPNP_SCPD_DIR "/WANIPCn.xml", "/ctl/IPConn",
			"/evt/IPConn" },
	},
};

static const char *const upnp_devices[UPNP_DESC_VERSIONS][UPNP_DEV_COUNT] = {
	{
		[UPNP_DEV_ROOT] = UPNP_URN_DEVICE "InternetGatewayDevice:1",
		[UPNP_DEV_WAN] = UPNP_URN_DEVICE "WANDevice:1",
		[UPNP_DEV_WANCONN] = UPNP_URN_DEVICE "WANConnectionDevice:1",
	},
	{
		[UPNP_DEV_ROOT] = UPNP_URN_DEVICE "InternetGatewayDevice:2",
		[UPNP_DEV_WAN] = UPNP_URN_DEVICE "WANDevice:2",
		[UPNP_DEV_WANCONN] = UPNP_URN_DEVICE "WANConnectionDevice:2",
	},
};

const struct upnp_service_info *
upnp_service_info(unsigned int version, enum upnp_service svc)
{
	int v = upnp_desc_vindex(version);

	if (v < 0 || (unsigned int)svc >= UPNP_SVC_COUNT)
		return NULL;
	return &upnp_services[v][svc];
}

int
upnp_service_by_id(unsigned int version, const char *id)
{
	int v = upnp_desc_vindex(version), s;

	if (v < 0 || id == NULL)
		return -1;
	for (s = 0; s < UPNP_SVC_COUNT; s++)
		if (strcmp(upnp_services[v][s].id, id) == 0)
			return s;
	return -1;
}

const char *
upnp_device_type(unsigned int version, enum upnp_device dev)
{
	int v = upnp_desc_vindex(version);

	if (v < 0 || (unsigned int)dev >= UPNP_DEV_COUNT)
		return NULL;
	return upnp_devices[v][dev];
}

/* --- the SCPDs (UDA 1.0 §2.3) --- */

#define SCPD_HEAD							\
	"<?xml version=\"1.0\"?>\n"					\
	"<scpd xmlns=\"urn:schemas-upnp-org:service-1-0\">\n"		\
	"<specVersion><major>1</major><minor>0</minor></specVersion>\n"
#define SCPD_ACTIONS(a)		"<actionList>\n" a "</actionList>\n"
#define SCPD_VARS(v)							\
	"<serviceStateTable>\n" v "</serviceStateTable>\n"
#define SCPD_TAIL		"</scpd>\n"

#define SCPD_ARG(name, dir, var)					\
	"<argument><name>" name "</name><direction>" dir		\
	"</direction><relatedStateVariable>" var			\
	"</relatedStateVariable></argument>\n"
#define SCPD_IN(name, var)	SCPD_ARG(name, "in", var)
#define SCPD_OUT(name, var)	SCPD_ARG(name, "out", var)
#define SCPD_ACTION(name, args)						\
	"<action><name>" name "</name>\n"				\
	"<argumentList>\n" args "</argumentList>\n</action>\n"
#define SCPD_ACTION_NOARGS(name) "<action><name>" name "</name></action>\n"

/* sendEvents, name, dataType, then defaultValue / allowed values. */
#define SCPD_VAR(events, name, type, rest)				\
	"<stateVariable sendEvents=\"" events "\"><name>" name		\
	"</name><dataType>" type "</dataType>" rest "</stateVariable>\n"
#define SCPD_DEFAULT(v)		"<defaultValue>" v "</defaultValue>"
#define SCPD_ALLOWED(list)	"<allowedValueList>" list "</allowedValueList>"
#define SCPD_VALUE(v)		"<allowedValue>" v "</allowedValue>"
#define SCPD_RANGE(min, max)						\
	"<allowedValueRange><minimum>" min "</minimum><maximum>" max	\
	"</maximum></allowedValueRange>"

/* Layer3Forwarding:1, as miniupnpd serves it. */
static const char upnp_scpd_l3f[] =
	SCPD_HEAD
	SCPD_ACTIONS(
	    SCPD_ACTION("SetDefaultConnectionService",
		SCPD_IN("NewDefaultConnectionService",
		    "DefaultConnectionService"))
	    SCPD_ACTION("GetDefaultConnectionService",
		SCPD_OUT("NewDefaultConnectionService",
		    "DefaultConnectionService")))
	SCPD_VARS(
	    SCPD_VAR("yes", "DefaultConnectionService", "string", ""))
	SCPD_TAIL;

/* WANCommonInterfaceConfig:1, in both versions: GetCommonLinkProperties
   and the four counters upnpc -s asks for (spec/iwf.md §3.3). */
static const char upnp_scpd_wancic[] =
	SCPD_HEAD
	SCPD_ACTIONS(
	    SCPD_ACTION("GetCommonLinkProperties",
		SCPD_OUT("NewWANAccessType", "WANAccessType")
		SCPD_OUT("NewLayer1UpstreamMaxBitRate",
		    "Layer1UpstreamMaxBitRate")
		SCPD_OUT("NewLayer1DownstreamMaxBitRate",
		    "Layer1DownstreamMaxBitRate")
		SCPD_OUT("NewPhysicalLinkStatus", "PhysicalLinkStatus"))
	    SCPD_ACTION("GetTotalBytesSent",
		SCPD_OUT("NewTotalBytesSent", "TotalBytesSent"))
	    SCPD_ACTION("GetTotalBytesReceived",
		SCPD_OUT("NewTotalBytesReceived", "TotalBytesReceived"))
	    SCPD_ACTION("GetTotalPacketsSent",
		SCPD_OUT("NewTotalPacketsSent", "TotalPacketsSent"))
	    SCPD_ACTION("GetTotalPacketsReceived",
		SCPD_OUT("NewTotalPacketsReceived", "TotalPacketsReceived")))
	SCPD_VARS(
	    SCPD_VAR("no", "WANAccessType", "string",
		SCPD_ALLOWED(SCPD_VALUE("DSL") SCPD_VALUE("POTS")
		    SCPD_VALUE("Cable") SCPD_VALUE("Ethernet")))
	    SCPD_VAR("no", "Layer1UpstreamMaxBitRate", "ui4", "")
	    SCPD_VAR("no", "Layer1DownstreamMaxBitRate", "ui4", "")
	    SCPD_VAR("yes", "PhysicalLinkStatus", "string",
		SCPD_ALLOWED(SCPD_VALUE("Up") SCPD_VALUE("Down")
		    SCPD_VALUE("Initializing") SCPD_VALUE("Unavailable")))
	    SCPD_VAR("no", "TotalBytesSent", "ui4", "")
	    SCPD_VAR("no", "TotalBytesReceived", "ui4", "")
	    SCPD_VAR("no", "TotalPacketsSent", "ui4", "")
	    SCPD_VAR("no", "TotalPacketsReceived", "ui4", ""))
	SCPD_TAIL;

/*
 * WANIPConnection, the actions both versions have, in miniupnpd's order.
 * The argument names are the spec's: "New" + the state variable, except
 * NewProtocol / NewEnabled / NewLeaseDuration (PortMapping* variables)
 * and NewPortMappingIndex (PortMappingNumberOfEntries).
 */
#define WANIPC_MAPPING_KEY_IN						\
	SCPD_IN("NewRemoteHost", "RemoteHost")				\
	SCPD_IN("NewExternalPort", "ExternalPort")			\
	SCPD_IN("NewProtocol", "PortMappingProtocol")
#define WANIPC_MAPPING_IN						\
	WANIPC_MAPPING_KEY_IN						\
	SCPD_IN("NewInternalPort", "InternalPort")			\
	SCPD_IN("NewInternalClient", "InternalClient")			\
	SCPD_IN("NewEnabled", "PortMappingEnabled")			\
	SCPD_IN("NewPortMappingDescription", "PortMappingDescription")	\
	SCPD_IN("NewLeaseDuration", "PortMappingLeaseDuration")
#define WANIPC_MAPPING_VALUE_OUT					\
	SCPD_OUT("NewInternalPort", "InternalPort")			\
	SCPD_OUT("NewInternalClient", "InternalClient")			\
	SCPD_OUT("NewEnabled", "PortMappingEnabled")			\
	SCPD_OUT("NewPortMappingDescription", "PortMappingDescription")	\
	SCPD_OUT("NewLeaseDuration", "PortMappingLeaseDuration")

#define WANIPC_ACTIONS_COMMON						\
	SCPD_ACTION("SetConnectionType",				\
	    SCPD_IN("NewConnectionType", "ConnectionType"))		\
	SCPD_ACTION("GetConnectionTypeInfo",				\
	    SCPD_OUT("NewConnectionType", "ConnectionType")		\
	    SCPD_OUT("NewPossibleConnectionTypes",			\
		"PossibleConnectionTypes"))				\
	SCPD_ACTION_NOARGS("RequestConnection")				\
	SCPD_ACTION_NOARGS("ForceTermination")				\
	SCPD_ACTION("GetStatusInfo",					\
	    SCPD_OUT("NewConnectionStatus", "ConnectionStatus")		\
	    SCPD_OUT("NewLastConnectionError", "LastConnectionError")	\
	    SCPD_OUT("NewUptime", "Uptime"))				\
	SCPD_ACTION("GetNATRSIPStatus",					\
	    SCPD_OUT("NewRSIPAvailable", "RSIPAvailable")		\
	    SCPD_OUT("NewNATEnabled", "NATEnabled"))			\
	SCPD_ACTION("GetGenericPortMappingEntry",			\
	    SCPD_IN("NewPortMappingIndex", "PortMappingNumberOfEntries")\
	    SCPD_OUT("NewRemoteHost", "RemoteHost")			\
	    SCPD_OUT("NewExternalPort", "ExternalPort")			\
	    SCPD_OUT("NewProtocol", "PortMappingProtocol")		\
	    WANIPC_MAPPING_VALUE_OUT)					\
	SCPD_ACTION("GetSpecificPortMappingEntry",			\
	    WANIPC_MAPPING_KEY_IN					\
	    WANIPC_MAPPING_VALUE_OUT)					\
	SCPD_ACTION("AddPortMapping", WANIPC_MAPPING_IN)		\
	SCPD_ACTION("DeletePortMapping", WANIPC_MAPPING_KEY_IN)		\
	SCPD_ACTION("GetExternalIPAddress",				\
	    SCPD_OUT("NewExternalIPAddress", "ExternalIPAddress"))

/* The three actions WANIPConnection:2 adds (spec/iwf.md §3.3). */
#define WANIPC_ACTIONS_V2						\
	SCPD_ACTION("DeletePortMappingRange",				\
	    SCPD_IN("NewStartPort", "ExternalPort")			\
	    SCPD_IN("NewEndPort", "ExternalPort")			\
	    SCPD_IN("NewProtocol", "PortMappingProtocol")		\
	    SCPD_IN("NewManage", "A_ARG_TYPE_Manage"))			\
	SCPD_ACTION("GetListOfPortMappings",				\
	    SCPD_IN("NewStartPort", "ExternalPort")			\
	    SCPD_IN("NewEndPort", "ExternalPort")			\
	    SCPD_IN("NewProtocol", "PortMappingProtocol")		\
	    SCPD_IN("NewManage", "A_ARG_TYPE_Manage")			\
	    SCPD_IN("NewNumberOfPorts", "PortMappingNumberOfEntries")	\
	    SCPD_OUT("NewPortListing", "A_ARG_TYPE_PortListing"))	\
	SCPD_ACTION("AddAnyPortMapping",				\
	    WANIPC_MAPPING_IN						\
	    SCPD_OUT("NewReservedPort", "ExternalPort"))

/*
 * The state table up to the lease, which differs. Evented as miniupnpd
 * does (spec/iwf.md §3.5): PossibleConnectionTypes, ConnectionStatus,
 * ExternalIPAddress, PortMappingNumberOfEntries.
 */
#define WANIPC_CONNECTION_TYPES						\
	SCPD_ALLOWED(SCPD_VALUE("Unconfigured") SCPD_VALUE("IP_Routed")	\
	    SCPD_VALUE("IP_Bridged"))
#define WANIPC_VARS_HEAD						\
	SCPD_VAR("no", "ConnectionType", "string",			\
	    SCPD_DEFAULT("IP_Routed") WANIPC_CONNECTION_TYPES)		\
	SCPD_VAR("yes", "PossibleConnectionTypes", "string",		\
	    WANIPC_CONNECTION_TYPES)					\
	SCPD_VAR("yes", "ConnectionStatus", "string",			\
	    SCPD_DEFAULT("Unconfigured")				\
	    SCPD_ALLOWED(SCPD_VALUE("Unconfigured")			\
		SCPD_VALUE("Connecting") SCPD_VALUE("Connected")	\
		SCPD_VALUE("PendingDisconnect")				\
		SCPD_VALUE("Disconnecting") SCPD_VALUE("Disconnected")))\
	SCPD_VAR("no", "Uptime", "ui4", "")				\
	SCPD_VAR("no", "LastConnectionError", "string",			\
	    SCPD_DEFAULT("ERROR_NONE")					\
	    SCPD_ALLOWED(SCPD_VALUE("ERROR_NONE")))			\
	SCPD_VAR("no", "RSIPAvailable", "boolean", SCPD_DEFAULT("0"))	\
	SCPD_VAR("no", "NATEnabled", "boolean", SCPD_DEFAULT("1"))	\
	SCPD_VAR("yes", "ExternalIPAddress", "string", "")		\
	SCPD_VAR("yes", "PortMappingNumberOfEntries", "ui2", "")	\
	SCPD_VAR("no", "PortMappingEnabled", "boolean", "")
/* The mapping's own variables after the lease. InternalPort 0 is refused
   (spec/iwf.md §3.5: 732 / 402), so its range starts at 1. */
#define WANIPC_VARS_TAIL						\
	SCPD_VAR("no", "RemoteHost", "string", "")			\
	SCPD_VAR("no", "ExternalPort", "ui2", "")			\
	SCPD_VAR("no", "InternalPort", "ui2", SCPD_RANGE("1", "65535"))	\
	SCPD_VAR("no", "PortMappingProtocol", "string",			\
	    SCPD_ALLOWED(SCPD_VALUE("TCP") SCPD_VALUE("UDP")))		\
	SCPD_VAR("no", "InternalClient", "string", "")			\
	SCPD_VAR("no", "PortMappingDescription", "string", "")

/* IGD:1: a lease is any ui4, 0 meaning infinite (spec/iwf.md §3.5), so
   no range is announced. */
static const char upnp_scpd_wanipc_v1[] =
	SCPD_HEAD
	SCPD_ACTIONS(WANIPC_ACTIONS_COMMON)
	SCPD_VARS(
	    WANIPC_VARS_HEAD
	    SCPD_VAR("no", "PortMappingLeaseDuration", "ui4", "")
	    WANIPC_VARS_TAIL)
	SCPD_TAIL;

/* IGD:2: leases are bounded (spec/iwf.md §3.5, as miniupnpd announces
   them) and three variables are added; SystemUpdateID is evented. */
static const char upnp_scpd_wanipc_v2[] =
	SCPD_HEAD
	SCPD_ACTIONS(WANIPC_ACTIONS_COMMON WANIPC_ACTIONS_V2)
	SCPD_VARS(
	    WANIPC_VARS_HEAD
	    SCPD_VAR("no", "PortMappingLeaseDuration", "ui4",
		SCPD_RANGE("0", UPNP_DESC_STR(UPNP_V2_LEASE_MAX)))
	    WANIPC_VARS_TAIL
	    SCPD_VAR("yes", "SystemUpdateID", "ui4", "")
	    SCPD_VAR("no", "A_ARG_TYPE_Manage", "boolean", "")
	    SCPD_VAR("no", "A_ARG_TYPE_PortListing", "string", ""))
	SCPD_TAIL;

struct upnp_scpd_text {
	const char	*text;
	size_t		 len;
};

#define UPNP_SCPD_TEXT(a)	{ a, sizeof(a) - 1 }

static const struct upnp_scpd_text
    upnp_scpds[UPNP_DESC_VERSIONS][UPNP_SVC_COUNT] = {
	{
		[UPNP_SVC_L3F] = UPNP_SCPD_TEXT(upnp_scpd_l3f),
		[UPNP_SVC_WANCIC] = UPNP_SCPD_TEXT(upnp_scpd_wancic),
		[UPNP_SVC_WANIPC] = UPNP_SCPD_TEXT(upnp_scpd_wanipc_v1),
	},
	{
		[UPNP_SVC_L3F] = UPNP_SCPD_TEXT(upnp_scpd_l3f),
		[UPNP_SVC_WANCIC] = UPNP_SCPD_TEXT(upnp_scpd_wancic),
		[UPNP_SVC_WANIPC] = UPNP_SCPD_TEXT(upnp_scpd_wanipc_v2),
	},
};

const char *
upnp_desc_scpd(unsigned int version, enum upnp_service svc, size_t *len)
{
	int v = upnp_desc_vindex(version);

	if (v < 0 || (unsigned int)svc >= UPNP_SVC_COUNT)
		return NULL;
	if (len != NULL)
		*len = upnp_scpds[v][svc].len;
	return upnp_scpds[v][svc].text;
}

const char *
upnp_desc_scpd_at(unsigned int version, const char *path, size_t *len)
{
	int v = upnp_desc_vindex(version), s;

	if (v < 0 || path == NULL)
		return NULL;
	for (s = 0; s < UPNP_SVC_COUNT; s++)
		if (strcmp(upnp_services[v][s].scpd_path, path) == 0)
			return upnp_desc_scpd(version, s, len);
	return NULL;
}

/* The action list is read from the SCPD text itself, so what we answer
   and what we announce cannot drift apart. */
bool
upnp_desc_has_action(unsigned int version, enum upnp_service svc,
    const char *name)
{
	static const char open[] = "<action><name>";
	static const char close[] = "</name>";
	const char *text, *p;
	size_t n;

	if (name == NULL || (text = upnp_desc_scpd(version, svc, NULL)) ==
	    NULL)
		return false;
	n = strlen(name);
	if (n == 0)
		return false;
	for (p = strstr(text, open); p != NULL; p = strstr(p, open)) {
		p += sizeof(open) - 1;
		if (strncmp(p, name, n) == 0 &&
		    strncmp(p + n, close, sizeof(close) - 1) == 0)
			return true;
	}
	return false;
}

/* --- UDNs (U-02, X-10) --- */

#define UPNP_UDN_DOMAIN		"upnp-udn"
#define UPNP_UUID_SIZE		16

/*
 * Sixteen bytes per device from SipHash-2-4 under the install's secret,
 * the input "upnp-udn" || device || half: no collision with iwf_nonce()'s
 * inputs (another length, which SipHash mixes in), stable for one key,
 * unpredictable without it. RFC 4122 §4.4: version 4, variant 10.
 */
static void
upnp_desc_uuid(const uint8_t key[IWF_NONCE_KEY_SIZE], unsigned int dev,
    uint8_t uuid[UPNP_UUID_SIZE])
{
	uint8_t msg[sizeof(UPNP_UDN_DOMAIN) - 1 + 2];
	uint64_t h;
	unsigned int half, i;

	memcpy(msg, UPNP_UDN_DOMAIN, sizeof(UPNP_UDN_DOMAIN) - 1);
	msg[sizeof(msg) - 2] = (uint8_t)dev;
	for (half = 0; half < 2; half++) {
		msg[sizeof(msg) - 1] = (uint8_t)half;
		h = iwf_siphash(key, msg, sizeof(msg));
		for (i = 0; i < 8; i++)
			uuid[8 * half + i] = (uint8_t)(h >> (8 * i));
	}
	uuid[6] = (uint8_t)((uuid[6] & 0x0f) | 0x40);	/* version 4 */
	uuid[8] = (uint8_t)((uuid[8] & 0x3f) | 0x80);	/* variant 10 */
}

void
upnp_desc_udns(const uint8_t key[IWF_NONCE_KEY_SIZE],
    struct upnp_desc_params *p)
{
	uint8_t u[UPNP_UUID_SIZE];
	unsigned int dev;

	for (dev = 0; dev < UPNP_DEV_COUNT; dev++) {
		upnp_desc_uuid(key, dev, u);
		(void)snprintf(p->udn[dev], sizeof(p->udn[dev]),
		    "uuid:%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-"
		    "%02x%02x%02x%02x%02x%02x",
		    u[0], u[1], u[2], u[3], u[4], u[5], u[6], u[7], u[8],
		    u[9], u[10], u[11], u[12], u[13], u[14], u[15]);
	}
}

bool
upnp_desc_default_connection_service(const struct upnp_desc_params *p,
    char *buf, size_t size)
{
	const char *dev = upnp_device_type(p->version, UPNP_DEV_WANCONN);
	const struct upnp_service_info *si =
	    upnp_service_info(p->version, UPNP_SVC_WANIPC);
	int n;

	if (dev == NULL || si == NULL || size == 0)
		return false;
	/* "...:WANConnectionDevice:N" without "urn:schemas-upnp-org:device". */
	dev += sizeof(UPNP_URN_DEVICE) - 2;
	n = snprintf(buf, size, "%s%s,%s", p->udn[UPNP_DEV_WANCONN], dev,
	    si->id);
	if (n < 0 || (size_t)n >= size) {
		buf[0] = '\0';
		return false;
	}
	return true;
}

/* --- the root description (UDA 1.0 §2.1) --- */

/* Counts when p is NULL, else writes: the second pass writes exactly
   what the first counted, into a buffer of that size. */
struct upnp_desc_out {
	char		*p;
	size_t		 len;
};

static void
upnp_desc_put(struct upnp_desc_out *o, const char *s)
{
	size_t n = strlen(s);

	if (o->p != NULL)
		memcpy(o->p + o->len, s, n);
	o->len += n;
}

/*
 * XML 1.0 §2.4: & and < always, > " ' too so the text is safe in any
 * context. The configuration admits printable UTF-8 only; should a C0
 * control (no XML 1.0 document may carry one, §2.2) or DEL ever get
 * here, it becomes '?'.
 */
static void
upnp_desc_put_escaped(struct upnp_desc_out *o, const char *s)
{
	char c[2] = { 0, 0 };

	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			upnp_desc_put(o, "&amp;");
			break;
		case '<':
			upnp_desc_put(o, "&lt;");
			break;
		case '>':
			upnp_desc_put(o, "&gt;");
			break;
		case '"':
			upnp_desc_put(o, "&quot;");
			break;
		case '\'':
			upnp_desc_put(o, "&apos;");
			break;
		default:
			c[0] = ((unsigned char)*s < 0x20 || *s == 0x7f) ?
			    '?' : *s;
			upnp_desc_put(o, c);
		}
	}
}

static bool
upnp_desc_empty(const char *s)
{
	return s == NULL || s[0] == '\0';
}

/* <name>escaped value</name>; an optional element without a value is
   left out. */
static void
upnp_desc_leaf(struct upnp_desc_out *o, const char *name, const char *value,
    const char *fallback)
{
	if (upnp_desc_empty(value))
		value = fallback;
	if (upnp_desc_empty(value))
		return;
	upnp_desc_put(o, "<");
	upnp_desc_put(o, name);
	upnp_desc_put(o, ">");
	upnp_desc_put_escaped(o, value);
	upnp_desc_put(o, "</");
	upnp_desc_put(o, name);
	upnp_desc_put(o, ">\n");
}

static void
upnp_desc_service(struct upnp_desc_out *o, const struct upnp_desc_params *p,
    enum upnp_service svc)
{
	const struct upnp_service_info *si = upnp_service_info(p->version,
	    svc);

	upnp_desc_put(o, "<serviceList>\n<service>\n");
	upnp_desc_leaf(o, "serviceType", si->type, NULL);
	upnp_desc_leaf(o, "serviceId", si->id, NULL);
	upnp_desc_leaf(o, "SCPDURL", si->scpd_path, NULL);
	if (!upnp_desc_empty(p->control_base)) {
		/* absolute: SOAP goes to our own server (upnp_http) */
		upnp_desc_put(o, "<controlURL>");
		upnp_desc_put_escaped(o, p->control_base);
		upnp_desc_put_escaped(o, si->control_path);
		upnp_desc_put(o, "</controlURL>\n");
	} else
		upnp_desc_leaf(o, "controlURL", si->control_path, NULL);
	upnp_desc_leaf(o, "eventSubURL", si->event_path, NULL);
	upnp_desc_put(o, "</service>\n</serviceList>\n");
}

/* deviceType .. UDN in the UDA's order; the embedded devices carry the
   configured manufacturer and model too. */
static void
upnp_desc_device_head(struct upnp_desc_out *o,
    const struct upnp_desc_params *p, enum upnp_device dev,
    const char *friendly)
{
	upnp_desc_put(o, "<device>\n");
	upnp_desc_leaf(o, "deviceType", upnp_device_type(p->version, dev),
	    NULL);
	upnp_desc_leaf(o, "friendlyName", friendly, UPNP_DESC_DEF_FRIENDLY);
	upnp_desc_leaf(o, "manufacturer", p->manufacturer,
	    UPNP_DESC_DEF_MANUF);
	upnp_desc_leaf(o, "manufacturerURL", p->manufacturer_url, NULL);
	upnp_desc_leaf(o, "modelDescription", p->model_description,
	    UPNP_DESC_DEF_MODEL_DESC);
	upnp_desc_leaf(o, "modelName", p->model_name, UPNP_DESC_DEF_MODEL);
	upnp_desc_leaf(o, "modelNumber", p->model_number, NULL);
	upnp_desc_leaf(o, "serialNumber", p->serial, NULL);
	upnp_desc_leaf(o, "UDN", p->udn[dev], NULL);
}

static void
upnp_desc_tree(struct upnp_desc_out *o, const struct upnp_desc_params *p)
{
	upnp_desc_put(o, "<?xml version=\"1.0\"?>\n"
	    "<root xmlns=\"urn:schemas-upnp-org:device-1-0\">\n"
	    "<specVersion><major>1</major><minor>0</minor></specVersion>\n");
	upnp_desc_device_head(o, p, UPNP_DEV_ROOT, p->friendly_name);
	upnp_desc_service(o, p, UPNP_SVC_L3F);
	upnp_desc_put(o, "<deviceList>\n");
	upnp_desc_device_head(o, p, UPNP_DEV_WAN, UPNP_DESC_WAN_FRIENDLY);
	upnp_desc_service(o, p, UPNP_SVC_WANCIC);
	upnp_desc_put(o, "<deviceList>\n");
	upnp_desc_device_head(o, p, UPNP_DEV_WANCONN,
	    UPNP_DESC_WANCONN_FRIENDLY);
	upnp_desc_service(o, p, UPNP_SVC_WANIPC);
	upnp_desc_put(o, "</device>\n</deviceList>\n"	/* WANConnection */
	    "</device>\n</deviceList>\n");		/* WAN */
	upnp_desc_leaf(o, "presentationURL", p->presentation_url, NULL);
	upnp_desc_put(o, "</device>\n</root>\n");
}

char *
upnp_desc_root(const struct upnp_desc_params *p, size_t *len)
{
	struct upnp_desc_out o = { NULL, 0 };
	size_t need;

	if (upnp_desc_vindex(p->version) < 0)
		return NULL;
	upnp_desc_tree(&o, p);
	need = o.len;
	if ((o.p = malloc(need + 1)) == NULL)
		return NULL;
	o.len = 0;
	upnp_desc_tree(&o, p);
	o.p[o.len] = '\0';
	if (len != NULL)
		*len = o.len;
	return o.p;
}
