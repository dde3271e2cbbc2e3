/* SPDX-License-Identifier: MIT */
/*
 * grain-init.c: pid 1 of every grain. Statically linked: the package it runs
 * in may carry no libc at all. docs/grain-init.md is its manual.
 *
 * It starts the app, forwards termination signals to it, reaps every zombie
 * (as pid 1 of a pid namespace, or as a child subreaper elsewhere), and exits
 * with the app's status. With a control socket (--control-fd) it is also the
 * grain's connection broker: front sends CONNECT, grain-init connect()s to
 * 127.0.0.1:PORT inside the grain's network namespace and sends the
 * connected socket back (grain-protocol.h). With a log fd (--log-fd) the
 * app's stdout and stderr become the capped grain log (grain-init-log.c).
 *
 * The app's life, as front sees it:
 *
 *	STARTING  the app runs; grain-init tries its port (1 ms, doubling to
 *	          10 ms) until it accepts; CONNECTs wait
 *	READY     the port accepted: each CONNECT is a non-blocking connect()
 *	STOPPING  front closed the socket, or the port never accepted within
 *	          --start-timeout: SIGTERM, SIGKILL after --stop-timeout
 *	(gone)    the app exited: unanswered CONNECTs get an ERROR, front gets
 *	          EXITED, the log gets the app's last words, grain-init exits
 *
 * One thread, one poll() loop; signals arrive on a signalfd. Each iteration
 * does bounded work: the signals, the connects that completed, up to
 * CONTROL_BATCH messages from front, the timers, then one step of the log
 * (GRAIN_LOG_CHUNK bytes of output, or one step of a cut). A flooding app
 * therefore costs a CONNECT at most one log step of latency, and the app
 * blocks on its pipe rather than grain-init growing. Answers to front wait
 * in their request slot until the socket takes them, so grain-init never
 * blocks on a slow front either; with every slot busy it stops reading
 * requests until answers drain.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "grains/grain-init-internal.h"
#include "grains/grain-protocol.h"
#include "common/banned.h"

/* CONNECTs (and STATUSes) held at once, answered or not yet sent: 256 sockets at most. */
#define MAX_REQUESTS	   256
/* Messages read from front per loop iteration. */
#define CONTROL_BATCH	   32
/* A connect() to the app's listening port that takes longer has a full backlog. */
#define CONNECT_TIMEOUT_MS 10000
#define PROBE_DELAY_MIN_MS 1
#define PROBE_DELAY_MAX_MS 10
/* At exit: how long the last answers and EXITED may wait for a full socket. */
#define FLUSH_TIMEOUT_MS   5000
/* At exit: how much of the app's remaining output goes to the log. */
#define LOG_DRAIN_MAX	   (4 << 20)

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static int arg_control_fd = -EBADF;
static int arg_log_fd = -EBADF;
static uint16_t arg_port;
static uint64_t arg_start_timeout_ms = 30000;
static uint64_t arg_stop_timeout_ms = 5000;
static uint64_t arg_log_max = 1 << 20;

enum request_state {
	REQUEST_FREE,
	REQUEST_WAITING,    /* a CONNECT while the app starts */
	REQUEST_CONNECTING, /* its connect() is in progress */
	REQUEST_ANSWERED,   /* the answer waits for room on the control socket */
};

struct request {
	enum request_state state;
	uint32_t id;
	uint32_t reply;	   /* ANSWERED: the message type */
	int fd;		   /* CONNECTING, or ANSWERED with CONNECTED: the socket (owned) */
	uint64_t deadline; /* CONNECTING: CLOCK_MONOTONIC ms */
	union {
		struct grain_msg_error error;
		struct grain_msg_state state;
	} payload;
};

struct grain_init {
	pid_t app;
	enum grain_app_state state;
	uint64_t started_ms;
	uint32_t ready_ms;
	int signal_fd;
	int control;	      /* the control socket (borrowed), -EBADF once front is gone */
	bool control_full;    /* the last send found no room: wait for POLLOUT */
	bool state_event;     /* a STATE with id 0 is due (the state changed) */
	int probe;	      /* STARTING: the connect() trying the port, or -EBADF */
	uint64_t probe_at;    /* STARTING: the next try, when probe is -EBADF */
	uint64_t probe_delay; /* ms */
	uint64_t kill_at;     /* STOPPING: when SIGKILL follows SIGTERM */
	bool killed;	      /* STOPPING: SIGKILL was sent */
	bool reaped;	      /* the app is gone: its pid may be another process's now */
	struct request requests[MAX_REQUESTS];
	struct grain_log log;
};

