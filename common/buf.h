/* SPDX-License-Identifier: MIT */
/*
 * buf.h: a growable byte buffer with an optional hard limit.
 *
 * The data is always NUL-terminated (the NUL is not counted in len), so a
 * buffer of text can be handed to C string functions directly. A limit bounds
 * memory when the bytes come from someone we do not trust: an append that
 * would pass it fails with -E2BIG and leaves the buffer as it was.
 *
 *	_cleanup_(buf_release) struct buf b = BUF_INIT_LIMIT(64 * 1024);
 *	r = buf_printf(&b, "%s=%d", key, value);
 *	...
 *	*ret = buf_steal(&b);   (caller frees with free())
 */
#ifndef GRANARY_COMMON_BUF_H
#define GRANARY_COMMON_BUF_H

#include <stdarg.h>
#include <stddef.h>

#include "common/macro.h"

struct buf {
	char *data; /* owned; NULL until the first append */
	size_t len;
	size_t cap;
	size_t limit; /* 0: no limit beyond SIZE_MAX */
};

#define BUF_INIT                                                                                   \
	{                                                                                          \
		NULL, 0, 0, 0                                                                      \
	}
#define BUF_INIT_LIMIT(l)                                                                          \
	{                                                                                          \
		NULL, 0, 0, (l)                                                                    \
	}

/* Make room for extra more bytes (plus the NUL). -E2BIG past the limit, -ENOMEM. */
int buf_reserve(struct buf *b, size_t extra);

int buf_append(struct buf *b, const void *data, size_t len);
int buf_append_str(struct buf *b, const char *s);
int buf_append_char(struct buf *b, char c);
int buf_printf(struct buf *b, const char *format, ...) _printf_(2, 3);
int buf_vprintf(struct buf *b, const char *format, va_list ap) _printf_(2, 0);

/* Drop the contents, keep the memory. */
void buf_clear(struct buf *b);

/*
 * Hand the data to the caller (who frees it with free()) and reset the buffer.
 * Never NULL for a buffer that was appended to; an untouched buffer gives a
 * fresh empty string, or NULL if that allocation fails.
 */
char *buf_steal(struct buf *b);

/* Free the data; for _cleanup_(buf_release). */
void buf_release(struct buf *b);

#endif
