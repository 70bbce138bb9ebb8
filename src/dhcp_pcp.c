/*
 * dhcp_pcp.c - RFC 7291's DHCP PCP server options (see dhcp_pcp.h).
 *
 * Decode into a local copy, check, then commit (STYLE.md, Knot DNS): a
 * malformed option leaves the caller's list as it was.
 */
#include <arpa/inet.h>

#include <string.h>

#include "dhcp_pcp.h"
#include "pcp_wire.h"

#define DHCP_PCP_V4_ADDR_LEN	4
#define DHCP_PCP_V6_ADDR_LEN	16
/* RFC 7291 §4.1: List-Length octet plus at least one address */
#define DHCP_PCP_V4_MIN_LEN	(1 + DHCP_PCP_V4_ADDR_LEN)
#define DHCP_PCP_V4_LOOPBACK_NET 127	/* RFC 6890: 127.0.0.0/8 */

static const char *const dhcp_pcp_errors[DHCP_PCP_ERR_COUNT] = {
	[DHCP_PCP_OK] = "ok",
	[DHCP_PCP_BAD_HEX] = "not a string of hex octets",
	[DHCP_PCP_TOO_LONG] = "option longer than 4096 octets",
	[DHCP_PCP_V4_TOO_SHORT] = "option 158 is shorter than 5 octets "
	    "(RFC 7291 §4.1)",
	[DHCP_PCP_V4_LIST_LENGTH] = "option 158 has a List-Length that is 0 "
	    "or not a multiple of 4 (RFC 7291 §4.1)",
	[DHCP_PCP_V4_TRUNCATED] = "option 158 has a list that runs past its "
	    "end (RFC 7291 §4.1)",
	[DHCP_PCP_V6_LENGTH] = "option 86 is empty or not a multiple of 16 "
	    "octets (RFC 7291 §3.1)",
};

void
dhcp_pcp_init(struct dhcp_pcp_servers *s)
{
	memset(s, 0, sizeof(*s));
}

const char *
dhcp_pcp_strerror(enum dhcp_pcp_err err)
{
	if ((unsigned int)err >= DHCP_PCP_ERR_COUNT)
		return "unknown error";
	return dhcp_pcp_errors[err];
}

