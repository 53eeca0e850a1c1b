// SPDX-License-Identifier: MIT
/*
 * Key files of a run and the keys of one backup.  See keyring.h.
 */
#include "agent/keyring.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include "agent/catalog.h"
#include "agent/config.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"

/* A master key made from a key file (with a salt, for a passphrase). */
struct cache_ent {
	const struct seal_secret *s;
	struct seal_master *m;        /* owned */
};

struct keyring_cache {
	pthread_mutex_t mu;
	struct cache_ent *e;
	size_t n, cap;
};

static void cache_free(struct keyring_cache *c)
{
	if (!c)
		return;
	for (size_t i = 0; i < c->n; i++)
		seal_master_free(c->e[i].m);
	free(c->e);
	pthread_mutex_destroy(&c->mu);
	free(c);
}

/* The master of s (a passphrase's stretched with salt, which it needs),
 * from the cache or made and kept: *m_ret is kr's (valid while kr is). */
static int cache_master(const struct keyring *kr, const struct seal_secret *s,
			const unsigned char *salt, const struct seal_master **m_ret,
			struct err *err)
{
	struct keyring_cache *c = kr->cache;
	bool pass = seal_secret_is_passphrase(s);
	struct seal_master *m = NULL;
	int ret = 0;

	if (pass && !salt)
		return err_set(err, -EINVAL, "cache_master: a passphrase needs a salt");
	pthread_mutex_lock(&c->mu);
	for (size_t i = 0; i < c->n; i++) {
		if (c->e[i].s == s && (!pass || !memcmp(c->e[i].m->salt, salt, SEAL_SALT_LEN))) {
			*m_ret = c->e[i].m;
			goto out;
		}
	}
	if (c->n == c->cap) {
		size_t cap = c->cap ? 2 * c->cap : 8;
		struct cache_ent *e = realloc(c->e, cap * sizeof(*e));

		if (!e) {
			ret = err_set(err, -ENOMEM, "out of memory");
			goto out;
		}
		c->e = e;
		c->cap = cap;
	}
	if (pass)
		log_debug("%s: stretching the passphrase (scrypt)", seal_secret_path(s));
	ret = seal_master_new(s, salt, &m, err);
	if (ret)
		goto out;
	c->e[c->n++] = (struct cache_ent){ s, m };
	*m_ret = m;
out:
	pthread_mutex_unlock(&c->mu);
	return ret;
}

/* old_key_files: "PATH[, PATH...]" into kr->old. */
static int load_old(struct keyring *kr, const char *list, struct err *err)
{
	char *dup = strdup(list), *save = NULL;
	int ret = 0;

	if (!dup)
		return err_set(err, -ENOMEM, "out of memory");
	for (char *p = strtok_r(dup, ",", &save); p; p = strtok_r(NULL, ",", &save)) {
		char *end;

		while (*p == ' ' || *p == '\t')
			p++;
		end = p + strlen(p);
		while (end > p && (end[-1] == ' ' || end[-1] == '\t'))
			*--end = '\0';
		if (!*p)
			continue;
		if (kr->nold == KEYRING_OLD_MAX) {
			ret = err_set(err, -EINVAL, "old_key_files lists more than %d files; keep the keys of the backups you still hold",
				      KEYRING_OLD_MAX);
			break;
		}
		ret = seal_secret_read(p, "old_key_files", &kr->old[kr->nold], err);
		if (ret)
			break;
		kr->nold++;
	}
	free(dup);
	return ret;
}

int keyring_load(const struct config *cfg, struct keyring **kr_ret,
		 struct err *err)
{
	struct keyring *kr = calloc(1, sizeof(*kr));
	int ret = 0;

	*kr_ret = NULL;
	if (!kr)
		return err_set(err, -ENOMEM, "out of memory");
	kr->encrypt = cfg->encrypt;
	kr->cache = calloc(1, sizeof(*kr->cache));
	if (!kr->cache) {
		free(kr);
		return err_set(err, -ENOMEM, "out of memory");
	}
	pthread_mutex_init(&kr->cache->mu, NULL);
	if (cfg->encrypt && !cfg->key_file) {
		ret = err_set(err, -EINVAL,
			      "[agent] encryption = aes-256-gcm needs key_file = PATH (snapship key generate PATH makes one)");
		goto out_free;
	}
	if (cfg->key_file)
		ret = seal_secret_read(cfg->key_file, "key_file", &kr->cur, err);
	if (!ret && cfg->old_key_files)
		ret = load_old(kr, cfg->old_key_files, err);
	if (ret)
		goto out_free;
	*kr_ret = kr;
	return 0;

out_free:
	keyring_free(kr);
	return ret;
}

