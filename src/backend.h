/*
 * backend.h - the local NAT backend interface (STYLE.md habit 6): one header,
 * a whole file per firewall (backend_nft.c, backend_none.c, and a fake for
 * tests in tests/), chosen at run time by the daemon: nat = local uses nft.
 *
 * The table owns the truth (habit 5): the backend installs what it is told
 * and never reads the kernel back to learn who owns what. It reads which
 * rules exist only to keep its batches valid (at open, and for a key whose
 * change failed) and in backend_reconcile(), which makes the kernel equal
 * to a list the caller gives.
 *
 * Changes are queued and applied together by backend_commit(), which the
 * daemon calls once per loop turn: one nft transaction (one netlink batch)
 * for any number of mappings (past 1024 changes, e.g. a restore at
 * start-up, one per 1024: libnftables needs ~3 KiB per command while it
 * works). Each queued change has a completion callback that runs from
 * backend_commit() with 0 or an errno value.
 *
 * A DNAT rule is named by (protocol, ext_port), a PEER SNAT rule by its
 * flow (see struct backend_rule); what a change means after the commit
 * that applies it:
 *   add      the rule for its name is this one (an older rule
 *            for the same key is replaced);
 *   refresh  the same, with the timeout re-armed (the way to extend a
 *            mapping's lifetime);
 *   remove   there is no rule of that name; removing a rule
 *            that is not there (never added, or expired in the kernel)
 *            succeeds.
 * Changes apply in the order they were queued. Every callback runs exactly
 * once: from commit(), or from close() with ECANCELED for changes never
 * committed. Errors: EINVAL (not an IPv4-mapped address, port 0),
 * EPROTONOSUPPORT (a protocol without ports: DNAT needs one), otherwise
 * what the firewall said (EIO when it did not say).
 *
 * Coexisting with the router's firewall (DESIGN.md "State and
 * durability"): an accept in our table does not override a drop in the
 * router's, so every flow our table DNATs gets BACKEND_CT_MARK in its
 * conntrack entry (and has `ct status dnat`); the router accepts either
 * with one rule of its own (docs/deployment.md).
 */
#ifndef IWFD_BACKEND_H
#define IWFD_BACKEND_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/*
 * The kinds of local rule. A zeroed rule is a DNAT, so callers that know
 * only MAP need not name the kind.
 *   DNAT       (protocol, gateway WAN port) -> internal address:port: the
 *              inbound half of a MAP mapping; named by (protocol,
 *              ext_port).
 *   PEER_SNAT  the outbound flow internal address:port -> peer_addr:
 *              peer_port leaves from ext_addr:ext_port (RFC 6887 §12: a
 *              PEER mapping); named by (protocol, int_addr, int_port,
 *              peer_addr, peer_port). Several PEER flows of one internal
 *              endpoint share one ext_port (RFC 4787 REQ-1, endpoint-
 *              independent mapping), so ext_port is not part of the name.
 */
enum backend_rule_kind {
	BACKEND_RULE_DNAT = 0,
	BACKEND_RULE_PEER_SNAT,
};

/* One local rule. */
struct backend_rule {
	struct in6_addr	 int_addr;	/* IPv4-mapped */
	struct in6_addr	 peer_addr;	/* PEER_SNAT: the remote peer */
	struct in6_addr	 ext_addr;	/* PEER_SNAT: the gateway's WAN
					   address to translate to */
	uint16_t	 ext_port;	/* the gateway's own WAN port */
	uint16_t	 int_port;
	uint16_t	 peer_port;	/* PEER_SNAT */
	uint8_t		 protocol;	/* MAP_PROTO_TCP / MAP_PROTO_UDP */
	uint8_t		 kind;		/* enum backend_rule_kind */
	uint32_t	 timeout;	/* seconds the kernel keeps it; 0: no
					   timeout (static mapping) */
};

/* Do a and b name the same rule (see enum backend_rule_kind)? */
static inline bool
backend_rule_same_key(const struct backend_rule *a,
    const struct backend_rule *b)
{
	if (a->kind != b->kind || a->protocol != b->protocol)
		return false;
	if (a->kind == BACKEND_RULE_DNAT)
		return a->ext_port == b->ext_port;
	return a->int_port == b->int_port && a->peer_port == b->peer_port &&
	    IN6_ARE_ADDR_EQUAL(&a->int_addr, &b->int_addr) &&
	    IN6_ARE_ADDR_EQUAL(&a->peer_addr, &b->peer_addr);
}

/* The conntrack mark set on our flows: ct mark & MASK == MARK. Bits of the
   mark outside MASK are left alone (other tools use them: mwan3, SQM). */
#define BACKEND_CT_MARK		0x1f1f0000u
#define BACKEND_CT_MARK_MASK	0x1f1f0000u