static void
help(void)
{
	printf("Usage: grain-init [OPTION]... [--] CMD [ARG]...\n"
	       "Run CMD as the app of a grain: forward signals to it, reap zombies,\n"
	       "exit with its status (128+N when signal N killed it).\n"
	       "\n"
	       "      --control-fd FD       be the grain's connection broker on this\n"
	       "                            SOCK_SEQPACKET socket (docs/grain-init.md)\n"
	       "      --port PORT           the app's port on 127.0.0.1 (with --control-fd)\n"
	       "      --start-timeout TIME  stop the app if its port does not accept\n"
	       "                            within TIME (default 30s)\n"
	       "      --stop-timeout TIME   SIGKILL this long after SIGTERM (default 5s)\n"
	       "      --log-fd FD           write the app's stdout and stderr to FD as\n"
	       "                            timestamped lines\n"
	       "      --log-max SIZE        cut the log (a regular file) to its newest half\n"
	       "                            when it grows past SIZE (default 1M)\n"
	       "  -h, --help                show this help\n"
	       "      --version             show the version\n"
	       "\n"
	       "The sandbox library runs 'grain-init -- ARGV...': options may also lead\n"
	       "ARGV, ended by a second '--' (grain-init -- --port 8000 ... -- CMD).\n"
	       "With --control-fd or --log-fd, CMD gets only fds 0, 1 and 2.\n");
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int
exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAILURE;
}

/* "exited with status 3", "was killed by signal 11 (SEGV)" */
static const char *
describe_status(int status, char *buf, size_t size)
{
	if (WIFSIGNALED(status)) {
		const char *name = sigabbrev_np(WTERMSIG(status));

		(void)snprintf(buf, size, "was killed by signal %d (%s)", WTERMSIG(status),
			       name ? name : "?");
	} else
		(void)snprintf(buf, size, "exited with status %d", exit_status(status));
	return buf;
}

static int
parse_fd_option(const char *name, const char *value, int *ret)
{
	uint32_t u;
	int r;

	r = parse_uint32(value, &u);
	if (r < 0 || u < 3 || u > 65535)
		return log_error_errno(r < 0 ? r : ERANGE, "Bad --%s '%s' (a descriptor from 3 up)",
				       name, value);
	if (fcntl((int)u, F_GETFD) < 0)
		return log_error_errno(errno, "Bad --%s %u: %m", name, u);
	*ret = (int)u;
	return 0;
}

/* Parse argv from optind (0: from the start); returns 1 to run, 0 to exit 0, < 0 on error. */
static int
parse_argv(int argc, char *argv[])
{
	enum {
		ARG_VERSION = 0x100,
		ARG_CONTROL_FD,
		ARG_PORT,
		ARG_START_TIMEOUT,
		ARG_STOP_TIMEOUT,
		ARG_LOG_FD,
		ARG_LOG_MAX,
	};
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{ "control-fd", required_argument, NULL, ARG_CONTROL_FD },
		{ "port", required_argument, NULL, ARG_PORT },
		{ "start-timeout", required_argument, NULL, ARG_START_TIMEOUT },
		{ "stop-timeout", required_argument, NULL, ARG_STOP_TIMEOUT },
		{ "log-fd", required_argument, NULL, ARG_LOG_FD },
		{ "log-max", required_argument, NULL, ARG_LOG_MAX },
		{},
	};
	int c, r;

	opterr = 0; /* our messages, not getopt's (it would name argv[0] "--") */
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("grain-init %s\n", GRANARY_VERSION);
			return 0;
		case ARG_CONTROL_FD:
			r = parse_fd_option("control-fd", optarg, &arg_control_fd);
			if (r < 0)
				return r;
			break;
		case ARG_PORT:
			r = parse_port(optarg, false, &arg_port);
			if (r < 0)
				return log_error_errno(r, "Bad --port '%s' (1 to 65535)", optarg);
			break;
		case ARG_START_TIMEOUT:
			r = parse_duration_ms(optarg, &arg_start_timeout_ms);
			if (r < 0 || arg_start_timeout_ms == 0 || arg_start_timeout_ms > 3600000)
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --start-timeout '%s' (e.g. 500ms, 30s; "
						       "at most 1h)",
						       optarg);
			break;
		case ARG_STOP_TIMEOUT:
			r = parse_duration_ms(optarg, &arg_stop_timeout_ms);
			if (r < 0 || arg_stop_timeout_ms > 3600000)
				return log_error_errno(
					r < 0 ? r : ERANGE,
					"Bad --stop-timeout '%s' (e.g. 0, 5s; at most "
					"1h)",
					optarg);
			break;
		case ARG_LOG_FD:
			r = parse_fd_option("log-fd", optarg, &arg_log_fd);
			if (r < 0)
				return r;
			break;
		case ARG_LOG_MAX:
			r = parse_size(optarg, &arg_log_max);
			if (r < 0 || arg_log_max < 4096 || arg_log_max > (1ULL << 40))
				return log_error_errno(r < 0 ? r : ERANGE,
						       "Bad --log-max '%s' (e.g. 1M, at least 4K)",
						       optarg);
			break;
		default:
			return log_error_errno(EINVAL,
					       "Unknown option or missing value '%s'; try "
					       "'grain-init --help'",
					       argv[optind - 1]);
		}
	}
	return 1;
}

