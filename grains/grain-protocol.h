/* SPDX-License-Identifier: MIT */
/*
 * grain-protocol.h: the messages between front and a grain's grain-init, on
 * the grain's control socket (docs/grain-init.md is the specification).
 *
 * Plain C with no library beyond libc: grain-init (static, inside the grain)
 * and front (outside) link the same grain-protocol.c, so the two ends cannot
 * disagree on a size or a rule.
 *
 * One message is one datagram on a SOCK_SEQPACKET socket:
 *
 *	offset  size    field
 *	0       4       type     enum grain_msg_type
 *	4       4       id       chosen by front for a request, echoed in its
 *	                         reply; 0 in the messages grain-init sends unasked
 *	8       4       length   payload bytes after the header
 *	12      length  payload  exactly the type's structure
 *
 * Integers are in host byte order (both ends run on one machine).
 */
#ifndef GRANARY_GRAINS_GRAIN_PROTOCOL_H
#define GRANARY_GRAINS_GRAIN_PROTOCOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GRAIN_PROTOCOL_VERSION 1
/* The largest datagram either side sends or accepts. */
#define GRAIN_MSG_MAX	       256
/* Bytes of grain_msg_error.message, its NUL included. */
#define GRAIN_MSG_TEXT_MAX     200

enum grain_msg_type {
	/* front → grain-init */
	GRAIN_MSG_CONNECT = 1, /* none: a connection to the app, please */
	GRAIN_MSG_STATUS,      /* none: answer with a STATE */
	/* grain-init → front */
	GRAIN_MSG_CONNECTED, /* none, plus the connected socket (SCM_RIGHTS) */
	GRAIN_MSG_ERROR,     /* struct grain_msg_error: a CONNECT failed */
	GRAIN_MSG_STATE,     /* struct grain_msg_state: reply to STATUS, or id 0 on a change */
	GRAIN_MSG_EXITED,    /* struct grain_msg_exited, id 0: the app is gone, so is grain-init */
	_GRAIN_MSG_TYPE_MAX,
};

enum grain_msg_direction {
	GRAIN_TO_INIT,	/* what grain-init accepts (from front) */
	GRAIN_TO_FRONT, /* what front accepts (from grain-init) */
};

enum grain_app_state {
	GRAIN_APP_STARTING = 1, /* started; its port does not accept yet */
	GRAIN_APP_READY,	/* its port accepted a connection */
	GRAIN_APP_STOPPING,	/* being stopped: no new connections */
	_GRAIN_APP_STATE_MAX,
};

struct grain_msg_header {
	uint32_t type;	 /* enum grain_msg_type */
	uint32_t id;	 /* see above */
	uint32_t length; /* payload bytes after this header */
};

struct grain_msg_error {
	int32_t error;			  /* a positive errno, 1..4095 */
	char message[GRAIN_MSG_TEXT_MAX]; /* for a person, NUL-terminated */
};

struct grain_msg_state {
	uint32_t protocol; /* GRAIN_PROTOCOL_VERSION */
	uint32_t state;	   /* enum grain_app_state */
	uint32_t ready_ms; /* from the app's start to its port accepting; 0 before */
	uint32_t pending;  /* CONNECTs not yet answered */
};

/* Exactly one of the two says how the app ended. */
struct grain_msg_exited {
	int32_t code;	/* its exit code 0..255, or -1 when a signal killed it */
	int32_t signal; /* the signal that killed it, or 0 */
};

/* A decoded message. */
struct grain_msg {
	struct grain_msg_header header;
	union {
		struct grain_msg_error error;
		struct grain_msg_state state;
		struct grain_msg_exited exited;
	} payload;
	int fd; /* CONNECTED: the socket, owned by the receiver; otherwise -EBADF */
};

/* "CONNECT", ..., or "UNKNOWN" (static storage). */
const char *grain_msg_type_name(uint32_t type);

/*
 * Write the message into buf (size bytes). Returns its length, or -EMSGSIZE
 * when it does not fit, -EINVAL when payload_size is not the type's size.
 */
int grain_msg_encode(uint8_t *buf, size_t size, uint32_t type, uint32_t id, const void *payload,
		     size_t payload_size);

/*
 * Check and copy one received datagram of len bytes that came with n_fds
 * descriptors (the descriptors themselves stay the caller's: ret->fd is
 * -EBADF). -EBADMSG unless it is exactly one well-formed message of a type
 * that travels in direction: whole header, length equal to the bytes after
 * it, known type, the type's payload size and descriptor count, ids as the
 * type requires, the payload's own rules (NUL-terminated text, errno range,
 * known state, a real exit status).
 */
int grain_msg_decode(const uint8_t *buf, size_t len, unsigned n_fds,
		     enum grain_msg_direction direction, struct grain_msg *ret);

/*
 * Send one message on a SOCK_SEQPACKET socket, with fd (>= 0) attached, or
 * none (fd < 0). MSG_NOSIGNAL; with MSG_DONTWAIT in flags a full socket gives
 * -EAGAIN. Returns 0 or -errno (-EPIPE, -ECONNRESET: the peer is gone).
 */
int grain_msg_send(int sock, uint32_t type, uint32_t id, const void *payload, size_t payload_size,
		   int fd, int flags);

/*
 * Receive one message (flags: 0 or MSG_DONTWAIT). -ECONNRESET when the peer
 * closed; -EAGAIN when nothing waits; -EBADMSG when it was malformed or
 * truncated (any descriptor that came with it is closed; an empty datagram
 * is malformed too, told from a close by the socket not being hung up).
 * ret->fd is the caller's to close.
 */
int grain_msg_receive(int sock, enum grain_msg_direction direction, int flags,
		      struct grain_msg *ret);

#endif
