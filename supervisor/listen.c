/* SPDX-License-Identifier: MIT */
/*
 * listen.c: the --listen ADDR:PORT syntax. Numeric addresses only (plus
 * "localhost"), so start-up never waits on DNS.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

int
listen_address_parse(const char *s, struct listen_address *ret)
{
	struct listen_address a = {};
	char host[INET6_ADDRSTRLEN + 1];
	const char *colon, *port_text;
	size_t host_len;
	uint16_t port;
	int r;

	if (!s || !*s)
		return -EINVAL;

	if (s[0] == '[') {
		const char *close = strchr(s, ']');

		if (!close || close[1] != ':')
			return -EINVAL;
		host_len = (size_t)(close - s - 1);
		if (host_len == 0 || host_len >= sizeof(host))
			return -EINVAL;
		memcpy(host, s + 1, host_len);
		host[host_len] = '\0';
		port_text = close + 2;
		r = parse_port(port_text, true, &port);
		if (r < 0)
			return -EINVAL;
		struct sockaddr_in6 *sin6 = (struct sockaddr_in6 *)&a.addr;
		sin6->sin6_family = AF_INET6;
		sin6->sin6_port = htons(port);
		if (inet_pton(AF_INET6, host, &sin6->sin6_addr) != 1)
			return -EINVAL;
		a.addr_len = sizeof(*sin6);
		*ret = a;
		return 0;
	}

	colon = strrchr(s, ':');
	if (!colon)
		return -EINVAL;
	host_len = (size_t)(colon - s);
	if (host_len >= sizeof(host))
		return -EINVAL;
	memcpy(host, s, host_len);
	host[host_len] = '\0';
	r = parse_port(colon + 1, true, &port);
	if (r < 0)
		return -EINVAL;

	struct sockaddr_in *sin = (struct sockaddr_in *)&a.addr;
	sin->sin_family = AF_INET;
	sin->sin_port = htons(port);
	if (host_len == 0)
		sin->sin_addr.s_addr = htonl(INADDR_ANY);
	else if (strcmp(host, "localhost") == 0)
		sin->sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	else if (inet_pton(AF_INET, host, &sin->sin_addr) != 1)
		return -EINVAL;
	a.addr_len = sizeof(*sin);
	*ret = a;
	return 0;
}

char *
listen_address_format(const struct listen_address *a, uint16_t port, char *buf, size_t size)
{
	char host[INET6_ADDRSTRLEN];

	if (a->addr.ss_family == AF_INET6) {
		const struct sockaddr_in6 *sin6 = (const struct sockaddr_in6 *)&a->addr;

		(void)inet_ntop(AF_INET6, &sin6->sin6_addr, host, sizeof(host));
		(void)snprintf(buf, size, "[%s]:%u", host, port);
	} else {
		const struct sockaddr_in *sin = (const struct sockaddr_in *)&a->addr;

		(void)inet_ntop(AF_INET, &sin->sin_addr, host, sizeof(host));
		(void)snprintf(buf, size, "%s:%u", host, port);
	}
	return buf;
}

int
listen_socket_open(const struct listen_address *a, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	int one = 1;

	fd = socket(a->addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (fd < 0)
		return negative_errno();
	/* A restart must not wait for TIME_WAIT connections of the previous run. */
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one)) < 0)
		return negative_errno();
	if (a->addr.ss_family == AF_INET6 &&
	    setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one, sizeof(one)) < 0)
		return negative_errno();
	if (bind(fd, (const struct sockaddr *)&a->addr, a->addr_len) < 0)
		return negative_errno();
	if (listen(fd, 512) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}

int
listen_socket_port(int fd, uint16_t *ret)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);

	if (getsockname(fd, (struct sockaddr *)&ss, &len) < 0)
		return negative_errno();
	if (ss.ss_family == AF_INET6)
		*ret = ntohs(((struct sockaddr_in6 *)&ss)->sin6_port);
	else
		*ret = ntohs(((struct sockaddr_in *)&ss)->sin_port);
	return 0;
}

int
local_socket_path(const char *state_dir, char *buf, size_t size)
{
	struct sockaddr_un sa;
	int n = snprintf(buf, size, "%s/" LOCAL_SOCKET_NAME, state_dir);

	if (n < 0 || (size_t)n >= size || (size_t)n >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	return 0;
}

int
local_socket_open(const char *state_dir, int *ret_fd)
{
	_cleanup_close_ int fd = -EBADF;
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	mode_t old_umask;
	int r;

	r = local_socket_path(state_dir, sa.sun_path, sizeof(sa.sun_path));
	if (r < 0)
		return r;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return negative_errno();
	/* The caller holds the state lock: a socket file here is a dead daemon's. */
	if (unlink(sa.sun_path) < 0 && errno != ENOENT)
		return negative_errno();
	/* Owner-only from birth: no moment where someone else could connect. */
	old_umask = umask(0177);
	r = bind(fd, (struct sockaddr *)&sa, sizeof(sa));
	(void)umask(old_umask);
	if (r < 0)
		return negative_errno();
	if (listen(fd, 64) < 0)
		return negative_errno();
	*ret_fd = TAKE_FD(fd);
	return 0;
}
