/* SPDX-License-Identifier: MIT */
/*
 * test-spk-format.c: app ids (base32), keys, the keyring, the header, and
 * tampering: a byte flipped anywhere, every truncation, extension, garbage,
 * an empty file and a wrong key are all refused by spk_package_open(), so
 * nothing is ever unpacked from them.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>

#include "common/buf.h"
#include "common/token.h"
#include "common/dir.h"
#include "spk/spk-internal.h"
#include "tests/unit/tap.h"
#include "common/banned.h"

static char root[] = "/tmp/test-spk-format-XXXXXX";

__attribute__((constructor)) static void
setup(void)
{
	if (!mkdtemp(root))
		abort();
}

__attribute__((destructor)) static void
teardown(void)
{
	(void)remove_tree_at(AT_FDCWD, root, 10);
}

static void
seed_key(uint8_t byte, struct spk_key *ret)
{
	uint8_t seed[SPK_SEED_BYTES];

	memset(seed, byte, sizeof(seed));
	if (spk_key_from_seed(seed, ret) < 0)
		abort();
}

/* ---- app ids ------------------------------------------------------------------ */

TEST(app_id_known_values)
{
	uint8_t key[SPK_PUBLIC_KEY_BYTES], back[SPK_PUBLIC_KEY_BYTES];
	char id[SPK_APP_ID_LEN + 1];

	memset(key, 0, sizeof(key));
	spk_app_id_from_key(key, id);
	CHECK_STR_EQ(id, "0000000000000000000000000000000000000000000000000000");
	memset(key, 0xff, sizeof(key));
	spk_app_id_from_key(key, id);
	/* 255 one bits in 51 characters, then 1 bit and 4 zero bits: 10000 = 'g'. */
	CHECK_STR_EQ(id, "zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzg");
	CHECK_OK(spk_app_id_to_key(id, back));
	CHECK(memcmp(key, back, sizeof(key)) == 0);
	/* 0x00 0x44 0x32 0x14 0xc7 ...: bits 00000 00001 00010 00011 00100 ... */
	memset(key, 0, sizeof(key));
	key[0] = 0x00;
	key[1] = 0x44;
	key[2] = 0x32;
	key[3] = 0x14;
	key[4] = 0xc7;
	spk_app_id_from_key(key, id);
	CHECK(strncmp(id, "01234567", 8) == 0);
}

TEST(app_id_rfc8032_key)
{
	/* RFC 8032 section 7.1, test 1: the seed and the public key it gives. */
	static const uint8_t seed[32] = {
		0x9d, 0x61, 0xb1, 0x9d, 0xef, 0xfd, 0x5a, 0x60, 0xba, 0x84, 0x4a,
		0xf4, 0x92, 0xec, 0x2c, 0xc4, 0x44, 0x49, 0xc5, 0x69, 0x7b, 0x32,
		0x69, 0x19, 0x70, 0x3b, 0xac, 0x03, 0x1c, 0xae, 0x7f, 0x60,
	};
	static const uint8_t public_key[32] = {
		0xd7, 0x5a, 0x98, 0x01, 0x82, 0xb1, 0x0a, 0xb7, 0xd5, 0x4b, 0xfe,
		0xd3, 0xc9, 0x64, 0x07, 0x3a, 0x0e, 0xe1, 0x72, 0xf3, 0xda, 0xa6,
		0x23, 0x25, 0xaf, 0x02, 0x1a, 0x68, 0xf7, 0x07, 0x51, 0x1a,
	};
	struct spk_key key;
	char id[SPK_APP_ID_LEN + 1];
	uint8_t back[32];

	CHECK_OK(spk_key_from_seed(seed, &key));
	CHECK(memcmp(key.public_key, public_key, 32) == 0);
	spk_app_id_from_key(key.public_key, id);
	CHECK_UINT_EQ(strlen(id), SPK_APP_ID_LEN);
	CHECK_OK(spk_app_id_to_key(id, back));
	CHECK(memcmp(back, public_key, 32) == 0);
	spk_key_wipe(&key);
}

