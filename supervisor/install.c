/* SPDX-License-Identifier: MIT */
/*
 * install.c: verify and unpack an uploaded package into STATE/packages, as
 * root, without trusting a byte of it.
 *
 * The spk library already verifies the signature before it parses the
 * payload and checks every entry; the unpacking runs in a cage in case the
 * library (or libarchive, or zstd) has a bug an attacker's package can
 * reach: a separate program, granary-installer (installer.c), so granaryd's
 * own processes never map libarchive and its dependencies. It:
 *   - is pid 1 of its own pid namespace (it cannot see or signal any host
 *     process, although it keeps uid 0), in its own network, IPC and UTS
 *     namespaces (no network at all);
 *   - is chrooted into STATE/packages, the only tree it must write;
 *   - has every capability set empty (uid 0 still writes root-owned
 *     packages/ as its owner, but cannot override permissions, chown to
 *     others, mount or trace), NO_NEW_PRIVS and the seccomp denylist of
 *     lockdown.c with no sockets at all;
 *   - holds only the package file (fd 3), the result pipe (fd 4) and
 *     packages/ (fd 5, until it chroots there);
 *   - has RLIMIT_FSIZE, RLIMIT_NOFILE and RLIMIT_CPU bounds;
 *   - dies with its parent (PDEATHSIG), leaving at most a ".spk-unpack-*"
 *     directory that package_sweep() removes at the next start.
 * Its one output is a fixed-size result on the pipe; anything short of a
 * whole result means it failed.
 */
#include <assert.h>
#include <limits.h>
#include <errno.h>
#include <fcntl.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/dir.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#ifndef GRANARY_LIBEXECDIR
#define GRANARY_LIBEXECDIR "/usr/local/lib/granary"
#endif

int
libexec_find(const char *name, char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);

	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			(void)snprintf(buf, size, "%s/%s", self, name);
			if (access(buf, X_OK) >= 0)
				return 0;
		}
	}
	(void)snprintf(buf, size, "%s/%s", GRANARY_LIBEXECDIR, name);
	return access(buf, X_OK) < 0 ? negative_errno() : 0;
}

/* What an installer that never got to run reports. */
static _noreturn_ void
fail_early(int result_fd, int r, const char *what)
{
	struct package_install_result res = { .error = r };

	(void)snprintf(res.message, sizeof(res.message), "%s: %s", what, strerror(-r));
	(void)!write(result_fd, &res, sizeof(res));
	_exit(1);
}

/*
 * Close every descriptor of this process but keep[] (n of them, all above
 * 2): the launcher's other descriptors (its front connection, grains'
 * pidfds and uid locks) must not live on in a process that waits minutes
 * for an install.
 */
static int
close_all_but(const int *keep, size_t n)
{
	int sorted[3];
	unsigned from = 3;

	assert(n <= ELEMENTSOF(sorted));
	memcpy(sorted, keep, n * sizeof(int));
	for (size_t i = 1; i < n; i++)
		for (size_t j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
			int t = sorted[j];

			sorted[j] = sorted[j - 1];
			sorted[j - 1] = t;
		}
	for (size_t i = 0; i < n; i++) {
		if ((unsigned)sorted[i] > from && close_range(from, (unsigned)sorted[i] - 1, 0) < 0)
			return negative_errno();
		from = MAX(from, (unsigned)sorted[i] + 1);
	}
	return close_range(from, ~0U, 0) < 0 ? negative_errno() : 0;
}

/*
 * Between the caller and the installer: make the namespaces, start the
 * installer as their pid 1 with its three descriptors, pass on its status.
 */
static _noreturn_ void
installer_parent(const char *path, int packages_fd, int spk_fd, int result_fd, pid_t grandparent)
{
	char *const argv[] = { (char *)"granary-installer", NULL };
	char *const envp[] = { (char *)"PATH=/nonexistent", (char *)"LC_ALL=C.UTF-8", NULL };
	const int keep[] = { packages_fd, spk_fd, result_fd };
	sigset_t none;
	int status;
	pid_t pid;

	if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != grandparent)
		_exit(1);
	/* The launcher blocks the signals it takes on a signalfd; the installer gets none blocked. */
	sigemptyset(&none);
	if (sigprocmask(SIG_SETMASK, &none, NULL) < 0 || close_all_but(keep, ELEMENTSOF(keep)) < 0)
		fail_early(result_fd, negative_errno(), "Failed to prepare the installer");
	if (unshare(CLONE_NEWPID | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS) < 0)
		fail_early(result_fd, negative_errno(),
			   "Failed to make the installer's namespaces");
	pid = fork();
	if (pid < 0)
		fail_early(result_fd, negative_errno(), "Failed to fork the installer");
	if (pid == 0) {
		/* Descriptors: packages_fd, spk_fd, result_fd are above 2; move them to 3, 4, 5
		 * through copies above 5 so none overwrites another. */
		int p = fcntl(packages_fd, F_DUPFD, 6), s = fcntl(spk_fd, F_DUPFD, 6),
		    w = fcntl(result_fd, F_DUPFD, 6);

		if (p < 0 || s < 0 || w < 0 || dup2(s, INSTALLER_SPK_FD) < 0 ||
		    dup2(w, INSTALLER_RESULT_FD) < 0 || dup2(p, INSTALLER_PACKAGES_FD) < 0 ||
		    close_range(INSTALLER_PACKAGES_FD + 1, ~0U, 0) < 0 ||
		    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0)
			_exit(1);
		execve(path, argv, envp);
		fail_early(INSTALLER_RESULT_FD, negative_errno(), "Failed to start the installer");
	}
	(void)close(result_fd); /* the reader sees EOF when the installer is gone */
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			_exit(1);
	_exit(WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
}

