/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a config file as granaryd reads it (supervisor/config.c). Not
 * data from the network, but from a person, and read by root: it must
 * refuse, never crash. Whatever it accepts must hold what granaryd relies on.
 */
#include <stdint.h>
#include <string.h>

#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
check_path(const char *p)
{
	if (p && (p[0] != '/' || strlen(p) > CONFIG_VALUE_MAX))
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err;

	if (config_parse((const char *)data, size, "fuzz.conf", &c, &err) == 0) {
		struct config_error err2;

		check_path(c.state);
		check_path(c.tls_cert);
		check_path(c.tls_key);
		if (c.wildcard && wildcard_check(c.wildcard) < 0)
			__builtin_trap();
		(void)config_check(&c, &err2);
		/* Every grain value that passed its check converts, within its bounds. */
		struct grain_settings g;
		if (config_grain_settings(&c, &g) < 0 || g.memory < GRAIN_MEMORY_MIN ||
		    g.cpu < GRAIN_CPU_MIN || g.cpu > GRAIN_CPU_MAX ||
		    g.log_max < GRAIN_LOG_MAX_MIN ||
		    g.start_timeout_ms > GRAIN_START_TIMEOUT_MAX_MS)
			__builtin_trap();
	} else if (strncmp(err.message, "fuzz.conf", 9) != 0)
		__builtin_trap(); /* every error names the file */
	config_release(&c);
	return 0;
}
