/* SPDX-License-Identifier: MIT */
/*
 * install.c: verify and unpack an uploaded package into STATE/packages, as
 * root, without trusting a byte of it.
 *
 * The spk library already verifies the signature before it parses the
 * payload and checks every entry; this file adds a cage around it in case
 * the library (or libarchive, or zstd) has a bug an attacker's package can
 * reach. The unpacking process:
 *   - is pid 1 of its own pid namespace (it cannot see or signal any host
 *     process, although it keeps uid 0), in its own network, IPC and UTS
 *     namespaces (no network at all);
 *   - is chrooted into STATE/packages, the only tree it must write;
 *   - has every capability set empty (uid 0 still writes root-owned
 *     packages/ as its owner, but cannot override permissions, chown to
 *     others, mount or trace), NO_NEW_PRIVS and the seccomp denylist of
 *     lockdown.c with no sockets at all;
 *   - holds only the package file (fd 3) and the result pipe (fd 4);
 *   - has RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CPU bounds;
 *   - dies with its parent (PDEATHSIG), leaving at most a ".spk-unpack-*"
 *     directory that package_sweep() removes at the next start.
 * Its one output is a fixed-size result on the pipe; anything short of a
 * whole result means it failed.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cap-ng.h>

#include "common/log.h"
#include "common/macro.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define INSTALL_SPK_FD	    3
#define INSTALL_RESULT_FD   4
#define INSTALL_CPU_SECONDS 600

static _noreturn_ void installer_exit(struct package_install_result *res, int r, const char *format,
				      ...) _printf_(3, 4);

static _noreturn_ void
installer_exit(struct package_install_result *res, int r, const char *format, ...)
{
	va_list ap;
	ssize_t n;

	res->error = r;
	if (format) {
		va_start(ap, format);
		(void)vsnprintf(res->message, sizeof(res->message), format, ap);
		va_end(ap);
	}
	do
		n = write(INSTALL_RESULT_FD, res, sizeof(*res));
	while (n < 0 && errno == EINTR);
	_exit(n == (ssize_t)sizeof(*res) ? 0 : 1);
}

static int
set_limit(int resource, rlim_t value)
{
	struct rlimit rl = { value, value };

	return setrlimit(resource, &rl) < 0 ? negative_errno() : 0;
}

/* pid 1 of the installer's namespaces: lock down, verify, unpack, report. */
static _noreturn_ void
installer_run(int packages_fd)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	struct package_install_result res = {};
	struct spk_error err = {};
	const struct spk_info *info;
	char dest[PACKAGE_ID_LEN + 2];
	int r;

	if (fchdir(packages_fd) < 0 || chroot(".") < 0 || chdir("/") < 0)
		installer_exit(&res, negative_errno(),
			       "Failed to enter the packages directory: %m");
	if (close_range(INSTALL_RESULT_FD + 1, ~0U, 0) < 0)
		installer_exit(&res, negative_errno(), "Failed to close descriptors: %m");
	if ((r = set_limit(RLIMIT_FSIZE, SPK_DEFAULT_MAX_FILE_BYTES)) < 0 ||
	    (r = set_limit(RLIMIT_NOFILE, 64)) < 0 || (r = set_limit(RLIMIT_CORE, 0)) < 0 ||
	    (r = set_limit(RLIMIT_CPU, INSTALL_CPU_SECONDS)) < 0)
		installer_exit(&res, r, "Failed to set resource limits");
	capng_clear(CAPNG_SELECT_BOTH);
	if (capng_apply(CAPNG_SELECT_BOTH) < 0)
		installer_exit(&res, -EPERM, "Failed to drop capabilities");
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		installer_exit(&res, negative_errno(), "Failed to set no_new_privs: %m");
	r = lockdown_seccomp(LOCKDOWN_NO_SOCKETS);
	if (r < 0)
		installer_exit(&res, r, "Failed to install the seccomp filter");

	r = spk_package_open_fd(INSTALL_SPK_FD, NULL, NULL, NULL, &p, &err);
	if (r < 0)
		installer_exit(&res, r, "%s", err.message);
	info = spk_package_info(p);
	(void)snprintf(res.package_id, sizeof(res.package_id), "%s", info->package_id);
	(void)snprintf(res.app_id, sizeof(res.app_id), "%s", info->app_id);
	(void)snprintf(dest, sizeof(dest), "/%s", info->package_id);
	r = spk_package_unpack(p, dest, SPK_UNPACK_SYNC, NULL, NULL, NULL, NULL, &err);
	if (r == -EEXIST) {
		/* Named by the hash of the file: an earlier install of these very bytes
		 * (whose database row a crash may have kept from being written). */
		res.existed = 1;
		r = 0;
	}
	if (r < 0)
		installer_exit(&res, r, "%s", err.message);
	installer_exit(&res, 0, NULL);
}

