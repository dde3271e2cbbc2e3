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
#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>
#include <sys/types.h>

#include "common/macro.h"
#include "common/token.h"

#include <jansson.h>
#include <microhttpd.h>

struct listen_address {
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

struct front_config {
	int listen_fd;	       /* a listening socket; front_start() takes it over on success */
	int local_fd;	       /* the admin socket (LOCAL_SOCKET_NAME), or -1; borrowed */
	int launcher_fd;       /* the connection to the launcher (borrowed) */
	uint16_t port;	       /* the port it is bound to, for default URLs */
	const char *state_dir; /* borrowed */
	const char *base_url;  /* borrowed; NULL: http://localhost:<port> */
	const char *wildcard;  /* borrowed; NULL: "*.localhost:<port>" */
	const char *tls_cert;  /* borrowed: PEM, NUL-terminated; NULL: plain HTTP */
	char *tls_key;	       /* borrowed: PEM, NUL-terminated; front_start() wipes it */
	size_t tls_key_size;
	bool drop_privileges; /* become uid/gid (granaryd started as root) */
	pid_t parent;	      /* the root parent, which front must not outlive */
	uid_t uid;
	gid_t gid;
	unsigned grain_idle_timeout; /* seconds: a grain unused this long is stopped */
};

struct front;

/* front.c */

/*
 * Start serving HTTP on config->listen_fd in a thread of libmicrohttpd's.
 * *ret is owned by the caller (front_free()).
 */
int front_start(const struct front_config *config, struct front **ret);

/*
 * The front process: lock down (unprivileged user, no capabilities,
 * NO_NEW_PRIVS, seccomp), serve until SIGTERM or SIGINT, stop cleanly.
 */
int front_main(const struct front_config *config);

/* Stop accepting, finish with open connections and free. Accepts NULL; returns NULL. */
struct front *front_free(struct front *f);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct front *, front_free)

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

/*
 * The admin socket: STATE/granaryd.sock, a listening unix socket only root
 * may connect to (mode 0600, and front checks the peer's uid as well).
 */
#define LOCAL_SOCKET_NAME "granaryd.sock"
int local_socket_path(const char *state_dir, char *buf, size_t size);
int local_socket_open(const char *state_dir, int *ret_fd);

/* The port a socket is bound to (the real one when 0 was asked for). */
int listen_socket_port(int fd, uint16_t *ret);

/* "127.0.0.1:6080" or "[::1]:6080" into buf. Returns buf. */
char *listen_address_format(const struct listen_address *a, uint16_t port, char *buf, size_t size);

/* config.c: the config file, flags, TLS files (docs/admin.md) */

#define CONFIG_FILE_MAX	 (64 * 1024)
#define CONFIG_VALUE_MAX 4096

/* Every setting; a NULL string or a negative log_level means "not set". */
struct granaryd_config {
	char *state;	/* owned */
	char *listen;	/* owned */
	char *base_url; /* owned */
	char *wildcard; /* owned */
	char *user;	/* owned */
	char *tls_cert; /* owned: the path */
	char *tls_key;	/* owned: the path */
	int log_level;	/* LOG_ERR..LOG_DEBUG */
	/* Grains (config_grain_settings() turns these into numbers, with the defaults). */
	char *grain_memory;	   /* owned: a size */
	char *grain_pids;	   /* owned: a number */
	char *grain_cpu;	   /* owned: CPUs, "0.5" */
	char *grain_tmp;	   /* owned: a size */
	char *grain_start_timeout; /* owned: a duration */
	char *grain_log_max;	   /* owned: a size */
	char *grain_idle_timeout;  /* owned: a duration */
	char *allow_no_limits;	   /* owned: a boolean */
};
#define GRANARYD_CONFIG_INIT                                                                       \
	{                                                                                          \
		.log_level = -1                                                                    \
	}

struct config_error {
	char message[768]; /* "FILE:LINE: key: expected ..." or "Invalid --flag 'v': ..." */
};

/*
 * Parse a config file's len bytes (from filename, named in errors) into c.
 * -EINVAL (-E2BIG, -ENOMEM) with err set on the first bad line; c may then
 * hold the lines before it: config_release() it either way.
 */
int config_parse(const char *text, size_t len, const char *filename, struct granaryd_config *c,
		 struct config_error *err);
/* Read and parse the file at path. */
int config_load(const char *path, struct granaryd_config *c, struct config_error *err);
/* Check and set one value given as a flag (key as in the file: "base_url"). */
int config_set(struct granaryd_config *c, const char *key, const char *value,
	       struct config_error *err);
/* Move every value set in from into into (flags over the file). */
void config_merge(struct granaryd_config *into, struct granaryd_config *from);
/* What no single value shows: TLS certificate without key, http base URL with TLS. */
int config_check(const struct granaryd_config *c, struct config_error *err);
void config_release(struct granaryd_config *c);

/* What every grain gets (docs/admin.md), with the limits the config keys accept. */
#define GRAIN_DEFAULT_MEMORY	       (256ULL << 20)
#define GRAIN_MEMORY_MIN	       (4ULL << 20)
#define GRAIN_MEMORY_MAX	       (1ULL << 40)
#define GRAIN_DEFAULT_PIDS	       256
#define GRAIN_PIDS_MAX		       4194304
#define GRAIN_DEFAULT_CPU	       1000 /* thousandths of a CPU */
#define GRAIN_CPU_MIN		       10
#define GRAIN_CPU_MAX		       4096000
#define GRAIN_DEFAULT_TMP	       (64ULL << 20)
#define GRAIN_TMP_MIN		       (1ULL << 20)
#define GRAIN_TMP_MAX		       (1ULL << 40)
#define GRAIN_DEFAULT_START_TIMEOUT_MS 30000
#define GRAIN_START_TIMEOUT_MIN_MS     100
#define GRAIN_START_TIMEOUT_MAX_MS     3600000 /* grain-init's own bound */
#define GRAIN_DEFAULT_LOG_MAX	       (1ULL << 20)
#define GRAIN_LOG_MAX_MIN	       4096 /* grain-init's own bound */
#define GRAIN_LOG_MAX_MAX	       (1ULL << 30)
#define GRAIN_DEFAULT_IDLE_TIMEOUT_MS  300000
#define GRAIN_IDLE_TIMEOUT_MIN_MS      1000
#define GRAIN_IDLE_TIMEOUT_MAX_MS      (30ULL * 24 * 3600 * 1000)

struct grain_settings {
	uint64_t memory;	   /* bytes, swap included */
	uint64_t pids;		   /* processes and threads */
	uint32_t cpu;		   /* thousandths of a CPU */
	uint64_t tmp;		   /* bytes of /tmp */
	uint64_t start_timeout_ms; /* the app must listen within this */
	uint64_t log_max;	   /* bytes of the grain log */
	uint64_t idle_timeout_ms;  /* front stops a grain unused this long */
	bool allow_no_limits;	   /* run grains where cgroup limits cannot be applied */
};

/* The grain settings of c, its defaults where unset. */
int config_grain_settings(const struct granaryd_config *c, struct grain_settings *ret);

/* Split base_url "http(s)://host[:port][/]" into origin and host (both owned); -EINVAL if malformed. */
int base_url_parse(const char *base_url, char **ret_origin, char **ret_host, bool *ret_tls);
/* "*.HOST[:PORT]" with a valid host name and port; -EINVAL otherwise. */
int wildcard_check(const char *wildcard);

struct tls_files {
	char *cert; /* owned: PEM, NUL-terminated */
	char *key;  /* owned: PEM, NUL-terminated; wiped by tls_files_release() */
	size_t key_size;
};

/*
 * Read the certificate and key files (as root: the key is usually 0600) and
 * make sure libmicrohttpd accepts them as a pair. Release *ret with
 * tls_files_release().
 */
int tls_load(const char *cert_path, const char *key_path, struct tls_files *ret,
	     struct config_error *err);
void tls_files_release(struct tls_files *t);

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
/* A write transaction: db_begin(), then db_end(db, r) commits if r >= 0, else rolls back. */
int db_begin(struct db *db);
int db_end(struct db *db, int r);

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
/* The current package of app_id; ret->manifest as db_package_get(). -ENOENT: no such app. */
int db_app_get(struct db *db, const char *app_id, struct db_package *ret);
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
/* Grains put in the trash at or before the time before, oldest first. */
int db_grain_list_trashed(struct db *db, int64_t before,
			  int (*callback)(const struct db_grain *g, void *userdata),
			  void *userdata);
