/* SPDX-License-Identifier: MIT */
/*
 * fuzz-http.h: what both HTTP fuzz targets share: how they read their input,
 * and the chunked decoder's invariants, checked on whatever follows the head
 * they parsed (request and answer bodies go through the same decoder).
 * Included by one target each: static.
 */
#ifndef GRANARY_TESTS_FUZZ_HTTP_H
#define GRANARY_TESTS_FUZZ_HTTP_H

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <stddef.h>
#include <sys/types.h>

#include "supervisor/supervisor-internal.h"

/* Decode in (len bytes) in spans of at most max_data; trap on a broken promise. */
static void
check_chunked(const char *in, size_t len, size_t max_data)
{
	struct http_chunked c = { 0 };

	while (len > 0 && !http_chunked_done(&c)) {
		const char *data;
		size_t data_len;
		ssize_t used = http_chunked_decode(&c, in, len, max_data, &data, &data_len);

		if (used < 0)
			return;
		if ((size_t)used > len || data_len > max_data || (used == 0 && data_len == 0) ||
		    (data_len > 0 && (data < in || data + data_len > in + used)))
			__builtin_trap();
		in += used;
		len -= (size_t)used;
	}
}

/*
 * The input's first byte is the largest span the chunked decoder may return
 * (1-64); the rest, at most limit bytes, is the connection's: *data and *size
 * are moved past the first byte, and a NUL-terminated copy returned (the
 * parsers write into it). NULL: nothing worth parsing.
 */
static char *
fuzz_http_input(const uint8_t **data, size_t *size, size_t limit, size_t *ret_max_data)
{
	char *buf;

	if (*size < 1 || *size > limit)
		return NULL;
	*ret_max_data = (size_t)(*data)[0] % 64 + 1;
	(*data)++;
	(*size)--;
	buf = malloc(*size + 1);
	if (!buf)
		abort();
	memcpy(buf, *data, *size);
	buf[*size] = '\0';
	return buf;
}

#endif
