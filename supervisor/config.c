/* SPDX-License-Identifier: MIT */
/*
 * config.c: granaryd's settings. The config file, the flags that override it,
 * the one check every value goes through, and the TLS certificate and key.
 *
 * The file is UTF-8 text of `key = value` lines (docs/admin.md has a full one):
 *
 *	# /etc/granary/granary.conf
 *	state = /var/lib/granary
 *	listen = 0.0.0.0:443
 *	tls_cert = /etc/granary/tls/cert.pem
 *
 *   line          meaning
 *   -----------   -----------------------------------------------------------
 *   blank         ignored (spaces, tabs; CRLF line ends are accepted)
 *   # text        a comment; only on a line of its own
 *   key = value   key from config_keys[] below, at most once per file; value
 *                 is the rest of the line without surrounding blanks, taken
 *                 literally: no quotes, no escapes, never empty
 *
 * Refused, with "FILE:LINE: what is wrong, what is expected": unknown keys
 * (with "did you mean" for the flag spelling base-url), duplicates, bad
 * values, quoted values, a '#' comment after a value, control characters,
 * NUL bytes, relative paths, a file over CONFIG_FILE_MAX.
 *
 * Why this format and not JSON, which we parse strictly anyway (json-util.h):
 * a config file is written by a person, who wants comments and errors that
 * point at a line, and has nothing nested to say. The format is the one of
 * sandstorm.conf, sshd_config and most of /etc, and needs no library.
 *
 * A value from a flag goes through the same check as one from the file, so
 * whatever the source, granaryd refuses a bad setting before it starts
 * anything.
 */
#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <microhttpd.h>
#include <sodium.h>

#include "common/log.h"
#include "common/macro.h"
#include "common/parse.h"
#include "supervisor/supervisor-internal.h"
#include "common/banned.h"

#define TLS_CERT_MAX (256 * 1024) /* a long chain is a few KiB */
#define TLS_KEY_MAX  (64 * 1024)  /* an RSA-8192 key in PEM is about 6 KiB */

enum config_type {
	CONFIG_TEXT,	  /* char *, checked by .check */
	CONFIG_PATH,	  /* char *; absolute when it comes from a file */
	CONFIG_LOG_LEVEL, /* int */
	/* char *, checked by number_check() against .min and .max: */
	CONFIG_SIZE,	 /* parse_size() bytes */
	CONFIG_DURATION, /* parse_duration_ms() */
	CONFIG_COUNT,	 /* parse_uint64() */
	CONFIG_CPUS,	 /* "0.5": thousandths of a CPU */
	CONFIG_BOOL,	 /* parse_bool() */
};

struct config_key {
	const char *name; /* the flag is "--" and the name with '-' for '_' */
	enum config_type type;
	size_t offset; /* into struct granaryd_config */
	int (*check)(const char *value);
	const char *expected; /* completes "expected ..." */
	uint64_t min, max;    /* numbers: the bounds */
};

static int
check_listen(const char *value)
{
	struct listen_address a;

	return listen_address_parse(value, &a);
}

static int
check_base_url(const char *value)
{
	_cleanup_free_ char *origin = NULL, *host = NULL;
	bool tls;

	return base_url_parse(value, &origin, &host, &tls);
}

