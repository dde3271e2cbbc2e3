/* SPDX-License-Identifier: MIT */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "common/log.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

/* Run fn with log output captured into out (NUL-terminated). */
static void
capture(void (*fn)(void), char *out, size_t size)
{
	int fd = memfd_create("log", MFD_CLOEXEC);
	int old;
	ssize_t n;

	old = log_set_fd(fd);
	fn();
	(void)log_set_fd(old);
	n = pread(fd, out, size - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
}

static int returned;

static void
log_errno_case(void)
{
	returned = log_error_errno(ENOENT, "Failed to open '%s': %m", "x");
}

TEST(errno_form_returns_negative_and_prints_m)
{
	char out[512];

	log_setup("test-log");
	log_show_pid(0);
	capture(log_errno_case, out, sizeof(out));
	CHECK_INT_EQ(returned, -ENOENT);
	CHECK_STR_EQ(out, "test-log: error: Failed to open 'x': No such file or directory\n");
}

static void
log_negative_errno_case(void)
{
	returned = log_warning_errno(-EACCES, "nope: %m");
}

TEST(negative_error_is_accepted)
{
	char out[512];

	capture(log_negative_errno_case, out, sizeof(out));
	CHECK_INT_EQ(returned, -EACCES);
	CHECK_STR_EQ(out, "test-log: warning: nope: Permission denied\n");
}

static void
log_debug_case(void)
{
	log_debug("hidden");
	returned = log_debug_errno(EIO, "hidden too");
}

TEST(below_level_prints_nothing_but_returns)
{
	char out[512];

	log_set_max_level(LOG_INFO);
	capture(log_debug_case, out, sizeof(out));
	CHECK_STR_EQ(out, "");
	CHECK_INT_EQ(returned, -EIO);
}

static void
log_newline_case(void)
{
	log_info("a\nb\rc");
}

TEST(newlines_cannot_forge_lines)
{
	char out[512];

	capture(log_newline_case, out, sizeof(out));
	CHECK_STR_EQ(out, "test-log: a b c\n");
}

static void
log_long_case(void)
{
	static char big[8192];

	memset(big, 'x', sizeof(big) - 1);
	log_info("%s", big);
}

TEST(long_message_is_cut_to_one_line)
{
	static char out[16384];

	capture(log_long_case, out, sizeof(out));
	CHECK(strlen(out) < 2100);
	CHECK(out[strlen(out) - 1] == '\n');
	CHECK(strchr(out, '\n') == out + strlen(out) - 1);
}

TEST(levels_from_strings)
{
	CHECK_INT_EQ(log_level_from_string("debug"), LOG_DEBUG);
	CHECK_INT_EQ(log_level_from_string("WARNING"), LOG_WARNING);
	CHECK_INT_EQ(log_level_from_string("warn"), LOG_WARNING);
	CHECK_INT_EQ(log_level_from_string("error"), LOG_ERR);
	CHECK_ERR(log_level_from_string("loud"), EINVAL);
	CHECK_ERR(log_level_from_string(""), EINVAL);
	CHECK_ERR(log_level_from_string(NULL), EINVAL);
	CHECK(log_level_to_string(99) == NULL);
}

static void
mhd_call(const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	log_mhd(NULL, format, ap);
	va_end(ap);
}

static void
log_mhd_case(void)
{
	log_set_max_level(LOG_DEBUG);
	mhd_call("Error: %s\n", "connection reset");
	log_set_max_level(LOG_INFO);
	mhd_call("not shown %d\n", 1);
}

TEST(mhd_messages_arrive_at_debug)
{
	char out[512];

	capture(log_mhd_case, out, sizeof(out));
	CHECK_STR_EQ(out, "test-log: debug: mhd: Error: connection reset\n");
}
