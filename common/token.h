/* SPDX-License-Identifier: MIT */
/*
 * token.h: unguessable tokens and identifiers from libsodium.
 *
 * A token is 32 random bytes (libsodium's randombytes, getrandom(2) on Linux)
 * written as 43 characters of unpadded base64url. Granary stores only a token's
 * hash (BLAKE2b-256 of the 32 bytes) and compares hashes in constant time, so
 * the database never holds anything that opens a grain.
 *
 * Text that claims to be a token is untrusted: token_decode() accepts exactly
 * 43 canonical base64url characters and nothing else, so re-cased, padded,
 * truncated or extended forms all fail the same way.
 */
#ifndef GRANARY_COMMON_TOKEN_H
#define GRANARY_COMMON_TOKEN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define TOKEN_BYTES	 32
#define TOKEN_STRING_LEN 43 /* base64url of 32 bytes, no padding */
#define TOKEN_HASH_BYTES 32

/* Call once before threads start; later calls are cheap. -EIO if libsodium fails. */
int crypto_setup(void);

/* Fill buf with n random bytes. */
int random_bytes(void *buf, size_t n);

/* A new token: ret gets 43 characters and a NUL. */
int token_new(char ret[TOKEN_STRING_LEN + 1]);

/*
 * Decode the len bytes at s (not necessarily NUL-terminated). -EINVAL unless
 * they are exactly one canonical token.
 */
int token_decode(const char *s, size_t len, uint8_t ret[TOKEN_BYTES]);

/* BLAKE2b-256 of the raw token bytes: what the database stores. */
void token_hash(const uint8_t token[TOKEN_BYTES], uint8_t ret[TOKEN_HASH_BYTES]);

/* Decode and hash in one step; -EINVAL as token_decode(). */
int token_hash_string(const char *s, size_t len, uint8_t ret[TOKEN_HASH_BYTES]);

/* A new token (for its holder) and its hash (for the database). */
int token_new_hashed(char ret[TOKEN_STRING_LEN + 1], uint8_t ret_hash[TOKEN_HASH_BYTES]);

/* Constant-time equality of two n-byte values. */
bool token_equal(const void *a, const void *b, size_t n);

/*
 * nbytes random bytes as lowercase hex into ret, which must hold
 * 2 * nbytes + 1 characters (session hosts use 16 bytes: ui-<32 hex>).
 */
int random_hex(char *ret, size_t nbytes);

/* Lowercase hex of n bytes into ret (2 * n + 1 characters). Returns ret. */
char *hex_encode(char *ret, const void *data, size_t n);
/* Exactly len lowercase hex characters (s need not be NUL-terminated): the one spelling of an id. */
bool hex_valid(const char *s, size_t len);

#endif
