/* SPDX-License-Identifier: MIT */
/*
 * tap.h: a small TAP producer for unit tests. A test file holds only TEST()
 * blocks; main() lives in tap.c, runs every test in file order and prints one
 * TAP line per test. Checks do not stop a test; each failing one prints both
 * sides as TAP diagnostics:
 *
 *	TEST(parse_size_units) {
 *		uint64_t v;
 *		CHECK_OK(parse_size("256M", &v));
 *		CHECK_UINT_EQ(v, 256ULL << 20);
 *		CHECK_ERR(parse_size("", &v), EINVAL);
 *	}
 *
 * `test-x NAME` runs only the tests whose name contains NAME.
 */
#ifndef GRANARY_TESTS_TAP_H
#define GRANARY_TESTS_TAP_H

#include <stdbool.h>
#include <stdint.h>

void tap_register(const char *name, void (*fn)(void));
bool tap_check(bool ok, const char *expr, const char *file, int line);
bool tap_check_int(bool ok, const char *a_expr, const char *b_expr, long long a, long long b,
		   const char *file, int line);
bool tap_check_uint(bool ok, const char *a_expr, const char *b_expr, unsigned long long a,
		    unsigned long long b, const char *file, int line);
bool tap_check_str(const char *a_expr, const char *b_expr, const char *a, const char *b,
		   const char *file, int line);
bool tap_check_err(const char *expr, long long got, int want_errno, const char *file, int line);
void tap_skip(const char *reason);

#define TEST(name)                                                                                 \
	static void test_##name(void);                                                             \
	__attribute__((constructor)) static void register_##name(void)                             \
	{                                                                                          \
		tap_register(#name, test_##name);                                                  \
	}                                                                                          \
	static void test_##name(void)

#define CHECK(cond) tap_check(!!(cond), #cond, __FILE__, __LINE__)
#define CHECK_INT_EQ(a, b)                                                                         \
	({                                                                                         \
		long long _a_ = (long long)(a), _b_ = (long long)(b);                              \
		tap_check_int(_a_ == _b_, #a, #b, _a_, _b_, __FILE__, __LINE__);                   \
	})
#define CHECK_UINT_EQ(a, b)                                                                        \
	({                                                                                         \
		unsigned long long _a_ = (unsigned long long)(a), _b_ = (unsigned long long)(b);   \
		tap_check_uint(_a_ == _b_, #a, #b, _a_, _b_, __FILE__, __LINE__);                  \
	})
#define CHECK_STR_EQ(a, b)   tap_check_str(#a, #b, (a), (b), __FILE__, __LINE__)
/* expr must return -err (err a positive errno constant). */
#define CHECK_ERR(expr, err) tap_check_err(#expr, (long long)(expr), (err), __FILE__, __LINE__)
/* expr must return >= 0. */
#define CHECK_OK(expr)	     tap_check_err(#expr, (long long)(expr), 0, __FILE__, __LINE__)
/* Skip the rest of this test, saying why (prefix "kernel: " for a missing kernel feature). */
#define SKIP(reason)                                                                               \
	do {                                                                                       \
		tap_skip(reason);                                                                  \
		return;                                                                            \
	} while (0)

#endif
