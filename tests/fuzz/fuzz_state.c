/*
 * fuzz_state.c - libFuzzer target for the state file parser (src/state.c).
 *
 * Every input is parsed as a whole file. Invariants, any broken one aborts:
 * failure exactly when errors were collected, every message starts with
 * the file name, a failed parse leaves no records, and a file that parsed
 * formats to a text that parses again to the same text (state_format
 * round trip) and restores into a table without a crash; every restored
 * mapping has a running lease or none and no MAPPING_F_RENEW, and the
 * restored table saves again exactly the mappings restored, each with the
 * kind of lease its record had (none, infinite, finite). Each input is
 * parsed twice: as it is, and with the checksum of its end line made
 * right, so mutations reach the records' validation and the restore
 * instead of all failing at the checksum.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_state_format.h"
#include "state.h"
#include "table.h"

#define FUZZ_NAME	"fuzz.state"
#define FUZZ_NOW_MS	1000000ULL
#define FUZZ_NOW_WALL	1700000000ULL
#define FUZZ_FNV_OFFSET	0xcbf29ce484222325ULL
#define FUZZ_FNV_PRIME	0x100000001b3ULL

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static struct state_errors errs;

static void
fuzz_check_errors(int rc, const struct state_image *img)
{
	size_t i;

	if ((rc == 0) != (errs.count == 0 && errs.dropped == 0))
		abort();
	if (rc != 0 && img->count != 0)
		abort();
	for (i = 0; i < errs.count; i++)
		if (strncmp(errs.msg[i], FUZZ_NAME ":",
		    strlen(FUZZ_NAME ":")) != 0)
			abort();
}

/* 0 no lease, 1 infinite, 2 finite */
static int
fuzz_lease_kind(uint64_t lease)
{
	if (lease == STATE_LEASE_NONE)
		return 0;
	return lease == STATE_LEASE_FOREVER ? 1 : 2;
}

static void
fuzz_check_restored(const struct table *t)
{
	struct mapping *m;
	size_t i;

	for (i = 0; (m = table_at(t, i)) != NULL; i++) {
		if ((m->flags & MAPPING_F_RENEW) != 0)
			abort();
		if (m->lease_end != TABLE_LEASE_NONE &&
		    mapping_lease_remaining(m, FUZZ_NOW_MS) == 0)
			abort();
		if (mapping_peer(m) != NULL && m->lease_end != TABLE_LEASE_NONE)
			abort();
	}
}

/* The restored table saved again: every mapping (all are live), each
   with the kind of lease of the record it came from, found by its key
   (the parser refused duplicate keys). */
static void
fuzz_save_again(const struct state_image *img, const struct table *t)
{
	struct state_image again;
	const struct state_record *r;
	char *text;
	size_t len, i, j = 0;

	state_image_init(&again);
	again.hdr = img->hdr;
	if (state_image_from_table(t, FUZZ_NOW_MS, FUZZ_NOW_WALL, &again) != 0)
		abort();
	if (again.count != table_count(t))
		abort();
	for (i = 0; i < again.count; i++) {
		r = &again.rec[i];
		for (j = 0; j < img->count; j++)
			if (img->rec[j].protocol == r->protocol &&
			    img->rec[j].ext_port == r->ext_port &&
			    img->rec[j].internal_port == r->internal_port &&
			    img->rec[j].peer_port == r->peer_port &&
			    (img->rec[j].flags & MAPPING_F_PEER) ==
			    (r->flags & MAPPING_F_PEER) &&
			    IN6_ARE_ADDR_EQUAL(&img->rec[j].internal_addr,
			    &r->internal_addr) &&
			    IN6_ARE_ADDR_EQUAL(&img->rec[j].peer_addr,
			    &r->peer_addr))
				break;
		if (j == img->count ||
		    fuzz_lease_kind(img->rec[j].lease) !=
		    fuzz_lease_kind(r->lease))
			abort();
	}
	text = fuzz_format(&again, &len);
	free(text);
	state_image_free(&again);
}

static void
fuzz_restore(const struct state_image *img)
{
	struct state_restore_stats st;
	struct table *t;

	if ((t = table_new()) == NULL)
		abort();
	(void)state_restore_table(img, t, NULL, FUZZ_NOW_MS, FUZZ_NOW_WALL,
	    FUZZ_NAME, &st, &errs);
	if (st.restored + st.expired + st.failed != img->count ||
	    table_count(t) != st.restored)
		abort();
	fuzz_check_restored(t);
	fuzz_save_again(img, t);
	table_free(t);
}

/*
 * A copy of data whose last line, when it is "end <count> ...", carries
 * the right checksum of everything before it; NULL when there is none.
 */
static char *
fuzz_fix_checksum(const uint8_t *data, size_t size, size_t *len)
{
	const char *end = NULL, *count, *sp;
	uint64_t h = FUZZ_FNV_OFFSET;
	size_t i, pre, cl;
	char *out;

	if (size < 2 || data[size - 1] != '\n')
		return NULL;
	for (i = size - 1; i > 0; i--)
		if (data[i - 1] == '\n')
			break;
	end = (const char *)data + i;
	if (size - i < 5 || memcmp(end, "end ", 4) != 0)
		return NULL;
	pre = i;
	count = end + 4;
	if ((sp = memchr(count, ' ', size - pre - 4)) == NULL)
		return NULL;
	cl = (size_t)(sp - count);
	for (i = 0; i < pre; i++) {
		h ^= data[i];
		h *= FUZZ_FNV_PRIME;
	}
	if ((out = malloc(pre + cl + 32)) == NULL)
		abort();
	memcpy(out, data, pre);
	*len = pre + (size_t)sprintf(out + pre, "end %.*s %016llx\n", (int)cl,
	    count, (unsigned long long)h);
	return out;
}

static void
fuzz_one(const uint8_t *data, size_t size)
{
	struct state_image img, again;
	char *first, *second;
	size_t first_len, second_len;
	int rc;

	rc = state_parse(FUZZ_NAME, (const char *)data, size, &img, &errs);
	fuzz_check_errors(rc, &img);
	if (rc != 0) {
		state_image_free(&img);
		return;
	}
	first = fuzz_format(&img, &first_len);
	if (state_parse(FUZZ_NAME, first, first_len, &again, &errs) != 0)
		abort();
	second = fuzz_format(&again, &second_len);
	if (first_len != second_len || memcmp(first, second, first_len) != 0)
		abort();
	fuzz_restore(&img);
	free(first);
	free(second);
	state_image_free(&img);
	state_image_free(&again);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fixed;
	size_t len;

	fuzz_one(data, size);
	if ((fixed = fuzz_fix_checksum(data, size, &len)) != NULL) {
		fuzz_one((const uint8_t *)fixed, len);
		free(fixed);
	}
	return 0;
}
