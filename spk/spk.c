/* SPDX-License-Identifier: MIT */
/*
 * spk.c: the packaging tool. Each command is a thin layer over spk/spk.h:
 * it parses arguments, calls the library once and tells a person what
 * happened (or what went wrong and what to do about it). Output meant for
 * scripts (app ids, the --json of info) goes to stdout; everything else to
 * stderr. Exit status: 0 success, 1 failure, 2 bad usage.
 */
#include <errno.h>
#include <getopt.h>
#include <libgen.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "spk/spk.h"
#include "common/banned.h"

#define EXIT_USAGE 2

static const char *arg_keyring;
static bool arg_quiet;

/* ---- shared helpers --------------------------------------------------------- */

static int
usage_error(const char *command, const char *message)
{
	log_error("%s; try 'spk %s --help'", message, command);
	return EXIT_USAGE;
}

struct progress {
	const char *verb;
	int last_percent;
	bool shown;
};

static void
progress_show(uint64_t done, uint64_t total, void *userdata)
{
	struct progress *p = userdata;
	char a[FORMAT_SIZE_MAX], b[FORMAT_SIZE_MAX];
	int percent = total ? (int)(done * 100 / total) : 0;

	if (percent == p->last_percent)
		return;
	p->last_percent = percent;
	p->shown = true;
	fprintf(stderr, "\r%s %3d%% (%s of %s)\033[K", p->verb, percent,
		format_size(a, sizeof(a), done), format_size(b, sizeof(b), total));
	fflush(stderr);
}

/* A progress callback when stderr is a terminal and --quiet was not given. */
static spk_progress_fn
progress_for(struct progress *p, const char *verb)
{
	*p = (struct progress){ .verb = verb, .last_percent = -1 };
	return !arg_quiet && isatty(STDERR_FILENO) ? progress_show : NULL;
}

static void
progress_end(struct progress *p)
{
	if (p->shown)
		fprintf(stderr, "\r\033[K");
	p->shown = false;
}