int db_grain_rename(struct db *db, const char *id, const char *title);
/* now == 0 restores from the trash. */
int db_grain_trash(struct db *db, const char *id, int64_t now);
int db_grain_delete(struct db *db, const char *id);
int db_grain_count(struct db *db, int64_t *ret);
/* last_used_at = now. */
int db_grain_touch(struct db *db, const char *id, int64_t now);
/* The grain now runs package_id (its app was updated since it last ran). */
int db_grain_set_package(struct db *db, const char *id, const char *package_id);

#define GRAIN_PERMISSIONS_MAX 1024 /* bytes of a permissions JSON array */

/* A grain session (a ui-<hex> host), with what serving it needs. */
struct db_grain_session {
	char grain_id[GRAIN_ID_LEN + 1];
	int64_t user_id; /* 0: anonymous */
	char username[USER_NAME_MAX + 1];
	int64_t capability_id; /* the edge it came from: what it grants is computed from there */
	int64_t expires_at;
	uint8_t enter_hash[32]; /* of its one-time key (written once, by _add()) */
	/* Read only (joined): */
	char package_id[PACKAGE_ID_LEN + 1]; /* the app's current package */
	int64_t trashed_at;		     /* the grain's; 0: not in the trash */
	int64_t owner_id;
	bool entered;		 /* its cookie is set: */
	uint8_t cookie_hash[32]; /* the cookie's hash */
};

/* Add a session under host_hash (BLAKE2b-256 of the host's hex label). */
int db_grain_session_add(struct db *db, const uint8_t host_hash[32],
			 const struct db_grain_session *gs, int64_t now);
/* The unexpired session of host_hash; -ENOENT when none. */
int db_grain_session_get(struct db *db, const uint8_t host_hash[32], int64_t now,
			 struct db_grain_session *ret);
int db_grain_session_touch(struct db *db, const uint8_t host_hash[32], int64_t expires_at);
/*
 * Enter the session of host_hash with the one-time key of enter_hash, if it
 * was made after created_after and is alive at now: its key is used up, its
 * cookie's hash is cookie_hash from now on. -ENOENT: no such session, key
 * used or expired.
 */
int db_grain_session_enter(struct db *db, const uint8_t host_hash[32], const uint8_t enter_hash[32],
			   const uint8_t cookie_hash[32], int64_t created_after, int64_t now);
int db_grain_session_purge(struct db *db, int64_t now);
/* The server-wide secret called name (size bytes), made on first use. */
int db_secret(struct db *db, const char *name, uint8_t *ret, size_t size);

int db_audit_add(struct db *db, int64_t now, const char *grain_id, int64_t user_id,
		 const char *action, const char *detail_json);

/* One audit row, as db_audit_list() hands it out (valid during the call). */
struct db_audit {
	int64_t at;
	const char *user; /* name, or NULL: anonymous or nobody */
	const char *action;
	const char *detail; /* JSON text, or NULL */
};
/* A grain's audit rows before the time before (0: any), newest first, at most limit. */
int db_audit_list(struct db *db, const char *grain_id, int64_t before, unsigned limit,
		  int (*callback)(const struct db_audit *a, void *userdata), void *userdata);

/* ---- capabilities: the edges of a grain's sharing tree (caps.c, docs/sharing.md) ---- */

enum cap_kind {
	CAP_OWNER, /* the root: the grain's owner */
	CAP_LINK,  /* a share link (/s/<token>) */
	CAP_GRANT, /* a person's, made when they opened a link signed in */
	CAP_TOKEN, /* an API token */
};

#define CAP_LABEL_MAX 200
#define CAP_ROLE_MAX  32

struct db_cap {
	int64_t id;
	int64_t parent_id; /* 0: none (the owner's edge) */
	char grain_id[GRAIN_ID_LEN + 1];
	enum cap_kind kind;
	int64_t holder_id; /* owner, grant, token: who holds it; 0: a link */
	int64_t created_by;
	char role[CAP_ROLE_MAX + 1];		 /* "" for the owner's */
	char permissions[GRAIN_PERMISSIONS_MAX]; /* JSON array: the role's, when set */
	char label[CAP_LABEL_MAX + 1];
	bool read_only, login_required, reshare;
	int64_t expires_at, revoked_at, created_at; /* 0: none */
	/* Read only (joined): */
	char holder_name[USER_NAME_MAX + 1];
	char created_by_name[USER_NAME_MAX + 1];
};

/* Add an edge (token_hash: BLAKE2b-256 of a link's or token's secret, else NULL). */
int db_cap_add(struct db *db, const struct db_cap *c, const uint8_t *token_hash, int64_t *ret_id);
int db_cap_get(struct db *db, int64_t id, struct db_cap *ret);
/* The edge of a link or token by its hash; -ENOENT: none (revoked ones too are returned). */
int db_cap_by_token(struct db *db, const uint8_t token_hash[32], struct db_cap *ret);
/* The grant holder_id got from the link parent_id; -ENOENT: none yet. */
int db_cap_grant_find(struct db *db, int64_t parent_id, int64_t holder_id, struct db_cap *ret);
/* Every edge of a grain, oldest first (c is valid during the call). */
int db_cap_list(struct db *db, const char *grain_id,
		int (*callback)(const struct db_cap *c, void *userdata), void *userdata);
/* The unrevoked edges user_id holds on grain_id (owner and grants), oldest first. */
int db_cap_held(struct db *db, const char *grain_id, int64_t user_id,
		int (*callback)(const struct db_cap *c, void *userdata), void *userdata);
/* Sets revoked_at unless already revoked. */
int db_cap_revoke(struct db *db, int64_t id, int64_t now);
int db_cap_set_role(struct db *db, int64_t id, const char *role, const char *permissions_json,
		    bool read_only);
/* Edges whose expiry passed at now and was not yet handed out here; each marked noted. */
int db_cap_expired(struct db *db, int64_t now,
		   int (*callback)(const struct db_cap *c, void *userdata), void *userdata);
/* Grains (not in the trash) where user_id holds an unrevoked grant, newest first. */
int db_grain_list_shared(struct db *db, int64_t user_id,
			 int (*callback)(const struct db_grain *g, void *userdata), void *userdata);

/* caps.c: what an edge grants (docs/sharing.md) */

#define GRAIN_PERMS_MAX 32 /* the manifest's bound */
#define GRAIN_ROLES_MAX 16
#define CAP_DEPTH_MAX	32 /* edges from a share to the owner, at most */

struct grain_role {
	char name[CAP_ROLE_MAX + 1];
	uint32_t mask; /* bit i: the manifest's permissions[i] */
	bool read_only, is_default;
};

/* An app's permissions and roles (two implicit ones when it has none). */
struct grain_roles {
	size_t n_perms, n_roles;
	char perms[GRAIN_PERMS_MAX][CAP_ROLE_MAX + 1];
	struct grain_role roles[GRAIN_ROLES_MAX];
};

/* What an edge grants now. */
struct cap_access {
	bool active;	/* not revoked or expired, nor any edge above it */
	bool read_only; /* it or an edge above it is */
	bool reshare;	/* it and every edge above it may be passed on */
	uint32_t mask;	/* permissions (0 when inactive) */
	int64_t until;	/* the first expiry along the chain; 0: none */
	unsigned depth; /* edges from it to the owner's, both counted */
};

int grain_roles_parse(const char *manifest_json, struct grain_roles *ret);
/* The roles of app_id's current package. */
int grain_roles_load(struct db *db, const char *app_id, struct grain_roles *ret);
uint32_t grain_perms_all(const struct grain_roles *roles);
/* The role called name; NULL name: the default role. NULL: no such role. */
const struct grain_role *grain_role_find(const struct grain_roles *roles, const char *name);
/* A JSON array text of names → mask (names the app does not have are dropped). */
uint32_t grain_perms_mask(const struct grain_roles *roles, const char *json_text);
json_t *grain_perms_json(const struct grain_roles *roles, uint32_t mask);
/* mask → "read,write" (X-Granary-Permissions). */
void grain_perms_list(const struct grain_roles *roles, uint32_t mask, char *out, size_t size);
/* Where cap_access_step() starts: nothing taken away yet. */
#define CAP_ACCESS_ROOT ((struct cap_access){ .active = true, .mask = UINT32_MAX, .reshare = true })
/*
 * The one rule of attenuation, for one edge c at now: a becomes what c
 * grants given that a is what the rest of its chain grants (the edges above
 * it, or below: the rule is the same in either order). Apply to every edge
 * from CAP_ACCESS_ROOT, then cap_access_settle().
 */
