/*
 * soap_xml.h - a small, bounded reader of SOAP control requests (spec/iwf.md
 * §3.3, X-05), in place of libixml for the bodies the LAN sends.
 *
 * Why: libixml (pupnp 1.8.4) read past a heap block of its own and leaked
 * on trailing garbage under fuzzing (tests/fuzz/known/README). This reader
 * is pure: bytes in, struct out; no globals, no allocation, no recursion,
 * at most SOAP_XML_DEPTH_MAX open elements. It checks that the whole body
 * is well-formed XML 1.0 (UTF-8, no DOCTYPE), walks Envelope/Body/<first
 * element> by local names whatever the prefixes (SOAP 1.1 §4), and copies
 * that action element's arguments. It reads the bodies of our SOAP server
 * (upnp_http.c) and, through the XML gate (upnp_xml_gate.h), those sent
 * to pupnp's own port.
 *
 * The argument rules (those libixml's DOM gave, walked by the oracle the
 * tests keep, tests/unit/ixml_action.c): the children of <u:ActionName>
 * whatever their namespace prefix, typed ones such as dt:dt="ui2"
 * included; whitespace-only text between them ignored; an argument's
 * value is its text and CDATA (entities decoded), comments and processing
 * instructions skipped, trimmed of surrounding whitespace. An element
 * inside an argument, non-blank text between the arguments, a name given
 * twice, more than UPNP_ARGS_MAX arguments, a name longer than
 * UPNP_NAME_MAX or a value longer than UPNP_VALUE_MAX make the action
 * malformed (answered 402).
 */
#ifndef IWFD_SOAP_XML_H
#define IWFD_SOAP_XML_H

#include <stdbool.h>
#include <stddef.h>

#include "upnp_soap.h"

/* Open elements at most: Envelope/Body/action/argument is 4; SOAP
   headers nest a little more. Deeper is refused as a parse error. */
#define SOAP_XML_DEPTH_MAX	32
/* The action element's namespace URI is kept up to this length (service
   types are about 50 bytes); a longer one reads as none. */
#define SOAP_XML_NS_MAX		128

/* What the transport needs of the action element beyond its arguments. */
struct soap_xml_elem {
	/* Its local name (after the first ':'), in the caller's buffer:
	   not NUL-terminated, may be longer than UPNP_NAME_MAX. */
	const char	*local;
	size_t		 local_len;
	/* Its namespace URI, entities decoded; "" when there is none, it is
	   undeclared or longer than SOAP_XML_NS_MAX. */
	char		 ns[SOAP_XML_NS_MAX + 1];
};

/*
 * Read the SOAP request body buf (len bytes, at most UPNP_MAX_CONTENT; a
 * UTF-8 byte order mark first is skipped). True when it is well-formed
 * and has Envelope/Body/<action>: then act->name is filled from the
 * action's local name when it was empty, act->args/nargs/malformed under
 * the rules above, and *elem (if not NULL) describes the action
 * element. False when it is not well-formed or has no action: act is as
 * on entry (no arguments).
 */
bool		 soap_xml_read(const char *buf, size_t len,
		    struct upnp_action *act, struct soap_xml_elem *elem);

#endif
