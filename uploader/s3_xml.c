// SPDX-License-Identifier: MIT
/*
 * S3 response bodies with expat.  One small driver keeps the element path
 * ("/ListBucketResult/Contents/Key") and the text of the current element;
 * each response type is a pair of callbacks over that path.  Only what
 * snapship reads is extracted; everything else is skipped.
 */
#include "uploader/s3_xml.h"

#include "common/err.h"
#include "uploader/sbuf.h"

#include <errno.h>
#include <expat.h>
#include <limits.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define XML_DEPTH_MAX 16
#define XML_PATH_MAX 512
#define XML_TEXT_MAX (64u * 1024)

struct xp;
typedef void (*xp_start_fn)(struct xp *x);
typedef void (*xp_end_fn)(struct xp *x, const char *text);

struct xp {
	XML_Parser p;
	char path[XML_PATH_MAX];
	size_t lens[XML_DEPTH_MAX + 1];
	int depth;
	char root[64];
	struct sbuf text;
	xp_start_fn start;
	xp_end_fn end;
	void *ctx;
	int error;              /* first error of a callback (negative) */
	const char *why;        /* its reason */
};

static void xp_fail(struct xp *x, int code, const char *why)
{
	if (!x->error) {
		x->error = code;
		x->why = why;
	}
	XML_StopParser(x->p, XML_FALSE);
}

static void XMLCALL xp_start_el(void *data, const XML_Char *name,
				const XML_Char **attrs)
{
	struct xp *x = data;
	size_t len = strlen(x->path), nlen = strlen(name);

	(void)attrs;
	if (x->error)
		return;
	if (x->depth >= XML_DEPTH_MAX || len + nlen + 2 > sizeof(x->path)) {
		xp_fail(x, -EBADMSG, "nested too deeply");
		return;
	}
	x->lens[x->depth++] = len;
	x->path[len] = '/';
	memcpy(x->path + len + 1, name, nlen + 1);
	if (x->depth == 1)
		snprintf(x->root, sizeof(x->root), "%s", name);
	x->text.len = 0;
	if (x->text.s)
		x->text.s[0] = '\0';
	if (x->start)
		x->start(x);
}

static void XMLCALL xp_end_el(void *data, const XML_Char *name)
{
	struct xp *x = data;

	(void)name;
	if (x->error)
		return;
	if (!sbuf_ok(&x->text)) {
		xp_fail(x, -ENOMEM, "out of memory");
		return;
	}
	if (x->end)
		x->end(x, x->text.s);
	x->path[x->lens[--x->depth]] = '\0';
	x->text.len = 0;
	x->text.s[0] = '\0';
}

static void XMLCALL xp_chars(void *data, const XML_Char *s, int len)
{
	struct xp *x = data;

	if (x->error || len <= 0)
		return;
	if (x->text.len + (size_t)len > XML_TEXT_MAX) {
		xp_fail(x, -EBADMSG, "an element's text is too long");
		return;
	}
	sbuf_addn(&x->text, s, (size_t)len);
}

static void XMLCALL xp_doctype(void *data, const XML_Char *name,
			       const XML_Char *sysid, const XML_Char *pubid,
			       int has_internal_subset)
{
	(void)name;
	(void)sysid;
	(void)pubid;
	(void)has_internal_subset;
	xp_fail(data, -EBADMSG, "it has a DOCTYPE (S3 answers never do)");
}

/*
 * Parse body; root must be want_root (or "Error" when error_ok).  Returns 0,
 * or a negative code with err set.
 */
static int xp_run(struct xp *x, const char *body, size_t len, const char *what,
		  struct err *err)
{
	enum XML_Status st;
	int ret = 0;