void cap_access_step(const struct grain_roles *roles, const struct db_cap *c, int64_t now,
		     struct cap_access *a);
/* An inactive chain grants nothing at all (its depth stays). */
void cap_access_settle(struct cap_access *a);
/*
 * What edge id grants at now, walking up to the owner's edge; ret_edge (may
 * be NULL) gets the edge itself. -ENOENT: no such edge; -ELOOP: deeper than
 * CAP_DEPTH_MAX; -EBADMSG: a broken chain.
 */
int cap_access(struct db *db, const struct grain_roles *roles, int64_t id, int64_t now,
	       struct db_cap *ret_edge, struct cap_access *ret);
/*
 * The best active edge user_id holds on grain_id (via > 0: that one only):
 * most permissions, then writable, then oldest. -ENOENT: none.
 */
int cap_best_held(struct db *db, const struct grain_roles *roles, const char *grain_id,
		  int64_t user_id, int64_t via, int64_t now, int64_t *ret_id,
		  struct cap_access *ret);

/* auth.c: accounts, sessions, login throttling */

#define PASSWORD_MIN		8
#define PASSWORD_MAX		1024
#define SESSION_LIFETIME	(14 * 24 * 3600) /* seconds, sliding */
#define LOGIN_THROTTLE_FAILURES 10		 /* per address and per name... */
#define LOGIN_THROTTLE_WINDOW	300		 /* ...in this many seconds */
#define BAD_TOKENS_MAX		20		 /* per address in that window */

/* 1-64 of [a-z0-9._-], starting with a letter or digit. -EINVAL otherwise. */
int user_name_check(const char *name);
/* -EINVAL: shorter than PASSWORD_MIN; -E2BIG: longer than PASSWORD_MAX. */
int password_check(const char *password);
/* argon2id hash string of password into ret. */
int password_hash(const char *password, char ret[PASSWORD_HASH_MAX + 1]);
/* 0 when password matches hash, -EACCES otherwise. */
int password_verify(const char *hash, const char *password);

/* A new session for user_id; the token (for the cookie) goes to ret_token. */
int session_create(struct db *db, int64_t user_id, int64_t now,
		   char ret_token[TOKEN_STRING_LEN + 1]);
/* The user of a session token; -ENOENT for no, expired or malformed sessions. */
int session_lookup(struct db *db, const char *token, int64_t now, struct db_user *ret_user);
int session_end(struct db *db, const char *token);
/* End every session of user_id except keep_token's (may be NULL). */
int session_end_others(struct db *db, int64_t user_id, const char *keep_token);

/* -EAGAIN (and seconds to wait) when address or name failed too often lately. */
int login_throttled(const char *address, const char *name, int64_t now, int64_t *ret_retry_after);
/* Share links and API tokens that did not work, per address: -EAGAIN past BAD_TOKENS_MAX. */
int bad_tokens_throttled(const char *address, int64_t now, int64_t *ret_retry_after);
void bad_token_seen(const char *address, int64_t now);
void login_failed(const char *address, const char *name, int64_t now);
void login_throttle_reset(void);

/* front.c and front_api.c: requests, responses, routes */

#include "common/buf.h"
#include "common/json-util.h"

/* The shell's session cookie (host-only; __Host- under TLS). Never forwarded to apps. */
#define SESSION_COOKIE	   "granary_session"
#define SESSION_COOKIE_TLS "__Host-granary_session"
/* A grain session's cookie (its host only; __Host- under TLS). Never forwarded to apps. */
#define GRAIN_COOKIE	   "granary_grain"
#define GRAIN_COOKIE_TLS   "__Host-granary_grain"
/* Where a grain session is entered, on its own host (docs/api.md "Grain sessions"). */
#define GRAIN_ENTER_PATH   "/.granary/enter"

struct session_cache;

struct front {
	struct MHD_Daemon *daemon; /* owned */
	struct MHD_Daemon *local;  /* owned: the same API on the admin socket, for root */
	struct loop *loop;	   /* owned: serves plain HTTP (front_loop.c); NULL with TLS */
	int listen_fd;		   /* owned: the loop's listening socket, or -EBADF */
	pthread_mutex_t lock;	   /* taken by every libmicrohttpd callback */
	uid_t admin_uid;	   /* besides root, who may use the admin socket */
	int launcher_fd;	   /* borrowed */
	struct launcher_client *launcher; /* owned */
	struct grain_manager *grains;	  /* owned */
	struct session_cache *sessions;	  /* owned */
	char *wildcard_suffix;		  /* owned: "localhost:6080" of "*.localhost:6080" */
	uint8_t user_id_key[32];	  /* keys the per-grain user ids (db_secret()) */
	uint64_t caps_generation;	  /* atomic: bumped by every change of any sharing */
	int packages_fd;		  /* owned: STATE/packages, opened when first needed */
	struct db *db;			  /* owned */
	char *state_dir;		  /* owned */
	char *origin;	  /* owned: "http://localhost:6080", what Origin must equal */
	char *shell_host; /* owned: "localhost:6080", what Host must equal */
	bool tls;
	char setup_token[TOKEN_STRING_LEN + 1]; /* "" once a user exists */
	int64_t housekeeping_at;		/* when front_housekeeping() ran last */
	pthread_t housekeeper;			/* runs it, and shares_expire() */
	pthread_cond_t housekeeper_wake;	/* with lock: stopping */
	bool housekeeper_running, stopping;
	int64_t started_at;
	struct {
		uint64_t requests, errors_4xx, errors_5xx;
		uint64_t logins, login_failures, installs;
		uint64_t proxied; /* requests on grain session hosts (atomic: no lock) */
	} metrics;
};

#define BODY_LIMIT	       (64 * 1024) /* largest JSON body a ROUTE_BODY route collects */
#define UPLOAD_LIMIT	       (UINT64_C(2) << 30) /* largest upload (an spk's own budget) */
#define TRASH_KEEP	       (30 * 24 * 3600)	   /* seconds a grain stays in the trash */
#define SHARES_EXPIRY_INTERVAL 5	 /* seconds between looks for shares that expired */
#define HOUSEKEEPING_INTERVAL  (10 * 60) /* seconds between trash purges */

enum route_flags {
	ROUTE_API = 1 << 0,    /* under /api/: JSON answers, Origin checked for unsafe methods */
	ROUTE_BODY = 1 << 1,   /* collects a JSON body (up to 64 KiB) */
	ROUTE_USER = 1 << 2,   /* needs a signed-in user */
	ROUTE_ADMIN = 1 << 3,  /* needs an admin */
	ROUTE_PARAM = 1 << 4,  /* path is a prefix followed by one id segment */
	ROUTE_UPLOAD = 1 << 5, /* streams its body to a file (up to UPLOAD_LIMIT) */
	ROUTE_PARAM2 = 1 << 7, /* ROUTE_PARAM, then suffix, then a second id segment */
	ROUTE_REST = 1 << 8, /* path is a prefix; whatever follows is param (the handler checks) */
	ROUTE_ANY_HOST = 1 << 6, /* served whatever the Host (monitors ask by address) */
};

struct request;

struct route {
	const char *method;
	const char *path;
	enum route_flags flags;
	int (*handler)(struct request *req);
	const char *suffix; /* ROUTE_PARAM: what follows the id segment ("/open"), NULL: nothing */
};

struct response_header {
	const char *name; /* static */
	char value[256];
};

struct request {
	struct front *front;
	struct MHD_Connection *connection;
	const char *method, *url; /* borrowed from libmicrohttpd, valid for the request */
	const char *raw_url;	  /* borrowed: the request-target as sent (url is decoded) */
	const struct route *route;
	char param[128];  /* the id segment of a ROUTE_PARAM path */
	char param2[32];  /* the second one of a ROUTE_PARAM2 path */
	char address[64]; /* client address, for throttling and logs */
	char allow[64];	  /* methods the path allows, when method_not_allowed */
	struct buf body;  /* owned: the collected body */
	int upload_fd;	  /* owned: the unnamed file of a ROUTE_UPLOAD body, or -EBADF */
	uint64_t upload_size;
	int upload_errno; /* storing the upload failed with this */
	bool upload_checked;
	json_t *json; /* owned: the parsed body of ROUTE_BODY routes */
	uint64_t discarded;
	bool unknown_host, method_not_allowed, body_too_large, responded;
	unsigned status;
	size_t response_size;
	struct db_user user; /* valid when has_user */
	bool has_user;
	bool local; /* came over the admin socket from root: an admin, no Host/Origin rules */
	const char *session_token; /* borrowed: the cookie, when has_user */
	struct response_header extra_headers[4];
	size_t n_extra_headers;
};

