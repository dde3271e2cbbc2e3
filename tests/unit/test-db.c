/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <sqlite3.h>

#include "supervisor/supervisor-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* A fresh database file in a fresh directory; path written to path[]. */
static struct db *
fresh(char path[static 256])
{
	char dir[] = "/tmp/test-db-XXXXXX";
	struct db *db = NULL;

	if (!mkdtemp(dir))
		return NULL;
	(void)snprintf(path, 256, "%s/granary.sqlite3", dir);
	if (db_open(path, DB_OPEN_CREATE, &db) < 0)
		return NULL;
	return db;
}

static void
remove_db(const char *path)
{
	char other[300], dir[256];

	(void)unlink(path);
	(void)snprintf(other, sizeof(other), "%s-wal", path);
	(void)unlink(other);
	(void)snprintf(other, sizeof(other), "%s-shm", path);
	(void)unlink(other);
	(void)snprintf(dir, sizeof(dir), "%s", path);
	*strrchr(dir, '/') = '\0';
	(void)rmdir(dir);
}

TEST(open_creates_migrates_and_reopens)
{
	_cleanup_(db_freep) struct db *db = NULL;
	char path[256];
	int64_t v = 0;

	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_OK(db_schema_version(db, &v));
	CHECK_INT_EQ(v, 4);
	db = db_free(db);
	CHECK_OK(db_open(path, 0, &db));
	CHECK_OK(db_schema_version(db, &v));
	CHECK_INT_EQ(v, 4);
	db = db_free(db);
	remove_db(path);
}

TEST(missing_file_without_create)
{
	struct db *db = NULL;

	CHECK_ERR(db_open("/tmp/no-such-dir-granary/x.sqlite3", 0, &db), ENOENT);
	CHECK(db == NULL);
}

TEST(garbage_file_is_refused_untouched)
{
	char path[] = "/tmp/test-db-garbage-XXXXXX";
	int fd = mkstemp(path);
	char buf[64] = { 0 };
	struct db *db = NULL;

	CHECK(fd >= 0);
	CHECK(write(fd, "this is not a database, and it must stay so", 43) == 43);
	CHECK_ERR(db_open(path, DB_OPEN_CREATE, &db), EBADMSG);
	CHECK(pread(fd, buf, sizeof(buf) - 1, 0) == 43);
	CHECK_STR_EQ(buf, "this is not a database, and it must stay so");
	close(fd);
	unlink(path);
}

TEST(newer_schema_is_refused)
{
	_cleanup_(db_freep) struct db *db = NULL;
	char path[256];
	sqlite3 *raw;

	db = fresh(path);
	CHECK(db != NULL);
	db = db_free(db);
	CHECK(sqlite3_open(path, &raw) == SQLITE_OK);
	CHECK(sqlite3_exec(raw, "PRAGMA user_version = 999", NULL, NULL, NULL) == SQLITE_OK);
	sqlite3_close(raw);
	CHECK_ERR(db_open(path, 0, &db), EPROTONOSUPPORT);
	remove_db(path);
}

TEST(corrupted_page_fails_integrity_check)
{
	_cleanup_(db_freep) struct db *db = NULL;
	char path[256], name[32];
	int fd;

	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	for (int i = 0; i < 200; i++) {
		(void)snprintf(name, sizeof(name), "user%03d", i);
		CHECK_OK(db_user_add(db, name, "hash", false, 1, NULL));
	}
	db = db_free(db);
	/* Scribble over an index page in the middle of the file. */
	fd = open(path, O_RDWR);
	CHECK(fd >= 0);
	for (off_t off = 4096 * 2; off < 4096 * 3; off += 64)
		CHECK(pwrite(fd, "\xde\xad\xbe\xef\xde\xad\xbe\xef", 8, off) == 8);
	close(fd);
	CHECK_ERR(db_open(path, 0, &db), EBADMSG);
	remove_db(path);
}

