/* SPDX-License-Identifier: MIT */
/*
 * proxy-harness: one of the two proxy engines, forwarding every request to
 * an app on 127.0.0.1:PORT through a keep-alive pool of its own: the event
 * loop (supervisor/front_loop.c, front's engine for plain HTTP; the default),
 * or with --engine mhd the libmicrohttpd engine (supervisor/front_proxy.c,
 * behind a daemon set up the way front runs it for TLS: a thread per
 * connection, upgrades allowed). For t0420 and for measuring the engines
 * against nginx; no grain manager, no sessions.
 *
 *   proxy-harness --upstream PORT [options]
 *
 * Prints "listening on 127.0.0.1:PORT" on stdout once it serves; SIGTERM or
 * SIGINT stops it (tunnels first) with status 0. A request with
 * "Host: harness.stats" is answered by the harness itself: the engines'
 * counters, the pool's size and which engine answered, as JSON. With the
 * event loop, a connection whose first request says "Host: harness.mhd" is
 * handed to a libmicrohttpd daemon with the other engine, as front hands the
 * shell's connections over; on a connection the loop serves, such a request
 * gets 421.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define POOL_MAX   256
#define STRIP_MAX  8
#define STATS_HOST "harness.stats"
#define MHD_HOST   "harness.mhd"

static uint16_t arg_upstream;
static uint16_t arg_port;
static unsigned arg_pool = 64;
static unsigned arg_connection_timeout = 60;
static size_t arg_stack_size = 256 * 1024;
static const char *arg_acquire_error;
static bool arg_mhd;
static const char *arg_strip[STRIP_MAX + 1];
static unsigned n_strip;
static struct proxy_params arg_params = {
	.user_id = "u-1",
	.username = "Alice",
	.permissions = "read,write",
	.session_id = "s-1",
	.forwarded_proto = "http",
	.frame_ancestors = "http://localhost:6080",
	.strip_cookies = arg_strip,
};

/* The pool: idle connections to the app, most recently used on top. */
static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static struct {
	int fd;
	unsigned flags; /* PROXY_FD_WATCHED */
} pool[POOL_MAX];
static unsigned pool_size;

static int
upstream_connect(int *ret_fd)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(arg_upstream),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		return -errno;
	*ret_fd = TAKE_FD(fd);
	return 0;
}

static int
pool_acquire(void *userdata, int *ret_fd, bool *ret_reused, char *error, size_t error_size)
{
	int r;

	(void)userdata;
	if (arg_acquire_error) {
		(void)snprintf(error, error_size, "%s", arg_acquire_error);
		return -EAGAIN;
	}
	pthread_mutex_lock(&pool_lock);
	if (pool_size > 0) {
		*ret_fd = pool[--pool_size].fd;
		*ret_reused = true;
		pthread_mutex_unlock(&pool_lock);
		return 0;
	}
	pthread_mutex_unlock(&pool_lock);
	r = upstream_connect(ret_fd);
	if (r < 0) {
		(void)snprintf(error, error_size, "The app could not be reached: %s", strerror(-r));
		return r;
	}
	*ret_reused = false;
	return 0;
}

static int
pool_acquire_nowait(void *userdata, int *ret_fd, unsigned *ret_flags)
{
	int r = -EWOULDBLOCK;

	(void)userdata;
	if (arg_acquire_error)
		return r; /* acquire() says why */
	pthread_mutex_lock(&pool_lock);
	if (pool_size > 0) {
		pool_size--;
		*ret_fd = pool[pool_size].fd;
		*ret_flags = PROXY_FD_REUSED | pool[pool_size].flags;
		r = 0;
	}
	pthread_mutex_unlock(&pool_lock);
	return r;
}

