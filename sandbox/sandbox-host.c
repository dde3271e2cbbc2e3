/* SPDX-License-Identifier: MIT */
/*
 * sandbox-host.c: does this host let us build a grain sandbox, and how much
 * defence in depth is there behind it?
 *
 * REFUSE: a sandbox cannot be built as designed (no user namespaces, no
 * seccomp filters, no new mount API, no clone3/pidfds), or cannot hold its
 * limits (no cgroup controller; only a WARN when running without limits was
 * asked for). WARN: a sysctl leaves a door open that the grain's filter
 * already shuts (bpf, perf, userfaultfd, io_uring) or that matters to the
 * host around the grains (symlink and hardlink protection for host-side
 * operations on grain data, core dumps of privileged processes, kernel
 * pointers and log for exploit writers).
 */
#include <errno.h>
#include <linux/magic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mount.h>
#include <sys/prctl.h>
#include <sys/statfs.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

struct sysctl_rule {
	const char *name; /* below /proc/sys, dots for slashes */
	long min;	  /* wanted: min <= value <= max */
	long max;
	const char *why;
};

static const struct sysctl_rule sysctl_rules[] = {
	{ "kernel.unprivileged_bpf_disabled", 1, 2, "unprivileged BPF is kernel attack surface" },
	{ "kernel.perf_event_paranoid", 2, 4, "perf events are kernel attack surface" },
	{ "vm.unprivileged_userfaultfd", 0, 0, "userfaultfd helps exploit kernel races" },
	{ "kernel.io_uring_disabled", 1, 2, "io_uring is kernel attack surface" },
	{ "fs.protected_symlinks", 1, 1,
	  "host-side work on grain data must not follow symlinks planted in sticky dirs" },
	{ "fs.protected_hardlinks", 1, 1, "grains must not hard-link files they cannot write" },
	{ "fs.suid_dumpable", 0, 0, "core dumps of privileged processes leak secrets" },
	{ "kernel.kptr_restrict", 1, 2, "kernel pointers help exploits" },
	{ "kernel.dmesg_restrict", 1, 1, "the kernel log helps exploits" },
};

static void
report_finding(sandbox_check_report_t report, void *userdata, enum sandbox_check_level level,
	       const char *what, const char *advice)
{
	if (report)
		report(level, what, advice, userdata);
}

/* The value of a sysctl as a long; -ENOENT when this kernel has no such knob. */
static int
read_sysctl(const char *proc_sys, const char *name, long *ret)
{
	char path[512], buf[64];
	_cleanup_fclose_ FILE *f = NULL;
	int64_t v;
	int r;

	r = snprintf(path, sizeof(path), "%s/%s", proc_sys, name);
	if (r < 0 || (size_t)r >= sizeof(path))
		return -ENAMETOOLONG;
	for (char *p = path + strlen(proc_sys) + 1; *p; p++)
		if (*p == '.')
			*p = '/';
	f = fopen(path, "re");
	if (!f)
		return negative_errno();
	if (!fgets(buf, sizeof(buf), f))
		return -EIO;
	buf[strcspn(buf, "\n")] = '\0';
	r = parse_int64(buf, &v);
	if (r < 0)
		return r;
	*ret = (long)v;
	return 0;
}

int
check_sysctls(const char *proc_sys, sandbox_check_report_t report, void *userdata)
{
	int worst = SANDBOX_CHECK_OK;
	char what[256], advice[256];
	long v;
	int r;

	for (size_t i = 0; i < ELEMENTSOF(sysctl_rules); i++) {
		const struct sysctl_rule *rule = &sysctl_rules[i];

		r = read_sysctl(proc_sys, rule->name, &v);
		if (r == -ENOENT)
			continue; /* older kernels: the feature or the knob is absent */
		if (r < 0) {
			(void)snprintf(what, sizeof(what), "Cannot read %s: %s", rule->name,
				       strerror(-r));
			(void)snprintf(advice, sizeof(advice), "%s", rule->why);
		} else if (v < rule->min || v > rule->max) {
			(void)snprintf(what, sizeof(what), "%s is %ld", rule->name, v);
			(void)snprintf(advice, sizeof(advice),
				       "set it to %ld (sysctl -w %s=%ld): %s", rule->min,
				       rule->name, rule->min, rule->why);
		} else
			continue;
		report_finding(report, userdata, SANDBOX_CHECK_WARN, what, advice);
		worst = MAX(worst, SANDBOX_CHECK_WARN);
	}

	r = read_sysctl(proc_sys, "user.max_user_namespaces", &v);
	if (r < 0 || v <= 0) {
		report_finding(report, userdata, SANDBOX_CHECK_REFUSE,
			       r < 0 ? "Cannot read user.max_user_namespaces"
				     : "user.max_user_namespaces is 0",
			       "every grain needs a user namespace: sysctl -w "
			       "user.max_user_namespaces=65536");
		worst = SANDBOX_CHECK_REFUSE;
	}
	/* Debian's switch for unprivileged user namespaces; root does not need it. */
	r = read_sysctl(proc_sys, "kernel.unprivileged_userns_clone", &v);
	if (r >= 0 && v == 0 && geteuid() != 0) {
		report_finding(report, userdata, SANDBOX_CHECK_REFUSE,
			       "kernel.unprivileged_userns_clone is 0",
			       "run as root, or sysctl -w kernel.unprivileged_userns_clone=1");
		worst = SANDBOX_CHECK_REFUSE;
	}
	return worst;
}

