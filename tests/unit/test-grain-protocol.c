/* SPDX-License-Identifier: MIT */
/*
 * The front ↔ grain-init control socket protocol (grains/grain-protocol.h):
 * encoding, every rule of the decoder, and send/receive on a real
 * SOCK_SEQPACKET socket pair with descriptors travelling.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/macro.h"
#include "grains/grain-protocol.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* A datagram by hand: header fields as given, then len bytes of payload. */
static size_t
raw(uint8_t *buf, uint32_t type, uint32_t id, uint32_t length, const void *payload, size_t len)
{
	struct grain_msg_header h = { .type = type, .id = id, .length = length };

	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), payload, len);
	return sizeof(h) + len;
}

static int
decode_raw(uint32_t type, uint32_t id, const void *payload, size_t len, unsigned n_fds,
	   enum grain_msg_direction direction)
{
	uint8_t buf[GRAIN_MSG_MAX + 64];
	struct grain_msg m;

	return grain_msg_decode(buf, raw(buf, type, id, (uint32_t)len, payload, len), n_fds,
				direction, &m);
}

static int
count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	int n = 0;

	if (!d)
		return -1;
	while (readdir(d))
		n++;
	closedir(d);
	return n;
}

TEST(encode_decode_round_trip)
{
	uint8_t buf[GRAIN_MSG_MAX];
	struct grain_msg_error e = { .error = ECONNREFUSED, .message = "no" };
	struct grain_msg_state s = { GRAIN_PROTOCOL_VERSION, GRAIN_APP_READY, 42, 3 };
	struct grain_msg_exited x = { .code = -1, .signal = 11 };
	struct grain_msg m;
	int n;

	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_CONNECT, 7, NULL, 0);
	CHECK_INT_EQ(n, sizeof(struct grain_msg_header));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_INIT, &m));
	CHECK_UINT_EQ(m.header.type, GRAIN_MSG_CONNECT);
	CHECK_UINT_EQ(m.header.id, 7);
	CHECK_INT_EQ(m.fd, -EBADF);

	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_STATUS, 8, NULL, 0);
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_INIT, &m));
	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_CONNECTED, 9, NULL, 0);
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 1, GRAIN_TO_FRONT, &m));

	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_ERROR, 10, &e, sizeof(e));
	CHECK_INT_EQ(n, sizeof(struct grain_msg_header) + sizeof(e));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_FRONT, &m));
	CHECK_INT_EQ(m.payload.error.error, ECONNREFUSED);
	CHECK_STR_EQ(m.payload.error.message, "no");

	/* STATE: a reply (id) or an event (id 0) */
	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_STATE, 11, &s, sizeof(s));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_FRONT, &m));
	CHECK_UINT_EQ(m.payload.state.ready_ms, 42);
	CHECK_UINT_EQ(m.payload.state.pending, 3);
	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_STATE, 0, &s, sizeof(s));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_FRONT, &m));

	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_EXITED, 0, &x, sizeof(x));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_FRONT, &m));
	CHECK_INT_EQ(m.payload.exited.signal, 11);
	x = (struct grain_msg_exited){ .code = 255 };
	n = grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_EXITED, 0, &x, sizeof(x));
	CHECK_OK(grain_msg_decode(buf, (size_t)n, 0, GRAIN_TO_FRONT, &m));

	CHECK_STR_EQ(grain_msg_type_name(GRAIN_MSG_CONNECTED), "CONNECTED");
	CHECK_STR_EQ(grain_msg_type_name(0), "UNKNOWN");
	CHECK_STR_EQ(grain_msg_type_name(_GRAIN_MSG_TYPE_MAX), "UNKNOWN");
	CHECK_STR_EQ(grain_msg_type_name(0xffffffff), "UNKNOWN");
}

TEST(encode_refuses)
{
	uint8_t buf[GRAIN_MSG_MAX];
	struct grain_msg_error e = { .error = 1 };

	CHECK_ERR(grain_msg_encode(buf, sizeof(buf), 0, 1, NULL, 0), EINVAL);
	CHECK_ERR(grain_msg_encode(buf, sizeof(buf), _GRAIN_MSG_TYPE_MAX, 1, NULL, 0), EINVAL);
	/* the payload must be exactly the type's */
	CHECK_ERR(grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_CONNECT, 1, &e, sizeof(e)), EINVAL);
	CHECK_ERR(grain_msg_encode(buf, sizeof(buf), GRAIN_MSG_ERROR, 1, &e, sizeof(e) - 1),
		  EINVAL);
	/* the buffer must hold it */
	CHECK_ERR(grain_msg_encode(buf, 20, GRAIN_MSG_ERROR, 1, &e, sizeof(e)), EMSGSIZE);
	CHECK_ERR(grain_msg_encode(buf, 11, GRAIN_MSG_CONNECT, 1, NULL, 0), EMSGSIZE);
}

