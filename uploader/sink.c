// SPDX-License-Identifier: MIT
#include "uploader/sink.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "common/log.h"
#include "common/util.h"

int sink_open(struct sink *s, struct store *store, const char *key,
	      struct err *err)
{
	struct sink_target t = { .store = store, .key = key };

	return sink_open_multi(s, &t, 1, true, err);
}

/* "region NAME: " before a message that does not name it yet */
static void name_region(struct err *err, const char *region)
{
	if (region && err_strip_region(region, err->msg) == err->msg)
		err_wrap(err, "region %s", region);
}

/* Drop a secondary target: abort its upload, keep why. */
static void drop(struct sink *s, size_t i, int ret, const struct err *why)
{
	s->failed[i] = ret ? ret : -EIO;
	if (why && why != &s->errs[i])
		s->errs[i] = *why;
	store_put_abort(s->w[i]);
	s->w[i] = NULL;
	if (s->failed[i] == -ECANCELED)
		return;       /* the whole run is being cancelled: not news */
	log_warn("region %s: %s; the backup goes on without it",
		 s->region[i] ? s->region[i] : "?",
		 s->region[i] ? err_strip_region(s->region[i], s->errs[i].msg) : s->errs[i].msg);
}

int sink_open_multi(struct sink *s, const struct sink_target *t, size_t n,
		    bool strict, struct err *err)
{
	int ret;

	memset(s, 0, sizeof(*s));
	if (!n || n > SINK_MAX)
		return err_set(err, -EINVAL, "sink: %zu targets (1 to %d)", n, SINK_MAX);
	s->n = n;
	s->strict = strict;
	s->sha = EVP_MD_CTX_new();
	if (!s->sha || !EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL)) {
		sink_abort(s);
		return err_set(err, -ENOMEM, "cannot set up SHA-256 (OpenSSL)");
	}
	for (size_t i = 0; i < n; i++) {
		struct store_put_opts po = { .retain_until = t[i].retain_until };

		s->region[i] = t[i].region;
		ret = store_put_begin_opts(t[i].store, t[i].key, &po, &s->w[i],
					   i == 0 || strict ? err : &s->errs[i]);
		if (!ret)
			continue;
		if (i == 0 || strict) {
			if (i > 0)
				name_region(err, t[i].region);
			sink_abort(s);
			return ret;
		}
		drop(s, i, ret, NULL);
	}
	return 0;
}

int sink_write(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct sink *s = ctx;
	int ret;

	if (!EVP_DigestUpdate(s->sha, buf, len))
		return err_set(err, -EIO, "SHA-256 update failed (OpenSSL)");
	for (size_t i = 0; i < s->n; i++) {
		if (!s->w[i])
			continue;
		ret = store_write(s->w[i], buf, len,
				  i == 0 || s->strict ? err : &s->errs[i]);
		if (!ret)
			continue;
		if (i == 0 || s->strict) {
			if (i > 0)
				name_region(err, s->region[i]);
			return ret;
		}
		drop(s, i, ret, NULL);
	}
	s->bytes += len;
	return 0;
}

int sink_commit(struct sink *s, char hex_ret[65], struct err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int ret = 0;

	if (!EVP_DigestFinal_ex(s->sha, md, &mdlen) || mdlen != 32) {
		sink_abort(s);
		return err_set(err, -EIO, "SHA-256 final failed (OpenSSL)");
	}
	util_hex(md, 32, hex_ret);
	EVP_MD_CTX_free(s->sha);
	s->sha = NULL;
	for (size_t i = 0; i < s->n; i++) {
		struct store_writer *w = s->w[i];
		int r;

		if (!w)
			continue;
		s->w[i] = NULL;
		if (ret) {            /* an earlier strict target failed */
			store_put_abort(w);
			continue;
		}
		r = store_put_commit_info(w, &s->info[i],
					  i == 0 || s->strict ? err : &s->errs[i]);
		if (!r) {
			s->committed[i] = true;
			continue;
		}
		if (i == 0 || s->strict) {
			if (i > 0)
				name_region(err, s->region[i]);
			ret = r;
		} else {
			s->failed[i] = r;
			if (r != -ECANCELED)     /* cancelled: not the region's fault */
				log_warn("region %s: %s; the backup goes on without it",
					 s->region[i] ? s->region[i] : "?",
					 s->region[i] ? err_strip_region(s->region[i], s->errs[i].msg) :
					 s->errs[i].msg);
		}
	}
	return ret;
}

unsigned sink_open_writers(const struct sink *s)
{
	unsigned n = 0;

	for (size_t i = 0; i < s->n && i < SINK_MAX; i++)
		n += s->w[i] != NULL;
	return n;
}

void sink_abort(struct sink *s)
{
	for (size_t i = 0; i < s->n && i < SINK_MAX; i++) {
		store_put_abort(s->w[i]);
		s->w[i] = NULL;
	}
	EVP_MD_CTX_free(s->sha);
	s->sha = NULL;
}
