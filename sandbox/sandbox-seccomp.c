/* SPDX-License-Identifier: MIT */
/*
 * sandbox-seccomp.c: the grain's system call filter, and the one table that
 * makes both the filter and the expectations of the tests.
 *
 * Policy, in three lines:
 *   - an allowlist: what a web app (PHP, Python, Node, a static C server)
 *     needs to run, serve and fork workers; everything else is refused;
 *   - the filter answers ENOSYS to everything it refuses ("this kernel has no
 *     such call", which every runtime handles, and which the kernel never
 *     answers for these calls, so a test can tell the filter from the kernel);
 *   - any other ABI (x32 numbers, int $0x80 i386 calls) kills the process:
 *     nothing legitimate uses them and their tables are a second attack surface.
 *
 * Argument rules: clone without CLONE_NEW* flags (clone3 passes its flags in
 * memory, which a filter cannot read, so it is refused and glibc falls back to
 * clone); socket and socketpair for AF_UNIX, and AF_INET/AF_INET6 stream or
 * datagram with protocol 0, TCP or UDP (no raw, packet, netlink, alg, vsock,
 * key, xdp or DCCP sockets); ioctl from a short list (never TIOCSTI or
 * TIOCLINUX; the kernel reads the command as 32 bits, so the rules compare
 * the low 32 bits and higher bits cannot smuggle a command past them); prctl
 * from a short list (no PR_SET_SECCOMP, PR_SET_MM, securebits or capability
 * changes); personality only to query or to set plain PER_LINUX.
 *
 * libseccomp turns the table into BPF at build time (seccomp-gen.c writes
 * it into a header, sandbox-seccomp-bpf.c serves it): a sandbox costs no
 * filter compilation, and the bytes the child loads are the bytes
 * tests/security audits against a reviewed golden file (and compares with a
 * fresh build from this table).
 */
#include <errno.h>
#include <linux/seccomp.h>
#include <sched.h>
#include <seccomp.h>
#include <signal.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/personality.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "common/banned.h"

#define CLONE_NEW_ANY                                                                              \
	(CLONE_NEWNS | CLONE_NEWCGROUP | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWUSER |             \
	 CLONE_NEWPID | CLONE_NEWNET)
#define LOW32 0xffffffffULL
#define PTR1  1ULL		    /* a pointer the kernel cannot read: EFAULT */
#define BADFD 0xffffffffffffffffULL /* fd -1: EBADF */
#define NOPID 0x3fffffffULL	    /* above pid_max: ESRCH */

#define ALLOW(n)                                                                                   \
	{                                                                                          \
		.name = (n), .kind = SANDBOX_SYSCALL_ALLOW                                         \
	}
#define EQ(a, v)                                                                                   \
	{                                                                                          \
		.arg = (a), .op = SANDBOX_CMP_EQ, .mask = ~0ULL, .value = (v)                      \
	}
#define MASKED(a, m, v)                                                                            \
	{                                                                                          \
		.arg = (a), .op = SANDBOX_CMP_MASKED_EQ, .mask = (m), .value = (v)                 \
	}
/* Allowed when every comparison holds. */
#define ALLOW_IF(n, w, ...)                                                                        \
	{                                                                                          \
		.name = (n), .kind = SANDBOX_SYSCALL_ALLOW,                                        \
		.n_cmp = sizeof((struct sandbox_syscall_cmp[]){ __VA_ARGS__ }) /                   \
			 sizeof(struct sandbox_syscall_cmp),                                       \
		.cmp = { __VA_ARGS__ }, .why = (w)                                                 \
	}
/* Must be refused: called with these (harmless) arguments by the tests. */
#define DENY_ABI(n, abi_, w, ...)                                                                  \
	{                                                                                          \
		.name = (n), .kind = SANDBOX_SYSCALL_DENY, .abi = (abi_), .args = { __VA_ARGS__ }, \
		.why = (w)                                                                         \
	}
#define DENY(n, w, ...) DENY_ABI(n, SANDBOX_ABI_NATIVE, w, __VA_ARGS__)

