// SPDX-License-Identifier: MIT
/*
 * Client-side encryption's keys and sealing (stream/seal.c): HKDF-SHA-256
 * against RFC 5869, scrypt against RFC 7914, the fingerprint stable, key
 * files (raw, passphrase, too short, group-readable), per-backup keys
 * distinct, a piece sealed and opened, and every tamper failing: a flipped
 * bit in the ciphertext or the tag, another number, the last flag flipped,
 * another backup's or kind's key; streams: round trip, segments swapped,
 * cut at a segment boundary, bytes appended.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "common/err.h"
#include "common/util.h"
#include "stream/seal.h"

static void unhex(const char *h, unsigned char *out, size_t n)
{
	for (size_t i = 0; i < n; i++)
		out[i] = (unsigned char)(util_hexval(h[2 * i]) << 4 | util_hexval(h[2 * i + 1]));
}

static void assert_hex(const unsigned char *b, size_t n, const char *want)
{
	char *h = malloc(2 * n + 1);

	assert_non_null(h);
	util_hex(b, n, h);
	assert_string_equal(h, want);
	free(h);
}

/* RFC 5869 appendix A, test cases 1 and 3 */
static void test_hkdf_rfc5869(void **state)
{
	unsigned char ikm[22], salt[13], info[10], okm[42];

	(void)state;
	memset(ikm, 0x0b, sizeof(ikm));
	for (unsigned i = 0; i < sizeof(salt); i++)
		salt[i] = (unsigned char)i;
	for (unsigned i = 0; i < sizeof(info); i++)
		info[i] = (unsigned char)(0xf0 + i);
	assert_int_equal(seal_hkdf(salt, sizeof(salt), ikm, sizeof(ikm), info, sizeof(info),
				   okm, sizeof(okm)), 0);
	assert_hex(okm, sizeof(okm),
		   "3cb25f25faacd57a90434f64d0362f2a2d2d0a90cf1a5a4c5db02d56ecc4c5bf34007208d5b887185865");
	assert_int_equal(seal_hkdf(NULL, 0, ikm, sizeof(ikm), NULL, 0, okm, sizeof(okm)), 0);
	assert_hex(okm, sizeof(okm),
		   "8da4e775a563c18f715f802a063c5a31b8a11f5c5ee1879ec3454e5f3c738d2d9d201395faa4b61a96c8");
}

/* RFC 7914 section 12, the first two vectors */
static void test_scrypt_rfc7914(void **state)
{
	unsigned char out[64];

	(void)state;
	assert_int_equal(seal_scrypt("", 0, "", 0, 16, 1, 1, out, sizeof(out)), 0);
	assert_hex(out, sizeof(out),
		   "77d6576238657b203b19ca42c18a0497f16b4844e3074ae8dfdffa3fede21442"
		   "fcd0069ded0948f8326a753a0fc81f17e8d3e0fb2e0d3628cf35e20c38d18906");
	assert_int_equal(seal_scrypt("password", 8, "NaCl", 4, 1024, 8, 16, out, sizeof(out)), 0);
	assert_hex(out, sizeof(out),
		   "fdbabe1c9d3472007856e7190d01e9fe7c6ad7cbc8237830e77376634b373162"
		   "2eaf30d92e22a3886ff109279d9830dac727afb94a83ee6d8360cbdfa2cc0640");
}

#define FP_WANT "11f9d097958aef86"

static const char KEY_HEX[] = "000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f";

/* A fixed fingerprint: a change of the derivation would orphan every
 * backup's recorded fingerprint. */
