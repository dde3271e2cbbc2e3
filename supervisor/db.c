/* SPDX-License-Identifier: MIT */
/*
 * db.c: the one module that speaks SQL. Everything else calls the db_*
 * functions declared in supervisor-internal.h.
 *
 * - WAL journal, foreign keys on, a busy timeout, synchronous=NORMAL (WAL
 *   keeps the database consistent across a crash; the last transactions
 *   may be lost on power failure, never half-applied).
 * - `PRAGMA integrity_check` at open: a damaged file is refused with a clear
 *   error instead of being written to.
 * - Versioned migrations (db-schema.h) up to the newest, in transactions; a
 *   database from a newer Granary is refused rather than guessed at.
 * - Prepared statements only: every query is an entry in the statement table
 *   below, prepared once (SQLITE_PREPARE_PERSISTENT) and reset after use, so
 *   no SQL is ever built from input.
 *
 * A struct db is used from one thread at a time (the front's HTTP thread, or
 * the CLI); the connection is opened with SQLITE_OPEN_NOMUTEX accordingly.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>
#include <sqlite3.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "supervisor/db-schema.h"
#include "common/banned.h"

enum statement {
	ST_USER_ADD,
	ST_USER_BY_NAME,
	ST_USER_BY_ID,
	ST_USER_COUNT,
	ST_USER_LIST,
	ST_USER_SET_PASSWORD,
	ST_SESSION_ADD,
	ST_SESSION_GET,
	ST_SESSION_TOUCH,
	ST_SESSION_DELETE,
	ST_SESSION_DELETE_USER,
	ST_SESSION_PURGE,
	ST_APP_UPSERT,
	ST_APP_LIST,
	ST_APP_GET,
	ST_APP_DELETE,
	ST_APP_GRAIN_COUNT,
	ST_PACKAGE_ADD,
	ST_PACKAGE_GET,
	ST_PACKAGE_IDS_OF_APP,
	ST_GRAIN_ADD,
	ST_GRAIN_GET,
	ST_GRAIN_LIST_OWNER,
	ST_GRAIN_LIST_ALL,
	ST_GRAIN_LIST_TRASHED,
	ST_GRAIN_RENAME,
	ST_GRAIN_TRASH,
	ST_GRAIN_DELETE,
	ST_GRAIN_COUNT,
	ST_OWNER_CAP_ADD,
	ST_AUDIT_ADD,
	ST_GRAIN_TOUCH,
	ST_GRAIN_SET_PACKAGE,
	ST_GRAIN_SESSION_ADD,
	ST_GRAIN_SESSION_GET,
	ST_GRAIN_SESSION_TOUCH,
	ST_GRAIN_SESSION_ENTER,
	ST_GRAIN_SESSION_PURGE,
	ST_SETTING_GET,
	ST_SETTING_ADD,
	ST_AUDIT_LIST,
	ST_CAP_ADD,
	ST_CAP_GET,
	ST_CAP_BY_TOKEN,
	ST_CAP_GRANT_FIND,
	ST_CAP_LIST,
	ST_CAP_HELD,
	ST_CAP_REVOKE,
	ST_CAP_SET_ROLE,
	ST_CAP_EXPIRED,
	ST_CAP_NOTE_EXPIRY,
	ST_GRAIN_LIST_SHARED,
	_ST_MAX,
};

#define GRAIN_COLUMNS                                                                              \
	"g.id, g.app_id, g.package_id, g.owner_id, u.name, g.title, g.created_at, "                \
	"coalesce(g.last_used_at, 0), coalesce(g.trashed_at, 0) "
#define CAP_COLUMNS                                                                                \
	"c.id, coalesce(c.parent_id, 0), c.grain_id, c.kind, coalesce(c.holder_id, 0), "           \
	"coalesce(c.created_by, 0), coalesce(c.role, ''), c.permissions, coalesce(c.label, ''), "  \
	"c.read_only, c.login_required, c.can_reshare, coalesce(c.expires_at, 0), "                \
	"coalesce(c.revoked_at, 0), c.created_at, coalesce(h.name, ''), coalesce(m.name, '') "
#define CAP_JOINS                                                                                  \
	"FROM capabilities c LEFT JOIN users h ON h.id = c.holder_id "                             \
	"LEFT JOIN users m ON m.id = c.created_by "
#define PACKAGE_COLUMNS "p.id, p.app_id, p.version, p.title, p.manifest, p.size, p.installed_at "

static const char *const statement_sql[_ST_MAX] = {
	[ST_USER_ADD] = "INSERT INTO users (name, password_hash, is_admin, created_at, "
			"password_changed_at) VALUES (?1, ?2, ?3, ?4, ?4)",
	[ST_USER_BY_NAME] = "SELECT id, name, is_admin, created_at, password_changed_at, "
			    "password_hash FROM users WHERE name = ?1",
	[ST_USER_BY_ID] = "SELECT id, name, is_admin, created_at, password_changed_at, "
			  "password_hash FROM users WHERE id = ?1",
	[ST_USER_COUNT] = "SELECT count(*) FROM users",
	[ST_USER_LIST] = "SELECT id, name, is_admin, created_at, password_changed_at, '' "
			 "FROM users ORDER BY name",
	[ST_USER_SET_PASSWORD] = "UPDATE users SET password_hash = ?2, password_changed_at = ?3 "
				 "WHERE id = ?1",
	[ST_SESSION_ADD] = "INSERT INTO sessions (token_hash, user_id, created_at, expires_at, "
			   "last_seen_at) VALUES (?1, ?2, ?3, ?4, ?3)",
	[ST_SESSION_GET] = "SELECT user_id, expires_at FROM sessions WHERE token_hash = ?1 "
			   "AND expires_at > ?2",
	[ST_SESSION_TOUCH] = "UPDATE sessions SET last_seen_at = ?2, expires_at = ?3 "
			     "WHERE token_hash = ?1",
	[ST_SESSION_DELETE] = "DELETE FROM sessions WHERE token_hash = ?1",
	[ST_SESSION_DELETE_USER] = "DELETE FROM sessions WHERE user_id = ?1 AND "
				   "(?2 IS NULL OR token_hash != ?2)",
	[ST_SESSION_PURGE] = "DELETE FROM sessions WHERE expires_at <= ?1",
	[ST_APP_UPSERT] = "INSERT INTO apps (id, package_id, installed_at, installed_by) "
			  "VALUES (?1, ?2, ?3, ?4) ON CONFLICT (id) DO UPDATE SET "
			  "package_id = excluded.package_id",
	[ST_APP_LIST] = "SELECT " PACKAGE_COLUMNS "FROM apps a JOIN packages p "
			"ON p.id = a.package_id ORDER BY p.title, a.id",
	[ST_APP_GET] = "SELECT " PACKAGE_COLUMNS "FROM apps a JOIN packages p "
		       "ON p.id = a.package_id WHERE a.id = ?1",
	[ST_APP_DELETE] = "DELETE FROM apps WHERE id = ?1",
	[ST_APP_GRAIN_COUNT] = "SELECT count(*) FROM grains WHERE app_id = ?1",
	[ST_PACKAGE_ADD] = "INSERT INTO packages (id, app_id, version, title, manifest, size, "
			   "installed_at) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
	[ST_PACKAGE_GET] = "SELECT " PACKAGE_COLUMNS "FROM packages p WHERE p.id = ?1",
	[ST_PACKAGE_IDS_OF_APP] = "SELECT id FROM packages WHERE app_id = ?1",
	[ST_GRAIN_ADD] = "INSERT INTO grains (id, app_id, package_id, owner_id, title, created_at) "
			 "VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
	[ST_GRAIN_GET] = "SELECT " GRAIN_COLUMNS "FROM grains g JOIN users u ON u.id = g.owner_id "
			 "WHERE g.id = ?1",
	[ST_GRAIN_LIST_OWNER] = "SELECT " GRAIN_COLUMNS "FROM grains g JOIN users u "
				"ON u.id = g.owner_id WHERE g.owner_id = ?1 AND "
				"(?2 OR g.trashed_at IS NULL) ORDER BY g.created_at DESC, g.id",
	[ST_GRAIN_LIST_ALL] = "SELECT " GRAIN_COLUMNS "FROM grains g JOIN users u "
			      "ON u.id = g.owner_id WHERE (?2 OR g.trashed_at IS NULL) "
			      "ORDER BY g.created_at DESC, g.id",
	[ST_GRAIN_LIST_TRASHED] = "SELECT " GRAIN_COLUMNS "FROM grains g JOIN users u "
				  "ON u.id = g.owner_id WHERE g.trashed_at <= ?1 "
				  "ORDER BY g.trashed_at, g.id",
	[ST_GRAIN_RENAME] = "UPDATE grains SET title = ?2 WHERE id = ?1",
	[ST_GRAIN_TRASH] = "UPDATE grains SET trashed_at = ?2 WHERE id = ?1",
	[ST_GRAIN_DELETE] = "DELETE FROM grains WHERE id = ?1",
	[ST_GRAIN_COUNT] = "SELECT count(*) FROM grains",
	[ST_OWNER_CAP_ADD] = "INSERT INTO capabilities (grain_id, kind, holder_id, created_by, "
			     "permissions, created_at) VALUES (?1, 'owner', ?2, ?2, ?3, ?4)",
	[ST_AUDIT_ADD] = "INSERT INTO audit (at, grain_id, user_id, action, detail) "
			 "VALUES (?1, ?2, ?3, ?4, ?5)",
	[ST_GRAIN_TOUCH] = "UPDATE grains SET last_used_at = ?2 WHERE id = ?1",
	[ST_GRAIN_SET_PACKAGE] = "UPDATE grains SET package_id = ?2 WHERE id = ?1",
	[ST_GRAIN_SESSION_ADD] = "INSERT INTO grain_sessions (host_hash, grain_id, user_id, "
				 "capability_id, permissions, created_at, expires_at, enter_hash) "
				 "VALUES (?1, ?2, ?3, ?4, '[]', ?5, ?6, ?7)",
	/* The grain's current package is its app's: a grain runs the newest version. */
	[ST_GRAIN_SESSION_GET] =
		"SELECT s.grain_id, coalesce(s.user_id, 0), coalesce(u.name, ''), "
		"s.expires_at, a.package_id, "
		"coalesce(g.trashed_at, 0), g.owner_id, coalesce(s.capability_id, 0), "
		"s.cookie_hash "
		"FROM grain_sessions s JOIN grains g ON g.id = s.grain_id "
		"JOIN apps a ON a.id = g.app_id "
		"LEFT JOIN users u ON u.id = s.user_id "
		"WHERE s.host_hash = ?1 AND s.expires_at > ?2",
	[ST_GRAIN_SESSION_TOUCH] = "UPDATE grain_sessions SET expires_at = ?2 WHERE host_hash = ?1",
	[ST_GRAIN_SESSION_ENTER] = "UPDATE grain_sessions SET enter_hash = NULL, cookie_hash = ?3 "
				   "WHERE host_hash = ?1 AND enter_hash = ?2 AND created_at > ?4 "
				   "AND expires_at > ?5",
	[ST_GRAIN_SESSION_PURGE] = "DELETE FROM grain_sessions WHERE expires_at <= ?1",
	[ST_SETTING_GET] = "SELECT value FROM settings WHERE name = ?1",
	[ST_SETTING_ADD] = "INSERT INTO settings (name, value) VALUES (?1, ?2)",
	[ST_AUDIT_LIST] = "SELECT a.at, u.name, a.action, a.detail FROM audit a "
			  "LEFT JOIN users u ON u.id = a.user_id WHERE a.grain_id = ?1 "
			  "AND (?2 = 0 OR a.at < ?2) ORDER BY a.at DESC, a.id DESC LIMIT ?3",
	[ST_CAP_ADD] =
		"INSERT INTO capabilities (grain_id, parent_id, kind, token_hash, holder_id, "
		"created_by, role, permissions, label, can_reshare, expires_at, created_at, "
		"read_only, login_required) "
		"VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14)",
	[ST_CAP_GET] = "SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.id = ?1",
	[ST_CAP_BY_TOKEN] = "SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.token_hash = ?1",
	[ST_CAP_GRANT_FIND] = "SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.parent_id = ?1 "
			      "AND c.holder_id = ?2 AND c.kind = 'user'",
	[ST_CAP_LIST] = "SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.grain_id = ?1 ORDER BY c.id",
	[ST_CAP_HELD] =
		"SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.grain_id = ?1 AND c.holder_id = ?2 "
		"AND c.kind IN ('owner', 'user') AND c.revoked_at IS NULL ORDER BY c.id",
	[ST_CAP_REVOKE] = "UPDATE capabilities SET revoked_at = ?2 WHERE id = ?1 "
			  "AND revoked_at IS NULL",
	[ST_CAP_SET_ROLE] = "UPDATE capabilities SET role = ?2, permissions = ?3, read_only = ?4 "
			    "WHERE id = ?1",
	[ST_CAP_EXPIRED] = "SELECT " CAP_COLUMNS CAP_JOINS "WHERE c.expires_at <= ?1 "
			   "AND c.expires_at IS NOT NULL AND c.expiry_noted = 0 ORDER BY c.id",
	[ST_CAP_NOTE_EXPIRY] = "UPDATE capabilities SET expiry_noted = 1 WHERE id = ?1",
	[ST_GRAIN_LIST_SHARED] = "SELECT " GRAIN_COLUMNS "FROM grains g JOIN users u "
				 "ON u.id = g.owner_id WHERE g.trashed_at IS NULL AND g.id IN "
				 "(SELECT grain_id FROM capabilities WHERE holder_id = ?1 "
				 "AND kind = 'user' AND revoked_at IS NULL) "
				 "ORDER BY g.created_at DESC, g.id",
};

