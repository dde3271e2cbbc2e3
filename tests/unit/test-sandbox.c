/* SPDX-License-Identifier: MIT */
/*
 * test-sandbox.c: the sandbox library's parts that need no namespaces: the
 * filter table, the compiled-in filter, cgroup files on a fake tree, the
 * sysctl check on a fake /proc/sys, spec validation, uid locks, chown_tree.
 * The sandbox itself is proven from inside by tests/security/.
 */
#include <errno.h>
#include <fcntl.h>
#include <linux/filter.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <signal.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* Newer than Debian 12's libseccomp: allowed by name, refused until it knows them. */
static const char *const too_new[] = { "mseal", NULL };

static bool
in_list(const char *name, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(name, list[i]) == 0)
			return true;
	return false;
}

TEST(table_names_resolve)
{
	size_t n;
	const struct sandbox_syscall_row *t = sandbox_syscall_table(&n);

	CHECK(n > 300);
	for (size_t i = 0; i < n; i++) {
		int nr = seccomp_syscall_resolve_name(t[i].name);
		if (nr == __NR_SCMP_ERROR && !in_list(t[i].name, too_new))
			CHECK_STR_EQ(t[i].name, "a syscall libseccomp knows");
	}
}

TEST(table_unconditional_allows_are_unique)
{
	size_t n;
	const struct sandbox_syscall_row *t = sandbox_syscall_table(&n);

	for (size_t i = 0; i < n; i++)
		for (size_t j = i + 1; j < n; j++)
			if (t[i].kind == SANDBOX_SYSCALL_ALLOW &&
			    t[j].kind == SANDBOX_SYSCALL_ALLOW && t[i].n_cmp == 0 &&
			    t[j].n_cmp == 0 && strcmp(t[i].name, t[j].name) == 0)
				CHECK_STR_EQ(t[i].name, "listed once");
}

static bool
row_allows(const struct sandbox_syscall_row *row, const uint64_t args[6])
{
	for (unsigned c = 0; c < row->n_cmp; c++)
		if ((args[row->cmp[c].arg] & row->cmp[c].mask) != row->cmp[c].value)
			return false;
	return true;
}

/* No DENY case is allowed by an ALLOW row: the table never contradicts itself. */
TEST(table_deny_cases_match_no_allow_row)
{
	size_t n;
	const struct sandbox_syscall_row *t = sandbox_syscall_table(&n);
	unsigned denies = 0;

	for (size_t i = 0; i < n; i++) {
		if (t[i].kind != SANDBOX_SYSCALL_DENY || t[i].abi != SANDBOX_ABI_NATIVE)
			continue;
		denies++;
		for (size_t j = 0; j < n; j++)
			if (t[j].kind == SANDBOX_SYSCALL_ALLOW &&
			    strcmp(t[i].name, t[j].name) == 0 && row_allows(&t[j], t[i].args)) {
				CHECK_STR_EQ(t[i].why, "a case no ALLOW row matches");
				CHECK_STR_EQ(t[i].name, t[j].why ? t[j].why : "(unconditional)");
			}
	}
	CHECK(denies > 80);
}

/* The control of the test above: a case built to match an ALLOW row does. */
TEST(table_row_matching_sees_a_match)
{
	struct sandbox_syscall_row row = {
		.name = "socket",
		.kind = SANDBOX_SYSCALL_ALLOW,
		.n_cmp = 2,
		.cmp = { { 0, SANDBOX_CMP_EQ, ~0ULL, 2 }, { 1, SANDBOX_CMP_MASKED_EQ, 0xf, 1 } },
	};
	uint64_t tcp[6] = { 2, 1 | 04000, 0 }, raw[6] = { 2, 3, 1 };

	CHECK(row_allows(&row, tcp));
	CHECK(!row_allows(&row, raw));
}

