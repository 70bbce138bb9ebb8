/*
 * state.c - the state file: pure parse and format, durable write, load,
 * and the conversions to and from the mapping table (see state.h; the
 * format is documented in docs/state.md).
 */
#include <sys/stat.h>
#include <sys/types.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "log.h"
#include "pcp_wire.h"
#include "state.h"
#include "table.h"
#include "util.h"

#define STATE_TMP_SUFFIX	".tmp"
#define STATE_CORRUPT_SUFFIX	".corrupt-"
/* Tries of <path>.corrupt-<time>-<n> when the plain name exists. */
#define STATE_CORRUPT_TRIES	100
/* The longest line state_format writes: a PEER line with four IPv6
   addresses and a description of MAP_DESCRIPTION_MAX bytes all escaped. */
#define STATE_LINE_MAX		1024
#define STATE_FIELDS_MAX	24
#define STATE_ESCAPED_BYTE	3	/* %XX */
#define STATE_HEX_DIGITS	16
#define STATE_NONE		"-"	/* an absent value */
#define STATE_LEASE_INF_TEXT	"inf"	/* a lease that never ends */
/* FNV-1a, 64 bits: the end line's checksum of everything before it. */
#define STATE_FNV_OFFSET	UINT64_C(0xcbf29ce484222325)
#define STATE_FNV_PRIME		UINT64_C(0x100000001b3)
#define STATE_MS_PER_S		1000

/* Fields of a version-2 map line after the keyword; a peer line has two
   more (remote address and port) before the description. Version 1 has
   no SF_LEASE: the fields after it come one place earlier. */
enum state_field {
	SF_PROTO = 1, SF_INT_ADDR, SF_INT_PORT, SF_EXT_PORT, SF_OUTER_ADDR,
	SF_OUTER_PORT, SF_NONCE, SF_ORIGIN, SF_REQUESTER, SF_REQ_PORT,
	SF_FLAGS, SF_UPSTREAM, SF_LIFETIME, SF_REQUESTED, SF_EXPIRY,
	SF_LEASE, SF_MAP_DESC, SF_MAP_COUNT = SF_MAP_DESC + 1,
	SF_PEER_ADDR = SF_MAP_DESC, SF_PEER_PORT, SF_PEER_DESC,
	SF_PEER_COUNT
};
#define STATE_UPSTREAM_FIELDS	6	/* upstream i addr port epoch age */

/* MAPPING_F_* as written; MAPPING_F_PEER is the line type instead, and
   MAPPING_F_RENEW (the table's note that expiry is a renewal point) is
   never written: a record's expiry is always the real end. */
static const struct {
	const char	*name;
	uint8_t		 bit;
} state_flag_names[] = {
	{ "prefer-failure",	MAPPING_F_PREFER_FAILURE },
	{ "third-party",	MAPPING_F_THIRD_PARTY },
	{ "any-port",		MAPPING_F_ANY_PORT },
	{ "static",		MAPPING_F_STATIC },
	{ "was-granted",	MAPPING_F_WAS_GRANTED },
};
#define STATE_FLAG_NAMES \
	(sizeof(state_flag_names) / sizeof(state_flag_names[0]))

/* ---- errors -------------------------------------------------------------- */

void
state_errors_init(struct state_errors *e)
{
	e->count = 0;
	e->dropped = 0;
}

static void __attribute__((format(printf, 2, 3)))
state_error(struct state_errors *e, const char *fmt, ...)
{
	va_list ap;

	if (e == NULL)
		return;
	if (e->count == STATE_ERRORS_MAX) {
		e->dropped++;
		return;
	}
	va_start(ap, fmt);
	(void)vsnprintf(e->msg[e->count++], STATE_ERROR_LEN, fmt, ap);
	va_end(ap);
}

void
state_errors_print(const struct state_errors *e, FILE *f)
{
	size_t i;

	for (i = 0; i < e->count; i++)
		fprintf(f, "%s\n", e->msg[i]);
	if (e->dropped > 0)
		fprintf(f, "(%zu more errors)\n", e->dropped);
}

/* ---- the image ----------------------------------------------------------- */

void
state_image_init(struct state_image *img)
{
	memset(img, 0, sizeof(*img));
}

void
state_image_free(struct state_image *img)
{
	free(img->rec);
	state_image_init(img);
}

int
state_image_add(struct state_image *img, const struct state_record *r)
{
	struct state_record *p;
	size_t cap;

	if (img->count == img->cap) {
		cap = img->cap == 0 ? 64 : img->cap * 2;
		if (cap < img->cap ||
		    (p = reallocarray(img->rec, cap, sizeof(*p))) == NULL)
			return -1;
		img->rec = p;
		img->cap = cap;
	}
	img->rec[img->count++] = *r;
	return 0;
}

/* ---- small codecs -------------------------------------------------------- */

static uint64_t
state_fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= STATE_FNV_PRIME;
	}
	return h;
}

static void
state_hex_encode(const uint8_t *in, size_t len, char *out)
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < len; i++) {
		out[2 * i] = digits[in[i] >> 4];
		out[2 * i + 1] = digits[in[i] & 0xf];
	}
	out[2 * len] = '\0';
}

/* A byte the description field carries as is; the rest is %XX, so the
   field has no space, no control byte and is never the bare "-". */
static bool
state_desc_plain(uint8_t c)
{
	return c > ' ' && c < 0x7f && c != '%';
}

static void
state_desc_encode(const char *desc, char *out)
{
	static const char digits[] = "0123456789ABCDEF";
	const uint8_t *p = (const uint8_t *)desc;

	if (*p == '\0') {
		strcpy(out, STATE_NONE);
		return;
	}
	if (strcmp(desc, STATE_NONE) == 0) {
		strcpy(out, "%2D");
		return;
	}
	for (; *p != '\0'; p++) {
		if (state_desc_plain(*p)) {
			*out++ = (char)*p;
			continue;
		}
		*out++ = '%';
		*out++ = digits[*p >> 4];
		*out++ = digits[*p & 0xf];
	}
	*out = '\0';
}

static bool
state_desc_decode(const char *s, char *out, const char **why)
{
	size_t n = 0;
	int hi, lo;

	if (strcmp(s, STATE_NONE) == 0) {
		out[0] = '\0';
		return true;
	}
	for (; *s != '\0'; s++) {
		if (n == MAP_DESCRIPTION_MAX) {
			*why = "description longer than 128 bytes";
			return false;
		}
		if (*s != '%') {
			out[n++] = *s;
			continue;
		}
		if ((hi = util_hex_digit(s[1])) < 0 || s[2] == '\0' ||
		    (lo = util_hex_digit(s[2])) < 0) {
			*why = "bad %XX escape in description";
			return false;
		}
		if (hi == 0 && lo == 0) {
			*why = "description contains a NUL byte";
			return false;
		}
		out[n++] = (char)(hi << 4 | lo);
		s += 2;
	}
	out[n] = '\0';
	return true;
}

static bool
state_number(const char *s, unsigned long long max, unsigned long long *v)
{
	return util_parse_decimal(s, v) && *v <= max;
}