struct db {
	sqlite3 *sqlite;	     /* owned */
	sqlite3_stmt *stmt[_ST_MAX]; /* owned, prepared on first use */
	char *path;		     /* owned */
};

/* SQLite result code → -errno, logged at debug with SQLite's message. */
static int
db_error(struct db *db, int rc, const char *what)
{
	int extended = sqlite3_extended_errcode(db->sqlite);

	/* The reason first: a long statement would push it off the line. */
	log_debug("SQLite: %s (%d) in: %.200s", sqlite3_errmsg(db->sqlite), extended, what);
	switch (rc & 0xff) {
	case SQLITE_CONSTRAINT:
		if (extended == SQLITE_CONSTRAINT_UNIQUE ||
		    extended == SQLITE_CONSTRAINT_PRIMARYKEY)
			return -EEXIST;
		if (extended == SQLITE_CONSTRAINT_FOREIGNKEY)
			return -ENOENT;
		return -EINVAL;
	case SQLITE_BUSY:
	case SQLITE_LOCKED:
		return -EBUSY;
	case SQLITE_NOMEM:
		return -ENOMEM;
	case SQLITE_CORRUPT:
	case SQLITE_NOTADB:
		return -EBADMSG;
	case SQLITE_READONLY:
	case SQLITE_PERM:
	case SQLITE_AUTH:
		return -EACCES;
	case SQLITE_FULL:
		return -ENOSPC;
	case SQLITE_CANTOPEN:
		return -ENOENT;
	default:
		return -EIO;
	}
}