struct package_install {
	pid_t pid;   /* the installer's parent (installer_parent()) */
	int pidfd;   /* owned */
	int read_fd; /* owned: the result pipe */
	bool reaped;
};

struct package_install *
package_install_free(struct package_install *i)
{
	if (!i)
		return NULL;
	if (!i->reaped) {
		/* Its child, the installer, dies with it (PDEATHSIG). Not reaped: the pid is its. */
		if (i->pidfd >= 0)
			(void)pidfd_send_signal(i->pidfd, SIGKILL, NULL, 0);
		else
			(void)kill(i->pid, SIGKILL);
		while (waitpid(i->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	(void)safe_close(i->pidfd);
	(void)safe_close(i->read_fd);
	free(i);
	return NULL;
}

int
package_install_start(const char *path, int packages_fd, int spk_fd, struct package_install **ret)
{
	_cleanup_(package_install_freep) struct package_install *i = NULL;
	_cleanup_close_ int write_fd = -EBADF;
	struct stat st;
	int pipe_fds[2];
	pid_t self = getpid();

	/* Only a regular file: a FIFO or a device from front would hang or never end. */
	if (fstat(spk_fd, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	i = calloc(1, sizeof(*i));
	if (!i)
		return -ENOMEM;
	i->pidfd = i->read_fd = -EBADF;
	i->reaped = true; /* until there is a child */
	if (pipe2(pipe_fds, O_CLOEXEC) < 0)
		return negative_errno();
	i->read_fd = pipe_fds[0];
	write_fd = pipe_fds[1];

	i->pid = fork();
	if (i->pid < 0)
		return negative_errno();
	if (i->pid == 0)
		installer_parent(path, packages_fd, spk_fd, write_fd, self);
	i->reaped = false;
	/* Our child, not yet waited for: its pid cannot be reused meanwhile. */
	i->pidfd = pidfd_open(i->pid, 0);
	if (i->pidfd < 0)
		return negative_errno();
	*ret = TAKE_PTR(i);
	return 0;
}

int
package_install_pidfd(const struct package_install *i)
{
	return i->pidfd;
}

int
package_install_finish(struct package_install *i, struct package_install_result *ret)
{
	struct package_install_result res = {};
	int status = 0;
	size_t got = 0;

	/* EOF comes when the installer and its parent are gone (or the result is whole). */
	while (got < sizeof(res)) {
		ssize_t n = read(i->read_fd, (char *)&res + got, sizeof(res) - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		got += (size_t)n;
	}
	while (!i->reaped && waitpid(i->pid, &status, 0) < 0)
		if (errno != EINTR)
			return negative_errno();
	i->reaped = true;

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

int
package_install(const char *path, int packages_fd, int spk_fd, struct package_install_result *ret)
{
	_cleanup_(package_install_freep) struct package_install *i = NULL;
	int r;

	r = package_install_start(path, packages_fd, spk_fd, &i);
	if (r < 0)
		return r;
	return package_install_finish(i, ret);
}

bool
package_id_valid(const char *id)
{
	return strlen(id) == PACKAGE_ID_LEN && hex_valid(id, PACKAGE_ID_LEN);
}

int
package_delete(int packages_fd, const char *id)
{
	if (!package_id_valid(id))
		return -EINVAL;
	return remove_tree_at(packages_fd, id, SPK_DEFAULT_MAX_DEPTH + 2);
}

static int
sweep_entry(int fd, const char *entry, void *userdata)
{
	(void)userdata;
	if (strncmp(entry, ".spk-unpack-", 12) != 0)
		return 0;
	log_info("Removing '%s', left by an install that did not finish", entry);
	return remove_tree_at(fd, entry, SPK_DEFAULT_MAX_DEPTH + 2);
}

int
package_sweep(int packages_fd)
{
	return dir_foreach(packages_fd, ".", sweep_entry, NULL);
}
