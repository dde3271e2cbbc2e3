/* SPDX-License-Identifier: MIT */
/*
 * test-config.c: granaryd's config file and flags (supervisor/config.c): a
 * full file, every kind of bad line with the message a person sees, flags
 * over the file, the checks of listen/base_url/wildcard, reading files
 * (missing, a directory, a FIFO, too large) and TLS files GnuTLS refuses.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <syslog.h>
#include <unistd.h>

#include "supervisor/supervisor-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static char dir[] = "/tmp/test-config-XXXXXX";

__attribute__((constructor)) static void
setup(void)
{
	if (!mkdtemp(dir))
		abort();
}

__attribute__((destructor)) static void
teardown(void)
{
	char cmd[64];

	(void)snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	(void)!system(cmd);
}

/* message contains part; otherwise print the message. */
#define CHECK_CONTAINS(message, part)                                                              \
	do {                                                                                       \
		if (!CHECK(strstr((message), (part))))                                             \
			printf("#   message: %s\n#   wanted:  %s\n", (message), (part));           \
	} while (0)

static int
parse(const char *text, struct granaryd_config *c, struct config_error *err)
{
	return config_parse(text, strlen(text), "test.conf", c, err);
}

static char *
write_file(const char *name, const char *data, size_t len)
{
	static char path[128];
	int fd;

	(void)snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0 || write(fd, data, len) != (ssize_t)len || close(fd) < 0)
		abort();
	return path;
}

TEST(full_file)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};
	const char *text = "\xEF\xBB\xBF# Granary\n"
			   "\n"
			   "   # indented comment\n"
			   "state = /var/lib/granary\n"
			   "listen=0.0.0.0:443\r\n"
			   "\tbase_url\t=\thttps://granary.example.org  \n"
			   "wildcard = *.granary.example.org\n"
			   "user = granary-front\n"
			   "log_level = warning\n"
			   "tls_cert = /etc/granary/tls/cert#1.pem\n"
			   "tls_key = /etc/granary/tls/key.pem"; /* no final newline */

	CHECK_OK(parse(text, &c, &err));
	CHECK_STR_EQ(c.state, "/var/lib/granary");
	CHECK_STR_EQ(c.listen, "0.0.0.0:443");
	CHECK_STR_EQ(c.base_url, "https://granary.example.org");
	CHECK_STR_EQ(c.wildcard, "*.granary.example.org");
	CHECK_STR_EQ(c.user, "granary-front");
	CHECK_INT_EQ(c.log_level, LOG_WARNING);
	CHECK_STR_EQ(c.tls_cert, "/etc/granary/tls/cert#1.pem");
	CHECK_STR_EQ(c.tls_key, "/etc/granary/tls/key.pem");
	CHECK_OK(config_check(&c, &err));
}

TEST(empty_file_sets_nothing)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};

	CHECK_OK(parse("", &c, &err));
	CHECK_OK(parse("\n\n# only comments\n   \n", &c, &err));
	CHECK(!c.state && !c.listen && !c.base_url && !c.wildcard && !c.user);
	CHECK(!c.tls_cert && !c.tls_key);
	CHECK_INT_EQ(c.log_level, -1);
}