TEST(dangerous_calls_are_never_allowed_unconditionally)
{
	static const char *const dangerous[] = {
		"ptrace",
		"process_vm_readv",
		"process_vm_writev",
		"bpf",
		"perf_event_open",
		"userfaultfd",
		"io_uring_setup",
		"keyctl",
		"add_key",
		"unshare",
		"setns",
		"mount",
		"umount2",
		"pivot_root",
		"chroot",
		"fsopen",
		"open_tree",
		"move_mount",
		"init_module",
		"kexec_load",
		"reboot",
		"seccomp",
		"clone3",
		"open_by_handle_at",
		"modify_ldt",
		"iopl",
		"ioperm",
		"syslog",
		NULL,
	};
	size_t n;
	const struct sandbox_syscall_row *t = sandbox_syscall_table(&n);

	for (size_t i = 0; i < n; i++)
		if (t[i].kind == SANDBOX_SYSCALL_ALLOW && in_list(t[i].name, dangerous))
			CHECK_STR_EQ(t[i].name, "not in the allowlist");
}

TEST(compiled_in_filter_is_the_tables)
{
	_cleanup_close_ int fd = memfd_create("bpf", MFD_CLOEXEC);
	const void *filter;
	size_t len;
	struct stat st;

	CHECK(fd >= 0);
	CHECK_OK(sandbox_seccomp_export(fd));
	CHECK_OK(sandbox_seccomp_program(&filter, &len));
	CHECK_OK(fstat(fd, &st));
	CHECK_UINT_EQ(st.st_size, len * sizeof(struct sock_filter));
	if ((size_t)st.st_size == len * sizeof(struct sock_filter)) {
		_cleanup_free_ char *buf = malloc(st.st_size);
		CHECK(pread(fd, buf, st.st_size, 0) == st.st_size);
		CHECK(memcmp(buf, filter, st.st_size) == 0);
	}
}

/* ---- cgroups on a fake tree ------------------------------------------------- */

static char *
make_tmpdir(void)
{
	char tmpl[] = "/tmp/test-sandbox-XXXXXX";
	char *d = mkdtemp(tmpl);
	return d ? strdup(d) : NULL;
}

static void
touch(const char *dir, const char *name)
{
	char path[1024];
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0);
	(void)safe_close(fd);
}

static void
mkdirs(const char *path)
{
	char buf[1024];

	(void)snprintf(buf, sizeof(buf), "%s", path);
	for (char *p = buf + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			(void)mkdir(buf, 0755);
			*p = '/';
		}
	(void)mkdir(buf, 0755);
}

static char *
slurp(const char *dir, const char *name)
{
	char path[1024], buf[256];
	ssize_t n;
	_cleanup_close_ int fd = -EBADF;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return strdup("(missing)");
	n = read(fd, buf, sizeof(buf) - 1);
	buf[n > 0 ? n : 0] = '\0';
	return strdup(buf);
}

#define CHECK_FILE(dir, name, want)                                                                \
	do {                                                                                       \
		_cleanup_free_ char *_got_ = slurp(dir, name);                                     \
		CHECK_STR_EQ(_got_, want);                                                         \
	} while (0)

static void
rm_rf(const char *path)
{
	char cmd[1100];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", path);
	(void)!system(cmd);
}

