/* SPDX-License-Identifier: MIT */
/* supervisor/http-response.c: the app's answers, read strictly; cookie rewrites. */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static struct http_response_head head;
static char buf[HTTP_HEAD_MAX + 16];

/* Find the end of s and parse it; returns what the first failing step said. */
static int
parse(const char *s)
{
	size_t len = strlen(s), size;
	int r;

	memcpy(buf, s, len + 1);
	r = http_head_end(buf, len, NULL, &size);
	if (r < 0)
		return r;
	return http_response_head_parse(buf, size, &head);
}

TEST(head_good)
{
	static const char s[] =
		"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: 12\r\n"
		"X-Spaces: \t padded value \t\r\nX-Empty:\r\n\r\nbody bytes";

	CHECK_OK(parse(s));
	CHECK_UINT_EQ(head.status, 200);
	CHECK_UINT_EQ(head.version_minor, 1);
	CHECK_UINT_EQ(head.size, strlen(s) - strlen("body bytes"));
	CHECK_UINT_EQ(head.n_headers, 4);
	CHECK_STR_EQ(head.headers[0].name, "Content-Type");
	CHECK_STR_EQ(head.headers[0].value, "text/html");
	CHECK_STR_EQ(http_response_header(&head, "x-spaces"), "padded value");
	CHECK_STR_EQ(http_response_header(&head, "X-Empty"), "");
	CHECK(http_response_header(&head, "X-None") == NULL);
	CHECK(head.has_content_length);
	CHECK_UINT_EQ(head.content_length, 12);
	CHECK(http_response_keeps_alive(&head));
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_LENGTH);
	CHECK_INT_EQ(http_response_framing(&head, true), HTTP_FRAMING_NONE);
}

TEST(head_status_lines)
{
	CHECK_OK(parse("HTTP/1.1 404\r\n\r\n"));
	CHECK_UINT_EQ(head.status, 404);
	CHECK_OK(parse("HTTP/1.0 599 Whatever \xff\xfe\r\n\r\n"));
	CHECK_UINT_EQ(head.version_minor, 0);
	CHECK_OK(parse("HTTP/1.1 100 Continue\r\n\r\n"));
	CHECK_ERR(parse("HTTP/1.1 099 Low\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 600 High\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 20 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 2000 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1  200 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.2 200 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/2 200 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("http/1.1 200 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 O\x01K\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("ICY 200 OK\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("\r\nHTTP/1.1 200 OK\r\n\r\n"), EBADMSG);
}

TEST(head_end)
{
	size_t scanned = 0, size = 0;
	const char *s = "HTTP/1.1 200 OK\r\nA: b\r\n\r\nrest";

	/* Fed a byte at a time, it finds the end exactly once the empty line is complete. */
	for (size_t len = 0; len <= strlen(s); len++) {
		int r = http_head_end(s, len, &scanned, &size);

		if (len < strlen(s) - 4)
			CHECK_ERR(r, EAGAIN);
		else
			CHECK_OK(r);
	}
	CHECK_UINT_EQ(size, strlen(s) - 4);
	CHECK_ERR(http_head_end("HTTP/1.1 200 OK\nA: b\n\n", 22, NULL, &size), EBADMSG);
	CHECK_ERR(http_head_end("HTTP/1.1 200 OK\r\nA: b\n", 22, NULL, &size), EBADMSG);
	CHECK_ERR(http_head_end("", 0, NULL, &size), EAGAIN);
}

TEST(head_fields_refused)
{
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A: 1\r\n continued\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A: 1\r\n\tcontinued\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A : 1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\n: 1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX(A): 1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nno colon\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A: a\x01z\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A: a\x7fz\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nX-A: a\rz\r\n\r\n"), EBADMSG);
	/* A NUL inside a value: parsed from a length, not a string. */
	memcpy(buf, "HTTP/1.1 200 OK\r\nX-A: a\0z\r\n\r\n", 30);
	CHECK_ERR(http_response_head_parse(buf, 30, &head), EBADMSG);
	/* obs-text is a value byte. */
	CHECK_OK(parse("HTTP/1.1 200 OK\r\nX-A: caf\xc3\xa9\r\n\r\n"));
}

TEST(head_framing)
{
	CHECK_OK(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: Chunked\r\n\r\n"));
	CHECK(head.chunked);
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_CHUNKED);
	CHECK_OK(parse("HTTP/1.1 200 OK\r\n\r\n"));
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_CLOSE);
	CHECK_OK(parse("HTTP/1.1 204 No Content\r\nContent-Length: 0\r\n\r\n"));
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_NONE);
	CHECK_OK(parse("HTTP/1.1 304 Not Modified\r\nContent-Length: 99\r\n\r\n"));
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_NONE);
	CHECK_OK(parse("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n"));
	CHECK_INT_EQ(http_response_framing(&head, false), HTTP_FRAMING_NONE);
	CHECK_OK(parse("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551615\r\n\r\n"));
	CHECK_UINT_EQ(head.content_length, UINT64_MAX);

	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length: 18446744073709551616\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 1\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length: 1, 1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length: +1\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nContent-Length:\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: identity\r\n\r\n"), EBADMSG);
	CHECK_ERR(parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n"
			"Transfer-Encoding: chunked\r\n\r\n"),
		  EBADMSG);
	CHECK_ERR(
		parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nContent-Length: 3\r\n\r\n"),
		EBADMSG);
	CHECK_ERR(parse("HTTP/1.0 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n"), EBADMSG);
}

