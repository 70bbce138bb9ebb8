/*
 * fuzz_soap_xml.c - libFuzzer target for the SOAP reader of the control
 * server (soap_xml_read, iwf/soap_xml.c; spec/iwf.md X-05), which reads
 * every request body from the LAN in place of libixml.
 *
 * The input is a request body. Invariants: an error leaves no arguments,
 * no name and no malformed flag; on success the action's local name lies
 * inside the input, the namespace, the action name and every argument
 * name and value are NUL-terminated within their bounds, argument names
 * are non-empty and unique and values trimmed (unless malformed), and at
 * most UPNP_ARGS_MAX arguments are read. A second read of the same bytes
 * gives the same struct (no hidden state).
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "soap_xml.h"
#include "upnp.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int
fuzz_blank(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static void
fuzz_check_str(const char *s, size_t max)
{
	size_t len = strnlen(s, max + 1);

	if (len > max)
		abort();
}

static void
fuzz_check(const uint8_t *data, size_t size, const struct upnp_action *act,
    const struct soap_xml_elem *elem)
{
	size_t i, j, len;

	if (act->nargs > UPNP_ARGS_MAX)
		abort();
	fuzz_check_str(act->name, UPNP_NAME_MAX);
	fuzz_check_str(elem->ns, SOAP_XML_NS_MAX);
	if (elem->local == NULL ||
	    elem->local < (const char *)data ||
	    elem->local + elem->local_len > (const char *)data + size)
		abort();
	/* the name is the element's unless too long (then malformed) */
	if (!act->malformed && (strlen(act->name) != elem->local_len ||
	    memcmp(act->name, elem->local, elem->local_len) != 0))
		abort();
	for (i = 0; i < act->nargs; i++) {
		fuzz_check_str(act->args[i].name, UPNP_NAME_MAX);
		fuzz_check_str(act->args[i].value, UPNP_VALUE_MAX);
		if (act->args[i].name[0] == '\0')
			abort();
		len = strlen(act->args[i].value);
		if (len > 0 && (fuzz_blank(act->args[i].value[0]) ||
		    fuzz_blank(act->args[i].value[len - 1])))
			abort();
		for (j = 0; j < i; j++)
			if (strcmp(act->args[i].name, act->args[j].name) == 0)
				abort();
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct upnp_action zero;
	struct upnp_action act, again;
	struct soap_xml_elem elem, elem2;
	char *buf;
	bool ok;

	if (size > UPNP_MAX_CONTENT)
		return 0;
	/* an exact-size copy: ASan sees any read past the body */
	if ((buf = malloc(size > 0 ? size : 1)) == NULL)
		return 0;
	memcpy(buf, data, size);
	memset(&act, 0, sizeof(act));
	memset(&elem, 0xa5, sizeof(elem));
	ok = soap_xml_read(buf, size, &act, &elem);
	if (!ok) {
		if (memcmp(&act, &zero, sizeof(act)) != 0)
			abort();
	} else
		fuzz_check((const uint8_t *)buf, size, &act, &elem);
	memset(&again, 0, sizeof(again));
	if (soap_xml_read(buf, size, &again, &elem2) != ok ||
	    memcmp(&act, &again, sizeof(act)) != 0)
		abort();
	free(buf);
	return 0;
}