TEST(cgroup_v1_files)
{
	_cleanup_free_ char *root = make_tmpdir();
	const char *own[_CGROUP_MAX] = { "/a/b", "/", "/c" };
	struct sandbox_limits l = { .memory = 256 << 20, .pids = 64, .cpu = 500 };
	struct sandbox_cgroup *cg = NULL;
	struct sandbox_error e;
	char mem[512], pids[512], cpu[512];

	CHECK(root);
	(void)snprintf(mem, sizeof(mem), "%s/memory/a/b/granary/g1", root);
	(void)snprintf(pids, sizeof(pids), "%s/pids/granary/g1", root);
	(void)snprintf(cpu, sizeof(cpu), "%s/cpu/c/granary/g1", root);
	/* cgroupfs makes these files itself; the fake tree has them ready. */
	mkdirs(mem);
	mkdirs(pids);
	mkdirs(cpu);
	touch(mem, "cgroup.procs");
	touch(mem, "tasks");
	touch(mem, "memory.limit_in_bytes");
	touch(mem, "memory.memsw.limit_in_bytes");
	touch(pids, "cgroup.procs");
	touch(pids, "tasks");
	touch(pids, "pids.max");
	touch(cpu, "cgroup.procs");
	touch(cpu, "tasks");
	touch(cpu, "cpu.cfs_period_us");
	touch(cpu, "cpu.cfs_quota_us");

	CHECK_OK(cgroup_create_in(1, root, own, NULL, "g1", &l, &cg, &e));
	CHECK_FILE(mem, "memory.limit_in_bytes", "268435456");
	CHECK_FILE(mem, "memory.memsw.limit_in_bytes", "268435456");
	CHECK_FILE(pids, "pids.max", "64");
	CHECK_FILE(cpu, "cpu.cfs_period_us", "100000");
	CHECK_FILE(cpu, "cpu.cfs_quota_us", "50000");
	if (cg) {
		CHECK_STR_EQ(cg->path[CGROUP_MEMORY], mem);
		CHECK_STR_EQ(cg->path[CGROUP_PIDS], pids);
		int fds[_CGROUP_MAX];

		CHECK_OK(cgroup_open_join_fds(cg, fds));
		CHECK(fds[CGROUP_MEMORY] >= 0 && fds[CGROUP_PIDS] >= 0 && fds[CGROUP_CPU] >= 0);
		CHECK_OK(cgroup_join(fds));
		cgroup_close_join_fds(fds);
		CHECK_FILE(mem, "tasks", "0"); /* "0": the calling task moves itself */
		CHECK_FILE(pids, "tasks", "0");
		CHECK_FILE(cpu, "tasks", "0");
	}
	cg = cgroup_free(cg);

	/* A leftover directory with processes in it is in use: refused. */
	{
		char path[600];
		int fd;

		(void)snprintf(path, sizeof(path), "%s/cgroup.procs", pids);
		fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
		CHECK(fd >= 0 && write(fd, "77\n", 3) == 3);
		(void)safe_close(fd);
		CHECK_ERR(cgroup_create_in(1, root, own, NULL, "g1", &l, &cg, &e), EBUSY);
		CHECK(strstr(e.message, "in use") != NULL);
	}
	rm_rf(root);
}

TEST(cgroup_half_made_is_removed)
{
	_cleanup_free_ char *root = make_tmpdir();
	const char *own[_CGROUP_MAX] = { "/", "/", "/" };
	struct sandbox_limits l = { .memory = 64 << 20, .pids = 8 };
	struct sandbox_cgroup *cg = NULL;
	struct sandbox_error e;
	char path[600];
	struct stat st;

	CHECK(root);
	(void)snprintf(path, sizeof(path), "%s/memory", root);
	mkdirs(path);
	touch(root, "pids"); /* a file where the pids hierarchy should be */
	CHECK_ERR(cgroup_create_in(1, root, own, NULL, "g3", &l, &cg, &e), ENOTDIR);
	CHECK(strstr(e.message, "/pids/granary") != NULL);
	(void)snprintf(path, sizeof(path), "%s/memory/granary/g3", root);
	CHECK(stat(path, &st) < 0 && errno == ENOENT);
	CHECK(cg == NULL);
	rm_rf(root);
}

