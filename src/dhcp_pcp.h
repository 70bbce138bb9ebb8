/*
 * dhcp_pcp.h - the DHCP PCP server options of RFC 7291, decoded.
 *
 * Pure like the other codecs (STYLE.md habit 1): bytes in, addresses out,
 * no globals, no sockets. The one place the options are read: pcp-iwfctl
 * set-upstream --dhcp4-hex / --dhcp6-hex takes the raw option value from
 * the DHCP client's hook script (contrib/dhcp/) and decodes it here.
 *
 *	DHCPv4 OPTION_V4_PCP_SERVER (158), RFC 7291 §4.1: one or more lists,
 *	each List-Length (1 octet, a multiple of 4) then that many octets of
 *	IPv4 addresses; each list is one PCP server. The option length is at
 *	least 5.
 *	DHCPv6 OPTION_V6_PCP_SERVER (86), RFC 7291 §3.1: IPv6 addresses
 *	(IPv4-mapped allowed), option-length a multiple of 16; one PCP server
 *	per option instance.
 *
 * pcp-iwfd speaks to one carrier at a time: every address of every server
 * goes into one ordered list, the upstream engine's failover order (RFC
 * 7488 §3). Multicast, loopback and unspecified addresses are dropped
 * silently (RFC 7291 §3.2, §4.2), and so are repeats.
 */
#ifndef IWFD_DHCP_PCP_H
#define IWFD_DHCP_PCP_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DHCP_PCP_V4_OPTION	158	/* OPTION_V4_PCP_SERVER */
#define DHCP_PCP_V6_OPTION	86	/* OPTION_V6_PCP_SERVER */
/* the upstream engine's list (UPSTREAM_MAX_SERVERS, CONFIG_MAX_...) */
#define DHCP_PCP_MAX_ADDRS	8
/* RFC 3396 lets a DHCPv4 option be concatenated beyond 255 octets; a
   DHCPv4 message holds at most a few kB. */
#define DHCP_PCP_OPTION_MAX	4096

enum dhcp_pcp_err {
	DHCP_PCP_OK = 0,
	DHCP_PCP_BAD_HEX,		/* not hex octets */
	DHCP_PCP_TOO_LONG,		/* more than DHCP_PCP_OPTION_MAX */
	DHCP_PCP_V4_TOO_SHORT,		/* RFC 7291 §4.1: minimum length 5 */
	DHCP_PCP_V4_LIST_LENGTH,	/* 0 or not a multiple of 4 */
	DHCP_PCP_V4_TRUNCATED,		/* a list runs past the option */
	DHCP_PCP_V6_LENGTH,		/* 0 or not a multiple of 16 */
	DHCP_PCP_ERR_COUNT
};

/* The servers, in the order the options named them. */
struct dhcp_pcp_servers {
	struct in6_addr	 addr[DHCP_PCP_MAX_ADDRS];	/* IPv4-mapped */
	size_t		 n;
	size_t		 servers;	/* PCP servers (lists, instances) */
	size_t		 discarded;	/* multicast, loopback, unspecified */
	size_t		 repeated;	/* already in addr[] */
	size_t		 dropped;	/* beyond DHCP_PCP_MAX_ADDRS */
};

void		 dhcp_pcp_init(struct dhcp_pcp_servers *);
/*
 * Hex text to octets: contiguous pairs ("04c6336401", udhcpc's optNNN
 * and odhcp6c's form) or octets of one or two digits separated by ':',
 * '-' or white space ("4:c6:33:64:1", ISC dhclient's form for an option
 * of type string). Upper or lower case; "" is 0 octets. *len is set on
 * success only.
 */
enum dhcp_pcp_err dhcp_pcp_hex(const char *text, uint8_t *out, size_t max,
		    size_t *len);
/* Append the addresses of one DHCPv4 option 158 value (its data, without
   code and length). On error s is unchanged. */
enum dhcp_pcp_err dhcp_pcp_decode_v4(const uint8_t *, size_t,
		    struct dhcp_pcp_servers *);
/* Append the addresses of one or more DHCPv6 option 86 values (data only,
   several instances may be concatenated). On error s is unchanged. */
enum dhcp_pcp_err dhcp_pcp_decode_v6(const uint8_t *, size_t,
		    struct dhcp_pcp_servers *);
const char	*dhcp_pcp_strerror(enum dhcp_pcp_err);

#endif
