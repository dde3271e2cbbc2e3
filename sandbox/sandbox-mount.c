/* SPDX-License-Identifier: MIT */
/*
 * sandbox-mount.c: the grain's file system, built in the child inside its new
 * mount namespace (owned by its new user namespace, where it still holds every
 * capability), with the mount API of Linux 5.12+ (fsopen, open_tree,
 * mount_setattr, move_mount): each mount is made detached, given its flags,
 * and only then attached, so nothing is ever visible with the wrong flags.
 *
 *	/                tmpfs, read-only once built (nosuid, nodev, noexec)
 *	/<entry>         each top-level entry of the package: a read-only bind
 *	                 (nosuid, nodev); top-level symlinks are copied
 *	/var             the grain's data: bind (nosuid, nodev), or a tmpfs
 *	/tmp             tmpfs of spec->tmp_size (nosuid, nodev)
 *	/dev             read-only tmpfs (nodev); null zero full random urandom:
 *	                 read-only binds of the host's nodes (nosuid, noexec, the
 *	                 only mounts without nodev); shm: tmpfs;
 *	                 fd stdin stdout stderr: symlinks into /proc/self/fd
 *	/proc            procfs of the grain's pid namespace with subset=pid
 *	<bind targets>   read-only binds asked for by the spec (nosuid, nodev)
 *
 * Why this is safe:
 *   - every host path is opened once, at the start, by the child in its own
 *     copy of the host's mount table; the grain never sees that table: after
 *     pivot_root the old root is detached, and propagation is private, so no
 *     mount made on the host later reaches the grain (nor any of ours the host);
 *   - capabilities here are those of the new user namespace: the kernel lets
 *     us add restrictions to mounts we copied from the host, never lift them
 *     (those flags are locked), and DAC on host files still applies to our
 *     host uid;
 *   - /proc with subset=pid shows processes of the grain's pid namespace and
 *     nothing global: no /proc/sys, /proc/kcore, /proc/sysrq-trigger, no host
 *     memory or load figures. It must be mounted before pivot_root: the kernel
 *     lets a user namespace mount procfs only while a full procfs is visible.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

/* A package with more top-level entries than this is refused, not mounted. */
#define MAX_TOP_LEVEL 256

const char *const sandbox_dev_nodes[] = { "null", "zero", "full", "random", "urandom", NULL };
const char *const sandbox_dev_links[][2] = {
	{ "fd", "/proc/self/fd" },
	{ "stdin", "/proc/self/fd/0" },
	{ "stdout", "/proc/self/fd/1" },
	{ "stderr", "/proc/self/fd/2" },
	{ NULL, NULL },
};

/* Names of the package's top level we never bind: we provide them, or nothing. */
static const char *const reserved[] = { "dev", "proc", "sys", "tmp", "var", NULL };

static bool
is_reserved(const char *name)
{
	if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
		return true;
	for (size_t i = 0; reserved[i]; i++)
		if (strcmp(name, reserved[i]) == 0)
			return true;
	return false;
}

