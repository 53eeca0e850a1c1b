// SPDX-License-Identifier: MIT
/*
 * Keys and AES-256-GCM sealing for client-side encryption.  See seal.h.
 */
#include "stream/seal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/kdf.h>

#include "common/err.h"
#include "common/util.h"

#define AAD_PREFIX "snapship"          /* and its NUL */
#define ID_MAX 64
#define FP_INFO "snapship key fingerprint v1"

struct seal_secret {
	unsigned char buf[SEAL_SECRET_MAX + 1];
	size_t len;
	bool passphrase;
	char path[1024];
};

struct seal_key {
	unsigned char key[SEAL_KEY_LEN];
	unsigned char aad[sizeof(AAD_PREFIX) + ID_MAX + 1 + 9];
	size_t aad_len;                     /* without number and flag */
};

/* ---------------------------------------------------------------- memory */

void *seal_alloc(size_t len)
{
	void *p = mmap(NULL, len, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);

	if (p == MAP_FAILED)
		return NULL;
	/* best effort: RLIMIT_MEMLOCK may be small for a non-root user */
	(void)mlock(p, len);
	(void)madvise(p, len, MADV_DONTDUMP);
	return p;
}

void seal_free(void *p, size_t len)
{
	if (!p)
		return;
	OPENSSL_cleanse(p, len);
	(void)munlock(p, len);
	munmap(p, len);
}

/* ------------------------------------------------------------ primitives */

int seal_fingerprint(const unsigned char key[SEAL_KEY_LEN],
		     char hex[SEAL_FP_HEX + 1])
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;

	if (!HMAC(EVP_sha256(), key, SEAL_KEY_LEN,
		  (const unsigned char *)FP_INFO, strlen(FP_INFO), md, &mdlen) ||
	    mdlen < SEAL_FP_HEX / 2)
		return -EIO;
	util_hex(md, SEAL_FP_HEX / 2, hex);
	hex[SEAL_FP_HEX] = '\0';
	OPENSSL_cleanse(md, sizeof(md));
	return 0;
}

int seal_hkdf(const void *salt, size_t salt_len, const void *ikm,
	      size_t ikm_len, const void *info, size_t info_len, void *out,
	      size_t out_len)
{
	EVP_PKEY_CTX *c = EVP_PKEY_CTX_new_id(EVP_PKEY_HKDF, NULL);
	size_t n = out_len;
	int ok;

	if (!c)
		return -ENOMEM;
	/* no salt: HKDF's zeros; no info: none */
	ok = EVP_PKEY_derive_init(c) > 0 &&
	     EVP_PKEY_CTX_set_hkdf_md(c, EVP_sha256()) > 0 &&
	     (!salt_len || EVP_PKEY_CTX_set1_hkdf_salt(c, salt, (int)salt_len) > 0) &&
	     EVP_PKEY_CTX_set1_hkdf_key(c, ikm, (int)ikm_len) > 0 &&
	     (!info_len || EVP_PKEY_CTX_add1_hkdf_info(c, info, (int)info_len) > 0) &&
	     EVP_PKEY_derive(c, out, &n) > 0 && n == out_len;
	EVP_PKEY_CTX_free(c);
	return ok ? 0 : -EIO;
}

int seal_scrypt(const void *pass, size_t pass_len, const void *salt,
		size_t salt_len, uint64_t n, uint64_t r, uint64_t p, void *out,
		size_t out_len)
{
	/* 128 × N × r × p bytes, and some room */
	uint64_t mem = 128 * n * r * p + (32u << 20);

	return EVP_PBE_scrypt(pass, pass_len, salt, salt_len, n, r, p, mem,
			      out, out_len) == 1 ? 0 : -EIO;
}

/* ----------------------------------------------------------- key files */

int seal_secret_read(const char *path, const char *config_key,
		     struct seal_secret **s_ret, struct err *err)
{
	struct seal_secret *s;
	ssize_t n;
	int fd, ret;

