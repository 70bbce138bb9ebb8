/*
 * soap_xml.c - a small, bounded reader of SOAP control requests
 * (soap_xml.h; spec/iwf.md §3.3, X-05).
 *
 * One pass over the body with a fixed stack of open elements (spans into
 * the caller's buffer), after one pass that checks the bytes: valid UTF-8
 * (no overlong forms, no surrogates, nothing above U+10FFFF, no U+FFFE or
 * U+FFFF) and no control byte but tab, CR and LF (XML 1.0 §2.2 Char). What
 * is refused, as not well-formed (XML 1.0 §2.1): a DOCTYPE or any other
 * "<!" declaration (no entity a DTD could define), mismatched, unclosed or
 * misnamed tags, a second root or text after it, an attribute given twice
 * or without quotes, '<' in an attribute value, "]]>" in text, an entity
 * other than the five of §4.6 or a character reference that is no Char
 * (§4.1), a CDATA section or text outside the root, an XML declaration
 * after any markup, more than SOAP_XML_DEPTH_MAX open elements.
 * What libixml accepts and this reader takes the same way: whitespace
 * before the XML declaration, "--" inside a comment, an undeclared
 * namespace prefix (no URI), xmlns="" (ignored, as ixml does).
 */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "soap_xml.h"
#include "upnp.h"

#define SOAP_XML_BOM		"\xef\xbb\xbf"
#define SOAP_XML_UNICODE_MAX	0x10ffff
#define SOAP_XML_UTF8_MAX	4	/* bytes of one encoded character */

struct soap_xml_span {
	const char	*p;
	size_t		 len;
};

struct soap_xml_open {
	struct soap_xml_span name;	/* qualified name */
	const char	*attrs;		/* just after the name in the tag */
};

struct soap_xml {
	const char	*end;
	struct upnp_action *act;
	struct soap_xml_elem *elem;
	struct soap_xml_open open[SOAP_XML_DEPTH_MAX];
	size_t		 depth;
	size_t		 vlen;		/* of the argument being read */
	bool		 root_seen, markup_seen;
	bool		 env_ok, body_seen, body_open;
	bool		 action_seen, action_open, arg_open;
	bool		 stop;		/* malformed: no more arguments */
};

/* ---- characters ---------------------------------------------------------- */

static bool
soap_xml_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

static bool
soap_xml_name_start(unsigned char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
	    c == '_' || c == ':' || c >= 0x80;
}

static bool
soap_xml_name_char(unsigned char c)
{
	return soap_xml_name_start(c) || (c >= '0' && c <= '9') ||
	    c == '-' || c == '.';
}

/* XML 1.0 §2.2 Char. */
static bool
soap_xml_char_ok(uint32_t c)
{
	if (c < 0x20)
		return c == '\t' || c == '\n' || c == '\r';
	if (c >= 0xd800 && c <= 0xdfff)
		return false;
	return c != 0xfffe && c != 0xffff && c <= SOAP_XML_UNICODE_MAX;
}

/* The whole body: UTF-8 (RFC 3629 §4) of Chars only. */
static bool
soap_xml_bytes_ok(const unsigned char *p, const unsigned char *end)
{
	uint32_t c;
	size_t n, i;

	while (p < end) {
		if (*p < 0x80) {
			if (!soap_xml_char_ok(*p))
				return false;
			p++;
			continue;
		}
		if (*p >= 0xc2 && *p <= 0xdf) {
			n = 1;
			c = *p & 0x1f;
		} else if (*p >= 0xe0 && *p <= 0xef) {
			n = 2;
			c = *p & 0x0f;
		} else if (*p >= 0xf0 && *p <= 0xf4) {
			n = 3;
			c = *p & 0x07;
		} else
			return false;
		if ((size_t)(end - p) <= n)
			return false;
		for (i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			c = c << 6 | (p[i] & 0x3f);
		}
		/* overlong forms */
		if ((n == 2 && c < 0x800) || (n == 3 && c < 0x10000))
			return false;
		if (!soap_xml_char_ok(c))
			return false;
		p += n + 1;
	}
	return true;
}

static size_t
soap_xml_utf8(uint32_t c, char *out)
{
	if (c < 0x80) {
		out[0] = (char)c;
		return 1;
	}
	if (c < 0x800) {
		out[0] = (char)(0xc0 | c >> 6);
		out[1] = (char)(0x80 | (c & 0x3f));
		return 2;
	}
	if (c < 0x10000) {
		out[0] = (char)(0xe0 | c >> 12);
		out[1] = (char)(0x80 | (c >> 6 & 0x3f));
		out[2] = (char)(0x80 | (c & 0x3f));
		return 3;
	}
	out[0] = (char)(0xf0 | c >> 18);
	out[1] = (char)(0x80 | (c >> 12 & 0x3f));
	out[2] = (char)(0x80 | (c >> 6 & 0x3f));
	out[3] = (char)(0x80 | (c & 0x3f));
	return 4;
}