/* Make the directories leading to path (0700: they hold secrets). */
static int
mkdir_parents(const char *path)
{
	_cleanup_free_ char *copy = strdup(path);

	if (!copy)
		return -ENOMEM;
	for (char *p = copy + 1; (p = strchr(p, '/')); p++) {
		*p = '\0';
		if (mkdir(copy, 0700) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	return 0;
}

/* --keyring, or the default one (whose directory we may create). */
static int
keyring_path(bool create_parent, char **ret)
{
	_cleanup_free_ char *path = NULL;
	int r;

	if (arg_keyring) {
		path = strdup(arg_keyring);
		if (!path)
			return log_oom();
	} else {
		r = spk_keyring_default_path(&path);
		if (r < 0)
			return log_error_errno(r, "No keyring given and no default (set HOME, or "
						  "use --keyring FILE)");
		if (create_parent) {
			r = mkdir_parents(path);
			if (r < 0)
				return log_error_errno(r, "Cannot create the directory of '%s': %m",
						       path);
		}
	}
	*ret = TAKE_PTR(path);
	return 0;
}

static int
parse_limit_option(int c, const char *value, struct spk_limits *limits)
{
	uint64_t v;
	int r;

	if (c == 'B') {
		r = parse_size(value, &v);
		if (r < 0 || v == 0)
			return log_error_errno(
				r < 0 ? r : -EINVAL,
				"Invalid --max-bytes '%s': give a size like 512M or 4G", value);
		limits->max_bytes = v;
		return 0;
	}
	r = parse_uint64(value, &v);
	if (r < 0 || v == 0)
		return log_error_errno(r < 0 ? r : -EINVAL,
				       "Invalid --max-entries '%s': give a positive number", value);
	limits->max_entries = v;
	return 0;
}

/* Open and verify a package, saying what is wrong if it is not one. */
static int
open_package(const char *path, const struct spk_limits *limits, struct spk_package **ret)
{
	struct spk_error err = {};
	struct progress progress;
	spk_progress_fn fn = progress_for(&progress, "verifying");
	int r;

	r = spk_package_open(path, limits, fn, &progress, ret, &err);
	progress_end(&progress);
	if (r < 0)
		return log_error_errno(r, "'%s': %s", path, err.message);
	return 0;
}

/* ---- keygen ------------------------------------------------------------------- */

static int
cmd_keygen(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "keyring", required_argument, NULL, 'k' },
		{},
	};
	_cleanup_free_ char *keyring = NULL;
	char app_id[SPK_APP_ID_LEN + 1];
	struct spk_error err = {};
	struct spk_key key;
	int c, r;

	while ((c = getopt_long(argc, argv, "hk:", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: spk keygen [--keyring FILE]\n"
			       "Make a new signing key, add it to the keyring and print its app "
			       "id.\n\n"
			       "The key is the app's identity: every package of the app must be\n"
			       "signed with it. Back the keyring up; keep it private.\n\n"
			       "  -k, --keyring FILE  the keyring (default: $GRANARY_KEYRING, or\n"
			       "                      ~/.config/granary/spk.keyring), made 0600\n");
			return EXIT_SUCCESS;
		case 'k':
			arg_keyring = optarg;
			break;
		default:
			return usage_error("keygen", "Bad option");
		}
	if (optind != argc)
		return usage_error("keygen", "Unexpected argument");
	r = keyring_path(true, &keyring);
	if (r < 0)
		return EXIT_FAILURE;
	r = spk_key_generate(&key);
	if (r < 0)
		return log_error_errno(r, "Cannot make a key: %m"), EXIT_FAILURE;
	r = spk_keyring_add(keyring, &key, &err);
	spk_app_id_from_key(key.public_key, app_id);
	spk_key_wipe(&key);
	if (r < 0) {
		log_error("%s", err.message);
		return EXIT_FAILURE;
	}
	printf("%s\n", app_id);
	if (!arg_quiet)
		log_info("Added the key of app id %s to '%s'", app_id, keyring);
	return EXIT_SUCCESS;
}

/* ---- init --------------------------------------------------------------------- */

static json_t *
definition_template(const char *app_id, const char *title)
{
	char action[80];

	/* Action titles have the same 64-byte limit as app titles. */
	if (snprintf(action, sizeof(action), "New %s", title) > 64)
		(void)snprintf(action, sizeof(action), "New");
	return json_pack("{s:{s:s, s:s, s:i, s:s}, s:{s:[s], s:{s:s}, s:i}, s:[s, s],"
			 " s:[{s:s, s:[s, s], s:b}, {s:s, s:[s], s:b}], s:[{s:s}],"
			 " s:{s:[{s:s, s:s}]}, s:{s:s, s:s, s:s, s:s}}",
			 "app", "id", app_id, "title", title, "version", 1, "marketingVersion",
			 "0.1.0", "run", "command", "/app/start", "env", "HOME", "/var", "httpPort",
			 8000, "permissions", "read", "write", "roles", "name", "editor",
			 "permissions", "read", "write", "default", 1, "name", "viewer",
			 "permissions", "read", "readOnly", 1, "actions", "title", action, "files",
			 "sources", "from", ".", "to", "app", "metadata", "description", "",
			 "author", "", "license", "", "website", "");
}

static bool
title_ok(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > 64)
		return false;
	for (; *s; s++)
		if ((unsigned char)*s < 0x20 || *s == 0x7f)
			return false;
	return true;
}

