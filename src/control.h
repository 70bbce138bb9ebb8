/*
 * control.h - the UNIX control socket that pcp-iwfctl talks to.
 *
 * Protocol (docs/control.md): the client sends one line, the daemon answers
 * and closes. The answer starts with a status line, "ok" or
 * "error MESSAGE", followed by the body.
 *
 *	status json|text	epoch, external address, upstream, counters
 *	list json|text		the mapping table
 *	delete PROTO EXTPORT	remove one mapping
 *	set-upstream [ADDR[:PORT]...]	the servers the DHCP client handed
 *				over (upstream_server = dhcp only)
 */
#ifndef IWFD_CONTROL_H
#define IWFD_CONTROL_H

#include <stdbool.h>

struct iwfd;
struct evbuffer;

/* longest request line: set-upstream with 8 "[IPv6]:port" fits */
#define CONTROL_LINE_MAX	512

struct control *control_open(struct iwfd *, const char *path);
void		control_close(struct control *);
/* Run one request line and append the whole answer to out (exposed for
   tests; the socket code calls it). */
void		control_dispatch(struct iwfd *, const char *line,
		    struct evbuffer *out);

#endif
