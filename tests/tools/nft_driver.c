/*
 * nft_driver.c - drives backend_nft for tests/netns/backend_nft.sh.
 *
 *   nft_driver [-v] TABLE WAN_IF [COMMAND ...]
 *
 * Each argument is one command; without any, commands are read from
 * standard input, one a line:
 *
 *   add PROTO EXT_PORT ADDR INT_PORT TIMEOUT	(queue; PROTO tcp|udp|NUMBER)
 *   refresh PROTO EXT_PORT ADDR INT_PORT TIMEOUT
 *   remove PROTO EXT_PORT
 *   commit					(runs the callbacks)
 *   pending					(prints "pending yes|no")
 *   reconcile FILE				(lines "PROTO EXT ADDR INT TIMEOUT")
 *   destroy
 *   sleep SECONDS				(lets kernel timeouts run)
 *   guard LANS TCP_PORTS UDP_PORTS [N]	(set_guard; comma lists,
 *						 "-" for none; the first N
 *						 TCP ports limited, default
 *						 all; prints "guard 0" or
 *						 "guard -1")
 *
 * Every callback prints "done VERB PROTO/EXT_PORT STATUS" with STATUS 0 or
 * the errno name; reconcile and destroy print "VERB 0" or "VERB -1".
 * Exit 0, or 1 when the backend does not open or a command is malformed.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <netinet/in.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "backend.h"
#include "log.h"
#include "map.h"

#define DRIVER_MAX_WORDS	8
#define DRIVER_MAX_RULES	100000
/* More than set_guard takes, so that its refusal can be tested. */
#define DRIVER_MAX_LIST		(BACKEND_GUARD_MAX_PORTS + 2)

struct driver_change {
	const char	*verb;
	uint8_t		 protocol;
	uint16_t	 ext_port;
};

static void
driver_done(void *arg, int error)
{
	struct driver_change *c = arg;

	printf("done %s %u/%u %s\n", c->verb, c->protocol, c->ext_port,
	    error == 0 ? "0" : strerrorname_np(error));
	fflush(stdout);
	free(c);
}

static bool
driver_number(const char *s, unsigned long max, unsigned long *out)
{
	char *end;

	if (s == NULL || *s < '0' || *s > '9')
		return false;
	errno = 0;
	*out = strtoul(s, &end, 10);
	return errno == 0 && *end == '\0' && *out <= max;
}

static bool
driver_protocol(const char *s, uint8_t *out)
{
	unsigned long v;

	if (s == NULL)
		return false;
	if (strcmp(s, "tcp") == 0)
		*out = MAP_PROTO_TCP;
	else if (strcmp(s, "udp") == 0)
		*out = MAP_PROTO_UDP;
	else if (driver_number(s, UINT8_MAX, &v))
		*out = (uint8_t)v;
	else
		return false;
	return true;
}

/* "PROTO EXT [ADDR INT TIMEOUT]" from words; full: all five needed. */
static bool
driver_rule(char **w, int n, bool full, struct backend_rule *r)
{
	struct in_addr in;
	unsigned long ext, port, timeout;

	memset(r, 0, sizeof(*r));
	if (n < 2 || !driver_protocol(w[0], &r->protocol) ||
	    !driver_number(w[1], UINT16_MAX, &ext))
		return false;
	r->ext_port = (uint16_t)ext;
	if (!full)
		return n == 2;
	if (n != 5 || inet_pton(AF_INET, w[2], &in) != 1 ||
	    !driver_number(w[3], UINT16_MAX, &port) ||
	    !driver_number(w[4], UINT32_MAX, &timeout))
		return false;
	r->int_addr.s6_addr[10] = 0xff;
	r->int_addr.s6_addr[11] = 0xff;
	memcpy(&r->int_addr.s6_addr[12], &in, sizeof(in));
	r->int_port = (uint16_t)port;
	r->timeout = (uint32_t)timeout;
	return true;
}

static int
driver_split(char *line, char **w)
{
	char *save = NULL, *t;
	int n = 0;

	for (t = strtok_r(line, " \t\r\n", &save); t != NULL && n <
	    DRIVER_MAX_WORDS; t = strtok_r(NULL, " \t\r\n", &save))
		w[n++] = t;
	return n;
}

static int
driver_reconcile(struct backend *b, const char *path)
{
	static struct backend_rule rules[DRIVER_MAX_RULES];
	char line[256], *w[DRIVER_MAX_WORDS];
	size_t n = 0;
	FILE *f;
	int nw;

	if ((f = fopen(path, "r")) == NULL) {
		log_warn("%s", path);
		return -1;
	}
	while (fgets(line, sizeof(line), f) != NULL) {
		if ((nw = driver_split(line, w)) == 0)
			continue;
		if (n == DRIVER_MAX_RULES || !driver_rule(w, nw, true,
		    &rules[n])) {
			log_warnx("%s: bad rule %zu", path, n + 1);
			fclose(f);
			return -1;
		}
		n++;
	}
	fclose(f);
	return b->ops->reconcile(b, rules, n);
}

