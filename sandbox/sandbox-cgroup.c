/* SPDX-License-Identifier: MIT */
/*
 * sandbox-cgroup.c: one cgroup per grain, holding its memory, pids and cpu
 * limits, on either cgroup layout:
 *
 *	v2 (unified)  ROOT/OWN/PARENT/NAME: memory.max, memory.swap.max = 0,
 *	              memory.oom.group = 1, pids.max, cpu.max; the child is
 *	              cloned straight into it (CLONE_INTO_CGROUP)
 *	v1 (legacy or ROOT/memory/OWN/PARENT/NAME: memory.limit_in_bytes and
 *	    hybrid)   memory.memsw.limit_in_bytes (swap included);
 *	              ROOT/pids/...: pids.max; ROOT/cpu/...: cpu.cfs_quota_us;
 *	              the child moves itself into each (through tasks files
 *	              the parent opened) before it does anything else
 *
 * OWN is the caller's own cgroup in that hierarchy (/proc/self/cgroup), so a
 * granaryd started by systemd with Delegate=yes stays inside its slice, and
 * PARENT (default "granary") can carry a limit for all grains together.
 *
 * Only the controllers of the limits asked for are used. Any step failing is
 * an error naming the file: the caller refuses to run the grain unless told
 * to run without limits.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/magic.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/stat.h>
#include <sys/statfs.h>
#include <time.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

const char *const cgroup_controller_names[_CGROUP_MAX] = { "memory", "pids", "cpu" };

#define CPU_PERIOD_US 100000ULL
/* The leaf a supervisor moves into so its own cgroup can hand out controllers (v2). */
#define LEAF	      "supervisor"

static bool
wanted(const struct sandbox_limits *l, enum cgroup_controller c)
{
	switch (c) {
	case CGROUP_MEMORY:
		return l->memory > 0;
	case CGROUP_PIDS:
		return l->pids > 0;
	case CGROUP_CPU:
		return l->cpu > 0;
	default:
		return false;
	}
}

struct sandbox_cgroup *
cgroup_free(struct sandbox_cgroup *cg)
{
	if (!cg)
		return NULL;
	for (int c = 0; c < _CGROUP_MAX; c++)
		free(cg->path[c]);
	(void)safe_close(cg->dir_fd);
	free(cg);
	return NULL;
}