TEST(app_id_refuses_non_canonical_text)
{
	uint8_t key[SPK_PUBLIC_KEY_BYTES];
	char id[SPK_APP_ID_LEN + 2];
	static const char *const bad[] = {
		"",
		"000000000000000000000000000000000000000000000000000",	 /* 51 */
		"00000000000000000000000000000000000000000000000000000", /* 53 */
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzh",	 /* pad bits set */
		"zzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzzz1",
		"000000000000000000000000000000000000000000000000000A", /* upper case */
		"000000000000000000000000000000000000000000000000000i",
		"000000000000000000000000000000000000000000000000000l",
		"000000000000000000000000000000000000000000000000000o",
		"000000000000000000000000000000000000000000000000000u",
		"00000000000000000000000000000000000000000000000000 0",
	};

	for (size_t i = 0; i < ELEMENTSOF(bad); i++)
		if (!CHECK_ERR(spk_app_id_to_key(bad[i], key), EINVAL))
			printf("#   accepted '%s'\n", bad[i]);
	CHECK_ERR(spk_app_id_to_key(NULL, key), EINVAL);
	CHECK(!spk_app_id_is_valid("x"));
	memset(id, '0', SPK_APP_ID_LEN);
	id[SPK_APP_ID_LEN] = '\0';
	CHECK(spk_app_id_is_valid(id));
}

TEST(app_id_round_trip_random_keys)
{
	for (int i = 0; i < 1000; i++) {
		uint8_t key[SPK_PUBLIC_KEY_BYTES], back[SPK_PUBLIC_KEY_BYTES];
		char id[SPK_APP_ID_LEN + 1];

		CHECK_OK(random_bytes(key, sizeof(key)));
		spk_app_id_from_key(key, id);
		if (!CHECK_OK(spk_app_id_to_key(id, back)) ||
		    !CHECK(memcmp(key, back, sizeof(key)) == 0))
			break;
	}
}

/* ---- the keyring -------------------------------------------------------------------- */

static void
keyring_file(const char *name, char *ret, size_t size)
{
	(void)snprintf(ret, size, "%s/%s", root, name);
}

TEST(keyring_add_and_find)
{
	struct spk_key a, b, found;
	char path[256], id_a[SPK_APP_ID_LEN + 1], id_b[SPK_APP_ID_LEN + 1];
	struct spk_error err = {};
	struct stat st;

	keyring_file("keyring-1", path, sizeof(path));
	CHECK_OK(spk_key_generate(&a));
	CHECK_OK(spk_key_generate(&b));
	spk_app_id_from_key(a.public_key, id_a);
	spk_app_id_from_key(b.public_key, id_b);
	CHECK_ERR(spk_keyring_find(path, id_a, &found, &err), ENOKEY);
	CHECK(strstr(err.message, "spk keygen"));
	CHECK_OK(spk_keyring_add(path, &a, &err));
	CHECK(stat(path, &st) == 0);
	CHECK_UINT_EQ(st.st_mode & 07777, 0600);
	CHECK_OK(spk_keyring_add(path, &b, &err));
	CHECK_OK(spk_keyring_find(path, id_a, &found, &err));
	CHECK(memcmp(found.secret_key, a.secret_key, SPK_SECRET_KEY_BYTES) == 0);
	CHECK_OK(spk_keyring_find(path, id_b, &found, &err));
	CHECK(memcmp(found.public_key, b.public_key, SPK_PUBLIC_KEY_BYTES) == 0);
	CHECK_ERR(spk_keyring_find(path, "0000000000000000000000000000000000000000000000000000",
				   &found, &err),
		  ENOKEY);
	CHECK(strstr(err.message, "has no key for app id"));
	spk_key_wipe(&found);
}

