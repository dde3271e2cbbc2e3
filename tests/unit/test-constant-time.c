/* SPDX-License-Identifier: MIT */
/*
 * test-constant-time: what touches a secret must not branch on it, checked
 * the way ctgrind does. Under valgrind's memcheck, a secret is marked
 * undefined; any branch or memory index that depends on it inside the code
 * under test is then a memcheck error ("Conditional jump or move depends on
 * uninitialised value(s)"), counted with VALGRIND_COUNT_ERRORS. Results are
 * marked defined again before the test looks at them: that one bit (equal or
 * not) is what a comparison is allowed to tell.
 *
 * The program runs itself under valgrind (re-executed from a constructor);
 * a deliberately leaky comparison is the control that proves the method
 * sees a leak. Skipped in sanitizer builds (valgrind cannot run them) and
 * where valgrind is missing.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>
#include <valgrind/memcheck.h>

#include "common/token.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

#define VALGRIND "/usr/bin/valgrind"

#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_UNDEFINED__)
#define SANITIZED 1
#else
#define SANITIZED 0
#endif

/* Before main(): become the same program under valgrind (glibc passes argv to constructors). */
__attribute__((constructor)) static void
under_valgrind(int argc, char *argv[], char *envp[])
{
	char self[4096];
	const char *args[] = { VALGRIND,
			       "--quiet",
			       "--tool=memcheck",
			       "--error-exitcode=0",
			       self,
			       argc > 1 ? argv[1] : NULL,
			       NULL };
	ssize_t n;

	if (SANITIZED || RUNNING_ON_VALGRIND || access(VALGRIND, X_OK) < 0)
		return;
	/* Its own path: to valgrind's tool, /proc/self/exe would be the tool. */
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n < 0)
		return;
	self[n] = '\0';
	/* execve() takes char *const[] for historical reasons; it changes nothing. */
	(void)execve(VALGRIND, (char *const *)args, envp);
	fprintf(stderr, "test-constant-time: cannot run %s: %s\n", VALGRIND, strerror(errno));
}

static bool
can_check(void)
{
	return !SANITIZED && RUNNING_ON_VALGRIND;
}

#define REQUIRE_VALGRIND()                                                                         \
	do {                                                                                       \
		if (SANITIZED)                                                                     \
			SKIP("sanitizer build: valgrind runs the plain build's copy");             \
		if (!can_check())                                                                  \
			SKIP("host: valgrind is not installed");                                   \
	} while (0)

static void
secret(void *p, size_t n)
{
	(void)VALGRIND_MAKE_MEM_UNDEFINED(p, n);
}

static void public(void *p, size_t n)
{
	(void)VALGRIND_MAKE_MEM_DEFINED(p, n);
}

static unsigned
errors(void)
{
	return (unsigned)VALGRIND_COUNT_ERRORS;
}

/* The control: what a naive comparison does, stopping at the first difference. */
static __attribute__((noinline)) bool
leaky_equal(const volatile uint8_t *a, const volatile uint8_t *b, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (a[i] != b[i])
			return false;
	return true;
}

TEST(the_control_leak_is_seen)
{
	uint8_t stored[32], guess[32];
	unsigned before;
	bool eq;

	REQUIRE_VALGRIND();
	randombytes_buf(stored, sizeof(stored));
	memcpy(guess, stored, sizeof(guess));
	guess[31] ^= 1;
	secret(stored, sizeof(stored));
	before = errors();
	printf("# the control: memcheck reports its branch on stderr, on purpose\n");
	eq = leaky_equal(stored, guess, sizeof(stored));
	public(&eq, sizeof(eq));
	CHECK(!eq);
	/* The method works: a branch on the secret is reported. */
	CHECK(errors() > before);
}

TEST(token_equal_does_not_branch_on_the_secret)
{
	uint8_t stored[TOKEN_HASH_BYTES], guess[TOKEN_HASH_BYTES];
	unsigned before = errors();
	bool eq;

	REQUIRE_VALGRIND();
	randombytes_buf(stored, sizeof(stored));
	for (int round = 0; round < 3; round++) {
		/* Equal, equal but the last byte, equal but the first. */
		memcpy(guess, stored, sizeof(guess));
		if (round == 1)
			guess[sizeof(guess) - 1] ^= 0x80;
		if (round == 2)
			guess[0] ^= 1;
		secret(stored, sizeof(stored));
		eq = token_equal(guess, stored, sizeof(stored));
		public(&eq, sizeof(eq));
		public(stored, sizeof(stored));
		CHECK(eq == (round == 0));
	}
	CHECK_UINT_EQ(errors(), before);
}

TEST(the_setup_token_compare_does_not_branch_on_it)
{
	/* front_api.c: the first-admin token, as text, against what the form sent. */
	char stored[TOKEN_STRING_LEN + 1], sent[TOKEN_STRING_LEN + 1];
	unsigned before = errors();
	bool eq;

	REQUIRE_VALGRIND();
	CHECK_OK(token_new(stored));
	CHECK_OK(token_new(sent));
	secret(stored, TOKEN_STRING_LEN);
	eq = token_equal(sent, stored, TOKEN_STRING_LEN);
	public(&eq, sizeof(eq));
	CHECK(!eq);
	CHECK_UINT_EQ(errors(), before);
}

TEST(hashing_a_secret_does_not_branch_on_it)
{
	/*
	 * Stored hashes come from secrets (tokens, session labels, enter keys,
	 * cookies: BLAKE2b-256); the session cache keys them with SipHash
	 * under a secret key of the process. Neither may leak what it hashes.
	 */
	uint8_t token[TOKEN_BYTES], hash[TOKEN_HASH_BYTES],
		key[crypto_shorthash_siphashx24_KEYBYTES];
	uint8_t short_hash[crypto_shorthash_siphashx24_BYTES];
	char label[33];
	unsigned before = errors();

	REQUIRE_VALGRIND();
	randombytes_buf(token, sizeof(token));
	randombytes_buf(key, sizeof(key));
	CHECK_OK(random_hex(label, 16));
	secret(token, sizeof(token));
	secret(label, 32);
	secret(key, sizeof(key));
	token_hash(token, hash);
	(void)crypto_generichash(hash, sizeof(hash), (const unsigned char *)label, 32, NULL, 0);
	(void)crypto_shorthash_siphashx24(short_hash, (const unsigned char *)label, 32, key);
	CHECK_UINT_EQ(errors(), before);
}

TEST(a_presented_cookie_is_checked_without_branching_on_the_stored_one)
{
	/* front_sessions.c cookie_matches(): hash what came, compare with the stored hash. */
	uint8_t stored[32], hash[32];
	char cookie[33];
	unsigned before = errors();
	bool eq;

	REQUIRE_VALGRIND();
	CHECK_OK(random_hex(cookie, 16));
	(void)crypto_generichash(stored, sizeof(stored), (const unsigned char *)cookie, 32, NULL,
				 0);
	secret(stored, sizeof(stored));
	(void)crypto_generichash(hash, sizeof(hash), (const unsigned char *)cookie, 32, NULL, 0);
	eq = sodium_memcmp(hash, stored, sizeof(hash)) == 0;
	public(&eq, sizeof(eq));
	CHECK(eq);
	CHECK_UINT_EQ(errors(), before);
}