static void test_fingerprint_stable(void **state)
{
	unsigned char key[SEAL_KEY_LEN];
	char fp[SEAL_FP_HEX + 1], fp2[SEAL_FP_HEX + 1];

	(void)state;
	unhex(KEY_HEX, key, sizeof(key));
	assert_int_equal(seal_fingerprint(key, fp), 0);
	assert_int_equal(strlen(fp), SEAL_FP_HEX);
	assert_int_equal(seal_fingerprint(key, fp2), 0);
	assert_string_equal(fp, fp2);
	/* HMAC-SHA-256(key, "snapship key fingerprint v1")[0..8), computed
	 * independently (python3 hmac) */
	assert_string_equal(fp, FP_WANT);
	key[0] ^= 1;
	assert_int_equal(seal_fingerprint(key, fp2), 0);
	assert_string_not_equal(fp, fp2);
}

static char tmpdir[64];

static char *write_file(const char *name, const void *buf, size_t len, unsigned mode)
{
	static char path[128];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", tmpdir, name);
	unlink(path);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(util_write_all(fd, buf, len), 0);
	assert_int_equal(fchmod(fd, mode), 0);
	close(fd);
	return path;
}

static void test_key_files(void **state)
{
	unsigned char raw[SEAL_KEY_LEN];
	struct seal_secret *s = NULL;
	struct seal_master *m = NULL, *m2 = NULL;
	struct err err = { 0 };
	char *p;

	(void)state;
	unhex(KEY_HEX, raw, sizeof(raw));
	p = write_file("raw", raw, sizeof(raw), 0600);
	assert_int_equal(seal_secret_read(p, "key_file", &s, &err), 0);
	assert_false(seal_secret_is_passphrase(s));
	assert_int_equal(seal_master_new(s, NULL, &m, &err), 0);
	assert_memory_equal(m->key, raw, sizeof(raw));
	assert_false(m->has_salt);
	assert_string_equal(m->fp, FP_WANT);
	seal_master_free(m);
	seal_secret_free(s);

	/* group-readable: refused, saying chmod 600 */
	p = write_file("raw", raw, sizeof(raw), 0640);
	err_clear(&err);
	assert_int_equal(seal_secret_read(p, "key_file", &s, &err), -EPERM);
	assert_non_null(strstr(err.msg, "chmod 600"));
	assert_null(s);

	/* too short a passphrase; its bytes never in the message */
	p = write_file("short", "hunter2xyz\n", 11, 0600);
	err_clear(&err);
	assert_int_equal(seal_secret_read(p, "key_file", &s, &err), -EINVAL);
	assert_null(strstr(err.msg, "hunter2"));

	/* a passphrase: the same salt gives the same master, another salt
	 * another; the trailing newline is not part of it */
	p = write_file("pass", "correct horse battery\n", 22, 0600);
	assert_int_equal(seal_secret_read(p, "key_file", &s, &err), 0);
	assert_true(seal_secret_is_passphrase(s));
	assert_int_equal(seal_master_new(s, NULL, &m, &err), 0);
	assert_true(m->has_salt);
	assert_int_equal(seal_master_new(s, m->salt, &m2, &err), 0);
	assert_memory_equal(m->key, m2->key, SEAL_KEY_LEN);
	assert_string_equal(m->fp, m2->fp);
	{
		unsigned char want[SEAL_KEY_LEN];

		assert_int_equal(seal_scrypt("correct horse battery", 21, m->salt, SEAL_SALT_LEN,
					     SEAL_SCRYPT_N, SEAL_SCRYPT_R, SEAL_SCRYPT_P, want,
					     sizeof(want)), 0);
		assert_memory_equal(m->key, want, SEAL_KEY_LEN);
	}
	seal_master_free(m2);
	m2 = NULL;
	m->salt[0] ^= 1;
	assert_int_equal(seal_master_new(s, m->salt, &m2, &err), 0);
	assert_string_not_equal(m->fp, m2->fp);
	seal_master_free(m2);
	seal_master_free(m);
	seal_secret_free(s);
	seal_secret_free(NULL);
	seal_master_free(NULL);
	seal_key_free(NULL);
}

static struct seal_master *test_master(void)
{
	struct seal_master *m = seal_alloc(sizeof(*m));

