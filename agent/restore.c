// SPDX-License-Identifier: MIT
#include "agent/restore.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define XXH_INLINE_ALL
#include <xxhash.h>

#include "agent/catalog.h"
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
#define TAIL_GUESS (64u << 10)
#define WRITERS_MIN 2           /* file writer threads: one per CPU, */
#define WRITERS_MAX 8           /* within these bounds */
#define RESTORE_MEM (8u << 20)   /* data queued for them */
#define TAR_BLOCK 512u           /* the smallest tar header */

struct rctx {
	struct store *store;
	const struct manifest *m;
	const struct restore_opts *o;
	struct restore_result *res;
	struct err *err;

	struct index *idx;
	struct seek_table *st;
	unsigned char *tail;          /* the seek table bytes at the object's end */
	size_t tail_len;

	/* current range */
	struct unframer *u;
	size_t skip;                  /* bytes to drop at the start of the range */
	uint64_t left;                /* bytes of the range still to hand out */
	bool hashing;                 /* the range covers every frame: hash it */
	bool hashed;                  /* a range hashed the whole object */
	EVP_MD_CTX *sha;              /* whole-object hash */
	int read_error;
	struct err read_err;
	struct readahead *ra;         /* the data's copies: 0 the store, i > 0
				       * o->fallback[i - 1] */
	double t0, t_progress;
};

/* Source i of the data: 0 the store, i > 0 o->fallback[i - 1]. */
static void source(const struct rctx *r, size_t i, struct store **store,
		   const char **key, const char **name)
{
	*store = i ? r->o->fallback[i - 1].store : r->store;
	*key = i ? r->o->fallback[i - 1].data_key : r->m->data_key;
	*name = i ? r->o->fallback[i - 1].region : r->o->region;
}

/* The read-ahead's read: len bytes of the data at off from copy src. */
static int read_source(void *ctx, size_t src, uint64_t off, size_t len, void *buf,
		       struct err *err)
{
	struct rctx *r = ctx;
	struct store *store;
	const char *key, *name;
	size_t got = 0;
	int ret;

	source(r, src, &store, &key, &name);
	ret = store_get_range(store, key, off, len, buf, &got, err);
	if (!ret && got != len)
		ret = err_set(err, -EBADMSG, "%s%s%s%s is truncated (wanted %zu bytes at %llu, got %zu)",
			      name ? "region " : "", name ? name : "", name ? ": " : "",
			      key, len, (unsigned long long)off, got);
	return ret;
}

/* Copy src does not answer (or lacks bytes): the rest comes from the next. */
static void source_failed(void *ctx, size_t src, const struct err *why)
{
	struct rctx *r = ctx;
	struct store *store;
	const char *key, *name;

	source(r, src, &store, &key, &name);
	log_warn("region %s: %s; reading the rest from region %s",
		 name ? name : "?", name ? err_strip_region(name, why->msg) : why->msg,
		 r->o->fallback[src].region);
}

/* The frame at off from copy bad did not decode: read it from copy src. */
static void frame_retry(void *ctx, size_t bad, size_t src, uint64_t off)
{
	struct rctx *r = ctx;
	struct store *store, *bad_store;
	const char *key, *name, *bad_key, *bad_name;

	source(r, src, &store, &key, &name);
	source(r, bad, &bad_store, &bad_key, &bad_name);
	log_warn("region %s: %s: the frame at byte %llu is corrupt; taking it from region %s",
		 bad_name ? bad_name : "?", bad_key, (unsigned long long)off,
		 name ? name : "?");
}

static const struct readahead_ops source_ops = {
	.read = read_source,
	.failover = source_failed,
	.retry = frame_retry,
};

static la_ssize_t read_cb(struct archive *a, void *ctx, const void **buf)
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
		ret = unframer_next(r->u, &d, &dlen, &c, &clen, &r->read_err);
		if (ret) {
			/* say which backup: "frame 3 is corrupt" alone is not enough */
			err_wrap(&r->read_err, "backup %s (%s)", r->m->backup_id, r->m->data_key);
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
		return (la_ssize_t)dlen;
	}
}

/* The index object from source i, checked against the manifest. */
static int fetch_index(struct rctx *r, size_t i, void **buf_ret, size_t *len_ret,
		       struct err *err)
{
	struct store *store = i ? r->o->fallback[i - 1].store : r->store;
	const char *key = i ? r->o->fallback[i - 1].index_key : r->m->index_key;
	char hex[65];
	int ret;

