/*
 * upnp_soap.c - the UPnP IGD actions on the loop thread (spec/iwf.md
 * §3.3-§3.5, §4; RFC 6970 §4, §5; checklists U-03..U-13, I-01..I-15).
 *
 *   AddPortMapping        MAP with PREFER_FAILURE (RFC 6970 §5.6.2, I-01)
 *   AddAnyPortMapping     MAP without it; NewReservedPort = the grant (I-02)
 *   DeletePortMapping*    a delete with the mapping's nonce; nothing of the
 *                         requester's there -> 714 / 730, no PCP (I-04)
 *   Get*PortMapping*      the local table, never proxied (§5.7, I-05)
 *   GetExternalIPAddress  the outermost address (U-09), waited for a while
 *                         when an upstream is configured and none is known
 *   the rest              local answers (spec/iwf.md §3.3)
 *
 * A mapping made here carries the synthesized nonce of (UPnP, client,
 * protocol, internal port) (I-03), so a repeated AddPortMapping or
 * AddAnyPortMapping of the same internal endpoint is a refresh of the same
 * mapping in the table - never a second one - and extends its lease.
 *
 * Third parties (U-04, X-03, RFC 6887 §13.1): NewInternalClient is the
 * control point itself, unless the CP is a third_party_host
 * (policy_third_party_ok); then it may be another LAN host X, and the
 * mapping is X's UPnP mapping in every respect: its nonce is derived from
 * X's address (iwf_nonce.h), so X's own AddPortMapping of the same
 * endpoint refreshes it and X's DeletePortMapping deletes it, as if X had
 * made it. A listed CP may likewise delete any host's UPnP mapping by
 * (protocol, external port); never one of another mechanism (NAT-PMP,
 * PCP, static: another nonce is another owner), and
 * DeletePortMappingRange stays the CP's own mappings. An unlisted CP gets
 * 606 (IGD:2) / 718 (IGD:1) as before.
 *
 * Everything runs on the loop thread; the glue (upnp.c) carries actions
 * and replies across. Nothing here calls into the proxy from one of the
 * proxy's callbacks.
 */
#include <sys/queue.h>

#include <arpa/inet.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"
#include "map.h"
#include "map_err.h"
#include "pcp_wire.h"
#include "policy.h"
#include "proxy.h"
#include "table.h"
#include "upnp_soap.h"
#include "util.h"

#define UPNP_UI2_MAX		UINT16_MAX
#define UPNP_UI4_MAX		UINT32_MAX
/* A lease that never ends asks the policy for the longest lifetime it
   grants (it clamps to max_lifetime); UINT32_MAX itself would read as a
   static mapping (TABLE_LIFETIME_INFINITE). */
#define UPNP_LIFETIME_LONGEST	(UINT32_MAX - 1)
#define UPNP_WAN_ACCESS_TYPE	"Ethernet"
#define UPNP_CONNECTION_TYPE	"IP_Routed"

/* ---- replies ------------------------------------------------------------- */

void
upnp_reply_free(struct upnp_reply *r)
{
	size_t i;

	for (i = 0; i < UPNP_OUT_MAX; i++) {
		free(r->out[i].long_value);
		r->out[i].long_value = NULL;
	}
}

static void
upnp_reply_clear(struct upnp_reply *r)
{
	upnp_reply_free(r);
	memset(r, 0, sizeof(*r));
}

/* U-13: the code and its name from the one error table, per version. */
static void
upnp_reply_err(struct upnp_reply *r, unsigned int version, enum map_err err)
{
	const struct map_err_row *row = map_err_row(err);
	unsigned int code = version >= 2 ? row->upnp_v2 : row->upnp_v1;

	if (code == 0)		/* MAP_OK is no error: a bug, say 501 */
		code = map_err_row(MAP_ERR_INTERNAL)->upnp_v1;
	upnp_reply_clear(r);
	r->err = (int)code;
	r->err_desc = map_err_upnp_name(code);
}

static void	upnp_out(struct upnp_reply *, const char *, const char *, ...)
		    __attribute__((format(printf, 3, 4)));

static void
upnp_out(struct upnp_reply *r, const char *name, const char *fmt, ...)
{
	struct upnp_out *o;
	va_list ap;

	if (r->nout >= UPNP_OUT_MAX) {
		log_warnx("upnp: too many out arguments (%s)", name);
		return;
	}
	o = &r->out[r->nout++];
	o->name = name;
	va_start(ap, fmt);
	(void)vsnprintf(o->value, sizeof(o->value), fmt, ap);
	va_end(ap);
}

/* ---- argument parsing (X-05: strict, bounded, no DNS) -------------------- */

static const char *
upnp_arg(const struct upnp_action *a, const char *name)
{
	size_t i;

	for (i = 0; i < a->nargs; i++)
		if (strcmp(a->args[i].name, name) == 0)
			return a->args[i].value;
	return NULL;
}

/* Strict decimal within [0, max] (no sign, no blanks, no atoi). */
static bool
upnp_parse_uint(const char *text, unsigned long long max,
    unsigned long long *v)
{
	return text != NULL && util_parse_decimal(text, v) && *v <= max;
}

static bool
upnp_arg_ui2(const struct upnp_action *a, const char *name, uint16_t *v)
{
	unsigned long long n;

	if (!upnp_parse_uint(upnp_arg(a, name), UPNP_UI2_MAX, &n))
		return false;
	*v = (uint16_t)n;
	return true;
}

static bool
upnp_arg_ui4(const struct upnp_action *a, const char *name, uint32_t *v)
{
	unsigned long long n;

	if (!upnp_parse_uint(upnp_arg(a, name), UPNP_UI4_MAX, &n))
		return false;
	*v = (uint32_t)n;
	return true;
}

/* UPnP Device Architecture 1.0 §2.5: boolean is 0/false/no or
   1/true/yes. */
static bool
upnp_parse_bool(const char *text, bool *v)
{
	if (text == NULL)
		return false;
	if (strcmp(text, "1") == 0 || strcasecmp(text, "true") == 0 ||
	    strcasecmp(text, "yes") == 0)
		*v = true;
	else if (strcmp(text, "0") == 0 || strcasecmp(text, "false") == 0 ||
	    strcasecmp(text, "no") == 0)
		*v = false;
	else
		return false;
	return true;
}

/* spec/iwf.md §3.5: TCP or UDP (lower-case clients exist), else 402. */
static bool
upnp_arg_proto(const struct upnp_action *a, uint8_t *proto)
{
	const char *p = upnp_arg(a, "NewProtocol");

	if (p == NULL)
		return false;
	if (strcasecmp(p, "TCP") == 0)
		*proto = MAP_PROTO_TCP;
	else if (strcasecmp(p, "UDP") == 0)
		*proto = MAP_PROTO_UDP;
	else
		return false;
	return true;
}

/* RemoteHost "" is the wildcard (miniupnpd takes "*" too); a missing one
   is the wildcard as well, as miniupnpd has it. */
