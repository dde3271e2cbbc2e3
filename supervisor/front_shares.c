/* SPDX-License-Identifier: MIT */
/*
 * front_shares.c: sharing (docs/sharing.md, docs/api.md "Sharing"): who holds
 * a grain, share links and API tokens, the sharing tree, changes and
 * revocations, the audit log, and the /s/<token> landing.
 *
 * Handlers run like front_api.c's (f->lock held, the request checked by
 * front.c). What an edge grants is always computed by caps.c from the
 * database, never trusted from a cache; every change bumps the sessions'
 * generation (session_cache_recheck_grain()) so open sessions follow at once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <microhttpd.h>

#include "common/json-util.h"
#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "common/token.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define EXPIRES_IN_MAX (10LL * 366 * 24 * 3600) /* ten years */
#define AUDIT_PAGE     1000

static int
no_such_grain(struct request *req)
{
	(void)respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_grain", "No such grain");
	return 1;
}

int
held_grain(struct request *req, int64_t via, struct held_grain *h)
{
	struct front *f = req->front;
	int r;

	*h = (struct held_grain){};
	r = db_grain_get(f->db, req->param, &h->g);
	if (r == -ENOENT)
		return no_such_grain(req);
	if (r < 0)
		return r;
	if (req->local) {
		/* root on the admin socket acts as the owner (it can read the state anyway). */
		r = db_user_by_id(f->db, h->g.owner_id, &h->actor, NULL, 0);
		if (r < 0)
			return r;
	} else
		h->actor = req->user;
	h->owner = h->actor.id == h->g.owner_id;
	if (!h->owner && h->g.trashed_at)
		return no_such_grain(req);
	r = grain_roles_load(f->db, h->g.app_id, &h->roles);
	if (r < 0)
		return r;
	r = cap_best_held(f->db, &h->roles, h->g.id, h->actor.id, via, now_seconds(), &h->cap_id,
			  &h->access);
	if (r == -ENOENT && via > 0) {
		(void)respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_share",
				    "You hold no share %" PRId64 " of this grain", via);
		return 1;
	}
	if (r == -ENOENT)
		return no_such_grain(req);
	return r;
}

json_t *
held_access_json(const struct held_grain *h)
{
	const struct grain_role *best = NULL;

	/* The role that says it: the first whose grant equals what is held. */
	for (size_t i = 0; i < h->roles.n_roles; i++)
		if (h->roles.roles[i].mask == h->access.mask &&
		    h->roles.roles[i].read_only == h->access.read_only) {
			best = &h->roles.roles[i];
			break;
		}
	return json_pack("{s:b,s:o,s:o,s:b,s:o}", "owner", h->owner, "role",
			 h->owner ? json_string("owner")
			 : best	  ? json_string(best->name)
				  : json_null(),
			 "permissions", grain_perms_json(&h->roles, h->access.mask), "readOnly",
			 h->access.read_only, "via",
			 h->owner ? json_null() : json_integer(h->cap_id));
}

/* ---- the tree ------------------------------------------------------------------ */

static const char *const kind_names[] = {
	[CAP_OWNER] = "owner",
	[CAP_LINK] = "link",
	[CAP_GRANT] = "grant",
	[CAP_TOKEN] = "token",
};

static json_t *
time_or_null(int64_t t)
{
	return t ? json_integer(t) : json_null();
}

