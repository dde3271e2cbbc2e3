/* SPDX-License-Identifier: MIT */
/*
 * hello.c: the smallest Granary app, a static HTTP server in one file (see
 * docs/packaging.md). Granary starts it with the command from spk.json,
 * "/app/hello 8000", inside a grain: it listens on 127.0.0.1:8000, answers
 * every request with a page greeting the user Granary names in the
 * X-Granary-Username header, and counts visits in /var/hello-count, the
 * grain's own storage (in memory when /var is not writable).
 *
 * Build: cc -static -O2 -I../.. -o hello hello.c   (apps/hello/build.sh)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/banned.h"

#define REQUEST_MAX 8192

static long visits;

/* The visit count: read, add one, write back; /var survives restarts. */
static long
count_visit(void)
{
	char buf[32] = "";
	FILE *f = fopen("/var/hello-count", "r+e");

	if (!f)
		f = fopen("/var/hello-count", "w+e");
	if (!f)
		return ++visits;
	if (fgets(buf, sizeof(buf), f))
		visits = strtol(buf, NULL, 10);
	visits++;
	rewind(f);
	fprintf(f, "%ld\n", visits);
	fclose(f);
	return visits;
}

/* The value of header name in the request, HTML-escaped into out. */
static void
header_value(const char *request, const char *name, char *out, size_t size)
{
	size_t len = strlen(name), o = 0;
	const char *line = strstr(request, "\r\n");

	out[0] = '\0';
	while (line && line[2] != '\r') {
		line += 2;
		if (strncasecmp(line, name, len) == 0 && line[len] == ':') {
			const char *v = line + len + 1;

			while (*v == ' ')
				v++;
			for (; *v && *v != '\r' && o + 7 < size; v++) {
				const char *e = *v == '<'   ? "&lt;"
						: *v == '>' ? "&gt;"
						: *v == '&' ? "&amp;"
							    : NULL;

				if (e)
					o += (size_t)snprintf(out + o, size - o, "%s", e);
				else
					out[o++] = *v;
			}
			out[o] = '\0';
			return;
		}
		line = strstr(line, "\r\n");
	}
}

static void
serve(int fd)
{
	char request[REQUEST_MAX + 1], user[256], body[1024], head[256];
	size_t len = 0;
	ssize_t n;
	int body_len, head_len;

	/* The request head, up to the empty line (bodies are not read: GET only). */
	while (len < REQUEST_MAX && (n = read(fd, request + len, REQUEST_MAX - len)) > 0) {
		len += (size_t)n;
		request[len] = '\0';
		if (strstr(request, "\r\n\r\n"))
			break;
	}
	request[len] = '\0';
	if (len == 0)
		return; /* a connection that sent nothing (a port probe) */
	header_value(request, "X-Granary-Username", user, sizeof(user));
	body_len = snprintf(body, sizeof(body),
			    "<!doctype html><title>Hello</title>"
			    "<h1>Hello, %s!</h1><p>This grain has been visited %ld times.</p>\n",
			    *user ? user : "stranger", count_visit());
	head_len = snprintf(head, sizeof(head),
			    "HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
			    "Content-Length: %d\r\nConnection: close\r\n\r\n",
			    body_len);
	if (write(fd, head, (size_t)head_len) == head_len)
		(void)!write(fd, body, (size_t)body_len);
}

int
main(int argc, char *argv[])
{
	struct sockaddr_in addr = { .sin_family = AF_INET };
	int port = argc > 1 ? (int)strtol(argv[1], NULL, 10) : 8000, fd, one = 1;

	signal(SIGPIPE, SIG_IGN);
	addr.sin_port = htons((uint16_t)port);
	addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&addr, sizeof(addr)) < 0 || listen(fd, 64) < 0) {
		fprintf(stderr, "hello: cannot listen on 127.0.0.1:%d: %s\n", port,
			strerror(errno));
		return 1;
	}
	fprintf(stderr, "hello: listening on 127.0.0.1:%d\n", port);
	for (;;) {
		int c = accept4(fd, NULL, NULL, SOCK_CLOEXEC);

		if (c < 0)
			continue;
		serve(c);
		close(c);
	}
}