static bool
upnp_remote_wildcard(const struct upnp_action *a)
{
	const char *r = upnp_arg(a, "NewRemoteHost");

	return r == NULL || *r == '\0' || strcmp(r, "*") == 0;
}

static const char *
upnp_proto_text(uint8_t proto)
{
	return proto == MAP_PROTO_TCP ? "TCP" : "UDP";
}

/* Cut a description to MAP_DESCRIPTION_MAX bytes on a UTF-8 character
   boundary (RFC 7220 §4 stores 128). */
static void
upnp_description(const char *src, char dst[MAP_DESCRIPTION_MAX + 1])
{
	size_t len = strlen(src);

	if (len > MAP_DESCRIPTION_MAX) {
		len = MAP_DESCRIPTION_MAX;
		/* src[len] continues a character: drop that character */
		while (len > 0 && ((unsigned char)src[len] & 0xc0) == 0x80)
			len--;
	}
	memcpy(dst, src, len);
	dst[len] = '\0';
}

/*
 * A stored description as XML text can carry it: PCP clients may have put
 * any bytes in theirs (RFC 7220 says UTF-8, nobody checks). Control
 * characters and broken UTF-8 become '?'.
 */
static void
upnp_clean_text(const char *src, char *dst, size_t size)
{
	const unsigned char *s = (const unsigned char *)src;
	size_t o = 0, need, k;

	while (*s != '\0' && o + 1 < size) {
		need = *s < 0x80 ? 0 : (*s & 0xe0) == 0xc0 ? 1 :
		    (*s & 0xf0) == 0xe0 ? 2 : (*s & 0xf8) == 0xf0 ? 3 : 4;
		for (k = 1; need < 4 && k <= need; k++)
			if ((s[k] & 0xc0) != 0x80)
				need = 4;
		if (need == 4 || (need == 0 && *s < 0x20 && *s != '\t' &&
		    *s != '\n' && *s != '\r') || *s == 0x7f) {
			dst[o++] = '?';
			s++;
			continue;
		}
		if (o + need + 1 >= size)
			break;
		memcpy(dst + o, s, need + 1);
		o += need + 1;
		s += need + 1;
	}
	dst[o] = '\0';
}

/* ---- the local table as UPnP sees it -------------------------------------- */

/* The wait of one client: a map request or an address request. */
enum upnp_wait_kind {
	UPNP_WAIT_MAP = 0,
	UPNP_WAIT_ADDR,
};

struct upnp_wait {
	TAILQ_ENTRY(upnp_wait)	 entry;
	struct upnp_soap	*s;
	enum upnp_wait_kind	 kind;
	bool			 any_port;	/* AddAnyPortMapping */
	upnp_soap_done_fn	 done;
	void			*arg;
	uint64_t		 deadline;	/* UPNP_WAIT_ADDR */
};
TAILQ_HEAD(upnp_wait_list, upnp_wait);

struct upnp_soap {
	struct upnp_soap_params	 p;
	struct upnp_wait_list	 maps;		/* waiting for the proxy */
	struct upnp_wait_list	 addrs;		/* for the external address */
	/* GetGenericPortMappingEntry's cursor: the listed index gen_index is
	   at table_at(gen_pos) while the table's generation stays. */
	bool			 gen_valid;
	uint64_t		 gen_generation;
	size_t			 gen_index, gen_pos;
	/* PortMappingNumberOfEntries, counted for count_generation */
	bool			 count_valid;
	uint64_t		 count_generation, count_at;
	uint32_t		 count;
};

static bool
upnp_is_live(const struct mapping *m)
{
	return m->state == MAP_STATE_GRANTED || m->state == MAP_STATE_RENEWING;
}

/*
 * What GetGeneric/GetSpecific/GetListOfPortMappings and the entry count
 * show (I-05): live IPv4 TCP/UDP MAP mappings of every origin - NAT-PMP,
 * PCP and static ones too, it is one table - but no PEER flow (RFC 6887
 * §12: no inbound mapping) and not the address probe's.
 */
static bool
upnp_listed(const struct upnp_soap *s, const struct mapping *m)
{
	return (m->flags & MAPPING_F_PEER) == 0 && upnp_is_live(m) &&
	    (m->protocol == MAP_PROTO_TCP || m->protocol == MAP_PROTO_UDP) &&
	    pcp_addr_is_v4(&m->internal_addr) &&
	    (s->p.hidden == NULL || !s->p.hidden(s->p.cb_arg, m));
}

/*
 * NewLeaseDuration (spec/iwf.md §4.3): the remaining UPnP lease; IGD:1
 * says 0 for one that never ends, IGD:2 has no such value and caps at
 * 604800. A finite lease is at least 1 s, never 0 ("infinite" in IGD:1).
 */
static uint32_t
upnp_lease_out(const struct upnp_soap *s, const struct mapping *m,
    uint64_t now)
{
	uint32_t left = mapping_lease_remaining(m, now);

	if (s->p.version >= 2)
		return left > UPNP_V2_LEASE_MAX ? UPNP_V2_LEASE_MAX :
		    left == 0 ? 1 : left;
	if (left == TABLE_LIFETIME_INFINITE)
		return 0;
	return left == 0 ? 1 : left;
}

static void
upnp_addr_text(const struct in6_addr *a, char *buf, size_t size)
{
	struct in_addr v4;

	buf[0] = '\0';
	if (!pcp_addr_is_v4(a))
		return;
	pcp_addr_to_v4(a, &v4);
	if (inet_ntop(AF_INET, &v4, buf, (socklen_t)size) == NULL)
		buf[0] = '\0';
}

/*
 * The mapping a CP means by (protocol, external port): the external port
 * is the outermost one, what it was told. The requester's own first (a
 * walk of its list, bounded by the per-host quota), else the mapping
 * holding that gateway port, when its outer port is the same (the usual
 * case; with a carrier that moved the port, another host's mapping is
 * not found and the answer is 714, which tells the CP no more than 606).
 */
static struct mapping *
upnp_find_outer(const struct upnp_soap *s, const struct in6_addr *requester,
    uint8_t proto, uint16_t port)
{
	struct mapping *m;

	for (m = table_host_first(s->p.table, requester); m != NULL;
	    m = table_host_next(m))
		if (m->protocol == proto && m->outer_port == port &&
		    upnp_listed(s, m))
			return m;
	m = table_find_external(s->p.table, proto, port);
	if (m != NULL && m->outer_port == port && upnp_listed(s, m))
		return m;
	return NULL;
}

/* Is m the requester's, made through UPnP (so a delete of it is its)? */
static bool
upnp_own(const struct mapping *m, const struct in6_addr *requester)
{
	return IN6_ARE_ADDR_EQUAL(&m->internal_addr, requester);
}

/* May the requester act for other LAN hosts (third_party_host)? */
static bool
upnp_third_party_ok(const struct upnp_soap *s, const struct in6_addr *requester)
{
	return s->p.policy != NULL &&
	    policy_third_party_ok(s->p.policy, requester);
}

/* ---- running one action --------------------------------------------------- */

