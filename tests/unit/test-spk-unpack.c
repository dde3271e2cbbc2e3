/* SPDX-License-Identifier: MIT */
/*
 * test-spk-unpack.c: SECURITY-TESTS.md group H. Every hostile archive here is
 * built in memory with libarchive's write API (patched by hand where the API
 * will not lie), compressed, and signed with a test key, so it passes the
 * signature check and the unpacker itself must stop it. Each case then
 * checks that nothing was written outside the destination and that no
 * partial install (destination or temporary directory) is left behind.
 * A well-formed archive built by the same helpers unpacks, so the
 * rejections are not an artefact of the helpers.
 */
#include <errno.h>
#include <dirent.h>
#include <fcntl.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/wait.h>
#include <sys/xattr.h>
#include <unistd.h>
#include <linux/fs.h>

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include "common/buf.h"
#include "common/dir.h"
#include "spk/spk-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* ---- the test key and a scratch directory per case -------------------------- */

static struct spk_key test_key;
static char app_id[SPK_APP_ID_LEN + 1];
static char root[] = "/tmp/test-spk-unpack-XXXXXX";
static unsigned case_no;
static char case_dir[256], dest[300], outside[300];

static bool on_tmpfs;

__attribute__((constructor)) static void
setup(void)
{
	uint8_t seed[SPK_SEED_BYTES];

	memset(seed, 0x42, sizeof(seed));
	if (spk_key_from_seed(seed, &test_key) < 0 || !mkdtemp(root))
		abort();
	spk_app_id_from_key(test_key.public_key, app_id);
	/*
	 * Where we may (root), the cases run on a tmpfs in a mount namespace of
	 * our own: creating 100000 files costs seconds on a slow disk, a fraction
	 * of one on tmpfs, and nothing here touches the real file system.
	 */
	on_tmpfs = unshare(CLONE_NEWNS) == 0 &&
		   mount(NULL, "/", NULL, MS_REC | MS_PRIVATE, NULL) == 0 &&
		   mount("tmpfs", root, "tmpfs", 0, "size=1g,mode=0755") == 0;
}

__attribute__((destructor)) static void
teardown(void)
{
	if (on_tmpfs)
		(void)umount2(root, MNT_DETACH);
	(void)remove_tree_at(AT_FDCWD, root, 100);
}

/* A fresh case directory holding an empty "outside" canary directory. */
static void
new_case(void)
{
	case_no++;
	(void)snprintf(case_dir, sizeof(case_dir), "%s/%u", root, case_no);
	(void)snprintf(dest, sizeof(dest), "%s/dest", case_dir);
	(void)snprintf(outside, sizeof(outside), "%s/outside", case_dir);
	if (mkdir(case_dir, 0755) < 0 || mkdir(outside, 0755) < 0)
		abort();
}

/* Entries of a directory, not counting "." and "..". */
static int
count_entries(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int n = 0;

	if (!d)
		return -1;
	while ((de = readdir(d)))
		if (strcmp(de->d_name, ".") != 0 && strcmp(de->d_name, "..") != 0)
			n++;
	(void)closedir(d);
	return n;
}

/* After a refusal: no dest, no temporary directory, nothing in the canary. */
static bool
nothing_left(void)
{
	struct stat st;
	bool ok = true;

	ok &= CHECK(lstat(dest, &st) < 0 && errno == ENOENT);
	ok &= CHECK_INT_EQ(count_entries(case_dir), 1); /* only "outside" */
	ok &= CHECK_INT_EQ(count_entries(outside), 0);
	return ok;
}

/* ---- building archives ------------------------------------------------------ */

static const char manifest_format[] = "{\"app\":{\"id\":\"%s\",\"title\":\"Test\",\"version\":1},"
				      "\"run\":{\"command\":[\"/bin/app\"],\"httpPort\":8000}}";

struct tb {
	struct archive *a;
	struct buf out; /* what libarchive wrote: tar, or tar.zst with zstd */
};

static la_ssize_t
tb_write(struct archive *a, void *userdata, const void *data, size_t size)
{
	struct tb *t = userdata;

	(void)a;
	return buf_append(&t->out, data, size) < 0 ? -1 : (la_ssize_t)size;
}

/* format: ARCHIVE_FORMAT_*; filter: ARCHIVE_FILTER_ZSTD, _GZIP or _NONE. */
static void
tb_begin_format(struct tb *t, int format, int filter)
{
	*t = (struct tb){ .a = archive_write_new(), .out = BUF_INIT };
	/* libarchive maps ARCHIVE_FORMAT_TAR to pax; we mean the old v7 format. */
	if ((format == ARCHIVE_FORMAT_TAR ? archive_write_set_format_v7tar(t->a)
					  : archive_write_set_format(t->a, format)) != ARCHIVE_OK ||
	    (filter != ARCHIVE_FILTER_NONE &&
	     archive_write_add_filter(t->a, filter) != ARCHIVE_OK) ||
	    archive_write_set_bytes_in_last_block(t->a, 1) != ARCHIVE_OK ||
	    archive_write_open2(t->a, t, NULL, tb_write, NULL, NULL) != ARCHIVE_OK)
		abort();
}

static void
tb_entry(struct tb *t, struct archive_entry *e, const void *data, size_t size)
{
	int r = archive_write_header(t->a, e);

	if (r != ARCHIVE_OK && r != ARCHIVE_WARN) {
		printf("# tb_entry '%s': %s\n", archive_entry_pathname(e),
		       archive_error_string(t->a));
		abort();
	}
	if (size > 0 && archive_write_data(t->a, data, size) != (la_ssize_t)size)
		abort();
	archive_entry_free(e);
}

