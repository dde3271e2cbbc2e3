/* SPDX-License-Identifier: MIT */
/*
 * pack.c: spk pack: from a package definition (spk.json) and host files to
 * a signed, reproducible package.
 *
 * Three steps. Collect: every source (and the file list, if any) becomes a
 * list of entries, each checked with the unpacker's own name rules. Order:
 * sort in tree order (spk_path_compare), merge directories that several
 * sources provide, refuse files provided twice, and add every missing parent
 * directory. Write: the manifest, then the entries, through libarchive (pax,
 * zstd) into spk_writer, which hashes and signs.
 *
 * Reproducible: nothing of the host but names, contents, the execute bit and
 * symlink targets reaches the package. Owners are 0, mtimes 0, modes 0644 or
 * 0755 (directories 0755, symlinks 0777), the order is the sort order and the
 * manifest is re-serialised with sorted keys. Same inputs, same libarchive
 * and libzstd, same level: the same bytes.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/buf.h"
#include "common/token.h"
#include "spk/spk-internal.h"
#include "common/banned.h"

#define RESOLVE_MAX_HOPS 40

struct pack_entry {
	char *path;   /* owned: the path in the package */
	char *host;   /* owned: where the content comes from; NULL for an added parent */
	char *target; /* owned: a symlink's target */
	mode_t type;  /* S_IFREG, S_IFDIR or S_IFLNK */
	bool exec;
	bool follow; /* open host following a symlink */
	uint64_t size;
};

struct excluded {
	dev_t dev;
	ino_t ino;
};

struct pack {
	const struct spk_manifest *def;
	const char *base_dir;
	struct spk_limits limits;
	struct pack_entry *entries; /* owned, n of cap */
	size_t n, cap;
	struct excluded excluded[4];
	size_t n_excluded;
	struct spk_error *err;
	const struct spk_pack_options *options;
	uint64_t bytes, bytes_done;
};

static void
entry_release(struct pack_entry *e)
{
	free(e->path);
	free(e->host);
	free(e->target);
	*e = (struct pack_entry){};
}

static void
pack_release(struct pack *p)
{
	for (size_t i = 0; i < p->n; i++)
		entry_release(&p->entries[i]);
	free(p->entries);
	p->entries = NULL;
	p->n = p->cap = 0;
}

static char *
join(const char *a, const char *b)
{
	char *s;

	if (!*a)
		return strdup(b);
	if (!*b)
		return strdup(a);
	if (asprintf(&s, "%s%s%s", a, a[strlen(a) - 1] == '/' ? "" : "/", b) < 0)
		return NULL;
	return s;
}

static bool
is_excluded(const struct pack *p, const struct stat *st)
{
	for (size_t i = 0; i < p->n_excluded; i++)
		if (p->excluded[i].dev == st->st_dev && p->excluded[i].ino == st->st_ino)
			return true;
	return false;
}

static void
exclude(struct pack *p, const char *path)
{
	struct stat st;

	if (path && p->n_excluded < ELEMENTSOF(p->excluded) && stat(path, &st) == 0)
		p->excluded[p->n_excluded++] = (struct excluded){ st.st_dev, st.st_ino };
}

/* Append e to the array *a of *n, growing it; takes e's fields even on failure. */
static int
append(struct pack_entry **a, size_t *n, size_t *cap, struct pack_entry e)
{
	if (*n == *cap) {
		size_t c = *cap ? *cap * 2 : 256;
		struct pack_entry *grown = realloc(*a, c * sizeof(**a));

		if (!grown) {
			entry_release(&e);
			return -ENOMEM;
		}
		*a = grown;
		*cap = c;
	}
	(*a)[(*n)++] = e;
	return 0;
}

/* Add one entry; takes ownership of path, host and target, even on failure. */
static int
add(struct pack *p, char *path, char *host, char *target, const struct stat *st, bool follow)
{
	struct pack_entry e = {
		.path = path,
		.host = host,
		.target = target,
		.type = st->st_mode & S_IFMT,
		.exec = (st->st_mode & 0111) != 0,
		.follow = follow,
		.size = S_ISREG(st->st_mode) ? (uint64_t)st->st_size : 0,
	};

	if (!e.path || !e.host || (S_ISLNK(st->st_mode) && !e.target)) {
		entry_release(&e);
		return spk_error_set(p->err, ENOMEM, "out of memory");
	}
	/* The manifest counts too; refuse early rather than collect a whole disk. */
	if (p->n + 1 >= p->limits.max_entries) {
		entry_release(&e);
		return spk_error_set(p->err, E2BIG,
				     "more than %llu entries: does a source take more than the app "
				     "needs? (use a file list, see docs/packaging.md)",
				     (unsigned long long)p->limits.max_entries);
	}
	if (append(&p->entries, &p->n, &p->cap, e) < 0)
		return spk_error_set(p->err, ENOMEM, "out of memory");
	return 0;
}

