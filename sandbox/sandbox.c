/* SPDX-License-Identifier: MIT */
/*
 * sandbox.c: a grain's life, from spec to running process to nothing left.
 *
 *	parent (root, host)                 child (clone3 into new namespaces)
 *	-------------------                 ----------------------------------
 *	validate the spec, make the cgroup
 *	  and its limits; open v1 tasks files
 *	empty memfd for grain-init
 *	clone3(NEWUSER|NEWPID|NEWNS|NEWNET|  → v1: join the grain's cgroups ("0" to
 *	       NEWIPC|NEWUTS [INTO_CGROUP])    tasks), reset signals, parent-death
 *	                                       signal, wait for "go"
 *	setgroups=deny, uid_map, gid_map
 *	  "1000 HOSTUID 1"
 *	"go" ─────────────────────────────→  securebits locked; host paths opened;
 *	copy grain-init into the memfd,        uid 1000; unshare(NEWCGROUP);
 *	  make it execute-only, seal it        the tree built, pivot_root;
 *	"sealed" ─────────────────────────→  lo up, hostname, chdir, rlimits;
 *	                                       capabilities dropped; fds; setsid;
 *	                                       seccomp
 *	read the error pipe: EOF means      ← execveat(memfd) closes it
 *	the exec happened, a report means
 *	it failed (child killed and reaped, cgroup removed)
 *
 * The lockdown, in this order, each step needing the one before:
 *   1. securebits: NOROOT, NO_SETUID_FIXUP, KEEP_CAPS off, NO_CAP_AMBIENT_RAISE,
 *      all locked (needs CAP_SETPCAP, which we hold in the new namespace);
 *   2. setresgid/setresuid to 1000 (the host uid) after the host paths are
 *      open and before the tree is built (new inodes need an owner the
 *      namespace maps); with NO_SETUID_FIXUP the kernel leaves the
 *      capability sets alone, so the mounts and step 3 can still run;
 *   3. libcap-ng: bounding, ambient, effective, permitted, inheritable all
 *      cleared, then verified one by one from the kernel;
 *   4. NO_NEW_PRIVS: no exec can gain privilege (setuid files, file caps);
 *   5. fds: 0 = /dev/null, 1, 2, the kept fds as 3...; every other fd is marked
 *      close-on-exec (close_range), whatever the caller left open;
 *   6. setsid(): a new session with no controlling terminal (TIOCSTI is also
 *      refused by the filter);
 *   7. seccomp: the last syscall before exec, which the filter allows.
 *
 * The child runs between a raw clone and exec in a copy of the parent's
 * memory: it allocates nothing and calls nothing that could take a lock
 * another thread of the parent held at the clone.
 */
#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <linux/capability.h>
#include <linux/sched.h>
#include <linux/securebits.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/sendfile.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cap-ng.h>

#include "common/log.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

#ifndef MFD_EXEC
#define MFD_EXEC 0x0010U
#endif
#ifndef CLOSE_RANGE_CLOEXEC
#define CLOSE_RANGE_CLOEXEC (1U << 2)
#endif

#define MAX_KEEP_FDS 16

struct sandbox {
	pid_t pid;
	int pidfd;		       /* owned */
	struct sandbox_cgroup *cgroup; /* owned; NULL when running without limits */
	bool reaped;
	int status;
};

/* What the child needs, prepared by the parent (the child only reads it). */
struct child {
	const struct sandbox_spec *spec;
	char *const *exec_argv;
	char *const *envp;
	int sync_fd;		     /* our end: one byte from the parent means "go" */
	int sync_peer;		     /* the parent's end, closed first thing */
	int error_fd;		     /* write end: a struct child_report on failure */
	int error_peer;		     /* the parent's end */
	int parent_pidfd;	     /* to notice the parent dying */
	int cgroup_fds[_CGROUP_MAX]; /* v1: the grain's tasks files, to join */
	int devnull_fd;		     /* becomes fd 0 */
	int init_fd;		     /* the init to execute, or -EBADF: exec_argv[0] */
	bool init_pending;	     /* a second byte on sync_fd: init_fd is filled and sealed */
	const void *filter;
	size_t filter_len;
};

struct child_report {
	int error;
	struct sandbox_error message;
};

