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
	size_t		 bytes;		/* written so far */
	bool		 failed;
};

static void
state_out_put(struct state_out *o, const char *line, size_t len)
{
	o->hash = state_fnv(o->hash, line, len);
	o->bytes += len;
	if (fwrite(line, 1, len, o->f) != len)
		o->failed = true;
}

/* One line into line[STATE_LINE_MAX]: its length, or -1 when it does not
   fit (the writers of the base and of the journal). */
static int __attribute__((format(printf, 2, 0)))
state_vline(char *line, const char *fmt, va_list ap)
{
	int n = vsnprintf(line, STATE_LINE_MAX, fmt, ap);

	return n < 0 || n >= STATE_LINE_MAX ? -1 : n;
}

static void __attribute__((format(printf, 2, 3)))
state_out_printf(struct state_out *o, const char *fmt, ...)
{
	char line[STATE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = state_vline(line, fmt, ap);
	va_end(ap);
	if (n == -1)
		o->failed = true;
	else
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
	if (n > 0)
		o->bytes += (size_t)n;
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

/* A map or peer line into *r; false (error reported) when it is bad. */
static bool
state_parse_record_into(struct state_parser *p, char **f, int n, bool peer,
    struct state_record *r)
{
	char *v2[STATE_FIELDS_MAX + 1], none[] = STATE_NONE;
	const char *why = NULL;
	int want = peer ? SF_PEER_COUNT : SF_MAP_COUNT;
	int desc = peer ? SF_PEER_DESC : SF_MAP_DESC;
	bool v1 = p->version < STATE_VERSION;

	memset(r, 0, sizeof(*r));
	r->line = p->line;
	if (n != want - (v1 ? 1 : 0)) {
		state_parse_error(p, "%s needs %d fields, not %d", f[0],
		    want - 1 - (v1 ? 1 : 0), n - 1);
		return false;
	}
	if (v1) {
		state_fields_v1(f, n, none, v2);
		f = v2;
	}
	if (!state_parse_common(p, f, r))
		return false;
	if (peer) {
		r->flags |= MAPPING_F_PEER;
		if (!state_parse_addr(p, f[SF_PEER_ADDR], "peer address",
		    &r->peer_addr) ||
		    !state_parse_port(p, f[SF_PEER_PORT], "peer port",
		    &r->peer_port))
			return false;
	}
	if (!state_desc_decode(f[desc], r->description, &why)) {
		state_parse_error(p, "%s", why);
		return false;
	}
	if ((why = state_record_check(r, p->img->hdr.n_upstream)) != NULL) {
		state_parse_error(p, "%s", why);
		return false;
	}
	return true;
}

static void
state_parse_record(struct state_parser *p, char **f, int n, bool peer)
{
	struct state_record r;

	if (state_parse_record_into(p, f, n, peer, &r) &&
	    state_image_add(p->img, &r) == -1)
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
	/* what a journal is bound to (state_journal_apply) */
	p->img->checksum = hash;
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
/* Called with the temp file written and synced, before the rename; -1
   gives up (the temp file is removed). */
typedef int	(*state_pre_rename_fn)(void *arg);

/*
 * Write through a temp file in the same directory (so the rename is
 * atomic), fsync it before the rename (else a crash can leave the new
 * name pointing at empty data) and fsync the directory after it (else the
 * rename itself may not survive).
 */
static int
state_write_with(const char *path, state_writer_fn writer, const void *arg,
    state_pre_rename_fn pre_rename, void *pre_arg)
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
	/*
	 * The directory is the unprivileged user's, and the first write of
	 * a start runs as root: a name planted there (a symbolic link to
	 * /etc/shadow, a hard link) must never be opened, or root truncates
	 * its target. Remove whatever has the temp name, then create a new
	 * file that cannot be anything else; a name planted again in
	 * between makes the open fail.
	 */
	if (unlink(tmp) == -1 && errno != ENOENT) {
		log_warn("state file %s: remove", tmp);
		return -1;
	}
	if ((fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW |
	    O_CLOEXEC, S_IRUSR | S_IWUSR)) == -1) {
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
	if (pre_rename != NULL && pre_rename(pre_arg) == -1)
		goto fail;
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
	return state_write_with(path, state_write_image, img, NULL, NULL);
}

/* ---- load ---------------------------------------------------------------- */

/* Why a state file or journal could not be opened, for the log. */
static const char *
state_open_error(int err)
{
	/* O_NOFOLLOW: the last name is a symbolic link */
	if (err == ELOOP)
		return "a symbolic link: refused (remove it; the state file "
		    "and its journal are plain files)";
	return strerror(err);
}

static int
state_read_file(const char *path, char **text, size_t *len)
{
	struct stat st;
	ssize_t r;
	size_t off = 0;
	int fd;

	/* never through a link planted by the directory's user; a FIFO
	   must not block the start (it is refused below) */
	if ((fd = open(path, O_RDONLY | O_NOFOLLOW | O_NONBLOCK |
	    O_CLOEXEC)) == -1)
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

/* The journal next to path: 0 applied (or none, or ignored: stale, a torn
   tail), -1 corrupt (*img emptied), -2 unreadable (errs say why). */
static int
state_load_journal(const char *path, struct state_image *img,
    struct state_errors *errs)
{
	struct state_journal_info info;
	char jpath[PATH_MAX], *text = NULL;
	size_t len = 0;
	int rc;

	if (snprintf(jpath, sizeof(jpath), "%s%s", path, STATE_JOURNAL_SUFFIX)
	    >= (int)sizeof(jpath)) {
		state_error(errs, "%s: %s", path, strerror(ENAMETOOLONG));
		return -2;
	}
	if (state_read_file(jpath, &text, &len) == -1) {
		if (errno == ENOENT)
			return 0;
		state_error(errs, "%s: %s", jpath, state_open_error(errno));
		state_image_free(img);
		return -2;
	}
	rc = state_journal_apply(jpath, text, len, img, errs, &info);
	free(text);
	if (rc == -1)
		return -1;
	if (info.stale)
		log_info("state journal %s follows an earlier state file (a "
		    "compaction was cut short): ignored", jpath);
	if (info.torn_line != 0)
		log_warnx("state journal %s:%lu: the last group is incomplete "
		    "(cut short by a crash; its replies were never sent): "
		    "ignored", jpath, (unsigned long)info.torn_line);
	return 0;
}

/* A corrupt base's journal, or a corrupt journal: moved aside too. */
static void
state_move_journal_aside(const char *path, uint64_t now_wall,
    struct state_errors *errs)
{
	char jpath[PATH_MAX], to[PATH_MAX];

	if (snprintf(jpath, sizeof(jpath), "%s%s", path, STATE_JOURNAL_SUFFIX)
	    >= (int)sizeof(jpath) || access(jpath, F_OK) == -1)
		return;
	if (state_move_aside(jpath, now_wall, to, sizeof(to)) == -1)
		state_error(errs, "%s: cannot move it aside: %s", jpath,
		    strerror(errno));
	else
		state_error(errs, "%s: moved to %s", jpath, to);
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
		state_error(errs, "%s: %s", path, state_open_error(errno));
		return STATE_LOAD_ERROR;
	}
	rc = state_parse(path, text, len, img, errs);
	free(text);
	if (rc == 0) {
		rc = state_load_journal(path, img, errs);
		if (rc == 0)
			return STATE_LOAD_OK;
		if (rc == -2)
			return STATE_LOAD_ERROR;
	}
	/* the journal goes with its base: replayed onto nothing, or onto
	   a base whose later changes are lost, it would mislead */
	state_move_journal_aside(path, now_wall, errs);
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
	uint64_t			*checksum;	/* out; may be NULL */
	size_t				*bytes;		/* out; may be NULL */
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
	if (src->checksum != NULL)
		*src->checksum = o.hash;
	if (src->bytes != NULL)
		*src->bytes = o.bytes;
	return 0;
}

int
state_write_table(const char *path, const struct state_header *hdr,
    const struct table *t, uint64_t now_ms, uint64_t now_wall)
{
	struct state_table_source src = { hdr, t, now_ms, now_wall, NULL,
	    NULL };

	errno = 0;
	return state_write_with(path, state_write_table_fn, &src, NULL,
	    NULL);
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

/* ---- the journal (docs/state.md "The journal") -------------------------- */

#define STATE_JOURNAL_MAGIC	"pcp-iwfd-journal"
#define STATE_JOURNAL_VERSION	1
#define STATE_JOURNAL_HDR_FIELDS 3	/* magic version base-checksum */
#define STATE_JOURNAL_COMMIT_FIELDS 3	/* commit count checksum */
#define STATE_DEL_MAP_FIELDS	5	/* del map proto addr port */
#define STATE_DEL_PEER_FIELDS	7	/* ... remote-addr remote-port */
#define STATE_INDEX_MIN		64
#define STATE_GROUP_HEADER_LINES 2	/* epoch, written */
#define STATE_GROUP_PREFIX	(sizeof("group ") - 1)

/*
 * Replaying a journal onto the base image: an open-addressing index of
 * the records by what identifies a mapping (a MAP's internal endpoint, a
 * PEER's 5-tuple; table_key), and a dead mark per record for the deleted
 * ones (a key that comes back takes its old slot again), packed away at
 * the end. O(1) per journal line.
 */
struct state_apply {
	struct state_image	*img;
	uint32_t		*index;		/* record index + 1; 0 empty */
	size_t			 size;
	uint8_t			*dead;
	size_t			 dead_cap;
};

static enum state_key
state_identity(const struct state_record *r)
{
	return state_record_is_peer(r) ? SK_PEER : SK_INTERNAL;
}

static uint32_t *
state_apply_slot(struct state_apply *a, const struct state_record *r)
{
	enum state_key k = state_identity(r);
	size_t slot = state_key_hash(r, k) & (a->size - 1);
	const struct state_record *o;

	while (a->index[slot] != 0) {
		o = &a->img->rec[a->index[slot] - 1];
		if (state_record_is_peer(o) == state_record_is_peer(r) &&
		    state_key_equal(o, r, k))
			break;
		slot = (slot + 1) & (a->size - 1);
	}
	return &a->index[slot];
}

/* (Re)build the index for at least `want` records: load below 1/2. */
static int
state_apply_rehash(struct state_apply *a, size_t want)
{
	uint32_t *old = a->index;
	size_t size = STATE_INDEX_MIN, i;

	while (size < 2 * want)
		size *= 2;
	if (size > UINT32_MAX || (a->index = calloc(size,
	    sizeof(*a->index))) == NULL) {
		a->index = old;
		return -1;
	}
	free(old);
	a->size = size;
	for (i = 0; i < a->img->count; i++)
		*state_apply_slot(a, &a->img->rec[i]) = (uint32_t)i + 1;
	return 0;
}

static int
state_apply_init(struct state_apply *a, struct state_image *img)
{
	memset(a, 0, sizeof(*a));
	a->img = img;
	if ((a->dead = calloc(img->count + STATE_INDEX_MIN, 1)) == NULL)
		return -1;
	a->dead_cap = img->count + STATE_INDEX_MIN;
	if (state_apply_rehash(a, img->count) == -1) {
		/* the caller frees nothing when init fails */
		free(a->dead);
		a->dead = NULL;
		return -1;
	}
	return 0;
}

static void
state_apply_free(struct state_apply *a)
{
	free(a->index);
	free(a->dead);
	a->index = NULL;
	a->dead = NULL;
}

/* A map or peer line of a committed group: insert or replace. */
static int
state_apply_upsert(struct state_apply *a, const struct state_record *r)
{
	uint32_t *slot;
	uint8_t *d;
	size_t cap;

	if ((slot = state_apply_slot(a, r)) != NULL && *slot != 0) {
		a->img->rec[*slot - 1] = *r;
		a->dead[*slot - 1] = 0;
		return 0;
	}
	if (2 * (a->img->count + 1) > a->size &&
	    state_apply_rehash(a, a->img->count + 1) == -1)
		return -1;
	if (a->img->count + 1 > a->dead_cap) {
		cap = a->dead_cap * 2;
		if ((d = realloc(a->dead, cap)) == NULL)
			return -1;
		memset(d + a->dead_cap, 0, cap - a->dead_cap);
		a->dead = d;
		a->dead_cap = cap;
	}
	if (state_image_add(a->img, r) == -1)
		return -1;
	*state_apply_slot(a, r) = (uint32_t)a->img->count;
	return 0;
}

/* A del line: the mapping of that key is gone. A key the image does not
   hold is no error: the table logs every removal of a mapping that was
   ever granted, also of one that was never saved (table.h). */
static void
state_apply_delete(struct state_apply *a, const struct state_record *key)
{
	uint32_t *slot = state_apply_slot(a, key);

	if (*slot != 0)
		a->dead[*slot - 1] = 1;
}

/* Pack the live records together (their order is of no meaning). */
static void
state_apply_pack(struct state_apply *a)
{
	size_t i, n = 0;

	for (i = 0; i < a->img->count; i++)
		if (!a->dead[i])
			a->img->rec[n++] = a->img->rec[i];
	a->img->count = n;
}

/* The journal's first line: magic, version, the base it follows. */
static int
state_journal_header(struct state_parser *p, char *line, uint64_t *base)
{
	char *f[STATE_FIELDS_MAX];
	uint8_t sum[sizeof(uint64_t)];
	unsigned long long v;
	size_t i;
	int n;

	n = state_split(line, f, STATE_FIELDS_MAX);
	if (n != STATE_JOURNAL_HDR_FIELDS ||
	    strcmp(f[0], STATE_JOURNAL_MAGIC) != 0) {
		state_parse_error(p, "not a pcp-iwfd state journal");
		return -1;
	}
	if (!state_number(f[1], INT_MAX, &v) || v != STATE_JOURNAL_VERSION) {
		state_parse_error(p, "journal version \"%s\" is not %d", f[1],
		    STATE_JOURNAL_VERSION);
		return -1;
	}
	if (!util_hex_decode(f[2], sum, sizeof(sum))) {
		state_parse_error(p, "journal base checksum is not %d hex "
		    "digits", STATE_HEX_DIGITS);
		return -1;
	}
	*base = 0;
	for (i = 0; i < sizeof(sum); i++)
		*base = *base << 8 | sum[i];
	return 0;
}

/* "commit <count> <checksum>": true when it closes the group right. */
static bool
state_journal_commit_line_ok(const char *text, size_t n, size_t count,
    uint64_t hash)
{
	char line[STATE_LINE_MAX], *f[STATE_FIELDS_MAX];
	unsigned long long c;
	uint8_t sum[sizeof(uint64_t)];
	uint64_t want = 0;
	size_t i;

	if (n >= sizeof(line) || memchr(text, '\0', n) != NULL)
		return false;
	memcpy(line, text, n);
	line[n] = '\0';
	if (state_split(line, f, STATE_FIELDS_MAX) !=
	    STATE_JOURNAL_COMMIT_FIELDS || strcmp(f[0], "commit") != 0 ||
	    !state_number(f[1], SIZE_MAX, &c) || c != count ||
	    !util_hex_decode(f[2], sum, sizeof(sum)))
		return false;
	for (i = 0; i < sizeof(sum); i++)
		want = want << 8 | sum[i];
	return want == hash;
}

static bool
state_line_is(const char *text, size_t n, const char *word)
{
	size_t w = strlen(word);

	return n > w && memcmp(text, word, w) == 0 && text[w] == ' ';
}

/* The commit lines from off on, counted up to 2. Damage with at most
   the commit line of its own group after it is in the last group: a crash
   while that was written (a torn or half-synced tail), not a damaged
   file. */
static int
state_commits_after(const char *text, size_t off, size_t len)
{
	const char *nl;
	int n = 0;

	while (off < len && n < 2) {
		if ((nl = memchr(text + off, '\n', len - off)) == NULL)
			break;
		if (state_line_is(text + off, (size_t)(nl - (text + off)),
		    "commit"))
			n++;
		off = (size_t)(nl - text) + 1;
	}
	return n;
}

/*
 * Pass 1, framing only: where the committed groups end. Each group is
 * "group <n>", its lines, "commit <lines> <checksum>", the checksum being
 * FNV-1a over the group's bytes before the commit line, started from the
 * previous group's checksum (the first from the base's): groups are bound
 * to their base and to their order. Sets *good_end and *torn_line (the
 * line where an unfinished last group starts, 0 none) and the groups
 * committed in info; -1 on a damage that is not a torn tail.
 */
static int
state_journal_frame(struct state_parser *p, const char *text, size_t len,
    size_t off, uint64_t chain, size_t *good_end,
    struct state_journal_info *info)
{
	const char *nl;
	uint64_t hash = 0;
	unsigned long long seq, want_seq = 1;
	size_t n, count = 0;
	uint32_t group_line = 0;
	char num[24];

	*good_end = off;
	while (off < len) {
		p->line++;
		if ((nl = memchr(text + off, '\n', len - off)) == NULL) {
			/* a last line cut short: the tail is torn */
			info->torn_line = group_line != 0 ? group_line :
			    p->line;
			return 0;
		}
		n = (size_t)(nl - (text + off));
		if (group_line == 0) {
			if (!state_line_is(text + off, n, "group") ||
			    n - STATE_GROUP_PREFIX >= sizeof(num)) {
				num[0] = '\0';
				seq = 0;
			} else {
				memcpy(num, text + off + STATE_GROUP_PREFIX,
				    n - STATE_GROUP_PREFIX);
				num[n - STATE_GROUP_PREFIX] = '\0';
			}
			if (num[0] == '\0' || !state_number(num, UINT64_MAX,
			    &seq) || seq != want_seq) {
				/* the last group's first line damaged */
				if (state_commits_after(text, off + n + 1,
				    len) <= 1) {
					info->torn_line = p->line;
					return 0;
				}
				state_parse_error(p, "expected \"group %llu\"",
				    want_seq);
				return -1;
			}
			group_line = p->line;
			hash = state_fnv(chain, text + off, n + 1);
			count = 0;
		} else if (state_line_is(text + off, n, "commit")) {
			if (!state_journal_commit_line_ok(text + off, n, count,
			    hash)) {
				if (state_commits_after(text, off + n + 1,
				    len) == 0) {
					/* the last group, its bytes not all
					   there or not the ones written */
					info->torn_line = group_line;
					return 0;
				}
				state_parse_error(p, "group %llu (line %lu): "
				    "bad count or checksum", want_seq,
				    (unsigned long)group_line);
				return -1;
			}
			chain = hash;
			want_seq++;
			info->groups++;
			group_line = 0;
			*good_end = off + n + 1;
		} else {
			hash = state_fnv(hash, text + off, n + 1);
			count++;
		}
		off += n + 1;
	}
	if (group_line != 0)
		info->torn_line = group_line;	/* no commit line */
	return 0;
}

/* "del map <proto> <addr> <port>", "del peer ... <remote> <port>": the
   key as a record (protocol, internal endpoint, peer flag and remote). */
static bool
state_parse_del(struct state_parser *p, char **f, int n,
    struct state_record *key)
{
	bool peer = n == STATE_DEL_PEER_FIELDS && strcmp(f[1], "peer") == 0;
	int proto;

	memset(key, 0, sizeof(*key));
	if (!peer && (n != STATE_DEL_MAP_FIELDS || strcmp(f[1], "map") != 0)) {
		state_parse_error(p, "expected \"del map <proto> <address> "
		    "<port>\" or \"del peer ... <remote> <port>\"");
		return false;
	}
	if ((proto = map_proto_parse(f[2])) < 0) {
		state_parse_error(p, "bad protocol \"%s\"", f[2]);
		return false;
	}
	key->protocol = (uint8_t)proto;
	if (!state_parse_addr(p, f[3], "internal address",
	    &key->internal_addr) ||
	    !state_parse_port(p, f[4], "internal port", &key->internal_port))
		return false;
	if (peer) {
		key->flags = MAPPING_F_PEER;
		if (!state_parse_addr(p, f[5], "peer address",
		    &key->peer_addr) ||
		    !state_parse_port(p, f[6], "peer port", &key->peer_port))
			return false;
	}
	return true;
}

/* Pass 2: one line of a committed group, applied. */
static void
state_journal_line(struct state_parser *p, struct state_apply *a, char *s)
{
	char *f[STATE_FIELDS_MAX];
	struct state_record r;
	unsigned long long v;
	int n;

	if ((n = state_split(s, f, STATE_FIELDS_MAX)) < 0) {
		state_parse_error(p, "empty field or stray space");
		return;
	}
	if (strcmp(f[0], "group") == 0 || strcmp(f[0], "commit") == 0)
		return;		/* checked by state_journal_frame */
	if (strcmp(f[0], "epoch") == 0) {
		if (state_parse_header_number(p, f, n, "epoch", UINT32_MAX,
		    &v))
			a->img->hdr.epoch = (uint32_t)v;
	} else if (strcmp(f[0], "written") == 0) {
		if (state_parse_header_number(p, f, n, "written",
		    STATE_TIME_MAX, &v))
			a->img->hdr.written = v;
	} else if (strcmp(f[0], "del") == 0) {
		if (state_parse_del(p, f, n, &r))
			state_apply_delete(a, &r);
	} else if (strcmp(f[0], "map") == 0 || strcmp(f[0], "peer") == 0) {
		if (state_parse_record_into(p, f, n, f[0][0] == 'p', &r) &&
		    state_apply_upsert(a, &r) == -1)
			state_parse_error(p, "out of memory");
	} else
		state_parse_error(p, "unknown journal line \"%s\"", f[0]);
}

static void
state_journal_replay(struct state_parser *p, struct state_apply *a,
    const char *text, size_t off, size_t end)
{
	char line[STATE_LINE_MAX];
	const char *nl;
	size_t n;

	while (off < end) {
		p->line++;
		nl = memchr(text + off, '\n', end - off);
		n = (size_t)(nl - (text + off));
		if (n >= sizeof(line))
			state_parse_error(p, "line longer than %d bytes",
			    STATE_LINE_MAX - 1);
		else if (memchr(text + off, '\0', n) != NULL ||
		    memchr(text + off, '\r', n) != NULL)
			state_parse_error(p, "NUL byte or carriage return in "
			    "line");
		else {
			memcpy(line, text + off, n);
			line[n] = '\0';
			state_journal_line(p, a, line);
		}
		off += n + 1;
	}
}

int
state_journal_apply(const char *name, const char *text, size_t len,
    struct state_image *img, struct state_errors *errs,
    struct state_journal_info *info)
{
	struct state_parser p = { .name = name, .img = img, .errs = errs,
	    .version = STATE_VERSION };
	struct state_apply a;
	char line[STATE_LINE_MAX];
	const char *nl;
	uint64_t base;
	size_t n, body, end;

	memset(info, 0, sizeof(*info));
	if (len == 0)
		return 0;	/* emptied by a compaction, then a crash */
	p.line = 1;
	if ((nl = memchr(text, '\n', len)) == NULL) {
		info->torn_line = 1;	/* its first line cut short */
		return 0;
	}
	n = (size_t)(nl - text);
	if (n >= sizeof(line) || memchr(text, '\0', n) != NULL) {
		state_parse_error(&p, "not a pcp-iwfd state journal");
		goto fail;
	}
	memcpy(line, text, n);
	line[n] = '\0';
	if (state_journal_header(&p, line, &base) == -1)
		goto fail;
	if (base != img->checksum) {
		/* written for an older base: a compaction wrote the base
		   that holds all of it, then stopped before emptying it */
		info->stale = true;
		return 0;
	}
	body = n + 1;
	if (state_journal_frame(&p, text, len, body, base, &end, info) == -1)
		goto fail;
	if (state_apply_init(&a, img) == -1) {
		state_parse_error(&p, "out of memory");
		goto fail;
	}
	p.line = 1;
	state_journal_replay(&p, &a, text, body, end);
	if (!p.failed)
		state_apply_pack(&a);
	state_apply_free(&a);
	if (!p.failed && state_check_duplicates(&p) == -1)
		state_parse_error(&p, "out of memory");
	if (!p.failed)
		return 0;
fail:
	state_image_free(img);
	return -1;
}

/* ---- the journal writer ------------------------------------------------- */

#define STATE_JOURNAL_BUF_MIN	4096

struct state_journal {
	char		*path;		/* the state file (the base) */
	char		*jpath;		/* <path>.journal */
	int		 fd;		/* -1 until the first compaction */
	bool		 ready;		/* the journal follows the base */
	uint64_t	 chain;		/* the last commit's checksum */
	uint64_t	 base_sum;	/* the base the journal follows */
	uint64_t	 new_sum;	/* the base being written */
	uint64_t	 seq;		/* groups since the base */
	uint64_t	 size;		/* bytes, all synced */
	size_t		 base_size;
	int64_t		 clock_offset_ms; /* wall - monotonic at the base */
	struct state_header base_hdr;	/* what the base's header holds */
	char		*buf;		/* one group being built */
	size_t		 len, cap;
	uint64_t	 hash;
	size_t		 lines;
	bool		 oom;
	struct state_journal_stats stats;
};

struct state_journal *
state_journal_new(const char *path)
{
	struct state_journal *j;

	if ((j = calloc(1, sizeof(*j))) == NULL)
		return NULL;
	j->fd = -1;
	if ((j->path = strdup(path)) == NULL ||
	    asprintf(&j->jpath, "%s%s", path, STATE_JOURNAL_SUFFIX) == -1) {
		j->jpath = NULL;
		state_journal_free(j);
		return NULL;
	}
	return j;
}

void
state_journal_free(struct state_journal *j)
{
	if (j == NULL)
		return;
	if (j->fd != -1)
		close(j->fd);
	free(j->path);
	free(j->jpath);
	free(j->buf);
	free(j);
}

const struct state_journal_stats *
state_journal_stats(const struct state_journal *j)
{
	return &j->stats;
}

const char *
state_journal_path(const struct state_journal *j)
{
	return j->jpath;
}

const char *
state_journal_base(const struct state_journal *j)
{
	return j->path;
}

static void
state_journal_put(struct state_journal *j, const char *line, size_t n)
{
	char *p;
	size_t cap;

	if (j->len + n > j->cap) {
		cap = j->cap == 0 ? STATE_JOURNAL_BUF_MIN : j->cap;
		while (cap < j->len + n)
			cap *= 2;
		if ((p = realloc(j->buf, cap)) == NULL) {
			j->oom = true;
			return;
		}
		j->buf = p;
		j->cap = cap;
	}
	memcpy(j->buf + j->len, line, n);
	j->len += n;
	j->hash = state_fnv(j->hash, line, n);
}

static void __attribute__((format(printf, 2, 3)))
state_journal_printf(struct state_journal *j, const char *fmt, ...)
{
	char line[STATE_LINE_MAX];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = state_vline(line, fmt, ap);
	va_end(ap);
	if (n == -1)
		j->oom = true;
	else
		state_journal_put(j, line, (size_t)n);
}

static void
state_journal_del(struct state_journal *j, const struct table_key *k)
{
	char ia[INET6_ADDRSTRLEN], pa[INET6_ADDRSTRLEN], proto[8];
	const char *pname;

	if ((pname = map_proto_name(k->protocol)) != NULL)
		(void)snprintf(proto, sizeof(proto), "%s", pname);
	else
		(void)snprintf(proto, sizeof(proto), "%u", k->protocol);
	if (k->peer)
		state_journal_printf(j, "del peer %s %s %u %s %u\n", proto,
		    pcp_addr_ntop(&k->internal_addr, ia, sizeof(ia)),
		    k->internal_port,
		    pcp_addr_ntop(&k->peer_addr, pa, sizeof(pa)), k->peer_port);
	else
		state_journal_printf(j, "del map %s %s %u\n", proto,
		    pcp_addr_ntop(&k->internal_addr, ia, sizeof(ia)),
		    k->internal_port);
	j->lines++;
}

static void
state_key_from_mapping(const struct mapping *m, struct table_key *k)
{
	const struct mapping_peer *peer = mapping_peer(m);

	memset(k, 0, sizeof(*k));
	k->internal_addr = m->internal_addr;
	k->internal_port = m->internal_port;
	k->protocol = m->protocol;
	if (peer != NULL) {
		k->peer = true;
		k->peer_addr = peer->addr;
		k->peer_port = peer->port;
	}
}

/* A changed mapping: its line as the base would hold it, or a del when
   the base would not hold it (any more). A mapping never granted was
   never saved: nothing to say. */
static void
state_journal_mapping(struct state_journal *j, const struct mapping *m,
    const struct state_header *hdr, uint64_t now_ms, uint64_t now_wall)
{
	char line[STATE_LINE_MAX];
	struct state_record r;
	struct table_key k;
	size_t len;

	if ((m->flags & MAPPING_F_WAS_GRANTED) == 0)
		return;
	if (state_record_from_mapping(m, now_ms, now_wall, &r) &&
	    state_record_writable(&r)) {
		if (r.upstream != STATE_UPSTREAM_NONE &&
		    r.upstream >= hdr->n_upstream)
			r.upstream = STATE_UPSTREAM_NONE;
		if ((len = state_record_line(&r, hdr->n_upstream, line,
		    sizeof(line))) != 0) {
			state_journal_put(j, line, len);
			j->lines++;
			return;
		}
	}
	state_key_from_mapping(m, &k);
	state_journal_del(j, &k);
}

/* One group: the header values that move, the removed keys, then the
   changed mappings (a key removed and added again ends up added). */
static void
state_journal_build(struct state_journal *j, const struct state_header *hdr,
    const struct table *t, uint64_t now_ms, uint64_t now_wall)
{
	const struct mapping *m;
	size_t i;

	j->len = 0;
	j->lines = 0;
	j->oom = false;
	j->hash = j->chain;
	state_journal_printf(j, "group %llu\n",
	    (unsigned long long)j->seq + 1);
	state_journal_printf(j, "epoch %lu\n", (unsigned long)hdr->epoch);
	state_journal_printf(j, "written %llu\n",
	    (unsigned long long)now_wall);
	j->lines += STATE_GROUP_HEADER_LINES;
	for (i = 0; i < table_removed_count(t); i++)
		state_journal_del(j, table_removed_at(t, i));
	for (i = 0; (m = table_dirty_at(t, i)) != NULL; i++)
		state_journal_mapping(j, m, hdr, now_ms, now_wall);
}

static int
state_pwrite_all(int fd, const char *buf, size_t len, uint64_t off)
{
	ssize_t n;

	while (len > 0) {
		if ((n = pwrite(fd, buf, len, (off_t)off)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0) {
			errno = EIO;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
		off += (uint64_t)n;
	}
	return 0;
}

static int
state_journal_append(struct state_journal *j, const struct state_header *hdr,
    const struct table *t, uint64_t now_ms, uint64_t now_wall)
{
	uint64_t sum;
	char commit[STATE_LINE_MAX];
	int n, saved;

	state_journal_build(j, hdr, t, now_ms, now_wall);
	/* only mappings never saved changed (requested, refused): nothing
	   a restart would miss */
	if (!j->oom && j->lines == STATE_GROUP_HEADER_LINES)
		return 0;
	sum = j->hash;
	n = snprintf(commit, sizeof(commit), "commit %zu %016llx\n", j->lines,
	    (unsigned long long)sum);
	state_journal_put(j, commit, (size_t)n);
	if (j->oom) {
		errno = ENOMEM;
		log_warn("state journal %s", j->jpath);
		return -1;
	}
	if (state_pwrite_all(j->fd, j->buf, j->len, j->size) == -1 ||
	    fdatasync(j->fd) == -1) {
		saved = errno;
		log_warn("state journal %s: append", j->jpath);
		/* cut the half-written group off, so that the next one
		   follows the last good one; when even that fails the
		   next commit is a compaction */
		if (ftruncate(j->fd, (off_t)j->size) == -1)
			j->ready = false;
		errno = saved;
		j->stats.failures++;
		return -1;
	}
	j->size += j->len;
	j->chain = sum;
	j->seq++;
	j->stats.groups++;
	j->stats.bytes += j->len;
	return 0;
}

/* The base's header values a group cannot change: a change means a
   compaction. */
static bool
state_header_same(const struct state_header *a, const struct state_header *b)
{
	size_t i;

	if (a->has_natpmp_key != b->has_natpmp_key ||
	    (a->has_natpmp_key && memcmp(a->natpmp_key, b->natpmp_key,
	    sizeof(a->natpmp_key)) != 0) || a->n_upstream != b->n_upstream)
		return false;
	for (i = 0; i < a->n_upstream && i < STATE_MAX_UPSTREAM; i++)
		if (a->upstream[i].port != b->upstream[i].port ||
		    a->upstream[i].epoch_known != b->upstream[i].epoch_known ||
		    a->upstream[i].epoch != b->upstream[i].epoch ||
		    !IN6_ARE_ADDR_EQUAL(&a->upstream[i].addr,
		    &b->upstream[i].addr))
			return false;
	return true;
}

static int64_t
state_clock_offset(uint64_t now_ms, uint64_t now_wall)
{
	return (int64_t)(now_wall * STATE_MS_PER_S) - (int64_t)now_ms;
}

/* Must this commit be a compaction rather than a group? */
static bool
state_journal_must_compact(const struct state_journal *j,
    const struct state_header *hdr, const struct table *t, uint64_t now_ms,
    uint64_t now_wall)
{
	uint64_t limit = j->base_size > STATE_JOURNAL_COMPACT_MIN ?
	    j->base_size : STATE_JOURNAL_COMPACT_MIN;
	int64_t step;

	if (!j->ready || j->fd == -1 || table_dirty_lost(t) ||
	    j->size > limit || !state_header_same(&j->base_hdr, hdr))
		return true;
	/* every wall time in the base was computed at its `written`; a
	   clock step since would skew the groups' against them */
	step = state_clock_offset(now_ms, now_wall) - j->clock_offset_ms;
	return step > STATE_JOURNAL_CLOCK_SLACK_MS ||
	    step < -STATE_JOURNAL_CLOCK_SLACK_MS;
}

/* Open (creating) the journal; the directory is synced when it was new,
   or its name might not survive a crash. */
static int
state_journal_open_file(struct state_journal *j)
{
	struct stat st;
	int dfd, rc = 0, saved;

	if (j->fd != -1)
		return 0;
	/* The directory is the user's and root opens the journal at start
	   (then truncates it): never through a link planted there. */
	if ((j->fd = open(j->jpath, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC,
	    S_IRUSR | S_IWUSR)) == -1) {
		if (errno == ELOOP)
			log_warnx("state journal %s: %s", j->jpath,
			    state_open_error(ELOOP));
		return -1;
	}
	/* nor a FIFO, a device, or a second name of another file */
	if (fstat(j->fd, &st) == -1)
		rc = -1;
	else if (!S_ISREG(st.st_mode) || st.st_nlink != 1) {
		log_warnx("state journal %s: not a plain file with one name: "
		    "refused (remove it)", j->jpath);
		errno = EINVAL;
		rc = -1;
	}
	if (rc == -1) {
		saved = errno;
		close(j->fd);
		j->fd = -1;
		errno = saved;
		return -1;
	}
	if ((dfd = state_open_dir(j->path)) == -1 || fsync(dfd) == -1)
		rc = -1;
	if (dfd != -1)
		close(dfd);
	return rc;
}

/* Empty the journal and bind it to the base just written. */
static int
state_journal_reset(struct state_journal *j, uint64_t base_sum)
{
	char line[STATE_LINE_MAX];
	int n;

	n = snprintf(line, sizeof(line), "%s %d %016llx\n",
	    STATE_JOURNAL_MAGIC, STATE_JOURNAL_VERSION,
	    (unsigned long long)base_sum);
	if (state_journal_open_file(j) == -1 || ftruncate(j->fd, 0) == -1 ||
	    state_pwrite_all(j->fd, line, (size_t)n, 0) == -1 ||
	    fdatasync(j->fd) == -1) {
		log_warn("state journal %s: reset", j->jpath);
		return -1;
	}
	j->size = (uint64_t)n;
	j->chain = base_sum;
	j->base_sum = base_sum;
	j->seq = 0;
	return 0;
}

/*
 * state_pre_rename_fn of a compaction. A journal is bound to its base by
 * the base's checksum, so the usual order (rename the new base, then
 * empty the journal) leaves, after a crash in between, an old journal
 * that the new base does not match: ignored. A new base with the very
 * bytes of the old one (same records, same second) would match it,
 * though, and its groups would be replayed onto a state that has moved
 * on. The old base then already is the new state by itself: the journal
 * is emptied first.
 */
static int
state_journal_pre_rename(void *arg)
{
	struct state_journal *j = arg;

	if (!j->ready || j->fd == -1 || j->new_sum != j->base_sum)
		return 0;
	if (ftruncate(j->fd, 0) == -1 || fdatasync(j->fd) == -1) {
		log_warn("state journal %s: empty", j->jpath);
		return -1;
	}
	j->size = 0;
	j->ready = false;
	return 0;
}

static int
state_journal_compact(struct state_journal *j, const struct state_header *hdr,
    const struct table *t, uint64_t now_ms, uint64_t now_wall)
{
	size_t bytes = 0;
	struct state_table_source src = { hdr, t, now_ms, now_wall,
	    &j->new_sum, &bytes };
	uint64_t sum;

	errno = 0;
	/* the base first, renamed into place and its directory synced:
	   only then may the journal it replaces be emptied (a crash in
	   between leaves a journal bound to the old base, ignored) */
	if (state_write_with(j->path, state_write_table_fn, &src,
	    state_journal_pre_rename, j) == -1) {
		j->stats.failures++;
		return -1;
	}
	sum = j->new_sum;
	j->stats.compactions++;
	j->base_hdr = *hdr;
	j->base_size = bytes;
	j->clock_offset_ms = state_clock_offset(now_ms, now_wall);
	/* the base holds everything: durable even if the reset fails; the
	   next commit then compacts again */
	j->ready = state_journal_reset(j, sum) == 0;
	return 0;
}

int
state_journal_commit(struct state_journal *j, const struct state_header *hdr,
    struct table *t, uint64_t now_ms, uint64_t now_wall, bool whole)
{
	int rc;

	if (!whole && !state_journal_must_compact(j, hdr, t, now_ms,
	    now_wall)) {
		if (table_dirty_count(t) == 0 && table_removed_count(t) == 0)
			return 0;
		rc = state_journal_append(j, hdr, t, now_ms, now_wall);
	} else
		rc = state_journal_compact(j, hdr, t, now_ms, now_wall);
	if (rc == 0)
		table_dirty_clear(t);
	return rc;
}