/* The prepared statement for st, reset and unbound, ready to bind. */
static int
statement(struct db *db, enum statement st, sqlite3_stmt **ret)
{
	int rc;

	if (!db->stmt[st]) {
		rc = sqlite3_prepare_v3(db->sqlite, statement_sql[st], -1,
					SQLITE_PREPARE_PERSISTENT, &db->stmt[st], NULL);
		if (rc != SQLITE_OK)
			return db_error(db, rc, statement_sql[st]);
	}
	*ret = db->stmt[st];
	return 0;
}

/* Reset after use so the statement holds no read lock between calls. */
static void
done(sqlite3_stmt *s)
{
	(void)sqlite3_reset(s);
	(void)sqlite3_clear_bindings(s);
}

/*
 * Step a lookup to its one row: 0 with the row ready to read, -ENOENT when
 * there is none. The caller reads the columns, then calls done(s).
 */
static int
step_row(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);

	if (rc == SQLITE_ROW)
		return 0;
	return rc == SQLITE_DONE ? -ENOENT : db_error(db, rc, what);
}

/* Run a statement that returns no row. */
static int
step_done(struct db *db, sqlite3_stmt *s, const char *what)
{
	int rc = sqlite3_step(s);
	int r = rc == SQLITE_DONE ? 0 : db_error(db, rc, what);

	done(s);
	return r;
}

static int
exec(struct db *db, const char *sql)
{
	char *message = NULL;
	int rc;

	rc = sqlite3_exec(db->sqlite, sql, NULL, NULL, &message);
	if (rc != SQLITE_OK) {
		sqlite3_free(message);
		return db_error(db, rc, sql);
	}
	return 0;
}

int
db_begin(struct db *db)
{
	/* IMMEDIATE: take the write lock now, so a transaction never fails halfway on BUSY. */
	return exec(db, "BEGIN IMMEDIATE");
}

/*
 * End the transaction db_begin() started: commit when r >= 0, roll back when
 * r < 0 or when the commit itself fails. Returns r, or the commit's error.
 */
int
db_end(struct db *db, int r)
{
	if (r >= 0)
		r = exec(db, "COMMIT");
	if (r < 0 && !sqlite3_get_autocommit(db->sqlite))
		(void)exec(db, "ROLLBACK");
	return r;
}

static int
single_int(struct db *db, const char *sql, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int rc, r = 0;

	rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_error(db, rc, sql);
	rc = sqlite3_step(s);
	if (rc == SQLITE_ROW)
		*ret = sqlite3_column_int64(s, 0);
	else
		r = db_error(db, rc, sql);
	sqlite3_finalize(s);
	return r;
}

