/* SPDX-License-Identifier: MIT */
/*
 * front_proxy.c: one HTTP/1.1 exchange forwarded to a grain's app over a
 * connected fd, streaming both ways; WebSocket upgrades spliced. This is the
 * engine for grain traffic that libmicrohttpd serves: over TLS, and on a
 * plain connection whose first request was the shell's. Plain grain traffic
 * is served by front_loop.c, with the same rules (the functions that work on
 * plain bytes, shared: proxy_put_request_field(), proxy_refusal() ...).
 *
 * Runs inside libmicrohttpd callbacks in MHD_USE_THREAD_PER_CONNECTION mode:
 * each client connection has its own thread, so the engine does plain
 * blocking I/O on the app's fd (poll() with deadlines, never an unbounded
 * wait). A request goes through:
 *
 *   1st call   request_check(): method, target, header values, read-only
 *              and Origin rules. Nothing is sent or queued (MHD would answer
 *              "Connection: close": FIELD-NOTES.md), except a refusal of a
 *              request announcing a body with Expect: 100-continue.
 *   2nd call   exchange_start(): an fd from acquire() (pooled ones checked
 *              for a close by the app first), the request head, and the
 *              first body chunk with it in one sendmsg().
 *   body calls each chunk to the app as it comes: Content-Length as the
 *              client sent it, else chunked. Nothing is buffered.
 *   last call  head_read(): the app's head into the fixed buffer (bounded,
 *              deadline, 1xx skipped), parsed strictly (http-response.c),
 *              then one response queued: from the buffer when the whole body
 *              is already there, else from body_read(), which MHD calls for
 *              more (blocking reads). The fd goes back to the pool as soon as
 *              the app's answer has been read to its end.
 *   completed  proxy_completed(): an fd still out is released as not
 *              reusable; the state is freed.
 *
 * A pooled fd that fails before any answer byte is retried on the next fd,
 * if no body byte went out and the request can be repeated (RFC 9110 9.2.2:
 * a proxy does not retry a non-idempotent request the app may have seen;
 * a reset on read proves it was not read). A request answered early by the
 * app (it stopped reading the body) gets that answer; errors of the engine are
 * small HTML pages (502, 503, 504, 403, 400). When the app fails in the middle
 * of a body the client's response is cut (MHD_CONTENT_READER_END_WITH_ERROR),
 * never silently short.
 *
 * Memory per request: the state (a 64 KiB buffer for heads and body bytes,
 * malloc()ed, never zeroed) and MHD's; per tunnel: two 16 KiB buffers and a
 * 64 KiB thread stack.
 */
#include <errno.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/socket.h>
#include <sys/uio.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define PROXY_BUFFER_SIZE     HTTP_HEAD_MAX
#define PROXY_BLOCK_SIZE      (16 * 1024) /* MHD's buffer for body_read(), at least... */
#define PROXY_BLOCK_MAX	      (64 * 1024) /* ...and at most (one recv() and one send() each) */
#define PROXY_HEAD_TIMEOUT_MS (120 * 1000)
#define PROXY_IDLE_TIMEOUT_MS (300 * 1000)
#define PROXY_DISCARD_LIMIT   (64 * 1024 * 1024) /* body bytes drained before an early answer */
#define PROXY_REFUSE_DRAINED  (64 * 1024)	 /* a refused body up to this is drained */
#define PROXY_ATTEMPTS	      4			 /* fds one request may try (stale ones aside) */
#define PROXY_ERROR_MAX	      8192		 /* bytes of an acquire() error (a log excerpt) */
#define PROXY_STALE_MAX	      64		 /* pooled fds found closed, for one request */
#define PROXY_CONNECTION_MAX  8			 /* Connection fields of a request we follow */
#define TUNNEL_BUFFER	      (16 * 1024)
#define TUNNEL_CHECK_MS	      1000 /* between ops->cut() questions */
#define TUNNEL_STACK	      (64 * 1024)

enum proxy_phase {
	PHASE_NEW,	/* checked; nothing sent yet */
	PHASE_SENDING,	/* head sent; the body goes to the app */
	PHASE_DEFERRED, /* the answer is known (an error): the rest of the body is
			 * drained, up to PROXY_DISCARD_LIMIT, for MHD queues nothing
			 * while a body is arriving */
	PHASE_ANSWERED, /* a response is queued */
};

struct proxy_request {
	const struct proxy_upstream_ops *ops;
	void *userdata;
	struct MHD_Connection *connection;
	enum proxy_phase phase;
	int fd;		   /* owned until released: the app connection, or -EBADF */
	bool reused;	   /* fd came from the pool */
	unsigned attempts; /* fds tried */
	unsigned stale;	   /* pooled fds found closed */

	/* The request, from the first call. */
	bool head_request, repeatable, websocket, chunked_upload, has_length, early_answer;
	bool expect_continue;
	uint64_t length; /* the client's Content-Length, when has_length */
	const char *connection_fields[PROXY_CONNECTION_MAX]; /* borrowed from MHD */
	unsigned n_connection_fields;
	const char *upgrade; /* borrowed from MHD: the client's Upgrade, for a WebSocket */
	uint64_t body_sent, discarded;

	/* An answer of the engine itself, when error_status != 0. */
	unsigned error_status;
	const char *error_title; /* static; NULL: the detail is the title */
	char *error_detail;	 /* owned: for a person; after a blank line, a log excerpt */

	unsigned head_timeout_ms, idle_timeout_ms;
	unsigned mhd_timeout;	/* seconds: MHD's own idle timeout of this connection */
	unsigned quick_wait_ms; /* waits up to this long leave MHD's timeout alone */

	/* The app's answer. */
	enum http_framing framing;
	bool keep_alive;    /* the app keeps the connection for another exchange */
	bool got_bytes;	    /* any byte of an answer arrived on this fd */
	uint64_t remaining; /* HTTP_FRAMING_LENGTH: body bytes not read from the fd yet */
	struct http_chunked chunked;
	size_t data_start, data_end; /* body bytes in buf, ready for MHD */
	size_t raw_start, raw_end;   /* HTTP_FRAMING_CHUNKED: bytes in buf not decoded yet */

	/* Not cleared by request_new(): written before read. */
	struct http_response_head head;
	char buf[PROXY_BUFFER_SIZE];
};

struct proxy_stats proxy_stats_counters;

#define STAT_ADD(field, n) PROXY_STAT_ADD(field, n)
#define STAT_INC(field)	   STAT_ADD(field, 1)

void
proxy_stats_get(struct proxy_stats *ret)
{
	ret->requests = __atomic_load_n(&proxy_stats_counters.requests, __ATOMIC_RELAXED);
	ret->upstream_fresh =
		__atomic_load_n(&proxy_stats_counters.upstream_fresh, __ATOMIC_RELAXED);
	ret->upstream_reused =
		__atomic_load_n(&proxy_stats_counters.upstream_reused, __ATOMIC_RELAXED);
	ret->upstream_stale =
		__atomic_load_n(&proxy_stats_counters.upstream_stale, __ATOMIC_RELAXED);
	ret->retries = __atomic_load_n(&proxy_stats_counters.retries, __ATOMIC_RELAXED);
	ret->refused = __atomic_load_n(&proxy_stats_counters.refused, __ATOMIC_RELAXED);
	ret->failed = __atomic_load_n(&proxy_stats_counters.failed, __ATOMIC_RELAXED);
	ret->truncated = __atomic_load_n(&proxy_stats_counters.truncated, __ATOMIC_RELAXED);
	ret->tunnels = __atomic_load_n(&proxy_stats_counters.tunnels, __ATOMIC_RELAXED);
	ret->tunnels_total = __atomic_load_n(&proxy_stats_counters.tunnels_total, __ATOMIC_RELAXED);
}

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response)

