/*
 * config.c - the strict pcp-iwfd.conf parser (STYLE.md habit 8).
 *
 * One schema table below names every key with its type, limits, flags
 * and default; parsing, defaults, the required check and config_print()
 * all walk it. To add a key: a field in struct iwfd_config, a row here,
 * a line in docs/pcp-iwfd.conf.5 and a golden test.
 *
 * The format: "key = value" a line, '#' to the end of a line is a comment,
 * blank lines and surrounding white space are ignored, list keys repeat.
 * Every error is collected as "FILE:LINE: message"; nothing stops at the
 * first one, so an operator fixes the file in one go.
 */
#include <sys/socket.h>
#include <sys/un.h>
#include <arpa/inet.h>
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"
#include "pcp_wire.h"
#include "util.h"

_Static_assert(sizeof(((struct sockaddr_un *)0)->sun_path) ==
    CONFIG_SOCKET_PATH_SIZE, "CONFIG_SOCKET_PATH_SIZE != sun_path");
/* Enum keys are stored as an int index into their word list. */
_Static_assert(sizeof(enum config_nat) == sizeof(int), "enum size");
_Static_assert(sizeof(enum config_third_party) == sizeof(int), "enum size");

#define CONFIG_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))
#define CONFIG_SHOW_MAX		60	/* value characters quoted in a message */
#define CONFIG_SHOW_SIZE	(CONFIG_SHOW_MAX * 4 + sizeof("\"...\""))
/* RFC 6887 §15 leaves lifetimes to policy; these are ours (conf.5). */
#define CONFIG_MIN_LIFETIME_MAX	(7 * 86400)
#define CONFIG_MAX_LIFETIME_MIN	120
#define CONFIG_MAX_LIFETIME_MAX	(UINT32_MAX - 1)
/* The liveness probe (pcp/upstream.h): no more than one ANNOUNCE a second,
   no longer than an hour of not knowing (grants are hours long). */
#define CONFIG_PROBE_INTERVAL_MAX	3600
/* The abuse limits' ceilings: more mappings than a gateway has ports
   for, more requests than one host could want (src/ratelimit.h). */
#define CONFIG_MAX_MAPPINGS_MAX		(1u << 24)
#define CONFIG_RATE_MAX			100000
#define CONFIG_RATE_BURST_MAX		1000000

enum config_type {
	CONFIG_T_IFNAME,	/* network interface name */
	CONFIG_T_BOOL,		/* yes | no */
	CONFIG_T_ENUM,		/* one of .words, stored as int index */
	CONFIG_T_UINT,		/* decimal, .min .. .max, 1, 2 or 4 bytes */
	CONFIG_T_UPSTREAM,	/* address, [v6]:port or v4:port */
	CONFIG_T_PATH,		/* absolute path */
	CONFIG_T_NFT_NAME,	/* nftables identifier */
	CONFIG_T_USER,		/* system user name */
	CONFIG_T_TEXT,		/* printable UTF-8, .max characters */
	CONFIG_T_PREFIX,	/* acl_prefix_parse(): ADDR[/LEN] */
	CONFIG_T_ACL_ALLOW,	/* acl_rule_parse() text */
	CONFIG_T_ACL_DENY,
	CONFIG_T_COUNT
};

#define CONFIG_F_LIST		0x01	/* repeatable */
#define CONFIG_F_REQUIRED	0x02
#define CONFIG_F_UNIQUE		0x04	/* list: each value at most once */
#define CONFIG_F_SHARED		0x08	/* list of the previous row */

struct config_key {
	const char		*name;
	enum config_type	 type;
	unsigned int		 flags;
	size_t			 offset;	/* value or first element */
	size_t			 size;		/* of the value or one element */
	size_t			 count_offset;	/* lists: their size_t count */
	size_t			 max_count;	/* lists */
	const char		*plural;	/* lists: "interfaces" */
	uint32_t		 min, max;	/* numbers; strings: max length */
	const char *const	*words;		/* enums, NULL-terminated */
	const char		*def;		/* default as text; NULL: none */
};

#define CONFIG_VALUE(field)						\
	.offset = offsetof(struct iwfd_config, field),			\
	.size = sizeof(((struct iwfd_config *)0)->field)
#define CONFIG_LIST(field, count)					\
	.offset = offsetof(struct iwfd_config, field),			\
	.size = sizeof(((struct iwfd_config *)0)->field[0]),		\
	.count_offset = offsetof(struct iwfd_config, count),		\
	.max_count = CONFIG_NITEMS(((struct iwfd_config *)0)->field)

static const char *const config_nat_words[] = { "local", "none", NULL };
static const char *const config_third_party_words[] = { "deny", "allow",
    NULL };