	*s_ret = NULL;
	ret = util_open_secret(path, config_key, &fd, err);
	if (ret)
		return ret;
	s = seal_alloc(sizeof(*s));
	if (!s) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out_close;
	}
	snprintf(s->path, sizeof(s->path), "%s", path);
	while (s->len <= SEAL_SECRET_MAX &&
	       (n = read(fd, s->buf + s->len, SEAL_SECRET_MAX + 1 - s->len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = err_set(err, -errno, "%s %s: cannot read: %s",
				      config_key, path, err_str(-errno));
			goto out_free;
		}
		s->len += (size_t)n;
	}
	if (s->len > SEAL_SECRET_MAX) {
		ret = err_set(err, -EINVAL,
			      "%s %s: larger than %u bytes; give a key file of 32 random bytes (snapship key generate FILE) or a passphrase of at least %u bytes",
			      config_key, path, SEAL_SECRET_MAX, SEAL_PASS_MIN);
		goto out_free;
	}
	if (s->len != SEAL_KEY_LEN) {
		s->passphrase = true;
		if (s->len && s->buf[s->len - 1] == '\n')
			s->buf[--s->len] = 0;
		if (s->len && s->buf[s->len - 1] == '\r')
			s->buf[--s->len] = 0;
		if (s->len < SEAL_PASS_MIN) {
			ret = err_set(err, -EINVAL,
				      "%s %s: a passphrase of %zu bytes is too short (at least %u); or give a key file of 32 random bytes (snapship key generate FILE)",
				      config_key, path, s->len, SEAL_PASS_MIN);
			goto out_free;
		}
	}
	close(fd);
	*s_ret = s;
	return 0;

out_free:
	seal_free(s, sizeof(*s));
out_close:
	close(fd);
	return ret;
}

bool seal_secret_is_passphrase(const struct seal_secret *s)
{
	return s->passphrase;
}

const char *seal_secret_path(const struct seal_secret *s)
{
	return s->path;
}

void seal_secret_free(struct seal_secret *s)
{
	seal_free(s, sizeof(*s));
}

int seal_master_new(const struct seal_secret *s, const unsigned char *salt,
		    struct seal_master **m_ret, struct err *err)
{
	struct seal_master *m = seal_alloc(sizeof(*m));
	int ret;

	*m_ret = NULL;
	if (!m)
		return err_set(err, -ENOMEM, "out of memory");
	if (!s->passphrase) {
		memcpy(m->key, s->buf, SEAL_KEY_LEN);
	} else {
		m->has_salt = true;
		if (salt)
			memcpy(m->salt, salt, SEAL_SALT_LEN);
		else if ((ret = util_random(m->salt, SEAL_SALT_LEN))) {
			err_set(err, ret, "getrandom: %s", err_str(ret));
			goto out_free;
		}
		ret = seal_scrypt(s->buf, s->len, m->salt, SEAL_SALT_LEN,
				  SEAL_SCRYPT_N, SEAL_SCRYPT_R, SEAL_SCRYPT_P,
				  m->key, SEAL_KEY_LEN);
		if (ret) {
			err_set(err, -ENOMEM,
				"stretching the passphrase of %s (scrypt, 128 MiB) failed: out of memory?",
				s->path);
			goto out_free;
		}
	}
	if (seal_fingerprint(m->key, m->fp)) {
		ret = err_set(err, -EIO, "computing the key fingerprint failed (OpenSSL)");
		goto out_free;
	}
	*m_ret = m;
	return 0;

out_free:
	seal_free(m, sizeof(*m));
	return ret;
}

void seal_master_free(struct seal_master *m)
{
	seal_free(m, sizeof(*m));
}

/* ------------------------------------------------------- per-object keys */

static const char *kind_info(enum seal_kind kind)
{
	switch (kind) {
	case SEAL_KIND_DATA:
		return "snapship data v1";
	case SEAL_KIND_INDEX:
		return "snapship index v1";
	case SEAL_KIND_MANIFEST:
		return "snapship manifest v1";
	}
	return NULL;
}

int seal_key_new(const struct seal_master *m, const char *backup_id,
		 enum seal_kind kind, struct seal_key **k_ret, struct err *err)
{
	const char *info = kind_info(kind);
	size_t idlen = backup_id ? strlen(backup_id) : 0;
	struct seal_key *k;
	unsigned char *p;

	*k_ret = NULL;
	if (!m || !info || !idlen || idlen > ID_MAX)
		return err_set(err, -EINVAL, "seal_key_new: bad arguments");
	k = seal_alloc(sizeof(*k));
	if (!k)
		return err_set(err, -ENOMEM, "out of memory");
	if (seal_hkdf(backup_id, idlen, m->key, SEAL_KEY_LEN, info, strlen(info),
		      k->key, SEAL_KEY_LEN)) {
		seal_key_free(k);
		return err_set(err, -EIO, "deriving the keys of backup %s failed (OpenSSL HKDF)",
			       backup_id);
	}
	p = k->aad;
	memcpy(p, AAD_PREFIX, sizeof(AAD_PREFIX));
	p += sizeof(AAD_PREFIX);
	memcpy(p, backup_id, idlen);
	p += idlen;
	*p++ = (unsigned char)kind;
	k->aad_len = (size_t)(p - k->aad);
	*k_ret = k;
	return 0;
}