/* ---- record rules (shared by parse, format and the table) -------------- */

static bool
state_record_is_peer(const struct state_record *r)
{
	return (r->flags & MAPPING_F_PEER) != 0;
}

/*
 * The combinations the table never makes; NULL when r is valid. n_upstream
 * bounds the upstream index.
 */
static const char *
state_record_check(const struct state_record *r, size_t n_upstream)
{
	bool peer = state_record_is_peer(r);
	uint8_t known = MAPPING_F_PEER;
	size_t i;

	for (i = 0; i < STATE_FLAG_NAMES; i++)
		known |= state_flag_names[i].bit;
	if ((r->flags & ~known) != 0)
		return "unknown flag bits";
	if (r->origin >= MAP_ORIGIN_COUNT)
		return "unknown origin";
	/* RFC 6887 §11.1: protocol 0 (all) has internal port 0 */
	if (r->protocol == 0 && r->internal_port != 0)
		return "protocol 0 needs internal port 0";
	/* the table never adds external port 0 (table_add) */
	if (r->ext_port == 0)
		return "external port 0";
	/* RFC 6887 §11.3: external UDP 5350/5351 are never mapped */
	if (!peer && table_port_reserved(r->protocol, r->ext_port))
		return "reserved external port (RFC 6887 §11.3)";
	if ((r->flags & MAPPING_F_STATIC) != 0 &&
	    r->origin != MAP_ORIGIN_CONTROL)
		return "a static mapping is made by the control origin";
	if ((r->flags & MAPPING_F_ANY_PORT) != 0 &&
	    r->origin != MAP_ORIGIN_UPNP)
		return "any-port is a UPnP flag";
	/* RFC 6887 §12.1: PEER implies PREFER_FAILURE and is never static */
	if (peer && (r->flags & (MAPPING_F_STATIC | MAPPING_F_PREFER_FAILURE |
	    MAPPING_F_ANY_PORT)) != 0)
		return "flag not allowed on a peer mapping";
	if (r->upstream != STATE_UPSTREAM_NONE && r->upstream >= n_upstream)
		return "upstream index without an upstream line";
	if (r->expiry != STATE_EXPIRY_NEVER && r->expiry > STATE_TIME_MAX)
		return "expiry out of range";
	if (r->lease != STATE_LEASE_FOREVER && r->lease > STATE_TIME_MAX)
		return "lease out of range";
	/* Only UPnP IGD clients have a lease the proxy keeps alive (RFC
	   6970 §5.9); a PEER mapping is a PCP client's, which renews it
	   itself (RFC 6887 §12.3), so no front-end gives one a lease. */
	if (peer && r->lease != STATE_LEASE_NONE)
		return "a peer mapping has no lease";
	if (r->lifetime == 0)
		return "granted lifetime 0";
	if (memchr(r->description, '\0', sizeof(r->description)) == NULL)
		return "description not terminated";
	return NULL;
}

/* ---- format -------------------------------------------------------------- */

static void
state_flags_encode(uint8_t flags, char *out, size_t size)
{
	size_t i, n = 0;

	out[0] = '\0';
	for (i = 0; i < STATE_FLAG_NAMES; i++) {
		if ((flags & state_flag_names[i].bit) == 0)
			continue;
		n += (size_t)snprintf(out + n, size - n, "%s%s",
		    n > 0 ? "," : "", state_flag_names[i].name);
	}
	if (n == 0)
		(void)snprintf(out, size, "%s", STATE_NONE);
}

static void
state_u64_or_none(char *out, size_t size, bool known, uint64_t v)
{
	if (known)
		(void)snprintf(out, size, "%llu", (unsigned long long)v);
	else
		(void)snprintf(out, size, "%s", STATE_NONE);
}

/* The lease field: "-", "inf" or the wall-clock end. */
static void
state_lease_encode(uint64_t lease, char *out, size_t size)
{
	if (lease == STATE_LEASE_FOREVER)
		(void)snprintf(out, size, "%s", STATE_LEASE_INF_TEXT);
	else
		state_u64_or_none(out, size, lease != STATE_LEASE_NONE, lease);
}

/* One record as a line (with its newline); the length, 0 if invalid. */
static size_t
state_record_line(const struct state_record *r, size_t n_upstream,
    char *line, size_t size)
{
	char ia[INET6_ADDRSTRLEN], oa[INET6_ADDRSTRLEN], ra[INET6_ADDRSTRLEN];
	char pa[INET6_ADDRSTRLEN], nonce[2 * MAP_NONCE_SIZE + 1];
	char desc[MAP_DESCRIPTION_MAX * STATE_ESCAPED_BYTE + 1];
	char proto[8], flags[80], up[8], expiry[24], lease[24];
	char peer[INET6_ADDRSTRLEN + 8];
	const char *pname;
	int n;

	if (state_record_check(r, n_upstream) != NULL)
		return 0;
	if ((pname = map_proto_name(r->protocol)) != NULL)
		(void)snprintf(proto, sizeof(proto), "%s", pname);
	else
		(void)snprintf(proto, sizeof(proto), "%u", r->protocol);
	state_hex_encode(r->nonce, MAP_NONCE_SIZE, nonce);
	state_flags_encode(r->flags, flags, sizeof(flags));
	state_u64_or_none(up, sizeof(up), r->upstream != STATE_UPSTREAM_NONE,
	    r->upstream);
	state_u64_or_none(expiry, sizeof(expiry),
	    r->expiry != STATE_EXPIRY_NEVER, r->expiry);
	state_lease_encode(r->lease, lease, sizeof(lease));
	state_desc_encode(r->description, desc);
	peer[0] = '\0';
	if (state_record_is_peer(r))
		(void)snprintf(peer, sizeof(peer), " %s %u",
		    pcp_addr_ntop(&r->peer_addr, pa, sizeof(pa)), r->peer_port);
	n = snprintf(line, size,
	    "%s %s %s %u %u %s %u %s %s %s %u %s %s %lu %lu %s %s%s %s\n",
	    state_record_is_peer(r) ? "peer" : "map", proto,
	    pcp_addr_ntop(&r->internal_addr, ia, sizeof(ia)),
	    r->internal_port, r->ext_port,
	    pcp_addr_ntop(&r->outer_addr, oa, sizeof(oa)), r->outer_port,
	    nonce, map_origin_name((enum map_origin)r->origin),
	    pcp_addr_ntop(&r->requester, ra, sizeof(ra)), r->requester_port,
	    flags, up, (unsigned long)r->lifetime,
	    (unsigned long)r->requested_lifetime, expiry, lease, peer, desc);
	if (n < 0 || (size_t)n >= size)
		return 0;
	return (size_t)n;
}

/* Writes lines to a FILE, hashing them for the end line. */
struct state_out {
	FILE		*f;
	uint64_t	 hash;
	size_t		 records;
	bool		 failed;
};

static void
state_out_put(struct state_out *o, const char *line, size_t len)
{
	o->hash = state_fnv(o->hash, line, len);
	if (fwrite(line, 1, len, o->f) != len)
		o->failed = true;
}

