/* SPDX-License-Identifier: MIT */
/*
 * datagram.h: one message on a SOCK_SEQPACKET socket, with descriptors
 * (SCM_RIGHTS). Both of Granary's local protocols (front ↔ launcher in
 * supervisor/ipc.c, front ↔ grain-init in grains/grain-protocol.c) send and
 * receive through these two calls and decode what they get themselves.
 */
#ifndef GRANARY_COMMON_DATAGRAM_H
#define GRANARY_COMMON_DATAGRAM_H

#include <stddef.h>
#include <sys/types.h>

/* The most descriptors datagram_receive() takes in; more make the message truncated. */
#define DATAGRAM_FDS_MAX 4

/* Send len bytes of buf as one datagram, with fd attached when >= 0. 0, or -errno. */
int datagram_send(int sock, const void *buf, size_t len, int fd, int flags);

/*
 * Receive one datagram into buf and its descriptors (close-on-exec) into
 * fds, *ret_n_fds of them. Returns the bytes received; -ECONNRESET when the
 * peer closed; -EBADMSG, every descriptor closed, for a datagram longer than
 * size, a truncated control message, more than max_fds (<= DATAGRAM_FDS_MAX)
 * descriptors, or an empty datagram from a live peer; other -errno.
 */
ssize_t datagram_receive(int sock, void *buf, size_t size, int *fds, unsigned max_fds,
			 unsigned *ret_n_fds, int flags);

#endif
