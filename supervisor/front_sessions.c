/* SPDX-License-Identifier: MIT */
/*
 * front_sessions.c: grain sessions, what a `ui-<hex>.<wildcard>` host stands
 * for, and the glue between a request on such a host and the proxy.
 *
 * A session binds a host label (128 random bits, 32 hex) to one grain, one
 * person (or nobody: anonymous) and the edge of the grain's sharing tree it
 * came from (caps.c), whose grant is computed when the session is looked up
 * and again whenever any sharing changes (f->caps_generation) or an edge
 * above it expires; a session whose grant changed is cut: its WebSockets
 * close within a second, its next request is served as the new grant says
 * (or ends with the 404 page). The label is a bearer secret: only its BLAKE2b hash is stored (the
 * database), and this cache is keyed by a SipHash of it under a random key of
 * the process (cheaper per request), so neither the database nor a timing
 * difference in our table says anything about a label someone does not
 * already hold.
 *
 * Requests on session hosts never take front's big lock on the hot path: the
 * cache (its own mutex) answers; a miss reads the database under f->lock once.
 * A session's expiry slides: every use pushes it SESSION_IDLE into the future,
 * written to the database at most once per SESSION_TOUCH_EVERY.
 *
 * What the app gets to know (X-Granary-*): a user id stable per grain and
 * person but different across grains (BLAKE2b keyed with a server secret of
 * the grain id and the user id: two grains' apps cannot correlate people),
 * the username, the permissions as a comma list, a session id (public: the
 * first half of the label's hash, never the label).
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>
#include <microhttpd.h>
#include <sodium.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define CACHE_BUCKETS	    1024
#define CACHE_MAX	    8192	/* entries before the unused ones are dropped */
#define SESSION_IDLE	    (24 * 3600) /* seconds a session lives unused */
#define SESSION_TOUCH_EVERY 3600	/* seconds between writes of its new expiry */
#define HOST_LABEL_LEN	    32		/* hex of 128 bits */
#define HOST_PREFIX	    "ui-"
#define API_HOST_PREFIX	    "api."
#define LOG_TAIL	    4096 /* bytes of the grain log an owner sees on errors */

struct grain_session {
	uint8_t cache_key[crypto_shorthash_siphashx24_BYTES]; /* of the label, for the cache */
	uint8_t host_hash[32];				      /* of the label, for the database */
	char grain_id[GRAIN_ID_LEN + 1];
	char package_id[PACKAGE_ID_LEN + 1];
	int64_t user_id; /* 0: anonymous */
	bool owner;	 /* the grain's owner: sees the log tail on errors */
	bool api;	 /* an API token's (cache_key is of the token, host_hash its hash) */
	bool trashed;
	char username[USER_NAME_MAX + 1];
	char user_id_header[33]; /* per-grain stable id, hex */
	char session_id[33];	 /* public id, hex */
	char permissions[512];	 /* comma list */
	int64_t cap_id;		 /* the edge it came from; 0: none (a session of schema 2) */
	bool read_only;
	bool cut;	     /* atomic: its access changed since (tunnels end) */
	uint64_t generation; /* of f->caps_generation when its access was computed */
	int64_t until;	     /* when an edge above it expires; 0: never */
	int64_t expires_at;
	int64_t written_expiry_at; /* when expires_at was last written */
	unsigned refs;		   /* the cache's (1 while listed) + requests' */
	bool listed;
	struct grain_session *next;
};

struct session_cache {
	uint8_t key[crypto_shorthash_siphashx24_KEYBYTES]; /* random: keys cache_key */
	pthread_mutex_t lock;
	struct grain_session *buckets[CACHE_BUCKETS];
	unsigned n;
};

static int session_access(struct front *f, int64_t cap_id, const char *package_id, int64_t now,
			  struct grain_session *s);

static unsigned
bucket_of(const uint8_t *key)
{
	return ((unsigned)key[0] << 8 | key[1]) % CACHE_BUCKETS;
}

