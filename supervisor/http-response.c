/* SPDX-License-Identifier: MIT */
/*
 * http-response.c: what an app sends back to the proxy, read strictly, and
 * the header rewrites of the proxy that need no connection.
 *
 * Every byte here comes from a grain, that is from code we do not trust: a
 * head that is not exactly HTTP/1.x is refused (the proxy answers 502), never
 * guessed at. What "strict" means:
 *
 *   status line   "HTTP/1.0" or "HTTP/1.1", SP, three digits 100-599, then
 *                 nothing or SP and a reason of printable bytes
 *   lines         end in CRLF; a bare LF or CR anywhere is refused
 *   fields        name = token, ":" right after it, value of VCHAR, obs-text,
 *                 SP and HTAB only; obs-fold (a line starting with SP/HTAB)
 *                 is refused
 *   framing       one Content-Length of digits, or one Transfer-Encoding of
 *                 exactly "chunked" (not both; not on an HTTP/1.0 answer)
 *   size          HTTP_HEAD_MAX bytes and HTTP_HEADERS_MAX fields at most
 *
 * The chunked decoder is incremental (bodies stream), bounded (chunk-size and
 * extension lines, trailers) and drops trailers.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

/* tchar of RFC 9110 5.6.2: a header name, a method, a list token. */
static const bool tchar[256] = {
	['!'] = 1, ['#'] = 1, ['$'] = 1, ['%'] = 1,	    ['&'] = 1,	       ['\''] = 1,
	['*'] = 1, ['+'] = 1, ['-'] = 1, ['.'] = 1,	    ['^'] = 1,	       ['_'] = 1,
	['`'] = 1, ['|'] = 1, ['~'] = 1, ['0' ... '9'] = 1, ['A' ... 'Z'] = 1, ['a' ... 'z'] = 1,
};

bool
http_is_token(const char *s, size_t len)
{
	if (len == 0)
		return false;
	for (size_t i = 0; i < len; i++)
		if (!tchar[(unsigned char)s[i]])
			return false;
	return true;
}

/* A byte allowed in a field value or reason phrase: VCHAR, obs-text, SP, HTAB. */
static bool
is_field_byte(unsigned char c)
{
	return c == '\t' || (c >= 0x20 && c != 0x7f);
}

bool
http_value_is_safe(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++)
		if (!is_field_byte((unsigned char)s[i]))
			return false;
	return true;
}

static bool
is_ows(char c)
{
	return c == ' ' || c == '\t';
}

bool
http_list_has_token(const char *list, const char *token)
{
	size_t n = strlen(token);
	const char *p = list;

	if (!list)
		return false;
	while (*p) {
		const char *start, *end;

		while (*p == ',' || is_ows(*p))
			p++;
		start = p;
		while (*p && *p != ',')
			p++;
		end = p;
		while (end > start && is_ows(end[-1]))
			end--;
		if ((size_t)(end - start) == n && strncasecmp(start, token, n) == 0)
			return true;
	}
	return false;
}

int
http_head_end(const char *buf, size_t len, size_t *scanned, size_t *ret_size)
{
	size_t from = scanned ? *scanned : 0;

	while (from < len) {
		const char *nl = memchr(buf + from, '\n', len - from);
		size_t i;

		if (!nl)
			break;
		i = (size_t)(nl - buf);
		/* Every line ends in CRLF, and the head does not start with one. */
		if (i < 2 || buf[i - 1] != '\r')
			return -EBADMSG;
		if (i >= 3 && buf[i - 2] == '\n') {
			*ret_size = i + 1;
			return 0;
		}
		from = i + 1;
	}
	if (scanned)
		*scanned = len;
	return -EAGAIN;
}

static int
parse_status_line(char *line, size_t len, struct http_response_head *h)
{
	if (len < 12 || memcmp(line, "HTTP/1.", 7) != 0 || (line[7] != '0' && line[7] != '1') ||
	    line[8] != ' ')
		return -EBADMSG;
	for (size_t i = 9; i < 12; i++)
		if (line[i] < '0' || line[i] > '9')
			return -EBADMSG;
	h->version_minor = (unsigned)(line[7] - '0');
	h->status = (unsigned)((line[9] - '0') * 100 + (line[10] - '0') * 10 + (line[11] - '0'));
	if (h->status < 100 || h->status > 599)
		return -EBADMSG;
	/* "HTTP/1.1 200" without a reason is common enough to take; anything after the
	 * code must be SP and a reason of printable bytes. */
	if (len > 12 && (line[12] != ' ' || !http_value_is_safe(line + 13, len - 13)))
		return -EBADMSG;
	return 0;
}