static int
check_name(struct pack *p, const char *path, const char *host)
{
	struct spk_error e;
	int r;

	r = spk_path_check(path, strlen(path), &p->limits, NULL, NULL, &e);
	if (r < 0)
		return spk_error_set(p->err, r, "cannot pack '%s': %s", host, e.message);
	return 0;
}

static int walk(struct pack *p, const char *host_dir, const char *prefix, bool follow,
		unsigned depth);

/*
 * Add what host (a path) is at path in the package, directories with their
 * contents. follow: take what a symlink at host points to instead;
 * follow_inside: the same for symlinks inside a directory.
 */
static int
add_host(struct pack *p, const char *host, const char *path, bool follow, bool follow_inside,
	 unsigned depth)
{
	_cleanup_free_ char *target = NULL;
	struct stat st;
	int r;

	if ((follow ? stat(host, &st) : lstat(host, &st)) < 0)
		return spk_error_set(p->err, errno, "cannot pack '%s': %s", host, strerror(errno));
	if (is_excluded(p, &st))
		return 0;
	r = check_name(p, path, host);
	if (r < 0)
		return r;
	switch (st.st_mode & S_IFMT) {
	case S_IFREG:
		break;
	case S_IFDIR:
		break;
	case S_IFLNK: {
		struct spk_error e;
		ssize_t n;

		target = malloc(p->limits.max_path + 2);
		if (!target)
			return spk_error_set(p->err, ENOMEM, "out of memory");
		n = readlink(host, target, p->limits.max_path + 1);
		if (n < 0)
			return spk_error_set(p->err, errno, "cannot read symlink '%s': %s", host,
					     strerror(errno));
		target[n] = '\0';
		r = spk_link_target_check(target, &p->limits, &e);
		if (r < 0)
			return spk_error_set(p->err, r, "cannot pack '%s': %s", host, e.message);
		break;
	}
	default:
		return spk_error_set(p->err, EBADMSG,
				     "cannot pack '%s': only files, directories and symlinks can "
				     "be packed",
				     host);
	}
	if (S_ISREG(st.st_mode)) {
		if ((uint64_t)st.st_size > p->limits.max_bytes - MIN(p->bytes, p->limits.max_bytes))
			return spk_error_set(p->err, E2BIG,
					     "the files pass the budget of %llu bytes (at '%s')",
					     (unsigned long long)p->limits.max_bytes, host);
		p->bytes += (uint64_t)st.st_size;
	}
	r = add(p, strdup(path), strdup(host), TAKE_PTR(target), &st, follow);
	if (r < 0)
		return r;
	if (S_ISDIR(st.st_mode))
		return walk(p, host, path, follow_inside, depth + 1);
	return 0;
}

static int
walk(struct pack *p, const char *host_dir, const char *prefix, bool follow, unsigned depth)
{
	DIR *d;
	struct dirent *de;
	int r = 0;

	/* Symlinks followed into a loop end here, as does a tree too deep to unpack. */
	if (depth > p->limits.max_depth)
		return spk_error_set(p->err, E2BIG, "'%s' is more than %u levels deep", host_dir,
				     p->limits.max_depth);
	d = opendir(host_dir);
	if (!d)
		return spk_error_set(p->err, errno, "cannot read directory '%s': %s", host_dir,
				     strerror(errno));
	while ((errno = 0, de = readdir(d))) {
		_cleanup_free_ char *host = NULL, *path = NULL;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		host = join(host_dir, de->d_name);
		path = join(prefix, de->d_name);
		if (!host || !path) {
			r = spk_error_set(p->err, ENOMEM, "out of memory");
			break;
		}
		r = add_host(p, host, path, follow, follow, depth);
		if (r < 0)
			break;
	}
	if (r == 0 && errno != 0)
		r = spk_error_set(p->err, errno, "cannot read directory '%s': %s", host_dir,
				  strerror(errno));
	(void)closedir(d);
	return r;
}