	ret = store_get_all(store, key, INDEX_MAX, buf_ret, len_ret, err);
	if (ret)
		return err_wrap(err, "backup %s: cannot read its index", r->m->backup_id);
	util_sha256_hex(*buf_ret, *len_ret, hex);
	if (strcmp(hex, r->m->index_sha256)) {
		free(*buf_ret);
		*buf_ret = NULL;
		return err_set(err, -EBADMSG,
			       "backup %s: index %s is corrupt (SHA-256 differs from the manifest)",
			       r->m->backup_id, key);
	}
	return 0;
}

static int load_index(struct rctx *r)
{
	void *buf = NULL;
	size_t len = 0;
	int ret;

	ret = fetch_index(r, 0, &buf, &len, r->err);
	/* another region's copy of the index, if this one fails */
	for (size_t i = 1; ret && ret != -ENOMEM && i <= r->o->nfallback; i++) {
		struct err e = { 0 };
		const char *from = i == 1 ? r->o->region : r->o->fallback[i - 2].region;

		if (fetch_index(r, i, &buf, &len, &e))
			continue;
		log_warn("region %s: %s; using the index of region %s", from ? from : "?",
			 r->err->msg, r->o->fallback[i - 1].region);
		err_clear(r->err);
		ret = 0;
	}
	if (ret)
		return ret;
	ret = index_load(buf, len, &r->idx, r->err);
	free(buf);
	if (ret)
		return err_wrap(r->err, "backup %s: index %s", r->m->backup_id, r->m->index_key);
	return 0;
}

static int load_seek_table(struct rctx *r)
{
	const struct manifest *m = r->m;
	struct store_obj_info info;
	size_t want, got = 0, need;
	uint32_t nframes = 0;
	int ret;

	/* frames are decompressed whole: their size bounds restore memory */
	if (!m->frame_size || m->frame_size > FRAME_SIZE_MAX)
		return err_set(r->err, -EBADMSG,
			       "backup %s: its manifest gives a frame size of %u bytes (at most 64 MiB): the manifest is corrupt or forged",
			       m->backup_id, m->frame_size);
	ret = store_head(r->store, m->data_key, &info, r->err);
	if (ret)
		return err_wrap(r->err, "backup %s", m->backup_id);
	if (info.size != m->data_size)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s has %llu bytes, the manifest says %llu (truncated or replaced)",
			       m->backup_id, m->data_key,
			       (unsigned long long)info.size,
			       (unsigned long long)m->data_size);
	if (!info.size)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s is empty (0 bytes): the stored backup is corrupt; restore another backup (snapship list)",
			       m->backup_id, m->data_key);
	want = info.size < TAIL_GUESS ? (size_t)info.size : TAIL_GUESS;
	for (;;) {
		free(r->tail);
		r->tail = malloc(want);
		if (!r->tail)
			return err_set(r->err, -ENOMEM, "out of memory");
		ret = store_get_range(r->store, m->data_key, info.size - want, want,
				      r->tail, &got, r->err);
		if (ret)
			return ret;
		if (got != want)
			return err_set(r->err, -EBADMSG, "%s: short read", m->data_key);
		/* need <= info.size: never more than the object holds */
		ret = seek_table_size(r->tail, want, info.size, &need, &nframes, r->err);
		if (ret)
			return err_wrap(r->err, "backup %s: %s", m->backup_id, m->data_key);
		if (nframes != m->frames)
			return err_set(r->err, -EBADMSG,
				       "backup %s: %s holds %u frames, its manifest says %u: the stored backup is corrupt",
				       m->backup_id, m->data_key, nframes, m->frames);
		if (need <= want)
			break;
		want = need;
	}
	ret = seek_table_parse(r->tail, want, info.size, m->frame_size, &r->st, r->err);
	if (ret)
		return err_wrap(r->err, "backup %s: %s", m->backup_id, m->data_key);
	if (r->st->d_total != m->tar_bytes)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s holds %llu bytes of tar stream, its manifest says %llu: the stored backup is corrupt",
			       m->backup_id, m->data_key,
			       (unsigned long long)r->st->d_total,
			       (unsigned long long)m->tar_bytes);
	/* keep just the seek table bytes for hashing */
	r->tail_len = (size_t)(info.size - r->st->c_total);
	memmove(r->tail, r->tail + want - r->tail_len, r->tail_len);
	r->res->frames_total = r->st->nframes;
	return 0;
}