/*
 * The cache's key of a label: SipHash-128 under a key of this process, which
 * costs a fraction of BLAKE2b on every request; BLAKE2b (host_hash()) is only
 * computed on a miss, for the database. Nobody can aim a collision at a
 * secret key, and 128 bits leave none to chance.
 */
static void
label_cache_key(const struct session_cache *c, const char *secret, size_t len,
		uint8_t ret[crypto_shorthash_siphashx24_BYTES])
{
	(void)crypto_shorthash_siphashx24(ret, (const unsigned char *)secret, len, c->key);
}

static void
host_hash(const char *label, uint8_t ret[32])
{
	(void)crypto_generichash(ret, 32, (const unsigned char *)label, HOST_LABEL_LEN, NULL, 0);
}

int
session_cache_new(struct session_cache **ret)
{
	struct session_cache *c = calloc(1, sizeof(*c));

	if (!c)
		return -ENOMEM;
	randombytes_buf(c->key, sizeof(c->key));
	pthread_mutex_init(&c->lock, NULL);
	*ret = c;
	return 0;
}

static void
session_unref_locked(struct grain_session *s)
{
	if (--s->refs == 0)
		free(s);
}

static void
unlist_locked(struct session_cache *c, struct grain_session **link)
{
	struct grain_session *s = *link;

	*link = s->next;
	s->listed = false;
	c->n--;
	session_unref_locked(s);
}

struct session_cache *
session_cache_free(struct session_cache *c)
{
	if (!c)
		return NULL;
	for (size_t i = 0; i < CACHE_BUCKETS; i++)
		while (c->buckets[i])
			unlist_locked(c, &c->buckets[i]);
	pthread_mutex_destroy(&c->lock);
	free(c);
	return NULL;
}

void
session_cache_forget_grain(struct session_cache *c, const char *grain_id)
{
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct grain_session **link = &c->buckets[i];

		while (*link) {
			if (strcmp((*link)->grain_id, grain_id) == 0)
				unlist_locked(c, link);
			else
				link = &(*link)->next;
		}
	}
	pthread_mutex_unlock(&c->lock);
}

void
session_cache_recheck_grain(struct front *f, const char *grain_id)
{
	struct session_cache *c = f->sessions;
	struct grain_session *found[256];
	size_t n = 0;
	int64_t now = now_seconds();

	/* From now on, every cached session re-checks its edge on its next request. */
	__atomic_add_fetch(&f->caps_generation, 1, __ATOMIC_ACQ_REL);

	/* The grain's sessions in use (a request or a tunnel holds them): are they still what they were? */
	pthread_mutex_lock(&c->lock);
	for (size_t i = 0; i < CACHE_BUCKETS; i++)
		for (struct grain_session *s = c->buckets[i]; s; s = s->next)
			if (s->refs > 1 && strcmp(s->grain_id, grain_id) == 0) {
				if (n == ELEMENTSOF(found)) {
					/* More than we check one by one: cut them all (they reconnect). */
					__atomic_store_n(&s->cut, true, __ATOMIC_RELEASE);
					continue;
				}
				s->refs++;
				found[n++] = s;
			}
	pthread_mutex_unlock(&c->lock);

	for (size_t i = 0; i < n; i++) {
		struct grain_session *s = found[i], now_s = {};
		int r = session_access(f, s->cap_id, s->package_id, now, &now_s);

		if (r < 0 || strcmp(now_s.permissions, s->permissions) != 0 ||
		    now_s.read_only != s->read_only || now_s.until != s->until)
			__atomic_store_n(&s->cut, true, __ATOMIC_RELEASE);
		session_unref(f, s);
	}
}

/* Drop every entry no request holds: the cache only ever costs CACHE_MAX entries. */
static void
shrink_locked(struct session_cache *c)
{
	for (size_t i = 0; i < CACHE_BUCKETS; i++) {
		struct grain_session **link = &c->buckets[i];

		while (*link) {
			if ((*link)->refs == 1)
				unlist_locked(c, link);
			else
				link = &(*link)->next;
		}
	}
}