	x->p = XML_ParserCreate("UTF-8");
	if (!x->p)
		return err_set(err, -ENOMEM, "parsing %s: out of memory", what);
	XML_SetUserData(x->p, x);
	XML_SetElementHandler(x->p, xp_start_el, xp_end_el);
	XML_SetCharacterDataHandler(x->p, xp_chars);
	XML_SetStartDoctypeDeclHandler(x->p, xp_doctype);
	if (len > INT_MAX) {
		ret = err_set(err, -EBADMSG, "%s: the answer is too big", what);
		goto out;
	}
	st = XML_Parse(x->p, body ? body : "", (int)len, XML_TRUE);
	if (x->error) {
		ret = err_set(err, x->error, "%s: the server's answer is not usable: %s",
			      what, x->why);
	} else if (st != XML_STATUS_OK) {
		ret = err_set(err, -EBADMSG,
			      "%s: the server's answer is not XML (%s at line %lu)",
			      what, XML_ErrorString(XML_GetErrorCode(x->p)),
			      (unsigned long)XML_GetCurrentLineNumber(x->p));
	}
out:
	XML_ParserFree(x->p);
	sbuf_free(&x->text);
	return ret;
}

static void copy_text(char *dst, size_t size, const char *text)
{
	snprintf(dst, size, "%s", text);
}

/* ---- <Error> ---- */

static void error_end(struct xp *x, const char *text)
{
	struct s3_xml_error *e = x->ctx;

	if (!strcmp(x->path, "/Error/Code"))
		copy_text(e->code, sizeof(e->code), text);
	else if (!strcmp(x->path, "/Error/Message"))
		copy_text(e->message, sizeof(e->message), text);
	else if (!strcmp(x->path, "/Error/Region"))
		copy_text(e->region, sizeof(e->region), text);
	else if (!strcmp(x->path, "/Error/ServerTime"))
		copy_text(e->server_time, sizeof(e->server_time), text);
}

int s3_xml_error(const char *body, size_t len, struct s3_xml_error *e)
{
	struct xp x = { .end = error_end, .ctx = e };
	int ret;

	memset(e, 0, sizeof(*e));
	if (!len)
		return 0;
	ret = xp_run(&x, body, len, "error", NULL);
	if (ret)
		return -EBADMSG;
	return !strcmp(x.root, "Error") ? 1 : 0;
}

/* ---- ListObjectsV2 ---- */

struct list_ctx {
	struct s3_xml_list *page;
	bool in_contents;
};

static void list_start(struct xp *x)
{
	struct list_ctx *lc = x->ctx;
	struct s3_xml_list *pg = lc->page;

	if (strcmp(x->path, "/ListBucketResult/Contents"))
		return;
	if (pg->n == pg->cap) {
		size_t cap = pg->cap ? pg->cap * 2 : 64;
		struct s3_xml_object *n = realloc(pg->objs, cap * sizeof(*n));

		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory");
			return;
		}
		pg->objs = n;
		pg->cap = cap;
	}
	memset(&pg->objs[pg->n++], 0, sizeof(pg->objs[0]));
	lc->in_contents = true;
}

static void list_end(struct xp *x, const char *text)
{
	struct list_ctx *lc = x->ctx;
	struct s3_xml_list *pg = lc->page;
	struct s3_xml_object *o = pg->n ? &pg->objs[pg->n - 1] : NULL;
	char *end;

	if (!strcmp(x->path, "/ListBucketResult/IsTruncated")) {
		pg->truncated = !strcmp(text, "true");
	} else if (!strcmp(x->path, "/ListBucketResult/NextContinuationToken")) {
		free(pg->next_token);
		pg->next_token = strdup(text);
		if (!pg->next_token)
			xp_fail(x, -ENOMEM, "out of memory");
	} else if (!strcmp(x->path, "/ListBucketResult/Contents")) {
		if (!o->key)
			xp_fail(x, -EBADMSG, "an entry has no Key");
		lc->in_contents = false;
	} else if (lc->in_contents && !strcmp(x->path, "/ListBucketResult/Contents/Key")) {
		free(o->key);
		o->key = strdup(text);
		if (!o->key)
			xp_fail(x, -ENOMEM, "out of memory");
	} else if (lc->in_contents && !strcmp(x->path, "/ListBucketResult/Contents/Size")) {
		errno = 0;
		o->size = strtoull(text, &end, 10);
		if (errno || end == text || *end || text[0] == '-')
			xp_fail(x, -EBADMSG, "an entry has a bad Size");
	} else if (lc->in_contents &&
		   !strcmp(x->path, "/ListBucketResult/Contents/LastModified")) {
		if (s3_xml_parse_time(text, &o->mtime_ns))
			o->mtime_ns = 0;
	}
}

