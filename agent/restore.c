// SPDX-License-Identifier: MIT
/*
 * Restore: what both formats share, and restore_backup() itself.  Here:
 * the read-ahead's sources with failover to the other regions, libarchive's
 * read callback, the index fetch, the --path filter, progress and
 * cancellation, a file's content checked against the index, the target
 * (made, entered, its leftovers after a failure) and the object's SHA-256.
 * restore_v1.c reads a version 1 backup, restore_v2.c a version 2 one;
 * restore_priv.h is what they share (struct rctx, owned by restore_backup).
 */
#include "agent/restore.h"
#include "agent/restore_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/catalog.h"
#include "agent/claims.h"
#include "agent/extract.h"
#include "agent/geo.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/log.h"
#include "common/util.h"
#include "cow/cow.h"
#include "stream/frame.h"
#include "stream/readahead.h"
#include "uploader/store.h"

#define INDEX_MAX (1ull << 30)
#define WRITERS_MIN 2           /* file writer threads: one per CPU, */
#define WRITERS_MAX 8           /* within these bounds */
#define RESTORE_MEM (8u << 20)   /* data queued for them */


/* Source i of the data: 0 the store, i > 0 o->fallback[i - 1]. */
/* Source i of the data (of object b in a version 2 restore, else of the
 * backup): 0 the store, i > 0 o->fallback[i - 1]. */
static void source(const struct rctx *r, const struct v2_obj *b, size_t i,
		   struct store **store, const char **key, const char **name)
{
	*store = i ? r->o->fallback[i - 1].store : r->store;
	if (b)
		*key = i ? b->fkeys[i - 1] : b->key;
	else
		*key = i ? r->o->fallback[i - 1].data_key : r->m->data_key;
	*name = i ? r->o->fallback[i - 1].region : r->o->region;
}

/* The read-ahead's read: len bytes of the data at off from copy src. */
static int read_any(struct rctx *r, const struct v2_obj *b, size_t src, uint64_t off,
		    size_t len, void *buf, struct err *err)
{
	struct store *store;
	const char *key, *name;
	size_t got = 0;
	int ret;

	source(r, b, src, &store, &key, &name);
	ret = store_get_range(store, key, off, len, buf, &got, err);
	/* the read-ahead's thread: the main thread reads it after the join */
	__atomic_fetch_add(&r->res->bytes_read, (uint64_t)got, __ATOMIC_RELAXED);
	if (!ret && got != len)
		ret = err_set(err, -EBADMSG, "%s%s%s%s is truncated (wanted %zu bytes at %llu, got %zu)",
			      name ? "region " : "", name ? name : "", name ? ": " : "",
			      key, len, (unsigned long long)off, got);
	return ret;
}

/* Copy src does not answer (or lacks bytes): the rest comes from the next. */
static void failed_any(struct rctx *r, const struct v2_obj *b, size_t src,
		       const struct err *why)
{
	struct store *store;
	const char *key, *name;

	source(r, b, src, &store, &key, &name);
	log_warn("region %s: %s; reading the rest from region %s",
		 name ? name : "?", name ? err_strip_region(name, why->msg) : why->msg,
		 r->o->fallback[src].region);
}

/* The frame at off from copy bad did not decode: read it from copy src. */
static void retry_any(struct rctx *r, const struct v2_obj *b, size_t bad, size_t src,
		      uint64_t off)
{
	struct store *store, *bad_store;
	const char *key, *name, *bad_key, *bad_name;

	source(r, b, src, &store, &key, &name);
	source(r, b, bad, &bad_store, &bad_key, &bad_name);
	log_warn("region %s: %s: the frame at byte %llu is corrupt; taking it from region %s",
		 bad_name ? bad_name : "?", bad_key, (unsigned long long)off,
		 name ? name : "?");
}

/* ctx: the rctx (version 1: the backup's data object) */
static int read_source(void *ctx, size_t src, uint64_t off, size_t len, void *buf,
		       struct err *err)
{
	return read_any(ctx, NULL, src, off, len, buf, err);
}

static void source_failed(void *ctx, size_t src, const struct err *why)
{
	failed_any(ctx, NULL, src, why);
}

