/* SPDX-License-Identifier: MIT */
/*
 * package.c: opening a package (header and signature check) and streaming
 * its payload back out, decompressed, to libarchive.
 *
 * Two passes over the file. spk_package_open() hashes the payload and checks
 * the signature; nothing parses a payload byte before that. Every later read
 * (the manifest, an unpack) goes through struct spk_stream, which hashes the
 * compressed bytes again as they go by and, in spk_stream_finish(), refuses
 * unless they hash to what was verified: a file rewritten between the passes
 * is caught before the caller acts on what it read.
 *
 * The payload is decompressed here with libzstd rather than by libarchive's
 * zstd filter, because that filter offers no bound on the window a frame may
 * ask for (up to 2 GiB of memory); ours refuses frames needing more than
 * 8 MiB, so memory stays bounded whatever the package says.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <archive.h>
#include <archive_entry.h>
#include <zstd.h>

#include "common/token.h"
#include "spk/spk-internal.h"
#include "common/banned.h"

const struct spk_info *
spk_package_info(const struct spk_package *p)
{
	return &p->info;
}

struct spk_package *
spk_package_free(struct spk_package *p)
{
	if (!p)
		return NULL;
	(void)safe_close(p->fd);
	free(p);
	return NULL;
}

static int
read_full(int fd, void *buf, size_t size, uint64_t offset)
{
	uint8_t *b = buf;
	size_t done = 0;

	while (done < size) {
		ssize_t n = pread(fd, b + done, size - done, (off_t)(offset + done));

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ENODATA;
		done += (size_t)n;
	}
	return 0;
}

int
spk_package_open_fd(int fd, const struct spk_limits *limits, spk_progress_fn progress,
		    void *userdata, struct spk_package **ret, struct spk_error *err)
{
	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
	_cleanup_free_ uint8_t *buf = NULL;
	uint8_t raw[SPK_HEADER_SIZE], file_hash[SPK_PACKAGE_ID_LEN / 2];
	crypto_generichash_state payload_state, file_state;
	struct stat st;
	uint64_t offset;
	int r;

	r = crypto_setup();
	if (r < 0)
		return spk_error_set(err, r, "cannot start libsodium");
	p = calloc(1, sizeof(*p));
	if (!p)
		return spk_error_set(err, ENOMEM, "out of memory");
	p->fd = fcntl(fd, F_DUPFD_CLOEXEC, 3);
	if (p->fd < 0)
		return spk_error_set(err, errno, "cannot duplicate fd: %s", strerror(errno));
	spk_limits_resolve(limits, &p->limits);

	if (fstat(p->fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat package: %s", strerror(errno));
	if (!S_ISREG(st.st_mode))
		return spk_error_set(err, EBADMSG, "not a regular file");
	if (st.st_size == 0)
		return spk_error_set(err, EBADMSG, "empty file, not an spk package");
	if (st.st_size < SPK_HEADER_SIZE)
		return spk_error_set(err, EBADMSG,
				     "not an spk package: %lld bytes, shorter than the %d-byte "
				     "header",
				     (long long)st.st_size, SPK_HEADER_SIZE);
	if ((uint64_t)st.st_size > p->limits.max_file_bytes)
		return spk_error_set(err, E2BIG, "package of %lld bytes, the limit is %llu",
				     (long long)st.st_size,
				     (unsigned long long)p->limits.max_file_bytes);
	r = read_full(p->fd, raw, sizeof(raw), 0);
	if (r < 0)
		return spk_error_set(err, r, "cannot read header: %s", strerror(-r));
	r = spk_header_decode(raw, &p->header, err);
	if (r < 0)
		return r;
	if (p->header.payload_size != (uint64_t)st.st_size - SPK_HEADER_SIZE)
		return spk_error_set(err, EBADMSG,
				     "damaged package: the header announces %llu payload bytes, "
				     "the file has %llu (truncated or extended)",
				     (unsigned long long)p->header.payload_size,
				     (unsigned long long)st.st_size - SPK_HEADER_SIZE);

	/* One pass: the payload hash for the signature, the file hash for the package id. */
	buf = malloc(SPK_IO_BUFFER);
	if (!buf)
		return spk_error_set(err, ENOMEM, "out of memory");
	crypto_generichash_init(&payload_state, NULL, 0, SPK_PAYLOAD_HASH_BYTES);
	crypto_generichash_init(&file_state, NULL, 0, sizeof(file_hash));
	crypto_generichash_update(&file_state, raw, sizeof(raw));
	for (offset = 0; offset < p->header.payload_size;) {
		size_t n = (size_t)MIN((uint64_t)SPK_IO_BUFFER, p->header.payload_size - offset);

		r = read_full(p->fd, buf, n, SPK_HEADER_SIZE + offset);
		if (r < 0)
			return spk_error_set(
				err, r == -ENODATA ? EBADMSG : -r, "cannot read package: %s",
				r == -ENODATA ? "file shrank while being read" : strerror(-r));
		crypto_generichash_update(&payload_state, buf, n);
		crypto_generichash_update(&file_state, buf, n);
		offset += n;
		if (progress)
			progress(offset, p->header.payload_size, userdata);
	}
	crypto_generichash_final(&payload_state, p->payload_hash, sizeof(p->payload_hash));
	crypto_generichash_final(&file_state, file_hash, sizeof(file_hash));

	r = spk_header_verify(&p->header, p->payload_hash);
	if (r < 0)
		return spk_error_set(err, EBADMSG,
				     "bad signature: the package was damaged or altered after it "
				     "was signed; get it again from its source");

	p->info.format_version = p->header.format_version;
	spk_app_id_from_key(p->header.public_key, p->info.app_id);
	(void)hex_encode(p->info.package_id, file_hash, sizeof(file_hash));
	p->info.file_size = (uint64_t)st.st_size;
	p->info.payload_size = p->header.payload_size;
	*ret = TAKE_PTR(p);
	return 0;
}

