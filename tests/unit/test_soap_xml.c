/*
 * test_soap_xml.c - the SOAP reader of the control server (iwf/soap_xml.c)
 * against the path it replaced: libixml's DOM walked as upnp_http did
 * (Envelope/Body/first element, local names) and upnp_action_from_xml.
 * ixml is the oracle on every body of the upnp_soap fuzz corpus and on the
 * edge cases; where the two differ on purpose (DOCTYPE, nesting depth) the
 * test says what the reader does and why.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <ixml.h>

#include "ixml_action.h"
#include "soap_xml.h"
#include "upnp.h"

/*
 * The oracle leaks on a body with bytes after the root (libixml's own
 * leak, tests/fuzz/known/ixml-trailing-garbage.xml): suppressed by this
 * narrow name under -DIWFD_SANITIZE=ON. The reader allocates nothing.
 */
const char	*__lsan_default_suppressions(void);

const char *
__lsan_default_suppressions(void)
{
	return "leak:ixmlDocument_createTextNodeEx\n";
}

struct sx_result {
	bool			 ok;
	struct upnp_action	 act;
	char			 local[UPNP_MAX_CONTENT + 1];
	char			 ns[UPNP_MAX_CONTENT + 1];
};

static const char *
sx_local(IXML_Node *n)
{
	const char *name = ixmlNode_getLocalName(n), *colon;

	if (name != NULL)
		return name;
	if ((name = ixmlNode_getNodeName(n)) != NULL &&
	    (colon = strchr(name, ':')) != NULL)
		return colon + 1;
	return name;
}

static IXML_Node *
sx_child(IXML_Node *n, const char *local)
{
	const char *name;
	IXML_Node *c;

	for (c = ixmlNode_getFirstChild(n); c != NULL;
	    c = ixmlNode_getNextSibling(c)) {
		if (ixmlNode_getNodeType(c) != eELEMENT_NODE)
			continue;
		if (local == NULL)
			return c;
		if ((name = sx_local(c)) != NULL && strcmp(name, local) == 0)
			return c;
	}
	return NULL;
}

/* What upnp_http did before: BOM skipped, ixmlParseBufferEx, the walk. */
static void
sx_oracle(const char *body, size_t len, struct sx_result *r)
{
	IXML_Document *doc = NULL;
	IXML_Node *env, *bodyn, *elem = NULL;
	const char *name, *ns;
	char *buf;
	size_t start = 0;

	memset(r, 0, sizeof(*r));
	if (len == 0 || memchr(body, '\0', len) != NULL)
		return;
	assert_non_null(buf = malloc(len + 1));
	memcpy(buf, body, len);
	buf[len] = '\0';
	if (len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0)
		start = 3;
	if (ixmlParseBufferEx(buf + start, &doc) != IXML_SUCCESS)
		doc = NULL;
	free(buf);
	if (doc != NULL && (env = sx_child(&doc->n, NULL)) != NULL &&
	    (name = sx_local(env)) != NULL && strcmp(name, "Envelope") == 0 &&
	    (bodyn = sx_child(env, "Body")) != NULL)
		elem = sx_child(bodyn, NULL);
	if (elem != NULL) {
		r->ok = true;
		upnp_action_from_xml(elem, &r->act);
		name = sx_local(elem);
		snprintf(r->local, sizeof(r->local), "%s", name ? name : "");
		ns = ixmlNode_getNamespaceURI(elem);
		snprintf(r->ns, sizeof(r->ns), "%s", ns ? ns : "");
	}
	if (doc != NULL)
		ixmlDocument_free(doc);
}

static void
sx_ours(const char *body, size_t len, struct sx_result *r)
{
	struct soap_xml_elem elem;

	memset(r, 0, sizeof(*r));
	r->ok = soap_xml_read(body, len, &r->act, &elem);
	if (r->ok) {
		memcpy(r->local, elem.local, elem.local_len);
		r->local[elem.local_len] = '\0';
		snprintf(r->ns, sizeof(r->ns), "%s", elem.ns);
	} else {
		assert_int_equal(r->act.nargs, 0);
		assert_false(r->act.malformed);
		assert_string_equal(r->act.name, "");
	}
}

