/* SPDX-License-Identifier: MIT */
/*
 * test-spk-manifest.c: the manifest (granary-manifest.json) and the package
 * definition (spk.json): what is accepted, the defaults, and that missing
 * fields, wrong types, oversized strings and inconsistent values are refused
 * with a message naming the field.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "spk/spk-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

#define ID "0123456789abcdefghjkmnpqrstvwxyz0123456789abcdefghjg"

static const char full[] =
	"{\"app\":{\"id\":\"" ID "\",\"title\":\"Notes\",\"version\":3,"
	"\"marketingVersion\":\"1.2.0\"},"
	"\"run\":{\"command\":[\"/bin/notes\",\"--port\",\"8000\"],\"env\":{\"HOME\":\"/var\","
	"\"LANG\":\"C.UTF-8\"},\"httpPort\":8000},"
	"\"permissions\":[\"read\",\"write\",\"admin\"],"
	"\"roles\":[{\"name\":\"editor\",\"permissions\":[\"read\",\"write\"],\"default\":true},"
	"{\"name\":\"viewer\",\"permissions\":[\"read\"],\"readOnly\":true}],"
	"\"actions\":[{\"title\":\"New note\"}],"
	"\"metadata\":{\"description\":\"Notes.\\nMany.\",\"author\":\"A\",\"license\":\"MIT\","
	"\"website\":\"https://example.org\"}}";

static struct spk_error err;

static int
parse(const char *text, enum spk_manifest_flags flags, struct spk_manifest **ret)
{
	struct spk_manifest *m = NULL;
	int r;

	memset(&err, 0, sizeof(err));
	r = spk_manifest_parse(text, strlen(text), flags, &m, &err);
	if (ret)
		*ret = m;
	else
		m = spk_manifest_free(m);
	return r;
}

/* text with the first occurrence of from replaced by to. */
static char *
edit(const char *text, const char *from, const char *to)
{
	const char *at = strstr(text, from);
	char *s;

	if (!at)
		abort();
	if (asprintf(&s, "%.*s%s%s", (int)(at - text), text, to, at + strlen(from)) < 0)
		abort();
	return s;
}

/* Refused with a message containing what. */
static void
refused(const char *from, const char *to, const char *what)
{
	_cleanup_free_ char *text = edit(full, from, to);

	if (!CHECK_ERR(parse(text, 0, NULL), EBADMSG) || !CHECK(strstr(err.message, what)))
		printf("#   edit '%.80s' → '%.80s': message '%s', expected '%s'\n", from, to,
		       err.message, what);
}

TEST(full_manifest)
{
	struct spk_manifest *m;

	CHECK_OK(parse(full, 0, &m));
	if (!m)
		return;
	CHECK_STR_EQ(m->app_id, ID);
	CHECK_STR_EQ(m->title, "Notes");
	CHECK_INT_EQ(m->version, 3);
	CHECK_STR_EQ(m->marketing_version, "1.2.0");
	CHECK_UINT_EQ(m->n_command, 3);
	CHECK_STR_EQ(m->command[0], "/bin/notes");
	CHECK_STR_EQ(m->command[2], "8000");
	CHECK_UINT_EQ(m->n_env, 2);
	CHECK_STR_EQ(m->env[0].name, "HOME");
	CHECK_STR_EQ(m->env[0].value, "/var");
	CHECK_UINT_EQ(m->http_port, 8000);
	CHECK_UINT_EQ(m->n_permissions, 3);
	CHECK_STR_EQ(m->permissions[2], "admin");
	CHECK_UINT_EQ(m->n_roles, 2);
	CHECK_STR_EQ(m->roles[0].name, "editor");
	CHECK(m->roles[0].is_default);
	CHECK(!m->roles[0].read_only);
	CHECK_UINT_EQ(m->roles[0].n_permissions, 2);
	CHECK_STR_EQ(m->roles[1].permissions[0], "read");
	CHECK(m->roles[1].read_only);
	CHECK_UINT_EQ(m->n_actions, 1);
	CHECK_STR_EQ(m->actions[0].title, "New note");
	CHECK_STR_EQ(m->description, "Notes.\nMany.");
	CHECK_STR_EQ(m->website, "https://example.org");
	CHECK_UINT_EQ(m->n_sources, 0);
	CHECK_STR_EQ(m->files_list, "");
	m = spk_manifest_free(m);
}