/* An account name as useradd takes it; whether it exists is asked at start. */
static int
check_user(const char *value)
{
	size_t len = strlen(value);

	if (len == 0 || len > 32 || value[0] == '-')
		return -EINVAL;
	if (strspn(value, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") !=
	    len)
		return -EINVAL;
	return 0;
}

/* A number of CPUs with at most three decimals ("1", "0.5", "2.125") in thousandths. */
static int
parse_cpus(const char *value, uint32_t *ret)
{
	const char *dot = strchr(value, '.');
	char whole[16];
	uint64_t w, thousandths = 0;
	size_t n = dot ? (size_t)(dot - value) : strlen(value);
	int r;

	if (n == 0 || n >= sizeof(whole))
		return -EINVAL;
	memcpy(whole, value, n);
	whole[n] = '\0';
	r = parse_uint64(whole, &w);
	if (r < 0)
		return r;
	if (dot) {
		size_t digits = strlen(dot + 1);

		if (digits == 0 || digits > 3 || strspn(dot + 1, "0123456789") != digits)
			return -EINVAL;
		for (size_t i = 0; i < 3; i++)
			thousandths =
				thousandths * 10 + (i < digits ? (uint64_t)(dot[1 + i] - '0') : 0);
	}
	if (w > GRAIN_CPU_MAX / 1000)
		return -ERANGE;
	*ret = (uint32_t)(w * 1000 + thousandths);
	return 0;
}

/*
 * A number of kind k->type within [k->min, k->max] (sizes in bytes,
 * durations in ms, CPUs in thousandths). -EINVAL or -ERANGE otherwise.
 */
static int
number_check(const struct config_key *k, const char *value)
{
	uint64_t v = 0;
	uint32_t cpus;
	bool b;
	int r;

	switch (k->type) {
	case CONFIG_SIZE:
		r = parse_size(value, &v);
		break;
	case CONFIG_DURATION:
		r = parse_duration_ms(value, &v);
		break;
	case CONFIG_COUNT:
		r = parse_uint64(value, &v);
		break;
	case CONFIG_CPUS:
		r = parse_cpus(value, &cpus);
		v = cpus;
		break;
	case CONFIG_BOOL:
		return parse_bool(value, &b);
	default:
		return 0;
	}
	return r < 0 ? r : v < k->min || v > k->max ? -ERANGE : 0;
}

#define KEY(n, t, field, c, e)                                                                     \
	{                                                                                          \
		n, t, offsetof(struct granaryd_config, field), c, e, 0, 0                          \
	}
/* A number: type, bounds. */
#define NUMBER(n, t, field, lo, hi, e)                                                             \
	{                                                                                          \
		n, t, offsetof(struct granaryd_config, field), NULL, e, lo, hi                     \
	}
static const struct config_key config_keys[] = {
	KEY("state", CONFIG_PATH, state, NULL, "a directory"),
	KEY("listen", CONFIG_TEXT, listen, check_listen,
	    "ADDR:PORT such as 127.0.0.1:6080, [::1]:6080 or :443"),
	KEY("base_url", CONFIG_TEXT, base_url, check_base_url,
	    "http://HOST[:PORT] or https://HOST[:PORT] with no path"),
	KEY("wildcard", CONFIG_TEXT, wildcard, wildcard_check,
	    "*.HOST[:PORT] such as *.granary.example.org"),
	KEY("user", CONFIG_TEXT, user, check_user, "a user name such as granary"),
	KEY("log_level", CONFIG_LOG_LEVEL, log_level, NULL,
	    "error, warning, notice, info or debug"),
	KEY("tls_cert", CONFIG_PATH, tls_cert, NULL, "a PEM certificate file"),
	KEY("tls_key", CONFIG_PATH, tls_key, NULL, "a PEM private key file"),
	NUMBER("grain_memory", CONFIG_SIZE, grain_memory, GRAIN_MEMORY_MIN, GRAIN_MEMORY_MAX,
	       "a size from 4M to 1T such as 256M or 1G"),
	NUMBER("grain_pids", CONFIG_COUNT, grain_pids, 1, GRAIN_PIDS_MAX,
	       "a number of processes and threads from 1 to 4194304"),
	NUMBER("grain_cpu", CONFIG_CPUS, grain_cpu, GRAIN_CPU_MIN, GRAIN_CPU_MAX,
	       "a number of CPUs from 0.01 to 4096 such as 1 or 0.5 (at most three decimals)"),
	NUMBER("grain_tmp", CONFIG_SIZE, grain_tmp, GRAIN_TMP_MIN, GRAIN_TMP_MAX,
	       "a size from 1M to 1T such as 64M"),
	NUMBER("grain_start_timeout", CONFIG_DURATION, grain_start_timeout,
	       GRAIN_START_TIMEOUT_MIN_MS, GRAIN_START_TIMEOUT_MAX_MS,
	       "a duration from 100ms to 1h such as 30s"),
	NUMBER("grain_log_max", CONFIG_SIZE, grain_log_max, GRAIN_LOG_MAX_MIN, GRAIN_LOG_MAX_MAX,
	       "a size from 4K to 1G such as 1M"),
	NUMBER("grain_idle_timeout", CONFIG_DURATION, grain_idle_timeout, GRAIN_IDLE_TIMEOUT_MIN_MS,
	       GRAIN_IDLE_TIMEOUT_MAX_MS, "a duration from 1s to 30d such as 5m"),
	NUMBER("allow_no_limits", CONFIG_BOOL, allow_no_limits, 0, 0, "yes or no"),
};
#undef KEY
#undef NUMBER

static const struct config_key *
key_find(const char *name, size_t len)
{
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
		if (strlen(config_keys[i].name) == len &&
		    memcmp(config_keys[i].name, name, len) == 0)
			return &config_keys[i];
	return NULL;
}

static char **
key_string(struct granaryd_config *c, const struct config_key *k)
{
	return (char **)((uint8_t *)c + k->offset);
}

static int *
key_int(struct granaryd_config *c, const struct config_key *k)
{
	return (int *)((uint8_t *)c + k->offset);
}

static int _printf_(2, 3) error_set(struct config_error *err, const char *format, ...)
{
	va_list ap;

	va_start(ap, format);
	(void)vsnprintf(err->message, sizeof(err->message), format, ap);
	va_end(ap);
	return -EINVAL;
}

/* Check value for k and store a copy in c. -EINVAL if it is not what k expects. */
static int
value_set(struct granaryd_config *c, const struct config_key *k, const char *value, bool in_file)
{
	char *copy;
	int r;

	if (!*value)
		return -EINVAL;
	if (k->type == CONFIG_LOG_LEVEL) {
		r = log_level_from_string(value);
		if (r < 0)
			return -EINVAL;
		*key_int(c, k) = r;
		return 0;
	}
	if (k->type == CONFIG_PATH && in_file && value[0] != '/')
		return -EINVAL;
	if ((k->check && k->check(value) < 0) || number_check(k, value) < 0)
		return -EINVAL;
	copy = strdup(value);
	if (!copy)
		return -ENOMEM;
	free(*key_string(c, k));
	*key_string(c, k) = copy;
	return 0;
}

static const char *
expected(const struct config_key *k, bool in_file)
{
	if (k->type == CONFIG_PATH && in_file)
		return "an absolute path (a config file must not depend on the directory "
		       "granaryd starts in)";
	return k->expected;
}

int
config_set(struct granaryd_config *c, const char *key, const char *value, struct config_error *err)
{
	const struct config_key *k = key_find(key, strlen(key));
	char flag[32];
	size_t i;
	int r;

	assert(k);
	/* "base_url" → "base-url": name the flag as the person typed it. */
	for (i = 0; k->name[i] && i < sizeof(flag) - 1; i++)
		flag[i] = k->name[i] == '_' ? '-' : k->name[i];
	flag[i] = '\0';
	r = value_set(c, k, value, false);
	if (r == -EINVAL)
		return error_set(err, "Invalid --%s '%s': expected %s", flag, value,
				 expected(k, false));
	if (r < 0)
		return error_set(err, "--%s: out of memory", flag), r;
	return 0;
}

static bool
is_blank(char ch)
{
	return ch == ' ' || ch == '\t';
}

/*
 * One line, [p, end) without its '\n'. Errors get "FILE:LINE: " from the caller.
 * set_on_line[i] remembers where config_keys[i] was set, for duplicates.
 */
static int
line_parse(const char *p, const char *end, unsigned line, unsigned set_on_line[],
	   struct granaryd_config *c, struct config_error *err)
{
	_cleanup_free_ char *value = NULL;
	const struct config_key *k;
	const char *eq, *key_end, *value_start;
	int r;

	/* A CRLF file is fine; a lone CR elsewhere is a control character. */
	if (end > p && end[-1] == '\r')
		end--;
	for (const char *q = p; q < end; q++) {
		unsigned char ch = (unsigned char)*q;

		if (ch == '\0')
			return error_set(err, "a NUL byte: this is not a text file");
		if ((ch < 0x20 && ch != '\t') || ch == 0x7f)
			return error_set(err, "a control character (0x%02x)", ch);
	}
	while (p < end && is_blank(*p))
		p++;
	while (end > p && is_blank(end[-1]))
		end--;
	if (p == end || *p == '#')
		return 0;

	eq = memchr(p, '=', (size_t)(end - p));
	key_end = eq;
	while (key_end && key_end > p && is_blank(key_end[-1]))
		key_end--;
	if (!eq || key_end == p)
		return error_set(err, "expected 'key = value', a comment starting with '#' or a "
				      "blank line");
	k = key_find(p, (size_t)(key_end - p));
	if (!k) {
		char suggestion[32];
		size_t len = MIN((size_t)(key_end - p), sizeof(suggestion) - 1);

		/* The flag spelling (base-url) of a key (base_url) is the likely mistake. */
		for (size_t i = 0; i < len; i++)
			suggestion[i] = p[i] == '-' ? '_' : p[i];
		suggestion[len] = '\0';
		if ((size_t)(key_end - p) < sizeof(suggestion) && key_find(suggestion, len))
			return error_set(err, "unknown key '%.*s' (did you mean '%s'?)",
					 (int)(key_end - p), p, suggestion);

		char known[512] = "";
		for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
			(void)snprintf(known + strlen(known), sizeof(known) - strlen(known), "%s%s",
				       i ? ", " : "", config_keys[i].name);
		return error_set(err, "unknown key '%.*s'; known keys: %s",
				 (int)MIN(key_end - p, 64), p, known);
	}
	if (set_on_line[k - config_keys])
		return error_set(err, "'%s' is set again (first on line %u); set each key once",
				 k->name, set_on_line[k - config_keys]);

	value_start = eq + 1;
	while (value_start < end && is_blank(*value_start))
		value_start++;
	size_t len = (size_t)(end - value_start);
	if (len == 0)
		return error_set(err, "%s: no value after '='; expected %s", k->name,
				 expected(k, true));
	if (len > CONFIG_VALUE_MAX)
		return error_set(err, "%s: value too long (%zu bytes, at most %d)", k->name, len,
				 CONFIG_VALUE_MAX);
	if (len >= 2 && (*value_start == '"' || *value_start == '\'') && end[-1] == *value_start)
		return error_set(err, "%s: remove the quotes: values are taken literally", k->name);
	for (const char *q = value_start + 1; q < end; q++)
		if (*q == '#' && is_blank(q[-1]))
			return error_set(err,
					 "%s: a comment must be on a line of its own (this '#' "
					 "would be part of the value)",
					 k->name);

	/* Not strndup(): the text need not be NUL-terminated (it ends at end). */
	value = malloc(len + 1);
	if (!value)
		return error_set(err, "out of memory"), -ENOMEM;
	memcpy(value, value_start, len);
	value[len] = '\0';
	r = value_set(c, k, value, true);
	if (r == -EINVAL)
		return error_set(err, "%s: expected %s, not '%s'", k->name, expected(k, true),
				 value);
	if (r < 0)
		return error_set(err, "out of memory"), r;
	set_on_line[k - config_keys] = line;
	return 0;
}

int
config_parse(const char *text, size_t len, const char *filename, struct granaryd_config *c,
	     struct config_error *err)
{
	unsigned set_on_line[ELEMENTSOF(config_keys)] = {};
	const char *p = text, *end = text + len;
	unsigned line = 0;
	int r;

	if (len > CONFIG_FILE_MAX)
		return error_set(err,
				 "%s: too large (%zu bytes, at most %d): is this a config file?",
				 filename, len, CONFIG_FILE_MAX),
		       -E2BIG;
	/* A byte-order mark, as some editors write, is not part of the first key. */
	if (len >= 3 && memcmp(p, "\xEF\xBB\xBF", 3) == 0)
		p += 3;
	while (p < end) {
		const char *nl = memchr(p, '\n', (size_t)(end - p));

		line++;
		r = line_parse(p, nl ? nl : end, line, set_on_line, c, err);
		if (r < 0) {
			char message[sizeof(err->message)];

			memcpy(message, err->message, sizeof(message));
			(void)error_set(err, "%s:%u: %s", filename, line, message);
			return r;
		}
		p = nl ? nl + 1 : end;
	}
	return 0;
}

/*
 * Read a whole regular file of at most max bytes, NUL-terminated, into
 * *ret (the caller frees it; a secret one after sodium_memzero()). One
 * allocation of the size fstat() gives, so no copy of a secret is left behind
 * by a realloc; a file that grows meanwhile is refused.
 */
static int
file_read(const char *path, size_t max, char **ret, size_t *ret_size, mode_t *ret_mode)
{
	_cleanup_close_ int fd = -EBADF;
	char *data;
	struct stat st;
	size_t size = 0;

	/* O_NONBLOCK: a FIFO must not hang start-up; fstat() then refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISDIR(st.st_mode))
		return -EISDIR;
	if (!S_ISREG(st.st_mode))
		return -EBADF;
	if ((uint64_t)st.st_size > max)
		return -E2BIG;
	data = malloc((size_t)st.st_size + 1);
	if (!data)
		return -ENOMEM;
	for (;;) {
		/* One byte more than expected tells a file that grew. */
		ssize_t n = read(fd, data + size, (size_t)st.st_size + 1 - size);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 || (n > 0 && size + (size_t)n > (size_t)st.st_size)) {
			int e = n < 0 ? errno : EBUSY;

			sodium_memzero(data, size);
			free(data);
			return -e;
		}
		if (n == 0)
			break;
		size += (size_t)n;
	}
	data[size] = '\0';
	*ret = data;
	*ret_size = size;
	if (ret_mode)
		*ret_mode = st.st_mode;
	return 0;
}

