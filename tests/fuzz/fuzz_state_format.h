/*
 * fuzz_state_format.h - shared by the state file's fuzz targets
 * (fuzz_state.c, fuzz_state_journal.c): an image formatted into a
 * malloc'd text, aborting on any failure (a fuzz finding).
 */
#ifndef IWFD_FUZZ_STATE_FORMAT_H
#define IWFD_FUZZ_STATE_FORMAT_H

#include <stdio.h>
#include <stdlib.h>

#include "state.h"

static inline char *
fuzz_format(const struct state_image *img, size_t *len)
{
	char *text = NULL;
	FILE *f;

	if ((f = open_memstream(&text, len)) == NULL)
		abort();
	if (state_format(img, f) != 0)
		abort();
	if (fclose(f) != 0)
		abort();
	return text;
}

#endif