/* The schema, in the order config_print() writes the keys. */
static const struct config_key config_schema[] = {
	{ .name = "lan_interface", .type = CONFIG_T_IFNAME,
	  .flags = CONFIG_F_LIST | CONFIG_F_REQUIRED | CONFIG_F_UNIQUE,
	  CONFIG_LIST(lan_interface, n_lan_interface),
	  .plural = "interfaces" },
	{ .name = "wan_interface", .type = CONFIG_T_IFNAME,
	  .flags = CONFIG_F_REQUIRED, CONFIG_VALUE(wan_interface) },
	{ .name = "upstream_server", .type = CONFIG_T_UPSTREAM,
	  .flags = CONFIG_F_LIST | CONFIG_F_UNIQUE,
	  CONFIG_LIST(upstream_server, n_upstream_server),
	  .plural = "servers" },
	/* the default is UPSTREAM_PROBE_INTERVAL_MS */
	{ .name = "upstream_probe_interval", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(upstream_probe_interval), .min = 1,
	  .max = CONFIG_PROBE_INTERVAL_MAX, .def = "30" },
	/* RFC 6887 §8.1: the WAN default router as the server when the
	   DHCP client named none (upstream_server = dhcp only) */
	{ .name = "upstream_default_router", .type = CONFIG_T_BOOL,
	  CONFIG_VALUE(upstream_default_router), .def = "no" },
	{ .name = "nat", .type = CONFIG_T_ENUM, CONFIG_VALUE(nat),
	  .words = config_nat_words, .def = "local" },
	{ .name = "upnp", .type = CONFIG_T_BOOL, CONFIG_VALUE(upnp),
	  .def = "yes" },
	{ .name = "upnp_igd_version", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(upnp_igd_version), .min = 1, .max = 2, .def = "1" },
	{ .name = "upnp_port", .type = CONFIG_T_UINT, CONFIG_VALUE(upnp_port),
	  .min = 0, .max = UINT16_MAX, .def = "0" },
	{ .name = "upnp_friendly_name", .type = CONFIG_T_TEXT,
	  CONFIG_VALUE(upnp_friendly_name), .max = CONFIG_FRIENDLY_NAME_MAX,
	  .def = "pcp-iwfd Internet Gateway" },
	{ .name = "upnp_manufacturer", .type = CONFIG_T_TEXT,
	  CONFIG_VALUE(upnp_manufacturer), .max = CONFIG_FRIENDLY_NAME_MAX,
	  .def = "pcp-iwfd developers" },
	{ .name = "upnp_model_name", .type = CONFIG_T_TEXT,
	  CONFIG_VALUE(upnp_model_name), .max = CONFIG_FRIENDLY_NAME_MAX,
	  .def = "pcp-iwfd" },
	{ .name = "upnp_model_number", .type = CONFIG_T_TEXT,
	  CONFIG_VALUE(upnp_model_number), .max = CONFIG_FRIENDLY_NAME_MAX,
	  .def = "1" },
	{ .name = "upnp_serial", .type = CONFIG_T_TEXT,
	  CONFIG_VALUE(upnp_serial), .max = CONFIG_FRIENDLY_NAME_MAX,
	  .def = "00000001" },
	{ .name = "natpmp", .type = CONFIG_T_BOOL, CONFIG_VALUE(natpmp),
	  .def = "yes" },
	{ .name = "pcp", .type = CONFIG_T_BOOL, CONFIG_VALUE(pcp),
	  .def = "yes" },
	/* RFC 7648 §3.4: relaying unknown opcodes and options is the
	   default (P-16) and can be turned off (P-17). */
	{ .name = "relay_unknown", .type = CONFIG_T_BOOL,
	  CONFIG_VALUE(relay_unknown), .def = "yes" },
	/* RFC 6887 §13.1: THIRD_PARTY off unless the path is trusted. */
	{ .name = "third_party", .type = CONFIG_T_ENUM,
	  CONFIG_VALUE(third_party), .words = config_third_party_words,
	  .def = "deny" },
	/* ... and then only for these requesters (config_check_third_party) */
	{ .name = "third_party_host", .type = CONFIG_T_PREFIX,
	  .flags = CONFIG_F_LIST | CONFIG_F_UNIQUE,
	  CONFIG_LIST(third_party_host, n_third_party_host),
	  .plural = "third-party hosts" },
	{ .name = "max_mappings_per_host", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(max_mappings_per_host), .min = 1, .max = UINT16_MAX,
	  .def = "64" },
	/* Abuse limits (issue 8; conf.5): far above what any normal client
	   needs - a console walking a 200-entry listing, a lab creating
	   200 mappings at once - so that only a flood meets them. */
	{ .name = "max_mappings", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(max_mappings), .min = 0, .max = CONFIG_MAX_MAPPINGS_MAX,
	  .def = "65536" },
	{ .name = "rate_limit", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(rate_limit), .min = 0, .max = CONFIG_RATE_MAX,
	  .def = "50" },
	{ .name = "rate_burst", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(rate_burst), .min = 1, .max = CONFIG_RATE_BURST_MAX,
	  .def = "200" },
	{ .name = "min_lifetime", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(min_lifetime), .min = 1,
	  .max = CONFIG_MIN_LIFETIME_MAX, .def = "120" },
	{ .name = "max_lifetime", .type = CONFIG_T_UINT,
	  CONFIG_VALUE(max_lifetime), .min = CONFIG_MAX_LIFETIME_MIN,
	  .max = CONFIG_MAX_LIFETIME_MAX, .def = "86400" },
	{ .name = "state_file", .type = CONFIG_T_PATH,
	  CONFIG_VALUE(state_file), .def = "/var/lib/pcp-iwfd/state" },
	{ .name = "control_socket", .type = CONFIG_T_PATH,
	  CONFIG_VALUE(control_socket), .def = "/run/pcp-iwfd.sock" },
	{ .name = "nft_table", .type = CONFIG_T_NFT_NAME,
	  CONFIG_VALUE(nft_table), .max = CONFIG_NFT_TABLE_MAX,
	  .def = "pcp_iwfd" },
	{ .name = "user", .type = CONFIG_T_USER, CONFIG_VALUE(user),
	  .max = CONFIG_USER_MAX, .def = "pcp-iwfd" },
	/* the seccomp filter after the privilege drop (docs/security.md) */
	{ .name = "sandbox", .type = CONFIG_T_BOOL, CONFIG_VALUE(sandbox),
	  .def = "yes" },
	{ .name = "allow", .type = CONFIG_T_ACL_ALLOW, .flags = CONFIG_F_LIST,
	  CONFIG_LIST(acl, n_acl), .plural = "allow and deny rules" },
	{ .name = "deny", .type = CONFIG_T_ACL_DENY,
	  .flags = CONFIG_F_LIST | CONFIG_F_SHARED,
	  CONFIG_LIST(acl, n_acl), .plural = "allow and deny rules" },
};

#define CONFIG_NKEYS	CONFIG_NITEMS(config_schema)