/* ---- connections to the app ---------------------------------------------- */

/* A non-blocking connect() to 127.0.0.1:PORT: 0 connected, 1 in progress, or -errno. */
static int
app_connect(int *ret_fd)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(arg_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	_cleanup_close_ int fd = -EBADF;

	fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno != EINPROGRESS)
			return negative_errno();
		*ret_fd = TAKE_FD(fd);
		return 1;
	}
	*ret_fd = TAKE_FD(fd);
	return 0;
}

/* The outcome of a connect() in progress that poll() reported: 0 or -errno. */
static int
connect_result(int fd)
{
	int error = 0;
	socklen_t len = sizeof(error);

	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) < 0)
		return negative_errno();
	return error > 0 ? -error : 0;
}

/* ---- requests and answers ------------------------------------------------ */

static size_t
requests_count(const struct grain_init *g, enum request_state state)
{
	size_t n = 0;

	for (size_t i = 0; i < MAX_REQUESTS; i++)
		n += g->requests[i].state == state;
	return n;
}

static struct request *
request_alloc(struct grain_init *g)
{
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		if (g->requests[i].state == REQUEST_FREE)
			return &g->requests[i];
	return NULL;
}

static void
request_free(struct request *req)
{
	req->fd = safe_close(req->fd);
	req->state = REQUEST_FREE;
}

static void
answer_connected(struct request *req, int fd)
{
	if (req->fd != fd)
		req->fd = safe_close(req->fd);
	req->fd = fd;
	req->reply = GRAIN_MSG_CONNECTED;
	req->state = REQUEST_ANSWERED;
}

static void answer_error(struct request *req, int error, const char *format, ...) _printf_(3, 4);
static void
answer_error(struct request *req, int error, const char *format, ...)
{
	va_list ap;

	req->fd = safe_close(req->fd);
	memset(&req->payload.error, 0, sizeof(req->payload.error));
	req->payload.error.error = error < 0 ? -error : error;
	va_start(ap, format);
	(void)vsnprintf(req->payload.error.message, sizeof(req->payload.error.message), format, ap);
	va_end(ap);
	req->reply = GRAIN_MSG_ERROR;
	req->state = REQUEST_ANSWERED;
}

static struct grain_msg_state
current_state(const struct grain_init *g)
{
	return (struct grain_msg_state){
		.protocol = GRAIN_PROTOCOL_VERSION,
		.state = g->state,
		.ready_ms = g->ready_ms,
		.pending = (uint32_t)(requests_count(g, REQUEST_WAITING) +
				      requests_count(g, REQUEST_CONNECTING)),
	};
}

static void
answer_state(const struct grain_init *g, struct request *req)
{
	req->payload.state = current_state(g);
	req->reply = GRAIN_MSG_STATE;
	req->state = REQUEST_ANSWERED;
}

/* Answer every CONNECT not yet answered with the same error. */
static void answer_all(struct grain_init *g, int error, const char *format, ...) _printf_(3, 4);
static void
answer_all(struct grain_init *g, int error, const char *format, ...)
{
	char message[GRAIN_MSG_TEXT_MAX];
	va_list ap;

	va_start(ap, format);
	(void)vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);
	for (size_t i = 0; i < MAX_REQUESTS; i++) {
		struct request *req = &g->requests[i];

		if (req->state == REQUEST_WAITING || req->state == REQUEST_CONNECTING)
			answer_error(req, error, "%s", message);
	}
}