/* The per-grain user id: apps of two grains cannot tell they serve one person. */
static void
user_id_header(struct front *f, const char *grain_id, int64_t user_id, char out[33])
{
	uint8_t hash[16];
	char msg[GRAIN_ID_LEN + 32];
	int n = snprintf(msg, sizeof(msg), "%s:%" PRId64, grain_id, user_id);

	(void)crypto_generichash(hash, sizeof(hash), (const unsigned char *)msg, (size_t)n,
				 f->user_id_key, sizeof(f->user_id_key));
	hex_encode(out, hash, sizeof(hash));
}

/* The label of a session host ("ui-<hex>.<wildcard>"), or NULL when host is no such thing. */
const char *
session_host_label(struct front *f, const char *host)
{
	size_t prefix = strlen(HOST_PREFIX), suffix;

	if (!host || !f->wildcard_suffix || strncasecmp(host, HOST_PREFIX, prefix) != 0)
		return NULL;
	host += prefix;
	if (!hex_valid(host, HOST_LABEL_LEN) || host[HOST_LABEL_LEN] != '.')
		return NULL;
	suffix = strlen(f->wildcard_suffix);
	if (strlen(host + HOST_LABEL_LEN + 1) != suffix ||
	    strcasecmp(host + HOST_LABEL_LEN + 1, f->wildcard_suffix) != 0)
		return NULL;
	return host;
}

/*
 * What edge cap_id grants now (roles of package_id, the grain's app's
 * current one), into s (f->lock held): -ENOENT when it grants nothing any
 * more (revoked, expired, or an edge above it), or there is no edge.
 */
static int
session_access(struct front *f, int64_t cap_id, const char *package_id, int64_t now,
	       struct grain_session *s)
{
	struct grain_roles roles;
	struct db_package p = {};
	struct cap_access a;
	int r;

	s->cap_id = cap_id;
	(void)snprintf(s->package_id, sizeof(s->package_id), "%s", package_id);
	r = db_package_get(f->db, package_id, &p);
	if (r < 0)
		return r;
	r = grain_roles_parse(p.manifest, &roles);
	db_package_release(&p);
	if (r < 0)
		return r;
	r = cap_access(f->db, &roles, cap_id, now, NULL, &a);
	if (r == -ELOOP || r == -EBADMSG || (r >= 0 && !a.active))
		return -ENOENT;
	if (r < 0)
		return r;
	grain_perms_list(&roles, a.mask, s->permissions, sizeof(s->permissions));
	s->read_only = a.read_only;
	s->until = a.until;
	return 0;
}

/* The session of a ui-<hex> host label (s is new): -ENOENT when none (f->lock held). */
static int
load_session(struct front *f, const char *label, int64_t now, struct grain_session *s)
{
	struct db_grain_session row;
	int r;

	host_hash(label, s->host_hash);
	r = db_grain_session_get(f->db, s->host_hash, now, &row);
	if (r >= 0)
		r = session_access(f, row.capability_id, row.package_id, now, s);
	if (r < 0)
		return r;
	(void)db_grain_session_touch(f->db, s->host_hash, now + SESSION_IDLE);
	(void)snprintf(s->grain_id, sizeof(s->grain_id), "%s", row.grain_id);
	(void)snprintf(s->username, sizeof(s->username), "%s", row.username);
	s->user_id = row.user_id;
	s->owner = row.user_id > 0 && row.user_id == row.owner_id;
	s->trashed = row.trashed_at != 0;
	return 0;
}

/*
 * What an API token grants (s is new), as its holder (f->lock held):
 * -ENOENT for a token that is no API token, or grants nothing now.
 */
static int
load_token(struct front *f, const char *token, int64_t now, struct grain_session *s)
{
	struct db_package p = {};
	struct db_grain g;
	struct db_cap c;
	int r;

	if (token_hash_string(token, strlen(token), s->host_hash) < 0)
		return -ENOENT;
	r = db_cap_by_token(f->db, s->host_hash, &c);
	if (r >= 0 && c.kind != CAP_TOKEN)
		r = -ENOENT;
	if (r >= 0)
		r = db_grain_get(f->db, c.grain_id, &g);
	if (r >= 0 && g.trashed_at)
		r = -ENOENT;
	if (r >= 0)
		r = db_app_get(f->db, g.app_id, &p);
	if (r < 0)
		return r;
	r = session_access(f, c.id, p.id, now, s);
	db_package_release(&p);
	if (r < 0)
		return r;
	s->api = true;
	(void)snprintf(s->grain_id, sizeof(s->grain_id), "%s", g.id);
	(void)snprintf(s->username, sizeof(s->username), "%s", c.holder_name);
	s->user_id = c.holder_id;
	s->owner = c.holder_id == g.owner_id;
	return 0;
}