static int64_t
now_ms(void)
{
	struct timespec ts;

	(void)clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* ---- the app's fd --------------------------------------------------------- */

static void
upstream_release(struct proxy_request *st, bool reusable)
{
	if (st->fd < 0)
		return;
	st->ops->release(st->userdata, st->fd, reusable ? PROXY_FD_REUSABLE : 0);
	st->fd = -EBADF;
}

/*
 * Wait for events on fd until deadline. MHD closes a connection it has not
 * seen traffic on for its timeout, even while our handler blocks: a wait
 * longer than a moment turns that timeout off, and turning it back on
 * restarts its clock (MHD_CONNECTION_OPTION_TIMEOUT does, from 0).
 * Returns revents, or -ETIMEDOUT.
 */
static int
wait_fd(struct proxy_request *st, int fd, short events, int64_t deadline)
{
	struct pollfd p = { .fd = fd, .events = events };
	int64_t quick = st->quick_wait_ms;
	bool paused = false;
	int n;

	for (;;) {
		int64_t left = deadline - now_ms();

		if (left <= 0) {
			n = -ETIMEDOUT;
			break;
		}
		n = poll(&p, 1, (int)MIN(left, paused ? INT32_MAX : quick));
		if (n > 0)
			break;
		if (n < 0 && errno != EINTR) {
			n = -errno;
			break;
		}
		if (n == 0 && !paused && st->mhd_timeout) {
			(void)MHD_set_connection_option(st->connection,
							MHD_CONNECTION_OPTION_TIMEOUT, 0u);
			paused = true;
		}
	}
	if (paused)
		(void)MHD_set_connection_option(st->connection, MHD_CONNECTION_OPTION_TIMEOUT,
						st->mhd_timeout);
	return n > 0 ? p.revents : n;
}

/* A pooled fd the app closed (or wrote to) while it was idle is no use. */
static bool
upstream_stale(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN | POLLRDHUP };

	return poll(&p, 1, 0) != 0;
}

static void
set_error(struct proxy_request *st, unsigned status, const char *title, const char *detail)
{
	st->error_status = status;
	st->error_title = title;
	free(st->error_detail);
	st->error_detail = strdup(strempty(detail)); /* NULL: the page says less */
}

static int
upstream_acquire(struct proxy_request *st)
{
	for (;;) {
		char error[PROXY_ERROR_MAX] = "";
		bool reused = false;
		int fd = -EBADF, r;

		if (st->attempts >= PROXY_ATTEMPTS || st->stale >= PROXY_STALE_MAX) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  "Its connections kept failing.");
			return -ECONNRESET;
		}
		r = st->ops->acquire(st->userdata, &fd, &reused, error, sizeof(error));
		if (r < 0) {
			/* The grain manager's sentences ("It could not start: ...") are the page. */
			set_error(st, MHD_HTTP_SERVICE_UNAVAILABLE, "The app is not available",
				  error[0] ? error : "");
			return r;
		}
		if (reused && upstream_stale(fd)) {
			st->ops->release(st->userdata, fd, 0);
			st->stale++;
			STAT_INC(upstream_stale);
			continue;
		}
		st->attempts++;
		st->fd = fd;
		st->reused = reused;
		st->got_bytes = false;
		if (reused)
			STAT_INC(upstream_reused);
		else {
			int one = 1;

			struct timeval tv = {
				.tv_sec = st->quick_wait_ms / 1000,
				.tv_usec = st->quick_wait_ms % 1000 * 1000,
			};

			/* Heads, chunk framing and small answers are separate writes:
			 * Nagle would hold them for the previous one's ACK. */
			(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
			(void)setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
			STAT_INC(upstream_fresh);
		}
		return 0;
	}
}

/* All of iov to the app. -EALREADY: the app answered while we were still sending (watch). */
static int
send_all(struct proxy_request *st, struct iovec *iov, size_t n, bool watch)
{
	int64_t deadline = 0;

	while (n > 0) {
		struct msghdr m = { .msg_iov = iov, .msg_iovlen = n };
		ssize_t w = sendmsg(st->fd, &m, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0 && errno == EAGAIN) {
			int revents;

			if (deadline == 0)
				deadline = now_ms() + st->idle_timeout_ms;
			revents = wait_fd(st, st->fd, POLLOUT | (watch ? POLLIN : 0), deadline);
			if (revents < 0)
				return revents;
			if (watch && (revents & POLLIN))
				return -EALREADY;
			continue;
		}
		if (w < 0)
			return -errno;
		deadline = 0;
		while (n > 0 && (size_t)w >= iov->iov_len) {
			w -= (ssize_t)iov->iov_len;
			iov++;
			n--;
		}
		if (n > 0) {
			iov->iov_base = (char *)iov->iov_base + w;
			iov->iov_len -= (size_t)w;
		}
	}
	return 0;
}

/*
 * Read what is there, or wait for it until deadline. 0: the app closed. The
 * first recv() blocks for a moment (SO_RCVTIMEO, set on fresh fds) when the
 * fd is in blocking mode: an answer that comes within it costs one syscall,
 * not three (recv, poll, recv).
 */
static ssize_t
recv_some(struct proxy_request *st, char *buf, size_t size, int64_t deadline)
{
	int flags = 0;

	for (;;) {
		ssize_t n = recv(st->fd, buf, size, flags);
		int revents;

		if (n >= 0)
			return n;
		if (errno == EINTR)
			continue;
		if (errno != EAGAIN)
			return -errno;
		flags = MSG_DONTWAIT;
		revents = wait_fd(st, st->fd, POLLIN, deadline);
		if (revents < 0)
			return revents;
	}
}

/* ---- the request --------------------------------------------------------- */

static bool
method_is(const char *method, const char *const *list)
{
	for (size_t i = 0; list[i]; i++)
		if (strcmp(method, list[i]) == 0)
			return true;
	return false;
}

static const char *const safe_methods[] = { "GET", "HEAD", "OPTIONS", NULL };
/* RFC 9110 9.2.2, plus WebDAV's safe reads. */
static const char *const repeatable_methods[] = {
	"GET", "HEAD", "OPTIONS", "PUT", "DELETE", "PROPFIND", "REPORT", NULL,
};

bool
proxy_method_is_safe(const char *method)
{
	return method_is(method, safe_methods);
}

bool
proxy_method_is_repeatable(const char *method)
{
	return method_is(method, repeatable_methods);
}

static bool
prefix_is(const char *s, size_t len, const char *prefix)
{
	size_t n = strlen(prefix);

	return len >= n && strncasecmp(s, prefix, n) == 0;
}

static bool
name_is(const char *s, size_t len, const char *name)
{
	return strlen(name) == len && strncasecmp(s, name, len) == 0;
}

/*
 * Request fields never passed to the app: hop-by-hop ones (RFC 9110 7.6.1),
 * the body framing (the engine writes its own), Expect (MHD answered it), and
 * what only Granary may say or what belongs to Granary: X-Granary-*,
 * X-Forwarded-*, Forwarded, X-Real-IP, Authorization (SECURITY-TESTS.md J),
 * and any name with "_" (below).
 */