/* One parse in progress. */
struct config_parse {
	const char		*name;
	struct iwfd_config	*cfg;
	struct config_errors	*errs;		/* NULL: applying defaults */
	char			*msg;		/* or: the one message, here */
	size_t			 msg_len;
	unsigned int		 line;
	unsigned int		 first_line[CONFIG_NKEYS];	/* 0: absent */
	unsigned int		 dhcp_line;	/* upstream_server = dhcp */
	unsigned int		 address_line;	/* first upstream address */
	bool			 bad[CONFIG_NKEYS];	/* some value failed */
};

typedef bool	(*config_parse_fn)(struct config_parse *,
		    const struct config_key *, const char *, void *);
typedef void	(*config_print_fn)(const struct config_key *, const void *,
		    FILE *);

static void	 config_error(struct config_parse *, unsigned int,
		    const char *, ...) __attribute__((format(printf, 3, 4)));
static void	 config_key_error(struct config_parse *,
		    const struct config_key *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

/* ---- messages ---- */

void
config_errors_init(struct config_errors *errs)
{
	errs->count = 0;
	errs->dropped = 0;
}

void
config_errors_print(const struct config_errors *errs, FILE *f)
{
	size_t i;

	for (i = 0; i < errs->count; i++)
		fprintf(f, "%s\n", errs->msg[i]);
	if (errs->dropped > 0)
		fprintf(f, "(%zu more errors not shown)\n", errs->dropped);
}

static void
config_error(struct config_parse *p, unsigned int line, const char *fmt, ...)
{
	char *out;
	va_list ap;
	int n;

	if (p->msg != NULL) {
		va_start(ap, fmt);
		vsnprintf(p->msg, p->msg_len, fmt, ap);
		va_end(ap);
		return;
	}
	if (p->errs == NULL)
		return;
	if (p->errs->count == CONFIG_ERRORS_MAX) {
		p->errs->dropped++;
		return;
	}
	out = p->errs->msg[p->errs->count++];
	if (line > 0)
		n = snprintf(out, CONFIG_ERROR_LEN, "%s:%u: ", p->name, line);
	else
		n = snprintf(out, CONFIG_ERROR_LEN, "%s: ", p->name);
	/* A very long file name leaves no room: keep what fits. */
	if (n < 0 || (size_t)n >= CONFIG_ERROR_LEN)
		return;
	va_start(ap, fmt);
	vsnprintf(out + n, CONFIG_ERROR_LEN - (size_t)n, fmt, ap);
	va_end(ap);
}

/* "FILE:LINE: key: message" for the line being parsed. */
static void
config_key_error(struct config_parse *p, const struct config_key *k,
    const char *fmt, ...)
{
	char text[CONFIG_ERROR_LEN];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(text, sizeof(text), fmt, ap);
	va_end(ap);
	config_error(p, p->line, "%s: %s", k->name, text);
}

/*
 * Text from the file as it may appear in a message: in quotes, bytes that
 * are not printable ASCII as \xNN (a terminal must not see them raw), cut
 * after CONFIG_SHOW_MAX characters.
 */
static const char *
config_show(const char *s, size_t n, char *buf)
{
	static const char hex[] = "0123456789abcdef";
	size_t i, o = 0;
	unsigned char c;

	buf[o++] = '"';
	for (i = 0; i < n && i < CONFIG_SHOW_MAX; i++) {
		c = (unsigned char)s[i];
		if (c < 0x20 || c > 0x7e || c == '"' || c == '\\') {
			buf[o++] = '\\';
			buf[o++] = 'x';
			buf[o++] = hex[c >> 4];
			buf[o++] = hex[c & 0xf];
		} else
			buf[o++] = (char)c;
	}
	if (i < n) {
		memcpy(&buf[o], "...", 3);
		o += 3;
	}
	buf[o++] = '"';
	buf[o] = '\0';
	return buf;
}

static const char *
config_show_str(const char *s, char *buf)
{
	return config_show(s, strlen(s), buf);
}

/* ---- value types: each parser writes dst only on success ---- */

static bool
config_is_space(char c)
{
	return c == ' ' || c == '\t' || c == '\r' || c == '\v' || c == '\f';
}

static bool
config_is_alpha(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static bool
config_is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static void
config_store_string(const struct config_key *k, const char *v, void *dst)
{
	memset(dst, 0, k->size);
	memcpy(dst, v, strlen(v));
}

/* Longest string the key accepts: its .max, or what its buffer holds. */
static size_t
config_string_max(const struct config_key *k)
{
	return k->max > 0 && k->max < k->size ? k->max : k->size - 1;
}

static bool
config_check_length(struct config_parse *p, const struct config_key *k,
    const char *v)
{
	char show[CONFIG_SHOW_SIZE];

	if (strlen(v) <= config_string_max(k))
		return true;
	config_key_error(p, k, "%s is longer than %zu characters",
	    config_show_str(v, show), config_string_max(k));
	return false;
}

/* Linux accepts almost any byte in a name; we accept what admins use. */
static bool
config_parse_ifname(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	const char *c;

	if (!config_check_length(p, k, v))
		return false;
	for (c = v; *c != '\0'; c++)
		if (!config_is_alpha(*c) && !config_is_digit(*c) &&
		    strchr("._-", *c) == NULL)
			break;
	if (*c != '\0' || strcmp(v, ".") == 0 || strcmp(v, "..") == 0) {
		config_key_error(p, k, "%s is not an interface name (letters, "
		    "digits, \".\", \"-\", \"_\")", config_show_str(v, show));
		return false;
	}
	config_store_string(k, v, dst);
	return true;
}

static bool
config_parse_bool(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	bool b;

	if (strcmp(v, "yes") == 0)
		b = true;
	else if (strcmp(v, "no") == 0)
		b = false;
	else {
		config_key_error(p, k, "%s is not one of yes, no",
		    config_show_str(v, show));
		return false;
	}
	memcpy(dst, &b, sizeof(b));
	return true;
}

static bool
config_parse_enum(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE], list[CONFIG_ERROR_LEN] = "";
	int i;

	for (i = 0; k->words[i] != NULL; i++)
		if (strcmp(v, k->words[i]) == 0) {
			memcpy(dst, &i, sizeof(i));
			return true;
		}
	for (i = 0; k->words[i] != NULL; i++) {
		if (i > 0)
			strncat(list, ", ", sizeof(list) - strlen(list) - 1);
		strncat(list, k->words[i], sizeof(list) - strlen(list) - 1);
	}
	config_key_error(p, k, "%s is not one of %s",
	    config_show_str(v, show), list);
	return false;
}

static bool
config_parse_uint(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	unsigned long long n;
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	if (!util_parse_decimal(v, &n)) {
		config_key_error(p, k, "%s is not an unsigned decimal number",
		    config_show_str(v, show));
		return false;
	}
	if (n < k->min) {
		config_key_error(p, k, "%s is below the minimum %u", v,
		    (unsigned int)k->min);
		return false;
	}
	if (n > k->max) {
		config_key_error(p, k, "%s is above the maximum %u",
		    strlen(v) > CONFIG_SHOW_MAX ? config_show_str(v, show) : v,
		    (unsigned int)k->max);
		return false;
	}
	switch (k->size) {
	case sizeof(u8):
		u8 = (uint8_t)n;
		memcpy(dst, &u8, sizeof(u8));
		break;
	case sizeof(u16):
		u16 = (uint16_t)n;
		memcpy(dst, &u16, sizeof(u16));
		break;
	default:
		u32 = (uint32_t)n;
		memcpy(dst, &u32, sizeof(u32));
		break;
	}
	return true;
}

static uint32_t
config_get_uint(const struct config_key *k, const void *src)
{
	uint8_t u8;
	uint16_t u16;
	uint32_t u32;

	switch (k->size) {
	case sizeof(u8):
		memcpy(&u8, src, sizeof(u8));
		return u8;
	case sizeof(u16):
		memcpy(&u16, src, sizeof(u16));
		return u16;
	default:
		memcpy(&u32, src, sizeof(u32));
		return u32;
	}
}

enum config_host {
	CONFIG_HOST_OK,
	CONFIG_HOST_NOT_ADDRESS,
	CONFIG_HOST_NOT_UNICAST,	/* unspecified, broadcast, multicast */
};

/* A unicast address of either family; IPv4 comes out IPv4-mapped. */
static enum config_host
config_parse_host(const char *host, bool v4_ok, bool v6_ok,
    struct in6_addr *out)
{
	struct in6_addr a;
	struct in_addr v4;
	uint32_t h;

	memset(&a, 0, sizeof(a));
	if (v4_ok && inet_pton(AF_INET, host, &v4) == 1)
		/* RFC 6887 §5: IPv4 travels IPv4-mapped. */
		pcp_addr_from_v4(&a, &v4);
	else if (!v6_ok || inet_pton(AF_INET6, host, &a) != 1)
		return CONFIG_HOST_NOT_ADDRESS;
	if (IN6_IS_ADDR_V4MAPPED(&a)) {
		pcp_addr_to_v4(&a, &v4);
		h = ntohl(v4.s_addr);
		if (h == INADDR_ANY || h == INADDR_BROADCAST ||
		    IN_MULTICAST(h))
			return CONFIG_HOST_NOT_UNICAST;
	} else if (IN6_IS_ADDR_UNSPECIFIED(&a) || IN6_IS_ADDR_MULTICAST(&a))
		return CONFIG_HOST_NOT_UNICAST;
	*out = a;
	return CONFIG_HOST_OK;
}

/* The two halves of an upstream_server value and the families allowed. */
struct config_hostport {
	char		 host[INET6_ADDRSTRLEN];
	const char	*port;		/* NULL: none given */
	bool		 v4_ok, v6_ok;
};

/*
 * "192.0.2.1", "192.0.2.1:5351", "2001:db8::1", "[2001:db8::1]" or
 * "[2001:db8::1]:5351". A bare IPv6 address takes no port: its colons
 * would make "2001:db8::1:5351" ambiguous.
 */
static bool
config_split_hostport(const char *v, struct config_hostport *hp)
{
	const char *end = v + strlen(v), *colon = strchr(v, ':');

	hp->port = NULL;
	hp->v4_ok = hp->v6_ok = true;
	if (v[0] == '[') {
		v++;
		end = strchr(v, ']');
		if (end == NULL || (end[1] != '\0' && end[1] != ':'))
			return false;
		if (end[1] == ':')
			hp->port = end + 2;
		hp->v4_ok = false;
	} else if (colon != NULL && strchr(colon + 1, ':') == NULL) {
		end = colon;
		hp->port = colon + 1;
		hp->v6_ok = false;
	}
	if ((size_t)(end - v) >= sizeof(hp->host))
		return false;
	memcpy(hp->host, v, (size_t)(end - v));
	hp->host[end - v] = '\0';
	return true;
}

static bool
config_parse_upstream(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	struct config_hostport hp;
	unsigned long long n = PCP_SERVER_PORT;
	struct config_upstream u;
	enum config_host h = CONFIG_HOST_NOT_ADDRESS;

	memset(&u, 0, sizeof(u));
	if (config_split_hostport(v, &hp))
		h = config_parse_host(hp.host, hp.v4_ok, hp.v6_ok, &u.addr);
	else
		memcpy(hp.host, "", 1);
	if (h == CONFIG_HOST_NOT_ADDRESS && !hp.v4_ok &&
	    config_parse_host(hp.host, true, false, &u.addr) == CONFIG_HOST_OK)
		config_key_error(p, k, "%s: only IPv6 addresses go in brackets",
		    config_show_str(v, show));
	else if (h == CONFIG_HOST_NOT_ADDRESS)
		config_key_error(p, k, "%s is not an IPv4 or IPv6 address",
		    config_show_str(hp.host[0] != '\0' ? hp.host : v, show));
	else if (h == CONFIG_HOST_NOT_UNICAST)
		config_key_error(p, k, "%s is not a unicast address",
		    config_show_str(hp.host, show));
	if (h != CONFIG_HOST_OK)
		return false;
	if (hp.port != NULL && (!util_parse_decimal(hp.port, &n) || n == 0 ||
	    n > UINT16_MAX)) {
		config_key_error(p, k, "port %s is not in 1..65535",
		    config_show_str(hp.port, show));
		return false;
	}
	u.port = (uint16_t)n;
	memcpy(dst, &u, sizeof(u));
	return true;
}

static bool
config_parse_path(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	const char *c;

	/* The daemon changes directory to / and may chroot later. */
	if (v[0] != '/') {
		config_key_error(p, k, "%s is not an absolute path",
		    config_show_str(v, show));
		return false;
	}
	if (!config_check_length(p, k, v))
		return false;
	for (c = v; *c != '\0'; c++)
		if ((unsigned char)*c < 0x20 || *c == 0x7f) {
			config_key_error(p, k, "%s contains a control "
			    "character", config_show_str(v, show));
			return false;
		}
	config_store_string(k, v, dst);
	return true;
}

/* nft(8) identifiers: a letter, then letters, digits and '_'. */
static bool
config_parse_nft_name(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	const char *c;

	if (!config_check_length(p, k, v))
		return false;
	for (c = v; *c != '\0'; c++)
		if (!config_is_alpha(*c) && *c != '_' &&
		    (c == v || !config_is_digit(*c)))
			break;
	if (*c != '\0' || !config_is_alpha(v[0])) {
		config_key_error(p, k, "%s is not a table name (a letter, "
		    "then letters, digits, \"_\")", config_show_str(v, show));
		return false;
	}
	config_store_string(k, v, dst);
	return true;
}

/* useradd's portable set: a letter or '_', then also digits, '.', '-'. */
static bool
config_parse_user(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	const char *c;

	if (!config_check_length(p, k, v))
		return false;
	for (c = v; *c != '\0'; c++)
		if (!config_is_alpha(*c) && *c != '_' && (c == v ||
		    (!config_is_digit(*c) && *c != '.' && *c != '-')))
			break;
	if (*c != '\0') {
		config_key_error(p, k, "%s is not a user name (a letter or "
		    "\"_\", then letters, digits, \".\", \"-\", \"_\")",
		    config_show_str(v, show));
		return false;
	}
	config_store_string(k, v, dst);
	return true;
}

/*
 * Code points in s when it is well-formed UTF-8 (RFC 3629: no overlong
 * forms, no surrogates, at most U+10FFFF) without C0, DEL or C1 control
 * characters; -1 otherwise. The name ends up in XML and on screens.
 */
static long
config_utf8_chars(const char *s)
{
	static const uint32_t min_cp[] = { 0, 0x80, 0x800, 0x10000 };
	const unsigned char *u = (const unsigned char *)s;
	uint32_t cp;
	long n;
	int extra, i;

	for (n = 0; *u != '\0'; n++) {
		if (*u < 0x80) {
			cp = *u;
			extra = 0;
		} else if ((*u & 0xe0) == 0xc0) {
			cp = *u & 0x1f;
			extra = 1;
		} else if ((*u & 0xf0) == 0xe0) {
			cp = *u & 0x0f;
			extra = 2;
		} else if ((*u & 0xf8) == 0xf0) {
			cp = *u & 0x07;
			extra = 3;
		} else
			return -1;
		/* The NUL terminator fails this test: no overread. */
		for (i = 1; i <= extra; i++) {
			if ((u[i] & 0xc0) != 0x80)
				return -1;
			cp = cp << 6 | (u[i] & 0x3f);
		}
		if (cp < min_cp[extra] || cp > 0x10ffff ||
		    (cp >= 0xd800 && cp <= 0xdfff) || cp < 0x20 ||
		    (cp >= 0x7f && cp <= 0x9f))
			return -1;
		u += extra + 1;
	}
	return n;
}

static bool
config_parse_text(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char show[CONFIG_SHOW_SIZE];
	long n = config_utf8_chars(v);

	if (n < 0) {
		config_key_error(p, k, "%s is not printable UTF-8",
		    config_show_str(v, show));
		return false;
	}
	if ((unsigned long)n > k->max || strlen(v) >= k->size) {
		config_key_error(p, k, "%s is longer than %u characters",
		    config_show_str(v, show), (unsigned int)k->max);
		return false;
	}
	config_store_string(k, v, dst);
	return true;
}

/* The INTADDR[/LEN] of an ACL rule, by the same parser (acl.h). */
static bool
config_parse_prefix(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char err[CONFIG_ERROR_LEN];
	struct acl_prefix a;

	if (!acl_prefix_parse(v, &a, err, sizeof(err))) {
		config_key_error(p, k, "%s", err);
		return false;
	}
	memcpy(dst, &a, sizeof(a));
	return true;
}

static bool
config_parse_acl(struct config_parse *p, const struct config_key *k,
    const char *v, void *dst)
{
	char err[CONFIG_ERROR_LEN];
	struct acl_rule r;

	if (!acl_rule_parse(v, k->type == CONFIG_T_ACL_ALLOW, &r, err,
	    sizeof(err))) {
		config_key_error(p, k, "%s", err);
		return false;
	}
	memcpy(dst, &r, sizeof(r));
	return true;
}

/* ---- printing, one "key = value" line ---- */

static void
config_print_string(const struct config_key *k, const void *src, FILE *f)
{
	const char *s = src;

	if (s[0] == '\0')
		fprintf(f, "# %s is not set\n", k->name);
	else
		fprintf(f, "%s = %s\n", k->name, s);
}

static void
config_print_bool(const struct config_key *k, const void *src, FILE *f)
{
	bool b;

	memcpy(&b, src, sizeof(b));
	fprintf(f, "%s = %s\n", k->name, b ? "yes" : "no");
}

static void
config_print_enum(const struct config_key *k, const void *src, FILE *f)
{
	int i, n;

	memcpy(&i, src, sizeof(i));
	for (n = 0; k->words[n] != NULL; n++)
		continue;
	fprintf(f, "%s = %s\n", k->name, i >= 0 && i < n ? k->words[i] : "?");
}

static void
config_print_uint(const struct config_key *k, const void *src, FILE *f)
{
	fprintf(f, "%s = %u\n", k->name,
	    (unsigned int)config_get_uint(k, src));
}

static void
config_print_upstream(const struct config_key *k, const void *src, FILE *f)
{
	char text[INET6_ADDRSTRLEN];
	struct config_upstream u;

	memcpy(&u, src, sizeof(u));
	if (IN6_IS_ADDR_V4MAPPED(&u.addr)) {
		inet_ntop(AF_INET, &u.addr.s6_addr[12], text, sizeof(text));
		fprintf(f, "%s = %s:%u\n", k->name, text,
		    (unsigned int)u.port);
	} else {
		inet_ntop(AF_INET6, &u.addr, text, sizeof(text));
		fprintf(f, "%s = [%s]:%u\n", k->name, text,
		    (unsigned int)u.port);
	}
}

static void
config_print_prefix(const struct config_key *k, const void *src, FILE *f)
{
	char text[ACL_PREFIX_TEXT_MAX];
	struct acl_prefix a;

	memcpy(&a, src, sizeof(a));
	acl_prefix_format(&a, text, sizeof(text));
	fprintf(f, "%s = %s\n", k->name, text);
}

static void
config_print_acl(const struct config_key *k, const void *src, FILE *f)
{
	char text[ACL_RULE_TEXT_MAX];
	struct acl_rule r;

	(void)k;	/* allow and deny share one list: the rule knows */
	memcpy(&r, src, sizeof(r));
	acl_rule_format(&r, text, sizeof(text));
	fprintf(f, "%s = %s\n", r.allow ? "allow" : "deny", text);
}

static const struct {
	config_parse_fn	 parse;
	config_print_fn	 print;
} config_types[CONFIG_T_COUNT] = {
	[CONFIG_T_IFNAME] = { config_parse_ifname, config_print_string },
	[CONFIG_T_BOOL] = { config_parse_bool, config_print_bool },
	[CONFIG_T_ENUM] = { config_parse_enum, config_print_enum },
	[CONFIG_T_UINT] = { config_parse_uint, config_print_uint },
	[CONFIG_T_UPSTREAM] = { config_parse_upstream, config_print_upstream },
	[CONFIG_T_PATH] = { config_parse_path, config_print_string },
	[CONFIG_T_NFT_NAME] = { config_parse_nft_name, config_print_string },
	[CONFIG_T_USER] = { config_parse_user, config_print_string },
	[CONFIG_T_TEXT] = { config_parse_text, config_print_string },
	[CONFIG_T_PREFIX] = { config_parse_prefix, config_print_prefix },
	[CONFIG_T_ACL_ALLOW] = { config_parse_acl, config_print_acl },
	[CONFIG_T_ACL_DENY] = { config_parse_acl, config_print_acl },
};

/* ---- lines ---- */

static size_t *
config_list_count(struct iwfd_config *cfg, const struct config_key *k)
{
	return (size_t *)(void *)((unsigned char *)cfg + k->count_offset);
}

/*
 * upstream_server = dhcp: not an element of the list but a flag; the
 * servers come from the DHCP client at run time (RFC 7291). The mix with
 * addresses is checked after the whole file (config_check_dhcp).
 */
static void
config_apply_dhcp(struct config_parse *p, size_t row)
{
	const struct config_key *k = &config_schema[row];

	if (p->dhcp_line != 0) {
		config_key_error(p, k, "\"%s\" is listed twice",
		    CONFIG_UPSTREAM_DHCP);
		p->bad[row] = true;
		return;
	}
	p->dhcp_line = p->line;
	p->cfg->upstream_dhcp = true;
}

/* Parse one value of schema row `row` into the configuration. */
static void
config_apply(struct config_parse *p, size_t row, const char *value)
{
	const struct config_key *k = &config_schema[row];
	unsigned char *base = (unsigned char *)p->cfg, *slot;
	size_t *count, i;
	char show[CONFIG_SHOW_SIZE];

	if (k->type == CONFIG_T_UPSTREAM &&
	    strcmp(value, CONFIG_UPSTREAM_DHCP) == 0) {
		config_apply_dhcp(p, row);
		return;
	}
	if (!(k->flags & CONFIG_F_LIST)) {
		if (!config_types[k->type].parse(p, k, value, base + k->offset))
			p->bad[row] = true;
		return;
	}
	count = config_list_count(p->cfg, k);
	if (*count >= k->max_count) {
		config_key_error(p, k, "more than %zu %s", k->max_count,
		    k->plural);
		p->bad[row] = true;
		return;
	}
	/* Elements are zeroed before parsing so that memcmp() compares. */
	slot = base + k->offset + *count * k->size;
	memset(slot, 0, k->size);
	if (!config_types[k->type].parse(p, k, value, slot)) {
		p->bad[row] = true;
		return;
	}
	for (i = 0; (k->flags & CONFIG_F_UNIQUE) && i < *count; i++)
		if (memcmp(base + k->offset + i * k->size, slot,
		    k->size) == 0) {
			config_key_error(p, k, "%s is listed twice",
			    config_show_str(value, show));
			memset(slot, 0, k->size);
			p->bad[row] = true;
			return;
		}
	(*count)++;
	if (k->type == CONFIG_T_UPSTREAM && p->address_line == 0)
		p->address_line = p->line;
}

static size_t
config_key_index(const char *name, size_t len)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if (strlen(config_schema[i].name) == len &&
		    memcmp(config_schema[i].name, name, len) == 0)
			return i;
	return CONFIG_NKEYS;
}