static int
head_field(struct http_response_head *h, char *name, char *value)
{
	int r = http_framing_field(name, value, &h->has_content_length, &h->content_length,
				   &h->chunked);

	if (r != 0)
		return r < 0 ? r : 0;
	if (strcasecmp(name, "Connection") == 0) {
		if (http_list_has_token(value, "close"))
			h->connection_close = true;
		if (http_list_has_token(value, "keep-alive"))
			h->connection_keep_alive = true;
	}
	return 0;
}

int
http_framing_field(const char *name, const char *value, bool *has_content_length,
		   uint64_t *content_length, bool *chunked)
{
	if (strcasecmp(name, "Content-Length") == 0) {
		/* One, of digits only: "42, 42" or a second field is how smuggling starts. */
		if (*has_content_length || parse_uint64(value, content_length) < 0)
			return -EBADMSG;
		*has_content_length = true;
		return 1;
	}
	if (strcasecmp(name, "Transfer-Encoding") == 0) {
		if (*chunked || strcasecmp(value, "chunked") != 0)
			return -EBADMSG;
		*chunked = true;
		return 1;
	}
	return 0;
}

int
http_head_split(char *buf, size_t size, char **ret_first, struct http_header *headers, size_t max,
		size_t *ret_n)
{
	char *p = buf, *end = buf + size;
	size_t n = 0;

	/* The head ends with an empty line: http_head_end() found it. */
	if (size < 4 || memcmp(end - 4, "\r\n\r\n", 4) != 0)
		return -EBADMSG;
	end -= 2; /* the empty line */

	for (bool first = true; p < end; first = false) {
		char *eol = memchr(p, '\r', (size_t)(end - p));
		char *name, *colon, *value, *value_end;

		if (!eol || eol[1] != '\n') /* a CR inside a line */
			return -EBADMSG;
		*eol = '\0';
		if (memchr(p, '\n', (size_t)(eol - p)))
			return -EBADMSG;
		if (first) {
			*ret_first = p;
			p = eol + 2;
			continue;
		}
		name = p;
		colon = memchr(p, ':', (size_t)(eol - p));
		/* No name, a space before the colon, or obs-fold: all refused. */
		if (!colon || !http_is_token(name, (size_t)(colon - name)))
			return -EBADMSG;
		*colon = '\0';
		value = colon + 1;
		value_end = eol;
		while (value < value_end && is_ows(*value))
			value++;
		while (value_end > value && is_ows(value_end[-1]))
			value_end--;
		if (!http_value_is_safe(value, (size_t)(value_end - value)))
			return -EBADMSG;
		*value_end = '\0';
		if (n >= max)
			return -E2BIG;
		headers[n++] = (struct http_header){ .name = name, .value = value };
		p = eol + 2;
	}
	*ret_n = n;
	return 0;
}

int
http_response_head_parse(char *buf, size_t size, struct http_response_head *ret)
{
	struct http_response_head h = { .size = size };
	char *first;
	int r;

	r = http_head_split(buf, size, &first, h.headers, HTTP_HEADERS_MAX, &h.n_headers);
	if (r < 0)
		return r;
	r = parse_status_line(first, strlen(first), &h);
	if (r < 0)
		return r;
	for (size_t i = 0; i < h.n_headers; i++) {
		r = head_field(&h, h.headers[i].name, h.headers[i].value);
		if (r < 0)
			return r;
	}
	if (!http_framing_valid(h.chunked, h.has_content_length, h.version_minor))
		return -EBADMSG;
	*ret = h;
	return 0;
}

const char *
http_response_header(const struct http_response_head *h, const char *name)
{
	for (size_t i = 0; i < h->n_headers; i++)
		if (strcasecmp(h->headers[i].name, name) == 0)
			return h->headers[i].value;
	return NULL;
}

bool
http_response_names_in_connection(const struct http_response_head *h, const char *name)
{
	for (size_t i = 0; i < h->n_headers; i++)
		if (strcasecmp(h->headers[i].name, "Connection") == 0 &&
		    http_list_has_token(h->headers[i].value, name))
			return true;
	return false;
}

bool
http_response_keeps_alive(const struct http_response_head *h)
{
	if (h->connection_close)
		return false;
	return h->version_minor >= 1 || h->connection_keep_alive;
}

