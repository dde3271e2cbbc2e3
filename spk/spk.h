/* SPDX-License-Identifier: MIT */
/*
 * spk.h: Granary app packages (.spk): keys and app ids, the manifest, signing,
 * verifying and unpacking. The one public header of spk/; docs/spk-format.md
 * is the byte-level specification this library implements.
 *
 * A package is a 128-byte header (magic, format version, sizes, the app's
 * Ed25519 public key and a signature over the header and a BLAKE2b-512 hash of
 * the payload) followed by the payload, a pax tar compressed with zstd. The
 * first tar entry is the manifest (granary-manifest.json); the others follow
 * in tree order, each parent directory before its contents.
 *
 * Installing (what the supervisor does):
 *
 *	_cleanup_(spk_package_freep) struct spk_package *p = NULL;
 *	_cleanup_(spk_manifest_freep) struct spk_manifest *m = NULL;
 *	struct spk_error err = {};
 *
 *	r = spk_package_open(path, NULL, &p, &err);       signature checked here
 *	if (r < 0) → refuse, show err.message
 *	dest = "packages/" + spk_package_info(p)->package_id
 *	r = spk_package_unpack(p, dest, SPK_UNPACK_SYNC, NULL, NULL, &m, NULL, &err);
 *
 * spk_package_open() reads the whole file once and checks the signature before
 * anything else looks at the payload; only an open (verified) package can be
 * unpacked. Unpacking reads the file a second time, hashes it again and
 * refuses at the end if the bytes changed in between, so what lands on disk is
 * exactly what was signed. It writes into a temporary sibling of dest and
 * renames it into place only when every entry passed every check: on failure
 * nothing is left behind.
 *
 * A valid signature proves who made a package (anyone can make a key), not
 * that its content is harmless: every entry is still checked as untrusted.
 *
 * Errors: functions return >= 0 on success or a negative errno, and fill a
 * struct spk_error (when not NULL) with a message for a person, naming the
 * file, entry or field and what is wrong. The library never logs above debug.
 *	-EBADMSG	not an spk, damaged, bad signature, malformed entry or manifest
 *	-EPROTONOSUPPORT  a format version this library does not read
 *	-E2BIG		a budget (struct spk_limits) is exceeded
 *	-ENAMETOOLONG	a name or path is longer than the limits allow
 *	-ENOKEY		no key for that app id in the keyring
 *	-EEXIST		the destination already exists
 *	other		system errors (-ENOENT, -EACCES, -ENOSPC, -ENOMEM...)
 *
 * Thread safety: functions touch no global state except that
 * spk_package_unpack() (not in a dry run) changes the process's working
 * directory for the duration of the call (libarchive's disk writer works
 * relative to it), and libarchive sets the umask to 0 and back for every
 * entry. Call it from a single-threaded process (the launcher) or a child;
 * the progress callback must not use relative paths. Every call switches the
 * calling thread's locale to C.UTF-8 and back (uselocale), so names are
 * bytes of UTF-8 whatever the caller's locale.
 */
#ifndef GRANARY_SPK_SPK_H
#define GRANARY_SPK_SPK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "common/macro.h"

#define SPK_FORMAT_VERSION   1
#define SPK_HEADER_SIZE	     128
#define SPK_PUBLIC_KEY_BYTES 32
#define SPK_SECRET_KEY_BYTES 64 /* libsodium's form: the 32-byte seed, then the public key */
#define SPK_SEED_BYTES	     32
#define SPK_APP_ID_LEN	     52 /* base32 of the public key */
#define SPK_PACKAGE_ID_LEN   64 /* hex of BLAKE2b-256 of the whole file */
#define SPK_MANIFEST_NAME    "granary-manifest.json"
#define SPK_MANIFEST_MAX     (64 * 1024)
#define SPK_DEFINITION_NAME  "spk.json"

struct spk_error {
	char message[512];
};

/*
 * Budgets for one package. A field left 0 takes the default shown; the same
 * limits apply when packing, so spk pack refuses what an install would.
 */
struct spk_limits {
	uint64_t max_file_bytes; /* size of the .spk file: 2 GiB */
	uint64_t max_bytes;	 /* sum of the sizes of the regular files: 2 GiB */
	uint64_t max_entries;	 /* files, directories and symlinks, manifest included: 100000 */
	uint32_t max_depth;	 /* components in a path: 64 */
	uint32_t max_name;	 /* bytes in one component: 255 */
	uint32_t max_path;	 /* bytes in a path or a symlink target: 1024 */
};

#define SPK_DEFAULT_MAX_FILE_BYTES (UINT64_C(2) << 30)
#define SPK_DEFAULT_MAX_BYTES	   (UINT64_C(2) << 30)
#define SPK_DEFAULT_MAX_ENTRIES	   100000
#define SPK_DEFAULT_MAX_DEPTH	   64
#define SPK_DEFAULT_MAX_NAME	   255
#define SPK_DEFAULT_MAX_PATH	   1024

