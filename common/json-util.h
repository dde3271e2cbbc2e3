/* SPDX-License-Identifier: MIT */
/*
 * json-util.h: strict JSON input on top of jansson.
 *
 * Untrusted JSON (API bodies, package manifests, IPC payloads) is read in two
 * steps. json_parse_strict() bounds the size, rejects duplicate keys, NUL
 * characters and anything after the value. json_dispatch() then walks a table
 * of expected fields and stores each into a C struct, refusing unknown fields,
 * wrong types, missing required fields and out-of-range values with a message
 * that names the field:
 *
 *	struct rename { const char *title; };
 *	static const struct json_field fields[] = {
 *		{ "title", JSON_FIELD_STRING, JSON_FIELD_REQUIRED,
 *		  offsetof(struct rename, title), .min = 1, .max = 200 },
 *		{},
 *	};
 *	r = json_dispatch(body, "", fields, &req, 0, &err);
 *	if (r < 0) → 400 with err.message, e.g. "title: expected a string"
 *
 * Strings stored by dispatch are borrowed from the JSON value: they live as
 * long as it does.
 */
#ifndef GRANARY_COMMON_JSON_UTIL_H
#define GRANARY_COMMON_JSON_UTIL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/macro.h"

/* jansson (2.9+) provides json_decrefp() for exactly this. */
#define _cleanup_json_ _cleanup_(json_decrefp)

struct json_error {
	char message[256]; /* "path.field: what is wrong" */
};

/*
 * Parse len bytes at data. -E2BIG when len > max_len (checked before any
 * parsing), -EINVAL for anything that is not exactly one JSON value.
 * *ret is a new reference, owned by the caller.
 */
int json_parse_strict(const char *data, size_t len, size_t max_len, json_t **ret,
		      struct json_error *err);

enum json_field_type {
	JSON_FIELD_STRING, /* const char * (borrowed); min/max bound the length in bytes */
	JSON_FIELD_INT,	   /* int64_t; min/max bound the value */
	JSON_FIELD_BOOL,   /* bool */
	JSON_FIELD_OBJECT, /* json_t * (borrowed) */
	JSON_FIELD_ARRAY,  /* json_t * (borrowed); max bounds the number of items */
	JSON_FIELD_ANY,	   /* json_t * (borrowed), any type: check it with .check */
};

enum json_field_flags {
	JSON_FIELD_REQUIRED = 1 << 0,
	JSON_FIELD_NULLABLE = 1 << 1, /* null is accepted and leaves the target as it was */
};

enum json_dispatch_flags {
	JSON_DISPATCH_ALLOW_UNKNOWN = 1 << 0, /* ignore fields not in the table */
};

struct json_field {
	const char *name; /* NULL ends the table */
	enum json_field_type type;
	enum json_field_flags flags;
	size_t offset;	  /* into the target struct */
	int64_t min, max; /* see the types above; min = max = 0 means no bound */
	/*
	 * Optional extra check after the type check: return 0 to accept, or a
	 * negative errno with err->message set (json_error_set() adds the path).
	 */
	int (*check)(const char *path, json_t *value, void *target, struct json_error *err);
};

/*
 * Check obj against fields and store the values into target. path prefixes
 * every message ("run" gives "run.command: ..."; "" gives "command: ...").
 * On error returns -EINVAL (or the check's error) and fills err; target may be
 * partly written.
 */
int json_dispatch(json_t *obj, const char *path, const struct json_field *fields, void *target,
		  enum json_dispatch_flags flags, struct json_error *err);

/* Set err->message to "path.name: <formatted>" (path and name may be empty). Returns -EINVAL. */
int json_error_set(struct json_error *err, const char *path, const char *name, const char *format,
		   ...) _printf_(4, 5);

/* "a" + "b" → "a.b", "" + "b" → "b", into buf; cut to fit. Returns buf. */
char *json_path_join(char *buf, size_t size, const char *path, const char *name);

/*
 * Every item of array is a string of min..max bytes and there are at most
 * max_items of them.
 */
int json_check_string_array(json_t *array, const char *path, size_t max_items, size_t min_len,
			    size_t max_len, struct json_error *err);

/* Human name of a JSON value's type: "a string", "an object", "null"... */
const char *json_type_name(const json_t *value);

#endif