/*
 * The index's claims against what the data can hold, before any work
 * proportional to them starts: every entry's header lies inside the
 * stream, after the entry before it, only files (and hard links, which
 * give their target's) have a size, and a regular file's data (unless
 * sparse: holes are not stored) fits in the stream after it, as do all of
 * them together.
 */
static int check_index(struct rctx *r)
{
	const uint64_t total = r->st->d_total;
	uint64_t data = 0;

	for (size_t i = 0; i < r->idx->n; i++) {
		const struct index_entry *e = &r->idx->e[i];
		const char *why = NULL;

		if (e->offset >= total || total - e->offset < TAR_BLOCK)
			why = "its offset lies past the end of the data";
		else if (i && e->offset <= r->idx->e[i - 1].offset)
			why = "its offset is not after the entry before it";
		else if (e->type != 'f' && e->type != 'h' && e->size)
			why = "only a file has a size";
		else if (e->type == 'f' && !e->sparse &&
			 e->size > total - e->offset - TAR_BLOCK)
			why = "its size is more than the data after it";
		else if (e->type == 'f' && !e->sparse && (data += e->size) > total)
			why = "it and the files before it hold more than the data";
		if (why)
			return err_set(r->err, -EBADMSG,
				       "backup %s: index entry %s (offset %llu, size %llu) is corrupt: %s (the data holds %llu bytes); the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(e->path),
				       (unsigned long long)e->offset,
				       (unsigned long long)e->size, why,
				       (unsigned long long)total);
	}
	return 0;
}

/* Is p safe to create under the target?  No absolute path, no "..". */
static bool path_safe(const char *p)
{
	if (!p || !*p || p[0] == '/')
		return false;
	for (const char *s = p; *s;) {
		const char *e = strchrnul(s, '/');

		if (e - s == 2 && s[0] == '.' && s[1] == '.')
			return false;
		s = *e ? e + 1 : e;
	}
	return true;
}

/* "./" → ".", "a/b/" → "a/b" (directories carry a slash in tar) */
static void norm_path(char *p)
{
	size_t n = strlen(p);

	while (n > 1 && p[n - 1] == '/')
		p[--n] = '\0';
	if (n == 0) {
		p[0] = '.';
		p[1] = '\0';
	}
}

static bool under(const char *path, const char *prefix)
{
	size_t n = strlen(prefix);

	if (!strcmp(prefix, "."))
		return true;
	return !strncmp(path, prefix, n) && (path[n] == '\0' || path[n] == '/');
}

static bool wanted(const struct rctx *r, const char *path)
{
	if (!r->o->npaths)
		return true;
	for (size_t i = 0; i < r->o->npaths; i++)
		if (under(path, r->o->paths[i]))
			return true;
	return false;
}

static void show_progress(struct rctx *r, bool done)
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

/*
 * Holes of sparse files are hashed as zeros: at about 10 GB/s, a map
 * claiming a petabyte would take a day.  One restore hashes at most this
 * much (SNAPSHIP_RESTORE_MAX_HOLES=BYTES overrides it, for a trusted store
 * holding larger sparse files).
 */
#define HOLES_MAX (256ull << 30)

static uint64_t holes_max(void)
{
	const char *env = getenv("SNAPSHIP_RESTORE_MAX_HOLES");
	char *end;

	if (env && *env) {
		unsigned long long v;

		errno = 0;
		v = strtoull(env, &end, 10);
		if (!*end && !errno)
			return v;
		log_warn("SNAPSHIP_RESTORE_MAX_HOLES=%s: not a number of bytes; using %llu",
			 env, HOLES_MAX);
	}
	return HOLES_MAX;
}

static char type_letter(struct archive_entry *ae)
{
	if (archive_entry_hardlink(ae))
		return PACK_HARDLINK;
	switch (archive_entry_filetype(ae)) {
	case AE_IFREG: return PACK_FILE;
	case AE_IFDIR: return PACK_DIR;
	case AE_IFLNK: return PACK_SYMLINK;
	case AE_IFCHR: return PACK_CHAR;
	case AE_IFBLK: return PACK_BLOCK;
	case AE_IFIFO: return PACK_FIFO;
	default: return '?';
	}
}