TEST(keyring_readable_by_others_is_refused)
{
	struct spk_key key, found;
	char path[256], id[SPK_APP_ID_LEN + 1];
	struct spk_error err = {};

	keyring_file("keyring-2", path, sizeof(path));
	CHECK_OK(spk_key_generate(&key));
	spk_app_id_from_key(key.public_key, id);
	CHECK_OK(spk_keyring_add(path, &key, &err));
	CHECK(chmod(path, 0644) == 0);
	CHECK_ERR(spk_keyring_find(path, id, &found, &err), EPERM);
	CHECK(strstr(err.message, "chmod 600"));
	CHECK_ERR(spk_keyring_add(path, &key, &err), EPERM);
	CHECK(chmod(path, 0640) == 0);
	CHECK_ERR(spk_keyring_find(path, id, &found, &err), EPERM);
	CHECK(chmod(path, 0600) == 0);
	CHECK_OK(spk_keyring_find(path, id, &found, &err));
}

TEST(keyring_symlink_and_directory_are_refused)
{
	struct spk_key key, found;
	char path[256], link[256], id[SPK_APP_ID_LEN + 1];
	struct spk_error err = {};

	keyring_file("keyring-3", path, sizeof(path));
	keyring_file("keyring-3-link", link, sizeof(link));
	CHECK_OK(spk_key_generate(&key));
	spk_app_id_from_key(key.public_key, id);
	CHECK_OK(spk_keyring_add(path, &key, &err));
	CHECK(symlink(path, link) == 0);
	CHECK_ERR(spk_keyring_find(link, id, &found, &err), ELOOP);
	CHECK_ERR(spk_keyring_add(link, &key, &err), ELOOP);
	CHECK_ERR(spk_keyring_find(root, id, &found, &err), EPERM);
}

static void
write_text(const char *path, const char *text, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, mode);

	if (fd < 0 || write(fd, text, strlen(text)) != (ssize_t)strlen(text) ||
	    fchmod(fd, mode) < 0)
		abort();
	(void)close(fd);
}

TEST(keyring_damage_is_reported)
{
	struct spk_key key, found;
	char path[256], id[SPK_APP_ID_LEN + 1], text[512], seed_hex[65];
	struct spk_error err = {};

	keyring_file("keyring-4", path, sizeof(path));
	seed_key(7, &key);
	spk_app_id_from_key(key.public_key, id);
	(void)hex_encode(seed_hex, key.secret_key, 32);

	(void)snprintf(text, sizeof(text), "# comment\n\n%s %s\n", id, seed_hex);
	write_text(path, text, 0600);
	CHECK_OK(spk_keyring_find(path, id, &found, &err));

	/* A seed that does not give its app id: damage, not a silent wrong key. */
	seed_hex[0] = seed_hex[0] == '0' ? '1' : '0';
	(void)snprintf(text, sizeof(text), "%s %s\n", id, seed_hex);
	write_text(path, text, 0600);
	CHECK_ERR(spk_keyring_find(path, id, &found, &err), EBADMSG);
	CHECK(strstr(err.message, "line 1 is damaged"));

	write_text(path, "# ok\nnot a key line\n", 0600);
	CHECK_ERR(spk_keyring_find(path, id, &found, &err), EBADMSG);
	CHECK(strstr(err.message, "line 2"));

	(void)hex_encode(seed_hex, key.secret_key, 32);
	seed_hex[10] = 'G';
	(void)snprintf(text, sizeof(text), "%s %s\n", id, seed_hex);
	write_text(path, text, 0600);
	CHECK_ERR(spk_keyring_find(path, id, &found, &err), EBADMSG);
}