TEST(bad_lines)
{
	static const struct {
		const char *text, *message;
	} cases[] = {
		{ "listen = 127.0.0.1:1\nbase-url = http://x\n",
		  "test.conf:2: unknown key 'base-url' (did you mean 'base_url'?)" },
		{ "stat = /x\n", "test.conf:1: unknown key 'stat'; known keys: state, listen" },
		{ "STATE = /x\n", "unknown key 'STATE'" },
		{ "state = /a\n# x\nstate = /b\n",
		  "test.conf:3: 'state' is set again (first on line 1)" },
		{ "state = var\n", "test.conf:1: state: expected an absolute path" },
		{ "tls_key = key.pem\n", "tls_key: expected an absolute path" },
		{ "state = \"/x\"\n", "state: remove the quotes" },
		{ "state = '/x'\n", "state: remove the quotes" },
		{ "state = /x # the state\n", "state: a comment must be on a line of its own" },
		{ "state =\n", "test.conf:1: state: no value after '='" },
		{ "state =   \t\n", "state: no value after '='" },
		{ "just words\n", "test.conf:1: expected 'key = value'" },
		{ "= /x\n", "expected 'key = value'" },
		{ "[granary]\n", "expected 'key = value'" },
		{ "listen = 1:2:3\n", "listen: expected ADDR:PORT such as 127.0.0.1:6080" },
		{ "listen = 127.0.0.1:65536\n", "not '127.0.0.1:65536'" },
		{ "base_url = ftp://x\n", "base_url: expected http://HOST[:PORT] or https://" },
		{ "base_url = http://x/shell\n", "base_url: expected" },
		{ "base_url = http://user@x\n", "base_url: expected" },
		{ "wildcard = granary.example.org\n", "wildcard: expected *.HOST[:PORT]" },
		{ "user = a b\n", "user: expected a user name" },
		{ "user = -rf\n", "user: expected a user name" },
		{ "log_level = loud\n",
		  "log_level: expected error, warning, notice, info or debug" },
		{ "log_level = 7\n", "log_level: expected" },
		{ "state = /x\rlisten = :1\n", "test.conf:1: a control character (0x0d)" },
		{ "state = /\x1b[31mx\n", "a control character (0x1b)" },
		{ "\n\nstate = /x\x7f\n", "test.conf:3: a control character (0x7f)" },
	};

	for (size_t i = 0; i < ELEMENTSOF(cases); i++) {
		_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
		struct config_error err = {};

		CHECK_ERR(parse(cases[i].text, &c, &err), EINVAL);
		CHECK_CONTAINS(err.message, cases[i].message);
	}
}

TEST(nul_and_long_values)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};
	static char text[CONFIG_VALUE_MAX + 64];
	int n;

	CHECK_ERR(config_parse("state = /x\0y\n", 13, "f", &c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "f:1: a NUL byte");

	n = snprintf(text, sizeof(text), "state = /");
	memset(text + n, 'a', CONFIG_VALUE_MAX);
	text[n + CONFIG_VALUE_MAX] = '\0';
	CHECK_ERR(parse(text, &c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "state: value too long (4097 bytes, at most 4096)");
	text[n + CONFIG_VALUE_MAX - 1] = '\0';
	CHECK_OK(parse(text, &c, &err));
	CHECK_UINT_EQ(strlen(c.state), CONFIG_VALUE_MAX);

	CHECK_ERR(config_parse(text, CONFIG_FILE_MAX + 1, "big", &c, &err), E2BIG);
	CHECK_CONTAINS(err.message, "big: too large");
}

TEST(flags)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};

	/* A flag may be relative: it is relative to where the person typed it. */
	CHECK_OK(config_set(&c, "state", "./var", &err));
	CHECK_STR_EQ(c.state, "./var");
	CHECK_OK(config_set(&c, "state", "/srv/granary", &err));
	CHECK_STR_EQ(c.state, "/srv/granary");
	CHECK_OK(config_set(&c, "log_level", "debug", &err));
	CHECK_INT_EQ(c.log_level, LOG_DEBUG);

	CHECK_ERR(config_set(&c, "base_url", "localhost:6080", &err), EINVAL);
	CHECK_STR_EQ(err.message,
		     "Invalid --base-url 'localhost:6080': expected http://HOST[:PORT] "
		     "or https://HOST[:PORT] with no path");
	CHECK_ERR(config_set(&c, "tls_cert", "", &err), EINVAL);
	CHECK_CONTAINS(err.message, "Invalid --tls-cert '': expected a PEM certificate file");
	CHECK_ERR(config_set(&c, "wildcard", "*.", &err), EINVAL);
	CHECK_CONTAINS(err.message, "Invalid --wildcard '*.'");
	/* A refused value leaves the one before it. */
	CHECK_STR_EQ(c.state, "/srv/granary");
	CHECK(!c.base_url);
}