static json_t *
share_json(const struct grain_roles *roles, const struct db_cap *c, int64_t parent,
	   const struct cap_access *a)
{
	return json_pack(
		"{s:I,s:s,s:o,s:s,s:o,s:b,s:o,s:o,s:o,s:I,s:o,s:o,s:b,s:b,s:{s:b,s:o,s:b}}", "id",
		(json_int_t)c->id, "kind", kind_names[c->kind], "parent",
		parent > 0 ? json_integer(parent) : json_null(), "role", c->role, "permissions",
		grain_perms_json(roles, grain_perms_mask(roles, c->permissions)), "readOnly",
		c->read_only, "label", c->label[0] ? json_string(c->label) : json_null(), "holder",
		c->holder_name[0] ? json_string(c->holder_name) : json_null(), "createdBy",
		c->created_by_name[0] ? json_string(c->created_by_name) : json_null(), "createdAt",
		(json_int_t)c->created_at, "expiresAt", time_or_null(c->expires_at), "revokedAt",
		time_or_null(c->revoked_at), "reshare", c->reshare, "loginRequired",
		c->login_required, "effective", "active", a->active, "permissions",
		grain_perms_json(roles, a->mask), "readOnly", a->read_only);
}

/* One edge as the API shows it: its parent is null when that is the owner's edge. */
static json_t *
share_json_of(struct front *f, const struct grain_roles *roles, int64_t id)
{
	struct cap_access a = {};
	struct db_cap c, parent;
	int64_t parent_id = 0;

	if (cap_access(f->db, roles, id, now_seconds(), &c, &a) < 0)
		return NULL;
	if (c.parent_id > 0 && db_cap_get(f->db, c.parent_id, &parent) >= 0 &&
	    parent.kind != CAP_OWNER)
		parent_id = c.parent_id;
	return share_json(roles, &c, parent_id, &a);
}

struct tree {
	struct db_cap *edges;
	size_t n, size;
};

static int
collect_edge(const struct db_cap *c, void *userdata)
{
	struct tree *t = userdata;

	if (t->n == t->size) {
		size_t size = t->size ? t->size * 2 : 16;
		struct db_cap *e = reallocarray(t->edges, size, sizeof(*e));

		if (!e)
			return -ENOMEM;
		t->edges = e;
		t->size = size;
	}
	t->edges[t->n++] = *c;
	return 0;
}

static ssize_t
tree_index(const struct tree *t, size_t before, int64_t id)
{
	/* Parents are older: their ids are smaller, and they come first. */
	for (size_t i = before; i-- > 0;)
		if (t->edges[i].id == id)
			return (ssize_t)i;
	return -1;
}

static int
handle_shares_list(struct request *req)
{
	struct front *f = req->front;
	_cleanup_json_ json_t *shares = json_array();
	_cleanup_free_ struct cap_access *eff = NULL;
	_cleanup_free_ bool *made = NULL;
	struct tree t = {};
	struct held_grain h;
	int64_t now = now_seconds();
	int r = held_grain(req, 0, &h);

	if (r != 0)
		return r < 0 ? r : 0;
	r = db_cap_list(f->db, h.g.id, collect_edge, &t);
	if (r >= 0 && t.n > 0) {
		eff = calloc(t.n, sizeof(*eff));
		made = calloc(t.n, sizeof(*made));
		if (!eff || !made)
			r = -ENOMEM;
	}
	for (size_t i = 0; r >= 0 && i < t.n; i++) {
		const struct db_cap *c = &t.edges[i];
		ssize_t p = tree_index(&t, i, c->parent_id);
		struct cap_access *a = &eff[i];

		/* What it grants, from its parent's (computed just before): caps.c's rule. */
		if (c->kind == CAP_OWNER || p >= 0) {
			*a = c->kind == CAP_OWNER ? CAP_ACCESS_ROOT : eff[p];
			cap_access_step(&h.roles, c, now, a);
		}
		cap_access_settle(a);
		/* Whom it is shown to: the owner; the maker and what came from it; its holder. */
		made[i] = c->kind != CAP_OWNER &&
			  (c->created_by == h.actor.id || (p >= 0 && made[p]));
		if (c->kind == CAP_OWNER || !(h.owner || made[i] || c->holder_id == h.actor.id))
			continue;
		r = json_array_append_new(
			shares,
			share_json(&h.roles, c,
				   p >= 0 && t.edges[p].kind != CAP_OWNER ? c->parent_id : 0, a));
	}
	free(t.edges);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:O}", "shares", shares));
}

