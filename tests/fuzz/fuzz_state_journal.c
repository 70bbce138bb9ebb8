/*
 * fuzz_state_journal.c - libFuzzer target for the state journal loader
 * (state_journal_apply, src/state.c; docs/state.md "The journal").
 *
 * Every input is a journal replayed onto a fixed base (two mappings, one
 * upstream). Invariants, any broken one aborts: failure exactly when
 * errors were collected, every message names the journal, a failure
 * leaves no records; a success leaves an image that formats to a base
 * file that parses again (no duplicate key or external port, every
 * record valid) and restores into a table without a crash; replaying the
 * same journal twice gives the same image. Each input is replayed twice:
 * as it is, and with its header bound to the base and every commit line's
 * checksum made right (the count left as it is), so that mutations reach
 * the group lines instead of all failing at a checksum.
 */
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fuzz_state_format.h"
#include "state.h"
#include "table.h"

#define FUZZ_NAME	"fuzz.journal"
#define FUZZ_NOW_MS	1000000ULL
#define FUZZ_NOW_WALL	1700000000ULL
#define FUZZ_FNV_OFFSET	0xcbf29ce484222325ULL
#define FUZZ_FNV_PRIME	0x100000001b3ULL
#define FUZZ_MAGIC	"pcp-iwfd-journal 1 "

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static const char fuzz_base_body[] =
    "pcp-iwfd-state 2\n"
    "epoch 100\n"
    "written 1700000000\n"
    "natpmp-key -\n"
    "upstream 0 192.0.2.1 5351 - -\n"
    "map tcp 192.168.1.10 8080 8080 198.51.100.7 18080 "
    "0a0b0c0d0e0f101112131415 pcp 192.168.1.10 5350 was-granted 0 3600 "
    "3600 1700003590 - -\n"
    "peer udp 2001:db8::20 5555 5555 2001:db8:ffff::1 35555 "
    "515151515151515151515151 pcp 2001:db8::1 5350 was-granted 0 300 300 "
    "1700000290 - 2001:db8:1::9 443 -\n";

static struct state_errors errs;

static uint64_t
fuzz_fnv(uint64_t h, const void *data, size_t len)
{
	const uint8_t *p = data;
	size_t i;

	for (i = 0; i < len; i++) {
		h ^= p[i];
		h *= FUZZ_FNV_PRIME;
	}
	return h;
}

static void
fuzz_base(struct state_image *img)
{
	char text[sizeof(fuzz_base_body) + 64];
	uint64_t h = fuzz_fnv(FUZZ_FNV_OFFSET, fuzz_base_body,
	    sizeof(fuzz_base_body) - 1);
	int n;

	n = snprintf(text, sizeof(text), "%send 2 %016llx\n", fuzz_base_body,
	    (unsigned long long)h);
	if (n < 0 || state_parse("fuzz.base", text, (size_t)n, img,
	    &errs) != 0)
		abort();
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
	table_free(t);
}

/* The image as a sorted text: the record order is of no meaning. */
static int
fuzz_line_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static char *
fuzz_canonical(const struct state_image *img, size_t *len)
{
	char *text, *lines[4096], *p, *out;
	size_t n = 0, i, off = 0;

	text = fuzz_format(img, len);
	for (p = strtok(text, "\n"); p != NULL && n < 4096;
	    p = strtok(NULL, "\n"))
		if (strncmp(p, "map ", 4) == 0 || strncmp(p, "peer ", 5) == 0)
			lines[n++] = p;
	qsort(lines, n, sizeof(lines[0]), fuzz_line_cmp);
	if ((out = malloc(*len + 1)) == NULL)
		abort();
	for (i = 0; i < n; i++)
		off += (size_t)sprintf(out + off, "%s\n", lines[i]);
	*len = off;
	free(text);
	return out;
}