static char *
source_host(const struct pack *p, const struct spk_source *s)
{
	return s->from[0] == '/' ? strdup(s->from) : join(p->base_dir, s->from);
}

/* A whole source: its from, followed if a symlink, at its to. */
static int
collect_source(struct pack *p, size_t index)
{
	const struct spk_source *s = &p->def->sources[index];
	_cleanup_free_ char *host = source_host(p, s);
	struct stat st;

	if (!host)
		return spk_error_set(p->err, ENOMEM, "out of memory");
	if (stat(host, &st) < 0)
		return spk_error_set(p->err, errno, "files.sources[%zu]: cannot use '%s': %s",
				     index, host, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (!*s->to)
			return walk(p, host, "", s->follow_symlinks, 1);
		return add_host(p, host, s->to, true, s->follow_symlinks, 1);
	}
	if (!*s->to)
		return spk_error_set(p->err, EINVAL,
				     "files.sources[%zu]: '%s' is not a directory, so \"to\" must "
				     "name its path in the package",
				     index, host);
	return add_host(p, host, s->to, true, s->follow_symlinks, 1);
}

/* One line of the file list: the first source that has it. */
static int
collect_listed(struct pack *p, const char *path, size_t line_no)
{
	for (size_t i = 0; i < p->def->n_sources; i++) {
		const struct spk_source *s = &p->def->sources[i];
		_cleanup_free_ char *from = NULL, *host = NULL;
		size_t to_len = strlen(s->to);
		const char *rest;
		struct stat st;

		if (to_len == 0)
			rest = path;
		else if (strncmp(path, s->to, to_len) == 0 && path[to_len] == '\0')
			rest = "";
		else if (strncmp(path, s->to, to_len) == 0 && path[to_len] == '/')
			rest = path + to_len + 1;
		else
			continue;
		from = source_host(p, s);
		host = from ? join(from, rest) : NULL;
		if (!host)
			return spk_error_set(p->err, ENOMEM, "out of memory");
		/* A source's own from is always followed, as without a list. */
		if ((s->follow_symlinks || !*rest ? stat(host, &st) : lstat(host, &st)) < 0) {
			if (errno == ENOENT || errno == ENOTDIR)
				continue;
			return spk_error_set(p->err, errno, "%s line %zu: cannot use '%s': %s",
					     p->def->files_list, line_no, host, strerror(errno));
		}
		return add_host(p, host, path, s->follow_symlinks || !*rest, s->follow_symlinks, 1);
	}
	return spk_error_set(p->err, ENOENT,
			     "%s line %zu: '%s' is in none of the sources; fix the line or add a "
			     "source that has it",
			     p->def->files_list, line_no, path);
}

static int
collect_list(struct pack *p, const char *list_path)
{
	_cleanup_fclose_ FILE *f = NULL;
	_cleanup_free_ char *line = NULL;
	size_t size = 0, line_no = 0;
	ssize_t n;
	int r;

	f = fopen(list_path, "re");
	if (!f)
		return spk_error_set(p->err, errno, "cannot open file list '%s': %s", list_path,
				     strerror(errno));
	while ((n = getline(&line, &size, f)) >= 0) {
		char *s = line;
		size_t len = (size_t)n;

		line_no++;
		if (len > 0 && s[len - 1] == '\n')
			s[--len] = '\0';
		/* "/usr/bin/php", "usr/bin/php" and "usr/lib/" all name paths in the package. */
		while (*s == '/')
			s++, len--;
		while (len > 0 && s[len - 1] == '/')
			s[--len] = '\0';
		if (len == 0 || s[0] == '#')
			continue;
		r = collect_listed(p, s, line_no);
		if (r < 0)
			return r;
	}
	if (ferror(f))
		return spk_error_set(p->err, EIO, "cannot read file list '%s'", list_path);
	return 0;
}

static int
compare_entries(const void *a, const void *b)
{
	return spk_path_compare(((const struct pack_entry *)a)->path,
				((const struct pack_entry *)b)->path);
}

static const char *
kind(mode_t type)
{
	return S_ISDIR(type) ? "a directory" : S_ISLNK(type) ? "a symlink" : "a file";
}

/*
 * Sort, merge what may be merged, refuse what collides, and add the parent
 * directories no source named, with the unpacker's own directory stack: in
 * tree order, an entry's missing parents are exactly the path prefixes below
 * the deepest directory still on the stack. Replaces p->entries.
 */