static int mismatch(struct rctx *r, const char *path, const char *field,
		    const char *data, const char *index)
{
	return err_set(r->err, -EBADMSG,
		       "backup %s: %s: its %s in the data (%s) differs from the index (%s); refusing it — the stored backup is corrupt or was tampered with",
		       r->m->backup_id, path, field, data, index);
}

/*
 * The permission bits the entry gets on disk (and had when backed up): with
 * an access ACL, libarchive keeps the group entry's bits in the entry's mode,
 * while the file's group bits are the ACL's mask.
 */
static unsigned disk_perm(struct archive_entry *ae)
{
	unsigned perm = (unsigned)archive_entry_perm(ae) & 07777;
	int type, permset, tag, id;
	const char *name;

	if (archive_entry_acl_reset(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS) <= 0)
		return perm;
	while (archive_entry_acl_next(ae, ARCHIVE_ENTRY_ACL_TYPE_ACCESS, &type,
				      &permset, &tag, &id, &name) == ARCHIVE_OK)
		if (tag == ARCHIVE_ENTRY_ACL_MASK)
			perm = (perm & ~070u) | ((unsigned)permset & 7) << 3;
	return perm;
}

static bool utf8_valid(const char *s)
{
	json_t *j = json_string(s);

	json_decref(j);
	return j != NULL;
}

/*
 * The data's entry must be what the index says was backed up: type, mode,
 * owner, size, mtime, link target and device number.  Checked before
 * anything of the entry is written.
 */
static int check_entry(struct rctx *r, struct archive_entry *ae, const char *path,
		       const struct index_entry *ie)
{
	char t = type_letter(ae), a[64], b[64];
	const char *link = NULL;
	int64_t mtime;
	uint64_t size = (uint64_t)archive_entry_size(ae);

	if (t != ie->type) {
		snprintf(a, sizeof(a), "%c", t);
		snprintf(b, sizeof(b), "%c", ie->type);
		return mismatch(r, path, "type", a, b);
	}
	if (t == PACK_HARDLINK && archive_entry_size(ae) != 0)
		return err_set(r->err, -EBADMSG,
			       "backup %s: hard link %s carries %lld bytes of data, which would overwrite %s; refusing it — the stored backup was tampered with",
			       r->m->backup_id, path, (long long)archive_entry_size(ae),
			       archive_entry_hardlink(ae));
	if (disk_perm(ae) != ie->mode) {
		snprintf(a, sizeof(a), "%04o", disk_perm(ae));
		snprintf(b, sizeof(b), "%04o", (unsigned)ie->mode);
		return mismatch(r, path, "mode", a, b);
	}
	if (archive_entry_uid(ae) != ie->uid || archive_entry_gid(ae) != ie->gid) {
		snprintf(a, sizeof(a), "%lld:%lld", (long long)archive_entry_uid(ae),
			 (long long)archive_entry_gid(ae));
		snprintf(b, sizeof(b), "%lld:%lld", (long long)ie->uid, (long long)ie->gid);
		return mismatch(r, path, "owner", a, b);
	}
	if (t != PACK_HARDLINK && (archive_entry_size(ae) < 0 || size != ie->size)) {
		snprintf(a, sizeof(a), "%lld bytes", (long long)archive_entry_size(ae));
		snprintf(b, sizeof(b), "%llu bytes", (unsigned long long)ie->size);
		return mismatch(r, path, "size", a, b);
	}
	if (!archive_entry_mtime_is_set(ae) ||
	    __builtin_mul_overflow((int64_t)archive_entry_mtime(ae), (int64_t)1000000000, &mtime) ||
	    __builtin_add_overflow(mtime, (int64_t)archive_entry_mtime_nsec(ae), &mtime) ||
	    mtime != ie->mtime_ns) {
		snprintf(a, sizeof(a), "%lld.%09ld s", (long long)archive_entry_mtime(ae),
			 archive_entry_mtime_nsec(ae));
		snprintf(b, sizeof(b), "%lld ns", (long long)ie->mtime_ns);
		return mismatch(r, path, "mtime", a, b);
	}
	if (t == PACK_SYMLINK)
		link = archive_entry_symlink(ae);
	else if (t == PACK_HARDLINK)
		link = archive_entry_hardlink(ae);
	if ((t == PACK_SYMLINK || t == PACK_HARDLINK) &&
	    !(link && ie->link && !strcmp(link, ie->link)) &&
	    !(link && ie->link_legacy && !utf8_valid(link)))
		return mismatch(r, path, "link target", link ? link : "none",
				ie->link ? ie->link : ie->link_legacy ? "(not UTF-8)" : "none");
	if ((t == PACK_CHAR || t == PACK_BLOCK) &&
	    (!ie->has_rdev || (uint64_t)archive_entry_rdev(ae) != ie->rdev)) {
		snprintf(a, sizeof(a), "%llu", (unsigned long long)archive_entry_rdev(ae));
		snprintf(b, sizeof(b), ie->has_rdev ? "%llu" : "none",
			 (unsigned long long)ie->rdev);
		return mismatch(r, path, "device number", a, b);
	}
	return 0;
}

