/* SPDX-License-Identifier: MIT */
/*
 * test-grain-log.c: grain-init's log cap at its edges, on a real file: the
 * note of why the app exited survives the cut it causes, and a cut of a log
 * not open for reading never lets the rest of the app's line pass for a line
 * of grain-init's. (t0400 runs the whole grain-init with the log.)
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/log.h"
#include "common/macro.h"
#include "grains/grain-init-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

#define CAP 4096

struct log_file {
	char path[64];
	int fd;
	int app; /* the write end of the app's output */
	struct grain_log log;
};

static bool
log_file_open(struct log_file *l, int flags)
{
	int fd;

	(void)snprintf(l->path, sizeof(l->path), "/tmp/granary-test-log-XXXXXX");
	fd = mkstemp(l->path);
	if (fd < 0)
		return false;
	(void)close(fd);
	l->fd = open(l->path, flags | O_APPEND | O_CLOEXEC);
	return l->fd >= 0 && grain_log_open(&l->log, l->fd, CAP, &l->app) >= 0;
}

static void
log_file_close(struct log_file *l)
{
	(void)close(l->app);
	grain_log_close(&l->log);
	(void)close(l->fd);
	(void)unlink(l->path);
}

/* What the app writes, through the pipe into the log. */
static void
app_writes(struct log_file *l, const char *s)
{
	CHECK((size_t)write(l->app, s, strlen(s)) == strlen(s));
	grain_log_drain(&l->log, 1 << 20);
}

static off_t
size_of(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 ? st.st_size : -1;
}

static char *
contents(const char *path)
{
	static char buf[2 * CAP];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n = fd >= 0 ? read(fd, buf, sizeof(buf) - 1) : -1;

	if (fd >= 0)
		(void)close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return buf;
}

/* Every line is "TIME app: ..." or "TIME grain-init: ...". */
static bool
lines_well_formed(const char *s)
{
	for (const char *line = s; *line;) {
		const char *end = strchr(line, '\n'), *tag = line + GRAIN_LOG_TIME_LEN;

		if (!end || end - line < GRAIN_LOG_TIME_LEN ||
		    (strncmp(tag, "app: ", 5) != 0 && strncmp(tag, "grain-init: ", 12) != 0))
			return false;
		line = end + 1;
	}
	return true;
}

static const char *
last_line(const char *s)
{
	size_t len = strlen(s);
	const char *p = s + len - 1;

	while (p > s && p[-1] != '\n')
		p--;
	return p;
}

/* Fill the log with whole lines until a note of note_len bytes would pass the cap. */
static void
fill_to_the_brim(struct log_file *l, size_t note_len)
{
	for (int i = 0; i < 1000; i++) {
		off_t size = size_of(l->path);

		if (size + (off_t)note_len > CAP)
			return;
		app_writes(l, "x\n");
	}
}

static void
note_survives(int flags)
{
	struct log_file l;
	char *s;

	CHECK(log_file_open(&l, flags));
	fill_to_the_brim(&l, 40);
	CHECK(size_of(l.path) <= CAP);
	grain_log_note(&l.log, LOG_INFO, "the app exited with status 0 (a note of about 70 bytes)");
	s = contents(l.path);
	CHECK(lines_well_formed(s));
	CHECK(strstr(last_line(s), "grain-init: the app exited with status 0") != NULL);
	CHECK(strstr(s, "grain-init: log cut: the oldest") != NULL);
	CHECK(size_of(l.path) <= CAP);
	log_file_close(&l);
}

TEST(the_last_note_survives_the_cut_it_causes)
{
	note_survives(O_RDWR);
	note_survives(O_WRONLY); /* a cut keeps nothing but its marker */
}

TEST(a_cut_never_lets_the_app_write_a_line_of_grain_inits)
{
	struct log_file l;
	char line[CAP], fake[128], *s;

	CHECK(log_file_open(&l, O_WRONLY));
	fill_to_the_brim(&l, 200);
	/* A line the app has begun when the cut comes, and the rest of it after. */
	memset(line, 'y', 300);
	line[300] = '\0';
	app_writes(&l, line);
	(void)snprintf(fake, sizeof(fake), "2026-01-01T00:00:00.000Z grain-init: trust me\n");
	app_writes(&l, fake);
	s = contents(l.path);
	CHECK(lines_well_formed(s));
	CHECK(strstr(s, "app: 2026-01-01T00:00:00.000Z grain-init: trust me\n") != NULL);
	log_file_close(&l);
}