/* "a/b" with no empty, "." or ".." component and no leading slash. */
static bool
relative_path_ok(const char *p)
{
	const char *s = p;

	if (!*p || *p == '/' || strlen(p) > 256)
		return false;
	while (*s) {
		size_t len = strcspn(s, "/");

		if (len == 0 || (len == 1 && s[0] == '.') ||
		    (len == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += len;
		if (*s == '/')
			s++;
		if (!*s && s[-1] == '/')
			return false;
	}
	return true;
}

static bool
name_ok(const char *n)
{
	size_t len = strlen(n);

	if (len == 0 || len > 128 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0)
		return false;
	return strspn(n, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") ==
	       len;
}

/* mkdir every component of rel below base (base must exist). */
static int
mkdir_below(const char *base, const char *rel)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	const char *s = rel;
	int r;

	r = buf_append_str(&b, base);
	while (r >= 0 && *s) {
		size_t len = strcspn(s, "/");

		if (len == 0) {
			s++;
			continue;
		}
		r = buf_append_char(&b, '/');
		if (r >= 0)
			r = buf_append(&b, s, len);
		if (r >= 0 && mkdir(b.data, 0755) < 0 && errno != EEXIST)
			r = negative_errno();
		s += len;
	}
	return r;
}

static int
file_is_empty(const char *dir, const char *name)
{
	_cleanup_close_ int fd = -EBADF;
	char c;
	ssize_t n;

	fd = openat(AT_FDCWD, dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	fd = openat(fd, name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	n = read(fd, &c, 1);
	if (n < 0)
		return negative_errno();
	return n == 0;
}

static int
set_limit(struct sandbox_cgroup *cg, enum cgroup_controller c, const char *file,
	  unsigned long long value, bool optional, struct sandbox_error *e)
{
	char s[32];
	_cleanup_close_ int dir = -EBADF;
	int r;

	(void)snprintf(s, sizeof(s), "%llu", value);
	dir = open(cg->path[c], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
					 cg->path[c]);
	r = write_file_at(dir, file, s);
	if (r == -ENOENT && optional)
		return 0;
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to write %s to '%s/%s': %m", s, cg->path[c],
					 file);
	return 0;
}

static int
set_string(struct sandbox_cgroup *cg, enum cgroup_controller c, const char *file, const char *value,
	   bool optional, struct sandbox_error *e)
{
	_cleanup_close_ int dir = -EBADF;
	int r;

	dir = open(cg->path[c], O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dir < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
					 cg->path[c]);
	r = write_file_at(dir, file, value);
	if (r == -ENOENT && optional)
		return 0;
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to write '%s' to '%s/%s': %m", value,
					 cg->path[c], file);
	return 0;
}

static int
apply_v1(struct sandbox_cgroup *cg, const struct sandbox_limits *l, struct sandbox_error *e)
{
	int r = 0;

	if (l->memory > 0) {
		/*
		 * memsw (memory + swap) must stay >= the memory limit at every
		 * step: lift it, set the limit, then bring it down to the same
		 * value so swap cannot extend the grain's memory.
		 */
		r = set_string(cg, CGROUP_MEMORY, "memory.memsw.limit_in_bytes", "-1", true, e);
		if (r >= 0)
			r = set_limit(cg, CGROUP_MEMORY, "memory.limit_in_bytes", l->memory, false,
				      e);
		if (r >= 0)
			r = set_limit(cg, CGROUP_MEMORY, "memory.memsw.limit_in_bytes", l->memory,
				      true, e);
	}
	if (r >= 0 && l->pids > 0)
		r = set_limit(cg, CGROUP_PIDS, "pids.max", l->pids, false, e);
	if (r >= 0 && l->cpu > 0) {
		r = set_limit(cg, CGROUP_CPU, "cpu.cfs_period_us", CPU_PERIOD_US, false, e);
		if (r >= 0)
			r = set_limit(cg, CGROUP_CPU, "cpu.cfs_quota_us",
				      l->cpu * CPU_PERIOD_US / 1000, false, e);
	}
	return r;
}

static int
apply_v2(struct sandbox_cgroup *cg, const struct sandbox_limits *l, struct sandbox_error *e)
{
	int r = 0;

	if (l->memory > 0) {
		r = set_limit(cg, CGROUP_MEMORY, "memory.max", l->memory, false, e);
		if (r >= 0)
			r = set_string(cg, CGROUP_MEMORY, "memory.swap.max", "0", true, e);
		/* An OOM kill takes the whole grain, not one worker of it. */
		if (r >= 0)
			r = set_string(cg, CGROUP_MEMORY, "memory.oom.group", "1", true, e);
	}
	if (r >= 0 && l->pids > 0)
		r = set_limit(cg, CGROUP_PIDS, "pids.max", l->pids, false, e);
	if (r >= 0 && l->cpu > 0) {
		char s[64];

		(void)snprintf(s, sizeof(s), "%llu %llu",
			       (unsigned long long)(l->cpu * CPU_PERIOD_US / 1000), CPU_PERIOD_US);
		r = set_string(cg, CGROUP_CPU, "cpu.max", s, false, e);
	}
	return r;
}

/* Move the calling process into dir/LEAF (made if missing). */
static int
join_leaf(const char *dir, struct sandbox_error *e)
{
	_cleanup_(buf_release) struct buf leaf = BUF_INIT;
	int r;

	r = buf_printf(&leaf, "%s/" LEAF, dir);
	if (r < 0)
		return sandbox_error_set(e, r, "Out of memory");
	if (mkdir(leaf.data, 0755) < 0 && errno != EEXIST)
		return sandbox_error_set(e, negative_errno(),
					 "Failed to create the cgroup '%s': %m", leaf.data);
	r = buf_append_str(&leaf, "/cgroup.procs");
	if (r >= 0)
		r = write_file(leaf.data, "0");
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to move into '%s/" LEAF "': %m", dir);
	return 0;
}

/*
 * v2: controllers reach a cgroup only when every ancestor enables them in
 * cgroup.subtree_control. A cgroup with processes of its own cannot (the
 * no-internal-process rule, EBUSY): then the caller moves itself into a leaf
 * LEAF below its own cgroup first, as systemd's delegation expects (granaryd
 * does so before it forks: sandbox_cgroup_leave_own()).
 */
static int
enable_v2(const char *own_dir, const char *parent_dir, const struct sandbox_limits *l,
	  struct sandbox_error *e)
{
	_cleanup_(buf_release) struct buf want = BUF_INIT;
	const char *dirs[] = { own_dir, parent_dir };
	int r = 0;

	for (int c = 0; c < _CGROUP_MAX && r >= 0; c++)
		if (wanted(l, c))
			r = buf_printf(&want, "%s+%s", want.len ? " " : "",
				       cgroup_controller_names[c]);
	if (r < 0)
		return sandbox_error_set(e, r, "Out of memory");
	for (size_t i = 0; i < ELEMENTSOF(dirs); i++) {
		_cleanup_close_ int dir = open(dirs[i], O_PATH | O_DIRECTORY | O_CLOEXEC);

		if (dir < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
						 dirs[i]);
		r = write_file_at(dir, "cgroup.subtree_control", want.data);
		if (r == -EBUSY && i == 0) {
			log_debug("cgroup: '%s' has processes, moving into '%s/" LEAF "'", own_dir,
				  own_dir);
			r = join_leaf(own_dir, e);
			if (r < 0)
				return r;
			r = write_file_at(dir, "cgroup.subtree_control", want.data);
		}
		if (r < 0)
			return sandbox_error_set(e, r, "Failed to enable %s in '%s': %m", want.data,
						 dirs[i]);
	}
	return 0;
}

/* ROOT[/CONTROLLER]OWN/PARENT/NAME, made (or reused when left empty); *ret_path on success. */
static int
make_grain_dir(int version, const char *root, const char *own, const char *controller,
	       const char *parent, const char *name, const struct sandbox_limits *l,
	       char **ret_path, struct sandbox_error *e)
{
	_cleanup_(buf_release) struct buf base = BUF_INIT, dir = BUF_INIT;
	int r;

	if (version == 1)
		r = buf_printf(&base, "%s/%s%s", root, controller, own);
	else
		r = buf_printf(&base, "%s%s", root, own);
	/* own is "/" or "/a/b": trim a trailing slash. */
	if (r >= 0 && base.len > 1 && base.data[base.len - 1] == '/')
		base.data[--base.len] = '\0';
	if (r >= 0)
		r = buf_printf(&dir, "%s/%s", base.data, parent);
	if (r < 0)
		return sandbox_error_set(e, r, "Out of memory");
	r = mkdir_below(base.data, parent);
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to create the cgroup '%s': %m", dir.data);
	if (version == 2) {
		r = enable_v2(base.data, dir.data, l, e);
		if (r < 0)
			return r;
	}
	r = buf_printf(&dir, "/%s", name);
	if (r < 0)
		return sandbox_error_set(e, r, "Out of memory");
	if (mkdir(dir.data, 0755) < 0) {
		if (errno != EEXIST)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to create the cgroup '%s': %m", dir.data);
		/* Left by a sandbox that died with its launcher: reuse if empty. */
		r = file_is_empty(dir.data, "cgroup.procs");
		if (r < 0)
			return sandbox_error_set(e, r, "Failed to read '%s/cgroup.procs': %m",
						 dir.data);
		if (r == 0)
			return sandbox_error_set(e, -EBUSY,
						 "The cgroup '%s' is in use by other processes",
						 dir.data);
	}
	*ret_path = buf_steal(&dir);
	return *ret_path ? 0 : sandbox_error_set(e, -ENOMEM, "Out of memory");
}

int
cgroup_create_in(int version, const char *root, const char *const own[_CGROUP_MAX],
		 const char *parent, const char *name, const struct sandbox_limits *l,
		 struct sandbox_cgroup **ret, struct sandbox_error *e)
{
	_cleanup_(cgroup_freep) struct sandbox_cgroup *cg = NULL;
	const char *first = NULL;
	int r;

	if (!wanted(l, CGROUP_MEMORY) && !wanted(l, CGROUP_PIDS) && !wanted(l, CGROUP_CPU))
		return sandbox_error_set(e, -EINVAL, "No cgroup limit asked for");
	if (!parent)
		parent = "granary";
	if (!relative_path_ok(parent))
		return sandbox_error_set(e, -EINVAL, "Bad cgroup parent '%s'", parent);
	if (!name || !name_ok(name))
		return sandbox_error_set(e, -EINVAL, "Bad cgroup name '%s'", strnull(name));
	cg = calloc(1, sizeof(*cg));
	if (!cg)
		return sandbox_error_set(e, -ENOMEM, "Out of memory");
	cg->version = version;
	cg->dir_fd = -EBADF;

	for (int c = 0; c < _CGROUP_MAX; c++) {
		if (!wanted(l, c))
			continue;
		if (version == 2 && first) {
			/* One directory holds every controller. */
			cg->path[c] = strdup(first);
			r = cg->path[c] ? 0 : sandbox_error_set(e, -ENOMEM, "Out of memory");
		} else if (!own[c])
			r = sandbox_error_set(e, -ENOENT,
					      "This process is in no %s cgroup (/proc/self/cgroup)",
					      cgroup_controller_names[c]);
		else
			r = make_grain_dir(version, root, own[c], cgroup_controller_names[c],
					   parent, name, l, &cg->path[c], e);
		if (r < 0) {
			/* Nothing half-made stays: the directories made so far go. */
			(void)cgroup_destroy(cg);
			return r;
		}
		first = first ?: cg->path[c];
	}

	r = version == 1 ? apply_v1(cg, l, e) : apply_v2(cg, l, e);
	if (r < 0) {
		(void)cgroup_destroy(cg);
		return r;
	}
	if (version == 2) {
		cg->dir_fd = open(first, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (cg->dir_fd < 0) {
			r = sandbox_error_set(e, negative_errno(), "Failed to open the cgroup: %m");
			(void)cgroup_destroy(cg);
			return r;
		}
	}
	*ret = TAKE_PTR(cg);
	return 0;
}

/* The caller's cgroup in each hierarchy, from /proc/self/cgroup. */
static int
own_cgroups(int version, char *own[_CGROUP_MAX])
{
	_cleanup_fclose_ FILE *f = NULL;
	char line[4096];

	f = fopen("/proc/self/cgroup", "re");
	if (!f)
		return negative_errno();
	while (fgets(line, sizeof(line), f)) {
		char *controllers, *path, *save = NULL;

		line[strcspn(line, "\n")] = '\0';
		controllers = strchr(line, ':');
		if (!controllers)
			continue;
		*controllers++ = '\0';
		path = strchr(controllers, ':');
		if (!path)
			continue;
		*path++ = '\0';
		if (version == 2) {
			/*
			 * sandbox_cgroup_leave_own() or enable_v2() may have moved
			 * us into OWN/supervisor: grains still belong below OWN.
			 */
			size_t len = strlen(path);

			if (len > strlen("/" LEAF) &&
			    strcmp(path + len - strlen("/" LEAF), "/" LEAF) == 0)
				path[len - strlen("/" LEAF)] = '\0';
			if (strcmp(line, "0") == 0 && *controllers == '\0')
				for (int c = 0; c < _CGROUP_MAX; c++) {
					free(own[c]);
					own[c] = strdup(path);
					if (!own[c])
						return -ENOMEM;
				}
			continue;
		}
		for (char *t = strtok_r(controllers, ",", &save); t; t = strtok_r(NULL, ",", &save))
			for (int c = 0; c < _CGROUP_MAX; c++)
				if (strcmp(t, cgroup_controller_names[c]) == 0) {
					free(own[c]);
					own[c] = strdup(path);
					if (!own[c])
						return -ENOMEM;
				}
	}
	return 0;
}

/* The cgroup version at root ("/sys/fs/cgroup" when NULL), and root itself. */
static int
cgroup_version(const char **root, struct sandbox_error *e)
{
	struct statfs sfs;

	if (!*root)
		*root = "/sys/fs/cgroup";
	if (statfs(*root, &sfs) < 0)
		return sandbox_error_set(e, negative_errno(), "No cgroup file system at '%s': %m",
					 *root);
	return sfs.f_type == CGROUP2_SUPER_MAGIC ? 2 : 1;
}

int
cgroup_create(const char *root, const char *parent, const char *name,
	      const struct sandbox_limits *l, struct sandbox_cgroup **ret, struct sandbox_error *e)
{
	char *own[_CGROUP_MAX] = {};
	struct statfs sfs;
	int version, r;

	version = cgroup_version(&root, e);
	if (version < 0)
		return version;
	if (version == 1)
		for (int c = 0; c < _CGROUP_MAX; c++) {
			char path[PATH_MAX];

			if (!wanted(l, c))
				continue;
			(void)snprintf(path, sizeof(path), "%s/%s", root,
				       cgroup_controller_names[c]);
			if (statfs(path, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC)
				return sandbox_error_set(e, -ENOENT,
							 "No cgroup v1 hierarchy for the %s "
							 "controller at '%s' (and '%s' is not "
							 "cgroup v2)",
							 cgroup_controller_names[c], path, root);
		}
	r = own_cgroups(version, own);
	if (r < 0)
		sandbox_error_set(e, r, "Failed to read /proc/self/cgroup: %m");
	else
		r = cgroup_create_in(version, root, (const char *const *)own, parent, name, l, ret,
				     e);
	for (int c = 0; c < _CGROUP_MAX; c++)
		free(own[c]);
	return r;
}

int
sandbox_cgroup_leave_own(const char *root, struct sandbox_cgroup_leaf *ret, struct sandbox_error *e)
{
	char *own[_CGROUP_MAX] = {};
	_cleanup_(buf_release) struct buf dir = BUF_INIT;
	_cleanup_fclose_ FILE *procs = NULL;
	char line[32];
	int version, r;

	*ret = (struct sandbox_cgroup_leaf){};
	version = cgroup_version(&root, e);
	if (version != 2)
		return version < 0 ? version : 0;
	r = own_cgroups(2, own);
	if (r >= 0 && !own[0])
		r = -ENOENT;
	if (r >= 0 && strcmp(own[0], "/") != 0)
		r = buf_printf(&dir, "%s%s", root, own[0]);
	for (int c = 0; c < _CGROUP_MAX; c++)
		free(own[c]);
	if (r < 0)
		return sandbox_error_set(e, r,
					 "Failed to read this process's cgroup v2 "
					 "(/proc/self/cgroup): %m");
	/* The root cgroup may hold processes and still hand out controllers. */
	if (!dir.len)
		return 0;
	r = join_leaf(dir.data, e);
	if (r < 0)
		return r;
	ret->moved = true;
	/* Whatever else is left in OWN is not ours (a login shell, another program). */
	r = buf_append_str(&dir, "/cgroup.procs");
	if (r < 0)
		return sandbox_error_set(e, r, "Out of memory");
	procs = fopen(dir.data, "re");
	if (!procs)
		return sandbox_error_set(e, negative_errno(), "Failed to read '%s': %m", dir.data);
	while (fgets(line, sizeof(line), procs))
		ret->others++;
	return 1;
}

int
cgroup_open_join_fds(const struct sandbox_cgroup *cg, int fds[_CGROUP_MAX])
{
	for (int c = 0; c < _CGROUP_MAX; c++)
		fds[c] = -EBADF;
	if (cg->version == 2)
		return 0;
	for (int c = 0; c < _CGROUP_MAX; c++) {
		_cleanup_close_ int dir = -EBADF;

		if (!cg->path[c])
			continue;
		dir = open(cg->path[c], O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (dir >= 0)
			fds[c] = openat(dir, "tasks", O_WRONLY | O_CLOEXEC | O_NOFOLLOW);
		if (dir < 0 || fds[c] < 0) {
			int r = negative_errno();
			cgroup_close_join_fds(fds);
			return r;
		}
	}
	return 0;
}

void
cgroup_close_join_fds(int fds[_CGROUP_MAX])
{
	for (int c = 0; c < _CGROUP_MAX; c++)
		fds[c] = safe_close(fds[c]);
}

int
cgroup_join(const int fds[_CGROUP_MAX])
{
	/*
	 * "0" to v1's tasks file moves the calling thread, our only one.
	 * Unlike a pid written to cgroup.procs (which makes the kernel take a
	 * global lock and wait for an RCU grace period, milliseconds), a task
	 * moving itself needs neither.
	 */
	for (int c = 0; c < _CGROUP_MAX; c++)
		if (fds[c] >= 0 && write(fds[c], "0", 1) != 1)
			return negative_errno();
	return 0;
}

/*
 * Tasks killed with the pid namespace are reaped before its init's wait
 * returns, but a hierarchy may still count them for a moment: retry EBUSY
 * for up to about a second. Gone already is fine.
 */
static int
rmdir_retry(const char *path)
{
	for (int attempt = 0;; attempt++) {
		if (rmdir(path) >= 0 || errno == ENOENT)
			return 0;
		if (errno != EBUSY || attempt >= 500)
			return log_debug_errno(errno, "cgroup: Failed to remove '%s': %m", path);
		(void)nanosleep(&(struct timespec){ .tv_nsec = 2 * 1000 * 1000 }, NULL);
	}
}

int
cgroup_destroy(struct sandbox_cgroup *cg)
{
	int result = 0, r;

	if (!cg)
		return 0;
	for (int c = 0; c < _CGROUP_MAX; c++) {
		bool seen = false;

		if (!cg->path[c])
			continue;
		for (int d = 0; d < c; d++)
			seen = seen || (cg->path[d] && strcmp(cg->path[d], cg->path[c]) == 0);
		if (seen)
			continue;
		r = rmdir_retry(cg->path[c]);
		if (r < 0)
			result = r;
	}
	return result;
}

/* ---- stats and the sweep of a dead supervisor's grains -------------------- */

/* The first number in dir/name (a cgroup file), or the one after "key " in it. */
static int
read_number(const char *dir, const char *name, const char *key, uint64_t *ret)
{
	_cleanup_close_ int dfd = -EBADF;
	_cleanup_fclose_ FILE *f = NULL;
	char line[256];
	int fd;

	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return negative_errno();
	fd = openat(dfd, name, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return negative_errno();
	f = fdopen(fd, "re");
	if (!f) {
		int r = negative_errno();

		(void)close(fd);
		return r;
	}
	while (fgets(line, sizeof(line), f)) {
		size_t klen = key ? strlen(key) : 0;
		char *value = line;

		if (key && (strncmp(line, key, klen) != 0 || line[klen] != ' '))
			continue;
		value += key ? klen + 1 : 0;
		value[strcspn(value, "\n")] = '\0';
		return parse_uint64(value, ret);
	}
	return -ENODATA;
}

/*
 * CPU time of every process in a v1 cgroup without cpuacct beside it, from
 * /proc: each live process's own time plus that of the children it reaped.
 * Every process that ever ran in the grain is counted once (a reaped one in
 * its reaper, and so on up to grain-init), to the kernel's tick.
 */
static int
cpu_usec_from_proc(const char *dir, uint64_t *ret)
{
	_cleanup_close_ int dfd = -EBADF;
	_cleanup_fclose_ FILE *f = NULL;
	long ticks = sysconf(_SC_CLK_TCK);
	uint64_t total = 0;
	char line[32];
	int fd;

	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return negative_errno();
	fd = openat(dfd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0 || !(f = fdopen(fd, "re"))) {
		int r = negative_errno();

		(void)safe_close(fd);
		return r;
	}
	if (ticks <= 0)
		return -EINVAL;
	while (fgets(line, sizeof(line), f)) {
		_cleanup_fclose_ FILE *stat = NULL;
		char path[64], buf[1024], *p;
		unsigned long long t[4];

		line[strcspn(line, "\n")] = '\0';
		(void)snprintf(path, sizeof(path), "/proc/%s/stat", line);
		stat = fopen(path, "re");
		if (!stat || !fgets(buf, sizeof(buf), stat))
			continue; /* gone meanwhile */
		/* The command may hold spaces and parentheses: fields start after the last ')'. */
		p = strrchr(buf, ')');
		if (!p || sscanf(p + 1,
				 " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %llu %llu",
				 &t[0], &t[1], &t[2], &t[3]) != 4)
			continue;
		total += (t[0] + t[1] + t[2] + t[3]) * 1000000ULL / (unsigned long long)ticks;
	}
	*ret = total;
	return 0;
}

int
cgroup_stats(const struct sandbox_cgroup *cg, uint64_t *ret_memory, uint64_t *ret_cpu_usec)
{
	const char *memory = cg->path[CGROUP_MEMORY], *cpu = cg->path[CGROUP_CPU];
	const char *any = memory ?: cpu ?: cg->path[CGROUP_PIDS];
	uint64_t ns;

	*ret_memory = *ret_cpu_usec = 0;
	if (memory)
		(void)read_number(memory,
				  cg->version == 2 ? "memory.current" : "memory.usage_in_bytes",
				  NULL, ret_memory);
	if (cg->version == 2)
		(void)read_number(any, "cpu.stat", "usage_usec", ret_cpu_usec);
	else if (cpu && read_number(cpu, "cpuacct.usage", NULL, &ns) >= 0) /* cpu,cpuacct */
		*ret_cpu_usec = ns / 1000;
	else if (any)
		(void)cpu_usec_from_proc(any, ret_cpu_usec);
	return 0;
}

/* Whether dirfd's cgroup.procs lists pid right now. */
static bool
cgroup_lists_pid(int dirfd, uint32_t pid)
{
	_cleanup_fclose_ FILE *f = NULL;
	char line[32];
	uint32_t p;
	int fd;

	fd = openat(dirfd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
	if (fd < 0)
		return false;
	f = fdopen(fd, "re");
	if (!f) {
		(void)close(fd);
		return false;
	}
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = '\0';
		if (parse_uint32(line, &p) >= 0 && p == pid)
			return true;
	}
	return false;
}

/*
 * SIGKILL every process in the cgroup dir until none is left. v2 has
 * cgroup.kill (Linux 5.14) for that; otherwise, and on v1, each pid of
 * cgroup.procs is killed through a pidfd taken while it is still listed
 * there (a pid read from the file may be reused by then: a pidfd opened
 * after the check is refused below), in rounds, since a process may fork
 * between a read and the kills (no freezer). *killed counts the signals.
 */
static int
kill_all(int version, const char *dir, unsigned *killed)
{
	_cleanup_close_ int dfd = -EBADF;

	dfd = open(dir, O_PATH | O_DIRECTORY | O_CLOEXEC);
	if (dfd < 0)
		return negative_errno();
	if (version == 2)
		(void)write_file_at(dfd, "cgroup.kill", "1");
	for (int round = 0; round < 1000; round++) {
		_cleanup_fclose_ FILE *f = NULL;
		char line[32];
		bool any = false;
		int fd;

		fd = openat(dfd, "cgroup.procs", O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0 || !(f = fdopen(fd, "re"))) {
			int r = negative_errno();

			(void)safe_close(fd);
			return r == -ENOENT ? 0 : r;
		}
		while (fgets(line, sizeof(line), f)) {
			_cleanup_close_ int pidfd = -EBADF;
			uint32_t pid;

			line[strcspn(line, "\n")] = '\0';
			if (parse_uint32(line, &pid) < 0 || pid <= 1)
				continue;
			any = true;
			pidfd = pidfd_open((pid_t)pid, 0);
			if (pidfd < 0)
				continue; /* gone already */
			if (!cgroup_lists_pid(dfd, pid))
				continue; /* exited, its pid reused: not ours */
			if (pidfd_send_signal(pidfd, SIGKILL, NULL, 0) >= 0)
				(*killed)++;
		}
		if (!any)
			return 0;
		(void)nanosleep(&(struct timespec){ .tv_nsec = 1000 * 1000 }, NULL);
	}
	return -EBUSY;
}

/* Empty and remove every cgroup below dir (not dir itself), depth first. */
static int
sweep_below(int version, const char *dir, unsigned depth, struct sandbox_sweep *stats)
{
	_cleanup_(buf_release) struct buf sub = BUF_INIT;
	DIR *d;
	struct dirent *de;
	int result = 0, r;

	if (depth > 8)
		return -ELOOP;
	d = opendir(dir);
	if (!d)
		return errno == ENOENT ? 0 : negative_errno();
	while ((errno = 0, de = readdir(d))) {
		if (de->d_type != DT_DIR || strcmp(de->d_name, ".") == 0 ||
		    strcmp(de->d_name, "..") == 0)
			continue;
		buf_clear(&sub);
		r = buf_printf(&sub, "%s/%s", dir, de->d_name);
		if (r >= 0)
			r = sweep_below(version, sub.data, depth + 1, stats);
		if (r >= 0)
			r = kill_all(version, sub.data, &stats->killed);
		if (r >= 0)
			r = rmdir_retry(sub.data);
		if (r >= 0)
			stats->removed++;
		else
			result = r;
	}
	if (errno != 0)
		result = negative_errno();
	(void)closedir(d);
	return result;
}

int
sandbox_cgroup_sweep(const char *root, const char *parent, enum sandbox_sweep_flags flags,
		     struct sandbox_sweep *ret, struct sandbox_error *e)
{
	_cleanup_(buf_release) struct buf dir = BUF_INIT;
	char *own[_CGROUP_MAX] = {};
	struct sandbox_sweep stats = {};
	int version, r;

	if (ret)
		*ret = stats;
	if (!parent)
		parent = "granary";
	if (!relative_path_ok(parent))
		return sandbox_error_set(e, -EINVAL, "Bad cgroup parent '%s'", parent);
	version = cgroup_version(&root, e);
	if (version < 0)
		return version;
	r = own_cgroups(version, own);
	if (r < 0) {
		sandbox_error_set(e, r, "Failed to read /proc/self/cgroup: %m");
		goto out;
	}
	for (int c = 0; c < _CGROUP_MAX; c++) {
		if (!own[c] || (version == 2 && c > 0))
			continue; /* v2: one hierarchy, every controller */
		buf_clear(&dir);
		if (version == 1)
			r = buf_printf(&dir, "%s/%s%s/%s", root, cgroup_controller_names[c],
				       strcmp(own[c], "/") == 0 ? "" : own[c], parent);
		else
			r = buf_printf(&dir, "%s%s/%s", root,
				       strcmp(own[c], "/") == 0 ? "" : own[c], parent);
		if (r >= 0)
			r = sweep_below(version, dir.data, 0, &stats);
		/* Busy (another supervisor's grains, or its own cgroups): it stays. */
		if (r >= 0 && (flags & SANDBOX_SWEEP_PARENT) && rmdir(dir.data) < 0 &&
		    errno != ENOENT && errno != EBUSY)
			r = negative_errno();
		if (r < 0) {
			sandbox_error_set(e, r, "Failed to remove the cgroups below '%s': %m",
					  dir.data ?: parent);
			goto out;
		}
	}
	r = 0;
out:
	for (int c = 0; c < _CGROUP_MAX; c++)
		free(own[c]);
	if (ret)
		*ret = stats;
	return r;
}
