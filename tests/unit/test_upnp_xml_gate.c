/*
 * test_upnp_xml_gate.c - libixml reads only our own XML (iwf/upnp_xml_gate.h,
 * issue 8, spec/iwf.md X-05): the three kinds of parse, what reaches
 * libixml for each, and the arguments handed to pupnp's action callback.
 *
 * libixml's parser is passed in through a recorder, so each test sees
 * exactly which bytes libixml was given; the daemon passes the real one
 * (src/ixml_gate.c).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <upnp/ixml.h>

#include "soap_xml.h"
#include "upnp.h"
#include "test_file.h"
#include "upnp_xml_gate.h"

#define ENV_HEAD \
	"<?xml version=\"1.0\"?>\r\n<s:Envelope " \
	"xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" " \
	"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">" \
	"<s:Body>"
#define ENV_TAIL	"</s:Body></s:Envelope>\r\n"
#define WANIP1		"urn:schemas-upnp-org:service:WANIPConnection:1"

static const char add_body[] = ENV_HEAD
    "<u:AddPortMapping xmlns:u=\"" WANIP1 "\">"
    "<NewRemoteHost></NewRemoteHost>"
    "<NewExternalPort>4242</NewExternalPort>"
    "<NewProtocol>TCP</NewProtocol>"
    "<NewInternalPort>4242</NewInternalPort>"
    "<NewInternalClient>192.0.2.10</NewInternalClient>"
    "<NewEnabled>1</NewEnabled>"
    "<NewPortMappingDescription>a &amp; b &lt;c&gt;</NewPortMappingDescription>"
    "<NewLeaseDuration>0</NewLeaseDuration>"
    "</u:AddPortMapping>" ENV_TAIL;

/* What libixml was given. */
static struct {
	unsigned int	 calls;
	const char	*last;		/* the pointer */
	char		 copy[8192];	/* the bytes */
} rec;

static int
rec_parse(const char *buf, IXML_Document **doc)
{
	rec.calls++;
	rec.last = buf;
	snprintf(rec.copy, sizeof(rec.copy), "%s", buf);
	return ixmlParseBufferEx(buf, doc);
}

static int
setup(void **state)
{
	struct upnp_action a;

	(void)state;
	memset(&rec, 0, sizeof(rec));
	/* nothing left over from an earlier test on this thread */
	(void)upnp_xml_gate_take(&a);
	return 0;
}

static IXML_Node *
action_node(IXML_Document *doc)
{
	IXML_Node *n = ixmlNode_getFirstChild(&doc->n);

	assert_non_null(n);
	assert_string_equal(ixmlNode_getLocalName(n), "Envelope");
	n = ixmlNode_getFirstChild(n);
	assert_non_null(n);
	assert_string_equal(ixmlNode_getLocalName(n), "Body");
	n = ixmlNode_getFirstChild(n);
	assert_non_null(n);
	return n;
}

/* Kind 3 refused: libixml never called, no document, nothing to take. */
static void
assert_refused(const char *body)
{
	struct upnp_xml_gate_stats before, after;
	IXML_Document *doc = (IXML_Document *)&rec;	/* must become NULL */
	struct upnp_action a;

	upnp_xml_gate_stats(&before);
	rec.calls = 0;
	assert_int_not_equal(upnp_xml_gate_parse(body, &doc, rec_parse),
	    IXML_SUCCESS);
	assert_null(doc);
	assert_int_equal(rec.calls, 0);
	assert_false(upnp_xml_gate_take(&a));
	upnp_xml_gate_stats(&after);
	assert_int_equal(after.refused, before.refused + 1);
}

/* Kind 1: our own XML goes to libixml as it is, while trusted only. */
static void
test_trusted(void **state)
{
	static const char desc[] = "<?xml version=\"1.0\"?><root "
	    "xmlns=\"urn:schemas-upnp-org:device-1-0\"><specVersion><major>1"
	    "</major></specVersion></root>";
	IXML_Document *doc = NULL;

	(void)state;
	upnp_xml_gate_trust(true);
	upnp_xml_gate_trust(true);	/* nests */
	assert_int_equal(upnp_xml_gate_parse(desc, &doc, rec_parse),
	    IXML_SUCCESS);
	assert_ptr_equal(rec.last, desc);
	ixmlDocument_free(doc);
	upnp_xml_gate_trust(false);
	assert_int_equal(upnp_xml_gate_parse(desc, &doc, rec_parse),
	    IXML_SUCCESS);
	assert_ptr_equal(rec.last, desc);
	ixmlDocument_free(doc);
	upnp_xml_gate_trust(false);
	/* untrusted now: a description is no SOAP request */
	assert_refused(desc);
}

