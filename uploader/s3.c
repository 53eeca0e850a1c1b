// SPDX-License-Identifier: MIT
/*
 * The S3 store: objects in a bucket of AWS S3 or a compatible server (Ceph
 * RGW).  This file holds the store's ops table, the requests it builds,
 * the HTTP engine's hooks (SigV4 signing, fault injection) and the reads,
 * list and delete; see s3_open.c (configuration), s3_put.c (the streamed
 * writer), s3_err.c (S3's errors) and http.c (the engine: one thread per
 * store, retries with backoff and jitter, connection reuse).
 *
 * Every attempt of a request is signed afresh by the sign hook (so a retry
 * minutes later still has a valid date).  No secret reaches a log line or
 * an error: the secret key lives in the store (wiped on free) and in the
 * derived signing key only.
 *
 * Fault injection (SNAPSHIP_FAULT, common/fault.h), checked per HTTP
 * attempt besides the store.* points of store.c: "s3.request" answers an
 * attempt with 503 SlowDown without sending it (transient: retried),
 * "s3.request.fatal" with 403 AccessDenied (permanent).
 */
#include "uploader/s3_priv.h"

#include "common/err.h"
#include "common/fault.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"
#include "uploader/sigv4.h"
#include "uploader/store.h"
#include "uploader/store_driver.h"

#include <curl/curl.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define S3_DELETE_BATCH 1000

/* ------------------------------------------------------------------ */
/* pure helpers (s3.h)                                                 */

char *s3_object_path(const char *path_base, const char *prefix,
		     const char *key)
{
	struct sbuf b = { 0 };
	char *full, *enc;

	if (asprintf(&full, "%s%s", prefix, key) < 0)
		return NULL;
	enc = sigv4_uri_encode(full, strlen(full), true);
	free(full);
	if (!enc)
		return NULL;
	sbuf_add(&b, path_base);
	sbuf_addc(&b, '/');
	sbuf_add(&b, enc);
	free(enc);
	return sbuf_take(&b);
}

void s3_base64(const unsigned char *in, size_t len, char *out)
{
	static const char tab[] =
		"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	size_t i, o = 0;

	for (i = 0; i + 2 < len; i += 3) {
		unsigned v = (unsigned)in[i] << 16 | (unsigned)in[i + 1] << 8 | in[i + 2];

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = tab[v >> 6 & 63];
		out[o++] = tab[v & 63];
	}
	if (i < len) {
		unsigned v = (unsigned)in[i] << 16 | (i + 1 < len ? (unsigned)in[i + 1] << 8 : 0);

		out[o++] = tab[v >> 18 & 63];
		out[o++] = tab[v >> 12 & 63];
		out[o++] = i + 1 < len ? tab[v >> 6 & 63] : '=';
		out[o++] = '=';
	}
	out[o] = '\0';
}

/* ------------------------------------------------------------------ */
/* requests                                                            */

int s3_oom(const struct s3_store *s, struct err *err)
{
	return err_set(err, -ENOMEM, "%s: out of memory", s->who ? s->who : "s3");
}

void s3_req_init(struct s3_store *s, struct s3_req *r, const char *method)
{
	http_req_init(&r->http, method);
	http_req_header_ref(&r->http, "Host", s->host);
	r->http.capture = "x-amz-meta-snapship-sha256";
	if (!strcmp(method, "POST"))
		r->http.content_type = "application/xml";
	strcpy(r->payload, SIGV4_EMPTY_SHA256);
	r->del = false;
}

void s3_req_release(struct s3_req *r)
{
	http_req_release(&r->http);
}

int s3_req_target(struct s3_store *s, struct s3_req *r, const char *key,
		  struct err *err)
{
	free(r->http.path);
	r->http.path = key ? s3_object_path(s->path_base, s->prefix, key) :
			     strdup(s->path_base[0] ? s->path_base : "/");
	if (!r->http.path)
		return err_set(err, -ENOMEM, "%s: out of memory", s->who);
	return 0;
}

int s3_req_query(struct s3_store *s, struct s3_req *r, struct sbuf *q,
		 struct err *err)
{
	free(r->http.query);
	r->http.query = sbuf_take(q);
	if (!r->http.query)
		return err_set(err, -ENOMEM, "%s: out of memory", s->who);
	return 0;
}

