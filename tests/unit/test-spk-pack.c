/* SPDX-License-Identifier: MIT */
/*
 * test-spk-pack.c: spk_pack() from a definition and real files: round trip
 * through unpack, reproducibility (the same inputs give the same bytes
 * whatever the mtimes, owners, permission bits beyond execute and creation
 * order), sources from host paths, file lists, and the errors a packager
 * meets.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/token.h"
#include "common/dir.h"
#include "spk/spk-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static char root[] = "/tmp/test-spk-pack-XXXXXX";
static struct spk_key key;
static char app_id[SPK_APP_ID_LEN + 1];
static unsigned counter;

__attribute__((constructor)) static void
setup(void)
{
	uint8_t seed[SPK_SEED_BYTES];

	memset(seed, 0x17, sizeof(seed));
	if (!mkdtemp(root) || spk_key_from_seed(seed, &key) < 0)
		abort();
	spk_app_id_from_key(key.public_key, app_id);
}

__attribute__((destructor)) static void
teardown(void)
{
	(void)remove_tree_at(AT_FDCWD, root, 20);
}

/* root/<n>/<name>: a new path for this test. */
static char *
fresh(const char *name)
{
	char *p;

	if (asprintf(&p, "%s/%u-%s", root, ++counter, name) < 0)
		abort();
	return p;
}

static char *
path_in(const char *dir, const char *rel)
{
	char *p;

	if (asprintf(&p, "%s/%s", dir, rel) < 0)
		abort();
	return p;
}

static void
put(const char *dir, const char *rel, const char *content, mode_t mode)
{
	_cleanup_free_ char *p = path_in(dir, rel);
	int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, content, strlen(content)) != (ssize_t)strlen(content) ||
	    fchmod(fd, mode) < 0)
		abort();
	(void)close(fd);
}

static void
dir(const char *base, const char *rel)
{
	_cleanup_free_ char *p = rel ? path_in(base, rel) : strdup(base);

	if (mkdir(p, 0755) < 0 && errno != EEXIST)
		abort();
}

static void
link_to(const char *base, const char *rel, const char *target)
{
	_cleanup_free_ char *p = path_in(base, rel);

	if (symlink(target, p) < 0)
		abort();
}

/* Parse a definition whose "files" part is files (NULL: none). */
static struct spk_manifest *
definition(const char *files)
{
	_cleanup_free_ char *text = NULL;
	struct spk_manifest *m = NULL;
	struct spk_error err;

	if (asprintf(&text,
		     "{\"app\":{\"id\":\"%s\",\"title\":\"Test\",\"version\":1},"
		     "\"run\":{\"command\":[\"/app/run\"],\"httpPort\":8000}%s%s}",
		     app_id, files ? ",\"files\":" : "", files ? files : "") < 0)
		abort();
	if (spk_manifest_parse(text, strlen(text), SPK_MANIFEST_DEFINITION, &m, &err) < 0) {
		printf("# definition: %s\n", err.message);
		abort();
	}
	return m;
}

static unsigned warnings;

static void
count_warning(const char *message, void *userdata)
{
	(void)userdata;
	printf("# warning: %s\n", message);
	warnings++;
}

static struct spk_error pack_error;
static struct spk_pack_stats pack_stats;

static int
pack(const struct spk_manifest *def, const char *base, const char *out)
{
	struct spk_pack_options options = { .warning = count_warning };

	memset(&pack_error, 0, sizeof(pack_error));
	return spk_pack(def, base, &key, out, &options, &pack_stats, &pack_error);
}

static void
read_all(const char *path, struct buf *ret)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	char chunk[65536];
	ssize_t n;

	buf_clear(ret);
	if (fd < 0)
		abort();
	while ((n = read(fd, chunk, sizeof(chunk))) > 0)
		if (buf_append(ret, chunk, (size_t)n) < 0)
			abort();
	(void)close(fd);
}