static bool
soap_xml_is(const char *p, const char *end, const char *lit)
{
	size_t n = strlen(lit);

	return (size_t)(end - p) >= n && memcmp(p, lit, n) == 0;
}

static const char *
soap_xml_find(const char *p, const char *end, const char *lit)
{
	for (; p < end; p++)
		if (soap_xml_is(p, end, lit))
			return p;
	return NULL;
}

static bool
soap_xml_span_is(struct soap_xml_span s, const char *lit)
{
	return s.len == strlen(lit) && memcmp(s.p, lit, s.len) == 0;
}

static bool
soap_xml_span_eq(struct soap_xml_span a, struct soap_xml_span b)
{
	return a.len == b.len && memcmp(a.p, b.p, a.len) == 0;
}

/* A Name at *pp (XML 1.0 §2.3, by bytes: non-ASCII is taken as a name
   character); false if none. */
static bool
soap_xml_name(const char **pp, const char *end, struct soap_xml_span *s)
{
	const char *p = *pp;

	if (p >= end || !soap_xml_name_start((unsigned char)*p))
		return false;
	while (p < end && soap_xml_name_char((unsigned char)*p))
		p++;
	s->p = *pp;
	s->len = (size_t)(p - *pp);
	*pp = p;
	return true;
}

/* The local name: after the first ':' (as ixml splits a QName). */
static struct soap_xml_span
soap_xml_local(struct soap_xml_span q)
{
	const char *colon = memchr(q.p, ':', q.len);

	if (colon != NULL) {
		q.len -= (size_t)(colon + 1 - q.p);
		q.p = colon + 1;
	}
	return q;
}

/*
 * The reference at *pp ('&'; XML 1.0 §4.1, the predefined entities of
 * §4.6), as UTF-8 in out; false if it is none of those or names no Char.
 */
static bool
soap_xml_ref(const char **pp, const char *end, char *out, size_t *n)
{
	static const struct {
		const char	*name;
		char		 c;
	} ents[] = {
		{ "&lt;", '<' }, { "&gt;", '>' }, { "&amp;", '&' },
		{ "&quot;", '"' }, { "&apos;", '\'' },
	};
	const char *p = *pp;
	uint32_t c = 0;
	unsigned int base = 10, d;
	size_t i, digits = 0;

	for (i = 0; i < sizeof(ents) / sizeof(ents[0]); i++) {
		if (soap_xml_is(p, end, ents[i].name)) {
			out[0] = ents[i].c;
			*n = 1;
			*pp = p + strlen(ents[i].name);
			return true;
		}
	}
	if (!soap_xml_is(p, end, "&#"))
		return false;
	p += 2;
	if (p < end && *p == 'x') {
		base = 16;
		p++;
	}
	for (; p < end && *p != ';'; p++, digits++) {
		if (*p >= '0' && *p <= '9')
			d = (unsigned int)(*p - '0');
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = (unsigned int)(*p - 'a' + 10);
		else if (base == 16 && *p >= 'A' && *p <= 'F')
			d = (unsigned int)(*p - 'A' + 10);
		else
			return false;
		c = c * base + d;
		if (c > SOAP_XML_UNICODE_MAX)
			return false;
	}
	if (p >= end || digits == 0 || !soap_xml_char_ok(c))
		return false;
	*n = soap_xml_utf8(c, out);
	*pp = p + 1;
	return true;
}

/*
 * The next attribute of a start tag at *pp: 1 and its name and raw value,
 * 0 at the tag's end ('>' or "/>" at *pp), -1 if not well-formed.
 */
static int
soap_xml_attr(const char **pp, const char *end, struct soap_xml_span *name,
    struct soap_xml_span *value)
{
	const char *p = *pp;
	char quote, buf[SOAP_XML_UTF8_MAX];
	size_t n;
	bool ws = false;

