// SPDX-License-Identifier: MIT
/*
 * snapship cat: a backup's (opened) data stream.  See cat.h.
 */
#include "agent/cat.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>

#include "agent/catalog.h"
#include "agent/keyring.h"
#include "common/err.h"
#include "common/util.h"
#include "stream/frame.h"
#include "stream/seal.h"
#include "uploader/store.h"

struct cat {
	struct store *store;
	const struct manifest *m;
	int fd;
	EVP_MD_CTX *sha;
	uint64_t out;
	struct seek_table *st;
	unsigned char *tail;      /* the stored seek table */
	size_t tail_len;
};

static void put_le32(unsigned char *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (unsigned char)(v >> (8 * i));
}

static int cat_write(struct cat *c, const void *buf, size_t len, struct err *err)
{
	int ret = util_write_all(c->fd, buf, len);

	if (ret)
		return err_set(err, ret, "writing the data stream: %s", err_str(ret));
	c->out += len;
	return 0;
}

static int cat_read(struct cat *c, uint64_t off, size_t len, void *buf, bool hash,
		    struct err *err)
{
	size_t got = 0;
	int ret = store_get_range(c->store, c->m->data_key, off, len, buf, &got, err);

	if (!ret && got != len)
		ret = err_set(err, -EBADMSG, "%s: short read at byte %llu (truncated?)",
			      c->m->data_key, (unsigned long long)off);
	if (!ret && hash && !EVP_DigestUpdate(c->sha, buf, len))
		ret = err_set(err, -EIO, "SHA-256 failed");
	return ret;
}

/* c->st and c->tail from the end of the object. */
static int cat_table(struct cat *c, struct err *err)
{
	unsigned char foot[SEEK_FOOTER_SIZE];
	uint64_t size = c->m->data_size;
	size_t need = 0;
	int ret;

	if (size < SEEK_FOOTER_SIZE)
		return err_set(err, -EBADMSG, "%s: too short for a seek table", c->m->data_key);
	ret = cat_read(c, size - SEEK_FOOTER_SIZE, SEEK_FOOTER_SIZE, foot, false, err);
	if (!ret)
		ret = seek_table_size(foot, sizeof(foot), size, &need, NULL, err);
	if (ret)
		return ret;
	c->tail = malloc(need);
	if (!c->tail)
		return err_set(err, -ENOMEM, "out of memory");
	c->tail_len = need;
	ret = cat_read(c, size - need, need, c->tail, false, err);
	if (!ret)
		ret = seek_table_parse(c->tail, need, size, c->m->frame_size, &c->st, err);
	return ret;
}

/* A plain table for frames of sealed sizes minus the tag. */
static int cat_plain_table(struct cat *c, struct err *err)
{
	size_t n = c->st->nframes, len = 8 + 8 * n + SEEK_FOOTER_SIZE;
	unsigned char *t = malloc(len), *p;
	int ret;

	if (!t)
		return err_set(err, -ENOMEM, "out of memory");
	p = t;
	put_le32(p, SEEK_SKIPPABLE_MAGIC);
	put_le32(p + 4, (uint32_t)(len - 8));
	p += 8;
	for (size_t i = 0; i < n; i++, p += 8) {
		put_le32(p, c->st->e[i].c_size - SEAL_TAG_LEN);
		put_le32(p + 4, c->st->e[i].d_size);
	}
	put_le32(p, (uint32_t)n);
	p[4] = 0;
	put_le32(p + 5, SEEK_MAGIC);
	ret = cat_write(c, t, len, err);
	free(t);
	return ret;
}

static int cat_frames(struct cat *c, struct err *err)
{
	unsigned char *buf = NULL;
	size_t cap = 0;
	int ret = 0;

	for (uint32_t k = 0; !ret && k < c->st->nframes; k++) {
		const struct seek_entry *e = &c->st->e[k];
		size_t out = c->st->seal ? e->c_size - SEAL_TAG_LEN : e->c_size;

		if (e->c_size > cap) {
			free(buf);
			cap = e->c_size;
			buf = malloc(cap);
			if (!buf)
				return err_set(err, -ENOMEM, "out of memory");
		}
		ret = cat_read(c, e->c_off, e->c_size, buf, true, err);
		if (!ret)
			ret = seek_table_open_frame(c->st, k, buf, e->c_size, buf, err);
		if (!ret)
			ret = cat_write(c, buf, out, err);
	}
	free(buf);
	return ret;
}

int cat_backup(struct store *store, const struct manifest *m,
	       const struct keyring *kr, int fd, uint64_t *bytes_ret,
	       struct err *err)
{
	struct cat c = { .store = store, .m = m, .fd = fd };
	struct backup_keys bk;
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];
	int ret;

	ret = keyring_for_backup(kr, m, &bk, err);
	if (ret)
		return ret;
	c.sha = EVP_MD_CTX_new();
	if (!c.sha || !EVP_DigestInit_ex(c.sha, EVP_sha256(), NULL)) {
		ret = err_set(err, -ENOMEM, "out of memory");
		goto out;
	}
	ret = cat_table(&c, err);
	if (ret)
		goto out_wrap;
	c.st->seal = bk.data;
	ret = cat_frames(&c, err);
	if (!ret)
		ret = c.st->seal ? cat_plain_table(&c, err) : cat_write(&c, c.tail, c.tail_len, err);
	if (ret)
		goto out_wrap;
	EVP_DigestUpdate(c.sha, c.tail, c.tail_len);
	EVP_DigestFinal_ex(c.sha, md, &mdlen);
	util_hex(md, 32, hex);
	if (strcmp(hex, m->data_sha256))
		ret = err_set(err, -EBADMSG, "%s differs from the SHA-256 in its manifest (altered after the backup); the stream written is not to be trusted",
			      m->data_key);
	if (bytes_ret)
		*bytes_ret = c.out;
out_wrap:
	if (ret)
		err_wrap(err, "backup %s", m->backup_id);
out:
	EVP_MD_CTX_free(c.sha);
	seek_table_free(c.st);
	free(c.tail);
	backup_keys_clear(&bk);
	return ret;
}