static int
order(struct pack *p)
{
	_cleanup_(spk_dirstack_release) struct spk_dirstack dirs = {};
	struct pack_entry *out = NULL;
	size_t n = 0, cap = 0;
	int r;

	qsort(p->entries, p->n, sizeof(*p->entries), compare_entries);
	r = spk_dirstack_init(&dirs, &p->limits);
	if (r < 0)
		return spk_error_set(p->err, r, "out of memory");
	for (size_t i = 0; i < p->n && r >= 0; i++) {
		struct pack_entry *e = &p->entries[i], *prev = n > 0 ? &out[n - 1] : NULL;
		const char *slash = strrchr(e->path, '/');
		size_t parent_len = slash ? (size_t)(slash - e->path) : 0, top;

		if (prev && strcmp(prev->path, e->path) == 0) {
			/* The same thing twice (a list naming a file and its directory): once. */
			if (prev->type == e->type &&
			    (S_ISDIR(e->type) || (prev->host && strcmp(prev->host, e->host) == 0)))
				continue;
			r = spk_error_set(p->err, EEXIST,
					  "'%s' comes twice: as %s from '%s' and as %s from '%s'",
					  e->path, kind(prev->type),
					  prev->host ? prev->host : "(a parent directory)",
					  kind(e->type), e->host);
			break;
		}
		for (top = spk_dirstack_enter(&dirs, e->path); top < parent_len && r >= 0;) {
			size_t end = (size_t)(strchr(e->path + top + (top > 0), '/') - e->path);

			prev = n > 0 ? &out[n - 1] : NULL;
			if (prev && strncmp(prev->path, e->path, end) == 0 &&
			    prev->path[end] == '\0') {
				r = spk_error_set(
					p->err, EEXIST,
					"'%s' is %s (from '%s'), but '%s' must go inside it",
					prev->path, kind(prev->type), prev->host, e->path);
				break;
			}
			r = append(&out, &n, &cap,
				   (struct pack_entry){ .path = strndup(e->path, end),
							.type = S_IFDIR });
			if (r < 0 || !out[n - 1].path) {
				r = spk_error_set(p->err, ENOMEM, "out of memory");
				break;
			}
			(void)spk_dirstack_push(&dirs, e->path, end);
			top = end;
		}
		if (r < 0)
			break;
		r = append(&out, &n, &cap, *e);
		*e = (struct pack_entry){};
		if (r < 0) {
			r = spk_error_set(p->err, ENOMEM, "out of memory");
			break;
		}
		if (S_ISDIR(out[n - 1].type))
			(void)spk_dirstack_push(&dirs, out[n - 1].path, strlen(out[n - 1].path));
	}
	pack_release(p);
	p->entries = out;
	p->n = n;
	p->cap = cap;
	return r < 0 ? r : 0;
}

/* ---- symlinks that point nowhere ------------------------------------------ */

static const struct pack_entry *
find(const struct pack *p, const char *path)
{
	struct pack_entry key = { .path = (char *)path };

	return bsearch(&key, p->entries, p->n, sizeof(*p->entries), compare_entries);
}

/*
 * Where a symlink leads inside the package, following symlinks on the way as
 * the grain's kernel would (the package is its root). Returns true if it
 * reaches an entry or a place the grain provides at run time.
 */
