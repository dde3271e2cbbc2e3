/* SPDX-License-Identifier: MIT */
/*
 * grain-init.c: pid 1 of every grain. Statically linked: the package it runs
 * in may carry no libc at all.
 *
 * Today: start the app, forward termination signals to it, reap every zombie
 * (as pid 1 of a pid namespace, or as a child subreaper elsewhere), and exit
 * with the app's status. The connection broker and log forwarding of
 * DESIGN.md arrive with the grains issue.
 *
 * All signals are taken synchronously with sigwaitinfo(): no handler runs
 * between fork() and exec(), and there is no async-signal-safety to get wrong.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/banned.h"

static const int forwarded[] = { SIGTERM, SIGINT, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2 };

static void
help(void)
{
	printf("Usage: grain-init [--] CMD [ARG]...\n"
	       "Run CMD as the app of a grain: forward signals to it, reap zombies,\n"
	       "exit with its status (128+N when signal N killed it).\n"
	       "\n"
	       "  -h, --help      show this help\n"
	       "      --version   show the version\n");
}

static int
exit_status(int status)
{
	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status))
		return 128 + WTERMSIG(status);
	return EXIT_FAILURE;
}

int
main(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100 };
	static const struct option options[] = {
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	sigset_t mask, old_mask;
	pid_t app;
	int c;

	log_setup("grain-init");
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("grain-init %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'grain-init --help'.\n");
			return EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		log_error("No command given; try 'grain-init --help'");
		return EXIT_FAILURE;
	}

	/* Outside a pid namespace, orphans of the app still come to us. */
	if (getpid() != 1)
		(void)prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0);

	sigemptyset(&mask);
	sigaddset(&mask, SIGCHLD);
	for (size_t i = 0; i < ELEMENTSOF(forwarded); i++)
		sigaddset(&mask, forwarded[i]);
	if (sigprocmask(SIG_BLOCK, &mask, &old_mask) < 0)
		return log_error_errno(errno, "Failed to block signals: %m"), EXIT_FAILURE;

	app = fork();
	if (app < 0)
		return log_error_errno(errno, "Failed to fork: %m"), EXIT_FAILURE;
	if (app == 0) {
		(void)sigprocmask(SIG_SETMASK, &old_mask, NULL);
		execvp(argv[optind], argv + optind);
		log_error_errno(errno, "Failed to run '%s': %m", argv[optind]);
		_exit(127);
	}

	for (;;) {
		siginfo_t info;
		int sig = sigwaitinfo(&mask, &info);

		if (sig < 0) {
			if (errno == EINTR)
				continue;
			log_error_errno(errno, "Failed to wait for signals: %m");
			(void)kill(app, SIGKILL);
			return EXIT_FAILURE;
		}
		if (sig != SIGCHLD) {
			(void)kill(app, sig);
			continue;
		}
		for (;;) {
			int status;
			pid_t pid = waitpid(-1, &status, WNOHANG);

			if (pid <= 0)
				break;
			if (pid == app)
				return exit_status(status);
		}
	}
}