void keyring_free(struct keyring *kr)
{
	if (!kr)
		return;
	cache_free(kr->cache);
	seal_secret_free(kr->cur);
	for (size_t i = 0; i < kr->nold; i++)
		seal_secret_free(kr->old[i]);
	free(kr);
}

/* bk's three keys from master m for backup id. */
static int derive(const struct seal_master *m, const char *id,
		  struct backup_keys *bk, struct err *err)
{
	int ret;

	ret = seal_key_new(m, id, SEAL_KIND_DATA, &bk->data, err);
	if (!ret)
		ret = seal_key_new(m, id, SEAL_KIND_INDEX, &bk->index, err);
	if (!ret)
		ret = seal_key_new(m, id, SEAL_KIND_MANIFEST, &bk->manifest, err);
	if (!ret && !(bk->master = seal_alloc(sizeof(*bk->master))))
		ret = err_set(err, -ENOMEM, "out of memory");
	if (!ret)
		memcpy(bk->master, m, sizeof(*m));
	memcpy(bk->fp, m->fp, sizeof(bk->fp));
	bk->has_salt = m->has_salt;
	memcpy(bk->salt, m->salt, sizeof(bk->salt));
	if (ret)
		backup_keys_clear(bk);
	return ret;
}

int keyring_for_new(const struct keyring *kr, const char *backup_id,
		    const unsigned char *salt, struct backup_keys *bk,
		    struct err *err)
{
	unsigned char fresh[SEAL_SALT_LEN];
	const struct seal_master *m = NULL;
	int ret;

	memset(bk, 0, sizeof(*bk));
	if (!kr || !kr->encrypt || !kr->cur)
		return err_set(err, -EINVAL, "keyring_for_new: encryption is off");
	if (!salt && seal_secret_is_passphrase(kr->cur)) {
		ret = util_random(fresh, sizeof(fresh));
		if (ret)
			return err_set(err, ret, "getrandom: %s", err_str(ret));
		salt = fresh;
	}
	ret = cache_master(kr, kr->cur, salt, &m, err);
	if (!ret)
		ret = derive(m, backup_id, bk, err);
	return ret;
}

int keyring_chain(const struct keyring *kr, const struct manifest *p,
		  const struct seal_master **m_ret, char *why, size_t why_len,
		  struct err *err)
{
	unsigned char salt[SEAL_SALT_LEN];
	const struct seal_master *m = NULL;
	bool pass = seal_secret_is_passphrase(kr->cur);
	int ret;

	*m_ret = NULL;
	if (pass != (p->enc_salt[0] != '\0')) {
		snprintf(why, why_len, "the parent %s was made with a %s, key_file %s is a %s (a new chain starts)",
			 p->backup_id, pass ? "raw key" : "passphrase", seal_secret_path(kr->cur),
			 pass ? "passphrase" : "raw key");
		return 1;
	}
	for (unsigned i = 0; pass && i < SEAL_SALT_LEN; i++)
		salt[i] = (unsigned char)(util_hexval(p->enc_salt[2 * i]) << 4 |
					  util_hexval(p->enc_salt[2 * i + 1]));
	ret = cache_master(kr, kr->cur, pass ? salt : NULL, &m, err);
	if (ret)
		return ret;
	if (strcmp(m->fp, p->enc_fp)) {
		snprintf(why, why_len, "the parent %s is encrypted with key %s, key_file %s has %s: the key was rotated or changed, a new chain starts",
			 p->backup_id, p->enc_fp, seal_secret_path(kr->cur), m->fp);
		return 1;
	}
	*m_ret = m;
	return 0;
}

int keyring_ref_key(const struct backup_keys *bk, const char *id,
		    struct seal_key **k_ret, struct err *err)
{
	*k_ret = NULL;
	if (!bk->master)
		return err_set(err, -EINVAL, "keyring_ref_key: a plain backup");
	return seal_key_new(bk->master, id, SEAL_KIND_DATA, k_ret, err);
}