static bool
resolves(const struct pack *p, const char *link_path, const char *target)
{
	static const char *const runtime[] = { "var", "tmp", "proc", "dev" };
	_cleanup_(buf_release) struct buf todo = BUF_INIT, done = BUF_INIT;
	unsigned hops = 0;

	/* todo: what is left to walk; done: the resolved prefix, "" for the root. */
	if (target[0] != '/') {
		const char *slash = strrchr(link_path, '/');

		if (slash && buf_append(&todo, link_path, (size_t)(slash - link_path) + 1) < 0)
			return true;
	}
	if (buf_append_str(&todo, target) < 0 || buf_append_str(&done, "") < 0)
		return true;
	while (todo.len > 0) {
		char *component = todo.data, *slash;
		const struct pack_entry *e;
		size_t len;

		while (*component == '/')
			component++;
		if (!*component)
			break;
		slash = strchr(component, '/');
		len = slash ? (size_t)(slash - component) : strlen(component);
		if (len == 2 && memcmp(component, "..", 2) == 0) {
			char *up = strrchr(done.data, '/');

			done.len = up ? (size_t)(up - done.data) : 0;
			done.data[done.len] = '\0';
		} else if (!(len == 1 && component[0] == '.')) {
			if (done.len > 0 && buf_append_char(&done, '/') < 0)
				return true;
			if (buf_append(&done, component, len) < 0)
				return true;
		}
		/* Drop the component from todo. */
		memmove(todo.data, component + len, strlen(component + len) + 1);
		todo.len = strlen(todo.data);

		if (done.len == 0)
			continue; /* the root */
		for (size_t i = 0; i < ELEMENTSOF(runtime); i++)
			if (strncmp(done.data, runtime[i], strlen(runtime[i])) == 0 &&
			    (done.data[strlen(runtime[i])] == '\0' ||
			     done.data[strlen(runtime[i])] == '/'))
				return true;
		e = find(p, done.data);
		if (!e)
			return false;
		if (S_ISLNK(e->type)) {
			_cleanup_(buf_release) struct buf next = BUF_INIT;

			if (++hops > RESOLVE_MAX_HOPS)
				return false;
			/* Continue with the link's target, then what was left. */
			if (e->target[0] != '/') {
				char *up = strrchr(done.data, '/');

				done.len = up ? (size_t)(up - done.data) : 0;
				done.data[done.len] = '\0';
			} else {
				done.len = 0;
				done.data[0] = '\0';
			}
			if (buf_append_str(&next, e->target) < 0 ||
			    buf_append_char(&next, '/') < 0 || buf_append_str(&next, todo.data) < 0)
				return true;
			buf_release(&todo);
			todo = next;
			next = (struct buf)BUF_INIT;
		}
	}
	return true;
}

static unsigned
check_symlinks(const struct pack *p)
{
	unsigned dangling = 0;

	for (size_t i = 0; i < p->n; i++) {
		const struct pack_entry *e = &p->entries[i];

		if (!S_ISLNK(e->type) || resolves(p, e->path, e->target))
			continue;
		dangling++;
		if (p->options && p->options->warning) {
			char message[SPK_DEFAULT_MAX_PATH * 2 + 128];

			(void)snprintf(message, sizeof(message),
				       "symlink '%s' points to '%s', which is not in the package",
				       e->path, e->target);
			p->options->warning(message, p->options->userdata);
		}
	}
	return dangling;
}

/* ---- writing ---------------------------------------------------------------- */

static la_ssize_t
write_payload(struct archive *a, void *userdata, const void *data, size_t size)
{
	int r = spk_writer_write(userdata, data, size);

	if (r < 0) {
		archive_set_error(a, -r, "cannot write the package: %s", strerror(-r));
		return -1;
	}
	return (la_ssize_t)size;
}

static int
write_header(struct pack *p, struct archive *a, struct archive_entry *entry, const char *path,
	     mode_t type, mode_t mode, uint64_t size, const char *target)
{
	archive_entry_clear(entry);
	archive_entry_copy_pathname(entry, path);
	archive_entry_set_filetype(entry, type);
	archive_entry_set_perm(entry, mode);
	archive_entry_set_size(entry, (la_int64_t)size);
	archive_entry_set_mtime(entry, 0, 0);
	archive_entry_set_uid(entry, 0);
	archive_entry_set_gid(entry, 0);
	if (target)
		archive_entry_copy_symlink(entry, target);
	/* A warning would mean libarchive changed something (a name it could not convert). */
	if (archive_write_header(a, entry) != ARCHIVE_OK)
		return spk_error_set(p->err, EIO, "cannot pack '%s': %s", path,
				     archive_error_string(a));
	return 0;
}

