/* SPDX-License-Identifier: MIT */
/*
 * front.c: the HTTP face of granaryd, on libmicrohttpd.
 *
 * On plain HTTP, our event loop (front_loop.c) owns the listening socket: it
 * serves connections whose first request is for a grain session host
 * (ui-<hex>.<wildcard>) itself, and hands every other one, untouched, to a
 * libmicrohttpd daemon with a thread per connection (MHD_add_connection()).
 * With TLS, that daemon listens itself and grain hosts go to the proxy engine
 * that runs inside it (front_proxy.c). A second daemon serves the admin
 * socket (one polling thread). Requests on a grain session host go to the
 * proxy (front_sessions.c) without front's lock; every other callback takes
 * f->lock, so the front's state (the database connection, counters) is
 * touched by one thread at a time: slow work there (argon2, an install)
 * never holds up the event loop. A shell or API request goes through:
 *
 *   1st call   request_new(): Host check, route lookup, body policy. Nothing
 *              is queued here: Debian's libmicrohttpd 0.9.75 answers
 *              "Connection: close" to responses queued on the first call
 *              (FIELD-NOTES.md: 20k vs 97k req/s).
 *   body calls JSON bodies are collected up to BODY_LIMIT; uploads
 *              (ROUTE_UPLOAD) stream into an unnamed file in STATE/uploads
 *              once the sender proved it may upload, up to UPLOAD_LIMIT;
 *              bodies nobody asked for are dropped up to DISCARD_LIMIT
 *              (closing a socket with unread bytes makes the kernel send
 *              RST, and the client sees a reset instead of our answer).
 *   last call  origin check for unsafe methods, session lookup, the handler
 *              (front_api.c), which queues exactly one response.
 *   completed  request_free().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <pthread.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <malloc.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <cap-ng.h>
#include <microhttpd.h>
#include <sodium.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>

#include "common/log.h"
#include "common/parse.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response)

#define BODY_LIMIT	   (64 * 1024)
#define CONNECTION_TIMEOUT 60	/* seconds a client connection may stay idle */
#define CONNECTION_LIMIT   1024 /* client connections at once (per server: loop, libmicrohttpd) */
#define DISCARD_LIMIT	   (1024 * 1024)
#define TRIM_AFTER	   (256 * 1024)
/* Per connection thread; handlers keep big things on the heap. */
#define THREAD_STACK_SIZE  (256 * 1024)

int64_t
now_seconds(void)
{
	return (int64_t)time(NULL);
}