static void frame_retry(void *ctx, size_t bad, size_t src, uint64_t off)
{
	retry_any(ctx, NULL, bad, src, off);
}

const struct readahead_ops restore_source_ops = {
	.read = read_source,
	.failover = source_failed,
	.retry = frame_retry,
};

/* ctx: a v2_obj (version 2: each object its own read-ahead, whose thread
 * may read one object while the main thread reads another) */
static int obj_read(void *ctx, size_t src, uint64_t off, size_t len, void *buf,
		    struct err *err)
{
	struct v2_obj *b = ctx;

	return read_any(b->r, b, src, off, len, buf, err);
}

static void obj_failed(void *ctx, size_t src, const struct err *why)
{
	struct v2_obj *b = ctx;

	failed_any(b->r, b, src, why);
}

static void obj_retry(void *ctx, size_t bad, size_t src, uint64_t off)
{
	struct v2_obj *b = ctx;

	retry_any(b->r, b, bad, src, off);
}

const struct readahead_ops restore_obj_ops = {
	.read = obj_read,
	.failover = obj_failed,
	.retry = obj_retry,
};

la_ssize_t restore_read_cb(struct archive *a, void *ctx, const void **buf)
{
	struct rctx *r = ctx;
	const void *d, *c;
	size_t dlen, clen;
	int ret;

	(void)a;
	if (!r->left) {      /* the end of the range: the rest is drained */
		*buf = NULL;
		return 0;
	}
	for (;;) {
		/* the buffer handed out last is gone once the unframer moves on:
		 * keep its tail for the headers of a file in blocks first */
		if (r->capture)
			blocks_capture_flush(r);
		ret = unframer_next(r->u, &d, &dlen, &c, &clen, &r->read_err);
		if (ret) {
			/* say which backup: "frame 3 is corrupt" alone is not enough */
			if (r->obj)
				err_wrap(&r->read_err, "backup %s (data object %s)",
					 r->obj->id, r->obj->key);
			else
				err_wrap(&r->read_err, "backup %s (%s)", r->m->backup_id,
					 r->m->data_key);
			r->read_error = ret;
			return -1;
		}
		if (r->hashing && clen)
			EVP_DigestUpdate(r->sha, c, clen);
		if (!dlen) {
			*buf = NULL;
			return 0;
		}
		r->res->frames_read++;
		if (r->skip >= dlen) {
			r->skip -= dlen;
			continue;
		}
		*buf = (const char *)d + r->skip;
		dlen -= r->skip;
		r->skip = 0;
		/* the range ends here: libarchive sees the end of the stream
		 * (the rest of the frame is hashed, never parsed) */
		if (dlen > r->left)
			dlen = (size_t)r->left;
		r->left -= dlen;
		if (!dlen) {
			*buf = NULL;
			return 0;
		}
		if (r->capture)
			blocks_capture(r, *buf, r->pos, dlen);
		r->pos += dlen;
		return (la_ssize_t)dlen;
	}
}

/* The index object at key in store, checked against m's SHA-256. */
static int fetch_index(struct store *store, const char *key, const struct manifest *m,
		       void **buf_ret, size_t *len_ret, uint64_t *bytes_read,
		       struct err *err)
{
	char hex[65];
	int ret;

	*len_ret = 0;
	ret = store_get_all(store, key, INDEX_MAX, buf_ret, len_ret, err);
	if (bytes_read)
		*bytes_read += *len_ret;
	if (ret)
		return err_wrap(err, "backup %s: cannot read its index", m->backup_id);
	util_sha256_hex(*buf_ret, *len_ret, hex);
	if (strcmp(hex, m->index_sha256)) {
		free(*buf_ret);
		*buf_ret = NULL;
		return err_set(err, -EBADMSG,
			       "backup %s: index %s is corrupt (SHA-256 differs from the manifest)",
			       m->backup_id, key);
	}
	return 0;
}

/* restore_index, adding the bytes fetched to *bytes_read (NULL: not counted) */
int restore_index_counted(struct store *store, const struct manifest *m,
			  const struct restore_opts *o, const struct seal_key *ikey,
			  struct index **idx_ret, uint64_t *bytes_read,
			  struct err *err)
{
	void *buf = NULL;
	size_t len = 0;
	int ret;

