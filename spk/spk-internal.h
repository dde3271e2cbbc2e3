/* SPDX-License-Identifier: MIT */
/*
 * spk-internal.h: what the files of spk/ share and its tests may use; not for
 * other directories (they include spk/spk.h).
 *
 * The header, as docs/spk-format.md lays it out (integers little-endian):
 *
 *	offset	size	field
 *	0	8	magic 89 53 50 4b 0d 0a 1a 0a ("\x89SPK\r\n\x1a\n")
 *	8	4	format version (1)
 *	12	4	flags (0)
 *	16	8	payload size in bytes (> 0; the file is exactly 128 + this)
 *	24	8	reserved (0)
 *	32	32	Ed25519 public key
 *	64	64	Ed25519 signature of: bytes 0..63 of this header, then
 *			BLAKE2b-512 of the payload (128 bytes signed in all)
 *	128	...	payload: zstd frames holding a pax tar
 */
#ifndef GRANARY_SPK_SPK_INTERNAL_H
#define GRANARY_SPK_SPK_INTERNAL_H

#include <locale.h>
#include <stdarg.h>
#include <sys/types.h>

#include <archive.h>
#include <sodium.h>
#include <zstd.h>

#include "spk/spk.h"

#define SPK_MAGIC		"\x89SPK\r\n\x1a\n"
#define SPK_MAGIC_SIZE		8
#define SPK_SIGNED_HEADER_SIZE	64
#define SPK_PAYLOAD_HASH_BYTES	64 /* BLAKE2b-512 */
#define SPK_ZSTD_WINDOW_LOG_MAX 23 /* frames may not need more than an 8 MiB window */
#define SPK_ZSTD_DEFAULT_LEVEL	3
#define SPK_ZSTD_MAX_LEVEL	19
#define SPK_ZSTD_MAX_WORKERS	8
#define SPK_IO_BUFFER		(256 * 1024)

/* ---- errors: struct spk_error -------------------------------------------- */

/* Fill err (may be NULL) and return -abs(error), -EIO for 0. */
int spk_error_set(struct spk_error *err, int error, const char *format, ...) _printf_(3, 4);

/*
 * Write s (len bytes, untrusted) quoted for a message into buf: printable
 * ASCII as is, the rest as \xNN, cut with "..." to fit. Returns buf.
 */
char *spk_quote(char *buf, size_t size, const char *s, size_t len);
#define SPK_QUOTE_MAX 96

/* ---- the UTF-8 locale ---------------------------------------------------- */

/*
 * libarchive converts pax names between UTF-8 and the current locale; under
 * the C locale every non-ASCII name would fail. The library switches the
 * calling thread (only it: uselocale) to C.UTF-8 for the duration of a call
 * so names pass through unchanged, and restores the caller's locale after.
 */
struct spk_locale {
	locale_t utf8; /* owned; (locale_t)0 when C.UTF-8 is missing */
	locale_t saved;
};
void spk_locale_enter(struct spk_locale *l);
void spk_locale_leave(struct spk_locale *l);

/* ---- header.c: the 128-byte header --------------------------------------- */

struct spk_header {
	uint32_t format_version;
	uint32_t flags;
	uint64_t payload_size;
	uint8_t public_key[SPK_PUBLIC_KEY_BYTES];
	uint8_t signature[crypto_sign_BYTES];
};

/* Decode and check the fixed fields of raw (-EBADMSG, -EPROTONOSUPPORT). */
int spk_header_decode(const uint8_t raw[SPK_HEADER_SIZE], struct spk_header *ret,
		      struct spk_error *err);
/* Encode h into raw, the signature as it is in h. */
void spk_header_encode(const struct spk_header *h, uint8_t raw[SPK_HEADER_SIZE]);
/* Fill h's public key and signature for a payload of that size and hash. */
int spk_header_sign(struct spk_header *h, const struct spk_key *key,
		    const uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES]);
/* 0 if h's signature is good for that payload hash, else -EBADMSG. */
int spk_header_verify(const struct spk_header *h,
		      const uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES]);

/*
 * A signed file being written to a seekable fd: a placeholder header, the
 * payload through spk_writer_write() (hashed on the way), then
 * spk_writer_finish() signs and writes the real header at offset 0.
 */
struct spk_writer {
	int fd; /* not owned */
	uint64_t payload_size;
	crypto_generichash_state hash;
	const struct spk_key *key; /* not owned */
};
int spk_writer_begin(struct spk_writer *w, int fd, const struct spk_key *key);
int spk_writer_write(struct spk_writer *w, const void *data, size_t size);
int spk_writer_finish(struct spk_writer *w);

/* Write a whole package of payload (already tar.zst or anything: tests) to fd. */
int spk_write_signed(int fd, const struct spk_key *key, const void *payload, size_t size);

/* BLAKE2b-256 of everything fd holds from offset 0, as hex. */
int spk_package_id_of_fd(int fd, char ret[SPK_PACKAGE_ID_LEN + 1]);