TEST(users)
{
	_cleanup_(db_freep) struct db *db = NULL;
	char path[256], hash[PASSWORD_HASH_MAX + 1];
	struct db_user u;
	int64_t id = 0, n = 0;

	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_OK(db_user_count(db, &n));
	CHECK_INT_EQ(n, 0);
	CHECK_OK(db_user_add(db, "alice", "$argon2id$x", true, 100, &id));
	CHECK(id > 0);
	CHECK_ERR(db_user_add(db, "alice", "h", false, 100, NULL), EEXIST);
	CHECK_ERR(db_user_add(db, "", "h", false, 100, NULL), EINVAL);
	CHECK_OK(db_user_by_name(db, "alice", &u, hash, sizeof(hash)));
	CHECK_INT_EQ(u.id, id);
	CHECK(u.admin);
	CHECK_STR_EQ(hash, "$argon2id$x");
	CHECK_ERR(db_user_by_name(db, "bob", &u, NULL, 0), ENOENT);
	CHECK_ERR(db_user_by_name(db, "alice' OR '1'='1", &u, NULL, 0), ENOENT);
	CHECK_OK(db_user_set_password(db, id, "$argon2id$y", 200));
	CHECK_OK(db_user_by_id(db, id, &u, hash, sizeof(hash)));
	CHECK_STR_EQ(hash, "$argon2id$y");
	CHECK_INT_EQ(u.password_changed_at, 200);
	CHECK_ERR(db_user_set_password(db, 9999, "h", 1), ENOENT);
	db = db_free(db);
	remove_db(path);
}

TEST(sessions_expire_and_cascade)
{
	_cleanup_(db_freep) struct db *db = NULL;
	uint8_t h1[32], h2[32];
	char path[256];
	int64_t uid, who = 0, exp = 0;

	memset(h1, 1, sizeof(h1));
	memset(h2, 2, sizeof(h2));
	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_OK(db_user_add(db, "carol", "h", false, 1, &uid));
	CHECK_OK(db_session_add(db, h1, uid, 100, 200));
	CHECK_OK(db_session_add(db, h2, uid, 100, 300));
	CHECK_ERR(db_session_add(db, h2, uid, 100, 300), EEXIST);
	CHECK_ERR(db_session_add(db, h2, 424242, 100, 300), EEXIST);
	CHECK_OK(db_session_get(db, h1, 150, &who, &exp));
	CHECK_INT_EQ(who, uid);
	CHECK_INT_EQ(exp, 200);
	CHECK_ERR(db_session_get(db, h1, 200, &who, NULL), ENOENT);
	CHECK_OK(db_session_touch(db, h1, 199, 500));
	CHECK_OK(db_session_get(db, h1, 400, &who, NULL));
	CHECK_OK(db_session_delete_for_user(db, uid, h1));
	CHECK_ERR(db_session_get(db, h2, 150, &who, NULL), ENOENT);
	CHECK_OK(db_session_get(db, h1, 150, &who, NULL));
	CHECK_OK(db_session_purge(db, 1000));
	CHECK_ERR(db_session_get(db, h1, 150, &who, NULL), ENOENT);
	db = db_free(db);
	remove_db(path);
}

static int
count_cb(const void *item, void *userdata)
{
	(void)item;
	(*(int *)userdata)++;
	return 0;
}

static int
count_users(const struct db_user *u, void *userdata)
{
	return count_cb(u, userdata);
}

static int
count_packages(const struct db_package *p, void *userdata)
{
	return count_cb(p, userdata);
}

static int
count_grains(const struct db_grain *g, void *userdata)
{
	return count_cb(g, userdata);
}

static int
count_ids(const char *id, void *userdata)
{
	return count_cb(id, userdata);
}

/* The owner's edge of a grain (what the grain was made with). */
static int
owner_edge(const struct db_cap *c, void *userdata)
{
	struct db_cap *ret = userdata;

	if (c->kind == CAP_OWNER)
		*ret = *c;
	return 0;
}