struct upnp_ctx {
	struct upnp_soap		*s;
	const struct upnp_action	*act;
	uint64_t			 now;
	upnp_soap_done_fn		 done;
	void				*arg;
	struct upnp_reply		*reply;
};

static bool
upnp_fail(struct upnp_ctx *c, enum map_err err)
{
	upnp_reply_err(c->reply, c->s->p.version, err);
	return true;
}

static bool
upnp_connected(const struct upnp_soap *s)
{
	return s->p.connected == NULL || s->p.connected(s->p.cb_arg);
}

/* The outermost external address as text, "" while unknown (U-09). */
static bool
upnp_ext_addr_text(const struct upnp_soap *s, char *buf, size_t size)
{
	struct in6_addr a;

	buf[0] = '\0';
	if (s->p.ext_addr == NULL || !s->p.ext_addr(s->p.cb_arg, &a))
		return false;
	upnp_addr_text(&a, buf, size);
	return buf[0] != '\0';
}

/* ---- WANIPConnection: adding --------------------------------------------- */

/* The neutral error of an Add, refined where the table knows more. */
static enum map_err
upnp_add_err(const struct upnp_soap *s, const struct map_req *req,
    enum map_err err)
{
	const struct mapping *holder;

	switch (err) {
	case MAP_ERR_CONFLICT:
		/* spec/iwf.md §4.3: the port's holder is another
		   mechanism's (729 on IGD:2) or another UPnP host's (718) */
		holder = table_find_external(s->p.table, req->protocol,
		    req->ext_port);
		if (holder != NULL && holder->origin != MAP_ORIGIN_UPNP)
			return MAP_ERR_OTHER_MECHANISM;
		return err;
	case MAP_ERR_NOT_FOUND:
		/* deleted while it waited: it did not come through */
		return MAP_ERR_NETWORK_FAILURE;
	default:
		return err;
	}
}

static void
upnp_add_reply(const struct upnp_soap *s, const struct map_req *req,
    bool any_port, const struct map_result *res, struct upnp_reply *r)
{
	if (res->err != MAP_OK) {
		upnp_reply_err(r, s->p.version, upnp_add_err(s, req,
		    res->err));
		return;
	}
	upnp_reply_clear(r);
	/* U-12: the port the outside world uses */
	if (any_port)
		upnp_out(r, "NewReservedPort", "%u", res->ext_port);
}

static struct upnp_wait *
upnp_wait_new(struct upnp_soap *s, enum upnp_wait_kind kind,
    upnp_soap_done_fn done, void *arg)
{
	struct upnp_wait *w;

	if ((w = calloc(1, sizeof(*w))) == NULL)
		return NULL;
	w->s = s;
	w->kind = kind;
	w->done = done;
	w->arg = arg;
	TAILQ_INSERT_TAIL(kind == UPNP_WAIT_MAP ? &s->maps : &s->addrs, w,
	    entry);
	return w;
}

static void
upnp_wait_free(struct upnp_wait *w)
{
	TAILQ_REMOVE(w->kind == UPNP_WAIT_MAP ? &w->s->maps : &w->s->addrs, w,
	    entry);
	free(w);
}

/* proxy_done_fn: the later answer to an Add. */
static void
upnp_map_done(void *arg, const struct map_req *req,
    const struct map_result *res)
{
	struct upnp_wait *w = arg;
	struct upnp_soap *s = w->s;
	upnp_soap_done_fn done = w->done;
	void *done_arg = w->arg;
	struct upnp_reply r;

	memset(&r, 0, sizeof(r));
	upnp_add_reply(s, req, w->any_port, res, &r);
	upnp_wait_free(w);
	if (done != NULL)
		done(done_arg, &r);
	upnp_reply_free(&r);
}

/*
 * The lease (spec/iwf.md §3.5, §4.3 "Lifetime"; RFC 6970 §5.9): IGD:1 0
 * is infinite - never 725 (clients fall back both ways); IGD:2 0 or more
 * than 604800 is 604800. The requested lifetime is the lease (the policy
 * clamps it); a lease beyond the grant is renewed by the proxy (I-07).
 */
static void
upnp_lease(const struct upnp_soap *s, uint32_t lease, struct map_req *req)
{
	if (s->p.version >= 2) {
		if (lease == 0 || lease > UPNP_V2_LEASE_MAX)
			lease = UPNP_V2_LEASE_MAX;
		req->lease = lease;
		req->lifetime = lease;
	} else if (lease == 0) {
		req->lease = MAP_LEASE_INFINITE;
		req->lifetime = UPNP_LIFETIME_LONGEST;
	} else {
		req->lease = lease;
		req->lifetime = lease;
	}
}

/*
 * AddPortMapping / AddAnyPortMapping arguments into a struct map_req
 * (RFC 6970 §4.1, spec/iwf.md §4.2), or the error. Arguments miniupnpd
 * does without keep its defaults, so a client it serves is served: no
 * NewRemoteHost is the wildcard, no NewEnabled is 1, no NewLeaseDuration
 * is 0, no description is "", and an empty NewInternalClient is the CP
 * (miniupnp #236). Present and bad is 402.
 */
