/* SPDX-License-Identifier: MIT */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/tap.h"
#include "common/banned.h"

#define MAX_TESTS 512

static struct {
	const char *name;
	void (*fn)(void);
} tests[MAX_TESTS];
static size_t n_tests;

static bool current_failed;
static const char *current_skip;

void
tap_register(const char *name, void (*fn)(void))
{
	if (n_tests >= MAX_TESTS) {
		fprintf(stderr, "tap: more than %d tests in one file\n", MAX_TESTS);
		abort();
	}
	tests[n_tests].name = name;
	tests[n_tests].fn = fn;
	n_tests++;
}

static bool
fail(const char *file, int line, const char *expr)
{
	current_failed = true;
	printf("#   %s:%d: check failed: %s\n", file, line, expr);
	return false;
}

bool
tap_check(bool ok, const char *expr, const char *file, int line)
{
	return ok ? true : fail(file, line, expr);
}

bool
tap_check_int(bool ok, const char *a_expr, const char *b_expr, long long a, long long b,
	      const char *file, int line)
{
	if (ok)
		return true;
	fail(file, line, "==");
	printf("#     %s = %lld\n#     %s = %lld\n", a_expr, a, b_expr, b);
	return false;
}

bool
tap_check_uint(bool ok, const char *a_expr, const char *b_expr, unsigned long long a,
	       unsigned long long b, const char *file, int line)
{
	if (ok)
		return true;
	fail(file, line, "==");
	printf("#     %s = %llu\n#     %s = %llu\n", a_expr, a, b_expr, b);
	return false;
}

bool
tap_check_str(const char *a_expr, const char *b_expr, const char *a, const char *b,
	      const char *file, int line)
{
	if ((!a && !b) || (a && b && strcmp(a, b) == 0))
		return true;
	fail(file, line, "string ==");
	printf("#     %s = %s%s%s\n", a_expr, a ? "\"" : "", a ? a : "NULL", a ? "\"" : "");
	printf("#     %s = %s%s%s\n", b_expr, b ? "\"" : "", b ? b : "NULL", b ? "\"" : "");
	return false;
}

bool
tap_check_err(const char *expr, long long got, int want_errno, const char *file, int line)
{
	if (want_errno == 0 ? got >= 0 : got == -(long long)want_errno)
		return true;
	fail(file, line, expr);
	if (want_errno == 0)
		printf("#     want >= 0, got %lld (%s)\n", got, got < 0 ? strerror((int)-got) : "");
	else
		printf("#     want -%s, got %lld%s%s%s\n", strerrorname_np(want_errno), got,
		       got < 0 ? " (-" : "", got < 0 ? strerrorname_np((int)-got) : "",
		       got < 0 ? ")" : "");
	return false;
}

void
tap_skip(const char *reason)
{
	current_skip = reason;
}

int
main(int argc, char *argv[])
{
	const char *filter = argc > 1 ? argv[1] : NULL;
	size_t planned = 0, number = 0, failed = 0;

	/* Unbuffered, so a crash mid-test still shows every line before it. */
	setvbuf(stdout, NULL, _IONBF, 0);

	for (size_t i = 0; i < n_tests; i++)
		if (!filter || strstr(tests[i].name, filter))
			planned++;
	printf("1..%zu\n", planned);

	for (size_t i = 0; i < n_tests; i++) {
		if (filter && !strstr(tests[i].name, filter))
			continue;
		current_failed = false;
		current_skip = NULL;
		tests[i].fn();
		number++;
		if (current_failed) {
			failed++;
			printf("not ok %zu - %s\n", number, tests[i].name);
		} else if (current_skip)
			printf("ok %zu - %s # SKIP %s\n", number, tests[i].name, current_skip);
		else
			printf("ok %zu - %s\n", number, tests[i].name);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