TEST(head_connection)
{
	CHECK_OK(parse("HTTP/1.1 200 OK\r\nConnection: X-Hop, close\r\nX-Hop: 1\r\n\r\n"));
	CHECK(!http_response_keeps_alive(&head));
	CHECK(http_response_names_in_connection(&head, "x-hop"));
	CHECK(!http_response_names_in_connection(&head, "X-Other"));
	CHECK_OK(parse("HTTP/1.0 200 OK\r\n\r\n"));
	CHECK(!http_response_keeps_alive(&head));
	CHECK_OK(parse("HTTP/1.0 200 OK\r\nConnection: Keep-Alive\r\n\r\n"));
	CHECK(http_response_keeps_alive(&head));
}

TEST(head_limits)
{
	char *p = buf;
	size_t size;

	p += snprintf(p, 64, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < HTTP_HEADERS_MAX; i++)
		p += snprintf(p, 64, "X-%d: v\r\n", i);
	p += snprintf(p, 8, "\r\n");
	CHECK_OK(http_head_end(buf, (size_t)(p - buf), NULL, &size));
	CHECK_OK(http_response_head_parse(buf, size, &head));
	CHECK_UINT_EQ(head.n_headers, HTTP_HEADERS_MAX);

	p = buf;
	p += snprintf(p, 64, "HTTP/1.1 200 OK\r\n");
	for (int i = 0; i < HTTP_HEADERS_MAX + 1; i++)
		p += snprintf(p, 64, "X-%d: v\r\n", i);
	p += snprintf(p, 8, "\r\n");
	CHECK_OK(http_head_end(buf, (size_t)(p - buf), NULL, &size));
	CHECK_ERR(http_response_head_parse(buf, size, &head), E2BIG);
	CHECK_ERR(http_response_head_parse(buf, 3, &head), EBADMSG);
}

TEST(tokens_and_lists)
{
	CHECK(http_is_token("X-Custom_1.2~", 13));
	CHECK(!http_is_token("", 0));
	CHECK(!http_is_token("a b", 3));
	CHECK(!http_is_token("a:b", 3));
	CHECK(http_list_has_token("keep-alive, Upgrade", "upgrade"));
	CHECK(http_list_has_token(" ,, close ,", "close"));
	CHECK(http_list_has_token("websocket", "WebSocket"));
	CHECK(!http_list_has_token("upgrade-insecure", "upgrade"));
	CHECK(!http_list_has_token("", "close"));
	CHECK(!http_list_has_token(NULL, "close"));
	CHECK(http_value_is_safe("a\tb c\x80", 6));
	CHECK(!http_value_is_safe("a\nb", 3));
	CHECK(!http_value_is_safe("a\0b", 3));
}