static int
cmd_init(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "keyring", required_argument, NULL, 'k' },
		{ "app-id", required_argument, NULL, 'a' },
		{ "title", required_argument, NULL, 't' },
		{ "force", no_argument, NULL, 'f' },
		{},
	};
	_cleanup_free_ char *keyring = NULL, *path = NULL, *text = NULL, *dir_copy = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *check = NULL;
	_cleanup_json_ json_t *def = NULL;
	_cleanup_fclose_ FILE *f = NULL;
	const char *dir = ".", *app_id = NULL, *title = NULL;
	char new_app_id[SPK_APP_ID_LEN + 1];
	struct spk_error err = {};
	bool force = false;
	struct stat st;
	int c, r;

	while ((c = getopt_long(argc, argv, "hk:a:t:f", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: spk init [--keyring FILE] [--app-id ID] [--title TITLE] "
			       "[--force] [DIR]\n"
			       "Write DIR/spk.json (DIR: the current directory by default), the\n"
			       "definition of a new package: its manifest and where its files "
			       "come\n"
			       "from. Without --app-id, a new key is made and added to the "
			       "keyring.\n"
			       "Edit the file, then run 'spk pack DIR APP.spk'. Every field is\n"
			       "described in docs/packaging.md.\n\n"
			       "  -k, --keyring FILE  the keyring for the new key\n"
			       "  -a, --app-id ID     use this existing app id (its key must be in "
			       "the\n"
			       "                      keyring when you pack)\n"
			       "  -t, --title TITLE   the app's title (default: DIR's name)\n"
			       "  -f, --force         replace an existing spk.json\n");
			return EXIT_SUCCESS;
		case 'k':
			arg_keyring = optarg;
			break;
		case 'a':
			app_id = optarg;
			break;
		case 't':
			title = optarg;
			break;
		case 'f':
			force = true;
			break;
		default:
			return usage_error("init", "Bad option");
		}
	if (argc - optind > 1)
		return usage_error("init", "Too many arguments");
	if (optind < argc)
		dir = argv[optind];
	if (app_id && !spk_app_id_is_valid(app_id))
		return usage_error("init", "--app-id is not an app id (52 characters, as 'spk "
					   "keygen' prints)");
	if (title && !title_ok(title))
		return usage_error("init", "--title must be 1 to 64 bytes without control "
					   "characters");

	if (mkdir(dir, 0755) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Cannot create '%s': %m", dir), EXIT_FAILURE;
	if (stat(dir, &st) < 0 || !S_ISDIR(st.st_mode))
		return log_error("'%s' is not a directory", dir), EXIT_FAILURE;
	if (asprintf(&path, "%s/%s", dir, SPK_DEFINITION_NAME) < 0)
		return log_oom(), EXIT_FAILURE;
	if (!force && access(path, F_OK) == 0)
		return log_error("'%s' already exists: edit it, or use --force to start over",
				 path),
		       EXIT_FAILURE;

	if (!title) {
		char *real = realpath(dir, NULL);

		dir_copy = real ? real : strdup(dir);
		if (!dir_copy)
			return log_oom(), EXIT_FAILURE;
		title = basename(dir_copy);
		if (!title_ok(title) || strcmp(title, "/") == 0)
			title = "My app";
	}

	if (!app_id) {
		struct spk_key key;

		r = keyring_path(true, &keyring);
		if (r < 0)
			return EXIT_FAILURE;
		r = spk_key_generate(&key);
		if (r < 0)
			return log_error_errno(r, "Cannot make a key: %m"), EXIT_FAILURE;
		r = spk_keyring_add(keyring, &key, &err);
		spk_app_id_from_key(key.public_key, new_app_id);
		spk_key_wipe(&key);
		if (r < 0)
			return log_error("%s", err.message), EXIT_FAILURE;
		app_id = new_app_id;
	} else {
		struct spk_key key;

		r = keyring_path(false, &keyring);
		if (r >= 0) {
			r = spk_keyring_find(keyring, app_id, &key, &err);
			spk_key_wipe(&key);
			if (r < 0)
				log_warning("%s; 'spk pack' will need the keyring with this app's "
					    "key",
					    err.message);
		}
	}

	def = definition_template(app_id, title);
	text = def ? json_dumps(def, JSON_INDENT(2)) : NULL;
	if (!text)
		return log_oom(), EXIT_FAILURE;
	/* What we write must be what pack accepts. */
	r = spk_manifest_parse(text, strlen(text), SPK_MANIFEST_DEFINITION, &check, &err);
	if (r < 0)
		return log_error("Internal error, the template is invalid: %s", err.message),
		       EXIT_FAILURE;
	f = fopen(path, "we");
	if (!f || fprintf(f, "%s\n", text) < 0 || fflush(f) != 0)
		return log_error_errno(errno, "Cannot write '%s': %m", path), EXIT_FAILURE;
	printf("%s\n", app_id);
	if (!arg_quiet)
		log_info("Wrote '%s' for app id %s. Edit it (command, port, sources), then run: "
			 "spk pack %s %s.spk",
			 path, app_id, dir, "APP");
	return EXIT_SUCCESS;
}

/* ---- pack ------------------------------------------------------------------------ */

static void
pack_warning(const char *message, void *userdata)
{
	(void)userdata;
	log_warning("%s", message);
}

static int
cmd_pack(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "keyring", required_argument, NULL, 'k' },
		{ "level", required_argument, NULL, 'l' },
		{ "quiet", no_argument, NULL, 'q' },
		{},
	};
	_cleanup_(spk_manifest_freep) struct spk_manifest *def = NULL;
	_cleanup_free_ char *keyring = NULL, *def_path = NULL;
	char size_files[FORMAT_SIZE_MAX], size_out[FORMAT_SIZE_MAX];
	struct spk_pack_options opts = { .warning = pack_warning };
	struct spk_pack_stats stats = {};
	struct spk_error err = {};
	struct progress progress;
	struct spk_key key;
	const char *dir, *out;
	int c, r;

	while ((c = getopt_long(argc, argv, "hk:l:q", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: spk pack [--keyring FILE] [--level N] [--quiet] DIR "
			       "OUT.spk\n"
			       "Build the package DIR/spk.json defines, sign it with the app's "
			       "key\n"
			       "from the keyring and write OUT.spk. The same inputs always give\n"
			       "the same bytes. Paths in spk.json are relative to DIR.\n\n"
			       "  -k, --keyring FILE  the keyring holding the app's key\n"
			       "  -l, --level N       zstd compression level, 1 to 19 (default 3)\n"
			       "  -q, --quiet         no progress and no summary\n");
			return EXIT_SUCCESS;
		case 'k':
			arg_keyring = optarg;
			break;
		case 'l': {
			int level;

			if (parse_int(optarg, &level) < 0 || level < 1 || level > 19)
				return usage_error("pack", "--level takes a number from 1 to 19");
			opts.level = level;
			break;
		}
		case 'q':
			arg_quiet = true;
			break;
		default:
			return usage_error("pack", "Bad option");
		}
	if (argc - optind != 2)
		return usage_error("pack", "Expected DIR and OUT.spk");
	dir = argv[optind];
	out = argv[optind + 1];

	if (asprintf(&def_path, "%s/%s", dir, SPK_DEFINITION_NAME) < 0)
		return log_oom(), EXIT_FAILURE;
	r = spk_manifest_load(def_path, SPK_MANIFEST_DEFINITION, &def, &err);
	if (r < 0) {
		if (r == -ENOENT)
			log_error("No '%s': run 'spk init %s' to make one", def_path, dir);
		else
			log_error("%s", err.message);
		return EXIT_FAILURE;
	}
	r = keyring_path(false, &keyring);
	if (r < 0)
		return EXIT_FAILURE;
	r = spk_keyring_find(keyring, def->app_id, &key, &err);
	if (r < 0)
		return log_error("%s", err.message), EXIT_FAILURE;

	opts.keyring = keyring;
	opts.progress = progress_for(&progress, "packing");
	opts.userdata = &progress;
	r = spk_pack(def, dir, &key, out, &opts, &stats, &err);
	spk_key_wipe(&key);
	progress_end(&progress);
	if (r < 0)
		return log_error("%s", err.message), EXIT_FAILURE;
	if (!arg_quiet)
		log_info("Packed %llu entries (%s) into '%s' (%s), package id %s",
			 (unsigned long long)stats.entries,
			 format_size(size_files, sizeof(size_files), stats.bytes), out,
			 format_size(size_out, sizeof(size_out), stats.file_size),
			 stats.package_id);
	return EXIT_SUCCESS;
}

