/* SPDX-License-Identifier: MIT */
/* Fuzz target: an untrusted JSON body → strict parse → dispatch into a struct. */
#include <stddef.h>
#include <stdint.h>

#include "common/json-util.h"
#include "common/banned.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

struct target {
	const char *name;
	int64_t size;
	bool flag;
	json_t *list;
	json_t *object;
};

static int
check_list(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	return json_check_string_array(value, path, 16, 0, 64, err);
}

static const struct json_field fields[] = {
	{ "name", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct target, name), .min = 1,
	  .max = 64 },
	{ "size", JSON_FIELD_INT, 0, offsetof(struct target, size), .min = -5, .max = 1000 },
	{ "flag", JSON_FIELD_BOOL, JSON_FIELD_NULLABLE, offsetof(struct target, flag) },
	{ "list", JSON_FIELD_ARRAY, 0, offsetof(struct target, list), .max = 16,
	  .check = check_list },
	{ "object", JSON_FIELD_OBJECT, 0, offsetof(struct target, object) },
	{},
};

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err;
	struct target t = {};

	if (json_parse_strict((const char *)data, size, 64 * 1024, &v, &err) < 0)
		return 0;
	(void)json_dispatch(v, "", fields, &t, 0, &err);
	(void)json_dispatch(v, "x", fields, &t, JSON_DISPATCH_ALLOW_UNKNOWN, &err);
	return 0;
}