static const struct sandbox_syscall_row table[] = {
	/* Files and directories. */
	ALLOW("read"),
	ALLOW("write"),
	ALLOW("open"),
	ALLOW("openat"),
	ALLOW("openat2"),
	ALLOW("close"),
	ALLOW("close_range"),
	ALLOW("creat"),
	ALLOW("stat"),
	ALLOW("fstat"),
	ALLOW("lstat"),
	ALLOW("newfstatat"),
	ALLOW("statx"),
	ALLOW("statfs"),
	ALLOW("fstatfs"),
	ALLOW("lseek"),
	ALLOW("pread64"),
	ALLOW("pwrite64"),
	ALLOW("readv"),
	ALLOW("writev"),
	ALLOW("preadv"),
	ALLOW("pwritev"),
	ALLOW("preadv2"),
	ALLOW("pwritev2"),
	ALLOW("access"),
	ALLOW("faccessat"),
	ALLOW("faccessat2"),
	ALLOW("pipe"),
	ALLOW("pipe2"),
	ALLOW("dup"),
	ALLOW("dup2"),
	ALLOW("dup3"),
	ALLOW("fcntl"),
	ALLOW("flock"),
	ALLOW("fsync"),
	ALLOW("fdatasync"),
	ALLOW("sync"),
	ALLOW("syncfs"),
	ALLOW("sync_file_range"),
	ALLOW("truncate"),
	ALLOW("ftruncate"),
	ALLOW("fallocate"),
	ALLOW("fadvise64"),
	ALLOW("readahead"),
	ALLOW("getdents"),
	ALLOW("getdents64"),
	ALLOW("getcwd"),
	ALLOW("chdir"),
	ALLOW("fchdir"),
	ALLOW("rename"),
	ALLOW("renameat"),
	ALLOW("renameat2"),
	ALLOW("mkdir"),
	ALLOW("mkdirat"),
	ALLOW("rmdir"),
	ALLOW("link"),
	ALLOW("linkat"),
	ALLOW("unlink"),
	ALLOW("unlinkat"),
	ALLOW("symlink"),
	ALLOW("symlinkat"),
	ALLOW("readlink"),
	ALLOW("readlinkat"),
	ALLOW("chmod"),
	ALLOW("fchmod"),
	ALLOW("fchmodat"),
	ALLOW("fchmodat2"),
	ALLOW("chown"),
	ALLOW("fchown"),
	ALLOW("lchown"),
	ALLOW("fchownat"),
	ALLOW("umask"),
	ALLOW("utime"),
	ALLOW("utimes"),
	ALLOW("futimesat"),
	ALLOW("utimensat"),
	ALLOW("sendfile"),
	ALLOW("splice"),
	ALLOW("tee"),
	ALLOW("vmsplice"),
	ALLOW("copy_file_range"),
	ALLOW("setxattr"),
	ALLOW("lsetxattr"),
	ALLOW("fsetxattr"),
	ALLOW("getxattr"),
	ALLOW("lgetxattr"),
	ALLOW("fgetxattr"),
	ALLOW("listxattr"),
	ALLOW("llistxattr"),
	ALLOW("flistxattr"),
	ALLOW("removexattr"),
	ALLOW("lremovexattr"),
	ALLOW("fremovexattr"),
	ALLOW("inotify_init"),
	ALLOW("inotify_init1"),
	ALLOW("inotify_add_watch"),
	ALLOW("inotify_rm_watch"),
	/* The kernel refuses device nodes without CAP_MKNOD; FIFOs are fine. */
	ALLOW("mknod"),
	ALLOW("mknodat"),

	/* Memory. */
	ALLOW("brk"),
	ALLOW("mmap"),
	ALLOW("munmap"),
	ALLOW("mremap"),
	ALLOW("mprotect"),
	ALLOW("msync"),
	ALLOW("mincore"),
	ALLOW("madvise"),
	ALLOW("mlock"),
	ALLOW("mlock2"),
	ALLOW("munlock"),
	ALLOW("mlockall"),
	ALLOW("munlockall"),
	ALLOW("membarrier"),
	ALLOW("memfd_create"),
	ALLOW("remap_file_pages"),
	ALLOW("pkey_mprotect"),
	ALLOW("pkey_alloc"),
	ALLOW("pkey_free"),
	ALLOW("mbind"),
	ALLOW("get_mempolicy"),
	ALLOW("set_mempolicy"),
	ALLOW("map_shadow_stack"),
	ALLOW("mseal"),
	ALLOW("cachestat"),

	/* Processes, threads, signals, time. */
	ALLOW("execve"),
	ALLOW("execveat"),
	ALLOW("exit"),
	ALLOW("exit_group"),
	ALLOW("fork"),
	ALLOW("vfork"),
	ALLOW("wait4"),
	ALLOW("waitid"),
	ALLOW("getpid"),
	ALLOW("getppid"),
	ALLOW("gettid"),
	ALLOW("getpgid"),
	ALLOW("setpgid"),
	ALLOW("getpgrp"),
	ALLOW("getsid"),
	ALLOW("setsid"),
	ALLOW("set_tid_address"),
	ALLOW("set_robust_list"),
	ALLOW("rseq"),
	ALLOW("arch_prctl"),
	ALLOW("futex"),
	ALLOW("futex_waitv"),
	ALLOW("futex_wake"),
	ALLOW("futex_wait"),
	ALLOW("futex_requeue"),
	ALLOW("sched_yield"),
	ALLOW("sched_getaffinity"),
	ALLOW("sched_setaffinity"),
	ALLOW("sched_getparam"),
	ALLOW("sched_setparam"),
	ALLOW("sched_getscheduler"),
	ALLOW("sched_setscheduler"),
	ALLOW("sched_get_priority_max"),
	ALLOW("sched_get_priority_min"),
	ALLOW("sched_rr_get_interval"),
	ALLOW("sched_getattr"),
	ALLOW("sched_setattr"),
	ALLOW("getpriority"),
	ALLOW("setpriority"),
	ALLOW("ioprio_get"),
	ALLOW("ioprio_set"),
	ALLOW("getcpu"),
	ALLOW("uname"),
	ALLOW("sysinfo"),
	ALLOW("getrandom"),
	ALLOW("times"),
	ALLOW("getrusage"),
	ALLOW("getrlimit"),
	ALLOW("setrlimit"),
	ALLOW("prlimit64"),
	ALLOW("rt_sigaction"),
	ALLOW("rt_sigprocmask"),
	ALLOW("rt_sigreturn"),
	ALLOW("rt_sigpending"),
	ALLOW("rt_sigtimedwait"),
	ALLOW("rt_sigqueueinfo"),
	ALLOW("rt_tgsigqueueinfo"),
	ALLOW("rt_sigsuspend"),
	ALLOW("sigaltstack"),
	ALLOW("kill"),
	ALLOW("tkill"),
	ALLOW("tgkill"),
	ALLOW("pidfd_open"),
	ALLOW("pidfd_send_signal"),
	ALLOW("pause"),
	ALLOW("alarm"),
	ALLOW("nanosleep"),
	ALLOW("clock_nanosleep"),
	ALLOW("clock_gettime"),
	ALLOW("clock_getres"),
	ALLOW("gettimeofday"),
	ALLOW("time"),
	ALLOW("getitimer"),
	ALLOW("setitimer"),
	ALLOW("timer_create"),
	ALLOW("timer_settime"),
	ALLOW("timer_gettime"),
	ALLOW("timer_getoverrun"),
	ALLOW("timer_delete"),
	ALLOW("timerfd_create"),
	ALLOW("timerfd_settime"),
	ALLOW("timerfd_gettime"),
	ALLOW("restart_syscall"),

	/* Identity: without capabilities these only move between the grain's own ids. */
	ALLOW("getuid"),
	ALLOW("geteuid"),
	ALLOW("getgid"),
	ALLOW("getegid"),
	ALLOW("getresuid"),
	ALLOW("getresgid"),
	ALLOW("setuid"),
	ALLOW("setgid"),
	ALLOW("setreuid"),
	ALLOW("setregid"),
	ALLOW("setresuid"),
	ALLOW("setresgid"),
	ALLOW("setfsuid"),
	ALLOW("setfsgid"),
	ALLOW("getgroups"),
	ALLOW("setgroups"),
	ALLOW("capget"),
	ALLOW("capset"),

	/* Waiting for events. */
	ALLOW("poll"),
	ALLOW("ppoll"),
	ALLOW("select"),
	ALLOW("pselect6"),
	ALLOW("epoll_create"),
	ALLOW("epoll_create1"),
	ALLOW("epoll_ctl"),
	ALLOW("epoll_wait"),
	ALLOW("epoll_pwait"),
	ALLOW("epoll_pwait2"),
	ALLOW("eventfd"),
	ALLOW("eventfd2"),
	ALLOW("signalfd"),
	ALLOW("signalfd4"),
	ALLOW("io_setup"),
	ALLOW("io_destroy"),
	ALLOW("io_getevents"),
	ALLOW("io_pgetevents"),
	ALLOW("io_submit"),
	ALLOW("io_cancel"),

	/* IPC: the grain has its own IPC namespace. */
	ALLOW("shmget"),
	ALLOW("shmat"),
	ALLOW("shmdt"),
	ALLOW("shmctl"),
	ALLOW("semget"),
	ALLOW("semop"),
	ALLOW("semtimedop"),
	ALLOW("semctl"),
	ALLOW("msgget"),
	ALLOW("msgsnd"),
	ALLOW("msgrcv"),
	ALLOW("msgctl"),
	ALLOW("mq_open"),
	ALLOW("mq_unlink"),
	ALLOW("mq_timedsend"),
	ALLOW("mq_timedreceive"),
	ALLOW("mq_notify"),
	ALLOW("mq_getsetattr"),

	/* Sockets: what a server needs, on the families socket() allows. */
	ALLOW("bind"),
	ALLOW("listen"),
	ALLOW("accept"),
	ALLOW("accept4"),
	ALLOW("connect"),
	ALLOW("getsockname"),
	ALLOW("getpeername"),
	ALLOW("sendto"),
	ALLOW("recvfrom"),
	ALLOW("sendmsg"),
	ALLOW("recvmsg"),
	ALLOW("sendmmsg"),
	ALLOW("recvmmsg"),
	ALLOW("shutdown"),
	ALLOW("setsockopt"),
	ALLOW("getsockopt"),
	ALLOW_IF("socket", "local sockets", EQ(0, AF_UNIX)),
	ALLOW_IF("socket", "TCP", EQ(0, AF_INET), MASKED(1, 0xf, SOCK_STREAM), EQ(2, 0)),
	ALLOW_IF("socket", "TCP", EQ(0, AF_INET), MASKED(1, 0xf, SOCK_STREAM), EQ(2, IPPROTO_TCP)),
	ALLOW_IF("socket", "UDP", EQ(0, AF_INET), MASKED(1, 0xf, SOCK_DGRAM), EQ(2, 0)),
	ALLOW_IF("socket", "UDP", EQ(0, AF_INET), MASKED(1, 0xf, SOCK_DGRAM), EQ(2, IPPROTO_UDP)),
	ALLOW_IF("socket", "TCP", EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_STREAM), EQ(2, 0)),
	ALLOW_IF("socket", "TCP", EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_STREAM), EQ(2, IPPROTO_TCP)),
	ALLOW_IF("socket", "UDP", EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_DGRAM), EQ(2, 0)),
	ALLOW_IF("socket", "UDP", EQ(0, AF_INET6), MASKED(1, 0xf, SOCK_DGRAM), EQ(2, IPPROTO_UDP)),
	ALLOW_IF("socketpair", "local socket pairs", EQ(0, AF_UNIX)),

	/* Argument rules. */
	ALLOW_IF("clone", "fork and threads, no new namespaces", MASKED(0, CLONE_NEW_ANY, 0)),
	ALLOW_IF("ioctl", "isatty()", MASKED(1, LOW32, TCGETS)),
	ALLOW_IF("ioctl", "terminal size", MASKED(1, LOW32, TIOCGWINSZ)),
	ALLOW_IF("ioctl", "foreground process group", MASKED(1, LOW32, TIOCGPGRP)),
	ALLOW_IF("ioctl", "non-blocking I/O", MASKED(1, LOW32, FIONBIO)),
	ALLOW_IF("ioctl", "bytes readable", MASKED(1, LOW32, FIONREAD)),
	ALLOW_IF("ioctl", "close-on-exec", MASKED(1, LOW32, FIOCLEX)),
	ALLOW_IF("ioctl", "close-on-exec", MASKED(1, LOW32, FIONCLEX)),
	ALLOW_IF("ioctl", "async I/O", MASKED(1, LOW32, FIOASYNC)),
	ALLOW_IF("prctl", "thread names", EQ(0, PR_SET_NAME)),
	ALLOW_IF("prctl", "thread names", EQ(0, PR_GET_NAME)),
	ALLOW_IF("prctl", "parent death signal", EQ(0, PR_SET_PDEATHSIG)),
	ALLOW_IF("prctl", "parent death signal", EQ(0, PR_GET_PDEATHSIG)),
	ALLOW_IF("prctl", "core dumps", EQ(0, PR_SET_DUMPABLE)),
	ALLOW_IF("prctl", "core dumps", EQ(0, PR_GET_DUMPABLE)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_GET_KEEPCAPS)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_CAPBSET_READ)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_GET_SECUREBITS)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_GET_SECCOMP)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_GET_NO_NEW_PRIVS)),
	ALLOW_IF("prctl", "already set, harmless", EQ(0, PR_SET_NO_NEW_PRIVS)),
	ALLOW_IF("prctl", "queries", EQ(0, PR_GET_TID_ADDRESS)),
	ALLOW_IF("prctl", "timer slack", EQ(0, PR_SET_TIMERSLACK)),
	ALLOW_IF("prctl", "timer slack", EQ(0, PR_GET_TIMERSLACK)),
	ALLOW_IF("prctl", "process supervisors", EQ(0, PR_SET_CHILD_SUBREAPER)),
	ALLOW_IF("prctl", "process supervisors", EQ(0, PR_GET_CHILD_SUBREAPER)),
	ALLOW_IF("prctl", "transparent huge pages", EQ(0, PR_SET_THP_DISABLE)),
	ALLOW_IF("prctl", "transparent huge pages", EQ(0, PR_GET_THP_DISABLE)),
	ALLOW_IF("prctl", "naming anonymous memory", EQ(0, 0x53564d41 /* PR_SET_VMA */)),
	ALLOW_IF("personality", "query", MASKED(0, LOW32, 0xffffffff)),
	ALLOW_IF("personality", "plain Linux", MASKED(0, LOW32, PER_LINUX)),

	/* What must be refused, with the arguments the tests call it with. */
	DENY("ptrace", "reads and writes other processes", 2 /* PTRACE_PEEKDATA */, NOPID, 0, 0),
	DENY("process_vm_readv", "reads other processes", NOPID, PTR1, 1, PTR1, 1, 0),
	DENY("process_vm_writev", "writes other processes", NOPID, PTR1, 1, PTR1, 1, 0),
	DENY("kcmp", "compares other processes' kernel objects", NOPID, NOPID, 0, 0, 0),
	DENY("pidfd_getfd", "steals other processes' fds", BADFD, 0, 0),
	DENY("process_madvise", "acts on other processes' memory", BADFD, PTR1, 1, 0, 0),
	DENY("keyctl", "kernel keyrings are not namespaced", 0xdead, 0, 0, 0, 0),
	DENY("add_key", "kernel keyrings are not namespaced", PTR1, PTR1, 0, 0, 0),
	DENY("request_key", "kernel keyrings are not namespaced", PTR1, PTR1, 0, 0),
	DENY("bpf", "kernel attack surface", 0 /* BPF_MAP_CREATE */, PTR1, 8),
	DENY("perf_event_open", "kernel attack surface, side channels", PTR1, 0, BADFD, BADFD, 0),
	DENY("userfaultfd", "stalls the kernel in exploits", 0xffff),
	DENY("io_uring_setup", "bypasses this filter, kernel attack surface", 1, PTR1),
	DENY("io_uring_enter", "bypasses this filter", BADFD, 0, 0, 0, 0, 0),
	DENY("io_uring_register", "bypasses this filter", BADFD, 0, 0, 0),
	DENY("unshare", "new user namespace", CLONE_NEWUSER),
	DENY("unshare", "new mount namespace", CLONE_NEWNS),
	DENY("unshare", "new network namespace", CLONE_NEWNET),
	DENY("unshare", "new pid namespace", CLONE_NEWPID),
	DENY("unshare", "new IPC namespace", CLONE_NEWIPC),
	DENY("unshare", "new UTS namespace", CLONE_NEWUTS),
	DENY("unshare", "new cgroup namespace", CLONE_NEWCGROUP),
	DENY("unshare", "new time namespace", 0x80 /* CLONE_NEWTIME */),
	DENY("clone", "new user namespace", CLONE_NEWUSER | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new mount namespace", CLONE_NEWNS | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new network namespace", CLONE_NEWNET | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new pid namespace", CLONE_NEWPID | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new IPC namespace", CLONE_NEWIPC | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new UTS namespace", CLONE_NEWUTS | SIGCHLD, 0, 0, 0, 0),
	DENY("clone", "new cgroup namespace", CLONE_NEWCGROUP | SIGCHLD, 0, 0, 0, 0),
	DENY("clone3", "flags in memory cannot be checked; glibc falls back to clone", PTR1, 88),
	DENY("setns", "joins other namespaces", BADFD, 0),
	DENY("mount", "mounts", PTR1, PTR1, PTR1, 0, 0),
	DENY("umount2", "mounts", PTR1, 0),
	DENY("pivot_root", "mounts", PTR1, PTR1),
	DENY("chroot", "mounts", PTR1),
	DENY("fsopen", "mounts", PTR1, 0),
	DENY("fsconfig", "mounts", BADFD, 6 /* FSCONFIG_CMD_CREATE */, 0, 0, 0),
	DENY("fsmount", "mounts", BADFD, 0, 0),
	DENY("move_mount", "mounts", BADFD, PTR1, BADFD, PTR1, 0),
	DENY("open_tree", "mounts", BADFD, PTR1, 0),
	DENY("fspick", "mounts", BADFD, PTR1, 0),
	DENY("mount_setattr", "mounts", BADFD, PTR1, 0, PTR1, 32),
	DENY("open_by_handle_at", "opens files by handle, around mounts", BADFD, PTR1, 0),
	DENY("name_to_handle_at", "file handles", BADFD, PTR1, PTR1, PTR1, 0),
	DENY("ioctl", "types into a terminal", BADFD, TIOCSTI, PTR1),
	DENY("ioctl", "types into a terminal, high bits set", BADFD, (1ULL << 32) | TIOCSTI, PTR1),
	DENY("ioctl", "console control", BADFD, TIOCLINUX, PTR1),
	DENY("ioctl", "takes a controlling terminal", BADFD, TIOCSCTTY, 0),
	DENY("modify_ldt", "kernel attack surface", 0, PTR1, 16),
	DENY("personality", "32-bit personality", PER_LINUX32),
	DENY("personality", "weakens ASLR", ADDR_NO_RANDOMIZE),
	DENY("personality", "executable data", READ_IMPLIES_EXEC),
	DENY("init_module", "kernel modules", PTR1, 0, PTR1),
	DENY("finit_module", "kernel modules", BADFD, PTR1, 0),
	DENY("delete_module", "kernel modules", PTR1, 0),
	DENY("kexec_load", "replaces the kernel", 0, 0, 0, 0xdead0000),
	DENY("kexec_file_load", "replaces the kernel", BADFD, BADFD, 0, 0, 0),
	DENY("reboot", "reboots", 0xdead, 0xbeef, 0, 0),
	DENY("swapon", "host administration", PTR1, 0),
	DENY("swapoff", "host administration", PTR1),
	DENY("acct", "host administration", PTR1),
	DENY("syslog", "reads the kernel log", 9999, 0, 0),
	DENY("quotactl", "host administration", 0xdead, PTR1, 0, 0),
	DENY("settimeofday", "sets the host clock", PTR1, 0),
	DENY("clock_settime", "sets the host clock", 0 /* CLOCK_REALTIME */, PTR1),
	DENY("adjtimex", "sets the host clock", PTR1),
	DENY("clock_adjtime", "sets the host clock", 0, PTR1),
	DENY("sethostname", "the UTS namespace is the launcher's to name", PTR1, 5),
	DENY("setdomainname", "the UTS namespace is the launcher's to name", PTR1, 5),
	DENY("iopl", "hardware access", 4),
	DENY("ioperm", "hardware access", 0x10000, 1, 1),
	DENY("seccomp", "filters are the launcher's", SECCOMP_SET_MODE_FILTER, 0, PTR1),
	DENY("prctl", "filters are the launcher's", PR_SET_SECCOMP, SECCOMP_MODE_FILTER, PTR1),
	DENY("prctl", "changes memory layout fields", PR_SET_MM, 0xdead, 0, 0, 0),
	DENY("prctl", "capability changes", PR_CAP_AMBIENT, PR_CAP_AMBIENT_RAISE, 0, 0, 0),
	DENY("prctl", "securebits are locked", PR_SET_SECUREBITS, 0),
	DENY("socket", "link-layer access", AF_PACKET, SOCK_RAW, 0),
	DENY("socket", "kernel configuration", AF_NETLINK, SOCK_RAW, 0 /* NETLINK_ROUTE */),
	DENY("socket", "raw ICMP", AF_INET, SOCK_RAW, IPPROTO_ICMP),
	DENY("socket", "raw IPv6", AF_INET6, SOCK_RAW, IPPROTO_RAW),
	DENY("socket", "ping sockets", AF_INET, SOCK_DGRAM, IPPROTO_ICMP),
	DENY("socket", "kernel crypto", AF_ALG, SOCK_SEQPACKET, 0),
	DENY("socket", "host-guest sockets", AF_VSOCK, SOCK_STREAM, 0),
	DENY("socket", "IPsec keys", AF_KEY, SOCK_RAW, 2 /* PF_KEY_V2 */),
	DENY("socket", "XDP", AF_XDP, SOCK_RAW, 0),
	DENY("socket", "DCCP", AF_INET, 6 /* SOCK_DCCP */, 33 /* IPPROTO_DCCP */),
	DENY("socket", "SCTP", AF_INET, SOCK_STREAM, IPPROTO_SCTP),
	DENY("socketpair", "non-local pairs", AF_INET, SOCK_STREAM, 0, PTR1),
	DENY_ABI("getpid", SANDBOX_ABI_X32, "x32 ABI", 0),
	DENY_ABI("getpid", SANDBOX_ABI_I386, "i386 ABI through int $0x80", 0),
};

