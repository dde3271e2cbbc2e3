/* SPDX-License-Identifier: MIT */
/*
 * splice-relay.c: the least a TCP proxy can do, for benchmark B7's "ideal
 * relay" row: no HTTP, no checks, no event loop. Each accepted connection
 * gets a connection to the upstream port and two threads, one a direction,
 * each moving bytes with blocking splice(2) through a pipe of its own
 * (1 MiB, as front's), never through user space.
 *
 *	splice-relay LISTEN_PORT UPSTREAM_PORT	(both on 127.0.0.1)
 */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include "common/banned.h"

#define PIPE_SIZE (1024 * 1024)

static uint16_t upstream_port;

struct direction {
	int from, to;
};

static void *
relay(void *arg)
{
	struct direction *d = arg;
	int p[2];

	if (pipe2(p, O_CLOEXEC) < 0)
		return NULL;
	(void)fcntl(p[1], F_SETPIPE_SZ, PIPE_SIZE);
	for (;;) {
		ssize_t n =
			splice(d->from, NULL, p[1], NULL, PIPE_SIZE, SPLICE_F_MOVE | SPLICE_F_MORE);

		if (n <= 0)
			break;
		while (n > 0) {
			ssize_t m = splice(p[0], NULL, d->to, NULL, (size_t)n,
					   SPLICE_F_MOVE | SPLICE_F_MORE);

			if (m <= 0)
				goto out;
			n -= m;
		}
	}
out:
	(void)shutdown(d->to, SHUT_WR);
	(void)close(p[0]);
	(void)close(p[1]);
	return NULL;
}

static void *
connection(void *arg)
{
	int client = (int)(intptr_t)arg, up = -1;
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	struct direction to_up, to_client;
	pthread_t t;

	a.sin_port = htons(upstream_port);
	up = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (up < 0 || connect(up, (struct sockaddr *)&a, sizeof(a)) < 0)
		goto done;
	to_up = (struct direction){ client, up };
	to_client = (struct direction){ up, client };
	if (pthread_create(&t, NULL, relay, &to_up) != 0)
		goto done;
	relay(&to_client);
	(void)pthread_join(t, NULL);
done:
	if (up >= 0)
		(void)close(up);
	(void)close(client);
	return NULL;
}

static bool
port_of(const char *s, uint16_t *ret)
{
	char *end;
	unsigned long n;

	errno = 0;
	n = strtoul(s, &end, 10);
	if (errno || end == s || *end || n == 0 || n > 65535)
		return false;
	*ret = (uint16_t)n;
	return true;
}

int
main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
	int one = 1, l;

	if (argc != 3 || !port_of(argv[1], &a.sin_port) || !port_of(argv[2], &upstream_port)) {
		fprintf(stderr, "usage: splice-relay LISTEN_PORT UPSTREAM_PORT\n");
		return 2;
	}
	a.sin_port = htons(a.sin_port);
	l = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (l < 0 || setsockopt(l, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0 ||
	    bind(l, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(l, 128) < 0) {
		perror("splice-relay: listen");
		return 1;
	}
	for (;;) {
		int c = accept4(l, NULL, NULL, SOCK_CLOEXEC);
		pthread_t t;

		if (c < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			perror("splice-relay: accept");
			return 1;
		}
		if (pthread_create(&t, NULL, connection, (void *)(intptr_t)c) != 0)
			(void)close(c);
		else
			(void)pthread_detach(t);
	}
}