static int
dhcp_pcp_hexdigit(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

static bool
dhcp_pcp_is_separator(char c)
{
	return c == ':' || c == '-' || c == ' ' || c == '\t' || c == '\n' ||
	    c == '\r';
}

enum dhcp_pcp_err
dhcp_pcp_hex(const char *text, uint8_t *out, size_t max, size_t *len)
{
	const char *p = text;
	bool separated = false;
	size_t n = 0, digits;
	int hi, lo;

	/* separated form: any separator between two digits */
	for (p = text; *p != '\0'; p++)
		if (dhcp_pcp_is_separator(*p))
			separated = true;
	p = text;
	while (*p != '\0') {
		if (dhcp_pcp_is_separator(*p)) {
			p++;
			continue;
		}
		/* one octet: two digits, or in the separated form one digit
		   followed by a separator or the end */
		if ((hi = dhcp_pcp_hexdigit(p[0])) < 0)
			return DHCP_PCP_BAD_HEX;
		lo = dhcp_pcp_hexdigit(p[1]);
		digits = lo >= 0 ? 2 : 1;
		if (digits == 1 && (!separated || (p[1] != '\0' &&
		    !dhcp_pcp_is_separator(p[1]))))
			return DHCP_PCP_BAD_HEX;
		/* "c0a8" in the separated form is two octets glued: no */
		if (separated && digits == 2 && p[2] != '\0' &&
		    !dhcp_pcp_is_separator(p[2]))
			return DHCP_PCP_BAD_HEX;
		if (n == max)
			return DHCP_PCP_TOO_LONG;
		out[n++] = (uint8_t)(digits == 2 ? hi << 4 | lo : hi);
		p += digits;
	}
	*len = n;
	return DHCP_PCP_OK;
}

/* RFC 7291 §3.2, §4.2: multicast and host loopback are discarded; so are
   addresses that name no host at all. */
static bool
dhcp_pcp_usable(const struct in6_addr *a)
{
	struct in_addr v4;
	uint32_t h;

	if (pcp_addr_is_v4(a)) {
		pcp_addr_to_v4(a, &v4);
		h = ntohl(v4.s_addr);
		return h != INADDR_ANY && h != INADDR_BROADCAST &&
		    !IN_MULTICAST(h) && (h >> IN_CLASSA_NSHIFT) !=
		    DHCP_PCP_V4_LOOPBACK_NET;
	}
	return !IN6_IS_ADDR_UNSPECIFIED(a) && !IN6_IS_ADDR_LOOPBACK(a) &&
	    !IN6_IS_ADDR_MULTICAST(a);
}

static void
dhcp_pcp_add(struct dhcp_pcp_servers *s, const struct in6_addr *a)
{
	size_t i;

	if (!dhcp_pcp_usable(a)) {
		s->discarded++;
		return;
	}
	for (i = 0; i < s->n; i++)
		if (IN6_ARE_ADDR_EQUAL(&s->addr[i], a)) {
			s->repeated++;
			return;
		}
	if (s->n == DHCP_PCP_MAX_ADDRS) {
		s->dropped++;
		return;
	}
	s->addr[s->n++] = *a;
}

/* RFC 7291 §4.1: the whole option is checked before anything is added. */
static enum dhcp_pcp_err
dhcp_pcp_check_v4(const uint8_t *buf, size_t len)
{
	size_t off = 0, list;

	if (len < DHCP_PCP_V4_MIN_LEN)
		return DHCP_PCP_V4_TOO_SHORT;
	while (off < len) {
		list = buf[off++];
		if (list == 0 || list % DHCP_PCP_V4_ADDR_LEN != 0)
			return DHCP_PCP_V4_LIST_LENGTH;
		if (list > len - off)
			return DHCP_PCP_V4_TRUNCATED;
		off += list;
	}
	return DHCP_PCP_OK;
}

enum dhcp_pcp_err
dhcp_pcp_decode_v4(const uint8_t *buf, size_t len, struct dhcp_pcp_servers *s)
{
	struct in_addr v4;
	struct in6_addr a;
	enum dhcp_pcp_err err;
	size_t off = 0, end;

	if (len > DHCP_PCP_OPTION_MAX)
		return DHCP_PCP_TOO_LONG;
	if ((err = dhcp_pcp_check_v4(buf, len)) != DHCP_PCP_OK)
		return err;
	while (off < len) {
		end = off + 1 + buf[off];
		/* each list is one server (§4.2); its addresses in order */
		s->servers++;
		for (off++; off < end; off += DHCP_PCP_V4_ADDR_LEN) {
			memcpy(&v4.s_addr, &buf[off], DHCP_PCP_V4_ADDR_LEN);
			pcp_addr_from_v4(&a, &v4);
			dhcp_pcp_add(s, &a);
		}
	}
	return DHCP_PCP_OK;
}

enum dhcp_pcp_err
dhcp_pcp_decode_v6(const uint8_t *buf, size_t len, struct dhcp_pcp_servers *s)
{
	struct in6_addr a;
	size_t off;

	if (len > DHCP_PCP_OPTION_MAX)
		return DHCP_PCP_TOO_LONG;
	if (len == 0 || len % DHCP_PCP_V6_ADDR_LEN != 0)
		return DHCP_PCP_V6_LENGTH;
	/* concatenated instances cannot be told apart: one server each
	   would be a guess, so the count is of the value handed over */
	s->servers++;
	for (off = 0; off < len; off += DHCP_PCP_V6_ADDR_LEN) {
		memcpy(&a, &buf[off], DHCP_PCP_V6_ADDR_LEN);
		dhcp_pcp_add(s, &a);
	}
	return DHCP_PCP_OK;
}
