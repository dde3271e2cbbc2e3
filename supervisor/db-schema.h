/* SPDX-License-Identifier: MIT */
/*
 * db-schema.h: the SQLite schema, as migrations. Included by db.c only.
 *
 * Migration N takes a database from user_version N-1 to N, inside one
 * transaction. Never edit a migration that has shipped: add the next one.
 *
 * | table        | one row per                       | notes                                   |
 * |--------------|-----------------------------------|-----------------------------------------|
 * | users        | local account                     | argon2id hash (crypto_pwhash_str)       |
 * | sessions     | signed-in browser or CLI session  | only the BLAKE2b hash of the token      |
 * | apps         | app id (public key of its signer) | package_id: the version in use          |
 * | packages     | installed .spk file               | id = hash of the whole file; manifest   |
 * | grains       | grain                             | trashed_at set: in the trash            |
 * | capabilities | grant of access to a grain        | tree via parent_id; see below           |
 * | audit        | event worth telling an owner      | detail is JSON                          |
 * | grain_sessions | open grain in a browser (ui- host) | only BLAKE2b hashes of label, key, cookie |
 * | settings     | server-wide secret or value       | e.g. the key of per-grain user ids      |
 *
 * capabilities: kind 'owner' (the grain's owner, the root of its tree), 'link'
 * (a share link: token_hash set), 'user' (a signed-in person who opened a
 * link: holder_id set), 'api' (a bearer token). permissions is the JSON array
 * granted on this edge; what a holder really gets is the intersection along
 * the path to the root at the time of use (the sharing issue). Revoking a row
 * (revoked_at) cuts everything below it.
 *
 * Times are Unix seconds (INTEGER). Ids of grains are 32 hex characters
 * (128 random bits); of packages 64 hex (BLAKE2b-256 of the file); of apps the
 * 52-character base32 public key.
 */
#ifndef GRANARY_SUPERVISOR_DB_SCHEMA_H
#define GRANARY_SUPERVISOR_DB_SCHEMA_H