/* ---- making links and tokens ------------------------------------------------------ */

struct share_request {
	const char *role;
	const char *label;
	int64_t expires_in;
	bool login_required;
	bool reshare;
	int64_t via;
};

static const struct json_field share_fields[] = {
	{ "role", JSON_FIELD_STRING, 0, offsetof(struct share_request, role), .min = 1,
	  .max = CAP_ROLE_MAX },
	{ "label", JSON_FIELD_STRING, 0, offsetof(struct share_request, label),
	  .max = CAP_LABEL_MAX },
	{ "expiresIn", JSON_FIELD_INT, 0, offsetof(struct share_request, expires_in) },
	{ "loginRequired", JSON_FIELD_BOOL, 0, offsetof(struct share_request, login_required) },
	{ "reshare", JSON_FIELD_BOOL, 0, offsetof(struct share_request, reshare) },
	{ "via", JSON_FIELD_INT, 0, offsetof(struct share_request, via), .min = 1,
	  .max = INT64_MAX },
	{},
};

/* Does role grant more than a holds? */
static bool
role_exceeds(const struct grain_role *role, const struct cap_access *a)
{
	return (role->mask & ~a->mask) != 0 || (a->read_only && !role->read_only);
}

static int
refuse_role(struct request *req, const struct grain_role *role)
{
	return respond_error(req, MHD_HTTP_FORBIDDEN, "role_exceeds_yours",
			     "The role '%s' grants more than you hold", role->name);
}

/* The role the request names (NULL: the default); NULL after answering 400. */
static const struct grain_role *
requested_role(struct request *req, const struct grain_roles *roles, const char *name)
{
	const struct grain_role *role = grain_role_find(roles, name);

	if (!role)
		(void)respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_role",
				    "The app has no role '%s'", name ? name : "(default)");
	return role;
}

static int
share_make(struct request *req, enum cap_kind kind)
{
	struct front *f = req->front;
	struct share_request sr = { .reshare = true };
	const struct grain_role *role;
	char token[TOKEN_STRING_LEN + 1], detail[160];
	uint8_t hash[TOKEN_HASH_BYTES];
	_cleanup_free_ char *perms = NULL, *url = NULL;
	struct json_error err;
	struct held_grain h;
	struct db_cap c;
	int64_t now = now_seconds(), id;
	int r;

	if (json_dispatch(req->json, "", share_fields, &sr, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	if (json_object_get(req->json, "expiresIn") &&
	    (sr.expires_in < 1 || sr.expires_in > EXPIRES_IN_MAX))
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_expiry",
				     "expiresIn is seconds from now: 1 to %lld (ten years)",
				     EXPIRES_IN_MAX);
	if (kind == CAP_TOKEN &&
	    (json_object_get(req->json, "loginRequired") || json_object_get(req->json, "reshare")))
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_request",
				     "loginRequired and reshare are for links only");
	r = held_grain(req, sr.via, &h);
	if (r != 0)
		return r < 0 ? r : 0;
	if (h.g.trashed_at)
		return respond_error(req, MHD_HTTP_CONFLICT, "grain_trashed",
				     "The grain is in the trash; restore it first");
	role = requested_role(req, &h.roles, sr.role);
	if (!role)
		return 0;
	if (!h.access.reshare)
		return respond_error(req, MHD_HTTP_FORBIDDEN, "no_reshare",
				     "What you hold of this grain may not be passed on");
	if (role_exceeds(role, &h.access))
		return refuse_role(req, role);
	if (h.access.depth + 1 >= CAP_DEPTH_MAX)
		return respond_error(req, MHD_HTTP_FORBIDDEN, "no_reshare",
				     "This grain was passed on too many times to pass it on again");

	perms = json_dumps(grain_perms_json(&h.roles, role->mask), JSON_COMPACT);
	if (!perms)
		return -ENOMEM;
	c = (struct db_cap){
		.parent_id = h.cap_id,
		.kind = kind,
		.holder_id = kind == CAP_TOKEN ? h.actor.id : 0,
		.created_by = h.actor.id,
		.read_only = role->read_only,
		.login_required = sr.login_required,
		.reshare = kind == CAP_LINK && sr.reshare,
		.expires_at = sr.expires_in ? now + sr.expires_in : 0,
		.created_at = now,
	};
	(void)snprintf(c.grain_id, sizeof(c.grain_id), "%s", h.g.id);
	(void)snprintf(c.role, sizeof(c.role), "%s", role->name);
	(void)snprintf(c.permissions, sizeof(c.permissions), "%s", perms);
	(void)snprintf(c.label, sizeof(c.label), "%s", sr.label ? sr.label : "");
	r = token_new_hashed(token, hash);
	if (r < 0)
		return r;
	/* The edge and its audit row: both or neither. */
	r = db_begin(f->db);
	if (r < 0)
		return r;
	r = db_cap_add(f->db, &c, hash, &id);
	if (r >= 0) {
		(void)snprintf(detail, sizeof(detail),
			       "{\"share\":%" PRId64 ",\"via\":%" PRId64 ",\"role\":\"%s\"}", id,
			       h.cap_id, role->name);
		r = db_audit_add(f->db, now, h.g.id, h.actor.id,
				 kind == CAP_TOKEN ? "token.created"
				 : h.owner	   ? "share.created"
						   : "share.reshared",
				 detail);
	}
	r = db_end(f->db, r);
	if (r < 0)
		return r;
	if (kind == CAP_TOKEN)
		return respond_json(req, MHD_HTTP_CREATED,
				    json_pack("{s:s,s:o}", "token", token, "share",
					      share_json_of(f, &h.roles, id)));
	if (asprintf(&url, "%s/s/%s", f->origin, token) < 0)
		return -ENOMEM;
	return respond_json(
		req, MHD_HTTP_CREATED,
		json_pack("{s:s,s:o}", "url", url, "share", share_json_of(f, &h.roles, id)));
}