/* Drop white space at both ends of s[0..*n). */
static const char *
config_trim(const char *s, size_t *n)
{
	while (*n > 0 && config_is_space(s[0])) {
		s++;
		(*n)--;
	}
	while (*n > 0 && config_is_space(s[*n - 1]))
		(*n)--;
	return s;
}

static void
config_parse_line(struct config_parse *p, const char *s, size_t n)
{
	char show[CONFIG_SHOW_SIZE], value[CONFIG_VALUE_MAX + 1];
	const char *hash, *eq, *key, *val;
	size_t keylen, vallen, row;
	const struct config_key *k;

	if ((hash = memchr(s, '#', n)) != NULL)
		n = (size_t)(hash - s);
	s = config_trim(s, &n);
	if (n == 0)
		return;
	if (memchr(s, '\0', n) != NULL) {
		config_error(p, p->line, "NUL character in line");
		return;
	}
	if ((eq = memchr(s, '=', n)) == NULL) {
		config_error(p, p->line, "expected \"key = value\", got %s",
		    config_show(s, n, show));
		return;
	}
	keylen = (size_t)(eq - s);
	key = config_trim(s, &keylen);
	vallen = n - (size_t)(eq + 1 - s);
	val = config_trim(eq + 1, &vallen);
	if (keylen == 0) {
		config_error(p, p->line, "missing key before \"=\"");
		return;
	}
	if ((row = config_key_index(key, keylen)) == CONFIG_NKEYS) {
		config_error(p, p->line, "unknown key %s",
		    config_show(key, keylen, show));
		return;
	}
	k = &config_schema[row];
	if (vallen == 0) {
		config_key_error(p, k, "empty value");
		return;
	}
	if (vallen > CONFIG_VALUE_MAX) {
		config_key_error(p, k, "value is longer than %d characters",
		    CONFIG_VALUE_MAX);
		return;
	}
	if (!(k->flags & CONFIG_F_LIST) && p->first_line[row] != 0) {
		config_key_error(p, k, "already set on line %u",
		    p->first_line[row]);
		return;
	}
	if (p->first_line[row] == 0)
		p->first_line[row] = p->line;
	memcpy(value, val, vallen);
	value[vallen] = '\0';
	config_apply(p, row, value);
}