	*idx_ret = NULL;
	ret = fetch_index(store, m->index_key, m, &buf, &len, bytes_read, err);
	/* another region's copy of the index, if this one fails */
	for (size_t i = 0; ret && ret != -ENOMEM && i < o->nfallback; i++) {
		struct err e = { 0 };

		if (fetch_index(o->fallback[i].store, o->fallback[i].index_key, m,
				&buf, &len, bytes_read, &e))
			continue;
		log_warn("region %s: %s; using the index of region %s",
			 o->region ? o->region : "?",
			 o->region ? err_strip_region(o->region, err->msg) : err->msg,
			 o->fallback[i].region);
		err_clear(err);
		ret = 0;
	}
	if (ret)
		return ret;
	if (ikey) {
		void *plain = NULL;
		size_t plen = 0;
		char what[256];

		snprintf(what, sizeof(what), "backup %s: index %s", m->backup_id, m->index_key);
		ret = seal_unstream_buf(ikey, what, buf, len, &plain, &plen, err);
		free(buf);
		if (ret)
			return ret;
		buf = plain;
		len = plen;
	}
	ret = index_load(buf, len, idx_ret, err);
	free(buf);
	if (ret)
		return err_wrap(err, "backup %s: index %s", m->backup_id, m->index_key);
	return 0;
}

int restore_index(struct store *store, const struct manifest *m,
		  const struct restore_opts *o, struct index **idx_ret,
		  struct err *err)
{
	struct backup_keys bk;
	int ret = keyring_for_backup(o->keys, m, &bk, err);

	if (!ret)
		ret = restore_index_counted(store, m, o, bk.index, idx_ret, NULL, err);
	backup_keys_clear(&bk);
	return ret;
}

bool restore_under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!strcmp(prefix, "."))
		return true;
	return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

bool restore_wanted(const struct rctx *r, const char *path)
{
	if (!r->o->npaths)
		return true;
	for (size_t i = 0; i < r->o->npaths; i++)
		if (restore_under(path, r->o->paths[i]))
			return true;
	return false;
}

void restore_show_progress(struct rctx *r, bool done)
{
	double now = util_now_mono();
	char hb[32];

	if (!r->o->progress || (!done && now - r->t_progress < 0.2))
		return;
	r->t_progress = now;
	fprintf(stderr, "\r\033[Ksnapship: restoring %s: %s, %llu entries, frame %llu/%llu",
		r->m->partition, util_human_size(r->res->bytes, hb, sizeof(hb)),
		(unsigned long long)r->res->entries,
		(unsigned long long)r->res->frames_read,
		(unsigned long long)r->res->frames_total);
	if (done)
		fprintf(stderr, "\r\033[K");
}

/* A file in blocks whose whole entry is read: block k does not match. */
static int block_mismatch(struct rctx *r, const char *path, const struct blk_hash *bh,
			  bool written)
{
	return err_set(r->err, -EBADMSG,
		       "backup %s: %s: block %llu does not match its checksum; read from backup %s (data object %s): the stored backup is corrupt%s",
		       r->m->backup_id, path, (unsigned long long)bh->k,
		       r->obj ? r->obj->id : r->m->backup_id,
		       r->obj ? r->obj->key : r->m->data_key,
		       written ? "; the file was written but must not be trusted" : "");
}

/* Zeros for a hole of n bytes, within the restore's budget of holes (and
 * into the blocks' checksums, bh not NULL). */
static int hash_hole(struct rctx *r, XXH3_state_t *h, struct blk_hash *bh,
		     const char *path, uint64_t n)
{
	static const unsigned char zeros[65536];
	uint64_t max;

	if (!n)
		return 0;
	max = claims_holes_max();
	if (n > max || r->res->hole_bytes > max - n)
		return err_set(r->err, -EFBIG,
			       "backup %s: %s has more holes than its sparse map said; refusing it — the stored backup is corrupt or was tampered with",
			       r->m->backup_id, path);
	r->res->hole_bytes += n;
	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		XXH3_128bits_update(h, zeros, k);
		if (bh && blk_hash_feed(bh, NULL, k))
			return block_mismatch(r, path, bh, false);
		n -= k;
	}
	return 0;
}