static int
handle_share_create(struct request *req)
{
	return share_make(req, CAP_LINK);
}

static int
handle_token_create(struct request *req)
{
	return share_make(req, CAP_TOKEN);
}

/* ---- changing and revoking -------------------------------------------------------- */

/*
 * The edge named by the path's second segment, in the grain of the first, and
 * whether the caller may change it (the owner, its maker) or only drop it (its
 * holder). 1: answered (404 no_such_share for anyone else).
 */
static int
edge_of_path(struct request *req, struct held_grain *h, struct db_cap *ret, bool *ret_may_change)
{
	uint64_t id;
	int r;

	r = held_grain(req, 0, h);
	if (r != 0)
		return r;
	if (parse_uint64(req->param2, &id) < 0 || id > INT64_MAX ||
	    (r = db_cap_get(req->front->db, (int64_t)id, ret)) == -ENOENT ||
	    (r >= 0 &&
	     (strcmp(ret->grain_id, h->g.id) != 0 || ret->kind == CAP_OWNER ||
	      !(h->owner || ret->created_by == h->actor.id || ret->holder_id == h->actor.id)))) {
		(void)respond_error(req, MHD_HTTP_NOT_FOUND, "no_such_share", "No such share");
		return 1;
	}
	if (r < 0)
		return r;
	*ret_may_change = h->owner || ret->created_by == h->actor.id;
	return 0;
}

static void
sharing_changed(struct front *f, const struct held_grain *h, const char *action, int64_t id,
		const char *role)
{
	char detail[128];

	(void)snprintf(detail, sizeof(detail), "{\"share\":%" PRId64 "%s%s%s}", id,
		       role ? ",\"role\":\"" : "", role ? role : "", role ? "\"" : "");
	(void)db_audit_add(f->db, now_seconds(), h->g.id, h->actor.id, action, detail);
	session_cache_recheck_grain(f, h->g.id);
}

