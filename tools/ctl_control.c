/*
 * ctl_control.c - pcp-iwfctl status|list|delete|set-upstream: one request
 * line to the daemon's control socket, the answer copied to stdout
 * (protocol in src/control.h). The daemon formats both the readable and
 * the JSON forms, so this side stays a dumb pipe. set-upstream decodes the
 * DHCP PCP server options (RFC 7291, src/dhcp_pcp.h) that the DHCP
 * client's hook scripts hand over raw (contrib/dhcp/).
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>

#include <errno.h>
#include <poll.h>
#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "config.h"
#include "ctl.h"
#include "dhcp_pcp.h"
#include "pcp_wire.h"

/* The daemon answers at once; a listing of 50,000 mappings takes well
   under a second. Give up on a daemon that hangs. */
#define CTL_CONTROL_TIMEOUT_MS	10000
/* the control socket's CONTROL_LINE_MAX: set-upstream with 8 servers */
#define CTL_REQUEST_MAX		512

static int
ctl_control_usage(void)
{
	fprintf(stderr, "usage: pcp-iwfctl [-s SOCKET] status [--json]\n"
	    "       pcp-iwfctl [-s SOCKET] list [--json]\n"
	    "       pcp-iwfctl [-s SOCKET] delete tcp|udp EXTPORT\n");
	return CTL_EXIT_USAGE;
}

static int
ctl_control_connect(const char *path)
{
	struct sockaddr_un sun;
	int fd;

	memset(&sun, 0, sizeof(sun));
	sun.sun_family = AF_UNIX;
	if (strlen(path) >= sizeof(sun.sun_path)) {
		fprintf(stderr, "pcp-iwfctl: socket path too long: %s\n", path);
		return -1;
	}
	strcpy(sun.sun_path, path);
	if ((fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0)) == -1 ||
	    connect(fd, (struct sockaddr *)&sun, sizeof(sun)) == -1) {
		fprintf(stderr, "pcp-iwfctl: cannot reach pcp-iwfd at %s: %s\n",
		    path, strerror(errno));
		if (fd != -1)
			close(fd);
		return -1;
	}
	return fd;
}

