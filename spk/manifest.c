/* SPDX-License-Identifier: MIT */
/*
 * manifest.c: granary-manifest.json (inside a package) and spk.json (the
 * package definition: the manifest plus "files", where spk pack finds them).
 *
 * Validation is table-driven (common/json-util.h): unknown fields, wrong types
 * and out-of-range values are refused with a message naming the field. The
 * tables below are the schema; docs/spk-format.md lists the same fields with
 * their types, limits and defaults, so keep the two in step.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/json-util.h"
#include "spk/spk-internal.h"
#include "common/banned.h"

#define TITLE_MAX	      64
#define MARKETING_VERSION_MAX 32
#define COMMAND_MAX_ARGS      64
#define ARG_MAX_BYTES	      4096
#define ENV_MAX		      64
#define ENV_NAME_MAX	      128
#define ENV_VALUE_MAX	      4096
#define IDENT_MAX	      32 /* permission and role names */
#define PERMISSIONS_MAX	      32
#define ROLES_MAX	      16
#define ACTIONS_MAX	      16
#define SOURCES_MAX	      256
#define HOST_PATH_MAX	      4096
#define DESCRIPTION_MAX	      4096
#define AUTHOR_MAX	      256
#define LICENSE_MAX	      128
#define WEBSITE_MAX	      2048

/* ---- checks run by json_dispatch() after the type check ---------------- */

static bool
has_control(const char *s, bool allow_newlines)
{
	for (; *s; s++) {
		unsigned char c = (unsigned char)*s;

		if (allow_newlines && (c == '\n' || c == '\t'))
			continue;
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

static int
check_line(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	if (has_control(json_string_value(value), false))
		return json_error_set(err, path, "", "must not contain control characters");
	return 0;
}

static int
check_text(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	if (has_control(json_string_value(value), true))
		return json_error_set(err, path, "",
				      "must not contain control characters except newline and tab");
	return 0;
}

static int
check_app_id(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	if (!spk_app_id_is_valid(json_string_value(value)))
		return json_error_set(err, path, "",
				      "not an app id (52 characters of 0-9 and a-z without i, l, "
				      "o, u, as 'spk keygen' prints)");
	return 0;
}

/* Permission and role names: [a-z][a-z0-9_-]*, 1..32 bytes. */
static bool
ident_valid(const char *s)
{
	size_t len = strlen(s);

	if (len == 0 || len > IDENT_MAX || !(s[0] >= 'a' && s[0] <= 'z'))
		return false;
	for (size_t i = 1; i < len; i++)
		if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
		      s[i] == '-'))
			return false;
	return true;
}

static int
check_ident(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	if (!ident_valid(json_string_value(value)))
		return json_error_set(err, path, "",
				      "must be 1 to %d characters of a-z, 0-9, '_' and '-', "
				      "starting with a letter",
				      IDENT_MAX);
	return 0;
}

/* An array of unique identifiers. */
static int
check_ident_array(const char *path, json_t *value, size_t max, struct json_error *err)
{
	json_t *item;
	size_t i;
	int r;

	r = json_check_string_array(value, path, max, 1, IDENT_MAX, err);
	if (r < 0)
		return r;
	json_array_foreach (value, i, item) {
		char name[24];

		(void)snprintf(name, sizeof(name), "[%zu]", i);
		if (!ident_valid(json_string_value(item)))
			return json_error_set(err, path, name,
					      "must be 1 to %d characters of a-z, 0-9, '_' and "
					      "'-', starting with a letter",
					      IDENT_MAX);
		for (size_t j = 0; j < i; j++)
			if (strcmp(json_string_value(json_array_get(value, j)),
				   json_string_value(item)) == 0)
				return json_error_set(err, path, name, "'%s' is listed twice",
						      json_string_value(item));
	}
	return 0;
}

static int
check_permissions(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	return check_ident_array(path, value, PERMISSIONS_MAX, err);
}

static int
check_command(const char *path, json_t *value, void *target, struct json_error *err)
{
	int r;

	(void)target;
	r = json_check_string_array(value, path, COMMAND_MAX_ARGS, 0, ARG_MAX_BYTES, err);
	if (r < 0)
		return r;
	if (json_array_size(value) == 0)
		return json_error_set(err, path, "", "must name the program to run");
	if (json_string_value(json_array_get(value, 0))[0] != '/')
		return json_error_set(err, path, "[0]",
				      "must be an absolute path in the package, like \"/app/run\"");
	return 0;
}