static int
integrity_check(struct db *db)
{
	sqlite3_stmt *s = NULL;
	const char *sql = "PRAGMA integrity_check";
	int rc, r = 0;

	rc = sqlite3_prepare_v2(db->sqlite, sql, -1, &s, NULL);
	if (rc != SQLITE_OK)
		return db_error(db, rc, sql);
	rc = sqlite3_step(s);
	if (rc != SQLITE_ROW)
		r = db_error(db, rc, sql);
	else if (strcmp((const char *)sqlite3_column_text(s, 0), "ok") != 0) {
		log_debug("SQLite: integrity_check: %s", sqlite3_column_text(s, 0));
		r = -EBADMSG;
	}
	sqlite3_finalize(s);
	return r;
}

static int
migrate(struct db *db)
{
	const int64_t newest = (int64_t)ELEMENTSOF(db_migrations);
	int64_t version;
	int r;

	r = single_int(db, "PRAGMA user_version", &version);
	if (r < 0)
		return r;
	if (version > newest) {
		log_debug("database schema %" PRId64 " is newer than this Granary's %" PRId64,
			  version, newest);
		return -EPROTONOSUPPORT;
	}
	for (int64_t v = version; v < newest; v++) {
		char set_version[64];

		r = db_begin(db);
		if (r < 0)
			return r;
		(void)snprintf(set_version, sizeof(set_version), "PRAGMA user_version = %" PRId64,
			       v + 1);
		r = exec(db, db_migrations[v]);
		if (r >= 0)
			r = exec(db, set_version);
		r = db_end(db, r);
		if (r < 0)
			return r;
		log_debug("database migrated to schema %" PRId64, v + 1);
	}
	return 0;
}

int
db_open(const char *path, enum db_open_flags flags, struct db **ret)
{
	_cleanup_(db_freep) struct db *db = NULL;
	int rc, r;

	db = calloc(1, sizeof(*db));
	if (!db)
		return -ENOMEM;
	db->path = strdup(path);
	if (!db->path)
		return -ENOMEM;

	rc = sqlite3_open_v2(path, &db->sqlite,
			     SQLITE_OPEN_READWRITE | SQLITE_OPEN_NOMUTEX | SQLITE_OPEN_EXRESCODE |
				     (flags & DB_OPEN_CREATE ? SQLITE_OPEN_CREATE : 0),
			     NULL);
	if (rc != SQLITE_OK)
		return db->sqlite ? db_error(db, rc, "open") : -ENOMEM;

	(void)sqlite3_busy_timeout(db->sqlite, 5000);
	(void)sqlite3_extended_result_codes(db->sqlite, 1);
	/*
	 * Defensive: no writes to the schema or shadow tables through SQL. The
	 * schema itself is trusted (only we write this file), which its CHECKs
	 * need: json_valid() is not marked innocuous in SQLite 3.40.
	 */
	(void)sqlite3_db_config(db->sqlite, SQLITE_DBCONFIG_DEFENSIVE, 1, NULL);

	/* Touch the file first: a non-database file fails here, before any write. */
	r = integrity_check(db);
	if (r < 0)
		return r;
	r = exec(db, "PRAGMA journal_mode = WAL");
	if (r < 0)
		return r;
	r = exec(db, "PRAGMA foreign_keys = ON; PRAGMA synchronous = NORMAL; "
		     "PRAGMA secure_delete = ON");
	if (r < 0)
		return r;
	r = migrate(db);
	if (r < 0)
		return r;

	*ret = TAKE_PTR(db);
	return 0;
}

struct db *
db_free(struct db *db)
{
	if (!db)
		return NULL;
	for (size_t i = 0; i < _ST_MAX; i++)
		sqlite3_finalize(db->stmt[i]);
	if (db->sqlite)
		(void)sqlite3_close(db->sqlite);
	free(db->path);
	free(db);
	return NULL;
}

int
db_schema_version(struct db *db, int64_t *ret)
{
	return single_int(db, "PRAGMA user_version", ret);
}

/* ---- users --------------------------------------------------------------- */

static void
copy_text(char *dst, size_t size, sqlite3_stmt *s, int column)
{
	const unsigned char *text = sqlite3_column_text(s, column);

	(void)snprintf(dst, size, "%s", text ? (const char *)text : "");
}

static void
read_user(sqlite3_stmt *s, struct db_user *u)
{
	u->id = sqlite3_column_int64(s, 0);
	copy_text(u->name, sizeof(u->name), s, 1);
	u->admin = sqlite3_column_int(s, 2) != 0;
	u->created_at = sqlite3_column_int64(s, 3);
	u->password_changed_at = sqlite3_column_int64(s, 4);
}

int
db_user_add(struct db *db, const char *name, const char *password_hash, bool admin, int64_t now,
	    int64_t *ret_id)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_USER_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 3, admin);
	sqlite3_bind_int64(s, 4, now);
	r = step_done(db, s, "add user");
	if (r < 0)
		return r;
	if (ret_id)
		*ret_id = sqlite3_last_insert_rowid(db->sqlite);
	return 0;
}

static int
user_lookup(struct db *db, enum statement st, sqlite3_stmt *s, struct db_user *ret, char *ret_hash,
	    size_t hash_size)
{
	int r = step_row(db, s, statement_sql[st]);

	if (r >= 0) {
		read_user(s, ret);
		if (ret_hash)
			copy_text(ret_hash, hash_size, s, 5);
	}
	done(s);
	return r;
}

int
db_user_by_name(struct db *db, const char *name, struct db_user *ret, char *ret_hash,
		size_t hash_size)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_USER_BY_NAME, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	return user_lookup(db, ST_USER_BY_NAME, s, ret, ret_hash, hash_size);
}

int
db_user_by_id(struct db *db, int64_t id, struct db_user *ret, char *ret_hash, size_t hash_size)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_USER_BY_ID, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	return user_lookup(db, ST_USER_BY_ID, s, ret, ret_hash, hash_size);
}