static void __attribute__((format(printf, 2, 3)))
state_out_printf(struct state_out *o, const char *fmt, ...)
{
	char line[STATE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= sizeof(line)) {
		o->failed = true;
		return;
	}
	state_out_put(o, line, (size_t)n);
}

static void
state_out_header(struct state_out *o, const struct state_header *h)
{
	char key[2 * IWF_NONCE_KEY_SIZE + 1], addr[INET6_ADDRSTRLEN];
	char epoch[24], age[24];
	const struct state_upstream *u;
	size_t i;

	o->hash = STATE_FNV_OFFSET;
	o->records = 0;
	o->failed = false;
	state_out_printf(o, "%s %d\n", STATE_MAGIC, STATE_VERSION);
	state_out_printf(o, "epoch %lu\n", (unsigned long)h->epoch);
	state_out_printf(o, "written %llu\n",
	    (unsigned long long)h->written);
	if (h->has_natpmp_key)
		state_hex_encode(h->natpmp_key, IWF_NONCE_KEY_SIZE, key);
	else
		(void)snprintf(key, sizeof(key), "%s", STATE_NONE);
	state_out_printf(o, "natpmp-key %s\n", key);
	if (h->n_upstream > STATE_MAX_UPSTREAM || h->written > STATE_TIME_MAX)
		o->failed = true;
	for (i = 0; i < h->n_upstream && i < STATE_MAX_UPSTREAM; i++) {
		u = &h->upstream[i];
		state_u64_or_none(epoch, sizeof(epoch), u->epoch_known,
		    u->epoch);
		state_u64_or_none(age, sizeof(age), u->epoch_known,
		    u->epoch_age);
		if (u->epoch_known && u->epoch_age > STATE_TIME_MAX)
			o->failed = true;
		state_out_printf(o, "upstream %zu %s %u %s %s\n", i,
		    pcp_addr_ntop(&u->addr, addr, sizeof(addr)), u->port,
		    epoch, age);
	}
}

static void
state_out_record(struct state_out *o, const struct state_record *r,
    size_t n_upstream)
{
	char line[STATE_LINE_MAX];
	size_t len;

	if ((len = state_record_line(r, n_upstream, line, sizeof(line))) == 0) {
		o->failed = true;
		return;
	}
	state_out_put(o, line, len);
	o->records++;
}

/* The end line; -1 when anything failed. */
static int
state_out_end(struct state_out *o)
{
	char line[STATE_LINE_MAX];
	int n;

	n = snprintf(line, sizeof(line), "end %zu %016llx\n", o->records,
	    (unsigned long long)o->hash);
	if (n > 0 && (size_t)n < sizeof(line) &&
	    fwrite(line, 1, (size_t)n, o->f) != (size_t)n)
		o->failed = true;
	if (fflush(o->f) != 0 || ferror(o->f))
		o->failed = true;
	return o->failed ? -1 : 0;
}

int
state_format(const struct state_image *img, FILE *f)
{
	struct state_out o = { .f = f };
	size_t i;

	state_out_header(&o, &img->hdr);
	for (i = 0; i < img->count && !o.failed; i++)
		state_out_record(&o, &img->rec[i], img->hdr.n_upstream);
	return state_out_end(&o);
}

/* ---- parse --------------------------------------------------------------- */

struct state_parser {
	const char		*name;
	struct state_image	*img;
	struct state_errors	*errs;
	uint32_t		 line;
	int			 version;	/* from the first line */
	int			 stage;		/* enum state_stage */
	bool			 failed;
	bool			 ended;
	bool			 stop;		/* not a file of ours */
};

/* Where the parser is: the header lines come in this order. */
enum state_stage {
	ST_MAGIC = 0, ST_EPOCH, ST_WRITTEN, ST_KEY, ST_BODY, ST_END,
};

static void __attribute__((format(printf, 2, 3)))
state_parse_error(struct state_parser *p, const char *fmt, ...)
{
	char msg[STATE_ERROR_LEN];
	va_list ap;

	va_start(ap, fmt);
	(void)vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	state_error(p->errs, "%s:%lu: %s", p->name, (unsigned long)p->line,
	    msg);
	p->failed = true;
}

/* Split on single spaces; -1 on empty fields (two spaces, leading or
   trailing space) or too many fields. */
static int
state_split(char *s, char **field, size_t max)
{
	size_t n = 0;

	for (;;) {
		if (*s == '\0' || *s == ' ' || n == max)
			return -1;
		field[n++] = s;
		if ((s = strchr(s, ' ')) == NULL)
			return (int)n;
		*s++ = '\0';
	}
}

static bool
state_parse_header_number(struct state_parser *p, char **f, int n,
    const char *key, unsigned long long max, unsigned long long *v)
{
	if (n != 2 || strcmp(f[0], key) != 0) {
		state_parse_error(p, "expected \"%s <number>\"", key);
		return false;
	}
	if (!state_number(f[1], max, v)) {
		state_parse_error(p, "bad %s \"%s\"", key, f[1]);
		return false;
	}
	return true;
}

static void
state_parse_key(struct state_parser *p, char **f, int n)
{
	struct state_header *h = &p->img->hdr;

	if (n != 2 || strcmp(f[0], "natpmp-key") != 0) {
		state_parse_error(p, "expected \"natpmp-key <hex>|-\"");
		return;
	}
	if (strcmp(f[1], STATE_NONE) == 0)
		return;
	if (!util_hex_decode(f[1], h->natpmp_key, IWF_NONCE_KEY_SIZE)) {
		state_parse_error(p, "natpmp-key is not %d hex digits",
		    2 * IWF_NONCE_KEY_SIZE);
		return;
	}
	h->has_natpmp_key = true;
}

static void
state_parse_upstream(struct state_parser *p, char **f, int n)
{
	struct state_header *h = &p->img->hdr;
	struct state_upstream u = { 0 };
	unsigned long long idx, port, epoch, age;
	bool none_e, none_a;

	if (n != STATE_UPSTREAM_FIELDS) {
		state_parse_error(p, "upstream needs %d fields, not %d",
		    STATE_UPSTREAM_FIELDS - 1, n - 1);
		return;
	}
	if (!state_number(f[1], STATE_MAX_UPSTREAM - 1, &idx) ||
	    idx != h->n_upstream) {
		state_parse_error(p, "upstream index \"%s\": expected %zu",
		    f[1], h->n_upstream);
		return;
	}
	if (!pcp_addr_pton(f[2], &u.addr)) {
		state_parse_error(p, "bad upstream address \"%s\"", f[2]);
		return;
	}
	if (!state_number(f[3], UINT16_MAX, &port) || port == 0) {
		state_parse_error(p, "bad upstream port \"%s\"", f[3]);
		return;
	}
	u.port = (uint16_t)port;
	none_e = strcmp(f[4], STATE_NONE) == 0;
	none_a = strcmp(f[5], STATE_NONE) == 0;
	if (none_e != none_a) {
		state_parse_error(p, "upstream epoch and age are both known "
		    "or both \"-\"");
		return;
	}
	if (!none_e) {
		if (!state_number(f[4], UINT32_MAX, &epoch)) {
			state_parse_error(p, "bad upstream epoch \"%s\"", f[4]);
			return;
		}
		if (!state_number(f[5], STATE_TIME_MAX, &age)) {
			state_parse_error(p, "bad upstream epoch age \"%s\"",
			    f[5]);
			return;
		}
		u.epoch_known = true;
		u.epoch = (uint32_t)epoch;
		u.epoch_age = age;
	}
	h->upstream[h->n_upstream++] = u;
}

