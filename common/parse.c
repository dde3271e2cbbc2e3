/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "common/macro.h"
#include "common/parse.h"
#include "common/banned.h"

static bool
is_digit(char c)
{
	return c >= '0' && c <= '9';
}

/*
 * Leading decimal digits of s into *ret; *end points past them. Returns
 * -EINVAL when there is no digit, -ERANGE on overflow.
 */
static int
digits(const char *s, uint64_t *ret, const char **end)
{
	uint64_t v = 0;
	const char *p = s;

	if (!is_digit(*p))
		return -EINVAL;
	for (; is_digit(*p); p++) {
		if (MUL_OVERFLOW(v, (uint64_t)10, &v) || ADD_OVERFLOW(v, (uint64_t)(*p - '0'), &v))
			return -ERANGE;
	}
	*ret = v;
	*end = p;
	return 0;
}

int
parse_uint64(const char *s, uint64_t *ret)
{
	const char *end;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	r = digits(s, &v, &end);
	if (r < 0)
		return r;
	if (*end)
		return -EINVAL;
	*ret = v;
	return 0;
}

int
parse_int64(const char *s, int64_t *ret)
{
	bool negative = false;
	uint64_t v;
	int r;

	if (!s)
		return -EINVAL;
	if (*s == '-') {
		negative = true;
		s++;
	}
	r = parse_uint64(s, &v);
	if (r < 0)
		return r;
	if (negative) {
		if (v > (uint64_t)INT64_MAX + 1)
			return -ERANGE;
		*ret = v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v;
	} else {
		if (v > INT64_MAX)
			return -ERANGE;
		*ret = (int64_t)v;
	}
	return 0;
}

int
parse_uint32(const char *s, uint32_t *ret)
{
	uint64_t v;
	int r;

	r = parse_uint64(s, &v);
	if (r < 0)
		return r;
	if (v > UINT32_MAX)
		return -ERANGE;
	*ret = (uint32_t)v;
	return 0;
}

int
parse_int(const char *s, int *ret)
{
	int64_t v;
	int r;

	r = parse_int64(s, &v);
	if (r < 0)
		return r;
	if (v < INT32_MIN || v > INT32_MAX)
		return -ERANGE;
	*ret = (int)v;
	return 0;
}

int
parse_port(const char *s, bool allow_zero, uint16_t *ret)
{
	uint64_t v;
	int r;

	r = parse_uint64(s, &v);
	if (r < 0)
		return r;
	if (v > 65535 || (v == 0 && !allow_zero))
		return -ERANGE;
	*ret = (uint16_t)v;
	return 0;
}

int
parse_size(const char *s, uint64_t *ret)
{
	static const struct {
		const char *suffix;
		uint64_t factor;
	} units[] = {
		{ "", 1 },	     { "B", 1 },
		{ "K", 1ULL << 10 }, { "KiB", 1ULL << 10 },
		{ "M", 1ULL << 20 }, { "MiB", 1ULL << 20 },
		{ "G", 1ULL << 30 }, { "GiB", 1ULL << 30 },
		{ "T", 1ULL << 40 }, { "TiB", 1ULL << 40 },
		{ "P", 1ULL << 50 }, { "PiB", 1ULL << 50 },
		{ "E", 1ULL << 60 }, { "EiB", 1ULL << 60 },
	};
	uint64_t whole, frac = 0, frac_scale = 1, factor = 0, v, part;
	const char *p;
	int r;

	if (!s)
		return -EINVAL;
	r = digits(s, &whole, &p);
	if (r < 0)
		return r;
	if (*p == '.') {
		p++;
		if (!is_digit(*p))
			return -EINVAL;
		/* Up to 9 fractional digits count; more precision than bytes is noise. */
		for (; is_digit(*p); p++)
			if (frac_scale < 1000000000ULL) {
				frac = frac * 10 + (uint64_t)(*p - '0');
				frac_scale *= 10;
			}
	}
	for (size_t i = 0; i < ELEMENTSOF(units); i++)
		if (strcmp(p, units[i].suffix) == 0) {
			factor = units[i].factor;
			break;
		}
	if (factor == 0)
		return -EINVAL;
	if (frac_scale > 1 && factor == 1)
		return -EINVAL; /* "1.5" bytes */

	if (MUL_OVERFLOW(whole, factor, &v))
		return -ERANGE;
	/*
	 * frac * factor could pass 64 bits (1e9 * 2^40), so split the factor:
	 * both products below stay under 1e18.
	 */
	part = (factor / frac_scale) * frac + ((factor % frac_scale) * frac) / frac_scale;
	if (ADD_OVERFLOW(v, part, &v))
		return -ERANGE;
	*ret = v;
	return 0;
}

int
parse_duration_ms(const char *s, uint64_t *ret)
{
	static const struct {
		const char *unit;
		uint64_t ms;
	} units[] = {
		{ "ms", 1 },	  { "s", 1000 },    { "sec", 1000 },   { "m", 60000 },
		{ "min", 60000 }, { "h", 3600000 }, { "d", 86400000 }, { "w", 604800000 },
	};
	uint64_t total = 0;
	const char *p = s;
	bool any = false;

	if (!s)
		return -EINVAL;
	while (*p) {
		uint64_t n, factor = 0, v;
		const char *unit;
		size_t unit_len;
		int r;

		r = digits(p, &n, &p);
		if (r < 0)
			return r;
		unit = p;
		while ((*p >= 'a' && *p <= 'z'))
			p++;
		unit_len = (size_t)(p - unit);
		if (unit_len == 0) {
			/* A bare number is seconds, and only on its own. */
			if (any || *p)
				return -EINVAL;
			factor = 1000;
		} else {
			for (size_t i = 0; i < ELEMENTSOF(units); i++)
				if (strlen(units[i].unit) == unit_len &&
				    memcmp(units[i].unit, unit, unit_len) == 0) {
					factor = units[i].ms;
					break;
				}
			if (factor == 0)
				return -EINVAL;
		}
		if (MUL_OVERFLOW(n, factor, &v) || ADD_OVERFLOW(total, v, &total))
			return -ERANGE;
		any = true;
	}
	if (!any)
		return -EINVAL;
	*ret = total;
	return 0;
}

int
parse_bool(const char *s, bool *ret)
{
	static const char *const yes[] = { "1", "yes", "y", "true", "on" };
	static const char *const no[] = { "0", "no", "n", "false", "off" };

	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(yes); i++)
		if (strcasecmp(s, yes[i]) == 0) {
			*ret = true;
			return 0;
		}
	for (size_t i = 0; i < ELEMENTSOF(no); i++)
		if (strcasecmp(s, no[i]) == 0) {
			*ret = false;
			return 0;
		}
	return -EINVAL;
}

char *
format_size(char *buf, size_t size, uint64_t bytes)
{
	static const char units[] = "KMGTPE";
	uint64_t scale = 1024;
	size_t i;

	if (bytes < 1024) {
		(void)snprintf(buf, size, "%" PRIu64 "B", bytes);
		return buf;
	}
	for (i = 0; i < sizeof(units) - 2 && bytes / scale >= 1024; i++)
		scale *= 1024;
	/* One decimal for small leading numbers ("1.5G"), none when it is whole. */
	if (bytes % scale == 0 || bytes / scale >= 10)
		(void)snprintf(buf, size, "%" PRIu64 "%c", bytes / scale, units[i]);
	else
		(void)snprintf(buf, size, "%" PRIu64 ".%" PRIu64 "%c", bytes / scale,
			       (bytes % scale) * 10 / scale, units[i]);
	return buf;
}