TEST(grain_settings)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};
	struct grain_settings g;

	/* Nothing set: the documented defaults. */
	CHECK_OK(config_grain_settings(&c, &g));
	CHECK_UINT_EQ(g.memory, 256ULL << 20);
	CHECK_UINT_EQ(g.pids, 256);
	CHECK_UINT_EQ(g.cpu, 1000);
	CHECK_UINT_EQ(g.tmp, 64ULL << 20);
	CHECK_UINT_EQ(g.start_timeout_ms, 30000);
	CHECK_UINT_EQ(g.log_max, 1ULL << 20);
	CHECK_UINT_EQ(g.idle_timeout_ms, 300000);
	CHECK(!g.allow_no_limits);

	CHECK_OK(parse("grain_memory = 1G\n"
		       "grain_pids = 100\n"
		       "grain_cpu = 0.5\n"
		       "grain_tmp = 16M\n"
		       "grain_start_timeout = 1m\n"
		       "grain_log_max = 64K\n"
		       "grain_idle_timeout = 1h\n"
		       "allow_no_limits = yes\n",
		       &c, &err));
	CHECK_OK(config_set(&c, "grain_cpu", "2.125", &err));
	CHECK_OK(config_grain_settings(&c, &g));
	CHECK_UINT_EQ(g.memory, 1ULL << 30);
	CHECK_UINT_EQ(g.pids, 100);
	CHECK_UINT_EQ(g.cpu, 2125);
	CHECK_UINT_EQ(g.tmp, 16ULL << 20);
	CHECK_UINT_EQ(g.start_timeout_ms, 60000);
	CHECK_UINT_EQ(g.log_max, 64 << 10);
	CHECK_UINT_EQ(g.idle_timeout_ms, 3600000);
	CHECK(g.allow_no_limits);

	static const struct {
		const char *text, *message;
	} bad[] = {
		{ "grain_memory = 1M\n",
		  "test.conf:1: grain_memory: expected a size from 4M to 1T" },
		{ "grain_memory = lots\n", "grain_memory: expected a size" },
		{ "grain_memory = 2T\n", "grain_memory: expected" },
		{ "grain_pids = 0\n", "grain_pids: expected a number of processes" },
		{ "grain_pids = -1\n", "grain_pids: expected" },
		{ "grain_cpu = 0\n", "grain_cpu: expected a number of CPUs from 0.01" },
		{ "grain_cpu = 0.001\n", "grain_cpu: expected" },
		{ "grain_cpu = 1.2345\n", "grain_cpu: expected" },
		{ "grain_cpu = .5\n", "grain_cpu: expected" },
		{ "grain_cpu = 1.\n", "grain_cpu: expected" },
		{ "grain_cpu = 5000\n", "grain_cpu: expected" },
		{ "grain_cpu = 1,5\n", "grain_cpu: expected" },
		{ "grain_tmp = 1K\n", "grain_tmp: expected a size from 1M" },
		{ "grain_start_timeout = 2h\n", "grain_start_timeout: expected a duration" },
		{ "grain_start_timeout = 10ms\n", "grain_start_timeout: expected" },
		{ "grain_log_max = 1K\n", "grain_log_max: expected a size from 4K" },
		{ "grain_idle_timeout = 0\n", "grain_idle_timeout: expected a duration from 1s" },
		{ "allow_no_limits = maybe\n", "allow_no_limits: expected yes or no" },
		{ "grain-memory = 1G\n",
		  "unknown key 'grain-memory' (did you mean 'grain_memory'?)" },
	};
	for (size_t i = 0; i < ELEMENTSOF(bad); i++) {
		_cleanup_(config_release) struct granaryd_config b = GRANARYD_CONFIG_INIT;

		CHECK_ERR(parse(bad[i].text, &b, &err), EINVAL);
		CHECK_CONTAINS(err.message, bad[i].message);
	}
	CHECK_ERR(config_set(&c, "grain_memory", "3", &err), EINVAL);
	CHECK_CONTAINS(err.message, "Invalid --grain-memory '3': expected a size");
}

