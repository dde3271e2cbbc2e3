/* SPDX-License-Identifier: MIT */
/*
 * front_api.c: the routes of the shell host: the JSON API under /api/ (see
 * docs/api.md), /healthz, /metrics and the first-admin setup page.
 *
 * Every handler gets a request whose Host, method, body size and (for unsafe
 * API methods) Origin were already checked by front.c, whose JSON body is
 * parsed when the route collects one, and whose user is set when the route
 * needs one. It queues exactly one response. Bad input gets a 4xx with a
 * stable code and changes nothing.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "common/dir.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/parse.h"
#include "common/macro.h"
#include "common/token.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

static const char *
cookie_name(struct request *req)
{
	return req->front->tls ? SESSION_COOKIE_TLS : SESSION_COOKIE;
}

/* Host-only (no Domain), HttpOnly, SameSite=Lax; __Host- and Secure under TLS. */
static int
set_session_cookie(struct request *req, const char *token, int64_t max_age)
{
	return respond_header(req, MHD_HTTP_HEADER_SET_COOKIE,
			      "%s=%s; Path=/; Max-Age=%" PRId64 "; HttpOnly; SameSite=Lax%s",
			      cookie_name(req), token, max_age, req->front->tls ? "; Secure" : "");
}

/* ---- plain routes ------------------------------------------------------------ */

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
	"install apps and open grains in a browser, is not part of this build yet; the "
	"JSON API under <code>/api/</code> and the <code>granary</code> command are.</p>\n"
	"<p>Health check: <a href=\"/healthz\"><code>/healthz</code></a></p>\n"
	"</body></html>\n";

static int
handle_root(struct request *req)
{
	return respond(req, MHD_HTTP_OK, "text/html; charset=utf-8", placeholder_page,
		       sizeof(placeholder_page) - 1, RESPOND_STATIC);
}

static int
handle_healthz(struct request *req)
{
	return respond(req, MHD_HTTP_OK, "text/plain; charset=utf-8", "ok\n", 3, RESPOND_STATIC);
}

static bool
address_is_loopback(const char *a)
{
	return strncmp(a, "127.", 4) == 0 || strcmp(a, "::1") == 0 ||
	       strncmp(a, "::ffff:127.", 11) == 0;
}

static int
handle_metrics(struct request *req)
{
	struct front *f = req->front;
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	int64_t users = 0, grains = 0;

	/* Operational data for the admin's monitoring, not for the world. */
	if (!address_is_loopback(req->address))
		return respond_error(req, MHD_HTTP_FORBIDDEN, "forbidden",
				     "/metrics is served to loopback clients only");
	unsigned running, known;

	(void)db_user_count(f->db, &users);
	(void)db_grain_count(f->db, &grains);
	grain_manager_counts(f->grains, &running, &known);
#define METRIC(name, type, help, value)                                                            \
	(void)buf_printf(                                                                          \
		&b, "# HELP " name " " help "\n# TYPE " name " " type "\n" name " %" PRIu64 "\n",  \
		(uint64_t)(value))
	METRIC("granary_http_requests_total", "counter", "HTTP requests received.",
	       f->metrics.requests);
	METRIC("granary_http_client_errors_total", "counter", "Answers with a 4xx status.",
	       f->metrics.errors_4xx);
	METRIC("granary_http_server_errors_total", "counter", "Answers with a 5xx status.",
	       f->metrics.errors_5xx);
	METRIC("granary_logins_total", "counter", "Successful logins.", f->metrics.logins);
	METRIC("granary_login_failures_total", "counter", "Failed logins.",
	       f->metrics.login_failures);
	METRIC("granary_app_installs_total", "counter", "Packages installed.", f->metrics.installs);
	METRIC("granary_users", "gauge", "Accounts.", users);
	METRIC("granary_grains", "gauge", "Grains, trashed ones included.", grains);
	METRIC("granary_grains_running", "gauge", "Grains running now.", running);
	METRIC("granary_proxied_requests_total", "counter", "Requests on grain session hosts.",
	       __atomic_load_n(&f->metrics.proxied, __ATOMIC_RELAXED));
#undef METRIC
	return respond(req, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", b.data, b.len,
		       0);
}

static const char setup_page[] =
	"<!doctype html>\n"
	"<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
	"<title>Granary: first admin</title>\n"
	"<style>body{font:16px/1.5 system-ui,sans-serif;max-width:30em;margin:4em auto;"
	"padding:0 1em}label{display:block;margin:.8em 0}input{display:block;width:100%;"
	"font:inherit;padding:.3em}#msg{color:#a00}</style>\n"
	"</head><body>\n"
	"<h1>Create the first admin</h1>\n"
	"<form id=\"f\"><label>Name <input name=\"name\" autocomplete=\"username\" required "
	"pattern=\"[a-z0-9][a-z0-9._-]{0,63}\"></label>\n"
	"<label>Password (8 characters or more) <input name=\"password\" type=\"password\" "
	"autocomplete=\"new-password\" minlength=\"8\" required></label>\n"
	"<button>Create</button> <span id=\"msg\"></span></form>\n"
	"<script>\n"
	"document.getElementById('f').onsubmit = async (e) => {\n"
	"  e.preventDefault();\n"
	"  const d = new FormData(e.target);\n"
	"  const r = await fetch('/api/setup', {method: 'POST', headers: {'Content-Type': "
	"'application/json'}, body: JSON.stringify({token: location.pathname.split('/').pop(), "
	"name: d.get('name'), password: d.get('password')})});\n"
	"  if (r.ok) location.href = '/';\n"
	"  else document.getElementById('msg').textContent = (await r.json()).error.message;\n"
	"};\n"
	"</script></body></html>\n";

static bool
setup_token_valid(struct front *f, const char *token)
{
	return f->setup_token[0] && token && strlen(token) == TOKEN_STRING_LEN &&
	       token_equal(token, f->setup_token, TOKEN_STRING_LEN);
}

