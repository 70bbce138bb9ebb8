/*
 * test_file.h - reading a whole file in a unit test.
 */
#ifndef IWFD_TEST_FILE_H
#define IWFD_TEST_FILE_H

#include <stddef.h>

/*
 * The whole of the file at `path`, NUL-terminated (the NUL not counted
 * in *len), in a buffer the caller frees; NULL when it cannot be opened
 * or read. Running out of memory fails the test.
 */
char		*test_slurp(const char *path, size_t *len);

#endif