/* The master of secret s with m's salt, when its fingerprint is m's:
 * 1 (found, *out set), 0 (another key: its fingerprint appended to
 * have), negative (failed). */
static int try_secret(const struct keyring *kr, const struct seal_secret *s,
		      const struct manifest *m, const unsigned char *salt,
		      const char *name, const struct seal_master **out, char *have,
		      size_t hlen, struct err *err)
{
	const struct seal_master *k = NULL;
	size_t used = strlen(have);
	int ret;

	if (seal_secret_is_passphrase(s) && !salt) {
		/* the backup was made with a raw key: no salt to stretch with */
		snprintf(have + used, hlen - used, "%s%s %s is a passphrase (the backup was made with a raw key)",
			 used ? "; " : "", name, seal_secret_path(s));
		return 0;
	}
	ret = cache_master(kr, s, salt, &k, err);
	if (ret)
		return ret;
	if (!strcmp(k->fp, m->enc_fp)) {
		*out = k;
		return 1;
	}
	snprintf(have + used, hlen - used, "%s%s %s has %s", used ? "; " : "", name,
		 seal_secret_path(s), k->fp);
	return 0;
}

int keyring_for_backup(const struct keyring *kr, const struct manifest *m,
		       struct backup_keys *bk, struct err *err)
{
	unsigned char salt[SEAL_SALT_LEN];
	const struct seal_master *k = NULL;
	char have[1024] = "";
	int ret = 0;

	memset(bk, 0, sizeof(*bk));
	if (!m->enc_fp[0])
		return 0;
	for (unsigned i = 0; m->enc_salt[0] && i < SEAL_SALT_LEN; i++)
		salt[i] = (unsigned char)(util_hexval(m->enc_salt[2 * i]) << 4 |
					  util_hexval(m->enc_salt[2 * i + 1]));
	if (kr && kr->cur)
		ret = try_secret(kr, kr->cur, m, m->enc_salt[0] ? salt : NULL, "key_file", &k,
				 have, sizeof(have), err);
	for (size_t i = 0; kr && !ret && i < kr->nold; i++)
		ret = try_secret(kr, kr->old[i], m, m->enc_salt[0] ? salt : NULL, "old_key_files",
				 &k, have, sizeof(have), err);
	if (ret < 0)
		return ret;
	if (!ret)
		return err_set(err, -ENOKEY,
			       "backup %s is encrypted with key %s; %s: none matches. Give the key it was made with as key_file or in old_key_files",
			       m->backup_id, m->enc_fp,
			       have[0] ? have : "no key_file or old_key_files is configured");
	return derive(k, m->backup_id, bk, err);
}

void backup_keys_clear(struct backup_keys *bk)
{
	seal_key_free(bk->data);
	seal_key_free(bk->index);
	seal_key_free(bk->manifest);
	seal_master_free(bk->master);
	OPENSSL_cleanse(bk, sizeof(*bk));
}

/* The sensitive fields of m as JSON text (malloc'd; NULL: out of memory). */
static char *sensitive_json(const struct manifest *m)
{
	json_t *hooks = json_array(), *o;
	char *s;

	for (size_t i = 0; hooks && m->hooks && m->hooks[i]; i++)
		json_array_append_new(hooks, json_string(m->hooks[i]));
	o = json_pack("{s:s?, s:s, s:o?}", "source", m->source, "source_uuid", m->source_uuid,
		      "hooks", hooks);
	if (!o)
		return NULL;
	s = json_dumps(o, JSON_COMPACT);
	json_decref(o);
	return s;
}

int keyring_seal_manifest(const struct backup_keys *bk, struct manifest *m,
			  struct err *err)
{
	char *plain = sensitive_json(m), *b64 = NULL, *enc = strdup(SEAL_ALG);
	void *sealed = NULL;
	size_t slen = 0;
	int ret;

