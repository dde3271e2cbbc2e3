/* SPDX-License-Identifier: MIT */
/*
 * log.h: the one logging API of every Granary program.
 *
 * Messages go to stderr as one write(2) each, so lines from several processes
 * sharing a terminal or a journal never interleave mid-line:
 *
 *	granaryd[1234]: warning: Failed to open 'x': No such file or directory
 *
 * Levels follow syslog; the default maximum is info, raised by `--verbose`
 * style flags through log_set_max_level() or by GRANARY_LOG_LEVEL
 * (error, warning, notice, info, debug) read in log_setup().
 *
 * The _errno forms take an error number (positive or negative), make %m print
 * it, and return it negative, so a failure is logged and returned in one line:
 *
 *	return log_error_errno(r, "Failed to open '%s': %m", path);
 *
 * Library code logs at debug at most; its caller decides what a person sees.
 * Never log a token or a password.
 */
#ifndef GRANARY_COMMON_LOG_H
#define GRANARY_COMMON_LOG_H

#include <stdarg.h>
#include <syslog.h>

#include "common/macro.h"

/* Name the program (shown in every line) and read GRANARY_LOG_LEVEL. */
void log_setup(const char *ident);

void log_set_max_level(int level);
int log_get_max_level(void);

/* "debug" → LOG_DEBUG and so on; -EINVAL for anything else. */
int log_level_from_string(const char *s);
const char *log_level_to_string(int level);

/*
 * Where lines go: an fd (default 2). The fd stays owned by the caller.
 * Returns the previous fd.
 */
int log_set_fd(int fd);

/* Show "[pid]" after the ident (default on; tests may turn it off). */
void log_show_pid(int show);

/*
 * Core entry point. error is 0 or an errno (either sign); it becomes %m.
 * Returns -abs(error), or 0 when error is 0.
 */
int log_internal(int level, int error, const char *file, int line, const char *func,
		 const char *format, ...) _printf_(6, 7);
int log_internalv(int level, int error, const char *file, int line, const char *func,
		  const char *format, va_list ap) _printf_(6, 0);

/*
 * libmicrohttpd's MHD_OPTION_EXTERNAL_LOGGER callback: its messages arrive at
 * debug level with an "mhd: " prefix (they describe client misbehaviour, which
 * is not ours to shout about). cls is unused.
 */
void log_mhd(void *cls, const char *format, va_list ap) _printf_(2, 0);

#define log_full_errno(level, error, ...)                                                          \
	({                                                                                         \
		int _level_ = (level), _e_ = (error);                                              \
		(log_get_max_level() >= _level_)                                                   \
			? log_internal(_level_, _e_, __FILE__, __LINE__, __func__, __VA_ARGS__)    \
			: -(_e_ < 0 ? -_e_ : _e_);                                                 \
	})
#define log_full(level, ...) (void)log_full_errno(level, 0, __VA_ARGS__)

#define log_debug(...)	 log_full(LOG_DEBUG, __VA_ARGS__)
#define log_info(...)	 log_full(LOG_INFO, __VA_ARGS__)
#define log_notice(...)	 log_full(LOG_NOTICE, __VA_ARGS__)
#define log_warning(...) log_full(LOG_WARNING, __VA_ARGS__)
#define log_error(...)	 log_full(LOG_ERR, __VA_ARGS__)

#define log_debug_errno(error, ...)   log_full_errno(LOG_DEBUG, error, __VA_ARGS__)
#define log_info_errno(error, ...)    log_full_errno(LOG_INFO, error, __VA_ARGS__)
#define log_notice_errno(error, ...)  log_full_errno(LOG_NOTICE, error, __VA_ARGS__)
#define log_warning_errno(error, ...) log_full_errno(LOG_WARNING, error, __VA_ARGS__)
#define log_error_errno(error, ...)   log_full_errno(LOG_ERR, error, __VA_ARGS__)

/* For allocation failures: one fixed message, no allocation. */
#define log_oom() log_error_errno(ENOMEM, "Out of memory")

#endif