/*
 * The guard (spec/iwf.md; docs/deployment.md "The guard"):
 * the daemon's services listen on LAN interfaces only, but Linux accepts
 * a packet for any local address on any interface (the weak host model),
 * and pupnp binds SSDP to INADDR_ANY:1900. So packets to the daemon's own
 * ports that do not arrive on a LAN interface (or lo) are dropped on the
 * input hook, and new TCP connections to pupnp's HTTP port are limited
 * per source host: pupnp's miniserver gives each connection one of its
 * (at most 12) workers until the request is read or its 30 s timeout
 * (docs/upnp.md), so one host must not hold them all. Deployed control
 * points use one connection per action (upnpc, libminiupnpc, goupnp),
 * consoles a few at once; 4 is what they need. Lower would refuse them;
 * higher lets one host stall pupnp longer: its 1.8.4 thread pool often
 * does not grow while its workers wait (docs/upnp.md), and 8 idle
 * connections kept a description fetch by another host waiting more than
 * 35 s in netns_wan_guard. (The SOAP server on the loop needs no limit:
 * it drops a stalled client after 10 s and pins nothing.)
 */
#define BACKEND_GUARD_CONNS_PER_HOST	4
/* Ports of each protocol one guard names (the daemon uses at most 2). */
#define BACKEND_GUARD_MAX_PORTS		8

struct backend_params {
	const char	*table;		/* nft_table: the only table touched */
	const char	*wan_interface;	/* DNAT only what arrives here */
	/* for hairpin, not done yet (see backend_nft.c) */
	const char	* const *lan_interfaces;
	size_t		 n_lan_interfaces;
};

typedef void (*backend_done_fn)(void *arg, int error);

struct backend;

struct backend_ops {
	const char	*name;
	/* Create (or take over) the daemon's own table. NULL on failure, with
	   the reason logged. */
	struct backend	*(*open)(const struct backend_params *);
	/* Release the handle. Rules stay in the kernel until their timeouts
	   (a restarted daemon reconciles them against its state). Changes
	   still queued complete with ECANCELED. */
	void		 (*close)(struct backend *);
	/* Remove the daemon's table entirely (pcp-iwfctl / tests). */
	int		 (*destroy)(struct backend *);
	/* Queue: install, remove, or re-arm the timeout of a rule. done may
	   be NULL. -1 only when the queue cannot take it (memory). */
	int		 (*add)(struct backend *, const struct backend_rule *,
			    backend_done_fn, void *);
	int		 (*remove)(struct backend *, const struct backend_rule *,
			    backend_done_fn, void *);
	int		 (*refresh)(struct backend *, const struct backend_rule *,
			    backend_done_fn, void *);
	/* Apply everything queued in one batch; run the callbacks. */
	void		 (*commit)(struct backend *);
	/* Anything queued and not yet committed? */
	bool		 (*pending)(const struct backend *);
	/* Make the kernel's table hold exactly these rules (start-up, after
	   a crash): add what is missing, remove what nobody owns, re-arm the
	   timeouts of the rest, in one batch, at once (not at commit; queued
	   changes stay queued). When two rules share (protocol, ext_port) the
	   first wins. 0, or -1 with the reason logged. */
	int		 (*reconcile)(struct backend *,
			    const struct backend_rule *, size_t);
	/* The guard (above), applied by the next commit (pending() says
	   so), replacing the one before: packets to these local TCP and UDP
	   ports are dropped unless they arrive on one of these interfaces,
	   and new TCP connections to the first n_limited tcp_ports are
	   limited to BACKEND_GUARD_CONNS_PER_HOST per source and port. No
	   ports at all: no guard. -1 (nothing changed) for a bad interface
	   name, port 0, more than BACKEND_GUARD_MAX_PORTS ports,
	   n_limited > n_tcp, or memory. */
	int		 (*set_guard)(struct backend *,
			    const char * const *lan_ifnames, size_t n_lan,
			    const uint16_t *tcp_ports, size_t n_tcp,
			    size_t n_limited,
			    const uint16_t *udp_ports, size_t n_udp);
	/*
	 * spec/iwf.md X-04 (CallStranger, CVE-2020-12695), the defence in
	 * depth behind the connect() guard (iwf/upnp_guard.c): new TCP
	 * connections that processes of user (the daemon's user after the
	 * privilege drop) open through any interface but lo and the guard's
	 * LAN interfaces are refused with a reset, on an output hook in the
	 * daemon's own table; the daemon itself opens TCP only for GENA
	 * NOTIFY. Applied with the guard by the next commit. user NULL: no
	 * such rule (the daemon runs as root: it would catch every root
	 * process). By name, not uid: nft resolves a uid with getpwnam()
	 * first, and a number is found in no passwd file, so glibc would
	 * load further NSS modules under the sandbox; a name is found in
	 * /etc/passwd at once. -1 for a name nft could not take. May be
	 * NULL (backend none has no table).
	 */
	int		 (*set_owner)(struct backend *, const char *user);
};

struct backend {
	const struct backend_ops *ops;
};

extern const struct backend_ops backend_nft_ops;
extern const struct backend_ops backend_none_ops;

#endif
