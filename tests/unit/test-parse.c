/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdint.h>
#include <string.h>

#include "common/parse.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

TEST(uint64_good)
{
	uint64_t v = 0;

	CHECK_OK(parse_uint64("0", &v));
	CHECK_UINT_EQ(v, 0);
	CHECK_OK(parse_uint64("007", &v));
	CHECK_UINT_EQ(v, 7);
	CHECK_OK(parse_uint64("18446744073709551615", &v));
	CHECK_UINT_EQ(v, UINT64_MAX);
}

TEST(uint64_bad)
{
	uint64_t v = 42;

	CHECK_ERR(parse_uint64("", &v), EINVAL);
	CHECK_ERR(parse_uint64(NULL, &v), EINVAL);
	CHECK_ERR(parse_uint64(" 1", &v), EINVAL);
	CHECK_ERR(parse_uint64("1 ", &v), EINVAL);
	CHECK_ERR(parse_uint64("-1", &v), EINVAL);
	CHECK_ERR(parse_uint64("+1", &v), EINVAL);
	CHECK_ERR(parse_uint64("0x10", &v), EINVAL);
	CHECK_ERR(parse_uint64("1e3", &v), EINVAL);
	CHECK_ERR(parse_uint64("abc", &v), EINVAL);
	CHECK_ERR(parse_uint64("18446744073709551616", &v), ERANGE);
	CHECK_ERR(parse_uint64("99999999999999999999999", &v), ERANGE);
	/* Failures never touch the output. */
	CHECK_UINT_EQ(v, 42);
}

TEST(int64_and_int)
{
	int64_t v;
	int i;

	CHECK_OK(parse_int64("-9223372036854775808", &v));
	CHECK(v == INT64_MIN);
	CHECK_OK(parse_int64("9223372036854775807", &v));
	CHECK(v == INT64_MAX);
	CHECK_ERR(parse_int64("9223372036854775808", &v), ERANGE);
	CHECK_ERR(parse_int64("-9223372036854775809", &v), ERANGE);
	CHECK_ERR(parse_int64("-", &v), EINVAL);
	CHECK_ERR(parse_int64("--1", &v), EINVAL);
	CHECK_OK(parse_int("-2147483648", &i));
	CHECK_INT_EQ(i, INT32_MIN);
	CHECK_ERR(parse_int("2147483648", &i), ERANGE);
}

TEST(uint32_and_port)
{
	uint32_t u;
	uint16_t p = 7;

	CHECK_OK(parse_uint32("4294967295", &u));
	CHECK_UINT_EQ(u, UINT32_MAX);
	CHECK_ERR(parse_uint32("4294967296", &u), ERANGE);
	CHECK_OK(parse_port("6080", false, &p));
	CHECK_UINT_EQ(p, 6080);
	CHECK_ERR(parse_port("0", false, &p), ERANGE);
	CHECK_OK(parse_port("0", true, &p));
	CHECK_UINT_EQ(p, 0);
	CHECK_ERR(parse_port("65536", true, &p), ERANGE);
	CHECK_ERR(parse_port("http", true, &p), EINVAL);
}

TEST(size_units)
{
	uint64_t v;

	CHECK_OK(parse_size("4096", &v));
	CHECK_UINT_EQ(v, 4096);
	CHECK_OK(parse_size("512B", &v));
	CHECK_UINT_EQ(v, 512);
	CHECK_OK(parse_size("64K", &v));
	CHECK_UINT_EQ(v, 64 * 1024);
	CHECK_OK(parse_size("256M", &v));
	CHECK_UINT_EQ(v, 256ULL << 20);
	CHECK_OK(parse_size("256MiB", &v));
	CHECK_UINT_EQ(v, 256ULL << 20);
	CHECK_OK(parse_size("1.5G", &v));
	CHECK_UINT_EQ(v, 3ULL << 29);
	CHECK_OK(parse_size("2T", &v));
	CHECK_UINT_EQ(v, 2ULL << 40);
	CHECK_OK(parse_size("0.5K", &v));
	CHECK_UINT_EQ(v, 512);
	CHECK_OK(parse_size("0", &v));
	CHECK_UINT_EQ(v, 0);
	/* Nine fractional digits count; the rest are ignored, not an error. */
	CHECK_OK(parse_size("1.0000000001T", &v));
	CHECK_UINT_EQ(v, 1ULL << 40);
}

