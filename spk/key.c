/* SPDX-License-Identifier: MIT */
/*
 * key.c: signing keys, app ids and the keyring file.
 *
 * An app's identity is its Ed25519 key: the app id is the public key in
 * base32, and only the holder of the secret key can sign a package for it.
 * The keyring is a text file (mode 0600) with one key per line:
 *
 *	# comment
 *	<52-character app id> <64 hex digits: the 32-byte secret seed>
 *
 * The app id is redundant with the seed on purpose: it makes a keyring
 * greppable, and a line whose seed does not give its app id is damage we
 * report instead of signing with the wrong key.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/buf.h"
#include "common/token.h"
#include "spk/spk-internal.h"
#include "common/banned.h"

#define KEYRING_MAX (1024 * 1024)
#define KEYRING_FIRST                                                                              \
	"# Granary spk keyring: the secret keys that sign your packages.\n"                        \
	"# Keep it private (mode 0600) and backed up: a lost key means a new app id.\n"

int
spk_key_from_seed(const uint8_t seed[SPK_SEED_BYTES], struct spk_key *ret)
{
	int r;

	r = crypto_setup();
	if (r < 0)
		return r;
	if (crypto_sign_seed_keypair(ret->public_key, ret->secret_key, seed) != 0)
		return -EIO;
	return 0;
}

int
spk_key_generate(struct spk_key *ret)
{
	uint8_t seed[SPK_SEED_BYTES];
	int r;

	r = random_bytes(seed, sizeof(seed));
	if (r < 0)
		return r;
	r = spk_key_from_seed(seed, ret);
	sodium_memzero(seed, sizeof(seed));
	return r;
}

void
spk_key_wipe(struct spk_key *key)
{
	sodium_memzero(key, sizeof(*key));
}

void
spk_app_id_from_key(const uint8_t public_key[SPK_PUBLIC_KEY_BYTES], char ret[SPK_APP_ID_LEN + 1])
{
	spk_base32_encode(public_key, SPK_PUBLIC_KEY_BYTES, ret);
}

int
spk_app_id_to_key(const char *s, uint8_t ret[SPK_PUBLIC_KEY_BYTES])
{
	if (!s)
		return -EINVAL;
	return spk_base32_decode(s, strlen(s), ret, SPK_PUBLIC_KEY_BYTES);
}

bool
spk_app_id_is_valid(const char *s)
{
	uint8_t key[SPK_PUBLIC_KEY_BYTES];

	return spk_app_id_to_key(s, key) == 0;
}

int
spk_keyring_default_path(char **ret)
{
	const char *env = getenv("GRANARY_KEYRING"), *config, *home;
	char *p;

	if (env && *env)
		p = strdup(env);
	else if ((config = getenv("XDG_CONFIG_HOME")) && *config == '/') {
		if (asprintf(&p, "%s/granary/spk.keyring", config) < 0)
			p = NULL;
	} else if ((home = getenv("HOME")) && *home == '/') {
		if (asprintf(&p, "%s/.config/granary/spk.keyring", home) < 0)
			p = NULL;
	} else
		return -ENOENT;
	if (!p)
		return -ENOMEM;
	*ret = p;
	return 0;
}

/* Refuse what is not a private regular file: a keyring others can read is a leaked key. */
static int
check_private(int fd, const char *path, struct spk_error *err)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat keyring '%s': %s", path,
				     strerror(errno));
	if (!S_ISREG(st.st_mode))
		return spk_error_set(err, EPERM, "keyring '%s' is not a regular file", path);
	if (st.st_mode & 077)
		return spk_error_set(
			err, EPERM,
			"keyring '%s' is accessible by other users (mode %04o): run "
			"chmod 600 '%s', and make a new key if others may have read it",
			path, (unsigned)(st.st_mode & 07777), path);
	return 0;
}