static int
add_security_headers(struct MHD_Response *response)
{
	/* The shell's own answers: never framed, never sniffed, never cached. */
	if (MHD_add_response_header(response, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(response, "X-Frame-Options", "DENY") != MHD_YES ||
	    MHD_add_response_header(response, "Referrer-Policy", "same-origin") != MHD_YES ||
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
		return -ENOMEM;
	return 0;
}

int
respond(struct request *req, unsigned status, const char *content_type, const char *body,
	size_t len, enum respond_flags flags)
{
	_cleanup_(MHD_destroy_responsep) struct MHD_Response *response = NULL;

	if (req->responded) {
		if (flags & RESPOND_TAKE)
			free((char *)body);
		return -EALREADY;
	}
	response = MHD_create_response_from_buffer(len, (void *)body,
						   flags & RESPOND_STATIC ? MHD_RESPMEM_PERSISTENT
						   : flags & RESPOND_TAKE ? MHD_RESPMEM_MUST_FREE
									  : MHD_RESPMEM_MUST_COPY);
	if (!response) {
		if (flags & RESPOND_TAKE)
			free((char *)body);
		return -ENOMEM;
	}
	req->response_size = len;
	if (add_security_headers(response) < 0 ||
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) !=
		    MHD_YES)
		return -ENOMEM;
	if (content_type && strncmp(content_type, "text/html", 9) == 0 &&
	    MHD_add_response_header(response, "Content-Security-Policy",
				    "default-src 'self'; style-src 'self' 'unsafe-inline'; "
				    "script-src 'self' 'unsafe-inline'; frame-ancestors 'none'") !=
		    MHD_YES)
		return -ENOMEM;
	for (size_t i = 0; i < req->n_extra_headers; i++) {
		const char *name = req->extra_headers[i].name;
		const char *old = MHD_get_response_header(response, name);

		/* A handler's header replaces a default one (Set-Cookie adds up). */
		if (old && strcasecmp(name, MHD_HTTP_HEADER_SET_COOKIE) != 0)
			(void)MHD_del_response_header(response, name, old);
		if (MHD_add_response_header(response, name, req->extra_headers[i].value) != MHD_YES)
			return -ENOMEM;
	}
	if (MHD_queue_response(req->connection, status, response) != MHD_YES)
		return -EIO;
	req->responded = true;
	req->status = status;
	return 0;
}

int
respond_header(struct request *req, const char *name, const char *format, ...)
{
	struct response_header *h;
	va_list ap;

	if (req->n_extra_headers >= ELEMENTSOF(req->extra_headers))
		return -E2BIG;
	h = &req->extra_headers[req->n_extra_headers];
	h->name = name;
	va_start(ap, format);
	(void)vsnprintf(h->value, sizeof(h->value), format, ap);
	va_end(ap);
	req->n_extra_headers++;
	return 0;
}

int
respond_json(struct request *req, unsigned status, json_t *value)
{
	_cleanup_free_ char *text = NULL;
	size_t len;

	if (!value)
		return -ENOMEM;
	text = json_dumps(value, JSON_COMPACT);
	json_decref(value);
	if (!text)
		return -ENOMEM;
	/* MHD takes the text as it is: a long list is not copied once more. */
	len = strlen(text);
	return respond(req, status, "application/json", TAKE_PTR(text), len, RESPOND_TAKE);
}

int
respond_error(struct request *req, unsigned status, const char *code, const char *format, ...)
{
	char message[512];
	va_list ap;

	va_start(ap, format);
	(void)vsnprintf(message, sizeof(message), format, ap);
	va_end(ap);
	return respond_json(req, status,
			    json_pack("{s:{s:s,s:s}}", "error", "code", code, "message", message));
}

int
respond_empty(struct request *req, unsigned status)
{
	return respond(req, status, "text/plain; charset=utf-8", "", 0, RESPOND_STATIC);
}

const char *
request_header(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_HEADER_KIND, name);
}

const char *
request_cookie(struct request *req, const char *name)
{
	return MHD_lookup_connection_value(req->connection, MHD_COOKIE_KIND, name);
}

static void
client_address(struct MHD_Connection *connection, char *buf, size_t size)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	address_format(info ? info->client_addr : NULL, buf, size);
}

void
address_format(const struct sockaddr *sa, char *buf, size_t size)
{
	(void)snprintf(buf, size, "unknown");
	if (!sa)
		return;
	if (sa->sa_family == AF_INET)
		(void)inet_ntop(AF_INET, &((const struct sockaddr_in *)sa)->sin_addr, buf,
				(socklen_t)size);
	else if (sa->sa_family == AF_INET6)
		(void)inet_ntop(AF_INET6, &((const struct sockaddr_in6 *)sa)->sin6_addr, buf,
				(socklen_t)size);
}

static bool
method_is_safe(const char *method)
{
	return strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 ||
	       strcmp(method, "OPTIONS") == 0;
}

/*
 * CSRF: an unsafe request must come from the shell's own origin, exactly.
 * Same-site is not same-origin: a grain on ui-xxx.localhost is same-site
 * with localhost, so SameSite cookies alone would let it call the API.
 */
static bool
origin_allowed(struct request *req)
{
	const char *origin = request_header(req, "Origin");
	const char *fetch_site = request_header(req, "Sec-Fetch-Site");

	if (req->local)
		return true; /* root's CLI: no browser, no cross-site request */
	if (fetch_site && strcmp(fetch_site, "same-origin") != 0 && strcmp(fetch_site, "none") != 0)
		return false;
	return origin && strcmp(origin, req->front->origin) == 0;
}

/* The admin socket is the only unix socket front serves. */
static bool
local_connection(struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CLIENT_ADDRESS);

	return info && info->client_addr && info->client_addr->sa_family == AF_UNIX;
}