/* Decode all of in with max_data per call; the data into out, or -EBADMSG. */
static int
decode(struct http_chunked *c, const char *in, size_t len, size_t max_data, char *out,
       size_t *ret_len)
{
	size_t n = 0;

	while (len > 0 && !http_chunked_done(c)) {
		const char *data;
		size_t data_len;
		ssize_t used = http_chunked_decode(c, in, len, max_data, &data, &data_len);

		if (used < 0)
			return (int)used;
		if (used == 0)
			break;
		if (data_len > 0)
			memcpy(out + n, data, data_len);
		n += data_len;
		in += used;
		len -= (size_t)used;
	}
	*ret_len = n;
	return 0;
}

TEST(chunked_good)
{
	const char *body = "5\r\nhello\r\n7;name=\"v\"\r\n, world\r\nA \r\n0123456789\r\n"
			   "0\r\nX-Trailer: dropped\r\nY: also\r\n\r\n";
	char out[64];
	size_t len;

	for (size_t max = 1; max <= 16; max += 5) {
		struct http_chunked c = { 0 };

		CHECK_OK(decode(&c, body, strlen(body), max, out, &len));
		CHECK(http_chunked_done(&c));
		CHECK_UINT_EQ(len, 22);
		CHECK(memcmp(out, "hello, world0123456789", 22) == 0);
	}
	/* Byte by byte: every split of the framing. */
	{
		struct http_chunked c = { 0 };
		size_t total = 0;

		for (size_t i = 0; i < strlen(body); i++) {
			CHECK_OK(decode(&c, body + i, 1, 64, out + total, &len));
			total += len;
		}
		CHECK(http_chunked_done(&c));
		CHECK_UINT_EQ(total, 22);
	}
	/* After the end, nothing more is consumed. */
	{
		struct http_chunked c = { 0 };
		const char *data;
		size_t data_len;

		CHECK_OK(decode(&c, "0\r\n\r\n", 5, 8, out, &len));
		CHECK(http_chunked_done(&c));
		CHECK_INT_EQ(http_chunked_decode(&c, "junk", 4, 8, &data, &data_len), 0);
	}
}

TEST(chunked_bad)
{
	static const char *const bad[] = {
		"\r\n",
		"x\r\n",
		"5 x\r\nhello\r\n",
		"5\nhello\r\n",
		"5\r\nhelloX\r\n",
		"5\r\nhello\rX",
		"-5\r\nhello\r\n",
		"11111111111111111\r\n", /* 17 hex digits: over 64 bits */
		"0\r\nX: a\x01\r\n\r\n",
		"0\r\n\rX",
		"5;\x01\r\n",
	};
	char out[64];
	size_t len;

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		struct http_chunked c = { 0 };

		CHECK_ERR(decode(&c, bad[i], strlen(bad[i]), 64, out, &len), EBADMSG);
	}
	/* 16 hex digits still fit. */
	{
		struct http_chunked c = { 0 };

		CHECK_OK(decode(&c, "ffffffffffffffff\r\nab", 20, 64, out, &len));
		CHECK_UINT_EQ(len, 2);
	}
}

TEST(chunked_limits)
{
	static char long_line[HTTP_CHUNK_TRAILER_MAX + 64];
	struct http_chunked c = { 0 };
	char out[64];
	size_t len;

	/* A chunk extension longer than a line may be. */
	memset(long_line, 'e', sizeof(long_line));
	memcpy(long_line, "1;", 2);
	CHECK_ERR(decode(&c, long_line, HTTP_CHUNK_LINE_MAX + 8, 64, out, &len), EBADMSG);
	/* Trailers beyond their budget. */
	c = (struct http_chunked){ 0 };
	memset(long_line, 't', sizeof(long_line));
	memcpy(long_line, "0\r\n", 3);
	CHECK_ERR(decode(&c, long_line, sizeof(long_line), 64, out, &len), EBADMSG);
}