TEST(decode_refuses_malformed)
{
	uint8_t buf[GRAIN_MSG_MAX + 64] = { 0 };
	uint8_t junk[GRAIN_MSG_MAX] = { 0 };
	struct grain_msg_error e = { .error = 5, .message = "x" };
	struct grain_msg_state s = { GRAIN_PROTOCOL_VERSION, GRAIN_APP_READY, 0, 0 };
	struct grain_msg_exited x = {};
	struct grain_msg m;
	size_t n;

	/* empty, shorter than a header */
	CHECK_ERR(grain_msg_decode(buf, 0, 0, GRAIN_TO_INIT, &m), EBADMSG);
	CHECK_ERR(grain_msg_decode(buf, sizeof(struct grain_msg_header) - 1, 0, GRAIN_TO_INIT, &m),
		  EBADMSG);
	/* a length field that lies, either way */
	n = raw(buf, GRAIN_MSG_CONNECT, 1, 4, NULL, 0);
	CHECK_ERR(grain_msg_decode(buf, n, 0, GRAIN_TO_INIT, &m), EBADMSG);
	n = raw(buf, GRAIN_MSG_CONNECT, 1, 0, "abcd", 4);
	CHECK_ERR(grain_msg_decode(buf, n, 0, GRAIN_TO_INIT, &m), EBADMSG);
	n = raw(buf, GRAIN_MSG_CONNECT, 1, 0xffffffff, NULL, 0);
	CHECK_ERR(grain_msg_decode(buf, n, 0, GRAIN_TO_INIT, &m), EBADMSG);
	/* longer than any message */
	n = raw(buf, GRAIN_MSG_CONNECT, 1, GRAIN_MSG_MAX, junk, GRAIN_MSG_MAX);
	CHECK_ERR(grain_msg_decode(buf, n, 0, GRAIN_TO_INIT, &m), EBADMSG);
	/* unknown types */
	CHECK_ERR(decode_raw(0, 1, NULL, 0, 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(_GRAIN_MSG_TYPE_MAX, 1, NULL, 0, 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(0xffffffff, 1, NULL, 0, 0, GRAIN_TO_INIT), EBADMSG);
	/* each type in the wrong direction */
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECT, 1, NULL, 0, 0, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_STATUS, 1, NULL, 0, 0, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECTED, 1, NULL, 0, 1, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e), 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_STATE, 1, &s, sizeof(s), 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_EXITED, 0, &x, sizeof(x), 0, GRAIN_TO_INIT), EBADMSG);
	/* payload one byte short, one byte long */
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e) - 1, 0, GRAIN_TO_FRONT), EBADMSG);
	memcpy(junk, &e, sizeof(e));
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, junk, sizeof(e) + 1, 0, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_STATUS, 1, junk, 1, 0, GRAIN_TO_INIT), EBADMSG);
	/* descriptors: none where one belongs, one where none does, two */
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECTED, 1, NULL, 0, 0, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECTED, 1, NULL, 0, 2, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECT, 1, NULL, 0, 1, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e), 1, GRAIN_TO_FRONT), EBADMSG);
	/* ids: requests and their replies are never 0, EXITED always is */
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECT, 0, NULL, 0, 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_STATUS, 0, NULL, 0, 0, GRAIN_TO_INIT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_CONNECTED, 0, NULL, 0, 1, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 0, &e, sizeof(e), 0, GRAIN_TO_FRONT), EBADMSG);
	CHECK_ERR(decode_raw(GRAIN_MSG_EXITED, 5, &x, sizeof(x), 0, GRAIN_TO_FRONT), EBADMSG);
	/* ERROR: a message without its NUL, an errno out of range */
	memset(e.message, 'x', sizeof(e.message));
	CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e), 0, GRAIN_TO_FRONT), EBADMSG);
	e.message[sizeof(e.message) - 1] = '\0';
	CHECK_OK(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e), 0, GRAIN_TO_FRONT));
	static const int32_t bad_errnos[] = { 0, -1, 4096, INT32_MIN };
	for (size_t i = 0; i < ELEMENTSOF(bad_errnos); i++) {
		e.error = bad_errnos[i];
		CHECK_ERR(decode_raw(GRAIN_MSG_ERROR, 1, &e, sizeof(e), 0, GRAIN_TO_FRONT),
			  EBADMSG);
	}
	/* STATE: a state that does not exist */
	s.state = 0;
	CHECK_ERR(decode_raw(GRAIN_MSG_STATE, 1, &s, sizeof(s), 0, GRAIN_TO_FRONT), EBADMSG);
	s.state = _GRAIN_APP_STATE_MAX;
	CHECK_ERR(decode_raw(GRAIN_MSG_STATE, 1, &s, sizeof(s), 0, GRAIN_TO_FRONT), EBADMSG);
	/* EXITED: exactly one of code and signal */
	static const struct grain_msg_exited bad_exits[] = {
		{ .code = 256 },
		{ .code = -1 },
		{ .code = -2 },
		{ .code = 0, .signal = 9 },
		{ .code = 1, .signal = 9 },
		{ .code = -1, .signal = 65 },
		{ .code = -1, .signal = -9 },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad_exits); i++)
		CHECK_ERR(decode_raw(GRAIN_MSG_EXITED, 0, &bad_exits[i], sizeof(bad_exits[i]), 0,
				     GRAIN_TO_FRONT),
			  EBADMSG);
}