/*
 * The admin socket's file is root's, mode 0600; the peer's credentials are
 * checked too, so a mistake in its mode cannot make anyone an admin: root,
 * or the uid granaryd runs as when it was started unprivileged.
 */
static bool
local_peer_allowed(struct front *f, struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info =
		MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_FD);
	struct ucred cred;
	socklen_t len = sizeof(cred);

	if (!info || getsockopt(info->connect_fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) < 0)
		return false;
	return cred.uid == 0 || cred.uid == f->admin_uid;
}

static void
request_free(struct request *req)
{
	if (!req)
		return;
	req->upload_fd = safe_close(req->upload_fd);
	json_decref(req->json);
	buf_release(&req->body);
	free(req);
}

static struct request *
request_new(struct front *f, struct MHD_Connection *connection, const char *method, const char *url)
{
	struct request *req = calloc(1, sizeof(*req));
	const char *host;

	if (!req)
		return NULL;
	req->front = f;
	req->connection = connection;
	req->method = method;
	req->url = url;
	req->body = (struct buf)BUF_INIT_LIMIT(BODY_LIMIT);
	req->upload_fd = -EBADF;
	client_address(connection, req->address, sizeof(req->address));

	if (local_connection(connection)) {
		if (!local_peer_allowed(f, connection)) {
			req->unknown_host = true; /* answered 404, like a stranger */
			return req;
		}
		/* root over the admin socket: an admin with no account of its own. */
		req->local = req->has_user = true;
		req->user = (struct db_user){ .id = 0, .name = "root", .admin = true };
		(void)snprintf(req->address, sizeof(req->address), "local");
		route_find(req);
		return req;
	}
	host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	/* Only the shell's own host is served here (and ROUTE_ANY_HOST routes); grain
	 * session hosts come with the proxy. */
	route_find(req);
	if ((!host || strcasecmp(host, f->shell_host) != 0) &&
	    !(req->route && (req->route->flags & ROUTE_ANY_HOST)))
		req->unknown_host = true;
	return req;
}

/*
 * The first bytes of an upload: stream them to disk only for a sender who may
 * upload (Origin, session, admin); anyone else's bytes are dropped and the
 * last call answers why. The file has no name (O_TMPFILE): a crash leaves
 * nothing behind.
 */
