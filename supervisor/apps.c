/* SPDX-License-Identifier: MIT */
/*
 * apps.c: what front and the CLI (when the daemon is down) both do with
 * apps and grains, and the JSON both show them as.
 *
 * Recording an unpacked package is the step after package_install().
 * The directory packages/<package-id> exists before its row does: a crash
 * between the two leaves a directory without a row, which the next
 * front_housekeeping() deletes (or the next install of the same bytes adopts).
 * Never the other way round: a row always has its directory.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/json-util.h"
#include "common/macro.h"
#include "common/token.h"
#include "spk/spk.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

static int
read_manifest(int packages_fd, const char *package_id, char **ret, size_t *ret_size)
{
	_cleanup_close_ int fd = -EBADF;
	_cleanup_free_ char *data = NULL;
	char path[PACKAGE_ID_LEN + sizeof("/" SPK_MANIFEST_NAME)];
	size_t size = 0;

	(void)snprintf(path, sizeof(path), "%s/%s", package_id, SPK_MANIFEST_NAME);
	fd = openat(packages_fd, path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
	if (fd < 0)
		return negative_errno();
	data = malloc(SPK_MANIFEST_MAX + 1);
	if (!data)
		return -ENOMEM;
	for (;;) {
		ssize_t n = read(fd, data + size, SPK_MANIFEST_MAX + 1 - size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return negative_errno();
		if (n == 0)
			break;
		size += (size_t)n;
		if (size > SPK_MANIFEST_MAX)
			return -E2BIG;
	}
	data[size] = '\0';
	*ret = TAKE_PTR(data);
	*ret_size = size;
	return 0;
}

/* The database half of app_install_finish(). */
static int
app_register(struct db *db, int packages_fd, const struct package_install_result *installed,
	     uint64_t file_size, int64_t installed_by, int64_t now, struct app_register_result *ret)
{
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	_cleanup_free_ char *manifest = NULL;
	struct db_package current = {}, p = {};
	struct spk_error err = {};
	size_t size;
	int r;

	*ret = (struct app_register_result){};
	r = read_manifest(packages_fd, installed->package_id, &manifest, &size);
	if (r >= 0)
		r = spk_manifest_parse(manifest, size, 0, &m, &err);
	if (r >= 0 && strcmp(m->app_id, installed->app_id) != 0)
		r = -EBADMSG;
	if (r < 0) {
		(void)snprintf(ret->message, sizeof(ret->message),
			       "The unpacked package's manifest is unreadable (%s)",
			       err.message[0] ? err.message : "wrong app id or file");
		return r;
	}

	r = db_package_get(db, installed->package_id, &p);
	if (r >= 0) {
		db_package_release(&p);
		ret->outcome = APP_ALREADY_INSTALLED;
		return 0;
	}
	if (r != -ENOENT)
		return r;

	r = db_app_get(db, installed->app_id, &current);
	if (r >= 0) {
		int64_t current_version = current.version;

		db_package_release(&current);
		if (m->version < current_version) {
			(void)snprintf(ret->message, sizeof(ret->message),
				       "Version %" PRId64 " of '%s' is older than the installed "
				       "version %" PRId64 "; remove the app first to go back",
				       m->version, m->title, current_version);
			return -ESTALE;
		}
		ret->outcome = APP_UPDATED;
	} else if (r == -ENOENT)
		ret->outcome = APP_INSTALLED;
	else
		return r;

	p = (struct db_package){
		.version = m->version,
		.manifest = manifest,
		.size = (int64_t)file_size,
		.installed_at = now,
	};
	(void)snprintf(p.id, sizeof(p.id), "%s", installed->package_id);
	(void)snprintf(p.app_id, sizeof(p.app_id), "%s", installed->app_id);
	(void)snprintf(p.title, sizeof(p.title), "%s", m->title);
	r = db_package_add(db, &p, installed_by);
	if (r == -EEXIST) {
		ret->outcome = APP_ALREADY_INSTALLED; /* added meanwhile by someone else */
		return 0;
	}
	return r;
}

int
app_install_finish(struct db *db, int packages_fd, const struct package_install_result *installed,
		   uint64_t file_size, int64_t installed_by,
		   void (*discard)(const char *package_id, void *userdata), void *userdata,
		   struct app_register_result *ret, json_t **ret_answer)
{
	static const char *const outcomes[] = {
		[APP_INSTALLED] = "installed",
		[APP_UPDATED] = "updated",
		[APP_ALREADY_INSTALLED] = "unchanged",
	};
	struct db_package p = {};
	int64_t now = (int64_t)time(NULL);
	int r;