static const char *const request_dropped[] = {
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"Proxy-Authorization",
	"TE",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Content-Length",
	"Expect",
	"Forwarded",
	"X-Real-IP",
	"Authorization",
	NULL,
};

bool
proxy_request_field_dropped(const char *name, size_t len, const char *const *connection,
			    size_t n_connection)
{
	char lower[256];

	for (size_t i = 0; request_dropped[i]; i++)
		if (name_is(name, len, request_dropped[i]))
			return true;
	if (prefix_is(name, len, "X-Granary-") || prefix_is(name, len, "X-Forwarded-"))
		return true;
	/* CGI, PHP and WSGI turn "X_Granary_User_Id" into the very variable of
	 * "X-Granary-User-Id": names with "_" never pass (nginx's and Apache's
	 * default too). */
	if (memchr(name, '_', len))
		return true;
	if (n_connection == 0 || name_is(name, len, "Host") || len >= sizeof(lower))
		return false;
	/* Fields the client named in Connection are hop-by-hop too (never Host: the app
	 * must know which host it serves). */
	memcpy(lower, name, len);
	lower[len] = '\0';
	for (size_t i = 0; i < n_connection; i++)
		if (http_list_has_token(connection[i], lower))
			return true;
	return false;
}

struct scan {
	struct proxy_request *st;
	const char *origin, *fetch_site, *content_length, *transfer_encoding;
	bool bad_value, bad_length;
};

static enum MHD_Result
scan_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
	   size_t value_size)
{
	struct scan *s = cls;
	struct proxy_request *st = s->st;

	(void)kind;
	/* MHD gives sizes: a NUL inside, or CR/LF, would end or split a line. */
	if (!key || !value || strlen(key) != key_size || strlen(value) != value_size ||
	    !http_is_token(key, key_size) || !http_value_is_safe(value, value_size)) {
		s->bad_value = true;
		return MHD_NO;
	}
	if (name_is(key, key_size, "Connection")) {
		if (st->n_connection_fields < PROXY_CONNECTION_MAX)
			st->connection_fields[st->n_connection_fields++] = value;
		else
			s->bad_value = true;
	} else if (name_is(key, key_size, "Upgrade"))
		st->upgrade = value;
	else if (name_is(key, key_size, "Origin"))
		s->origin = value;
	else if (name_is(key, key_size, "Sec-Fetch-Site"))
		s->fetch_site = value;
	else if (name_is(key, key_size, "Expect"))
		st->expect_continue = strcasecmp(value, "100-continue") == 0;
	else if (name_is(key, key_size, "Transfer-Encoding"))
		s->transfer_encoding = value;
	else if (name_is(key, key_size, "Content-Length")) {
		uint64_t n;

		if (parse_uint64(value, &n) < 0 || (s->content_length && n != st->length))
			s->bad_length = true;
		st->length = n;
		s->content_length = value;
	}
	return MHD_YES;
}

static bool
origin_refused(const struct proxy_params *params, const char *origin, const char *fetch_site)
{
	if (!params->origin)
		return false;
	/* Another grain is same-site with this one: only same-origin counts. */
	if (fetch_site && strcasecmp(fetch_site, "same-origin") != 0 &&
	    strcasecmp(fetch_site, "none") != 0)
		return true;
	return origin && strcasecmp(origin, params->origin) != 0;
}

const char *
proxy_refusal(const struct proxy_params *params, const char *method, bool websocket,
	      const char *origin, const char *fetch_site, const char **ret_detail)
{
	bool safe = proxy_method_is_safe(method);

	if (params->read_only && !safe) {
		*ret_detail = "Only GET, HEAD and OPTIONS requests reach the app.";
		return "This is shared read-only";
	}
	/* CSRF, and WebSocket hijacking: a GET that opens a channel both ways. */
	if ((!safe || websocket) && origin_refused(params, origin, fetch_site)) {
		*ret_detail = "Requests that change something must come from the app's own pages.";
		return "Cross-origin request refused";
	}
	return NULL;
}

/* The first call: what the request is and whether it may reach the app at all. */
static void
request_check(struct proxy_request *st, const struct proxy_params *params, const char *raw_uri,
	      const char *method)
{
	struct scan s = { .st = st };
	const char *title, *detail;

	st->head_request = strcmp(method, "HEAD") == 0;
	st->repeatable = proxy_method_is_repeatable(method);
	(void)MHD_get_connection_values_n(st->connection, MHD_HEADER_KIND, scan_field, &s);

	if (!http_is_token(method, strlen(method)) || !raw_uri ||
	    !(raw_uri[0] == '/' || (strcmp(raw_uri, "*") == 0 && strcmp(method, "OPTIONS") == 0)))
		return set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
				 "The request line cannot be passed on.");
	for (const char *p = raw_uri; *p; p++)
		if ((unsigned char)*p <= ' ' || *p == 0x7f)
			return set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
					 "The request target cannot be passed on.");
	if (s.bad_value)
		return set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
				 "A header field cannot be passed on.");
	if (s.transfer_encoding) {
		if (strcasecmp(s.transfer_encoding, "chunked") != 0)
			return set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
					 "Only the chunked transfer coding is understood.");
		st->chunked_upload = true; /* MHD decodes it; it overrides Content-Length */
	} else if (s.content_length) {
		if (s.bad_length)
			return set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
					 "The Content-Length is not valid.");
		st->has_length = true;
	}
	st->websocket = strcmp(method, "GET") == 0 && st->upgrade &&
			http_list_has_token(st->upgrade, "websocket");
	if (st->websocket) {
		bool upgrade = false;

		for (unsigned i = 0; i < st->n_connection_fields; i++)
			upgrade =
				upgrade || http_list_has_token(st->connection_fields[i], "upgrade");
		st->websocket = upgrade;
	}
	title = proxy_refusal(params, method, st->websocket, s.origin, s.fetch_site, &detail);
	if (title)
		set_error(st, MHD_HTTP_FORBIDDEN, title, detail);
}

void
proxy_put(struct proxy_writer *w, const char *s, size_t n)
{
	if (w->overflow || n > w->size - w->len) {
		w->overflow = true;
		return;
	}
	memcpy(w->buf + w->len, s, n);
	w->len += n;
}

void
proxy_put_str(struct proxy_writer *w, const char *s)
{
	proxy_put(w, s, strlen(s));
}

void
proxy_put_field(struct proxy_writer *w, const char *name, const char *value)
{
	proxy_put_str(w, name);
	proxy_put(w, ": ", 2);
	proxy_put_str(w, value);
	proxy_put(w, "\r\n", 2);
}

/* A name for a person may hold anything: %XX for every byte outside printable ASCII, and '%'. */
static void
put_field_encoded(struct proxy_writer *w, const char *name, const char *value)
{
	static const char hex[] = "0123456789ABCDEF";

	proxy_put_str(w, name);
	proxy_put(w, ": ", 2);
	for (const unsigned char *p = (const unsigned char *)value; *p; p++) {
		if (*p >= 0x20 && *p < 0x7f && *p != '%')
			proxy_put(w, (const char *)p, 1);
		else {
			char e[3] = { '%', hex[*p >> 4], hex[*p & 15] };

			proxy_put(w, e, 3);
		}
	}
	proxy_put(w, "\r\n", 2);
}