static struct archive_entry *
entry(const char *path, mode_t type, mode_t perm, int64_t size)
{
	struct archive_entry *e = archive_entry_new();

	archive_entry_copy_pathname(e, path);
	archive_entry_set_filetype(e, type);
	archive_entry_set_perm(e, perm);
	archive_entry_set_size(e, size);
	return e;
}

static void
tb_file(struct tb *t, const char *path, mode_t perm, const char *data)
{
	size_t n = strlen(data);

	tb_entry(t, entry(path, AE_IFREG, perm, (int64_t)n), data, n);
}

static void
tb_dir(struct tb *t, const char *path)
{
	tb_entry(t, entry(path, AE_IFDIR, 0755, 0), NULL, 0);
}

static void
tb_symlink(struct tb *t, const char *path, const char *target)
{
	struct archive_entry *e = entry(path, AE_IFLNK, 0777, 0);

	archive_entry_copy_symlink(e, target);
	tb_entry(t, e, NULL, 0);
}

static void
tb_manifest_text(struct tb *t, const char *text)
{
	tb_file(t, SPK_MANIFEST_NAME, 0644, text);
}

static void
tb_manifest(struct tb *t)
{
	char text[512];

	(void)snprintf(text, sizeof(text), manifest_format, app_id);
	tb_manifest_text(t, text);
}

static void
tb_begin(struct tb *t)
{
	tb_begin_format(t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_manifest(t);
}

static void
tb_end(struct tb *t)
{
	if (archive_write_close(t->a) != ARCHIVE_OK)
		abort();
	(void)archive_write_free(t->a);
	t->a = NULL;
}

/* Compress a raw tar (built with ARCHIVE_FILTER_NONE and patched) in place. */
static void
zstd_in_place(struct buf *b)
{
	size_t cap = ZSTD_compressBound(b->len), n;
	char *out = malloc(cap);

	if (!out)
		abort();
	n = ZSTD_compress(out, cap, b->data, b->len, 3);
	if (ZSTD_isError(n))
		abort();
	buf_clear(b);
	if (buf_append(b, out, n) < 0)
		abort();
	free(out);
}

/* The 512-byte ustar header of the entry named name in a raw tar. */
static uint8_t *
find_header(struct buf *tar, const char *name)
{
	for (size_t off = 0; off + 512 <= tar->len; off += 512)
		if (strcmp(tar->data + off, name) == 0 &&
		    memcmp(tar->data + off + 257, "ustar", 5) == 0)
			return (uint8_t *)tar->data + off;
	abort();
}

/* Rewrite a ustar header's size field and its checksum. */
static void
patch_size(uint8_t *h, unsigned long long size)
{
	unsigned sum = 0;

	(void)snprintf((char *)h + 124, 12, "%011llo", size);
	memset(h + 148, ' ', 8);
	for (int i = 0; i < 512; i++)
		sum += h[i];
	(void)snprintf((char *)h + 148, 8, "%06o", sum);
}

/* ---- unpacking ------------------------------------------------------------------- */

static struct spk_error last_error;
static struct spk_unpack_stats last_stats;

/*
 * With SPK_FUZZ_CORPUS=DIR, every payload also goes to DIR as a seed for
 * fuzz-spk-unpack (mode byte 1: a payload the target signs itself).
 */
static void
dump_for_fuzzing(const struct buf *payload)
{
	const char *corpus = getenv("SPK_FUZZ_CORPUS");
	char path[512];
	int fd;

	if (!corpus || payload->len > 64 * 1024)
		return;
	(void)snprintf(path, sizeof(path), "%s/case-%03u", corpus, case_no);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, "\x01", 1) != 1 ||
	    write(fd, payload->data, payload->len) != (ssize_t)payload->len)
		abort();
	(void)close(fd);
}

/* Sign payload with the test key, open it, unpack it to dest in a new case. */
static int
unpack_limits(const struct buf *payload, const struct spk_limits *limits)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	new_case();
	memset(&last_error, 0, sizeof(last_error));
	memset(&last_stats, 0, sizeof(last_stats));
	fd = memfd_create("package", MFD_CLOEXEC);
	if (fd < 0 || spk_write_signed(fd, &test_key, payload->data, payload->len) < 0)
		abort();
	dump_for_fuzzing(payload);
	/* The signature is good: whatever follows is up to the unpacker. */
	r = spk_package_open_fd(fd, limits, NULL, NULL, &p, &last_error);
	if (!CHECK_OK(r)) {
		printf("# open: %s\n", last_error.message);
		return r;
	}
	r = spk_package_unpack(p, dest, 0, NULL, NULL, NULL, &last_stats, &last_error);
	if (r < 0)
		printf("# refused: %s\n", last_error.message);
	return r;
}

static int
unpack(const struct buf *payload)
{
	return unpack_limits(payload, NULL);
}

/* Finish t, unpack, expect -error with message containing what, and nothing left. */
static void
expect_refused(struct tb *t, int error, const char *what)
{
	if (t->a)
		tb_end(t);
	CHECK_ERR(unpack(&t->out), error);
	if (!CHECK(strstr(last_error.message, what)))
		printf("#   message '%s' lacks '%s'\n", last_error.message, what);
	nothing_left();
	buf_release(&t->out);
}