int s3_bucket_get(struct s3_store *s, struct s3_req *r, struct sbuf *q, bool del,
		  const char *what, struct err *err)
{
	int ret;

	s3_req_init(s, r, "GET");
	r->del = del;
	r->http.out_max = S3_XMLBODY_MAX;
	r->http.is_read = true;   /* what a listing leads to may not be */
	ret = s3_req_target(s, r, NULL, err);
	if (!ret)
		ret = s3_req_query(s, r, q, err);
	if (!ret)
		ret = http_run(s->http, &r->http, what, err);
	sbuf_free(q);   /* not taken when the target failed */
	return ret;
}

int s3_page_stuck(struct s3_store *s, const char *what, const char *key0,
		  const char *id0, const char *key1, const char *id1, struct err *err)
{
	if (!key0 || !key1 || strcmp(key0, key1))
		return 0;
	if (id1 && (!id0 || strcmp(id0, id1)))
		return 0;
	return err_set(err, -EBADMSG,
		       "%s: %s: the server answered a truncated page whose next marker (\"%.200s\"%s%.100s%s) does not move past the page asked for; stopped rather than list the same page forever (a server fault: report it to the store's operator)",
		       s->who, what, key1, id1 ? " / \"" : "", id1 ? id1 : "", id1 ? "\"" : "");
}

void s3_query_add(struct sbuf *q, const char *name, const char *value)
{
	char *enc;

	if (q->len)
		sbuf_addc(q, '&');
	sbuf_add(q, name);
	if (!value)
		return;
	sbuf_addc(q, '=');
	enc = sigv4_uri_encode(value, strlen(value), false);
	if (!enc) {
		q->oom = true;
		return;
	}
	sbuf_add(q, enc);
	free(enc);
}

int s3_req_body(struct s3_store *s, struct s3_req *r, const void *body,
		size_t len, struct err *err)
{
	r->http.body = body;
	r->http.body_len = len;
	if (sigv4_sha256_hex(len ? body : "", len, r->payload))
		return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)", s->who);
	return 0;
}

int s3_req_md5(struct s3_req *r, const void *body, size_t len)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	char b64[32];

	if (!EVP_Digest(len ? body : "", len, md, &mdlen, EVP_md5(), NULL) ||
	    mdlen != 16)
		return -EIO;
	s3_base64(md, 16, b64);
	http_req_header(&r->http, "Content-MD5", "%s", b64);
	return 0;
}

void s3_what(char *buf, size_t len, const char *verb, const char *key)
{
	if (key)
		snprintf(buf, len, "%s \"%.300s\"", verb, key);
	else
		snprintf(buf, len, "%s", verb);
}

void s3_etag_copy(char *dst, size_t size, const char *v)
{
	size_t len;

	if (!strncmp(v, "W/", 2))
		v += 2;
	if (*v == '"')
		v++;
	len = strlen(v);
	if (len && v[len - 1] == '"')
		len--;
	if (len >= size)
		len = size - 1;
	memcpy(dst, v, len);
	dst[len] = '\0';
}

/* ------------------------------------------------------------------ */
/* the engine's hooks (engine thread)                                  */

/* An injected failure: an answer the server did not give. */
static bool s3_fake(void *ctx, struct http_req *r)
{
	int code = 0;

	(void)ctx;
	if (fault_hit("s3.request", &code)) {
		r->status = 503;
		sbuf_add(&r->errbody, "<?xml version=\"1.0\"?><Error><Code>SlowDown</Code>"
			 "<Message>injected fault (s3.request)</Message></Error>");
	} else if (fault_hit("s3.request.fatal", &code)) {
		r->status = 403;
		sbuf_add(&r->errbody, "<?xml version=\"1.0\"?><Error><Code>AccessDenied</Code>"
			 "<Message>injected fault (s3.request.fatal)</Message></Error>");
	} else {
		return false;
	}
	return true;
}

/* SigV4: the request's headers (Host first) and payload hash, signed now
 * with the day's key (cached in the store). */
