/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: what a grain's app sends the proxy (supervisor/http-response.c).
 * The input is an answer as it arrives on the app's fd: the head is found and
 * parsed, then whatever follows goes through the chunked decoder in spans as
 * small as the first byte says; Set-Cookie values are rewritten as the proxy
 * does. Whatever is accepted must hold what front_proxy.c relies on.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "tests/fuzz/fuzz-http.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_head(const struct http_response_head *h, size_t head_size)
{
	if (h->size != head_size || h->status < 100 || h->status > 599 || h->version_minor > 1 ||
	    h->n_headers > HTTP_HEADERS_MAX || (h->chunked && h->has_content_length))
		__builtin_trap();
	for (size_t i = 0; i < h->n_headers; i++) {
		const char *name = h->headers[i].name, *value = h->headers[i].value;

		if (!http_is_token(name, strlen(name)) || !http_value_is_safe(value, strlen(value)))
			__builtin_trap();
		if (strcasecmp(name, "Set-Cookie") == 0) {
			size_t before = strlen(value);
			size_t after = http_set_cookie_strip_domain(h->headers[i].value);

			if (after > before || after != strlen(value))
				__builtin_trap();
		}
	}
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct http_response_head *h;
	size_t head_size, max_data;
	char *buf;

	buf = fuzz_http_input(&data, &size, 2 * HTTP_HEAD_MAX, &max_data);
	if (!buf)
		return 0;
	h = malloc(sizeof(*h));
	if (!h)
		abort();

	if (http_head_end(buf, size, NULL, &head_size) == 0) {
		if (head_size > size)
			__builtin_trap();
		if (http_response_head_parse(buf, head_size, h) == 0) {
			check_head(h, head_size);
			(void)http_response_framing(h, false);
			(void)http_response_keeps_alive(h);
		}
		check_chunked((const char *)data + head_size, size - head_size, max_data);
	} else
		check_chunked((const char *)data, size, max_data);
	free(h);
	free(buf);
	return 0;
}