static int
count(struct db *db, enum statement st, const char *text_arg, int64_t *ret)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, st, &s);
	if (r < 0)
		return r;
	if (text_arg)
		sqlite3_bind_text(s, 1, text_arg, -1, SQLITE_STATIC);
	r = step_row(db, s, statement_sql[st]);
	if (r >= 0)
		*ret = sqlite3_column_int64(s, 0);
	done(s);
	return r;
}

int
db_user_count(struct db *db, int64_t *ret)
{
	return count(db, ST_USER_COUNT, NULL, ret);
}

int
db_user_list(struct db *db, int (*callback)(const struct db_user *u, void *userdata),
	     void *userdata)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = statement(db, ST_USER_LIST, &s);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_user u;

		read_user(s, &u);
		r = callback(&u, userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = db_error(db, rc, "list users");
	done(s);
	return r;
}

int
db_user_set_password(struct db *db, int64_t id, const char *password_hash, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_USER_SET_PASSWORD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, password_hash, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, now);
	r = step_done(db, s, "set password");
	if (r >= 0 && sqlite3_changes(db->sqlite) == 0)
		r = -ENOENT;
	return r;
}

/* ---- sessions ------------------------------------------------------------ */

int
db_session_add(struct db *db, const uint8_t token_hash[32], int64_t user_id, int64_t now,
	       int64_t expires_at)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, user_id);
	sqlite3_bind_int64(s, 3, now);
	sqlite3_bind_int64(s, 4, expires_at);
	return step_done(db, s, "add session");
}

int
db_session_get(struct db *db, const uint8_t token_hash[32], int64_t now, int64_t *ret_user_id,
	       int64_t *ret_expires_at)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	r = step_row(db, s, "get session");
	if (r >= 0) {
		*ret_user_id = sqlite3_column_int64(s, 0);
		if (ret_expires_at)
			*ret_expires_at = sqlite3_column_int64(s, 1);
	}
	done(s);
	return r;
}

int
db_session_touch(struct db *db, const uint8_t token_hash[32], int64_t now, int64_t expires_at)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_TOUCH, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	sqlite3_bind_int64(s, 3, expires_at);
	return step_done(db, s, "touch session");
}

int
db_session_delete(struct db *db, const uint8_t token_hash[32])
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_DELETE, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
	return step_done(db, s, "delete session");
}

int
db_session_delete_for_user(struct db *db, int64_t user_id, const uint8_t *keep_token_hash)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_DELETE_USER, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, user_id);
	if (keep_token_hash)
		sqlite3_bind_blob(s, 2, keep_token_hash, 32, SQLITE_STATIC);
	return step_done(db, s, "delete sessions of user");
}

int
db_session_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SESSION_PURGE, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, now);
	return step_done(db, s, "purge sessions");
}

/* ---- apps and packages ------------------------------------------------------ */

static int
read_package(sqlite3_stmt *s, struct db_package *p)
{
	const unsigned char *manifest = sqlite3_column_text(s, 4);

	copy_text(p->id, sizeof(p->id), s, 0);
	copy_text(p->app_id, sizeof(p->app_id), s, 1);
	p->version = sqlite3_column_int64(s, 2);
	copy_text(p->title, sizeof(p->title), s, 3);
	p->manifest = strdup(manifest ? (const char *)manifest : "{}");
	if (!p->manifest)
		return -ENOMEM;
	p->size = sqlite3_column_int64(s, 5);
	p->installed_at = sqlite3_column_int64(s, 6);
	return 0;
}

void
db_package_release(struct db_package *p)
{
	free(p->manifest);
	p->manifest = NULL;
}

int
db_package_add(struct db *db, const struct db_package *p, int64_t installed_by)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = db_begin(db);
	if (r < 0)
		return r;

	r = statement(db, ST_PACKAGE_ADD, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->app_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, p->version);
	sqlite3_bind_text(s, 4, p->title, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 5, p->manifest, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, p->size);
	sqlite3_bind_int64(s, 7, p->installed_at);
	r = step_done(db, s, "add package");
	if (r < 0)
		goto out_transaction;

	r = statement(db, ST_APP_UPSERT, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, p->app_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, p->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 3, p->installed_at);
	if (installed_by > 0)
		sqlite3_bind_int64(s, 4, installed_by);
	r = step_done(db, s, "add app");

out_transaction:
	return db_end(db, r);
}

int
db_package_get(struct db *db, const char *id, struct db_package *ret)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_PACKAGE_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = step_row(db, s, "get package");
	if (r >= 0)
		r = read_package(s, ret);
	done(s);
	return r;
}

int
db_app_get(struct db *db, const char *app_id, struct db_package *ret)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_APP_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, app_id, -1, SQLITE_STATIC);
	r = step_row(db, s, "get app");
	if (r >= 0)
		r = read_package(s, ret);
	done(s);
	return r;
}

int
db_app_list(struct db *db, int (*callback)(const struct db_package *current, void *userdata),
	    void *userdata)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = statement(db, ST_APP_LIST, &s);
	if (r < 0)
		return r;
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_package p = {};

		r = read_package(s, &p);
		if (r >= 0)
			r = callback(&p, userdata);
		db_package_release(&p);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = db_error(db, rc, "list apps");
	done(s);
	return r;
}

int
db_app_remove(struct db *db, const char *app_id,
	      int (*each_package)(const char *package_id, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int64_t grains = 0;
	int rc, r;

	r = db_begin(db);
	if (r < 0)
		return r;
	r = count(db, ST_APP_GRAIN_COUNT, app_id, &grains);
	if (r < 0)
		goto out_transaction;
	if (grains > 0) {
		r = -EBUSY;
		goto out_transaction;
	}

	/* Tell the caller which package directories go, before the rows do. */
	r = statement(db, ST_PACKAGE_IDS_OF_APP, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, app_id, -1, SQLITE_STATIC);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW && each_package) {
		r = each_package((const char *)sqlite3_column_text(s, 0), userdata);
		if (r < 0)
			break;
	}
	/* A failed read must not look like "no more packages": nothing is deleted then. */
	if (r >= 0 && rc != SQLITE_ROW && rc != SQLITE_DONE)
		r = db_error(db, rc, "list packages of app");
	done(s);
	if (r < 0)
		goto out_transaction;

	r = statement(db, ST_APP_DELETE, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, app_id, -1, SQLITE_STATIC);
	r = step_done(db, s, "delete app");
	if (r < 0)
		goto out_transaction;
	if (sqlite3_changes(db->sqlite) == 0) {
		r = -ENOENT;
		goto out_transaction;
	}
out_transaction:
	return db_end(db, r);
}