static enum map_err
upnp_add_req(struct upnp_ctx *c, bool any_port, struct map_req *req)
{
	const struct upnp_soap *s = c->s;
	const struct upnp_action *a = c->act;
	const char *client, *ext, *desc, *v;
	struct in_addr v4;
	struct in6_addr internal;
	uint32_t lease = 0;
	bool enabled = true;

	memset(req, 0, sizeof(*req));
	client = upnp_arg(a, "NewInternalClient");
	ext = upnp_arg(a, "NewExternalPort");
	/* 716 for the "*" miniupnpd knows as the wildcard too (U-05) */
	if (!any_port && ext != NULL && strcmp(ext, "*") == 0)
		return MAP_ERR_WILDCARD_EXT_PORT;
	if (!upnp_arg_ui2(a, "NewExternalPort", &req->ext_port) ||
	    !upnp_arg_ui2(a, "NewInternalPort", &req->internal_port) ||
	    !upnp_arg_proto(a, &req->protocol) ||
	    ((v = upnp_arg(a, "NewEnabled")) != NULL &&
	    !upnp_parse_bool(v, &enabled)) ||
	    (upnp_arg(a, "NewLeaseDuration") != NULL &&
	    !upnp_arg_ui4(a, "NewLeaseDuration", &lease)))
		return MAP_ERR_INVALID_ARGS;
	/* RFC 6970 §4.1 (I-15): an IWF MUST refuse a disabled mapping; the
	   code is unstated, 402 [derived] */
	if (!enabled)
		return MAP_ERR_INVALID_ARGS;
	/*
	 * A specific RemoteHost would be a PCP FILTER (RFC 6970 §4.1). IGD:1
	 * may refuse it (726); IGD:2 must take it, but we make no FILTER yet
	 * and answer 726 too rather than open the port to everybody.
	 */
	if (!upnp_remote_wildcard(a))
		return MAP_ERR_REMOTE_HOST_WILDCARD;
	/* U-05: ExternalPort 0 -> 716; in AddAnyPortMapping only a hint */
	if (req->ext_port == 0 && !any_port)
		return MAP_ERR_WILDCARD_EXT_PORT;
	/* U-05: InternalPort 0 -> 732 (v2) / 402 (v1) */
	if (req->internal_port == 0)
		return MAP_ERR_WILDCARD_INT_PORT;
	/* U-04, X-03: an IPv4 literal (no name is ever resolved) equal to
	   the TCP peer, or another host's from a third_party_host (the
	   policy checks that it is a LAN host: 606); else 606 (v2) /
	   718 (v1) */
	/* WANIPConnection maps IPv4 only: a control point that reached
	   pupnp over IPv6 gets no (hidden, unlistable) IPv6 mapping (fix,
	   review) */
	if (!pcp_addr_is_v4(&a->requester))
		return MAP_ERR_THIRD_PARTY_DENIED;
	if (client == NULL || *client == '\0')
		internal = a->requester;
	else if (inet_pton(AF_INET, client, &v4) != 1)
		return MAP_ERR_INVALID_ARGS;
	else
		pcp_addr_from_v4(&internal, &v4);
	if (!IN6_ARE_ADDR_EQUAL(&internal, &a->requester)) {
		if (!upnp_third_party_ok(s, &a->requester))
			return MAP_ERR_THIRD_PARTY_DENIED;
		req->flags |= MAP_F_THIRD_PARTY;
	}
	req->origin = MAP_ORIGIN_UPNP;
	req->requester = a->requester;
	/* the nonce is the internal host's: the mapping is X's (see top) */
	req->internal_addr = internal;
	v4.s_addr = 0;
	pcp_addr_from_v4(&req->ext_addr, &v4);	/* RFC 6887 §11.1: any */
	upnp_lease(s, lease, req);
	iwf_nonce(s->p.nonce_key, MAP_ORIGIN_UPNP, &req->internal_addr,
	    req->protocol, req->internal_port, req->nonce);
	/* RFC 6970 §5.6.2 (I-01): AddPortMapping wants that port or
	   nothing; §5.6.1 (I-02): AddAnyPortMapping takes any, the
	   suggestion (the internal port when none, as NAT-PMP) a hint */
	req->flags |= MAP_F_HAS_DESCRIPTION | (any_port ? MAP_F_ANY_PORT :
	    MAP_F_PREFER_FAILURE);
	if (any_port && req->ext_port == 0)
		req->ext_port = req->internal_port;
	if ((desc = upnp_arg(a, "NewPortMappingDescription")) != NULL)
		upnp_description(desc, req->description);
	req->wait_ms = UPNP_CLIENT_WAIT_MS;
	return MAP_OK;
}

/*
 * The internal endpoint is the key of a mapping (spec/iwf.md §2 "Nonce"):
 * one the CP's host made through NAT-PMP or PCP, or a static one, is
 * another mechanism's, and a UPnP request for it is refused (729 on
 * IGD:2, 718 on IGD:1) instead of reaching the table as a nonce mismatch.
 */
static bool
upnp_other_mechanism(const struct upnp_soap *s, const struct map_req *req)
{
	const struct mapping *m;

	m = table_find_internal(s->p.table, req->protocol, &req->internal_addr,
	    req->internal_port);
	return m != NULL && (m->origin != MAP_ORIGIN_UPNP ||
	    memcmp(m->nonce, req->nonce, sizeof(m->nonce)) != 0);
}

static bool
upnp_add(struct upnp_ctx *c, bool any_port)
{
	struct upnp_soap *s = c->s;
	struct map_result res;
	struct map_req req;
	struct upnp_wait *w;
	enum map_err err;

	if ((err = upnp_add_req(c, any_port, &req)) != MAP_OK)
		return upnp_fail(c, err);
	if (upnp_other_mechanism(s, &req))
		return upnp_fail(c, MAP_ERR_OTHER_MECHANISM);
	if ((w = upnp_wait_new(s, UPNP_WAIT_MAP, c->done, c->arg)) == NULL)
		return upnp_fail(c, MAP_ERR_NO_RESOURCES);
	w->any_port = any_port;
	memset(&res, 0, sizeof(res));
	if (!proxy_submit(s->p.proxy, &req, c->now, upnp_map_done, w, &res))
		return false;
	upnp_wait_free(w);
	upnp_add_reply(s, &req, any_port, &res, c->reply);
	return true;
}

static bool
upnp_add_port_mapping(struct upnp_ctx *c)
{
	return upnp_add(c, false);
}

static bool
upnp_add_any_port_mapping(struct upnp_ctx *c)
{
	return upnp_add(c, true);
}

/* ---- WANIPConnection: deleting ------------------------------------------- */

/*
 * Delete m (made through UPnP, the requester's or, from a third_party_host,
 * another host's: upnp_may_delete) down the one proxy path:
 * lifetime 0 with its nonce (RFC 6970 §5.8, I-04): local rule, table
 * entry and a delete upstream. Deletes are answered at once.
 */
static enum map_err
upnp_delete(struct upnp_ctx *c, const struct mapping *m)
{
	struct map_result res;
	struct map_req req;
	struct in_addr any = { 0 };

	memset(&req, 0, sizeof(req));
	req.origin = MAP_ORIGIN_UPNP;
	req.requester = c->act->requester;
	req.internal_addr = m->internal_addr;
	req.protocol = m->protocol;
	req.internal_port = m->internal_port;
	req.flags = MAP_F_DELETE;
	if (!IN6_ARE_ADDR_EQUAL(&req.internal_addr, &req.requester))
		req.flags |= MAP_F_THIRD_PARTY;
	pcp_addr_from_v4(&req.ext_addr, &any);
	memcpy(req.nonce, m->nonce, sizeof(req.nonce));
	memset(&res, 0, sizeof(res));
	if (!proxy_submit(c->s->p.proxy, &req, c->now, NULL, NULL, &res)) {
		/* proxy.h: a delete is answered at once */
		log_warnx("upnp: a delete was not answered at once");
		return MAP_ERR_INTERNAL;
	}
	return res.err;
}

/* May the requester delete m? Its own UPnP mapping: another host's only
   from a third_party_host (else 606 / 718, U-04, X-03), and never a
   NAT-PMP, PCP or static one (another client renews it: RFC 6887 §11.3,
   another nonce is another owner). */
static enum map_err
upnp_may_delete(const struct upnp_soap *s, const struct mapping *m,
    const struct in6_addr *requester)
{
	if (!upnp_own(m, requester) && !upnp_third_party_ok(s, requester))
		return MAP_ERR_THIRD_PARTY_DENIED;
	if (m->origin != MAP_ORIGIN_UPNP)
		return MAP_ERR_NOT_AUTHORIZED;
	return MAP_OK;
}

/*
 * The entry of (NewRemoteHost, NewExternalPort, NewProtocol), the key of
 * DeletePortMapping and GetSpecificPortMappingEntry: 402 for bad
 * arguments, 714 (no PCP traffic) when there is none - and for a specific
 * remote host: we make no mapping for one.
 */