enum respond_flags {
	RESPOND_STATIC = 1 << 0, /* body outlives the response: no copy */
	RESPOND_TAKE = 1 << 1,	 /* body is malloc()ed and becomes the response's (even on error) */
};

int64_t now_seconds(void);
/* Queue the one response of req. Extra headers set by respond_header() are added. */
int respond(struct request *req, unsigned status, const char *content_type, const char *body,
	    size_t len, enum respond_flags flags);
int respond_header(struct request *req, const char *name, const char *format, ...) _printf_(3, 4);
/* Takes the reference to value (NULL: -ENOMEM). */
int respond_json(struct request *req, unsigned status, json_t *value);
/* {"error": {"code": code, "message": ...}} */
int respond_error(struct request *req, unsigned status, const char *code, const char *format, ...)
	_printf_(4, 5);
/* 400 bad_request: JSON that parsed, with fields json_dispatch() refused (err says which). */
int respond_bad_fields(struct request *req, const struct json_error *err);
int respond_empty(struct request *req, unsigned status);
const char *request_header(struct request *req, const char *name);
const char *request_cookie(struct request *req, const char *name);

/* front_api.c */

/*
 * Set req->route (and req->param for a ROUTE_PARAM route) from its method and
 * URL; for a known path with another method, set req->method_not_allowed and
 * req->allow instead.
 */
void route_find(struct request *req);
/*
 * The session (and admin bit) a ROUTE_USER or ROUTE_ADMIN route needs: 0 when
 * present, else < 0, after queueing the refusal if respond.
 */
int route_authorize(struct request *req, bool respond);
/* Authenticate, parse the body, run the handler. */
int route_run(struct request *req);
/*
 * What runs now and then rather than per request: packages without a row
 * (left by a crash between unpack and commit) deleted, trashed grains past
 * TRASH_KEEP purged. At start, then at most every HOUSEKEEPING_INTERVAL.
 */
int front_housekeeping(struct front *f);

/* front_shares.c: sharing (docs/sharing.md) */

/* A grain as the caller holds it. */
struct held_grain {
	struct db_grain g;
	struct db_user actor; /* the caller; the owner for root on the admin socket */
	bool owner;
	struct grain_roles roles;
	int64_t cap_id; /* the edge they act through (their best, or via) */
	struct cap_access access;
};

/*
 * The grain of the path, if the caller holds it (through via > 0 only):
 * else 404 no_such_grain, like a grain that does not exist. 1: answered.
 */
int held_grain(struct request *req, int64_t via, struct held_grain *h);
/* {"owner":…, "role":…, "permissions":[…], "readOnly":…, "via":…} */
json_t *held_access_json(const struct held_grain *h);
/*
 * Audit the edges that expired since the last call, and let their sessions
 * know (f->lock held; front.c's housekeeping thread calls it).
 */
int shares_expire(struct front *f);
/* The routes of front_shares.c, ended by an empty one. */
extern const struct route share_routes[];

/* front_grains.c: the grain manager (start on demand, pooled connections, idle stop) */

#define GRAIN_IDLE_TIMEOUT_DEFAULT 300 /* seconds */

struct grain_manager;
struct grain_run;
struct launcher_client;

/* Start the manager's thread. launcher is borrowed. *ret: grain_manager_free(). */
int grain_manager_new(struct launcher_client *launcher, unsigned idle_timeout,
		      struct grain_manager **ret);
/* Stop the thread, close every control socket (which stops the grains). Accepts NULL. */
struct grain_manager *grain_manager_free(struct grain_manager *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct grain_manager *, grain_manager_free);
/*
 * The grain id, known from now on; its next start runs package_id. The
 * reference is the caller's (grain_run_unref()); NULL: out of memory.
 */
struct grain_run *grain_manager_get(struct grain_manager *m, const char *id,
				    const char *package_id);
struct grain_run *grain_run_unref(struct grain_manager *m, struct grain_run *run);
/*
 * A connection to the grain's app, starting the grain first when needed
 * (blocks until it answers or fails). *ret_fd is the caller's until
 * grain_release(); *ret_reused: it came from the pool. On failure error says
 * what went wrong for a person ("It could not start: ...").
 */
int grain_acquire(struct grain_manager *m, struct grain_run *run, int *ret_fd, bool *ret_reused,
		  uint64_t *ret_generation, char *error, size_t error_size);
/*
 * A pooled connection of a running grain, without waiting: 0, or -EWOULDBLOCK
 * when grain_acquire() would have to (start the grain, ask for a connection).
 * Released like grain_acquire()'s.
 */
int grain_acquire_nowait(struct grain_manager *m, struct grain_run *run, int *ret_fd,
			 bool *ret_watched, uint64_t *ret_generation);
/* Give back a connection of grain_acquire(): pooled when reusable, else closed. */
void grain_release(struct grain_manager *m, struct grain_run *run, int fd, bool reusable,
		   uint64_t generation);
/* The same, with what grain_acquire_nowait() says next (PROXY_FD_WATCHED: watched). */
void grain_release_watched(struct grain_manager *m, struct grain_run *run, int fd, bool reusable,
			   bool watched, uint64_t generation);
/*
 * Stop the grain: its control socket closed (grain-init stops the app), and
 * with kill the launcher makes sure it is dead before this returns. 1 when it
 * was running.
 */
int grain_manager_stop(struct grain_manager *m, const char *id, bool kill);

/*
 * Stop every grain (their apps get SIGTERM): connections out see the apps
 * go and end, so requests in flight finish before front waits for them.
 */
void grain_manager_stop_all(struct grain_manager *m);

struct grain_status {
	bool running, starting;
	uint64_t generation; /* of the current run: a new start changes it */
	unsigned connections, idle_connections;
	int64_t started_at; /* Unix seconds, when running */
	unsigned crashes;   /* in a row */
	char error[256];    /* why it last failed or died, "" none */
};

void grain_manager_status(struct grain_manager *m, const char *id, struct grain_status *ret);
void grain_manager_counts(struct grain_manager *m, unsigned *ret_running, unsigned *ret_known);

/* front_sessions.c: grain sessions (ui-<hex> hosts) and proxied requests */

struct grain_session;
struct grain_exchange;

int session_cache_new(struct session_cache **ret);
struct session_cache *session_cache_free(struct session_cache *c);
/* Drop the cached sessions of a grain (deleted, trashed, its sharing changed). */
void session_cache_forget_grain(struct session_cache *c, const char *grain_id);
/*
 * A grain's sharing changed (f->lock held): every session re-checks its edge
 * on its next request, and the open ones whose access changed are cut (their
 * WebSockets close within a second).
 */
void session_cache_recheck_grain(struct front *f, const char *grain_id);
/* The label (32 hex) when host is "ui-<label>.<wildcard>", else NULL. Points into host. */
const char *session_host_label(struct front *f, const char *host);
struct grain_session *session_unref(struct front *f, struct grain_session *s);
/*
 * A new session on grain g through the edge cap_id, of user (NULL: anonymous)
 * (f->lock held; the caller checked the edge grants access): *ret_url (the
 * caller's to free) is where it is served; ret_session_id gets its public id
 * (33 bytes).
 */
int session_open(struct front *f, const struct db_grain *g, const struct db_user *user,
		 int64_t cap_id, char **ret_url, char *ret_session_id);
/* Is host api.<wildcard>, where API tokens are served? */
bool api_host(struct front *f, const char *host);
/* Format a peer's address (for throttling) into buf. */
void address_format(const struct sockaddr *sa, char *buf, size_t size);
/*
 * One request on the API host, with its Authorization field (may be NULL)
 * from address. NULL: out of memory.
 */
struct grain_exchange *grain_exchange_new_api(struct front *f, const char *authorization,
					      const char *host, const char *address);
/*
 * One request on a session host (label), from its first handler call, with
 * its request-target as sent: its session when its cookie is the session's,
 * or an answer of ours (entering it, refusing it). NULL: out of memory.
 */
struct grain_exchange *grain_exchange_new(struct front *f, struct MHD_Connection *connection,
					  const char *label, const char *host, const char *target,
					  const char *method);
enum MHD_Result grain_exchange_handle(struct grain_exchange *x, struct MHD_Connection *connection,
				      const char *raw_uri, const char *method, const char *version,
				      const char *upload_data, size_t *upload_data_size);
struct grain_exchange *grain_exchange_free(struct grain_exchange *x,
					   enum MHD_RequestTerminationCode toe);
