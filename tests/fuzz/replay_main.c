/*
 * replay_main.c - run a libFuzzer target over files without libFuzzer.
 *
 * Shared by every fuzz target: ctest builds fuzz_NAME.c with this driver
 * (gcc, no fuzzer runtime) and replays fuzz/corpus/NAME/ through it, so each
 * corpus is a regression suite. Arguments are files or directories
 * (directories are walked recursively, in name order). Replaying nothing
 * is a failure: an empty or missing corpus must not pass silently.
 */
#include <sys/stat.h>

#include <dirent.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

/* Inputs larger than this are not fuzz inputs; refuse rather than guess. */
#define REPLAY_MAX_INPUT	(16 * 1024 * 1024)

static int	replay_path(const char *, size_t *);

static int
replay_file(const char *path, size_t *count)
{
	uint8_t *buf = NULL;
	FILE *f;
	long len;
	int rc = -1;

	if ((f = fopen(path, "rb")) == NULL) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (fseek(f, 0, SEEK_END) != 0 || (len = ftell(f)) < 0 ||
	    fseek(f, 0, SEEK_SET) != 0 || len > REPLAY_MAX_INPUT) {
		fprintf(stderr, "replay: %s: cannot size\n", path);
		goto out;
	}
	/* malloc(0) may return NULL; always ask for at least one byte */
	if ((buf = malloc((size_t)len + 1)) == NULL) {
		fprintf(stderr, "replay: %s: out of memory\n", path);
		goto out;
	}
	if (fread(buf, 1, (size_t)len, f) != (size_t)len) {
		fprintf(stderr, "replay: %s: short read\n", path);
		goto out;
	}
	(void)LLVMFuzzerTestOneInput(buf, (size_t)len);
	(*count)++;
	rc = 0;
out:
	free(buf);
	fclose(f);
	return rc;
}

static int
replay_dir(const char *path, size_t *count)
{
	struct dirent **names;
	char sub[4096];
	int i, n, rc = 0;

	if ((n = scandir(path, &names, NULL, alphasort)) < 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	for (i = 0; i < n; i++) {
		if (strcmp(names[i]->d_name, ".") != 0 &&
		    strcmp(names[i]->d_name, "..") != 0) {
			if (snprintf(sub, sizeof(sub), "%s/%s", path,
			    names[i]->d_name) >= (int)sizeof(sub)) {
				fprintf(stderr, "replay: %s: path too long\n",
				    path);
				rc = -1;
			} else if (replay_path(sub, count) != 0)
				rc = -1;
		}
		free(names[i]);
	}
	free(names);
	return rc;
}

static int
replay_path(const char *path, size_t *count)
{
	struct stat st;

	if (stat(path, &st) != 0) {
		fprintf(stderr, "replay: %s: %s\n", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode))
		return replay_dir(path, count);
	if (S_ISREG(st.st_mode))
		return replay_file(path, count);
	return 0;		/* sockets, fifos, ...: not inputs */
}

int
main(int argc, char **argv)
{
	size_t count = 0;
	int i, rc = 0;

	if (argc < 2) {
		fprintf(stderr, "usage: %s FILE|DIR...\n", argv[0]);
		return 2;
	}
	for (i = 1; i < argc; i++)
		if (replay_path(argv[i], &count) != 0)
			rc = 1;
	printf("replayed %zu inputs\n", count);
	if (count == 0) {
		fprintf(stderr, "replay: no inputs found: failing\n");
		return 1;
	}
	return rc;
}