TEST(keyring_default_path)
{
	_cleanup_free_ char *p = NULL;

	CHECK(setenv("GRANARY_KEYRING", "/x/keyring", 1) == 0);
	CHECK_OK(spk_keyring_default_path(&p));
	CHECK_STR_EQ(p, "/x/keyring");
	free(TAKE_PTR(p));
	CHECK(unsetenv("GRANARY_KEYRING") == 0);
	CHECK(setenv("XDG_CONFIG_HOME", "/cfg", 1) == 0);
	CHECK_OK(spk_keyring_default_path(&p));
	CHECK_STR_EQ(p, "/cfg/granary/spk.keyring");
	free(TAKE_PTR(p));
	CHECK(unsetenv("XDG_CONFIG_HOME") == 0);
	CHECK(setenv("HOME", "/home/u", 1) == 0);
	CHECK_OK(spk_keyring_default_path(&p));
	CHECK_STR_EQ(p, "/home/u/.config/granary/spk.keyring");
	CHECK(unsetenv("HOME") == 0);
	free(TAKE_PTR(p));
	CHECK_ERR(spk_keyring_default_path(&p), ENOENT);
}

/* ---- the header ---------------------------------------------------------------------- */

TEST(header_round_trip_and_layout)
{
	struct spk_header h = { .format_version = 1, .payload_size = 0x0102030405060708ULL }, d;
	uint8_t raw[SPK_HEADER_SIZE];
	struct spk_key key;
	uint8_t hash[SPK_PAYLOAD_HASH_BYTES] = { 1, 2, 3 };

	seed_key(1, &key);
	CHECK_OK(spk_header_sign(&h, &key, hash));
	spk_header_encode(&h, raw);
	CHECK(memcmp(raw, "\x89SPK\r\n\x1a\n", 8) == 0);
	CHECK(memcmp(raw + 8, "\x01\x00\x00\x00", 4) == 0);
	CHECK(memcmp(raw + 12, "\x00\x00\x00\x00", 4) == 0);
	CHECK(memcmp(raw + 16, "\x08\x07\x06\x05\x04\x03\x02\x01", 8) == 0);
	CHECK(memcmp(raw + 24, "\0\0\0\0\0\0\0\0", 8) == 0);
	CHECK(memcmp(raw + 32, key.public_key, 32) == 0);
	CHECK_OK(spk_header_decode(raw, &d, NULL));
	CHECK_OK(spk_header_verify(&d, hash));
	hash[0] ^= 1;
	CHECK_ERR(spk_header_verify(&d, hash), EBADMSG);
}

TEST(header_fields_are_checked)
{
	struct spk_header h = { .format_version = 1, .payload_size = 10 }, d;
	uint8_t raw[SPK_HEADER_SIZE];
	struct spk_error err = {};

	spk_header_encode(&h, raw);
	CHECK_OK(spk_header_decode(raw, &d, &err));
	raw[0] = 'P';
	CHECK_ERR(spk_header_decode(raw, &d, &err), EBADMSG);
	CHECK(strstr(err.message, "magic"));
	spk_header_encode(&h, raw);
	raw[8] = 2;
	CHECK_ERR(spk_header_decode(raw, &d, &err), EPROTONOSUPPORT);
	CHECK(strstr(err.message, "version 2 is not supported"));
	spk_header_encode(&h, raw);
	raw[13] = 1;
	CHECK_ERR(spk_header_decode(raw, &d, &err), EBADMSG);
	spk_header_encode(&h, raw);
	raw[30] = 1;
	CHECK_ERR(spk_header_decode(raw, &d, &err), EBADMSG);
	h.payload_size = 0;
	spk_header_encode(&h, raw);
	CHECK_ERR(spk_header_decode(raw, &d, &err), EBADMSG);
}

/* ---- a real little package and what tampering does to it --------------------------------- */

static la_ssize_t
append(struct archive *a, void *userdata, const void *data, size_t size)
{
	(void)a;
	return buf_append(userdata, data, size) < 0 ? -1 : (la_ssize_t)size;
}

