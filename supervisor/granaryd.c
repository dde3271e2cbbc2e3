/* SPDX-License-Identifier: MIT */
/*
 * granaryd.c: the Granary daemon's entry point.
 *
 * Parses the command line, takes the state directory's lock, binds the
 * listening socket, starts the front and waits for SIGTERM/SIGINT, then stops
 * cleanly (exit status 0). See DESIGN.md for the process model this grows into.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

static const char *arg_state = "/var/lib/granary";
static const char *arg_listen = "127.0.0.1:6080";
static const char *arg_base_url;
static const char *arg_wildcard;

static void
help(void)
{
	printf("Usage: granaryd [OPTION]...\n"
	       "Run the Granary server in the foreground. SIGTERM or Ctrl-C stops it.\n"
	       "\n"
	       "  -s, --state DIR        keep state in DIR (default %s)\n"
	       "  -l, --listen ADDR:PORT listen there (default %s; '[::1]:6080',\n"
	       "                         ':6080' for every IPv4 address, port 0 picks one)\n"
	       "      --base-url URL     the shell's public URL (default http://localhost:PORT)\n"
	       "      --wildcard HOST    host pattern of grain sessions (default "
	       "*.localhost:PORT)\n"
	       "  -v, --verbose          log debug messages (or GRANARY_LOG_LEVEL=debug)\n"
	       "  -h, --help             show this help\n"
	       "      --version          show the version\n"
	       "\n"
	       "Example: granaryd --state ./var --listen 127.0.0.1:6080\n",
	       arg_state, arg_listen);
}

static int
parse_argv(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100, ARG_BASE_URL, ARG_WILDCARD };
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "listen", required_argument, NULL, 'l' },
		{ "base-url", required_argument, NULL, ARG_BASE_URL },
		{ "wildcard", required_argument, NULL, ARG_WILDCARD },
		{ "verbose", no_argument, NULL, 'v' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int c;

	while ((c = getopt_long(argc, argv, "s:l:vh", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			arg_state = optarg;
			break;
		case 'l':
			arg_listen = optarg;
			break;
		case ARG_BASE_URL:
			arg_base_url = optarg;
			break;
		case ARG_WILDCARD:
			arg_wildcard = optarg;
			break;
		case 'v':
			log_set_max_level(LOG_DEBUG);
			break;
		case 'h':
			help();
			return 0;
		case ARG_VERSION:
			printf("granaryd %s\n", GRANARY_VERSION);
			return 0;
		default:
			fprintf(stderr, "Try 'granaryd --help'.\n");
			return -EINVAL;
		}
	}
	if (optind < argc) {
		log_error("Unexpected argument '%s'; try 'granaryd --help'", argv[optind]);
		return -EINVAL;
	}
	return 1;
}

/*
 * Create the state directory if needed and hold a lock on it for our whole
 * life, so two daemons never share one state directory.
 */
static int
state_lock(const char *state, int *ret_fd)
{
	_cleanup_close_ int dir_fd = -EBADF, lock_fd = -EBADF;

	if (mkdir(state, 0700) < 0 && errno != EEXIST)
		return log_error_errno(errno, "Failed to create state directory '%s': %m", state);
	dir_fd = open(state, O_DIRECTORY | O_RDONLY | O_CLOEXEC);
	if (dir_fd < 0)
		return log_error_errno(errno, "Failed to open state directory '%s': %m", state);
	lock_fd = openat(dir_fd, "granaryd.lock", O_RDWR | O_CREAT | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (lock_fd < 0)
		return log_error_errno(errno, "Failed to open '%s/granaryd.lock': %m", state);
	if (flock(lock_fd, LOCK_EX | LOCK_NB) < 0) {
		if (errno == EWOULDBLOCK)
			return log_error_errno(EBUSY,
					       "Another granaryd is already running with state "
					       "'%s'; stop it first",
					       state);
		return log_error_errno(errno, "Failed to lock '%s/granaryd.lock': %m", state);
	}
	*ret_fd = TAKE_FD(lock_fd);
	return 0;
}

int
main(int argc, char *argv[])
{
	_cleanup_close_ int lock_fd = -EBADF, listen_fd = -EBADF;
	struct listen_address listen_address;
	struct front_config config = {};
	struct front *front = NULL;
	char where[64];
	sigset_t mask;
	uint16_t port;
	int r, sig;

	log_setup("granaryd");
	r = parse_argv(argc, argv);
	if (r <= 0)
		return r < 0 ? EXIT_FAILURE : EXIT_SUCCESS;

	r = listen_address_parse(arg_listen, &listen_address);
	if (r < 0) {
		log_error("Invalid --listen '%s': expected ADDR:PORT such as 127.0.0.1:6080",
			  arg_listen);
		return EXIT_FAILURE;
	}

	r = state_lock(arg_state, &lock_fd);
	if (r < 0)
		return EXIT_FAILURE;

	/*
	 * Signals are taken synchronously by this thread only: block them before
	 * libmicrohttpd starts its threads, which inherit the mask.
	 */
	(void)signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	if (sigprocmask(SIG_BLOCK, &mask, NULL) < 0)
		return log_error_errno(errno, "Failed to block signals: %m"), EXIT_FAILURE;

	r = listen_socket_open(&listen_address, &listen_fd);
	if (r < 0) {
		log_error_errno(r, "Failed to listen on %s: %m%s", arg_listen,
				r == -EADDRINUSE ? " (is another server using that port? "
						   "choose another with --listen)"
						 : "");
		return EXIT_FAILURE;
	}
	r = listen_socket_port(listen_fd, &port);
	if (r < 0)
		return log_error_errno(r, "Failed to read the listening port: %m"), EXIT_FAILURE;

	config.listen_fd = listen_fd;
	config.port = port;
	config.state_dir = arg_state;
	config.base_url = arg_base_url;
	config.wildcard = arg_wildcard;
	r = front_start(&config, &front);
	if (r < 0)
		return EXIT_FAILURE; /* front_start() said why */
	/* libmicrohttpd owns the socket now and closes it in MHD_stop_daemon(). */
	listen_fd = -EBADF;

	log_info("Granary %s listening on http://%s/ (state in '%s')", GRANARY_VERSION,
		 listen_address_format(&listen_address, port, where, sizeof(where)), arg_state);

	for (;;) {
		sig = sigwaitinfo(&mask, NULL);
		if (sig < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(errno, "Failed to wait for signals: %m");
			break;
		}
		if (sig == SIGHUP) {
			log_info("SIGHUP: nothing to reload yet");
			continue;
		}
		log_info("Received %s, stopping", sig == SIGTERM ? "SIGTERM" : "SIGINT");
		break;
	}

	front = front_free(front);
	log_info("Stopped");
	return EXIT_SUCCESS;
}
