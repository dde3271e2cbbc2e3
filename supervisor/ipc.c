/* SPDX-License-Identifier: MIT */
/*
 * ipc.c: the messages between front (unprivileged) and launcher (root).
 * docs/IPC.md is the specification; this file is its only implementation.
 *
 * The launcher believes nothing front says beyond ids, so decoding is the
 * security boundary: every message is one datagram on a SOCK_SEQPACKET
 * socketpair, and ipc_decode() accepts it only if
 *   - the header is complete and its length field equals the bytes received,
 *   - the type is one of the enumerated set and travels in that direction,
 *   - the payload has exactly that type's size (nothing left over),
 *   - every id is exactly the right number of lowercase hex characters,
 *   - exactly the type's number of file descriptors came with it.
 * Anything else is refused with -EBADMSG, and the launcher then drops the
 * connection.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/datagram.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

struct ipc_type_info {
	const char *name;
	enum ipc_direction direction;
	size_t payload_size;
	unsigned n_fds;
	unsigned max_fds; /* > n_fds only for OK: GRAIN_LOG_OPEN's carries the log */
};

static const struct ipc_type_info ipc_types[_IPC_TYPE_MAX] = {
	[IPC_PING] = { "PING", IPC_TO_LAUNCHER, 0, 0 },
	[IPC_GRAIN_STORAGE_CREATE] = { "GRAIN_STORAGE_CREATE", IPC_TO_LAUNCHER,
				       sizeof(struct ipc_grain), 0 },
	[IPC_GRAIN_STORAGE_DELETE] = { "GRAIN_STORAGE_DELETE", IPC_TO_LAUNCHER,
				       sizeof(struct ipc_grain), 0 },
	[IPC_PONG] = { "PONG", IPC_TO_FRONT, sizeof(struct ipc_pong), 0 },
	[IPC_OK] = { "OK", IPC_TO_FRONT, 0, 0, 1 },
	[IPC_ERROR] = { "ERROR", IPC_TO_FRONT, sizeof(struct ipc_error), 0 },
	[IPC_PACKAGE_INSTALL] = { "PACKAGE_INSTALL", IPC_TO_LAUNCHER, 0, 1 },
	[IPC_PACKAGE_DELETE] = { "PACKAGE_DELETE", IPC_TO_LAUNCHER, sizeof(struct ipc_package), 0 },
	[IPC_PACKAGE_INSTALLED] = { "PACKAGE_INSTALLED", IPC_TO_FRONT,
				    sizeof(struct ipc_package_installed), 0 },
	[IPC_GRAIN_START] = { "GRAIN_START", IPC_TO_LAUNCHER, sizeof(struct ipc_grain_start), 0 },
	[IPC_GRAIN_STARTED] = { "GRAIN_STARTED", IPC_TO_FRONT, sizeof(struct ipc_grain_started),
				1 },
	[IPC_GRAIN_STOP] = { "GRAIN_STOP", IPC_TO_LAUNCHER, sizeof(struct ipc_grain), 0 },
	[IPC_GRAIN_STATUS] = { "GRAIN_STATUS", IPC_TO_LAUNCHER, sizeof(struct ipc_grain), 0 },
	[IPC_GRAIN_STATS] = { "GRAIN_STATS", IPC_TO_FRONT, sizeof(struct ipc_grain_stats), 0 },
	[IPC_GRAIN_LOG_OPEN] = { "GRAIN_LOG_OPEN", IPC_TO_LAUNCHER, sizeof(struct ipc_grain), 0 },
};

const char *
ipc_type_name(uint32_t type)
{
	return type < _IPC_TYPE_MAX && ipc_types[type].name ? ipc_types[type].name : "UNKNOWN";
}

/* The one valid spelling of an app id (the spk library decides). */
static bool
app_id_valid(const char id[SPK_APP_ID_LEN])
{
	char s[SPK_APP_ID_LEN + 1];
	uint8_t key[SPK_PUBLIC_KEY_BYTES];

	memcpy(s, id, SPK_APP_ID_LEN);
	s[SPK_APP_ID_LEN] = '\0';
	return spk_app_id_to_key(s, key) >= 0;
}

int
ipc_decode(const uint8_t *buf, size_t len, unsigned n_fds, enum ipc_direction direction,
	   struct ipc_message *ret)
{
	const struct ipc_type_info *info;
	struct ipc_header h;
	struct ipc_message m = {};

	if (len < sizeof(h) || len > IPC_MESSAGE_MAX)
		return -EBADMSG;
	memcpy(&h, buf, sizeof(h));
	if (h.length != len - sizeof(h))
		return -EBADMSG;
	if (h.type == 0 || h.type >= _IPC_TYPE_MAX || !ipc_types[h.type].name)
		return -EBADMSG;
	info = &ipc_types[h.type];
	if (info->direction != direction || h.length != info->payload_size || n_fds < info->n_fds ||
	    n_fds > MAX(info->n_fds, info->max_fds))
		return -EBADMSG;