/* A valid payload (tar.zst with a manifest for key) and the package around it. */
static void
make_package(const struct spk_key *key, struct buf *ret)
{
	_cleanup_(buf_release) struct buf payload = BUF_INIT;
	struct archive *a = archive_write_new();
	struct archive_entry *e = archive_entry_new();
	char id[SPK_APP_ID_LEN + 1], manifest[512];
	int n, fd;
	struct stat st;

	spk_app_id_from_key(key->public_key, id);
	n = snprintf(manifest, sizeof(manifest),
		     "{\"app\":{\"id\":\"%s\",\"title\":\"T\",\"version\":1},"
		     "\"run\":{\"command\":[\"/a\"],\"httpPort\":80}}",
		     id);
	if (archive_write_add_filter_zstd(a) != ARCHIVE_OK ||
	    archive_write_set_format_pax_restricted(a) != ARCHIVE_OK ||
	    archive_write_set_bytes_in_last_block(a, 1) != ARCHIVE_OK ||
	    archive_write_open2(a, &payload, NULL, append, NULL, NULL) != ARCHIVE_OK)
		abort();
	archive_entry_copy_pathname(e, SPK_MANIFEST_NAME);
	archive_entry_set_filetype(e, AE_IFREG);
	archive_entry_set_perm(e, 0644);
	archive_entry_set_size(e, n);
	if (archive_write_header(a, e) != ARCHIVE_OK ||
	    archive_write_data(a, manifest, (size_t)n) != n || archive_write_close(a) != ARCHIVE_OK)
		abort();
	archive_entry_free(e);
	(void)archive_write_free(a);

	fd = memfd_create("package", MFD_CLOEXEC);
	if (fd < 0 || spk_write_signed(fd, key, payload.data, payload.len) < 0 ||
	    fstat(fd, &st) < 0)
		abort();
	buf_clear(ret);
	if (buf_reserve(ret, (size_t)st.st_size) < 0 ||
	    pread(fd, ret->data, (size_t)st.st_size, 0) != st.st_size)
		abort();
	ret->len = (size_t)st.st_size;
	(void)close(fd);
}

/* Open these bytes as a package; returns spk_package_open_fd()'s result. */
static int
open_bytes(const void *data, size_t size, struct spk_error *err, char ret_package_id[65])
{
	struct spk_package *p = NULL;
	int fd = memfd_create("package", MFD_CLOEXEC), r;

	if (fd < 0 || (size > 0 && write(fd, data, size) != (ssize_t)size))
		abort();
	r = spk_package_open_fd(fd, NULL, NULL, NULL, &p, err);
	/* On failure there is no package to unpack: nothing can be. */
	if (r < 0)
		CHECK(p == NULL);
	else if (ret_package_id)
		memcpy(ret_package_id, spk_package_info(p)->package_id, 65);
	(void)close(fd);
	p = spk_package_free(p);
	return r;
}

TEST(intact_package_opens_with_ids)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_package *p = NULL;
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	struct spk_error err = {};
	struct spk_key key;
	char id[SPK_APP_ID_LEN + 1], hex[65];
	uint8_t hash[32];
	int fd;

	seed_key(3, &key);
	make_package(&key, &pkg);
	fd = memfd_create("package", MFD_CLOEXEC);
	CHECK(write(fd, pkg.data, pkg.len) == (ssize_t)pkg.len);
	CHECK_OK(spk_package_open_fd(fd, NULL, NULL, NULL, &p, &err));
	spk_app_id_from_key(key.public_key, id);
	CHECK_STR_EQ(spk_package_info(p)->app_id, id);
	/* The package id is BLAKE2b-256 of the whole file (b2sum -l 256). */
	crypto_generichash(hash, sizeof(hash), (const uint8_t *)pkg.data, pkg.len, NULL, 0);
	CHECK_STR_EQ(spk_package_info(p)->package_id, hex_encode(hex, hash, sizeof(hash)));
	CHECK_UINT_EQ(spk_package_info(p)->file_size, pkg.len);
	CHECK_UINT_EQ(spk_package_info(p)->payload_size, pkg.len - SPK_HEADER_SIZE);
	CHECK_UINT_EQ(spk_package_info(p)->format_version, 1);
	CHECK_OK(spk_package_read_manifest(p, &m, &err));
	CHECK_STR_EQ(m->app_id, id);
	(void)close(fd);
	p = spk_package_free(p);
}