/* ---- grains ----------------------------------------------------------------- */

static void
read_grain(sqlite3_stmt *s, struct db_grain *g)
{
	copy_text(g->id, sizeof(g->id), s, 0);
	copy_text(g->app_id, sizeof(g->app_id), s, 1);
	copy_text(g->package_id, sizeof(g->package_id), s, 2);
	g->owner_id = sqlite3_column_int64(s, 3);
	copy_text(g->owner_name, sizeof(g->owner_name), s, 4);
	copy_text(g->title, sizeof(g->title), s, 5);
	g->created_at = sqlite3_column_int64(s, 6);
	g->last_used_at = sqlite3_column_int64(s, 7);
	g->trashed_at = sqlite3_column_int64(s, 8);
}

int
db_grain_add(struct db *db, const struct db_grain *g, const char *owner_permissions_json)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = db_begin(db);
	if (r < 0)
		return r;
	r = statement(db, ST_GRAIN_ADD, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, g->id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, g->app_id, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, g->package_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, g->owner_id);
	sqlite3_bind_text(s, 5, g->title, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 6, g->created_at);
	r = step_done(db, s, "add grain");
	if (r < 0)
		goto out_transaction;

	/* The owner's grant is the root of the grain's sharing tree. */
	r = statement(db, ST_OWNER_CAP_ADD, &s);
	if (r < 0)
		goto out_transaction;
	sqlite3_bind_text(s, 1, g->id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, g->owner_id);
	sqlite3_bind_text(s, 3, owner_permissions_json, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, g->created_at);
	r = step_done(db, s, "add owner capability");

out_transaction:
	return db_end(db, r);
}

int
db_grain_get(struct db *db, const char *id, struct db_grain *ret)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	r = step_row(db, s, "get grain");
	if (r >= 0)
		read_grain(s, ret);
	done(s);
	return r;
}

/* Hand every grain row of the bound statement s to callback, then release s. */
static int
grain_rows(struct db *db, sqlite3_stmt *s,
	   int (*callback)(const struct db_grain *g, void *userdata), void *userdata)
{
	int rc, r = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_grain g;

		read_grain(s, &g);
		r = callback(&g, userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = db_error(db, rc, "list grains");
	done(s);
	return r;
}

int
db_grain_list(struct db *db, int64_t owner_id, bool include_trashed,
	      int (*callback)(const struct db_grain *g, void *userdata), void *userdata)
{
	enum statement st = owner_id > 0 ? ST_GRAIN_LIST_OWNER : ST_GRAIN_LIST_ALL;
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, st, &s);
	if (r < 0)
		return r;
	if (owner_id > 0)
		sqlite3_bind_int64(s, 1, owner_id);
	sqlite3_bind_int(s, 2, include_trashed);
	return grain_rows(db, s, callback, userdata);
}

int
db_grain_list_trashed(struct db *db, int64_t before,
		      int (*callback)(const struct db_grain *g, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_LIST_TRASHED, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, before);
	return grain_rows(db, s, callback, userdata);
}

static int
grain_update(struct db *db, enum statement st, const char *id, const char *text, int64_t value,
	     bool null_value)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, st, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, id, -1, SQLITE_STATIC);
	if (text)
		sqlite3_bind_text(s, 2, text, -1, SQLITE_STATIC);
	else if (!null_value)
		sqlite3_bind_int64(s, 2, value);
	r = step_done(db, s, statement_sql[st]);
	if (r >= 0 && sqlite3_changes(db->sqlite) == 0)
		r = -ENOENT;
	return r;
}

int
db_grain_list_shared(struct db *db, int64_t user_id,
		     int (*callback)(const struct db_grain *g, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_LIST_SHARED, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, user_id);
	return grain_rows(db, s, callback, userdata);
}

int
db_grain_rename(struct db *db, const char *id, const char *title)
{
	return grain_update(db, ST_GRAIN_RENAME, id, title, 0, false);
}

int
db_grain_trash(struct db *db, const char *id, int64_t now)
{
	/* now == 0 takes the grain out of the trash again. */
	return grain_update(db, ST_GRAIN_TRASH, id, NULL, now, now == 0);
}

int
db_grain_delete(struct db *db, const char *id)
{
	return grain_update(db, ST_GRAIN_DELETE, id, NULL, 0, true);
}

int
db_grain_count(struct db *db, int64_t *ret)
{
	return count(db, ST_GRAIN_COUNT, NULL, ret);
}

/* ---- audit ------------------------------------------------------------------ */

int
db_audit_add(struct db *db, int64_t now, const char *grain_id, int64_t user_id, const char *action,
	     const char *detail_json)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_AUDIT_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, now);
	if (grain_id)
		sqlite3_bind_text(s, 2, grain_id, -1, SQLITE_STATIC);
	if (user_id > 0)
		sqlite3_bind_int64(s, 3, user_id);
	sqlite3_bind_text(s, 4, action, -1, SQLITE_STATIC);
	if (detail_json)
		sqlite3_bind_text(s, 5, detail_json, -1, SQLITE_STATIC);
	return step_done(db, s, "add audit");
}

