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
 * The label alone admits nobody (SECURITY-TESTS.md J): a session is entered
 * once, through GRAIN_ENTER_PATH with a one-time key (its hash stored, used
 * up within ENTER_WITHIN), which sets a cookie of that host only; every other
 * request must carry it. Its hash is in the database, a SipHash of it in the
 * cache, compared in constant time; it never reaches the app.
 *
 * Requests on session hosts never take front's big lock on the hot path: the
 * cache (its own mutex) answers; a miss reads the database under f->lock once.
 * A session's expiry slides: every request its cookie admits pushes it
 * SESSION_IDLE into the future, written to the database at most once per
 * SESSION_TOUCH_EVERY. Requests without the cookie do not: the host name
 * alone cannot keep a session alive.
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
#define ENTER_KEY_LEN	    32		/* hex of 128 bits: a session's one-time key */
#define COOKIE_LEN	    32		/* hex of 128 bits: a session's cookie */
#define ENTER_WITHIN	    600		/* seconds a session can be entered after it was made */
#define ENTER_PATH_MAX	    2048	/* bytes of the path an enter leads to */
#define COOKIE_FIELDS_MAX   8		/* Cookie fields of a request looked at */
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
	int64_t cap_id;		 /* the edge it came from */
	bool read_only;
	bool entered;		 /* its cookie is set: */
	uint8_t cookie_hash[32]; /* BLAKE2b of the cookie (from the database) */
	bool cookie_keyed;	 /* atomic: cookie_key is known (set under c->lock): */
	uint8_t cookie_key[crypto_shorthash_siphashx24_BYTES]; /* the cache's key of it */
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
 * costs a fraction of BLAKE2b on every request; BLAKE2b (secret_hash()) is only
 * computed on a miss, for the database. Nobody can aim a collision at a
 * secret key, and 128 bits leave none to chance.
 */
static void
label_cache_key(const struct session_cache *c, const char *secret, size_t len,
		uint8_t ret[crypto_shorthash_siphashx24_BYTES])
{
	(void)crypto_shorthash_siphashx24(ret, (const unsigned char *)secret, len, c->key);
}