static int s3_sign(void *ctx, const struct http_req *hr, struct http_attempt *a)
{
	struct s3_store *s = ctx;
	const struct s3_req *r = S3_REQ_OF(hr);
	bool del = r->del && s->del_own;
	struct sigv4_key *key = del ? &s->del_key : &s->key;
	struct sigv4_header h[HTTP_HDR_MAX];
	struct sigv4_params p = {
		.creds = del ? &s->del_creds : &s->creds,
		.region = s->region, .service = "s3",
		.time = (int64_t)time(NULL),
		.flags = SIGV4_S3 | SIGV4_CONTENT_SHA256,
	};
	struct sigv4_request req = {
		.method = hr->method, .path = hr->path, .query = hr->query,
		.headers = h, .nheaders = hr->nhdrs,
		.payload_sha256 = r->payload,
	};
	struct sigv4_signed sig;
	char day[17];
	struct err err = { 0 };
	int ret;

	for (size_t i = 0; i < hr->nhdrs; i++) {
		h[i].name = hr->hdrs[i].name;
		h[i].value = hr->hdrs[i].value;
	}
	sigv4_amz_date(p.time, day);
	day[8] = '\0';
	if (strcmp(key->date, day) || strcmp(key->region, s->region)) {
		if (sigv4_derive_key(del ? s->del_secret : s->secret, day, s->region,
				     "s3", key, &err))
			return err.code;
	}
	p.key = key;
	ret = sigv4_sign(&p, &req, &sig, &err);
	if (ret)
		return ret;
	for (size_t i = 0; i < sig.nadd; i++)
		http_attempt_header(a, sig.add[i].name, sig.add[i].value);
	sigv4_signed_free(&sig);
	return 0;
}

const struct http_hooks s3_http_hooks = {
	.fake = s3_fake,
	.sign = s3_sign,
	.retry_reason = s3_retry_reason,
	.http_error = s3_hook_http_error,
	.transport_error = s3_hook_transport_error,
};

/* ------------------------------------------------------------------ */
/* reads                                                               */

int s3_head(void *priv, const char *key, struct store_obj_info *info_ret,
	    struct err *err)
{
	struct s3_store *s = priv;
	struct s3_req r;
	char what[400];
	time_t t;
	int ret;

	s3_req_init(s, &r, "HEAD");
	r.http.is_read = true;
	s3_what(what, sizeof(what), "HEAD", key);
	ret = s3_req_target(s, &r, key, err);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	if (!ret && !r.http.have_length)
		ret = err_set(err, -EBADMSG, "%s: %s: no Content-Length in the answer",
			      s->who, what);
	if (!ret) {
		memset(info_ret, 0, sizeof(*info_ret));
		info_ret->size = r.http.content_length;
		t = r.http.last_modified[0] ? curl_getdate(r.http.last_modified, NULL) : -1;
		info_ret->mtime_ns = t == (time_t)-1 ? 0 : (int64_t)t * 1000000000;
		s3_etag_copy(info_ret->etag, sizeof(info_ret->etag), r.http.etag);
		if (strlen(r.http.captured) == 64)
			memcpy(info_ret->sha256, r.http.captured, 65);
	}
	s3_req_release(&r);
	return ret;
}

static int s3_get_range(void *priv, const char *key, uint64_t off, size_t len,
			void *buf, size_t *got_ret, struct err *err)
{
	struct s3_store *s = priv;
	struct store_obj_info info;
	struct s3_req r;
	char what[400];
	int ret;

	*got_ret = 0;
	if (!len)         /* nothing to read, but the object must exist */
		return s3_head(priv, key, &info, err);
	if (off > UINT64_MAX - len)
		return err_set(err, -EINVAL, "%s: reading %s: range out of bounds",
			       s->who, key);
	s3_req_init(s, &r, "GET");
	r.http.fixed = buf;
	r.http.fixed_cap = len;
	r.http.range_off = off;
	r.http.cancellable = true;   /* restore, verify --deep, repair's reads */
	http_req_header(&r.http, "Range", "bytes=%llu-%llu", (unsigned long long)off,
		   (unsigned long long)(off + len - 1));
	s3_what(what, sizeof(what), "GET", key);
	snprintf(r.http.label, sizeof(r.http.label), "%s", what);
	ret = s3_req_target(s, &r, key, err);
	if (!ret) {
		http_submit(s->http, &r.http);
		http_wait(s->http, &r.http);
		if (r.http.result == 0 && r.http.status == 416) {
			/* InvalidRange: off is at or past the end */
			ret = 0;
			r.http.rlen = 0;
		} else {
			ret = http_check(s->http, &r.http, what, err);
		}
	}
	if (!ret)
		*got_ret = r.http.rlen;
	s3_req_release(&r);
	return ret;
}

