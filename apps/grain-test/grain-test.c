/* SPDX-License-Identifier: MIT */
/*
 * grain-test.c: the app of Granary's grain and proxy tests, and the upstream
 * of benchmarks B1, B2, B4 and B7: one static program, one thread, epoll,
 * HTTP/1.1 with keep-alive and pipelining, bounded memory per connection.
 *
 *   grain-test PORT         listen on 127.0.0.1:PORT (0: any free port; the
 *                           line "grain-test: listening on 127.0.0.1:N" on
 *                           stderr names it)
 *   grain-test --version    print "grain-test VERSION" and exit 0 (B2 times
 *                           spawn-to-exit of this very binary)
 *
 * Endpoints (any method unless said; HEAD answers without a body):
 *
 * | target                          | answer                                                |
 * |---------------------------------|-------------------------------------------------------|
 * | `/`                             | `hello world\n` (12 bytes)                            |
 * | `/64k`                          | 65536 bytes of the download pattern                   |
 * | `/echo`, `/echo/...`            | JSON: method, target (raw), version, headers in order |
 * |                                 | as [name, value] pairs, bodyBytes, bodySum,           |
 * |                                 | bodyChunked, bodyHead (first 1 KiB)                   |
 * | `POST`/`PUT /upload`            | reads the body: `{"bytes": N, "sum": S}`              |
 * | `/download?bytes=N[&chunked=1]` | N bytes of the pattern, Content-Length or chunked     |
 * |   `[&seed=K]`                   | (chunk sizes 1..65536, pseudo-random from K)          |
 * | `/slow?ms=N`                    | answers after N ms; other connections go on           |
 * | `/drip?chunks=N&ms=M`           | chunked: the head at once, a chunk every M ms         |
 * | `/crash`                        | "crashing on request" on stderr, exit status 3        |
 * | `/print?text=T`                 | T and a newline on stdout and on stderr               |
 * | `/cookie`                       | Set-Cookie: one with Domain=, two of Granary's names  |
 * | `/status?code=N`                | status N (200-599; 204 and 304 without a body)        |
 * | `GET /ws`                       | WebSocket echo (RFC 6455): text, binary, fragments,   |
 * |                                 | ping/pong, close                                      |
 * | `/whoami`                       | JSON: uids, pids, hostname, cwd, /var and /tmp        |
 * |                                 | writable, environment, fds now and at start, argv     |
 * | `/file?write=NAME[&data=T]`     | writes /var/NAME: the request body (POST, PUT) or T   |
 * | `/file?read=NAME`               | the content of /var/NAME (404 if missing)             |
 * | `/close`                        | answers with Connection: close, then closes           |
 *
 * The pattern: byte i of a download is (i * 31) % 251. bodySum and sum are
 * Adler-32 (zlib.adler32 in Python) of the body as received, after chunked
 * decoding. JSON strings carry bytes, one code point each (ISO-8859-1):
 * decode them in Python with .encode("latin-1").
 *
 * The parser is strict, so that a proxy's mistakes show: an HTTP/1.1 request
 * without exactly one Host, Content-Length together with Transfer-Encoding,
 * a Transfer-Encoding other than "chunked", header folding or a malformed
 * line get 400 (501 for the encoding) and the connection is closed.
 *
 * Build: cc -static -O2 -I../.. -o grain-test grain-test.c (make builds
 * build/apps/grain-test; apps/grain-test/build.sh packs it).
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <ctype.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

#define VERSION "1.0.0"

#define IN_SIZE		(64 * 1024)  /* request head limit, and the read buffer */
#define OUT_HIGH	(256 * 1024) /* stop making output past this much queued */
#define HEADERS_MAX	128	     /* header lines per request */
#define TARGET_MAX	8192	     /* request-target length */
#define LINE_MAX_CHUNK	4096	     /* chunk-size and trailer line length */
#define BODY_HEAD_MAX	1024	     /* body bytes echoed back by /echo */
#define FILE_READ_MAX	(16 << 20)   /* /file?read= size limit */
#define LINGER_MS	2000	     /* after our FIN, read what the peer still sends */
#define PATTERN_PERIOD	251	     /* download byte i is (i * 31) % 251 */
#define PATTERN_RUN	(64 * 1024)  /* the longest write from the pattern */
#define ACCEPT_PAUSE_MS 100	     /* out of descriptors: wait this long */
#define LENGTH_CHUNKED	(-1)
#define LENGTH_NONE	(-2)