TEST(cgroup_v2_files)
{
	_cleanup_free_ char *root = make_tmpdir();
	const char *own[_CGROUP_MAX] = { "/svc", "/svc", "/svc" };
	struct sandbox_limits l = { .memory = 64 << 20, .pids = 32, .cpu = 1500 };
	struct sandbox_cgroup *cg = NULL;
	struct sandbox_error e;
	char svc[512], parent[512], grain[512];

	CHECK(root);
	(void)snprintf(svc, sizeof(svc), "%s/svc", root);
	(void)snprintf(parent, sizeof(parent), "%s/svc/granary", root);
	(void)snprintf(grain, sizeof(grain), "%s/svc/granary/g2", root);
	mkdirs(grain);
	touch(svc, "cgroup.subtree_control");
	touch(parent, "cgroup.subtree_control");
	touch(grain, "cgroup.procs");
	touch(grain, "memory.max");
	touch(grain, "memory.swap.max");
	touch(grain, "memory.oom.group");
	touch(grain, "pids.max");
	touch(grain, "cpu.max");

	CHECK_OK(cgroup_create_in(2, root, own, NULL, "g2", &l, &cg, &e));
	CHECK_FILE(svc, "cgroup.subtree_control", "+memory +pids +cpu");
	CHECK_FILE(parent, "cgroup.subtree_control", "+memory +pids +cpu");
	CHECK_FILE(grain, "memory.max", "67108864");
	CHECK_FILE(grain, "memory.swap.max", "0");
	CHECK_FILE(grain, "memory.oom.group", "1");
	CHECK_FILE(grain, "pids.max", "32");
	CHECK_FILE(grain, "cpu.max", "150000 100000");
	if (cg) {
		/* One directory for every controller, open for CLONE_INTO_CGROUP. */
		CHECK_STR_EQ(cg->path[CGROUP_PIDS], grain);
		CHECK_STR_EQ(cg->path[CGROUP_CPU], grain);
		CHECK(cg->dir_fd >= 0);
		int fds[_CGROUP_MAX];

		CHECK_OK(cgroup_open_join_fds(cg, fds)); /* v2: CLONE_INTO_CGROUP instead */
		CHECK(fds[0] < 0 && fds[1] < 0 && fds[2] < 0);
	}
	cg = cgroup_free(cg);
	rm_rf(root);
}

/* The "0::" line of /proc/PID/cgroup ("self" when 0), or "". */
static void
cgroup2_of(pid_t pid, char *out, size_t size)
{
	char path[64], line[512];
	FILE *f;

	(void)snprintf(path, sizeof(path), pid ? "/proc/%d/cgroup" : "/proc/self/cgroup", (int)pid);
	out[0] = '\0';
	f = fopen(path, "re");
	if (!f)
		return;
	while (fgets(line, sizeof(line), f))
		if (strncmp(line, "0::", 3) == 0) {
			line[strcspn(line, "\n")] = '\0';
			(void)snprintf(out, size, "%s", line + 3);
		}
	(void)fclose(f);
}

static void
join_cgroup2(const char *dir)
{
	char path[512];

	(void)snprintf(path, sizeof(path), "%s/cgroup.procs", dir);
	CHECK_OK(write_file(path, "0"));
}

/*
 * A supervisor leaves its cgroup for a leaf before it forks, on a real
 * cgroup2 file system (here the hybrid host's, which has no memory
 * controller but the same rules for moving processes).
 */
TEST(cgroup_v2_supervisor_leaves_its_cgroup_for_a_leaf)
{
	const char *mount = "/sys/fs/cgroup/unified";
	struct sandbox_cgroup_leaf leaf;
	struct sandbox_error e;
	char own[256], dir[300], leaf_dir[320], want[300], seen[512];
	_cleanup_free_ char *fake = make_tmpdir();
	pid_t child;
	int status;

	/* Not cgroup v2 (v1, hybrid): nothing to do. */
	CHECK(fake);
	CHECK_INT_EQ(sandbox_cgroup_leave_own(fake, &leaf, &e), 0);
	CHECK(!leaf.moved);
	rm_rf(fake);
	if (geteuid() != 0 || access("/sys/fs/cgroup/unified/cgroup.procs", W_OK) < 0) {
		SKIP("needs root and a cgroup2 file system at /sys/fs/cgroup/unified");
		return;
	}
	cgroup2_of(0, own, sizeof(own));
	/* In the root cgroup (which may hold processes): nothing to do either. */
	join_cgroup2(mount);
	CHECK_INT_EQ(sandbox_cgroup_leave_own(mount, &leaf, &e), 0);
	CHECK(!leaf.moved);

	(void)snprintf(dir, sizeof(dir), "%s/granary-test-%d", mount, (int)getpid());
	(void)snprintf(leaf_dir, sizeof(leaf_dir), "%s/supervisor", dir);
	CHECK(mkdir(dir, 0755) == 0);
	join_cgroup2(dir);
	CHECK_INT_EQ(sandbox_cgroup_leave_own(mount, &leaf, &e), 1);
	CHECK(leaf.moved);
	CHECK_UINT_EQ(leaf.others, 0);
	(void)snprintf(want, sizeof(want), "/granary-test-%d/supervisor", (int)getpid());
	cgroup2_of(0, seen, sizeof(seen));
	CHECK_STR_EQ(seen, want);
	/* Again: it stays in its leaf, no leaf below the leaf. */
	CHECK_INT_EQ(sandbox_cgroup_leave_own(mount, &leaf, &e), 1);
	cgroup2_of(0, seen, sizeof(seen));
	CHECK_STR_EQ(seen, want);
	/* What it forks starts in the leaf. */
	child = fork();
	if (child == 0) {
		pause();
		_exit(0);
	}
	CHECK(child > 0);
	cgroup2_of(child, seen, sizeof(seen));
	CHECK_STR_EQ(seen, want);
	/* A process that is not ours in the cgroup: reported. */
	(void)snprintf(seen, sizeof(seen), "%s/cgroup.procs", dir);
	{
		char pid[16];

		(void)snprintf(pid, sizeof(pid), "%d", (int)child);
		CHECK_OK(write_file(seen, pid));
	}
	CHECK_INT_EQ(sandbox_cgroup_leave_own(mount, &leaf, &e), 1);
	CHECK_UINT_EQ(leaf.others, 1);
	(void)kill(child, SIGKILL);
	(void)waitpid(child, &status, 0);

	/* Back where the test started, and nothing left behind. */
	(void)snprintf(seen, sizeof(seen), "%s%s", mount, strcmp(own, "/") == 0 ? "" : own);
	join_cgroup2(seen);
	CHECK(rmdir(leaf_dir) == 0);
	CHECK(rmdir(dir) == 0);
}

