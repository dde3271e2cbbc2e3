/* SPDX-License-Identifier: MIT */
/*
 * spk.c: the packaging tool (DESIGN.md, Packages). Until the package format
 * lands, every command says plainly that it is not available yet.
 */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/banned.h"

static const char *const commands[] = {
	"keygen", "init", "pack", "verify", "info", "unpack",
};

static void
help(void)
{
	printf("Usage: spk COMMAND [ARG]...\n"
	       "Make, check and open Granary app packages (.spk).\n"
	       "\n"
	       "Commands:\n"
	       "  keygen [--keyring FILE]            make a signing key, print its app id\n"
	       "  init [--keyring FILE] [DIR]        write DIR/spk.json for a new app\n"
	       "  pack [--keyring FILE] DIR OUT.spk  build and sign a package\n"
	       "  verify FILE                        check a package's signature\n"
	       "  info FILE                          show manifest, app id, package id, sizes\n"
	       "  unpack FILE DIR                    verify, then unpack into DIR\n"
	       "\n"
	       "  -h, --help      show this help\n"
	       "      --version   show the version\n"
	       "\n"
	       "This build has no command yet: they arrive with the package format.\n");
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

	log_setup("spk");
	while ((c = getopt_long(argc, argv, "+h", options, NULL)) >= 0) {
		switch (c) {
		case 'h':
			help();
			return EXIT_SUCCESS;
		case ARG_VERSION:
			printf("spk %s\n", GRANARY_VERSION);
			return EXIT_SUCCESS;
		default:
			fprintf(stderr, "Try 'spk --help'.\n");
			return EXIT_FAILURE;
		}
	}
	if (optind >= argc) {
		log_error("No command given; try 'spk --help'");
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < ELEMENTSOF(commands); i++)
		if (strcmp(argv[optind], commands[i]) == 0) {
			log_error("'%s' is not available in this build yet", argv[optind]);
			return EXIT_FAILURE;
		}
	log_error("Unknown command '%s'; try 'spk --help'", argv[optind]);
	return EXIT_FAILURE;
}