int
spk_package_open(const char *path, const struct spk_limits *limits, spk_progress_fn progress,
		 void *userdata, struct spk_package **ret, struct spk_error *err)
{
	_cleanup_close_ int fd = -EBADF;

	/* O_NONBLOCK: a FIFO must not hang us; fstat() then refuses it. */
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOCTTY | O_NONBLOCK);
	if (fd < 0)
		return spk_error_set(err, errno, "cannot open: %s", strerror(errno));
	return spk_package_open_fd(fd, limits, progress, userdata, ret, err);
}

/* ---- the payload stream ------------------------------------------------- */

static int
stream_fail(struct spk_stream *s, int error, const char *message)
{
	if (!s->error)
		s->error = error;
	(void)snprintf(s->message, sizeof(s->message), "%s", message);
	archive_set_error(s->archive, error, "%s", message);
	return -1;
}

/* Refill the compressed input; returns bytes read, 0 at the payload's end, or -1. */
static ssize_t
stream_refill(struct spk_stream *s)
{
	uint64_t left = s->package->header.payload_size - s->offset;
	size_t want = (size_t)MIN((uint64_t)SPK_IO_BUFFER, left);
	ssize_t n;

	if (want == 0)
		return 0;
	do
		n = pread(s->package->fd, s->in, want, (off_t)(SPK_HEADER_SIZE + s->offset));
	while (n < 0 && errno == EINTR);
	if (n <= 0)
		return stream_fail(s, n < 0 ? errno : EBADMSG,
				   n < 0 ? "cannot read package"
					 : "package shrank while being read");
	crypto_generichash_update(&s->hash, s->in, (size_t)n);
	s->offset += (uint64_t)n;
	s->in_size = (size_t)n;
	s->in_pos = 0;
	if (s->progress &&
	    (s->offset >= s->progress_next || s->offset == s->package->header.payload_size)) {
		s->progress(s->offset, s->package->header.payload_size, s->userdata);
		s->progress_next = s->offset + (1 << 20);
	}
	return n;
}

static la_ssize_t
stream_read(struct archive *a, void *userdata, const void **ret)
{
	struct spk_stream *s = userdata;

	(void)a;
	for (;;) {
		ZSTD_inBuffer in;
		ZSTD_outBuffer out = { s->out, SPK_IO_BUFFER, 0 };
		size_t z;

		if (s->in_pos == s->in_size && !s->input_done) {
			ssize_t n = stream_refill(s);

			if (n < 0)
				return -1;
			s->input_done = n == 0;
		}
		if (s->input_done && s->in_pos == s->in_size && !s->frame_open)
			return 0;
		in = (ZSTD_inBuffer){ s->in, s->in_size, s->in_pos };
		z = ZSTD_decompressStream(s->zstd, &out, &in);
		s->in_pos = in.pos;
		if (ZSTD_isError(z)) {
			char message[160];

			(void)snprintf(message, sizeof(message), "damaged payload: zstd: %s",
				       ZSTD_getErrorName(z));
			return stream_fail(s, EBADMSG, message);
		}
		s->frame_open = z != 0;
		if (out.pos > 0) {
			s->decompressed += out.pos;
			if (s->decompressed > s->decompressed_max)
				return stream_fail(
					s, E2BIG,
					"the payload decompresses to more than the budget "
					"allows");
			*ret = s->out;
			return (la_ssize_t)out.pos;
		}
		/* No input left, no output made, a frame unfinished: the payload ends early. */
		if (s->input_done && s->in_pos == s->in_size && s->frame_open)
			return stream_fail(s, EBADMSG, "damaged payload: truncated zstd frame");
	}
}

