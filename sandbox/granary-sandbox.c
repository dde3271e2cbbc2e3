/* SPDX-License-Identifier: MIT */
/*
 * granary-sandbox.c: run a command in a full grain sandbox, for people
 * debugging an app and for tests (DESIGN.md, command-line contract). It takes
 * the same path as a grain: sandbox_start() with grain-init, from a sealed
 * memfd, as pid 1. Exit status: the command's (128 + N when signal N killed
 * it), or 125 when the sandbox could not be built.
 *
 * As root it also picks the grain's host uid (free in --uid-range, or the
 * owner of --var if that is in the range, or --host-uid), holds it while
 * running, and hands --var to it (chown without following links).
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "sandbox/sandbox.h"
#include "common/banned.h"

#ifndef GRANARY_LIBEXECDIR
#define GRANARY_LIBEXECDIR "/usr/local/lib/granary"
#endif

#define EXIT_SANDBOX 125
#define MAX_ENV	     256
#define MAX_BINDS    64
#define MAX_FDS	     16

static const char *arg_root;
static const char *arg_var;
static const char *arg_chdir;
static const char *arg_hostname;
static const char *arg_init;
static const char *arg_cgroup_root;
static const char *arg_cgroup_parent;
static uint64_t arg_tmp_size = SANDBOX_DEFAULT_TMP_SIZE;
static struct sandbox_limits arg_limits = {
	.memory = SANDBOX_DEFAULT_MEMORY,
	.pids = SANDBOX_DEFAULT_PIDS,
	.cpu = SANDBOX_DEFAULT_CPU,
	.nofile = SANDBOX_DEFAULT_NOFILE,
};
static uid_t arg_host_uid = (uid_t)-1;
static uid_t arg_uid_first = SANDBOX_UID_RANGE_FIRST;
static uint32_t arg_uid_count = SANDBOX_UID_RANGE_COUNT;
static bool arg_allow_no_limits;
static bool arg_check_host;
static const char *arg_setenv[MAX_ENV][2]; /* K, V as given */
static size_t arg_n_setenv;
static char *arg_env[MAX_ENV + 1]; /* owned strings, built in main() */
static size_t arg_n_env;
static struct sandbox_bind arg_binds[MAX_BINDS];
static size_t arg_n_binds;
static int arg_fds[MAX_FDS];
static size_t arg_n_fds;

static void
help(void)
{
	printf("Usage: granary-sandbox --root DIR [OPTION]... -- CMD [ARG]...\n"
	       "Run CMD in a grain sandbox, as a grain runs, and exit with its status\n"
	       "(125 when the sandbox cannot be built).\n"
	       "\n"
	       "  --root DIR            the package: its entries become / (read-only)\n"
	       "  --var DIR             the grain's data, /var (read-write); default: empty\n"
	       "  --tmp-size SIZE       size of /tmp, /dev/shm (default 16M)\n"
	       "  --memory SIZE         memory limit, swap included (default 256M)\n"
	       "  --pids N              process and thread limit (default 128)\n"
	       "  --cpu CPUS            CPU time limit in CPUs, e.g. 0.5 (default 1)\n"
	       "  --nofile N            open file limit (default 1024)\n"
	       "  --allow-no-limits     run even when the cgroup limits cannot be applied\n"
	       "  --setenv K V          set an environment variable (repeatable); the\n"
	       "                        grain gets PATH, HOME=/var, TMPDIR=/tmp, LANG and these\n"
	       "  --ro-bind SRC DEST    bind host SRC read-only at DEST (repeatable)\n"
	       "  --chdir DIR           working directory inside (default /var)\n"
	       "  --hostname NAME       hostname inside (default grain)\n"
	       "  --fd N                pass open fd N as fd 3, 4, ... (repeatable)\n"
	       "  --host-uid UID        host uid for the grain (root; default: a free one)\n"
	       "  --uid-range FIRST:N   host uids to pick from (default %u:%u)\n"
	       "  --cgroup-root DIR     where cgroups are mounted (default /sys/fs/cgroup)\n"
	       "  --cgroup-parent PATH  below this process's cgroup (default granary)\n"
	       "  --init PATH           grain-init (default: beside this program, or %s)\n"
	       "  --check-host          check this host for sandboxes and report, run nothing\n"
	       "  -v, --verbose         show debugging messages\n"
	       "  -h, --help            show this help\n"
	       "      --version         show the version\n"
	       "\n"
	       "See docs/sandbox.md for what the command sees and how to debug it.\n",
	       SANDBOX_UID_RANGE_FIRST, SANDBOX_UID_RANGE_COUNT, GRANARY_LIBEXECDIR);
}