	while (p < end && soap_xml_space(*p)) {
		p++;
		ws = true;
	}
	*pp = p;
	if (p < end && (*p == '>' || *p == '/'))
		return 0;
	if (!ws || !soap_xml_name(&p, end, name))
		return -1;
	while (p < end && soap_xml_space(*p))
		p++;
	if (p >= end || *p++ != '=')
		return -1;
	while (p < end && soap_xml_space(*p))
		p++;
	if (p >= end || (*p != '"' && *p != '\''))
		return -1;
	quote = *p++;
	value->p = p;
	while (p < end && *p != quote) {
		if (*p == '<')
			return -1;
		if (*p == '&') {
			if (!soap_xml_ref(&p, end, buf, &n))
				return -1;
		} else
			p++;
	}
	if (p >= end)
		return -1;
	value->len = (size_t)(p - value->p);
	*pp = p + 1;
	return 1;
}

/* ---- the action element and its arguments -------------------------------- */

/* Decode an attribute value into out (max bytes and a NUL); "" if longer. */
static void
soap_xml_decode(struct soap_xml_span v, char *out, size_t max)
{
	const char *p = v.p, *end = v.p + v.len;
	char buf[SOAP_XML_UTF8_MAX];
	size_t len = 0, n;

	while (p < end) {
		if (*p == '&') {
			/* checked when the tag was read */
			if (!soap_xml_ref(&p, end, buf, &n))
				break;
		} else {
			buf[0] = *p++;
			n = 1;
		}
		if (n > max - len) {
			len = 0;
			break;
		}
		memcpy(out + len, buf, n);
		len += n;
	}
	out[len] = '\0';
}

/* Look for the declaration of prefix (xmlns:prefix, or xmlns when prefix
   is empty) among the attributes at attrs. */
static bool
soap_xml_ns_in(const char *attrs, const char *end, struct soap_xml_span prefix,
    char *out, size_t max)
{
	struct soap_xml_span name, value;
	const char *p = attrs;

	while (soap_xml_attr(&p, end, &name, &value) == 1) {
		if (prefix.len == 0) {
			/* ixml ignores xmlns="" (the outer default holds) */
			if (!soap_xml_span_is(name, "xmlns") || value.len == 0)
				continue;
		} else if (name.len != prefix.len + sizeof("xmlns:") - 1 ||
		    memcmp(name.p, "xmlns:", sizeof("xmlns:") - 1) != 0 ||
		    memcmp(name.p + sizeof("xmlns:") - 1, prefix.p,
		    prefix.len) != 0)
			continue;
		soap_xml_decode(value, out, max);
		return true;
	}
	return false;
}

/* Namespaces in XML §6.1: the innermost declaration of the action's
   prefix, on the action element or an ancestor. */
static void
soap_xml_action_ns(struct soap_xml *x)
{
	const struct soap_xml_open *o = &x->open[x->depth - 1];
	struct soap_xml_span prefix = o->name;
	const char *colon = memchr(o->name.p, ':', o->name.len);
	size_t i;

	prefix.len = colon != NULL ? (size_t)(colon - o->name.p) : 0;
	x->elem->ns[0] = '\0';
	for (i = x->depth; i > 0; i--)
		if (soap_xml_ns_in(x->open[i - 1].attrs, x->end, prefix,
		    x->elem->ns, SOAP_XML_NS_MAX))
			return;
	x->elem->ns[0] = '\0';
}

static void
soap_xml_malformed(struct soap_xml *x)
{
	x->act->malformed = true;
	x->stop = true;
}

/* The action element opened (its name, as the oracle takes it). */
static void
soap_xml_action(struct soap_xml *x, struct soap_xml_span local)
{
	x->elem->local = local.p;
	x->elem->local_len = local.len;
	soap_xml_action_ns(x);
	if (x->act->name[0] != '\0')
		return;
	if (local.len > UPNP_NAME_MAX) {
		x->act->malformed = true;
		return;
	}
	memcpy(x->act->name, local.p, local.len);
	x->act->name[local.len] = '\0';
}

/* An argument opened: its name (upnp_arg_add). */
static void
soap_xml_arg_start(struct soap_xml *x, struct soap_xml_span local)
{
	struct upnp_arg *arg;

	x->arg_open = true;
	if (x->stop)
		return;
	if (local.len == 0 || local.len > UPNP_NAME_MAX ||
	    x->act->nargs >= UPNP_ARGS_MAX) {
		soap_xml_malformed(x);
		return;
	}
	arg = &x->act->args[x->act->nargs];
	memcpy(arg->name, local.p, local.len);
	arg->name[local.len] = '\0';
	arg->value[0] = '\0';
	x->vlen = 0;
}