/* The observable action: name, malformed, the arguments read. */
static void
sx_equal(const struct sx_result *a, const struct sx_result *b,
    const char *what, bool ns)
{
	size_t i;

	if (a->ok != b->ok)
		fail_msg("%s: ok %d vs %d", what, a->ok, b->ok);
	if (!a->ok)
		return;
	assert_string_equal(a->local, b->local);
	/* a namespace longer than SOAP_XML_NS_MAX reads as none */
	if (ns && strlen(b->ns) <= SOAP_XML_NS_MAX)
		assert_string_equal(a->ns, b->ns);
	assert_string_equal(a->act.name, b->act.name);
	if (a->act.malformed != b->act.malformed ||
	    a->act.nargs != b->act.nargs)
		fail_msg("%s: malformed %d/%d nargs %zu/%zu", what,
		    a->act.malformed, b->act.malformed, a->act.nargs,
		    b->act.nargs);
	for (i = 0; i < a->act.nargs; i++) {
		assert_string_equal(a->act.args[i].name, b->act.args[i].name);
		assert_string_equal(a->act.args[i].value,
		    b->act.args[i].value);
	}
}

static void
sx_same_ns(const char *body, size_t len, const char *what, bool ns)
{
	struct sx_result *o, *u;

	assert_non_null(o = malloc(sizeof(*o)));
	assert_non_null(u = malloc(sizeof(*u)));
	sx_oracle(body, len, o);
	sx_ours(body, len, u);
	sx_equal(u, o, what, ns);
	free(o);
	free(u);
}

static void
sx_same(const char *body, size_t len, const char *what)
{
	sx_same_ns(body, len, what, true);
}

static size_t
sx_load(const char *path, char *buf, size_t size)
{
	FILE *f;
	size_t n;

	assert_non_null(f = fopen(path, "rb"));
	n = fread(buf, 1, size, f);
	fclose(f);
	return n;
}

#define SX_CORPUS	IWFD_TEST_DATA_DIR "/fuzz/corpus/upnp_soap"

static void
test_corpus_matches_ixml(void **state)
{
	static char buf[UPNP_MAX_CONTENT + 1];
	char path[512];
	struct dirent *de;
	struct sx_result *r;
	DIR *d;
	size_t n, files = 0, ok = 0;

	(void)state;
	assert_non_null(r = malloc(sizeof(*r)));
	assert_non_null(d = opendir(SX_CORPUS));
	while ((de = readdir(d)) != NULL) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", SX_CORPUS, de->d_name);
		n = sx_load(path, buf, sizeof(buf) - 1);
		sx_same(buf, n, de->d_name);
		sx_ours(buf, n, r);
		ok += r->ok && !r->act.malformed;
		files++;
	}
	closedir(d);
	free(r);
	assert_true(files >= 23);
	/* real clients' bodies: read, not refused */
	assert_true(ok >= files - 2);
}

#define SX_ENV_OPEN	"<?xml version=\"1.0\"?>\r\n<s:Envelope " \
	"xmlns:s=\"http://schemas.xmlsoap.org/soap/envelope/\" " \
	"s:encodingStyle=\"http://schemas.xmlsoap.org/soap/encoding/\">" \
	"<s:Body>"
#define SX_ENV_CLOSE	"</s:Body></s:Envelope>"
#define SX_U		"xmlns:u=\"urn:schemas-upnp-org:service:" \
	"WANIPConnection:1\""

