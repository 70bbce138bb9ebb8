/*
 * ixml_gate.c - pupnp's calls of libixml's parser go through the gate
 * (iwf/upnp_xml_gate.h; docs/security.md "libixml reads only our own XML").
 *
 * This file defines ixmlParseBufferEx() for the daemon's executable only
 * (a source of pcp-iwfd, not of iwfcore: the tests and pcp-iwfctl keep
 * libixml's own). libupnp.so imports it from libixml.so, and an
 * executable's definition wins over a shared library's for every lookup
 * (ELF symbol interposition, as src/nodns.c does for getaddrinfo); the
 * linker exports it in .dynsym because libupnp.so references it. It is
 * the only libixml parser libupnp 1.8.4 calls (nm -D: no ixmlParseBuffer,
 * no ixmlLoadDocument). upnp.c checks at start that the gate saw the
 * description pupnp parsed, and says so in the log when it did not.
 */
#include <dlfcn.h>
#include <stdatomic.h>
#include <stddef.h>

#include <upnp/ixml.h>

#include "upnp_xml_gate.h"

/* libixml's parser: the next definition after ours, found once. */
static _Atomic(upnp_xml_parse_fn) ixml_gate_next;

static upnp_xml_parse_fn
ixml_gate_real(void)
{
	union {
		void			*sym;
		upnp_xml_parse_fn	 fn;
	} u;
	upnp_xml_parse_fn fn;

	if ((fn = atomic_load(&ixml_gate_next)) != NULL)
		return fn;
	/* threads racing here all find the same symbol (see nodns.c for
	   the union) */
	if ((u.sym = dlsym(RTLD_NEXT, "ixmlParseBufferEx")) == NULL)
		return NULL;
	atomic_store(&ixml_gate_next, u.fn);
	return u.fn;
}

int
ixmlParseBufferEx(const char *buffer, IXML_Document **doc)
{
	upnp_xml_parse_fn real;

	if ((real = ixml_gate_real()) == NULL) {
		if (doc != NULL)
			*doc = NULL;
		return IXML_FAILED;
	}
	return upnp_xml_gate_parse(buffer, doc, real);
}
