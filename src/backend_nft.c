/*
 * backend_nft.c - the local NAT backend on nftables (libnftables).
 *
 * Everything lives in the daemon's own table, `ip <nft_table>` (DESIGN.md
 * "State and durability"); nothing outside it is read or written:
 *
 *   table ip pcp_iwfd {
 *     map dnat_ports {
 *       type inet_proto . inet_service : ipv4_addr . inet_service
 *       flags timeout
 *     }
 *     chain prerouting {
 *       type nat hook prerouting priority dstnat; policy accept;
 *       iifname "wan0" meta l4proto . th dport @dnat_ports
 *           ct mark set ct mark & ~MASK | MARK
 *           dnat ip to meta l4proto . th dport map @dnat_ports
 *     }
 *     set igd_conns {
 *       type ipv4_addr . inet_service; size 65535; flags dynamic;
 *     }
 *     chain input {
 *       type filter hook input priority filter - 1; policy accept;
 *       iifname != { "lo", "lan0" } udp dport { 1900, 5351 } counter drop
 *       iifname != { "lo", "lan0" } tcp dport { 49152, 40001 } counter drop
 *       tcp dport 49152 ct state new
 *           add @igd_conns { ip saddr . tcp dport ct count over 4 }
 *           counter reject with tcp reset
 *     }
 *   }
 *
 * One map element is one mapping: (protocol . gateway port) -> (internal
 * address . internal port), with the mapping's lifetime as the element's
 * timeout, so the kernel expires the rule even when the daemon is dead.
 *
 * The conntrack mark is set in the same rule that DNATs, on the first
 * packet of a flow, so it marks exactly the flows our map translated and
 * needs no second set. (A forward-hook set keyed by internal address .
 * protocol . internal port would need reference counts when two gateway
 * ports lead to one internal port, and nft 1.0.6 cannot key a set on the
 * pre-DNAT `ct original proto-dst` in a concatenation.) The router then
 * lets our flows through its own forward chain with `ct status dnat
 * accept` or `ct mark & MASK == MARK accept` (docs/deployment.md).
 *
 * The input chain is the guard (backend.h; set_guard): the daemon's own
 * ports answer on LAN interfaces only, whatever address a packet names
 * (Linux's weak host model accepts a WAN packet for the LAN address),
 * one LAN host cannot hold pupnp's HTTP workers, nor make pupnp answer
 * M-SEARCH without end (NFT_GUARD_SSDP_RATE). Priority filter - 1:
 * after conntrack (-200, which `ct state` and `ct count` read) and after
 * dstnat (-100: a packet our map DNATs to the LAN never reaches input),
 * and before the router's own input chains at filter (0), so that a WAN
 * packet to these ports is dropped silently rather than answered by a
 * router rule that rejects with an ICMP error or a reset. (A drop in any
 * base chain is final whatever the order: the priority does not make the
 * guard stronger, it makes it first.) The chain stays when the daemon
 * stops, like the map; the next set_guard replaces its rules.
 *
 * Not done here, on purpose:
 * - `fib daddr type local` (DNAT only what is addressed to the gateway):
 *   kernels built without nft_fib reject the whole rule; like miniupnpd
 *   we match the WAN interface and the port.
 * - Hairpin (a LAN host reaching a mapping through the external address):
 *   with an upstream the external address is the carrier's, so hairpin is
 *   the carrier's job (RFC 4787 REQ-9, made a CGN rule by RFC 6888
 *   REQ-1); without one it would need a prerouting rule on the LAN
 *   interfaces for the WAN address and a masquerade for LAN-to-LAN DNATed
 *   flows (params->lan_interfaces).
 * - IPv6 pinholes (nat = none, the embedded firewall): they would go in an
 *   `inet` table with a set keyed by `ip6 daddr . meta l4proto . th dport`
 *   and a forward chain (priority mangle) that sets the same mark on
 *   matching new flows; this file handles IPv4 DNAT only.
 *
 * The table owns the truth (STYLE.md habit 5): the record of installed
 * elements below is only there so a batch never deletes an element that
 * is not there (that fails the whole transaction). It starts as the keys
 * the map holds at open() and then follows our own batches; the kernel is
 * read again only by reconcile() and, key by key, when a batch failed
 * anyway (an element expired under us). Which mapping owns an element is
 * never learned from the kernel.
 */
#include <sys/types.h>

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <net/if.h>
#include <stdarg.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifdef __GLIBC__
#include <malloc.h>
#endif

#include <nftables/libnftables.h>

#include "backend.h"
#include "log.h"
#include "util.h"

#define NFT_MAP_NAME		"dnat_ports"
#define NFT_CHAIN_NAME		"prerouting"
/*
 * PEER flows (RFC 6887 §12): one element per flow, internal address .
 * protocol . internal port . remote address . remote port -> WAN address .
 * gateway port, in a postrouting nat chain one step before srcnat (99):
 * the first nat chain that binds a flow wins, so our SNAT beats the
 * router's masquerade at srcnat (100), fw4's and iptables-nft's alike
 * (docs/deployment.md).
 */
#define NFT_PEER_MAP_NAME	"peer_snat"
#define NFT_PEER_CHAIN_NAME	"postrouting"
/* The guard (backend.h): the input chain and the per-source connection
   counts. */
#define NFT_GUARD_CHAIN_NAME	"input"
/* set_owner: the output hook refusing the daemon user's TCP off the LAN */
#define NFT_OWNER_CHAIN_NAME	"output"
#define NFT_OWNER_MAX		32	/* useradd's name limit */
#define NFT_GUARD_SET_NAME	"igd_conns"
/* Source . port pairs the count keeps at once: a full set stops adding
   (the rule then does not match), so it is large. */
#define NFT_GUARD_SET_SIZE	65535
/*
 * The SSDP answer rate (issue 8: amplification). pupnp answers every
 * M-SEARCH itself (several datagrams for one ssdp:all, each larger than
 * the question) and nothing of ours sees them, so a LAN host (or a
 * forged LAN source) could make the gateway spray answers. A source's
 * datagrams to UDP 1900 (UPnP Device Architecture 1.1 §1.1.2) beyond
 * NFT_GUARD_SSDP_RATE a second after a burst of NFT_GUARD_SSDP_BURST are
 * dropped. A control point searching sends a few M-SEARCH (upnpc one per
 * device type it tries, Windows two or three copies of each search);
 * what else reaches port 1900 from the LAN is other devices' NOTIFYs,
 * which a device-only pupnp ignores, so dropping them past the limit
 * costs nothing. One element per source, refreshed by every datagram
 * (`update`) and gone after NFT_GUARD_SSDP_TIMEOUT_S of silence, so the
 * set holds the hosts seen lately, not every host ever seen.
 */
#define NFT_GUARD_SSDP_PORT	1900u
#define NFT_GUARD_SSDP_SET_NAME	"ssdp_rate"
#define NFT_GUARD_SSDP_RATE	10u	/* datagrams a second per source */
#define NFT_GUARD_SSDP_BURST	30u
#define NFT_GUARD_SSDP_TIMEOUT_S 60u
/* nft(8) prints and parses element timeouts in seconds up to this value
   (the kernel keeps milliseconds in 32 bits); longer lifetimes are
   clamped, the daemon re-arms long before. */
#define NFT_TIMEOUT_MAX_S	4294967u
#define NFT_TABLE_NAME_MAX	64
#define NFT_PORTS		65536
#define NFT_BITMAP_BYTES	(NFT_PORTS / 8)
/*
 * Changes per transaction. libnftables needs about 3 KiB per command while
 * it parses and evaluates a transaction (165 MB for 50,000 element
 * commands at once), so a huge commit - a restore at start-up - goes in
 * transactions of this many changes (about 8 MB); a loop turn's commit is
 * far below it and is one transaction.
 */
#define NFT_BATCH_MAX		1024

/*
 * Protocols with ports that `th dport` understands. Each gets a bitmap of
 * installed gateway ports, allocated on first use: 8 KiB per protocol
 * whatever the number of mappings (16 KiB for TCP + UDP, a third of a byte
 * per mapping at 50,000), no hashing, no per-element allocation.
 */