/*
 * Copy (or with x NULL, just read) one entry's data, checking its sum.
 * claims_file() has bounded ie->size; no data or hole goes past it.
 */
/* A safe point: -ECANCELED once the caller's cancellation says so. */
int restore_check_cancel(struct rctx *r, const char *path)
{
	const struct restore_opts *o = r->o;

	if (!o->cancelled || !o->cancelled(o->cancel_ctx))
		return 0;
	r->said_cancel = true;
	return err_set(r->err, -ECANCELED, "%s of backup %s of %s cancelled after %llu entries%s%s",
		       o->target ? "restore" : "reading", r->m->backup_id, r->m->partition,
		       (unsigned long long)r->res->entries, path ? ", in " : "",
		       path ? UTIL_ESC(path) : "");
}

static int file_data(struct rctx *r, struct archive *a, struct extractor *x,
		     const char *path, const struct index_entry *ie, struct blk_hash *bh);

int restore_file_data(struct rctx *r, struct archive *a, struct extractor *x,
			const char *path, const struct index_entry *ie)
{
	struct blk_hash bh = { 0 };
	int ret;

	if (ie->blk && blk_hash_init(&bh, ie, 0))
		return err_set(r->err, -ENOMEM, "out of memory");
	ret = file_data(r, a, x, path, ie, ie->blk ? &bh : NULL);
	blk_hash_free(&bh);
	return ret;
}

/* restore_file_data, checking the blocks too with bh (not NULL). */
static int file_data(struct rctx *r, struct archive *a, struct extractor *x,
		     const char *path, const struct index_entry *ie, struct blk_hash *bh)
{
	XXH3_state_t h;
	XXH128_canonical_t sum;
	uint64_t at = 0, size = ie->size;
	int ret;

	XXH3_128bits_reset(&h);
	for (;;) {
		const void *buf;
		size_t len;
		la_int64_t off;

		ret = restore_check_cancel(r, path);
		if (ret)
			return ret;
		ret = archive_read_data_block(a, &buf, &len, &off);
		if (ret == ARCHIVE_EOF)
			break;
		if (ret < ARCHIVE_WARN) {
			if (r->read_error) {
				*r->err = r->read_err;
				return r->read_error;
			}
			return err_set(r->err, -EBADMSG, "backup %s is corrupt at %s: %s",
				       r->m->backup_id, path, archive_error_string(a));
		}
		if (off < 0 || (uint64_t)off < at || (uint64_t)off > size ||
		    len > size - (uint64_t)off)
			return err_set(r->err, -EBADMSG,
				       "backup %s: %s has data at byte %lld (%zu bytes), out of order or past its size of %llu bytes; refusing it — the stored backup is corrupt or was tampered with",
				       r->m->backup_id, path, (long long)off, len,
				       (unsigned long long)size);
		ret = hash_hole(r, &h, bh, path, (uint64_t)off - at);
		if (ret)
			return ret;
		XXH3_128bits_update(&h, buf, len);
		if (bh && blk_hash_feed(bh, buf, len))
			return block_mismatch(r, path, bh, x != NULL);
		at = (uint64_t)off + len;
		r->res->bytes += len;
		if (x && len) {
			ret = extractor_data(x, buf, len, off, r->err);
			if (ret)
				return ret;
		}
		restore_show_progress(r, false);
	}
	ret = hash_hole(r, &h, bh, path, size - at);
	if (ret)
		return ret;
	/* snapship stores a checksum for every file (a file in blocks: of each
	 * block, all checked above): one without could never be verified */
	if (!ie->has_sum && bh)
		return 0;
	if (!ie->has_sum)
		return err_set(r->err, -EBADMSG,
			       "backup %s: the index holds no checksum for %s (snapship writes one for every file); the stored backup is corrupt or was tampered with%s",
			       r->m->backup_id, UTIL_ESC(path),
			       x ? "; the file was written but must not be trusted" : "");
	XXH128_canonicalFromHash(&sum, XXH3_128bits_digest(&h));
	if (memcmp(sum.digest, ie->xxh3, 16)) {
		__atomic_store_n(&r->res->checksum_mismatch, true, __ATOMIC_RELAXED);
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s does not match its checksum (the stored backup is corrupt)%s",
			       r->m->backup_id, path,
			       x ? "; the file was written but must not be trusted" : "");
	}
	return 0;
}