static bool
file_is(const char *rel, const char *content, mode_t mode)
{
	char path[600], data[256] = {};
	struct stat st;
	int fd;
	ssize_t n;
	bool ok = true;

	(void)snprintf(path, sizeof(path), "%s/%s", dest, rel);
	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (!CHECK(fd >= 0))
		return false;
	n = read(fd, data, sizeof(data) - 1);
	ok &= CHECK(fstat(fd, &st) == 0);
	(void)close(fd);
	ok &= CHECK(n >= 0);
	ok &= CHECK_STR_EQ(data, content);
	ok &= CHECK_UINT_EQ(st.st_mode & 07777, mode);
	return ok;
}

/* ---- the positive control ----------------------------------------------------------- */

TEST(control_well_formed_archive_unpacks)
{
	struct tb t;
	char path[600], target[64] = {};
	struct stat st;

	tb_begin(&t);
	tb_dir(&t, "app");
	tb_symlink(&t, "app/link", "/etc/passwd");
	tb_file(&t, "app/run", 0755, "#!/bin/sh\n");
	tb_dir(&t, "app/sub");
	tb_file(&t, "app/sub/data", 0644, "data");
	tb_dir(&t, "app-2");
	tb_file(&t, "caf\xc3\xa9", 0644, "utf-8 name");
	tb_end(&t);
	CHECK_OK(unpack(&t.out));
	CHECK_UINT_EQ(last_stats.entries, 8);
	CHECK_UINT_EQ(last_stats.files, 4);
	CHECK_UINT_EQ(last_stats.directories, 3);
	CHECK_UINT_EQ(last_stats.symlinks, 1);
	file_is("app/run", "#!/bin/sh\n", 0755);
	file_is("app/sub/data", "data", 0644);
	file_is("caf\xc3\xa9", "utf-8 name", 0644);
	(void)snprintf(path, sizeof(path), "%s/app/link", dest);
	CHECK(readlink(path, target, sizeof(target) - 1) == 11);
	CHECK_STR_EQ(target, "/etc/passwd");
	CHECK(stat(dest, &st) == 0 && (st.st_mode & 07777) == 0755);
	/* Only dest beside the canary: the temporary directory was renamed, not copied. */
	CHECK_INT_EQ(count_entries(case_dir), 2);
	CHECK_INT_EQ(count_entries(outside), 0);
	buf_release(&t.out);
}

/* ---- names that escape -------------------------------------------------------------- */

TEST(dot_dot_evil)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "../evil", 0644, "x");
	expect_refused(&t, EBADMSG, "'..'");
}

TEST(dot_dot_inside_path)
{
	struct tb t;

	tb_begin(&t);
	tb_dir(&t, "a");
	tb_file(&t, "a/../../evil", 0644, "x");
	expect_refused(&t, EBADMSG, "'..'");
}

TEST(absolute_path)
{
	struct tb t;
	char path[400];

	/* The next case directory's canary: where an absolute name would land. */
	(void)snprintf(path, sizeof(path), "%s/%u/outside/evil", root, case_no + 1);
	tb_begin(&t);
	tb_file(&t, path, 0644, "x");
	expect_refused(&t, EBADMSG, "absolute");
}

TEST(symlink_to_outside_then_write_through_it)
{
	struct tb t;
	char target[400];

	/* l → the canary (standing in for /etc), then l/passwd. */
	(void)snprintf(target, sizeof(target), "%s/%u/outside", root, case_no + 1);
	tb_begin(&t);
	tb_symlink(&t, "l", target);
	tb_file(&t, "l/passwd", 0644, "root::0:0::/:/bin/sh\n");
	expect_refused(&t, EBADMSG, "parent is not a directory");
}

TEST(symlink_up_then_write_through_it)
{
	struct tb t;

	tb_begin(&t);
	tb_symlink(&t, "l", "../../..");
	tb_file(&t, "l/x", 0644, "x");
	expect_refused(&t, EBADMSG, "parent is not a directory");
}

TEST(symlink_dir_deep_then_write_through_it)
{
	struct tb t;

	tb_begin(&t);
	tb_dir(&t, "a");
	tb_symlink(&t, "a/l", "../../outside");
	tb_dir(&t, "a/l/sub");
	expect_refused(&t, EBADMSG, "parent is not a directory");
}

TEST(file_as_parent)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "f", 0644, "x");
	tb_file(&t, "f/x", 0644, "x");
	expect_refused(&t, EBADMSG, "parent is not a directory");
}

TEST(missing_parent_directory)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "no/such/dir", 0644, "x");
	expect_refused(&t, EBADMSG, "parent is not a directory");
}

/* ---- links ------------------------------------------------------------------------------ */

TEST(hardlink)
{
	struct tb t;
	struct archive_entry *e;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	e = entry("b", AE_IFREG, 0644, 0);
	archive_entry_copy_hardlink(e, "a");
	tb_entry(&t, e, NULL, 0);
	expect_refused(&t, EBADMSG, "hardlink");
}

TEST(hardlink_to_host_file)
{
	struct tb t;
	struct archive_entry *e;

	tb_begin(&t);
	e = entry("passwd", AE_IFREG, 0644, 0);
	archive_entry_copy_hardlink(e, "/etc/passwd");
	tb_entry(&t, e, NULL, 0);
	expect_refused(&t, EBADMSG, "hardlink");
}