static int
handle_setup_page(struct request *req)
{
	if (!setup_token_valid(req->front, req->param))
		return respond(req, MHD_HTTP_NOT_FOUND, "text/plain; charset=utf-8",
			       "This setup link is not valid (anymore).\n", 40, RESPOND_STATIC);
	return respond(req, MHD_HTTP_OK, "text/html; charset=utf-8", setup_page,
		       sizeof(setup_page) - 1, RESPOND_STATIC);
}

/* ---- accounts ----------------------------------------------------------------- */

struct credentials {
	const char *token;
	const char *name;
	const char *password;
	bool admin;
};

static const struct json_field credential_fields[] = {
	{ "name", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct credentials, name),
	  .min = 1, .max = USER_NAME_MAX },
	{ "password", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
	  offsetof(struct credentials, password), .min = 1, .max = PASSWORD_MAX },
	{},
};

int
respond_bad_fields(struct request *req, const struct json_error *err)
{
	return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_request", "%s", err->message);
}

/* Validate a new account's name and password; answers 400 and returns 1 when bad. */
static int
check_new_account(struct request *req, const char *name, const char *password)
{
	int r;

	if (user_name_check(name) < 0)
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_name",
				     "Names are 1 to %d of a-z, 0-9, '.', '_', '-', starting with "
				     "a letter or digit",
				     USER_NAME_MAX)
			       ?: 1;
	r = password_check(password);
	if (r < 0)
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_password",
				     "Passwords are %d to %d bytes long", PASSWORD_MIN,
				     PASSWORD_MAX)
			       ?: 1;
	return 0;
}

/* Create a user; answers the error itself and returns 1 when the input was bad. */
static int
create_user(struct request *req, const char *name, const char *password, bool admin,
	    int64_t *ret_id)
{
	char hash[PASSWORD_HASH_MAX + 1];
	int r;

	r = check_new_account(req, name, password);
	if (r != 0)
		return r;
	r = password_hash(password, hash);
	if (r < 0)
		return r;
	r = db_user_add(req->front->db, name, hash, admin, now_seconds(), ret_id);
	sodium_memzero(hash, sizeof(hash));
	if (r == -EEXIST)
		return respond_error(req, MHD_HTTP_CONFLICT, "name_taken",
				     "There is already a user named '%s'", name)
			       ?: 1;
	return r;
}

static int
start_session(struct request *req, int64_t user_id, unsigned status, json_t *body)
{
	char token[TOKEN_STRING_LEN + 1];
	int r;

	r = session_create(req->front->db, user_id, now_seconds(), token);
	if (r < 0) {
		json_decref(body);
		return r;
	}
	r = set_session_cookie(req, token, SESSION_LIFETIME);
	sodium_memzero(token, sizeof(token));
	if (r < 0) {
		json_decref(body);
		return r;
	}
	return respond_json(req, status, body);
}

static int
handle_setup(struct request *req)
{
	static const struct json_field fields[] = {
		{ "token", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct credentials, token), .min = 1, .max = 128 },
		{ "name", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct credentials, name), .min = 1, .max = USER_NAME_MAX },
		{ "password", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct credentials, password), .min = 1, .max = PASSWORD_MAX },
		{},
	};
	struct front *f = req->front;
	struct credentials c = {};
	struct json_error err;
	struct db_user u;
	int64_t id, users = 0;
	int r;

	if (json_dispatch(req->json, "", fields, &c, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	/* The link works once, and only while there is no user at all. */
	r = db_user_count(f->db, &users);
	if (r < 0)
		return r;
	if (users > 0)
		f->setup_token[0] = '\0';
	if (!setup_token_valid(f, c.token))
		return respond_error(req, MHD_HTTP_FORBIDDEN, "bad_setup_token",
				     "This setup link is not valid (anymore)");
	r = create_user(req, c.name, c.password, true, &id);
	if (r != 0)
		return r < 0 ? r : 0;
	sodium_memzero(f->setup_token, sizeof(f->setup_token));
	log_info("First admin '%s' created through the setup link", c.name);
	r = db_user_by_id(f->db, id, &u, NULL, 0);
	if (r < 0)
		return r;
	return start_session(req, id, MHD_HTTP_CREATED, json_pack("{s:o}", "user", user_json(&u)));
}

static int
handle_login(struct request *req)
{
	struct front *f = req->front;
	char hash[PASSWORD_HASH_MAX + 1] = "";
	struct credentials c = {};
	struct json_error err;
	struct db_user u;
	int64_t now = now_seconds(), retry_after = 0;
	int r;

	if (json_dispatch(req->json, "", credential_fields, &c, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	if (login_throttled(req->address, c.name, now, &retry_after) < 0) {
		(void)respond_header(req, "Retry-After", "%" PRId64, MAX(retry_after, 1));
		return respond_error(req, MHD_HTTP_TOO_MANY_REQUESTS, "too_many_failures",
				     "Too many failed logins; try again in %" PRId64 " seconds",
				     MAX(retry_after, 1));
	}
	r = db_user_by_name(f->db, c.name, &u, hash, sizeof(hash));
	if (r < 0 && r != -ENOENT)
		return r;
	/*
	 * An unknown name costs the same argon2 work as a wrong password, so the
	 * answer's timing does not tell which names exist.
	 */
	if (r == -ENOENT) {
		char dummy[PASSWORD_HASH_MAX + 1];

		(void)password_hash("timing-equaliser", dummy);
		r = -EACCES;
	} else
		r = password_verify(hash, c.password);
	sodium_memzero(hash, sizeof(hash));
	if (r < 0) {
		login_failed(req->address, c.name, now);
		f->metrics.login_failures++;
		return respond_error(req, MHD_HTTP_UNAUTHORIZED, "bad_credentials",
				     "Wrong name or password");
	}
	f->metrics.logins++;
	return start_session(req, u.id, MHD_HTTP_OK, json_pack("{s:o}", "user", user_json(&u)));
}

static int
handle_logout(struct request *req)
{
	int r = session_end(req->front->db, request_cookie(req, cookie_name(req)));

	if (r < 0)
		return r;
	(void)respond_header(req, MHD_HTTP_HEADER_SET_COOKIE,
			     "%s=; Path=/; Max-Age=0; HttpOnly; SameSite=Lax%s", cookie_name(req),
			     req->front->tls ? "; Secure" : "");
	return respond_empty(req, MHD_HTTP_NO_CONTENT);
}

static int
handle_me(struct request *req)
{
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:o}", "user", user_json(&req->user)));
}

static int
handle_password(struct request *req)
{
	struct passwords {
		const char *old, *new;
	} p = {};
	static const struct json_field fields[] = {
		{ "old", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct passwords, old),
		  .min = 1, .max = PASSWORD_MAX },
		{ "new", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct passwords, new),
		  .min = 1, .max = PASSWORD_MAX },
		{},
	};
	char hash[PASSWORD_HASH_MAX + 1];
	struct json_error err;
	struct db_user u;
	int r;

	if (json_dispatch(req->json, "", fields, &p, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	r = db_user_by_id(req->front->db, req->user.id, &u, hash, sizeof(hash));
	if (r < 0)
		return r;
	if (password_verify(hash, p.old) < 0)
		return respond_error(req, MHD_HTTP_FORBIDDEN, "bad_credentials",
				     "The current password is wrong");
	if (password_check(p.new) < 0)
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_password",
				     "Passwords are %d to %d bytes long", PASSWORD_MIN,
				     PASSWORD_MAX);
	r = password_hash(p.new, hash);
	if (r < 0)
		return r;
	r = db_user_set_password(req->front->db, u.id, hash, now_seconds());
	sodium_memzero(hash, sizeof(hash));
	if (r < 0)
		return r;
	/* Whoever else held a session of this account is signed out. */
	r = session_end_others(req->front->db, u.id, req->session_token);
	if (r < 0)
		return r;
	return respond_empty(req, MHD_HTTP_NO_CONTENT);
}

static int
add_user_to_array(const struct db_user *u, void *userdata)
{
	return json_array_append_new(userdata, user_json(u)) == 0 ? 0 : -ENOMEM;
}

static int
handle_users_list(struct request *req)
{
	_cleanup_json_ json_t *users = json_array();
	int r;

	if (!users)
		return -ENOMEM;
	r = db_user_list(req->front->db, add_user_to_array, users);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:O}", "users", users));
}

