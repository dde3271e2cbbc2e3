/* SPDX-License-Identifier: MIT */
/*
 * grain-init-log.c: the grain log. The app's stdout and stderr are one pipe;
 * grain-init reads it and writes lines to the log fd the launcher passed
 * (grains/<id>/log, a regular file opened O_RDWR | O_APPEND on the host):
 *
 *	2025-01-02T03:04:05.678Z app: what the app wrote
 *	2025-01-02T03:04:05.912Z grain-init: the app exited with status 1
 *
 * Every line the app starts gets "TIME app: " in front (UTC, milliseconds),
 * so it cannot pass a line off as grain-init's. Its bytes are otherwise
 * kept as they are; a line cut by the app's exit is ended by grain-init.
 *
 * The cap, with nothing but that fd: once the file is larger than max, the
 * newest half (from the first line start in it) moves to the start of the
 * file behind a marker line, and the file is truncated there:
 *
 *	TIME grain-init: log cut: the oldest N bytes were dropped (the log is capped at 1M)
 *
 * pwrite() on an O_APPEND fd appends whatever the offset (Linux), so a cut
 * clears O_APPEND while it moves the bytes and sets it back after. The move
 * runs GRAIN_LOG_CUT_STEP bytes per loop iteration and the pipe is not read
 * meanwhile, so a flood of output slows the app (its writes block on a full
 * pipe), never grain-init's answers on the control socket, and memory stays
 * at these fixed buffers. A log not open for reading is cut to nothing but
 * the marker; a log that is not a regular file (a pipe, a terminal) is not
 * capped.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "common/log.h"
#include "common/parse.h"
#include "grains/grain-init-internal.h"
#include "common/banned.h"

#define APP_TAG	      "app: "
#define INIT_TAG      "grain-init: "
#define NOTE_MAX      512
#define COPY_BUF_SIZE (64 * 1024)

/* One step's formatted output; input that does not fit waits in log->in for the next step. */
static char out_buf[GRAIN_LOG_CHUNK];
static char copy_buf[COPY_BUF_SIZE];

static char *
put_digits(char *p, unsigned value, int width)
{
	for (int i = width - 1; i >= 0; i--, value /= 10)
		p[i] = (char)('0' + value % 10);
	return p + width;
}

/* "2025-01-02T03:04:05.678Z " (GRAIN_LOG_TIME_LEN bytes, plus a NUL). */
static void
format_time(char buf[static GRAIN_LOG_TIME_LEN + 1])
{
	struct timespec ts = {};
	struct tm tm = {};
	char *p = buf;

	(void)clock_gettime(CLOCK_REALTIME, &ts);
	(void)gmtime_r(&ts.tv_sec, &tm);
	p = put_digits(p, (unsigned)(tm.tm_year + 1900) % 10000, 4);
	*p++ = '-';
	p = put_digits(p, (unsigned)tm.tm_mon + 1, 2);
	*p++ = '-';
	p = put_digits(p, (unsigned)tm.tm_mday, 2);
	*p++ = 'T';
	p = put_digits(p, (unsigned)tm.tm_hour, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)tm.tm_min, 2);
	*p++ = ':';
	p = put_digits(p, (unsigned)tm.tm_sec, 2);
	*p++ = '.';
	p = put_digits(p, (unsigned)(ts.tv_nsec / 1000000), 3);
	*p++ = 'Z';
	*p++ = ' ';
	*p = '\0';
}

/* Write everything; a failure is said once and the bytes are dropped. */
static void
write_all(struct grain_log *log, const char *buf, size_t len)
{
	while (len > 0) {
		ssize_t n = write(log->fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (!log->write_error)
				log_warning_errno(n < 0 ? errno : EIO,
						  "Failed to write the grain log, dropping output "
						  "until it works again: %m");
			log->write_error = true;
			return;
		}
		buf += n;
		len -= (size_t)n;
	}
	log->write_error = false;
}

static void
cut_end(struct grain_log *log, uint64_t size)
{
	if (ftruncate(log->fd, (off_t)size) < 0)
		log_warning_errno(errno, "Failed to truncate the grain log: %m");
	if (fcntl(log->fd, F_SETFL, log->saved_flags) < 0)
		log_warning_errno(errno, "Failed to restore the grain log's O_APPEND: %m");
	log->cutting = false;
}

