/* SPDX-License-Identifier: MIT */
/*
 * auth.c: accounts and sessions.
 *
 * - Passwords: argon2id through libsodium's crypto_pwhash_str() at the
 *   "interactive" cost (64 MiB, 2 passes); the hash string carries its own
 *   salt and parameters, so raising the cost later rehashes at next login.
 * - Sessions: a 32-byte random token in a cookie; the database keeps only its
 *   BLAKE2b hash, so a copy of the database opens no session.
 * - Login failures are counted per client address and per user name in a
 *   small fixed table (bounded memory whatever an attacker sends); past the
 *   limit a login answers 429 until the window passes.
 */
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include <sodium.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/token.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

int
user_name_check(const char *name)
{
	size_t len;

	if (!name)
		return -EINVAL;
	len = strlen(name);
	if (len < 1 || len > USER_NAME_MAX)
		return -EINVAL;
	/* Lowercase letters, digits, '.', '_', '-'; starting with a letter or digit. */
	for (size_t i = 0; i < len; i++) {
		char c = name[i];
		bool alnum = (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');

		if (!alnum && (i == 0 || (c != '.' && c != '_' && c != '-')))
			return -EINVAL;
	}
	return 0;
}

int
password_check(const char *password)
{
	size_t len;

	if (!password)
		return -EINVAL;
	len = strlen(password);
	if (len < PASSWORD_MIN)
		return -EINVAL;
	if (len > PASSWORD_MAX)
		return -E2BIG;
	return 0;
}

int
password_hash(const char *password, char ret[PASSWORD_HASH_MAX + 1])
{
	int r;

	r = password_check(password);
	if (r < 0)
		return r;
	r = crypto_setup();
	if (r < 0)
		return r;
	if (crypto_pwhash_str(ret, password, strlen(password), crypto_pwhash_OPSLIMIT_INTERACTIVE,
			      crypto_pwhash_MEMLIMIT_INTERACTIVE) != 0)
		return -ENOMEM; /* the only documented failure: memory for the hash */
	return 0;
}

int
password_verify(const char *hash, const char *password)
{
	/* Bounded first: argon2 over a megabyte of "password" is a cheap DoS. */
	if (!hash || !password || strlen(password) > PASSWORD_MAX)
		return -EACCES;
	if (crypto_setup() < 0)
		return -EIO;
	return crypto_pwhash_str_verify(hash, password, strlen(password)) == 0 ? 0 : -EACCES;
}

int
session_create(struct db *db, int64_t user_id, int64_t now, char ret_token[TOKEN_STRING_LEN + 1])
{
	char token[TOKEN_STRING_LEN + 1];
	uint8_t hash[TOKEN_HASH_BYTES];
	int r;

	r = token_new(token);
	if (r < 0)
		return r;
	r = token_hash_string(token, TOKEN_STRING_LEN, hash);
	if (r < 0)
		return r;
	r = db_session_add(db, hash, user_id, now, now + SESSION_LIFETIME);
	if (r < 0)
		return r;
	memcpy(ret_token, token, sizeof(token));
	sodium_memzero(token, sizeof(token));
	return 0;
}

int
session_lookup(struct db *db, const char *token, int64_t now, struct db_user *ret_user)
{
	uint8_t hash[TOKEN_HASH_BYTES];
	int64_t user_id, expires_at;
	int r;

	if (!token)
		return -ENOENT;
	/* Anything but a well-formed token is simply "no session", like an unknown one. */
	if (token_hash_string(token, strlen(token), hash) < 0)
		return -ENOENT;
	r = db_session_get(db, hash, now, &user_id, &expires_at);
	if (r < 0)
		return r;
	/* Sliding expiry, written at most once per half lifetime. */
	if (expires_at - now < SESSION_LIFETIME / 2)
		(void)db_session_touch(db, hash, now, now + SESSION_LIFETIME);
	return db_user_by_id(db, user_id, ret_user, NULL, 0);
}

int
session_end(struct db *db, const char *token)
{
	uint8_t hash[TOKEN_HASH_BYTES];

	if (!token || token_hash_string(token, strlen(token), hash) < 0)
		return 0;
	return db_session_delete(db, hash);
}

int
session_end_others(struct db *db, int64_t user_id, const char *keep_token)
{
	uint8_t hash[TOKEN_HASH_BYTES];
	bool keep = keep_token && token_hash_string(keep_token, strlen(keep_token), hash) == 0;

	return db_session_delete_for_user(db, user_id, keep ? hash : NULL);
}

/*
 * Login throttling. Keys are BLAKE2b hashes of "addr:<address>" and
 * "user:<name>", so the table holds no personal data in clear and has a fixed
 * size: an attacker cycling names evicts the oldest entries, never grows it.
 */
#define THROTTLE_SLOTS 1024

struct throttle_slot {
	uint8_t key[16];
	int64_t window_start;
	uint32_t failures;
};

static struct throttle_slot throttle[THROTTLE_SLOTS];

static struct throttle_slot *
throttle_find(const char *kind, const char *value, int64_t now, bool create)
{
	uint8_t key[16];
	crypto_generichash_state state;
	struct throttle_slot *oldest = NULL;

	crypto_generichash_init(&state, NULL, 0, sizeof(key));
	crypto_generichash_update(&state, (const uint8_t *)kind, strlen(kind));
	crypto_generichash_update(&state, (const uint8_t *)":", 1);
	crypto_generichash_update(&state, (const uint8_t *)value, strlen(value));
	crypto_generichash_final(&state, key, sizeof(key));

	/* Linear probe over a small window from the hash: O(8) per lookup. */
	size_t start = ((size_t)key[0] | (size_t)key[1] << 8) % THROTTLE_SLOTS;
	for (size_t i = 0; i < 8; i++) {
		struct throttle_slot *s = &throttle[(start + i) % THROTTLE_SLOTS];

		if (memcmp(s->key, key, sizeof(key)) == 0) {
			if (now - s->window_start >= LOGIN_THROTTLE_WINDOW) {
				s->window_start = now;
				s->failures = 0;
			}
			return s;
		}
		if (!oldest || s->window_start < oldest->window_start)
			oldest = s;
	}
	if (!create)
		return NULL;
	memcpy(oldest->key, key, sizeof(key));
	oldest->window_start = now;
	oldest->failures = 0;
	return oldest;
}

int
login_throttled(const char *address, const char *name, int64_t now, int64_t *ret_retry_after)
{
	const char *kinds[] = { "addr", "user" };
	const char *values[] = { address, name };

	for (size_t i = 0; i < ELEMENTSOF(kinds); i++) {
		struct throttle_slot *s;

		if (!values[i])
			continue;
		s = throttle_find(kinds[i], values[i], now, false);
		if (s && s->failures >= LOGIN_THROTTLE_FAILURES) {
			if (ret_retry_after)
				*ret_retry_after = s->window_start + LOGIN_THROTTLE_WINDOW - now;
			return -EAGAIN;
		}
	}
	return 0;
}

void
login_failed(const char *address, const char *name, int64_t now)
{
	if (address)
		throttle_find("addr", address, now, true)->failures++;
	if (name)
		throttle_find("user", name, now, true)->failures++;
}

int
bad_tokens_throttled(const char *address, int64_t now, int64_t *ret_retry_after)
{
	struct throttle_slot *s = throttle_find("token", address, now, false);

	if (s && s->failures >= BAD_TOKENS_MAX) {
		*ret_retry_after = s->window_start + LOGIN_THROTTLE_WINDOW - now;
		return -EAGAIN;
	}
	return 0;
}

void
bad_token_seen(const char *address, int64_t now)
{
	throttle_find("token", address, now, true)->failures++;
}

void
login_throttle_reset(void)
{
	memset(throttle, 0, sizeof(throttle));
}