static int
check_env(const char *path, json_t *value, void *target, struct json_error *err)
{
	const char *key;
	json_t *v;

	(void)target;
	if (json_object_size(value) > ENV_MAX)
		return json_error_set(err, path, "", "has %zu variables, at most %d are allowed",
				      json_object_size(value), ENV_MAX);
	json_object_foreach (value, key, v) {
		size_t len = strlen(key);
		bool ok = len > 0 && len <= ENV_NAME_MAX && !(key[0] >= '0' && key[0] <= '9');

		for (size_t i = 0; ok && i < len; i++)
			ok = (key[i] >= 'A' && key[i] <= 'Z') || (key[i] >= 'a' && key[i] <= 'z') ||
			     (key[i] >= '0' && key[i] <= '9') || key[i] == '_';
		if (!ok)
			return json_error_set(err, path, "",
					      "variable names are 1 to %d characters of A-Z, a-z, "
					      "0-9 and '_', not starting with a digit",
					      ENV_NAME_MAX);
		if (!json_is_string(v))
			return json_error_set(err, path, key, "expected a string, got %s",
					      json_type_name(v));
		if (json_string_length(v) > ENV_VALUE_MAX ||
		    strlen(json_string_value(v)) != json_string_length(v))
			return json_error_set(err, path, key,
					      "must be at most %d bytes, without NUL characters",
					      ENV_VALUE_MAX);
	}
	return 0;
}

static int
check_website(const char *path, json_t *value, void *target, struct json_error *err)
{
	const char *s = json_string_value(value);

	(void)target;
	if (*s && strncmp(s, "https://", 8) != 0 && strncmp(s, "http://", 7) != 0)
		return json_error_set(err, path, "", "must be an http:// or https:// URL");
	return check_line(path, value, target, err);
}

static int
check_package_path(const char *path, json_t *value, void *target, struct json_error *err)
{
	struct spk_limits limits;
	struct spk_error e;
	const char *s = json_string_value(value);
	int r;

	(void)target;
	if (*s == '\0')
		return 0;
	spk_limits_resolve(NULL, &limits);
	r = spk_path_check(s, strlen(s), &limits, NULL, NULL, &e);
	if (r < 0)
		return json_error_set(err, path, "", "%s", e.message);
	return 0;
}

/* ---- the schema ---------------------------------------------------------- */

struct raw_app {
	const char *id, *title, *marketing_version;
	int64_t version;
};

static const struct json_field app_fields[] = {
	{ "id", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct raw_app, id),
	  .check = check_app_id },
	{ "title", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct raw_app, title),
	  .min = 1, .max = TITLE_MAX, .check = check_line },
	{ "version", JSON_FIELD_INT, JSON_FIELD_REQUIRED, offsetof(struct raw_app, version),
	  .min = 0, .max = INT32_MAX },
	{ "marketingVersion", JSON_FIELD_STRING, 0, offsetof(struct raw_app, marketing_version),
	  .min = 0, .max = MARKETING_VERSION_MAX, .check = check_line },
	{},
};

struct raw_run {
	json_t *command, *env;
	int64_t http_port;
};

static const struct json_field run_fields[] = {
	{ "command", JSON_FIELD_ARRAY, JSON_FIELD_REQUIRED, offsetof(struct raw_run, command),
	  .check = check_command },
	{ "env", JSON_FIELD_OBJECT, 0, offsetof(struct raw_run, env), .check = check_env },
	{ "httpPort", JSON_FIELD_INT, JSON_FIELD_REQUIRED, offsetof(struct raw_run, http_port),
	  .min = 1, .max = 65535 },
	{},
};

struct raw_role {
	const char *name;
	json_t *permissions;
	bool is_default, read_only;
};

static const struct json_field role_fields[] = {
	{ "name", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct raw_role, name),
	  .check = check_ident },
	{ "permissions", JSON_FIELD_ARRAY, 0, offsetof(struct raw_role, permissions),
	  .check = check_permissions },
	{ "default", JSON_FIELD_BOOL, 0, offsetof(struct raw_role, is_default) },
	{ "readOnly", JSON_FIELD_BOOL, 0, offsetof(struct raw_role, read_only) },
	{},
};

struct raw_action {
	const char *title;
};