static int
handle_users_add(struct request *req)
{
	static const struct json_field fields[] = {
		{ "name", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct credentials, name), .min = 1, .max = USER_NAME_MAX },
		{ "password", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct credentials, password), .min = 1, .max = PASSWORD_MAX },
		{ "admin", JSON_FIELD_BOOL, 0, offsetof(struct credentials, admin) },
		{},
	};
	struct credentials c = {};
	struct json_error err;
	struct db_user u;
	int64_t id;
	int r;

	if (json_dispatch(req->json, "", fields, &c, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	r = create_user(req, c.name, c.password, c.admin, &id);
	if (r != 0)
		return r < 0 ? r : 0;
	log_info("User '%s' added by '%s'%s", c.name, req->user.name, c.admin ? " (admin)" : "");
	r = db_user_by_id(req->front->db, id, &u, NULL, 0);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_CREATED, json_pack("{s:o}", "user", user_json(&u)));
}

/* ---- apps and grains ------------------------------------------------------------ */

static int
add_app_to_array(const struct db_package *p, void *userdata)
{
	json_t *o = package_json(p, false);

	return o && json_array_append_new(userdata, o) == 0 ? 0 : -ENOMEM;
}

static int
handle_apps_list(struct request *req)
{
	_cleanup_json_ json_t *apps = json_array();
	int r;

	if (!apps)
		return -ENOMEM;
	r = db_app_list(req->front->db, add_app_to_array, apps);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:O}", "apps", apps));
}

static int
handle_app_get(struct request *req)
{
	struct db_package p = {};
	json_t *app;
	int r;

	r = db_app_get(req->front->db, req->param, &p);
	if (r == -ENOENT)
		return respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_app", "No such app");
	if (r < 0)
		return r;
	app = package_json(&p, true);
	db_package_release(&p);
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:o}", "app", app));
}

/* packages/ in the state directory (front's working directory), opened once. */
static int
packages_dir(struct front *f)
{
	if (f->packages_fd < 0) {
		f->packages_fd = open("packages", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (f->packages_fd < 0)
			return negative_errno();
	}
	return f->packages_fd;
}

/* Ask the launcher to delete packages/<id>; failures are logged (housekeeping retries). */
static void
package_discard(struct front *f, const char *package_id)
{
	struct ipc_package m;
	struct ipc_message reply;
	int r;

	memcpy(m.package_id, package_id, PACKAGE_ID_LEN);
	r = launcher_call(f->launcher, IPC_PACKAGE_DELETE, &m, sizeof(m), -1, &reply);
	if (r < 0)
		log_warning_errno(r, "Failed to delete package %s: %m", package_id);
}

/* The launcher's refusal of a package, as an HTTP answer. */
static int
respond_install_error(struct request *req, int error, const char *message)
{
	switch (error) {
	case -EBADMSG:
	case -EPROTONOSUPPORT:
	case -E2BIG:
	case -ENAMETOOLONG:
	case -EFBIG:
		return respond_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "bad_package",
				     "The package was refused: %s", message);
	case -ENOSPC:
	case -EDQUOT:
		return respond_error(req, MHD_HTTP_INSUFFICIENT_STORAGE, "no_space",
				     "Not enough disk space to unpack the package: %s", message);
	default:
		log_error("Installing a package failed: %s", message);
		return respond_error(req, MHD_HTTP_INTERNAL_SERVER_ERROR, "install_failed",
				     "Installing the package failed: %s", message);
	}
}

static void
front_package_discard(const char *package_id, void *userdata)
{
	package_discard(userdata, package_id);
}