static enum map_err
upnp_entry_arg(struct upnp_ctx *c, struct mapping **m)
{
	uint16_t port;
	uint8_t proto;

	if (!upnp_arg_ui2(c->act, "NewExternalPort", &port) ||
	    !upnp_arg_proto(c->act, &proto))
		return MAP_ERR_INVALID_ARGS;
	if (!upnp_remote_wildcard(c->act) ||
	    (*m = upnp_find_outer(c->s, &c->act->requester, proto, port)) ==
	    NULL)
		return MAP_ERR_NOT_FOUND;
	return MAP_OK;
}

static bool
upnp_delete_port_mapping(struct upnp_ctx *c)
{
	struct mapping *m;
	enum map_err err;

	if ((err = upnp_entry_arg(c, &m)) != MAP_OK)
		return upnp_fail(c, err);
	if ((err = upnp_may_delete(c->s, m, &c->act->requester)) != MAP_OK ||
	    (err = upnp_delete(c, m)) != MAP_OK)
		return upnp_fail(c, err);
	upnp_reply_clear(c->reply);
	return true;
}

/*
 * IGD:2 DeletePortMappingRange (RFC 6970 §5.8): the requester's own UPnP
 * mappings of the protocol whose external port is in [start, end]; none
 * -> 730, start > end -> 733. Without DeviceProtection a CP manages only
 * its own, whatever NewManage says.
 */
static bool
upnp_delete_port_mapping_range(struct upnp_ctx *c)
{
	struct mapping *m, *next;
	uint16_t start, end;
	uint8_t proto;
	bool manage;
	size_t n = 0;

	if (!upnp_arg_ui2(c->act, "NewStartPort", &start) ||
	    !upnp_arg_ui2(c->act, "NewEndPort", &end) ||
	    !upnp_arg_proto(c->act, &proto) ||
	    !upnp_parse_bool(upnp_arg(c->act, "NewManage"), &manage))
		return upnp_fail(c, MAP_ERR_INVALID_ARGS);
	if (start > end)
		return upnp_fail(c, MAP_ERR_INCONSISTENT);
	for (m = table_host_first(c->s->p.table, &c->act->requester);
	    m != NULL; m = next) {
		next = table_host_next(m);
		if (m->protocol != proto || m->outer_port < start ||
		    m->outer_port > end || !upnp_listed(c->s, m) ||
		    upnp_may_delete(c->s, m, &c->act->requester) != MAP_OK)
			continue;
		(void)upnp_delete(c, m);
		n++;
	}
	if (n == 0)
		return upnp_fail(c, MAP_ERR_RANGE_EMPTY);
	upnp_reply_clear(c->reply);
	return true;
}

/* ---- WANIPConnection: listing (from the table only, RFC 6970 §5.7) ------- */

static void
upnp_entry_out(struct upnp_ctx *c, const struct mapping *m, bool generic)
{
	char client[INET_ADDRSTRLEN], desc[UPNP_OUT_VALUE_MAX + 1];
	struct upnp_reply *r = c->reply;

	upnp_reply_clear(r);
	upnp_addr_text(&m->internal_addr, client, sizeof(client));
	upnp_clean_text(m->description != NULL ? m->description : "", desc,
	    sizeof(desc));
	if (generic) {
		upnp_out(r, "NewRemoteHost", "%s", "");
		upnp_out(r, "NewExternalPort", "%u", m->outer_port);
		upnp_out(r, "NewProtocol", "%s", upnp_proto_text(m->protocol));
	}
	upnp_out(r, "NewInternalPort", "%u", m->internal_port);
	upnp_out(r, "NewInternalClient", "%s", client);
	upnp_out(r, "NewEnabled", "%s", "1");
	upnp_out(r, "NewPortMappingDescription", "%s", desc);
	upnp_out(r, "NewLeaseDuration", "%u", upnp_lease_out(c->s, m, c->now));
}

/*
 * GetSpecificPortMappingEntry: by (protocol, external port) from the
 * table, the requester's own and other hosts' alike. Deviation: RFC 6970
 * §5.7 wants another host's entry probed upstream (MAP with
 * PREFER_FAILURE); we answer from the local table, which holds every
 * mapping this gateway made (spec/iwf.md §4.3 "Local-only 714").
 */
static bool
upnp_get_specific(struct upnp_ctx *c)
{
	struct mapping *m;
	enum map_err err;

	if ((err = upnp_entry_arg(c, &m)) != MAP_OK)
		return upnp_fail(c, err);
	upnp_entry_out(c, m, false);
	return true;
}

/*
 * The index-th listed mapping. upnpc -l asks 0, 1, 2, ... until an error:
 * the cursor remembers where the last answer was in the table, so each
 * next index costs O(1) while the table does not change (its generation);
 * a change starts the walk again from 0.
 */
static const struct mapping *
upnp_generic_at(struct upnp_soap *s, size_t index)
{
	const struct mapping *m;
	uint64_t gen = table_generation(s->p.table);
	size_t pos = 0, at = 0;

	if (s->gen_valid && s->gen_generation == gen && s->gen_index <= index) {
		pos = s->gen_pos;
		at = s->gen_index;
	}
	for (; (m = table_at(s->p.table, pos)) != NULL; pos++) {
		if (!upnp_listed(s, m))
			continue;
		if (at == index) {
			s->gen_valid = true;
			s->gen_generation = gen;
			s->gen_index = index;
			s->gen_pos = pos;
			return m;
		}
		at++;
	}
	return NULL;
}

static bool
upnp_get_generic(struct upnp_ctx *c)
{
	const struct mapping *m;
	uint16_t index;

	if (!upnp_arg_ui2(c->act, "NewPortMappingIndex", &index))
		return upnp_fail(c, MAP_ERR_INVALID_ARGS);
	if ((m = upnp_generic_at(c->s, index)) == NULL)
		return upnp_fail(c, MAP_ERR_INDEX_INVALID);	/* 713 */
	upnp_entry_out(c, m, true);
	return true;
}

/* A growing text buffer for the port listing. */
struct upnp_buf {
	char	*p;
	size_t	 len, size;
	bool	 failed;
};

static void
upnp_buf_add(struct upnp_buf *b, const char *text, size_t len)
{
	char *np;
	size_t ns;

	if (b->failed)
		return;
	if (b->len + len + 1 > b->size) {
		ns = b->size == 0 ? 1024 : b->size;
		while (b->len + len + 1 > ns)
			ns *= 2;
		if ((np = realloc(b->p, ns)) == NULL) {
			b->failed = true;
			return;
		}
		b->p = np;
		b->size = ns;
	}
	memcpy(b->p + b->len, text, len);
	b->len += len;
	b->p[b->len] = '\0';
}

static void
upnp_buf_str(struct upnp_buf *b, const char *s)
{
	upnp_buf_add(b, s, strlen(s));
}

/* XML character data: & < > " ' escaped (so no "]]>" either: the glue
   may wrap it all in CDATA). */