int
db_audit_list(struct db *db, const char *grain_id, int64_t before, unsigned limit,
	      int (*callback)(const struct db_audit *a, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int rc, r;

	r = statement(db, ST_AUDIT_LIST, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, grain_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, before);
	sqlite3_bind_int64(s, 3, limit);
	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_audit a = {
			.at = sqlite3_column_int64(s, 0),
			.user = (const char *)sqlite3_column_text(s, 1),
			.action = (const char *)sqlite3_column_text(s, 2),
			.detail = (const char *)sqlite3_column_text(s, 3),
		};

		r = callback(&a, userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = db_error(db, rc, "list audit");
	done(s);
	return r;
}

/* ---- capabilities -------------------------------------------------------------- */

static const char *const cap_kind_names[] = {
	[CAP_OWNER] = "owner",
	[CAP_LINK] = "link",
	[CAP_GRANT] = "user",
	[CAP_TOKEN] = "api",
};

static void
read_cap(sqlite3_stmt *s, struct db_cap *c)
{
	const char *kind = (const char *)sqlite3_column_text(s, 3);

	*c = (struct db_cap){
		.id = sqlite3_column_int64(s, 0),
		.parent_id = sqlite3_column_int64(s, 1),
		.holder_id = sqlite3_column_int64(s, 4),
		.created_by = sqlite3_column_int64(s, 5),
		.read_only = sqlite3_column_int(s, 9) != 0,
		.login_required = sqlite3_column_int(s, 10) != 0,
		.reshare = sqlite3_column_int(s, 11) != 0,
		.expires_at = sqlite3_column_int64(s, 12),
		.revoked_at = sqlite3_column_int64(s, 13),
		.created_at = sqlite3_column_int64(s, 14),
	};
	copy_text(c->grain_id, sizeof(c->grain_id), s, 2);
	for (size_t i = 0; i < ELEMENTSOF(cap_kind_names); i++)
		if (kind && strcmp(kind, cap_kind_names[i]) == 0)
			c->kind = (enum cap_kind)i;
	copy_text(c->role, sizeof(c->role), s, 6);
	copy_text(c->permissions, sizeof(c->permissions), s, 7);
	copy_text(c->label, sizeof(c->label), s, 8);
	copy_text(c->holder_name, sizeof(c->holder_name), s, 15);
	copy_text(c->created_by_name, sizeof(c->created_by_name), s, 16);
}

/* The one edge the bound statement s finds; releases s. */
static int
cap_row(struct db *db, sqlite3_stmt *s, struct db_cap *ret)
{
	int r = step_row(db, s, "get capability");

	if (r >= 0)
		read_cap(s, ret);
	done(s);
	return r;
}

/* Hand every edge the bound statement s finds to callback; releases s. */
static int
cap_rows(struct db *db, sqlite3_stmt *s, int (*callback)(const struct db_cap *c, void *userdata),
	 void *userdata)
{
	int rc, r = 0;

	while ((rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_cap c;

		read_cap(s, &c);
		r = callback(&c, userdata);
		if (r < 0)
			break;
	}
	if (r >= 0 && rc != SQLITE_DONE)
		r = db_error(db, rc, "list capabilities");
	done(s);
	return r;
}

int
db_cap_add(struct db *db, const struct db_cap *c, const uint8_t *token_hash, int64_t *ret_id)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_CAP_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, c->grain_id, -1, SQLITE_STATIC);
	if (c->parent_id > 0)
		sqlite3_bind_int64(s, 2, c->parent_id);
	sqlite3_bind_text(s, 3, cap_kind_names[c->kind], -1, SQLITE_STATIC);
	if (token_hash)
		sqlite3_bind_blob(s, 4, token_hash, 32, SQLITE_STATIC);
	if (c->holder_id > 0)
		sqlite3_bind_int64(s, 5, c->holder_id);
	if (c->created_by > 0)
		sqlite3_bind_int64(s, 6, c->created_by);
	sqlite3_bind_text(s, 7, c->role, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 8, c->permissions, -1, SQLITE_STATIC);
	if (c->label[0])
		sqlite3_bind_text(s, 9, c->label, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 10, c->reshare);
	if (c->expires_at > 0)
		sqlite3_bind_int64(s, 11, c->expires_at);
	sqlite3_bind_int64(s, 12, c->created_at);
	sqlite3_bind_int(s, 13, c->read_only);
	sqlite3_bind_int(s, 14, c->login_required);
	r = step_done(db, s, "add capability");
	if (r >= 0 && ret_id)
		*ret_id = sqlite3_last_insert_rowid(db->sqlite);
	return r;
}

int
db_cap_get(struct db *db, int64_t id, struct db_cap *ret)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_GET, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	return cap_row(db, s, ret);
}

int
db_cap_by_token(struct db *db, const uint8_t token_hash[32], struct db_cap *ret)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_BY_TOKEN, &s);

	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, token_hash, 32, SQLITE_STATIC);
	return cap_row(db, s, ret);
}

int
db_cap_grant_find(struct db *db, int64_t parent_id, int64_t holder_id, struct db_cap *ret)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_GRANT_FIND, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, parent_id);
	sqlite3_bind_int64(s, 2, holder_id);
	return cap_row(db, s, ret);
}

int
db_cap_list(struct db *db, const char *grain_id,
	    int (*callback)(const struct db_cap *c, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_LIST, &s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, grain_id, -1, SQLITE_STATIC);
	return cap_rows(db, s, callback, userdata);
}

int
db_cap_held(struct db *db, const char *grain_id, int64_t user_id,
	    int (*callback)(const struct db_cap *c, void *userdata), void *userdata)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_HELD, &s);

	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, grain_id, -1, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, user_id);
	return cap_rows(db, s, callback, userdata);
}

int
db_cap_revoke(struct db *db, int64_t id, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_REVOKE, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_int64(s, 2, now);
	return step_done(db, s, "revoke capability");
}

int
db_cap_set_role(struct db *db, int64_t id, const char *role, const char *permissions_json,
		bool read_only)
{
	sqlite3_stmt *s = NULL;
	int r = statement(db, ST_CAP_SET_ROLE, &s);

	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, id);
	sqlite3_bind_text(s, 2, role, -1, SQLITE_STATIC);
	sqlite3_bind_text(s, 3, permissions_json, -1, SQLITE_STATIC);
	sqlite3_bind_int(s, 4, read_only);
	r = step_done(db, s, "change capability");
	if (r >= 0 && sqlite3_changes(db->sqlite) == 0)
		r = -ENOENT;
	return r;
}

