/*
 * acl.c - parse, match and print the allow/deny rules.
 *
 * Addresses are kept as 128 bits, IPv4 as IPv4-mapped (RFC 6887 §5 does
 * the same on the wire), so one prefix comparison serves both families:
 * an IPv4 /24 is a /120 on ::ffff:0:0/96, and an IPv6 rule of ::/0 also
 * covers every IPv4 host.
 */
#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "acl.h"
#include "pcp_wire.h"
#include "util.h"

#define ACL_FIELDS		3	/* EXTPORTS INTADDR[/LEN] INTPORTS */
#define ACL_SEPARATORS		" \t"
#define ACL_PORT_TEXT_MAX	sizeof("65535-65535")
#define ACL_ADDR_TEXT_MAX	ACL_PREFIX_TEXT_MAX

/* A decimal number of at most max (util_parse_decimal's strict rules). */
static bool
acl_parse_number(const char *text, unsigned long max, unsigned long *out)
{
	unsigned long long v;

	if (!util_parse_decimal(text, &v) || v > max)
		return false;
	*out = (unsigned long)v;
	return true;
}

/* "N" or "N-M", 0..65535, N <= M. */
static bool
acl_parse_ports(const char *what, const char *text, uint16_t *min,
    uint16_t *max, char *err, size_t errlen)
{
	char buf[ACL_PORT_TEXT_MAX];
	char *dash;
	unsigned long lo, hi;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "%s ports \"%.20s\": expected a port "
		    "0..65535 or a range N-M", what, text);
		return false;
	}
	memcpy(buf, text, strlen(text) + 1);
	dash = strchr(buf, '-');
	if (dash != NULL)
		*dash = '\0';
	if (!acl_parse_number(buf, UINT16_MAX, &lo) ||
	    (dash != NULL && !acl_parse_number(dash + 1, UINT16_MAX, &hi))) {
		snprintf(err, errlen, "%s ports \"%s\": expected a port "
		    "0..65535 or a range N-M", what, text);
		return false;
	}
	if (dash == NULL)
		hi = lo;
	if (lo > hi) {
		snprintf(err, errlen, "%s ports \"%s\": range is reversed",
		    what, text);
		return false;
	}
	*min = (uint16_t)lo;
	*max = (uint16_t)hi;
	return true;
}

/* Text of addr/plen in the family the address was written in. */
static void
acl_addr_format(const struct in6_addr *addr, unsigned int plen, char *buf,
    size_t len)
{
	char text[INET6_ADDRSTRLEN];

	if (IN6_IS_ADDR_V4MAPPED(addr) && plen >= ACL_V4_PREFIX_OFFSET) {
		inet_ntop(AF_INET, &addr->s6_addr[12], text, sizeof(text));
		plen -= ACL_V4_PREFIX_OFFSET;
	} else
		inet_ntop(AF_INET6, addr, text, sizeof(text));
	snprintf(buf, len, "%s/%u", text, plen);
}

/* "ADDR" or "ADDR/LEN"; a bare address is a host (/32 or /128). */
static bool
acl_parse_addr(const char *text, struct in6_addr *addr, uint8_t *plen,
    char *err, size_t errlen)
{
	char buf[ACL_ADDR_TEXT_MAX], suggest[ACL_ADDR_TEXT_MAX];
	char *slash;
	struct in_addr v4;
	struct in6_addr a, masked;
	unsigned long len, maxlen, offset;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "address \"%.50s...\": not an IPv4 or "
		    "IPv6 address", text);
		return false;
	}
	memcpy(buf, text, strlen(text) + 1);
	slash = strchr(buf, '/');
	if (slash != NULL)
		*slash = '\0';
	if (inet_pton(AF_INET, buf, &v4) == 1) {
		pcp_addr_from_v4(&a, &v4);
		maxlen = ACL_V4_PREFIX_MAX;
		offset = ACL_V4_PREFIX_OFFSET;
	} else if (inet_pton(AF_INET6, buf, &a) == 1) {
		maxlen = ACL_V6_PREFIX_MAX;
		offset = 0;
	} else {
		snprintf(err, errlen, "address \"%s\": not an IPv4 or IPv6 "
		    "address", text);
		return false;
	}
	len = maxlen;
	if (slash != NULL && !acl_parse_number(slash + 1, maxlen, &len)) {
		snprintf(err, errlen, "address \"%s\": prefix length is not "
		    "in 0..%lu", text, maxlen);
		return false;
	}
	/* A prefix with host bits set is most often a typo for another
	   network; say which one rather than guess. */
	masked = a;
	util_addr_mask(&masked, (unsigned int)(len + offset));
	if (memcmp(&masked, &a, sizeof(a)) != 0) {
		acl_addr_format(&masked, (unsigned int)(len + offset),
		    suggest, sizeof(suggest));
		snprintf(err, errlen, "address \"%s\": host bits set, did you "
		    "mean %s?", text, suggest);
		return false;
	}
	*addr = a;
	*plen = (uint8_t)(len + offset);
	return true;
}

bool
acl_prefix_parse(const char *text, struct acl_prefix *out, char *err,
    size_t errlen)
{
	struct acl_prefix p;

	memset(&p, 0, sizeof(p));	/* callers compare with memcmp */
	if (!acl_parse_addr(text, &p.addr, &p.prefix_len, err, errlen))
		return false;
	*out = p;
	return true;
}

void
acl_prefix_format(const struct acl_prefix *p, char *buf, size_t len)
{
	acl_addr_format(&p->addr, p->prefix_len, buf, len);
}

bool
acl_prefix_match(const struct acl_prefix *p, const struct in6_addr *addr)
{
	return util_prefix_match(&p->addr, addr, p->prefix_len);
}

