/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a datagram from front as the launcher decodes it (the root
 * process's only input), and the launcher's answers as front decodes them. The first byte picks the descriptor count and the
 * direction; the rest is the datagram.
 */
#include <stdint.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/* The launcher builds paths from ids: only lowercase hex may pass. */
static void
check_hex(const char *id, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!id[i] || !strchr("0123456789abcdef", id[i]))
			__builtin_trap();
}

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
		    m.header.type == IPC_GRAIN_STORAGE_DELETE || m.header.type == IPC_GRAIN_STOP ||
		    m.header.type == IPC_GRAIN_STATUS || m.header.type == IPC_GRAIN_LOG_OPEN)
			check_hex(m.payload.grain.grain_id, GRAIN_ID_LEN);
		if (m.header.type == IPC_GRAIN_START) {
			check_hex(m.payload.start.grain_id, GRAIN_ID_LEN);
			check_hex(m.payload.start.package_id, PACKAGE_ID_LEN);
		}
		/* front relies on these: one control socket, a port it can use, at most the log. */
		if (m.header.type == IPC_GRAIN_STARTED &&
		    ((data[0] & 3) != 1 || m.payload.started.port == 0 ||
		     m.payload.started.port > 65535 || m.payload.started.uid == 0))
			__builtin_trap();
		if (m.header.type == IPC_OK && (data[0] & 3) > 1)
			__builtin_trap();
		if (m.header.type == IPC_GRAIN_STATS && m.payload.stats.running > 1)
			__builtin_trap();
		if (m.header.type == IPC_PACKAGE_DELETE)
			check_hex(m.payload.package.package_id, PACKAGE_ID_LEN);
		if (m.header.type == IPC_PACKAGE_INSTALL && (data[0] & 3) != 1)
			__builtin_trap();
	}
	return 0;
}