struct loop_route;
struct http_request_head;
/*
 * The event loop's route of a request (loop_ops.route, f its userdata): an
 * exchange with the grain of the session its Host names, or a page (421 for
 * a host that is not a session's, 404 expired, 410 trashed). Without
 * may_block, -EWOULDBLOCK when the database must be asked.
 */
int grain_route(struct front *f, const struct http_request_head *head, const char *address,
		bool may_block, struct loop_route *ret);
void grain_route_done(struct front *f, struct loop_route *route);

/* ipc.c: front ↔ launcher messages (docs/IPC.md) */

#define IPC_PROTOCOL	1
#define IPC_MESSAGE_MAX 4096
#define IPC_FDS_MAX	2

enum ipc_type {
	/* front → launcher */
	IPC_PING = 1,
	IPC_GRAIN_STORAGE_CREATE,
	IPC_GRAIN_STORAGE_DELETE,
	/* launcher → front */
	IPC_PONG,
	IPC_OK,
	IPC_ERROR,
	IPC_PACKAGE_INSTALL,   /* front → launcher, with the uploaded file */
	IPC_PACKAGE_DELETE,    /* front → launcher */
	IPC_PACKAGE_INSTALLED, /* launcher → front */
	IPC_GRAIN_START,       /* front → launcher: struct ipc_grain_start */
	IPC_GRAIN_STARTED,     /* launcher → front, with the grain's control socket */
	IPC_GRAIN_STOP,	       /* front → launcher: struct ipc_grain; OK once nothing is left */
	IPC_GRAIN_STATUS,      /* front → launcher: struct ipc_grain */
	IPC_GRAIN_STATS,       /* launcher → front */
	IPC_GRAIN_LOG_OPEN, /* front → launcher: struct ipc_grain; OK with the log, read-only */
	_IPC_TYPE_MAX,
};

enum ipc_direction {
	IPC_TO_LAUNCHER,
	IPC_TO_FRONT,
};

struct ipc_header {
	uint32_t type;	 /* enum ipc_type */
	uint32_t id;	 /* chosen by the sender of a request, echoed in the reply */
	uint32_t length; /* payload bytes after this header */
};

struct ipc_grain {
	char grain_id[GRAIN_ID_LEN]; /* lowercase hex, no NUL */
};

struct ipc_pong {
	uint32_t pid;
	uint32_t protocol;
};

struct ipc_error {
	int32_t error;	   /* a positive errno */
	char message[512]; /* NUL-terminated */
};

struct ipc_package {
	char package_id[PACKAGE_ID_LEN]; /* lowercase hex, no NUL */
};

struct ipc_package_installed {
	char package_id[PACKAGE_ID_LEN]; /* lowercase hex, no NUL */
	char app_id[52];		 /* base32 of the key (SPK_APP_ID_LEN), no NUL */
	uint32_t existed;		 /* 1: these bytes were unpacked before */
};

struct ipc_grain_start {
	char grain_id[GRAIN_ID_LEN];	 /* lowercase hex, no NUL */
	char package_id[PACKAGE_ID_LEN]; /* lowercase hex, no NUL */
};

struct ipc_grain_started {
	uint32_t pid;  /* grain-init's pid on the host */
	uint32_t uid;  /* the host uid the grain runs as */
	uint32_t port; /* the app's port inside the grain (the manifest's httpPort) */
};

struct ipc_grain_stats {
	uint32_t running;      /* 1: the launcher runs it; the rest is 0 otherwise */
	uint32_t pid;	       /* grain-init's pid on the host */
	uint64_t memory_bytes; /* the grain's cgroup's current memory use; 0 when unknown */
	uint64_t cpu_usec;     /* CPU time used by the grain so far; 0 when unknown */
	int64_t started_at;    /* seconds since the epoch */
};

struct ipc_message {
	struct ipc_header header;
	union {
		struct ipc_grain grain;
		struct ipc_pong pong;
		struct ipc_error error;
		struct ipc_package package;
		struct ipc_package_installed installed;
		struct ipc_grain_start start;
		struct ipc_grain_started started;
		struct ipc_grain_stats stats;
	} payload;
	int fds[IPC_FDS_MAX]; /* owned by the receiver */
	unsigned n_fds;
};

const char *ipc_type_name(uint32_t type);
/*
 * Check and copy one received datagram of len bytes that came with n_fds
 * descriptors. -EBADMSG unless it is exactly one well-formed message of a type
 * that travels in direction.
 */
int ipc_decode(const uint8_t *buf, size_t len, unsigned n_fds, enum ipc_direction direction,
	       struct ipc_message *ret);
int ipc_send(int fd, uint32_t type, uint32_t id, const void *payload, size_t payload_size);
/* The same with pass_fd (>= 0) attached (SCM_RIGHTS). */
int ipc_send_fd(int fd, uint32_t type, uint32_t id, const void *payload, size_t payload_size,
		int pass_fd);
/* One message; -ECONNRESET when the peer closed, -EBADMSG when malformed. */
int ipc_receive(int fd, enum ipc_direction direction, struct ipc_message *ret);
/*
 * Send a request and wait for its reply; an IPC_ERROR reply returns its -errno.
 * One call at a time on fd (tests, single-threaded tools); front uses
 * launcher_call() (launcher-client.c), which allows many.
 */
int ipc_call(int fd, uint32_t type, const void *payload, size_t payload_size,
	     struct ipc_message *ret_reply);
int ipc_call_fd(int fd, uint32_t type, const void *payload, size_t payload_size, int pass_fd,
		struct ipc_message *ret_reply);

/* launcher-client.c: front's calls to the launcher, from any thread */

struct launcher_client; /* thread-safe; several calls may be in flight */

/* A client on fd (borrowed: the caller closes it after launcher_client_free()). */
int launcher_client_new(int fd, struct launcher_client **ret);
/* No call may be in flight. Accepts NULL; returns NULL. */
struct launcher_client *launcher_client_free(struct launcher_client *c);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct launcher_client *, launcher_client_free)
/*
 * Send a request (with pass_fd attached when >= 0) and wait for ITS answer,
 * matched by id, while other threads' calls go on. 0 with the answer in
 * *ret_reply; an IPC_ERROR answer returns its -errno with the message in
 * ret_reply->payload.error. Descriptors received (ret_reply->fds) are the
 * caller's. -ECONNRESET when the launcher is gone (every waiter wakes);
 * -EBADMSG for an answer that is malformed or not one this request can
 * get; -EINVAL for a type the launcher does not take.
 */
int launcher_call(struct launcher_client *c, uint32_t type, const void *payload, size_t size,
		  int pass_fd, struct ipc_message *ret_reply);
/* launcher_call() of a message whose payload is one grain id (struct ipc_grain). */
int launcher_grain_call(struct launcher_client *c, uint32_t type, const char *grain_id,
			struct ipc_message *ret_reply);
/*
 * The last (at most) max bytes of the grain's log: *ret (the caller's to
 * free, NUL-terminated) and *ret_len. An empty text when it has no log yet.
 */
int launcher_grain_log_tail(struct launcher_client *c, const char *grain_id, size_t max, char **ret,
			    size_t *ret_len);

/* lockdown.c */

enum lockdown_flags {
	LOCKDOWN_NO_SOCKETS = 1 << 0, /* no socket() or socketpair() at all */
};

/* Load the seccomp denylist of granaryd's processes (NO_NEW_PRIVS must be set). */
int lockdown_seccomp(enum lockdown_flags flags);

/* install.c: unpacking packages into STATE/packages (root) */

struct package_install_result {
	int32_t error;	  /* 0, or the -errno of the failure (spk.h lists them) */
	uint32_t existed; /* 1: these bytes were unpacked before (a crash kept the row) */
	char package_id[PACKAGE_ID_LEN + 1];
	char app_id[APP_ID_MAX + 1];
	char message[512]; /* for a person, when error != 0 */
};

/* granary-installer's descriptors (installer.c) */
#define INSTALLER_SPK_FD      3
#define INSTALLER_RESULT_FD   4
#define INSTALLER_PACKAGES_FD 5

/* A helper program: beside our own executable, else in GRANARY_LIBEXECDIR. */
int libexec_find(const char *name, char *buf, size_t size);
/*
 * Verify the spk in spk_fd and unpack it into packages_fd/<package-id> with
 * the granary-installer at path installer, in its own namespaces (install.c says how). Returns
 * -errno when the installer could not run; otherwise 0 with the outcome in *ret.
 */
int package_install(const char *installer, int packages_fd, int spk_fd,
		    struct package_install_result *ret);