TEST(cve_2016_5418_symlink_then_hardlink_with_data)
{
	struct tb t;
	char target[400];
	uint8_t *h;

	/*
	 * A symlink to the canary, then a hardlink through it that carries data
	 * (libarchive will not write data on a hardlink: patch a raw tar).
	 */
	(void)snprintf(target, sizeof(target), "%s/%u/outside", root, case_no + 1);
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_symlink(&t, "l", target);
	tb_file(&t, "m", 0644, "pwned\n");
	tb_end(&t);
	h = find_header(&t.out, "m");
	h[156] = '1';
	(void)snprintf((char *)h + 157, 100, "l/pwned");
	patch_size(h, 6);
	zstd_in_place(&t.out);
	expect_refused(&t, EBADMSG, "hardlink");
}

/* ---- duplicates and order ----------------------------------------------------------------- */

TEST(duplicate_file)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "first");
	tb_file(&t, "a", 0644, "second");
	expect_refused(&t, EBADMSG, "appears twice");
}

TEST(duplicate_directory)
{
	struct tb t;

	tb_begin(&t);
	tb_dir(&t, "d");
	tb_dir(&t, "d");
	expect_refused(&t, EBADMSG, "appears twice");
}

TEST(file_then_directory_of_the_same_name)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_dir(&t, "a");
	expect_refused(&t, EBADMSG, "appears twice");
}

TEST(symlink_replacing_a_directory)
{
	struct tb t;

	tb_begin(&t);
	tb_dir(&t, "d");
	tb_symlink(&t, "d", "/");
	expect_refused(&t, EBADMSG, "appears twice");
}

TEST(duplicate_far_apart_is_caught_by_order)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_file(&t, "b", 0644, "x");
	tb_file(&t, "a", 0644, "again");
	expect_refused(&t, EBADMSG, "tree order");
}

TEST(manifest_twice)
{
	struct tb t;

	tb_begin(&t);
	tb_manifest(&t);
	expect_refused(&t, EBADMSG, "appears twice");
}

/* ---- entry types ---------------------------------------------------------------------------- */

static void
special(mode_t type, const char *what)
{
	struct tb t;
	struct archive_entry *e;

	tb_begin(&t);
	e = entry("node", type, 0666, 0);
	archive_entry_set_rdev(e, makedev(1, 3));
	tb_entry(&t, e, NULL, 0);
	expect_refused(&t, EBADMSG, what);
}

TEST(character_device)
{
	special(AE_IFCHR, "character device");
}

TEST(block_device)
{
	special(AE_IFBLK, "block device");
}

TEST(fifo)
{
	special(AE_IFIFO, "FIFO");
}

/* A ustar header written by hand, for what libarchive's writer will not make. */
static void
raw_entry(struct buf *b, const char *name, char type, const char *data, size_t size)
{
	uint8_t h[512] = {}, pad[512] = {};

	(void)snprintf((char *)h, 100, "%s", name);
	(void)snprintf((char *)h + 100, 8, "0000644");
	(void)snprintf((char *)h + 108, 8, "0000000");
	(void)snprintf((char *)h + 116, 8, "0000000");
	(void)snprintf((char *)h + 136, 12, "00000000000");
	h[156] = (uint8_t)type;
	memcpy(h + 257,
	       "ustar\0"
	       "00",
	       8);
	patch_size(h, size);
	if (buf_append(b, h, sizeof(h)) < 0 || buf_append(b, data, size) < 0 ||
	    buf_append(b, pad, (512 - size % 512) % 512) < 0)
		abort();
}

TEST(socket)
{
	struct tb t;
	struct archive_entry *e;
	static const char record[] = "26 SCHILY.filetype=socket\n";
	char path[600];
	struct stat st;

	/* cpio can hold a socket; cpio is refused as a whole. */
	tb_begin_format(&t, ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_ZSTD);
	tb_manifest(&t);
	e = entry("socket", AE_IFSOCK, 0777, 0);
	tb_entry(&t, e, NULL, 0);
	expect_refused(&t, EBADMSG, "");

	/*
	 * tar has no socket type; pax can say SCHILY.filetype=socket, which
	 * libarchive reads as a plain file. Whatever the tag, no socket is made.
	 */
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	(void)archive_write_close(t.a);
	(void)archive_write_free(t.a);
	t.a = NULL;
	t.out.len -= 1024; /* drop the end-of-archive blocks */
	raw_entry(&t.out, "PaxHeader/socket", 'x', record, strlen(record));
	raw_entry(&t.out, "socket", '0', "", 0);
	(void)buf_append(&t.out, (char[1024]){}, 1024);
	zstd_in_place(&t.out);
	CHECK_OK(unpack(&t.out));
	(void)snprintf(path, sizeof(path), "%s/socket", dest);
	CHECK(lstat(path, &st) == 0 && S_ISREG(st.st_mode));
	buf_release(&t.out);
}

/* ---- what is not applied ---------------------------------------------------------------------- */