static int
handle_app_install(struct request *req)
{
	struct front *f = req->front;
	const char *type = request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
	struct package_install_result installed = {};
	struct app_register_result reg;
	struct ipc_message reply = {};
	json_t *answer = NULL;
	int pfd, r;

	if (type && strncmp(type, "multipart/", 10) == 0)
		return respond_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE, "bad_content_type",
				     "Send the .spk file itself as the body "
				     "(Content-Type: application/octet-stream), not a form");
	if (req->upload_fd < 0 || req->upload_size == 0)
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "empty_upload",
				     "Send the .spk file as the request body");
	pfd = packages_dir(f);
	if (pfd < 0)
		return log_error_errno(pfd, "Failed to open the packages directory: %m");

	r = launcher_call(f->launcher, IPC_PACKAGE_INSTALL, NULL, 0, req->upload_fd, &reply);
	if (r < 0 && reply.header.type == IPC_ERROR)
		return respond_install_error(req, r, reply.payload.error.message);
	if (r < 0)
		return log_error_errno(r, "The launcher did not answer the install: %m");
	if (reply.header.type != IPC_PACKAGE_INSTALLED)
		return -EBADMSG;
	memcpy(installed.package_id, reply.payload.installed.package_id, PACKAGE_ID_LEN);
	memcpy(installed.app_id, reply.payload.installed.app_id,
	       sizeof(reply.payload.installed.app_id));
	installed.existed = reply.payload.installed.existed;

	r = app_install_finish(f->db, pfd, &installed, req->upload_size, req->user.id,
			       front_package_discard, f, &reg, &answer);
	if (r == -ESTALE)
		return respond_error(req, MHD_HTTP_CONFLICT, "downgrade", "%s", reg.message);
	if (r == -EBADMSG)
		return respond_error(req, MHD_HTTP_UNPROCESSABLE_CONTENT, "bad_package", "%s",
				     reg.message);
	if (r < 0)
		return r;
	if (reg.outcome != APP_ALREADY_INSTALLED) {
		f->metrics.installs++;
		log_info("App %s %s by '%s' (package %s)", installed.app_id, reg.outcome_name,
			 req->user.name, installed.package_id);
	}
	return respond_json(
		req, reg.outcome == APP_ALREADY_INSTALLED ? MHD_HTTP_OK : MHD_HTTP_CREATED, answer);
}

static int
handle_app_remove(struct request *req)
{
	int r = app_remove(req->front->db, req->param, req->user.id, front_package_discard,
			   req->front);

	if (r == -ENOENT)
		return respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_app", "No such app");
	if (r == -EBUSY)
		return respond_error(req, MHD_HTTP_CONFLICT, "app_in_use",
				     "Grains of this app still exist (the trash counts too); "
				     "delete them first");
	if (r < 0)
		return r;
	log_info("App %s removed by '%s'", req->param, req->user.name);
	return respond_empty(req, MHD_HTTP_NO_CONTENT);
}

/* ---- running grains --------------------------------------------------------------- */

/*
 * The grain named by the path, if the user owns it, or (admin_may) is an
 * admin, who operates the server: starts, stops, reads the log of any grain.
 * Anyone else's grain is "not found", like a grain that does not exist: ids
 * must not be probeable. 1: answered.
 */
static int
grain_of_path(struct request *req, bool admin_may, struct db_grain *ret)
{
	int r = db_grain_get(req->front->db, req->param, ret);

	if (r == -ENOENT ||
	    (r >= 0 && ret->owner_id != req->user.id && !(admin_may && req->user.admin))) {
		(void)respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_grain", "No such grain");
		return 1;
	}
	return r;
}

static int
owned_grain(struct request *req, struct db_grain *ret)
{
	return grain_of_path(req, false, ret);
}

static int
managed_grain(struct request *req, struct db_grain *ret)
{
	return grain_of_path(req, true, ret);
}

/* grain_json() plus what the grain manager knows; detailed: its cgroup's figures too. */
static json_t *
grain_json_live(struct front *f, const struct db_grain *g, bool detailed)
{
	_cleanup_json_ json_t *o = grain_json(g);
	struct grain_status st;

	if (!o)
		return NULL;
	grain_manager_status(f->grains, g->id, &st);
	if (json_object_set_new(o, "running", json_boolean(st.running)) < 0 ||
	    json_object_set_new(o, "starting", json_boolean(st.starting)) < 0 ||
	    json_object_set_new(o, "connections", json_integer(st.connections)) < 0 ||
	    json_object_set_new(o, "crashes", json_integer(st.crashes)) < 0 ||
	    json_object_set_new(o, "lastError", st.error[0] ? json_string(st.error) : json_null()) <
		    0 ||
	    json_object_set_new(o, "startedAt",
				st.running ? json_integer(st.started_at) : json_null()) < 0)
		return NULL;
	if (detailed && st.running) {
		struct ipc_message reply;

		if (launcher_grain_call(f->launcher, IPC_GRAIN_STATUS, g->id, &reply) >= 0 &&
		    reply.payload.stats.running &&
		    (json_object_set_new(
			     o, "memory",
			     json_integer((json_int_t)reply.payload.stats.memory_bytes)) < 0 ||
		     json_object_set_new(o, "cpuSeconds",
					 json_real((double)reply.payload.stats.cpu_usec / 1e6)) <
			     0))
			return NULL;
	}
	return TAKE_PTR(o);
}

static int
respond_grain(struct request *req, unsigned status, const struct db_grain *g)
{
	return respond_json(req, status,
			    json_pack("{s:o}", "grain", grain_json_live(req->front, g, true)));
}

/* A grain object with what h's caller holds of it ("access"). */
static json_t *
held_grain_json(struct front *f, const struct held_grain *h, bool detailed)
{
	_cleanup_json_ json_t *o = grain_json_live(f, &h->g, detailed);

	if (!o || json_object_set_new(o, "access", held_access_json(h)) < 0)
		return NULL;
	return TAKE_PTR(o);
}

/* The package the grain runs from its next start: its app's current one. */
static int
grain_current_package(struct front *f, struct db_grain *g)
{
	struct db_package p = {};
	int r = db_app_get(f->db, g->app_id, &p);

	if (r < 0)
		return r;
	if (strcmp(p.id, g->package_id) != 0) {
		r = db_grain_set_package(f->db, g->id, p.id);
		if (r >= 0)
			(void)snprintf(g->package_id, sizeof(g->package_id), "%s", p.id);
	}
	db_package_release(&p);
	return r;
}

