/* SPDX-License-Identifier: MIT */
/*
 * front.c: the HTTP face of granaryd, on libmicrohttpd.
 *
 * One libmicrohttpd polling thread runs every handler, so the front's state
 * (the database connection, counters) is touched by one thread only. A
 * request goes through:
 *
 *   1st call   request_new(): Host check, route lookup, body policy. Nothing
 *              is queued here: Debian's libmicrohttpd 0.9.75 answers
 *              "Connection: close" to responses queued on the first call
 *              (FIELD-NOTES.md: 20k vs 97k req/s).
 *   body calls JSON bodies are collected up to BODY_LIMIT; bodies nobody
 *              asked for are dropped up to DISCARD_LIMIT (closing a socket
 *              with unread bytes makes the kernel send RST, and the client
 *              sees a reset instead of our answer).
 *   last call  origin check for unsafe methods, session lookup, the handler
 *              (front_api.c), which queues exactly one response.
 *   completed  request_free().
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cap-ng.h>
#include <microhttpd.h>
#include <seccomp.h>
#include <sodium.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sched.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

DEFINE_TRIVIAL_CLEANUP_FUNC(struct MHD_Response *, MHD_destroy_response)

#define BODY_LIMIT    (64 * 1024)
#define DISCARD_LIMIT (1024 * 1024)

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

	if (req->responded)
		return -EALREADY;
	response = MHD_create_response_from_buffer(len, (void *)body,
						   flags & RESPOND_STATIC ? MHD_RESPMEM_PERSISTENT
									  : MHD_RESPMEM_MUST_COPY);
	if (!response)
		return -ENOMEM;
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
	for (size_t i = 0; i < req->n_extra_headers; i++)
		if (MHD_add_response_header(response, req->extra_headers[i].name,
					    req->extra_headers[i].value) != MHD_YES)
			return -ENOMEM;
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

	if (!value)
		return -ENOMEM;
	text = json_dumps(value, JSON_COMPACT);
	json_decref(value);
	if (!text)
		return -ENOMEM;
	return respond(req, status, "application/json", text, strlen(text), 0);
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
	const struct sockaddr *sa = info ? info->client_addr : NULL;

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

	if (fetch_site && strcmp(fetch_site, "same-origin") != 0 && strcmp(fetch_site, "none") != 0)
		return false;
	return origin && strcmp(origin, req->front->origin) == 0;
}

static void
request_free(struct request *req)
{
	if (!req)
		return;
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
	client_address(connection, req->address, sizeof(req->address));

	host = MHD_lookup_connection_value(connection, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
	/* Only the shell's own host is served here; grain session hosts come with the proxy. */
	if (!host || strcasecmp(host, f->shell_host) != 0)
		req->unknown_host = true;
	else
		route_find(req);
	return req;
}

