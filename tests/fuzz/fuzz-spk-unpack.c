/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: verify + unpack. The first byte picks what the rest is:
 *   0  a tar, which the target compresses with zstd and signs with a fixed
 *      key, so the fuzzer explores the unpacker's entry rules, not zstd
 *   1  a payload (tar.zst or anything), signed by the target
 *   2  a whole .spk file, as downloaded: header, signature, payload
 * Each package is opened, checked in a dry run, then unpacked for real into
 * a scratch directory with small budgets. Invariants: a dry run and a real
 * unpack agree; a failed unpack leaves nothing; a successful one leaves
 * exactly the destination.
 */
#include <dirent.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <zstd.h>

#include "spk/spk-internal.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct spk_key key;
static char scratch[] = "/tmp/fuzz-spk-unpack-XXXXXX";
static char dest[sizeof(scratch) + 8];

static void
setup(void)
{
	uint8_t seed[SPK_SEED_BYTES];

	memset(seed, 0x5e, sizeof(seed));
	if (spk_key_from_seed(seed, &key) < 0 || !mkdtemp(scratch))
		abort();
	(void)snprintf(dest, sizeof(dest), "%s/dest", scratch);
}

__attribute__((destructor)) static void
teardown(void)
{
	if (dest[0])
		(void)spk_remove_tree_at(AT_FDCWD, scratch, 100);
}

static size_t
entries_in(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	size_t n = 0;

	if (!d)
		abort();
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(d);
	return n;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const struct spk_limits limits = {
		.max_file_bytes = 1 << 20,
		.max_bytes = 1 << 20,
		.max_entries = 256,
		.max_depth = 16,
		.max_path = 256,
	};
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_free_ uint8_t *compressed = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct spk_unpack_stats dry = {}, real = {};
	struct spk_error err;
	int r_dry, r_real;

	if (!dest[0])
		setup();
	if (size < 1 || size > (1 << 20))
		return 0;
	fd = memfd_create("package", MFD_CLOEXEC);
	if (fd < 0)
		abort();
	switch (data[0]) {
	case 0: {
		size_t cap = ZSTD_compressBound(size - 1), n;

		compressed = malloc(cap);
		if (!compressed)
			abort();
		n = ZSTD_compress(compressed, cap, data + 1, size - 1, 1);
		if (ZSTD_isError(n) || spk_write_signed(fd, &key, compressed, n) < 0)
			return 0;
		break;
	}
	case 1:
		if (size < 2 || spk_write_signed(fd, &key, data + 1, size - 1) < 0)
			return 0;
		break;
	case 2:
		if (write(fd, data + 1, size - 1) != (ssize_t)(size - 1))
			abort();
		break;
	default:
		return 0;
	}
	if (spk_package_open_fd(fd, &limits, NULL, NULL, &p, &err) < 0)
		return 0;
	r_dry = spk_package_unpack(p, NULL, SPK_UNPACK_DRY_RUN, NULL, NULL, NULL, &dry, &err);
	r_real = spk_package_unpack(p, dest, 0, NULL, NULL, NULL, &real, &err);
	/*
	 * The same checks decide both; only the disk can add a failure (a name
	 * the file system refuses), never remove one.
	 */
	if (r_dry < 0 && r_real >= 0)
		__builtin_trap();
	if (r_real >= 0 && memcmp(&dry, &real, sizeof(dry)) != 0)
		__builtin_trap();
	/* Success leaves dest alone in the scratch directory; failure, nothing. */
	if (entries_in(scratch) != (r_real >= 0 ? 1u : 0u))
		__builtin_trap();
	if (r_real >= 0 && spk_remove_tree_at(AT_FDCWD, dest, 64) < 0)
		abort();
	return 0;
}
