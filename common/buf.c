/* SPDX-License-Identifier: MIT */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common/buf.h"
#include "common/banned.h"

int
buf_reserve(struct buf *b, size_t extra)
{
	size_t need, cap;
	char *p;

	/* len + extra + 1 for the NUL, without wrapping. */
	if (ADD_OVERFLOW(b->len, extra, &need) || ADD_OVERFLOW(need, (size_t)1, &need))
		return -E2BIG;
	if (b->limit && need - 1 > b->limit)
		return -E2BIG;
	if (need <= b->cap)
		return 0;

	/* Grow geometrically so n appends cost O(n) copies in all. */
	cap = b->cap ? b->cap : 64;
	while (cap < need) {
		if (MUL_OVERFLOW(cap, (size_t)2, &cap)) {
			cap = need;
			break;
		}
	}
	if (b->limit && cap > b->limit + 1)
		cap = b->limit + 1;

	p = realloc(b->data, cap);
	if (!p)
		return -ENOMEM;
	b->data = p;
	b->cap = cap;
	return 0;
}

int
buf_append(struct buf *b, const void *data, size_t len)
{
	int r;

	r = buf_reserve(b, len);
	if (r < 0)
		return r;
	if (len > 0)
		memcpy(b->data + b->len, data, len);
	b->len += len;
	b->data[b->len] = '\0';
	return 0;
}

int
buf_append_str(struct buf *b, const char *s)
{
	return buf_append(b, s, strlen(s));
}

int
buf_append_char(struct buf *b, char c)
{
	return buf_append(b, &c, 1);
}

int
buf_vprintf(struct buf *b, const char *format, va_list ap)
{
	va_list aq;
	int n, r;

	va_copy(aq, ap);
	n = vsnprintf(NULL, 0, format, aq);
	va_end(aq);
	if (n < 0)
		return -EINVAL;

	r = buf_reserve(b, (size_t)n);
	if (r < 0)
		return r;
	(void)vsnprintf(b->data + b->len, (size_t)n + 1, format, ap);
	b->len += (size_t)n;
	return 0;
}

int
buf_printf(struct buf *b, const char *format, ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = buf_vprintf(b, format, ap);
	va_end(ap);
	return r;
}

void
buf_clear(struct buf *b)
{
	b->len = 0;
	if (b->data)
		b->data[0] = '\0';
}

char *
buf_steal(struct buf *b)
{
	char *p = b->data;

	if (!p)
		p = strdup("");
	b->data = NULL;
	b->len = b->cap = 0;
	return p;
}

void
buf_release(struct buf *b)
{
	free(b->data);
	b->data = NULL;
	b->len = b->cap = 0;
}
