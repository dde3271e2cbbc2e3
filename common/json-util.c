/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "common/json-util.h"
#include "common/banned.h"

char *
json_path_join(char *buf, size_t size, const char *path, const char *name)
{
	if (!path || !*path)
		(void)snprintf(buf, size, "%s", strempty(name));
	else if (!name || !*name)
		(void)snprintf(buf, size, "%s", path);
	else if (name[0] == '[')
		(void)snprintf(buf, size, "%s%s", path, name);
	else
		(void)snprintf(buf, size, "%s.%s", path, name);
	return buf;
}

int
json_error_set(struct json_error *err, const char *path, const char *name, const char *format, ...)
{
	char where[128];
	size_t len = 0;
	va_list ap;

	if (!err)
		return -EINVAL;
	/* "where: what", cut to fit: a long path must not hide the reason entirely. */
	(void)json_path_join(where, sizeof(where), path, name);
	if (*where) {
		int n = snprintf(err->message, sizeof(err->message), "%s: ", where);
		len = n > 0 ? MIN((size_t)n, sizeof(err->message) - 1) : 0;
	}
	va_start(ap, format);
	(void)vsnprintf(err->message + len, sizeof(err->message) - len, format, ap);
	va_end(ap);
	return -EINVAL;
}

const char *
json_type_name(const json_t *value)
{
	switch (json_typeof(value)) {
	case JSON_OBJECT:
		return "an object";
	case JSON_ARRAY:
		return "an array";
	case JSON_STRING:
		return "a string";
	case JSON_INTEGER:
		return "an integer";
	case JSON_REAL:
		return "a number";
	case JSON_TRUE:
	case JSON_FALSE:
		return "a boolean";
	case JSON_NULL:
		return "null";
	}
	return "unknown";
}

int
json_parse_strict(const char *data, size_t len, size_t max_len, json_t **ret,
		  struct json_error *err)
{
	json_error_t jerr;
	json_t *v;

	if (len > max_len) {
		(void)json_error_set(err, "", "", "body is %zu bytes, the limit is %zu", len,
				     max_len);
		return -E2BIG;
	}
	if (len == 0)
		return json_error_set(err, "", "", "empty body, expected JSON");
	/* No JSON_DECODE_ANY: only objects and arrays; no JSON_ALLOW_NUL. */
	v = json_loadb(data, len, JSON_REJECT_DUPLICATES, &jerr);
	if (!v)
		return json_error_set(err, "", "", "invalid JSON at line %d column %d: %s",
				      jerr.line, jerr.column, jerr.text);
	*ret = v;
	return 0;
}

static int
check_type(const struct json_field *f, json_t *v, const char *path, struct json_error *err)
{
	static const char *const expected[] = {
		[JSON_FIELD_STRING] = "a string", [JSON_FIELD_INT] = "an integer",
		[JSON_FIELD_BOOL] = "a boolean",  [JSON_FIELD_OBJECT] = "an object",
		[JSON_FIELD_ARRAY] = "an array",
	};
	bool ok;

	switch (f->type) {
	case JSON_FIELD_STRING:
		ok = json_is_string(v);
		break;
	case JSON_FIELD_INT:
		ok = json_is_integer(v);
		break;
	case JSON_FIELD_BOOL:
		ok = json_is_boolean(v);
		break;
	case JSON_FIELD_OBJECT:
		ok = json_is_object(v);
		break;
	case JSON_FIELD_ARRAY:
		ok = json_is_array(v);
		break;
	case JSON_FIELD_ANY:
		return 0;
	default:
		return json_error_set(err, path, f->name, "bad field table");
	}
	if (!ok)
		return json_error_set(err, path, f->name, "expected %s, got %s", expected[f->type],
				      json_type_name(v));
	return 0;
}

static int
store_field(const struct json_field *f, json_t *v, const char *path, void *target,
	    struct json_error *err)
{
	char *dst = (char *)target + f->offset;
	bool bounded = f->min != 0 || f->max != 0;

