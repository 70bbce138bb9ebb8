/*
 * ctl_pcp.c - pcp-iwfctl's native PCP client: "map", "peer" and "announce"
 * sent to any PCP server (the daemon's LAN side, a carrier, miniupnpd).
 *
 * One request, RFC 6887 §8.1.1 retransmission until the -w budget runs out,
 * the first matching reply printed (readable or one JSON object). The codec
 * (pcp_wire) builds and parses the packets; this file does the socket, the
 * timing, the matching of §8.3 and the output.
 */
#include <sys/types.h>
#include <sys/random.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <net/if.h>
#include <netinet/in.h>

#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <poll.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/buffer.h>

#include "ctl.h"
#include "json.h"
#include "map.h"
#include "pcp_retrans.h"
#include "pcp_wire.h"
#include "util.h"

#define CTL_PROG		"pcp-iwfctl"
#define CTL_DEFAULT_LIFETIME	7200	/* s; RFC 6886's recommended value */
#define CTL_DEFAULT_WAIT	10	/* s */
#define CTL_MAX_WAIT		86400	/* s */
#define CTL_PORT_MAX		65535
#define CTL_PROTO_MAX		255
#define CTL_NONCE_HEX		(2 * PCP_NONCE_SIZE)
#define CTL_MS_PER_S		1000
#define CTL_NS_PER_MS		1000000
/* "tcp", "udp", "all" or a protocol number, NUL */
#define CTL_PROTO_TEXT_MAX	8
/* Room for a datagram longer than PCP allows, so such replies are seen as
   too long (§8.3) instead of being cut to a valid-looking size. */
#define CTL_RECV_SIZE		(2 * PCP_MAX_SIZE)
/* address "%" scope, NUL */
#define CTL_HOST_MAX		(INET6_ADDRSTRLEN + IF_NAMESIZE + 2)
/* a decimal port, NUL */
#define CTL_SERV_MAX		8
/* "[" host "]:" port */
#define CTL_ENDPOINT_MAX	(CTL_HOST_MAX + CTL_SERV_MAX + 4)

/* Options each command accepts, by letter ('j' is --json). RFC 6887
   §13.2: PREFER_FAILURE is valid for MAP only; a server MUST answer a PEER
   carrying it with MALFORMED_REQUEST, so peer does not take -F. */
#define CTL_OPTS_MAP		"SpiIeElTFDNwvj"
#define CTL_OPTS_PEER		"SpiIeElTDNwvjr"
#define CTL_OPTS_ANNOUNCE	"SIwvj"

struct ctl_pcp_opts {
	const char		*cmd;
	uint8_t			 opcode;
	struct sockaddr_storage	 server;
	socklen_t		 server_len;
	char			 server_text[CTL_ENDPOINT_MAX];
	bool			 have_protocol;
	uint8_t			 protocol;
	bool			 have_internal_port;
	uint16_t		 internal_port;
	bool			 have_bind;	/* -I */
	struct sockaddr_storage	 bind_addr;
	socklen_t		 bind_len;
	uint16_t		 ext_port;
	bool			 have_ext_addr;
	struct in6_addr		 ext_addr;
	uint32_t		 lifetime;
	bool			 have_third_party;
	struct in6_addr		 third_party;
	bool			 prefer_failure;
	const char		*description;	/* NULL: no option */
	bool			 have_nonce;
	uint8_t			 nonce[PCP_NONCE_SIZE];
	bool			 have_remote;
	struct in6_addr		 remote_addr;
	uint16_t		 remote_port;
	unsigned int		 wait_s;
	bool			 json;
	int			 verbose;
};

/* What came back. */
enum ctl_outcome {
	CTL_ANSWER,		/* a matching reply is in reply */
	CTL_NO_ANSWER,		/* the wait ran out */
	CTL_FAILED,		/* a local error, already reported */
};

static void
ctl_pcp_usage(FILE *out, const char *cmd)
{
	if (cmd == NULL || strcmp(cmd, "announce") != 0) {
		fprintf(out,
"usage: " CTL_PROG " map -S SERVER[:PORT] -p tcp|udp|NUM -i INTPORT [options]\n"
"       " CTL_PROG " peer -S SERVER[:PORT] -p tcp|udp|NUM -i INTPORT\n"
"                  -r REMOTE_ADDR:PORT [options]\n"
"options:\n"
"  -S SERVER[:PORT] PCP server: IPv4, IPv6, v4:port or [v6]:port (port %d)\n"
"  -p PROTO     tcp, udp or a protocol number (0 = all, with -i 0)\n"
"  -i PORT      internal port (0 = all ports)\n"
"  -I ADDR      internal address: sent as PCP Client IP and used as the\n"
"               source (default: the address the kernel picks toward SERVER)\n"
"  -e PORT      suggested external port (default 0: no preference)\n"
"  -E ADDR      suggested external address (default: none)\n"
"  -l SECS      requested lifetime (default %d; 0 deletes the mapping)\n"
"  -T ADDR      THIRD_PARTY option: map for this internal address\n"
"  -F           PREFER_FAILURE option (the exact -e/-E or nothing; map\n"
"               only, needs a non-zero -e, not with -l 0)\n"
"  -D TEXT      DESCRIPTION option (RFC 7220; UTF-8, at most %d octets)\n"
"  -N HEX       mapping nonce, 24 hex digits (reuse it to refresh or delete)\n"
"  -r ADDR:PORT remote peer (peer only; [v6]:port for IPv6)\n"
"  -w SECS      give up after SECS, retransmitting per RFC 6887 (default %d)\n"
"  -v           report sends and ignored replies on stderr\n"
"  --json       print one JSON object instead of the readable answer\n",
		    PCP_SERVER_PORT, CTL_DEFAULT_LIFETIME, PCP_DESCRIPTION_MAX,
		    CTL_DEFAULT_WAIT);
	}
	if (cmd == NULL || strcmp(cmd, "announce") == 0) {
		fprintf(out,
"usage: " CTL_PROG " announce -S SERVER[:PORT] [-I ADDR] [-w SECS] [-v] [--json]\n"
"  asks the server for its epoch (a solicited ANNOUNCE, RFC 6887 §14.1)\n");
	}
	fprintf(out,
"exit status: 0 SUCCESS, 1 a PCP error result, 2 no answer or a usage error\n");
}

