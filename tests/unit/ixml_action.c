/*
 * ixml_action.c - the oracle of the tests: upnp_action_from_xml, the
 * argument copy out of libixml's DOM that pupnp's SOAP port used before
 * the XML gate (iwf/upnp_xml_gate.h). The daemon reads every body with
 * soap_xml_read (iwf/soap_xml.c); test_soap_xml checks that it reads
 * what this reads, and test_upnp_soap states the argument rules with it.
 */
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include <ixml.h>

#include "ixml_action.h"

static bool
upnp_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
upnp_all_blank(const char *s)
{
	for (; *s != '\0'; s++)
		if (!upnp_blank(*s))
			return false;
	return true;
}

/* The element's name without its namespace prefix (any prefix: s:, u:,
   SOAP-ENV:, m:, ...). */
static const char *
upnp_local_name(IXML_Node *n)
{
	const char *name = ixmlNode_getLocalName(n), *colon;

	if (name != NULL && *name != '\0')
		return name;
	if ((name = ixmlNode_getNodeName(n)) == NULL)
		return NULL;
	if ((colon = strrchr(name, ':')) != NULL)
		name = colon + 1;
	return name;
}

/* Copy at most max bytes of src (and a NUL) to dst; false if too long. */
static bool
upnp_copy(char *dst, size_t max, const char *src)
{
	size_t len = strlen(src);

	if (len > max)
		return false;
	memcpy(dst, src, len + 1);
	return true;
}

/* Remove surrounding white space in place. */
static void
upnp_trim(char *s)
{
	size_t len = strlen(s), start = 0;

	while (len > 0 && upnp_blank(s[len - 1]))
		len--;
	while (start < len && upnp_blank(s[start]))
		start++;
	memmove(s, s + start, len - start);
	s[len - start] = '\0';
}

/*
 * An argument's value: its text and CDATA children (ixml has decoded the
 * entities), comments and processing instructions skipped. Markup inside a
 * value, or a value too long, is no argument (false).
 */
static bool
upnp_arg_value(IXML_Node *arg, char *value)
{
	IXML_Node *n;
	const char *text;
	size_t len = 0, add;

	value[0] = '\0';
	for (n = ixmlNode_getFirstChild(arg); n != NULL;
	    n = ixmlNode_getNextSibling(n)) {
		switch (ixmlNode_getNodeType(n)) {
		case eTEXT_NODE:
		case eCDATA_SECTION_NODE:
			if ((text = ixmlNode_getNodeValue(n)) == NULL)
				continue;
			add = strlen(text);
			if (add > UPNP_VALUE_MAX - len)
				return false;
			memcpy(value + len, text, add + 1);
			len += add;
			break;
		case eCOMMENT_NODE:
		case ePROCESSING_INSTRUCTION_NODE:
			break;
		default:
			return false;
		}
	}
	upnp_trim(value);
	return true;
}

/* The action element: the node itself, or a document's first element. */
static IXML_Node *
upnp_action_node(IXML_Node *n)
{
	if (n == NULL || ixmlNode_getNodeType(n) != eDOCUMENT_NODE)
		return n;
	for (n = ixmlNode_getFirstChild(n); n != NULL;
	    n = ixmlNode_getNextSibling(n))
		if (ixmlNode_getNodeType(n) == eELEMENT_NODE)
			return n;
	return NULL;
}

static bool
upnp_arg_add(struct upnp_action *act, IXML_Node *n)
{
	struct upnp_arg *arg;
	const char *name = upnp_local_name(n);
	size_t i;

	if (name == NULL || *name == '\0' || act->nargs >= UPNP_ARGS_MAX)
		return false;
	arg = &act->args[act->nargs];
	if (!upnp_copy(arg->name, UPNP_NAME_MAX, name) ||
	    !upnp_arg_value(n, arg->value))
		return false;
	/* one value per name, or which one would count? */
	for (i = 0; i < act->nargs; i++)
		if (strcmp(act->args[i].name, arg->name) == 0)
			return false;
	act->nargs++;
	return true;
}

void
upnp_action_from_xml(const void *action_elem, struct upnp_action *act)
{
	/* ixml's getters take non-const nodes; nothing here writes */
	IXML_Node *elem = upnp_action_node((IXML_Node *)(uintptr_t)action_elem);
	IXML_Node *n;
	const char *name, *text;

	if (elem == NULL || ixmlNode_getNodeType(elem) != eELEMENT_NODE) {
		act->malformed = true;
		return;
	}
	if (act->name[0] == '\0' && ((name = upnp_local_name(elem)) == NULL ||
	    !upnp_copy(act->name, UPNP_NAME_MAX, name))) {
		act->name[0] = '\0';
		act->malformed = true;
	}
	for (n = ixmlNode_getFirstChild(elem); n != NULL;
	    n = ixmlNode_getNextSibling(n)) {
		switch (ixmlNode_getNodeType(n)) {
		case eELEMENT_NODE:
			if (!upnp_arg_add(act, n)) {
				act->malformed = true;
				return;
			}
			break;
		case eTEXT_NODE:
		case eCDATA_SECTION_NODE:
			/* pretty-printing between the arguments */
			text = ixmlNode_getNodeValue(n);
			if (text != NULL && !upnp_all_blank(text)) {
				act->malformed = true;
				return;
			}
			break;
		default:
			break;
		}
	}
}
