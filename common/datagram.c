/* SPDX-License-Identifier: MIT */
/*
 * datagram.c: SOCK_SEQPACKET messages with descriptors (datagram.h).
 */
#include <errno.h>
#include <poll.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <unistd.h>

#include "common/datagram.h"
#include "common/macro.h"
#include "common/banned.h"

int
datagram_send(int sock, const void *buf, size_t len, int fd, int flags)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int))];
	} control = {};
	struct iovec iov = { .iov_base = (void *)buf, .iov_len = len };
	struct msghdr msg = { .msg_iov = &iov, .msg_iovlen = 1 };
	ssize_t n;

	if (fd >= 0) {
		struct cmsghdr *c;

		msg.msg_control = &control;
		msg.msg_controllen = sizeof(control.space);
		c = CMSG_FIRSTHDR(&msg);
		c->cmsg_level = SOL_SOCKET;
		c->cmsg_type = SCM_RIGHTS;
		c->cmsg_len = CMSG_LEN(sizeof(int));
		memcpy(CMSG_DATA(c), &fd, sizeof(int));
	}
	do
		n = sendmsg(sock, &msg, MSG_NOSIGNAL | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return negative_errno();
	return (size_t)n == len ? 0 : -EIO;
}

ssize_t
datagram_receive(int sock, void *buf, size_t size, int *fds, unsigned max_fds, unsigned *ret_n_fds,
		 int flags)
{
	union {
		struct cmsghdr align;
		char space[CMSG_SPACE(sizeof(int) * DATAGRAM_FDS_MAX)];
	} control;
	struct iovec iov = { .iov_base = buf, .iov_len = size };
	struct msghdr msg = {
		.msg_iov = &iov,
		.msg_iovlen = 1,
		.msg_control = &control,
		.msg_controllen = sizeof(control.space),
	};
	unsigned kept = 0, came = 0;
	ssize_t n;

	do
		n = recvmsg(sock, &msg, MSG_CMSG_CLOEXEC | flags);
	while (n < 0 && errno == EINTR);
	if (n < 0)
		return negative_errno();

	for (struct cmsghdr *c = CMSG_FIRSTHDR(&msg); c; c = CMSG_NXTHDR(&msg, c)) {
		if (c->cmsg_level != SOL_SOCKET || c->cmsg_type != SCM_RIGHTS)
			continue;
		for (size_t i = 0; i < (c->cmsg_len - CMSG_LEN(0)) / sizeof(int); i++) {
			int received;

			memcpy(&received, CMSG_DATA(c) + i * sizeof(int), sizeof(int));
			came++;
			if (kept < max_fds && kept < DATAGRAM_FDS_MAX)
				fds[kept++] = received;
			else
				(void)close(received);
		}
	}
	/* 0 bytes: the peer closed, or sent an empty datagram (SOCK_SEQPACKET
	 * reads both as 0). Only a closed peer leaves the socket hung up. */
	if (n == 0 && came == 0) {
		struct pollfd p = { .fd = sock, .events = POLLIN | POLLRDHUP };

		if (poll(&p, 1, 0) < 0 || (p.revents & (POLLHUP | POLLRDHUP)))
			return -ECONNRESET;
		return -EBADMSG;
	}
	/* A truncated datagram or control message is malformed, whatever it says;
	 * so is one with more descriptors than any message has. */
	if ((msg.msg_flags & (MSG_TRUNC | MSG_CTRUNC)) || came > kept) {
		for (unsigned i = 0; i < kept; i++)
			(void)close(fds[i]);
		return -EBADMSG;
	}
	*ret_n_fds = kept;
	return n;
}
