// SPDX-License-Identifier: MIT
/*
 * The S3 store's streamed writer.  Bytes fill a part buffer; a small object
 * that never fills one part is sent with one PutObject at commit; a bigger
 * one becomes a multipart upload whose parts go up in parallel
 * (parts_in_flight) while the next is filled, each with its payload SHA-256
 * signed so the server checks every byte.  Memory: (parts_in_flight + 1)
 * part buffers, reused.  Part sizes grow with the part number
 * (s3_part_size()) because the final size is unknown and S3 allows at most
 * 10,000 parts.
 *
 * User metadata x-amz-meta-snapship-sha256 (the SHA-256 of the object) is
 * set on single-request objects only: a multipart upload's metadata must be
 * given when it is created, before the bytes are known.  The manifest
 * records every object's SHA-256 either way.
 *
 * Threads: the writer's own thread fills parts and waits for free slots;
 * the engine thread ends parts (part_done).  w->lock guards what both
 * touch: busy, failed, in_flight, etags.  Lock order: w->lock, then the
 * engine's (http_cancel() under w->lock); part_done runs without the
 * engine's lock.
 */
#include "uploader/s3_priv.h"

#include "common/err.h"
#include "common/log.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"
#include "uploader/store.h"

#include <errno.h>
#include <openssl/evp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define S3_BUF_MIN (64u << 10)           /* first allocation of a part buffer */

/* ------------------------------------------------------------------ */
/* part sizes (s3.h)                                                   */

uint64_t s3_part_size(uint64_t base, unsigned n)
{
	uint64_t size = base;
	unsigned steps;

	if (!n || n > S3_MAX_PARTS || !base)
		return 0;
	steps = (n - 1) / S3_PART_GROWTH_EVERY;
	while (steps-- && size < S3_MAX_PART_SIZE)
		size *= 2;
	return size > S3_MAX_PART_SIZE ? S3_MAX_PART_SIZE : size;
}

uint64_t s3_parts_capacity(uint64_t base, unsigned n)
{
	uint64_t total = 0;

	for (unsigned i = 1; i <= n && i <= S3_MAX_PARTS; i++)
		total += s3_part_size(base, i);
	return total;
}

/* ------------------------------------------------------------------ */
/* the writer                                                          */

struct s3_part {
	struct s3_req req;
	char *buf;
	size_t cap, len;
	EVP_MD_CTX *sha;
	unsigned number;
	bool busy;                  /* uploading */
	bool failed;                /* req holds the error */
};

struct s3_writer {
	struct s3_store *s;
	char *key;                  /* store key, for messages */
	char *upload_id;
	struct s3_part *parts;      /* inflight + 1 slots */
	unsigned nparts;
	struct s3_part *cur;        /* being filled */
	unsigned next_number;       /* of cur */
	char **etags;               /* [number - 1], under w->lock */
	unsigned netags;
	unsigned in_flight;         /* under w->lock */
	uint64_t bytes;             /* written so far */
	int64_t retain_until;       /* Object Lock until (unix s), 0 none */
	pthread_mutex_t lock;       /* with part_done on the engine thread */
	pthread_cond_t cond;        /* a part ended */
};

static void writer_free(struct s3_writer *w)
{
	for (unsigned i = 0; i < w->nparts; i++) {
		s3_req_release(&w->parts[i].req);
		free(w->parts[i].buf);
		EVP_MD_CTX_free(w->parts[i].sha);
	}
	for (unsigned i = 0; i < w->netags; i++)
		free(w->etags[i]);
	free(w->etags);
	free(w->parts);
	free(w->upload_id);
	free(w->key);
	pthread_mutex_destroy(&w->lock);
	pthread_cond_destroy(&w->cond);
	free(w);
}

int s3_put_begin(void *priv, const char *key, void **wpriv_ret,
		 struct err *err)
{
	return s3_put_begin_opts(priv, key, NULL, wpriv_ret, err);
}

int s3_put_begin_opts(void *priv, const char *key,
		      const struct store_put_opts *po, void **wpriv_ret,
		      struct err *err)
{
	struct s3_store *s = priv;
	struct s3_writer *w = calloc(1, sizeof(*w));