bool
acl_rule_parse(const char *text, bool allow, struct acl_rule *out,
    char *err, size_t errlen)
{
	char buf[ACL_RULE_TEXT_MAX];
	char *field[ACL_FIELDS + 1], *save = NULL, *tok;
	size_t n = 0;
	struct acl_rule r;

	if (strlen(text) >= sizeof(buf)) {
		snprintf(err, errlen, "rule is longer than %zu characters",
		    sizeof(buf) - 1);
		return false;
	}
	memcpy(buf, text, strlen(text) + 1);
	for (tok = strtok_r(buf, ACL_SEPARATORS, &save);
	    tok != NULL && n <= ACL_FIELDS;
	    tok = strtok_r(NULL, ACL_SEPARATORS, &save))
		field[n++] = tok;
	if (n != ACL_FIELDS) {
		snprintf(err, errlen, "expected \"EXTPORTS ADDRESS[/LEN] "
		    "INTPORTS\", got %s%zu field%s", n > ACL_FIELDS ?
		    "more than " : "", n > ACL_FIELDS ? (size_t)ACL_FIELDS : n,
		    n == 1 ? "" : "s");
		return false;
	}
	memset(&r, 0, sizeof(r));
	r.allow = allow;
	if (!acl_parse_ports("external", field[0], &r.ext_min, &r.ext_max,
	    err, errlen) ||
	    !acl_parse_addr(field[1], &r.addr, &r.prefix_len, err, errlen) ||
	    !acl_parse_ports("internal", field[2], &r.int_min, &r.int_max,
	    err, errlen))
		return false;
	*out = r;
	return true;
}

bool
acl_rule_match(const struct acl_rule *r, const struct in6_addr *internal_addr,
    uint16_t ext_port, uint16_t int_port)
{
	return ext_port >= r->ext_min && ext_port <= r->ext_max &&
	    int_port >= r->int_min && int_port <= r->int_max &&
	    util_prefix_match(&r->addr, internal_addr, r->prefix_len);
}

bool
acl_allows(const struct acl_rule *rules, size_t n, const struct in6_addr *addr,
    uint16_t ext_port, uint16_t int_port)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (acl_rule_match(&rules[i], addr, ext_port, int_port))
			return rules[i].allow;
	return true;
}

/* Replace out[i..j) by the nrepl ranges of repl. */
static void
acl_ranges_replace(struct port_range *out, size_t *count, size_t i, size_t j,
    const struct port_range *repl, size_t nrepl)
{
	memmove(&out[i + nrepl], &out[j], (*count - j) * sizeof(*out));
	memcpy(&out[i], repl, nrepl * sizeof(*out));
	*count = *count - (j - i) + nrepl;
}

/* Paint [lo, hi] allowed or denied over the sorted allowed set. Each call
   adds at most one range (a union merges, a cut splits one in two). */
static void
acl_ranges_paint(struct port_range *out, size_t *count, uint16_t lo,
    uint16_t hi, bool allow)
{
	struct port_range repl[2];
	size_t i, j, n = 0;

	/* [i, j): the ranges that touch [lo, hi], adjacent ones too for a
	   union (so the result stays non-adjacent) */
	for (i = 0; i < *count && (uint32_t)out[i].hi + allow < lo; i++)
		continue;
	for (j = i; j < *count && out[j].lo <= (uint32_t)hi + allow; j++)
		continue;
	if (allow) {
		repl[0].lo = i < j && out[i].lo < lo ? out[i].lo : lo;
		repl[0].hi = i < j && out[j - 1].hi > hi ? out[j - 1].hi : hi;
		acl_ranges_replace(out, count, i, j, repl, 1);
		return;
	}
	if (i == j)
		return;
	if (out[i].lo < lo) {
		repl[n].lo = out[i].lo;
		repl[n++].hi = (uint16_t)(lo - 1);
	}
	if (out[j - 1].hi > hi) {
		repl[n].lo = (uint16_t)(hi + 1);
		repl[n++].hi = out[j - 1].hi;
	}
	acl_ranges_replace(out, count, i, j, repl, n);
}

size_t
acl_ext_ranges(const struct acl_rule *rules, size_t n,
    const struct in6_addr *addr, uint16_t int_port, struct port_range *out)
{
	const struct acl_rule *r;
	size_t count = 1, i;

	/* No match allows: start from everything, then paint the matching
	   rules from the last to the first, so the first match ends on top. */
	out[0].lo = 0;
	out[0].hi = UINT16_MAX;
	for (i = n; i-- > 0;) {
		r = &rules[i];
		if (int_port < r->int_min || int_port > r->int_max ||
		    !util_prefix_match(&r->addr, addr, r->prefix_len))
			continue;
		acl_ranges_paint(out, &count, r->ext_min, r->ext_max,
		    r->allow);
	}
	return count;
}

static void
acl_ports_format(uint16_t min, uint16_t max, char *buf, size_t len)
{
	if (min == max)
		snprintf(buf, len, "%u", (unsigned int)min);
	else
		snprintf(buf, len, "%u-%u", (unsigned int)min,
		    (unsigned int)max);
}

void
acl_rule_format(const struct acl_rule *r, char *buf, size_t len)
{
	char ext[ACL_PORT_TEXT_MAX], in[ACL_PORT_TEXT_MAX];
	char addr[ACL_ADDR_TEXT_MAX];

	acl_ports_format(r->ext_min, r->ext_max, ext, sizeof(ext));
	acl_ports_format(r->int_min, r->int_max, in, sizeof(in));
	acl_addr_format(&r->addr, r->prefix_len, addr, sizeof(addr));
	snprintf(buf, len, "%s %s %s", ext, addr, in);
}