/* BLAKE2b-256 of a host label, enter key or cookie (len bytes), as the database keeps it. */
static void
secret_hash(const char *secret, size_t len, uint8_t ret[32])
{
	(void)crypto_generichash(ret, 32, (const unsigned char *)secret, len, NULL, 0);
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

/* Where the entry of key is linked in its bucket (*ret NULL: none) (c->lock held). */
static struct grain_session **
find_locked(struct session_cache *c, const uint8_t *key, bool api)
{
	struct grain_session **link = &c->buckets[bucket_of(key)];

	while (*link && (memcmp((*link)->cache_key, key, crypto_shorthash_siphashx24_BYTES) != 0 ||
			 (*link)->api != api))
		link = &(*link)->next;
	return link;
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

	secret_hash(label, HOST_LABEL_LEN, s->host_hash);
	r = db_grain_session_get(f->db, s->host_hash, now, &row);
	if (r >= 0)
		r = session_access(f, row.capability_id, row.package_id, now, s);
	if (r < 0)
		return r;
	s->expires_at = row.expires_at;
	(void)snprintf(s->grain_id, sizeof(s->grain_id), "%s", row.grain_id);
	(void)snprintf(s->username, sizeof(s->username), "%s", row.username);
	s->user_id = row.user_id;
	s->owner = row.user_id > 0 && row.user_id == row.owner_id;
	s->trashed = row.trashed_at != 0;
	s->entered = row.entered;
	memcpy(s->cookie_hash, row.cookie_hash, sizeof(s->cookie_hash));
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
	struct grain_session *s, **link;
	uint8_t key[crypto_shorthash_siphashx24_BYTES];
	int64_t now = now_seconds(), retry;
	int r;

	label_cache_key(c, secret, api ? strlen(secret) : HOST_LABEL_LEN, key);
	pthread_mutex_lock(&c->lock);
	link = find_locked(c, key, api);
	s = *link;
	if (s && (s->expires_at <= now || (s->until && now >= s->until) ||
		  s->generation != __atomic_load_n(&f->caps_generation, __ATOMIC_ACQUIRE))) {
		unlist_locked(c, link);
		s = NULL;
	}
	if (s) {
		s->refs++;
		/* An API token's entry lives while used; a session's by session_touch(). */
		if (api)
			s->expires_at = now + SESSION_IDLE;
		pthread_mutex_unlock(&c->lock);
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
	if (api)
		s->expires_at = now + SESSION_IDLE;
	/* A session's expiry is the database's until a request with its cookie comes. */
	s->written_expiry_at = 0;
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
	char label[HOST_LABEL_LEN + 1], key[ENTER_KEY_LEN + 1];
	uint8_t hash[32];
	int64_t now = now_seconds();
	int r;

	r = random_hex(label, HOST_LABEL_LEN / 2);
	if (r >= 0)
		r = random_hex(key, ENTER_KEY_LEN / 2);
	if (r < 0)
		return r;
	secret_hash(label, HOST_LABEL_LEN, hash);
	secret_hash(key, ENTER_KEY_LEN, gs.enter_hash);
	(void)snprintf(gs.grain_id, sizeof(gs.grain_id), "%s", g->id);
	gs.user_id = user ? user->id : 0;
	gs.expires_at = now + SESSION_IDLE;
	r = db_grain_session_add(f->db, hash, &gs, now);
	if (r < 0)
		return r;
	(void)db_grain_touch(f->db, g->id, now);
	if (asprintf(ret_url, "%s://" HOST_PREFIX "%s.%s" GRAIN_ENTER_PATH "?k=%s",
		     f->tls ? "https" : "http", label, f->wildcard_suffix, key) < 0)
		return -ENOMEM;
	hex_encode(ret_session_id, hash, 16);
	return 0;
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

static const struct refusal refused_cookie = {
	MHD_HTTP_FORBIDDEN,
	"<!doctype html><meta charset=utf-8><title>Open the grain from Granary</title>"
	"<h1>Open this grain from Granary</h1>"
	"<p>This address belongs to a grain session that works only in the browser that opened "
	"it. Open the grain again from Granary, or ask its owner for a share link.</p>\n",
};
static const struct refusal refused_enter = {
	MHD_HTTP_FORBIDDEN,
	"<!doctype html><meta charset=utf-8><title>Link used</title>"
	"<h1>This link was used already</h1>"
	"<p>A link that opens a grain works once, in one browser, for ten minutes. Open the "
	"grain again from Granary.</p>\n",
};
static const struct refusal refused_enter_path = {
	MHD_HTTP_BAD_REQUEST,
	"<!doctype html><meta charset=utf-8><title>Bad link</title>"
	"<h1>Bad link</h1>"
	"<p>The page this link names is not a page of this grain.</p>\n",
};
/* An enter: with the session's cookie and where to go (struct gate), token-free. */
static const struct refusal entered = {
	MHD_HTTP_SEE_OTHER,
	"<!doctype html><meta charset=utf-8><title>Opening</title><p>Opening the grain…</p>\n",
	"Referrer-Policy",
	"no-referrer",
};

/* ---- who may use a session host ------------------------------------------------- */

/*
 * What a request on a session host gets: the session (admitted), or an
 * answer of ours; entering adds where to go and the cookie.
 */
struct gate {
	struct grain_session *session; /* admitted: a reference */
	const struct refusal *refusal; /* else */
	char location[ENTER_PATH_MAX + 1];
	char set_cookie[2][160]; /* one or two; "" none */
};

/* The query of a request-target that enters a session ("" for none), or NULL: it does not. */
static const char *
enter_query(const char *target)
{
	size_t len = strlen(GRAIN_ENTER_PATH);

	if (strncmp(target, GRAIN_ENTER_PATH, len) != 0)
		return NULL;
	if (target[len] == '\0')
		return "";
	return target[len] == '?' ? target + len + 1 : NULL;
}

/* The percent-decoded value of name in a query into out: -ENOENT none, -E2BIG too long. */
static int
query_param(const char *query, const char *name, char *out, size_t size)
{
	size_t name_len = strlen(name);

	for (const char *p = query; *p;) {
		const char *end = strchrnul(p, '&');

		if ((size_t)(end - p) > name_len && strncmp(p, name, name_len) == 0 &&
		    p[name_len] == '=') {
			size_t len = (size_t)(end - p) - name_len - 1;

			if (len >= size)
				return -E2BIG;
			memcpy(out, p + name_len + 1, len);
			out[len] = '\0';
			(void)MHD_http_unescape(out);
			return 0;
		}
		p = *end ? end + 1 : end;
	}
	return -ENOENT;
}

/*
 * Where an enter may lead: a path of the same host, never elsewhere. "//x"
 * and "/\\x" name other hosts to a browser, and browsers drop tabs and
 * newlines from URLs ("/\t/x" is "//x"): only printable ASCII, no backslash.
 * A path with other bytes comes percent-encoded.
 */
static bool
enter_path_valid(const char *path)
{
	if (path[0] != '/' || path[1] == '/')
		return false;
	for (const unsigned char *p = (const unsigned char *)path; *p; p++)
		if (*p <= ' ' || *p >= 0x7f || *p == '\\')
			return false;
	return true;
}

/* Forget the cached session of a label (its cookie just changed). */
static void
forget_label(struct session_cache *c, const char *label)
{
	uint8_t key[crypto_shorthash_siphashx24_BYTES];
	struct grain_session **link;

	label_cache_key(c, label, HOST_LABEL_LEN, key);
	pthread_mutex_lock(&c->lock);
	link = find_locked(c, key, false);
	if (*link)
		unlist_locked(c, link);
	pthread_mutex_unlock(&c->lock);
}

/*
 * The cookie of an enter, where it must work: in the shell's frame. Session
 * hosts under a domain of the shell's (*.granary.example.com) are same-site
 * with it, and SameSite=Lax does (Secure under TLS). Under a single label,
 * like the default *.localhost, every ui-<hex>.localhost is a site of its
 * own: the frame is a third party, and browsers that block third-party
 * cookies (Chromium does by default) keep only a partitioned cookie, which
 * must be Secure: allowed over https, and over http on *.localhost, a secure
 * context to browsers but not to curl. So there, the same cookie comes twice:
 * Lax for programs and top-level visits, partitioned for the frame. Measured
 * with Chromium 156 (docs/api.md "Grain sessions").
 */
static void
enter_cookies(const struct front *f, const char *value, struct gate *g)
{
	size_t len = strcspn(f->wildcard_suffix, ":");
	const char *name = f->tls ? GRAIN_COOKIE_TLS : GRAIN_COOKIE;
	bool single_label = !memchr(f->wildcard_suffix, '.', len);
	/* The one single label browsers treat as a secure context over http. */
	bool localhost = len == 9 && strncasecmp(f->wildcard_suffix, "localhost", 9) == 0;

	(void)snprintf(g->set_cookie[0], sizeof(g->set_cookie[0]),
		       "%s=%s; Path=/; HttpOnly; SameSite=Lax%s", name, value,
		       f->tls ? "; Secure" : "");
	g->set_cookie[1][0] = '\0';
	if (single_label && (f->tls || localhost))
		(void)snprintf(g->set_cookie[1], sizeof(g->set_cookie[1]),
			       "%s=%s; Path=/; HttpOnly; Secure; SameSite=None; Partitioned", name,
			       value);
}

/*
 * GET GRAIN_ENTER_PATH?k=KEY[&path=PATH] on the host of label: with the
 * session's one-time key, its cookie is set (and the key used up), and the
 * answer leads to PATH ("/"). The path is checked before the key is used.
 */
static int
session_enter(struct front *f, const char *label, const char *method, const char *query,
	      struct gate *g)
{
	char key[ENTER_KEY_LEN + 1], cookie[COOKIE_LEN + 1];
	uint8_t host_h[32], key_h[32], cookie_h[32];
	int64_t now = now_seconds();
	int r;

	g->refusal = &refused_enter_path;
	r = query_param(query, "path", g->location, sizeof(g->location));
	if (r == -ENOENT)
		(void)snprintf(g->location, sizeof(g->location), "/");
	else if (r < 0 || !enter_path_valid(g->location))
		return 0;
	g->refusal = &refused_enter;
	if ((strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) ||
	    query_param(query, "k", key, sizeof(key)) < 0 || !hex_valid(key, ENTER_KEY_LEN))
		return 0;
	r = random_hex(cookie, COOKIE_LEN / 2);
	if (r < 0)
		return r;
	secret_hash(label, HOST_LABEL_LEN, host_h);
	secret_hash(key, ENTER_KEY_LEN, key_h);
	secret_hash(cookie, COOKIE_LEN, cookie_h);
	pthread_mutex_lock(&f->lock);
	r = db_grain_session_enter(f->db, host_h, key_h, cookie_h, now - ENTER_WITHIN, now);
	pthread_mutex_unlock(&f->lock);
	if (r == -ENOENT)
		return 0;
	if (r < 0)
		return r;
	forget_label(f->sessions, label);
	/* Host-only (no Domain), HttpOnly, and __Host- under TLS. */
	enter_cookies(f, cookie, g);
	g->refusal = &entered;
	return 0;
}

/* Is value (len bytes) the cookie of s? Constant time in the cookie. */
static bool
cookie_matches(struct session_cache *c, struct grain_session *s, const char *value, size_t len)
{
	uint8_t key[crypto_shorthash_siphashx24_BYTES], hash[32];

	if (len != COOKIE_LEN || !s->entered)
		return false;
	label_cache_key(c, value, len, key);
	/* cookie_key is written once, under c->lock, before cookie_keyed. */
	if (__atomic_load_n(&s->cookie_keyed, __ATOMIC_ACQUIRE))
		return sodium_memcmp(key, s->cookie_key, sizeof(key)) == 0;
	/* The first time since it was cached: the database's hash says, SipHash from then on. */
	secret_hash(value, len, hash);
	if (sodium_memcmp(hash, s->cookie_hash, sizeof(hash)) != 0)
		return false;
	pthread_mutex_lock(&c->lock);
	if (!s->cookie_keyed) {
		memcpy(s->cookie_key, key, sizeof(key));
		__atomic_store_n(&s->cookie_keyed, true, __ATOMIC_RELEASE);
	}
	pthread_mutex_unlock(&c->lock);
	return true;
}

/* Does one of a request's Cookie fields (NULL-terminated) carry the cookie of s? */
static bool
cookie_admits(struct front *f, struct grain_session *s, const char *const *fields)
{
	const char *name = f->tls ? GRAIN_COOKIE_TLS : GRAIN_COOKIE;

	for (size_t i = 0; fields[i]; i++) {
		const char *pos = fields[i], *value;
		size_t len;

		/* Every one of that name: a sibling host may have set one for the parent domain. */
		while ((value = http_cookie_next(&pos, name, &len)))
			if (cookie_matches(f->sessions, s, value, len))
				return true;
	}
	return false;
}

/*
 * A request its cookie admitted keeps s alive for SESSION_IDLE from now,
 * written to the database at most every SESSION_TOUCH_EVERY. Without
 * may_block, -EWOULDBLOCK when that write is due (nothing changed).
 */
static int
session_touch(struct front *f, struct grain_session *s, bool may_block)
{
	struct session_cache *c = f->sessions;
	int64_t now = now_seconds();
	bool write;

	pthread_mutex_lock(&c->lock);
	write = now - s->written_expiry_at >= SESSION_TOUCH_EVERY;
	if (write && !may_block) {
		pthread_mutex_unlock(&c->lock);
		return -EWOULDBLOCK;
	}
	s->expires_at = now + SESSION_IDLE;
	if (write)
		s->written_expiry_at = now;
	pthread_mutex_unlock(&c->lock);
	if (write) {
		pthread_mutex_lock(&f->lock);
		(void)db_grain_session_touch(f->db, s->host_hash, now + SESSION_IDLE);
		pthread_mutex_unlock(&f->lock);
	}
	return 0;
}

/*
 * Who may use the session host of label: a request entering it, or one
 * with its cookie. Without may_block, -EWOULDBLOCK as resolve().
 */
static int
session_gate(struct front *f, const char *label, const char *target, const char *method,
	     const char *const *cookie_fields, bool may_block, struct gate *g)
{
	const char *query = enter_query(target);
	struct grain_session *s = NULL;
	int r;

	g->session = NULL;
	g->refusal = NULL;
	if (query) {
		if (!may_block)
			return -EWOULDBLOCK;
		return session_enter(f, label, method, query, g);
	}
	r = resolve(f, label, false, NULL, may_block, &s);
	if (r < 0)
		return r;
	if (!s)
		g->refusal = &refused_expired;
	else if (!cookie_admits(f, s, cookie_fields))
		g->refusal = &refused_cookie;
	else if (s->trashed)
		g->refusal = &refused_trashed;
	else {
		r = session_touch(f, s, may_block);
		if (r >= 0) {
			g->session = s;
			return 0;
		}
	}
	session_unref(f, s);
	return r;
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
	const struct refusal *refusal; /* no session: our answer (run is NULL) */
	char *location;		       /* owned: an enter's (refusal is &entered) */
	char *set_cookie[2];	       /* owned: its cookies ([1] may be NULL) */
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
	free(x->location);
	free(x->set_cookie[0]);
	free(x->set_cookie[1]);
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
	if (r >= 0) {
		x->acquired = true;
		__atomic_add_fetch(&x->refs, 1, __ATOMIC_ACQ_REL);
	}
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

/* Never forwarded to an app, never set by one. */
static const char *const shell_cookies[] = { SESSION_COOKIE, SESSION_COOKIE_TLS, GRAIN_COOKIE,
					     GRAIN_COOKIE_TLS, NULL };

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

/* An exchange for what g admits (its session reference is the exchange's now, even on failure). */
static struct grain_exchange *
exchange_new(struct front *f, const struct gate *g, const char *host)
{
	struct grain_exchange *x = calloc(1, sizeof(*x));

	if (!x) {
		session_unref(f, g->session);
		return NULL;
	}
	x->refs = 1;
	x->f = f;
	x->session = g->session;
	if (!x->session) {
		/* Answered by grain_exchange_handle(). */
		x->refusal = g->refusal;
		if (g->refusal == &entered &&
		    (!(x->location = strdup(g->location)) ||
		     !(x->set_cookie[0] = strdup(g->set_cookie[0])) ||
		     (g->set_cookie[1][0] && !(x->set_cookie[1] = strdup(g->set_cookie[1])))))
			return grain_exchange_free(x, MHD_REQUEST_TERMINATED_WITH_ERROR);
		return x;
	}
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

/* The Cookie fields of a libmicrohttpd request, into a NULL-terminated array. */
struct cookie_fields {
	const char *v[COOKIE_FIELDS_MAX + 1];
	size_t n;
};

static enum MHD_Result
cookie_field_add(void *cls, enum MHD_ValueKind kind, const char *name, const char *value)
{
	struct cookie_fields *c = cls;

	(void)kind;
	if (value && strcasecmp(name, MHD_HTTP_HEADER_COOKIE) == 0 && c->n < COOKIE_FIELDS_MAX)
		c->v[c->n++] = value;
	return MHD_YES;
}

struct grain_exchange *
grain_exchange_new(struct front *f, struct MHD_Connection *connection, const char *label,
		   const char *host, const char *target, const char *method)
{
	struct cookie_fields cookies = {};
	struct gate g;

	(void)MHD_get_connection_values(connection, MHD_HEADER_KIND, cookie_field_add, &cookies);
	if (session_gate(f, label, target, method, cookies.v, true, &g) < 0)
		g = (struct gate){ .refusal = &refused_expired };
	return exchange_new(f, &g, host);
}

bool
api_host(struct front *f, const char *host)
{
	return host && f->wildcard_suffix && strncasecmp(host, API_HOST_PREFIX, 4) == 0 &&
	       strcasecmp(host + 4, f->wildcard_suffix) == 0;
}

/*
 * What an API request's Authorization field admits. -EWOULDBLOCK as
 * resolve(). Whatever is not a token of ours (another scheme, a mistyped
 * one) counts as a bad token.
 */
static int
api_gate(struct front *f, const char *authorization, const char *address, bool may_block,
	 struct gate *g)
{
	const char *token = authorization;
	int r;

	g->session = NULL;
	g->refusal = &refused_token;
	if (!authorization)
		return 0;
	if (strncasecmp(authorization, "Bearer ", 7) == 0)
		token = authorization + 7 + strspn(authorization + 7, " ");
	r = resolve(f, token, true, address, may_block, &g->session);
	if (r == -ETOOMANYREFS) {
		g->refusal = &refused_throttled;
		return 0;
	}
	if (g->session)
		g->refusal = NULL;
	return r;
}

struct grain_exchange *
grain_exchange_new_api(struct front *f, const char *authorization, const char *host,
		       const char *address)
{
	struct gate g;

	if (api_gate(f, authorization, address, true, &g) < 0)
		g = (struct gate){ .refusal = &refused_token };
	return exchange_new(f, &g, host);
}

static enum MHD_Result
exchange_refuse(struct grain_exchange *x, struct MHD_Connection *connection,
		const char *upload_data, size_t *upload_data_size)
{
	const struct refusal *refusal = x->refusal;
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
	if (x->location) {
		(void)MHD_add_response_header(response, MHD_HTTP_HEADER_LOCATION, x->location);
		for (size_t i = 0; i < ELEMENTSOF(x->set_cookie) && x->set_cookie[i]; i++)
			(void)MHD_add_response_header(response, MHD_HTTP_HEADER_SET_COOKIE,
						      x->set_cookie[i]);
	}
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

/* A page for the event loop (body and fields are the loop's to free then). */
static int
route_page(const struct gate *g, bool close, struct loop_route *ret)
{
	const struct refusal *refusal = g->refusal;
	_cleanup_free_ char *body = strdup(refusal->page), *fields = NULL;
	int n = 0;

	if (refusal == &entered)
		n = asprintf(&fields, "%s: %s\r\nLocation: %s\r\nSet-Cookie: %s\r\n%s%s%s",
			     refusal->field, refusal->value, g->location, g->set_cookie[0],
			     g->set_cookie[1][0] ? "Set-Cookie: " : "", g->set_cookie[1],
			     g->set_cookie[1][0] ? "\r\n" : "");
	else if (refusal->field)
		n = asprintf(&fields, "%s: %s\r\n", refusal->field, refusal->value);
	if (!body || n < 0)
		return -ENOMEM;
	n = (int)strlen(body);
	*ret = (struct loop_route){
		.status = refusal->status,
		.content_type = "text/html; charset=utf-8",
		.body_len = (size_t)n,
		.body = TAKE_PTR(body),
		.close = close,
		.fields = TAKE_PTR(fields),
	};
	return 0;
}

int
grain_route(struct front *f, const struct http_request_head *head, const char *address,
	    bool may_block, struct loop_route *ret)
{
	const char *label = session_host_label(f, head->host);
	const char *cookies[COOKIE_FIELDS_MAX + 1] = {}, *authorization = NULL;
	struct grain_exchange *x;
	struct gate g;
	size_t n = 0;
	int r;

	for (size_t i = 0; i < head->n_headers; i++)
		if (strcasecmp(head->headers[i].name, "Cookie") == 0 && n < COOKIE_FIELDS_MAX)
			cookies[n++] = head->headers[i].value;
		else if (strcasecmp(head->headers[i].name, "Authorization") == 0 && !authorization)
			authorization = head->headers[i].value;
	if (label)
		r = session_gate(f, label, head->target, head->method, cookies, may_block, &g);
	else if (api_host(f, head->host))
		r = api_gate(f, authorization, address, may_block, &g);
	else
		/* The shell on a connection we serve: its next connection goes to libmicrohttpd. */
		return route_page(&(struct gate){ .refusal = &refused_misdirected }, true, ret);
	if (r < 0)
		return r;
	if (!g.session)
		return route_page(&g, false, ret);
	x = exchange_new(f, &g, head->host);
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
