/*
 * upnp_xml_gate.h - what libixml may parse in the daemon (issue 8; spec/iwf.md
 * X-05; docs/security.md "libixml reads only our own XML").
 *
 * pupnp 1.8.4 parses every SOAP request sent to its own HTTP port with
 * libixml (soap_device.c: ixmlParseBufferEx on the body, then again on
 * the action element it printed from that DOM). Fuzzing found libixml
 * reading past a heap block of its own and leaking on trailing garbage
 * (tests/fuzz/known/README), and pupnp's port must keep answering SOAP:
 * a client that builds the control URL from URLBase itself (UDA: the
 * controlURL is relative) sends its actions there.
 *
 * So libixml never sees a byte from the network. The daemon's executable
 * defines ixmlParseBufferEx (src/ixml_gate.c, ELF interposition as
 * src/nodns.c does for getaddrinfo), and every call of it by pupnp comes
 * here. A parse is one of three kinds:
 *   1. our own XML: the thread said so with upnp_xml_gate_trust() (the
 *      description at registration, pupnp's building of our responses);
 *      handed to libixml as it is;
 *   2. pupnp's re-parse of the action element it printed from a document
 *      the gate made (3.): the same bytes the gate printed from it, kept
 *      per thread and compared whole; handed to libixml;
 *   3. anything else is a request body from the network. Our own bounded
 *      reader (soap_xml_read, fuzz_soap_xml) reads it; what libixml gets
 *      is a canonical envelope the gate writes itself: Envelope, Body and
 *      the empty action element with its namespace, names and namespace
 *      from a small safe alphabet. The arguments stay with the thread
 *      (upnp_xml_gate_take) for pupnp's action callback, which runs next
 *      on the same worker thread. A body our reader refuses, or whose
 *      names fall outside the alphabet, is never given to libixml: the
 *      parse fails and pupnp answers 400 Bad Request, as it did for a
 *      body libixml refused.
 * State is per thread (pupnp hands one request to one worker from the
 * parse to the answer); the counters are process-wide atomics.
 */
#ifndef IWFD_UPNP_XML_GATE_H
#define IWFD_UPNP_XML_GATE_H

#include <stdbool.h>
#include <stdint.h>

#include <upnp/ixml.h>

#include "upnp_soap.h"

/* libixml's ixmlParseBufferEx (the one the gate hands documents to). */
typedef int	(*upnp_xml_parse_fn)(const char *, IXML_Document **);

/* What ixmlParseBufferEx does in the daemon (see the kinds above). */
int		 upnp_xml_gate_parse(const char *buf, IXML_Document **doc,
		    upnp_xml_parse_fn real);

/* This thread's next parses are of our own XML (kind 1) until
   upnp_xml_gate_trust(false). Nests. */
void		 upnp_xml_gate_trust(bool on);

/*
 * The arguments (args, nargs, malformed) of the request body this thread's
 * last kind-3 parse read, into act; name, service and requester are left
 * alone. True once per body: false when there is none (the gate is not
 * in this executable, or it was taken already).
 */
bool		 upnp_xml_gate_take(struct upnp_action *act);
/* Drop this thread's body and expected re-parse, if any (the request is
   over; the next body's parse would drop them too). */
void		 upnp_xml_gate_forget(void);

struct upnp_xml_gate_stats {
	uint64_t	 parses;	/* every call, all kinds */
	uint64_t	 bodies;	/* kind 3 given to libixml as canonical */
	uint64_t	 refused;	/* kind 3 refused unread by libixml */
};

void		 upnp_xml_gate_stats(struct upnp_xml_gate_stats *);

#endif