/* Copy limits (NULL: all defaults) into ret with every 0 replaced by its default. */
void spk_limits_resolve(const struct spk_limits *limits, struct spk_limits *ret);

/* Progress: done of total bytes (total may be 0 when unknown). */
typedef void (*spk_progress_fn)(uint64_t done, uint64_t total, void *userdata);

/* ---- key.c: keys, app ids, the keyring ---------------------------------- */

struct spk_key {
	uint8_t public_key[SPK_PUBLIC_KEY_BYTES];
	uint8_t secret_key[SPK_SECRET_KEY_BYTES];
};

/* A new random key. -EIO if libsodium cannot start. */
int spk_key_generate(struct spk_key *ret);
/* The key a 32-byte seed determines (what the keyring stores). */
int spk_key_from_seed(const uint8_t seed[SPK_SEED_BYTES], struct spk_key *ret);
/* Overwrite the secret half; call before the key goes out of scope. */
void spk_key_wipe(struct spk_key *key);

/*
 * App id: the public key in base32, 52 lowercase characters from the alphabet
 * "0123456789abcdefghjkmnpqrstvwxyz" (Crockford's, no i, l, o, u), most
 * significant bit first, the last character carrying 1 key bit and 4 zero bits.
 */
void spk_app_id_from_key(const uint8_t public_key[SPK_PUBLIC_KEY_BYTES],
			 char ret[SPK_APP_ID_LEN + 1]);
/* -EINVAL unless s is exactly one canonical app id. */
int spk_app_id_to_key(const char *s, uint8_t ret[SPK_PUBLIC_KEY_BYTES]);
bool spk_app_id_is_valid(const char *s);

/*
 * The keyring used when none is named: $GRANARY_KEYRING, else
 * ${XDG_CONFIG_HOME:-$HOME/.config}/granary/spk.keyring. *ret is owned by the
 * caller (free()). -ENOENT when neither HOME nor the variables are set.
 */
int spk_keyring_default_path(char **ret);

/*
 * Append key to the keyring at path, creating the file with mode 0600 if it
 * does not exist (its directory must). Refuses a keyring that is not a regular
 * file or that group or others may access (-EPERM, with the chmod to run).
 */
int spk_keyring_add(const char *path, const struct spk_key *key, struct spk_error *err);

/*
 * Find the key of app_id in the keyring at path: -ENOKEY when it holds none,
 * -EBADMSG for a damaged keyring, -EPERM for one others may read. *ret is
 * written only on success; wipe it with spk_key_wipe() after use.
 */
int spk_keyring_find(const char *path, const char *app_id, struct spk_key *ret,
		     struct spk_error *err);

/* ---- manifest.c: granary-manifest.json and spk.json -------------------- */

struct spk_env {
	const char *name;
	const char *value;
};

struct spk_role {
	const char *name;
	const char **permissions; /* owned array of n_permissions; strings borrowed */
	size_t n_permissions;
	bool is_default;
	bool read_only;
};

struct spk_action {
	const char *title;
};

/* Where spk pack takes files from (spk.json only; see docs/packaging.md). */
struct spk_source {
	const char *from; /* host path: absolute, or relative to the definition's directory */
	const char *to;	  /* path in the package, "" for its root */
	bool follow_symlinks;
};

/*
 * A validated manifest. Every string is borrowed from json, which the struct
 * owns; arrays are owned by the struct. Optional strings are "" when absent.
 */
struct spk_manifest {
	json_t *json; /* owned: the whole document */

	const char *app_id;
	const char *title;
	int64_t version;
	const char *marketing_version;

	const char **command; /* owned array of n_command, argv of the app */
	size_t n_command;
	struct spk_env *env; /* owned array of n_env */
	size_t n_env;
	uint16_t http_port;

	const char **permissions; /* owned array of n_permissions */
	size_t n_permissions;
	struct spk_role *roles; /* owned array of n_roles */
	size_t n_roles;
	struct spk_action *actions; /* owned array of n_actions */
	size_t n_actions;

	const char *description;
	const char *author;
	const char *license;
	const char *website;

	/* spk.json only: */
	struct spk_source *sources; /* owned array of n_sources ([{".", ""}] by default) */
	size_t n_sources;
	const char *files_list; /* "" when there is none */
};

enum spk_manifest_flags {
	/* spk.json: "files" allowed (a manifest inside a package must not have it) */
	SPK_MANIFEST_DEFINITION = 1 << 0,
};

/*
 * Parse and validate size bytes of JSON (at most SPK_MANIFEST_MAX). Unknown
 * fields, wrong types, missing required fields and out-of-range values are
 * refused with -EBADMSG and a message naming the field. *ret is owned by the
 * caller (spk_manifest_free()).
 */
int spk_manifest_parse(const char *data, size_t size, enum spk_manifest_flags flags,
		       struct spk_manifest **ret, struct spk_error *err);
/* The same from a file. */
int spk_manifest_load(const char *path, enum spk_manifest_flags flags, struct spk_manifest **ret,
		      struct spk_error *err);