static int
driver_queue(struct backend *b, const char *verb, char **w, int nw)
{
	struct driver_change *c;
	struct backend_rule r;
	bool full = strcmp(verb, "remove") != 0;
	int rc;

	if (!driver_rule(w, nw, full, &r))
		return -1;
	if ((c = calloc(1, sizeof(*c))) == NULL)
		return -1;
	c->protocol = r.protocol;
	c->ext_port = r.ext_port;
	if (strcmp(verb, "add") == 0) {
		c->verb = "add";
		rc = b->ops->add(b, &r, driver_done, c);
	} else if (strcmp(verb, "refresh") == 0) {
		c->verb = "refresh";
		rc = b->ops->refresh(b, &r, driver_done, c);
	} else {
		c->verb = "remove";
		rc = b->ops->remove(b, &r, driver_done, c);
	}
	if (rc == -1)
		free(c);
	return rc;
}

/* "a,b,c" into words (in place), "-" is none; -1 when too many. */
static int
driver_list(char *s, char **out)
{
	char *save = NULL, *t;
	int n = 0;

	if (strcmp(s, "-") == 0)
		return 0;
	for (t = strtok_r(s, ",", &save); t != NULL;
	    t = strtok_r(NULL, ",", &save)) {
		if (n == DRIVER_MAX_LIST)
			return -1;
		out[n++] = t;
	}
	return n;
}

static int
driver_ports(char *s, uint16_t *ports)
{
	char *w[DRIVER_MAX_LIST];
	unsigned long v;
	int i, n;

	if ((n = driver_list(s, w)) == -1)
		return -1;
	for (i = 0; i < n; i++) {
		if (!driver_number(w[i], UINT16_MAX, &v))
			return -1;
		ports[i] = (uint16_t)v;
	}
	return n;
}

static int
driver_guard(struct backend *b, char **w, int nw)
{
	char *lans[DRIVER_MAX_LIST];
	uint16_t tcp[DRIVER_MAX_LIST], udp[DRIVER_MAX_LIST];
	unsigned long n_limited;
	int n_lan, n_tcp, n_udp;

	if ((n_lan = driver_list(w[0], lans)) == -1 ||
	    (n_tcp = driver_ports(w[1], tcp)) == -1 ||
	    (n_udp = driver_ports(w[2], udp)) == -1)
		return -1;
	n_limited = (unsigned long)n_tcp;
	if (nw == 4 && !driver_number(w[3], DRIVER_MAX_LIST, &n_limited))
		return -1;
	printf("guard %d\n", b->ops->set_guard(b, (const char * const *)lans,
	    (size_t)n_lan, tcp, (size_t)n_tcp, (size_t)n_limited, udp,
	    (size_t)n_udp));
	return 0;
}

/* One command; -1 when it is malformed. */
static int
driver_command(struct backend *b, char *line)
{
	char *w[DRIVER_MAX_WORDS];
	unsigned long secs;
	int nw, rc;

	if ((nw = driver_split(line, w)) == 0 || w[0][0] == '#')
		return 0;
	if (strcmp(w[0], "add") == 0 || strcmp(w[0], "refresh") == 0 ||
	    strcmp(w[0], "remove") == 0)
		return driver_queue(b, w[0], w + 1, nw - 1);
	if (strcmp(w[0], "commit") == 0 && nw == 1)
		b->ops->commit(b);
	else if (strcmp(w[0], "pending") == 0 && nw == 1)
		printf("pending %s\n", b->ops->pending(b) ? "yes" : "no");
	else if (strcmp(w[0], "reconcile") == 0 && nw == 2) {
		rc = driver_reconcile(b, w[1]);
		printf("reconcile %d\n", rc);
	} else if (strcmp(w[0], "destroy") == 0 && nw == 1)
		printf("destroy %d\n", b->ops->destroy(b));
	else if (strcmp(w[0], "sleep") == 0 && nw == 2 &&
	    driver_number(w[1], UINT_MAX, &secs))
		sleep((unsigned int)secs);
	else if (strcmp(w[0], "guard") == 0 && (nw == 4 || nw == 5)) {
		if (driver_guard(b, w + 1, nw - 1) == -1)
			return -1;
	} else
		return -1;
	fflush(stdout);
	return 0;
}

static int
driver_run(struct backend *b, int argc, char **argv)
{
	char line[512];
	int i;

	for (i = 0; i < argc; i++) {
		snprintf(line, sizeof(line), "%s", argv[i]);
		if (driver_command(b, line) == -1) {
			log_warnx("bad command: %s", argv[i]);
			return 1;
		}
	}
	if (argc > 0)
		return 0;
	while (fgets(line, sizeof(line), stdin) != NULL)
		if (driver_command(b, line) == -1) {
			log_warnx("bad command: %s", line);
			return 1;
		}
	return 0;
}

int
main(int argc, char **argv)
{
	struct backend_params params;
	struct backend *b;
	int ch, verbose = 0, rc;

	while ((ch = getopt(argc, argv, "v")) != -1) {
		switch (ch) {
		case 'v':
			verbose++;
			break;
		default:
			goto usage;
		}
	}
	argc -= optind;
	argv += optind;
	if (argc < 2)
		goto usage;
	log_init(1, verbose, "nft_driver");
	memset(&params, 0, sizeof(params));
	params.table = argv[0];
	params.wan_interface = argv[1];
	if ((b = backend_nft_ops.open(&params)) == NULL)
		return 1;
	rc = driver_run(b, argc - 2, argv + 2);
	b->ops->close(b);
	return rc;
usage:
	fprintf(stderr, "usage: nft_driver [-v] TABLE WAN_IF [COMMAND ...]\n");
	return 1;
}
