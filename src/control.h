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
#include <stddef.h>
#include <stdint.h>

#include "config.h"

struct iwfd;
struct evbuffer;

/* longest request line: set-upstream with 8 "[IPv6]:port" fits */
#define CONTROL_LINE_MAX	512
/* an "error" answer's message: a config error or an echoed argument */
#define CONTROL_ERROR_LEN	(CONFIG_ERROR_LEN + CONTROL_LINE_MAX)

enum control_cmd {
	CONTROL_CMD_NONE = 0,	/* empty, or not a command */
	CONTROL_CMD_STATUS,
	CONTROL_CMD_LIST,
	CONTROL_CMD_DELETE,
	CONTROL_CMD_SET_UPSTREAM,
};

/* One request line, parsed: what it asks, nothing looked up yet. */
struct control_request {
	enum control_cmd	 cmd;
	bool			 json;		/* status, list */
	uint8_t			 protocol;	/* delete: MAP_PROTO_TCP/UDP */
	uint16_t		 port;		/* delete: outermost port */
	/* set-upstream: in order of preference, none repeated */
	struct config_upstream	 servers[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t			 n_servers;
};

/* What the framing found in a connection's input (control_read_line). */
enum control_read {
	CONTROL_READ_MORE,	/* no whole line yet: wait */
	CONTROL_READ_LINE,	/* *line: one request, malloc'd */
	CONTROL_READ_TOO_LONG,	/* CONTROL_LINE_MAX bytes and no end */
};

struct control *control_open(struct iwfd *, const char *path);
void		control_close(struct control *);
/*
 * Parse one request line without looking at the daemon (docs/control.md).
 * 0, or -1 with the answer's message in err (req->cmd still names the
 * command when the words after it were wrong, CONTROL_CMD_NONE else).
 */
int		control_parse(const char *line, struct control_request *req,
		    char *err, size_t errlen);
/* Take the first request line (LF or CRLF) out of a connection's input. */
enum control_read control_read_line(struct evbuffer *in, char **line);
/* Run one request line and append the whole answer to out (exposed for
   tests; the socket code calls it). */
void		control_dispatch(struct iwfd *, const char *line,
		    struct evbuffer *out);

#endif