/* Every --path is in the index: said before the target is made. */
int restore_check_paths(struct rctx *r)
{
	for (size_t i = 0; i < r->o->npaths; i++)
		if (index_find(r->idx, r->o->paths[i]) == (size_t)-1)
			return err_set(r->err, -ENOENT,
				       "%s is not in backup %s of %s; snapship ls %s --id %s [DIR] shows what it holds (paths are relative to the partition)",
				       UTIL_ESC(r->o->paths[i]), r->m->backup_id,
				       r->m->partition, r->m->partition, r->m->backup_id);
	return 0;
}

/*
 * File writer threads: one per CPU (writing into btrfs costs as much CPU as
 * decompressing), 2 to 8; SNAPSHIP_RESTORE_WRITERS=N (0 = write from the
 * reading thread) overrides it.
 */
static unsigned restore_writers(void)
{
	const char *env = getenv("SNAPSHIP_RESTORE_WRITERS");
	long n = sysconf(_SC_NPROCESSORS_ONLN);
	char *end;

	if (env && *env) {
		unsigned long v = strtoul(env, &end, 10);

		if (!*end && v <= WRITERS_MAX)
			return (unsigned)v;
		log_warn("SNAPSHIP_RESTORE_WRITERS=%s: not a number from 0 to %d; using the default",
			 env, WRITERS_MAX);
	}
	if (n < WRITERS_MIN)
		return WRITERS_MIN;
	return n > WRITERS_MAX ? WRITERS_MAX : (unsigned)n;
}

static int disk_flags(const struct restore_opts *o)
{
	int flags = ARCHIVE_EXTRACT_TIME | ARCHIVE_EXTRACT_PERM |
		    ARCHIVE_EXTRACT_OWNER | ARCHIVE_EXTRACT_ACL |
		    ARCHIVE_EXTRACT_XATTR | ARCHIVE_EXTRACT_FFLAGS |
		    ARCHIVE_EXTRACT_SECURE_SYMLINKS |
		    ARCHIVE_EXTRACT_SECURE_NODOTDOT |
		    ARCHIVE_EXTRACT_SECURE_NOABSOLUTEPATHS;

	if (o->force)
		flags |= ARCHIVE_EXTRACT_UNLINK;
	return flags;
}

/* Make the target, enter it, and start the extractor writing into it. */
int restore_open_target(struct rctx *r)
{
	const struct restore_opts *o = r->o;
	int ret;

	if (o->export)   /* nothing on disk: files in runs too (restore_export.c) */
		return extractor_new_stream(o->export_fd, &r->x, r->err);
	ret = cow_make_target(o->target, o->force, &r->made, r->err);

	if (ret)
		return ret;
	r->target_made = true;
	r->res->subvolume = r->made == COW_TARGET_VOLUME;
	r->target_was_empty = r->made != COW_TARGET_EXISTED ||
			      util_dir_is_empty(o->target);
	r->tfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	r->cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (r->tfd < 0 || r->cwd < 0 || fchdir(r->tfd))
		return err_set(r->err, -errno, "cannot enter restore target %s: %s",
			       o->target, strerror(errno));
	return extractor_new(disk_flags(o), restore_writers(), RESTORE_MEM,
			     o->target, &r->x, r->err);
}

/* Undo open_target(): stop the extractor, leave the target. */
void restore_close_target(struct rctx *r)
{
	extractor_free(r->x);
	r->x = NULL;
	if (r->cwd >= 0) {
		if (fchdir(r->cwd))
			log_warn("cannot return to the working directory");
		close(r->cwd);
	}
	if (r->tfd >= 0)
		close(r->tfd);
	r->cwd = r->tfd = -1;
}

/* Add to the message in err (a failed restore's) what it leaves behind. */
__attribute__((format(printf, 2, 3)))
static void say_left(struct err *err, const char *fmt, ...)
{
	size_t n = strlen(err->msg);
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err->msg + n, sizeof(err->msg) - n, fmt, ap);
	va_end(ap);
}

