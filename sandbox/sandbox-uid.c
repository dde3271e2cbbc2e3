/* SPDX-License-Identifier: MIT */
/*
 * sandbox-uid.c: host uids for grains, and the one host-side operation on a
 * grain's files the sandbox needs (handing a data directory to a uid).
 *
 * Each running sandbox maps its inside uid 1000 to a host uid no other
 * running sandbox has: two grains then cannot signal, ptrace-check or open
 * each other's files even through a shared kernel object. Uniqueness is an
 * flock on /run/granary/sandbox-uids/UID, held while the sandbox runs, so
 * it holds across processes and dies with its holder.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

#define LOCK_DIR       "/run/granary/sandbox-uids"
#define MAX_TREE_DEPTH 256

static int
lock_dir(void)
{
	int fd;

	(void)mkdir("/run/granary", 0755);
	(void)mkdir(LOCK_DIR, 0700);
	fd = open(LOCK_DIR, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	return fd < 0 ? negative_errno() : fd;
}

static int
try_lock(int dir, uid_t uid)
{
	_cleanup_close_ int fd = -EBADF;
	char name[16];

	(void)snprintf(name, sizeof(name), "%u", (unsigned)uid);
	fd = openat(dir, name, O_RDWR | O_CREAT | O_NOFOLLOW | O_CLOEXEC, 0600);
	if (fd < 0)
		return negative_errno();
	if (flock(fd, LOCK_EX | LOCK_NB) < 0)
		return errno == EWOULDBLOCK ? -EBUSY : negative_errno();
	return TAKE_FD(fd);
}

int
sandbox_uid_acquire(uid_t uid, uid_t first, uint32_t count, uid_t *ret_uid, int *ret_lock_fd)
{
	_cleanup_close_ int dir = -EBADF;
	int fd;

	if (count == 0 || first == 0 || (uint64_t)first + count > 0xffffffffULL)
		return -EINVAL;
	dir = lock_dir();
	if (dir < 0)
		return dir;
	if (uid != (uid_t)-1) {
		if (uid == 0)
			return -EINVAL;
		fd = try_lock(dir, uid);
		if (fd < 0)
			return fd;
		*ret_uid = uid;
		*ret_lock_fd = fd;
		return 0;
	}
	/* Linear from the start: O(running sandboxes) attempts. */
	for (uint32_t i = 0; i < count; i++) {
		fd = try_lock(dir, first + i);
		if (fd == -EBUSY)
			continue;
		if (fd < 0)
			return fd;
		*ret_uid = first + i;
		*ret_lock_fd = fd;
		return 0;
	}
	return -EUSERS;
}

static int
chown_below(int dirfd, uid_t uid, gid_t gid, unsigned depth)
{
	_cleanup_close_ int copy = -EBADF;
	DIR *d;
	struct dirent *de;
	int r = 0;

	if (depth > MAX_TREE_DEPTH)
		return -ELOOP;
	if (fchownat(dirfd, "", uid, gid, AT_EMPTY_PATH) < 0)
		return negative_errno();
	copy = fcntl(dirfd, F_DUPFD_CLOEXEC, 3);
	if (copy < 0)
		return negative_errno();
	d = fdopendir(copy);
	if (!d)
		return negative_errno();
	TAKE_FD(copy);
	while (r >= 0 && (errno = 0, de = readdir(d))) {
		struct stat st;

		if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
			continue;
		if (fstatat(dirfd, de->d_name, &st, AT_SYMLINK_NOFOLLOW) < 0) {
			if (errno != ENOENT) /* renamed away meanwhile: nothing to do */
				r = negative_errno();
			continue;
		}
		if (S_ISDIR(st.st_mode)) {
			/* O_NOFOLLOW: if a symlink took its place since fstatat, ELOOP. */
			int sub = openat(dirfd, de->d_name,
					 O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);

			if (sub < 0) {
				/* Gone, or no longer a directory: skip it. */
				if (errno != ENOENT && errno != ELOOP && errno != ENOTDIR)
					r = negative_errno();
				continue;
			}
			r = chown_below(sub, uid, gid, depth + 1);
			(void)safe_close(sub);
			continue;
		}
		/*
		 * A file with other links may be a link to a file outside the
		 * tree (planted through a hard link): leave it as it is.
		 */
		if (S_ISREG(st.st_mode) && st.st_nlink > 1)
			continue;
		/* The name, never what it points to: lchown a symlink, chown a file. */
		if (fchownat(dirfd, de->d_name, uid, gid, AT_SYMLINK_NOFOLLOW) < 0 &&
		    errno != ENOENT)
			r = negative_errno();
	}
	if (r >= 0 && errno != 0)
		r = negative_errno();
	(void)closedir(d);
	return r;
}

int
sandbox_chown_tree(int dirfd, uid_t uid, gid_t gid)
{
	return chown_below(dirfd, uid, gid, 0);
}
