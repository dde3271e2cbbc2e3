/* SPDX-License-Identifier: MIT */
/*
 * granary.c: the admin command line (DESIGN.md, command-line contract).
 *
 * Today it opens the state's database directly. That is safe whether or not
 * granaryd runs: SQLite's WAL mode lets both write, one transaction at a time.
 * Commands that need the daemon's processes (installing through the launcher,
 * stopping grains) will talk to it over its local socket.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

static const char *arg_state = "/var/lib/granary";
static bool arg_json;

static void
help(void)
{
	printf("Usage: granary [--state DIR] [--json] COMMAND [ARG]...\n"
	       "Administer a Granary server.\n"
	       "\n"
	       "Commands:\n"
	       "  user add NAME [--admin]     add a user; the password is read from stdin\n"
	       "  user list                   list users\n"
	       "  app install FILE.spk        install an app package (not in this build yet)\n"
	       "  app list                    list installed apps\n"
	       "  grain list                  list grains\n"
	       "  status                      show the state's figures\n"
	       "\n"
	       "Options:\n"
	       "  -s, --state DIR   state directory (default /var/lib/granary)\n"
	       "      --json        machine-readable output\n"
	       "  -h, --help        show this help (also after a command)\n"
	       "      --version     show the version\n"
	       "\n"
	       "Example: echo 'a long password' | granary --state ./var user add alice --admin\n");
}

static int
open_state(struct db **ret, bool create)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (create && mkdir(arg_state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create '%s': %m", arg_state);
	if (asprintf(&path, "%s/granary.sqlite3", arg_state) < 0)
		return log_oom();
	r = db_open(path, create ? DB_OPEN_CREATE : 0, ret);
	if (r == -ENOENT)
		return log_error_errno(r, "No Granary state in '%s'; give the right --state DIR",
				       arg_state);
	if (r == -EBADMSG)
		return log_error_errno(r, "The database '%s' is damaged; restore a backup", path);
	if (r < 0)
		return log_error_errno(r, "Failed to open '%s': %m", path);
	return 0;
}

static int
print_json(json_t *value)
{
	_cleanup_free_ char *text = NULL;

	if (!value)
		return log_oom();
	text = json_dumps(value, JSON_INDENT(2));
	json_decref(value);
	if (!text)
		return log_oom();
	puts(text);
	return 0;
}

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

static int
user_add(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "admin", no_argument, NULL, 'a' },
		{ "help", no_argument, NULL, 'h' },
		{},
	};
	_cleanup_(db_freep) struct db *db = NULL;
	char password[PASSWORD_MAX + 2], hash[PASSWORD_HASH_MAX + 1];
	bool admin = false;
	int64_t id;
	int c, r;

	optind = 0; /* 0, not 1: glibc then forgets the main parser's state */
	while ((c = getopt_long(argc, argv, "h", options, NULL)) >= 0) {
		switch (c) {
		case 'a':
			admin = true;
			break;
		case 'h':
			printf("Usage: granary user add NAME [--admin]\n"
			       "Add a user. The password is the first line of standard input.\n");
			return 0;
		default:
			return -EINVAL;
		}
	}
	if (optind != argc - 1)
		return log_error_errno(EINVAL, "Usage: granary user add NAME [--admin]");
	if (user_name_check(argv[optind]) < 0)
		return log_error_errno(EINVAL,
				       "Invalid name '%s': use 1 to %d of a-z, 0-9, '.', '_', '-', "
				       "starting with a letter or digit",
				       argv[optind], USER_NAME_MAX);
	r = read_password(password, sizeof(password));
	if (r < 0)
		return r;
	if (password_check(password) < 0) {
		sodium_memzero(password, sizeof(password));
		return log_error_errno(EINVAL, "Passwords are %d to %d bytes long", PASSWORD_MIN,
				       PASSWORD_MAX);
	}
	r = password_hash(password, hash);
	sodium_memzero(password, sizeof(password));
	if (r < 0)
		return log_error_errno(r, "Failed to hash the password: %m");

	r = open_state(&db, true);
	if (r < 0)
		return r;
	r = db_user_add(db, argv[optind], hash, admin, (int64_t)time(NULL), &id);
	if (r == -EEXIST)
		return log_error_errno(r, "There is already a user named '%s'", argv[optind]);
	if (r < 0)
		return log_error_errno(r, "Failed to add the user: %m");
	if (arg_json)
		return print_json(json_pack("{s:I,s:s,s:b}", "id", (json_int_t)id, "name",
					    argv[optind], "admin", admin));
	printf("Added %s'%s'.\n", admin ? "admin " : "", argv[optind]);
	return 0;
}

