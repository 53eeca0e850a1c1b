/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_STREAM_SEAL_H
#define SNAPSHIP_STREAM_SEAL_H

/*
 * Client-side encryption (doc/protection.md "Client-side encryption").
 *
 *   key file ──► seal_secret ──► seal_master (raw key, or scrypt of a
 *   passphrase with a salt the manifest keeps; its fingerprint) ──►
 *   seal_key (HKDF-SHA-256: salt = backup id, info = the object kind)
 *
 * A seal_key seals numbered pieces with AES-256-GCM: ciphertext ‖ 16-byte
 * tag, nonce = 32 zero bits ‖ u64 piece number (big endian), associated
 * data = "snapship\0" ‖ backup id ‖ kind (u8) ‖ piece number (u64 LE) ‖
 * last-piece flag (u8).  The pieces are a data object's zstd frames
 * (stream/frame.c) or the SEAL_SEGMENT-byte segments of a stream (the
 * index object, the manifest's sealed fields).
 *
 * Secrets (seal_secret, seal_master, seal_key) live in their own mlock'ed
 * pages excluded from core dumps and are wiped (OPENSSL_cleanse) when
 * freed; every _free accepts NULL.  A seal_key is read-only after
 * seal_key_new: any number of threads may seal or open with it.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;

#define SEAL_ALG "aes-256-gcm"
#define SEAL_KEY_LEN 32u
#define SEAL_TAG_LEN 16u
#define SEAL_SALT_LEN 16u
#define SEAL_FP_HEX 16u               /* hex digits of a fingerprint */
#define SEAL_PASS_MIN 12u             /* bytes of the shortest passphrase */
#define SEAL_SECRET_MAX 4096u         /* bytes of the largest key file */
#define SEAL_SEGMENT (64u << 10)      /* plaintext bytes per stream segment */
#define SEAL_SCRYPT_N (1u << 17)
#define SEAL_SCRYPT_R 8u
#define SEAL_SCRYPT_P 1u

enum seal_kind {
	SEAL_KIND_DATA = 1,
	SEAL_KIND_INDEX = 2,
	SEAL_KIND_MANIFEST = 3,
};

/* ----------------------------------------------------------- key files */

struct seal_secret;

/*
 * Read a key file (util_open_secret: refused when group or others can
 * read it): exactly SEAL_KEY_LEN bytes is a raw key; anything else is a
 * passphrase (one trailing newline dropped) of SEAL_PASS_MIN bytes at
 * least.  config_key names the setting in messages; no message quotes the
 * file's bytes.  *s_ret: seal_secret_free().
 */
int seal_secret_read(const char *path, const char *config_key,
		     struct seal_secret **s_ret, struct err *err);
bool seal_secret_is_passphrase(const struct seal_secret *s);
/* The path it was read from (messages). */
const char *seal_secret_path(const struct seal_secret *s);
void seal_secret_free(struct seal_secret *s);

/* A master key and its fingerprint. */
struct seal_master {
	unsigned char key[SEAL_KEY_LEN];
	char fp[SEAL_FP_HEX + 1];
	bool has_salt;                /* stretched from a passphrase with salt */
	unsigned char salt[SEAL_SALT_LEN];
};

/*
 * The master key of s: the raw key, or scrypt(passphrase, salt, N = 2^17,
 * r = 8, p = 1) — salt is the manifest's (a restore), or NULL for a new
 * random one (a backup).  salt is ignored for a raw key.  *m_ret (locked
 * memory): seal_master_free().
 */
int seal_master_new(const struct seal_secret *s, const unsigned char *salt,
		    struct seal_master **m_ret, struct err *err);
void seal_master_free(struct seal_master *m);

/* ------------------------------------------------------- per-object keys */

struct seal_key;

/* The key of one object kind of backup backup_id.  *k_ret: seal_key_free(). */
int seal_key_new(const struct seal_master *m, const char *backup_id,
		 enum seal_kind kind, struct seal_key **k_ret, struct err *err);
void seal_key_free(struct seal_key *k);

/*
 * Seal len bytes of piece n into out (len + SEAL_TAG_LEN bytes; out may be
 * in).  Open: in is ciphertext ‖ tag (len >= SEAL_TAG_LEN), out receives
 * len - SEAL_TAG_LEN bytes (out may be in); -EBADMSG when it does not
 * authenticate as piece n with that flag (out's bytes are then garbage);
 * no message is set for that case (the caller names what failed).
 */
int seal_piece(const struct seal_key *k, uint64_t n, bool last,
	       const void *in, size_t len, void *out, struct err *err);
int seal_unpiece(const struct seal_key *k, uint64_t n, bool last,
		 const void *in, size_t len, void *out, struct err *err);

/* --------------------------------------------------------------- streams */

/* The sealed size of a stream of len bytes (one segment at least). */
uint64_t seal_stream_size(uint64_t len);
/*
 * Seal a whole buffer as a stream: *out_ret (malloc'd,
 * seal_stream_size(len) bytes).  Open a whole sealed stream: *out_ret
 * (malloc'd, *len_ret bytes); -EBADMSG naming the segment and what is wrong
 * (altered, reordered, cut short) with `what` (e.g. "index object K").
 */
int seal_stream_buf(const struct seal_key *k, const void *in, size_t len,
		    void **out_ret, size_t *len_ret, struct err *err);
int seal_unstream_buf(const struct seal_key *k, const char *what,
		      const void *in, size_t len, void **out_ret,
		      size_t *len_ret, struct err *err);

/* A streaming sealer: bytes in, sealed segments out through out_fn (in
 * order, framer_out_fn-compatible).  seal_writer_finish seals the last
 * segment (possibly empty).  k is borrowed. */
typedef int (*seal_out_fn)(void *ctx, const void *buf, size_t len,
			   struct err *err);
struct seal_writer;
int seal_writer_new(const struct seal_key *k, seal_out_fn out, void *ctx,
		    struct seal_writer **w_ret, struct err *err);
int seal_writer_write(void *w, const void *buf, size_t len, struct err *err);
int seal_writer_finish(struct seal_writer *w, struct err *err);
void seal_writer_free(struct seal_writer *w);

/* ------------------------------------------------------------ primitives */

/* The fingerprint of a master key: HMAC-SHA-256(key, "snapship key
 * fingerprint v1"), its first 8 bytes in hex. */
int seal_fingerprint(const unsigned char key[SEAL_KEY_LEN],
		     char hex[SEAL_FP_HEX + 1]);
/* HKDF-SHA-256 (RFC 5869) and scrypt (RFC 7914); 0 or -EIO. */
int seal_hkdf(const void *salt, size_t salt_len, const void *ikm,
	      size_t ikm_len, const void *info, size_t info_len, void *out,
	      size_t out_len);
int seal_scrypt(const void *pass, size_t pass_len, const void *salt,
		size_t salt_len, uint64_t n, uint64_t r, uint64_t p, void *out,
		size_t out_len);
/* Locked, non-dumped, zeroed memory of len bytes (NULL: out of memory);
 * seal_free wipes it.  seal_free(NULL, ...) is a no-op. */
void *seal_alloc(size_t len);
void seal_free(void *p, size_t len);

#endif
