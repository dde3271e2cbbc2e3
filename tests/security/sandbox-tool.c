/* SPDX-License-Identifier: MIT */
/*
 * sandbox-tool.c: the sandbox library's internals for tests/security, which
 * drive it from Python.
 *
 *	sandbox-tool export            the filter, built now from the table (BPF)
 *	sandbox-tool embedded          the filter compiled into the library (BPF)
 *	sandbox-tool table             the table's cases: ID KIND ABI NR A0..A5 WHY
 *	sandbox-tool syscalls ABI MAX  "NR NAME" for 0..MAX of an ABI (x86_64, x32, x86)
 *	sandbox-tool filter-exec CMD.. load the filter (mode O: as root, no namespaces), exec
 *	sandbox-tool check-host PROC CGROUPS [allow]   findings; exit = worst level
 *	sandbox-tool chown-tree DIR UID GID N          sandbox_chown_tree() N times
 */
#include <errno.h>
#include <fcntl.h>
#include <seccomp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "sandbox/sandbox.h"
#include "common/banned.h"

static int
write_all(int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t n = write(fd, p, size);
		if (n < 0)
			return negative_errno();
		p += n;
		size -= n;
	}
	return 0;
}

static uint32_t
abi_arch(int abi)
{
	switch (abi) {
	case SANDBOX_ABI_X32:
		return SCMP_ARCH_X32;
	case SANDBOX_ABI_I386:
		return SCMP_ARCH_X86;
	default:
		return SCMP_ARCH_X86_64;
	}
}

static const char *const abi_names[] = { "x86_64", "x32", "x86" };

/* One line per testable row: DENY rows, and ALLOW rows with conditions. */
static int
cmd_table(void)
{
	size_t n;
	const struct sandbox_syscall_row *rows = sandbox_syscall_table(&n);

	for (size_t i = 0; i < n; i++) {
		const struct sandbox_syscall_row *row = &rows[i];
		uint64_t args[6];
		int nr;

		if (row->kind == SANDBOX_SYSCALL_ALLOW && row->n_cmp == 0)
			continue;
		memcpy(args, row->args, sizeof(args));
		for (unsigned c = 0; c < row->n_cmp; c++)
			args[row->cmp[c].arg] =
				(args[row->cmp[c].arg] & ~row->cmp[c].mask) | row->cmp[c].value;
		nr = seccomp_syscall_resolve_name_arch(abi_arch(row->abi), row->name);
		if (nr == __NR_SCMP_ERROR)
			continue; /* unknown to this libseccomp: the audit covers it by number */
		printf("%s#%zu %s %s %d", row->name, i,
		       row->kind == SANDBOX_SYSCALL_ALLOW ? "allow" : "deny", abi_names[row->abi],
		       nr);
		for (int a = 0; a < 6; a++)
			printf(" %llu", (unsigned long long)args[a]);
		printf(" %s\n", row->why ? row->why : "-");
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static int
cmd_syscalls(const char *abi, const char *max_s)
{
	uint32_t arch = strcmp(abi, "x32") == 0	  ? SCMP_ARCH_X32
			: strcmp(abi, "x86") == 0 ? SCMP_ARCH_X86
						  : SCMP_ARCH_X86_64;
	uint32_t base = arch == SCMP_ARCH_X32 ? 0x40000000u : 0;
	uint32_t max;

	if (parse_uint32(max_s, &max) < 0)
		return 2;
	for (uint32_t i = 0; i <= max; i++) {
		char *name = seccomp_syscall_resolve_num_arch(arch, (int)(base + i));
		if (name)
			printf("%u %s\n", base + i, name);
		free(name);
	}
	return fflush(stdout) == 0 ? 0 : 1;
}

static void
report(enum sandbox_check_level level, const char *what, const char *advice, void *userdata)
{
	(void)userdata;
	printf("%s %s: %s\n", level == SANDBOX_CHECK_REFUSE ? "refuse" : "warn", what, advice);
}

int
main(int argc, char *argv[])
{
	const char *cmd = argc > 1 ? argv[1] : "";
	int r;

	log_setup("sandbox-tool");
	if (strcmp(cmd, "export") == 0) {
		r = sandbox_seccomp_export(1);
		return r < 0 ? (log_error_errno(r, "export: %m"), 1) : 0;
	}
	if (strcmp(cmd, "embedded") == 0) {
		const void *filter;
		size_t len;

		r = sandbox_seccomp_program(&filter, &len);
		if (r >= 0)
			r = write_all(1, filter, len * 8);
		return r < 0 ? 1 : 0;
	}
	if (strcmp(cmd, "table") == 0)
		return cmd_table();
	if (strcmp(cmd, "syscalls") == 0 && argc == 4)
		return cmd_syscalls(argv[2], argv[3]);
	if (strcmp(cmd, "filter-exec") == 0 && argc > 2) {
		r = sandbox_seccomp_load();
		if (r < 0)
			return log_error_errno(r, "Failed to load the filter: %m"), 1;
		execv(argv[2], argv + 2);
		return 127;
	}
	if (strcmp(cmd, "check-host") == 0 && argc >= 4) {
		bool allow = argc > 4 && strcmp(argv[4], "allow") == 0;
		r = sandbox_check_host(argv[2], argv[3], allow, report, NULL);
		return r;
	}
	if (strcmp(cmd, "chown-tree") == 0 && argc == 6) {
		uint32_t uid, gid, count;

		if (parse_uint32(argv[3], &uid) < 0 || parse_uint32(argv[4], &gid) < 0 ||
		    parse_uint32(argv[5], &count) < 0)
			return 2;
		for (uint32_t i = 0; i < count; i++) {
			_cleanup_close_ int fd = open(argv[2], O_RDONLY | O_DIRECTORY | O_CLOEXEC);
			if (fd < 0)
				return log_error_errno(errno, "open: %m"), 1;
			r = sandbox_chown_tree(fd, uid, gid);
			if (r < 0)
				log_debug_errno(r, "chown_tree: %m");
		}
		return 0;
	}
	fprintf(stderr, "usage: see tests/security/sandbox-tool.c\n");
	return 2;
}
