/*
 * pcp-iwfctl.c - pcp-iwfctl: the daemon's control client ("status", "list",
 * "delete", "set-upstream" over the control socket, ctl_control.c) and a native PCP client
 * ("map", "peer", "announce", ctl_pcp.c). This file only dispatches.
 */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "ctl.h"

static void
usage(FILE *out)
{
	fprintf(out,
"usage: pcp-iwfctl [-s SOCKET] status [--json]\n"
"       pcp-iwfctl [-s SOCKET] list [--json]\n"
"       pcp-iwfctl [-s SOCKET] delete PROTO EXTPORT\n"
"       pcp-iwfctl [-s SOCKET] set-upstream [-n] [ADDR[:PORT] |\n"
"                  --dhcp4-hex HEX | --dhcp6-hex HEX]...\n"
"       pcp-iwfctl map -S SERVER[:PORT] -p tcp|udp -i INTPORT [options]\n"
"       pcp-iwfctl peer -S SERVER[:PORT] -p tcp|udp -i INTPORT\n"
"                  -r REMOTE_ADDR:PORT [options]\n"
"       pcp-iwfctl announce -S SERVER[:PORT] [-w SECS] [--json]\n"
"\n"
"  -s SOCKET  the daemon's control socket (default " CTL_DEFAULT_SOCKET ")\n"
"  -h         this help\n"
"\n"
"  status     epoch, external address, upstream servers, counters\n"
"  list       the mapping table\n"
"  delete     remove one mapping, locally and upstream\n"
"  set-upstream  the upstream PCP servers the DHCP client handed over\n"
"             (upstream_server = dhcp; DHCP options 158 / 86, RFC 7291)\n"
"  map, peer, announce: a native PCP client (RFC 6887) for any PCP server;\n"
"  map options (peer takes the same but -F, plus -r):\n"
"    -I ADDR internal address   -e PORT suggested external port\n"
"    -E ADDR suggested external address\n"
"    -l SECS lifetime (default 7200; 0 deletes)   -T ADDR THIRD_PARTY\n"
"    -F PREFER_FAILURE (needs -e)   -D TEXT DESCRIPTION (UTF-8)\n"
"    -N HEX nonce (24 hex digits)\n"
"    -w SECS give up after SECS (default 10)   -v verbose   --json\n"
"  'pcp-iwfctl COMMAND --help' shows a command's options.\n"
"\n"
"exit status: 0 success, 1 a PCP error result or a daemon error,\n"
"2 no answer or a usage error\n");
}

/* Commands handled by the native PCP client. */
static int
is_pcp_command(const char *cmd)
{
	return strcmp(cmd, "map") == 0 || strcmp(cmd, "peer") == 0 ||
	    strcmp(cmd, "announce") == 0;
}

/* Commands sent to the daemon's control socket. */
static int
is_control_command(const char *cmd)
{
	return strcmp(cmd, "status") == 0 || strcmp(cmd, "list") == 0 ||
	    strcmp(cmd, "delete") == 0;
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *socket_path = CTL_DEFAULT_SOCKET;
	const char *cmd;
	int ch;

	/* "+": stop at the command; its own options follow it */
	while ((ch = getopt_long(argc, argv, "+:s:h", longopts, NULL)) != -1) {
		switch (ch) {
		case 's':
			if (optarg[0] == '\0') {
				fprintf(stderr, "pcp-iwfctl: -s: the socket "
				    "path is empty\n");
				return CTL_EXIT_USAGE;
			}
			socket_path = optarg;
			break;
		case 'h':
			usage(stdout);
			return CTL_EXIT_OK;
		case ':':
			fprintf(stderr, "pcp-iwfctl: option -%c needs a "
			    "value\n", optopt);
			return CTL_EXIT_USAGE;
		default:
			if (optopt != 0)
				fprintf(stderr, "pcp-iwfctl: unknown option "
				    "-%c\n", optopt);
			else
				fprintf(stderr, "pcp-iwfctl: unknown option "
				    "%s\n", argv[optind - 1]);
			usage(stderr);
			return CTL_EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		fprintf(stderr, "pcp-iwfctl: no command given\n");
		usage(stderr);
		return CTL_EXIT_USAGE;
	}
	cmd = argv[optind];
	if (strcmp(cmd, "help") == 0) {
		usage(stdout);
		return CTL_EXIT_OK;
	}
	if (is_pcp_command(cmd))
		return ctl_pcp_main(argc - optind, argv + optind);
	if (strcmp(cmd, "set-upstream") == 0)
		return ctl_set_upstream_main(socket_path, argc - optind,
		    argv + optind);
	if (is_control_command(cmd))
		return ctl_control_main(socket_path, argc - optind,
		    argv + optind);
	fprintf(stderr, "pcp-iwfctl: unknown command '%s'\n", cmd);
	usage(stderr);
	return CTL_EXIT_USAGE;
}