static void
soap_xml_arg_end(struct soap_xml *x)
{
	struct upnp_arg *arg = &x->act->args[x->act->nargs];
	size_t i, start = 0, len = x->vlen;

	x->arg_open = false;
	if (x->stop)
		return;
	/* values trimmed of surrounding white space */
	while (len > 0 && soap_xml_space(arg->value[len - 1]))
		len--;
	while (start < len && soap_xml_space(arg->value[start]))
		start++;
	memmove(arg->value, arg->value + start, len - start);
	arg->value[len - start] = '\0';
	/* one value per name, or which one would count? */
	for (i = 0; i < x->act->nargs; i++) {
		if (strcmp(x->act->args[i].name, arg->name) == 0) {
			soap_xml_malformed(x);
			return;
		}
	}
	x->act->nargs++;
}

/* Character data (decoded) inside an element. */
static void
soap_xml_chars(struct soap_xml *x, const char *s, size_t n)
{
	struct upnp_arg *arg;
	size_t i;

	if (x->stop)
		return;
	if (x->arg_open && x->depth == 4) {
		arg = &x->act->args[x->act->nargs];
		if (n > UPNP_VALUE_MAX - x->vlen) {
			soap_xml_malformed(x);
			return;
		}
		memcpy(arg->value + x->vlen, s, n);
		x->vlen += n;
		arg->value[x->vlen] = '\0';
	} else if (x->action_open && x->depth == 3) {
		/* pretty-printing between the arguments, nothing else */
		for (i = 0; i < n; i++) {
			if (!soap_xml_space(s[i])) {
				soap_xml_malformed(x);
				return;
			}
		}
	}
}

/* ---- markup ------------------------------------------------------------- */

/* Text from p to end (no '<' in it). */
static bool
soap_xml_text(struct soap_xml *x, const char *p, const char *end)
{
	char buf[SOAP_XML_UTF8_MAX];
	const char *q;
	size_t n;

	if (x->depth == 0) {
		/* XML 1.0 §2.8 Misc: only white space outside the root */
		for (; p < end; p++)
			if (!soap_xml_space(*p))
				return false;
		return true;
	}
	if (soap_xml_find(p, end, "]]>") != NULL)
		return false;	/* XML 1.0 §2.4 */
	while (p < end) {
		if (*p == '&') {
			if (!soap_xml_ref(&p, end, buf, &n))
				return false;
			soap_xml_chars(x, buf, n);
			continue;
		}
		if ((q = memchr(p, '&', (size_t)(end - p))) == NULL)
			q = end;
		soap_xml_chars(x, p, (size_t)(q - p));
		p = q;
	}
	return true;
}

static void
soap_xml_close(struct soap_xml *x)
{
	size_t d = x->depth - 1;	/* index of the element closed */

	if (d == 1 && x->body_open)
		x->body_open = false;
	else if (d == 2 && x->action_open)
		x->action_open = false;
	else if (d == 3 && x->arg_open)
		soap_xml_arg_end(x);
	x->depth--;
}

/* An element opened at index depth (its name, where its attributes are). */
static void
soap_xml_opened(struct soap_xml *x, struct soap_xml_span name,
    const char *attrs)
{
	struct soap_xml_span local = soap_xml_local(name);
	size_t d = x->depth;

	x->open[d].name = name;
	x->open[d].attrs = attrs;
	x->depth++;
	switch (d) {
	case 0:		/* SOAP 1.1 §4: Envelope */
		x->root_seen = true;
		x->env_ok = soap_xml_span_is(local, "Envelope");
		break;
	case 1:		/* its Body (a Header before it skipped) */
		if (x->env_ok && !x->body_seen &&
		    soap_xml_span_is(local, "Body"))
			x->body_seen = x->body_open = true;
		break;
	case 2:		/* the Body's first element: the action */
		if (x->body_open && !x->action_seen) {
			x->action_seen = x->action_open = true;
			soap_xml_action(x, local);
		}
		break;
	case 3:
		if (x->action_open)
			soap_xml_arg_start(x, local);
		break;
	case 4:		/* markup inside a value */
		if (x->arg_open && !x->stop)
			soap_xml_malformed(x);
		break;
	default:
		break;
	}
}

/* A start tag at p ('<' and a name start); returns past it or NULL. */
static const char *
soap_xml_start_tag(struct soap_xml *x, const char *p)
{
	struct soap_xml_span name, an, av, bn, bv;
	const char *attrs, *q;
	int rc;

	p++;
	if ((x->depth == 0 && x->root_seen) ||
	    x->depth >= SOAP_XML_DEPTH_MAX ||
	    !soap_xml_name(&p, x->end, &name))
		return NULL;
	attrs = p;
	while ((rc = soap_xml_attr(&p, x->end, &an, &av)) == 1) {
		/* XML 1.0 §3.1 Unique Att Spec */
		q = attrs;
		while (soap_xml_attr(&q, x->end, &bn, &bv) == 1 &&
		    bn.p < an.p)
			if (soap_xml_span_eq(an, bn))
				return NULL;
	}
	if (rc < 0)
		return NULL;
	soap_xml_opened(x, name, attrs);
	if (*p == '>')
		return p + 1;
	if (soap_xml_is(p, x->end, "/>")) {
		soap_xml_close(x);
		return p + 2;
	}
	return NULL;
}

