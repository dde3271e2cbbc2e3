/* SPDX-License-Identifier: MIT */
/*
 * caps.c: what an edge of a grain's sharing tree grants (docs/sharing.md).
 *
 * Roles and permissions are the app's (its current package's manifest);
 * inside Granary a set of permissions is a bit mask over the manifest's
 * "permissions" list, and edges store the names (a JSON array), so an app
 * update that reorders or drops permissions never grants a different one.
 *
 * An edge grants its own role's permissions intersected with its parent's
 * grant, read-only if it or any ancestor is, and nothing once it or any
 * ancestor is revoked or expired: computed on every use, walking up to the
 * owner's edge, so a change anywhere above applies at once below.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

/* Edges are copied into a role's name and permissions: keep the manifest's bounds. */
static void
role_set(struct grain_role *role, const char *name, uint32_t mask, bool read_only, bool is_default)
{
	(void)snprintf(role->name, sizeof(role->name), "%s", name);
	role->mask = mask;
	role->read_only = read_only;
	role->is_default = is_default;
}

int
grain_roles_parse(const char *manifest_json, struct grain_roles *ret)
{
	_cleanup_json_ json_t *m = json_loads(manifest_json, 0, NULL);
	json_t *perms, *roles, *v;
	size_t i;

	*ret = (struct grain_roles){};
	if (!json_is_object(m))
		return -EBADMSG;
	perms = json_object_get(m, "permissions");
	json_array_foreach (perms, i, v) {
		const char *name = json_string_value(v);

		if (!name || strlen(name) > CAP_ROLE_MAX || ret->n_perms >= GRAIN_PERMS_MAX)
			return -EBADMSG;
		(void)snprintf(ret->perms[ret->n_perms], sizeof(ret->perms[0]), "%s", name);
		ret->n_perms++;
	}
	roles = json_object_get(m, "roles");
	json_array_foreach (roles, i, v) {
		const char *name = json_string_value(json_object_get(v, "name"));
		json_t *p = json_object_get(v, "permissions");
		_cleanup_free_ char *text = p ? json_dumps(p, JSON_COMPACT) : NULL;

		if (!name || strlen(name) > CAP_ROLE_MAX || ret->n_roles >= GRAIN_ROLES_MAX)
			return -EBADMSG;
		role_set(&ret->roles[ret->n_roles++], name, text ? grain_perms_mask(ret, text) : 0,
			 json_is_true(json_object_get(v, "readOnly")),
			 json_is_true(json_object_get(v, "default")));
	}
	if (ret->n_roles == 0) {
		/* An app without roles: everything, or looking only. */
		role_set(&ret->roles[0], "editor", grain_perms_all(ret), false, true);
		role_set(&ret->roles[1], "viewer", 0, true, false);
		ret->n_roles = 2;
	}
	return 0;
}

int
grain_roles_load(struct db *db, const char *app_id, struct grain_roles *ret)
{
	struct db_package p = {};
	int r = db_app_get(db, app_id, &p);

	if (r < 0)
		return r;
	r = grain_roles_parse(p.manifest, ret);
	db_package_release(&p);
	return r;
}

uint32_t
grain_perms_all(const struct grain_roles *roles)
{
	return roles->n_perms >= 32 ? UINT32_MAX : (UINT32_C(1) << roles->n_perms) - 1;
}

const struct grain_role *
grain_role_find(const struct grain_roles *roles, const char *name)
{
	for (size_t i = 0; i < roles->n_roles; i++)
		if (name ? strcmp(roles->roles[i].name, name) == 0 : roles->roles[i].is_default)
			return &roles->roles[i];
	/* No default named: the first role is. */
	return name || roles->n_roles == 0 ? NULL : &roles->roles[0];
}

uint32_t
grain_perms_mask(const struct grain_roles *roles, const char *json_text)
{
	_cleanup_json_ json_t *array = json_loads(json_text, 0, NULL);
	uint32_t mask = 0;
	size_t i;
	json_t *v;

	json_array_foreach (array, i, v) {
		const char *name = json_string_value(v);

		for (size_t j = 0; name && j < roles->n_perms; j++)
			if (strcmp(roles->perms[j], name) == 0)
				mask |= UINT32_C(1) << j;
	}
	return mask;
}

json_t *
grain_perms_json(const struct grain_roles *roles, uint32_t mask)
{
	json_t *array = json_array();

	for (size_t j = 0; array && j < roles->n_perms; j++)
		if ((mask & (UINT32_C(1) << j)) &&
		    json_array_append_new(array, json_string(roles->perms[j])) < 0)
			return json_decref(array), NULL;
	return array;
}

