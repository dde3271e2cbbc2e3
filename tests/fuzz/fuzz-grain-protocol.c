/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a datagram on a grain's control socket as grain_msg_decode()
 * sees it, in either direction (grain-init reads front's; front reads a
 * grain-init that runs inside a grain and may be compromised). The first
 * byte picks the descriptor count (bits 0-1) and the direction (bit 2); the
 * rest is the datagram.
 */
#include <stdint.h>
#include <string.h>

#include "grains/grain-protocol.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	enum grain_msg_direction direction;
	struct grain_msg m;

	if (size < 1)
		return 0;
	direction = data[0] & 4 ? GRAIN_TO_FRONT : GRAIN_TO_INIT;
	if (grain_msg_decode(data + 1, size - 1, data[0] & 3, direction, &m) != 0)
		return 0;
	/* Whatever passes must hold what both ends rely on. */
	if (m.header.length != size - 1 - sizeof(m.header) || m.fd >= 0)
		__builtin_trap();
	switch (m.header.type) {
	case GRAIN_MSG_CONNECT:
	case GRAIN_MSG_STATUS:
		if (direction != GRAIN_TO_INIT || m.header.id == 0 || (data[0] & 3) != 0)
			__builtin_trap();
		break;
	case GRAIN_MSG_CONNECTED:
		if (direction != GRAIN_TO_FRONT || (data[0] & 3) != 1)
			__builtin_trap();
		break;
	case GRAIN_MSG_ERROR:
		if (strnlen(m.payload.error.message, sizeof(m.payload.error.message)) >=
			    sizeof(m.payload.error.message) ||
		    m.payload.error.error <= 0)
			__builtin_trap();
		break;
	case GRAIN_MSG_STATE:
		if (m.payload.state.state == 0 || m.payload.state.state >= _GRAIN_APP_STATE_MAX)
			__builtin_trap();
		break;
	case GRAIN_MSG_EXITED:
		if (m.header.id != 0 ||
		    (m.payload.exited.code < 0) == (m.payload.exited.signal == 0))
			__builtin_trap();
		break;
	default:
		__builtin_trap();
	}
	return 0;
}