/* The same in two steps, for the launcher's event loop: an installer running. */
struct package_install;
/*
 * Start the installer (spk_fd is only read by it; the caller may close its
 * copy now). -EBADF: spk_fd is not a regular file. *ret is the caller's:
 * package_install_finish() it once package_install_pidfd() is readable, then
 * package_install_free() it.
 */
int package_install_start(const char *installer, int packages_fd, int spk_fd,
			  struct package_install **ret);
/* Readable (POLLIN) when the installer has exited. Owned by i. */
int package_install_pidfd(const struct package_install *i);
/* Read the result and reap (blocks until the installer exits). 0 with the outcome in *ret. */
int package_install_finish(struct package_install *i, struct package_install_result *ret);
/* Kill the installer if it still runs, reap, free. Accepts NULL; returns NULL. */
struct package_install *package_install_free(struct package_install *i);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct package_install *, package_install_free)
/* 64 lowercase hex characters. */
bool package_id_valid(const char *id);
/* Remove packages_fd/<id> without following symlinks. -EINVAL for a bad id. */
int package_delete(int packages_fd, const char *id);
/* Remove what killed installs left (".spk-unpack-*"). */
int package_sweep(int packages_fd);

/* apps.c: recording an unpacked package (front, and the CLI when the daemon is down) */

enum app_register_outcome {
	APP_INSTALLED,	       /* a new app */
	APP_UPDATED,	       /* a new version of an installed app */
	APP_ALREADY_INSTALLED, /* this very package was installed */
};

struct app_register_result {
	enum app_register_outcome outcome;
	const char *outcome_name; /* "installed", "updated", "unchanged" (app_install_finish()) */
	char message[600];	  /* for a person, on -EBADMSG and -ESTALE */
};

/*
 * Everything after the unpack: read and check the unpacked manifest, add the
 * package's row and make it its app's current version, audit, and the API's
 * answer {"app": ..., "outcome": ...} in *ret_answer. On failure discard()
 * gets the package's files (unless they were there before the install);
 * -ESTALE: older than the installed version; -EBADMSG: the unpacked
 * manifest is not valid (ret->message says so for both).
 */
int app_install_finish(struct db *db, int packages_fd,
		       const struct package_install_result *installed, uint64_t file_size,
		       int64_t installed_by,
		       void (*discard)(const char *package_id, void *userdata), void *userdata,
		       struct app_register_result *ret, json_t **ret_answer);

/*
 * Remove app_id's rows (db_app_remove(): -ENOENT, -EBUSY), then hand each of
 * its package ids to discard() to delete the files, and audit it.
 */
int app_remove(struct db *db, const char *app_id, int64_t removed_by,
	       void (*discard)(const char *package_id, void *userdata), void *userdata);

/* The JSON objects of the API (docs/api.md) and of `granary --json`. */
json_t *user_json(const struct db_user *u);
json_t *package_json(const struct db_package *p, bool with_manifest);
json_t *grain_json(const struct db_grain *g);

/*
 * A new grain of app_id's current package for owner_id: storage (through
 * storage(), create true; false undoes it) first, then its row and the
 * owner's capability. -ENOENT: no such app. *ret: the new grain.
 */
int grain_create(struct db *db, const char *app_id, int64_t owner_id, const char *title,
		 int64_t created_by,
		 int (*storage)(const char *grain_id, bool create, void *userdata), void *userdata,
		 struct db_grain *ret);

/* launcher.c */

struct launcher_config {
	int fd;			     /* the connection to front (borrowed) */
	const char *state_dir;	     /* borrowed */
	const char *installer;	     /* borrowed: the granary-installer program */
	const char *grain_init;	     /* borrowed: the grain-init program, loaded once at start */
	struct grain_settings grain; /* limits and timeouts of every grain */
	const char *cgroup_root;     /* borrowed; NULL: /sys/fs/cgroup (tests point it elsewhere) */
};

/*
 * The launcher process: sweep what a previous launcher's grains left, then
 * serve front's requests until it goes away (or SIGTERM), then kill every
 * grain it started.
 */
int launcher_main(const struct launcher_config *config);
/* STATE/grains/<id>/data (root, 0700; the grain's /var) below grains_fd. -EINVAL: bad id. */
int grain_storage_create(int grains_fd, const char *id);
/* Remove STATE/grains/<id> and everything in it, never following a symlink. */
int grain_storage_delete(int grains_fd, const char *id);
/* Open (create) name below parent_fd; -EPERM unless owned by us and writable by us only. */
int trusted_dir_open(int parent_fd, const char *name, mode_t mode, int *ret_fd);

/* http-response.c: the app's answers, read strictly; header rewrites of the proxy */

#define HTTP_HEAD_MAX	       (64 * 1024) /* largest response head the proxy reads */
#define HTTP_HEADERS_MAX       128	   /* fields in one response head */
#define HTTP_CHUNK_LINE_MAX    4096	   /* a chunk-size line with its extensions */
#define HTTP_CHUNK_TRAILER_MAX (16 * 1024) /* all trailer fields of a chunked body */

struct http_header {
	char *name;  /* inside the parsed buffer, NUL-terminated */
	char *value; /* the same, OWS trimmed; may be "" */
};

struct http_response_head {
	unsigned version_minor;	 /* HTTP/1.0 or HTTP/1.1 */
	unsigned status;	 /* 100-599 */
	size_t size;		 /* bytes of the head, empty line included: the body starts there */
	uint64_t content_length; /* when has_content_length */
	bool has_content_length;
	bool chunked; /* Transfer-Encoding: chunked */
	bool connection_close, connection_keep_alive;
	size_t n_headers;
	struct http_header headers[HTTP_HEADERS_MAX];
};

enum http_framing {
	HTTP_FRAMING_NONE,    /* no body: HEAD, 1xx, 204, 304 */
	HTTP_FRAMING_LENGTH,  /* Content-Length */
	HTTP_FRAMING_CHUNKED, /* Transfer-Encoding: chunked */
	HTTP_FRAMING_CLOSE,   /* until the app closes the connection */
};

struct http_chunked {
	unsigned state;
	uint64_t remaining; /* data bytes left in the current chunk (or its size, being read) */
	size_t line;	    /* bytes of the current chunk-size line */
	size_t trailer;	    /* bytes of trailer fields so far */
};

/* 1*tchar (RFC 9110 5.6.2). */
bool http_is_token(const char *s, size_t len);
/* Only VCHAR, obs-text, SP and HTAB: nothing that could end a line or a string. */
bool http_value_is_safe(const char *s, size_t len);
/* Whether a comma-separated header value (Connection, Upgrade) lists token, any case. */
bool http_list_has_token(const char *list, const char *token);
/*
 * The framing fields, by one rule for requests and answers: Content-Length
 * (one, digits only) and Transfer-Encoding (exactly "chunked", once) into
 * the three targets. 1: name was one of them; 0: another field; -EBADMSG.
 */
int http_framing_field(const char *name, const char *value, bool *has_content_length,
		       uint64_t *content_length, bool *chunked);
/* RFC 9112 6.1, 6.3: chunked is HTTP/1.1's, and both framings at once is an error. */
static inline bool
http_framing_valid(bool chunked, bool has_content_length, unsigned version_minor)
{
	return !(chunked && (has_content_length || version_minor == 0));
}
/*
 * Find the end of a response head (the empty line) in the len bytes at buf.
 * 0 with *ret_size = bytes of the head; -EAGAIN: not there yet (read more and
 * call again; *scanned, if not NULL, remembers how far it looked); -EBADMSG:
 * a line that does not end in CRLF, or a head that starts with an empty line.
 */
int http_head_end(const char *buf, size_t len, size_t *scanned, size_t *ret_size);
/*
 * Split the size bytes of a complete head (http_head_end()) in place: *ret_first
 * is its first line, each field line checked (a token name, ":" right after
 * it, a value of safe bytes, OWS trimmed) and stored in headers (at most max;
 * -E2BIG beyond), NUL-terminated inside buf. -EBADMSG for a bare CR or LF,
 * obs-fold or a bad field.
 */
int http_head_split(char *buf, size_t size, char **ret_first, struct http_header *headers,
		    size_t max, size_t *ret_n);
/*
 * Parse the size bytes of a complete head (http_head_end()) in place: lines
 * are NUL-terminated inside buf and ret->headers point there. -EBADMSG if
 * anything is not strict HTTP/1.x (the file's head says what), -E2BIG for
 * more than HTTP_HEADERS_MAX fields. ret is written only on success.
 */