/* ---- checks across keys, after the whole file ---- */

static void
config_check_lifetimes(struct config_parse *p)
{
	size_t lo = config_key_index("min_lifetime", strlen("min_lifetime"));
	size_t hi = config_key_index("max_lifetime", strlen("max_lifetime"));
	unsigned int line;

	if (p->bad[lo] || p->bad[hi] ||
	    p->cfg->min_lifetime <= p->cfg->max_lifetime)
		return;
	/* Point at whichever of the two came last in the file. */
	line = p->first_line[lo] > p->first_line[hi] ? p->first_line[lo] :
	    p->first_line[hi];
	config_error(p, line, "min_lifetime %u is above max_lifetime %u",
	    (unsigned int)p->cfg->min_lifetime,
	    (unsigned int)p->cfg->max_lifetime);
}

/* INTERFACE.md: nat = none sends THIRD_PARTY upstream; no upstream, no
   one to send it to. */
static void
config_check_nat(struct config_parse *p)
{
	size_t nat = config_key_index("nat", strlen("nat"));
	size_t up = config_key_index("upstream_server",
	    strlen("upstream_server"));

	if (p->bad[nat] || p->bad[up] || p->cfg->nat != CONFIG_NAT_NONE ||
	    config_has_upstream(p->cfg))
		return;
	config_error(p, p->first_line[nat],
	    "nat = none needs an upstream_server");
}

