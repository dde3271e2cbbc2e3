/* SPDX-License-Identifier: MIT */
/*
 * granary.c: the admin command line. It will talk to a running granaryd over
 * its local socket, or open the state directly when the daemon is down
 * (DESIGN.md, command-line contract). Until the supervisor lands, every
 * command says plainly that it is not available yet.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/banned.h"

static const char *const commands[] = {
	"user", "app", "grain", "share", "status",
};

static void
help(void)
{
	printf("Usage: granary [--state DIR] COMMAND [ARG]...\n"
	       "Administer a Granary server.\n"
	       "\n"
	       "Commands:\n"
	       "  user add NAME [--admin]     add a user (password on stdin)\n"
	       "  app install FILE.spk        install an app package\n"
	       "  app list                    list installed apps\n"
	       "  grain new APP_ID --owner NAME [--title T]\n"
	       "                              create a grain, print its id\n"
	       "  grain list                  list grains\n"
	       "  share GRAIN --role ROLE [--expires DUR]\n"
	       "                              print a capability URL for GRAIN\n"
	       "  status                      show what the server is doing\n"
	       "\n"
	       "Options:\n"
	       "  -s, --state DIR   state directory (default /var/lib/granary)\n"
	       "  -h, --help        show this help\n"
	       "      --version     show the version\n"
	       "\n"
	       "This build has no command yet: they arrive with the supervisor.\n");
}

int
main(int argc, char *argv[])
{
	enum { ARG_VERSION = 0x100 };
	static const struct option options[] = {
		{ "state", required_argument, NULL, 's' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, ARG_VERSION },
		{},
	};
	int c;

	log_setup("granary");
	/* '+': options after the command belong to the command. */
	while ((c = getopt_long(argc, argv, "+s:h", options, NULL)) >= 0) {
		switch (c) {
		case 's':
			break;
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("granary %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'granary --help'.\n");
			return EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		log_error("No command given; try 'granary --help'");
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(argv[optind], commands[i]) == 0) {
			log_error("'%s' is not available in this build yet", argv[optind]);
			return EXIT_FAILURE;
		}
	log_error("Unknown command '%s'; try 'granary --help'", argv[optind]);
	return EXIT_FAILURE;
}
