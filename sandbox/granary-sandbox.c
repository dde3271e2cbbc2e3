/* SPDX-License-Identifier: MIT */
/*
 * granary-sandbox.c: run a command in a full grain sandbox, for people
 * debugging an app and for tests (DESIGN.md, command-line contract). Until the
 * sandbox lands it refuses to run anything rather than run it unconfined.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/banned.h"

static void
help(void)
{
	printf("Usage: granary-sandbox [OPTION]... -- CMD [ARG]...\n"
	       "Run CMD in a grain sandbox and exit with its status.\n"
	       "\n"
	       "  --root DIR        the package root, mounted read-only as /\n"
	       "  --var DIR         the grain's data, mounted read-write as /var\n"
	       "  --tmp-size SIZE   size of /tmp (e.g. 16M)\n"
	       "  --memory SIZE     memory limit (e.g. 256M)\n"
	       "  --pids N          process limit\n"
	       "  --setenv K V      set an environment variable (repeatable)\n"
	       "  -h, --help        show this help\n"
	       "      --version     show the version\n"
	       "\n"
	       "This build cannot create sandboxes yet and runs nothing.\n");
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
	int c;

	log_setup("granary-sandbox");
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("granary-sandbox %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'granary-sandbox --help'.\n");
			return 125;
		}
	}
	log_error("Sandboxes are not available in this build yet; refusing to run a command "
		  "without one");
	return 125;
}