static void ctl_usage_error(const char *, const char *, ...)
    __attribute__((format(printf, 2, 3)));

/* "pcp-iwfctl CMD: what is wrong" and where to look. */
static void
ctl_usage_error(const char *cmd, const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, CTL_PROG " %s: ", cmd);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	fprintf(stderr, "run '" CTL_PROG " %s --help' for the options\n", cmd);
}

/* ---- option values ---- */

/* A decimal number in [min, max]: digits only, no sign, no blanks. */
static bool
ctl_parse_number(const char *s, unsigned long min, unsigned long max,
    unsigned long *out)
{
	unsigned long v;
	char *end;

	if (s[0] < '0' || s[0] > '9')
		return false;
	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < min || v > max)
		return false;
	*out = v;
	return true;
}

static bool
ctl_parse_port(const char *s, unsigned long min, uint16_t *port)
{
	unsigned long v;

	if (!ctl_parse_number(s, min, CTL_PORT_MAX, &v))
		return false;
	*port = (uint16_t)v;
	return true;
}

static bool
ctl_parse_nonce(const char *s, uint8_t nonce[PCP_NONCE_SIZE])
{
	return util_hex_decode(s, nonce, PCP_NONCE_SIZE);
}

/*
 * Split "v4", "v6", "v4:port" or "[v6]:port" into host and port text
 * (*port NULL when none). A bare IPv6 address has two or more colons.
 */
static bool
ctl_split_host_port(const char *s, char *host, size_t hostsz,
    const char **port)
{
	const char *close, *colon;
	size_t n;

	*port = NULL;
	if (s[0] == '[') {
		if ((close = strchr(s, ']')) == NULL)
			return false;
		n = (size_t)(close - s - 1);
		if (close[1] == ':')
			*port = close + 2;
		else if (close[1] != '\0')
			return false;
		s++;
	} else {
		colon = strchr(s, ':');
		n = strlen(s);
		if (colon != NULL && strchr(colon + 1, ':') == NULL) {
			n = (size_t)(colon - s);
			*port = colon + 1;
		}
	}
	if (n == 0 || n >= hostsz)
		return false;
	memcpy(host, s, n);
	host[n] = '\0';
	return true;
}

/*
 * A numeric address (with an optional IPv6 %scope) as a socket address.
 * An IPv4-mapped IPv6 address becomes plain IPv4.
 */
static bool
ctl_resolve_numeric(const char *host, uint16_t port,
    struct sockaddr_storage *ss, socklen_t *len)
{
	struct addrinfo hints, *res;
	struct sockaddr_in6 *sin6;
	struct sockaddr_in sin;
	struct in6_addr a;

	memset(&hints, 0, sizeof(hints));
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_DGRAM;
	hints.ai_flags = AI_NUMERICHOST;
	if (getaddrinfo(host, NULL, &hints, &res) != 0)
		return false;
	if (res->ai_addrlen > sizeof(*ss)) {
		freeaddrinfo(res);
		return false;
	}
	memset(ss, 0, sizeof(*ss));
	memcpy(ss, res->ai_addr, res->ai_addrlen);
	*len = res->ai_addrlen;
	freeaddrinfo(res);

	if (ss->ss_family == AF_INET6) {
		sin6 = (struct sockaddr_in6 *)ss;
		a = sin6->sin6_addr;
		if (pcp_addr_is_v4(&a)) {
			memset(&sin, 0, sizeof(sin));
			sin.sin_family = AF_INET;
			pcp_addr_to_v4(&a, &sin.sin_addr);
			memset(ss, 0, sizeof(*ss));
			memcpy(ss, &sin, sizeof(sin));
			*len = sizeof(sin);
		}
	}
	if (ss->ss_family == AF_INET)
		((struct sockaddr_in *)ss)->sin_port = htons(port);
	else if (ss->ss_family == AF_INET6)
		((struct sockaddr_in6 *)ss)->sin6_port = htons(port);
	else
		return false;
	return true;
}

/* The PCP form of a socket address (§5). */
static void
ctl_sockaddr_to_pcp(const struct sockaddr_storage *ss, struct in6_addr *a)
{
	if (ss->ss_family == AF_INET)
		pcp_addr_from_v4(a, &((const struct sockaddr_in *)ss)->sin_addr);
	else
		*a = ((const struct sockaddr_in6 *)ss)->sin6_addr;
}

/* "addr:port" or "[addr]:port" for messages. */
static void
ctl_format_endpoint(const struct sockaddr_storage *ss, socklen_t len,
    char *buf, size_t bufsz)
{
	char host[CTL_HOST_MAX], serv[CTL_SERV_MAX];

	if (getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host),
	    serv, sizeof(serv), NI_NUMERICHOST | NI_NUMERICSERV) != 0) {
		(void)snprintf(buf, bufsz, "?");
		return;
	}
	if (ss->ss_family == AF_INET6)
		(void)snprintf(buf, bufsz, "[%s]:%s", host, serv);
	else
		(void)snprintf(buf, bufsz, "%s:%s", host, serv);
}

