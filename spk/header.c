/* SPDX-License-Identifier: MIT */
/*
 * header.c: the 128-byte header of an spk (layout in spk-internal.h and
 * docs/spk-format.md) and the writer that signs a payload as it streams by.
 *
 * What is signed: the first 64 header bytes (magic, version, flags, payload
 * size, reserved, public key) followed by BLAKE2b-512 of the payload. The
 * magic at the start of the signed bytes separates this use of the key from
 * any other; the size in them makes truncation a signature failure too.
 */
#include <endian.h>
#include <errno.h>
#include <string.h>
#include <unistd.h>

#include "common/token.h"
#include "spk/spk-internal.h"
#include "common/banned.h"

static void
put_le32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, sizeof(v));
}

static void
put_le64(uint8_t *p, uint64_t v)
{
	v = htole64(v);
	memcpy(p, &v, sizeof(v));
}

static uint32_t
get_le32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return le32toh(v);
}

static uint64_t
get_le64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return le64toh(v);
}

void
spk_header_encode(const struct spk_header *h, uint8_t raw[SPK_HEADER_SIZE])
{
	memset(raw, 0, SPK_HEADER_SIZE);
	memcpy(raw, SPK_MAGIC, SPK_MAGIC_SIZE);
	put_le32(raw + 8, h->format_version);
	put_le32(raw + 12, h->flags);
	put_le64(raw + 16, h->payload_size);
	/* 24..31 reserved, zero */
	memcpy(raw + 32, h->public_key, SPK_PUBLIC_KEY_BYTES);
	memcpy(raw + 64, h->signature, crypto_sign_BYTES);
}

int
spk_header_decode(const uint8_t raw[SPK_HEADER_SIZE], struct spk_header *ret, struct spk_error *err)
{
	struct spk_header h = {};

	if (memcmp(raw, SPK_MAGIC, SPK_MAGIC_SIZE) != 0)
		return spk_error_set(err, EBADMSG, "not an spk package (wrong magic bytes)");
	h.format_version = get_le32(raw + 8);
	if (h.format_version != SPK_FORMAT_VERSION)
		return spk_error_set(err, EPROTONOSUPPORT,
				     "package format version %u is not supported (this spk reads "
				     "version %u): update Granary, or repack the app with this spk",
				     h.format_version, SPK_FORMAT_VERSION);
	h.flags = get_le32(raw + 12);
	if (h.flags != 0)
		return spk_error_set(err, EBADMSG, "damaged package: unknown header flags 0x%x",
				     h.flags);
	h.payload_size = get_le64(raw + 16);
	if (h.payload_size == 0)
		return spk_error_set(err, EBADMSG, "damaged package: empty payload");
	if (get_le64(raw + 24) != 0)
		return spk_error_set(err, EBADMSG,
				     "damaged package: reserved header bytes are set");
	memcpy(h.public_key, raw + 32, SPK_PUBLIC_KEY_BYTES);
	memcpy(h.signature, raw + 64, crypto_sign_BYTES);
	*ret = h;
	return 0;
}

/* The 128 bytes the signature covers. */
static void
signed_message(const struct spk_header *h, const uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES],
	       uint8_t ret[SPK_SIGNED_HEADER_SIZE + SPK_PAYLOAD_HASH_BYTES])
{
	uint8_t raw[SPK_HEADER_SIZE];

	spk_header_encode(h, raw);
	memcpy(ret, raw, SPK_SIGNED_HEADER_SIZE);
	memcpy(ret + SPK_SIGNED_HEADER_SIZE, payload_hash, SPK_PAYLOAD_HASH_BYTES);
}

int
spk_header_sign(struct spk_header *h, const struct spk_key *key,
		const uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES])
{
	uint8_t msg[SPK_SIGNED_HEADER_SIZE + SPK_PAYLOAD_HASH_BYTES];
	int r;

	r = crypto_setup();
	if (r < 0)
		return r;
	memcpy(h->public_key, key->public_key, SPK_PUBLIC_KEY_BYTES);
	signed_message(h, payload_hash, msg);
	if (crypto_sign_detached(h->signature, NULL, msg, sizeof(msg), key->secret_key) != 0)
		return -EIO;
	return 0;
}

