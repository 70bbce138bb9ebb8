/*
 * test_file.c - reading a whole file in a unit test (test_file.h).
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>

#include "test_file.h"

char *
test_slurp(const char *path, size_t *len)
{
	char *buf = NULL;
	FILE *f, *m;
	char chunk[4096];
	size_t n;
	int error;

	if ((f = fopen(path, "rb")) == NULL)
		return NULL;
	m = open_memstream(&buf, len);
	assert_non_null(m);
	while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
		assert_int_equal(fwrite(chunk, 1, n, m), n);
	error = ferror(f);
	fclose(f);
	assert_int_equal(fclose(m), 0);
	if (error) {
		free(buf);
		return NULL;
	}
	return buf;
}