/*
 * A regular file's size must fit what the data can hold before any work
 * proportional to it starts (and before the writer makes a file that
 * large): its data (the sparse map's regions, or the whole size) within
 * the stream, and its holes within what one restore hashes.
 */
static int check_claims(struct rctx *r, struct archive_entry *ae, const char *path,
			const struct index_entry *ie)
{
	uint64_t size = ie->size, data = 0, holes, max;
	la_int64_t off, len;

	if (archive_entry_sparse_reset(ae) > 0) {
		while (archive_entry_sparse_next(ae, &off, &len) == ARCHIVE_OK) {
			if (off < 0 || len < 0 || (uint64_t)off > size ||
			    (uint64_t)len > size - (uint64_t)off ||
			    (uint64_t)len > size - data)
				return err_set(r->err, -EBADMSG,
					       "backup %s: %s: its sparse map has data at byte %lld (%lld bytes), past its size of %llu bytes; refusing it — the stored backup is corrupt or was tampered with",
					       r->m->backup_id, path, (long long)off,
					       (long long)len, (unsigned long long)size);
			data += (uint64_t)len;
		}
	} else {
		data = size;
	}
	if (data > r->st->d_total)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s claims %llu bytes of data, more than the whole backup holds (%llu); refusing it — the stored backup is corrupt or was tampered with",
			       r->m->backup_id, path, (unsigned long long)data,
			       (unsigned long long)r->st->d_total);
	holes = size - data;
	max = holes_max();
	if (holes > max || r->res->hole_bytes > max - holes)
		return err_set(r->err, -EFBIG,
			       "backup %s: %s is a sparse file of %llu bytes with %llu bytes of holes; one restore reads at most %llu bytes of holes — a store you trust with larger sparse files: set SNAPSHIP_RESTORE_MAX_HOLES=BYTES",
			       r->m->backup_id, path, (unsigned long long)size,
			       (unsigned long long)holes, (unsigned long long)max);
	return 0;
}

/* Zeros for a hole of n bytes, within the restore's budget of holes. */
static int hash_hole(struct rctx *r, XXH3_state_t *h, const char *path, uint64_t n)
{
	static const unsigned char zeros[65536];
	uint64_t max;

	if (!n)
		return 0;
	max = holes_max();
	if (n > max || r->res->hole_bytes > max - n)
		return err_set(r->err, -EFBIG,
			       "backup %s: %s has more holes than its sparse map said; refusing it — the stored backup is corrupt or was tampered with",
			       r->m->backup_id, path);
	r->res->hole_bytes += n;
	while (n) {
		size_t k = n > sizeof(zeros) ? sizeof(zeros) : (size_t)n;

		XXH3_128bits_update(h, zeros, k);
		n -= k;
	}
	return 0;
}

/*
 * Copy (or with x NULL, just read) one entry's data, checking its sum.
 * check_claims() has bounded ie->size; no data or hole goes past it.
 */