TEST(xattrs_acls_owners_and_flags_are_not_applied)
{
	static const uint8_t capability[20] = { 0x01, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xff };
	struct tb t;
	struct archive_entry *e;
	char path[600], list[256];
	struct stat st;
	int fd;

	tb_begin(&t);
	e = entry("f", AE_IFREG, 0644, 1);
	archive_entry_xattr_add_entry(e, "user.granary", "v", 1);
	archive_entry_xattr_add_entry(e, "trusted.granary", "v", 1);
	/* File capabilities: every capability, effective. */
	archive_entry_xattr_add_entry(e, "security.capability", capability, sizeof(capability));
	archive_entry_acl_add_entry(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS,
				    ARCHIVE_ENTRY_ACL_READ | ARCHIVE_ENTRY_ACL_WRITE,
				    ARCHIVE_ENTRY_ACL_USER, 1234, "someone");
	archive_entry_acl_add_entry(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_READ,
				    ARCHIVE_ENTRY_ACL_USER_OBJ, 0, NULL);
	archive_entry_acl_add_entry(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_READ,
				    ARCHIVE_ENTRY_ACL_GROUP_OBJ, 0, NULL);
	archive_entry_acl_add_entry(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_READ,
				    ARCHIVE_ENTRY_ACL_MASK, 0, NULL);
	archive_entry_acl_add_entry(e, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, ARCHIVE_ENTRY_ACL_READ,
				    ARCHIVE_ENTRY_ACL_OTHER, 0, NULL);
	(void)archive_entry_copy_fflags_text(e, "immutable,append,nodump");
	archive_entry_set_uid(e, 1234);
	archive_entry_set_gid(e, 1234);
	archive_entry_set_mtime(e, 12345, 0);
	tb_entry(&t, e, "x", 1);
	tb_end(&t);
	CHECK_OK(unpack(&t.out));
	(void)snprintf(path, sizeof(path), "%s/f", dest);
	CHECK_INT_EQ(llistxattr(path, list, sizeof(list)), 0);
	CHECK(lstat(path, &st) == 0);
	CHECK_UINT_EQ(st.st_uid, geteuid());
	CHECK_UINT_EQ(st.st_gid, getegid());
	CHECK(st.st_mtime != 12345);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (CHECK(fd >= 0)) {
		int flags = 0;

		/* Not every file system has inode flags; where it does, none is set. */
		if (ioctl(fd, FS_IOC_GETFLAGS, &flags) == 0)
			CHECK_INT_EQ(flags & (FS_IMMUTABLE_FL | FS_APPEND_FL | FS_NODUMP_FL), 0);
		(void)close(fd);
	}
	buf_release(&t.out);
}

TEST(modes_are_masked)
{
	struct tb t;
	char path[600];
	struct stat st;

	tb_begin(&t);
	tb_file(&t, "all", 07777, "x");
	tb_file(&t, "group-exec-only", 0610, "x");
	tb_file(&t, "none", 0000, "x");
	tb_file(&t, "setgid", 02755, "x");
	tb_file(&t, "setuid", 04755, "x");
	tb_entry(&t, entry("sticky", AE_IFDIR, 01777, 0), NULL, 0);
	tb_entry(&t, entry("sticky/private", AE_IFDIR, 0700, 0), NULL, 0);
	tb_file(&t, "world-writable", 0666, "x");
	tb_end(&t);
	CHECK_OK(unpack(&t.out));
	file_is("setuid", "x", 0755);
	file_is("setgid", "x", 0755);
	file_is("world-writable", "x", 0644);
	file_is("all", "x", 0755);
	file_is("group-exec-only", "x", 0755);
	file_is("none", "x", 0644);
	(void)snprintf(path, sizeof(path), "%s/sticky", dest);
	CHECK(lstat(path, &st) == 0 && (st.st_mode & 07777) == 0755);
	(void)snprintf(path, sizeof(path), "%s/sticky/private", dest);
	CHECK(lstat(path, &st) == 0 && (st.st_mode & 07777) == 0755);
	buf_release(&t.out);
}

/* ---- budgets ------------------------------------------------------------------------------------ */

/* Archive of n files of size bytes of zeros: a few KiB compressed. */
static void
zeros_archive(struct tb *t, unsigned n, size_t size)
{
	static char zeros[1 << 20];

	tb_begin(t);
	for (unsigned i = 0; i < n; i++) {
		char name[32];
		struct archive_entry *e;

		(void)snprintf(name, sizeof(name), "zero-%u", i);
		e = entry(name, AE_IFREG, 0644, (int64_t)size);
		if (archive_write_header(t->a, e) != ARCHIVE_OK)
			abort();
		for (size_t done = 0; done < size; done += sizeof(zeros))
			if (archive_write_data(t->a, zeros, MIN(sizeof(zeros), size - done)) < 0)
				abort();
		archive_entry_free(e);
	}
	tb_end(t);
}

TEST(decompression_bomb_stops_at_the_byte_budget)
{
	struct spk_limits limits = { .max_bytes = 8 << 20 };
	struct tb t;

	zeros_archive(&t, 6, 3 << 20);
	CHECK(t.out.len < 64 * 1024);
	CHECK_ERR(unpack_limits(&t.out, &limits), E2BIG);
	CHECK(strstr(last_error.message, "budget"));
	nothing_left();
	buf_release(&t.out);
}

