/* SPDX-License-Identifier: MIT */
/*
 * The front ↔ launcher protocol: the decoder's rules, and a real launcher
 * (forked, on a socket pair, in a temp state directory) fed what a
 * compromised front could send.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/datagram.h"
#include "supervisor/supervisor-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* Header plus len payload bytes; payload past its object reads as 'x'. */
static size_t
encode_sized(uint8_t *buf, uint32_t type, uint32_t id, const void *payload, size_t payload_size,
	     size_t len)
{
	struct ipc_header h = { .type = type, .id = id, .length = (uint32_t)len };
	uint8_t padded[IPC_MESSAGE_MAX];

	memset(padded, 'x', sizeof(padded));
	if (payload)
		memcpy(padded, payload, MIN(len, payload_size));
	memcpy(buf, &h, sizeof(h));
	if (len)
		memcpy(buf + sizeof(h), padded, MIN(len, sizeof(padded)));
	return sizeof(h) + len;
}
#define encode(buf, type, id, obj, len)                                                            \
	encode_sized(buf, type, id, obj,                                                           \
		     __builtin_choose_expr(__builtin_types_compatible_p(__typeof__(obj), void *),  \
					   0, sizeof(*(obj))),                                     \
		     len)

static const char good_id[] = "0123456789abcdef0123456789abcdef";
static const char good_package_id[] =
	"0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";

TEST(decode_accepts_well_formed)
{
	uint8_t buf[IPC_MESSAGE_MAX];
	struct ipc_grain g;
	struct ipc_message m;
	size_t n;

	memcpy(g.grain_id, good_id, GRAIN_ID_LEN);
	n = encode(buf, IPC_GRAIN_STORAGE_CREATE, 7, &g, sizeof(g));
	CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m));
	CHECK_UINT_EQ(m.header.id, 7);
	CHECK(memcmp(m.payload.grain.grain_id, good_id, GRAIN_ID_LEN) == 0);
	n = encode_sized(buf, IPC_PING, 1, NULL, 0, 0);
	CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m));
}