/*
 * After a failed restore (the target closed): remove the target when this
 * restore made it and wrote nothing into it; else say in r->err what is
 * left there.  A target that existed before is never removed.
 */
void restore_leftovers(struct rctx *r)
{
	const char *t = r->o->target;
	const char *kind = r->made == COW_TARGET_VOLUME ? "subvolume" : "directory";
	unsigned long long n = (unsigned long long)r->res->entries;
	struct err e = { 0 };
	int ret;

	if (!r->target_made)
		return;          /* failed before: nothing made or written */
	if (r->made == COW_TARGET_EXISTED) {
		if (util_dir_is_empty(t))
			say_left(r->err, "; nothing was written into %s", t);
		else if (r->target_was_empty)
			say_left(r->err, "; %s holds a partial restore (about %llu entries): empty it before restoring again",
				 t, n);
		else
			say_left(r->err, "; %s holds a partial restore (about %llu entries) mixed with what it held before (--force)",
				 t, n);
		return;
	}
	ret = cow_remove_target(t, r->made, &e);
	if (!ret)
		say_left(r->err, "; nothing was restored: the new %s %s is removed", kind, t);
	else if (ret == -ENOTEMPTY)
		say_left(r->err, "; a partial restore is left in the new %s %s (about %llu entries): do not use it; remove it (%s %s) and restore again",
			 kind, t, n, r->made == COW_TARGET_VOLUME ?
			 "btrfs subvolume delete" : "rm -r", t);
	else
		say_left(r->err, "; nothing was restored, but the new %s %s could not be removed (%s): remove it",
			 kind, t, e.msg);
}

/* A range read every frame: the object's SHA-256 against the manifest. */
static int check_data_hash(struct rctx *r)
{
	unsigned char md[32];
	unsigned int mdlen = 0;
	char hex[65];

	if (!r->hashed)
		return 0;
	EVP_DigestUpdate(r->sha, r->tail, r->tail_len);
	EVP_DigestFinal_ex(r->sha, md, &mdlen);
	util_hex(md, 32, hex);
	if (strcmp(hex, r->m->data_sha256))
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s differs from the SHA-256 in its manifest (altered after the backup)",
			       r->m->backup_id, r->m->data_key);
	return 0;
}

int restore_backup(struct store *store, const struct manifest *m,
		   const struct restore_opts *o, struct restore_result *res,
		   struct err *err)
{
	struct rctx r = { .store = store, .m = m, .o = o, .res = res, .err = err,
			  .cwd = -1, .tfd = -1 };
	int ret;

	memset(res, 0, sizeof(*res));
	r.t0 = util_now_mono();
	for (size_t i = 0; i < o->npaths; i++)
		if (!extract_path_safe(o->paths[i]))
			return err_set(err, -EINVAL, "--path %s: give a path relative to the partition, without ..",
				       o->paths[i]);
	/* an encrypted backup: its key first, before anything is written */
	ret = keyring_for_backup(o->keys, m, &r.keys, err);
	if (!ret)
		ret = m->format_version == 2 ? restore_v2(&r) : restore_v1(&r);
	/* the object's hash before the stream is closed: a failed check must
	 * leave an export cut short, not a valid archive */
	if (!ret)
		ret = check_data_hash(&r);
	if (!ret && r.x)
		ret = extractor_finish(r.x, NULL, err);
	if (!ret)
		res->seconds = util_now_mono() - r.t0;
	restore_show_progress(&r, true);
	restore_close_target(&r);
	/* a read cancelled under us (the store's cancel hook): say why */
	if (ret && !r.said_cancel && o->cancelled && o->cancelled(o->cancel_ctx)) {
		err_clear(err);
		ret = restore_check_cancel(&r, NULL);
	}
	if (ret)
		restore_leftovers(&r);
	EVP_MD_CTX_free(r.sha);
	backup_keys_clear(&r.keys);
	restore_v2_free(&r);
	readahead_free(r.ra);
	index_free(r.idx);
	seek_table_free(r.st);
	free(r.tail);
	return ret;
}
