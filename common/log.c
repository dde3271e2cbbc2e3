/* SPDX-License-Identifier: MIT */
/*
 * log.c: formats one line per message into a stack buffer and writes it with
 * a single write(2). No allocation, so log_oom() works when memory is gone and
 * logging is safe between fork() and exec().
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "common/log.h"
#include "common/banned.h"

#define LOG_LINE_MAX 2048

static const char *log_ident = "granary";
static int log_max_level = LOG_INFO;
static int log_fd = STDERR_FILENO;
static int log_pid = 1;

static const char *const level_names[] = {
	[LOG_EMERG] = "emerg", [LOG_ALERT] = "alert",	  [LOG_CRIT] = "crit",
	[LOG_ERR] = "error",   [LOG_WARNING] = "warning", [LOG_NOTICE] = "notice",
	[LOG_INFO] = "info",   [LOG_DEBUG] = "debug",
};

void
log_setup(const char *ident)
{
	const char *env;

	if (ident) {
		const char *slash = strrchr(ident, '/');
		log_ident = slash ? slash + 1 : ident;
	}
	env = getenv("GRANARY_LOG_LEVEL");
	if (env && *env) {
		int level = log_level_from_string(env);
		if (level >= 0)
			log_max_level = level;
		else
			log_warning("Ignoring GRANARY_LOG_LEVEL='%s': use error, warning, notice, "
				    "info or debug",
				    env);
	}
}

void
log_set_max_level(int level)
{
	if (level < LOG_EMERG)
		level = LOG_EMERG;
	if (level > LOG_DEBUG)
		level = LOG_DEBUG;
	log_max_level = level;
}

int
log_get_max_level(void)
{
	return log_max_level;
}

int
log_set_fd(int fd)
{
	int old = log_fd;

	log_fd = fd;
	return old;
}

void
log_show_pid(int show)
{
	log_pid = !!show;
}

int
log_level_from_string(const char *s)
{
	if (!s)
		return -EINVAL;
	for (size_t i = 0; i < ELEMENTSOF(level_names); i++)
		if (strcasecmp(s, level_names[i]) == 0)
			return (int)i;
	if (strcasecmp(s, "err") == 0)
		return LOG_ERR;
	if (strcasecmp(s, "warn") == 0)
		return LOG_WARNING;
	return -EINVAL;
}

const char *
log_level_to_string(int level)
{
	if (level < 0 || (size_t)level >= ELEMENTSOF(level_names))
		return NULL;
	return level_names[level];
}

/* Append to buf without overflowing; a line that does not fit is cut. */
static size_t
append(char *buf, size_t len, size_t size, const char *format, ...)
{
	va_list ap;
	int n;

	if (len >= size)
		return len;
	va_start(ap, format);
	n = vsnprintf(buf + len, size - len, format, ap);
	va_end(ap);
	if (n < 0)
		return len;
	return MIN(len + (size_t)n, size - 1);
}

int
log_internalv(int level, int error, const char *file, int line, const char *func,
	      const char *format, va_list ap)
{
	char buf[LOG_LINE_MAX];
	size_t len = 0;
	int saved_errno = errno;
	int n;

	if (error < 0)
		error = -error;
	if (level > log_max_level)
		return -error;

	if (log_pid)
		len = append(buf, len, sizeof(buf), "%s[%d]: ", log_ident, (int)getpid());
	else
		len = append(buf, len, sizeof(buf), "%s: ", log_ident);
	if (level <= LOG_WARNING || level == LOG_DEBUG)
		len = append(buf, len, sizeof(buf), "%s: ", log_level_to_string(level));
	if (log_max_level >= LOG_DEBUG && file)
		len = append(buf, len, sizeof(buf), "(%s:%d %s) ", file, line, func);

	/* %m prints the error we were given, not whatever errno is now. */
	errno = error;
	if (len < sizeof(buf) - 1) {
		n = vsnprintf(buf + len, sizeof(buf) - len, format, ap);
		if (n > 0)
			len = MIN(len + (size_t)n, sizeof(buf) - 2);
	}
	/* One message, one line: a stray newline in user input cannot forge a line. */
	for (size_t i = 0; i < len; i++)
		if (buf[i] == '\n' || buf[i] == '\r')
			buf[i] = ' ';
	buf[len++] = '\n';

	for (size_t off = 0; off < len;) {
		ssize_t w = write(log_fd, buf + off, len - off);
		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			break;
		off += (size_t)w;
	}

	errno = saved_errno;
	return -error;
}

int
log_internal(int level, int error, const char *file, int line, const char *func, const char *format,
	     ...)
{
	va_list ap;
	int r;

	va_start(ap, format);
	r = log_internalv(level, error, file, line, func, format, ap);
	va_end(ap);
	return r;
}

void
log_mhd(void *cls, const char *format, va_list ap)
{
	char msg[LOG_LINE_MAX];
	size_t len;

	(void)cls;
	if (log_max_level < LOG_DEBUG)
		return;
	(void)vsnprintf(msg, sizeof(msg), format, ap);
	/* libmicrohttpd ends its messages with a newline of its own. */
	len = strlen(msg);
	while (len > 0 && (msg[len - 1] == '\n' || msg[len - 1] == '\r'))
		msg[--len] = '\0';
	(void)log_internal(LOG_DEBUG, 0, NULL, 0, NULL, "mhd: %s", msg);
}