static const struct json_field action_fields[] = {
	{ "title", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct raw_action, title),
	  .min = 1, .max = TITLE_MAX, .check = check_line },
	{},
};

struct raw_source {
	const char *from, *to;
	bool follow_symlinks;
};

static const struct json_field source_fields[] = {
	{ "from", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct raw_source, from),
	  .min = 1, .max = HOST_PATH_MAX, .check = check_line },
	{ "to", JSON_FIELD_STRING, 0, offsetof(struct raw_source, to), .min = 0,
	  .max = SPK_DEFAULT_MAX_PATH, .check = check_package_path },
	{ "followSymlinks", JSON_FIELD_BOOL, 0, offsetof(struct raw_source, follow_symlinks) },
	{},
};

struct raw_files {
	json_t *sources;
	const char *list;
};

static const struct json_field files_fields[] = {
	{ "sources", JSON_FIELD_ARRAY, 0, offsetof(struct raw_files, sources), .max = SOURCES_MAX },
	{ "list", JSON_FIELD_STRING, 0, offsetof(struct raw_files, list), .min = 1,
	  .max = HOST_PATH_MAX, .check = check_line },
	{},
};

struct raw_metadata {
	const char *description, *author, *license, *website;
};

static const struct json_field metadata_fields[] = {
	{ "description", JSON_FIELD_STRING, 0, offsetof(struct raw_metadata, description), .min = 0,
	  .max = DESCRIPTION_MAX, .check = check_text },
	{ "author", JSON_FIELD_STRING, 0, offsetof(struct raw_metadata, author), .min = 0,
	  .max = AUTHOR_MAX, .check = check_line },
	{ "license", JSON_FIELD_STRING, 0, offsetof(struct raw_metadata, license), .min = 0,
	  .max = LICENSE_MAX, .check = check_line },
	{ "website", JSON_FIELD_STRING, 0, offsetof(struct raw_metadata, website), .min = 0,
	  .max = WEBSITE_MAX, .check = check_website },
	{},
};

struct raw_manifest {
	json_t *app, *run, *permissions, *roles, *actions, *files, *metadata;
};

static const struct json_field manifest_fields[] = {
	{ "app", JSON_FIELD_OBJECT, JSON_FIELD_REQUIRED, offsetof(struct raw_manifest, app) },
	{ "run", JSON_FIELD_OBJECT, JSON_FIELD_REQUIRED, offsetof(struct raw_manifest, run) },
	{ "permissions", JSON_FIELD_ARRAY, 0, offsetof(struct raw_manifest, permissions),
	  .check = check_permissions },
	{ "roles", JSON_FIELD_ARRAY, 0, offsetof(struct raw_manifest, roles), .max = ROLES_MAX },
	{ "actions", JSON_FIELD_ARRAY, 0, offsetof(struct raw_manifest, actions),
	  .max = ACTIONS_MAX },
	{ "files", JSON_FIELD_OBJECT, 0, offsetof(struct raw_manifest, files) },
	{ "metadata", JSON_FIELD_OBJECT, 0, offsetof(struct raw_manifest, metadata) },
	{},
};

/* ---- building struct spk_manifest ---------------------------------------- */

struct spk_manifest *
spk_manifest_free(struct spk_manifest *m)
{
	if (!m)
		return NULL;
	for (size_t i = 0; i < m->n_roles; i++)
		free(m->roles[i].permissions);
	free(m->roles);
	free(m->command);
	free(m->env);
	free(m->permissions);
	free(m->actions);
	free(m->sources);
	json_decref(m->json);
	free(m);
	return NULL;
}

/* An owned array of the strings of a (validated) string array; borrowed strings. */
static int
string_array(json_t *array, const char ***ret, size_t *ret_n)
{
	size_t n = json_array_size(array);
	const char **a;

	*ret = NULL;
	*ret_n = 0;
	if (n == 0)
		return 0;
	a = calloc(n, sizeof(*a));
	if (!a)
		return -ENOMEM;
	for (size_t i = 0; i < n; i++)
		a[i] = json_string_value(json_array_get(array, i));
	*ret = a;
	*ret_n = n;
	return 0;
}

static bool
array_contains(const char *const *a, size_t n, const char *s)
{
	for (size_t i = 0; i < n; i++)
		if (strcmp(a[i], s) == 0)
			return true;
	return false;
}

