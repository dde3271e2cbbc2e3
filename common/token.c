/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <string.h>

#include <sodium.h>

#include "common/macro.h"
#include "common/token.h"
#include "common/banned.h"

int
crypto_setup(void)
{
	/* 0: initialised now, 1: already was, -1: failure (no entropy source). */
	return sodium_init() < 0 ? -EIO : 0;
}

int
random_bytes(void *buf, size_t n)
{
	int r = crypto_setup();

	if (r < 0)
		return r;
	randombytes_buf(buf, n);
	return 0;
}

int
token_new(char ret[TOKEN_STRING_LEN + 1])
{
	uint8_t raw[TOKEN_BYTES];
	int r;

	r = random_bytes(raw, sizeof(raw));
	if (r < 0)
		return r;
	(void)sodium_bin2base64(ret, TOKEN_STRING_LEN + 1, raw, sizeof(raw),
				sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

int
token_decode(const char *s, size_t len, uint8_t ret[TOKEN_BYTES])
{
	char again[TOKEN_STRING_LEN + 1];
	uint8_t raw[TOKEN_BYTES];
	size_t raw_len = 0;
	const char *end = NULL;

	if (!s || len != TOKEN_STRING_LEN)
		return -EINVAL;
	if (sodium_base642bin(raw, sizeof(raw), s, len, NULL, &raw_len, &end,
			      sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    raw_len != TOKEN_BYTES || end != s + len)
		return -EINVAL;
	/*
	 * 43 characters carry 258 bits; the last 2 must be zero. Re-encoding and
	 * comparing makes "canonical" a property we check, not one we trust the
	 * decoder for.
	 */
	(void)sodium_bin2base64(again, sizeof(again), raw, sizeof(raw),
				sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	if (sodium_memcmp(again, s, TOKEN_STRING_LEN) != 0) {
		sodium_memzero(raw, sizeof(raw));
		return -EINVAL;
	}
	memcpy(ret, raw, sizeof(raw));
	sodium_memzero(raw, sizeof(raw));
	sodium_memzero(again, sizeof(again));
	return 0;
}

void
token_hash(const uint8_t token[TOKEN_BYTES], uint8_t ret[TOKEN_HASH_BYTES])
{
	(void)crypto_generichash(ret, TOKEN_HASH_BYTES, token, TOKEN_BYTES, NULL, 0);
}

int
token_hash_string(const char *s, size_t len, uint8_t ret[TOKEN_HASH_BYTES])
{
	uint8_t raw[TOKEN_BYTES];
	int r;

	r = token_decode(s, len, raw);
	if (r < 0)
		return r;
	token_hash(raw, ret);
	sodium_memzero(raw, sizeof(raw));
	return 0;
}

int
token_new_hashed(char ret[TOKEN_STRING_LEN + 1], uint8_t ret_hash[TOKEN_HASH_BYTES])
{
	int r = token_new(ret);

	return r < 0 ? r : token_hash_string(ret, TOKEN_STRING_LEN, ret_hash);
}

bool
token_equal(const void *a, const void *b, size_t n)
{
	return sodium_memcmp(a, b, n) == 0;
}

char *
hex_encode(char *ret, const void *data, size_t n)
{
	return sodium_bin2hex(ret, 2 * n + 1, data, n);
}

int
random_hex(char *ret, size_t nbytes)
{
	uint8_t raw[64];
	int r;

	if (nbytes == 0 || nbytes > sizeof(raw))
		return -EINVAL;
	r = random_bytes(raw, nbytes);
	if (r < 0)
		return r;
	(void)hex_encode(ret, raw, nbytes);
	return 0;
}

bool
hex_valid(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
			return false;
	return true;
}