/* ---- verify, info, unpack ------------------------------------------------------------ */

/*
 * verify and unpack are one operation: unpack checks every entry as it
 * writes it, and verify is the same walk with nothing written (DRY_RUN).
 */
static int
check_or_unpack(int argc, char *argv[], bool write)
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "max-bytes", required_argument, NULL, 'B' },
		{ "max-entries", required_argument, NULL, 'E' },
		{ "quiet", no_argument, NULL, 'q' },
		{},
	};
	const char *command = write ? "unpack" : "verify";
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	struct spk_limits limits = {};
	struct spk_unpack_stats stats;
	struct spk_error err = {};
	struct progress progress;
	spk_progress_fn fn;
	const struct spk_info *info;
	char size[FORMAT_SIZE_MAX];
	int c, r;

	while ((c = getopt_long(argc, argv, "hq", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			if (write)
				printf("Usage: spk unpack [--max-bytes SIZE] [--max-entries N] "
				       "FILE "
				       "DIR\n"
				       "Verify a package, then unpack it into DIR, which must not "
				       "exist.\n"
				       "Nothing is left behind if any check fails.\n\n");
			else
				printf("Usage: spk verify [--max-bytes SIZE] [--max-entries N] "
				       "FILE\n"
				       "Check a package: its signature, its manifest and every "
				       "entry, "
				       "as an\n"
				       "install would, without writing anything. Exits 0 only if "
				       "all "
				       "is well.\n\n");
			printf("      --max-bytes SIZE   budget of unpacked file bytes (default "
			       "2G)\n"
			       "      --max-entries N    budget of entries (default 100000)\n"
			       "  -q, --quiet            %s\n",
			       write ? "no progress and no summary" : "print nothing on success");
			return EXIT_SUCCESS;
		case 'B':
		case 'E':
			if (parse_limit_option(c, optarg, &limits) < 0)
				return EXIT_USAGE;
			break;
		case 'q':
			arg_quiet = true;
			break;
		default:
			return usage_error(command, "Bad option");
		}
	if (argc - optind != (write ? 2 : 1))
		return usage_error(command, write ? "Expected FILE and DIR" : "Expected one FILE");
	if (open_package(argv[optind], &limits, &p) < 0)
		return EXIT_FAILURE;
	fn = progress_for(&progress, write ? "unpacking" : "checking");
	r = spk_package_unpack(p, write ? argv[optind + 1] : NULL, write ? 0 : SPK_UNPACK_DRY_RUN,
			       fn, &progress, NULL, &stats, &err);
	progress_end(&progress);
	if (r < 0)
		return log_error("'%s': %s", argv[optind], err.message), EXIT_FAILURE;
	if (arg_quiet)
		return EXIT_SUCCESS;
	if (write)
		log_info("Unpacked %llu entries (%s) into '%s'", (unsigned long long)stats.entries,
			 format_size(size, sizeof(size), stats.bytes), argv[optind + 1]);
	else {
		info = spk_package_info(p);
		printf("%s: OK, app id %s, package id %s, %llu entries, %s\n", argv[optind],
		       info->app_id, info->package_id, (unsigned long long)stats.entries,
		       format_size(size, sizeof(size), stats.bytes));
	}
	return EXIT_SUCCESS;
}

static int
cmd_verify(int argc, char *argv[])
{
	return check_or_unpack(argc, argv, false);
}

static int
cmd_info(int argc, char *argv[])
{
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "json", no_argument, NULL, 'j' },
		{},
	};
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	_cleanup_json_ json_t *out = NULL;
	_cleanup_free_ char *text = NULL;
	struct spk_unpack_stats stats;
	struct spk_error err = {};
	const struct spk_info *info;
	bool json = false;
	int c, r;

	while ((c = getopt_long(argc, argv, "hj", options, NULL)) >= 0)
		switch (c) {
		case 'h':
			printf("Usage: spk info [--json] FILE\n"
			       "Verify a package and show its app id, package id, sizes and "
			       "manifest.\n\n"
			       "  -j, --json   one JSON object on stdout, for scripts\n");
			return EXIT_SUCCESS;
		case 'j':
			json = true;
			break;
		default:
			return usage_error("info", "Bad option");
		}
	if (argc - optind != 1)
		return usage_error("info", "Expected one FILE");
	if (open_package(argv[optind], NULL, &p) < 0)
		return EXIT_FAILURE;
	r = spk_package_unpack(p, NULL, SPK_UNPACK_DRY_RUN, NULL, NULL, &m, &stats, &err);
	if (r < 0)
		return log_error("'%s': %s", argv[optind], err.message), EXIT_FAILURE;
	info = spk_package_info(p);
	if (json) {
		out = json_pack(
			"{s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:I, s:O}", "formatVersion",
			(int)info->format_version, "appId", info->app_id, "packageId",
			info->package_id, "fileSize", (json_int_t)info->file_size, "payloadSize",
			(json_int_t)info->payload_size, "entries", (json_int_t)stats.entries,
			"files", (json_int_t)stats.files, "directories",
			(json_int_t)stats.directories, "symlinks", (json_int_t)stats.symlinks,
			"unpackedBytes", (json_int_t)stats.bytes, "manifest", m->json);
		text = out ? json_dumps(out, JSON_INDENT(2) | JSON_SORT_KEYS) : NULL;
		if (!text)
			return log_oom(), EXIT_FAILURE;
		printf("%s\n", text);
		return EXIT_SUCCESS;
	}
	text = json_dumps(m->json, JSON_INDENT(2) | JSON_SORT_KEYS);
	if (!text)
		return log_oom(), EXIT_FAILURE;
	printf("title:          %s\n"
	       "version:        %lld%s%s%s\n"
	       "app id:         %s\n"
	       "package id:     %s\n"
	       "format version: %u\n"
	       "file size:      %llu bytes\n"
	       "unpacked:       %llu bytes in %llu files, %llu directories, %llu symlinks\n"
	       "manifest:\n%s\n",
	       m->title, (long long)m->version, *m->marketing_version ? " (" : "",
	       m->marketing_version, *m->marketing_version ? ")" : "", info->app_id,
	       info->package_id, info->format_version, (unsigned long long)info->file_size,
	       (unsigned long long)stats.bytes, (unsigned long long)stats.files,
	       (unsigned long long)stats.directories, (unsigned long long)stats.symlinks, text);
	return EXIT_SUCCESS;
}