/* A new filesystem instance (tmpfs, proc), detached, flags set: its mount fd. */
static int
new_fs(const char *type, const char *const *options, unsigned attrs, struct sandbox_error *e)
{
	_cleanup_close_ int fs = -EBADF;
	int mnt;

	fs = fsopen(type, FSOPEN_CLOEXEC);
	if (fs < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create a %s: %m", type);
	for (size_t i = 0; options && options[i]; i += 2)
		if (fsconfig(fs, FSCONFIG_SET_STRING, options[i], options[i + 1], 0) < 0)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to set %s=%s on %s: %m", options[i],
						 options[i + 1], type);
	if (fsconfig(fs, FSCONFIG_CMD_CREATE, NULL, NULL, 0) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create a %s: %m", type);
	mnt = fsmount(fs, FSMOUNT_CLOEXEC, attrs);
	if (mnt < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to mount a %s: %m", type);
	return mnt;
}

static int
new_tmpfs(uint64_t size, const char *mode, bool grain_owned, unsigned attrs,
	  struct sandbox_error *e)
{
	char size_s[32];
	const char *options[] = { "size", size_s,
				  "mode", mode,
				  "uid",  STRINGIFY(SANDBOX_INSIDE_UID),
				  "gid",  STRINGIFY(SANDBOX_INSIDE_GID),
				  NULL };

	(void)snprintf(size_s, sizeof(size_s), "%llu", (unsigned long long)size);
	if (!grain_owned)
		options[4] = NULL;
	return new_fs("tmpfs", options, attrs, e);
}

/*
 * A detached copy of the tree at (dirfd, name), never following a symlink at
 * name, with attrs set on every mount in it and private propagation.
 */
static int
clone_tree(int dirfd, const char *name, unsigned attrs, struct sandbox_error *e)
{
	struct mount_attr attr = { .attr_set = attrs, .propagation = MS_PRIVATE };
	_cleanup_close_ int tree = -EBADF;
	int flags = OPEN_TREE_CLONE | OPEN_TREE_CLOEXEC | AT_RECURSIVE | AT_SYMLINK_NOFOLLOW;

	if (!name || !*name) {
		name = "";
		flags |= AT_EMPTY_PATH;
	}
	tree = open_tree(dirfd, name, flags);
	if (tree < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to bind '%s': %m", name);
	if (mount_setattr(tree, "", AT_EMPTY_PATH | AT_RECURSIVE, &attr, sizeof(attr)) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to set flags on '%s': %m",
					 name);
	return TAKE_FD(tree);
}

static int
attach(int mnt, int dirfd, const char *name, struct sandbox_error *e)
{
	if (move_mount(mnt, "", dirfd, name, MOVE_MOUNT_F_EMPTY_PATH) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to mount on '%s': %m", name);
	return 0;
}

/* Create an empty mount point of the right type for an fd: directory or file. */
static int
make_mount_point(int dirfd, const char *name, bool directory, struct sandbox_error *e)
{
	if (directory) {
		if (mkdirat(dirfd, name, 0755) < 0 && errno != EEXIST)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to create mount point '%s': %m", name);
	} else {
		int fd = openat(dirfd, name, O_CREAT | O_EXCL | O_RDONLY | O_CLOEXEC | O_NOFOLLOW,
				0444);
		if (fd < 0 && errno != EEXIST)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to create mount point '%s': %m", name);
		(void)safe_close(fd);
	}
	return 0;
}

static int
bind_at(int src_dirfd, const char *src_name, bool directory, unsigned attrs, int dirfd,
	const char *name, struct sandbox_error *e)
{
	_cleanup_close_ int tree = -EBADF;
	int r;

	r = make_mount_point(dirfd, name, directory, e);
	if (r < 0)
		return r;
	tree = clone_tree(src_dirfd, src_name, attrs, e);
	if (tree < 0)
		return tree;
	return attach(tree, dirfd, name, e);
}

/* Each top-level entry of the package: directories and files bound, symlinks copied. */
static int
mount_package(int pkg, int root, struct sandbox_error *e)
{
	char buf[4096] __attribute__((aligned(8)));
	unsigned count = 0;
	ssize_t n;

	/* getdents64 rather than readdir(): no allocation in the child. */
	while ((n = getdents64(pkg, buf, sizeof(buf))) > 0) {
		for (ssize_t off = 0; off < n;) {
			struct dirent64 *d = (struct dirent64 *)(buf + off);
			struct stat st;
			int r;

			off += d->d_reclen;
			if (is_reserved(d->d_name))
				continue;
			if (++count > MAX_TOP_LEVEL)
				return sandbox_error_set(e, -E2BIG,
							 "The package has more than %d top-level "
							 "entries",
							 MAX_TOP_LEVEL);
			if (fstatat(pkg, d->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0)
				return sandbox_error_set(e, negative_errno(),
							 "Failed to stat '%s' in the package: %m",
							 d->d_name);
			if (S_ISLNK(st.st_mode)) {
				char target[PATH_MAX];
				ssize_t len =
					readlinkat(pkg, d->d_name, target, sizeof(target) - 1);

				if (len < 0)
					return sandbox_error_set(e, negative_errno(),
								 "Failed to read link '%s': %m",
								 d->d_name);
				target[len] = '\0';
				if (symlinkat(target, root, d->d_name) < 0)
					return sandbox_error_set(e, negative_errno(),
								 "Failed to copy link '%s': %m",
								 d->d_name);
				continue;
			}
			if (!S_ISDIR(st.st_mode) && !S_ISREG(st.st_mode))
				continue; /* devices, FIFOs, sockets: never part of a package */
			r = bind_at(pkg, d->d_name, S_ISDIR(st.st_mode),
				    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, root,
				    d->d_name, e);
			if (r < 0)
				return r;
		}
	}
	if (n < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to list the package: %m");
	return 0;
}

static int
mount_dev(int root, const int *node_fds, uint64_t shm_size, struct sandbox_error *e)
{
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	_cleanup_close_ int dev = -EBADF, shm = -EBADF;
	int r;

	dev = new_tmpfs(64 << 10, "0755", false,
			MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
	if (dev < 0)
		return dev;
	if (mkdirat(root, "dev", 0755) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create /dev: %m");
	r = attach(dev, root, "dev", e);
	if (r < 0)
		return r;
	/* Device binds are the only mounts without nodev; read-only still lets them be written. */
	for (size_t i = 0; sandbox_dev_nodes[i]; i++) {
		r = bind_at(node_fds[i], NULL, false,
			    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NOEXEC, dev,
			    sandbox_dev_nodes[i], e);
		if (r < 0)
			return r;
	}
	for (size_t i = 0; sandbox_dev_links[i][0]; i++)
		if (symlinkat(sandbox_dev_links[i][1], dev, sandbox_dev_links[i][0]) < 0)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to create /dev/%s: %m",
						 sandbox_dev_links[i][0]);
	shm = new_tmpfs(shm_size, "1777", false,
			MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
	if (shm < 0)
		return shm;
	if (mkdirat(dev, "shm", 01777) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create /dev/shm: %m");
	r = attach(shm, dev, "shm", e);
	if (r < 0)
		return r;
	/* Nothing else may appear in /dev: the tmpfs itself (not shm) becomes read-only. */
	if (mount_setattr(dev, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to make /dev read-only: %m");
	return 0;
}

/*
 * Walk to the parent of an absolute target below root, creating missing
 * directories (possible only where the tree is still our tmpfs; inside a
 * read-only package bind a missing directory is an error). Returns the
 * parent's fd and points *ret_last at the last component of target.
 */
static int
open_parent(int root, const char *target, const char **ret_last, struct sandbox_error *e)
{
	_cleanup_close_ int dir = -EBADF;
	char comp[NAME_MAX + 1];
	const char *p = target;

	dir = fcntl(root, F_DUPFD_CLOEXEC, 3);
	if (dir < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to dup: %m");
	for (;;) {
		const char *end;
		size_t len;
		int next;

		while (*p == '/')
			p++;
		end = strchrnul(p, '/');
		len = end - p;
		if (*end == '\0' || end[strspn(end, "/")] == '\0') {
			*ret_last = p;
			return TAKE_FD(dir);
		}
		if (len == 0 || len > NAME_MAX)
			return sandbox_error_set(e, -EINVAL, "Bad bind target '%s'", target);
		memcpy(comp, p, len);
		comp[len] = '\0';
		if (mkdirat(dir, comp, 0755) < 0 && errno != EEXIST)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to create '%s' for bind target '%s': %m",
						 comp, target);
		next = openat(dir, comp, O_PATH | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
		if (next < 0)
			return sandbox_error_set(e, negative_errno(),
						 "Failed to open '%s' for bind target '%s': %m",
						 comp, target);
		(void)safe_close(dir);
		dir = next;
		p = end;
	}
}

static int
mount_binds(int root, const struct sandbox_spec *spec, const int *src_fds, struct sandbox_error *e)
{
	for (size_t i = 0; i < spec->n_binds; i++) {
		_cleanup_close_ int parent = -EBADF;
		const char *last = NULL;
		struct stat st;
		int r;

		if (fstat(src_fds[i], &st) < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to stat '%s': %m",
						 spec->binds[i].source);
		parent = open_parent(root, spec->binds[i].target, &last, e);
		if (parent < 0)
			return parent;
		r = bind_at(src_fds[i], NULL, S_ISDIR(st.st_mode),
			    MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, parent, last,
			    e);
		if (r < 0)
			return r;
	}
	return 0;
}

void
mount_sources_release(struct mount_sources *src)
{
	src->pkg = safe_close(src->pkg);
	src->var = safe_close(src->var);
	for (size_t i = 0; i < ELEMENTSOF(src->nodes); i++)
		src->nodes[i] = safe_close(src->nodes[i]);
	for (size_t i = 0; i < src->n_binds; i++)
		src->binds[i] = safe_close(src->binds[i]);
	src->n_binds = 0;
}

/*
 * Is fd the directory the caller checked (identity NULL: nothing to compare)?
 * A bind must come from a path opened here, in our own mount namespace (a
 * descriptor of the caller's would name the caller's mounts, which
 * open_tree() refuses to clone), so the caller checks the object instead: it
 * holds its own descriptor meanwhile, so the inode number cannot go to
 * another directory.
 */
static bool
same_directory(int fd, const struct stat *identity)
{
	struct stat st;

	if (!identity)
		return true;
	return fstat(fd, &st) >= 0 && st.st_dev == identity->st_dev &&
	       st.st_ino == identity->st_ino;
}

int
mount_open_sources(const struct sandbox_spec *spec, struct mount_sources *src,
		   struct sandbox_error *e)
{
	struct mount_attr private = { .propagation = MS_PRIVATE };

	*src = (struct mount_sources){ .pkg = -EBADF, .var = -EBADF };
	for (size_t i = 0; i < ELEMENTSOF(src->nodes); i++)
		src->nodes[i] = -EBADF;

	/* Nothing we do from here on may propagate back to the host. */
	if (mount_setattr(AT_FDCWD, "/", AT_RECURSIVE, &private, sizeof(private)) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to make / private: %m");

	/* Every host path, opened once, before anything is mounted over it. */
	src->pkg = open(spec->root, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (src->pkg < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to open the package '%s': %m",
					 spec->root);
	if (!same_directory(src->pkg, spec->root_identity))
		return sandbox_error_set(e, -ESTALE, "'%s' was replaced", spec->root);
	if (spec->var) {
		src->var = open(spec->var, O_PATH | O_DIRECTORY | O_CLOEXEC);
		if (src->var < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
						 spec->var);
		if (!same_directory(src->var, spec->var_identity))
			return sandbox_error_set(e, -ESTALE, "'%s' was replaced", spec->var);
	}
	for (size_t i = 0; sandbox_dev_nodes[i]; i++) {
		char path[32];
		struct stat st;

		(void)snprintf(path, sizeof(path), "/dev/%s", sandbox_dev_nodes[i]);
		src->nodes[i] = open(path, O_PATH | O_NOFOLLOW | O_CLOEXEC);
		if (src->nodes[i] < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
						 path);
		if (fstat(src->nodes[i], &st) < 0 || !S_ISCHR(st.st_mode))
			return sandbox_error_set(e, -ENODEV, "'%s' is not a character device",
						 path);
	}
	if (spec->n_binds > ELEMENTSOF(src->binds))
		return sandbox_error_set(e, -E2BIG, "More than %zu binds", ELEMENTSOF(src->binds));
	for (; src->n_binds < spec->n_binds; src->n_binds++) {
		src->binds[src->n_binds] =
			open(spec->binds[src->n_binds].source, O_PATH | O_CLOEXEC);
		if (src->binds[src->n_binds] < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to open '%s': %m",
						 spec->binds[src->n_binds].source);
	}
	return 0;
}

int
mount_build(const struct sandbox_spec *spec, const struct mount_sources *src,
	    struct sandbox_error *e)
{
	static const char *const proc_options[] = { "subset", "pid", NULL };
	struct mount_attr ro = { .attr_set = MOUNT_ATTR_RDONLY };
	_cleanup_close_ int root = -EBADF, tmp = -EBADF, proc = -EBADF;
	int r;

	/*
	 * The new root: a small tmpfs holding only mount points and the
	 * package's top-level symlinks. It is attached over the host's / in our
	 * private namespace only to have a place for pivot_root; all host paths
	 * were opened before.
	 */
	root = new_tmpfs(1 << 20, "0755", false,
			 MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC, e);
	if (root < 0)
		return root;
	r = attach(root, AT_FDCWD, "/", e);
	if (r < 0)
		return r;

	r = mount_package(src->pkg, root, e);
	if (r < 0)
		return r;

	if (mkdirat(root, "var", 0755) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create /var: %m");
	if (src->var >= 0)
		r = bind_at(src->var, NULL, true, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, root, "var",
			    e);
	else {
		int t = new_tmpfs(spec->tmp_size, "0755", true,
				  MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, e);
		r = t < 0 ? t : attach(t, root, "var", e);
		(void)safe_close(t);
	}
	if (r < 0)
		return r;

	tmp = new_tmpfs(spec->tmp_size, "1777", false, MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV, e);
	if (tmp < 0)
		return tmp;
	if (mkdirat(root, "tmp", 01777) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create /tmp: %m");
	r = attach(tmp, root, "tmp", e);
	if (r < 0)
		return r;

	r = mount_dev(root, src->nodes, spec->tmp_size, e);
	if (r < 0)
		return r;

	proc = new_fs("proc", proc_options,
		      MOUNT_ATTR_RDONLY | MOUNT_ATTR_NOSUID | MOUNT_ATTR_NODEV | MOUNT_ATTR_NOEXEC,
		      e);
	if (proc < 0)
		return proc;
	if (mkdirat(root, "proc", 0555) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to create /proc: %m");
	r = attach(proc, root, "proc", e);
	if (r < 0)
		return r;

	r = mount_binds(root, spec, src->binds, e);
	if (r < 0)
		return r;

	if (mount_setattr(root, "", AT_EMPTY_PATH, &ro, sizeof(ro)) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to make / read-only: %m");

	/*
	 * pivot_root(".", ".") stacks the old root on top of the new one; the
	 * lazy unmount then detaches the old root with every host mount below
	 * it. From here the host's tree is unreachable: "/.." is "/".
	 */
	if (fchdir(root) < 0 || syscall(SYS_pivot_root, ".", ".") < 0 ||
	    umount2(".", MNT_DETACH) < 0 || chdir("/") < 0)
		return sandbox_error_set(e, negative_errno(),
					 "Failed to pivot into the new root: %m");
	return 0;
}