TEST(apps_packages_grains)
{
	_cleanup_(db_freep) struct db *db = NULL;
	struct db_package p = {
		.app_id = "appidappidappidappidappidappidappidappidappidappidap",
		.version = 1,
		.title = "Notes",
		.manifest = (char *)"{\"app\":{}}",
		.size = 1234,
		.installed_at = 10,
	};
	struct db_grain g = { .app_id = "", .title = "My notes", .created_at = 20 };
	struct db_package got = {};
	struct db_grain gg;
	char path[256];
	int64_t uid, n;
	int seen;

	memset(p.id, 'a', PACKAGE_ID_LEN);
	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	CHECK_OK(db_user_add(db, "dave", "h", false, 1, &uid));
	CHECK_OK(db_package_add(db, &p, uid));
	CHECK_ERR(db_package_add(db, &p, uid), EEXIST);
	CHECK_OK(db_package_get(db, p.id, &got));
	CHECK_STR_EQ(got.title, "Notes");
	CHECK_STR_EQ(got.manifest, "{\"app\":{}}");
	db_package_release(&got);
	seen = 0;
	CHECK_OK(db_app_list(db, count_packages, &seen));
	CHECK_INT_EQ(seen, 1);
	CHECK_OK(db_app_get(db, p.app_id, &got));
	CHECK_STR_EQ(got.id, p.id);
	CHECK_STR_EQ(got.manifest, "{\"app\":{}}");
	db_package_release(&got);
	CHECK_ERR(db_app_get(db, "nosuchapp", &got), ENOENT);

	/* Bad manifest JSON never lands. */
	struct db_package bad = p;
	memset(bad.id, 'b', PACKAGE_ID_LEN);
	bad.manifest = (char *)"{not json";
	CHECK_ERR(db_package_add(db, &bad, uid), EINVAL);
	CHECK_ERR(db_package_get(db, bad.id, &got), ENOENT);

	memset(g.id, 'c', GRAIN_ID_LEN);
	(void)snprintf(g.app_id, sizeof(g.app_id), "%s", p.app_id);
	(void)snprintf(g.package_id, sizeof(g.package_id), "%s", p.id);
	g.owner_id = uid;
	CHECK_OK(db_grain_add(db, &g, "[\"read\",\"write\"]"));
	CHECK_ERR(db_grain_add(db, &g, "[]"), EEXIST);
	CHECK_OK(db_grain_get(db, g.id, &gg));
	CHECK_STR_EQ(gg.owner_name, "dave");
	CHECK_STR_EQ(gg.title, "My notes");
	CHECK_OK(db_grain_rename(db, g.id, "Renamed"));
	CHECK_ERR(db_grain_rename(db, g.id, ""), EINVAL);
	CHECK_OK(db_grain_get(db, g.id, &gg));
	CHECK_STR_EQ(gg.title, "Renamed");
	CHECK_ERR(db_grain_rename(db, "nope", "x"), ENOENT);

	/* An app with grains cannot go. */
	CHECK_ERR(db_app_remove(db, p.app_id, NULL, NULL), EBUSY);
	CHECK_OK(db_grain_trash(db, g.id, 30));
	seen = 0;
	CHECK_OK(db_grain_list(db, uid, false, count_grains, &seen));
	CHECK_INT_EQ(seen, 0);
	seen = 0;
	CHECK_OK(db_grain_list(db, uid, true, count_grains, &seen));
	CHECK_INT_EQ(seen, 1);
	/* Trashed at 30: due for a purge from 30 on, not before. */
	seen = 0;
	CHECK_OK(db_grain_list_trashed(db, 29, count_grains, &seen));
	CHECK_INT_EQ(seen, 0);
	CHECK_OK(db_grain_list_trashed(db, 30, count_grains, &seen));
	CHECK_INT_EQ(seen, 1);
	CHECK_OK(db_grain_trash(db, g.id, 0));
	seen = 0;
	CHECK_OK(db_grain_list_trashed(db, 1000, count_grains, &seen));
	CHECK_INT_EQ(seen, 0);
	seen = 0;
	CHECK_OK(db_grain_list(db, 0, false, count_grains, &seen));
	CHECK_INT_EQ(seen, 1);
	CHECK_OK(db_audit_add(db, 40, g.id, uid, "grain.renamed", "{\"title\":\"Renamed\"}"));
	CHECK_ERR(db_audit_add(db, 40, g.id, uid, "x", "{bad"), EINVAL);

	/* Grain sessions: found by the hash of their host until they expire, gone with the grain. */
	struct db_grain_session gs = { .user_id = uid, .expires_at = 100 }, got_session;
	struct db_cap owner = {};
	uint8_t host[32], other[32], secret[32], again[32];

	memset(host, 7, sizeof(host));
	memset(other, 8, sizeof(other));
	memset(gs.enter_hash, 9, sizeof(gs.enter_hash));
	memset(secret, 10, sizeof(secret));
	memset(again, 11, sizeof(again));
	CHECK_OK(db_cap_held(db, g.id, uid, owner_edge, &owner));
	CHECK_UINT_EQ(owner.kind, CAP_OWNER);
	CHECK_STR_EQ(owner.permissions, "[\"read\",\"write\"]");
	(void)snprintf(gs.grain_id, sizeof(gs.grain_id), "%s", g.id);
	gs.capability_id = owner.id;
	CHECK_OK(db_grain_session_add(db, host, &gs, 50));
	CHECK_ERR(db_grain_session_add(db, host, &gs, 50), EEXIST);
	CHECK_OK(db_grain_session_get(db, host, 60, &got_session));
	CHECK_STR_EQ(got_session.grain_id, g.id);
	CHECK_STR_EQ(got_session.username, "dave");
	CHECK_STR_EQ(got_session.package_id, p.id);
	CHECK_INT_EQ(got_session.owner_id, uid);
	CHECK_INT_EQ(got_session.capability_id, owner.id);
	CHECK_ERR(db_grain_session_get(db, other, 60, &got_session), ENOENT);
	CHECK_ERR(db_grain_session_get(db, host, 100, &got_session), ENOENT); /* expired */
	/* Entered once, with its key, while young enough and alive: then it has a cookie. */
	CHECK(!got_session.entered);
	CHECK_ERR(db_grain_session_enter(db, host, other, secret, 0, 60), ENOENT); /* wrong key */
	CHECK_ERR(db_grain_session_enter(db, host, gs.enter_hash, secret, 50, 60),
		  ENOENT); /* old */
	CHECK_ERR(db_grain_session_enter(db, host, gs.enter_hash, secret, 0, 100),
		  ENOENT); /* dead */
	CHECK_ERR(db_grain_session_enter(db, other, gs.enter_hash, secret, 0, 60), ENOENT);
	CHECK_OK(db_grain_session_enter(db, host, gs.enter_hash, secret, 49, 60));
	CHECK_ERR(db_grain_session_enter(db, host, gs.enter_hash, again, 49, 60),
		  ENOENT); /* once */
	CHECK_OK(db_grain_session_get(db, host, 60, &got_session));
	CHECK(got_session.entered);
	CHECK(memcmp(got_session.cookie_hash, secret, sizeof(secret)) == 0);
	CHECK_OK(db_grain_session_touch(db, host, 200));
	CHECK_OK(db_grain_session_get(db, host, 100, &got_session));
	CHECK_OK(db_grain_session_purge(db, 150));
	CHECK_OK(db_grain_session_get(db, host, 100, &got_session));
	CHECK_OK(db_grain_session_purge(db, 200));
	CHECK_ERR(db_grain_session_get(db, host, 100, &got_session), ENOENT);
	CHECK_OK(db_grain_session_add(db, other, &gs, 50));
	CHECK_OK(db_grain_touch(db, g.id, 77));
	CHECK_OK(db_grain_get(db, g.id, &gg));
	CHECK_INT_EQ(gg.last_used_at, 77);
	/* A server secret is made once, then the same. */
	CHECK_OK(db_secret(db, "test-key", secret, sizeof(secret)));
	CHECK_OK(db_secret(db, "test-key", again, sizeof(again)));
	CHECK(memcmp(secret, again, sizeof(secret)) == 0);
	CHECK_ERR(db_secret(db, "test-key", again, 16), EBADMSG);

	CHECK_OK(db_grain_delete(db, g.id));
	CHECK_ERR(db_grain_session_get(db, other, 60, &got_session), ENOENT);
	CHECK_ERR(db_grain_get(db, g.id, &gg), ENOENT);
	CHECK_OK(db_grain_count(db, &n));
	CHECK_INT_EQ(n, 0);

	seen = 0;
	CHECK_OK(db_app_remove(db, p.app_id, count_ids, &seen));
	CHECK_INT_EQ(seen, 1);
	CHECK_ERR(db_package_get(db, p.id, &got), ENOENT);
	CHECK_ERR(db_app_remove(db, p.app_id, NULL, NULL), ENOENT);
	seen = 0;
	CHECK_OK(db_user_list(db, count_users, &seen));
	CHECK_INT_EQ(seen, 1);
	db = db_free(db);
	remove_db(path);
}