static bool
ctl_parse_server(const char *s, struct ctl_pcp_opts *o)
{
	char host[CTL_HOST_MAX];
	const char *port_text;
	uint16_t port = PCP_SERVER_PORT;

	if (!ctl_split_host_port(s, host, sizeof(host), &port_text))
		return false;
	if (port_text != NULL && !ctl_parse_port(port_text, 1, &port))
		return false;
	if (!ctl_resolve_numeric(host, port, &o->server, &o->server_len))
		return false;
	ctl_format_endpoint(&o->server, o->server_len, o->server_text,
	    sizeof(o->server_text));
	return true;
}

static bool
ctl_parse_remote(const char *s, struct ctl_pcp_opts *o)
{
	char host[CTL_HOST_MAX];
	const char *port_text;

	/* §12.1: the remote peer port MUST be non-zero */
	if (!ctl_split_host_port(s, host, sizeof(host), &port_text) ||
	    port_text == NULL || !ctl_parse_port(port_text, 1, &o->remote_port))
		return false;
	return pcp_addr_pton(host, &o->remote_addr);
}

/* ---- command line ---- */

/* -S, -I, -E, -T, -r; *what says what a good value looks like. */
static bool
ctl_apply_address(struct ctl_pcp_opts *o, int ch, const char *arg,
    const char **what)
{
	*what = "an IPv4 or IPv6 address";
	switch (ch) {
	case 'S':
		*what = "SERVER, SERVER:PORT or [IPV6]:PORT with a numeric "
		    "address and a port 1-65535";
		return ctl_parse_server(arg, o);
	case 'I':
		return (o->have_bind = ctl_resolve_numeric(arg, 0,
		    &o->bind_addr, &o->bind_len));
	case 'E':
		return (o->have_ext_addr = pcp_addr_pton(arg,
		    &o->ext_addr));
	case 'T':
		return (o->have_third_party = pcp_addr_pton(arg,
		    &o->third_party));
	default:	/* 'r' */
		*what = "ADDR:PORT or [IPV6]:PORT with a port 1-65535";
		return (o->have_remote = ctl_parse_remote(arg, o));
	}
}

/* -p, -i, -e, -l, -N, -w; *what as above. */
static bool
ctl_apply_value(struct ctl_pcp_opts *o, int ch, const char *arg,
    const char **what)
{
	unsigned long v = 0;
	int proto;
	bool ok;

	*what = "a port 0-65535";
	switch (ch) {
	case 'p':
		*what = "tcp, udp or a protocol number 0-255";
		proto = map_proto_parse(arg);
		if (proto < 0 || proto > CTL_PROTO_MAX)
			return false;
		o->protocol = (uint8_t)proto;
		o->have_protocol = true;
		return true;
	case 'i':
		return (o->have_internal_port = ctl_parse_port(arg, 0,
		    &o->internal_port));
	case 'e':
		return ctl_parse_port(arg, 0, &o->ext_port);
	case 'l':
		*what = "a lifetime of 0-4294967295 seconds";
		ok = ctl_parse_number(arg, 0, UINT32_MAX, &v);
		o->lifetime = (uint32_t)v;
		return ok;
	case 'N':
		*what = "a nonce of exactly 24 hex digits";
		return (o->have_nonce = ctl_parse_nonce(arg, o->nonce));
	default:	/* 'w' */
		*what = "a wait of 1-86400 seconds";
		ok = ctl_parse_number(arg, 1, CTL_MAX_WAIT, &v);
		o->wait_s = (unsigned int)v;
		return ok;
	}
}

/* Apply one option; false after reporting a bad value. */
static bool
ctl_apply_option(struct ctl_pcp_opts *o, int ch, const char *arg)
{
	const char *what;
	bool ok;

	switch (ch) {
	case 'F':
		o->prefer_failure = true;
		return true;
	case 'v':
		o->verbose++;
		return true;
	case 'j':
		o->json = true;
		return true;
	case 'D':
		if (strlen(arg) > PCP_DESCRIPTION_MAX) {
			ctl_usage_error(o->cmd, "-D: the description is longer "
			    "than %d octets (RFC 7220)", PCP_DESCRIPTION_MAX);
			return false;
		}
		/* RFC 7220 §3: UTF-8 only; a server drops other text
		   silently (it must not echo the option) */
		if (!pcp_utf8_valid(arg, strlen(arg))) {
			ctl_usage_error(o->cmd, "%s", "-D: the description is "
			    "not valid UTF-8 (RFC 7220 §3)");
			return false;
		}
		o->description = arg;
		return true;
	case 'S':
	case 'I':
	case 'E':
	case 'T':
	case 'r':
		ok = ctl_apply_address(o, ch, arg, &what);
		break;
	default:
		ok = ctl_apply_value(o, ch, arg, &what);
		break;
	}
	if (!ok)
		ctl_usage_error(o->cmd, "-%c: '%s' is not %s", ch, arg, what);
	return ok;
}

/*
 * -F with a MAP that a server must refuse with MALFORMED_OPTION: no
 * suggested port (RFC 6887 §13.2) or a delete (§11.3, §13.2).
 */
static bool
ctl_check_prefer_failure(const struct ctl_pcp_opts *o)
{
	if (o->ext_port == 0) {
		ctl_usage_error(o->cmd, "%s", "-F needs a non-zero suggested "
		    "external port -e PORT (RFC 6887 §13.2: a server answers "
		    "MALFORMED_OPTION)");
		return false;
	}
	if (o->lifetime == 0) {
		ctl_usage_error(o->cmd, "%s", "-F cannot be used with -l 0: a "
		    "delete takes no PREFER_FAILURE (RFC 6887 §11.3: a server "
		    "answers MALFORMED_OPTION)");
		return false;
	}
	return true;
}

