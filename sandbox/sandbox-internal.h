/* SPDX-License-Identifier: MIT */
/*
 * sandbox-internal.h: declarations shared by the files of sandbox/ only
 * (and by white-box unit tests). Not part of the API; see sandbox.h.
 */
#ifndef GRANARY_SANDBOX_INTERNAL_H
#define GRANARY_SANDBOX_INTERNAL_H

#include <stdarg.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"
#include "sandbox/sandbox.h"

/* sandbox.c */

/*
 * Fill e (may be NULL) with the formatted message, "%m" meaning r; return r
 * (negative errno). Allocates nothing: safe in the child after a raw clone.
 */
int sandbox_error_set(struct sandbox_error *e, int r, const char *format, ...) _printf_(3, 4);

/* Write a short string to path (cgroup files, uid maps). */
int write_file(const char *path, const char *value);
int write_file_at(int dirfd, const char *name, const char *value);

/* sandbox-mount.c */

#define SANDBOX_MAX_BINDS 64

/* Host paths the grain's tree is built from, opened before anything is mounted. */
struct mount_sources {
	int pkg;		      /* owned; O_RDONLY: we list it */
	int var;		      /* owned; O_PATH, or -EBADF */
	int nodes[5];		      /* owned; O_PATH: sandbox_dev_nodes[] */
	int binds[SANDBOX_MAX_BINDS]; /* owned; O_PATH */
	size_t n_binds;
};

/*
 * In the child, in its new mount namespace: make every mount private, then
 * open the package, data dir, device nodes and bind sources. Runs with the
 * host uid the child was cloned with (root's, without host capabilities).
 */
int mount_open_sources(const struct sandbox_spec *spec, struct mount_sources *src,
		       struct sandbox_error *e);
void mount_sources_release(struct mount_sources *src);

/*
 * Then, as the grain's uid with every capability of the new user namespace
 * (new inodes need an owner the namespace maps): build the grain's tree on a
 * fresh tmpfs and pivot_root into it. Returns with / and the cwd at the new
 * root.
 */
int mount_build(const struct sandbox_spec *spec, const struct mount_sources *src,
		struct sandbox_error *e);

/* The nodes bound into /dev, the symlinks beside them (tests check both). */
extern const char *const sandbox_dev_nodes[];
extern const char *const sandbox_dev_links[][2];

/* sandbox-seccomp-bpf.c */

/* prctl(PR_SET_SECCOMP) with a ready program: no allocation. */
int seccomp_load_program(const void *filter, size_t len);

/* sandbox-cgroup.c */

enum cgroup_controller {
	CGROUP_MEMORY,
	CGROUP_PIDS,
	CGROUP_CPU,
	_CGROUP_MAX,
};

extern const char *const cgroup_controller_names[_CGROUP_MAX];

struct sandbox_cgroup {
	int version;		 /* 1 or 2 */
	char *path[_CGROUP_MAX]; /* owned; the grain's directory per controller, NULL if unused */
	int dir_fd;		 /* v2: the directory, for CLONE_INTO_CGROUP; else -EBADF */
};

/*
 * Create the grain's cgroup below the caller's own one (read from
 * /proc/self/cgroup) and apply the limits. root: NULL for /sys/fs/cgroup.
 */
int cgroup_create(const char *root, const char *parent, const char *name,
		  const struct sandbox_limits *limits, struct sandbox_cgroup **ret,
		  struct sandbox_error *e);

/*
 * The same with the layout given: version 1 or 2, the hierarchies under
 * root, own[] the caller's cgroup in each (v2: own[0]). For unit tests on a
 * directory tree that imitates cgroupfs.
 */
int cgroup_create_in(int version, const char *root, const char *const own[_CGROUP_MAX],
		     const char *parent, const char *name, const struct sandbox_limits *limits,
		     struct sandbox_cgroup **ret, struct sandbox_error *e);

/*
 * v1: open the "tasks" file of each hierarchy of cg (fds[] the caller's,
 * -EBADF where unused; none for v2, which uses CLONE_INTO_CGROUP), so that
 * the child can join with cgroup_join() before it runs anything else.
 */
int cgroup_open_join_fds(const struct sandbox_cgroup *cg, int fds[_CGROUP_MAX]);
void cgroup_close_join_fds(int fds[_CGROUP_MAX]);
/* In the single-threaded child: move the calling task into each. No allocation. */
int cgroup_join(const int fds[_CGROUP_MAX]);

/* The memory in use and CPU time used so far (0 where unknown). */
int cgroup_stats(const struct sandbox_cgroup *cg, uint64_t *ret_memory, uint64_t *ret_cpu_usec);

/* Remove the grain's directories (retrying while exiting tasks drain). */
int cgroup_destroy(struct sandbox_cgroup *cg);

struct sandbox_cgroup *cgroup_free(struct sandbox_cgroup *cg);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct sandbox_cgroup *, cgroup_free);

/* sandbox-host.c */

/* Like sandbox_check_host() with the sysctl directory given (unit tests). */
int check_sysctls(const char *proc_sys, sandbox_check_report_t report, void *userdata);

#endif
