/* SPDX-License-Identifier: MIT */
/*
 * granary.c: the admin command line (DESIGN.md, command-line contract).
 *
 * When granaryd runs, every command goes to it over its admin socket
 * (STATE/granaryd.sock, root only, peer checked): the same JSON API the
 * browser uses, spoken over HTTP on a unix socket, so the daemon sees every
 * change (its counters, later its caches and running grains). When it does not
 * run, the command works on the state directly, holding the daemon's lock so
 * none starts meanwhile; installing and creating grains then need root, as the
 * launcher would. Either way a command builds the same JSON and prints it for
 * people or, with --json, as is.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/buf.h"
#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define REPLY_LIMIT (64u << 20) /* the largest answer the daemon could send (a long list) */

static const char *arg_state = "/var/lib/granary";
static bool arg_json;

/* The daemon's admin socket, or -1 when working on the state directly. */
static int daemon_fd = -1;
/* In direct mode: the state lock (no daemon starts while we work) and the database. */
static int lock_fd = -1;
static struct db *direct_db;

static void
help(void)
{
	printf("Usage: granary [--state DIR] [--json] COMMAND [ARG]...\n"
	       "Administer a Granary server, through the running granaryd or, when it is\n"
	       "stopped, on its state directory.\n"
	       "\n"
	       "Commands:\n"
	       "  user add NAME [--admin]            add a user; the password is read from stdin\n"
	       "  user list                          list users\n"
	       "  app install FILE.spk               install (or update) an app package\n"
	       "  app list                           list installed apps\n"
	       "  app remove APP_ID                  remove an app that no grain uses\n"
	       "  grain new APP_ID --owner NAME [--title T]\n"
	       "                                     create a grain; prints its id\n"
	       "  grain list                         list every grain\n"
	       "  grain open GRAIN_ID                print a one-time URL that opens the grain as "
	       "its owner\n"
	       "  grain start GRAIN_ID               start a grain now (granaryd must run)\n"
	       "  grain stop GRAIN_ID                stop a running grain\n"
	       "  status                             show what the server holds\n"
	       "\n"
	       "Options:\n"
	       "  -s, --state DIR   state directory (default /var/lib/granary)\n"
	       "      --json        machine-readable output (the API's JSON)\n"
	       "  -h, --help        show this help (also after a command)\n"
	       "      --version     show the version\n"
	       "\n"
	       "Examples:\n"
	       "  echo 'a long password' | granary --state ./var user add alice --admin\n"
	       "  granary --state ./var app install hello.spk\n"
	       "  granary --state ./var grain new APP_ID --owner alice --title 'My notes'\n"
	       "  granary --state ./var share GRAIN_ID --role viewer --expires 7d\n");
}

/* ---- the two ways to the state ----------------------------------------------------- */

/* Connect to the daemon; 0 and daemon_fd set, or -ENOENT when it does not run. */
static int
daemon_connect(void)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	_cleanup_close_ int fd = -EBADF;
	int r;

	r = local_socket_path(arg_state, sa.sun_path, sizeof(sa.sun_path));
	if (r < 0)
		return log_error_errno(r, "The state path '%s' is too long", arg_state);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return log_error_errno(errno, "Failed to create a socket: %m");
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		if (errno == ENOENT || errno == ECONNREFUSED)
			return -ENOENT;
		if (errno == EACCES)
			return log_error_errno(errno,
					       "Only root may talk to granaryd through '%s'; "
					       "run this as root",
					       sa.sun_path);
		return log_error_errno(errno, "Failed to connect to '%s': %m", sa.sun_path);
	}
	daemon_fd = TAKE_FD(fd);
	return 0;
}