/* The checks that need several options together. */
static bool
ctl_check_options(struct ctl_pcp_opts *o)
{
	if (o->server_len == 0) {
		ctl_usage_error(o->cmd, "%s", "-S SERVER is required");
		return false;
	}
	if (o->have_bind && o->bind_addr.ss_family != o->server.ss_family) {
		ctl_usage_error(o->cmd, "%s", "-I and -S must be of the same "
		    "address family");
		return false;
	}
	if (o->opcode == PCP_OP_ANNOUNCE)
		return true;
	if (!o->have_protocol || !o->have_internal_port) {
		ctl_usage_error(o->cmd, "%s", "-p PROTO and -i INTPORT are "
		    "required");
		return false;
	}
	/* §11.1: with protocol 0 the internal port MUST be 0 */
	if (o->protocol == 0 && o->internal_port != 0) {
		ctl_usage_error(o->cmd, "%s", "-i must be 0 with protocol 0 "
		    "(all protocols, RFC 6887 §11.1)");
		return false;
	}
	if (o->prefer_failure && !ctl_check_prefer_failure(o))
		return false;
	if (o->opcode == PCP_OP_PEER) {
		if (!o->have_remote) {
			ctl_usage_error(o->cmd, "%s", "-r REMOTE_ADDR:PORT is "
			    "required");
			return false;
		}
		/* §12.1: protocol and internal port MUST be non-zero */
		if (o->protocol == 0 || o->internal_port == 0) {
			ctl_usage_error(o->cmd, "%s", "peer needs a non-zero "
			    "-p and -i (RFC 6887 §12.1)");
			return false;
		}
	}
	return true;
}

static int
ctl_parse_args(int argc, char **argv, struct ctl_pcp_opts *o,
    const char *allowed)
{
	static const struct option longopts[] = {
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	int ch;

	optind = 0;	/* glibc: start afresh on this argv */
	while ((ch = getopt_long(argc, argv, ":S:p:i:I:e:E:l:T:FD:N:r:w:vh",
	    longopts, NULL)) != -1) {
		if (ch == 'h') {
			ctl_pcp_usage(stdout, o->cmd);
			return CTL_EXIT_OK;
		}
		if (ch == ':') {
			fprintf(stderr, CTL_PROG " %s: option -%c needs a "
			    "value\n", o->cmd, optopt);
			return CTL_EXIT_USAGE;
		}
		if (ch == '?') {
			if (optopt != 0)
				fprintf(stderr, CTL_PROG " %s: unknown option "
				    "-%c\n", o->cmd, optopt);
			else
				fprintf(stderr, CTL_PROG " %s: unknown option "
				    "%s\n", o->cmd, argv[optind - 1]);
			ctl_pcp_usage(stderr, o->cmd);
			return CTL_EXIT_USAGE;
		}
		if (strchr(allowed, ch) == NULL) {
			if (ch == 'j')
				fprintf(stderr, CTL_PROG " %s: option --json "
				    "does not apply to %s\n", o->cmd, o->cmd);
			else
				fprintf(stderr, CTL_PROG " %s: option -%c does "
				    "not apply to %s\n", o->cmd, ch, o->cmd);
			return CTL_EXIT_USAGE;
		}
		if (!ctl_apply_option(o, ch, optarg))
			return CTL_EXIT_USAGE;
	}
	if (optind < argc) {
		ctl_usage_error(o->cmd, "unexpected argument '%s'",
		    argv[optind]);
		return CTL_EXIT_USAGE;
	}
	return ctl_check_options(o) ? -1 : CTL_EXIT_USAGE;
}

/* ---- socket and request ---- */

static bool
ctl_random(void *buf, size_t len)
{
	ssize_t n;

	/* a CSPRNG (§11.2, RFC 4086); blocks only until the pool is seeded */
	do
		n = getrandom(buf, len, 0);
	while (n == -1 && errno == EINTR);
	if (n != (ssize_t)len) {
		fprintf(stderr, CTL_PROG ": getrandom: %s\n",
		    n == -1 ? strerror(errno) : "short read");
		return false;
	}
	return true;
}

/*
 * §8.1: a UDP socket from a random source port, connected to the server so
 * the kernel passes only its replies (§8.3) and picks the source address
 * that becomes the PCP Client IP (§8.1, C-01) unless -I fixes it.
 */
static int
ctl_open_socket(const struct ctl_pcp_opts *o, struct in6_addr *client)
{
	struct sockaddr_storage local;
	socklen_t len;
	int fd;

	fd = socket(o->server.ss_family, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd == -1) {
		fprintf(stderr, CTL_PROG ": socket: %s\n", strerror(errno));
		return -1;
	}
	if (o->have_bind) {
		/* port 0 in bind_addr: the kernel picks a random port (C-02) */
		if (bind(fd, (const struct sockaddr *)&o->bind_addr,
		    o->bind_len) == -1) {
			fprintf(stderr, CTL_PROG ": bind to the -I address: "
			    "%s\n", strerror(errno));
			goto fail;
		}
	}
	if (connect(fd, (const struct sockaddr *)&o->server,
	    o->server_len) == -1) {
		fprintf(stderr, CTL_PROG ": connect to %s: %s\n",
		    o->server_text, strerror(errno));
		goto fail;
	}
	len = sizeof(local);
	if (getsockname(fd, (struct sockaddr *)&local, &len) == -1) {
		fprintf(stderr, CTL_PROG ": getsockname: %s\n",
		    strerror(errno));
		goto fail;
	}
	ctl_sockaddr_to_pcp(&local, client);
	return fd;
fail:
	close(fd);
	return -1;
}

static void
ctl_build_request(const struct ctl_pcp_opts *o, const struct in6_addr *client,
    struct pcp_msg *req)
{
	memset(req, 0, sizeof(*req));
	req->version = PCP_VERSION;
	req->opcode = o->opcode;
	req->client_addr = *client;
	if (o->opcode == PCP_OP_ANNOUNCE)
		return;		/* §14.1.1: lifetime 0, no body */
	req->lifetime = o->lifetime;
	memcpy(req->nonce, o->nonce, sizeof(req->nonce));
	req->protocol = o->protocol;
	req->internal_port = o->internal_port;
	req->ext_port = o->ext_port;
	if (o->have_ext_addr)
		req->ext_addr = o->ext_addr;
	else {
		/* §11.1: no preference = the all-zeros address of the
		   internal address's family (::ffff:0:0 for IPv4) */
		struct in_addr any4 = { 0 };
		const struct in6_addr *internal = o->have_third_party ?
		    &o->third_party : client;

		if (pcp_addr_is_v4(internal))
			pcp_addr_from_v4(&req->ext_addr, &any4);
	}
	if (o->opcode == PCP_OP_PEER) {
		req->peer_port = o->remote_port;
		req->peer_addr = o->remote_addr;
	}
	if (o->have_third_party) {
		req->has_third_party = true;
		req->third_party = o->third_party;
	}
	req->prefer_failure = o->prefer_failure;
	if (o->description != NULL) {
		req->has_description = true;
		req->description_len = (uint16_t)strlen(o->description);
		memcpy(req->description, o->description,
		    req->description_len);
	}
}

/* ---- matching replies (§8.3) ---- */

/* NULL if reply answers req, else why it is ignored. */
static const char *
ctl_reply_mismatch(const struct pcp_msg *req, const struct pcp_msg *reply)
{
	/* §9: version negotiation happens before any field matching */
	if (reply->result == PCP_UNSUPP_VERSION &&
	    reply->version != PCP_VERSION)
		return NULL;
	if (reply->opcode != req->opcode)
		return "another opcode";
	if (req->opcode == PCP_OP_ANNOUNCE)
		return NULL;
	if (memcmp(reply->nonce, req->nonce, PCP_NONCE_SIZE) != 0)
		return "another nonce";
	if (reply->protocol != req->protocol)
		return "another protocol";
	if (reply->internal_port != req->internal_port)
		return "another internal port";
	if (req->opcode == PCP_OP_PEER &&
	    (reply->peer_port != req->peer_port ||
	    memcmp(&reply->peer_addr, &req->peer_addr,
	    sizeof(req->peer_addr)) != 0))
		return "another remote peer";
	/* §11.4, §12.4: the internal address is part of the match, and it
	   is THIRD_PARTY's when one was sent. An error reply copies every
	   option (§7.3, §8.2); a success echoes a processed THIRD_PARTY and
	   one not processed is an error (§13.1): so a reply without it, or
	   with another address, answers some other request. */
	if (req->has_third_party && !reply->has_third_party)
		return "no THIRD_PARTY";
	if (!req->has_third_party && reply->has_third_party)
		return "a THIRD_PARTY that was not sent";
	if (req->has_third_party && memcmp(&reply->third_party,
	    &req->third_party, sizeof(req->third_party)) != 0)
		return "another THIRD_PARTY address";
	return NULL;
}

static uint64_t
ctl_now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * CTL_MS_PER_S +
	    (uint64_t)ts.tv_nsec / CTL_NS_PER_MS;
}

