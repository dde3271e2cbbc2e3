/* SPDX-License-Identifier: MIT */
/*
 * hello-app: the smallest grain app, for test-launcher. Static (it runs in a
 * package with no libc). `hello-app PORT` says where it listens on stdout
 * (the grain log), listens on 127.0.0.1:PORT and answers every request with
 * "hello from the grain app" and its uid; GET /spin first uses 100 ms of CPU.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "common/banned.h"

int
main(int argc, char *argv[])
{
	struct sockaddr_in sa = { .sin_family = AF_INET,
				  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	unsigned long port;
	char *end;
	int one = 1, fd;

	if (argc != 2)
		return 2;
	errno = 0;
	port = strtoul(argv[1], &end, 10);
	if (errno || *end || port == 0 || port > 65535)
		return 2;
	sa.sin_port = htons((uint16_t)port);
	fd = socket(AF_INET, SOCK_STREAM, 0);
	if (fd < 0 || setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(fd, 128) < 0) {
		perror("listen");
		return 1;
	}
	/* A peer that closes first (grain-init's readiness probe does) is no reason to die. */
	signal(SIGPIPE, SIG_IGN);
	printf("hello-app listening on 127.0.0.1:%lu as uid %u\n", port, (unsigned)getuid());
	fflush(stdout);
	for (;;) {
		char req[4096] = "", body[128], head[160];
		size_t len = 0;
		int c = accept(fd, NULL, NULL), n, m;

		if (c < 0)
			continue;
		while (len < sizeof(req) - 1) {
			ssize_t r = read(c, req + len, sizeof(req) - 1 - len);

			if (r <= 0)
				break;
			len += (size_t)r;
			req[len] = '\0';
			if (strstr(req, "\r\n\r\n"))
				break;
		}
		if (!strstr(req, "\r\n\r\n")) {
			close(c); /* no request: nothing to answer */
			continue;
		}
		if (strncmp(req, "GET /spin ", 10) == 0) {
			/* Use some CPU time (for the launcher's figures). */
			clock_t until = clock() + CLOCKS_PER_SEC / 10;

			while (clock() < until)
				;
		}
		n = snprintf(body, sizeof(body), "hello from the grain app, uid %u\n",
			     (unsigned)getuid());
		m = snprintf(head, sizeof(head),
			     "HTTP/1.0 200 OK\r\nContent-Length: %d\r\nConnection: close\r\n\r\n",
			     n);
		if (write(c, head, (size_t)m) != m || write(c, body, (size_t)n) != n)
			perror("write");
		close(c);
	}
}