	r = app_register(db, packages_fd, installed, file_size, installed_by, now, ret);
	if (r < 0) {
		/* Bytes unpacked before belong to the row that may come back with them. */
		if (!installed->existed)
			discard(installed->package_id, userdata);
		return r;
	}
	ret->outcome_name = outcomes[ret->outcome];
	if (ret->outcome != APP_ALREADY_INSTALLED)
		(void)db_audit_add(db, now, NULL, installed_by,
				   ret->outcome == APP_INSTALLED ? "app.installed" : "app.updated",
				   NULL);
	r = db_package_get(db, installed->package_id, &p);
	if (r < 0)
		return r;
	*ret_answer =
		json_pack("{s:o,s:s}", "app", package_json(&p, true), "outcome", ret->outcome_name);
	db_package_release(&p);
	return *ret_answer ? 0 : -ENOMEM;
}

static int
collect_id(const char *id, void *userdata)
{
	return json_array_append_new(userdata, json_string(id)) == 0 ? 0 : -ENOMEM;
}

int
app_remove(struct db *db, const char *app_id, int64_t removed_by,
	   void (*discard)(const char *package_id, void *userdata), void *userdata)
{
	_cleanup_json_ json_t *ids = json_array();
	size_t i;
	json_t *id;
	int r;

	if (!ids)
		return -ENOMEM;
	r = db_app_remove(db, app_id, collect_id, ids);
	if (r < 0)
		return r;
	/* The rows are gone; a directory whose deletion fails is swept later. */
	json_array_foreach (ids, i, id)
		discard(json_string_value(id), userdata);
	(void)db_audit_add(db, (int64_t)time(NULL), NULL, removed_by, "app.removed", NULL);
	return 0;
}

/* ---- JSON ---------------------------------------------------------------- */

json_t *
user_json(const struct db_user *u)
{
	return json_pack("{s:I,s:s,s:b,s:I}", "id", (json_int_t)u->id, "name", u->name, "admin",
			 u->admin, "createdAt", (json_int_t)u->created_at);
}

json_t *
package_json(const struct db_package *p, bool with_manifest)
{
	json_t *o = json_pack("{s:s,s:s,s:I,s:s,s:I,s:I}", "id", p->app_id, "packageId", p->id,
			      "version", (json_int_t)p->version, "title", p->title, "size",
			      (json_int_t)p->size, "installedAt", (json_int_t)p->installed_at);

	if (o && with_manifest) {
		json_t *m = json_loads(p->manifest, 0, NULL);

		if (!m || json_object_set_new(o, "manifest", m) < 0) {
			json_decref(o);
			return NULL;
		}
	}
	return o;
}

json_t *
grain_json(const struct db_grain *g)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:o,s:o}", "id", g->id, "appId", g->app_id,
			 "packageId", g->package_id, "title", g->title, "owner", g->owner_name,
			 "createdAt", (json_int_t)g->created_at, "lastUsedAt",
			 g->last_used_at ? json_integer(g->last_used_at) : json_null(), "trashedAt",
			 g->trashed_at ? json_integer(g->trashed_at) : json_null());
}

/* The manifest's permission list as a JSON array text (the owner holds them all). */
static char *
owner_permissions(const char *manifest)
{
	_cleanup_json_ json_t *m = json_loads(manifest, 0, NULL);
	json_t *perms = m ? json_object_get(m, "permissions") : NULL;

	return json_is_array(perms) ? json_dumps(perms, JSON_COMPACT) : strdup("[]");
}

int
grain_create(struct db *db, const char *app_id, int64_t owner_id, const char *title,
	     int64_t created_by, int (*storage)(const char *grain_id, bool create, void *userdata),
	     void *userdata, struct db_grain *ret)
{
	_cleanup_free_ char *perms = NULL;
	struct db_package p = {};
	struct db_grain g = {};
	int r;

	r = db_app_get(db, app_id, &p);
	if (r < 0)
		return r;
	r = random_hex(g.id, GRAIN_ID_LEN / 2);
	if (r >= 0) {
		(void)snprintf(g.app_id, sizeof(g.app_id), "%s", p.app_id);
		(void)snprintf(g.package_id, sizeof(g.package_id), "%s", p.id);
		(void)snprintf(g.title, sizeof(g.title), "%s", title ? title : p.title);
		g.owner_id = owner_id;
		g.created_at = (int64_t)time(NULL);
		perms = owner_permissions(p.manifest);
		r = perms ? 0 : -ENOMEM;
	}
	db_package_release(&p);
	if (r < 0)
		return r;

	/* Storage first, then the row; the storage is undone if the row fails. */
	r = storage(g.id, true, userdata);
	if (r < 0)
		return log_error_errno(r, "Failed to create the storage of grain %s: %m", g.id);
	r = db_grain_add(db, &g, perms);
	if (r < 0) {
		(void)storage(g.id, false, userdata);
		return r;
	}
	(void)db_audit_add(db, g.created_at, g.id, created_by, "grain.created", NULL);
	return db_grain_get(db, g.id, ret);
}