TEST(minimal_manifest_and_defaults)
{
	struct spk_manifest *m;
	const char *text = "{\"app\":{\"id\":\"" ID "\",\"title\":\"T\",\"version\":0},"
			   "\"run\":{\"command\":[\"/a\"],\"httpPort\":1}}";

	CHECK_OK(parse(text, 0, &m));
	if (!m)
		return;
	CHECK_STR_EQ(m->marketing_version, "");
	CHECK_UINT_EQ(m->n_env, 0);
	CHECK_UINT_EQ(m->n_permissions, 0);
	CHECK_UINT_EQ(m->n_roles, 0);
	CHECK_UINT_EQ(m->n_actions, 0);
	CHECK_STR_EQ(m->description, "");
	CHECK_STR_EQ(m->author, "");
	CHECK_STR_EQ(m->license, "");
	CHECK_STR_EQ(m->website, "");
	m = spk_manifest_free(m);

	/* As a definition: one default source, the directory itself at the root. */
	CHECK_OK(parse(text, SPK_MANIFEST_DEFINITION, &m));
	if (!m)
		return;
	CHECK_UINT_EQ(m->n_sources, 1);
	CHECK_STR_EQ(m->sources[0].from, ".");
	CHECK_STR_EQ(m->sources[0].to, "");
	CHECK(!m->sources[0].follow_symlinks);
	m = spk_manifest_free(m);
}

TEST(missing_required_fields)
{
	CHECK_ERR(parse("{\"run\":{}}", 0, NULL), EBADMSG);
	CHECK_STR_EQ(err.message, "app: required field is missing");
	CHECK_ERR(parse("{\"app\":{}}", 0, NULL), EBADMSG);
	CHECK_STR_EQ(err.message, "run: required field is missing");
	refused("\"id\":\"" ID "\",", "", "app.id: required field is missing");
	refused("\"title\":\"Notes\",", "", "app.title: required field is missing");
	refused("\"version\":3,", "", "app.version: required field is missing");
	refused("\"command\":[\"/bin/notes\",\"--port\",\"8000\"],", "",
		"run.command: required field is missing");
	refused(",\"httpPort\":8000", "", "run.httpPort: required field is missing");
	refused("{\"name\":\"viewer\",", "{", "roles[1].name: required field is missing");
	refused("{\"title\":\"New note\"}", "{}", "actions[0].title: required field is missing");
}

TEST(wrong_types)
{
	refused("\"version\":3", "\"version\":\"3\"",
		"app.version: expected an integer, got a string");
	refused("\"version\":3", "\"version\":3.5", "app.version: expected an integer");
	refused("\"title\":\"Notes\"", "\"title\":7", "app.title: expected a string");
	refused("\"httpPort\":8000", "\"httpPort\":\"8000\"", "run.httpPort: expected an integer");
	refused("[\"/bin/notes\",\"--port\",\"8000\"]", "\"/bin/notes\"",
		"run.command: expected an array");
	refused("\"--port\"", "8", "run.command[1]: expected a string");
	refused("\"LANG\":\"C.UTF-8\"", "\"LANG\":1", "run.env.LANG: expected a string");
	refused("\"default\":true", "\"default\":\"yes\"", "roles[0].default: expected a boolean");
	refused("\"permissions\":[\"read\",\"write\",\"admin\"]", "\"permissions\":\"read\"",
		"permissions: expected an array");
	refused("[{\"title\":\"New note\"}]", "{}", "actions: expected an array");
	refused("\"env\":{", "\"env\":[],\"x\":{", "run.x: unknown field");
	CHECK_ERR(parse("[]", 0, NULL), EBADMSG);
	CHECK_ERR(parse("", 0, NULL), EBADMSG);
	CHECK_ERR(parse("{\"app\":1,\"app\":2}", 0, NULL), EBADMSG);
}

TEST(unknown_fields_are_refused_everywhere)
{
	refused("{\"app\":", "{\"apps\":1,\"app\":", "apps: unknown field");
	refused("\"title\":\"Notes\"", "\"title\":\"Notes\",\"icon\":\"x\"",
		"app.icon: unknown field");
	refused("\"httpPort\":8000", "\"httpPort\":8000,\"port\":1", "run.port: unknown field");
	refused("\"readOnly\":true", "\"readOnly\":true,\"ro\":true", "roles[1].ro: unknown field");
	refused("\"license\":\"MIT\"", "\"license\":\"MIT\",\"x\":\"\"",
		"metadata.x: unknown field");
}

