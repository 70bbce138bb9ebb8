/*
 * ctl.h - the parts of pcp-iwfctl: the native PCP client (ctl_pcp.c) and the
 * daemon's control-socket client (ctl_control.c). pcp-iwfctl.c dispatches.
 */
#ifndef IWFD_CTL_H
#define IWFD_CTL_H

#define CTL_DEFAULT_SOCKET	"/run/pcp-iwfd.sock"

/* Exit statuses (INTERFACE.md): */
#define CTL_EXIT_OK		0	/* SUCCESS */
#define CTL_EXIT_PCP_ERROR	1	/* a PCP error result / daemon error */
#define CTL_EXIT_USAGE		2	/* no answer or a usage error */

/* "map", "peer", "announce": argv[0] is the command name. */
int	ctl_pcp_main(int argc, char **argv);
/* "status", "list", "delete": argv[0] is the command name. */
int	ctl_control_main(const char *socket_path, int argc, char **argv);
/* "set-upstream": servers for upstream_server = dhcp (RFC 7291). */
int	ctl_set_upstream_main(const char *socket_path, int argc, char **argv);

#endif