/* A fresh RAND for §8.1.1. */
static bool
ctl_rt_rand(double *rand)
{
	uint32_t bits;

	if (!ctl_random(&bits, sizeof(bits)))
		return false;
	*rand = pcp_rt_rand(bits);
	return true;
}

/* Read what is queued; true when a matching reply landed in *reply. */
static bool
ctl_read_replies(int fd, const struct ctl_pcp_opts *o,
    const struct pcp_msg *req, struct pcp_msg *reply, int *icmp_errno)
{
	uint8_t buf[CTL_RECV_SIZE];
	const char *why;
	ssize_t n;

	for (;;) {
		n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno != EAGAIN && errno != EWOULDBLOCK)
				*icmp_errno = errno;	/* e.g. port unreachable */
			return false;
		}
		/* §8.3: bad length, R clear, other versions: dropped */
		if (!pcp_decode_response(buf, (size_t)n, reply)) {
			if (o->verbose)
				fprintf(stderr, CTL_PROG ": ignored a %zd-octet "
				    "datagram that is not a PCP response\n", n);
			continue;
		}
		if ((why = ctl_reply_mismatch(req, reply)) != NULL) {
			if (o->verbose)
				fprintf(stderr, CTL_PROG ": ignored a reply "
				    "with %s\n", why);
			continue;
		}
		return true;
	}
}

static bool
ctl_send(int fd, const struct ctl_pcp_opts *o, const uint8_t *pkt,
    size_t len, unsigned int count, uint32_t rt_ms, int *send_errno)
{
	ssize_t n;

	if (o->verbose)
		fprintf(stderr, CTL_PROG ": send %u (%zu octets) to %s, next "
		    "in %u ms\n", count, len, o->server_text, rt_ms);
	n = send(fd, pkt, len, 0);
	if (n == -1) {
		/* transient (no route yet, an ICMP error queued): keep trying */
		*send_errno = errno;
		return false;
	}
	return true;
}

