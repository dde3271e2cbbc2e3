/* SPDX-License-Identifier: MIT */
/*
 * Fuzz target: a package manifest or an spk.json (untrusted JSON) → strict
 * parse and validation in both modes; what passes must serialise to a
 * package manifest that passes again and serialises to the same bytes.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "spk/spk.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void
round_trip(const struct spk_manifest *m)
{
	_cleanup_(spk_manifest_freep) struct spk_manifest *again = NULL;
	_cleanup_free_ char *a = NULL, *b = NULL;
	struct spk_error err;
	size_t na, nb;

	if (spk_manifest_to_package_json(m, &a, &na) < 0)
		return;
	/* Re-indenting may push a large document past the size limit: that is allowed. */
	if (na > SPK_MANIFEST_MAX)
		return;
	if (spk_manifest_parse(a, na, 0, &again, &err) < 0)
		__builtin_trap();
	if (spk_manifest_to_package_json(again, &b, &nb) < 0)
		return;
	if (na != nb || memcmp(a, b, na) != 0)
		__builtin_trap();
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct spk_manifest *m = NULL;
	struct spk_error err;

	if (spk_manifest_parse((const char *)data, size, 0, &m, &err) == 0) {
		round_trip(m);
		m = spk_manifest_free(m);
	}
	if (spk_manifest_parse((const char *)data, size, SPK_MANIFEST_DEFINITION, &m, &err) == 0) {
		/* A definition's sources are all usable strings. */
		for (size_t i = 0; i < m->n_sources; i++)
			if (!m->sources[i].from || !*m->sources[i].from || !m->sources[i].to)
				__builtin_trap();
		round_trip(m);
		m = spk_manifest_free(m);
	}
	return 0;
}