	m.header = h;
	memcpy(&m.payload, buf + sizeof(h), h.length);

	switch (h.type) {
	case IPC_GRAIN_STORAGE_CREATE:
	case IPC_GRAIN_STORAGE_DELETE:
	case IPC_GRAIN_STOP:
	case IPC_GRAIN_STATUS:
	case IPC_GRAIN_LOG_OPEN:
		if (!hex_valid(m.payload.grain.grain_id, sizeof(m.payload.grain.grain_id)))
			return -EBADMSG;
		break;
	case IPC_GRAIN_START:
		if (!hex_valid(m.payload.start.grain_id, sizeof(m.payload.start.grain_id)) ||
		    !hex_valid(m.payload.start.package_id, sizeof(m.payload.start.package_id)))
			return -EBADMSG;
		break;
	case IPC_GRAIN_STARTED:
		if (m.payload.started.pid == 0 || m.payload.started.pid > INT32_MAX ||
		    m.payload.started.uid == 0 || m.payload.started.port == 0 ||
		    m.payload.started.port > 65535)
			return -EBADMSG;
		break;
	case IPC_GRAIN_STATS:
		if (m.payload.stats.running > 1 || m.payload.stats.pid > INT32_MAX)
			return -EBADMSG;
		break;
	case IPC_PACKAGE_DELETE:
		if (!hex_valid(m.payload.package.package_id, sizeof(m.payload.package.package_id)))
			return -EBADMSG;
		break;
	case IPC_PACKAGE_INSTALLED:
		if (!hex_valid(m.payload.installed.package_id,
			       sizeof(m.payload.installed.package_id)) ||
		    !app_id_valid(m.payload.installed.app_id) || m.payload.installed.existed > 1)
			return -EBADMSG;
		break;
	case IPC_ERROR:
		/* The message must be a NUL-terminated string inside its field. */
		if (!memchr(m.payload.error.message, '\0', sizeof(m.payload.error.message)) ||
		    m.payload.error.error <= 0 || m.payload.error.error > 4095)
			return -EBADMSG;
		break;
	default:
		break;
	}
	*ret = m;
	return 0;
}

int
ipc_send_fd(int fd, uint32_t type, uint32_t id, const void *payload, size_t payload_size,
	    int pass_fd)
{
	uint8_t buf[IPC_MESSAGE_MAX];
	struct ipc_header h = { .type = type, .id = id, .length = (uint32_t)payload_size };

	if (sizeof(h) + payload_size > sizeof(buf))
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	if (payload_size)
		memcpy(buf + sizeof(h), payload, payload_size);
	return datagram_send(fd, buf, sizeof(h) + payload_size, pass_fd, 0);
}

int
ipc_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t payload_size)
{
	return ipc_send_fd(fd, type, id, payload, payload_size, -1);
}

int
ipc_receive(int fd, enum ipc_direction direction, struct ipc_message *ret)
{
	/* One byte more than the largest message: a longer one shows as truncated. */
	uint8_t buf[IPC_MESSAGE_MAX + 1];
	int fds[IPC_FDS_MAX];
	unsigned n_fds = 0;
	ssize_t n;
	int r;

	n = datagram_receive(fd, buf, sizeof(buf), fds, IPC_FDS_MAX, &n_fds, 0);
	if (n < 0)
		return (int)n;
	r = ipc_decode(buf, (size_t)n, n_fds, direction, ret);
	if (r < 0) {
		for (unsigned i = 0; i < n_fds; i++)
			(void)close(fds[i]);
		return r;
	}
	memcpy(ret->fds, fds, n_fds * sizeof(int));
	ret->n_fds = n_fds;
	return 0;
}

int
ipc_call_fd(int fd, uint32_t type, const void *payload, size_t payload_size, int pass_fd,
	    struct ipc_message *ret_reply)
{
	static uint32_t next_id = 1;
	uint32_t id = next_id++;
	int r;

	r = ipc_send_fd(fd, type, id, payload, payload_size, pass_fd);
	if (r < 0)
		return r;
	r = ipc_receive(fd, IPC_TO_FRONT, ret_reply);
	if (r < 0)
		return r;
	if (ret_reply->header.id != id)
		return -EBADMSG;
	if (ret_reply->header.type == IPC_ERROR)
		return -ret_reply->payload.error.error;
	return 0;
}

int
ipc_call(int fd, uint32_t type, const void *payload, size_t payload_size,
	 struct ipc_message *ret_reply)
{
	return ipc_call_fd(fd, type, payload, payload_size, -1, ret_reply);
}
