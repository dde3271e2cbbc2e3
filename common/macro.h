/* SPDX-License-Identifier: MIT */
/*
 * macro.h: attributes, cleanup helpers and ownership transfer used everywhere.
 *
 * Owned locals are declared with a cleanup attribute so every return path frees
 * them; ownership is handed on with TAKE_PTR()/TAKE_FD(), which also clear the
 * local so the cleanup does nothing:
 *
 *	_cleanup_free_ char *path = NULL;
 *	_cleanup_close_ int fd = -EBADF;
 *	...
 *	*ret_path = TAKE_PTR(path);
 *
 * The pattern comes from systemd and bubblewrap.
 */
#ifndef GRANARY_COMMON_MACRO_H
#define GRANARY_COMMON_MACRO_H

#include <errno.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#define _cleanup_(f)	     __attribute__((cleanup(f)))
#define _unused_	     __attribute__((unused))
#define _noreturn_	     __attribute__((noreturn))
#define _printf_(a, b)	     __attribute__((format(printf, a, b)))
#define _warn_unused_result_ __attribute__((warn_unused_result))
#define _likely_(x)	     (__builtin_expect(!!(x), 1))
#define _unlikely_(x)	     (__builtin_expect(!!(x), 0))

#define ELEMENTSOF(x)                                                                              \
	(__builtin_choose_expr(!__builtin_types_compatible_p(__typeof__(x), __typeof__(&*(x))),    \
			       sizeof(x) / sizeof((x)[0]), (void)0))

#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))

#define STRINGIFY_(x) #x
#define STRINGIFY(x)  STRINGIFY_(x)

/* Take the value out of a variable and reset it, so its cleanup does nothing. */
#define TAKE_GENERIC(var, type, nullvalue)                                                         \
	({                                                                                         \
		type *_pvar_ = &(var);                                                             \
		type _var_ = *_pvar_;                                                              \
		*_pvar_ = (nullvalue);                                                             \
		_var_;                                                                             \
	})
#define TAKE_PTR(p) TAKE_GENERIC(p, __typeof__(p), NULL)
#define TAKE_FD(fd) TAKE_GENERIC(fd, int, -EBADF)

/* Close an fd, keeping errno; returns -EBADF so `fd = safe_close(fd);` resets it. */
static inline int
safe_close(int fd)
{
	if (fd >= 0) {
		int saved = errno;
		(void)close(fd);
		errno = saved;
	}
	return -EBADF;
}

static inline void
freep(void *p)
{
	free(*(void **)p);
}

static inline void
closep(int *fd)
{
	(void)safe_close(*fd);
}

static inline void
fclosep(FILE **f)
{
	if (*f)
		(void)fclose(*f);
}

/* Defines `name##p(type **p)` calling `func(*p)` when *p is not NULL. */
#define DEFINE_TRIVIAL_CLEANUP_FUNC(type, func)                                                    \
	static inline void func##p(type *p)                                                        \
	{                                                                                          \
		if (*p)                                                                            \
			(void)func(*p);                                                            \
	}

#define _cleanup_free_	 _cleanup_(freep)
#define _cleanup_close_	 _cleanup_(closep)
#define _cleanup_fclose_ _cleanup_(fclosep)

/* errno as a negative return value, never 0 even if errno was not set. */
static inline int
negative_errno(void)
{
	return errno > 0 ? -errno : -EIO;
}

/* Overflow-checked arithmetic: true on overflow. */
#define ADD_OVERFLOW(a, b, ret) __builtin_add_overflow(a, b, ret)
#define MUL_OVERFLOW(a, b, ret) __builtin_mul_overflow(a, b, ret)

static inline const char *
strempty(const char *s)
{
	return s ? s : "";
}

static inline const char *
strnull(const char *s)
{
	return s ? s : "(null)";
}

#endif