int
db_cap_expired(struct db *db, int64_t now, int (*callback)(const struct db_cap *c, void *userdata),
	       void *userdata)
{
	sqlite3_stmt *s = NULL, *note = NULL;
	int64_t ids[64]; /* marked after the read finished; the rest next time */
	size_t n = 0;
	int rc = SQLITE_DONE, r;

	r = statement(db, ST_CAP_EXPIRED, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, now);
	while (n < ELEMENTSOF(ids) && (rc = sqlite3_step(s)) == SQLITE_ROW) {
		struct db_cap c;

		read_cap(s, &c);
		r = callback(&c, userdata);
		if (r < 0)
			break;
		ids[n++] = c.id;
	}
	if (r >= 0 && n < ELEMENTSOF(ids) && rc != SQLITE_DONE)
		r = db_error(db, rc, "list expired capabilities");
	done(s);
	for (size_t i = 0; i < n; i++) {
		int k = statement(db, ST_CAP_NOTE_EXPIRY, &note);

		if (k >= 0) {
			sqlite3_bind_int64(note, 1, ids[i]);
			k = step_done(db, note, "note expiry");
		}
		if (k < 0 && r >= 0)
			r = k;
	}
	return r < 0 ? r : (int)n;
}

/* ---- grain sessions ------------------------------------------------------------ */

int
db_grain_touch(struct db *db, const char *id, int64_t now)
{
	return grain_update(db, ST_GRAIN_TOUCH, id, NULL, now, false);
}

int
db_grain_set_package(struct db *db, const char *id, const char *package_id)
{
	return grain_update(db, ST_GRAIN_SET_PACKAGE, id, package_id, 0, false);
}

int
db_grain_session_add(struct db *db, const uint8_t host_hash[32], const struct db_grain_session *gs,
		     int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_SESSION_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, host_hash, 32, SQLITE_STATIC);
	sqlite3_bind_text(s, 2, gs->grain_id, -1, SQLITE_STATIC);
	if (gs->user_id > 0)
		sqlite3_bind_int64(s, 3, gs->user_id);
	if (gs->capability_id > 0)
		sqlite3_bind_int64(s, 4, gs->capability_id);
	sqlite3_bind_int64(s, 5, now);
	sqlite3_bind_int64(s, 6, gs->expires_at);
	sqlite3_bind_blob(s, 7, gs->enter_hash, 32, SQLITE_STATIC);
	return step_done(db, s, "add grain session");
}

int
db_grain_session_get(struct db *db, const uint8_t host_hash[32], int64_t now,
		     struct db_grain_session *ret)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_SESSION_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, host_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, now);
	r = step_row(db, s, "get grain session");
	if (r >= 0) {
		*ret = (struct db_grain_session){};
		copy_text(ret->grain_id, sizeof(ret->grain_id), s, 0);
		ret->user_id = sqlite3_column_int64(s, 1);
		copy_text(ret->username, sizeof(ret->username), s, 2);
		ret->expires_at = sqlite3_column_int64(s, 3);
		copy_text(ret->package_id, sizeof(ret->package_id), s, 4);
		ret->trashed_at = sqlite3_column_int64(s, 5);
		ret->owner_id = sqlite3_column_int64(s, 6);
		ret->capability_id = sqlite3_column_int64(s, 7);
		if (sqlite3_column_bytes(s, 8) == sizeof(ret->cookie_hash)) {
			memcpy(ret->cookie_hash, sqlite3_column_blob(s, 8),
			       sizeof(ret->cookie_hash));
			ret->entered = true;
		}
	}
	done(s);
	return r;
}

int
db_grain_session_enter(struct db *db, const uint8_t host_hash[32], const uint8_t enter_hash[32],
		       const uint8_t cookie_hash[32], int64_t created_after, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_SESSION_ENTER, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, host_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, enter_hash, 32, SQLITE_STATIC);
	sqlite3_bind_blob(s, 3, cookie_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 4, created_after);
	sqlite3_bind_int64(s, 5, now);
	r = step_done(db, s, "enter grain session");
	if (r >= 0 && sqlite3_changes(db->sqlite) != 1)
		r = -ENOENT;
	return r;
}

int
db_grain_session_touch(struct db *db, const uint8_t host_hash[32], int64_t expires_at)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_SESSION_TOUCH, &s);
	if (r < 0)
		return r;
	sqlite3_bind_blob(s, 1, host_hash, 32, SQLITE_STATIC);
	sqlite3_bind_int64(s, 2, expires_at);
	return step_done(db, s, "touch grain session");
}

int
db_grain_session_purge(struct db *db, int64_t now)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_GRAIN_SESSION_PURGE, &s);
	if (r < 0)
		return r;
	sqlite3_bind_int64(s, 1, now);
	return step_done(db, s, "purge grain sessions");
}

/* ---- settings ------------------------------------------------------------------ */

int
db_secret(struct db *db, const char *name, uint8_t *ret, size_t size)
{
	sqlite3_stmt *s = NULL;
	int r;

	r = statement(db, ST_SETTING_GET, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	r = step_row(db, s, "get setting");
	if (r >= 0) {
		if ((size_t)sqlite3_column_bytes(s, 0) != size)
			r = -EBADMSG;
		else
			memcpy(ret, sqlite3_column_blob(s, 0), size);
	}
	done(s);
	if (r != -ENOENT)
		return r;

	/* First use: make it. */
	randombytes_buf(ret, size);
	r = statement(db, ST_SETTING_ADD, &s);
	if (r < 0)
		return r;
	sqlite3_bind_text(s, 1, name, -1, SQLITE_STATIC);
	sqlite3_bind_blob(s, 2, ret, (int)size, SQLITE_STATIC);
	return step_done(db, s, "add setting");
}