static const uint8_t nft_port_protocols[] = {
	IPPROTO_TCP, IPPROTO_UDP, IPPROTO_DCCP, IPPROTO_SCTP, IPPROTO_UDPLITE,
};
#define NFT_N_PROTOCOLS	\
	(sizeof(nft_port_protocols) / sizeof(nft_port_protocols[0]))

struct nft_portset {
	uint8_t		*bits[NFT_N_PROTOCOLS];
};

enum nft_op {
	NFT_OP_ADD,
	NFT_OP_REMOVE,
	NFT_OP_REFRESH,
};

struct nft_change {
	struct backend_rule	 rule;
	backend_done_fn		 done;
	void			*arg;
	enum nft_op		 op;
	int			 error;
	int			 slot;		/* protocol index, -1 invalid */
	bool			 was_installed;	/* before this change */
	bool			 in_batch;	/* emitted a command */
};

/*
 * The record of installed PEER elements: a hash set on the 5-tuple
 * (backend_rule_same_key), open addressing with linear probing, at most
 * half full, so that every PEER change and a reconcile of n PEERs stay
 * O(1) and O(n) (fix: a linear scan per change made reconcile O(n^2)).
 */
struct nft_peer_slot {
	struct backend_rule	 key;
	bool			 used;
};

struct nft_peer_record {
	struct nft_peer_slot	*slots;
	size_t			 n;
	size_t			 cap;		/* 0 or a power of two */
};

#define NFT_PEER_SLOTS_MIN	16

/* What set_guard asked for. */
struct nft_guard {
	char			(*lans)[IFNAMSIZ];
	size_t			 n_lan;
	uint16_t		 tcp[BACKEND_GUARD_MAX_PORTS];
	size_t			 n_tcp;
	size_t			 n_limited;	/* the first of tcp */
	uint16_t		 udp[BACKEND_GUARD_MAX_PORTS];
	size_t			 n_udp;
};

struct nft_backend {
	struct backend		 base;		/* first: the vtable */
	struct nft_ctx		*ctx;
	char			 table[NFT_TABLE_NAME_MAX + 1];
	char			 wan[IFNAMSIZ];
	struct nft_guard	 guard;
	bool			 guard_known;	/* set_guard was called */
	bool			 guard_dirty;	/* for the next commit */
	bool			 guard_no_limit; /* the kernel refused the
						    per-source limits */
	char			 owner[NFT_OWNER_MAX + 1]; /* set_owner;
						    "": none */
	struct nft_portset	 installed;
	struct nft_peer_record	 peers;
	struct nft_change	*queue;
	size_t			 n_queue;
	size_t			 cap_queue;
};

/* A growing text buffer for one nft transaction. */
struct nft_buf {
	char		*text;
	size_t		 len;
	size_t		 cap;
	bool		 err;
};

static void	nft_cancel_queue(struct nft_backend *);
static int	nft_seed_record(struct nft_backend *);

static struct nft_backend *
nft_of(struct backend *b)
{
	return (struct nft_backend *)b;
}

/* --- the record of installed elements --- */

static int
nft_proto_slot(uint8_t protocol)
{
	size_t i;

	for (i = 0; i < NFT_N_PROTOCOLS; i++)
		if (nft_port_protocols[i] == protocol)
			return (int)i;
	return -1;
}

static bool
nft_portset_has(const struct nft_portset *ps, int slot, uint16_t port)
{
	const uint8_t *bits = ps->bits[slot];

	return bits != NULL && (bits[port / 8] & (1u << (port % 8))) != 0;
}

static int
nft_portset_set(struct nft_portset *ps, int slot, uint16_t port, bool on)
{
	uint8_t *bits = ps->bits[slot];

	if (bits == NULL) {
		if (!on)
			return 0;
		if ((bits = calloc(1, NFT_BITMAP_BYTES)) == NULL)
			return -1;
		ps->bits[slot] = bits;
	}
	if (on)
		bits[port / 8] |= (uint8_t)(1u << (port % 8));
	else
		bits[port / 8] &= (uint8_t)~(1u << (port % 8));
	return 0;
}

static void
nft_portset_free(struct nft_portset *ps)
{
	size_t i;

	for (i = 0; i < NFT_N_PROTOCOLS; i++) {
		free(ps->bits[i]);
		ps->bits[i] = NULL;
	}
}

/* The hash of a PEER element's name (what backend_rule_same_key reads). */
static size_t
nft_peer_hash(const struct backend_rule *r)
{
	uint64_t h;

	h = util_hash_mix((uint64_t)r->protocol << 32 | (uint64_t)r->int_port << 16 |
	    r->peer_port);
	h = util_hash_addr(h, &r->int_addr);
	return (size_t)util_hash_addr(h, &r->peer_addr);
}

/* The slot of r, or of the empty slot where it would go. cap > 0. */
static size_t
nft_peer_find(const struct nft_peer_record *pr, const struct backend_rule *r)
{
	size_t mask = pr->cap - 1, i = nft_peer_hash(r) & mask;

	while (pr->slots[i].used &&
	    !backend_rule_same_key(&pr->slots[i].key, r))
		i = (i + 1) & mask;
	return i;
}

static bool
nft_peer_has(const struct nft_peer_record *pr, const struct backend_rule *r)
{
	return pr->cap > 0 && pr->slots[nft_peer_find(pr, r)].used;
}

/* Room for one more at most half full; -1 on memory (record unchanged). */
static int
nft_peer_reserve(struct nft_peer_record *pr)
{
	struct nft_peer_record grown = { 0 };
	size_t i, j;

	if (2 * (pr->n + 1) <= pr->cap)
		return 0;
	grown.cap = pr->cap ? pr->cap * 2 : NFT_PEER_SLOTS_MIN;
	if ((grown.slots = calloc(grown.cap, sizeof(*grown.slots))) == NULL)
		return -1;
	for (i = 0; i < pr->cap; i++)
		if (pr->slots[i].used) {
			j = nft_peer_find(&grown, &pr->slots[i].key);
			grown.slots[j] = pr->slots[i];
		}
	grown.n = pr->n;
	free(pr->slots);
	*pr = grown;
	return 0;
}

/* Empty slot i and move back the entries after it that its emptiness
   would hide (backward-shift deletion: no tombstones). */
