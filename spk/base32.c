/* SPDX-License-Identifier: MIT */
/*
 * base32.c: the base32 of app ids. Lowercase Crockford alphabet (no i, l, o,
 * u, so an id read aloud or copied by hand is hard to get wrong), bits taken
 * most significant first, no padding characters. libsodium has base64 and hex
 * but no base32, hence this file.
 */
#include <errno.h>
#include <string.h>

#include "spk/spk-internal.h"
#include "common/banned.h"

static const char alphabet[32] = "0123456789abcdefghjkmnpqrstvwxyz";

void
spk_base32_encode(const uint8_t *data, size_t n, char *ret)
{
	unsigned bits = 0, value = 0;
	size_t out = 0;

	for (size_t i = 0; i < n; i++) {
		value = (value << 8) | data[i];
		bits += 8;
		while (bits >= 5) {
			ret[out++] = alphabet[(value >> (bits - 5)) & 31];
			bits -= 5;
		}
		value &= (1u << bits) - 1;
	}
	if (bits > 0)
		ret[out++] = alphabet[(value << (5 - bits)) & 31];
	ret[out] = '\0';
}

static int
digit_value(char c)
{
	const char *p;

	if (c == '\0')
		return -1;
	p = memchr(alphabet, c, sizeof(alphabet));
	return p ? (int)(p - alphabet) : -1;
}

int
spk_base32_decode(const char *s, size_t len, uint8_t *ret, size_t n)
{
	unsigned bits = 0, value = 0;
	size_t out = 0;

	/* Exactly the encoder's length: no padding, nothing extra. */
	if (len != (n * 8 + 4) / 5)
		return -EINVAL;
	for (size_t i = 0; i < len; i++) {
		int d = digit_value(s[i]);

		if (d < 0)
			return -EINVAL;
		value = (value << 5) | (unsigned)d;
		bits += 5;
		if (bits >= 8) {
			ret[out++] = (uint8_t)(value >> (bits - 8));
			bits -= 8;
		}
		value &= (1u << bits) - 1;
	}
	/* The unused low bits of the last character must be zero: one spelling per key. */
	if (value != 0 || out != n)
		return -EINVAL;
	return 0;
}