/* Between the caller and pid 1: make the namespaces, run pid 1, pass on its status. */
static _noreturn_ void
installer_parent(int packages_fd, int spk_fd, int result_fd, pid_t grandparent)
{
	struct package_install_result res = {};
	int status;
	pid_t pid;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != grandparent)
		_exit(1);
	if (dup2(spk_fd, INSTALL_SPK_FD) < 0 || dup2(result_fd, INSTALL_RESULT_FD) < 0)
		_exit(1);
	if (unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		installer_exit(&res, negative_errno(),
			       "Failed to make the installer's namespaces: %m");
	pid = fork();
	if (pid < 0)
		installer_exit(&res, negative_errno(), "Failed to fork the installer: %m");
	if (pid == 0) {
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			_exit(1);
		installer_run(packages_fd);
	}
	(void)close(INSTALL_RESULT_FD); /* the reader sees EOF when the installer is gone */
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

int
package_install(int packages_fd, int spk_fd, struct package_install_result *ret)
{
	_cleanup_close_ int read_fd = -EBADF, write_fd = -EBADF;
	struct package_install_result res = {};
	struct stat st;
	int pipe_fds[2], status;
	pid_t self = getpid(), pid;
	size_t got = 0;

	/* Only a regular file: a FIFO or a device from front would hang or never end. */
	if (fstat(spk_fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		return negative_errno();
	read_fd = pipe_fds[0];
	write_fd = pipe_fds[1];

	pid = fork();
	if (pid < 0)
		return negative_errno();
	if (pid == 0)
		installer_parent(packages_fd, spk_fd, write_fd, self);
	write_fd = safe_close(write_fd);

	while (got < sizeof(res)) {
		ssize_t n = read(read_fd, (char *)&res + got, sizeof(res) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return negative_errno();

	if (got != sizeof(res) || res.error > 0 || res.error < -4095 ||
	    !memchr(res.message, '\0', sizeof(res.message)) ||
	    !memchr(res.package_id, '\0', sizeof(res.package_id)) ||
	    !memchr(res.app_id, '\0', sizeof(res.app_id))) {
		*ret = (struct package_install_result){ .error = -EPROTO };
		(void)snprintf(ret->message, sizeof(ret->message),
			       "The package installer died (%s %d) without an answer",
			       WIFSIGNALED(status) ? "signal" : "exit status",
			       WIFSIGNALED(status) ? WTERMSIG(status) : WEXITSTATUS(status));
		return 0;
	}
	if (res.error == 0 && (strlen(res.package_id) != PACKAGE_ID_LEN || !res.app_id[0]))
		res = (struct package_install_result){ .error = -EPROTO,
						       .message = "The package installer answered "
								  "without a package id" };
	*ret = res;
	return 0;
}

bool
package_id_valid(const char *id)
{
	if (strlen(id) != PACKAGE_ID_LEN)
		return false;
	for (size_t i = 0; i < PACKAGE_ID_LEN; i++)
		if (!((id[i] >= '0' && id[i] <= '9') || (id[i] >= 'a' && id[i] <= 'f')))
			return false;
	return true;
}

int
package_delete(int packages_fd, const char *id)
{
	if (!package_id_valid(id))
		return -EINVAL;
	return spk_remove_tree_at(packages_fd, id, 256);
}

int
package_sweep(int packages_fd)
{
	_cleanup_close_ int fd = -EBADF;
	DIR *d;
	struct dirent *e;
	int r = 0;

	fd = openat(packages_fd, ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	d = fdopendir(fd);
	if (!d)
		return negative_errno();
	fd = -EBADF;
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, ".spk-unpack-", 12) != 0)
			continue;
		log_info("Removing '%s', left by an install that did not finish", e->d_name);
		r = spk_remove_tree_at(packages_fd, e->d_name, 256);
		if (r < 0)
			break;
	}
	closedir(d);
	return r;
}