static void
upload_begin(struct request *req)
{
	req->upload_checked = true;
	if (!origin_allowed(req) || route_authorize(req, false) < 0)
		return;
	req->upload_fd = open("uploads", O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (req->upload_fd < 0)
		req->upload_errno = errno;
}

/* false: stop reading (too large, or the disk said no) and answer now. */
static bool
upload_write(struct request *req, const char *data, size_t n)
{
	if (req->upload_size + n > UPLOAD_LIMIT) {
		req->body_too_large = true;
		req->upload_fd = safe_close(req->upload_fd);
		return false;
	}
	while (n > 0) {
		ssize_t w = write(req->upload_fd, data, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0) {
			req->upload_errno = errno;
			req->upload_fd = safe_close(req->upload_fd);
			return false;
		}
		data += w;
		n -= (size_t)w;
		req->upload_size += (uint64_t)w;
	}
	return true;
}

/*
 * Take n bytes of the body: into the upload file, the JSON buffer, or
 * nowhere. Bytes nobody keeps are dropped up to DISCARD_LIMIT (closing a
 * socket with unread bytes makes the kernel send RST, and the client would
 * see a reset instead of our answer). false: stop reading and answer now.
 */
static bool
body_take(struct request *req, const char *data, size_t n)
{
	enum route_flags flags = req->route && !req->body_too_large ? req->route->flags : 0;

	if (flags & ROUTE_UPLOAD) {
		if (!req->upload_checked)
			upload_begin(req);
		if (req->upload_fd >= 0)
			return upload_write(req, data, n);
		if (req->upload_errno)
			return false;
		/* A sender who may not upload: dropped below, then told why. */
	} else if ((flags & ROUTE_BODY) && buf_append(&req->body, data, n) < 0)
		req->body_too_large = true;
	req->discarded += n;
	if (req->discarded <= DISCARD_LIMIT)
		return true;
	if (!(flags & ROUTE_UPLOAD))
		req->body_too_large = true;
	return false;
}

/* An upload whose Content-Length is over the limit is refused before a byte is read. */
static bool
upload_announced_too_large(struct request *req)
{
	const char *length = request_header(req, MHD_HTTP_HEADER_CONTENT_LENGTH);
	uint64_t n;

	return length && parse_uint64(length, &n) >= 0 && n > UPLOAD_LIMIT;
}

static enum MHD_Result
handle_request_locked(void *cls, struct MHD_Connection *connection, const char *url,
		      const char *raw_url, const char *method, const char *version,
		      const char *upload_data, size_t *upload_data_size, void **req_cls)
{
	struct front *f = cls;
	struct request *req = *req_cls;
	int r;

	(void)version;

	if (!req) {
		req = request_new(f, connection, method, url);
		if (!req)
			return MHD_NO;
		req->raw_url = raw_url;
		*req_cls = req;
		f->metrics.requests++;
		if (!(req->route && (req->route->flags & ROUTE_UPLOAD) &&
		      upload_announced_too_large(req)))
			return MHD_YES;
		/* Answered now, so a client that sent "Expect: 100-continue" sends nothing. */
		req->body_too_large = true;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (body_take(req, upload_data, n))
			return MHD_YES;
	}
	if (req->responded)
		return MHD_YES;

	if (req->unknown_host)
		r = respond_error(req, MHD_HTTP_NOT_FOUND, "unknown_host",
				  "This server does not serve that host name");
	else if (!req->route && req->method_not_allowed) {
		(void)respond_header(req, MHD_HTTP_HEADER_ALLOW, "%s", req->allow);
		r = respond_error(req, MHD_HTTP_METHOD_NOT_ALLOWED, "method_not_allowed",
				  "%s is not allowed here", method);
	} else if (!req->route)
		r = respond_error(req, MHD_HTTP_NOT_FOUND, "not_found", "No such page");
	else if (req->body_too_large && (req->route->flags & ROUTE_UPLOAD))
		r = respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "upload_too_large",
				  "Uploads are limited to %llu bytes",
				  (unsigned long long)UPLOAD_LIMIT);
	else if (req->body_too_large)
		r = respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
				  "The request body is larger than %d bytes", BODY_LIMIT);
	else if (req->upload_errno)
		r = respond_error(req,
				  req->upload_errno == ENOSPC || req->upload_errno == EDQUOT
					  ? MHD_HTTP_INSUFFICIENT_STORAGE
					  : MHD_HTTP_INTERNAL_SERVER_ERROR,
				  "upload_failed", "Failed to store the upload: %s",
				  strerror(req->upload_errno));
	else if (!method_is_safe(method) && (req->route->flags & ROUTE_API) && !origin_allowed(req))
		r = respond_error(req, MHD_HTTP_FORBIDDEN, "bad_origin",
				  "Unsafe requests must come from %s (send an Origin header)",
				  f->origin);
	else
		r = route_run(req);

	if (r < 0 && !req->responded) {
		log_error_errno(r, "Failed to answer %s %s: %m", method, url);
		(void)respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "internal",
				    "Internal error; the server log says more");
	}
	if (!req->responded)
		return MHD_NO;
	if (req->status >= 500)
		f->metrics.errors_5xx++;
	else if (req->status >= 400)
		f->metrics.errors_4xx++;
	return MHD_YES;
}

/*
 * What *req_cls holds for every request: libmicrohttpd hands us the raw
 * request-target first (uri_logged()), before it decodes it; the proxy
 * forwards those bytes, not the decoded path.
 */
struct call {
	struct request *api;	      /* owned: a shell or API request */
	struct grain_exchange *grain; /* owned: a request on a grain session host */
	char raw_uri[];		      /* the request-target as the client sent it */
};

static void *
uri_logged(void *cls, const char *uri, struct MHD_Connection *connection)
{
	size_t len = strlen(uri);
	struct call *call = malloc(sizeof(*call) + len + 1);

	(void)cls;
	(void)connection;
	if (!call)
		return NULL; /* handle_request() refuses the request */
	call->api = NULL;
	call->grain = NULL;
	memcpy(call->raw_uri, uri, len + 1);
	return call;
}