static void
fuzz_one(const uint8_t *data, size_t size)
{
	struct state_journal_info info;
	struct state_image img, again;
	char *first, *second, *base_text;
	size_t i, first_len, second_len, base_len;
	int rc;

	fuzz_base(&img);
	rc = state_journal_apply(FUZZ_NAME, (const char *)data, size, &img,
	    &errs, &info);
	if ((rc == 0) != (errs.count == 0 && errs.dropped == 0))
		abort();
	for (i = 0; i < errs.count; i++)
		if (strncmp(errs.msg[i], FUZZ_NAME ":",
		    strlen(FUZZ_NAME ":")) != 0)
			abort();
	if (rc != 0) {
		if (img.count != 0)
			abort();
		state_image_free(&img);
		return;
	}
	/* a valid base again */
	base_text = fuzz_format(&img, &base_len);
	if (state_parse(FUZZ_NAME, base_text, base_len, &again, &errs) != 0)
		abort();
	state_image_free(&again);
	free(base_text);
	fuzz_restore(&img);
	/* the same replay, the same result */
	fuzz_base(&again);
	if (state_journal_apply(FUZZ_NAME, (const char *)data, size, &again,
	    &errs, &info) != 0)
		abort();
	first = fuzz_canonical(&img, &first_len);
	second = fuzz_canonical(&again, &second_len);
	if (first_len != second_len || memcmp(first, second, first_len) != 0)
		abort();
	free(first);
	free(second);
	state_image_free(&img);
	state_image_free(&again);
}

/* The count of a commit line: the input is not NUL-terminated, so it is
   copied before sscanf reads it (fix: fuzz_state_journal read past the
   end of a last line without a newline). */
static bool
fuzz_count(const char *p, size_t n, size_t *count)
{
	char num[32];

	if (n >= sizeof(num))
		n = sizeof(num) - 1;
	memcpy(num, p, n);
	num[n] = '\0';
	return sscanf(num, "%zu", count) == 1;
}

/* The input with its header bound to the base and its commit checksums
   made right; NULL when it has no header line. */
static char *
fuzz_fix(const uint8_t *data, size_t size, size_t *len)
{
	struct state_image base;
	const char *p = (const char *)data, *end = p + size, *nl;
	uint64_t chain, hash = 0;
	size_t n, count;
	char *out, *o;

	if (size < strlen(FUZZ_MAGIC) || memcmp(p, FUZZ_MAGIC,
	    strlen(FUZZ_MAGIC)) != 0 || (nl = memchr(p, '\n', size)) == NULL)
		return NULL;
	fuzz_base(&base);
	chain = base.checksum;
	state_image_free(&base);
	/* a line becomes at most "commit " + 20 digits + " " + 16 hex
	   digits: 44 bytes from the 8 of the shortest commit line */
	if ((out = malloc(size * 6 + 64)) == NULL)
		abort();
	o = out + sprintf(out, "%s%016llx\n", FUZZ_MAGIC,
	    (unsigned long long)chain);
	for (p = nl + 1; p < end; p = nl + 1) {
		if ((nl = memchr(p, '\n', (size_t)(end - p))) == NULL)
			nl = end;
		n = (size_t)(nl - p);
		if (n > 7 && memcmp(p, "commit ", 7) == 0 &&
		    fuzz_count(p + 7, n - 7, &count)) {
			o += sprintf(o, "commit %zu %016llx", count,
			    (unsigned long long)hash);
			chain = hash;
		} else {
			if (n > 6 && memcmp(p, "group ", 6) == 0)
				hash = chain;
			hash = fuzz_fnv(hash, p, n);
			if (nl < end)
				hash = fuzz_fnv(hash, "\n", 1);
			memcpy(o, p, n);
			o += n;
		}
		if (nl < end)
			*o++ = '\n';
	}
	*len = (size_t)(o - out);
	return out;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *fixed;
	size_t len;

	fuzz_one(data, size);
	if ((fixed = fuzz_fix(data, size, &len)) != NULL) {
		fuzz_one((const uint8_t *)fixed, len);
		free(fixed);
	}
	return 0;
}
