/* SPDX-License-Identifier: MIT */
/*
 * path.c: the rules every name in a package obeys, shared by the packer (so
 * spk pack refuses what an install would) and the unpacker (which trusts
 * nothing the packer did).
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "spk/spk-internal.h"
#include "common/banned.h"

bool
spk_utf8_valid(const char *s, size_t len)
{
	const unsigned char *p = (const unsigned char *)s, *end = p + len;

	while (p < end) {
		unsigned c = *p, n;
		uint32_t cp, min;

		if (c < 0x80) {
			p++;
			continue;
		} else if ((c & 0xe0) == 0xc0) {
			n = 1, cp = c & 0x1f, min = 0x80;
		} else if ((c & 0xf0) == 0xe0) {
			n = 2, cp = c & 0x0f, min = 0x800;
		} else if ((c & 0xf8) == 0xf0) {
			n = 3, cp = c & 0x07, min = 0x10000;
		} else
			return false;
		if ((size_t)(end - p) <= n)
			return false;
		for (unsigned i = 1; i <= n; i++) {
			if ((p[i] & 0xc0) != 0x80)
				return false;
			cp = (cp << 6) | (p[i] & 0x3f);
		}
		/* Overlong forms, UTF-16 surrogates and values past Unicode. */
		if (cp < min || (cp >= 0xd800 && cp <= 0xdfff) || cp > 0x10ffff)
			return false;
		p += n + 1;
	}
	return true;
}

static bool
has_control(const char *s, size_t len)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		if (c < 0x20 || c == 0x7f)
			return true;
	}
	return false;
}

int
spk_path_check(const char *path, size_t len, const struct spk_limits *limits, size_t *ret_depth,
	       size_t *ret_parent_len, struct spk_error *err)
{
	char q[SPK_QUOTE_MAX];
	size_t depth = 0, parent_len = 0, start = 0;

	if (len == 0)
		return spk_error_set(err, EBADMSG, "an entry has an empty name");
	if (len > limits->max_path)
		return spk_error_set(err, ENAMETOOLONG, "'%s': path of %zu bytes, the limit is %u",
				     spk_quote(q, sizeof(q), path, len), len, limits->max_path);
	if (memchr(path, '\0', len))
		return spk_error_set(err, EBADMSG, "'%s': name contains a NUL byte",
				     spk_quote(q, sizeof(q), path, len));
	if (path[0] == '/')
		return spk_error_set(err, EBADMSG, "'%s': absolute path",
				     spk_quote(q, sizeof(q), path, len));
	for (size_t i = 0; i <= len; i++) {
		size_t n;

		if (i < len && path[i] != '/')
			continue;
		n = i - start;
		if (n == 0)
			return spk_error_set(err, EBADMSG, "'%s': empty path component",
					     spk_quote(q, sizeof(q), path, len));
		if ((n == 1 && path[start] == '.') ||
		    (n == 2 && path[start] == '.' && path[start + 1] == '.'))
			return spk_error_set(err, EBADMSG,
					     "'%s': '.' and '..' are not allowed in paths",
					     spk_quote(q, sizeof(q), path, len));
		if (n > limits->max_name)
			return spk_error_set(
				err, ENAMETOOLONG, "'%s': a name of %zu bytes, the limit is %u",
				spk_quote(q, sizeof(q), path, len), n, limits->max_name);
		if (has_control(path + start, n))
			return spk_error_set(err, EBADMSG,
					     "'%s': names may not contain control characters",
					     spk_quote(q, sizeof(q), path, len));
		if (!spk_utf8_valid(path + start, n))
			return spk_error_set(err, EBADMSG, "'%s': name is not valid UTF-8",
					     spk_quote(q, sizeof(q), path, len));
		if (++depth > limits->max_depth)
			return spk_error_set(err, E2BIG, "'%s': more than %u levels deep",
					     spk_quote(q, sizeof(q), path, len), limits->max_depth);
		if (i < len)
			parent_len = i;
		start = i + 1;
	}
	if (ret_depth)
		*ret_depth = depth;
	if (ret_parent_len)
		*ret_parent_len = parent_len;
	return 0;
}

int
spk_link_target_check(const char *target, const struct spk_limits *limits, struct spk_error *err)
{
	char q[SPK_QUOTE_MAX];
	size_t len = target ? strlen(target) : 0;

	if (len == 0)
		return spk_error_set(err, EBADMSG, "empty symlink target");
	if (len > limits->max_path)
		return spk_error_set(err, ENAMETOOLONG,
				     "symlink target of %zu bytes, the limit is %u", len,
				     limits->max_path);
	if (has_control(target, len) || !spk_utf8_valid(target, len))
		return spk_error_set(err, EBADMSG,
				     "symlink target '%s' is not UTF-8 without control characters",
				     spk_quote(q, sizeof(q), target, len));
	return 0;
}

int
spk_path_compare(const char *a, const char *b)
{
	for (;; a++, b++) {
		/* '/' ranks just above the end of the string, below every byte a name may hold. */
		unsigned ca = *a == '/' ? 1 : (unsigned char)*a;
		unsigned cb = *b == '/' ? 1 : (unsigned char)*b;

		if (ca != cb)
			return ca < cb ? -1 : 1;
		if (ca == 0)
			return 0;
	}
}

int
spk_dirstack_init(struct spk_dirstack *s, const struct spk_limits *limits)
{
	*s = (struct spk_dirstack){
		.max_path = limits->max_path,
		.max_depth = limits->max_depth,
	};
	s->path = calloc(1, s->max_path + 1);
	s->lens = calloc(s->max_depth, sizeof(*s->lens));
	if (!s->path || !s->lens) {
		spk_dirstack_release(s);
		return -ENOMEM;
	}
	return 0;
}

void
spk_dirstack_release(struct spk_dirstack *s)
{
	free(s->path);
	free(s->lens);
	s->path = NULL;
	s->lens = NULL;
	s->depth = 0;
}

size_t
spk_dirstack_enter(struct spk_dirstack *s, const char *path)
{
	/*
	 * The stacked directories are prefixes of s->path; the top one stays
	 * while path lies below it. In tree order a directory's entries are
	 * contiguous, so one that path is not under never comes back.
	 */
	while (s->depth > 0) {
		size_t len = s->lens[s->depth - 1];

		if (strncmp(path, s->path, len) == 0 && path[len] == '/')
			return len;
		s->depth--;
	}
	return 0;
}

int
spk_dirstack_push(struct spk_dirstack *s, const char *path, size_t len)
{
	if (s->depth >= s->max_depth || len > s->max_path)
		return -E2BIG;
	memcpy(s->path, path, len);
	s->path[len] = '\0';
	s->lens[s->depth++] = len;
	return 0;
}
