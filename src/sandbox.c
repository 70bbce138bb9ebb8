/*
 * sandbox.c - the seccomp allow-list (docs/security.md "System calls").
 *
 * Installed by priv_drop() after the uid and capability change and before
 * pupnp starts its threads, which inherit it. Everything the daemon does
 * from then on - the libevent loop, libnftables' netlink, rtnetlink, the
 * state file's temp file + fsync + rename and its journal, pupnp's threads
 * (SSDP, HTTP, GENA), syslog, a SIGHUP reload that re-reads the file and
 * re-opens sockets, the shutdown - stays inside this list. Anything else
 * (execve, ptrace, mount, chmod, setuid, kexec, bpf, ...) is a bug or an
 * attack: the thread gets SIGSYS, the handler names the call on stderr,
 * the kernel's audit log records it, and the process ends.
 */
#include <sys/ioctl.h>
#include <sys/socket.h>

#include <linux/netlink.h>
#include <linux/sched.h>
#include <linux/sockios.h>

#include <errno.h>
#include <stdint.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <seccomp.h>

#include "log.h"
#include "sandbox.h"

#define SANDBOX_NITEMS(a)	(sizeof(a) / sizeof((a)[0]))

/* The only socket families the daemon opens (socket(2)'s first argument
   is filtered: no AF_PACKET, AF_KEY, AF_VSOCK, AF_ALG, ...). AF_NETLINK
   is allowed only with the protocols below. */
static const int sandbox_socket_families[] = {
	AF_UNIX,	/* syslog's /dev/log; the control socket's clients */
	AF_INET,	/* PCP, NAT-PMP, SSDP, HTTP, upstream PCP */
	AF_INET6,
};

/* The only netlink protocols (socket(2)'s third argument): with
   CAP_NET_ADMIN, NETLINK_XFRM would change IPsec policies, NETLINK_AUDIT
   the audit rules, ... */
static const int sandbox_netlink_protocols[] = {
	NETLINK_ROUTE,		/* rtnetlink: wanwatch, getifaddrs(3),
				   getaddrinfo's AI_ADDRCONFIG */
	NETLINK_NETFILTER,	/* libnftables: our table */
};

/*
 * clone(2) only makes threads: a flags word with CLONE_THREAD and without
 * a new namespace. fork(2) (no CLONE_THREAD) and clone(CLONE_NEWUSER |
 * CLONE_NEWNET) - a user namespace gives the child every capability over
 * the namespaces it makes - end the process like any call off the list.
 */
#define SANDBOX_CLONE_MASK	(CLONE_NEWNS | CLONE_NEWUSER | CLONE_NEWNET | \
				 CLONE_NEWPID | CLONE_NEWIPC | CLONE_NEWUTS | \
				 CLONE_NEWCGROUP | CLONE_THREAD)

/* The only ioctl(2) requests: reads. With CAP_NET_ADMIN an SIOCSIF* could
   reconfigure an interface; none is allowed. */
static const unsigned long sandbox_ioctls[] = {
	FIONREAD,	/* libevent: bytes waiting on a socket */
	FIONBIO,	/* non-blocking mode (pupnp) */
	SIOCGIFINDEX,	/* if_nametoindex: libnftables, the front-ends */
	SIOCGIFNAME,	/* if_indextoname */
	SIOCGIFCONF,	/* pupnp: the interface list */
	SIOCGIFFLAGS,	/* pupnp: up, loopback, multicast */
	SIOCGIFADDR,	/* the LAN interface's address */
	SIOCGIFNETMASK,
	SIOCGIFHWADDR,
	SIOCGIFMTU,
	TCGETS,		/* isatty(3) on stderr */
};

/*
 * Keep in step with docs/security.md (tests/unit/test_priv.c checks that
 * every name is there). Names the running architecture lacks (open on
 * arm64) are skipped by libseccomp.
 */