/*
 * The session of secret: a host label, or (api) an API token. *ret a
 * reference, or NULL when there is none. Without may_block, -EWOULDBLOCK
 * when the database must be asked (a miss, or an expiry to write).
 * -ETOOMANYREFS: address sent too many bad tokens (api only; address may be
 * NULL). (-EAGAIN would be -EWOULDBLOCK.)
 */
static int
resolve(struct front *f, const char *secret, bool api, const char *address, bool may_block,
	struct grain_session **ret)
{
	struct session_cache *c = f->sessions;
	struct grain_session *s;
	uint8_t key[crypto_shorthash_siphashx24_BYTES];
	int64_t now = now_seconds(), retry;
	bool touch = false;
	int r;

	label_cache_key(c, secret, api ? strlen(secret) : HOST_LABEL_LEN, key);
	pthread_mutex_lock(&c->lock);
	for (s = c->buckets[bucket_of(key)]; s; s = s->next)
		if (memcmp(s->cache_key, key, sizeof(key)) == 0 && s->api == api)
			break;
	if (s && (s->expires_at <= now || (s->until && now >= s->until) ||
		  s->generation != __atomic_load_n(&f->caps_generation, __ATOMIC_ACQUIRE))) {
		for (struct grain_session **link = &c->buckets[bucket_of(key)]; *link;
		     link = &(*link)->next)
			if (*link == s) {
				unlist_locked(c, link);
				break;
			}
		s = NULL;
	}
	if (s && !api && now - s->written_expiry_at >= SESSION_TOUCH_EVERY) {
		if (!may_block) {
			pthread_mutex_unlock(&c->lock);
			return -EWOULDBLOCK;
		}
		s->written_expiry_at = now;
		touch = true;
	}
	if (s) {
		s->refs++;
		s->expires_at = now + SESSION_IDLE;
		pthread_mutex_unlock(&c->lock);
		if (touch) {
			pthread_mutex_lock(&f->lock);
			(void)db_grain_session_touch(f->db, s->host_hash, now + SESSION_IDLE);
			pthread_mutex_unlock(&f->lock);
		}
		*ret = s;
		return 0;
	}
	pthread_mutex_unlock(&c->lock);
	if (!may_block)
		return -EWOULDBLOCK;

	/* A miss: the database knows, or nobody does. */
	*ret = NULL;
	s = calloc(1, sizeof(*s));
	if (!s)
		return 0;
	s->generation = __atomic_load_n(&f->caps_generation, __ATOMIC_ACQUIRE);
	pthread_mutex_lock(&f->lock);
	if (api && address && bad_tokens_throttled(address, now, &retry) < 0)
		r = -ETOOMANYREFS;
	else
		r = api ? load_token(f, secret, now, s) : load_session(f, secret, now, s);
	if (r == -ENOENT && api && address)
		bad_token_seen(address, now);
	pthread_mutex_unlock(&f->lock);
	if (r < 0) {
		if (r != -ENOENT && r != -ETOOMANYREFS)
			log_warning_errno(r, "Failed to look up a grain session: %m");
		free(s);
		return r == -ETOOMANYREFS ? r : 0;
	}
	memcpy(s->cache_key, key, sizeof(key));
	if (s->user_id > 0)
		user_id_header(f, s->grain_id, s->user_id, s->user_id_header);
	hex_encode(s->session_id, s->host_hash, 16);
	s->expires_at = now + SESSION_IDLE;
	s->written_expiry_at = now;
	s->refs = 2; /* the cache's and the caller's */
	s->listed = true;