void
proxy_put_request_field(struct proxy_writer *w, const struct proxy_params *params, const char *name,
			size_t name_len, const char *value, size_t value_len)
{
	if (name_is(name, name_len, "Cookie") && params->strip_cookies) {
		size_t at = w->len + name_len + 2, len = 0;

		/* Filtered straight into place after "Cookie: ". */
		if (w->overflow || at + 3 > w->size ||
		    http_cookie_filter(value, params->strip_cookies, w->buf + at, w->size - at - 2,
				       &len) < 0) {
			w->overflow = true;
			return;
		}
		if (len == 0)
			return; /* nothing left: no Cookie field at all */
		memcpy(w->buf + w->len, name, name_len);
		memcpy(w->buf + w->len + name_len, ": ", 2);
		w->len = at + len;
		proxy_put(w, "\r\n", 2);
		return;
	}
	proxy_put(w, name, name_len);
	proxy_put(w, ": ", 2);
	proxy_put(w, value, value_len);
	proxy_put(w, "\r\n", 2);
}

static bool
param_is_safe(const char *s)
{
	return !s || http_value_is_safe(s, strlen(s));
}

bool
proxy_params_safe(const struct proxy_params *params)
{
	return param_is_safe(params->user_id) && param_is_safe(params->permissions) &&
	       param_is_safe(params->session_id) && param_is_safe(params->forwarded_proto) &&
	       param_is_safe(params->forwarded_host);
}

void
proxy_put_granary_fields(struct proxy_writer *w, const struct proxy_params *params)
{
	if (params->user_id)
		proxy_put_field(w, "X-Granary-User-Id", params->user_id);
	if (params->username)
		put_field_encoded(w, "X-Granary-Username", params->username);
	proxy_put_field(w, "X-Granary-Permissions", strempty(params->permissions));
	if (params->session_id)
		proxy_put_field(w, "X-Granary-Session-Id", params->session_id);
	if (params->forwarded_proto)
		proxy_put_field(w, "X-Forwarded-Proto", params->forwarded_proto);
	if (params->forwarded_host)
		proxy_put_field(w, "X-Forwarded-Host", params->forwarded_host);
}

struct head_writer {
	struct proxy_writer w;
	const struct proxy_request *st;
	const struct proxy_params *params;
};

static enum MHD_Result
head_field(void *cls, enum MHD_ValueKind kind, const char *key, size_t key_size, const char *value,
	   size_t value_size)
{
	struct head_writer *h = cls;

	(void)kind;
	if (proxy_request_field_dropped(key, key_size, h->st->connection_fields,
					h->st->n_connection_fields))
		return MHD_YES;
	proxy_put_request_field(&h->w, h->params, key, key_size, value, value_size);
	return h->w.overflow ? MHD_NO : MHD_YES;
}

/* The request head for the app, in st->buf. */
static int
head_build(struct proxy_request *st, const struct proxy_params *params, const char *raw_uri,
	   const char *method, size_t *ret_len)
{
	struct head_writer h = {
		.w = { .buf = st->buf, .size = sizeof(st->buf) },
		.st = st,
		.params = params,
	};
	struct proxy_writer *w = &h.w;

	if (!proxy_params_safe(params)) {
		set_error(st, MHD_HTTP_INTERNAL_SERVER_ERROR, "Internal error",
			  "The request cannot be passed on.");
		return -EINVAL;
	}
	proxy_put_str(w, method);
	proxy_put(w, " ", 1);
	proxy_put_str(w, raw_uri);
	proxy_put(w, " HTTP/1.1\r\n", 11);
	(void)MHD_get_connection_values_n(st->connection, MHD_HEADER_KIND, head_field, &h);
	if (st->websocket) {
		proxy_put_field(w, "Connection", "Upgrade");
		proxy_put_field(w, "Upgrade", st->upgrade);
	}
	if (st->chunked_upload)
		proxy_put_field(w, "Transfer-Encoding", "chunked");
	else if (st->has_length) {
		char n[24];

		(void)snprintf(n, sizeof(n), "%" PRIu64, st->length);
		proxy_put_field(w, "Content-Length", n);
	}
	proxy_put_granary_fields(w, params);
	proxy_put(w, "\r\n", 2);
	if (w->overflow) {
		set_error(st, MHD_HTTP_REQUEST_HEADER_FIELDS_TOO_LARGE,
			  "Request header fields too large", NULL);
		return -E2BIG;
	}
	*ret_len = w->len;
	return 0;
}

/* "1f4\r\n" for a chunk of n bytes. */
static size_t
chunk_line(char buf[20], size_t n)
{
	return (size_t)snprintf(buf, 20, "%zx\r\n", n);
}

bool
proxy_retry_allowed(bool reused, bool got_bytes, uint64_t body_sent, bool repeatable, int error,
		    bool on_read)
{
	if (!reused || got_bytes || body_sent > 0)
		return false;
	/* A reset proves the app did not read the request; a plain close does not. */
	if (error != -EPIPE && error != -ECONNRESET && !(on_read && error == 0))
		return false;
	return !on_read || error == -ECONNRESET || repeatable;
}

static bool
retry_allowed(const struct proxy_request *st, int error, bool on_read)
{
	return proxy_retry_allowed(st->reused, st->got_bytes, st->body_sent, st->repeatable, error,
				   on_read);
}

/*
 * Connect and send the head, with the first n body bytes if any (one
 * sendmsg()). A pooled fd that turns out dead is replaced.
 */
static int
exchange_start(struct proxy_request *st, const struct proxy_params *params, const char *raw_uri,
	       const char *method, const char *data, size_t n)
{
	for (;;) {
		char line[20];
		struct iovec iov[4];
		size_t len = 0, k = 0;
		int r;

		r = upstream_acquire(st);
		if (r < 0)
			return r;
		r = head_build(st, params, raw_uri, method, &len);
		if (r < 0)
			return r;
		iov[k++] = (struct iovec){ st->buf, len };
		if (n > 0 && st->chunked_upload) {
			iov[k++] = (struct iovec){ line, chunk_line(line, n) };
			iov[k++] = (struct iovec){ (void *)data, n };
			iov[k++] = (struct iovec){ (void *)"\r\n", 2 };
		} else if (n > 0)
			iov[k++] = (struct iovec){ (void *)data, n };
		r = send_all(st, iov, k, false);
		if (r >= 0) {
			st->body_sent += n;
			st->phase = PHASE_SENDING;
			return 0;
		}
		upstream_release(st, false);
		if (!retry_allowed(st, r, false)) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  r == -ETIMEDOUT ? "It stopped reading the request."
						  : "The connection to it failed.");
			return r;
		}
		STAT_INC(retries);
	}
}

static int
body_send(struct proxy_request *st, const char *data, size_t n)
{
	char line[20];
	struct iovec iov[3];
	size_t k = 0;
	int r;

	if (st->chunked_upload) {
		iov[k++] = (struct iovec){ line, chunk_line(line, n) };
		iov[k++] = (struct iovec){ (void *)data, n };
		iov[k++] = (struct iovec){ (void *)"\r\n", 2 };
	} else
		iov[k++] = (struct iovec){ (void *)data, n };
	r = send_all(st, iov, k, true);
	if (r >= 0)
		st->body_sent += n;
	return r;
}

/* ---- the answer ---------------------------------------------------------- */