/* Start connecting for req; it is answered at once if the outcome is known. */
static void
request_connect(struct request *req, uint64_t now)
{
	int fd = -EBADF, r;

	r = app_connect(&fd);
	if (r == 0)
		answer_connected(req, fd);
	else if (r > 0) {
		req->fd = fd;
		req->deadline = now + CONNECT_TIMEOUT_MS;
		req->state = REQUEST_CONNECTING;
	} else
		answer_error(req, r, "Failed to connect to the app on 127.0.0.1:%u: %s",
			     (unsigned)arg_port, strerror(-r));
}

/* Front is gone: nothing can be answered any more, and the grain stops. */
static void stop_app(struct grain_init *g, const char *why);

static void
control_lost(struct grain_init *g)
{
	if (g->control < 0)
		return;
	(void)close(g->control);
	g->control = -EBADF;
	g->control_full = false;
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		if (g->requests[i].state != REQUEST_FREE)
			request_free(&g->requests[i]);
	stop_app(g, "the control socket closed (the grain is stopping)");
}

/* Send one message; false when it must wait (full) or cannot go (front gone). */
static bool
send_to_front(struct grain_init *g, uint32_t type, uint32_t id, const void *payload, size_t size,
	      int fd)
{
	int r;

	r = grain_msg_send(g->control, type, id, payload, size, fd, MSG_DONTWAIT);
	if (r == -EAGAIN || r == -ENOBUFS) {
		g->control_full = true;
		return false;
	}
	if (r < 0) {
		if (r != -EPIPE && r != -ECONNRESET)
			log_warning_errno(r, "Failed to send %s to front: %m",
					  grain_msg_type_name(type));
		control_lost(g);
		return false;
	}
	return true;
}

/* Send req's answer: 0, -EAGAIN (no room), or another -errno. */
static int
send_answer(struct grain_init *g, struct request *req)
{
	const void *payload = NULL;
	size_t size = 0;
	int r;

	if (req->reply == GRAIN_MSG_ERROR) {
		payload = &req->payload.error;
		size = sizeof(req->payload.error);
	} else if (req->reply == GRAIN_MSG_STATE) {
		payload = &req->payload.state;
		size = sizeof(req->payload.state);
	}
	r = grain_msg_send(g->control, req->reply, req->id, payload, size, req->fd, MSG_DONTWAIT);
	if (r == -ENOBUFS)
		r = -EAGAIN;
	if (r < 0 && r != -EAGAIN && r != -EPIPE && r != -ECONNRESET &&
	    req->reply == GRAIN_MSG_CONNECTED) {
		/* The socket cannot travel (ETOOMANYREFS...): say so instead. */
		answer_error(req, r, "Failed to pass the connection to front: %s", strerror(-r));
		return send_answer(g, req);
	}
	return r;
}

/*
 * Send what waits until the socket is full: a state change first (READY
 * comes before the sockets it lets through), then the answers in slot order.
 */
static void
flush_answers(struct grain_init *g)
{
	if (g->control >= 0 && !g->control_full && g->state_event) {
		struct grain_msg_state s = current_state(g);

		if (!send_to_front(g, GRAIN_MSG_STATE, 0, &s, sizeof(s), -EBADF))
			return;
		g->state_event = false;
	}
	for (size_t i = 0; i < MAX_REQUESTS && g->control >= 0 && !g->control_full; i++) {
		struct request *req = &g->requests[i];
		int r;

		if (req->state != REQUEST_ANSWERED)
			continue;
		r = send_answer(g, req);
		if (r == -EAGAIN) {
			g->control_full = true;
			return;
		}
		if (r < 0) {
			if (r != -EPIPE && r != -ECONNRESET)
				log_warning_errno(r, "Failed to answer front: %m");
			control_lost(g);
			return;
		}
		request_free(req);
	}
}

/* ---- the app's life ------------------------------------------------------ */

static void
set_state(struct grain_init *g, enum grain_app_state state)
{
	g->state = state;
	g->state_event = g->control >= 0;
}