	pthread_mutex_lock(&c->lock);
	if (c->n >= CACHE_MAX)
		shrink_locked(c);
	s->next = c->buckets[bucket_of(key)];
	c->buckets[bucket_of(key)] = s;
	c->n++;
	pthread_mutex_unlock(&c->lock);
	*ret = s;
	return 0;
}

struct grain_session *
session_resolve(struct front *f, const char *label)
{
	struct grain_session *s = NULL;

	(void)resolve(f, label, false, NULL, true, &s);
	return s;
}

struct grain_session *
session_unref(struct front *f, struct grain_session *s)
{
	if (!s)
		return NULL;
	pthread_mutex_lock(&f->sessions->lock);
	session_unref_locked(s);
	pthread_mutex_unlock(&f->sessions->lock);
	return NULL;
}

int
session_open(struct front *f, const struct db_grain *g, const struct db_user *user, int64_t cap_id,
	     char **ret_url, char *ret_session_id)
{
	struct db_grain_session gs = { .capability_id = cap_id };
	char label[HOST_LABEL_LEN + 1];
	uint8_t hash[32];
	int64_t now = now_seconds();
	int r;

	r = random_hex(label, HOST_LABEL_LEN / 2);
	if (r < 0)
		return r;
	host_hash(label, hash);
	(void)snprintf(gs.grain_id, sizeof(gs.grain_id), "%s", g->id);
	gs.user_id = user ? user->id : 0;
	gs.expires_at = now + SESSION_IDLE;
	r = db_grain_session_add(f->db, hash, &gs, now);
	if (r < 0)
		return r;
	(void)db_grain_touch(f->db, g->id, now);
	if (asprintf(ret_url, "%s://" HOST_PREFIX "%s.%s/", f->tls ? "https" : "http", label,
		     f->wildcard_suffix) < 0)
		return -ENOMEM;
	hex_encode(ret_session_id, hash, 16);
	return 0;
}

/* ---- one proxied request --------------------------------------------------------- */

/*
 * Referenced by the request (until MHD's completion callback) and by every
 * connection out to the app (until the engine releases it, which for a
 * WebSocket happens later, from the tunnel's thread).
 */
struct grain_exchange {
	unsigned refs; /* atomic */
	struct front *f;
	struct grain_session *session; /* owned reference; NULL: no such session */
	struct grain_run *run;	       /* owned reference */
	uint64_t generation;	       /* of the connection out */
	struct proxy_request *proxy;   /* owned */
	struct proxy_params params;
	char origin[320];
	char host[300];
	const struct refusal *refusal; /* no session on the API host: why (401, 429) */
	bool acquired; /* a connection was handed out before (generation is its run's) */
	bool seen;     /* the first call is over (no session) */
	bool answered; /* an error page is queued (no session) */
};

static void
exchange_unref(struct grain_exchange *x)
{
	if (__atomic_sub_fetch(&x->refs, 1, __ATOMIC_ACQ_REL) > 0)
		return;
	x->run = grain_run_unref(x->f->grains, x->run);
	x->session = session_unref(x->f, x->session);
	free(x);
}

static int
exchange_acquire(void *userdata, int *ret_fd, bool *ret_reused, char *error, size_t error_size)
{
	struct grain_exchange *x = userdata;
	int r;

	/*
	 * The engine asks again when a connection failed before the answer (a
	 * pooled one the app had closed). If the app died meanwhile, that is
	 * no stale connection: starting it again would replay the request
	 * that may have killed it.
	 */
	if (x->acquired) {
		struct grain_status st;

		grain_manager_status(x->f->grains, x->session->grain_id, &st);
		if (!st.running || st.generation != x->generation) {
			(void)snprintf(error, error_size,
				       "It stopped while answering this request%s%s.",
				       st.error[0] ? ": " : "", st.error);
			return -ECONNRESET;
		}
	}
	r = grain_acquire(x->f->grains, x->run, ret_fd, ret_reused, &x->generation, error,
			  error_size);
	if (r >= 0)
		x->acquired = true;
	if (r >= 0)
		__atomic_add_fetch(&x->refs, 1, __ATOMIC_ACQ_REL);
	if (r < 0 && x->session->owner) {
		_cleanup_free_ char *tail = NULL;
		size_t len = strlen(error), tail_len;

		if (launcher_grain_log_tail(x->f->launcher, x->session->grain_id, LOG_TAIL, &tail,
					    &tail_len) >= 0 &&
		    tail_len > 0)
			(void)snprintf(
				error + len, error_size - len,
				"\n\nThe end of its log (only you, its owner, see this):\n%s",
				tail);
	}
	return r;
}