/* Envelope shapes and edge cases; ixml decides. */
static const char *const sx_cases[] = {
	SX_ENV_OPEN "<u:GetStatusInfo " SX_U "></u:GetStatusInfo>"
	    SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:GetStatusInfo " SX_U "/>" SX_ENV_CLOSE,
	/* default namespaces, no prefixes (the action's own: see below) */
	"<Envelope xmlns=\"http://schemas.xmlsoap.org/soap/envelope/\">"
	    "<Body><GetExternalIPAddress/></Body></Envelope>",
	/* a Header first, pretty-printed, odd prefixes */
	"<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"http://schemas.xmlsoap.org/"
	    "soap/envelope/\">\n  <SOAP-ENV:Header><x:a xmlns:x=\"q\">1</x:a>"
	    "</SOAP-ENV:Header>\n  <SOAP-ENV:Body>\n    <m:DeletePortMapping"
	    " xmlns:m=\"urn:schemas-upnp-org:service:WANIPConnection:1\">\n"
	    "      <NewRemoteHost></NewRemoteHost>\n      <NewExternalPort>"
	    " 8080 </NewExternalPort>\n      <NewProtocol>TCP</NewProtocol>"
	    "\n    </m:DeletePortMapping>\n  </SOAP-ENV:Body>\n"
	    "</SOAP-ENV:Envelope>\n",
	/* entities, numeric references, CDATA, comments, PIs in a value */
	SX_ENV_OPEN "<u:AddPortMapping " SX_U "><NewPortMappingDescription>"
	    "a&lt;b&gt;&amp;&quot;&apos;&#65;&#x42;&#xe9;&#x1F600;"
	    "<![CDATA[ <raw>&amp; ]]><!-- c --><?pi x?>z </NewPortMapping"
	    "Description><NewEnabled>1</NewEnabled></u:AddPortMapping>"
	    SX_ENV_CLOSE,
	/* typed arguments (Windows) */
	SX_ENV_OPEN "<u:GetSpecificPortMappingEntry " SX_U
	    " xmlns:dt=\"urn:schemas-microsoft-com:datatypes\">"
	    "<NewExternalPort dt:dt=\"ui2\">80</NewExternalPort>"
	    "<NewProtocol dt:dt='string'>TCP</NewProtocol>"
	    "</u:GetSpecificPortMappingEntry>" SX_ENV_CLOSE,
	/* malformed: markup in a value, text between, a name twice */
	SX_ENV_OPEN "<u:A " SX_U "><B>1<i/></B></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><B>1</B>junk<C>2</C></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><B>1</B><B>2</B></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><B>1</B><![CDATA[x]]></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><B>1</B>&#32;<![CDATA[ ]]></u:A>"
	    SX_ENV_CLOSE,
	/* too many arguments */
	SX_ENV_OPEN "<u:A " SX_U "><a/><b/><c/><d/><e/><f/><g/><h/><i/><j/>"
	    "<k/><l/><m/><n/><o/><p/><q/></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><a/><b/><c/><d/><e/><f/><g/><h/><i/><j/>"
	    "<k/><l/><m/><n/><o/><p/></u:A>" SX_ENV_CLOSE,
	/* names: too long (65), two colons, empty local */
	SX_ENV_OPEN "<u:A " SX_U "><x:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaa>1</x:aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa></u:A>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:Aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
	    "aaaaaaaaaa " SX_U "/>" SX_ENV_CLOSE,
	SX_ENV_OPEN "<u:A " SX_U "><a:b:c>1</a:b:c><x:>2</x:></u:A>"
	    SX_ENV_CLOSE,
	SX_ENV_OPEN "<u: " SX_U "/>" SX_ENV_CLOSE,
	/* namespace scoping: declared on the Envelope, redeclared */
	"<s:Envelope xmlns:s=\"e\" xmlns:u=\"urn:schemas-upnp-org:service:"
	    "WANIPConnection:1\"><s:Body><u:X/></s:Body></s:Envelope>",
	"<s:Envelope xmlns:s=\"e\" xmlns:u=\"one\"><s:Body xmlns:u=\"two\">"
	    "<u:X/></s:Body></s:Envelope>",
	"<s:Envelope xmlns:s=\"e\"><s:Body><u:X/></s:Body></s:Envelope>",
	"<Envelope xmlns=\"a\"><Body><X xmlns=\"\"/></Body></Envelope>",
	/* no Body, Body not the first child, not an Envelope, no action */
	"<s:Envelope xmlns:s=\"e\"><s:Header/></s:Envelope>",
	"<s:Envelope xmlns:s=\"e\"><s:Header/><s:Body><u:X/><u:Y/></s:Body>"
	    "<s:Body><u:Z/></s:Body></s:Envelope>",
	"<s:Body xmlns:s=\"e\"><u:X/></s:Body>",
	"<s:Envelope xmlns:s=\"e\"><s:Body>  </s:Body></s:Envelope>",
	/* a BOM, comments and PIs around the root */
	"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><!-- a -->"
	    "<?pi?><Envelope><Body><X/></Body></Envelope><!-- b -->\n",
	" <?xml version=\"1.0\"?><Envelope><Body><X/></Body></Envelope>",
	/* not well-formed */
	"<Envelope><Body><X></Y></Body></Envelope>",
	"<Envelope><Body><X/></Body></Envelope>trailing",
	"<Envelope><Body><X/></Body></Envelope><Envelope/>",
	"<Envelope><Body><X a=\"<\"/></Body></Envelope>",
	"<Envelope><Body><X a=\"1\" a=\"2\"/></Body></Envelope>",
	"<Envelope><Body><X a=1/></Body></Envelope>",
	"<Envelope><Body><X>&foo;</X></Body></Envelope>",
	"<Envelope><Body><X><A>&#0;</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>&#xD800;</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>&#x110000;</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>&#65</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>&amp</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>a]]>b</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>\x01</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>\xff</A></X></Body></Envelope>",
	"<Envelope><Body><X><A>\xc3\xa9\t</A></X></Body></Envelope>",
	"<Envelope><Body><X></Body></Envelope>",
	"<Envelope><Body><X/></Body>",
	"x<Envelope><Body><X/></Body></Envelope>",
	"<Envelope><Body><1X/></Body></Envelope>",
	"< Envelope><Body><X/></Body></Envelope>",
	"<Envelope><Body><X/ ></Body></Envelope>",
	"<Envelope ><Body\t><X\n/></Body ></Envelope\r\n>",
	"<Envelope><Body><X><!DOCTYPE y></X></Body></Envelope>",
};