static int
handle_share_update(struct request *req)
{
	struct front *f = req->front;
	const char *name = NULL;
	static const struct json_field fields[] = {
		{ "role", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, 0, .min = 1,
		  .max = CAP_ROLE_MAX },
		{},
	};
	const struct grain_role *role;
	_cleanup_free_ char *perms = NULL;
	struct json_error err;
	struct held_grain h;
	struct db_cap c;
	bool may_change;
	int r;

	if (json_dispatch(req->json, "", fields, &name, 0, &err) < 0)
		return respond_bad_fields(req, &err);
	r = edge_of_path(req, &h, &c, &may_change);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!may_change)
		return respond_error(
			req, MHD_HTTP_FORBIDDEN, "forbidden",
			"Only the grain's owner or whoever made this share may change it");
	role = requested_role(req, &h.roles, name);
	if (!role)
		return 0;
	if (!h.owner && role_exceeds(role, &h.access))
		return refuse_role(req, role);
	perms = json_dumps(grain_perms_json(&h.roles, role->mask), JSON_COMPACT);
	if (!perms)
		return -ENOMEM;
	r = db_cap_set_role(f->db, c.id, role->name, perms, role->read_only);
	if (r < 0)
		return r;
	sharing_changed(f, &h, "share.changed", c.id, role->name);
	return respond_json(req, MHD_HTTP_OK,
			    json_pack("{s:o}", "share", share_json_of(f, &h.roles, c.id)));
}

static int
handle_share_delete(struct request *req)
{
	struct front *f = req->front;
	struct held_grain h;
	struct db_cap c;
	bool may_change;
	int r = edge_of_path(req, &h, &c, &may_change);

	if (r != 0)
		return r < 0 ? r : 0;
	if (!c.revoked_at) {
		r = db_cap_revoke(f->db, c.id, now_seconds());
		if (r < 0)
			return r;
		sharing_changed(f, &h, "share.revoked", c.id, NULL);
	}
	return respond_json(req, MHD_HTTP_OK,
			    json_pack("{s:o}", "share", share_json_of(f, &h.roles, c.id)));
}

/* ---- the audit log ----------------------------------------------------------------- */

static int
add_event(const struct db_audit *a, void *userdata)
{
	json_t *events = userdata;
	json_t *detail = a->detail ? json_loads(a->detail, 0, NULL) : NULL;

	return json_array_append_new(
		       events, json_pack("{s:I,s:o,s:s,s:o}", "at", (json_int_t)a->at, "user",
					 a->user ? json_string(a->user) : json_null(), "action",
					 a->action, "detail", detail ? detail : json_null())) < 0
		       ? -ENOMEM
		       : 0;
}

static int
handle_audit(struct request *req)
{
	const char *arg =
		MHD_lookup_connection_value(req->connection, MHD_GET_ARGUMENT_KIND, "before");
	_cleanup_json_ json_t *events = json_array();
	struct held_grain h;
	uint64_t before = 0;
	int r;

	if (!events)
		return -ENOMEM;
	if (arg && (parse_uint64(arg, &before) < 0 || before > INT64_MAX))
		return respond_error(req, MHD_HTTP_BAD_REQUEST, "bad_request",
				     "before must be a time in seconds");
	r = held_grain(req, 0, &h);
	if (r != 0)
		return r < 0 ? r : 0;
	if (!h.owner) { /* the owner's only: to anyone else, as if there were no grain */
		(void)no_such_grain(req);
		return 0;
	}
	r = db_audit_list(req->front->db, h.g.id, (int64_t)before, AUDIT_PAGE, add_event, events);
	if (r < 0)
		return r;
	return respond_json(req, MHD_HTTP_OK, json_pack("{s:O}", "events", events));
}

/* ---- the landing: /s/<token> ------------------------------------------------------- */

#define LANDING_HEAD                                                                               \
	"<!doctype html><html lang=\"en\"><head><meta charset=\"utf-8\">"                          \
	"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"                 \
	"<meta name=\"robots\" content=\"noindex\">"

