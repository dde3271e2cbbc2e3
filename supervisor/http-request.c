/* SPDX-License-Identifier: MIT */
/*
 * http-request.c: a client's request head, read strictly, for the event
 * loop that serves grain traffic itself (front_loop.c).
 *
 * These bytes come from the network: anything a proxy and an app could read
 * in two ways is refused (400), never guessed at. What "strict" means:
 *
 *   request line  method (a token) SP request-target SP "HTTP/1.1" or
 *                 "HTTP/1.0"; the target is "/..." (origin form) or "*",
 *                 of printable ASCII only (no SP, no CTL, no DEL)
 *   lines         end in CRLF; a bare LF or CR anywhere is refused
 *   fields        name = token, ":" right after it (no space before the
 *                 colon: RFC 9112 5.1), value of VCHAR, obs-text, SP and
 *                 HTAB; obs-fold (a line starting with SP/HTAB) is refused
 *   Host          at most one; an HTTP/1.1 request without one is refused
 *   framing       one Content-Length of digits, or one Transfer-Encoding of
 *                 exactly "chunked" on HTTP/1.1; never both (smuggling)
 *   size          the caller's buffer (HTTP_REQUEST_HEAD_MAX) and
 *                 HTTP_HEADERS_MAX fields
 *
 * Empty lines before the request line (RFC 9112 2.2) are the caller's to skip
 * (http_request_skip_empty_lines()).
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

size_t
http_request_skip_empty_lines(const char *buf, size_t len)
{
	size_t i = 0;

	while (i + 1 < len && buf[i] == '\r' && buf[i + 1] == '\n')
		i += 2;
	return i;
}

static int
parse_request_line(char *line, size_t len, struct http_request_head *h)
{
	char *sp1 = memchr(line, ' ', len), *sp2, *end = line + len;

	if (!sp1 || !http_is_token(line, (size_t)(sp1 - line)))
		return -EBADMSG;
	sp2 = memchr(sp1 + 1, ' ', (size_t)(end - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return -EBADMSG;
	for (const char *p = sp1 + 1; p < sp2; p++)
		if ((unsigned char)*p <= ' ' || (unsigned char)*p >= 0x7f)
			return -EBADMSG;
	if (end - sp2 != 9 || memcmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return -EBADMSG;
	*sp1 = *sp2 = '\0';
	h->method = line;
	h->target = sp1 + 1;
	h->version_minor = (unsigned)(sp2[8] - '0');
	if (h->target[0] != '/' && strcmp(h->target, "*") != 0)
		return -EBADMSG;
	return 0;
}

static int
head_field(struct http_request_head *h, char *name, char *value)
{
	int r;

	/* Most fields are none of these: one look at the first letter says so. */
	switch (name[0] | 0x20) {
	case 'c':
	case 'e':
	case 'h':
	case 't':
	case 'u':
		break;
	default:
		return 0;
	}
	r = http_framing_field(name, value, &h->has_content_length, &h->content_length,
			       &h->chunked);
	if (r != 0)
		return r < 0 ? r : 0;
	if (strcasecmp(name, "Host") == 0) {
		if (h->host)
			return -EBADMSG;
		h->host = value;
	} else if (strcasecmp(name, "Connection") == 0) {
		if (h->n_connection >= ELEMENTSOF(h->connection))
			return -E2BIG;
		h->connection[h->n_connection++] = value;
		h->connection_close = h->connection_close || http_list_has_token(value, "close");
		h->connection_keep_alive =
			h->connection_keep_alive || http_list_has_token(value, "keep-alive");
		h->connection_upgrade =
			h->connection_upgrade || http_list_has_token(value, "upgrade");
	} else if (strcasecmp(name, "Upgrade") == 0) {
		if (h->upgrade)
			return -EBADMSG;
		h->upgrade = value;
	} else if (strcasecmp(name, "Expect") == 0)
		h->expect_continue = strcasecmp(value, "100-continue") == 0;
	return 0;
}

int
http_request_head_parse(char *buf, size_t size, struct http_request_head *ret)
{
	struct http_request_head h = { .size = size };
	char *first;
	int r;

	r = http_head_split(buf, size, &first, h.headers, HTTP_HEADERS_MAX, &h.n_headers);
	if (r < 0)
		return r;
	r = parse_request_line(first, strlen(first), &h);
	if (r < 0)
		return r;
	for (size_t i = 0; i < h.n_headers; i++) {
		r = head_field(&h, h.headers[i].name, h.headers[i].value);
		if (r < 0)
			return r;
	}
	if (h.version_minor == 1 && !h.host)
		return -EBADMSG;
	if (!http_framing_valid(h.chunked, h.has_content_length, h.version_minor))
		return -EBADMSG;
	*ret = h;
	return 0;
}

bool
http_request_keeps_alive(const struct http_request_head *h)
{
	/* HTTP/1.0 clients get one answer per connection: simple, and what they mostly want. */
	return h->version_minor >= 1 && !h->connection_close;
}
