/*
 * upnp_guard.c - the CallStranger guard (CVE-2020-12695; upnp_guard.h,
 * spec/iwf.md §5.5, X-04, docs/upnp.md).
 *
 * This file defines connect(2) for the whole process. An executable's
 * definition of a symbol wins over a shared library's for every lookup
 * (ELF symbol interposition), and the linker exports it in .dynsym
 * because libupnp.so references it, so libupnp's calls land here. The
 * real system call is made with syscall(2): no dlsym, nothing to resolve
 * on a worker thread, and sanitizer runtimes that also wrap connect() stay
 * out of the way.
 *
 * The one global state of the module is the allowed set: connect() has no
 * context argument. It is immutable once published; readers load it with
 * an atomic acquire, so a worker thread sees either the old set or the
 * whole new one.
 */
/* The plain POSIX prototype of connect() (glibc's _GNU_SOURCE one takes a
   transparent union), and syscall() from _DEFAULT_SOURCE. */
#undef _GNU_SOURCE
#define _DEFAULT_SOURCE 1

#include <sys/socket.h>
#include <sys/syscall.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stddef.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "clock.h"
#include "log.h"
#include "policy.h"
#include "upnp_guard.h"
#include "util.h"

/* At most one log line per this many seconds (a LAN host can subscribe
   with a foreign callback in a loop; the log must not become the
   amplifier). */
#define UPNP_GUARD_LOG_INTERVAL_S	10
/* IPv4 loopback 127.0.0.0/8 as IPv4-mapped. */
#define UPNP_GUARD_V4_LOOPBACK_LEN	(96 + 8)

struct upnp_guard_set {
	struct upnp_guard_set	*retired;	/* the set this one replaced */
	size_t			 n;
	struct policy_prefix	 prefixes[];
};

/* NULL: not armed, everything passes. */
static _Atomic(struct upnp_guard_set *) upnp_guard_current;
/* Armed but the set could not be built: refuse all but loopback. */
static atomic_bool upnp_guard_closed;
static atomic_uint_fast64_t upnp_guard_refused;
static atomic_uint_fast64_t upnp_guard_logged;	/* refusals already told */
static atomic_int_fast64_t upnp_guard_last_log;	/* CLOCK_MONOTONIC s */

int
upnp_guard_arm(const struct policy_prefix *prefixes, size_t n)
{
	struct upnp_guard_set *set, *old;

	set = malloc(sizeof(*set) + n * sizeof(set->prefixes[0]));
	if (set == NULL) {
		log_warn("upnp: CallStranger guard");
		atomic_store(&upnp_guard_closed, true);
		return -1;
	}
	set->n = n;
	if (n > 0)
		memcpy(set->prefixes, prefixes, n * sizeof(set->prefixes[0]));
	old = atomic_load_explicit(&upnp_guard_current, memory_order_relaxed);
	set->retired = old;
	/* release: the prefixes are written before the pointer is seen */
	atomic_store_explicit(&upnp_guard_current, set, memory_order_release);
	atomic_store(&upnp_guard_closed, false);
	return 0;
}

void
upnp_guard_disarm(void)
{
	struct upnp_guard_set *set, *next;

	set = atomic_exchange(&upnp_guard_current, NULL);
	atomic_store(&upnp_guard_closed, false);
	for (; set != NULL; set = next) {
		next = set->retired;
		free(set);
	}
}

void
upnp_guard_stats(struct upnp_guard_stats *st)
{
	st->refused = atomic_load(&upnp_guard_refused);
}

static bool
upnp_guard_loopback(const struct in6_addr *a)
{
	static const struct in6_addr v4_loop = {
		.s6_addr = { 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 127 }
	};

	return IN6_IS_ADDR_LOOPBACK(a) ||
	    util_prefix_match(&v4_loop, a, UPNP_GUARD_V4_LOOPBACK_LEN);
}

/* The destination as an IPv6 address (IPv4 mapped); false for a family
   the guard does not judge (AF_UNIX, netlink, ...). */