/*
 * §8.1.1: send, then resend the identical packet (C-03) at RT, 2RT, ...
 * with a new RAND each time, until a matching reply or the -w budget ends.
 */
static enum ctl_outcome
ctl_exchange(int fd, const struct ctl_pcp_opts *o, const uint8_t *pkt,
    size_t len, const struct pcp_msg *req, struct pcp_msg *reply)
{
	uint64_t now, deadline, next_send;
	unsigned int count = 0;
	int sys_errno = 0, timeout;
	struct pollfd pfd;
	uint32_t rt;
	double rand;

	if (!ctl_rt_rand(&rand))
		return CTL_FAILED;
	rt = pcp_rt_first_ms(rand);
	now = ctl_now_ms();
	deadline = now + (uint64_t)o->wait_s * CTL_MS_PER_S;
	next_send = now;
	for (;;) {
		now = ctl_now_ms();
		if (now >= deadline)
			break;
		if (now >= next_send) {
			(void)ctl_send(fd, o, pkt, len, ++count, rt,
			    &sys_errno);
			next_send = now + rt;
			if (!ctl_rt_rand(&rand))
				return CTL_FAILED;
			rt = pcp_rt_next_ms(rt, rand, PCP_RT_MRT_MS);
		}
		timeout = (int)((next_send < deadline ? next_send : deadline)
		    - now);
		pfd.fd = fd;
		pfd.events = POLLIN;
		pfd.revents = 0;
		if (poll(&pfd, 1, timeout) == -1 && errno != EINTR) {
			fprintf(stderr, CTL_PROG ": poll: %s\n",
			    strerror(errno));
			return CTL_FAILED;
		}
		if ((pfd.revents & (POLLIN | POLLERR)) != 0 &&
		    ctl_read_replies(fd, o, req, reply, &sys_errno))
			return CTL_ANSWER;
	}
	fprintf(stderr, CTL_PROG ": no answer from %s within %u s",
	    o->server_text, o->wait_s);
	if (sys_errno != 0)
		fprintf(stderr, " (last error: %s)", strerror(sys_errno));
	fputc('\n', stderr);
	return CTL_NO_ANSWER;
}

/* ---- output ---- */

static void
ctl_nonce_hex(const uint8_t nonce[PCP_NONCE_SIZE],
    char hex[CTL_NONCE_HEX + 1])
{
	static const char digits[] = "0123456789abcdef";
	size_t i;

	for (i = 0; i < PCP_NONCE_SIZE; i++) {
		hex[2 * i] = digits[nonce[i] >> 4];
		hex[2 * i + 1] = digits[nonce[i] & 0x0f];
	}
	hex[CTL_NONCE_HEX] = '\0';
}

static void
ctl_addr_text(const struct in6_addr *a, char buf[INET6_ADDRSTRLEN])
{
	if (pcp_addr_ntop(a, buf, INET6_ADDRSTRLEN) == NULL)
		(void)snprintf(buf, INET6_ADDRSTRLEN, "?");
}

/* "addr:port", "[v6]:port" */
static void
ctl_addr_port_text(const struct in6_addr *a, uint16_t port, char *buf,
    size_t bufsz)
{
	char addr[INET6_ADDRSTRLEN];

	ctl_addr_text(a, addr);
	if (pcp_addr_is_v4(a))
		(void)snprintf(buf, bufsz, "%s:%u", addr, (unsigned int)port);
	else
		(void)snprintf(buf, bufsz, "[%s]:%u", addr, (unsigned int)port);
}

static void
ctl_protocol_text(uint8_t proto, char buf[CTL_PROTO_TEXT_MAX])
{
	const char *name = map_proto_name(proto);

	if (name != NULL)
		(void)snprintf(buf, CTL_PROTO_TEXT_MAX, "%s", name);
	else if (proto == 0)
		(void)snprintf(buf, CTL_PROTO_TEXT_MAX, "all");
	else
		(void)snprintf(buf, CTL_PROTO_TEXT_MAX, "%u", (unsigned int)proto);
}

/* Server text is printed on a terminal: make control bytes visible. */
static void
ctl_print_safe(FILE *out, const char *s, size_t len)
{
	size_t i;

	for (i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];

		if (c == '\\' || c == '"')
			fprintf(out, "\\%c", c);
		else if (c < 0x20 || c == 0x7f)
			fprintf(out, "\\x%02x", c);
		else
			fputc(c, out);
	}
}

/* The internal address a matching MAP/PEER reply is about (§11.1,
   §13.1): THIRD_PARTY's, present in the reply iff it was sent. */
static const struct in6_addr *
ctl_internal_addr(const struct pcp_msg *req, const struct pcp_msg *reply)
{
	if (reply->has_third_party)
		return &reply->third_party;
	return &req->client_addr;
}

static void
ctl_print_version_text(const struct ctl_pcp_opts *o,
    const struct pcp_msg *reply)
{
	printf("UNSUPP_VERSION: %s speaks version %u, not PCP version %d",
	    o->server_text, (unsigned int)reply->version, PCP_VERSION);
	if (reply->version == 0)
		printf(" (a NAT-PMP-only server, RFC 6886)");
	putchar('\n');
}