int s3_xml_list_v2(const char *body, size_t len, struct s3_xml_list *page,
		   struct err *err)
{
	struct list_ctx lc = { .page = page };
	struct xp x = { .start = list_start, .end = list_end, .ctx = &lc };
	int ret;

	memset(page, 0, sizeof(*page));
	ret = xp_run(&x, body, len, "ListObjectsV2", err);
	if (!ret && strcmp(x.root, "ListBucketResult"))
		ret = err_set(err, -EBADMSG,
			      "ListObjectsV2: the server answered <%s>, not <ListBucketResult>",
			      x.root);
	if (!ret && page->truncated && (!page->next_token || !page->next_token[0]))
		ret = err_set(err, -EBADMSG,
			      "ListObjectsV2: a truncated page without NextContinuationToken");
	if (ret)
		s3_xml_list_free(page);
	return ret;
}

void s3_xml_list_free(struct s3_xml_list *page)
{
	for (size_t i = 0; i < page->n; i++)
		free(page->objs[i].key);
	free(page->objs);
	free(page->next_token);
	memset(page, 0, sizeof(*page));
}

/* ---- ListMultipartUploads ---- */

static void uploads_start(struct xp *x)
{
	struct s3_xml_uploads *u = x->ctx;

	if (strcmp(x->path, "/ListMultipartUploadsResult/Upload"))
		return;
	if (u->n == u->cap) {
		size_t cap = u->cap ? u->cap * 2 : 32;
		struct s3_xml_upload *n = realloc(u->u, cap * sizeof(*n));

		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory");
			return;
		}
		u->u = n;
		u->cap = cap;
	}
	memset(&u->u[u->n++], 0, sizeof(u->u[0]));
}

static void set_str(struct xp *x, char **dst, const char *text)
{
	free(*dst);
	*dst = strdup(text);
	if (!*dst)
		xp_fail(x, -ENOMEM, "out of memory");
}

static void uploads_end(struct xp *x, const char *text)
{
	struct s3_xml_uploads *u = x->ctx;
	struct s3_xml_upload *up = u->n ? &u->u[u->n - 1] : NULL;
	const char *p = x->path;

	if (!strcmp(p, "/ListMultipartUploadsResult/IsTruncated"))
		u->truncated = !strcmp(text, "true");
	else if (!strcmp(p, "/ListMultipartUploadsResult/NextKeyMarker"))
		set_str(x, &u->next_key_marker, text);
	else if (!strcmp(p, "/ListMultipartUploadsResult/NextUploadIdMarker"))
		set_str(x, &u->next_upload_id_marker, text);
	else if (up && !strcmp(p, "/ListMultipartUploadsResult/Upload/Key"))
		set_str(x, &up->key, text);
	else if (up && !strcmp(p, "/ListMultipartUploadsResult/Upload/UploadId"))
		set_str(x, &up->upload_id, text);
	else if (up && !strcmp(p, "/ListMultipartUploadsResult/Upload") &&
		 (!up->key || !up->upload_id))
		xp_fail(x, -EBADMSG, "an upload has no Key or UploadId");
}

int s3_xml_uploads(const char *body, size_t len, struct s3_xml_uploads *ups,
		   struct err *err)
{
	struct xp x = { .start = uploads_start, .end = uploads_end, .ctx = ups };
	int ret;

	memset(ups, 0, sizeof(*ups));
	ret = xp_run(&x, body, len, "ListMultipartUploads", err);
	if (!ret && strcmp(x.root, "ListMultipartUploadsResult"))
		ret = err_set(err, -EBADMSG,
			      "ListMultipartUploads: the server answered <%s>, not <ListMultipartUploadsResult>",
			      x.root);
	if (!ret && ups->truncated && !ups->next_key_marker)
		ret = err_set(err, -EBADMSG,
			      "ListMultipartUploads: a truncated page without NextKeyMarker");
	if (ret)
		s3_xml_uploads_free(ups);
	return ret;
}