static int
build_roles(struct spk_manifest *m, json_t *roles, struct json_error *err)
{
	size_t n = json_array_size(roles), n_default = 0;
	json_t *item;
	size_t i;
	int r;

	if (n == 0)
		return 0;
	m->roles = calloc(n, sizeof(*m->roles));
	if (!m->roles)
		return -ENOMEM;
	json_array_foreach (roles, i, item) {
		struct raw_role raw = {};
		struct spk_role *role = &m->roles[i];
		char path[32];

		(void)snprintf(path, sizeof(path), "roles[%zu]", i);
		r = json_dispatch(item, path, role_fields, &raw, 0, err);
		if (r < 0)
			return r;
		m->n_roles = i + 1;
		role->name = raw.name;
		role->is_default = raw.is_default;
		role->read_only = raw.read_only;
		r = string_array(raw.permissions, &role->permissions, &role->n_permissions);
		if (r < 0)
			return r;
		for (size_t j = 0; j < role->n_permissions; j++)
			if (!array_contains(m->permissions, m->n_permissions, role->permissions[j]))
				return json_error_set(
					err, path, "permissions",
					"'%s' is not in the top-level \"permissions\"",
					role->permissions[j]);
		for (size_t j = 0; j < i; j++)
			if (strcmp(m->roles[j].name, role->name) == 0)
				return json_error_set(err, path, "name",
						      "role '%s' is defined twice", role->name);
		if (raw.is_default && ++n_default > 1)
			return json_error_set(err, path, "default",
					      "only one role can be the default");
	}
	return 0;
}

static int
build_sources(struct spk_manifest *m, json_t *sources, struct json_error *err)
{
	size_t n = json_array_size(sources);
	json_t *item;
	size_t i;
	int r;

	if (!sources) {
		/* Default: the definition's directory is the package's root. */
		m->sources = calloc(1, sizeof(*m->sources));
		if (!m->sources)
			return -ENOMEM;
		m->sources[0] = (struct spk_source){ .from = ".", .to = "" };
		m->n_sources = 1;
		return 0;
	}
	if (n == 0)
		return json_error_set(err, "files", "sources",
				      "must list at least one source (or be left out)");
	m->sources = calloc(n, sizeof(*m->sources));
	if (!m->sources)
		return -ENOMEM;
	json_array_foreach (sources, i, item) {
		struct raw_source raw = { .to = "" };
		char path[40];

		(void)snprintf(path, sizeof(path), "files.sources[%zu]", i);
		r = json_dispatch(item, path, source_fields, &raw, 0, err);
		if (r < 0)
			return r;
		m->sources[i] = (struct spk_source){
			.from = raw.from,
			.to = raw.to,
			.follow_symlinks = raw.follow_symlinks,
		};
		m->n_sources = i + 1;
	}
	return 0;
}

static int
build(struct spk_manifest *m, enum spk_manifest_flags flags, struct json_error *err)
{
	struct raw_manifest raw = {};
	struct raw_app app = { .marketing_version = "" };
	struct raw_run run = {};
	struct raw_metadata metadata = { "", "", "", "" };
	struct raw_files files = { .list = "" };
	json_t *item;
	size_t i;
	int r;

	r = json_dispatch(m->json, "", manifest_fields, &raw, 0, err);
	if (r < 0)
		return r;
	if (raw.files && !(flags & SPK_MANIFEST_DEFINITION))
		return json_error_set(err, "", "files",
				      "belongs in spk.json only, not in a package's manifest");

	r = json_dispatch(raw.app, "app", app_fields, &app, 0, err);
	if (r < 0)
		return r;
	m->app_id = app.id;
	m->title = app.title;
	m->version = app.version;
	m->marketing_version = app.marketing_version;

	r = json_dispatch(raw.run, "run", run_fields, &run, 0, err);
	if (r < 0)
		return r;
	r = string_array(run.command, &m->command, &m->n_command);
	if (r < 0)
		return r;
	m->http_port = (uint16_t)run.http_port;
	if (run.env && json_object_size(run.env) > 0) {
		const char *key;
		json_t *v;

		m->env = calloc(json_object_size(run.env), sizeof(*m->env));
		if (!m->env)
			return -ENOMEM;
		json_object_foreach (run.env, key, v)
			m->env[m->n_env++] = (struct spk_env){ key, json_string_value(v) };
	}

	r = string_array(raw.permissions, &m->permissions, &m->n_permissions);
	if (r < 0)
		return r;
	r = build_roles(m, raw.roles, err);
	if (r < 0)
		return r;

	if (raw.actions && json_array_size(raw.actions) > 0) {
		m->actions = calloc(json_array_size(raw.actions), sizeof(*m->actions));
		if (!m->actions)
			return -ENOMEM;
		json_array_foreach (raw.actions, i, item) {
			struct raw_action a = {};
			char path[32];

			(void)snprintf(path, sizeof(path), "actions[%zu]", i);
			r = json_dispatch(item, path, action_fields, &a, 0, err);
			if (r < 0)
				return r;
			m->actions[m->n_actions++].title = a.title;
		}
	}

	if (raw.metadata) {
		r = json_dispatch(raw.metadata, "metadata", metadata_fields, &metadata, 0, err);
		if (r < 0)
			return r;
	}
	m->description = metadata.description;
	m->author = metadata.author;
	m->license = metadata.license;
	m->website = metadata.website;

	if (flags & SPK_MANIFEST_DEFINITION) {
		if (raw.files) {
			r = json_dispatch(raw.files, "files", files_fields, &files, 0, err);
			if (r < 0)
				return r;
		}
		r = build_sources(m, files.sources, err);
		if (r < 0)
			return r;
		m->files_list = files.list;
	} else
		m->files_list = "";
	return 0;
}