TEST(oversized_strings_and_counts)
{
	char big[5000], *text;

	memset(big, 'x', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	refused("\"title\":\"Notes\"",
		"\"title\":\"0123456789012345678901234567890123456789012345678901234567890123"
		"4\"",
		"app.title: must be at most 64 bytes long");
	refused("\"title\":\"Notes\"", "\"title\":\"\"", "app.title: must be at least 1 bytes");
	refused("\"1.2.0\"", "\"123456789012345678901234567890123\"",
		"app.marketingVersion: must be at most 32 bytes");
	if (asprintf(&text, "\"%s\"", big) < 0)
		abort();
	refused("\"--port\"", text, "run.command[1]: must be 0 to 4096 bytes long");
	refused("\"A\"", text, "metadata.author: must be at most 256 bytes long");
	refused("\"C.UTF-8\"", text, "run.env.LANG: must be at most 4096 bytes");
	free(text);
	/* The whole document is bounded too. */
	{
		size_t n = SPK_MANIFEST_MAX + 100;
		char *doc = malloc(n + 1);
		struct spk_manifest *m = NULL;

		memset(doc, ' ', n);
		memcpy(doc, "{}", 2);
		doc[n] = '\0';
		CHECK_ERR(spk_manifest_parse(doc, n, 0, &m, &err), E2BIG);
		free(doc);
	}
}

TEST(values_out_of_range)
{
	refused("\"version\":3", "\"version\":-1", "app.version: must be between 0 and");
	refused("\"version\":3", "\"version\":4294967296", "app.version: must be between");
	refused("\"httpPort\":8000", "\"httpPort\":0", "run.httpPort: must be between 1 and 65535");
	refused("\"httpPort\":8000", "\"httpPort\":65536", "run.httpPort");
	refused("\"id\":\"" ID "\"", "\"id\":\"notes\"", "app.id: not an app id");
	refused("\"id\":\"" ID "\"",
		"\"id\":\"0123456789ABCDEFGHJKMNPQRSTVWXYZ0123456789abcdefghjg\"",
		"app.id: not an app id");
	refused("\"/bin/notes\"", "\"bin/notes\"", "run.command[0]: must be an absolute path");
	refused("[\"/bin/notes\",\"--port\",\"8000\"]", "[]", "run.command: must name the program");
	refused("\"title\":\"Notes\"", "\"title\":\"No\\ntes\"",
		"app.title: must not contain control");
	refused("\"website\":\"https://example.org\"", "\"website\":\"javascript:alert(1)\"",
		"metadata.website: must be an http:// or https:// URL");
	refused("\"HOME\":\"/var\"", "\"1HOME\":\"/var\"", "run.env: variable names");
	refused("\"HOME\":\"/var\"", "\"HO-ME\":\"/var\"", "run.env: variable names");
	refused("\"HOME\":\"/var\"", "\"\":\"/var\"", "run.env: variable names");
}

TEST(permissions_and_roles_are_consistent)
{
	refused("\"admin\"]", "\"Admin\"]", "permissions[2]: must be 1 to 32 characters");
	refused("\"admin\"]", "\"read\"]", "permissions[2]: 'read' is listed twice");
	refused("\"permissions\":[\"read\",\"write\"],\"default\"",
		"\"permissions\":[\"read\",\"delete\"],\"default\"",
		"roles[0].permissions: 'delete' is not in the top-level \"permissions\"");
	refused("{\"name\":\"viewer\",\"permissions\":[\"read\"],\"readOnly\":true}",
		"{\"name\":\"viewer\",\"permissions\":[\"read\"],\"default\":true}",
		"roles[1].default: only one role can be the default");
	refused("\"name\":\"viewer\"", "\"name\":\"editor\"",
		"roles[1].name: role 'editor' is defined twice");
	refused("\"name\":\"viewer\"", "\"name\":\"Viewer\"", "roles[1].name: must be 1 to 32");
}

static const char definition_head[] = "{\"app\":{\"id\":\"" ID "\",\"title\":\"T\",\"version\":1},"
				      "\"run\":{\"command\":[\"/a\"],\"httpPort\":1},";

static int
parse_definition(const char *files, enum spk_manifest_flags flags, struct spk_manifest **ret)
{
	_cleanup_free_ char *text = NULL;

	if (asprintf(&text, "%s\"files\":%s}", definition_head, files) < 0)
		abort();
	return parse(text, flags, ret);
}

TEST(files_only_in_a_definition)
{
	struct spk_manifest *m;

	CHECK_ERR(parse_definition("{}", 0, NULL), EBADMSG);
	CHECK_STR_EQ(err.message, "files: belongs in spk.json only, not in a package's manifest");
	CHECK_OK(parse_definition("{\"sources\":[{\"from\":\"/usr/bin/php8.2\",\"to\":\"usr/bin/"
				  "php8.2\"},{\"from\":\"/\",\"followSymlinks\":true}],"
				  "\"list\":\"spk-files.list\"}",
				  SPK_MANIFEST_DEFINITION, &m));
	if (!m)
		return;
	CHECK_UINT_EQ(m->n_sources, 2);
	CHECK_STR_EQ(m->sources[0].from, "/usr/bin/php8.2");
	CHECK_STR_EQ(m->sources[0].to, "usr/bin/php8.2");
	CHECK(!m->sources[0].follow_symlinks);
	CHECK_STR_EQ(m->sources[1].to, "");
	CHECK(m->sources[1].follow_symlinks);
	CHECK_STR_EQ(m->files_list, "spk-files.list");
	m = spk_manifest_free(m);
}

TEST(bad_sources)
{
	CHECK_ERR(parse_definition("{\"sources\":[]}", SPK_MANIFEST_DEFINITION, NULL), EBADMSG);
	CHECK(strstr(err.message, "files.sources: must list at least one source"));
	CHECK_ERR(parse_definition("{\"sources\":[{\"to\":\"x\"}]}", SPK_MANIFEST_DEFINITION, NULL),
		  EBADMSG);
	CHECK_STR_EQ(err.message, "files.sources[0].from: required field is missing");
	CHECK_ERR(parse_definition("{\"sources\":[{\"from\":\".\",\"to\":\"../x\"}]}",
				   SPK_MANIFEST_DEFINITION, NULL),
		  EBADMSG);
	CHECK(strstr(err.message, "files.sources[0].to: "));
	CHECK_ERR(parse_definition("{\"sources\":[{\"from\":\".\",\"to\":\"/usr\"}]}",
				   SPK_MANIFEST_DEFINITION, NULL),
		  EBADMSG);
	CHECK(strstr(err.message, "absolute"));
	CHECK_ERR(
		parse_definition("{\"sources\":[{\"from\":\"\"}]}", SPK_MANIFEST_DEFINITION, NULL),
		EBADMSG);
	CHECK_ERR(parse_definition("{\"source\":[]}", SPK_MANIFEST_DEFINITION, NULL), EBADMSG);
	CHECK_STR_EQ(err.message, "files.source: unknown field");
	CHECK_ERR(parse_definition("{\"list\":\"\"}", SPK_MANIFEST_DEFINITION, NULL), EBADMSG);
}

TEST(package_json_is_canonical)
{
	struct spk_manifest *m;
	_cleanup_free_ char *a = NULL, *b = NULL;
	size_t na, nb;
	_cleanup_free_ char *reordered = NULL;

	CHECK_OK(parse_definition("{\"list\":\"l\"}", SPK_MANIFEST_DEFINITION, &m));
	if (!m)
		return;
	CHECK_OK(spk_manifest_to_package_json(m, &a, &na));
	m = spk_manifest_free(m);
	CHECK(!strstr(a, "\"files\""));
	CHECK_UINT_EQ(strlen(a), na);
	CHECK(a[na - 1] == '\n');
	/* The same document with keys in another order and other spacing: the same bytes. */
	if (asprintf(&reordered,
		     "{ \"run\" : {\"httpPort\":1, \"command\":[\"/a\"]},\n"
		     "  \"app\":{\"version\":1,\"title\":\"T\",\"id\":\"" ID "\"}}") < 0)
		abort();
	CHECK_OK(parse(reordered, 0, &m));
	if (!m)
		return;
	CHECK_OK(spk_manifest_to_package_json(m, &b, &nb));
	m = spk_manifest_free(m);
	CHECK_STR_EQ(a, b);
	/* And it parses as a package manifest. */
	CHECK_OK(parse(a, 0, NULL));
}