static void
test_cases_match_ixml(void **state)
{
	char what[32];
	size_t i;

	(void)state;
	for (i = 0; i < sizeof(sx_cases) / sizeof(sx_cases[0]); i++) {
		snprintf(what, sizeof(what), "case %zu", i);
		sx_same(sx_cases[i], strlen(sx_cases[i]), what);
	}
}

static void
test_values_decoded(void **state)
{
	static const char body[] = SX_ENV_OPEN "<u:AddPortMapping " SX_U
	    "><NewPortMappingDescription> a&lt;&#x1F600;<![CDATA[&amp;]]>"
	    "&#233; </NewPortMappingDescription></u:AddPortMapping>"
	    SX_ENV_CLOSE;
	struct upnp_action act;
	struct soap_xml_elem elem;

	(void)state;
	memset(&act, 0, sizeof(act));
	assert_true(soap_xml_read(body, sizeof(body) - 1, &act, &elem));
	assert_false(act.malformed);
	assert_string_equal(act.name, "AddPortMapping");
	assert_string_equal(elem.ns,
	    "urn:schemas-upnp-org:service:WANIPConnection:1");
	assert_int_equal(act.nargs, 1);
	assert_string_equal(act.args[0].value,
	    "a<\xf0\x9f\x98\x80&amp;\xc3\xa9");
}

#define SX_ENV_NS	"http://schemas.xmlsoap.org/soap/envelope/"
#define SX_ENC_NS	"http://schemas.xmlsoap.org/soap/encoding/"
#define SX_NS1		"urn:schemas-upnp-org:service:WANIPConnection:1"
#define SX_HOST		"127.0.0.1"

/* test_upnp_http's AddPortMapping shapes of deployed clients (ut_add_shapes,
   its {E} 8080, {P} TCP, {I} 80). */