int
spk_stream_open(struct spk_stream *s, struct spk_package *p, spk_progress_fn progress,
		void *userdata, struct spk_error *err)
{
	struct stat st;
	int r;

	*s = (struct spk_stream){
		.package = p,
		.progress = progress,
		.userdata = userdata,
	};
	/* The tar stream: file data plus at most ~4 KiB of headers per entry. */
	if (MUL_OVERFLOW(p->limits.max_entries, (uint64_t)4096, &s->decompressed_max) ||
	    ADD_OVERFLOW(s->decompressed_max, p->limits.max_bytes + (1 << 20),
			 &s->decompressed_max))
		s->decompressed_max = UINT64_MAX;
	if (fstat(p->fd, &st) < 0)
		return spk_error_set(err, errno, "cannot stat package: %s", strerror(errno));
	if ((uint64_t)st.st_size != p->info.file_size)
		return spk_error_set(err, EBADMSG, "the package changed since it was verified");
	crypto_generichash_init(&s->hash, NULL, 0, SPK_PAYLOAD_HASH_BYTES);
	s->in = malloc(SPK_IO_BUFFER);
	s->out = malloc(SPK_IO_BUFFER);
	s->zstd = ZSTD_createDCtx();
	s->archive = archive_read_new();
	if (!s->in || !s->out || !s->zstd || !s->archive) {
		spk_stream_close(s);
		return spk_error_set(err, ENOMEM, "out of memory");
	}
	if (ZSTD_isError(ZSTD_DCtx_setParameter(s->zstd, ZSTD_d_windowLogMax,
						SPK_ZSTD_WINDOW_LOG_MAX))) {
		spk_stream_close(s);
		return spk_error_set(err, EIO, "cannot configure zstd");
	}
	/*
	 * Only the tar reader and no filter: the bytes libarchive sees are what
	 * zstd gave us, and anything but a tar (a nested gzip, a zip, a cpio) is
	 * refused rather than recognised.
	 */
	r = archive_read_support_format_tar(s->archive);
	if (r == ARCHIVE_OK)
		r = archive_read_open(s->archive, s, NULL, stream_read, NULL);
	if (r != ARCHIVE_OK) {
		r = spk_stream_error(s, err, "cannot read payload");
		spk_stream_blame_change(s, err);
		spk_stream_close(s);
		return r;
	}
	return 0;
}

int
spk_stream_error(struct spk_stream *s, struct spk_error *err, const char *what)
{
	/* Our own reason first (the read callback's), libarchive's otherwise. */
	if (s->error)
		return spk_error_set(err, s->error, "%s: %s", what, s->message);
	return spk_error_set(err, EBADMSG, "%s: %s", what,
			     archive_error_string(s->archive) ? archive_error_string(s->archive)
							      : "unknown libarchive error");
}

int
spk_stream_drain(struct spk_stream *s, struct spk_error *err)
{
	const void *ignored;
	la_ssize_t n;

	/* After the tar's end: padding, decompressed and dropped, to the last frame's end. */
	while ((n = stream_read(s->archive, s, &ignored)) > 0)
		;
	if (n < 0)
		return spk_stream_error(s, err, "after the end of the archive");
	return 0;
}

int
spk_stream_finish(struct spk_stream *s, struct spk_error *err)
{
	uint8_t hash[SPK_PAYLOAD_HASH_BYTES];

	/* What was not decompressed is hashed all the same: the whole payload counts. */
	for (;;) {
		ssize_t n = stream_refill(s);

		if (n < 0)
			return spk_stream_error(s, err, "cannot read package");
		if (n == 0)
			break;
	}
	crypto_generichash_final(&s->hash, hash, sizeof(hash));
	if (sodium_memcmp(hash, s->package->payload_hash, sizeof(hash)) != 0)
		return spk_error_set(err, EBADMSG,
				     "the package changed since it was verified; nothing was "
				     "installed");
	return 0;
}