/*
 * upstream_server is either "dhcp" or a list of addresses: a fixed server
 * next to discovered ones would leave the order (RFC 7488 §3) to chance.
 * The error points at whichever of the two came last. The default router
 * fallback (RFC 6887 §8.1) is for discovery only: with addresses there
 * always is a configured server, without any the gateway is the last NAT.
 */
static void
config_check_dhcp(struct config_parse *p)
{
	size_t dr = config_key_index("upstream_default_router",
	    strlen("upstream_default_router"));

	if (p->dhcp_line != 0 && p->address_line != 0)
		config_error(p, p->dhcp_line > p->address_line ? p->dhcp_line :
		    p->address_line, "upstream_server: \"%s\" and addresses "
		    "do not mix (%s on line %u, an address on line %u)",
		    CONFIG_UPSTREAM_DHCP, CONFIG_UPSTREAM_DHCP, p->dhcp_line,
		    p->address_line);
	if (!p->bad[dr] && p->cfg->upstream_default_router &&
	    !p->cfg->upstream_dhcp)
		config_error(p, p->first_line[dr], "upstream_default_router: "
		    "yes needs upstream_server = %s", CONFIG_UPSTREAM_DHCP);
}

/*
 * RFC 6887 §13.1 (S-11, X-03): third-party requests are for a trusted
 * network only, so allow names who may send them; and a third_party_host
 * with deny would look like a permission that is not there.
 */