TEST(decode_refuses_malformed)
{
	uint8_t buf[IPC_MESSAGE_MAX + 16] = { 0 };
	struct ipc_grain g;
	struct ipc_error e = { .error = 5 };
	struct ipc_message m;
	size_t n;

	memcpy(g.grain_id, good_id, GRAIN_ID_LEN);
	/* too short for a header */
	CHECK_ERR(ipc_decode(buf, 3, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* unknown and zero types */
	n = encode_sized(buf, 0, 1, NULL, 0, 0);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	n = encode_sized(buf, _IPC_TYPE_MAX, 1, NULL, 0, 0);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	n = encode_sized(buf, 0xffffffff, 1, NULL, 0, 0);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* a reply type sent to the launcher */
	n = encode_sized(buf, IPC_OK, 1, NULL, 0, 0);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* payload one byte short, one byte long, length field lying */
	n = encode(buf, IPC_GRAIN_STORAGE_CREATE, 1, &g, sizeof(g) - 1);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	n = encode(buf, IPC_GRAIN_STORAGE_CREATE, 1, &g, sizeof(g));
	buf[n] = 'x';
	CHECK_ERR(ipc_decode(buf, n + 1, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	CHECK_ERR(ipc_decode(buf, n - 1, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* a descriptor where none belongs */
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* over the size limit */
	CHECK_ERR(ipc_decode(buf, IPC_MESSAGE_MAX + 1, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* ids: traversal, uppercase, NUL, slash */
	static const char *const bad_ids[] = {
		"../../../../../../../../etc/pass",
		"0123456789ABCDEF0123456789abcdef",
		"0123456789abcdef0123456789abcde/",
		"0123456789abcdef\0"
		"123456789abcdef",
		"................................",
	};
	for (size_t i = 0; i < ELEMENTSOF(bad_ids); i++) {
		memcpy(g.grain_id, bad_ids[i], GRAIN_ID_LEN);
		n = encode(buf, IPC_GRAIN_STORAGE_DELETE, 1, &g, sizeof(g));
		CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	}
	/* an error message without its NUL, or with a nonsense errno */
	memset(e.message, 'x', sizeof(e.message));
	n = encode(buf, IPC_ERROR, 1, &e, sizeof(e));
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);
	e.message[0] = '\0';
	e.error = -1;
	n = encode(buf, IPC_ERROR, 1, &e, sizeof(e));
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);
}

TEST(decode_grain_messages)
{
	uint8_t buf[IPC_MESSAGE_MAX];
	struct ipc_grain_start start;
	struct ipc_grain_started started = { .pid = 42, .uid = 0x50000001, .port = 8000 };
	struct ipc_grain_stats stats = { .running = 1, .pid = 42, .memory_bytes = 1 << 20 };
	struct ipc_grain g;
	struct ipc_message m;
	size_t n;

	memcpy(start.grain_id, good_id, GRAIN_ID_LEN);
	memcpy(start.package_id, good_package_id, PACKAGE_ID_LEN);
	memcpy(g.grain_id, good_id, GRAIN_ID_LEN);

	n = encode(buf, IPC_GRAIN_START, 3, &start, sizeof(start));
	CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m));
	CHECK(memcmp(m.payload.start.package_id, good_package_id, PACKAGE_ID_LEN) == 0);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_LAUNCHER, &m), EBADMSG);
	CHECK_ERR(ipc_decode(buf, n - 1, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	/* either id bad */
	start.package_id[PACKAGE_ID_LEN - 1] = 'G';
	n = encode(buf, IPC_GRAIN_START, 3, &start, sizeof(start));
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	start.package_id[PACKAGE_ID_LEN - 1] = 'f';
	start.grain_id[0] = '/';
	n = encode(buf, IPC_GRAIN_START, 3, &start, sizeof(start));
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);

	/* STOP, STATUS, LOG_OPEN: a grain id, no descriptor, launcher-bound only */
	static const uint32_t grain_types[] = { IPC_GRAIN_STOP, IPC_GRAIN_STATUS,
						IPC_GRAIN_LOG_OPEN };
	for (size_t i = 0; i < ELEMENTSOF(grain_types); i++) {
		memcpy(g.grain_id, good_id, GRAIN_ID_LEN);
		n = encode(buf, grain_types[i], 4, &g, sizeof(g));
		CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m));
		CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_LAUNCHER, &m), EBADMSG);
		CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);
		g.grain_id[5] = 'A';
		n = encode(buf, grain_types[i], 4, &g, sizeof(g));
		CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_LAUNCHER, &m), EBADMSG);
	}

	/* STARTED: exactly one descriptor, a real pid, uid and port */
	n = encode(buf, IPC_GRAIN_STARTED, 5, &started, sizeof(started));
	CHECK_OK(ipc_decode(buf, n, 1, IPC_TO_FRONT, &m));
	CHECK_UINT_EQ(m.payload.started.port, 8000);
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);
	CHECK_ERR(ipc_decode(buf, n, 2, IPC_TO_FRONT, &m), EBADMSG);
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_LAUNCHER, &m), EBADMSG);
	started.port = 70000;
	n = encode(buf, IPC_GRAIN_STARTED, 5, &started, sizeof(started));
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_FRONT, &m), EBADMSG);
	started.port = 8000;
	started.uid = 0;
	n = encode(buf, IPC_GRAIN_STARTED, 5, &started, sizeof(started));
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_FRONT, &m), EBADMSG);

	/* STATS: no descriptor, running 0 or 1 */
	n = encode(buf, IPC_GRAIN_STATS, 6, &stats, sizeof(stats));
	CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m));
	CHECK_UINT_EQ(m.payload.stats.memory_bytes, 1 << 20);
	CHECK_ERR(ipc_decode(buf, n, 1, IPC_TO_FRONT, &m), EBADMSG);
	stats.running = 2;
	n = encode(buf, IPC_GRAIN_STATS, 6, &stats, sizeof(stats));
	CHECK_ERR(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m), EBADMSG);

	/* OK: none, or the one log of LOG_OPEN; never two */
	n = encode_sized(buf, IPC_OK, 7, NULL, 0, 0);
	CHECK_OK(ipc_decode(buf, n, 0, IPC_TO_FRONT, &m));
	CHECK_OK(ipc_decode(buf, n, 1, IPC_TO_FRONT, &m));
	CHECK_ERR(ipc_decode(buf, n, 2, IPC_TO_FRONT, &m), EBADMSG);
}

/* A launcher in a child process, on a fresh state directory. */
struct launcher_child {
	pid_t pid;
	int fd;
	char state[64];
};

static int
launcher_start(struct launcher_child *lc)
{
	int pair[2];

	(void)snprintf(lc->state, sizeof(lc->state), "/tmp/test-ipc-XXXXXX");
	if (!mkdtemp(lc->state))
		return -errno;
	if (socketpair(AF_UNIX, SOCK_SEQPACKET | SOCK_CLOEXEC, 0, pair) < 0)
		return -errno;
	lc->pid = fork();
	if (lc->pid == 0) {
		char installer[PATH_MAX], init[PATH_MAX];
		struct launcher_config config = { .fd = pair[0],
						  .state_dir = lc->state,
						  .installer = installer,
						  .grain_init = init,
						  .grain = { .memory = 64 << 20,
							     .pids = 64,
							     .cpu = 1000,
							     .tmp = 1 << 20,
							     .start_timeout_ms = 30000,
							     .log_max = 1 << 20 } };

		/* tests/run says where the build is. */
		(void)snprintf(installer, sizeof(installer), "%s/granary-installer",
			       getenv("GRANARY_BUILD") ?: "build");
		(void)snprintf(init, sizeof(init), "%s/grain-init",
			       getenv("GRANARY_BUILD") ?: "build");

		close(pair[1]);
		_exit(launcher_main(&config) < 0 ? 1 : 0);
	}
	close(pair[0]);
	lc->fd = pair[1];
	return 0;
}