static bool
same_file(const char *a, const char *b)
{
	_cleanup_(buf_release) struct buf x = BUF_INIT, y = BUF_INIT;

	read_all(a, &x);
	read_all(b, &y);
	return x.len == y.len && memcmp(x.data ? x.data : "", y.data ? y.data : "", x.len) == 0;
}

static int
unpack(const char *package, const char *dest, struct spk_unpack_stats *stats)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	struct spk_error err = {};
	int r;

	r = spk_package_open(package, NULL, NULL, NULL, &p, &err);
	if (r >= 0)
		r = spk_package_unpack(p, dest, 0, NULL, NULL, NULL, stats, &err);
	if (r < 0)
		printf("# unpack: %s\n", err.message);
	return r;
}

/* The tree the round-trip and reproducibility tests pack. */
static void
make_tree(const char *base, bool reverse)
{
	static char big[1 << 20];
	_cleanup_free_ char *big_path = path_in(base, "app/data/big");
	int fd;

	if (!big[0])
		for (size_t i = 0; i < sizeof(big); i++)
			big[i] = (char)('a' + (i * 7919) % 26);
	dir(base, NULL);
	dir(base, "app");
	if (reverse) {
		dir(base, "app/empty-dir");
		dir(base, "app/data");
		link_to(base, "app/link", "data/a.txt");
		put(base, "app/data/caf\xc3\xa9", "utf-8", 0644);
		put(base, "app/data/empty", "", 0644);
		put(base, "app/data/a.txt", "hello\n", 0644);
		put(base, "app/.htaccess", "deny\n", 0644);
		put(base, "app/run", "#!/bin/sh\necho hi\n", 0755);
	} else {
		put(base, "app/run", "#!/bin/sh\necho hi\n", 0755);
		put(base, "app/.htaccess", "deny\n", 0644);
		dir(base, "app/data");
		put(base, "app/data/a.txt", "hello\n", 0644);
		put(base, "app/data/empty", "", 0644);
		put(base, "app/data/caf\xc3\xa9", "utf-8", 0644);
		link_to(base, "app/link", "data/a.txt");
		dir(base, "app/empty-dir");
	}
	fd = open(big_path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0 || write(fd, big, sizeof(big)) != (ssize_t)sizeof(big))
		abort();
	(void)close(fd);
}

static bool
has_mode(const char *base, const char *rel, mode_t mode)
{
	_cleanup_free_ char *p = path_in(base, rel);
	struct stat st;

	return lstat(p, &st) == 0 && (st.st_mode & 07777) == mode;
}

TEST(round_trip)
{
	_cleanup_free_ char *src = fresh("src"), *out = fresh("out.spk"), *dest = fresh("dest");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(NULL);
	struct spk_unpack_stats stats;
	char target[64] = {};
	static const char *const files[] = {
		"app/run",	  "app/.htaccess",	  "app/data/a.txt",
		"app/data/empty", "app/data/caf\xc3\xa9", "app/data/big",
	};

	make_tree(src, false);
	put(src, SPK_DEFINITION_NAME, "{}", 0644); /* never packed */
	if (!CHECK_OK(pack(def, src, out))) {
		printf("# %s\n", pack_error.message);
		return;
	}
	/* The manifest, 3 directories, 6 files and a symlink. */
	CHECK_UINT_EQ(pack_stats.entries, 11);
	CHECK_OK(unpack(out, dest, &stats));
	CHECK_UINT_EQ(stats.entries, 11);
	CHECK_UINT_EQ(stats.files, 7);
	CHECK_UINT_EQ(stats.directories, 3);
	CHECK_UINT_EQ(stats.symlinks, 1);
	for (size_t i = 0; i < ELEMENTSOF(files); i++) {
		_cleanup_free_ char *a = path_in(src, files[i]), *b = path_in(dest, files[i]);

		if (!CHECK(same_file(a, b)))
			printf("#   %s differs\n", files[i]);
	}
	CHECK(has_mode(src, "app/run", 0755));
	CHECK(has_mode(dest, "app/run", 0755));
	CHECK(has_mode(dest, "app/data/a.txt", 0644));
	CHECK(has_mode(dest, "app/empty-dir", 0755));
	{
		_cleanup_free_ char *l = path_in(dest, "app/link"), *d = path_in(dest, "spk.json");
		_cleanup_free_ char *m = path_in(dest, SPK_MANIFEST_NAME);

		CHECK(readlink(l, target, sizeof(target) - 1) == 10);
		CHECK_STR_EQ(target, "data/a.txt");
		CHECK(access(d, F_OK) < 0);
		CHECK(access(m, F_OK) == 0);
	}
	CHECK_UINT_EQ(warnings, 0);
}