int
spk_header_verify(const struct spk_header *h, const uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES])
{
	uint8_t msg[SPK_SIGNED_HEADER_SIZE + SPK_PAYLOAD_HASH_BYTES];
	int r;

	r = crypto_setup();
	if (r < 0)
		return r;
	signed_message(h, payload_hash, msg);
	/* libsodium also refuses small-order keys and non-canonical signatures. */
	if (crypto_sign_verify_detached(h->signature, msg, sizeof(msg), h->public_key) != 0)
		return -EBADMSG;
	return 0;
}

static int
write_all(int fd, const void *data, size_t size)
{
	const uint8_t *p = data;

	while (size > 0) {
		ssize_t n = write(fd, p, size);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		size -= (size_t)n;
	}
	return 0;
}

static int
pwrite_all(int fd, const void *data, size_t size, off_t offset)
{
	const uint8_t *p = data;

	while (size > 0) {
		ssize_t n = pwrite(fd, p, size, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		size -= (size_t)n;
		offset += n;
	}
	return 0;
}

int
spk_writer_begin(struct spk_writer *w, int fd, const struct spk_key *key)
{
	uint8_t zero[SPK_HEADER_SIZE] = {};
	int r;

	r = crypto_setup();
	if (r < 0)
		return r;
	*w = (struct spk_writer){ .fd = fd, .key = key };
	crypto_generichash_init(&w->hash, NULL, 0, SPK_PAYLOAD_HASH_BYTES);
	/* A placeholder: the real header needs the payload's hash and size. */
	return write_all(fd, zero, sizeof(zero));
}

int
spk_writer_write(struct spk_writer *w, const void *data, size_t size)
{
	crypto_generichash_update(&w->hash, data, size);
	w->payload_size += size;
	return write_all(w->fd, data, size);
}

int
spk_writer_finish(struct spk_writer *w)
{
	uint8_t hash[SPK_PAYLOAD_HASH_BYTES], raw[SPK_HEADER_SIZE];
	struct spk_header h = {
		.format_version = SPK_FORMAT_VERSION,
		.payload_size = w->payload_size,
	};
	int r;

	crypto_generichash_final(&w->hash, hash, sizeof(hash));
	r = spk_header_sign(&h, w->key, hash);
	if (r < 0)
		return r;
	spk_header_encode(&h, raw);
	return pwrite_all(w->fd, raw, sizeof(raw), 0);
}

int
spk_write_signed(int fd, const struct spk_key *key, const void *payload, size_t size)
{
	struct spk_writer w;
	int r;

	r = spk_writer_begin(&w, fd, key);
	if (r < 0)
		return r;
	r = spk_writer_write(&w, payload, size);
	if (r < 0)
		return r;
	return spk_writer_finish(&w);
}

int
spk_package_id_of_fd(int fd, char ret[SPK_PACKAGE_ID_LEN + 1])
{
	_cleanup_free_ uint8_t *buf = NULL;
	crypto_generichash_state state;
	uint8_t hash[SPK_PACKAGE_ID_LEN / 2];
	off_t offset = 0;
	int r;

	r = crypto_setup();
	if (r < 0)
		return r;
	buf = malloc(SPK_IO_BUFFER);
	if (!buf)
		return -ENOMEM;
	crypto_generichash_init(&state, NULL, 0, sizeof(hash));
	for (;;) {
		ssize_t n = pread(fd, buf, SPK_IO_BUFFER, offset);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			break;
		crypto_generichash_update(&state, buf, (size_t)n);
		offset += n;
	}
	crypto_generichash_final(&state, hash, sizeof(hash));
	(void)hex_encode(ret, hash, sizeof(hash));
	return 0;
}