static const char *
file_error(int r)
{
	switch (r) {
	case -EISDIR:
		return "it is a directory";
	case -EBADF:
		return "not a regular file";
	case -EBUSY:
		return "it changed while being read";
	default:
		return strerror(-r);
	}
}

int
config_load(const char *path, struct granaryd_config *c, struct config_error *err)
{
	_cleanup_free_ char *text = NULL;
	size_t size;
	int r;

	r = file_read(path, CONFIG_FILE_MAX, &text, &size, NULL);
	if (r == -E2BIG)
		return error_set(err, "%s: too large (at most %d bytes): is this a config file?",
				 path, CONFIG_FILE_MAX),
		       r;
	if (r < 0)
		return error_set(err, "%s: cannot read the config file: %s", path, file_error(r)),
		       r;
	return config_parse(text, size, path, c, err);
}

void
config_merge(struct granaryd_config *into, struct granaryd_config *from)
{
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++) {
		const struct config_key *k = &config_keys[i];

		if (k->type == CONFIG_LOG_LEVEL) {
			if (*key_int(from, k) >= 0)
				*key_int(into, k) = *key_int(from, k);
		} else if (*key_string(from, k)) {
			free(*key_string(into, k));
			*key_string(into, k) = TAKE_PTR(*key_string(from, k));
		}
	}
}

