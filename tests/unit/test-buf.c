/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

TEST(append_and_printf)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;

	CHECK_OK(buf_append_str(&b, "hello"));
	CHECK_OK(buf_append_char(&b, ' '));
	CHECK_OK(buf_printf(&b, "%s %d", "world", 42));
	CHECK_STR_EQ(b.data, "hello world 42");
	CHECK_UINT_EQ(b.len, 14);
	CHECK_OK(buf_append(&b, "", 0));
	CHECK_UINT_EQ(b.len, 14);
}

TEST(binary_data_keeps_nul_terminator)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	const char bytes[] = { 'a', '\0', 'b' };

	CHECK_OK(buf_append(&b, bytes, sizeof(bytes)));
	CHECK_UINT_EQ(b.len, 3);
	CHECK(memcmp(b.data, bytes, 3) == 0);
	CHECK(b.data[3] == '\0');
}

TEST(grows_across_many_appends)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	int ok = 1;

	for (int i = 0; i < 100000; i++)
		ok &= buf_printf(&b, "%d,", i % 10) == 0;
	CHECK(ok);
	CHECK_UINT_EQ(b.len, 200000);
	CHECK(b.cap >= b.len + 1);
	CHECK(b.data[199999] == ',');
}

TEST(limit_refuses_and_keeps_contents)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT_LIMIT(8);

	CHECK_OK(buf_append_str(&b, "12345678"));
	CHECK_ERR(buf_append_char(&b, '9'), E2BIG);
	CHECK_ERR(buf_printf(&b, "%s", "x"), E2BIG);
	CHECK_STR_EQ(b.data, "12345678");
	CHECK_UINT_EQ(b.len, 8);
	/* The cap never passes limit + 1 bytes. */
	CHECK(b.cap <= 9);
	buf_clear(&b);
	CHECK_UINT_EQ(b.len, 0);
	CHECK_STR_EQ(b.data, "");
	CHECK_OK(buf_append_str(&b, "abc"));
}

TEST(overflowing_reserve)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;

	CHECK_OK(buf_append_str(&b, "x"));
	CHECK_ERR(buf_reserve(&b, SIZE_MAX), E2BIG);
	CHECK_ERR(buf_reserve(&b, SIZE_MAX - 1), E2BIG);
	CHECK_STR_EQ(b.data, "x");
}

TEST(steal)
{
	_cleanup_(buf_release) struct buf b = BUF_INIT;
	_cleanup_free_ char *empty = NULL, *s = NULL;

	empty = buf_steal(&b);
	CHECK_STR_EQ(empty, "");
	CHECK_OK(buf_append_str(&b, "data"));
	s = buf_steal(&b);
	CHECK_STR_EQ(s, "data");
	CHECK(b.data == NULL);
	CHECK_UINT_EQ(b.len, 0);
}
