/* SPDX-License-Identifier: MIT */
/*
 * lockdown.c: the seccomp filter of granaryd's own processes that touch
 * untrusted bytes: front (HTTP from the network) and the package installer
 * (an uploaded spk). Grains get the allowlist of sandbox/.
 */
#include <errno.h>
#include <sched.h>
#include <sys/socket.h>

#include <seccomp.h>

#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

/*
 * What a compromised front (or package installer) must never do. front runs
 * libmicrohttpd, SQLite and glibc's threads, whose exact syscall set moves
 * with library versions, so this is a denylist of everything privileged or
 * kernel-attack-surface-heavy; the grains, which run code we do not trust at
 * all, get the allowlist (sandbox/). Other ABIs (x32, i386) are killed by
 * libseccomp's default bad-architecture action.
 */
static const char *const denied[] = {
	"execve",
	"execveat",
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"mount",
	"umount2",
	"pivot_root",
	"chroot",
	"fsopen",
	"fsconfig",
	"fsmount",
	"move_mount",
	"open_tree",
	"fspick",
	"mount_setattr",
	"unshare",
	"setns",
	"bpf",
	"perf_event_open",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"keyctl",
	"add_key",
	"request_key",
	"init_module",
	"finit_module",
	"delete_module",
	"kexec_load",
	"kexec_file_load",
	"reboot",
	"swapon",
	"swapoff",
	"acct",
	"syslog",
	"quotactl",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"sethostname",
	"setdomainname",
	"iopl",
	"ioperm",
	"modify_ldt",
	"personality",
	"open_by_handle_at",
	"name_to_handle_at",
	"setuid",
	"setgid",
	"setreuid",
	"setregid",
	"setresuid",
	"setresgid",
	"setgroups",
	"setfsuid",
	"setfsgid",
	"mknod",
	"mknodat",
	"lookup_dcookie",
	"vhangup",
	"kcmp",
	"pidfd_getfd",
};

int
lockdown_seccomp(enum lockdown_flags flags)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(denied) && r >= 0; i++) {
		int nr = seccomp_syscall_resolve_name(denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not known to this libseccomp: not on this kernel either */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	/* Threads yes, namespaces no. clone3 takes its flags through a pointer the
	 * filter cannot read, so it answers ENOSYS and glibc falls back to clone. */
	const unsigned long ns_flags[] = { CLONE_NEWNS,	 CLONE_NEWCGROUP, CLONE_NEWUTS,
					   CLONE_NEWIPC, CLONE_NEWUSER,	  CLONE_NEWPID,
					   CLONE_NEWNET, CLONE_NEWTIME };
	for (size_t i = 0; i < ELEMENTSOF(ns_flags) && r >= 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Sockets: none for the installer; unix, IPv4, IPv6 only for front (no raw
	 * netlink, packet, vsock...). */
	if (flags & LOCKDOWN_NO_SOCKETS) {
		if (r >= 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket),
					     0);
		if (r >= 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
					     SCMP_SYS(socketpair), 0);
	} else {
		if (r >= 0)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_GT, AF_INET6));
		for (int family = 0; family < AF_INET6 && r >= 0; family++)
			if (family != AF_UNIX && family != AF_INET)
				r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT),
						     SCMP_SYS(socket), 1,
						     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)family));
	}
	if (r >= 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}