TEST(cgroup_bad_input)
{
	const char *own[_CGROUP_MAX] = { "/", "/", "/" };
	struct sandbox_limits l = { .pids = 8 }, none = {};
	struct sandbox_cgroup *cg = NULL;
	struct sandbox_error e;

	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, "../up", "g", &l, &cg, &e), EINVAL);
	CHECK(strstr(e.message, "Bad cgroup parent '../up'") != NULL);
	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, "a//b", "g", &l, &cg, &e), EINVAL);
	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, NULL, "a/b", &l, &cg, &e), EINVAL);
	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, NULL, "..", &l, &cg, &e), EINVAL);
	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, NULL, "g", &none, &cg, &e), EINVAL);
	own[CGROUP_PIDS] = NULL;
	CHECK_ERR(cgroup_create_in(1, "/nonexistent", own, NULL, "g", &l, &cg, &e), ENOENT);
	CHECK(strstr(e.message, "no pids cgroup") != NULL);
	CHECK(cg == NULL);
}

/* ---- the sysctl check on a fake /proc/sys ------------------------------------ */

static const char *const good_sysctls[][2] = {
	{ "kernel/unprivileged_bpf_disabled", "2" },
	{ "kernel/perf_event_paranoid", "3" },
	{ "vm/unprivileged_userfaultfd", "0" },
	{ "kernel/io_uring_disabled", "2" },
	{ "fs/protected_symlinks", "1" },
	{ "fs/protected_hardlinks", "1" },
	{ "fs/suid_dumpable", "0" },
	{ "kernel/kptr_restrict", "2" },
	{ "kernel/dmesg_restrict", "1" },
	{ "user/max_user_namespaces", "100" },
};