static void
stop_app(struct grain_init *g, const char *why)
{
	/* Once the app is reaped its pid may be another process's: nothing to stop. */
	if (g->state == GRAIN_APP_STOPPING || g->reaped)
		return;
	grain_log_note(&g->log, LOG_INFO, "stopping the app: %s", why);
	set_state(g, GRAIN_APP_STOPPING);
	g->probe = safe_close(g->probe);
	answer_all(g, ESHUTDOWN, "The grain is stopping: %s", why);
	(void)kill(g->app, SIGTERM);
	g->kill_at = now_ms() + arg_stop_timeout_ms;
}

/* The port accepted on fd (the probe's connection): the first waiting CONNECT gets it. */
static void
became_ready(struct grain_init *g, int fd, uint64_t now)
{
	g->ready_ms = (uint32_t)MIN(now - g->started_ms, (uint64_t)UINT32_MAX);
	set_state(g, GRAIN_APP_READY);
	grain_log_note(&g->log, LOG_DEBUG, "the app accepts on 127.0.0.1:%u, %u ms after its start",
		       (unsigned)arg_port, g->ready_ms);
	for (size_t i = 0; i < MAX_REQUESTS; i++) {
		struct request *req = &g->requests[i];

		if (req->state != REQUEST_WAITING)
			continue;
		if (fd >= 0) {
			answer_connected(req, fd);
			fd = -EBADF;
		} else
			request_connect(req, now);
	}
	/* Nobody waited: the app sees a connection closed without a byte. */
	(void)safe_close(fd);
}

static void
probe_start(struct grain_init *g, uint64_t now)
{
	int fd = -EBADF, r;

	r = app_connect(&fd);
	if (r == 0)
		became_ready(g, fd, now);
	else if (r > 0)
		g->probe = fd;
	else {
		g->probe_at = now + g->probe_delay;
		g->probe_delay = MIN(g->probe_delay * 2, (uint64_t)PROBE_DELAY_MAX_MS);
	}
}

static void
probe_done(struct grain_init *g, uint64_t now)
{
	int fd = TAKE_FD(g->probe);

	if (connect_result(fd) == 0) {
		became_ready(g, fd, now);
		return;
	}
	(void)close(fd);
	g->probe_at = now + g->probe_delay;
	g->probe_delay = MIN(g->probe_delay * 2, (uint64_t)PROBE_DELAY_MAX_MS);
}

/* Read the signalfd: forward, reap. Returns true when the app was reaped (*ret_status). */
static bool
handle_signals(struct grain_init *g, int *ret_status)
{
	struct signalfd_siginfo si;
	bool reaped = false;

	while (read(g->signal_fd, &si, sizeof(si)) == (ssize_t)sizeof(si)) {
		if (si.ssi_signo != SIGCHLD) {
			if (!g->reaped)
				(void)kill(g->app, (int)si.ssi_signo);
			continue;
		}
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);

			if (pid <= 0)
				break;
			if (pid == g->app) {
				*ret_status = status;
				g->reaped = reaped = true;
			}
		}
	}
	return reaped;
}

static void
handle_message(struct grain_init *g, const struct grain_msg *m, uint64_t now)
{
	struct request *req = request_alloc(g);

	if (!req)
		return; /* not reached: the loop reads only with a free slot */
	req->id = m->header.id;
	req->fd = -EBADF;
	switch (m->header.type) {
	case GRAIN_MSG_STATUS:
		answer_state(g, req);
		break;
	case GRAIN_MSG_CONNECT:
		if (g->state == GRAIN_APP_READY)
			request_connect(req, now);
		else if (g->state == GRAIN_APP_STARTING)
			req->state = REQUEST_WAITING;
		else
			answer_error(req, ESHUTDOWN, "The grain is stopping");
		break;
	default:
		req->state = REQUEST_FREE; /* the decoder lets nothing else through */
		break;
	}
}

/* Up to CONTROL_BATCH messages, while a slot is free for each one's answer. */
static void
handle_control(struct grain_init *g, uint64_t now)
{
	for (int i = 0; i < CONTROL_BATCH && g->control >= 0 && request_alloc(g); i++) {
		struct grain_msg m;
		int r;

		r = grain_msg_receive(g->control, GRAIN_TO_INIT, MSG_DONTWAIT, &m);
		if (r == -EAGAIN)
			return;
		if (r == -EBADMSG) {
			/* front's bug, not a reason to stop the grain: drop it, say so. */
			grain_log_note(&g->log, LOG_WARNING,
				       "dropped a malformed message on the control socket");
			continue;
		}
		if (r < 0) {
			if (r != -ECONNRESET)
				log_warning_errno(r, "Failed to read the control socket: %m");
			control_lost(g);
			return;
		}
		handle_message(g, &m, now);
	}
}

