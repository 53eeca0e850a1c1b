/* SPDX-License-Identifier: MIT */
#ifndef SNAPSHIP_UPLOADER_STORE_H
#define SNAPSHIP_UPLOADER_STORE_H

/*
 * Object stores: where backups live.  One interface for every backend
 * (file: a local or NFS directory, the embedded default; s3: an S3 bucket,
 * AWS or compatible such as Ceph RGW).
 *
 * Keys are '/'-separated relative names without empty, "." or ".."
 * components.  An object becomes visible under its key only when it is
 * complete (store_put_commit): a crash never leaves half an object under a
 * final name.
 *
 * Thread safety: a struct store may be used from several threads at once for
 * get/head/list/delete and for independent writers; one writer belongs to one
 * thread at a time.
 */

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct err;
struct store;
struct store_writer;

struct store_obj_info {
	uint64_t size;
	int64_t mtime_ns;    /* last modification, unix ns; 0 if unknown */
	/* Content fingerprints where the backend has them ("" if not): the
	 * S3 ETag without quotes (MD5 of a single PUT, "md5-N" of a multipart
	 * upload of N parts) and the x-amz-meta-snapship-sha256 metadata that
	 * single-request puts carry.  head and put commit fill them; list
	 * leaves them empty. */
	char etag[80];
	char sha256[65];
};

/* Called for each object under a prefix, in key order.  Nonzero stops. */
typedef int (*store_list_fn)(void *ctx, const char *key,
			     const struct store_obj_info *info);

/* Feature bits of a backend. */
enum {
	STORE_FEAT_RANGE = 1u << 0,    /* efficient ranged reads */
	STORE_FEAT_ATOMIC_PUT = 1u << 1,
};

/* S3 Object Lock modes (store_opts.object_lock). */
enum store_lock {
	STORE_LOCK_NONE = 0,
	STORE_LOCK_GOVERNANCE,         /* users with s3:BypassGovernanceRetention
					* may still delete */
	STORE_LOCK_COMPLIANCE,         /* nobody may, not even the root user */
};

enum store_addressing {
	STORE_ADDR_DEFAULT = 0,        /* path, unless the environment says */
	STORE_ADDR_PATH,               /* https://endpoint/bucket/key */
	STORE_ADDR_VIRTUAL,            /* https://bucket.endpoint/key */
};

/*
 * Options of remote stores (s3; the file store ignores them).  Zero fields
 * take defaults; NULL strings (and zero numbers) fall back to the
 * environment, so a bare "s3://bucket/prefix" works from the shell:
 *   endpoint     SNAPSHIP_S3_ENDPOINT, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL,
 *                else https://s3.REGION.amazonaws.com
 *   region       AWS_REGION, AWS_DEFAULT_REGION, else us-east-1
 *   credentials  (when access_key_id is NULL) AWS_ACCESS_KEY_ID,
 *                AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN
 *   ca_file      AWS_CA_BUNDLE
 *   the numbers  SNAPSHIP_S3_PART_SIZE, SNAPSHIP_S3_PARTS_IN_FLIGHT,
 *                SNAPSHIP_S3_CONNECT_TIMEOUT, SNAPSHIP_S3_STALL_TIMEOUT,
 *                SNAPSHIP_S3_MAX_ATTEMPTS; SNAPSHIP_S3_ADDRESSING=path|virtual;
 *                SNAPSHIP_S3_INSECURE_TLS=1
 *   allow_http   SNAPSHIP_S3_ALLOW_HTTP=1 (not for a named region: its
 *                config says)
 * An endpoint without a scheme is https://; http:// to a host that is not
 * loopback is refused unless allow_http.
 * Strings are borrowed for the duration of the open call only.
 */