static bool
state_parse_port(struct state_parser *p, const char *s, const char *what,
    uint16_t *out)
{
	unsigned long long v;

	if (!state_number(s, UINT16_MAX, &v)) {
		state_parse_error(p, "bad %s \"%s\"", what, s);
		return false;
	}
	*out = (uint16_t)v;
	return true;
}

static bool
state_parse_addr(struct state_parser *p, const char *s, const char *what,
    struct in6_addr *out)
{
	if (!pcp_addr_pton(s, out)) {
		state_parse_error(p, "bad %s \"%s\"", what, s);
		return false;
	}
	return true;
}

static bool
state_parse_flags(struct state_parser *p, char *s, uint8_t *flags)
{
	char *name, *next;
	size_t i;

	*flags = 0;
	if (strcmp(s, STATE_NONE) == 0)
		return true;
	for (name = s; name != NULL; name = next) {
		if ((next = strchr(name, ',')) != NULL)
			*next++ = '\0';
		for (i = 0; i < STATE_FLAG_NAMES; i++)
			if (strcmp(name, state_flag_names[i].name) == 0)
				break;
		if (i == STATE_FLAG_NAMES) {
			state_parse_error(p, "unknown flag \"%s\"", name);
			return false;
		}
		if ((*flags & state_flag_names[i].bit) != 0) {
			state_parse_error(p, "flag \"%s\" twice", name);
			return false;
		}
		*flags |= state_flag_names[i].bit;
	}
	return true;
}

static bool
state_parse_origin(struct state_parser *p, const char *s, uint8_t *origin)
{
	unsigned int o;

	for (o = 0; o < MAP_ORIGIN_COUNT; o++)
		if (strcmp(s, map_origin_name((enum map_origin)o)) == 0) {
			*origin = (uint8_t)o;
			return true;
		}
	state_parse_error(p, "unknown origin \"%s\"", s);
	return false;
}

static bool
state_parse_optional(struct state_parser *p, const char *s, const char *what,
    unsigned long long max, unsigned long long none, unsigned long long *v)
{
	if (strcmp(s, STATE_NONE) == 0) {
		*v = none;
		return true;
	}
	if (!state_number(s, max, v)) {
		state_parse_error(p, "bad %s \"%s\"", what, s);
		return false;
	}
	return true;
}

static bool
state_parse_lease(struct state_parser *p, const char *s, uint64_t *lease)
{
	unsigned long long v;

	if (strcmp(s, STATE_LEASE_INF_TEXT) == 0) {
		*lease = STATE_LEASE_FOREVER;
		return true;
	}
	/* 0 is STATE_LEASE_NONE, written "-": a wall-clock end 0 is no
	   lease end the daemon writes (it is long past) */
	if (!state_parse_optional(p, s, "lease", STATE_TIME_MAX,
	    STATE_LEASE_NONE, &v))
		return false;
	if (strcmp(s, STATE_NONE) != 0 && v == STATE_LEASE_NONE) {
		state_parse_error(p, "bad lease \"%s\" (no lease is \"-\")",
		    s);
		return false;
	}
	*lease = v;
	return true;
}

/* The fields a map and a peer line share (version 2 numbering). */
static bool
state_parse_common(struct state_parser *p, char **f, struct state_record *r)
{
	unsigned long long up, lifetime, requested, expiry;
	int proto;

	if ((proto = map_proto_parse(f[SF_PROTO])) < 0) {
		state_parse_error(p, "bad protocol \"%s\"", f[SF_PROTO]);
		return false;
	}
	r->protocol = (uint8_t)proto;
	if (!state_parse_addr(p, f[SF_INT_ADDR], "internal address",
	    &r->internal_addr) ||
	    !state_parse_port(p, f[SF_INT_PORT], "internal port",
	    &r->internal_port) ||
	    !state_parse_port(p, f[SF_EXT_PORT], "external port",
	    &r->ext_port) ||
	    !state_parse_addr(p, f[SF_OUTER_ADDR], "outer address",
	    &r->outer_addr) ||
	    !state_parse_port(p, f[SF_OUTER_PORT], "outer port",
	    &r->outer_port))
		return false;
	if (!util_hex_decode(f[SF_NONCE], r->nonce, MAP_NONCE_SIZE)) {
		state_parse_error(p, "nonce is not %d hex digits",
		    2 * MAP_NONCE_SIZE);
		return false;
	}
	if (!state_parse_origin(p, f[SF_ORIGIN], &r->origin) ||
	    !state_parse_addr(p, f[SF_REQUESTER], "requester address",
	    &r->requester) ||
	    !state_parse_port(p, f[SF_REQ_PORT], "requester port",
	    &r->requester_port) ||
	    !state_parse_flags(p, f[SF_FLAGS], &r->flags) ||
	    !state_parse_optional(p, f[SF_UPSTREAM], "upstream index",
	    STATE_MAX_UPSTREAM - 1, STATE_UPSTREAM_NONE, &up) ||
	    !state_parse_optional(p, f[SF_EXPIRY], "expiry", STATE_TIME_MAX,
	    STATE_EXPIRY_NEVER, &expiry) ||
	    !state_parse_lease(p, f[SF_LEASE], &r->lease))
		return false;
	if (!state_number(f[SF_LIFETIME], UINT32_MAX, &lifetime)) {
		state_parse_error(p, "bad lifetime \"%s\"", f[SF_LIFETIME]);
		return false;
	}
	if (!state_number(f[SF_REQUESTED], UINT32_MAX, &requested)) {
		state_parse_error(p, "bad requested lifetime \"%s\"",
		    f[SF_REQUESTED]);
		return false;
	}
	r->upstream = (uint8_t)up;
	r->lifetime = (uint32_t)lifetime;
	r->requested_lifetime = (uint32_t)requested;
	r->expiry = expiry;
	return true;
}

/*
 * A version-1 record's fields in version-2 places: `none` ("-", no
 * lease) put in at SF_LEASE, the fields after it moved up one. out has
 * room for n + 1.
 */
static void
state_fields_v1(char **f, int n, char *none, char **out)
{
	int i;

	for (i = 0; i < SF_LEASE; i++)
		out[i] = f[i];
	out[SF_LEASE] = none;
	for (i = SF_LEASE; i < n; i++)
		out[i + 1] = f[i];
}