static int
write_file(struct pack *p, struct archive *a, const struct pack_entry *e, uint8_t *buf)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	uint64_t done = 0;

	fd = open(e->host, O_RDONLY | O_CLOEXEC | O_NOCTTY | (e->follow ? 0 : O_NOFOLLOW));
	if (fd < 0)
		return spk_error_set(p->err, errno, "cannot read '%s': %s", e->host,
				     strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || (uint64_t)st.st_size != e->size)
		return spk_error_set(p->err, EBUSY, "'%s' changed while packing: pack again",
				     e->host);
	for (;;) {
		ssize_t n = read(fd, buf, SPK_IO_BUFFER);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return spk_error_set(p->err, errno, "cannot read '%s': %s", e->host,
					     strerror(errno));
		}
		if (n == 0)
			break;
		if ((uint64_t)n > e->size - done)
			return spk_error_set(p->err, EBUSY, "'%s' grew while packing: pack again",
					     e->host);
		if (archive_write_data(a, buf, (size_t)n) != n)
			return spk_error_set(p->err, EIO, "cannot pack '%s': %s", e->path,
					     archive_error_string(a));
		done += (uint64_t)n;
		p->bytes_done += (uint64_t)n;
		if (p->options && p->options->progress)
			p->options->progress(p->bytes_done, p->bytes, p->options->userdata);
	}
	if (done != e->size)
		return spk_error_set(p->err, EBUSY, "'%s' shrank while packing: pack again",
				     e->host);
	return 0;
}

/*
 * zstd's multi-threaded mode (one worker or more) makes the same bytes
 * whatever the number of workers, so packages stay reproducible across
 * machines; it differs from the single-threaded mode (0), never used here.
 */
static int
zstd_workers(const struct spk_pack_options *options)
{
	long n = options && options->threads > 0 ? options->threads : sysconf(_SC_NPROCESSORS_ONLN);

	return (int)MAX(1, MIN(n, SPK_ZSTD_MAX_WORKERS));
}

static int
write_payload_archive(struct pack *p, struct spk_writer *w, int level, const char *manifest,
		      size_t manifest_size)
{
	struct archive *a;
	struct archive_entry *entry;
	_cleanup_free_ uint8_t *buf = NULL;
	char level_text[16], threads_text[16];
	int r;

	buf = malloc(SPK_IO_BUFFER);
	a = archive_write_new();
	entry = archive_entry_new();
	if (!buf || !a || !entry) {
		r = spk_error_set(p->err, ENOMEM, "out of memory");
		goto out;
	}
	(void)snprintf(level_text, sizeof(level_text), "%d", level);
	(void)snprintf(threads_text, sizeof(threads_text), "%d", zstd_workers(p->options));
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "zstd", "compression-level", level_text) !=
		    ARCHIVE_OK ||
	    archive_write_set_filter_option(a, "zstd", "threads", threads_text) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    /* No zero padding after the zstd frame: the payload ends where the frame does. */
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, w, NULL, write_payload, NULL, NULL) != ARCHIVE_OK) {
		r = spk_error_set(p->err, EIO, "cannot start the payload: %s",
				  archive_error_string(a));
		goto out;
	}
	r = write_header(p, a, entry, SPK_MANIFEST_NAME, AE_IFREG, 0644, manifest_size, NULL);
	if (r < 0)
		goto out;
	if (archive_write_data(a, manifest, manifest_size) != (la_ssize_t)manifest_size) {
		r = spk_error_set(p->err, EIO, "cannot pack the manifest: %s",
				  archive_error_string(a));
		goto out;
	}
	for (size_t i = 0; i < p->n; i++) {
		const struct pack_entry *e = &p->entries[i];

		if (S_ISREG(e->type)) {
			r = write_header(p, a, entry, e->path, AE_IFREG, e->exec ? 0755 : 0644,
					 e->size, NULL);
			if (r >= 0)
				r = write_file(p, a, e, buf);
		} else if (S_ISDIR(e->type))
			r = write_header(p, a, entry, e->path, AE_IFDIR, 0755, 0, NULL);
		else
			r = write_header(p, a, entry, e->path, AE_IFLNK, 0777, 0, e->target);
		if (r < 0)
			goto out;
	}
	if (archive_write_close(a) != ARCHIVE_OK) {
		r = spk_error_set(p->err, EIO, "cannot finish the payload: %s",
				  archive_error_string(a));
		goto out;
	}
	r = 0;
out:
	if (entry)
		archive_entry_free(entry);
	if (a)
		(void)archive_write_free(a);
	return r;
}

int
spk_pack(const struct spk_manifest *def, const char *base_dir, const struct spk_key *key,
	 const char *out_path, const struct spk_pack_options *options,
	 struct spk_pack_stats *ret_stats, struct spk_error *err)
{
	_cleanup_free_ char *manifest = NULL, *tmp_path = NULL, *definition = NULL, *list = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct pack p = { .def = def, .base_dir = base_dir, .err = err, .options = options };
	struct spk_pack_stats stats = {};
	char app_id[SPK_APP_ID_LEN + 1];
	struct spk_locale locale;
	struct spk_writer w;
	size_t manifest_size;
	int level = options && options->level ? options->level : SPK_ZSTD_DEFAULT_LEVEL;
	char hex[17];
	int r;

