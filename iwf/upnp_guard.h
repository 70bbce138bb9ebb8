/*
 * upnp_guard.h - the CallStranger guard (CVE-2020-12695; spec/iwf.md §5.5,
 * no TCP connection from this process to an address outside the
 * LAN prefixes.
 *
 * pupnp 1.8.4 accepts any CALLBACK URL in a SUBSCRIBE, answers 200 OK
 * before our callback runs and never shows us the URL; its GENA NOTIFY
 * then connects there (gena_device.c notify_send_and_recv -> http_Connect
 * -> connect(2)). upnp_guard.c defines connect() in the executable, which
 * by ELF symbol interposition is the connect() libupnp.so calls; armed,
 * it refuses SOCK_STREAM connections to non-LAN, non-loopback addresses
 * with EACCES. The daemon itself makes no TCP connections (its sockets
 * are UDP, netlink and the AF_UNIX control socket), so only pupnp's
 * NOTIFYs (and HTTP downloads, which a device never makes) can be
 * refused. docs/upnp.md tells how to check that the binary exports it.
 */
#ifndef IWFD_UPNP_GUARD_H
#define IWFD_UPNP_GUARD_H

#include <stddef.h>
#include <stdint.h>

struct policy_prefix;

struct upnp_guard_stats {
	uint64_t	 refused;	/* connections refused since start */
};

/*
 * Allow TCP connections only to these prefixes (IPv4 as IPv4-mapped /96+n,
 * struct policy_prefix) and loopback from now on. The prefixes are copied
 * into an immutable set that worker threads read through an atomic
 * pointer; a set it replaces is kept until upnp_guard_disarm. -1 when out
 * of memory (the guard then refuses every non-loopback TCP connection:
 * failing closed).
 */
int		 upnp_guard_arm(const struct policy_prefix *, size_t n);
/* Let every connection through again and free the sets. Only when no
   other thread can be inside connect() (after UpnpFinish). */
void		 upnp_guard_disarm(void);
void		 upnp_guard_stats(struct upnp_guard_stats *);

#endif