TEST(decompression_bomb_peak_disk_within_budget_plus_1mib)
{
	struct spk_limits limits = { .max_bytes = 8 << 20 };
	char mount_point[300], options[64];
	struct tb t;
	pid_t pid;
	int status;

	/*
	 * Unpack onto a tmpfs of budget + 1 MiB in our private mount namespace: had
	 * the unpacker written past its budget (+ 1 MiB for directories and the
	 * manifest), the failure would be ENOSPC from tmpfs, not our E2BIG.
	 */
	zeros_archive(&t, 6, 3 << 20);
	new_case();
	(void)snprintf(mount_point, sizeof(mount_point), "%s/tmpfs", case_dir);
	(void)snprintf(options, sizeof(options), "size=%llu",
		       (unsigned long long)limits.max_bytes + (1 << 20));
	if (mkdir(mount_point, 0755) < 0)
		abort();
	pid = fork();
	if (pid == 0) {
		_cleanup_(spk_package_freep) struct spk_package *p = NULL;
		char target[400];
		int fd, r;

		if (!on_tmpfs || unshare(CLONE_NEWNS) < 0 ||
		    mount("tmpfs", mount_point, "tmpfs", 0, options) < 0)
			_exit(100);
		fd = memfd_create("package", MFD_CLOEXEC);
		if (fd < 0 || spk_write_signed(fd, &test_key, t.out.data, t.out.len) < 0 ||
		    spk_package_open_fd(fd, &limits, NULL, NULL, &p, NULL) < 0)
			_exit(101);
		(void)snprintf(target, sizeof(target), "%s/dest", mount_point);
		r = spk_package_unpack(p, target, 0, NULL, NULL, NULL, NULL, NULL);
		/* The tmpfs is empty again: the temporary directory was removed. */
		_exit(r == -E2BIG && count_entries(mount_point) == 0 ? 0
		      : r == -ENOSPC				     ? 102
								     : 103);
	}
	CHECK(pid > 0 && waitpid(pid, &status, 0) == pid);
	buf_release(&t.out);
	if (WIFEXITED(status) && WEXITSTATUS(status) == 100)
		SKIP("cannot mount a tmpfs in a new mount namespace (needs root)");
	CHECK(WIFEXITED(status));
	CHECK_INT_EQ(WEXITSTATUS(status), 0);
}

TEST(default_budget_refuses_a_2gib_file_at_its_header)
{
	struct tb t;

	/* A tiny archive whose header claims 2 GiB + 1: refused before any data. */
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_file(&t, "big", 0644, "0123456789");
	tb_end(&t);
	patch_size(find_header(&t.out, "big"), (2ULL << 30) + 1);
	zstd_in_place(&t.out);
	expect_refused(&t, E2BIG, "budget of 2147483648 bytes");
}

TEST(header_that_lies_bigger_than_its_data)
{
	struct tb t;
	uint8_t *h;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_file(&t, "a", 0644, "0123456789");
	tb_end(&t);
	h = find_header(&t.out, "a");
	patch_size(h, 100000);
	/* The stream ends right after the 10 real bytes' block. */
	t.out.len = (size_t)(h - (uint8_t *)t.out.data) + 1024;
	zstd_in_place(&t.out);
	expect_refused(&t, EBADMSG, "");
}

TEST(header_that_lies_smaller_than_its_data)
{
	struct tb t;
	char data[2000];

	memset(data, 'A', sizeof(data) - 1);
	data[sizeof(data) - 1] = '\0';
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_file(&t, "a", 0644, data);
	tb_end(&t);
	/* The rest of the data is then read as headers: garbage. */
	patch_size(find_header(&t.out, "a"), 10);
	zstd_in_place(&t.out);
	expect_refused(&t, EBADMSG, "");
}

TEST(many_empty_files_hit_the_entry_limit)
{
	struct tb t;

	if (!on_tmpfs)
		SKIP("100000 files are too slow to create on disk; needs root for a tmpfs");

	/*
	 * 200k empty files: the archive streams through the zstd filter (small in
	 * memory); the unpacker stops at the default 100000 entries.
	 */
	tb_begin(&t);
	tb_dir(&t, "d");
	for (unsigned i = 0; i < 200000; i++) {
		char name[32];

		(void)snprintf(name, sizeof(name), "d/%06u", i);
		tb_entry(&t, entry(name, AE_IFREG, 0644, 0), NULL, 0);
	}
	expect_refused(&t, E2BIG, "more than 100000 entries");
}

/* ---- names -------------------------------------------------------------------------------------- */

static void
deep(unsigned depth, size_t component, int error, const char *what)
{
	struct tb t;
	char *path = calloc(1, depth * (component + 1) + 1);
	size_t len = 0;

	if (!path)
		abort();
	tb_begin(&t);
	for (unsigned i = 0; i < depth; i++) {
		if (i > 0)
			path[len++] = '/';
		memset(path + len, 'a' + (char)(i % 26), component);
		len += component;
		path[len] = '\0';
		tb_dir(&t, path);
	}
	free(path);
	if (error) {
		expect_refused(&t, error, what);
		return;
	}
	tb_end(&t);
	CHECK_OK(unpack(&t.out));
	buf_release(&t.out);
}

TEST(depth_2000)
{
	/* Refused at depth 65, long before the path passes 1024 bytes. */
	deep(2000, 1, E2BIG, "more than 64 levels deep");
}

TEST(depth_65_is_too_deep_64_is_not)
{
	deep(65, 1, E2BIG, "levels deep");
	deep(64, 1, 0, NULL);
}

TEST(name_of_300_bytes)
{
	deep(1, 300, ENAMETOOLONG, "a name of 300 bytes");
	deep(1, 255, 0, NULL);
}

TEST(path_of_8kib)
{
	deep(40, 200, ENAMETOOLONG, "path of");
}

TEST(symlink_target_of_8kib)
{
	struct tb t;
	char target[8193];

	memset(target, 'x', sizeof(target) - 1);
	target[sizeof(target) - 1] = '\0';
	tb_begin(&t);
	tb_symlink(&t, "l", target);
	expect_refused(&t, ENAMETOOLONG, "symlink target");
}

