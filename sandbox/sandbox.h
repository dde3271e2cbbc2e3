/* SPDX-License-Identifier: MIT */
/*
 * sandbox.h: the grain sandbox, the one public header of sandbox/.
 *
 * A spec (package root, data dir, /tmp size, argv, environment, host uid,
 * limits, fds to keep) becomes a running sandbox (pid, pidfd, cgroup), which
 * the caller waits for or kills; freeing it leaves no process, zombie, mount
 * or cgroup behind. The launcher and `granary-sandbox` use the same calls.
 *
 * What a sandbox is (docs/sandbox.md has the threat model and the why):
 *
 *	namespaces   user (inside 1000:1000 → host uid:gid, setgroups denied), pid,
 *	             mount, net (lo only, up), ipc, uts, cgroup
 *	/            a read-only tmpfs holding read-only binds of the package's
 *	             top-level entries (nosuid, nodev)
 *	/var         the grain's data (rw, nosuid, nodev), or an empty tmpfs
 *	/tmp         tmpfs of spec.tmp_size (rw, nosuid, nodev)
 *	/dev         read-only tmpfs: null zero full random urandom, shm (tmpfs),
 *	             fd stdin stdout stderr (symlinks into /proc/self/fd)
 *	/proc        procfs of the grain's pid namespace, subset=pid: processes
 *	             only, no /proc/sys, kcore, sysrq-trigger or other host files
 *	/sys         absent
 *	seccomp      allowlist; everything else fails with ENOSYS; other ABIs
 *	             (x32, i386) kill the process
 *	privileges   no capabilities in any set, NO_NEW_PRIVS, securebits locked
 *	fds          0 = /dev/null, 1, 2, then spec.keep_fds as 3, 4, ...
 *	limits       a cgroup (memory, pids, cpu; v2 or v1), RLIMIT_NOFILE
 *
 * Errors: functions return >= 0 on success and -errno on failure; those
 * that take a struct sandbox_error fill its message (no final full stop) so
 * the caller can log one clear line. Nothing here logs above debug.
 */
#ifndef GRANARY_SANDBOX_SANDBOX_H
#define GRANARY_SANDBOX_SANDBOX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/stat.h>
#include <sys/types.h>

/* The uid and gid every grain runs as, inside its user namespace. */
#define SANDBOX_INSIDE_UID 1000
#define SANDBOX_INSIDE_GID 1000

/* Host uids handed to sandboxes when root: [FIRST, FIRST + COUNT). */
#define SANDBOX_UID_RANGE_FIRST 0x40000000u
#define SANDBOX_UID_RANGE_COUNT 65536u

/* Defaults of granary-sandbox (the launcher takes its own from config). */
#define SANDBOX_DEFAULT_TMP_SIZE (16ULL << 20)
#define SANDBOX_DEFAULT_MEMORY	 (256ULL << 20)
#define SANDBOX_DEFAULT_PIDS	 128
#define SANDBOX_DEFAULT_CPU	 1000 /* thousandths of a CPU */
#define SANDBOX_DEFAULT_NOFILE	 1024
#define SANDBOX_DEFAULT_HOSTNAME "grain"
/* The environment every grain gets before the manifest's (env.c style). */
#define SANDBOX_DEFAULT_PATH	 "/usr/local/bin:/usr/bin:/bin"

struct sandbox_error {
	char message[512];
};

enum sandbox_flags {
	/* Run even when a cgroup limit cannot be applied (the caller warns). */
	SANDBOX_ALLOW_NO_LIMITS = 1 << 0,
};

/* A 0 field means "no limit of this kind"; at least one must be set. */
struct sandbox_limits {
	uint64_t memory; /* bytes, swap included */
	uint64_t pids;	 /* processes and threads */
	uint32_t cpu;	 /* thousandths of a CPU (1000 = one CPU's time) */
	uint64_t nofile; /* RLIMIT_NOFILE, soft and hard; 0: SANDBOX_DEFAULT_NOFILE */
};

/* A read-only bind of a host file or directory (debugging and tests). */
struct sandbox_bind {
	const char *source; /* host path */
	const char *target; /* absolute path inside, not under /var /tmp /dev /proc */
};

