/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: verify + unpack. The first byte picks what the rest is:
 *   0  a tar, which the target compresses with zstd and signs with a fixed
 *      key, so the fuzzer explores the unpacker's entry rules, not zstd
 *   1  a payload (tar.zst or anything), signed by the target
 *   2  a whole .spk file, as downloaded: header, signature, payload
 *   3  a list of entries, one per line, "TYPE NAME[\tTARGET]" with TYPE f
 *      (file, TARGET its content), d, l (symlink to TARGET), h (hardlink to
 *      TARGET), c (character device) or p (FIFO): the target writes the tar
 *      itself with libarchive, after a valid manifest, so the fuzzer works on
 *      names, order and links rather than on tar's checksums
 * Each package is opened, checked in a dry run, then unpacked for real into
 * a scratch directory with small budgets. Invariants: a dry run and a real
 * unpack agree; a failed unpack leaves nothing; a successful one leaves
 * exactly the destination.
 *
 * Seeds (tests/fuzz/corpus/spk-unpack/): case-* are the archives of
 * test-spk-unpack as payloads (regenerate with SPK_FUZZ_CORPUS=DIR
 * build/tests/unit/test-spk-unpack), tar-* the same decompressed, file-* whole
 * packages.
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

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include "common/buf.h"

#include "common/dir.h"
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

static la_ssize_t
append(struct archive *a, void *userdata, const void *data, size_t size)
{
	(void)a;
	return buf_append(userdata, data, size) < 0 ? -1 : (la_ssize_t)size;
}

static void
add(struct archive *a, const char *name, mode_t type, const char *target, size_t target_len)
{
	struct archive_entry *e = archive_entry_new();
	bool data = type == AE_IFREG && target;

	if (!e)
		abort();
	archive_entry_copy_pathname(e, name);
	archive_entry_set_filetype(e, type == 'h' ? AE_IFREG : type);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, data ? (la_int64_t)target_len : 0);
	if (type == AE_IFLNK)
		archive_entry_copy_symlink(e, target ? target : "");
	if (type == 'h')
		archive_entry_copy_hardlink(e, target ? target : "");
	/* libarchive refuses some entries itself: those simply are not in the tar. */
	if (archive_write_header(a, e) == ARCHIVE_OK && data)
		(void)archive_write_data(a, target, target_len);
	archive_entry_free(e);
}

/* Mode 3: build a tar.zst payload from lines of entries. */
static int
entries_payload(const uint8_t *data, size_t size, struct buf *ret)
{
	/* Not strndup(): the input has no NUL, and ASan's strict string checks read to one. */
	_cleanup_free_ char *text = malloc(size + 1);
	struct archive *a = archive_write_new();
	char id[SPK_APP_ID_LEN + 1], manifest[256];
	char *line, *save = NULL;
	int n;

	if (text) {
		memcpy(text, data, size);
		text[size] = '\0';
	}

	if (!text || !a)
		abort();
	spk_app_id_from_key(key.public_key, id);
	n = snprintf(manifest, sizeof(manifest),
		     "{\"app\":{\"id\":\"%s\",\"title\":\"F\",\"version\":1},"
		     "\"run\":{\"command\":[\"/a\"],\"httpPort\":1}}",
		     id);
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, ret, NULL, append, NULL, NULL) != ARCHIVE_OK)
		abort();
	add(a, SPK_MANIFEST_NAME, AE_IFREG, manifest, (size_t)n);
	for (line = strtok_r(text, "\n", &save); line; line = strtok_r(NULL, "\n", &save)) {
		char *tab = strchr(line + 1, '\t');
		static const struct {
			char c;
			mode_t type;
		} types[] = { { 'f', AE_IFREG }, { 'd', AE_IFDIR }, { 'l', AE_IFLNK },
			      { 'h', 'h' },	 { 'c', AE_IFCHR }, { 'p', AE_IFIFO } };

		if (tab)
			*tab++ = '\0';
		for (size_t i = 0; i < ELEMENTSOF(types); i++)
			if (line[0] == types[i].c)
				add(a, line + 1, types[i].type, tab, tab ? strlen(tab) : 0);
	}
	(void)archive_write_close(a);
	(void)archive_write_free(a);
	return 0;
}

__attribute__((destructor)) static void
teardown(void)
{
	if (dest[0])
		(void)remove_tree_at(AT_FDCWD, scratch, 100);
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
	case 3: {
		_cleanup_(buf_release) struct buf payload = BUF_INIT;

		(void)entries_payload(data + 1, size - 1, &payload);
		if (payload.len == 0 || spk_write_signed(fd, &key, payload.data, payload.len) < 0)
			return 0;
		break;
	}
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
	if (r_real >= 0 && remove_tree_at(AT_FDCWD, dest, 64) < 0)
		abort();
	return 0;
}