/* Kind 3: libixml gets the canonical envelope, the callback the
   arguments exactly as our reader read them. */
static void
test_body(void **state)
{
	struct upnp_action want, got;
	struct soap_xml_elem elem;
	IXML_Document *doc = NULL;
	IXML_Node *act;
	size_t i;

	(void)state;
	assert_int_equal(upnp_xml_gate_parse(add_body, &doc, rec_parse),
	    IXML_SUCCESS);
	assert_int_equal(rec.calls, 1);
	assert_ptr_not_equal(rec.last, add_body);
	assert_string_equal(rec.copy,
	    "<s:Envelope xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\">"
	    "<s:Body><u:AddPortMapping xmlns:u=\"" WANIP1 "\"/></s:Body>"
	    "</s:Envelope>");
	act = action_node(doc);
	assert_string_equal(ixmlNode_getLocalName(act), "AddPortMapping");
	assert_string_equal(ixmlNode_getNamespaceURI(act), WANIP1);
	assert_null(ixmlNode_getFirstChild(act));	/* no arguments */
	ixmlDocument_free(doc);

	memset(&want, 0, sizeof(want));
	assert_true(soap_xml_read(add_body, strlen(add_body), &want, &elem));
	memset(&got, 0, sizeof(got));
	strcpy(got.name, "AddPortMapping");
	assert_true(upnp_xml_gate_take(&got));
	assert_string_equal(got.name, "AddPortMapping");	/* untouched */
	assert_false(got.malformed);
	assert_int_equal(got.nargs, 8);
	assert_int_equal(got.nargs, want.nargs);
	for (i = 0; i < got.nargs; i++) {
		assert_string_equal(got.args[i].name, want.args[i].name);
		assert_string_equal(got.args[i].value, want.args[i].value);
	}
	assert_string_equal(got.args[6].value, "a & b <c>");
	/* once per body */
	assert_false(upnp_xml_gate_take(&got));
}

/* Kind 2: pupnp prints the action element of the canonical document and
   parses that again (soap_device.c handle_invoke_action). Those exact
   bytes pass once; the same bytes again are a body, and refused. */
static void
test_reparse(void **state)
{
	IXML_Document *doc = NULL, *again = NULL;
	struct upnp_action a;
	DOMString printed;
	char *copy;

	(void)state;
	assert_int_equal(upnp_xml_gate_parse(add_body, &doc, rec_parse),
	    IXML_SUCCESS);
	printed = ixmlPrintNode(action_node(doc));
	assert_non_null(printed);
	copy = strdup(printed);		/* another buffer, the same bytes */
	assert_non_null(copy);
	rec.calls = 0;
	assert_int_equal(upnp_xml_gate_parse(copy, &again, rec_parse),
	    IXML_SUCCESS);
	assert_int_equal(rec.calls, 1);
	assert_ptr_equal(rec.last, copy);
	ixmlDocument_free(again);
	again = NULL;
	/* the arguments are still there for the callback */
	memset(&a, 0, sizeof(a));
	assert_true(upnp_xml_gate_take(&a));
	assert_int_equal(a.nargs, 8);
	/* a second time: no longer expected */
	assert_refused(copy);
	free(copy);
	ixmlFreeDOMString(printed);
	ixmlDocument_free(doc);

	/* other bytes where the re-parse is expected: a body like any */
	assert_int_equal(upnp_xml_gate_parse(add_body, &doc, rec_parse),
	    IXML_SUCCESS);
	ixmlDocument_free(doc);
	assert_refused("<u:AddPortMapping xmlns:u=\"" WANIP1 "\">"
	    "<NewProtocol>TCP</NewProtocol></u:AddPortMapping>");
}

/* A request refused before its arguments were taken leaves nothing for
   the next one on the thread (upnp.c calls forget after each action). */