static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
	       const char *version, const char *upload_data, size_t *upload_data_size,
	       void **req_cls)
{
	struct front *f = cls;
	struct call *call = *req_cls;
	enum MHD_Result result;

	if (!call)
		return MHD_NO;
	/*
	 * Grain session hosts go to the proxy without front's lock: their
	 * requests may wait for a grain to start or stream for minutes.
	 */
	if (!call->api && !call->grain && !local_connection(connection)) {
		const char *host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							       MHD_HTTP_HEADER_HOST);
		const char *label = session_host_label(f, host);

		if (label)
			call->grain = grain_exchange_new(f, connection, label, host, call->raw_uri,
							 method);
		else if (api_host(f, host)) {
			char address[64];

			client_address(connection, address, sizeof(address));
			call->grain = grain_exchange_new_api(
				f,
				MHD_lookup_connection_value(connection, MHD_HEADER_KIND,
							    MHD_HTTP_HEADER_AUTHORIZATION),
				host, address);
		}
		if (label || call->grain) {
			if (!call->grain)
				return MHD_NO;
			__atomic_add_fetch(&f->metrics.proxied, 1, __ATOMIC_RELAXED);
		}
	}
	if (call->grain)
		return grain_exchange_handle(call->grain, connection, call->raw_uri, method,
					     version, upload_data, upload_data_size);

	pthread_mutex_lock(&f->lock);
	result = handle_request_locked(cls, connection, url, call->raw_uri, method, version,
				       upload_data, upload_data_size, (void **)&call->api);
	pthread_mutex_unlock(&f->lock);
	return result;
}

static void
request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
		  enum MHD_RequestTerminationCode toe)
{
	struct front *f = cls;
	struct call *call = *req_cls;

	(void)connection;
	if (!call)
		return;
	*req_cls = NULL;
	call->grain = grain_exchange_free(call->grain, toe);
	if (call->api) {
		pthread_mutex_lock(&f->lock);
		/* After a large answer (a long list) give the memory back to the system:
		 * glibc keeps a thread's freed heap otherwise (B6: 14 MiB after 10k grains). */
		if (call->api->response_size > TRIM_AFTER)
			(void)malloc_trim(0);
		request_free(call->api);
		pthread_mutex_unlock(&f->lock);
	}
	free(call);
}

/* ---- the event loop's side (front_loop.c) ---- */

static bool
loop_serves(void *userdata, const struct http_request_head *head)
{
	return session_host_label(userdata, head->host) != NULL || api_host(userdata, head->host);
}

static void
loop_handoff(void *userdata, int fd, const struct sockaddr *address, socklen_t len)
{
	struct front *f = userdata;

	/* libmicrohttpd closes fd when it cannot take it. */
	if (MHD_add_connection(f->daemon, fd, address, len) != MHD_YES)
		log_debug_errno(errno, "libmicrohttpd did not take a connection: %m");
}

static int
loop_route(void *userdata, const struct http_request_head *head, const struct sockaddr *peer,
	   bool may_block, struct loop_route *ret)
{
	char address[64];

	address_format(peer, address, sizeof(address));
	return grain_route(userdata, head, address, may_block, ret);
}

static void
loop_route_done(void *userdata, struct loop_route *route)
{
	grain_route_done(userdata, route);
}

static const struct loop_ops front_loop_ops = {
	.serves = loop_serves,
	.handoff = loop_handoff,
	.route = loop_route,
	.route_done = loop_route_done,
};

/*
 * Housekeeping off the request path: shares that expired are noted (audit,
 * open sessions re-checked) within SHARES_EXPIRY_INTERVAL, whether or not
 * anyone asks; the trash and dead sessions are purged every
 * HOUSEKEEPING_INTERVAL. Under f->lock, like every shell request.
 */
