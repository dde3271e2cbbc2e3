/* SPDX-License-Identifier: MIT */
/* Fuzz target: sizes, durations, numbers from flags, config and API bodies. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/parse.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	char *s, buf[FORMAT_SIZE_MAX];
	uint64_t u, back;
	int64_t i;
	bool b;

	if (size > 256)
		return 0;
	s = malloc(size + 1);
	if (!s)
		return 0;
	memcpy(s, data, size);
	s[size] = '\0';

	if (parse_size(s, &u) == 0) {
		/* format_size() output always parses back, never larger than the input. */
		if (parse_size(format_size(buf, sizeof(buf), u), &back) != 0 || back > u)
			__builtin_trap();
	}
	(void)parse_uint64(s, &u);
	(void)parse_int64(s, &i);
	(void)parse_duration_ms(s, &u);
	(void)parse_bool(s, &b);
	free(s);
	return 0;
}
