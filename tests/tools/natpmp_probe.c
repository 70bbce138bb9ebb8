/*
 * natpmp_probe.c - a NAT-PMP client on libnatpmp (the library behind
 * natpmpc) for tests/netns/natpmp_e2e.sh: what natpmpc does not print -
 * the result code of a failure, the epoch (SSSoE), the granted lifetime -
 * as one line of key=value pairs, with libnatpmp's own retransmissions
 * (RFC 6886 §3.1: 250 ms doubling).
 *
 *   natpmp_probe -g GATEWAY [-w SECS] addr
 *   natpmp_probe -g GATEWAY [-w SECS] map udp|tcp PRIVATE PUBLIC LIFETIME
 *
 * Prints "result=N epoch=E address=A" or "result=N epoch=E private=P
 * public=Q lifetime=L". Exit 0 on result 0, 1 on another result, 2 when
 * nothing came back or on a usage error.
 */
#include <sys/select.h>

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

/* strnatpmperr() is declared only with this (natpmpc does the same) */
#define ENABLE_STRNATPMPERR
#include <natpmp.h>

/* libnatpmp's codes for the RFC 6886 §3.5 results it decodes */
static int
probe_result(int r, const natpmpresp_t *resp)
{
	switch (r) {
	case 0:
		return 0;
	case NATPMP_ERR_UNSUPPORTEDVERSION:
		return 1;
	case NATPMP_ERR_NOTAUTHORIZED:
		return 2;
	case NATPMP_ERR_NETWORKFAILURE:
		return 3;
	case NATPMP_ERR_OUTOFRESOURCES:
		return 4;
	case NATPMP_ERR_UNSUPPORTEDOPCODE:
		return 5;
	case NATPMP_ERR_UNDEFINEDERROR:
		return resp->resultcode;
	default:
		return -1;
	}
}

static void
usage(void)
{
	fprintf(stderr, "usage: natpmp_probe -g GATEWAY [-w SECS] addr\n"
	    "       natpmp_probe -g GATEWAY [-w SECS] map udp|tcp PRIVATE "
	    "PUBLIC LIFETIME\n");
	exit(2);
}

static long
number(const char *s, long max)
{
	char *end;
	long v;

	errno = 0;
	v = strtol(s, &end, 10);
	if (errno != 0 || *end != '\0' || v < 0 || v > max)
		usage();
	return v;
}

int
main(int argc, char *argv[])
{
	natpmp_t n;
	natpmpresp_t resp;
	struct in_addr gw = { 0 };
	struct timeval tv;
	fd_set fds;
	time_t deadline;
	int ch, r, result, proto = 0, waitsecs = 10;
	int have_gw = 0;

	while ((ch = getopt(argc, argv, "g:w:")) != -1) {
		switch (ch) {
		case 'g':
			if (inet_pton(AF_INET, optarg, &gw) != 1)
				usage();
			have_gw = 1;
			break;
		case 'w':
			waitsecs = (int)number(optarg, 300);
			break;
		default:
			usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (!have_gw || argc < 1)
		usage();
	if ((r = initnatpmp(&n, 1, gw.s_addr)) < 0) {
		fprintf(stderr, "initnatpmp: %s\n", strnatpmperr(r));
		return 2;
	}
	if (strcmp(argv[0], "addr") == 0 && argc == 1)
		r = sendpublicaddressrequest(&n);
	else if (strcmp(argv[0], "map") == 0 && argc == 5) {
		if (strcmp(argv[1], "udp") == 0)
			proto = NATPMP_PROTOCOL_UDP;
		else if (strcmp(argv[1], "tcp") == 0)
			proto = NATPMP_PROTOCOL_TCP;
		else
			usage();
		r = sendnewportmappingrequest(&n, proto,
		    (uint16_t)number(argv[2], 65535),
		    (uint16_t)number(argv[3], 65535),
		    (uint32_t)number(argv[4], 0xffffffffL));
	} else
		usage();
	if (r < 0) {
		fprintf(stderr, "send: %s\n", strnatpmperr(r));
		return 2;
	}
	deadline = time(NULL) + waitsecs;
	do {
		FD_ZERO(&fds);
		FD_SET(n.s, &fds);
		if (getnatpmprequesttimeout(&n, &tv) < 0)
			return 2;
		(void)select(n.s + 1, &fds, NULL, NULL, &tv);
		memset(&resp, 0, sizeof(resp));
		r = readnatpmpresponseorretry(&n, &resp);
	} while (r == NATPMP_TRYAGAIN && time(NULL) < deadline);
	closenatpmp(&n);
	if ((result = probe_result(r, &resp)) < 0) {
		fprintf(stderr, "no answer: %s\n", strnatpmperr(r));
		return 2;
	}
	if (proto == 0)
		printf("result=%d epoch=%u address=%s\n", result, resp.epoch,
		    result == 0 ? inet_ntoa(resp.pnu.publicaddress.addr) :
		    "0.0.0.0");
	else
		printf("result=%d epoch=%u private=%u public=%u lifetime=%u\n",
		    result, resp.epoch, resp.pnu.newportmapping.privateport,
		    resp.pnu.newportmapping.mappedpublicport,
		    resp.pnu.newportmapping.lifetime);
	return result == 0 ? 0 : 1;
}