struct spk_manifest *spk_manifest_free(struct spk_manifest *m);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct spk_manifest *, spk_manifest_free);

/*
 * The manifest as stored in a package: m's document without "files", keys
 * sorted, indented by 2, one final newline. *ret (NUL-terminated, *ret_size
 * bytes without the NUL) is owned by the caller.
 */
int spk_manifest_to_package_json(const struct spk_manifest *m, char **ret, size_t *ret_size);

/* ---- package.c, unpack.c: reading packages ----------------------------- */

struct spk_info {
	uint32_t format_version;
	char app_id[SPK_APP_ID_LEN + 1];
	char package_id[SPK_PACKAGE_ID_LEN + 1];
	uint64_t file_size;
	uint64_t payload_size;
};

struct spk_package;

/*
 * Open the package at path and check its header and signature, reading the
 * file once (streaming, bounded memory). Only then does *ret exist, owned by
 * the caller (spk_package_free()). limits may be NULL (defaults); they are
 * kept for the unpack. progress (may be NULL) sees the bytes hashed.
 */
int spk_package_open(const char *path, const struct spk_limits *limits, spk_progress_fn progress,
		     void *userdata, struct spk_package **ret, struct spk_error *err);
/* The same for an open file; fd stays the caller's (the package keeps a duplicate). */
int spk_package_open_fd(int fd, const struct spk_limits *limits, spk_progress_fn progress,
			void *userdata, struct spk_package **ret, struct spk_error *err);
struct spk_package *spk_package_free(struct spk_package *p);
DEFINE_TRIVIAL_CLEANUP_FUNC(struct spk_package *, spk_package_free);

/* Borrowed from p. */
const struct spk_info *spk_package_info(const struct spk_package *p);

/*
 * The package's manifest (its first entry), validated and checked to carry the
 * app id of the signing key. Reads the rest of the file to confirm it is still
 * the verified one. *ret is owned by the caller.
 */
int spk_package_read_manifest(struct spk_package *p, struct spk_manifest **ret,
			      struct spk_error *err);

struct spk_unpack_stats {
	uint64_t entries; /* manifest included */
	uint64_t files;
	uint64_t directories;
	uint64_t symlinks;
	uint64_t bytes; /* sum of the regular files' sizes */
};

enum spk_unpack_flags {
	SPK_UNPACK_DRY_RUN = 1 << 0, /* check every entry, write nothing (dest must be NULL) */
	SPK_UNPACK_SYNC = 1 << 1,    /* syncfs() before the rename and fsync the parent after */
};

/*
 * Unpack p into dest, which must not exist (its parent must). Every entry is
 * checked against docs/spk-format.md and the limits before anything of it is
 * written; files and directories go through libarchive's disk writer (with
 * its ".." and absolute-path guards, no overwriting) into a temporary
 * directory "<parent>/.spk-unpack-*", symlinks are made last, and the
 * directory is renamed to dest (RENAME_NOREPLACE) only when everything
 * passed. On failure the temporary directory is removed and dest does not
 * exist. progress sees payload bytes read. p can be unpacked more than once
 * (a dry run, then the real one). On success only, *ret_manifest (owned by
 * the caller) and *ret_stats are written; both may be NULL.
 */
int spk_package_unpack(struct spk_package *p, const char *dest, enum spk_unpack_flags flags,
		       spk_progress_fn progress, void *userdata, struct spk_manifest **ret_manifest,
		       struct spk_unpack_stats *ret_stats, struct spk_error *err);

/* ---- pack.c: making packages ------------------------------------------- */

struct spk_pack_options {
	int level;			 /* zstd level 1..19; 0: 3 */
	int threads;			 /* zstd workers; 0: one per CPU, at most 8; same bytes */
	const struct spk_limits *limits; /* NULL: defaults */
	spk_progress_fn progress;	 /* bytes of file content read, of the total */
	void *userdata;
	/* Told about what deserves a look but is no error (dangling symlinks). */
	void (*warning)(const char *message, void *userdata);
	const char *keyring; /* excluded from the package if found in a source */
};

struct spk_pack_stats {
	uint64_t entries; /* manifest included */
	uint64_t bytes;	  /* sum of the regular files' sizes */
	uint64_t file_size;
	char package_id[SPK_PACKAGE_ID_LEN + 1];
	unsigned dangling_symlinks; /* symlinks whose target is not in the package */
};

/*
 * Build the package that the definition def (parsed with
 * SPK_MANIFEST_DEFINITION) describes, taking relative source paths from
 * base_dir, sign it with key (whose app id must be def's) and write it to
 * out_path through a temporary file renamed into place. The same definition
 * and files always give the same bytes. Files that must not be packed
 * (base_dir/spk.json, the file list, out_path, the keyring) are skipped.
 * Dangling symlinks are counted and passed to options->warning.
 */
int spk_pack(const struct spk_manifest *def, const char *base_dir, const struct spk_key *key,
	     const char *out_path, const struct spk_pack_options *options,
	     struct spk_pack_stats *ret_stats, struct spk_error *err);

#endif