static int
ctl_control_write_all(int fd, const char *buf, size_t len)
{
	ssize_t n;

	while (len > 0) {
		if ((n = write(fd, buf, len)) == -1) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		buf += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * Read the answer: the first line is "ok" or "error MESSAGE"; the body goes
 * to stdout as it arrives.
 */
static int
ctl_control_read_answer(int fd)
{
	char buf[65536], status[CTL_REQUEST_MAX];
	size_t slen = 0;
	struct pollfd pfd = { .fd = fd, .events = POLLIN };
	int have_status = 0, rc;
	ssize_t n;
	char *nl;

	for (;;) {
		if ((rc = poll(&pfd, 1, CTL_CONTROL_TIMEOUT_MS)) == -1) {
			if (errno == EINTR)
				continue;
			perror("pcp-iwfctl: poll");
			return CTL_EXIT_USAGE;
		}
		if (rc == 0) {
			fprintf(stderr, "pcp-iwfctl: pcp-iwfd did not answer\n");
			return CTL_EXIT_USAGE;
		}
		if ((n = read(fd, buf, sizeof(buf))) == -1) {
			if (errno == EINTR)
				continue;
			perror("pcp-iwfctl: read");
			return CTL_EXIT_USAGE;
		}
		if (n == 0)
			break;
		if (have_status) {
			fwrite(buf, 1, (size_t)n, stdout);
			continue;
		}
		nl = memchr(buf, '\n', (size_t)n);
		if (slen + (size_t)(nl != NULL ? nl - buf : n) >= sizeof(status)) {
			fprintf(stderr, "pcp-iwfctl: bad answer from pcp-iwfd\n");
			return CTL_EXIT_USAGE;
		}
		memcpy(status + slen, buf, (size_t)(nl != NULL ? nl - buf : n));
		slen += (size_t)(nl != NULL ? nl - buf : n);
		if (nl == NULL)
			continue;
		status[slen] = '\0';
		have_status = 1;
		if (strncmp(status, "error ", 6) == 0) {
			fprintf(stderr, "pcp-iwfctl: %s\n", status + 6);
			return CTL_EXIT_PCP_ERROR;
		}
		if (strcmp(status, "ok") != 0) {
			fprintf(stderr, "pcp-iwfctl: bad answer from pcp-iwfd\n");
			return CTL_EXIT_USAGE;
		}
		fwrite(nl + 1, 1, (size_t)(buf + n - (nl + 1)), stdout);
	}
	if (!have_status) {
		fprintf(stderr, "pcp-iwfctl: pcp-iwfd closed without answering\n");
		return CTL_EXIT_USAGE;
	}
	return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* Send one request line and copy the answer out. */
static int
ctl_control_request(const char *socket_path, const char *req)
{
	int fd, rc;

	if ((fd = ctl_control_connect(socket_path)) == -1)
		return CTL_EXIT_USAGE;
	if (ctl_control_write_all(fd, req, strlen(req)) == -1) {
		perror("pcp-iwfctl: write");
		close(fd);
		return CTL_EXIT_USAGE;
	}
	rc = ctl_control_read_answer(fd);
	close(fd);
	return rc;
}

/* ---- set-upstream -------------------------------------------------------- */

struct ctl_servers {
	struct config_upstream	 s[CONFIG_MAX_UPSTREAM_SERVERS];
	size_t			 n;
	size_t			 dropped;	/* beyond the 8 */
};

static int
ctl_set_upstream_usage(FILE *out)
{
	fprintf(out, "usage: pcp-iwfctl [-s SOCKET] set-upstream [-n] "
	    "[ADDR[:PORT] | --dhcp4-hex HEX |\n"
	    "                  --dhcp6-hex HEX]...\n"
	    "  ADDR[:PORT]      192.0.2.1, 192.0.2.1:5351, 2001:db8::1, "
	    "[2001:db8::1]:5351\n"
	    "  --dhcp4-hex HEX  the value of DHCPv4 option 158 (RFC 7291 "
	    "§4), hex octets\n"
	    "  --dhcp6-hex HEX  the value of DHCPv6 option 86 (RFC 7291 §3)\n"
	    "  -n               print the request, do not send it\n"
	    "Servers in order of preference, at most %d; none: the DHCP "
	    "client knows none.\n", CONFIG_MAX_UPSTREAM_SERVERS);
	return out == stdout ? CTL_EXIT_OK : CTL_EXIT_USAGE;
}

/* Add one server unless it is there already (a server may come both
   from DHCPv4 and, IPv4-mapped, from DHCPv6). */
static void
ctl_servers_add(struct ctl_servers *l, const struct config_upstream *u)
{
	size_t i;

	for (i = 0; i < l->n; i++)
		if (l->s[i].port == u->port &&
		    IN6_ARE_ADDR_EQUAL(&l->s[i].addr, &u->addr))
			return;
	if (l->n == CONFIG_MAX_UPSTREAM_SERVERS) {
		l->dropped++;
		return;
	}
	l->s[l->n++] = *u;
}

/* The raw option from a hook; "" is no option at all (no server). */
static bool
ctl_servers_dhcp(struct ctl_servers *l, const char *opt, const char *hex,
    bool v6)
{
	uint8_t buf[DHCP_PCP_OPTION_MAX];
	struct dhcp_pcp_servers d;
	struct config_upstream u;
	enum dhcp_pcp_err err;
	size_t len, i;

	dhcp_pcp_init(&d);
	if ((err = dhcp_pcp_hex(hex, buf, sizeof(buf), &len)) == DHCP_PCP_OK &&
	    len > 0)
		err = v6 ? dhcp_pcp_decode_v6(buf, len, &d) :
		    dhcp_pcp_decode_v4(buf, len, &d);
	if (err != DHCP_PCP_OK) {
		fprintf(stderr, "pcp-iwfctl: %s: %s\n", opt,
		    dhcp_pcp_strerror(err));
		return false;
	}
	if (d.discarded > 0)
		fprintf(stderr, "pcp-iwfctl: %s: %zu multicast, loopback or "
		    "unspecified address(es) ignored (RFC 7291)\n", opt,
		    d.discarded);
	for (i = 0; i < d.n; i++) {
		memset(&u, 0, sizeof(u));
		u.addr = d.addr[i];
		u.port = PCP_SERVER_PORT;
		ctl_servers_add(l, &u);
	}
	l->dropped += d.dropped;
	return true;
}

/* "set-upstream A B ...\n", IPv6 in brackets (RFC 5952 §6). */
static bool
ctl_servers_request(const struct ctl_servers *l, char *req, size_t len)
{
	char a[INET6_ADDRSTRLEN];
	size_t off, i;
	int w;

	w = snprintf(req, len, "set-upstream");
	if (w < 0 || (size_t)w >= len)
		return false;
	off = (size_t)w;
	for (i = 0; i < l->n; i++) {
		pcp_addr_ntop(&l->s[i].addr, a, sizeof(a));
		w = snprintf(req + off, len - off, pcp_addr_is_v4(&l->s[i].addr) ?
		    " %s:%u" : " [%s]:%u", a, l->s[i].port);
		if (w < 0 || (size_t)w >= len - off)
			return false;
		off += (size_t)w;
	}
	w = snprintf(req + off, len - off, "\n");
	return w >= 0 && (size_t)w < len - off;
}

int
ctl_set_upstream_main(const char *socket_path, int argc, char **argv)
{
	struct ctl_servers l;
	struct config_upstream u;
	char req[CTL_REQUEST_MAX], err[CONFIG_ERROR_LEN];
	bool dry_run = false;
	int i;

	memset(&l, 0, sizeof(l));
	for (i = 1; i < argc; i++) {
		if (strcmp(argv[i], "-h") == 0 ||
		    strcmp(argv[i], "--help") == 0)
			return ctl_set_upstream_usage(stdout);
		if (strcmp(argv[i], "-n") == 0) {
			dry_run = true;
			continue;
		}
		if (strcmp(argv[i], "--dhcp4-hex") == 0 ||
		    strcmp(argv[i], "--dhcp6-hex") == 0) {
			if (i + 1 == argc) {
				fprintf(stderr, "pcp-iwfctl: %s needs a "
				    "value\n", argv[i]);
				return CTL_EXIT_USAGE;
			}
			if (!ctl_servers_dhcp(&l, argv[i], argv[i + 1],
			    argv[i][6] == '6'))
				return CTL_EXIT_USAGE;
			i++;
			continue;
		}
		if (argv[i][0] == '-' && strchr(argv[i], ':') == NULL) {
			fprintf(stderr, "pcp-iwfctl: set-upstream: unknown "
			    "option %s\n", argv[i]);
			return ctl_set_upstream_usage(stderr);
		}
		if (!config_parse_server(argv[i], &u, err, sizeof(err))) {
			/* the message names the config key: not here */
			fprintf(stderr, "pcp-iwfctl: set-upstream: %s\n",
			    strncmp(err, "upstream_server: ", 17) == 0 ?
			    err + 17 : err);
			return CTL_EXIT_USAGE;
		}
		ctl_servers_add(&l, &u);
	}
	if (l.dropped > 0)
		fprintf(stderr, "pcp-iwfctl: only the first %d upstream servers "
		    "are used; %zu more ignored\n", CONFIG_MAX_UPSTREAM_SERVERS,
		    l.dropped);
	if (!ctl_servers_request(&l, req, sizeof(req)))
		return ctl_set_upstream_usage(stderr);
	if (dry_run) {
		fputs(req, stdout);
		return fflush(stdout) == 0 ? CTL_EXIT_OK : CTL_EXIT_USAGE;
	}
	return ctl_control_request(socket_path, req);
}

/* ---- status, list, delete ------------------------------------------------ */

int
ctl_control_main(const char *socket_path, int argc, char **argv)
{
	char req[CTL_REQUEST_MAX];
	int rc, json = 0;

	if (argc >= 2 && (strcmp(argv[1], "-h") == 0 ||
	    strcmp(argv[1], "--help") == 0)) {
		ctl_control_usage();
		return CTL_EXIT_OK;
	}
	if (strcmp(argv[0], "delete") == 0) {
		/* One word each: the request is a single line. */
		if (argc != 3 || argv[1][strcspn(argv[1], " \t\r\n")] != '\0' ||
		    argv[2][strcspn(argv[2], " \t\r\n")] != '\0')
			return ctl_control_usage();
		rc = snprintf(req, sizeof(req), "delete %s %s\n", argv[1], argv[2]);
	} else {
		if (argc > 2 || (argc == 2 && strcmp(argv[1], "--json") != 0))
			return ctl_control_usage();
		json = argc == 2;
		rc = snprintf(req, sizeof(req), "%s %s\n", argv[0],
		    json ? "json" : "text");
	}
	if (rc < 0 || (size_t)rc >= sizeof(req))
		return ctl_control_usage();
	return ctl_control_request(socket_path, req);
}