static bool
env_name_ok(const char *k)
{
	size_t len = strlen(k);

	if (len == 0 || len > 128 || (k[0] >= '0' && k[0] <= '9'))
		return false;
	return strspn(k, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_") == len;
}

/* Set K=V in arg_env, replacing an earlier K. */
static int
env_set(const char *k, const char *v)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	size_t klen = strlen(k);
	int r;

	if (!env_name_ok(k))
		return log_error_errno(EINVAL, "Bad environment variable name '%s'", k);
	r = buf_printf(&b, "%s=%s", k, v);
	if (r < 0)
		return log_oom();
	for (size_t i = 0; i < arg_n_env; i++)
		if (strncmp(arg_env[i], k, klen) == 0 && arg_env[i][klen] == '=') {
			free(arg_env[i]);
			arg_env[i] = buf_steal(&b);
			return arg_env[i] ? 0 : log_oom();
		}
	if (arg_n_env >= MAX_ENV)
		return log_error_errno(E2BIG, "More than %d environment variables", MAX_ENV);
	arg_env[arg_n_env] = buf_steal(&b);
	if (!arg_env[arg_n_env])
		return log_oom();
	arg_n_env++;
	return 0;
}

/* "0.5" → 500 thousandths of a CPU. */
static int
parse_cpus(const char *s, uint32_t *ret)
{
	uint64_t whole = 0, frac = 0, scale = 1000;
	const char *dot = strchr(s, '.');
	char buf[32];
	int r;

	if (strlen(s) >= sizeof(buf) || !*s || s[0] == '.')
		return -EINVAL;
	memcpy(buf, s, strlen(s) + 1);
	if (dot)
		buf[dot - s] = '\0';
	r = parse_uint64(buf, &whole);
	if (r < 0)
		return r;
	if (dot) {
		const char *p = dot + 1;

		if (!*p || strlen(p) > 3 || strspn(p, "0123456789") != strlen(p))
			return -EINVAL;
		for (; *p; p++) {
			scale /= 10;
			frac += (uint64_t)(*p - '0') * scale;
		}
	}
	if (whole > 1024)
		return -ERANGE;
	*ret = (uint32_t)(whole * 1000 + frac);
	return 0;
}

static int
parse_uid_range(const char *s, uid_t *ret_first, uint32_t *ret_count)
{
	const char *colon = strchr(s, ':');
	char first_s[16];
	uint32_t first, count;
	int r;

	if (!colon || (size_t)(colon - s) >= sizeof(first_s))
		return -EINVAL;
	memcpy(first_s, s, colon - s);
	first_s[colon - s] = '\0';
	r = parse_uint32(first_s, &first);
	if (r >= 0)
		r = parse_uint32(colon + 1, &count);
	if (r < 0)
		return r;
	if (first == 0 || count == 0 || (uint64_t)first + count > 0xffffffffULL)
		return -ERANGE;
	*ret_first = first;
	*ret_count = count;
	return 0;
}