static void
upnp_buf_escaped(struct upnp_buf *b, const char *s)
{
	const char *rep;

	for (; *s != '\0'; s++) {
		switch (*s) {
		case '&':
			rep = "&amp;";
			break;
		case '<':
			rep = "&lt;";
			break;
		case '>':
			rep = "&gt;";
			break;
		case '"':
			rep = "&quot;";
			break;
		case '\'':
			rep = "&apos;";
			break;
		default:
			upnp_buf_add(b, s, 1);
			continue;
		}
		upnp_buf_str(b, rep);
	}
}

/* One element <p:NAME>value</p:NAME>, the value escaped. */
static void
upnp_buf_elem(struct upnp_buf *b, const char *name, const char *value)
{
	upnp_buf_str(b, "<p:");
	upnp_buf_str(b, name);
	upnp_buf_str(b, ">");
	upnp_buf_escaped(b, value);
	upnp_buf_str(b, "</p:");
	upnp_buf_str(b, name);
	upnp_buf_str(b, ">");
}

static void
upnp_listing_entry(const struct upnp_soap *s, struct upnp_buf *b,
    const struct mapping *m, uint64_t now)
{
	char client[INET_ADDRSTRLEN], num[16], desc[UPNP_OUT_VALUE_MAX + 1];

	upnp_buf_str(b, "<p:PortMappingEntry>");
	upnp_buf_elem(b, "NewRemoteHost", "");
	(void)snprintf(num, sizeof(num), "%u", m->outer_port);
	upnp_buf_elem(b, "NewExternalPort", num);
	upnp_buf_elem(b, "NewProtocol", upnp_proto_text(m->protocol));
	(void)snprintf(num, sizeof(num), "%u", m->internal_port);
	upnp_buf_elem(b, "NewInternalPort", num);
	upnp_addr_text(&m->internal_addr, client, sizeof(client));
	upnp_buf_elem(b, "NewInternalClient", client);
	upnp_buf_elem(b, "NewEnabled", "1");
	upnp_clean_text(m->description != NULL ? m->description : "", desc,
	    sizeof(desc));
	upnp_buf_elem(b, "NewDescription", desc);
	(void)snprintf(num, sizeof(num), "%u", upnp_lease_out(s, m, now));
	upnp_buf_elem(b, "NewLeaseTime", num);
	upnp_buf_str(b, "</p:PortMappingEntry>");
}

static int
upnp_port_cmp(const void *a, const void *b)
{
	const struct mapping *ma = *(const struct mapping * const *)a;
	const struct mapping *mb = *(const struct mapping * const *)b;

	return (int)ma->outer_port - (int)mb->outer_port;
}

/* The matching mappings, sorted by external port (as miniupnpd lists
   them); *n of them; NULL with *n 0 when none (or out of memory: *oom). */
static const struct mapping **
upnp_listing_collect(struct upnp_ctx *c, uint8_t proto, uint16_t start,
    uint16_t end, bool manage, size_t *n, bool *oom)
{
	const struct mapping **v = NULL, **nv;
	const struct mapping *m;
	size_t i, cap = 0;

	*n = 0;
	*oom = false;
	for (i = 0; (m = table_at(c->s->p.table, i)) != NULL; i++) {
		if (m->protocol != proto || m->outer_port < start ||
		    m->outer_port > end || !upnp_listed(c->s, m) ||
		    (manage && !upnp_own(m, &c->act->requester)))
			continue;
		if (*n == cap) {
			cap = cap == 0 ? 64 : cap * 2;
			if ((nv = reallocarray(v, cap, sizeof(*v))) == NULL) {
				free(v);
				*n = 0;
				*oom = true;
				return NULL;
			}
			v = nv;
		}
		v[(*n)++] = m;
	}
	if (*n > 1)
		qsort(v, *n, sizeof(*v), upnp_port_cmp);
	return v;
}

/*
 * IGD:2 GetListOfPortMappings: NewPortListing, a PortMappingList document
 * (the shape miniupnpd sends and miniupnpc's portlistingparse reads).
 * NewManage 1 lists what the CP may manage - without DeviceProtection its
 * own mappings - and 0 all of them (the IGD:2 reading of NewManage;
 * spec/iwf.md §8 item 3: unverified). NewNumberOfPorts 0 is "all", at
 * most UPNP_LIST_MAX.
 */
static bool
upnp_get_list(struct upnp_ctx *c)
{
	static const char list_start[] =
	    "<p:PortMappingList xmlns:p=\"urn:schemas-upnp-org:gw:"
	    "WANIPConnection\" xmlns:xsi=\"http://www.w3.org/2001/"
	    "XMLSchema-instance\" xsi:schemaLocation=\"urn:schemas-upnp-org:"
	    "gw:WANIPConnection http://www.upnp.org/schemas/gw/"
	    "WANIPConnection-v2.xsd\">";
	const struct mapping **v;
	struct upnp_buf b;
	uint16_t start, end, number;
	uint8_t proto;
	bool manage, oom;
	size_t n, i;

	if (!upnp_arg_ui2(c->act, "NewStartPort", &start) ||
	    !upnp_arg_ui2(c->act, "NewEndPort", &end) ||
	    !upnp_arg_proto(c->act, &proto) ||
	    !upnp_parse_bool(upnp_arg(c->act, "NewManage"), &manage) ||
	    !upnp_arg_ui2(c->act, "NewNumberOfPorts", &number))
		return upnp_fail(c, MAP_ERR_INVALID_ARGS);
	if (start > end)
		return upnp_fail(c, MAP_ERR_INCONSISTENT);	/* 733 */
	v = upnp_listing_collect(c, proto, start, end, manage, &n, &oom);
	if (oom)
		return upnp_fail(c, MAP_ERR_INTERNAL);
	if (n == 0)
		return upnp_fail(c, MAP_ERR_RANGE_EMPTY);	/* 730 */
	if (number == 0 || number > UPNP_LIST_MAX)
		number = UPNP_LIST_MAX;
	memset(&b, 0, sizeof(b));
	upnp_buf_str(&b, list_start);
	for (i = 0; i < n && i < number; i++)
		upnp_listing_entry(c->s, &b, v[i], c->now);
	upnp_buf_str(&b, "</p:PortMappingList>");
	free(v);
	if (b.failed) {
		free(b.p);
		return upnp_fail(c, MAP_ERR_INTERNAL);
	}
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewPortListing", "%s", "");
	c->reply->out[0].long_value = b.p;
	return true;
}

/* ---- WANIPConnection: the connection -------------------------------------- */

static void
upnp_ext_addr_reply(const struct upnp_soap *s, struct upnp_reply *r)
{
	char addr[INET6_ADDRSTRLEN];

	(void)upnp_ext_addr_text(s, addr, sizeof(addr));
	upnp_reply_clear(r);
	upnp_out(r, "NewExternalIPAddress", "%s", addr);
}

/*
 * U-09, RFC 6970 §4.2: the carrier's address, "" while unknown. With an
 * upstream configured and none learned yet, asking started the address
 * probe: the CP waits for it, up to UPNP_CLIENT_WAIT_MS, and then gets ""
 * rather than an error (upnpc goes on with "").
 */