/*
 * Requests front sent that grain-init has not read, once the app is gone:
 * each gets the answer the pending ones got. Nothing may stay unread: the
 * kernel turns unread data at close into ECONNRESET for front's next read.
 * Returns true when nothing more waits (or front is gone).
 */
static bool
answer_late_requests(struct grain_init *g, int error, const char *why)
{
	struct request *req;

	while (g->control >= 0 && (req = request_alloc(g))) {
		struct grain_msg m;
		int r;

		r = grain_msg_receive(g->control, GRAIN_TO_INIT, MSG_DONTWAIT, &m);
		if (r == -EAGAIN)
			return true;
		if (r == -EBADMSG)
			continue;
		if (r < 0) {
			control_lost(g);
			break;
		}
		req->id = m.header.id;
		req->fd = -EBADF;
		if (m.header.type == GRAIN_MSG_STATUS)
			answer_state(g, req);
		else
			answer_error(req, error, "%s", why);
	}
	return g->control < 0;
}

/* The app is gone: answer, report, keep its last words; returns grain-init's exit status. */
static int
app_gone(struct grain_init *g, int status)
{
	struct grain_msg_exited exited = { .code = exit_status(status) };
	char how[64], where[64] = "", why[GRAIN_MSG_TEXT_MAX];
	int error = ECONNABORTED;
	uint64_t deadline;

	describe_status(status, how, sizeof(how));
	if (WIFSIGNALED(status))
		exited = (struct grain_msg_exited){ .code = -1, .signal = WTERMSIG(status) };
	if (g->state == GRAIN_APP_STARTING && arg_control_fd >= 0) {
		error = ESRCH;
		(void)snprintf(where, sizeof(where), " before listening on 127.0.0.1:%u",
			       (unsigned)arg_port);
	}
	(void)snprintf(why, sizeof(why), "The app %s%s", how, where);
	answer_all(g, error, "%s", why);
	g->probe = safe_close(g->probe);
	g->state_event = false;

	/* Its last output first: the reason it died is usually there. */
	grain_log_drain(&g->log, LOG_DRAIN_MAX);
	grain_log_note(&g->log, LOG_DEBUG, "the app %s%s", how, where);

	/* Front gets every answer, then EXITED, unless it stops reading. */
	deadline = now_ms() + FLUSH_TIMEOUT_MS;
	while (g->control >= 0) {
		bool drained = answer_late_requests(g, error, why);
		uint64_t now;

		g->control_full = false;
		flush_answers(g);
		if (g->control < 0)
			break;
		if (drained && !g->control_full &&
		    send_to_front(g, GRAIN_MSG_EXITED, 0, &exited, sizeof(exited), -EBADF))
			break;
		if (g->control < 0)
			break;
		now = now_ms();
		if (now >= deadline) {
			log_warning("front did not read its last answers within %d ms",
				    FLUSH_TIMEOUT_MS);
			break;
		}
		(void)poll(&(struct pollfd){ .fd = g->control,
					     .events = g->control_full ? POLLOUT : POLLIN },
			   1, (int)(deadline - now));
	}
	grain_log_close(&g->log);
	return exit_status(status);
}

/* Deadlines: the next probe, the start timeout, connects, SIGKILL. */
static void
handle_timers(struct grain_init *g, uint64_t now)
{
	if (g->state == GRAIN_APP_STARTING && arg_control_fd >= 0) {
		if (now >= g->started_ms + arg_start_timeout_ms) {
			char why[128];

			(void)snprintf(why, sizeof(why),
				       "it did not listen on 127.0.0.1:%u within %llu ms",
				       (unsigned)arg_port,
				       (unsigned long long)arg_start_timeout_ms);
			answer_all(g, ETIMEDOUT,
				   "The app did not listen on 127.0.0.1:%u within "
				   "%llu ms",
				   (unsigned)arg_port, (unsigned long long)arg_start_timeout_ms);
			stop_app(g, why);
		} else if (g->probe < 0 && now >= g->probe_at)
			probe_start(g, now);
	}
	for (size_t i = 0; i < MAX_REQUESTS; i++) {
		struct request *req = &g->requests[i];

		if (req->state == REQUEST_CONNECTING && now >= req->deadline)
			answer_error(req, ETIMEDOUT,
				     "The app did not accept on 127.0.0.1:%u within %d ms",
				     (unsigned)arg_port, CONNECT_TIMEOUT_MS);
	}
	if (g->state == GRAIN_APP_STOPPING && !g->killed && !g->reaped && now >= g->kill_at) {
		grain_log_note(&g->log, LOG_WARNING,
			       "the app did not exit within %llu ms of SIGTERM; sending SIGKILL",
			       (unsigned long long)arg_stop_timeout_ms);
		(void)kill(g->app, SIGKILL);
		g->killed = true;
	}
}

