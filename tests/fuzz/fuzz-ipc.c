/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a datagram from front as the launcher decodes it (the root
 * process's only input). The first byte picks the descriptor count and the
 * direction; the rest is the datagram.
 */
#include <stdint.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct ipc_message m;

	if (size < 1)
		return 0;
	if (ipc_decode(data + 1, size - 1, data[0] & 3,
		       data[0] & 4 ? IPC_TO_FRONT : IPC_TO_LAUNCHER, &m) == 0) {
		/* Whatever passes must hold what the launcher relies on. */
		if (m.header.type == IPC_GRAIN_STORAGE_CREATE ||
		    m.header.type == IPC_GRAIN_STORAGE_DELETE)
			for (size_t i = 0; i < GRAIN_ID_LEN; i++)
				if (!strchr("0123456789abcdef", m.payload.grain.grain_id[i]) ||
				    !m.payload.grain.grain_id[i])
					__builtin_trap();
		if (m.header.type == IPC_PACKAGE_DELETE)
			for (size_t i = 0; i < PACKAGE_ID_LEN; i++)
				if (!strchr("0123456789abcdef", m.payload.package.package_id[i]) ||
				    !m.payload.package.package_id[i])
					__builtin_trap();
		if (m.header.type == IPC_PACKAGE_INSTALL && (data[0] & 3) != 1)
			__builtin_trap();
	}
	return 0;
}