static void
config_check_third_party(struct config_parse *p)
{
	size_t tp = config_key_index("third_party", strlen("third_party"));
	size_t hosts = config_key_index("third_party_host",
	    strlen("third_party_host"));

	if (p->bad[tp] || p->bad[hosts])
		return;
	if (p->cfg->third_party == CONFIG_THIRD_PARTY_ALLOW &&
	    p->cfg->n_third_party_host == 0)
		config_error(p, p->first_line[tp], "third_party = allow needs "
		    "third_party_host lines naming who may; third_party_host "
		    "= 192.168.1.0/24 for the whole LAN");
	if (p->cfg->third_party == CONFIG_THIRD_PARTY_DENY &&
	    p->cfg->n_third_party_host > 0)
		config_error(p, p->first_line[hosts], "third_party_host has "
		    "no effect with third_party = deny; set third_party = "
		    "allow or remove the line");
}

/* Split horizon: the WAN must never be served as a LAN. */
static void
config_check_interfaces(struct config_parse *p)
{
	size_t wan = config_key_index("wan_interface", strlen("wan_interface"));
	char show[CONFIG_SHOW_SIZE];
	size_t i;

	if (p->cfg->wan_interface[0] == '\0')
		return;
	for (i = 0; i < p->cfg->n_lan_interface; i++)
		if (strcmp(p->cfg->lan_interface[i],
		    p->cfg->wan_interface) == 0)
			config_error(p, p->first_line[wan], "wan_interface: "
			    "%s is also a lan_interface",
			    config_show_str(p->cfg->wan_interface, show));
}