static int
parse_argv(int argc, char *argv[])
{
	enum {
		ARG_VERSION = 0x100,
		ARG_ROOT,
		ARG_VAR,
		ARG_TMP_SIZE,
		ARG_MEMORY,
		ARG_PIDS,
		ARG_CPU,
		ARG_NOFILE,
		ARG_ALLOW_NO_LIMITS,
		ARG_SETENV,
		ARG_RO_BIND,
		ARG_CHDIR,
		ARG_HOSTNAME,
		ARG_FD,
		ARG_HOST_UID,
		ARG_UID_RANGE,
		ARG_CGROUP_ROOT,
		ARG_CGROUP_PARENT,
		ARG_INIT,
		ARG_CHECK_HOST,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "verbose", no_argument, NULL, 'v' },
		{ "root", required_argument, NULL, ARG_ROOT },
		{ "var", required_argument, NULL, ARG_VAR },
		{ "tmp-size", required_argument, NULL, ARG_TMP_SIZE },
		{ "memory", required_argument, NULL, ARG_MEMORY },
		{ "pids", required_argument, NULL, ARG_PIDS },
		{ "cpu", required_argument, NULL, ARG_CPU },
		{ "nofile", required_argument, NULL, ARG_NOFILE },
		{ "allow-no-limits", no_argument, NULL, ARG_ALLOW_NO_LIMITS },
		{ "setenv", required_argument, NULL, ARG_SETENV },
		{ "ro-bind", required_argument, NULL, ARG_RO_BIND },
		{ "chdir", required_argument, NULL, ARG_CHDIR },
		{ "hostname", required_argument, NULL, ARG_HOSTNAME },
		{ "fd", required_argument, NULL, ARG_FD },
		{ "host-uid", required_argument, NULL, ARG_HOST_UID },
		{ "uid-range", required_argument, NULL, ARG_UID_RANGE },
		{ "cgroup-root", required_argument, NULL, ARG_CGROUP_ROOT },
		{ "cgroup-parent", required_argument, NULL, ARG_CGROUP_PARENT },
		{ "init", required_argument, NULL, ARG_INIT },
		{ "check-host", no_argument, NULL, ARG_CHECK_HOST },
		{},
	};
	uint64_t u;
	uint32_t u32;
	int c, r;

	while ((c = getopt_long(argc, argv, "+hv", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("granary-sandbox %s\n", GRANARY_VERSION);
			return 0;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case ARG_ROOT:
			arg_root = optarg;
			break;
		case ARG_VAR:
			arg_var = optarg;
			break;
		case ARG_TMP_SIZE:
			r = parse_size(optarg, &arg_tmp_size);
			if (r < 0 || arg_tmp_size < 4096)
				return log_error_errno(
					r < 0 ? r : ERANGE,
					"Bad --tmp-size '%s' (e.g. 16M, at least 4K)", optarg);
			break;
		case ARG_MEMORY:
			r = parse_size(optarg, &arg_limits.memory);
			if (r < 0 || arg_limits.memory < (4ULL << 20))
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --memory '%s' (e.g. 256M, at least 4M)",
						       optarg);
			break;
		case ARG_PIDS:
			r = parse_uint64(optarg, &arg_limits.pids);
			if (r < 0 || arg_limits.pids < 2 || arg_limits.pids > 4194304)
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --pids '%s' (2 to 4194304)", optarg);
			break;
		case ARG_CPU:
			r = parse_cpus(optarg, &arg_limits.cpu);
			if (r < 0 || arg_limits.cpu < 10)
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --cpu '%s' (e.g. 0.5, at least 0.01)",
						       optarg);
			break;
		case ARG_NOFILE:
			r = parse_uint64(optarg, &arg_limits.nofile);
			if (r < 0 || arg_limits.nofile < 16 || arg_limits.nofile > (1 << 20))
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --nofile '%s' (16 to 1048576)", optarg);
			break;
		case ARG_ALLOW_NO_LIMITS:
			arg_allow_no_limits = true;
			break;
		case ARG_SETENV:
			if (optind >= argc)
				return log_error_errno(EINVAL, "--setenv takes two arguments: K V");
			if (!env_name_ok(optarg))
				return log_error_errno(EINVAL, "Bad environment variable name '%s'",
						       optarg);
			if (arg_n_setenv >= MAX_ENV - 8)
				return log_error_errno(E2BIG, "Too many --setenv");
			arg_setenv[arg_n_setenv][0] = optarg;
			arg_setenv[arg_n_setenv++][1] = argv[optind++];
			break;
		case ARG_RO_BIND:
			if (optind >= argc)
				return log_error_errno(EINVAL,
						       "--ro-bind takes two arguments: SRC DEST");
			if (arg_n_binds >= MAX_BINDS)
				return log_error_errno(E2BIG, "More than %d --ro-bind", MAX_BINDS);
			arg_binds[arg_n_binds++] = (struct sandbox_bind){ optarg, argv[optind++] };
			break;
		case ARG_CHDIR:
			arg_chdir = optarg;
			break;
		case ARG_HOSTNAME:
			arg_hostname = optarg;
			break;
		case ARG_FD:
			r = parse_uint32(optarg, &u32);
			if (r < 0 || u32 > INT_MAX || fcntl((int)u32, F_GETFD) < 0)
				return log_error_errno(r < 0 ? r : EBADF, "Bad --fd '%s': not open",
						       optarg);
			if (arg_n_fds >= MAX_FDS)
				return log_error_errno(E2BIG, "More than %d --fd", MAX_FDS);
			arg_fds[arg_n_fds++] = (int)u32;
			break;
		case ARG_HOST_UID:
			r = parse_uint64(optarg, &u);
			if (r < 0 || u == 0 || u >= 0xffffffffULL)
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --host-uid '%s' (1 to 4294967294)",
						       optarg);
			arg_host_uid = (uid_t)u;
			break;
		case ARG_UID_RANGE:
			r = parse_uid_range(optarg, &arg_uid_first, &arg_uid_count);
			if (r < 0)
				return log_error_errno(r, "Bad --uid-range '%s' (FIRST:COUNT)",
						       optarg);
			break;
		case ARG_CGROUP_ROOT:
			arg_cgroup_root = optarg;
			break;
		case ARG_CGROUP_PARENT:
			arg_cgroup_parent = optarg;
			break;
		case ARG_INIT:
			arg_init = optarg;
			break;
		case ARG_CHECK_HOST:
			arg_check_host = true;
			break;
		default:
			return log_error_errno(EINVAL, "Try 'granary-sandbox --help'");
		}
	}
	return 1;
}