static void *
housekeeper_main(void *userdata)
{
	struct front *f = userdata;

	pthread_mutex_lock(&f->lock);
	while (!f->stopping) {
		struct timespec until;

		(void)clock_gettime(CLOCK_MONOTONIC, &until);
		until.tv_sec += SHARES_EXPIRY_INTERVAL;
		while (!f->stopping &&
		       pthread_cond_timedwait(&f->housekeeper_wake, &f->lock, &until) == 0)
			;
		if (f->stopping)
			break;
		(void)shares_expire(f);
		if (now_seconds() - f->housekeeping_at >= HOUSEKEEPING_INTERVAL)
			(void)front_housekeeping(f);
	}
	pthread_mutex_unlock(&f->lock);
	return NULL;
}

static int
setup_hint(struct front *f)
{
	int64_t users = 0;
	int r;

	r = db_user_count(f->db, &users);
	if (r < 0)
		return r;
	if (users > 0)
		return 0;
	r = token_new(f->setup_token);
	if (r < 0)
		return r;
	log_notice("No user yet. Create the first admin with:");
	log_notice("  granary --state '%s' user add NAME --admin", f->state_dir);
	log_notice("or open this one-time setup link: %s/setup/%s", f->origin, f->setup_token);
	return 0;
}

int
front_start(const struct front_config *config, struct front **ret)
{
	_cleanup_(front_freep) struct front *f = NULL;
	_cleanup_free_ char *db_path = NULL, *default_url = NULL;
	const char *base_url = config->base_url;
	pthread_condattr_t condattr;
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->launcher_fd = config->launcher_fd;
	f->packages_fd = -EBADF;
	f->listen_fd = -EBADF;
	pthread_mutex_init(&f->lock, NULL);
	pthread_condattr_init(&condattr);
	pthread_condattr_setclock(&condattr, CLOCK_MONOTONIC);
	pthread_cond_init(&f->housekeeper_wake, &condattr);
	pthread_condattr_destroy(&condattr);
	r = launcher_client_new(config->launcher_fd, &f->launcher);
	if (r < 0)
		return r;
	f->admin_uid = config->drop_privileges ? 0 : getuid();
	f->started_at = now_seconds();
	f->state_dir = strdup(config->state_dir);
	if (!f->state_dir)
		return -ENOMEM;
	if (!base_url) {
		if (asprintf(&default_url, "%s://localhost:%u", config->tls_cert ? "https" : "http",
			     config->port) < 0)
			return -ENOMEM;
		base_url = default_url;
	}
	r = base_url_parse(base_url, &f->origin, &f->shell_host, &f->tls);
	if (r < 0)
		return log_error_errno(r, "Invalid --base-url '%s': expected http(s)://HOST[:PORT]",
				       base_url);

	if (asprintf(&db_path, "%s/granary.sqlite3", config->state_dir) < 0)
		return -ENOMEM;
	r = db_open(db_path, DB_OPEN_CREATE, &f->db);
	if (r == -EBADMSG)
		return log_error_errno(r,
				       "The database '%s' is damaged (integrity check failed). "
				       "Restore it from a backup; Granary will not write to it",
				       db_path);
	if (r == -EPROTONOSUPPORT)
		return log_error_errno(r,
				       "The database '%s' was written by a newer Granary; "
				       "run that version",
				       db_path);
	if ((r == -ENOENT || r == -EACCES) && config->drop_privileges)
		return log_error_errno(
			r,
			"Failed to open the database '%s' as uid %u: every directory "
			"above the state directory must be searchable by that user "
			"(chmod o+x, or choose another --state)",
			db_path, (unsigned)config->uid);
	if (r < 0)
		return log_error_errno(r, "Failed to open the database '%s': %m", db_path);

	r = setup_hint(f);
	if (r < 0)
		return log_error_errno(r, "Failed to read users: %m");
	r = db_secret(f->db, "user-id-key", f->user_id_key, sizeof(f->user_id_key));
	if (r < 0)
		return log_error_errno(r, "Failed to read the server's secret: %m");
	/* Grain sessions are served on ui-<hex>.<this>. */
	if (config->wildcard)
		f->wildcard_suffix = strdup(config->wildcard + 2); /* config.c checked "*." */
	else if (asprintf(&f->wildcard_suffix, "localhost:%u", config->port) < 0)
		f->wildcard_suffix = NULL;
	if (!f->wildcard_suffix)
		return -ENOMEM;
	r = session_cache_new(&f->sessions);
	if (r < 0)
		return r;
	r = grain_manager_new(f->launcher, config->grain_idle_timeout, &f->grains);
	if (r < 0)
		return log_error_errno(r, "Failed to start the grain manager: %m");
	/* Uploads stream into unnamed files here (front's own, mode 0700). */
	if (mkdir("uploads", 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create '%s/uploads': %m", f->state_dir);
	(void)front_housekeeping(f);
	r = -pthread_create(&f->housekeeper, NULL, housekeeper_main, f);
	if (r < 0)
		return log_error_errno(r, "Failed to start the housekeeping thread: %m");
	f->housekeeper_running = true;

	/* TLS: the PEM the root parent read (config.c, tls_load()), or nothing. */
	struct MHD_OptionItem tls_options[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)config->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, config->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	/*
	 * With TLS, libmicrohttpd listens; else our loop does, and hands it the
	 * connections it does not serve.
	 */
	struct MHD_OptionItem listen_options[] = {
		{ MHD_OPTION_LISTEN_SOCKET, config->listen_fd, NULL },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* clang-format off */
	/*
	 * A thread per connection: a shell request may take long (argon2, an
	 * install) and so may a proxied one over TLS (starting its grain, a slow
	 * app, a WebSocket); each must hold up nobody else. Shell and API
	 * requests still take f->lock one at a time.
	 */
	f->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION | MHD_USE_POLL |
		MHD_USE_ITC | MHD_ALLOW_UPGRADE | MHD_USE_ERROR_LOG |
		(config->tls_cert ? MHD_USE_TLS : MHD_USE_NO_LISTEN_SOCKET),
		0, NULL, NULL, handle_request, f,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_URI_LOG_CALLBACK, uri_logged, f,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, f,
		MHD_OPTION_THREAD_STACK_SIZE, (size_t)THREAD_STACK_SIZE,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)CONNECTION_TIMEOUT,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)CONNECTION_LIMIT,
		MHD_OPTION_ARRAY, config->tls_cert ? listen_options : &listen_options[1],
		MHD_OPTION_ARRAY, config->tls_cert ? tls_options : &tls_options[2],
		MHD_OPTION_END);
	/* clang-format on */
	/* GnuTLS holds its own copy of the key now: no other one stays in this process. */
	if (config->tls_key)
		sodium_memzero(config->tls_key, config->tls_key_size);
	if (!f->daemon)
		return log_error_errno(EIO, "Failed to start the HTTP server");
	if (config->local_fd >= 0) {
		f->local = MHD_start_daemon(
			MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC |
				MHD_USE_ERROR_LOG,
			0, NULL, NULL, handle_request, f, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
			MHD_OPTION_URI_LOG_CALLBACK, uri_logged, f, MHD_OPTION_NOTIFY_COMPLETED,
			request_completed, f, MHD_OPTION_LISTEN_SOCKET, config->local_fd,
			MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)600, MHD_OPTION_CONNECTION_LIMIT,
			(unsigned)16, MHD_OPTION_END);
		if (!f->local)
			return log_error_errno(EIO, "Failed to serve the admin socket");
	}
	/* Last: from here on, connections come in. */
	if (!config->tls_cert) {
		struct loop_config loop = {
			.listen_fd = config->listen_fd,
			.client_timeout_ms = CONNECTION_TIMEOUT * 1000,
			.max_clients = CONNECTION_LIMIT,
			.ops = &front_loop_ops,
			.userdata = f,
		};

		r = loop_start(&loop, &f->loop);
		if (r < 0)
			return log_error_errno(r, "Failed to start the event loop: %m");
		f->listen_fd = config->listen_fd; /* ours from now on */
	}
	*ret = TAKE_PTR(f);
	return 0;
}

