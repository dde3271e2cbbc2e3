/* SPDX-License-Identifier: MIT */
/*
 * supervisor-internal.h: declarations shared by the files of granaryd.
 *
 * Today granaryd is one process serving the shell placeholder and /healthz;
 * the privilege-separated parent, launcher and front of DESIGN.md arrive with
 * the supervisor issue, each in its own file as the process map says.
 */
#ifndef GRANARY_SUPERVISOR_INTERNAL_H
#define GRANARY_SUPERVISOR_INTERNAL_H

#include <netinet/in.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "common/macro.h"

struct listen_address {
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

struct front_config {
	int listen_fd;	      /* borrowed: a listening socket (listen_socket_open()) */
	const char *base_url; /* borrowed; NULL: derived from the listen address */
	const char *wildcard; /* borrowed; NULL: "*.localhost:<port>" */
};

struct front;

/* front.c */

/*
 * Start serving HTTP on config->listen_fd in a thread of libmicrohttpd's.
 * *ret is owned by the caller (front_free()).
 */
int front_start(const struct front_config *config, struct front **ret);

/* Stop accepting, finish with open connections and free. Accepts NULL; returns NULL. */
struct front *front_free(struct front *f);

/* listen.c */

/*
 * Parse "ADDR:PORT", "[V6ADDR]:PORT", "localhost:PORT" or ":PORT" (every
 * IPv4 address). Port 0 asks the kernel for a free one. -EINVAL on anything else.
 */
int listen_address_parse(const char *s, struct listen_address *ret);

/*
 * A non-blocking, close-on-exec listening TCP socket bound to a. Returns
 * -errno from socket(), bind() or listen() so the caller can say which.
 */
int listen_socket_open(const struct listen_address *a, int *ret_fd);

/* The port a socket is bound to (the real one when 0 was asked for). */
int listen_socket_port(int fd, uint16_t *ret);

/* "127.0.0.1:6080" or "[::1]:6080" into buf. Returns buf. */
char *listen_address_format(const struct listen_address *a, uint16_t port, char *buf, size_t size);

/* db.c: the SQLite store; the only file with SQL in it */

#define USER_NAME_MAX	  64
#define GRAIN_ID_LEN	  32 /* hex of 128 random bits */
#define PACKAGE_ID_LEN	  64 /* hex of BLAKE2b-256 of the .spk file */
#define APP_ID_MAX	  64 /* base32 of an Ed25519 public key is 52 */
#define GRAIN_TITLE_MAX	  200
#define PASSWORD_HASH_MAX 128 /* crypto_pwhash_STRBYTES */

struct db;

enum db_open_flags {
	DB_OPEN_CREATE = 1 << 0,
};

struct db_user {
	int64_t id;
	char name[USER_NAME_MAX + 1];
	bool admin;
	int64_t created_at;
	int64_t password_changed_at;
};

struct db_package {
	char id[PACKAGE_ID_LEN + 1];
	char app_id[APP_ID_MAX + 1];
	int64_t version;
	char title[GRAIN_TITLE_MAX + 1];
	char *manifest; /* owned: JSON text; db_package_release() frees it */
	int64_t size;
	int64_t installed_at;
};

struct db_grain {
	char id[GRAIN_ID_LEN + 1];
	char app_id[APP_ID_MAX + 1];
	char package_id[PACKAGE_ID_LEN + 1];
	int64_t owner_id;
	char owner_name[USER_NAME_MAX + 1];
	char title[GRAIN_TITLE_MAX + 1];
	int64_t created_at;
	int64_t last_used_at; /* 0: never */
	int64_t trashed_at;   /* 0: not in the trash */
};

/*
 * Open (DB_OPEN_CREATE: create) the database at path: integrity check, WAL,
 * foreign keys, migrations. *ret is owned by the caller (db_free()).
 * -EBADMSG: damaged or not a database; -EPROTONOSUPPORT: made by a newer
 * Granary; -ENOENT: missing and not asked to create; other -errno.
 */
int db_open(const char *path, enum db_open_flags flags, struct db **ret);
struct db *db_free(struct db *db); /* accepts NULL, returns NULL */
DEFINE_TRIVIAL_CLEANUP_FUNC(struct db *, db_free)
int db_schema_version(struct db *db, int64_t *ret);
int db_begin(struct db *db);
int db_commit(struct db *db);
void db_rollback(struct db *db);

/* -EEXIST: the name is taken. */
int db_user_add(struct db *db, const char *name, const char *password_hash, bool admin, int64_t now,
		int64_t *ret_id);
/* ret_hash (may be NULL) gets the password hash; -ENOENT: no such user. */
int db_user_by_name(struct db *db, const char *name, struct db_user *ret, char *ret_hash,
		    size_t hash_size);
int db_user_by_id(struct db *db, int64_t id, struct db_user *ret, char *ret_hash, size_t hash_size);
int db_user_count(struct db *db, int64_t *ret);
/* Calls callback for each user by name; a negative return stops and is returned. */
int db_user_list(struct db *db, int (*callback)(const struct db_user *u, void *userdata),
		 void *userdata);
int db_user_set_password(struct db *db, int64_t id, const char *password_hash, int64_t now);

int db_session_add(struct db *db, const uint8_t token_hash[32], int64_t user_id, int64_t now,
		   int64_t expires_at);
/* -ENOENT: no such session, or expired. */
int db_session_get(struct db *db, const uint8_t token_hash[32], int64_t now, int64_t *ret_user_id,
		   int64_t *ret_expires_at);
int db_session_touch(struct db *db, const uint8_t token_hash[32], int64_t now, int64_t expires_at);
int db_session_delete(struct db *db, const uint8_t token_hash[32]);
/* Every session of user_id but keep_token_hash's (may be NULL). */
int db_session_delete_for_user(struct db *db, int64_t user_id, const uint8_t *keep_token_hash);
int db_session_purge(struct db *db, int64_t now);

/* Record an installed package and make it its app's current version. -EEXIST: installed. */
int db_package_add(struct db *db, const struct db_package *p, int64_t installed_by);
/* ret->manifest is allocated: db_package_release(). -ENOENT: no such package. */
int db_package_get(struct db *db, const char *id, struct db_package *ret);
void db_package_release(struct db_package *p);
/* Each app's current package, by title. The package is valid during the call only. */
int db_app_list(struct db *db, int (*callback)(const struct db_package *current, void *userdata),
		void *userdata);
/*
 * Remove an app and its packages' rows; each_package (may be NULL) is told
 * every package id first. -EBUSY: grains still use the app; -ENOENT: no such app.
 */
int db_app_remove(struct db *db, const char *app_id,
		  int (*each_package)(const char *package_id, void *userdata), void *userdata);

/* Add a grain and its owner's root capability. */
int db_grain_add(struct db *db, const struct db_grain *g, const char *owner_permissions_json);
int db_grain_get(struct db *db, const char *id, struct db_grain *ret);
/* owner_id <= 0: every grain. */
int db_grain_list(struct db *db, int64_t owner_id, bool include_trashed,
		  int (*callback)(const struct db_grain *g, void *userdata), void *userdata);
int db_grain_rename(struct db *db, const char *id, const char *title);
/* now == 0 restores from the trash. */
int db_grain_trash(struct db *db, const char *id, int64_t now);
int db_grain_delete(struct db *db, const char *id);
int db_grain_count(struct db *db, int64_t *ret);

int db_audit_add(struct db *db, int64_t now, const char *grain_id, int64_t user_id,
		 const char *action, const char *detail_json);

#endif