static void
state_parse_record(struct state_parser *p, char **f, int n, bool peer)
{
	struct state_record r;
	char *v2[STATE_FIELDS_MAX + 1], none[] = STATE_NONE;
	const char *why = NULL;
	int want = peer ? SF_PEER_COUNT : SF_MAP_COUNT;
	int desc = peer ? SF_PEER_DESC : SF_MAP_DESC;
	bool v1 = p->version < STATE_VERSION;

	memset(&r, 0, sizeof(r));
	r.line = p->line;
	if (n != want - (v1 ? 1 : 0)) {
		state_parse_error(p, "%s needs %d fields, not %d", f[0],
		    want - 1 - (v1 ? 1 : 0), n - 1);
		return;
	}
	if (v1) {
		state_fields_v1(f, n, none, v2);
		f = v2;
	}
	if (!state_parse_common(p, f, &r))
		return;
	if (peer) {
		r.flags |= MAPPING_F_PEER;
		if (!state_parse_addr(p, f[SF_PEER_ADDR], "peer address",
		    &r.peer_addr) ||
		    !state_parse_port(p, f[SF_PEER_PORT], "peer port",
		    &r.peer_port))
			return;
	}
	if (!state_desc_decode(f[desc], r.description, &why)) {
		state_parse_error(p, "%s", why);
		return;
	}
	if ((why = state_record_check(&r, p->img->hdr.n_upstream)) != NULL) {
		state_parse_error(p, "%s", why);
		return;
	}
	if (state_image_add(p->img, &r) == -1)
		state_parse_error(p, "out of memory");
}

static void
state_parse_end(struct state_parser *p, char **f, int n, uint64_t hash)
{
	unsigned long long count;
	uint8_t sum[sizeof(uint64_t)];
	uint64_t want = 0;
	size_t i;

	p->ended = true;
	if (n != 3) {
		state_parse_error(p, "expected \"end <count> <checksum>\"");
		return;
	}
	if (!state_number(f[1], SIZE_MAX, &count) ||
	    count != p->img->count) {
		state_parse_error(p, "end line count \"%s\": %zu mappings were "
		    "read (truncated or damaged file)", f[1], p->img->count);
		return;
	}
	if (!util_hex_decode(f[2], sum, sizeof(sum))) {
		state_parse_error(p, "end line checksum is not %d hex digits",
		    STATE_HEX_DIGITS);
		return;
	}
	for (i = 0; i < sizeof(sum); i++)
		want = want << 8 | sum[i];
	if (want != hash)
		state_parse_error(p, "checksum mismatch: the file was changed "
		    "or damaged");
}

/* One line, NUL-terminated, without its newline. */
static void
state_parse_line(struct state_parser *p, char *s, uint64_t hash_before)
{
	char *f[STATE_FIELDS_MAX];
	unsigned long long v;
	int n;

	if (p->ended) {
		state_parse_error(p, "data after the end line");
		return;
	}
	if ((n = state_split(s, f, STATE_FIELDS_MAX)) < 0) {
		state_parse_error(p, "empty field or stray space");
		return;
	}
	switch (p->stage) {
	case ST_MAGIC:
		if (n != 2 || strcmp(f[0], STATE_MAGIC) != 0) {
			state_parse_error(p, "not a pcp-iwfd state file");
			p->stop = true;	/* nothing else is meaningful */
		} else if (!state_number(f[1], INT_MAX, &v) ||
		    v < STATE_VERSION_MIN || v > STATE_VERSION) {
			state_parse_error(p, "state file version \"%s\" is not "
			    "%d to %d", f[1], STATE_VERSION_MIN, STATE_VERSION);
			p->stop = true;
		} else
			p->version = (int)v;
		break;
	case ST_EPOCH:
		if (state_parse_header_number(p, f, n, "epoch", UINT32_MAX, &v))
			p->img->hdr.epoch = (uint32_t)v;
		break;
	case ST_WRITTEN:
		if (state_parse_header_number(p, f, n, "written",
		    STATE_TIME_MAX, &v))
			p->img->hdr.written = v;
		break;
	case ST_KEY:
		state_parse_key(p, f, n);
		break;
	default:
		if (strcmp(f[0], "upstream") == 0 && p->img->count > 0)
			state_parse_error(p, "upstream line after a mapping");
		else if (strcmp(f[0], "upstream") == 0)
			state_parse_upstream(p, f, n);
		else if (strcmp(f[0], "map") == 0)
			state_parse_record(p, f, n, false);
		else if (strcmp(f[0], "peer") == 0)
			state_parse_record(p, f, n, true);
		else if (strcmp(f[0], "end") == 0)
			state_parse_end(p, f, n, hash_before);
		else
			state_parse_error(p, "unknown line type \"%s\"", f[0]);
		return;
	}
	p->stage++;
}

/*
 * Duplicates, O(n): an open-addressing set of record indexes per key kind.
 * The kinds: a MAP's internal endpoint, a MAP's external port, a PEER's
 * 5-tuple (the table's three keys).
 */
enum state_key { SK_INTERNAL, SK_EXTERNAL, SK_PEER, SK_COUNT };

static bool
state_key_applies(const struct state_record *r, enum state_key k)
{
	return state_record_is_peer(r) == (k == SK_PEER);
}

static bool
state_key_equal(const struct state_record *a, const struct state_record *b,
    enum state_key k)
{
	if (a->protocol != b->protocol)
		return false;
	if (k == SK_EXTERNAL)
		return a->ext_port == b->ext_port;
	if (a->internal_port != b->internal_port ||
	    !IN6_ARE_ADDR_EQUAL(&a->internal_addr, &b->internal_addr))
		return false;
	return k == SK_INTERNAL || (a->peer_port == b->peer_port &&
	    IN6_ARE_ADDR_EQUAL(&a->peer_addr, &b->peer_addr));
}

static uint64_t
state_key_hash(const struct state_record *r, enum state_key k)
{
	uint64_t h = state_fnv(STATE_FNV_OFFSET, &r->protocol, 1);

	if (k == SK_EXTERNAL)
		return state_fnv(h, &r->ext_port, sizeof(r->ext_port));
	h = state_fnv(h, &r->internal_addr, sizeof(r->internal_addr));
	h = state_fnv(h, &r->internal_port, sizeof(r->internal_port));
	if (k == SK_PEER) {
		h = state_fnv(h, &r->peer_addr, sizeof(r->peer_addr));
		h = state_fnv(h, &r->peer_port, sizeof(r->peer_port));
	}
	return h;
}

static const char *const state_key_names[SK_COUNT] = {
	[SK_INTERNAL] = "internal endpoint",
	[SK_EXTERNAL] = "external port",
	[SK_PEER] = "peer 5-tuple",
};

static int
state_check_duplicates(struct state_parser *p)
{
	const struct state_record *rec = p->img->rec;
	size_t size = 16, i, slot;
	uint32_t *set;
	int k;

	while (size < 2 * p->img->count)
		size *= 2;
	if ((set = calloc(size, sizeof(*set))) == NULL)
		return -1;
	for (k = 0; k < SK_COUNT; k++) {
		memset(set, 0, size * sizeof(*set));
		for (i = 0; i < p->img->count; i++) {
			if (!state_key_applies(&rec[i], k))
				continue;
			slot = state_key_hash(&rec[i], k) & (size - 1);
			while (set[slot] != 0 &&
			    !state_key_equal(&rec[set[slot] - 1], &rec[i], k))
				slot = (slot + 1) & (size - 1);
			if (set[slot] != 0) {
				p->line = rec[i].line;
				state_parse_error(p, "duplicate %s (first at "
				    "line %lu)", state_key_names[k],
				    (unsigned long)rec[set[slot] - 1].line);
				continue;
			}
			set[slot] = (uint32_t)i + 1;
		}
	}
	free(set);
	return 0;
}