static void
nft_peer_delete_at(struct nft_peer_record *pr, size_t i)
{
	size_t mask = pr->cap - 1, j = i, home;

	pr->slots[i].used = false;
	pr->n--;
	for (;;) {
		j = (j + 1) & mask;
		if (!pr->slots[j].used)
			return;
		home = nft_peer_hash(&pr->slots[j].key) & mask;
		/* j stays when its home lies cyclically in (i, j] */
		if (i <= j ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		pr->slots[i] = pr->slots[j];
		pr->slots[j].used = false;
		i = j;
	}
}

static int
nft_peer_set(struct nft_peer_record *pr, const struct backend_rule *r,
    bool on)
{
	size_t i;

	if (!on) {
		if (pr->cap > 0 && pr->slots[i = nft_peer_find(pr, r)].used)
			nft_peer_delete_at(pr, i);
		return 0;
	}
	if (nft_peer_has(pr, r))
		return 0;
	if (nft_peer_reserve(pr) == -1)
		return -1;
	i = nft_peer_find(pr, r);
	pr->slots[i].key = *r;
	pr->slots[i].used = true;
	pr->n++;
	return 0;
}

static void
nft_peer_free(struct nft_peer_record *pr)
{
	free(pr->slots);
	memset(pr, 0, sizeof(*pr));
}

/* --- the command buffer --- */

static void
nft_buf_printf(struct nft_buf *nb, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

static void
nft_buf_printf(struct nft_buf *nb, const char *fmt, ...)
{
	va_list ap;
	size_t need, cap;
	char *p;
	int n;

	if (nb->err)
		return;
	va_start(ap, fmt);
	n = vsnprintf(NULL, 0, fmt, ap);
	va_end(ap);
	if (n < 0) {
		nb->err = true;
		return;
	}
	need = nb->len + (size_t)n + 1;
	if (need > nb->cap) {
		cap = nb->cap ? nb->cap : 4096;
		while (cap < need)
			cap *= 2;
		if ((p = realloc(nb->text, cap)) == NULL) {
			nb->err = true;
			return;
		}
		nb->text = p;
		nb->cap = cap;
	}
	va_start(ap, fmt);
	vsnprintf(nb->text + nb->len, nb->cap - nb->len, fmt, ap);
	va_end(ap);
	nb->len += (size_t)n;
}

static void
nft_buf_reset(struct nft_buf *nb)
{
	nb->len = 0;
	nb->err = false;
	if (nb->text != NULL)
		nb->text[0] = '\0';
}

static void
nft_buf_free(struct nft_buf *nb)
{
	free(nb->text);
	memset(nb, 0, sizeof(*nb));
}

static void
nft_cmd_delete(struct nft_backend *nb, struct nft_buf *buf, uint8_t protocol,
    uint16_t ext_port)
{
	nft_buf_printf(buf, "delete element ip %s " NFT_MAP_NAME
	    " { %u . %u }\n", nb->table, protocol, ext_port);
}

static void
nft_cmd_add(struct nft_backend *nb, struct nft_buf *buf,
    const struct backend_rule *r)
{
	char addr[INET_ADDRSTRLEN], timeout[32] = "";
	uint32_t t = r->timeout;

	/* the caller checked that the address is IPv4-mapped */
	inet_ntop(AF_INET, &r->int_addr.s6_addr[12], addr, sizeof(addr));
	if (t > NFT_TIMEOUT_MAX_S)
		t = NFT_TIMEOUT_MAX_S;
	/* no timeout clause: the element never expires (static mapping) */
	if (t != 0)
		snprintf(timeout, sizeof(timeout), " timeout %us", t);
	nft_buf_printf(buf, "add element ip %s " NFT_MAP_NAME
	    " { %u . %u%s : %s . %u }\n", nb->table, r->protocol, r->ext_port,
	    timeout, addr, r->int_port);
}

/* "A . P . N . B . Q": a PEER element's key (the caller checked that the
   addresses are IPv4-mapped). */
static void
nft_peer_key(const struct backend_rule *r, char *buf, size_t len)
{
	char a[INET_ADDRSTRLEN], b[INET_ADDRSTRLEN];

	inet_ntop(AF_INET, &r->int_addr.s6_addr[12], a, sizeof(a));
	inet_ntop(AF_INET, &r->peer_addr.s6_addr[12], b, sizeof(b));
	snprintf(buf, len, "%s . %u . %u . %s . %u", a, r->protocol,
	    r->int_port, b, r->peer_port);
}

static void
nft_cmd_peer(struct nft_backend *nb, struct nft_buf *buf,
    const struct backend_rule *r, bool add)
{
	char key[2 * INET_ADDRSTRLEN + 32], ext[INET_ADDRSTRLEN];
	char timeout[32] = "";
	uint32_t t = r->timeout;

	nft_peer_key(r, key, sizeof(key));
	if (!add) {
		nft_buf_printf(buf, "delete element ip %s " NFT_PEER_MAP_NAME
		    " { %s }\n", nb->table, key);
		return;
	}
	inet_ntop(AF_INET, &r->ext_addr.s6_addr[12], ext, sizeof(ext));
	if (t > NFT_TIMEOUT_MAX_S)
		t = NFT_TIMEOUT_MAX_S;
	if (t != 0)
		snprintf(timeout, sizeof(timeout), " timeout %us", t);
	nft_buf_printf(buf, "add element ip %s " NFT_PEER_MAP_NAME
	    " { %s%s : %s . %u }\n", nb->table, key, timeout, ext,
	    r->ext_port);
}

/* --- running nft --- */

/* The errno libnftables reported in its text ("Could not process rule:
   File exists"), EIO when it names none we know. */
static int
nft_error_code(const char *text)
{
	static const int known[] = {
		ENOENT, EEXIST, ENOMEM, ENOSPC, EPERM, EBUSY, EOPNOTSUPP,
		EINVAL, ERANGE,
	};
	size_t i;

	for (i = 0; i < sizeof(known) / sizeof(known[0]); i++)
		if (strstr(text, strerror(known[i])) != NULL)
			return known[i];
	return EIO;
}

/* One log line per line of nft's message, without the caret lines. */
static void
nft_log_error(const char *what, const char *text)
{
	const char *line, *end, *c;
	int len;

	for (line = text; *line != '\0'; line = *end ? end + 1 : end) {
		if ((end = strchr(line, '\n')) == NULL)
			end = line + strlen(line);
		for (c = line; c < end && strchr(" \t^~", *c) != NULL; c++)
			;
		if (c == end)
			continue;
		len = (int)(end - line);
		log_warnx("nft %s: %.*s", what, len, line);
	}
}

/*
 * Run one transaction. 0 on success; otherwise an errno value, and nft's
 * message (which quotes the failing command) is logged unless quiet. *out,
 * when asked for, is nft's output, valid until the next run.
 */
static int
nft_run(struct nft_backend *nb, const char *text, const char *what,
    const char **out, bool quiet)
{
	const char *err, *o;
	int rc, error = 0;

	rc = nft_run_cmd_from_buffer(nb->ctx, text);
	/* reading a buffer also rewinds it: they never grow across runs */
	o = nft_ctx_get_output_buffer(nb->ctx);
	err = nft_ctx_get_error_buffer(nb->ctx);
	if (out != NULL)
		*out = o != NULL ? o : "";
	if (rc != 0) {
		error = nft_error_code(err != NULL ? err : "");
		if (!quiet) {
			if (err != NULL && *err != '\0')
				nft_log_error(what, err);
			else
				log_warnx("nft %s failed", what);
		}
	}
	return error;
}

/* Ask the kernel whether an element exists (the rare failure path). */
static bool
nft_probe(struct nft_backend *nb, uint8_t protocol, uint16_t ext_port)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "get element ip %s " NFT_MAP_NAME
	    " { %u . %u }\n", nb->table, protocol, ext_port);
	return nft_run(nb, cmd, "probe", NULL, true) == 0;
}

static bool
nft_probe_peer(struct nft_backend *nb, const struct backend_rule *r)
{
	char cmd[256], key[2 * INET_ADDRSTRLEN + 32];

	nft_peer_key(r, key, sizeof(key));
	snprintf(cmd, sizeof(cmd), "get element ip %s " NFT_PEER_MAP_NAME
	    " { %s }\n", nb->table, key);
	return nft_run(nb, cmd, "probe", NULL, true) == 0;
}

/* --- names --- */

/* nft identifiers: a letter, then letters, digits, '_' (nft has no
   quoting for table names, so nothing else may reach the command text). */