static int
cmd_unpack(int argc, char *argv[])
{
	return check_or_unpack(argc, argv, true);
}

/* ---- main ----------------------------------------------------------------------------- */

static const struct {
	const char *name;
	int (*run)(int argc, char *argv[]);
} commands[] = {
	{ "keygen", cmd_keygen }, { "init", cmd_init }, { "pack", cmd_pack },
	{ "verify", cmd_verify }, { "info", cmd_info }, { "unpack", cmd_unpack },
};

static void
help(void)
{
	printf("Usage: spk COMMAND [ARG]...\n"
	       "Make, check and open Granary app packages (.spk).\n"
	       "\n"
	       "Commands:\n"
	       "  keygen [--keyring FILE]            make a signing key, print its app id\n"
	       "  init [--keyring FILE] [DIR]        write DIR/spk.json for a new app\n"
	       "  pack [--keyring FILE] DIR OUT.spk  build and sign a package\n"
	       "  verify FILE                        check a package, writing nothing\n"
	       "  info FILE                          show manifest, app id, package id, sizes\n"
	       "  unpack FILE DIR                    verify, then unpack into DIR\n"
	       "\n"
	       "  -h, --help      show this help ('spk COMMAND --help' for a command's)\n"
	       "      --version   show the version\n"
	       "\n"
	       "A first package, step by step: docs/packaging.md. The format: "
	       "docs/spk-format.md.\n");
}

int
main(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100 };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int c;

	log_setup("spk");
	log_show_pid(0);
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("spk %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'spk --help'.\n");
			return EXIT_USAGE;
		}
	}
	if (optind >= argc) {
		log_error("No command given; try 'spk --help'");
		return EXIT_USAGE;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(argv[optind], commands[i].name) == 0) {
			/* The command parses its own options from its name on. */
			argc -= optind;
			argv += optind;
			optind = 0;
			return commands[i].run(argc, argv);
		}
	log_error("Unknown command '%s'; try 'spk --help'", argv[optind]);
	return EXIT_USAGE;
}