static void
bad_name(const char *name, const char *what)
{
	struct tb t;

	/* ustar: the name's bytes go in as they are, no conversion on the way. */
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_ZSTD);
	tb_manifest(&t);
	tb_file(&t, name, 0644, "x");
	expect_refused(&t, EBADMSG, what);
}

TEST(invalid_utf8_names)
{
	bad_name("bad\xff", "UTF-8");
	bad_name("overlong-\xc0\xaf", "UTF-8");
	bad_name("surrogate-\xed\xa0\x80", "UTF-8");
	bad_name("truncated-\xe2\x82", "UTF-8");
}

TEST(invalid_utf8_name_in_pax_header)
{
	struct tb t;

	/* pax marks a name it cannot convert hdrcharset=BINARY; still refused. */
	tb_begin(&t);
	tb_file(&t, "bin\xfe\xff", 0644, "x");
	expect_refused(&t, EBADMSG, "");
}

TEST(control_characters_in_names)
{
	bad_name("new\nline", "control characters");
	bad_name("tab\there", "control characters");
	bad_name("esc\x1b[2J", "control characters");
	bad_name("del\x7f", "control characters");
}

TEST(empty_and_dot_names)
{
	bad_name(".", "'.'");
	bad_name("./a", "'.'");
	bad_name("a//b", "empty path component");
	bad_name("a/", ""); /* old tar: a file "a/" is a directory, here one with data */
}

TEST(empty_name)
{
	struct tb t;
	uint8_t *h;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_USTAR, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_file(&t, "e", 0644, "x");
	tb_end(&t);
	h = find_header(&t.out, "e");
	h[0] = '\0';
	patch_size(h, 1);
	zstd_in_place(&t.out);
	expect_refused(&t, EBADMSG, "");
}

/* ---- sparse files and other formats -------------------------------------------------------------- */

TEST(sparse_entry)
{
	struct tb t;
	struct archive_entry *e;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE, ARCHIVE_FILTER_ZSTD);
	tb_manifest(&t);
	e = entry("sparse", AE_IFREG, 0644, 1 << 20);
	archive_entry_sparse_add_entry(e, 0, 4);
	archive_entry_sparse_add_entry(e, (1 << 20) - 4, 4);
	tb_entry(&t, e, "datadata", 8);
	expect_refused(&t, EBADMSG, "sparse");
}

static void
other_format(int format, int filter, const char *what)
{
	struct tb t;

	tb_begin_format(&t, format, filter);
	tb_manifest(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	expect_refused(&t, EBADMSG, what);
}

TEST(other_archive_formats)
{
	other_format(ARCHIVE_FORMAT_TAR_GNUTAR, ARCHIVE_FILTER_ZSTD, "not a pax tar");
	other_format(ARCHIVE_FORMAT_TAR, ARCHIVE_FILTER_ZSTD, "not a pax tar");
	other_format(ARCHIVE_FORMAT_CPIO_SVR4_NOCRC, ARCHIVE_FILTER_ZSTD, "");
	other_format(ARCHIVE_FORMAT_ZIP, ARCHIVE_FILTER_ZSTD, "");
	other_format(ARCHIVE_FORMAT_7ZIP, ARCHIVE_FILTER_ZSTD, "");
	other_format(ARCHIVE_FORMAT_XAR, ARCHIVE_FILTER_ZSTD, "");
}

TEST(other_compressions)
{
	/* Uncompressed, gzip and xz tars are not zstd frames. */
	other_format(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE, "zstd");
	other_format(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP, "zstd");
	other_format(ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_XZ, "zstd");
}

TEST(gzip_inside_zstd)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_GZIP);
	tb_manifest(&t);
	tb_end(&t);
	zstd_in_place(&t.out);
	expect_refused(&t, EBADMSG, "");
}

TEST(trailing_garbage_after_the_zstd_frame)
{
	struct tb t;

	/* The tar ends before the garbage; the payload must still be zstd to its end. */
	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	(void)buf_append(&t.out, "garbage!", 8);
	expect_refused(&t, EBADMSG, "after the end of the archive: damaged payload: zstd");
}

TEST(second_frame_after_the_archive_is_allowed)
{
	struct tb t, second;

	/* A valid frame of zeros after the tar (padding, as some writers add) is fine. */
	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	second.out = (struct buf)BUF_INIT;
	(void)buf_append(&second.out, (char[4096]){}, 4096);
	zstd_in_place(&second.out);
	(void)buf_append(&t.out, second.out.data, second.out.len);
	buf_release(&second.out);
	CHECK_OK(unpack(&t.out));
	buf_release(&t.out);
}

TEST(truncated_zstd_frame)
{
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	t.out.len -= 8;
	expect_refused(&t, EBADMSG, "");
}

TEST(zstd_window_over_8mib)
{
	struct tb t;
	ZSTD_CCtx *c = ZSTD_createCCtx();
	size_t cap, n;
	char *out;

	/* A frame that asks for a 128 MiB window: refused, not allocated. */
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_NONE);
	tb_manifest(&t);
	tb_end(&t);
	if (!c || ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_windowLog, 27)) ||
	    ZSTD_isError(ZSTD_CCtx_setParameter(c, ZSTD_c_contentSizeFlag, 0)))
		abort();
	cap = ZSTD_compressBound(t.out.len) + 1024;
	out = malloc(cap);
	if (!out)
		abort();
	/* Streamed, so the frame header cannot shrink the window to the input's size. */
	{
		ZSTD_inBuffer in = { t.out.data, t.out.len, 0 };
		ZSTD_outBuffer o = { out, cap, 0 };

		if (ZSTD_isError(ZSTD_compressStream2(c, &o, &in, ZSTD_e_continue)) ||
		    ZSTD_isError(n = ZSTD_compressStream2(c, &o, &in, ZSTD_e_end)) || n != 0)
			abort();
		n = o.pos;
	}
	buf_clear(&t.out);
	(void)buf_append(&t.out, out, n);
	free(out);
	ZSTD_freeCCtx(c);
	expect_refused(&t, EBADMSG, "zstd");
}