static int restore_data(struct rctx *r, struct archive *a, struct extractor *x,
			const char *path, const struct index_entry *ie)
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
		ret = hash_hole(r, &h, path, (uint64_t)off - at);
		if (ret)
			return ret;
		XXH3_128bits_update(&h, buf, len);
		at = (uint64_t)off + len;
		r->res->bytes += len;
		if (x && len) {
			ret = extractor_data(x, buf, len, off, r->err);
			if (ret)
				return ret;
		}
		show_progress(r, false);
	}
	ret = hash_hole(r, &h, path, size - at);
	if (ret)
		return ret;
	if (!ie->has_sum)
		return 0;
	XXH128_canonicalFromHash(&sum, XXH3_128bits_digest(&h));
	if (memcmp(sum.digest, ie->xxh3, 16))
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s does not match its checksum (the stored backup is corrupt)%s",
			       r->m->backup_id, path,
			       x ? "; the file was written but must not be trusted" : "");
	return 0;
}

/*
 * One entry of the data, found in the index as entry i: matched once per
 * pass, as the index describes it, within the claims the data can hold;
 * without privileges unless asked.  *fresh: never matched before.
 */
static int check_match(struct rctx *r, struct archive_entry *ae, const char *path,
		       size_t i, bool *fresh)
{
	const struct index_entry *ie = &r->idx->e[i];
	int m = index_mark(r->idx, i), ret;

	if (m < 0)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s is in the data twice (the index lists it once); refusing it — the stored backup is corrupt or was tampered with",
			       r->m->backup_id, path);
	*fresh = m > 0;
	ret = check_entry(r, ae, path, ie);
	if (!ret && ie->type == PACK_FILE)
		ret = check_claims(r, ae, path, ie);
	if (!ret && r->o->target && !r->o->keep_privileges) {
		unsigned dropped = 0;

		ret = extract_strip_privileges(ae, &dropped, r->err);
		if (*fresh)
			r->res->stripped_privileges += dropped;
	}
	return ret;
}

/* Every entry the index names (under the --path given) must have been read. */
static int check_all_seen(struct rctx *r)
{
	for (size_t i = 0; i < r->idx->n; i++)
		if (!index_seen(r->idx, i) && wanted(r, r->idx->e[i].path))
			return err_set(r->err, -EBADMSG,
				       "backup %s: %s is in the index but not in the data (truncated or tampered backup)",
				       r->m->backup_id, r->idx->e[i].path);
	return 0;
}

/*
 * The frames after the range's end, for the hash: the tar trailer's
 * padding after a whole restore; after a --path, the rest of the object.
 */
static int drain_range(struct rctx *r)
{
	for (;;) {
		const void *d, *c;
		size_t dlen, clen;
		int ret = unframer_next(r->u, &d, &dlen, &c, &clen, &r->read_err);

		if (ret) {
			err_wrap(&r->read_err, "backup %s (%s)", r->m->backup_id,
				 r->m->data_key);
			*r->err = r->read_err;
			return ret;
		}
		if (!dlen)
			return 0;
		r->res->frames_read++;
		EVP_DigestUpdate(r->sha, c, clen);
	}
}

/*
 * Restore the entries in stream bytes [start, end) of frames [first, last]
 * (libarchive sees the stream end at end).  hash: the range is every frame;
 * the object's SHA-256 is computed over it.
 */