TEST(same_inputs_same_bytes)
{
	_cleanup_free_ char *a = fresh("a"), *b = fresh("b"), *out_a = fresh("a.spk");
	_cleanup_free_ char *out_a2 = fresh("a2.spk"), *out_b = fresh("b.spk");
	_cleanup_free_ char *out_c = fresh("c.spk");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(NULL);
	struct timespec old[2] = { { 1000000000, 0 }, { 1000000000, 0 } };
	_cleanup_free_ char *run_b = NULL, *txt_b = NULL, *dir_b = NULL;

	make_tree(a, false);
	CHECK_OK(pack(def, a, out_a));
	CHECK_OK(pack(def, a, out_a2));
	CHECK(same_file(out_a, out_a2));

	/* Another copy: other creation order, mtimes, owners and non-execute bits. */
	make_tree(b, true);
	run_b = path_in(b, "app/run");
	txt_b = path_in(b, "app/data/a.txt");
	dir_b = path_in(b, "app/data");
	CHECK(utimensat(AT_FDCWD, txt_b, old, 0) == 0);
	CHECK(utimensat(AT_FDCWD, dir_b, old, 0) == 0);
	CHECK(chmod(run_b, 0700) == 0);
	CHECK(chmod(txt_b, 0600) == 0);
	CHECK(chmod(dir_b, 0700) == 0);
	if (geteuid() == 0) {
		CHECK(lchown(txt_b, 1234, 5678) == 0);
		CHECK(lchown(dir_b, 1234, 5678) == 0);
	}
	CHECK_OK(pack(def, b, out_b));
	if (!CHECK(same_file(out_a, out_b)))
		printf("# %s and %s differ\n", out_a, out_b);

	/* However many threads compress. */
	{
		struct spk_pack_options one = { .threads = 1 }, three = { .threads = 3 };
		struct spk_error err;

		CHECK_OK(spk_pack(def, b, &key, out_a2, &one, NULL, &err));
		CHECK(same_file(out_a, out_a2));
		CHECK_OK(spk_pack(def, b, &key, out_a2, &three, NULL, &err));
		CHECK(same_file(out_a, out_a2));
	}

	/* A content change or an execute bit does change the bytes. */
	CHECK(chmod(txt_b, 0700) == 0);
	CHECK_OK(pack(def, b, out_c));
	CHECK(!same_file(out_a, out_c));
}

TEST(output_inside_the_source_is_not_packed)
{
	_cleanup_free_ char *src = fresh("self"), *out = NULL, *copy = fresh("self-1.spk");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(NULL);

	dir(src, NULL);
	put(src, "index.html", "<p>hi</p>", 0644);
	out = path_in(src, "app.spk");
	CHECK_OK(pack(def, src, out));
	CHECK_UINT_EQ(pack_stats.entries, 2);
	CHECK(rename(out, copy) == 0);
	/* A stale package where the new one goes is not packed into the new one. */
	CHECK(link(copy, out) == 0);
	CHECK_OK(pack(def, src, out));
	CHECK_UINT_EQ(pack_stats.entries, 2);
	CHECK(same_file(out, copy));
}