static const char *const sx_shapes[] = {
	/* miniupnpc, libtorrent: s:/u:, XML declaration */
	"<?xml version=\"1.0\"?>\r\n<s:Envelope xmlns:s=\"" SX_ENV_NS
	"\" s:encodingStyle=\"" SX_ENC_NS "\"><s:Body>"
	"<u:AddPortMapping xmlns:u=\"" SX_NS1 "\"><NewRemoteHost>"
	"</NewRemoteHost><NewExternalPort>8080</NewExternalPort><NewProtocol>"
	"TCP</NewProtocol><NewInternalPort>80</NewInternalPort>"
	"<NewInternalClient>" SX_HOST "</NewInternalClient><NewEnabled>1"
	"</NewEnabled><NewPortMappingDescription>a</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	"</s:Body></s:Envelope>\r\n",
	/* Windows / UPnP.NET style: SOAP-ENV:/m:, no XML declaration */
	"<SOAP-ENV:Envelope xmlns:SOAP-ENV=\"" SX_ENV_NS "\" "
	"SOAP-ENV:encodingStyle=\"" SX_ENC_NS "\"><SOAP-ENV:Body>"
	"<m:AddPortMapping xmlns:m=\"" SX_NS1 "\"><NewRemoteHost/>"
	"<NewExternalPort>8080</NewExternalPort><NewProtocol>TCP</NewProtocol>"
	"<NewInternalPort>80</NewInternalPort><NewInternalClient>" SX_HOST
	"</NewInternalClient><NewEnabled>1</NewEnabled>"
	"<NewPortMappingDescription>b</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></m:AddPortMapping>"
	"</SOAP-ENV:Body></SOAP-ENV:Envelope>",
	/* soap: prefix (Open.NAT, .NET) */
	"<?xml version=\"1.0\" encoding=\"utf-8\"?><soap:Envelope "
	"xmlns:soap=\"" SX_ENV_NS "\" soap:encodingStyle=\"" SX_ENC_NS "\">"
	"<soap:Body><u:AddPortMapping xmlns:u=\"" SX_NS1 "\"><NewRemoteHost>"
	"</NewRemoteHost><NewExternalPort>8080</NewExternalPort><NewProtocol>"
	"TCP</NewProtocol><NewInternalPort>80</NewInternalPort>"
	"<NewInternalClient>" SX_HOST "</NewInternalClient><NewEnabled>1"
	"</NewEnabled><NewPortMappingDescription>c</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	"</soap:Body></soap:Envelope>",
	/* the default namespace, no prefix anywhere */
	"<?xml version=\"1.0\"?><Envelope xmlns=\"" SX_ENV_NS "\" "
	"encodingStyle=\"" SX_ENC_NS "\"><Body><AddPortMapping xmlns=\""
	SX_NS1 "\"><NewRemoteHost></NewRemoteHost><NewExternalPort>8080"
	"</NewExternalPort><NewProtocol>TCP</NewProtocol><NewInternalPort>80"
	"</NewInternalPort><NewInternalClient>" SX_HOST "</NewInternalClient>"
	"<NewEnabled>1</NewEnabled><NewPortMappingDescription>d"
	"</NewPortMappingDescription><NewLeaseDuration>0</NewLeaseDuration>"
	"</AddPortMapping></Body></Envelope>",
	/* typed arguments (xmlns:dt, dt:dt), as Mono.Nat/Windows send */
	"<s:Envelope xmlns:s=\"" SX_ENV_NS "\" s:encodingStyle=\"" SX_ENC_NS
	"\" xmlns:dt=\"urn:schemas-microsoft-com:datatypes\"><s:Body>"
	"<u:AddPortMapping xmlns:u=\"" SX_NS1 "\"><NewRemoteHost dt:dt="
	"\"string\"></NewRemoteHost><NewExternalPort dt:dt=\"ui2\">8080"
	"</NewExternalPort><NewProtocol dt:dt=\"string\">TCP</NewProtocol>"
	"<NewInternalPort dt:dt=\"ui2\">80</NewInternalPort>"
	"<NewInternalClient dt:dt=\"string\">" SX_HOST "</NewInternalClient>"
	"<NewEnabled dt:dt=\"boolean\">1</NewEnabled>"
	"<NewPortMappingDescription dt:dt=\"string\">e"
	"</NewPortMappingDescription><NewLeaseDuration dt:dt=\"ui4\">0"
	"</NewLeaseDuration></u:AddPortMapping></s:Body></s:Envelope>",
	/* a UTF-8 byte order mark first (.NET's XmlWriter) */
	"\xef\xbb\xbf<?xml version=\"1.0\" encoding=\"utf-8\"?><s:Envelope "
	"xmlns:s=\"" SX_ENV_NS "\" s:encodingStyle=\"" SX_ENC_NS "\"><s:Body>"
	"<u:AddPortMapping xmlns:u=\"" SX_NS1 "\"><NewRemoteHost />"
	"<NewExternalPort>8080</NewExternalPort><NewProtocol>TCP</NewProtocol>"
	"<NewInternalPort>80</NewInternalPort><NewInternalClient>" SX_HOST
	"</NewInternalClient><NewEnabled>1</NewEnabled>"
	"<NewPortMappingDescription>g</NewPortMappingDescription>"
	"<NewLeaseDuration>0</NewLeaseDuration></u:AddPortMapping>"
	"</s:Body></s:Envelope>",
	/* pretty-printed, no XML declaration (python upnpclient, jUPnP) */
	"<s:Envelope\n    xmlns:s=\"" SX_ENV_NS "\"\n    s:encodingStyle=\""
	SX_ENC_NS "\">\n  <s:Body>\n    <u:AddPortMapping xmlns:u=\"" SX_NS1
	"\">\n      <NewRemoteHost></NewRemoteHost>\n      <NewExternalPort>"
	"8080</NewExternalPort>\n      <NewProtocol>TCP</NewProtocol>\n"
	"      <NewInternalPort>80</NewInternalPort>\n"
	"      <NewInternalClient>" SX_HOST "</NewInternalClient>\n"
	"      <NewEnabled>1</NewEnabled>\n"
	"      <NewPortMappingDescription>f</NewPortMappingDescription>\n"
	"      <NewLeaseDuration>0</NewLeaseDuration>\n"
	"    </u:AddPortMapping>\n  </s:Body>\n</s:Envelope>\n",
};