/* Close our end and return the launcher's exit status (1: it refused, 0: clean). */
static int
launcher_finish(struct launcher_child *lc)
{
	char cmd[128];
	int status = 0;

	close(lc->fd);
	(void)waitpid(lc->pid, &status, 0);
	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", lc->state);
	(void)!system(cmd);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool
exists_in(const char *state, const char *path)
{
	char full[256];
	struct stat st;

	(void)snprintf(full, sizeof(full), "%s/%s", state, path);
	return lstat(full, &st) == 0;
}

TEST(launcher_does_its_job)
{
	struct launcher_child lc;
	struct ipc_message reply;
	struct ipc_grain g;

	if (geteuid() != 0)
		SKIP("the launcher checks that grains/ is owned by the user it runs as: run as "
		     "root");
	CHECK_OK(launcher_start(&lc));
	CHECK_OK(ipc_call(lc.fd, IPC_PING, NULL, 0, &reply));
	CHECK_UINT_EQ(reply.header.type, IPC_PONG);
	CHECK_UINT_EQ(reply.payload.pong.protocol, IPC_PROTOCOL);
	memcpy(g.grain_id, good_id, GRAIN_ID_LEN);
	CHECK_OK(ipc_call(lc.fd, IPC_GRAIN_STORAGE_CREATE, &g, sizeof(g), &reply));
	CHECK(exists_in(lc.state, "grains/0123456789abcdef0123456789abcdef/data"));
	/* twice: a clear error, not a crash */
	CHECK_ERR(ipc_call(lc.fd, IPC_GRAIN_STORAGE_CREATE, &g, sizeof(g), &reply), EEXIST);

	/* A grain's planted symlink is removed, not followed. */
	char link_path[256], victim[128];
	(void)snprintf(victim, sizeof(victim), "%s/victim", lc.state);
	CHECK(mkdir(victim, 0700) == 0);
	CHECK(close(open("/dev/null", O_RDONLY)) == 0);
	(void)snprintf(link_path, sizeof(link_path), "%s/grains/%s/data/escape", lc.state, good_id);
	CHECK(symlink(victim, link_path) == 0);
	CHECK_OK(ipc_call(lc.fd, IPC_GRAIN_STORAGE_DELETE, &g, sizeof(g), &reply));
	CHECK(!exists_in(lc.state, "grains/0123456789abcdef0123456789abcdef"));
	CHECK(exists_in(lc.state, "victim"));
	CHECK_INT_EQ(launcher_finish(&lc), 0);
}

/* Send raw bytes (and maybe a descriptor) as one datagram. */
static void
send_raw(int fd, const uint8_t *buf, size_t len, int pass_fd)
{
	(void)datagram_send(fd, buf, len, pass_fd, 0);
}

/* A well-formed payload of a launcher-bound type, with the ids at their right length. */
static size_t
good_payload(uint32_t type, uint8_t *payload, unsigned *ret_n_fds)
{
	*ret_n_fds = 0;
	switch (type) {
	case IPC_GRAIN_STORAGE_CREATE:
	case IPC_GRAIN_STORAGE_DELETE:
		memcpy(payload, good_id, GRAIN_ID_LEN);
		return sizeof(struct ipc_grain);
	case IPC_PACKAGE_DELETE:
		memcpy(payload, good_package_id, PACKAGE_ID_LEN);
		return sizeof(struct ipc_package);
	case IPC_PACKAGE_INSTALL:
		*ret_n_fds = 1;
		return 0;
	case IPC_GRAIN_START:
		memcpy(payload, good_id, GRAIN_ID_LEN);
		memcpy(payload + GRAIN_ID_LEN, good_package_id, PACKAGE_ID_LEN);
		return sizeof(struct ipc_grain_start);
	case IPC_GRAIN_STOP:
	case IPC_GRAIN_STATUS:
	case IPC_GRAIN_LOG_OPEN:
		memcpy(payload, good_id, GRAIN_ID_LEN);
		return sizeof(struct ipc_grain);
	default:
		return 0; /* PING, and types that never travel to the launcher */
	}
}

TEST(launcher_refuses_a_compromised_front)
{
	uint8_t buf[IPC_MESSAGE_MAX * 2] = { 0 }, payload[IPC_MESSAGE_MAX];
	size_t n, refused = 0, cases = 0;

	if (geteuid() != 0)
		SKIP("the launcher checks that grains/ is owned by the user it runs as: run as "
		     "root");

	/* Every message type, each broken in every way: each must end the connection. */
	for (uint32_t type = 0; type <= _IPC_TYPE_MAX + 1; type++) {
		for (int variant = 0; variant < 7; variant++) {
			struct launcher_child lc;
			struct ipc_message reply;
			unsigned n_fds;
			size_t size;
			int pass_fd = -1;

			memset(payload, 0, sizeof(payload));
			size = good_payload(type, payload, &n_fds);
			switch (variant) {
			case 0: /* payload of the wrong length (none where one is due, or half) */
				n = encode_sized(buf, type, 1, payload, size, size ? size / 2 : 8);
				break;
			case 1: /* trailing bytes */
				n = encode_sized(buf, type, 1, payload, size, size + 1);
				break;
			case 2: /* path traversal in the id (a reply type's payload elsewhere) */
				memset(payload, '.', sizeof(payload));
				memcpy(payload, "../", 3);
				n = encode_sized(buf, type, 1, payload, sizeof(payload),
						 size ? size : sizeof(struct ipc_error));
				break;
			case 3: /* length field larger than the datagram */
				n = encode_sized(buf, type, 1, payload, size, size);
				((struct ipc_header *)buf)->length = 1000;
				break;
			case 4: /* oversized datagram */
				memset(buf, 'a', sizeof(buf));
				n = encode_sized(buf, type, 1, NULL, 0, 0);
				n = IPC_MESSAGE_MAX + 100;
				break;
			case 5: /* a descriptor where none belongs, or none where one does */
				n = encode_sized(buf, type, 1, payload, size, size);
				pass_fd = n_fds ? -1 : STDIN_FILENO;
				break;
			default: /* uppercase hex: ids have one spelling */
				for (size_t i = 0; i < size; i++)
					if (payload[i] >= 'a' && payload[i] <= 'f')
						payload[i] = (uint8_t)(payload[i] - 'a' + 'A');
				n = encode_sized(buf, type, 1, payload, size, size ? size : 3);
				break;
			}
			if (variant != 5 && n_fds)
				pass_fd = STDIN_FILENO;
			CHECK_OK(launcher_start(&lc));
			send_raw(lc.fd, buf, n, pass_fd);
			cases++;
			/* Refused means: no answer, the launcher drops the connection (exit 1). */
			if (ipc_receive(lc.fd, IPC_TO_FRONT, &reply) < 0 &&
			    launcher_finish(&lc) == 1)
				refused++;
			else {
				printf("#   type %u variant %d was not refused\n", type, variant);
				(void)launcher_finish(&lc);
			}
		}
	}
	CHECK_UINT_EQ(refused, cases);
}

TEST(launcher_installs_only_regular_files_and_valid_packages)
{
	struct launcher_child lc;
	struct ipc_message reply;
	struct ipc_package pkg;
	char junk[] = "/tmp/test-ipc-junk-XXXXXX";
	int pipe_fds[2], fd;

	if (geteuid() != 0)
		SKIP("the launcher runs as root: run as root");
	CHECK_OK(launcher_start(&lc));
	/* A device or a pipe from front could never end: refused before a read. */
	fd = open("/dev/zero", O_RDONLY | O_CLOEXEC);
	CHECK_ERR(ipc_call_fd(lc.fd, IPC_PACKAGE_INSTALL, NULL, 0, fd, &reply), EBADF);
	close(fd);
	CHECK(pipe(pipe_fds) == 0);
	CHECK_ERR(ipc_call_fd(lc.fd, IPC_PACKAGE_INSTALL, NULL, 0, pipe_fds[0], &reply), EBADF);
	close(pipe_fds[0]);
	close(pipe_fds[1]);
	/* Junk: the installer's refusal comes back with its message. */
	fd = mkstemp(junk);
	CHECK(fd >= 0);
	CHECK(write(fd, "not a package at all, just some bytes", 37) == 37);
	CHECK_ERR(ipc_call_fd(lc.fd, IPC_PACKAGE_INSTALL, NULL, 0, fd, &reply), EBADMSG);
	CHECK(strstr(reply.payload.error.message, "spk") != NULL);
	close(fd);
	unlink(junk);
	CHECK(!exists_in(lc.state, "packages/.spk-unpack-x") && exists_in(lc.state, "packages"));
	/* Deleting a package that is not there is fine; the launcher is still serving. */
	memcpy(pkg.package_id, good_package_id, PACKAGE_ID_LEN);
	CHECK_OK(ipc_call(lc.fd, IPC_PACKAGE_DELETE, &pkg, sizeof(pkg), &reply));
	CHECK_OK(ipc_call(lc.fd, IPC_PING, NULL, 0, &reply));
	CHECK_INT_EQ(launcher_finish(&lc), 0);
}