TEST(sources_from_host_paths)
{
	_cleanup_free_ char *src = fresh("host"), *out = fresh("host.spk"), *dest = fresh("host-d");
	_cleanup_free_ char *files = NULL, *env = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = NULL;
	struct spk_unpack_stats stats;

	dir(src, NULL);
	dir(src, "www");
	put(src, "www/index.php", "<?php echo 1;", 0644);
	/* A host binary by absolute path, a directory at a new place. */
	if (asprintf(&files, "{\"sources\":[{\"from\":\"/usr/bin/env\",\"to\":\"usr/bin/env\"},"
			     "{\"from\":\"www\",\"to\":\"srv/www\"}]}") < 0)
		abort();
	def = definition(files);
	if (!CHECK_OK(pack(def, src, out)))
		printf("# %s\n", pack_error.message);
	CHECK_OK(unpack(out, dest, &stats));
	/* usr, usr/bin, usr/bin/env, srv, srv/www, srv/www/index.php and the manifest. */
	CHECK_UINT_EQ(stats.entries, 7);
	env = path_in(dest, "usr/bin/env");
	CHECK(same_file("/usr/bin/env", env));
	CHECK(has_mode(dest, "usr/bin/env", 0755));
	CHECK(has_mode(dest, "srv/www/index.php", 0644));
}

TEST(file_list_picks_paths_from_sources)
{
	_cleanup_free_ char *src = fresh("list"), *out = fresh("list.spk"), *dest = fresh("list-d");
	_cleanup_free_ char *files = NULL, *host = fresh("fakeroot");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = NULL;
	struct spk_unpack_stats stats;

	/* A fake host root with more than the app needs. */
	dir(host, NULL);
	dir(host, "usr");
	dir(host, "usr/bin");
	dir(host, "usr/lib");
	dir(host, "usr/lib/python");
	put(host, "usr/bin/php", "php", 0755);
	put(host, "usr/bin/perl", "perl", 0755);
	put(host, "usr/lib/libxml.so.2.9", "elf", 0644);
	link_to(host, "usr/lib/libxml.so.2", "libxml.so.2.9");
	put(host, "usr/lib/python/a.py", "a", 0644);
	put(host, "usr/lib/python/b.py", "b", 0644);
	dir(src, NULL);
	put(src, "app.php", "<?php", 0644);
	put(src, "spk-files.list",
	    "# what the app needs\n"
	    "/usr/bin/php\n"
	    "usr/lib/libxml.so.2\n"
	    "usr/lib/libxml.so.2.9\n"
	    "usr/lib/python/\n"
	    "\n"
	    "app/app.php\n"
	    "usr/bin/php\n",
	    0644);
	if (asprintf(&files,
		     "{\"sources\":[{\"from\":\".\",\"to\":\"app\"},{\"from\":\"%s\",\"to\":\"\"}],"
		     "\"list\":\"spk-files.list\"}",
		     host) < 0)
		abort();
	def = definition(files);
	if (!CHECK_OK(pack(def, src, out)))
		printf("# %s\n", pack_error.message);
	CHECK_OK(unpack(out, dest, &stats));
	/*
	 * manifest, app, app/app.php, usr, usr/bin, usr/bin/php, usr/lib,
	 * usr/lib/libxml.so.2 (a symlink), usr/lib/libxml.so.2.9, usr/lib/python
	 * and its two files: no perl, no spk-files.list.
	 */
	CHECK_UINT_EQ(stats.entries, 12);
	CHECK_UINT_EQ(stats.symlinks, 1);
	{
		_cleanup_free_ char *perl = path_in(dest, "usr/bin/perl");
		_cleanup_free_ char *list = path_in(dest, "app/spk-files.list");
		_cleanup_free_ char *b = path_in(dest, "usr/lib/python/b.py");

		CHECK(access(perl, F_OK) < 0);
		CHECK(access(list, F_OK) < 0);
		CHECK(access(b, F_OK) == 0);
	}
	CHECK_UINT_EQ(pack_stats.dangling_symlinks, 0);
}