void s3_xml_uploads_free(struct s3_xml_uploads *ups)
{
	for (size_t i = 0; i < ups->n; i++) {
		free(ups->u[i].key);
		free(ups->u[i].upload_id);
	}
	free(ups->u);
	free(ups->next_key_marker);
	free(ups->next_upload_id_marker);
	memset(ups, 0, sizeof(*ups));
}

/* ---- InitiateMultipartUpload ---- */

static void initiate_end(struct xp *x, const char *text)
{
	if (!strcmp(x->path, "/InitiateMultipartUploadResult/UploadId"))
		set_str(x, (char **)x->ctx, text);
}

int s3_xml_initiate(const char *body, size_t len, char **upload_id_ret,
		    struct err *err)
{
	struct xp x = { .end = initiate_end, .ctx = upload_id_ret };
	int ret;

	*upload_id_ret = NULL;
	ret = xp_run(&x, body, len, "CreateMultipartUpload", err);
	if (!ret && (!*upload_id_ret || !**upload_id_ret))
		ret = err_set(err, -EBADMSG,
			      "CreateMultipartUpload: the server's answer has no UploadId");
	if (ret) {
		free(*upload_id_ret);
		*upload_id_ret = NULL;
	}
	return ret;
}

/* ---- CompleteMultipartUpload ---- */

int s3_xml_complete(const char *body, size_t len, struct s3_xml_error *e,
		    struct err *err)
{
	struct xp x = { .end = error_end, .ctx = e };
	int ret;

	memset(e, 0, sizeof(*e));
	ret = xp_run(&x, body, len, "CompleteMultipartUpload", err);
	if (ret)
		return ret;
	if (!strcmp(x.root, "Error"))
		return 1;
	if (strcmp(x.root, "CompleteMultipartUploadResult"))
		return err_set(err, -EBADMSG,
			       "CompleteMultipartUpload: the server answered <%s>, not <CompleteMultipartUploadResult>",
			       x.root[0] ? x.root : "nothing");
	return 0;
}

/* ---- ListObjectVersions ---- */

static void versions_start(struct xp *x)
{
	struct s3_xml_versions *vs = x->ctx;

	if (strcmp(x->path, "/ListVersionsResult/Version") &&
	    strcmp(x->path, "/ListVersionsResult/DeleteMarker"))
		return;
	if (vs->n == vs->cap) {
		size_t cap = vs->cap ? vs->cap * 2 : 16;
		struct s3_xml_version *n = realloc(vs->v, cap * sizeof(*n));

		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory");
			return;
		}
		vs->v = n;
		vs->cap = cap;
	}
	memset(&vs->v[vs->n], 0, sizeof(vs->v[0]));
	vs->v[vs->n++].delete_marker = x->path[20] == 'D';
}

static void versions_end(struct xp *x, const char *text)
{
	struct s3_xml_versions *vs = x->ctx;
	struct s3_xml_version *v = vs->n ? &vs->v[vs->n - 1] : NULL;
	const char *p = x->path;

	if (!strcmp(p, "/ListVersionsResult/IsTruncated"))
		vs->truncated = !strcmp(text, "true");
	else if (!strcmp(p, "/ListVersionsResult/NextKeyMarker"))
		set_str(x, &vs->next_key_marker, text);
	else if (!strcmp(p, "/ListVersionsResult/NextVersionIdMarker"))
		set_str(x, &vs->next_version_id_marker, text);
	else if (v && (!strcmp(p, "/ListVersionsResult/Version/Key") ||
		       !strcmp(p, "/ListVersionsResult/DeleteMarker/Key")))
		set_str(x, &v->key, text);
	else if (v && (!strcmp(p, "/ListVersionsResult/Version/VersionId") ||
		       !strcmp(p, "/ListVersionsResult/DeleteMarker/VersionId")))
		set_str(x, &v->version_id, text);
	else if (v && !strcmp(p, "/ListVersionsResult/Version/ETag"))
		set_str(x, &v->etag, text);
	else if (v && (!strcmp(p, "/ListVersionsResult/Version") ||
		       !strcmp(p, "/ListVersionsResult/DeleteMarker")) &&
		 (!v->key || !v->version_id))
		xp_fail(x, -EBADMSG, "a version without Key or VersionId");
}

