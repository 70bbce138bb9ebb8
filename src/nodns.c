/*
 * nodns.c - no name resolution in the daemon (spec/iwf.md X-05, "no DNS";
 * docs/security.md "No name resolution").
 *
 * pupnp 1.8.4 parses every HTTP request line and every GENA CALLBACK URL
 * with parse_uri()/parse_hostport(), which hands the host part, a name
 * when a LAN host sends one, to getaddrinfo(3). glibc's resolver then
 * reads /etc/resolv.conf and polls a UDP socket: a DNS lookup of the
 * sender's choice that holds a pupnp worker, and poll(2) is not on the
 * seccomp allow-list (sandbox.c), so one request ended the daemon.
 *
 * This file defines getaddrinfo() for the daemon's executable only (it is
 * a source of pcp-iwfd, not of iwfcore: pcp-iwfctl may resolve). An
 * executable's definition wins over a shared library's for every lookup
 * (ELF symbol interposition, as iwf/upnp_guard.c does for connect()); the
 * linker exports it in .dynsym because libupnp.so references it. Every
 * call gets AI_NUMERICHOST: an address literal works as before, a name
 * fails with EAI_NONAME without a lookup. The daemon itself never needs a
 * name: every address in its configuration is a literal.
 */
#include <sys/socket.h>

#include <dlfcn.h>
#include <netdb.h>
#include <stdatomic.h>
#include <stdint.h>
#include <string.h>

#include "clock.h"
#include "log.h"

/* At most one log line per this many seconds: a LAN host can send names
   in a loop, and the log must not become the amplifier. */
#define NODNS_LOG_INTERVAL_S	10

typedef int	(*nodns_getaddrinfo_fn)(const char *, const char *,
		    const struct addrinfo *, struct addrinfo **);

/* libc's getaddrinfo (or a sanitizer's wrapper of it): the next
   definition after ours, found once. */
static _Atomic(nodns_getaddrinfo_fn) nodns_next;
static atomic_uint_fast64_t nodns_refused;
static atomic_uint_fast64_t nodns_logged;	/* refusals already told */
static atomic_int_fast64_t nodns_last_log;	/* CLOCK_MONOTONIC s */

static nodns_getaddrinfo_fn
nodns_real(void)
{
	union {
		void			*sym;
		nodns_getaddrinfo_fn	 fn;
	} u;
	nodns_getaddrinfo_fn fn;

	if ((fn = atomic_load(&nodns_next)) != NULL)
		return fn;
	/* threads racing here all find the same symbol. POSIX: a data
	   pointer from dlsym converts to a function pointer (a union, not
	   memcpy: gcc's analyzer misreads the copy) */
	if ((u.sym = dlsym(RTLD_NEXT, "getaddrinfo")) == NULL)
		return NULL;
	atomic_store(&nodns_next, u.fn);
	return u.fn;
}

/* Monotonic seconds, for the log's rate (any thread). */
static int64_t
nodns_now_s(void)
{
	return (int64_t)(clock_now_ms() / 1000);
}

/* A name refused: say so at debug level, at most once per
   NODNS_LOG_INTERVAL_S (any thread). The name itself is the sender's
   text: it is not logged. */
static void
nodns_log(void)
{
	int64_t now = nodns_now_s();
	int64_t last = atomic_load(&nodns_last_log);
	uint_fast64_t total, told;

	atomic_fetch_add(&nodns_refused, 1);
	if (last != 0 && now - last < NODNS_LOG_INTERVAL_S)
		return;
	/* one thread wins the slot */
	if (!atomic_compare_exchange_strong(&nodns_last_log, &last,
	    now == 0 ? 1 : now))
		return;
	total = atomic_load(&nodns_refused);
	told = atomic_exchange(&nodns_logged, total);
	log_debug("getaddrinfo: a host name was not resolved (no DNS in the "
	    "daemon: spec/iwf.md X-05); %ju refused since the last report",
	    (uintmax_t)(total - told));
}

int
getaddrinfo(const char *node, const char *service,
    const struct addrinfo *hints, struct addrinfo **res)
{
	nodns_getaddrinfo_fn real;
	struct addrinfo h;
	int rc;

	if ((real = nodns_real()) == NULL)
		return EAI_FAIL;
	if (hints != NULL)
		h = *hints;
	else {
		/* glibc's defaults for no hints */
		memset(&h, 0, sizeof(h));
		h.ai_family = AF_UNSPEC;
		h.ai_flags = AI_V4MAPPED | AI_ADDRCONFIG;
	}
	h.ai_flags |= AI_NUMERICHOST;
	rc = real(node, service, &h, res);
	if (rc == EAI_NONAME && node != NULL)
		nodns_log();
	return rc;
}