static bool
nft_valid_table(const char *s)
{
	const char *c;

	if (s == NULL || strlen(s) > NFT_TABLE_NAME_MAX ||
	    !((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z')))
		return false;
	for (c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || *c == '_'))
			return false;
	return true;
}

/* Interface names go between quotes: no quote, backslash or control. */
static bool
nft_valid_ifname(const char *s)
{
	const char *c;

	if (s == NULL || *s == '\0' || strlen(s) >= IFNAMSIZ)
		return false;
	for (c = s; *c != '\0'; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
		    (*c >= '0' && *c <= '9') || strchr("._-@", *c) != NULL))
			return false;
	return true;
}

/* --- the guard (backend.h, X-01, X-06) --- */

/* Priority filter - 1: see the comment at the top. */
#define NFT_GUARD_HOOK \
	"type filter hook input priority filter - 1; policy accept;"

static void
nft_guard_free(struct nft_guard *g)
{
	free(g->lans);
	memset(g, 0, sizeof(*g));
}

/* "{ 1900, 5351 }" */
static void
nft_guard_ports(struct nft_buf *buf, const uint16_t *ports, size_t n)
{
	size_t i;

	nft_buf_printf(buf, "{ ");
	for (i = 0; i < n; i++)
		nft_buf_printf(buf, "%s%u", i > 0 ? ", " : "", ports[i]);
	nft_buf_printf(buf, " }");
}

/* "{ "lo", "lan0" }": lo, because the gateway's own programs reach its
   LAN address through it (the kernel drops a packet with a local source
   arriving anywhere else). The names were checked by set_guard. */
static void
nft_guard_ifnames(struct nft_buf *buf, const struct nft_guard *g)
{
	size_t i;

	nft_buf_printf(buf, "{ \"lo\"");
	for (i = 0; i < g->n_lan; i++)
		if (strcmp(g->lans[i], "lo") != 0)
			nft_buf_printf(buf, ", \"%s\"", g->lans[i]);
	nft_buf_printf(buf, " }");
}

/* One guard rule: "iifname != LANS PROTO dport PORTS counter drop". */
static void
nft_guard_drop(struct nft_backend *nb, struct nft_buf *buf, const char *proto,
    const uint16_t *ports, size_t n)
{
	nft_buf_printf(buf, "add rule ip %s " NFT_GUARD_CHAIN_NAME
	    " iifname != ", nb->table);
	nft_guard_ifnames(buf, &nb->guard);
	nft_buf_printf(buf, " %s dport ", proto);
	nft_guard_ports(buf, ports, n);
	/* TCP: new connections only. The IGD's ports are in the ephemeral
	   range (pupnp's 49152 and up, ours kernel-picked) and the chain
	   outlives the daemon: an outbound connection of the router that
	   later gets one of them as its local port must still receive its
	   SYN-ACK (fix, review) */
	nft_buf_printf(buf, "%s counter drop\n",
	    strcmp(proto, "tcp") == 0 ? " ct state new" : "");
}

/* Is port among the guard's UDP ports? */
static bool
nft_guard_has_udp(const struct nft_guard *g, uint16_t port)
{
	size_t i;

	for (i = 0; i < g->n_udp; i++)
		if (g->udp[i] == port)
			return true;
	return false;
}

/*
 * A strict reverse-path check on every guarded UDP port (spec/iwf.md
 * X-02, anti-spoofing): a datagram that arrived on a LAN interface from a
 * source the gateway would not route back through that interface is
 * dropped. A LAN host forging an internet address would have pupnp send
 * its SSDP answers, several datagrams for one, to that address over the
 * WAN, and forged sources would fill the SSDP rate set (fix, review); a
 * host on one LAN interface forging the address of a host on another
 * would have PCP or NAT-PMP map for that host (the front-ends' prefix
 * check cannot tell: both prefixes are LAN). With the per-source limits:
 * a kernel without nft_fib drops it with them (nft_apply_guard).
 */
static void
nft_guard_rpf(struct nft_backend *nb, struct nft_buf *buf)
{
	const struct nft_guard *g = &nb->guard;

	nft_buf_printf(buf, "add rule ip %s " NFT_GUARD_CHAIN_NAME
	    " iifname != \"lo\" udp dport ", nb->table);
	nft_guard_ports(buf, g->udp, g->n_udp);
	nft_buf_printf(buf, " fib saddr . iif oif missing counter drop\n");
}

/* The SSDP answer rate (NFT_GUARD_SSDP_RATE): after the WAN drop and the
   reverse-path check, so only LAN sources reach it. */
static void
nft_guard_ssdp_rate(struct nft_backend *nb, struct nft_buf *buf)
{
	nft_buf_printf(buf, "add set ip %s " NFT_GUARD_SSDP_SET_NAME " { type "
	    "ipv4_addr; size %u; flags dynamic,timeout; timeout %us; }\n",
	    nb->table, NFT_GUARD_SET_SIZE, NFT_GUARD_SSDP_TIMEOUT_S);
	nft_buf_printf(buf, "add rule ip %s " NFT_GUARD_CHAIN_NAME
	    " udp dport %u update @" NFT_GUARD_SSDP_SET_NAME " { ip saddr "
	    "limit rate over %u/second burst %u packets } counter drop\n",
	    nb->table, NFT_GUARD_SSDP_PORT, NFT_GUARD_SSDP_RATE,
	    NFT_GUARD_SSDP_BURST);
}

/*
 * The output chain (set_owner, X-04), rewritten whole: a SYN from a socket
 * of the daemon's user leaving through neither lo nor a LAN interface is
 * answered by a local reset, so pupnp's NOTIFY thread gets ECONNREFUSED at
 * once instead of waiting out a connect timeout. Empty without an owner.
 */
static void
nft_emit_owner(struct nft_backend *nb, struct nft_buf *buf)
{
	nft_buf_printf(buf, "add chain ip %s " NFT_OWNER_CHAIN_NAME " { type "
	    "filter hook output priority filter - 1; policy accept; }\n",
	    nb->table);
	nft_buf_printf(buf, "flush chain ip %s " NFT_OWNER_CHAIN_NAME "\n",
	    nb->table);
	if (nb->owner[0] == '\0')
		return;
	nft_buf_printf(buf, "add rule ip %s " NFT_OWNER_CHAIN_NAME
	    " meta skuid \"%s\" oifname != ", nb->table, nb->owner);
	nft_guard_ifnames(buf, &nb->guard);
	nft_buf_printf(buf, " tcp flags & (syn | ack) == syn counter reject "
	    "with tcp reset\n");
}

/* A user name as useradd makes them: nothing nft's quoting must escape. */
static bool
nft_valid_user(const char *user)
{
	size_t i, n = strlen(user);

	if (n == 0 || n > NFT_OWNER_MAX)
		return false;
	for (i = 0; i < n; i++)
		if (!isalnum((unsigned char)user[i]) && user[i] != '_' &&
		    user[i] != '-' && user[i] != '.')
			return false;
	return true;
}

static int
nft_set_owner(struct backend *b, const char *user)
{
	struct nft_backend *nb = nft_of(b);

	if (user == NULL)
		user = "";
	else if (!nft_valid_user(user)) {
		log_warnx("nft: owner: \"%s\" is not a user name", user);
		return -1;
	}
	if (strcmp(nb->owner, user) == 0)
		return 0;
	snprintf(nb->owner, sizeof(nb->owner), "%s", user);
	nb->guard_dirty = true;
	return 0;
}

/*
 * The input chain, rewritten whole. UDP: a datagram to one of our ports
 * from outside the LAN is dropped; only the destination port is looked
 * at, so the upstream PCP server's answers (from its port 5351 to our
 * client socket's random port) and its ANNOUNCE (to port 5350, RFC 6887
 * §14.1.3) pass: the client side of the daemon lives on the WAN. Then the
 * reverse-path check on those ports and, when SSDP's port is guarded, the
 * per-source SSDP rate. TCP: the same
 * drop for the IGD's HTTP ports, then the per-source limit on new
 * connections from the LAN to the first n_limited of them. limit: false
 * when the kernel refused the per-source limits (`ct count`,
 * nft_connlimit; `limit` in a dynamic set, nft_limit; the
 * reverse-path check, nft_fib).
 */
static void
nft_emit_guard(struct nft_backend *nb, struct nft_buf *buf, bool limit)
{
	const struct nft_guard *g = &nb->guard;

	nft_emit_owner(nb, buf);

	nft_buf_printf(buf, "add chain ip %s " NFT_GUARD_CHAIN_NAME " { "
	    NFT_GUARD_HOOK " }\n", nb->table);
	nft_buf_printf(buf, "flush chain ip %s " NFT_GUARD_CHAIN_NAME "\n",
	    nb->table);
	if (g->n_udp > 0)
		nft_guard_drop(nb, buf, "udp", g->udp, g->n_udp);
	if (limit && g->n_udp > 0)
		nft_guard_rpf(nb, buf);
	if (limit && nft_guard_has_udp(g, NFT_GUARD_SSDP_PORT))
		nft_guard_ssdp_rate(nb, buf);
	if (g->n_tcp == 0)
		return;
	nft_guard_drop(nb, buf, "tcp", g->tcp, g->n_tcp);
	if (!limit || g->n_limited == 0)
		return;
	nft_buf_printf(buf, "add set ip %s " NFT_GUARD_SET_NAME " { type "
	    "ipv4_addr . inet_service; size %u; flags dynamic; }\n",
	    nb->table, NFT_GUARD_SET_SIZE);
	nft_buf_printf(buf, "add rule ip %s " NFT_GUARD_CHAIN_NAME
	    " tcp dport ", nb->table);
	nft_guard_ports(buf, g->tcp, g->n_limited);
	nft_buf_printf(buf, " ct state new add @" NFT_GUARD_SET_NAME
	    " { ip saddr . tcp dport ct count over %u } counter reject with "
	    "tcp reset\n", BACKEND_GUARD_CONNS_PER_HOST);
}

/* The guard's own transaction (commit, before the elements). A kernel
   without nft_connlimit gets the drops without the limit, said once. */
static void
nft_apply_guard(struct nft_backend *nb)
{
	struct nft_buf buf = { 0 };
	int error = 0;
	bool limit = !nb->guard_no_limit;

	nb->guard_dirty = false;
	for (;;) {
		nft_buf_reset(&buf);
		nft_emit_guard(nb, &buf, limit);
		if (buf.err) {
			log_warnx("nft: guard: out of memory");
			error = ENOMEM;
			break;
		}
		error = nft_run(nb, buf.text, "guard", NULL, limit);
		if (error == 0 || !limit) {
			if (error != 0)
				log_warnx("nft: guard: table ip %s has no "
				    "input rules", nb->table);
			break;
		}
		log_warnx("nft: guard: the kernel refused the per-source "
		    "limits and the reverse-path check (%s; nft_connlimit, "
		    "nft_limit, nft_fib?): dropping WAN packets without them, "
		    "and without anti-spoofing between LAN interfaces",
		    strerror(error));
		nb->guard_no_limit = true;
		limit = false;
	}
	nft_buf_free(&buf);
	if (error == 0)
		log_debug("nft: guard: %zu LAN interface(s), %zu TCP and %zu "
		    "UDP port(s)", nb->guard.n_lan, nb->guard.n_tcp,
		    nb->guard.n_udp);
}

/* Ports without 0, duplicates dropped; false when one is 0 or too many. */
static bool
nft_guard_copy_ports(uint16_t *dst, size_t *n_dst, const uint16_t *src,
    size_t n)
{
	size_t i, j;

	*n_dst = 0;
	if (n > BACKEND_GUARD_MAX_PORTS)
		return false;
	for (i = 0; i < n; i++) {
		if (src[i] == 0)
			return false;
		for (j = 0; j < *n_dst && dst[j] != src[i]; j++)
			;
		if (j == *n_dst)
			dst[(*n_dst)++] = src[i];
	}
	return true;
}

static bool
nft_guard_equal(const struct nft_guard *a, const struct nft_guard *b)
{
	size_t i;

	if (a->n_lan != b->n_lan || a->n_tcp != b->n_tcp ||
	    a->n_limited != b->n_limited || a->n_udp != b->n_udp ||
	    memcmp(a->tcp, b->tcp, a->n_tcp * sizeof(a->tcp[0])) != 0 ||
	    memcmp(a->udp, b->udp, a->n_udp * sizeof(a->udp[0])) != 0)
		return false;
	for (i = 0; i < a->n_lan; i++)
		if (strcmp(a->lans[i], b->lans[i]) != 0)
			return false;
	return true;
}

static int
nft_set_guard(struct backend *b, const char * const *lan_ifnames,
    size_t n_lan, const uint16_t *tcp_ports, size_t n_tcp, size_t n_limited,
    const uint16_t *udp_ports, size_t n_udp)
{
	struct nft_backend *nb = nft_of(b);
	struct nft_guard g = { 0 };
	size_t i, j;

	/* the limited ports first, deduplicated with the rest */
	if (n_limited > n_tcp ||
	    !nft_guard_copy_ports(g.tcp, &g.n_limited, tcp_ports, n_limited) ||
	    !nft_guard_copy_ports(g.tcp, &g.n_tcp, tcp_ports, n_tcp) ||
	    !nft_guard_copy_ports(g.udp, &g.n_udp, udp_ports, n_udp)) {
		log_warnx("nft: guard: bad port list");
		return -1;
	}
	if (n_lan > 0 && (g.lans = calloc(n_lan, sizeof(*g.lans))) == NULL) {
		log_warn("nft: guard");
		return -1;
	}
	for (i = 0; i < n_lan; i++) {
		if (!nft_valid_ifname(lan_ifnames[i])) {
			log_warnx("nft: guard: \"%s\" is not an interface "
			    "name", lan_ifnames[i] != NULL ?
			    lan_ifnames[i] : "");
			nft_guard_free(&g);
			return -1;
		}
		for (j = 0; j < g.n_lan && strcmp(g.lans[j],
		    lan_ifnames[i]) != 0; j++)
			;
		if (j == g.n_lan)
			snprintf(g.lans[g.n_lan++], IFNAMSIZ, "%s",
			    lan_ifnames[i]);
	}
	if (nb->guard_known && nft_guard_equal(&g, &nb->guard)) {
		nft_guard_free(&g);
		return 0;
	}
	nft_guard_free(&nb->guard);
	nb->guard = g;
	nb->guard_known = true;
	nb->guard_dirty = true;
	return 0;
}

/* --- open, close, destroy --- */

/*
 * Create what is missing and keep what is there: `add table/map/chain`
 * are idempotent and leave existing elements alone (a restarted daemon
 * reconciles them); the chain's rule is static, so it is flushed and
 * written again, all in one transaction.
 */
static int
nft_setup(struct nft_backend *nb)
{
	struct nft_buf buf = { 0 };
	int error;

	nft_buf_printf(&buf, "add table ip %s\n", nb->table);
	nft_buf_printf(&buf, "add map ip %s " NFT_MAP_NAME " { type "
	    "inet_proto . inet_service : ipv4_addr . inet_service; "
	    "flags timeout; }\n", nb->table);
	nft_buf_printf(&buf, "add chain ip %s " NFT_CHAIN_NAME " { type nat "
	    "hook prerouting priority dstnat; policy accept; }\n", nb->table);
	nft_buf_printf(&buf, "flush chain ip %s " NFT_CHAIN_NAME "\n",
	    nb->table);
	/* The lookup before the mark: only flows our map translates are
	   marked (a dnat statement ends the rule, so it comes last). */
	nft_buf_printf(&buf, "add rule ip %s " NFT_CHAIN_NAME " iifname \"%s\" "
	    "meta l4proto . th dport @" NFT_MAP_NAME " "
	    "ct mark set ct mark & 0x%08x | 0x%08x "
	    "dnat ip to meta l4proto . th dport map @" NFT_MAP_NAME "\n",
	    nb->table, nb->wan, ~BACKEND_CT_MARK_MASK & 0xffffffffu,
	    BACKEND_CT_MARK);
	/* PEER flows: see NFT_PEER_MAP_NAME */
	nft_buf_printf(&buf, "add map ip %s " NFT_PEER_MAP_NAME " { type "
	    "ipv4_addr . inet_proto . inet_service . ipv4_addr . "
	    "inet_service : ipv4_addr . inet_service; flags timeout; }\n",
	    nb->table);
	nft_buf_printf(&buf, "add chain ip %s " NFT_PEER_CHAIN_NAME " { type "
	    "nat hook postrouting priority srcnat - 1; policy accept; }\n",
	    nb->table);
	nft_buf_printf(&buf, "flush chain ip %s " NFT_PEER_CHAIN_NAME "\n",
	    nb->table);
	nft_buf_printf(&buf, "add rule ip %s " NFT_PEER_CHAIN_NAME " oifname "
	    "\"%s\" ip saddr . meta l4proto . th sport . ip daddr . th dport "
	    "@" NFT_PEER_MAP_NAME " counter snat ip to ip saddr . meta l4proto "
	    ". th sport . ip daddr . th dport map @" NFT_PEER_MAP_NAME "\n",
	    nb->table, nb->wan);
	/* the guard: kept as a previous run left it until set_guard says
	   what this run serves (no window without it at a restart) */
	if (nb->guard_known)
		nft_emit_guard(nb, &buf, !nb->guard_no_limit);
	else
		nft_buf_printf(&buf, "add chain ip %s " NFT_GUARD_CHAIN_NAME
		    " { " NFT_GUARD_HOOK " }\n", nb->table);
	if (buf.err) {
		nft_buf_free(&buf);
		log_warnx("nft: out of memory");
		return -1;
	}
	error = nft_run(nb, buf.text, "setup", NULL, false);
	nft_buf_free(&buf);
	if (error != 0) {
		log_warnx("nft: cannot set up table ip %s", nb->table);
		return -1;
	}
	return 0;
}

static struct nft_ctx *
nft_context_new(void)
{
	struct nft_ctx *ctx;

	if ((ctx = nft_ctx_new(NFT_CTX_DEFAULT)) == NULL ||
	    nft_ctx_buffer_output(ctx) != 0 ||
	    nft_ctx_buffer_error(ctx) != 0) {
		if (ctx != NULL)
			nft_ctx_free(ctx);
		log_warnx("nft: cannot create a libnftables context");
		return NULL;
	}
	/* listings in numbers: protocols, ports and timeouts we can parse */
	nft_ctx_output_set_flags(ctx, NFT_CTX_OUTPUT_NUMERIC_ALL);
	return ctx;
}

/*
 * A listing leaves every element of the map in libnftables' cache (about
 * 1.7 KiB each: 70 MB for 40,000 mappings), and the context keeps its
 * cache until it is freed: start a fresh one, and hand the memory back.
 */
static void
nft_context_renew(struct nft_backend *nb)
{
	struct nft_ctx *ctx;

	if ((ctx = nft_context_new()) == NULL)
		return;		/* keep the old one: it still works */
	nft_ctx_free(nb->ctx);
	nb->ctx = ctx;
#ifdef __GLIBC__
	malloc_trim(0);
#endif
}

static struct backend *
nft_open(const struct backend_params *p)
{
	struct nft_backend *nb;

	if (!nft_valid_table(p->table)) {
		log_warnx("nft: \"%s\" is not a table name",
		    p->table != NULL ? p->table : "");
		return NULL;
	}
	if (!nft_valid_ifname(p->wan_interface)) {
		log_warnx("nft: a WAN interface name is needed for DNAT");
		return NULL;
	}
	if ((nb = calloc(1, sizeof(*nb))) == NULL) {
		log_warn("nft: calloc");
		return NULL;
	}
	nb->base.ops = &backend_nft_ops;
	/* both lengths were checked above */
	snprintf(nb->table, sizeof(nb->table), "%s", p->table);
	snprintf(nb->wan, sizeof(nb->wan), "%s", p->wan_interface);
	if ((nb->ctx = nft_context_new()) == NULL)
		goto fail;
	if (nft_setup(nb) == -1 || nft_seed_record(nb) == -1)
		goto fail;
	log_debug("nft: table ip %s ready (DNAT on %s)", nb->table, nb->wan);
	return &nb->base;
fail:
	if (nb->ctx != NULL)
		nft_ctx_free(nb->ctx);
	nft_portset_free(&nb->installed);
	free(nb);
	return NULL;
}

static void
nft_close(struct backend *b)
{
	struct nft_backend *nb = nft_of(b);

	if (nb == NULL)
		return;
	nft_cancel_queue(nb);
	nft_ctx_free(nb->ctx);
	nft_portset_free(&nb->installed);
	nft_peer_free(&nb->peers);
	nft_guard_free(&nb->guard);
	free(nb);
}

static int
nft_destroy(struct backend *b)
{
	struct nft_backend *nb = nft_of(b);
	char cmd[2 * NFT_TABLE_NAME_MAX + 64];

	/* `add` first: deleting a table that is already gone is not an
	   error for us, and the pair is one transaction */
	snprintf(cmd, sizeof(cmd), "add table ip %s\ndelete table ip %s\n",
	    nb->table, nb->table);
	if (nft_run(nb, cmd, "destroy", NULL, false) != 0)
		return -1;
	nft_portset_free(&nb->installed);
	nft_peer_free(&nb->peers);
	return 0;
}

/* --- the queue --- */

static int
nft_enqueue(struct backend *b, enum nft_op op, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	struct nft_backend *nb = nft_of(b);
	struct nft_change *q, *c;
	size_t cap;

	if (nb->n_queue == nb->cap_queue) {
		cap = nb->cap_queue ? nb->cap_queue * 2 : 64;
		if ((q = reallocarray(nb->queue, cap, sizeof(*q))) == NULL) {
			log_warn("nft: queue");
			return -1;
		}
		nb->queue = q;
		nb->cap_queue = cap;
	}
	c = &nb->queue[nb->n_queue++];
	memset(c, 0, sizeof(*c));
	c->rule = *r;
	c->op = op;
	c->done = done;
	c->arg = arg;
	return 0;
}

static int
nft_add(struct backend *b, const struct backend_rule *r, backend_done_fn done,
    void *arg)
{
	return nft_enqueue(b, NFT_OP_ADD, r, done, arg);
}

static int
nft_remove(struct backend *b, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	return nft_enqueue(b, NFT_OP_REMOVE, r, done, arg);
}

static int
nft_refresh(struct backend *b, const struct backend_rule *r,
    backend_done_fn done, void *arg)
{
	return nft_enqueue(b, NFT_OP_REFRESH, r, done, arg);
}

static bool
nft_pending(const struct backend *b)
{
	const struct nft_backend *nb = (const struct nft_backend *)b;

	return nb->n_queue > 0 || nb->guard_dirty;
}

/* Why a change cannot be made as a DNAT element; 0 when it can. */
static int
nft_check_change(struct nft_change *c)
{
	const struct backend_rule *r = &c->rule;

	if ((c->slot = nft_proto_slot(r->protocol)) == -1)
		return EPROTONOSUPPORT;
	if (r->kind == BACKEND_RULE_PEER_SNAT)
		return (!IN6_IS_ADDR_V4MAPPED(&r->int_addr) ||
		    r->int_port == 0 || !IN6_IS_ADDR_V4MAPPED(&r->peer_addr) ||
		    r->peer_port == 0 || (c->op != NFT_OP_REMOVE &&
		    (!IN6_IS_ADDR_V4MAPPED(&r->ext_addr) || r->ext_port == 0))) ?
		    EINVAL : 0;
	if (r->kind != BACKEND_RULE_DNAT)
		return EINVAL;
	if (r->ext_port == 0)
		return EINVAL;
	/* a remove names the key only */
	if (c->op != NFT_OP_REMOVE &&
	    (!IN6_IS_ADDR_V4MAPPED(&r->int_addr) || r->int_port == 0))
		return EINVAL;
	return 0;
}

/*
 * Write the commands for one change as the record says the kernel is, and
 * update the record. An element that is there is deleted first: for a
 * remove that is the change, for an add it replaces another target (an
 * add over an element fails with EEXIST), for a refresh it re-arms the
 * timeout (re-adding leaves it; nft 1.0.6 has no `destroy`).
 */
static int
nft_emit_peer(struct nft_backend *nb, struct nft_buf *buf,
    struct nft_change *c)
{
	const struct backend_rule *r = &c->rule;

	c->was_installed = nft_peer_has(&nb->peers, r);
	if (c->op != NFT_OP_REMOVE && nft_peer_set(&nb->peers, r, true) == -1)
		return ENOMEM;
	if (c->was_installed)
		nft_cmd_peer(nb, buf, r, false);
	if (c->op == NFT_OP_REMOVE)
		(void)nft_peer_set(&nb->peers, r, false);
	else
		nft_cmd_peer(nb, buf, r, true);
	return 0;
}

static int
nft_emit(struct nft_backend *nb, struct nft_buf *buf, struct nft_change *c)
{
	const struct backend_rule *r = &c->rule;

	if (r->kind == BACKEND_RULE_PEER_SNAT)
		return nft_emit_peer(nb, buf, c);

	c->was_installed = nft_portset_has(&nb->installed, c->slot,
	    r->ext_port);
	if (c->op != NFT_OP_REMOVE &&
	    nft_portset_set(&nb->installed, c->slot, r->ext_port, true) == -1)
		return ENOMEM;
	if (c->was_installed)
		nft_cmd_delete(nb, buf, r->protocol, r->ext_port);
	if (c->op == NFT_OP_REMOVE)
		nft_portset_set(&nb->installed, c->slot, r->ext_port, false);
	else
		nft_cmd_add(nb, buf, r);
	return 0;
}

static void
nft_unemit(struct nft_backend *nb, const struct nft_change *c)
{
	if (c->rule.kind == BACKEND_RULE_PEER_SNAT) {
		(void)nft_peer_set(&nb->peers, &c->rule, c->was_installed);
		return;
	}
	nft_portset_set(&nb->installed, c->slot, c->rule.ext_port,
	    c->was_installed);
}

/*
 * The rare path: apply one change alone. When it fails, the record may be
 * wrong about this key (the kernel expired the element, or someone touched
 * our table): ask the kernel, and try once more from what it says.
 */
static int
nft_apply_one(struct nft_backend *nb, struct nft_change *c, const char *what)
{
	struct nft_buf buf = { 0 };
	const struct backend_rule *r = &c->rule;
	int error = 0, attempt;
	bool there;

	for (attempt = 0; attempt < 2; attempt++) {
		nft_buf_reset(&buf);
		if ((error = nft_emit(nb, &buf, c)) != 0)
			break;
		if (buf.err) {
			nft_unemit(nb, c);
			error = ENOMEM;
			break;
		}
		if (buf.len == 0)	/* removing what is not there */
			break;
		error = nft_run(nb, buf.text, what, NULL, attempt == 0);
		if (error == 0)
			break;
		if (r->kind == BACKEND_RULE_PEER_SNAT) {
			there = nft_probe_peer(nb, r);
			(void)nft_peer_set(&nb->peers, r, there);
			continue;
		}
		there = nft_probe(nb, r->protocol, r->ext_port);
		nft_portset_set(&nb->installed, c->slot, r->ext_port, there);
	}
	nft_buf_free(&buf);
	return error;
}

/* Take the queue: callbacks may queue new changes for the next commit. */
static struct nft_change *
nft_take_queue(struct nft_backend *nb, size_t *n)
{
	struct nft_change *q = nb->queue;

	*n = nb->n_queue;
	nb->queue = NULL;
	nb->n_queue = nb->cap_queue = 0;
	return q;
}

static void
nft_finish(struct nft_change *q, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		if (q[i].done != NULL)
			q[i].done(q[i].arg, q[i].error);
	free(q);
}

static void
nft_cancel_queue(struct nft_backend *nb)
{
	struct nft_change *q;
	size_t i, n;

	q = nft_take_queue(nb, &n);
	for (i = 0; i < n; i++)
		q[i].error = ECANCELED;
	nft_finish(q, n);
}

/*
 * One transaction for a run of changes: one netlink batch, all or nothing
 * in the kernel. If it fails, the record is rolled back and the changes
 * are applied one by one to tell the good from the bad.
 */
static void
nft_apply_batch(struct nft_backend *nb, struct nft_change *q, size_t n,
    const char *what)
{
	struct nft_buf buf = { 0 };
	struct nft_change *c;
	size_t i, batched = 0;
	int error = 0;

	for (i = 0; i < n; i++) {
		c = &q[i];
		c->in_batch = false;
		if ((c->error = nft_check_change(c)) != 0 ||
		    (c->error = nft_emit(nb, &buf, c)) != 0)
			continue;
		c->in_batch = true;
		batched++;
	}
	if (buf.err)
		error = ENOMEM;
	else if (buf.len > 0)
		error = nft_run(nb, buf.text, what, NULL, true);
	nft_buf_free(&buf);
	if (error == 0)
		return;
	for (i = n; i-- > 0; )
		if (q[i].in_batch)
			nft_unemit(nb, &q[i]);
	log_info("nft: %s: a batch of %zu changes failed (%s); applying them "
	    "one by one", what, batched, strerror(error));
	for (i = 0; i < n; i++)
		if (q[i].in_batch)
			q[i].error = nft_apply_one(nb, &q[i], what);
}

/* Everything in as few transactions as memory allows (NFT_BATCH_MAX). */
static void
nft_apply(struct nft_backend *nb, struct nft_change *q, size_t n,
    const char *what)
{
	size_t i, len;

	for (i = 0; i < n; i += len) {
		len = n - i < NFT_BATCH_MAX ? n - i : NFT_BATCH_MAX;
		nft_apply_batch(nb, q + i, len, what);
	}
}

static void
nft_commit(struct backend *b)
{
	struct nft_backend *nb = nft_of(b);
	struct nft_change *q;
	size_t n;

	if (nb->guard_dirty)
		nft_apply_guard(nb);
	if ((q = nft_take_queue(nb, &n)) == NULL)
		return;
	nft_apply(nb, q, n, "commit");
	nft_finish(q, n);
}

/* --- reconcile --- */

struct nft_key {
	uint8_t		 protocol;
	uint16_t	 ext_port;
};

struct nft_keys {
	struct nft_key	*keys;
	size_t		 n;
	size_t		 cap;
};

static int
nft_keys_push(struct nft_keys *k, unsigned int protocol, unsigned int port)
{
	struct nft_key *p;
	size_t cap;

	if (k->n == k->cap) {
		cap = k->cap ? k->cap * 2 : 256;
		if ((p = reallocarray(k->keys, cap, sizeof(*p))) == NULL)
			return -1;
		k->keys = p;
		k->cap = cap;
	}
	k->keys[k->n].protocol = (uint8_t)protocol;
	k->keys[k->n].ext_port = (uint16_t)port;
	k->n++;
	return 0;
}

static const char *
nft_skip_space(const char *s)
{
	while (*s == ' ' || *s == '\t' || *s == '\n')
		s++;
	return s;
}

/* A decimal number up to max; NULL when there is none or it is larger. */
static const char *
nft_parse_uint(const char *s, unsigned long max, unsigned int *out)
{
	unsigned long v = 0;
	const char *start = s;

	while (*s >= '0' && *s <= '9') {
		v = v * 10 + (unsigned long)(*s - '0');
		if (v > max)
			return NULL;
		s++;
	}
	if (s == start)
		return NULL;
	*out = (unsigned int)v;
	return s;
}

/* "A . B": two numbers joined by nft's concatenation dot. */
static const char *
nft_parse_pair(const char *s, unsigned long max1, unsigned int *a,
    unsigned int *b)
{
	if ((s = nft_parse_uint(nft_skip_space(s), max1, a)) == NULL)
		return NULL;
	s = nft_skip_space(s);
	if (*s != '.')
		return NULL;
	return nft_parse_uint(nft_skip_space(s + 1), UINT16_MAX, b);
}

/* "timeout 100s" or "expires 93s" (numeric time output). */
static const char *
nft_parse_attribute(const char *s)
{
	size_t len;

	if (strncmp(s, "timeout ", len = strlen("timeout ")) != 0 &&
	    strncmp(s, "expires ", len = strlen("expires ")) != 0)
		return NULL;
	s += len;
	if (*s < '0' || *s > '9')
		return NULL;
	while ((*s >= '0' && *s <= '9') || (*s >= 'a' && *s <= 'z'))
		s++;
	return s;
}

/* One element: "6 . 6000 timeout 30s expires 29s : 192.0.2.10 . 6000". */
static const char *
nft_parse_element(const char *s, struct nft_keys *k)
{
	char addr[INET_ADDRSTRLEN];
	struct in_addr in;
	unsigned int protocol, port, int_port;
	size_t len;

	if ((s = nft_parse_pair(s, UINT8_MAX, &protocol, &port)) == NULL)
		return NULL;
	for (s = nft_skip_space(s); *s != ':'; s = nft_skip_space(s))
		if ((s = nft_parse_attribute(s)) == NULL)
			return NULL;
	s = nft_skip_space(s + 1);
	len = strspn(s, "0123456789.");
	if (len == 0 || len >= sizeof(addr))
		return NULL;
	memcpy(addr, s, len);
	addr[len] = '\0';
	/* the concatenation dot follows after a space */
	if (addr[len - 1] == '.' || inet_pton(AF_INET, addr, &in) != 1)
		return NULL;
	s = nft_skip_space(s + len);
	if (*s != '.' ||
	    (s = nft_parse_uint(nft_skip_space(s + 1), UINT16_MAX, &int_port))
	    == NULL)
		return NULL;
	if (nft_keys_push(k, protocol, port) == -1)
		return NULL;
	return s;
}

/*
 * The elements of `list map` in nft's numeric text output, parsed
 * strictly: anything we do not understand fails the reconcile rather than
 * being guessed at.
 */
static int
nft_parse_listing(const char *text, struct nft_keys *k)
{
	const char *s;

	if (strstr(text, "map " NFT_MAP_NAME " {") == NULL)
		return -1;
	if ((s = strstr(text, "elements = {")) == NULL)
		return 0;	/* an empty map */
	s += strlen("elements = {");
	for (;;) {
		if ((s = nft_parse_element(s, k)) == NULL)
			return -1;
		s = nft_skip_space(s);
		if (*s == '}')
			return 0;
		if (*s != ',')
			return -1;
		s++;
	}
}

static int
nft_list_keys(struct nft_backend *nb, struct nft_keys *k)
{
	char cmd[NFT_TABLE_NAME_MAX + 64];
	const char *out;
	int rc;

	snprintf(cmd, sizeof(cmd), "list map ip %s " NFT_MAP_NAME "\n",
	    nb->table);
	if (nft_run(nb, cmd, "list", &out, false) != 0) {
		nft_context_renew(nb);
		return -1;
	}
	k->n = 0;
	rc = nft_parse_listing(out, k);
	/* out belongs to the old context: parsed, it can go */
	nft_context_renew(nb);
	if (rc == -1)
		log_warnx("nft: cannot parse the elements of map ip %s "
		    NFT_MAP_NAME, nb->table);
	return rc;
}

/* A rule reconcile can install, or a reason logged. */
static bool
nft_reconcile_rule_ok(const struct backend_rule *r, int *slot,
    const struct nft_portset *want)
{
	struct nft_change c = { .rule = *r, .op = NFT_OP_ADD };
	int error;

	if ((error = nft_check_change(&c)) != 0) {
		log_warnx("nft: reconcile: rule %u/%u: %s", r->protocol,
		    r->ext_port, strerror(error));
		return false;
	}
	if (nft_portset_has(want, c.slot, r->ext_port)) {
		log_warnx("nft: reconcile: rule %u/%u given twice, keeping "
		    "the first", r->protocol, r->ext_port);
		return false;
	}
	*slot = c.slot;
	return true;
}

/* The record becomes exactly the keys the kernel holds. */
static int
nft_record_from_keys(struct nft_backend *nb, const struct nft_keys *k)
{
	size_t i;
	int slot;

	nft_portset_free(&nb->installed);
	for (i = 0; i < k->n; i++)
		if ((slot = nft_proto_slot(k->keys[i].protocol)) != -1 &&
		    nft_portset_set(&nb->installed, slot, k->keys[i].ext_port,
		    true) == -1)
			return -1;
	return 0;
}

/* The record starts as what the map holds (elements a previous run left
   for a reconcile to sort out), so a remove before that reconcile still
   deletes. */
static int
nft_seed_record(struct nft_backend *nb)
{
	struct nft_keys keys = { 0 };
	int rc;

	if (nft_list_keys(nb, &keys) == -1) {
		free(keys.keys);
		return -1;
	}
	if ((rc = nft_record_from_keys(nb, &keys)) == -1)
		log_warnx("nft: out of memory");
	else if (keys.n > 0)
		log_info("nft: table ip %s holds %zu elements", nb->table,
		    keys.n);
	free(keys.keys);
	return rc;
}

static int
nft_peer_flush(struct nft_backend *nb)
{
	char cmd[NFT_TABLE_NAME_MAX + 64];

	snprintf(cmd, sizeof(cmd), "flush map ip %s " NFT_PEER_MAP_NAME "\n",
	    nb->table);
	nft_peer_free(&nb->peers);
	return nft_run(nb, cmd, "reconcile", NULL, false) == 0 ? 0 : -1;
}

/* Elements whose protocol has no ports were never ours: delete them
   directly (the change machinery refuses such keys). */
static int
nft_delete_foreign(struct nft_backend *nb, const struct nft_keys *k)
{
	struct nft_buf buf = { 0 };
	size_t i;
	int error = 0;

	for (i = 0; i < k->n; i++)
		if (nft_proto_slot(k->keys[i].protocol) == -1)
			nft_cmd_delete(nb, &buf, k->keys[i].protocol,
			    k->keys[i].ext_port);
	if (buf.err)
		error = ENOMEM;
	else if (buf.len > 0)
		error = nft_run(nb, buf.text, "reconcile", NULL, false);
	nft_buf_free(&buf);
	return error == 0 ? 0 : -1;
}

/*
 * The kernel's map against the rules given, as changes for the batch
 * machinery: removes for the strangers first, then an add for every rule
 * (an add over an element there deletes it first, which re-arms its
 * timeout). *nq changes, in an array the caller frees.
 */
static struct nft_change *
nft_reconcile_changes(const struct backend_rule *rules, size_t n,
    const struct nft_keys *k, size_t *nq)
{
	struct nft_portset want = { { NULL } };
	struct nft_change *q;
	size_t i, n_add = 0, n_remove = 0;
	int slot;

	/* adds go at the tail while the removes are not known yet */
	if ((q = calloc(k->n + n + 1, sizeof(*q))) == NULL)
		return NULL;
	for (i = 0; i < n; i++) {
		/* PEER elements: the map was flushed, every rule is added
		   (nft_reconcile) */
		if (rules[i].kind == BACKEND_RULE_PEER_SNAT) {
			struct nft_change c = { .rule = rules[i],
			    .op = NFT_OP_ADD };

			if (nft_check_change(&c) != 0)
				continue;
			q[k->n + n_add].rule = rules[i];
			q[k->n + n_add].op = NFT_OP_ADD;
			n_add++;
			continue;
		}
		if (!nft_reconcile_rule_ok(&rules[i], &slot, &want))
			continue;
		if (nft_portset_set(&want, slot, rules[i].ext_port, true) == -1)
			goto fail;
		q[k->n + n_add].rule = rules[i];
		q[k->n + n_add].op = NFT_OP_ADD;
		n_add++;
	}
	for (i = 0; i < k->n; i++) {
		slot = nft_proto_slot(k->keys[i].protocol);
		if (slot == -1 ||
		    nft_portset_has(&want, slot, k->keys[i].ext_port))
			continue;
		q[n_remove].rule.protocol = k->keys[i].protocol;
		q[n_remove].rule.ext_port = k->keys[i].ext_port;
		q[n_remove].op = NFT_OP_REMOVE;
		n_remove++;
	}
	memmove(&q[n_remove], &q[k->n], n_add * sizeof(*q));
	nft_portset_free(&want);
	*nq = n_remove + n_add;
	return q;
fail:
	nft_portset_free(&want);
	free(q);
	return NULL;
}

/*
 * List the map once, start the record from what it holds, and apply the
 * difference with the same batches (and the same one-by-one fallback) as
 * commit(): a kernel expiry between the listing and a batch is handled
 * like any other.
 */
static int
nft_reconcile(struct backend *b, const struct backend_rule *rules, size_t n)
{
	struct nft_backend *nb = nft_of(b);
	struct nft_keys keys = { 0 };
	struct nft_change *q = NULL;
	size_t i, nq = 0, failed = 0;
	int rc = -1;

	/* the table may have been deleted under us: make it whole first */
	if (nft_setup(nb) == -1 || nft_list_keys(nb, &keys) == -1)
		goto done;
	if (nft_record_from_keys(nb, &keys) == -1 ||
	    (q = nft_reconcile_changes(rules, n, &keys, &nq)) == NULL) {
		log_warnx("nft: reconcile: out of memory");
		goto done;
	}
	if (nft_delete_foreign(nb, &keys) == -1)
		failed++;
	/* PEER elements are few: start their map empty and add them all */
	if (nft_peer_flush(nb) == -1)
		failed++;
	nft_apply(nb, q, nq, "reconcile");
	for (i = 0; i < nq; i++)
		if (q[i].error != 0)
			failed++;
	log_debug("nft: reconcile: %zu rules, %zu elements found, %zu "
	    "changes, %zu failed", n, keys.n, nq, failed);
	rc = failed == 0 ? 0 : -1;
	if (failed > 0)
		log_warnx("nft: reconcile: %zu changes failed", failed);
done:
	free(q);
	free(keys.keys);
	return rc;
}

const struct backend_ops backend_nft_ops = {
	.name = "nft",
	.open = nft_open,
	.close = nft_close,
	.destroy = nft_destroy,
	.add = nft_add,
	.remove = nft_remove,
	.refresh = nft_refresh,
	.commit = nft_commit,
	.pending = nft_pending,
	.reconcile = nft_reconcile,
	.set_guard = nft_set_guard,
	.set_owner = nft_set_owner,
};