void
spk_stream_blame_change(struct spk_stream *s, struct spk_error *err)
{
	struct spk_error ignored;

	/*
	 * Finishing the hash tells a damaged-but-signed package (the error
	 * stands) from a file rewritten since it was verified (a better error).
	 */
	if (s->archive && spk_stream_finish(s, &ignored) == -EBADMSG &&
	    strstr(ignored.message, "changed"))
		(void)spk_error_set(err, EBADMSG, "%s", ignored.message);
}

void
spk_stream_close(struct spk_stream *s)
{
	if (s->archive)
		(void)archive_read_free(s->archive);
	ZSTD_freeDCtx(s->zstd);
	free(s->in);
	free(s->out);
	*s = (struct spk_stream){};
}

/* ---- the manifest --------------------------------------------------------- */

int
spk_stream_read_manifest(struct spk_stream *s, struct spk_manifest **ret, char **ret_data,
			 size_t *ret_size, struct spk_error *err)
{
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	_cleanup_free_ char *data = NULL;
	struct archive_entry *entry;
	struct spk_error e;
	int64_t size;
	size_t len = 0;
	int r;

	r = archive_read_next_header(s->archive, &entry);
	if (r == ARCHIVE_EOF)
		return spk_error_set(err, EBADMSG, "empty payload: no manifest");
	if (r != ARCHIVE_OK)
		return spk_stream_error(s, err, "cannot read the manifest");
	r = spk_stream_check_format(s, err);
	if (r < 0)
		return r;
	if (!archive_entry_pathname(entry) ||
	    strcmp(archive_entry_pathname(entry), SPK_MANIFEST_NAME) != 0 ||
	    archive_entry_filetype(entry) != AE_IFREG || archive_entry_hardlink(entry))
		return spk_error_set(err, EBADMSG, "the first entry must be the regular file '%s'",
				     SPK_MANIFEST_NAME);
	size = archive_entry_size(entry);
	if (!archive_entry_size_is_set(entry) || size <= 0 || size > SPK_MANIFEST_MAX)
		return spk_error_set(err, EBADMSG, "'%s' must hold 1 to %d bytes",
				     SPK_MANIFEST_NAME, SPK_MANIFEST_MAX);
	data = malloc((size_t)size);
	if (!data)
		return spk_error_set(err, ENOMEM, "out of memory");
	while (len < (size_t)size) {
		la_ssize_t n = archive_read_data(s->archive, data + len, (size_t)size - len);

		if (n < 0)
			return spk_stream_error(s, err, "cannot read the manifest");
		if (n == 0)
			return spk_error_set(err, EBADMSG, "'%s' is truncated", SPK_MANIFEST_NAME);
		len += (size_t)n;
	}
	r = spk_manifest_parse(data, len, 0, &m, &e);
	if (r < 0)
		return spk_error_set(err, r, "%s: %s", SPK_MANIFEST_NAME, e.message);
	/* The app id is the key's: nobody can sign for an app id they have no key for. */
	if (strcmp(m->app_id, s->package->info.app_id) != 0)
		return spk_error_set(err, EBADMSG,
				     "%s: app.id %s is not the app id of the signing key (%s)",
				     SPK_MANIFEST_NAME, m->app_id, s->package->info.app_id);
	*ret = TAKE_PTR(m);
	if (ret_data) {
		*ret_data = TAKE_PTR(data);
		*ret_size = len;
	}
	return 0;
}

int
spk_stream_check_format(struct spk_stream *s, struct spk_error *err)
{
	int format = archive_format(s->archive);

	/* pax archives hold ustar headers where no extended header is needed. */
	if (format != ARCHIVE_FORMAT_TAR_PAX_INTERCHANGE && format != ARCHIVE_FORMAT_TAR_USTAR)
		return spk_error_set(err, EBADMSG, "the payload is a %s archive, not a pax tar",
				     archive_format_name(s->archive)
					     ? archive_format_name(s->archive)
					     : "different");
	return 0;
}

int
spk_package_read_manifest(struct spk_package *p, struct spk_manifest **ret, struct spk_error *err)
{
	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
	struct spk_locale locale;
	struct spk_stream s;
	int r;

	spk_locale_enter(&locale);
	r = spk_stream_open(&s, p, NULL, NULL, err);
	if (r < 0)
		goto out_locale;
	r = spk_stream_read_manifest(&s, &m, NULL, NULL, err);
	if (r >= 0)
		r = spk_stream_finish(&s, err);
	else
		spk_stream_blame_change(&s, err);
	spk_stream_close(&s);
	if (r >= 0)
		*ret = TAKE_PTR(m);
out_locale:
	spk_locale_leave(&locale);
	return r;
}