int
spk_manifest_parse(const char *data, size_t size, enum spk_manifest_flags flags,
		   struct spk_manifest **ret, struct spk_error *err)
{
	struct json_error jerr = {};
	struct spk_manifest *m;
	int r;

	m = calloc(1, sizeof(*m));
	if (!m)
		return spk_error_set(err, ENOMEM, "out of memory");
	r = json_parse_strict(data, size, SPK_MANIFEST_MAX, &m->json, &jerr);
	if (r >= 0)
		r = build(m, flags, &jerr);
	if (r < 0) {
		m = spk_manifest_free(m);
		if (r == -ENOMEM)
			return spk_error_set(err, ENOMEM, "out of memory");
		return spk_error_set(err, r == -E2BIG ? E2BIG : EBADMSG, "%s", jerr.message);
	}
	*ret = m;
	return 0;
}

int
spk_manifest_load(const char *path, enum spk_manifest_flags flags, struct spk_manifest **ret,
		  struct spk_error *err)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *data = NULL;
	struct spk_error e;
	struct stat st;
	size_t len = 0;
	int r;

	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY);
	if (fd < 0)
		return spk_error_set(err, errno, "cannot open '%s': %s", path, strerror(errno));
	if (fstat(fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat '%s': %s", path, strerror(errno));
	if (!S_ISREG(st.st_mode))
		return spk_error_set(err, EBADMSG, "'%s' is not a regular file", path);
	if (st.st_size > SPK_MANIFEST_MAX)
		return spk_error_set(err, E2BIG, "'%s' is larger than %d bytes", path,
				     SPK_MANIFEST_MAX);
	data = malloc(SPK_MANIFEST_MAX + 1);
	if (!data)
		return spk_error_set(err, ENOMEM, "out of memory");
	for (;;) {
		ssize_t n = read(fd, data + len, SPK_MANIFEST_MAX + 1 - len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return spk_error_set(err, errno, "cannot read '%s': %s", path,
					     strerror(errno));
		}
		if (n == 0 || (len += (size_t)n) > SPK_MANIFEST_MAX)
			break;
	}
	r = spk_manifest_parse(data, len, flags, ret, &e);
	if (r < 0)
		return spk_error_set(err, r, "%s: %s", path, e.message);
	return 0;
}

int
spk_manifest_to_package_json(const struct spk_manifest *m, char **ret, size_t *ret_size)
{
	_cleanup_json_ json_t *copy = NULL;
	char *text;
	size_t len;

	copy = json_deep_copy(m->json);
	if (!copy)
		return -ENOMEM;
	(void)json_object_del(copy, "files");
	text = json_dumps(copy, JSON_SORT_KEYS | JSON_INDENT(2));
	if (!text)
		return -ENOMEM;
	len = strlen(text);
	/* One final newline, like any text file. */
	{
		char *t = realloc(text, len + 2);
		if (!t) {
			free(text);
			return -ENOMEM;
		}
		text = t;
		text[len++] = '\n';
		text[len] = '\0';
	}
	*ret = text;
	*ret_size = len;
	return 0;
}