struct grain_list {
	struct front *front;
	json_t *array;
	int64_t user_id;
	struct db_grain *shared; /* grains shared with the user, checked after the listing */
	size_t n_shared;
	struct {
		char app_id[APP_ID_MAX + 1];
		struct grain_roles roles;
	} apps[8]; /* the roles of the apps seen last (a manifest is read once, not per grain) */
	size_t n_apps;
};

/* The roles of g's app into h. */
static int
list_roles(struct grain_list *list, const struct db_grain *g, struct held_grain *h)
{
	size_t i, n = MIN(list->n_apps, ELEMENTSOF(list->apps));
	int r;

	for (i = 0; i < n; i++)
		if (strcmp(list->apps[i].app_id, g->app_id) == 0)
			break;
	if (i == n) {
		i = list->n_apps++ % ELEMENTSOF(list->apps);
		list->apps[i].app_id[0] = '\0';
		r = grain_roles_load(list->front->db, g->app_id, &list->apps[i].roles);
		if (r < 0)
			return r;
		(void)snprintf(list->apps[i].app_id, sizeof(list->apps[i].app_id), "%s", g->app_id);
	}
	h->roles = list->apps[i].roles;
	return 0;
}

static int
add_grain_to_array(const struct db_grain *g, void *userdata)
{
	struct grain_list *list = userdata;
	struct held_grain h = { .g = *g, .owner = true };
	json_t *o;
	int r;

	r = list_roles(list, g, &h);
	if (r < 0)
		return r;
	h.access = (struct cap_access){ .active = true, .mask = grain_perms_all(&h.roles) };
	o = held_grain_json(list->front, &h, false);
	return o && json_array_append_new(list->array, o) == 0 ? 0 : -ENOMEM;
}

static int
collect_shared(const struct db_grain *g, void *userdata)
{
	struct grain_list *list = userdata;
	struct db_grain *more = reallocarray(list->shared, list->n_shared + 1, sizeof(*more));

	if (!more)
		return -ENOMEM;
	list->shared = more;
	list->shared[list->n_shared++] = *g;
	return 0;
}

/* A grain shared with the user: listed while a grant of theirs is active. */
static int
add_shared_grain(struct grain_list *list, const struct db_grain *g)
{
	struct front *f = list->front;
	struct held_grain h = { .g = *g };
	json_t *o;
	int r;

	r = list_roles(list, g, &h);
	if (r >= 0)
		r = cap_best_held(f->db, &h.roles, g->id, list->user_id, 0, now_seconds(),
				  &h.cap_id, &h.access);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	o = held_grain_json(f, &h, false);
	return o && json_array_append_new(list->array, o) == 0 ? 0 : -ENOMEM;
}

static int
handle_grains_list(struct request *req)
{
	_cleanup_json_ json_t *grains = json_array();
	struct grain_list list = { req->front, grains, req->user.id };
	int r;

	if (!grains)
		return -ENOMEM;
	r = db_grain_list(req->front->db, req->user.id, true, add_grain_to_array, &list);
	if (r >= 0 && req->user.id > 0)
		r = db_grain_list_shared(req->front->db, req->user.id, collect_shared, &list);
	for (size_t i = 0; r >= 0 && i < list.n_shared; i++)
		r = add_shared_grain(&list, &list.shared[i]);
	free(list.shared);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:O}", "grains", grains));
}

/* Grain storage through the launcher (grain_create()'s storage callback). */
static int
front_storage(const char *grain_id, bool create, void *userdata)
{
	struct front *f = userdata;
	struct ipc_message reply;

	return launcher_grain_call(f->launcher,
				   create ? IPC_GRAIN_STORAGE_CREATE : IPC_GRAIN_STORAGE_DELETE,
				   grain_id, &reply);
}

/* Delete a grain for good: its storage first, then its row (a retry finishes either). */
static int
grain_purge(struct front *f, const char *grain_id)
{
	int r;

	/* Dead before its files go (the launcher would kill it too; this also forgets it). */
	session_cache_forget_grain(f->sessions, grain_id);
	(void)grain_manager_stop(f->grains, grain_id, true);
	r = front_storage(grain_id, false, f);

	if (r >= 0)
		r = db_grain_delete(f->db, grain_id);
	if (r < 0)
		return log_warning_errno(r, "Failed to purge grain %s: %m", grain_id);
	log_info("Grain %s deleted for good", grain_id);
	return 0;
}

/* In or out of the trash: sessions learn it; a grain in the trash stops. */
static void
grain_trashed(struct front *f, const char *grain_id)
{
	session_cache_forget_grain(f->sessions, grain_id);
	(void)grain_manager_stop(f->grains, grain_id, false);
}

static int
handle_grain_create(struct request *req)
{
	struct grain_request {
		const char *app;
		const char *title;
		const char *owner;
	} gr = {};
	static const struct json_field fields[] = {
		{ "app", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
		  offsetof(struct grain_request, app), .min = 1, .max = APP_ID_MAX },
		{ "title", JSON_FIELD_STRING, 0, offsetof(struct grain_request, title), .min = 1,
		  .max = GRAIN_TITLE_MAX },
		{ "owner", JSON_FIELD_STRING, 0, offsetof(struct grain_request, owner), .min = 1,
		  .max = USER_NAME_MAX },
		{},
	};
	struct db_user owner = {};
	struct db_grain g = {};
	struct json_error err;
	int r;

	if (json_dispatch(req->json, "", fields, &gr, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	if (gr.owner && !req->user.admin)
		return respond_error(req, MHD_HTTP_FORBIDDEN, "not_admin",
				     "Only an admin may create grains for someone else");
	if (gr.owner) {
		r = db_user_by_name(req->front->db, gr.owner, &owner, NULL, 0);
		if (r == -ENOENT)
			return respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_user",
					     "No user named '%s'", gr.owner);
		if (r < 0)
			return r;
	} else if (req->user.id <= 0)
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "owner_required",
				     "Name the grain's owner (\"owner\")");
	else
		owner = req->user;

	r = grain_create(req->front->db, gr.app, owner.id, gr.title, req->user.id, front_storage,
			 req->front, &g);
	if (r == -ENOENT)
		return respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_app",
				     "No app with id '%s' is installed", gr.app);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_CREATED, json_pack("{s:o}", "grain", grain_json(&g)));
}