static void
test_forget(void **state)
{
	IXML_Document *doc = NULL;
	struct upnp_action a;
	DOMString printed;

	(void)state;
	assert_int_equal(upnp_xml_gate_parse(add_body, &doc, rec_parse),
	    IXML_SUCCESS);
	printed = ixmlPrintNode(action_node(doc));
	assert_non_null(printed);
	upnp_xml_gate_forget();
	assert_false(upnp_xml_gate_take(&a));
	assert_refused(printed);	/* no re-parse is expected any more */
	ixmlFreeDOMString(printed);
	ixmlDocument_free(doc);
}

/* What our reader refuses, or names outside the alphabet, never reach
   libixml: pupnp answers 400. */
static void
test_refused(void **state)
{
	char big[UPNP_MAX_CONTENT + 64];
	size_t n;

	(void)state;
	assert_refused("");
	assert_refused("not xml at all");
	assert_refused(ENV_HEAD "<u:GetExternalIPAddress xmlns:u=\"" WANIP1
	    "\"/>" ENV_TAIL "trailing garbage");
	assert_refused("<!DOCTYPE x [<!ENTITY a \"b\">]>" ENV_HEAD
	    "<u:GetExternalIPAddress xmlns:u=\"" WANIP1 "\"/>" ENV_TAIL);
	assert_refused(ENV_HEAD "<u:GetExternalIPAddress xmlns:u=\"" WANIP1
	    "\">" ENV_TAIL);			/* unclosed */
	assert_refused(ENV_HEAD ENV_TAIL);	/* no action */
	/* a namespace that would need escaping in the canonical form */
	assert_refused(ENV_HEAD "<u:GetExternalIPAddress xmlns:u=\"urn:a&quot;"
	    "b\"/>" ENV_TAIL);
	assert_refused(ENV_HEAD "<u:GetExternalIPAddress xmlns:u=\"urn:a&lt;"
	    "b\"/>" ENV_TAIL);
	assert_refused(ENV_HEAD "<u:GetExternalIPAddress xmlns:u=\"urn:a b\"/>"
	    ENV_TAIL);
	/* a name outside the alphabet (UTF-8 letters are XML names) */
	assert_refused(ENV_HEAD "<u:Get\xc3\xa9xternal xmlns:u=\"" WANIP1
	    "\"/>" ENV_TAIL);
	/* longer than any action name */
	assert_refused(ENV_HEAD "<u:AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA"
	    "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA xmlns:u=\"" WANIP1 "\"/>"
	    ENV_TAIL);
	/* beyond pupnp's content limit (UpnpSetMaxContentLength): a body
	   well-formed but for its length (whitespace may follow the root) */
	n = (size_t)snprintf(big, sizeof(big), "%s<u:GetExternalIPAddress "
	    "xmlns:u=\"" WANIP1 "\"/>" ENV_TAIL, ENV_HEAD);
	memset(big + n, ' ', sizeof(big) - n - 1);
	big[sizeof(big) - 1] = '\0';
	big[UPNP_MAX_CONTENT] = '\0';		/* at the limit: read */
	memset(&rec, 0, sizeof(rec));
	{
		IXML_Document *doc = NULL;
		struct upnp_action a;

		assert_int_equal(upnp_xml_gate_parse(big, &doc, rec_parse),
		    IXML_SUCCESS);
		ixmlDocument_free(doc);
		assert_true(upnp_xml_gate_take(&a));
	}
	big[UPNP_MAX_CONTENT] = ' ';		/* one byte more: refused */
	assert_refused(big);
}

/* An action without a namespace: canonical without one (pupnp then
   answers 400, as it did); markup inside a value: malformed (402). */
static void
test_shapes(void **state)
{
	IXML_Document *doc = NULL;
	struct upnp_action a;

	(void)state;
	assert_int_equal(upnp_xml_gate_parse(ENV_HEAD
	    "<GetExternalIPAddress/>" ENV_TAIL, &doc, rec_parse),
	    IXML_SUCCESS);
	assert_null(ixmlNode_getNamespaceURI(action_node(doc)));
	ixmlDocument_free(doc);
	memset(&a, 0, sizeof(a));
	assert_true(upnp_xml_gate_take(&a));
	assert_int_equal(a.nargs, 0);

	assert_int_equal(upnp_xml_gate_parse(ENV_HEAD
	    "<u:DeletePortMapping xmlns:u=\"" WANIP1 "\"><NewProtocol><b>TCP"
	    "</b></NewProtocol></u:DeletePortMapping>" ENV_TAIL, &doc,
	    rec_parse), IXML_SUCCESS);
	ixmlDocument_free(doc);
	memset(&a, 0, sizeof(a));
	assert_true(upnp_xml_gate_take(&a));
	assert_true(a.malformed);

	/* a default namespace is the action's namespace */
	assert_int_equal(upnp_xml_gate_parse("<Envelope xmlns=\"http://schemas"
	    ".xmlsoap.org/soap/envelope/\"><Body><GetExternalIPAddress xmlns=\""
	    WANIP1 "\"/></Body></Envelope>", &doc, rec_parse), IXML_SUCCESS);
	assert_string_equal(ixmlNode_getNamespaceURI(action_node(doc)),
	    WANIP1);
	ixmlDocument_free(doc);
	assert_true(upnp_xml_gate_take(&a));
}