/* Move up to GRAIN_LOG_CUT_STEP bytes of the kept part; the last step truncates. */
static void
cut_step(struct grain_log *log)
{
	uint64_t total = log->cut_end - log->cut_from;
	uint64_t step_end = MIN(total, log->cut_done + GRAIN_LOG_CUT_STEP);

	/* Forward order is safe: the destination is always below the source. */
	while (log->cut_done < step_end) {
		size_t want = (size_t)MIN((uint64_t)sizeof(copy_buf), step_end - log->cut_done);
		ssize_t n = pread(log->fd, copy_buf, want, (off_t)(log->cut_from + log->cut_done));

		if (n > 0 &&
		    pwrite(log->fd, copy_buf, (size_t)n, (off_t)(log->cut_to + log->cut_done)) != n)
			n = -1;
		if (n <= 0) {
			/* Keep what moved so far behind the marker rather than a torn file. */
			log_warning_errno(n < 0 ? errno : EIO,
					  "Failed to move the newest part of the grain log: %m");
			cut_end(log, log->cut_to + log->cut_done);
			return;
		}
		log->cut_done += (uint64_t)n;
	}
	if (log->cut_done == total)
		cut_end(log, log->cut_to + total);
}

static void
cut_begin(struct grain_log *log, uint64_t size)
{
	char marker[NOTE_MAX], time[GRAIN_LOG_TIME_LEN + 1], cap[FORMAT_SIZE_MAX];
	uint64_t from = size - log->max / 2;
	int flags, len;

	/* Keep whole lines: start after the first newline of the newest half, if one is near. */
	if (log->readable) {
		ssize_t n = pread(log->fd, copy_buf, 4096, (off_t)from);
		char *nl = n > 0 ? memchr(copy_buf, '\n', (size_t)n) : NULL;

		if (nl)
			from += (uint64_t)(nl - copy_buf) + 1;
	}
	format_time(time);
	len = snprintf(marker, sizeof(marker),
		       "%s" INIT_TAG "log cut: the oldest %llu bytes were dropped (the log is "
		       "capped at %s)\n",
		       time, (unsigned long long)(log->readable ? from : size),
		       format_size(cap, sizeof(cap), log->max));

	flags = fcntl(log->fd, F_GETFL);
	if (!log->readable || flags < 0 || fcntl(log->fd, F_SETFL, flags & ~O_APPEND) < 0) {
		/* Nothing can be kept: start again with the marker. */
		if (ftruncate(log->fd, 0) < 0)
			log_warning_errno(errno, "Failed to truncate the grain log: %m");
		write_all(log, marker, (size_t)len);
		/* The rest of a line the app had begun gets its own prefix, never the start of a line. */
		log->line_start = true;
		return;
	}
	log->saved_flags = flags;
	if (pwrite(log->fd, marker, (size_t)len, 0) != len) {
		log_warning_errno(errno, "Failed to write the grain log: %m");
		cut_end(log, 0);
		return;
	}
	log->cut_from = from;
	log->cut_to = (uint64_t)len;
	log->cut_end = size;
	log->cut_done = 0;
	log->cutting = true;
}

/* Start a cut if the file is past the cap, or would be with extra more bytes. */
static void
check_cap(struct grain_log *log, size_t extra)
{
	struct stat st;

	if (!log->capped || log->cutting || fstat(log->fd, &st) < 0)
		return;
	if ((uint64_t)st.st_size + extra > log->max)
		cut_begin(log, (uint64_t)st.st_size);
}

int
grain_log_open(struct grain_log *log, int fd, uint64_t max, int *ret_write_end)
{
	int p[2], flags;
	struct stat st;

	log->fd = -EBADF;
	log->pipe = -EBADF;
	log->max = max;
	log->line_start = true;
	log->in_off = log->in_len = 0;
	log->cutting = false;
	*ret_write_end = -EBADF;
	if (fd < 0)
		return 0;

	flags = fcntl(fd, F_GETFL);
	if (flags < 0 || fstat(fd, &st) < 0)
		return -EBADF;
	if ((flags & O_ACCMODE) == O_RDONLY)
		return -EBADF;
	log->capped = S_ISREG(st.st_mode);
	log->readable = (flags & O_ACCMODE) == O_RDWR;
	/* Lines go at the end, whatever a cut did to the file offset. */
	if (log->capped && !(flags & O_APPEND) && fcntl(fd, F_SETFL, flags | O_APPEND) < 0)
		return negative_errno();
	if (pipe2(p, O_CLOEXEC) < 0)
		return negative_errno();
	if (fcntl(p[0], F_SETFL, O_NONBLOCK) < 0) {
		int r = negative_errno();

		(void)close(p[0]);
		(void)close(p[1]);
		return r;
	}
	log->fd = fd;
	log->pipe = p[0];
	*ret_write_end = p[1];
	/* A log left larger than the cap (a smaller cap now) is cut before anything else. */
	check_cap(log, 0);
	return 0;
}