/* Each shape: ixml's struct, 8 arguments, and the action's namespace
   (the default-namespace shape: see test_default_ns). */
static void
test_client_shapes(void **state)
{
	struct sx_result *r;
	char what[32];
	size_t i;

	(void)state;
	assert_non_null(r = malloc(sizeof(*r)));
	for (i = 0; i < sizeof(sx_shapes) / sizeof(sx_shapes[0]); i++) {
		snprintf(what, sizeof(what), "shape %zu", i);
		sx_same_ns(sx_shapes[i], strlen(sx_shapes[i]), what, i != 3);
		sx_ours(sx_shapes[i], strlen(sx_shapes[i]), r);
		assert_true(r->ok);
		assert_false(r->act.malformed);
		assert_string_equal(r->act.name, "AddPortMapping");
		assert_int_equal(r->act.nargs, 8);
		assert_string_equal(r->act.args[1].value, "8080");
		assert_string_equal(r->ns, SX_NS1);
	}
	free(r);
}

/*
 * A deliberate difference: ixml gives an unprefixed element the default
 * namespace of its parent (a prefixed one its parent's binding of the
 * prefix) even when it declares its own (Namespaces in
 * XML §6.2 says its own), so without a SOAPACTION header upnp_http
 * answered such a client in our service type's version rather than its
 * own; the reader takes the element's own declaration.
 */
static void
test_default_ns(void **state)
{
	static const char body[] = "<Envelope xmlns=\"http://schemas.xmlsoap"
	    ".org/soap/envelope/\"><Body><GetExternalIPAddress xmlns=\"urn:"
	    "schemas-upnp-org:service:WANIPConnection:1\"/></Body></Envelope>";
	static const char redecl[] = "<s:Envelope xmlns:s=\"e\" xmlns:u="
	    "\"one\"><s:Body xmlns:u=\"two\"><u:X xmlns:u=\"th&amp;ree\"/>"
	    "</s:Body></s:Envelope>";
	struct upnp_action act;
	struct soap_xml_elem elem;

	(void)state;
	memset(&act, 0, sizeof(act));
	assert_true(soap_xml_read(body, sizeof(body) - 1, &act, &elem));
	assert_string_equal(act.name, "GetExternalIPAddress");
	assert_string_equal(elem.ns,
	    "urn:schemas-upnp-org:service:WANIPConnection:1");
	/* the same for a prefix redeclared on the action (ixml: "two") */
	memset(&act, 0, sizeof(act));
	assert_true(soap_xml_read(redecl, sizeof(redecl) - 1, &act, &elem));
	assert_string_equal(elem.ns, "th&ree");
}

/* Deliberate differences from ixml: no overlong UTF-8, no DOCTYPE (ixml
   takes both), and a bounded depth (ixml recurses without limit). */