	switch (f->type) {
	case JSON_FIELD_STRING: {
		size_t len = json_string_length(v);
		const char *s = json_string_value(v);

		/* Without JSON_ALLOW_NUL jansson refuses \u0000; check anyway. */
		if (strlen(s) != len)
			return json_error_set(err, path, f->name, "contains a NUL character");
		if (bounded && (len < (uint64_t)f->min || len > (uint64_t)f->max)) {
			if (f->min > 0 && len < (uint64_t)f->min)
				return json_error_set(err, path, f->name,
						      "must be at least %" PRId64 " bytes long",
						      f->min);
			return json_error_set(err, path, f->name,
					      "must be at most %" PRId64 " bytes long", f->max);
		}
		memcpy(dst, &s, sizeof(s));
		break;
	}
	case JSON_FIELD_INT: {
		int64_t n = (int64_t)json_integer_value(v);

		if (bounded && (n < f->min || n > f->max))
			return json_error_set(err, path, f->name,
					      "must be between %" PRId64 " and %" PRId64, f->min,
					      f->max);
		memcpy(dst, &n, sizeof(n));
		break;
	}
	case JSON_FIELD_BOOL: {
		bool b = json_is_true(v);

		memcpy(dst, &b, sizeof(b));
		break;
	}
	case JSON_FIELD_ARRAY:
		if (f->max > 0 && json_array_size(v) > (uint64_t)f->max)
			return json_error_set(err, path, f->name,
					      "has %zu items, at most %" PRId64 " are allowed",
					      json_array_size(v), f->max);
		/* fall through */
	case JSON_FIELD_OBJECT:
	case JSON_FIELD_ANY:
		memcpy(dst, &v, sizeof(v));
		break;
	}
	return 0;
}

int
json_dispatch(json_t *obj, const char *path, const struct json_field *fields, void *target,
	      enum json_dispatch_flags flags, struct json_error *err)
{
	const char *key;
	json_t *v;
	int r;

	if (!json_is_object(obj))
		return json_error_set(err, path, "", "expected an object, got %s",
				      obj ? json_type_name(obj) : "nothing");

	/* Unknown fields first: a typo must not pass silently as "missing". */
	if (!(flags & JSON_DISPATCH_ALLOW_UNKNOWN))
		json_object_foreach (obj, key, v) {
			const struct json_field *f;

			for (f = fields; f->name; f++)
				if (strcmp(f->name, key) == 0)
					break;
			if (!f->name) {
				char shown[64];

				/* Keys are untrusted: show a bounded, printable prefix. */
				size_t i;
				for (i = 0; key[i] && i < sizeof(shown) - 1; i++)
					shown[i] = (key[i] >= 0x20 && key[i] < 0x7f) ? key[i] : '?';
				shown[i] = '\0';
				return json_error_set(err, path, shown, "unknown field");
			}
		}

	for (const struct json_field *f = fields; f->name; f++) {
		v = json_object_get(obj, f->name);
		if (!v) {
			if (f->flags & JSON_FIELD_REQUIRED)
				return json_error_set(err, path, f->name,
						      "required field is missing");
			continue;
		}
		if (json_is_null(v) && (f->flags & JSON_FIELD_NULLABLE))
			continue;
		r = check_type(f, v, path, err);
		if (r < 0)
			return r;
		r = store_field(f, v, path, target, err);
		if (r < 0)
			return r;
		if (f->check) {
			char sub[128];

			r = f->check(json_path_join(sub, sizeof(sub), path, f->name), v, target,
				     err);
			if (r < 0)
				return r;
		}
	}
	return 0;
}

int
json_check_string_array(json_t *array, const char *path, size_t max_items, size_t min_len,
			size_t max_len, struct json_error *err)
{
	size_t i;
	json_t *item;

	if (!json_is_array(array))
		return json_error_set(err, path, "", "expected an array, got %s",
				      array ? json_type_name(array) : "nothing");
	if (json_array_size(array) > max_items)
		return json_error_set(err, path, "", "has %zu items, at most %zu are allowed",
				      json_array_size(array), max_items);
	json_array_foreach (array, i, item) {
		char name[24];
		size_t len;

		(void)snprintf(name, sizeof(name), "[%zu]", i);
		if (!json_is_string(item))
			return json_error_set(err, path, name, "expected a string, got %s",
					      json_type_name(item));
		len = json_string_length(item);
		if (strlen(json_string_value(item)) != len)
			return json_error_set(err, path, name, "contains a NUL character");
		if (len < min_len || len > max_len)
			return json_error_set(err, path, name, "must be %zu to %zu bytes long",
					      min_len, max_len);
	}
	return 0;
}