/* ------------------------------------------------------------------ */
/* list                                                                */

static int s3_list(void *priv, const char *prefix, store_list_fn fn, void *ctx,
		   struct err *err)
{
	struct s3_store *s = priv;
	size_t plen = strlen(s->prefix);
	char *full = NULL, *token = NULL;
	char what[400];
	int ret = 0;

	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
		return s3_oom(s, err);
	s3_what(what, sizeof(what), "ListObjectsV2", full[0] ? full : NULL);
	do {
		struct s3_xml_list page;
		struct sbuf q = { 0 };
		struct s3_req r;

		s3_query_add(&q, "list-type", "2");
		s3_query_add(&q, "max-keys", "1000");
		s3_query_add(&q, "prefix", full);
		if (token)
			s3_query_add(&q, "continuation-token", token);
		ret = s3_bucket_get(s, &r, &q, false, what, err);
		if (!ret)
			ret = s3_xml_list_v2(r.http.out.s, r.http.out.len, &page, err);
		s3_req_release(&r);
		if (ret) {
			if (ret == -EBADMSG)
				err_wrap(err, "%s", s->who);
			break;
		}
		if (page.truncated)
			ret = s3_page_stuck(s, what, token, NULL, page.next_token, NULL, err);
		if (ret) {
			s3_xml_list_free(&page);
			break;
		}
		free(token);
		token = page.truncated ? page.next_token : NULL;
		if (!page.truncated)
			free(page.next_token);
		page.next_token = NULL;
		for (size_t i = 0; i < page.n && !ret; i++) {
			const char *k = page.objs[i].key;
			struct store_obj_info info = {
				.size = page.objs[i].size,
				.mtime_ns = page.objs[i].mtime_ns,
			};

			/* "directory" markers and keys outside our prefix */
			if (strncmp(k, s->prefix, plen) || !k[plen] ||
			    k[strlen(k) - 1] == '/')
				continue;
			ret = fn(ctx, k + plen, &info);
		}
		s3_xml_list_free(&page);
	} while (!ret && token);
	free(token);
	free(full);
	return ret;
}

/* ------------------------------------------------------------------ */
/* delete                                                              */

void s3_iso_time(int64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (!gmtime_r(&tt, &tm) || !strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm))
		snprintf(buf, len, "@%lld", (long long)t);
}

int s3_delete_denied(struct s3_store *s, const char *key, struct err *err)
{
	if (s->del_own)
		return err_set(err, -EACCES,
			       "%s: the prune credentials (prune_access_key_id %s) may not delete \"%.300s\" (AccessDenied); give them s3:DeleteObject (and s3:DeleteObjectVersion on a versioned bucket) in the bucket policy",
			       s->who, s->del_access_key_id, key);
	return err_set(err, -EACCES,
		       "%s: the backup credentials may not delete \"%.300s\" (AccessDenied); deletions need %s",
		       s->who, key, s->fix_del);
}

/* Was r refused with 403 AccessDenied (a policy, not the keys)? */
static bool s3_denied(const struct s3_req *r)
{
	struct s3_xml_error e;

	return r->http.result == 0 && r->http.status == 403 &&
	       s3_xml_error(r->http.errbody.s, r->http.errbody.len, &e) == 1 &&
	       !strcmp(e.code, "AccessDenied");
}

int s3_delete_one(struct s3_store *s, const char *key, struct err *err)
{
	struct s3_req r;
	char what[400];
	int ret;

	if (s->object_lock)
		return s3_delete_versions(s, key, err);
	s3_req_init(s, &r, "DELETE");
	r.del = true;
	s3_what(what, sizeof(what), "DELETE", key);
	snprintf(r.http.label, sizeof(r.http.label), "%s", what);
	ret = s3_req_target(s, &r, key, err);
	if (!ret) {
		http_submit(s->http, &r.http);
		http_wait(s->http, &r.http);
		struct s3_xml_error e;

		/* S3 answers 204 for a missing key: a 404 that is not
		 * NoSuchKey is a missing bucket, which must not pass */
		if (r.http.result == 0 && r.http.status == 404 &&
		    !(s3_xml_error(r.http.errbody.s, r.http.errbody.len, &e) == 1 &&
		      !strcmp(e.code, "NoSuchBucket")))
			ret = 0;            /* already gone */
		else if (s3_denied(&r))
			ret = s3_delete_denied(s, key, err);
		else
			ret = http_check(s->http, &r.http, what, err);
	}
	s3_req_release(&r);
	return ret;
}

