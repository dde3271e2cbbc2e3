/* SPDX-License-Identifier: MIT */
/*
 * grain-init-internal.h: the parts of grain-init (grain-init.c: the app, the
 * control socket and the loop; grain-init-log.c: the grain log).
 */
#ifndef GRANARY_GRAINS_GRAIN_INIT_INTERNAL_H
#define GRANARY_GRAINS_GRAIN_INIT_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "common/macro.h"

/* Bytes of app output turned into log lines per loop iteration (bounded work). */
#define GRAIN_LOG_CHUNK	   (64 * 1024)
/* Bytes moved per loop iteration while a cut keeps the newest half of the log. */
#define GRAIN_LOG_CUT_STEP (256 * 1024)
/* "2025-01-02T03:04:05.678Z " */
#define GRAIN_LOG_TIME_LEN 25

/* grain-init-log.c */

struct grain_log {
	int fd;		  /* the log (borrowed), or -EBADF: notes go to stderr only */
	int pipe;	  /* read end of the app's stdout and stderr (owned), or -EBADF */
	uint64_t max;	  /* cap in bytes (regular files only) */
	bool capped;	  /* fd is a regular file: it is cut at max */
	bool readable;	  /* fd is open for reading: a cut keeps the newest half */
	bool line_start;  /* the app's next byte begins a line */
	bool write_error; /* a write failed (said once) */
	/* Read from the pipe, not yet written: at most GRAIN_LOG_CHUNK. */
	char in[GRAIN_LOG_CHUNK];
	size_t in_off, in_len;
	/* A cut in progress: bytes [from, end) move to [to, ...). */
	bool cutting;
	int saved_flags; /* the fd's status flags (O_APPEND) while a cut clears them */
	uint64_t cut_from, cut_to, cut_end, cut_done;
};

/*
 * Take fd as the grain log (-EBADF: none) and make the pipe the app's output
 * will come through (*ret_write_end, close-on-exec, the caller's). With no
 * log fd, no pipe is made and *ret_write_end is -EBADF.
 */
int grain_log_open(struct grain_log *log, int fd, uint64_t max, int *ret_write_end);
void grain_log_close(struct grain_log *log);
/* true when the next grain_log_step() has work without waiting for the pipe. */
bool grain_log_busy(const struct grain_log *log);
/*
 * One bounded step: a step of a cut in progress, or up to GRAIN_LOG_CHUNK
 * bytes of app output written as lines (reading the pipe first if nothing is
 * buffered and pipe_ready). Returns > 0 when it did something, 0 when there
 * was nothing to do (or the pipe is at its end).
 */
int grain_log_step(struct grain_log *log, bool pipe_ready);
/* Until the pipe is empty (not necessarily at its end), at most max_bytes. */
void grain_log_drain(struct grain_log *log, size_t max_bytes);
/*
 * A line of grain-init's own, "TIME grain-init: MESSAGE", into the log, and
 * also to stderr through common/log at level.
 */
void grain_log_note(struct grain_log *log, int level, const char *format, ...) _printf_(3, 4);

#endif