TEST(flags_override_the_file)
{
	_cleanup_(config_release) struct granaryd_config file = GRANARYD_CONFIG_INIT;
	_cleanup_(config_release) struct granaryd_config flags = GRANARYD_CONFIG_INIT;
	struct config_error err = {};

	CHECK_OK(parse("state = /from/file\nlisten = 127.0.0.1:1\nlog_level = error\n", &file,
		       &err));
	CHECK_OK(config_set(&flags, "listen", "127.0.0.1:2", &err));
	CHECK_OK(config_set(&flags, "user", "nobody", &err));
	config_merge(&file, &flags);
	CHECK_STR_EQ(file.state, "/from/file");
	CHECK_STR_EQ(file.listen, "127.0.0.1:2");
	CHECK_STR_EQ(file.user, "nobody");
	CHECK_INT_EQ(file.log_level, LOG_ERR);
	CHECK(!flags.listen); /* moved, not copied */
}

TEST(whole_config_checks)
{
	struct config_error err = {};
	struct granaryd_config c = GRANARYD_CONFIG_INIT;

	c.tls_cert = (char *)"/c.pem";
	CHECK_ERR(config_check(&c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "tls_cert (--tls-cert) is set but not tls_key (--tls-key)");
	c.tls_cert = NULL;
	c.tls_key = (char *)"/k.pem";
	CHECK_ERR(config_check(&c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "tls_key (--tls-key) is set but not tls_cert (--tls-cert)");
	c.tls_cert = (char *)"/c.pem";
	CHECK_OK(config_check(&c, &err));
	c.base_url = (char *)"http://granary.example.org";
	CHECK_ERR(config_check(&c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "use https://granary.example.org");
	c.base_url = (char *)"https://granary.example.org";
	CHECK_OK(config_check(&c, &err));
	/* https without TLS here: a proxy in front terminates it. */
	c.tls_cert = c.tls_key = NULL;
	CHECK_OK(config_check(&c, &err));
}

TEST(wildcard)
{
	static const char *const good[] = {
		"*.localhost", "*.localhost:6080", "*.granary.example.org", "*.a-b.c1", "*.X.Org",
	};
	static const char *const bad[] = {
		"",	    "*",	 "*.",	    "localhost", "*localhost", "**.x",	"*.*.x",
		"*.x.",	    "*.x..y",	 "*..x",    "*.-x",	 "*.x-",       "*.x_y", "*.x:",
		"*.x:0",    "*.x:65536", "*.x:1:2", "*.x/",	 "*.[::1]",    "*.x y", "a.*.x",
		"*.x:port", "*.ünicode", "*.x\n",   ".x",
	};
	char long_label[80] = "*.";

	for (size_t i = 0; i < ELEMENTSOF(good); i++)
		if (CHECK_OK(wildcard_check(good[i])) == false)
			printf("#   refused: '%s'\n", good[i]);
	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (CHECK_ERR(wildcard_check(bad[i]), EINVAL) == false)
			printf("#   accepted: '%s'\n", bad[i]);
	memset(long_label + 2, 'a', 64);
	CHECK_ERR(wildcard_check(long_label), EINVAL);
	long_label[2 + 63] = '\0';
	CHECK_OK(wildcard_check(long_label));
}

TEST(base_url)
{
	_cleanup_free_ char *origin = NULL, *host = NULL;
	bool tls = false;

	CHECK_OK(base_url_parse("https://granary.example.org:8443/", &origin, &host, &tls));
	CHECK_STR_EQ(origin, "https://granary.example.org:8443");
	CHECK_STR_EQ(host, "granary.example.org:8443");
	CHECK(tls);
	free(origin);
	free(host);
	CHECK_OK(base_url_parse("http://localhost:6080", &origin, &host, &tls));
	CHECK_STR_EQ(origin, "http://localhost:6080");
	CHECK(!tls);
	CHECK_ERR(base_url_parse("http://", &origin, &host, &tls), EINVAL);
	CHECK_ERR(base_url_parse("HTTP://x", &origin, &host, &tls), EINVAL);
	CHECK_ERR(base_url_parse("http://x/path", &origin, &host, &tls), EINVAL);
	CHECK_ERR(base_url_parse("https://u:p@x", &origin, &host, &tls), EINVAL);
}

TEST(load_files)
{
	_cleanup_(config_release) struct granaryd_config c = GRANARYD_CONFIG_INIT;
	struct config_error err = {};
	char path[128];
	static char big[CONFIG_FILE_MAX + 1];
	const char *p;

	p = write_file("good.conf", "state = /srv/g\n", 15);
	CHECK_OK(config_load(p, &c, &err));
	CHECK_STR_EQ(c.state, "/srv/g");

	p = write_file("bad.conf", "\nlisten = x\n", 12);
	CHECK_ERR(config_load(p, &c, &err), EINVAL);
	CHECK_CONTAINS(err.message, "/bad.conf:2: listen: expected ADDR:PORT");

	CHECK_ERR(config_load("/nonexistent/granary.conf", &c, &err), ENOENT);
	CHECK_STR_EQ(err.message, "/nonexistent/granary.conf: cannot read the config file: No "
				  "such file or directory");
	CHECK_ERR(config_load(dir, &c, &err), EISDIR);
	CHECK_CONTAINS(err.message, "it is a directory");
	(void)snprintf(path, sizeof(path), "%s/fifo", dir);
	CHECK_OK(mkfifo(path, 0600));
	CHECK_ERR(config_load(path, &c, &err), EBADF); /* and does not hang */
	CHECK_CONTAINS(err.message, "not a regular file");

	memset(big, '#', sizeof(big));
	p = write_file("big.conf", big, sizeof(big));
	CHECK_ERR(config_load(p, &c, &err), E2BIG);
	CHECK_CONTAINS(err.message, "too large");
}

TEST(tls_files)
{
	_cleanup_(tls_files_release) struct tls_files t = {};
	struct config_error err = {};
	char cert[128], key[128], empty[128];

	(void)snprintf(cert, sizeof(cert), "%s", write_file("cert.pem", "garbage\n", 8));
	(void)snprintf(key, sizeof(key), "%s", write_file("key.pem", "more garbage\n", 13));
	(void)snprintf(empty, sizeof(empty), "%s", write_file("empty.pem", "", 0));

	CHECK_ERR(tls_load("/nonexistent.pem", key, &t, &err), ENOENT);
	CHECK_CONTAINS(err.message,
		       "Cannot read the TLS certificate '/nonexistent.pem' (tls_cert): No such");
	CHECK_ERR(tls_load(cert, "/nonexistent.pem", &t, &err), ENOENT);
	CHECK_CONTAINS(err.message, "Cannot read the TLS key '/nonexistent.pem' (tls_key)");
	CHECK_ERR(tls_load(cert, empty, &t, &err), EINVAL);
	CHECK_CONTAINS(err.message, "The TLS key '");
	CHECK_CONTAINS(err.message, "' is empty");
	/* Real refusals from GnuTLS, through the same libmicrohttpd call front makes. */
	CHECK_ERR(tls_load(cert, key, &t, &err), EINVAL);
	CHECK_CONTAINS(err.message, "were refused (GnuTLS");
	CHECK_CONTAINS(err.message, "expected PEM files");
	CHECK(!t.cert && !t.key);
}
