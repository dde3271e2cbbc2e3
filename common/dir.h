/* SPDX-License-Identifier: MIT */
/*
 * dir.h: walking and removing directory trees below a descriptor, never
 * following a symlink (a tree may hold links planted by a grain or a package).
 */
#ifndef GRANARY_COMMON_DIR_H
#define GRANARY_COMMON_DIR_H

/*
 * Call fn(fd, entry, userdata) for every entry of the directory name below
 * dir_fd ("." for dir_fd itself), "." and ".." left out; fd is the
 * directory's own descriptor, for working on the entry relative to it. A
 * negative return of fn stops the walk and is returned, as is a failed read.
 * name must be a directory, not a symlink to one (-ENOTDIR, -ELOOP).
 */
int dir_foreach(int dir_fd, const char *name, int (*fn)(int fd, const char *entry, void *userdata),
		void *userdata);

/*
 * Remove name below dir_fd and everything in it, depth first, never
 * following a symlink: a link is removed, not what it points to. Goes on
 * past a failure (removing what it can) and returns the first one; -ELOOP
 * deeper than max_depth. A missing name is no error.
 */
int remove_tree_at(int dir_fd, const char *name, unsigned max_depth);

#endif