static void
daemon_stop(struct MHD_Daemon *d)
{
	MHD_socket listen_fd;

	if (!d)
		return;
	listen_fd = MHD_quiesce_daemon(d);
	MHD_stop_daemon(d);
	if (listen_fd != MHD_INVALID_SOCKET)
		(void)close(listen_fd);
}

struct front *
front_free(struct front *f)
{
	if (!f)
		return NULL;
	if (f->housekeeper_running) {
		pthread_mutex_lock(&f->lock);
		f->stopping = true;
		pthread_cond_signal(&f->housekeeper_wake);
		pthread_mutex_unlock(&f->lock);
		(void)pthread_join(f->housekeeper, NULL);
	}
	/*
	 * Requests in flight may wait on their apps: stop the apps (and end
	 * the WebSocket tunnels) first, so neither the loop's jobs nor
	 * libmicrohttpd's connection threads wait for the slowest app.
	 */
	proxy_tunnels_stop();
	if (f->grains)
		grain_manager_stop_all(f->grains);
	/*
	 * The listening sockets are shared with the parent, which hands them to
	 * the next front after a restart. MHD_stop_daemon() would shut them down
	 * for everyone; quiescing first gives them back to us untouched, and
	 * closing our copies leaves the parent's working.
	 */
	f->loop = loop_stop(f->loop);
	f->listen_fd = safe_close(f->listen_fd);
	daemon_stop(f->local);
	daemon_stop(f->daemon);
	/* No request runs now. */
	f->grains = grain_manager_free(f->grains);
	f->sessions = session_cache_free(f->sessions);
	f->launcher = launcher_client_free(f->launcher);
	free(f->wildcard_suffix);
	sodium_memzero(f->user_id_key, sizeof(f->user_id_key));
	db_free(f->db);
	f->packages_fd = safe_close(f->packages_fd);
	free(f->origin);
	free(f->shell_host);
	free(f->state_dir);
	pthread_cond_destroy(&f->housekeeper_wake);
	pthread_mutex_destroy(&f->lock);
	free(f);
	return NULL;
}