TEST(send_and_receive_on_a_socket_pair)
{
	_cleanup_close_ int front = -EBADF, init = -EBADF, r_end = -EBADF, w_end = -EBADF;
	int pair[2], pipe_fds[2];
	struct grain_msg_exited x = { .code = 3 };
	struct grain_msg m;
	char c = 0;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
	front = pair[0];
	init = pair[1];
	CHECK(pipe2(pipe_fds, O_CLOEXEC) == 0);
	r_end = pipe_fds[0];
	w_end = pipe_fds[1];

	/* nothing waits */
	CHECK_ERR(grain_msg_receive(init, GRAIN_TO_INIT, MSG_DONTWAIT, &m), EAGAIN);

	CHECK_OK(grain_msg_send(front, GRAIN_MSG_CONNECT, 42, NULL, 0, -1, 0));
	CHECK_OK(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m));
	CHECK_UINT_EQ(m.header.type, GRAIN_MSG_CONNECT);
	CHECK_UINT_EQ(m.header.id, 42);

	/* a descriptor travels with CONNECTED and works on the other side */
	CHECK_OK(grain_msg_send(init, GRAIN_MSG_CONNECTED, 42, NULL, 0, w_end, 0));
	CHECK_OK(grain_msg_receive(front, GRAIN_TO_FRONT, 0, &m));
	CHECK(m.fd >= 0 && m.fd != w_end);
	CHECK(fcntl(m.fd, F_GETFD) == FD_CLOEXEC);
	CHECK(write(m.fd, "y", 1) == 1);
	CHECK(read(r_end, &c, 1) == 1 && c == 'y');
	(void)close(m.fd);

	CHECK_OK(grain_msg_send(init, GRAIN_MSG_EXITED, 0, &x, sizeof(x), -1, 0));
	CHECK_OK(grain_msg_receive(front, GRAIN_TO_FRONT, 0, &m));
	CHECK_INT_EQ(m.payload.exited.code, 3);

	/* the sender checks what it sends too */
	CHECK_ERR(grain_msg_send(init, GRAIN_MSG_EXITED, 0, &x, 1, -1, 0), EINVAL);
}

TEST(receive_refuses_and_closes_what_came_with_a_bad_message)
{
	_cleanup_close_ int front = -EBADF, init = -EBADF;
	int pair[2], pipe_fds[2], before;
	uint8_t big[GRAIN_MSG_MAX + 100] = { 0 };
	struct grain_msg m;

	CHECK(socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) == 0);
	front = pair[0];
	init = pair[1];
	CHECK(pipe2(pipe_fds, O_CLOEXEC) == 0);

	/* a CONNECT with a descriptor it must not carry: refused, the descriptor closed */
	before = count_fds();
	CHECK_OK(grain_msg_send(front, GRAIN_MSG_CONNECTED, 1, NULL, 0, pipe_fds[0], 0));
	(void)close(pipe_fds[0]);
	(void)close(pipe_fds[1]);
	CHECK_ERR(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m), EBADMSG);
	CHECK_INT_EQ(count_fds(), before - 2);

	/* an empty datagram is not the peer closing */
	CHECK(send(front, "", 0, 0) == 0);
	CHECK_ERR(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m), EBADMSG);

	/* a datagram too long for any message arrives truncated: refused */
	raw(big, GRAIN_MSG_CONNECT, 1, 0, NULL, 0);
	CHECK(send(front, big, sizeof(big), 0) == (ssize_t)sizeof(big));
	CHECK_ERR(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m), EBADMSG);

	/* what follows still gets through; then the close is seen as one */
	CHECK_OK(grain_msg_send(front, GRAIN_MSG_STATUS, 2, NULL, 0, -1, 0));
	front = safe_close(front);
	CHECK_OK(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m));
	CHECK_UINT_EQ(m.header.type, GRAIN_MSG_STATUS);
	CHECK_ERR(grain_msg_receive(init, GRAIN_TO_INIT, 0, &m), ECONNRESET);
	CHECK_ERR(grain_msg_send(init, GRAIN_MSG_EXITED, 0, &(struct grain_msg_exited){}, 8, -1, 0),
		  EPIPE);
}
