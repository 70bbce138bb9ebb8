/*
 * scenario.h - pieces shared by the scenario tests that drive the upstream
 * PCP engine with a scripted server on a fake clock (STYLE.md: Unbound's
 * TIME_PASSES): a transport that records what the engine sends, and the
 * server's side - decode a request, build the answer that echoes it
 * (RFC 6887 §11.4), encode and feed it to upstream_input().
 *
 * Every helper asserts with cmocka: include <cmocka.h> before using them.
 */
#ifndef IWFD_TEST_SCENARIO_H
#define IWFD_TEST_SCENARIO_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>

#include "pcp_wire.h"
#include "upstream.h"

#define SCN_MAX_SENT	256

/* One datagram the engine sent. */
struct scn_sent {
	unsigned int	 server;
	uint64_t	 at;		/* *wire->now when sent */
	size_t		 len;
	uint8_t		 pkt[PCP_MAX_SIZE];
};

/* The fake transport's record (a ring of the last SCN_MAX_SENT). */
struct scn_wire {
	const uint64_t	*now;		/* the test's clock */
	size_t		 nsent;		/* all sends so far */
	struct scn_sent	 sent[SCN_MAX_SENT];
	int		 send_error[UPSTREAM_MAX_SERVERS]; /* errno to fail */
};

/* An upstream_send_fn: pass the struct scn_wire as send_arg. */
int		 scn_send(void *wire, unsigned int server, const uint8_t *,
		    size_t);
/* The i-th datagram sent (0-based, i < nsent, among the last kept). */
const struct scn_sent *scn_sent_at(const struct scn_wire *, size_t i);
const struct scn_sent *scn_last_sent(const struct scn_wire *);

/* "192.0.2.1" (IPv4-mapped) or an IPv6 literal; asserts it parses. */
struct in6_addr	 scn_addr(const char *);
/* Decode a request the engine sent; asserts it is valid. */
void		 scn_decode(const uint8_t *, size_t, struct pcp_msg *);

/*
 * The server's answer to req (RFC 6887 §11.4, §8.3): R bit, result, epoch,
 * lifetime; nonce, protocol, internal port and THIRD_PARTY echoed; the
 * assigned address and port are the suggested ones (what an error echoes,
 * §11.1) until the caller sets others.
 */
void		 scn_reply_to(const struct pcp_msg *req, uint8_t result,
		    uint32_t lifetime, uint32_t epoch, struct pcp_msg *resp);
/* Encode m and hand it to the engine as coming from server. */
void		 scn_input(struct upstream *, unsigned int server,
		    const struct pcp_msg *, uint64_t now);
/* An unsolicited ANNOUNCE from server (§14.1.3). */
void		 scn_announce(struct upstream *, unsigned int server,
		    uint32_t epoch, uint64_t now);

#endif