/* Open the state without the daemon: take its lock, open (create) the database. */
static int
direct_open(bool create)
{
	_cleanup_free_ char *path = NULL;
	_cleanup_close_ int fd = -EBADF;
	int r;

	if (create && mkdir(arg_state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create '%s': %m", arg_state);
	if (asprintf(&path, "%s/granaryd.lock", arg_state) < 0)
		return log_oom();
	fd = open(path, O_RDWR | O_CLOEXEC | O_NOFOLLOW | (create ? O_CREAT : 0), 0600);
	if (fd < 0 && errno == ENOENT)
		return log_error_errno(
			errno, "No Granary state in '%s'; give the right --state DIR", arg_state);
	if (fd < 0 && errno != EACCES)
		return log_error_errno(errno, "Failed to open '%s': %m", path);
	if (fd >= 0 && flock(fd, LOCK_EX | LOCK_NB) < 0)
		return log_error_errno(EBUSY,
				       "granaryd holds '%s' but its admin socket does not answer; "
				       "is it starting or stopping? Try again",
				       arg_state);
	/* Without the lock file's permission (not root) reading still works; writing
	 * then fails on the database's own permissions with a clear error. */
	lock_fd = TAKE_FD(fd);

	free(path);
	path = NULL;
	if (asprintf(&path, "%s/granary.sqlite3", arg_state) < 0)
		return log_oom();
	r = db_open(path, create ? DB_OPEN_CREATE : 0, &direct_db);
	if (r == -ENOENT)
		return log_error_errno(r, "No Granary state in '%s'; give the right --state DIR",
				       arg_state);
	if (r == -EBADMSG)
		return log_error_errno(r, "The database '%s' is damaged; restore a backup", path);
	if (r == -EPROTONOSUPPORT)
		return log_error_errno(r, "The database '%s' was written by a newer Granary", path);
	if (r < 0)
		return log_error_errno(r, "Failed to open '%s': %m", path);
	return 0;
}

/* The daemon if it runs, else the state directly (created when create). */
static int
state_open(bool create)
{
	int r = daemon_connect();

	if (r != -ENOENT)
		return r;
	return direct_open(create);
}

static void
state_close(void)
{
	daemon_fd = safe_close(daemon_fd);
	direct_db = db_free(direct_db);
	lock_fd = safe_close(lock_fd);
}

/* A directory of the launcher's (root-owned), opened as the launcher does. */
static int
direct_root_dir(const char *name, mode_t mode, int *ret_fd)
{
	_cleanup_close_ int state_fd = -EBADF;
	int r;

	if (geteuid() != 0)
		return log_error_errno(EPERM, "Without a running granaryd this needs root");
	state_fd = open(arg_state, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (state_fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", arg_state);
	r = trusted_dir_open(state_fd, name, mode, ret_fd);
	if (r == -EPERM)
		return log_error_errno(r, "'%s/%s' is not owned by root or is writable by others",
				       arg_state, name);
	if (r < 0)
		return log_error_errno(r, "Failed to open '%s/%s': %m", arg_state, name);
	return 0;
}

/* ---- HTTP over the admin socket --------------------------------------------------- */

static int
write_all(int fd, const void *data, size_t size)
{
	const char *p = data;

	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

/* Stream a file as the body, with a progress line on a terminal. */
static int
send_file(int fd, int file_fd, uint64_t size)
{
	char buf[64 * 1024];
	uint64_t sent = 0;
	bool tty = isatty(STDERR_FILENO) && !arg_json;
	int r;

	while (sent < size) {
		ssize_t n = read(file_fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		if (n == 0)
			return -EIO; /* the file shrank under us */
		r = write_all(fd, buf, (size_t)n);
		if (r < 0)
			return r;
		sent += (uint64_t)n;
		if (tty)
			fprintf(stderr, "\rUploading: %3u%%", (unsigned)(sent * 100 / size));
	}
	if (tty)
		fprintf(stderr, "\rUploaded; verifying and unpacking...\n");
	return 0;
}

/*
 * One request to the daemon (one connection, "Connection: close"). body
 * (may be NULL) is sent as JSON, or file_fd's size bytes as a package.
 * Returns the HTTP status, the answer's JSON in *ret (NULL when empty).
 */
static int
daemon_call(const char *method, const char *path, json_t *body, int file_fd, unsigned *ret_status,
	    json_t **ret)
{
	_cleanup_(buf_release) struct buf reply = BUF_INIT_LIMIT(REPLY_LIMIT);
	_cleanup_free_ char *text = NULL, *head = NULL;
	const char *type = "application/json", *sep;
	uint64_t length = 0;
	unsigned status;
	struct stat st;
	int r;

	if (body) {
		text = json_dumps(body, JSON_COMPACT);
		if (!text)
			return log_oom();
		length = strlen(text);
	} else if (file_fd >= 0) {
		if (fstat(file_fd, &st) < 0)
			return negative_errno();
		length = (uint64_t)st.st_size;
		type = "application/octet-stream";
	}
	if (asprintf(&head,
		     "%s %s HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n"
		     "Content-Type: %s\r\nContent-Length: %" PRIu64 "\r\n\r\n",
		     method, path, type, length) < 0)
		return log_oom();
	r = write_all(daemon_fd, head, strlen(head));
	if (r >= 0 && text)
		r = write_all(daemon_fd, text, length);
	if (r >= 0 && !body && file_fd >= 0)
		r = send_file(daemon_fd, file_fd, length);
	/* EPIPE: the daemon answered early (a refusal); read it below. */
	if (r < 0 && r != -EPIPE && r != -ECONNRESET)
		return log_error_errno(r, "Failed to send the request to granaryd: %m");
	(void)shutdown(daemon_fd, SHUT_WR);

	for (;;) {
		char chunk[16384];
		ssize_t n = read(daemon_fd, chunk, sizeof(chunk));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == ECONNRESET && reply.len > 0)
			break;
		if (n < 0)
			return log_error_errno(errno, "Failed to read granaryd's answer: %m");
		if (n == 0)
			break;
		if (buf_append(&reply, chunk, (size_t)n) < 0)
			return log_error_errno(E2BIG, "granaryd's answer is too large");
	}
	if (buf_append(&reply, "", 1) < 0)
		return log_oom();
	if (sscanf(reply.data, "HTTP/1.1 %u ", &status) != 1 ||
	    !(sep = strstr(reply.data, "\r\n\r\n")))
		return log_error_errno(EBADMSG, "granaryd answered something that is not HTTP");
	sep += 4;
	*ret = NULL;
	if (*sep) {
		json_error_t error;

		*ret = json_loads(sep, 0, &error);
		if (!*ret)
			return log_error_errno(EBADMSG, "granaryd's answer is not JSON: %s",
					       error.text);
	}
	*ret_status = status;
	return 0;
}

/*
 * daemon_call() for commands: a 2xx answer's JSON (member key of it, when
 * key) goes to *ret; an error answer is said and returned as -EIO.
 */
static int
daemon_do(const char *method, const char *path, json_t *body, int file_fd, const char *key,
	  json_t **ret)
{
	_cleanup_json_ json_t *answer = NULL;
	unsigned status;
	int r;

	r = daemon_call(method, path, body, file_fd, &status, &answer);
	if (r < 0)
		return r;
	if (status >= 300) {
		json_t *message = json_object_get(json_object_get(answer, "error"), "message");

		log_error("%s", json_is_string(message) ? json_string_value(message)
							: "granaryd refused the request");
		return -EIO;
	}
	if (ret)
		*ret = json_incref(key ? json_object_get(answer, key) : answer);
	if (ret && !*ret)
		return log_error_errno(EBADMSG, "granaryd's answer lacks '%s'", key);
	return 0;
}

/* ---- output ------------------------------------------------------------------------ */

static int
print_json(json_t *value)
{
	_cleanup_free_ char *text = NULL;

	if (!value)
		return log_oom();
	text = json_dumps(value, JSON_INDENT(2));
	if (!text)
		return log_oom();
	puts(text);
	return 0;
}

static const char *
str(json_t *o, const char *key)
{
	const char *s = json_string_value(json_object_get(o, key));

	return s ? s : "";
}

static json_int_t
num(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

/* ---- commands ---------------------------------------------------------------------- */

/* Read one line from stdin into buf (newline removed). */
static int
read_password(char *buf, size_t size)
{
	size_t len;

	if (isatty(STDIN_FILENO))
		fprintf(stderr, "Password (%d characters or more): ", PASSWORD_MIN);
	if (!fgets(buf, (int)size, stdin))
		return log_error_errno(EINVAL, "No password on standard input");
	len = strlen(buf);
	if (len > 0 && buf[len - 1] == '\n')
		buf[--len] = '\0';
	else if (!feof(stdin))
		return log_error_errno(E2BIG, "The password is longer than %d bytes", PASSWORD_MAX);
	if (len > 0 && buf[len - 1] == '\r')
		buf[--len] = '\0';
	return 0;
}

/*
 * Parse a command's options: --help prints usage (and help, when given: more
 * lines such as examples); the other options store as their letter says.
 */
struct command_options {
	bool admin, no_reshare, login_required;
	const char *owner, *title, *role, *expires, *label;
	const char *help; /* in: printed after the summary by --help, or NULL */
};

static int
parse_command(int argc, char *argv[], const char *usage, const char *summary, unsigned n_args,
	      const struct option *options, struct command_options *ret)
{
	int c;

	optind = 0; /* 0, not 1: glibc then forgets the main parser's state */
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'a':
			ret->admin = true;
			break;
		case 'o':
			ret->owner = optarg;
			break;
		case 't':
			ret->title = optarg;
			break;
		case 'r':
			ret->role = optarg;
			break;
		case 'e':
			ret->expires = optarg;
			break;
		case 'l':
			ret->label = optarg;
			break;
		case 'n':
			ret->no_reshare = true;
			break;
		case 'L':
			ret->login_required = true;
			break;
		case 'j': /* as the main --json; the sharing commands take it after them too */
			arg_json = true;
			break;
		case 'h':
			printf("Usage: granary %s\n%s\n", usage, summary);
			if (ret->help)
				printf("\n%s", ret->help);
			return 1;
		default:
			return log_error_errno(EINVAL, "Usage: granary %s", usage);
		}
	}
	if ((unsigned)(argc - optind) != n_args)
		return log_error_errno(EINVAL, "Usage: granary %s", usage);
	return 0;
}

static const struct option no_options[] = {
	{ "help", no_argument, NULL, 'h' },
	{},
};

static int
user_add(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "admin", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	struct command_options o = {};
	char password[PASSWORD_MAX + 2], hash[PASSWORD_HASH_MAX + 1];
	_cleanup_json_ json_t *user = NULL;
	const char *name;
	int r;

	r = parse_command(argc, argv, "user add NAME [--admin]",
			  "Add a user. The password is the first line of standard input.", 1,
			  options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	name = argv[optind];
	if (user_name_check(name) < 0)
		return log_error_errno(EINVAL,
				       "Invalid name '%s': use 1 to %d of a-z, 0-9, '.', '_', '-', "
				       "starting with a letter or digit",
				       name, USER_NAME_MAX);
	r = read_password(password, sizeof(password));
	if (r >= 0 && password_check(password) < 0)
		r = log_error_errno(EINVAL, "Passwords are %d to %d bytes long", PASSWORD_MIN,
				    PASSWORD_MAX);
	if (r >= 0)
		r = state_open(true);
	if (r >= 0 && daemon_fd >= 0) {
		_cleanup_json_ json_t *body = json_pack("{s:s,s:s,s:b}", "name", name, "password",
							password, "admin", o.admin);

		r = body ? daemon_do("POST", "/api/users", body, -1, "user", &user) : log_oom();
		/* jansson copied the password: wipe that copy too. */
		if (body)
			sodium_memzero((char *)json_string_value(json_object_get(body, "password")),
				       strlen(password));
	} else if (r >= 0) {
		struct db_user u;
		int64_t id;

		r = password_hash(password, hash);
		if (r < 0)
			log_error_errno(r, "Failed to hash the password: %m");
		if (r >= 0)
			r = db_user_add(direct_db, name, hash, o.admin, (int64_t)time(NULL), &id);
		if (r == -EEXIST)
			log_error_errno(r, "There is already a user named '%s'", name);
		else if (r < 0)
			log_error_errno(r, "Failed to add the user: %m");
		if (r >= 0 && (r = db_user_by_id(direct_db, id, &u, NULL, 0)) >= 0)
			user = user_json(&u);
	}
	sodium_memzero(password, sizeof(password));
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(user);
	printf("Added %s'%s'.\n", o.admin ? "admin " : "", name);
	return 0;
}

static int
append_user(const struct db_user *u, void *userdata)
{
	return json_array_append_new(userdata, user_json(u)) == 0 ? 0 : -ENOMEM;
}

static int
append_app(const struct db_package *p, void *userdata)
{
	return json_array_append_new(userdata, package_json(p, false)) == 0 ? 0 : -ENOMEM;
}

static int
append_grain(const struct db_grain *g, void *userdata)
{
	return json_array_append_new(userdata, grain_json(g)) == 0 ? 0 : -ENOMEM;
}

static int
direct_users(struct db *db, json_t *array)
{
	return db_user_list(db, append_user, array);
}

static int
direct_apps(struct db *db, json_t *array)
{
	return db_app_list(db, append_app, array);
}

static int
direct_grains(struct db *db, json_t *array)
{
	return db_grain_list(db, 0, true, append_grain, array);
}

static void
print_user(json_t *u)
{
	printf("%-24s %s\n", str(u, "name"),
	       json_is_true(json_object_get(u, "admin")) ? "admin" : "");
}

static void
print_app(json_t *a)
{
	printf("%-30s %-6" JSON_INTEGER_FORMAT " %s\n", str(a, "title"), num(a, "version"),
	       str(a, "id"));
}

static void
print_grain(json_t *g)
{
	printf("%s  %-16s %s%s%s\n", str(g, "id"), str(g, "owner"), str(g, "title"),
	       json_is_null(json_object_get(g, "trashedAt")) ? "" : " (in the trash)",
	       json_is_true(json_object_get(g, "running")) ? " (running)" : "");
}

/* A "... list" command: the API's GET path through the daemon, or the database. */
struct listing {
	const char *usage, *summary;
	const char *path, *key; /* GET path, and the member of its answer holding the list */
	int (*direct)(struct db *db, json_t *array);
	void (*print)(json_t *item);
	const char *empty; /* said when there is nothing (NULL: nothing said) */
};

static const struct listing user_listing = {
	"user list", "List users.", "/api/users", "users", direct_users, print_user, NULL,
};
static const struct listing app_listing = {
	"app list",
	"List installed apps.",
	"/api/apps",
	"apps",
	direct_apps,
	print_app,
	"No apps installed; add one with 'granary app install FILE.spk'.",
};
static const struct listing grain_listing = {
	"grain list",  "List every grain.", "/api/grains", "grains",
	direct_grains, print_grain,	    NULL,
};

static int
list_command(int argc, char *argv[], const struct listing *l)
{
	_cleanup_json_ json_t *items = NULL;
	struct command_options o = {};
	size_t i;
	json_t *item;
	int r;

	r = parse_command(argc, argv, l->usage, l->summary, 0, no_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	r = state_open(false);
	if (r < 0)
		return r;
	if (daemon_fd >= 0)
		r = daemon_do("GET", l->path, NULL, -1, l->key, &items);
	else if (!(items = json_array()))
		r = log_oom();
	else if ((r = l->direct(direct_db, items)) < 0)
		log_error_errno(r, "Failed to read the database: %m");
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(items);
	if (json_array_size(items) == 0 && l->empty)
		printf("%s\n", l->empty);
	json_array_foreach (items, i, item)
		l->print(item);
	return 0;
}

static void
direct_package_delete(const char *package_id, void *userdata)
{
	int r = package_delete(*(int *)userdata, package_id);

	if (r < 0)
		log_warning_errno(r,
				  "Failed to delete package %s (granaryd will at its next "
				  "start): %m",
				  package_id);
}

/* Install without the daemon: what the launcher and front would do, as root. */
static int
direct_install(int spk_fd, uint64_t size, json_t **ret)
{
	_cleanup_close_ int packages_fd = -EBADF;
	char installer[PATH_MAX];
	struct package_install_result installed;
	struct app_register_result reg;
	int r;

	r = libexec_find("granary-installer", installer, sizeof(installer));
	if (r < 0)
		return log_error_errno(r, "Failed to find granary-installer: %m; is Granary "
					  "installed completely?");
	r = direct_root_dir("packages", 0755, &packages_fd);
	if (r < 0)
		return r;
	(void)package_sweep(packages_fd);
	if (isatty(STDERR_FILENO) && !arg_json)
		fprintf(stderr, "Verifying and unpacking...\n");
	r = package_install(installer, packages_fd, spk_fd, &installed);
	if (r < 0)
		return log_error_errno(r, "Failed to run the package installer: %m");
	if (installed.error < 0)
		return log_error_errno(installed.error, "The package was refused: %s",
				       installed.message);
	r = app_install_finish(direct_db, packages_fd, &installed, size, 0, direct_package_delete,
			       &packages_fd, &reg, ret);
	if (r < 0 && reg.message[0])
		return log_error_errno(r, "%s", reg.message);
	if (r < 0)
		return log_error_errno(r, "Failed to record the package: %m");
	return 0;
}

static int
app_install(int argc, char *argv[])
{
	_cleanup_json_ json_t *answer = NULL;
	_cleanup_close_ int fd = -EBADF;
	struct command_options o = {};
	const char *outcome;
	json_t *app;
	struct stat st;
	int r;

	r = parse_command(argc, argv, "app install FILE.spk",
			  "Install an app package, or a newer version of an installed app.", 1,
			  no_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	fd = open(argv[optind], O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return log_error_errno(errno, "Failed to open '%s': %m", argv[optind]);
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode))
		return log_error_errno(EINVAL, "'%s' is not a regular file", argv[optind]);
	if ((uint64_t)st.st_size > UPLOAD_LIMIT)
		return log_error_errno(EFBIG,
				       "'%s' is larger than packages may be (%" PRIu64 " bytes)",
				       argv[optind], (uint64_t)UPLOAD_LIMIT);
	r = state_open(false);
	if (r < 0)
		return r;
	if (daemon_fd >= 0)
		r = daemon_do("POST", "/api/apps", NULL, fd, NULL, &answer);
	else
		r = direct_install(fd, (uint64_t)st.st_size, &answer);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(answer);
	app = json_object_get(answer, "app");
	outcome = str(answer, "outcome");
	printf("%s %s %s (version %" JSON_INTEGER_FORMAT ")\n  app id:     %s\n  package id: %s\n",
	       strcmp(outcome, "installed") == 0 ? "Installed"
	       : strcmp(outcome, "updated") == 0 ? "Updated to"
						 : "Already installed:",
	       str(app, "title"),
	       str(json_object_get(json_object_get(app, "manifest"), "app"), "marketingVersion"),
	       num(app, "version"), str(app, "id"), str(app, "packageId"));
	return 0;
}

static int
app_remove_command(int argc, char *argv[])
{
	_cleanup_free_ char *path = NULL;
	struct command_options o = {};
	const char *app_id;
	int r;

	r = parse_command(argc, argv, "app remove APP_ID",
			  "Remove an app and its packages. Its grains must be deleted first.", 1,
			  no_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	app_id = argv[optind];
	r = state_open(false);
	if (r < 0)
		return r;
	if (daemon_fd >= 0) {
		if (asprintf(&path, "/api/apps/%s", app_id) < 0)
			return log_oom();
		r = daemon_do("DELETE", path, NULL, -1, NULL, NULL);
	} else {
		_cleanup_close_ int packages_fd = -EBADF;

		r = direct_root_dir("packages", 0755, &packages_fd);
		if (r < 0)
			return r;
		r = app_remove(direct_db, app_id, 0, direct_package_delete, &packages_fd);
		if (r == -ENOENT)
			return log_error_errno(r, "No app with id '%s' is installed", app_id);
		if (r == -EBUSY)
			return log_error_errno(r, "Grains of this app still exist (the trash "
						  "counts too); delete them first");
		if (r < 0)
			return log_error_errno(r, "Failed to remove the app: %m");
	}
	if (r < 0)
		return r;
	if (!arg_json)
		printf("Removed app %s.\n", app_id);
	return 0;
}

/* grain_create()'s storage callback without the daemon: what the launcher does. */
static int
direct_storage(const char *grain_id, bool create, void *userdata)
{
	int grains_fd = *(int *)userdata;

	return create ? grain_storage_create(grains_fd, grain_id)
		      : grain_storage_delete(grains_fd, grain_id);
}

static int
grain_new(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "owner", required_argument, NULL, 'o' },
		{ "title", required_argument, NULL, 't' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_json_ json_t *grain = NULL;
	struct command_options o = {};
	const char *app_id;
	int r;

	r = parse_command(argc, argv, "grain new APP_ID --owner NAME [--title TITLE]",
			  "Create a grain of an installed app for a user; prints its id.", 1,
			  options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	app_id = argv[optind];
	if (!o.owner)
		return log_error_errno(EINVAL, "Name the grain's owner with --owner NAME");
	r = state_open(false);
	if (r < 0)
		return r;
	if (daemon_fd >= 0) {
		_cleanup_json_ json_t *body =
			json_pack("{s:s,s:s}", "app", app_id, "owner", o.owner);

		if (!body || (o.title && json_object_set_new(body, "title", json_string(o.title))))
			return log_oom();
		r = daemon_do("POST", "/api/grains", body, -1, "grain", &grain);
	} else {
		_cleanup_close_ int grains_fd = -EBADF;
		struct db_user owner;
		struct db_grain g;

		r = db_user_by_name(direct_db, o.owner, &owner, NULL, 0);
		if (r == -ENOENT)
			return log_error_errno(r, "No user named '%s'", o.owner);
		if (r < 0)
			return log_error_errno(r, "Failed to read the database: %m");
		r = direct_root_dir("grains", 0711, &grains_fd);
		if (r < 0)
			return r;
		r = grain_create(direct_db, app_id, owner.id, o.title, 0, direct_storage,
				 &grains_fd, &g);
		if (r == -ENOENT)
			return log_error_errno(r, "No app with id '%s' is installed", app_id);
		if (r < 0)
			return log_error_errno(r, "Failed to create the grain: %m");
		grain = grain_json(&g);
	}
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(grain);
	printf("%s\n", str(grain, "id"));
	return 0;
}

static int
direct_status(json_t **ret)
{
	int64_t users = 0, apps = 0, grains = 0, schema = 0;
	_cleanup_json_ json_t *list = json_array();
	int r;

	if (!list)
		return log_oom();
	if ((r = db_user_count(direct_db, &users)) < 0 ||
	    (r = db_app_list(direct_db, append_app, list)) < 0 ||
	    (r = db_grain_count(direct_db, &grains)) < 0 ||
	    (r = db_schema_version(direct_db, &schema)) < 0)
		return log_error_errno(r, "Failed to read the database: %m");
	apps = (int64_t)json_array_size(list);
	*ret = json_pack("{s:s,s:s,s:I,s:I,s:I,s:I,s:b}", "version", GRANARY_VERSION, "state",
			 arg_state, "schema", (json_int_t)schema, "users", (json_int_t)users,
			 "apps", (json_int_t)apps, "grains", (json_int_t)grains, "running", false);
	return *ret ? 0 : log_oom();
}

static int
status(int argc, char *argv[])
{
	_cleanup_json_ json_t *s = NULL;
	struct command_options o = {};
	bool running;
	int r;

	r = parse_command(argc, argv, "status", "Show what the server holds and whether it runs.",
			  0, no_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	r = state_open(false);
	if (r < 0)
		return r;
	running = daemon_fd >= 0;
	if (running) {
		r = daemon_do("GET", "/api/status", NULL, -1, NULL, &s);
		if (r >= 0 && json_object_set_new(s, "running", json_true()) < 0)
			r = log_oom();
	} else
		r = direct_status(&s);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(s);
	printf("granaryd: %s\n", running ? "running" : "not running");
	printf("State:    %s (schema %" JSON_INTEGER_FORMAT ")\n", str(s, "state"),
	       num(s, "schema"));
	printf("Users:    %" JSON_INTEGER_FORMAT "\nApps:     %" JSON_INTEGER_FORMAT
	       "\nGrains:   %" JSON_INTEGER_FORMAT "\n",
	       num(s, "users"), num(s, "apps"), num(s, "grains"));
	if (running)
		printf("Running:  %" JSON_INTEGER_FORMAT " grains\nInstalls: %" JSON_INTEGER_FORMAT
		       " since start\n",
		       num(s, "grainsRunning"), num(s, "installs"));
	return 0;
}

/* Connect to the running daemon, for what only it can do (why says what). */
static int
daemon_required(const char *why)
{
	int r = state_open(false);

	if (r < 0)
		return r;
	if (daemon_fd < 0)
		return log_error_errno(ESRCH, "granaryd is not running: %s", why);
	return 0;
}

/* "grain open|start|stop GRAIN_ID": POST /api/grains/ID/VERB; only a running granaryd runs grains. */
struct grain_verb {
	const char *usage, *summary, *verb;
	const char *key; /* the member of the answer to print, NULL: all of it */
	void (*print)(json_t *answer);
};

static void
print_session_url(json_t *session)
{
	printf("%s\n", str(session, "url"));
}

static void
print_grain_state(json_t *grain)
{
	printf("%s %s\n", str(grain, "id"),
	       json_is_true(json_object_get(grain, "running")) ? "running" : "stopped");
}

static const struct grain_verb grain_verbs[] = {
	{ "grain open GRAIN_ID",
	  "Open a grain as its owner: prints a one-time URL for one browser (it works once, "
	  "within 10 minutes; whoever visits it first acts as the owner there).",
	  "open", NULL, print_session_url },
	{ "grain start GRAIN_ID", "Start a grain now (it also starts on its first request).",
	  "start", "grain", print_grain_state },
	{ "grain stop GRAIN_ID", "Stop a running grain (its app gets SIGTERM, then SIGKILL).",
	  "stop", "grain", print_grain_state },
};

static int
grain_verb_command(int argc, char *argv[], const struct grain_verb *v)
{
	_cleanup_json_ json_t *answer = NULL;
	_cleanup_free_ char *path = NULL;
	struct command_options o = {};
	int r;

	r = parse_command(argc, argv, v->usage, v->summary, 1, no_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	r = daemon_required("grains run only under it");
	if (r < 0)
		return r;
	if (asprintf(&path, "/api/grains/%s/%s", argv[optind], v->verb) < 0)
		return log_oom();
	r = daemon_do("POST", path, NULL, -1, v->key, &answer);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(answer);
	v->print(answer);
	return 0;
}

/* ---- sharing (docs/sharing.md): through granaryd, root acting as the grain's owner ---- */

/* A grain id as given: 32 lowercase hex, so that it is safe in a request path. */
static int
grain_id_arg(const char *arg)
{
	if (strlen(arg) != GRAIN_ID_LEN || strspn(arg, "0123456789abcdef") != GRAIN_ID_LEN)
		return log_error_errno(EINVAL, "'%s' is not a grain id (32 hex digits)", arg);
	return 0;
}

/* What "share" and "token" differ in; both POST the same fields (docs/api.md, Sharing). */
struct share_kind {
	const char *usage, *summary, *help;
	const char *collection; /* "shares" or "tokens" */
	const char *key;	/* the member of the answer printed: "url" or "token" */
	bool link;		/* --no-reshare and --login-required apply */
};

static const struct share_kind share_link_kind = {
	"share GRAIN_ID [--role ROLE] [--expires DUR] [--label TEXT] [--no-reshare] "
	"[--login-required]",
	"Make a share link to a grain, as its owner, and print its URL. Whoever opens the\n"
	"URL gets the role (people signed in get a grant of their own). It is shown only\n"
	"this once: Granary keeps just a hash of it.",
	"Options:\n"
	"  --role ROLE        a role of the app's manifest (default: its default role)\n"
	"  --expires DUR      the link ends after DUR: 30s, 15m, 12h, 7d, 1h30m...\n"
	"  --label TEXT       a note shown in the sharing tree (up to 200 bytes)\n"
	"  --no-reshare       whoever opens it cannot share the grain on\n"
	"  --login-required   anonymous visitors are refused\n"
	"  --json             print the whole answer (JSON)\n"
	"\n"
	"Examples:\n"
	"  granary share GRAIN_ID --role viewer --expires 7d --label 'for the team'\n"
	"  granary share GRAIN_ID --role editor --no-reshare --login-required\n"
	"  granary share list GRAIN_ID\n"
	"  granary share revoke GRAIN_ID 4\n",
	"shares",
	"url",
	true,
};

static const struct share_kind share_token_kind = {
	"token GRAIN_ID [--role ROLE] [--expires DUR] [--label TEXT]",
	"Make an API token for a program, as the grain's owner, and print it (only this\n"
	"once). The program sends it as 'Authorization: Bearer TOKEN' to the api. host\n"
	"(http://api.localhost:6080/PATH by default) and acts with the role.",
	"Options:\n"
	"  --role ROLE        a role of the app's manifest (default: its default role)\n"
	"  --expires DUR      the token ends after DUR: 30s, 15m, 12h, 7d, 1h30m...\n"
	"  --label TEXT       a note shown in the sharing tree (up to 200 bytes)\n"
	"  --json             print the whole answer (JSON)\n"
	"\n"
	"Examples:\n"
	"  granary token GRAIN_ID --role viewer --label 'backup script'\n"
	"  curl -H \"Authorization: Bearer $(granary token GRAIN_ID --expires 1h)\" \\\n"
	"       http://api.localhost:6080/\n"
	"  granary share revoke GRAIN_ID EDGE_ID   (tokens are edges of the sharing tree)\n",
	"tokens",
	"token",
	false,
};

static const struct option share_options[] = {
	{ "role", required_argument, NULL, 'r' },     { "expires", required_argument, NULL, 'e' },
	{ "label", required_argument, NULL, 'l' },    { "no-reshare", no_argument, NULL, 'n' },
	{ "login-required", no_argument, NULL, 'L' }, { "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },	      {},
};

static const struct option token_options[] = {
	{ "role", required_argument, NULL, 'r' },  { "expires", required_argument, NULL, 'e' },
	{ "label", required_argument, NULL, 'l' }, { "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },	   {},
};

static const struct option json_options[] = {
	{ "json", no_argument, NULL, 'j' },
	{ "help", no_argument, NULL, 'h' },
	{},
};

/* The JSON body of a new link or token from the command's options, in *ret. */
static int
share_body(const struct command_options *o, bool link, json_t **ret)
{
	_cleanup_json_ json_t *body = json_object();
	uint64_t ms;
	int r;

	if (!body)
		return log_oom();
	if (o->role && json_object_set_new(body, "role", json_string(o->role)) < 0)
		return log_error_errno(EINVAL, "The role must be UTF-8 text");
	if (o->label && json_object_set_new(body, "label", json_string(o->label)) < 0)
		return log_error_errno(EINVAL, "The label must be UTF-8 text");
	if (o->expires) {
		r = parse_duration_ms(o->expires, &ms);
		if (r < 0)
			return log_error_errno(
				r, "Invalid duration '%s': use e.g. 30s, 15m, 12h, 7d", o->expires);
		/* The API counts in seconds; a fraction would be rounded somewhere unseen. */
		if (ms == 0 || ms % 1000 != 0)
			return log_error_errno(ERANGE,
					       "Invalid duration '%s': whole seconds, at least 1s",
					       o->expires);
		if (json_object_set_new(body, "expiresIn", json_integer((json_int_t)(ms / 1000))) <
		    0)
			return log_oom();
	}
	if (link && o->no_reshare && json_object_set_new(body, "reshare", json_false()) < 0)
		return log_oom();
	if (link && o->login_required &&
	    json_object_set_new(body, "loginRequired", json_true()) < 0)
		return log_oom();
	*ret = TAKE_PTR(body);
	return 0;
}

/* "share GRAIN_ID ..." and "token GRAIN_ID ...": POST /api/grains/ID/{shares,tokens}. */
static int
share_make(int argc, char *argv[], const struct share_kind *k)
{
	_cleanup_json_ json_t *body = NULL, *answer = NULL;
	struct command_options o = { .help = k->help };
	_cleanup_free_ char *path = NULL;
	const char *grain_id;
	int r;

	r = parse_command(argc, argv, k->usage, k->summary, 1,
			  k->link ? share_options : token_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	grain_id = argv[optind];
	if ((r = grain_id_arg(grain_id)) < 0 || (r = share_body(&o, k->link, &body)) < 0 ||
	    (r = daemon_required("sharing goes through it")) < 0)
		return r;
	if (asprintf(&path, "/api/grains/%s/%s", grain_id, k->collection) < 0)
		return log_oom();
	r = daemon_do("POST", path, body, -1, NULL, &answer);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(answer);
	if (!json_is_string(json_object_get(answer, k->key)))
		return log_error_errno(EBADMSG, "granaryd's answer lacks '%s'", k->key);
	printf("%s\n", str(answer, k->key));
	return 0;
}

static int
share_create(int argc, char *argv[])
{
	return share_make(argc, argv, &share_link_kind);
}

static int
token_create(int argc, char *argv[])
{
	return share_make(argc, argv, &share_token_kind);
}

/* One edge of the sharing tree on one line, indented by its depth. */
static void
print_share(json_t *s, unsigned depth)
{
	json_t *effective = json_object_get(s, "effective"), *p;
	json_t *expires = json_object_get(s, "expiresAt");
	const char *kind = str(s, "kind"), *state;
	char when[64] = "no expiry";
	size_t i;

	if (json_is_integer(expires)) {
		time_t t = (time_t)json_integer_value(expires);
		struct tm tm;

		if (gmtime_r(&t, &tm))
			strftime(when, sizeof(when), "expires %Y-%m-%d %H:%M:%S UTC", &tm);
	}
	if (!json_is_null(json_object_get(s, "revokedAt")))
		state = "revoked";
	else if (json_is_integer(expires) && json_integer_value(expires) <= (json_int_t)time(NULL))
		state = "expired";
	else if (json_is_true(json_object_get(effective, "active")))
		state = "active";
	else
		state = "cut above"; /* an edge it derives from is revoked or expired */

	printf("%*s#%" JSON_INTEGER_FORMAT "  %s  %s  ", (int)(2 * depth), "", num(s, "id"), kind,
	       str(s, "role"));
	if (strcmp(kind, "grant") == 0)
		printf("%s", str(s, "holder"));
	else if (json_is_string(json_object_get(s, "label")) && *str(s, "label"))
		printf("\"%s\"", str(s, "label"));
	else
		printf("-");
	printf("  %s  %s", when, state);
	if (strcmp(state, "active") == 0) {
		printf(" (");
		json_array_foreach (json_object_get(effective, "permissions"), i, p)
			printf("%s%s", i ? "," : "", json_string_value(p) ?: "?");
		if (json_array_size(json_object_get(effective, "permissions")) == 0)
			printf("no permission");
		if (json_is_true(json_object_get(effective, "readOnly")))
			printf(", read-only");
		printf(")");
	}
	printf("\n");
}

/*
 * Print the edges below parent (a JSON id; NULL for the roots: edges whose
 * parent is null or not in the list, as when someone else than the owner
 * asks), depth first. done[] marks printed edges, so that even a list with a
 * cycle ends. O(n²) in edges; the tree of one grain is small.
 */
static void
print_share_tree(json_t *shares, json_int_t parent, bool roots, unsigned depth, bool *done)
{
	size_t i, j;
	json_t *s, *t;

	json_array_foreach (shares, i, s) {
		json_t *p = json_object_get(s, "parent");
		bool match;

		if (done[i])
			continue;
		if (roots) {
			match = true;
			if (json_is_integer(p))
				json_array_foreach (shares, j, t)
					if (num(t, "id") == json_integer_value(p))
						match = false;
		} else
			match = json_is_integer(p) && json_integer_value(p) == parent;
		if (!match)
			continue;
		done[i] = true;
		print_share(s, depth);
		print_share_tree(shares, num(s, "id"), false, depth + 1, done);
	}
}

static int
share_list(int argc, char *argv[])
{
	struct command_options o = {
		.help = "Each line is an edge: #id, kind (link, grant, token), role, holder or\n"
			"label, expiry, and its state now: active (with what it grants), revoked,\n"
			"expired, or cut above (an edge it derives from is revoked or expired).\n"
			"Derived edges are indented below the edge they come from.\n"
			"\n"
			"Examples:\n"
			"  granary share list GRAIN_ID\n"
			"  granary share list GRAIN_ID --json\n",
	};
	_cleanup_json_ json_t *shares = NULL;
	_cleanup_free_ char *path = NULL;
	_cleanup_free_ bool *done = NULL;
	int r;

	r = parse_command(argc, argv, "share list GRAIN_ID",
			  "Show who holds a grain: its sharing tree, oldest first.", 1,
			  json_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	if ((r = grain_id_arg(argv[optind])) < 0 ||
	    (r = daemon_required("sharing goes through it")) < 0)
		return r;
	if (asprintf(&path, "/api/grains/%s/shares", argv[optind]) < 0)
		return log_oom();
	r = daemon_do("GET", path, NULL, -1, "shares", &shares);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(shares);
	if (json_array_size(shares) == 0) {
		printf("Not shared.\n");
		return 0;
	}
	done = calloc(json_array_size(shares), sizeof(*done));
	if (!done)
		return log_oom();
	print_share_tree(shares, 0, true, 0, done);
	return 0;
}

static int
share_revoke(int argc, char *argv[])
{
	struct command_options o = {
		.help = "The edge's sessions end and open WebSockets close within seconds. "
			"Revoking\n"
			"an edge already revoked changes nothing.\n"
			"\n"
			"Examples:\n"
			"  granary share list GRAIN_ID          (the #numbers are edge ids)\n"
			"  granary share revoke GRAIN_ID 4\n",
	};
	_cleanup_json_ json_t *share = NULL;
	_cleanup_free_ char *path = NULL;
	uint64_t edge;
	int r;

	r = parse_command(
		argc, argv, "share revoke GRAIN_ID EDGE_ID",
		"Revoke a link, grant or token of a grain, and everything derived from it.", 2,
		json_options, &o);
	if (r != 0)
		return r < 0 ? r : 0;
	if ((r = grain_id_arg(argv[optind])) < 0)
		return r;
	if (parse_uint64(argv[optind + 1], &edge) < 0 || edge == 0 || edge > INT64_MAX)
		return log_error_errno(EINVAL, "'%s' is not an edge id (see 'granary share list')",
				       argv[optind + 1]);
	if ((r = daemon_required("sharing goes through it")) < 0)
		return r;
	if (asprintf(&path, "/api/grains/%s/shares/%" PRIu64, argv[optind], edge) < 0)
		return log_oom();
	r = daemon_do("DELETE", path, NULL, -1, "share", &share);
	if (r < 0)
		return r;
	if (arg_json)
		return print_json(share);
	printf("Revoked #%" PRIu64 " and everything derived from it.\n", edge);
	return 0;
}

static const struct {
	const char *command, *sub;
	int (*run)(int argc, char *argv[]);
	const struct listing *listing;	     /* instead of run */
	const struct grain_verb *grain_verb; /* instead of run */
} commands[] = {
	{ "user", "add", user_add },
	{ "user", "list", NULL, &user_listing },
	{ "app", "install", app_install },
	{ "app", "list", NULL, &app_listing },
	{ "app", "remove", app_remove_command },
	{ "grain", "new", grain_new },
	{ "grain", "list", NULL, &grain_listing },
	{ "grain", "open", NULL, NULL, &grain_verbs[0] },
	{ "grain", "start", NULL, NULL, &grain_verbs[1] },
	{ "grain", "stop", NULL, NULL, &grain_verbs[2] },
	{ "share", "list", share_list },
	{ "share", "revoke", share_revoke },
	{ "share", NULL, share_create }, /* after its subcommands: it takes any GRAIN_ID */
	{ "token", NULL, token_create },
	{ "status", NULL, status },
};

int
main(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100, ARG_JSON };
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "json", no_argument, NULL, ARG_JSON },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	const char *cmd, *sub;
	int c, r = -EINVAL;

	log_setup("granary");
	log_show_pid(0);
	/* '+': options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+s:h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			arg_state = optarg;
			break;
		case ARG_JSON:
			arg_json = true;
			break;
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("granary %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'granary --help'.\n");
			return EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		log_error("No command given; try 'granary --help'");
		return EXIT_FAILURE;
	}
	cmd = argv[optind];
	sub = optind + 1 < argc ? argv[optind + 1] : "";

	for (size_t i = 0; i < ELEMENTSOF(commands); i++) {
		if (strcmp(cmd, commands[i].command) != 0)
			continue;
		if (!commands[i].sub) {
			r = commands[i].run(argc - optind, argv + optind);
			goto done;
		}
		if (strcmp(sub, commands[i].sub) == 0) {
			int sub_argc = argc - optind - 1;
			char **sub_argv = argv + optind + 1;

			r = commands[i].listing
				    ? list_command(sub_argc, sub_argv, commands[i].listing)
			    : commands[i].grain_verb
				    ? grain_verb_command(sub_argc, sub_argv, commands[i].grain_verb)
				    : commands[i].run(sub_argc, sub_argv);
			goto done;
		}
	}
	log_error("Unknown command '%s%s%s'; try 'granary --help'", cmd, *sub ? " " : "", sub);
done:
	state_close();
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
