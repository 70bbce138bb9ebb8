/*
 * main.c - pcp-iwfd: parse the command line, load the configuration, hand
 * over to the loop. Everything else lives in its own module.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "config.h"
#include "iwfd.h"
#include "log.h"

static void __attribute__((noreturn))
usage(void)
{
	fprintf(stderr, "usage: pcp-iwfd [-c FILE] [-f] [-v]... [-t]\n"
	    "  -c FILE  configuration file (default %s)\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -v       more logging (repeatable; with -t: print the "
	    "effective configuration)\n"
	    "  -t       check the configuration and exit 0 (valid) or 1\n",
	    CONFIG_DEFAULT_PATH);
	exit(1);
}

int
main(int argc, char **argv)
{
	const char *path = CONFIG_DEFAULT_PATH;
	char *abspath;
	struct config_errors errs;
	struct iwfd_config *conf;
	struct iwfd iwfd;
	int ch, foreground = 0, verbose = 0, check_only = 0, status;

	while ((ch = getopt(argc, argv, "c:fhtv")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			check_only = 1;
			break;
		case 'v':
			verbose++;
			break;
		default:
			usage();
		}
	}
	if (optind != argc)
		usage();

	if ((conf = malloc(sizeof(*conf))) == NULL) {
		perror("pcp-iwfd");
		return 1;
	}
	if (config_parse_file(path, conf, &errs) == -1) {
		config_errors_print(&errs, stderr);
		free(conf);
		return 1;
	}
	if (check_only) {
		if (verbose)
			config_print(conf, stdout);
		else
			fprintf(stderr, "configuration OK\n");
		free(conf);
		return 0;
	}

	/* daemon() moves to /: SIGHUP must re-read the same file. */
	if ((abspath = realpath(path, NULL)) == NULL) {
		perror(path);
		free(conf);
		return 1;
	}
	log_init(foreground, verbose, "pcp-iwfd");
	if (iwfd_init(&iwfd, abspath, conf) == -1) {
		iwfd_shutdown(&iwfd);
		free(abspath);
		return 1;
	}
	if (!foreground && iwfd_daemonize(&iwfd) == -1)
		fatal("daemon");
	status = iwfd_run(&iwfd);
	iwfd_shutdown(&iwfd);
	free(abspath);
	return status;
}