static int
print_user(const struct db_user *u, void *userdata)
{
	if (userdata)
		return json_array_append_new(userdata,
					     json_pack("{s:I,s:s,s:b,s:I}", "id", (json_int_t)u->id,
						       "name", u->name, "admin", u->admin,
						       "createdAt", (json_int_t)u->created_at));
	printf("%-24s %s\n", u->name, u->admin ? "admin" : "");
	return 0;
}

static int
user_list(void)
{
	_cleanup_(db_freep) struct db *db = NULL;
	_cleanup_json_ json_t *users = NULL;
	int r;

	r = open_state(&db, false);
	if (r < 0)
		return r;
	if (arg_json) {
		users = json_array();
		if (!users)
			return log_oom();
	}
	r = db_user_list(db, print_user, users);
	if (r < 0)
		return log_error_errno(r, "Failed to list users: %m");
	return arg_json ? print_json(json_incref(users)) : 0;
}

static int
print_app(const struct db_package *p, void *userdata)
{
	if (userdata)
		return json_array_append_new(userdata,
					     json_pack("{s:s,s:s,s:I,s:s}", "id", p->app_id,
						       "packageId", p->id, "version",
						       (json_int_t)p->version, "title", p->title));
	printf("%-30s %-6" PRId64 " %s\n", p->title, p->version, p->app_id);
	return 0;
}

static int
app_list(void)
{
	_cleanup_(db_freep) struct db *db = NULL;
	_cleanup_json_ json_t *apps = NULL;
	int r;

	r = open_state(&db, false);
	if (r < 0)
		return r;
	if (arg_json && !(apps = json_array()))
		return log_oom();
	r = db_app_list(db, print_app, apps);
	if (r < 0)
		return log_error_errno(r, "Failed to list apps: %m");
	return arg_json ? print_json(json_incref(apps)) : 0;
}

static int
print_grain(const struct db_grain *g, void *userdata)
{
	if (userdata)
		return json_array_append_new(userdata, json_pack("{s:s,s:s,s:s,s:s,s:b}", "id",
								 g->id, "appId", g->app_id, "title",
								 g->title, "owner", g->owner_name,
								 "trashed", g->trashed_at != 0));
	printf("%s  %-16s %s%s\n", g->id, g->owner_name, g->title,
	       g->trashed_at ? " (in the trash)" : "");
	return 0;
}

static int
grain_list(void)
{
	_cleanup_(db_freep) struct db *db = NULL;
	_cleanup_json_ json_t *grains = NULL;
	int r;

	r = open_state(&db, false);
	if (r < 0)
		return r;
	if (arg_json && !(grains = json_array()))
		return log_oom();
	r = db_grain_list(db, 0, true, print_grain, grains);
	if (r < 0)
		return log_error_errno(r, "Failed to list grains: %m");
	return arg_json ? print_json(json_incref(grains)) : 0;
}

static int
status(void)
{
	_cleanup_(db_freep) struct db *db = NULL;
	int64_t users = 0, grains = 0, schema = 0;
	int r;

	r = open_state(&db, false);
	if (r < 0)
		return r;
	if (db_user_count(db, &users) < 0 || db_grain_count(db, &grains) < 0 ||
	    db_schema_version(db, &schema) < 0)
		return log_error_errno(EIO, "Failed to read the database");
	if (arg_json)
		return print_json(json_pack("{s:s,s:I,s:I,s:I}", "state", arg_state, "schema",
					    (json_int_t)schema, "users", (json_int_t)users,
					    "grains", (json_int_t)grains));
	printf("State:  %s (schema %" PRId64 ")\nUsers:  %" PRId64 "\nGrains: %" PRId64 "\n",
	       arg_state, schema, users, grains);
	return 0;
}

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
	int c, r;

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

	if (strcmp(cmd, "user") == 0 && strcmp(sub, "add") == 0)
		r = user_add(argc - optind - 1, argv + optind + 1);
	else if (strcmp(cmd, "user") == 0 && strcmp(sub, "list") == 0)
		r = user_list();
	else if (strcmp(cmd, "app") == 0 && strcmp(sub, "list") == 0)
		r = app_list();
	else if (strcmp(cmd, "grain") == 0 && strcmp(sub, "list") == 0)
		r = grain_list();
	else if (strcmp(cmd, "status") == 0)
		r = status();
	else if (strcmp(cmd, "app") == 0 || strcmp(cmd, "grain") == 0 || strcmp(cmd, "share") == 0)
		r = log_error_errno(EOPNOTSUPP, "'%s %s' is not available in this build yet", cmd,
				    sub);
	else
		r = log_error_errno(EINVAL, "Unknown command '%s'; try 'granary --help'", cmd);
	return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;
}