static const struct sandbox_syscall sandbox_allowed[] = {
	/* the loop and its sockets */
	{ "epoll_wait", "libevent's loop (epoll backend)" },
	{ "epoll_pwait", "the same on arches without epoll_wait (arm64)" },
	{ "epoll_ctl", "libevent adds and removes descriptors" },
	{ "eventfd2", "the IGD wakes the loop from pupnp's threads" },
	{ "read", "sockets, the signal socketpair, the configuration, /sys "
	    "counters, /etc/localtime" },
	{ "write", "stderr log, the state file, libevent's signal socketpair" },
	{ "readv", "libevent evbuffer reads (HTTP, control socket)" },
	{ "writev", "libevent evbuffer writes, syslog(3)" },
	{ "pwrite64", "the state journal's group commits" },
	{ "lseek", "glibc's time zone reader skips in /etc/localtime (syslog "
	    "time stamps)" },
	{ "close", "every descriptor" },
	{ "fcntl", "O_NONBLOCK on new sockets (libevent, pupnp)" },
	{ "ioctl", "FIONREAD (libevent), SIOCGIF* interface queries (pupnp, "
	    "if_nametoindex); reads only: the request is filtered" },
	{ "select", "pupnp's miniserver and its socket timeouts" },
	{ "pselect6", "select(3) in glibc" },
	{ "socket", "UDP/TCP sockets re-opened after a WAN change or a reload, "
	    "netlink for nftables and rtnetlink, syslog; the family is "
	    "filtered (AF_UNIX, AF_INET, AF_INET6, AF_NETLINK with "
	    "NETLINK_ROUTE or NETLINK_NETFILTER only)" },
	{ "bind", "re-opened sockets, netlink sockets" },
	{ "listen", "pupnp's HTTP server and the SOAP server (re)started" },
	{ "connect", "upstream PCP sockets, GENA NOTIFY (through the "
	    "CallStranger guard), syslog's /dev/log" },
	{ "accept", "pupnp's HTTP server" },
	{ "accept4", "the control socket, the SOAP server" },
	{ "getsockname", "netlink port ids, the ports bound (IGD, upstream)" },
	{ "getpeername", "HTTP clients' addresses (LAN check)" },
	{ "getsockopt", "SO_ERROR of a non-blocking connect, pupnp" },
	{ "setsockopt", "SO_REUSEADDR/PORT, SO_BINDTODEVICE on a fresh socket "
	    "(no CAP_NET_RAW needed since Linux 5.7), IP_PKTINFO, multicast "
	    "membership and TTL (SSDP, ANNOUNCE), SO_LINGER, netlink options" },
	{ "sendto", "PCP, NAT-PMP, SSDP; netlink requests; syslog(3)" },
	{ "recvfrom", "datagrams, netlink answers, HTTP" },
	{ "sendmsg", "PCP/NAT-PMP answers from the right LAN address "
	    "(IP_PKTINFO), libnftables' netlink batches" },
	{ "recvmsg", "datagrams with their arrival interface, netlink" },
	{ "shutdown", "HTTP connections (pupnp, libevent)" },
	/* files: the state file, the journal, the configuration on SIGHUP */
	{ "openat", "state temp file, journal, its directory (fsync), the "
	    "configuration on reload, /sys/class/net counters, /etc/localtime" },
	{ "newfstatat", "fstat(2) and stat(2) in glibc (stdio, the "
	    "configuration)" },
	{ "fsync", "the state file and its directory (durability)" },
	{ "fdatasync", "the state journal's group commits" },
	{ "ftruncate", "the journal emptied at a compaction" },
	{ "rename", "the state file's atomic replace" },
	{ "renameat2", "rename(2) on arches without it (arm64)" },
	{ "unlink", "the state temp file (a name left there is removed before "
	    "the new one is made, and after a failed write); the control "
	    "socket at exit (may fail as the user: ignored, control_open "
	    "clears a stale one)" },
	{ "unlinkat", "unlink(2) on arches without it (arm64)" },
	/* memory */
	{ "brk", "malloc's main arena" },
	{ "mmap", "malloc, thread stacks" },
	{ "munmap", "free, thread stacks" },
	{ "mprotect", "thread stack guard pages, malloc arenas" },
	{ "mremap", "realloc of large blocks" },
	{ "madvise", "malloc returning memory, a thread's stack at exit" },
	/* threads: pupnp's pool, started after the filter (and again by a
	   reload that restarts the IGD) */
	{ "clone3", "answered ENOSYS, not run (its flags are in memory, out "
	    "of the filter's reach): pthread_create then falls back to clone" },
	{ "clone", "pthread_create: threads only, the flags are filtered "
	    "(CLONE_THREAD and no CLONE_NEW*; no fork)" },
	{ "set_robust_list", "a new thread" },
	{ "rseq", "a new thread (glibc 2.35+)" },
	{ "futex", "mutexes and condition variables" },
	{ "exit", "a thread ends" },
	{ "exit_group", "the process ends" },
	{ "sched_getparam", "pupnp's thread pool reads the priority" },
	{ "sched_getscheduler", "pupnp's thread pool reads the policy" },
	{ "sched_setscheduler", "pupnp's thread pool sets SCHED_OTHER "
	    "priorities (raising needs CAP_SYS_NICE: not held)" },
	{ "sched_get_priority_max", "pupnp's thread pool" },
	{ "sched_get_priority_min", "pupnp's thread pool" },
	{ "sched_getaffinity", "glibc's CPU count for new malloc arenas" },
	{ "clock_nanosleep", "pupnp's timed waits (glibc's nanosleep)" },
	{ "getpid", "raise(3), libnftables" },
	{ "gettid", "raise(3)" },
	{ "tgkill", "raise(3): the SIGSYS handler ending the process" },
	/* signals */
	{ "rt_sigaction", "libevent's signal events, pupnp" },
	{ "rt_sigprocmask", "pthread_create, raise(3)" },
	{ "rt_sigreturn", "returning from a signal handler" },
	{ "restart_syscall", "a sleep interrupted by a signal, resumed" },
	/* time, randomness, identity */
	{ "clock_gettime", "the clocks, where the vDSO cannot answer" },
	{ "gettimeofday", "libevent, pupnp (vDSO fallback)" },
	{ "time", "time(3) (vDSO fallback)" },
	{ "getrandom", "nothing the daemon does after the drop (every seed is "
	    "drawn at start; a reload keeps them: ratelimit_set): none seen under "
	    "strace in netns_privdrop and netns_reload. Kept for glibc's arc4random(3), which "
	    "libevent's evutil_secure_rng calls (evdns: not used); it only "
	    "reads the kernel's random pool" },
	{ "uname", "pupnp's SERVER header" },
	{ "getuid", "glibc, pupnp" },
	{ "getgid", "glibc, pupnp" },
	{ "geteuid", "glibc" },
	{ "getegid", "glibc" },
};