static int restore_range(struct rctx *r, struct extractor *x, uint32_t first,
			 uint32_t last, uint64_t start, uint64_t end, bool whole,
			 bool hash)
{
	struct archive *a = archive_read_new();
	struct archive_entry *ae;
	bool seen_wanted = false;
	int ret = 0;

	if (!a)
		return err_set(r->err, -ENOMEM, "out of memory");
	index_pass_begin(r->idx);
	r->skip = first < r->st->nframes ? (size_t)(start - r->st->e[first].d_off) : 0;
	r->left = end - start;
	r->hashing = hash;
	if (hash && (!EVP_MD_CTX_reset(r->sha) ||
		     !EVP_DigestInit_ex(r->sha, EVP_sha256(), NULL))) {
		ret = err_set(r->err, -ENOMEM, "cannot set up SHA-256");
		goto out;
	}
	ret = readahead_start(r->ra, first, last, r->err);
	if (ret)
		goto out;
	ret = unframer_new(r->st, first, last, 0, 0, readahead_fetch, r->ra, &r->u, r->err);
	if (ret)
		goto out;
	archive_read_support_format_tar(a);
	if (archive_read_open(a, r, NULL, read_cb, NULL) != ARCHIVE_OK) {
		ret = r->read_error ? (*r->err = r->read_err, r->read_error) :
		      err_set(r->err, -EBADMSG, "backup %s: not a tar stream: %s",
			      r->m->backup_id, archive_error_string(a));
		goto out;
	}
	for (;;) {
		char path[4096];
		const struct index_entry *ie;
		size_t i;
		mode_t type;
		bool fresh = false;

		ret = archive_read_next_header(a, &ae);
		if (ret == ARCHIVE_EOF) {
			ret = 0;
			break;
		}
		if (ret < ARCHIVE_WARN) {
			ret = r->read_error ? (*r->err = r->read_err, r->read_error) :
			      err_set(r->err, -EBADMSG, "backup %s is corrupt: %s",
				      r->m->backup_id, archive_error_string(a));
			goto out;
		}
		if (!archive_entry_pathname(ae)) {
			ret = err_set(r->err, -EBADMSG, "backup %s is corrupt: an entry has no path",
				      r->m->backup_id);
			goto out;
		}
		snprintf(path, sizeof(path), "%s", archive_entry_pathname(ae));
		norm_path(path);
		if (!path_safe(path) || (archive_entry_hardlink(ae) &&
					 !path_safe(archive_entry_hardlink(ae)))) {
			ret = err_set(r->err, -EPERM,
				      "backup %s contains an unsafe path \"%s\" (absolute or with ..); refusing it — the stored backup was tampered with",
				      r->m->backup_id, path);
			goto out;
		}
		if (!wanted(r, path)) {
			if (seen_wanted && !whole)
				break;       /* past the subtree: done */
			continue;
		}
		seen_wanted = true;
		i = index_find(r->idx, path);
		if (i == (size_t)-1) {
			ret = err_set(r->err, -EBADMSG,
				      "backup %s: %s is in the data but not in the index (corrupt backup)",
				      r->m->backup_id, path);
			goto out;
		}
		ie = &r->idx->e[i];
		ret = check_match(r, ae, path, i, &fresh);
		if (ret)
			goto out;
		if (fresh)
			r->res->entries++;
		type = archive_entry_filetype(ae);
		if ((type == AE_IFCHR || type == AE_IFBLK) && !r->o->devices) {
			r->res->skipped_devices++;
			continue;
		}
		if (x) {
			archive_entry_set_pathname(ae, path);
			ret = extractor_begin(x, ae, path, r->err);
			if (ret)
				goto out;
		}
		if (type == AE_IFREG && !archive_entry_hardlink(ae)) {
			ret = restore_data(r, a, x, path, ie);
			if (ret)
				goto out;
			r->res->files++;
		}
		if (x) {
			ret = extractor_end(x, r->err);
			if (ret)
				goto out;
		}
	}
	if (hash) {
		/* the frames after the range so the hash covers them */
		ret = drain_range(r);
		if (ret)
			goto out;
		r->hashed = true;
	}
out:
	r->hashing = false;
	archive_read_free(a);
	readahead_cancel(r->ra);
	unframer_free(r->u);
	r->u = NULL;
	readahead_stop(r->ra);
	return ret;
}

/*
 * The entries of one --path: from its header to the next entry outside its
 * subtree ([*start_ret, *end_ret) of the stream), *count_ret entries.
 */