void
grain_perms_list(const struct grain_roles *roles, uint32_t mask, char *out, size_t size)
{
	size_t len = 0;

	out[0] = '\0';
	for (size_t j = 0; j < roles->n_perms; j++) {
		int n;

		if (!(mask & (UINT32_C(1) << j)))
			continue;
		n = snprintf(out + len, size - len, "%s%s", len ? "," : "", roles->perms[j]);
		if (n < 0 || (size_t)n >= size - len) {
			out[len] = '\0';
			return;
		}
		len += (size_t)n;
	}
}

void
cap_access_step(const struct grain_roles *roles, const struct db_cap *c, int64_t now,
		struct cap_access *a)
{
	if (c->revoked_at || (c->expires_at && now >= c->expires_at))
		a->active = false;
	if (c->expires_at && (!a->until || c->expires_at < a->until))
		a->until = c->expires_at;
	a->read_only |= c->read_only;
	a->reshare &= c->reshare;
	a->mask &= c->kind == CAP_OWNER ? grain_perms_all(roles)
					: grain_perms_mask(roles, c->permissions);
	a->depth++;
}

void
cap_access_settle(struct cap_access *a)
{
	if (!a->active)
		*a = (struct cap_access){ .depth = a->depth };
}

int
cap_access(struct db *db, const struct grain_roles *roles, int64_t id, int64_t now,
	   struct db_cap *ret_edge, struct cap_access *ret)
{
	struct cap_access a = CAP_ACCESS_ROOT;
	char grain_id[GRAIN_ID_LEN + 1] = "";
	int r;

	for (unsigned depth = 0;; depth++) {
		struct db_cap c;

		if (depth >= CAP_DEPTH_MAX)
			return -ELOOP; /* never made: share refuses deeper edges */
		r = db_cap_get(db, id, &c);
		if (r < 0)
			return r;
		if (depth == 0) {
			(void)snprintf(grain_id, sizeof(grain_id), "%s", c.grain_id);
			if (ret_edge)
				*ret_edge = c;
		} else if (strcmp(grain_id, c.grain_id) != 0)
			return -EBADMSG;
		cap_access_step(roles, &c, now, &a);
		if (c.kind == CAP_OWNER)
			break;
		if (c.parent_id <= 0)
			return -EBADMSG; /* only the owner's edge is a root */
		id = c.parent_id;
	}
	cap_access_settle(&a);
	*ret = a;
	return 0;
}

/* Better: more permissions, then writable, then (the caller's order) older. */
static bool
access_better(const struct cap_access *a, const struct cap_access *b)
{
	int pa = __builtin_popcount(a->mask), pb = __builtin_popcount(b->mask);

	if (pa != pb)
		return pa > pb;
	return !a->read_only && b->read_only;
}

struct best {
	int64_t via;
	int64_t id;
	struct cap_access access;
	int64_t *ids; /* owned */
	size_t n;
};

static int
collect_held(const struct db_cap *c, void *userdata)
{
	struct best *b = userdata;
	int64_t *ids;

	if (b->via > 0 && c->id != b->via)
		return 0;
	ids = reallocarray(b->ids, b->n + 1, sizeof(*ids));
	if (!ids)
		return -ENOMEM;
	b->ids = ids;
	b->ids[b->n++] = c->id;
	return 0;
}

int
cap_best_held(struct db *db, const struct grain_roles *roles, const char *grain_id, int64_t user_id,
	      int64_t via, int64_t now, int64_t *ret_id, struct cap_access *ret)
{
	struct best b = { .via = via };
	int r;

	/* Collected first: cap_access() runs statements of its own. */
	r = db_cap_held(db, grain_id, user_id, collect_held, &b);
	for (size_t i = 0; r >= 0 && i < b.n; i++) {
		struct cap_access a;

		r = cap_access(db, roles, b.ids[i], now, NULL, &a);
		if (r == -ELOOP || r == -EBADMSG)
			r = 0; /* a broken edge grants nothing */
		else if (r >= 0 && a.active && (!b.id || access_better(&a, &b.access))) {
			b.id = b.ids[i];
			b.access = a;
		}
	}
	free(b.ids);
	if (r < 0)
		return r;
	if (!b.id)
		return -ENOENT;
	*ret_id = b.id;
	*ret = b.access;
	return 0;
}
