/*
 * upnp_xml_gate.c - libixml reads only our own XML (upnp_xml_gate.h).
 */
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "soap_xml.h"
#include "upnp.h"
#include "upnp_xml_gate.h"

/* The SOAP 1.1 envelope namespace pupnp checks (soap_device.c SOAP_URN). */
#define GATE_SOAP_URN	"http://schemas.xmlsoap.org/soap/envelope/"
/*
 * The canonical envelope: the head, the action element, the tail. The
 * action element is <u:NAME xmlns:u="NS"/>, or <NAME/> when the request
 * had no namespace on it (pupnp then answers 400, as before).
 */
#define GATE_HEAD	"<s:Envelope xmlns:s=\"" GATE_SOAP_URN "\"><s:Body>"
#define GATE_TAIL	"</s:Body></s:Envelope>"
#define GATE_ACTION_MAX	(2 * UPNP_NAME_MAX + SOAP_XML_NS_MAX + 32)
#define GATE_DOC_MAX	(sizeof(GATE_HEAD) + GATE_ACTION_MAX + sizeof(GATE_TAIL))

struct gate_thread {
	unsigned int	 trust;		/* kind 1 while > 0 */
	bool		 have;		/* body holds the last kind-3 read */
	struct upnp_action body;
	/* kind 2: libixml's print of the action element of the last
	   canonical envelope ("" none) */
	char		 expect[GATE_ACTION_MAX + 1];
};

static _Thread_local struct gate_thread gate;
static atomic_uint_fast64_t gate_parses, gate_bodies, gate_refused;

void
upnp_xml_gate_trust(bool on)
{
	if (on)
		gate.trust++;
	else if (gate.trust > 0)
		gate.trust--;
}

bool
upnp_xml_gate_take(struct upnp_action *act)
{
	if (!gate.have)
		return false;
	gate.have = false;
	memcpy(act->args, gate.body.args, sizeof(act->args));
	act->nargs = gate.body.nargs;
	act->malformed = gate.body.malformed;
	return true;
}

void
upnp_xml_gate_forget(void)
{
	gate.have = false;
	gate.expect[0] = '\0';
}

void
upnp_xml_gate_stats(struct upnp_xml_gate_stats *st)
{
	st->parses = atomic_load(&gate_parses);
	st->bodies = atomic_load(&gate_bodies);
	st->refused = atomic_load(&gate_refused);
}

/* An action's local name: what UPnP names are made of (our actions are
   letters only), 1 to UPNP_NAME_MAX bytes. */
static bool
gate_name_ok(const char *s, size_t len)
{
	size_t i;

	if (len == 0 || len > UPNP_NAME_MAX)
		return false;
	for (i = 0; i < len; i++)
		if (!((s[i] >= 'A' && s[i] <= 'Z') ||
		    (s[i] >= 'a' && s[i] <= 'z') ||
		    (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		    s[i] == '-' || s[i] == '.'))
			return false;
	return true;
}

/* A namespace URI (a service type): printable ASCII that needs no
   escaping in a double-quoted attribute. */
static bool
gate_ns_ok(const char *s)
{
	for (; *s != '\0'; s++)
		if (*s <= ' ' || *s > '~' || *s == '"' || *s == '\'' ||
		    *s == '<' || *s == '>' || *s == '&')
			return false;
	return true;
}

/* The action element of a document pupnp accepts: Envelope/Body/first
   child (soap_device.c check_soap_request). */
static IXML_Node *
gate_action_node(IXML_Document *doc)
{
	IXML_Node *n;

	if ((n = ixmlNode_getFirstChild(&doc->n)) == NULL ||
	    (n = ixmlNode_getFirstChild(n)) == NULL)
		return NULL;
	return ixmlNode_getFirstChild(n);
}

/* Kind 3: a body from the network. */
static int
gate_body(const char *buf, IXML_Document **doc, upnp_xml_parse_fn real)
{
	struct soap_xml_elem elem;
	char canon[GATE_DOC_MAX];
	IXML_Node *act;
	DOMString printed;
	size_t len;
	int n, rc;

	memset(&gate.body, 0, sizeof(gate.body));
	len = strnlen(buf, UPNP_MAX_CONTENT + 1);
	if (len > UPNP_MAX_CONTENT ||
	    !soap_xml_read(buf, len, &gate.body, &elem) ||
	    !gate_name_ok(elem.local, elem.local_len) || !gate_ns_ok(elem.ns))
		goto refuse;
	if (elem.ns[0] != '\0')
		n = snprintf(canon, sizeof(canon),
		    GATE_HEAD "<u:%.*s xmlns:u=\"%s\"/>" GATE_TAIL,
		    (int)elem.local_len, elem.local, elem.ns);
	else
		n = snprintf(canon, sizeof(canon), GATE_HEAD "<%.*s/>" GATE_TAIL,
		    (int)elem.local_len, elem.local);
	if (n < 0 || (size_t)n >= sizeof(canon))
		goto refuse;
	if ((rc = real(canon, doc)) != IXML_SUCCESS)
		return rc;
	/* what pupnp will print and parse again (soap_device.c
	   handle_invoke_action): the same function on the same node */
	if ((act = gate_action_node(*doc)) != NULL &&
	    (printed = ixmlPrintNode(act)) != NULL) {
		if (strlen(printed) < sizeof(gate.expect))
			memcpy(gate.expect, printed, strlen(printed) + 1);
		ixmlFreeDOMString(printed);
	}
	gate.have = true;
	atomic_fetch_add(&gate_bodies, 1);
	return IXML_SUCCESS;

refuse:
	memset(&gate.body, 0, sizeof(gate.body));
	atomic_fetch_add(&gate_refused, 1);
	*doc = NULL;
	return IXML_FAILED;
}

int
upnp_xml_gate_parse(const char *buf, IXML_Document **doc,
    upnp_xml_parse_fn real)
{
	bool again;

	atomic_fetch_add(&gate_parses, 1);
	if (doc == NULL)
		return IXML_INVALID_PARAMETER;
	*doc = NULL;
	if (buf == NULL)
		return IXML_INVALID_PARAMETER;
	if (gate.trust > 0)
		return real(buf, doc);
	again = gate.expect[0] != '\0' && strcmp(buf, gate.expect) == 0;
	gate.expect[0] = '\0';
	if (again)
		return real(buf, doc);
	gate.have = false;
	return gate_body(buf, doc, real);
}