struct store_opts {
	const char *name;              /* region name: errors say "region NAME"
					* and name its config keys */
	const char *given_as;          /* what the user typed the location as,
					* for hints: "--from", "--to" (NULL: the
					* config's [region NAME], or "the store
					* location" without a name) */
	const char *endpoint;          /* "https://s3.example[:port]" */
	const char *region;            /* SigV4 region */
	enum store_addressing addressing;
	const char *access_key_id;     /* with secret_access_key_file */
	const char *secret_access_key_file;  /* refused unless mode & 077 == 0 */
	/* Deletions' credentials (least privilege): with both set, DELETE and
	 * DeleteObjects are signed with these, everything else with the
	 * ones above (which then need no s3:DeleteObject); NULL: the ones
	 * above do everything.  Same file checks as the secret above. */
	const char *prune_access_key_id;
	const char *prune_secret_access_key_file;
	/* enum store_lock: puts given a retain_until (store_put_begin_opts)
	 * carry that Object Lock, deletes remove every version of a key (a
	 * locked bucket is versioned) */
	int object_lock;
	const char *ca_file;           /* PEM bundle to verify the server */
	bool insecure_tls;             /* no TLS verification (tests only) */
	bool allow_http;               /* http:// to a host other than this
					* one (loopback needs no permission) */
	uint64_t part_size;            /* first part size; 0 = 8 MiB */
	unsigned parts_in_flight;      /* 0 = 3 */
	unsigned connect_timeout;      /* seconds; 0 = 10 */
	unsigned stall_timeout;        /* seconds without a byte; 0 = 60 */
	unsigned max_attempts;         /* per HTTP request; 0 = 8, 1 = no retry */
	bool content_md5;              /* also send Content-MD5 with each part */
	/* Asked while requests run (NULL: never): once true, streamed puts
	 * in progress stop (their writes and commits fail with -ECANCELED;
	 * the caller aborts them, which removes what they stored) and so do
	 * reads of object data (store_get_range, store_get_all's reads).
	 * Deletes and aborts are never cancelled: the cleanup after a
	 * cancellation needs them. */
	bool (*cancelled)(void *ctx);
	/* Asked the same way (NULL: never): once true, listings (store_list,
	 * store_abort_incomplete's) and HEADs (store_head) end too, with
	 * -ECANCELED.  For a caller whose unwinding after a stop needs no
	 * listing nor HEAD (the agent; list and status): a stalled listing
	 * then no longer holds a stop for the stall timeout. */
	bool (*reads_cancelled)(void *ctx);
	void *cancel_ctx;              /* of both hooks */
};

/*
 * Open a store from a location: "/abs/dir", "./rel/dir", "file:///abs/dir"
 * or "s3://bucket[/prefix]" (keys then live under "prefix/").  A directory
 * must exist (a clear error says to create it); an S3 store is opened
 * without talking to the server (the first request does), and its open
 * errors (endpoint, credentials, secret file, CA file) are -EINVAL: they
 * are all configuration errors.
 * *store_ret is owned by the caller: store_free().
 * store_open() is store_open_opts() with no options (environment only).
 */
int store_open(const char *location, struct store **store_ret, struct err *err);
int store_open_opts(const char *location, const struct store_opts *opts,
		    struct store **store_ret, struct err *err);
void store_free(struct store *store);                 /* NULL is a no-op */
/* "file:/srv/backups", "s3://bucket/prefix (https://endpoint)" — for
 * messages; never contains a secret. */
const char *store_describe(const struct store *store);
unsigned store_features(const struct store *store);
/* The first part size of this store's multipart puts (with the defaults
 * and environment applied), 0 when it has none (file).  Copies made with
 * the same part size get the same multipart ETag. */
uint64_t store_part_size(const struct store *store);

/* Streamed put.  *w_ret must end in exactly one of commit or abort. */
int store_put_begin(struct store *store, const char *key,
		    struct store_writer **w_ret, struct err *err);

/* What a put may ask besides the bytes (zeroed: nothing). */
struct store_put_opts {
	/* unix seconds: on a store opened with object_lock, the object is
	 * locked (its mode) until then; 0 or another store: no lock */
	int64_t retain_until;
};

int store_put_begin_opts(struct store *store, const char *key,
			 const struct store_put_opts *po,
			 struct store_writer **w_ret, struct err *err);
int store_write(struct store_writer *w, const void *buf, size_t len,
		struct err *err);
int store_put_commit(struct store_writer *w, struct err *err); /* frees w */
/* The same, and *info_ret describes the object as stored (size, ETag). */
int store_put_commit_info(struct store_writer *w,
			  struct store_obj_info *info_ret, struct err *err);
void store_put_abort(struct store_writer *w);        /* frees w; NULL ok */

/* Put a whole buffer (small objects: manifests). */
int store_put_buf(struct store *store, const char *key, const void *buf,
		  size_t len, struct err *err);
