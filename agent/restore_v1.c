// SPDX-License-Identifier: MIT
/*
 * Restore of a version 1 backup: its one data object, read whole or in
 * the ranges of the stream the index gives for each --path.  Here: the seek
 * table (loaded from the object's tail, checked against the manifest), each
 * range's tar entries matched once against the index and its claims, then
 * written through the extractor (or only read, to verify).  The rctx and
 * what it owns belong to restore_backup() (restore.c), which frees them.
 */
#include "agent/restore_priv.h"

#include <archive.h>
#include <archive_entry.h>
#include <errno.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "agent/claims.h"
#include "agent/extract.h"
#include "agent/index.h"
#include "common/err.h"
#include "common/util.h"
#include "stream/frame.h"
#include "stream/readahead.h"
#include "uploader/store.h"

#define TAIL_GUESS (64u << 10)

/*
 * The tail of the data object of size bytes holding the whole seek table
 * into r->tail (*want_ret bytes): a guess first, then what its footer says.
 */
static int read_seek_tail(struct rctx *r, uint64_t size, size_t *want_ret)
{
	const struct manifest *m = r->m;
	size_t want = size < TAIL_GUESS ? (size_t)size : TAIL_GUESS, got = 0, need;
	uint32_t nframes = 0;
	int ret;

	for (;;) {
		free(r->tail);
		r->tail = malloc(want);
		if (!r->tail)
			return err_set(r->err, -ENOMEM, "out of memory");
		ret = store_get_range(r->store, m->data_key, size - want, want,
				      r->tail, &got, r->err);
		r->res->bytes_read += got;
		if (ret)
			return ret;
		if (got != want)
			return err_set(r->err, -EBADMSG, "%s: short read", m->data_key);
		/* need <= size: never more than the object holds */
		ret = seek_table_size(r->tail, want, size, &need, &nframes, r->err);
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
	*want_ret = want;
	return 0;
}
/* An encrypted backup: its last frame must open as the last one written,
 * so a data object cut at a frame boundary is refused before anything is
 * restored, also by a --path restore that reads only some frames. */
static int check_last_frame(struct rctx *r)
{
	const struct seek_entry *e;
	unsigned char *buf;
	size_t got = 0;
	int ret;

	if (!r->st->seal || !r->st->nframes)
		return 0;
	e = &r->st->e[r->st->nframes - 1];
	buf = malloc(e->c_size);
	if (!buf)
		return err_set(r->err, -ENOMEM, "out of memory");
	ret = store_get_range(r->store, r->m->data_key, e->c_off, e->c_size, buf, &got, r->err);
	r->res->bytes_read += got;
	if (!ret && got != e->c_size)
		ret = err_set(r->err, -EBADMSG, "%s: short read of its last frame", r->m->data_key);
	if (!ret)
		ret = seek_table_open_last(r->st, buf, e->c_size, r->err);
	free(buf);
	if (ret)
		return err_wrap(r->err, "backup %s: %s", r->m->backup_id, r->m->data_key);
	return 0;
}


static int load_seek_table(struct rctx *r)
{
	const struct manifest *m = r->m;
	struct store_obj_info info;
	size_t want = 0;
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
	ret = read_seek_tail(r, info.size, &want);
	if (ret)
		return ret;
	ret = seek_table_parse(r->tail, want, info.size, m->frame_size, &r->st, r->err);
	if (ret)
		return err_wrap(r->err, "backup %s: %s", m->backup_id, m->data_key);
	r->st->seal = r->keys.data;
	if (r->st->d_total != m->tar_bytes)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s holds %llu bytes of tar stream, its manifest says %llu: the stored backup is corrupt",
			       m->backup_id, m->data_key,
			       (unsigned long long)r->st->d_total,
			       (unsigned long long)m->tar_bytes);
	ret = check_last_frame(r);
	if (ret)
		return ret;
	/* keep just the seek table bytes for hashing */
	r->tail_len = (size_t)(info.size - r->st->c_total);
	memmove(r->tail, r->tail + want - r->tail_len, r->tail_len);
	r->res->frames_total = r->st->nframes;
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
	ret = claims_entry(ae, path, ie, r->m->backup_id, r->err);
	if (!ret && ie->type == PACK_FILE)
		ret = claims_file(ae, path, ie, r->st->d_total, r->res->hole_bytes,
				  r->m->backup_id, r->err);
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
		if (!index_seen(r->idx, i) && restore_wanted(r, r->idx->e[i].path))
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
 * The next entry of the data: its path, normalised, into path (size bytes),
 * refused when unsafe.  1 at the end of the range.
 */
static int next_entry(struct rctx *r, struct archive *a, struct archive_entry **ae,
		      char *path, size_t size)
{
	int ret = archive_read_next_header(a, ae);

	if (ret == ARCHIVE_EOF)
		return 1;
	if (ret < ARCHIVE_WARN)
		return r->read_error ? (*r->err = r->read_err, r->read_error) :
		       err_set(r->err, -EBADMSG, "backup %s is corrupt: %s",
			       r->m->backup_id, archive_error_string(a));
	if (!archive_entry_pathname(*ae))
		return err_set(r->err, -EBADMSG, "backup %s is corrupt: an entry has no path",
			       r->m->backup_id);
	snprintf(path, size, "%s", archive_entry_pathname(*ae));
	extract_norm_path(path);
	if (!extract_path_safe(path) || (archive_entry_hardlink(*ae) &&
				 !extract_path_safe(archive_entry_hardlink(*ae))))
		return err_set(r->err, -EPERM,
			       "backup %s contains an unsafe path \"%s\" (absolute or with ..); refusing it — the stored backup was tampered with",
			       r->m->backup_id, path);
	return 0;
}

/*
 * One wanted entry of the data at path: matched with the index and checked,
 * then (unless a device node not asked for) restored into x, or with x NULL
 * just read.
 */
static int restore_entry(struct rctx *r, struct archive *a, struct archive_entry *ae,
			 struct extractor *x, const char *path)
{
	size_t i = index_find(r->idx, path);
	bool fresh = false;
	mode_t type;
	int ret;

	if (i == (size_t)-1)
		return err_set(r->err, -EBADMSG,
			       "backup %s: %s is in the data but not in the index (corrupt backup)",
			       r->m->backup_id, path);
	ret = check_match(r, ae, path, i, &fresh);
	if (ret)
		return ret;
	if (fresh)
		r->res->entries++;
	type = archive_entry_filetype(ae);
	if ((type == AE_IFCHR || type == AE_IFBLK) && !r->o->devices) {
		r->res->skipped_devices++;
		return 0;
	}
	if (x) {
		archive_entry_set_pathname(ae, path);
		ret = extractor_begin(x, ae, path, r->err);
		if (ret)
			return ret;
	}
	if (type == AE_IFREG && !archive_entry_hardlink(ae)) {
		ret = restore_file_data(r, a, x, path, &r->idx->e[i]);
		if (ret)
			return ret;
		r->res->files++;
	}
	return x ? extractor_end(x, r->err) : 0;
}

/* The wanted entries of the open range; a --path range ends past its subtree. */
static int restore_entries(struct rctx *r, struct archive *a, struct extractor *x,
			   bool whole)
{
	bool seen_wanted = false;

	for (;;) {
		struct archive_entry *ae;
		char path[4096];
		int ret = restore_check_cancel(r, NULL);

		if (ret)
			return ret;
		ret = next_entry(r, a, &ae, path, sizeof(path));

		if (ret)
			return ret > 0 ? 0 : ret;
		if (!restore_wanted(r, path)) {
			if (seen_wanted && !whole)
				return 0;    /* past the subtree: done */
			continue;
		}
		seen_wanted = true;
		ret = restore_entry(r, a, ae, x, path);
		if (ret)
			return ret;
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
	if (archive_read_open(a, r, NULL, restore_read_cb, NULL) != ARCHIVE_OK) {
		ret = r->read_error ? (*r->err = r->read_err, r->read_error) :
		      err_set(r->err, -EBADMSG, "backup %s: not a tar stream: %s",
			      r->m->backup_id, archive_error_string(a));
		goto out;
	}
	ret = restore_entries(r, a, x, whole);
	if (!ret && hash) {
		/* the frames after the range so the hash covers them */
		ret = drain_range(r);
		if (!ret)
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
	for (j = i + 1; j < r->idx->n && restore_under(r->idx->e[j].path, p); j++)
		;
	for (size_t k = 0; k < r->idx->n; k++)
		n += restore_under(r->idx->e[k].path, p);
	*start_ret = r->idx->e[i].offset;
	*end_ret = j < r->idx->n ? r->idx->e[j].offset : r->st->d_total;
	*count_ret = j - i;
	/* claims_index() saw to it; an index entry is never used unchecked */
	if (n != j - i || *start_ret >= *end_ret || *end_ret > r->st->d_total)
		return err_set(r->err, -EBADMSG,
			       "backup %s: the index entries of %s are not where the data holds them (offsets %llu to %llu of %llu, %zu entries of %zu in a row): the stored backup is corrupt or forged",
			       r->m->backup_id, UTIL_ESC(p),
			       (unsigned long long)*start_ret,
			       (unsigned long long)*end_ret,
			       (unsigned long long)r->st->d_total, j - i, n);
	return 0;
}

/* Everything a restore checks before it reads a frame: index, seek table. */
static int restore_prepare(struct rctx *r)
{
	const struct restore_opts *o = r->o;
	int ret;

	ret = restore_index_counted(r->store, r->m, o, r->keys.index, &r->idx,
				    &r->res->bytes_read, r->err);
	if (!ret)
		ret = load_seek_table(r);
	if (!ret)
		ret = claims_index(r->idx, r->st->d_total, r->m->backup_id, r->err);
	if (!ret)
		ret = restore_check_paths(r);
	if (ret)
		return ret;
	r->sha = EVP_MD_CTX_new();
	if (!r->sha)
		return err_set(r->err, -ENOMEM, "cannot set up SHA-256");
	return readahead_new(r->st, 1 + o->nfallback, &restore_source_ops, r, &r->ra, r->err);
}

/* The entries under each --path, each path's range of the data on its own. */
static int restore_paths(struct rctx *r)
{
	const struct restore_opts *o = r->o;

	for (size_t i = 0; i < o->npaths; i++) {
		uint64_t start = 0, end = 1, before = r->res->entries;
		uint32_t first, last;
		size_t count = 0;
		int ret = path_range(r, o->paths[i], &start, &end, &count);

		if (ret)
			return ret;
		first = seek_table_find(r->st, start);
		last = seek_table_find(r->st, end - 1);
		/* reading every frame anyway: check the object's hash too */
		ret = restore_range(r, r->x, first, last, start, end, false,
				    !r->hashed && first == 0 &&
				    last + 1 == r->st->nframes);
		if (ret)
			return ret;
		if (r->res->entries - before != count)
			return err_set(r->err, -EBADMSG,
				       "backup %s: --path %s: the data holds %llu of the %zu entries its index names there: the stored backup is corrupt or forged",
				       r->m->backup_id, UTIL_ESC(o->paths[i]),
				       (unsigned long long)(r->res->entries - before), count);
	}
	return 0;
}

/* A version 1 backup: its one data object, whole or in --path ranges. */
int restore_v1(struct rctx *r)
{
	int ret = restore_prepare(r);

	if (!ret && (r->o->target || r->o->export))
		ret = restore_open_target(r);
	if (ret)
		return ret;
	if (!r->o->npaths)
		ret = restore_range(r, r->x, 0, r->st->nframes ? r->st->nframes - 1 : 0, 0,
				    r->st->d_total, true, true);
	else
		ret = restore_paths(r);
	return ret ? ret : check_all_seen(r);
}