int
front_main(const struct front_config *config)
{
	_cleanup_(front_freep) struct front *f = NULL;
	sigset_t mask;
	int r, sig;

	log_setup("granaryd-front");

	/* Each running grain holds fds here (its control socket, pooled connections). */
	struct rlimit rl;

	if (getrlimit(RLIMIT_NOFILE, &rl) >= 0 && rl.rlim_cur < rl.rlim_max) {
		rl.rlim_cur = rl.rlim_max;
		(void)setrlimit(RLIMIT_NOFILE, &rl);
	}

	/* Nothing below holds a path outside the state directory. */
	if (chdir(config->state_dir) < 0)
		return log_error_errno(errno, "Failed to enter '%s': %m", config->state_dir);

	/*
	 * Lockdown, before a single byte from the network is read:
	 * 1. identity: the unprivileged user, no supplementary groups, every
	 *    capability set empty including bounding and ambient (libcap-ng
	 *    changes uid and clears them in one step, so no window exists where
	 *    we have the new uid and old capabilities);
	 * 2. NO_NEW_PRIVS: no setuid binary or file capability can give any back;
	 * 3. seccomp: the calls above are gone for good.
	 */
	if (config->drop_privileges) {
		capng_clear(CAPNG_SELECT_BOTH);
		r = capng_change_id((int)config->uid, (int)config->gid,
				    CAPNG_DROP_SUPP_GRP | CAPNG_CLEAR_BOUNDING);
		if (r < 0)
			return log_error_errno(EPERM, "Failed to become uid %u: libcap-ng error %d",
					       (unsigned)config->uid, r);
		if (geteuid() == 0 || getegid() == 0)
			return log_error_errno(EPERM, "Still root after dropping privileges");
		/* A change of credentials clears the parent-death signal: set it again,
		 * then make sure the parent did not die in between. */
		if (prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0) < 0 || getppid() != config->parent)
			return log_error_errno(ESRCH, "The parent process went away");
	}
	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) < 0)
		return log_error_errno(errno, "Failed to set no_new_privs: %m");
	r = lockdown_seccomp(0);
	if (r < 0)
		return log_error_errno(r, "Failed to install the seccomp filter: %m");

	r = front_start(config, &f);
	if (r < 0)
		return r;

	/* Signals stay blocked (the parent blocked them before fork): take them here. */
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	for (;;) {
		sig = sigwaitinfo(&mask, NULL);
		if (sig >= 0 || errno != EINTR)
			break;
	}
	f = front_free(f);
	return 0;
}
