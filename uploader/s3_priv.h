/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_S3_PRIV_H
#define SNAPSHIP_UPLOADER_S3_PRIV_H

/*
 * What the files of the S3 driver share (s3.c, s3_open.c, s3_put.c,
 * s3_err.c); nothing outside them includes this.  The pure functions the
 * unit tests use are in s3.h.
 */

#include "uploader/http.h"
#include "uploader/s3.h"
#include "uploader/sigv4.h"
#include "uploader/store.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct sbuf;
struct store_obj_info;
struct store_opts;
struct store_put_opts;
struct store_lock_info;

#define S3_XMLBODY_MAX (32u << 20)       /* list pages and other XML answers */

/* An open S3 store (the priv of its store ops).  Set up by s3_open() and
 * read-only after it, but for key. */
struct s3_store {
	struct s3_names names;      /* point into the fields below */
	char *who, *fix_bucket, *fix_keys, *fix_region, *fix_ca;
	char *bucket;
	char *prefix;               /* "" or "a/b/" */
	char *endpoint;             /* scheme://authority, for messages */
	char *url_base;             /* scheme://[bucket.]authority */
	char *host;                 /* Host header */
	char *path_base;            /* "/bucket" (path style) or "" */
	char *region;
	char *access_key_id, *secret, *token;   /* secret, token: wiped on free */
	struct sigv4_credentials creds;
	/* Deletions' credentials (prune_access_key_id): del_own when given,
	 * else del_creds is creds.  del_secret is wiped on free. */
	char *del_access_key_id, *del_secret;
	struct sigv4_credentials del_creds;
	bool del_own;
	char *fix_del;              /* "prune_access_key_id and ... in [region R]" */
	int object_lock;            /* enum store_lock */
	char *ca_file;
	bool insecure;
	uint64_t part_size;
	unsigned inflight;
	long connect_timeout, stall_timeout;
	unsigned max_attempts;
	bool content_md5;
	bool (*cancelled)(void *ctx);   /* store_opts' cancel hooks */
	bool (*reads_cancelled)(void *ctx);
	void *cancel_ctx;

	struct http_engine *http;   /* runs every request of the store */
	struct sigv4_key key;       /* signing key cache: the sign hook's only */
	struct sigv4_key del_key;   /* the same, of del_creds */
};

/* A request of the store: the HTTP request and its payload hash. */
struct s3_req {
	struct http_req http;
	char payload[65];           /* hex SHA-256 of the body */
	bool del;                   /* a deletion: signed with del_creds */
};

#define S3_REQ_OF(hr) \
	((struct s3_req *)((char *)(hr) - offsetof(struct s3_req, http)))

/* The engine's hooks: SigV4 signing, fault injection, S3's errors. */
extern const struct http_hooks s3_http_hooks;

/* s3.c: building requests.  Errors say "WHO: out of memory". */
void s3_req_init(struct s3_store *s, struct s3_req *r, const char *method);
void s3_req_release(struct s3_req *r);
/* Target: the object key (relative to the store) or the bucket (NULL). */
int s3_req_target(struct s3_store *s, struct s3_req *r, const char *key,
		  struct err *err);
/* Take the query built in q (q is emptied). */
int s3_req_query(struct s3_store *s, struct s3_req *r, struct sbuf *q,
		 struct err *err);
/* A GET of the bucket with the query built in q (q is emptied): a listing.
 * On 0 its XML reply (at most S3_XMLBODY_MAX bytes) is in r->http.out for
 * the caller to parse; the caller releases r, also on failure.  del: made
 * for a deletion (signed with the prune credentials, as the DELETE). */
int s3_bucket_get(struct s3_store *s, struct s3_req *r, struct sbuf *q, bool del,
		  const char *what, struct err *err);
/* A truncated listing page whose next markers (key1, id1) are the ones it
 * was asked with (key0, id0) — or go back to the start of that key — would
 * be listed forever: -EBADMSG saying so; else 0.  NULL: none. */
int s3_page_stuck(struct s3_store *s, const char *what, const char *key0,
		  const char *id0, const char *key1, const char *id1, struct err *err);
/* Body (borrowed until the request ends) and its payload hash. */
int s3_req_body(struct s3_store *s, struct s3_req *r, const void *body,
		size_t len, struct err *err);
/* Content-MD5 header of a body: 0 or -EIO. */
int s3_req_md5(struct s3_req *r, const void *body, size_t len);
/* Append "&name=value" (value URI-encoded; none if NULL) to a query. */
void s3_query_add(struct sbuf *q, const char *name, const char *value);
/* "PUT \"key\"" (or verb alone when key is NULL) for messages. */
void s3_what(char *buf, size_t len, const char *verb, const char *key);
/* An ETag header value without its quotes (and a weak "W/" mark). */
void s3_etag_copy(char *dst, size_t size, const char *v);
int s3_oom(const struct s3_store *s, struct err *err);

/* s3.c: operations the writer uses too. */
int s3_head(void *priv, const char *key, struct store_obj_info *info_ret,
	    struct err *err);
int s3_delete_one(struct s3_store *s, const char *key, struct err *err);
/* The error of a deletion refused with AccessDenied (-EACCES): names the
 * credentials used and, for the backup's, the keys that give others. */
int s3_delete_denied(struct s3_store *s, const char *key, struct err *err);
/* " until 2026-12-03T12:00:00Z"-style ISO 8601 UTC of a unix time. */
void s3_iso_time(int64_t t, char *buf, size_t len);
int s3_abort_upload(struct s3_store *s, const char *key,
		    const char *upload_id, struct err *err);

/* s3_open.c */
int s3_open(const char *location, const struct store_opts *o,
	    void **priv_ret, struct err *err);
void s3_free(void *priv);

/* s3_put.c: the streamed writer. */
int s3_put_begin(void *priv, const char *key, void **wpriv_ret,
		 struct err *err);
int s3_put_begin_opts(void *priv, const char *key,
		      const struct store_put_opts *po, void **wpriv_ret,
		      struct err *err);

/* s3_lock.c: Object Lock and versioned deletes. */
int s3_lock_config(void *priv, struct store_lock_info *info_ret,
		   struct err *err);
int s3_retain(void *priv, const char *key, int64_t until, struct err *err);
int s3_list_hidden(void *priv, const char *prefix, store_hidden_fn fn,
		   void *ctx, struct err *err);
/* Delete every version of key (a store with object_lock): -EBUSY with err
 * when a version is still locked (it stays; the others go). */
int s3_delete_versions(struct s3_store *s, const char *key, struct err *err);
int s3_write(void *wpriv, const void *buf, size_t len, struct err *err);
int s3_put_commit(void *wpriv, struct store_obj_info *info_ret,
		  struct err *err);
void s3_put_abort(void *wpriv);

/* s3_err.c: the engine hooks that read S3's error answers. */
const char *s3_retry_reason(void *ctx, const struct http_req *r, char *buf,
			    size_t len);
int s3_hook_http_error(void *ctx, const char *what, const struct http_req *r,
		       struct err *err);
int s3_hook_transport_error(void *ctx, const char *what,
			    const struct http_req *r, struct err *err);

#endif