static void
test_doctype_and_depth(void **state)
{
	static char buf[UPNP_MAX_CONTENT + 1];
	struct upnp_action act;
	size_t i, len;
	int depth;

	(void)state;
	/* an overlong UTF-8 form (RFC 3629 §3), which ixml takes */
	memset(&act, 0, sizeof(act));
	len = (size_t)snprintf(buf, sizeof(buf), "%s",
	    "<Envelope><Body><X><A>\xc0\xa9</A></X></Body></Envelope>");
	assert_false(soap_xml_read(buf, len, &act, NULL));
	len = (size_t)snprintf(buf, sizeof(buf), "%s",
	    "<!DOCTYPE Envelope [<!ENTITY e \"x\">]><Envelope><Body><X>"
	    "<A>&e;</A></X></Body></Envelope>");
	assert_false(soap_xml_read(buf, len, &act, NULL));
	len = (size_t)snprintf(buf, sizeof(buf), "%s",
	    "<!DOCTYPE Envelope><Envelope><Body><X/></Body></Envelope>");
	assert_false(soap_xml_read(buf, len, &act, NULL));
	for (depth = SOAP_XML_DEPTH_MAX; depth <= SOAP_XML_DEPTH_MAX + 1;
	    depth++) {
		len = (size_t)snprintf(buf, sizeof(buf), "%s",
		    "<Envelope><Body><X><A>");
		for (i = 4; i < (size_t)depth; i++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
			    "<d>");
		for (i = 4; i < (size_t)depth; i++)
			len += (size_t)snprintf(buf + len, sizeof(buf) - len,
			    "</d>");
		len += (size_t)snprintf(buf + len, sizeof(buf) - len, "%s",
		    "</A></X></Body></Envelope>");
		memset(&act, 0, sizeof(act));
		if (depth == SOAP_XML_DEPTH_MAX) {
			assert_true(soap_xml_read(buf, len, &act, NULL));
			/* an element inside an argument */
			assert_true(act.malformed);
		} else
			assert_false(soap_xml_read(buf, len, &act, NULL));
	}
}

/* UPNP_MAX_CONTENT bytes are read; one more is refused. */
static void
test_size_limit(void **state)
{
	static char buf[UPNP_MAX_CONTENT + 2];
	static const char head[] = "<Envelope><Body><X><A>1</A></X></Body>"
	    "</Envelope><!--", tail[] = "-->";
	struct upnp_action act;
	size_t len;

	(void)state;
	for (len = UPNP_MAX_CONTENT; len <= UPNP_MAX_CONTENT + 1; len++) {
		memset(buf, ' ', len);
		memcpy(buf, head, sizeof(head) - 1);
		memcpy(buf + len - (sizeof(tail) - 1), tail, sizeof(tail) - 1);
		memset(&act, 0, sizeof(act));
		assert_int_equal(soap_xml_read(buf, len, &act, NULL),
		    len == UPNP_MAX_CONTENT);
		if (len == UPNP_MAX_CONTENT) {
			sx_same(buf, len, "4096");
			assert_string_equal(act.args[0].value, "1");
		}
	}
}

/* Every prefix of a real body: never a crash; an error, or (only when
   the cut falls after the root) the whole body's result. */
static void
test_truncated(void **state)
{
	static char buf[UPNP_MAX_CONTENT + 1];
	struct sx_result *full, *cut;
	char *copy;
	size_t n, i;

	(void)state;
	n = sx_load(SX_CORPUS "/miniupnpc_add.xml", buf, sizeof(buf) - 1);
	assert_non_null(full = malloc(sizeof(*full)));
	assert_non_null(cut = malloc(sizeof(*cut)));
	sx_ours(buf, n, full);
	assert_true(full->ok);
	assert_false(full->act.malformed);
	assert_true(full->act.nargs >= 8);
	for (i = 0; i < n; i++) {
		/* exactly i bytes, so ASan sees a read past them */
		assert_non_null(copy = malloc(i > 0 ? i : 1));
		memcpy(copy, buf, i);
		sx_ours(copy, i, cut);
		if (cut->ok)
			sx_equal(cut, full, "truncated", true);
		free(copy);
	}
	free(full);
	free(cut);
}

int
main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_corpus_matches_ixml),
		cmocka_unit_test(test_cases_match_ixml),
		cmocka_unit_test(test_client_shapes),
		cmocka_unit_test(test_values_decoded),
		cmocka_unit_test(test_default_ns),
		cmocka_unit_test(test_doctype_and_depth),
		cmocka_unit_test(test_size_limit),
		cmocka_unit_test(test_truncated),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