static int
handle_grain_get(struct request *req)
{
	struct held_grain h;
	int r = held_grain(req, 0, &h);

	if (r != 0)
		return r < 0 ? r : 0;
	return respond_json(req, MHD_HTTP_OK,
			    json_pack("{s:o}", "grain", held_grain_json(req->front, &h, true)));
}

static int
handle_grain_update(struct request *req)
{
	struct grain_update {
		const char *title;
		bool trashed;
	} u = {};
	static const struct json_field fields[] = {
		{ "title", JSON_FIELD_STRING, 0, offsetof(struct grain_update, title), .min = 1,
		  .max = GRAIN_TITLE_MAX },
		{ "trashed", JSON_FIELD_BOOL, 0, offsetof(struct grain_update, trashed) },
		{},
	};
	struct json_error err;
	struct db_grain g;
	int r;

	if (json_dispatch(req->json, "", fields, &u, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	r = owned_grain(req, &g);
	if (r != 0)
		return r < 0 ? r : 0;
	r = db_begin(req->front->db);
	if (r < 0)
		return r;
	if (u.title)
		r = db_grain_rename(req->front->db, g.id, u.title);
	if (r >= 0 && json_object_get(req->json, "trashed"))
		r = db_grain_trash(req->front->db, g.id, u.trashed ? now_seconds() : 0);
	r = db_end(req->front->db, r);
	if (r < 0)
		return r;
	if (json_object_get(req->json, "trashed"))
		grain_trashed(req->front, g.id);
	r = db_grain_get(req->front->db, g.id, &g);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:o}", "grain", grain_json(&g)));
}

static int
handle_grain_delete(struct request *req)
{
	struct db_grain g;
	int r = owned_grain(req, &g);

	if (r != 0)
		return r < 0 ? r : 0;
	/* Deleting moves to the trash; deleting from the trash deletes for good. */
	if (g.trashed_at) {
		char detail[64];

		r = grain_purge(req->front, g.id);
		if (r < 0)
			return r;
		/* The grain's own audit rows go with it; this one says who did it. */
		(void)snprintf(detail, sizeof(detail), "{\"grain\":\"%s\"}", g.id);
		(void)db_audit_add(req->front->db, now_seconds(), NULL, req->user.id,
				   "grain.deleted", detail);
		return respond_empty(req, MHD_HTTP_NO_CONTENT);
	}
	r = db_grain_trash(req->front->db, g.id, now_seconds());
	if (r < 0)
		return r;
	grain_trashed(req->front, g.id);
	(void)db_audit_add(req->front->db, now_seconds(), g.id, req->user.id, "grain.trashed",
			   NULL);
	return respond_empty(req, MHD_HTTP_NO_CONTENT);
}

/* ---- running grains: open, start, stop, log ---- */

/*
 * The grain of the path, to run: its owner's (or, managing, an admin's too),
 * out of the trash, set to run its app's current package. 1: answered.
 */
static int
runnable_grain(struct request *req, bool managing, struct db_grain *g)
{
	int r = managing ? managed_grain(req, g) : owned_grain(req, g);

	if (r != 0)
		return r;
	if (g->trashed_at) {
		(void)respond_error(req, MHD_HTTP_CONFLICT, "grain_trashed",
				    "The grain is in the trash; restore it first");
		return 1;
	}
	return grain_current_package(req->front, g);
}

static int
handle_grain_open(struct request *req)
{
	struct front *f = req->front;
	_cleanup_free_ char *url = NULL;
	char session_id[33];
	const char *host;
	struct held_grain h;
	int r;

	/*
	 * Its holders: the owner, people it was shared with (through their best
	 * grant), and root on the admin socket (granary grain open), as its
	 * owner: it can read the whole state directory anyway. Recorded.
	 */
	r = held_grain(req, 0, &h);
	if (r != 0)
		return r < 0 ? r : 0;
	if (h.g.trashed_at)
		return respond_error(req, MHD_HTTP_CONFLICT, "grain_trashed",
				     "The grain is in the trash; restore it first");
	r = grain_current_package(f, &h.g);
	if (r >= 0)
		r = session_open(f, &h.g, &h.actor, h.cap_id, &url, session_id);
	if (r < 0)
		return r;
	if (req->local)
		(void)db_audit_add(f->db, now_seconds(), h.g.id, 0, "grain.opened_by_root", NULL);
	/* "scheme://HOST/.granary/enter?k=KEY": the host is between "//" and the next "/". */
	host = strstr(url, "://") + 3;
	return respond_json(req, MHD_HTTP_CREATED,
			    json_pack("{s:s,s:s%,s:s}", "url", url, "host", host,
				      strcspn(host, "/"), "session", session_id));
}

static int
handle_grain_start(struct request *req)
{
	struct front *f = req->front;
	struct grain_run *run;
	char error[512] = "";
	struct db_grain g;
	uint64_t generation;
	bool reused;
	int fd, r = runnable_grain(req, true, &g);

	if (r != 0)
		return r < 0 ? r : 0;
	run = grain_manager_get(f->grains, g.id, g.package_id);
	if (!run)
		return -ENOMEM;
	/* Starting takes the app's start-up time: nobody else waits for it. */
	pthread_mutex_unlock(&f->lock);
	r = grain_acquire(f->grains, run, &fd, &reused, &generation, error, sizeof(error));
	if (r >= 0)
		grain_release(f->grains, run, fd, true, generation);
	pthread_mutex_lock(&f->lock);
	run = grain_run_unref(f->grains, run);
	if (r < 0)
		return respond_error(req, MHD_HTTP_SERVICE_UNAVAILABLE, "grain_start_failed",
				     "The grain did not start. %s", error);
	return respond_grain(req, MHD_HTTP_OK, &g);
}

static int
handle_grain_stop(struct request *req)
{
	struct db_grain g;
	int r = managed_grain(req, &g);

	if (r != 0)
		return r < 0 ? r : 0;
	(void)grain_manager_stop(req->front->grains, g.id, false);
	return respond_grain(req, MHD_HTTP_OK, &g);
}

#define LOG_DEFAULT_BYTES (64 * 1024)
#define LOG_MAX_BYTES	  (4 * 1024 * 1024)

static int
handle_grain_log(struct request *req)
{
	const char *arg =
		MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "bytes");
	_cleanup_free_ char *text = NULL;
	uint64_t want = LOG_DEFAULT_BYTES;
	struct db_grain g;
	size_t len;
	int r = managed_grain(req, &g);

	if (r != 0)
		return r < 0 ? r : 0;
	if (arg && (parse_uint64(arg, &want) < 0 || want == 0 || want > LOG_MAX_BYTES))
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_bytes",
				     "bytes must be a number from 1 to %d", LOG_MAX_BYTES);
	r = launcher_grain_log_tail(req->front->launcher, g.id, (size_t)want, &text, &len);
	if (r < 0)
		return r;
	return respond(req, MHD_HTTP_OK, "text/plain; charset=utf-8", TAKE_PTR(text), len,
		       RESPOND_TAKE);
}