const struct sandbox_syscall *
sandbox_allow_list(size_t *count)
{
	*count = SANDBOX_NITEMS(sandbox_allowed);
	return sandbox_allowed;
}

bool
sandbox_supported(void)
{
#if defined(__SANITIZE_ADDRESS__)
	return false;
#else
	return true;
#endif
}

/* "N" in decimal into buf (async-signal-safe: no stdio). */
static size_t
sandbox_utoa(unsigned int n, char *buf, size_t size)
{
	char tmp[16];
	size_t len = 0, i;

	do {
		tmp[len++] = (char)('0' + n % 10);
		n /= 10;
	} while (n > 0 && len < sizeof(tmp));
	if (len > size)
		return 0;
	for (i = 0; i < len; i++)
		buf[i] = tmp[len - 1 - i];
	return len;
}

/*
 * SIGSYS from the filter (SECCOMP_RET_TRAP): name the call (its number;
 * `ausyscall N` or the kernel's audit record name it) and end the process
 * with the signal's default action (SA_RESETHAND). Only write(2), gettid,
 * getpid and tgkill run here, all allowed.
 */
static void
sandbox_sigsys(int sig, siginfo_t *si, void *uctx)
{
	static const char head[] = "pcp-iwfd: seccomp: system call ";
	static const char tail[] = " is not on the allow-list "
	    "(docs/security.md): terminating\n";
	char msg[sizeof(head) + sizeof(tail) + 16];
	size_t n = 0;
	ssize_t rc;

	(void)uctx;
	memcpy(msg, head, sizeof(head) - 1);
	n = sizeof(head) - 1;
	n += sandbox_utoa((unsigned int)si->si_syscall, msg + n,
	    sizeof(msg) - n);
	memcpy(msg + n, tail, sizeof(tail) - 1);
	n += sizeof(tail) - 1;
	rc = write(STDERR_FILENO, msg, n);
	(void)rc;
	raise(sig);
}

