/*
 * fuzz_config.c - libFuzzer target for the configuration parser
 * (src/config.c, src/acl.c).
 *
 * Every input is parsed as a whole file. Invariants, any broken one aborts:
 * the result says failure exactly when errors were collected, every message
 * starts with the file name, and a configuration that parsed prints a text
 * that parses again to the same printed text (config_print round trip).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

#define FUZZ_NAME	"fuzz.conf"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Static: both structs are tens of kilobytes; keep the stack small. */
static struct iwfd_config cfg, again;
static struct config_errors errs;

/* config_print() into a malloc'd string; aborts if memory runs out. */
static char *
fuzz_print(const struct iwfd_config *c, size_t *len)
{
	char *text = NULL;
	FILE *f;

	if ((f = open_memstream(&text, len)) == NULL)
		abort();
	config_print(c, f);
	if (fclose(f) != 0)
		abort();
	return text;
}

static void
fuzz_check_errors(int rc)
{
	size_t i;

	if ((rc == 0) != (errs.count == 0 && errs.dropped == 0))
		abort();
	for (i = 0; i < errs.count; i++)
		if (strncmp(errs.msg[i], FUZZ_NAME ":",
		    strlen(FUZZ_NAME ":")) != 0)
			abort();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *first, *second;
	size_t first_len, second_len;
	FILE *devnull;
	int rc;

	rc = config_parse_buffer(FUZZ_NAME, (const char *)data, size, &cfg,
	    &errs);
	fuzz_check_errors(rc);
	if ((devnull = fopen("/dev/null", "w")) == NULL)
		abort();
	config_errors_print(&errs, devnull);
	fclose(devnull);
	if (rc != 0)
		return 0;
	first = fuzz_print(&cfg, &first_len);
	if (config_parse_buffer(FUZZ_NAME, first, first_len, &again,
	    &errs) != 0)
		abort();
	second = fuzz_print(&again, &second_len);
	if (first_len != second_len || memcmp(first, second, first_len) != 0)
		abort();
	free(first);
	free(second);
	return 0;
}