TEST(size_bad)
{
	uint64_t v = 99;

	CHECK_ERR(parse_size("", &v), EINVAL);
	CHECK_ERR(parse_size("M", &v), EINVAL);
	CHECK_ERR(parse_size("256MB", &v), EINVAL);
	CHECK_ERR(parse_size("256m", &v), EINVAL);
	CHECK_ERR(parse_size("256 M", &v), EINVAL);
	CHECK_ERR(parse_size("-1M", &v), EINVAL);
	CHECK_ERR(parse_size("1.", &v), EINVAL);
	CHECK_ERR(parse_size(".5M", &v), EINVAL);
	CHECK_ERR(parse_size("1.5", &v), EINVAL);
	CHECK_ERR(parse_size("1M2", &v), EINVAL);
	CHECK_ERR(parse_size("16E", &v), ERANGE);
	CHECK_ERR(parse_size("16777216T", &v), ERANGE);
	CHECK_ERR(parse_size("18446744073709551616", &v), ERANGE);
	CHECK_UINT_EQ(v, 99);
}

TEST(duration)
{
	uint64_t ms;

	CHECK_OK(parse_duration_ms("90", &ms));
	CHECK_UINT_EQ(ms, 90000);
	CHECK_OK(parse_duration_ms("250ms", &ms));
	CHECK_UINT_EQ(ms, 250);
	CHECK_OK(parse_duration_ms("5m", &ms));
	CHECK_UINT_EQ(ms, 300000);
	CHECK_OK(parse_duration_ms("1h30m", &ms));
	CHECK_UINT_EQ(ms, 5400000);
	CHECK_OK(parse_duration_ms("7d", &ms));
	CHECK_UINT_EQ(ms, 604800000);
	CHECK_OK(parse_duration_ms("2w", &ms));
	CHECK_UINT_EQ(ms, 1209600000);
	CHECK_ERR(parse_duration_ms("", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("5x", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("1h30", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("h", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("-5m", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("5 m", &ms), EINVAL);
	CHECK_ERR(parse_duration_ms("99999999999999999w", &ms), ERANGE);
}

TEST(booleans)
{
	bool b = false;

	CHECK_OK(parse_bool("yes", &b));
	CHECK(b);
	CHECK_OK(parse_bool("OFF", &b));
	CHECK(!b);
	CHECK_OK(parse_bool("1", &b));
	CHECK(b);
	CHECK_ERR(parse_bool("2", &b), EINVAL);
	CHECK_ERR(parse_bool("", &b), EINVAL);
	CHECK_ERR(parse_bool("yess", &b), EINVAL);
}

TEST(format_size_round_trip)
{
	char buf[FORMAT_SIZE_MAX];
	uint64_t v;

	CHECK_STR_EQ(format_size(buf, sizeof(buf), 0), "0B");
	CHECK_STR_EQ(format_size(buf, sizeof(buf), 1023), "1023B");
	CHECK_STR_EQ(format_size(buf, sizeof(buf), 1024), "1K");
	CHECK_STR_EQ(format_size(buf, sizeof(buf), 1536), "1.5K");
	CHECK_STR_EQ(format_size(buf, sizeof(buf), 256ULL << 20), "256M");
	CHECK_STR_EQ(format_size(buf, sizeof(buf), UINT64_MAX), "15E");
	CHECK_OK(parse_size(format_size(buf, sizeof(buf), 3ULL << 29), &v));
	CHECK_UINT_EQ(v, 3ULL << 29);
}
