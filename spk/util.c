/* SPDX-License-Identifier: MIT */
/* util.c: errors, quoting of untrusted names, the UTF-8 locale, limits. */
#include <errno.h>
#include <locale.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "spk/spk-internal.h"
#include "common/banned.h"

int
spk_error_set(struct spk_error *err, int error, const char *format, ...)
{
	va_list ap;

	/* A failure must never read as success, whatever errno held. */
	if (error == 0)
		error = EIO;

	if (err) {
		va_start(ap, format);
		(void)vsnprintf(err->message, sizeof(err->message), format, ap);
		va_end(ap);
	}
	return error < 0 ? error : -error;
}

char *
spk_quote(char *buf, size_t size, const char *s, size_t len)
{
	size_t out = 0;

	if (size < 8) {
		if (size > 0)
			buf[0] = '\0';
		return buf;
	}
	for (size_t i = 0; i < len; i++) {
		unsigned char c = (unsigned char)s[i];
		size_t need = (c >= 0x20 && c < 0x7f) ? 1 : 4;

		/* Leave room for "..." and the NUL. */
		if (out + need + 4 > size) {
			memcpy(buf + out, "...", 3);
			out += 3;
			break;
		}
		if (need == 1)
			buf[out++] = (char)c;
		else
			out += (size_t)snprintf(buf + out, size - out, "\\x%02x", c);
	}
	buf[out] = '\0';
	return buf;
}

void
spk_locale_enter(struct spk_locale *l)
{
	l->utf8 = newlocale(LC_CTYPE_MASK, "C.UTF-8", (locale_t)0);
	/* Without C.UTF-8 ASCII names still work; others fail with a clear error. */
	l->saved = l->utf8 ? uselocale(l->utf8) : (locale_t)0;
}

void
spk_locale_leave(struct spk_locale *l)
{
	if (l->utf8) {
		(void)uselocale(l->saved);
		freelocale(l->utf8);
		l->utf8 = (locale_t)0;
	}
}

void
spk_limits_resolve(const struct spk_limits *limits, struct spk_limits *ret)
{
	struct spk_limits l = limits ? *limits : (struct spk_limits){};

	if (l.max_file_bytes == 0)
		l.max_file_bytes = SPK_DEFAULT_MAX_FILE_BYTES;
	if (l.max_bytes == 0)
		l.max_bytes = SPK_DEFAULT_MAX_BYTES;
	if (l.max_entries == 0)
		l.max_entries = SPK_DEFAULT_MAX_ENTRIES;
	if (l.max_depth == 0)
		l.max_depth = SPK_DEFAULT_MAX_DEPTH;
	if (l.max_name == 0)
		l.max_name = SPK_DEFAULT_MAX_NAME;
	if (l.max_path == 0)
		l.max_path = SPK_DEFAULT_MAX_PATH;
	*ret = l;
}