static void *
other_thread(void *arg)
{
	struct upnp_action a;

	*(bool *)arg = upnp_xml_gate_take(&a);
	return NULL;
}

/* One worker's body is not another's. */
static void
test_threads(void **state)
{
	IXML_Document *doc = NULL;
	struct upnp_action a;
	pthread_t t;
	bool took = true;

	(void)state;
	assert_int_equal(upnp_xml_gate_parse(add_body, &doc, rec_parse),
	    IXML_SUCCESS);
	ixmlDocument_free(doc);
	assert_int_equal(pthread_create(&t, NULL, other_thread, &took), 0);
	assert_int_equal(pthread_join(t, NULL), 0);
	assert_false(took);
	assert_true(upnp_xml_gate_take(&a));
}

/* Every body of the upnp_soap corpus, and the inputs that showed libixml's
   faults: libixml never gets the input itself; what passes is taken as
   our reader reads it. */
static void
check_file(const char *path)
{
	struct upnp_action want, got;
	struct soap_xml_elem elem;
	IXML_Document *doc = NULL;
	size_t len = 0, i;
	char *buf;
	bool ok;
	int rc;

	if ((buf = test_slurp(path, &len)) == NULL)
		fail_msg("cannot read %s", path);
	/* pupnp hands the body over as a C string: a NUL ends it */
	len = strlen(buf);
	memset(&want, 0, sizeof(want));
	ok = len <= UPNP_MAX_CONTENT && soap_xml_read(buf, len, &want, &elem);
	rec.calls = 0;
	rec.last = NULL;
	rc = upnp_xml_gate_parse(buf, &doc, rec_parse);
	assert_ptr_not_equal(rec.last, buf);
	if (rc == IXML_SUCCESS) {
		assert_true(ok);
		assert_int_equal(rec.calls, 1);
		ixmlDocument_free(doc);
		memset(&got, 0, sizeof(got));
		assert_true(upnp_xml_gate_take(&got));
		assert_int_equal(got.nargs, want.nargs);
		assert_int_equal(got.malformed, want.malformed);
		for (i = 0; i < got.nargs; i++) {
			assert_string_equal(got.args[i].name,
			    want.args[i].name);
			assert_string_equal(got.args[i].value,
			    want.args[i].value);
		}
	} else {
		assert_null(doc);
		assert_int_equal(rec.calls, 0);
	}
	free(buf);
}

static void
test_corpus(void **state)
{
	static const char *const known[] = {
		"ixml-overread-stateful.xml", "ixml-trailing-garbage.xml",
	};
	char path[1024];
	struct dirent *de;
	DIR *d;
	size_t i, n = 0;

	(void)state;
	d = opendir(IWFD_TEST_DATA_DIR "/fuzz/corpus/upnp_soap");
	assert_non_null(d);
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s",
		    IWFD_TEST_DATA_DIR "/fuzz/corpus/upnp_soap", de->d_name);
		check_file(path);
		n++;
	}
	closedir(d);
	assert_true(n >= 10);
	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
		snprintf(path, sizeof(path), "%s/%s",
		    IWFD_TEST_DATA_DIR "/fuzz/known", known[i]);
		check_file(path);
	}
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test_setup(test_trusted, setup),
		cmocka_unit_test_setup(test_body, setup),
		cmocka_unit_test_setup(test_reparse, setup),
		cmocka_unit_test_setup(test_forget, setup),
		cmocka_unit_test_setup(test_refused, setup),
		cmocka_unit_test_setup(test_shapes, setup),
		cmocka_unit_test_setup(test_threads, setup),
		cmocka_unit_test_setup(test_corpus, setup),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
