/* SPDX-License-Identifier: MIT */
/*
 * sandbox-seccomp-bpf.c: the grain's filter as built at build time from the
 * table in sandbox-seccomp.c (see seccomp-gen.c), and loading it. Apart from
 * the table so that programs starting sandboxes need no libseccomp.
 */
#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <sys/prctl.h>

#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/seccomp-bpf.h" /* generated in $(BUILD)/gen */
#include "common/banned.h"

int
seccomp_load_program(const void *filter, size_t len)
{
	struct sock_fprog prog = {
		.len = (unsigned short)len,
		.filter = (struct sock_filter *)filter,
	};

	/* No allocation, no lock: safe after a raw clone. */
	if (prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog, 0, 0) < 0)
		return negative_errno();
	return 0;
}

int
sandbox_seccomp_program(const void **ret_filter, size_t *ret_len)
{
	*ret_filter = sandbox_bpf;
	*ret_len = ELEMENTSOF(sandbox_bpf);
	return 0;
}

int
sandbox_seccomp_load(void)
{
	return seccomp_load_program(sandbox_bpf, ELEMENTSOF(sandbox_bpf));
}