	assert_non_null(m);
	unhex(KEY_HEX, m->key, SEAL_KEY_LEN);
	assert_int_equal(seal_fingerprint(m->key, m->fp), 0);
	return m;
}

#define ID1 "20261203T080000Z-aaaaaa"
#define ID2 "20261203T080000Z-bbbbbb"

static void test_piece_tamper(void **state)
{
	struct seal_master *m = test_master();
	struct seal_key *k = NULL, *k2 = NULL, *ki = NULL;
	unsigned char plain[1000], sealed[sizeof(plain) + SEAL_TAG_LEN], out[sizeof(sealed)];
	struct err err = { 0 };

	(void)state;
	for (unsigned i = 0; i < sizeof(plain); i++)
		plain[i] = (unsigned char)(i * 7);
	assert_int_equal(seal_key_new(m, ID1, SEAL_KIND_DATA, &k, &err), 0);
	assert_int_equal(seal_key_new(m, ID2, SEAL_KIND_DATA, &k2, &err), 0);
	assert_int_equal(seal_key_new(m, ID1, SEAL_KIND_INDEX, &ki, &err), 0);
	assert_int_equal(seal_piece(k, 5, false, plain, sizeof(plain), sealed, &err), 0);
	assert_memory_not_equal(sealed, plain, sizeof(plain));
	assert_int_equal(seal_unpiece(k, 5, false, sealed, sizeof(sealed), out, &err), 0);
	assert_memory_equal(out, plain, sizeof(plain));
	/* in place */
	memcpy(out, sealed, sizeof(sealed));
	assert_int_equal(seal_unpiece(k, 5, false, out, sizeof(out), out, &err), 0);
	assert_memory_equal(out, plain, sizeof(plain));

	assert_int_equal(seal_unpiece(k, 4, false, sealed, sizeof(sealed), out, &err), -EBADMSG);
	assert_int_equal(seal_unpiece(k, 5, true, sealed, sizeof(sealed), out, &err), -EBADMSG);
	assert_int_equal(seal_unpiece(k2, 5, false, sealed, sizeof(sealed), out, &err), -EBADMSG);
	assert_int_equal(seal_unpiece(ki, 5, false, sealed, sizeof(sealed), out, &err), -EBADMSG);
	assert_int_equal(seal_unpiece(k, 5, false, sealed, sizeof(sealed) - 1, out, &err), -EBADMSG);
	assert_int_equal(seal_unpiece(k, 5, false, sealed, 3, out, &err), -EBADMSG);
	for (size_t bit = 0; bit < sizeof(sealed) * 8; bit += 61) {
		sealed[bit / 8] ^= (unsigned char)(1u << (bit % 8));
		assert_int_equal(seal_unpiece(k, 5, false, sealed, sizeof(sealed), out, &err),
				 -EBADMSG);
		sealed[bit / 8] ^= (unsigned char)(1u << (bit % 8));
	}
	/* the last byte of the tag too */
	sealed[sizeof(sealed) - 1] ^= 0x80;
	assert_int_equal(seal_unpiece(k, 5, false, sealed, sizeof(sealed), out, &err), -EBADMSG);
	/* empty pieces authenticate too */
	assert_int_equal(seal_piece(k, 0, true, NULL, 0, sealed, &err), 0);
	assert_int_equal(seal_unpiece(k, 0, true, sealed, SEAL_TAG_LEN, out, &err), 0);
	assert_int_equal(seal_unpiece(k, 0, false, sealed, SEAL_TAG_LEN, out, &err), -EBADMSG);
	seal_key_free(k);
	seal_key_free(k2);
	seal_key_free(ki);
	seal_master_free(m);
}

static int w_out(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct { unsigned char *p; size_t len; } *b = ctx;

	(void)err;
	b->p = realloc(b->p, b->len + len);
	assert_non_null(b->p);
	memcpy(b->p + b->len, buf, len);
	b->len += len;
	return 0;
}