static bool
upnp_get_ext_addr(struct upnp_ctx *c)
{
	char addr[INET6_ADDRSTRLEN];
	struct upnp_wait *w;

	if (upnp_ext_addr_text(c->s, addr, sizeof(addr)) || !c->s->p.upstream ||
	    c->done == NULL ||
	    (w = upnp_wait_new(c->s, UPNP_WAIT_ADDR, c->done, c->arg)) ==
	    NULL) {
		upnp_ext_addr_reply(c->s, c->reply);
		return true;
	}
	w->deadline = c->now + UPNP_CLIENT_WAIT_MS;
	return false;
}

/* U-10: Connected while the upstream works (or there is none). */
static bool
upnp_get_status(struct upnp_ctx *c)
{
	const struct upnp_soap *s = c->s;

	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewConnectionStatus", "%s", upnp_connected(s) ?
	    "Connected" : "Disconnected");
	upnp_out(c->reply, "NewLastConnectionError", "%s", "ERROR_NONE");
	upnp_out(c->reply, "NewUptime", "%u", s->p.uptime != NULL ?
	    s->p.uptime(s->p.cb_arg) : 0);
	return true;
}

/* spec/iwf.md §3.3 [derived]: no RSIP, NAT on. */
static bool
upnp_get_nat_rsip(struct upnp_ctx *c)
{
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewRSIPAvailable", "%s", "0");
	upnp_out(c->reply, "NewNATEnabled", "%s", "1");
	return true;
}

static bool
upnp_get_connection_type(struct upnp_ctx *c)
{
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewConnectionType", "%s", UPNP_CONNECTION_TYPE);
	upnp_out(c->reply, "NewPossibleConnectionTypes", "%s",
	    UPNP_CONNECTION_TYPE);
	return true;
}

/*
 * SetConnectionType, RequestConnection, ForceTermination (WANIPConnection)
 * and SetDefaultConnectionService (Layer3Forwarding): required by the
 * service, but the IWF does not own the WAN connection - the router's
 * own stack brings it up and down - so a CP may not do this: 606
 * (spec/iwf.md §3.3 [derived]; miniupnpd answers RequestConnection and
 * ForceTermination so too).
 */
static bool
upnp_denied(struct upnp_ctx *c)
{
	return upnp_fail(c, MAP_ERR_ACTION_DENIED);
}

/* ---- WANCommonInterfaceConfig, Layer3Forwarding -------------------------- */

static void
upnp_counters(const struct upnp_soap *s, struct upnp_wan_counters *wc)
{
	memset(wc, 0, sizeof(*wc));
	if (s->p.wan_counters == NULL || !s->p.wan_counters(s->p.cb_arg, wc))
		memset(wc, 0, sizeof(*wc));
}

static bool
upnp_get_link(struct upnp_ctx *c)
{
	struct upnp_wan_counters wc;

	upnp_counters(c->s, &wc);
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewWANAccessType", "%s", UPNP_WAN_ACCESS_TYPE);
	upnp_out(c->reply, "NewLayer1UpstreamMaxBitRate", "%u", wc.bitrate_up);
	upnp_out(c->reply, "NewLayer1DownstreamMaxBitRate", "%u",
	    wc.bitrate_down);
	upnp_out(c->reply, "NewPhysicalLinkStatus", "%s", "Up");
	return true;
}

/* The four traffic counters of WANCommonInterfaceConfig: ui4, wrapping
   modulo 2^32 as miniupnpd's do. */
static const struct {
	const char	*action;
	const char	*out;
	size_t		 field;		/* in struct upnp_wan_counters */
} upnp_counter_rows[] = {
	{ "GetTotalBytesSent", "NewTotalBytesSent",
	    offsetof(struct upnp_wan_counters, bytes_sent) },
	{ "GetTotalBytesReceived", "NewTotalBytesReceived",
	    offsetof(struct upnp_wan_counters, bytes_received) },
	{ "GetTotalPacketsSent", "NewTotalPacketsSent",
	    offsetof(struct upnp_wan_counters, packets_sent) },
	{ "GetTotalPacketsReceived", "NewTotalPacketsReceived",
	    offsetof(struct upnp_wan_counters, packets_received) },
};

static bool
upnp_counter(struct upnp_ctx *c)
{
	struct upnp_wan_counters wc;
	uint64_t v;
	size_t i;

	for (i = 0; i < sizeof(upnp_counter_rows) /
	    sizeof(upnp_counter_rows[0]); i++)
		if (strcmp(upnp_counter_rows[i].action, c->act->name) == 0)
			break;
	if (i == sizeof(upnp_counter_rows) / sizeof(upnp_counter_rows[0]))
		return upnp_fail(c, MAP_ERR_INVALID_ACTION);
	upnp_counters(c->s, &wc);
	memcpy(&v, (const char *)&wc + upnp_counter_rows[i].field, sizeof(v));
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, upnp_counter_rows[i].out, "%u",
	    (uint32_t)(v & UINT32_MAX));
	return true;
}

/* "<UDN>:WANConnectionDevice:N,<serviceId>" (Layer3Forwarding:1; the
   form of miniupnpd and of the spec's example). */
static bool
upnp_get_default_service(struct upnp_ctx *c)
{
	const struct upnp_service_info *si;
	const struct upnp_soap *s = c->s;

	si = upnp_service_info(s->p.version, UPNP_SVC_WANIPC);
	upnp_reply_clear(c->reply);
	upnp_out(c->reply, "NewDefaultConnectionService",
	    "%s:WANConnectionDevice:%u,%s", s->p.wanconn_udn != NULL ?
	    s->p.wanconn_udn : "", s->p.version >= 2 ? 2 : 1,
	    si != NULL && si->id != NULL ? si->id : "");
	return true;
}

/* ---- dispatch -------------------------------------------------------------- */

typedef bool	(*upnp_handler)(struct upnp_ctx *);