static const char page_bad_link[] =
	LANDING_HEAD "<title>Link not valid</title></head><body>"
		     "<h1>This link does not work</h1>"
		     "<p>It was mistyped, it expired, or whoever shared it revoked it. Ask them "
		     "for a new one.</p></body></html>\n";
static const char page_sign_in[] =
	LANDING_HEAD "<title>Sign in first</title></head><body>"
		     "<h1>Sign in first</h1>"
		     "<p>Whoever shared this grain asks visitors to sign in. Sign in to Granary "
		     "in this browser, then open the link again.</p></body></html>\n";
static const char page_throttled[] =
	LANDING_HEAD "<title>Too many tries</title></head><body>"
		     "<h1>Too many links that do not work</h1>"
		     "<p>This address tried too many. Wait a few minutes.</p></body></html>\n";

/* Is raw (a request-target, maybe with a query) exactly path, nothing encoded? */
static bool
raw_path_is(const char *raw, const char *path)
{
	size_t len = strcspn(raw ? raw : "", "?");

	return raw && strlen(path) == len && strncmp(raw, path, len) == 0;
}

static int
landing_page(struct request *req, unsigned status, const char *page, size_t size)
{
	int r;

	/* Cache-Control: no-store is every shell answer's. */
	r = respond_header(req, "Referrer-Policy", "no-referrer");
	if (r < 0)
		return r;
	return respond(req, status, "text/html; charset=utf-8", page, size, RESPOND_STATIC);
}

static int
landing_refuse(struct request *req)
{
	bad_token_seen(req->address, now_seconds());
	return landing_page(req, MHD_HTTP_NOT_FOUND, page_bad_link, sizeof(page_bad_link) - 1);
}

/* The grant user gets from link: theirs from before, or a new one. -EACCES: theirs was revoked. */
static int
grant_for(struct front *f, const struct db_cap *link, const struct db_user *user, int64_t now,
	  int64_t *ret_id)
{
	struct db_cap c;
	int r = db_cap_grant_find(f->db, link->id, user->id, &c);

	if (r >= 0) {
		*ret_id = c.id;
		return c.revoked_at ? -EACCES : 0;
	}
	if (r != -ENOENT)
		return r;
	c = (struct db_cap){
		.parent_id = link->id,
		.kind = CAP_GRANT,
		.holder_id = user->id,
		.created_by = link->created_by,
		.read_only = link->read_only,
		.reshare = link->reshare,
		.created_at = now,
	};
	(void)snprintf(c.grain_id, sizeof(c.grain_id), "%s", link->grain_id);
	(void)snprintf(c.role, sizeof(c.role), "%s", link->role);
	(void)snprintf(c.permissions, sizeof(c.permissions), "%s", link->permissions);
	return db_cap_add(f->db, &c, NULL, ret_id);
}