static void
config_check_required(struct config_parse *p)
{
	size_t i;

	for (i = 0; i < CONFIG_NKEYS; i++)
		if ((config_schema[i].flags & CONFIG_F_REQUIRED) &&
		    p->first_line[i] == 0)
			config_error(p, 0, "missing required key \"%s\"",
			    config_schema[i].name);
}

/* ---- entry points ---- */

void
config_defaults(struct iwfd_config *cfg)
{
	struct config_parse p;
	size_t i;

	memset(cfg, 0, sizeof(*cfg));
	memset(&p, 0, sizeof(p));
	p.name = "defaults";
	p.cfg = cfg;
	for (i = 0; i < CONFIG_NKEYS; i++)
		if (config_schema[i].def != NULL)
			config_apply(&p, i, config_schema[i].def);
}

int
config_parse_buffer(const char *name, const char *text, size_t len,
    struct iwfd_config *cfg, struct config_errors *errs)
{
	struct config_parse p;
	const char *line = text, *end = text + len, *nl;

	config_defaults(cfg);
	config_errors_init(errs);
	memset(&p, 0, sizeof(p));
	p.name = name;
	p.cfg = cfg;
	p.errs = errs;
	while (len > 0 && line < end) {
		nl = memchr(line, '\n', (size_t)(end - line));
		if (nl == NULL)
			nl = end;
		p.line++;
		config_parse_line(&p, line, (size_t)(nl - line));
		if (nl == end)
			break;
		line = nl + 1;
	}
	config_check_lifetimes(&p);
	config_check_nat(&p);
	config_check_dhcp(&p);
	config_check_interfaces(&p);
	config_check_third_party(&p);
	config_check_required(&p);
	return errs->count > 0 || errs->dropped > 0 ? -1 : 0;
}

int
config_parse_file(const char *path, struct iwfd_config *cfg,
    struct config_errors *errs)
{
	struct config_parse p;
	FILE *f;
	char *buf;
	size_t len = 0;
	int rc, saved;

	memset(&p, 0, sizeof(p));
	p.name = path;
	p.cfg = cfg;
	p.errs = errs;
	config_defaults(cfg);
	config_errors_init(errs);
	if ((f = fopen(path, "re")) == NULL) {
		config_error(&p, 0, "%s", strerror(errno));
		return -1;
	}
	/* One byte more than allowed tells a file that is too big. */
	if ((buf = malloc(CONFIG_FILE_MAX + 1)) == NULL) {
		config_error(&p, 0, "%s", strerror(errno));
		fclose(f);
		return -1;
	}
	len = fread(buf, 1, CONFIG_FILE_MAX + 1, f);
	saved = errno;
	if (ferror(f)) {
		config_error(&p, 0, "%s", strerror(saved));
		rc = -1;
	} else if (len > CONFIG_FILE_MAX) {
		config_error(&p, 0, "larger than %d bytes", CONFIG_FILE_MAX);
		rc = -1;
	} else
		rc = config_parse_buffer(path, buf, len, cfg, errs);
	free(buf);
	fclose(f);
	return rc;
}

bool
config_parse_server(const char *text, struct config_upstream *out, char *err,
    size_t errlen)
{
	size_t row = config_key_index("upstream_server",
	    strlen("upstream_server"));
	struct config_parse p;
	struct config_upstream u;

	memset(&p, 0, sizeof(p));
	p.name = "";
	p.msg = err;
	p.msg_len = errlen;
	if (errlen > 0)
		err[0] = '\0';
	memset(&u, 0, sizeof(u));	/* compared with memcmp by callers */
	if (!config_parse_upstream(&p, &config_schema[row], text, &u))
		return false;
	*out = u;
	return true;
}

bool
config_has_upstream(const struct iwfd_config *cfg)
{
	return cfg->n_upstream_server > 0 || cfg->upstream_dhcp;
}

/* An empty list still shows in the output, as a comment naming its keys. */
static void
config_print_empty(size_t row, FILE *f)
{
	size_t i;

	fprintf(f, "# %s", config_schema[row].name);
	for (i = row + 1; i < CONFIG_NKEYS &&
	    (config_schema[i].flags & CONFIG_F_SHARED); i++)
		fprintf(f, ", %s", config_schema[i].name);
	fprintf(f, ": none\n");
}

void
config_print(const struct iwfd_config *cfg, FILE *f)
{
	const unsigned char *base = (const unsigned char *)cfg;
	const struct config_key *k;
	size_t i, j, count;

	for (i = 0; i < CONFIG_NKEYS; i++) {
		k = &config_schema[i];
		if (k->flags & CONFIG_F_SHARED)
			continue;	/* printed with the row it shares */
		if (!(k->flags & CONFIG_F_LIST)) {
			config_types[k->type].print(k, base + k->offset, f);
			continue;
		}
		memcpy(&count, base + k->count_offset, sizeof(count));
		if (k->type == CONFIG_T_UPSTREAM && cfg->upstream_dhcp)
			fprintf(f, "%s = %s\n", k->name, CONFIG_UPSTREAM_DHCP);
		else if (count == 0)
			config_print_empty(i, f);
		for (j = 0; j < count && j < k->max_count; j++)
			config_types[k->type].print(k,
			    base + k->offset + j * k->size, f);
	}
}
