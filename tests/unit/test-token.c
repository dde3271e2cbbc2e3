/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/token.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static bool
is_base64url(const char *s)
{
	for (; *s; s++)
		if (!((*s >= 'a' && *s <= 'z') || (*s >= 'A' && *s <= 'Z') ||
		      (*s >= '0' && *s <= '9') || *s == '-' || *s == '_'))
			return false;
	return true;
}

TEST(new_token_shape_and_round_trip)
{
	char t[TOKEN_STRING_LEN + 1];
	uint8_t raw[TOKEN_BYTES];

	CHECK_OK(token_new(t));
	CHECK_UINT_EQ(strlen(t), 43);
	CHECK(is_base64url(t));
	CHECK_OK(token_decode(t, strlen(t), raw));
}

static int
compare_tokens(const void *a, const void *b)
{
	return memcmp(a, b, TOKEN_STRING_LEN);
}

TEST(no_duplicates_in_100k)
{
	enum { N = 100000 };
	char(*tokens)[TOKEN_STRING_LEN + 1] = calloc(N, sizeof(*tokens));
	size_t dups = 0;

	CHECK(tokens != NULL);
	if (!tokens)
		return;
	for (size_t i = 0; i < N; i++)
		(void)token_new(tokens[i]);
	qsort(tokens, N, sizeof(*tokens), compare_tokens);
	for (size_t i = 1; i < N; i++)
		dups += memcmp(tokens[i - 1], tokens[i], TOKEN_STRING_LEN) == 0;
	CHECK_UINT_EQ(dups, 0);
	free(tokens);
}

TEST(decode_refuses_altered_tokens)
{
	char t[TOKEN_STRING_LEN + 1], bad[TOKEN_STRING_LEN + 8];
	uint8_t raw[TOKEN_BYTES];

	CHECK_OK(token_new(t));
	/* truncated, extended, padded */
	CHECK_ERR(token_decode(t, 42, raw), EINVAL);
	memcpy(bad, t, 43);
	bad[43] = 'A';
	CHECK_ERR(token_decode(bad, 44, raw), EINVAL);
	bad[43] = '=';
	CHECK_ERR(token_decode(bad, 44, raw), EINVAL);
	/* standard base64 alphabet, garbage, NUL inside */
	memcpy(bad, t, 43);
	bad[5] = '+';
	CHECK_ERR(token_decode(bad, 43, raw), EINVAL);
	bad[5] = '/';
	CHECK_ERR(token_decode(bad, 43, raw), EINVAL);
	bad[5] = '\0';
	CHECK_ERR(token_decode(bad, 43, raw), EINVAL);
	bad[5] = '%';
	CHECK_ERR(token_decode(bad, 43, raw), EINVAL);
	CHECK_ERR(token_decode("", 0, raw), EINVAL);
	CHECK_ERR(token_decode(NULL, 43, raw), EINVAL);
}

TEST(decode_refuses_non_canonical_last_char)
{
	char t[TOKEN_STRING_LEN + 1];
	uint8_t raw[TOKEN_BYTES];
	static const char alphabet[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
	int accepted = 0;

	/* Of the 64 possible last characters, exactly 16 leave the 2 spare bits zero. */
	CHECK_OK(token_new(t));
	for (size_t i = 0; i < 64; i++) {
		t[42] = alphabet[i];
		accepted += token_decode(t, 43, raw) == 0;
	}
	CHECK_INT_EQ(accepted, 16);
}

TEST(recased_token_is_another_token)
{
	char t[TOKEN_STRING_LEN + 1];
	uint8_t h1[TOKEN_HASH_BYTES], h2[TOKEN_HASH_BYTES];
	size_t i;

	do {
		CHECK_OK(token_new(t));
		for (i = 0; i < 42 && !(t[i] >= 'a' && t[i] <= 'z'); i++)
			;
	} while (i == 42);
	CHECK_OK(token_hash_string(t, 43, h1));
	t[i] = (char)(t[i] - 'a' + 'A');
	CHECK_OK(token_hash_string(t, 43, h2));
	CHECK(!token_equal(h1, h2, sizeof(h1)));
}

TEST(hash_is_stable_and_not_the_token)
{
	char t[TOKEN_STRING_LEN + 1];
	uint8_t raw[TOKEN_BYTES], h1[TOKEN_HASH_BYTES], h2[TOKEN_HASH_BYTES];

	CHECK_OK(token_new(t));
	CHECK_OK(token_decode(t, 43, raw));
	token_hash(raw, h1);
	CHECK_OK(token_hash_string(t, 43, h2));
	CHECK(token_equal(h1, h2, sizeof(h1)));
	CHECK(memcmp(h1, raw, sizeof(raw)) != 0);
	CHECK_ERR(token_hash_string("short", 5, h2), EINVAL);
}

TEST(hex)
{
	char hex[33], out[7];
	const uint8_t data[] = { 0x00, 0xab, 0xff };

	CHECK_OK(random_hex(hex, 16));
	CHECK_UINT_EQ(strlen(hex), 32);
	CHECK(strspn(hex, "0123456789abcdef") == 32);
	CHECK_STR_EQ(hex_encode(out, data, sizeof(data)), "00abff");
	CHECK_ERR(random_hex(hex, 0), EINVAL);
	CHECK_ERR(random_hex(hex, 65), EINVAL);
}