static int
handle_landing(struct request *req)
{
	struct front *f = req->front;
	const char *token = req->param;
	uint8_t hash[TOKEN_HASH_BYTES];
	_cleanup_free_ char *url = NULL;
	char session_id[33], detail[96];
	struct grain_roles roles;
	struct cap_access a;
	struct db_user user;
	struct db_grain g;
	struct db_cap link;
	int64_t now = now_seconds(), retry, cap_id;
	bool signed_in;
	int r;

	if (bad_tokens_throttled(req->address, now, &retry) < 0) {
		(void)respond_header(req, "Retry-After", "%" PRId64, MAX(retry, 1));
		return landing_page(req, MHD_HTTP_TOO_MANY_REQUESTS, page_throttled,
				    sizeof(page_throttled) - 1);
	}
	/*
	 * Malformed, unknown, an API token's, revoked, expired, trashed: one
	 * answer. A token is sent as it is: percent-encoded it is some other
	 * string (libmicrohttpd decoded req->url), and gets the same answer.
	 */
	if (!raw_path_is(req->raw_url, req->url) ||
	    token_hash_string(token, strlen(token), hash) < 0 ||
	    db_cap_by_token(f->db, hash, &link) < 0 || link.kind != CAP_LINK ||
	    db_grain_get(f->db, link.grain_id, &g) < 0 || g.trashed_at ||
	    grain_roles_load(f->db, g.app_id, &roles) < 0 ||
	    cap_access(f->db, &roles, link.id, now, NULL, &a) < 0 || !a.active)
		return landing_refuse(req);

	signed_in =
		session_lookup(f->db,
			       request_cookie(req, f->tls ? SESSION_COOKIE_TLS : SESSION_COOKIE),
			       now, &user) >= 0;
	if (!signed_in && link.login_required)
		return landing_page(req, MHD_HTTP_FORBIDDEN, page_sign_in,
				    sizeof(page_sign_in) - 1);

	/* The grant, the session and the audit row: all of them or none. */
	r = db_begin(f->db);
	if (r < 0)
		return r;
	if (signed_in && user.id == g.owner_id)
		r = cap_best_held(f->db, &roles, g.id, user.id, 0, now, &cap_id, &a);
	else if (signed_in)
		r = grant_for(f, &link, &user, now, &cap_id);
	else
		cap_id = link.id;
	if (r >= 0)
		r = session_open(f, &g, signed_in ? &user : NULL, cap_id, &url, session_id);
	if (r >= 0) {
		(void)snprintf(detail, sizeof(detail),
			       "{\"share\":%" PRId64 ",\"grant\":%" PRId64 "}", link.id, cap_id);
		r = db_audit_add(f->db, now, g.id, signed_in ? user.id : 0, "share.opened", detail);
	}
	r = db_end(f->db, r);
	if (r == -EACCES)
		return landing_refuse(req); /* their grant was revoked: the link is dead to them */
	if (r < 0)
		return r;
	if ((r = respond_header(req, MHD_HTTP_HEADER_LOCATION, "%s", url)) < 0)
		return r;
	return landing_page(req, MHD_HTTP_SEE_OTHER, "", 0);
}

static int
handle_robots(struct request *req)
{
	static const char robots[] = "User-agent: *\nDisallow: /s/\n";

	return respond(req, MHD_HTTP_OK, "text/plain; charset=utf-8", robots, sizeof(robots) - 1,
		       RESPOND_STATIC);
}

/* ---- expiry -------------------------------------------------------------------------- */

static int
note_expired(const struct db_cap *c, void *userdata)
{
	struct front *f = userdata;
	char detail[64];

	(void)snprintf(detail, sizeof(detail), "{\"share\":%" PRId64 "}", c->id);
	(void)db_audit_add(f->db, c->expires_at, c->grain_id, 0, "share.expired", detail);
	session_cache_recheck_grain(f, c->grain_id);
	return 0;
}

int
shares_expire(struct front *f)
{
	return db_cap_expired(f->db, now_seconds(), note_expired, f);
}

const struct route share_routes[] = {
	{ "GET", "/s/", ROUTE_REST, handle_landing },
	{ "GET", "/robots.txt", 0, handle_robots },
	{ "GET", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_shares_list,
	  "/shares" },
	{ "POST", "/api/grains/", ROUTE_API | ROUTE_BODY | ROUTE_USER | ROUTE_PARAM,
	  handle_share_create, "/shares" },
	{ "PATCH", "/api/grains/", ROUTE_API | ROUTE_BODY | ROUTE_USER | ROUTE_PARAM2,
	  handle_share_update, "/shares/" },
	{ "DELETE", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM2, handle_share_delete,
	  "/shares/" },
	{ "POST", "/api/grains/", ROUTE_API | ROUTE_BODY | ROUTE_USER | ROUTE_PARAM,
	  handle_token_create, "/tokens" },
	{ "GET", "/api/grains/", ROUTE_API | ROUTE_USER | ROUTE_PARAM, handle_audit, "/audit" },
	{},
};