static const char *
soap_xml_end_tag(struct soap_xml *x, const char *p)
{
	struct soap_xml_span name;

	p += 2;
	if (x->depth == 0 || !soap_xml_name(&p, x->end, &name) ||
	    !soap_xml_span_eq(name, x->open[x->depth - 1].name))
		return NULL;
	while (p < x->end && soap_xml_space(*p))
		p++;
	if (p >= x->end || *p != '>')
		return NULL;
	soap_xml_close(x);
	return p + 1;
}

/* A processing instruction (XML 1.0 §2.6), or the XML declaration first. */
static const char *
soap_xml_pi(struct soap_xml *x, const char *p)
{
	struct soap_xml_span target;
	const char *q = p + 2, *e;

	if (!soap_xml_name(&q, x->end, &target) ||
	    (e = soap_xml_find(q, x->end, "?>")) == NULL)
		return NULL;
	if (q < e && !soap_xml_space(*q))
		return NULL;
	if (target.len == 3 && (target.p[0] | 0x20) == 'x' &&
	    (target.p[1] | 0x20) == 'm' && (target.p[2] | 0x20) == 'l') {
		/* §2.8: the declaration, only before any other markup */
		if (x->markup_seen || !soap_xml_span_is(target, "xml"))
			return NULL;
	}
	return e + 2;
}

static const char *
soap_xml_markup(struct soap_xml *x, const char *p)
{
	const char *e;

	if (soap_xml_is(p, x->end, "<!--")) {
		if ((e = soap_xml_find(p + 4, x->end, "-->")) == NULL)
			return NULL;
		return e + 3;
	}
	if (soap_xml_is(p, x->end, "<?"))
		return soap_xml_pi(x, p);
	if (soap_xml_is(p, x->end, "<![CDATA[")) {
		if (x->depth == 0 ||
		    (e = soap_xml_find(p + 9, x->end, "]]>")) == NULL)
			return NULL;
		soap_xml_chars(x, p + 9, (size_t)(e - p - 9));
		return e + 3;
	}
	if (soap_xml_is(p, x->end, "<!"))
		return NULL;	/* DOCTYPE: no DTD, no entities of its own */
	if (soap_xml_is(p, x->end, "</"))
		return soap_xml_end_tag(x, p);
	return soap_xml_start_tag(x, p);
}

static bool
soap_xml_doc(struct soap_xml *x, const char *p)
{
	const char *q;

	while (p < x->end) {
		if (*p != '<') {
			if ((q = memchr(p, '<', (size_t)(x->end - p))) == NULL)
				q = x->end;
			if (!soap_xml_text(x, p, q))
				return false;
			p = q;
			continue;
		}
		if ((p = soap_xml_markup(x, p)) == NULL)
			return false;
		x->markup_seen = true;
	}
	return x->root_seen && x->depth == 0;
}

bool
soap_xml_read(const char *buf, size_t len, struct upnp_action *act,
    struct soap_xml_elem *elem)
{
	struct soap_xml x;
	struct soap_xml_elem scratch;
	size_t nargs = act->nargs;
	bool malformed = act->malformed, named = act->name[0] != '\0';
	const char *p = buf;

	if (buf == NULL || len == 0 || len > UPNP_MAX_CONTENT ||
	    nargs > UPNP_ARGS_MAX)
		return false;
	memset(&x, 0, sizeof(x));
	x.end = buf + len;
	x.act = act;
	x.elem = elem != NULL ? elem : &scratch;
	if (soap_xml_is(p, x.end, SOAP_XML_BOM))
		p += sizeof(SOAP_XML_BOM) - 1;
	if (soap_xml_bytes_ok((const unsigned char *)p,
	    (const unsigned char *)x.end) && soap_xml_doc(&x, p) &&
	    x.action_seen)
		return true;
	/* as on entry */
	memset(&act->args[nargs], 0,
	    (UPNP_ARGS_MAX - nargs) * sizeof(act->args[0]));
	act->nargs = nargs;
	act->malformed = malformed;
	if (!named)
		memset(act->name, 0, sizeof(act->name));
	if (elem != NULL)
		memset(elem, 0, sizeof(*elem));
	return false;
}
