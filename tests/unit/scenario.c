/*
 * scenario.c - the scripted upstream PCP server and the recording
 * transport shared by scenario tests; see scenario.h.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "pcp_wire.h"
#include "scenario.h"
#include "upstream.h"

int
scn_send(void *arg, unsigned int server, const uint8_t *pkt, size_t len)
{
	struct scn_wire *w = arg;
	struct scn_sent *s;

	assert_non_null(w);
	assert_true(server < UPSTREAM_MAX_SERVERS);
	assert_true(len <= PCP_MAX_SIZE);
	if (w->send_error[server] != 0)
		return w->send_error[server];
	s = &w->sent[w->nsent % SCN_MAX_SENT];
	s->server = server;
	s->at = w->now != NULL ? *w->now : 0;
	s->len = len;
	memcpy(s->pkt, pkt, len);
	w->nsent++;
	return 0;
}

const struct scn_sent *
scn_sent_at(const struct scn_wire *w, size_t i)
{
	assert_true(i < w->nsent);
	assert_true(w->nsent - i <= SCN_MAX_SENT);
	return &w->sent[i % SCN_MAX_SENT];
}

const struct scn_sent *
scn_last_sent(const struct scn_wire *w)
{
	assert_true(w->nsent > 0);
	return scn_sent_at(w, w->nsent - 1);
}

struct in6_addr
scn_addr(const char *s)
{
	struct in6_addr a;

	assert_true(pcp_addr_pton(s, &a));
	return a;
}

void
scn_decode(const uint8_t *pkt, size_t len, struct pcp_msg *m)
{
	enum pcp_result res;

	assert_int_equal(pcp_decode_request(pkt, len, NULL, 0, m, &res),
	    PCP_VERDICT_OK);
}

void
scn_reply_to(const struct pcp_msg *req, uint8_t result, uint32_t lifetime,
    uint32_t epoch, struct pcp_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->version = PCP_VERSION;
	m->response = true;
	m->opcode = req->opcode;
	m->result = result;
	m->lifetime = lifetime;
	m->epoch = epoch;
	memcpy(m->nonce, req->nonce, PCP_NONCE_SIZE);
	m->protocol = req->protocol;
	m->internal_port = req->internal_port;
	m->ext_port = req->ext_port;
	m->ext_addr = req->ext_addr;
	m->peer_port = req->peer_port;
	m->peer_addr = req->peer_addr;
	/* §13.1: a processed THIRD_PARTY is copied into the response */
	m->has_third_party = req->has_third_party;
	m->third_party = req->third_party;
}

void
scn_input(struct upstream *u, unsigned int server, const struct pcp_msg *m,
    uint64_t now)
{
	uint8_t buf[PCP_MAX_SIZE];
	size_t len;

	len = pcp_encode(m, buf, sizeof(buf));
	assert_true(len > 0);
	upstream_input(u, server, buf, len, now);
}

void
scn_announce(struct upstream *u, unsigned int server, uint32_t epoch,
    uint64_t now)
{
	struct pcp_msg m;

	memset(&m, 0, sizeof(m));
	m.version = PCP_VERSION;
	m.response = true;
	m.opcode = PCP_OP_ANNOUNCE;
	m.epoch = epoch;
	scn_input(u, server, &m, now);
}