/* in (len bytes), HTML-escaped, appended to b. */
static int
html_escape(struct buf *b, const char *in, size_t len)
{
	int r = 0;

	for (size_t i = 0; i < len && r >= 0; i++) {
		const char *e = in[i] == '&'	? "&amp;"
				: in[i] == '<'	? "&lt;"
				: in[i] == '>'	? "&gt;"
				: in[i] == '"'	? "&quot;"
				: in[i] == '\'' ? "&#39;"
						: NULL;

		r = e ? buf_append_str(b, e) : buf_append_char(b, in[i]);
	}
	return r;
}

static bool
add_header(struct MHD_Response *response, const char *name, const char *value)
{
	return MHD_add_response_header(response, name, value) == MHD_YES;
}

void
proxy_put_security_fields(struct proxy_writer *w, const struct proxy_params *params,
			  bool referrer_policy_set)
{
	if (params->frame_ancestors) {
		proxy_put_str(w, "Content-Security-Policy: frame-ancestors ");
		proxy_put_str(w, params->frame_ancestors);
		proxy_put(w, "\r\n", 2);
	}
	proxy_put_str(w, "X-Content-Type-Options: nosniff\r\n");
	if (!referrer_policy_set)
		proxy_put_str(w, "Referrer-Policy: same-origin\r\n");
}

/* What every answer on a grain's host carries, the app's or ours. */
static bool
add_security_headers(struct MHD_Response *response, const struct proxy_params *params,
		     bool referrer_policy_set)
{
	char csp[512];

	if (params->frame_ancestors) {
		(void)snprintf(csp, sizeof(csp), "frame-ancestors %s", params->frame_ancestors);
		if (!add_header(response, "Content-Security-Policy", csp))
			return false;
	}
	return add_header(response, "X-Content-Type-Options", "nosniff") &&
	       (referrer_policy_set || add_header(response, "Referrer-Policy", "same-origin"));
}

int
proxy_error_page(struct buf *page, unsigned status, const char *title, const char *detail)
{
	const char *excerpt;
	size_t detail_len;
	int r;

	if (!title) {
		title = strempty(detail);
		detail = "";
	}
	detail = strempty(detail);
	excerpt = strstr(detail, "\n\n");
	detail_len = excerpt ? (size_t)(excerpt - detail) : strlen(detail);
	if (status >= 500)
		STAT_INC(failed);
	else
		STAT_INC(refused);
	/* A sentence or two, then (for a grain's owner) the end of its log, verbatim. */
	r = buf_append_str(page, "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\"><title>");
	if (r >= 0)
		r = html_escape(page, title, strlen(title));
	if (r >= 0)
		r = buf_append_str(page, "</title></head>\n<body><h1>");
	if (r >= 0)
		r = html_escape(page, title, strlen(title));
	if (r >= 0)
		r = buf_append_str(page, "</h1>\n<p>");
	if (r >= 0)
		r = html_escape(page, detail, detail_len);
	if (r >= 0)
		r = buf_append_str(page, "</p>\n");
	if (r >= 0 && excerpt) {
		r = buf_append_str(page, "<pre>");
		if (r >= 0)
			r = html_escape(page, excerpt + 2, strlen(excerpt + 2));
		if (r >= 0)
			r = buf_append_str(page, "</pre>\n");
	}
	if (r >= 0)
		r = buf_append_str(page, "</body></html>\n");
	return r;
}

static enum MHD_Result
answer_error(struct proxy_request *st, const struct proxy_params *params)
{
	_cleanup_(MHD_destroy_responsep) struct MHD_Response *response = NULL;
	_cleanup_(buf_release) struct buf page = BUF_INIT;

	upstream_release(st, false);
	if (proxy_error_page(&page, st->error_status, st->error_title, st->error_detail) < 0)
		return MHD_NO;
	response = MHD_create_response_from_buffer(page.len, page.data, MHD_RESPMEM_MUST_COPY);
	if (!response || !add_header(response, "Content-Type", "text/html; charset=utf-8") ||
	    !add_header(response, "Cache-Control", "no-store") ||
	    !add_security_headers(response, params, false))
		return MHD_NO;
	if (st->error_status == MHD_HTTP_SERVICE_UNAVAILABLE &&
	    !add_header(response, "Retry-After", "2"))
		return MHD_NO;
	st->phase = PHASE_ANSWERED;
	return MHD_queue_response(st->connection, st->error_status, response);
}

/* The answer is read to its end: the fd goes back, to the pool if nothing is left over. */
static void
upstream_done(struct proxy_request *st, bool leftover)
{
	upstream_release(st, st->keep_alive && !leftover);
}

static ssize_t
body_failed(struct proxy_request *st, ssize_t error)
{
	log_debug_errno((int)MIN(error, -EPIPE), "App failed in the middle of a body: %m");
	upstream_release(st, false);
	STAT_INC(truncated);
	return MHD_CONTENT_READER_END_WITH_ERROR;
}

/* Body bytes already in buf. */
static size_t
take_buffered(struct proxy_request *st, char *out, size_t max)
{
	size_t n = MIN(max, st->data_end - st->data_start);

	memcpy(out, st->buf + st->data_start, n);
	st->data_start += n;
	return n;
}

/*
 * MHD's content reader: the body from the app, blocking. Never returns 0
 * (MHD would spin); errors cut the client's response.
 */
