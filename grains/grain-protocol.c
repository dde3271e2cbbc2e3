/* SPDX-License-Identifier: MIT */
/*
 * grain-protocol.c: the control socket messages between front and
 * grain-init (grain-protocol.h, docs/grain-init.md). Its only
 * implementation, linked into both: the static grain-init and front.
 *
 * Each side believes nothing the other sends before grain_msg_decode() has
 * checked it: one datagram, a whole header whose length equals the bytes
 * received, a known type travelling in that direction, exactly the type's
 * payload size and descriptor count, and the payload's own rules. Nothing
 * here logs: callers decide what a malformed message means to them.
 */
#include <errno.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/datagram.h"
#include "grains/grain-protocol.h"
#include "common/banned.h"

enum id_rule {
	ID_REQUEST, /* front's request id: not 0 */
	ID_EVENT,   /* sent unasked: 0 */
	ID_ANY,	    /* a reply (not 0) or an event (0) */
};

struct grain_msg_type_info {
	const char *name;
	enum grain_msg_direction direction;
	size_t payload_size;
	unsigned n_fds;
	enum id_rule ids;
};

static const struct grain_msg_type_info types[_GRAIN_MSG_TYPE_MAX] = {
	[GRAIN_MSG_CONNECT] = { "CONNECT", GRAIN_TO_INIT, 0, 0, ID_REQUEST },
	[GRAIN_MSG_STATUS] = { "STATUS", GRAIN_TO_INIT, 0, 0, ID_REQUEST },
	[GRAIN_MSG_CONNECTED] = { "CONNECTED", GRAIN_TO_FRONT, 0, 1, ID_REQUEST },
	[GRAIN_MSG_ERROR] = { "ERROR", GRAIN_TO_FRONT, sizeof(struct grain_msg_error), 0,
			      ID_REQUEST },
	[GRAIN_MSG_STATE] = { "STATE", GRAIN_TO_FRONT, sizeof(struct grain_msg_state), 0, ID_ANY },
	[GRAIN_MSG_EXITED] = { "EXITED", GRAIN_TO_FRONT, sizeof(struct grain_msg_exited), 0,
			       ID_EVENT },
};

const char *
grain_msg_type_name(uint32_t type)
{
	return type < _GRAIN_MSG_TYPE_MAX && types[type].name ? types[type].name : "UNKNOWN";
}

int
grain_msg_encode(uint8_t *buf, size_t size, uint32_t type, uint32_t id, const void *payload,
		 size_t payload_size)
{
	struct grain_msg_header h = { .type = type, .id = id, .length = (uint32_t)payload_size };

	if (type == 0 || type >= _GRAIN_MSG_TYPE_MAX || payload_size != types[type].payload_size)
		return -EINVAL;
	if (size < sizeof(h) + payload_size || sizeof(h) + payload_size > GRAIN_MSG_MAX)
		return -EMSGSIZE;
	memcpy(buf, &h, sizeof(h));
	if (payload_size)
		memcpy(buf + sizeof(h), payload, payload_size);
	return (int)(sizeof(h) + payload_size);
}

static bool
payload_valid(const struct grain_msg *m)
{
	switch (m->header.type) {
	case GRAIN_MSG_ERROR:
		return m->payload.error.error > 0 && m->payload.error.error <= 4095 &&
		       memchr(m->payload.error.message, '\0', sizeof(m->payload.error.message));
	case GRAIN_MSG_STATE:
		return m->payload.state.state >= GRAIN_APP_STARTING &&
		       m->payload.state.state < _GRAIN_APP_STATE_MAX;
	case GRAIN_MSG_EXITED:
		if (m->payload.exited.signal == 0)
			return m->payload.exited.code >= 0 && m->payload.exited.code <= 255;
		return m->payload.exited.code == -1 && m->payload.exited.signal > 0 &&
		       m->payload.exited.signal < 65;
	default:
		return true;
	}
}

int
grain_msg_decode(const uint8_t *buf, size_t len, unsigned n_fds, enum grain_msg_direction direction,
		 struct grain_msg *ret)
{
	const struct grain_msg_type_info *info;
	struct grain_msg m = { .fd = -EBADF };

	if (len < sizeof(m.header) || len > GRAIN_MSG_MAX)
		return -EBADMSG;
	memcpy(&m.header, buf, sizeof(m.header));
	if (m.header.length != len - sizeof(m.header))
		return -EBADMSG;
	if (m.header.type == 0 || m.header.type >= _GRAIN_MSG_TYPE_MAX)
		return -EBADMSG;
	info = &types[m.header.type];
	if (info->direction != direction || m.header.length != info->payload_size ||
	    n_fds != info->n_fds)
		return -EBADMSG;
	if ((info->ids == ID_REQUEST && m.header.id == 0) ||
	    (info->ids == ID_EVENT && m.header.id != 0))
		return -EBADMSG;
	memcpy(&m.payload, buf + sizeof(m.header), m.header.length);
	if (!payload_valid(&m))
		return -EBADMSG;
	*ret = m;
	return 0;
}

int
grain_msg_send(int sock, uint32_t type, uint32_t id, const void *payload, size_t payload_size,
	       int fd, int flags)
{
	uint8_t buf[GRAIN_MSG_MAX];
	int len = grain_msg_encode(buf, sizeof(buf), type, id, payload, payload_size);

	if (len < 0)
		return len;
	return datagram_send(sock, buf, (size_t)len, fd, flags);
}

int
grain_msg_receive(int sock, enum grain_msg_direction direction, int flags, struct grain_msg *ret)
{
	/* One byte more than the largest message: a longer one shows as truncated. */
	uint8_t buf[GRAIN_MSG_MAX + 1];
	unsigned n_fds = 0;
	ssize_t n;
	int fd = -EBADF, r;

	/* No message carries more than one descriptor. */
	n = datagram_receive(sock, buf, sizeof(buf), &fd, 1, &n_fds, flags);
	if (n < 0)
		return (int)n;
	r = grain_msg_decode(buf, (size_t)n, n_fds, direction, ret);
	if (r < 0) {
		if (n_fds)
			(void)close(fd);
		return r;
	}
	ret->fd = n_fds ? fd : -EBADF;
	return 0;
}