/* DeleteObjects of up to 1000 keys; *fallback_ret when unsupported. */
static int delete_batch(struct s3_store *s, const char *const *keys, size_t n,
			bool *fallback_ret, struct err *err)
{
	struct sbuf x = { 0 }, q = { 0 };
	struct s3_xml_deleted d;
	struct s3_xml_error e;
	struct s3_req r;
	int ret;

	*fallback_ret = false;
	sbuf_add(&x, "<Delete xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Quiet>true</Quiet>");
	for (size_t i = 0; i < n; i++) {
		sbuf_add(&x, "<Object><Key>");
		s3_xml_escape(&x, s->prefix);
		s3_xml_escape(&x, keys[i]);
		sbuf_add(&x, "</Key></Object>");
	}
	sbuf_add(&x, "</Delete>");
	if (!sbuf_ok(&x))
		return s3_oom(s, err);
	s3_req_init(s, &r, "POST");
	r.del = true;
	r.http.out_max = S3_XMLBODY_MAX;
	s3_query_add(&q, "delete", NULL);
	ret = s3_req_target(s, &r, NULL, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	if (!ret)
		ret = s3_req_body(s, &r, x.s, x.len, err);
	if (!ret && s3_req_md5(&r, x.s, x.len))
		ret = err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	if (ret)
		goto out;
	snprintf(r.http.label, sizeof(r.http.label), "DeleteObjects (%zu keys)", n);
	http_submit(s->http, &r.http);
	http_wait(s->http, &r.http);
	if (r.http.result == 0 && (r.http.status == 501 || r.http.status == 405 ||
			      (r.http.status == 400 &&
			       s3_xml_error(r.http.errbody.s, r.http.errbody.len, &e) == 1 &&
			       !strcmp(e.code, "NotImplemented")))) {
		*fallback_ret = true;
		goto out;
	}
	if (s3_denied(&r)) {
		ret = s3_delete_denied(s, keys[0], err);
		goto out;
	}
	ret = http_check(s->http, &r.http, "DeleteObjects", err);
	if (ret)
		goto out;
	ret = s3_xml_delete_result(r.http.out.s, r.http.out.len, &d, err);
	if (ret) {
		err_wrap(err, "%s", s->who);
		goto out;
	}
	for (size_t i = 0; i < d.n && !ret; i++) {
		if (!strcmp(d.errs[i].code, "NoSuchKey"))
			continue;
		if (!strcmp(d.errs[i].code, "AccessDenied")) {
			const char *k = d.errs[i].key ? d.errs[i].key : "?";

			if (!strncmp(k, s->prefix, strlen(s->prefix)))
				k += strlen(s->prefix);
			ret = s3_delete_denied(s, k, err);
			break;
		}
		ret = err_set(err, !strcmp(d.errs[i].code, "AccessDenied") ? -EACCES : -EIO,
			      "%s: DELETE \"%.300s\": %s: %.200s", s->who,
			      d.errs[i].key ? d.errs[i].key : "?", d.errs[i].code,
			      d.errs[i].message);
	}
	s3_xml_deleted_free(&d);
out:
	s3_req_release(&r);
	sbuf_free(&x);
	return ret;
}

static int s3_delete(void *priv, const char *const *keys, size_t n,
		     struct err *err)
{
	struct s3_store *s = priv;
	bool fallback = false;
	struct err busy = { 0 };     /* the first key still locked */
	int ret = 0;

	for (size_t i = 0; i < n && !ret;) {
		size_t batch = 0;

		/* keys XML cannot carry go one by one; so do a locked bucket's
		 * (each version by its id) */
		if (fallback || s->object_lock || !s3_xml_text_ok(keys[i]) ||
		    !s3_xml_text_ok(s->prefix)) {
			ret = s3_delete_one(s, keys[i], err);
			if (ret == -EBUSY) {   /* locked: the others still go */
				if (!busy.code && err)
					busy = *err;
				else
					busy.code = ret;
				if (err)
					err_clear(err);
				ret = 0;
			}
			i++;
			continue;
		}
		while (i + batch < n && batch < S3_DELETE_BATCH &&
		       s3_xml_text_ok(keys[i + batch]))
			batch++;
		ret = delete_batch(s, keys + i, batch, &fallback, err);
		if (!ret && !fallback)
			i += batch;
	}
	if (!ret && busy.code) {
		if (err)
			*err = busy;
		ret = -EBUSY;
	}
	return ret;
}

/* ------------------------------------------------------------------ */
/* unfinished multipart uploads                                        */

static int s3_abort_incomplete(void *priv, const char *prefix,
			       unsigned *count_ret, struct err *err)
{
	struct s3_store *s = priv;
	size_t plen = strlen(s->prefix);
	char *full = NULL, *key_marker = NULL, *id_marker = NULL;
	unsigned count = 0;
	int ret = 0;

	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
		return s3_oom(s, err);
	do {
		struct s3_xml_uploads ups;
		struct sbuf q = { 0 };
		struct s3_req r;

		s3_query_add(&q, "uploads", NULL);
		s3_query_add(&q, "prefix", full);
		if (key_marker)
			s3_query_add(&q, "key-marker", key_marker);
		if (id_marker)
			s3_query_add(&q, "upload-id-marker", id_marker);
		ret = s3_bucket_get(s, &r, &q, false, "ListMultipartUploads", err);
		if (!ret)
			ret = s3_xml_uploads(r.http.out.s, r.http.out.len, &ups, err);
		s3_req_release(&r);
		if (ret) {
			if (ret == -EBADMSG)
				err_wrap(err, "%s", s->who);
			break;
		}
		if (ups.truncated)
			ret = s3_page_stuck(s, "ListMultipartUploads", key_marker, id_marker,
					    ups.next_key_marker, ups.next_upload_id_marker, err);
		if (ret) {
			s3_xml_uploads_free(&ups);
			break;
		}
		free(key_marker);
		free(id_marker);
		key_marker = ups.truncated ? ups.next_key_marker : NULL;
		id_marker = ups.truncated ? ups.next_upload_id_marker : NULL;
		if (!ups.truncated) {
			free(ups.next_key_marker);
			free(ups.next_upload_id_marker);
		}
		ups.next_key_marker = ups.next_upload_id_marker = NULL;
		for (size_t i = 0; i < ups.n && !ret; i++) {
			struct err e2 = { 0 };

			if (strncmp(ups.u[i].key, s->prefix, plen))
				continue;
			ret = s3_abort_upload(s, ups.u[i].key + plen,
					   ups.u[i].upload_id, &e2);
			if (ret == -ENOENT) {       /* gone meanwhile */
				ret = 0;
				continue;
			}
			if (ret)
				err_set(err, ret, "%s", e2.msg);
			else
				count++;
		}
		s3_xml_uploads_free(&ups);
	} while (!ret && key_marker);
	free(key_marker);
	free(id_marker);
	free(full);
	if (count_ret)
		*count_ret = count;
	return ret;
}

static uint64_t s3_store_part_size(void *priv)
{
	return ((struct s3_store *)priv)->part_size;
}

const struct store_ops store_s3_ops = {
	.scheme = "s3",
	.features = STORE_FEAT_RANGE | STORE_FEAT_ATOMIC_PUT,
	.open_opts = s3_open,
	.free = s3_free,
	.put_begin = s3_put_begin,
	.put_begin_opts = s3_put_begin_opts,
	.lock_config = s3_lock_config,
	.retain = s3_retain,
	.list_hidden = s3_list_hidden,
	.write = s3_write,
	.put_commit = s3_put_commit,
	.put_abort = s3_put_abort,
	.get_range = s3_get_range,
	.head = s3_head,
	.list = s3_list,
	.delete = s3_delete,
	.abort_incomplete = s3_abort_incomplete,
	.part_size = s3_store_part_size,
};
