/*
 * iwf_nonce.h - mapping identities for the front-ends whose protocols
 * have none (NAT-PMP, UPnP IGD): spec/iwf.md §2 "Nonce". The PCP nonce of
 * such a mapping is a keyed pseudo-random function (SipHash-2-4) of
 * (origin, client address, protocol, internal port) under a per-install
 * secret, so every refresh and delete of the same mapping carries the same
 * nonce upstream, and nobody without the secret can predict it.
 */
#ifndef IWFD_IWF_NONCE_H
#define IWFD_IWF_NONCE_H

#include <netinet/in.h>
#include <stdint.h>

#include "map.h"

#define IWF_NONCE_KEY_SIZE	16	/* SipHash's 128-bit key */

void	 iwf_nonce(const uint8_t key[IWF_NONCE_KEY_SIZE], enum map_origin,
	    const struct in6_addr *client, uint8_t protocol,
	    uint16_t internal_port, uint8_t nonce[MAP_NONCE_SIZE]);
/* SipHash-2-4 (Aumasson, Bernstein 2012), exposed for its test vectors. */
uint64_t iwf_siphash(const uint8_t key[IWF_NONCE_KEY_SIZE], const void *,
	    size_t);

#endif
