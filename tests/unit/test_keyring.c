// SPDX-License-Identifier: MIT
/*
 * A chain's keys (agent/keyring.c): a passphrase incremental reuses its
 * parent's salt (one master key, one fingerprint), the master is made once
 * per salt (the cache returns the same one), a reference's data key opens
 * what the referenced backup sealed; a parent under another key, or a raw
 * key's parent with a passphrase key_file, may not be chained onto (why
 * said).
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

#include "agent/catalog.h"
#include "agent/config.h"
#include "agent/keyring.h"
#include "common/err.h"
#include "common/util.h"
#include "stream/seal.h"

#define ID1 "20261203T000000Z-aaaaaa"
#define ID2 "20261203T000100Z-bbbbbb"

/* A key file of len bytes of text in a new temporary directory. */
static char *key_file(const char *text, char *dir, size_t dlen)
{
	char *path = malloc(dlen + 8);
	int fd;

	assert_non_null(path);
	snprintf(dir, dlen, "/tmp/snapship-keyring-XXXXXX");
	assert_non_null(mkdtemp(dir));
	snprintf(path, dlen + 8, "%s/key", dir);
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL, 0600);
	assert_true(fd >= 0);
	assert_int_equal(write(fd, text, strlen(text)), (ssize_t)strlen(text));
	close(fd);
	return path;
}

static struct keyring *load(char *path)
{
	struct config cfg;
	struct keyring *kr = NULL;
	struct err err = { 0 };

	memset(&cfg, 0, sizeof(cfg));
	cfg.encrypt = true;
	cfg.key_file = path;
	assert_int_equal(keyring_load(&cfg, &kr, &err), 0);
	return kr;
}

/* The manifest fields keyring_chain reads, from bk (backup id). */
static void parent_of(const struct backup_keys *bk, const char *id, struct manifest *p)
{
	memset(p, 0, sizeof(*p));
	snprintf(p->backup_id, sizeof(p->backup_id), "%s", id);
	memcpy(p->enc_fp, bk->fp, sizeof(p->enc_fp));
	if (bk->has_salt)
		util_hex(bk->salt, SEAL_SALT_LEN, p->enc_salt);
}

static void test_passphrase_chain(void **state)
{
	char dir[64], why[512] = "";
	char *path = key_file("correct horse battery staple\n", dir, sizeof(dir));
	struct keyring *kr = load(path);
	struct backup_keys bk1, bk2;
	const struct seal_master *m = NULL, *again = NULL;
	struct seal_key *ref = NULL;
	struct manifest p;
	struct err err = { 0 };
	unsigned char sealed[64], out[64];

	(void)state;
	assert_int_equal(keyring_for_new(kr, ID1, NULL, &bk1, &err), 0);
	assert_true(bk1.has_salt);
	parent_of(&bk1, ID1, &p);
	assert_int_equal(keyring_chain(kr, &p, &m, why, sizeof(why), &err), 0);
	assert_string_equal(m->fp, bk1.fp);
	assert_memory_equal(m->salt, bk1.salt, SEAL_SALT_LEN);
	/* cached: the same master, not stretched again */
	assert_int_equal(keyring_chain(kr, &p, &again, why, sizeof(why), &err), 0);
	assert_ptr_equal(m, again);
	/* the incremental: the parent's salt, so its master and fingerprint */
	assert_int_equal(keyring_for_new(kr, ID2, m->salt, &bk2, &err), 0);
	assert_string_equal(bk2.fp, bk1.fp);
	assert_memory_equal(bk2.salt, bk1.salt, SEAL_SALT_LEN);
	/* its reference's key opens what the parent sealed */
	assert_int_equal(seal_piece(bk1.data, 7, true, "referenced frame", 16, sealed, &err), 0);
	assert_int_equal(keyring_ref_key(&bk2, ID1, &ref, &err), 0);
	assert_int_equal(seal_unpiece(ref, 7, true, sealed, 16 + SEAL_TAG_LEN, out, &err), 0);
	assert_memory_equal(out, "referenced frame", 16);
	/* its own data key does not */
	assert_int_equal(seal_unpiece(bk2.data, 7, true, sealed, 16 + SEAL_TAG_LEN, out, &err),
			 -EBADMSG);
	/* a parent under another key: a new chain */
	p.enc_fp[0] = p.enc_fp[0] == '0' ? '1' : '0';
	assert_int_equal(keyring_chain(kr, &p, &m, why, sizeof(why), &err), 1);
	assert_non_null(strstr(why, "rotated or changed"));
	/* a raw key's parent (no salt) with a passphrase key_file */
	p.enc_salt[0] = '\0';
	assert_int_equal(keyring_chain(kr, &p, &m, why, sizeof(why), &err), 1);
	assert_non_null(strstr(why, "was made with a raw key"));
	seal_key_free(ref);
	backup_keys_clear(&bk1);
	backup_keys_clear(&bk2);
	keyring_free(kr);
	unlink(path);
	rmdir(dir);
	free(path);
}

static void test_raw_chain(void **state)
{
	char dir[64], why[512] = "";
	char *path = key_file("0123456789abcdef0123456789abcdef", dir, sizeof(dir));
	struct keyring *kr = load(path);
	struct backup_keys bk1;
	const struct seal_master *m = NULL;
	struct manifest p;
	struct err err = { 0 };

	(void)state;
	assert_int_equal(keyring_for_new(kr, ID1, NULL, &bk1, &err), 0);
	assert_false(bk1.has_salt);
	parent_of(&bk1, ID1, &p);
	assert_int_equal(keyring_chain(kr, &p, &m, why, sizeof(why), &err), 0);
	assert_string_equal(m->fp, bk1.fp);
	/* a passphrase's parent (a salt) with a raw key_file */
	snprintf(p.enc_salt, sizeof(p.enc_salt), "%032x", 1);
	assert_int_equal(keyring_chain(kr, &p, &m, why, sizeof(why), &err), 1);
	assert_non_null(strstr(why, "was made with a passphrase"));
	backup_keys_clear(&bk1);
	keyring_free(kr);
	unlink(path);
	rmdir(dir);
	free(path);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_passphrase_chain),
		cmocka_unit_test(test_raw_chain),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