/* Milliseconds until the earliest deadline, -1 for none. */
static int
poll_timeout(const struct grain_init *g, uint64_t now)
{
	uint64_t next = UINT64_MAX;

	if (grain_log_busy(&g->log))
		return 0;
	if (g->state == GRAIN_APP_STARTING && arg_control_fd >= 0) {
		next = g->started_ms + arg_start_timeout_ms;
		if (g->probe < 0)
			next = MIN(next, g->probe_at);
	}
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		if (g->requests[i].state == REQUEST_CONNECTING)
			next = MIN(next, g->requests[i].deadline);
	if (g->state == GRAIN_APP_STOPPING && !g->killed)
		next = MIN(next, g->kill_at);
	if (next == UINT64_MAX)
		return -1;
	return next <= now ? 0 : (int)MIN(next - now, (uint64_t)60000);
}

/* The loop; returns grain-init's exit status once the app is gone. */
static int
run(struct grain_init *g)
{
	enum { PFD_SIGNAL, PFD_CONTROL, PFD_LOG, PFD_PROBE, PFD_REQUESTS };
	struct pollfd pfd[PFD_REQUESTS + MAX_REQUESTS];
	struct request *pfd_request[MAX_REQUESTS];

	for (;;) {
		size_t n = PFD_REQUESTS, n_req = 0;
		uint64_t now = now_ms();
		int status;

		pfd[PFD_SIGNAL] = (struct pollfd){ .fd = g->signal_fd, .events = POLLIN };
		pfd[PFD_CONTROL] = (struct pollfd){
			.fd = g->control,
			.events = (request_alloc(g) ? POLLIN : 0) | (g->control_full ? POLLOUT : 0),
		};
		pfd[PFD_LOG] = (struct pollfd){
			.fd = grain_log_busy(&g->log) ? -1 : g->log.pipe,
			.events = POLLIN,
		};
		pfd[PFD_PROBE] = (struct pollfd){ .fd = g->probe, .events = POLLOUT };
		for (size_t i = 0; i < MAX_REQUESTS; i++)
			if (g->requests[i].state == REQUEST_CONNECTING) {
				pfd_request[n_req++] = &g->requests[i];
				pfd[n++] = (struct pollfd){ .fd = g->requests[i].fd,
							    .events = POLLOUT };
			}

		if (poll(pfd, n, poll_timeout(g, now)) < 0 && errno != EINTR) {
			log_error_errno(errno, "Failed to wait for events: %m");
			(void)kill(g->app, SIGKILL);
			return EXIT_FAILURE;
		}
		now = now_ms();

		if ((pfd[PFD_SIGNAL].revents & POLLIN) && handle_signals(g, &status))
			return app_gone(g, status);

		for (size_t i = 0; i < n_req; i++) {
			struct request *req = pfd_request[i];
			int r;

			if (!pfd[PFD_REQUESTS + i].revents || req->state != REQUEST_CONNECTING)
				continue;
			r = connect_result(req->fd);
			if (r == 0)
				answer_connected(req, req->fd);
			else
				answer_error(req, r,
					     "Failed to connect to the app on 127.0.0.1:%u: %s",
					     (unsigned)arg_port, strerror(-r));
		}
		if (g->probe >= 0 && pfd[PFD_PROBE].revents)
			probe_done(g, now);

		if (g->control >= 0) {
			short revents = pfd[PFD_CONTROL].revents;

			if (revents & POLLOUT)
				g->control_full = false;
			if (revents & POLLIN)
				handle_control(g, now);
			else if (revents & (POLLHUP | POLLERR))
				control_lost(g);
		}

		handle_timers(g, now);
		(void)grain_log_step(&g->log, pfd[PFD_LOG].revents != 0);
		if (g->control >= 0 && !g->control_full)
			flush_answers(g);
	}
}