int
sandbox_error_set(struct sandbox_error *e, int r, const char *format, ...)
{
	va_list ap;
	int saved = errno;

	if (!e)
		return r;
	errno = r < 0 ? -r : r;
	va_start(ap, format);
	(void)vsnprintf(e->message, sizeof(e->message), format, ap);
	va_end(ap);
	errno = saved;
	return r;
}

int
write_file_at(int dirfd, const char *name, const char *value)
{
	_cleanup_close_ int fd = -EBADF;
	size_t len = strlen(value);
	ssize_t n;

	fd = openat(dirfd, name, O_WRONLY | O_CLOEXEC | O_NOCTTY | O_NOFOLLOW);
	if (fd < 0)
		return negative_errno();
	n = write(fd, value, len);
	if (n < 0)
		return negative_errno();
	return (size_t)n == len ? 0 : -EIO;
}

int
write_file(const char *path, const char *value)
{
	return write_file_at(AT_FDCWD, path, value);
}

/* ---- child --------------------------------------------------------------- */

static int
loopback_up(struct sandbox_error *e)
{
	struct ifreq ifr = { .ifr_name = "lo" };
	_cleanup_close_ int fd = -EBADF;

	/* The kernel gives lo 127.0.0.1/8 and ::1 when it comes up. */
	fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || ioctl(fd, SIOCGIFFLAGS, &ifr) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to look at lo: %m");
	ifr.ifr_flags |= IFF_UP | IFF_RUNNING;
	if (ioctl(fd, SIOCSIFFLAGS, &ifr) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to bring lo up: %m");
	return 0;
}

/*
 * Step 1: with NO_SETUID_FIXUP the uid change of step 2 leaves the
 * capability sets alone (we still need them to mount), and every bit is
 * locked so nothing in the grain can unset it.
 */
static int
lock_securebits(struct sandbox_error *e)
{
	const unsigned long securebits = SECBIT_NOROOT | SECBIT_NOROOT_LOCKED |
					 SECBIT_NO_SETUID_FIXUP | SECBIT_NO_SETUID_FIXUP_LOCKED |
					 SECBIT_KEEP_CAPS_LOCKED | SECBIT_NO_CAP_AMBIENT_RAISE |
					 SECBIT_NO_CAP_AMBIENT_RAISE_LOCKED;

	if (prctl(PR_SET_SECUREBITS, securebits, 0, 0, 0) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to lock securebits: %m");
	return 0;
}

/* Step 2: all uids and gids 1000 (the host uid); setgroups is denied, groups stay empty. */
static int
become_grain_user(struct sandbox_error *e)
{
	if (setresgid(SANDBOX_INSIDE_GID, SANDBOX_INSIDE_GID, SANDBOX_INSIDE_GID) < 0 ||
	    setresuid(SANDBOX_INSIDE_UID, SANDBOX_INSIDE_UID, SANDBOX_INSIDE_UID) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to become uid %d: %m",
					 SANDBOX_INSIDE_UID);
	return 0;
}

/* Steps 3 and 4: no capability in any set, verified; then no_new_privs. */
static int
drop_capabilities(struct sandbox_error *e)
{
	struct __user_cap_header_struct header = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct data[_LINUX_CAPABILITY_U32S_3] = {};

	capng_clear(CAPNG_SELECT_ALL);
	if (capng_apply(CAPNG_SELECT_ALL) < 0)
		return sandbox_error_set(e, -EPERM, "Failed to drop capabilities");
	/* Trust, but verify: every capability in every set, from the kernel. */
	if (syscall(SYS_capget, &header, data) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to read capabilities: %m");
	for (int i = 0; i < _LINUX_CAPABILITY_U32S_3; i++)
		if (data[i].effective || data[i].permitted || data[i].inheritable)
			return sandbox_error_set(e, -EPERM,
						 "Capabilities remain after dropping them");
	/* PR_CAPBSET_READ fails with EINVAL past the kernel's last capability. */
	for (int cap = 0; prctl(PR_CAPBSET_READ, cap, 0, 0, 0) >= 0; cap++)
		if (prctl(PR_CAPBSET_READ, cap, 0, 0, 0) > 0 ||
		    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_IS_SET, cap, 0, 0) > 0)
			return sandbox_error_set(e, -EPERM,
						 "Capability %d remains after dropping it", cap);

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to set no_new_privs: %m");
	return 0;
}

/*
 * Put the fds the grain gets at 0, 1, 2, 3...; mark every other fd
 * close-on-exec. *error_fd and *init_fd move above the targets first and stay
 * open until the exec (which closes them).
 */
static int
setup_fds(const struct child *c, int *error_fd, int *init_fd, struct sandbox_error *e)
{
	const struct sandbox_spec *spec = c->spec;
	int base = 3 + (int)spec->n_keep_fds;
	int src[3 + MAX_KEEP_FDS];

	src[0] = c->devnull_fd;
	src[1] = spec->stdout_fd >= 0 ? spec->stdout_fd : 1;
	src[2] = spec->stderr_fd >= 0 ? spec->stderr_fd : 2;
	for (size_t i = 0; i < spec->n_keep_fds; i++)
		src[3 + i] = spec->keep_fds[i];

	*error_fd = fcntl(*error_fd, F_DUPFD_CLOEXEC, base);
	if (*error_fd < 0)
		return negative_errno(); /* no error pipe left to report through */
	if (*init_fd >= 0) {
		*init_fd = fcntl(*init_fd, F_DUPFD_CLOEXEC, base);
		if (*init_fd < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to move fds: %m");
	}
	/* All sources above the targets first, so no dup2 clobbers a later source. */
	for (int i = 0; i < base; i++) {
		src[i] = fcntl(src[i], F_DUPFD_CLOEXEC, base);
		if (src[i] < 0)
			return sandbox_error_set(e, negative_errno(), "Failed to pass fd %d: %m",
						 i);
	}
	for (int i = 0; i < base; i++)
		if (dup2(src[i], i) < 0) /* dup2 clears close-on-exec on the target */
			return sandbox_error_set(e, negative_errno(), "Failed to set up fd %d: %m",
						 i);
	if (close_range(base, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to close fds: %m");
	return 0;
}

static int
child_run(const struct child *c, int *error_fd, struct sandbox_error *e)
{
	const struct sandbox_spec *spec = c->spec;
	const char *hostname = spec->hostname ?: SANDBOX_DEFAULT_HOSTNAME;
	uint64_t nofile = spec->limits.nofile ?: SANDBOX_DEFAULT_NOFILE;
	int init_fd = c->init_fd;
	struct mount_sources sources;
	sigset_t all;
	char go = 0;
	int r;

	(void)close(c->sync_peer);
	(void)close(c->error_peer);

	/* Into the grain's cgroup before anything else is charged to us. */
	r = cgroup_join(c->cgroup_fds);
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to join the grain's cgroup: %m");
	for (int i = 0; i < _CGROUP_MAX; i++)
		if (c->cgroup_fds[i] >= 0)
			(void)close(c->cgroup_fds[i]);

	/* Nothing of the parent's signal state may reach the grain. */
	for (int sig = 1; sig < _NSIG; sig++)
		if (sig != SIGKILL && sig != SIGSTOP)
			(void)signal(sig, SIG_DFL);
	sigemptyset(&all);
	(void)sigprocmask(SIG_SETMASK, &all, NULL);
	/* The grain dies with whoever started it (set again after the uid change). */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);

	/* EOF: the parent failed to set up our uid map or cgroup and gave up. */
	if (read(c->sync_fd, &go, 1) != 1 || go != 1)
		return sandbox_error_set(e, -ECANCELED, "The parent gave up");

	r = lock_securebits(e);
	if (r < 0)
		return r;
	/* Host paths are opened with the uid we were cloned with... */
	r = mount_open_sources(spec, &sources, e);
	if (r < 0)
		goto out_sources;
	/* ...the tree is built as the grain's uid, still holding the namespace's capabilities. */
	r = become_grain_user(e);
	if (r < 0)
		goto out_sources;
	/* Now in the grain's cgroup: make it the root of our cgroup namespace. */
	if (unshare(CLONE_NEWCGROUP) < 0) {
		r = sandbox_error_set(e, negative_errno(),
				      "Failed to create a cgroup namespace: %m");
		goto out_sources;
	}
	r = mount_build(spec, &sources, e);
out_sources:
	mount_sources_release(&sources);
	if (r < 0)
		return r;
	r = loopback_up(e);
	if (r < 0)
		return r;
	if (sethostname(hostname, strlen(hostname)) < 0 ||
	    setdomainname(hostname, strlen(hostname)) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to set the hostname: %m");
	if (chdir(spec->cwd ?: "/var") < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to enter '%s': %m",
					 spec->cwd ?: "/var");
	r = drop_capabilities(e);
	if (r < 0)
		return r;
	/* The parent copied init into its memfd meanwhile; wait until it is sealed. */
	if (c->init_pending && (read(c->sync_fd, &go, 1) != 1 || go != 2))
		return sandbox_error_set(e, -ECANCELED, "The parent gave up");
	(void)close(c->sync_fd);
	r = setup_fds(c, error_fd, &init_fd, e);
	if (r < 0)
		return r;
	/*
	 * Only now: the caller (a launcher with a thousand grains) may hold fds
	 * numbered above the grain's limit, which setup_fds() had to move
	 * through. Lowering a limit needs no capability, and nothing below
	 * opens an fd before the exec closes the extra ones.
	 */
	if (setrlimit(RLIMIT_NOFILE, &(struct rlimit){ nofile, nofile }) < 0 ||
	    setrlimit(RLIMIT_CORE, &(struct rlimit){ 0, 0 }) < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to set resource limits: %m");
	if (setsid() < 0)
		return sandbox_error_set(e, negative_errno(), "Failed to start a session: %m");

	/* The uid change cleared the parent-death signal; if the parent died meanwhile, stop. */
	(void)prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
	if (poll(&(struct pollfd){ .fd = c->parent_pidfd, .events = POLLIN }, 1, 0) != 0)
		return sandbox_error_set(e, -ECANCELED, "The parent died");

	r = seccomp_load_program(c->filter, c->filter_len);
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to load the seccomp filter: %m");

	if (init_fd >= 0)
		(void)execveat(init_fd, "", c->exec_argv, c->envp, AT_EMPTY_PATH);
	else
		(void)execve(c->exec_argv[0], c->exec_argv, c->envp);
	return sandbox_error_set(e, negative_errno(), "Failed to execute '%s': %m",
				 init_fd >= 0 ? "init" : c->exec_argv[0]);
}

static _noreturn_ void
child_main(const struct child *c)
{
	struct child_report report = {};
	int error_fd = c->error_fd;

	report.error = child_run(c, &error_fd, &report.message);
	if (error_fd >= 0)
		(void)!write(error_fd, &report, sizeof(report));
	_exit(127);
}

/* ---- parent -------------------------------------------------------------- */

static bool
bind_target_ok(const char *t)
{
	static const char *const reserved[] = { "/var", "/tmp", "/dev", "/proc", "/sys" };
	const char *s = t;

	if (t[0] != '/' || t[1] == '\0' || strlen(t) >= 1024)
		return false;
	while (*s) {
		size_t len;

		s += strspn(s, "/");
		len = strcspn(s, "/");
		if ((len == 1 && s[0] == '.') || (len == 2 && s[0] == '.' && s[1] == '.'))
			return false;
		s += len;
	}
	for (size_t i = 0; i < ELEMENTSOF(reserved); i++) {
		size_t n = strlen(reserved[i]);
		if (strncmp(t, reserved[i], n) == 0 && (t[n] == '\0' || t[n] == '/'))
			return false;
	}
	return true;
}

static bool
hostname_ok(const char *h)
{
	size_t len = strlen(h);

	return len > 0 && len <= 64 &&
	       strspn(h, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-.") == len;
}

static int
validate(const struct sandbox_spec *spec, struct sandbox_error *e)
{
	const struct sandbox_limits *l = &spec->limits;

	if (!spec->root || !*spec->root)
		return sandbox_error_set(e, -EINVAL, "No package root given");
	if (!spec->argv || !spec->argv[0] || !*spec->argv[0])
		return sandbox_error_set(e, -EINVAL, "No command given");
	if (spec->init_fd < 0 && !spec->init_path && spec->argv[0][0] != '/')
		return sandbox_error_set(e, -EINVAL,
					 "Without an init, the command must be an absolute path");
	if (spec->tmp_size > (1ULL << 40))
		return sandbox_error_set(e, -EINVAL, "A /tmp of more than 1 TiB is refused");
	if (spec->cwd && spec->cwd[0] != '/')
		return sandbox_error_set(e, -EINVAL, "The working directory must be absolute");
	if (spec->hostname && !hostname_ok(spec->hostname))
		return sandbox_error_set(e, -EINVAL, "Bad hostname '%s'", spec->hostname);
	if (spec->n_keep_fds > MAX_KEEP_FDS)
		return sandbox_error_set(e, -EINVAL, "More than %d fds to keep", MAX_KEEP_FDS);
	for (size_t i = 0; i < spec->n_keep_fds; i++)
		if (fcntl(spec->keep_fds[i], F_GETFD) < 0)
			return sandbox_error_set(e, -EBADF, "fd %d to keep is not open",
						 spec->keep_fds[i]);
	for (size_t i = 0; i < spec->n_binds; i++)
		if (!spec->binds[i].source || !spec->binds[i].target ||
		    !bind_target_ok(spec->binds[i].target))
			return sandbox_error_set(e, -EINVAL,
						 "Bad bind target '%s' (absolute, no . or .., "
						 "not /, /var, /tmp, /dev, /proc, /sys)",
						 strnull(spec->binds[i].target));
	if (geteuid() == 0 && (spec->host_uid == 0 || spec->host_gid == 0 ||
			       spec->host_uid == (uid_t)-1 || spec->host_gid == (gid_t)-1))
		return sandbox_error_set(e, -EINVAL,
					 "A grain must map to a host uid and gid other than 0 "
					 "and -1");
	if (l->memory == 0 && l->pids == 0 && l->cpu == 0 &&
	    !(spec->flags & SANDBOX_ALLOW_NO_LIMITS))
		return sandbox_error_set(e, -EINVAL, "No resource limit given");
	if (l->memory > 0 && l->memory < (4ULL << 20))
		return sandbox_error_set(e, -EINVAL, "A memory limit below 4M is refused");
	if (l->cpu > 0 && l->cpu < 10)
		return sandbox_error_set(e, -EINVAL, "A cpu limit below 0.01 is refused");
	if (l->nofile > (1 << 20))
		return sandbox_error_set(e, -EINVAL, "An fd limit above 1048576 is refused");
	return 0;
}

static int
write_maps(pid_t pid, uid_t uid, gid_t gid, struct sandbox_error *e)
{
	char path[64], map[64];
	int r;

	/*
	 * One line each: the grain's 1000 is the host's uid, nothing else is
	 * mapped (host root above all: no file of the host's root is ever
	 * "ours" inside). setgroups is denied before gid_map is written, so the
	 * grain can never drop a group to get past a "deny to group" mode.
	 */
	(void)snprintf(path, sizeof(path), "/proc/%d/setgroups", (int)pid);
	r = write_file(path, "deny");
	if (r >= 0) {
		(void)snprintf(path, sizeof(path), "/proc/%d/uid_map", (int)pid);
		(void)snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_INSIDE_UID, (unsigned)uid);
		r = write_file(path, map);
	}
	if (r >= 0) {
		(void)snprintf(path, sizeof(path), "/proc/%d/gid_map", (int)pid);
		(void)snprintf(map, sizeof(map), "%d %u 1\n", SANDBOX_INSIDE_GID, (unsigned)gid);
		r = write_file(path, map);
	}
	if (r < 0)
		return sandbox_error_set(e, r, "Failed to write '%s': %m", path);
	return 0;
}

static int
init_memfd_new(void)
{
	int fd = memfd_create("grain-init", MFD_CLOEXEC | MFD_ALLOW_SEALING | MFD_EXEC);

	if (fd < 0 && errno == EINVAL) /* before Linux 6.3 */
		fd = memfd_create("grain-init", MFD_CLOEXEC | MFD_ALLOW_SEALING);
	return fd < 0 ? negative_errno() : fd;
}

/* Copy the regular file src into memfd, make it read-only and seal it. */
static int
init_memfd_fill(int memfd, int src)
{
	struct stat st;
	off_t off = 0;

	if (fstat(src, &st) < 0)
		return negative_errno();
	if (!S_ISREG(st.st_mode))
		return -EINVAL;
	while (off < st.st_size) {
		ssize_t n = sendfile(memfd, src, &off, st.st_size - off);
		if (n < 0)
			return negative_errno();
		if (n == 0)
			return -EIO;
	}
	/*
	 * Sealed: no one, inside or out, can change what runs as pid 1. And
	 * execute-only for the grain's uid: the kernel makes a process whose
	 * program its own uid cannot read non-dumpable, so the app cannot open
	 * /proc/1/mem, environ or exe of its grain-init (same uid, no ptrace
	 * needed otherwise) to take it over or to reach the file behind it.
	 */
	if (fchmod(memfd, 0511) < 0 ||
	    fcntl(memfd, F_ADD_SEALS, F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL) < 0)
		return negative_errno();
	return 0;
}

/*
 * One byte to the child. A child that already failed and exited is not our
 * error: its report waits in the error pipe, so carry on and read it.
 */
static int
tell_child(int fd, char what, struct sandbox_error *e)
{
	if (send(fd, &what, 1, MSG_NOSIGNAL) == 1 || errno == EPIPE || errno == ECONNRESET)
		return 0;
	return sandbox_error_set(e, negative_errno(), "Failed to start the child: %m");
}

static void
reap(struct sandbox *s)
{
	siginfo_t info = {};

	if (s->reaped)
		return;
	while (waitid(P_PIDFD, s->pidfd, &info, WEXITED) < 0)
		if (errno != EINTR)
			return;
	s->reaped = true;
	s->status = info.si_code == CLD_EXITED ? info.si_status : 128 + info.si_status;
}

int
sandbox_start(const struct sandbox_spec *spec, struct sandbox **ret, struct sandbox_error *error)
{
	_cleanup_free_ char **exec_argv = NULL;
	_cleanup_free_ gid_t *groups = NULL;
	_cleanup_close_ int devnull = -EBADF, parent_pidfd = -EBADF, init_src = -EBADF,
			    init_memfd = -EBADF;
	int sync_pair[2] = { -EBADF, -EBADF }, error_pipe[2] = { -EBADF, -EBADF };
	struct sandbox_error dummy;
	struct child_report report;
	struct clone_args args = {};
	struct sandbox *s = NULL;
	struct child c = { .cgroup_fds = { -EBADF, -EBADF, -EBADF } };
	uid_t uid = spec->host_uid;
	gid_t gid = spec->host_gid;
	int n_groups = 0, pidfd = -EBADF;
	size_t argc = 0;
	ssize_t n;
	int r;

	if (!error)
		error = &dummy;
	error->message[0] = '\0';
	r = validate(spec, error);
	if (r < 0)
		return r;
	if (geteuid() != 0) {
		/* Unprivileged: the only host uid we may map is our own. */
		uid = geteuid();
		gid = getegid();
	}

	s = calloc(1, sizeof(*s));
	if (!s)
		return sandbox_error_set(error, -ENOMEM, "Out of memory");
	s->pidfd = -EBADF;
	if (spec->limits.memory || spec->limits.pids || spec->limits.cpu) {
		r = cgroup_create(spec->cgroup_root, spec->cgroup_parent, spec->cgroup_name,
				  &spec->limits, &s->cgroup, error);
		if (r < 0 && !(spec->flags & SANDBOX_ALLOW_NO_LIMITS))
			goto out_free;
		if (r < 0)
			log_debug("sandbox: running without limits: %s", error->message);
	}

	r = sandbox_seccomp_program(&c.filter, &c.filter_len);
	if (r < 0) {
		sandbox_error_set(error, r, "Failed to build the seccomp filter: %m");
		goto out_cgroup;
	}
	while (spec->argv[argc])
		argc++;
	exec_argv = calloc(argc + 3, sizeof(char *));
	if (!exec_argv) {
		r = sandbox_error_set(error, -ENOMEM, "Out of memory");
		goto out_cgroup;
	}
	if (spec->init_fd < 0 && spec->init_path) {
		/* Filled while the child builds its tree: the copy costs no wall time. */
		init_src = open(spec->init_path, O_RDONLY | O_CLOEXEC);
		init_memfd = init_src < 0 ? init_src : init_memfd_new();
		if (init_src < 0 || init_memfd < 0) {
			r = sandbox_error_set(error, negative_errno(),
					      "Failed to load the init '%s': %m", spec->init_path);
			goto out_cgroup;
		}
	}
	if (spec->init_fd >= 0 || spec->init_path) {
		exec_argv[0] = (char *)"grain-init";
		exec_argv[1] = (char *)"--";
		memcpy(exec_argv + 2, spec->argv, argc * sizeof(char *));
	} else
		memcpy(exec_argv, spec->argv, argc * sizeof(char *));

	devnull = open("/dev/null", O_RDONLY | O_CLOEXEC);
	parent_pidfd = pidfd_open(getpid(), 0);
	/* A socket pair, not a pipe: a send to a child already gone fails, no SIGPIPE. */
	if (devnull < 0 || parent_pidfd < 0 ||
	    socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sync_pair) < 0 ||
	    pipe2(error_pipe, O_CLOEXEC) < 0) {
		r = sandbox_error_set(error, negative_errno(), "Failed to prepare the child: %m");
		goto out_pipes;
	}
	c = (struct child){
		.spec = spec,
		.exec_argv = exec_argv,
		.envp = spec->envp ?: (char *const[]){ NULL },
		.sync_fd = sync_pair[0],
		.sync_peer = sync_pair[1],
		.error_fd = error_pipe[1],
		.error_peer = error_pipe[0],
		.parent_pidfd = parent_pidfd,
		.devnull_fd = devnull,
		.init_fd = spec->init_fd >= 0 ? spec->init_fd : init_memfd,
		.init_pending = init_memfd >= 0,
		.filter = c.filter,
		.filter_len = c.filter_len,
		.cgroup_fds = { -EBADF, -EBADF, -EBADF },
	};
	if (s->cgroup) {
		r = cgroup_open_join_fds(s->cgroup, c.cgroup_fds);
		if (r < 0) {
			sandbox_error_set(error, r, "Failed to open the grain's cgroup: %m");
			goto out_pipes;
		}
	}

	/*
	 * The child inherits our supplementary groups, and once in its user
	 * namespace (setgroups denied) it could never drop them: as root, hold
	 * none across the clone.
	 */
	if (geteuid() == 0) {
		n_groups = getgroups(0, NULL);
		if (n_groups > 0) {
			groups = calloc(n_groups, sizeof(gid_t));
			if (!groups || getgroups(n_groups, groups) != n_groups ||
			    setgroups(0, NULL) < 0) {
				r = sandbox_error_set(error, -EPERM,
						      "Failed to drop supplementary groups");
				goto out_pipes;
			}
		}
	}
	args.flags = CLONE_NEWUSER | CLONE_NEWPID | CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC |
		     CLONE_NEWUTS | CLONE_PIDFD;
	args.pidfd = (uint64_t)(uintptr_t)&pidfd;
	args.exit_signal = SIGCHLD;
	if (s->cgroup && s->cgroup->dir_fd >= 0) {
		args.flags |= CLONE_INTO_CGROUP;
		args.cgroup = (uint64_t)s->cgroup->dir_fd;
	}
	s->pid = (pid_t)syscall(SYS_clone3, &args, sizeof(args));
	if (s->pid == 0)
		child_main(&c);
	r = s->pid < 0 ? negative_errno() : 0;
	if (n_groups > 0 && setgroups(n_groups, groups) < 0)
		log_debug_errno(errno, "sandbox: Failed to restore supplementary groups: %m");
	if (r < 0) {
		sandbox_error_set(error, r, "Failed to create the namespaces: %m");
		goto out_pipes;
	}
	s->pidfd = pidfd;
	sync_pair[0] = safe_close(sync_pair[0]);
	error_pipe[1] = safe_close(error_pipe[1]);

	cgroup_close_join_fds(c.cgroup_fds);

	r = write_maps(s->pid, uid, gid, error);
	if (r >= 0)
		r = tell_child(sync_pair[1], 1, error);
	if (r >= 0 && init_memfd >= 0) {
		r = init_memfd_fill(init_memfd, init_src);
		if (r < 0)
			sandbox_error_set(error, r, "Failed to load the init '%s': %m",
					  spec->init_path);
		else
			r = tell_child(sync_pair[1], 2, error);
	}
	sync_pair[1] = safe_close(sync_pair[1]); /* on failure, EOF tells the child to give up */
	if (r < 0)
		goto out_kill;

	/* EOF: the exec closed the pipe. A report: the child failed and says why. */
	do
		n = read(error_pipe[0], &report, sizeof(report));
	while (n < 0 && errno == EINTR);
	if (n == sizeof(report)) {
		r = report.error < 0 ? report.error : -EIO;
		memcpy(error, &report.message, sizeof(*error));
		error->message[sizeof(error->message) - 1] = '\0';
		goto out_kill;
	}
	if (n != 0) {
		r = sandbox_error_set(error, -EIO, "The child died while setting up");
		goto out_kill;
	}
	(void)safe_close(error_pipe[0]);
	*ret = s;
	return 0;

out_kill:
	(void)pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0);
	reap(s);
out_pipes:
	cgroup_close_join_fds(c.cgroup_fds);
	(void)safe_close(sync_pair[0]);
	(void)safe_close(sync_pair[1]);
	(void)safe_close(error_pipe[0]);
	(void)safe_close(error_pipe[1]);
out_cgroup:
	(void)cgroup_destroy(s->cgroup);
out_free:
	s->cgroup = cgroup_free(s->cgroup);
	(void)safe_close(s->pidfd);
	free(s);
	return r;
}

int
sandbox_wait(struct sandbox *s, int *ret_status)
{
	reap(s);
	if (!s->reaped)
		return negative_errno();
	(void)cgroup_destroy(s->cgroup);
	if (ret_status)
		*ret_status = s->status;
	return 0;
}

int
sandbox_signal(struct sandbox *s, int sig)
{
	if (s->reaped)
		return -ESRCH;
	if (pidfd_send_signal(s->pidfd, sig, NULL, 0) < 0)
		return negative_errno();
	return 0;
}

int
sandbox_kill(struct sandbox *s)
{
	if (!s->reaped) {
		/* pid 1 dies, the kernel kills and reaps the rest of the namespace. */
		if (pidfd_send_signal(s->pidfd, SIGKILL, NULL, 0) < 0 && errno != ESRCH)
			return negative_errno();
		reap(s);
	}
	return cgroup_destroy(s->cgroup);
}

struct sandbox *
sandbox_free(struct sandbox *s)
{
	if (!s)
		return NULL;
	(void)sandbox_kill(s);
	s->cgroup = cgroup_free(s->cgroup);
	(void)safe_close(s->pidfd);
	free(s);
	return NULL;
}

pid_t
sandbox_pid(const struct sandbox *s)
{
	return s->pid;
}

int
sandbox_pidfd(const struct sandbox *s)
{
	return s->pidfd;
}

bool
sandbox_has_limits(const struct sandbox *s)
{
	return s->cgroup != NULL;
}

const char *
sandbox_cgroup_path(const struct sandbox *s, const char *controller)
{
	if (!s->cgroup)
		return NULL;
	for (int c = 0; c < _CGROUP_MAX; c++)
		if (strcmp(controller, cgroup_controller_names[c]) == 0)
			return s->cgroup->path[c];
	return NULL;
}

int
sandbox_stats(const struct sandbox *s, struct sandbox_stats *ret)
{
	*ret = (struct sandbox_stats){};
	if (!s->cgroup || s->reaped)
		return 0;
	return cgroup_stats(s->cgroup, &ret->memory_bytes, &ret->cpu_usec);
}

int
sandbox_load_init(const char *path, int *ret_fd)
{
	_cleanup_close_ int src = -EBADF, fd = -EBADF;
	int r;

	src = open(path, O_RDONLY | O_CLOEXEC);
	if (src < 0)
		return negative_errno();
	fd = init_memfd_new();
	if (fd < 0)
		return fd;
	r = init_memfd_fill(fd, src);
	if (r < 0)
		return r;
	*ret_fd = TAKE_FD(fd);
	return 0;
}