static const char WS_GUID[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

static unsigned char pattern[PATTERN_PERIOD + PATTERN_RUN];
static char fds_at_start[256];
static char **saved_argv;
extern char **environ;

/* ---- small tools ---------------------------------------------------------- */

static void
die(const char *what)
{
	fprintf(stderr, "grain-test: %s: %s\n", what, strerror(errno));
	exit(1);
}

static uint64_t
now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

/* Strict decimal: digits only, no sign, at most max. */
static bool
parse_u64(const char *s, uint64_t max, uint64_t *ret)
{
	uint64_t v = 0;

	if (!*s)
		return false;
	for (; *s; s++) {
		if (*s < '0' || *s > '9' || v > (max - (uint64_t)(*s - '0')) / 10)
			return false;
		v = v * 10 + (uint64_t)(*s - '0');
	}
	*ret = v;
	return true;
}

/* A growable byte queue: data[start, start + len). */
struct buf {
	char *data; /* owned */
	size_t start, len, cap;
};

static void
buf_reserve(struct buf *b, size_t more)
{
	size_t cap;
	char *p;

	if (b->start + b->len + more <= b->cap)
		return;
	if (b->start > 0) {
		memmove(b->data, b->data + b->start, b->len);
		b->start = 0;
		if (b->len + more <= b->cap)
			return;
	}
	for (cap = b->cap ? b->cap : 4096; cap < b->len + more; cap *= 2)
		;
	p = realloc(b->data, cap);
	if (!p)
		die("realloc");
	b->data = p;
	b->cap = cap;
}

static void
buf_add(struct buf *b, const void *p, size_t n)
{
	buf_reserve(b, n);
	memcpy(b->data + b->start + b->len, p, n);
	b->len += n;
}

static void
buf_str(struct buf *b, const char *s)
{
	buf_add(b, s, strlen(s));
}

__attribute__((format(printf, 2, 3))) static void
buf_printf(struct buf *b, const char *fmt, ...)
{
	va_list ap;
	int n;

	buf_reserve(b, 256);
	va_start(ap, fmt);
	n = vsnprintf(b->data + b->start + b->len, b->cap - b->start - b->len, fmt, ap);
	va_end(ap);
	if (n < 0)
		return;
	if ((size_t)n >= b->cap - b->start - b->len) {
		buf_reserve(b, (size_t)n + 1);
		va_start(ap, fmt);
		(void)vsnprintf(b->data + b->start + b->len, (size_t)n + 1, fmt, ap);
		va_end(ap);
	}
	b->len += (size_t)n;
}

static void
buf_consume(struct buf *b, size_t n)
{
	b->start += n;
	b->len -= n;
	if (b->len == 0) {
		b->start = 0;
		if (b->cap > 4 * OUT_HIGH) { /* give a burst's memory back */
			free(b->data);
			b->data = NULL;
			b->cap = 0;
		}
	}
}

static void
buf_free(struct buf *b)
{
	free(b->data);
	*b = (struct buf){ 0 };
}

/* A JSON string of bytes, each byte one code point (ISO-8859-1). */
static void
buf_json(struct buf *b, const char *s, size_t n)
{
	size_t i, run = 0;

	buf_add(b, "\"", 1);
	for (i = 0; i < n; i++) {
		unsigned char ch = (unsigned char)s[i];

		if (ch >= 0x20 && ch < 0x7f && ch != '"' && ch != '\\')
			continue;
		buf_add(b, s + run, i - run);
		if (ch == '"' || ch == '\\')
			buf_printf(b, "\\%c", ch);
		else
			buf_printf(b, "\\u%04x", ch);
		run = i + 1;
	}
	buf_add(b, s + run, n - run);
	buf_add(b, "\"", 1);
}

/* Adler-32 as zlib computes it; eight bytes a step (the same sums, fewer
 * dependent additions), reduced every 5552 bytes as zlib does. */
static void
adler32_update(uint32_t *a_io, uint32_t *b_io, const unsigned char *p, size_t n)
{
	uint32_t a = *a_io, b = *b_io;

	while (n > 0) {
		size_t k = n < 5552 ? n : 5552;

		n -= k;
		for (; k >= 8; k -= 8, p += 8) {
			b += 8 * a + 8u * p[0] + 7u * p[1] + 6u * p[2] + 5u * p[3] + 4u * p[4] +
			     3u * p[5] + 2u * p[6] + p[7];
			a += (uint32_t)p[0] + p[1] + p[2] + p[3] + p[4] + p[5] + p[6] + p[7];
		}
		for (; k > 0; k--) {
			a += *p++;
			b += a;
		}
		a %= 65521;
		b %= 65521;
	}
	*a_io = a;
	*b_io = b;
}

static uint32_t
rol32(uint32_t x, int n)
{
	return x << n | x >> (32 - n);
}

static void
sha1_block(uint32_t h[5], const unsigned char *p)
{
	uint32_t w[80], a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	int i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		       (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 80; i++)
		w[i] = rol32(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	for (i = 0; i < 80; i++) {
		uint32_t f, k, t;

		if (i < 20)
			f = (b & c) | (~b & d), k = 0x5A827999;
		else if (i < 40)
			f = b ^ c ^ d, k = 0x6ED9EBA1;
		else if (i < 60)
			f = (b & c) | (b & d) | (c & d), k = 0x8F1BBCDC;
		else
			f = b ^ c ^ d, k = 0xCA62C1D6;
		t = rol32(a, 5) + f + e + k + w[i];
		e = d;
		d = c;
		c = rol32(b, 30);
		b = a;
		a = t;
	}
	h[0] += a;
	h[1] += b;
	h[2] += c;
	h[3] += d;
	h[4] += e;
}

/* SHA-1, for the WebSocket handshake only (RFC 6455 §4.2.2). */
static void
sha1(const unsigned char *data, size_t n, unsigned char out[20])
{
	uint32_t h[5] = { 0x67452301, 0xEFCDAB89, 0x98BADCFE, 0x10325476, 0xC3D2E1F0 };
	unsigned char block[64];
	uint64_t bits = (uint64_t)n * 8;
	size_t i, rest;

	for (i = 0; i + 64 <= n; i += 64)
		sha1_block(h, data + i);
	rest = n - i;
	memcpy(block, data + i, rest);
	block[rest++] = 0x80;
	if (rest > 56) {
		memset(block + rest, 0, 64 - rest);
		sha1_block(h, block);
		rest = 0;
	}
	memset(block + rest, 0, 56 - rest);
	for (i = 0; i < 8; i++)
		block[56 + i] = (unsigned char)(bits >> (56 - 8 * i));
	sha1_block(h, block);
	for (i = 0; i < 20; i++)
		out[i] = (unsigned char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Base64 of n bytes into out (4 * ceil(n / 3) + 1 bytes). */
static void
base64(const unsigned char *p, size_t n, char *out)
{
	static const char digits[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i < n; i += 3) {
		uint32_t v = (uint32_t)p[i] << 16 | (i + 1 < n ? (uint32_t)p[i + 1] << 8 : 0) |
			     (i + 2 < n ? p[i + 2] : 0);

		out[o++] = digits[v >> 18 & 63];
		out[o++] = digits[v >> 12 & 63];
		out[o++] = i + 1 < n ? digits[v >> 6 & 63] : '=';
		out[o++] = i + 2 < n ? digits[v & 63] : '=';
	}
	out[o] = '\0';
}

/* The value of query parameter name in target, %-decoded ('+' is a space):
 * false when absent or longer than size - 1. */
static bool
query_param(const char *target, const char *name, char *out, size_t size)
{
	const char *q = strchr(target, '?');
	size_t len = strlen(name);

	while (q) {
		const char *p = q + 1, *end = p + strcspn(p, "&");
		size_t o = 0;

		q = *end ? end : NULL;
		if ((size_t)(end - p) < len || strncmp(p, name, len) != 0 ||
		    (p[len] != '=' && p + len != end))
			continue;
		for (p += len + (p[len] == '='); p < end; p++) {
			char c = *p;

			if (o + 1 >= size)
				return false;
			if (c == '+')
				c = ' ';
			else if (c == '%' && end - p > 2 && isxdigit((unsigned char)p[1]) &&
				 isxdigit((unsigned char)p[2])) {
				char hex[3] = { p[1], p[2], '\0' };

				c = (char)strtol(hex, NULL, 16);
				p += 2;
			}
			out[o++] = c;
		}
		out[o] = '\0';
		return true;
	}
	return false;
}

static bool
query_u64(const char *target, const char *name, uint64_t max, uint64_t *ret)
{
	char value[32];

	return query_param(target, name, value, sizeof(value)) && parse_u64(value, max, ret);
}

/* ---- connections -------------------------------------------------------- */

enum phase {
	PHASE_HEAD,    /* reading a request head */
	PHASE_BODY,    /* reading its body; the answer follows */
	PHASE_WAIT,    /* /slow: the answer waits for the timer */
	PHASE_DRIP,    /* /drip: a chunk on each timer */
	PHASE_PRODUCE, /* /download: the body is written as the socket takes it */
	PHASE_WS,      /* a WebSocket */
	PHASE_CLOSE,   /* close once the output is written */
	PHASE_LINGER,  /* our FIN is sent: discard input until the peer's FIN */
};

enum route {
	ROUTE_NOT_FOUND,
	ROUTE_ROOT,
	ROUTE_64K,
	ROUTE_ECHO,
	ROUTE_UPLOAD,
	ROUTE_DOWNLOAD,
	ROUTE_SLOW,
	ROUTE_DRIP,
	ROUTE_CRASH,
	ROUTE_PRINT,
	ROUTE_COOKIE,
	ROUTE_STATUS,
	ROUTE_WS,
	ROUTE_WHOAMI,
	ROUTE_FILE,
	ROUTE_CLOSE,
};

static const struct {
	const char *path;
	enum route route;
} routes[] = {
	{ "/", ROUTE_ROOT },	     { "/64k", ROUTE_64K },	      { "/echo", ROUTE_ECHO },
	{ "/upload", ROUTE_UPLOAD }, { "/download", ROUTE_DOWNLOAD }, { "/slow", ROUTE_SLOW },
	{ "/drip", ROUTE_DRIP },     { "/crash", ROUTE_CRASH },	      { "/print", ROUTE_PRINT },
	{ "/cookie", ROUTE_COOKIE }, { "/status", ROUTE_STATUS },     { "/ws", ROUTE_WS },
	{ "/whoami", ROUTE_WHOAMI }, { "/file", ROUTE_FILE },	      { "/close", ROUTE_CLOSE },
};

enum body_kind { BODY_NONE, BODY_LENGTH, BODY_CHUNKED };
enum chunk_state { CHUNK_SIZE, CHUNK_DATA, CHUNK_DATA_END, CHUNK_TRAILER };

struct conn {
	int fd;
	uint32_t events; /* the epoll interest registered now */
	bool readable;	 /* the socket may have input we have not read */
	bool eof;	 /* the peer's FIN arrived */
	enum phase phase;
	size_t in_start, in_end;
	struct buf out;

	/* The request being answered. */
	char method[16];
	char *target; /* owned */
	int minor;    /* HTTP/1.minor */
	bool keep_alive, head_only;
	enum route route;
	struct buf echo; /* /echo: the answer up to the body's figures */
	char ws_accept[32];

	/* Its body. */
	enum body_kind body;
	enum chunk_state chunk;
	uint64_t body_left, body_bytes;
	uint32_t sum_a, sum_b;
	int file_fd; /* owned; /file?write= with a body */
	int file_errno;
	char body_head[BODY_HEAD_MAX];
	size_t body_head_len;

	/* Timed answers, downloads, WebSocket frames. */
	uint64_t deadline;
	struct conn *timer_prev, *timer_next;
	bool timed;
	uint64_t drip_left, drip_ms;
	uint64_t produce_left, produce_pos, rng;
	bool produce_chunked;
	bool ws_in_frame;
	unsigned char ws_mask[4];
	uint64_t ws_left, ws_pos;

	char in[IN_SIZE];
};

static int epoll_fd = -1, listen_fd = -1;
static struct conn *timers; /* connections with a deadline; few, scanned */
static uint64_t accept_paused_until;

static void
timer_clear(struct conn *c)
{
	if (!c->timed)
		return;
	if (c->timer_prev)
		c->timer_prev->timer_next = c->timer_next;
	else
		timers = c->timer_next;
	if (c->timer_next)
		c->timer_next->timer_prev = c->timer_prev;
	c->timer_prev = c->timer_next = NULL;
	c->timed = false;
}

static void
timer_set(struct conn *c, uint64_t deadline)
{
	timer_clear(c);
	c->deadline = deadline;
	c->timed = true;
	c->timer_next = timers;
	if (timers)
		timers->timer_prev = c;
	timers = c;
}

static void
conn_close(struct conn *c)
{
	timer_clear(c);
	(void)epoll_ctl(epoll_fd, EPOLL_CTL_DEL, c->fd, NULL);
	close(c->fd);
	if (c->file_fd >= 0)
		close(c->file_fd);
	free(c->target);
	buf_free(&c->out);
	buf_free(&c->echo);
	free(c);
}

static const struct {
	int status;
	const char *text;
} reasons[] = {
	{ 100, "Continue" },
	{ 101, "Switching Protocols" },
	{ 200, "OK" },
	{ 201, "Created" },
	{ 204, "No Content" },
	{ 206, "Partial Content" },
	{ 301, "Moved Permanently" },
	{ 302, "Found" },
	{ 303, "See Other" },
	{ 304, "Not Modified" },
	{ 307, "Temporary Redirect" },
	{ 400, "Bad Request" },
	{ 401, "Unauthorized" },
	{ 403, "Forbidden" },
	{ 404, "Not Found" },
	{ 405, "Method Not Allowed" },
	{ 413, "Content Too Large" },
	{ 414, "URI Too Long" },
	{ 417, "Expectation Failed" },
	{ 426, "Upgrade Required" },
	{ 431, "Request Header Fields Too Large" },
	{ 500, "Internal Server Error" },
	{ 501, "Not Implemented" },
	{ 502, "Bad Gateway" },
	{ 503, "Service Unavailable" },
	{ 505, "HTTP Version Not Supported" },
};

static const char *
reason(int status)
{
	size_t i;

	for (i = 0; i < sizeof(reasons) / sizeof(reasons[0]); i++)
		if (reasons[i].status == status)
			return reasons[i].text;
	return "Status";
}

/* The response head; length: bytes, LENGTH_CHUNKED or LENGTH_NONE. */
static void
answer_head(struct conn *c, int status, const char *type, int64_t length, const char *extra)
{
	buf_printf(&c->out, "HTTP/1.1 %d %s\r\nServer: grain-test\r\n", status, reason(status));
	if (type)
		buf_printf(&c->out, "Content-Type: %s\r\n", type);
	if (length >= 0)
		buf_printf(&c->out, "Content-Length: %" PRId64 "\r\n", length);
	else if (length == LENGTH_CHUNKED)
		buf_str(&c->out, "Transfer-Encoding: chunked\r\n");
	if (!c->keep_alive)
		buf_str(&c->out, "Connection: close\r\n");
	else if (c->minor == 0)
		buf_str(&c->out, "Connection: keep-alive\r\n");
	if (extra)
		buf_str(&c->out, extra);
	buf_add(&c->out, "\r\n", 2);
}

/* After a complete answer: the next request, or closing. */
static void
answer_done(struct conn *c)
{
	c->phase = c->keep_alive ? PHASE_HEAD : PHASE_CLOSE;
}

static void
answer(struct conn *c, int status, const char *type, const void *body, size_t len,
       const char *extra)
{
	bool no_body = status == 204 || status == 304;

	answer_head(c, status, type, no_body ? LENGTH_NONE : (int64_t)len, extra);
	if (!no_body && !c->head_only)
		buf_add(&c->out, body, len);
	answer_done(c);
}

static void
answer_text(struct conn *c, int status, const char *text)
{
	answer(c, status, "text/plain; charset=utf-8", text, strlen(text), NULL);
}

static void
answer_json(struct conn *c, int status, struct buf *json)
{
	answer(c, status, "application/json", json->data + json->start, json->len, NULL);
}

/* A request we refuse: the answer, then the connection closes (the rest of
 * its bytes cannot be trusted to be a next request). */
static int
refuse(struct conn *c, int status, const char *why)
{
	c->keep_alive = false;
	answer_text(c, status, why);
	return 1;
}

/* ---- the endpoints, once the body is read --------------------------------- */

static bool
file_name_ok(const char *name)
{
	return *name && strlen(name) <= 255 && !strchr(name, '/') && strcmp(name, ".") != 0 &&
	       strcmp(name, "..") != 0;
}

/* The open descriptors, as a JSON array (without the one reading the list). */
static void
list_fds(char *out, size_t size)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *e;
	size_t o = 0;
	uint64_t fd;

	o += (size_t)snprintf(out, size, "[");
	if (d) {
		while ((e = readdir(d)) && o + 16 < size) {
			if (!parse_u64(e->d_name, INT32_MAX, &fd) || (int)fd == dirfd(d))
				continue;
			o += (size_t)snprintf(out + o, size - o, "%s%s", o > 1 ? "," : "",
					      e->d_name);
		}
		closedir(d);
	}
	snprintf(out + o, size - o, "]");
}

static bool
writable(const char *dir)
{
	char path[64];
	int fd;

	snprintf(path, sizeof(path), "%s/.grain-test-%d", dir, (int)getpid());
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0)
		return false;
	close(fd);
	(void)unlink(path);
	return true;
}

static void
whoami(struct conn *c)
{
	struct buf j = { 0 };
	char host[256] = "", cwd[1024] = "", fds[4096];
	struct rlimit nofile = { 0 };
	char **e;

	(void)gethostname(host, sizeof(host) - 1);
	if (!getcwd(cwd, sizeof(cwd)))
		cwd[0] = '\0';
	(void)getrlimit(RLIMIT_NOFILE, &nofile);
	list_fds(fds, sizeof(fds));
	buf_printf(&j,
		   "{\"uid\":%d,\"gid\":%d,\"euid\":%d,\"egid\":%d,\"pid\":%d,\"ppid\":%d,"
		   "\"nofile\":%llu,\"varWritable\":%s,\"tmpWritable\":%s,\"fds\":%s,"
		   "\"fdsAtStart\":%s,\"hostname\":",
		   (int)getuid(), (int)getgid(), (int)geteuid(), (int)getegid(), (int)getpid(),
		   (int)getppid(), (unsigned long long)nofile.rlim_cur,
		   writable("/var") ? "true" : "false", writable("/tmp") ? "true" : "false", fds,
		   fds_at_start);
	buf_json(&j, host, strlen(host));
	buf_str(&j, ",\"cwd\":");
	buf_json(&j, cwd, strlen(cwd));
	buf_str(&j, ",\"argv\":[");
	for (e = saved_argv; *e; e++) {
		if (e != saved_argv)
			buf_add(&j, ",", 1);
		buf_json(&j, *e, strlen(*e));
	}
	buf_str(&j, "],\"env\":{");
	for (e = environ; e && *e; e++) {
		const char *eq = strchr(*e, '=');
		size_t name_len = eq ? (size_t)(eq - *e) : strlen(*e);

		if (e != environ)
			buf_add(&j, ",", 1);
		buf_json(&j, *e, name_len);
		buf_add(&j, ":", 1);
		buf_json(&j, eq ? eq + 1 : "", eq ? strlen(eq + 1) : 0);
	}
	buf_str(&j, "}}\n");
	answer_json(c, 200, &j);
	buf_free(&j);
}

/* /file?write=NAME (the body, or data=T) and /file?read=NAME, below /var. */
static void
file_endpoint(struct conn *c)
{
	char name[256], data[4096], path[300];
	struct buf j = { 0 };
	struct stat st;
	int fd;

	if (query_param(c->target, "read", name, sizeof(name))) {
		if (!file_name_ok(name)) {
			answer_text(c, 400, "bad file name\n");
			return;
		}
		snprintf(path, sizeof(path), "/var/%s", name);
		fd = open(path, O_RDONLY | O_CLOEXEC | O_NOFOLLOW);
		if (fd < 0) {
			answer_text(c, errno == ENOENT ? 404 : 500, "cannot open the file\n");
			return;
		}
		if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size > FILE_READ_MAX) {
			close(fd);
			answer_text(c, 413, "not a regular file of at most 16 MiB\n");
			return;
		}
		answer_head(c, 200, "application/octet-stream", st.st_size, NULL);
		if (!c->head_only) {
			size_t want = (size_t)st.st_size;
			ssize_t n;

			buf_reserve(&c->out, want);
			while (want > 0 &&
			       (n = read(fd, c->out.data + c->out.start + c->out.len, want)) > 0) {
				c->out.len += (size_t)n;
				want -= (size_t)n;
			}
			if (want > 0) /* the file shrank: the length we sent is a lie */
				c->keep_alive = false;
		}
		close(fd);
		answer_done(c);
		return;
	}
	if (!query_param(c->target, "write", name, sizeof(name)) || !file_name_ok(name)) {
		answer_text(c, 400, "use /file?write=NAME or /file?read=NAME\n");
		return;
	}
	if (c->file_fd < 0 && c->file_errno == 0) { /* no body: data=T */
		if (!query_param(c->target, "data", data, sizeof(data)))
			data[0] = '\0';
		snprintf(path, sizeof(path), "/var/%s", name);
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
		if (fd < 0 || write(fd, data, strlen(data)) != (ssize_t)strlen(data))
			c->file_errno = errno ? errno : EIO;
		else
			c->body_bytes = strlen(data);
		if (fd >= 0)
			close(fd);
	}
	if (c->file_fd >= 0) {
		if (close(c->file_fd) < 0 && c->file_errno == 0)
			c->file_errno = errno;
		c->file_fd = -1;
	}
	if (c->file_errno) {
		buf_printf(&j, "{\"error\":\"%s\"}\n", strerror(c->file_errno));
		answer_json(c, 500, &j);
	} else {
		buf_printf(&j, "{\"written\":%" PRIu64 "}\n", c->body_bytes);
		answer_json(c, 200, &j);
	}
	buf_free(&j);
}

static void
download_start(struct conn *c)
{
	uint64_t bytes, chunked = 0, seed = 1;

	if (!query_u64(c->target, "bytes", UINT64_C(1) << 50, &bytes) ||
	    (strstr(c->target, "chunked=") && !query_u64(c->target, "chunked", 1, &chunked)) ||
	    (strstr(c->target, "seed=") && !query_u64(c->target, "seed", UINT64_MAX, &seed))) {
		answer_text(c, 400, "use /download?bytes=N[&chunked=1][&seed=K]\n");
		return;
	}
	answer_head(c, 200, "application/octet-stream", chunked ? LENGTH_CHUNKED : (int64_t)bytes,
		    NULL);
	if (c->head_only) {
		answer_done(c);
		return;
	}
	c->produce_left = bytes;
	c->produce_pos = 0;
	c->produce_chunked = chunked;
	c->rng = seed ? seed : 1;
	c->phase = PHASE_PRODUCE;
}

static void
dispatch(struct conn *c)
{
	char text[4096];
	struct buf j = { 0 };
	uint64_t v, w;

	switch (c->route) {
	case ROUTE_ROOT:
		answer_text(c, 200, "hello world\n");
		break;
	case ROUTE_64K:
		answer(c, 200, "application/octet-stream", pattern, 65536, NULL);
		break;
	case ROUTE_ECHO:
		buf_printf(&c->echo,
			   ",\"bodyBytes\":%" PRIu64 ",\"bodySum\":%" PRIu32
			   ",\"bodyChunked\":%s,\"bodyHead\":",
			   c->body_bytes, c->sum_b << 16 | c->sum_a,
			   c->body == BODY_CHUNKED ? "true" : "false");
		buf_json(&c->echo, c->body_head, c->body_head_len);
		buf_str(&c->echo, "}\n");
		answer_json(c, 200, &c->echo);
		buf_free(&c->echo);
		break;
	case ROUTE_UPLOAD:
		if (strcmp(c->method, "POST") != 0 && strcmp(c->method, "PUT") != 0) {
			answer(c, 405, "text/plain", "POST or PUT\n", 12, "Allow: POST, PUT\r\n");
			break;
		}
		buf_printf(&j, "{\"bytes\":%" PRIu64 ",\"sum\":%" PRIu32 "}\n", c->body_bytes,
			   c->sum_b << 16 | c->sum_a);
		answer_json(c, 200, &j);
		break;
	case ROUTE_DOWNLOAD:
		download_start(c);
		break;
	case ROUTE_SLOW:
		if (!query_u64(c->target, "ms", 600000, &v)) {
			answer_text(c, 400, "use /slow?ms=N (N <= 600000)\n");
			break;
		}
		c->phase = PHASE_WAIT;
		timer_set(c, now_ms() + v);
		break;
	case ROUTE_DRIP:
		if (!query_u64(c->target, "chunks", 100000, &v) ||
		    !query_u64(c->target, "ms", 600000, &w)) {
			answer_text(c, 400, "use /drip?chunks=N&ms=M\n");
			break;
		}
		answer_head(c, 200, "text/plain", LENGTH_CHUNKED, NULL);
		if (c->head_only) {
			answer_done(c);
			break;
		}
		c->drip_left = v;
		c->drip_ms = w;
		c->phase = PHASE_DRIP;
		timer_set(c, now_ms() + w);
		break;
	case ROUTE_CRASH:
		fprintf(stderr, "crashing on request\n");
		exit(3);
	case ROUTE_PRINT:
		if (!query_param(c->target, "text", text, sizeof(text) - 1)) {
			answer_text(c, 400, "use /print?text=T\n");
			break;
		}
		v = strlen(text);
		text[v++] = '\n';
		if (write(STDOUT_FILENO, text, v) != (ssize_t)v ||
		    write(STDERR_FILENO, text, v) != (ssize_t)v) {
			answer_text(c, 500, "cannot write to stdout or stderr\n");
			break;
		}
		answer_text(c, 200, "printed\n");
		break;
	case ROUTE_COOKIE:
		answer(c, 200, "text/plain", "cookies\n", 8,
		       "Set-Cookie: grain_test=1; Domain=example.com; Path=/\r\n"
		       "Set-Cookie: grain_test_plain=2; Path=/; HttpOnly\r\n"
		       "Set-Cookie: granary_grain=forged; Path=/; HttpOnly\r\n"
		       "Set-Cookie: granary_session=forged; Path=/\r\n");
		break;
	case ROUTE_STATUS:
		if (!query_u64(c->target, "code", 599, &v) || v < 200) {
			answer_text(c, 400, "use /status?code=N (200-599)\n");
			break;
		}
		snprintf(text, sizeof(text), "status %d\n", (int)v);
		answer_text(c, (int)v, text);
		break;
	case ROUTE_WS:
		buf_printf(&c->out,
			   "HTTP/1.1 101 Switching Protocols\r\nServer: grain-test\r\n"
			   "Upgrade: websocket\r\nConnection: Upgrade\r\n"
			   "Sec-WebSocket-Accept: %s\r\n\r\n",
			   c->ws_accept);
		c->phase = PHASE_WS;
		c->ws_in_frame = false;
		break;
	case ROUTE_WHOAMI:
		whoami(c);
		break;
	case ROUTE_FILE:
		file_endpoint(c);
		break;
	case ROUTE_CLOSE:
		c->keep_alive = false;
		answer_text(c, 200, "bye\n");
		break;
	case ROUTE_NOT_FOUND:
		answer_text(c, 404, "not found\n");
		break;
	}
	buf_free(&j);
}

/* ---- timers: /slow, /drip, lingering close -------------------------------- */

static void
on_timer(struct conn *c)
{
	char text[64];

	switch (c->phase) {
	case PHASE_WAIT:
		snprintf(text, sizeof(text), "slept\n");
		answer_text(c, 200, text);
		break;
	case PHASE_DRIP:
		if (c->drip_left == 0) {
			buf_str(&c->out, "0\r\n\r\n");
			answer_done(c);
			break;
		}
		c->drip_left--;
		snprintf(text, sizeof(text), "drip %" PRIu64 "\n", c->drip_left);
		buf_printf(&c->out, "%zx\r\n%s\r\n", strlen(text), text);
		if (c->drip_left == 0) {
			buf_str(&c->out, "0\r\n\r\n");
			answer_done(c);
		} else
			timer_set(c, now_ms() + c->drip_ms);
		break;
	default:
		break;
	}
}

/* ---- request bodies --------------------------------------------------------- */

static void
body_data(struct conn *c, const char *p, size_t n)
{
	c->body_bytes += n;
	adler32_update(&c->sum_a, &c->sum_b, (const unsigned char *)p, n);
	if (c->body_head_len < BODY_HEAD_MAX) {
		size_t k =
			BODY_HEAD_MAX - c->body_head_len < n ? BODY_HEAD_MAX - c->body_head_len : n;

		memcpy(c->body_head + c->body_head_len, p, k);
		c->body_head_len += k;
	}
	if (c->file_fd >= 0) {
		while (n > 0) {
			ssize_t w = write(c->file_fd, p, n);

			if (w < 0 && errno == EINTR)
				continue;
			if (w <= 0) {
				c->file_errno = w < 0 ? errno : EIO;
				close(c->file_fd);
				c->file_fd = -1;
				break;
			}
			p += w;
			n -= (size_t)w;
		}
	}
}

/* One step of reading the body: 1 progress, 0 more input needed. */
static int
body_step(struct conn *c)
{
	char *p = c->in + c->in_start, *eol;
	size_t n = c->in_end - c->in_start, k;
	uint64_t size;

	switch (c->body) {
	case BODY_NONE:
		break;
	case BODY_LENGTH:
		k = n < c->body_left ? n : (size_t)c->body_left;
		if (k == 0 && c->body_left > 0)
			return 0;
		body_data(c, p, k);
		c->in_start += k;
		c->body_left -= k;
		if (c->body_left > 0)
			return 1;
		break;
	case BODY_CHUNKED:
		switch (c->chunk) {
		case CHUNK_SIZE:
		case CHUNK_TRAILER:
			eol = memmem(p, n, "\r\n", 2);
			if (!eol)
				return n >= LINE_MAX_CHUNK ? refuse(c, 400, "chunk line too long\n")
							   : 0;
			c->in_start += (size_t)(eol - p) + 2;
			if (c->chunk == CHUNK_TRAILER) {
				if (eol != p)
					return 1; /* a trailer field: ignored */
				break;		  /* the end of the body */
			}
			for (size = 0, k = 0; p + k < eol && isxdigit((unsigned char)p[k]); k++) {
				if (k >= 15)
					return refuse(c, 400, "chunk too large\n");
				size = size * 16 + (uint64_t)(isdigit((unsigned char)p[k])
								      ? p[k] - '0'
								      : (p[k] | 0x20) - 'a' + 10);
			}
			if (k == 0 || (p + k < eol && p[k] != ';' && p[k] != ' ' && p[k] != '\t'))
				return refuse(c, 400, "bad chunk size\n");
			c->body_left = size;
			c->chunk = size ? CHUNK_DATA : CHUNK_TRAILER;
			return 1;
		case CHUNK_DATA:
			k = n < c->body_left ? n : (size_t)c->body_left;
			if (k == 0)
				return 0;
			body_data(c, p, k);
			c->in_start += k;
			c->body_left -= k;
			if (c->body_left == 0)
				c->chunk = CHUNK_DATA_END;
			return 1;
		case CHUNK_DATA_END:
			if (n < 2)
				return 0;
			if (p[0] != '\r' || p[1] != '\n')
				return refuse(c, 400, "no CRLF after chunk data\n");
			c->in_start += 2;
			c->chunk = CHUNK_SIZE;
			return 1;
		}
		break;
	}
	dispatch(c);
	return 1;
}

/* ---- request heads ---------------------------------------------------------- */

static bool
is_tchar(char ch)
{
	return (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
	       (ch && strchr("!#$%&'*+-.^_`|~", ch));
}

static bool
token_eq(const char *p, size_t n, const char *word)
{
	return strlen(word) == n && strncasecmp(p, word, n) == 0;
}

/* Does the comma list p[0, n) hold word (case-insensitive)? */
static bool
list_has(const char *p, size_t n, const char *word)
{
	const char *end = p + n;

	while (p < end) {
		const char *comma = memchr(p, ',', (size_t)(end - p)), *e = comma ? comma : end;
		const char *s = p;

		while (s < e && (*s == ' ' || *s == '\t'))
			s++;
		while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
			e--;
		if (token_eq(s, (size_t)(e - s), word))
			return true;
		p = comma ? comma + 1 : end;
	}
	return false;
}

static enum route
route_of(const char *target)
{
	size_t len = strcspn(target, "?");
	size_t i;

	for (i = 0; i < sizeof(routes) / sizeof(routes[0]); i++)
		if (strlen(routes[i].path) == len && strncmp(target, routes[i].path, len) == 0)
			return routes[i].route;
	if (len > 6 && strncmp(target, "/echo/", 6) == 0)
		return ROUTE_ECHO;
	return ROUTE_NOT_FOUND;
}

/* Parse one request head from the input: 1 handled (its answer may be a
 * refusal), 0 incomplete. */
static int
parse_head(struct conn *c)
{
	char *p = c->in + c->in_start, *end, *line, *eol, *sp1, *sp2;
	size_t n = c->in_end - c->in_start, head_len;
	bool close_asked = false, keep_alive_asked = false, upgrade = false, ws = false;
	bool expect_continue = false, chunked = false, have_length = false;
	const char *ws_key = NULL, *ws_version = NULL;
	size_t ws_key_len = 0, ws_version_len = 0;
	unsigned headers = 0, hosts = 0;
	uint64_t length = 0;

	/* RFC 9112 §2.2: empty lines before a request line are ignored. */
	while (n >= 2 && p[0] == '\r' && p[1] == '\n') {
		c->in_start += 2;
		p += 2;
		n -= 2;
	}
	end = memmem(p, n, "\r\n\r\n", 4);
	if (!end)
		return n >= IN_SIZE ? refuse(c, 431, "request head too large\n") : 0;
	head_len = (size_t)(end - p) + 4;

	/* The request line: METHOD SP TARGET SP HTTP/1.x */
	c->keep_alive = true;
	c->minor = 1;
	c->head_only = false;
	eol = memmem(p, head_len, "\r\n", 2);
	sp1 = memchr(p, ' ', (size_t)(eol - p));
	if (!sp1 || sp1 == p || sp1 - p >= (ptrdiff_t)sizeof(c->method))
		return refuse(c, 400, "bad request line\n");
	for (line = p; line < sp1; line++)
		if (!is_tchar(*line))
			return refuse(c, 400, "bad method\n");
	sp2 = memchr(sp1 + 1, ' ', (size_t)(eol - sp1 - 1));
	if (!sp2 || sp2 == sp1 + 1)
		return refuse(c, 400, "bad request line\n");
	if (sp2 - sp1 - 1 > TARGET_MAX)
		return refuse(c, 414, "target too long\n");
	for (line = sp1 + 1; line < sp2; line++)
		if ((unsigned char)*line <= ' ' || *line == 0x7f)
			return refuse(c, 400, "bad target\n");
	if (eol - sp2 - 1 != 8 || strncmp(sp2 + 1, "HTTP/1.", 7) != 0 ||
	    (sp2[8] != '0' && sp2[8] != '1'))
		return strncmp(sp2 + 1, "HTTP/", 5) == 0 ? refuse(c, 505, "HTTP/1.x only\n")
							 : refuse(c, 400, "bad version\n");
	c->minor = sp2[8] - '0';
	memcpy(c->method, p, (size_t)(sp1 - p));
	c->method[sp1 - p] = '\0';
	c->head_only = strcmp(c->method, "HEAD") == 0;
	free(c->target);
	c->target = strndup(sp1 + 1, (size_t)(sp2 - sp1 - 1));
	if (!c->target)
		die("strndup");
	if (c->target[0] != '/')
		return refuse(c, 400, "origin-form targets only\n");
	c->route = route_of(c->target);

	buf_free(&c->echo);
	if (c->route == ROUTE_ECHO) {
		buf_str(&c->echo, "{\"method\":");
		buf_json(&c->echo, c->method, strlen(c->method));
		buf_str(&c->echo, ",\"target\":");
		buf_json(&c->echo, c->target, strlen(c->target));
		buf_printf(&c->echo, ",\"version\":\"HTTP/1.%d\",\"headers\":[", c->minor);
	}

	/* The header fields. */
	for (line = eol + 2; line < end + 2; line = eol + 2) {
		char *colon, *v, *ve;

		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (*line == ' ' || *line == '\t')
			return refuse(c, 400, "obsolete line folding\n");
		colon = memchr(line, ':', (size_t)(eol - line));
		if (!colon || colon == line)
			return refuse(c, 400, "bad header line\n");
		for (v = line; v < colon; v++)
			if (!is_tchar(*v))
				return refuse(c, 400, "bad header name\n");
		for (v = colon + 1; v < eol && (*v == ' ' || *v == '\t'); v++)
			;
		for (ve = eol; ve > v && (ve[-1] == ' ' || ve[-1] == '\t'); ve--)
			;
		for (char *q = v; q < ve; q++)
			if (((unsigned char)*q < ' ' && *q != '\t') || *q == 0x7f)
				return refuse(c, 400, "control character in a header value\n");
		if (++headers > HEADERS_MAX)
			return refuse(c, 431, "too many header fields\n");
		if (c->route == ROUTE_ECHO) {
			buf_str(&c->echo, headers > 1 ? ",[" : "[");
			buf_json(&c->echo, line, (size_t)(colon - line));
			buf_add(&c->echo, ",", 1);
			buf_json(&c->echo, v, (size_t)(ve - v));
			buf_add(&c->echo, "]", 1);
		}

		size_t name_len = (size_t)(colon - line), len = (size_t)(ve - v);

		if (token_eq(line, name_len, "host")) {
			hosts++;
		} else if (token_eq(line, name_len, "content-length")) {
			char digits[24];
			uint64_t l;

			if (len == 0 || len >= sizeof(digits))
				return refuse(c, 400, "bad Content-Length\n");
			memcpy(digits, v, len);
			digits[len] = '\0';
			if (!parse_u64(digits, UINT64_C(1) << 62, &l) ||
			    (have_length && l != length))
				return refuse(c, 400, "bad Content-Length\n");
			length = l;
			have_length = true;
		} else if (token_eq(line, name_len, "transfer-encoding")) {
			if (!token_eq(v, len, "chunked") || chunked)
				return refuse(c, 501, "only Transfer-Encoding: chunked\n");
			chunked = true;
		} else if (token_eq(line, name_len, "connection")) {
			close_asked |= list_has(v, len, "close");
			keep_alive_asked |= list_has(v, len, "keep-alive");
			upgrade |= list_has(v, len, "upgrade");
		} else if (token_eq(line, name_len, "upgrade")) {
			ws |= list_has(v, len, "websocket");
		} else if (token_eq(line, name_len, "sec-websocket-key")) {
			ws_key = v;
			ws_key_len = len;
		} else if (token_eq(line, name_len, "sec-websocket-version")) {
			ws_version = v;
			ws_version_len = len;
		} else if (token_eq(line, name_len, "expect")) {
			if (!token_eq(v, len, "100-continue"))
				return refuse(c, 417, "only Expect: 100-continue\n");
			expect_continue = true;
		}
	}
	if (c->route == ROUTE_ECHO)
		buf_add(&c->echo, "]", 1);
	c->in_start += head_len;

	c->keep_alive = c->minor == 1 ? !close_asked : keep_alive_asked && !close_asked;
	if ((c->minor == 1 && hosts != 1) || hosts > 1)
		return refuse(c, 400, "exactly one Host, please\n");
	if (chunked && have_length)
		return refuse(c, 400, "Content-Length and Transfer-Encoding together\n");
	if (chunked && c->minor == 0)
		return refuse(c, 400, "chunked is HTTP/1.1\n");

	/* The body, and where it goes. */
	c->body = chunked ? BODY_CHUNKED : length ? BODY_LENGTH : BODY_NONE;
	c->chunk = CHUNK_SIZE;
	c->body_left = length;
	c->body_bytes = 0;
	c->sum_a = 1;
	c->sum_b = 0;
	c->body_head_len = 0;
	c->file_errno = 0;
	if (c->file_fd >= 0)
		close(c->file_fd);
	c->file_fd = -1;
	if (c->route == ROUTE_FILE && c->body != BODY_NONE &&
	    (strcmp(c->method, "PUT") == 0 || strcmp(c->method, "POST") == 0)) {
		char name[256], path[300];

		if (query_param(c->target, "write", name, sizeof(name)) && file_name_ok(name)) {
			snprintf(path, sizeof(path), "/var/%s", name);
			c->file_fd = open(
				path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC | O_NOFOLLOW, 0644);
			if (c->file_fd < 0)
				c->file_errno = errno;
		}
	}
	if (c->route == ROUTE_WS) {
		unsigned char digest[20], key[64 + sizeof(WS_GUID)];

		if (c->body != BODY_NONE || strcmp(c->method, "GET") != 0 || !upgrade || !ws ||
		    !ws_key || ws_key_len == 0 || ws_key_len > 64)
			return refuse(c, 400, "a WebSocket handshake, please\n");
		if (!ws_version || !token_eq(ws_version, ws_version_len, "13")) {
			c->keep_alive = false;
			answer(c, 426, "text/plain", "version 13\n", 11,
			       "Sec-WebSocket-Version: 13\r\n");
			return 1;
		}
		memcpy(key, ws_key, ws_key_len);
		memcpy(key + ws_key_len, WS_GUID, sizeof(WS_GUID) - 1);
		sha1(key, ws_key_len + sizeof(WS_GUID) - 1, digest);
		base64(digest, sizeof(digest), c->ws_accept);
	}
	if (expect_continue && c->body != BODY_NONE)
		buf_str(&c->out, "HTTP/1.1 100 Continue\r\n\r\n");
	c->phase = PHASE_BODY;
	return 1;
}

/* ---- WebSocket: echo every data frame as it streams in ----------------------- */

static void
ws_frame_head(struct conn *c, unsigned char b0, uint64_t len)
{
	unsigned char h[10];
	size_t n = 2, i;

	h[0] = b0;
	if (len < 126)
		h[1] = (unsigned char)len;
	else if (len <= 0xffff) {
		h[1] = 126;
		h[2] = (unsigned char)(len >> 8);
		h[3] = (unsigned char)len;
		n = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (unsigned char)(len >> (56 - 8 * i));
		n = 10;
	}
	buf_add(&c->out, h, n);
}

/* Close with a status code (RFC 6455 §7.4), then close the connection. */
static int
ws_close(struct conn *c, unsigned code, const unsigned char *payload, size_t len)
{
	unsigned char body[2] = { (unsigned char)(code >> 8), (unsigned char)code };

	if (!payload) {
		payload = body;
		len = 2;
	}
	ws_frame_head(c, 0x88, len);
	buf_add(&c->out, payload, len);
	c->keep_alive = false;
	c->phase = PHASE_CLOSE;
	return 1;
}

static int
ws_step(struct conn *c)
{
	unsigned char *p = (unsigned char *)c->in + c->in_start, control[125];
	size_t n = c->in_end - c->in_start, need = 2, i, k;
	unsigned opcode;
	uint64_t len;

	if (c->ws_in_frame) {
		if (c->ws_left == 0) {
			c->ws_in_frame = false;
			return 1;
		}
		k = n < c->ws_left ? n : (size_t)c->ws_left;
		if (k == 0)
			return 0;
		buf_reserve(&c->out, k);
		for (i = 0; i < k; i++)
			c->out.data[c->out.start + c->out.len + i] =
				(char)(p[i] ^ c->ws_mask[(c->ws_pos + i) & 3]);
		c->out.len += k;
		c->in_start += k;
		c->ws_left -= k;
		c->ws_pos += k;
		return 1;
	}
	if (n < 2)
		return 0;
	if (p[0] & 0x70)
		return ws_close(c, 1002, NULL, 0);
	if (!(p[1] & 0x80)) /* clients must mask */
		return ws_close(c, 1002, NULL, 0);
	len = p[1] & 0x7f;
	need += len == 126 ? 2 : len == 127 ? 8 : 0;
	need += 4;
	if (n < need)
		return 0;
	if (len == 126)
		len = (uint64_t)p[2] << 8 | p[3];
	else if (len == 127)
		for (len = 0, i = 0; i < 8; i++)
			len = len << 8 | p[2 + i];
	memcpy(c->ws_mask, p + need - 4, 4);
	opcode = p[0] & 0x0f;
	if (opcode >= 8) {
		if (!(p[0] & 0x80) || len > 125)
			return ws_close(c, 1002, NULL, 0);
		if (n < need + len)
			return 0;
		for (i = 0; i < len; i++)
			control[i] = p[need + i] ^ c->ws_mask[i & 3];
		c->in_start += need + (size_t)len;
		switch (opcode) {
		case 8: /* close: answer with the same code */
			if (len == 1)
				return ws_close(c, 1002, NULL, 0);
			return ws_close(c, 1000, len ? control : NULL, len ? 2 : 0);
		case 9: /* ping: pong with its payload */
			ws_frame_head(c, 0x8a, len);
			buf_add(&c->out, control, (size_t)len);
			return 1;
		case 10:
			return 1;
		default:
			return ws_close(c, 1002, NULL, 0);
		}
	}
	if (opcode > 2)
		return ws_close(c, 1002, NULL, 0);
	c->in_start += need;
	ws_frame_head(c, p[0], len);
	c->ws_in_frame = true;
	c->ws_left = len;
	c->ws_pos = 0;
	return 1;
}

/* ---- output ------------------------------------------------------------------- */

static uint64_t
xorshift(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/* More of a /download body: 1 progress, 0 the socket is full, -1 error. */
static int
produce(struct conn *c)
{
	if (c->produce_left == 0) {
		if (c->produce_chunked)
			buf_str(&c->out, "0\r\n\r\n");
		answer_done(c);
		return 1;
	}
	if (!c->produce_chunked) {
		size_t k = c->produce_left < PATTERN_RUN ? (size_t)c->produce_left : PATTERN_RUN;
		ssize_t w = write(c->fd, pattern + c->produce_pos % PATTERN_PERIOD, k);

		if (w < 0)
			return errno == EAGAIN || errno == EINTR ? 0 : -1;
		c->produce_left -= (uint64_t)w;
		c->produce_pos += (uint64_t)w;
		return 1;
	}
	while (c->out.len < OUT_HIGH && c->produce_left > 0) {
		uint64_t r = xorshift(&c->rng);
		size_t k = 1 + (size_t)(r >> 8) % ((r & 1) ? 16 : PATTERN_RUN);

		if (k > c->produce_left)
			k = (size_t)c->produce_left;
		buf_printf(&c->out, "%zx\r\n", k);
		buf_add(&c->out, pattern + c->produce_pos % PATTERN_PERIOD, k);
		buf_add(&c->out, "\r\n", 2);
		c->produce_left -= k;
		c->produce_pos += k;
	}
	return 1;
}

/* Write what is queued: 1 all written, 0 the socket is full, -1 error. */
static int
flush(struct conn *c)
{
	for (;;) {
		while (c->out.len > 0) {
			ssize_t w = write(c->fd, c->out.data + c->out.start, c->out.len);

			if (w < 0 && errno == EINTR)
				continue;
			if (w < 0)
				return errno == EAGAIN ? 0 : -1;
			buf_consume(&c->out, (size_t)w);
		}
		if (c->phase != PHASE_PRODUCE)
			return 1;
		int r = produce(c);
		if (r <= 0)
			return r;
	}
}

/* Work through the input: 1 progress, 0 none. */
static int
process(struct conn *c)
{
	int progress = 0, r;

	while (c->out.len < OUT_HIGH) {
		switch (c->phase) {
		case PHASE_HEAD:
			if (c->in_start == c->in_end)
				return progress;
			r = parse_head(c);
			break;
		case PHASE_BODY:
			r = body_step(c);
			break;
		case PHASE_WS:
			r = ws_step(c);
			break;
		case PHASE_LINGER:
			r = c->in_start != c->in_end;
			c->in_start = c->in_end = 0;
			return progress | r;
		default:
			return progress;
		}
		if (r == 0)
			return progress;
		progress = 1;
	}
	return progress;
}

static void
conn_update(struct conn *c)
{
	uint32_t want = 0;
	struct epoll_event ev;

	if (!c->eof && c->in_end - c->in_start < IN_SIZE)
		want |= EPOLLIN;
	if (c->out.len > 0 || c->phase == PHASE_PRODUCE)
		want |= EPOLLOUT;
	if (want == c->events)
		return;
	ev = (struct epoll_event){ .events = want, .data.ptr = c };
	if (epoll_ctl(epoll_fd, EPOLL_CTL_MOD, c->fd, &ev) < 0)
		die("epoll_ctl");
	c->events = want;
}

/* Read once: > 0 bytes, 0 end of input, -1 nothing now, -2 error. */
static ssize_t
conn_read(struct conn *c, size_t *room)
{
	ssize_t n;

	if (c->in_start == c->in_end)
		c->in_start = c->in_end = 0;
	else if (c->in_end == IN_SIZE && c->in_start > 0) {
		memmove(c->in, c->in + c->in_start, c->in_end - c->in_start);
		c->in_end -= c->in_start;
		c->in_start = 0;
	}
	*room = IN_SIZE - c->in_end;
	if (*room == 0)
		return -1;
	n = read(c->fd, c->in + c->in_end, *room);
	if (n > 0)
		c->in_end += (size_t)n;
	else if (n < 0)
		return errno == EAGAIN || errno == EINTR ? -1 : -2;
	return n;
}

/* Everything a connection can do now; it may be freed. */
static void
conn_run(struct conn *c)
{
	enum phase phase;
	int round, r;

	for (round = 0; round < 64; round++) {
		bool progress = false;

		if (c->readable && !c->eof) {
			size_t room;
			ssize_t n = conn_read(c, &room);

			if (n == -2) {
				conn_close(c);
				return;
			}
			if (n == 0)
				c->eof = progress = true;
			else if (n > 0)
				progress = true;
			/* A short read drained the socket; epoll says when there is more. */
			if (n < 0 || (n > 0 && (size_t)n < room))
				c->readable = false;
		}
		if (process(c))
			progress = true;
		phase = c->phase;
		r = flush(c);
		if (r < 0) {
			conn_close(c);
			return;
		}
		/* A download that ended lets a pipelined request go on. */
		if (!progress && c->phase == phase)
			break;
	}
	if (c->phase == PHASE_CLOSE && c->out.len == 0) {
		(void)shutdown(c->fd, SHUT_WR);
		c->phase = PHASE_LINGER;
		c->in_start = c->in_end = 0;
		timer_set(c, now_ms() + LINGER_MS);
	}
	if (c->eof && c->out.len == 0 &&
	    (c->phase == PHASE_LINGER || c->phase == PHASE_HEAD || c->phase == PHASE_BODY ||
	     c->phase == PHASE_WS)) {
		conn_close(c);
		return;
	}
	conn_update(c);
}

/* ---- the loop ------------------------------------------------------------------ */

static void
accept_all(void)
{
	for (;;) {
		int fd = accept4(listen_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC), one = 1;
		struct epoll_event ev;
		struct conn *c;

		if (fd < 0) {
			if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS ||
			    errno == ENOMEM) {
				/* Stop listening a while rather than spin on a ready socket. */
				ev = (struct epoll_event){ .events = 0, .data.ptr = NULL };
				(void)epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
				accept_paused_until = now_ms() + ACCEPT_PAUSE_MS;
			}
			return;
		}
		(void)setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		c = calloc(1, sizeof(*c));
		if (!c)
			die("calloc");
		c->fd = fd;
		c->file_fd = -1;
		c->phase = PHASE_HEAD;
		c->events = EPOLLIN;
		ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = c };
		if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, fd, &ev) < 0)
			die("epoll_ctl");
	}
}

