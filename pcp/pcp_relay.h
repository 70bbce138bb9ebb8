/*
 * pcp_relay.h - relaying PCP requests with unknown opcodes to the upstream
 * server (RFC 7648 §3.4.2, P-16), libevent.
 *
 * A relayed request is not understood: its body cannot be parsed, so its
 * reply cannot be matched on opcode fields. Each relay transaction
 * therefore gets its own UDP socket, connect()ed to the server: the one
 * reply that arrives on it is the answer (spec/pcp.md §2.3 [derived]).
 * The relay is stateless across transactions: a client retransmission is
 * a new transaction, and nothing is kept once it ends (RFC 7488's
 * stickiness is for servers holding mappings; the first configured server
 * is used).
 *
 * What changes on the way (spec/pcp.md §2.3, P-11):
 *   - upstream: the PCP Client IP field becomes the gateway's own source
 *     address toward the server (our NAT is on the path: left alone, the
 *     server would answer ADDRESS_MISMATCH, RFC 6887 §8.2);
 *   - downstream: the Epoch Time becomes ours (P-11: never the upstream's);
 *     the 96 reserved bits, when the server copied the Client IP's last
 *     96 bits there (RFC 6887 §7.2, a request it could not parse), get the
 *     client's back; UNSUPP_VERSION and ADDRESS_MISMATCH describe the
 *     relay's own leg and become NETWORK_FAILURE (as for MAP, spec/pcp.md
 *     §2.4). Everything else is passed on as the server sent it.
 * No reply within the timeout: nothing is sent (the client retransmits,
 * RFC 6887 §8.1.1, and each copy is a new transaction). An ICMP error on
 * the socket: NETWORK_FAILURE.
 */
#ifndef IWFD_PCP_RELAY_H
#define IWFD_PCP_RELAY_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp_frontend.h"
#include "pcp_wire.h"

struct event_base;
struct pcp_relay;

/* Relay transactions (one socket each) open at once; beyond it a request
   gets NO_RESOURCES (RFC 6887 §8.2 step 5: an overloaded server). */
#define PCP_RELAY_MAX_ACTIVE	64
/* How long a transaction waits for the server's reply. Above the client's
   first retransmission (IRT 3 s, RFC 6887 §8.1.1), so a slow reply to the
   first copy still reaches the client. */
#define PCP_RELAY_TIMEOUT_MS	5000

/* Deliver a reply to the client that sent the relayed request. */
typedef bool (*pcp_relay_send_fn)(void *arg, const struct pcp_frontend_peer *,
	    const uint8_t *, size_t);

struct pcp_relay_params {
	struct in6_addr	 server;	/* IPv4-mapped for IPv4 */
	uint16_t	 server_port;	/* 0: PCP_SERVER_PORT */
	/* NULL or "": the sockets follow the routing table. Binding to the
	   device needs CAP_NET_RAW; without it the routing table decides
	   (logged once). */
	const char	*wan_interface;
	uint32_t	(*epoch)(void *);	/* our Epoch Time (§8.5) */
	void		*epoch_arg;
	pcp_relay_send_fn send;
	void		*send_arg;
	size_t		 max_active;	/* 0: PCP_RELAY_MAX_ACTIVE */
	unsigned int	 timeout_ms;	/* 0: PCP_RELAY_TIMEOUT_MS */
};

struct pcp_relay_stats {
	uint64_t	 started;	/* requests sent upstream */
	uint64_t	 replied;	/* replies passed to the client */
	uint64_t	 timeouts;	/* no reply in time: nothing sent */
	uint64_t	 busy;		/* refused: PCP_RELAY_MAX_ACTIVE open */
	uint64_t	 failed;	/* socket, connect or send failed */
	uint64_t	 hard_errors;	/* ICMP error: NETWORK_FAILURE sent */
	uint64_t	 ignored;	/* datagrams that were not a reply */
	size_t		 active;	/* transactions open now */
};

/* NULL (logged) without a loop, a clock, a send function or a server
   address, or when out of memory. */
struct pcp_relay *pcp_relay_new(struct event_base *,
		    const struct pcp_relay_params *);
/* Close every open transaction (no reply is sent) and free. */
void		 pcp_relay_free(struct pcp_relay *);

/*
 * Relay one request (pkt/len as received from client; the caller has run
 * the RFC 6887 §8.2 header checks, pcp_server_handle()'s RELAY). Returns
 * PCP_SUCCESS when it went upstream (the reply, if any, comes later
 * through params.send); otherwise the code for the caller's own error
 * response (pcp_server_refuse()): PCP_NO_RESOURCES when too many
 * transactions are open or a socket cannot be had, PCP_NETWORK_FAILURE
 * when the server cannot be reached (no route, send failed).
 */
enum pcp_result	 pcp_relay_start(struct pcp_relay *,
		    const struct pcp_frontend_peer *client, const uint8_t *pkt,
		    size_t len);

const struct pcp_relay_stats *pcp_relay_stats(const struct pcp_relay *);

#endif