int store_put_buf_opts(struct store *store, const char *key, const void *buf,
		       size_t len, const struct store_put_opts *po,
		       struct err *err);

/*
 * Read up to len bytes at off into buf; *got_ret < len only at the end of
 * the object.  -ENOENT when the object does not exist.
 */
int store_get_range(struct store *store, const char *key, uint64_t off,
		    size_t len, void *buf, size_t *got_ret, struct err *err);

/* Read a whole object of at most max bytes into a malloc'd *buf_ret. */
int store_get_all(struct store *store, const char *key, size_t max,
		  void **buf_ret, size_t *len_ret, struct err *err);

/* -ENOENT (with err set) when missing. */
int store_head(struct store *store, const char *key,
	       struct store_obj_info *info_ret, struct err *err);

int store_list(struct store *store, const char *prefix, store_list_fn fn,
	       void *ctx, struct err *err);

/*
 * Delete keys; a key that does not exist is not an error.  On a store
 * opened with object_lock (a versioned bucket) every version of each key
 * goes (DELETE ?versionId=, delete markers too): a plain DELETE would only
 * hide it behind a delete marker.  A version still under its lock stays;
 * the others go, and the call ends in -EBUSY with err saying until when.
 * A deletion the credentials may not do is -EACCES, and the message names
 * the keys to set (prune_access_key_id).
 */
int store_delete(struct store *store, const char *const *keys, size_t n,
		 struct err *err);

/* What store_list_hidden found on a key of a versioned bucket. */
enum store_hidden_kind {
	/* its newest version is a delete marker while an older version is
	 * still there (the object is hidden, not gone); ids: the version ids
	 * of every marker stacked over the newest version, newest first (all
	 * must go to bring the object back) */
	STORE_HIDDEN_MARKERS,
	/* it has more than one version (delete markers aside), of different
	 * bytes (ETags): a PUT over it added a newer one that every reader
	 * gets; ids: every version, newest first (the oldest is the one first
	 * written) */
	STORE_HIDDEN_VERSIONS,
};

/* Called for each such key; ids are space-separated.  Nonzero stops. */
typedef int (*store_hidden_fn)(void *ctx, const char *key, enum store_hidden_kind kind,
			       const char *ids);

/* The keys under prefix hidden or overwritten (S3 ListObjectVersions), in
 * key order; -EOPNOTSUPP for a store without versions (file, or no
 * object_lock). */
int store_list_hidden(struct store *store, const char *prefix,
		      store_hidden_fn fn, void *ctx, struct err *err);

/* The bucket's Object Lock configuration (S3 GetObjectLockConfiguration). */
struct store_lock_info {
	bool enabled;                  /* ObjectLockEnabled = Enabled */
	char default_mode[16];         /* "GOVERNANCE"/"COMPLIANCE"/"" */
	int64_t default_days;          /* the default retention's, 0 none */
};

/* -EOPNOTSUPP for a store without Object Lock (file). */
int store_lock_config(struct store *store, struct store_lock_info *info_ret,
		      struct err *err);

/* Extend key's lock (the current version's) to until (unix s), in the
 * store's object_lock mode: S3 PutObjectRetention.  A lock that already
 * lasts longer is left alone.  -EOPNOTSUPP without object_lock. */
int store_retain(struct store *store, const char *key, int64_t until,
		 struct err *err);

/* Asked of each empty directory (its key, without a trailing '/'). */
typedef bool (*store_dir_fn)(void *ctx, const char *key);

/*
 * Remove the empty directories under prefix that dir_ok accepts, deepest
 * first, never through a link nor across a mount point (a file store's:
 * an interrupted run's backup directories).  A store without directories
 * (S3) has none: 0.  *count_ret: how many went.  Only with the host lock
 * held, as store_abort_incomplete.
 */
int store_remove_empty_dirs(struct store *store, const char *prefix,
			    store_dir_fn dir_ok, void *ctx, unsigned *count_ret,
			    struct err *err);

/*
 * Remove what unfinished puts under prefix left behind (a killed writer's
 * temp files; incomplete multipart uploads on S3).  Only while no writer of
 * ours is active under prefix: the caller holds the host lock.
 */
int store_abort_incomplete(struct store *store, const char *prefix,
			   unsigned *count_ret, struct err *err);

#endif