int
state_parse(const char *name, const char *text, size_t len,
    struct state_image *img, struct state_errors *errs)
{
	struct state_parser p = { .name = name, .img = img, .errs = errs };
	char line[STATE_LINE_MAX];
	const char *nl;
	uint64_t hash = STATE_FNV_OFFSET, before;
	size_t off = 0, n;

	state_image_init(img);
	state_errors_init(errs);
	while (off < len && !p.stop) {
		p.line++;
		if ((nl = memchr(text + off, '\n', len - off)) == NULL) {
			state_parse_error(&p, "last line has no newline "
			    "(truncated file)");
			break;
		}
		n = (size_t)(nl - (text + off));
		before = hash;
		hash = state_fnv(hash, text + off, n + 1);
		if (n >= sizeof(line))
			state_parse_error(&p, "line longer than %d bytes",
			    STATE_LINE_MAX - 1);
		else if (memchr(text + off, '\0', n) != NULL)
			state_parse_error(&p, "NUL byte in line");
		else if (memchr(text + off, '\r', n) != NULL)
			state_parse_error(&p, "carriage return in line");
		else {
			memcpy(line, text + off, n);
			line[n] = '\0';
			state_parse_line(&p, line, before);
			off += n + 1;
			continue;
		}
		/* a header line that could not be read still took its place */
		if (p.stage == ST_MAGIC)
			p.stop = true;
		else if (p.stage < ST_BODY)
			p.stage++;
		off += n + 1;
	}
	if (!p.stop && !p.ended) {
		p.line++;
		state_parse_error(&p, p.line == 1 ? "empty file" :
		    "no end line (truncated file)");
	}
	if (!p.failed && state_check_duplicates(&p) == -1)
		state_parse_error(&p, "out of memory");
	if (p.failed) {
		state_image_free(img);
		return -1;
	}
	return 0;
}

/* ---- durable write ------------------------------------------------------- */

/* The directory part of path, for its fsync ("." when none). */
static int
state_open_dir(const char *path)
{
	char dir[PATH_MAX];
	const char *slash = strrchr(path, '/');
	size_t n;

	if (slash == NULL)
		return open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	n = slash == path ? 1 : (size_t)(slash - path);
	if (n >= sizeof(dir)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	memcpy(dir, path, n);
	dir[n] = '\0';
	return open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
}

typedef int	(*state_writer_fn)(FILE *, const void *arg);

/*
 * Write through a temp file in the same directory (so the rename is
 * atomic), fsync it before the rename (else a crash can leave the new
 * name pointing at empty data) and fsync the directory after it (else the
 * rename itself may not survive).
 */
static int
state_write_with(const char *path, state_writer_fn writer, const void *arg)
{
	char tmp[PATH_MAX];
	FILE *f = NULL;
	int fd = -1, dfd, saved;

	if (snprintf(tmp, sizeof(tmp), "%s%s", path, STATE_TMP_SUFFIX) >=
	    (int)sizeof(tmp)) {
		errno = ENAMETOOLONG;
		log_warn("state file %s", path);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC,
	    S_IRUSR | S_IWUSR)) == -1) {
		log_warn("state file %s", tmp);
		return -1;
	}
	if ((f = fdopen(fd, "w")) == NULL) {
		log_warn("state file %s", tmp);
		close(fd);
		goto fail;
	}
	if (writer(f, arg) == -1) {
		log_warn("state file %s: write", tmp);
		goto fail;
	}
	if (fsync(fd) == -1) {
		log_warn("state file %s: fsync", tmp);
		goto fail;
	}
	if (fclose(f) != 0) {
		f = NULL;
		log_warn("state file %s: close", tmp);
		goto fail;
	}
	f = NULL;
	if (rename(tmp, path) == -1) {
		log_warn("state file %s: rename", path);
		goto fail;
	}
	if ((dfd = state_open_dir(path)) == -1 || fsync(dfd) == -1) {
		log_warn("state file %s: directory fsync", path);
		if (dfd != -1)
			close(dfd);
		return -1;
	}
	close(dfd);
	return 0;
fail:
	saved = errno;
	if (f != NULL)
		(void)fclose(f);
	(void)unlink(tmp);
	errno = saved;
	return -1;
}

static int
state_write_image(FILE *f, const void *arg)
{
	if (state_format(arg, f) == -1) {
		if (errno == 0)
			errno = EINVAL;
		return -1;
	}
	return 0;
}

int
state_write(const char *path, const struct state_image *img)
{
	errno = 0;
	return state_write_with(path, state_write_image, img);
}

/* ---- load ---------------------------------------------------------------- */

static int
state_read_file(const char *path, char **text, size_t *len)
{
	struct stat st;
	ssize_t r;
	size_t off = 0;
	int fd;

	if ((fd = open(path, O_RDONLY | O_CLOEXEC)) == -1)
		return -1;
	if (fstat(fd, &st) == -1)
		goto fail;
	if (!S_ISREG(st.st_mode) || st.st_size > (off_t)STATE_FILE_MAX) {
		errno = S_ISREG(st.st_mode) ? EFBIG : EINVAL;
		goto fail;
	}
	if ((*text = malloc((size_t)st.st_size + 1)) == NULL)
		goto fail;
	while (off < (size_t)st.st_size) {
		if ((r = read(fd, *text + off, (size_t)st.st_size - off)) <= 0) {
			if (r == 0)
				break;		/* shrank: parse what is there */
			if (errno == EINTR)
				continue;
			free(*text);
			goto fail;
		}
		off += (size_t)r;
	}
	close(fd);
	*len = off;
	return 0;
fail:
	r = errno;
	close(fd);
	errno = (int)r;
	return -1;
}

