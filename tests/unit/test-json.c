/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stddef.h>
#include <string.h>

#include "common/json-util.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

struct request {
	const char *title;
	int64_t count;
	bool public;
	json_t *tags;
	json_t *extra;
};

static int
check_tags(const char *path, json_t *value, void *target, struct json_error *err)
{
	(void)target;
	return json_check_string_array(value, path, 4, 1, 8, err);
}

static const struct json_field fields[] = {
	{ "title", JSON_FIELD_STRING, JSON_FIELD_REQUIRED, offsetof(struct request, title),
	  .min = 1, .max = 10 },
	{ "count", JSON_FIELD_INT, 0, offsetof(struct request, count), .min = 0, .max = 100 },
	{ "public", JSON_FIELD_BOOL, 0, offsetof(struct request, public) },
	{ "tags", JSON_FIELD_ARRAY, JSON_FIELD_NULLABLE, offsetof(struct request, tags),
	  .check = check_tags },
	{ "extra", JSON_FIELD_OBJECT, 0, offsetof(struct request, extra) },
	{},
};

/* Parse text and dispatch it into *req; returns the error, message in err. */
static int
run(const char *text, struct request *req, struct json_error *err)
{
	_cleanup_json_ json_t *v = NULL;
	int r;

	memset(req, 0, sizeof(*req));
	r = json_parse_strict(text, strlen(text), 1024, &v, err);
	if (r < 0)
		return r;
	r = json_dispatch(v, "", fields, req, 0, err);
	/* Borrowed values die with v: keep only what the tests look at. */
	req->title = NULL;
	req->tags = req->extra = NULL;
	return r;
}

TEST(good_request)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err = {};
	struct request req = {};
	const char *text = "{\"title\":\"Notes\",\"count\":3,\"public\":true,\"tags\":[\"a\"],"
			   "\"extra\":{}}";

	CHECK_OK(json_parse_strict(text, strlen(text), 1024, &v, &err));
	CHECK_OK(json_dispatch(v, "", fields, &req, 0, &err));
	CHECK_STR_EQ(req.title, "Notes");
	CHECK_INT_EQ(req.count, 3);
	CHECK(req.public);
	CHECK(json_is_array(req.tags));
	CHECK(json_is_object(req.extra));
}

TEST(errors_name_the_field)
{
	struct json_error err = {};
	struct request req;

	CHECK_ERR(run("{\"count\":1}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "title: required field is missing");
	CHECK_ERR(run("{\"title\":5}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "title: expected a string, got an integer");
	CHECK_ERR(run("{\"title\":\"\"}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "title: must be at least 1 bytes long");
	CHECK_ERR(run("{\"title\":\"01234567890\"}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "title: must be at most 10 bytes long");
	CHECK_ERR(run("{\"title\":\"a\",\"count\":101}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "count: must be between 0 and 100");
	CHECK_ERR(run("{\"title\":\"a\",\"count\":1.5}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "count: expected an integer, got a number");
	CHECK_ERR(run("{\"title\":\"a\",\"public\":\"yes\"}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "public: expected a boolean, got a string");
	CHECK_ERR(run("{\"title\":\"a\",\"titel\":\"b\"}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "titel: unknown field");
	CHECK_ERR(run("{\"title\":\"a\",\"tags\":[\"ok\",7]}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "tags[1]: expected a string, got an integer");
	CHECK_ERR(run("{\"title\":\"a\",\"tags\":[\"a\",\"b\",\"c\",\"d\",\"e\"]}", &req, &err),
		  EINVAL);
	CHECK_STR_EQ(err.message, "tags: has 5 items, at most 4 are allowed");
	CHECK_ERR(run("[1]", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "expected an object, got an array");
}

TEST(nullable_and_unknown_allowed)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err = {};
	struct request req = {};
	const char *text = "{\"title\":\"a\",\"tags\":null,\"future\":1}";

	CHECK_OK(json_parse_strict(text, strlen(text), 1024, &v, &err));
	CHECK_ERR(json_dispatch(v, "app", fields, &req, 0, &err), EINVAL);
	CHECK_STR_EQ(err.message, "app.future: unknown field");
	CHECK_OK(json_dispatch(v, "app", fields, &req, JSON_DISPATCH_ALLOW_UNKNOWN, &err));
	CHECK(req.tags == NULL);
}

TEST(unknown_field_names_are_sanitised)
{
	struct json_error err = {};
	struct request req;

	CHECK_ERR(run("{\"title\":\"a\",\"x\\ny\\u0001\":1}", &req, &err), EINVAL);
	CHECK_STR_EQ(err.message, "x?y?: unknown field");
}

TEST(strict_parse_refuses_bad_input)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err = {};
	static const char *const bad[] = {
		"",	      "{",	     "{\"a\":1,\"a\":2}", "{\"a\":\"\\u0000\"}", "{} {}",
		"\"string\"", "12",	     "{\"a\":\"\xff\"}",  "{\"a\":01}",		 "{'a':1}",
		"[1,]",	      "{\"a\":NaN}",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		if (!CHECK_ERR(json_parse_strict(bad[i], strlen(bad[i]), 1024, &v, &err), EINVAL))
			tap_check(false, bad[i], __FILE__, __LINE__);
		CHECK(v == NULL);
	}
}

TEST(strict_parse_size_limit)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err = {};

	CHECK_ERR(json_parse_strict("{\"a\":1}", 7, 6, &v, &err), E2BIG);
	CHECK_STR_EQ(err.message, "body is 7 bytes, the limit is 6");
	CHECK_OK(json_parse_strict("{\"a\":1}", 7, 7, &v, &err));
}

TEST(deep_nesting_is_refused_not_crashing)
{
	_cleanup_json_ json_t *v = NULL;
	struct json_error err = {};
	static char deep[200001];

	memset(deep, '[', 100000);
	memset(deep + 100000, ']', 100000);
	CHECK_ERR(json_parse_strict(deep, 200000, sizeof(deep), &v, &err), EINVAL);
}
