/* SPDX-License-Identifier: MIT */
/* supervisor/http-request.c: a client's request head, read strictly. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static struct http_request_head head;
static char buf[HTTP_REQUEST_HEAD_MAX + 16];

/* Skip empty lines, find the end of s and parse it; returns what the first failing step said. */
static int
parse(const char *s)
{
	size_t len = strlen(s), skip, size;
	int r;

	memcpy(buf, s, len + 1);
	skip = http_request_skip_empty_lines(buf, len);
	r = http_head_end(buf + skip, len - skip, NULL, &size);
	if (r < 0)
		return r;
	return http_request_head_parse(buf + skip, size, &head);
}

TEST(request_good)
{
	static const char s[] = "POST /a%2Fb?x=1&y=%7E HTTP/1.1\r\nHost: ui-x.localhost:6080\r\n"
				"Content-Length: 5\r\nX-Spaces: \t padded \t\r\nX-Empty:\r\n"
				"Expect: 100-Continue\r\n\r\nhello";

	CHECK_OK(parse(s));
	CHECK_STR_EQ(head.method, "POST");
	CHECK_STR_EQ(head.target, "/a%2Fb?x=1&y=%7E");
	CHECK_UINT_EQ(head.version_minor, 1);
	CHECK_UINT_EQ(head.size, strlen(s) - strlen("hello"));
	CHECK_STR_EQ(head.host, "ui-x.localhost:6080");
	CHECK(head.has_content_length);
	CHECK_UINT_EQ(head.content_length, 5);
	CHECK(!head.chunked);
	CHECK(head.expect_continue);
	CHECK_UINT_EQ(head.n_headers, 5);
	CHECK_STR_EQ(head.headers[2].name, "X-Spaces");
	CHECK_STR_EQ(head.headers[2].value, "padded");
	CHECK_STR_EQ(head.headers[3].value, "");
	CHECK(http_request_keeps_alive(&head));
}

TEST(request_lines)
{
	CHECK_OK(parse("OPTIONS * HTTP/1.1\r\nHost: h\r\n\r\n"));
	CHECK_STR_EQ(head.target, "*");
	CHECK_OK(parse("\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n"));
	CHECK_OK(parse("GET / HTTP/1.0\r\n\r\n"));
	CHECK_UINT_EQ(head.version_minor, 0);
	CHECK(head.host == NULL);
	CHECK(!http_request_keeps_alive(&head));
	CHECK_ERR(parse("GET / HTTP/1.1\r\n\r\n"), EBADMSG);		 /* no Host */
	CHECK_ERR(parse("GET  / HTTP/1.1\r\nHost: h\r\n\r\n"), EBADMSG); /* two spaces */
	CHECK_ERR(parse("GET / HTTP/1.1 \r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET /\x01 HTTP/1.1\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET /\x80 HTTP/1.1\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET http://h/ HTTP/1.1\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/2.0\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.2\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / http/1.1\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("G(T / HTTP/1.1\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET /\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"), EBADMSG);
}

TEST(request_fields)
{
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\nHost: h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost : h\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\n folded\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\nX: y\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\nX: \x7f\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\n: empty name\r\n\r\n"), EBADMSG);
	CHECK_OK(parse("GET / HTTP/1.1\r\nHost: h\r\nX: caf\xc3\xa9\r\n\r\n"));
}

TEST(request_framing)
{
	CHECK_OK(parse("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: Chunked\r\n\r\n"));
	CHECK(head.chunked && !head.has_content_length);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
			"Content-Length: 3\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n"
			"Transfer-Encoding: chunked\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3, 3\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n"
			"Content-Length: 3\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: -1\r\n\r\n"), EBADMSG);
	CHECK_ERR(
		parse("PUT / HTTP/1.1\r\nHost: h\r\nContent-Length: 99999999999999999999\r\n\r\n"),
		EBADMSG);
}

TEST(request_connection)
{
	CHECK_OK(parse("GET /ws HTTP/1.1\r\nHost: h\r\nConnection: keep-alive, Upgrade\r\n"
		       "Upgrade: websocket\r\nConnection: X-Hop\r\n\r\n"));
	CHECK(head.connection_upgrade && head.connection_keep_alive && !head.connection_close);
	CHECK_UINT_EQ(head.n_connection, 2);
	CHECK_STR_EQ(head.connection[1], "X-Hop");
	CHECK_STR_EQ(head.upgrade, "websocket");
	CHECK_OK(parse("GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"));
	CHECK(!http_request_keeps_alive(&head));
	CHECK_ERR(parse("GET / HTTP/1.1\r\nHost: h\r\nUpgrade: a\r\nUpgrade: b\r\n\r\n"), EBADMSG);
}

TEST(request_limits)
{
	static char big[HTTP_REQUEST_HEAD_MAX];
	size_t len = 0;

	len += (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i <= HTTP_HEADERS_MAX; i++)
		len += (size_t)snprintf(big + len, sizeof(big) - len, "X-%d: v\r\n", i);
	(void)snprintf(big + len, sizeof(big) - len, "\r\n");
	CHECK_ERR(parse(big), E2BIG);
	len = (size_t)snprintf(big, sizeof(big), "GET / HTTP/1.1\r\nHost: h\r\n");
	for (int i = 0; i <= HTTP_CONNECTION_MAX; i++)
		len += (size_t)snprintf(big + len, sizeof(big) - len, "Connection: x%d\r\n", i);
	(void)snprintf(big + len, sizeof(big) - len, "\r\n");
	CHECK_ERR(parse(big), E2BIG);
}