void seal_key_free(struct seal_key *k)
{
	seal_free(k, sizeof(*k));
}

/* The nonce and the associated data of piece n. */
static size_t piece_params(const struct seal_key *k, uint64_t n, bool last,
			   unsigned char iv[12], unsigned char *aad)
{
	memset(iv, 0, 4);
	for (int i = 0; i < 8; i++) {
		iv[4 + i] = (unsigned char)(n >> (56 - 8 * i));
		aad[k->aad_len + (size_t)i] = (unsigned char)(n >> (8 * i));
	}
	memcpy(aad, k->aad, k->aad_len);
	aad[k->aad_len + 8] = last ? 1 : 0;
	return k->aad_len + 9;
}

static int gcm_run(const struct seal_key *k, uint64_t n, bool last, bool enc,
		   const unsigned char *in, size_t len, unsigned char *out,
		   unsigned char *tag)
{
	unsigned char iv[12], aad[sizeof(k->aad)];
	size_t aad_len = piece_params(k, n, last, iv, aad);
	EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
	int outl = 0, ok;

	if (!c)
		return -ENOMEM;
	if (len > INT32_MAX) {
		EVP_CIPHER_CTX_free(c);
		return -EINVAL;
	}
	ok = EVP_CipherInit_ex(c, EVP_aes_256_gcm(), NULL, k->key, iv, enc) == 1 &&
	     EVP_CipherUpdate(c, NULL, &outl, aad, (int)aad_len) == 1 &&
	     (!len || EVP_CipherUpdate(c, out, &outl, in, (int)len) == 1);
	if (ok && !enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, SEAL_TAG_LEN, tag) == 1;
	if (ok) {
		int fin = EVP_CipherFinal_ex(c, out + len, &outl);

		if (fin != 1) {
			EVP_CIPHER_CTX_free(c);
			return enc ? -EIO : -EBADMSG;
		}
	}
	if (ok && enc)
		ok = EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_GET_TAG, SEAL_TAG_LEN, tag) == 1;
	EVP_CIPHER_CTX_free(c);
	return ok ? 0 : -EIO;
}

int seal_piece(const struct seal_key *k, uint64_t n, bool last,
	       const void *in, size_t len, void *out, struct err *err)
{
	unsigned char *o = out;
	int ret = gcm_run(k, n, last, true, in, len, o, o + len);

	if (ret)
		return err_set(err, ret, "AES-256-GCM encryption failed (OpenSSL)");
	return 0;
}

int seal_unpiece(const struct seal_key *k, uint64_t n, bool last,
		 const void *in, size_t len, void *out, struct err *err)
{
	unsigned char tag[SEAL_TAG_LEN];
	const unsigned char *i = in;
	int ret;

	if (len < SEAL_TAG_LEN)
		return -EBADMSG;
	len -= SEAL_TAG_LEN;
	memcpy(tag, i + len, SEAL_TAG_LEN);   /* out may overwrite in */
	ret = gcm_run(k, n, last, false, i, len, out, tag);
	if (ret && ret != -EBADMSG)
		return err_set(err, ret, "AES-256-GCM decryption failed (OpenSSL)");
	return ret;
}

/* --------------------------------------------------------------- streams */

uint64_t seal_stream_size(uint64_t len)
{
	uint64_t segs = len / SEAL_SEGMENT + 1;

	if (len && len % SEAL_SEGMENT == 0)
		segs--;
	return len + segs * SEAL_TAG_LEN;
}

int seal_stream_buf(const struct seal_key *k, const void *in, size_t len,
		    void **out_ret, size_t *len_ret, struct err *err)
{
	size_t total = (size_t)seal_stream_size(len), off = 0, o = 0;
	const unsigned char *ip = in;
	unsigned char *out = malloc(total ? total : 1);
	uint64_t n = 0;
	int ret;

	if (!out)
		return err_set(err, -ENOMEM, "out of memory");
	do {
		size_t seg = len - off > SEAL_SEGMENT ? SEAL_SEGMENT : len - off;
		bool last = off + seg == len;

		ret = seal_piece(k, n++, last, ip + off, seg, out + o, err);
		if (ret) {
			free(out);
			return ret;
		}
		off += seg;
		o += seg + SEAL_TAG_LEN;
	} while (off < len);
	*out_ret = out;
	*len_ret = o;
	return 0;
}