/* ---- the manifest ---------------------------------------------------------------------------------- */

TEST(no_manifest)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_file(&t, "a", 0644, "x");
	expect_refused(&t, EBADMSG, "first entry");
}

TEST(empty_archive)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	expect_refused(&t, EBADMSG, "no manifest");
}

TEST(manifest_not_first)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_dir(&t, "a");
	tb_manifest(&t);
	expect_refused(&t, EBADMSG, "first entry");
}

TEST(manifest_of_another_app)
{
	struct tb t;
	struct spk_key other;
	char other_id[SPK_APP_ID_LEN + 1], text[512];

	/* Signed by our key, claiming another key's app id. */
	CHECK_OK(spk_key_generate(&other));
	spk_app_id_from_key(other.public_key, other_id);
	(void)snprintf(text, sizeof(text), manifest_format, other_id);
	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_manifest_text(&t, text);
	expect_refused(&t, EBADMSG, "not the app id of the signing key");
}

TEST(invalid_manifest)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_manifest_text(&t, "{\"app\":{\"title\":\"x\",\"version\":1},"
			     "\"run\":{\"command\":[\"/a\"],\"httpPort\":1}}");
	expect_refused(&t, EBADMSG, "app.id: required field is missing");
}

TEST(manifest_as_a_symlink)
{
	struct tb t;

	tb_begin_format(&t, ARCHIVE_FORMAT_TAR_PAX_RESTRICTED, ARCHIVE_FILTER_ZSTD);
	tb_symlink(&t, SPK_MANIFEST_NAME, "/etc/passwd");
	expect_refused(&t, EBADMSG, "first entry");
}

/* ---- the destination ---------------------------------------------------------------------------------- */

TEST(existing_destination_is_refused_and_kept)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct spk_error err = {};
	struct tb t;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	new_case();
	CHECK(mkdir(dest, 0755) == 0);
	fd = memfd_create("package", MFD_CLOEXEC);
	CHECK_OK(spk_write_signed(fd, &test_key, t.out.data, t.out.len));
	CHECK_OK(spk_package_open_fd(fd, NULL, NULL, NULL, &p, &err));
	CHECK_ERR(spk_package_unpack(p, dest, 0, NULL, NULL, NULL, NULL, &err), EEXIST);
	CHECK_INT_EQ(count_entries(dest), 0);
	CHECK_INT_EQ(count_entries(case_dir), 2);
	buf_release(&t.out);
}

TEST(package_rewritten_after_verification)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct spk_error err = {};
	struct tb t;
	uint8_t last;
	struct stat st;

	tb_begin(&t);
	tb_file(&t, "a", 0644, "x");
	tb_end(&t);
	new_case();
	fd = memfd_create("package", MFD_CLOEXEC);
	CHECK_OK(spk_write_signed(fd, &test_key, t.out.data, t.out.len));
	CHECK_OK(spk_package_open_fd(fd, NULL, NULL, NULL, &p, &err));
	/* Same size, one byte different, after the signature was checked. */
	CHECK(fstat(fd, &st) == 0);
	CHECK(pread(fd, &last, 1, st.st_size - 1) == 1);
	last ^= 0x01;
	CHECK(pwrite(fd, &last, 1, st.st_size - 1) == 1);
	CHECK_ERR(spk_package_unpack(p, dest, 0, NULL, NULL, NULL, NULL, &err), EBADMSG);
	if (!CHECK(strstr(err.message, "changed")))
		printf("# message: %s\n", err.message);
	nothing_left();
	buf_release(&t.out);
}

TEST(dry_run_writes_nothing)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct spk_unpack_stats stats;
	struct spk_error err = {};
	struct tb t;

	tb_begin(&t);
	tb_dir(&t, "a");
	tb_file(&t, "a/b", 0644, "hello");
	tb_end(&t);
	new_case();
	fd = memfd_create("package", MFD_CLOEXEC);
	CHECK_OK(spk_write_signed(fd, &test_key, t.out.data, t.out.len));
	CHECK_OK(spk_package_open_fd(fd, NULL, NULL, NULL, &p, &err));
	CHECK_OK(spk_package_unpack(p, NULL, SPK_UNPACK_DRY_RUN, NULL, NULL, &m, &stats, &err));
	CHECK_STR_EQ(m->app_id, app_id);
	CHECK_UINT_EQ(stats.entries, 3);
	{
		char text[512];
		int n = snprintf(text, sizeof(text), manifest_format, app_id);

		CHECK_UINT_EQ(stats.bytes, 5 + (uint64_t)n);
	}
	CHECK_INT_EQ(count_entries(case_dir), 1);
	/* And the same package unpacks for real afterwards: the handle is reusable. */
	CHECK_OK(spk_package_unpack(p, dest, SPK_UNPACK_SYNC, NULL, NULL, NULL, NULL, &err));
	file_is("a/b", "hello", 0644);
	buf_release(&t.out);
}