int http_response_head_parse(char *buf, size_t size, struct http_response_head *ret);
/* The first field called name (any case), or NULL. */
const char *http_response_header(const struct http_response_head *h, const char *name);
/* Whether a Connection field of h lists name: a hop-by-hop field that must not be passed on. */
bool http_response_names_in_connection(const struct http_response_head *h, const char *name);
/* Whether the app keeps the connection open after this answer. */
bool http_response_keeps_alive(const struct http_response_head *h);
/* How the body of h is delimited, for an answer to a HEAD request or not. */
enum http_framing http_response_framing(const struct http_response_head *h, bool head_request);
/*
 * Decode the chunked transfer coding incrementally; c starts zeroed. Consumes
 * framing from the len bytes at in up to and including the next span of data,
 * at most max_data (> 0) bytes of it, which it points *ret_data at (inside in;
 * *ret_data_len 0 when in held framing only). Returns the bytes consumed, or
 * -EBADMSG for malformed framing or a line, chunk size or trailer over its
 * limit. Trailer fields are dropped. After the end, consumes nothing.
 */
ssize_t http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t max_data,
			    const char **ret_data, size_t *ret_data_len);
/* Whether the final CRLF of the chunked body was consumed. */
bool http_chunked_done(const struct http_chunked *c);
/*
 * A Cookie header value without the cookies named in strip (NULL-terminated;
 * may be NULL), as "a=1; b=2" into out (NUL-terminated). *ret_len 0 when no
 * cookie is left. -ENOBUFS when out is too small.
 */
int http_cookie_filter(const char *in, const char *const *strip, char *out, size_t size,
		       size_t *ret_len);
/*
 * The value of the next cookie called name in a Cookie field, from *pos on
 * (start with the field; *pos moves past it): NULL when there is none. Not
 * terminated: *ret_len bytes. A name may come more than once (a sibling host
 * may set one for the parent domain): callers look at each.
 */
const char *http_cookie_next(const char **pos, const char *name, size_t *ret_len);
/* Whether the cookie a Set-Cookie value sets is one of names (NULL-terminated; may be NULL). */
bool http_set_cookie_named(const char *value, const char *const *names);
/* Remove every Domain attribute of a Set-Cookie value in place; returns its new length. */
size_t http_set_cookie_strip_domain(char *value);

/* http-request.c: a client's request head, read strictly (the event loop's grain traffic) */

#define HTTP_REQUEST_HEAD_MAX (32 * 1024) /* largest request head the event loop reads */
#define HTTP_CONNECTION_MAX   8		  /* Connection fields of a request we follow */

struct http_request_head {
	char *method;		 /* a token, inside the parsed buffer */
	char *target;		 /* "/..." or "*", exactly as sent */
	unsigned version_minor;	 /* HTTP/1.0 or HTTP/1.1 */
	size_t size;		 /* bytes of the head, empty line included */
	const char *host;	 /* the Host field, or NULL (HTTP/1.0 only) */
	uint64_t content_length; /* when has_content_length */
	bool has_content_length;
	bool chunked;	      /* Transfer-Encoding: chunked */
	bool expect_continue; /* Expect: 100-continue */
	bool connection_close, connection_keep_alive, connection_upgrade;
	const char *connection[HTTP_CONNECTION_MAX]; /* the Connection fields' values */
	size_t n_connection;
	const char *upgrade; /* the Upgrade field, or NULL */
	size_t n_headers;
	struct http_header headers[HTTP_HEADERS_MAX];
};

/* Bytes of empty lines (CRLF) at buf, which a server skips before a request line. */
size_t http_request_skip_empty_lines(const char *buf, size_t len);
/*
 * Parse the size bytes of a complete request head (http_head_end() found its
 * end) in place: lines are NUL-terminated inside buf and ret's strings point
 * there. -EBADMSG if anything is not strict HTTP/1.x (the file's head says
 * what), -E2BIG for more than HTTP_HEADERS_MAX fields or HTTP_CONNECTION_MAX
 * Connection fields. ret is written only on success.
 */
int http_request_head_parse(char *buf, size_t size, struct http_request_head *ret);
/* Whether the client may send another request on this connection after this one. */
bool http_request_keeps_alive(const struct http_request_head *h);

/* front_proxy.c: one request forwarded to a grain's app, streaming both ways */

#include <microhttpd.h>

/*
 * Where the app is: a grain manager implements these. Every fd acquire()
 * hands out comes back through release() exactly once, possibly from another
 * thread (a WebSocket tunnel's) and after proxy_completed(): keep what
 * userdata needs alive from acquire() until then (take a reference in
 * acquire(), drop it in release()). To end an exchange or a tunnel early
 * (revocation, grain stop), shutdown(fd, SHUT_RDWR) an fd that is out: the
 * engine sees it fail, answers or closes, and releases it.
 */
/* What an fd to an app is, through acquire() and release(). */
enum proxy_fd_flags {
	PROXY_FD_REUSED = 1 << 0,   /* acquire: it comes from the pool */
	PROXY_FD_REUSABLE = 1 << 1, /* release: the answer was read to its end, pool it */
	/*
	 * Both ways: the event loop registered it in its epoll set before it was
	 * pooled, and the registration lives as long as the fd: a pool carries
	 * this flag with the fd (and drops it when anyone else used the fd).
	 */
	PROXY_FD_WATCHED = 1 << 2,
};

struct proxy_upstream_ops {
	/*
	 * An fd connected to the app (a stream socket, best left in blocking
	 * mode: the engine sets TCP_NODELAY and a short SO_RCVTIMEO on fresh
	 * ones and a read then often costs one syscall, not three): pooled
	 * (*ret_reused = true) or fresh. May block (may start the grain). < 0: no upstream; the engine answers 503 with error (a
	 * sentence for a person, NUL-terminated, HTML-escaped by the engine).
	 */
	int (*acquire)(void *userdata, int *ret_fd, bool *ret_reused, char *error,
		       size_t error_size);
	/*
	 * Like acquire() but never blocks (the event loop calls it on its own
	 * thread): 0 with an fd, or -EWOULDBLOCK, and the loop calls acquire()
	 * from a thread of its own. NULL: always -EWOULDBLOCK.
	 */
	int (*acquire_nowait)(void *userdata, int *ret_fd, unsigned *ret_flags);
	/*
	 * Give an fd back: PROXY_FD_REUSABLE (the answer was read completely and
	 * the app keeps the connection alive: pool it) or not (close it);
	 * PROXY_FD_WATCHED for the next acquire_nowait().
	 */
	void (*release)(void *userdata, int fd, unsigned flags);
	/*
	 * May be NULL. Asked about every WebSocket tunnel once a second (from
	 * any thread): true ends it (the access it was opened with is gone).
	 */
	bool (*cut)(void *userdata);
};

struct proxy_params {
	const struct proxy_upstream_ops *ops;
	void *userdata;		     /* for ops: see proxy_upstream_ops */
	const char *user_id;	     /* X-Granary-User-Id, NULL for anonymous */
	const char *username;	     /* X-Granary-Username (percent-encoded here), NULL anonymous */
	const char *permissions;     /* X-Granary-Permissions, comma list, "" none */
	const char *session_id;	     /* X-Granary-Session-Id, or NULL */
	const char *forwarded_proto; /* "http" / "https" */
	const char *forwarded_host;  /* the Host the client used */
	const char *frame_ancestors; /* the shell's origin, for CSP frame-ancestors; NULL: none */
	/* Cookie names never forwarded (the shell's), NULL-terminated; the app's
	 * Set-Cookie for these names is dropped too. */
	const char *const *strip_cookies;
	bool read_only; /* only GET, HEAD, OPTIONS reach the app; else 403 */
	/* An API token's request: no Cookie forwarded, no Set-Cookie back,
	 * Content-Security-Policy: sandbox and Vary: Authorization on answers. */
	bool api;
	/*
	 * The session host's own origin ("http://ui-x.localhost:6080"): unsafe
	 * methods and WebSocket upgrades whose Origin is present and differs, or
	 * whose Sec-Fetch-Site is neither same-origin nor none, get 403 before
	 * reaching the app. NULL: no check.
	 */
	const char *origin;
	unsigned head_timeout_ms; /* for the app's response head; 0: 120 s (then 504) */
	unsigned idle_timeout_ms; /* between body bytes either way; 0: 300 s */
};

/* Per-request state, kept by the caller (e.g. in its MHD *req_cls object). */
struct proxy_request;