/* ---- the table ------------------------------------------------------------------- */

static int
count_app(const struct db_package *p, void *userdata)
{
	(void)p;
	(*(int64_t *)userdata)++;
	return 0;
}

static int
handle_status(struct request *req)
{
	struct front *f = req->front;
	int64_t users = 0, apps = 0, grains = 0, schema = 0;
	unsigned running, known;
	int r;

	grain_manager_counts(f->grains, &running, &known);

	if ((r = db_user_count(f->db, &users)) < 0 ||
	    (r = db_app_list(f->db, count_app, &apps)) < 0 ||
	    (r = db_grain_count(f->db, &grains)) < 0 || (r = db_schema_version(f->db, &schema)) < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK,
			    json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:I,s:I,s:I,s:I}", "version",
				      GRANARY_VERSION, "state", f->state_dir, "schema",
				      (json_int_t)schema, "frontPid", (json_int_t)getpid(),
				      "startedAt", (json_int_t)f->started_at, "users",
				      (json_int_t)users, "apps", (json_int_t)apps, "grains",
				      (json_int_t)grains, "grainsRunning", (json_int_t)running,
				      "installs", (json_int_t)f->metrics.installs));
}

/* ---- housekeeping ------------------------------------------------------------- */

static int
collect_grain_id(const struct db_grain *g, void *userdata)
{
	return json_array_append_new(userdata, json_string(g->id)) == 0 ? 0 : -ENOMEM;
}

/* Grains in the trash for longer than TRASH_KEEP: storage first, then the row. */
static int
purge_trash(struct front *f, int64_t now)
{
	_cleanup_json_ json_t *ids = json_array();
	size_t i;
	json_t *id;
	int r;

	if (!ids)
		return -ENOMEM;
	r = db_grain_list_trashed(f->db, now - TRASH_KEEP, collect_grain_id, ids);
	if (r < 0)
		return r;
	json_array_foreach (ids, i, id) {
		r = grain_purge(f, json_string_value(id));
		if (r < 0)
			return r;
	}
	return 0;
}

/* A package directory without a row: a crash between unpack and commit. */
static int
sweep_package(int fd, const char *entry, void *userdata)
{
	struct front *f = userdata;
	struct db_package p = {};
	int r;

	(void)fd;
	if (!package_id_valid(entry))
		return 0;
	r = db_package_get(f->db, entry, &p);
	if (r >= 0)
		db_package_release(&p);
	if (r != -ENOENT)
		return r < 0 ? r : 0;
	log_info("Deleting package %s, which no app uses (an install or removal did not finish)",
		 entry);
	package_discard(f, entry);
	return 0;
}

static int
sweep_packages(struct front *f)
{
	int pfd = packages_dir(f);

	return pfd < 0 ? pfd : dir_foreach(pfd, ".", sweep_package, f);
}

int
front_housekeeping(struct front *f)
{
	int64_t now = now_seconds();
	int r, k;

	f->housekeeping_at = now;
	r = sweep_packages(f);
	if (r < 0)
		log_warning_errno(r, "Failed to look for unused packages: %m");
	k = purge_trash(f, now);
	if (db_grain_session_purge(f->db, now) < 0 || db_session_purge(f->db, now) < 0)
		log_warning("Failed to delete expired sessions");
	return r < 0 ? r : k;
}

