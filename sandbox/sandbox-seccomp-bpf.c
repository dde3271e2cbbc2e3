/* SPDX-License-Identifier: MIT */
/*
 * sandbox-seccomp-bpf.c: the grain's filter as built at build time from the
 * table in sandbox-seccomp.c (see seccomp-gen.c), and loading it.
 */
#include <errno.h>
#include <linux/filter.h>

#include "common/macro.h"
#include "sandbox/sandbox.h"
#include "sandbox/sandbox-internal.h"
#include "sandbox/seccomp-bpf.h" /* generated in $(BUILD)/gen */
#include "common/banned.h"

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