/*
 * Drive one request: call from the MHD access handler for every call of this
 * request (first call, body chunks, last call), exactly like an MHD handler,
 * and return what it returns. *state starts NULL; it is allocated on the
 * first call (owned by the caller from then on: proxy_completed()). params
 * and the strings in it need only live during each call, and must say the
 * same on every call of a request. raw_uri is the request-target exactly as
 * the client sent it (MHD unescapes the url it gives handlers): keep a copy
 * from MHD_OPTION_URI_LOG_CALLBACK, where MHD shows the raw one.
 *
 * Needs MHD_USE_THREAD_PER_CONNECTION (it blocks on the app) and, for
 * WebSockets, MHD_ALLOW_UPGRADE. Never queues on the first call (keep-alive),
 * except to refuse a request whose body is chunked, over 64 KiB or awaits
 * 100 Continue (MHD then closes the connection instead of reading it).
 */
enum MHD_Result proxy_handle(struct proxy_request **state, const struct proxy_params *params,
			     struct MHD_Connection *connection, const char *raw_uri,
			     const char *method, const char *version, const char *upload_data,
			     size_t *upload_data_size);
/*
 * From MHD's request-completed callback: releases the app fd if the exchange
 * did not already (not reusable then), frees state. Accepts NULL.
 */
void proxy_completed(struct proxy_request *state, enum MHD_RequestTerminationCode toe);
/*
 * End every WebSocket tunnel and wait until they are gone (each has called
 * MHD_upgrade_action(CLOSE) and release()). Call before MHD_stop_daemon():
 * MHD frees the upgrade handles. New tunnels are refused from then on.
 */
void proxy_tunnels_stop(void);

/* ---- rules of both engines (front_proxy.c here, front_loop.c), on plain bytes ---- */

/* A head being written into a fixed buffer; overflow: it did not fit (nothing more is written). */
struct proxy_writer {
	char *buf;
	size_t len, size;
	bool overflow;
};
void proxy_put(struct proxy_writer *w, const char *s, size_t n);
void proxy_put_str(struct proxy_writer *w, const char *s);
void proxy_put_field(struct proxy_writer *w, const char *name, const char *value);
/* A request field of the client, as the app gets it (Cookie without params->strip_cookies). */
void proxy_put_request_field(struct proxy_writer *w, const struct proxy_params *params,
			     const char *name, size_t name_len, const char *value,
			     size_t value_len);
/* X-Granary-* and X-Forwarded-* of params (check proxy_params_safe() first). */
void proxy_put_granary_fields(struct proxy_writer *w, const struct proxy_params *params);
/* Whether every string of params can go into a head as it is. */
bool proxy_params_safe(const struct proxy_params *params);
/* CSP frame-ancestors, nosniff and (unless the answer has one) Referrer-Policy. */
void proxy_put_security_fields(struct proxy_writer *w, const struct proxy_params *params,
			       bool referrer_policy_set);
/*
 * Whether a request field never reaches the app: hop-by-hop ones, those the
 * client named in its Connection fields (connection, n_connection of them),
 * the framing, Expect, anything of Granary's or with "_" in its name.
 */
bool proxy_request_field_dropped(const char *name, size_t len, const char *const *connection,
				 size_t n_connection);
/*
 * Whether field i of the app's answer h is passed on to the client; rewrites
 * a Set-Cookie value in place (Domain= removed) and sets *referrer_policy when
 * the app chose its own.
 */
bool proxy_response_field_kept(struct http_response_head *h, size_t i,
			       const struct proxy_params *params, bool *referrer_policy);
/* GET, HEAD, OPTIONS. */
bool proxy_method_is_safe(const char *method);
/* Methods a proxy may send again when a pooled connection failed (RFC 9110 9.2.2, WebDAV). */
bool proxy_method_is_repeatable(const char *method);
/*
 * The title of a 403 for a request params do not let through (read-only,
 * foreign Origin or Sec-Fetch-Site), *ret_detail its sentence; NULL: it may pass.
 */
const char *proxy_refusal(const struct proxy_params *params, const char *method, bool websocket,
			  const char *origin, const char *fetch_site, const char **ret_detail);
/*
 * Whether a request whose fd failed with error (-errno, or 0: closed before
 * any byte of the answer, when on_read) may be sent again on another fd.
 */
bool proxy_retry_allowed(bool reused, bool got_bytes, uint64_t body_sent, bool repeatable,
			 int error, bool on_read);
/*
 * Decode a chunked body in place: the raw bytes at buf[*raw, raw_end) as far
 * as they go, their data written from buf[*data_end] on (never past what was
 * read); *raw and *data_end advanced. -EBADMSG: malformed.
 */
int proxy_chunked_in_place(struct http_chunked *c, char *buf, size_t *raw, size_t raw_end,
			   size_t *data_end, bool *ret_done);
/*
 * The HTML of an error page of the proxy into page: title (NULL: the detail
 * is the title), then detail, whose part after a blank line is a log excerpt
 * (in <pre>). Counts it as refused (4xx) or failed (5xx).
 */
int proxy_error_page(struct buf *page, unsigned status, const char *title, const char *detail);

/* ---- front_loop.c: the event loop that serves grain traffic itself, on plain HTTP ---- */

struct loop;

/* What a request goes to (ops->route()). */
struct loop_route {
	/* To an app: the rules and its fd (params->ops); lives until route_done(). */
	const struct proxy_params *params;
	/* Or, when params is NULL, a page of ours: */
	unsigned status;
	const char *content_type; /* static; NULL: HTML */
	char *body;		  /* malloc()ed, owned by the loop from then on; may be NULL */
	size_t body_len;
	bool close;   /* the connection ends after this page */
	char *fields; /* malloc()ed, owned: more lines of the head ("N: v\r\n"), or NULL */
	void *userdata;
};

struct loop_ops {
	/*
	 * A connection's first request head: serve it here (true), or hand the
	 * untouched connection to handoff(). NULL: serve every connection.
	 */
	bool (*serves)(void *userdata, const struct http_request_head *head);
	/* A connection the loop does not serve: fd is the callee's now (close it on failure). */
	void (*handoff)(void *userdata, int fd, const struct sockaddr *address, socklen_t len);
	/*
	 * What a request goes to, into *ret (written only on success). Called
	 * on the loop's thread with may_block false: -EWOULDBLOCK makes the loop
	 * call it again from a thread of its own with may_block true. head and
	 * its strings live during the call only: copy what params point at.
	 */
	int (*route)(void *userdata, const struct http_request_head *head,
		     const struct sockaddr *peer, bool may_block, struct loop_route *ret);
	/* The request is over: what route() set up for it may go (route->userdata). */
	void (*route_done)(void *userdata, struct loop_route *route);
};

struct loop_config {
	int listen_fd;		    /* borrowed: made non-blocking */
	unsigned client_timeout_ms; /* an idle client connection is closed; 0: 60 s */
	unsigned max_clients;	    /* connections at once; 0: 1024 */
	const struct loop_ops *ops;
	void *userdata; /* for ops */
};

/* Start the loop's thread: it accepts on config->listen_fd from now on. */
int loop_start(const struct loop_config *config, struct loop **ret);
/*
 * Stop accepting, end every connection (tunnels too: their app fds go back
 * through release()), wait for the loop's jobs (a grain start in progress
 * ends first), free l. Accepts NULL; returns NULL.
 */
struct loop *loop_stop(struct loop *l);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct loop *, loop_stop);

/* Counters since the process started (for metrics). */
struct proxy_stats {
	uint64_t requests;	  /* requests proxy_handle() saw */
	uint64_t upstream_fresh;  /* fresh fds from acquire() */
	uint64_t upstream_reused; /* pooled fds used */
	uint64_t
		upstream_stale; /* pooled fds found closed by the app (before use, or as they went back) */
	uint64_t retries;	/* requests sent again after a pooled fd failed */
	uint64_t refused;	/* 4xx answered by the proxy (read-only, Origin, bad request) */
	uint64_t failed;	/* 5xx answered by the proxy (502, 503, 504) */
	uint64_t truncated;	/* answers cut short because the app failed mid-body */
	uint64_t tunnels;	/* WebSocket tunnels open now */
	uint64_t tunnels_total; /* WebSocket tunnels opened */
};
void proxy_stats_get(struct proxy_stats *ret);
/* The counters themselves (relaxed atomics: PROXY_STAT_ADD). */
extern struct proxy_stats proxy_stats_counters;
#define PROXY_STAT_ADD(field, n)                                                                   \
	((void)__atomic_fetch_add(&proxy_stats_counters.field, (n), __ATOMIC_RELAXED))

#endif
