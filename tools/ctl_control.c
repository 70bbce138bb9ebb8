/*
 * ctl_control.c - pcp-iwfctl status|list|delete: one request line to the
 * daemon's control socket, the answer copied to stdout (protocol in
 * src/control.h). The daemon formats both the readable and the JSON forms,
 * so this side stays a dumb pipe.
 */
#include <sys/socket.h>
#include <sys/un.h>

#include <errno.h>
#include <poll.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "ctl.h"

/* The daemon answers at once; a listing of 50,000 mappings takes well
   under a second. Give up on a daemon that hangs. */
#define CTL_CONTROL_TIMEOUT_MS	10000
#define CTL_REQUEST_MAX		256

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

int
ctl_control_main(const char *socket_path, int argc, char **argv)
{
	char req[CTL_REQUEST_MAX];
	int fd, rc, json = 0;

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