static void
ctl_print_text(const struct ctl_pcp_opts *o, const struct pcp_msg *req,
    const struct pcp_msg *reply)
{
	char internal[CTL_ENDPOINT_MAX], external[CTL_ENDPOINT_MAX];
	char peer[CTL_ENDPOINT_MAX], proto[CTL_PROTO_TEXT_MAX];
	char hex[CTL_NONCE_HEX + 1];
	char addr[INET6_ADDRSTRLEN];

	if (reply->result == PCP_UNSUPP_VERSION &&
	    reply->version != PCP_VERSION) {
		ctl_print_version_text(o, reply);
		return;
	}
	if (req->opcode == PCP_OP_ANNOUNCE) {
		printf("%s: server %s epoch %u\n",
		    pcp_result_name(reply->result), o->server_text,
		    reply->epoch);
		return;
	}
	ctl_protocol_text(reply->protocol, proto);
	ctl_addr_port_text(ctl_internal_addr(req, reply),
	    reply->internal_port, internal, sizeof(internal));
	ctl_addr_port_text(&reply->ext_addr, reply->ext_port, external,
	    sizeof(external));
	printf("%s: %s %s -> %s", pcp_result_name(reply->result), proto,
	    internal, external);
	if (req->opcode == PCP_OP_PEER) {
		ctl_addr_port_text(&reply->peer_addr, reply->peer_port, peer,
		    sizeof(peer));
		printf(" peer %s", peer);
	}
	printf(" %slifetime %u s (epoch %u)\n",
	    reply->result == PCP_SUCCESS ? "" : "error ", reply->lifetime,
	    reply->epoch);
	ctl_nonce_hex(reply->nonce, hex);
	printf("nonce %s\n", hex);
	if (reply->has_third_party) {
		ctl_addr_text(&reply->third_party, addr);
		printf("third party %s\n", addr);
	}
	if (reply->prefer_failure)
		printf("prefer failure\n");
	if (reply->has_description) {
		printf("description \"");
		ctl_print_safe(stdout, reply->description,
		    reply->description_len);
		printf("\"\n");
	}
}

static void
ctl_json_addr(struct json_writer *w, const char *key,
    const struct in6_addr *a)
{
	char addr[INET6_ADDRSTRLEN];

	ctl_addr_text(a, addr);
	json_kv_string(w, key, addr);
}

static void
ctl_json_mapping(struct json_writer *w, const struct pcp_msg *req,
    const struct pcp_msg *reply)
{
	char hex[CTL_NONCE_HEX + 1];
	const char *proto = map_proto_name(reply->protocol);

	json_key(w, "protocol");
	if (proto != NULL)
		json_string(w, proto);
	else
		json_uint(w, reply->protocol);
	ctl_json_addr(w, "internal_address", ctl_internal_addr(req, reply));
	json_kv_uint(w, "internal_port", reply->internal_port);
	ctl_json_addr(w, "external_address", &reply->ext_addr);
	json_kv_uint(w, "external_port", reply->ext_port);
	ctl_nonce_hex(reply->nonce, hex);
	json_kv_string(w, "nonce", hex);
	if (req->opcode == PCP_OP_PEER) {
		ctl_json_addr(w, "remote_address", &reply->peer_addr);
		json_kv_uint(w, "remote_port", reply->peer_port);
	}
	if (reply->has_third_party)
		ctl_json_addr(w, "third_party", &reply->third_party);
	if (reply->prefer_failure)
		json_kv_bool(w, "prefer_failure", true);
	if (reply->has_description) {
		json_key(w, "description");
		json_string_len(w, reply->description, reply->description_len);
	}
}

/*
 * INTERFACE.md: every answer has every documented key. An ANNOUNCE has no
 * mapping and a reply from another version (§9) carries none of it: null.
 */
static void
ctl_json_mapping_null(struct json_writer *w, const struct pcp_msg *req)
{
	static const char *const keys[] = {
		"protocol", "internal_address", "internal_port",
		"external_address", "external_port", "nonce",
	};
	size_t i;

	for (i = 0; i < sizeof(keys) / sizeof(keys[0]); i++)
		json_kv_null(w, keys[i]);
	if (req->opcode == PCP_OP_PEER) {
		json_kv_null(w, "remote_address");
		json_kv_null(w, "remote_port");
	}
}

static bool
ctl_print_json(const struct ctl_pcp_opts *o, const struct pcp_msg *req,
    const struct pcp_msg *reply, const char *warning)
{
	struct json_writer w;
	struct evbuffer *buf;
	unsigned char *text;
	bool version_error;
	size_t len;

	if ((buf = evbuffer_new()) == NULL) {
		fprintf(stderr, CTL_PROG ": out of memory\n");
		return false;
	}
	version_error = reply->result == PCP_UNSUPP_VERSION &&
	    reply->version != PCP_VERSION;
	json_init(&w, buf);
	json_object_begin(&w);
	json_kv_string(&w, "result", pcp_result_name(reply->result));
	json_kv_uint(&w, "result_code", reply->result);
	/* the command name: the opcode in lower case */
	json_kv_string(&w, "opcode", o->cmd);
	json_kv_string(&w, "server", o->server_text);
	if (version_error) {
		/* §9: only the version is meaningful in such a reply */
		json_kv_uint(&w, "server_version", reply->version);
		json_kv_null(&w, "epoch");
		json_kv_null(&w, "lifetime");
	} else {
		json_kv_uint(&w, "epoch", reply->epoch);
		json_kv_uint(&w, "lifetime", reply->lifetime);
	}
	if (version_error || req->opcode == PCP_OP_ANNOUNCE)
		ctl_json_mapping_null(&w, req);
	else
		ctl_json_mapping(&w, req, reply);
	if (warning != NULL)
		json_kv_string(&w, "warning", warning);
	json_object_end(&w);
	if (!json_done(&w) || evbuffer_add(buf, "\n", 1) == -1 ||
	    (text = evbuffer_pullup(buf, -1)) == NULL) {
		fprintf(stderr, CTL_PROG ": cannot build the JSON answer\n");
		evbuffer_free(buf);
		return false;
	}
	len = evbuffer_get_length(buf);
	(void)fwrite(text, 1, len, stdout);
	evbuffer_free(buf);
	return true;
}