int
config_check(const struct granaryd_config *c, struct config_error *err)
{
	if (!!c->tls_cert != !!c->tls_key)
		return error_set(err,
				 "TLS needs both a certificate and its key: %s is set but not %s "
				 "(set both, or neither for plain HTTP)",
				 c->tls_cert ? "tls_cert (--tls-cert)" : "tls_key (--tls-key)",
				 c->tls_cert ? "tls_key (--tls-key)" : "tls_cert (--tls-cert)");
	/* https without TLS is fine (a proxy in front terminates it); the reverse never works. */
	if (c->tls_cert && c->base_url && strncmp(c->base_url, "http://", 7) == 0)
		return error_set(err,
				 "base_url '%s' is plain HTTP but granaryd serves HTTPS "
				 "(tls_cert is set): use https://%s",
				 c->base_url, c->base_url + 7);
	return 0;
}

void
config_release(struct granaryd_config *c)
{
	for (size_t i = 0; i < ELEMENTSOF(config_keys); i++)
		if (config_keys[i].type != CONFIG_LOG_LEVEL) {
			free(*key_string(c, &config_keys[i]));
			*key_string(c, &config_keys[i]) = NULL;
		}
	c->log_level = -1;
}

int
config_grain_settings(const struct granaryd_config *c, struct grain_settings *ret)
{
	struct grain_settings g = {
		.memory = GRAIN_DEFAULT_MEMORY,
		.pids = GRAIN_DEFAULT_PIDS,
		.cpu = GRAIN_DEFAULT_CPU,
		.tmp = GRAIN_DEFAULT_TMP,
		.start_timeout_ms = GRAIN_DEFAULT_START_TIMEOUT_MS,
		.log_max = GRAIN_DEFAULT_LOG_MAX,
		.idle_timeout_ms = GRAIN_DEFAULT_IDLE_TIMEOUT_MS,
	};
	int r = 0;

	/* Every value passed its check when it was set: these cannot fail on range. */
	if (c->grain_memory)
		r = parse_size(c->grain_memory, &g.memory);
	if (r >= 0 && c->grain_pids)
		r = parse_uint64(c->grain_pids, &g.pids);
	if (r >= 0 && c->grain_cpu)
		r = parse_cpus(c->grain_cpu, &g.cpu);
	if (r >= 0 && c->grain_tmp)
		r = parse_size(c->grain_tmp, &g.tmp);
	if (r >= 0 && c->grain_start_timeout)
		r = parse_duration_ms(c->grain_start_timeout, &g.start_timeout_ms);
	if (r >= 0 && c->grain_log_max)
		r = parse_size(c->grain_log_max, &g.log_max);
	if (r >= 0 && c->grain_idle_timeout)
		r = parse_duration_ms(c->grain_idle_timeout, &g.idle_timeout_ms);
	if (r >= 0 && c->allow_no_limits)
		r = parse_bool(c->allow_no_limits, &g.allow_no_limits);
	if (r < 0)
		return r;
	*ret = g;
	return 0;
}

