/* SPDX-License-Identifier: MIT */
/*
 * replay-main.c: run a libFuzzer target over files without libFuzzer, so
 * `make test` replays every committed corpus with the ordinary compiler (and
 * under ASan in `make check-asan`). Arguments are files or directories; prints
 * TAP, one line per target run.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static size_t replayed;

static int
replay_file(const char *path)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ uint8_t *data = NULL;
	struct stat st;
	size_t off = 0;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		fprintf(stderr, "replay: cannot read '%s': %s\n", path, strerror(errno));
		return -1;
	}
	/* Exactly the file's bytes, in a buffer of exactly that size (ASan sees overreads). */
	data = malloc(st.st_size > 0 ? (size_t)st.st_size : 1);
	if (!data)
		return -1;
	while (off < (size_t)st.st_size) {
		ssize_t n = read(fd, data + off, (size_t)st.st_size - off);
		if (n <= 0)
			return -1;
		off += (size_t)n;
	}
	(void)LLVMFuzzerTestOneInput(data, off);
	replayed++;
	return 0;
}

static int
compare_names(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

static int
replay_path(const char *path)
{
	struct stat st;
	struct dirent **entries;
	int n, r = 0;

	if (stat(path, &st) < 0) {
		fprintf(stderr, "replay: '%s': %s\n", path, strerror(errno));
		return -1;
	}
	if (!S_ISDIR(st.st_mode))
		return replay_file(path);
	n = scandir(path, &entries, NULL, NULL);
	if (n < 0)
		return -1;
	qsort(entries, (size_t)n, sizeof(*entries), compare_names);
	for (int i = 0; i < n; i++) {
		char child[4096];

		if (entries[i]->d_name[0] != '.') {
			(void)snprintf(child, sizeof(child), "%s/%s", path, entries[i]->d_name);
			if (replay_path(child) < 0)
				r = -1;
		}
		free(entries[i]);
	}
	free(entries);
	return r;
}

int
main(int argc, char *argv[])
{
	int r = 0;

	for (int i = 1; i < argc; i++)
		if (replay_path(argv[i]) < 0)
			r = -1;
	/* A corpus that replays nothing proves nothing. */
	if (replayed == 0) {
		printf("1..1\nnot ok 1 - replayed no input\n");
		return EXIT_FAILURE;
	}
	printf("1..1\n%s 1 - replayed %zu inputs\n", r < 0 ? "not ok" : "ok", replayed);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