TEST(every_byte_flip_is_refused)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_error err;
	struct spk_key key;
	size_t refused = 0;

	seed_key(4, &key);
	make_package(&key, &pkg);
	CHECK_OK(open_bytes(pkg.data, pkg.len, &err, NULL));
	for (size_t i = 0; i < pkg.len; i++)
		for (unsigned bit = 0; bit < 8; bit += 7) {
			pkg.data[i] ^= (char)(1u << bit);
			if (open_bytes(pkg.data, pkg.len, &err, NULL) < 0)
				refused++;
			else
				printf("#   flipping bit %u of byte %zu went unnoticed\n", bit, i);
			pkg.data[i] ^= (char)(1u << bit);
		}
	CHECK_UINT_EQ(refused, 2 * pkg.len);
}

TEST(every_truncation_is_refused)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_error err;
	struct spk_key key;
	size_t refused = 0;

	seed_key(5, &key);
	make_package(&key, &pkg);
	for (size_t len = 0; len < pkg.len; len++)
		if (open_bytes(pkg.data, len, &err, NULL) < 0)
			refused++;
	CHECK_UINT_EQ(refused, pkg.len);
	CHECK_ERR(open_bytes(pkg.data, 0, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "empty file"));
	CHECK_ERR(open_bytes(pkg.data, 100, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "shorter than the 128-byte header"));
	CHECK_ERR(open_bytes(pkg.data, pkg.len - 1, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "truncated"));
}

TEST(extension_is_refused)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_error err;
	struct spk_key key;

	seed_key(6, &key);
	make_package(&key, &pkg);
	CHECK_OK(buf_append(&pkg, "\0", 1));
	CHECK_ERR(open_bytes(pkg.data, pkg.len, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "extended"));
	for (int i = 0; i < 1000; i++)
		CHECK_OK(buf_append(&pkg, "x", 1));
	CHECK_ERR(open_bytes(pkg.data, pkg.len, &err, NULL), EBADMSG);
}

TEST(garbage_is_refused)
{
	static const size_t sizes[] = { 1, 8, 127, 128, 129, 1000, 100000 };
	struct spk_error err;

	for (size_t i = 0; i < ELEMENTSOF(sizes); i++) {
		_cleanup_free_ uint8_t *data = malloc(sizes[i]);

		CHECK_OK(random_bytes(data, sizes[i]));
		CHECK_ERR(open_bytes(data, sizes[i], &err, NULL), EBADMSG);
		/* The right magic and version, then garbage: the signature decides. */
		if (sizes[i] >= SPK_HEADER_SIZE) {
			struct spk_header h = { .format_version = 1,
						.payload_size = sizes[i] - SPK_HEADER_SIZE };

			if (h.payload_size == 0)
				continue;
			spk_header_encode(&h, data);
			memset(data + 64, 0x5a, 64);
			CHECK_ERR(open_bytes(data, sizes[i], &err, NULL), EBADMSG);
			CHECK(strstr(err.message, "bad signature"));
		}
	}
}

TEST(wrong_key_is_refused)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_error err;
	struct spk_key key, other;

	/* Another key in the header: the signature no longer matches. */
	seed_key(8, &key);
	seed_key(9, &other);
	make_package(&key, &pkg);
	memcpy(pkg.data + 32, other.public_key, SPK_PUBLIC_KEY_BYTES);
	CHECK_ERR(open_bytes(pkg.data, pkg.len, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "bad signature"));
	/* A small-order public key (all zero) is refused too. */
	memset(pkg.data + 32, 0, SPK_PUBLIC_KEY_BYTES);
	CHECK_ERR(open_bytes(pkg.data, pkg.len, &err, NULL), EBADMSG);
}