static ssize_t
body_read(void *cls, uint64_t pos, char *out, size_t max)
{
	struct proxy_request *st = cls;
	int64_t deadline = now_ms() + st->idle_timeout_ms;
	ssize_t n;

	(void)pos;
	if (st->data_start < st->data_end)
		return (ssize_t)take_buffered(st, out, max);

	switch (st->framing) {
	case HTTP_FRAMING_LENGTH:
		if (st->remaining == 0 || st->fd < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		n = recv_some(st, out, (size_t)MIN((uint64_t)max, st->remaining), deadline);
		if (n <= 0)
			return body_failed(st, n);
		st->remaining -= (uint64_t)n;
		if (st->remaining == 0)
			upstream_done(st, false);
		return n;

	case HTTP_FRAMING_CLOSE:
		if (st->fd < 0)
			return MHD_CONTENT_READER_END_OF_STREAM;
		n = recv_some(st, out, max, deadline);
		if (n < 0)
			return body_failed(st, n);
		if (n == 0) {
			upstream_release(st, false);
			return MHD_CONTENT_READER_END_OF_STREAM;
		}
		return n;

	case HTTP_FRAMING_CHUNKED:
		for (;;) {
			const char *data;
			size_t len;

			if (http_chunked_done(&st->chunked) || st->fd < 0)
				return MHD_CONTENT_READER_END_OF_STREAM;
			if (st->raw_start == st->raw_end) {
				n = recv_some(st, st->buf, sizeof(st->buf), deadline);
				if (n <= 0)
					return body_failed(st, n);
				st->raw_start = 0;
				st->raw_end = (size_t)n;
			}
			n = http_chunked_decode(&st->chunked, st->buf + st->raw_start,
						st->raw_end - st->raw_start, max, &data, &len);
			if (n < 0)
				return body_failed(st, n);
			st->raw_start += (size_t)n;
			if (http_chunked_done(&st->chunked))
				upstream_done(st, st->raw_start < st->raw_end);
			if (len > 0) {
				memcpy(out, data, len);
				return (ssize_t)len;
			}
		}

	case HTTP_FRAMING_NONE:
	default:
		return MHD_CONTENT_READER_END_OF_STREAM;
	}
}

/*
 * Response fields not passed on: hop-by-hop ones, the framing (MHD writes
 * its own), and nosniff (added once by us).
 */
static const char *const response_dropped[] = {
	"Connection",
	"Keep-Alive",
	"Proxy-Connection",
	"TE",
	"Trailer",
	"Transfer-Encoding",
	"Upgrade",
	"Content-Length",
	"Proxy-Authenticate",
	"X-Content-Type-Options",
	NULL,
};

bool
proxy_response_field_kept(struct http_response_head *h, size_t i, const struct proxy_params *params,
			  bool *referrer_policy)
{
	char *name = h->headers[i].name, *value = h->headers[i].value;

	for (size_t j = 0; response_dropped[j]; j++)
		if (strcasecmp(name, response_dropped[j]) == 0)
			return false;
	if (http_response_names_in_connection(h, name))
		return false;
	if (strcasecmp(name, "Set-Cookie") == 0) {
		/* The shell's cookies are Granary's, also on this host; and a
		 * cookie with Domain= would reach the other grains. */
		if (http_set_cookie_named(value, params->strip_cookies))
			return false;
		(void)http_set_cookie_strip_domain(value);
	} else if (strcasecmp(name, "Referrer-Policy") == 0)
		*referrer_policy = true;
	/* MHD 0.9.75 refuses empty values: such a field says nothing anyway. */
	return value[0] != '\0';
}

static bool
copy_headers(struct proxy_request *st, const struct proxy_params *params,
	     struct MHD_Response *response, bool *ret_referrer_policy)
{
	struct http_response_head *h = &st->head;
	bool referrer_policy = false;

	for (size_t i = 0; i < h->n_headers; i++) {
		if (!proxy_response_field_kept(h, i, params, &referrer_policy))
			continue;
		if (!add_header(response, h->headers[i].name, h->headers[i].value))
			log_debug("Dropped the app's header field '%s'", h->headers[i].name);
	}
	*ret_referrer_policy = referrer_policy;
	return true;
}

static void tunnel_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls,
			    const char *extra_in, size_t extra_in_size, MHD_socket sock,
			    struct MHD_UpgradeResponseHandle *urh);

int
proxy_chunked_in_place(struct http_chunked *c, char *buf, size_t *raw, size_t raw_end,
		       size_t *data_end, bool *ret_done)
{
	size_t w = *data_end, r = *raw;

	while (r < raw_end && !http_chunked_done(c)) {
		const char *data;
		size_t len;
		ssize_t n = http_chunked_decode(c, buf + r, raw_end - r, SIZE_MAX, &data, &len);

		if (n < 0)
			return (int)n;
		if (len > 0)
			memmove(buf + w, data, len);
		w += len;
		r += (size_t)n;
	}
	*raw = r;
	*data_end = w;
	*ret_done = http_chunked_done(c);
	return 0;
}

/* Decode a chunked body in place as far as buf goes; true when it ended there. */
static int
chunked_in_place(struct proxy_request *st, bool *ret_done)
{
	size_t raw = st->data_start;
	int r;

	st->raw_end = st->data_end;
	st->data_end = st->data_start;
	r = proxy_chunked_in_place(&st->chunked, st->buf, &raw, st->raw_end, &st->data_end,
				   ret_done);
	st->raw_start = raw;
	return r;
}

/* Queue the app's answer (its head parsed into st->head, body bytes after it in buf). */
static enum MHD_Result
answer_app(struct proxy_request *st, const struct proxy_params *params)
{
	_cleanup_(MHD_destroy_responsep) struct MHD_Response *response = NULL;
	struct http_response_head *h = &st->head;
	size_t buffered = st->data_end - st->data_start;
	bool referrer_policy, done = false;
	uint64_t size = MHD_SIZE_UNKNOWN;
	int r;

	if (h->status == MHD_HTTP_SWITCHING_PROTOCOLS) {
		const char *upgrade = http_response_header(h, "Upgrade");

		if (!st->websocket || !upgrade || !http_list_has_token(upgrade, "websocket")) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  "It switched protocols unasked.");
			return answer_error(st, params);
		}
		response = MHD_create_response_for_upgrade(tunnel_upgraded, st);
		/* MHD_create_response_for_upgrade() says "Connection: Upgrade" itself. */
		if (!response || !copy_headers(st, params, response, &referrer_policy) ||
		    !add_header(response, "Upgrade", upgrade))
			return MHD_NO;
		st->phase = PHASE_ANSWERED;
		return MHD_queue_response(st->connection, h->status, response);
	}

	st->framing = http_response_framing(h, st->head_request);
	/* After an upgrade offer or a body the app did not read to its end, the
	 * connection is in a state nobody should inherit. */
	st->keep_alive = http_response_keeps_alive(h) && !st->websocket && !st->early_answer;
	switch (st->framing) {
	case HTTP_FRAMING_NONE:
		/* HEAD: the size the app announced, with no body (MHD sends none). */
		if ((st->head_request || h->status == MHD_HTTP_NOT_MODIFIED) &&
		    h->has_content_length)
			size = h->content_length;
		else
			size = 0;
		upstream_done(st, buffered > 0);
		response = size == 0 ? MHD_create_response_from_buffer(0, (void *)"",
								       MHD_RESPMEM_PERSISTENT)
				     : MHD_create_response_from_callback(size, PROXY_BLOCK_SIZE,
									 body_read, st, NULL);
		break;
	case HTTP_FRAMING_LENGTH:
		if (h->content_length <= buffered) {
			/* All of it is here: MHD sends it from buf (freed after the response). */
			upstream_done(st, buffered > h->content_length);
			response = MHD_create_response_from_buffer((size_t)h->content_length,
								   st->buf + st->data_start,
								   MHD_RESPMEM_PERSISTENT);
			break;
		}
		st->remaining = h->content_length - buffered;
		/* MHD allocates the block with each response: large for large bodies only. */
		response = MHD_create_response_from_callback(
			h->content_length,
			(size_t)MIN(MAX(st->remaining, PROXY_BLOCK_SIZE), PROXY_BLOCK_MAX),
			body_read, st, NULL);
		break;
	case HTTP_FRAMING_CHUNKED:
		st->chunked = (struct http_chunked){ 0 };
		r = chunked_in_place(st, &done);
		if (r < 0) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  "Its answer was malformed.");
			return answer_error(st, params);
		}
		if (done) {
			/* A whole small answer: sent with a Content-Length instead. */
			upstream_done(st, st->raw_start < st->raw_end);
			response = MHD_create_response_from_buffer(st->data_end - st->data_start,
								   st->buf + st->data_start,
								   MHD_RESPMEM_PERSISTENT);
			break;
		}
		response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PROXY_BLOCK_SIZE,
							     body_read, st, NULL);
		break;
	case HTTP_FRAMING_CLOSE:
		st->keep_alive = false;
		response = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, PROXY_BLOCK_SIZE,
							     body_read, st, NULL);
		break;
	}
	if (!response || !copy_headers(st, params, response, &referrer_policy) ||
	    !add_security_headers(response, params, referrer_policy))
		return MHD_NO;
	st->phase = PHASE_ANSWERED;
	return MHD_queue_response(st->connection, h->status, response);
}

/*
 * The app's response head into st->buf (1xx skipped), parsed into st->head.
 * A pooled fd that fails before the first byte is replaced and the request
 * sent again when retry_allowed() says so.
 */