const struct sandbox_syscall_row *
sandbox_syscall_table(size_t *ret_n)
{
	*ret_n = ELEMENTSOF(table);
	return table;
}

static int
add_rule(scmp_filter_ctx ctx, const struct sandbox_syscall_row *row)
{
	struct scmp_arg_cmp cmp[3];
	int nr = seccomp_syscall_resolve_name(row->name);

	/*
	 * A name this libseccomp does not know on this architecture cannot be
	 * allowed: it stays refused, which is the safe side.
	 */
	if (nr == __NR_SCMP_ERROR)
		return log_debug_errno(ENOENT, "seccomp: no syscall '%s' here, left refused",
				       row->name),
		       0;
	for (unsigned i = 0; i < row->n_cmp; i++)
		cmp[i] = (struct scmp_arg_cmp){
			.arg = row->cmp[i].arg,
			.op = row->cmp[i].op == SANDBOX_CMP_EQ ? SCMP_CMP_EQ : SCMP_CMP_MASKED_EQ,
			.datum_a = row->cmp[i].op == SANDBOX_CMP_EQ ? row->cmp[i].value
								    : row->cmp[i].mask,
			.datum_b = row->cmp[i].value,
		};
	return seccomp_rule_add_exact_array(ctx, SCMP_ACT_ALLOW, nr, row->n_cmp, cmp);
}