TEST(unsigned_package_is_refused)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_error err;
	struct spk_key key;

	seed_key(10, &key);
	make_package(&key, &pkg);
	memset(pkg.data + 64, 0, 64);
	CHECK_ERR(open_bytes(pkg.data, pkg.len, &err, NULL), EBADMSG);
	CHECK(strstr(err.message, "bad signature"));
}

TEST(file_size_limit_and_file_types)
{
	_cleanup_(buf_release) struct buf pkg = BUF_INIT;
	struct spk_package *p = NULL;
	struct spk_limits limits = { .max_file_bytes = 64 };
	struct spk_error err = {};
	struct spk_key key;
	char fifo[256];
	int fd;

	seed_key(11, &key);
	make_package(&key, &pkg);
	fd = memfd_create("package", MFD_CLOEXEC);
	CHECK(write(fd, pkg.data, pkg.len) == (ssize_t)pkg.len);
	CHECK_ERR(spk_package_open_fd(fd, &limits, NULL, NULL, &p, &err), E2BIG);
	(void)close(fd);
	CHECK_ERR(spk_package_open(root, NULL, NULL, NULL, &p, &err), EBADMSG);
	CHECK(strstr(err.message, "not a regular file"));
	(void)snprintf(fifo, sizeof(fifo), "%s/fifo", root);
	CHECK(mkfifo(fifo, 0600) == 0);
	/* A FIFO must not block the open. */
	CHECK_ERR(spk_package_open(fifo, NULL, NULL, NULL, &p, &err), EBADMSG);
	CHECK_ERR(spk_package_open("/nonexistent/x.spk", NULL, NULL, NULL, &p, &err), ENOENT);
	CHECK(p == NULL);
}

/* ---- path rules and tree order ------------------------------------------------------------- */

TEST(tree_order)
{
	CHECK(spk_path_compare("a", "a/b") < 0);
	CHECK(spk_path_compare("a/b", "a-b") < 0); /* '/' before every other byte */
	CHECK(spk_path_compare("a/b", "a/b") == 0);
	CHECK(spk_path_compare("a/z", "aa") < 0);
	CHECK(spk_path_compare("b", "a/z") > 0);
	CHECK(spk_path_compare("", "a") < 0);
	CHECK(spk_path_compare("caf\xc3\xa9", "cafe") > 0); /* bytes, unsigned */
}

TEST(path_check)
{
	struct spk_limits limits;
	struct spk_error err;
	size_t depth, parent;

	spk_limits_resolve(NULL, &limits);
	CHECK_OK(spk_path_check("a/bc/d", 6, &limits, &depth, &parent, &err));
	CHECK_UINT_EQ(depth, 3);
	CHECK_UINT_EQ(parent, 4);
	CHECK_OK(spk_path_check("x", 1, &limits, &depth, &parent, &err));
	CHECK_UINT_EQ(parent, 0);
	CHECK_OK(spk_path_check("...", 3, &limits, NULL, NULL, &err));
	CHECK_OK(spk_path_check(".hidden/..x", 11, &limits, NULL, NULL, &err));
	CHECK_ERR(spk_path_check("a\0b", 3, &limits, NULL, NULL, &err), EBADMSG);
	CHECK_ERR(spk_path_check("/a", 2, &limits, NULL, NULL, &err), EBADMSG);
	CHECK_ERR(spk_path_check("a/", 2, &limits, NULL, NULL, &err), EBADMSG);
	CHECK_ERR(spk_path_check("", 0, &limits, NULL, NULL, &err), EBADMSG);
	CHECK(spk_utf8_valid("\xf4\x8f\xbf\xbf", 4));  /* U+10FFFF */
	CHECK(!spk_utf8_valid("\xf4\x90\x80\x80", 4)); /* past Unicode */
	CHECK(!spk_utf8_valid("\xe0\x80\x80", 3));     /* overlong */
	CHECK(!spk_utf8_valid("\x80", 1));
	CHECK(!spk_utf8_valid("\xc3", 1));
}