static int
exchange_acquire_nowait(void *userdata, int *ret_fd, unsigned *ret_flags)
{
	struct grain_exchange *x = userdata;
	bool watched = false;
	int r;

	/* A second connection for one request: exchange_acquire() decides (a job). */
	if (x->acquired)
		return -EAGAIN;
	r = grain_acquire_nowait(x->f->grains, x->run, ret_fd, &watched, &x->generation);
	if (r < 0)
		return r;
	x->acquired = true;
	__atomic_add_fetch(&x->refs, 1, __ATOMIC_ACQ_REL);
	*ret_flags = PROXY_FD_REUSED | (watched ? PROXY_FD_WATCHED : 0);
	return 0;
}

static void
exchange_release(void *userdata, int fd, unsigned flags)
{
	struct grain_exchange *x = userdata;

	grain_release_watched(x->f->grains, x->run, fd, flags & PROXY_FD_REUSABLE,
			      flags & PROXY_FD_WATCHED, x->generation);
	exchange_unref(x);
}

/* The session's access changed or ran out: its tunnels end. */
static bool
exchange_cut(void *userdata)
{
	const struct grain_exchange *x = userdata;
	const struct grain_session *s = x->session;

	return __atomic_load_n(&s->cut, __ATOMIC_ACQUIRE) ||
	       (s->until && now_seconds() >= s->until);
}

static const struct proxy_upstream_ops exchange_ops = {
	.acquire = exchange_acquire,
	.acquire_nowait = exchange_acquire_nowait,
	.release = exchange_release,
	.cut = exchange_cut,
};

static const char *const shell_cookies[] = { SESSION_COOKIE, SESSION_COOKIE_TLS, NULL };

/* x->host and x->origin ("http://" host) without snprintf(), which costs more per request. */
static void
exchange_set_host(struct grain_exchange *x, bool tls, const char *host)
{
	const char *scheme = tls ? "https://" : "http://";
	size_t len = strnlen(host, sizeof(x->host) - 1), scheme_len = strlen(scheme);

	memcpy(x->host, host, len);
	x->host[len] = '\0';
	memcpy(x->origin, scheme, scheme_len);
	memcpy(x->origin + scheme_len, host, len); /* origin has room for both */
	x->origin[scheme_len + len] = '\0';
}

/* An exchange for session s (its reference is the exchange's now, even on failure). */
static struct grain_exchange *
exchange_new(struct front *f, struct grain_session *s, const char *host)
{
	struct grain_exchange *x = calloc(1, sizeof(*x));

	if (!x) {
		session_unref(f, s);
		return NULL;
	}
	x->refs = 1;
	x->f = f;
	x->session = s;
	if (!x->session || x->session->trashed)
		return x; /* answered by grain_exchange_handle() */
	x->run = grain_manager_get(f->grains, x->session->grain_id, x->session->package_id);
	if (!x->run) {
		grain_exchange_free(x, MHD_REQUEST_TERMINATED_WITH_ERROR);
		return NULL;
	}
	exchange_set_host(x, f->tls, host);
	x->params = (struct proxy_params){
		.ops = &exchange_ops,
		.userdata = x,
		.user_id = x->session->user_id > 0 ? x->session->user_id_header : NULL,
		.username = x->session->user_id > 0 ? x->session->username : NULL,
		.permissions = x->session->permissions,
		.session_id = x->session->session_id,
		.forwarded_proto = f->tls ? "https" : "http",
		.forwarded_host = x->host,
		.frame_ancestors = x->session->api ? NULL : f->origin,
		.strip_cookies = shell_cookies,
		.read_only = x->session->read_only,
		.api = x->session->api,
		.origin = x->origin,
	};
	return x;
}

