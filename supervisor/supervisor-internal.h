/* SPDX-License-Identifier: MIT */
/*
 * supervisor-internal.h: declarations shared by the files of granaryd.
 *
 * Today granaryd is one process serving the shell placeholder and /healthz;
 * the privilege-separated parent, launcher and front of DESIGN.md arrive with
 * the supervisor issue, each in its own file as the process map says.
 */
#ifndef GRANARY_SUPERVISOR_INTERNAL_H
#define GRANARY_SUPERVISOR_INTERNAL_H

#include <netinet/in.h>
#include <stdint.h>
#include <sys/socket.h>

struct listen_address {
	struct sockaddr_storage addr;
	socklen_t addr_len;
};

struct front_config {
	int listen_fd;	      /* borrowed: a listening socket (listen_socket_open()) */
	const char *base_url; /* borrowed; NULL: derived from the listen address */
	const char *wildcard; /* borrowed; NULL: "*.localhost:<port>" */
};

struct front;

/* front.c */

/*
 * Start serving HTTP on config->listen_fd in a thread of libmicrohttpd's.
 * *ret is owned by the caller (front_free()).
 */
int front_start(const struct front_config *config, struct front **ret);

/* Stop accepting, finish with open connections and free. Accepts NULL; returns NULL. */
struct front *front_free(struct front *f);

/* listen.c */

/*
 * Parse "ADDR:PORT", "[V6ADDR]:PORT", "localhost:PORT" or ":PORT" (every
 * IPv4 address). Port 0 asks the kernel for a free one. -EINVAL on anything else.
 */
int listen_address_parse(const char *s, struct listen_address *ret);

/*
 * A non-blocking, close-on-exec listening TCP socket bound to a. Returns
 * -errno from socket(), bind() or listen() so the caller can say which.
 */
int listen_socket_open(const struct listen_address *a, int *ret_fd);

/* The port a socket is bound to (the real one when 0 was asked for). */
int listen_socket_port(int fd, uint16_t *ret);

/* "127.0.0.1:6080" or "[::1]:6080" into buf. Returns buf. */
char *listen_address_format(const struct listen_address *a, uint16_t port, char *buf, size_t size);

#endif