	if (!plain || !enc) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = seal_stream_buf(bk->manifest, plain, strlen(plain), &sealed, &slen, err);
	if (ret)
		goto out;
	b64 = malloc(4 * ((slen + 2) / 3) + 1);
	if (!b64) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	EVP_EncodeBlock((unsigned char *)b64, sealed, (int)slen);
	free(m->enc_sealed);
	m->enc_sealed = b64;
	b64 = NULL;
	free(m->encryption);
	m->encryption = enc;
	enc = NULL;
	memcpy(m->enc_fp, bk->fp, sizeof(m->enc_fp));
	m->enc_salt[0] = '\0';
	if (bk->has_salt)
		util_hex(bk->salt, SEAL_SALT_LEN, m->enc_salt);
out:
	if (plain)
		OPENSSL_cleanse(plain, strlen(plain));
	free(plain);
	free(sealed);
	free(b64);
	free(enc);
	return ret;
}

/* Put the fields of the JSON text back into m. */
static int fill_sensitive(struct manifest *m, const char *text, size_t len, struct err *err)
{
	json_t *o = json_loadb(text, len, 0, NULL), *hooks = NULL;
	const char *src = NULL, *uuid = "";
	size_t n;

	if (!o || json_unpack(o, "{s?s, s?s, s?o}", "source", &src, "source_uuid", &uuid,
			      "hooks", &hooks) || strlen(uuid) > 36 ||
	    (hooks && !json_is_array(hooks))) {
		json_decref(o);
		return err_set(err, -EBADMSG, "backup %s: its sealed manifest fields are malformed",
			       m->backup_id);
	}
	n = hooks ? json_array_size(hooks) : 0;
	for (size_t i = 0; m->hooks && m->hooks[i]; i++)
		free(m->hooks[i]);
	free(m->hooks);
	free(m->source);
	m->source = src ? strdup(src) : NULL;
	strcpy(m->source_uuid, uuid);
	m->hooks = calloc(n + 1, sizeof(char *));
	for (size_t i = 0; m->hooks && i < n; i++) {
		const char *h = json_string_value(json_array_get(hooks, i));

		m->hooks[i] = strdup(h ? h : "");
	}
	json_decref(o);
	return 0;
}

int keyring_unseal_manifest(const struct backup_keys *bk, struct manifest *m,
			    struct err *err)
{
	size_t b64len, len = 0, plen = 0;
	unsigned char *sealed;
	void *plain = NULL;
	char what[96];
	int n, ret;

	if (!m->enc_sealed || !bk->manifest)
		return 0;
	b64len = strlen(m->enc_sealed);
	sealed = malloc(b64len / 4 * 3 + 3);
	if (!sealed)
		return err_set(err, -ENOMEM, "out of memory");
	n = EVP_DecodeBlock(sealed, (const unsigned char *)m->enc_sealed, (int)b64len);
	if (n < 0 || b64len % 4) {
		free(sealed);
		return err_set(err, -EBADMSG, "backup %s: encryption.sealed is not base64", m->backup_id);
	}
	len = (size_t)n;
	for (size_t i = b64len; i > 0 && m->enc_sealed[i - 1] == '=' && len; i--)
		len--;
	snprintf(what, sizeof(what), "backup %s: the manifest's sealed fields", m->backup_id);
	ret = seal_unstream_buf(bk->manifest, what, sealed, len, &plain, &plen, err);
	free(sealed);
	if (!ret)
		ret = fill_sensitive(m, plain, plen, err);
	free(plain);
	return ret;
}

int keyring_generate(const char *path, struct err *err)
{
	unsigned char *key = seal_alloc(SEAL_KEY_LEN);
	int fd, ret;

	if (!key)
		return err_set(err, -ENOMEM, "out of memory");
	ret = util_random(key, SEAL_KEY_LEN);
	if (ret) {
		err_set(err, ret, "getrandom: %s", err_str(ret));
		goto out_free;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC | O_NOFOLLOW, 0600);
	if (fd < 0) {
		ret = err_set(err, -errno, errno == EEXIST ?
			      "%s exists: snapship key generate never overwrites a key (backups may need it); give a new file name" :
			      "cannot create %s: %s", path, err_str(-errno));
		goto out_free;
	}
	ret = util_write_all(fd, key, SEAL_KEY_LEN);
	if (!ret && fsync(fd))
		ret = -errno;
	if (close(fd) && !ret)
		ret = -errno;
	if (ret) {
		err_set(err, ret, "writing %s: %s", path, err_str(ret));
		unlink(path);
	}
out_free:
	seal_free(key, SEAL_KEY_LEN);
	return ret;
}