int s3_xml_versions(const char *body, size_t len, struct s3_xml_versions *vs,
		    struct err *err)
{
	struct xp x = { .start = versions_start, .end = versions_end, .ctx = vs };
	int ret;

	memset(vs, 0, sizeof(*vs));
	ret = xp_run(&x, body, len, "ListObjectVersions", err);
	if (!ret && strcmp(x.root, "ListVersionsResult"))
		ret = err_set(err, -EBADMSG,
			      "ListObjectVersions: the server answered <%s>, not <ListVersionsResult>",
			      x.root[0] ? x.root : "nothing");
	if (!ret && vs->truncated && (!vs->next_key_marker || !vs->next_key_marker[0]))
		ret = err_set(err, -EBADMSG,
			      "ListObjectVersions: a truncated page without NextKeyMarker");
	if (ret)
		s3_xml_versions_free(vs);
	return ret;
}

void s3_xml_versions_free(struct s3_xml_versions *vs)
{
	for (size_t i = 0; i < vs->n; i++) {
		free(vs->v[i].key);
		free(vs->v[i].version_id);
		free(vs->v[i].etag);
	}
	free(vs->v);
	free(vs->next_key_marker);
	free(vs->next_version_id_marker);
	memset(vs, 0, sizeof(*vs));
}

/* ---- GetObjectLockConfiguration ---- */

static void lock_end(struct xp *x, const char *text)
{
	struct s3_xml_lock *lk = x->ctx;
	const char *p = x->path;
	char *end;
	long long n;

	if (!strcmp(p, "/ObjectLockConfiguration/ObjectLockEnabled")) {
		lk->enabled = !strcmp(text, "Enabled");
	} else if (!strcmp(p, "/ObjectLockConfiguration/Rule/DefaultRetention/Mode")) {
		copy_text(lk->mode, sizeof(lk->mode), text);
	} else if (!strcmp(p, "/ObjectLockConfiguration/Rule/DefaultRetention/Days") ||
		   !strcmp(p, "/ObjectLockConfiguration/Rule/DefaultRetention/Years")) {
		errno = 0;
		n = strtoll(text, &end, 10);
		if (errno || end == text || *end || n < 0 || n > 100000)
			xp_fail(x, -EBADMSG, "a bad DefaultRetention period");
		else
			lk->days = p[strlen(p) - 1] == 's' && p[strlen(p) - 2] == 'r' ?
				   n * 365 : n;
	}
}

int s3_xml_lock(const char *body, size_t len, struct s3_xml_lock *lk,
		struct err *err)
{
	struct xp x = { .end = lock_end, .ctx = lk };
	int ret;

	memset(lk, 0, sizeof(*lk));
	ret = xp_run(&x, body, len, "GetObjectLockConfiguration", err);
	if (!ret && strcmp(x.root, "ObjectLockConfiguration"))
		ret = err_set(err, -EBADMSG,
			      "GetObjectLockConfiguration: the server answered <%s>, not <ObjectLockConfiguration>",
			      x.root[0] ? x.root : "nothing");
	return ret;
}

/* ---- DeleteObjects ---- */

static void delete_start(struct xp *x)
{
	struct s3_xml_deleted *d = x->ctx;

	if (strcmp(x->path, "/DeleteResult/Error"))
		return;
	if (d->n == d->cap) {
		size_t cap = d->cap ? d->cap * 2 : 16;
		struct s3_xml_delete_error *n = realloc(d->errs, cap * sizeof(*n));

		if (!n) {
			xp_fail(x, -ENOMEM, "out of memory");
			return;
		}
		d->errs = n;
		d->cap = cap;
	}
	memset(&d->errs[d->n++], 0, sizeof(d->errs[0]));
}