/* Why segment n of nsegs does not open: named for the user. */
static int stream_bad(const struct seal_key *k, const char *what,
		      const unsigned char *seg, size_t len, uint64_t n,
		      bool last, unsigned char *scratch, struct err *err)
{
	struct err e = { 0 };

	if (!seal_unpiece(k, n, !last, seg, len, scratch, &e))
		return err_set(err, -EBADMSG, last ?
			       "%s is cut short: segment %llu is not its last (truncated at a segment boundary)" :
			       "%s: segment %llu was its last, yet more follows (bytes appended)",
			       what, (unsigned long long)n);
	return err_set(err, -EBADMSG,
		       "%s: segment %llu does not authenticate (altered, reordered, or taken from another backup)",
		       what, (unsigned long long)n);
}

int seal_unstream_buf(const struct seal_key *k, const char *what,
		      const void *in, size_t len, void **out_ret,
		      size_t *len_ret, struct err *err)
{
	const size_t sealed = SEAL_SEGMENT + SEAL_TAG_LEN;
	const unsigned char *ip = in;
	unsigned char *out = malloc(len ? len : 1);
	size_t off = 0, o = 0;
	uint64_t n = 0;
	int ret;

	if (!out)
		return err_set(err, -ENOMEM, "out of memory");
	if (len < SEAL_TAG_LEN) {
		ret = err_set(err, -EBADMSG, "%s is too short (%zu bytes) to be sealed: truncated",
			      what, len);
		goto out_free;
	}
	while (off < len) {
		size_t seg = len - off > sealed ? sealed : len - off;
		bool last = off + seg == len;

		if (seg < SEAL_TAG_LEN) {
			ret = err_set(err, -EBADMSG, "%s: its last segment is %zu bytes, shorter than a tag: truncated",
				      what, seg);
			goto out_free;
		}
		ret = seal_unpiece(k, n, last, ip + off, seg, out + o, err);
		if (ret == -EBADMSG)
			ret = stream_bad(k, what, ip + off, seg, n, last, out + o, err);
		if (ret)
			goto out_free;
		off += seg;
		o += seg - SEAL_TAG_LEN;
		n++;
	}
	*out_ret = out;
	*len_ret = o;
	return 0;

out_free:
	free(out);
	return ret;
}

struct seal_writer {
	const struct seal_key *k;
	seal_out_fn out;
	void *ctx;
	uint64_t n;
	size_t len;                          /* bytes in buf */
	unsigned char buf[SEAL_SEGMENT];     /* a full segment is held back */
	unsigned char sealed[SEAL_SEGMENT + SEAL_TAG_LEN];
};

int seal_writer_new(const struct seal_key *k, seal_out_fn out, void *ctx,
		    struct seal_writer **w_ret, struct err *err)
{
	struct seal_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return err_set(err, -ENOMEM, "out of memory");
	w->k = k;
	w->out = out;
	w->ctx = ctx;
	*w_ret = w;
	return 0;
}

static int writer_emit(struct seal_writer *w, bool last, struct err *err)
{
	int ret = seal_piece(w->k, w->n, last, w->buf, w->len, w->sealed, err);

	if (!ret)
		ret = w->out(w->ctx, w->sealed, w->len + SEAL_TAG_LEN, err);
	w->n++;
	w->len = 0;
	return ret;
}

int seal_writer_write(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct seal_writer *w = ctx;
	const unsigned char *p = buf;

	while (len) {
		size_t n;

		/* a full segment goes out only once more follows: the
		 * last one must carry the flag */
		if (w->len == SEAL_SEGMENT) {
			int ret = writer_emit(w, false, err);

			if (ret)
				return ret;
		}
		n = SEAL_SEGMENT - w->len;
		if (n > len)
			n = len;
		memcpy(w->buf + w->len, p, n);
		w->len += n;
		p += n;
		len -= n;
	}
	return 0;
}

int seal_writer_finish(struct seal_writer *w, struct err *err)
{
	return writer_emit(w, true, err);
}

void seal_writer_free(struct seal_writer *w)
{
	if (!w)
		return;
	OPENSSL_cleanse(w->buf, sizeof(w->buf));
	free(w);
}