struct grain_exchange *
grain_exchange_new(struct front *f, const char *label, const char *host)
{
	return exchange_new(f, session_resolve(f, label), host);
}

bool
api_host(struct front *f, const char *host)
{
	return host && f->wildcard_suffix && strncasecmp(host, API_HOST_PREFIX, 4) == 0 &&
	       strcasecmp(host + 4, f->wildcard_suffix) == 0;
}

/* The answers where no app is asked at all, with the one field some of them need. */
struct refusal {
	unsigned status;
	const char *page;
	const char *field, *value; /* NULL: none */
};

static const struct refusal refused_expired = {
	MHD_HTTP_NOT_FOUND,
	"<!doctype html><meta charset=utf-8><title>Session ended</title>"
	"<h1>This grain session has ended</h1>"
	"<p>It expired, the access it came from ended, or it never existed. Open the grain "
	"again from Granary.</p>\n",
};
static const struct refusal refused_trashed = {
	MHD_HTTP_GONE,
	"<!doctype html><meta charset=utf-8><title>Grain deleted</title>"
	"<h1>This grain was deleted</h1>"
	"<p>Its owner moved it to the trash. Ask them to restore it if you still need it.</p>\n",
};
static const struct refusal refused_misdirected = {
	MHD_HTTP_MISDIRECTED_REQUEST,
	"<!doctype html><meta charset=utf-8><title>Misdirected request</title>"
	"<h1>Misdirected request</h1>"
	"<p>This connection serves grain sessions only. Open a new one for this host.</p>\n",
};
static const struct refusal refused_token = {
	MHD_HTTP_UNAUTHORIZED,
	"<!doctype html><meta charset=utf-8><title>API token needed</title>"
	"<h1>This host serves API tokens</h1>"
	"<p>Send one as <code>Authorization: Bearer &lt;token&gt;</code>; this one is missing, "
	"mistyped, expired or revoked.</p>\n",
	"WWW-Authenticate",
	"Bearer realm=\"granary\"",
};
static const struct refusal refused_throttled = {
	MHD_HTTP_TOO_MANY_REQUESTS,
	"<!doctype html><meta charset=utf-8><title>Too many tries</title>"
	"<h1>Too many tokens that do not work</h1>"
	"<p>This address sent too many. Wait a few minutes.</p>\n",
	"Retry-After",
	"60",
};

/*
 * The session of an API request's Authorization field: *ret, or NULL and
 * *ret_refusal says why. -EWOULDBLOCK as resolve(). Whatever is not a
 * token of ours (another scheme, a mistyped one) counts as a bad token.
 */
static int
api_resolve(struct front *f, const char *authorization, const char *address, bool may_block,
	    struct grain_session **ret, const struct refusal **ret_refusal)
{
	const char *token = authorization;
	int r;

	*ret = NULL;
	*ret_refusal = &refused_token;
	if (!authorization)
		return 0;
	if (strncasecmp(authorization, "Bearer ", 7) == 0)
		token = authorization + 7 + strspn(authorization + 7, " ");
	r = resolve(f, token, true, address, may_block, ret);
	if (r == -ETOOMANYREFS) {
		*ret_refusal = &refused_throttled;
		return 0;
	}
	return r;
}

struct grain_exchange *
grain_exchange_new_api(struct front *f, const char *authorization, const char *host,
		       const char *address)
{
	const struct refusal *refusal;
	struct grain_session *s = NULL;
	struct grain_exchange *x;

	(void)api_resolve(f, authorization, address, true, &s, &refusal);
	x = exchange_new(f, s, host);
	if (x && !s)
		x->refusal = refusal;
	return x;
}