enum http_framing
http_response_framing(const struct http_response_head *h, bool head_request)
{
	/* RFC 9112 6.3: these never have a body, whatever their fields say. */
	if (head_request || h->status < 200 || h->status == 204 || h->status == 304)
		return HTTP_FRAMING_NONE;
	if (h->chunked)
		return HTTP_FRAMING_CHUNKED;
	if (h->has_content_length)
		return HTTP_FRAMING_LENGTH;
	return HTTP_FRAMING_CLOSE;
}

/* ---- chunked transfer coding ------------------------------------------- */

enum {
	CHUNK_SIZE = 0, /* hex digits of the chunk size */
	CHUNK_SIZE_WS,	/* BWS after the size: then ";" or CR */
	CHUNK_EXT,	/* ";ext=val..." up to CR */
	CHUNK_SIZE_LF,
	CHUNK_DATA,
	CHUNK_DATA_CR,
	CHUNK_DATA_LF,
	CHUNK_TRAILER_START, /* at the start of a trailer line, or the final empty line */
	CHUNK_TRAILER,	     /* inside a trailer line (dropped) */
	CHUNK_TRAILER_LF,
	CHUNK_FINAL_LF,
	CHUNK_DONE,
};

/* A chunk size is hex of either case (RFC 9112 7.1). */
static int
hex_digit(char c)
{
	char folded = (char)(c | 0x20);

	if (c >= '0' && c <= '9')
		return c - '0';
	return folded >= 'a' && folded <= 'f' ? folded - 'a' + 10 : -1;
}

bool
http_chunked_done(const struct http_chunked *c)
{
	return c->state == CHUNK_DONE;
}

/* One framing byte. */
static int
chunked_step(struct http_chunked *c, char ch)
{
	int v;

	switch (c->state) {
	case CHUNK_SIZE:
		v = hex_digit(ch);
		if (v >= 0) {
			/* 16 hex digits fill a uint64_t: one more would overflow. */
			if (c->line >= 16)
				return -EBADMSG;
			c->remaining = c->remaining << 4 | (uint64_t)v;
			c->line++;
			return 0;
		}
		if (c->line == 0)
			return -EBADMSG;
		c->state = CHUNK_SIZE_WS;
		/* fall through */
	case CHUNK_SIZE_WS:
		if (ch == ';')
			c->state = CHUNK_EXT;
		else if (ch == '\r')
			c->state = CHUNK_SIZE_LF;
		else if (!is_ows(ch) || ++c->line > HTTP_CHUNK_LINE_MAX)
			return -EBADMSG;
		return 0;
	case CHUNK_EXT:
		if (ch == '\r') {
			c->state = CHUNK_SIZE_LF;
			return 0;
		}
		if (!is_field_byte((unsigned char)ch) || ++c->line > HTTP_CHUNK_LINE_MAX)
			return -EBADMSG;
		return 0;
	case CHUNK_SIZE_LF:
		if (ch != '\n')
			return -EBADMSG;
		c->line = 0;
		c->state = c->remaining > 0 ? CHUNK_DATA : CHUNK_TRAILER_START;
		return 0;
	case CHUNK_DATA_CR:
		if (ch != '\r')
			return -EBADMSG;
		c->state = CHUNK_DATA_LF;
		return 0;
	case CHUNK_DATA_LF:
		if (ch != '\n')
			return -EBADMSG;
		c->state = CHUNK_SIZE;
		c->remaining = 0;
		c->line = 0;
		return 0;
	case CHUNK_TRAILER_START:
		if (ch == '\r') {
			c->state = CHUNK_FINAL_LF;
			return 0;
		}
		c->state = CHUNK_TRAILER;
		/* fall through */
	case CHUNK_TRAILER:
		if (ch == '\r') {
			c->state = CHUNK_TRAILER_LF;
			return 0;
		}
		if (!is_field_byte((unsigned char)ch) || ++c->trailer > HTTP_CHUNK_TRAILER_MAX)
			return -EBADMSG;
		return 0;
	case CHUNK_TRAILER_LF:
		if (ch != '\n')
			return -EBADMSG;
		c->state = CHUNK_TRAILER_START;
		return 0;
	case CHUNK_FINAL_LF:
		if (ch != '\n')
			return -EBADMSG;
		c->state = CHUNK_DONE;
		return 0;
	default:
		return -EBADMSG;
	}
}