struct sandbox_spec {
	const char *root; /* required: the package, becomes / read-only */
	const char *var;  /* the grain's data, /var; NULL: an empty tmpfs */
	/*
	 * Optional: what root and var must turn out to be when the sandbox opens
	 * them (st_dev, st_ino of the caller's fstat() of its own descriptor,
	 * which it keeps open until sandbox_start() returns). A path changed
	 * since the caller checked it is refused with -ESTALE.
	 */
	const struct stat *root_identity;
	const struct stat *var_identity;
	uint64_t tmp_size;    /* bytes of /tmp (and /dev/shm, /var without var) */
	char *const *argv;    /* required: the command, run by init or as pid 1 */
	char *const *envp;    /* the whole environment; NULL: empty */
	const char *cwd;      /* inside; NULL: /var */
	const char *hostname; /* NULL: SANDBOX_DEFAULT_HOSTNAME */
	uid_t host_uid;	      /* the host uid inside 1000 maps to (root only) */
	gid_t host_gid;	      /* likewise for gid 1000 */
	struct sandbox_limits limits;
	const char *cgroup_root;   /* where hierarchies are mounted; NULL: /sys/fs/cgroup */
	const char *cgroup_parent; /* below the caller's own cgroup; NULL: "granary" */
	const char *cgroup_name;   /* required with limits: unique among running sandboxes */
	int init_fd;		   /* pid 1 (grain-init, see sandbox_load_init()), or -1 */
	const char *init_path;	   /* with init_fd -1: copied to a sealed memfd meanwhile */
	int stdout_fd;		   /* fd 1 inside; -1: the caller's fd 1 */
	int stderr_fd;		   /* fd 2 inside; -1: the caller's fd 2 */
	const int *keep_fds;	   /* become 3, 4, ... inside (the control fd) */
	size_t n_keep_fds;
	const struct sandbox_bind *binds;
	size_t n_binds;
	enum sandbox_flags flags;
};

struct sandbox;

/* sandbox.c */

/*
 * Build the sandbox and start spec->argv in it: with spec->init_fd >= 0 (or
 * spec->init_path, copied into a sealed memfd while the child builds its
 * tree) the init program runs as pid 1 with argv "grain-init -- ARGV...",
 * otherwise argv[0] (an absolute path inside) is pid 1. Returns once the command is
 * exec'd, or fails with everything undone. As root, the caller's
 * supplementary groups are dropped around the clone (the child would inherit
 * them) and restored. *ret is the caller's to sandbox_free().
 */
int sandbox_start(const struct sandbox_spec *spec, struct sandbox **ret,
		  struct sandbox_error *error);

/* Wait for pid 1 to exit. *ret_status: its exit code, or 128 + signal. */
int sandbox_wait(struct sandbox *s, int *ret_status);

/* Send sig to pid 1 (grain-init forwards it to the app). */
int sandbox_signal(struct sandbox *s, int sig);

/*
 * Kill every process of the sandbox, wait for pid 1 and remove its cgroup.
 * Idempotent. When pid 1 dies the kernel kills the rest of the pid
 * namespace, and the mount namespace goes with its last process.
 */
int sandbox_kill(struct sandbox *s);

/* Kill if still running, remove the cgroup, free. Accepts NULL, returns NULL. */
struct sandbox *sandbox_free(struct sandbox *s);

pid_t sandbox_pid(const struct sandbox *s);
int sandbox_pidfd(const struct sandbox *s);
/* true when the cgroup limits are in force (false only with ALLOW_NO_LIMITS). */
bool sandbox_has_limits(const struct sandbox *s);
/* The cgroup directory of a controller ("memory", "pids", "cpu"), or NULL. Owned by s. */
const char *sandbox_cgroup_path(const struct sandbox *s, const char *controller);

struct sandbox_stats {
	uint64_t
		memory_bytes; /* the cgroup's memory use now (v2 memory.current, v1 usage_in_bytes) */
	uint64_t cpu_usec;    /* CPU time of all its processes so far */
};

/* Figures from the sandbox's cgroup; 0 for what is unknown (no cgroup, no such file). */
int sandbox_stats(const struct sandbox *s, struct sandbox_stats *ret);

/*
 * Copy the init program at path into a sealed, read-only memfd (fd in
 * *ret_fd, the caller's): executing it leaves no host file reachable
 * through /proc/PID/exe.
 */
int sandbox_load_init(const char *path, int *ret_fd);

/* sandbox-cgroup.c */

struct sandbox_sweep {
	unsigned removed; /* cgroups removed */
	unsigned killed;  /* processes killed in them */
};

enum sandbox_sweep_flags {
	SANDBOX_SWEEP_PARENT = 1 << 0, /* remove parent too (when nothing else made it busy) */
};

/*
 * Kill every process in every cgroup below parent (as in sandbox_spec:
 * below the caller's own cgroup of each hierarchy, under cgroup_root, NULL
 * for /sys/fs/cgroup), and remove those cgroups. For a supervisor starting
 * again after a crash: what its grains left; and at its exit, with
 * SANDBOX_SWEEP_PARENT, parent too. v1 and v2.
 */
int sandbox_cgroup_sweep(const char *cgroup_root, const char *parent,
			 enum sandbox_sweep_flags flags, struct sandbox_sweep *ret,
			 struct sandbox_error *error);

struct sandbox_cgroup_leaf {
	bool moved;	 /* the caller went into OWN/supervisor */
	unsigned others; /* processes left in OWN: not the caller's, they keep
			    grains from getting controllers (cgroup v2's
			    no-internal-process rule) */
};