/* Rename path aside without replacing anything (RENAME_NOREPLACE). */
static int
state_move_aside(const char *path, uint64_t now_wall, char *to, size_t size)
{
	char name[PATH_MAX];
	int i, n;

	for (i = 0; i < STATE_CORRUPT_TRIES; i++) {
		if (i == 0)
			n = snprintf(name, sizeof(name), "%s%s%llu", path,
			    STATE_CORRUPT_SUFFIX, (unsigned long long)now_wall);
		else
			n = snprintf(name, sizeof(name), "%s%s%llu-%d", path,
			    STATE_CORRUPT_SUFFIX, (unsigned long long)now_wall,
			    i);
		if (n < 0 || (size_t)n >= sizeof(name)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		if (renameat2(AT_FDCWD, path, AT_FDCWD, name,
		    RENAME_NOREPLACE) == 0) {
			if (to != NULL && size > 0)
				(void)snprintf(to, size, "%s", name);
			return 0;
		}
		if (errno != EEXIST)
			return -1;
	}
	errno = EEXIST;
	return -1;
}

enum state_load_result
state_load(const char *path, uint64_t now_wall, struct state_image *img,
    struct state_errors *errs, char *moved_to, size_t moved_to_size)
{
	char *text = NULL;
	size_t len = 0;
	int rc;

	state_image_init(img);
	state_errors_init(errs);
	if (moved_to != NULL && moved_to_size > 0)
		moved_to[0] = '\0';
	if (state_read_file(path, &text, &len) == -1) {
		if (errno == ENOENT)
			return STATE_LOAD_NONE;
		state_error(errs, "%s: %s", path, strerror(errno));
		return STATE_LOAD_ERROR;
	}
	rc = state_parse(path, text, len, img, errs);
	free(text);
	if (rc == 0)
		return STATE_LOAD_OK;
	if (state_move_aside(path, now_wall, moved_to, moved_to_size) == -1) {
		state_error(errs, "%s: cannot move the corrupt file aside: %s",
		    path, strerror(errno));
		return STATE_LOAD_ERROR;
	}
	return STATE_LOAD_CORRUPT;
}

/* ---- epoch --------------------------------------------------------------- */

bool
state_epoch_resume(const struct state_header *h, uint64_t now_wall,
    uint32_t *epoch_now)
{
	uint64_t e;

	if (now_wall < h->written)
		return false;
	e = (uint64_t)h->epoch + (now_wall - h->written);
	if (e > UINT32_MAX)
		return false;
	*epoch_now = (uint32_t)e;
	return true;
}

size_t
state_upstream_remap(const struct state_header *h,
    const struct config_upstream *conf, size_t n_conf,
    uint8_t map[STATE_MAX_UPSTREAM])
{
	size_t i, j, gone = 0;

	for (i = 0; i < STATE_MAX_UPSTREAM; i++)
		map[i] = STATE_UPSTREAM_NONE;
	for (i = 0; i < h->n_upstream && i < STATE_MAX_UPSTREAM; i++) {
		for (j = 0; j < n_conf && j < STATE_UPSTREAM_NONE; j++)
			if (conf[j].port == h->upstream[i].port &&
			    IN6_ARE_ADDR_EQUAL(&conf[j].addr,
			    &h->upstream[i].addr))
				break;
		if (j < n_conf && j < STATE_UPSTREAM_NONE)
			map[i] = (uint8_t)j;
		else
			gone++;
	}
	return gone;
}

/* ---- the table ----------------------------------------------------------- */

/* Is m something a client was told about (state.h)? */
static bool
state_mapping_saved(const struct mapping *m)
{
	switch ((enum map_state)m->state) {
	case MAP_STATE_GRANTED:
	case MAP_STATE_RENEWING:
		return true;
	case MAP_STATE_REQUESTED:
	case MAP_STATE_PENDING_UPSTREAM:
		return (m->flags & MAPPING_F_WAS_GRANTED) != 0;
	default:
		return false;
	}
}

/*
 * The client lease of m as a wall-clock end (state_record lease); false
 * when it has ended: RFC 6970 §5.9, the mapping lives only as long as its
 * UPnP lease, and a restart would drop it anyway.
 */
static bool
state_lease_from_mapping(const struct mapping *m, uint64_t now_ms,
    uint64_t now_wall, uint64_t *lease)
{
	uint32_t left;

	if (m->lease_end == TABLE_LEASE_NONE) {
		*lease = STATE_LEASE_NONE;
		return true;
	}
	if (m->lease_end == TABLE_LEASE_FOREVER) {
		*lease = STATE_LEASE_FOREVER;
		return true;
	}
	if ((left = mapping_lease_remaining(m, now_ms)) == 0)
		return false;
	*lease = now_wall + left;
	return true;
}

/* m as a record; false when it is not saved (see above, or expired). */
static bool
state_record_from_mapping(const struct mapping *m, uint64_t now_ms,
    uint64_t now_wall, struct state_record *r)
{
	const struct mapping_peer *peer;
	uint64_t lease;
	uint32_t left;

	if (!state_mapping_saved(m))
		return false;
	/* the real end: with MAPPING_F_RENEW, expiry is only the next
	   renewal point and mapping_remaining counts to grant_end */
	if ((left = mapping_remaining(m, now_ms)) == 0)
		return false;
	if (!state_lease_from_mapping(m, now_ms, now_wall, &lease))
		return false;
	memset(r, 0, sizeof(*r));
	r->internal_addr = m->internal_addr;
	r->requester = m->requester;
	r->outer_addr = m->outer_addr;
	r->expiry = left == TABLE_LIFETIME_INFINITE ? STATE_EXPIRY_NEVER :
	    now_wall + left;
	r->lease = lease;
	r->lifetime = m->lifetime;
	r->requested_lifetime = m->requested_lifetime;
	memcpy(r->nonce, m->nonce, MAP_NONCE_SIZE);
	r->internal_port = m->internal_port;
	r->ext_port = m->ext_port;
	r->outer_port = m->outer_port;
	r->requester_port = m->requester_port;
	r->protocol = m->protocol;
	r->origin = m->origin;
	/* the table's own note, meaningless in a file (expiry above is the
	   real end); a restored mapping comes back without it */
	/* the table's own working notes are not state */
	r->flags = m->flags & ~MAPPING_F_RENEW;
	r->upstream = m->upstream;
	if ((peer = mapping_peer(m)) != NULL) {
		r->peer_addr = peer->addr;
		r->peer_port = peer->port;
	}
	if (m->description != NULL)
		(void)snprintf(r->description, sizeof(r->description), "%s",
		    m->description);
	return true;
}

/* A record the parser would refuse is not written (logged: a bug). */
static bool
state_record_writable(const struct state_record *r)
{
	const char *why;

	/* the upstream index is checked against the header when written */
	if ((why = state_record_check(r, STATE_MAX_UPSTREAM)) == NULL)
		return true;
	log_warnx("state file: mapping %u/%u not saved: %s", r->protocol,
	    r->ext_port, why);
	return false;
}

int
state_image_from_table(const struct table *t, uint64_t now_ms,
    uint64_t now_wall, struct state_image *img)
{
	struct state_record r;
	struct mapping *m;
	size_t i;

	img->count = 0;
	img->hdr.written = now_wall;
	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if (!state_record_from_mapping(m, now_ms, now_wall, &r) ||
		    !state_record_writable(&r))
			continue;
		if (state_image_add(img, &r) == -1) {
			state_image_free(img);
			return -1;
		}
	}
	return 0;
}

struct state_table_source {
	const struct state_header	*hdr;
	const struct table		*table;
	uint64_t			 now_ms, now_wall;
};

static int
state_write_table_fn(FILE *f, const void *arg)
{
	const struct state_table_source *src = arg;
	struct state_header h = *src->hdr;
	struct state_out o = { .f = f };
	struct state_record r;
	struct mapping *m;
	size_t i;

	h.written = src->now_wall;
	state_out_header(&o, &h);
	for (i = 0; (m = table_at(src->table, i)) != NULL && !o.failed; i++) {
		if (!state_record_from_mapping(m, src->now_ms, src->now_wall,
		    &r) || !state_record_writable(&r))
			continue;
		if (r.upstream != STATE_UPSTREAM_NONE &&
		    r.upstream >= h.n_upstream)
			r.upstream = STATE_UPSTREAM_NONE;
		state_out_record(&o, &r, h.n_upstream);
	}
	if (state_out_end(&o) == -1) {
		if (errno == 0)
			errno = EINVAL;
		return -1;
	}
	return 0;
}