/* U-03: every action of the services, per version (IGD:2 adds three). */
static const struct upnp_action_row {
	enum upnp_service svc;
	unsigned int	 min_version;
	const char	*name;
	upnp_handler	 fn;
} upnp_actions[] = {
	{ UPNP_SVC_WANIPC, 1, "AddPortMapping", upnp_add_port_mapping },
	{ UPNP_SVC_WANIPC, 2, "AddAnyPortMapping", upnp_add_any_port_mapping },
	{ UPNP_SVC_WANIPC, 1, "DeletePortMapping", upnp_delete_port_mapping },
	{ UPNP_SVC_WANIPC, 2, "DeletePortMappingRange",
	    upnp_delete_port_mapping_range },
	{ UPNP_SVC_WANIPC, 1, "GetSpecificPortMappingEntry",
	    upnp_get_specific },
	{ UPNP_SVC_WANIPC, 1, "GetGenericPortMappingEntry", upnp_get_generic },
	{ UPNP_SVC_WANIPC, 2, "GetListOfPortMappings", upnp_get_list },
	{ UPNP_SVC_WANIPC, 1, "GetExternalIPAddress", upnp_get_ext_addr },
	{ UPNP_SVC_WANIPC, 1, "GetStatusInfo", upnp_get_status },
	{ UPNP_SVC_WANIPC, 1, "GetConnectionTypeInfo",
	    upnp_get_connection_type },
	{ UPNP_SVC_WANIPC, 1, "GetNATRSIPStatus", upnp_get_nat_rsip },
	{ UPNP_SVC_WANIPC, 1, "SetConnectionType", upnp_denied },
	{ UPNP_SVC_WANIPC, 1, "RequestConnection", upnp_denied },
	{ UPNP_SVC_WANIPC, 1, "ForceTermination", upnp_denied },
	{ UPNP_SVC_WANCIC, 1, "GetCommonLinkProperties", upnp_get_link },
	{ UPNP_SVC_WANCIC, 1, "GetTotalBytesSent", upnp_counter },
	{ UPNP_SVC_WANCIC, 1, "GetTotalBytesReceived", upnp_counter },
	{ UPNP_SVC_WANCIC, 1, "GetTotalPacketsSent", upnp_counter },
	{ UPNP_SVC_WANCIC, 1, "GetTotalPacketsReceived", upnp_counter },
	{ UPNP_SVC_L3F, 1, "GetDefaultConnectionService",
	    upnp_get_default_service },
	{ UPNP_SVC_L3F, 1, "SetDefaultConnectionService", upnp_denied },
};

bool
upnp_soap_run(struct upnp_soap *s, const struct upnp_action *act,
    uint64_t now, upnp_soap_done_fn done, void *arg, struct upnp_reply *reply)
{
	struct upnp_ctx c;
	size_t i;

	memset(reply, 0, sizeof(*reply));
	memset(&c, 0, sizeof(c));
	c.s = s;
	c.act = act;
	c.now = now;
	c.done = done;
	c.arg = arg;
	c.reply = reply;
	for (i = 0; i < sizeof(upnp_actions) / sizeof(upnp_actions[0]); i++) {
		if (upnp_actions[i].svc != act->service ||
		    strcmp(upnp_actions[i].name, act->name) != 0)
			continue;
		/* an IGD:2 action in IGD:1 mode does not exist (U-01) */
		if (upnp_actions[i].min_version > s->p.version)
			break;
		if (act->malformed)	/* */
			return upnp_fail(&c, MAP_ERR_INVALID_ARGS);
		return upnp_actions[i].fn(&c);
	}
	return upnp_fail(&c, MAP_ERR_INVALID_ACTION);
}

/* ---- waits ----------------------------------------------------------------- */

void
upnp_soap_cancel(struct upnp_soap *s, void *arg)
{
	struct upnp_wait *w, *next;

	for (w = TAILQ_FIRST(&s->maps); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->arg != arg)
			continue;
		proxy_cancel(s->p.proxy, w);
		upnp_wait_free(w);
	}
	for (w = TAILQ_FIRST(&s->addrs); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (w->arg == arg)
			upnp_wait_free(w);
	}
}

/* The address waiters whose address came or whose wait ran out. */
static void
upnp_addr_waits(struct upnp_soap *s, uint64_t now)
{
	struct upnp_wait *w, *next;
	struct upnp_reply r;
	char addr[INET6_ADDRSTRLEN];
	upnp_soap_done_fn done;
	void *arg;
	bool known;

	if (TAILQ_EMPTY(&s->addrs))
		return;
	known = upnp_ext_addr_text(s, addr, sizeof(addr));
	for (w = TAILQ_FIRST(&s->addrs); w != NULL; w = next) {
		next = TAILQ_NEXT(w, entry);
		if (!known && w->deadline > now)
			continue;
		done = w->done;
		arg = w->arg;
		upnp_wait_free(w);
		memset(&r, 0, sizeof(r));
		upnp_ext_addr_reply(s, &r);
		if (done != NULL)
			done(arg, &r);
		upnp_reply_free(&r);
		/* done may have cancelled others: start over */
		next = TAILQ_FIRST(&s->addrs);
	}
}

/* PortMappingNumberOfEntries (I-05): the listed mappings. A walk of the
   table, so only when its generation moved, at most once per
   UPNP_COUNT_INTERVAL_MS. */
static bool
upnp_count_due(const struct upnp_soap *s, uint64_t now)
{
	if (!s->count_valid)
		return true;
	return s->count_generation != table_generation(s->p.table) &&
	    now >= s->count_at + UPNP_COUNT_INTERVAL_MS;
}

static void
upnp_count(struct upnp_soap *s, uint64_t now)
{
	const struct mapping *m;
	uint32_t n = 0;
	size_t i;

	if (!upnp_count_due(s, now))
		return;
	for (i = 0; (m = table_at(s->p.table, i)) != NULL; i++)
		if (upnp_listed(s, m))
			n++;
	s->count = n;
	s->count_valid = true;
	s->count_generation = table_generation(s->p.table);
	s->count_at = now;
}

void
upnp_soap_tick(struct upnp_soap *s, uint64_t now)
{
	upnp_addr_waits(s, now);
	upnp_count(s, now);
}

uint64_t
upnp_soap_next_deadline(const struct upnp_soap *s)
{
	const struct upnp_wait *w;
	uint64_t next = UINT64_MAX;

	TAILQ_FOREACH(w, &s->addrs, entry)
		if (w->deadline < next)
			next = w->deadline;
	if (s->count_valid &&
	    s->count_generation != table_generation(s->p.table) &&
	    s->count_at + UPNP_COUNT_INTERVAL_MS < next)
		next = s->count_at + UPNP_COUNT_INTERVAL_MS;
	return next;
}

void
upnp_soap_event_vars(struct upnp_soap *s, uint64_t now,
    struct upnp_event_vars *ev)
{
	memset(ev, 0, sizeof(*ev));
	(void)upnp_ext_addr_text(s, ev->external_ip, sizeof(ev->external_ip));
	(void)snprintf(ev->connection_status, sizeof(ev->connection_status),
	    "%s", upnp_connected(s) ? "Connected" : "Disconnected");
	upnp_count(s, now);
	ev->port_mapping_entries = s->count;
}

/* ---- life ------------------------------------------------------------------- */

struct upnp_soap *
upnp_soap_new(const struct upnp_soap_params *params)
{
	struct upnp_soap *s;

	if (params->proxy == NULL || params->table == NULL ||
	    (params->version != 1 && params->version != 2))
		return NULL;
	if ((s = calloc(1, sizeof(*s))) == NULL)
		return NULL;
	s->p = *params;
	TAILQ_INIT(&s->maps);
	TAILQ_INIT(&s->addrs);
	return s;
}

void
upnp_soap_free(struct upnp_soap *s)
{
	struct upnp_wait *w;

	if (s == NULL)
		return;
	while ((w = TAILQ_FIRST(&s->maps)) != NULL) {
		proxy_cancel(s->p.proxy, w);
		upnp_wait_free(w);
	}
	while ((w = TAILQ_FIRST(&s->addrs)) != NULL)
		upnp_wait_free(w);
	free(s);
}