/*
 * On cgroup v2 (cgroup_root, NULL: /sys/fs/cgroup), move the calling
 * process from its cgroup OWN into the leaf OWN/supervisor, so that OWN
 * holds no process and can hand its controllers to the grains' cgroups
 * below it (OWN/PARENT/NAME); processes forked afterwards start in the
 * leaf, and sandbox_spec's cgroups still go below OWN. For a supervisor
 * before it forks anything: the systemd way (Delegate=yes) of running
 * cgroups of one's own. Returns 1 when moved; 0 on cgroup v1 or hybrid
 * hosts and in the root cgroup, where nothing needs to move.
 */
int sandbox_cgroup_leave_own(const char *cgroup_root, struct sandbox_cgroup_leaf *ret,
			     struct sandbox_error *error);

/* sandbox-seccomp.c */

enum sandbox_syscall_kind {
	SANDBOX_SYSCALL_ALLOW, /* a rule: allowed (when the conditions hold) */
	SANDBOX_SYSCALL_DENY,  /* an expectation: these arguments are refused */
};

enum sandbox_abi {
	SANDBOX_ABI_NATIVE, /* x86_64 here */
	SANDBOX_ABI_X32,
	SANDBOX_ABI_I386,
};

enum sandbox_cmp_op {
	SANDBOX_CMP_EQ,
	SANDBOX_CMP_MASKED_EQ, /* (arg & mask) == value */
};

struct sandbox_syscall_cmp {
	uint8_t arg; /* 0..5 */
	uint8_t op;  /* enum sandbox_cmp_op */
	uint64_t mask;
	uint64_t value;
};

/*
 * One row of the filter table. The rows are the filter (ALLOW rows become
 * libseccomp rules; the default answers ENOSYS) and the expectations of the
 * tests (every DENY row, and every conditional ALLOW row with arguments that
 * satisfy it, is a case the audit and the probe check).
 */
struct sandbox_syscall_row {
	const char *name; /* libseccomp's name of the syscall */
	uint8_t kind;	  /* enum sandbox_syscall_kind */
	uint8_t abi;	  /* enum sandbox_abi (DENY rows) */
	uint8_t n_cmp;
	struct sandbox_syscall_cmp cmp[3]; /* ALLOW: all must hold */
	uint64_t args[6];		   /* the case: harmless arguments (bad fd, pointer 1) */
	const char *why;
};

/* The table (static storage); *ret_n rows. */
const struct sandbox_syscall_row *sandbox_syscall_table(size_t *ret_n);

/* The errno the filter answers to everything it refuses. */
#define SANDBOX_SECCOMP_ERRNO 38 /* ENOSYS */

/*
 * The filter as a classic BPF program (struct sock_filter[]) for the native
 * ABI, as built from the table at build time (static storage). *ret_len is
 * in instructions.
 */
int sandbox_seccomp_program(const void **ret_filter, size_t *ret_len);

/* Build the filter from the table now, with libseccomp, and write its BPF to fd. */
int sandbox_seccomp_export(int fd);

/* Load the filter into the calling thread (NO_NEW_PRIVS or CAP_SYS_ADMIN needed). */
int sandbox_seccomp_load(void);

/* sandbox-host.c */

enum sandbox_check_level {
	SANDBOX_CHECK_OK,
	SANDBOX_CHECK_WARN,   /* defence in depth is missing */
	SANDBOX_CHECK_REFUSE, /* a sandbox cannot be built, or not with limits */
};

typedef void (*sandbox_check_report_t)(enum sandbox_check_level level, const char *what,
				       const char *advice, void *userdata);

/*
 * Check the host: sysctls under proc_root (NULL: /proc), cgroups under
 * cgroup_root (NULL: /sys/fs/cgroup), user namespaces, kernel interfaces.
 * report (may be NULL) is called for each finding above OK. Returns the
 * worst level found. A missing cgroup controller is REFUSE unless
 * allow_no_limits, then WARN.
 */
int sandbox_check_host(const char *proc_root, const char *cgroup_root, bool allow_no_limits,
		       sandbox_check_report_t report, void *userdata);

/* sandbox-uid.c */

/*
 * Take the host uid for a sandbox: uid itself, or (uid == (uid_t)-1) the
 * first free one of [first, first + count). The lock is an flock on
 * /run/granary/sandbox-uids/UID held as long as *ret_lock_fd (the caller's)
 * is open. -EBUSY: uid is taken; -EUSERS: the range is full.
 */
int sandbox_uid_acquire(uid_t uid, uid_t first, uint32_t count, uid_t *ret_uid, int *ret_lock_fd);

/*
 * chown the tree below dirfd (and dirfd itself) to uid:gid without
 * following a symlink anywhere: every step is an openat() with O_NOFOLLOW
 * below a directory fd we hold, so a grain renaming its files meanwhile can
 * make us skip an entry but never act outside the tree. Depth-limited (-ELOOP).
 */
int sandbox_chown_tree(int dirfd, uid_t uid, gid_t gid);

#endif