static void
print_finding(enum sandbox_check_level level, const char *what, const char *advice, void *userdata)
{
	bool *verbose = userdata;

	if (level == SANDBOX_CHECK_REFUSE)
		log_error("%s: %s", what, advice);
	else if (*verbose)
		log_warning("%s: %s", what, advice);
	else
		log_debug("%s: %s", what, advice);
}

/*
 * grain-init: --init, else beside this program, else the installed one. Its
 * path goes to sandbox_start(), which copies it into a sealed memfd while
 * the child builds its tree.
 */
static int
find_init(char *buf, size_t size)
{
	char self[PATH_MAX];
	ssize_t n;

	if (arg_init) {
		if (access(arg_init, X_OK) < 0)
			return log_error_errno(errno, "Failed to load the init '%s': %m", arg_init);
		(void)snprintf(buf, size, "%s", arg_init);
		return 0;
	}
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		char *slash;

		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash) {
			*slash = '\0';
			(void)snprintf(buf, size, "%s/grain-init", self);
			if (access(buf, X_OK) >= 0)
				return 0;
		}
	}
	(void)snprintf(buf, size, "%s", GRANARY_LIBEXECDIR "/grain-init");
	if (access(buf, X_OK) < 0)
		return log_error_errno(errno,
				       "Failed to find grain-init beside this program or in "
				       "'%s': %m; pass --init PATH",
				       GRANARY_LIBEXECDIR);
	return 0;
}

/*
 * Root: the grain's host uid, locked while we run. The owner of --var is
 * reused when it is in the range (data keeps its owner across runs); else a
 * free one is taken and --var is handed to it.
 */