static const char *const db_migrations[] = {
	/* 1: the first schema */
	"CREATE TABLE users ("
	"  id INTEGER PRIMARY KEY,"
	"  name TEXT NOT NULL UNIQUE CHECK (length(name) BETWEEN 1 AND 64),"
	"  password_hash TEXT NOT NULL,"
	"  is_admin INTEGER NOT NULL DEFAULT 0 CHECK (is_admin IN (0, 1)),"
	"  created_at INTEGER NOT NULL,"
	"  password_changed_at INTEGER NOT NULL"
	");"
	"CREATE TABLE sessions ("
	"  token_hash BLOB PRIMARY KEY CHECK (length(token_hash) = 32),"
	"  user_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL,"
	"  last_seen_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX sessions_user ON sessions(user_id);"
	"CREATE TABLE apps ("
	"  id TEXT PRIMARY KEY CHECK (length(id) BETWEEN 1 AND 64),"
	"  package_id TEXT NOT NULL REFERENCES packages(id) DEFERRABLE INITIALLY DEFERRED,"
	"  installed_at INTEGER NOT NULL,"
	"  installed_by INTEGER REFERENCES users(id) ON DELETE SET NULL"
	");"
	"CREATE TABLE packages ("
	"  id TEXT PRIMARY KEY CHECK (length(id) = 64),"
	"  app_id TEXT NOT NULL REFERENCES apps(id) ON DELETE CASCADE"
	"    DEFERRABLE INITIALLY DEFERRED,"
	"  version INTEGER NOT NULL,"
	"  title TEXT NOT NULL,"
	"  manifest TEXT NOT NULL CHECK (json_valid(manifest)),"
	"  size INTEGER NOT NULL,"
	"  installed_at INTEGER NOT NULL"
	");"
	"CREATE INDEX packages_app ON packages(app_id);"
	"CREATE TABLE grains ("
	"  id TEXT PRIMARY KEY CHECK (length(id) = 32),"
	"  app_id TEXT NOT NULL REFERENCES apps(id),"
	"  package_id TEXT NOT NULL REFERENCES packages(id),"
	"  owner_id INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,"
	"  title TEXT NOT NULL CHECK (length(title) BETWEEN 1 AND 200),"
	"  created_at INTEGER NOT NULL,"
	"  last_used_at INTEGER,"
	"  trashed_at INTEGER"
	");"
	"CREATE INDEX grains_owner ON grains(owner_id);"
	"CREATE INDEX grains_app ON grains(app_id);"
	"CREATE TABLE capabilities ("
	"  id INTEGER PRIMARY KEY,"
	"  grain_id TEXT NOT NULL REFERENCES grains(id) ON DELETE CASCADE,"
	"  parent_id INTEGER REFERENCES capabilities(id) ON DELETE CASCADE,"
	"  kind TEXT NOT NULL CHECK (kind IN ('owner', 'link', 'user', 'api')),"
	"  token_hash BLOB UNIQUE CHECK (token_hash IS NULL OR length(token_hash) = 32),"
	"  holder_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
	"  created_by INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  role TEXT,"
	"  permissions TEXT NOT NULL CHECK (json_valid(permissions)),"
	"  label TEXT,"
	"  can_reshare INTEGER NOT NULL DEFAULT 1,"
	"  expires_at INTEGER,"
	"  revoked_at INTEGER,"
	"  created_at INTEGER NOT NULL"
	");"
	"CREATE INDEX capabilities_grain ON capabilities(grain_id);"
	"CREATE INDEX capabilities_parent ON capabilities(parent_id);"
	"CREATE INDEX capabilities_holder ON capabilities(holder_id);"
	"CREATE TABLE audit ("
	"  id INTEGER PRIMARY KEY,"
	"  at INTEGER NOT NULL,"
	"  grain_id TEXT REFERENCES grains(id) ON DELETE CASCADE,"
	"  user_id INTEGER REFERENCES users(id) ON DELETE SET NULL,"
	"  action TEXT NOT NULL,"
	"  detail TEXT CHECK (detail IS NULL OR json_valid(detail))"
	");"
	"CREATE INDEX audit_grain ON audit(grain_id, at);",
	/*
	 * 2: grain sessions. A session is what a ui-<hex> host stands for: one
	 * grain, one person (NULL: anonymous), the permissions they had when it
	 * was opened, and the grant it came from (revoking that grant ends it).
	 */
	"CREATE TABLE grain_sessions ("
	"  host_hash BLOB PRIMARY KEY CHECK (length(host_hash) = 32),"
	"  grain_id TEXT NOT NULL REFERENCES grains(id) ON DELETE CASCADE,"
	"  user_id INTEGER REFERENCES users(id) ON DELETE CASCADE,"
	"  capability_id INTEGER REFERENCES capabilities(id) ON DELETE CASCADE,"
	"  permissions TEXT NOT NULL CHECK (json_valid(permissions)),"
	"  created_at INTEGER NOT NULL,"
	"  expires_at INTEGER NOT NULL"
	") WITHOUT ROWID;"
	"CREATE INDEX grain_sessions_grain ON grain_sessions(grain_id);"
	"CREATE INDEX grain_sessions_expiry ON grain_sessions(expires_at);"
	"CREATE TABLE settings ("
	"  name TEXT PRIMARY KEY,"
	"  value BLOB NOT NULL"
	") WITHOUT ROWID;",
	/*
	 * 3: sharing (docs/sharing.md). Edges say whether they are read-only
	 * and whether anonymous visitors may open them; a person holds one
	 * grant per link; expiry_noted marks an expiry already audited.
	 */
	"ALTER TABLE capabilities ADD COLUMN read_only INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE capabilities ADD COLUMN login_required INTEGER NOT NULL DEFAULT 0;"
	"ALTER TABLE capabilities ADD COLUMN expiry_noted INTEGER NOT NULL DEFAULT 0;"
	"CREATE UNIQUE INDEX capabilities_grant ON capabilities(parent_id, holder_id) "
	"  WHERE kind = 'user';"
	"CREATE INDEX capabilities_expiry ON capabilities(expires_at) "
	"  WHERE expires_at IS NOT NULL AND expiry_noted = 0;",
	/*
	 * 4: a session host alone no longer admits anyone (SECURITY-TESTS.md J).
	 * A session is entered once, through a URL with a one-time key
	 * (enter_hash, cleared when used); entering sets a cookie of that host
	 * only (cookie_hash), which every later request must carry. Sessions of
	 * before have neither and could never be entered: they end.
	 */
	"ALTER TABLE grain_sessions ADD COLUMN enter_hash BLOB "
	"  CHECK (enter_hash IS NULL OR length(enter_hash) = 32);"
	"ALTER TABLE grain_sessions ADD COLUMN cookie_hash BLOB "
	"  CHECK (cookie_hash IS NULL OR length(cookie_hash) = 32);"
	"DELETE FROM grain_sessions;",
};

#endif