static void test_stream(void **state)
{
	struct seal_master *m = test_master();
	struct seal_key *k = NULL;
	struct seal_writer *w = NULL;
	const size_t sizes[] = { 0, 1, SEAL_SEGMENT, SEAL_SEGMENT + 1, 3 * SEAL_SEGMENT + 17 };
	const size_t seg = SEAL_SEGMENT + SEAL_TAG_LEN;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(seal_key_new(m, ID1, SEAL_KIND_INDEX, &k, &err), 0);
	for (size_t t = 0; t < sizeof(sizes) / sizeof(sizes[0]); t++) {
		size_t n = sizes[t], olen = 0, plen = 0;
		unsigned char *in = malloc(n + 1);
		void *o = NULL, *p = NULL;
		struct { unsigned char *p; size_t len; } b = { 0 };

		assert_non_null(in);
		for (size_t i = 0; i < n; i++)
			in[i] = (unsigned char)(i ^ (i >> 8));
		assert_int_equal(seal_stream_buf(k, in, n, &o, &olen, &err), 0);
		assert_int_equal(olen, seal_stream_size(n));
		/* the streaming writer writes the same bytes, in any pieces */
		assert_int_equal(seal_writer_new(k, w_out, &b, &w, &err), 0);
		for (size_t i = 0; i < n; i += 1000)
			assert_int_equal(seal_writer_write(w, in + i, n - i < 1000 ? n - i : 1000,
							   &err), 0);
		assert_int_equal(seal_writer_finish(w, &err), 0);
		seal_writer_free(w);
		assert_int_equal(b.len, olen);
		assert_memory_equal(b.p, o, olen);
		free(b.p);
		assert_int_equal(seal_unstream_buf(k, "index", o, olen, &p, &plen, &err), 0);
		assert_int_equal(plen, n);
		assert_memory_equal(p, in, n);
		free(p);
		if (olen > seg) {
			unsigned char *c = o;
			unsigned char *tmp = malloc(seg);

			/* cut at a segment boundary */
			err_clear(&err);
			assert_int_equal(seal_unstream_buf(k, "index", o, seg, &p, &plen, &err),
					 -EBADMSG);
			if (!strstr(err.msg, "truncated"))
				fail_msg("n=%zu olen=%zu: %s", n, olen, err.msg);
			/* the first two segments swapped */
			if (olen >= 2 * seg + SEAL_TAG_LEN) {
				memcpy(tmp, c, seg);
				memmove(c, c + seg, seg);
				memcpy(c + seg, tmp, seg);
				err_clear(&err);
				assert_int_equal(seal_unstream_buf(k, "index", o, olen, &p, &plen, &err),
						 -EBADMSG);
				assert_non_null(strstr(err.msg, "segment 0"));
			}
			free(tmp);
		}
		/* a bit flipped anywhere */
		err_clear(&err);
		((unsigned char *)o)[olen / 2] ^= 4;
		assert_int_equal(seal_unstream_buf(k, "index", o, olen, &p, &plen, &err), -EBADMSG);
		assert_non_null(strstr(err.msg, "does not authenticate"));
		free(o);
		free(in);
	}
	seal_key_free(k);
	seal_master_free(m);
}

static int setup(void **state)
{
	(void)state;
	snprintf(tmpdir, sizeof(tmpdir), "/tmp/test_seal.XXXXXX");
	return mkdtemp(tmpdir) ? 0 : -1;
}

static int teardown(void **state)
{
	char cmd[128];

	(void)state;
	snprintf(cmd, sizeof(cmd), "rm -rf %s", tmpdir);
	return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_hkdf_rfc5869),
		cmocka_unit_test(test_scrypt_rfc7914),
		cmocka_unit_test(test_fingerprint_stable),
		cmocka_unit_test(test_key_files),
		cmocka_unit_test(test_piece_tamper),
		cmocka_unit_test(test_stream),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