static int
pick_uid(uid_t *ret_uid, int *ret_lock)
{
	struct stat st;
	int r;

	if (arg_host_uid != (uid_t)-1) {
		r = sandbox_uid_acquire(arg_host_uid, arg_uid_first, arg_uid_count, ret_uid,
					ret_lock);
		if (r == -EBUSY)
			return log_error_errno(r, "Host uid %u is used by another running sandbox",
					       (unsigned)arg_host_uid);
		return r < 0 ? log_error_errno(r, "Failed to lock host uid %u: %m",
					       (unsigned)arg_host_uid)
			     : 0;
	}
	if (arg_var && stat(arg_var, &st) >= 0 && st.st_uid >= arg_uid_first &&
	    st.st_uid - arg_uid_first < arg_uid_count) {
		r = sandbox_uid_acquire(st.st_uid, arg_uid_first, arg_uid_count, ret_uid, ret_lock);
		if (r >= 0)
			return 0;
		if (r != -EBUSY)
			return log_error_errno(r, "Failed to lock host uid %u: %m",
					       (unsigned)st.st_uid);
		log_debug("uid %u of '%s' is in use, taking another", (unsigned)st.st_uid, arg_var);
	}
	r = sandbox_uid_acquire((uid_t)-1, arg_uid_first, arg_uid_count, ret_uid, ret_lock);
	if (r == -EUSERS)
		return log_error_errno(r, "Every host uid of %u:%u is in use",
				       (unsigned)arg_uid_first, arg_uid_count);
	return r < 0 ? log_error_errno(r, "Failed to take a host uid: %m") : 0;
}

