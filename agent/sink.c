// SPDX-License-Identifier: MIT
#include "agent/sink.h"

#include <errno.h>
#include <openssl/evp.h>
#include <string.h>

#include "common/err.h"
#include "common/util.h"
#include "uploader/store.h"

int sink_open(struct sink *s, struct store *store, const char *key,
	      struct err *err)
{
	int ret;

	memset(s, 0, sizeof(*s));
	s->sha = EVP_MD_CTX_new();
	if (!s->sha || !EVP_DigestInit_ex(s->sha, EVP_sha256(), NULL)) {
		sink_abort(s);
		return err_set(err, -ENOMEM, "cannot set up SHA-256 (OpenSSL)");
	}
	ret = store_put_begin(store, key, &s->w, err);
	if (ret) {
		sink_abort(s);
		return ret;
	}
	return 0;
}

int sink_write(void *ctx, const void *buf, size_t len, struct err *err)
{
	struct sink *s = ctx;
	int ret;

	if (!EVP_DigestUpdate(s->sha, buf, len))
		return err_set(err, -EIO, "SHA-256 update failed (OpenSSL)");
	ret = store_write(s->w, buf, len, err);
	if (ret)
		return ret;
	s->bytes += len;
	return 0;
}

int sink_commit(struct sink *s, char hex[65], struct err *err)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	int ret;

	if (!EVP_DigestFinal_ex(s->sha, md, &mdlen) || mdlen != 32) {
		sink_abort(s);
		return err_set(err, -EIO, "SHA-256 final failed (OpenSSL)");
	}
	util_hex(md, 32, hex);
	ret = store_put_commit(s->w, err);
	s->w = NULL;
	EVP_MD_CTX_free(s->sha);
	s->sha = NULL;
	return ret;
}

void sink_abort(struct sink *s)
{
	store_put_abort(s->w);
	s->w = NULL;
	EVP_MD_CTX_free(s->sha);
	s->sha = NULL;
}