/* A new keyring's name must survive a crash too: sync the directory holding it. */
static int
sync_directory_of(const char *path, struct spk_error *err)
{
	_cleanup_free_ char *copy = strdup(path);
	_cleanup_close_ int fd = -EBADF;
	char *slash;

	if (!copy)
		return spk_error_set(err, ENOMEM, "out of memory");
	slash = strrchr(copy, '/');
	if (slash)
		slash[slash == copy ? 1 : 0] = '\0';
	fd = open(slash ? copy : ".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0 || fsync(fd) < 0)
		return spk_error_set(err, errno, "cannot sync the directory of keyring '%s': %s",
				     path, strerror(errno));
	return 0;
}

int
spk_keyring_add(const char *path, const struct spk_key *key, struct spk_error *err)
{
	_cleanup_close_ int fd = -EBADF;
	char app_id[SPK_APP_ID_LEN + 1], seed_hex[SPK_SEED_BYTES * 2 + 1];
	char line[SPK_APP_ID_LEN + 1 + sizeof(seed_hex) + 1];
	struct stat st;
	int r, n;

	fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY, 0600);
	if (fd < 0)
		return spk_error_set(err, errno, "cannot open keyring '%s': %s", path,
				     strerror(errno));
	r = check_private(fd, path, err);
	if (r < 0)
		return r;
	if (fstat(fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat keyring '%s': %s", path,
				     strerror(errno));
	if (st.st_size == 0 && write(fd, KEYRING_FIRST, strlen(KEYRING_FIRST)) < 0)
		return spk_error_set(err, errno, "cannot write keyring '%s': %s", path,
				     strerror(errno));

	spk_app_id_from_key(key->public_key, app_id);
	(void)hex_encode(seed_hex, key->secret_key, SPK_SEED_BYTES);
	n = snprintf(line, sizeof(line), "%s %s\n", app_id, seed_hex);
	sodium_memzero(seed_hex, sizeof(seed_hex));
	/* One write with O_APPEND: a concurrent keygen cannot interleave inside a line. */
	if (write(fd, line, (size_t)n) != n)
		r = spk_error_set(err, errno ? errno : EIO, "cannot write keyring '%s': %s", path,
				  strerror(errno ? errno : EIO));
	else if (fsync(fd) < 0)
		r = spk_error_set(err, errno, "cannot sync keyring '%s': %s", path,
				  strerror(errno));
	else if (st.st_size == 0)
		r = sync_directory_of(path, err);
	sodium_memzero(line, sizeof(line));
	return r;
}

static int
hex_value(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

/* Parse one keyring line (not NUL-terminated) into *ret; 0 or -EBADMSG. */
static int
parse_line(const char *line, size_t len, char ret_app_id[SPK_APP_ID_LEN + 1], struct spk_key *ret)
{
	uint8_t seed[SPK_SEED_BYTES];
	char derived[SPK_APP_ID_LEN + 1];
	int r;

	if (len != SPK_APP_ID_LEN + 1 + 2 * SPK_SEED_BYTES || line[SPK_APP_ID_LEN] != ' ')
		return -EBADMSG;
	memcpy(ret_app_id, line, SPK_APP_ID_LEN);
	ret_app_id[SPK_APP_ID_LEN] = '\0';
	for (size_t i = 0; i < SPK_SEED_BYTES; i++) {
		int hi = hex_value(line[SPK_APP_ID_LEN + 1 + 2 * i]);
		int lo = hex_value(line[SPK_APP_ID_LEN + 2 + 2 * i]);

		if (hi < 0 || lo < 0) {
			sodium_memzero(seed, sizeof(seed));
			return -EBADMSG;
		}
		seed[i] = (uint8_t)(hi << 4 | lo);
	}
	r = spk_key_from_seed(seed, ret);
	sodium_memzero(seed, sizeof(seed));
	if (r < 0)
		return r;
	spk_app_id_from_key(ret->public_key, derived);
	if (strcmp(derived, ret_app_id) != 0) {
		spk_key_wipe(ret);
		return -EBADMSG;
	}
	return 0;
}

static void
wipe_buf(struct buf *b)
{
	if (b->data)
		sodium_memzero(b->data, b->cap);
	buf_release(b);
}

int
spk_keyring_find(const char *path, const char *app_id, struct spk_key *ret, struct spk_error *err)
{
	_cleanup_(wipe_buf) struct buf text = BUF_INIT_LIMIT(KEYRING_MAX);
	_cleanup_close_ int fd = -EBADF;
	size_t start = 0, line_no = 0;
	struct stat st;
	int r;

	fd = open(path, O_RDONLY | O_NOFOLLOW | O_CLOEXEC | O_NOCTTY);
	if (fd < 0) {
		if (errno == ENOENT)
			return spk_error_set(err, ENOKEY,
					     "no keyring at '%s': make a key with 'spk keygen' or "
					     "name your keyring with --keyring FILE",
					     path);
		return spk_error_set(err, errno, "cannot open keyring '%s': %s", path,
				     strerror(errno));
	}
	r = check_private(fd, path, err);
	if (r < 0)
		return r;
	/* Room for the whole file at once: growing would leave copies of secrets behind. */
	if (fstat(fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat keyring '%s': %s", path,
				     strerror(errno));
	if (st.st_size > KEYRING_MAX || buf_reserve(&text, (size_t)st.st_size + 1) < 0)
		return spk_error_set(err, EBADMSG, "keyring '%s' is larger than %d bytes", path,
				     KEYRING_MAX);
	for (;;) {
		ssize_t n;

		r = buf_reserve(&text, 1);
		if (r < 0)
			return spk_error_set(err, EBADMSG, "keyring '%s' is larger than %d bytes",
					     path, KEYRING_MAX);
		n = read(fd, text.data + text.len, text.cap - text.len - 1);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return spk_error_set(err, errno, "cannot read keyring '%s': %s", path,
					     strerror(errno));
		}
		if (n == 0)
			break;
		text.len += (size_t)n;
		text.data[text.len] = '\0';
	}

	while (start < text.len) {
		const char *line = text.data + start;
		const char *nl = memchr(line, '\n', text.len - start);
		size_t len = nl ? (size_t)(nl - line) : text.len - start;
		char line_app_id[SPK_APP_ID_LEN + 1];
		struct spk_key key;

		start += len + 1;
		line_no++;
		if (len == 0 || line[0] == '#')
			continue;
		r = parse_line(line, len, line_app_id, &key);
		if (r < 0)
			return spk_error_set(err, EBADMSG,
					     "keyring '%s' line %zu is damaged: expected '<app id> "
					     "<64 hex digits>' with a seed that gives that app id",
					     path, line_no);
		if (strcmp(line_app_id, app_id) == 0) {
			*ret = key;
			spk_key_wipe(&key);
			return 0;
		}
		spk_key_wipe(&key);
	}
	return spk_error_set(
		err, ENOKEY,
		"keyring '%s' has no key for app id %s: use the keyring that made this "
		"app's spk.json (--keyring FILE)",
		path, app_id);
}