int
base_url_parse(const char *base_url, char **ret_origin, char **ret_host, bool *ret_tls)
{
	_cleanup_free_ char *origin = NULL, *host = NULL;
	const char *rest, *slash;
	bool tls;

	if (strncmp(base_url, "http://", 7) == 0) {
		rest = base_url + 7;
		tls = false;
	} else if (strncmp(base_url, "https://", 8) == 0) {
		rest = base_url + 8;
		tls = true;
	} else
		return -EINVAL;
	slash = strchr(rest, '/');
	if (slash && slash[1] != '\0')
		return -EINVAL; /* the shell lives at the root of its host */
	size_t host_len = slash ? (size_t)(slash - rest) : strlen(rest);
	if (host_len == 0 || memchr(rest, '@', host_len))
		return -EINVAL;
	host = strndup(rest, host_len);
	origin = strndup(base_url, (size_t)(rest - base_url) + host_len);
	if (!host || !origin)
		return -ENOMEM;
	*ret_host = TAKE_PTR(host);
	*ret_origin = TAKE_PTR(origin);
	*ret_tls = tls;
	return 0;
}

int
wildcard_check(const char *wildcard)
{
	const char *host, *colon;
	size_t host_len, label = 0;
	uint16_t port;

	if (strncmp(wildcard, "*.", 2) != 0)
		return -EINVAL;
	host = wildcard + 2;
	colon = strchr(host, ':');
	host_len = colon ? (size_t)(colon - host) : strlen(host);
	if (colon && parse_port(colon + 1, false, &port) < 0)
		return -EINVAL;
	if (host_len == 0 || host_len > 253)
		return -EINVAL;
	/* Labels of 1-63 letters, digits and inner hyphens, joined by dots. */
	for (size_t i = 0; i <= host_len; i++) {
		char ch = i < host_len ? host[i] : '.';

		if (ch == '.') {
			if (label == 0 || label > 63 || host[i - 1] == '-')
				return -EINVAL;
			label = 0;
		} else if ((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
			   (ch >= '0' && ch <= '9') || (ch == '-' && label > 0))
			label++;
		else
			return -EINVAL;
	}
	return 0;
}

/* MHD's first message about a refused certificate (GnuTLS's reason), for our error. */
static void
tls_check_logger(void *userdata, const char *format, va_list ap)
{
	struct config_error *err = userdata;
	size_t len;

	if (err->message[0])
		return;
	(void)vsnprintf(err->message, sizeof(err->message), format, ap);
	/* "...do not match.\n" → "...do not match": it goes inside our sentence. */
	len = strlen(err->message);
	while (len > 0 && (err->message[len - 1] == '\n' || err->message[len - 1] == '.'))
		err->message[--len] = '\0';
}

static enum MHD_Result
tls_check_handler(void *cls, struct MHD_Connection *connection, const char *url, const char *method,
		  const char *version, const char *upload_data, size_t *upload_data_size,
		  void **req_cls)
{
	(void)cls, (void)connection, (void)url, (void)method, (void)version, (void)upload_data;
	(void)upload_data_size, (void)req_cls;
	return MHD_NO; /* never called: the daemon has no socket */
}

/*
 * Hand cert and key to a libmicrohttpd daemon that never listens, the same
 * call front makes, so a bad pair is refused here, as root and before
 * anything starts, with GnuTLS's reason, rather than by a front that would
 * be restarted forever.
 */
static int
tls_check(const char *cert, const char *key, struct config_error *err)
{
	struct MHD_Daemon *d;

	err->message[0] = '\0';
	/* clang-format off */
	d = MHD_start_daemon(MHD_USE_NO_LISTEN_SOCKET | MHD_USE_TLS | MHD_USE_ERROR_LOG, 0,
			     NULL, NULL, tls_check_handler, NULL,
			     MHD_OPTION_EXTERNAL_LOGGER, tls_check_logger, err,
			     MHD_OPTION_HTTPS_MEM_CERT, cert,
			     MHD_OPTION_HTTPS_MEM_KEY, key,
			     MHD_OPTION_END);
	/* clang-format on */
	if (!d)
		return -EINVAL;
	MHD_stop_daemon(d);
	return 0;
}

int
tls_load(const char *cert_path, const char *key_path, struct tls_files *ret,
	 struct config_error *err)
{
	_cleanup_(tls_files_release) struct tls_files t = {};
	struct config_error why;
	mode_t key_mode = 0;
	size_t cert_size;
	int r;

	if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES)
		return error_set(err,
				 "This libmicrohttpd was built without TLS: terminate TLS in a "
				 "proxy in front of granaryd instead"),
		       -EOPNOTSUPP;
	r = file_read(cert_path, TLS_CERT_MAX, &t.cert, &cert_size, NULL);
	if (r < 0)
		return error_set(err, "Cannot read the TLS certificate '%s' (tls_cert): %s",
				 cert_path, r == -E2BIG ? "larger than 256 KiB" : file_error(r)),
		       r;
	r = file_read(key_path, TLS_KEY_MAX, &t.key, &t.key_size, &key_mode);
	if (r < 0)
		return error_set(err, "Cannot read the TLS key '%s' (tls_key): %s", key_path,
				 r == -E2BIG ? "larger than 64 KiB" : file_error(r)),
		       r;
	if (cert_size == 0 || t.key_size == 0)
		return error_set(err, "The TLS %s '%s' is empty",
				 cert_size == 0 ? "certificate" : "key",
				 cert_size == 0 ? cert_path : key_path);
	r = tls_check(t.cert, t.key, &why);
	if (r < 0)
		return error_set(err,
				 "The TLS certificate '%s' and key '%s' were refused (%s): "
				 "expected PEM files, the certificate (chain) first, and the "
				 "private key that belongs to it",
				 cert_path, key_path,
				 why.message[0] ? why.message : "no reason given"),
		       r;
	if (key_mode & S_IROTH)
		log_warning("The TLS key '%s' is readable by every user: chmod 600 it, and make "
			    "a new key if others may have read it",
			    key_path);
	*ret = t;
	t = (struct tls_files){};
	return 0;
}

void
tls_files_release(struct tls_files *t)
{
	if (t->key)
		sodium_memzero(t->key, t->key_size);
	free(t->key);
	free(t->cert);
	*t = (struct tls_files){};
}