static int
head_read(struct proxy_request *st, const struct proxy_params *params, const char *raw_uri,
	  const char *method)
{
	int64_t deadline = now_ms() + st->head_timeout_ms;
	size_t end = 0, scanned = 0, size;
	int r;

	for (;;) {
		ssize_t n;

		if (end == sizeof(st->buf)) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  "Its answer's header was too large.");
			return -E2BIG;
		}
		n = recv_some(st, st->buf + end, sizeof(st->buf) - end, deadline);
		if (n == -ETIMEDOUT) {
			set_error(st, MHD_HTTP_GATEWAY_TIMEOUT, "The app took too long to answer",
				  NULL);
			return (int)n;
		}
		if (n <= 0 && end == 0 && retry_allowed(st, (int)n, true)) {
			upstream_release(st, false);
			STAT_INC(retries);
			r = exchange_start(st, params, raw_uri, method, NULL, 0);
			if (r < 0)
				return r;
			scanned = 0;
			continue;
		}
		if (n <= 0) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  "It closed the connection without a complete answer.");
			return n < 0 ? (int)n : -ECONNRESET;
		}
		st->got_bytes = true;
		end += (size_t)n;
		for (;;) {
			r = http_head_end(st->buf, end, &scanned, &size);
			if (r == -EAGAIN)
				break;
			if (r >= 0)
				r = http_response_head_parse(st->buf, size, &st->head);
			if (r < 0) {
				set_error(st, MHD_HTTP_BAD_GATEWAY,
					  "The app did not answer properly",
					  "Its answer was malformed.");
				return r;
			}
			if (st->head.status >= 200 || st->head.status == 101) {
				st->data_start = size;
				st->data_end = end;
				return 0;
			}
			/* 100 Continue, 103 Early Hints: not passed on. */
			memmove(st->buf, st->buf + size, end - size);
			end -= size;
			scanned = 0;
		}
	}
}

/* The last call: the body is with the app; read its answer and queue it. */
static enum MHD_Result
answer(struct proxy_request *st, const struct proxy_params *params, const char *raw_uri,
       const char *method)
{
	int r;

	if (st->error_status)
		return answer_error(st, params);
	if (!st->early_answer) {
		if (st->has_length && st->body_sent != st->length) {
			set_error(st, MHD_HTTP_BAD_REQUEST, "Bad request",
				  "The body does not match its Content-Length.");
			return answer_error(st, params);
		}
		if (st->chunked_upload) {
			struct iovec iov = { (void *)"0\r\n\r\n", 5 };

			r = send_all(st, &iov, 1, true);
			if (r == -EALREADY)
				st->early_answer = true;
			else if (r < 0) {
				set_error(st, MHD_HTTP_BAD_GATEWAY,
					  "The app did not answer properly",
					  "The connection to it failed.");
				return answer_error(st, params);
			}
		}
	}
	r = head_read(st, params, raw_uri, method);
	if (r < 0)
		return answer_error(st, params);
	return answer_app(st, params);
}

/* ---- WebSocket tunnels ----------------------------------------------------- */

struct tunnel_direction {
	char *buf;
	size_t size, start, end;
	bool eof;  /* the source said it is done */
	bool shut; /* and the destination was told (SHUT_WR) */
};

struct tunnel {
	struct tunnel *prev, *next; /* in tunnels */
	const struct proxy_upstream_ops *ops;
	void *userdata;
	struct MHD_UpgradeResponseHandle *urh;
	int client_fd; /* MHD's: never closed here (MHD_UPGRADE_ACTION_CLOSE does) */
	int app_fd;    /* owned until released */
	struct tunnel_direction to_app, to_client;
	char space[];
};

static pthread_mutex_t tunnels_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t tunnels_gone = PTHREAD_COND_INITIALIZER;
static struct tunnel *tunnels;	 /* running, still reachable by proxy_tunnels_stop() */
static unsigned tunnels_running; /* threads not finished yet */
static bool tunnels_stopping;