static bool
upnp_guard_dest(const struct sockaddr *sa, socklen_t len, struct in6_addr *a)
{
	struct sockaddr_in sin;
	struct sockaddr_in6 sin6;

	if (sa == NULL || len < (socklen_t)sizeof(sa_family_t))
		return false;
	switch (sa->sa_family) {
	case AF_INET:
		if (len < (socklen_t)sizeof(sin))
			return false;
		memcpy(&sin, sa, sizeof(sin));
		memset(a, 0, sizeof(*a));
		a->s6_addr[10] = 0xff;
		a->s6_addr[11] = 0xff;
		memcpy(&a->s6_addr[12], &sin.sin_addr, sizeof(sin.sin_addr));
		return true;
	case AF_INET6:
		/* the kernel takes an address without sin6_scope_id too
		   (SIN6_LEN_RFC2133, 24 bytes): judge that one as well (fix,
		   review: it passed unjudged) */
		if (len < (socklen_t)offsetof(struct sockaddr_in6,
		    sin6_scope_id))
			return false;
		memset(&sin6, 0, sizeof(sin6));
		memcpy(&sin6, sa, len < (socklen_t)sizeof(sin6) ? (size_t)len :
		    sizeof(sin6));
		*a = sin6.sin6_addr;
		return true;
	default:
		return false;
	}
}

static bool
upnp_guard_allowed(const struct in6_addr *a)
{
	const struct upnp_guard_set *set;
	size_t i;

	if (upnp_guard_loopback(a))
		return true;
	if (atomic_load(&upnp_guard_closed))
		return false;
	set = atomic_load_explicit(&upnp_guard_current, memory_order_acquire);
	if (set == NULL)
		return true;	/* not armed */
	for (i = 0; i < set->n; i++)
		if (util_prefix_match(&set->prefixes[i].addr, a,
		    set->prefixes[i].prefix_len))
			return true;
	return false;
}

static bool
upnp_guard_armed(void)
{
	return atomic_load(&upnp_guard_closed) ||
	    atomic_load_explicit(&upnp_guard_current,
	    memory_order_acquire) != NULL;
}

/* Monotonic seconds, for the log's rate (any thread). */
static int64_t
upnp_guard_now_s(void)
{
	return (int64_t)(clock_now_ms() / 1000);
}

/* Say so, at most once per UPNP_GUARD_LOG_INTERVAL_S (any thread). */
static void
upnp_guard_log(const struct in6_addr *a)
{
	char text[INET6_ADDRSTRLEN];
	int64_t now = upnp_guard_now_s();
	int64_t last = atomic_load(&upnp_guard_last_log);
	uint_fast64_t total, told;

	if (last != 0 && now - last < UPNP_GUARD_LOG_INTERVAL_S)
		return;
	/* one thread wins the slot */
	if (!atomic_compare_exchange_strong(&upnp_guard_last_log, &last,
	    now == 0 ? 1 : now))
		return;
	total = atomic_load(&upnp_guard_refused);
	told = atomic_exchange(&upnp_guard_logged, total);
	if (IN6_IS_ADDR_V4MAPPED(a))
		inet_ntop(AF_INET, &a->s6_addr[12], text, sizeof(text));
	else
		inet_ntop(AF_INET6, a, text, sizeof(text));
	log_warnx("upnp: refused a TCP connection to %s outside the LAN "
	    "(a GENA callback? CallStranger, CVE-2020-12695); %ju refused "
	    "since the last report", text, (uintmax_t)(total - told));
}

static int
upnp_guard_socket_type(int fd)
{
	int type = 0;
	socklen_t len = sizeof(type);

	if (getsockopt(fd, SOL_SOCKET, SO_TYPE, &type, &len) == -1)
		return -1;
	return type;
}

/*
 * The process-wide connect(2). Only stream sockets are judged: UDP
 * "connections" (the upstream PCP sockets) send to configured servers
 * and are not what CallStranger abuses.
 */
int
connect(int fd, const struct sockaddr *sa, socklen_t len)
{
	struct in6_addr dest;
	int saved = errno;

	if (upnp_guard_armed() && upnp_guard_dest(sa, len, &dest) &&
	    upnp_guard_socket_type(fd) == SOCK_STREAM &&
	    !upnp_guard_allowed(&dest)) {
		atomic_fetch_add(&upnp_guard_refused, 1);
		upnp_guard_log(&dest);
		errno = EACCES;
		return -1;
	}
	errno = saved;
	return (int)syscall(SYS_connect, fd, sa, len);
}