TEST(follow_symlinks)
{
	_cleanup_free_ char *src = fresh("follow"), *out = fresh("follow.spk");
	_cleanup_free_ char *dest = fresh("follow-d"), *dest2 = fresh("follow-d2");
	_cleanup_free_ char *l = NULL, *l2 = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *keep = NULL, *follow = NULL;
	struct stat st;

	dir(src, NULL);
	dir(src, "d");
	put(src, "d/real", "real", 0644);
	link_to(src, "d/alias", "real");
	keep = definition("{\"sources\":[{\"from\":\"d\",\"to\":\"d\"}]}");
	follow =
		definition("{\"sources\":[{\"from\":\"d\",\"to\":\"d\",\"followSymlinks\":true}]}");
	CHECK_OK(pack(keep, src, out));
	CHECK_OK(unpack(out, dest, NULL));
	l = path_in(dest, "d/alias");
	CHECK(lstat(l, &st) == 0 && S_ISLNK(st.st_mode));
	CHECK_OK(pack(follow, src, out));
	CHECK_OK(unpack(out, dest2, NULL));
	l2 = path_in(dest2, "d/alias");
	CHECK(lstat(l2, &st) == 0 && S_ISREG(st.st_mode));
}

TEST(dangling_symlinks_are_reported)
{
	_cleanup_free_ char *src = fresh("dangling"), *out = fresh("dangling.spk");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(NULL);

	dir(src, NULL);
	dir(src, "a");
	put(src, "a/file", "x", 0644);
	link_to(src, "a/ok", "file");
	link_to(src, "a/ok-abs", "/a/file");
	link_to(src, "a/ok-up", "../a/./file");
	link_to(src, "a/chain", "ok");
	link_to(src, "a/dir-link", ".");
	link_to(src, "a/through", "dir-link/file");
	link_to(src, "a/runtime", "/var/lib/data");
	link_to(src, "a/tmp", "/tmp");
	link_to(src, "a/root", "/");
	link_to(src, "a/above-root", "../../../a/file");
	link_to(src, "a/missing", "nothing");
	link_to(src, "a/host", "/etc/passwd");
	link_to(src, "a/loop", "loop");
	warnings = 0;
	CHECK_OK(pack(def, src, out));
	CHECK_UINT_EQ(pack_stats.dangling_symlinks, 3);
	CHECK_UINT_EQ(warnings, 3);
}

/* ---- errors -------------------------------------------------------------------------------- */

static void
pack_fails(const char *files, const char *base, int error, const char *what)
{
	_cleanup_free_ char *out = fresh("fail.spk");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(files);

	if (!CHECK_ERR(pack(def, base, out), error) || !CHECK(strstr(pack_error.message, what)))
		printf("#   message '%s', expected '%s'\n", pack_error.message, what);
	/* No package and no temporary file left behind. */
	CHECK(access(out, F_OK) < 0);
}

