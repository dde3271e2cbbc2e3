/* SPDX-License-Identifier: MIT */
/*
 * dir.c: walking and removing directory trees (dir.h).
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/macro.h"
#include "common/banned.h"

int
dir_foreach(int dir_fd, const char *name, int (*fn)(int fd, const char *entry, void *userdata),
	    void *userdata)
{
	_cleanup_close_ int fd = -EBADF;
	struct dirent *e;
	DIR *d;
	int r = 0;

	fd = openat(dir_fd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	d = fdopendir(fd);
	if (!d)
		return negative_errno();
	fd = -EBADF; /* the DIR owns it now */
	while ((errno = 0, e = readdir(d))) {
		if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
			continue;
		r = fn(dirfd(d), e->d_name, userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && errno != 0)
		r = negative_errno();
	(void)closedir(d);
	return r;
}

struct removal {
	unsigned depth_left;
	int first_error;
};

static int
remove_entry(int fd, const char *entry, void *userdata)
{
	struct removal *rm = userdata;
	int r = remove_tree_at(fd, entry, rm->depth_left);

	if (r < 0 && rm->first_error == 0)
		rm->first_error = r;
	return 0; /* on with the others */
}

int
remove_tree_at(int dir_fd, const char *name, unsigned max_depth)
{
	struct removal rm = {};
	int r;

	if (unlinkat(dir_fd, name, 0) == 0 || errno == ENOENT)
		return 0;
	/* Linux says EISDIR for a directory; POSIX allows EPERM. */
	if (errno != EISDIR && errno != EPERM)
		return negative_errno();
	if (max_depth == 0)
		return -ELOOP;
	rm.depth_left = max_depth - 1;
	r = dir_foreach(dir_fd, name, remove_entry, &rm);
	if (r < 0)
		return r;
	if (unlinkat(dir_fd, name, AT_REMOVEDIR) < 0 && errno != ENOENT && rm.first_error == 0)
		return negative_errno();
	return rm.first_error;
}
