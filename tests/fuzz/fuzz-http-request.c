/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: what a client sends the event loop (supervisor/http-request.c).
 * The input is a connection's bytes: empty lines skipped, the head found and
 * parsed (its Cookie fields read as the session gate and the proxy do), then
 * the rest goes through the chunked decoder (request bodies use it too) in
 * spans as small as the first byte says. Whatever is accepted must hold what
 * front_loop.c relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "supervisor/supervisor-internal.h"
#include "tests/fuzz/fuzz-http.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

/*
 * A Cookie field as the session gate and the proxy read it: every value of
 * the grain cookie lies inside the field, and none survives the filter.
 */
static void
check_cookies(const char *field)
{
	static const char *const strip[] = { GRAIN_COOKIE, SESSION_COOKIE, NULL };
	size_t field_len = strlen(field), len, n = 0;
	const char *pos = field, *v;
	char *out = malloc(field_len + 1);

	if (!out)
		abort();
	while ((v = http_cookie_next(&pos, GRAIN_COOKIE, &len)))
		if (v < field || v + len > field + field_len || pos < v + len ||
		    memchr(v, ';', len) || ++n > field_len)
			__builtin_trap();
	if (http_cookie_filter(field, strip, out, field_len + 1, &len) == 0) {
		pos = out;
		if (len > field_len || http_cookie_next(&pos, GRAIN_COOKIE, &len))
			__builtin_trap();
	}
	free(out);
}

static void
check_head(const struct http_request_head *h, size_t head_size)
{
	if (h->size != head_size || h->version_minor > 1 || h->n_headers > HTTP_HEADERS_MAX ||
	    h->n_connection > HTTP_CONNECTION_MAX || (h->chunked && h->has_content_length) ||
	    (h->version_minor == 1 && !h->host) || !http_is_token(h->method, strlen(h->method)) ||
	    (h->target[0] != '/' && strcmp(h->target, "*") != 0))
		__builtin_trap();
	for (const char *p = h->target; *p; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			__builtin_trap();
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *name = h->headers[i].name, *value = h->headers[i].value;

		if (!http_is_token(name, strlen(name)) || !http_value_is_safe(value, strlen(value)))
			__builtin_trap();
		if (strcasecmp(name, "Cookie") == 0)
			check_cookies(value);
	}
	(void)http_request_keeps_alive(h);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_request_head *h;
	size_t skip, head_size, max_data;
	char *buf;

	buf = fuzz_http_input(&data, &size, 2 * HTTP_REQUEST_HEAD_MAX, &max_data);
	if (!buf)
		return 0;
	h = malloc(sizeof(*h));
	if (!h)
		abort();

	skip = http_request_skip_empty_lines(buf, size);
	if (skip > size || skip % 2)
		__builtin_trap();
	if (http_head_end(buf + skip, size - skip, NULL, &head_size) == 0) {
		if (head_size > size - skip)
			__builtin_trap();
		if (http_request_head_parse(buf + skip, head_size, h) == 0)
			check_head(h, head_size);
		check_chunked((const char *)data + skip + head_size, size - skip - head_size,
			      max_data);
	}
	free(h);
	free(buf);
	return 0;
}