static void
pool_release(void *userdata, int fd, unsigned flags)
{
	(void)userdata;
	if (flags & PROXY_FD_REUSABLE) {
		pthread_mutex_lock(&pool_lock);
		if (pool_size < arg_pool) {
			pool[pool_size].fd = fd;
			pool[pool_size++].flags = flags & PROXY_FD_WATCHED;
			fd = -EBADF;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	(void)safe_close(fd);
}

static const struct proxy_upstream_ops pool_ops = {
	.acquire = pool_acquire,
	.acquire_nowait = pool_acquire_nowait,
	.release = pool_release,
};

struct harness_request {
	char *raw_uri;		     /* owned: the target as the client sent it */
	struct proxy_request *proxy; /* owned */
	unsigned calls;
};

static void *
uri_logged(void *cls, const char *uri, struct MHD_Connection *connection)
{
	struct harness_request *req = calloc(1, sizeof(*req));

	(void)cls;
	(void)connection;
	if (req)
		req->raw_uri = strdup(uri);
	return req;
}

/* The engine's counters and the pool's size, as JSON, into body. */
static int
stats_json(char *body, size_t size, const char *engine)
{
	struct proxy_stats s;
	unsigned idle;

	proxy_stats_get(&s);
	pthread_mutex_lock(&pool_lock);
	idle = pool_size;
	pthread_mutex_unlock(&pool_lock);
	return snprintf(
		body, size,
		"{\"requests\": %" PRIu64 ", \"upstream_fresh\": %" PRIu64
		", \"upstream_reused\": %" PRIu64 ", \"upstream_stale\": %" PRIu64
		", \"retries\": %" PRIu64 ", \"refused\": %" PRIu64 ", \"failed\": %" PRIu64
		", \"truncated\": %" PRIu64 ", \"tunnels\": %" PRIu64
		", \"tunnels_total\": %" PRIu64 ", \"pool_idle\": %u, \"engine\": \"%s\"}\n",
		s.requests, s.upstream_fresh, s.upstream_reused, s.upstream_stale, s.retries,
		s.refused, s.failed, s.truncated, s.tunnels, s.tunnels_total, idle, engine);
}

static enum MHD_Result
answer_stats(struct MHD_Connection *connection)
{
	struct MHD_Response *response;
	char body[1024];
	enum MHD_Result result;
	int len = stats_json(body, sizeof(body), "mhd");

	response = MHD_create_response_from_buffer((size_t)len, body, MHD_RESPMEM_MUST_COPY);
	if (!response)
		return MHD_NO;
	(void)MHD_add_response_header(response, "Content-Type", "application/json");
	result = MHD_queue_response(connection, MHD_HTTP_OK, response);
	MHD_destroy_response(response);
	return result;
}

static enum MHD_Result
handle(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
       const char *version, const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct harness_request *req = *req_cls;
	const char *host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, "Host");
	struct proxy_params params = arg_params;

	(void)cls;
	(void)url;
	if (!req || !req->raw_uri)
		return MHD_NO;
	req->calls++;
	if (host && strcmp(host, STATS_HOST) == 0) {
		*upload_data_size = 0;
		/* The second call: queueing on the first would cost keep-alive. */
		return req->calls == 1 ? MHD_YES : answer_stats(connection);
	}
	params.ops = &pool_ops;
	params.forwarded_host = host;
	return proxy_handle(&req->proxy, &params, connection, req->raw_uri, method, version,
			    upload_data, upload_data_size);
}

static void
completed(void *cls, struct MHD_Connection *connection, void **req_cls,
	  enum MHD_RequestTerminationCode toe)
{
	struct harness_request *req = *req_cls;

	(void)cls;
	(void)connection;
	if (!req)
		return;
	proxy_completed(req->proxy, toe);
	free(req->raw_uri);
	free(req);
	*req_cls = NULL;
}

/* ---- the event loop ---- */

struct harness_route {
	struct proxy_params params;
	char host[256];
};

static int
loop_route(void *userdata, const struct http_request_head *head, const struct sockaddr *peer,
	   bool may_block, struct loop_route *ret)
{
	struct harness_route *r;

	(void)userdata;
	(void)peer;
	(void)may_block;
	if (head->host && strcmp(head->host, MHD_HOST) == 0) {
		/* Not on a connection the loop serves (front: the shell's host). */
		char *body = strdup("misdirected\n");

		if (!body)
			return -ENOMEM;
		*ret = (struct loop_route){
			.status = MHD_HTTP_MISDIRECTED_REQUEST,
			.content_type = "text/plain",
			.body = body,
			.body_len = strlen(body),
			.close = true,
		};
		return 0;
	}
	if (head->host && strcmp(head->host, STATS_HOST) == 0) {
		char *body = malloc(1024);

		if (!body)
			return -ENOMEM;
		*ret = (struct loop_route){
			.status = 200,
			.content_type = "application/json",
			.body = body,
			.body_len = (size_t)stats_json(body, 1024, "loop"),
		};
		return 0;
	}
	r = calloc(1, sizeof(*r));
	if (!r)
		return -ENOMEM;
	r->params = arg_params;
	r->params.ops = &pool_ops;
	(void)snprintf(r->host, sizeof(r->host), "%s", strempty(head->host));
	r->params.forwarded_host = head->host ? r->host : NULL;
	*ret = (struct loop_route){ .params = &r->params, .userdata = r };
	return 0;
}

static void
loop_route_done(void *userdata, struct loop_route *route)
{
	(void)userdata;
	free(route->userdata);
}

static struct MHD_Daemon *mhd; /* the other engine, for connections handed off */

static bool
loop_serves(void *userdata, const struct http_request_head *head)
{
	(void)userdata;
	return !head->host || strcmp(head->host, MHD_HOST) != 0;
}

static void
loop_handoff(void *userdata, int fd, const struct sockaddr *address, socklen_t len)
{
	(void)userdata;
	(void)MHD_add_connection(mhd, fd, address, len); /* closes fd on failure */
}

static const struct loop_ops loop_ops = {
	.serves = loop_serves,
	.handoff = loop_handoff,
	.route = loop_route,
	.route_done = loop_route_done,
};

static void
help(void)
{
	printf("Usage: proxy-harness --upstream PORT [OPTIONS]\n"
	       "Serve 127.0.0.1:PORT's app through Granary's proxy engine.\n\n"
	       "  --port P                   listen on 127.0.0.1:P (default: any free port)\n"
	       "  --read-only                only GET, HEAD and OPTIONS reach the app\n"
	       "  --origin ORIGIN            the session host's origin (Origin check)\n"
	       "  --frame-ancestors ORIGIN   CSP frame-ancestors (default http://localhost:6080)\n"
	       "  --strip-cookie NAME        a cookie never forwarded (repeatable)\n"
	       "  --user-id ID, --username NAME, --permissions LIST, --session-id ID\n"
	       "  --anonymous                no user id or name\n"
	       "  --proto PROTO              X-Forwarded-Proto (default http)\n"
	       "  --acquire-error MESSAGE    every acquire() fails with MESSAGE\n"
	       "  --pool N                   idle connections kept (default 64, 0: none)\n"
	       "  --connection-timeout S     MHD's idle timeout (default 60)\n"
	       "  --head-timeout-ms MS, --idle-timeout-ms MS   the engine's timeouts\n"
	       "  --stack-size BYTES         connection threads' stacks (default 256K)\n"
	       "  --engine loop|mhd          the event loop (default) or libmicrohttpd's threads\n"
	       "  --help, --version\n");
}

static int
parse_args(int argc, char *argv[])
{
	enum {
		ARG_UPSTREAM = 0x100,
		ARG_PORT,
		ARG_READ_ONLY,
		ARG_ORIGIN,
		ARG_FRAME_ANCESTORS,
		ARG_STRIP_COOKIE,
		ARG_USER_ID,
		ARG_USERNAME,
		ARG_PERMISSIONS,
		ARG_SESSION_ID,
		ARG_ANONYMOUS,
		ARG_PROTO,
		ARG_ACQUIRE_ERROR,
		ARG_POOL,
		ARG_CONNECTION_TIMEOUT,
		ARG_HEAD_TIMEOUT,
		ARG_IDLE_TIMEOUT,
		ARG_STACK_SIZE,
		ARG_ENGINE,
		ARG_HELP,
		ARG_VERSION,
	};
	static const struct option options[] = {
		{ "upstream", required_argument, NULL, ARG_UPSTREAM },
		{ "port", required_argument, NULL, ARG_PORT },
		{ "read-only", no_argument, NULL, ARG_READ_ONLY },
		{ "origin", required_argument, NULL, ARG_ORIGIN },
		{ "frame-ancestors", required_argument, NULL, ARG_FRAME_ANCESTORS },
		{ "strip-cookie", required_argument, NULL, ARG_STRIP_COOKIE },
		{ "user-id", required_argument, NULL, ARG_USER_ID },
		{ "username", required_argument, NULL, ARG_USERNAME },
		{ "permissions", required_argument, NULL, ARG_PERMISSIONS },
		{ "session-id", required_argument, NULL, ARG_SESSION_ID },
		{ "anonymous", no_argument, NULL, ARG_ANONYMOUS },
		{ "proto", required_argument, NULL, ARG_PROTO },
		{ "acquire-error", required_argument, NULL, ARG_ACQUIRE_ERROR },
		{ "pool", required_argument, NULL, ARG_POOL },
		{ "connection-timeout", required_argument, NULL, ARG_CONNECTION_TIMEOUT },
		{ "head-timeout-ms", required_argument, NULL, ARG_HEAD_TIMEOUT },
		{ "idle-timeout-ms", required_argument, NULL, ARG_IDLE_TIMEOUT },
		{ "stack-size", required_argument, NULL, ARG_STACK_SIZE },
		{ "engine", required_argument, NULL, ARG_ENGINE },
		{ "help", no_argument, NULL, ARG_HELP },
		{ "version", no_argument, NULL, ARG_VERSION },
		{}
	};
	uint64_t size;
	int c;

	while ((c = getopt_long(argc, argv, "", options, NULL)) >= 0) {
		switch (c) {
		case ARG_UPSTREAM:
			if (parse_port(optarg, false, &arg_upstream) < 0)
				return log_error_errno(EINVAL, "Invalid --upstream '%s'", optarg);
			break;
		case ARG_PORT:
			if (parse_port(optarg, true, &arg_port) < 0)
				return log_error_errno(EINVAL, "Invalid --port '%s'", optarg);
			break;
		case ARG_READ_ONLY:
			arg_params.read_only = true;
			break;
		case ARG_ORIGIN:
			arg_params.origin = optarg;
			break;
		case ARG_FRAME_ANCESTORS:
			arg_params.frame_ancestors = optarg;
			break;
		case ARG_STRIP_COOKIE:
			if (n_strip >= STRIP_MAX)
				return log_error_errno(E2BIG, "Too many --strip-cookie");
			arg_strip[n_strip++] = optarg;
			break;
		case ARG_USER_ID:
			arg_params.user_id = optarg;
			break;
		case ARG_USERNAME:
			arg_params.username = optarg;
			break;
		case ARG_PERMISSIONS:
			arg_params.permissions = optarg;
			break;
		case ARG_SESSION_ID:
			arg_params.session_id = optarg;
			break;
		case ARG_ANONYMOUS:
			arg_params.user_id = arg_params.username = NULL;
			break;
		case ARG_PROTO:
			arg_params.forwarded_proto = optarg;
			break;
		case ARG_ACQUIRE_ERROR:
			arg_acquire_error = optarg;
			break;
		case ARG_POOL:
			if (parse_uint32(optarg, &arg_pool) < 0 || arg_pool > POOL_MAX)
				return log_error_errno(EINVAL, "Invalid --pool '%s'", optarg);
			break;
		case ARG_CONNECTION_TIMEOUT:
			if (parse_uint32(optarg, &arg_connection_timeout) < 0)
				return log_error_errno(EINVAL, "Invalid --connection-timeout '%s'",
						       optarg);
			break;
		case ARG_HEAD_TIMEOUT:
			if (parse_uint32(optarg, &arg_params.head_timeout_ms) < 0)
				return log_error_errno(EINVAL, "Invalid --head-timeout-ms '%s'",
						       optarg);
			break;
		case ARG_IDLE_TIMEOUT:
			if (parse_uint32(optarg, &arg_params.idle_timeout_ms) < 0)
				return log_error_errno(EINVAL, "Invalid --idle-timeout-ms '%s'",
						       optarg);
			break;
		case ARG_STACK_SIZE:
			if (parse_size(optarg, &size) < 0 || size < 64 * 1024)
				return log_error_errno(EINVAL, "Invalid --stack-size '%s'", optarg);
			arg_stack_size = (size_t)size;
			break;
		case ARG_ENGINE:
			if (strcmp(optarg, "mhd") != 0 && strcmp(optarg, "loop") != 0)
				return log_error_errno(EINVAL, "Invalid --engine '%s'", optarg);
			arg_mhd = strcmp(optarg, "mhd") == 0;
			break;
		case ARG_HELP:
			help();
			exit(EXIT_SUCCESS);
		case ARG_VERSION:
			printf("proxy-harness %s\n", GRANARY_VERSION);
			exit(EXIT_SUCCESS);
		default:
			return -EINVAL;
		}
	}
	if (optind < argc || arg_upstream == 0)
		return log_error_errno(EINVAL, "Expected --upstream PORT (see --help)");
	return 0;
}

/* 127.0.0.1:arg_port (0: any free one), listening. */
static int
listen_loopback(int *ret_fd, unsigned *ret_port)
{
	struct sockaddr_in sa = {
		.sin_family = AF_INET,
		.sin_port = htons(arg_port),
		.sin_addr.s_addr = htonl(INADDR_LOOPBACK),
	};
	socklen_t len = sizeof(sa);
	_cleanup_close_ int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	int one = 1;

	if (fd < 0)
		return -errno;
	(void)setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 1024) < 0 ||
	    getsockname(fd, (struct sockaddr *)&sa, &len) < 0)
		return -errno;
	*ret_port = ntohs(sa.sin_port);
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	const union MHD_DaemonInfo *info;
	struct MHD_Daemon *daemon = NULL;
	struct loop *loop = NULL;
	_cleanup_close_ int listen_fd = -EBADF;
	unsigned port = 0;
	sigset_t mask;
	int sig, r;

	log_setup("proxy-harness");
	if (parse_args(argc, argv) < 0)
		return EXIT_FAILURE;
	sa.sin_port = htons(arg_port);

	/* Every thread inherits this mask: the signals wait for sigwait() below. */
	(void)signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	(void)pthread_sigmask(SIG_BLOCK, &mask, NULL);

	/* clang-format off */
	/* The libmicrohttpd engine: listening with --engine mhd; else the loop's handoffs. */
	daemon = MHD_start_daemon(
		MHD_USE_THREAD_PER_CONNECTION | MHD_USE_INTERNAL_POLLING_THREAD |
		(getenv("HARNESS_SELECT") ? 0 : MHD_USE_POLL) | MHD_ALLOW_UPGRADE |
		MHD_USE_ERROR_LOG | (arg_mhd ? 0 : MHD_USE_NO_LISTEN_SOCKET | MHD_USE_ITC),
		0, NULL, NULL, handle, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_SOCK_ADDR, arg_mhd ? (struct sockaddr *)&sa : NULL,
		MHD_OPTION_URI_LOG_CALLBACK, uri_logged, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, completed, NULL,
		MHD_OPTION_CONNECTION_TIMEOUT, arg_connection_timeout,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
		MHD_OPTION_THREAD_STACK_SIZE, arg_stack_size,
		MHD_OPTION_END);
	/* clang-format on */
	if (!daemon)
		return log_error_errno(EIO, "Failed to start the HTTP server"), EXIT_FAILURE;
	if (arg_mhd) {
		info = MHD_get_daemon_info(daemon, MHD_DAEMON_INFO_BIND_PORT);
		port = info ? (unsigned)info->port : 0u;
	} else {
		struct loop_config config = {
			.client_timeout_ms = arg_connection_timeout * 1000,
			.ops = &loop_ops,
		};

		mhd = daemon;
		r = listen_loopback(&listen_fd, &port);
		if (r < 0)
			return log_error_errno(r, "Failed to listen: %m"), EXIT_FAILURE;
		config.listen_fd = listen_fd;
		r = loop_start(&config, &loop);
		if (r < 0)
			return log_error_errno(r, "Failed to start the event loop: %m"),
			       EXIT_FAILURE;
	}
	printf("listening on 127.0.0.1:%u\n", port);
	(void)fflush(stdout);

	do
		sig = sigwaitinfo(&mask, NULL);
	while (sig < 0 && errno == EINTR);

	loop = loop_stop(loop);
	proxy_tunnels_stop();
	MHD_stop_daemon(daemon);
	while (pool_size > 0)
		(void)close(pool[--pool_size].fd);
	return EXIT_SUCCESS;
}