static int
next_timeout(uint64_t now)
{
	uint64_t first = UINT64_MAX;
	struct conn *c;

	for (c = timers; c; c = c->timer_next)
		if (c->deadline < first)
			first = c->deadline;
	if (accept_paused_until && accept_paused_until < first)
		first = accept_paused_until;
	if (first == UINT64_MAX)
		return -1;
	return first <= now ? 0 : first - now > 60000 ? 60000 : (int)(first - now);
}

static void
run_timers(void)
{
	uint64_t now = now_ms();
	struct conn *c;

	if (accept_paused_until && accept_paused_until <= now) {
		struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

		accept_paused_until = 0;
		(void)epoll_ctl(epoll_fd, EPOLL_CTL_MOD, listen_fd, &ev);
	}
	/* A fired timer may free its connection: start over after each. */
	for (;;) {
		for (c = timers; c && c->deadline > now; c = c->timer_next)
			;
		if (!c)
			return;
		timer_clear(c);
		if (c->phase == PHASE_LINGER) {
			conn_close(c);
			continue;
		}
		on_timer(c);
		conn_run(c);
	}
}

static void
usage(FILE *f)
{
	fprintf(f, "Usage: grain-test PORT\n"
		   "Serve Granary's test endpoints on 127.0.0.1:PORT (0: a free port).\n"
		   "The endpoints are listed at the head of apps/grain-test/grain-test.c.\n\n"
		   "  -h, --help      show this help\n"
		   "      --version   show the version and exit\n");
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	struct epoll_event ev, events[64];
	socklen_t addr_len = sizeof(addr);
	uint64_t port;
	int one = 1, i, n;

	if (argc == 2 && strcmp(argv[1], "--version") == 0) {
		printf("grain-test %s\n", VERSION);
		return 0;
	}
	if (argc == 2 && (strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0)) {
		usage(stdout);
		return 0;
	}
	if (argc != 2 || !parse_u64(argv[1], 65535, &port)) {
		usage(stderr);
		return 2;
	}
	saved_argv = argv;
	list_fds(fds_at_start, sizeof(fds_at_start));
	signal(SIGPIPE, SIG_IGN);
	for (i = 0; i < (int)sizeof(pattern); i++)
		pattern[i] = (unsigned char)(i * 31 % PATTERN_PERIOD);

	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (listen_fd < 0 ||
	    setsockopt(listen_fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(listen_fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 ||
	    listen(listen_fd, 1024) < 0 ||
	    getsockname(listen_fd, (struct sockaddr *)&addr, &addr_len) < 0) {
		fprintf(stderr, "grain-test: cannot listen on 127.0.0.1:%d: %s\n", (int)port,
			strerror(errno));
		return 1;
	}
	epoll_fd = epoll_create1(EPOLL_CLOEXEC);
	if (epoll_fd < 0)
		die("epoll_create1");
	ev = (struct epoll_event){ .events = EPOLLIN, .data.ptr = NULL };
	if (epoll_ctl(epoll_fd, EPOLL_CTL_ADD, listen_fd, &ev) < 0)
		die("epoll_ctl");
	fprintf(stderr, "grain-test: listening on 127.0.0.1:%d\n", ntohs(addr.sin_port));

	for (;;) {
		n = epoll_wait(epoll_fd, events, 64, next_timeout(now_ms()));
		if (n < 0 && errno != EINTR)
			die("epoll_wait");
		for (i = 0; i < n; i++) {
			struct conn *c = events[i].data.ptr;

			if (!c) {
				accept_all();
				continue;
			}
			if (events[i].events & EPOLLERR) {
				conn_close(c);
				continue;
			}
			if (events[i].events & (EPOLLIN | EPOLLHUP))
				c->readable = true;
			conn_run(c);
		}
		run_timers();
	}
}