static void
write_sysctl(const char *root, const char *name, const char *value)
{
	char path[1024];
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", root, name);
	*strrchr(path, '/') = '\0';
	mkdirs(path);
	(void)snprintf(path, sizeof(path), "%s/%s", root, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	CHECK(fd >= 0 && write(fd, value, strlen(value)) == (ssize_t)strlen(value));
	(void)safe_close(fd);
}

struct findings {
	int count;
	char last[512];
};

static void
collect(enum sandbox_check_level level, const char *what, const char *advice, void *userdata)
{
	struct findings *f = userdata;

	(void)level;
	(void)advice;
	f->count++;
	(void)snprintf(f->last, sizeof(f->last), "%s", what);
}

TEST(sysctl_check)
{
	_cleanup_free_ char *root = make_tmpdir();
	struct findings f = {};

	CHECK(root);
	for (size_t i = 0; i < ELEMENTSOF(good_sysctls); i++)
		write_sysctl(root, good_sysctls[i][0], good_sysctls[i][1]);
	CHECK_INT_EQ(check_sysctls(root, collect, &f), SANDBOX_CHECK_OK);
	CHECK_INT_EQ(f.count, 0);

	write_sysctl(root, "kernel/kptr_restrict", "0");
	CHECK_INT_EQ(check_sysctls(root, collect, &f), SANDBOX_CHECK_WARN);
	CHECK_INT_EQ(f.count, 1);
	CHECK_STR_EQ(f.last, "kernel.kptr_restrict is 0");

	write_sysctl(root, "kernel/kptr_restrict", "garbage");
	f.count = 0;
	CHECK_INT_EQ(check_sysctls(root, collect, &f), SANDBOX_CHECK_WARN);
	CHECK(strstr(f.last, "Cannot read kernel.kptr_restrict") != NULL);

	write_sysctl(root, "kernel/kptr_restrict", "1");
	write_sysctl(root, "user/max_user_namespaces", "0");
	f.count = 0;
	CHECK_INT_EQ(check_sysctls(root, collect, &f), SANDBOX_CHECK_REFUSE);
	CHECK_STR_EQ(f.last, "user.max_user_namespaces is 0");
	rm_rf(root);
}

/* ---- spec validation: refused before anything is created ------------------------ */

static int
start(struct sandbox_spec *spec, struct sandbox_error *e)
{
	struct sandbox *s = NULL;
	int r = sandbox_start(spec, &s, e);

	s = sandbox_free(s);
	return r;
}

TEST(spec_validation)
{
	char *argv[] = { (char *)"/bin/true", NULL };
	struct sandbox_bind bad_bind = { "/usr", "/proc/x" };
	struct sandbox_spec ok = {
		.root = "/nonexistent",
		.argv = argv,
		.host_uid = 0x40000000,
		.host_gid = 0x40000000,
		.limits = { .pids = 8 },
		.cgroup_name = "test",
		.init_fd = -1,
		.stdout_fd = -1,
		.stderr_fd = -1,
	};
	struct sandbox_spec spec;
	struct sandbox_error e;

	spec = ok;
	spec.root = NULL;
	CHECK_ERR(start(&spec, &e), EINVAL);
	CHECK_STR_EQ(e.message, "No package root given");

	spec = ok;
	spec.argv = (char *[]){ NULL };
	CHECK_ERR(start(&spec, &e), EINVAL);
	CHECK_STR_EQ(e.message, "No command given");

	spec = ok;
	spec.argv = (char *[]){ (char *)"true", NULL };
	CHECK_ERR(start(&spec, &e), EINVAL);
	CHECK(strstr(e.message, "absolute path") != NULL);

	spec = ok;
	spec.limits = (struct sandbox_limits){};
	CHECK_ERR(start(&spec, &e), EINVAL);
	CHECK_STR_EQ(e.message, "No resource limit given");

	spec = ok;
	spec.limits.memory = 1 << 20;
	CHECK_ERR(start(&spec, &e), EINVAL);

	spec = ok;
	spec.binds = &bad_bind;
	spec.n_binds = 1;
	CHECK_ERR(start(&spec, &e), EINVAL);
	CHECK(strstr(e.message, "Bad bind target '/proc/x'") != NULL);

	spec = ok;
	spec.hostname = "a b";
	CHECK_ERR(start(&spec, &e), EINVAL);

	spec = ok;
	spec.keep_fds = (int[]){ 999 };
	spec.n_keep_fds = 1;
	CHECK_ERR(start(&spec, &e), EBADF);

	if (geteuid() == 0) {
		spec = ok;
		spec.host_uid = 0;
		CHECK_ERR(start(&spec, &e), EINVAL);
		CHECK(strstr(e.message, "other than 0") != NULL);
	}
}

TEST(error_message_formats_errno)
{
	struct sandbox_error e;

	CHECK_ERR(sandbox_error_set(&e, -ENOENT, "Failed to open '%s': %m", "x"), ENOENT);
	CHECK_STR_EQ(e.message, "Failed to open 'x': No such file or directory");
	CHECK_ERR(sandbox_error_set(NULL, -EPERM, "ignored"), EPERM);
}

/* ---- host uids, data hand-over, init memfd ----------------------------------------- */

TEST(uid_locks)
{
	int a = -1, b = -1, c = -1;
	uid_t ua = 0, ub = 0, uc = 0;
	uid_t first = 0x40000000 + 60000 + (getpid() % 4000);

	if (geteuid() != 0)
		SKIP("host: uid locks live in /run/granary, root only");
	CHECK_OK(sandbox_uid_acquire((uid_t)-1, first, 2, &ua, &a));
	CHECK_OK(sandbox_uid_acquire((uid_t)-1, first, 2, &ub, &b));
	CHECK(ua != ub);
	CHECK_ERR(sandbox_uid_acquire((uid_t)-1, first, 2, &uc, &c), EUSERS);
	CHECK_ERR(sandbox_uid_acquire(ua, first, 2, &uc, &c), EBUSY);
	a = safe_close(a);
	CHECK_OK(sandbox_uid_acquire(ua, first, 2, &uc, &c));
	CHECK_UINT_EQ(uc, ua);
	CHECK_ERR(sandbox_uid_acquire((uid_t)-1, 0, 2, &uc, &c), EINVAL);
	(void)safe_close(b);
	(void)safe_close(c);
}

TEST(chown_tree_stays_in_the_tree)
{
	_cleanup_free_ char *root = make_tmpdir();
	char data[600], outside[600], path[700];
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	if (geteuid() != 0)
		SKIP("host: chown needs root");
	CHECK(root);
	(void)snprintf(data, sizeof(data), "%s/data", root);
	(void)snprintf(outside, sizeof(outside), "%s/outside", root);
	mkdirs(data);
	mkdirs(outside);
	touch(outside, "secret");
	(void)snprintf(path, sizeof(path), "%s/sub", data);
	mkdirs(path);
	touch(path, "file");
	(void)snprintf(path, sizeof(path), "%s/link", data);
	CHECK_OK(symlink(outside, path));
	(void)snprintf(path, sizeof(path), "%s/hard", data);
	{
		char secret[700];
		(void)snprintf(secret, sizeof(secret), "%s/secret", outside);
		CHECK_OK(link(secret, path));
	}

	fd = open(data, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	CHECK_OK(sandbox_chown_tree(fd, 0x40000123, 0x40000123));
	CHECK_OK(stat(data, &st));
	CHECK_UINT_EQ(st.st_uid, 0x40000123);
	(void)snprintf(path, sizeof(path), "%s/sub/file", data);
	CHECK_OK(stat(path, &st));
	CHECK_UINT_EQ(st.st_uid, 0x40000123);
	(void)snprintf(path, sizeof(path), "%s/link", data);
	CHECK_OK(lstat(path, &st));
	CHECK_UINT_EQ(st.st_uid, 0x40000123); /* the link itself */
	CHECK_OK(stat(outside, &st));
	CHECK_UINT_EQ(st.st_uid, 0); /* not what it points to */
	(void)snprintf(path, sizeof(path), "%s/secret", outside);
	CHECK_OK(stat(path, &st));
	CHECK_UINT_EQ(st.st_uid, 0); /* nor a file hard-linked in */
	rm_rf(root);
}

TEST(init_memfd_is_sealed)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;

	CHECK_ERR(sandbox_load_init("/nonexistent/grain-init", &fd), ENOENT);
	CHECK_ERR(sandbox_load_init("/tmp", &fd), EINVAL); /* not a regular file */
	CHECK_OK(sandbox_load_init("/proc/self/exe", &fd));
	CHECK(fd >= 0);
	if (fd < 0)
		return;
	CHECK_OK(fstat(fd, &st));
	CHECK_UINT_EQ(st.st_mode & 07777, 0511);
	CHECK(write(fd, "x", 1) < 0 && errno == EPERM);
	CHECK(ftruncate(fd, 0) < 0 && errno == EPERM);
	CHECK(fcntl(fd, F_GET_SEALS) == (F_SEAL_SHRINK | F_SEAL_GROW | F_SEAL_WRITE | F_SEAL_SEAL));
}