static const struct route routes[] = {
	{ "GET", "/", 0, handle_root },
	{ "GET", "/healthz", ROUTE_ANY_HOST, handle_healthz },
	{ "GET", "/metrics", 0, handle_metrics },
	{ "GET", "/setup/", ROUTE_PARAM, handle_setup_page },
	{ "POST", "/api/setup", ROUTE_API | ROUTE_BODY, handle_setup },
	{ "POST", "/api/login", ROUTE_API | ROUTE_BODY, handle_login },
	{ "POST", "/api/logout", ROUTE_API, handle_logout },
	{ "GET", "/api/me", ROUTE_API | ROUTE_USER, handle_me },
	{ "POST", "/api/me/password", ROUTE_API | ROUTE_BODY | ROUTE_USER, handle_password },
	{ "GET", "/api/status", ROUTE_API | ROUTE_ADMIN, handle_status },
	{ "GET", "/api/users", ROUTE_API | ROUTE_ADMIN, handle_users_list },
	{ "POST", "/api/users", ROUTE_API | ROUTE_BODY | ROUTE_ADMIN, handle_users_add },
	{ "GET", "/api/apps", ROUTE_API | ROUTE_USER, handle_apps_list },
	{ "POST", "/api/apps", ROUTE_API | ROUTE_ADMIN | ROUTE_UPLOAD, handle_app_install },
	{ "GET", "/api/apps/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_app_get },
	{ "DELETE", "/api/apps/", ROUTE_API | ROUTE_ADMIN | ROUTE_PARAM, handle_app_remove },
	{ "GET", "/api/grains", ROUTE_API | ROUTE_USER, handle_grains_list },
	{ "POST", "/api/grains", ROUTE_API | ROUTE_BODY | ROUTE_USER, handle_grain_create },
	{ "GET", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_get },
	{ "PATCH", "/api/grains/", ROUTE_API | ROUTE_BODY | ROUTE_USER | ROUTE_PARAM,
	  handle_grain_update },
	{ "DELETE", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_delete },
	{ "POST", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_open,
	  "/open" },
	{ "POST", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_start,
	  "/start" },
	{ "POST", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_stop,
	  "/stop" },
	{ "GET", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_grain_log, "/log" },
	{},
};

/* An id segment: 1..127 of [A-Za-z0-9_-], nothing else (no '/', '.', '%'). */
static bool
param_valid(const char *s, size_t len, size_t size)
{
	if (len == 0 || len >= size)
		return false;
	for (size_t i = 0; i < len; i++) {
		char c = s[i];
		if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
		      c == '-' || c == '_'))
			return false;
	}
	return true;
}

/* Does url match rt? Then *ret_param (and *ret_param2) say where its id segments are. */
static bool
route_match(const struct route *rt, const char *url, size_t *ret_param, size_t *ret_param2)
{
	size_t len = strlen(rt->path), suffix = rt->suffix ? strlen(rt->suffix) : 0;
	const char *rest = url + len, *second;

	if (rt->flags & ROUTE_REST) {
		*ret_param = MIN(strlen(rest), (size_t)127); /* longer: cut, and still no id */
		return strncmp(url, rt->path, len) == 0;
	}
	if (!(rt->flags & (ROUTE_PARAM | ROUTE_PARAM2)))
		return strcmp(url, rt->path) == 0;
	*ret_param = strcspn(rest, "/");
	if (strncmp(url, rt->path, len) != 0 || !param_valid(rest, *ret_param, 128))
		return false;
	rest += *ret_param;
	if (!(rt->flags & ROUTE_PARAM2))
		return strcmp(rest, rt->suffix ? rt->suffix : "") == 0;
	second = rest + suffix;
	*ret_param2 = strlen(second);
	return strncmp(rest, rt->suffix, suffix) == 0 && param_valid(second, *ret_param2, 32);
}

void
route_find(struct request *req)
{
	static const struct route *const tables[] = { routes, share_routes };
	size_t allow_len = 0;

	req->allow[0] = '\0';
	for (size_t i = 0; i < ELEMENTSOF(tables); i++)
		for (const struct route *rt = tables[i]; rt->method; rt++) {
			size_t len = strlen(rt->path), param_len = 0, param2_len = 0;

			if (!route_match(rt, req->url, &param_len, &param2_len))
				continue;
			/* HEAD is GET without the body; libmicrohttpd drops the body itself. */
			if (strcmp(rt->method, req->method) == 0 ||
			    (strcmp(req->method, "HEAD") == 0 && strcmp(rt->method, "GET") == 0)) {
				if (rt->flags & (ROUTE_PARAM | ROUTE_PARAM2 | ROUTE_REST))
					(void)snprintf(req->param, sizeof(req->param), "%.*s",
						       (int)param_len, req->url + len);
				if (rt->flags & ROUTE_PARAM2)
					(void)snprintf(req->param2, sizeof(req->param2), "%s",
						       req->url + strlen(req->url) - param2_len);
				req->route = rt;
				return;
			}
			/* Collect what the path allows, for the 405's Allow header. */
			int n = snprintf(req->allow + allow_len, sizeof(req->allow) - allow_len,
					 "%s%s%s", allow_len ? ", " : "", rt->method,
					 strcmp(rt->method, "GET") == 0 ? ", HEAD" : "");
			if (n > 0 && (size_t)n < sizeof(req->allow) - allow_len)
				allow_len += (size_t)n;
		}
	req->method_not_allowed = allow_len > 0;
}

int
route_authorize(struct request *req, bool respond)
{
	const struct route *rt = req->route;
	const char *token;
	int r;

	if (!(rt->flags & (ROUTE_USER | ROUTE_ADMIN)) || req->has_user)
		return 0;
	token = request_cookie(req, cookie_name(req));
	r = session_lookup(req->front->db, token, now_seconds(), &req->user);
	if (r == -ENOENT) {
		if (respond && (r = respond_error(req, MHD_HTTP_UNAUTHORIZED, "not_signed_in",
						  "Sign in first (POST /api/login)")) < 0)
			return r;
		return -EACCES;
	}
	if (r < 0)
		return r;
	if ((rt->flags & ROUTE_ADMIN) && !req->user.admin) {
		if (respond && (r = respond_error(req, MHD_HTTP_FORBIDDEN, "not_admin",
						  "Only an admin may do this")) < 0)
			return r;
		return -EACCES;
	}
	req->has_user = true;
	req->session_token = token;
	return 0;
}

int
route_run(struct request *req)
{
	const struct route *rt = req->route;
	int r;

	r = route_authorize(req, true);
	if (r < 0)
		return req->responded ? 0 : r;
	if (rt->flags & ROUTE_BODY) {
		struct json_error err;

		const char *type = request_header(req, MHD_HTTP_HEADER_CONTENT_TYPE);
		if (!type || strncmp(type, "application/json", 16) != 0)
			return respond_error(req, MHD_HTTP_UNSUPPORTED_MEDIA_TYPE,
					     "bad_content_type",
					     "Send the body as Content-Type: application/json");
		r = json_parse_strict(req->body.data ? req->body.data : "", req->body.len,
				      BODY_LIMIT, &req->json, &err);
		if (r < 0)
			return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_json", "%s",
					     err.message);
	}
	return rt->handler(req);
}