static int
build(scmp_filter_ctx *ret)
{
	scmp_filter_ctx ctx;
	int r;

	ctx = seccomp_init(SCMP_ACT_ERRNO(SANDBOX_SECCOMP_ERRNO));
	if (!ctx)
		return -ENOMEM;
	/*
	 * Only the native ABI is added, so x32 numbers and i386 calls meet the
	 * bad-architecture action. The binary-tree layout keeps the cost of a
	 * syscall logarithmic in the length of the allowlist.
	 */
	r = seccomp_attr_set(ctx, SCMP_FLTATR_ACT_BADARCH, SCMP_ACT_KILL_PROCESS);
	if (r >= 0)
		r = seccomp_attr_set(ctx, SCMP_FLTATR_CTL_OPTIMIZE, 2);
	for (size_t i = 0; r >= 0 && i < ELEMENTSOF(table); i++)
		if (table[i].kind == SANDBOX_SYSCALL_ALLOW)
			r = add_rule(ctx, &table[i]);
	if (r < 0) {
		seccomp_release(ctx);
		return r;
	}
	*ret = ctx;
	return 0;
}

int
sandbox_seccomp_export(int fd)
{
	scmp_filter_ctx ctx;
	int r;

	r = build(&ctx);
	if (r < 0)
		return log_debug_errno(r, "seccomp: building the filter failed: %m");
	r = seccomp_export_bpf(ctx, fd);
	seccomp_release(ctx);
	return r < 0 ? log_debug_errno(r, "seccomp: exporting the filter failed: %m") : 0;
}