static enum MHD_Result
handle_request(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
	       const char *version, const char *upload_data, size_t *upload_data_size,
	       void **req_cls)
{
	struct front *f = cls;
	struct request *req = *req_cls;
	int r;

	(void)version;

	if (!req) {
		req = request_new(f, connection, method, url);
		if (!req)
			return MHD_NO;
		*req_cls = req;
		f->metrics.requests++;
		return MHD_YES;
	}

	if (*upload_data_size > 0) {
		size_t n = *upload_data_size;

		*upload_data_size = 0;
		if (req->route && (req->route->flags & ROUTE_BODY) && !req->body_too_large) {
			if (buf_append(&req->body, upload_data, n) < 0)
				req->body_too_large = true;
		}
		req->discarded += n;
		/* Past the discard limit, answer now; MHD then closes the connection. */
		if (req->discarded <= DISCARD_LIMIT)
			return MHD_YES;
		req->body_too_large = true;
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
	else if (req->body_too_large)
		r = respond_error(req, MHD_HTTP_CONTENT_TOO_LARGE, "body_too_large",
				  "The request body is larger than %d bytes", BODY_LIMIT);
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

static void
request_completed(void *cls, struct MHD_Connection *connection, void **req_cls,
		  enum MHD_RequestTerminationCode toe)
{
	(void)cls;
	(void)connection;
	(void)toe;
	request_free(*req_cls);
	*req_cls = NULL;
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
	int r;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->launcher_fd = config->launcher_fd;
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

	/* TLS: the PEM the root parent read (config.c, tls_load()), or nothing. */
	struct MHD_OptionItem tls_options[] = {
		{ MHD_OPTION_HTTPS_MEM_CERT, 0, (void *)config->tls_cert },
		{ MHD_OPTION_HTTPS_MEM_KEY, 0, config->tls_key },
		{ MHD_OPTION_END, 0, NULL },
	};
	/* clang-format off */
	f->daemon = MHD_start_daemon(
		MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_USE_ITC | MHD_USE_ERROR_LOG |
		(config->tls_cert ? MHD_USE_TLS : 0),
		0, NULL, NULL, handle_request, f,
		MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
		MHD_OPTION_NOTIFY_COMPLETED, request_completed, NULL,
		MHD_OPTION_LISTEN_SOCKET, config->listen_fd,
		MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)60,
		MHD_OPTION_CONNECTION_LIMIT, (unsigned)1024,
		MHD_OPTION_ARRAY, config->tls_cert ? tls_options : &tls_options[2],
		MHD_OPTION_END);
	/* clang-format on */
	/* GnuTLS holds its own copy of the key now: no other one stays in this process. */
	if (config->tls_key)
		sodium_memzero(config->tls_key, config->tls_key_size);
	if (!f->daemon)
		return log_error_errno(EIO, "Failed to start the HTTP server");
	*ret = TAKE_PTR(f);
	return 0;
}

struct front *
front_free(struct front *f)
{
	if (!f)
		return NULL;
	if (f->daemon) {
		/*
		 * The listening socket is shared with the parent, which hands it to
		 * the next front after a restart. MHD_stop_daemon() would shut it
		 * down for everyone; quiescing first gives it back to us untouched,
		 * and closing our copy leaves the parent's working.
		 */
		MHD_socket listen_fd = MHD_quiesce_daemon(f->daemon);

		MHD_stop_daemon(f->daemon);
		if (listen_fd != MHD_INVALID_SOCKET)
			(void)close(listen_fd);
	}
	db_free(f->db);
	free(f->origin);
	free(f->shell_host);
	free(f->state_dir);
	free(f);
	return NULL;
}

/*
 * The front's seccomp filter: what a compromised front must never do. It runs
 * libmicrohttpd, SQLite and glibc's threads, whose exact syscall set moves
 * with library versions, so this is a denylist of everything privileged or
 * kernel-attack-surface-heavy; the grains, which run code we do not trust at
 * all, get the allowlist (sandbox/). Other ABIs (x32, i386) are killed by
 * libseccomp's default bad-architecture action.
 */
static const char *const front_denied[] = {
	"execve",
	"execveat",
	"ptrace",
	"process_vm_readv",
	"process_vm_writev",
	"mount",
	"umount2",
	"pivot_root",
	"chroot",
	"fsopen",
	"fsconfig",
	"fsmount",
	"move_mount",
	"open_tree",
	"fspick",
	"mount_setattr",
	"unshare",
	"setns",
	"bpf",
	"perf_event_open",
	"userfaultfd",
	"io_uring_setup",
	"io_uring_enter",
	"io_uring_register",
	"keyctl",
	"add_key",
	"request_key",
	"init_module",
	"finit_module",
	"delete_module",
	"kexec_load",
	"kexec_file_load",
	"reboot",
	"swapon",
	"swapoff",
	"acct",
	"syslog",
	"quotactl",
	"settimeofday",
	"clock_settime",
	"clock_adjtime",
	"adjtimex",
	"sethostname",
	"setdomainname",
	"iopl",
	"ioperm",
	"modify_ldt",
	"personality",
	"open_by_handle_at",
	"name_to_handle_at",
	"setuid",
	"setgid",
	"setreuid",
	"setregid",
	"setresuid",
	"setresgid",
	"setgroups",
	"setfsuid",
	"setfsgid",
	"mknod",
	"mknodat",
	"lookup_dcookie",
	"vhangup",
	"kcmp",
	"pidfd_getfd",
};

static int
front_seccomp(void)
{
	scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_ALLOW);
	int r = 0;

	if (!ctx)
		return -ENOMEM;
	for (size_t i = 0; i < ELEMENTSOF(front_denied) && r >= 0; i++) {
		int nr = seccomp_syscall_resolve_name(front_denied[i]);

		if (nr == __NR_SCMP_ERROR)
			continue; /* not known to this libseccomp: not on this kernel either */
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), nr, 0);
	}
	/* Threads yes, namespaces no. clone3 takes its flags through a pointer the
	 * filter cannot read, so it answers ENOSYS and glibc falls back to clone. */
	const unsigned long ns_flags[] = { CLONE_NEWNS,	 CLONE_NEWCGROUP, CLONE_NEWUTS,
					   CLONE_NEWIPC, CLONE_NEWUSER,	  CLONE_NEWPID,
					   CLONE_NEWNET, CLONE_NEWTIME };
	for (size_t i = 0; i < ELEMENTSOF(ns_flags) && r >= 0; i++)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EPERM), SCMP_SYS(clone), 1,
				     SCMP_A0(SCMP_CMP_MASKED_EQ, ns_flags[i], ns_flags[i]));
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(ENOSYS), SCMP_SYS(clone3), 0);
	/* Sockets: unix, IPv4, IPv6 only (no raw netlink, packet, vsock...). */
	if (r >= 0)
		r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
				     SCMP_A0(SCMP_CMP_GT, AF_INET6));
	for (int family = 0; family < AF_INET6 && r >= 0; family++)
		if (family != AF_UNIX && family != AF_INET)
			r = seccomp_rule_add(ctx, SCMP_ACT_ERRNO(EAFNOSUPPORT), SCMP_SYS(socket), 1,
					     SCMP_A0(SCMP_CMP_EQ, (scmp_datum_t)family));
	if (r >= 0)
		r = seccomp_load(ctx);
	seccomp_release(ctx);
	return r;
}

int
front_main(const struct front_config *config)
{
	_cleanup_(front_freep) struct front *f = NULL;
	sigset_t mask;
	int r, sig;

	log_setup("granaryd-front");

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
	r = front_seccomp();
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