void
grain_log_close(struct grain_log *log)
{
	while (log->cutting)
		cut_step(log);
	log->pipe = safe_close(log->pipe);
}

bool
grain_log_busy(const struct grain_log *log)
{
	return log->cutting || log->in_off < log->in_len;
}

int
grain_log_step(struct grain_log *log, bool pipe_ready)
{
	char time[GRAIN_LOG_TIME_LEN + 1];
	const size_t prefix = GRAIN_LOG_TIME_LEN + strlen(APP_TAG);
	size_t o = 0;

	if (log->fd < 0)
		return 0;
	if (log->cutting) {
		cut_step(log);
		return 1;
	}
	if (log->in_off == log->in_len) {
		ssize_t n;

		if (!pipe_ready || log->pipe < 0)
			return 0;
		n = read(log->pipe, log->in, sizeof(log->in));
		if (n < 0 && (errno == EAGAIN || errno == EINTR))
			return 0;
		if (n <= 0) {
			/* Every writer is gone (or the pipe broke): nothing more will come. */
			log->pipe = safe_close(log->pipe);
			return 0;
		}
		log->in_off = 0;
		log->in_len = (size_t)n;
	}

	/* As many lines as fit in out_buf; what does not fit waits for the next step. */
	format_time(time);
	while (log->in_off < log->in_len) {
		const char *start = log->in + log->in_off, *nl;
		size_t len;

		if (log->line_start) {
			if (o + prefix + 1 > sizeof(out_buf))
				break;
			memcpy(out_buf + o, time, GRAIN_LOG_TIME_LEN);
			memcpy(out_buf + o + GRAIN_LOG_TIME_LEN, APP_TAG, strlen(APP_TAG));
			o += prefix;
			log->line_start = false;
		}
		len = MIN(log->in_len - log->in_off, sizeof(out_buf) - o);
		if (len == 0)
			break;
		nl = memchr(start, '\n', len);
		if (nl) {
			len = (size_t)(nl - start) + 1;
			log->line_start = true;
		}
		memcpy(out_buf + o, start, len);
		o += len;
		log->in_off += len;
	}
	write_all(log, out_buf, o);
	check_cap(log, 0);
	return 1;
}

void
grain_log_drain(struct grain_log *log, size_t max_bytes)
{
	for (size_t steps = max_bytes / GRAIN_LOG_CHUNK + 1; steps > 0; steps--)
		if (grain_log_step(log, true) <= 0)
			break;
	while (log->cutting)
		cut_step(log);
}

void
grain_log_note(struct grain_log *log, int level, const char *format, ...)
{
	/* A newline ending the app's line, the time, the tag, the message, a newline. */
	char line[1 + GRAIN_LOG_TIME_LEN + sizeof(INIT_TAG) + NOTE_MAX + 1];
	char msg[NOTE_MAX];
	va_list ap;
	size_t len;

	va_start(ap, format);
	(void)vsnprintf(msg, sizeof(msg), format, ap);
	va_end(ap);
	/* One note, one line, whatever the message holds. */
	for (char *c = msg; *c; c++)
		if (*c == '\n' || *c == '\r')
			*c = ' ';
	log_full(level, "%s", msg);
	if (log->fd < 0)
		return;

	/* line[0] is for the newline that ends a line of the app's, if one is open. */
	format_time(line + 1);
	len = 1 + GRAIN_LOG_TIME_LEN;
	len += (size_t)snprintf(line + len, sizeof(line) - len, INIT_TAG "%s\n", msg);
	/*
	 * A note lands at the end of the file, after any cut it would cause: a
	 * cut of a log not open for reading keeps nothing but its marker, and
	 * the last note (why the app exited) must survive it.
	 */
	while (log->cutting)
		cut_step(log);
	check_cap(log, len);
	while (log->cutting)
		cut_step(log);
	line[0] = '\n';
	write_all(log, log->line_start ? line + 1 : line, log->line_start ? len - 1 : len);
	log->line_start = true;
}