/*
 * RFC 6887 §13.2 (C-09): a PREFER_FAILURE success must give exactly the
 * suggested port (and address, when one was suggested); a Mapping Update
 * racing the request can break that. NULL when it holds.
 */
static const char *
ctl_prefer_failure_check(const struct ctl_pcp_opts *o,
    const struct pcp_msg *req, const struct pcp_msg *reply)
{
	if (!o->prefer_failure || req->opcode != PCP_OP_MAP ||
	    reply->result != PCP_SUCCESS)
		return NULL;
	if (reply->ext_port != req->ext_port)
		return "PREFER_FAILURE was requested but the assigned "
		    "external port differs from the suggested one "
		    "(RFC 6887 §13.2)";
	if (o->have_ext_addr && !pcp_addr_is_any(&req->ext_addr) &&
	    memcmp(&reply->ext_addr, &req->ext_addr,
	    sizeof(req->ext_addr)) != 0)
		return "PREFER_FAILURE was requested but the assigned "
		    "external address differs from the suggested one "
		    "(RFC 6887 §13.2)";
	return NULL;
}

static int
ctl_report(const struct ctl_pcp_opts *o, const struct pcp_msg *req,
    const struct pcp_msg *reply)
{
	const char *warning = ctl_prefer_failure_check(o, req, reply);

	if (o->json) {
		if (!ctl_print_json(o, req, reply, warning))
			return CTL_EXIT_USAGE;
	} else
		ctl_print_text(o, req, reply);
	if (fflush(stdout) == EOF) {
		fprintf(stderr, CTL_PROG ": writing the answer: %s\n",
		    strerror(errno));
		return CTL_EXIT_USAGE;
	}
	if (warning != NULL) {
		fprintf(stderr, CTL_PROG ": warning: %s\n", warning);
		return CTL_EXIT_PCP_ERROR;
	}
	if (reply->result == PCP_UNSUPP_VERSION &&
	    reply->version != PCP_VERSION && reply->version == 0)
		fprintf(stderr, CTL_PROG ": %s answered with NAT-PMP: it does "
		    "not speak PCP\n", o->server_text);
	return reply->result == PCP_SUCCESS ? CTL_EXIT_OK : CTL_EXIT_PCP_ERROR;
}

/* ---- the command ---- */

static bool
ctl_pcp_command(const char *cmd, struct ctl_pcp_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->cmd = cmd;
	o->lifetime = CTL_DEFAULT_LIFETIME;
	o->wait_s = CTL_DEFAULT_WAIT;
	if (strcmp(cmd, "map") == 0)
		o->opcode = PCP_OP_MAP;
	else if (strcmp(cmd, "peer") == 0)
		o->opcode = PCP_OP_PEER;
	else if (strcmp(cmd, "announce") == 0)
		o->opcode = PCP_OP_ANNOUNCE;
	else
		return false;
	return true;
}

static int
ctl_pcp_run(struct ctl_pcp_opts *o)
{
	struct pcp_msg req, reply;
	uint8_t pkt[PCP_MAX_SIZE];
	struct in6_addr client;
	enum ctl_outcome outcome;
	size_t len;
	int fd, rc;

	/* §11.2 (C-03): one fresh CSPRNG nonce unless -N reuses one */
	if (!o->have_nonce && !ctl_random(o->nonce, sizeof(o->nonce)))
		return CTL_EXIT_USAGE;
	if ((fd = ctl_open_socket(o, &client)) == -1)
		return CTL_EXIT_USAGE;
	if (o->opcode == PCP_OP_PEER && pcp_addr_is_v4(o->have_third_party ?
	    &o->third_party : &client) != pcp_addr_is_v4(&o->remote_addr)) {
		/* §12.1: internal and remote addresses share a family */
		ctl_usage_error(o->cmd, "%s", "-r must be of the internal "
		    "address's family");
		close(fd);
		return CTL_EXIT_USAGE;
	}
	ctl_build_request(o, &client, &req);
	if ((len = pcp_encode(&req, pkt, sizeof(pkt))) == 0) {
		fprintf(stderr, CTL_PROG " %s: the request does not fit in "
		    "%d octets (RFC 6887 §7); shorten -D\n", o->cmd,
		    PCP_MAX_SIZE);
		close(fd);
		return CTL_EXIT_USAGE;
	}
	outcome = ctl_exchange(fd, o, pkt, len, &req, &reply);
	close(fd);
	switch (outcome) {
	case CTL_ANSWER:
		rc = ctl_report(o, &req, &reply);
		break;
	case CTL_NO_ANSWER:
	case CTL_FAILED:
	default:
		rc = CTL_EXIT_USAGE;
		break;
	}
	return rc;
}

int
ctl_pcp_main(int argc, char **argv)
{
	struct ctl_pcp_opts o;
	const char *allowed;
	int rc;

	if (argc < 1 || !ctl_pcp_command(argv[0], &o)) {
		fprintf(stderr, CTL_PROG ": not a PCP command\n");
		return CTL_EXIT_USAGE;
	}
	if (o.opcode == PCP_OP_MAP)
		allowed = CTL_OPTS_MAP;
	else if (o.opcode == PCP_OP_PEER)
		allowed = CTL_OPTS_PEER;
	else
		allowed = CTL_OPTS_ANNOUNCE;
	if ((rc = ctl_parse_args(argc, argv, &o, allowed)) >= 0)
		return rc;
	return ctl_pcp_run(&o);
}