int
state_write_table(const char *path, const struct state_header *hdr,
    const struct table *t, uint64_t now_ms, uint64_t now_wall)
{
	struct state_table_source src = { hdr, t, now_ms, now_wall };

	errno = 0;
	return state_write_with(path, state_write_table_fn, &src);
}

/* The wall time restored mappings are measured from: max(now, written),
   so a clock stepped back never lengthens a mapping or a lease. */
static uint64_t
state_restore_from(uint64_t written, uint64_t now_wall)
{
	return now_wall > written ? now_wall : written;
}

/*
 * The map_req lease that gives a restored mapping r's lease end back: the
 * seconds left from `from` (the table puts them onto its monotonic clock,
 * table_add). The caller has dropped a lease that ended (<= from).
 */
static uint32_t
state_lease_left(const struct state_record *r, uint64_t from)
{
	uint64_t left;

	if (r->lease == STATE_LEASE_NONE)
		return MAP_LEASE_NONE;
	if (r->lease == STATE_LEASE_FOREVER)
		return MAP_LEASE_INFINITE;
	left = r->lease - from;
	/* a finite lease stays finite (the table caps its end too) */
	return left >= MAP_LEASE_INFINITE ? MAP_LEASE_INFINITE - 1 :
	    (uint32_t)left;
}

static void
state_req_from_record(const struct state_record *r, uint64_t from,
    struct map_req *req)
{
	memset(req, 0, sizeof(*req));
	req->origin = (enum map_origin)r->origin;
	req->requester = r->requester;
	req->requester_port = r->requester_port;
	req->internal_addr = r->internal_addr;
	req->protocol = r->protocol;
	req->internal_port = r->internal_port;
	req->ext_port = r->ext_port;
	req->lifetime = r->requested_lifetime;
	req->lease = state_lease_left(r, from);
	memcpy(req->nonce, r->nonce, MAP_NONCE_SIZE);
	if (r->flags & MAPPING_F_PREFER_FAILURE)
		req->flags |= MAP_F_PREFER_FAILURE;
	if (r->flags & MAPPING_F_THIRD_PARTY)
		req->flags |= MAP_F_THIRD_PARTY;
	if (r->flags & MAPPING_F_ANY_PORT)
		req->flags |= MAP_F_ANY_PORT;
	if (r->flags & MAPPING_F_STATIC)
		req->flags |= MAP_F_STATIC;
	if (r->flags & MAPPING_F_PEER) {
		req->flags |= MAP_F_PEER;
		req->peer_addr = r->peer_addr;
		req->peer_port = r->peer_port;
	}
	if (r->description[0] != '\0') {
		req->flags |= MAP_F_HAS_DESCRIPTION;
		memcpy(req->description, r->description,
		    sizeof(req->description));
	}
}

/* The monotonic expiry of r (ms), measured from `from`. */
static uint64_t
state_expiry_ms(const struct state_record *r, uint64_t from, uint64_t now_ms)
{
	if (r->expiry == STATE_EXPIRY_NEVER)
		return TABLE_EXPIRY_NEVER;
	return now_ms + (r->expiry - from) * STATE_MS_PER_S;
}

/* A client lease (RFC 6970 §5.9) still running at `from`. */
static bool
state_lease_running(const struct state_record *r, uint64_t from)
{
	return r->lease == STATE_LEASE_FOREVER ||
	    (r->lease != STATE_LEASE_NONE && r->lease > from);
}

/*
 * Gone while the daemon was down (or before `written`: a damaged file):
 * its client's lease ended (RFC 6970 §5.9: the proxy renews only until
 * then; the client was told the mapping ends), or its grant ran out and
 * no lease of a client that never renews (UPnP) asks to keep it.
 */
static bool
state_record_expired(const struct state_record *r, uint64_t from)
{
	if (r->lease != STATE_LEASE_NONE)
		return !state_lease_running(r, from);
	return r->expiry != STATE_EXPIRY_NEVER && r->expiry <= from;
}

static void
state_restore_one(const struct state_record *r, struct table *t,
    const struct state_image *img, const uint8_t *upstream_map,
    uint64_t now_ms, uint64_t now_wall, const char *name,
    struct state_restore_stats *st, struct state_errors *errs)
{
	uint64_t from = state_restore_from(img->hdr.written, now_wall);
	struct map_req req;
	struct mapping *m;
	enum map_err err;

	if (state_record_expired(r, from)) {
		st->expired++;
		return;
	}
	state_req_from_record(r, from, &req);
	if ((m = table_add(t, &req, r->ext_port, r->lifetime, now_ms,
	    &err)) == NULL) {
		st->failed++;
		state_error(errs, "%s:%lu: mapping not restored: %s", name,
		    (unsigned long)r->line, map_err_name(err));
		return;
	}
	m->outer_addr = r->outer_addr;
	m->outer_port = r->outer_port;
	m->upstream = r->upstream;
	if (upstream_map != NULL && r->upstream != STATE_UPSTREAM_NONE &&
	    r->upstream < img->hdr.n_upstream)
		m->upstream = upstream_map[r->upstream];
	/* A lease that outlived its grant during the downtime (the gateway
	   was off longer than the upstream grant): the client still counts
	   on it and will not ask again, so it is kept a short while, in
	   which the proxy re-creates it upstream with its nonce and renews
	   it (proxy_restored; RFC 6887 §11.2). */
	if (r->expiry != STATE_EXPIRY_NEVER && r->expiry <= from)
		table_set_expiry(t, m, now_ms + STATE_LAPSED_GRACE_S *
		    STATE_MS_PER_S);
	else
		table_set_expiry(t, m, state_expiry_ms(r, from, now_ms));
	(void)mapping_set_state(t, m, MAP_STATE_GRANTED);
	m->flags = r->flags | MAPPING_F_WAS_GRANTED;
	st->restored++;
}

int
state_restore_table(const struct state_image *img, struct table *t,
    const uint8_t *upstream_map, uint64_t now_ms, uint64_t now_wall,
    const char *name, struct state_restore_stats *st,
    struct state_errors *errs)
{
	const struct state_record *r;
	size_t i;
	int pass;

	memset(st, 0, sizeof(*st));
	state_errors_init(errs);
	/* NAT-PMP last (state.h: RFC 6886 §3.3 twins) */
	for (pass = 0; pass < 2; pass++)
		for (i = 0; i < img->count; i++) {
			r = &img->rec[i];
			if ((r->origin == MAP_ORIGIN_NATPMP) != (pass == 1))
				continue;
			state_restore_one(r, t, img, upstream_map, now_ms,
			    now_wall, name, st, errs);
		}
	return st->failed == 0 ? 0 : -1;
}