TEST(cookie_filter)
{
	static const char *const strip[] = { "granary_session", "granary_csrf", NULL };
	char out[128];
	size_t len;

	CHECK_OK(http_cookie_filter("a=1; granary_session=x; b=2", strip, out, sizeof(out), &len));
	CHECK_STR_EQ(out, "a=1; b=2");
	CHECK_UINT_EQ(len, 8);
	CHECK_OK(http_cookie_filter("granary_session=x;granary_csrf=y", strip, out, sizeof(out),
				    &len));
	CHECK_UINT_EQ(len, 0);
	CHECK_OK(http_cookie_filter(" a=1 ;;b ; granary_session", strip, out, sizeof(out), &len));
	CHECK_STR_EQ(out, "a=1; b");
	/* Names are case-sensitive and exact. */
	CHECK_OK(http_cookie_filter("Granary_session=1; granary_session2=2", strip, out,
				    sizeof(out), &len));
	CHECK_STR_EQ(out, "Granary_session=1; granary_session2=2");
	CHECK_OK(http_cookie_filter("a=1", NULL, out, sizeof(out), &len));
	CHECK_STR_EQ(out, "a=1");
	CHECK_ERR(http_cookie_filter("abcdef=1", strip, out, 4, &len), ENOBUFS);
}

TEST(cookie_next)
{
	const char *field =
		" a=1; granary_grain=x ;;granary_grain; Granary_grain=y; granary_grain=z=w";
	const char *pos = field, *v;
	size_t len;

	/* Every cookie of the name in order, exact and case-sensitive; "name" alone is empty. */
	v = http_cookie_next(&pos, "granary_grain", &len);
	CHECK(v && len == 1 && memcmp(v, "x", 1) == 0);
	v = http_cookie_next(&pos, "granary_grain", &len);
	CHECK(v && len == 0);
	v = http_cookie_next(&pos, "granary_grain", &len);
	CHECK(v && len == 3 && memcmp(v, "z=w", 3) == 0);
	CHECK(!http_cookie_next(&pos, "granary_grain", &len));
	CHECK(!http_cookie_next(&pos, "granary_grain", &len));
	pos = "granary_grain2=1; xgranary_grain=2";
	CHECK(!http_cookie_next(&pos, "granary_grain", &len));
	pos = "";
	CHECK(!http_cookie_next(&pos, "a", &len));
}

TEST(set_cookie)
{
	static const char *const names[] = { "granary_session", NULL };
	char v[128];

	CHECK(http_set_cookie_named("granary_session=x; Path=/", names));
	CHECK(http_set_cookie_named(" granary_session = x", names));
	CHECK(!http_set_cookie_named("granary_session2=x", names));
	CHECK(!http_set_cookie_named("a=granary_session", names));
	CHECK(!http_set_cookie_named("a=1", NULL));

	(void)snprintf(v, sizeof(v), "a=1; Domain=.localhost; Path=/; HttpOnly");
	CHECK_UINT_EQ(http_set_cookie_strip_domain(v), strlen("a=1; Path=/; HttpOnly"));
	CHECK_STR_EQ(v, "a=1; Path=/; HttpOnly");
	(void)snprintf(v, sizeof(v), "a=1;domain=x;DOMAIN = y ;Secure;Domain");
	(void)http_set_cookie_strip_domain(v);
	CHECK_STR_EQ(v, "a=1;Secure");
	/* The cookie's own value is not an attribute. */
	(void)snprintf(v, sizeof(v), "Domain=1; Path=/");
	(void)http_set_cookie_strip_domain(v);
	CHECK_STR_EQ(v, "Domain=1; Path=/");
	(void)snprintf(v, sizeof(v), "a=b; Domains=keep");
	(void)http_set_cookie_strip_domain(v);
	CHECK_STR_EQ(v, "a=b; Domains=keep");
}