	if (!w)
		return s3_oom(s, err);
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->s = s;
	w->key = strdup(key);
	if (po && s->object_lock)
		w->retain_until = po->retain_until;
	w->nparts = s->inflight + 1;
	w->parts = calloc(w->nparts, sizeof(*w->parts));
	w->next_number = 1;
	if (!w->key || !w->parts) {
		writer_free(w);
		return s3_oom(s, err);
	}
	*wpriv_ret = w;
	return 0;
}

/* The error a failed part left (writer thread). */
static int part_error(struct s3_writer *w, struct s3_part *p, struct err *err)
{
	char what[400];
	int ret;

	snprintf(what, sizeof(what), "PUT \"%.300s\" part %u", w->key, p->number);
	ret = http_check(w->s->http, &p->req.http, what, err);
	if (!ret)        /* 2xx without an ETag */
		ret = err_set(err, -EBADMSG,
			      "%s: %s: the server's answer has no ETag",
			      w->s->who, what);
	return ret;
}

/* A free slot for the next part: waits while all are uploading. */
static int take_slot(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = NULL, *failed = NULL;
	uint64_t cur = s3_part_size(s->part_size, w->next_number);
	uint64_t budget = (uint64_t)w->nparts * s->part_size;
	unsigned usable = w->nparts;

	/*
	 * Parts grow every 1,000 parts; fewer of them at once keep the buffers
	 * within the memory the first part size promised (never fewer than
	 * one filling and one in flight).  Slots given up free their buffers.
	 */
	if (cur && cur * usable > budget) {
		usable = (unsigned)(budget / cur);
		if (usable < 2)
			usable = 2;
	}
	pthread_mutex_lock(&w->lock);
	for (;;) {
		for (unsigned i = 0; i < w->nparts && !failed; i++)
			if (w->parts[i].failed)
				failed = &w->parts[i];
		if (failed)
			break;
		for (unsigned i = 0; i < usable && !p; i++)
			if (!w->parts[i].busy)
				p = &w->parts[i];
		if (p)
			break;
		pthread_cond_wait(&w->cond, &w->lock);
	}
	for (unsigned i = usable; i < w->nparts; i++) {
		if (!w->parts[i].busy && w->parts[i].buf) {
			free(w->parts[i].buf);
			w->parts[i].buf = NULL;
			w->parts[i].cap = 0;
		}
	}
	pthread_mutex_unlock(&w->lock);
	if (failed)
		return part_error(w, failed, err);
	if (!p->sha)
		p->sha = EVP_MD_CTX_new();
	if (!p->sha || !EVP_DigestInit_ex(p->sha, EVP_sha256(), NULL))
		return err_set(err, -EIO, "%s: SHA-256 init failed (OpenSSL)", s->who);
	s3_req_release(&p->req);
	p->len = 0;
	w->cur = p;
	return 0;
}