static int
give_var(uid_t uid)
{
	_cleanup_close_ int fd = -EBADF;
	struct stat st;
	int r;

	fd = open(arg_var, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", arg_var);
	if (fstat(fd, &st) < 0)
		return log_error_errno(errno, "Failed to stat '%s': %m", arg_var);
	if (st.st_uid == uid && st.st_gid == uid)
		return 0;
	log_info("Giving '%s' to host uid %u, the sandbox's", arg_var, (unsigned)uid);
	r = sandbox_chown_tree(fd, uid, uid);
	return r < 0 ? log_error_errno(r, "Failed to give '%s' to uid %u: %m", arg_var,
				       (unsigned)uid)
		     : 0;
}

/* Forward termination signals to pid 1 until it exits. */
static int
run(struct sandbox *s, int sigfd, int *ret_status)
{
	struct pollfd pfd[2] = {
		{ .fd = sandbox_pidfd(s), .events = POLLIN },
		{ .fd = sigfd, .events = POLLIN },
	};

	for (;;) {
		if (poll(pfd, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			return log_error_errno(errno, "Failed to wait: %m");
		}
		if (pfd[1].revents & POLLIN) {
			struct signalfd_siginfo si;

			if (read(sigfd, &si, sizeof(si)) == sizeof(si)) {
				log_debug("Forwarding signal %u", si.ssi_signo);
				(void)sandbox_signal(s, (int)si.ssi_signo);
			}
		}
		if (pfd[0].revents & POLLIN)
			return sandbox_wait(s, ret_status);
	}
}

int
main(int argc, char *argv[])
{
	_cleanup_close_ int uid_lock = -EBADF, sigfd = -EBADF;
	char init[PATH_MAX + 16];
	struct sandbox_error error;
	struct sandbox_spec spec;
	struct sandbox *s = NULL;
	char name[64];
	uid_t uid = 0;
	bool verbose;
	sigset_t mask;
	int status = EXIT_SANDBOX, r;

	log_setup("granary-sandbox");
	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_SANDBOX : EXIT_SUCCESS;
	verbose = arg_check_host || log_get_max_level() >= LOG_DEBUG;

	r = sandbox_check_host(NULL, arg_cgroup_root, arg_allow_no_limits, print_finding, &verbose);
	if (arg_check_host) {
		if (r == SANDBOX_CHECK_OK)
			printf("This host can run grain sandboxes.\n");
		else if (r == SANDBOX_CHECK_WARN)
			printf("This host can run grain sandboxes (see the warnings above).\n");
		else
			printf("This host cannot run grain sandboxes (see the errors above).\n");
		return r == SANDBOX_CHECK_REFUSE ? EXIT_FAILURE : EXIT_SUCCESS;
	}
	if (r == SANDBOX_CHECK_REFUSE) {
		log_error("Refusing to run: this host cannot hold a grain sandbox%s",
			  arg_allow_no_limits ? "" : " (--allow-no-limits runs without cgroups)");
		return EXIT_SANDBOX;
	}
	if (!arg_root) {
		log_error("No --root given; try 'granary-sandbox --help'");
		return EXIT_SANDBOX;
	}
	if (optind >= argc) {
		log_error("No command given; try 'granary-sandbox --help'");
		return EXIT_SANDBOX;
	}

	/* Granary's few variables first, so --setenv can replace them. */
	r = env_set("PATH", SANDBOX_DEFAULT_PATH);
	if (r >= 0)
		r = env_set("HOME", "/var");
	if (r >= 0)
		r = env_set("TMPDIR", "/tmp");
	if (r >= 0)
		r = env_set("LANG", "C.UTF-8");
	for (size_t i = 0; r >= 0 && i < arg_n_setenv; i++)
		r = env_set(arg_setenv[i][0], arg_setenv[i][1]);
	if (r < 0)
		return EXIT_SANDBOX;

	if (geteuid() == 0) {
		r = pick_uid(&uid, &uid_lock);
		if (r < 0)
			return EXIT_SANDBOX;
		if (arg_var && give_var(uid) < 0)
			return EXIT_SANDBOX;
	} else
		uid = geteuid();
	if (find_init(init, sizeof(init)) < 0)
		return EXIT_SANDBOX;

	/* Signals wait for us in a signalfd; the child resets its mask. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGHUP);
	sigaddset(&mask, SIGQUIT);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0 ||
	    (sigfd = signalfd(-1, &mask, SFD_CLOEXEC)) < 0)
		return log_error_errno(errno, "Failed to set up signals: %m"), EXIT_SANDBOX;

	(void)snprintf(name, sizeof(name), "sandbox-%u", (unsigned)uid);
	spec = (struct sandbox_spec){
		.root = arg_root,
		.var = arg_var,
		.tmp_size = arg_tmp_size,
		.argv = argv + optind,
		.envp = arg_env,
		.cwd = arg_chdir,
		.hostname = arg_hostname,
		.host_uid = uid,
		.host_gid = (gid_t)uid,
		.limits = arg_limits,
		.cgroup_root = arg_cgroup_root,
		.cgroup_parent = arg_cgroup_parent,
		.cgroup_name = name,
		.init_fd = -1,
		.init_path = init,
		.stdout_fd = -1,
		.stderr_fd = -1,
		.keep_fds = arg_fds,
		.n_keep_fds = arg_n_fds,
		.binds = arg_binds,
		.n_binds = arg_n_binds,
		.flags = arg_allow_no_limits ? SANDBOX_ALLOW_NO_LIMITS : 0,
	};
	r = sandbox_start(&spec, &s, &error);
	if (r < 0) {
		log_error("%s", error.message);
		if (!arg_allow_no_limits && strstr(error.message, "cgroup"))
			log_error("Refusing to run without limits; --allow-no-limits runs anyway");
		goto out;
	}
	if (!sandbox_has_limits(s))
		log_warning("Running without cgroup limits (--allow-no-limits): %s", error.message);
	if (run(s, sigfd, &status) < 0)
		status = EXIT_SANDBOX;
out:
	s = sandbox_free(s);
	for (size_t i = 0; i < arg_n_env; i++)
		free(arg_env[i]);
	return status;
}
