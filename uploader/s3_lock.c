// SPDX-License-Identifier: MIT
/*
 * The S3 store and Object Lock: the bucket's lock configuration
 * (GetObjectLockConfiguration), extending an object's lock
 * (PutObjectRetention) and the deletes of a locked bucket, which is
 * always versioned: a plain DELETE there only adds a delete marker and the
 * data stays, so each version of the key goes by its id, and a version
 * still under its lock is left (-EBUSY, the caller skips it quietly and
 * a later prune deletes it).
 *
 * The puts' lock headers are in s3_put.c (lock_headers).
 */
#include "uploader/s3_priv.h"

#include "common/err.h"
#include "uploader/s3_xml.h"
#include "uploader/sbuf.h"
#include "uploader/store.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

static const char *lock_mode_name(const struct s3_store *s)
{
	return s->object_lock == STORE_LOCK_COMPLIANCE ? "COMPLIANCE" : "GOVERNANCE";
}

int s3_lock_config(void *priv, struct store_lock_info *info_ret,
		   struct err *err)
{
	struct s3_store *s = priv;
	struct s3_xml_lock lk;
	struct s3_xml_error e;
	struct sbuf q = { 0 };
	struct s3_req r;
	int ret;

	s3_req_init(s, &r, "GET");
	r.http.out_max = 1u << 20;
	r.http.is_read = true;
	s3_query_add(&q, "object-lock", NULL);
	ret = s3_req_target(s, &r, NULL, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	if (ret)
		goto out;
	http_submit(s->http, &r.http);
	http_wait(s->http, &r.http);
	/* a bucket without Object Lock: 404 ObjectLockConfigurationNotFoundError */
	if (r.http.result == 0 && r.http.status == 404 &&
	    s3_xml_error(r.http.errbody.s, r.http.errbody.len, &e) == 1 &&
	    !strcmp(e.code, "ObjectLockConfigurationNotFoundError"))
		goto out;       /* *info_ret stays "not enabled" */
	ret = http_check(s->http, &r.http, "GetObjectLockConfiguration", err);
	if (!ret)
		ret = s3_xml_lock(r.http.out.s, r.http.out.len, &lk, err);
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	if (!ret) {
		info_ret->enabled = lk.enabled;
		snprintf(info_ret->default_mode, sizeof(info_ret->default_mode), "%s", lk.mode);
		info_ret->default_days = lk.days;
	}
out:
	s3_req_release(&r);
	return ret;
}

/* The lock of key's version_id (NULL: the current one): *until_ret unix s,
 * 0 when it has none.  del: asked for a deletion (signed with the prune
 * credentials: a HEAD ?versionId= needs s3:GetObjectVersion). */
static int lock_until(struct s3_store *s, const char *key, const char *version_id,
		      bool del, int64_t *until_ret, struct err *err)
{
	struct sbuf q = { 0 };
	struct s3_req r;
	char what[400];
	int64_t ns;
	int ret;

	*until_ret = 0;
	s3_req_init(s, &r, "HEAD");
	r.del = del;
	r.http.is_read = true;
	r.http.capture = "x-amz-object-lock-retain-until-date";
	s3_what(what, sizeof(what), "HEAD", key);
	if (version_id)
		s3_query_add(&q, "versionId", version_id);
	ret = s3_req_target(s, &r, key, err);
	if (!ret && version_id)
		ret = s3_req_query(s, &r, &q, err);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	if (!ret && r.http.captured[0] && !s3_xml_parse_time(r.http.captured, &ns))
		*until_ret = ns / 1000000000 + (ns % 1000000000 ? 1 : 0);
	s3_req_release(&r);
	sbuf_free(&q);
	return ret;
}

int s3_retain(void *priv, const char *key, int64_t until, struct err *err)
{
	struct s3_store *s = priv;
	struct sbuf x = { 0 }, q = { 0 };
	struct s3_req r;
	char what[400], date[40];
	int64_t cur;
	int ret;

	if (!s->object_lock)
		return err_set(err, -EOPNOTSUPP, "%s: object_lock is not set", s->who);
	ret = lock_until(s, key, NULL, false, &cur, err);
	if (ret || cur >= until)
		return ret;     /* already long enough: never shortened */
	s3_iso_time(until, date, sizeof(date));
	sbuf_add(&x, "<Retention xmlns=\"http://s3.amazonaws.com/doc/2006-03-01/\"><Mode>");
	sbuf_add(&x, lock_mode_name(s));
	sbuf_add(&x, "</Mode><RetainUntilDate>");
	sbuf_add(&x, date);
	sbuf_add(&x, "</RetainUntilDate></Retention>");
	if (!sbuf_ok(&x))
		return s3_oom(s, err);
	s3_req_init(s, &r, "PUT");
	r.http.out_max = 1u << 20;
	s3_query_add(&q, "retention", NULL);
	s3_what(what, sizeof(what), "PutObjectRetention", key);
	ret = s3_req_target(s, &r, key, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	if (!ret)
		ret = s3_req_body(s, &r, x.s, x.len, err);
	if (!ret && s3_req_md5(&r, x.s, x.len))
		ret = err_set(err, -EIO, "%s: MD5 failed (OpenSSL)", s->who);
	if (!ret)
		ret = http_run(s->http, &r.http, what, err);
	s3_req_release(&r);
	sbuf_free(&x);
	return ret;
}

/* One page of key's versions (and delete markers) after the markers; del:
 * listed for a deletion (signed with the prune credentials). */
static int list_versions(struct s3_store *s, const char *full, const char *key_marker,
			 const char *id_marker, bool del, struct s3_xml_versions *vs,
			 struct err *err)
{
	struct sbuf q = { 0 };
	struct s3_req r;
	int ret;

	s3_query_add(&q, "versions", NULL);
	s3_query_add(&q, "prefix", full);
	if (key_marker)
		s3_query_add(&q, "key-marker", key_marker);
	if (id_marker)
		s3_query_add(&q, "version-id-marker", id_marker);
	ret = s3_bucket_get(s, &r, &q, del, "ListObjectVersions", err);
	if (!ret)
		ret = s3_xml_versions(r.http.out.s, r.http.out.len, vs, err);
	if (ret == -EBADMSG)
		err_wrap(err, "%s", s->who);
	s3_req_release(&r);
	sbuf_free(&q);
	return ret;
}

/*
 * DELETE key?versionId=id.  A refusal (403 AccessDenied) is a lock when the
 * version's retain-until date is still ahead (-EBUSY, *until_ret says
 * when), else the credentials' (s3_delete_denied; when the lock could not
 * be read, what that HEAD said is added).
 */
static int delete_version(struct s3_store *s, const char *key, const char *id,
			  int64_t *until_ret, struct err *err)
{
	struct s3_xml_error e;
	struct sbuf q = { 0 };
	struct s3_req r;
	struct err he = { 0 };
	char what[400];
	int64_t until;
	int ret;

	s3_req_init(s, &r, "DELETE");
	r.del = true;
	s3_what(what, sizeof(what), "DELETE", key);
	snprintf(r.http.label, sizeof(r.http.label), "%s", what);
	s3_query_add(&q, "versionId", id);
	ret = s3_req_target(s, &r, key, err);
	if (!ret)
		ret = s3_req_query(s, &r, &q, err);
	if (ret)
		goto out;
	http_submit(s->http, &r.http);
	http_wait(s->http, &r.http);
	if (r.http.result == 0 && r.http.status == 404 &&
	    !(s3_xml_error(r.http.errbody.s, r.http.errbody.len, &e) == 1 &&
	      !strcmp(e.code, "NoSuchBucket")))
		goto out;       /* gone meanwhile */
	if (r.http.result == 0 && r.http.status == 403 &&
	    s3_xml_error(r.http.errbody.s, r.http.errbody.len, &e) == 1 &&
	    !strcmp(e.code, "AccessDenied")) {
		int hr = lock_until(s, key, id, true, &until, &he);

		if (!hr && until > (int64_t)time(NULL)) {
			*until_ret = until;
			ret = -EBUSY;
		} else {
			ret = s3_delete_denied(s, key, err);
			if (hr && err) {
				size_t n = strlen(err->msg);

				snprintf(err->msg + n, sizeof(err->msg) - n,
					 "; whether version %.100s is under Object Lock could not be read either (%s)%s",
					 id, he.msg,
					 s->del_own ? "; the prune credentials need s3:GetObjectVersion" : "");
			}
		}
		goto out;
	}
	ret = http_check(s->http, &r.http, what, err);
out:
	s3_req_release(&r);
	sbuf_free(&q);
	return ret;
}

/*
 * Every version (and delete marker) under prefix full, page by page
 * (ListObjectVersions), each handed to step in order; a non-zero return of
 * step ends the walk and is returned.
 */
static int versions_each(struct s3_store *s, const char *full, bool del,
			 int (*step)(struct s3_store *s, const struct s3_xml_version *v,
				     void *ctx, struct err *err),
			 void *ctx, struct err *err)
{
	char *km = NULL, *im = NULL;
	int ret = 0;

	do {
		struct s3_xml_versions vs;

		ret = list_versions(s, full, km, im, del, &vs, err);
		if (ret)
			break;
		if (vs.truncated)
			ret = s3_page_stuck(s, "ListObjectVersions", km, im,
					    vs.next_key_marker, vs.next_version_id_marker, err);
		if (ret) {
			s3_xml_versions_free(&vs);
			break;
		}
		free(km);
		free(im);
		km = vs.truncated ? vs.next_key_marker : NULL;
		im = vs.truncated ? vs.next_version_id_marker : NULL;
		if (vs.truncated)
			vs.next_key_marker = vs.next_version_id_marker = NULL;
		for (size_t i = 0; i < vs.n && !ret; i++)
			ret = step(s, &vs.v[i], ctx, err);
		s3_xml_versions_free(&vs);
	} while (!ret && km);
	free(km);
	free(im);
	return ret;
}

/* s3_delete_versions' walk: every version of exactly one key deleted; the
 * latest retain-until date of those still locked. */
struct del_walk {
	const char *key, *full;
	int64_t locked;
};

static int del_step(struct s3_store *s, const struct s3_xml_version *v, void *ctx,
		    struct err *err)
{
	struct del_walk *dw = ctx;
	int64_t until = 0;
	int ret;

	if (strcmp(v->key, dw->full))    /* another key, same prefix */
		return 0;
	ret = delete_version(s, dw->key, v->version_id, &until, err);
	if (ret == -EBUSY) {
		if (until > dw->locked)
			dw->locked = until;
		ret = 0;
	}
	return ret;
}

int s3_delete_versions(struct s3_store *s, const char *key, struct err *err)
{
	struct del_walk dw = { .key = key };
	char *full = NULL, date[40];
	int ret;

	if (asprintf(&full, "%s%s", s->prefix, key) < 0)
		return s3_oom(s, err);
	dw.full = full;
	ret = versions_each(s, full, true, del_step, &dw, err);
	free(full);
	if (!ret && dw.locked) {
		s3_iso_time(dw.locked, date, sizeof(date));
		ret = err_set(err, -EBUSY, "%s: \"%.300s\" is under Object Lock until %s",
			      s->who, key, date);
	}
	return ret;
}

/* The walk of s3_list_hidden: versions come newest first for each key. */
struct hidden_walk {
	char *key;                  /* the key being walked (NULL none) */
	struct sbuf markers;        /* the delete markers on top of it, newest
				     * first, space-separated */
	struct sbuf reals;          /* its versions (not markers), likewise */
	size_t nreal;
	char *etag;                 /* the newest version's ETag */
	bool differ;                /* another version's ETag is not it */
	store_hidden_fn fn;
	void *ctx;
};

static int hidden_add(struct s3_store *s, struct sbuf *b, const char *id, struct err *err)
{
	if (b->len)
		sbuf_addc(b, ' ');
	sbuf_add(b, id);
	return sbuf_ok(b) ? 0 : s3_oom(s, err);
}

/* The walked key done: overwritten when it has two versions or more
 * (reported when report is set); its state freed. */
static int hidden_flush(struct s3_store *s, struct hidden_walk *hw, bool report)
{
	int ret = 0;

	if (report && hw->key && hw->nreal > 1 && hw->differ)
		ret = hw->fn(hw->ctx, hw->key + strlen(s->prefix), STORE_HIDDEN_VERSIONS,
			     hw->reals.s) ? 1 : 0;
	free(hw->key);
	hw->key = NULL;
	sbuf_free(&hw->markers);
	sbuf_free(&hw->reals);
	hw->nreal = 0;
	free(hw->etag);
	hw->etag = NULL;
	hw->differ = false;
	return ret;
}

/* One listed version; 1 when fn stopped the walk.  Every marker stacked
 * over the newest real version is named: deleting only the newest would
 * leave the backup hidden behind the next.  Versions of other bytes (their
 * ETags differ) are an overwrite, reported when the key is done. */
static int hidden_step(struct s3_store *s, const struct s3_xml_version *v, void *ctx,
		       struct err *err)
{
	struct hidden_walk *hw = ctx;
	size_t plen = strlen(s->prefix);
	int ret;

	if (strncmp(v->key, s->prefix, plen))
		return 0;
	if (!hw->key || strcmp(hw->key, v->key)) {         /* a new key */
		ret = hidden_flush(s, hw, true);
		if (ret)
			return ret;
		hw->key = strdup(v->key);
		if (!hw->key)
			return s3_oom(s, err);
	}
	if (v->delete_marker)   /* those under a real version do not hide it */
		return hw->nreal ? 0 : hidden_add(s, &hw->markers, v->version_id, err);
	ret = hidden_add(s, &hw->reals, v->version_id, err);
	if (ret)
		return ret;
	if (hw->nreal && (!hw->etag || !v->etag || strcmp(hw->etag, v->etag)))
		hw->differ = true;      /* a retried PUT of the same bytes is not */
	if (!hw->nreal && v->etag && !(hw->etag = strdup(v->etag)))
		return s3_oom(s, err);
	if (hw->nreal++ || !hw->markers.len)
		return 0;
	return hw->fn(hw->ctx, v->key + plen, STORE_HIDDEN_MARKERS, hw->markers.s) ? 1 : 0;
}

int s3_list_hidden(void *priv, const char *prefix, store_hidden_fn fn,
		   void *ctx, struct err *err)
{
	struct s3_store *s = priv;
	struct hidden_walk hw = { .fn = fn, .ctx = ctx };
	char *full = NULL;
	int ret;

	if (!s->object_lock)
		return err_set(err, -EOPNOTSUPP, "%s: object_lock is not set", s->who);
	if (asprintf(&full, "%s%s", s->prefix, prefix) < 0)
		return s3_oom(s, err);
	ret = versions_each(s, full, false, hidden_step, &hw, err);
	free(full);
	if (!ret)
		ret = hidden_flush(s, &hw, true);
	else
		hidden_flush(s, &hw, false);
	return ret > 0 ? 0 : ret;
}