/* A part ended (engine thread): free its slot, keep its ETag. */
static void part_done(struct http_req *r, void *arg)
{
	struct s3_writer *w = arg;
	struct s3_part *p = (struct s3_part *)((char *)S3_REQ_OF(r) -
					       offsetof(struct s3_part, req));

	pthread_mutex_lock(&w->lock);
	w->in_flight--;
	p->busy = false;
	if (r->result || r->status < 200 || r->status >= 300 || !r->etag[0]) {
		p->failed = true;
	} else {
		w->etags[p->number - 1] = strdup(r->etag);
		if (!w->etags[p->number - 1]) {
			r->result = -ENOMEM;
			p->failed = true;
		}
	}
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* The Object Lock headers of the put that creates the object (signed). */
static void lock_headers(struct s3_writer *w, struct s3_req *r)
{
	char until[40];

	if (!w->retain_until)
		return;
	s3_iso_time(w->retain_until, until, sizeof(until));
	http_req_header(&r->http, "x-amz-object-lock-mode", "%s",
			w->s->object_lock == STORE_LOCK_COMPLIANCE ? "COMPLIANCE" : "GOVERNANCE");
	http_req_header(&r->http, "x-amz-object-lock-retain-until-date", "%s", until);
}

static int create_upload(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_req r;
	struct sbuf q = { 0 };
	char what[400];
	int ret;

	s3_req_init(s, &r, "POST");
	r.http.out_max = 1u << 20;
	s3_query_add(&q, "uploads", NULL);
	lock_headers(w, &r);
	ret = s3_req_target(s, &r, w->key, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	s3_what(what, sizeof(what), "CreateMultipartUpload", w->key);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	if (!ret)
		ret = s3_xml_initiate(r.http.out.s, r.http.out.len, &w->upload_id, err);
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	s3_req_release(&r);
	return ret;
}

static int part_sha_final(struct s3_writer *w, struct s3_part *p,
			  struct err *err)
{
	unsigned char md[EVP_MAX_MD_SIZE];
	unsigned int mdlen = 0;
	static const char hx[] = "0123456789abcdef";

	if (!EVP_DigestFinal_ex(p->sha, md, &mdlen) || mdlen != 32)
		return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)", w->s->who);
	for (unsigned i = 0; i < 32; i++) {
		p->req.payload[2 * i] = hx[md[i] >> 4];
		p->req.payload[2 * i + 1] = hx[md[i] & 15];
	}
	p->req.payload[64] = '\0';
	return 0;
}

/* Send the current part (writer thread): the upload goes on meanwhile. */
static int flush_part(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = w->cur;
	struct sbuf q = { 0 };
	unsigned number = w->next_number;
	char num[16];
	int ret;

	if (number > S3_MAX_PARTS)
		return err_set(err, -EFBIG,
			       "%s: %s is larger than 10,000 parts of up to 5 GiB hold",
			       s->who, w->key);
	if (!w->upload_id) {
		ret = create_upload(w, err);
		if (ret)
			return ret;
	}
	s3_req_init(s, &p->req, "PUT");
	ret = part_sha_final(w, p, err);
	if (ret)
		return ret;
	p->req.http.body = p->buf;
	p->req.http.body_len = p->len;
	p->req.http.out_max = 1u << 20;
	p->req.http.on_done = part_done;
	p->req.http.on_done_arg = w;
	p->req.http.cancellable = true;
	if (s->content_md5 && s3_req_md5(&p->req, p->buf, p->len))
		return err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	snprintf(num, sizeof(num), "%u", number);
	s3_query_add(&q, "partNumber", num);
	s3_query_add(&q, "uploadId", w->upload_id);
	ret = s3_req_target(s, &p->req, w->key, err);
	if (!ret)
		ret = s3_req_query(s, &p->req, &q, err);
	if (ret)
		return ret;
	snprintf(p->req.http.label, sizeof(p->req.http.label), "PUT \"%.280s\" part %u",
		 w->key, number);

	pthread_mutex_lock(&w->lock);
	if (number > w->netags) {
		unsigned cap = w->netags ? w->netags * 2 : 64;
		char **n;

		if (cap > S3_MAX_PARTS)
			cap = S3_MAX_PARTS;
		n = realloc(w->etags, cap * sizeof(*n));
		if (!n) {
			pthread_mutex_unlock(&w->lock);
			return s3_oom(s, err);
		}
		memset(n + w->netags, 0, (cap - w->netags) * sizeof(*n));
		w->etags = n;
		w->netags = cap;
	}
	p->number = number;
	p->busy = true;
	w->in_flight++;
	pthread_mutex_unlock(&w->lock);
	http_submit(s->http, &p->req.http);
	w->next_number++;
	w->cur = NULL;
	return 0;
}

int s3_write(void *wpriv, const void *buf, size_t len, struct err *err)
{
	struct s3_writer *w = wpriv;
	const char *src = buf;
	int ret;

	while (len) {
		struct s3_part *p;
		uint64_t target;
		size_t n;

		if (!w->cur) {
			ret = take_slot(w, err);
			if (ret)
				return ret;
		}
		p = w->cur;
		target = s3_part_size(w->s->part_size, w->next_number);
		if (!target)
			return err_set(err, -EFBIG,
				       "%s: %s is larger than 10,000 parts of up to 5 GiB hold",
				       w->s->who, w->key);
		if (p->len == target) {
			/* full, and more is coming: send it */
			ret = flush_part(w, err);
			if (ret)
				return ret;
			continue;
		}
		n = target - p->len < len ? (size_t)(target - p->len) : len;
		if (p->len + n > p->cap) {
			size_t cap = p->cap ? p->cap : S3_BUF_MIN;
			char *nb;

			while (cap < p->len + n)
				cap *= 2;
			if (cap > target)
				cap = (size_t)target;
			nb = realloc(p->buf, cap);
			if (!nb)
				return s3_oom(w->s, err);
			p->buf = nb;
			p->cap = cap;
		}
		memcpy(p->buf + p->len, src, n);
		if (!EVP_DigestUpdate(p->sha, src, n))
			return err_set(err, -EIO, "%s: SHA-256 failed (OpenSSL)",
				       w->s->who);
		p->len += n;
		w->bytes += n;
		src += n;
		len -= n;
	}
	return 0;
}

/* Cancel the parts in flight and wait until none is. */
static void cancel_parts(struct s3_writer *w)
{
	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < w->nparts; i++)
		if (w->parts[i].busy)
			http_cancel(w->s->http, &w->parts[i].req.http);
	while (w->in_flight)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
}