/* socket(2): the families, and netlink only with its protocols. */
static int
sandbox_add_socket(scmp_filter_ctx ctx, int nr)
{
	size_t i;
	int rc = 0;

	for (i = 0; i < SANDBOX_NITEMS(sandbox_socket_families) && rc == 0;
	    i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
		    SCMP_A0(SCMP_CMP_EQ,
		    (scmp_datum_t)sandbox_socket_families[i]));
	/* the kernel reads the protocol as an int */
	for (i = 0; i < SANDBOX_NITEMS(sandbox_netlink_protocols) && rc == 0;
	    i++)
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 2,
		    SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)AF_NETLINK),
		    SCMP_A2(SCMP_CMP_MASKED_EQ, UINT32_MAX,
		    (scmp_datum_t)sandbox_netlink_protocols[i]));
	return rc;
}

static int
sandbox_add(scmp_filter_ctx ctx, const char *name)
{
	int nr, rc;
	size_t i;

	if ((nr = seccomp_syscall_resolve_name(name)) == __NR_SCMP_ERROR) {
		log_warnx("seccomp: unknown system call %s", name);
		return -1;
	}
	/* one rule per allowed value: libseccomp ORs a call's rules */
	if (strcmp(name, "socket") == 0)
		rc = sandbox_add_socket(ctx, nr);
	else if (strcmp(name, "clone") == 0)
		/* flags are the first argument on x86_64, arm64, ... (the
		   second on s390: CLONE_BACKWARDS2, not supported here) */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
		    SCMP_A0(SCMP_CMP_MASKED_EQ, SANDBOX_CLONE_MASK,
		    CLONE_THREAD));
	else if (strcmp(name, "clone3") == 0)
		/* struct clone_args is in memory: seccomp cannot see the
		   flags. ENOSYS is what a kernel without clone3 answers, and
		   glibc (2.34+: __clone_internal) then uses clone. */
		rc = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), nr, 0);
	else if (strcmp(name, "ioctl") == 0)
		/* the kernel reads the request as an unsigned int */
		for (i = 0, rc = 0; i < SANDBOX_NITEMS(sandbox_ioctls) &&
		    rc == 0; i++)
			rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 1,
			    SCMP_A1(SCMP_CMP_MASKED_EQ, UINT32_MAX,
			    (scmp_datum_t)sandbox_ioctls[i]));
	else
		rc = seccomp_rule_add(ctx, SCMP_ACT_ALLOW, nr, 0);
	if (rc < 0) {
		errno = -rc;
		log_warn("seccomp: %s", name);
		return -1;
	}
	return 0;
}

int
sandbox_load(void)
{
	struct sigaction sa;
	scmp_filter_ctx ctx;
	size_t i;
	int rc;

	memset(&sa, 0, sizeof(sa));
	sa.sa_sigaction = sandbox_sigsys;
	sa.sa_flags = SA_SIGINFO | SA_RESETHAND | SA_NODEFER;
	sigemptyset(&sa.sa_mask);
	if (sigaction(SIGSYS, &sa, NULL) == -1) {
		log_warn("seccomp: sigaction SIGSYS");
		return -1;
	}
	if ((ctx = seccomp_init(SCMP_ACT_TRAP)) == NULL) {
		log_warnx("seccomp: cannot make a filter");
		return -1;
	}
	/* the kernel's audit log records every call the filter refuses
	   (a daemon's stderr is /dev/null); older kernels lack it */
	(void)seccomp_attr_set(ctx, SCMP_FLTATR_CTL_LOG, 1);
	for (i = 0; i < SANDBOX_NITEMS(sandbox_allowed); i++)
		if (sandbox_add(ctx, sandbox_allowed[i].name) == -1) {
			seccomp_release(ctx);
			return -1;
		}
	rc = seccomp_load(ctx);
	seccomp_release(ctx);
	if (rc < 0) {
		errno = -rc;
		log_warn("seccomp: load");
		return -1;
	}
	return 0;
}

int
sandbox_install(void)
{
	size_t n;

	if (!sandbox_supported()) {
		log_info("seccomp: off in a sanitizer build (the leak checker "
		    "needs ptrace at exit): no system call filter");
		return 0;
	}
	if (sandbox_load() == -1)
		return -1;
	(void)sandbox_allow_list(&n);
	/* one row of the list, clone3, is answered ENOSYS, not allowed */
	log_info("seccomp: %zu system calls allowed, clone3 answered ENOSYS, "
	    "anything else ends the process", n - 1);
	return 0;
}