static int
count_caps(const struct db_cap *c, void *userdata)
{
	(void)c;
	(void)userdata;
	return 0;
}

/* A link or grant of the test grain below, from parent (0: none). */
static int64_t
edge(struct db *db, enum cap_kind kind, int64_t parent, int64_t holder, const char *perms,
     bool read_only, bool reshare, int64_t expires_at)
{
	struct db_cap c = {
		.parent_id = parent,
		.kind = kind,
		.holder_id = holder,
		.created_by = holder,
		.read_only = read_only,
		.reshare = reshare,
		.expires_at = expires_at,
		.created_at = 1,
	};
	uint8_t hash[32];
	int64_t id = 0;

	randombytes_buf(hash, sizeof(hash));
	memset(c.grain_id, 'e', GRAIN_ID_LEN);
	(void)snprintf(c.role, sizeof(c.role), "r");
	(void)snprintf(c.permissions, sizeof(c.permissions), "%s", perms);
	CHECK_OK(db_cap_add(db, &c, kind == CAP_GRANT ? NULL : hash, &id));
	return id;
}

TEST(capabilities_attenuate_along_the_chain)
{
	_cleanup_(db_freep) struct db *db = NULL;
	static const char manifest[] =
		"{\"permissions\":[\"read\",\"write\",\"admin\"],\"roles\":["
		"{\"name\":\"editor\",\"permissions\":[\"read\",\"write\"],\"default\":true},"
		"{\"name\":\"viewer\",\"permissions\":[\"read\"],\"readOnly\":true}]}";
	struct db_package p = {
		.app_id = "capsappcapsappcapsappcapsappcapsappcapsappcapsappca",
		.version = 1,
		.title = "Caps",
		.manifest = (char *)manifest,
		.installed_at = 1,
	};
	struct db_grain g = { .title = "G", .created_at = 1 };
	struct grain_roles roles;
	struct cap_access a;
	struct db_cap got;
	char path[256], list[64];
	int64_t alice, bob, owner_cap, link, grant, relink, best;

	db = fresh(path);
	CHECK(db != NULL);
	if (!db)
		return;
	memset(p.id, 'd', PACKAGE_ID_LEN);
	memset(g.id, 'e', GRAIN_ID_LEN);
	CHECK_OK(db_user_add(db, "alice", "h", false, 1, &alice));
	CHECK_OK(db_user_add(db, "bob", "h", false, 1, &bob));
	CHECK_OK(db_package_add(db, &p, alice));
	(void)snprintf(g.app_id, sizeof(g.app_id), "%s", p.app_id);
	(void)snprintf(g.package_id, sizeof(g.package_id), "%s", p.id);
	g.owner_id = alice;
	CHECK_OK(db_grain_add(db, &g, "[\"read\",\"write\",\"admin\"]"));
	CHECK_OK(grain_roles_parse(manifest, &roles));
	CHECK_INT_EQ(roles.n_roles, 2);
	CHECK(grain_role_find(&roles, NULL) == &roles.roles[0]); /* the default */
	CHECK(grain_role_find(&roles, "nope") == NULL);
	struct db_cap owner = {};

	CHECK_OK(db_cap_held(db, g.id, alice, owner_edge, &owner));
	owner_cap = owner.id;
	CHECK(owner_cap > 0);

	/* alice → link (editor) → bob's grant → bob's link (editor, asks more than the chain). */
	link = edge(db, CAP_LINK, owner_cap, alice, "[\"read\",\"write\"]", false, true, 0);
	grant = edge(db, CAP_GRANT, link, bob, "[\"read\",\"write\"]", false, true, 0);
	relink = edge(db, CAP_LINK, grant, bob, "[\"read\",\"write\",\"admin\"]", false, true, 500);
	CHECK_OK(cap_access(db, &roles, relink, 100, &got, &a));
	CHECK(a.active);
	grain_perms_list(&roles, a.mask, list, sizeof(list));
	CHECK_STR_EQ(list, "read,write"); /* admin: more than its giver holds */
	CHECK_INT_EQ(a.depth, 4);
	CHECK_INT_EQ(a.until, 500);
	CHECK_INT_EQ(got.parent_id, grant);

	/* Downgrading the first link narrows everything below it, read-only included. */
	CHECK_OK(db_cap_set_role(db, link, "viewer", "[\"read\"]", true));
	CHECK_OK(cap_access(db, &roles, relink, 100, NULL, &a));
	grain_perms_list(&roles, a.mask, list, sizeof(list));
	CHECK_STR_EQ(list, "read");
	CHECK(a.read_only);
	CHECK_OK(cap_best_held(db, &roles, g.id, bob, 0, 100, &best, &a));
	CHECK_INT_EQ(best, grant);
	CHECK_OK(cap_best_held(db, &roles, g.id, alice, 0, 100, &best, &a));
	CHECK_INT_EQ(best, owner_cap);
	CHECK_INT_EQ(a.mask, 7);

	/* Expiry ends an edge and what came from it, at the time given. */
	CHECK_OK(cap_access(db, &roles, relink, 500, NULL, &a));
	CHECK(!a.active);
	CHECK_INT_EQ(a.mask, 0);

	/* Revoking the first link cuts all below; bob holds nothing any more. */
	CHECK_OK(db_cap_revoke(db, link, 200));
	CHECK_OK(db_cap_revoke(db, link, 300)); /* again: stays revoked at 200 */
	CHECK_OK(db_cap_get(db, link, &got));
	CHECK_INT_EQ(got.revoked_at, 200);
	CHECK_OK(cap_access(db, &roles, relink, 250, NULL, &a));
	CHECK(!a.active);
	CHECK_ERR(cap_best_held(db, &roles, g.id, bob, 0, 250, &best, &a), ENOENT);
	CHECK_ERR(cap_access(db, &roles, 9999, 250, NULL, &a), ENOENT);

	/* One grant per (link, person). */
	struct db_cap dup = { .parent_id = link, .kind = CAP_GRANT, .holder_id = bob };
	memset(dup.grain_id, 'e', GRAIN_ID_LEN);
	(void)snprintf(dup.permissions, sizeof(dup.permissions), "[]");
	CHECK_ERR(db_cap_add(db, &dup, NULL, NULL), EEXIST);
	CHECK_OK(db_cap_grant_find(db, link, bob, &got));
	CHECK_INT_EQ(got.id, grant);
	CHECK_STR_EQ(got.holder_name, "bob");

	/* Expired edges are handed out once for the audit. */
	int n = db_cap_expired(db, 600, count_caps, NULL);
	CHECK_INT_EQ(n, 1);
	CHECK_INT_EQ(db_cap_expired(db, 700, count_caps, NULL), 0);

	/* A chain deeper than CAP_DEPTH_MAX is refused, not walked forever. */
	int64_t deep = owner_cap;
	for (int i = 0; i < CAP_DEPTH_MAX; i++)
		deep = edge(db, CAP_LINK, deep, alice, "[\"read\"]", false, true, 0);
	CHECK_ERR(cap_access(db, &roles, deep, 100, NULL, &a), ELOOP);
}