ssize_t
http_chunked_decode(struct http_chunked *c, const char *in, size_t len, size_t max_data,
		    const char **ret_data, size_t *ret_data_len)
{
	size_t i = 0;
	int r;

	*ret_data = NULL;
	*ret_data_len = 0;
	while (i < len && c->state != CHUNK_DONE) {
		if (c->state == CHUNK_DATA) {
			size_t n = (size_t)MIN((uint64_t)(len - i), c->remaining);

			n = MIN(n, max_data);
			*ret_data = in + i;
			*ret_data_len = n;
			c->remaining -= n;
			if (c->remaining == 0)
				c->state = CHUNK_DATA_CR;
			return (ssize_t)(i + n);
		}
		r = chunked_step(c, in[i]);
		if (r < 0)
			return r;
		i++;
	}
	return (ssize_t)i;
}

/* ---- cookies ------------------------------------------------------------ */

static bool
name_listed(const char *name, size_t len, const char *const *names)
{
	for (size_t i = 0; names && names[i]; i++)
		if (strlen(names[i]) == len && memcmp(names[i], name, len) == 0)
			return true;
	return false;
}

/*
 * The next cookie-pair of a Cookie field from *p on: [*start, *end), its
 * name ending at *name_end ('=' or *end: "name" alone is a cookie with no
 * value). false at the end of the field.
 */
static bool
cookie_pair(const char **p, const char **start, const char **end, const char **name_end)
{
	const char *eq;

	while (**p == ';' || is_ows(**p))
		(*p)++;
	if (!**p)
		return false;
	*start = *p;
	*end = strchrnul(*p, ';');
	*p = *end;
	while (*end > *start && is_ows((*end)[-1]))
		(*end)--;
	eq = memchr(*start, '=', (size_t)(*end - *start));
	*name_end = eq ? eq : *end;
	return true;
}

int
http_cookie_filter(const char *in, const char *const *strip, char *out, size_t size,
		   size_t *ret_len)
{
	const char *p = in, *start, *end, *name_end;
	size_t len = 0;

	while (cookie_pair(&p, &start, &end, &name_end)) {
		/* Cookie names are case-sensitive. */
		if (name_listed(start, (size_t)(name_end - start), strip))
			continue;
		if (len + (len ? 2 : 0) + (size_t)(end - start) + 1 > size)
			return -ENOBUFS;
		if (len) {
			memcpy(out + len, "; ", 2);
			len += 2;
		}
		memcpy(out + len, start, (size_t)(end - start));
		len += (size_t)(end - start);
	}
	if (size > 0)
		out[len] = '\0';
	*ret_len = len;
	return 0;
}

const char *
http_cookie_next(const char **pos, const char *name, size_t *ret_len)
{
	const char *start, *end, *name_end;
	size_t name_len = strlen(name);

	while (cookie_pair(pos, &start, &end, &name_end))
		if ((size_t)(name_end - start) == name_len && memcmp(start, name, name_len) == 0) {
			const char *value = name_end < end ? name_end + 1 : end;

			*ret_len = (size_t)(end - value);
			return value;
		}
	return NULL;
}

bool
http_set_cookie_named(const char *value, const char *const *names)
{
	const char *eq = strchr(value, '=');
	const char *semi = strchrnul(value, ';');
	const char *start = value, *end = eq && eq < semi ? eq : semi;

	while (start < end && is_ows(*start))
		start++;
	while (end > start && is_ows(end[-1]))
		end--;
	return name_listed(start, (size_t)(end - start), names);
}

size_t
http_set_cookie_strip_domain(char *value)
{
	char *w = value, *p = value;
	bool first = true;

	/* Rewritten in place: the result is never longer. Attributes other than
	 * Domain are kept byte for byte; the cookie-pair is the first element. */
	while (*p) {
		char *start = p, *end = strchrnul(p, ';'), *name = start, *name_end;

		p = *end ? end + 1 : end;
		if (!first) {
			while (name < end && is_ows(*name))
				name++;
			for (name_end = name; name_end < end && *name_end != '='; name_end++)
				;
			while (name_end > name && is_ows(name_end[-1]))
				name_end--;
			if (name_end - name == 6 && strncasecmp(name, "Domain", 6) == 0)
				continue;
			*w++ = ';';
		}
		memmove(w, start, (size_t)(end - start));
		w += end - start;
		first = false;
	}
	*w = '\0';
	return (size_t)(w - value);
}