static void delete_end(struct xp *x, const char *text)
{
	struct s3_xml_deleted *d = x->ctx;
	struct s3_xml_delete_error *e = d->n ? &d->errs[d->n - 1] : NULL;

	if (!e)
		return;
	if (!strcmp(x->path, "/DeleteResult/Error/Key"))
		set_str(x, &e->key, text);
	else if (!strcmp(x->path, "/DeleteResult/Error/Code"))
		copy_text(e->code, sizeof(e->code), text);
	else if (!strcmp(x->path, "/DeleteResult/Error/Message"))
		copy_text(e->message, sizeof(e->message), text);
}

int s3_xml_delete_result(const char *body, size_t len,
			 struct s3_xml_deleted *d, struct err *err)
{
	struct xp x = { .start = delete_start, .end = delete_end, .ctx = d };
	int ret;

	memset(d, 0, sizeof(*d));
	ret = xp_run(&x, body, len, "DeleteObjects", err);
	if (!ret && strcmp(x.root, "DeleteResult"))
		ret = err_set(err, -EBADMSG,
			      "DeleteObjects: the server answered <%s>, not <DeleteResult>",
			      x.root[0] ? x.root : "nothing");
	if (ret)
		s3_xml_deleted_free(d);
	return ret;
}

void s3_xml_deleted_free(struct s3_xml_deleted *d)
{
	for (size_t i = 0; i < d->n; i++)
		free(d->errs[i].key);
	free(d->errs);
	memset(d, 0, sizeof(*d));
}

/* ---- building and helpers ---- */

void s3_xml_escape(struct sbuf *b, const char *s)
{
	for (; *s; s++) {
		switch (*s) {
		case '&': sbuf_add(b, "&amp;"); break;
		case '<': sbuf_add(b, "&lt;"); break;
		case '>': sbuf_add(b, "&gt;"); break;
		case '"': sbuf_add(b, "&quot;"); break;
		case '\'': sbuf_add(b, "&apos;"); break;
		case '\r': sbuf_add(b, "&#13;"); break;   /* XML would read \n */
		default: sbuf_addc(b, *s); break;
		}
	}
}

bool s3_xml_text_ok(const char *s)
{
	const unsigned char *p = (const unsigned char *)s;

	while (*p) {
		unsigned c = *p;
		int n;

		if (c < 0x80) {
			if (c < 0x20 && c != '\t' && c != '\n' && c != '\r')
				return false;
			p++;
			continue;
		}
		if (c >= 0xc2 && c <= 0xdf)
			n = 1;
		else if (c >= 0xe0 && c <= 0xef)
			n = 2;
		else if (c >= 0xf0 && c <= 0xf4)
			n = 3;
		else
			return false;
		for (int i = 1; i <= n; i++)
			if ((p[i] & 0xc0) != 0x80)
				return false;
		/* no overlong forms, surrogates, or code points past U+10FFFF */
		if ((c == 0xe0 && p[1] < 0xa0) || (c == 0xed && p[1] > 0x9f) ||
		    (c == 0xf0 && p[1] < 0x90) || (c == 0xf4 && p[1] > 0x8f))
			return false;
		/* U+FFFE and U+FFFF are not XML characters */
		if (c == 0xef && p[1] == 0xbf && (p[2] == 0xbe || p[2] == 0xbf))
			return false;
		p += n + 1;
	}
	return true;
}

int s3_xml_parse_time(const char *s, int64_t *ns_ret)
{
	struct tm tm = { 0 };
	int64_t frac = 0, scale = 100000000;
	const char *p;
	int used = 0;
	time_t t;

	if (sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon,
		   &tm.tm_mday, &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &used) != 6 ||
	    used != 19)
		return -EINVAL;
	p = s + used;
	if (*p == '.') {
		for (p++; *p >= '0' && *p <= '9'; p++) {
			frac += (*p - '0') * scale;
			scale /= 10;
		}
	}
	if (strcmp(p, "Z"))
		return -EINVAL;
	tm.tm_year -= 1900;
	tm.tm_mon -= 1;
	t = timegm(&tm);
	/* nanoseconds since 1970 in an int64_t: the years 1678 to 2262 */
	if (t == (time_t)-1 || t >= INT64_MAX / 1000000000 || t <= INT64_MIN / 1000000000)
		return -EINVAL;
	*ns_ret = (int64_t)t * 1000000000 + frac;
	return 0;
}
