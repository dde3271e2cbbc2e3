/* SPDX-License-Identifier: MIT */
/*
 * front.c: the HTTP face of granaryd, on libmicrohttpd.
 *
 * Serves the shell (for now a placeholder page) and /healthz. libmicrohttpd
 * runs its own polling thread; the handler below never blocks.
 *
 * Keep-alive: Debian's libmicrohttpd 0.9.75 answers "Connection: close" when
 * a response is queued on the first handler call of a request (FIELD-NOTES.md:
 * 20k vs 97k req/s). So the first call only records that the request exists
 * and returns MHD_YES; the response is queued on the second call.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <microhttpd.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response)

struct front {
	struct MHD_Daemon *daemon; /* owned */
};

/*
 * Per-request state: created on the first handler call, freed by
 * request_completed(). Bodies nobody asked for are read and dropped up to
 * DISCARD_LIMIT, so the answer is not lost to a TCP reset: closing a socket
 * with unread bytes makes the kernel send RST, and clients then report
 * "connection reset" instead of our status code.
 */
struct request {
	uint64_t discarded;
};

#define DISCARD_LIMIT (1024 * 1024)

static const char placeholder_page[] =
	"<!doctype html>\n"
	"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>Granary</title>\n"
	"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40em;margin:4em auto;"
	"padding:0 1em;color:#222}code{background:#f3f3f3;padding:0 .3em}</style>\n"
	"</head><body>\n"
	"<h1>Granary is running</h1>\n"
	"<p>This server is up (version " GRANARY_VERSION "). The app shell, where you "
	"sign in, install apps and open grains, is not part of this build yet.</p>\n"
	"<p>Health check: <a href=\"/healthz\"><code>/healthz</code></a></p>\n"
	"</body></html>\n";

static enum MHD_Result
queue_static(struct MHD_Connection *connection, unsigned status, const char *content_type,
	     const char *body)
{
	_cleanup_(MHD_destroy_responsep) struct MHD_Response *response = NULL;

	response =
		MHD_create_response_from_buffer(strlen(body), (void *)body, MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	/* The shell's own pages: never framed, never sniffed, no referrer leaks. */
	if (MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type) !=
		    MHD_YES ||
	    MHD_add_response_header(response, "X-Content-Type-Options", "nosniff") != MHD_YES ||
	    MHD_add_response_header(response, "X-Frame-Options", "DENY") != MHD_YES ||
	    MHD_add_response_header(response, "Referrer-Policy", "same-origin") != MHD_YES ||
	    MHD_add_response_header(response, "Content-Security-Policy",
				    "default-src 'self'; style-src 'unsafe-inline'; "
				    "frame-ancestors 'none'") != MHD_YES ||
	    MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store") != MHD_YES)
		return MHD_NO;
	if (status == MHD_HTTP_METHOD_NOT_ALLOWED &&
	    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD") != MHD_YES)
		return MHD_NO;
	return MHD_queue_response(connection, status, response);
}

static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
	       const char *version, const char *upload_data, size_t *upload_data_size,
	       void **req_cls)
{
	struct request *req = *req_cls;
	bool get;

	(void)cls;
	(void)version;
	(void)upload_data;

	if (!req) {
		req = calloc(1, sizeof(*req));
		if (!req)
			return MHD_NO;
		*req_cls = req;
		return MHD_YES;
	}

	get = strcmp(method, MHD_HTTP_METHOD_GET) == 0 || strcmp(method, MHD_HTTP_METHOD_HEAD) == 0;
	if (*upload_data_size > 0) {
		req->discarded += *upload_data_size;
		*upload_data_size = 0;
		/* Past the limit, answer now; MHD then closes the connection. */
		if (req->discarded <= DISCARD_LIMIT)
			return MHD_YES;
	}
	if (!get)
		return queue_static(connection, MHD_HTTP_METHOD_NOT_ALLOWED,
				    "text/plain; charset=utf-8", "Method not allowed\n");
	if (strcmp(url, "/healthz") == 0)
		return queue_static(connection, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n");
	if (strcmp(url, "/") == 0)
		return queue_static(connection, MHD_HTTP_OK, "text/html; charset=utf-8",
				    placeholder_page);
	return queue_static(connection, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
			    "Not found\n");
}

static void
request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
		  enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)connection;
	(void)toe;
	free(*req_cls);
	*req_cls = NULL;
}

int
front_start(const struct front_config *config, struct front **ret)
{
	_cleanup_free_ struct front *f = NULL;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;

	/*
	 * The socket is bound by our caller, so a bind error is reported with its
	 * real errno, and a privileged port can later be bound before dropping root.
	 */
	/* clang-format off */
	f->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ERROR_LOG,
		0, NULL, NULL, handle_request, NULL,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
		MHD_OPTION_LISTEN_SOCKET, config->listen_fd,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
		MHD_OPTION_END);
	/* clang-format on */
	if (!f->daemon)
		return -EIO;
	*ret = TAKE_PTR(f);
	return 0;
}

struct front *
front_free(struct front *f)
{
	if (!f)
		return NULL;
	if (f->daemon)
		MHD_stop_daemon(f->daemon);
	free(f);
	return NULL;
}