	spk_limits_resolve(options ? options->limits : NULL, &p.limits);
	if (level < 1 || level > SPK_ZSTD_MAX_LEVEL)
		return spk_error_set(err, EINVAL, "compression level %d: use 1 to %d", level,
				     SPK_ZSTD_MAX_LEVEL);
	spk_app_id_from_key(key->public_key, app_id);
	if (strcmp(app_id, def->app_id) != 0)
		return spk_error_set(err, ENOKEY, "the key's app id %s is not the app's (%s)",
				     app_id, def->app_id);
	r = spk_manifest_to_package_json(def, &manifest, &manifest_size);
	if (r < 0)
		return spk_error_set(err, r, "out of memory");
	if (manifest_size > SPK_MANIFEST_MAX)
		return spk_error_set(err, E2BIG, "the manifest is larger than %d bytes",
				     SPK_MANIFEST_MAX);

	spk_locale_enter(&locale);
	definition = join(base_dir, SPK_DEFINITION_NAME);
	if (*def->files_list)
		list = def->files_list[0] == '/' ? strdup(def->files_list)
						 : join(base_dir, def->files_list);
	if (!definition || (*def->files_list && !list)) {
		r = spk_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	exclude(&p, definition);
	exclude(&p, list);
	exclude(&p, out_path);
	exclude(&p, options ? options->keyring : NULL);

	if (list)
		r = collect_list(&p, list);
	else
		for (size_t i = 0; i < def->n_sources && r >= 0; i++)
			r = collect_source(&p, i);
	if (r < 0)
		goto out;
	r = order(&p);
	if (r < 0)
		goto out;
	/* The parent directories order() added and the manifest count too. */
	if (p.n + 1 > p.limits.max_entries || manifest_size > p.limits.max_bytes - p.bytes) {
		r = spk_error_set(err, E2BIG,
				  "the package would pass its budget of %llu entries "
				  "or %llu bytes",
				  (unsigned long long)p.limits.max_entries,
				  (unsigned long long)p.limits.max_bytes);
		goto out;
	}
	stats.dangling_symlinks = check_symlinks(&p);

	r = random_hex(hex, 8);
	if (r < 0) {
		r = spk_error_set(err, r, "cannot make a random name");
		goto out;
	}
	if (asprintf(&tmp_path, "%s.tmp-%s", out_path, hex) < 0) {
		tmp_path = NULL;
		r = spk_error_set(err, ENOMEM, "out of memory");
		goto out;
	}
	/* 0666 less the umask, like any new file: a package is no secret. */
	fd = open(tmp_path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC | O_NOCTTY, 0666);
	if (fd < 0) {
		r = spk_error_set(err, errno, "cannot create '%s': %s", tmp_path, strerror(errno));
		free(TAKE_PTR(tmp_path));
		goto out;
	}
	r = spk_writer_begin(&w, fd, key);
	if (r < 0) {
		r = spk_error_set(err, r, "cannot write '%s': %s", tmp_path, strerror(-r));
		goto out_unlink;
	}
	r = write_payload_archive(&p, &w, level, manifest, manifest_size);
	if (r < 0)
		goto out_unlink;
	r = spk_writer_finish(&w);
	if (r < 0) {
		r = spk_error_set(err, r, "cannot write '%s': %s", tmp_path, strerror(-r));
		goto out_unlink;
	}
	r = spk_package_id_of_fd(fd, stats.package_id);
	if (r < 0) {
		r = spk_error_set(err, r, "cannot read '%s' back: %s", tmp_path, strerror(-r));
		goto out_unlink;
	}
	stats.file_size = w.payload_size + SPK_HEADER_SIZE;
	if (rename(tmp_path, out_path) < 0) {
		r = spk_error_set(err, errno, "cannot rename '%s' to '%s': %s", tmp_path, out_path,
				  strerror(errno));
		goto out_unlink;
	}
	stats.entries = p.n + 1;
	stats.bytes = p.bytes + manifest_size;
	if (ret_stats)
		*ret_stats = stats;
	r = 0;
	goto out;

out_unlink:
	(void)unlink(tmp_path);
out:
	pack_release(&p);
	spk_locale_leave(&locale);
	return r;
}