int s3_abort_upload(struct s3_store *s, const char *key,
		    const char *upload_id, struct err *err)
{
	struct s3_req r;
	struct sbuf q = { 0 };
	char what[400];
	int ret;

	s3_req_init(s, &r, "DELETE");
	s3_query_add(&q, "uploadId", upload_id);
	ret = s3_req_target(s, &r, key, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	s3_what(what, sizeof(what), "AbortMultipartUpload", key);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	s3_req_release(&r);
	return ret;
}

void s3_put_abort(void *wpriv)
{
	struct s3_writer *w = wpriv;
	struct err err = { 0 };

	if (!w)
		return;
	cancel_parts(w);
	if (w->upload_id && s3_abort_upload(w->s, w->key, w->upload_id, &err) &&
	    err.code != -ENOENT)
		log_warn("%s (the unfinished upload stays; snapship clean removes it)",
			 err.msg);
	writer_free(w);
}

/* A small object: one PutObject, with its SHA-256 as user metadata. */
static int put_single(struct s3_writer *w, struct store_obj_info *info_ret,
		      struct err *err)
{
	struct s3_store *s = w->s;
	struct s3_part *p = w->cur;
	struct s3_req r;
	char what[400];
	int ret;

	s3_req_init(s, &r, "PUT");
	r.http.out_max = 1u << 20;
	if (p) {
		/* the part's running hash is the object's */
		s3_req_init(s, &p->req, "PUT");
		ret = part_sha_final(w, p, err);
		if (ret)
			return ret;
		memcpy(r.payload, p->req.payload, sizeof(r.payload));
		r.http.body = p->buf;
		r.http.body_len = p->len;
	}
	http_req_header(&r.http, "x-amz-meta-snapship-sha256", "%s", r.payload);
	lock_headers(w, &r);
	if (s->content_md5 && s3_req_md5(&r, r.http.body, r.http.body_len)) {
		s3_req_release(&r);
		return err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	}
	s3_what(what, sizeof(what), "PUT", w->key);
	ret = s3_req_target(s, &r, w->key, err);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	if (!ret && info_ret) {
		info_ret->size = r.http.body_len;
		s3_etag_copy(info_ret->etag, sizeof(info_ret->etag), r.http.etag);
		memcpy(info_ret->sha256, r.payload, 65);
	}
	s3_req_release(&r);
	return ret;
}

static int complete_upload(struct s3_writer *w, struct err *err)
{
	struct s3_store *s = w->s;
	struct sbuf x = { 0 }, q = { 0 };
	struct s3_xml_error e;
	struct s3_req r;
	char what[400];
	unsigned nparts = w->next_number - 1;
	unsigned seed = (unsigned)time(NULL) ^ (unsigned)(uintptr_t)w;
	int ret;

	sbuf_add(&x, "<CompleteMultipartUpload xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\">");
	for (unsigned i = 0; i < nparts; i++) {
		sbuf_printf(&x, "<Part><PartNumber>%u</PartNumber><ETag>", i + 1);
		s3_xml_escape(&x, w->etags[i]);
		sbuf_add(&x, "</ETag></Part>");
	}
	sbuf_add(&x, "</CompleteMultipartUpload>");
	if (!sbuf_ok(&x))
		return s3_oom(s, err);
	s3_what(what, sizeof(what), "CompleteMultipartUpload", w->key);
	s3_req_init(s, &r, "POST");
	r.http.out_max = 1u << 20;
	s3_query_add(&q, "uploadId", w->upload_id);
	ret = s3_req_target(s, &r, w->key, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	if (!ret)
		ret = s3_req_body(s, &r, x.s, x.len, err);
	/* 200 OK can still carry an <Error>: retry those that say so */
	for (unsigned attempt = 1; !ret; attempt++) {
		ret = http_run(s->http, &r.http, what, err);
		if (ret)
			break;
		ret = s3_xml_complete(r.http.out.s, r.http.out.len, &e, err);
		if (ret <= 0)
			break;
		if (attempt < s->max_attempts &&
		    (!strcmp(e.code, "InternalError") || !strcmp(e.code, "SlowDown") ||
		     !strcmp(e.code, "ServiceUnavailable") ||
		     !strcmp(e.code, "RequestTimeout"))) {
			double d = http_backoff(&seed, attempt);

			log_info("%s: %s: 200 OK with error %s; retrying in %.1f s",
				 s->who, what, e.code, d);
			usleep((useconds_t)(d * 1e6));
			ret = 0;
			continue;
		}
		ret = err_set(err, -EIO, "%s: %s failed inside a 200 OK answer (%s: %.200s)",
			      s->who, what, e.code, e.message);
	}
	if (ret == -ENOENT) {
		/* NoSuchUpload: an earlier attempt (ours, or curl's own resend
		 * on a dead connection) completed it and only the answer was
		 * lost, so the upload is gone because the object exists.  Keys
		 * are unique per backup: the size tells it is ours. */
		struct store_obj_info info;
		struct err e2 = { 0 };

		if (!s3_head(s, w->key, &info, &e2) && info.size == w->bytes) {
			err_clear(err);
			ret = 0;
		}
	}
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	s3_req_release(&r);
	sbuf_free(&x);
	return ret;
}

int s3_put_commit(void *wpriv, struct store_obj_info *info_ret,
		  struct err *err)
{
	struct s3_writer *w = wpriv;
	struct s3_store *s = w->s;
	int ret = 0;

	if (!w->upload_id) {
		ret = put_single(w, info_ret, err);
		writer_free(w);
		return ret;
	}
	if (w->cur && w->cur->len)
		ret = flush_part(w, err);          /* the last, short part */
	if (!ret) {
		pthread_mutex_lock(&w->lock);
		while (w->in_flight)
			pthread_cond_wait(&w->cond, &w->lock);
		pthread_mutex_unlock(&w->lock);
		for (unsigned i = 0; i < w->nparts && !ret; i++)
			if (w->parts[i].failed)
				ret = part_error(w, &w->parts[i], err);
	}
	if (!ret)
		ret = complete_upload(w, err);
	if (ret) {
		s3_put_abort(w);
		return ret;
	}
	/* the server's own word on what it assembled: size and ETag */
	if (info_ret) {
		struct err he = { 0 };

		/* the object exists now; without its ETag the copy checks
		 * compare sizes and SHA-256 only */
		if (s3_head(s, w->key, info_ret, &he)) {
			log_warn("%s (the upload is complete; its ETag is not recorded)", he.msg);
			memset(info_ret, 0, sizeof(*info_ret));
			info_ret->size = w->bytes;
		} else if (info_ret->size != w->bytes) {
			ret = err_set(err, -EIO,
				      "%s: %s holds %llu bytes after CompleteMultipartUpload, not the %llu sent",
				      s->who, w->key, (unsigned long long)info_ret->size,
				      (unsigned long long)w->bytes);
			s3_delete_one(s, w->key, &he);
		}
	}
	writer_free(w);
	return ret;
}