/* A syscall exists when it fails with anything but ENOSYS on bad arguments. */
static bool
have_syscall(long nr, long a0, long a1, long a2, long a3, long a4)
{
	return syscall(nr, a0, a1, a2, a3, a4) >= 0 || errno != ENOSYS;
}

static int
check_kernel(sandbox_check_report_t report, void *userdata)
{
	static const struct {
		long nr;
		const char *name;
	} calls[] = {
		{ SYS_clone3, "clone3 (Linux 5.3)" },
		{ SYS_pidfd_open, "pidfd_open (Linux 5.3)" },
		{ SYS_fsopen, "fsopen (Linux 5.2)" },
		{ SYS_mount_setattr, "mount_setattr (Linux 5.12)" },
		{ SYS_close_range, "close_range (Linux 5.9)" },
	};
	int worst = SANDBOX_CHECK_OK;

	/* Bad arguments throughout: -1 fds, NULL pointers, zero sizes. */
	for (size_t i = 0; i < ELEMENTSOF(calls); i++) {
		bool have;

		if (calls[i].nr == SYS_close_range)
			have = have_syscall(calls[i].nr, 2, 1, 0, 0, 0); /* first > last: EINVAL */
		else if (calls[i].nr == SYS_pidfd_open)
			have = have_syscall(calls[i].nr, 0, 0, 0, 0, 0); /* pid 0: EINVAL */
		else
			have = have_syscall(calls[i].nr, -1, 0, 0, 0, 0);
		if (!have) {
			char what[128];

			(void)snprintf(what, sizeof(what), "This kernel has no %s", calls[i].name);
			report_finding(report, userdata, SANDBOX_CHECK_REFUSE, what,
				       "grain sandboxes need Linux 5.12 or later");
			worst = SANDBOX_CHECK_REFUSE;
		}
	}
	if (prctl(PR_GET_SECCOMP, 0, 0, 0, 0) < 0) {
		report_finding(report, userdata, SANDBOX_CHECK_REFUSE,
			       "This kernel has no seccomp filters",
			       "build it with CONFIG_SECCOMP_FILTER=y");
		worst = SANDBOX_CHECK_REFUSE;
	}
	return worst;
}

static int
check_cgroups(const char *root, bool allow_no_limits, sandbox_check_report_t report, void *userdata)
{
	enum sandbox_check_level level =
		allow_no_limits ? SANDBOX_CHECK_WARN : SANDBOX_CHECK_REFUSE;
	const char *advice = allow_no_limits ? "grains will run without that limit"
					     : "grains cannot get their limits: mount the "
					       "controller or allow running without limits";
	char path[512], what[600];
	struct statfs sfs;
	int worst = SANDBOX_CHECK_OK;

	if (statfs(root, &sfs) < 0) {
		(void)snprintf(what, sizeof(what), "No cgroup file system at '%s'", root);
		report_finding(report, userdata, level, what, advice);
		return level;
	}
	if (sfs.f_type == CGROUP2_SUPER_MAGIC) {
		_cleanup_fclose_ FILE *f = NULL;
		char line[512] = "";

		(void)snprintf(path, sizeof(path), "%s/cgroup.controllers", root);
		f = fopen(path, "re");
		if (f && !fgets(line, sizeof(line), f))
			line[0] = '\0';
		for (int c = 0; c < _CGROUP_MAX; c++) {
			const char *name = cgroup_controller_names[c];
			const char *p = line;
			bool found = false;

			while ((p = strstr(p, name))) {
				size_t n = strlen(name);

				if ((p == line || p[-1] == ' ') &&
				    (p[n] == '\0' || p[n] == ' ' || p[n] == '\n'))
					found = true;
				p += n;
			}
			if (!found) {
				(void)snprintf(
					what, sizeof(what),
					"The cgroup v2 hierarchy at '%s' has no %s controller",
					root, name);
				report_finding(report, userdata, level, what, advice);
				worst = MAX(worst, (int)level);
			}
		}
		return worst;
	}
	for (int c = 0; c < _CGROUP_MAX; c++) {
		(void)snprintf(path, sizeof(path), "%s/%s", root, cgroup_controller_names[c]);
		if (statfs(path, &sfs) < 0 || sfs.f_type != CGROUP_SUPER_MAGIC) {
			(void)snprintf(what, sizeof(what),
				       "No cgroup v1 hierarchy for the %s controller at '%s'",
				       cgroup_controller_names[c], path);
			report_finding(report, userdata, level, what, advice);
			worst = MAX(worst, (int)level);
		}
	}
	return worst;
}

int
sandbox_check_host(const char *proc_root, const char *cgroup_root, bool allow_no_limits,
		   sandbox_check_report_t report, void *userdata)
{
	char proc_sys[512];
	int worst, level;

	(void)snprintf(proc_sys, sizeof(proc_sys), "%s/sys", proc_root ?: "/proc");
	/* One call each (MAX() would evaluate a call twice, and report twice). */
	worst = check_sysctls(proc_sys, report, userdata);
	level = check_kernel(report, userdata);
	worst = MAX(worst, level);
	level = check_cgroups(cgroup_root ?: "/sys/fs/cgroup", allow_no_limits, report, userdata);
	return MAX(worst, level);
}