int
main(int argc, char *argv[])
{
	static struct grain_init g;
	bool broker;
	sigset_t mask, old_mask;
	int first, log_write = -EBADF, type = 0, r;
	socklen_t len = sizeof(type);

	log_setup("grain-init");
	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
	first = optind;
	/*
	 * sandbox_start() runs "grain-init -- ARGV": options at the head of ARGV,
	 * ended by a second "--", are ours too (a command never starts with "--").
	 */
	if (first >= 2 && first < argc && strcmp(argv[first - 1], "--") == 0 &&
	    strncmp(argv[first], "--", 2) == 0 && argv[first][2] != '\0') {
		int base = first - 1;

		optind = 0;
		r = parse_argv(argc - base, argv + base);
		if (r <= 0)
			return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
		first = base + optind;
		if (strcmp(argv[first - 1], "--") != 0) {
			log_error("Options after '--' must end with a second '--' before the "
				  "command; try 'grain-init --help'");
			return EXIT_FAILURE;
		}
	}
	if (first >= argc) {
		log_error("No command given; try 'grain-init --help'");
		return EXIT_FAILURE;
	}
	if ((arg_control_fd >= 0) != (arg_port > 0)) {
		log_error("--control-fd and --port go together; try 'grain-init --help'");
		return EXIT_FAILURE;
	}
	if (arg_control_fd >= 0 && arg_control_fd == arg_log_fd) {
		log_error("--control-fd and --log-fd must be different descriptors");
		return EXIT_FAILURE;
	}
	if (arg_control_fd >= 0 &&
	    (getsockopt(arg_control_fd, SOL_SOCKET, SO_TYPE, &type, &len) < 0 ||
	     type != SOCK_SEQPACKET)) {
		log_error("--control-fd %d is not a SOCK_SEQPACKET socket", arg_control_fd);
		return EXIT_FAILURE;
	}
	broker = arg_control_fd >= 0 || arg_log_fd >= 0;

	/* g is static (its buffers are large): fields set one by one, no temporary copy. */
	g.app = -1;
	g.state = GRAIN_APP_STARTING;
	g.signal_fd = -EBADF;
	g.control = arg_control_fd;
	g.probe = -EBADF;
	g.probe_delay = PROBE_DELAY_MIN_MS;
	for (size_t i = 0; i < MAX_REQUESTS; i++)
		g.requests[i].fd = -EBADF;

	if (broker) {
		/*
		 * The app gets fds 0, 1 and 2 only: the control socket and the log
		 * (and anything else the launcher left) stay ours. And nothing of
		 * ours is readable through /proc by the app, which has our uid.
		 */
		if (close_range(3, ~0U, CLOSE_RANGE_CLOEXEC) < 0)
			return log_error_errno(errno, "Failed to mark fds close-on-exec: %m"),
			       EXIT_FAILURE;
		(void)prctl(PR_SET_DUMPABLE, 0, 0, 0, 0);
	}
	r = grain_log_open(&g.log, arg_log_fd, arg_log_max, &log_write);
	if (r < 0)
		return log_error_errno(r, "Bad --log-fd %d: it must be open for writing: %m",
				       arg_log_fd),
		       EXIT_FAILURE;

	/* Outside a pid namespace, orphans of the app still come to us. */
	if (getpid() != 1)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	/* SIGPIPE blocked, not ignored: a write to a closed pipe fails, and exec restores it. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &mask, &old_mask) < 0)
		return log_error_errno(errno, "Failed to block signals: %m"), EXIT_FAILURE;
	g.signal_fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	sigaddset(&mask, SIGPIPE);
	if (g.signal_fd < 0 || sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to set up signals: %m"), EXIT_FAILURE;

	g.started_ms = now_ms();
	g.probe_at = g.started_ms;
	g.app = fork();
	if (g.app < 0)
		return log_error_errno(errno, "Failed to fork: %m"), EXIT_FAILURE;
	if (g.app == 0) {
		(void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
		if (log_write >= 0 && (dup2(log_write, 1) < 0 || dup2(log_write, 2) < 0))
			_exit(127);
		execvp(argv[first], argv + first);
		log_error_errno(errno, "Failed to run '%s': %m", argv[first]);
		_exit(127);
	}
	(void)safe_close(log_write);
	return run(&g);
}