/* Move bytes from src into d, and from d to dst. <0: a side failed. */
static int
tunnel_pump(struct tunnel_direction *d, int src, short src_revents, int dst, short dst_revents)
{
	if ((src_revents & (POLLIN | POLLHUP | POLLERR)) && !d->eof && d->end < d->size) {
		ssize_t n = recv(src, d->buf + d->end, d->size - d->end, MSG_DONTWAIT);

		if (n > 0)
			d->end += (size_t)n;
		else if (n == 0)
			d->eof = true;
		else if (errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	if ((dst_revents & (POLLOUT | POLLERR | POLLHUP)) && d->start < d->end) {
		ssize_t n = send(dst, d->buf + d->start, d->end - d->start,
				 MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n > 0)
			d->start += (size_t)n;
		else if (n < 0 && errno != EAGAIN && errno != EINTR)
			return -errno;
	}
	if (d->start == d->end)
		d->start = d->end = 0;
	/* Half-close: once everything the source sent is delivered, say so. */
	if (d->eof && d->start == d->end && !d->shut) {
		(void)shutdown(dst, SHUT_WR);
		d->shut = true;
	}
	return 0;
}

static short
tunnel_events(const struct tunnel_direction *in, const struct tunnel_direction *out)
{
	/* Read while there is room; write while there is something to send. */
	return (short)((!in->eof && in->end < in->size ? POLLIN : 0) |
		       (out->start < out->end ? POLLOUT : 0));
}

static void *
tunnel_run(void *arg)
{
	struct tunnel *t = arg;
	int64_t checked_at = now_seconds();
	int r = 0;

	while (!(t->to_app.shut && t->to_client.shut)) {
		struct pollfd p[2] = {
			{ .fd = t->client_fd, .events = tunnel_events(&t->to_app, &t->to_client) },
			{ .fd = t->app_fd, .events = tunnel_events(&t->to_client, &t->to_app) },
		};

		int n = poll(p, 2, TUNNEL_CHECK_MS);

		if (n < 0 && errno != EINTR)
			break;
		/* Once a second, busy or not: is the access it was opened with still there? */
		if (t->ops->cut && now_seconds() != checked_at) {
			checked_at = now_seconds();
			if (t->ops->cut(t->userdata))
				break;
		}
		if (n <= 0)
			continue;
		r = tunnel_pump(&t->to_app, t->client_fd, p[0].revents, t->app_fd, p[1].revents);
		if (r >= 0)
			r = tunnel_pump(&t->to_client, t->app_fd, p[1].revents, t->client_fd,
					p[0].revents);
		if (r < 0)
			break;
		/* A side that hung up completely, once what it sent is delivered,
		 * can take nothing more: the tunnel is over. */
		if (((p[0].revents & POLLHUP) && t->to_app.shut) ||
		    ((p[1].revents & POLLHUP) && t->to_client.shut))
			break;
	}

	pthread_mutex_lock(&tunnels_lock);
	if (t->prev)
		t->prev->next = t->next;
	else
		tunnels = t->next;
	if (t->next)
		t->next->prev = t->prev;
	pthread_mutex_unlock(&tunnels_lock);

	(void)MHD_upgrade_action(t->urh, MHD_UPGRADE_ACTION_CLOSE);
	t->ops->release(t->userdata, t->app_fd, 0);
	STAT_ADD(tunnels, (uint64_t)-1);

	pthread_mutex_lock(&tunnels_lock);
	tunnels_running--;
	pthread_cond_broadcast(&tunnels_gone);
	pthread_mutex_unlock(&tunnels_lock);
	free(t);
	return NULL;
}

/*
 * MHD sent our 101 and gives us its side of the connection: a thread of our
 * own splices it with the app's fd (this one must return to MHD).
 */
static void
tunnel_upgraded(void *cls, struct MHD_Connection *connection, void *req_cls, const char *extra_in,
		size_t extra_in_size, MHD_socket sock, struct MHD_UpgradeResponseHandle *urh)
{
	struct proxy_request *st = cls;
	size_t from_app = st->data_end - st->data_start;
	size_t to_app_size = MAX((size_t)TUNNEL_BUFFER, extra_in_size);
	size_t to_client_size = MAX((size_t)TUNNEL_BUFFER, from_app);
	struct tunnel *t;
	pthread_attr_t attr;
	pthread_t thread;
	int r;

	(void)connection;
	(void)req_cls;
	t = malloc(sizeof(*t) + to_app_size + to_client_size);
	if (!t) {
		(void)MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		return; /* the fd is released by proxy_completed() */
	}
	*t = (struct tunnel){
		.ops = st->ops,
		.userdata = st->userdata,
		.urh = urh,
		.client_fd = sock,
		.app_fd = st->fd,
		.to_app = { .buf = t->space, .size = to_app_size, .end = extra_in_size },
		.to_client = { .buf = t->space + to_app_size,
			       .size = to_client_size,
			       .end = from_app },
	};
	memcpy(t->to_app.buf, extra_in, extra_in_size);
	memcpy(t->to_client.buf, st->buf + st->data_start, from_app);

	pthread_mutex_lock(&tunnels_lock);
	if (tunnels_stopping)
		r = -ESHUTDOWN;
	else {
		(void)pthread_attr_init(&attr);
		(void)pthread_attr_setstacksize(&attr, TUNNEL_STACK);
		(void)pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
		r = -pthread_create(&thread, &attr, tunnel_run, t);
		(void)pthread_attr_destroy(&attr);
	}
	if (r == 0) {
		st->fd = -EBADF; /* the tunnel's now */
		t->next = tunnels;
		if (tunnels)
			tunnels->prev = t;
		tunnels = t;
		tunnels_running++;
		STAT_INC(tunnels);
		STAT_INC(tunnels_total);
	}
	pthread_mutex_unlock(&tunnels_lock);
	if (r < 0) {
		log_debug_errno(r, "Failed to start a WebSocket tunnel: %m");
		(void)MHD_upgrade_action(urh, MHD_UPGRADE_ACTION_CLOSE);
		free(t);
	}
}

void
proxy_tunnels_stop(void)
{
	pthread_mutex_lock(&tunnels_lock);
	tunnels_stopping = true;
	/* Every thread sees its sockets fail, and finishes. */
	for (struct tunnel *t = tunnels; t; t = t->next) {
		(void)shutdown(t->app_fd, SHUT_RDWR);
		(void)shutdown(t->client_fd, SHUT_RDWR);
	}
	while (tunnels_running > 0)
		pthread_cond_wait(&tunnels_gone, &tunnels_lock);
	pthread_mutex_unlock(&tunnels_lock);
}

/* ---- the MHD side ----------------------------------------------------------- */

static struct proxy_request *
request_new(const struct proxy_params *params, struct MHD_Connection *connection)
{
	const union MHD_ConnectionInfo *info;
	struct proxy_request *st;

	/* Not calloc(): the 64 KiB buffer is written before it is read. */
	st = malloc(sizeof(*st));
	if (!st)
		return NULL;
	memset(st, 0, offsetof(struct proxy_request, head));
	st->ops = params->ops;
	st->userdata = params->userdata;
	st->connection = connection;
	st->fd = -EBADF;
	st->head_timeout_ms = params->head_timeout_ms ?: PROXY_HEAD_TIMEOUT_MS;
	st->idle_timeout_ms = params->idle_timeout_ms ?: PROXY_IDLE_TIMEOUT_MS;
	info = MHD_get_connection_info(connection, MHD_CONNECTION_INFO_CONNECTION_TIMEOUT);
	st->mhd_timeout = info ? info->connection_timeout : 0;
	st->quick_wait_ms = MIN(1000u, MIN(st->head_timeout_ms, st->idle_timeout_ms));
	if (st->mhd_timeout)
		st->quick_wait_ms = MIN(st->quick_wait_ms, st->mhd_timeout * 500);
	return st;
}

enum MHD_Result
proxy_handle(struct proxy_request **state, const struct proxy_params *params,
	     struct MHD_Connection *connection, const char *raw_uri, const char *method,
	     const char *version, const char *upload_data, size_t *upload_data_size)
{
	struct proxy_request *st = *state;
	size_t n = *upload_data_size;
	int r;

	(void)version;
	if (!st) {
		st = request_new(params, connection);
		if (!st)
			return MHD_NO;
		*state = st;
		STAT_INC(requests);
		request_check(st, params, raw_uri, method);
		/* Refused with a large body to come (or one that waits for 100 Continue):
		 * answered now, and MHD closes the connection rather than read it. A
		 * small one is drained and answered after it, keeping the connection. */
		if (st->error_status &&
		    (st->chunked_upload || (st->has_length && st->length > PROXY_REFUSE_DRAINED) ||
		     (st->has_length && st->length > 0 && st->expect_continue)))
			return answer_error(st, params);
		if (st->error_status)
			st->phase = PHASE_DEFERRED;
		return MHD_YES;
	}
	*upload_data_size = 0;

	if (st->phase == PHASE_ANSWERED)
		return MHD_YES; /* the rest of a body after an early answer: dropped */
	if (st->phase == PHASE_NEW) {
		r = exchange_start(st, params, raw_uri, method, upload_data, n);
		if (r < 0) {
			st->phase = PHASE_DEFERRED;
			st->discarded += n;
		}
	} else if (st->phase == PHASE_SENDING && n > 0 && !st->early_answer) {
		r = body_send(st, upload_data, n);
		if (r == -EALREADY || (r < 0 && r != -ETIMEDOUT && upstream_stale(st->fd))) {
			/* The app answered before it had the whole body (413, 401...):
			 * it gets no more, the client gets its answer after the body. */
			st->early_answer = true;
			st->discarded += n;
		} else if (r < 0) {
			set_error(st, MHD_HTTP_BAD_GATEWAY, "The app did not answer properly",
				  r == -ETIMEDOUT ? "It stopped reading the request."
						  : "The connection to it failed.");
			st->phase = PHASE_DEFERRED;
		}
	} else if (n > 0)
		st->discarded += n;

	if (n > 0 && st->discarded > PROXY_DISCARD_LIMIT) {
		/* MHD 0.9.75 queues no answer while a body arrives: give up instead. */
		log_debug("Dropped more than %d body bytes, closing", PROXY_DISCARD_LIMIT);
		return MHD_NO;
	}
	if (n > 0)
		return MHD_YES;
	return answer(st, params, raw_uri, method);
}

void
proxy_completed(struct proxy_request *st, enum MHD_RequestTerminationCode toe)
{
	if (!st)
		return;
	if (st->fd >= 0 && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK)
		log_debug("Proxied request ended early (%d)", (int)toe);
	upstream_release(st, false);
	free(st->error_detail);
	free(st);
}