static enum MHD_Result
exchange_refuse(struct grain_exchange *x, struct MHD_Connection *connection,
		const char *upload_data, size_t *upload_data_size)
{
	const struct refusal *refusal = x->refusal   ? x->refusal
					: x->session ? &refused_trashed
						     : &refused_expired;
	struct MHD_Response *response;
	enum MHD_Result ret;

	(void)upload_data;
	if (*upload_data_size > 0) {
		*upload_data_size = 0; /* the body of a request we will not forward */
		return MHD_YES;
	}
	if (x->answered)
		return MHD_YES;
	if (!x->seen) {
		/* First call: answering now would cost keep-alive (FIELD-NOTES.md). */
		x->seen = true;
		return MHD_YES;
	}
	x->answered = true;
	response = MHD_create_response_from_buffer(strlen(refusal->page), (void *)refusal->page,
						   MHD_RESPMEM_PERSISTENT);
	if (!response)
		return MHD_NO;
	(void)MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE,
				      "text/html; charset=utf-8");
	(void)MHD_add_response_header(response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
	(void)MHD_add_response_header(response, "X-Content-Type-Options", "nosniff");
	if (refusal->field)
		(void)MHD_add_response_header(response, refusal->field, refusal->value);
	ret = MHD_queue_response(connection, refusal->status, response);
	MHD_destroy_response(response);
	return ret;
}

enum MHD_Result
grain_exchange_handle(struct grain_exchange *x, struct MHD_Connection *connection,
		      const char *raw_uri, const char *method, const char *version,
		      const char *upload_data, size_t *upload_data_size)
{
	if (!x->run)
		return exchange_refuse(x, connection, upload_data, upload_data_size);
	return proxy_handle(&x->proxy, &x->params, connection, raw_uri, method, version,
			    upload_data, upload_data_size);
}

struct grain_exchange *
grain_exchange_free(struct grain_exchange *x, enum MHD_RequestTerminationCode toe)
{
	if (!x)
		return NULL;
	if (x->run)
		proxy_completed(x->proxy, toe);
	exchange_unref(x);
	return NULL;
}

/* A page for the event loop (the body is the loop's to free then). */
static int
route_page(const struct refusal *refusal, bool close, struct loop_route *ret)
{
	char *body = strdup(refusal->page);

	if (!body)
		return -ENOMEM;
	*ret = (struct loop_route){
		.status = refusal->status,
		.content_type = "text/html; charset=utf-8",
		.body = body,
		.body_len = strlen(body),
		.close = close,
		.field = refusal->field,
		.value = refusal->value,
	};
	return 0;
}

/* The Authorization field of head, or NULL. */
static const char *
head_authorization(const struct http_request_head *head)
{
	for (size_t i = 0; i < head->n_headers; i++)
		if (strcasecmp(head->headers[i].name, "Authorization") == 0)
			return head->headers[i].value;
	return NULL;
}

int
grain_route(struct front *f, const struct http_request_head *head, const char *address,
	    bool may_block, struct loop_route *ret)
{
	const char *label = session_host_label(f, head->host);
	const struct refusal *refusal;
	struct grain_session *s = NULL;
	struct grain_exchange *x;
	int r;

	if (!label && api_host(f, head->host)) {
		r = api_resolve(f, head_authorization(head), address, may_block, &s, &refusal);
		if (r < 0)
			return r;
		if (!s)
			return route_page(refusal, false, ret);
	} else if (!label)
		/* The shell on a connection we serve: its next connection goes to libmicrohttpd. */
		return route_page(&refused_misdirected, true, ret);
	else {
		r = resolve(f, label, false, NULL, may_block, &s);
		if (r < 0)
			return r;
	}
	if (!s || s->trashed) {
		r = route_page(s ? &refused_trashed : &refused_expired, false, ret);
		session_unref(f, s);
		return r;
	}
	x = exchange_new(f, s, head->host);
	if (!x)
		return -ENOMEM;
	__atomic_add_fetch(&f->metrics.proxied, 1, __ATOMIC_RELAXED);
	*ret = (struct loop_route){ .params = &x->params, .userdata = x };
	return 0;
}

void
grain_route_done(struct front *f, struct loop_route *route)
{
	(void)f;
	grain_exchange_free(route->userdata, MHD_REQUEST_TERMINATED_COMPLETED_OK);
}