/* ---- package.c: an open package and its payload stream ------------------ */

struct spk_package {
	int fd; /* owned */
	struct spk_limits limits;
	struct spk_header header;
	struct spk_info info;
	uint8_t payload_hash[SPK_PAYLOAD_HASH_BYTES]; /* the verified one */
};

/*
 * The payload read a second time: compressed bytes are hashed, decompressed
 * with libzstd and handed to a libarchive tar reader (archive).
 */
struct spk_stream {
	struct spk_package *package; /* not owned */
	struct archive *archive;     /* owned: the tar reader */
	ZSTD_DCtx *zstd;	     /* owned */
	uint8_t *in;		     /* owned, SPK_IO_BUFFER bytes of compressed input */
	uint8_t *out;		     /* owned, SPK_IO_BUFFER bytes of tar */
	size_t in_size, in_pos;
	uint64_t offset; /* payload bytes read and hashed */
	uint64_t decompressed, decompressed_max;
	bool frame_open, input_done;
	crypto_generichash_state hash;
	spk_progress_fn progress;
	void *userdata;
	uint64_t progress_next;
	int error; /* why the read callback failed, with message */
	char message[256];
};

int spk_stream_open(struct spk_stream *s, struct spk_package *p, spk_progress_fn progress,
		    void *userdata, struct spk_error *err);
/*
 * Decompress what is left after the tar's end, so a payload that is not
 * zstd frames to its last byte is refused.
 */
int spk_stream_drain(struct spk_stream *s, struct spk_error *err);
/* Hash the rest of the payload and compare with the verified hash. */
int spk_stream_finish(struct spk_stream *s, struct spk_error *err);
void spk_stream_close(struct spk_stream *s);
/* After a failure: if the file changed since it was verified, say so in err instead. */
void spk_stream_blame_change(struct spk_stream *s, struct spk_error *err);
/* Fill err from the stream's own failure or libarchive's, prefixed by what. */
int spk_stream_error(struct spk_stream *s, struct spk_error *err, const char *what);
/* The entry just read is pax or ustar, nothing else. */
int spk_stream_check_format(struct spk_stream *s, struct spk_error *err);
/*
 * Read and check the first entry, the manifest. ret_data (may be NULL) gets
 * its bytes, owned by the caller, and ret_size their number.
 */
int spk_stream_read_manifest(struct spk_stream *s, struct spk_manifest **ret, char **ret_data,
			     size_t *ret_size, struct spk_error *err);

/* ---- path.c: names inside a package -------------------------------------- */

/*
 * Check a package path: relative, components separated by one '/', none empty,
 * "." or "..", each valid UTF-8 without control characters (0x00-0x1f, 0x7f)
 * and at most max_name bytes; at most max_depth components and max_path bytes.
 * ret_depth (may be NULL) gets the number of components, ret_parent_len the
 * length of the parent's path (0 for an entry at the root).
 */
int spk_path_check(const char *path, size_t len, const struct spk_limits *limits, size_t *ret_depth,
		   size_t *ret_parent_len, struct spk_error *err);

/* Symlink targets: 1..max_path bytes of UTF-8 without control characters. */
int spk_link_target_check(const char *target, const struct spk_limits *limits,
			  struct spk_error *err);

/* Strict UTF-8 (no overlong forms, surrogates or values past U+10FFFF). */
bool spk_utf8_valid(const char *s, size_t len);

/*
 * Tree order: component by component, each compared bytewise, a prefix first;
 * the same as comparing bytes with '/' below every other byte. Sorting a tree
 * this way puts each directory right before its contents.
 */
int spk_path_compare(const char *a, const char *b);

/*
 * The directories that are ancestors of the entry last seen, as one path and
 * the lengths of its prefixes. Entries in tree order need nothing more to know
 * whether their parent is a directory that came before them.
 */
struct spk_dirstack {
	char *path;   /* owned, max_path + 1 bytes: the deepest directory */
	size_t *lens; /* owned, max_depth items: lengths of the stacked directories */
	size_t depth;
	size_t max_path;
	size_t max_depth;
};
int spk_dirstack_init(struct spk_dirstack *s, const struct spk_limits *limits);
void spk_dirstack_release(struct spk_dirstack *s);
/*
 * Pop the directories that are not ancestors of path; returns the length of
 * the deepest remaining one (0 when none: the root).
 */
size_t spk_dirstack_enter(struct spk_dirstack *s, const char *path);
/* Push path (len bytes), a child of the current top. */
int spk_dirstack_push(struct spk_dirstack *s, const char *path, size_t len);

/* ---- base32.c ------------------------------------------------------------ */

/* Encode n bytes; ret holds ceil(8n / 5) characters and a NUL. */
void spk_base32_encode(const uint8_t *data, size_t n, char *ret);
/* Decode exactly: len must be ceil(8n / 5), padding bits zero. -EINVAL otherwise. */
int spk_base32_decode(const char *s, size_t len, uint8_t *ret, size_t n);

#endif