static int path_range(struct rctx *r, const char *p, uint64_t *start_ret,
		      uint64_t *end_ret, size_t *count_ret)
{
	size_t i = index_find(r->idx, p), j, n = 0;

	if (i == (size_t)-1)
		return err_set(r->err, -ENOENT,
			       "%s is not in backup %s of %s; snapship list shows the backups, and paths are relative to the partition",
			       p, r->m->backup_id, r->m->partition);
	for (j = i + 1; j < r->idx->n && under(r->idx->e[j].path, p); j++)
		;
	for (size_t k = 0; k < r->idx->n; k++)
		n += under(r->idx->e[k].path, p);
	*start_ret = r->idx->e[i].offset;
	*end_ret = j < r->idx->n ? r->idx->e[j].offset : r->st->d_total;
	*count_ret = j - i;
	/* check_index() saw to it; an index entry is never used unchecked */
	if (n != j - i || *start_ret >= *end_ret || *end_ret > r->st->d_total)
		return err_set(r->err, -EBADMSG,
			       "backup %s: the index entries of %s are not where the data holds them (offsets %llu to %llu of %llu, %zu entries of %zu in a row): the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(p),
			       (unsigned long long)*start_ret,
			       (unsigned long long)*end_ret,
			       (unsigned long long)r->st->d_total, j - i, n);
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

int restore_backup(struct store *store, const struct manifest *m,
		   const struct restore_opts *o, struct restore_result *res,
		   struct err *err)
{
	struct rctx r = { .store = store, .m = m, .o = o, .res = res, .err = err };
	struct extractor *x = NULL;
	int cwd = -1, tfd = -1, ret;
	bool whole = !o->npaths;

	memset(res, 0, sizeof(*res));
	r.t0 = util_now_mono();
	for (size_t i = 0; i < o->npaths; i++)
		if (!path_safe(o->paths[i]))
			return err_set(err, -EINVAL, "--path %s: give a path relative to the partition, without ..",
				       o->paths[i]);
	ret = load_index(&r);
	if (ret)
		goto out;
	ret = load_seek_table(&r);
	if (ret)
		goto out;
	ret = check_index(&r);
	if (ret)
		goto out;
	r.sha = EVP_MD_CTX_new();
	if (!r.sha) {
		ret = err_set(err, -ENOMEM, "cannot set up SHA-256");
		goto out;
	}
	ret = readahead_new(r.st, 1 + o->nfallback, &source_ops, &r, &r.ra, err);
	if (ret)
		goto out;
	if (o->target) {
		ret = cow_make_target(o->target, o->force, &res->subvolume, err);
		if (ret)
			goto out;
		tfd = open(o->target, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		cwd = open(".", O_RDONLY | O_DIRECTORY | O_CLOEXEC);
		if (tfd < 0 || cwd < 0 || fchdir(tfd)) {
			ret = err_set(err, -errno, "cannot enter restore target %s: %s",
				      o->target, strerror(errno));
			goto out;
		}
		ret = extractor_new(disk_flags(o), restore_writers(), RESTORE_MEM,
				    o->target, &x, err);
		if (ret)
			goto out;
	}
	if (whole) {
		ret = restore_range(&r, x, 0, r.st->nframes ? r.st->nframes - 1 : 0, 0,
				    r.st->d_total, true, true);
		if (ret)
			goto out;
	} else {
		for (size_t i = 0; i < o->npaths; i++) {
			uint64_t start = 0, end = 1, before = res->entries;
			uint32_t first, last;
			size_t count = 0;

			ret = path_range(&r, o->paths[i], &start, &end, &count);
			if (ret)
				goto out;
			first = seek_table_find(r.st, start);
			last = seek_table_find(r.st, end - 1);
			/* reading every frame anyway: check the object's hash too */
			ret = restore_range(&r, x, first, last, start, end, false,
					    !r.hashed && first == 0 &&
					    last + 1 == r.st->nframes);
			if (ret)
				goto out;
			if (res->entries - before != count) {
				ret = err_set(err, -EBADMSG,
					      "backup %s: --path %s: the data holds %llu of the %zu entries its index names there: the stored backup is corrupt or forged",
					      m->backup_id, UTIL_ESC(o->paths[i]),
					      (unsigned long long)(res->entries - before), count);
				goto out;
			}
		}
	}
	ret = check_all_seen(&r);
	if (ret)
		goto out;
	if (x) {
		ret = extractor_finish(x, NULL, err);
		if (ret)
			goto out;
	}
	if (r.hashed) {
		unsigned char md[32];
		unsigned int mdlen = 0;
		char hex[65];

		EVP_DigestUpdate(r.sha, r.tail, r.tail_len);
		EVP_DigestFinal_ex(r.sha, md, &mdlen);
		util_hex(md, 32, hex);
		if (strcmp(hex, m->data_sha256)) {
			ret = err_set(err, -EBADMSG,
				      "backup %s: %s differs from the SHA-256 in its manifest (altered after the backup)",
				      m->backup_id, m->data_key);
			goto out;
		}
	}
	res->seconds = util_now_mono() - r.t0;
out:
	show_progress(&r, true);
	extractor_free(x);
	if (cwd >= 0) {
		if (fchdir(cwd))
			log_warn("cannot return to the working directory");
		close(cwd);
	}
	if (tfd >= 0)
		close(tfd);
	EVP_MD_CTX_free(r.sha);
	readahead_free(r.ra);
	index_free(r.idx);
	seek_table_free(r.st);
	free(r.tail);
	return ret;
}
