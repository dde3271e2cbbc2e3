/* SPDX-License-Identifier: MIT */
/*
 * fuzz-http-chunked.h: the chunked decoder's invariants, checked by both HTTP
 * fuzz targets on whatever follows the head they parsed (request and answer
 * bodies go through the same decoder). Included by one target each: static.
 */
#ifndef GRANARY_TESTS_FUZZ_HTTP_CHUNKED_H
#define GRANARY_TESTS_FUZZ_HTTP_CHUNKED_H

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

#endif