TEST(pack_errors)
{
	_cleanup_free_ char *src = fresh("errors"), *fifo = NULL, *bad = NULL, *fifo_dir = NULL;
	_cleanup_free_ char *long_name = NULL, *bad_dir = NULL;
	char name[300];

	dir(src, NULL);
	dir(src, "a");
	put(src, "a/x", "1", 0644);
	dir(src, "b");
	put(src, "b/x", "2", 0644);
	put(src, "file", "f", 0644);
	pack_fails("{\"sources\":[{\"from\":\"nope\"}]}", src, ENOENT,
		   "files.sources[0]: cannot use");
	pack_fails("{\"sources\":[{\"from\":\"a\"},{\"from\":\"b\"}]}", src, EEXIST,
		   "'x' comes twice");
	pack_fails("{\"sources\":[{\"from\":\"file\",\"to\":\"f\"},{\"from\":\"a\",\"to\":\"f\"}]}",
		   src, EEXIST, "comes twice");
	pack_fails("{\"sources\":[{\"from\":\"file\",\"to\":\"f\"},{\"from\":\"a\",\"to\":\"f/"
		   "sub\"}]}",
		   src, EEXIST, "must go inside it");
	pack_fails("{\"sources\":[{\"from\":\"file\"}]}", src, EINVAL, "\"to\" must name");
	pack_fails("{\"sources\":[{\"from\":\".\"}],\"list\":\"missing.list\"}", src, ENOENT,
		   "cannot open file list");

	put(src, "l.list", "a/x\nb/y\n", 0644);
	pack_fails("{\"sources\":[{\"from\":\".\"}],\"list\":\"l.list\"}", src, ENOENT,
		   "l.list line 2: 'b/y' is in none of the sources");

	fifo_dir = fresh("fifo");
	dir(fifo_dir, NULL);
	fifo = path_in(fifo_dir, "pipe");
	CHECK(mkfifo(fifo, 0644) == 0);
	pack_fails(NULL, fifo_dir, EBADMSG, "only files, directories and symlinks");

	bad_dir = fresh("badname");
	dir(bad_dir, NULL);
	bad = path_in(bad_dir, "bad\xff");
	put(bad_dir, "bad\xff", "x", 0644);
	pack_fails(NULL, bad_dir, EBADMSG, "not valid UTF-8");

	long_name = fresh("longname");
	dir(long_name, NULL);
	memset(name, 'n', 255);
	name[255] = '\0';
	put(long_name, name, "x", 0644);
	{
		_cleanup_free_ char *out = fresh("long.spk");
		_cleanup_(spk_manifest_freep) struct spk_manifest *def =
			definition("{\"sources\":[{\"from\":\".\",\"to\":\"a/b\"}]}");

		CHECK_OK(pack(def, long_name, out)); /* 255 is the limit, and fine */
	}
}

TEST(budgets_and_options)
{
	_cleanup_free_ char *src = fresh("budget"), *out = fresh("budget.spk");
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = definition(NULL);
	struct spk_limits entries = { .max_entries = 3 }, bytes = { .max_bytes = 4 };
	struct spk_pack_options options = { .limits = &entries };
	struct spk_key other;
	struct spk_error err = {};

	dir(src, NULL);
	put(src, "a", "12345", 0644);
	put(src, "b", "1", 0644);
	put(src, "c", "1", 0644);
	CHECK_ERR(spk_pack(def, src, &key, out, &options, NULL, &err), E2BIG);
	CHECK(strstr(err.message, "more than 3 entries"));
	options.limits = &bytes;
	CHECK_ERR(spk_pack(def, src, &key, out, &options, NULL, &err), E2BIG);
	CHECK(strstr(err.message, "budget of 4 bytes"));
	/* Parent directories count: one file at a/b/c is four entries with the manifest. */
	{
		_cleanup_(spk_manifest_freep) struct spk_manifest *deep =
			definition("{\"sources\":[{\"from\":\"b\",\"to\":\"a/b/c\"}]}");

		options.limits = &entries;
		CHECK_ERR(spk_pack(deep, src, &key, out, &options, NULL, &err), E2BIG);
		CHECK(strstr(err.message, "budget of 3 entries"));
		entries.max_entries = 4;
		CHECK_OK(spk_pack(deep, src, &key, out, &options, NULL, &err));
	}
	options = (struct spk_pack_options){ .level = 20 };
	CHECK_ERR(spk_pack(def, src, &key, out, &options, NULL, &err), EINVAL);
	options.level = 19;
	CHECK_OK(spk_pack(def, src, &key, out, &options, NULL, &err));
	CHECK_OK(spk_key_generate(&other));
	CHECK_ERR(spk_pack(def, src, &other, out, NULL, NULL, &err), ENOKEY);
	CHECK(strstr(err.message, "is not the app's"));
}
